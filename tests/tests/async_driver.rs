//! What only the async store can do wrong: futures dropped at any await point
//! (cancellation), and the blocking store called from inside a tokio runtime.
//!
//! Cancellation: fetches and writes are dropped after 0, 1, 2 … polls (each poll past
//! the first is an `.await` that actually waited), on PostgreSQL and on SQLite, with
//! memcached. Afterwards nothing may be out of step: every cached node lists every
//! row the database puts in it, every cached object equals its row, every read
//! answers what the database holds, and the pooled connections keep answering.

// Tests fail by panicking, with a message saying what went wrong.
#![allow(clippy::panic, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use memdex::cache::memcached::Memcached;
use memdex::cache::{CacheBackend, CacheConfig, CacheOp, CacheReply};
use memdex::grammar::keys::KeySpace;
use memdex::grammar::plan::NodeRef;
use memdex::{AsyncStore, Model, Store, Value, scan, select};
use memdex_tests::asynchronous::block_on;
use memdex_tests::models::Item;
use memdex_tests::models::{CartLine, line};
use memdex_tests::servers::memcached::MemcachedServer;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const CATEGORIES: i64 = 4;
const IDS: i64 = 16;

/// Polls its future at most `polls` times; dropped before it finished, the future
/// is cancelled at whatever `.await` it had reached.
struct DropAfterPolls<F> {
    inner: Option<Pin<Box<F>>>,
    polls: usize,
}

impl<F: Future> Future for DropAfterPolls<F> {
    type Output = Option<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if self.polls == 0 {
            self.inner = None;
            return Poll::Ready(None);
        }
        self.polls -= 1;
        let Some(inner) = self.inner.as_mut() else { return Poll::Ready(None) };
        match inner.as_mut().poll(cx) {
            Poll::Ready(out) => Poll::Ready(Some(out)),
            Poll::Pending => Poll::Pending,
        }
    }
}

fn at_most<F: Future>(polls: usize, future: F) -> DropAfterPolls<F> {
    DropAfterPolls { inner: Some(Box::pin(future)), polls }
}

/// The rows the database holds, through a `scan!` (no cache).
async fn database_rows(store: &AsyncStore) -> BTreeMap<i64, Item> {
    let rows = scan!(Item, |i| i.id >= 0).fetch_async(store).await.expect("scan");
    rows.into_iter().map(|r| (r.id, r)).collect()
}

/// Every cached node lists every id the database puts in it; every cached object
/// equals its row (or its row is gone and the object too).
fn check_cache(raw: &Memcached, namespace: &str, rows: &BTreeMap<i64, Item>, phase: &str) {
    let keys = KeySpace::new(namespace, Item::schema(), 0);
    for category in 0..CATEGORIES {
        let node = keys.node(Item::schema(), &NodeRef { index: Some(0), values: vec![Value::Int(category)] });
        let reply = raw.run(&[CacheOp::Get { key: &node, lease: None }]).remove(0).expect("memcached answers");
        let CacheReply::Hit { value, .. } = reply else { continue };
        // A placeholder (a lease that was never filled, possibly with appends) is not
        // a node, and memdex never reads it as one.
        let Some(listed) = memdex::__private::decode_node_ids(&value, memdex::Type::Int, None) else { continue };
        let listed: Vec<i64> = listed.iter().filter_map(Value::as_i64).collect();
        for row in rows.values().filter(|r| r.category_id == category) {
            assert!(listed.contains(&row.id), "{phase}: node {category} lacks {} (lists {listed:?})", row.id);
        }
    }
    for id in 1..=IDS {
        let key = keys.object(&Value::Int(id));
        let reply = raw.run(&[CacheOp::Get { key: &key, lease: None }]).remove(0).expect("memcached answers");
        let CacheReply::Hit { value, .. } = reply else { continue };
        if value.is_empty() {
            continue; // a lease placeholder
        }
        let cached: Item = memdex::__private::decode_object(&value).expect("an encoded Item");
        assert_eq!(rows.get(&id), Some(&cached), "{phase}: object {id} is stale");
    }
}

/// Every read answers what the database holds.
async fn check_reads(store: &AsyncStore, rows: &BTreeMap<i64, Item>, phase: &str) {
    for category in 0..CATEGORIES {
        let got = select!(Item, |i| i.category_id == category).fetch_async(store).await.expect("fetch");
        let want: Vec<Item> = rows.values().filter(|r| r.category_id == category).cloned().collect();
        assert_eq!(got, want, "{phase}: category {category}");
    }
    let both = select!(Item, |i| [0, 1].contains(&i.category_id)).fetch_async(store).await.expect("fetch");
    let want: Vec<Item> = rows.values().filter(|r| r.category_id <= 1).cloned().collect();
    assert_eq!(both, want, "{phase}: categories 0 and 1");
}

/// Cancels operations at every depth, then checks the cache and the reads.
fn cancel_everywhere(store: AsyncStore, raw: Memcached, namespace: &str) {
    block_on(store.migrate::<Item>()).expect("migrate");
    for id in 1..=IDS {
        block_on(store.insert(&Item { id, category_id: id % CATEGORIES, name: format!("item {id}") })).unwrap();
    }
    let mut rng = StdRng::seed_from_u64(7);
    // Per kind of operation (update, delete-and-insert transaction, fetch, text
    // fetch): how many were dropped mid-way and how many finished.
    let mut cancelled = [0u32; 4];
    let mut finished = [0u32; 4];
    // Every operation needs a handful of polls (each round trip and statement is
    // one): dropping after 0 to 23 covers every await point of each kind many times.
    for polls in 0..24 {
        for round in 0..8 {
            let id = rng.gen_range(1..=IDS);
            let item = Item { id, category_id: rng.gen_range(0..CATEGORIES), name: format!("v{polls}.{round}") };
            let category = rng.gen_range(0..CATEGORIES);
            let kind = rng.gen_range(0..4);
            let outcome = block_on(async {
                match kind {
                    // A write that may or may not commit: either way nothing may be
                    // left out of step (a missing row is re-inserted by a later
                    // round's update failing with NotFound; the test tolerates both).
                    0 => at_most(polls, store.update(&item)).await.map(|r| r.map(drop).or_else(not_found)),
                    1 => at_most(polls, async {
                        let mut tx = store.begin().await?;
                        tx.delete::<Item>(&item.id).await?;
                        tx.insert(&item).await?;
                        tx.commit().await
                    })
                    .await
                    .map(|r| r.or_else(not_found)),
                    2 => at_most(polls, select!(Item, |i| i.category_id == category).fetch_async(&store))
                        .await
                        .map(|r| r.map(drop)),
                    _ => at_most(
                        polls,
                        store.recall_text::<Item>("lambda i: i.category_id in cs", &[("cs", vec![0i64, 2].into())]),
                    )
                    .await
                    .map(|r| r.map(drop)),
                }
            });
            match outcome {
                None => {
                    cancelled[kind] += 1;
                    // A statement already handed to the blocking pool, or a COMMIT
                    // already sent, finishes on its own: let it land before comparing.
                    std::thread::sleep(Duration::from_millis(20));
                }
                Some(result) => {
                    result.unwrap_or_else(|e| panic!("after {polls} polls: {e}"));
                    finished[kind] += 1;
                }
            }
            // This process's next reads are right at once: a write cancelled after
            // its commit left its entry pending here (the outbox's periodic drain is
            // kept out of the way, so it cannot repair what the rule must).
            let rows = block_on(database_rows(&store));
            block_on(check_reads(&store, &rows, &format!("after an operation dropped after {polls} polls")));
        }
    }
    // A hot fetch is a round trip or two, so reads are dropped only at the first
    // few poll counts, writes at many more: each kind must have been both dropped
    // and finished (how often depends on how many polls each took).
    assert!(
        cancelled.iter().all(|&n| n > 0) && finished.iter().all(|&n| n > 0),
        "cancelled {cancelled:?}, finished {finished:?} (update, transaction, fetch, text fetch): every kind both ways"
    );
    let rows = block_on(database_rows(&store));
    // A deleted-and-not-reinserted row (a cancelled transaction that committed the
    // delete only) is impossible: the delete and the insert are one transaction.
    assert_eq!(rows.len() as i64, IDS, "every row exists: {rows:?}");
    block_on(check_reads(&store, &rows, "after the cancellations"));
    check_cache(&raw, namespace, &rows, "after the cancellations");
    // The pooled connections are in step: normal traffic goes on, right.
    for id in 1..=IDS {
        let moved = Item { id, category_id: (id + 1) % CATEGORIES, name: "settled".into() };
        block_on(store.update(&moved)).unwrap();
    }
    let rows = block_on(database_rows(&store));
    block_on(check_reads(&store, &rows, "after normal traffic"));
    block_on(check_reads(&store, &rows, "after normal traffic, hot"));
    check_cache(&raw, namespace, &rows, "after normal traffic");
    eprintln!("cancellation: {cancelled:?} dropped, {finished:?} finished; {:?}", store.stats());
}

/// An update of a row whose delete-and-insert was cancelled after the delete and
/// before the insert cannot happen (one transaction), but an update racing nothing
/// may still find no row if an earlier transaction rolled back half-way: never.
fn not_found(e: memdex::Error) -> Result<(), memdex::Error> {
    match e {
        memdex::Error::NotFound { .. } => Ok(()),
        other => Err(other),
    }
}

fn namespace(tag: &str) -> String {
    format!("cancel_{tag}_{}", std::process::id())
}

#[test]
fn dropped_futures_leave_nothing_out_of_step_on_postgres() {
    let memcached = MemcachedServer::start().expect("memcached starts");
    let ns = namespace("pg");
    let params = memdex_tests::backends::postgres().create_database(&ns).expect("create database").to_string();
    let store = block_on(
        Store::builder()
            .postgres(params)
            .namespace(ns.clone())
            .memcached([memcached.addr()])
            .outbox(Duration::from_secs(3600), Duration::from_secs(3600))
            .build_async(),
    )
    .expect("async store");
    let raw = Memcached::connect(&[memcached.addr()], CacheConfig::default()).expect("raw client");
    cancel_everywhere(store, raw, &ns);
}

#[test]
fn dropped_futures_leave_nothing_out_of_step_on_sqlite() {
    let memcached = MemcachedServer::start().expect("memcached starts");
    let ns = namespace("sqlite");
    let dir = std::env::temp_dir().join(format!("memdex-cancel-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("cancel.db");
    let _ = std::fs::remove_file(&path);
    let store = block_on(
        Store::builder()
            .sqlite(path.to_string_lossy())
            .namespace(ns.clone())
            .memcached([memcached.addr()])
            .outbox(Duration::from_secs(3600), Duration::from_secs(3600))
            .build_async(),
    )
    .expect("async store");
    let raw = Memcached::connect(&[memcached.addr()], CacheConfig::default()).expect("raw client");
    cancel_everywhere(store, raw, &ns);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The blocking store, on PostgreSQL (whose blocking driver runs a runtime of its
/// own), called from inside tokio tasks on both runtime flavours: it must work, never
/// panic with "Cannot start a runtime from within a runtime".
#[test]
fn the_blocking_store_works_inside_a_tokio_task() {
    let ns = namespace("inside");
    let params = memdex_tests::backends::postgres().create_database(&ns).expect("create database").to_string();
    let store = Store::builder().postgres(params).namespace(ns).in_process_cache().build().expect("store");
    store.migrate::<Item>().expect("migrate");
    let body = |store: Store, base: i64| async move {
        tokio::spawn(async move {
            store.insert(&Item { id: base, category_id: 1, name: "in a task".into() })?;
            let cat = 1;
            let rows = select!(Item, |i| i.category_id == cat).fetch(&store)?;
            Ok::<usize, memdex::Error>(rows.len())
        })
        .await
        .expect("the task did not panic")
    };
    let multi = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    assert_eq!(multi.block_on(body(store.clone(), 1)).expect("blocking calls in a multi-thread runtime"), 1);
    let single = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    assert_eq!(single.block_on(body(store, 2)).expect("blocking calls in a current-thread runtime"), 2);
}

/// The async driver runs the same paging machine: a hot page of an ordered index is
/// the node and the page's objects alone (two round trips, no statement), and equals
/// the database's page.
#[test]
fn a_hot_page_of_an_ordered_index_reads_only_its_objects_on_the_async_store() {
    let memcached = MemcachedServer::start().expect("memcached starts");
    let ns = namespace("ordered");
    let dir = tempfile::tempdir().expect("temp dir");
    let store = block_on(
        Store::builder()
            .sqlite(dir.path().join("ordered.db").to_string_lossy())
            .namespace(ns)
            .memcached([memcached.addr()])
            .near_cache_capacity(0)
            .build_async(),
    )
    .expect("async store");
    block_on(async {
        store.migrate::<CartLine>().await.expect("migrate");
        for id in 1..=60 {
            store.insert(&line(id, 1, (id * 37) % 61)).await.expect("insert");
        }
        let page = || select!(CartLine, |l| l.cart_id == 1).order_by_desc(CartLine::position()).limit(10).offset(20);
        let want = scan!(CartLine, |l| l.cart_id == 1)
            .order_by_desc(CartLine::position())
            .limit(10)
            .offset(20)
            .fetch_async(&store)
            .await
            .expect("scan");
        assert_eq!(page().fetch_async(&store).await.expect("cold page"), want);
        assert_eq!(page().fetch_async(&store).await.expect("warm page"), want);
        let before = store.stats();
        assert_eq!(page().fetch_async(&store).await.expect("hot page"), want);
        let after = store.stats();
        assert_eq!(after.object_hits - before.object_hits, 10, "the page's objects alone: {after:?}");
        assert_eq!(after.node_hits - before.node_hits, 1, "{after:?}");
        assert_eq!(after.cache_round_trips - before.cache_round_trips, 2, "the node, then the page: {after:?}");
        assert_eq!(after.db_queries, before.db_queries, "{after:?}");
    });
}
