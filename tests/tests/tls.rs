//! TLS against real servers (feature `tls`): memcached started with `-Z` and
//! PostgreSQL with `ssl=on`, each presenting a certificate made by a CA of the
//! test's own. Reads and writes go through both drivers over TLS; the connections
//! are shown to be TLS from the server's side (`pg_stat_ssl`) or by a plaintext
//! client failing (memcached); certificates from an unknown CA or for another name
//! are refused with errors that say so.

#![allow(clippy::panic)] // a test fails by panicking

use std::time::{Duration, Instant};

use memdex::cache::memcached::{AsyncMemcached, Memcached, MemcachedTls};
use memdex::cache::{CacheBackend, CacheConfig, CacheError, CacheOp, CacheReply};
use memdex::db::Database;
use memdex::db::mysql::MySql;
use memdex::db::postgres::Postgres;
use memdex::grammar::sql::SqlQuery;
use memdex::{Error, Model, Store, Type, Value, select};
use memdex_tests::certs::{ServerCert, TestCa};
use memdex_tests::servers::mariadb::MariaDbServer;
use memdex_tests::servers::memcached::{FakeMemcached, MemcachedServer};
use memdex_tests::servers::postgres::PostgresServer;
use serde::{Deserialize, Serialize};

#[derive(Model, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[memdex(table = "secret")]
struct Secret {
    #[memdex(key)]
    id: i64,
    #[memdex(index)]
    owner: String,
}

/// A CA, and a certificate it signed for `localhost` only (not for `127.0.0.1`,
/// so that dialling the address checks a name the certificate lacks).
fn ca_and_cert() -> (TestCa, ServerCert) {
    let ca = TestCa::new("memdex test CA").expect("CA");
    let cert = ca.server_cert(&["localhost"]).expect("server certificate");
    (ca, cert)
}

fn patient() -> CacheConfig {
    CacheConfig {
        connect_timeout: Duration::from_secs(2),
        io_timeout: Duration::from_secs(2),
        ..CacheConfig::default()
    }
}

fn tls_config(ca: &TestCa, name: &str) -> CacheConfig {
    CacheConfig { tls: Some(MemcachedTls::new().ca_file(ca.ca_file()).server_name(name)), ..patient() }
}

fn one(cache: &dyn CacheBackend, op: CacheOp<'_>) -> Result<CacheReply, CacheError> {
    cache.run(&[op]).pop().expect("one result")
}

/// Writes a value and reads it back.
fn round_trip(cache: &dyn CacheBackend) -> Result<(), CacheError> {
    assert_eq!(one(cache, CacheOp::Set { key: "tls:k", value: b"over tls", ttl: 0 })?, CacheReply::Stored);
    match one(cache, CacheOp::Get { key: "tls:k", lease: None })? {
        CacheReply::Hit { value, .. } => assert_eq!(value, &b"over tls"[..]),
        other => panic!("expected the value back, got {other:?}"),
    }
    Ok(())
}

#[test]
fn memcached_over_tls_reads_and_writes_and_plaintext_is_refused() {
    let (ca, cert) = ca_and_cert();
    let server = MemcachedServer::start_tls(&cert).expect("memcached -Z");
    let cache = Memcached::connect(&[server.addr()], tls_config(&ca, "localhost")).expect("client");
    round_trip(&cache).expect("set and get over TLS");
    // Many ops in one batch (one TLS write, pipelined replies), then pooled reuse.
    let keys: Vec<String> = (0..200).map(|i| format!("tls:many:{i}")).collect();
    let sets: Vec<CacheOp<'_>> = keys.iter().map(|key| CacheOp::Set { key, value: key.as_bytes(), ttl: 0 }).collect();
    assert!(cache.run(&sets).iter().all(|r| matches!(r, Ok(CacheReply::Stored))));
    let gets: Vec<CacheOp<'_>> = keys.iter().map(|key| CacheOp::Get { key, lease: None }).collect();
    for (key, reply) in keys.iter().zip(cache.run(&gets)) {
        assert!(matches!(reply, Ok(CacheReply::Hit { ref value, .. }) if value == key.as_bytes()), "{key}: {reply:?}");
    }
    assert_eq!(cache.health().markdowns, 0, "{:?}", cache.health());

    // The port speaks only TLS: a plaintext client gets no meta reply.
    let plain = Memcached::connect(&[server.addr()], patient()).expect("client");
    let outcome = one(&plain, CacheOp::Get { key: "tls:k", lease: None });
    assert!(outcome.is_err(), "a plaintext client read from the TLS port: {outcome:?}");
}

#[test]
fn memcached_tls_refuses_an_unknown_ca_and_a_wrong_name() {
    let (ca, cert) = ca_and_cert();
    let server = MemcachedServer::start_tls(&cert).expect("memcached -Z");
    let stranger = TestCa::new("another CA").expect("CA");
    let refused = |config: CacheConfig, entry: String| {
        let cache = Memcached::connect(&[entry], config).expect("client");
        // Marked down at start (the handshake failed): ops fail at once.
        assert_eq!(cache.health().servers_down, 1, "{:?}", cache.health());
        assert!(matches!(one(&cache, CacheOp::Get { key: "k", lease: None }), Err(CacheError::Down { .. })));
    };
    refused(tls_config(&stranger, "localhost"), server.addr());
    refused(tls_config(&ca, "cache.example.org"), server.addr());
    // Without a CA file the Mozilla roots are trusted, and they do not know the test CA.
    refused(patient(), format!("tls://{}", server.addr()));
    // The same server with the right CA and name answers: the refusals were the
    // certificate checks.
    let cache = Memcached::connect(&[server.addr()], tls_config(&ca, "localhost")).expect("client");
    round_trip(&cache).expect("set and get over TLS");
}

#[tokio::test]
async fn async_memcached_tls_refuses_an_unknown_ca() {
    let (_ca, cert) = ca_and_cert();
    let server = MemcachedServer::start_tls(&cert).expect("memcached -Z");
    let stranger = TestCa::new("another CA").expect("CA");
    let cache = AsyncMemcached::connect(&[server.addr()], tls_config(&stranger, "localhost")).await.expect("client");
    assert_eq!(cache.health().servers_down, 1, "{:?}", cache.health());
    let got = cache.run(&[CacheOp::Get { key: "k", lease: None }]).await;
    assert!(matches!(got.as_slice(), [Err(CacheError::Down { .. })]), "{got:?}");
}

#[tokio::test]
async fn async_memcached_over_tls_reads_and_writes() {
    let (ca, cert) = ca_and_cert();
    let server = MemcachedServer::start_tls(&cert).expect("memcached -Z");
    let cache = AsyncMemcached::connect(&[server.addr()], tls_config(&ca, "localhost")).await.expect("client");
    for round in 0..3 {
        let value = format!("async {round}");
        let stored = cache.run(&[CacheOp::Set { key: "tls:a", value: value.as_bytes(), ttl: 0 }]).await;
        assert!(matches!(stored.as_slice(), [Ok(CacheReply::Stored)]), "{stored:?}");
        let got = cache.run(&[CacheOp::Get { key: "tls:a", lease: None }]).await;
        assert!(matches!(got.as_slice(), [Ok(CacheReply::Hit { value: v, .. })] if v == value.as_bytes()), "{got:?}");
    }
    assert_eq!(cache.health().markdowns, 0, "{:?}", cache.health());
}

#[test]
fn a_tls_handshake_that_hangs_is_a_connect_timeout() {
    let (ca, _cert) = ca_and_cert();
    // Accepts the connection, never answers the ClientHello.
    let silent = FakeMemcached::silent().expect("listener");
    let config = CacheConfig { connect_timeout: Duration::from_millis(300), ..tls_config(&ca, "localhost") };
    let started = Instant::now();
    let cache = Memcached::connect(&[silent.addr()], config).expect("client");
    assert!(started.elapsed() < Duration::from_secs(2), "the handshake was waited for {:?}", started.elapsed());
    assert_eq!(cache.health().servers_down, 1, "{:?}", cache.health());
    assert!(matches!(one(&cache, CacheOp::Get { key: "k", lease: None }), Err(CacheError::Down { .. })));
}

#[test]
fn the_store_runs_over_tls_memcached_and_tls_postgres() {
    let (ca, cert) = ca_and_cert();
    let memcached = MemcachedServer::start_tls(&cert).expect("memcached -Z");
    let postgres = PostgresServer::start_tls(&cert).expect("postgres with ssl=on");
    let url = verify_full_url(&postgres, "tls_blocking", &ca);
    let store = Store::builder()
        .url(&url)
        .memcached([format!("tls://{}", memcached.addr())])
        .memcached_tls(MemcachedTls::new().ca_file(ca.ca_file()).server_name("localhost"))
        .build()
        .expect("store over TLS");
    store.migrate::<Secret>().expect("migrate");
    store.insert(&Secret { id: 1, owner: "ann".into() }).expect("insert");
    store.insert(&Secret { id: 2, owner: "bob".into() }).expect("insert");
    let q = select!(Secret, |s| s.owner == "ann").order_by(Secret::id());
    for _ in 0..2 {
        assert_eq!(q.fetch(&store).expect("fetch"), vec![Secret { id: 1, owner: "ann".into() }]);
    }
    let stats = store.stats();
    assert!(stats.node_hits > 0 && stats.cache_errors == 0, "{stats:?}");
    assert_tls_only(&postgres, "tls_blocking");
}

/// A URL for a new database `dbname`, over TLS checked in full against `ca`.
fn verify_full_url(server: &PostgresServer, dbname: &str, ca: &TestCa) -> String {
    server.create_database(dbname).expect("database");
    let (port, ca_file) = (server.port(), ca.ca_file());
    format!("postgres://postgres@localhost:{port}/{dbname}?sslmode=verify-full&sslrootcert={}", ca_file.display())
}

/// Every client backend connected to `dbname` (but the checking one) uses TLS,
/// and there is at least one.
fn assert_tls_only(server: &PostgresServer, dbname: &str) {
    let checker = Postgres::connect(&format!("{} sslmode=disable", server.connection_string())).expect("checker");
    let q = SqlQuery {
        text: "SELECT s.ssl, count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
               WHERE a.datname = $1 AND a.pid <> pg_backend_pid() AND a.backend_type = 'client backend' \
               GROUP BY s.ssl"
            .into(),
        params: vec![Value::Text(dbname.into())],
    };
    let rows = checker.query(&q, &[Type::Bool, Type::Int]).expect("pg_stat_ssl");
    assert!(matches!(rows.as_slice(), [row] if row[0] == Value::Bool(true)), "backends by ssl: {rows:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_async_store_runs_over_tls_postgres() {
    let (ca, cert) = ca_and_cert();
    let postgres = PostgresServer::start_tls(&cert).expect("postgres with ssl=on");
    let url = verify_full_url(&postgres, "tls_async", &ca);
    let store = Store::builder().url(&url).build_async().await.expect("async store over TLS");
    store.migrate::<Secret>().await.expect("migrate");
    store.insert(&Secret { id: 7, owner: "cy".into() }).await.expect("insert");
    let got = select!(Secret, |s| s.owner == "cy").order_by(Secret::owner()).fetch_async(&store).await.expect("fetch");
    assert_eq!(got, vec![Secret { id: 7, owner: "cy".into() }]);
    tokio::task::spawn_blocking(move || assert_tls_only(&postgres, "tls_async")).await.expect("check");
}

#[test]
fn postgres_sslmodes_mean_what_libpq_says() {
    let (ca, cert) = ca_and_cert();
    let server = PostgresServer::start_tls(&cert).expect("postgres with ssl=on");
    let stranger = TestCa::new("another CA").expect("CA");
    let params = |host: &str, mode: &str, root: Option<&std::path::Path>| {
        let root = root.map(|path| format!(" sslrootcert='{}'", path.display())).unwrap_or_default();
        format!(
            "host={host} port={} user=postgres dbname=postgres connect_timeout=5 sslmode={mode}{root}",
            server.port()
        )
    };
    let ca_file = ca.ca_file();
    // Encrypted without checking; the chain checked for any name; chain and name.
    for ok in [
        params("127.0.0.1", "require", None),
        params("127.0.0.1", "prefer", None),
        params("127.0.0.1", "verify-ca", Some(&ca_file)),
        params("localhost", "verify-full", Some(&ca_file)),
    ] {
        let db = Postgres::connect(&ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        assert_eq!(own_ssl(&db), Value::Bool(true), "{ok}");
    }
    let plain = Postgres::connect(&params("127.0.0.1", "disable", None)).expect("plaintext");
    assert_eq!(own_ssl(&plain), Value::Bool(false));

    for (bad, why) in [
        (params("127.0.0.1", "verify-full", Some(&ca_file)), "not valid for name"),
        (params("localhost", "verify-full", Some(&stranger.ca_file())), "UnknownIssuer"),
        (params("127.0.0.1", "verify-ca", Some(&stranger.ca_file())), "UnknownIssuer"),
        // `require` with a root certificate checks the chain, as in libpq.
        (params("127.0.0.1", "require", Some(&stranger.ca_file())), "UnknownIssuer"),
        // The Mozilla roots do not know the test CA.
        (params("localhost", "verify-full", None), "UnknownIssuer"),
    ] {
        match Postgres::connect(&bad) {
            Err(e) => assert!(format!("{e}").contains(why), "{bad}: {e} should say {why}"),
            Ok(_) => panic!("{bad}: connected"),
        }
    }
}

/// Whether the backend serving `db` sees its own connection as TLS.
fn own_ssl(db: &Postgres) -> Value {
    let q = SqlQuery { text: "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()".into(), params: vec![] };
    let rows = db.query(&q, &[Type::Bool]).expect("pg_stat_ssl");
    rows.into_iter().next().and_then(|row| row.into_iter().next()).expect("one row")
}

#[test]
fn bad_tls_settings_are_configuration_errors() {
    let check = |builder: memdex::StoreBuilder, part: &str| match builder.build() {
        Err(Error::Config(message)) => assert!(message.contains(part), "{message:?} should say {part:?}"),
        other => panic!("expected Error::Config saying {part:?}, got {other:?}"),
    };
    check(Store::builder().url("postgres://u@localhost/db?sslmode=verify-all"), "sslmode `verify-all`");
    check(
        Store::builder().url("postgres://u@localhost/db?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem"),
        "/nonexistent/ca.pem",
    );
    check(
        Store::builder()
            .sqlite_in_memory()
            .memcached(["127.0.0.1:1"])
            .memcached_tls(MemcachedTls::new().ca_file("/nonexistent/ca.pem")),
        "/nonexistent/ca.pem",
    );
    check(
        Store::builder()
            .sqlite_in_memory()
            .memcached(["tls://127.0.0.1:1"])
            .memcached_tls(MemcachedTls::new().server_name("not a name")),
        "not a name",
    );
}

/// MySQL/MariaDB: with `tls` the `mysql` crate's rustls takes the URL's TLS
/// parameters; `root_cert_path` turns TLS on, verified against that CA and the
/// host name.
#[test]
fn mysql_over_tls_with_the_url_s_root_certificate() {
    let (ca, cert) = ca_and_cert();
    let server = MariaDbServer::start_tls(&cert).expect("mariadb with TLS");
    let base = server.create_database("tls_my").expect("database").replace("@127.0.0.1:", "@localhost:");
    let url = |root: &std::path::Path| format!("{base}?prefer_socket=false&root_cert_path={}", root.display());
    let db = MySql::connect(&url(&ca.ca_file())).expect("MySQL over TLS");
    let q = SqlQuery {
        text: "SELECT VARIABLE_VALUE FROM information_schema.SESSION_STATUS WHERE VARIABLE_NAME = 'Ssl_cipher'".into(),
        params: vec![],
    };
    let rows = db.query(&q, &[Type::Text]).expect("session status");
    assert!(
        matches!(rows.as_slice(), [row] if matches!(&row[0], Value::Text(cipher) if !cipher.is_empty())),
        "{rows:?}"
    );
    let plain = MySql::connect(&server.create_database("tls_my_plain").expect("database")).expect("plaintext");
    let rows = plain.query(&q, &[Type::Text]).expect("session status");
    assert!(matches!(rows.as_slice(), [row] if row[0] == Value::Text(String::new())), "{rows:?}");

    let stranger = TestCa::new("another CA").expect("CA");
    match MySql::connect(&url(&stranger.ca_file())) {
        Err(e) => assert!(format!("{e}").contains("UnknownIssuer"), "{e}"),
        Ok(_) => panic!("connected with a certificate from an unknown CA"),
    }
}
