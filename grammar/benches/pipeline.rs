//! The text form's whole compile pipeline on a typical three-criteria lambda:
//! parse, check, normalise and plan (`prepare_text`), then SQL; and every phase on
//! its own, to see where the time goes.
//!
//! Two queries: `QUERY` (the DESIGN.md `Item`, SQLite) as before, and `REPORT_QUERY`,
//! the one the benchmark report's "Planning" section times (its shop `Item`,
//! PostgreSQL), so the figures here and there can be compared.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use memdex_grammar::sql::{self, SelectSpec};
use memdex_grammar::{
    Access, Dialect, ParamType, Prepared, Schema, Type, Value, check, normalise, plan, prepare, prepare_text, text,
};

const QUERY: &str = r#"lambda c: c.category_id == cat and c.price > 10.0 and c.first_name.startswith("m")"#;

/// `examples/src/bench/memdex_side.rs`, `planning`.
const REPORT_QUERY: &str = "lambda c: c.category_id == cat and c.price > 10.0 and not c.name.startswith('x')";

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

/// The benchmark report's shop `Item` (what its `#[derive(Model)]` builds).
fn report_schema() -> Schema {
    Schema::new("Item", "item")
        .column("id", Type::Int, false)
        .column("category_id", Type::Int, false)
        .column("name", Type::Text, false)
        .column("price", Type::Float, false)
        .column("deleted_at", Type::Int, true)
        .column("description", Type::Text, false)
        .key("id")
        .index(&["category_id"], None)
}

fn param_types(name: &str) -> ParamType {
    if name == "cat" { ParamType::Scalar(Type::Int) } else { ParamType::Missing }
}

fn valid<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
    r.unwrap_or_else(|e| unreachable!("the benchmark query is valid: {e}"))
}

fn pipeline(c: &mut Criterion) {
    let schema = item_schema();
    let params = [("cat", Value::Int(5))];
    let limit = normalise::DEFAULT_DISJUNCT_LIMIT;

    c.bench_function("parse+check+plan+sql", |b| {
        b.iter(|| {
            let prepared = valid(prepare_text(&schema, black_box(QUERY), &param_types, Access::Indexed, limit));
            let spec = SelectSpec { filter: prepared.filter.as_ref(), order: &[], limit: None, offset: None };
            black_box(sql::select(Dialect::Sqlite, &schema, spec, &params).ok())
        });
    });

    c.bench_function("parse", |b| b.iter(|| black_box(text::parse(black_box(QUERY)).ok())));

    let lambda = valid(text::parse(QUERY));
    c.bench_function("check", |b| {
        b.iter(|| black_box(check::filter(&schema, black_box(&lambda.body), &param_types).ok()))
    });
}

/// The report's query, phase by phase.
fn report(c: &mut Criterion) {
    let schema = report_schema();
    let params = [("cat", Value::Int(5))];
    let limit = normalise::DEFAULT_DISJUNCT_LIMIT;
    let mut g = c.benchmark_group("report");

    g.bench_function("all (prepare_text + postgres sql)", |b| {
        b.iter(|| {
            let prepared = valid(prepare_text(&schema, black_box(REPORT_QUERY), &param_types, Access::Indexed, limit));
            let spec = SelectSpec { filter: prepared.filter.as_ref(), ..SelectSpec::default() };
            black_box((sql::select(Dialect::Postgres, &schema, spec, &params).ok(), prepared.plan))
        });
    });
    g.bench_function("prepare_text", |b| {
        b.iter(|| black_box(prepare_text(&schema, black_box(REPORT_QUERY), &param_types, Access::Indexed, limit).ok()))
    });
    g.bench_function("parse", |b| b.iter(|| black_box(text::parse(black_box(REPORT_QUERY)).ok())));
    // The same query through the pest grammar alone (what `parse` falls back to).
    g.bench_function("parse (pest only)", |b| {
        b.iter(|| black_box(text::parse_with_pest(black_box(REPORT_QUERY)).ok()))
    });

    let lambda = valid(text::parse(REPORT_QUERY));
    g.bench_function("check", |b| {
        b.iter(|| black_box(check::filter(&schema, black_box(&lambda.body), &param_types).ok()))
    });
    let filter = valid(check::filter(&schema, &lambda.body, &param_types));
    g.bench_function("dnf", |b| b.iter(|| black_box(normalise::to_dnf(black_box(&filter), limit).ok())));
    let dnf = valid(normalise::to_dnf(&filter, limit));
    g.bench_function("plan", |b| {
        b.iter(|| black_box(plan::plan_with_param(&schema, black_box(&dnf), &lambda.param).ok()))
    });
    for dialect in [Dialect::Postgres, Dialect::Sqlite] {
        g.bench_function(format!("sql {dialect:?}"), |b| {
            b.iter(|| {
                let spec = SelectSpec { filter: Some(black_box(&filter)), ..SelectSpec::default() };
                black_box(sql::select(dialect, &schema, spec, &params).ok())
            })
        });
    }
    g.finish();
}

/// A text parser: `text::parse` (the fast path, then pest) or `text::parse_with_pest`.
type Parser = fn(&str) -> Result<memdex_grammar::Lambda, memdex_grammar::Errors>;

/// What the text form's hand-written fast path (`text/fast.rs`) buys a text seen
/// for the first time (a text seen before reuses the store's prepared plan and is not
/// parsed at all): the whole preparation, and preparation plus the PostgreSQL
/// `SELECT`, with the fast path in front of pest and with pest alone. Both variants
/// go through `prepare` on the parsed lambda, so only the parser differs.
fn first_seen(c: &mut Criterion) {
    let limit = normalise::DEFAULT_DISJUNCT_LIMIT;
    let params = [("cat", Value::Int(5))];
    let parsers: [(&str, Parser); 2] = [("fast path", text::parse), ("pest only", text::parse_with_pest)];
    let mut g = c.benchmark_group("first_seen");
    for (query_name, schema, query) in [("report", report_schema(), REPORT_QUERY), ("design", item_schema(), QUERY)] {
        for (parser_name, parse) in parsers {
            let prepare_with = |src: &str| -> Option<Prepared> {
                let lambda = parse(src).ok()?;
                prepare(&schema, &lambda, &param_types, Access::Indexed, limit).ok()
            };
            g.bench_function(format!("{query_name}/prepare ({parser_name})"), |b| {
                b.iter(|| black_box(prepare_with(black_box(query))))
            });
            g.bench_function(format!("{query_name}/prepare + postgres sql ({parser_name})"), |b| {
                b.iter(|| {
                    let prepared = prepare_with(black_box(query));
                    let filter = prepared.as_ref().and_then(|p| p.filter.as_ref());
                    let spec = SelectSpec { filter, ..SelectSpec::default() };
                    black_box(sql::select(Dialect::Postgres, &schema, spec, &params).ok())
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, pipeline, report, first_seen);
criterion_main!(benches);
