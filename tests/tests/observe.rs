//! Every operation is observable: a `tracing` span named `memdex` with its fields,
//! and (feature `metrics`) counters, a latency histogram and pool gauges on the
//! `metrics` facade, read here from a recorder.

// Tests fail by panicking, with a message saying what went wrong.
#![allow(clippy::panic, clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use memdex::{Model, Store, select};
use memdex_tests::asynchronous::block_on;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use serde::{Deserialize, Serialize};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

#[derive(Model, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[memdex(table = "gadget")]
pub struct Gadget {
    #[memdex(key)]
    pub id: i64,
    #[memdex(index)]
    pub shelf: i64,
    pub name: String,
}

fn store() -> Store {
    let store = Store::builder().sqlite_in_memory().in_process_cache().near_cache_capacity(64 << 20).build().unwrap();
    store.migrate::<Gadget>().unwrap();
    store
        .transaction(|tx| {
            for id in 1..=4 {
                tx.insert(&Gadget { id, shelf: id % 2, name: format!("g{id}") })?;
            }
            Ok(())
        })
        .unwrap();
    store
}

fn fetch_shelf(store: &Store) -> Vec<Gadget> {
    select!(Gadget, |g| g.shelf == 1).fetch(store).unwrap()
}

/// The fields of every closed `memdex` span, in the order they closed.
#[derive(Clone, Default)]
struct Spans {
    open: Arc<Mutex<HashMap<u64, HashMap<String, String>>>>,
    closed: Arc<Mutex<Vec<HashMap<String, String>>>>,
}

struct Fields<'a>(&'a mut HashMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}").trim_matches('"').to_owned());
    }
}

impl<S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>> Layer<S> for Spans {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if attrs.metadata().name() == "memdex" {
            let mut fields = HashMap::new();
            attrs.record(&mut Fields(&mut fields));
            let mut open = self.open.lock().unwrap();
            // The `op` of the enclosing memdex span, if any: which operation this
            // one ran inside.
            let parent = ctx.span(id).and_then(|span| span.parent()).map(|parent| parent.id().into_u64());
            if let Some(op) = parent.and_then(|p| open.get(&p)).and_then(|f| f.get("op")).cloned() {
                fields.insert("parent_op".to_owned(), op);
            }
            open.insert(id.into_u64(), fields);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _: Context<'_, S>) {
        if let Some(fields) = self.open.lock().unwrap().get_mut(&id.into_u64()) {
            values.record(&mut Fields(fields));
        }
    }

    fn on_close(&self, id: Id, _: Context<'_, S>) {
        if let Some(fields) = self.open.lock().unwrap().remove(&id.into_u64()) {
            self.closed.lock().unwrap().push(fields);
        }
    }
}

/// One test, not two: `tracing` caches per call site whether anyone listens, and a
/// second test thread without a subscriber could race that cache.
#[test]
fn spans_and_metrics() {
    every_fetch_has_a_span_with_what_it_did();
    an_update_in_one_statement_is_a_transaction_span();
    async_transactions_are_spans();
    metrics_count_operations_hits_and_latency();
}

/// On PostgreSQL an update that keeps its row in its index nodes is one statement,
/// and so is a delete of a row this process wrote last; each is still seen as a
/// transaction, holding the span of its cache effects. On SQLite every write is a
/// transaction, seen once too (the one-statement attempts open no span of their own
/// where the database has none).
fn an_update_in_one_statement_is_a_transaction_span() {
    let postgres = memdex_tests::backends::postgres().create_database("observe_one_statement").expect("a database");
    let databases =
        [("postgresql", Store::builder().postgres(postgres), 1), ("sqlite", Store::builder().sqlite_in_memory(), 5)];
    for (system, builder, statements) in databases {
        let spans = Spans::default();
        let subscriber = tracing_subscriber::registry().with(spans.clone());
        let mut seen = Vec::new();
        tracing::subscriber::with_default(subscriber, || {
            let store = builder.in_process_cache().build().unwrap();
            store.migrate::<Gadget>().unwrap();
            store.insert(&Gadget { id: 1, shelf: 1, name: "g1".into() }).unwrap();
            type Write<'a> = &'a dyn Fn() -> Result<(), memdex::Error>;
            let writes: [(&str, Write<'_>); 2] = [
                ("update", &|| store.update(&Gadget { id: 1, shelf: 1, name: "renamed".into() })),
                // This process wrote the row last: on PostgreSQL its delete is
                // guarded by what it wrote, without reading the row first.
                ("delete", &|| store.delete::<Gadget>(&1)),
            ];
            for (what, write) in writes {
                spans.closed.lock().unwrap().clear();
                let before = store.stats().db_queries;
                write().unwrap();
                assert_eq!(store.stats().db_queries - before, statements, "{system}: {what}");
                seen.push((what, spans.closed.lock().unwrap().clone()));
            }
        });
        for (what, closed) in seen {
            let transactions: Vec<_> = closed.iter().filter(|f| f["op"] == "transaction").collect();
            assert_eq!(transactions.len(), 1, "{system}: {what}: {closed:?}");
            let transaction = (transactions[0]["ok"].as_str(), transactions[0]["db.system"].as_str());
            assert_eq!(transaction, ("true", system), "{what}");
            let effects = |f: &&HashMap<String, String>| f["op"] == "apply_effects" && f["round_trips"] == "1";
            let effects: Vec<_> = closed.iter().filter(effects).collect();
            assert_eq!(effects.len(), 1, "{system}: {what}: {closed:?}");
            let parent = effects[0].get("parent_op").map(String::as_str);
            assert_eq!(parent, Some("transaction"), "{system}: {what}: {closed:?}");
        }
    }
}

/// The async driver's transactions are spans as the blocking driver's are: a write
/// in one statement, and a transaction committed (holding its cache effects),
/// rolled back, and dropped (both not ok).
fn async_transactions_are_spans() {
    let spans = Spans::default();
    let subscriber = tracing_subscriber::registry().with(spans.clone());
    let postgres = memdex_tests::backends::postgres().create_database("observe_async").expect("a database");
    let mut seen: Vec<(&str, Vec<HashMap<String, String>>)> = Vec::new();
    tracing::subscriber::with_default(subscriber, || {
        block_on(async {
            let store = Store::builder().postgres(postgres).in_process_cache().build_async().await.unwrap();
            store.migrate::<Gadget>().await.unwrap();
            store.insert(&Gadget { id: 1, shelf: 1, name: "g1".into() }).await.unwrap();
            let mut take = |what| seen.push((what, std::mem::take(&mut *spans.closed.lock().unwrap())));
            take("setup");
            store.update(&Gadget { id: 1, shelf: 1, name: "renamed".into() }).await.unwrap();
            take("one statement");
            let mut tx = store.begin().await.unwrap();
            tx.insert(&Gadget { id: 2, shelf: 1, name: "g2".into() }).await.unwrap();
            tx.commit().await.unwrap();
            take("committed");
            let mut tx = store.begin().await.unwrap();
            tx.insert(&Gadget { id: 3, shelf: 1, name: "g3".into() }).await.unwrap();
            tx.rollback().await.unwrap();
            take("rolled back");
            let mut tx = store.begin().await.unwrap();
            tx.insert(&Gadget { id: 4, shelf: 1, name: "g4".into() }).await.unwrap();
            drop(tx);
            take("dropped");
        });
    });
    for (what, closed) in seen.into_iter().skip(1) {
        let transactions: Vec<_> = closed.iter().filter(|f| f["op"] == "transaction").collect();
        assert_eq!(transactions.len(), 1, "{what}: {closed:?}");
        let committed = matches!(what, "one statement" | "committed");
        let ok = if committed { "true" } else { "false" };
        assert_eq!(transactions[0]["ok"], ok, "{what}: {closed:?}");
        let effects: Vec<_> = closed.iter().filter(|f| f["op"] == "apply_effects").collect();
        assert_eq!(effects.len(), usize::from(committed), "{what}: {closed:?}");
        if committed {
            assert_eq!(effects[0].get("parent_op").map(String::as_str), Some("transaction"), "{what}: {closed:?}");
        }
    }
}

fn every_fetch_has_a_span_with_what_it_did() {
    let spans = Spans::default();
    let subscriber = tracing_subscriber::registry().with(spans.clone());
    tracing::subscriber::with_default(subscriber, || {
        let store = store();
        spans.closed.lock().unwrap().clear();
        assert_eq!(fetch_shelf(&store).len(), 2);
        assert_eq!(fetch_shelf(&store).len(), 2);
        store.update(&Gadget { id: 1, shelf: 0, name: "moved".into() }).unwrap();
    });
    let closed = spans.closed.lock().unwrap();
    let fetches: Vec<_> = closed.iter().filter(|f| f.get("op").map(String::as_str) == Some("fetch")).collect();
    assert_eq!(fetches.len(), 2, "one span per fetch: {closed:?}");
    let (cold, hot) = (fetches[0], fetches[1]);
    for span in [cold, hot] {
        assert_eq!(span["model"], "Gadget");
        assert_eq!(span["db.system"], "sqlite");
        assert_eq!(span["ok"], "true");
        assert_eq!(span["degraded"], "false");
    }
    // Cold: the node misses and the database answers (a snapshot and the in-flight
    // check), then the fills. Hot: the node hits, both objects come from the near
    // cache, in one round trip and no statement.
    assert_eq!((cold["node_hits"].as_str(), cold["node_misses"].as_str()), ("0", "1"), "{cold:?}");
    assert_ne!(cold["db_queries"], "0", "{cold:?}");
    assert_eq!((hot["node_hits"].as_str(), hot["node_misses"].as_str()), ("1", "0"), "{hot:?}");
    assert_eq!((hot["round_trips"].as_str(), hot["db_queries"].as_str()), ("1", "0"), "{hot:?}");
    assert_eq!(hot["near_hits"], "2", "{hot:?}");
    // The update: a transaction whose cache effects are a span of their own.
    assert!(closed.iter().any(|f| f["op"] == "transaction" && f["ok"] == "true"), "{closed:?}");
    assert!(closed.iter().any(|f| f["op"] == "apply_effects" && f["round_trips"] == "1"), "{closed:?}");
}

/// The value of one metric with these labels (as `name{k=v,…}`), from a snapshot.
fn metric<'v>(values: &'v HashMap<String, DebugValue>, name: &str, labels: &[(&str, &str)]) -> Option<&'v DebugValue> {
    let mut spelled: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    spelled.sort();
    values.get(&format!("{name}{{{}}}", spelled.join(",")))
}

fn counter(values: &HashMap<String, DebugValue>, name: &str, labels: &[(&str, &str)]) -> u64 {
    match metric(values, name, labels) {
        Some(DebugValue::Counter(n)) => *n,
        other => panic!("{name} {labels:?}: {other:?} in {:?}", values.keys().collect::<Vec<_>>()),
    }
}

fn metrics_count_operations_hits_and_latency() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let values = || -> HashMap<String, DebugValue> {
        snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .map(|(key, _, _, value)| {
                let key = key.key();
                let mut labels: Vec<String> = key.labels().map(|l| format!("{}={}", l.key(), l.value())).collect();
                labels.sort();
                (format!("{}{{{}}}", key.name(), labels.join(",")), value)
            })
            .collect()
    };
    let gauge = |values: &HashMap<String, DebugValue>, name: &str| match metric(values, name, &[]) {
        Some(DebugValue::Gauge(n)) => n.into_inner(),
        other => panic!("{name}: {other:?}"),
    };
    let stats = metrics::with_local_recorder(&recorder, || {
        let store = store();
        // The writes of the set-up ran the first periodic outbox drain, which set the
        // gauges: an exporter sees them although nobody has read `stats()`.
        let before = values();
        assert_eq!(gauge(&before, "memdex_db_pool_connections"), 1.0);
        assert_eq!(gauge(&before, "memdex_near_entries"), 0.0, "nothing fetched yet");
        fetch_shelf(&store);
        fetch_shelf(&store);
        store.stats()
    });
    assert_eq!(stats.db_pool_connections, 1);
    // Shelf 1's two gadgets, and the node's rows kept by the hot fetch.
    assert_eq!((stats.near_entries, stats.near_evictions), (3, 0), "{stats:?}");
    assert!(stats.near_bytes >= 3 * 96, "{stats:?}");
    let values = values();
    assert_eq!(gauge(&values, "memdex_near_entries"), 3.0);
    assert_eq!(gauge(&values, "memdex_near_bytes"), stats.near_bytes as f64);
    assert_eq!(counter(&values, "memdex_near_evictions_total", &[]), 0);
    let fetch = [("op", "fetch"), ("model", "Gadget")];
    assert_eq!(counter(&values, "memdex_operations_total", &[fetch[0], fetch[1], ("ok", "true")]), 2);
    assert_eq!(counter(&values, "memdex_node_misses_total", &fetch), 1);
    assert_eq!(counter(&values, "memdex_node_hits_total", &fetch), 1);
    assert_eq!(counter(&values, "memdex_near_hits_total", &fetch), 2);
    // The cold fetch reads the node and writes its fills back; the hot one reads.
    let round_trips = counter(&values, "memdex_cache_round_trips_total", &fetch);
    assert!(round_trips >= 3, "{round_trips} round trips");
    match metric(&values, "memdex_operation_seconds", &fetch) {
        Some(DebugValue::Histogram(samples)) => assert_eq!(samples.len(), 2),
        other => panic!("latency histogram: {other:?}"),
    }
    assert_eq!(gauge(&values, "memdex_db_pool_connections"), 1.0);

    // The async driver sets them after its periodic drain too.
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        block_on(async {
            let store = Store::builder().sqlite_in_memory().in_process_cache().build_async().await.unwrap();
            store.migrate::<Gadget>().await.unwrap();
            store.insert(&Gadget { id: 1, shelf: 1, name: "g1".into() }).await.unwrap();
        });
    });
    let gauges: Vec<String> =
        snapshotter.snapshot().into_vec().into_iter().map(|(key, ..)| key.key().name().to_owned()).collect();
    for name in
        ["memdex_db_pool_connections", "memdex_near_bytes", "memdex_near_entries", "memdex_near_evictions_total"]
    {
        assert!(gauges.iter().any(|g| g == name), "async store: {name} not set, only {gauges:?}");
    }
}
