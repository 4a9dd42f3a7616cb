//! SQLite backend via `rusqlite` (bundled): [`Sqlite::open`] for a database file,
//! [`Sqlite::in_memory`] for a private in-memory database.
//!
//! Every connection gets the same set-up: a busy timeout, WAL journaling for files,
//! a prepared-statement cache and the scalar function `memdex_lower(text)`, which is
//! Rust's `str::to_lowercase` (SQLite's own `LOWER` only folds ASCII, so the SQL
//! emitter uses this function to keep Rust's semantics for `to_lowercase`).
//!
//! Files use an `r2d2` pool of connections so that readers on different threads run
//! in parallel (WAL lets readers proceed while one writer writes), with an idle
//! timeout and a maximum lifetime. Write transactions start with `BEGIN IMMEDIATE`:
//! taking the write lock up front means two transactions never both hold a read lock
//! and then deadlock trying to upgrade it (SQLITE_BUSY that no busy timeout can
//! resolve). A connection that is still inside a transaction when it comes back
//! (a failed COMMIT or ROLLBACK) counts as broken and is closed, never reused.
//! Prepared statements are cached per connection by rusqlite (`prepare_cached`).
//!
//! An in-memory database is one connection, the only one the pool ever holds: a
//! second `:memory:` connection would be another, empty database. (The alternative,
//! `file:…?mode=memory&cache=shared` with several connections, runs into shared-cache
//! table locks: those fail with SQLITE_LOCKED at once, which the busy timeout does not
//! retry.) An in-memory database is CPU-bound anyway, so one connection costs little.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::config::DbConfig;
use rusqlite::functions::FunctionFlags;
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, OpenFlags};

use memdex_grammar::capture::SessionMark;
use memdex_grammar::sql::SqlQuery;
use memdex_grammar::{Dialect, Type, Value};

use super::{Database, DbError, PoolState, Tx, TxConn, integral, json_array, utf8};

/// Tuning knobs for [`Sqlite::open_with`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SqliteOptions {
    /// The most connections open at once to a database file (readers run in parallel,
    /// writers take turns). In-memory databases always use one connection.
    pub pool_size: u32,
    /// How long a statement waits for another connection's lock before failing.
    pub busy_timeout: Duration,
    /// How long a caller waits for a free pooled connection before failing.
    pub pool_wait: Duration,
    /// Prepared statements kept per connection.
    pub statement_cache: usize,
    /// Idle connections beyond the first are closed after this long.
    pub idle_timeout: Option<Duration>,
    /// Connections are closed and reopened after this long.
    pub max_lifetime: Option<Duration>,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            pool_size: 4,
            busy_timeout: Duration::from_secs(5),
            pool_wait: Duration::from_secs(30),
            statement_cache: 128,
            idle_timeout: Some(Duration::from_secs(600)),
            max_lifetime: Some(Duration::from_secs(3600)),
        }
    }
}

/// Where the database lives; decides how connections are opened.
#[derive(Clone, Debug)]
enum Location {
    Memory,
    File(PathBuf),
}

/// Opens connections for the pool. For an in-memory database it hands out the one
/// connection opened at start, once: the pool never opens a second.
#[derive(Debug)]
struct Manager {
    location: Location,
    options: SqliteOptions,
    /// The in-memory database's connection, until the pool has taken it.
    memory: Mutex<Option<Connection>>,
}

impl r2d2::ManageConnection for Manager {
    type Connection = Connection;
    type Error = DbError;

    fn connect(&self) -> Result<Connection, DbError> {
        match self.location {
            Location::File(_) => open_connection(&self.location, &self.options),
            Location::Memory => self
                .memory
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take()
                .ok_or_else(|| DbError::connect("the in-memory database's connection was lost (its data with it)")),
        }
    }

    /// A local file needs no round trip to prove it is there; checkouts test nothing
    /// (the pool is built with `test_on_check_out(false)`).
    fn is_valid(&self, _: &mut Connection) -> Result<(), DbError> {
        Ok(())
    }

    /// A file connection still inside a transaction is closed rather than reused;
    /// the in-memory one is never given up (it *is* the database).
    fn has_broken(&self, conn: &mut Connection) -> bool {
        matches!(self.location, Location::File(_)) && !conn.is_autocommit()
    }
}

/// A SQLite database, pooled and safe to share between threads.
pub struct Sqlite {
    location: Location,
    pool: r2d2::Pool<Manager>,
}

impl std::fmt::Debug for Sqlite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sqlite").field("location", &self.location).field("pool", &self.pool.state()).finish()
    }
}

impl Sqlite {
    /// Opens (creating if needed) the database file at `path` with default options.
    pub fn open(path: impl AsRef<Path>) -> Result<Sqlite, DbError> {
        Sqlite::open_with(path, SqliteOptions::default())
    }

    /// Opens the database file at `path`. One connection is opened at once, so a bad
    /// path or an unreadable file fails here rather than on the first query.
    pub fn open_with(path: impl AsRef<Path>, options: SqliteOptions) -> Result<Sqlite, DbError> {
        let location = Location::File(path.as_ref().to_path_buf());
        let first = open_connection(&location, &options)?;
        drop(first);
        let builder = r2d2::Pool::builder()
            .max_size(options.pool_size.max(1))
            .min_idle(Some(1))
            .idle_timeout(options.idle_timeout)
            .max_lifetime(options.max_lifetime);
        Sqlite::pooled(location, options, None, builder)
    }

    /// A private in-memory database (gone when the value is dropped).
    pub fn in_memory() -> Result<Sqlite, DbError> {
        let options = SqliteOptions::default();
        let location = Location::Memory;
        let connection = open_connection(&location, &options)?;
        // One connection, handed to the pool once and never closed or replaced.
        let builder = r2d2::Pool::builder().max_size(1).min_idle(Some(1)).idle_timeout(None).max_lifetime(None);
        Sqlite::pooled(location, options, Some(connection), builder)
    }

    fn pooled(
        location: Location,
        options: SqliteOptions,
        memory: Option<Connection>,
        builder: r2d2::Builder<Manager>,
    ) -> Result<Sqlite, DbError> {
        let wait = options.pool_wait;
        let manager = Manager { location: location.clone(), options, memory: Mutex::new(memory) };
        let pool = builder
            .connection_timeout(wait)
            .test_on_check_out(false)
            .thread_pool(super::pool_threads())
            .error_handler(Box::new(r2d2::LoggingErrorHandler))
            .build(manager)
            .map_err(pool_error)?;
        Ok(Sqlite { location, pool })
    }

    /// Checks out a connection.
    fn connection(&self) -> Result<r2d2::PooledConnection<Manager>, DbError> {
        self.pool.get().map_err(pool_error)
    }
}

fn pool_error(e: r2d2::Error) -> DbError {
    DbError::Connect { message: format!("no free database connection: {e}"), source: Some(Box::new(e)) }
}

/// Opens and sets up one connection.
fn open_connection(location: &Location, options: &SqliteOptions) -> Result<Connection, DbError> {
    let connect_err = |e: rusqlite::Error| DbError::Connect {
        message: format!("SQLite {}: {e}", describe(location)),
        source: Some(Box::new(e)),
    };
    // NO_MUTEX: a pooled connection is only ever used by one thread at a time, so
    // SQLite's own per-connection mutex would be pure overhead.
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = match location {
        Location::Memory => Connection::open_in_memory_with_flags(flags),
        Location::File(path) => Connection::open_with_flags(path, flags),
    }
    .map_err(connect_err)?;
    conn.busy_timeout(options.busy_timeout).map_err(connect_err)?;
    conn.set_prepared_statement_cache_capacity(options.statement_cache);
    // SQLite reads a double-quoted name that is no column as a string literal (for
    // compatibility with old schemas): a misspelt or missing column would then be a
    // constant, not an error. memdex quotes every identifier, so it turns that off.
    for config in [DbConfig::SQLITE_DBCONFIG_DQS_DML, DbConfig::SQLITE_DBCONFIG_DQS_DDL] {
        conn.set_db_config(config, false).map_err(connect_err)?;
    }
    if let Location::File(_) = location {
        // WAL lets readers run while a writer writes; NORMAL sync is durable across
        // application crashes in WAL mode and only risks the last commits on power loss.
        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0)).map_err(connect_err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(DbError::connect(format!(
                "SQLite {}: cannot switch to WAL journaling (journal mode is {mode})",
                describe(location)
            )));
        }
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(connect_err)?;
    }
    // The mark capture triggers skip (`memdex_grammar::capture::SessionMark`).
    conn.pragma_update(None, "cache_size", SessionMark::SQLITE_CACHE_SIZE).map_err(connect_err)?;
    register_functions(&conn).map_err(connect_err)?;
    Ok(conn)
}

/// Registers `memdex_lower(text) -> text`: Rust's `str::to_lowercase`, NULL for NULL.
fn register_functions(conn: &Connection) -> rusqlite::Result<()> {
    conn.create_scalar_function(
        "memdex_lower",
        1,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| match ctx.get_raw(0) {
            ValueRef::Null => Ok(None),
            ValueRef::Text(bytes) => match std::str::from_utf8(bytes) {
                Ok(text) => Ok(Some(text.to_lowercase())),
                Err(e) => Err(rusqlite::Error::UserFunctionError(
                    format!("memdex_lower: the argument is not valid UTF-8 ({e})").into(),
                )),
            },
            // The emitter only applies it to text columns and parameters; anything
            // else is schema drift, better reported than silently stringified.
            other => Err(rusqlite::Error::UserFunctionError(
                format!("memdex_lower expects text, got {}", other.data_type()).into(),
            )),
        },
    )
}

fn describe(location: &Location) -> String {
    match location {
        Location::Memory => "SQLite (in memory)".to_owned(),
        Location::File(path) => format!("SQLite {}", path.display()),
    }
}

/// A rusqlite error as a [`DbError`]: the extended result code as its code, a
/// unique or primary-key violation as [`DbError::UniqueViolation`].
fn query_error(e: rusqlite::Error) -> DbError {
    let message = e.to_string();
    if let rusqlite::Error::SqliteFailure(failure, detail) = &e {
        use rusqlite::ffi;
        let code = failure.extended_code;
        if code == ffi::SQLITE_CONSTRAINT_UNIQUE || code == ffi::SQLITE_CONSTRAINT_PRIMARYKEY {
            // "UNIQUE constraint failed: item.id" names the columns, not a constraint.
            let constraint = detail.as_deref().and_then(|d| d.split_once(": ")).map(|(_, cols)| cols.to_owned());
            return DbError::UniqueViolation { constraint, message, source: Some(Box::new(e)) };
        }
        let code = Some(format!("{:?}", failure.code));
        return DbError::Query { message, code, source: Some(Box::new(e)) };
    }
    DbError::Query { message, code: None, source: Some(Box::new(e)) }
}

/// A bound parameter. NaN and lists of lists are rejected before binding, by
/// [`check_params`]. A list (a long `in` list, read by `json_each(?)` in the SQL)
/// is bound as a JSON array.
struct Param<'a>(&'a Value);

impl rusqlite::ToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self.0 {
            Value::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Value::Bool(b) => ToSqlOutput::Borrowed(ValueRef::Integer(i64::from(*b))),
            Value::Int(i) => ToSqlOutput::Borrowed(ValueRef::Integer(*i)),
            Value::Float(x) => ToSqlOutput::Borrowed(ValueRef::Real(*x)),
            Value::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            Value::List(items) => ToSqlOutput::Owned(rusqlite::types::Value::Text(json_array(items))),
            // Bytes and UUIDs are BLOBs (compared as memcmp, as Rust compares them);
            // an instant is its microseconds since 1970 (ordered as in time).
            Value::Bytes(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
            Value::Uuid(u) => ToSqlOutput::Borrowed(ValueRef::Blob(u)),
            Value::Timestamp(us) => ToSqlOutput::Borrowed(ValueRef::Integer(*us)),
            Value::Json(j) => ToSqlOutput::Borrowed(ValueRef::Text(j.as_bytes())),
        })
    }
}

/// Rejects values SQLite cannot bind faithfully, and a list anywhere but in
/// `json_each(?)` (where memdex's SQL reads it as a JSON array): bound elsewhere,
/// its JSON text would silently compare as a string.
fn check_params(q: &SqlQuery) -> Result<(), DbError> {
    let params = &q.params;
    if params.iter().any(|v| matches!(v, Value::List(_))) {
        let in_json_each = json_each_placeholders(&q.text);
        for (i, value) in params.iter().enumerate() {
            if matches!(value, Value::List(_)) && !in_json_each.get(i).copied().unwrap_or(false) {
                return Err(DbError::query(format!(
                    "parameter {} is a list; a list binds only as the argument of `json_each(?)`",
                    i + 1
                )));
            }
        }
    }
    for (i, value) in params.iter().enumerate() {
        match value {
            Value::List(items)
                if items.iter().any(|v| matches!(v, Value::List(_)) || matches!(v, Value::Float(x) if x.is_nan())) =>
            {
                return Err(DbError::query(format!(
                    "parameter {} is a list holding a list or NaN, which SQLite cannot bind",
                    i + 1
                )));
            }
            // sqlite3_bind_double stores NaN as NULL: the value would silently change.
            Value::Float(x) if x.is_nan() => {
                return Err(DbError::query(format!(
                    "parameter {} is NaN, which SQLite cannot store (it would become NULL)",
                    i + 1
                )));
            }
            _ => {}
        }
    }
    Ok(())
}

/// For each `?` placeholder of `text` in order, whether it is the argument of
/// `json_each(`. Quoted identifiers and string literals are skipped (a `?` inside
/// them is not a placeholder).
fn json_each_placeholders(text: &str) -> Vec<bool> {
    let mut out = Vec::new();
    let mut quote: Option<char> = None;
    for (at, ch) in text.char_indices() {
        match (quote, ch) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'' | '`') => quote = Some(ch),
            (None, '?') => out.push(text[..at].ends_with("json_each(")),
            (None, _) => {}
        }
    }
    out
}

/// Decodes one column value to the requested type; the error says why not.
fn decode(value: ValueRef<'_>, ty: Type) -> Result<Value, String> {
    let mismatch = || format!("holds {}, expected {ty}", describe_value(value));
    Ok(match (value, ty) {
        (ValueRef::Null, _) => Value::Null,
        (ValueRef::Integer(i), Type::Int) => Value::Int(i),
        // SQLite may hand back a REAL for an integer column (e.g. from arithmetic);
        // accept it only when no information is lost.
        (ValueRef::Real(x), Type::Int) => Value::Int(integral(x).ok_or_else(mismatch)?),
        (ValueRef::Integer(i), Type::Float) => Value::Float(i as f64),
        (ValueRef::Real(x), Type::Float) => Value::Float(x),
        (ValueRef::Integer(0), Type::Bool) => Value::Bool(false),
        (ValueRef::Integer(1), Type::Bool) => Value::Bool(true),
        (ValueRef::Text(bytes), Type::Text) => Value::Text(utf8(bytes)?),
        (ValueRef::Text(bytes), Type::Json) => Value::Json(utf8(bytes)?),
        (ValueRef::Blob(b), Type::Bytes) => Value::Bytes(b.to_vec()),
        (ValueRef::Blob(b), Type::Uuid) => Value::Uuid(b.try_into().map_err(|_| mismatch())?),
        (ValueRef::Integer(us), Type::Timestamp) => Value::Timestamp(us),
        _ => return Err(mismatch()),
    })
}

fn describe_value(value: ValueRef<'_>) -> String {
    match value {
        ValueRef::Null => "NULL".to_owned(),
        ValueRef::Integer(i) => format!("the integer {i}"),
        ValueRef::Real(x) => format!("the real {x:?}"),
        ValueRef::Text(t) => format!("text of {} bytes", t.len()),
        ValueRef::Blob(b) => format!("a blob of {} bytes", b.len()),
    }
}

/// Runs a query on `conn`, decoding each row to `types`.
fn run_query(conn: &Connection, q: &SqlQuery, types: &[Type]) -> Result<Vec<Vec<Value>>, DbError> {
    check_params(q)?;
    let mut stmt = conn.prepare_cached(&q.text).map_err(query_error)?;
    let columns = stmt.column_count();
    if columns != types.len() {
        return Err(DbError::Decode {
            column: columns.min(types.len()),
            reason: format!("the query returns {columns} columns but {} types were requested", types.len()),
        });
    }
    let mut rows = stmt.query(rusqlite::params_from_iter(q.params.iter().map(Param))).map_err(query_error)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(query_error)? {
        let mut decoded = Vec::with_capacity(columns);
        for (i, ty) in types.iter().enumerate() {
            let value = row.get_ref(i).map_err(query_error)?;
            decoded.push(decode(value, *ty).map_err(|why| DbError::Decode {
                column: i,
                reason: format!("column `{}` {why}", row.as_ref().column_name(i).unwrap_or("?")),
            })?);
        }
        out.push(decoded);
    }
    Ok(out)
}

/// Runs a statement on `conn`; returns the number of rows changed.
fn run_execute(conn: &Connection, q: &SqlQuery) -> Result<u64, DbError> {
    check_params(q)?;
    let mut stmt = conn.prepare_cached(&q.text).map_err(query_error)?;
    let changed = stmt.execute(rusqlite::params_from_iter(q.params.iter().map(Param))).map_err(query_error)?;
    Ok(changed as u64)
}

/// Statements inside one SQLite transaction, on a pooled connection of its own.
struct SqliteTx {
    conn: r2d2::PooledConnection<Manager>,
    committed: bool,
}

impl Tx for SqliteTx {
    fn execute(&mut self, q: &SqlQuery) -> Result<u64, DbError> {
        run_execute(&self.conn, q)
    }

    fn query(&mut self, q: &SqlQuery, types: &[Type]) -> Result<Vec<Vec<Value>>, DbError> {
        run_query(&self.conn, q, types)
    }
}

impl TxConn for SqliteTx {
    fn commit(mut self: Box<Self>) -> Result<(), DbError> {
        self.conn.execute_batch("COMMIT").map_err(query_error)?;
        self.committed = true;
        Ok(())
    }

    fn as_tx(&mut self) -> &mut dyn Tx {
        self
    }
}

impl Drop for SqliteTx {
    fn drop(&mut self) {
        if !self.committed && !self.conn.is_autocommit() {
            // A failed ROLLBACK leaves the transaction open: the pool then closes the
            // file connection (`has_broken`) rather than hand it to the next caller.
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}

impl Database for Sqlite {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn query(&self, q: &SqlQuery, types: &[Type]) -> Result<Vec<Vec<Value>>, DbError> {
        let conn = self.connection()?;
        run_query(&conn, q, types)
    }

    fn begin(&self) -> Result<Box<dyn TxConn>, DbError> {
        let conn = self.connection()?;
        conn.execute_batch("BEGIN IMMEDIATE").map_err(query_error)?;
        Ok(Box::new(SqliteTx { conn, committed: false }))
    }

    fn execute_ddl(&self, statements: &[String]) -> Result<(), DbError> {
        let conn = self.connection()?;
        for statement in statements {
            conn.execute_batch(statement).map_err(|e| match query_error(e) {
                DbError::Query { message, code, source } => {
                    DbError::Query { message: format!("{message} (in `{statement}`)"), code, source }
                }
                other => other,
            })?;
        }
        Ok(())
    }

    fn describe(&self) -> String {
        describe(&self.location)
    }

    fn pool_state(&self) -> PoolState {
        let state = self.pool.state();
        PoolState { connections: state.connections, idle: state.idle_connections }
    }
}
