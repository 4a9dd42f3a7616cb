//! The runtime end to end: every read and write path on each database and cache
//! backend (SQLite and PostgreSQL; the in-process cache and a real memcached).

// Tests fail by panicking, with a message saying what went wrong.
#![allow(clippy::panic, clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::sync::Arc;

use memdex::cache::in_process::InProcessCache;
use memdex::cache::{CacheBackend, CacheConfig, CacheOp};
use memdex::{Dialect, Error, Model, Store, scan, select, view};
use memdex_tests::asynchronous::EitherStore;
use memdex_tests::backends::{Backends, CacheMode, Db, each_backend};
use memdex_tests::servers::memcached::MemcachedServer;
use serde::{Deserialize, Serialize};

#[derive(Model, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[memdex(table = "item")]
#[memdex(index(cart_id, status))]
pub struct Item {
    #[memdex(key)]
    pub id: i64,
    #[memdex(index)]
    pub category_id: i64,
    #[memdex(index(prefix = 2))]
    pub name: String,
    pub cart_id: i64,
    pub status: String,
    pub price: f64,
    pub deleted_at: Option<i64>,
}

#[derive(Model, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[memdex(table = "tag")]
pub struct Tag {
    #[memdex(key)]
    pub name: String,
    #[memdex(index)]
    pub kind: String,
    pub weight: i64,
}

fn item(id: i64, category_id: i64, name: &str, price: f64) -> Item {
    Item {
        id,
        category_id,
        name: name.into(),
        cart_id: id % 3,
        status: if id % 2 == 0 { "open" } else { "paid" }.into(),
        price,
        deleted_at: None,
    }
}

fn seed(store: &Store) {
    store.migrate::<Item>().unwrap();
    store
        .transaction(|tx| {
            for (id, cat, name, price) in [
                (1, 5, "lamp", 19.5),
                (2, 5, "desk", 129.0),
                (3, 5, "chair", 49.0),
                (4, 5, "rug", 80.0),
                (5, 6, "lantern", 9.0),
                (6, 6, "La_mp%", 15.0),
                (7, 7, "läufer", 33.0),
            ] {
                tx.insert(&item(id, cat, name, price))?;
            }
            Ok(())
        })
        .unwrap();
}

fn ids(items: &[Item]) -> Vec<i64> {
    items.iter().map(|i| i.id).collect()
}

/// Hot, a read is ONE round trip (the node; the objects come from the near cache at
/// the versions the node names); without the near cache, or from another process
/// whose near cache is cold, two (the node, then the objects).
#[test]
fn reads_cold_then_hot_in_one_round_trip_or_two_without_the_near_cache() {
    each_backend("reads", |b: &Backends| {
        let store = b.store_with(|builder| builder.near_cache_capacity(64 << 20));
        seed(&store);
        let cat = 5;
        let q = select!(Item, |i| i.category_id == cat && i.price > 20.0);
        assert_eq!(ids(&q.fetch(&store).unwrap()), vec![2, 3, 4]);
        let before = store.stats();
        assert_eq!(ids(&q.fetch(&store).unwrap()), vec![2, 3, 4]);
        let after = store.stats();
        assert_eq!(after.cache_round_trips - before.cache_round_trips, 1, "{after:?}");
        assert_eq!(after.near_hits - before.near_hits, 4, "every listed object from the near cache: {after:?}");
        assert_eq!(after.db_queries, before.db_queries, "hot path asks the database nothing");
        assert_eq!(q.count(&store).unwrap(), 3);

        let far = b.store_with(|builder| builder.near_cache_capacity(0));
        seed(&far);
        assert_eq!(ids(&q.fetch(&far).unwrap()), vec![2, 3, 4]);
        let before = far.stats();
        assert_eq!(ids(&q.fetch(&far).unwrap()), vec![2, 3, 4]);
        let after = far.stats();
        assert_eq!(after.cache_round_trips - before.cache_round_trips, 2, "{after:?}");
        assert_eq!((after.near_hits, after.near_misses), (0, 0), "no near cache: {after:?}");
        assert_eq!(after.node_hits - before.node_hits, 1, "the one node came from the cache: {after:?}");
        assert_eq!(after.object_hits - before.object_hits, 4, "every listed object from the cache: {after:?}");
        assert_eq!(after.db_queries, before.db_queries, "hot path asks the database nothing");
    });
}

/// A node read again with the very bytes a fetch served it from is answered from the
/// rows kept for those bytes: one round trip, no object looked up or read, the
/// call's own filter over every row of the node. A write to one of its rows appends
/// to the node, so its next read lists its entries again and sees the write.
#[test]
fn a_node_read_again_unchanged_is_answered_from_its_kept_rows() {
    each_backend("node-rows", |b: &Backends| {
        let store = b.store_with(|builder| builder.near_cache_capacity(64 << 20));
        seed(&store);
        let cat = 5;
        let fetch = |min: f64| ids(&select!(Item, |i| i.category_id == cat && i.price > min).fetch(&store).unwrap());
        // Cold (the node filled from the database), then hot from the near cache,
        // which keeps the node's rows.
        assert_eq!(fetch(20.0), vec![2, 3, 4]);
        assert_eq!(fetch(20.0), vec![2, 3, 4]);
        for (min, want) in [(20.0, vec![2, 3, 4]), (0.0, vec![1, 2, 3, 4]), (100.0, vec![2])] {
            let before = store.stats();
            assert_eq!(fetch(min), want, "price > {min}");
            let after = store.stats();
            assert_eq!(after.near_node_hits - before.near_node_hits, 1, "price > {min}: {after:?}");
            assert_eq!(after.near_hits - before.near_hits, 4, "every row of the node: {after:?}");
            assert_eq!(after.cache_round_trips - before.cache_round_trips, 1, "{after:?}");
            assert_eq!(after.object_hits, before.object_hits, "no object read: {after:?}");
            assert_eq!(after.db_queries, before.db_queries, "{after:?}");
        }

        // An edit within the node, a row leaving it, a row deleted: each changes the
        // node's bytes, so the next read is not answered from the rows kept before.
        let row = |id: i64| select!(Item, |i| i.id == id).fetch(&store).unwrap().remove(0);
        store.update(&Item { price: 10.0, ..row(2) }).unwrap();
        let before = store.stats();
        assert_eq!(fetch(20.0), vec![3, 4], "the edited price is seen");
        assert_eq!(store.stats().near_node_hits, before.near_node_hits, "new bytes, nothing kept for them");
        assert_eq!(fetch(0.0), vec![1, 2, 3, 4]);
        assert_eq!(fetch(0.0), vec![1, 2, 3, 4]);
        store.update(&Item { category_id: 6, ..row(3) }).unwrap();
        assert_eq!(fetch(0.0), vec![1, 2, 4], "the row that left the node");
        assert_eq!(fetch(0.0), vec![1, 2, 4]);
        store.delete::<Item>(&4).unwrap();
        assert_eq!(fetch(0.0), vec![1, 2], "the deleted row");
        let before = store.stats();
        assert_eq!(fetch(0.0), vec![1, 2]);
        assert_eq!(fetch(9.0), vec![1, 2]);
        assert_eq!(fetch(15.0), vec![1]);
        let after = store.stats();
        assert_eq!(after.near_node_hits - before.near_node_hits, 2, "kept again once a fetch served the new bytes");
        assert_eq!(after.db_queries, before.db_queries, "{after:?}");
    });
}

/// A fetch over several nodes reads them again with its objects (the re-read that
/// keeps a row moving between two of them from being missed by both), unless every
/// node is one this process read or stored before, byte for byte: then it is ONE
/// round trip. A write appends to its row's node, whose next read is re-read.
#[test]
fn a_fetch_over_nodes_seen_unchanged_is_one_round_trip() {
    each_backend("node-set", |b: &Backends| {
        let store = b.store_with(|builder| builder.near_cache_capacity(64 << 20));
        seed(&store);
        let both = select!(Item, |i| i.category_id == 5 || i.category_id == 6);
        // What one fetch cost: (cache round trips, node re-reads, database queries).
        let cost = |what: &str| {
            let before = store.stats();
            assert_eq!(ids(&both.fetch(&store).unwrap()), vec![1, 2, 3, 4, 5, 6], "{what}");
            let after = store.stats();
            let seen = after.node_sets_seen - before.node_sets_seen;
            let rechecks = after.node_rechecks - before.node_rechecks;
            assert!(seen + rechecks <= 1, "{what}: a fetch is re-read or seen, not both: {after:?}");
            (after.cache_round_trips - before.cache_round_trips, rechecks, after.db_queries - before.db_queries)
        };
        // Node 5 hot from a fetch of its own (which records no node as seen), node 6
        // cold.
        let five = select!(Item, |i| i.category_id == 5);
        for _ in 0..2 {
            assert_eq!(ids(&five.fetch(&store).unwrap()), vec![1, 2, 3, 4]);
        }
        let (_, rechecks, queries) = cost("node 6 cold");
        assert!(rechecks == 0 && queries > 0, "cold: node 6 filled from the database");
        // The fill stored node 6's bytes, node 5 was read whole: both seen. The first hot fetch keeps each
        // node's rows, the next is answered from them.
        assert_eq!(cost("hot"), (1, 0, 0));
        let before = store.stats();
        assert_eq!(cost("hot again"), (1, 0, 0));
        let after = store.stats();
        assert_eq!(after.near_node_hits - before.near_node_hits, 1, "from both nodes' kept rows: {after:?}");
        assert_eq!(after.near_hits - before.near_hits, 6, "{after:?}");
        assert_eq!(after.node_sets_seen - before.node_sets_seen, 1, "{after:?}");

        // Two nodes that share a row (lamp: category 5, and "la…"): each row once,
        // the shared one from the usual checks, not from two nodes' kept rows.
        let shared = select!(Item, |i| i.category_id == 5 || i.name.starts_with("la"));
        for _ in 0..3 {
            assert_eq!(ids(&shared.fetch(&store).unwrap()), vec![1, 2, 3, 4, 5], "no row twice");
        }
        let before = store.stats();
        assert_eq!(ids(&shared.fetch(&store).unwrap()), vec![1, 2, 3, 4, 5]);
        let after = store.stats();
        assert_eq!(after.near_node_hits, before.near_node_hits, "{after:?}");
        assert_eq!(after.cache_round_trips - before.cache_round_trips, 1, "still one round trip: {after:?}");

        let row = |id: i64| select!(Item, |i| i.id == id).fetch(&store).unwrap().remove(0);
        store.update(&Item { price: 11.0, ..row(5) }).unwrap();
        let (round_trips, rechecks, _) = cost("after an edit");
        assert!(round_trips >= 2 && rechecks == 1, "an appended node is re-read: {round_trips}, {rechecks}");
        // That fetch wrote the node back verified, and stored bytes are seen too.
        assert_eq!(cost("after the write-back"), (1, 0, 0));

        let far = b.store_with(|builder| builder.near_cache_capacity(0));
        seed(&far);
        let before = far.stats();
        for _ in 0..3 {
            assert_eq!(ids(&both.fetch(&far).unwrap()), vec![1, 2, 3, 4, 5, 6]);
        }
        let after = far.stats();
        assert_eq!(after.node_rechecks - before.node_rechecks, 2, "without a near cache every hot read re-reads");
    });
}

/// A read after a write pays no round trip for its leases: the few objects the
/// write changed (the near cache keeps the rest) are read under lease at once, and
/// only a read of many objects goes as plain gets first, leasing those that missed
/// in a round of their own.
#[test]
fn a_read_after_a_write_leases_its_few_changed_objects_at_once() {
    each_backend("after-write", |b: &Backends| {
        let store = b.store_with(|builder| builder.near_cache_capacity(64 << 20));
        seed(&store);
        let cat = 5;
        let q = select!(Item, |i| i.category_id == cat);
        let rows = q.fetch(&store).unwrap();
        assert_eq!(q.fetch(&store).unwrap(), rows);
        store.update(&Item { price: 99.0, ..rows[0].clone() }).unwrap();
        let before = store.stats();
        let after_write = q.fetch(&store).unwrap();
        let after = store.stats();
        assert_eq!(after_write[0].price, 99.0);
        assert_eq!(after.object_misses - before.object_misses, 1, "the changed object: {after:?}");
        assert_eq!(
            after.cache_round_trips - before.cache_round_trips,
            3,
            "the node, the changed object under lease, the fill and clean-up: {after:?}"
        );
        assert_eq!(after.db_queries - before.db_queries, 1, "the changed row by its key: {after:?}");
    });
}

/// A one-row update runs the fewest statements its database allows, and one cache
/// round trip: on PostgreSQL the UPDATE returning the row as it was, and one
/// statement writing the outbox record, cleaning up the applied ones and reading the
/// index registry; on SQLite and MariaDB the row read first (`SELECT … FOR UPDATE`
/// where it locks), the UPDATE, the registry lookup, the record and its clean-up
/// (neither returns the old row from an UPDATE nor writes inside a `WITH`). BEGIN and
/// COMMIT are not counted.
/// An insert, and an update that keeps the row in its index nodes, are ONE statement
/// on PostgreSQL: the write, guarded by the index registry (and an update by the
/// indexed values it writes), with its outbox entry and the clean-up of applied
/// ones. A move to other nodes, and a delete, are one statement too when this
/// process wrote the row last, as here (and two otherwise: below,
/// `a_move_or_delete_on_postgres_is_one_statement_when_this_process_read_or_wrote_the_row_last`).
/// Elsewhere every write is a transaction.
#[test]
fn a_write_runs_the_fewest_statements_its_database_allows() {
    each_backend("statements", |b| {
        let store = b.store();
        seed(&store);
        let mut row = select!(Item, |i| i.id == 1).fetch(&store).unwrap().remove(0);
        let update = |row: &Item, on_postgres: u64| {
            let before = store.stats();
            store.update(row).unwrap();
            let after = store.stats();
            let want = if b.db == Db::Postgres { on_postgres } else { 5 };
            assert_eq!(after.db_queries - before.db_queries, want, "{:?}: {after:?}", b.db);
            assert_eq!(after.cache_round_trips - before.cache_round_trips, 1, "{:?}: {after:?}", b.db);
        };
        // The first update leaves an applied record for the second to clean up.
        for price in [11.0, 12.0] {
            row.price = price;
            update(&row, 1);
        }
        assert_eq!(select!(Item, |i| i.category_id == 5).fetch(&store).unwrap()[0], row, "{:?}", b.db);
        // The name is indexed (by its first two characters): a rename is a move too,
        // guarded by what this process wrote last.
        row.name = "renamed".into();
        update(&row, 1);
        assert_eq!(select!(Item, |i| i.category_id == 5).fetch(&store).unwrap()[0], row, "{:?}", b.db);
        row.category_id = 6;
        update(&row, 1);
        assert_eq!(ids(&select!(Item, |i| i.category_id == 5).fetch(&store).unwrap()), [2, 3, 4], "{:?}", b.db);
        assert_eq!(select!(Item, |i| i.category_id == 6).fetch(&store).unwrap()[0], row, "{:?}", b.db);
        let missing = store.update(&item(99, 5, "missing", 1.0));
        assert!(matches!(missing, Err(memdex::Error::NotFound { .. })), "{:?}: {missing:?}", b.db);
        // An insert was in no node: one statement on PostgreSQL.
        let before = store.stats();
        store.insert(&item(8, 5, "new", 1.0)).unwrap();
        let after = store.stats();
        let want = if b.db == Db::Postgres { 1 } else { 4 };
        assert_eq!(after.db_queries - before.db_queries, want, "{:?}: {after:?}", b.db);
        assert_eq!(ids(&select!(Item, |i| i.category_id == 5).fetch(&store).unwrap()), [2, 3, 4, 8], "{:?}", b.db);
        // A key that exists: the database refuses the statement, which wrote
        // nothing, so nothing is left pending.
        let duplicate = store.insert(&item(8, 6, "again", 1.0));
        assert!(matches!(duplicate, Err(memdex::Error::UniqueViolation { .. })), "{:?}: {duplicate:?}", b.db);
        assert_eq!(store.stats().outbox_deferred, after.outbox_deferred, "{:?}", b.db);
        assert_eq!(ids(&select!(Item, |i| i.category_id == 6).fetch(&store).unwrap()), [1, 5, 6], "{:?}", b.db);
        // A delete of the row this process inserted: on PostgreSQL one statement,
        // guarded by the indexed values inserted.
        let before = store.stats();
        store.delete::<Item>(&8).unwrap();
        let after = store.stats();
        let want = if b.db == Db::Postgres { 1 } else { 5 };
        assert_eq!(after.db_queries - before.db_queries, want, "{:?}: {after:?}", b.db);
        assert_eq!(after.cache_round_trips - before.cache_round_trips, 1, "{:?}: {after:?}", b.db);
        assert_eq!(ids(&select!(Item, |i| i.category_id == 5).fetch(&store).unwrap()), [2, 3, 4], "{:?}", b.db);
        let missing = store.delete::<Item>(&8);
        assert!(matches!(missing, Err(memdex::Error::NotFound { .. })), "{:?}: {missing:?}", b.db);
    });
}

/// On PostgreSQL, with guarded writes (`StoreBuilder::guarded_writes`), a move (an
/// update to other index nodes) and a delete are
/// autocommitted statements, no transaction. The first attempt is guarded by what
/// the row's indexed columns are believed to hold: the row as this process last
/// read it (its near cache keeps it) or last wrote it — then it is the only
/// statement — and otherwise by the values the update writes (a move finds that
/// guard shut) or, for a delete, by the row read first. A shut guard's reply holds
/// the row as it is, and the second attempt is guarded by that: two statements.
/// Another process's write in between makes the belief stale, which costs the
/// statement that changes nothing and never a wrong node. Both drivers; the
/// conversation trace shows the statements; the nodes are read through the other
/// process, so that the writer's beliefs come only from what each step says.
#[test]
fn a_move_or_delete_on_postgres_is_one_statement_when_this_process_read_or_wrote_the_row_last() {
    for driver in ["blocking", "async"] {
        let params = memdex_tests::backends::postgres().create_database(&format!("move_{driver}")).expect("a database");
        // Two processes sharing a memcached.
        let memcached = MemcachedServer::start().expect("memcached starts");
        let other = Store::builder().postgres(params.clone()).memcached([memcached.addr()]).build().unwrap();
        seed(&other);
        let lines = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let sink = lines.clone();
        let builder = Store::builder().postgres(params).memcached([memcached.addr()]).guarded_writes(true);
        let builder = builder.trace_to(move |line| sink.lock().unwrap().push(line.to_owned()));
        let store = EitherStore::build(driver, builder).unwrap();
        let nodes = || [5, 6, 7].map(|c| (c, ids(&select!(Item, |i| i.category_id == c).fetch(&other).unwrap())));
        let read_here = |id: i64| store.fetch(&select!(Item, |i| i.id == id)).unwrap();
        let statements = |write: &dyn Fn() -> Result<(), memdex::Error>| {
            lines.lock().unwrap().clear();
            write().unwrap();
            let statements = std::mem::take(&mut *lines.lock().unwrap());
            (statements.iter())
                .filter(|l| l.ends_with(" bound]"))
                .map(|l| l.split_whitespace().take(4).collect::<Vec<_>>().join(" "))
                .collect::<Vec<_>>()
        };
        const UPDATE: &str = r#"WITH "written" AS (UPDATE"#;
        const DELETE: &str = r#"WITH "written" AS (DELETE"#;
        const READ: &str = r#"SELECT "id", "category_id", "name","#;
        // Every node filled first, so that a wrong append would show; and the
        // writer's first call made (it drains the outbox), on a row that is not there.
        assert_eq!(nodes(), [(5, vec![1, 2, 3, 4]), (6, vec![5, 6]), (7, vec![7])], "{driver}");
        assert_eq!(read_here(99), [], "{driver}");
        let lamp = |category_id: i64, name: &str| Item { category_id, name: name.into(), ..item(1, 5, "lamp", 19.5) };
        // Seeded by another process and never read here: the values written shut the
        // guard, its reply guards the move.
        let moved = lamp(6, "lamp, moved");
        assert_eq!(
            statements(&|| store.update(&moved)),
            [UPDATE, UPDATE],
            "{driver}: a move of a row seeded elsewhere"
        );
        assert_eq!(nodes(), [(5, vec![2, 3, 4]), (6, vec![1, 5, 6]), (7, vec![7])], "{driver}");
        // This process wrote it last: one statement.
        let again = lamp(7, "lamp, again");
        assert_eq!(statements(&|| store.update(&again)), [UPDATE], "{driver}: a move of a row written here last");
        assert_eq!(nodes(), [(5, vec![2, 3, 4]), (6, vec![5, 6]), (7, vec![1, 7])], "{driver}");
        // Another process moved it since: the stale belief costs one statement.
        other.update(&lamp(5, "lamp, elsewhere")).unwrap();
        let back = lamp(6, "lamp, back");
        assert_eq!(statements(&|| store.update(&back)), [UPDATE, UPDATE], "{driver}: after another process's move");
        assert_eq!(nodes(), [(5, vec![2, 3, 4]), (6, vec![1, 5, 6]), (7, vec![7])], "{driver}");
        // Another process moved it again, and this one read it since: one statement.
        other.update(&lamp(7, "lamp, away")).unwrap();
        assert_eq!(read_here(1), [lamp(7, "lamp, away")], "{driver}");
        let home = lamp(5, "lamp, home");
        assert_eq!(statements(&|| store.update(&home)), [UPDATE], "{driver}: a move of a row read here last");
        assert_eq!(nodes(), [(5, vec![1, 2, 3, 4]), (6, vec![5, 6]), (7, vec![7])], "{driver}");
        assert_eq!(read_here(1), [home], "{driver}");
        // A delete of a row read here last: one statement.
        assert_eq!(statements(&|| store.delete::<Item>(&1)), [DELETE], "{driver}: a delete of a row read here last");
        assert_eq!(nodes(), [(5, vec![2, 3, 4]), (6, vec![5, 6]), (7, vec![7])], "{driver}");
        // Of a row seeded elsewhere and never read here: read, then delete.
        assert_eq!(
            statements(&|| store.delete::<Item>(&2)),
            [READ, DELETE],
            "{driver}: a delete of a row seeded elsewhere"
        );
        // Written here, then moved by another process: the stale belief, then the row as found.
        store.update(&item(3, 7, "box", 1.0)).unwrap();
        other.update(&item(3, 5, "box", 1.0)).unwrap();
        assert_eq!(
            statements(&|| store.delete::<Item>(&3)),
            [DELETE, DELETE],
            "{driver}: after another process's move"
        );
        assert_eq!(nodes(), [(5, vec![4]), (6, vec![5, 6]), (7, vec![7])], "{driver}");
        // Written here, then deleted by another process: not found, as always.
        store.update(&item(4, 7, "cup", 1.0)).unwrap();
        other.delete::<Item>(&4).unwrap();
        let gone = store.delete::<Item>(&4);
        assert!(matches!(gone, Err(memdex::Error::NotFound { .. })), "{driver}: {gone:?}");
        let gone = store.update(&item(4, 6, "cup", 1.0));
        assert!(matches!(gone, Err(memdex::Error::NotFound { .. })), "{driver}: {gone:?}");
        assert_eq!(nodes(), [(5, vec![]), (6, vec![5, 6]), (7, vec![7])], "{driver}");
        // Every statement that changed nothing counted: the first of each write of
        // two statements (the three traced above, and the moves of rows 3 and 4,
        // seeded elsewhere and never read here), and the two writes of the row gone
        // (each guarded by what this process wrote, finding no row).
        assert_eq!(store.stats().guards_shut, 7, "{driver}: {:?}", store.stats());
    }
}

/// On PostgreSQL, by default, an update or a delete reads its row in its one
/// statement and names the nodes the row was in from what it read, the database
/// spelling their keys as this process does — text percent-encoded byte by byte, a
/// prefix index's first characters, a key too long for memcached shortened with the
/// same digest: ONE statement, though another process wrote the row last each time.
/// Each write's outbox entry, read from the table before the next write cleans it up,
/// names exactly the keys this process spells for the row as it was and as it is;
/// the nodes are read through the other process. Both drivers.
#[test]
fn a_write_on_postgres_reads_its_row_and_names_the_nodes_it_was_in_as_this_process_spells_them() {
    let long = "é, a long kind ".repeat(20);
    let names = ["lamp", "a b%c", "", "ünïcödé ✓", "x\ny'z", long.as_str()];
    for driver in ["blocking", "async"] {
        let params =
            memdex_tests::backends::postgres().create_database(&format!("reading_{driver}")).expect("a database");
        reading_writes_name_this_process_keys(&params, driver, &names);
    }
}

/// The same in a database whose encoding is not UTF-8 (LATIN1): the server keeps
/// the text in LATIN1 and the database spells a key from its UTF-8 bytes
/// (`CONVERT_TO(…, 'UTF8')`), which are what this process's keys are made of, so
/// accented text gets the same keys. Both drivers.
#[test]
fn a_write_on_postgres_names_the_nodes_as_this_process_spells_them_in_a_latin1_database() {
    let long = "é, a long kind ".repeat(20);
    let names = ["lamp", "a b%c", "", "ünïcödé ÿ", "x\ny'z", long.as_str()];
    for driver in ["blocking", "async"] {
        let params = memdex_tests::backends::postgres()
            .create_database_encoded(&format!("latin1_{driver}"), "LATIN1")
            .expect("a LATIN1 database");
        reading_writes_name_this_process_keys(&params, driver, &names);
    }
}

/// [`a_write_on_postgres_reads_its_row_and_names_the_nodes_it_was_in_as_this_process_spells_them`]
/// on the database `params`, with `driver`, for each of `names` as the text values.
fn reading_writes_name_this_process_keys(params: &str, driver: &str, names: &[&str]) {
    use memdex_tests::outside::OutsideSession;
    use memdex_tests::shared_db::Engine;

    let params = params.to_owned();
    let memcached = MemcachedServer::start().expect("memcached starts");
    let other = Store::builder().postgres(params.clone()).memcached([memcached.addr()]).build().unwrap();
    seed(&other);
    other.migrate::<Tag>().unwrap();
    let quiet = std::time::Duration::from_secs(600);
    let builder = Store::builder().postgres(params.clone()).memcached([memcached.addr()]).outbox(quiet, quiet);
    let store = EitherStore::build(driver, builder).unwrap();
    let mut db = OutsideSession::open(Engine::Postgres, &params);
    let entries = outbox_entries;
    // The store's first call (its drain) made.
    assert_eq!(store.fetch(&select!(Item, |i| i.id == 99)).unwrap(), []);
    for (step, name) in names.iter().enumerate() {
        let step = step as i64;
        // Another process writes the row first: this one never knows what it holds.
        let was = Item { category_id: 5 + step % 3, ..item(1, 5, &format!("{name} was"), 1.0) };
        other.update(&was).unwrap();
        let tag_was = Tag { name: "t".into(), kind: format!("{name} was"), weight: step };
        if step == 0 { other.insert(&tag_was) } else { other.update(&tag_was) }.unwrap();
        let is = Item { category_id: 6 + step % 3, cart_id: step, status: (*name).into(), ..item(1, 5, name, 2.0) };
        let tag = Tag { name: "t".into(), kind: (*name).into(), weight: step };
        let mut check = |write: &dyn Fn() -> Result<(), Error>, want: BTreeSet<String>| {
            let before = store.stats().db_queries;
            write().unwrap();
            assert_eq!(store.stats().db_queries - before, 1, "{driver}, {name:?}: one statement");
            let entries = entries(&mut db);
            assert!(entries.contains(&want), "{driver}, {name:?}: {want:?} among {entries:?}");
        };
        check(&|| store.update(&is), named::<Item>(&values(&was), Some(&values(&is))));
        check(&|| store.update(&tag), named::<Tag>(&values(&tag_was), Some(&values(&tag))));
        // Through the other process: the row in its new nodes, gone from its old.
        let listed = |p: &str| ids(&select!(Item, |i| i.name.starts_with(p)).fetch(&other).unwrap()).contains(&1);
        let (new_prefix, old_prefix): (String, String) =
            (is.name.chars().take(2).collect(), was.name.chars().take(2).collect());
        if new_prefix.chars().count() == 2 {
            assert!(listed(&new_prefix), "{driver}, {name:?}");
        }
        assert_eq!(listed(&old_prefix), is.name.starts_with(&old_prefix), "{driver}, {name:?}");
        let category = was.category_id;
        assert!(!ids(&select!(Item, |i| i.category_id == category).fetch(&other).unwrap()).contains(&1));
        let kind = tag.kind.as_str();
        assert_eq!(
            select!(Tag, |t| t.kind == kind).fetch(&other).unwrap(),
            std::slice::from_ref(&tag),
            "{driver}, {name:?}"
        );
        let kind = tag_was.kind.as_str();
        assert_eq!(select!(Tag, |t| t.kind == kind).fetch(&other).unwrap(), [], "{driver}, {name:?}");
    }
    // A delete of a row another process wrote last.
    let last = Item { category_id: 9, ..item(1, 5, "last", 3.0) };
    other.update(&last).unwrap();
    let before = store.stats().db_queries;
    store.delete::<Item>(&1).unwrap();
    assert_eq!(store.stats().db_queries - before, 1, "{driver}: one statement");
    assert!(entries(&mut db).contains(&named::<Item>(&values(&last), None)), "{driver}: {:?}", entries(&mut db));
    assert_eq!(select!(Item, |i| i.category_id == 9).fetch(&other).unwrap(), [], "{driver}");
    assert_eq!(store.stats().guards_shut, 0, "{driver}: {:?}", store.stats());
}

/// Every key a write of `before` into `after` (the rows' values in schema order;
/// `None` for a delete) names: the object's, then the nodes of both.
fn named<T: Model>(before: &[memdex::Value], after: Option<&[memdex::Value]>) -> BTreeSet<String> {
    use memdex::grammar::keys::KeySpace;
    use memdex::grammar::plan::node_of_row;
    let (schema, keys) = (T::schema(), KeySpace::new("memdex", T::schema(), 0));
    let mut named = BTreeSet::from([keys.object(&before[schema.key])]);
    for row in std::iter::once(before).chain(after) {
        named.extend(
            (0..schema.indexes.len()).map(|ix| keys.node(schema, &node_of_row(schema, ix, &|c| row[c].clone()))),
        );
    }
    named
}

fn values<T: Model>(row: &T) -> Vec<memdex::Value> {
    (0..T::schema().columns.len()).map(|c| row.column_value(c)).collect()
}

/// The outbox entries in the table, each as the set of keys it names.
fn outbox_entries(db: &mut memdex_tests::outside::OutsideSession) -> Vec<BTreeSet<String>> {
    let texts = db.texts("SELECT keys FROM memdex_outbox");
    texts.iter().map(|keys| keys.split('\n').map(str::to_owned).collect()).collect()
}

#[derive(Model, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[memdex(table = "reading")]
pub struct Reading {
    #[memdex(key)]
    pub id: i64,
    #[memdex(index)]
    pub at: chrono::DateTime<chrono::Utc>,
    pub level: f64,
}

/// An instant index on PostgreSQL: an update of a row another process wrote last
/// reads its row in its one statement, and the database spells the old node's key
/// — the instant as its microseconds since 1970 — exactly as this process spells it
/// (the entry, read from the table, names this process's keys), for instants
/// before 1970, at it, around it, with and without a fraction of a second, and at
/// both ends of the years PostgreSQL and chrono share. Both drivers.
#[test]
fn a_write_on_postgres_spells_instant_keys_as_this_process_does() {
    use chrono::TimeZone;
    use memdex_tests::outside::OutsideSession;
    use memdex_tests::shared_db::Engine;

    let micros: [i64; 10] = [
        0,
        -1,
        1,
        999_999,
        -1_000_001,
        1_700_000_000_123_456,
        1_700_000_000_000_000,
        -62_135_596_800_000_000,
        253_402_300_799_999_999,
        -210_866_760_000_000_000,
    ];
    let reading = |n: usize| Reading {
        id: 1,
        at: chrono::Utc.timestamp_micros(micros[n % micros.len()]).unwrap(),
        level: n as f64 / 3.0,
    };
    for driver in ["blocking", "async"] {
        let params =
            memdex_tests::backends::postgres().create_database(&format!("instants_{driver}")).expect("a database");
        let memcached = MemcachedServer::start().expect("memcached starts");
        let other = Store::builder().postgres(params.clone()).memcached([memcached.addr()]).build().unwrap();
        other.migrate::<Reading>().unwrap();
        let quiet = std::time::Duration::from_secs(600);
        let builder = Store::builder().postgres(params.clone()).memcached([memcached.addr()]).outbox(quiet, quiet);
        let store = EitherStore::build(driver, builder).unwrap();
        let mut db = OutsideSession::open(Engine::Postgres, &params);
        other.insert(&reading(micros.len() - 1)).unwrap();
        // The store's first call (its drain) made.
        assert_eq!(store.fetch(&select!(Reading, |r| r.id == 99)).unwrap(), []);
        for n in 0..micros.len() {
            // Another process writes the row first: this one never knows what it holds.
            let (was, is) = (reading(n), reading(n + 1));
            other.update(&was).unwrap();
            let before = store.stats().db_queries;
            store.update(&is).unwrap();
            assert_eq!(store.stats().db_queries - before, 1, "{driver}, {}: one statement", was.at);
            let want = named::<Reading>(&values(&was), Some(&values(&is)));
            let entries = outbox_entries(&mut db);
            assert!(entries.contains(&want), "{driver}, {}: {want:?} among {entries:?}", was.at);
            // Through the other process: the row in its new node, gone from its old.
            let (old, new) = (was.at, is.at);
            assert_eq!(select!(Reading, |r| r.at == old).fetch(&other).unwrap(), [], "{driver}, {old}");
            assert_eq!(
                select!(Reading, |r| r.at == new).fetch(&other).unwrap(),
                std::slice::from_ref(&is),
                "{driver}, {new}"
            );
        }
        assert_eq!(store.stats().guards_shut, 0, "{driver}: {:?}", store.stats());
    }
}

/// `or` and `in` read several nodes (and a key lookup its object) in round trip 1.
/// Hot, with the near cache, that is all: every node is one the store saw. Without
/// it, round trip 2 reads the objects and re-reads the nodes' CAS.
#[test]
fn or_and_in_are_one_round_trip_hot_and_two_without_the_near_cache() {
    each_backend("or-in", |b| {
        for (near, round_trips, rechecks) in [(64 << 20, 1, 0), (0, 2, 1)] {
            let store = b.store_with(|builder| builder.near_cache_capacity(near));
            seed(&store);
            let cats = vec![5_i64, 6, 7, 8];
            let q = select!(Item, |i| cats.contains(&i.category_id) || i.name.starts_with("la") || i.id == 2);
            let first = ids(&q.fetch(&store).unwrap());
            assert_eq!(first, vec![1, 2, 3, 4, 5, 6, 7]);
            let before = store.stats();
            assert_eq!(ids(&q.fetch(&store).unwrap()), first);
            let after = store.stats();
            let what = format!("{:?}, near cache of {near} bytes: {after:?}", b.db);
            assert_eq!(after.cache_round_trips - before.cache_round_trips, round_trips, "{what}");
            assert_eq!(after.node_rechecks - before.node_rechecks, rechecks, "{what}");
            // Re-read or not, the nodes were unchanged: the database confirms nothing.
            assert_eq!(after.db_queries, before.db_queries, "{what}");
        }
    });
}

#[test]
fn paging_and_ordering_happen_in_memory_over_one_node() {
    each_backend("paging", |b| {
        let store = b.store();
        seed(&store);
        let page = |limit, offset| {
            ids(&select!(Item, |i| i.category_id == 5)
                .order_by_desc(Item::price())
                .limit(limit)
                .offset(offset)
                .fetch(&store)
                .unwrap())
        };
        assert_eq!(page(2, 0), vec![2, 4]);
        assert_eq!(page(2, 2), vec![3, 1]);
        assert_eq!(page(10, 3), vec![1]);
        assert_eq!(page(10, 9), Vec::<i64>::new());
        let by_name = select!(Item, |i| i.category_id == 5).order_by(Item::name()).fetch(&store).unwrap();
        assert_eq!(by_name.iter().map(|i| i.name.as_str()).collect::<Vec<_>>(), ["chair", "desk", "lamp", "rug"]);
    });
}

#[test]
fn moves_are_added_eagerly_and_removed_lazily() {
    each_backend("moves", |b| {
        let store = b.store();
        seed(&store);
        let five = select!(Item, |i| i.category_id == 5);
        let six = select!(Item, |i| i.category_id == 6);
        assert_eq!(ids(&five.fetch(&store).unwrap()), vec![1, 2, 3, 4]);
        assert_eq!(ids(&six.fetch(&store).unwrap()), vec![5, 6]);
        store.update(&item(3, 6, "chair", 49.0)).unwrap();
        assert_eq!(ids(&six.fetch(&store).unwrap()), vec![3, 5, 6], "added eagerly");
        assert_eq!(ids(&five.fetch(&store).unwrap()), vec![1, 2, 4], "removed lazily");
        assert!(store.stats().lazy_removals >= 1);
        store.delete::<Item>(&1).unwrap();
        assert_eq!(ids(&five.fetch(&store).unwrap()), vec![2, 4]);
        store.insert(&item(8, 5, "stool", 12.0)).unwrap();
        assert_eq!(ids(&five.fetch(&store).unwrap()), vec![2, 4, 8]);
        assert!(matches!(store.delete::<Item>(&1), Err(Error::NotFound { .. })));
        assert!(matches!(store.update(&item(99, 5, "x", 1.0)), Err(Error::NotFound { .. })));
    });
}

#[test]
fn composite_prefix_and_key_access() {
    each_backend("access", |b| {
        let store = b.store();
        seed(&store);
        let open = select!(Item, |i| i.cart_id == 2 && i.status == "open").fetch(&store).unwrap();
        assert_eq!(ids(&open), vec![2]);
        // Case-sensitive, with LIKE metacharacters taken literally.
        assert_eq!(ids(&select!(Item, |i| i.name.starts_with("la")).fetch(&store).unwrap()), vec![1, 5]);
        assert_eq!(ids(&select!(Item, |i| i.name.starts_with("La_")).fetch(&store).unwrap()), vec![6]);
        assert_eq!(ids(&select!(Item, |i| i.name.starts_with("lä")).fetch(&store).unwrap()), vec![7]);
        assert_eq!(ids(&select!(Item, |i| i.id == 4 || i.id == 40).fetch(&store).unwrap()), vec![4]);
        // A prefix pattern shorter than the index answers from the database.
        let short = "l".to_string();
        let rows = select!(Item, |i| i.name.starts_with(short.as_str())).fetch(&store).unwrap();
        assert_eq!(ids(&rows), vec![1, 5, 7]);
    });
}

#[test]
fn transactions_commit_together_or_not_at_all() {
    each_backend("tx", |b| {
        let store = b.store();
        seed(&store);
        let five = select!(Item, |i| i.category_id == 5);
        assert_eq!(five.count(&store).unwrap(), 4);
        let err = store.transaction(|tx| {
            tx.insert(&item(20, 5, "a", 1.0))?;
            tx.insert(&item(20, 5, "dup", 1.0))?; // primary key violation
            Ok(())
        });
        assert!(err.as_ref().is_err_and(Error::is_unique_violation), "{err:?}");
        assert_eq!(five.count(&store).unwrap(), 4, "rolled back");
        let user_abort: Result<(), Error> = store.transaction(|tx| {
            tx.insert(&item(21, 5, "b", 1.0))?;
            Err(Error::Config("changed my mind".into()))
        });
        assert!(user_abort.is_err());
        assert_eq!(five.count(&store).unwrap(), 4);
        store
            .transaction(|tx| {
                tx.insert(&item(22, 5, "c", 1.0))?;
                tx.update(&item(1, 6, "lamp", 19.5))?;
                Ok(())
            })
            .unwrap();
        assert_eq!(ids(&five.fetch(&store).unwrap()), vec![2, 3, 4, 22]);
    });
}

#[test]
fn text_queries_match_the_macro_form() {
    each_backend("text", |b| {
        let store = b.store();
        seed(&store);
        let text = store
            .recall_text::<Item>(
                "lambda c: c.category_id in cats and not c.name.startswith('d') and c.price >= 19.5",
                &[("cats", vec![5_i64, 6].into())],
            )
            .unwrap();
        let cats = [5_i64, 6];
        let rust = select!(Item, |c| cats.contains(&c.category_id) && !c.name.starts_with("d") && c.price >= 19.5)
            .fetch(&store)
            .unwrap();
        assert_eq!(ids(&text), vec![1, 3, 4]);
        assert_eq!(text, rust);
        let err = store.recall_text::<Item>("lambda c: c.price > 3", &[]).unwrap_err();
        assert!(matches!(err, Error::Unindexable { .. }), "{err}");
        assert!(err.to_string().contains("category_id"), "names the indexes: {err}");
        let err = store.recall_text::<Item>("lambda c: c.category_id == 5 and c.prise > 3", &[]).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("price") && msg.contains("line 1"), "{msg}");
        let err = store.recall_text::<Item>("lambda c: c.category_id == cat", &[]).unwrap_err();
        assert!(err.to_string().contains("cat"), "{err}");
    });
}

#[test]
fn scans_views_and_nulls() {
    each_backend("views", |b| {
        let store = b.store();
        seed(&store);
        let mut gone = item(9, 5, "old", 5.0);
        gone.deleted_at = Some(1_700_000_000);
        store.insert(&gone).unwrap();
        let live = scan!(Item, |i| i.deleted_at.is_none() && i.price < 20.0).fetch(&store).unwrap();
        assert_eq!(ids(&live), vec![1, 5, 6]);
        assert_eq!(scan!(Item, |i| i.deleted_at.is_some()).count(&store).unwrap(), 1);
        let not_it =
            select!(Item, |i| i.category_id == 5 && i.deleted_at != Some(1_700_000_000)).fetch(&store).unwrap();
        assert_eq!(ids(&not_it), vec![1, 2, 3, 4], "nullable != keeps Rust's meaning");
        let avg: Option<f64> = view!(Item, |i| avg(i.price)).fetch(&store).unwrap();
        let total: f64 = [19.5, 129.0, 49.0, 80.0, 9.0, 15.0, 33.0, 5.0].iter().sum();
        assert!((avg.unwrap() - total / 8.0).abs() < 1e-9);
        let n: u64 = view!(Item, |i| count()).fetch(&store).unwrap();
        assert_eq!(n, 8);
        let top: Option<f64> = view!(Item, |i| i.category_id == 5, |i| max(i.price)).fetch(&store).unwrap();
        assert_eq!(top, Some(129.0));
        let none: Option<f64> = view!(Item, |i| i.category_id == 99, |i| min(i.price)).fetch(&store).unwrap();
        assert_eq!(none, None);
    });
}

#[test]
fn string_keys_and_hostile_values() {
    each_backend("hostile", |b| {
        let store = b.store();
        store.migrate::<Tag>().unwrap();
        let hostile = [
            "plain".to_string(),
            "with space".into(),
            "ctrl\r\n\tbytes".into(),
            "'; DROP TABLE tag; --".into(),
            "%_\\[*?".into(),
            "ünïcødé ✓ 日本".into(),
            "k".repeat(300),
            // The longest key each database holds (MariaDB's text key is VARCHAR(768)).
            "ü".repeat(if b.db == memdex_tests::backends::Db::MySql { 768 } else { 1024 }),
            String::new(),
        ];
        for (i, name) in hostile.iter().enumerate() {
            store.insert(&Tag { name: name.clone(), kind: name.clone(), weight: i as i64 }).unwrap();
        }
        for name in &hostile {
            let kind = name.clone();
            for _ in 0..2 {
                let rows = select!(Tag, |t| t.kind == kind).fetch(&store).unwrap();
                assert_eq!(rows.len(), 1, "{name:?}");
                assert_eq!(&rows[0].name, name);
                let by_key = select!(Tag, |t| t.name == kind).fetch(&store).unwrap();
                assert_eq!(by_key.len(), 1, "{name:?}");
            }
        }
        assert_eq!(scan!(Tag, |t| t.weight >= 0).count(&store).unwrap(), hostile.len() as u64);
        let text = store.recall_text::<Tag>("lambda t: t.kind == k", &[("k", "'; DROP TABLE tag; --".into())]).unwrap();
        assert_eq!(text.len(), 1);
    });
}

#[test]
fn explain_and_sql_over_every_dialect() {
    let q = select!(Item, |i| (i.category_id == 5 || i.cart_id == 1 && i.status == "open") && i.price > 10.0);
    let plan = q.explain(Dialect::Sqlite);
    assert_eq!(plan.disjuncts.len(), 2);
    assert_eq!(plan.hot_round_trips, 2);
    let text = plan.to_string();
    assert!(text.contains("category_id"), "{text}");
    for d in [Dialect::Sqlite, Dialect::Postgres, Dialect::MySql] {
        let sql = q.sql(d);
        assert!(sql.starts_with("SELECT"), "{sql}");
        assert!(!sql.contains("open") && !sql.contains("10"), "values are bound, never spliced: {sql}");
    }
}

/// Unreadable bytes in the cache are a miss, repaired; values over the item limit
/// are not cached but still answered.
#[test]
fn malformed_cached_values_and_oversized_objects() {
    let cache: Arc<InProcessCache> =
        Arc::new(InProcessCache::new(CacheConfig { max_value_size: 4096, ..CacheConfig::default() }));
    let shared: Arc<dyn CacheBackend> = cache.clone();
    let store = Store::builder()
        .sqlite_in_memory()
        .cache(Box::new(memdex_tests::stepping::Stepping::new(shared.clone())))
        .build()
        .unwrap();
    seed(&store);
    let five = select!(Item, |i| i.category_id == 5);
    assert_eq!(ids(&five.fetch(&store).unwrap()), vec![1, 2, 3, 4]);
    // Overwrite every cached value of the key space with garbage.
    let garbage: Vec<(String, Vec<u8>)> =
        (1..=4).map(|id| (format!("{}", id), vec![0xff, 0x00, b'\r', b'\n', 0x13])).collect();
    let prefix_probe = five.explain(Dialect::Sqlite).disjuncts[0].key_template.clone();
    let node_key = prefix_probe.replace("{", "").replace("}", "");
    let ns_prefix = node_key.rsplit_once(':').map(|(p, _)| p.to_string()).unwrap();
    let mut ops = vec![CacheOp::Set { key: &node_key, value: b"#1\nnot,ids,", ttl: 0 }];
    let object_keys: Vec<String> = garbage.iter().map(|(id, _)| format!("{ns_prefix}:{id}")).collect();
    for (k, (_, v)) in object_keys.iter().zip(&garbage) {
        ops.push(CacheOp::Set { key: k, value: v, ttl: 0 });
    }
    let replies = shared.run(&ops);
    assert!(replies.iter().all(|r| r.is_ok()));
    assert_eq!(ids(&five.fetch(&store).unwrap()), vec![1, 2, 3, 4], "garbage is a miss");
    assert_eq!(ids(&five.fetch(&store).unwrap()), vec![1, 2, 3, 4]);
    let big = Item { name: "x".repeat(10_000), ..item(50, 5, "", 1.0) };
    store.insert(&big).unwrap();
    for _ in 0..2 {
        let rows = five.fetch(&store).unwrap();
        assert_eq!(ids(&rows), vec![1, 2, 3, 4, 50]);
        assert_eq!(rows[4].name.len(), 10_000);
    }
}

/// The rows of the K6 test: ±inf prices make `price - price` NaN, which SQL gets
/// wrong (SQLite: NULL; PostgreSQL: NaN above every number) while Rust's closure
/// keeps the row.
fn k6_rows() -> Vec<Item> {
    vec![
        item(1, 5, "lamp", f64::INFINITY),
        item(2, 5, "lantern", 20.0),
        item(3, 5, "ladder", f64::NEG_INFINITY),
        item(4, 5, "lathe", 7.5),
        item(5, 5, "loft", 1e308),
        item(6, 6, "lumen", f64::INFINITY),
        item(7, 7, "zed", 1.0),
    ]
}

/// What a query with `pred`, ordered by price descending (then key), returns.
fn k6_expect(rows: &[Item], pred: impl Fn(&Item) -> bool, limit: usize, offset: usize) -> Vec<i64> {
    let mut hits: Vec<&Item> = rows.iter().filter(|r| pred(r)).collect();
    hits.sort_by(|a, b| b.price.total_cmp(&a.price).then(a.id.cmp(&b.id)));
    hits.into_iter().skip(offset).take(limit).map(|r| r.id).collect()
}

/// K6: every database path (a prefix shorter than its index, `scan!`, the cache
/// down, pending invalidations) returns the rows the closure accepts, exactly as the
/// cached path does, however SQL evaluates the arithmetic in the closure.
#[test]
// `!(x > 1.0)` is the point: it differs from `x <= 1.0` for NaN.
#[allow(clippy::neg_cmp_op_on_partial_ord)]
fn database_paths_keep_rows_the_closure_accepts() {
    each_backend("k6", |b| {
        let (store, switch) = b.store_with_switch();
        store.migrate::<Item>().unwrap();
        // MariaDB has no infinite DOUBLE: there the infinite prices are the largest
        // finite ones, whose `price - price` is 0 (the arithmetic is still dropped
        // from the SQL and decided in memory).
        let mysql = b.db == memdex_tests::backends::Db::MySql;
        let rows: Vec<Item> = k6_rows()
            .into_iter()
            .map(|r| if mysql && r.price.is_infinite() { Item { price: f64::MAX.copysign(r.price), ..r } } else { r })
            .collect();
        store
            .transaction(|tx| {
                for r in &rows {
                    tx.insert(r)?;
                }
                Ok(())
            })
            .unwrap();
        // `price - price` is NaN for ±inf: `!(NaN > 1.0)` and `NaN != 0.0` hold in Rust.
        let pred =
            |i: &Item| i.category_id == 5 && !(i.price - i.price > 1.0) && (i.price - i.price != 0.0 || i.price < 50.0);
        let by_prefix = |i: &Item| {
            i.name.starts_with('l') && !(i.price - i.price > 1.0) && (i.price - i.price != 0.0 || i.price < 50.0)
        };
        let all = k6_expect(&rows, pred, usize::MAX, 0);
        let oracle = if mysql { vec![2, 4, 3] } else { vec![1, 2, 4, 3] };
        assert_eq!(all, oracle, "the oracle itself: ±inf rows accepted (MAX rejected, MIN accepted), 1e308 rejected");
        let page = k6_expect(&rows, pred, 2, 1);
        let cached = || {
            select!(Item, |i| i.category_id == 5
                && !(i.price - i.price > 1.0)
                && (i.price - i.price != 0.0 || i.price < 50.0))
        };
        let fetch_all = |what: &str| {
            let q = cached().order_by_desc(Item::price());
            assert_eq!(ids(&q.fetch(&store).unwrap()), all, "{what}: all rows");
            assert_eq!(ids(&q.limit(2).offset(1).fetch(&store).unwrap()), page, "{what}: page");
            assert_eq!(cached().count(&store).unwrap(), all.len() as u64, "{what}: count");
        };
        let degraded = || store.stats().degraded_calls;

        // The cached path: cold (fills), then hot.
        fetch_all("cached, cold");
        fetch_all("cached, hot");
        assert_eq!(degraded(), 0, "the cached path took no fallback");

        // A prefix shorter than the index (2): the database fallback.
        let short = "l".to_string();
        let prefix = || {
            select!(Item, |i| i.name.starts_with(short.as_str())
                && !(i.price - i.price > 1.0)
                && (i.price - i.price != 0.0 || i.price < 50.0))
        };
        let before = degraded();
        let q = prefix().order_by_desc(Item::price());
        assert_eq!(ids(&q.fetch(&store).unwrap()), k6_expect(&rows, by_prefix, usize::MAX, 0), "short prefix");
        let q = prefix().order_by_desc(Item::price()).limit(3).offset(1);
        assert_eq!(ids(&q.fetch(&store).unwrap()), k6_expect(&rows, by_prefix, 3, 1), "short prefix, page");
        assert_eq!(prefix().count(&store).unwrap(), k6_expect(&rows, by_prefix, usize::MAX, 0).len() as u64);
        assert!(degraded() > before, "the short prefix went to the database");

        // `scan!`: ordering and paging follow the closure, not SQL.
        let scan = || {
            scan!(Item, |i| i.category_id == 5
                && !(i.price - i.price > 1.0)
                && (i.price - i.price != 0.0 || i.price < 50.0))
        };
        assert_eq!(ids(&scan().order_by_desc(Item::price()).fetch(&store).unwrap()), all, "scan!");
        let paged = scan().order_by_desc(Item::price()).limit(2).offset(1);
        assert_eq!(ids(&paged.fetch(&store).unwrap()), page, "scan!, page");
        assert_eq!(scan().count(&store).unwrap(), all.len() as u64, "scan!, count");

        // The cache down, nothing pending: the index scan answers from the database.
        switch.set(CacheMode::Down);
        fetch_all("cache down");
        // A write while the cache is down leaves its invalidations pending: the
        // process then answers from the database alone.
        store.update(&Item { price: 2.0, ..rows[6].clone() }).unwrap();
        let before = degraded();
        fetch_all("cache down, pending invalidations");
        assert!(degraded() > before, "pending invalidations sent the reads to the database");

        // Reads work but writes fail: the invalidations stay pending.
        switch.set(CacheMode::Up);
        fetch_all("cache back");
        switch.set(CacheMode::WritesFail);
        store.update(&Item { price: 3.0, ..rows[6].clone() }).unwrap();
        let before = degraded();
        fetch_all("pending invalidations");
        assert!(degraded() > before, "pending invalidations sent the reads to the database");
        switch.set(CacheMode::Up);
        fetch_all("cache back again");
    });
}

/// NaN cannot be stored the way Rust has it (SQLite stores NULL, PostgreSQL orders
/// NaN above every number): every write path refuses it, naming model and field,
/// before the database sees it. ±inf are stored exactly; -0.0 too on PostgreSQL,
/// while SQLite gives back +0.0 (it stores a float without fraction as an integer).
#[test]
fn nan_is_refused_and_infinities_round_trip() {
    each_backend("floats", |b| {
        let store = b.store();
        store.migrate::<Item>().unwrap();
        let refused = |r: Result<(), Error>| match r {
            Err(Error::NotANumber { model, field }) => assert_eq!((model.as_str(), field.as_str()), ("Item", "price")),
            other => panic!("expected NotANumber, got {other:?}"),
        };
        let before = store.stats().db_queries;
        refused(store.insert(&item(1, 5, "nan", f64::NAN)));
        assert_eq!(store.stats().db_queries, before, "refused before the database");
        store.insert(&item(1, 5, "one", 1.0)).unwrap();
        refused(store.update(&item(1, 5, "one", -f64::NAN)));
        refused(store.transaction(|tx| {
            tx.insert(&item(2, 5, "two", 2.0))?;
            tx.insert(&item(3, 5, "three", f64::NAN))
        }));
        assert_eq!(ids(&scan!(Item, |i| i.id > 0).fetch(&store).unwrap()), vec![1], "the transaction rolled back");
        assert_eq!(select!(Item, |i| i.id == 1).fetch(&store).unwrap()[0].price, 1.0, "the update did not happen");
        let msg = store.insert(&item(4, 5, "x", f64::NAN)).unwrap_err().to_string();
        assert!(msg.contains("Item.price") && msg.contains("NaN"), "{msg}");

        // MariaDB has no infinite DOUBLE: it refuses them ("Out of range value"),
        // and gives back +0.0 for -0.0, as SQLite does.
        let mysql = b.db == memdex_tests::backends::Db::MySql;
        let sqlite = b.db == memdex_tests::backends::Db::Sqlite;
        let mut prices = vec![(10, f64::INFINITY), (11, f64::NEG_INFINITY), (12, -0.0), (13, f64::MAX), (14, 5e-324)];
        if mysql {
            for (id, price) in prices.drain(..2) {
                let result = store.insert(&item(id, 9, "f", price));
                assert!(
                    matches!(&result, Err(Error::Database(e)) if e.to_string().contains("Out of range")),
                    "{result:?}"
                );
            }
        }
        for &(id, price) in &prices {
            store.insert(&item(id, 9, "f", price)).unwrap();
        }
        for pass in ["cold", "hot"] {
            let got = select!(Item, |i| i.category_id == 9).fetch(&store).unwrap();
            let bits: Vec<(i64, u64)> = got.iter().map(|i| (i.id, i.price.to_bits())).collect();
            let want: Vec<(i64, u64)> = prices
                .iter()
                .map(|&(id, p)| (id, if p == 0.0 && (sqlite || mysql) { 0.0_f64.to_bits() } else { p.to_bits() }))
                .collect();
            assert_eq!(bits, want, "{pass}");
        }
    });
}

#[derive(Model, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[memdex(table = "note")]
pub struct Note {
    #[memdex(key)]
    pub id: i64,
    #[memdex(index)]
    pub label: Option<String>,
}

/// `n` printable ASCII bytes that do not compress (PostgreSQL compresses index
/// entries before checking their size).
fn incompressible(n: usize, seed: u64) -> String {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ seed;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b'!' + (x % 94) as u8)
        })
        .collect()
}

/// F2: long text in an indexed column is stored where memdex's DDL can index it on
/// every database (one-column text indexes, prefix indexes, optional columns with
/// their `None` node) and found again, cold and hot; what a PostgreSQL btree must
/// hold (a composite index with text, a text key) is stored up to memdex's limit and
/// refused beyond it with memdex's own error, before the database sees it. SQLite
/// stores everything.
#[test]
fn long_indexed_text_is_stored_or_refused_by_memdex() {
    each_backend("f2", |b| {
        let store = b.store();
        store.migrate::<Item>().unwrap();
        store.migrate::<Tag>().unwrap();
        store.migrate::<Note>().unwrap();
        let postgres = b.db == memdex_tests::backends::Db::Postgres;
        let mysql = b.db == memdex_tests::backends::Db::MySql;
        let long = incompressible(6000, 1);
        let name = format!("la{long}");
        store.insert(&Item { name: name.clone(), ..item(1, 5, "", 1.0) }).unwrap();
        store.insert(&Tag { name: "t".into(), kind: long.clone(), weight: 1 }).unwrap();
        store.insert(&Note { id: 1, label: Some(long.clone()) }).unwrap();
        store.insert(&Note { id: 2, label: None }).unwrap();
        for pass in ["cold", "hot"] {
            assert_eq!(ids(&select!(Item, |i| i.name.starts_with("la")).fetch(&store).unwrap()), vec![1], "{pass}");
            let whole = select!(Item, |i| i.name.starts_with(name.as_str())).fetch(&store).unwrap();
            assert_eq!(ids(&whole), vec![1], "{pass}");
            let kind = long.clone();
            let tags = select!(Tag, |t| t.kind == kind).fetch(&store).unwrap();
            assert_eq!(tags.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), ["t"], "{pass}");
            let label = Some(long.clone());
            let notes = select!(Note, |n| n.label == label).fetch(&store).unwrap();
            assert_eq!(notes.iter().map(|n| n.id).collect::<Vec<_>>(), [1], "{pass}");
            let unlabelled = select!(Note, |n| n.label.is_none()).fetch(&store).unwrap();
            assert_eq!(unlabelled.iter().map(|n| n.id).collect::<Vec<_>>(), [2], "{pass}");
        }

        // The composite index (cart_id, status): at most 2656 bytes of text on
        // PostgreSQL.
        let with_status =
            |id: i64, len: usize| Item { status: incompressible(len, id as u64), ..item(id, 5, "x", 1.0) };
        let fits = with_status(10, 2656);
        store.insert(&fits).unwrap();
        let (cart, status) = (fits.cart_id, fits.status.clone());
        assert_eq!(ids(&select!(Item, |i| i.cart_id == cart && i.status == status).fetch(&store).unwrap()), vec![10]);
        let too_long = with_status(11, 2657);
        let refused = |r: Result<(), Error>, field: &str, limit: usize| match r {
            Err(Error::IndexedTextTooLong(e)) if postgres => {
                assert_eq!((e.field.as_str(), e.limit), (field, limit));
                let msg = Error::IndexedTextTooLong(e).to_string();
                assert!(msg.contains(field) && msg.contains(&limit.to_string()) && msg.contains("2704"), "{msg}");
            }
            Ok(()) if !postgres => {}
            other => panic!("{field}: unexpected {other:?}"),
        };
        refused(store.insert(&too_long), "Item.status", 2656);
        refused(store.update(&Item { status: too_long.status.clone(), ..fits.clone() }), "Item.status", 2656);
        let (cart, status) = (too_long.cart_id, too_long.status.clone());
        let found = ids(&select!(Item, |i| i.cart_id == cart && i.status == status).fetch(&store).unwrap());
        assert_eq!(found, if postgres { vec![] } else { vec![11] }, "stored only where it could be");
        let ten = select!(Item, |i| i.id == 10).fetch(&store).unwrap();
        let want = if postgres { &fits.status } else { &too_long.status };
        assert_eq!(&ten[0].status, want, "updated only where it could be");

        // A text key: at most 2672 bytes on PostgreSQL, 768 characters on MariaDB
        // (VARCHAR(768), InnoDB's 3072-byte key of 4-byte characters).
        let key_limit = if mysql { 768 } else { 2672 };
        let key_fits = incompressible(key_limit, 3);
        store.insert(&Tag { name: key_fits.clone(), kind: "k".into(), weight: 2 }).unwrap();
        let key = key_fits.clone();
        assert_eq!(select!(Tag, |t| t.name == key).fetch(&store).unwrap().len(), 1);
        let key_too_long = incompressible(key_limit + 1, 4);
        let r = store.transaction(|tx| tx.insert(&Tag { name: key_too_long.clone(), kind: "k".into(), weight: 3 }));
        if mysql {
            match r {
                Err(Error::IndexedTextTooLong(e)) => {
                    assert_eq!((e.field.as_str(), e.limit, e.unit), ("Tag.name", 768, "characters"));
                    let msg = Error::IndexedTextTooLong(e).to_string();
                    assert!(msg.contains("768 characters") && msg.contains("3072"), "{msg}");
                }
                other => panic!("Tag.name: unexpected {other:?}"),
            }
        } else {
            refused(r, "Tag.name", 2672);
        }
        let refused_key = postgres || mysql;
        assert_eq!(select!(Tag, |t| t.kind == "k").fetch(&store).unwrap().len(), if refused_key { 1 } else { 2 });
    });
}

// ---- the cache of prepared text queries ----

/// A fresh SQLite store with the seed rows plus two deleted ones, and a text-cache
/// capacity (`None`: the default).
fn text_store(capacity: Option<usize>) -> Store {
    let builder = Store::builder().sqlite_in_memory().in_process_cache();
    let builder = match capacity {
        Some(n) => builder.text_cache_capacity(n),
        None => builder,
    };
    let store = builder.build().unwrap();
    seed(&store);
    for (id, deleted_at) in [(8, 70), (9, 90)] {
        store.insert(&Item { deleted_at: Some(deleted_at), ..item(id, 5, "gone", 1.0) }).unwrap();
    }
    store
}

/// What a text query returned, comparable between stores: the ids, or the error.
fn text_answer(store: &Store, text: &str, params: &[(&str, memdex::Value)]) -> Result<Vec<i64>, String> {
    store.recall_text::<Item>(text, params).map(|rows| ids(&rows)).map_err(|e| e.to_string())
}

#[test]
fn text_queries_reuse_their_plan_with_new_values() {
    let store = text_store(None);
    let text = "lambda c: c.category_id == cat and c.price > p";
    for (cat, p, expect) in [(5, 20.0, vec![2, 3, 4]), (6, 10.0, vec![6]), (7, 0.0, vec![7]), (5, 100.0, vec![2])] {
        let rows = store.recall_text::<Item>(text, &[("cat", cat.into()), ("p", p.into())]).unwrap();
        assert_eq!(ids(&rows), expect, "cat = {cat}, p = {p}");
    }
    let stats = store.stats();
    assert_eq!((stats.text_cache_misses, stats.text_cache_hits), (1, 3), "{stats:?}");
    // A parameter the text does not mention does not matter, whatever its type.
    let rows = store
        .recall_text::<Item>(text, &[("cat", 6.into()), ("p", 0.0.into()), ("unused", vec![1_i64].into())])
        .unwrap();
    assert_eq!(ids(&rows), vec![5, 6]);
    // `select_text` shares the same cache, for counting and paging too.
    let q = store.select_text::<Item>(text, &[("cat", 5.into()), ("p", 0.0.into())]).unwrap();
    assert_eq!(q.count(&store).unwrap(), 6);
    assert_eq!(ids(&q.limit(2).fetch(&store).unwrap()), vec![1, 2]);
    let stats = store.stats();
    assert_eq!((stats.text_cache_misses, stats.text_cache_hits), (1, 5), "{stats:?}");
}

#[test]
fn text_cache_keys_on_parameter_types_and_model() {
    // Each case runs on a store with the cache and on one without: a plan prepared
    // for one parameter type and reused for another would answer differently.
    let int = |i: i64| memdex::Value::from(i);
    let list = |v: &[i64]| memdex::Value::from(v.to_vec());
    let cases: Vec<(&str, Vec<(&str, memdex::Value)>)> = vec![
        ("lambda c: c.category_id in ids", vec![("ids", list(&[5, 6]))]),
        ("lambda c: c.category_id in ids", vec![("ids", list(&[7]))]),
        ("lambda c: c.category_id in ids", vec![("ids", int(6))]),
        ("lambda c: c.category_id in ids", vec![("ids", list(&[]))]),
        ("lambda c: c.category_id in ids", vec![("ids", vec!["5".to_owned()].into())]),
        ("lambda c: c.category_id in ids", vec![("ids", memdex::Value::Null)]),
        ("lambda c: c.category_id in ids", vec![]),
        ("lambda c: c.category_id in ids", vec![("ids", list(&[5]))]),
        ("lambda c: c.category_id == 5 and c.deleted_at == d", vec![("d", memdex::Value::Null)]),
        ("lambda c: c.category_id == 5 and c.deleted_at == d", vec![("d", int(70))]),
        ("lambda c: c.category_id == 5 and c.deleted_at == d", vec![("d", memdex::Value::Null)]),
        ("lambda c: c.category_id == 5 and c.deleted_at != d", vec![("d", int(90))]),
        ("lambda c: c.category_id == 5 and c.deleted_at != d", vec![("d", memdex::Value::Null)]),
        ("lambda c: c.category_id == cat", vec![("cat", memdex::Value::Null)]),
        ("lambda c: c.category_id == cat", vec![("cat", int(6))]),
        ("lambda c: c.category_id == cat", vec![("cat", "6".into())]),
        ("lambda c: c.category_id == cat", vec![("cat", 6.0.into())]),
        ("lambda c: c.category_id == cat", vec![("cat", int(7))]),
    ];
    let cached = text_store(None);
    let fresh = text_store(Some(0));
    let mut answers = Vec::new();
    for (text, params) in &cases {
        let got = text_answer(&cached, text, params);
        let want = text_answer(&fresh, text, params);
        assert_eq!(got, want, "{text} with {params:?}");
        answers.push(got);
    }
    // The cases do tell types apart: rows for a list, an error for a scalar, and
    // `== None` other rows than `== 70`.
    assert_eq!(answers[0], Ok(vec![1, 2, 3, 4, 5, 6, 8, 9]));
    assert!(answers[2].is_err() && answers[5].is_err() && answers[6].is_err(), "{answers:?}");
    assert_eq!(answers[3], Ok(vec![]));
    assert_eq!(answers[8], Ok(vec![1, 2, 3, 4]));
    assert_eq!(answers[9], Ok(vec![8]));
    assert_eq!(answers[14], Ok(vec![5, 6]));
    let stats = cached.stats();
    assert_eq!(fresh.stats().text_cache_hits, 0, "capacity 0 keeps nothing");
    // Hits: the second list of ints, the list again at the end, `d = None` again,
    // and `cat = 7` after `cat = 6`.
    assert_eq!(stats.text_cache_hits, 4, "{stats:?}");

    // The same text over another model is another query.
    let tags = Store::builder().sqlite_in_memory().build().unwrap();
    tags.migrate::<Tag>().unwrap();
    tags.insert(&Tag { name: "a".into(), kind: "k".into(), weight: 1 }).unwrap();
    let text = "lambda c: c.kind == k";
    assert_eq!(tags.recall_text::<Tag>(text, &[("k", "k".into())]).unwrap().len(), 1);
    assert!(tags.recall_text::<Item>(text, &[("k", "k".into())]).is_err(), "Item has no field `kind`");
    assert_eq!(tags.stats().text_cache_hits, 0);
}

#[test]
fn text_cache_holds_at_most_its_capacity_least_recently_used_out() {
    let store = text_store(Some(2));
    let texts = ["lambda c: c.category_id == 5", "lambda c: c.category_id == 6", "lambda c: c.category_id == 7"];
    let ask = |i: usize| {
        let before = store.stats();
        let rows = store.recall_text::<Item>(texts[i], &[]).unwrap();
        assert!(rows.iter().all(|r| r.category_id == 5 + i as i64) && !rows.is_empty());
        let after = store.stats();
        after.text_cache_hits - before.text_cache_hits == 1
    };
    // Fill (0, 1), then 2 pushes out 0, the least recently used.
    assert_eq!([ask(0), ask(1), ask(2)], [false, false, false]);
    assert_eq!([ask(2), ask(1)], [true, true]);
    assert!(!ask(0), "0 was pushed out by 2");
    // 0 came back and pushed out 2 (used before 1).
    assert_eq!([ask(1), ask(0)], [true, true]);
    assert!(!ask(2), "2 was pushed out by 0");
    // Failures are never kept.
    for _ in 0..3 {
        assert!(store.recall_text::<Item>("lambda c: c.price > 3", &[]).is_err());
    }
    assert!(ask(0) && ask(2), "errors took no slot");
}

#[test]
fn text_cache_under_concurrent_use() {
    // Six texts through a cache of three, from four threads: hits, misses, evictions
    // and two threads preparing the same text at once, every answer checked.
    let store = text_store(Some(3));
    let texts: Vec<String> = (0..6)
        .map(|i| format!("lambda c: c.category_id == cat and c.price >= {i}.0 and c.id != {}", 100 + i))
        .collect();
    let all: Vec<Item> = store.recall_text::<Item>("lambda c: c.category_id in (5, 6, 7)", &[]).unwrap();
    let calls = std::sync::atomic::AtomicU64::new(1);
    std::thread::scope(|s| {
        for t in 0..4_u64 {
            let (store, texts, all, calls) = (&store, &texts, &all, &calls);
            s.spawn(move || {
                for n in 0..150_u64 {
                    let i = ((n * 7 + t * 3) % 6) as usize;
                    let cat = 5 + ((n + t) % 3) as i64;
                    let rows = store.recall_text::<Item>(&texts[i], &[("cat", cat.into())]).unwrap();
                    let want: Vec<i64> =
                        all.iter().filter(|r| r.category_id == cat && r.price >= i as f64).map(|r| r.id).collect();
                    assert_eq!(ids(&rows), want, "{} with cat = {cat}", texts[i]);
                    calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            });
        }
    });
    let stats = store.stats();
    let calls = calls.into_inner();
    assert_eq!(stats.text_cache_hits + stats.text_cache_misses, calls, "{stats:?}");
    assert!(stats.text_cache_misses >= 7, "six texts and the first query at least: {stats:?}");
    assert!(stats.text_cache_hits > 0, "{stats:?}");
}

// ---- very wide `in` lists ----

#[test]
fn very_wide_in_lists_bind_as_one_parameter() {
    // 70 000 values: more than SQLite binds in one statement (32 766) and more than
    // PostgreSQL's protocol carries (65 535). Over `max_nodes_per_query`, so the
    // query goes to the database, whose SQL must bind the list as one value.
    let wide: Vec<i64> = (0..70_000_i64).map(|i| 1_000 + 3 * i).collect();
    each_backend("wide-in", |b| {
        let store = b.store();
        seed(&store);
        store
            .transaction(|tx| {
                for (id, cat) in
                    [(20, 1_000), (21, 1_003), (22, 1_004), (23, 1_000 + 3 * 69_999), (24, 1_000 + 3 * 70_000)]
                {
                    tx.insert(&item(id, cat, "wide", 1.0))?;
                }
                Ok(())
            })
            .unwrap();
        let mut ids_and_fives = wide.clone();
        ids_and_fives.push(5);
        for _ in 0..2 {
            let q = select!(Item, |c| wide.contains(&c.category_id));
            assert_eq!(ids(&q.fetch(&store).unwrap()), vec![20, 21, 23], "{:?}", b.db);
            assert_eq!(q.count(&store).unwrap(), 3);
            let rows = store
                .recall_text::<Item>(
                    "lambda c: c.category_id in cats and c.price < 100.0",
                    &[("cats", ids_and_fives.clone().into())],
                )
                .unwrap();
            assert_eq!(ids(&rows), vec![1, 3, 4, 20, 21, 23]);
            let rows = store
                .recall_text::<Item>(
                    "lambda c: c.category_id == 5 and not c.cart_id in cats",
                    &[("cats", wide.clone().into())],
                )
                .unwrap();
            assert_eq!(ids(&rows), vec![1, 2, 3, 4]);
            let rows = scan!(Item, |c| c.id >= 20 && !wide.contains(&c.category_id)).fetch(&store).unwrap();
            assert_eq!(ids(&rows), vec![22, 24]);
        }
    });
}

#[test]
fn very_wide_node_snapshots_stay_one_statement() {
    // Four disjuncts of 10 000 composite nodes each (`max_nodes_per_query` per
    // disjunct): 40 000 nodes of two values. When one misses, every node is read in
    // one statement (K7), which must not bind 80 000 values.
    each_backend("wide-snapshot", |b| {
        let store = b.store();
        seed(&store);
        store
            .transaction(|tx| {
                for (id, cart) in [(30, 100), (31, 5_099), (32, 5_100), (33, 19_999), (34, 20_100)] {
                    tx.insert(&Item { cart_id: cart, status: "open".into(), ..item(id, 9, "snap", 2.0) })?;
                }
                Ok(())
            })
            .unwrap();
        let carts = |k: i64| -> Vec<i64> { (0..5_000).map(|i| 100 + 5_000 * k + i).collect() };
        let (c0, c1, c2, c3) = (carts(0), carts(1), carts(2), carts(3));
        let statuses = ["open".to_owned(), "paid".to_owned()];
        let q = select!(Item, |c| (c0.contains(&c.cart_id) && statuses.contains(&c.status))
            || (c1.contains(&c.cart_id) && statuses.contains(&c.status))
            || (c2.contains(&c.cart_id) && statuses.contains(&c.status))
            || (c3.contains(&c.cart_id) && statuses.contains(&c.status)));
        for round in 0..2 {
            let before = store.stats();
            assert_eq!(ids(&q.fetch(&store).unwrap()), vec![30, 31, 32, 33], "{:?} round {round}", b.db);
            let after = store.stats();
            if round == 0 {
                assert!(after.node_misses > before.node_misses, "the first read misses: {after:?}");
            }
        }
        // At the snapshot bound: 10 000 one-value nodes (`max_nodes_per_query`), all
        // missing, read in one statement.
        let ten_thousand: Vec<i64> = (0..10_000).collect();
        let q10 = select!(Item, |c| ten_thousand.contains(&c.category_id) && c.id >= 30);
        let before = store.stats();
        assert_eq!(ids(&q10.fetch(&store).unwrap()), vec![30, 31, 32, 33, 34]);
        let filled = store.stats();
        assert_eq!(ids(&q10.fetch(&store).unwrap()), vec![30, 31, 32, 33, 34]);
        let after = store.stats();
        // Taken as one snapshot (not answered from the database alone), so the nodes
        // were filled and the second read finds every one of them cached.
        assert_eq!(after.degraded_calls, before.degraded_calls, "{:?}: {after:?}", b.db);
        assert_eq!(after.node_misses, filled.node_misses, "{:?}: the second read misses: {after:?}", b.db);
        // A write moves a row between two nodes of the query; the next read sees it.
        store.update(&Item { cart_id: 5_101, status: "paid".into(), ..item(30, 9, "snap", 2.0) }).unwrap();
        assert_eq!(ids(&q.fetch(&store).unwrap()), vec![30, 31, 32, 33]);
        store.update(&Item { cart_id: 99, status: "paid".into(), ..item(30, 9, "snap", 2.0) }).unwrap();
        assert_eq!(ids(&q.fetch(&store).unwrap()), vec![31, 32, 33]);
    });
}

/// A model whose table no migration created: every read of it fails in the database.
#[derive(Model, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[memdex(table = "never_created")]
pub struct Ghost {
    #[memdex(key)]
    pub id: i64,
    #[memdex(index)]
    pub shelf: i64,
}

/// A database error in the middle of a fetch (the node misses, the fill's read
/// fails) is the fetch's answer: an error, at once — not an empty result, not a
/// retry of the failing statement forever. Runs on its own thread so that a hang
/// fails the test instead of stalling the suite.
#[test]
fn a_database_error_during_a_fetch_is_its_answer() {
    each_backend("db-error", |b| {
        let store = b.store();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let indexed = select!(Ghost, |g| g.shelf == 1).fetch(&store).map(|rows| rows.len());
            let by_text = store.recall_text::<Ghost>("lambda g: g.id == 3", &[]).map(|rows| rows.len());
            let _ = tx.send((indexed, by_text));
        });
        let (indexed, by_text) = rx
            .recv_timeout(std::time::Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("{:?}: a fetch over a missing table did not return", b.db));
        for (what, answer) in [("index node", indexed), ("key lookup", by_text)] {
            assert!(matches!(answer, Err(Error::Database(_))), "{:?}, {what}: {answer:?}", b.db);
        }
    });
}

/// `Stats::writes` counts every row write a committed transaction made, and single
/// writes one each.
#[test]
fn writes_are_counted_one_per_row() {
    each_backend("write-count", |b| {
        let store = b.store();
        seed(&store);
        let before = store.stats().writes;
        store
            .transaction(|tx| {
                tx.insert(&item(40, 9, "forty", 1.0))?;
                tx.insert(&item(41, 9, "forty-one", 1.0))?;
                tx.update(&item(40, 8, "forty", 2.0))?;
                tx.delete::<Item>(&41)
            })
            .unwrap();
        assert_eq!(store.stats().writes - before, 4, "{:?}: {:?}", b.db, store.stats());
        store.insert(&item(42, 9, "forty-two", 1.0)).unwrap();
        assert_eq!(store.stats().writes - before, 5, "{:?}: {:?}", b.db, store.stats());
    });
}

/// A model without an index: rows are read by key alone, from their objects.
#[derive(Model, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[memdex(table = "setting")]
pub struct Setting {
    #[memdex(key)]
    pub name: String,
    pub value: i64,
}

/// A delete of a row no index node lists still invalidates its cached object (and
/// records the key in its outbox entry): its appends are none, so the object's key
/// is the whole of what the write tells the cache.
#[test]
fn a_delete_of_a_row_of_a_model_without_indexes_invalidates_its_object() {
    each_backend("delete-unindexed", |b| {
        let store = b.store();
        store.migrate::<Setting>().unwrap();
        let name = "limit".to_owned();
        store.insert(&Setting { name: name.clone(), value: 3 }).unwrap();
        let by_name = || {
            let n = name.clone();
            select!(Setting, |s| s.name == n).fetch(&store).unwrap()
        };
        assert_eq!(by_name(), [Setting { name: name.clone(), value: 3 }], "{:?}", b.db);
        assert_eq!(by_name().len(), 1, "{:?}: hot", b.db);
        store.delete::<Setting>(&name).unwrap();
        assert_eq!(by_name(), [], "{:?}: the deleted row is read from the cache", b.db);
    });
}
