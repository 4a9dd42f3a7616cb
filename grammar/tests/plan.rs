//! The index planner: `plan::candidates`, `plan::plan`, `plan::bind`,
//! `plan::node_matches` and `plan::node_of_row`.

#![allow(clippy::panic)] // Test failures are panics.

mod support;

use memdex_grammar::ir::Expr;
use memdex_grammar::normalise::{Conjunction, DEFAULT_DISJUNCT_LIMIT, to_dnf};
use memdex_grammar::plan::{
    Access, BindError, Candidate, CandidateKind, Lookup, LookupValues, NodeRef, Operand, Plan, bind, candidates,
    contradictory, node_matches, node_of_row, plan,
};
use memdex_grammar::span::Span;
use memdex_grammar::value::Value;
use memdex_grammar::{ErrorKind, Schema};
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

// ---------------------------------------------------------------------------------
// plan::plan

fn operand(o: &Operand) -> String {
    match o {
        Operand::Lit(v) => v.to_string(),
        Operand::Param(name) => name.clone(),
    }
}

fn lookup(schema: &Schema, l: &Lookup) -> String {
    let col = &schema.columns[l.column].field;
    match &l.values {
        LookupValues::One(o) => format!("{col}={}", operand(o)),
        LookupValues::Many(os) => format!("{col} in ({})", os.iter().map(operand).collect::<Vec<_>>().join(", ")),
        LookupValues::List(name) => format!("{col} in {name}"),
        LookupValues::Prefix { operand: o, chars } => format!("{col}[:{chars}]={}", operand(o)),
    }
}

/// One line per disjunct: `key id=1` or `index a=1 & b=2`, then ` | ` and the
/// residual (`-` when empty).
fn render(schema: &Schema, plan: &Plan) -> Vec<String> {
    plan.disjuncts
        .iter()
        .map(|d| {
            let access = match &d.access {
                Access::Key(l) => format!("key {}", lookup(schema, l)),
                Access::Index { index, lookups } => {
                    assert_eq!(
                        lookups.iter().map(|l| l.column).collect::<Vec<_>>(),
                        schema.indexes[*index].columns,
                        "lookups follow the index's columns"
                    );
                    format!("index {}", lookups.iter().map(|l| lookup(schema, l)).collect::<Vec<_>>().join(" & "))
                }
            };
            let residual = if d.residual.is_empty() {
                "-".to_owned()
            } else {
                d.residual.iter().map(show).collect::<Vec<_>>().join(" and ")
            };
            format!("{access} | {residual}")
        })
        .collect()
}

fn plan_of(e: &Expr) -> Result<Plan, memdex_grammar::Errors> {
    let schema = item_schema();
    let dnf = to_dnf(e, DEFAULT_DISJUNCT_LIMIT).expect("normalises");
    plan(&schema, &dnf)
}

#[track_caller]
fn check(e: Expr, expect: &[&str]) {
    let schema = item_schema();
    match plan_of(&e) {
        Ok(p) => assert_eq!(render(&schema, &p), expect, "plan of {}", show(&e)),
        Err(errs) => panic!("plan of {} failed: {errs}", show(&e)),
    }
}

/// The planner refuses the query; one error per unindexable disjunct, at these spans.
#[track_caller]
fn check_unindexable(e: Expr, spans: &[(u32, u32)]) -> Vec<String> {
    let errs = plan_of(&e).expect_err("unindexable");
    let got: Vec<(u32, u32)> = errs.iter().map(|e| (e.span.start, e.span.end)).collect();
    assert_eq!(got, spans, "error spans for {}", show(&e));
    errs.iter()
        .map(|e| match &e.kind {
            ErrorKind::Unindexable { message } => message.clone(),
            other => panic!("expected Unindexable, got {other:?}"),
        })
        .collect()
}

#[test]
fn key_access() {
    check(eq(f("id"), lit(5)), &["key id=5 | -"]);
    check(eq(p("k"), f("id")), &["key id=k | -"]);
    check(and([eq(f("id"), lit(5)), eq(f("category_id"), lit(2))]), &["key id=5 | c.category_id == 2"]);
    check(in_items(f("id"), [lit(1), lit(2)]), &["key id in (1, 2) | -"]);
    check(in_param(f("id"), "ids"), &["key id in ids | -"]);
    // The key beats the widest composite index.
    check(
        and([eq(f("cart_id"), lit(1)), eq(f("status"), lit("a")), eq(f("id"), lit(3))]),
        &["key id=3 | c.cart_id == 1 and c.status == \"a\""],
    );
    check(eq(f("id"), lit(1.0)), &["key id=1.0 | -"]);
}

#[test]
fn single_column_indexes() {
    check(eq(f("category_id"), p("cat")), &["index category_id=cat | -"]);
    check(
        and([eq(f("category_id"), p("cat")), gt(f("price"), lit(10.0))]),
        &["index category_id=cat | c.price > 10.0"],
    );
    check(eq(f("category_id"), neg(lit(1))), &["index category_id=-1 | -"]);
    check(is_none(f("deleted_at")), &["index deleted_at=None | -"]);
    check(eq(f("deleted_at"), none()), &["index deleted_at=None | -"]);
    check(in_items(f("category_id"), [lit(1), lit(2), lit(3)]), &["index category_id in (1, 2, 3) | -"]);
    // Two criteria on one column: one names the node, the other filters.
    check(
        and([eq(f("category_id"), lit(1)), eq(f("category_id"), p("c"))]),
        &["index category_id=1 | c.category_id == c"],
    );
}

#[test]
fn ties_prefer_fewer_nodes_then_declaration_order() {
    // Both single-column: declaration order (category_id before deleted_at).
    check(
        and([is_none(f("deleted_at")), eq(f("category_id"), lit(2))]),
        &["index category_id=2 | c.deleted_at is None"],
    );
    // One node (price) beats two (category_id in (1, 2)).
    check(
        and([in_items(f("category_id"), [lit(1), lit(2)]), eq(f("price"), lit(3.0))]),
        &["index price=3.0 | c.category_id in (1, 2)"],
    );
    // Of two criteria on one column, `==` names fewer nodes than `in`.
    check(
        and([in_items(f("category_id"), [lit(1), lit(2)]), eq(f("category_id"), lit(1))]),
        &["index category_id=1 | c.category_id in (1, 2)"],
    );
}

#[test]
fn composite_indexes() {
    check(and([eq(f("cart_id"), lit(1)), eq(f("status"), lit("open"))]), &["index cart_id=1 & status=\"open\" | -"]);
    // Either order in the source; lookups follow the index.
    check(
        and([eq(f("status"), p("s")), gt(f("price"), lit(1.0)), eq(p("cart"), f("cart_id"))]),
        &["index cart_id=cart & status=s | c.price > 1.0"],
    );
    // Only part of the composite: the single-column cart_id index serves.
    check(and([eq(f("cart_id"), lit(1)), ne(f("status"), lit("x"))]), &["index cart_id=1 | c.status != \"x\""]);
    check(eq(f("cart_id"), lit(1)), &["index cart_id=1 | -"]);
    // `in` on both columns: the cartesian product is taken at bind time.
    check(
        and([in_items(f("cart_id"), [lit(1), lit(2)]), in_items(f("status"), [lit("a"), lit("b")])]),
        &["index cart_id in (1, 2) & status in (\"a\", \"b\") | -"],
    );
    check(and([in_param(f("cart_id"), "carts"), eq(f("status"), p("s"))]), &["index cart_id in carts & status=s | -"]);
}

#[test]
fn prefix_indexes() {
    check(starts_with(f("first_name"), lit("m")), &["index first_name[:1]=\"m\" | c.first_name.startswith(\"m\")"]);
    check(
        starts_with(f("first_name"), lit("mark")),
        &["index first_name[:1]=\"mark\" | c.first_name.startswith(\"mark\")"],
    );
    check(starts_with(f("first_name"), p("pat")), &["index first_name[:1]=pat | c.first_name.startswith(pat)"]);
    check(starts_with(f("last_name"), lit("abc")), &["index last_name[:3]=\"abc\" | c.last_name.startswith(\"abc\")"]);
    // Three characters, not three bytes.
    check(starts_with(f("last_name"), lit("éüß")), &["index last_name[:3]=\"éüß\" | c.last_name.startswith(\"éüß\")"]);
    // A full index beats a prefix index.
    check(
        and([starts_with(f("first_name"), lit("m")), eq(f("category_id"), lit(1))]),
        &["index category_id=1 | c.first_name.startswith(\"m\")"],
    );
}

#[test]
fn or_of_indexable_parts() {
    check(
        or([eq(f("category_id"), lit(1)), eq(f("cart_id"), lit(2))]),
        &["index category_id=1 | -", "index cart_id=2 | -"],
    );
    check(
        and([eq(f("category_id"), lit(1)), or([lt(f("price"), lit(2.0)), gt(f("price"), lit(5.0))])]),
        &["index category_id=1 | c.price < 2.0", "index category_id=1 | c.price > 5.0"],
    );
    check(
        or([eq(f("id"), lit(1)), starts_with(f("first_name"), lit("z"))]),
        &["key id=1 | -", "index first_name[:1]=\"z\" | c.first_name.startswith(\"z\")"],
    );
}

#[test]
fn negated_criteria_are_pushed_or_refused() {
    check(not(ne(f("category_id"), lit(1))), &["index category_id=1 | -"]);
    check(not(is_some(f("deleted_at"))), &["index deleted_at=None | -"]);
    check(not(or([ne(f("cart_id"), lit(1)), ne(f("status"), lit("a"))])), &["index cart_id=1 & status=\"a\" | -"]);
    check_unindexable(at(not(eq(f("category_id"), lit(1))), 0, 10), &[(0, 10)]);
    check_unindexable(at(not(in_items(f("category_id"), [lit(1), lit(2)])), 0, 10), &[(0, 10)]);
    check_unindexable(at(not(starts_with(f("first_name"), lit("m"))), 0, 10), &[(0, 10)]);
}

#[test]
fn contradictory_disjuncts_are_dropped() {
    check(and([eq(f("category_id"), lit(1)), eq(f("category_id"), lit(2))]), &[]);
    check(and([eq(f("category_id"), lit(1)), ne(f("category_id"), lit(1))]), &[]);
    check(and([eq(f("category_id"), lit(1)), in_items(f("category_id"), [lit(2), lit(3)])]), &[]);
    check(and([is_none(f("deleted_at")), eq(f("deleted_at"), lit(5))]), &[]);
    // Dropped even when unindexable: it cannot return a row.
    check(and([eq(f("price"), lit(1.0)), eq(f("price"), lit(2.0)), gt(f("id"), lit(0))]), &[]);
    check(
        or([and([eq(f("category_id"), lit(1)), eq(f("category_id"), lit(2))]), eq(f("cart_id"), lit(3))]),
        &["index cart_id=3 | -"],
    );
    check(lit(false), &[]);
    check(and([eq(f("category_id"), lit(1)), lit(false)]), &[]);
}

#[test]
fn unindexable_disjuncts_are_all_reported_at_their_spans() {
    // Only a range on price.
    check_unindexable(at(gt(f("price"), lit(1.0)), 10, 24), &[(10, 24)]);
    // The second alternative of two.
    check_unindexable(
        or([at(eq(f("category_id"), lit(1)), 10, 26), at(gt(f("price"), lit(2.0)), 30, 43)]),
        &[(30, 43)],
    );
    // Both alternatives: two errors; a disjunct's span joins its conjuncts'.
    check_unindexable(
        or([
            and([at(gt(f("price"), lit(1.0)), 10, 20), at(lt(f("price"), lit(5.0)), 25, 35)]),
            at(eq(f("color"), lit("red")), 40, 55),
        ]),
        &[(10, 35), (40, 55)],
    );
    // A prefix index needs a pattern of at least its length.
    check_unindexable(at(starts_with(f("first_name"), lit("")), 0, 5), &[(0, 5)]);
    check_unindexable(at(starts_with(f("last_name"), lit("ab")), 0, 5), &[(0, 5)]);
    // A prefix index is not served by `==` (the macro's rule is the same).
    check_unindexable(at(eq(f("first_name"), lit("mark")), 0, 5), &[(0, 5)]);
    // Half a composite index.
    check_unindexable(at(eq(f("status"), lit("open")), 0, 5), &[(0, 5)]);
    // Field against field, and operands computed from fields.
    check_unindexable(at(eq(f("category_id"), f("cart_id")), 0, 5), &[(0, 5)]);
    check_unindexable(at(eq(f("category_id"), add(f("cart_id"), lit(1))), 0, 5), &[(0, 5)]);
    check_unindexable(at(eq(f("category_id"), add(p("x"), lit(1))), 0, 5), &[(0, 5)]);
    // No condition at all.
    check_unindexable(at(lit(true), 0, 4), &[(0, 0)]);
}

// ---------------------------------------------------------------------------------
// plan::bind

fn bound(e: Expr, params: &[(&str, Value)], limit: usize) -> Result<Vec<NodeRef>, BindError> {
    let schema = item_schema();
    let p = plan_of(&e).expect("plans");
    assert_eq!(p.disjuncts.len(), 1);
    let params: Vec<(String, Value)> = params.iter().map(|(n, v)| ((*n).to_owned(), v.clone())).collect();
    bind(&schema, &p.disjuncts[0], &params, limit)
}

/// Node values per node, `index` checked to be `index` (None: the key).
#[track_caller]
fn check_bind(e: Expr, params: &[(&str, Value)], index: Option<usize>, expect: Vec<Vec<Value>>) {
    let nodes = bound(e.clone(), params, 64).unwrap_or_else(|err| panic!("bind {}: {err}", show(&e)));
    assert!(nodes.iter().all(|n| n.index == index), "{nodes:?}");
    assert_eq!(nodes.into_iter().map(|n| n.values).collect::<Vec<_>>(), expect, "{}", show(&e));
}

fn v(x: impl Into<Value>) -> Value {
    x.into()
}

#[test]
fn bind_names_one_node_per_value_combination() {
    check_bind(eq(f("category_id"), p("cat")), &[("cat", v(5))], Some(0), vec![vec![v(5)]]);
    check_bind(eq(f("id"), lit(7)), &[], None, vec![vec![v(7)]]);
    check_bind(in_items(f("id"), [lit(7), p("k")]), &[("k", v(8))], None, vec![vec![v(7)], vec![v(8)]]);
    // Duplicates collapse.
    check_bind(
        in_items(f("category_id"), [lit(1), p("a"), lit(1)]),
        &[("a", v(2))],
        Some(0),
        vec![vec![v(1)], vec![v(2)]],
    );
    check_bind(in_param(f("category_id"), "ids"), &[("ids", v(vec![3, 1, 3]))], Some(0), vec![vec![v(3)], vec![v(1)]]);
    // An empty list names no node.
    check_bind(in_param(f("category_id"), "ids"), &[("ids", Value::List(vec![]))], Some(0), vec![]);
    // Composite × `in`: the cartesian product, first column varying slowest.
    check_bind(
        and([in_items(f("cart_id"), [lit(1), lit(2)]), in_param(f("status"), "ss")]),
        &[("ss", v(vec!["a", "b"]))],
        Some(2),
        vec![vec![v(1), v("a")], vec![v(1), v("b")], vec![v(2), v("a")], vec![v(2), v("b")]],
    );
}

#[test]
fn bind_gives_values_their_columns_type() {
    // Float without fraction on an integer column: the integer's node.
    check_bind(eq(f("category_id"), lit(5.0)), &[], Some(0), vec![vec![v(5)]]);
    check_bind(eq(f("category_id"), p("x")), &[("x", v(-3.0))], Some(0), vec![vec![v(-3)]]);
    // A fractional float on an integer column equals no row: no node.
    check_bind(eq(f("category_id"), lit(5.5)), &[], Some(0), vec![]);
    check_bind(eq(f("category_id"), lit(1e300)), &[], Some(0), vec![]);
    // Integers on a float column become floats; -0.0 is 0.0; NaN equals nothing.
    check_bind(eq(f("price"), lit(2)), &[], Some(5), vec![vec![v(2.0)]]);
    check_bind(eq(f("price"), p("x")), &[("x", v(-0.0))], Some(5), vec![vec![v(0.0)]]);
    let zero = bound(eq(f("price"), lit(-0.0)), &[], 64).expect("binds");
    assert!(matches!(zero[0].values[..], [Value::Float(x)] if x.is_sign_positive()), "{zero:?}");
    check_bind(in_items(f("price"), [lit(0.0), lit(-0.0)]), &[], Some(5), vec![vec![v(0.0)]]);
    check_bind(eq(f("price"), p("x")), &[("x", v(f64::NAN))], Some(5), vec![]);
    // None: a node on a nullable column, nothing on a non-nullable one.
    check_bind(eq(f("deleted_at"), p("d")), &[("d", Value::Null)], Some(4), vec![vec![Value::Null]]);
    check_bind(eq(f("category_id"), p("d")), &[("d", Value::Null)], Some(0), vec![]);
    // A value of another type equals no row.
    check_bind(eq(f("category_id"), p("d")), &[("d", v("5"))], Some(0), vec![]);
}

#[test]
fn bind_prefixes_by_characters() {
    check_bind(starts_with(f("first_name"), p("pat")), &[("pat", v("mark"))], Some(1), vec![vec![v("m")]]);
    check_bind(starts_with(f("first_name"), p("pat")), &[("pat", v("émile"))], Some(1), vec![vec![v("é")]]);
    check_bind(starts_with(f("last_name"), lit("abcdef")), &[], Some(6), vec![vec![v("abc")]]);
    check_bind(starts_with(f("last_name"), p("pat")), &[("pat", v("日本語です"))], Some(6), vec![vec![v("日本語")]]);
    assert_eq!(
        bound(starts_with(f("first_name"), p("pat")), &[("pat", v(""))], 64),
        Err(BindError::PrefixTooShort { chars: 1 })
    );
    // Two characters of four bytes are still too short for three.
    assert_eq!(
        bound(starts_with(f("last_name"), p("pat")), &[("pat", v("éé"))], 64),
        Err(BindError::PrefixTooShort { chars: 3 })
    );
}

#[test]
fn bind_errors() {
    assert_eq!(bound(eq(f("category_id"), p("cat")), &[], 64), Err(BindError::Unbound("cat".into())));
    assert_eq!(bound(in_param(f("category_id"), "ids"), &[], 64), Err(BindError::Unbound("ids".into())));
    assert_eq!(bound(in_param(f("category_id"), "ids"), &[("ids", v(3))], 64), Err(BindError::NotAList("ids".into())));
    // 3 × 3 = 9 nodes over a limit of 8.
    let e = and([in_param(f("cart_id"), "a"), in_param(f("status"), "b")]);
    let params = [("a", v(vec![1, 2, 3])), ("b", v(vec!["x", "y", "z"]))];
    assert_eq!(bound(e.clone(), &params, 8), Err(BindError::TooManyNodes { count: 9, limit: 8 }));
    assert_eq!(bound(e, &params, 9).map(|n| n.len()), Ok(9));
}

// ---------------------------------------------------------------------------------
// plan::node_matches, plan::node_of_row

/// A row of `item_schema()` with these column values (others default).
fn row(values: &[(&str, Value)]) -> impl Fn(usize) -> Value + use<> {
    let schema = item_schema();
    let mut cols: Vec<Value> = schema
        .columns
        .iter()
        .map(|c| match c.ty {
            _ if c.nullable => Value::Null,
            memdex_grammar::Type::Int => Value::Int(0),
            memdex_grammar::Type::Float => Value::Float(0.0),
            memdex_grammar::Type::Text => Value::Text(String::new()),
            memdex_grammar::Type::Bool => Value::Bool(false),
            other => unreachable!("item_schema has no {other} column"),
        })
        .collect();
    for (field, value) in values {
        cols[schema.column_index(field).expect("known field")] = value.clone();
    }
    move |i| cols[i].clone()
}

fn node(index: Option<usize>, values: Vec<Value>) -> NodeRef {
    NodeRef { index, values }
}

#[test]
fn node_membership() {
    let s = item_schema();
    type Case<'a> = (NodeRef, Vec<(&'a str, Value)>, bool);
    let cases: Vec<Case<'_>> = vec![
        (node(Some(0), vec![v(5)]), vec![("category_id", v(5))], true),
        (node(Some(0), vec![v(5)]), vec![("category_id", v(6))], false),
        (node(None, vec![v(9)]), vec![("id", v(9))], true),
        (node(None, vec![v(9)]), vec![("id", v(8))], false),
        (node(Some(2), vec![v(1), v("a")]), vec![("cart_id", v(1)), ("status", v("a"))], true),
        (node(Some(2), vec![v(1), v("a")]), vec![("cart_id", v(1)), ("status", v("A"))], false),
        (node(Some(4), vec![Value::Null]), vec![], true),
        (node(Some(4), vec![Value::Null]), vec![("deleted_at", v(0))], false),
        (node(Some(4), vec![v(0)]), vec![], false),
        (node(Some(5), vec![v(0.0)]), vec![("price", v(-0.0))], true),
        (node(Some(5), vec![v(f64::NAN)]), vec![("price", v(f64::NAN))], true),
        (node(Some(1), vec![v("m")]), vec![("first_name", v("mark"))], true),
        (node(Some(1), vec![v("m")]), vec![("first_name", v("Mark"))], false),
        (node(Some(1), vec![v("é")]), vec![("first_name", v("émile"))], true),
        (node(Some(6), vec![v("abc")]), vec![("last_name", v("abcd"))], true),
        (node(Some(6), vec![v("abc")]), vec![("last_name", v("ab"))], false),
        (node(Some(6), vec![v("ab")]), vec![("last_name", v("ab"))], true),
        // A node with the wrong number of values matches nothing.
        (node(Some(2), vec![v(1)]), vec![("cart_id", v(1))], false),
        (node(Some(99), vec![v(1)]), vec![], false),
    ];
    for (n, values, expect) in cases {
        assert_eq!(node_matches(&s, &n, &row(&values)), expect, "{n:?} vs {values:?}");
    }
}

#[test]
fn node_of_row_is_the_node_bind_names() {
    let s = item_schema();
    let r = row(&[("category_id", v(5)), ("first_name", v("émile")), ("cart_id", v(2)), ("status", v("ok"))]);
    assert_eq!(node_of_row(&s, 0, &r), node(Some(0), vec![v(5)]));
    assert_eq!(node_of_row(&s, 1, &r), node(Some(1), vec![v("é")]));
    assert_eq!(node_of_row(&s, 2, &r), node(Some(2), vec![v(2), v("ok")]));
    assert_eq!(node_of_row(&s, 4, &r), node(Some(4), vec![Value::Null]));
    let r = row(&[("price", v(-0.0)), ("last_name", v("ab"))]);
    // `Value`'s `==` calls -0.0 and 0.0 equal; the sign must be gone too.
    let zero = node_of_row(&s, 5, &r);
    assert!(matches!(zero.values[..], [Value::Float(x)] if x == 0.0 && x.is_sign_positive()), "{zero:?}");
    assert_eq!(node_of_row(&s, 6, &r), node(Some(6), vec![v("ab")]));

    // What a query binds is where matching rows were filed, and they match it.
    let cases = [
        (eq(f("category_id"), lit(5.0)), row(&[("category_id", v(5))]), 0),
        (eq(f("price"), lit(-0.0)), row(&[("price", v(0.0))]), 5),
        (starts_with(f("first_name"), lit("émi")), row(&[("first_name", v("émile"))]), 1),
        (
            and([eq(f("status"), lit("ok")), eq(f("cart_id"), lit(2))]),
            row(&[("cart_id", v(2)), ("status", v("ok"))]),
            2,
        ),
    ];
    for (e, r, index) in cases {
        let nodes = bound(e.clone(), &[], 64).expect("binds");
        assert_eq!(nodes, vec![node_of_row(&s, index, &r)], "{}", show(&e));
        assert!(node_matches(&s, &nodes[0], &r));
    }
}

#[test]
fn spans_of_planned_disjuncts() {
    let e = or([
        and([at(eq(f("category_id"), lit(1)), 10, 25), at(gt(f("price"), lit(1.0)), 30, 45)]),
        at(eq(f("id"), lit(3)), 50, 60),
    ]);
    let p = plan_of(&e).expect("plans");
    let spans: Vec<Span> = p.disjuncts.iter().map(|d| d.span).collect();
    assert_eq!(spans, [Span::new(10, 45), Span::new(50, 60)]);
    assert_eq!(p.disjuncts[0].conjuncts.len(), 2);
}

mod consistency {
    //! What the nodes and the residual select is what the disjunct selects: for random
    //! conjunctions and rows, `eval(conjunction)` ⇔ the row is in one of the bound
    //! nodes (`node_matches`, and filed there by `node_of_row`) and passes the
    //! residual. A contradictory (dropped) disjunct matches no row.

    use memdex_grammar::eval::matches;
    use memdex_grammar::ir::{Expr, ExprKind};
    use memdex_grammar::normalise::to_dnf;
    use memdex_grammar::plan::{Access, bind, node_matches, node_of_row, plan};
    use memdex_grammar::span::Span;
    use memdex_grammar::value::Value;
    use proptest::prelude::*;

    use super::support::*;

    fn leaves() -> Vec<Expr> {
        vec![
            eq(f("category_id"), lit(1)),
            eq(f("category_id"), lit(2.0)),
            eq(f("category_id"), lit(1.5)),
            eq(f("category_id"), p("cat")),
            in_items(f("category_id"), [lit(1), lit(2), p("cat")]),
            in_param(f("category_id"), "ids"),
            ne(f("category_id"), lit(1)),
            eq(f("id"), lit(1)),
            in_items(f("id"), [lit(1), lit(2)]),
            eq(f("price"), lit(-0.0)),
            eq(f("price"), lit(2)),
            is_none(f("deleted_at")),
            eq(f("deleted_at"), lit(3)),
            is_some(f("deleted_at")),
            starts_with(f("first_name"), lit("m")),
            starts_with(f("first_name"), p("pat")),
            starts_with(f("last_name"), lit("abc")),
            eq(f("cart_id"), lit(1)),
            in_items(f("status"), [lit("a"), lit("b")]),
            eq(f("status"), p("st")),
            gt(f("price"), lit(0.5)),
            not(eq(f("cart_id"), lit(2))),
        ]
    }

    fn conjunction() -> impl Strategy<Value = Expr> {
        prop::collection::vec(0..leaves().len(), 1..4)
            .prop_map(|ix| Expr::new(ExprKind::And(ix.into_iter().map(|i| leaves()[i].clone()).collect()), Span::DUMMY))
    }

    fn row() -> impl Strategy<Value = Vec<Value>> {
        let int = || prop_oneof![Just(1i64), Just(2), Just(3)];
        let text = |a: &'static [&'static str]| prop::sample::select(a).prop_map(|s| Value::Text(s.to_owned()));
        (
            (int(), int(), int()),
            text(&["", "m", "mark", "émile", "Mark"]),
            text(&["ab", "abc", "abcd", "xbc"]),
            text(&["a", "b", "c"]),
            prop_oneof![Just(0.0), Just(-0.0), Just(2.0), Just(f64::NAN), Just(0.7)],
            prop_oneof![Just(Value::Null), Just(Value::Int(3)), Just(Value::Int(1))],
        )
            .prop_map(|((id, category, cart), first, last, status, price, deleted)| {
                let s = item_schema();
                let mut cols = vec![Value::Null; s.columns.len()];
                let mut set = |field: &str, v: Value| cols[s.column_index(field).expect("field")] = v;
                set("id", Value::Int(id));
                set("category_id", Value::Int(category));
                set("cart_id", Value::Int(cart));
                set("first_name", first);
                set("last_name", last);
                set("status", status);
                set("price", Value::Float(price));
                set("deleted_at", deleted);
                set("active", Value::Bool(false));
                set("color", Value::Null);
                cols
            })
    }

    proptest! {
        #[test]
        fn nodes_and_residual_select_the_disjunct(e in conjunction(), rows in prop::collection::vec(row(), 12)) {
            let schema = item_schema();
            let params: Vec<(String, Value)> = vec![
                ("cat".into(), Value::Int(2)),
                ("ids".into(), Value::from(vec![2, 3])),
                ("pat".into(), Value::from("ma")),
                ("st".into(), Value::from("b")),
            ];
            let dnf = to_dnf(&e, 64).expect("a conjunction");
            let Ok(p) = plan(&schema, &dnf) else { return Ok(()) };
            for r in rows {
                let col = |i: usize| r[i].clone();
                let expected = matches(&schema, &e, &col, &params);
                let mut selected = false;
                for d in &p.disjuncts {
                    let nodes = bind(&schema, d, &params, 64).expect("binds");
                    let in_node = nodes.iter().any(|n| node_matches(&schema, n, &col));
                    if let Access::Index { index, .. } = &d.access {
                        let filed = node_of_row(&schema, *index, &col);
                        prop_assert_eq!(in_node, nodes.contains(&filed), "node_of_row vs node_matches");
                    }
                    let residual = Expr::new(ExprKind::And(d.residual.clone()), Span::DUMMY);
                    selected |= in_node && matches(&schema, &residual, &col, &params);
                }
                prop_assert_eq!(selected, expected, "{} on {:?}", show(&e), r);
            }
        }
    }
}

mod text {
    //! The same planner reached from the text form (parse → check → DNF → plan), and
    //! the full wording of unindexable errors, rendered with a caret.

    use memdex_grammar::params::{ParamType, Params};
    use memdex_grammar::value::Value;
    use memdex_grammar::{Access, normalise, prepare_text, text};

    use super::render;
    use super::support::item_schema;

    fn params() -> Vec<(String, Value)> {
        vec![
            ("cat".into(), Value::Int(5)),
            ("ids".into(), Value::from(vec![1, 2])),
            ("pat".into(), Value::from("ma")),
            ("s".into(), Value::from("open")),
        ]
    }

    fn prepared(src: &str) -> Result<memdex_grammar::Prepared, memdex_grammar::Errors> {
        let p = params();
        prepare_text(
            &item_schema(),
            src,
            &|name| ParamType::of(p.get(name)),
            Access::Indexed,
            normalise::DEFAULT_DISJUNCT_LIMIT,
        )
    }

    #[track_caller]
    fn check(src: &str, expect: &[&str]) {
        let p = prepared(src).unwrap_or_else(|e| panic!("{}", e.render(src)));
        let plan = p.plan.expect("indexed access plans");
        assert_eq!(render(&item_schema(), &plan), expect, "{src}");
    }

    fn rendered_errors(src: &str) -> String {
        match prepared(src) {
            Ok(_) => panic!("{src} should be refused"),
            Err(e) => e.render(src),
        }
    }

    #[test]
    fn text_queries_plan_like_ir() {
        check("lambda c: c.category_id == cat and c.price > 10.0", &["index category_id=cat | c.price > 10.0"]);
        check(
            "lambda c: c.cart_id in ids and c.status == s or c.id == 3",
            &["index cart_id in ids & status=s | -", "key id=3 | -"],
        );
        check(
            "lambda c: c.first_name.startswith(pat) and not (c.category_id != 2)",
            &["index category_id=2 | c.first_name.startswith(pat)"],
        );
        check(
            "lambda c: c.deleted_at is None and c.category_id == -1",
            &["index category_id=-1 | c.deleted_at is None"],
        );
        check("lambda c: c.category_id == 1 and c.category_id == 2 or c.cart_id == 4", &["index cart_id=4 | -"]);
        check(
            "lambda c: not (c.cart_id != 1 or c.status != 'a') and c.price < 2.0",
            &["index cart_id=1 & status=\"a\" | c.price < 2.0"],
        );
    }

    #[test]
    fn unindexable_messages() {
        insta::assert_snapshot!(
            "unindexable_range",
            rendered_errors("lambda c: c.category_id == cat or c.price > 10.0 and c.price < 20.0")
        );
        insta::assert_snapshot!(
            "unindexable_two_alternatives",
            rendered_errors("lambda c: c.status == 'open' and c.color == 'red' or c.last_name.startswith('ab')")
        );
        insta::assert_snapshot!(
            "unindexable_prefix_needs_an_index",
            rendered_errors("lambda c: c.status.startswith(s)")
        );
        insta::assert_snapshot!("unindexable_nothing", rendered_errors("lambda c: True"));
        insta::assert_snapshot!("unindexable_negated", rendered_errors("lambda c: not (c.category_id in (1, 2))"));
    }

    #[test]
    fn messages_print_the_users_parameter() {
        let src = "lambda item: item.price > 1.0";
        let lambda = text::parse(src).expect("parses");
        let dnf = normalise::to_dnf(&lambda.body, 64).expect("normalises");
        let errs = memdex_grammar::plan::plan_with_param(&item_schema(), &dnf, &lambda.param).expect_err("refused");
        let message = errs.to_string();
        assert!(message.contains("serves `item.price > 1.0`"), "{message}");
        assert!(message.contains("(indexes: id (key), category_id, first_name (prefix 1), (cart_id, status), cart_id, deleted_at, price, last_name (prefix 3))"), "{message}");
    }
}
