//! Writes: the statement of each row write and the cache effects it must have, the
//! statements a commit adds (the outbox entry), and the machine that applies the
//! effects after the commit (DESIGN.md "Execution", write).
//!
//! The database commits first; then, in one pipelined batch, the object keys are
//! invalidated and the id is appended to every node its new values map to.
//!
//! Before the commit, after the row statements, the transaction reads the index
//! registry of the tables it wrote (`crate::registry`) and appends to the nodes of
//! the indexes another version of the model declares too ([`Commit::complete`]).
//!
//! On PostgreSQL an insert, and an update that keeps its row in its index nodes,
//! need no transaction: [`OneStatementWrite`] writes the row and its outbox entry in
//! one autocommitted statement, guarded so that it changes nothing when the row
//! would move or another version's index is registered (the write then goes the
//! long way).

use std::any::TypeId;
use std::sync::Arc;

use memdex_grammar::keys::{KeySpace, NodeSpelling, RegisteredIndex};
use memdex_grammar::plan::{node_of_row, node_values};
use memdex_grammar::schema::IndexDef;
use memdex_grammar::sql::{self, SqlQuery};
use memdex_grammar::{Dialect, Schema, Type, Value};

use super::{Context, Env, Label, Machine, Replies, SqlReply, Step};
use crate::cache::{CacheOp, checked_appends, refused_appends};
use crate::codec;
use crate::db::DbError;
use crate::error::Error;
use crate::model::Model;
use crate::near::ObjectId;
use crate::outbox::{self, Outbox};
use crate::registry;
use crate::statements::{GuardedChange, SchemaId, Shape, StatementTexts};
use crate::stats::Counters;

/// The cache effects of the writes of one transaction.
#[derive(Clone, Debug, Default)]
pub(crate) struct WriteSet {
    /// Object keys to invalidate.
    objects: Vec<String>,
    /// `(node key, id record)` appends ("add eagerly").
    appends: Vec<(String, Vec<u8>)>,
    /// Every key above, for the outbox.
    keys: Vec<String>,
    /// `(table, key)` of every updated row, for the outbox: a node filled from the
    /// database before this write's cache batch lands keeps listing them (K10).
    moved: Vec<(String, Value)>,
    /// Writes committed (insert, update, delete).
    pub(crate) writes: u64,
    /// The rows written, with their images, for the registered indexes their model
    /// does not declare ([`WriteSet::add_registered`]).
    rows: Vec<Written>,
    /// Registered indexes on columns a written row's model lacks, waiting for the
    /// columns' values ([`ColumnReads`]).
    unbound: Vec<Unbound>,
}

/// A row write as the index registry needs it: whose row, its entry, and its
/// images (the values written, and the row as it was for an update or delete).
#[derive(Clone, Debug)]
struct Written {
    /// The written model's `TypeId` (what the near cache keeps its objects by).
    model: TypeId,
    schema: &'static Schema,
    keys: Arc<KeySpace>,
    key: Value,
    etag: u64,
    updated: bool,
    deleted: bool,
    images: Vec<Vec<Value>>,
    /// For a delete: the columns its model lacks that the registry snapshot named,
    /// read with the row as it was ([`RowWrite::delete`]).
    read_before: Vec<((String, Type), Value)>,
}

impl WriteSet {
    pub(crate) fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    fn merge(&mut self, other: WriteSet) {
        self.objects.extend(other.objects);
        self.appends.extend(other.appends);
        self.keys.extend(other.keys);
        self.moved.extend(other.moved);
        self.writes += other.writes;
        let offset = self.rows.len();
        self.rows.extend(other.rows);
        self.unbound.extend(other.unbound.into_iter().map(|u| Unbound { row: u.row + offset, ..u }));
    }

    /// Records what the committed writes of this set left in their rows
    /// ([`LastWritten`](super::last_written::LastWritten)), and drops what the near cache kept of them: older than what
    /// was written, it is no longer what a later write should believe the row holds.
    fn remember(&self, ctx: &Context) {
        for row in &self.rows {
            let id = ObjectId::of(&row.keys, &row.key);
            match row.images.first() {
                Some(written) if !row.deleted => ctx.last_written.wrote(row.schema, id.clone(), written),
                _ => ctx.last_written.deleted(row.schema, &id),
            }
            ctx.near.forget(row.model, id);
        }
    }

    /// The tables rows were written to, each once.
    fn tables(&self) -> Vec<&str> {
        let mut tables: Vec<&str> = Vec::new();
        for row in &self.rows {
            if !tables.contains(&row.schema.table.as_str()) {
                tables.push(&row.schema.table);
            }
        }
        tables
    }

    /// The registry lookup of the tables written, or `None` when no row was.
    fn registry_lookup(&self, texts: &StatementTexts, dialect: Dialect) -> Result<Option<SqlQuery>, DbError> {
        let tables = self.tables();
        if tables.is_empty() {
            return Ok(None);
        }
        let shape = Shape::RegistryLookup(tables.iter().map(|&t| t.to_owned()).collect());
        let params = registry::lookup_params(&tables);
        // A lookup that fails to build (never, for the registry's schema) is kept
        // as absent, and built again here every time to report its error.
        let kept = texts.optional_query(dialect, shape, params, || registry::lookup_query(dialect, &tables).ok());
        kept.map_or_else(|| registry::lookup_query(dialect, &tables), Ok).map(Some)
    }

    /// Add eagerly, for every version of the model: each row written appends its
    /// entry to the nodes its images map to in every index registered for its table
    /// that its own model does not declare (those it declares have their appends
    /// already), exactly as for its own indexes. The keys go into the outbox entry
    /// too, so a lost cache batch is repaired by a drain. An index on a column the
    /// model lacks (one a newer version added) cannot be spelled from the images:
    /// it waits for the column's values, read in the transaction
    /// ([`ColumnReads`], [`WriteSet::add_read_columns`]).
    fn add_registered(&mut self, rows: &[Vec<Value>]) {
        let registered = registry::registered(rows);
        if registered.is_empty() {
            return;
        }
        for at in 0..self.rows.len() {
            let row = &self.rows[at];
            let own: Vec<RegisteredIndex> =
                row.schema.indexes.iter().map(|ix| RegisteredIndex::of(row.schema, ix)).collect();
            let mut added = Vec::new();
            for (table, index) in &registered {
                if *table != row.schema.table || own.contains(index) {
                    continue;
                }
                let Some(missing) = index.missing_columns(row.schema) else { continue };
                match index.bind(row.schema) {
                    Some(def) => row.node_keys(row.schema, &def, &row.images, &mut added),
                    None => self.unbound.push(Unbound { row: at, index: index.clone(), missing }),
                }
            }
            self.add_appends(at, added);
        }
    }

    /// Appends row `at`'s entry to the nodes `added` names (each once).
    fn add_appends(&mut self, at: usize, added: Vec<String>) {
        let row = &self.rows[at];
        // An update may be leaving a node of the registered index that a fill reads
        // before this batch lands (K10); a model with indexes of its own named the
        // row already.
        let moving = (row.schema.table.clone(), row.key.clone());
        if row.updated && !added.is_empty() && row.schema.indexes.is_empty() && !self.moved.contains(&moving) {
            self.moved.push(moving);
        }
        let record = codec::entry_record(&row.key, row.etag);
        for key in added {
            self.keys.push(key.clone());
            self.appends.push((key, record.clone()));
        }
    }

    /// The unbound indexes' appends, once `reads` has every reply: for a row still
    /// there, from the values read after the row statements (a model never writes a
    /// column it does not have, so the row held the same values before the write,
    /// and an inserted row holds the column's default: they stand for both images);
    /// for a deleted row, from the values its delete read with the row as it was
    /// (`RowWrite::delete`). An index on a column the table no longer has is dead
    /// and skipped. Returns a table whose deleted row lacks the values of a live
    /// index's columns (the process's registry snapshot missed the index).
    fn add_read_columns(&mut self, reads: &ColumnReads) -> Option<String> {
        let mut changed = None;
        for unbound in std::mem::take(&mut self.unbound) {
            let row = &self.rows[unbound.row];
            let Some(read) = reads.tables.iter().find(|r| r.schema.table == row.schema.table) else { continue };
            if !unbound.missing.iter().all(|column| read.live.contains(column)) {
                continue;
            }
            let values: Vec<((String, Type), Value)> = if row.deleted {
                row.read_before.clone()
            } else {
                let Some(found) = read.rows.iter().find(|values| values.first() == Some(&row.key)) else { continue };
                read.live.iter().cloned().zip(found.iter().skip(1).cloned()).collect()
            };
            let Some((schema, images)) = row.extend_with(&unbound.missing, &values) else {
                changed = Some(row.schema.table.clone());
                continue;
            };
            let Some(def) = unbound.index.bind(&schema) else { continue };
            let mut added = Vec::new();
            row.node_keys(&schema, &def, &images, &mut added);
            self.add_appends(unbound.row, added);
        }
        changed
    }
}

/// The reads of the columns registered indexes name that the written rows' models
/// lack, per table: first the table's columns from the catalog (an index on a
/// column since dropped is dead, and a read of it would fail the write), then the
/// key and the live ones of each row still there. Run by the driver in the
/// transaction, after the registry lookup ([`Commit::next_read`]).
#[derive(Debug, Default)]
pub(crate) struct ColumnReads {
    tables: Vec<TableColumns>,
    /// Replies taken so far: two per table.
    replies: usize,
}

#[derive(Debug)]
struct TableColumns {
    /// The key column, then the missing columns, once each.
    schema: Schema,
    /// The keys of the rows still there (deleted rows read theirs before).
    keys: Vec<Value>,
    /// The missing columns the table has.
    live: Vec<(String, Type)>,
    /// The reply to the read: the key, then the `live` columns, in that order.
    rows: Vec<Vec<Value>>,
}

impl ColumnReads {
    fn new(set: &WriteSet) -> ColumnReads {
        let mut tables: Vec<TableColumns> = Vec::new();
        for unbound in &set.unbound {
            let row = &set.rows[unbound.row];
            let at = match tables.iter().position(|t| t.schema.table == row.schema.table) {
                Some(at) => at,
                None => {
                    let key = row.schema.key_column();
                    let schema = Schema::new(&row.schema.table, &row.schema.table).column(&key.name, key.ty, false);
                    tables.push(TableColumns { schema, keys: Vec::new(), live: Vec::new(), rows: Vec::new() });
                    tables.len() - 1
                }
            };
            let table = &mut tables[at];
            for (name, ty) in &unbound.missing {
                if table.schema.column_index(name).is_none() {
                    table.schema = std::mem::replace(&mut table.schema, Schema::new("", "")).column(name, *ty, true);
                }
            }
            if !row.deleted && !table.keys.contains(&row.key) {
                table.keys.push(row.key.clone());
            }
        }
        ColumnReads { tables, replies: 0 }
    }

    /// Whether every reply is in.
    fn done(&self) -> bool {
        self.replies >= 2 * self.tables.len()
    }

    /// The next statement and the types of its rows; `None` once every reply is in.
    fn next(&self, dialect: Dialect) -> Result<Option<(SqlQuery, Vec<Type>)>, Error> {
        let Some(table) = self.tables.get(self.replies / 2) else { return Ok(None) };
        if self.replies % 2 == 0 {
            let query = sql::columns_query(dialect, &table.schema.table).map_err(|e| Error::Internal(e.to_string()))?;
            return Ok(Some((query, sql::COLUMN_ROW.to_vec())));
        }
        // The key, then the live columns.
        let key = table.schema.key_column();
        let read = std::iter::once((key.name.clone(), key.ty))
            .chain(table.live.iter().cloned())
            .fold(Schema::new(&table.schema.table, &table.schema.table), |s, (n, t)| s.column(&n, t, true));
        Ok(Some((sql::rows_by_keys(dialect, &read, &table.keys), read.columns.iter().map(|c| c.ty).collect())))
    }

    /// Takes the reply to [`ColumnReads::next`]'s statement; returns the
    /// columns found live (after a catalog reply).
    fn take(&mut self, rows: Vec<Vec<Value>>) -> Option<(String, Vec<(String, Type)>)> {
        let at = self.replies / 2;
        let catalog = self.replies % 2 == 0;
        self.replies += 1;
        let table = self.tables.get_mut(at)?;
        if !catalog {
            // Each row: the key, then the live columns in `live`'s order.
            table.rows = rows;
            return None;
        }
        let names: Vec<String> = rows
            .into_iter()
            .filter_map(|r| r.into_iter().next())
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect();
        table.live = (table.schema.columns.iter().skip(1))
            .filter(|c| names.iter().any(|n| n.eq_ignore_ascii_case(&c.name)))
            .map(|c| (c.name.clone(), c.ty))
            .collect();
        if table.keys.is_empty() || table.live.is_empty() {
            // Nothing to read: skip the second statement.
            self.replies += 1;
        }
        Some((table.schema.table.clone(), table.live.clone()))
    }
}

impl Written {
    /// The model's schema and images extended with the `missing` columns, their
    /// values taken from `values`; `None` if `values` lacks one of them.
    fn extend_with(
        &self,
        missing: &[(String, Type)],
        values: &[((String, Type), Value)],
    ) -> Option<(Schema, Vec<Vec<Value>>)> {
        let mut schema = self.schema.clone();
        let mut extra = Vec::new();
        for column in missing {
            extra.push(values.iter().find(|(c, _)| c == column)?.1.clone());
            schema = schema.column(&column.0, column.1, true);
        }
        let images = self.images.iter().map(|image| image.iter().chain(&extra).cloned().collect()).collect();
        Some((schema, images))
    }

    /// The keys of the nodes of `def` (an index on `schema`'s columns) that
    /// `images` (rows of `schema`) belong to, added to `added` once each.
    fn node_keys(&self, schema: &Schema, def: &IndexDef, images: &[Vec<Value>], added: &mut Vec<String>) {
        for image in images {
            let values = node_values(def, &|c| image.get(c).cloned().unwrap_or(Value::Null));
            let key = self.keys.node_of_index(schema, def, &values);
            if !added.contains(&key) {
                added.push(key);
            }
        }
    }
}

/// A registered index on a column the written row's model lacks.
#[derive(Clone, Debug)]
struct Unbound {
    /// The row, in [`WriteSet::rows`].
    row: usize,
    index: RegisteredIndex,
    /// The columns the model lacks, with their types (from the registry).
    missing: Vec<(String, Type)>,
}

/// What a row write is, for its "no row" error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Insert,
    Update,
    Delete,
}

/// One row write: the statement that reads the row it changes (updates and deletes),
/// its own statement, and the effects it has once the statement changed a row.
#[derive(Clone, Debug)]
pub(crate) struct RowWrite {
    /// Reads (and locks) the row before an update or delete: the write appends its
    /// entry to the nodes the row was in, not only to those it is in.
    pub(crate) before: Option<SqlQuery>,
    pub(crate) query: SqlQuery,
    /// Whether `query` itself returns the row as it was (`RETURNING`, where the
    /// dialect can), in place of `before`: one round trip fewer per update or
    /// delete. Its reply then goes to [`RowWrite::read_before`], and the number of
    /// rows it returned is the number it changed.
    pub(crate) returns_old: bool,
    /// The row types of `before`'s reply.
    pub(crate) types: Vec<memdex_grammar::Type>,
    kind: Kind,
    model: TypeId,
    schema: &'static Schema,
    keys: Arc<KeySpace>,
    key: Value,
    /// The etag of the row as written ([`codec::DELETED_ETAG`] for a delete).
    etag: u64,
    effects: WriteSet,
    /// The values written and, once read, the row as it was.
    images: Vec<Vec<Value>>,
    /// For a delete: the columns its model lacks that registered indexes name, read
    /// after the model's own in [`RowWrite::before`] (or the `RETURNING`), and once
    /// read, their values.
    extra: Vec<(String, Type)>,
    read_before: Vec<((String, Type), Value)>,
}

impl RowWrite {
    /// An insert (an error if its key exists). A row memdex cannot store as it is
    /// (NaN, text too long to index) is refused before any database work.
    pub(crate) fn insert<T: Model>(ctx: &Context, dialect: Dialect, row: &T) -> Result<RowWrite, Error> {
        let values = row_values(row);
        storable::<T>(dialect, &values)?;
        let (schema, params) = (T::schema(), sql::insert_params(&values));
        let query = ctx
            .statements
            .query(dialect, Shape::Insert(SchemaId::of(schema)), params, || sql::insert(dialect, schema, &values));
        Ok(RowWrite::of_row(ctx, query, None, Kind::Insert, row, &values))
    }

    /// An update of the row with `row`'s key to `row`.
    pub(crate) fn update<T: Model>(ctx: &Context, dialect: Dialect, row: &T) -> Result<RowWrite, Error> {
        let values = row_values(row);
        storable::<T>(dialect, &values)?;
        let (schema, texts) = (T::schema(), &ctx.statements);
        let (id, params) = (SchemaId::of(schema), sql::update_params(schema, &values));
        let returning_old = texts.optional_query(dialect, Shape::UpdateReturningOld(id), params.clone(), || {
            sql::update_returning_old(dialect, schema, &values)
        });
        let mut write = match returning_old {
            Some(query) => RowWrite::of_row(ctx, query, None, Kind::Update, row, &values),
            None => {
                let query = texts.query(dialect, Shape::Update(id), params, || sql::update(dialect, schema, &values));
                let key = &values[schema.key];
                let before = texts.query(dialect, Shape::RowForUpdate(id), sql::row_for_update_params(key), || {
                    sql::row_for_update(dialect, schema, key)
                });
                RowWrite::of_row(ctx, query, Some(before), Kind::Update, row, &values)
            }
        };
        write.returns_old = write.before.is_none();
        Ok(write)
    }

    /// A delete of the row with this key: its object goes, and its entry in the
    /// nodes it was in says so (readers then drop the id on the database's word).
    /// The row as it was is read with the columns of the registered indexes its
    /// model lacks, as far as this process knows them (`registry::Snapshot`): once
    /// the row is gone, nothing else can name its nodes of those indexes.
    pub(crate) fn delete<T: Model>(ctx: &Context, dialect: Dialect, key: &T::Key) -> RowWrite {
        let schema = T::schema();
        let key: Value = key.clone().into();
        let keys = ctx.keyspace::<T>();
        let object = keys.object(&key);
        let effects = WriteSet { objects: vec![object.clone()], keys: vec![object], writes: 1, ..WriteSet::default() };
        let extra = ctx.registry.missing_columns(schema);
        let read = (extra.iter()).fold(schema.clone(), |read, (name, ty)| read.column(name, *ty, true));
        let (before, query, returns_old) = match sql::delete_returning_old(dialect, &read, &key) {
            Some(query) => (None, query, true),
            None => (Some(sql::row_for_update(dialect, &read, &key)), sql::delete(dialect, schema, &key), false),
        };
        RowWrite {
            before,
            query,
            returns_old,
            types: read.columns.iter().map(|c| c.ty).collect(),
            kind: Kind::Delete,
            model: TypeId::of::<T>(),
            schema,
            keys,
            key,
            etag: codec::DELETED_ETAG,
            effects,
            images: Vec::new(),
            extra,
            read_before: Vec::new(),
        }
    }

    /// The effects of writing `row` (whose column values are `values`): invalidate
    /// the object, append the row's entry to the node of every index the new values
    /// map to (and, once [`RowWrite::read_before`] knows them, to the nodes of the
    /// old values). An update names its row for the outbox, since it may be leaving
    /// nodes that still list it (K10).
    fn of_row<T: Model>(
        ctx: &Context,
        query: SqlQuery,
        before: Option<SqlQuery>,
        kind: Kind,
        row: &T,
        values: &[Value],
    ) -> RowWrite {
        let schema = T::schema();
        let keys = ctx.keyspace::<T>();
        let id = values[schema.key].clone();
        let etag = codec::encode_object(row, schema.schema_hash()).map_or(codec::UNKNOWN_ETAG, |b| codec::etag(&b));
        let mut effects = WriteSet { writes: 1, ..WriteSet::default() };
        if kind == Kind::Update && !schema.indexes.is_empty() {
            effects.moved.push((schema.table.clone(), id.clone()));
        }
        let object = keys.object(&id);
        effects.keys.push(object.clone());
        effects.objects.push(object);
        let mut write = RowWrite {
            before,
            query,
            returns_old: false,
            types: super::column_types::<T>(),
            kind,
            model: TypeId::of::<T>(),
            schema,
            keys,
            key: id,
            etag,
            effects,
            images: vec![values.to_vec()],
            extra: Vec::new(),
            read_before: Vec::new(),
        };
        write.append_to_nodes_of(values);
        write
    }

    /// Appends this write's entry to the node of every index `values` map to (once
    /// per node).
    fn append_to_nodes_of(&mut self, values: &[Value]) {
        let record = codec::entry_record(&self.key, self.etag);
        for index in 0..self.schema.indexes.len() {
            let node = node_of_row(self.schema, index, &|c| values[c].clone());
            let key = self.keys.node(self.schema, &node);
            if self.effects.appends.iter().any(|(k, _)| *k == key) {
                continue;
            }
            self.effects.keys.push(key.clone());
            self.effects.appends.push((key, record.clone()));
        }
    }

    /// The reply of [`RowWrite::before`]: the row as it was. Its nodes get this
    /// write's entry too, so that a reader of a node the row leaves (or of one it
    /// stays in, for an edit) sees that the row changed.
    pub(crate) fn read_before(&mut self, rows: Vec<Vec<Value>>) {
        if let Some(mut old) = rows.into_iter().next() {
            let extra = old.split_off(self.schema.columns.len().min(old.len()));
            self.read_before = self.extra.iter().cloned().zip(extra).collect();
            self.append_to_nodes_of(&old);
            self.images.push(old);
        }
    }

    /// After the statement ran and changed `changed` rows: the effects join the
    /// transaction's, or an update or delete of no row is `Error::NotFound`.
    pub(crate) fn applied(self, changed: u64, set: &mut WriteSet) -> Result<(), Error> {
        if changed == 0 && self.kind != Kind::Insert {
            return Err(Error::NotFound { model: self.schema.model.clone(), key: self.key.to_string() });
        }
        self.record(set);
        Ok(())
    }

    /// Joins this write's effects, its statement having changed its row, to `set`.
    fn record(self, set: &mut WriteSet) {
        set.merge(self.effects);
        set.rows.push(Written {
            model: self.model,
            schema: self.schema,
            keys: self.keys,
            key: self.key,
            etag: self.etag,
            updated: self.kind == Kind::Update,
            deleted: self.kind == Kind::Delete,
            images: self.images,
            read_before: self.read_before,
        });
    }
}

/// Refuses, before the database sees them, values no database would give back as
/// Rust has them: NaN in a float field, and text longer than the database can index
/// (`sql::check_indexed_text`).
fn storable<T: Model>(dialect: Dialect, values: &[Value]) -> Result<(), Error> {
    let schema: &Schema = T::schema();
    if let Some(c) = values.iter().position(|v| matches!(v, Value::Float(x) if x.is_nan())) {
        return Err(Error::NotANumber { model: schema.model.clone(), field: schema.columns[c].field.clone() });
    }
    sql::check_indexed_text(dialect, schema, values)?;
    Ok(())
}

/// Whether a row can be written as it is (checked before a transaction begins).
pub(crate) fn check_storable<T: Model>(dialect: Dialect, row: &T) -> Result<(), Error> {
    storable::<T>(dialect, &row_values(row))
}

fn row_values<T: Model>(row: &T) -> Vec<Value> {
    (0..T::schema().columns.len()).map(|c| row.column_value(c)).collect()
}

/// The statements a commit adds to its transaction, and the done outbox entries
/// it cleans up.
///
/// Dropped without [`Commit::committed`] — a statement or the COMMIT failed, the body
/// failed after planning, or the future was cancelled — it gives the done entries
/// back to the outbox ([`DoneEntries`]).
#[derive(Debug)]
pub(crate) struct Commit<'a> {
    pub(crate) entry_id: i64,
    /// The index registry's rows for the tables written, read in the transaction
    /// after its row statements (see `crate::registry` for why then); its rows go to
    /// [`Commit::complete`]. `None` when no row was written. On PostgreSQL the same
    /// statement writes the outbox entry and cleans up the done ones
    /// ([`Commit::entry_written`]).
    pub(crate) lookup: Option<SqlQuery>,
    /// How many keys and moved rows the entry [`Commit::lookup`] wrote had; `None`
    /// when [`Commit::statements`] write the entry. The registry's appends (an index
    /// only another version of the model declares: during a rolling deploy) add to
    /// them, and the entry is then written again with every key.
    entry_written: Option<(usize, usize)>,
    /// The statements to run last, once [`Commit::complete`] made them.
    pub(crate) statements: Vec<SqlQuery>,
    /// The reads of columns the written models lack, when a registered index needs them.
    columns: Option<ColumnReads>,
    dialect: Dialect,
    registry: &'a registry::Snapshot,
    /// The statement texts kept per shape (`crate::statements`).
    texts: &'a StatementTexts,
    cleaned: DoneEntries<'a>,
}

impl<'a> Commit<'a> {
    /// Race rule 4 (lost invalidations): the keys this write must invalidate are
    /// recorded in the same transaction as the write, so a cache batch that fails
    /// after the commit — or a process that dies right after it — leaves a durable
    /// record that any process drains. Done entries are deleted in the same
    /// transaction: on PostgreSQL in the entry's own statement, which also reads the
    /// index registry (`WITH … DELETE …, … INSERT … SELECT …`: one round trip for
    /// what takes three elsewhere), elsewhere in one more (no round trip on SQLite).
    ///
    /// The driver runs [`Commit::lookup`] (if any) in the transaction, hands its rows
    /// to [`Commit::complete`], then runs [`Commit::statements`] and commits.
    pub(crate) fn plan(ctx: &'a Context, dialect: Dialect, set: &WriteSet) -> Result<Commit<'a>, Error> {
        let mut commit = Commit {
            entry_id: ctx.outbox.new_entry_id(),
            lookup: None,
            entry_written: None,
            statements: Vec::new(),
            columns: None,
            dialect,
            registry: &ctx.registry,
            texts: &ctx.statements,
            cleaned: DoneEntries::take(&ctx.outbox),
        };
        // From here on, an error drops `commit`, which gives the done entries back.
        commit.lookup = match commit.entry_with_lookup(set) {
            Some(both) => {
                commit.entry_written = Some((set.keys.len(), set.moved.len()));
                Some(both)
            }
            None => set.registry_lookup(&ctx.statements, dialect)?,
        };
        Ok(commit)
    }

    /// The outbox entry of `set` (with the clean-up of the done entries) and the
    /// registry lookup in one statement, where the dialect runs a write inside a
    /// `WITH` (PostgreSQL): one round trip a write fewer. The entry holds the keys of
    /// the written models' own indexes; the registry's reply may add more
    /// ([`Commit::make_statements`]). The lookup still runs after the row
    /// statements, as `crate::registry` requires.
    fn entry_with_lookup(&self, set: &WriteSet) -> Option<SqlQuery> {
        let tables = set.tables();
        if set.is_empty() || tables.is_empty() {
            return None;
        }
        let row = outbox::entry_row(self.entry_id, &set.keys, &set.moved);
        let forget = self.cleaned.values();
        let params = sql::insert_then_select_params(&row, &forget, &registry::lookup_params(&tables));
        let shape = Shape::OutboxEntryAndLookup(forget.len(), tables.iter().map(|&t| t.to_owned()).collect());
        self.texts.optional_query(self.dialect, shape, params, || {
            let (filter, bound) = (registry::lookup_filter(), registry::lookup_bound(&tables));
            let read = (registry::schema(), &filter, &bound as &dyn memdex_grammar::params::Params);
            // Cannot fail for the registry's schema; if it did, the entry and the
            // lookup would go as statements of their own.
            sql::insert_then_select(self.dialect, outbox::schema(), &row, &forget, read).ok().flatten()
        })
    }

    /// Adds the appends the registry's `registered` rows (the reply to
    /// [`Commit::lookup`]) call for to `set`. Then, unless they need the values of
    /// columns the written models lack ([`Commit::next_read`], which the driver
    /// runs and hands to [`Commit::read_reply`]), makes the statements: the outbox
    /// entry of every key `set` touches, and the clean-up of done entries.
    pub(crate) fn complete(&mut self, set: &mut WriteSet, registered: &[Vec<Value>]) -> Result<(), Error> {
        self.registry.update(&set.tables(), &registry::registered(registered));
        set.add_registered(registered);
        if set.unbound.is_empty() {
            return self.make_statements(set);
        }
        self.columns = Some(ColumnReads::new(set));
        Ok(())
    }

    /// The next statement to run in the transaction after [`Commit::complete`] (the
    /// reads of columns the written rows' models lack; usually none), with the
    /// types of its rows; its reply goes to [`Commit::read_reply`].
    pub(crate) fn next_read(&self) -> Result<Option<(SqlQuery, Vec<Type>)>, Error> {
        match &self.columns {
            Some(columns) => columns.next(self.dialect),
            None => Ok(None),
        }
    }

    /// The reply to [`Commit::next_read`]'s statement. After the last one, the
    /// appends that waited for the columns, then the statements; a deleted row that
    /// lacked a live index's columns fails the transaction
    /// ([`Error::RegistryChanged`]), after which this process's snapshot names them.
    pub(crate) fn read_reply(&mut self, set: &mut WriteSet, rows: Vec<Vec<Value>>) -> Result<(), Error> {
        let Some(columns) = &mut self.columns else { return Ok(()) };
        if let Some((table, live)) = columns.take(rows) {
            self.registry.verify(&table, &live);
        }
        if !columns.done() {
            return Ok(());
        }
        if let Some(table) = set.add_read_columns(columns) {
            return Err(Error::RegistryChanged { table });
        }
        self.make_statements(set)
    }

    fn make_statements(&mut self, set: &WriteSet) -> Result<(), Error> {
        if let Some(written) = self.entry_written {
            // The entry and the clean-up went with the lookup. The registry's
            // appends only add keys (and moved rows), so a count that grew says the
            // entry lacks some.
            if (set.keys.len(), set.moved.len()) != written {
                self.statements.push(outbox::rewrite_sql(self.dialect, self.entry_id, &set.keys, &set.moved));
            }
            return Ok(());
        }
        if !set.is_empty() {
            let entry = outbox::insert_sql(self.texts, self.dialect, self.entry_id, &set.keys, &set.moved);
            self.statements.push(entry);
        }
        if !self.cleaned.ids.is_empty() {
            self.statements.push(outbox::delete_ids(self.dialect, &self.cleaned.ids)?);
        }
        Ok(())
    }

    /// The transaction committed the writes of `effects`: the done entries it
    /// cleaned up are gone, and its rows hold what it wrote.
    pub(crate) fn committed(self, effects: &mut ApplyEffects<'_>) {
        self.cleaned.committed();
        effects.committed();
    }
}

/// The done outbox entries a statement deletes, taken from the outbox. Dropped
/// before [`DoneEntries::committed`] — the statement failed, or its future was
/// cancelled — they go back to the outbox, to be deleted by a later write. That is
/// safe whatever the statement's fate: deleting an entry that is already gone
/// deletes nothing, while an entry forgotten would stay in the table until a drain,
/// and every node fill meanwhile would keep the rows it names as candidates.
#[derive(Debug)]
struct DoneEntries<'a> {
    outbox: &'a Outbox,
    ids: Vec<i64>,
}

impl<'a> DoneEntries<'a> {
    fn take(outbox: &'a Outbox) -> DoneEntries<'a> {
        DoneEntries { outbox, ids: outbox.take_done() }
    }

    fn values(&self) -> Vec<Value> {
        self.ids.iter().map(|&id| Value::Int(id)).collect()
    }

    /// The statement deleting them committed: they are gone.
    fn committed(mut self) {
        self.ids.clear();
    }
}

impl Drop for DoneEntries<'_> {
    fn drop(&mut self) {
        if !self.ids.is_empty() {
            self.outbox.restore_done(std::mem::take(&mut self.ids));
        }
    }
}

/// A row write in ONE autocommitted statement that also writes its outbox entry and
/// deletes done ones (`sql::guarded_write_with_entry`, PostgreSQL): no BEGIN, no
/// locked read of the old row, no registry lookup of its own, no COMMIT — four
/// database round trips become one, and the server's work that of a plain write
/// and one insert.
///
/// The statement writes the row only when the index registry holds no index of the
/// table beyond the model's own and, for an update, when every column naming the
/// row's index nodes already holds the value written. The nodes the row was in (an
/// insert's: none) are then among the nodes it is in, all known before the statement
/// runs, so the entry and the effects are exactly those of [`RowWrite::insert`] or
/// [`RowWrite::update`] in a transaction (an update appends to the nodes of both
/// images). Otherwise the statement changes no row and the caller writes it the
/// long way; the done entries it names are deleted either way.
///
/// An update or delete may instead read its row in the statement
/// ([`OneStatementWrite::update_reading`], [`OneStatementWrite::delete_reading`]): it
/// applies whatever the indexed columns hold, the entry naming the nodes the row
/// was in by keys the statement spells from what it read, and the effects are
/// completed from the row its reply returns.
#[derive(Debug)]
pub(crate) struct OneStatementWrite<'a> {
    query: SqlQuery,
    /// The types of the reply's columns: whether it wrote, then (but for an insert)
    /// the row's columns (`sql::guarded_write_with_entry`).
    reply_types: Vec<Type>,
    entry_id: i64,
    set: WriteSet,
    cleaned: DoneEntries<'a>,
    /// For a write that reads its row: the write, whose effects the reply's row
    /// completes (boxed: one allocation beside a database round trip keeps every
    /// other attempt small).
    reading: Option<Box<RowWrite>>,
}

impl<'a> OneStatementWrite<'a> {
    /// The update of the row with `row`'s key to `row`, guarded by the values of the
    /// columns naming its nodes; `None` where the dialect has no such statement, or
    /// when this process last found the table's registry holding an index another
    /// version of the model declares (the statement would change nothing).
    pub(crate) fn update<T: Model>(ctx: &'a Context, dialect: Dialect, row: &T) -> Result<Option<Self>, Error> {
        let schema = T::schema();
        if !OneStatementWrite::may_serve(ctx, dialect, schema) {
            return Ok(None);
        }
        let unchanged = indexed_columns(schema);
        OneStatementWrite::plan(ctx, dialect, row, Kind::Update, sql::RowChange::Update { unchanged: &unchanged })
    }

    /// The insert of `row` (an error if its key exists); `None` as for
    /// [`OneStatementWrite::update`].
    pub(crate) fn insert<T: Model>(ctx: &'a Context, dialect: Dialect, row: &T) -> Result<Option<Self>, Error> {
        if !OneStatementWrite::may_serve(ctx, dialect, T::schema()) {
            return Ok(None);
        }
        OneStatementWrite::plan(ctx, dialect, row, Kind::Insert, sql::RowChange::Insert)
    }

    /// The read that precedes [`OneStatementWrite::delete`] and
    /// [`OneStatementWrite::moving`] (the row with this key as it is, autocommitted
    /// and unlocked: their guard finds any change since) and the types of its
    /// columns; `None` where no such write can follow.
    pub(crate) fn read_before<T: Model>(
        ctx: &Context,
        dialect: Dialect,
        key: &T::Key,
    ) -> Option<(SqlQuery, Vec<Type>)> {
        let schema = T::schema();
        if !OneStatementWrite::may_serve(ctx, dialect, schema) {
            return None;
        }
        let key: Value = key.clone().into();
        let read = ctx.statements.query(dialect, Shape::RowByKey(SchemaId::of(schema)), vec![key.clone()], || {
            sql::rows_by_keys(dialect, schema, &[key])
        });
        Some((read, super::column_types::<T>()))
    }

    /// The delete of the row with this key, guarded by the values `old` (the row
    /// as the caller read it, in schema column order) holds in the columns naming
    /// its nodes; `None` as for [`OneStatementWrite::update`].
    pub(crate) fn delete<T: Model>(
        ctx: &'a Context,
        dialect: Dialect,
        key: &T::Key,
        old: Vec<Value>,
    ) -> Result<Option<Self>, Error> {
        let schema = T::schema();
        if !OneStatementWrite::may_guard_by(ctx, dialect, schema, &old) {
            return Ok(None);
        }
        // The effects of the transaction's delete once it has read `old`: the guard
        // makes the row it deletes name the same nodes.
        let set = effects(RowWrite::delete::<T>(ctx, dialect, key), Some(old.clone()));
        let unchanged = indexed_columns(schema);
        let change = sql::RowChange::Delete { unchanged: &unchanged };
        Ok(OneStatementWrite::guarded(ctx, dialect, schema, &old, change, set))
    }

    /// The update of the row with `row`'s key to `row` when it may move between
    /// index nodes (its [`OneStatementWrite::update`] guard shut), guarded by the
    /// values `old` (the row as the caller read it, in schema column order) holds in
    /// the columns naming its nodes; `None` as for [`OneStatementWrite::update`].
    pub(crate) fn moving<T: Model>(
        ctx: &'a Context,
        dialect: Dialect,
        row: &T,
        old: Vec<Value>,
    ) -> Result<Option<Self>, Error> {
        let schema = T::schema();
        if !OneStatementWrite::may_guard_by(ctx, dialect, schema, &old) {
            return Ok(None);
        }
        let values = row_values(row);
        storable::<T>(dialect, &values)?;
        // The effects of the transaction's update once it has read `old`: the guard
        // makes the row it changes name the same nodes.
        let set = effects(unsent(ctx, Kind::Update, row, &values), Some(old.clone()));
        let unchanged = indexed_columns(schema);
        let change = sql::RowChange::Move { unchanged: &unchanged, was: &old };
        Ok(OneStatementWrite::guarded(ctx, dialect, schema, &values, change, set))
    }

    /// Whether the dialect has the statement and this process did not last find
    /// the table's registry holding an index another version of the model declares.
    /// Asked before anything is built: on SQLite and MySQL every write asks it.
    pub(crate) fn may_serve(ctx: &Context, dialect: Dialect, schema: &Schema) -> bool {
        dialect.writes_in_with() && !ctx.registry.has_foreign(schema)
    }

    /// [`OneStatementWrite::may_serve`], for a write guarded by `old`, the row read
    /// before it (as many values as the schema has columns).
    fn may_guard_by(ctx: &Context, dialect: Dialect, schema: &Schema, old: &[Value]) -> bool {
        OneStatementWrite::may_serve(ctx, dialect, schema) && old.len() == schema.columns.len()
    }

    /// An insert or update of `row`.
    fn plan<T: Model>(
        ctx: &'a Context,
        dialect: Dialect,
        row: &T,
        kind: Kind,
        change: sql::RowChange<'_>,
    ) -> Result<Option<Self>, Error> {
        let values = row_values(row);
        storable::<T>(dialect, &values)?;
        // The effects a transaction's write would have (for an update, with the old
        // row's nodes those of the new values: the guard makes them so).
        let set = effects(unsent(ctx, kind, row, &values), None);
        Ok(OneStatementWrite::guarded(ctx, dialect, T::schema(), &values, change, set))
    }

    /// The statement that makes `change` to the row `values` with the entry of the
    /// effects `set`; `None` where the dialect has none.
    fn guarded(
        ctx: &'a Context,
        dialect: Dialect,
        schema: &'static Schema,
        values: &[Value],
        change: sql::RowChange<'_>,
        set: WriteSet,
    ) -> Option<Self> {
        let entry_id = ctx.outbox.new_entry_id();
        let cleaned = DoneEntries::take(&ctx.outbox);
        let (forget, entry) = (cleaned.values(), outbox::entry_row(entry_id, &set.keys, &set.moved));
        let known: Vec<String> = schema.indexes.iter().map(|ix| RegisteredIndex::of(schema, ix).encode()).collect();
        let write = sql::GuardedWrite {
            schema,
            row: values,
            change,
            registry: registry::schema(),
            known: &known,
            outbox: outbox::schema(),
            entry: &entry,
            forget: &forget,
        };
        let kind = match change {
            // A move's statement is an update's, its guard bound to other values.
            sql::RowChange::Update { .. } | sql::RowChange::Move { .. } => GuardedChange::Update,
            sql::RowChange::Insert => GuardedChange::Insert,
            sql::RowChange::Delete { .. } => GuardedChange::Delete,
            sql::RowChange::UpdateReading { .. } => GuardedChange::UpdateReading,
            sql::RowChange::DeleteReading { .. } => GuardedChange::DeleteReading,
        };
        let shape = Shape::GuardedWrite(SchemaId::of(schema), kind, forget.len());
        let query = ctx.statements.optional_query(dialect, shape, sql::guarded_write_params(&write), || {
            sql::guarded_write_with_entry(dialect, &write)
        });
        let columns = schema.columns.iter().map(|c| c.ty);
        let reply_types = match kind {
            GuardedChange::Insert => vec![Type::Int],
            GuardedChange::Update | GuardedChange::Delete => std::iter::once(Type::Int).chain(columns).collect(),
            GuardedChange::UpdateReading | GuardedChange::DeleteReading => columns.collect(),
        };
        query.map(|query| OneStatementWrite { query, reply_types, entry_id, set, cleaned, reading: None })
    }

    /// The update of the row with `row`'s key to `row` that reads the row as it was
    /// in the same statement (`sql::RowChange::UpdateReading`): whatever the row's
    /// indexed columns hold, it applies, and its entry names the nodes the row was
    /// in from the values it read — a move in one statement, whatever this process
    /// knows of the row. `None` as for [`OneStatementWrite::update`], or when the
    /// database cannot spell the keys of the model's nodes
    /// ([`KeySpace::node_spelling`]).
    pub(crate) fn update_reading<T: Model>(ctx: &'a Context, dialect: Dialect, row: &T) -> Result<Option<Self>, Error> {
        let schema = T::schema();
        // A model without indexes has no nodes to name, and its guarded update no
        // indexed values to compare: that never shuts, and needs no locked read.
        if schema.indexes.is_empty() {
            return Ok(None);
        }
        let Some(old_nodes) = OneStatementWrite::spellings::<T>(ctx, dialect) else { return Ok(None) };
        let values = row_values(row);
        storable::<T>(dialect, &values)?;
        let write = unsent(ctx, Kind::Update, row, &values);
        let change = sql::RowChange::UpdateReading { old_nodes: &old_nodes };
        Ok(OneStatementWrite::reading(ctx, dialect, schema, &values, change, write))
    }

    /// The delete of the row with this key that returns the row as it was, its
    /// entry naming the nodes the row was in as [`OneStatementWrite::update_reading`]'s
    /// does; `None` as for it.
    pub(crate) fn delete_reading<T: Model>(ctx: &'a Context, dialect: Dialect, key: &T::Key) -> Option<Self> {
        let schema = T::schema();
        let old_nodes = OneStatementWrite::spellings::<T>(ctx, dialect)?;
        let mut row = vec![Value::Null; schema.columns.len()];
        row[schema.key] = key.clone().into();
        let write = RowWrite::delete::<T>(ctx, dialect, key);
        let change = sql::RowChange::DeleteReading { old_nodes: &old_nodes };
        OneStatementWrite::reading(ctx, dialect, schema, &row, change, write)
    }

    /// The spelling of the key of every node of `T`'s indexes, when the statement
    /// may serve, the store does not ask for guarded writes
    /// (`StoreBuilder::guarded_writes`) and the keys have a spelling (the dialect
    /// decides, as it builds the statement, whether it can put them together).
    fn spellings<T: Model>(ctx: &Context, dialect: Dialect) -> Option<Vec<NodeSpelling>> {
        let schema = T::schema();
        if ctx.settings.guarded_writes || !OneStatementWrite::may_serve(ctx, dialect, schema) {
            return None;
        }
        let keys = ctx.keyspace::<T>();
        schema.indexes.iter().map(|ix| keys.node_spelling(schema, ix)).collect()
    }

    /// The statement of `change`, a write that reads its row, whose effects are
    /// those of `write` once the reply has told the row as it was.
    fn reading(
        ctx: &'a Context,
        dialect: Dialect,
        schema: &'static Schema,
        values: &[Value],
        change: sql::RowChange<'_>,
        write: RowWrite,
    ) -> Option<Self> {
        // The entry names the nodes the row is in (none, for a delete); the
        // statement adds those it was in.
        let known = effects(write.clone(), None);
        let mut statement = OneStatementWrite::guarded(ctx, dialect, schema, values, change, known)?;
        statement.reading = Some(Box::new(write));
        Some(statement)
    }

    /// The statement to run on its own (autocommitted, never retried), and what
    /// follows its reply. The effects are made before it runs: a caller dropped
    /// while its outcome is unknown leaves the entry pending in this process (its
    /// reads bypass the cache until it has deleted the entry's keys), and gives the
    /// done entries back.
    pub(crate) fn start(self, env: Env<'a>) -> (SqlQuery, Vec<Type>, WriteInFlight<'a>) {
        let effects = ApplyEffects::new(env, self.entry_id, self.set);
        let in_flight = WriteInFlight { effects, cleaned: self.cleaned, reading: self.reading };
        (self.query, self.reply_types, in_flight)
    }
}

/// A row write whose own statement is never sent: a one-statement write builds its
/// statement from the effects instead.
fn unsent<T: Model>(ctx: &Context, kind: Kind, row: &T, values: &[Value]) -> RowWrite {
    RowWrite::of_row(ctx, SqlQuery { text: String::new(), params: Vec::new() }, None, kind, row, values)
}

/// The effects `write` has in a transaction once its statement changed its row,
/// having read the row as it was (`old`) where it reads one.
fn effects(mut write: RowWrite, old: Option<Vec<Value>>) -> WriteSet {
    if let Some(old) = old {
        write.read_before(vec![old]);
    }
    let mut set = WriteSet::default();
    write.record(&mut set);
    set
}

/// Every column an index of the schema names, once each, in schema order: the
/// columns whose values name a row's nodes.
fn indexed_columns(schema: &Schema) -> Vec<usize> {
    let mut columns: Vec<usize> = schema.indexes.iter().flat_map(|ix| ix.columns.iter().copied()).collect();
    columns.sort_unstable();
    columns.dedup();
    columns
}

/// A [`OneStatementWrite`] whose statement was sent.
#[derive(Debug)]
pub(crate) struct WriteInFlight<'a> {
    effects: ApplyEffects<'a>,
    cleaned: DoneEntries<'a>,
    reading: Option<Box<RowWrite>>,
}

/// What a one-statement write's reply said.
#[derive(Debug)]
pub(crate) enum Reply<'a> {
    /// It wrote the row: the effects to apply (boxed: the other variant is small,
    /// and one allocation per write is nothing beside its round trip).
    Written(Box<ApplyEffects<'a>>),
    /// Its guard shut, and it changed nothing. With it, the row with the written
    /// row's key as the statement found it (every column, in schema order); `None`
    /// when there was no such row, or for an insert.
    Shut(Option<Vec<Value>>),
}

impl<'a> WriteInFlight<'a> {
    /// The statement's reply (`sql::guarded_write_with_entry`): a first column of 1
    /// when it wrote the row; else 0, then (but for an insert) the row as it found
    /// it, or no reply row when there was none. A write that reads its row replies
    /// with the row as it was when it wrote it, and with nothing when it did not.
    pub(crate) fn reply(mut self, rows: Vec<Vec<Value>>) -> Reply<'a> {
        self.cleaned.committed();
        if let Some(write) = self.reading.take() {
            return self.effects.read(*write, rows.into_iter().next());
        }
        let ctx = self.effects.env.ctx;
        let Some(mut row) = rows.into_iter().next() else {
            self.effects.abandon();
            Counters::add(&ctx.stats.guards_shut, 1);
            return Reply::Shut(None);
        };
        if row.first() == Some(&Value::Int(1)) {
            self.effects.committed();
            return Reply::Written(Box::new(self.effects));
        }
        self.effects.abandon();
        Counters::add(&ctx.stats.guards_shut, 1);
        let found = row.split_off(1.min(row.len()));
        Reply::Shut((!found.is_empty()).then_some(found))
    }

    /// The statement failed. An error the database answered with (a key that
    /// exists, a refused value) means it wrote nothing, an autocommitted statement
    /// being its own transaction: nothing is pending. Any other (the connection
    /// lost with the reply) leaves the outcome unknown, and the entry pending in
    /// doubt ([`ApplyEffects::failed`]).
    pub(crate) fn failed(self, error: &DbError) {
        self.effects.failed(error);
    }
}

/// The one-statement attempts of one insert, update or delete on PostgreSQL, in the
/// order a driver makes them ([`OneStatementWrite`]).
///
/// Where the database can spell the keys of the model's nodes (index columns of
/// integers, booleans, text, instants, UUIDs or bytes: [`KeySpace::node_spelling`]) and the
/// store does not ask for guarded writes, an update or delete reads the row as
/// it was in its own statement and names the nodes it was in from what it read: one
/// attempt, which writes unless the row is not there (or the registry holds an
/// index this process does not know), and the write then goes the long way.
///
/// Otherwise each is guarded by what the row's indexed columns are believed to hold: the
/// version of the row this process's near cache kept last (it read the row since it
/// last wrote it), or else what it last wrote
/// ([`LastWritten`](super::last_written::LastWritten)). An update's first attempt
/// moves the row guarded by that belief when the belief's indexed values differ from
/// those it writes, and otherwise is guarded by the values it writes (the row stays
/// in its nodes); a delete's is guarded by the belief, or else by the row read just
/// before. A guard that shuts replies with what the columns do hold, and the next
/// attempt is guarded by that: a move or delete of a row this process read or wrote
/// last is one statement, any other two. Two attempts that change nothing (another
/// writer changed the row between them), or a row that is not there, send the write
/// the long way: a transaction, which also reports a missing row. None of this is
/// trusted for correctness — a guard that holds makes the nodes the row was in
/// those of the values it compared, whatever they came from.
pub(crate) struct Attempts<'a, 'r, T: Model> {
    ctx: &'a Context,
    dialect: Dialect,
    change: Change<'r, T>,
    /// Statements sent so far that may write.
    writes: u8,
    /// The row whose indexed values guarded the last of them.
    guarded_by: Vec<Value>,
}

#[derive(Clone, Copy)]
enum Change<'r, T: Model> {
    Insert(&'r T),
    Update(&'r T),
    Delete(&'r T::Key),
}

/// What a driver does next for [`Attempts`].
pub(crate) enum Attempt<'a> {
    /// Runs this statement ([`OneStatementWrite::start`]); when its guard shuts, the
    /// row its reply found goes to [`Attempts::after`].
    Write(OneStatementWrite<'a>),
    /// Reads the row as it is (autocommitted, unlocked) by this statement, whose
    /// columns have these types; its row, if any, goes to [`Attempts::after`].
    Read(SqlQuery, Vec<Type>),
    /// Writes the row in a transaction.
    LongWay,
}

/// Guarded statements an update or delete sends before it goes the long way.
const MAX_GUARDED_WRITES: u8 = 2;

impl<'a, 'r, T: Model> Attempts<'a, 'r, T> {
    pub(crate) fn insert(ctx: &'a Context, dialect: Dialect, row: &'r T) -> Self {
        Attempts { ctx, dialect, change: Change::Insert(row), writes: 0, guarded_by: Vec::new() }
    }

    pub(crate) fn update(ctx: &'a Context, dialect: Dialect, row: &'r T) -> Self {
        Attempts { ctx, dialect, change: Change::Update(row), writes: 0, guarded_by: Vec::new() }
    }

    pub(crate) fn delete(ctx: &'a Context, dialect: Dialect, key: &'r T::Key) -> Self {
        Attempts { ctx, dialect, change: Change::Delete(key), writes: 0, guarded_by: Vec::new() }
    }

    /// Whether any attempt can be made ([`OneStatementWrite::may_serve`]): asked
    /// before a driver opens the write's span, so that a write that goes the long
    /// way at once (every write on SQLite and MariaDB) is seen as one transaction.
    pub(crate) fn may_serve(&self) -> bool {
        OneStatementWrite::may_serve(self.ctx, self.dialect, T::schema())
    }

    /// The first attempt.
    pub(crate) fn first(&mut self) -> Result<Attempt<'a>, Error> {
        let (ctx, dialect) = (self.ctx, self.dialect);
        if let Some(write) = self.reading()? {
            return Ok(self.sent(Some(write)));
        }
        let write = match self.change {
            Change::Insert(row) => OneStatementWrite::insert(ctx, dialect, row)?,
            Change::Update(row) => match self.belief(&row.key()) {
                Some(was) if moves(T::schema(), &was, row) => {
                    self.guarded_by = was.to_vec();
                    OneStatementWrite::moving(ctx, dialect, row, was.to_vec())?
                }
                _ => {
                    self.guarded_by = row_values(row);
                    OneStatementWrite::update(ctx, dialect, row)?
                }
            },
            Change::Delete(key) => match self.belief(key) {
                Some(was) => {
                    self.guarded_by = was.to_vec();
                    OneStatementWrite::delete::<T>(ctx, dialect, key, was.to_vec())?
                }
                None => {
                    let read = OneStatementWrite::read_before::<T>(ctx, dialect, key);
                    return Ok(read.map_or(Attempt::LongWay, |(query, types)| Attempt::Read(query, types)));
                }
            },
        };
        Ok(self.sent(write))
    }

    /// The attempt after a guard shut, or after the read: `found` is the row with the
    /// key as it was found (every column, in schema order), `None` when there was
    /// none. A row found with the indexed values the shut guard compared says the
    /// guard shut for another reason (the registry holds an index this process does
    /// not know, or another writer changed the row after the statement's snapshot):
    /// guarded by them again, it would shut again.
    pub(crate) fn after(&mut self, found: Option<Vec<Value>>) -> Result<Attempt<'a>, Error> {
        let (ctx, dialect) = (self.ctx, self.dialect);
        let again = |found: &Vec<Value>| {
            self.writes < MAX_GUARDED_WRITES && (self.writes == 0 || !same_nodes(T::schema(), found, &self.guarded_by))
        };
        let Some(found) = found.filter(again) else { return Ok(Attempt::LongWay) };
        self.guarded_by.clone_from(&found);
        let write = match self.change {
            Change::Insert(_) => None,
            Change::Update(row) => OneStatementWrite::moving(ctx, dialect, row, found)?,
            Change::Delete(key) => OneStatementWrite::delete::<T>(ctx, dialect, key, found)?,
        };
        Ok(self.sent(write))
    }

    /// The update or delete that reads its row in its own statement, where the
    /// database can spell the keys of the model's nodes: ONE statement whatever the
    /// row holds and whatever this process knows of it. Measured against the
    /// guarded statements (`bench --writes`, pinned, two alternating runs): an
    /// update that stays in its nodes costs ~8 % more (1.49–1.50x a plain UPDATE in
    /// its own transaction against 1.36–1.40x), a move of a row another process
    /// moved last a statement less (1.64–1.68x against 2.43–2.48x), a delete the
    /// same (1.40–1.45x), a delete of a row this process never saw a statement less
    /// (1.38–1.44x against 1.91–2.06x).
    fn reading(&self) -> Result<Option<OneStatementWrite<'a>>, Error> {
        let (ctx, dialect) = (self.ctx, self.dialect);
        match self.change {
            Change::Insert(_) => Ok(None),
            Change::Update(row) => OneStatementWrite::update_reading(ctx, dialect, row),
            Change::Delete(key) => Ok(OneStatementWrite::delete_reading::<T>(ctx, dialect, key)),
        }
    }

    fn sent(&mut self, write: Option<OneStatementWrite<'a>>) -> Attempt<'a> {
        match write {
            Some(write) => {
                self.writes += 1;
                Attempt::Write(write)
            }
            None => Attempt::LongWay,
        }
    }

    /// What this process believes the row with this key holds: the version of it
    /// its near cache kept last (read since this process last wrote it: a write
    /// drops it), or else what this process last wrote ([`LastWritten::get`](super::last_written::LastWritten::get)).
    fn belief(&self, key: &T::Key) -> Option<Arc<[Value]>> {
        let id = ObjectId::of(&self.ctx.keyspace::<T>(), &key.clone().into());
        if let Some(read) = self.ctx.near.latest::<T>(&id) {
            return Some(row_values(&read).into());
        }
        self.ctx.last_written.get(T::schema(), &id)
    }
}

/// Whether writing `row` over a row whose columns hold `was` changes a column that
/// names the row's index nodes.
fn moves<T: Model>(schema: &Schema, was: &[Value], row: &T) -> bool {
    indexed_columns(schema).into_iter().any(|c| was.get(c) != Some(&row.column_value(c)))
}

/// Whether two rows (every column, in schema order) hold the same values in every
/// column that names their index nodes.
fn same_nodes(schema: &Schema, a: &[Value], b: &[Value]) -> bool {
    indexed_columns(schema).into_iter().all(|c| a.get(c) == b.get(c))
}

/// Applies a committed transaction's effects: invalidate objects and append ids to
/// nodes, in one batch; then delete the nodes too full to take an append (K11).
///
/// Dropped before it finished (a cancelled future), it leaves the entry pending in
/// this process, so that its reads bypass the cache until the entry is applied,
/// exactly as after a failed batch.
#[derive(Debug)]
pub(crate) struct ApplyEffects<'a> {
    env: Env<'a>,
    entry_id: i64,
    set: WriteSet,
    phase: ApplyPhase,
    failed: Vec<String>,
    /// Set once the outcome is recorded in the outbox (done, owed or pending).
    settled: bool,
    /// Whether the write's outcome is unknown: made before its statement or its
    /// COMMIT ran, until the reply says it committed (and, for a write that reads
    /// its row, what it read: until then `set` lacks the nodes the row was in,
    /// which the table's entry names).
    in_doubt: bool,
}

#[derive(Debug)]
enum ApplyPhase {
    Batch,
    DeleteFull(Vec<String>),
    Done,
}

impl<'a> ApplyEffects<'a> {
    /// The effects of a transaction about to commit (or just committed). Made
    /// *before* the commit by a caller that can be cancelled (an async commit):
    /// dropped while the commit's outcome is unknown, it leaves the entry pending.
    pub(crate) fn new(env: Env<'a>, entry_id: i64, set: WriteSet) -> ApplyEffects<'a> {
        let phase = if set.is_empty() { ApplyPhase::Done } else { ApplyPhase::Batch };
        let settled = set.is_empty();
        if settled {
            Counters::add(&env.ctx.stats.writes, set.writes);
        }
        ApplyEffects { env, entry_id, set, phase, failed: Vec::new(), settled, in_doubt: true }
    }

    /// The transaction did not commit: there is nothing to apply and nothing pending.
    pub(crate) fn abandon(mut self) {
        self.settled = true;
    }

    /// The statement or COMMIT that would have committed these effects failed. An
    /// error the database answered with (a SQLSTATE, a SQLite result code) means the
    /// transaction rolled back: nothing is pending. Any other — the connection lost
    /// before the reply came — leaves the outcome unknown: the entry stays pending
    /// in doubt, so that this process bypasses the cache until it has read the
    /// table's entry and deleted what it names (`Outbox::defer_in_doubt`). Abandoned,
    /// a write that did commit would leave this process serving the rows as they
    /// were, cached, until some process's periodic drain.
    pub(crate) fn failed(self, error: &DbError) {
        if error.code().is_some() {
            self.abandon();
        }
    }

    /// The reply of a write that reads its row: `old`, the row as it was (every
    /// column, in schema order), completes the effects of `write`; no row means
    /// nothing was written (no such row, or an index of the table this process
    /// does not know).
    fn read(mut self, write: RowWrite, old: Option<Vec<Value>>) -> Reply<'a> {
        let Some(old) = old else {
            self.abandon();
            return Reply::Shut(None);
        };
        self.set = effects(write, Some(old));
        self.committed();
        Reply::Written(Box::new(self))
    }

    /// The reply says the write committed: its rows hold what it wrote (this
    /// process remembers it), and its outcome is no longer in doubt.
    fn committed(&mut self) {
        self.set.remember(self.env.ctx);
        self.in_doubt = false;
    }

    fn batch(&self) -> Vec<CacheOp<'_>> {
        let set = &self.set;
        let mut ops: Vec<CacheOp<'_>> = Vec::with_capacity(2 * set.appends.len() + set.objects.len());
        // Add eagerly: append the id to the node of every index the new values map
        // to. Append never creates a node, so a node that is not cached stays a
        // miss (and its next fill reads this commit). Each append is checked
        // (`cache::checked_appends`): a node too full to take the id is deleted
        // next, rather than left cached without it (K11).
        ops.extend(checked_appends(set.appends.iter().map(|(key, record)| (key.as_str(), record.as_slice()))));
        // Invalidation, not refresh: a delete commutes with every other writer's
        // delete, so two writers whose batches land in the opposite order of their
        // commits cannot leave the older row cached (race rule 3). A delete also
        // voids any fill under lease that read the row before this commit (race
        // rule 1): the filler's CAS no longer matches.
        //
        // The deletes go last. A server runs one connection's commands in order, and
        // a batch cut short (a timeout: the client closes the connection, the server
        // drops what it had not run) lands a prefix of it. The near cache serves a
        // kept object when its nodes name no newer version, so an object deleted
        // while its node missed the append would be served stale from memory though
        // a read of the values would go to the database; appends first make any
        // landed delete imply landed appends (`races.rs`,
        // `a_write_batch_cut_short_leaves_the_near_cache_no_staler_than_the_values`).
        ops.extend(set.objects.iter().map(|key| CacheOp::Delete { key }));
        ops
    }

    /// Records the outcome: done; owed by the cache (its backend deletes the failed
    /// keys before it serves them again, so this process reads nothing stale and
    /// the table entry tells the other processes); or pending in this process.
    fn settle(&mut self) {
        let ctx = self.env.ctx;
        Counters::add(&ctx.stats.writes, self.set.writes);
        let failed: Vec<&str> = self.failed.iter().map(String::as_str).collect();
        if failed.is_empty() {
            ctx.outbox.done(self.entry_id);
        } else if self.env.cache.owes(&failed) {
            Counters::add(&ctx.stats.outbox_owed, 1);
        } else {
            Counters::add(&ctx.stats.outbox_deferred, 1);
            ctx.outbox.defer(self.entry_id, std::mem::take(&mut self.set.keys));
        }
        self.settled = true;
        self.phase = ApplyPhase::Done;
    }
}

fn failed_keys(ops: &[CacheOp<'_>], replies: &Replies) -> Vec<String> {
    let missing = ops.iter().skip(replies.len()).map(|op| op.key().to_owned());
    ops.iter()
        .zip(replies)
        .filter(|(_, reply)| reply.is_err())
        .map(|(op, _)| op.key().to_owned())
        .chain(missing)
        .collect()
}

impl Machine for ApplyEffects<'_> {
    type Output = ();

    fn label(&self) -> Label {
        Label { op: "apply_effects", model: "" }
    }

    fn poll(&mut self) -> Step<'_> {
        match &self.phase {
            ApplyPhase::Batch => Step::Cache(self.batch()),
            ApplyPhase::DeleteFull(keys) => Step::Cache(keys.iter().map(|key| CacheOp::Delete { key }).collect()),
            ApplyPhase::Done => Step::Done,
        }
    }

    fn handle_cache(&mut self, replies: Replies) {
        match std::mem::replace(&mut self.phase, ApplyPhase::Done) {
            ApplyPhase::Batch => {
                let ops = self.batch();
                let appends = ops.len() - self.set.objects.len();
                let full: Vec<String> =
                    refused_appends(&ops[..appends], replies.get(..appends.min(replies.len())).unwrap_or(&[]))
                        .into_iter()
                        .map(str::to_owned)
                        .collect();
                self.failed = failed_keys(&ops, &replies);
                if full.is_empty() {
                    self.settle();
                } else {
                    self.phase = ApplyPhase::DeleteFull(full);
                }
            }
            ApplyPhase::DeleteFull(keys) => {
                let ops: Vec<CacheOp<'_>> = keys.iter().map(|key| CacheOp::Delete { key }).collect();
                let failed = failed_keys(&ops, &replies);
                self.failed.extend(failed);
                self.settle();
            }
            ApplyPhase::Done => {}
        }
    }

    fn handle_sql(&mut self, _: Result<SqlReply, DbError>) {}

    fn finish(mut self) -> Result<(), Error> {
        if !self.settled {
            self.settle();
        }
        Ok(())
    }
}

impl Drop for ApplyEffects<'_> {
    fn drop(&mut self) {
        if !self.settled {
            // Cancelled after the commit, before the batch's outcome was known: the
            // batch may or may not have landed, so the entry is pending (this
            // process bypasses the cache until it has applied it; other processes
            // drain it from the table).
            Counters::add(&self.env.ctx.stats.outbox_deferred, 1);
            let keys = std::mem::take(&mut self.set.keys);
            if self.in_doubt {
                self.env.ctx.outbox.defer_in_doubt(self.entry_id, keys);
            } else {
                self.env.ctx.outbox.defer(self.entry_id, keys);
            }
        }
    }
}
