//! The error type of the public API.

use crate::db::DbError;

/// Everything that can go wrong answering a call. Cache failures are not here:
/// they degrade to the database (and are counted in `Store::stats`), they never fail
/// a query.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A text query that does not parse or check; the message has line, column and
    /// a caret under the offending text.
    #[error("{rendered}")]
    Query {
        /// Every error of the text, each as a message followed by the offending line
        /// with a caret under the span it is about (what `Display` prints).
        rendered: String,
        /// The same errors as values, each with its kind and its span in the text,
        /// for tools that place their own markers.
        errors: memdex_grammar::Errors,
    },
    /// A query some alternative of which no index serves (text form; the macro form
    /// fails to compile instead). Use a `scan!` or add an index.
    #[error("{message}")]
    Unindexable {
        /// Which alternative of the query no index serves, the indexes the model
        /// has, and what to add (the words `select!` uses at compile time).
        message: String,
    },
    /// The database refused or failed (its code and the driver's error are kept:
    /// [`DbError::code`], `std::error::Error::source`).
    #[error(transparent)]
    Database(DbError),
    /// An insert or update would duplicate a key or a unique index.
    #[error("{source}")]
    UniqueViolation {
        /// The constraint's (or, on SQLite, the columns') name, when the database said.
        constraint: Option<String>,
        /// The database's own error, with the driver's error as its source.
        #[source]
        source: DbError,
    },
    /// A parameter missing or of the wrong shape at run time.
    #[error("bad parameter: {0}")]
    Param(String),
    /// A row the database returned that does not fit the struct.
    #[error("cannot decode a {model} row: {reason}")]
    Decode {
        /// The name of the model (the struct) the row was read for.
        model: String,
        /// Which field or column did not fit, and why.
        reason: String,
    },
    /// `update` or `delete` of a key that has no row.
    #[error("no {model} with key {key}")]
    NotFound {
        /// The name of the model (the struct) that was written.
        model: String,
        /// The key that names no row, as text.
        key: String,
    },
    /// A transaction that deleted a row of `table` while another version of its
    /// model had registered an index on a column this version lacks (a rolling
    /// deploy), which this process had not seen yet: the row's node of that index
    /// could not be spelled once the row was gone, so the transaction was rolled
    /// back. Running it again succeeds (the store knows the index now);
    /// `Store::delete` and `AsyncStore::delete` do so themselves.
    #[error(
        "the index registry of `{table}` changed during the transaction (another version of the model \
         registered an index on a column this one lacks); it was rolled back: run it again"
    )]
    RegistryChanged {
        /// The table whose registry changed.
        table: String,
    },
    /// A store that cannot be built as configured: no database chosen, a URL or
    /// environment variable that cannot be understood (the message names it), a
    /// backend whose cargo feature is not enabled, a memcached address that does
    /// not resolve, or an `AsyncTransaction` used after it failed or ended.
    #[error("configuration: {0}")]
    Config(String),
    /// A write of NaN into a float field, refused before the database sees it:
    /// SQLite stores NaN as NULL and PostgreSQL orders it above every number, so no
    /// query could treat it the way Rust does. (±inf and -0.0 are stored.)
    #[error(
        "{model}.{field} is NaN; memdex does not store NaN (SQLite would store NULL, PostgreSQL order it above every number)"
    )]
    NotANumber {
        /// The name of the model (the struct) the row belongs to.
        model: String,
        /// The float field that holds NaN.
        field: String,
    },
    /// A text value longer than the database can put into a btree index entry
    /// (PostgreSQL: a text primary key, or a text column of a composite index),
    /// refused before the database sees it.
    #[error(transparent)]
    IndexedTextTooLong(#[from] memdex_grammar::sql::IndexedTextTooLong),
    /// A table is not what memdex expects of it: missing, or missing a column or an
    /// index `memdex::ddl` (`memdex::outbox_ddl` for `memdex_outbox`) creates. Reported
    /// by `Store::check_schema`, by `migrate` and by `build` when the store does not
    /// manage its schema (`StoreBuilder::manage_schema(false)`).
    #[error(
        "table `{table}` is not as memdex expects it: {}; memdex::ddl and memdex::outbox_ddl give the statements \
         that create what it expects",
        problems.join("; ")
    )]
    SchemaDrift {
        /// The table's name.
        table: String,
        /// One sentence per problem: `the table does not exist`, ``column `note` is
        /// missing``, ``index `item_note_idx` on (`note`) is missing``.
        problems: Vec<String>,
    },
    /// A state memdex's own logic should never reach; reported rather than
    /// panicking. Please file it as a bug.
    #[error("memdex internal error: {0}")]
    Internal(String),
}

impl From<DbError> for Error {
    fn from(e: DbError) -> Error {
        match e {
            DbError::UniqueViolation { ref constraint, .. } => {
                Error::UniqueViolation { constraint: constraint.clone(), source: e }
            }
            other => Error::Database(other),
        }
    }
}

impl Error {
    /// Whether this is an insert or update that would duplicate a key or a unique
    /// index (on every database).
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, Error::UniqueViolation { .. })
    }

    pub(crate) fn from_query(errors: memdex_grammar::Errors, source: &str) -> Error {
        let unindexable: Vec<String> = errors
            .iter()
            .filter_map(|e| match &e.kind {
                memdex_grammar::ErrorKind::Unindexable { message } => Some(message.clone()),
                _ => None,
            })
            .collect();
        if !unindexable.is_empty() && unindexable.len() == errors.0.len() {
            return Error::Unindexable { message: unindexable.join("\n") };
        }
        Error::Query { rendered: errors.render(source), errors }
    }
}
