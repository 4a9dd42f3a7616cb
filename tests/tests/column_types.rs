//! The column types beyond numbers and strings — bytes, instants (`chrono` and
//! `time`), UUIDs and JSON documents — end to end on every database and cache:
//! they round-trip exactly (extremes included), equality finds rows through an index
//! node, instants order as in time, and the text form takes them as bound values;
//! the tokio driver (its own PostgreSQL client) round-trips and indexes them too.

// Tests fail by panicking, with a message saying what went wrong.
#![allow(clippy::panic, clippy::unwrap_used)]

use chrono::{DateTime, TimeZone, Utc};
use memdex::{Model, Store, Value, scan, select};
use memdex_tests::backends::{Backends, each_backend};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// An enum stored as its variants' serde names.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Signup,
    PaymentFailed,
    #[serde(rename = "other kind")]
    Other,
}
memdex::text_enum!(Kind);

#[derive(Model, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[memdex(table = "event")]
pub struct Event {
    #[memdex(key)]
    pub id: i64,
    #[memdex(index)]
    pub at: DateTime<Utc>,
    pub seen: Option<time::OffsetDateTime>,
    #[memdex(index)]
    pub ext: Uuid,
    pub other: Option<Uuid>,
    #[memdex(index)]
    pub blob: Vec<u8>,
    pub small: Option<Vec<u8>>,
    #[serde(with = "memdex::json")]
    pub doc: serde_json::Value,
    #[serde(with = "memdex::json::option")]
    pub extra: Option<serde_json::Value>,
    #[memdex(text, index)]
    pub kind: Kind,
    #[memdex(text)]
    pub previous: Option<Kind>,
}

/// An instant from microseconds since 1970.
fn at(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap()
}

fn uuid(n: u8) -> Uuid {
    Uuid::from_bytes([n, 0x1f, 0, 0, 0, 0, 0x40, 0, 0x80, 0, 0, 0, 0, 0, 0, n])
}

/// Over a few hundred kilobytes, every byte value included (below memcached's
/// 1 MB item limit, so the object is cached too).
fn big_bytes() -> Vec<u8> {
    (0..300_000_u32).map(|i| (i % 251) as u8).collect()
}

const MAY_2024: i64 = 1_715_000_000_123_456;

fn events() -> Vec<Event> {
    let long_ago = Utc.with_ymd_and_hms(1900, 1, 1, 0, 0, 0).unwrap().timestamp_micros() - 7;
    vec![
        Event {
            id: 1,
            // One microsecond before 1970.
            at: at(-1),
            seen: None,
            ext: Uuid::nil(),
            other: None,
            blob: Vec::new(),
            small: None,
            doc: serde_json::json!({"a": [1, 2.5, {"b": null}], "s": "ü\"\n"}),
            extra: None,
            kind: Kind::Signup,
            previous: None,
        },
        Event {
            id: 2,
            at: at(MAY_2024),
            seen: Some(time::OffsetDateTime::from_unix_timestamp_nanos(-86_400_000_001_000).unwrap()),
            ext: uuid(2),
            other: Some(Uuid::max()),
            blob: big_bytes(),
            small: Some(vec![0, 255, 0]),
            doc: serde_json::json!([]),
            extra: Some(serde_json::json!({"k": 1})),
            kind: Kind::PaymentFailed,
            previous: Some(Kind::Signup),
        },
        Event {
            id: 3,
            at: at(long_ago),
            seen: Some(time::OffsetDateTime::from_unix_timestamp(4_102_444_800).unwrap()),
            ext: uuid(3),
            other: Some(Uuid::nil()),
            blob: vec![0, 255, 0],
            small: Some(Vec::new()),
            doc: serde_json::json!("text"),
            extra: Some(serde_json::json!(null)),
            kind: Kind::Other,
            previous: Some(Kind::Other),
        },
        Event {
            id: 4,
            at: at(MAY_2024),
            seen: None,
            ext: uuid(4),
            other: None,
            blob: Vec::new(),
            small: None,
            doc: serde_json::json!(7),
            extra: None,
            kind: Kind::PaymentFailed,
            previous: None,
        },
    ]
}

fn seed(store: &Store) -> Vec<Event> {
    store.migrate::<Event>().unwrap();
    let rows = events();
    store
        .transaction(|tx| {
            for e in &rows {
                tx.insert(e)?;
            }
            Ok(())
        })
        .unwrap();
    rows
}

fn ids(events: &[Event]) -> Vec<i64> {
    let mut ids: Vec<i64> = events.iter().map(|e| e.id).collect();
    ids.sort_unstable();
    ids
}

/// The rows of `rows` that `keep` accepts, by id.
fn expected(rows: &[Event], keep: impl Fn(&Event) -> bool) -> Vec<i64> {
    ids(&rows.iter().filter(|e| keep(e)).cloned().collect::<Vec<_>>())
}

/// Runs `fetch` twice: the answers agree, and the second is answered from the cache
/// through index nodes (no database query at all).
fn twice_second_from_cache(b: &Backends, store: &Store, what: &str, fetch: impl Fn() -> Vec<Event>) -> Vec<i64> {
    let first = fetch();
    let before = store.stats();
    let second = fetch();
    let after = store.stats();
    assert_eq!(ids(&first), ids(&second), "{b:?}: {what}");
    assert_eq!(after.db_queries, before.db_queries, "{b:?}: {what}: the second read asks the database nothing");
    assert!(after.node_hits > before.node_hits, "{b:?}: {what}: read through an index node: {after:?}");
    ids(&second)
}

#[test]
fn every_type_round_trips_exactly() {
    each_backend("types-round-trip", |b| {
        let store = b.store_with(|builder| builder.near_cache_capacity(0));
        let rows = seed(&store);
        for row in &rows {
            let id = row.id;
            let q = select!(Event, |e| e.id == id);
            assert_eq!(q.fetch(&store).unwrap(), vec![row.clone()], "{b:?}: from the database, row {id}");
            assert_eq!(q.fetch(&store).unwrap(), vec![row.clone()], "{b:?}: from the cache, row {id}");
        }
        // An update of every field reads back too.
        let mut changed = rows[0].clone();
        changed.at = at(i64::from(i32::MIN) * 1_000_000 + 1);
        changed.blob = vec![7; 3];
        changed.other = Some(uuid(9));
        changed.doc = serde_json::json!({"z": true});
        store.update(&changed).unwrap();
        let q = select!(Event, |e| e.id == 1);
        assert_eq!(q.fetch(&store).unwrap(), vec![changed], "{b:?}: after an update");
    });
}

#[test]
fn equality_on_instants_uuids_and_bytes_goes_through_index_nodes() {
    each_backend("types-index", |b| {
        let store = b.store();
        let rows = seed(&store);
        let may = at(MAY_2024);
        let found =
            twice_second_from_cache(b, &store, "at ==", || select!(Event, |e| e.at == may).fetch(&store).unwrap());
        assert_eq!(found, expected(&rows, |e| e.at == may));
        assert_eq!(found, vec![2, 4]);

        let nil = Uuid::nil();
        let found =
            twice_second_from_cache(b, &store, "ext ==", || select!(Event, |e| e.ext == nil).fetch(&store).unwrap());
        assert_eq!(found, vec![1]);
        let some = [uuid(3), uuid(4)];
        let found = twice_second_from_cache(b, &store, "ext in", || {
            select!(Event, |e| some.contains(&e.ext)).fetch(&store).unwrap()
        });
        assert_eq!(found, vec![3, 4]);

        let empty: Vec<u8> = Vec::new();
        let found = twice_second_from_cache(b, &store, "blob == []", || {
            select!(Event, |e| e.blob == empty).fetch(&store).unwrap()
        });
        assert_eq!(found, vec![1, 4]);
        let failed = Kind::PaymentFailed;
        let found = twice_second_from_cache(b, &store, "kind ==", || {
            select!(Event, |e| e.kind == failed).fetch(&store).unwrap()
        });
        assert_eq!(found, vec![2, 4]);
        let found = twice_second_from_cache(b, &store, "kind in", || {
            select!(Event, |e| [Kind::Other, Kind::Signup].contains(&e.kind)).fetch(&store).unwrap()
        });
        assert_eq!(found, vec![1, 3]);
        let big = big_bytes();
        let found = twice_second_from_cache(b, &store, "blob == big", || {
            select!(Event, |e| e.blob == big).fetch(&store).unwrap()
        });
        assert_eq!(found, vec![2]);

        // A write moves a row between nodes of an instant index.
        let mut moved = rows[3].clone();
        moved.at = at(-1);
        store.update(&moved).unwrap();
        assert_eq!(ids(&select!(Event, |e| e.at == may).fetch(&store).unwrap()), vec![2], "{b:?}: left its node");
        let before_1970 = at(-1);
        assert_eq!(ids(&select!(Event, |e| e.at == before_1970).fetch(&store).unwrap()), vec![1, 4], "{b:?}: joined");
    });
}

#[test]
fn instants_order_as_in_time_in_sql_and_in_memory() {
    each_backend("types-order", |b| {
        let store = b.store();
        let rows = seed(&store);
        for since in [at(-1), at(0), at(MAY_2024), at(MAY_2024 + 1), at(i64::from(i32::MIN) * 1_000_000)] {
            // The database compares (scan!), then memory (the residual of an
            // indexed select!): both as Rust does.
            let sql = ids(&scan!(Event, |e| e.at >= since).fetch(&store).unwrap());
            assert_eq!(sql, expected(&rows, |e| e.at >= since), "{b:?}: at >= {since}");
            let sql = ids(&scan!(Event, |e| e.at < since).fetch(&store).unwrap());
            assert_eq!(sql, expected(&rows, |e| e.at < since), "{b:?}: at < {since}");
            let empty: Vec<u8> = Vec::new();
            let memory = ids(&select!(Event, |e| e.blob == empty && e.at > since).fetch(&store).unwrap());
            assert_eq!(memory, expected(&rows, |e| e.blob.is_empty() && e.at > since), "{b:?}: at > {since}");
        }
        // Bytes and UUIDs order as bytes.
        let mid = vec![0_u8, 255];
        let sql = ids(&scan!(Event, |e| e.blob > mid).fetch(&store).unwrap());
        assert_eq!(sql, expected(&rows, |e| e.blob > mid), "{b:?}: bytes order");
        let u = uuid(3);
        let sql = ids(&scan!(Event, |e| e.ext <= u).fetch(&store).unwrap());
        assert_eq!(sql, expected(&rows, |e| e.ext <= u), "{b:?}: uuid order");
    });
}

#[test]
fn the_text_form_takes_these_types_as_bound_values() {
    each_backend("types-text", |b| {
        let store = b.store();
        let rows = seed(&store);
        let may = Value::Timestamp(MAY_2024);
        let found = store.recall_text::<Event>("lambda e: e.at == t", &[("t", may.clone())]).unwrap();
        assert_eq!(ids(&found), vec![2, 4], "{b:?}");
        let found = store.recall_text::<Event>(
            "lambda e: e.at == t and e.blob == x",
            &[("t", may), ("x", Value::Bytes(Vec::new()))],
        );
        assert_eq!(ids(&found.unwrap()), vec![4], "{b:?}");
        let list = Value::List(vec![Value::Uuid(*uuid(2).as_bytes()), Value::Uuid([0; 16])]);
        let found = store.recall_text::<Event>("lambda e: e.ext in us", &[("us", list)]).unwrap();
        assert_eq!(ids(&found), vec![1, 2], "{b:?}");
        let since = Value::Timestamp(0);
        let found = store.select_text::<Event>(
            "lambda e: e.ext == u and e.at > t",
            &[("u", Value::Uuid(*uuid(2).as_bytes())), ("t", since)],
        );
        assert_eq!(ids(&found.unwrap().fetch(&store).unwrap()), expected(&rows, |e| e.ext == uuid(2) && e.at > at(0)));
        // An enum field is text: its serde name, renames included.
        let found = store.recall_text::<Event>("lambda e: e.kind == 'other kind'", &[]).unwrap();
        assert_eq!(ids(&found), vec![3], "{b:?}");
        // A value of the wrong type is a type error, not a silent miss.
        let err = store.recall_text::<Event>("lambda e: e.at == t", &[("t", Value::Int(MAY_2024))]).unwrap_err();
        assert!(err.to_string().contains("timestamp"), "{b:?}: {err}");
    });
}

#[test]
fn json_is_stored_but_never_queried() {
    each_backend("types-json", |b| {
        let store = b.store();
        seed(&store);
        let err = store
            .recall_text::<Event>("lambda e: e.id == 1 and e.doc == x", &[("x", Value::Json("7".into()))])
            .unwrap_err();
        let message = err.to_string();
        assert!(message.contains("JSON field `doc`"), "{b:?}: {message}");
    });
}

/// The tokio driver shares the conversions but binds and reads through its own
/// PostgreSQL client (`tokio-postgres`): every type round-trips through it, and an
/// equality on each indexed type finds its rows, the second time from index nodes.
#[test]
fn the_async_store_round_trips_and_indexes_every_type() {
    use memdex_tests::asynchronous::block_on;
    let memcached = memdex_tests::servers::memcached::MemcachedServer::start().expect("memcached");
    let databases = [
        ("SQLite", Store::builder().sqlite_in_memory()),
        (
            "PostgreSQL",
            Store::builder().postgres(memdex_tests::backends::postgres().fresh_database().expect("database")),
        ),
    ];
    for (name, builder) in databases {
        let namespace = format!("types_async_{}_{name}", std::process::id()).to_lowercase();
        let store = block_on(builder.namespace(namespace).memcached(vec![memcached.addr()]).build_async())
            .expect("async store");
        block_on(store.migrate::<Event>()).unwrap();
        let rows = events();
        for e in &rows {
            block_on(store.insert(e)).unwrap();
        }
        for row in &rows {
            let id = row.id;
            let q = select!(Event, |e| e.id == id);
            assert_eq!(block_on(q.fetch_async(&store)).unwrap(), vec![row.clone()], "{name}: row {id}");
        }
        let (may, nil, empty, signup) = (at(MAY_2024), Uuid::nil(), Vec::<u8>::new(), Kind::Signup);
        let found = fetch_ids(&store, || select!(Event, |e| e.at == may));
        assert_eq!(found, expected(&rows, |e| e.at == may), "{name}: at ==");
        let found = fetch_ids(&store, || select!(Event, |e| e.ext == nil));
        assert_eq!(found, expected(&rows, |e| e.ext == nil), "{name}: ext ==");
        let found = fetch_ids(&store, || select!(Event, |e| e.blob == empty));
        assert_eq!(found, expected(&rows, |e| e.blob.is_empty()), "{name}: blob ==");
        let found = fetch_ids(&store, || select!(Event, |e| e.kind == signup));
        assert_eq!(found, expected(&rows, |e| e.kind == signup), "{name}: kind ==");
    }
}

/// The ids a query finds through an async store, asked twice: the second answer is
/// the first, from index nodes without a database query.
fn fetch_ids<'a>(store: &memdex::AsyncStore, query: impl Fn() -> memdex::Select<'a, Event>) -> Vec<i64> {
    use memdex_tests::asynchronous::block_on;
    let first = block_on(query().fetch_async(store)).unwrap();
    let before = store.stats();
    let second = block_on(query().fetch_async(store)).unwrap();
    let after = store.stats();
    assert_eq!(after.db_queries, before.db_queries, "the second read asks the database nothing");
    assert!(after.node_hits > before.node_hits, "read through an index node: {after:?}");
    assert_eq!(ids(&first), ids(&second));
    ids(&second)
}
