//! The filter the database paths send to SQL: a *superset* of the query's filter.
//!
//! The in-memory predicate (the user's closure in the macro form, [`crate::eval`] in
//! the text form) decides which rows a query returns. Every path that asks the
//! database with the query's own filter (`scan!`, and the fallbacks taken when a
//! bound prefix is shorter than its index, a query binds too many nodes, the cache is
//! down or this process has pending invalidations) must therefore never have the
//! database *reject* a row the predicate accepts: a row SQL loses there is lost for
//! good, while the cached path, which applies the predicate alone, keeps it.
//!
//! SQL and Rust agree on comparisons, string tests, `in`, `is None`, `len` and
//! `lower` (the emitter compensates for the dialects). They can disagree on
//! arithmetic: integer overflow (Rust panics, so memdex's comparison is false;
//! SQLite turns it into a float, PostgreSQL fails the query), non-finite floats
//! (SQLite turns NaN into NULL, PostgreSQL orders NaN above every number and raises
//! on overflow), and a NaN bound value (SQLite binds NULL). So [`superset`] drops
//! every *literal* of the filter — a leaf or a negated leaf of its negation normal
//! form — that contains arithmetic (`+ - * / %`, unary `-`) or a NaN value: the
//! literal becomes `True`. Negation normal form is monotone in its literals (in
//! SQL's three-valued logic too, where `AND`/`OR` are monotone), so the result can
//! only select more rows than the original, never fewer; the predicate then removes
//! the extra ones in memory.
//!
//! This is the same as dropping each such literal from its disjunct of the DNF,
//! without building the DNF: a `scan!` may have more alternatives than the DNF
//! limit allows, and needs no index.
//!
//! When nothing is dropped the filter is returned untouched and [`Relaxed::exact`]
//! is true: the SQL is the query's own (same text, same plan), and callers keep
//! ordering, `LIMIT` and `OFFSET` in SQL. When something was dropped, ordering and
//! paging must follow the predicate, in memory.

use std::borrow::Cow;

use crate::ir::{Expr, ExprKind, Haystack};
use crate::normalise::{flatten, push_not, simplify_constants};
use crate::params::Params;
use crate::value::Value;

/// The filter to send to SQL for a query's filter.
#[derive(Clone, Debug, PartialEq)]
pub struct Relaxed<'a> {
    /// `None`: every row (nothing of the filter is safe to send).
    pub filter: Option<Cow<'a, Expr>>,
    /// True when `filter` is the query's own filter, unchanged: the database then
    /// selects exactly the rows the predicate accepts, and may order and page them.
    pub exact: bool,
}

/// The superset filter of `filter` for SQL (see the module documentation). Parameter
/// values are looked at only for NaN; an unbound parameter is left for the emitter
/// to report.
pub fn superset<'a>(filter: &'a Expr, params: &dyn Params) -> Relaxed<'a> {
    if !inexact(filter, params) {
        return Relaxed { filter: Some(Cow::Borrowed(filter)), exact: true };
    }
    let relaxed = flatten(simplify_constants(relax_nnf(push_not(filter.clone()), params)));
    let filter = match relaxed.kind {
        ExprKind::Lit(Value::Bool(true)) => None,
        _ => Some(Cow::Owned(relaxed)),
    };
    Relaxed { filter, exact: false }
}

/// Replaces every literal of a negation normal form whose SQL may disagree with
/// Rust by `True`.
fn relax_nnf(e: Expr, params: &dyn Params) -> Expr {
    let Expr { kind, span } = e;
    match kind {
        ExprKind::And(items) => {
            Expr::new(ExprKind::And(items.into_iter().map(|x| relax_nnf(x, params)).collect()), span)
        }
        ExprKind::Or(items) => Expr::new(ExprKind::Or(items.into_iter().map(|x| relax_nnf(x, params)).collect()), span),
        // A leaf or a negated leaf: `push_not` leaves `not` only around leaves.
        kind => {
            let literal = Expr::new(kind, span);
            if inexact(&literal, params) { Expr::lit(true, literal.span) } else { literal }
        }
    }
}

/// Whether `e` contains something whose SQL may evaluate differently from Rust:
/// arithmetic, a negation of a value, or a NaN literal or bound value.
fn inexact(e: &Expr, params: &dyn Params) -> bool {
    let mut found = false;
    e.visit(&mut |n| {
        found |= match &n.kind {
            ExprKind::Arith { .. } | ExprKind::Neg(_) => true,
            ExprKind::Lit(v) => has_nan(v),
            ExprKind::Param(p) => params.get(p).is_some_and(has_nan),
            ExprKind::In { haystack: Haystack::Param(p), .. } => params.get(p).is_some_and(has_nan),
            _ => false,
        };
    });
    found
}

fn has_nan(v: &Value) -> bool {
    match v {
        Value::Float(x) => x.is_nan(),
        Value::List(items) => items.iter().any(has_nan),
        _ => false,
    }
}

#[cfg(test)]
#[allow(clippy::panic)] // Test failures are panics.
mod tests {
    use super::*;
    use crate::params::ParamType;
    use crate::schema::Schema;
    use crate::value::Type;

    fn schema() -> Schema {
        Schema::new("Item", "item")
            .column("id", Type::Int, false)
            .column("cat", Type::Int, false)
            .column("name", Type::Text, false)
            .column("price", Type::Float, false)
            .column("qty", Type::Int, false)
            .column("grp", Type::Int, true)
            .column("flag", Type::Bool, false)
            .key("id")
            .index(&["cat"], None)
    }

    fn params() -> Vec<(String, Value)> {
        vec![
            ("p".into(), Value::Int(3)),
            ("nan".into(), Value::Float(f64::NAN)),
            ("xs".into(), Value::List(vec![Value::Float(1.0), Value::Float(f64::NAN)])),
            ("ys".into(), Value::List(vec![Value::Int(1), Value::Int(2)])),
        ]
    }

    /// `expect`: the relaxed filter printed as text (`True` for no filter), then
    /// ` (exact)` when the filter came back unchanged.
    #[track_caller]
    fn check(input: &str, expect: &str) {
        let schema = schema();
        let params = params();
        let lambda = crate::text::parse(input).unwrap_or_else(|e| panic!("{}", e.render(input)));
        let types = |name: &str| ParamType::of(Params::get(&params, name));
        let filter =
            crate::check::filter(&schema, &lambda.body, &types).unwrap_or_else(|e| panic!("{}", e.render(input)));
        let relaxed = superset(&filter, &params);
        let mut got = match &relaxed.filter {
            Some(f) => crate::print::expr(f, &lambda.param),
            None => "True".to_owned(),
        };
        if relaxed.exact {
            got.push_str(" (exact)");
            assert!(matches!(relaxed.filter, Some(Cow::Borrowed(_))), "an exact filter is the query's own");
        }
        assert_eq!(got, expect, "input: {input}");
    }

    #[test]
    fn filters_without_arithmetic_are_exact() {
        check("lambda c: c.cat == 5", "c.cat == 5 (exact)");
        check("lambda c: c.cat == p and c.price > -1.5", "c.cat == p and c.price > -1.5 (exact)");
        check(
            r#"lambda c: not (c.price < 2.0) or c.name.startswith("a")"#,
            r#"not c.price < 2.0 or c.name.startswith("a") (exact)"#,
        );
        check(
            r#"lambda c: len(c.name) > 3 and c.name.lower() == "x""#,
            r#"len(c.name) > 3 and c.name.lower() == "x" (exact)"#,
        );
        check("lambda c: c.cat in ys and c.grp is None", "c.cat in ys and c.grp is None (exact)");
        check("lambda c: c.flag", "c.flag (exact)");
    }

    #[test]
    fn arithmetic_literals_are_dropped_from_their_conjunction() {
        check("lambda c: c.cat == 5 and c.price - c.price != 1.0", "c.cat == 5");
        check(r#"lambda c: c.cat == 5 and c.qty + 1 > 0 and c.name == "a""#, r#"c.cat == 5 and c.name == "a""#);
        check("lambda c: c.cat == 5 and -c.qty < 3", "c.cat == 5");
        check("lambda c: c.cat == 5 and c.qty % p == 0", "c.cat == 5");
        // Arithmetic anywhere inside the literal.
        check("lambda c: c.cat == 5 and len(c.name) * 2 == 4", "c.cat == 5");
    }

    #[test]
    fn negated_arithmetic_is_dropped_not_negated() {
        // `not (x > 0)` must not become `not True`: the negated literal as a whole
        // is dropped.
        check("lambda c: c.cat == 5 and not (c.qty + 1 > 0)", "c.cat == 5");
        // De Morgan first: `not (a and b)` is `not a or not b`; the arithmetic side
        // makes its alternative `True`, which absorbs the whole `or`.
        check(r#"lambda c: c.cat == 5 and not (c.name == "a" and c.qty * 2 > 1)"#, r#"c.cat == 5"#);
        check(r#"lambda c: c.cat == 5 and not (c.name == "a" or c.qty * 2 > 1)"#, r#"c.cat == 5 and c.name != "a""#);
    }

    #[test]
    fn alternatives_keep_what_is_exact() {
        check("lambda c: c.cat == 1 or (c.cat == 2 and c.qty * c.qty > 3)", "c.cat == 1 or c.cat == 2");
        check(r#"lambda c: (c.cat == 1 or c.qty - 1 == 0) and c.name == "x""#, r#"c.name == "x""#);
        // Nothing exact is left: every row.
        check("lambda c: c.qty + 1 > 0", "True");
        check("lambda c: c.cat == 1 or c.qty + 1 > 0", "True");
    }

    #[test]
    fn nan_values_are_inexact() {
        // SQLite binds NaN as NULL: `price != NULL` would lose every row.
        check("lambda c: c.cat == 1 and c.price != nan", "c.cat == 1");
        check("lambda c: c.cat == 1 and c.price in xs", "c.cat == 1");
        check("lambda c: c.cat == 1 and c.price in (1.0, nan)", "c.cat == 1");
    }

    #[test]
    fn spans_are_kept_on_what_stays() {
        let src = "lambda c: c.cat == 5 and c.qty + 1 > 0";
        let lambda = crate::text::parse(src).unwrap_or_else(|e| panic!("{}", e.render(src)));
        let filter = crate::check::filter(&schema(), &lambda.body, &|_| ParamType::Unknown)
            .unwrap_or_else(|e| panic!("{}", e.render(src)));
        let relaxed = superset(&filter, &params());
        let kept = relaxed.filter.unwrap_or_else(|| panic!("a filter is left"));
        assert_eq!(&src[kept.span.start as usize..kept.span.end as usize], "c.cat == 5");
    }
}
