//! Hostile input: SQL injection attempts as values and in query text; values that
//! make awkward cache keys (spaces, control bytes, 1 KB of Unicode); objects over
//! memcached's item limit; malformed bytes under memdex's own keys; a memcached that
//! answers garbage; and random text through the parser and planner, which must never
//! panic.

// Tests fail by panicking, with a message saying what went wrong.
#![allow(clippy::panic, clippy::unwrap_used)]

use std::sync::Arc;

use memdex::cache::in_process::InProcessCache;
use memdex::cache::memcached::Memcached;
use memdex::cache::{CacheBackend, CacheConfig, CacheError, CacheOp, CacheReply};
use memdex::grammar::keys::KeySpace;
use memdex::grammar::plan::node_of_row;
use memdex::{Error, Model, Store, Value};
use memdex_testkit::soup::Soup;
use memdex_tests::differential::*;
use memdex_tests::proxy::{FaultProxy, Mode};
use memdex_tests::servers::memcached::MemcachedServer;
use proptest::prelude::*;

const INJECTIONS: &[&str] = &[
    "'; DROP TABLE diff_row; --",
    "\"; DROP TABLE diff_row; --",
    "' OR '1'='1",
    "1 OR 1=1",
    "x'); DELETE FROM diff_row; --",
    "\\'; SELECT pg_sleep(5); --",
    "$1",
    "?",
    "%' OR name LIKE '%",
    "*/ OR /*",
    "' || (SELECT 1) || '",
];

/// What a probe's rows must satisfy.
type RowCheck = Box<dyn Fn(&Row) -> bool>;

/// Injection strings stored as values and searched for with parameters, literals,
/// `startswith`, `in` and `ieq`: they are values, never SQL.
#[test]
fn injection_strings_are_only_values() {
    let rows: Vec<Row> = INJECTIONS
        .iter()
        .enumerate()
        .map(|(i, s)| Row { tag: (*s).into(), name: format!("{s}{i}"), note: Some((*s).into()), ..row(i as i64 + 1) })
        .collect();
    // Every lane of SQLite and PostgreSQL, then every lane of MariaDB (a world of its own).
    for coverage in [Coverage::Full, Coverage::MariaDb] {
        let mut world = World::new(coverage);
        world.load(&rows).unwrap_or_else(|e| panic!("{e}"));
        for s in INJECTIONS {
            let s = (*s).to_owned();
            let checks: Vec<(Probe, RowCheck)> = vec![
                (
                    Probe::new("lambda r: r.tag == t", &[("t", s.clone().into())]),
                    Box::new({
                        let s = s.clone();
                        move |r: &Row| r.tag == s
                    }),
                ),
                (
                    Probe::new(&format!("lambda r: r.tag == {}", py_str(&s)), &[]),
                    Box::new({
                        let s = s.clone();
                        move |r: &Row| r.tag == s
                    }),
                ),
                (
                    Probe::new("lambda r: r.cat == 1 and r.name.startswith(t)", &[("t", s.clone().into())]),
                    Box::new({
                        let s = s.clone();
                        move |r: &Row| r.name.starts_with(&s)
                    }),
                ),
                (
                    Probe::new("lambda r: r.cat == 1 and r.note == t", &[("t", s.clone().into())]),
                    Box::new({
                        let s = s.clone();
                        move |r: &Row| r.note.as_deref() == Some(s.as_str())
                    }),
                ),
                (
                    Probe::new(
                        "lambda r: r.tag in ts and ieq(r.name, n)",
                        &[("ts", vec![s.clone()].into()), ("n", format!("{s}0").into())],
                    ),
                    Box::new({
                        let s = s.clone();
                        move |r: &Row| r.tag == s && r.name.eq_ignore_ascii_case(&format!("{s}0"))
                    }),
                ),
            ];
            for (p, pred) in checks {
                match probe(&mut world, &p, &*pred) {
                    Ok(Outcome::Agreed) => {}
                    other => panic!("{other:?}"),
                }
            }
        }
        // The table is intact: every row is still there on every lane.
        let all = Probe::new("lambda r: r.cat == 1", &[]);
        assert_eq!(probe(&mut world, &all, &|_| true), Ok(Outcome::Agreed));
    }
}

/// Query text that tries to smuggle SQL in is rejected as text, and runs nothing.
#[test]
fn injection_in_query_text_is_a_syntax_error() {
    let mut world = World::new(Coverage::Sqlite);
    world.load(&[row(1), row(2)]).unwrap_or_else(|e| panic!("{e}"));
    for text in [
        "lambda r: r.cat == 1; DROP TABLE diff_row",
        "lambda r: r.cat == 1 -- and r.id == 2",
        "lambda r: r.cat == 1 /* */",
        "lambda r: r.tag == '' or ''=''",
        "lambda r: r.cat == 1 or 1=1",
        "lambda r: r.cat == 1) OR (1 == 1",
        "lambda r: r.cat == 1 union select 1",
        "lambda r: r.cat == `1`",
        "lambda r: r.cat == 1\u{0}; DROP TABLE diff_row",
    ] {
        for lane in &world.lanes {
            match lane.store.recall_text(text, &[]) {
                Err(Error::Query { .. }) => {}
                other => panic!("{}: {text:?} must be a query error, got {other:?}", lane.name),
            }
        }
    }
    let all = Probe::new("lambda r: r.cat == 1", &[]);
    assert_eq!(probe(&mut world, &all, &|_| true), Ok(Outcome::Agreed));
}

/// Index values that make awkward keys: spaces, control bytes, `:` `&` `=` (the key
/// syntax itself), 1 KB of Unicode (shortened with a hash), near-collisions after
/// shortening.
#[test]
fn awkward_key_values() {
    let long_a = "é".repeat(512); // 1 KB
    let mut long_b = long_a.clone();
    long_b.push('x'); // same readable prefix, different hash
    let tags: Vec<String> = vec![
        "a b".into(),
        " ".into(),
        "".into(),
        "\r\n".into(),
        "get x\r\n".into(),
        "\u{1}\u{7f}\t".into(),
        "cat=1&grp=2".into(),
        "a:b:c".into(),
        "%20".into(),
        "😀".repeat(100),
        long_a,
        long_b,
        "x".repeat(300),
        format!("{}y", "x".repeat(300)),
    ];
    let rows: Vec<Row> = tags.iter().enumerate().map(|(i, t)| Row { tag: t.clone(), ..row(i as i64 + 1) }).collect();
    // Every lane of SQLite and PostgreSQL, then every lane of MariaDB (a world of its own).
    for coverage in [Coverage::Full, Coverage::MariaDb] {
        let mut world = World::new(coverage);
        world.load(&rows).unwrap_or_else(|e| panic!("{e}"));
        for t in &tags {
            let want = t.clone();
            let p = Probe::new("lambda r: r.tag == t", &[("t", t.clone().into())]);
            assert_eq!(probe(&mut world, &p, &|r| r.tag == want), Ok(Outcome::Agreed));
            let want = t.clone();
            let p = Probe::new("lambda r: r.cat == 1 and r.name.startswith(t)", &[("t", t.clone().into())]);
            assert_eq!(probe(&mut world, &p, &|r| r.name.starts_with(&want)), Ok(Outcome::Agreed));
        }
        // Move every row to another tag and back: the nodes of the awkward keys must
        // follow.
        let moved: Vec<Row> = rows.iter().map(|r| Row { tag: format!("{}!", r.tag), ..r.clone() }).collect();
        world.load(&moved).unwrap_or_else(|e| panic!("{e}"));
        for t in &tags {
            let p = Probe::new("lambda r: r.tag == t", &[("t", t.clone().into())]);
            assert_eq!(probe(&mut world, &p, &|_| false), Ok(Outcome::Agreed));
        }
    }
}

/// A NUL byte in a value: SQLite and MariaDB store it; PostgreSQL refuses text with NUL. Either
/// way memdex must not panic, and what it answers must be right.
#[test]
fn nul_bytes_in_values() {
    let mut world = World::new(Coverage::Sqlite);
    let rows = vec![Row { tag: "a\u{0}b".into(), name: "\u{0}\u{0}".into(), ..row(1) }, row(2)];
    world.load(&rows).unwrap_or_else(|e| panic!("{e}"));
    let p = Probe::new("lambda r: r.tag == t", &[("t", "a\u{0}b".into())]);
    assert_eq!(probe(&mut world, &p, &|r| r.tag == "a\u{0}b"), Ok(Outcome::Agreed));
    let p = Probe::new("lambda r: r.cat == 1 and r.name.startswith(t)", &[("t", "\u{0}".into())]);
    assert_eq!(probe(&mut world, &p, &|r| r.name.starts_with('\u{0}')), Ok(Outcome::Agreed));
    // MariaDB keeps a NUL in text, as SQLite does.
    let mut world = World::new(Coverage::MariaDb);
    world.load(&rows).unwrap_or_else(|e| panic!("{e}"));
    let p = Probe::new("lambda r: r.tag == t", &[("t", "a\u{0}b".into())]);
    assert_eq!(probe(&mut world, &p, &|r| r.tag == "a\u{0}b"), Ok(Outcome::Agreed));
    let p = Probe::new("lambda r: r.cat == 1 and r.name.startswith(t)", &[("t", "\u{0}".into())]);
    assert_eq!(probe(&mut world, &p, &|r| r.name.starts_with('\u{0}')), Ok(Outcome::Agreed));
    let pg = memdex_tests::backends::postgres();
    let name = format!("hostile_nul_{}", std::process::id());
    let params = pg.create_database(&name).expect("create database").to_string();
    let store = Store::builder().postgres(params).in_process_cache().build().expect("store");
    store.migrate::<Row>().expect("migrate");
    match store.insert(&rows[0]) {
        Ok(()) => {
            let got = store.recall_text::<Row>("lambda r: r.tag == t", &[("t", "a\u{0}b".into())]).expect("read");
            assert_eq!(got, vec![rows[0].clone()]);
        }
        Err(e) => eprintln!("PostgreSQL refused a NUL byte, cleanly: {e}"),
    }
}

/// Objects bigger than memcached's 1 MB item limit are not cached, and queries still
/// answer them from the database, hot or cold.
#[test]
fn objects_over_one_megabyte() {
    let big = "ü".repeat(700_000); // 1.4 MB
    let rows = vec![
        Row { note: Some(big.clone()), ..row(1) },
        // Indexed text stays under PostgreSQL's btree limit (~2.7 KB, finding F2).
        Row { name: "ab".repeat(1000), note: Some("x".repeat(1_100_000)), ..row(2) },
        row(3),
    ];
    // Every lane of SQLite and PostgreSQL, then every lane of MariaDB (a world of its own).
    for coverage in [Coverage::Full, Coverage::MariaDb] {
        let mut world = World::new(coverage);
        world.load(&rows).unwrap_or_else(|e| panic!("{e}"));
        for _ in 0..2 {
            let p = Probe::new("lambda r: r.cat == 1", &[]);
            assert_eq!(probe(&mut world, &p, &|_| true), Ok(Outcome::Agreed));
            let p = Probe::new("lambda r: r.cat == 1 and r.note is not None", &[]);
            assert_eq!(probe(&mut world, &p, &|r| r.note.is_some()), Ok(Outcome::Agreed));
            let p = Probe::new("lambda r: r.id in ids", &[("ids", vec![1i64, 2].into())]);
            assert_eq!(probe(&mut world, &p, &|r| r.id <= 2), Ok(Outcome::Agreed));
        }
        // A node too large to cache: 2 000 ids under one value.
        let many: Vec<Row> = (1..=2000).map(row).collect();
        world.load(&many).unwrap_or_else(|e| panic!("{e}"));
        let p = Probe::new("lambda r: r.cat == 1 and r.id > 1990", &[]);
        assert_eq!(probe(&mut world, &p, &|r| r.id > 1990), Ok(Outcome::Agreed));
    }
}

/// A cache shared with the test, so that it can write under memdex's keys.
#[derive(Debug, Clone)]
struct Shared(Arc<dyn CacheBackend>);

impl CacheBackend for Shared {
    fn run(&self, ops: &[CacheOp<'_>]) -> Vec<Result<CacheReply, CacheError>> {
        self.0.run(ops)
    }
    fn max_value_size(&self) -> usize {
        self.0.max_value_size()
    }
    fn describe(&self) -> String {
        self.0.describe()
    }
}

fn set(cache: &dyn CacheBackend, key: &str, value: &[u8]) {
    let r = cache.run(&[CacheOp::Set { key, value, ttl: 600 }]);
    assert!(matches!(r.first(), Some(Ok(CacheReply::Stored))), "set {key}: {r:?}");
}

/// Garbage under memdex's own node and object keys (corrupt, truncated, foreign,
/// over-long): every read still returns exactly the right rows, and the next reads
/// too (the garbage is repaired, not trusted).
#[test]
fn malformed_cached_values() {
    let server = MemcachedServer::start().expect("memcached starts");
    let mc = server.addr();
    let backends: Vec<(&str, Arc<dyn CacheBackend>)> = vec![
        ("in-process", Arc::new(InProcessCache::new(CacheConfig::default()))),
        ("memcached", Arc::new(Memcached::connect(&[mc], CacheConfig::default()).expect("memcached"))),
    ];
    // Malformed nodes (older formats among them), and well-formed ones listing extra
    // or repeated ids at versions no row has, verified or appended. (A well-formed
    // node that omits ids is a lie memdex cannot detect, by design: it trusts a
    // complete node until a write appends or a reader cleans it.)
    let well_formed = |entries: &[(i64, u64)], appended: &[(i64, u64)]| {
        let entries: Vec<(Value, u64)> = entries.iter().map(|&(id, etag)| (Value::Int(id), etag)).collect();
        let mut node = memdex::__private::node_codec::encode_node(&entries, &[]);
        for &(id, etag) in appended {
            node.extend(memdex::__private::node_codec::entry_record(&Value::Int(id), etag));
        }
        node
    };
    let node_garbage: Vec<Vec<u8>> = vec![
        well_formed(&[(1, 7), (1, 7), (3, 7), (3, 8), (5, 9), (999, 1)], &[]),
        well_formed(&[], &[(1, 7), (3, 7), (5, 7), (2, 7), (2, 7), (-5, 3)]),
        well_formed(&[(1, 7)], &[(1, 7), (3, 0), (5, u64::MAX)]),
        b"".to_vec(),
        b"#1\nxyz".to_vec(),
        b"#1\n99999999999999999999999,".to_vec(),
        b"#1\n1,1,1,3,3,5,2,2,".to_vec(),
        b"#1\n1,2,3,4,5,6,7,8,9,999,-5,".to_vec(),
        b"#2\n1,".to_vec(),
        b"#1\n1,\xff\xfe".to_vec(),
        vec![0xff; 300],
        b"1,3,5,".to_vec(),
        b"#1\n1,3,5,".iter().copied().chain(b"7,".repeat(20_000)).collect(),
    ];
    for (name, cache) in backends {
        let dir = tempfile::Builder::new().prefix("memdex-malformed-").tempdir().expect("temp dir");
        let ns = format!("malformed_{name}_{}", std::process::id()).replace('-', "_");
        let store = Store::builder()
            .sqlite(dir.path().join("m.db").to_string_lossy().into_owned())
            .namespace(ns.clone())
            .cache(Box::new(Shared(cache.clone())))
            .build()
            .expect("store");
        store.migrate::<Row>().expect("migrate");
        let rows: Vec<Row> = (1..=6).map(|i| Row { cat: i % 2, qty: i, ..row(i) }).collect();
        for r in &rows {
            store.insert(r).expect("insert");
        }
        let keys = KeySpace::new(&ns, Row::schema(), 0);
        let cat1 = &rows[0];
        let node = keys.node(Row::schema(), &node_of_row(Row::schema(), 0, &|c| cat1.column_value(c)));
        let want: Vec<Row> = rows.iter().filter(|r| r.cat == 1).cloned().collect();
        let read = |what: &str| {
            let got =
                store.recall_text::<Row>("lambda r: r.cat == 1", &[]).unwrap_or_else(|e| panic!("{name}, {what}: {e}"));
            assert_eq!(got, want, "{name}, {what}");
            let got =
                store.recall_text::<Row>("lambda r: r.id == 1", &[]).unwrap_or_else(|e| panic!("{name}, {what}: {e}"));
            assert_eq!(got, vec![rows[0].clone()], "{name}, {what} (key read)");
        };
        read("clean");
        // Row 3 (category 1) is cached once it has been read.
        let _ = store.recall_text::<Row>("lambda r: r.id == 3", &[]);
        for g in &node_garbage {
            set(&*cache, &node, g);
            read(&format!("node garbage {:?}", String::from_utf8_lossy(&g[..g.len().min(40)])));
            read("after node garbage");
        }
        let object = keys.object(&Value::Int(1));
        // Real encoded objects, as memdex itself cached them: another row's, and
        // this row's cut in half.
        let cached =
            |id: i64| match cache.run(&[CacheOp::Get { key: &keys.object(&Value::Int(id)), lease: None }]).pop() {
                Some(Ok(CacheReply::Hit { value, .. })) => value.to_vec(),
                other => panic!("{name}: object {id} should be cached after a read, got {other:?}"),
            };
        let other_row = cached(3);
        let mut truncated = cached(1);
        truncated.truncate(truncated.len() / 2);
        let object_garbage: Vec<(&str, Vec<u8>)> = vec![
            ("empty", vec![]),
            ("random", vec![0xde, 0xad, 0xbe, 0xef, 0x00, 0xff]),
            ("truncated", truncated),
            ("another row's bytes", other_row),
            ("node bytes", b"#1\n1,".to_vec()),
        ];
        for (what, g) in object_garbage {
            set(&*cache, &object, &g);
            read(&format!("object garbage: {what}"));
            read(&format!("after object garbage: {what}"));
        }
    }
}

/// A memcached that answers garbage (through the proxy): every read answers from the
/// database, right, without a panic or a hang.
#[test]
fn memcached_answering_garbage() {
    let server = MemcachedServer::start().expect("memcached starts");
    let upstream: std::net::SocketAddr = server.addr().parse().expect("addr");
    let proxy = FaultProxy::start(upstream).expect("proxy");
    let dir = tempfile::Builder::new().prefix("memdex-garbage-").tempdir().expect("temp dir");
    let config = CacheConfig {
        connect_timeout: std::time::Duration::from_millis(100),
        io_timeout: std::time::Duration::from_millis(100),
        ..CacheConfig::default()
    };
    let store = Store::builder()
        .sqlite(dir.path().join("g.db").to_string_lossy().into_owned())
        .namespace(format!("garbage_{}", std::process::id()))
        .cache(Box::new(Memcached::connect(&[proxy.addr_string()], config).expect("memcached")))
        .build()
        .expect("store");
    store.migrate::<Row>().expect("migrate");
    let rows: Vec<Row> = (1..=5).map(|i| Row { cat: i % 2, ..row(i) }).collect();
    for r in &rows {
        store.insert(r).expect("insert");
    }
    let garbage: Vec<Vec<u8>> = vec![
        b"VA 5 c1\r\nab".to_vec(),
        b"VA 99999999999 c1\r\n".to_vec(),
        b"HD\r\nHD\r\nHD\r\nHD\r\nHD\r\nHD\r\nHD\r\n".to_vec(),
        b"EN\r\n".to_vec(),
        b"VALUE x 0 3\r\nabc\r\nEND\r\n".to_vec(),
        b"ERROR\r\n".to_vec(),
        b"CLIENT_ERROR bad data chunk\r\n".to_vec(),
        b"\r\n\r\n\r\n".to_vec(),
        b"VA 3 c18446744073709551616 t-1\r\n#1\n\r\n".to_vec(),
        (0..=255u8).collect(),
        "é".repeat(5000).into_bytes(),
    ];
    for g in garbage {
        proxy.set_mode(Mode::Garbage(g.clone()));
        proxy.cut_all();
        for cat in 0..2 {
            let got = store
                .recall_text::<Row>("lambda r: r.cat == c", &[("c", cat.into())])
                .unwrap_or_else(|e| panic!("garbage {:?}: {e}", String::from_utf8_lossy(&g)));
            let want: Vec<Row> = rows.iter().filter(|r| r.cat == cat).cloned().collect();
            assert_eq!(got, want, "garbage {:?}", String::from_utf8_lossy(&g));
        }
    }
    proxy.set_mode(Mode::Pass);
    proxy.cut_all();
    // Writes while garbage was answered were recorded in the outbox; once the cache
    // answers sensibly, reads are right.
    let got = store.recall_text::<Row>("lambda r: r.cat == 1", &[]).expect("read");
    assert_eq!(got, rows.iter().filter(|r| r.cat == 1).cloned().collect::<Vec<_>>());
    eprintln!("garbage: proxy {:?}, store {:?}", proxy.stats(), store.stats());
}

// ---------------------------------------------------------------------------
// The parser and planner never panic (the bounded, CI-sized twin of the cargo-fuzz
// target in fuzz/).
// ---------------------------------------------------------------------------

/// Token soup over the differential `Row`'s fields, as the hostile client writes it.
fn lambda_soup() -> impl Strategy<Value = String> {
    Soup::new("r", &COLUMNS).lambda(24, " ")
}

fn prepare_everything(src: &str) {
    let schema = Row::schema();
    let types = |name: &str| match name {
        "p" => memdex::grammar::ParamType::Scalar(memdex::Type::Int),
        "ids" => memdex::grammar::ParamType::List(Some(memdex::Type::Int)),
        _ => memdex::grammar::ParamType::Missing,
    };
    for access in [memdex::grammar::Access::Indexed, memdex::grammar::Access::Scan] {
        match memdex::grammar::prepare_text(schema, src, &types, access, 64) {
            Ok(prepared) => {
                let params: Vec<(String, Value)> =
                    vec![("p".into(), Value::Int(3)), ("ids".into(), Value::List(vec![Value::Int(1), Value::Int(2)]))];
                for d in [memdex::Dialect::Sqlite, memdex::Dialect::Postgres, memdex::Dialect::MySql] {
                    let spec =
                        memdex::grammar::sql::SelectSpec { filter: prepared.filter.as_ref(), ..Default::default() };
                    let _ = memdex::grammar::sql::select(d, schema, spec, &params);
                }
                if let Some(filter) = &prepared.filter {
                    let r = row(1);
                    let _ = memdex::grammar::eval::matches(schema, filter, &|c| r.column_value(c), &params);
                }
                if let Some(plan) = &prepared.plan {
                    for d in &plan.disjuncts {
                        let _ = memdex::grammar::plan::bind(schema, d, &params, 1000);
                    }
                }
            }
            Err(errors) => {
                for e in errors.iter() {
                    assert!(
                        e.span.end as usize <= src.len() && e.span.start <= e.span.end,
                        "span {:?} outside {src:?}",
                        e.span
                    );
                }
                let _ = errors.render(src);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn parser_never_panics_on_any_text(src in "\\PC{0,80}") {
        prepare_everything(&src);
    }

    #[test]
    fn parser_never_panics_on_token_soup(src in lambda_soup()) {
        prepare_everything(&src);
    }

    #[test]
    fn parser_never_panics_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..60)) {
        prepare_everything(&String::from_utf8_lossy(&bytes));
    }
}

/// Deep nesting and long chains are errors, not stack overflows.
#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    for src in [
        format!("lambda r: {}r.cat == 1{}", "(".repeat(10_000), ")".repeat(10_000)),
        format!("lambda r: {}r.flag", "not ".repeat(10_000)),
        format!("lambda r: r.qty == {}", vec!["1"; 10_000].join(" + ")),
        format!("lambda r: {}", vec!["r.cat == 1"; 5_000].join(" or ")),
        format!("lambda r: {}", vec!["(r.cat == 1 or r.cat == 2)"; 40].join(" and ")),
        format!("lambda r: r.cat in ({})", vec!["1"; 50_000].join(", ")),
    ] {
        // Run on a thread with a small stack, as a server's worker would have.
        let handle = std::thread::Builder::new().stack_size(2 * 1024 * 1024).spawn(move || prepare_everything(&src));
        handle.expect("spawn").join().expect("no panic or overflow");
    }
}
