//! Writers outside memdex (issue 15, item 2): with
//! `StoreBuilder::capture_outside_writes(true)`, a row written by a session that is
//! not memdex's — a `psql` UPDATE, another service, a data migration, here the
//! databases' own client crates (`memdex_tests::outside`) — is seen by every memdex
//! process within the bound: the outbox interval plus one drain.
//!
//! Each test runs on SQLite (a file), PostgreSQL and MariaDB, with one real
//! memcached, and two stores on the same database and namespace standing for two
//! processes of one service. The caches are warm before the outside writes (nodes,
//! objects and near caches), so a read that was not invalidated would return the
//! old rows.

// Tests fail by panicking, with a message saying what went wrong.
#![allow(clippy::panic, clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use memdex::{Model, Store, select};
use memdex_tests::models::{CartLine, Item, item, line};
use memdex_tests::servers::memcached::MemcachedServer;
use memdex_tests::shared_db::{Engine, SharedDb, each_engine};
use serde::{Deserialize, Serialize};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

/// How often each store drains: the bound's first term.
const INTERVAL: Duration = Duration::from_millis(100);

/// One process of the service: capture on, draining every [`INTERVAL`].
fn process(db: &SharedDb, memcached: &str) -> Store {
    db.builder()
        .namespace(db.name())
        .memcached([memcached])
        .capture_outside_writes(true)
        .outbox(INTERVAL, Duration::from_secs(2))
        .build()
        .unwrap_or_else(|e| panic!("{:?}: the store builds: {e}", db.engine()))
}

fn ids_in(store: &Store, category: i64) -> BTreeSet<i64> {
    select!(Item, |i| i.category_id == category).fetch(store).expect("fetch").into_iter().map(|i| i.id).collect()
}

fn by_id(store: &Store, id: i64) -> Option<Item> {
    select!(Item, |i| i.id == id).fetch(store).expect("fetch").pop()
}

fn warm(store: &Store) {
    for category in [5, 6] {
        ids_in(store, category);
        ids_in(store, category);
    }
    for id in 1..=5 {
        by_id(store, id);
    }
}

fn changes_waiting(db: &SharedDb) -> i64 {
    db.outside().integer("SELECT COUNT(*) FROM memdex_changes")
}

/// An UPDATE that moves a row between index nodes, an UPDATE of a plain column,
/// an INSERT and a DELETE, each by an outside session after both processes' caches
/// are warm: once the bound has passed, both processes see every one of them.
#[test]
fn outside_writes_reach_every_process_within_the_bound() {
    each_engine("outside_bound", |db, memcached| {
        let (a, b) = (process(db, memcached), process(db, memcached));
        a.migrate::<Item>().expect("a migrates");
        b.migrate::<Item>().expect("b migrates");
        for row in [item(1, 5), item(2, 5), item(3, 5), item(4, 6)] {
            a.insert(&row).expect("insert");
        }
        warm(&a);
        warm(&b);
        let mut outside = db.outside();
        assert_eq!(outside.execute("UPDATE item SET category_id = 6 WHERE id = 3"), 1);
        assert_eq!(outside.execute("UPDATE item SET name = 'renamed ''outside''' WHERE id = 1"), 1);
        assert_eq!(outside.execute("INSERT INTO item (id, category_id, name) VALUES (5, 6, 'new')"), 1);
        assert_eq!(outside.execute("DELETE FROM item WHERE id = 2"), 1);
        let committed = Instant::now();
        assert_eq!(changes_waiting(db), 4, "{:?}: one captured change per row written", db.engine());
        std::thread::sleep(INTERVAL);
        for (name, store) in [("a", &a), ("b", &b)] {
            let context = format!("{:?}, process {name}, {:?} after the writes", db.engine(), committed.elapsed());
            assert_eq!(ids_in(store, 5), BTreeSet::from([1]), "{context}");
            assert_eq!(ids_in(store, 6), BTreeSet::from([3, 4, 5]), "{context}");
            let one = by_id(store, 1).expect("item 1 exists");
            assert_eq!(one.name, "renamed 'outside'", "{context}");
            assert_eq!(by_id(store, 2), None, "{context}");
            assert_eq!(by_id(store, 5), Some(Item { id: 5, category_id: 6, name: "new".into() }), "{context}");
        }
        let applied = a.stats().outside_changes_applied + b.stats().outside_changes_applied;
        assert_eq!(applied, 4, "{:?}: each change applied once, by whichever process drained first", db.engine());
        assert_eq!(changes_waiting(db), 0, "{:?}: applied changes are deleted", db.engine());
    });
}

/// memdex's own writes keep the cache right by themselves: the triggers skip
/// memdex's sessions, so they cost the cache nothing (no captured row to apply,
/// no key emptied behind the write).
#[test]
fn memdex_own_writes_are_not_captured() {
    each_engine("outside_own", |db, memcached| {
        let store = process(db, memcached);
        store.migrate::<Item>().expect("migrate");
        store.insert(&item(1, 5)).expect("insert");
        store.update(&item(1, 6)).expect("update");
        store
            .transaction(|tx| {
                tx.insert(&item(2, 5))?;
                tx.delete::<Item>(&1)
            })
            .expect("a transaction");
        assert_eq!(changes_waiting(db), 0, "{:?}: memdex's writes captured", db.engine());
        db.outside().execute("UPDATE item SET name = 'x' WHERE id = 2");
        assert_eq!(changes_waiting(db), 1, "{:?}: an outside write not captured", db.engine());
    });
}

/// The async driver's sessions carry the mark too (PostgreSQL on tokio-postgres),
/// and its drains apply the captured changes before its reads, as the blocking
/// driver's do.
#[test]
fn the_async_driver_skips_its_own_writes_and_applies_outside_ones() {
    let memcached = MemcachedServer::start().expect("memcached starts");
    let db = SharedDb::new(Engine::Postgres, "outside_async");
    // The outside session is a blocking client: it runs between the awaits, on this
    // thread, never inside the runtime.
    let runtime = memdex_tests::asynchronous::runtime();
    let builder = db
        .builder()
        .namespace(db.name())
        .memcached([memcached.addr()])
        .capture_outside_writes(true)
        .outbox(INTERVAL, Duration::from_secs(2));
    let store = runtime.block_on(builder.build_async()).expect("an async store");
    runtime.block_on(async {
        store.migrate::<Item>().await.expect("migrate");
        store.insert(&item(1, 5)).await.expect("insert");
        store.update(&item(1, 6)).await.expect("update");
    });
    assert_eq!(changes_waiting(&db), 0, "the async store's writes were captured");
    let in_six = || runtime.block_on(select!(Item, |i| i.category_id == 6).fetch_async(&store)).expect("fetch");
    assert_eq!(in_six().len(), 1);
    assert_eq!(in_six().len(), 1, "hot");
    db.outside().execute("DELETE FROM item WHERE id = 1");
    assert_eq!(changes_waiting(&db), 1);
    std::thread::sleep(INTERVAL);
    assert_eq!(in_six(), Vec::<Item>::new(), "the outside delete, one interval later");
    assert_eq!(store.stats().outside_changes_applied, 1);
    assert_eq!(changes_waiting(&db), 0);
}

/// A column of every indexable type, each indexed on its own: an outside write
/// to each moves the row between nodes whose keys spell values of that type, which
/// the drain must rebuild exactly from the captured images (hex, microseconds,
/// 17-digit floats, booleans as numbers on two of the three databases).
#[derive(Model, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[memdex(table = "typed")]
pub struct Typed {
    #[memdex(key)]
    pub id: i64,
    #[memdex(index)]
    pub flag: bool,
    #[memdex(index)]
    pub score: f64,
    #[memdex(index)]
    pub at: chrono::DateTime<chrono::Utc>,
    #[memdex(index)]
    pub uid: uuid::Uuid,
    #[memdex(index)]
    pub tag: Vec<u8>,
    #[memdex(index)]
    pub label: String,
}

fn typed_row() -> Typed {
    Typed {
        id: 1,
        flag: false,
        score: 0.1 + 0.2,
        at: chrono::DateTime::from_timestamp_micros(-1).expect("an instant"),
        uid: uuid::Uuid::from_u128(0xa0ee_bc99_9c0b_4ef8_bb6d_6bb9_bd38_0a11),
        tag: vec![0, 255],
        label: "ü 'quoted' & = :".into(),
    }
}

/// The SET clause an outside session writes `new`'s values with, per engine.
fn set_clause(engine: Engine, new: &Typed) -> String {
    let micros = new.at.timestamp_micros();
    let hex = |b: &[u8]| b.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let (flag, at, uid, tag) = match engine {
        Engine::Postgres => (
            new.flag.to_string(),
            format!("to_timestamp({micros} / 1000000.0)"),
            format!("'{}'", new.uid),
            format!("'\\x{}'::bytea", hex(&new.tag)),
        ),
        Engine::MariaDb => (
            i64::from(new.flag).to_string(),
            micros.to_string(),
            format!("UNHEX('{}')", hex(new.uid.as_bytes())),
            format!("UNHEX('{}')", hex(&new.tag)),
        ),
        Engine::Sqlite => (
            i64::from(new.flag).to_string(),
            micros.to_string(),
            format!("x'{}'", hex(new.uid.as_bytes())),
            format!("x'{}'", hex(&new.tag)),
        ),
    };
    format!(
        "flag = {flag}, score = {:?}, at = {at}, uid = {uid}, tag = {tag}, label = '{}'",
        new.score,
        new.label.replace('\'', "''")
    )
}

#[test]
fn every_indexed_type_converges() {
    each_engine("outside_types", |db, memcached| {
        let store = process(db, memcached);
        store.migrate::<Typed>().expect("migrate");
        let old = typed_row();
        store.insert(&old).expect("insert");
        let new = Typed {
            id: 1,
            flag: true,
            score: 1e300,
            at: chrono::DateTime::from_timestamp_micros(1_704_067_200_123_456).expect("an instant"),
            uid: uuid::Uuid::from_u128(7),
            tag: vec![0xde, 0xad],
            label: "après".into(),
        };
        // Warm every node the row is in, and every node it moves to (empty).
        for row in [&old, &new] {
            let r = row.clone();
            let _ = select!(Typed, |t| t.flag == r.flag).fetch(&store).expect("fetch");
            let _ = select!(Typed, |t| t.score == r.score).fetch(&store).expect("fetch");
            let _ = select!(Typed, |t| t.at == r.at).fetch(&store).expect("fetch");
            let _ = select!(Typed, |t| t.uid == r.uid).fetch(&store).expect("fetch");
            let _ = select!(Typed, |t| t.tag == r.tag).fetch(&store).expect("fetch");
            let _ = select!(Typed, |t| t.label == r.label).fetch(&store).expect("fetch");
        }
        let sql = format!("UPDATE typed SET {} WHERE id = 1", set_clause(db.engine(), &new));
        assert_eq!(db.outside().execute(&sql), 1);
        std::thread::sleep(INTERVAL);
        let engine = db.engine();
        let one = |found: Vec<Typed>, what: &str| {
            assert_eq!(found, std::slice::from_ref(&new), "{engine:?}: through the index on {what}, by the new value");
        };
        let n = new.clone();
        one(select!(Typed, |t| t.flag == n.flag).fetch(&store).unwrap(), "flag");
        one(select!(Typed, |t| t.score == n.score).fetch(&store).unwrap(), "score");
        one(select!(Typed, |t| t.at == n.at).fetch(&store).unwrap(), "at");
        one(select!(Typed, |t| t.uid == n.uid).fetch(&store).unwrap(), "uid");
        one(select!(Typed, |t| t.tag == n.tag).fetch(&store).unwrap(), "tag");
        one(select!(Typed, |t| t.label == n.label).fetch(&store).unwrap(), "label");
        let o = old.clone();
        for (what, found) in [
            ("flag", select!(Typed, |t| t.flag == o.flag).fetch(&store).unwrap()),
            ("score", select!(Typed, |t| t.score == o.score).fetch(&store).unwrap()),
            ("at", select!(Typed, |t| t.at == o.at).fetch(&store).unwrap()),
            ("uid", select!(Typed, |t| t.uid == o.uid).fetch(&store).unwrap()),
            ("tag", select!(Typed, |t| t.tag == o.tag).fetch(&store).unwrap()),
            ("label", select!(Typed, |t| t.label == o.label).fetch(&store).unwrap()),
        ] {
            assert!(found.is_empty(), "{engine:?}: the old {what} still finds the row: {found:?}");
        }
    });
}

/// More changes than one drain applies: each drain takes a batch, oldest first,
/// and the reads are right once the queue is empty.
#[test]
fn a_long_queue_drains_in_batches() {
    each_engine("outside_queue", |db, memcached| {
        let store = process(db, memcached);
        store.migrate::<Item>().expect("migrate");
        store.transaction(|tx| (1..=1_100).try_for_each(|id| tx.insert(&item(id, 5)))).expect("insert");
        assert_eq!(ids_in(&store, 5).len(), 1_100);
        assert_eq!(db.outside().execute("UPDATE item SET category_id = 6"), 1_100);
        let drained: Vec<usize> = (0..4).map(|_| store.drain_outbox().expect("drain")).collect();
        assert_eq!(drained, [500, 500, 100, 0], "{:?}", db.engine());
        assert!(ids_in(&store, 5).is_empty(), "{:?}", db.engine());
        assert_eq!(ids_in(&store, 6).len(), 1_100, "{:?}", db.engine());
    });
}

/// Each drain takes the oldest changes, by id, whatever order the table keeps them
/// in: otherwise, while more than a batch waits, an old change could wait behind
/// newer ones for as long as they keep coming. PostgreSQL's heap is the order that
/// differs (a row goes where there is room, so after a VACUUM newer changes can
/// sit before older ones; SQLite's rowid table and InnoDB's clustered key keep the
/// ids' order): here the changes are stored newest first.
#[test]
fn each_drain_takes_the_oldest_changes() {
    let memcached = MemcachedServer::start().expect("memcached starts");
    let db = SharedDb::new(Engine::Postgres, "outside_oldest");
    let store = process(&db, &memcached.addr());
    store.migrate::<Item>().expect("migrate");
    let changes: Vec<String> = (1..=600).rev().map(|id| format!("({id}, 'item', 'id:int', '[{id}]', NULL)")).collect();
    let mut outside = db.outside();
    let insert = "INSERT INTO memdex_changes (id, table_name, shape, old_image, new_image) VALUES";
    assert_eq!(outside.execute(&format!("{insert} {}", changes.join(", "))), 600);
    assert_eq!(store.drain_outbox().expect("drain"), 500);
    assert_eq!(outside.integer("SELECT MIN(id) FROM memdex_changes"), 501, "the drain left older changes waiting");
}

/// A row in the changes table that memdex's triggers did not write (damaged, or
/// written by hand) names no key: the drain deletes it with a warning and applies
/// the rest, never failing or panicking on it.
#[test]
fn a_damaged_change_is_dropped() {
    let memcached = MemcachedServer::start().expect("memcached starts");
    let db = SharedDb::new(Engine::Sqlite, "outside_damaged");
    let store = process(&db, &memcached.addr());
    store.migrate::<Item>().expect("migrate");
    store.insert(&item(1, 5)).expect("insert");
    assert_eq!(ids_in(&store, 5), BTreeSet::from([1]));
    assert_eq!(ids_in(&store, 6), BTreeSet::new(), "node 6 is cached empty");
    let mut outside = db.outside();
    for bad in [
        "('item', 'id:int', '[1', NULL)",
        "('item', 'id:nope', NULL, '[1]')",
        "('it em', 'id:int', NULL, '[1]')",
        "('item', 'id:int&category_id:int', '[\"x\", 5]', NULL)",
    ] {
        outside.execute(&format!("INSERT INTO memdex_changes (table_name, shape, old_image, new_image) VALUES {bad}"));
    }
    outside.execute("UPDATE item SET category_id = 6 WHERE id = 1");
    let (drained, warnings) = warnings_while(|| store.drain_outbox().expect("the drain does not fail"));
    assert_eq!(drained, 1);
    assert_eq!(changes_waiting(&db), 0);
    assert_eq!(ids_in(&store, 6), BTreeSet::from([1]));
    assert!(
        matches!(&warnings[..], [one] if one.starts_with("memdex::capture: deleting 4 captured changes that do not parse")),
        "one warning names the changes dropped: {warnings:?}"
    );
}

/// The warnings logged on this thread while `body` runs (`target: message`), and
/// what `body` returned.
fn warnings_while<R>(body: impl FnOnce() -> R) -> (R, Vec<String>) {
    let warnings = Warnings::default();
    let result = tracing::subscriber::with_default(tracing_subscriber::registry().with(warnings.clone()), body);
    let logged = warnings.0.lock().unwrap().clone();
    (result, logged)
}

#[derive(Clone, Default)]
struct Warnings(Arc<Mutex<Vec<String>>>);

impl<S: tracing::Subscriber> Layer<S> for Warnings {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        if *event.metadata().level() == tracing::Level::WARN {
            let mut message = Message(String::new());
            event.record(&mut message);
            self.0.lock().unwrap().push(format!("{}: {}", event.metadata().target(), message.0));
        }
    }
}

struct Message(String);

impl tracing::field::Visit for Message {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

/// Outside writes that reorder a cart, move a line out of it and delete one reach
/// the pages every process reads from its ordered node, within the bound.
#[test]
fn outside_reorders_reach_the_pages_of_an_ordered_index() {
    each_engine("outside_ordered", |db, memcached| {
        let (a, b) = (process(db, memcached), process(db, memcached));
        a.migrate::<CartLine>().expect("a migrates");
        b.migrate::<CartLine>().expect("b migrates");
        for id in 1..=20 {
            a.insert(&line(id, 1, id * 10)).expect("insert");
        }
        let page = |store: &Store| -> Vec<i64> {
            let q = select!(CartLine, |l| l.cart_id == 1).order_by(CartLine::position()).limit(5).offset(2);
            q.fetch(store).expect("page").into_iter().map(|l| l.id).collect()
        };
        for store in [&a, &b] {
            for _ in 0..3 {
                assert_eq!(page(store), [3, 4, 5, 6, 7], "{:?}: before", db.engine());
            }
        }
        let mut outside = db.outside();
        assert_eq!(outside.execute("UPDATE cart_line SET position = 5 WHERE id = 15"), 1);
        assert_eq!(outside.execute("UPDATE cart_line SET cart_id = 2 WHERE id = 4"), 1);
        assert_eq!(outside.execute("DELETE FROM cart_line WHERE id = 6"), 1);
        std::thread::sleep(INTERVAL);
        // Positions now: 15 at 5, then 1, 2, 3, 5, 7, 8, …
        for (name, store) in [("a", &a), ("b", &b)] {
            assert_eq!(page(store), [2, 3, 5, 7, 8], "{:?}, process {name}", db.engine());
        }
    });
}
