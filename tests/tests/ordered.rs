//! Ordered index nodes (issue 16): `#[memdex(index(cart_id, order_by = position))]`
//! keeps each id with its order value, so a page of `order_by(position)` reads the
//! node and the page's objects only — on every database and cache, in both query
//! forms, with `offset` and with keyset paging (`after`), and stays right while
//! writes reorder, insert, delete and move rows. Every page is compared with the
//! database's own answer (`scan!`, which pages in SQL).

// Tests fail by panicking, with a message saying what went wrong.
#![allow(clippy::panic, clippy::unwrap_used)]

use std::sync::Arc;

use memdex::cache::in_process::InProcessCache;
use memdex::cache::{CacheBackend, CacheConfig, CacheOp};
use memdex::grammar::keys::KeySpace;
use memdex::{Dialect, Model, Store, Value, scan, select};
use memdex_tests::backends::{Backends, each_backend};
use memdex_tests::models::{CartLine, line};
use memdex_tests::shared_db::{SharedDb, each_engine};
use memdex_tests::stepping::Stepping;

/// Lines of cart 1 (positions scattered, every tenth position shared by two lines,
/// so ties break by key) and a few of cart 2.
fn seed(store: &Store, lines: i64) {
    store.migrate::<CartLine>().unwrap();
    store
        .transaction(|tx| {
            for id in 1..=lines {
                let position = (id * 7919) % lines / if id % 10 == 0 { 2 } else { 1 };
                tx.insert(&CartLine { qty: id % 4, ..line(id, 1, position) })?;
            }
            for id in 1..=5 {
                tx.insert(&line(10_000 + id, 2, id))?;
            }
            Ok(())
        })
        .unwrap();
}

fn ids(lines: &[CartLine]) -> Vec<i64> {
    lines.iter().map(|l| l.id).collect()
}

/// The page from the cache and from SQL, for `(descending, limit, offset)`.
fn page(store: &Store, cart: i64, descending: bool, limit: u64, offset: u64) -> (Vec<i64>, Vec<i64>) {
    let cached = select!(CartLine, |l| l.cart_id == cart);
    let sql = scan!(CartLine, |l| l.cart_id == cart);
    let (cached, sql) = if descending {
        (cached.order_by_desc(CartLine::position()), sql.order_by_desc(CartLine::position()))
    } else {
        (cached.order_by(CartLine::position()), sql.order_by(CartLine::position()))
    };
    let cached = cached.limit(limit).offset(offset).fetch(store).unwrap();
    let sql = sql.limit(limit).offset(offset).fetch(store).unwrap();
    (ids(&cached), ids(&sql))
}

#[track_caller]
fn assert_page(store: &Store, cart: i64, descending: bool, limit: u64, offset: u64) {
    let (cached, sql) = page(store, cart, descending, limit, offset);
    assert_eq!(cached, sql, "cart {cart} desc {descending} limit {limit} offset {offset}");
}

#[test]
fn a_hot_page_reads_the_node_and_the_page_objects_only() {
    each_backend("ordered-page", |b: &Backends| {
        let store = b.store_with(|builder| builder.near_cache_capacity(0));
        seed(&store, 300);
        for descending in [false, true] {
            for (limit, offset) in [(10, 0), (10, 150), (10, 295), (7, 300), (25, 13)] {
                assert_page(&store, 1, descending, limit, offset);
                let before = store.stats();
                assert_page(&store, 1, descending, limit, offset);
                let after = store.stats();
                let page_len = (300u64.saturating_sub(offset)).min(limit);
                assert_eq!(after.object_hits - before.object_hits, page_len, "only the page's objects: {after:?}");
                assert_eq!(after.node_hits - before.node_hits, 1, "{after:?}");
                // The SQL oracle is one statement; the cached page asked nothing.
                assert_eq!(after.db_queries - before.db_queries, 1, "{after:?}");
                // An empty page has no objects to read.
                let trips = if page_len == 0 { 1 } else { 2 };
                assert_eq!(after.cache_round_trips - before.cache_round_trips, trips, "node, then the page: {after:?}");
            }
        }
        assert_page(&store, 2, false, 3, 1);
        assert_page(&store, 3, false, 3, 0);
    });
}

#[test]
fn with_the_near_cache_a_hot_page_is_one_round_trip() {
    each_backend("ordered-near", |b: &Backends| {
        let store = b.store_with(|builder| builder.near_cache_capacity(64 << 20));
        seed(&store, 200);
        let q = || select!(CartLine, |l| l.cart_id == 1).order_by(CartLine::position()).limit(10).offset(100);
        let first = ids(&q().fetch(&store).unwrap());
        assert_eq!(ids(&q().fetch(&store).unwrap()), first);
        let before = store.stats();
        assert_eq!(ids(&q().fetch(&store).unwrap()), first);
        let after = store.stats();
        assert_eq!(after.cache_round_trips - before.cache_round_trips, 1, "{after:?}");
        assert_eq!(after.near_hits - before.near_hits, 10, "{after:?}");
        assert_eq!(after.db_queries, before.db_queries);
    });
}

#[test]
fn keyset_paging_walks_the_cart_without_repeats_or_gaps() {
    each_backend("ordered-after", |b: &Backends| {
        let store = b.store();
        seed(&store, 120);
        for descending in [false, true] {
            let everything = {
                let q = scan!(CartLine, |l| l.cart_id == 1);
                let q =
                    if descending { q.order_by_desc(CartLine::position()) } else { q.order_by(CartLine::position()) };
                ids(&q.fetch(&store).unwrap())
            };
            let mut walked: Vec<i64> = Vec::new();
            let mut last: Option<CartLine> = None;
            loop {
                let q = select!(CartLine, |l| l.cart_id == 1);
                let q =
                    if descending { q.order_by_desc(CartLine::position()) } else { q.order_by(CartLine::position()) };
                let q = q.limit(11);
                let q = match &last {
                    Some(row) => q.after(row),
                    None => q,
                };
                let rows = q.fetch(&store).unwrap();
                if rows.is_empty() {
                    break;
                }
                walked.extend(ids(&rows));
                last = rows.last().cloned();
            }
            assert_eq!(walked, everything, "descending {descending}");
        }
    });
}

#[test]
fn pages_stay_right_while_writes_reorder_insert_delete_and_move_rows() {
    each_engine("ordered_writes", |db: &SharedDb, memcached: &str| {
        // Two processes of one service: one without a near cache, one with.
        let process = |near: usize| {
            db.builder().namespace(db.name()).memcached([memcached]).near_cache_capacity(near).build().unwrap()
        };
        let store = process(0);
        let other = process(64 << 20);
        seed(&store, 100);
        let check = |what: &str| {
            for s in [&store, &other] {
                for (descending, limit, offset) in [(false, 10, 0), (false, 10, 45), (true, 10, 0), (true, 5, 90)] {
                    let (cached, sql) = page(s, 1, descending, limit, offset);
                    assert_eq!(cached, sql, "{what}: desc {descending} limit {limit} offset {offset}");
                }
            }
        };
        check("hot");
        check("hot again");
        let get = |id: i64| select!(CartLine, |l| l.id == id).fetch(&store).unwrap().remove(0);
        // A row from the middle to the front, and one from the front to the back.
        let mut moved = get(37);
        moved.position = -1;
        store.update(&moved).unwrap();
        check("moved to the front");
        let mut last = get(2);
        last.position = 1_000;
        other.update(&last).unwrap();
        check("moved to the back by the other process");
        // A new line inside the window, a deleted one, a line leaving for cart 2 and
        // one arriving from it.
        store.insert(&line(500, 1, 46)).unwrap();
        check("inserted");
        store.delete::<CartLine>(&50).unwrap();
        check("deleted");
        let mut leaving = get(60);
        leaving.cart_id = 2;
        other.update(&leaving).unwrap();
        let mut arriving = get(10_003);
        arriving.cart_id = 1;
        arriving.position = 0;
        store.update(&arriving).unwrap();
        check("moved between carts");
        // A label change alone keeps the order: the page is still right.
        let mut relabelled = get(41);
        relabelled.label = "relabelled".into();
        store.update(&relabelled).unwrap();
        check("relabelled");
        // After a read cleaned the node, a page again reads only its objects.
        let before = store.stats();
        assert_page(&store, 1, false, 10, 45);
        let after = store.stats();
        assert_eq!(after.object_hits - before.object_hits, 10, "the cleaned node ordered itself again: {after:?}");
    });
}

#[test]
fn a_page_of_an_evicted_object_is_read_from_the_whole_node() {
    let cache: Arc<dyn CacheBackend> = Arc::new(InProcessCache::new(CacheConfig::default()));
    let stepper = Stepping::new(cache);
    let store = Store::builder().sqlite_in_memory().cache(stepper.plain()).near_cache_capacity(0).build().unwrap();
    seed(&store, 60);
    assert_page(&store, 1, false, 10, 20);
    assert_page(&store, 1, false, 10, 20);
    let page = ids(&select!(CartLine, |l| l.cart_id == 1)
        .order_by(CartLine::position())
        .limit(10)
        .offset(20)
        .fetch(&store)
        .unwrap());
    let key = KeySpace::new("memdex", CartLine::schema(), 0).object(&Value::Int(page[3]));
    stepper.plain().run(&[CacheOp::Delete { key: &key }]);
    let before = store.stats();
    assert_page(&store, 1, false, 10, 20);
    let after = store.stats();
    assert_eq!(after.object_misses - before.object_misses, 1, "{after:?}");
    assert_eq!(after.object_hits - before.object_hits, 59, "the page's 9 and the node's other 50: {after:?}");
}

#[test]
fn a_residual_filter_or_another_order_pages_in_memory() {
    each_backend("ordered-memory", |b: &Backends| {
        let store = b.store_with(|builder| builder.near_cache_capacity(0));
        seed(&store, 80);
        let cart = 1;
        let residual = || select!(CartLine, |l| l.cart_id == cart && l.qty > 1).order_by(CartLine::position());
        let sql = scan!(CartLine, |l| l.cart_id == cart && l.qty > 1).order_by(CartLine::position());
        assert_eq!(
            ids(&residual().limit(5).offset(7).fetch(&store).unwrap()),
            ids(&sql.limit(5).offset(7).fetch(&store).unwrap())
        );
        let before = store.stats();
        residual().limit(5).offset(7).fetch(&store).unwrap();
        let after = store.stats();
        assert_eq!(after.object_hits - before.object_hits, 80, "a residual needs every object: {after:?}");
        let by_label = select!(CartLine, |l| l.cart_id == cart).order_by(CartLine::label()).limit(4).offset(3);
        let sql = scan!(CartLine, |l| l.cart_id == cart).order_by(CartLine::label()).limit(4).offset(3);
        assert_eq!(ids(&by_label.fetch(&store).unwrap()), ids(&sql.fetch(&store).unwrap()));
    });
}

#[test]
fn the_text_form_pages_on_the_ordered_index_too() {
    let store = Store::builder().sqlite_in_memory().in_process_cache().near_cache_capacity(0).build().unwrap();
    seed(&store, 90);
    let text = |offset: u64| {
        store
            .select_text::<CartLine>("lambda l: l.cart_id == cart", &[("cart", 1.into())])
            .unwrap()
            .order_by_desc(CartLine::position())
            .limit(9)
            .offset(offset)
    };
    let macro_form = select!(CartLine, |l| l.cart_id == 1).order_by_desc(CartLine::position()).limit(9).offset(30);
    assert_eq!(ids(&text(30).fetch(&store).unwrap()), ids(&macro_form.fetch(&store).unwrap()));
    let before = store.stats();
    text(30).fetch(&store).unwrap();
    let after = store.stats();
    assert_eq!(after.object_hits - before.object_hits, 9, "{after:?}");
    let explain = text(30).explain(Dialect::Postgres).to_string();
    assert!(
        explain.contains("index cart_id (ordered by position)  →  get memdex:cart_line:0:cart_id={cart}>position"),
        "{explain}"
    );
    assert!(
        explain.contains("page: order by position desc, then id; offset 30, limit 9 — from the ordered index"),
        "{explain}"
    );
    let in_memory = select!(CartLine, |l| l.cart_id == 1 && l.qty > 1).order_by(CartLine::position()).limit(3);
    let explain = in_memory.explain(Dialect::Sqlite).to_string();
    assert!(explain.contains("page: order by position, then id; limit 3 — in memory"), "{explain}");
}

#[test]
fn damaged_ordered_nodes_are_refilled_not_served() {
    let cache: Arc<dyn CacheBackend> = Arc::new(InProcessCache::new(CacheConfig::default()));
    let stepper = Stepping::new(cache);
    let store = Store::builder().sqlite_in_memory().cache(stepper.plain()).near_cache_capacity(0).build().unwrap();
    seed(&store, 40);
    let node_key = KeySpace::new("memdex", CartLine::schema(), 0).node_of_index(
        CartLine::schema(),
        &CartLine::schema().indexes[0],
        &[Value::Int(1)],
    );
    assert_page(&store, 1, false, 10, 5);
    assert_page(&store, 1, false, 10, 5);
    let good = match stepper.plain().run(&[CacheOp::Get { key: &node_key, lease: None }]).remove(0) {
        Ok(memdex::cache::CacheReply::Hit { value, .. }) => value,
        other => panic!("the node is cached after two reads: {other:?}"),
    };
    // The header ends at the first newline (its tag, length and nonce are hex).
    let header_len = good.iter().position(|&b| b == b'\n').unwrap() + 1;
    let records = &good[header_len..];
    // The node's own header, saying `len` verified bytes.
    let header = |len: usize| {
        let mut header = good[..header_len].to_vec();
        header[2..10].copy_from_slice(format!("{len:08x}").as_bytes());
        header
    };
    let mut bad_flag = good.to_vec();
    bad_flag[header_len + 1 + 25 * 7] = 9;
    let damaged: Vec<Vec<u8>> = vec![
        b"#3zzzzzzzz\n".to_vec(),
        b"#4zzzzzzzz0123456789abcdef\n".to_vec(),
        [header(records.len() - 3), records[..records.len() - 3].to_vec()].concat(),
        [header(records.len() + 5), records.to_vec()].concat(),
        bad_flag,
        [header(records.len()), vec![b'='; records.len()]].concat(),
        [header(5), b"^1,2,".to_vec()].concat(),
        b"garbage".to_vec(),
    ];
    for (n, bytes) in damaged.iter().enumerate() {
        stepper.plain().run(&[CacheOp::Set { key: &node_key, value: bytes, ttl: 0 }]);
        for (descending, offset) in [(false, 5), (true, 0), (false, 39)] {
            let (cached, sql) = page(&store, 1, descending, 10, offset);
            assert_eq!(cached, sql, "damage {n}: desc {descending} offset {offset}");
        }
    }
}

/// The post's "keys per cart": every page of a 300-line cart (limits 5 to 20, every
/// offset, both directions, and keyset pages) reads one node key, the cart's.
#[test]
fn every_page_of_a_cart_reads_its_one_node() {
    let cache: Arc<dyn CacheBackend> = Arc::new(InProcessCache::new(CacheConfig::default()));
    let stepper = Stepping::new(cache);
    let store = Store::builder().sqlite_in_memory().cache(Box::new(stepper.clone())).build().unwrap();
    seed(&store, 300);
    let nodes = Arc::new(std::sync::Mutex::new(std::collections::BTreeSet::<String>::new()));
    let seen = nodes.clone();
    stepper.on_batch(move |ops, _| {
        for op in ops {
            if let CacheOp::Get { key, .. } | CacheOp::GetCas { key } = op
                && key.contains("cart_id=")
            {
                seen.lock().unwrap().insert((*key).to_owned());
            }
        }
        memdex_tests::stepping::Step::Proceed
    });
    let mut pages = 0;
    for limit in 5..=20u64 {
        for descending in [false, true] {
            let mut offset = 0;
            while offset < 300 {
                let q = select!(CartLine, |l| l.cart_id == 1);
                let q =
                    if descending { q.order_by_desc(CartLine::position()) } else { q.order_by(CartLine::position()) };
                assert_eq!(q.limit(limit).offset(offset).fetch(&store).unwrap().len() as u64, limit.min(300 - offset));
                offset += limit;
                pages += 1;
            }
        }
    }
    let nodes = nodes.lock().unwrap().clone();
    assert_eq!(nodes.into_iter().collect::<Vec<_>>(), ["memdex:cart_line:0:cart_id=1>position"], "{pages} pages");
}
