//! SQL generation through the sqlparser AST and its `Display`, per dialect.
//!
//! What the emitted SQL guarantees (DESIGN.md "The language"):
//! * every value is a bound parameter (`?` for SQLite/MySQL, `$1…` for PostgreSQL);
//!   `SqlQuery::params` holds the values in placeholder order, already transformed
//!   (LIKE patterns escaped, etc.). Nothing from a value is ever spliced into text.
//! * `starts_with`/`ends_with`/`contains` are case-sensitive in every dialect, with
//!   `%`, `_` and the escape character escaped in the bound pattern.
//! * nullable `==`/`!=` keep Rust's meaning (null-safe equality per dialect).
//! * `to_lowercase` → the dialect's Unicode-correct lowercase (SQLite: the
//!   `memdex_lower` function the runtime registers; see `Dialect::lower_function`).
//! * `len` → length in bytes. String ordering and comparison by bytes
//!   (PostgreSQL `COLLATE "C"`; MySQL `COLLATE utf8mb4_nopad_bin`, named on the
//!   bound value so that the column's index still serves). `ORDER BY` puts NULLs
//!   first (Rust's `Option` order) in every dialect.
//! * `x in (a, b)` and `x in ids` → one placeholder per element up to 100 values;
//!   a longer list binds as ONE parameter where the dialect has a form for it
//!   (`SqlDialect::in_bound_list`: PostgreSQL `= ANY($n)`, SQLite `json_each(?)`,
//!   MySQL `JSON_TABLE(?)`), so the statement does not grow with the list. An
//!   empty list is false (and `not in` of an empty list true) without invalid
//!   `IN ()` syntax.
//!
//! Differences between dialects are methods of the `SqlDialect` trait, never
//! `if dialect == …` in the emitter.
//!
//! Modules: `ast` builds sqlparser nodes, `dialect` holds the `SqlDialect`
//! trait and its three implementations, `emit` lowers IR expressions, `ddl`
//! builds `CREATE TABLE`/`CREATE INDEX` and the write statements, `with_entry` the
//! guarded insert or update that writes its outbox entry in the same statement, `introspect` reads
//! a table's shape back from the catalog and names how it differs from a schema.

mod ast;
mod capture;
mod ddl;
mod dialect;
mod emit;
mod introspect;
mod key_text;
mod with_entry;

use sqlparser::ast::{
    BinaryOperator, Expr as SqlExpr, LimitClause, Offset, OffsetRows, OrderByExpr, OrderByKind, OrderByOptions,
    OrderBySort, SelectItem, SetExpr, Statement,
};

use crate::check::Aggregate;
use crate::ir::Expr;
use crate::params::Params;
use crate::schema::Schema;
use crate::value::{Type, Value};
use dialect::SqlDialect;
use emit::Emitter;

pub use capture::{capture_triggers, create_changes_table};
pub use ddl::{
    IndexSpec, IndexedTextTooLong, add_column, check_indexed_text, create_table, delete, delete_returning_old,
    index_specs, insert, insert_or_keep, insert_params, update, update_params, update_returning_old,
};
pub use introspect::{COLUMN_ROW, Drift, FoundIndex, INDEX_ROW, TableShape, columns_query, drift, indexes_query};
pub use with_entry::{ENTRY_KEY_SEPARATOR, GuardedWrite, RowChange, guarded_write_params, guarded_write_with_entry};

/// The SQL dialects memdex emits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// SQLite 3.35 or later (as bundled by `rusqlite`): `?` placeholders.
    Sqlite,
    /// PostgreSQL: `$1`, `$2`, … placeholders.
    Postgres,
    /// MySQL 8: `?` placeholders, backquoted identifiers.
    MySql,
}

/// SQL text and the values for its placeholders, in order.
#[derive(Clone, Debug, PartialEq)]
pub struct SqlQuery {
    /// The statement, with placeholders where values go.
    pub text: String,
    /// One value per placeholder, in placeholder order (LIKE patterns escaped).
    pub params: Vec<Value>,
}

/// An error emitting SQL (a parameter missing or of the wrong shape).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum SqlError {
    /// A parameter the filter names has no value.
    #[error("no value bound for parameter `{0}`")]
    Unbound(String),
    /// `c.x in ids` with `ids` bound to something other than a list.
    #[error("parameter `{0}` must be a list for `in`")]
    NotAList(String),
    /// A filter the SQL cannot express as Rust means it (`%` on floats, arithmetic
    /// too deeply nested); the checker rejects these before a query gets here.
    #[error("{0}")]
    Unsupported(String),
}

/// One `ORDER BY` term.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrderBy {
    /// The column number in the schema.
    pub column: usize,
    /// Descending rather than ascending.
    pub desc: bool,
}

/// `SELECT <all columns, schema order> FROM t [WHERE filter] [ORDER BY …] [LIMIT] [OFFSET]`.
#[derive(Clone, Copy, Debug, Default)]
pub struct SelectSpec<'a> {
    /// The checked filter (`None`: every row).
    pub filter: Option<&'a Expr>,
    /// `ORDER BY` terms, in order; the key breaks ties.
    pub order: &'a [OrderBy],
    /// `LIMIT`, bound as a value.
    pub limit: Option<u64>,
    /// `OFFSET`, bound as a value.
    pub offset: Option<u64>,
}

impl Dialect {
    fn imp(self) -> &'static dyn SqlDialect {
        match self {
            Dialect::Sqlite => &dialect::Sqlite,
            Dialect::Postgres => &dialect::Postgres,
            Dialect::MySql => &dialect::MySql,
        }
    }
}

fn finish(statement: impl std::fmt::Display, emitter: Emitter<'_>) -> SqlQuery {
    use std::fmt::Write as _;
    // Sized for a typical statement, so that rendering rarely grows the string.
    let mut text = String::with_capacity(256);
    // Writing into a `String` cannot fail; sqlparser's `Display` only fails if the
    // writer does.
    let _ = write!(text, "{statement}");
    SqlQuery { text, params: emitter.values }
}

fn all_columns(e: &Emitter<'_>) -> Vec<SelectItem> {
    (0..e.schema.columns.len()).map(|i| SelectItem::UnnamedExpr(e.column(i))).collect()
}

fn filter_sql(e: &mut Emitter<'_>, filter: Option<&Expr>) -> Result<Option<SqlExpr>, SqlError> {
    filter.map(|f| e.predicate(f)).transpose()
}

/// A `LIMIT`/`OFFSET` count as a bound value: one prepared statement serves every
/// page. Counts beyond `i64::MAX` (no database holds that many rows) saturate.
fn count_value(n: u64) -> Value {
    Value::Int(i64::try_from(n).unwrap_or(i64::MAX))
}

/// The `SELECT` of every column for `spec`, in dialect `d`, with the values of
/// `params` bound in placeholder order.
///
/// # Errors
///
/// [`SqlError`]: a parameter the filter names is unbound or of the wrong shape.
///
/// ```
/// use memdex_grammar::sql::{self, SelectSpec};
/// use memdex_grammar::{Dialect, ParamType, Schema, Type, Value, check, text};
///
/// let schema = Schema::new("Item", "item")
///     .column("id", Type::Int, false)
///     .column("name", Type::Text, false)
///     .key("id");
/// let lambda = text::parse("lambda c: c.name.startswith(p)")?;
/// let filter = check::filter(&schema, &lambda.body, &|_: &str| ParamType::Scalar(Type::Text))?;
/// let params = [("p", Value::from("50%"))];
/// let spec = SelectSpec { filter: Some(&filter), limit: Some(10), ..SelectSpec::default() };
/// let q = sql::select(Dialect::Postgres, &schema, spec, &params).expect("p is bound");
/// assert_eq!(q.text, r#"SELECT "id", "name" FROM "item" WHERE "name" LIKE $1 ESCAPE '!' ORDER BY "id" ASC LIMIT $2"#);
/// // The value is bound, never spliced; LIKE's `%` in it is escaped.
/// assert_eq!(q.params, [Value::from("50!%%"), Value::Int(10)]);
/// # Ok::<(), memdex_grammar::Errors>(())
/// ```
pub fn select(d: Dialect, schema: &Schema, spec: SelectSpec<'_>, params: &dyn Params) -> Result<SqlQuery, SqlError> {
    let mut e = Emitter::new(d.imp(), schema, params);
    let projection = all_columns(&e);
    let selection = filter_sql(&mut e, spec.filter)?;
    let mut query = ast::query(SetExpr::Select(Box::new(ast::select_items(projection, e.table(), selection))));

    // Ties are broken by the key, so that a page (`LIMIT`/`OFFSET`) is the same on
    // every run and the same as the in-memory path, which orders the same way.
    let mut order: Vec<OrderBy> = spec.order.to_vec();
    let paged = spec.limit.is_some() || spec.offset.is_some();
    if (paged || !order.is_empty()) && !order.iter().any(|o| o.column == schema.key) {
        order.push(OrderBy { column: schema.key, desc: false });
    }
    if !order.is_empty() {
        let exprs = order
            .iter()
            .map(|o| {
                let col = e.column(o.column);
                let col = if schema.columns[o.column].ty == Type::Text { e.dialect.bytewise(col, true) } else { col };
                OrderByExpr {
                    expr: col,
                    options: OrderByOptions {
                        sort: Some(if o.desc { OrderBySort::Desc } else { OrderBySort::Asc }),
                        nulls_first: if schema.columns[o.column].nullable {
                            e.dialect.nulls_first(o.desc)
                        } else {
                            None
                        },
                    },
                    with_fill: None,
                }
            })
            .collect();
        query.order_by = Some(sqlparser::ast::OrderBy { kind: OrderByKind::Expressions(exprs), interpolate: None });
    }

    if paged {
        let limit = match spec.limit {
            Some(n) => Some(e.bind(count_value(n))),
            None => e.dialect.limit_for_offset_only(),
        };
        let offset = spec.offset.map(|n| Offset { value: e.bind(count_value(n)), rows: OffsetRows::None });
        query.limit_clause = Some(LimitClause::LimitOffset { limit, offset, limit_by: Vec::new() });
    }
    Ok(finish(Statement::Query(Box::new(query)), e))
}

/// `SELECT COUNT(*) FROM t [WHERE filter]`.
///
/// # Errors
///
/// [`SqlError`]: a parameter the filter names is unbound or of the wrong shape.
pub fn count(d: Dialect, schema: &Schema, filter: Option<&Expr>, params: &dyn Params) -> Result<SqlQuery, SqlError> {
    let mut e = Emitter::new(d.imp(), schema, params);
    let selection = filter_sql(&mut e, filter)?;
    let select = ast::select(vec![ast::count_star()], e.table(), selection);
    Ok(finish(Statement::Query(Box::new(ast::query(SetExpr::Select(Box::new(select))))), e))
}

/// `SELECT AVG(runs) FROM t [WHERE filter]` (the result column is one value; AVG
/// and SUM are computed as floating point in every dialect).
///
/// # Errors
///
/// [`SqlError`]: a parameter the filter names is unbound or of the wrong shape.
pub fn aggregate(
    d: Dialect,
    schema: &Schema,
    filter: Option<&Expr>,
    agg: &Aggregate,
    params: &dyn Params,
) -> Result<SqlQuery, SqlError> {
    let mut e = Emitter::new(d.imp(), schema, params);
    // The projection reads before `WHERE`, so its values are bound first.
    let projection = e.aggregate(agg)?;
    let selection = filter_sql(&mut e, filter)?;
    let select = ast::select(vec![projection], e.table(), selection);
    Ok(finish(Statement::Query(Box::new(ast::query(SetExpr::Select(Box::new(select))))), e))
}

/// The ids of one index node: `SELECT key FROM t WHERE a = ? AND b IS NULL AND
/// substr(s, 1, n) = ?` for `schema.indexes[index]` and one value per index column
/// (the prefix string for a prefix index). `index: None` is not valid here.
///
/// An `index` out of range or a missing value yields a query for no rows (`1 = 0`):
/// the planner never asks for one, and an empty node is the safe answer.
pub fn node_keys(d: Dialect, schema: &Schema, index: usize, values: &[Value]) -> SqlQuery {
    let mut e = Emitter::without_params(d.imp(), schema);
    let key = e.column(schema.key);
    let conditions = node_conditions(&mut e, index, values);
    let select = ast::select(vec![key], e.table(), ast::and_all(conditions));
    finish(Statement::Query(Box::new(ast::query(SetExpr::Select(Box::new(select))))), e)
}

/// The rows of several index nodes in one statement (one snapshot): `SELECT <all
/// columns> FROM t WHERE (<node 1>) OR (<node 2>) …`, each node's condition as in
/// [`node_keys`], the SQL `CREATE INDEX` ([`create_table`]) builds its indexes for.
pub fn node_rows(d: Dialect, schema: &Schema, nodes: &[(usize, &[Value])]) -> SqlQuery {
    let mut e = Emitter::without_params(d.imp(), schema);
    let projection = all_columns(&e);
    let alternatives: Vec<SqlExpr> = nodes
        .iter()
        .map(|&(index, values)| {
            let conditions = node_conditions(&mut e, index, values);
            ast::and_all(conditions).map_or_else(ast::constant_false, ast::nested)
        })
        .collect();
    let selection = ast::fold(alternatives, BinaryOperator::Or).unwrap_or_else(ast::constant_false);
    let select = ast::select_items(projection, e.table(), Some(selection));
    finish(Statement::Query(Box::new(ast::query(SetExpr::Select(Box::new(select))))), e)
}

/// The rows of many index nodes in one statement, for more nodes than [`node_rows`]
/// can name one by one (SQLite refuses expressions nested deeper than 1,000): the
/// nodes of each index become one `in` list per column, each bound as ONE parameter
/// however long (`= ANY($n)`, `json_each(?)`). For a composite index that selects a
/// superset (every combination of its columns' values): the caller assigns rows to
/// nodes, which makes it exact. Prefix nodes have no list form and stay one
/// `starts_with` each (their pattern has exactly the index's length, so it selects
/// the node's rows).
///
/// In MySQL, which has no one-parameter list, each list keeps a placeholder per
/// value.
///
/// # Errors
///
/// [`select`]'s; none arises here, since the filter only names the lists bound here.
pub fn node_rows_by_lists(d: Dialect, schema: &Schema, nodes: &[(usize, &[Value])]) -> Result<SqlQuery, SqlError> {
    use crate::ir::{ExprKind, Haystack, StrOp};
    let at = |kind: ExprKind| Expr { kind, span: crate::span::Span::default() };
    let field = |column: usize| at(ExprKind::Field(schema.columns[column].field.clone()));
    let mut params: Vec<(String, Value)> = Vec::new();
    let mut alternatives: Vec<Expr> = Vec::new();
    for (index, def) in schema.indexes.iter().enumerate() {
        let of_index: Vec<&[Value]> = nodes.iter().filter(|(i, _)| *i == index).map(|(_, v)| *v).collect();
        if of_index.is_empty() {
            continue;
        }
        if def.prefix.is_some() {
            for values in &of_index {
                let (Some(&column), Some(value)) = (def.columns.first(), values.first()) else { continue };
                let name = format!("s{}", params.len());
                params.push((name.clone(), value.clone()));
                alternatives.push(at(ExprKind::StrTest {
                    op: StrOp::StartsWith,
                    subject: Box::new(field(column)),
                    pattern: Box::new(at(ExprKind::Param(name))),
                }));
            }
            continue;
        }
        let mut per_column = Vec::with_capacity(def.columns.len());
        for (position, &column) in def.columns.iter().enumerate() {
            let mut values: Vec<Value> = of_index.iter().filter_map(|v| v.get(position).cloned()).collect();
            values.sort_by(Value::order);
            values.dedup_by(|a, b| a.order(b).is_eq());
            let name = format!("s{}", params.len());
            params.push((name.clone(), Value::List(values)));
            per_column.push(at(ExprKind::In { needle: Box::new(field(column)), haystack: Haystack::Param(name) }));
        }
        alternatives.push(if per_column.len() == 1 { per_column.remove(0) } else { at(ExprKind::And(per_column)) });
    }
    let filter = at(ExprKind::Or(alternatives));
    let spec = SelectSpec { filter: Some(&filter), ..SelectSpec::default() };
    select(d, schema, spec, &params)
}

/// `a = ? AND b IS NULL AND substr(s, 1, n) = ?` for one node of `index`.
fn node_conditions(e: &mut Emitter<'_>, index: usize, values: &[Value]) -> Vec<SqlExpr> {
    match e.schema.indexes.get(index) {
        Some(ix) if ix.columns.len() == values.len() => ix
            .columns
            .iter()
            .zip(values)
            .map(|(&col, value)| match (ix.prefix, value) {
                (Some(n), Value::Text(text)) => {
                    let dialect = e.dialect;
                    let column = e.column(col);
                    dialect.prefix_equals(column, n, text, &mut |v| e.bind(v))
                }
                _ => e.column_equals(col, value.clone()),
            })
            .collect(),
        _ => vec![ast::constant_false()],
    }
}

/// `SELECT <all columns> FROM t WHERE key IN (?, ?, …)` (one placeholder per key).
pub fn rows_by_keys(d: Dialect, schema: &Schema, keys: &[Value]) -> SqlQuery {
    let mut e = Emitter::without_params(d.imp(), schema);
    let projection = all_columns(&e);
    let selection = e.column_in_values(schema.key, keys.to_vec());
    let select = ast::select_items(projection, e.table(), Some(selection));
    finish(Statement::Query(Box::new(ast::query(SetExpr::Select(Box::new(select))))), e)
}

/// `SELECT <every column> FROM t WHERE key = ?`, locking the row until the end of
/// the transaction where the dialect can (`FOR UPDATE`; SQLite's write transactions
/// hold the whole database already): a write reads the row it is about to change,
/// to learn the index nodes it is leaving.
pub fn row_for_update(d: Dialect, schema: &Schema, key: &Value) -> SqlQuery {
    let mut e = Emitter::without_params(d.imp(), schema);
    let query = locked_row(&mut e, key);
    finish(Statement::Query(Box::new(query)), e)
}

/// The values [`row_for_update`] binds: the key. Its text depends on the dialect
/// and the schema alone.
pub fn row_for_update_params(key: &Value) -> Vec<Value> {
    vec![key.clone()]
}

/// The query of [`row_for_update`], for a statement that embeds it.
fn locked_row(e: &mut Emitter<'_>, key: &Value) -> sqlparser::ast::Query {
    let projection = all_columns(e);
    let selection = e.column_in_values(e.schema.key, vec![key.clone()]);
    let select = ast::select_items(projection, e.table(), Some(selection));
    let mut query = ast::query(SetExpr::Select(Box::new(select)));
    if e.dialect.locks_rows() {
        query.locks.push(sqlparser::ast::LockClause {
            lock_type: sqlparser::ast::LockType::Update,
            of: None,
            nonblock: None,
        });
    }
    query
}

/// `DELETE FROM t WHERE filter`.
///
/// # Errors
///
/// [`SqlError`]: a parameter the filter names is unbound or of the wrong shape.
pub fn delete_where(d: Dialect, schema: &Schema, filter: &Expr, params: &dyn Params) -> Result<SqlQuery, SqlError> {
    let mut e = Emitter::new(d.imp(), schema, params);
    let selection = e.predicate(filter)?;
    Ok(finish(ddl::delete_statement(&e, selection), e))
}

/// `DELETE FROM t WHERE key IN (keys)`: the rows of `schema`'s table with these keys
/// (the applied entries of memdex's own tables).
///
/// # Errors
///
/// [`SqlError`]: never for a schema whose key column exists.
pub fn delete_keys(d: Dialect, schema: &Schema, keys: &[Value]) -> Result<SqlQuery, SqlError> {
    let filter = keys_filter(schema);
    let params = vec![("keys".to_owned(), Value::List(keys.to_vec()))];
    delete_where(d, schema, &filter, &params)
}

/// [`insert`] of `row`, [`delete_keys`] of `keys` (none for no keys) and a read of
/// the rows of `read` that `filter` selects, in one statement where the dialect
/// allows (`WITH "forgotten" AS (DELETE …), "written" AS (INSERT …) SELECT <every
/// column of read> FROM read WHERE filter` on PostgreSQL): writes and a read their
/// transaction makes after them in one round trip (an outbox entry, the clean-up of
/// applied ones and the index registry's lookup). The read sees the database as the
/// statement began, without the rows it writes. `None` where the dialect cannot.
///
/// # Errors
///
/// [`SqlError`]: a parameter `filter` names that `params` lacks.
pub fn insert_then_select(
    d: Dialect,
    schema: &Schema,
    row: &[Value],
    keys: &[Value],
    read: (&Schema, &Expr, &dyn Params),
) -> Result<Option<SqlQuery>, SqlError> {
    if !d.imp().data_modifying_with() {
        return Ok(None);
    }
    let forget = vec![("keys".to_owned(), Value::List(keys.to_vec()))];
    let mut e = Emitter::new(d.imp(), schema, &forget);
    let mut ctes = Vec::new();
    if !keys.is_empty() {
        let selection = e.predicate(&keys_filter(schema))?;
        ctes.push(cte(&e, "forgotten", SetExpr::Delete(ddl::delete_statement(&e, selection))));
    }
    let insert = ddl::insert_values(&mut e, row);
    ctes.push(cte(&e, "written", SetExpr::Insert(Statement::Insert(insert))));
    // The read's placeholders go on from the write's.
    let (read_schema, filter, params) = read;
    let mut r = Emitter::new(d.imp(), read_schema, params);
    r.values = e.values;
    let selection = filter_sql(&mut r, Some(filter))?;
    let mut query = ast::query(SetExpr::Select(Box::new(ast::select_items(all_columns(&r), r.table(), selection))));
    query.with = Some(with(ctes));
    Ok(Some(finish(Statement::Query(Box::new(query)), r)))
}

/// The values [`insert_then_select`] binds, in its order: the keys of the rows to
/// delete, then `row`, then `read`, the values its filter binds. Its text depends
/// on the dialect, the schemas, the filter and the number of keys alone.
pub fn insert_then_select_params(row: &[Value], keys: &[Value], read: &[Value]) -> Vec<Value> {
    keys.iter().chain(row).chain(read).cloned().collect()
}

/// `name AS (body)`, for a statement's `WITH`.
fn cte(e: &Emitter<'_>, name: &str, body: SetExpr) -> sqlparser::ast::Cte {
    sqlparser::ast::Cte {
        alias: sqlparser::ast::TableAlias {
            explicit: false,
            name: ast::ident(e.dialect.quote(), name),
            columns: Vec::new(),
            at: None,
        },
        query: Box::new(ast::query(body)),
        from: None,
        materialized: None,
        closing_paren_token: sqlparser::ast::helpers::attached_token::AttachedToken::empty(),
    }
}

fn with(cte_tables: Vec<sqlparser::ast::Cte>) -> sqlparser::ast::With {
    sqlparser::ast::With {
        with_token: sqlparser::ast::helpers::attached_token::AttachedToken::empty(),
        recursive: false,
        cte_tables,
    }
}

/// `key IN keys`, the list bound as parameter `keys`.
fn keys_filter(schema: &Schema) -> Expr {
    let key = &schema.key_column().field;
    Expr::new(
        crate::ir::ExprKind::In {
            needle: Box::new(Expr::field(key, crate::span::Span::DUMMY)),
            haystack: crate::ir::Haystack::Param("keys".into()),
        },
        crate::span::Span::DUMMY,
    )
}

/// The statements that begin an index registration in its transaction: they lock
/// `registry`'s table against other registrations, and `table`'s so that the
/// registration waits for the write transactions in flight on it and new ones wait
/// for the registration (none on SQLite, whose write transactions take its one
/// write lock at their start).
pub fn lock_for_registration(d: Dialect, table: &Schema, registry: &Schema) -> Vec<SqlQuery> {
    let statements = d.imp().lock_for_registration(&table.table, &registry.table);
    statements.into_iter().map(|s| SqlQuery { text: s.to_string(), params: Vec::new() }).collect()
}

/// The statements that begin an index registration on a connection of their own,
/// held until the registration's transaction has committed (MySQL: `LOCK TABLES t
/// READ`, which waits for the write transactions in flight on `t` and holds off new
/// ones); none where [`lock_for_registration`] does it inside the transaction.
pub fn hold_for_registration(d: Dialect, table: &Schema) -> Vec<SqlQuery> {
    d.imp()
        .hold_for_registration(&table.table)
        .into_iter()
        .map(|s| SqlQuery { text: s.to_string(), params: Vec::new() })
        .collect()
}

/// The statement that releases what [`hold_for_registration`] took (MySQL's `UNLOCK
/// TABLES`), or `None`.
pub fn unlock_after_registration(d: Dialect) -> Option<SqlQuery> {
    d.imp().unlock_after_registration().map(|s| SqlQuery { text: s.to_string(), params: Vec::new() })
}

impl Dialect {
    /// The name of the function the emitted SQL uses for Rust's `to_lowercase`:
    /// SQLite's built-in `lower` folds only ASCII, so on SQLite the runtime registers
    /// `memdex_lower` (Rust's `to_lowercase`) on every connection.
    pub fn lower_function(self) -> &'static str {
        self.imp().unicode_lower()
    }

    /// Whether a statement's `WITH` may hold writes (PostgreSQL): the dialects where
    /// [`guarded_write_with_entry`] and [`insert_then_select`] make one statement.
    pub fn writes_in_with(self) -> bool {
        self.imp().data_modifying_with()
    }
}
