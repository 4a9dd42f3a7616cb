//! Criterion benches of the hot path's inner pieces: cache key building, the node
//! codec, plan binding, text planning, and `Store::select_text` with and without its
//! cache of prepared queries. `cargo bench -p memdex --bench inner`.
//!
//! The node codec is private to the runtime; `memdex::__private::node_codec` lends it
//! to this bench, so what is measured is the very code the executor runs.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use memdex::grammar::keys::KeySpace;
use memdex::grammar::plan::{NodeRef, bind};
use memdex::grammar::{Access, ParamType, Schema, Type, Value};

use memdex::__private::node_codec as codec;

fn schema() -> Schema {
    Schema::new("Item", "item")
        .column("id", Type::Int, false)
        .column("category_id", Type::Int, false)
        .column("name", Type::Text, false)
        .column("price", Type::Float, false)
        .key("id")
        .index(&["category_id"], None)
}

fn keys(c: &mut Criterion) {
    let schema = schema();
    let ks = KeySpace::new("memdex", &schema, 0);
    let node = NodeRef { index: Some(0), values: vec![Value::Int(5)] };
    c.bench_function("keys/object", |b| b.iter(|| ks.object(black_box(&Value::Int(1111)))));
    c.bench_function("keys/node", |b| b.iter(|| ks.node(&schema, black_box(&node))));
    c.bench_function("keys/100 objects", |b| {
        let ids: Vec<Value> = (1..=100).map(Value::Int).collect();
        b.iter(|| ids.iter().map(|id| ks.object(id)).collect::<Vec<_>>())
    });
}

fn node_codec(c: &mut Criterion) {
    let mut group = c.benchmark_group("node codec");
    for n in [10usize, 100, 1_000] {
        // Each entry names its row's version the way the executor writes it: the
        // etag of some encoded object bytes.
        let ids: Vec<codec::Entry> =
            (1..=n as i64).map(|i| (Value::Int(100_000 + i), codec::etag(&i.to_le_bytes()))).collect();
        let bytes = codec::encode_node(&ids, &[]);
        group.bench_with_input(BenchmarkId::new("encode", n), &ids, |b, ids| b.iter(|| codec::encode_node(ids, &[])));
        group.bench_with_input(BenchmarkId::new("decode", n), &bytes, |b, bytes| {
            b.iter(|| codec::decode_node(bytes, Type::Int, None))
        });
    }
    group.finish();
}

fn plan_bind(c: &mut Criterion) {
    let schema = schema();
    let limit = memdex::grammar::normalise::DEFAULT_DISJUNCT_LIMIT;
    let types = |_: &str| ParamType::Scalar(Type::Int);
    let mut group = c.benchmark_group("plan");
    for (name, text) in [
        ("one disjunct", "lambda c: c.category_id == cat and c.price > 10.0"),
        (
            "four disjuncts",
            "lambda c: c.category_id == cat or c.category_id == 2 or c.category_id == 3 or c.category_id == 4",
        ),
    ] {
        // A query that does not plan is reported and skipped: a bench has nothing to
        // measure then, and the grammar's own tests say why.
        let plan = match memdex::grammar::prepare_text(&schema, text, &types, Access::Indexed, limit) {
            Ok(prepared) => match prepared.plan {
                Some(plan) => plan,
                None => {
                    eprintln!("{name}: an indexed query came back without a plan; skipped");
                    continue;
                }
            },
            Err(e) => {
                eprintln!("{name}: the bench query does not plan ({e:?}); skipped");
                continue;
            }
        };
        let params = [("cat", Value::Int(5))];
        group.bench_function(BenchmarkId::new("bind", name), |b| {
            b.iter(|| {
                for d in &plan.disjuncts {
                    black_box(bind(&schema, d, &params, 10_000).ok());
                }
            })
        });
        group.bench_function(BenchmarkId::new("prepare text", name), |b| {
            b.iter(|| memdex::grammar::prepare_text(&schema, black_box(text), &types, Access::Indexed, limit).ok())
        });
    }
    group.finish();
}

/// A model for the store-level bench. The derive adds column accessors a bench has
/// no use for, hence the module-wide allowance.
mod model {
    #![allow(dead_code)]

    #[derive(memdex::Model, Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    #[memdex(table = "item")]
    pub struct Item {
        #[memdex(key)]
        pub id: i64,
        #[memdex(index)]
        pub category_id: i64,
        #[memdex(index(prefix = 1))]
        pub name: String,
        pub price: f64,
    }
}
use model::Item;

/// `select_text` as a program calls it: the same text, new values each call. With
/// the store's cache of prepared queries (default capacity) and without (0).
fn text_cache(c: &mut Criterion) {
    let mut group = c.benchmark_group("select_text");
    let text = "lambda c: c.category_id in cats and c.name.startswith('m') and c.price > p";
    for (name, capacity) in [("cached", 256), ("uncached", 0)] {
        let store = match memdex::Store::builder().sqlite_in_memory().text_cache_capacity(capacity).build() {
            Ok(store) => store,
            Err(e) => {
                eprintln!("select_text/{name}: no store ({e}); skipped");
                continue;
            }
        };
        let mut n = 0_i64;
        group.bench_function(name, |b| {
            b.iter(|| {
                n += 1;
                let params = [("cats", Value::from(vec![n % 7, 9])), ("p", Value::Float(n as f64))];
                black_box(store.select_text::<Item>(black_box(text), &params).ok())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, keys, node_codec, plan_bind, text_cache);
criterion_main!(benches);
