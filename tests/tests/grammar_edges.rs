//! Edges of the grammar crate that the mutation run (RELIABILITY.md, "Mutation
//! testing") showed no test pinned down: each test here fails with the mutant it
//! is named after in its comment, and passes without it. They go through the
//! grammar's public API (`memdex::grammar`), as a user of the text form does.

// Tests fail by panicking, with a message saying what went wrong.
#![allow(clippy::panic)]

use memdex::grammar::check;
use memdex::grammar::eval;
use memdex::grammar::explain::explain;
use memdex::grammar::keys::KeySpace;
use memdex::grammar::print;
use memdex::grammar::sql;
use memdex::grammar::{
    Access, Dialect, Error, ErrorKind, Errors, ParamType, Schema, Span, Type, Value, prepare_text, text,
};

fn schema() -> Schema {
    Schema::new("Thing", "thing")
        .column("id", Type::Int, false)
        .column("category_id", Type::Int, false)
        .column("price", Type::Float, false)
        .column("name", Type::Text, false)
        .column("flag", Type::Bool, false)
        .key("id")
        .index(&["category_id"], None)
}

/// `x in p` with `p` a bound list: the list's element type must be the needle's,
/// except that integers may be compared with a float (Rust's `as f64`, as for `==`).
/// (Mutant: `check.rs` `Checker::membership`, `t == Type::Int` → `t != Type::Int`.)
#[test]
fn a_float_is_looked_up_in_a_list_of_integers_but_not_of_strings() {
    let schema = schema();
    let lambda = text::parse("lambda c: c.price in ps").expect("parses");
    let with = |t: Type| check::filter(&schema, &lambda.body, &|_: &str| ParamType::List(Some(t)));
    assert!(with(Type::Int).is_ok(), "{:?}", with(Type::Int).err());
    assert!(with(Type::Float).is_ok(), "{:?}", with(Type::Float).err());
    let errors = with(Type::Text).expect_err("a float is never in a list of strings");
    assert!(errors.0.iter().any(|e| matches!(e.kind, ErrorKind::TypeMismatch { .. })), "a type mismatch: {errors:?}");
}

/// An error whose span starts or ends inside a multi-byte character (a span from
/// another text, or one computed by a caller) still renders, at the character.
/// (Mutant: `error.rs` `floor_char_boundary`, `i > 0` → `i == 0`: slicing panics.)
#[test]
fn an_error_inside_a_multibyte_character_renders_at_that_character() {
    let source = "lambda c: c.näme == 1";
    let inside = source.find('ä').expect("ä") + 1;
    let error = Error::new(ErrorKind::UnboundParam { name: "x".into() }, Span::new(inside, inside + 2));
    let rendered = Errors::one(error).render(source);
    let caret_line = rendered.lines().nth(4).unwrap_or_else(|| panic!("a caret line in {rendered:?}"));
    let column = caret_line.find('^').unwrap_or_else(|| panic!("a caret in {rendered:?}"));
    let text_line = rendered.lines().nth(3).unwrap_or_else(|| panic!("the source line in {rendered:?}"));
    // The caret sits under `ä` (counted in characters, as the terminal shows them).
    let text_start = text_line.find("lambda").expect("the source text");
    let under: String = text_line[text_start..].chars().skip(column - text_start).take(1).collect();
    assert_eq!(under, "ä", "{rendered}");
}

/// `<`, `>`, `<=`, `>=` between booleans are Rust's (`false < true`), in memory as
/// in SQL. (Mutant: `eval.rs` `values_cmp`, the `(Bool, Bool)` arm deleted.)
#[test]
fn booleans_are_ordered_false_before_true() {
    use std::cmp::Ordering;
    assert_eq!(eval::values_cmp(&Value::Bool(false), &Value::Bool(true)), Some(Ordering::Less));
    assert_eq!(eval::values_cmp(&Value::Bool(true), &Value::Bool(true)), Some(Ordering::Equal));
    assert_eq!(eval::values_cmp(&Value::Bool(true), &Value::Bool(false)), Some(Ordering::Greater));
}

/// Explain lists up to six node keys of a disjunct and marks only longer lists as
/// cut. (Mutant: `explain.rs` `list_keys`, `>` → `>=`.)
#[test]
fn explain_marks_only_lists_longer_than_it_shows() {
    let schema = schema();
    let keys = KeySpace::new("memdex", &schema, 0);
    let template = |values: &str| {
        let source = format!("lambda c: c.category_id in ({values})");
        let prepared = prepare_text(&schema, &source, &|_: &str| ParamType::Missing, Access::Indexed, 64)
            .unwrap_or_else(|e| panic!("{}", e.render(&source)));
        let plan = prepared.plan.as_ref().expect("an indexed plan");
        explain(&schema, Some(plan), &keys, String::new(), "c").disjuncts[0].key_template.clone()
    };
    let six = template("1, 2, 3, 4, 5, 6");
    assert_eq!(six.split(' ').count(), 6, "{six}");
    assert!(!six.contains('…'), "all six keys are shown, none is cut: {six}");
    let seven = template("1, 2, 3, 4, 5, 6, 7");
    assert!(seven.ends_with(" …"), "the seventh key is cut: {seven}");
}

/// Printed string literals escape every control character, so that the printed
/// query (in Explain, in errors) shows them and reads back as the same string.
/// (Mutant: `print.rs` `string`, `< 0x20 || == 0x7f` → `&&`.)
#[test]
fn printed_strings_escape_control_characters() {
    let source = "lambda c: c.name == \"a\\x01b\\x7fc\"";
    let lambda = text::parse(source).unwrap_or_else(|e| panic!("{}", e.render(source)));
    let printed = print::lambda(&lambda);
    assert!(printed.contains(r#""a\x01b\x7fc""#), "{printed}");
    assert!(!printed.chars().any(|c| c.is_control()), "{printed:?}");
    let again = text::parse(&printed).unwrap_or_else(|e| panic!("{}", e.render(&printed)));
    assert_eq!(again.body.without_spans(), lambda.body.without_spans());
}

/// MariaDB's InnoDB caps an index entry at 3,072 bytes: a composite index over
/// several text columns shares that out, whatever else the index holds.
/// (Mutants: `ddl.rs` `create_table` counting non-text columns as the text parts,
/// and `dialect.rs` `MySql::index_part`, `/ text_parts` → `* text_parts`.)
#[test]
fn a_mariadb_index_over_many_text_columns_stays_within_innodbs_limit() {
    for text_columns in 1..=5 {
        let mut schema = Schema::new("Wide", "wide").column("id", Type::Int, false).column("n", Type::Int, false);
        let names: Vec<String> = (0..text_columns).map(|i| format!("t{i}")).collect();
        for name in &names {
            schema = schema.column(name, Type::Text, false);
        }
        let mut indexed: Vec<&str> = names.iter().map(String::as_str).collect();
        indexed.push("n");
        let schema = schema.key("id").index(&indexed, None);
        let ddl = sql::create_table(Dialect::MySql, &schema).join(";\n");
        let index = ddl.lines().find(|l| l.contains("CREATE INDEX")).unwrap_or_else(|| panic!("an index in {ddl}"));
        let chars: Vec<usize> = names
            .iter()
            .map(|name| {
                let part = format!("`{name}`(");
                let at = index.find(&part).unwrap_or_else(|| panic!("a key part for {name} in {index}"));
                let digits: String = index[at + part.len()..].chars().take_while(char::is_ascii_digit).collect();
                digits.parse().unwrap_or_else(|_| panic!("a length for {name} in {index}"))
            })
            .collect();
        // utf8mb4: four bytes a character; the integer column's 8 bytes too.
        let bytes = chars.iter().sum::<usize>() * 4 + 8;
        assert!(bytes <= 3072, "{text_columns} text columns: {bytes} bytes in {index}");
    }
}

/// A snapshot of many nodes of a composite index reads one bound list per index
/// column: no row outside every column's list is read. (Mutant: `sql/mod.rs`
/// `node_rows_by_lists`, `per_column.len() == 1` → `!= 1`, which kept only the
/// first column's list.)
#[test]
fn a_wide_snapshot_of_a_composite_index_binds_a_list_per_column() {
    let schema = Schema::new("Line", "line")
        .column("id", Type::Int, false)
        .column("cart_id", Type::Int, false)
        .column("status", Type::Text, false)
        .key("id")
        .index(&["cart_id", "status"], None);
    let values: Vec<Vec<Value>> = (0..300).map(|i| vec![Value::Int(i), Value::Text(format!("s{}", i % 3))]).collect();
    let nodes: Vec<(usize, &[Value])> = values.iter().map(|v| (0, v.as_slice())).collect();
    for dialect in [Dialect::Sqlite, Dialect::Postgres, Dialect::MySql] {
        let q = sql::node_rows_by_lists(dialect, &schema, &nodes).expect("sql");
        let filter = q.text.split_once("WHERE").map_or("", |(_, w)| w);
        assert!(filter.contains("cart_id") && filter.contains("status"), "{dialect:?}: {}", q.text);
    }
}

/// The text form's hand-written fast path reads the whole language's common
/// constructs itself (pest, the authority, reads whatever it declines, so a
/// construct it drops still parses, only slower): division, a float written
/// `.5`, and `ieq`. (Mutants: `text/fast.rs` `Reader::product` without `/`,
/// `Reader::postfix` without the leading-dot number, `function` without `ieq`.)
#[test]
fn the_fast_path_reads_division_leading_dot_floats_and_ieq() {
    for source in [
        "lambda c: c.price / 2 > 1.0",
        "lambda c: c.id / 3 == k",
        "lambda c: c.price > .5",
        "lambda c: ieq(c.name, \"Ab\")",
    ] {
        let fast = text::parse_fast(source).unwrap_or_else(|| panic!("the fast path declined {source:?}"));
        let pest = text::parse_with_pest(source).unwrap_or_else(|e| panic!("{}", e.render(source)));
        assert_eq!(format!("{fast:?}"), format!("{pest:?}"), "{source}");
    }
}

/// The advice of an unindexable query: a `startswith` pattern of some length is
/// served by adding a prefix index; an empty one is served by none (it matches
/// every row), so it is not advised. (Mutant: `plan.rs` `suggestion`, `known(…) &&
/// non-empty prefix` → `||`.)
#[test]
fn an_empty_startswith_is_not_advised_a_prefix_index() {
    let schema = schema();
    let advice = |source: &str| {
        let errors = prepare_text(&schema, source, &|_: &str| ParamType::Missing, Access::Indexed, 64)
            .expect_err("no index serves it");
        errors.render(source)
    };
    let some = advice("lambda c: c.name.startswith(\"ab\")");
    assert!(some.contains("index(prefix = 1))] on `name`"), "{some}");
    let empty = advice("lambda c: c.name.startswith(\"\")");
    assert!(!empty.contains("index(prefix"), "an empty pattern needs no prefix index: {empty}");
}

/// Brackets nest at most `MAX_NESTING` deep: one more is a syntax error naming the
/// limit, at the bracket that exceeds it, whichever parser would have read it (the
/// check runs before both, bounding pest's stack), also after a string literal
/// (whose own brackets do not count). (Mutant: `text/mod.rs` `check_nesting`, a
/// string ending at `b == q || b == b'\n'` → `&&`: no string ever ended, so no
/// bracket after the first quote was counted.)
#[test]
fn brackets_nest_at_most_max_nesting_deep() {
    // Two brackets inside the string literal, which the limit does not count.
    let before = "lambda c: c.name == \"((\" or ";
    let round = |depth: usize| format!("{before}{}c.id == 1{}", "(".repeat(depth), ")".repeat(depth));
    let deepest = round(text::MAX_NESTING);
    if let Err(e) = text::parse(&deepest) {
        panic!("{}", e.render(&deepest));
    }
    let over = text::MAX_NESTING + 1;
    let square = format!("{before}c.id in {}1{}", "[".repeat(over), "]".repeat(over));
    for (what, src) in [("round", round(over)), ("square", square)] {
        for parse in [text::parse, text::parse_with_pest] {
            let errors = parse(&src).expect_err("one level too deep");
            let rendered = errors.render(&src);
            assert!(rendered.contains(&format!("at most {} levels", text::MAX_NESTING)), "{what}: {rendered}");
            let at = errors.0[0].span.start as usize;
            assert_eq!(src[..at].matches(['(', '[']).count() - 2, text::MAX_NESTING, "{what}: {rendered}");
        }
    }
}
