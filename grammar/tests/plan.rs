//! The index planner: `plan::candidates`, `plan::plan`, `plan::bind`,
//! `plan::node_matches` and `plan::node_of_row`.

mod support;

use memdex_grammar::ir::Expr;
use memdex_grammar::normalise::{Conjunction, DEFAULT_DISJUNCT_LIMIT, to_dnf};
use memdex_grammar::plan::{Candidate, CandidateKind, candidates, contradictory};
use support::*;

fn conjunction(e: Expr) -> Conjunction {
    let mut dnf = to_dnf(&e, DEFAULT_DISJUNCT_LIMIT).expect("normalises");
    assert_eq!(dnf.len(), 1, "one disjunct expected");
    dnf.remove(0)
}

#[track_caller]
fn check_candidates(e: Expr, expect: &[(&str, CandidateKind)]) {
    let got = candidates(&conjunction(e));
    let expect: Vec<Candidate> =
        expect.iter().map(|(field, kind)| Candidate { field: (*field).to_owned(), kind: *kind }).collect();
    assert_eq!(got, expect);
}

#[test]
fn candidates_are_equality_criteria_on_literals_and_params() {
    use CandidateKind::*;
    check_candidates(eq(f("a"), lit(1)), &[("a", Eq)]);
    check_candidates(eq(p("x"), f("a")), &[("a", Eq)]);
    check_candidates(eq(f("a"), neg(lit(1))), &[("a", Eq)]);
    check_candidates(is_none(f("o")), &[("o", Eq)]);
    check_candidates(eq(f("o"), none()), &[("o", Eq)]);
    check_candidates(in_items(f("a"), [lit(1), p("y")]), &[("a", In)]);
    check_candidates(in_param(f("a"), "ids"), &[("a", In)]);
    check_candidates(starts_with(f("s"), lit("ab")), &[("s", Prefix { literal_chars: Some(2) })]);
    check_candidates(starts_with(f("s"), lit("éü")), &[("s", Prefix { literal_chars: Some(2) })]);
    check_candidates(starts_with(f("s"), p("pat")), &[("s", Prefix { literal_chars: None })]);
    check_candidates(
        and([eq(f("a"), lit(1)), gt(f("b"), lit(2)), in_items(f("c"), [lit(3)])]),
        &[("a", Eq), ("c", In)],
    );
    // `not (x != 1)` is `x == 1` after normalisation: a criterion.
    check_candidates(not(ne(f("x"), lit(1))), &[("x", Eq)]);
}

#[test]
fn non_criteria_are_not_candidates() {
    for e in [
        ne(f("a"), lit(1)),
        lt(f("a"), lit(1)),
        eq(f("a"), f("b")),
        eq(f("a"), add(p("x"), lit(1))),
        eq(add(f("a"), lit(1)), lit(2)),
        eq(lower(f("s")), lit("x")),
        ieq(f("s"), lit("x")),
        is_some(f("o")),
        not(in_items(f("a"), [lit(1), lit(2)])),
        in_items(f("a"), [lit(1), f("b")]),
        not(starts_with(f("s"), lit("m"))),
        ends_with(f("s"), lit("m")),
        contains(f("s"), lit("m")),
        starts_with(f("s"), f("t")),
        not(lt(f("a"), lit(1))),
        f("flag"),
    ] {
        let c = conjunction(e.clone());
        assert_eq!(candidates(&c), vec![], "{}", show(&e));
    }
}

#[test]
fn contradictions_on_literals() {
    let yes = [
        and([eq(f("x"), lit(1)), eq(f("x"), lit(2))]),
        and([eq(f("x"), lit(1)), ne(f("x"), lit(1))]),
        and([eq(f("x"), lit(1)), in_items(f("x"), [lit(2), lit(3)])]),
        and([is_none(f("x")), eq(f("x"), lit(5))]),
        and([is_none(f("x")), is_some(f("x"))]),
        and([in_items(f("x"), [lit(1), lit(2)]), in_items(f("x"), [lit(3)])]),
        and([in_items(f("x"), [lit(1), lit(2)]), ne(f("x"), lit(1)), ne(f("x"), lit(2))]),
        eq(f("x"), lit(f64::NAN)),
        and([eq(lit(1), f("x")), eq(f("x"), lit(1.5))]),
    ];
    for e in yes {
        assert!(contradictory(&conjunction(e.clone())), "{} is contradictory", show(&e));
    }
    let no = [
        and([eq(f("x"), lit(1)), eq(f("x"), lit(1.0))]),
        and([eq(f("x"), lit(1)), eq(f("y"), lit(2))]),
        and([eq(f("x"), lit(1)), ne(f("x"), lit(2))]),
        and([eq(f("x"), lit(1)), in_items(f("x"), [lit(1), lit(3)])]),
        and([eq(f("x"), p("a")), eq(f("x"), p("b"))]),
        and([eq(f("x"), lit(1)), in_items(f("x"), [p("a")])]),
        and([in_items(f("x"), [lit(1), lit(2)]), ne(f("x"), lit(1))]),
        and([eq(f("x"), lit(-0.0)), eq(f("x"), lit(0.0))]),
        and([is_none(f("x")), ne(f("x"), lit(5))]),
    ];
    for e in no {
        assert!(!contradictory(&conjunction(e.clone())), "{} is satisfiable", show(&e));
    }
}
