//! Arithmetic at the extremes, as filters to run on a database and compare with
//! `eval` (the in-memory predicate): integer overflow, division by zero and
//! `i64::MIN / -1` (undefined in Rust's checked arithmetic), float results that
//! leave the finite range (undefined by memdex's rule), underflow to zero and
//! subnormals (ordinary IEEE values), stored ±inf and -0.0. Every filter is asked
//! both ways round (`e > 0` and `not (e >= 0)`), since an undefined value makes
//! both false where a NULL-leaking SQL would drop a row from one or keep it in the
//! other.
//!
//! Shared by `grammar/tests/sql_arith_exec.rs` (SQLite through rusqlite) and
//! `tests/tests/db_backends.rs` (SQLite and PostgreSQL through memdex's own
//! database layer), which include this file by path; the includer provides
//! `crate::grammar` (memdex-grammar under either name).
#![allow(dead_code)]

use crate::grammar::ir::{ArithOp, CmpOp, Expr, ExprKind};
use crate::grammar::span::Span;
use crate::grammar::{Schema, Type, Value, eval};

/// Integers around every overflow boundary of `+ - * / %` and unary `-`
/// (3037000499² is the largest square below `i64::MAX`).
pub const INTS: [i64; 15] = [
    i64::MIN,
    i64::MIN + 1,
    -3_037_000_500,
    -3,
    -2,
    -1,
    0,
    1,
    2,
    3,
    3_037_000_499,
    3_037_000_500,
    1 << 62,
    i64::MAX - 1,
    i64::MAX,
];

/// Floats around every finite-range boundary: the largest, the smallest normal and
/// subnormal, squares that overflow or underflow, signed zeros and infinities.
pub const FLOATS: [f64; 21] = [
    0.0,
    -0.0,
    0.5,
    -0.75,
    1.0,
    2.0,
    3.0,
    0.1,
    1e308,
    -1e308,
    f64::MAX,
    f64::MIN,
    1.340_780_792_994_259_6e154,
    5e-324,
    -5e-324,
    f64::MIN_POSITIVE,
    1.112_536_929_253_600_7e-308,
    1e-160,
    1e-300,
    f64::INFINITY,
    f64::NEG_INFINITY,
];

/// `extreme(id, a, b, x, y)`: `a`, `b` integers, `x`, `y` floats.
pub fn schema() -> Schema {
    Schema::new("Extreme", "extreme")
        .column("id", Type::Int, false)
        .column("a", Type::Int, false)
        .column("b", Type::Int, false)
        .column("x", Type::Float, false)
        .column("y", Type::Float, false)
        .key("id")
}

/// Every pair of [`INTS`] as `(a, b)` and every pair of [`FLOATS`] as `(x, y)`.
pub fn rows() -> Vec<Vec<Value>> {
    let n = FLOATS.len() * FLOATS.len();
    (0..n)
        .map(|k| {
            vec![
                Value::Int(k as i64),
                Value::Int(INTS[k % INTS.len()]),
                Value::Int(INTS[(k / INTS.len()) % INTS.len()]),
                Value::Float(FLOATS[k % FLOATS.len()]),
                Value::Float(FLOATS[k / FLOATS.len()]),
            ]
        })
        .collect()
}

fn node(kind: ExprKind) -> Expr {
    Expr::new(kind, Span::DUMMY)
}

fn col(name: &str) -> Expr {
    Expr::field(name, Span::DUMMY)
}

fn lit(v: impl Into<Value>) -> Expr {
    Expr::lit(v, Span::DUMMY)
}

fn arith(op: ArithOp, a: Expr, b: Expr) -> Expr {
    node(ExprKind::Arith { op, lhs: Box::new(a), rhs: Box::new(b) })
}

fn neg(a: Expr) -> Expr {
    node(ExprKind::Neg(Box::new(a)))
}

/// One filter over the table, with its bound parameters.
#[derive(Clone, Debug)]
pub struct Case {
    pub label: String,
    pub filter: Expr,
    pub params: Params,
}

/// Named bound values, as the emitter and `eval` read them.
type Params = Vec<(String, Value)>;

const INT_OPS: [ArithOp; 5] = [ArithOp::Add, ArithOp::Sub, ArithOp::Mul, ArithOp::Div, ArithOp::Rem];
const FLOAT_OPS: [ArithOp; 4] = [ArithOp::Add, ArithOp::Sub, ArithOp::Mul, ArithOp::Div];

/// The cases: `e > 0` and `not (e >= 0)` for every value expression `e` below.
pub fn cases() -> Vec<Case> {
    let mut values: Vec<(Expr, Params, Type)> = Vec::new();
    let none = Vec::new;
    let int = Type::Int;
    let float = Type::Float;
    // Integers: column with column, with every literal on either side, constants
    // alone (folded by PostgreSQL while planning), bound parameters, nesting.
    for op in INT_OPS {
        values.push((arith(op, col("a"), col("b")), none(), int));
        for v in INTS {
            values.push((arith(op, col("a"), lit(v)), none(), int));
            values.push((arith(op, lit(v), col("b")), none(), int));
        }
        for v in [i64::MIN, -1, 0, 2, i64::MAX] {
            for w in [i64::MIN, -1, 0, 1, i64::MAX] {
                values.push((arith(op, lit(v), lit(w)), none(), int));
            }
        }
        let params = vec![("p".to_owned(), Value::Int(i64::MAX)), ("q".to_owned(), Value::Int(i64::MIN))];
        values.push((arith(op, Expr::param("p", Span::DUMMY), Expr::param("q", Span::DUMMY)), params.clone(), int));
        values.push((arith(op, col("a"), Expr::param("q", Span::DUMMY)), params, int));
        for inner in INT_OPS {
            values.push((arith(op, arith(inner, col("a"), col("b")), col("a")), none(), int));
            // An overflowing constant inside arithmetic over a column: PostgreSQL
            // must not fold it while planning.
            for (v, w) in [(i64::MAX, 1), (i64::MIN, -1), (5, 0), (i64::MIN, 1), (i64::MAX, i64::MAX)] {
                values.push((arith(op, arith(inner, lit(v), lit(w)), col("b")), none(), int));
            }
        }
    }
    values.push((neg(col("a")), none(), int));
    for op in INT_OPS {
        values.push((neg(arith(op, col("a"), col("b"))), none(), int));
    }
    for v in INTS {
        values.push((neg(lit(v)), none(), int));
    }
    // Floats, the same shapes.
    for op in FLOAT_OPS {
        values.push((arith(op, col("x"), col("y")), none(), float));
        for v in FLOATS {
            values.push((arith(op, col("x"), lit(v)), none(), float));
            values.push((arith(op, lit(v), col("y")), none(), float));
        }
        for v in [f64::MAX, 1e308, 5e-324, 0.5, -0.0, f64::INFINITY] {
            for w in [f64::MAX, 2.0, 5e-324, 0.5, 0.0, f64::NEG_INFINITY] {
                values.push((arith(op, lit(v), lit(w)), none(), float));
            }
        }
        for inner in FLOAT_OPS {
            values.push((arith(op, arith(inner, col("x"), col("y")), col("x")), none(), float));
            for (v, w) in [(f64::MAX, 2.0), (5e-324, 0.5), (1.0, 0.0), (1e-300, 1e300)] {
                values.push((arith(op, arith(inner, lit(v), lit(w)), col("y")), none(), float));
            }
        }
    }
    values.push((neg(col("x")), none(), float));
    for op in FLOAT_OPS {
        values.push((neg(arith(op, col("x"), col("y"))), none(), float));
    }
    for v in FLOATS {
        values.push((neg(lit(v)), none(), float));
    }

    let mut cases = Vec::with_capacity(values.len() * 2);
    for (e, params, ty) in values {
        let zero = if ty == Type::Int { lit(0_i64) } else { lit(0.0) };
        let label = show(&e);
        let gt = Expr::cmp(CmpOp::Gt, e.clone(), zero.clone(), Span::DUMMY);
        let ge = Expr::cmp(CmpOp::Ge, e, zero, Span::DUMMY);
        cases.push(Case { label: format!("{label} > 0"), filter: gt, params: params.clone() });
        cases.push(Case { label: format!("not ({label} >= 0)"), filter: node(ExprKind::Not(Box::new(ge))), params });
    }
    cases
}

/// [`rows`] without those holding ±inf: MariaDB has no infinite DOUBLE ("Out of
/// range value"), so on it the table holds the rest.
pub fn finite_rows() -> Vec<Vec<Value>> {
    rows().into_iter().filter(|row| row.iter().all(|v| !matches!(v, Value::Float(x) if x.is_infinite()))).collect()
}

/// The ids `eval` accepts for a case, in order.
pub fn expected(case: &Case) -> Vec<i64> {
    expected_in(case, &rows())
}

/// The ids `eval` accepts for a case among `rows`, in order.
pub fn expected_in(case: &Case, rows: &[Vec<Value>]) -> Vec<i64> {
    let schema = schema();
    rows.iter()
        .filter(|row| eval::matches(&schema, &case.filter, &|i| row[i].clone(), &case.params))
        .map(|row| row[0].as_i64().unwrap_or(-1))
        .collect()
}

fn show(e: &Expr) -> String {
    match &e.kind {
        ExprKind::Field(name) => name.clone(),
        ExprKind::Param(name) => name.clone(),
        ExprKind::Lit(Value::Float(x)) => format!("{x:e}"),
        ExprKind::Lit(v) => format!("{v:?}"),
        ExprKind::Neg(x) => format!("-({})", show(x)),
        ExprKind::Arith { op, lhs, rhs } => format!("({} {} {})", show(lhs), op.symbol(), show(rhs)),
        _ => "?".into(),
    }
}
