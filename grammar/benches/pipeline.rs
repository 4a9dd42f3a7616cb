//! The text form's whole compile pipeline on a typical three-criteria lambda:
//! parse, check, normalise and plan (`prepare_text`), then SQL; and parse and check
//! on their own, to see where the time goes.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use memdex_grammar::sql::{self, SelectSpec};
use memdex_grammar::{Access, Dialect, ParamType, Schema, Type, Value, check, prepare_text, text};

const QUERY: &str = r#"lambda c: c.category_id == cat and c.price > 10.0 and c.first_name.startswith("m")"#;

/// The DESIGN.md `Item`: key `id`, index `category_id`, prefix index `first_name`.
fn item_schema() -> Schema {
    Schema::new("Item", "item")
        .column("id", Type::Int, false)
        .column("category_id", Type::Int, false)
        .column("first_name", Type::Text, false)
        .column("price", Type::Float, false)
        .column("deleted_at", Type::Int, true)
        .key("id")
        .index(&["category_id"], None)
        .index(&["first_name"], Some(1))
}

fn param_types(name: &str) -> ParamType {
    if name == "cat" { ParamType::Scalar(Type::Int) } else { ParamType::Missing }
}

fn pipeline(c: &mut Criterion) {
    let schema = item_schema();
    let params = [("cat", Value::Int(5))];

    c.bench_function("parse+check+plan+sql", |b| {
        b.iter(|| {
            let prepared = prepare_text(&schema, black_box(QUERY), &param_types, Access::Indexed, 64)
                .unwrap_or_else(|e| unreachable!("the benchmark query is valid: {e}"));
            let spec = SelectSpec { filter: prepared.filter.as_ref(), order: &[], limit: None, offset: None };
            black_box(sql::select(Dialect::Sqlite, &schema, spec, &params).ok())
        });
    });

    c.bench_function("parse", |b| b.iter(|| black_box(text::parse(black_box(QUERY)).ok())));

    let lambda = text::parse(QUERY).unwrap_or_else(|e| unreachable!("the benchmark query is valid: {e}"));
    c.bench_function("check", |b| {
        b.iter(|| black_box(check::filter(&schema, black_box(&lambda.body), &param_types).ok()))
    });
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
