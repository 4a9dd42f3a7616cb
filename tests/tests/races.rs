//! Every race rule of DESIGN.md as a deterministic interleaving: two "processes"
//! (two stores on one database and one cache) and a stepping cache that runs the
//! second one's write at exactly the point where the rule matters. No sleeps.
//!
//! Each test runs four times: with the stepped process on the blocking driver and on
//! the tokio driver (an `AsyncStore`, driven on the test runtime), each over a SQLite
//! file and over a MariaDB database. Both drivers run the same machines, so each
//! rule must hold on both; the databases differ in how a write reads its old row.
//!
//! Each test isolates its own rule: no outbox drain runs during it (see `world`),
//! since a drain repairs the cache whatever rule was broken; only the drain's own
//! test drains. Each test was checked against a mutant of its rule (RELIABILITY.md,
//! "Mutation testing").

// Tests fail by panicking, with a message saying what went wrong.
#![allow(clippy::panic, clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use memdex::cache::in_process::InProcessCache;
use memdex::cache::{CacheBackend, CacheConfig, CacheOp, CacheReply};
use memdex::grammar::keys::KeySpace;
use memdex::grammar::plan::NodeRef;
use memdex::{Error, Model, Select, Stats, Store, Value, select};
use memdex_tests::asynchronous::{EitherStore, block_on};
use memdex_tests::models::{Item, item};
use memdex_tests::shared_db::{Engine, SharedDb};
use memdex_tests::stepping::{Step, Stepping, unreachable};
use serde::{Deserialize, Serialize};

/// Which driver the stepped process runs on, over which database the processes
/// share.
#[derive(Clone, Copy, Debug)]
struct Driver {
    tokio: bool,
    backend: Engine,
}

const BLOCKING: Driver = Driver { tokio: false, backend: Engine::Sqlite };

/// Every rule on both drivers and on an embedded and two server databases (the write
/// path reads the old row under SQLite's write lock on SQLite, with `SELECT … FOR
/// UPDATE` on MariaDB, and in the write's own statement — `RETURNING` — on
/// PostgreSQL).
const DRIVERS: [Driver; 6] = [
    BLOCKING,
    Driver { tokio: true, backend: Engine::Sqlite },
    Driver { tokio: false, backend: Engine::MariaDb },
    Driver { tokio: true, backend: Engine::MariaDb },
    Driver { tokio: false, backend: Engine::Postgres },
    Driver { tokio: true, backend: Engine::Postgres },
];

/// The stepped process: a blocking store, or an async one awaited on the test
/// runtime. Either way, its cache batches go through the stepper.
#[derive(Clone, Debug)]
struct Side(EitherStore);

impl Side {
    /// A process on a blocking store.
    fn blocking(store: Store) -> Side {
        Side(EitherStore::Blocking(store))
    }

    fn insert(&self, row: &Item) -> Result<(), Error> {
        self.0.insert(row)
    }

    fn update(&self, row: &Item) -> Result<(), Error> {
        self.0.update(row)
    }

    fn delete(&self, id: i64) -> Result<(), Error> {
        self.0.delete::<Item>(&id)
    }

    /// The rows of `q`, through this process's driver.
    fn fetch<T: Model>(&self, q: &Select<'_, T>) -> Vec<T> {
        self.0.fetch(q).expect("fetch")
    }

    fn rows(&self, cat: i64) -> Vec<Item> {
        self.fetch(&select!(Item, |i| i.category_id == cat))
    }

    fn category(&self, cat: i64) -> Vec<i64> {
        ids(&self.rows(cat))
    }

    /// The rows in either of two categories: a fetch over two nodes.
    fn rows_in_either(&self, a: i64, b: i64) -> Vec<Item> {
        self.fetch(&select!(Item, |i| i.category_id == a || i.category_id == b))
    }

    fn categories(&self, a: i64, b: i64) -> Vec<i64> {
        ids(&self.rows_in_either(a, b))
    }

    fn stats(&self) -> Stats {
        self.0.stats()
    }

    fn update_line(&self, line: &Line) -> Result<(), Error> {
        self.0.update(line)
    }

    /// Page `p` of a cart, through the ordered index when the query allows it.
    fn page(&self, p: &Page) -> Vec<Line> {
        let cart = p.cart;
        let q = select!(Line, |l| l.cart_id == cart);
        let q = if p.descending { q.order_by_desc(Line::position()) } else { q.order_by(Line::position()) };
        let q = q.limit(p.limit).offset(p.offset);
        let q = match &p.after {
            Some(last) => q.after(last),
            None => q,
        };
        self.fetch(&q)
    }
}

/// Two stores on one database file and one cache; the first one's batches go
/// through the returned stepper.
struct World {
    stepped: Side,
    other: Store,
    stepper: Stepping,
    /// The database both processes share.
    db: SharedDb,
}

/// Longer than any test: in a [`world`], no outbox entry is ever drained.
const QUIET: Duration = Duration::from_secs(600);

/// A world whose outbox is never drained during the test (interval and grace of ten
/// minutes; a store's first call drains, and finds nothing that old). Each race test
/// must fail when its own rule is broken, and a drain would hide that: it deletes
/// every key a recent write touched, and the next read refills nodes and objects
/// from the database, repairing exactly the damage the test exists to expose (with
/// a drain on every call, a lazy-removal write-back by plain `set` and an outbox
/// entry marked done instead of pending both passed). Only the test of the drain
/// itself uses [`draining_world`].
/// The race tests run with the near cache on (the default), named here because some
/// tests compare a store without it.
const NEAR: usize = 64 << 20;

fn world(tag: &str, driver: Driver) -> World {
    world_with_outbox(tag, driver, QUIET, QUIET, NEAR)
}

/// A world where every call of every store drains every outbox entry (interval and
/// grace zero): for the test of the drain itself.
fn draining_world(tag: &str, driver: Driver) -> World {
    world_with_outbox(tag, driver, Duration::ZERO, Duration::ZERO, NEAR)
}

impl World {
    /// A third process on the same database and cache, unstepped, never draining,
    /// with a near cache of `near` bytes.
    fn third_process(&self, near: usize) -> Store {
        self.db
            .builder()
            .cache(self.stepper.plain())
            .outbox(QUIET, QUIET)
            .near_cache_capacity(near)
            .build()
            .expect("third store")
    }

    /// Deletes object `id` from the shared cache (an eviction).
    fn evict_object(&self, id: i64) {
        let key = KeySpace::new("memdex", Item::schema(), 0).object(&Value::Int(id));
        self.stepper.plain().run(&[CacheOp::Delete { key: &key }]);
    }

    /// K12's check: the near reader (`other`) finds category `cat` empty, its deleted
    /// row named there by one late append alone, whose object it read rather than
    /// trust the version it keeps.
    fn assert_late_append_not_trusted(&self, cat: i64) {
        let before = self.other.stats();
        assert_eq!(
            category(&self.other, cat),
            Vec::<i64>::new(),
            "the deleted row stays deleted after the late append"
        );
        let after = self.other.stats();
        assert_eq!(after.near_unverified - before.near_unverified, 1, "the appended entry was not trusted: {after:?}");
    }

    /// Neither process applied an outbox entry: whatever the test saw, no drain
    /// repaired it.
    fn assert_nothing_drained(&self) {
        for stats in [self.stepped.stats(), self.other.stats()] {
            assert_eq!(stats.outbox_drained, 0, "an outbox drain ran during the test: {stats:?}");
        }
    }
}

/// `world` with the outbox drained every `interval`, entries older than `grace`, and
/// a near cache of `stepped_near` bytes in the stepped process (`other` keeps one of
/// [`NEAR`]).
fn world_with_outbox(tag: &str, driver: Driver, interval: Duration, grace: Duration, stepped_near: usize) -> World {
    world_writing(tag, driver, (interval, grace), stepped_near, Writes::Reading)
}

/// [`world_with_outbox`] whose stores write as `writes` says.
fn world_writing(
    tag: &str,
    driver: Driver,
    (interval, grace): (Duration, Duration),
    stepped_near: usize,
    writes: Writes,
) -> World {
    let db = SharedDb::new(driver.backend, &format!("races_{tag}_{}", driver.tokio));
    let cache: Arc<dyn CacheBackend> = Arc::new(InProcessCache::new(CacheConfig::default()));
    let stepper = Stepping::new(cache);
    let builder = |cache: Box<dyn CacheBackend>, near: usize| {
        let builder = db.builder().guarded_writes(writes == Writes::Guarded);
        builder.cache(cache).outbox(interval, grace).near_cache_capacity(near)
    };
    let other = builder(stepper.plain(), NEAR).build().expect("store");
    other.migrate::<Item>().expect("migrate");
    let stepped = if driver.tokio {
        Side(EitherStore::Tokio(
            block_on(builder(Box::new(stepper.clone()), stepped_near).build_async()).expect("store"),
        ))
    } else {
        Side::blocking(builder(Box::new(stepper.clone()), stepped_near).build().expect("store"))
    };
    World { stepped, other, stepper, db }
}

fn ids(items: &[Item]) -> Vec<i64> {
    items.iter().map(|i| i.id).collect()
}

fn category(store: &Store, cat: i64) -> Vec<i64> {
    ids(&select!(Item, |i| i.category_id == cat).fetch(store).expect("fetch"))
}

/// The ids cached node `category` lists, in order, each as often as it is listed,
/// read straight from the shared cache (no store involved). `None`: not a complete
/// node (missing, a lease placeholder, garbage).
fn node_ids(w: &World, category: i64) -> Option<Vec<i64>> {
    listed_in(&*w.stepper.plain(), category)
}

/// [`node_ids`] of the node in `cache`.
fn listed_in(cache: &dyn CacheBackend, category: i64) -> Option<Vec<i64>> {
    let node = node_key(category);
    let reply = cache.run(&[CacheOp::Get { key: &node, lease: None }]).remove(0).expect("cache answers");
    let CacheReply::Hit { value, .. } = reply else { return None };
    let listed = memdex::__private::decode_node_ids(&value, memdex::Type::Int, None)?;
    Some(listed.iter().filter_map(Value::as_i64).collect())
}

/// The cache key of category `category`'s index node.
fn node_key(category: i64) -> String {
    let keys = KeySpace::new("memdex", Item::schema(), 0);
    keys.node(Item::schema(), &NodeRef { index: Some(0), values: vec![Value::Int(category)] })
}

/// Object `id` as the shared cache holds it, decoded (no store involved). `None`:
/// not cached, or not an object (a lease placeholder).
fn cached_object(w: &World, id: i64) -> Option<Item> {
    let keys = KeySpace::new("memdex", Item::schema(), 0);
    let key = keys.object(&Value::Int(id));
    let reply = w.stepper.plain().run(&[CacheOp::Get { key: &key, lease: None }]).remove(0).expect("cache answers");
    let CacheReply::Hit { value, .. } = reply else { return None };
    memdex::__private::decode_object(&value)
}

/// Whether a batch changes the cache (a write's batch, a fill, a clean-up), as
/// opposed to reading it.
fn writes_cache(ops: &[CacheOp<'_>]) -> bool {
    ops.iter().any(|op| !matches!(op, CacheOp::Get { .. } | CacheOp::GetCas { .. }))
}

fn has_cas(ops: &[CacheOp<'_>]) -> bool {
    ops.iter().any(|op| matches!(op, CacheOp::Cas { .. }))
}

/// Rule 1: a write between a reader's miss and its fill makes the fill fail, so the
/// node never lacks the written id.
#[test]
fn fill_under_lease_loses_to_a_write_between_miss_and_fill() {
    DRIVERS.into_iter().for_each(fill_under_lease_loses_to_a_write_between_miss_and_fill_on);
}

fn fill_under_lease_loses_to_a_write_between_miss_and_fill_on(driver: Driver) {
    let w = world("lease", driver);
    w.other.insert(&item(1, 5)).unwrap();
    let other = w.other.clone();
    // The reader won the lease and read the database (category 5 = [1]); before its
    // fill lands, another process moves item 2 into category 5.
    w.stepper.on_batch(move |ops, _| {
        if has_cas(ops) {
            other.insert(&item(2, 5)).unwrap();
        }
        Step::Proceed
    });
    assert_eq!(w.stepped.category(5), vec![1], "the read began before the insert");
    w.stepper.clear();
    assert_ne!(node_ids(&w, 5), Some(vec![1]), "the fill stored a node without item 2");
    assert_eq!(category(&w.other, 5), vec![1, 2], "the fill must not have hidden item 2");
    // The lost fill deleted its placeholder (which held the append but no header and
    // would have blocked every fill until its lease expired), so that read filled it.
    assert_eq!(node_ids(&w, 5), Some(vec![1, 2]), "the placeholder of the lost fill was left behind");
    assert_eq!(w.stepped.category(5), vec![1, 2]);
    assert!(w.stepped.stats().fills_lost >= 1, "{:?}", w.stepped.stats());
    w.assert_nothing_drained();
}

/// Rule 1's other end: a lease won for an object whose row is gone (deleted since
/// its node listed it) has nothing to fill, and is released at once rather than left
/// to block other readers' fills until it expires.
#[test]
fn a_lease_with_nothing_to_fill_is_released() {
    DRIVERS.into_iter().for_each(a_lease_with_nothing_to_fill_is_released_on);
}

fn a_lease_with_nothing_to_fill_is_released_on(driver: Driver) {
    let w = world("release", driver);
    w.other.insert(&item(1, 5)).unwrap();
    w.other.insert(&item(2, 5)).unwrap();
    assert_eq!(w.stepped.category(5), vec![1, 2]);
    w.other.delete::<Item>(&2).unwrap();
    assert_eq!(node_ids(&w, 5).map(|ids| ids.contains(&2)), Some(true), "the delete's entry names 2");
    let before = w.stepped.stats();
    assert_eq!(w.stepped.category(5), vec![1]);
    let after = w.stepped.stats();
    assert!(after.object_misses > before.object_misses, "object 2 was read under a lease: {after:?}");
    let keys = KeySpace::new("memdex", Item::schema(), 0);
    let key = keys.object(&Value::Int(2));
    let reply = w.stepper.plain().run(&[CacheOp::Get { key: &key, lease: None }]).remove(0);
    assert_eq!(reply, Ok(CacheReply::Miss), "the placeholder of a row that is gone was left behind");
    assert_eq!(node_ids(&w, 5), Some(vec![1]), "and the node was cleaned");
    w.assert_nothing_drained();
}

/// Rule 2: the lazy-removal write-back uses CAS, so an append that lands between
/// the reader's get and its write-back survives.
#[test]
fn lazy_removal_write_back_keeps_a_concurrent_append() {
    DRIVERS.into_iter().for_each(lazy_removal_write_back_keeps_a_concurrent_append_on);
}

fn lazy_removal_write_back_keeps_a_concurrent_append_on(driver: Driver) {
    let w = world("lazy", driver);
    w.other.insert(&item(1, 5)).unwrap();
    w.other.insert(&item(2, 5)).unwrap();
    assert_eq!(category(&w.other, 5), vec![1, 2]);
    w.other.update(&item(2, 6)).unwrap(); // node 5 still lists 2: removed lazily
    let other = w.other.clone();
    w.stepper.on_batch(move |ops, _| {
        if has_cas(ops) {
            other.insert(&item(3, 5)).unwrap();
        }
        Step::Proceed
    });
    assert_eq!(w.stepped.category(5), vec![1]);
    w.stepper.clear();
    let listed = node_ids(&w, 5).expect("a lost clean-up leaves the node cached");
    assert!(listed.contains(&3), "the write-back overwrote the append of 3: node 5 lists {listed:?}");
    assert_eq!(category(&w.other, 5), vec![1, 3], "the append of 3 must survive the write-back");
    // Without the race the write-back lands, and the next read does no removal.
    let before = w.stepped.stats().lazy_removals;
    assert_eq!(w.stepped.category(5), vec![1, 3]);
    assert_eq!(w.stepped.category(5), vec![1, 3]);
    assert!(w.stepped.stats().lazy_removals - before <= 1);
    w.assert_nothing_drained();
}

/// The other half of lazy removal: a row the database still puts in its node stays
/// listed, once, at its new version. An edit of a field no index reads appends the
/// new version to the row's own node; the next read loads the row from the database
/// (its object was invalidated) and must write the node back clean: no removal, no
/// "re-homing" append to the very node the row is in (which would change the
/// node's CAS, lose the clean-up, and leave the node growing by one duplicate per
/// read). Answers alone cannot tell: they are right either way.
#[test]
fn an_edit_that_keeps_a_row_in_its_node_is_not_a_lazy_removal() {
    DRIVERS.into_iter().for_each(an_edit_that_keeps_a_row_in_its_node_is_not_a_lazy_removal_on);
}

fn an_edit_that_keeps_a_row_in_its_node_is_not_a_lazy_removal_on(driver: Driver) {
    // No drain (see `world`): a drain deletes the edited row's node, and the refill
    // from the database would leave it clean whatever the write-back did.
    let w = world("edit", driver);
    w.other.insert(&item(1, 5)).unwrap();
    w.other.insert(&item(2, 5)).unwrap();
    assert_eq!(w.stepped.category(5), vec![1, 2]);
    assert_eq!(node_ids(&w, 5), Some(vec![1, 2]), "filled from the database");
    w.other.update(&Item { id: 1, category_id: 5, name: "renamed".into() }).unwrap();
    let appended = node_ids(&w, 5).expect("the node stays cached");
    assert!(appended.len() > 2 && appended[..2] == [1, 2], "the edit appends its new version: {appended:?}");
    assert!(appended[2..].iter().all(|&id| id == 1), "{appended:?}");

    let before = w.stepped.stats();
    let rows = w.stepped.rows(5);
    assert_eq!(ids(&rows), vec![1, 2]);
    assert_eq!(rows[0].name, "renamed");
    let after = w.stepped.stats();
    assert_eq!(after.db_queries - before.db_queries, 1, "one statement loads the edited row: {after:?}");
    assert_eq!(after.lazy_removals, before.lazy_removals, "no id left its node: {after:?}");
    assert_eq!(after.fills_lost, before.fills_lost, "the clean-up must not race its own append: {after:?}");
    assert_eq!(node_ids(&w, 5), Some(vec![1, 2]), "written back clean: each id once, nothing appended");

    // Clean, the node names the versions the reader kept: the next read needs
    // neither the database nor a write.
    let before = w.stepped.stats();
    assert_eq!(w.stepped.rows(5), rows);
    let after = w.stepped.stats();
    assert_eq!(after.db_queries, before.db_queries, "{after:?}");
    assert_eq!(after.lazy_removals, before.lazy_removals, "{after:?}");
    assert_eq!(node_ids(&w, 5), Some(vec![1, 2]));
    w.assert_nothing_drained();
}

/// The registry names the indexes the writer declares as well as those it does not;
/// a write appends its entry to each node once all the same (a second append of the
/// same entry would grow the node by two entries a write, toward the size at which
/// a node is deleted, K11).
#[test]
fn a_write_appends_its_entry_to_each_node_once() {
    let w = world("append_once", BLOCKING);
    w.other.insert(&item(1, 5)).unwrap();
    w.other.insert(&item(2, 6)).unwrap();
    assert_eq!(w.stepped.category(5), vec![1]);
    assert_eq!(w.stepped.category(6), vec![2]);
    w.other.update(&item(1, 6)).unwrap();
    assert_eq!(node_ids(&w, 5), Some(vec![1, 1]), "the node the row left: one entry appended");
    assert_eq!(node_ids(&w, 6), Some(vec![2, 1]), "the node the row joined: one entry appended");
    w.other.update(&Item { id: 1, category_id: 6, name: "renamed".into() }).unwrap();
    assert_eq!(node_ids(&w, 6), Some(vec![2, 1, 1]), "an edit in place: one entry appended");
    w.assert_nothing_drained();
}

/// Rule 3: two writers whose cache batches land in the opposite order of their
/// commits never leave the older row cached. A read through an index node would
/// not show it (the node names both new versions, so the database confirms the
/// row); a key lookup has no node to doubt the object, so it is read first, and the
/// cached bytes are inspected directly.
#[test]
fn cache_batches_in_the_opposite_order_of_commits_leave_no_stale_object() {
    DRIVERS.into_iter().for_each(cache_batches_in_the_opposite_order_of_commits_leave_no_stale_object_on);
}

fn cache_batches_in_the_opposite_order_of_commits_leave_no_stale_object_on(driver: Driver) {
    let w = world("order", driver);
    w.other.insert(&item(1, 5)).unwrap();
    assert_eq!(category(&w.other, 5), vec![1]); // object 1 cached
    let other = w.other.clone();
    let fired = Arc::new(AtomicUsize::new(0));
    let f = fired.clone();
    // Writer A (stepped) commits name "a"; before its batch lands (its only cache
    // batch, whatever it holds), writer B commits name "b" and applies its batch;
    // then A's batch lands.
    w.stepper.on_batch(move |ops, _| {
        if writes_cache(ops) && f.fetch_add(1, Ordering::SeqCst) == 0 {
            other.update(&Item { id: 1, category_id: 5, name: "b".into() }).unwrap();
        }
        Step::Proceed
    });
    w.stepped.update(&Item { id: 1, category_id: 5, name: "a".into() }).unwrap();
    w.stepper.clear();
    assert_eq!(fired.load(Ordering::SeqCst), 1);
    let cached = cached_object(&w, 1);
    assert!(cached.as_ref().is_none_or(|row| row.name == "b"), "the older row is cached: {cached:?}");
    let by_key = select!(Item, |i| i.id == 1).fetch(&w.other).unwrap();
    assert_eq!(by_key[0].name, "b", "B committed last");
    let rows = select!(Item, |i| i.category_id == 5).fetch(&w.other).unwrap();
    assert_eq!(rows[0].name, "b", "B committed last");
    let rows = w.stepped.rows(5);
    assert_eq!(rows[0].name, "b");
    w.assert_nothing_drained();
}

/// The rule behind lazy removal: a reader may see a node with an appended id
/// before the invalidation of that id's object lands (they can sit on different
/// servers). It must not drop the id on the stale object's word.
#[test]
fn an_append_seen_before_the_object_invalidation_is_not_dropped() {
    DRIVERS.into_iter().for_each(an_append_seen_before_the_object_invalidation_is_not_dropped_on);
}

fn an_append_seen_before_the_object_invalidation_is_not_dropped_on(driver: Driver) {
    let w = world("shards", driver);
    w.stepped.insert(&item(1, 5)).unwrap();
    w.stepped.insert(&item(9, 6)).unwrap();
    assert_eq!(w.stepped.category(5), vec![1]);
    assert_eq!(w.stepped.category(6), vec![9]); // object 9 cached with category 6
    let other = w.other.clone();
    let fired = Arc::new(AtomicUsize::new(0));
    let f = fired.clone();
    // Move 9 to category 5: the append reaches its node, then another process reads
    // category 5, and only then does the object's invalidation land.
    w.stepper.on_batch(move |ops, inner| {
        if !ops.iter().any(|op| matches!(op, CacheOp::Append { .. })) || f.fetch_add(1, Ordering::SeqCst) > 0 {
            return Step::Proceed;
        }
        let appends: Vec<CacheOp<'_>> = ops.iter().filter(|op| matches!(op, CacheOp::Append { .. })).copied().collect();
        let _ = inner.run(&appends);
        let seen = category(&other, 5);
        assert_eq!(seen, vec![1, 9], "the committed move is visible once its append is");
        let replies = inner.run(ops);
        Step::Reply(replies)
    });
    w.stepped.update(&item(9, 5)).unwrap();
    w.stepper.clear();
    assert_eq!(fired.load(Ordering::SeqCst), 1);
    assert_eq!(category(&w.other, 5), vec![1, 9], "the node must still list 9");
    assert_eq!(category(&w.other, 6), Vec::<i64>::new());
    w.assert_nothing_drained();
}

/// Rule 4: a cache batch that fails after the commit. The writer keeps the entry
/// pending and applies it before its own next read, which is right at once; since
/// the cache is shared, another process is right from then on too. No periodic
/// drain runs here (it would repair the cache whether or not the writer kept its
/// entry); another process's drain is the next test's rule.
#[test]
fn a_cache_failure_after_commit_is_repaired_through_the_outbox() {
    DRIVERS.into_iter().for_each(a_cache_failure_after_commit_is_repaired_through_the_outbox_on);
}

fn a_cache_failure_after_commit_is_repaired_through_the_outbox_on(driver: Driver) {
    let w = world("outbox", driver);
    w.stepped.insert(&item(1, 5)).unwrap();
    w.stepped.insert(&item(2, 6)).unwrap();
    assert_eq!(category(&w.other, 5), vec![1]);
    assert_eq!(category(&w.other, 6), vec![2]);
    // The writer's cache dies for exactly its write batch.
    let down = Arc::new(AtomicUsize::new(1));
    let d = down.clone();
    let failed_ops = Arc::new(AtomicUsize::new(0));
    let failed = failed_ops.clone();
    w.stepper.on_batch(move |ops, _| {
        if d.load(Ordering::SeqCst) > 0 && ops.iter().any(|op| matches!(op, CacheOp::Append { .. })) {
            d.store(0, Ordering::SeqCst);
            failed.store(ops.len(), Ordering::SeqCst);
            return Step::Reply(unreachable(ops));
        }
        Step::Proceed
    });
    let before = w.stepped.stats();
    w.stepped.update(&item(2, 5)).unwrap();
    assert_eq!(down.load(Ordering::SeqCst), 0, "the batch was failed");
    let after = w.stepped.stats();
    assert_eq!(after.outbox_deferred, 1);
    assert_eq!(
        after.cache_errors - before.cache_errors,
        failed_ops.load(Ordering::SeqCst) as u64,
        "every failed op of the batch is counted: {after:?}"
    );
    assert_eq!(node_ids(&w, 5), Some(vec![1]), "the append to the new node was lost");
    assert_eq!(cached_object(&w, 2), Some(item(2, 6)), "the stale object is still cached");
    // The writer: right at once (it applies its own entry before reading).
    assert_eq!(w.stepped.category(5), vec![1, 2]);
    assert_eq!(w.stepped.stats().outbox_drained, 1, "the writer applied its own entry");
    assert_eq!(category(&w.other, 6), Vec::<i64>::new());
    assert_eq!(category(&w.other, 5), vec![1, 2]);
    assert_eq!(w.other.stats().outbox_drained, 0, "no periodic drain: {:?}", w.other.stats());
}

/// Rule 4, the writer dies right after its commit: its entry is drained by another
/// process.
#[test]
fn a_writer_that_dies_after_commit_is_repaired_by_another_process() {
    DRIVERS.into_iter().for_each(a_writer_that_dies_after_commit_is_repaired_by_another_process_on);
}

fn a_writer_that_dies_after_commit_is_repaired_by_another_process_on(driver: Driver) {
    let w = draining_world("dies", driver);
    w.stepped.insert(&item(1, 5)).unwrap();
    w.stepped.insert(&item(2, 6)).unwrap();
    assert_eq!(category(&w.other, 5), vec![1]);
    assert_eq!(category(&w.other, 6), vec![2]);
    w.stepper.on_batch(|ops, _| Step::Reply(unreachable(ops)));
    w.stepped.update(&item(2, 5)).unwrap();
    // The writing process is gone before it could drain anything.
    let World { stepped, other, stepper, db: _db } = w;
    drop(stepped);
    stepper.clear();
    // The other process drains at its next read (interval and grace are zero here).
    assert_eq!(category(&other, 5), vec![1, 2]);
    assert_eq!(category(&other, 6), Vec::<i64>::new());
    assert!(other.stats().outbox_drained >= 1, "{:?}", other.stats());
}

/// K10: an updated row leaves its old node in the database at the commit, but
/// reaches its new node in the cache only with the writer's batch. A node filled
/// from the database in between (here: evicted and refilled by another process)
/// used to drop the id while the new node did not list it yet, so a query over both
/// nodes — the row matched it throughout — missed the row. A fill now keeps the ids
/// of updates whose outbox entry is still there. The outbox is not drained during
/// the test (a drain would delete the new node and hide the bug).
#[test]
fn a_node_refilled_between_a_commit_and_its_batch_keeps_the_moving_id() {
    DRIVERS.into_iter().for_each(a_node_refilled_between_a_commit_and_its_batch_keeps_the_moving_id_on);
}

fn a_node_refilled_between_a_commit_and_its_batch_keeps_the_moving_id_on(driver: Driver) {
    let w = world("refill", driver);
    w.stepped.insert(&item(1, 5)).unwrap();
    w.stepped.insert(&item(2, 6)).unwrap();
    assert_eq!(category(&w.other, 5), vec![1]);
    assert_eq!(category(&w.other, 6), vec![2]);
    let other = w.other.clone();
    let fired = Arc::new(AtomicUsize::new(0));
    let f = fired.clone();
    w.stepper.on_batch(move |ops, inner| {
        let appended = ops.iter().find_map(|op| match op {
            CacheOp::Append { key, .. } => Some(key.to_string()),
            _ => None,
        });
        let Some(new_node) = appended else { return Step::Proceed };
        if f.fetch_add(1, Ordering::SeqCst) > 0 {
            return Step::Proceed;
        }
        // Committed, batch not sent yet: the old node is evicted and another
        // process refills it from the database, which already has the move.
        let old_node = format!("{}5", new_node.strip_suffix('6').expect("a node key ends with its value"));
        let _ = inner.run(&[CacheOp::Delete { key: &old_node }]);
        // (Item 1 may or may not show here: its cached object is the old version
        // until the batch lands, and the write has not returned.)
        let _ = category(&other, 5);
        // Both nodes are cached now. Item 1 matched this query before, during and
        // after the move.
        let both = ids(&select!(Item, |i| [5, 6].contains(&i.category_id)).fetch(&other).expect("fetch"));
        assert_eq!(both, vec![1, 2], "a row that matched throughout was missed");
        Step::Proceed
    });
    w.stepped.update(&item(1, 6)).unwrap();
    w.stepper.clear();
    assert_eq!(fired.load(Ordering::SeqCst), 1);
    assert_eq!(category(&w.other, 6), vec![1, 2]);
    assert_eq!(category(&w.other, 5), Vec::<i64>::new());
    assert_eq!(category(&w.other, 6), vec![1, 2]);
    w.assert_nothing_drained();
}

/// `Item` as a build that declares no index: same table and columns. Its writes
/// append to the nodes of the index `Item` registered (`migrate`), from its own
/// images, as a build of a rolling deploy does.
#[derive(Model, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[memdex(table = "item")]
pub struct Unindexed {
    #[memdex(key)]
    pub id: i64,
    pub category_id: i64,
    pub name: String,
}

/// K10 for a writer that reaches an index's nodes through the registry alone (it
/// declares no index): its update of a row that moves between nodes names the row
/// in its outbox entry too, so a node refilled from the database between its commit
/// and its batch keeps the moving id. (A model with indexes of its own names its
/// updated rows anyway; this one has no other reason to.)
#[test]
fn a_node_refilled_before_the_batch_of_a_writer_without_the_index_keeps_the_moving_id() {
    let db = SharedDb::new(Engine::Sqlite, "races_refill_unindexed");
    let stepper = Stepping::new(Arc::new(InProcessCache::new(CacheConfig::default())));
    let reader = db.builder().cache(stepper.plain()).outbox(QUIET, QUIET).build().expect("store");
    reader.migrate::<Item>().expect("migrate: registers the index on category_id");
    let writer = db.builder().cache(Box::new(stepper.clone())).outbox(QUIET, QUIET).build().expect("store");
    writer.migrate::<Unindexed>().expect("migrate");
    reader.insert(&item(1, 5)).unwrap();
    reader.insert(&item(2, 6)).unwrap();
    assert_eq!(category(&reader, 5), vec![1]);
    assert_eq!(category(&reader, 6), vec![2]);
    let keys = KeySpace::new("memdex", Item::schema(), 0);
    let node = |c: i64| keys.node(Item::schema(), &NodeRef { index: Some(0), values: vec![Value::Int(c)] });
    let (old_node, new_node) = (node(5), node(6));
    let other = reader.clone();
    let fired = Arc::new(AtomicUsize::new(0));
    let f = fired.clone();
    stepper.on_batch(move |ops, inner| {
        let appends_to_new = ops.iter().any(|op| matches!(op, CacheOp::Append { key, .. } if *key == new_node));
        if !appends_to_new || f.fetch_add(1, Ordering::SeqCst) > 0 {
            return Step::Proceed;
        }
        // Committed, batch not sent: the old node is evicted and refilled from the
        // database, which already has the move.
        let _ = inner.run(&[CacheOp::Delete { key: &old_node }]);
        let _ = category(&other, 5);
        let both = ids(&select!(Item, |i| [5, 6].contains(&i.category_id)).fetch(&other).expect("fetch"));
        assert_eq!(both, vec![1, 2], "a row that matched throughout was missed");
        Step::Proceed
    });
    writer.update(&Unindexed { id: 1, category_id: 6, name: "item 1".into() }).unwrap();
    stepper.clear();
    assert_eq!(fired.load(Ordering::SeqCst), 1, "the writer appends to the registered index's new node");
    assert_eq!(category(&reader, 6), vec![1, 2]);
    assert_eq!(category(&reader, 5), Vec::<i64>::new());
    for store in [&reader, &writer] {
        assert_eq!(store.stats().outbox_drained, 0, "an outbox drain ran during the test: {:?}", store.stats());
    }
}

/// Rule 4's bookkeeping: a write's outbox entry, once its cache batch has landed, is
/// deleted in the same process's next transaction, so the table holds the last
/// write's entry and no more (node fills read the entries in flight, and keep every
/// row they name as a candidate: applied entries left behind would cost every fill).
/// A failed batch's entry stays until it is applied.
///
/// On PostgreSQL the clean-up rides in the entry's own statement (`WITH … DELETE …,
/// … INSERT … SELECT`, with the registry lookup), so the three databases run it three
/// ways; each must leave the same table.
#[test]
fn applied_outbox_entries_leave_the_table_with_the_next_commit() {
    for engine in [Engine::Sqlite, Engine::Postgres, Engine::MariaDb] {
        applied_outbox_entries_leave_the_table_on(engine);
    }
}

fn applied_outbox_entries_leave_the_table_on(engine: Engine) {
    let db = SharedDb::new(engine, "outbox_done");
    let cache: Arc<dyn CacheBackend> = Arc::new(InProcessCache::new(CacheConfig::default()));
    let stepper = Stepping::new(cache);
    let store = db.builder().cache(Box::new(stepper.clone())).outbox(QUIET, QUIET).build().expect("store");
    store.migrate::<Item>().expect("migrate");
    let entries = || db.outside().integer("SELECT COUNT(*) FROM memdex_outbox");
    for id in 1..=5 {
        store.insert(&item(id, 5)).unwrap();
        assert_eq!(entries(), 1, "{engine:?}, after write {id}: only its own entry is left");
    }
    // A batch that fails: its entry stays, beside the next write's.
    stepper.on_batch(|ops, _| {
        if ops.iter().any(|op| matches!(op, CacheOp::Append { .. })) {
            Step::Reply(unreachable(ops))
        } else {
            Step::Proceed
        }
    });
    store.update(&item(3, 6)).unwrap();
    stepper.clear();
    assert_eq!(
        entries(),
        1,
        "{engine:?}: the last applied entry went with this write's transaction; this one is pending"
    );
    assert_eq!(store.stats().outbox_deferred, 1);
    // The next call applies the pending entry; the write after it removes both.
    assert_eq!(category(&store, 6), vec![3]);
    store.insert(&item(6, 5)).unwrap();
    assert_eq!(entries(), 1, "{engine:?}: the applied pending entry left with the next write: {:?}", store.stats());
    // Many entries at once (every batch lost for a while): the call after the cache
    // is back applies them all, and its write removes them all in its transaction —
    // over 100 ids, bound as one list; on PostgreSQL in the statement that also
    // writes the write's own entry and reads the index registry.
    stepper.on_batch(|ops, _| Step::Reply(unreachable(ops)));
    for n in 0..150 {
        store.update(&item(4, 5 + n % 2)).unwrap();
    }
    stepper.clear();
    assert_eq!(entries(), 150, "{engine:?}: 150 pending entries (the first write removed the applied one)");
    store.update(&item(5, 7)).unwrap();
    assert_eq!(entries(), 1, "{engine:?}: 150 applied entries left with the next write: {:?}", store.stats());
    assert_eq!(category(&store, 6), vec![3, 4]);
    assert_eq!(category(&store, 7), vec![5]);
}

/// The drain's own bookkeeping, on one SQLite file and one in-process cache: a
/// drainer (draining everything, no grace) has written item 3 (its entry applied,
/// done, still in the table); then a writer whose cache batches were all lost wrote
/// items 1 (category 5) and 2 (category 6) and died, leaving their entries. Returns
/// the drainer, its stepper and a count of the outbox's rows.
fn drain_world(tag: &str) -> (SharedDb, Store, Stepping, impl Fn() -> i64) {
    let db = SharedDb::new(Engine::Sqlite, tag);
    let file = db.sqlite_file().expect("a SQLite file").to_owned();
    let cache: Arc<dyn CacheBackend> = Arc::new(InProcessCache::new(CacheConfig::default()));
    let (writer_steps, drainer_steps) = (Stepping::new(cache.clone()), Stepping::new(cache));
    let build = |cache: Stepping, grace: Duration| {
        db.builder().namespace("drain").cache(Box::new(cache)).outbox(QUIET, grace).build().expect("store")
    };
    let drainer = build(drainer_steps.clone(), Duration::ZERO);
    drainer.migrate::<Item>().expect("migrate");
    drainer.insert(&item(3, 7)).unwrap();
    let writer = build(writer_steps.clone(), QUIET);
    writer_steps.on_batch(|ops, _| Step::Reply(unreachable(ops)));
    writer.insert(&item(1, 5)).unwrap();
    writer.insert(&item(2, 6)).unwrap();
    drop(writer);
    let entries = move || {
        let conn = rusqlite::Connection::open(&file).expect("open");
        conn.query_row("SELECT COUNT(*) FROM memdex_outbox", [], |r| r.get::<_, i64>(0)).expect("count")
    };
    assert_eq!(entries(), 3, "items 1 and 2 left their entries; item 3's is done, not yet deleted");
    // Entries are drained when created before the drain's start (in milliseconds).
    std::thread::sleep(Duration::from_millis(5));
    (db, drainer, drainer_steps, entries)
}

/// A drain forgets, in one call, both the entries it applied and this process's own
/// done ones (two statements): an applied entry left in the table would be applied
/// again by every later drain, deleting its keys each time.
#[test]
fn a_drain_forgets_the_entries_it_applied_and_its_own_done_ones() {
    let (_db, drainer, _, entries) = drain_world("drain_forgets");
    assert_eq!(drainer.drain_outbox().unwrap(), 3, "{:?}", drainer.stats());
    assert_eq!(entries(), 0, "every applied entry and the done one left the table");
}

/// A drain judges each entry by the replies to its own keys: when the delete of one
/// entry's key fails, that entry stays (to be applied later), and the others go.
/// Judged by another entry's replies, it would leave the table with its key never
/// deleted — a lost invalidation.
#[test]
fn a_drain_keeps_exactly_the_entry_whose_keys_it_could_not_delete() {
    let (_db, drainer, steps, entries) = drain_world("drain_partial");
    let object_2 = KeySpace::new("drain", Item::schema(), 0).object(&Value::Int(2));
    let failing = object_2.clone();
    steps.on_batch(move |ops, inner| {
        let replies = ops
            .iter()
            .map(|op| {
                if op.key() == failing {
                    unreachable(std::slice::from_ref(op)).remove(0)
                } else {
                    inner.run(std::slice::from_ref(op)).remove(0)
                }
            })
            .collect();
        Step::Reply(replies)
    });
    drainer.drain_outbox().unwrap();
    assert_eq!(entries(), 1, "only item 2's entry (its object's delete failed) stays: {:?}", drainer.stats());
    steps.clear();
    drainer.drain_outbox().unwrap();
    assert_eq!(entries(), 0, "the next drain applies it");
}

/// A reader that finds a cached object older than the version its node names (the
/// writer's append landed, its delete of the object has not yet) asks the database
/// and then deletes the stale copy itself, sparing every other reader the same trip;
/// a copy the database confirms stays cached.
#[test]
fn a_reader_drops_the_stale_copy_the_database_showed_it() {
    let db = SharedDb::new(Engine::Sqlite, "stale_copy");
    let cache: Arc<dyn CacheBackend> = Arc::new(InProcessCache::new(CacheConfig::default()));
    let writer_steps = Stepping::new(cache.clone());
    let build = |cache: Box<dyn CacheBackend>| {
        db.builder().namespace("stale").cache(cache).near_cache_capacity(0).outbox(QUIET, QUIET).build().expect("store")
    };
    let reader = build(writer_steps.plain());
    let writer = build(Box::new(writer_steps.clone()));
    reader.migrate::<Item>().expect("migrate");
    reader.insert(&item(1, 5)).unwrap();
    reader.insert(&item(2, 5)).unwrap();
    let q = select!(Item, |i| i.category_id == 5);
    assert_eq!(q.fetch(&reader).unwrap().len(), 2, "warm: node and both objects cached");
    // The writer's delete of item 1's object is held back (answered, not sent).
    writer_steps.on_batch(|ops, inner| {
        let replies = ops
            .iter()
            .map(|op| match op {
                CacheOp::Delete { .. } => Ok(CacheReply::Deleted),
                _ => inner.run(std::slice::from_ref(op)).remove(0),
            })
            .collect();
        Step::Reply(replies)
    });
    writer.update(&Item { name: "renamed".into(), ..item(1, 5) }).unwrap();
    let object = |id: i64| KeySpace::new("stale", Item::schema(), 0).object(&Value::Int(id));
    let cached = |id: i64| cache.run(&[CacheOp::Get { key: &object(id), lease: None }]).remove(0);
    assert!(matches!(cached(1), Ok(CacheReply::Hit { .. })), "the stale copy is still cached");
    let rows = q.fetch(&reader).unwrap();
    assert_eq!(rows.iter().find(|r| r.id == 1).map(|r| r.name.as_str()), Some("renamed"), "{rows:?}");
    assert!(matches!(cached(1), Ok(CacheReply::Miss)), "the reader deleted the stale copy: {:?}", cached(1));
    assert!(matches!(cached(2), Ok(CacheReply::Hit { .. })), "the fresh copy stays: {:?}", cached(2));
}

/// A node entry the reader had verified (the node was filled, nothing appended
/// since) whose row is gone — deleted behind memdex's back, its object evicted — is
/// dropped on the database's word, and the node is written back without it, so the
/// next read asks the database nothing.
#[test]
fn a_lazy_removal_of_a_verified_entry_is_written_back() {
    let db = SharedDb::new(Engine::Sqlite, "verified_removal");
    let cache: Arc<dyn CacheBackend> = Arc::new(InProcessCache::new(CacheConfig::default()));
    let store = db
        .builder()
        .namespace("verified")
        .cache(Box::new(Stepping::new(cache.clone())))
        .near_cache_capacity(0)
        .outbox(QUIET, QUIET)
        .build()
        .expect("store");
    store.migrate::<Item>().expect("migrate");
    store.insert(&item(1, 5)).unwrap();
    store.insert(&item(2, 5)).unwrap();
    let q = select!(Item, |i| i.category_id == 5);
    assert_eq!(q.fetch(&store).unwrap().len(), 2, "cold: the node is filled");
    assert_eq!(q.fetch(&store).unwrap().len(), 2, "hot");
    let conn = rusqlite::Connection::open(db.sqlite_file().expect("a SQLite file")).expect("open");
    conn.execute("DELETE FROM item WHERE id = 2", []).expect("delete behind memdex's back");
    let object = KeySpace::new("verified", Item::schema(), 0).object(&Value::Int(2));
    cache.run(&[CacheOp::Delete { key: &object }]);
    let before = store.stats();
    assert_eq!(q.fetch(&store).unwrap().iter().map(|i| i.id).collect::<Vec<_>>(), vec![1]);
    let after = store.stats();
    assert_eq!(after.lazy_removals - before.lazy_removals, 1, "{after:?}");
    assert_eq!(q.fetch(&store).unwrap().len(), 1);
    assert_eq!(store.stats().db_queries, after.db_queries, "the node no longer lists the gone row");
}

/// Rule 4's bookkeeping when a transaction fails after it took this process's done
/// entries for deletion (here its outbox insert is refused by a trigger, as a full
/// disk or a lost connection would refuse it): the entries are given back, and the
/// next commit deletes them. Forgotten, they would stay in the table until a drain,
/// and every node fill meanwhile would keep the rows they name as candidates.
#[test]
fn a_failed_commit_gives_back_the_done_entries_it_took() {
    DRIVERS.into_iter().for_each(a_failed_commit_gives_back_the_done_entries_it_took_on);
}

/// On PostgreSQL, where writes are guarded ([`Writes::Guarded`]), an update that keeps
/// its row in its index nodes is one statement, guarded by the indexed values it
/// writes. Its guard is judged on the row as it is when the statement holds it: an
/// update waiting for another writer's move sees the moved row and changes nothing. Its
/// reply holds the row as the statement's snapshot had it, with the values the guard
/// compared, so a second guarded statement would shut too: the update goes the long
/// way, reading the row as it now is and appending to the nodes of both images. Judged
/// on the row as it was when the statement began, it would write without naming the
/// node the row was moved to.
#[test]
fn a_guarded_update_waiting_behind_a_move_goes_the_long_way() {
    for driver in DRIVERS.into_iter().filter(|d| matches!(d.backend, Engine::Postgres)) {
        let (belief, who) = (Belief::None, format!("{driver:?}"));
        let w = belief.world("guard_waits", driver, Writes::Guarded);
        let statements = behind_a_move(&w, belief, Change::Update, &who);
        assert_eq!(statements, 3, "{who}: the guarded statement, then the update returning the row and the entry");
        assert_renamed_in_place(&w, &who);
    }
}

/// On PostgreSQL, where writes are guarded ([`Writes::Guarded`]), a delete is one
/// statement guarded by the indexed values the writer believes the row holds: those it
/// read last, or wrote last, or else those of the row read just before. A move that
/// commits in between (here: another process's transaction that holds the row when the
/// delete's statement comes, which waits for it) shuts the guard — PostgreSQL re-checks
/// it on the row version it then finds — and the delete goes the long way, reading the
/// moved row: its entry goes to the node the row was moved to. Judged on the row as
/// believed, the delete would name only the node the row left. For each belief
/// ([`Belief`]).
#[test]
fn a_guarded_delete_waiting_behind_a_move_goes_the_long_way() {
    for driver in DRIVERS.into_iter().filter(|d| matches!(d.backend, Engine::Postgres)) {
        for belief in Belief::ALL {
            let who = format!("{driver:?}, {belief:?}");
            let w = belief.world("guard_delete_waits", driver, Writes::Guarded);
            let statements = behind_a_move(&w, belief, Change::Delete, &who);
            // Without a belief the row is read first; the guarded statement's reply
            // finds the values it compared (its snapshot predates the other move), so
            // no second.
            let read = u64::from(belief == Belief::None);
            assert_eq!(
                statements,
                read + 3,
                "{who}: {read} read, the guarded statement, then the delete returning the row and the entry"
            );
            assert_moved_nodes(&w, Change::Delete, &who);
        }
    }
}

/// What the writing process believes the row it writes holds, before its guard
/// checks (`engine::write::Attempts`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Belief {
    /// Nothing: another process inserted the row, and the writer keeps no objects
    /// (its near cache is off).
    None,
    /// The row as the writer's near cache kept it when it read the row's node.
    Read,
    /// The row as the writer inserted it (its near cache off: that alone).
    Written,
}

impl Belief {
    const ALL: [Belief; 3] = [Belief::None, Belief::Read, Belief::Written];

    /// A world whose stepped process (the writer) keeps objects only for `Read`,
    /// its writes on PostgreSQL made as `writes` says.
    fn world(self, tag: &str, driver: Driver, writes: Writes) -> World {
        let near = if self == Belief::Read { NEAR } else { 0 };
        let tag = format!("{tag}_{self:?}").to_lowercase();
        world_writing(&tag, driver, (QUIET, QUIET), near, writes)
    }

    /// The process that inserts the row the test writes.
    fn inserter(self, w: &World) -> Side {
        match self {
            Belief::Written => w.stepped.clone(),
            Belief::None | Belief::Read => Side::blocking(w.other.clone()),
        }
    }
}

/// On PostgreSQL, where writes are guarded ([`Writes::Guarded`]), a move is first
/// guarded by the indexed values the writer believes the row holds ([`Belief`]), or,
/// without a belief, by the values it writes: that guard shuts, and a second statement
/// moves the row guarded by the values the first one's reply found. Another process's
/// move that commits in between (its transaction holds the row when the statement
/// comes, which waits for it) shuts the waiting guard, and the update goes the long
/// way, reading the row as the other move left it: its entries go to the node the row
/// was moved to as well. Judged on the row as believed or found, the update would name
/// only the node the row had left and its own, and the other move's node would keep
/// naming the row at its version.
#[test]
fn a_guarded_move_waiting_behind_a_move_goes_the_long_way() {
    for driver in DRIVERS.into_iter().filter(|d| matches!(d.backend, Engine::Postgres)) {
        for belief in Belief::ALL {
            let who = format!("{driver:?}, {belief:?}");
            let w = belief.world("guard_move_waits", driver, Writes::Guarded);
            let statements = behind_a_move(&w, belief, Change::Move, &who);
            // Without a belief, the first guard (the values written) fails on the
            // committed row without waiting, and its reply finds that row; the second
            // guard (the values found) waits. With one, the first guard (the values
            // believed) waits.
            let guarded = if belief == Belief::None { 2 } else { 1 };
            assert_eq!(
                statements,
                guarded + 2,
                "{who}: {guarded} guarded statements, then the update returning the row and the entry"
            );
            assert_moved_nodes(&w, Change::Move, &who);
        }
    }
}

/// On PostgreSQL, where the database spells the keys of the model's nodes
/// ([`Writes::Reading`]), an update, a delete and a move each read the
/// row in their own statement, locked, and name the nodes it was in from what they
/// read: ONE statement, whatever the writer believes. One that waits behind another
/// process's move reads the row as that move left it, so its entry and appends name
/// the node the row was moved to. Judged on the row as the statement's snapshot had
/// it (or as believed), each would leave that node naming the row at the other
/// move's version, which the other process's near cache would then serve.
#[test]
fn a_write_reading_its_row_behind_a_move_names_the_node_the_row_was_moved_to() {
    for driver in DRIVERS.into_iter().filter(|d| matches!(d.backend, Engine::Postgres)) {
        for belief in Belief::ALL {
            for change in [Change::Update, Change::Delete, Change::Move] {
                let who = format!("{driver:?}, {belief:?}, {change:?}");
                let w = belief.world(&format!("reading_{change:?}").to_lowercase(), driver, Writes::Reading);
                assert_eq!(behind_a_move(&w, belief, change, &who), 1, "{who}: one statement");
                // The node the row was in when the write read it names the write too:
                // row 1 listed by the other move's entry and by this write's.
                let listed = node_ids(&w, 6).expect("node 6 cached");
                assert_eq!(listed.iter().filter(|&&id| id == 1).count(), 2, "{who}: node 6 lists {listed:?}");
                match change {
                    Change::Update => assert_renamed_in_place(&w, &who),
                    Change::Delete | Change::Move => assert_moved_nodes(&w, change, &who),
                }
                w.assert_nothing_drained();
            }
        }
    }
}

/// How a write on PostgreSQL names the nodes its row was in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Writes {
    /// Its statement reads the row and spells their keys from it (the default).
    Reading,
    /// Its statement is guarded by the values the writer believes the row holds
    /// (`StoreBuilder::guarded_writes`, as a model with a float index column is).
    Guarded,
}

/// The write a test makes behind another process's move.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Change {
    /// Row 1 renamed, in category 5 as written.
    Update,
    /// Row 1 deleted.
    Delete,
    /// Row 1 moved to category 7.
    Move,
}

/// Row 1 inserted in category 5 (by the process `belief`'s [`Belief::inserter`]
/// names) and row 2 in category 6, the nodes of categories 5, 6 and 7 read through
/// the stepped process; then `change` made by the stepped process while another
/// process's transaction holds row 1 moved to category 6, which commits once the
/// write waits for it. Returns the statements the write sent.
fn behind_a_move(w: &World, belief: Belief, change: Change, who: &str) -> u64 {
    belief.inserter(w).insert(&item(1, 5)).unwrap();
    w.other.insert(&item(2, 6)).unwrap();
    let mut watcher = w.db.outside();
    let nodes = (w.stepped.category(5), w.stepped.category(6), w.stepped.category(7));
    assert_eq!(nodes, (vec![1], vec![2], vec![]), "{who}: the nodes filled");
    let (mover, let_go) = a_move_held_open(&w.other, item(1, 6));
    let writer = statements_of(&w.stepped, move |side| match change {
        Change::Update => side.update(&Item { id: 1, category_id: 5, name: "renamed".into() }),
        Change::Delete => side.delete(1),
        Change::Move => side.update(&item(1, 7)),
    });
    watcher.wait_for_a_lock_wait(&format!("{who}: the write"));
    let_go.send(()).expect("the mover waits");
    mover.join().expect("the mover").expect("the move commits");
    writer.join().expect("the writer")
}

/// After [`Change::Update`] behind the other move: row 1 renamed in category 5, and
/// category 6 holds row 2 alone — through both processes.
fn assert_renamed_in_place(w: &World, who: &str) {
    assert_eq!(w.stepped.rows(5), vec![Item { id: 1, category_id: 5, name: "renamed".into() }], "{who}");
    assert_eq!(w.stepped.category(6), vec![2], "{who}: gone from the node the other move put it in");
    assert_eq!((category(&w.other, 5), category(&w.other, 6)), (vec![1], vec![2]), "{who}");
}

/// After a delete or a move of row 1 behind the other move: row 1 is in category 7
/// after a move, nowhere after a delete, and category 6 holds row 2 alone — through
/// both processes.
fn assert_moved_nodes(w: &World, change: Change, who: &str) {
    let seven = if change == Change::Move { vec![1] } else { vec![] };
    assert_eq!(w.stepped.category(7), seven, "{who}");
    assert_eq!(w.stepped.category(6), vec![2], "{who}: gone from the node the other move put it in");
    assert_eq!(w.stepped.category(5), Vec::<i64>::new(), "{who}");
    let others = (category(&w.other, 5), category(&w.other, 6), category(&w.other, 7));
    assert_eq!(others, (vec![], vec![2], seven), "{who}");
}

/// Runs `write` on a thread of its own (it may wait for a lock the test holds) and
/// returns the statements it sent.
fn statements_of(
    side: &Side,
    write: impl FnOnce(&Side) -> Result<(), Error> + Send + 'static,
) -> std::thread::JoinHandle<u64> {
    let side = side.clone();
    std::thread::spawn(move || {
        let before = side.stats().db_queries;
        write(&side).expect("the write succeeds");
        side.stats().db_queries - before
    })
}

/// Another process's transaction that updates `row` and holds it until the test
/// lets go through the sender, then commits: returns once it holds the row.
fn a_move_held_open(
    store: &Store,
    row: Item,
) -> (std::thread::JoinHandle<Result<(), Error>>, std::sync::mpsc::Sender<()>) {
    let (moved, hold) = (std::sync::mpsc::channel(), std::sync::mpsc::channel::<()>());
    let other = store.clone();
    let mover = std::thread::spawn(move || {
        other.transaction(|tx| {
            tx.update(&row)?;
            moved.0.send(()).expect("the test waits");
            hold.1.recv().expect("the test lets go");
            Ok(())
        })
    });
    moved.1.recv().expect("the move holds the row");
    (mover, hold.0)
}

/// The statements that make the outbox refuse every insert, and undo it, per database.
fn refusing_outbox(engine: Engine) -> (&'static [&'static str], &'static [&'static str]) {
    match engine {
        Engine::Sqlite => (
            &[
                "CREATE TRIGGER refuse BEFORE INSERT ON memdex_outbox BEGIN SELECT RAISE(ABORT, 'refused by the test'); END",
            ],
            &["DROP TRIGGER refuse"],
        ),
        Engine::Postgres => (
            &[
                "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$",
                "CREATE TRIGGER refuse BEFORE INSERT ON memdex_outbox FOR EACH ROW EXECUTE FUNCTION refuse()",
            ],
            &["DROP TRIGGER refuse ON memdex_outbox", "DROP FUNCTION refuse()"],
        ),
        Engine::MariaDb => (
            &[
                "CREATE TRIGGER refuse BEFORE INSERT ON memdex_outbox FOR EACH ROW SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'refused by the test'",
            ],
            &["DROP TRIGGER refuse"],
        ),
    }
}

/// On PostgreSQL the async driver sends the outbox statement and the COMMIT in one
/// pipelined round trip: the refused insert must still roll the write back.
fn a_failed_commit_gives_back_the_done_entries_it_took_on(driver: Driver) {
    let w = world("outbox_failed", driver);
    let store = &w.stepped;
    let mut outside = w.db.outside();
    let entries =
        |outside: &mut memdex_tests::outside::OutsideSession| outside.integer("SELECT COUNT(*) FROM memdex_outbox");
    store.insert(&item(1, 5)).unwrap();
    store.insert(&item(2, 5)).unwrap();
    assert_eq!(entries(&mut outside), 1, "{driver:?}: the second write deleted the first one's entry");
    let (refuse, allow) = refusing_outbox(driver.backend);
    for statement in refuse {
        outside.execute(statement);
    }
    assert!(store.insert(&item(3, 5)).is_err(), "{driver:?}: the outbox insert is refused");
    assert!(
        store.update(&Item { id: 1, category_id: 6, name: "moved".into() }).is_err(),
        "{driver:?}: and so is this one"
    );
    assert!(
        store.update(&Item { id: 1, category_id: 5, name: "renamed".into() }).is_err(),
        "{driver:?}: and an update within its nodes (its entry in the update's own statement on PostgreSQL)"
    );
    // Every write rolled back, its clean-up with it (on PostgreSQL the move's one
    // statement, guarded by the values this process inserted, is refused whole).
    assert_eq!(
        outside.integer("SELECT COUNT(*) FROM memdex_outbox"),
        1,
        "{driver:?}: rolled back, the second write's entry is still there unless a statement of its own deleted it"
    );
    assert_eq!(
        outside.integer("SELECT COUNT(*) FROM item WHERE id = 3 OR category_id = 6 OR name = 'renamed'"),
        0,
        "{driver:?}: no write happened"
    );
    for statement in allow {
        outside.execute(statement);
    }
    store.insert(&item(4, 5)).unwrap();
    assert_eq!(
        outside.integer("SELECT COUNT(*) FROM memdex_outbox"),
        1,
        "{driver:?}: the next commit deleted the entry the failed one had taken"
    );
    assert_eq!(store.category(5), vec![1, 2, 4], "{driver:?}");
    assert_eq!(store.rows(5)[0].name, "item 1", "{driver:?}: the failed update left row 1 as it was");
}

/// An outbox table created before entries named their updated rows gains the
/// `moved` column in place, and the store works on it.
#[test]
fn an_outbox_table_without_moved_is_upgraded() {
    let db = SharedDb::new(Engine::Sqlite, "upgrade");
    {
        let conn = rusqlite::Connection::open(db.sqlite_file().expect("a SQLite file")).expect("open");
        conn.execute_batch(
            "CREATE TABLE memdex_outbox (id INTEGER NOT NULL PRIMARY KEY, keys TEXT NOT NULL, created_at INTEGER NOT NULL)",
        )
        .expect("old outbox");
    }
    let store = db.builder().in_process_cache().build().expect("store");
    store.migrate::<Item>().expect("migrate");
    store.insert(&item(1, 5)).unwrap();
    store.update(&item(1, 6)).unwrap();
    assert_eq!(category(&store, 6), vec![1]);
    assert_eq!(category(&store, 5), Vec::<i64>::new());
}

/// The same upgrade on MariaDB: `ALTER TABLE … ADD COLUMN` from the grammar, on a
/// table of the old layout in the server's default (case-insensitive) collation.
#[test]
fn a_mariadb_outbox_table_without_moved_is_upgraded() {
    let server = memdex_tests::backends::mariadb();
    let url = server.fresh_database().expect("database");
    let old = memdex::db::mysql::MySql::connect(&url).expect("connect");
    memdex::db::Database::execute_ddl(
        &old,
        &["CREATE TABLE memdex_outbox (id BIGINT NOT NULL PRIMARY KEY, `keys` LONGTEXT NOT NULL, created_at BIGINT \
           NOT NULL)"
            .to_owned()],
    )
    .expect("old outbox");
    let store = Store::builder().mysql(url).in_process_cache().build().expect("store");
    store.migrate::<Item>().expect("migrate");
    store.migrate::<Item>().expect("a second migration is a no-op");
    store.insert(&item(1, 5)).expect("insert");
    store.update(&item(1, 6)).expect("update");
    assert_eq!(category(&store, 6), vec![1]);
    assert_eq!(category(&store, 5), Vec::<i64>::new());
}

// ---------------------------------------------------------------------------
// The near cache: a process keeps decoded objects by version; it serves one only
// when the nodes it reads name that very version.
// ---------------------------------------------------------------------------

/// Another process edits a row the reader keeps (same node: the row stays in
/// category 5) and moves another one out: the reader's next read shows the edit
/// and drops the moved row, from the nodes' word alone.
/// A hot fetch reads its objects without leases (one multi-key command on
/// memcached) and takes a lease only for those that missed, in a round of their
/// own. A write between that plain miss and the lease read is seen: the lease read
/// misses again (the writer deleted the object), the database is read after the
/// lease was taken, and the fill stores the version the write left — never the one
/// the node named when the plain read missed.
#[test]
fn a_write_between_a_plain_miss_and_its_lease_read_is_seen_and_filled() {
    DRIVERS.into_iter().for_each(a_write_between_a_plain_miss_and_its_lease_read_is_seen_and_filled_on);
}

fn a_write_between_a_plain_miss_and_its_lease_read_is_seen_and_filled_on(driver: Driver) {
    // No near cache in the stepped process: every fetch reads its objects (enough
    // of them to be read without leases first).
    let w = world_with_outbox("plain_miss", driver, QUIET, QUIET, 0);
    for id in 1..=6 {
        w.other.insert(&item(id, 5)).unwrap();
    }
    assert_eq!(w.stepped.category(5), vec![1, 2, 3, 4, 5, 6]);
    w.other.update(&Item { id: 2, category_id: 5, name: "second".into() }).unwrap();
    let object_key = KeySpace::new("memdex", Item::schema(), 0).object(&Value::Int(2));
    let other = w.other.clone();
    let seen = Arc::new(AtomicUsize::new(0));
    let seen_in_hook = seen.clone();
    w.stepper.on_batch(move |ops, _| {
        let reads = |lease: bool| {
            ops.iter()
                .any(|op| matches!(op, CacheOp::Get { key, lease: l } if *key == object_key && l.is_some() == lease))
        };
        if reads(false) {
            seen_in_hook.fetch_or(1, Ordering::SeqCst);
        } else if reads(true) && seen_in_hook.fetch_or(2, Ordering::SeqCst) & 2 == 0 {
            // The plain read of object 2 missed; before its lease read, another
            // process writes the row again.
            other.update(&Item { id: 2, category_id: 5, name: "third".into() }).unwrap();
        }
        Step::Proceed
    });
    let rows = w.stepped.rows(5);
    w.stepper.clear();
    assert_eq!(seen.load(Ordering::SeqCst), 3, "object 2 was read plain, missed, then read under lease");
    assert_eq!(ids(&rows), vec![1, 2, 3, 4, 5, 6]);
    assert_eq!(rows[1].name, "third", "the write before the lease read is seen");
    assert_eq!(cached_object(&w, 2).map(|i| i.name), Some("third".into()), "the fill stored the current version");
    let names: Vec<String> =
        select!(Item, |i| i.category_id == 5).fetch(&w.other).unwrap().into_iter().map(|i| i.name).collect();
    assert_eq!(names[..2], ["item 1".to_owned(), "third".to_owned()], "and the other process sees it too");
    w.assert_nothing_drained();
}

#[test]
fn a_kept_object_is_never_served_after_another_process_changed_it() {
    DRIVERS.into_iter().for_each(a_kept_object_is_never_served_after_another_process_changed_it_on);
}

fn a_kept_object_is_never_served_after_another_process_changed_it_on(driver: Driver) {
    let w = world("near_edit", driver);
    w.other.insert(&item(1, 5)).unwrap();
    w.other.insert(&item(2, 5)).unwrap();
    assert_eq!(w.stepped.category(5), vec![1, 2]);
    assert_eq!(w.stepped.category(5), vec![1, 2]);
    let warm = w.stepped.stats();
    assert!(warm.near_hits >= 2, "the reader keeps both objects: {warm:?}");
    w.other.update(&Item { id: 1, category_id: 5, name: "renamed".into() }).unwrap();
    w.other.update(&item(2, 6)).unwrap();
    let rows = w.stepped.rows(5);
    assert_eq!(ids(&rows), vec![1], "the moved row is gone from category 5");
    assert_eq!(rows[0].name, "renamed", "the edit is seen, not the kept version");
    assert_eq!(w.stepped.category(6), vec![2]);
    // Once the node is clean again, the new versions are kept and served.
    let before = w.stepped.stats();
    assert_eq!(w.stepped.rows(5), rows);
    let after = w.stepped.stats();
    assert_eq!(after.near_hits - before.near_hits, 1, "{after:?}");
    assert_eq!(after.cache_round_trips - before.cache_round_trips, 1, "hot again: one round trip");
    w.assert_nothing_drained();
}

/// K8 with the nodes seen: a hot fetch over two nodes skips re-reading them when
/// each is, byte for byte, one it read before. Here its two reads land apart (the
/// batch's ops on different servers): node 2 is read first, unchanged; then row 1
/// moves from category 1 to 2 and a reader removes it lazily from node 1 (re-homing
/// it in node 2 first); then node 1 is read, without the row. Neither read lists
/// row 1, which matched throughout. Node 1's bytes are new, so the fetch re-reads
/// both nodes, sees them changed, and the database answers — with row 1. A fetch that
/// trusted the nodes it saw before without checking each misses it.
#[test]
fn a_row_moving_between_two_seen_nodes_read_apart_is_not_missed() {
    DRIVERS.into_iter().for_each(a_row_moving_between_two_seen_nodes_read_apart_is_not_missed_on);
}

/// A world with rows 1 and 2 in category 1 and row 3 in category 2, whose stepped
/// process has read both nodes (hot: seen, every object kept).
fn two_nodes_seen(tag: &str, driver: Driver) -> World {
    let w = world(tag, driver);
    for (id, cat) in [(1, 1), (2, 1), (3, 2)] {
        w.other.insert(&item(id, cat)).unwrap();
    }
    for _ in 0..2 {
        assert_eq!(w.stepped.categories(1, 2), vec![1, 2, 3]);
    }
    w
}

fn a_row_moving_between_two_seen_nodes_read_apart_is_not_missed_on(driver: Driver) {
    let w = two_nodes_seen("seen_apart", driver);
    let before = w.stepped.stats();
    assert_eq!(w.stepped.categories(1, 2), vec![1, 2, 3]);
    let hot = w.stepped.stats();
    assert_eq!(hot.cache_round_trips - before.cache_round_trips, 1, "hot, the nodes seen: {hot:?}");
    assert_eq!(hot.node_rechecks, before.node_rechecks, "{hot:?}");

    let other = w.other.clone();
    let mut moved = false;
    w.stepper.on_batch(move |ops, inner| {
        if moved {
            return Step::Proceed;
        }
        moved = true;
        let (old_node, new_node) = (node_key(1), node_key(2));
        let early = ops.iter().position(|op| op.key() == new_node).expect("node 2 read");
        let late = ops.iter().position(|op| op.key() == old_node).expect("node 1 read");
        let mut replies = inner.run(ops);
        replies[early] = inner.run(&ops[early..=early]).remove(0);
        other.update(&item(1, 2)).unwrap();
        assert_eq!(category(&other, 1), vec![2], "the lazy removal");
        let node1 = listed_in(inner, 1).expect("node 1 written back");
        assert!(!node1.contains(&1), "row 1 removed from node 1: {node1:?}");
        assert!(listed_in(inner, 2).expect("node 2").contains(&1), "and re-homed in node 2");
        replies[late] = inner.run(&ops[late..=late]).remove(0);
        Step::Reply(replies)
    });
    assert_eq!(w.stepped.categories(1, 2), vec![1, 2, 3], "row 1 is in category 2 now, and was in 1 before");
    w.stepper.clear();
    let after = w.stepped.stats();
    assert_eq!(after.node_rechecks - hot.node_rechecks, 1, "node 1's bytes are new: re-read: {after:?}");
    w.assert_nothing_drained();
}

/// A node deleted (an eviction) and filled again by another process from the same
/// rows lists exactly what it listed before; only its nonce differs. A fetch over
/// several nodes must not take it for the node it saw: a node that left and came
/// back may have missed a row in between (the proof of the skipped re-read needs
/// the node unchanged from the first read to the second), so it re-reads.
#[test]
fn a_node_refilled_by_another_process_is_not_taken_for_the_one_seen() {
    DRIVERS.into_iter().for_each(a_node_refilled_by_another_process_is_not_taken_for_the_one_seen_on);
}

fn a_node_refilled_by_another_process_is_not_taken_for_the_one_seen_on(driver: Driver) {
    let w = two_nodes_seen("seen_refill", driver);
    let listed = |w: &World| (node_ids(w, 1), node_ids(w, 2));
    let seen = listed(&w);
    let key = node_key(1);
    w.stepper.plain().run(&[CacheOp::Delete { key: &key }]);
    assert_eq!(category(&w.other, 1), vec![1, 2], "the other process fills node 1 again");
    assert_eq!(listed(&w), seen, "the same entries");
    let before = w.stepped.stats();
    assert_eq!(w.stepped.categories(1, 2), vec![1, 2, 3]);
    let after = w.stepped.stats();
    assert_eq!(after.node_rechecks - before.node_rechecks, 1, "the refilled node is re-read: {after:?}");
    let before = after;
    assert_eq!(w.stepped.categories(1, 2), vec![1, 2, 3]);
    let after = w.stepped.stats();
    assert_eq!(after.cache_round_trips - before.cache_round_trips, 1, "seen since: {after:?}");
    w.assert_nothing_drained();
}

/// A fetch over two nodes seen unchanged is answered from the rows kept for each
/// node's bytes. Another process's edit of a row appends to its node: those bytes
/// are new, so the next fetch reads the node again (and its re-read) and shows the
/// edit; then, seen again, it is answered from kept rows once more.
#[test]
fn rows_kept_for_two_nodes_are_not_served_once_another_process_changed_one() {
    DRIVERS.into_iter().for_each(rows_kept_for_two_nodes_are_not_served_once_another_process_changed_one_on);
}

fn rows_kept_for_two_nodes_are_not_served_once_another_process_changed_one_on(driver: Driver) {
    let w = two_nodes_seen("near_two", driver);
    let served = |w: &World| {
        let before = w.stepped.stats();
        let rows = w.stepped.rows_in_either(1, 2);
        (rows, w.stepped.stats().near_node_hits - before.near_node_hits)
    };
    let (rows, kept) = served(&w);
    assert_eq!((ids(&rows), kept), (vec![1, 2, 3], 1), "hot: from both nodes' kept rows");
    w.other.update(&Item { id: 3, category_id: 2, name: "renamed".into() }).unwrap();
    let (rows, kept) = served(&w);
    assert_eq!((rows[2].name.as_str(), kept), ("renamed", 0), "the edit is seen, nothing kept served");
    let _ = served(&w);
    let (rows, kept) = served(&w);
    assert_eq!((rows[2].name.as_str(), kept), ("renamed", 1), "kept again, at the new version");
    w.assert_nothing_drained();
}

/// The rows a one-node fetch served are kept under the digest of the node's bytes. A
/// write that lands between the reader's node read and its keeping them (the reader
/// keeps rows of bytes already old) is still seen by the next read: its append
/// changed the bytes, so nothing kept answers them. Keyed by the node's key alone,
/// the kept rows would be served after the write.
#[test]
fn rows_kept_for_a_node_are_never_served_once_a_write_changed_it() {
    DRIVERS.into_iter().for_each(rows_kept_for_a_node_are_never_served_once_a_write_changed_it_on);
}

fn rows_kept_for_a_node_are_never_served_once_a_write_changed_it_on(driver: Driver) {
    let w = world("near_node", driver);
    w.other.insert(&item(1, 5)).unwrap();
    w.other.insert(&item(2, 5)).unwrap();
    // Cold, then hot: the second read keeps the node's rows, the third is served them.
    for _ in 0..3 {
        assert_eq!(w.stepped.category(5), vec![1, 2]);
    }
    assert_eq!(w.stepped.stats().near_node_hits, 1, "{:?}", w.stepped.stats());
    let other = w.other.clone();
    let wrote = Arc::new(AtomicUsize::new(0));
    let wrote_in_hook = wrote.clone();
    w.stepper.on_batch(move |ops, inner| {
        if wrote_in_hook.fetch_add(1, Ordering::SeqCst) > 0 {
            return Step::Proceed;
        }
        // The reader's node read lands; then, before the reader has looked at the
        // reply, another process renames item 1.
        let replies = inner.run(ops);
        other.update(&Item { id: 1, category_id: 5, name: "renamed".into() }).unwrap();
        Step::Reply(replies)
    });
    let rows = w.stepped.rows(5);
    w.stepper.clear();
    assert_eq!(wrote.load(Ordering::SeqCst), 1, "the reader's fetch was one batch: the node");
    assert_eq!(rows[0].name, "item 1", "the read began before the write");
    let before = w.stepped.stats();
    let rows = w.stepped.rows(5);
    assert_eq!(ids(&rows), vec![1, 2]);
    assert_eq!(rows[0].name, "renamed", "the write is seen, not the rows kept for the old bytes");
    assert_eq!(w.stepped.stats().near_node_hits, before.near_node_hits, "{:?}", w.stepped.stats());
    w.assert_nothing_drained();
}

/// A writer's batch lands in pieces (the object's delete and the node's append sit
/// on different servers): once its append to the node the reader reads has landed,
/// the reader no longer serves its kept version, even though the old object's
/// delete has not landed yet.
#[test]
fn an_append_that_landed_before_the_objects_delete_retires_the_kept_version() {
    DRIVERS.into_iter().for_each(an_append_that_landed_before_the_objects_delete_retires_the_kept_version_on);
}

fn an_append_that_landed_before_the_objects_delete_retires_the_kept_version_on(driver: Driver) {
    let w = world("near_split", driver);
    w.stepped.insert(&item(1, 5)).unwrap();
    assert_eq!(w.stepped.category(5), vec![1]);
    assert_eq!(w.stepped.category(5), vec![1]);
    let fired = Arc::new(AtomicUsize::new(0));
    // A third process renames item 1; its batch lands append first, then the reader
    // (the stepped process) reads, then the delete lands.
    let split = SplitBatches { inner: w.stepper.plain(), reader: w.stepped.clone(), fired: fired.clone() };
    let writer = w.db.builder().cache(Box::new(split)).outbox(QUIET, QUIET).build().expect("writer store");
    writer.update(&Item { id: 1, category_id: 5, name: "renamed".into() }).unwrap();
    assert_eq!(fired.load(Ordering::SeqCst), 1, "the reader read between the append and the delete");
    assert_eq!(w.stepped.rows(5)[0].name, "renamed");
    w.assert_nothing_drained();
    assert_eq!(writer.stats().outbox_drained, 0);
}

/// A cache that runs a write batch's appends first, then lets the reader read
/// category 5 (which must show the new version), then runs the rest.
#[derive(Debug)]
struct SplitBatches {
    inner: Box<dyn CacheBackend>,
    reader: Side,
    fired: Arc<AtomicUsize>,
}

impl CacheBackend for SplitBatches {
    fn run(&self, ops: &[CacheOp<'_>]) -> Vec<Result<memdex::cache::CacheReply, memdex::cache::CacheError>> {
        let appends: Vec<CacheOp<'_>> = ops.iter().filter(|op| matches!(op, CacheOp::Append { .. })).copied().collect();
        if appends.is_empty() || self.fired.fetch_add(1, Ordering::SeqCst) > 0 {
            return self.inner.run(ops);
        }
        let _ = self.inner.run(&appends);
        let seen = self.reader.rows(5);
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].name, "renamed", "the kept version was served after the append landed");
        self.inner.run(ops)
    }

    fn max_value_size(&self) -> usize {
        self.inner.max_value_size()
    }

    fn describe(&self) -> String {
        "split batches".into()
    }
}

/// A writer's batch cut short on its one server (a timeout: the server applied the
/// ops it had read, the client closed the connection, the rest never ran), at every
/// point of the batch, for an edit and for a move. Another process reading with the
/// near cache must then answer exactly what a third process reading the values
/// answers: the near cache trusts a node's versions only as far as the batch's
/// order makes that as fresh as the objects (appends land before the deletes).
#[test]
fn a_write_batch_cut_short_leaves_the_near_cache_no_staler_than_the_values() {
    for (what, new) in [("edit", Item { id: 1, category_id: 5, name: "renamed".into() }), ("move", item(1, 6))] {
        for cut in 0..8 {
            near_read_after_a_cut_batch(what, &new, cut);
        }
    }
}

fn near_read_after_a_cut_batch(what: &str, new: &Item, cut: usize) {
    let w = world(&format!("near_cut_{what}_{cut}"), BLOCKING);
    let values = w.third_process(0);
    w.stepped.insert(&item(1, 5)).unwrap();
    w.stepped.insert(&item(2, 5)).unwrap();
    for cat in [5, 6] {
        category(&w.other, cat);
        category(&w.other, cat);
        category(&values, cat);
    }
    assert!(w.other.stats().near_hits >= 2, "the near reader keeps the objects: {:?}", w.other.stats());
    let batch_len = Arc::new(AtomicUsize::new(0));
    let seen = batch_len.clone();
    w.stepper.on_batch(move |ops, inner| {
        if !ops.iter().any(|op| matches!(op, CacheOp::Append { .. })) || seen.load(Ordering::SeqCst) > 0 {
            return Step::Proceed;
        }
        seen.store(ops.len(), Ordering::SeqCst);
        let landed = cut.min(ops.len());
        let mut replies = inner.run(&ops[..landed]);
        replies.extend(
            ops[landed..]
                .iter()
                .map(|_| Err(memdex::cache::CacheError::Ambiguous { server: "stepped".into(), reason: "cut".into() })),
        );
        Step::Reply(replies)
    });
    w.stepped.update(new).unwrap();
    w.stepper.clear();
    assert!(batch_len.load(Ordering::SeqCst) > 0, "{what}, cut {cut}: the write sent its batch");
    for cat in [5, 6] {
        // The near reader first: a value read's clean-up would repair the node.
        let near = select!(Item, |i| i.category_id == cat).fetch(&w.other).expect("near read");
        let read = select!(Item, |i| i.category_id == cat).fetch(&values).expect("value read");
        assert_eq!(near, read, "{what}, batch cut after {cut} ops, category {cat}");
    }
    w.assert_nothing_drained();
}

/// K12, a writer's append landing late: a rename of item 1 commits and its batch is
/// held; meanwhile a reader keeps the renamed version, another process deletes the
/// row, and the reader's lazy removal cleans node 5 of it. The held batch then
/// appends the renamed version to node 5, which names that version alone. The
/// reader must not serve the deleted row from its near cache: an appended entry is
/// not verified, so the reader reads the object's cached bytes (deleted by the
/// late batch too) and asks the database.
#[test]
fn a_late_append_after_a_lazy_removal_does_not_bring_a_deleted_row_back() {
    DRIVERS.into_iter().for_each(a_late_append_after_a_lazy_removal_does_not_bring_a_deleted_row_back_on);
}

fn a_late_append_after_a_lazy_removal_does_not_bring_a_deleted_row_back_on(driver: Driver) {
    let w = world("near_late_append", driver);
    let deleter = w.third_process(0);
    w.other.insert(&item(1, 5)).unwrap();
    assert_eq!(category(&w.other, 5), vec![1]);
    w.evict_object(1);
    let fired = Arc::new(AtomicUsize::new(0));
    let (reader, seen) = (w.other.clone(), fired.clone());
    w.stepper.on_batch(move |ops, _| {
        if !ops.iter().any(|op| matches!(op, CacheOp::Append { .. })) || seen.fetch_add(1, Ordering::SeqCst) > 0 {
            return Step::Proceed;
        }
        // The rename has committed; its batch waits here.
        let by_key = select!(Item, |i| i.id == 1).fetch(&reader).expect("key lookup");
        assert_eq!(by_key[0].name, "renamed", "read from the database, kept by version");
        deleter.delete::<Item>(&1).unwrap();
        assert_eq!(category(&reader, 5), Vec::<i64>::new(), "the delete is seen");
        Step::Proceed
    });
    w.stepped.update(&Item { id: 1, category_id: 5, name: "renamed".into() }).unwrap();
    w.stepper.clear();
    assert_eq!(fired.load(Ordering::SeqCst), 1, "the reader ran while the rename's batch was held");
    w.assert_late_append_not_trusted(5);
    assert_eq!(category(&w.third_process(NEAR), 5), Vec::<i64>::new());
    w.assert_nothing_drained();
}

/// K12, a lazy removal's re-homing append landing late: a reader finds item 1 moved
/// from category 5 to 6 and re-homes it to node 6; its append is held while another
/// process deletes the row and a near reader's lazy removal cleans node 6 of it.
/// The late re-homing append then makes node 6 name the moved version alone; the
/// near reader, which keeps that version, must not serve it: the entry is appended,
/// not verified, so it reads the object (gone) and asks the database.
#[test]
fn a_late_rehoming_append_does_not_bring_a_deleted_row_back() {
    DRIVERS.into_iter().for_each(a_late_rehoming_append_does_not_bring_a_deleted_row_back_on);
}

fn a_late_rehoming_append_does_not_bring_a_deleted_row_back_on(driver: Driver) {
    let w = world("near_late_rehome", driver);
    let writer = w.third_process(0);
    writer.insert(&item(1, 5)).unwrap();
    for cat in [5, 6] {
        assert_eq!(w.stepped.category(cat), category(&w.other, cat));
    }
    writer.update(&item(1, 6)).unwrap();
    assert_eq!(category(&w.other, 6), vec![1], "the near reader keeps the moved version");
    let fired = Arc::new(AtomicUsize::new(0));
    let (near, seen) = (w.other.clone(), fired.clone());
    let deleter = w.third_process(0);
    w.stepper.on_batch(move |ops, _| {
        let rehoming =
            !ops.is_empty() && ops.iter().all(|op| matches!(op, CacheOp::Append { .. } | CacheOp::GetCas { .. }));
        if !rehoming || seen.fetch_add(1, Ordering::SeqCst) > 0 {
            return Step::Proceed;
        }
        // The re-homing append to node 6 waits here.
        deleter.delete::<Item>(&1).unwrap();
        assert_eq!(category(&near, 6), Vec::<i64>::new(), "the delete is seen");
        Step::Proceed
    });
    assert_eq!(w.stepped.category(5), Vec::<i64>::new(), "the stepped reader removes item 1 from node 5");
    w.stepper.clear();
    assert_eq!(fired.load(Ordering::SeqCst), 1, "the re-homing append was held");
    w.assert_late_append_not_trusted(6);
    w.assert_nothing_drained();
}

// ------------------------------------------------ captured outside writes (issue 15)

/// A reader and a drainer capturing outside writes, on one database of `engine` and
/// one in-process cache; the reader's batches go through the stepper, and it keeps
/// a near cache of `near` bytes. Neither drains by itself during the test (a
/// store's first call drains; the interval is ten minutes): the test runs the
/// drains.
fn capture_world(tag: &str, engine: Engine, near: usize) -> (SharedDb, Store, Store, Stepping) {
    let db = SharedDb::new(engine, &format!("races_capture_{tag}"));
    let cache: Arc<dyn CacheBackend> = Arc::new(InProcessCache::new(CacheConfig::default()));
    let stepper = Stepping::new(cache);
    let build = |cache: Box<dyn CacheBackend>| {
        let builder = db.builder().cache(cache).capture_outside_writes(true).outbox(QUIET, QUIET);
        builder.near_cache_capacity(near).build().expect("store")
    };
    let drainer = build(stepper.plain());
    drainer.migrate::<Item>().expect("migrate");
    let reader = build(Box::new(stepper.clone()));
    reader.migrate::<Item>().expect("migrate");
    drainer.insert(&item(1, 5)).unwrap();
    (db, reader, drainer, stepper)
}

const CAPTURE_ENGINES: [Engine; 2] = [Engine::Sqlite, Engine::Postgres];

/// Rule 1 against a drain of captured changes: a reader won the fill lease and read
/// the database; before its fill lands, a session outside memdex inserts a row into
/// the node and a drain applies the change (deleting the node's key, lease and
/// all). The fill must lose: stored, it would hide the outside row until the TTL.
#[test]
fn a_fill_that_read_before_an_outside_write_loses_to_its_drain() {
    for engine in CAPTURE_ENGINES {
        let (db, reader, drainer, stepper) = capture_world("fill", engine, NEAR);
        let (outside_drainer, mut outside) = (drainer.clone(), db.outside());
        stepper.on_batch(move |ops, _| {
            if has_cas(ops) {
                outside.execute("INSERT INTO item (id, category_id, name) VALUES (2, 5, 'outside')");
                assert_eq!(outside_drainer.drain_outbox().unwrap(), 1, "the drain applies the outside insert");
            }
            Step::Proceed
        });
        assert_eq!(category(&reader, 5), vec![1], "{engine:?}: the read began before the outside insert");
        stepper.clear();
        assert!(reader.stats().fills_lost >= 1, "{engine:?}: the fill was stored: {:?}", reader.stats());
        assert_eq!(category(&reader, 5), vec![1, 2], "{engine:?}: the outside row is hidden");
        assert_eq!(category(&drainer, 5), vec![1, 2], "{engine:?}");
    }
}

/// A drain lands between a reader's node batch and its object batch (the two round
/// trips of a read without a near cache): the node it read still lists the row an
/// outside UPDATE moved away, and the object it then reads is gone (the drain
/// deleted it), so it reads the row from the database and drops it — never
/// returning a row that does not match. Reads after the drain see the row in its
/// new node.
#[test]
fn a_drain_between_a_readers_node_and_object_batches_drops_the_moved_row() {
    for engine in CAPTURE_ENGINES {
        let (db, reader, drainer, stepper) = capture_world("between", engine, 0);
        drainer.insert(&item(2, 5)).unwrap();
        // Both nodes, both objects cached and verified, in the reader's near cache too.
        assert_eq!(category(&reader, 5), vec![1, 2]);
        assert_eq!(category(&reader, 6), Vec::<i64>::new());
        let (outside_drainer, mut outside) = (drainer.clone(), db.outside());
        let mut batches = 0;
        stepper.on_batch(move |_, _| {
            batches += 1;
            if batches == 2 {
                outside.execute("UPDATE item SET category_id = 6 WHERE id = 1");
                assert_eq!(outside_drainer.drain_outbox().unwrap(), 1);
            }
            Step::Proceed
        });
        let before = reader.stats().object_misses;
        let found = select!(Item, |i| i.category_id == 5).fetch(&reader).unwrap();
        stepper.clear();
        assert!(reader.stats().object_misses > before, "{engine:?}: the object batch found the object");
        assert!(found.iter().all(|i| i.category_id == 5), "{engine:?}: a row that does not match: {found:?}");
        assert_eq!(category(&reader, 5), vec![2], "{engine:?}");
        assert_eq!(category(&reader, 6), vec![1], "{engine:?}: the moved row is missing from its new node");
    }
}

/// Two processes drain the same captured changes at once: the second finishes its
/// whole drain between the first's select and its cache batch. Both succeed (the
/// deletes of keys already gone, and of rows already gone, are no error), each
/// change is applied, and the table ends empty.
#[test]
fn two_processes_draining_the_same_changes_both_succeed() {
    for engine in CAPTURE_ENGINES {
        let (db, reader, drainer, stepper) = capture_world("twice", engine, NEAR);
        assert_eq!(category(&reader, 5), vec![1]);
        let mut outside = db.outside();
        outside.execute("UPDATE item SET category_id = 6 WHERE id = 1");
        outside.execute("INSERT INTO item (id, category_id, name) VALUES (3, 6, 'outside')");
        let other = drainer.clone();
        stepper.on_batch(move |ops, _| {
            if ops.iter().all(|op| matches!(op, CacheOp::Delete { .. })) {
                assert_eq!(other.drain_outbox().unwrap(), 2, "the other process drains both changes first");
            }
            Step::Proceed
        });
        assert_eq!(reader.drain_outbox().unwrap(), 2, "{engine:?}: the first drain's deletes all count as applied");
        stepper.clear();
        assert_eq!(db.outside().integer("SELECT COUNT(*) FROM memdex_changes"), 0, "{engine:?}");
        assert_eq!(category(&reader, 5), Vec::<i64>::new(), "{engine:?}");
        assert_eq!(category(&reader, 6), vec![1, 3], "{engine:?}");
    }
}

// ------------------------------------------------ ordered index nodes (issue 16)
//
// A page of `order_by(position)` on an ordered node reads the node, sorts its verified
// entries by their order values, and reads only the page's objects. Each test below
// runs one write at the point where that shortcut could go wrong and checks the page
// against the database's rows, before and after the write: a write in flight during
// the read may or may not be seen, one that returned before a read began must be.

/// A cart's lines, kept in the order of `position` by an ordered index.
#[derive(Model, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[memdex(table = "cart_line")]
#[memdex(index(cart_id, order_by = position))]
pub struct Line {
    #[memdex(key)]
    pub id: i64,
    pub cart_id: i64,
    pub position: i64,
    pub label: String,
}

/// Line `id` of cart 1 at position `id * 10`.
fn line(id: i64) -> Line {
    Line { id, cart_id: 1, position: id * 10, label: format!("line {id}") }
}

/// One page of a cart's lines.
#[derive(Clone, Debug)]
struct Page {
    cart: i64,
    descending: bool,
    limit: u64,
    offset: u64,
    /// Keyset paging: the rows after this one.
    after: Option<Line>,
}

/// Cart 1, ascending, `limit` rows from `offset`.
fn window(limit: u64, offset: u64) -> Page {
    Page { cart: 1, descending: false, limit, offset, after: None }
}

impl Page {
    /// This page of `rows` (any rows of the table), ordered and cut here — by
    /// position (reversed when descending), ties by ascending id — without memdex's
    /// paging.
    fn of(&self, mut rows: Vec<Line>) -> Vec<Line> {
        let order = |l: &Line| (if self.descending { -l.position } else { l.position }, l.id);
        rows.retain(|l| l.cart_id == self.cart && self.after.as_ref().is_none_or(|last| order(l) > order(last)));
        rows.sort_by_key(order);
        let (offset, limit) = (usize::try_from(self.offset).unwrap(), usize::try_from(self.limit).unwrap());
        rows.into_iter().skip(offset).take(limit).collect()
    }

    /// What the database says the page is now.
    fn in_database(&self, store: &Store) -> Vec<Line> {
        let cart = self.cart;
        self.of(memdex::scan!(Line, |l| l.cart_id == cart).fetch(store).expect("scan"))
    }
}

/// The ids of `lines`, for messages.
fn line_ids(lines: &[Line]) -> Vec<i64> {
    lines.iter().map(|l| l.id).collect()
}

/// A world of `Line`s: cart 1 holds lines 1 to 12 at positions 10 to 120, cart 2
/// lines 101 to 103. The stepped process keeps no near cache, so that a hot page
/// reads its objects in a round trip of its own (where the tests step in); `other`
/// keeps one.
fn lines_world(tag: &str, driver: Driver) -> World {
    let w = world_with_outbox(tag, driver, QUIET, QUIET, 0);
    w.other.migrate::<Line>().expect("migrate");
    w.other
        .transaction(|tx| {
            for id in 1..=12 {
                tx.insert(&line(id))?;
            }
            for id in 101..=103 {
                tx.insert(&Line { id, cart_id: 2, position: id, label: "other cart".into() })?;
            }
            Ok(())
        })
        .unwrap();
    w
}

impl World {
    /// Reads page `p` through the stepped process until it is hot (node filled with
    /// every order value, objects cached), and through `other` (keeping its near
    /// cache); returns the page.
    fn warm(&self, p: &Page) -> Vec<Line> {
        let want = p.in_database(&self.other);
        for _ in 0..2 {
            assert_eq!(self.stepped.page(p), want, "warming {p:?}");
            assert_eq!(Side::blocking(self.other.clone()).page(p), want, "warming {p:?}");
        }
        want
    }

    /// Runs `between` once, when the stepped process sends its first batch reading
    /// `Line` objects — after its node round trip, before its object round trip.
    /// Returns the number of objects that batch read (0: it never came).
    fn between_node_and_objects(&self, between: impl FnOnce() + Send + 'static) -> Arc<AtomicUsize> {
        let read = Arc::new(AtomicUsize::new(0));
        let seen = read.clone();
        let mut between = Some(between);
        self.stepper.on_batch(move |ops, _| {
            let objects = ops.iter().filter(|op| matches!(op, CacheOp::Get { key, .. } if is_line_object(key))).count();
            if objects > 0
                && let Some(between) = between.take()
            {
                seen.store(objects, Ordering::SeqCst);
                between();
            }
            Step::Proceed
        });
        read
    }

    /// The page, read again after the write returned, by the stepped process, by
    /// `other` (with its near cache) and by a new process keeping one: each must
    /// show the write.
    #[track_caller]
    fn assert_page_shows_the_write(&self, p: &Page, what: &str) {
        let want = p.in_database(&self.other);
        assert_eq!(line_ids(&self.stepped.page(p)), line_ids(&want), "{what}: the stepped process, after the write");
        assert_eq!(self.stepped.page(p), want, "{what}: the stepped process, after the write");
        let other = Side::blocking(self.other.clone());
        assert_eq!(other.page(p), want, "{what}: the near reader, after the write");
        assert_eq!(other.page(p), want, "{what}: the near reader, hot again");
        let third = Side::blocking(self.third_process(NEAR));
        assert_eq!(third.page(p), want, "{what}: a third process");
    }
}

/// Whether `key` is the cache key of a `Line` object (not of a node).
fn is_line_object(key: &str) -> bool {
    let zero = KeySpace::new("memdex", Line::schema(), 0).object(&Value::Int(0));
    let prefix = zero.strip_suffix('0').expect("an integer key ends the object key");
    key.strip_prefix(prefix).is_some_and(|id| id.parse::<i64>().is_ok())
}

/// The page read while a write ran: the database's page before it or after it.
#[track_caller]
fn assert_before_or_after(got: &[Line], before: &[Line], after: &[Line], what: &str) {
    assert!(
        got == before || got == after,
        "{what}: the page is neither the one before the write nor the one after it:\n  got    {got:?}\n  before {before:?}\n  after  {after:?}"
    );
}

/// A line of the page moves far behind it (another process changed its position)
/// between the reader's node round trip and its object round trip, and a third read
/// by key refills its object at the new version. The node the reader sorted still
/// names the old version: the page must not serve the moved line at its old place
/// (the object's etag differs from the entry's, so the reader reads the whole node
/// and the database confirms the line).
#[test]
fn a_line_moving_out_of_the_page_between_its_node_and_objects_is_not_served_at_its_old_place() {
    DRIVERS
        .into_iter()
        .for_each(a_line_moving_out_of_the_page_between_its_node_and_objects_is_not_served_at_its_old_place_on);
}

fn a_line_moving_out_of_the_page_between_its_node_and_objects_is_not_served_at_its_old_place_on(driver: Driver) {
    let w = lines_world("ordered_out", driver);
    let p = window(4, 4);
    let before = w.warm(&p);
    assert_eq!(line_ids(&before), vec![5, 6, 7, 8]);
    let other = w.other.clone();
    let read = w.between_node_and_objects(move || {
        other.update(&Line { position: 1_000, ..line(6) }).unwrap();
        let refilled = select!(Line, |l| l.id == 6).fetch(&other).unwrap();
        assert_eq!(refilled[0].position, 1_000);
    });
    let got = w.stepped.page(&p);
    w.stepper.clear();
    assert_eq!(read.load(Ordering::SeqCst), 4, "the reader read the page's objects alone, from the sorted node");
    let after = p.in_database(&w.other);
    assert_eq!(line_ids(&after), vec![5, 7, 8, 9]);
    assert_before_or_after(&got, &before, &after, "line 6 moved out");
    w.assert_page_shows_the_write(&p, "line 6 moved out");
    w.assert_nothing_drained();
}

/// A writer's batch lands in two parts (its appends and its object deletes sit on
/// different servers): the append of a line moving out of the page lands, then
/// another process — which keeps the page's lines in its near cache — reads the
/// page, then the object's delete lands. The appended entry makes the node unable to
/// order itself, so the reader reads the whole node and asks the database about the
/// line listed with two versions: it shows the move at once (as unordered reads do
/// once an append is visible) and never serves the kept old version afterwards.
#[test]
fn a_writers_append_seen_before_its_object_delete_makes_the_page_show_the_move() {
    DRIVERS.into_iter().for_each(a_writers_append_seen_before_its_object_delete_makes_the_page_show_the_move_on);
}

fn a_writers_append_seen_before_its_object_delete_makes_the_page_show_the_move_on(driver: Driver) {
    let w = lines_world("ordered_split", driver);
    let p = window(4, 4);
    let before = w.warm(&p);
    assert!(w.other.stats().near_hits >= 4, "the reader keeps the page's lines: {:?}", w.other.stats());
    let reader = Side::blocking(w.other.clone());
    let seen: Arc<std::sync::Mutex<Vec<Vec<Line>>>> = Arc::default();
    let (pages, q) = (seen.clone(), p.clone());
    w.stepper.on_batch(move |ops, inner| {
        let is_append = |op: &CacheOp<'_>| matches!(op, CacheOp::Append { .. });
        if !ops.iter().any(is_append) || !pages.lock().unwrap().is_empty() {
            return Step::Proceed;
        }
        // The appends land; the reader reads twice; then the rest of the batch (the
        // appends' CAS checks and the object deletes) lands, in the batch's order.
        let (appends, rest): (Vec<usize>, Vec<usize>) = (0..ops.len()).partition(|&at| is_append(&ops[at]));
        let mut replies: Vec<Option<_>> = (0..ops.len()).map(|_| None).collect();
        for part in [appends, rest] {
            let batch: Vec<CacheOp<'_>> = part.iter().map(|&at| ops[at]).collect();
            for (at, reply) in part.iter().zip(inner.run(&batch)) {
                replies[*at] = Some(reply);
            }
            let mut pages = pages.lock().unwrap();
            if pages.is_empty() {
                pages.push(reader.page(&q));
                pages.push(reader.page(&q));
            }
        }
        Step::Reply(replies.into_iter().map(|r| r.expect("every op answered")).collect())
    });
    w.stepped.update_line(&Line { position: 1_000, ..line(6) }).unwrap();
    w.stepper.clear();
    let after = p.in_database(&w.other);
    assert_eq!(line_ids(&after), vec![5, 7, 8, 9]);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "the reader read between the append and the delete");
    for got in &seen {
        assert_before_or_after(got, &before, &after, "between the append and the delete");
        assert_eq!(got, &after, "the move is visible once its append is");
    }
    w.assert_page_shows_the_write(&p, "line 6 moved out, batch split");
    w.assert_nothing_drained();
}

/// A line from behind the page moves into it (keyset paging: the rows after line 4)
/// between the reader's node round trip and its object round trip. That read may
/// miss it (the write had not returned when it began); every read after the write
/// returned must show it, although the line's verified entry still names its old
/// place: the appended entry makes the node unable to order itself.
#[test]
fn a_line_moving_into_the_page_is_seen_once_the_write_returned() {
    DRIVERS.into_iter().for_each(a_line_moving_into_the_page_is_seen_once_the_write_returned_on);
}

fn a_line_moving_into_the_page_is_seen_once_the_write_returned_on(driver: Driver) {
    let w = lines_world("ordered_in", driver);
    let p = Page { after: Some(line(4)), ..window(4, 0) };
    let before = w.warm(&p);
    assert_eq!(line_ids(&before), vec![5, 6, 7, 8]);
    let other = w.other.clone();
    let read = w.between_node_and_objects(move || other.update(&Line { position: 65, ..line(11) }).unwrap());
    let got = w.stepped.page(&p);
    w.stepper.clear();
    assert_eq!(read.load(Ordering::SeqCst), 4, "the reader read the page's objects alone, from the sorted node");
    let after = p.in_database(&w.other);
    assert_eq!(line_ids(&after), vec![5, 6, 11, 7]);
    assert_before_or_after(&got, &before, &after, "line 11 moved in");
    w.assert_page_shows_the_write(&p, "line 11 moved in");
    w.assert_nothing_drained();
}

/// A node that cannot order itself (a line was edited since it was filled) sends the
/// page to the whole node, whose write-back under CAS stores the node verified with
/// every order value. A line moves into the page between the reader's read and that
/// write-back: its append changes the node's CAS, so the write-back loses and the
/// append stays, and the next pages show the line. (Written back regardless, the
/// node would name the line's old place as verified, and pages would miss it.)
#[test]
fn an_append_during_the_whole_node_write_back_makes_it_lose() {
    DRIVERS.into_iter().for_each(an_append_during_the_whole_node_write_back_makes_it_lose_on);
}

fn an_append_during_the_whole_node_write_back_makes_it_lose_on(driver: Driver) {
    let w = lines_world("ordered_write_back", driver);
    let p = window(4, 4);
    w.warm(&p);
    w.other.update(&Line { label: "relabelled".into(), ..line(2) }).unwrap();
    let before = p.in_database(&w.other);
    let other = w.other.clone();
    let fired = Arc::new(AtomicUsize::new(0));
    let f = fired.clone();
    w.stepper.on_batch(move |ops, _| {
        if writes_cache(ops) && f.fetch_add(1, Ordering::SeqCst) == 0 {
            other.update(&Line { position: 55, ..line(12) }).unwrap();
        }
        Step::Proceed
    });
    let before_stats = w.stepped.stats();
    let got = w.stepped.page(&p);
    let lost = w.stepped.stats().fills_lost - before_stats.fills_lost;
    w.stepper.clear();
    assert_eq!(fired.load(Ordering::SeqCst), 1, "the reader wrote the node back");
    let after = p.in_database(&w.other);
    assert_eq!(line_ids(&after), vec![5, 12, 6, 7]);
    assert_before_or_after(&got, &before, &after, "line 12 moved in during the write-back");
    w.assert_page_shows_the_write(&p, "line 12 moved in during the write-back");
    assert_eq!(lost, 1, "the write-back lost to the append");
    w.assert_nothing_drained();
}

/// A line of a descending page is deleted between the reader's node round trip and
/// its object round trip: its object is gone, so the page is read from the whole node
/// and the database, and the line after the page takes its place — never a page one
/// line short.
#[test]
fn a_line_deleted_from_the_page_between_its_node_and_objects_is_not_served() {
    DRIVERS.into_iter().for_each(a_line_deleted_from_the_page_between_its_node_and_objects_is_not_served_on);
}

fn a_line_deleted_from_the_page_between_its_node_and_objects_is_not_served_on(driver: Driver) {
    let w = lines_world("ordered_delete", driver);
    let p = Page { descending: true, ..window(4, 2) };
    let before = w.warm(&p);
    assert_eq!(line_ids(&before), vec![10, 9, 8, 7]);
    let other = w.other.clone();
    let read = w.between_node_and_objects(move || other.delete::<Line>(&9).unwrap());
    let got = w.stepped.page(&p);
    w.stepper.clear();
    assert_eq!(read.load(Ordering::SeqCst), 4, "the reader read the page's objects alone, from the sorted node");
    let after = p.in_database(&w.other);
    assert_eq!(line_ids(&after), vec![10, 8, 7, 6]);
    assert_before_or_after(&got, &before, &after, "line 9 deleted");
    w.assert_page_shows_the_write(&p, "line 9 deleted");
    w.assert_nothing_drained();
}

/// An object of the page is evicted between the reader's node round trip and its
/// object round trip (no write at all): the page is read from the whole node, right
/// and whole, and the next read is hot again — the page's objects alone.
#[test]
fn an_evicted_page_object_sends_the_page_to_the_whole_node() {
    DRIVERS.into_iter().for_each(an_evicted_page_object_sends_the_page_to_the_whole_node_on);
}

fn an_evicted_page_object_sends_the_page_to_the_whole_node_on(driver: Driver) {
    let w = lines_world("ordered_evict", driver);
    let p = window(4, 4);
    let want = w.warm(&p);
    let plain = w.stepper.plain();
    let read = w.between_node_and_objects(move || {
        let key = KeySpace::new("memdex", Line::schema(), 0).object(&Value::Int(7));
        plain.run(&[CacheOp::Delete { key: &key }]);
    });
    let before = w.stepped.stats();
    assert_eq!(w.stepped.page(&p), want, "the page with line 7 evicted");
    w.stepper.clear();
    let after = w.stepped.stats();
    assert_eq!(read.load(Ordering::SeqCst), 4, "the reader read the page's objects alone, from the sorted node");
    assert_eq!(after.object_misses - before.object_misses, 1, "{after:?}");
    assert_eq!(after.object_hits - before.object_hits, 3 + 8, "the page's other 3, then the node's other 8: {after:?}");
    let before = after;
    assert_eq!(w.stepped.page(&p), want);
    let after = w.stepped.stats();
    assert_eq!(after.object_hits - before.object_hits, 4, "hot again: the page's objects alone: {after:?}");
    w.assert_nothing_drained();
}

/// Rule 4 for a write that reads its row (PostgreSQL, an integer index): its entry's
/// keys of the nodes the row was in are spelled by the statement itself, so a future
/// dropped while the statement waits — it commits later, its reply lost — leaves this
/// process knowing only the keys of the nodes the row is in. Its next call reads the
/// table's entry before it deletes the keys: the node the row left goes too, and with
/// it any near cache's version of the row it listed. The entry's keys, as the
/// database spelled them, are exactly those this process spells.
#[test]
fn a_write_reading_its_row_whose_reply_is_lost_is_repaired_from_its_entry() {
    let w = world("lost_reply", Driver { tokio: true, backend: Engine::Postgres });
    let holder = a_move_dropped_while_it_waits(&w);
    let mut watcher = committed_once_let_go(&w, holder);
    assert_eq!(
        watcher.integer(&lost_entry()),
        1,
        "the entry names the object, the node it is in and the node it was in"
    );
    assert_eq!(node_ids(&w, 5), Some(vec![1]), "nothing has touched the node the row left yet");
    assert_eq!(w.stepped.stats().outbox_deferred, 1);
    // Any call of the writing process repairs the cache first.
    assert_eq!(w.stepped.category(7), Vec::<i64>::new());
    assert_eq!(node_ids(&w, 5), None, "the node the row left is gone");
    // (The call's own fill of node 7 read row 1 as a candidate: the entry names it as
    // moved, K10.)
    let object = cached_object(&w, 1);
    assert!(object.is_none() || object == Some(item(1, 6)), "the object as it was is gone: {object:?}");
    assert_eq!((w.stepped.category(5), w.stepped.category(6)), (vec![], vec![1]));
    assert_eq!((category(&w.other, 5), category(&w.other, 6)), (vec![], vec![1]));
    // The writer applied its own entry; no periodic drain of the table ran.
    assert_eq!((w.stepped.stats().outbox_drained, w.other.stats().outbox_drained), (1, 0));
}

/// Rule 4 for a one-statement write whose outcome is unknown (its future dropped
/// while the statement waits for a row lock): the writer's next call deletes the keys
/// it knows before the statement commits, and a reader then fills the caches from
/// the row as it was. So the writer leaves the entry in the table — its later writes
/// do not clean it up as an applied one — and the periodic drain, once the statement
/// has committed it, deletes every key it names: the readers are right again.
/// Cleaned up as applied, the entry would be gone, and the node the row left would
/// list it in its old version for as long as it stays cached.
#[test]
fn a_write_whose_reply_is_lost_and_that_commits_late_is_repaired_by_the_periodic_drain() {
    let w = world("late_commit", Driver { tokio: true, backend: Engine::Postgres });
    let holder = a_move_dropped_while_it_waits(&w);
    // The writer's next call, before the statement commits: its drain finds no entry
    // in the table and deletes the keys it knows.
    assert_eq!(w.stepped.category(7), Vec::<i64>::new());
    assert_eq!(w.stepped.stats().outbox_drained, 1);
    // A reader fills from the row as it still is.
    assert_eq!((category(&w.other, 5), category(&w.other, 6)), (vec![1], vec![]));
    let mut watcher = committed_once_let_go(&w, holder);
    // The writer writes again (its statement deletes the entries it has applied).
    w.stepped.insert(&item(2, 7)).unwrap();
    assert_eq!(watcher.integer(&lost_entry()), 1, "the entry stays for the periodic drain");
    let drainer = w.db.builder().cache(w.stepper.plain()).outbox(Duration::ZERO, Duration::ZERO).build().unwrap();
    assert_eq!(category(&drainer, 7), vec![2]);
    assert_eq!(watcher.integer(&lost_entry()), 0, "the periodic drain applied it");
    assert_eq!((category(&w.other, 5), category(&w.other, 6)), (vec![], vec![1]));
    assert_eq!((w.stepped.category(5), w.stepped.category(6)), (vec![], vec![1]));
}

/// Row 1 inserted in category 5 and the nodes of categories 5 and 6 read through the
/// stepped process (a tokio one); then its move to category 6 sent while the returned
/// session holds the row locked, and its future dropped while the statement waits.
fn a_move_dropped_while_it_waits(w: &World) -> memdex_tests::outside::OutsideSession {
    let EitherStore::Tokio(store) = w.stepped.0.clone() else { unreachable!("a tokio world") };
    w.other.insert(&item(1, 5)).unwrap();
    assert_eq!((w.stepped.category(5), w.stepped.category(6)), (vec![1], vec![]));
    let mut holder = w.db.outside();
    holder.execute("BEGIN");
    holder.execute("SELECT id FROM item WHERE id = 1 FOR UPDATE");
    let write = memdex_tests::asynchronous::runtime().spawn(async move { store.update(&item(1, 6)).await });
    w.db.outside().wait_for_a_lock_wait("the move");
    write.abort();
    assert!(block_on(write).is_err_and(|e| e.is_cancelled()), "the move's future is dropped while it waits");
    holder
}

/// Lets go of the row; returns once the dropped move's statement, already sent, has
/// committed — with a session to watch the database.
fn committed_once_let_go(
    w: &World,
    mut holder: memdex_tests::outside::OutsideSession,
) -> memdex_tests::outside::OutsideSession {
    holder.execute("COMMIT");
    let mut watcher = w.db.outside();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while watcher.integer("SELECT category_id FROM item WHERE id = 1") != 6 {
        assert!(std::time::Instant::now() < deadline, "the dropped move never committed");
        std::thread::sleep(Duration::from_millis(5));
    }
    watcher
}

/// Counts the outbox entries of the dropped move of row 1 from category 5 to 6: its
/// object's key, its new node's and its old node's, as this process spells them.
fn lost_entry() -> String {
    let object = KeySpace::new("memdex", Item::schema(), 0).object(&Value::Int(1));
    let keys = [object.as_str(), &node_key(6), &node_key(5)].join("\\n");
    format!("SELECT COUNT(*) FROM memdex_outbox WHERE keys = E'{keys}'")
}
