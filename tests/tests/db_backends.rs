//! One suite of checks over `&dyn Database`, run against SQLite in memory, SQLite on
//! a file, PostgreSQL 15 and MariaDB (one server each per test binary, a fresh
//! database per test).
//!
//! SQL is written by hand here with `?` placeholders; [`sql`] renumbers them to `$n`
//! for PostgreSQL. Each backend gets its own hand-written `CREATE TABLE`.

// A test reports failure by panicking, with the backend named in the message.
#![allow(clippy::panic)]

use std::time::{Duration, Instant};

use memdex::grammar;

#[path = "../../grammar/tests/support/extreme.rs"]
mod extreme;

use memdex::db::mysql::{MySql, MySqlOptions};
use memdex::db::postgres::{Postgres, PostgresOptions};
use memdex::db::sqlite::Sqlite;
use memdex::db::{Database, DbError};
use memdex::grammar::sql::SqlQuery;
use memdex::{Dialect, Type, Value};
use memdex_tests::servers::mariadb::MariaDbServer;
use memdex_tests::servers::postgres::PostgresServer;

/// The test table: one column per value type, all nullable.
fn create_table(dialect: Dialect) -> Vec<String> {
    match dialect {
        Dialect::Sqlite => vec!["CREATE TABLE t (id INTEGER PRIMARY KEY, i INTEGER, f REAL, s TEXT, b INTEGER)".into()],
        Dialect::Postgres => {
            vec!["CREATE TABLE t (id BIGINT PRIMARY KEY, i BIGINT, f DOUBLE PRECISION, s TEXT, b BOOLEAN)".into()]
        }
        // The server's default collation ignores case; the hand-written SQL here
        // compares no text, and memdex's own tables name their collation.
        Dialect::MySql => {
            vec!["CREATE TABLE t (id BIGINT PRIMARY KEY, i BIGINT, f DOUBLE, s LONGTEXT, b BOOLEAN)".into()]
        }
    }
}

const ROW: [Type; 5] = [Type::Int, Type::Int, Type::Float, Type::Text, Type::Bool];

/// `text` with `?` placeholders, renumbered to `$1…` for PostgreSQL.
fn sql(db: &dyn Database, text: &str, params: Vec<Value>) -> SqlQuery {
    let text = match db.dialect() {
        Dialect::Postgres => {
            let mut n = 0;
            text.chars()
                .map(|c| {
                    if c == '?' {
                        n += 1;
                        format!("${n}")
                    } else {
                        c.to_string()
                    }
                })
                .collect()
        }
        _ => text.to_owned(),
    };
    SqlQuery { text, params }
}

fn setup(db: &dyn Database) {
    db.execute_ddl(&create_table(db.dialect())).expect("create table");
}

fn insert(db: &dyn Database, row: &[Value]) -> Result<(), DbError> {
    let q = sql(db, "INSERT INTO t (id, i, f, s, b) VALUES (?, ?, ?, ?, ?)", row.to_vec());
    db.transaction(&mut |tx| tx.execute(&q).map(drop))
}

fn select_row(db: &dyn Database, id: i64) -> Result<Vec<Vec<Value>>, DbError> {
    db.query(&sql(db, "SELECT id, i, f, s, b FROM t WHERE id = ?", vec![Value::Int(id)]), &ROW)
}

fn count(db: &dyn Database) -> i64 {
    let rows = db.query(&sql(db, "SELECT COUNT(*) FROM t", vec![]), &[Type::Int]).expect("count");
    rows[0][0].as_i64().expect("count is an integer")
}

/// Floats compare by bits (so -0.0 ≠ 0.0 and NaN = NaN) — a round trip must be exact.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Float(x), Value::Float(y)) => x.to_bits() == y.to_bits(),
        _ => a == b,
    }
}

fn assert_round_trip(db: &dyn Database, row: Vec<Value>) {
    insert(db, &row).unwrap_or_else(|e| panic!("{}: insert {row:?}: {e}", db.describe()));
    let id = row[0].as_i64().expect("id");
    let back = select_row(db, id).unwrap_or_else(|e| panic!("{}: select {row:?}: {e}", db.describe()));
    assert_eq!(back.len(), 1, "{}: one row for id {id}", db.describe());
    let mismatched: Vec<_> = row.iter().zip(&back[0]).filter(|(a, b)| !same(a, b)).collect();
    assert!(mismatched.is_empty(), "{}: round trip changed values (sent, got): {mismatched:?}", db.describe());
}

// ---------------------------------------------------------------- the suite

fn round_trips_every_value(db: &dyn Database) {
    setup(db);
    let ints = [0, 1, -1, i64::MIN, i64::MAX, i64::from(i32::MAX) + 1];
    let floats = [
        0.0,
        1.5,
        -2.25,
        f64::MAX,
        f64::MIN,
        f64::MIN_POSITIVE,
        5e-324, // the smallest subnormal
        f64::INFINITY,
        f64::NEG_INFINITY,
        0.1 + 0.2,
    ];
    // MariaDB has no infinite DOUBLE: storing one is a clean error.
    let floats: Vec<f64> = match db.dialect() {
        Dialect::MySql => {
            for x in [f64::INFINITY, f64::NEG_INFINITY] {
                let result = insert(db, &[Value::Int(-1), Value::Null, Value::Float(x), Value::Null, Value::Null]);
                assert!(
                    matches!(result, Err(DbError::Query { message: ref m, .. }) if m.contains("Out of range")),
                    "{result:?}"
                );
            }
            floats.into_iter().filter(|x| x.is_finite()).collect()
        }
        _ => floats.to_vec(),
    };
    let texts = [
        String::new(),
        "plain".to_owned(),
        "ÀÉÎ ẞ İ — 日本語 🦀 \u{200d}".to_owned(),
        "'; DROP TABLE t; --".to_owned(),
        "\" ' ` \\ % _ ? $1".to_owned(),
        "tab\tnewline\ncr\r".to_owned(),
        "x".repeat(1 << 20),
    ];
    let mut id = 0;
    let mut next = || {
        id += 1;
        Value::Int(id)
    };
    for i in ints {
        assert_round_trip(db, vec![next(), Value::Int(i), Value::Null, Value::Null, Value::Null]);
    }
    for f in floats {
        assert_round_trip(db, vec![next(), Value::Null, Value::Float(f), Value::Null, Value::Null]);
    }
    for s in texts {
        assert_round_trip(db, vec![next(), Value::Null, Value::Null, Value::Text(s), Value::Null]);
    }
    for b in [true, false] {
        assert_round_trip(db, vec![next(), Value::Null, Value::Null, Value::Null, Value::Bool(b)]);
    }
    assert_round_trip(db, vec![next(), Value::Null, Value::Null, Value::Null, Value::Null]);
    assert_round_trip(db, vec![next(), Value::Int(7), Value::Float(7.5), Value::Text("all".into()), Value::Bool(true)]);
    // The injection string was stored as data: the table is still there, with every row.
    assert_eq!(count(db), id);
}

/// SQLite stores a whole REAL as an integer in its record format and so loses the
/// sign of -0.0 (it reads back as 0.0, equal under IEEE comparison), and so does
/// MariaDB's DOUBLE; PostgreSQL keeps it.
fn negative_zero(db: &dyn Database) {
    setup(db);
    insert(db, &[Value::Int(1), Value::Null, Value::Float(-0.0), Value::Null, Value::Null]).expect("insert -0.0");
    let back = select_row(db, 1).expect("select");
    let Value::Float(x) = back[0][2] else { panic!("{}: not a float: {back:?}", db.describe()) };
    assert_eq!(x, 0.0);
    let sign_kept = db.dialect() == Dialect::Postgres;
    assert_eq!(x.is_sign_negative(), sign_kept, "{}: sign of -0.0 after a round trip", db.describe());
}

/// SQLite would store NaN as NULL and MySQL has no NaN, so binding it is an error;
/// PostgreSQL stores NaN.
fn nan(db: &dyn Database) {
    setup(db);
    let result = insert(db, &[Value::Int(1), Value::Null, Value::Float(f64::NAN), Value::Null, Value::Null]);
    match db.dialect() {
        Dialect::Sqlite | Dialect::MySql => {
            assert!(matches!(result, Err(DbError::Query { message: ref m, .. }) if m.contains("NaN")), "{result:?}");
            assert_eq!(count(db), 0);
        }
        _ => {
            result.expect("PostgreSQL stores NaN");
            let back = select_row(db, 1).expect("select");
            assert!(matches!(back[0][2], Value::Float(x) if x.is_nan()), "{back:?}");
        }
    }
}

/// SQLite and MySQL keep an embedded NUL; PostgreSQL TEXT cannot hold one and says
/// so cleanly.
fn nul_in_text(db: &dyn Database) {
    setup(db);
    let text = "a\0b".to_owned();
    match db.dialect() {
        Dialect::Sqlite | Dialect::MySql => {
            assert_round_trip(db, vec![Value::Int(1), Value::Null, Value::Null, text.into(), Value::Null])
        }
        _ => {
            let result = insert(db, &[Value::Int(1), Value::Null, Value::Null, text.into(), Value::Null]);
            assert!(matches!(result, Err(DbError::Query { message: ref m, .. }) if m.contains("0x00")), "{result:?}");
            // The pool is still usable afterwards.
            assert_eq!(count(db), 0);
        }
    }
}

/// An integer bound where a float column is expected is stored as that float; an
/// integral float read as an integer converts, a fractional one is a decode error.
fn numeric_conversions(db: &dyn Database) {
    setup(db);
    insert(db, &[Value::Int(1), Value::Int(3), Value::Int(4), Value::Null, Value::Null]).expect("int into float");
    let rows = db.query(&sql(db, "SELECT i, f FROM t WHERE id = ?", vec![1.into()]), &[Type::Float, Type::Int]);
    assert_eq!(rows.expect("convert"), vec![vec![Value::Float(3.0), Value::Int(4)]]);
    insert(db, &[Value::Int(2), Value::Null, Value::Float(4.5), Value::Null, Value::Null]).expect("insert");
    let rows = db.query(&sql(db, "SELECT f FROM t WHERE id = ?", vec![2.into()]), &[Type::Int]);
    assert!(matches!(rows, Err(DbError::Decode { column: 0, .. })), "{rows:?}");
}

fn decode_errors_are_errors(db: &dyn Database) {
    setup(db);
    insert(db, &[Value::Int(1), Value::Int(5), Value::Float(1.5), "text".into(), Value::Bool(true)]).expect("insert");
    let q = sql(db, "SELECT s FROM t", vec![]);
    let text_as_int = db.query(&q, &[Type::Int]);
    assert!(
        matches!(&text_as_int, Err(DbError::Decode { column: 0, reason }) if reason.contains('s')),
        "{text_as_int:?}"
    );
    assert!(matches!(db.query(&q, &[Type::Bool]), Err(DbError::Decode { column: 0, .. })));
    let int_as_text = db.query(&sql(db, "SELECT id, i FROM t", vec![]), &[Type::Int, Type::Text]);
    assert!(matches!(int_as_text, Err(DbError::Decode { column: 1, .. })), "{int_as_text:?}");
    let too_few_types = db.query(&sql(db, "SELECT id, i FROM t", vec![]), &[Type::Int]);
    assert!(matches!(too_few_types, Err(DbError::Decode { .. })), "{too_few_types:?}");
    // 5 is neither 0 nor 1 (SQLite) / not a boolean column (PostgreSQL).
    let int_as_bool = db.query(&sql(db, "SELECT i FROM t", vec![]), &[Type::Bool]);
    assert!(matches!(int_as_bool, Err(DbError::Decode { column: 0, .. })), "{int_as_bool:?}");
    // NULL decodes as Null whatever type was asked for.
    let null = db.query(&sql(db, "SELECT NULL", vec![]), &[Type::Int]);
    assert!(matches!(null, Ok(ref rows) if rows == &vec![vec![Value::Null]]), "{null:?}");
}

fn bad_statements_are_errors(db: &dyn Database) {
    setup(db);
    assert!(matches!(db.query(&sql(db, "SELEC 1", vec![]), &[Type::Int]), Err(DbError::Query { .. })));
    assert!(matches!(db.execute_ddl(&["CREATE TABLE t (x INTEGER)".into()]), Err(DbError::Query { .. })));
    let list = sql(db, "SELECT id FROM t WHERE id = ?", vec![Value::List(vec![1.into()])]);
    assert!(matches!(db.query(&list, &[Type::Int]), Err(DbError::Query { message: ref m, .. }) if m.contains("list")));
    let missing = sql(db, "SELECT id FROM t WHERE id = ? AND i = ?", vec![1.into()]);
    assert!(matches!(db.query(&missing, &[Type::Int]), Err(DbError::Query { .. })));
    // Still usable after all those failures.
    assert_eq!(count(db), 0);
}

fn transactions_commit_and_roll_back(db: &dyn Database) {
    setup(db);
    let row = |id: i64| vec![Value::Int(id), Value::Int(id), Value::Null, Value::Null, Value::Null];
    let insert_q = |id| sql(db, "INSERT INTO t (id, i, f, s, b) VALUES (?, ?, ?, ?, ?)", row(id));

    // Commit: both rows, and the transaction sees its own writes.
    let mut seen = 0;
    db.transaction(&mut |tx| {
        assert_eq!(tx.execute(&insert_q(1))?, 1);
        assert_eq!(tx.execute(&insert_q(2))?, 1);
        seen = tx.query(&sql(db, "SELECT COUNT(*) FROM t", vec![]), &[Type::Int])?[0][0].as_i64().unwrap_or(-1);
        Ok(())
    })
    .expect("commit");
    assert_eq!(seen, 2);
    assert_eq!(count(db), 2);

    // An Err from the closure rolls everything back and is returned.
    let result = db.transaction(&mut |tx| {
        tx.execute(&insert_q(3))?;
        Err(DbError::query("caller gave up"))
    });
    assert!(matches!(result, Err(DbError::Query { message: ref m, .. }) if m == "caller gave up"), "{result:?}");
    assert_eq!(count(db), 2);

    // A failing statement (duplicate key) inside the transaction rolls back too,
    // and says what failed in a type, not only in words.
    let result = db.transaction(&mut |tx| {
        tx.execute(&insert_q(4))?;
        tx.execute(&insert_q(1))?;
        Ok(())
    });
    assert!(matches!(result, Err(DbError::UniqueViolation { .. })), "{result:?}");
    assert!(result.as_ref().is_err_and(|e| std::error::Error::source(e).is_some()), "the driver's error is kept");
    assert_eq!(count(db), 2);

    // Rows changed are counted.
    let mut changed = 0;
    db.transaction(&mut |tx| {
        changed = tx.execute(&sql(db, "UPDATE t SET i = i + 10", vec![]))?;
        Ok(())
    })
    .expect("update");
    assert_eq!(changed, 2);
    let rows = db.query(&sql(db, "SELECT i FROM t ORDER BY id", vec![]), &[Type::Int]).expect("select");
    assert_eq!(rows, vec![vec![Value::Int(11)], vec![Value::Int(12)]]);
}

/// 4 threads, each writing 50 rows in transactions (read-modify-write of a counter
/// row included) while reading; no errors, nothing lost.
fn concurrent_readers_and_writers(db: &dyn Database) {
    setup(db);
    insert(db, &[Value::Int(0), Value::Int(0), Value::Null, Value::Null, Value::Null]).expect("counter row");
    const THREADS: i64 = 4;
    const PER_THREAD: i64 = 50;
    std::thread::scope(|scope| {
        for thread in 0..THREADS {
            scope.spawn(move || {
                for k in 0..PER_THREAD {
                    let id = 1 + thread * PER_THREAD + k;
                    let row =
                        vec![Value::Int(id), Value::Int(thread), Value::Float(k as f64), Value::Null, Value::Null];
                    db.transaction(&mut |tx| {
                        tx.execute(&sql(db, "INSERT INTO t (id, i, f, s, b) VALUES (?, ?, ?, ?, ?)", row.clone()))?;
                        let current = tx.query(&sql(db, "SELECT i FROM t WHERE id = 0", vec![]), &[Type::Int])?;
                        let next = current[0][0].as_i64().unwrap_or(0) + 1;
                        tx.execute(&sql(db, "UPDATE t SET i = ? WHERE id = 0", vec![next.into()]))?;
                        Ok(())
                    })
                    .unwrap_or_else(|e| panic!("{}: writer {thread}: {e}", db.describe()));
                    let mine = db
                        .query(
                            &sql(db, "SELECT COUNT(*) FROM t WHERE i = ? AND id > 0", vec![thread.into()]),
                            &[Type::Int],
                        )
                        .unwrap_or_else(|e| panic!("{}: reader {thread}: {e}", db.describe()));
                    assert_eq!(mine, vec![vec![Value::Int(k + 1)]], "thread {thread} sees its own commits");
                }
            });
        }
    });
    assert_eq!(count(db), 1 + THREADS * PER_THREAD);
    let counter = select_row(db, 0).expect("counter");
    // Read-modify-write under the transaction's lock: no lost update.
    let lost_updates_prevented = match db.dialect() {
        // SQLite's BEGIN IMMEDIATE serialises writers.
        Dialect::Sqlite => true,
        // PostgreSQL READ COMMITTED lets two transactions read the same counter value.
        _ => false,
    };
    if lost_updates_prevented {
        assert_eq!(counter[0][1], Value::Int(THREADS * PER_THREAD));
    }
}

// ---------------------------------------------------------------- SQLite only

fn check_lower(db: &dyn Database, input: Value) {
    let expect = match &input {
        Value::Text(s) => Value::Text(s.to_lowercase()),
        _ => Value::Null,
    };
    let rows = db.query(&sql(db, "SELECT memdex_lower(?)", vec![input.clone()]), &[Type::Text]);
    assert_eq!(rows.expect("memdex_lower"), vec![vec![expect]], "memdex_lower({input:?})");
}

#[test]
fn sqlite_memdex_lower_is_rusts_to_lowercase() {
    for backend in [Backend::memory(), Backend::file()] {
        let db = &*backend.db;
        for input in ["ÀÉÎ", "ẞ", "İ", "ΣΑΣ", "Straße", "ǅ", "ABC xyz 123", "", "日本"] {
            check_lower(db, input.into());
        }
        check_lower(db, Value::Null);
        // Usable in an index-friendly comparison, and it is not SQLite's ASCII-only LOWER.
        let ascii_only = db.query(&sql(db, "SELECT lower('ÀÉÎ')", vec![]), &[Type::Text]).expect("lower");
        assert_eq!(ascii_only, vec![vec![Value::Text("ÀÉÎ".into())]]);
        let not_text = db.query(&sql(db, "SELECT memdex_lower(5)", vec![]), &[Type::Text]);
        assert!(matches!(not_text, Err(DbError::Query { .. })), "{not_text:?}");
    }
}

#[test]
fn sqlite_file_is_shared_between_handles_and_reopens() {
    let dir = scratch_dir();
    let path = dir.path().join("shared.db");
    {
        let first = Sqlite::open(&path).expect("open");
        setup(&first);
        insert(&first, &[Value::Int(1), Value::Int(1), Value::Null, "kept".into(), Value::Null]).expect("insert");
        let second = Sqlite::open(&path).expect("second handle");
        assert_eq!(count(&second), 1);
    }
    let reopened = Sqlite::open(&path).expect("reopen");
    let rows = select_row(&reopened, 1).expect("select");
    assert_eq!(rows[0][3], Value::Text("kept".into()));
    let journal = reopened.query(&sql(&reopened, "PRAGMA journal_mode", vec![]), &[Type::Text]).expect("pragma");
    assert_eq!(journal, vec![vec![Value::Text("wal".into())]]);
}

#[test]
fn sqlite_open_in_a_missing_directory_is_a_connect_error() {
    let dir = scratch_dir();
    let result = Sqlite::open(dir.path().join("no/such/dir/x.db"));
    assert!(matches!(result, Err(DbError::Connect { .. })), "{result:?}");
}

// ---------------------------------------------------------------- PostgreSQL only

#[test]
fn postgres_dead_server_is_an_error_not_a_hang() {
    let mut server = PostgresServer::start().expect("start PostgreSQL");
    // The test servers' parameters set `connect_timeout=5`, which wins over the
    // option; a dead server costs each call one connect timeout (an empty pool waits
    // that long for a client), so the parameters are pinned to the 2 s the bound
    // below assumes.
    let connection_string = server.connection_string().replace("connect_timeout=5", "connect_timeout=2");
    assert!(connection_string.contains("connect_timeout=2"), "{connection_string}");
    let options = PostgresOptions::default();
    let db = Postgres::connect_with(&connection_string, options.clone()).expect("connect");
    dead_server_fails_fast(&db, || server.stop(), || Postgres::connect_with(&connection_string, options).map(drop));
}

/// `db` works; once `stop` has stopped its server, a read, a transaction and a new
/// connection (`reconnect`) each fail with an error, all within 10 s.
fn dead_server_fails_fast(db: &dyn Database, stop: impl FnOnce(), reconnect: impl FnOnce() -> Result<(), DbError>) {
    assert_eq!(db.query(&sql(db, "SELECT 1", vec![]), &[Type::Int]).expect("alive"), vec![vec![Value::Int(1)]]);
    stop();
    let started = Instant::now();
    let result = db.query(&sql(db, "SELECT 1", vec![]), &[Type::Int]);
    assert!(matches!(result, Err(DbError::Connect { .. })), "{result:?}");
    let result = db.transaction(&mut |_| Ok(()));
    assert!(result.is_err(), "{result:?}");
    let result = reconnect();
    assert!(matches!(result, Err(DbError::Connect { .. })), "{result:?}");
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
}

#[test]
fn postgres_statement_timeout_cancels_slow_queries() {
    let server = PostgresServer::shared().expect("PostgreSQL");
    let params = server.fresh_database().expect("database");
    let mut options = PostgresOptions::default();
    options.statement_timeout = Duration::from_millis(200);
    let db = Postgres::connect_with(&params, options).expect("connect");
    let started = Instant::now();
    let result = db.query(&sql(&db, "SELECT 1 FROM pg_sleep(5)", vec![]), &[Type::Int]);
    assert!(matches!(result, Err(DbError::Query { code: Some(ref c), .. }) if c == "57014"), "{result:?}");
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
    assert_eq!(db.query(&sql(&db, "SELECT 1", vec![]), &[Type::Int]).expect("still usable"), vec![vec![Value::Int(1)]]);
}

#[test]
fn postgres_numeric_aggregates_decode() {
    let backend = Backend::postgres();
    let db = &*backend.db;
    setup(db);
    for id in 1..=4 {
        insert(db, &[Value::Int(id), Value::Int(id * 1_000_000_000_000), Value::Null, Value::Null, Value::Null])
            .expect("insert");
    }
    // SUM and AVG over BIGINT return NUMERIC.
    let q = sql(db, "SELECT SUM(i), AVG(i), SUM(i) FROM t", vec![]);
    let rows = db.query(&q, &[Type::Int, Type::Float, Type::Float]).expect("aggregates");
    assert_eq!(rows, vec![vec![Value::Int(10_000_000_000_000), Value::Float(2.5e12), Value::Float(1e13)]]);
    let q = sql(db, "SELECT -1.25::numeric, 0::numeric, 'NaN'::numeric", vec![]);
    let rows = db.query(&q, &[Type::Float, Type::Int, Type::Float]).expect("numeric literals");
    assert!(matches!(rows[0][..], [Value::Float(a), Value::Int(0), Value::Float(c)] if a == -1.25 && c.is_nan()));
    let fractional = db.query(&sql(db, "SELECT 2.5::numeric", vec![]), &[Type::Int]);
    assert!(matches!(fractional, Err(DbError::Decode { column: 0, .. })), "{fractional:?}");
}

// ---------------------------------------------------------------- MariaDB only

#[test]
fn mysql_dead_server_is_an_error_not_a_hang() {
    let mut server = MariaDbServer::start().expect("start MariaDB");
    let url = server.fresh_database().expect("database");
    let options = MySqlOptions {
        connect_timeout: Duration::from_secs(2),
        pool_wait: Duration::from_secs(2),
        ..MySqlOptions::default()
    };
    let db = MySql::connect_with(&url, options.clone()).expect("connect");
    dead_server_fails_fast(&db, || server.stop(), || MySql::connect_with(&url, options).map(drop));
}

#[test]
fn mysql_statement_timeout_cancels_slow_queries() {
    let url = MariaDbServer::shared().expect("MariaDB").fresh_database().expect("database");
    let options = MySqlOptions { statement_timeout: Duration::from_millis(200), ..MySqlOptions::default() };
    let db = MySql::connect_with(&url, options).expect("connect");
    let started = Instant::now();
    // A statement that runs for seconds: a large cross join, counted.
    let slow = "SELECT COUNT(*) FROM information_schema.collations a, information_schema.collations b, \
                information_schema.collations c, information_schema.collations d";
    let result = db.query(&sql(&db, slow, vec![]), &[Type::Int]);
    assert!(
        matches!(result, Err(DbError::Query { message: ref m, .. }) if m.contains("max_statement_time")),
        "{result:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
    assert_eq!(db.query(&sql(&db, "SELECT 1", vec![]), &[Type::Int]).expect("still usable"), vec![vec![Value::Int(1)]]);
}

/// `to_lowercase` in the emitted MySQL SQL is Rust's, also where `LOWER`'s simple
/// mapping is not (`İ` → `i̇`, a final `Σ` → `ς`, `ẞ` → `ß`): for each input, the
/// row is found by its Rust lowercase, and by nothing else that was tried.
#[test]
fn mysql_lower_is_rusts_to_lowercase() {
    let url = MariaDbServer::shared().expect("MariaDB").fresh_database().expect("database");
    let db = MySql::connect(&url).expect("connect");
    let schema =
        memdex::Schema::new("Word", "word").column("id", Type::Int, false).column("s", Type::Text, false).key("id");
    db.execute_ddl(&grammar::sql::create_table(Dialect::MySql, &schema)).expect("create table");
    let inputs = [
        "ÀÉÎ",
        "ẞ",
        "İ",
        "İstanbul",
        "ΣΑΣ",
        "ΌΣΟΣ ΣΑΣ.",
        "aΣ",
        "aΣ b",
        "ΣΣ",
        "aΣ\u{301}",
        "A'Σ",
        "Σ",
        "Straße",
        "ǅ",
        "ABC xyz 123",
        "",
        "日本",
        "ΑΣ\u{301}Β",
    ];
    for (id, input) in inputs.iter().enumerate() {
        let row = [Value::Int(id as i64), Value::Text((*input).to_owned())];
        db.transaction(&mut |tx| tx.execute(&grammar::sql::insert(Dialect::MySql, &schema, &row)).map(drop))
            .expect("insert");
    }
    let text = "lambda r: r.s.lower() == w";
    let prepared =
        grammar::prepare_text(&schema, text, &|_| grammar::ParamType::Scalar(Type::Text), grammar::Access::Scan, 64)
            .unwrap_or_else(|e| panic!("{}", e.render(text)));
    for (id, input) in inputs.iter().enumerate() {
        let params = vec![("w".to_owned(), Value::Text(input.to_lowercase()))];
        let spec = grammar::sql::SelectSpec { filter: prepared.filter.as_ref(), ..Default::default() };
        let q = grammar::sql::select(Dialect::MySql, &schema, spec, &params).expect("emit");
        let rows = db.query(&q, &[Type::Int, Type::Text]).unwrap_or_else(|e| panic!("{input:?}: {e}\n{}", q.text));
        let ids: Vec<i64> = rows.iter().filter_map(|r| r[0].as_i64()).collect();
        let want: Vec<i64> = inputs
            .iter()
            .enumerate()
            .filter(|(_, other)| other.to_lowercase() == input.to_lowercase())
            .map(|(i, _)| i as i64)
            .collect();
        assert_eq!(ids, want, "lower({input:?}) should be {:?}", input.to_lowercase());
        assert!(want.contains(&(id as i64)));
    }
}

#[test]
fn mysql_bad_url_and_password_are_connect_errors() {
    let server = MariaDbServer::shared().expect("MariaDB");
    let url = server.url_for("mysql");
    let wrong = url.replacen(":pw", ":wrong", 1);
    assert_ne!(wrong, url, "the URL holds the password");
    assert!(matches!(MySql::connect(&wrong), Err(DbError::Connect { message: ref m, .. }) if m.contains("1045")));
    assert!(matches!(MySql::connect("postgres://x"), Err(DbError::Connect { .. })));
}

/// The SQL memdex emits for arithmetic at the extremes (integer overflow, division
/// by zero, `i64::MIN / -1`, float overflow, underflow, subnormals, ±inf, -0.0; see
/// `grammar/tests/support/extreme.rs`) returns exactly the rows `eval` accepts, and
/// never a database error (PostgreSQL raises them for bigint overflow, float
/// overflow and underflow, and division by zero, also while planning a constant).
fn arithmetic_at_the_extremes_matches_eval(db: &dyn Database) {
    let schema = extreme::schema();
    db.execute_ddl(&grammar::sql::create_table(db.dialect(), &schema)).expect("create table");
    // MariaDB cannot store ±inf: its table holds the other rows (literal and bound
    // infinities in the filters stay).
    let rows = if db.dialect() == Dialect::MySql { extreme::finite_rows() } else { extreme::rows() };
    db.transaction(&mut |tx| {
        for row in &rows {
            tx.execute(&grammar::sql::insert(db.dialect(), &schema, row))?;
        }
        Ok(())
    })
    .expect("insert rows");
    let cases = extreme::cases();
    let mut failures = Vec::new();
    for case in &cases {
        let spec = grammar::sql::SelectSpec { filter: Some(&case.filter), ..Default::default() };
        let q = grammar::sql::select(db.dialect(), &schema, spec, &case.params).expect("emit");
        let types: Vec<Type> = schema.columns.iter().map(|c| c.ty).collect();
        let mut got: Vec<i64> = match db.query(&q, &types) {
            Ok(rows) => rows.iter().filter_map(|r| r[0].as_i64()).collect(),
            Err(e) => {
                failures.push(format!("{}: {e}\n  {}", case.label, q.text));
                continue;
            }
        };
        got.sort_unstable();
        let want = extreme::expected_in(case, &rows);
        if got != want {
            let missing: Vec<_> = want.iter().filter(|id| !got.contains(id)).collect();
            let extra: Vec<_> = got.iter().filter(|id| !want.contains(id)).collect();
            failures.push(format!("{}: missing ids {missing:?}, extra ids {extra:?}\n  {}", case.label, q.text));
        }
    }
    assert!(
        failures.is_empty(),
        "{}: {} of {} cases disagree with eval:\n{}",
        db.describe(),
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

// ---------------------------------------------------------------- backends

/// A database for one test plus whatever must outlive it (a temporary directory).
struct Backend {
    db: Box<dyn Database>,
    _dir: Option<tempfile::TempDir>,
}

impl Backend {
    fn memory() -> Backend {
        Backend { db: Box::new(Sqlite::in_memory().expect("in-memory SQLite")), _dir: None }
    }

    fn file() -> Backend {
        let dir = scratch_dir();
        let db = Sqlite::open(dir.path().join("test.db")).expect("SQLite file");
        Backend { db: Box::new(db), _dir: Some(dir) }
    }

    fn postgres() -> Backend {
        let server = PostgresServer::shared().expect("PostgreSQL");
        let params = server.fresh_database().expect("database");
        Backend { db: Box::new(Postgres::connect(&params).expect("connect")), _dir: None }
    }

    fn mysql() -> Backend {
        let url = MariaDbServer::shared().expect("MariaDB").fresh_database().expect("database");
        Backend { db: Box::new(MySql::connect(&url).expect("connect")), _dir: None }
    }
}

/// Runs every suite function on every backend, one `#[test]` each.
macro_rules! suite {
    ($($case:ident),* $(,)?) => {
        mod sqlite_memory {
            $( #[test] fn $case() { super::$case(&*super::Backend::memory().db) } )*
        }
        mod sqlite_file {
            $( #[test] fn $case() { let backend = super::Backend::file(); super::$case(&*backend.db) } )*
        }
        mod postgres {
            $( #[test] fn $case() { let backend = super::Backend::postgres(); super::$case(&*backend.db) } )*
        }
        mod mysql {
            $( #[test] fn $case() { let backend = super::Backend::mysql(); super::$case(&*backend.db) } )*
        }
    };
}

/// A long `in` list is bound as ONE parameter (`col IN (SELECT "value" FROM
/// json_each(?))` on SQLite, where memdex binds a JSON array; `col = ANY($1)` on
/// PostgreSQL, an array): every value comes back exactly as the row holds it, and a
/// list without a value does not select its row.
fn lists_bind_as_one_parameter(db: &dyn Database) {
    setup(db);
    if db.dialect() == Dialect::MySql {
        // A list bound anywhere but in `JSON_TABLE(?, …)` is refused rather than
        // compared as its JSON text.
        let q = sql(db, "SELECT id FROM t WHERE i IN (?)", vec![Value::List(vec![Value::Int(1)])]);
        let result = db.query(&q, &[Type::Int]);
        assert!(matches!(result, Err(DbError::Query { message: ref m, .. }) if m.contains("list")), "{result:?}");
    }
    let ints = [i64::MIN, i64::MAX, 0, -1, 1 << 53, (1 << 53) + 1];
    let floats = [
        0.1,
        1e300,
        5e-324,
        -2.5,
        f64::MAX,
        f64::MIN_POSITIVE,
        f64::INFINITY,
        f64::NEG_INFINITY,
        1.0 / 3.0,
        123_456_789.123_456_79,
        -1.7976931348623157e308,
        // The largest subnormal, a classic hard case for decimal parsers.
        f64::from_bits(0x000F_FFFF_FFFF_FFFF),
    ];
    // MariaDB stores no infinity: its rows hold the finite values (a list holding
    // an infinity is checked below to match nothing, without an error).
    let floats: Vec<f64> = floats.into_iter().filter(|x| x.is_finite() || db.dialect() != Dialect::MySql).collect();
    let mut texts: Vec<String> =
        ["", "a\"b", "back\\slash", "ctl\u{1}\n\t\u{1f}", "ünïcödé 😀", "%_!", "[1,2]", "null"]
            .iter()
            .map(|t| (*t).to_owned())
            .collect();
    if db.dialect() == Dialect::Sqlite {
        texts.push("nul\0in".into());
    }
    let rows = ints.len().max(floats.len()).max(texts.len());
    for id in 0..rows {
        let row = vec![
            Value::Int(id as i64),
            ints.get(id).map_or(Value::Null, |i| Value::Int(*i)),
            floats.get(id).map_or(Value::Null, |x| Value::Float(*x)),
            texts.get(id).map_or(Value::Null, |t| Value::Text(t.clone())),
            Value::Null,
        ];
        insert(db, &row).unwrap_or_else(|e| panic!("{:?}: insert {row:?}: {e}", db.dialect()));
    }
    let lists: [(&str, Vec<Value>); 3] = [
        ("i", ints.iter().map(|i| Value::Int(*i)).collect()),
        ("f", floats.iter().map(|x| Value::Float(*x)).collect()),
        ("s", texts.iter().map(|t| Value::Text(t.clone())).collect()),
    ];
    for (column, values) in lists {
        let text = match db.dialect() {
            Dialect::Sqlite => {
                format!("SELECT id FROM t WHERE {column} IN (SELECT \"value\" FROM json_each(?)) ORDER BY id")
            }
            // What the MySQL dialect emits: the list as a JSON array, read as a
            // table of the column's type; text compared byte-wise.
            Dialect::MySql => {
                let (ty, value) = match column {
                    "i" => ("BIGINT", "v"),
                    "f" => ("DOUBLE", "v"),
                    _ => ("LONGTEXT", "v COLLATE utf8mb4_nopad_bin"),
                };
                format!(
                    "SELECT id FROM t WHERE {column} IN (SELECT {value} FROM JSON_TABLE(?, '$[*]' COLUMNS(v {ty} PATH \
                     '$')) AS l) ORDER BY id"
                )
            }
            Dialect::Postgres => format!("SELECT id FROM t WHERE {column} = ANY(?) ORDER BY id"),
        };
        let ids = |values: Vec<Value>| -> Vec<i64> {
            let rows = db
                .query(&sql(db, &text, vec![Value::List(values)]), &[Type::Int])
                .unwrap_or_else(|e| panic!("{:?}: {text}: {e}", db.dialect()));
            rows.iter().filter_map(|r| r[0].as_i64()).collect()
        };
        let all: Vec<i64> = (0..values.len() as i64).collect();
        assert_eq!(ids(values.clone()), all, "{:?}: column {column}", db.dialect());
        if column == "f" && db.dialect() == Dialect::MySql {
            let with_infinities = [values.clone(), vec![Value::Float(f64::INFINITY), Value::Float(f64::NEG_INFINITY)]];
            assert_eq!(ids(with_infinities.concat()), all, "MySQL: ±inf in a list match nothing");
        }
        for skip in 0..values.len() {
            let mut fewer = values.clone();
            fewer.remove(skip);
            let want: Vec<i64> = all.iter().copied().filter(|&i| i != skip as i64).collect();
            assert_eq!(ids(fewer), want, "{:?}: column {column} without {:?}", db.dialect(), values[skip]);
        }
    }
}

suite!(
    lists_bind_as_one_parameter,
    round_trips_every_value,
    negative_zero,
    nan,
    nul_in_text,
    numeric_conversions,
    decode_errors_are_errors,
    bad_statements_are_errors,
    transactions_commit_and_roll_back,
    concurrent_readers_and_writers,
    arithmetic_at_the_extremes_matches_eval,
);

// ------------------------------------------------- memdex's own index lookups

/// A model's schema with one index of every kind memdex builds: plain, prefix,
/// optional text, composite with text.
fn lookup_schema() -> memdex::Schema {
    memdex::Schema::new("Doc", "doc")
        .column("id", Type::Int, false)
        .column("cat", Type::Int, false)
        .column("title", Type::Text, false)
        .column("tag", Type::Text, true)
        .column("cart", Type::Int, false)
        .column("status", Type::Text, false)
        .key("id")
        .index(&["cat"], None)
        .index(&["title"], Some(3))
        .index(&["tag"], None)
        .index(&["cart", "status"], None)
}

/// Every statement memdex looks rows up with: node fills (one node, several
/// nodes of several indexes in one snapshot, a prefix node with a full and a short
/// value, the `None` node of an optional column) and key lookups; named for messages.
fn lookups(d: Dialect, schema: &memdex::Schema) -> Vec<(&'static str, SqlQuery)> {
    use memdex::grammar::sql::{node_rows, rows_by_keys};
    let text = |s: &str| Value::Text(s.into());
    // Over 100 values of one index column: the list is bound as ONE parameter.
    let cats: Vec<[Value; 1]> = (0..300).map(|c| [Value::Int(c * 7)]).collect();
    let wide: Vec<(usize, &[Value])> = cats.iter().map(|v| (0, &v[..])).collect();
    vec![
        ("int node", node_rows(d, schema, &[(0, &[Value::Int(3)])])),
        ("prefix node", node_rows(d, schema, &[(1, &[text("abc")])])),
        ("short prefix node", node_rows(d, schema, &[(1, &[text("ab")])])),
        ("text node", node_rows(d, schema, &[(2, &[text("x")])])),
        ("None node", node_rows(d, schema, &[(2, &[Value::Null])])),
        ("composite node", node_rows(d, schema, &[(3, &[Value::Int(1), text("open")])])),
        (
            "snapshot of several nodes",
            node_rows(
                d,
                schema,
                &[
                    (0, &[Value::Int(3)]),
                    (1, &[text("abc")]),
                    (2, &[text("x")]),
                    (2, &[Value::Null]),
                    (3, &[Value::Int(1), text("open")]),
                ],
            ),
        ),
        ("key lookup", rows_by_keys(d, schema, &[Value::Int(1), Value::Int(2)])),
        (
            "snapshot of 300 nodes, one bound list",
            memdex::grammar::sql::node_rows_by_lists(d, schema, &wide).expect("emit"),
        ),
    ]
}

/// `EXPLAIN` of every lookup memdex issues shows an index: none is a full scan, on
/// the DDL `migrate` runs (SQLite: `SCAN`; PostgreSQL with sequential scans
/// disabled, so that any usable index is taken: `Seq Scan`).
#[test]
fn memdex_lookups_are_index_lookups() {
    let schema = lookup_schema();
    let server = PostgresServer::shared().expect("PostgreSQL");
    let params = server.fresh_database().expect("database");
    let pg = Postgres::connect(&format!("{params} options='-c enable_seqscan=off'")).expect("connect");
    let sqlite = Sqlite::in_memory().expect("SQLite");
    let mysql = MySql::connect(&MariaDbServer::shared().expect("MariaDB").fresh_database().expect("database"))
        .expect("connect");
    fill_lookup_table(&mysql, &schema);
    for db in [&sqlite as &dyn Database, &pg, &mysql] {
        let d = db.dialect();
        db.execute_ddl(&memdex::grammar::sql::create_table(d, &schema)).expect("migrate");
        for (what, q) in lookups(d, &schema) {
            let (explain, types, full_scan) = match d {
                Dialect::Sqlite => (
                    format!("EXPLAIN QUERY PLAN {}", q.text),
                    vec![Type::Int, Type::Int, Type::Int, Type::Text],
                    &["SCAN"][..],
                ),
                // One JSON document; a table read in full has the access type `ALL`
                // (every row) or `index` (every entry of an index).
                Dialect::MySql => (format!("EXPLAIN FORMAT=JSON {}", q.text), vec![Type::Text], &["ALL", "index"][..]),
                Dialect::Postgres => (format!("EXPLAIN {}", q.text), vec![Type::Text], &["Seq Scan"][..]),
            };
            let rows = db.query(&SqlQuery { text: explain, params: q.params.clone() }, &types).expect("explain");
            let plan: Vec<String> =
                rows.iter().filter_map(|r| r.last().and_then(|v| v.as_str()).map(str::to_owned)).collect();
            // A full read of memdex's table, not of the bound list (SQLite's
            // `json_each`, MySQL's `JSON_TABLE`), which is read whole by design.
            let scans = |line: &String| match d {
                Dialect::MySql => mysql_access_types(line)
                    .iter()
                    .any(|(table, access)| table == &schema.table && full_scan.contains(&access.as_str())),
                _ => full_scan.iter().any(|scan| line.trim_start().starts_with(scan) && !line.contains("json_each")),
            };
            if d == Dialect::MySql {
                let tables: Vec<(String, String)> = plan.iter().flat_map(|p| mysql_access_types(p)).collect();
                assert!(tables.iter().any(|(t, _)| t == &schema.table), "{what}: no table in\n{}", plan.join("\n"));
                eprintln!("MySQL, {what}: {tables:?}");
            }
            assert!(
                !plan.is_empty() && !plan.iter().any(scans),
                "{d:?}, {what}: not an index lookup\n{}\n{}",
                q.text,
                plan.join("\n")
            );
        }
    }
}

/// `(table, access type)` of every table in MariaDB's `EXPLAIN FORMAT=JSON`
/// document (`"table_name": "doc", "access_type": "ref"`).
fn mysql_access_types(json: &str) -> Vec<(String, String)> {
    let field = |text: &str, name: &str| -> Option<String> {
        let start = text.find(&format!("\"{name}\": \""))? + name.len() + 5;
        text[start..].split('"').next().map(str::to_owned)
    };
    json.split("\"table_name\"")
        .skip(1)
        .filter_map(|part| {
            let part = format!("\"table_name\"{part}");
            Some((field(&part, "table_name")?, field(&part, "access_type")?))
        })
        .collect()
}

/// MariaDB's optimiser reads a small table in full rather than through an index,
/// as it should; with a few thousand distinct rows (and fresh statistics) an index
/// is what a lookup of one node takes, and what the test can then demand.
fn fill_lookup_table(db: &dyn Database, schema: &memdex::Schema) {
    db.execute_ddl(&memdex::grammar::sql::create_table(db.dialect(), schema)).expect("migrate");
    db.transaction(&mut |tx| {
        for id in 0..4000i64 {
            let row = [
                Value::Int(id),
                Value::Int(id % 400),
                Value::Text(format!("t{id:05}")),
                if id % 7 == 0 { Value::Null } else { Value::Text(format!("tag{}", id % 500)) },
                Value::Int(id % 300),
                Value::Text(format!("s{}", id % 13)),
            ];
            tx.execute(&memdex::grammar::sql::insert(db.dialect(), schema, &row))?;
        }
        Ok(())
    })
    .expect("fill");
    db.execute_ddl(&[format!("ANALYZE TABLE `{}`", schema.table)]).expect("analyze");
}

/// A directory under the system temp dir, removed on drop.
fn scratch_dir() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("memdex-db-test-").tempdir().expect("temp dir")
}
