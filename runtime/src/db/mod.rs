//! Database backends: SQLite (embedded default, `rusqlite` bundled) and PostgreSQL
//! (`postgres`). They run SQL the grammar emitted; they never build SQL themselves
//! beyond connection set-up.

use std::fmt;

use memdex_grammar::sql::SqlQuery;
use memdex_grammar::{Dialect, Type, Value};

pub mod postgres;
pub mod sqlite;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database connection failed: {0}")]
    Connect(String),
    #[error("database error: {0}")]
    Query(String),
    /// A value of the wrong type came back (schema drift between struct and table).
    #[error("cannot decode column {column}: {reason}")]
    Decode { column: usize, reason: String },
}

/// Statements inside one transaction.
pub trait Tx {
    /// Runs a statement; returns the number of rows it changed.
    fn execute(&mut self, q: &SqlQuery) -> Result<u64, DbError>;
    /// Runs a query; each row decoded to `types` (NULL becomes `Value::Null`).
    fn query(&mut self, q: &SqlQuery, types: &[Type]) -> Result<Vec<Vec<Value>>, DbError>;
}

/// A database the store can talk to. Implementations are internally pooled and
/// safe to share between threads.
pub trait Database: Send + Sync + fmt::Debug {
    fn dialect(&self) -> Dialect;

    /// Runs a read-only query outside any explicit transaction.
    fn query(&self, q: &SqlQuery, types: &[Type]) -> Result<Vec<Vec<Value>>, DbError>;

    /// Runs `f` in one transaction: committed when `f` returns `Ok`, rolled back
    /// otherwise (and the error returned).
    fn transaction(&self, f: &mut dyn FnMut(&mut dyn Tx) -> Result<(), DbError>) -> Result<(), DbError>;

    /// Runs DDL statements (migrations), each on its own.
    fn execute_ddl(&self, statements: &[String]) -> Result<(), DbError>;

    /// "SQLite (in memory)", "PostgreSQL host=…", for logs.
    fn describe(&self) -> String;
}
