//! `normalise::to_dnf`: each case is an expression and its DNF, one disjunct per
//! line, rendered with the test support's compact printer.

#![allow(clippy::panic)] // Test failures are panics.

mod support;

use std::time::{Duration, Instant};

use memdex_grammar::ErrorKind;
use memdex_grammar::ir::Expr;
use memdex_grammar::normalise::{DEFAULT_DISJUNCT_LIMIT, to_dnf};
use memdex_grammar::span::Span;
use support::*;

#[track_caller]
fn check(e: Expr, expect: &[&str]) {
    let dnf = to_dnf(&e, DEFAULT_DISJUNCT_LIMIT).unwrap_or_else(|err| panic!("to_dnf failed: {err}"));
    let got: Vec<String> = dnf.iter().map(|c| c.iter().map(show).collect::<Vec<_>>().join(" and ")).collect();
    assert_eq!(got, expect, "DNF of {}", show(&e));
}

#[test]
fn leaves_and_conjunctions_are_one_disjunct() {
    check(eq(f("a"), lit(1)), &["c.a == 1"]);
    check(and([eq(f("a"), lit(1)), gt(f("b"), lit(2))]), &["c.a == 1 and c.b > 2"]);
    check(and([and([f("x"), f("y")]), and([f("z")])]), &["c.x and c.y and c.z"]);
}

#[test]
fn or_of_ands_stays_and_nested_or_distributes() {
    check(or([and([f("a"), f("b")]), f("c")]), &["c.a and c.b", "c.c"]);
    check(
        and([or([f("a"), f("b")]), or([f("c"), f("d")]), f("e")]),
        &["c.a and c.c and c.e", "c.a and c.d and c.e", "c.b and c.c and c.e", "c.b and c.d and c.e"],
    );
    check(or([or([f("a"), or([f("b")])]), f("c")]), &["c.a", "c.b", "c.c"]);
}

#[test]
fn negations_are_pushed_to_the_leaves() {
    // De Morgan.
    check(not(and([eq(f("a"), lit(1)), eq(f("b"), lit(2))])), &["c.a != 1", "c.b != 2"]);
    check(not(or([eq(f("a"), lit(1)), eq(f("b"), lit(2))])), &["c.a != 1 and c.b != 2"]);
    // Double negation, == and != swap, `is None` flips.
    check(not(not(f("flag"))), &["c.flag"]);
    check(not(ne(f("x"), lit(1))), &["c.x == 1"]);
    check(not(eq(f("o"), none())), &["c.o != None"]);
    check(not(is_none(f("o"))), &["c.o is not None"]);
    check(not(is_some(f("o"))), &["c.o is None"]);
    check(not(not(not(is_none(f("o"))))), &["c.o is not None"]);
    // No exact negation: the leaf stays negated (`not (a < b)` is not `a >= b` for NaN).
    check(not(lt(f("price"), lit(1.0))), &["not (c.price < 1.0)"]);
    check(not(starts_with(f("s"), lit("m"))), &["not (c.s.startswith(\"m\"))"]);
    check(not(in_items(f("x"), [lit(1), lit(2)])), &["not (c.x in (1, 2))"]);
    check(not(f("flag")), &["not c.flag"]);
    // Through De Morgan into an or of ands.
    check(not(and([or([f("a"), f("b")]), lt(f("x"), lit(3))])), &["not c.a and not c.b", "not (c.x < 3)"]);
}

#[test]
fn literal_booleans_are_simplified() {
    check(and([f("a"), lit(true)]), &["c.a"]);
    check(and([f("a"), lit(false)]), &[]);
    check(or([f("a"), lit(false)]), &["c.a"]);
    check(or([f("a"), lit(true)]), &[""]);
    check(lit(true), &[""]);
    check(lit(false), &[]);
    check(not(lit(false)), &[""]);
    check(and([or([f("a"), lit(false)]), not(lit(false))]), &["c.a"]);
    check(or([and([f("a"), not(lit(true))]), f("b")]), &["c.b"]);
}

#[test]
fn too_many_disjuncts_is_an_error_at_the_whole_expression() {
    // (a1 or b1) and (a2 or b2) and … 7 times: 128 disjuncts > 64.
    let e = at(and_v((0..7).map(|i| or([f(&format!("a{i}")), f(&format!("b{i}"))])).collect()), 3, 99);
    let err = to_dnf(&e, DEFAULT_DISJUNCT_LIMIT).expect_err("128 disjuncts");
    assert_eq!(err.kind, ErrorKind::TooManyDisjuncts { limit: 64 });
    assert_eq!(err.span, Span::new(3, 99));
    // 6 times: exactly 64, accepted.
    let e = and_v((0..6).map(|i| or([f(&format!("a{i}")), f(&format!("b{i}"))])).collect());
    assert_eq!(to_dnf(&e, DEFAULT_DISJUNCT_LIMIT).map(|d| d.len()), Ok(64));
    assert!(to_dnf(&e, 63).is_err());
}

/// 40 nested levels of `(a_i and b_i or c_i) and (…)`: 2^40 disjuncts if built.
/// Must fail fast.
#[test]
fn deep_nesting_is_refused_without_blowing_up() {
    let mut e = eq(f("leaf"), lit(0));
    for i in 0..40 {
        e = and([or([and([eq(f("a"), lit(i)), eq(f("b"), lit(i))]), eq(f("c"), lit(i))]), e]);
    }
    let started = Instant::now();
    let err = to_dnf(&e, DEFAULT_DISJUNCT_LIMIT).expect_err("2^40 disjuncts");
    assert!(matches!(err.kind, ErrorKind::TooManyDisjuncts { .. }));
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());

    // The flat shape: an and of 40 ors of ands.
    let e = and_v((0..40).map(|i| or([and([f("a"), eq(f("x"), lit(i))]), and([f("b"), f("c")])])).collect());
    let started = Instant::now();
    assert!(to_dnf(&e, DEFAULT_DISJUNCT_LIMIT).is_err());
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn large_but_allowed_expressions_keep_every_leaf() {
    // 64 disjuncts of 6 leaves each.
    let e = and_v((0..6).map(|i| or([eq(f("a"), lit(i)), eq(f("b"), lit(i))])).collect());
    let dnf = to_dnf(&e, DEFAULT_DISJUNCT_LIMIT).expect("64 disjuncts");
    assert!(dnf.iter().all(|c| c.len() == 6));
    let distinct: std::collections::HashSet<String> =
        dnf.iter().map(|c| c.iter().map(show).collect::<Vec<_>>().join(" and ")).collect();
    assert_eq!(distinct.len(), 64);
}

#[test]
fn spans_follow_the_source() {
    // not (a == 1) at 0..14 → a != 1 with the not's span; the conjunct keeps its own.
    let e = and([at(not(at(eq(f("a"), lit(1)), 5, 13)), 0, 14), at(gt(f("b"), lit(2)), 19, 26)]);
    let dnf = to_dnf(&e, DEFAULT_DISJUNCT_LIMIT).expect("one disjunct");
    assert_eq!(dnf[0][0].span, Span::new(0, 14));
    assert_eq!(dnf[0][1].span, Span::new(19, 26));
}

mod equivalence {
    //! The DNF means what the expression meant: for random expressions over leaves
    //! with NULLs, NaN and `-0.0` in play, and random rows, `eval` agrees on both.

    use memdex_grammar::eval::matches;
    use memdex_grammar::ir::{Expr, ExprKind};
    use memdex_grammar::normalise::to_dnf;
    use memdex_grammar::span::Span;
    use memdex_grammar::value::Value;
    use proptest::prelude::*;

    use super::support::*;

    fn leaves() -> Vec<Expr> {
        vec![
            eq(f("category_id"), lit(1)),
            ne(f("category_id"), lit(2)),
            lt(f("price"), lit(1.0)),
            ge(f("price"), lit(0.0)),
            eq(f("price"), lit(-0.0)),
            is_none(f("deleted_at")),
            eq(f("deleted_at"), lit(3)),
            ne(f("deleted_at"), none()),
            starts_with(f("first_name"), lit("m")),
            in_items(f("category_id"), [lit(1), lit(3)]),
            f("active"),
            lit(true),
            lit(false),
            gt(add(f("category_id"), lit(i64::MAX)), lit(0)),
        ]
    }

    fn expr() -> impl Strategy<Value = Expr> {
        let leaf = (0..leaves().len()).prop_map(|i| leaves()[i].clone());
        leaf.prop_recursive(5, 40, 3, |inner| {
            prop_oneof![
                inner.clone().prop_map(not),
                prop::collection::vec(inner.clone(), 2..4).prop_map(and_v),
                prop::collection::vec(inner, 2..4).prop_map(or_v),
            ]
        })
    }

    fn row() -> impl Strategy<Value = Vec<Value>> {
        (
            prop_oneof![Just(1i64), Just(2), Just(3)],
            prop_oneof![Just("".to_owned()), Just("m".to_owned()), Just("mark".to_owned()), Just("Mark".to_owned())],
            prop_oneof![Just(f64::NAN), Just(0.0), Just(-0.0), Just(0.5), Just(2.0)],
            prop_oneof![Just(Value::Null), Just(Value::Int(3)), Just(Value::Int(0))],
            any::<bool>(),
        )
            .prop_map(|(category, name, price, deleted, active)| {
                let mut cols = vec![Value::Int(0); item_schema().columns.len()];
                let s = item_schema();
                let mut set = |field: &str, v: Value| cols[s.column_index(field).expect("field")] = v;
                set("category_id", Value::Int(category));
                set("first_name", Value::Text(name));
                set("price", Value::Float(price));
                set("deleted_at", deleted);
                set("active", Value::Bool(active));
                cols
            })
    }

    proptest! {
        #[test]
        fn dnf_is_equivalent(e in expr(), rows in prop::collection::vec(row(), 8)) {
            let Ok(dnf) = to_dnf(&e, 100_000) else { return Ok(()) };
            let as_expr = Expr::new(
                ExprKind::Or(dnf.into_iter().map(|c| Expr::new(ExprKind::And(c), Span::DUMMY)).collect()),
                Span::DUMMY,
            );
            let schema = item_schema();
            let params: Vec<(String, Value)> = vec![];
            for r in rows {
                let col = |i: usize| r[i].clone();
                prop_assert_eq!(
                    matches(&schema, &e, &col, &params),
                    matches(&schema, &as_expr, &col, &params),
                    "{} on {:?}", show(&e), r
                );
            }
        }
    }
}
