//! Sessions that are not memdex's: what a `psql` user, another service or a data
//! migration writes through. They connect with the databases' own client crates,
//! so they carry none of the marks memdex puts on its sessions
//! (`memdex::grammar::capture::SessionMark`), exactly as a writer outside memdex.

// A session that cannot connect or run its statement fails the test that uses it,
// with the statement and the database's message.
#![allow(clippy::panic)]

use crate::shared_db::Engine;

/// One raw database session.
#[allow(missing_debug_implementations)] // `postgres::Client` has no `Debug`.
pub enum OutsideSession {
    Sqlite(rusqlite::Connection),
    Postgres(Box<postgres::Client>),
    MySql(Box<mysql::Conn>),
}

impl OutsideSession {
    /// A session on `target`: the SQLite file, PostgreSQL connection string or
    /// MariaDB URL a store was built on.
    pub fn open(engine: Engine, target: &str) -> OutsideSession {
        match engine {
            Engine::Sqlite => {
                let conn = rusqlite::Connection::open(target).unwrap_or_else(|e| panic!("open {target}: {e}"));
                conn.busy_timeout(std::time::Duration::from_secs(10)).expect("busy timeout");
                OutsideSession::Sqlite(conn)
            }
            Engine::Postgres => OutsideSession::Postgres(Box::new(
                postgres::Client::connect(target, postgres::NoTls).unwrap_or_else(|e| panic!("connect {target}: {e}")),
            )),
            Engine::MariaDb => {
                let opts = mysql::Opts::from_url(target).unwrap_or_else(|e| panic!("{target}: {e}"));
                OutsideSession::MySql(Box::new(
                    mysql::Conn::new(opts).unwrap_or_else(|e| panic!("connect {target}: {e}")),
                ))
            }
        }
    }

    /// Runs one statement in its own transaction; the rows it changed.
    pub fn execute(&mut self, sql: &str) -> u64 {
        match self {
            OutsideSession::Sqlite(conn) => conn.execute(sql, []).unwrap_or_else(|e| panic!("`{sql}`: {e}")) as u64,
            OutsideSession::Postgres(client) => client.execute(sql, &[]).unwrap_or_else(|e| panic!("`{sql}`: {e}")),
            OutsideSession::MySql(conn) => {
                use mysql::prelude::Queryable;
                conn.query_drop(sql).unwrap_or_else(|e| panic!("`{sql}`: {e}"));
                conn.affected_rows()
            }
        }
    }

    /// The one integer a query returns (`SELECT COUNT(*) …`).
    pub fn integer(&mut self, sql: &str) -> i64 {
        let fail = |e: &dyn std::fmt::Display| -> i64 { panic!("`{sql}`: {e}") };
        match self {
            OutsideSession::Sqlite(conn) => conn.query_row(sql, [], |row| row.get(0)).unwrap_or_else(|e| fail(&e)),
            OutsideSession::Postgres(client) => {
                client.query_one(sql, &[]).map(|row| row.get(0)).unwrap_or_else(|e| fail(&e))
            }
            OutsideSession::MySql(conn) => {
                use mysql::prelude::Queryable;
                conn.query_first::<i64, _>(sql).unwrap_or_else(|e| Some(fail(&e))).unwrap_or_default()
            }
        }
    }

    /// Returns once a session of this PostgreSQL database waits for a lock (a row
    /// lock, an advisory lock); fails the test after 10 s (`who` never waited).
    pub fn wait_for_a_lock_wait(&mut self, who: &str) {
        let waiting =
            "SELECT COUNT(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()";
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while self.integer(waiting) == 0 {
            assert!(std::time::Instant::now() < deadline, "{who} never waited for a lock");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    /// The first column of every row a query returns, as text (NULL as nothing).
    pub fn texts(&mut self, sql: &str) -> Vec<String> {
        let fail = |e: &dyn std::fmt::Display| -> Vec<String> { panic!("`{sql}`: {e}") };
        match self {
            OutsideSession::Sqlite(conn) => {
                let read = || -> rusqlite::Result<Vec<Option<String>>> {
                    let mut statement = conn.prepare(sql)?;
                    let rows = statement.query_map([], |row| row.get(0))?;
                    rows.collect()
                };
                read().map(|texts| texts.into_iter().flatten().collect()).unwrap_or_else(|e| fail(&e))
            }
            OutsideSession::Postgres(client) => client
                .query(sql, &[])
                .map(|rows| rows.iter().filter_map(|row| row.get::<_, Option<String>>(0)).collect())
                .unwrap_or_else(|e| fail(&e)),
            OutsideSession::MySql(conn) => {
                use mysql::prelude::Queryable;
                conn.query::<Option<String>, _>(sql)
                    .map(|t| t.into_iter().flatten().collect())
                    .unwrap_or_else(|e| fail(&e))
            }
        }
    }
}
