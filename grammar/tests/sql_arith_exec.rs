//! Arithmetic at the extremes on SQLite: each filter of `support/extreme.rs` is
//! emitted for SQLite, run on an in-memory database holding every pair of extreme
//! integers and floats, and must return exactly the rows `eval` accepts (integer
//! overflow and non-finite float results undefined, so `e > 0` and `not (e >= 0)`
//! both false). PostgreSQL runs the same cases in `tests/tests/db_backends.rs`.

// A failing test reports by panicking, with the SQL that failed.
#![allow(clippy::panic)]

#[path = "support/sqlite.rs"]
mod sqlite_support;

use memdex_grammar as grammar;
use sqlite_support::sqlite_value;

#[path = "support/extreme.rs"]
mod extreme;

use grammar::sql::{self, Dialect, SelectSpec};
use rusqlite::Connection;

fn database() -> Connection {
    let conn = Connection::open_in_memory().expect("in-memory SQLite");
    let schema = extreme::schema();
    for statement in sql::create_table(Dialect::Sqlite, &schema) {
        conn.execute(&statement, []).expect("DDL runs");
    }
    for row in extreme::rows() {
        let q = sql::insert(Dialect::Sqlite, &schema, &row);
        conn.execute(&q.text, rusqlite::params_from_iter(q.params.iter().map(sqlite_value))).expect("insert");
    }
    conn
}

#[test]
fn arithmetic_at_the_extremes_matches_eval() {
    let conn = database();
    let schema = extreme::schema();
    let cases = extreme::cases();
    let mut failures = Vec::new();
    for case in &cases {
        let spec = SelectSpec { filter: Some(&case.filter), ..Default::default() };
        let q = sql::select(Dialect::Sqlite, &schema, spec, &case.params)
            .unwrap_or_else(|e| panic!("{}: emitting failed: {e}", case.label));
        let mut stmt = conn.prepare(&q.text).unwrap_or_else(|e| panic!("{}: {e}\n{}", case.label, q.text));
        let mut got: Vec<i64> = stmt
            .query_map(rusqlite::params_from_iter(q.params.iter().map(sqlite_value)), |row| row.get::<_, i64>(0))
            .and_then(|rows| rows.collect())
            .unwrap_or_else(|e| panic!("{}: {e}\n{}", case.label, q.text));
        got.sort_unstable();
        let want = extreme::expected(case);
        if got != want {
            let missing: Vec<_> = want.iter().filter(|id| !got.contains(id)).collect();
            let extra: Vec<_> = got.iter().filter(|id| !want.contains(id)).collect();
            failures.push(format!("{}: missing ids {missing:?}, extra ids {extra:?}\n  {}", case.label, q.text));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases disagree:\n{}", failures.len(), cases.len(), failures.join("\n"));
    // The cases must reach both outcomes, or they test nothing.
    let accepted = cases.iter().filter(|c| !extreme::expected(c).is_empty()).count();
    assert!(accepted > cases.len() / 4 && accepted < cases.len(), "{accepted} of {} cases match rows", cases.len());
}
