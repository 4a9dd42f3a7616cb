//! `eval::matches` / `eval::value`: Rust's semantics for every row of the language,
//! NULLs, Unicode, `-0.0`, NaN, overflow and case included. Each case is a filter,
//! a row (columns not named keep a default: 0, 0.0, "", false, None), and the answer
//! Rust would give.

#![allow(clippy::panic)] // Test failures are panics.

mod support;

use memdex_grammar::eval::{Resolved, matches, matches_resolved, value};
use memdex_grammar::ir::Expr;
use memdex_grammar::value::{Type, Value};
use support::*;

fn row(values: &[(&str, Value)]) -> Vec<Value> {
    let schema = item_schema();
    let mut cols: Vec<Value> = schema
        .columns
        .iter()
        .map(|c| match c.ty {
            _ if c.nullable => Value::Null,
            Type::Int => Value::Int(0),
            Type::Float => Value::Float(0.0),
            Type::Text => Value::Text(String::new()),
            Type::Bool => Value::Bool(false),
            other => unreachable!("item_schema has no {other} column"),
        })
        .collect();
    for (field, value) in values {
        cols[schema.column_index(field).expect("known field")] = value.clone();
    }
    cols
}

fn params() -> Vec<(String, Value)> {
    vec![
        ("cat".into(), Value::Int(5)),
        ("ids".into(), Value::from(vec![1, 2, 3])),
        ("names".into(), Value::from(vec!["a", "é"])),
        ("empty".into(), Value::List(vec![])),
        ("none".into(), Value::Null),
        ("pat".into(), Value::from("ma")),
        ("big".into(), Value::Int(i64::MAX)),
    ]
}

#[track_caller]
fn check(e: Expr, values: &[(&str, Value)], expect: bool) {
    let schema = item_schema();
    let cols = row(values);
    let got = matches(&schema, &e, &|i| cols[i].clone(), &params());
    assert_eq!(got, expect, "{} on {values:?}", show(&e));
    // The same with the fields and parameters resolved beforehand, and with a
    // resolution of another filter (whose names it must not take for these).
    let resolved = Resolved::new(&schema, &e, &params());
    let got = matches_resolved(&schema, &e, &resolved, &|i| cols[i].clone(), &params());
    assert_eq!(got, expect, "resolved: {} on {values:?}", show(&e));
    let other = Resolved::new(&schema, &e.clone(), &params());
    let got = matches_resolved(&schema, &e, &other, &|i| cols[i].clone(), &params());
    assert_eq!(got, expect, "another filter's resolution: {} on {values:?}", show(&e));
}

#[track_caller]
fn check_value(e: Expr, values: &[(&str, Value)], expect: Value) {
    let schema = item_schema();
    let cols = row(values);
    let got = value(&schema, &e, &|i| cols[i].clone(), &params());
    assert_eq!(got, expect, "{} on {values:?}", show(&e));
}

fn v(x: impl Into<Value>) -> Value {
    x.into()
}

#[test]
fn comparisons() {
    let r = [("category_id", v(5)), ("price", v(2.5))];
    check(eq(f("category_id"), lit(5)), &r, true);
    check(eq(f("category_id"), p("cat")), &r, true);
    check(ne(f("category_id"), lit(5)), &r, false);
    check(lt(f("category_id"), lit(6)), &r, true);
    check(le(f("category_id"), lit(5)), &r, true);
    check(gt(f("category_id"), lit(5)), &r, false);
    check(ge(f("category_id"), lit(5)), &r, true);
    check(gt(f("price"), lit(2.0)), &r, true);
    // Integer meets float: numerically, exactly.
    check(eq(f("price"), lit(2)), &[("price", v(2.0))], true);
    check(lt(f("category_id"), lit(5.5)), &r, true);
    check(eq(f("id"), lit(9_007_199_254_740_992.0)), &[("id", v(9_007_199_254_740_993_i64))], false);
    check(eq(lit(5), f("category_id")), &r, true);
}

#[test]
fn floats_zero_and_nan() {
    check(eq(f("price"), lit(0.0)), &[("price", v(-0.0))], true);
    check(lt(f("price"), lit(0.0)), &[("price", v(-0.0))], false);
    let nan = [("price", v(f64::NAN))];
    check(eq(f("price"), f("price")), &nan, false);
    check(ne(f("price"), f("price")), &nan, true);
    check(lt(f("price"), lit(1.0)), &nan, false);
    check(ge(f("price"), lit(1.0)), &nan, false);
    // `not (x < 1)` is not `x >= 1`.
    check(not(lt(f("price"), lit(1.0))), &nan, true);
    check(gt(f("price"), lit(1e308)), &[("price", v(f64::INFINITY))], true);
}

#[test]
fn nulls_are_rusts_options() {
    let null = [("deleted_at", Value::Null)];
    let some = [("deleted_at", v(3))];
    check(eq(f("deleted_at"), none()), &null, true);
    check(eq(f("deleted_at"), none()), &some, false);
    check(eq(f("deleted_at"), lit(3)), &null, false);
    check(ne(f("deleted_at"), lit(3)), &null, true);
    check(ne(f("deleted_at"), lit(3)), &some, false);
    check(eq(f("deleted_at"), p("none")), &null, true);
    check(is_none(f("deleted_at")), &null, true);
    check(is_none(f("deleted_at")), &some, false);
    check(is_some(f("deleted_at")), &some, true);
    check(is_some(f("deleted_at")), &null, false);
    // Ordering against None is false either way round.
    check(lt(f("deleted_at"), lit(5)), &null, false);
    check(ge(f("deleted_at"), lit(5)), &null, false);
    check(gt(lit(5), f("deleted_at")), &null, false);
    // None in a list.
    check(in_items(f("deleted_at"), [lit(1), none()]), &null, true);
    check(in_items(f("deleted_at"), [lit(1), lit(2)]), &null, false);
}

#[test]
fn boolean_connectives() {
    let r = [("category_id", v(5)), ("active", v(true))];
    check(and([eq(f("category_id"), lit(5)), f("active")]), &r, true);
    check(and([eq(f("category_id"), lit(5)), not(f("active"))]), &r, false);
    check(or([eq(f("category_id"), lit(4)), f("active")]), &r, true);
    check(or([eq(f("category_id"), lit(4)), lit(false)]), &r, false);
    check(not(not(f("active"))), &r, true);
    check(eq(f("active"), lit(true)), &r, true);
    check(lit(true), &r, true);
    check(lit(false), &r, false);
}

#[test]
fn string_tests_are_byte_exact_and_case_sensitive() {
    let r = [("first_name", v("Mark_50%")), ("last_name", v("Ünïcödé"))];
    check(starts_with(f("first_name"), lit("Ma")), &r, true);
    check(starts_with(f("first_name"), lit("ma")), &r, false);
    check(starts_with(f("first_name"), lit("")), &r, true);
    check(ends_with(f("first_name"), lit("50%")), &r, true);
    check(ends_with(f("first_name"), lit("_")), &r, false);
    check(contains(f("first_name"), lit("k_5")), &r, true);
    check(contains(f("first_name"), lit("K_5")), &r, false);
    check(contains(f("first_name"), lit("%")), &r, true);
    check(starts_with(f("last_name"), lit("Ün")), &r, true);
    check(starts_with(f("last_name"), lit("ün")), &r, false);
    check(starts_with(f("first_name"), p("pat")), &[("first_name", v("mark"))], true);
    // Strings order by bytes: "Z" < "a" < "é".
    check(lt(f("first_name"), lit("a")), &[("first_name", v("Z"))], true);
    check(lt(f("first_name"), lit("é")), &[("first_name", v("z"))], true);
    check(gt(f("first_name"), lit("abc")), &[("first_name", v("abd"))], true);
    // Equality is exact: no normalisation, no trimming.
    check(eq(f("first_name"), lit("e\u{301}")), &[("first_name", v("é"))], false);
    check(eq(f("first_name"), lit("a ")), &[("first_name", v("a"))], false);
}

#[test]
fn lowercase_and_ascii_case_insensitive_equality() {
    let r = [("first_name", v("ÉMILE Ǆ"))];
    // to_lowercase is Unicode-aware.
    check(eq(lower(f("first_name")), lit("émile ǆ")), &r, true);
    // eq_ignore_ascii_case folds ASCII only.
    check(ieq(f("first_name"), lit("émile Ǆ")), &r, false);
    check(ieq(f("first_name"), lit("ÉmILe Ǆ")), &r, true);
    check(ieq(f("status"), lit("OPEN")), &[("status", v("open"))], true);
    check(ieq(f("status"), lit("OPEN ")), &[("status", v("open"))], false);
    check(eq(lower(f("status")), lit("i̇")), &[("status", v("İ"))], true);
}

#[test]
fn length_counts_bytes() {
    check(eq(len(f("first_name")), lit(2)), &[("first_name", v("é"))], true);
    check(eq(len(f("first_name")), lit(0)), &[], true);
    check(gt(len(f("first_name")), lit(3)), &[("first_name", v("日本"))], true);
    check_value(len(f("first_name")), &[("first_name", v("日本"))], v(6));
}

#[test]
fn membership() {
    let r = [("category_id", v(2)), ("first_name", v("é"))];
    check(in_items(f("category_id"), [lit(1), lit(2)]), &r, true);
    check(in_items(f("category_id"), [lit(1), p("cat")]), &r, false);
    check(in_param(f("category_id"), "ids"), &r, true);
    check(in_param(f("category_id"), "empty"), &r, false);
    check(in_param(f("first_name"), "names"), &r, true);
    check(not(in_param(f("category_id"), "ids")), &r, false);
    // A parameter that is not a list matches nothing.
    check(in_param(f("category_id"), "cat"), &r, false);
    check(in_items(f("price"), [lit(0)]), &[("price", v(-0.0))], true);
}

#[test]
fn integer_arithmetic_is_checked() {
    let r = [("category_id", v(7)), ("cart_id", v(-7)), ("price", v(1.5))];
    check_value(add(f("category_id"), lit(1)), &r, v(8));
    check_value(sub(f("category_id"), lit(10)), &r, v(-3));
    check_value(mul(f("category_id"), lit(3)), &r, v(21));
    // Division truncates toward zero; remainder takes the dividend's sign.
    check_value(div(f("category_id"), lit(2)), &r, v(3));
    check_value(div(f("cart_id"), lit(2)), &r, v(-3));
    check_value(rem(f("cart_id"), lit(2)), &r, v(-1));
    check_value(neg(f("cart_id")), &r, v(7));
    check_value(mul(f("price"), lit(2.0)), &r, v(3.0));
    check_value(add(f("price"), lit(1)), &r, v(2.5));
    // Where Rust panics: undefined, so the value is None and every comparison false.
    let max = [("category_id", v(i64::MAX)), ("cart_id", v(i64::MIN))];
    check_value(add(f("category_id"), lit(1)), &max, Value::Null);
    check_value(add(f("category_id"), p("big")), &max, Value::Null);
    check_value(sub(f("cart_id"), lit(1)), &max, Value::Null);
    check_value(mul(f("category_id"), lit(2)), &max, Value::Null);
    check_value(neg(f("cart_id")), &max, Value::Null);
    check_value(div(f("cart_id"), lit(-1)), &max, Value::Null);
    check_value(rem(f("cart_id"), lit(-1)), &max, Value::Null);
    check_value(div(f("category_id"), lit(0)), &r, Value::Null);
    check_value(rem(f("category_id"), lit(0)), &r, Value::Null);
    check(gt(add(f("category_id"), lit(1)), lit(0)), &max, false);
    check(eq(add(f("category_id"), lit(1)), none()), &max, false);
    check(ne(add(f("category_id"), lit(1)), lit(0)), &max, false);
    check(is_none(div(f("category_id"), lit(0))), &r, false);
    check(in_items(div(f("category_id"), lit(0)), [lit(1)]), &r, false);
    // A float result that is not finite is undefined, as integer overflow is (the
    // SQL cannot reproduce IEEE's inf and NaN; see eval's module doc).
    check_value(div(f("price"), lit(0.0)), &r, Value::Null);
    check(not(gt(div(f("price"), lit(0.0)), lit(0.0))), &r, true);
    check_value(mul(f("price"), lit(f64::MAX)), &r, Value::Null);
    check_value(div(f("price"), lit(f64::INFINITY)), &r, v(0.0));
    // Arithmetic with None is undefined too (Rust would not compile it).
    check_value(add(f("deleted_at"), lit(1)), &[], Value::Null);
    check(lt(add(f("category_id"), lit(1)), lit(9)), &r, true);
}

#[test]
fn unbound_parameters_and_aggregates_never_panic() {
    check(eq(f("category_id"), p("nope")), &[], false);
    check(ne(f("category_id"), p("nope")), &[], false);
    check(in_param(f("category_id"), "nope"), &[], false);
    check_value(p("nope"), &[], Value::Null);
    check(eq(f("no_such_field"), lit(1)), &[], false);
}

/// Equality of every kind of value, including the column types the language has no
/// literal for (bytes, instants, UUIDs, which arrive as bound values): equal when the
/// values are, unequal otherwise, and never equal across kinds.
#[test]
fn values_of_every_kind_compare_by_value() {
    use memdex_grammar::eval::values_equal;
    let cases = [
        (Value::Bool(true), Value::Bool(true), Value::Bool(false)),
        (Value::Text("é".into()), Value::Text("é".into()), Value::Text("e".into())),
        (Value::Bytes(vec![0, 255]), Value::Bytes(vec![0, 255]), Value::Bytes(vec![0, 254])),
        (Value::Timestamp(-5), Value::Timestamp(-5), Value::Timestamp(5)),
        (Value::Uuid([7; 16]), Value::Uuid([7; 16]), Value::Uuid([8; 16])),
        (Value::from(vec![1, 2]), Value::from(vec![1, 2]), Value::from(vec![2, 1])),
    ];
    for (value, same, other) in &cases {
        assert!(values_equal(value, same), "{value:?} == {same:?}");
        assert!(!values_equal(value, other), "{value:?} != {other:?}");
    }
    assert!(!values_equal(&Value::Uuid([0; 16]), &Value::Bytes(vec![0; 16])), "kinds differ");
    assert!(!values_equal(&Value::Timestamp(1), &Value::Int(1)), "kinds differ");
}

/// Ordering of every kind of value Rust orders: by value (text and bytes by their
/// bytes, instants by time, UUIDs by their bytes), and no order across kinds.
#[test]
fn values_of_every_kind_order_by_value() {
    use memdex_grammar::eval::values_cmp;
    use std::cmp::Ordering::{Greater, Less};
    let cases = [
        (Value::Bool(false), Value::Bool(true)),
        (Value::Text("Z".into()), Value::Text("a".into())),
        (Value::Bytes(vec![1, 255]), Value::Bytes(vec![2])),
        (Value::Timestamp(-5), Value::Timestamp(5)),
        (Value::Uuid([7; 16]), Value::Uuid([8; 16])),
        (Value::Int(i64::MAX - 1), Value::Float(9.3e18)),
    ];
    for (small, large) in &cases {
        assert_eq!(values_cmp(small, large), Some(Less), "{small:?} < {large:?}");
        assert_eq!(values_cmp(large, small), Some(Greater), "{large:?} > {small:?}");
    }
    assert_eq!(values_cmp(&Value::Uuid([0; 16]), &Value::Bytes(vec![1])), None, "kinds differ");
}

/// Integers against floats exactly, at the edges of `i64`: -2^63 is both an `i64`
/// and a float, 2^63 only a float, and 2^53 + 1 no float at all.
#[test]
fn integers_and_floats_compare_exactly_at_the_edges() {
    use memdex_grammar::eval::{values_cmp, values_equal};
    use std::cmp::Ordering::{Equal, Greater, Less};
    let two_63 = 9_223_372_036_854_775_808.0_f64;
    for (int, float, order) in [
        (i64::MIN, -two_63, Equal),
        (i64::MIN + 1, -two_63, Greater),
        (i64::MAX, two_63, Less),
        ((1 << 53) + 1, 9_007_199_254_740_992.0, Greater),
        (-3, -2.5, Less),
        (2, 2.0, Equal),
    ] {
        assert_eq!(values_cmp(&Value::Int(int), &Value::Float(float)), Some(order), "{int} vs {float}");
        assert_eq!(values_cmp(&Value::Float(float), &Value::Int(int)), Some(order.reverse()), "{float} vs {int}");
        assert_eq!(values_equal(&Value::Int(int), &Value::Float(float)), order == Equal, "{int} == {float}");
    }
}
