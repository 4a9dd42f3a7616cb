//! Database backends: SQLite (feature `sqlite`, the embedded default, `rusqlite`
//! bundled) and PostgreSQL (feature `postgres`), each pooled with `r2d2`, and
//! MySQL/MariaDB (feature `mysql`, the `mysql` crate's own pool). They run SQL the
//! grammar emitted; they never build SQL themselves beyond connection set-up.

use std::fmt;

use memdex_grammar::sql::SqlQuery;
use memdex_grammar::{Dialect, Type, Value};

#[cfg(feature = "mysql")]
pub mod mysql;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(all(feature = "postgres", feature = "tokio"))]
pub(crate) mod postgres_async;
#[cfg(feature = "postgres")]
pub(crate) mod postgres_tls;
#[cfg(feature = "postgres")]
pub(crate) mod postgres_types;
#[cfg(feature = "sqlite")]
pub mod sqlite;

/// A boxed error from a driver, kept as the source of a [`DbError`].
pub type DriverError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What a database backend reports. Every variant keeps the driver's error as its
/// `source()` where there is one, and its code (PostgreSQL's SQLSTATE, SQLite's
/// extended result code) where the database gave one.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DbError {
    /// No connection: the server is unreachable, refused the credentials, or the
    /// pool had none free in time.
    #[error("database connection failed: {message}")]
    Connect {
        /// What failed, in words (the server, the pool's timeout, the driver's text).
        message: String,
        /// The driver's or the pool's own error, when there is one.
        #[source]
        source: Option<DriverError>,
    },
    /// The database refused a statement.
    #[error("database error: {message}")]
    Query {
        /// The database's or the driver's message about the statement.
        message: String,
        /// SQLSTATE (PostgreSQL), extended result code name (SQLite).
        code: Option<String>,
        /// The driver's own error, when the refusal came from the database rather
        /// than from memdex's checks.
        #[source]
        source: Option<DriverError>,
    },
    /// An insert or update would duplicate a key or a unique index.
    #[error("unique constraint violated{}: {message}", constraint.as_deref().map(|c| format!(" ({c})")).unwrap_or_default())]
    UniqueViolation {
        /// The constraint's (or index's) name, when the database said.
        constraint: Option<String>,
        /// The database's message about the duplicate.
        message: String,
        /// The driver's own error, when there is one.
        #[source]
        source: Option<DriverError>,
    },
    /// A value of the wrong type came back (schema drift between struct and table).
    #[error("cannot decode column {column}: {reason}")]
    Decode {
        /// The position of the offending column in the row (schema order, from 0).
        column: usize,
        /// The column's name and why its value does not fit the requested type.
        reason: String,
    },
}

impl DbError {
    /// A refused statement with no driver error behind it (memdex's own checks).
    pub fn query(message: impl Into<String>) -> DbError {
        DbError::Query { message: message.into(), code: None, source: None }
    }

    /// A connection failure with no driver error behind it.
    pub fn connect(message: impl Into<String>) -> DbError {
        DbError::Connect { message: message.into(), source: None }
    }

    /// The database's code for this error (SQLSTATE or SQLite result code name).
    pub fn code(&self) -> Option<&str> {
        match self {
            DbError::Query { code, .. } => code.as_deref(),
            DbError::UniqueViolation { .. } => Some("unique_violation"),
            _ => None,
        }
    }
}

/// Statements inside one transaction.
pub trait Tx {
    /// Runs a statement; returns the number of rows it changed.
    fn execute(&mut self, q: &SqlQuery) -> Result<u64, DbError>;
    /// Runs a query; each row decoded to `types` (NULL becomes `Value::Null`).
    fn query(&mut self, q: &SqlQuery, types: &[Type]) -> Result<Vec<Vec<Value>>, DbError>;
}

/// An open transaction on a connection of its own (checked out of the pool for as
/// long as the transaction lives). Dropped without [`TxConn::commit`], it rolls
/// back.
pub trait TxConn: Tx + Send {
    /// Commits, and gives the connection back to the pool.
    fn commit(self: Box<Self>) -> Result<(), DbError>;

    /// The transaction as a [`Tx`].
    fn as_tx(&mut self) -> &mut dyn Tx;
}

/// How a backend's connection pool is doing, for `Store::stats` and metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolState {
    /// Connections open (idle and in use).
    pub connections: u32,
    /// Connections idle in the pool.
    pub idle: u32,
}

/// A database the store can talk to. Implementations are internally pooled and
/// safe to share between threads.
pub trait Database: Send + Sync + fmt::Debug {
    /// The SQL dialect the store emits for this database.
    fn dialect(&self) -> Dialect;

    /// Runs a read-only query outside any explicit transaction.
    fn query(&self, q: &SqlQuery, types: &[Type]) -> Result<Vec<Vec<Value>>, DbError>;

    /// Opens a transaction on a connection of its own.
    fn begin(&self) -> Result<Box<dyn TxConn>, DbError>;

    /// Runs one statement that writes, as a transaction of its own, and returns its
    /// rows (each decoded to `types`). Never tried again: after a lost reply its
    /// outcome is unknown. By default in a transaction [`Database::begin`] opens;
    /// a database that commits a lone statement by itself (PostgreSQL's autocommit)
    /// saves the BEGIN and COMMIT round trips.
    fn write_alone(&self, q: &SqlQuery, types: &[Type]) -> Result<Vec<Vec<Value>>, DbError> {
        let mut tx = self.begin()?;
        let rows = tx.query(q, types)?;
        tx.commit()?;
        Ok(rows)
    }

    /// Runs `f` in one transaction: committed when `f` returns `Ok`, rolled back
    /// otherwise (and the error returned).
    fn transaction(&self, f: &mut dyn FnMut(&mut dyn Tx) -> Result<(), DbError>) -> Result<(), DbError> {
        let mut tx = self.begin()?;
        f(tx.as_tx())?;
        tx.commit()
    }

    /// Runs DDL statements (migrations), each on its own.
    fn execute_ddl(&self, statements: &[String]) -> Result<(), DbError>;

    /// "SQLite (in memory)", "PostgreSQL host=…", for logs.
    fn describe(&self) -> String;

    /// The connection pool's gauges.
    fn pool_state(&self) -> PoolState {
        PoolState::default()
    }
}

/// The threads every pool of the process shares for its housekeeping (opening
/// connections, idle timeouts, lifetimes): `r2d2` would otherwise start three per
/// pool, and a program (or a test suite) may build many stores. Four, so that one
/// pool dialling an unreachable server does not hold up the others. (MySQL's pool
/// is the `mysql` crate's own and needs none.)
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn pool_threads() -> std::sync::Arc<scheduled_thread_pool::ScheduledThreadPool> {
    static POOL: std::sync::OnceLock<std::sync::Arc<scheduled_thread_pool::ScheduledThreadPool>> =
        std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        std::sync::Arc::new(
            scheduled_thread_pool::ScheduledThreadPool::builder()
                .num_threads(4)
                .thread_name_pattern("memdex-pool")
                .build(),
        )
    })
    .clone()
}

/// `x` as an `i64` when it is a whole number in range: how every backend reads a
/// float that stands for an integer.
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
pub(crate) fn integral(x: f64) -> Option<i64> {
    // 2^63 is exactly representable; every f64 in [-2^63, 2^63) with no fraction fits.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    (x.fract() == 0.0 && (-LIMIT..LIMIT).contains(&x)).then_some(x as i64)
}

/// A list bound as one parameter, as the JSON array the SQL reads back as values
/// (SQLite's `json_each`, MySQL's `JSON_TABLE`): integers as integers, booleans as
/// 0 and 1 (as SQLite and MySQL store them), floats in Rust's shortest round-trip
/// form (±inf as `±9e999`, which SQLite's JSON reads as ±inf and MySQL, which has
/// no infinity, as NULL, equal to nothing), text as JSON strings, NULL as `null`.
#[cfg(any(feature = "sqlite", feature = "mysql"))]
pub(crate) fn json_array(items: &[Value]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(items.len() * 8 + 2);
    out.push('[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        // Writing to a `String` cannot fail.
        let _ = match item {
            // Lists of bytes, instants, UUIDs and JSON keep a placeholder per element
            // (`SqlDialect::in_bound_list`), so those never reach a JSON array.
            Value::Null | Value::List(_) | Value::Bytes(_) | Value::Timestamp(_) | Value::Uuid(_) | Value::Json(_) => {
                write!(out, "null")
            }
            Value::Bool(b) => write!(out, "{}", u8::from(*b)),
            Value::Int(n) => write!(out, "{n}"),
            Value::Float(x) if x.is_infinite() => write!(out, "{}9e999", if *x < 0.0 { "-" } else { "" }),
            Value::Float(x) => write!(out, "{x:?}"),
            Value::Text(s) => {
                out.push('"');
                for ch in s.chars() {
                    match ch {
                        '"' => out.push_str("\\\""),
                        '\\' => out.push_str("\\\\"),
                        c if (c as u32) < 0x20 => {
                            let _ = write!(out, "\\u{:04x}", c as u32);
                        }
                        c => out.push(c),
                    }
                }
                out.push('"');
                Ok(())
            }
        };
    }
    out.push(']');
    out
}

/// A read, tried again once when its first attempt lost its connection (`once`
/// returns the error and whether the connection was lost): an idle pooled
/// connection may have lost its server (a restart, an idle timeout), and a read is
/// safe to repeat on a fresh one.
#[cfg(any(feature = "postgres", feature = "mysql"))]
pub(crate) fn read_retrying_once<T>(once: impl Fn() -> Result<T, (DbError, bool)>) -> Result<T, DbError> {
    match once() {
        Ok(rows) => Ok(rows),
        Err((_, true)) => once().map_err(|(e, _)| e),
        Err((e, false)) => Err(e),
    }
}

/// What kind of value `value` is, for error messages.
#[cfg(any(feature = "postgres", feature = "mysql"))]
pub(crate) fn value_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "NULL",
        Value::Bool(_) => "a bool",
        Value::Int(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Text(_) => "a string",
        Value::List(_) => "a list",
        Value::Bytes(_) => "bytes",
        Value::Timestamp(_) => "a timestamp",
        Value::Uuid(_) => "a uuid",
        Value::Json(_) => "a JSON document",
    }
}

/// Text read from a database as a `String`; the error says why it is not one.
#[cfg(any(feature = "sqlite", feature = "mysql"))]
pub(crate) fn utf8(bytes: &[u8]) -> Result<String, String> {
    match std::str::from_utf8(bytes) {
        Ok(s) => Ok(s.to_owned()),
        Err(e) => Err(format!("is not valid UTF-8: {e}")),
    }
}

/// Runs `f` so that a blocking driver that drives a runtime of its own (the
/// `postgres` crate does) never panics with "Cannot start a runtime from within a
/// runtime": inside a tokio runtime, `f` runs on a helper thread while this one
/// waits. The blocking `Store` then works inside an async task, at the price of
/// blocking that task's worker (use `AsyncStore` there).
#[cfg(feature = "postgres")]
pub(crate) fn outside_any_runtime<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    if tokio::runtime::Handle::try_current().is_err() {
        return f();
    }
    std::thread::scope(|scope| match scope.spawn(f).join() {
        Ok(r) => r,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}
