//! A row write that records its outbox entry in the same statement, where the
//! dialect runs writes inside a `WITH` (PostgreSQL): one autocommitted statement in
//! place of a transaction of four round trips.
//!
//! A write must append its entry to every index node its row was in and is in, and
//! record the keys it touches durably with the write itself. An insert's row was in
//! no node; an update's old index values cost a locked read, unless the update is
//! made to apply only when those values are the ones it writes: then the nodes it
//! was in are the nodes it is in, all known before the statement runs. A delete is
//! made to apply only when the row's indexed columns hold the values the caller
//! read beforehand, so the nodes it was in are those of the row as read; so is an
//! update that moves the row between nodes (once its first guard, on the values it
//! writes, shut). So the
//! write is guarded — it changes no row when an indexed column would change (or, for
//! a delete, has changed since it was read), or when the index registry holds an
//! index of the table the writer does not know (another version of the model
//! declares it) — and the caller, told that no row changed, writes the row the long
//! way.
//!
//! Where the database can spell the keys of the row's nodes from its columns
//! (index columns of integers, booleans, text, instants, UUIDs or bytes:
//! `KeySpace::node_spelling`, and the dialect's `key_text`), an update or a
//! delete needs no guard on its indexed values: it reads the row as it was in the same
//! statement — an update through a locked subquery, a delete through `RETURNING` —
//! and its entry's keys are followed by those of the nodes the row was in, put
//! together by the statement from what it read (`RowChange::UpdateReading`,
//! `RowChange::DeleteReading`). One statement, whatever the row holds.

use sqlparser::ast::{
    BinaryOperator, Expr as SqlExpr, InTarget, Insert, Query, SelectItem, SetExpr, SetOperator, SetQuantifier,
    Statement, Update,
};

use super::ast::{self, binary, concat};
use super::ddl;
use super::emit::Emitter;
use super::{Dialect, SqlQuery, all_columns, cte, finish, with};
#[cfg(doc)]
use crate::keys::KeySpace;
use crate::keys::{KeyPart, NodeSpelling};
use crate::schema::Schema;
use crate::value::Value;

/// The CTE holding the updated row's key, when the guard let the update apply.
const WRITTEN: &str = "written";

/// The row change of a [`GuardedWrite`].
#[derive(Clone, Copy, Debug)]
pub enum RowChange<'a> {
    /// An update of the row with the row's key, applied only when these columns
    /// (those naming the row's index nodes) already hold the row's values.
    Update {
        /// The guarded columns, by index in the schema.
        unchanged: &'a [usize],
    },
    /// An insert (an error if the key exists).
    Insert,
    /// A delete of the row with the row's key, applied only when these columns
    /// still hold the row's values (the row as the caller read it).
    Delete {
        /// The guarded columns, by index in the schema.
        unchanged: &'a [usize],
    },
    /// An update of the row with the row's key that may move it between index
    /// nodes, applied only when these columns still hold the values of `was` (the
    /// row as the caller read it): the nodes it was in are then those of `was`.
    Move {
        /// The guarded columns, by index in the schema.
        unchanged: &'a [usize],
        /// The row as read before, in schema column order.
        was: &'a [Value],
    },
    /// An update of the row with the row's key, whatever its indexed columns hold,
    /// that reads the row as it was in the same statement (locked first, as
    /// `ddl::update_returning_old` does): the entry names the nodes the row was in
    /// by `old_nodes`, spelled from the values it read, and the reply is that row.
    UpdateReading {
        /// The spelling of the key of each index's node ([`KeySpace::node_spelling`]).
        old_nodes: &'a [NodeSpelling],
    },
    /// A delete of the row with the row's key that returns the row as it was; its
    /// entry names the nodes the row was in as [`RowChange::UpdateReading`]'s does.
    /// `GuardedWrite::row` need only hold the key.
    DeleteReading {
        /// The spelling of the key of each index's node.
        old_nodes: &'a [NodeSpelling],
    },
}

impl RowChange<'_> {
    /// The spellings of the nodes the row was in, for a change that reads the row.
    fn old_nodes(&self) -> &[NodeSpelling] {
        match self {
            RowChange::UpdateReading { old_nodes } | RowChange::DeleteReading { old_nodes } => old_nodes,
            _ => &[],
        }
    }
}

/// What [`guarded_write_with_entry`] writes, and what guards it.
#[derive(Clone, Copy, Debug)]
pub struct GuardedWrite<'a> {
    /// The written row's schema.
    pub schema: &'a Schema,
    /// The written row's values, in schema column order (for a delete, the row as
    /// read before).
    pub row: &'a [Value],
    /// An update, an insert or a delete.
    pub change: RowChange<'a>,
    /// The index registry's schema (with `table_name` and `definition` columns).
    pub registry: &'a Schema,
    /// The definitions of the table's indexes the writer knows: a registered index
    /// of the table beyond them stops the write.
    pub known: &'a [String],
    /// The outbox's schema.
    pub outbox: &'a Schema,
    /// The entry's row, in the outbox's column order; written only when the row
    /// was.
    pub entry: &'a [Value],
    /// The keys of done outbox entries to delete, whatever the guard decides.
    pub forget: &'a [Value],
}

/// `WITH "written" AS (<the write> RETURNING key), "forgotten" AS (DELETE FROM
/// outbox WHERE id IN (…)), "entry" AS (INSERT INTO outbox (…) SELECT ?, … FROM
/// "written") SELECT COUNT(*) FROM "written"`: the number of rows written (0 or 1),
/// the entry written with the row in one statement. An update or a delete replies
/// `1` when it applied, else `0` with the row as the statement found it: `SELECT 1,
/// NULL, … FROM "written" UNION ALL SELECT 0, c1, … FROM t WHERE key = ? AND NOT
/// EXISTS (SELECT 1 FROM "written")`; a write that reads its row replies with the
/// row as it was (`SELECT c1, … FROM "written"`), or nothing.
/// The write is `UPDATE t SET …
/// WHERE key = ? AND c IS NOT DISTINCT FROM ? … AND <no foreign index>`, `INSERT
/// INTO t (…) SELECT ?, … WHERE <no foreign index>` or `DELETE FROM t WHERE key = ?
/// AND c IS NOT DISTINCT FROM ? … AND <no foreign index>`, where `<no foreign index>` is
/// `NOT EXISTS (SELECT 1 FROM registry WHERE table_name = ? AND definition NOT IN
/// (?, …))`; one that reads its row is `UPDATE t AS memdex_new SET … FROM (SELECT
/// <every column> FROM t WHERE key = ? FOR UPDATE) AS memdex_old WHERE
/// memdex_new.key = memdex_old.key AND <no foreign index> RETURNING
/// memdex_old.<every column>` or `DELETE FROM t WHERE key = ? AND <no foreign index>
/// RETURNING <every column>`. `None` where the dialect cannot, or when the
/// registry's schema lacks its columns.
///
/// Text comparisons in the guard are byte-wise, as index nodes compare them. The
/// registry is read by the same statement that holds the table's write lock, as
/// `crate::registry` of the runtime requires of a write's lookup: a registration
/// locks the table against writers, so it either committed before this statement's
/// snapshot or waits for it.
pub fn guarded_write_with_entry(d: Dialect, write: &GuardedWrite<'_>) -> Option<SqlQuery> {
    let imp = d.imp();
    if !imp.data_modifying_with() {
        return None;
    }
    let mut e = Emitter::without_params(imp, write.schema);
    let written = match write.change {
        RowChange::Update { unchanged } => {
            SetExpr::Update(Statement::Update(guarded_update(&mut e, write, unchanged, write.row)?))
        }
        RowChange::Move { unchanged, was } => {
            SetExpr::Update(Statement::Update(guarded_update(&mut e, write, unchanged, was)?))
        }
        RowChange::Insert => SetExpr::Insert(Statement::Insert(guarded_insert(&mut e, write)?)),
        RowChange::Delete { unchanged } => SetExpr::Delete(guarded_delete(&mut e, write, unchanged)?),
        RowChange::UpdateReading { .. } => {
            SetExpr::Update(Statement::Update(ddl::update_returning_old_statement(&mut e, write.row, |e| {
                no_foreign_index(e, write).map(Some)
            })?))
        }
        RowChange::DeleteReading { .. } => SetExpr::Delete(delete_returning_old(&mut e, write)?),
    };
    let mut ctes = vec![cte(&e, WRITTEN, written)];
    // The clean-up and the entry bind theirs after the write's.
    let mut o = Emitter::without_params(imp, write.outbox);
    o.values = std::mem::take(&mut e.values);
    if !write.forget.is_empty() {
        let selection = o.column_in_values(write.outbox.key, write.forget.to_vec());
        ctes.push(cte(&o, "forgotten", SetExpr::Delete(ddl::delete_statement(&o, selection))));
    }
    let entry = entry_insert(&mut o, write.entry, write.schema, write.change.old_nodes())?;
    ctes.push(cte(&o, "entry", SetExpr::Insert(Statement::Insert(entry))));
    // The reply binds its key after everything else.
    let mut r = Emitter::without_params(imp, write.schema);
    r.values = std::mem::take(&mut o.values);
    let mut query = match write.change {
        RowChange::Insert => {
            let count = ast::select(vec![ast::count_star()], ast::object_name(imp.quote(), WRITTEN), None);
            ast::query(SetExpr::Select(Box::new(count)))
        }
        RowChange::Update { .. } | RowChange::Move { .. } | RowChange::Delete { .. } => written_or_row(&mut r, write),
        RowChange::UpdateReading { .. } | RowChange::DeleteReading { .. } => {
            let old = ast::select_items(all_columns(&r), ast::object_name(imp.quote(), WRITTEN), None);
            ast::query(SetExpr::Select(Box::new(old)))
        }
    };
    query.with = Some(with(ctes));
    Some(finish(Statement::Query(Box::new(query)), r))
}

/// `SELECT 1, NULL, … FROM "written" UNION ALL SELECT 0, c1, … FROM t WHERE key = ?
/// AND NOT EXISTS (SELECT 1 FROM "written")`: one row `1, NULL, …` when the write
/// applied; otherwise `0` and the row with the written row's key as the statement
/// found it (its snapshot: before this statement's own change), or no row when there
/// was none. A shut guard's reply so says what the indexed columns hold, and the
/// caller's next attempt can be guarded by them without reading the row first. The
/// row is read only when nothing was written (an uncorrelated `NOT EXISTS` is
/// evaluated once, before the scan): a write that applied pays nothing for it.
fn written_or_row(r: &mut Emitter<'_>, write: &GuardedWrite<'_>) -> Query {
    let q = r.dialect.quote();
    let flag = |n: u64| SelectItem::UnnamedExpr(ast::cast(ast::number(n), sqlparser::ast::DataType::BigInt(None)));
    let mut applied = vec![flag(1)];
    applied.extend(write.schema.columns.iter().map(|_| SelectItem::UnnamedExpr(ast::null())));
    let applied = ast::select_items(applied, ast::object_name(q, WRITTEN), None);
    let mut found = vec![flag(0)];
    found.extend(all_columns(r));
    let key = write.row.get(write.schema.key).cloned().unwrap_or(Value::Null);
    let nothing_written = SqlExpr::Exists {
        subquery: Box::new(ast::query(SetExpr::Select(Box::new(ast::select(
            vec![ast::number(1)],
            ast::object_name(q, WRITTEN),
            None,
        ))))),
        negated: true,
    };
    let selection = ast::and_all(vec![ddl::key_equals(r, &key), nothing_written]);
    let found = ast::select_items(found, r.table(), selection);
    ast::query(SetExpr::SetOperation {
        op: SetOperator::Union,
        set_quantifier: SetQuantifier::All,
        left: Box::new(SetExpr::Select(Box::new(applied))),
        right: Box::new(SetExpr::Select(Box::new(found))),
    })
}

/// `UPDATE t SET … WHERE key = ? AND c IS NOT DISTINCT FROM ? … AND <no foreign
/// index> RETURNING key`, the guarded columns compared with `was`'s values.
fn guarded_update(e: &mut Emitter<'_>, write: &GuardedWrite<'_>, unchanged: &[usize], was: &[Value]) -> Option<Update> {
    let assignments = ddl::assignments(e, write.row);
    let selection = row_guard(e, write, unchanged, was)?;
    Some(ddl::update_statement(ast::table(e.table()), assignments, None, selection, Some(key_returned(e))))
}

/// `DELETE FROM t WHERE key = ? AND c IS NOT DISTINCT FROM ? … AND <no foreign
/// index> RETURNING key`.
fn guarded_delete(e: &mut Emitter<'_>, write: &GuardedWrite<'_>, unchanged: &[usize]) -> Option<Statement> {
    let selection = row_guard(e, write, unchanged, write.row)?;
    let mut delete = ddl::delete_statement(e, selection);
    if let Statement::Delete(delete) = &mut delete {
        delete.returning = Some(key_returned(e));
    }
    Some(delete)
}

/// `DELETE FROM t WHERE key = ? AND <no foreign index> RETURNING <every column>`.
fn delete_returning_old(e: &mut Emitter<'_>, write: &GuardedWrite<'_>) -> Option<Statement> {
    let key = write.row.get(write.schema.key).cloned().unwrap_or(Value::Null);
    let key = ddl::key_equals(e, &key);
    let selection = binary(key, BinaryOperator::And, no_foreign_index(e, write)?);
    let mut delete = ddl::delete_statement(e, selection);
    if let Statement::Delete(delete) = &mut delete {
        delete.returning = Some(all_columns(e));
    }
    Some(delete)
}

/// `key = ? AND c IS NOT DISTINCT FROM ? … AND <no foreign index>`: the row with
/// the row's key, its `unchanged` columns holding `was`'s values, and no index of
/// the table the writer does not know.
fn row_guard(e: &mut Emitter<'_>, write: &GuardedWrite<'_>, unchanged: &[usize], was: &[Value]) -> Option<SqlExpr> {
    let key = write.row.get(write.schema.key).cloned().unwrap_or(Value::Null);
    let mut guard = vec![ddl::key_equals(e, &key)];
    for &column in unchanged {
        let value = was.get(column).cloned().unwrap_or(Value::Null);
        guard.push(e.column_unchanged(column, value));
    }
    guard.push(no_foreign_index(e, write)?);
    Some(ast::and_all(guard).unwrap_or_else(ast::constant_false))
}

/// `INSERT INTO t (…) SELECT ?, … WHERE <no foreign index> RETURNING key`.
fn guarded_insert(e: &mut Emitter<'_>, write: &GuardedWrite<'_>) -> Option<Insert> {
    let values = typed_values(e, write.schema, write.row);
    let guard = no_foreign_index(e, write)?;
    let source = ast::query(SetExpr::Select(Box::new(ast::select_values(values, Some(guard)))));
    let mut insert = ddl::insert_statement(e.table(), column_names(e), source, None);
    insert.returning = Some(key_returned(e));
    Some(insert)
}

/// `RETURNING`'s list: the written row's key.
fn key_returned(e: &Emitter<'_>) -> Vec<SelectItem> {
    vec![SelectItem::UnnamedExpr(e.column(e.schema.key))]
}

/// `NOT EXISTS (SELECT 1 FROM registry WHERE table_name = ? AND definition NOT IN
/// (?, …))`: the registry holds no index of the written table beyond those the
/// writer knows. Its values are bound in `e`'s list; `None` when the registry's
/// schema lacks its columns.
fn no_foreign_index(e: &mut Emitter<'_>, write: &GuardedWrite<'_>) -> Option<SqlExpr> {
    let table_name = write.registry.column_index("table_name")?;
    let definition = write.registry.column_index("definition")?;
    let mut r = Emitter::without_params(e.dialect, write.registry);
    r.values = std::mem::take(&mut e.values);
    let table = r.bind(Value::Text(write.schema.table.clone()));
    let mut foreign = vec![binary(r.column(table_name), BinaryOperator::Eq, table)];
    if !write.known.is_empty() {
        let known = write.known.iter().map(|k| r.bind(Value::Text(k.clone()))).collect();
        foreign.push(SqlExpr::In {
            expr: Box::new(r.column(definition)),
            target: InTarget::List(known),
            negated: true,
            global: false,
        });
    }
    let registered = ast::select(vec![ast::number(1)], r.table(), ast::and_all(foreign));
    e.values = std::mem::take(&mut r.values);
    Some(SqlExpr::Exists { subquery: Box::new(ast::query(SetExpr::Select(Box::new(registered)))), negated: true })
}

/// The quoted names of every column of `e`'s schema.
fn column_names(e: &Emitter<'_>) -> Vec<sqlparser::ast::ObjectName> {
    let q = e.dialect.quote();
    e.schema.columns.iter().map(|c| ast::object_name(q, &c.name)).collect()
}

/// Every value of `row` bound and typed as its column: a `SELECT` gives bound
/// values no type of its own.
fn typed_values(e: &mut Emitter<'_>, schema: &Schema, row: &[Value]) -> Vec<SqlExpr> {
    (schema.columns.iter().zip(row))
        .map(|(c, v)| {
            let placeholder = e.bind(v.clone());
            e.dialect.typed(placeholder, c.ty)
        })
        .collect()
}

/// `INSERT INTO outbox (columns) SELECT ?, … FROM "written"`: the entry, once per
/// written row. With `old_nodes`, its keys are followed by the key of each node
/// the row was in, spelled from the row as the write read it: `CAST(? AS TEXT) ||
/// CAST(? AS TEXT) || CAST(? AS TEXT) || <the text of "c"> …` (the keys, then per
/// node the separator and each piece, shortened as a whole where it may be long;
/// the pieces bound after the entry's other values). `None` when the dialect cannot
/// spell a column.
fn entry_insert(o: &mut Emitter<'_>, entry: &[Value], written: &Schema, old_nodes: &[NodeSpelling]) -> Option<Insert> {
    let mut values = typed_values(o, o.schema, entry);
    if let (false, Some(keys)) = (old_nodes.is_empty(), values.get_mut(KEYS_COLUMN)) {
        let mut spelled = ast::cast(std::mem::replace(keys, ast::null()), sqlparser::ast::DataType::Text);
        for node in old_nodes {
            spelled = concat(spelled, typed_text(o, ENTRY_KEY_SEPARATOR));
            spelled = concat(spelled, node_key(o, written, node)?);
        }
        *keys = spelled;
    }
    let source = ast::select(values, ast::object_name(o.dialect.quote(), WRITTEN), None);
    let source = ast::query(SetExpr::Select(Box::new(source)));
    Some(ddl::insert_statement(o.table(), column_names(o), source, None))
}

/// The key of one node the written row was in, from its pieces: text bound,
/// columns of "written" spelled by the dialect.
fn node_key(o: &mut Emitter<'_>, written: &Schema, node: &NodeSpelling) -> Option<SqlExpr> {
    let quote = o.dialect.quote();
    let mut pieces = Vec::with_capacity(node.parts.len());
    for part in &node.parts {
        pieces.push(match part {
            KeyPart::Text(text) => typed_text(o, text),
            KeyPart::Column { column, prefix } => {
                let c = written.columns.get(*column)?;
                o.dialect.key_text(ast::column(quote, &c.name), c.ty, *prefix)?
            }
        });
    }
    let key = ast::fold(pieces, BinaryOperator::StringConcat)?;
    if node.may_be_long { o.dialect.shortened_key(key) } else { Some(key) }
}

/// The outbox column holding an entry's keys, one per line.
const KEYS_COLUMN: usize = 1;
/// What separates the keys of an entry.
pub const ENTRY_KEY_SEPARATOR: &str = "\n";

/// `CAST(? AS TEXT)`, `text` bound.
fn typed_text(o: &mut Emitter<'_>, text: &str) -> SqlExpr {
    let placeholder = o.bind(Value::Text(text.to_owned()));
    ast::cast(placeholder, sqlparser::ast::DataType::Text)
}

/// The values [`guarded_write_with_entry`] binds, in its order: for an update (or a
/// move) the non-key columns, the key and the guarded columns' values (a move's
/// from the row as read), for an insert the row, for a delete the key and the
/// guarded columns, for an update that reads its row the non-key columns and the
/// key, for a delete that does the key; then the table's name, the known
/// definitions, the entries to forget, the entry, the pieces of text spelling the
/// nodes the row was in (for a write that reads its row), and, for a guarded update
/// or delete, the key again, for the reply's row.
/// Its text depends on the dialect, the schemas, the change (and its guarded
/// columns) and the numbers of known definitions and of entries to forget alone.
pub fn guarded_write_params(write: &GuardedWrite<'_>) -> Vec<Value> {
    let mut params = match write.change {
        RowChange::Update { unchanged } => {
            let mut params = ddl::update_params(write.schema, write.row);
            params.extend(guarded_values(unchanged, write.row));
            params
        }
        RowChange::Move { unchanged, was } => {
            let mut params = ddl::update_params(write.schema, write.row);
            params.extend(guarded_values(unchanged, was));
            params
        }
        RowChange::Insert => write.row.to_vec(),
        RowChange::Delete { unchanged } => {
            let key = write.row.get(write.schema.key).cloned().unwrap_or(Value::Null);
            std::iter::once(key).chain(guarded_values(unchanged, write.row)).collect()
        }
        RowChange::UpdateReading { .. } => ddl::update_params(write.schema, write.row),
        RowChange::DeleteReading { .. } => vec![write.row.get(write.schema.key).cloned().unwrap_or(Value::Null)],
    };
    params.push(Value::Text(write.schema.table.clone()));
    params.extend(write.known.iter().map(|k| Value::Text(k.clone())));
    params.extend(write.forget.iter().cloned());
    params.extend(write.entry.iter().cloned());
    params.extend(spelling_params(write.change.old_nodes()));
    if matches!(write.change, RowChange::Update { .. } | RowChange::Move { .. } | RowChange::Delete { .. }) {
        params.push(write.row.get(write.schema.key).cloned().unwrap_or(Value::Null));
    }
    params
}

/// The values the spelling of `old_nodes` binds: per node, the separator and then
/// its text pieces.
fn spelling_params(old_nodes: &[NodeSpelling]) -> impl Iterator<Item = Value> + '_ {
    old_nodes.iter().flat_map(|node| {
        let texts = node.parts.iter().filter_map(|part| match part {
            KeyPart::Text(text) => Some(Value::Text(text.clone())),
            KeyPart::Column { .. } => None,
        });
        std::iter::once(Value::Text(ENTRY_KEY_SEPARATOR.to_owned())).chain(texts)
    })
}

/// `was`'s values of the guarded columns, in the guard's order.
fn guarded_values<'w>(unchanged: &'w [usize], was: &'w [Value]) -> impl Iterator<Item = Value> + 'w {
    unchanged.iter().map(|&c| was.get(c).cloned().unwrap_or(Value::Null))
}
