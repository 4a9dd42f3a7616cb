//! Database backends: SQLite (embedded default, `rusqlite` bundled), PostgreSQL
//! (`postgres`) and, with the `mysql` feature, MySQL/MariaDB (`mysql`). They run SQL
//! the grammar emitted; they never build SQL themselves beyond connection set-up.

use std::fmt;

use memdex_grammar::sql::SqlQuery;
use memdex_grammar::{Dialect, Type, Value};

#[cfg(feature = "mysql")]
pub mod mysql;
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

/// `x` as an `i64` when it is a whole number in range: how every backend reads a
/// float the database returned for an integer (SQLite's REAL from arithmetic,
/// PostgreSQL's `float8`, MySQL's DOUBLE) and binds a float where an integer is
/// expected, so that no information is lost either way.
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
            Value::Null | Value::List(_) => write!(out, "null"),
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

/// What kind of value `value` is, for error messages.
pub(crate) fn value_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "NULL",
        Value::Bool(_) => "a bool",
        Value::Int(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Text(_) => "a string",
        Value::List(_) => "a list",
    }
}

#[cfg(test)]
mod tests {
    use super::integral;

    #[test]
    fn integral_keeps_every_whole_i64_float() {
        assert_eq!(integral(-0.0), Some(0));
        assert_eq!(integral(3.0), Some(3));
        assert_eq!(integral(3.5), None);
        assert_eq!(integral(-9_223_372_036_854_775_808.0), Some(i64::MIN));
        assert_eq!(integral(9_223_372_036_854_775_808.0), None);
        assert_eq!(integral(f64::INFINITY), None);
        assert_eq!(integral(f64::NAN), None);
    }
}
