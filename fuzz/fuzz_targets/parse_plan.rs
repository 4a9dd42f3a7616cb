//! Fuzz target: any text through the text-form parser, the checker, DNF, the planner,
//! binding, the SQL emitter of every dialect and the in-memory evaluator. Nothing
//! may panic, hang or overflow the stack; errors must point inside the source.
//!
//! Run it (docs/soak.md): `cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run parse_plan`.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use memdex_grammar::sql::{self, SelectSpec};
use memdex_grammar::{Access, Dialect, ParamType, Schema, Type, Value};

fn schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        Schema::new("Item", "item")
            .column("id", Type::Int, false)
            .column("cat", Type::Int, false)
            .column("grp", Type::Int, true)
            .column("name", Type::Text, false)
            .column("price", Type::Float, false)
            .column("note", Type::Text, true)
            .column("flag", Type::Bool, false)
            .key("id")
            .index(&["cat"], None)
            .index(&["name"], Some(2))
            .index(&["cat", "grp"], None)
    })
}

fn params() -> Vec<(String, Value)> {
    vec![
        ("n".into(), Value::Int(3)),
        ("x".into(), Value::Float(-0.0)),
        ("s".into(), Value::Text("a%_\\'".into())),
        ("ids".into(), Value::List(vec![Value::Int(1), Value::Int(i64::MIN)])),
        ("none".into(), Value::Null),
        ("empty".into(), Value::List(vec![])),
    ]
}

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else { return };
    let schema = schema();
    let params = params();
    let types = |name: &str| ParamType::of(memdex_grammar::Params::get(&params, name));
    for access in [Access::Indexed, Access::Scan] {
        match memdex_grammar::prepare_text(schema, src, &types, access, 64) {
            Ok(prepared) => {
                for d in [Dialect::Sqlite, Dialect::Postgres, Dialect::MySql] {
                    let spec = SelectSpec { filter: prepared.filter.as_ref(), ..SelectSpec::default() };
                    let _ = sql::select(d, schema, spec, &params);
                    let _ = sql::count(d, schema, prepared.filter.as_ref(), &params);
                }
                if let Some(filter) = &prepared.filter {
                    let row = [
                        Value::Int(1),
                        Value::Int(i64::MAX),
                        Value::Null,
                        Value::Text("Éa%".into()),
                        Value::Float(f64::INFINITY),
                        Value::Null,
                        Value::Bool(true),
                    ];
                    let _ = memdex_grammar::eval::matches(schema, filter, &|c| row[c].clone(), &params);
                }
                if let Some(plan) = &prepared.plan {
                    for d in &plan.disjuncts {
                        let _ = memdex_grammar::plan::bind(schema, d, &params, 1000);
                    }
                }
            }
            Err(errors) => {
                for e in errors.iter() {
                    assert!(
                        e.span.start <= e.span.end && e.span.end as usize <= src.len(),
                        "span {:?} outside the source",
                        e.span
                    );
                }
                let _ = errors.render(src);
            }
        }
    }
});
