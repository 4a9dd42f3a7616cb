//! SQL generation through the sqlparser AST and its `Display`, per dialect.
//!
//! OWNER: helper "grammar-sql". Contract (DESIGN.md "The language"):
//! * every value is a bound parameter (`?` for SQLite/MySQL, `$1…` for PostgreSQL);
//!   `SqlQuery::params` holds the values in placeholder order, already transformed
//!   (LIKE patterns escaped, etc.). Nothing from a value is ever spliced into text.
//! * `starts_with`/`ends_with`/`contains` are case-sensitive in every dialect, with
//!   `%`, `_` and the escape character escaped in the bound pattern.
//! * nullable `==`/`!=` keep Rust's meaning (null-safe equality per dialect).
//! * `to_lowercase` → the dialect's Unicode-correct lowercase (SQLite: the
//!   `memdex_lower` function the runtime registers; see `Dialect::lower_function`).
//! * `len` → length in bytes. String ordering and comparison by bytes
//!   (PostgreSQL `COLLATE "C"`, MySQL binary). `ORDER BY` puts NULLs first (Rust's
//!   `Option` order) in every dialect.
//! * `x in ids` with a list parameter → one placeholder per element; an empty list
//!   is false (and `not in` of an empty list true) without invalid `IN ()` syntax.
//! Differences between dialects are methods of the `SqlDialect` trait, never
//! `if dialect == …` in the emitter.

use crate::check::Aggregate;
use crate::ir::Expr;
use crate::params::Params;
use crate::schema::Schema;
use crate::value::Value;

/// The SQL dialects memdex emits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dialect {
    Sqlite,
    Postgres,
    MySql,
}

/// SQL text and the values for its placeholders, in order.
#[derive(Clone, Debug, PartialEq)]
pub struct SqlQuery {
    pub text: String,
    pub params: Vec<Value>,
}

/// An error emitting SQL (a parameter missing or of the wrong shape).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum SqlError {
    #[error("no value bound for parameter `{0}`")]
    Unbound(String),
    #[error("parameter `{0}` must be a list for `in`")]
    NotAList(String),
    #[error("{0}")]
    Unsupported(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrderBy {
    pub column: usize,
    pub desc: bool,
}

/// `SELECT <all columns, schema order> FROM t [WHERE filter] [ORDER BY …] [LIMIT] [OFFSET]`.
#[derive(Clone, Copy, Debug, Default)]
pub struct SelectSpec<'a> {
    pub filter: Option<&'a Expr>,
    pub order: &'a [OrderBy],
    pub limit: Option<u64>,
    pub offset: Option<u64>,
}

pub fn select(d: Dialect, schema: &Schema, spec: SelectSpec<'_>, params: &dyn Params) -> Result<SqlQuery, SqlError> {
    let _ = (d, schema, spec, params);
    unimplemented!("grammar-sql")
}

/// `SELECT COUNT(*) FROM t [WHERE filter]`.
pub fn count(d: Dialect, schema: &Schema, filter: Option<&Expr>, params: &dyn Params) -> Result<SqlQuery, SqlError> {
    let _ = (d, schema, filter, params);
    unimplemented!("grammar-sql")
}

/// `SELECT AVG(runs) FROM t [WHERE filter]` (the result column is one value; AVG
/// and SUM are computed as floating point in every dialect).
pub fn aggregate(
    d: Dialect,
    schema: &Schema,
    filter: Option<&Expr>,
    agg: &Aggregate,
    params: &dyn Params,
) -> Result<SqlQuery, SqlError> {
    let _ = (d, schema, filter, agg, params);
    unimplemented!("grammar-sql")
}

/// The ids of one index node: `SELECT key FROM t WHERE a = ? AND b IS NULL AND
/// substr(s, 1, n) = ?` for `schema.indexes[index]` and one value per index column
/// (the prefix string for a prefix index). `index: None` is not valid here.
pub fn node_keys(d: Dialect, schema: &Schema, index: usize, values: &[Value]) -> SqlQuery {
    let _ = (d, schema, index, values);
    unimplemented!("grammar-sql")
}

/// `SELECT <all columns> FROM t WHERE key IN (?, ?, …)` (one placeholder per key).
pub fn rows_by_keys(d: Dialect, schema: &Schema, keys: &[Value]) -> SqlQuery {
    let _ = (d, schema, keys);
    unimplemented!("grammar-sql")
}

/// `INSERT INTO t (all columns) VALUES (…)`; `row` in schema column order.
pub fn insert(d: Dialect, schema: &Schema, row: &[Value]) -> SqlQuery {
    let _ = (d, schema, row);
    unimplemented!("grammar-sql")
}

/// `UPDATE t SET <every non-key column> = ? WHERE key = ?`; `row` in schema order.
pub fn update(d: Dialect, schema: &Schema, row: &[Value]) -> SqlQuery {
    let _ = (d, schema, row);
    unimplemented!("grammar-sql")
}

/// `DELETE FROM t WHERE key = ?`.
pub fn delete(d: Dialect, schema: &Schema, key: &Value) -> SqlQuery {
    let _ = (d, schema, key);
    unimplemented!("grammar-sql")
}

/// `DELETE FROM t WHERE filter`.
pub fn delete_where(d: Dialect, schema: &Schema, filter: &Expr, params: &dyn Params) -> Result<SqlQuery, SqlError> {
    let _ = (d, schema, filter, params);
    unimplemented!("grammar-sql")
}

/// `CREATE TABLE IF NOT EXISTS …` (key as primary key, NOT NULL on non-Option
/// columns) and one `CREATE INDEX IF NOT EXISTS` per declared index (a prefix
/// index is a plain index on the column). MySQL has no `IF NOT EXISTS` for indexes:
/// emit plain `CREATE INDEX` there.
pub fn create_table(d: Dialect, schema: &Schema) -> Vec<String> {
    let _ = (d, schema);
    unimplemented!("grammar-sql")
}

impl Dialect {
    /// The name of the function the emitted SQL uses for Rust's `to_lowercase`:
    /// SQLite's built-in `lower` folds only ASCII, so on SQLite the runtime registers
    /// `memdex_lower` (Rust's `to_lowercase`) on every connection.
    pub fn lower_function(self) -> &'static str {
        match self {
            Dialect::Sqlite => "memdex_lower",
            Dialect::Postgres | Dialect::MySql => "LOWER",
        }
    }
}
