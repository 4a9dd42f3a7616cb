//! `CREATE TABLE` / `CREATE INDEX` and the write statements (`INSERT`, `UPDATE`,
//! `DELETE`), built as sqlparser statements.

use sqlparser::ast::helpers::attached_token::AttachedToken;
use sqlparser::ast::helpers::stmt_create_table::CreateTableBuilder;
use sqlparser::ast::{
    Assignment, AssignmentTarget, BinaryOperator, ColumnDef, ColumnOption, ColumnOptionDef, CreateIndex, Delete,
    Expr as SqlExpr, FromTable, Ident, IndexColumn, IndexType, Insert, ObjectName, OrderByExpr, OrderByOptions,
    OrderBySort, Parens, PrimaryKeyConstraint, SelectItem, SetExpr, Statement, TableFactor, TableObject,
    TableWithJoins, Update, UpdateTableFromKind, Values,
};

use super::ast::{self, binary, ident};
use super::dialect::SqlDialect;
use super::emit::Emitter;
use super::{Dialect, SqlQuery, finish};
use crate::schema::{IndexDef, Schema};
use crate::value::{Type, Value};

/// `ALTER TABLE t ADD COLUMN c <type>`: a nullable column added in place to a table
/// an older version created (memdex's own outbox table).
pub fn add_column(d: Dialect, schema: &Schema, column: usize) -> String {
    let dialect = d.imp();
    let q = dialect.quote();
    let c = &schema.columns[column];
    let options = match (c.ty, dialect.text_collation()) {
        (Type::Text, Some(collation)) => {
            vec![ColumnOptionDef { name: None, option: ColumnOption::Collation(collation) }]
        }
        _ => Vec::new(),
    };
    let column_def = ColumnDef { name: ident(q, &c.name), data_type: dialect.column_type(c.ty, false), options };
    Statement::AlterTable(sqlparser::ast::AlterTable {
        name: ast::object_name(q, &schema.table),
        if_exists: false,
        only: false,
        operations: vec![sqlparser::ast::AlterTableOperation::AddColumn {
            column_keyword: true,
            if_not_exists: false,
            column_def,
            column_position: None,
        }],
        location: None,
        on_cluster: None,
        table_type: None,
        end_token: sqlparser::ast::helpers::attached_token::AttachedToken::empty(),
    })
    .to_string()
}

/// `CREATE TABLE IF NOT EXISTS …` (key as primary key, NOT NULL on non-Option
/// columns) and one `CREATE INDEX IF NOT EXISTS` per declared index. MySQL has no
/// `IF NOT EXISTS` for indexes: emit plain `CREATE INDEX` there.
///
/// Every index serves the exact SQL memdex looks nodes up with:
/// * a prefix index is an index on `substr(col, 1, n)`, the expression of the
///   prefix node fill (MySQL: a key part of the column's first `n` characters,
///   which serves the fill's `col LIKE 'ab%'`);
/// * on MySQL, text columns are `LONGTEXT` under `utf8mb4_nopad_bin` (Rust's `str`
///   comparison) and indexed through prefix key parts, exact for any length; a
///   text primary key is `VARCHAR(768)`, and a longer key is refused by
///   [`check_indexed_text`];
/// * on PostgreSQL, a one-column text index is a hash index (a btree entry holds at
///   most 2704 bytes; a hash entry any value), with a partial index on the key
///   `WHERE col IS NULL` for an optional column, since hash indexes skip NULLs;
/// * the primary key and composite indexes stay btrees: a row whose text there is
///   longer than PostgreSQL can index is refused by [`check_indexed_text`] before
///   it reaches the database.
pub fn create_table(d: Dialect, schema: &Schema) -> Vec<String> {
    create_table_with(d, schema, false)
}

/// [`create_table`]; with `auto_key`, the (integer) key numbers the rows itself
/// when an insert leaves it out (`SqlDialect::auto_key`).
pub(crate) fn create_table_with(d: Dialect, schema: &Schema, auto_key: bool) -> Vec<String> {
    let dialect = d.imp();
    let q = dialect.quote();
    let columns = schema
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let primary_key = i == schema.key;
            let mut options = Vec::new();
            if !c.nullable || primary_key {
                options.push(ColumnOptionDef { name: None, option: ColumnOption::NotNull });
            }
            if primary_key {
                options.push(ColumnOptionDef {
                    name: None,
                    option: ColumnOption::PrimaryKey(PrimaryKeyConstraint {
                        name: None,
                        index_name: None,
                        index_type: None,
                        columns: Vec::new(),
                        include: Vec::new(),
                        index_options: Vec::new(),
                        characteristics: None,
                    }),
                });
                if auto_key {
                    options.extend(dialect.auto_key().into_iter().map(|option| ColumnOptionDef { name: None, option }));
                }
            }
            if let (Type::Text, Some(collation)) = (c.ty, dialect.text_collation()) {
                options.push(ColumnOptionDef { name: None, option: ColumnOption::Collation(collation) });
            }
            ColumnDef { name: ident(q, &c.name), data_type: dialect.column_type(c.ty, primary_key), options }
        })
        .collect();
    let table =
        CreateTableBuilder::new(ast::object_name(q, &schema.table)).if_not_exists(true).columns(columns).build();
    let mut out = vec![Statement::CreateTable(table).to_string()];
    out.extend(
        planned_indexes(dialect, schema).into_iter().map(|(_, index)| Statement::CreateIndex(index).to_string()),
    );
    out
}

/// An index [`create_table`] creates, as the database's catalog shows it: a schema
/// check looks for it by name, or by its columns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexSpec {
    /// The index's name (`item_cart_id_status_idx`).
    pub name: String,
    /// The SQL names of the columns it is on, in order.
    pub columns: Vec<String>,
    /// Whether it covers only some rows (`WHERE col IS NULL`): only its name
    /// identifies it then, since an index on the same columns over every row is a
    /// different index.
    pub partial: bool,
}

/// The indexes [`create_table`] creates for `schema`, in its order.
pub fn index_specs(d: Dialect, schema: &Schema) -> Vec<IndexSpec> {
    planned_indexes(d.imp(), schema).into_iter().map(|(spec, _)| spec).collect()
}

/// Each index of `schema` with its `CREATE INDEX`: the declared ones, and on
/// PostgreSQL the partial companion of a hash index on an optional column.
/// Whether values of `ty` have no bound on their length (text, bytes): the types
/// whose index entries a dialect may have to hash or cut to a prefix.
fn unbounded(ty: Type) -> bool {
    matches!(ty, Type::Text | Type::Bytes)
}

fn planned_indexes(dialect: &dyn SqlDialect, schema: &Schema) -> Vec<(IndexSpec, CreateIndex)> {
    let q = dialect.quote();
    let mut out = Vec::new();
    for ix in &schema.indexes {
        let sql_columns = ix.sql_columns();
        let names: Vec<&str> = sql_columns.iter().map(|&c| schema.columns[c].name.as_str()).collect();
        // A one-column text (or bytes) index is looked up by equality only (node
        // fills): where a btree entry has a size limit, a hash index takes values of
        // any length.
        let single_text = match sql_columns.as_slice() {
            [c] => Some(*c).filter(|&c| unbounded(schema.columns[c].ty)),
            _ => None,
        };
        let hash = single_text.is_some() && dialect.text_hash_index();
        // Names say what the index is, so that a definition memdex changes gets a
        // new index on the next `migrate` instead of being skipped by IF NOT EXISTS.
        let mut index_name = format!("{}_{}", schema.table, names.join("_"));
        if let Some(n) = ix.prefix {
            index_name.push_str(&format!("_prefix{n}"));
        }
        if hash {
            index_name.push_str("_hash");
        }
        let descending = ix.order.is_some_and(|o| o.descending);
        if descending {
            index_name.push_str("_desc");
        }
        index_name.push_str("_idx");
        let text_parts = sql_columns.iter().filter(|&&c| unbounded(schema.columns[c].ty)).count();
        let mut columns: Vec<IndexColumn> = sql_columns
            .iter()
            .map(|&c| {
                let col = &schema.columns[c];
                index_column(dialect.index_part(ident(q, &col.name), col.ty, ix.prefix, text_parts))
            })
            .collect();
        if let (true, Some(last)) = (descending, columns.last_mut()) {
            last.column.options.sort = Some(OrderBySort::Desc);
        }
        let mut index = create_index(dialect, ast::object_name(q, &schema.table), ident(q, &index_name), columns);
        index.using = hash.then_some(IndexType::Hash);
        let spec =
            IndexSpec { name: index_name, columns: names.iter().map(|&n| n.to_owned()).collect(), partial: false };
        out.push((spec, index));
        // A hash index does not index NULL: the `None` node of an optional column is
        // filled with `col IS NULL`, served by a partial index of its rows.
        if let (true, Some(c)) = (hash, single_text.filter(|&c| schema.columns[c].nullable)) {
            out.push(null_companion(dialect, schema, c));
        }
    }
    out
}

/// `CREATE INDEX t_col_null_idx ON t (key) WHERE col IS NULL`.
fn null_companion(dialect: &dyn SqlDialect, schema: &Schema, column: usize) -> (IndexSpec, CreateIndex) {
    let q = dialect.quote();
    let col = &schema.columns[column];
    let key = &schema.columns[schema.key];
    let name = format!("{}_{}_null_idx", schema.table, col.name);
    let mut index = create_index(
        dialect,
        ast::object_name(q, &schema.table),
        ident(q, &name),
        vec![index_column(SqlExpr::Identifier(ident(q, &key.name)))],
    );
    index.predicate = Some(SqlExpr::IsNull(Box::new(SqlExpr::Identifier(ident(q, &col.name)))));
    (IndexSpec { name, columns: vec![key.name.clone()], partial: true }, index)
}

fn index_column(expr: SqlExpr) -> IndexColumn {
    IndexColumn {
        column: OrderByExpr { expr, options: OrderByOptions { sort: None, nulls_first: None }, with_fill: None },
        operator_class: None,
    }
}

fn create_index(dialect: &dyn SqlDialect, table: ObjectName, name: Ident, columns: Vec<IndexColumn>) -> CreateIndex {
    CreateIndex {
        name: Some(ObjectName::from(vec![name])),
        table_name: table,
        using: None,
        columns,
        unique: false,
        concurrently: false,
        r#async: false,
        if_not_exists: dialect.index_if_not_exists(),
        include: Vec::new(),
        nulls_distinct: None,
        with: Vec::new(),
        predicate: None,
        index_options: Vec::new(),
        alter_options: Vec::new(),
    }
}

/// A text value too long for a btree index entry of the database: PostgreSQL
/// refuses such a row ("index row size exceeds btree version 4 maximum 2704"). The
/// cases memdex cannot index otherwise: a text primary key (always a btree) and a
/// composite index with a text column (PostgreSQL's hash indexes have one column).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{field} is too long to index on {dialect}: {what} holds at most {limit} {unit} of text per row, this row has \
     {bytes} (a {dialect} btree entry holds at most {entry_limit} bytes)"
)]
pub struct IndexedTextTooLong {
    /// The field (Rust name) of the longest text column of that index.
    pub field: String,
    /// The text the row puts into that index entry, in `unit`s.
    pub bytes: usize,
    /// The most text one entry of that index takes, in `unit`s.
    pub limit: usize,
    /// `bytes` (PostgreSQL's limits), or `characters` (MySQL's `VARCHAR` key).
    pub unit: &'static str,
    /// `the primary key (name)`, `index (cart_id, status)`.
    pub what: String,
    /// The database whose limit it is (`PostgreSQL`).
    pub dialect: &'static str,
    /// The largest btree index entry of that database, in bytes.
    pub entry_limit: usize,
}

/// Bytes of a btree index entry that are not the text itself, counted generously
/// so that the limit holds for any row: the 8-byte tuple header and null bitmap
/// with alignment, and per column up to 8 bytes of alignment and 8 of value or
/// varlena header.
fn btree_overhead(columns: usize) -> usize {
    16 + 16 * columns
}

/// Checks that `row` (in schema column order) fits every btree index entry the
/// dialect limits ([`create_table`] makes one-column text indexes hash indexes where
/// that matters, so only the primary key and composite indexes remain).
///
/// # Errors
///
/// [`IndexedTextTooLong`] for the first index entry the row's text would overflow;
/// the database would refuse the write with a less helpful message.
pub fn check_indexed_text(d: Dialect, schema: &Schema, row: &[Value]) -> Result<(), IndexedTextTooLong> {
    let dialect = d.imp();
    if let (Some(limit), Type::Text, Some(Value::Text(key))) =
        (dialect.text_key_chars(), schema.key_column().ty, row.get(schema.key))
    {
        let chars = key.chars().count();
        if chars > limit {
            return Err(IndexedTextTooLong {
                field: format!("{}.{}", schema.model, schema.key_column().field),
                bytes: chars,
                limit,
                unit: "characters",
                what: format!("the primary key ({})", schema.key_column().field),
                dialect: dialect_name(d),
                // Four bytes per `utf8mb4` character.
                entry_limit: limit * 4,
            });
        }
    }
    let Some(entry_limit) = dialect.btree_entry_limit() else { return Ok(()) };
    let key = [schema.key];
    let mut btrees: Vec<(&[usize], Option<u32>, String)> = Vec::new();
    if schema.key_column().ty == Type::Text {
        btrees.push((&key, None, format!("the primary key ({})", schema.key_column().field)));
    }
    let sql_columns: Vec<Vec<usize>> = schema.indexes.iter().map(IndexDef::sql_columns).collect();
    for (ix, columns) in schema.indexes.iter().zip(&sql_columns) {
        let hashed = columns.len() == 1 && dialect.text_hash_index();
        if !hashed {
            let fields: Vec<&str> = columns.iter().map(|&c| schema.columns[c].field.as_str()).collect();
            btrees.push((columns, ix.prefix, format!("index ({})", fields.join(", "))));
        }
    }
    for (columns, prefix, what) in btrees {
        let limit = entry_limit.saturating_sub(btree_overhead(columns.len()));
        let mut bytes = 0;
        let mut longest: Option<(usize, usize)> = None;
        for &c in columns {
            // Byte strings have no length bound either, and only a prefix index
            // of text cuts its values.
            let len = match (row.get(c), prefix) {
                (Some(Value::Text(s)), Some(n)) => s.chars().take(n as usize).map(char::len_utf8).sum(),
                (Some(Value::Text(s)), None) => s.len(),
                (Some(Value::Bytes(b)), _) => b.len(),
                _ => continue,
            };
            bytes += len;
            if longest.is_none_or(|(_, l)| len > l) {
                longest = Some((c, len));
            }
        }
        if let (true, Some((c, _))) = (bytes > limit, longest) {
            return Err(IndexedTextTooLong {
                field: format!("{}.{}", schema.model, schema.columns[c].field),
                bytes,
                limit,
                unit: "bytes",
                what,
                dialect: dialect_name(d),
                entry_limit,
            });
        }
    }
    Ok(())
}

fn dialect_name(d: Dialect) -> &'static str {
    match d {
        Dialect::Sqlite => "SQLite",
        Dialect::Postgres => "PostgreSQL",
        Dialect::MySql => "MySQL",
    }
}

/// `INSERT INTO t (all columns) VALUES (…)`; `row` in schema column order.
pub fn insert(d: Dialect, schema: &Schema, row: &[Value]) -> SqlQuery {
    insert_with(d, schema, row, None)
}

/// [`insert`], except that a row whose key exists is kept as it is, without an
/// error (`ON CONFLICT DO NOTHING`; MySQL `ON DUPLICATE KEY UPDATE key = key`): for
/// rows that several processes may insert at once, all alike.
pub fn insert_or_keep(d: Dialect, schema: &Schema, row: &[Value]) -> SqlQuery {
    let key = ident(d.imp().quote(), &schema.key_column().name);
    insert_with(d, schema, row, Some(d.imp().keep_existing(key)))
}

fn insert_with(d: Dialect, schema: &Schema, row: &[Value], on: Option<sqlparser::ast::OnInsert>) -> SqlQuery {
    let mut e = Emitter::without_params(d.imp(), schema);
    let mut statement = insert_values(&mut e, row);
    statement.on = on;
    finish(Statement::Insert(statement), e)
}

/// `INSERT INTO table (columns) VALUES (row)`, the values bound in `e`.
pub(super) fn insert_values(e: &mut Emitter<'_>, row: &[Value]) -> Insert {
    let q = e.dialect.quote();
    let columns = e.schema.columns.iter().map(|c| ObjectName::from(vec![ident(q, &c.name)])).collect();
    let values: Vec<SqlExpr> = row.iter().map(|v| e.bind(v.clone())).collect();
    let source = ast::query(SetExpr::Values(Values {
        explicit_row: false,
        value_keyword: false,
        rows: vec![Parens {
            opening_token: AttachedToken::empty(),
            content: values,
            closing_token: AttachedToken::empty(),
        }],
    }));
    insert_statement(e.table(), columns, source, None)
}

/// `INSERT INTO table (columns) source [on]`.
pub(crate) fn insert_statement(
    table: ObjectName,
    columns: Vec<ObjectName>,
    source: sqlparser::ast::Query,
    on: Option<sqlparser::ast::OnInsert>,
) -> Insert {
    Insert {
        insert_token: AttachedToken::empty(),
        optimizer_hints: Vec::new(),
        or: None,
        ignore: false,
        into: true,
        table: TableObject::TableName(table),
        table_alias: None,
        columns,
        by_name: false,
        overwrite: false,
        source: Some(Box::new(source)),
        assignments: Vec::new(),
        partitioned: None,
        after_columns: Vec::new(),
        overriding: None,
        has_table_keyword: false,
        on,
        returning: None,
        output: None,
        replace_into: false,
        priority: None,
        insert_alias: None,
        settings: None,
        format_clause: None,
        multi_table_insert_type: None,
        multi_table_into_clauses: Vec::new(),
        multi_table_when_clauses: Vec::new(),
        multi_table_else_clause: None,
    }
}

/// `key = ?` for the schema's key.
pub(super) fn key_equals(e: &mut Emitter<'_>, key: &Value) -> SqlExpr {
    let col = e.column(e.schema.key);
    let ph = e.bind(key.clone());
    binary(col, BinaryOperator::Eq, ph)
}

/// The values [`insert`] binds, in its order: `row`, in schema order. Its text
/// depends on the dialect and the schema alone (every value is a placeholder), so a
/// caller that keeps the text of one insert needs only these for the next.
pub fn insert_params(row: &[Value]) -> Vec<Value> {
    row.to_vec()
}

/// The values [`update`] and [`update_returning_old`] bind, in their order: every
/// non-key column of `row`, then the key. As for [`insert_params`], their texts
/// depend on the dialect and the schema alone.
pub fn update_params(schema: &Schema, row: &[Value]) -> Vec<Value> {
    let non_key = row.iter().enumerate().filter(|&(i, _)| i != schema.key).map(|(_, v)| v.clone());
    non_key.chain(std::iter::once(row.get(schema.key).cloned().unwrap_or(Value::Null))).collect()
}

/// `UPDATE t SET <every non-key column> = ? WHERE key = ?`; `row` in schema order.
pub fn update(d: Dialect, schema: &Schema, row: &[Value]) -> SqlQuery {
    let mut e = Emitter::without_params(d.imp(), schema);
    let assignments = assignments(&mut e, row);
    let key = row.get(schema.key).cloned().unwrap_or(Value::Null);
    let selection = key_equals(&mut e, &key);
    let statement = update_statement(ast::table(e.table()), assignments, None, selection, None);
    finish(Statement::Update(statement), e)
}

/// [`update`] that also returns the row as it was, read and locked in the same
/// statement — `UPDATE t AS memdex_new SET … FROM (SELECT <every column> FROM t WHERE
/// key = ? FOR UPDATE) AS memdex_old WHERE memdex_new.key = memdex_old.key RETURNING
/// memdex_old.<every column>` — where the dialect can; `None` elsewhere (the write
/// then reads the row with [`super::row_for_update`] first).
///
/// The locking subquery runs before the update touches the row, so the old values
/// are those of the latest committed version, exactly as a separate `SELECT … FOR
/// UPDATE` in the same transaction would read them.
pub fn update_returning_old(d: Dialect, schema: &Schema, row: &[Value]) -> Option<SqlQuery> {
    let imp = d.imp();
    if !imp.returns_old_rows() {
        return None;
    }
    let mut e = Emitter::without_params(imp, schema);
    let statement = update_returning_old_statement(&mut e, row, |_| Some(None))?;
    Some(finish(Statement::Update(statement), e))
}

/// The statement of [`update_returning_old`], its selection also requiring what
/// `also` builds (binding its values after the rest); `None` when `also` fails.
pub(super) fn update_returning_old_statement<'e>(
    e: &mut Emitter<'e>,
    row: &[Value],
    also: impl FnOnce(&mut Emitter<'e>) -> Option<Option<SqlExpr>>,
) -> Option<Update> {
    let schema = e.schema;
    let q = e.dialect.quote();
    let assignments = assignments(e, row);
    let key = row.get(schema.key).cloned().unwrap_or(Value::Null);
    let old_row = ast::derived_table(super::locked_row(e, &key), OLD);
    let mut target = ast::table(e.table());
    if let TableFactor::Table { alias: target_alias, .. } = &mut target.relation {
        *target_alias = Some(ast::table_alias(NEW));
    }
    let key_name = &schema.columns[schema.key].name;
    let same_row = binary(qualified(NEW, q, key_name), BinaryOperator::Eq, qualified(OLD, q, key_name));
    let selection = match also(e)? {
        Some(also) => binary(same_row, BinaryOperator::And, also),
        None => same_row,
    };
    let from = UpdateTableFromKind::AfterSet(vec![old_row]);
    let returning = schema.columns.iter().map(|c| SelectItem::UnnamedExpr(qualified(OLD, q, &c.name))).collect();
    Some(update_statement(target, assignments, Some(from), selection, Some(returning)))
}

/// The alias of the row being written, and of the row as it was, in
/// [`update_returning_old`].
const NEW: &str = "memdex_new";
const OLD: &str = "memdex_old";

/// `alias.column`.
fn qualified(alias: &str, quote: char, column: &str) -> SqlExpr {
    SqlExpr::CompoundIdentifier(vec![Ident::new(alias), ident(quote, column)])
}

/// `<column> = ?` for every non-key column of `row`.
pub(super) fn assignments(e: &mut Emitter<'_>, row: &[Value]) -> Vec<Assignment> {
    let q = e.dialect.quote();
    let schema = e.schema;
    let mut assignments = Vec::new();
    for (i, (c, v)) in schema.columns.iter().zip(row).enumerate() {
        if i != schema.key {
            let value = e.bind(v.clone());
            assignments.push(Assignment {
                target: AssignmentTarget::ColumnName(ObjectName::from(vec![ident(q, &c.name)])),
                value,
            });
        }
    }
    assignments
}

pub(super) fn update_statement(
    table: TableWithJoins,
    assignments: Vec<Assignment>,
    from: Option<UpdateTableFromKind>,
    selection: SqlExpr,
    returning: Option<Vec<SelectItem>>,
) -> Update {
    Update {
        update_token: AttachedToken::empty(),
        optimizer_hints: Vec::new(),
        table,
        on_cluster: None,
        assignments,
        from,
        selection: Some(selection),
        returning,
        output: None,
        or: None,
        order_by: Vec::new(),
        limit: None,
        settings: None,
    }
}

/// `DELETE FROM t WHERE key = ?`.
pub fn delete(d: Dialect, schema: &Schema, key: &Value) -> SqlQuery {
    let mut e = Emitter::without_params(d.imp(), schema);
    let selection = key_equals(&mut e, key);
    let statement = delete_statement(&e, selection);
    finish(statement, e)
}

/// [`delete`] that also returns the row it deleted (`… RETURNING <every column>`),
/// where the dialect can; `None` elsewhere (the write then reads the row with
/// [`super::row_for_update`] first). The deleted row is the latest committed
/// version: the delete waits for any writer holding it.
pub fn delete_returning_old(d: Dialect, schema: &Schema, key: &Value) -> Option<SqlQuery> {
    let imp = d.imp();
    if !imp.returns_old_rows() {
        return None;
    }
    let mut e = Emitter::without_params(imp, schema);
    let selection = key_equals(&mut e, key);
    let mut statement = delete_statement(&e, selection);
    if let Statement::Delete(delete) = &mut statement {
        delete.returning = Some(super::all_columns(&e));
    }
    Some(finish(statement, e))
}

/// `DELETE FROM t WHERE <selection>`.
pub(super) fn delete_statement(e: &Emitter<'_>, selection: SqlExpr) -> Statement {
    Statement::Delete(Delete {
        delete_token: AttachedToken::empty(),
        optimizer_hints: Vec::new(),
        tables: Vec::new(),
        from: FromTable::WithFromKeyword(vec![ast::table(e.table())]),
        on_cluster: None,
        using: None,
        selection: Some(selection),
        returning: None,
        output: None,
        order_by: Vec::new(),
        limit: None,
        settings: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Schema {
        Schema::new("Item", "item")
            .column("id", Type::Int, false)
            .column("name", Type::Text, false)
            .column("cart_id", Type::Int, false)
            .column("status", Type::Text, false)
            .column("note", Type::Text, true)
            .key("id")
            .index(&["name"], Some(3))
            .index(&["cart_id", "status"], None)
            .index(&["note"], None)
    }

    fn text_key() -> Schema {
        Schema::new("Tag", "tag").column("name", Type::Text, false).column("kind", Type::Text, false).key("name")
    }

    /// `lens`: the byte length of each text column's value ("x" repeated), `None`
    /// for NULL; `expect`: `ok`, or the refusal as `field bytes/limit`.
    #[track_caller]
    fn check(d: Dialect, schema: &Schema, lens: &[Option<usize>], expect: &str) {
        let mut texts = lens.iter();
        let row: Vec<Value> = schema
            .columns
            .iter()
            .map(|c| match c.ty {
                Type::Text => texts.next().copied().flatten().map_or(Value::Null, |n| Value::Text("x".repeat(n))),
                _ => Value::Int(1),
            })
            .collect();
        let got = match check_indexed_text(d, schema, &row) {
            Ok(()) => "ok".to_owned(),
            Err(e) => format!("{} {}/{} {}", e.field, e.bytes, e.limit, e.what),
        };
        assert_eq!(got, expect, "{d:?} {lens:?}");
    }

    #[test]
    fn postgres_refuses_only_what_a_btree_cannot_hold() {
        let (pg, item, tag) = (Dialect::Postgres, schema(), text_key());
        // One-column text indexes (the prefix one included) are hash indexes.
        check(pg, &item, &[Some(100_000), Some(10), Some(100_000)], "ok");
        // The composite (cart_id, status): 2704 - 16 - 2 × 16 bytes of text.
        check(pg, &item, &[Some(1), Some(2656), None], "ok");
        check(pg, &item, &[Some(1), Some(2657), None], "Item.status 2657/2656 index (cart_id, status)");
        // A text key: 2704 - 16 - 16.
        check(pg, &tag, &[Some(2672), Some(100_000)], "ok");
        check(pg, &tag, &[Some(2673), Some(1)], "Tag.name 2673/2672 the primary key (name)");
    }

    #[test]
    fn sqlite_has_no_limit() {
        check(Dialect::Sqlite, &schema(), &[Some(1), Some(100_000), None], "ok");
        check(Dialect::Sqlite, &text_key(), &[Some(100_000), Some(1)], "ok");
    }

    #[test]
    fn mysql_refuses_only_a_text_key_over_its_varchar() {
        let (my, item, tag) = (Dialect::MySql, schema(), text_key());
        // Indexes are prefix key parts: any length.
        check(my, &item, &[Some(100_000), Some(100_000), Some(100_000)], "ok");
        // The key is VARCHAR(768), in characters.
        check(my, &tag, &[Some(768), Some(100_000)], "ok");
        check(my, &tag, &[Some(769), Some(1)], "Tag.name 769/768 the primary key (name)");
    }

    #[test]
    fn postgres_counts_bytes_columns_like_text() {
        let with_bytes = Schema::new("B", "b")
            .column("id", Type::Int, false)
            .column("cat", Type::Int, false)
            .column("data", Type::Bytes, false)
            .key("id")
            .index(&["data"], None)
            .index(&["cat", "data"], None);
        let row = |n: usize| vec![Value::Int(1), Value::Int(2), Value::Bytes(vec![0; n])];
        assert_eq!(check_indexed_text(Dialect::Postgres, &with_bytes, &row(2656)), Ok(()));
        let refused = check_indexed_text(Dialect::Postgres, &with_bytes, &row(2657)).map_err(|e| (e.field, e.what));
        assert_eq!(refused, Err(("B.data".to_owned(), "index (cat, data)".to_owned())));
        // The one-column index is a hash index: any length.
        let ddl = create_table(Dialect::Postgres, &with_bytes).join("\n");
        assert!(ddl.contains("USING HASH (\"data\")"), "{ddl}");
        assert!(ddl.contains("\"data\" BYTEA NOT NULL"), "{ddl}");
    }

    /// The column types of the new value types, per dialect, as `CREATE TABLE` writes them.
    #[test]
    fn column_types_per_dialect() {
        let types = Schema::new("T", "t")
            .column("id", Type::Int, false)
            .column("at", Type::Timestamp, false)
            .column("u", Type::Uuid, true)
            .column("b", Type::Bytes, false)
            .column("j", Type::Json, true)
            .key("id");
        for (d, expect) in [
            (Dialect::Sqlite, ["\"at\" INTEGER NOT NULL", "\"u\" BLOB", "\"b\" BLOB NOT NULL", "\"j\" TEXT"]),
            (Dialect::Postgres, ["\"at\" TIMESTAMPTZ NOT NULL", "\"u\" UUID", "\"b\" BYTEA NOT NULL", "\"j\" JSONB"]),
            (Dialect::MySql, ["`at` BIGINT NOT NULL", "`u` BINARY(16)", "`b` LONGBLOB NOT NULL", "`j` JSON"]),
        ] {
            let ddl = create_table(d, &types).join("\n");
            for column in expect {
                assert!(ddl.contains(column), "{d:?}: {column} in {ddl}");
            }
        }
    }

    #[test]
    fn a_prefix_counts_only_its_characters() {
        let composite_prefix = Schema::new("P", "p")
            .column("id", Type::Int, false)
            .column("a", Type::Text, false)
            .column("b", Type::Text, false)
            .key("id")
            .index(&["a", "b"], Some(2));
        check(Dialect::Postgres, &composite_prefix, &[Some(100_000), Some(100_000)], "ok");
    }
}
