//! The in-memory predicate of the text form: evaluates checked IR against a row.
//!
//! Semantics are Rust's (DESIGN.md "Semantics"):
//! `==`/`!=` are null-aware (`None == None`), strings compare by bytes,
//! `starts_with`/`ends_with`/`contains` are byte-exact and case-sensitive,
//! `to_lowercase` is Rust's `str::to_lowercase`, `eq_ignore_ascii_case` is Rust's,
//! `len` counts bytes, integer arithmetic is i64 with `/` truncating toward zero.
//! Where Rust would panic (overflow, division by zero) the comparison using the
//! result is false, never a panic. An int meeting a float compares numerically.
//!
//! The rules in detail:
//! * A value Rust could not compute (integer overflow of `+ - *` or unary `-`,
//!   division or remainder by zero, `i64::MIN / -1`, `i64::MIN % -1`) is
//!   *undefined*. Every test that reads an undefined value (`==`, `!=`, `<`, `in`,
//!   `is None`, string tests) is false; a `not` around such a test is then true, as
//!   `not` of any false test is. [`value`] gives `Null` for it.
//! * A float arithmetic result (`+ - * /` and unary `-`) that is not finite (±inf or
//!   NaN) is undefined too, exactly like integer overflow. Finite results are IEEE's,
//!   underflow to zero and subnormals included; stored or bound ±inf that no
//!   arithmetic touches are ordinary values (`c.price > 1e308` holds for +inf).
//!   Why not IEEE's inf and NaN: the SQL the same filter runs as cannot reproduce
//!   them. SQLite has no NaN (it turns one into NULL) and gives NULL for `x / 0.0`;
//!   PostgreSQL raises errors on float overflow, on a product or quotient of non-zero
//!   values that underflows to zero and on division by zero, and orders NaN above
//!   every number; SQLite drops the sign of `-0.0` when storing it. "Undefined" can
//!   be computed the same way on every path (the SQL yields NULL exactly there, see
//!   `sql::emit`), IEEE's non-finite values cannot.
//! * Ordering comparisons (`<`, `<=`, `>`, `>=`) with `None` on either side are false
//!   (the checker rejects them on `Option` columns; this is the fallback), and with
//!   NaN false, as IEEE and Rust say.
//! * Values of different types (which the checker rejects) are unequal and unordered.
//! * Integers meeting floats compare exactly (no rounding of large integers), as
//!   mathematics would; float arithmetic with an integer converts the integer.

use std::cmp::Ordering;

use crate::ir::{ArithOp, CmpOp, Expr, ExprKind, Haystack, StrOp};
use crate::params::Params;
use crate::schema::Schema;
use crate::value::Value;

/// True when the row satisfies the filter. `column(i)` gives column `i`'s value.
pub fn matches(schema: &Schema, filter: &Expr, column: &dyn Fn(usize) -> Value, params: &dyn Params) -> bool {
    Row { schema, column, params, resolved: None }.test(filter)
}

/// [`matches()`], with the filter's fields and parameters looked up once beforehand
/// ([`Resolved::new`] of this schema, filter and parameters): for many rows.
pub fn matches_resolved(
    schema: &Schema,
    filter: &Expr,
    resolved: &Resolved,
    column: &dyn Fn(usize) -> Value,
    params: &dyn Params,
) -> bool {
    Row { schema, column, params, resolved: Some(resolved) }.test(filter)
}

/// The value of a (non-boolean) expression for a row; `Value::Null` where Rust
/// would panic or the value is undefined. Used for aggregates over expressions.
pub fn value(schema: &Schema, e: &Expr, column: &dyn Fn(usize) -> Value, params: &dyn Params) -> Value {
    Row { schema, column, params, resolved: None }.value(e).unwrap_or(Value::Null)
}

/// A filter's fields and parameters, looked up once for a run of rows rather than
/// by name at every comparison of every row. Measured: those lookups (a linear
/// search of the columns and of the parameters, with `memcmp`) were among the top of
/// the client's samples for a 16-way text-form disjunction over 160 rows; resolved
/// once, that fetch took ~10 % less (docs/bench/profile.md).
///
/// Keyed by where each name lives in the filter's IR (its address and length), which
/// stays put while the filter lives: equal keys are the same bytes. A name it does not
/// know (another filter's) is looked up by name, as [`matches()`] does, so a mismatch
/// costs time, never a wrong answer.
#[derive(Clone, Debug, Default)]
pub struct Resolved {
    columns: Vec<(NameAt, usize)>,
    params: Vec<(NameAt, Value)>,
}

/// Where a name lives: its address and length.
type NameAt = (usize, usize);

fn name_at(name: &str) -> NameAt {
    (name.as_ptr() as usize, name.len())
}

impl Resolved {
    /// Every field of `filter` with its column in `schema`, every parameter with its
    /// value in `params` (those missing are left to the lookup by name).
    pub fn new(schema: &Schema, filter: &Expr, params: &dyn Params) -> Resolved {
        let mut resolved = Resolved::default();
        filter.visit(&mut |e| match &e.kind {
            ExprKind::Field(name) => {
                if let Some(i) = schema.column_index(name) {
                    resolved.columns.push((name_at(name), i));
                }
            }
            ExprKind::Param(name) | ExprKind::In { haystack: Haystack::Param(name), .. } => {
                if let Some(v) = params.get(name) {
                    resolved.params.push((name_at(name), v.clone()));
                }
            }
            _ => {}
        });
        resolved
    }

    fn column(&self, name: &str) -> Option<usize> {
        let at = name_at(name);
        self.columns.iter().find(|(key, _)| *key == at).map(|&(_, i)| i)
    }

    fn param(&self, name: &str) -> Option<&Value> {
        let at = name_at(name);
        self.params.iter().find(|(key, _)| *key == at).map(|(_, v)| v)
    }
}

/// Rust's `==` between two values of the language: `None == None`, integers and
/// floats numerically (`1 == 1.0`, `-0.0 == 0.0`, `NaN != NaN`), strings by bytes,
/// lists element by element. Values of different types are unequal.
pub fn values_equal(a: &Value, b: &Value) -> bool {
    use Value::*;
    match (a, b) {
        (Null, Null) => true,
        (Bool(x), Bool(y)) => x == y,
        (Text(x), Text(y)) => x == y,
        (Bytes(x), Bytes(y)) => x == y,
        (Timestamp(x), Timestamp(y)) => x == y,
        (Uuid(x), Uuid(y)) => x == y,
        (List(x), List(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| values_equal(x, y)),
        (Int(_) | Float(_), Int(_) | Float(_)) => numeric_cmp(a, b) == Some(Ordering::Equal),
        _ => false,
    }
}

/// Rust's `partial_cmp` for two non-null scalars of one kind; `None` when unordered
/// (NaN, `None`, different types).
pub fn values_cmp(a: &Value, b: &Value) -> Option<Ordering> {
    use Value::*;
    match (a, b) {
        (Bool(x), Bool(y)) => Some(x.cmp(y)),
        (Text(x), Text(y)) => Some(x.as_bytes().cmp(y.as_bytes())),
        (Bytes(x), Bytes(y)) => Some(x.cmp(y)),
        (Timestamp(x), Timestamp(y)) => Some(x.cmp(y)),
        (Uuid(x), Uuid(y)) => Some(x.cmp(y)),
        (Int(_) | Float(_), Int(_) | Float(_)) => numeric_cmp(a, b),
        _ => None,
    }
}

fn numeric_cmp(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => Some(x.cmp(y)),
        (Value::Float(x), Value::Float(y)) => x.partial_cmp(y),
        (Value::Int(i), Value::Float(x)) => int_float_cmp(*i, *x),
        (Value::Float(x), Value::Int(i)) => int_float_cmp(*i, *x).map(Ordering::reverse),
        _ => None,
    }
}

/// Compares an integer with a float exactly: `i as f64` would round integers beyond
/// 2^53 and call `2^53 + 1 == 2^53` true.
fn int_float_cmp(i: i64, x: f64) -> Option<Ordering> {
    // 2^63 is exactly representable; every finite float at or beyond it (or below
    // -2^63) lies outside i64's range.
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    if x.is_nan() {
        return None;
    }
    if x >= TWO_63 {
        return Some(Ordering::Less);
    }
    if x < -TWO_63 {
        return Some(Ordering::Greater);
    }
    let whole = x.trunc();
    // In range and integral, so the cast is exact.
    let whole_int = whole as i64;
    Some(i.cmp(&whole_int).then_with(|| {
        let fract = x - whole;
        if fract > 0.0 {
            Ordering::Less
        } else if fract < 0.0 {
            Ordering::Greater
        } else {
            Ordering::Equal
        }
    }))
}

/// A value Rust could not have computed (it would have panicked).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Undefined;

struct Row<'a> {
    schema: &'a Schema,
    column: &'a dyn Fn(usize) -> Value,
    params: &'a dyn Params,
    resolved: Option<&'a Resolved>,
}

impl Row<'_> {
    fn column_index(&self, name: &str) -> Option<usize> {
        self.resolved.and_then(|r| r.column(name)).or_else(|| self.schema.column_index(name))
    }

    fn param(&self, name: &str) -> Option<&Value> {
        self.resolved.and_then(|r| r.param(name)).or_else(|| self.params.get(name))
    }

    /// A boolean expression. Non-boolean values used as tests (which the checker
    /// rejects) are false.
    fn test(&self, e: &Expr) -> bool {
        match &e.kind {
            ExprKind::And(items) => items.iter().all(|x| self.test(x)),
            ExprKind::Or(items) => items.iter().any(|x| self.test(x)),
            ExprKind::Not(inner) => !self.test(inner),
            ExprKind::Cmp { op, lhs, rhs } => {
                let (Ok(a), Ok(b)) = (self.value(lhs), self.value(rhs)) else { return false };
                compare(*op, &a, &b)
            }
            ExprKind::StrTest { op, subject, pattern } => {
                let (Ok(Value::Text(s)), Ok(Value::Text(p))) = (self.value(subject), self.value(pattern)) else {
                    return false;
                };
                match op {
                    StrOp::StartsWith => s.starts_with(p.as_str()),
                    StrOp::EndsWith => s.ends_with(p.as_str()),
                    StrOp::Contains => s.contains(p.as_str()),
                }
            }
            ExprKind::IEq(a, b) => match (self.value(a), self.value(b)) {
                (Ok(Value::Text(a)), Ok(Value::Text(b))) => a.eq_ignore_ascii_case(&b),
                _ => false,
            },
            ExprKind::In { needle, haystack } => {
                let Ok(needle) = self.value(needle) else { return false };
                match haystack {
                    Haystack::Items(items) => {
                        items.iter().any(|x| self.value(x).is_ok_and(|v| values_equal(&needle, &v)))
                    }
                    Haystack::Param(name) => match self.param(name) {
                        Some(Value::List(items)) => items.iter().any(|v| values_equal(&needle, v)),
                        _ => false,
                    },
                }
            }
            ExprKind::IsNull { expr, negated } => match self.value(expr) {
                Ok(v) => v.is_null() != *negated,
                Err(Undefined) => false,
            },
            _ => matches!(self.value(e), Ok(Value::Bool(true))),
        }
    }

    fn value(&self, e: &Expr) -> Result<Value, Undefined> {
        Ok(match &e.kind {
            ExprKind::Field(name) => match self.column_index(name) {
                Some(i) => (self.column)(i),
                // The checker rejects unknown fields; nothing sensible to read.
                None => return Err(Undefined),
            },
            ExprKind::Lit(v) => v.clone(),
            ExprKind::Param(name) => self.param(name).cloned().ok_or(Undefined)?,
            ExprKind::Neg(inner) => match self.value(inner)? {
                Value::Int(i) => Value::Int(i.checked_neg().ok_or(Undefined)?),
                Value::Float(x) => Value::Float(finite(-x)?),
                _ => return Err(Undefined),
            },
            ExprKind::Arith { op, lhs, rhs } => arith(*op, &self.value(lhs)?, &self.value(rhs)?)?,
            ExprKind::Lower(inner) => match self.value(inner)? {
                Value::Text(s) => Value::Text(s.to_lowercase()),
                _ => return Err(Undefined),
            },
            ExprKind::Len(inner) => match self.value(inner)? {
                Value::Text(s) => Value::Int(i64::try_from(s.len()).map_err(|_| Undefined)?),
                _ => return Err(Undefined),
            },
            ExprKind::And(_)
            | ExprKind::Or(_)
            | ExprKind::Not(_)
            | ExprKind::Cmp { .. }
            | ExprKind::StrTest { .. }
            | ExprKind::IEq(..)
            | ExprKind::In { .. }
            | ExprKind::IsNull { .. } => Value::Bool(self.test(e)),
            // Aggregates are evaluated by the view executor, never per row.
            ExprKind::Agg { .. } => return Err(Undefined),
        })
    }
}

fn compare(op: CmpOp, a: &Value, b: &Value) -> bool {
    match op {
        CmpOp::Eq => values_equal(a, b),
        CmpOp::Ne => !values_equal(a, b),
        CmpOp::Lt => values_cmp(a, b) == Some(Ordering::Less),
        CmpOp::Le => matches!(values_cmp(a, b), Some(Ordering::Less | Ordering::Equal)),
        CmpOp::Gt => values_cmp(a, b) == Some(Ordering::Greater),
        CmpOp::Ge => matches!(values_cmp(a, b), Some(Ordering::Greater | Ordering::Equal)),
    }
}

/// i64 arithmetic with Rust's checked semantics (overflow and division by zero are
/// undefined; `/` truncates toward zero, `%` takes the dividend's sign), f64
/// arithmetic as IEEE says where the result is finite and undefined where it is not
/// (`1.0 / 0.0`, `f64::MAX * 2.0`, `inf - inf`). `None` operands are undefined.
fn arith(op: ArithOp, a: &Value, b: &Value) -> Result<Value, Undefined> {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => {
            let r = match op {
                ArithOp::Add => x.checked_add(*y),
                ArithOp::Sub => x.checked_sub(*y),
                ArithOp::Mul => x.checked_mul(*y),
                ArithOp::Div => x.checked_div(*y),
                ArithOp::Rem => x.checked_rem(*y),
            };
            r.map(Value::Int).ok_or(Undefined)
        }
        (Value::Int(_) | Value::Float(_), Value::Int(_) | Value::Float(_)) => {
            let (Some(x), Some(y)) = (a.as_f64(), b.as_f64()) else { return Err(Undefined) };
            Ok(Value::Float(finite(match op {
                ArithOp::Add => x + y,
                ArithOp::Sub => x - y,
                ArithOp::Mul => x * y,
                ArithOp::Div => x / y,
                ArithOp::Rem => x % y,
            })?))
        }
        _ => Err(Undefined),
    }
}

/// A float arithmetic result: undefined unless finite (see the module doc).
fn finite(x: f64) -> Result<f64, Undefined> {
    if x.is_finite() { Ok(x) } else { Err(Undefined) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int_float_comparison_is_exact() {
        let big = 9_007_199_254_740_993_i64; // 2^53 + 1: rounds to 2^53 as f64
        assert!(!values_equal(&Value::Int(big), &Value::Float(9_007_199_254_740_992.0)));
        assert!(values_equal(&Value::Int(3), &Value::Float(3.0)));
        assert_eq!(values_cmp(&Value::Int(3), &Value::Float(3.5)), Some(Ordering::Less));
        assert_eq!(values_cmp(&Value::Int(-3), &Value::Float(-3.5)), Some(Ordering::Greater));
        assert_eq!(values_cmp(&Value::Int(i64::MAX), &Value::Float(9.3e18)), Some(Ordering::Less));
        assert_eq!(values_cmp(&Value::Int(i64::MIN), &Value::Float(-9.3e18)), Some(Ordering::Greater));
        assert_eq!(values_cmp(&Value::Float(f64::NAN), &Value::Int(1)), None);
        assert!(values_equal(&Value::Float(-0.0), &Value::Int(0)));
    }

    /// A float operation's result; `Some(NaN)` (which no case expects) for a
    /// non-float value, so that the comparison fails.
    fn float(op: ArithOp, a: f64, b: f64) -> Option<f64> {
        match arith(op, &Value::Float(a), &Value::Float(b)) {
            Ok(Value::Float(x)) => Some(x),
            Ok(_) => Some(f64::NAN),
            Err(Undefined) => None,
        }
    }

    /// Non-finite results are undefined; finite ones are IEEE's, underflow included.
    #[test]
    fn float_arithmetic_is_undefined_exactly_where_not_finite() {
        use ArithOp::*;
        let inf = f64::INFINITY;
        let cases: &[(ArithOp, f64, f64, Option<f64>)] = &[
            (Mul, f64::MAX, 2.0, None),
            (Add, f64::MAX, f64::MAX, None),
            (Sub, f64::MIN, f64::MAX, None),
            (Div, 1.0, 0.0, None),
            (Div, 0.0, 0.0, None),
            (Div, 1.0, -0.0, None),
            (Add, inf, 1.0, None),
            (Sub, inf, inf, None),
            (Mul, inf, 0.0, None),
            (Div, inf, inf, None),
            (Div, 1.0, inf, Some(0.0)),
            (Div, f64::MAX, 0.5, None),
            (Div, 1e308, 0.1, None),
            // Rounds to f64::MAX, not to infinity.
            (Add, f64::MAX, 1.0, Some(f64::MAX)),
            (Mul, 1e-300, 1e-300, Some(0.0)),
            (Mul, 5e-324, 0.5, Some(0.0)),
            (Mul, 5e-324, 0.75, Some(5e-324)),
            (Div, 5e-324, 2.0, Some(0.0)),
            (Div, f64::MIN_POSITIVE, 4.0, Some(f64::MIN_POSITIVE / 4.0)),
            (Sub, 0.5, 0.5, Some(0.0)),
            (Add, -0.0, -0.0, Some(-0.0)),
        ];
        for &(op, a, b, want) in cases {
            let got = float(op, a, b);
            assert_eq!(got.map(f64::to_bits), want.map(f64::to_bits), "{a:e} {} {b:e}", op.symbol());
        }
    }

    /// The rule as filters see it: a comparison reading an undefined float is false,
    /// its `not` true; a stored infinity that no arithmetic touches compares as itself.
    #[test]
    fn non_finite_results_make_tests_false_but_stored_infinity_is_a_value() {
        use crate::ir::Expr;
        use crate::span::Span;
        let schema = Schema::new("T", "t").column("id", crate::value::Type::Int, false).column(
            "x",
            crate::value::Type::Float,
            false,
        );
        let x = || Expr::field("x", Span::DUMMY);
        let lit = |v: f64| Expr::lit(v, Span::DUMMY);
        let times_two = || {
            Expr::new(ExprKind::Arith { op: ArithOp::Mul, lhs: Box::new(x()), rhs: Box::new(lit(2.0)) }, Span::DUMMY)
        };
        let gt = Expr::cmp(CmpOp::Gt, times_two(), lit(0.0), Span::DUMMY);
        let not_gt = Expr::new(ExprKind::Not(Box::new(gt.clone())), Span::DUMMY);
        let stored = Expr::cmp(CmpOp::Gt, x(), lit(f64::MAX), Span::DUMMY);
        let params: Vec<(String, Value)> = Vec::new();
        let at =
            |v: f64, e: &Expr| matches(&schema, e, &|i| if i == 1 { Value::Float(v) } else { Value::Int(1) }, &params);
        for v in [f64::INFINITY, f64::MAX, 1e308] {
            assert!(!at(v, &gt), "{v:e} * 2.0 is not finite: undefined, so `>` is false");
            assert!(at(v, &not_gt), "and its `not` is true");
        }
        assert!(at(1.0, &gt) && !at(1.0, &not_gt));
        assert!(at(f64::INFINITY, &stored), "a stored infinity is an ordinary value");
        assert_eq!(value(&schema, &times_two(), &|_| Value::Float(f64::MAX), &params), Value::Null);
    }
}
