//! The index registry: which indexes the running versions of each model declare.
//!
//! During a rolling deploy two versions of a model share a table and the cache. A
//! write appends its entry to the nodes of the indexes its model declares ("add
//! eagerly"); an index only the other version declares would never hear of it, and
//! that version's cached nodes of it would go stale. So `migrate` records every
//! index a version declares in `memdex_indexes`, one row per (table, definition),
//! and every write transaction reads the rows of the tables it wrote, after its row
//! statements, and appends to the nodes of the registered indexes its own model
//! does not declare but whose columns it has (`engine::write::Commit`).
//!
//! Why the read sees every registration that matters: a registration locks the
//! model's table in a mode that waits for the write transactions in flight on it and
//! holds off new ones until it has committed (`sql::lock_for_registration` inside
//! its transaction on PostgreSQL; `sql::hold_for_registration` on a connection of
//! its own, released after the commit, on MySQL; SQLite's write lock). A writer's
//! read of the registry comes after its row statements, when it holds the table
//! lock a registration waits for (on PostgreSQL the read is part of the statement
//! that writes the transaction's outbox entry, which follows the row statements
//! too; a write made in one statement, `engine::write::OneStatementWrite`, reads
//! it in that statement, whose snapshot is taken after its table lock: it updates
//! nothing when the registry holds an index its model does not declare, and the
//! write goes the long way). Either the registration committed before the
//! writer's first statement, and the read sees it; or it waited for the writer to
//! commit, and the registering version fills its nodes only after that (its
//! `migrate` returns after the commit), so its fills read this write from the
//! database.
//!
//! An index on a column the writer's model does not have cannot be maintained by
//! that writer: it is left out (docs/deploying-schema-changes.md).

use std::collections::{HashMap, HashSet};
use std::sync::{OnceLock, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use memdex_grammar::ir::{Expr, ExprKind, Haystack};
use memdex_grammar::keys::RegisteredIndex;
use memdex_grammar::sql::{self, SelectSpec, SqlQuery};
use memdex_grammar::{Dialect, Schema, Span, Type, Value};

use crate::db::DbError;

const TABLE: &str = "memdex_indexes";

/// The types of a registry row, in column order.
pub(crate) const ROW_TYPES: &[Type] = &[Type::Text, Type::Text, Type::Text, Type::Int];

/// The registry table as a schema: its statements, and the schema check of a store
/// that does not manage its schema.
pub(crate) fn schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        Schema::new("MemdexIndexes", TABLE)
            // `{table}\n{definition}`: one row per index of a table, whoever
            // registers it.
            .column("id", Type::Text, false)
            .column("table_name", Type::Text, false)
            // `RegisteredIndex::encode`: the column names and the prefix length.
            .column("definition", Type::Text, false)
            .column("created_at", Type::Int, false)
            .key("id")
    })
}

/// The statements that create the registry table, if missing: part of what
/// `memdex::outbox_ddl` hands to a team's own migrations.
pub(crate) fn create_statements(dialect: Dialect) -> Vec<String> {
    sql::create_table(dialect, schema())
}

/// The registry rows of these tables.
pub(crate) fn lookup_query(dialect: Dialect, tables: &[&str]) -> Result<SqlQuery, DbError> {
    let filter = lookup_filter();
    let spec = SelectSpec { filter: Some(&filter), ..SelectSpec::default() };
    sql::select(dialect, schema(), spec, &lookup_bound(tables)).map_err(|e| DbError::query(e.to_string()))
}

/// The filter of a lookup: `table_name IN tables`, the tables bound by
/// [`lookup_bound`] (for a statement that embeds the lookup).
pub(crate) fn lookup_filter() -> Expr {
    let needle = Box::new(Expr::field("table_name", Span::DUMMY));
    Expr::new(ExprKind::In { needle, haystack: Haystack::Param("tables".into()) }, Span::DUMMY)
}

/// The named parameter of [`lookup_filter`].
pub(crate) fn lookup_bound(tables: &[&str]) -> Vec<(String, Value)> {
    vec![("tables".to_owned(), Value::List(lookup_params(tables)))]
}

/// The values a [`lookup_query`] of `tables` binds, in its order.
pub(crate) fn lookup_params(tables: &[&str]) -> Vec<Value> {
    tables.iter().map(|&t| Value::Text(t.to_owned())).collect()
}

/// The `(table, index)` pairs of a [`lookup_query`]'s rows; a row whose definition
/// does not decode (written by something else) names no index.
pub(crate) fn registered(rows: &[Vec<Value>]) -> Vec<(String, RegisteredIndex)> {
    rows.iter()
        .filter_map(|row| match (row.get(1), row.get(2)) {
            (Some(Value::Text(table)), Some(Value::Text(definition))) => {
                RegisteredIndex::decode(definition).map(|ix| (table.clone(), ix))
            }
            _ => None,
        })
        .collect()
}

/// The registered indexes this process read last, per table: a delete reads, with
/// the row as it was, the columns of the registered indexes its model lacks (an
/// index a newer version added on a column of its own), since once the row is gone
/// its transaction can no longer read them (`engine::write::RowWrite::delete`).
/// The registry read after the transaction's row statements stays the authority: a
/// delete whose snapshot missed such an index fails the transaction
/// ([`crate::Error::RegistryChanged`]), after which the snapshot has it.
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    tables: RwLock<HashMap<String, Vec<RegisteredIndex>>>,
    /// `(table, column)`s a write found in the table's catalog: only those are
    /// read by deletes (a registered index may name a column since dropped, and a
    /// delete naming it would fail).
    live: RwLock<HashSet<(String, String)>>,
}

impl Snapshot {
    /// Replaces what the snapshot holds for `tables` with their `registered` rows.
    pub(crate) fn update(&self, tables: &[&str], registered: &[(String, RegisteredIndex)]) {
        let mut held = self.tables.write().unwrap_or_else(|p| p.into_inner());
        for table in tables {
            let indexes = registered.iter().filter(|(t, _)| t == table).map(|(_, ix)| ix.clone()).collect();
            held.insert((*table).to_owned(), indexes);
        }
    }

    /// Whether the last read of `schema`'s table found a registered index that
    /// `schema` does not declare (another version's, during a rolling deploy).
    pub(crate) fn has_foreign(&self, schema: &Schema) -> bool {
        let held = self.tables.read().unwrap_or_else(|p| p.into_inner());
        let own: Vec<RegisteredIndex> = schema.indexes.iter().map(|ix| RegisteredIndex::of(schema, ix)).collect();
        held.get(&schema.table).is_some_and(|registered| registered.iter().any(|ix| !own.contains(ix)))
    }

    /// Records which of the columns `table` lacked were in its catalog: `live`.
    pub(crate) fn verify(&self, table: &str, live: &[(String, Type)]) {
        let mut held = self.live.write().unwrap_or_else(|p| p.into_inner());
        held.retain(|(t, _)| t != table);
        held.extend(live.iter().map(|(column, _)| (table.to_owned(), column.clone())));
    }

    /// The columns `schema` lacks of the indexes registered on its table that a
    /// write found in the table, with their types, each once.
    pub(crate) fn missing_columns(&self, schema: &Schema) -> Vec<(String, Type)> {
        let held = self.tables.read().unwrap_or_else(|p| p.into_inner());
        let live = self.live.read().unwrap_or_else(|p| p.into_inner());
        let mut missing: Vec<(String, Type)> = Vec::new();
        for ix in held.get(&schema.table).into_iter().flatten() {
            for column in ix.missing_columns(schema).unwrap_or_default() {
                if !missing.contains(&column) && live.contains(&(schema.table.clone(), column.0.clone())) {
                    missing.push(column);
                }
            }
        }
        missing
    }
}

/// The registration of one model's indexes, as the statements of one transaction:
/// [`Registration::begin`] (the locks, then the lookup of what is registered), then
/// [`Registration::inserts`] for what is missing, then [`Registration::end`].
#[derive(Debug)]
pub(crate) struct Registration {
    /// Run first on a connection of its own, held until the registration's
    /// transaction has ended (MySQL's `LOCK TABLES t READ`).
    pub(crate) hold: Vec<SqlQuery>,
    /// Run on the held connection after the registration's transaction, whatever its
    /// outcome: it releases the locks `hold` took, which neither a commit nor a
    /// rollback releases (MySQL's `UNLOCK TABLES`).
    pub(crate) end: Option<SqlQuery>,
    /// The first statements of the registration's transaction (PostgreSQL's `LOCK
    /// TABLE`s).
    pub(crate) begin: Vec<SqlQuery>,
    pub(crate) lookup: SqlQuery,
    dialect: Dialect,
    table: String,
    definitions: Vec<RegisteredIndex>,
}

impl Registration {
    /// The registration of `model`'s indexes, or `None` for a model without one.
    pub(crate) fn new(dialect: Dialect, model: &Schema) -> Result<Option<Registration>, DbError> {
        if model.indexes.is_empty() {
            return Ok(None);
        }
        let definitions = model.indexes.iter().map(|ix| RegisteredIndex::of(model, ix)).collect();
        Ok(Some(Registration {
            hold: sql::hold_for_registration(dialect, model),
            end: sql::unlock_after_registration(dialect),
            begin: sql::lock_for_registration(dialect, model, schema()),
            lookup: lookup_query(dialect, &[model.table.as_str()])?,
            dialect,
            table: model.table.clone(),
            definitions,
        }))
    }

    /// The inserts of the definitions the lookup's `rows` do not hold. Safe against
    /// a concurrent registration of the same definitions: each insert keeps a row
    /// that exists (`sql::insert_or_keep`), and on PostgreSQL and SQLite the locks of
    /// [`Registration::begin`] make registrations run one at a time anyway.
    pub(crate) fn inserts(&self, rows: &[Vec<Value>]) -> Vec<SqlQuery> {
        let known = registered(rows);
        // When the index was first registered, for a person reading the table.
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
        self.definitions
            .iter()
            .filter(|ix| !known.iter().any(|(t, k)| *t == self.table && k == *ix))
            .map(|ix| {
                let definition = ix.encode();
                let row = [
                    Value::Text(format!("{}\n{definition}", self.table)),
                    Value::Text(self.table.clone()),
                    Value::Text(definition),
                    Value::Int(now),
                ];
                sql::insert_or_keep(self.dialect, schema(), &row)
            })
            .collect()
    }
}
