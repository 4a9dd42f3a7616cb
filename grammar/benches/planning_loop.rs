//! A plain loop over the benchmark report's planning query, for profilers
//! (`valgrind --tool=callgrind`, `perf record`), which want one process doing one
//! thing rather than criterion's sampling:
//!
//! ```text
//! cargo bench -p memdex-grammar --bench planning_loop --no-run
//! valgrind --tool=callgrind target/release/deps/planning_loop-<hash> 2000
//! ```
//!
//! The argument is the number of iterations (default 10, so that `cargo bench`
//! passes through quickly); each iteration runs `prepare_text` and the PostgreSQL
//! `SELECT`, as `examples/src/bench/memdex_side.rs` `planning` does. With
//! `--pest-only` each iteration parses with the pest grammar alone (no fast path),
//! then prepares the lambda the same way, for comparing the two by CPU time:
//!
//! ```text
//! /usr/bin/time -f %U target/release/deps/planning_loop-<hash> 50000
//! /usr/bin/time -f %U target/release/deps/planning_loop-<hash> 50000 --pest-only
//! ```

use std::hint::black_box;

use memdex_grammar::sql::{self, SelectSpec};
use memdex_grammar::{
    Access, Dialect, ParamType, Prepared, Schema, Type, Value, normalise, prepare, prepare_text, text,
};

const REPORT_QUERY: &str = "lambda c: c.category_id == cat and c.price > 10.0 and not c.name.startswith('x')";

fn main() {
    let iterations: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(10);
    let pest_only = std::env::args().any(|a| a == "--pest-only");
    let schema = Schema::new("Item", "item")
        .column("id", Type::Int, false)
        .column("category_id", Type::Int, false)
        .column("name", Type::Text, false)
        .column("price", Type::Float, false)
        .column("deleted_at", Type::Int, true)
        .column("description", Type::Text, false)
        .key("id")
        .index(&["category_id"], None);
    let types = |name: &str| if name == "cat" { ParamType::Scalar(Type::Int) } else { ParamType::Missing };
    let params = [("cat", Value::Int(5))];
    let limit = normalise::DEFAULT_DISJUNCT_LIMIT;
    let mut ok = 0usize;
    for _ in 0..iterations {
        let prepared = if pest_only {
            text::parse_with_pest(black_box(REPORT_QUERY))
                .and_then(|lambda| prepare(&schema, &lambda, &types, Access::Indexed, limit))
        } else {
            prepare_text(&schema, black_box(REPORT_QUERY), &types, Access::Indexed, limit)
        };
        let Ok::<Prepared, _>(prepared) = prepared else {
            continue;
        };
        let spec = SelectSpec { filter: prepared.filter.as_ref(), ..SelectSpec::default() };
        if let Ok(q) = sql::select(Dialect::Postgres, &schema, spec, &params) {
            ok += usize::from(!black_box((q, prepared.plan)).0.text.is_empty());
        }
    }
    assert_eq!(ok, iterations, "the query plans and renders on every iteration");
}
