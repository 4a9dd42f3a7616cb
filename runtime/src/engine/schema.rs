//! The schema check: a table's columns and indexes read from the database's
//! catalog (two statements, the second skipped when the table is missing) and
//! compared with what `memdex::ddl` would create (`memdex_grammar::sql::drift`).

use memdex_grammar::sql::{self, COLUMN_ROW, Drift, INDEX_ROW, SqlQuery, TableShape};
use memdex_grammar::{Dialect, Schema, Value};

use super::{Label, Machine, Replies, SqlReply, SqlRequest, Step};
use crate::db::DbError;
use crate::error::Error;

/// Reads one table's shape and names how it differs from its schema.
pub(crate) struct CheckSchema {
    dialect: Dialect,
    schema: &'static Schema,
    columns_query: SqlQuery,
    indexes_query: SqlQuery,
    columns: Option<Vec<Vec<Value>>>,
    indexes: Option<Vec<Vec<Value>>>,
    error: Option<Error>,
}

impl CheckSchema {
    pub(crate) fn new(dialect: Dialect, schema: &'static Schema) -> Result<CheckSchema, Error> {
        let internal = |e: sql::SqlError| Error::Internal(e.to_string());
        Ok(CheckSchema {
            dialect,
            schema,
            columns_query: sql::columns_query(dialect, &schema.table).map_err(internal)?,
            indexes_query: sql::indexes_query(dialect, &schema.table).map_err(internal)?,
            columns: None,
            indexes: None,
            error: None,
        })
    }

    /// Whether the table turned out to be missing (no columns), so that its
    /// indexes need not be read.
    fn table_missing(&self) -> bool {
        self.columns.as_ref().is_some_and(Vec::is_empty)
    }
}

impl Machine for CheckSchema {
    type Output = Vec<Drift>;

    fn label(&self) -> Label {
        Label { op: "check_schema", model: &self.schema.model }
    }

    fn poll(&mut self) -> Step<'_> {
        if self.error.is_some() || self.indexes.is_some() || self.table_missing() {
            return Step::Done;
        }
        match self.columns {
            None => Step::Sql(SqlRequest::Query { query: &self.columns_query, types: COLUMN_ROW }),
            Some(_) => Step::Sql(SqlRequest::Query { query: &self.indexes_query, types: INDEX_ROW }),
        }
    }

    fn handle_cache(&mut self, _: Replies) {}

    fn handle_sql(&mut self, reply: Result<SqlReply, DbError>) {
        match reply {
            Ok(reply) if self.columns.is_none() => self.columns = Some(reply.into_rows()),
            Ok(reply) => self.indexes = Some(reply.into_rows()),
            Err(e) => self.error = Some(Error::from(e)),
        }
    }

    fn finish(self) -> Result<Vec<Drift>, Error> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let shape = TableShape::from_rows(&self.columns.unwrap_or_default(), &self.indexes.unwrap_or_default());
        Ok(sql::drift(self.dialect, self.schema, &shape))
    }
}

/// `Ok` when nothing drifted, else [`Error::SchemaDrift`] naming every problem.
pub(crate) fn no_drift(table: &str, drift: &[Drift]) -> Result<(), Error> {
    if drift.is_empty() {
        return Ok(());
    }
    Err(Error::SchemaDrift { table: table.to_owned(), problems: drift.iter().map(ToString::to_string).collect() })
}

/// The outbox's drift as a store with `manage_schema(false)` takes it at build: a
/// missing table or column fails (no write could record its invalidations), a
/// missing index is only logged (drains still work, scanning the table).
pub(crate) fn outbox_usable(table: &str, drift: &[Drift]) -> Result<(), Error> {
    let (indexes, fatal): (Vec<Drift>, Vec<Drift>) =
        drift.iter().cloned().partition(|d| matches!(d, Drift::MissingIndex { .. }));
    if !fatal.is_empty() {
        return no_drift(table, drift);
    }
    for index in indexes {
        tracing::warn!(target: "memdex::schema", "{table}: {index}; outbox drains scan the table meanwhile");
    }
    Ok(())
}
