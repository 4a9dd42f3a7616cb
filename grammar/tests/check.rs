//! The checker against a sample schema: accepted filters (printed after rewriting),
//! rejected filters (rendered errors, insta snapshots), and aggregates.

use memdex_grammar::{ErrorKind, ParamType, Schema, Type, check, print, text};

fn item_schema() -> Schema {
    Schema::new("Item", "item")
        .column("id", Type::Int, false)
        .column("category_id", Type::Int, false)
        .column("first_name", Type::Text, false)
        .column("price", Type::Float, false)
        .column("deleted_at", Type::Int, true)
        .column("nickname", Type::Text, true)
        .column("active", Type::Bool, false)
        .key("id")
        .index(&["category_id"], None)
        .index(&["first_name"], Some(1))
}

fn param_types(name: &str) -> ParamType {
    match name {
        "cat" => ParamType::Scalar(Type::Int),
        "name" => ParamType::Scalar(Type::Text),
        "limit" => ParamType::Scalar(Type::Float),
        "ids" => ParamType::List(Some(Type::Int)),
        "empty" => ParamType::List(None),
        "nothing" => ParamType::Null,
        "captured" => ParamType::Unknown,
        _ => ParamType::Missing,
    }
}

/// Parses and checks `src` as a filter: the checked body printed back, or the
/// rendered errors.
fn filter(src: &str) -> String {
    let lambda = match text::parse(src) {
        Ok(l) => l,
        Err(e) => return format!("PARSE ERROR\n{}", e.render(src)),
    };
    match check::filter(&item_schema(), &lambda.body, &param_types) {
        Ok(checked) => format!("ok: {}", print::expr(&checked, &lambda.param)),
        Err(e) => e.render(src),
    }
}

/// Checks each input as a filter and snapshots the results together.
fn check_filters(name: &str, inputs: &[&str]) {
    let text: Vec<String> = inputs.iter().map(|s| format!("{s}\n{}\n", filter(s))).collect();
    insta::assert_snapshot!(name, text.join("\n"));
}

/// The error kinds a filter produces (empty when accepted).
fn kinds(src: &str) -> Vec<ErrorKind> {
    let Ok(lambda) = text::parse(src) else { return vec![ErrorKind::Syntax { expected: String::new() }] };
    match check::filter(&item_schema(), &lambda.body, &param_types) {
        Ok(_) => vec![],
        Err(e) => e.0.into_iter().map(|e| e.kind).collect(),
    }
}

#[test]
fn accepted_filters() {
    check_filters(
        "accepted_filters",
        &[
            "lambda c: c.category_id == cat and c.price > 10.0 and c.first_name.startswith('m')",
            "lambda c: c.price > 10",
            "lambda c: c.price * 2 + 1 >= limit",
            "lambda c: c.price in (1, 2.5)",
            "lambda c: c.category_id in ids or c.category_id in empty",
            "lambda c: c.deleted_at is None and c.nickname is not None",
            "lambda c: c.deleted_at == None or c.deleted_at == 5 or c.deleted_at != nothing",
            "lambda c: 'x' in c.first_name and c.first_name.lower().endswith(name.lower())",
            "lambda c: c.first_name == name or 'x' in name",
            "lambda c: ieq(c.first_name, name) and len(c.first_name) < 10",
            "lambda c: c.category_id == captured and captured",
            "lambda c: c.active and not c.active == False",
            "lambda c: c.price > cat",
            "lambda c: c.price > -(5) and c.price in (-1, 2)",
            "lambda c: -c.category_id % 3 == 1",
        ],
    );
}

#[test]
fn rejected_filters() {
    check_filters(
        "rejected_filters",
        &[
            "lambda c: c.fist_name == 'x'",
            "lambda c: c.first == 'x'",
            "lambda c: c.zzz == 1",
            "lambda c: c.price == 'x'",
            "lambda c: c.first_name + 1 == 'a'",
            "lambda c: c.first_name * 2 == 'a'",
            "lambda c: c.category_id == 1.5",
            "lambda c: c.category_id == None",
            "lambda c: c.category_id",
            "lambda c: c.price + 1",
            "lambda c: c.nickname",
            "lambda c: avg(c.price) > 1",
            "lambda c: c.category_id == unbound",
            "lambda c: c.deleted_at < 5",
            "lambda c: c.nickname.startswith('a')",
            "lambda c: c.price.startswith('a')",
            "lambda c: c.deleted_at in (1, 2)",
            "lambda c: c.first_name.startswith(c.first_name)",
            "lambda c: c.category_id in (1, 'a')",
            "lambda c: c.category_id in name",
            "lambda c: c.first_name in ids",
            "lambda c: c.first_name in name",
            "lambda c: c.price is None",
            "lambda c: not c.price",
            "lambda c: c.first_name == 1 and c.nope and missing == 2",
            "lambda c: c.category_id in (c.id, 2)",
            "lambda c: ids == c.category_id",
            "lambda c: c.price % 2.0 == 1.5",
            "lambda c: c.category_id % 2 == 0 and (c.price % limit) + 1 > 2",
            "lambda c: captured % c.price < 1",
        ],
    );
}

/// K2: `%` on floats is rejected (SQL has no float remainder), whatever its
/// operands are written as; on integers it stays.
#[test]
fn float_remainder_is_rejected() {
    let mismatch = |s: &str| {
        kinds(s).iter().filter(|k| matches!(k, ErrorKind::TypeMismatch { context, .. } if context == "`%`")).count()
    };
    assert_eq!(mismatch("lambda c: c.price % 2.0 == 1.5"), 1);
    assert_eq!(mismatch("lambda c: c.price % 2 == 1"), 1, "an int literal against a float becomes a float");
    assert_eq!(mismatch("lambda c: captured % c.price < 1"), 1);
    assert_eq!(mismatch("lambda c: (c.price % limit) % limit < 1"), 1, "one error, not a cascade");
    assert_eq!(kinds("lambda c: c.category_id % 2 == 0"), vec![]);
    assert_eq!(kinds("lambda c: c.category_id % cat == captured % 3"), vec![]);
}

#[test]
fn every_error_is_collected() {
    assert_eq!(kinds("lambda c: c.first_name == 1 and c.nope and missing == 2").len(), 3);
    assert_eq!(kinds("lambda c: c.price > 1"), vec![]);
}

#[test]
fn rewrites_int_literals_against_floats() {
    let l = text::parse("lambda c: c.price > 10 and 2 * c.price < 3 and c.price in (1, 2) and 4 <= c.price")
        .unwrap_or_else(|e| {
            unreachable!("{e}");
        });
    let checked = check::filter(&item_schema(), &l.body, &param_types).map(|e| print::expr(&e, "c"));
    assert_eq!(
        checked.as_deref(),
        Ok("c.price > 10.0 and 2.0 * c.price < 3.0 and c.price in (1.0, 2.0) and 4.0 <= c.price")
    );
}

/// An operand that is already an error (an unknown field, text in arithmetic) makes
/// its arithmetic an error too, without a second, cascaded message about the
/// arithmetic's types.
#[test]
fn an_erroneous_operand_is_reported_once() {
    for src in [
        "lambda c: c.nope + 1 > 2",
        "lambda c: 2 * c.nope < c.price",
        "lambda c: c.price - c.first_name > 0.5",
        "lambda c: c.first_name * c.price > 0.5",
        "lambda c: c.category_id % c.first_name == 1",
    ] {
        assert_eq!(kinds(src).len(), 1, "{src}: {:?}", kinds(src));
    }
}

/// Parses and checks `src` as a view's aggregate.
fn aggregate(src: &str) -> String {
    let lambda = match text::parse(src) {
        Ok(l) => l,
        Err(e) => return format!("PARSE ERROR\n{}", e.render(src)),
    };
    match check::aggregate(&item_schema(), &lambda.body, &param_types) {
        Ok(a) => format!(
            "ok: {}({}) of {:?}",
            a.func.name(),
            a.arg.as_ref().map(|e| print::expr(e, &lambda.param)).unwrap_or_default(),
            a.arg_type
        ),
        Err(e) => e.render(src),
    }
}

#[test]
fn aggregates() {
    let inputs = [
        "lambda m: avg(m.price)",
        "lambda m: count()",
        "lambda m: sum(m.category_id * 2)",
        "lambda m: min(m.price + 1)",
        "lambda m: max(m.id)",
        "lambda m: count(m.id)",
        "lambda m: sum()",
        "lambda m: avg(m.first_name)",
        "lambda m: max(m.deleted_at)",
        "lambda m: avg(avg(m.price))",
        "lambda m: m.price > 1",
        "lambda m: avg(m.prize)",
    ];
    let text: Vec<String> = inputs.iter().map(|s| format!("{s}\n{}\n", aggregate(s))).collect();
    insta::assert_snapshot!("aggregates", text.join("\n"));
}

/// An integer parameter compares numerically with a float field, on either side.
#[test]
fn an_int_parameter_compares_with_a_float_field_on_either_side() {
    for src in ["lambda c: c.price > cat", "lambda c: cat < c.price", "lambda c: cat == c.price or c.price != cat"] {
        assert_eq!(kinds(src), vec![], "{src}");
    }
}

/// Rejected without fail, each with its own message: an integer field plus a float
/// field (no implicit widening of a column), a list as the needle of `in`, and a JSON
/// field in a filter (stored, never queried).
#[test]
fn mixed_types_list_needles_and_json_fields_are_rejected() {
    for src in ["lambda c: c.category_id + c.price > 1", "lambda c: ids in (1, 2)", "lambda c: ids in ids"] {
        assert!(matches!(kinds(src).as_slice(), [ErrorKind::TypeMismatch { .. }, ..]), "{src}: {:?}", kinds(src));
    }
    let docs = Schema::new("Doc", "doc").column("id", Type::Int, false).column("body", Type::Json, false).key("id");
    let src = "lambda d: d.body == 'x' or d.id == 1";
    let lambda = text::parse(src).unwrap_or_else(|e| unreachable!("{e}"));
    let errors = check::filter(&docs, &lambda.body, &param_types).err().unwrap_or_default();
    assert_eq!(errors.iter().count(), 1, "{errors:?}");
    let rendered = errors.render(src);
    assert!(rendered.contains("storing and reading JSON fields"), "the JSON field is named as such: {rendered}");
}
