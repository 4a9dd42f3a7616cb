//! An update that records its outbox entry in the same statement, where the
//! dialect runs writes inside a `WITH` (PostgreSQL): one autocommitted statement in
//! place of a transaction of four round trips.
//!
//! A write must append its entry to every index node its row was in and is in, and
//! record the keys it touches durably with the write itself. Both need the row's
//! old index values, which cost a locked read, unless the update is made to apply
//! only when those values are the ones it writes: then the nodes it was in are the
//! nodes it is in, all known before the statement runs. So the update is guarded —
//! it changes no row when an indexed column would change, or when the index
//! registry holds an index of the table the writer does not know (another version
//! of the model declares it) — and the caller, told that no row changed, writes the
//! row the long way.

use sqlparser::ast::{BinaryOperator, Expr as SqlExpr, InTarget, SelectItem, SetExpr, Statement};

use super::ast::{self, binary};
use super::ddl;
use super::emit::Emitter;
use super::{Dialect, SqlQuery, cte, finish, with};
use crate::schema::Schema;
use crate::value::Value;

/// The CTE holding the updated row's key, when the guard let the update apply.
const WRITTEN: &str = "written";

/// What [`guarded_update_with_entry`] writes, and what guards it.
#[derive(Clone, Copy, Debug)]
pub struct GuardedUpdate<'a> {
    /// The written row's schema.
    pub schema: &'a Schema,
    /// The written row's values, in schema column order.
    pub row: &'a [Value],
    /// The columns whose stored values must equal `row`'s for the update to apply
    /// (those naming the row's index nodes).
    pub unchanged: &'a [usize],
    /// The index registry's schema (with `table_name` and `definition` columns).
    pub registry: &'a Schema,
    /// The definitions of the table's indexes the writer knows: a registered index
    /// of the table beyond them stops the update.
    pub known: &'a [String],
    /// The outbox's schema.
    pub outbox: &'a Schema,
    /// The entry's row, in the outbox's column order; written only when the update
    /// applied.
    pub entry: &'a [Value],
    /// The keys of done outbox entries to delete, whatever the guard decides.
    pub forget: &'a [Value],
}

/// `WITH "written" AS (UPDATE t SET … WHERE key = ? AND c IS NOT DISTINCT FROM ? …
/// AND NOT EXISTS (SELECT 1 FROM registry WHERE table_name = ? AND definition NOT IN
/// (?, …)) RETURNING key), "forgotten" AS (DELETE FROM outbox WHERE id IN (…)),
/// "entry" AS (INSERT INTO outbox (…) SELECT ?, … FROM "written") SELECT COUNT(*)
/// FROM "written"`: the number of rows updated (0 or 1), the entry written with the
/// row in one statement. `None` where the dialect cannot, or when the registry's
/// schema lacks its columns.
///
/// Text comparisons in the guard are byte-wise, as index nodes compare them. The
/// registry is read by the same statement that holds the table's write lock, as
/// `crate::registry` of the runtime requires of a write's lookup: a registration
/// locks the table against writers, so it either committed before this statement's
/// snapshot or waits for it.
pub fn guarded_update_with_entry(d: Dialect, write: &GuardedUpdate<'_>) -> Option<SqlQuery> {
    let imp = d.imp();
    if !imp.data_modifying_with() {
        return None;
    }
    let table_name = write.registry.column_index("table_name")?;
    let definition = write.registry.column_index("definition")?;
    let mut e = Emitter::without_params(imp, write.schema);
    let assignments = ddl::assignments(&mut e, write.row);
    let key = write.row.get(write.schema.key).cloned().unwrap_or(Value::Null);
    let mut guard = vec![ddl::key_equals(&mut e, &key)];
    for &column in write.unchanged {
        let value = write.row.get(column).cloned().unwrap_or(Value::Null);
        guard.push(e.column_unchanged(column, value));
    }
    // The registry's subquery binds its values after the update's, in one list.
    let mut r = Emitter::without_params(imp, write.registry);
    r.values = std::mem::take(&mut e.values);
    let mut foreign =
        vec![binary(r.column(table_name), BinaryOperator::Eq, r.bind(Value::Text(write.schema.table.clone())))];
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
    guard
        .push(SqlExpr::Exists { subquery: Box::new(ast::query(SetExpr::Select(Box::new(registered)))), negated: true });
    e.values = std::mem::take(&mut r.values);
    let returning = Some(vec![SelectItem::UnnamedExpr(e.column(write.schema.key))]);
    let selection = ast::and_all(guard).unwrap_or_else(ast::constant_false);
    let update = ddl::update_statement(ast::table(e.table()), assignments, None, selection, returning);
    let mut ctes = vec![cte(&e, WRITTEN, SetExpr::Update(Statement::Update(update)))];
    // The clean-up and the entry bind theirs after the registry's.
    let mut o = Emitter::without_params(imp, write.outbox);
    o.values = std::mem::take(&mut e.values);
    if !write.forget.is_empty() {
        let selection = o.column_in_values(write.outbox.key, write.forget.to_vec());
        ctes.push(cte(&o, "forgotten", SetExpr::Delete(ddl::delete_statement(&o, selection))));
    }
    let entry = entry_insert(&mut o, write.entry);
    ctes.push(cte(&o, "entry", SetExpr::Insert(Statement::Insert(entry))));
    let written = ast::object_name(imp.quote(), WRITTEN);
    let mut query = ast::query(SetExpr::Select(Box::new(ast::select(vec![ast::count_star()], written, None))));
    query.with = Some(with(ctes));
    Some(finish(Statement::Query(Box::new(query)), o))
}

/// `INSERT INTO outbox (columns) SELECT ?, … FROM "written"`: the entry, once per
/// updated row. Each value is typed as its column, since a `SELECT` gives bound
/// values no type of its own.
fn entry_insert(o: &mut Emitter<'_>, entry: &[Value]) -> sqlparser::ast::Insert {
    let q = o.dialect.quote();
    let outbox = o.schema;
    let columns = outbox.columns.iter().map(|c| ast::object_name(q, &c.name)).collect();
    let values: Vec<SqlExpr> = (outbox.columns.iter().zip(entry))
        .map(|(c, v)| {
            let placeholder = o.bind(v.clone());
            o.dialect.typed(placeholder, c.ty)
        })
        .collect();
    let source = ast::query(SetExpr::Select(Box::new(ast::select(values, ast::object_name(q, WRITTEN), None))));
    ddl::insert_statement(o.table(), columns, source, None)
}

/// The values [`guarded_update_with_entry`] binds, in its order: the non-key
/// columns, the key, the guarded columns, the table's name, the known definitions,
/// the entries to forget, then the entry. Its text depends on the dialect, the
/// schemas, the guarded columns and the numbers of known definitions and of
/// entries to forget alone.
pub fn guarded_update_params(write: &GuardedUpdate<'_>) -> Vec<Value> {
    let mut params = ddl::update_params(write.schema, write.row);
    params.extend(write.unchanged.iter().map(|&c| write.row.get(c).cloned().unwrap_or(Value::Null)));
    params.push(Value::Text(write.schema.table.clone()));
    params.extend(write.known.iter().map(|k| Value::Text(k.clone())));
    params.extend(write.forget.iter().cloned());
    params.extend(write.entry.iter().cloned());
    params
}
