//! `explain::explain` and its `Display`: access words, node key templates with
//! `{param}` holes, residuals, round trips.

#![allow(clippy::panic)] // Test failures are panics.

mod support;

use memdex_grammar::explain::{Explain, explain};
use memdex_grammar::ir::Expr;
use memdex_grammar::keys::KeySpace;
use memdex_grammar::normalise::{DEFAULT_DISJUNCT_LIMIT, to_dnf};
use memdex_grammar::plan::plan_with_param;
use memdex_grammar::value::Value;
use support::*;

fn keys() -> KeySpace {
    KeySpace::new("memdex", &item_schema(), 0)
}

/// The key prefix every key of `item_schema()` starts with.
fn prefix() -> String {
    let k = keys().object(&Value::Int(0));
    k[..k.len() - 1].to_owned()
}

fn explained(e: &Expr) -> Explain {
    let schema = item_schema();
    let dnf = to_dnf(e, DEFAULT_DISJUNCT_LIMIT).expect("normalises");
    let plan = plan_with_param(&schema, &dnf, "c").expect("plans");
    explain(&schema, Some(&plan), &keys(), "SELECT …".into(), "c")
}

/// Per disjunct: (access, key template without the common prefix, residual).
#[track_caller]
fn check(e: Expr, round_trips: u32, expect: &[(&str, &str, Option<&str>)]) {
    let x = explained(&e);
    let p = prefix();
    let got: Vec<(String, String, Option<String>)> =
        x.disjuncts.iter().map(|d| (d.access.clone(), d.key_template.replace(&p, "…:"), d.residual.clone())).collect();
    let expect: Vec<(String, String, Option<String>)> =
        expect.iter().map(|(a, k, r)| ((*a).into(), (*k).into(), r.map(Into::into))).collect();
    assert_eq!(got, expect, "{}", show(&e));
    assert_eq!(x.hot_round_trips, round_trips, "{}", show(&e));
}

#[test]
fn access_words_and_key_templates() {
    check(
        and([eq(f("category_id"), p("cat")), gt(f("price"), lit(10.0))]),
        2,
        &[("index category_id", "…:category_id={cat}", Some("c.price > 10.0"))],
    );
    check(eq(f("id"), lit(5)), 1, &[("key id", "…:5", None)]);
    check(eq(f("id"), p("k")), 1, &[("key id", "…:{k}", None)]);
    check(in_items(f("id"), [lit(5), lit(6), lit(5)]), 1, &[("key id", "…:5 …:6", None)]);
    check(
        and([eq(f("cart_id"), lit(1)), eq(f("status"), p("s"))]),
        2,
        &[("index (cart_id, status)", "…:cart_id=1&status={s}", None)],
    );
    check(
        and([in_items(f("cart_id"), [lit(1), lit(2)]), in_items(f("status"), [lit("a b"), lit("c")])]),
        2,
        &[(
            "index (cart_id, status)",
            "…:cart_id=1&status=a%20b …:cart_id=1&status=c …:cart_id=2&status=a%20b …:cart_id=2&status=c",
            None,
        )],
    );
    check(in_param(f("category_id"), "ids"), 2, &[("index category_id", "…:category_id={ids[*]}", None)]);
    check(
        starts_with(f("first_name"), lit("mark")),
        2,
        &[("index first_name (prefix 1)", "…:first_name[:1]=m", Some("c.first_name.startswith(\"mark\")"))],
    );
    check(
        starts_with(f("last_name"), p("pat")),
        2,
        &[("index last_name (prefix 3)", "…:last_name[:3]={pat}", Some("c.last_name.startswith(pat)"))],
    );
    // Literals take the column's type, as bind gives them.
    check(eq(f("price"), lit(2)), 2, &[("index price", "…:price=2.0", None)]);
    check(eq(f("category_id"), lit(5.5)), 2, &[("index category_id", "(no node: no row can match)", None)]);
    // Many literals: the first six keys, then an ellipsis.
    check(
        in_items(f("category_id"), [lit(1), lit(2), lit(3), lit(4), lit(5), lit(6), lit(7)]),
        2,
        &[(
            "index category_id",
            "…:category_id=1 …:category_id=2 …:category_id=3 …:category_id=4 …:category_id=5 …:category_id=6 …",
            None,
        )],
    );
}

#[test]
fn round_trips_per_plan_shape() {
    // Key and index disjuncts together: nodes first, then objects.
    check(
        or([eq(f("id"), lit(1)), eq(f("category_id"), lit(2))]),
        2,
        &[("key id", "…:1", None), ("index category_id", "…:category_id=2", None)],
    );
    check(or([eq(f("id"), lit(1)), eq(f("id"), p("k"))]), 1, &[("key id", "…:1", None), ("key id", "…:{k}", None)]);
    // Contradictory: nothing to read.
    let x = explained(&and([eq(f("category_id"), lit(1)), eq(f("category_id"), lit(2))]));
    assert!(x.disjuncts.is_empty());
    assert_eq!(x.hot_round_trips, 0);
    assert!(!x.scan);
    // A scan has no plan.
    let x = explain(&item_schema(), None, &keys(), "SELECT * FROM item".into(), "c");
    assert_eq!((x.hot_round_trips, x.scan, x.disjuncts.len()), (0, true, 0));
}

#[test]
fn display() {
    let e = or([
        and([eq(f("category_id"), p("cat")), gt(f("price"), lit(10.0))]),
        and([in_items(f("cart_id"), [lit(1), lit(2)]), eq(f("status"), lit("open"))]),
        eq(f("id"), p("k")),
    ]);
    let text = explained(&e).to_string().replace(&prefix(), "memdex:item:HASH:0:");
    insta::assert_snapshot!(text);

    let x = explain(&item_schema(), None, &keys(), "SELECT \"id\" FROM \"item\" WHERE \"price\" < ?".into(), "c");
    insta::assert_snapshot!("scan", x.to_string());
    let x = explained(&and([eq(f("category_id"), lit(1)), ne(f("category_id"), lit(1))]));
    insta::assert_snapshot!("contradiction", x.to_string());
}
