//! MySQL / MariaDB backend via the blocking `mysql` crate (TLS only with the `tls` feature):
//! [`MySql::connect`] with a URL, `mysql://user:password@host:port/database`.
//!
//! Connections live in the crate's own [`mysql::Pool`], opened lazily up to a bound
//! (one at once, so that a wrong address or password fails in `connect`). Each
//! connection caches its prepared statements by SQL text; every statement memdex
//! runs is prepared (binary protocol), so values always travel as bound parameters
//! and come back typed.
//!
//! Every connection is set up the same way (see `session_setup`): `utf8mb4`, so
//! that text is UTF-8 both ways; strict SQL mode, so that a value the column cannot
//! hold is an error rather than silently changed; `READ COMMITTED`, the isolation
//! memdex's race rules are written for (PostgreSQL's default); and a
//! `max_statement_time` (MariaDB's statement timeout). The socket's read and write
//! timeouts are a little longer than that, so a server that stops answering yields
//! a [`DbError`] rather than a hang. The client asks for `CLIENT_FOUND_ROWS`: an
//! `UPDATE` that writes a row's current values again must still count that row, or
//! memdex would report `NotFound` for it.
//!
//! Text semantics (byte-wise comparison, case-sensitive `LIKE`) are not this file's
//! business: the SQL the grammar emits for MySQL names a binary, no-pad collation
//! wherever text is compared (ARCHITECTURE.md, "MariaDB collations").

use std::time::Duration;

use mysql::consts::{CapabilityFlags, ColumnType};
use mysql::prelude::Queryable;
use mysql::{Column, Opts, OptsBuilder, Pool, PoolConstraints, PoolOpts, PooledConn};

use memdex_grammar::capture::SessionMark;
use memdex_grammar::sql::SqlQuery;
use memdex_grammar::{Dialect, Type, Value};

use super::{Database, DbError, Tx, TxConn, integral, json_array, read_retrying_once, utf8, value_kind};

/// Tuning knobs for [`MySql::connect_with`].
#[derive(Clone, Debug)]
pub struct MySqlOptions {
    /// The most connections open at once.
    pub pool_size: usize,
    /// How long opening a TCP connection may take.
    pub connect_timeout: Duration,
    /// The server cancels any statement running longer than this
    /// (`max_statement_time`); the socket gives up a little later.
    pub statement_timeout: Duration,
    /// How long a caller waits for a free pooled connection before failing.
    pub pool_wait: Duration,
    /// Prepared statements kept per connection.
    pub statement_cache: usize,
}

impl Default for MySqlOptions {
    fn default() -> Self {
        MySqlOptions {
            pool_size: 8,
            connect_timeout: Duration::from_secs(10),
            statement_timeout: Duration::from_secs(30),
            pool_wait: Duration::from_secs(30),
            statement_cache: 256,
        }
    }
}

/// How much longer than the statement timeout the socket waits for a reply: the
/// server's own timeout should fire first, with a clear message.
const SOCKET_GRACE: Duration = Duration::from_secs(5);

/// The server's "Duplicate key name" error: `CREATE INDEX` of an index that exists.
/// MySQL has no `CREATE INDEX IF NOT EXISTS` (MariaDB has, MySQL 8 does not), so a
/// repeated migration meets this error and treats it as done.
const ER_DUP_KEYNAME: u16 = 1061;

/// A MySQL or MariaDB database, pooled and safe to share between threads.
pub struct MySql {
    pool: Pool,
    options: MySqlOptions,
    description: String,
}

impl std::fmt::Debug for MySql {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MySql").field("server", &self.description).field("options", &self.options).finish()
    }
}

impl MySql {
    /// Connects with default [`MySqlOptions`].
    pub fn connect(url: &str) -> Result<MySql, DbError> {
        MySql::connect_with(url, MySqlOptions::default())
    }

    /// Parses `url` (`mysql://user:password@host:port/database`; with the `tls`
    /// feature, `?root_cert_path=/path/ca.pem` connects over TLS verified against
    /// that CA, the `mysql` crate's rustls) and opens one
    /// connection at once, so that a wrong address or password fails here rather
    /// than on the first query.
    pub fn connect_with(url: &str, options: MySqlOptions) -> Result<MySql, DbError> {
        let opts = Opts::from_url(url)
            .map_err(|e| DbError::Connect { message: format!("invalid MySQL URL: {e}"), source: Some(Box::new(e)) })?;
        if let Some(why) = tls_unavailable(&opts) {
            return Err(DbError::connect(why));
        }
        let description = describe_opts(&opts);
        let constraints = PoolConstraints::new(1, options.pool_size.max(1))
            .ok_or_else(|| DbError::connect("invalid MySQL pool size"))?;
        // No reset on return (it would cost a round trip per query and drop the
        // connection's prepared statements) and no ping on checkout (another round
        // trip): a connection that broke is taken out of the pool by
        // `Checkout::broken` instead, and a read is retried once on a fresh one.
        let pool_opts =
            PoolOpts::default().with_constraints(constraints).with_reset_connection(false).with_check_health(false);
        let builder = OptsBuilder::from_opts(opts)
            .pool_opts(pool_opts)
            .tcp_connect_timeout(Some(options.connect_timeout))
            .read_timeout(Some(options.statement_timeout + SOCKET_GRACE))
            .write_timeout(Some(options.statement_timeout + SOCKET_GRACE))
            .stmt_cache_size(options.statement_cache)
            .additional_capabilities(CapabilityFlags::CLIENT_FOUND_ROWS)
            .init(session_setup(&options));
        let pool = Pool::new(builder).map_err(|e| connect_error(format!("MySQL {description}"), e))?;
        Ok(MySql { pool, options, description })
    }

    fn checkout(&self) -> Result<Checkout, DbError> {
        self.pool
            .try_get_conn(self.options.pool_wait)
            .map(|conn| Checkout { conn })
            .map_err(|e| connect_error(format!("MySQL {}", self.description), e))
    }

    /// One attempt at a read; the flag says whether the connection was lost (and
    /// so whether trying again on another connection makes sense).
    fn query_once(&self, q: &SqlQuery, types: &[Type]) -> Result<Vec<Vec<Value>>, (DbError, bool)> {
        let mut conn = self.checkout().map_err(|e| (e, false))?;
        run_query(&mut conn.conn, q, types).map_err(|e| {
            let lost = conn.broken_if_lost(&e);
            (e, lost)
        })
    }
}

/// The statements every new connection runs before its first use.
fn session_setup(options: &MySqlOptions) -> Vec<String> {
    // Whole milliseconds as seconds: `max_statement_time` takes a decimal number.
    let millis = options.statement_timeout.as_millis().max(1);
    vec![
        "SET NAMES utf8mb4".to_owned(),
        // Strict mode: text too long for its column, a number out of its column's
        // range or an invalid value is an error, not a warning and a changed value.
        "SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION,ERROR_FOR_DIVISION_BY_ZERO'".to_owned(),
        "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED".to_owned(),
        format!("SET SESSION max_statement_time = {}.{:03}", millis / 1000, millis % 1000),
        // The mark capture triggers skip (`memdex_grammar::capture::SessionMark`).
        format!("SET {} = 1", SessionMark::MYSQL_VARIABLE),
    ]
}

/// Why a URL asking for TLS (`root_cert_path` and the like) cannot be served: this
/// build has no TLS, and the `mysql` crate would panic rather than fail.
fn tls_unavailable(opts: &Opts) -> Option<String> {
    (!cfg!(feature = "tls") && opts.get_ssl_opts().is_some()).then(|| {
        "the MySQL URL asks for TLS, which this build of memdex does not include: enable memdex's `tls` cargo feature"
            .to_owned()
    })
}

/// A URL asking for TLS in a build without it, as a sentence for `Error::Config`
/// (a URL that does not parse is left for [`MySql::connect`] to report).
pub(crate) fn check_tls(url: &str) -> Result<(), String> {
    Opts::from_url(url).ok().as_ref().and_then(tls_unavailable).map_or(Ok(()), Err)
}

/// `host:port/database user=…`, never the password.
fn describe_opts(opts: &Opts) -> String {
    format!(
        "{}:{}/{} user={}",
        opts.get_ip_or_hostname(),
        opts.get_tcp_port(),
        opts.get_db_name().unwrap_or("(none)"),
        opts.get_user().unwrap_or("(default)")
    )
}

/// A pooled connection for one call. One that lost its server is made to leave the
/// pool when it is dropped, instead of being handed to the next caller.
struct Checkout {
    conn: PooledConn,
}

impl Checkout {
    /// Whether `e` means the connection is gone; if so, marks it to leave the pool.
    fn broken_if_lost(&mut self, e: &DbError) -> bool {
        let lost = matches!(e, DbError::Connect { .. });
        if lost {
            // Resetting a connection on its return to the pool fails on a dead one,
            // and the pool then drops it (and frees its place); on a live one it
            // merely clears the session, which `init` does not need again.
            self.conn.reset_connection(true);
        }
        lost
    }
}

/// The full message: the server's code, SQLSTATE and message for server errors, the
/// driver's text otherwise.
fn error_text(e: &mysql::Error) -> String {
    match e {
        mysql::Error::MySqlError(m) => format!("ERROR {} ({}): {}", m.code, m.state, m.message),
        other => other.to_string(),
    }
}

/// A connection that could not be had: `what` (the server) and the driver's error.
fn connect_error(what: String, e: mysql::Error) -> DbError {
    DbError::Connect { message: format!("{what}: {}", error_text(&e)), source: Some(Box::new(e)) }
}

/// The server's "Duplicate entry 'x' for key 'name'": a unique violation.
const ER_DUP_ENTRY: u16 = 1062;

/// A lost or unusable connection is a `Connect` error (the caller may retry on
/// another); a duplicate key is a `UniqueViolation` naming its key; anything else
/// the server rejected is a `Query` error with its SQLSTATE.
fn to_db_error(e: mysql::Error) -> DbError {
    let message = error_text(&e);
    match &e {
        mysql::Error::MySqlError(m) if m.code == ER_DUP_ENTRY => {
            // "… for key 'item.PRIMARY'": the key's name is the last quoted word.
            let constraint = m.message.rsplit('\'').nth(1).map(|key| key.rsplit('.').next().unwrap_or(key).to_owned());
            DbError::UniqueViolation { constraint, message, source: Some(Box::new(e)) }
        }
        mysql::Error::MySqlError(m) => {
            let code = Some(m.state.clone());
            DbError::Query { message, code, source: Some(Box::new(e)) }
        }
        mysql::Error::IoError(_)
        | mysql::Error::CodecError(_)
        | mysql::Error::DriverError(
            mysql::DriverError::ConnectTimeout
            | mysql::DriverError::CouldNotConnect(_)
            | mysql::DriverError::PacketOutOfSync
            | mysql::DriverError::UnexpectedPacket
            | mysql::DriverError::Timeout,
        ) => DbError::Connect { message: format!("MySQL connection lost: {message}"), source: Some(Box::new(e)) },
        _ => DbError::Query { message, code: None, source: Some(Box::new(e)) },
    }
}

/// The values of `q` as the driver's. NaN has no MySQL value and is refused; a
/// list (a long `in` list) binds as a JSON array, and only as the argument of
/// `JSON_TABLE(?, …)`: anywhere else its JSON text would silently compare as a
/// string.
fn bind(q: &SqlQuery) -> Result<Vec<mysql::Value>, DbError> {
    q.params
        .iter()
        .enumerate()
        .map(|(i, value)| {
            Ok(match value {
                Value::Null => mysql::Value::NULL,
                Value::Bool(b) => mysql::Value::Int(i64::from(*b)),
                Value::Int(n) => mysql::Value::Int(*n),
                Value::Float(x) if x.is_nan() => {
                    return Err(DbError::query(format!("parameter {} is NaN, which MySQL cannot hold", i + 1)));
                }
                Value::Float(x) => mysql::Value::Double(*x),
                Value::Text(s) | Value::Json(s) => mysql::Value::Bytes(s.as_bytes().to_vec()),
                // LONGBLOB and BINARY(16) columns compare these bytes as memcmp does.
                Value::Bytes(b) => mysql::Value::Bytes(b.clone()),
                Value::Uuid(u) => mysql::Value::Bytes(u.to_vec()),
                // A BIGINT of microseconds since 1970.
                Value::Timestamp(us) => mysql::Value::Int(*us),
                // A long `in` list, read by `JSON_TABLE(?, …)` in the SQL.
                Value::List(items) if is_json_table_argument(&q.text, i) => {
                    if let Some(bad) =
                        items.iter().find(|v| matches!(v, Value::List(_)) || matches!(v, Value::Float(x) if x.is_nan()))
                    {
                        return Err(DbError::query(format!(
                            "parameter {} is a list holding {}, which MySQL cannot bind",
                            i + 1,
                            value_kind(bad)
                        )));
                    }
                    mysql::Value::Bytes(json_array(items).into_bytes())
                }
                Value::List(_) => {
                    return Err(DbError::query(format!(
                        "parameter {} is {}; a list binds only as the argument of `JSON_TABLE(?, …)`",
                        i + 1,
                        value_kind(value)
                    )));
                }
            })
        })
        .collect()
}

fn run_query(conn: &mut impl Queryable, q: &SqlQuery, types: &[Type]) -> Result<Vec<Vec<Value>>, DbError> {
    let params = bind(q)?;
    let mut result = conn.exec_iter(q.text.as_str(), params).map_err(to_db_error)?;
    let columns = result.columns();
    let columns: Vec<Column> = columns.as_ref().to_vec();
    if columns.len() != types.len() {
        return Err(DbError::Decode {
            column: columns.len().min(types.len()),
            reason: format!("the query returns {} columns but {} types were requested", columns.len(), types.len()),
        });
    }
    let mut out = Vec::new();
    for row in result.by_ref() {
        let row = row.map_err(to_db_error)?;
        let mut decoded = Vec::with_capacity(types.len());
        for (i, (ty, column)) in types.iter().zip(&columns).enumerate() {
            let value = row.as_ref(i).unwrap_or(&mysql::Value::NULL);
            decoded.push(decode(value, column, *ty).map_err(|why| DbError::Decode {
                column: i,
                reason: format!("column `{}` {why}", column.name_str()),
            })?);
        }
        out.push(decoded);
    }
    Ok(out)
}

fn run_execute(conn: &mut impl Queryable, q: &SqlQuery) -> Result<u64, DbError> {
    let params = bind(q)?;
    let result = conn.exec_iter(q.text.as_str(), params).map_err(to_db_error)?;
    let changed = result.affected_rows();
    // Reading to the end leaves the connection ready for the next statement.
    drop(result);
    Ok(changed)
}

/// Decodes one value of the binary protocol to the requested type; the error says
/// why not. The integer and float rules are the other backends': an integer is
/// read as a float exactly as Rust's `as` does, a float as an integer only when it
/// is a whole number in range.
fn decode(value: &mysql::Value, column: &Column, ty: Type) -> Result<Value, String> {
    use mysql::Value as V;
    let mismatch = || format!("holds {}, expected {ty}", describe_value(value, column));
    Ok(match (value, ty) {
        (V::NULL, _) => Value::Null,
        (V::Int(i), Type::Int) => Value::Int(*i),
        (V::UInt(u), Type::Int) => Value::Int(i64::try_from(*u).map_err(|_| mismatch())?),
        (V::Double(x), Type::Int) => Value::Int(integral(*x).ok_or_else(mismatch)?),
        (V::Float(x), Type::Int) => Value::Int(integral(f64::from(*x)).ok_or_else(mismatch)?),
        (V::Bytes(b), Type::Int) if is_decimal(column) => Value::Int(decimal_to_i64(b).ok_or_else(mismatch)?),
        (V::Int(i), Type::Float) => Value::Float(*i as f64),
        (V::UInt(u), Type::Float) => Value::Float(*u as f64),
        (V::Double(x), Type::Float) => Value::Float(*x),
        (V::Float(x), Type::Float) => Value::Float(f64::from(*x)),
        (V::Bytes(b), Type::Float) if is_decimal(column) => {
            Value::Float(std::str::from_utf8(b).ok().and_then(|s| s.parse().ok()).ok_or_else(mismatch)?)
        }
        // BOOLEAN is TINYINT(1): 0 and 1 are the values memdex writes.
        (V::Int(0) | V::UInt(0), Type::Bool) => Value::Bool(false),
        (V::Int(1) | V::UInt(1), Type::Bool) => Value::Bool(true),
        (V::Bytes(b), Type::Text) if !is_decimal(column) => Value::Text(utf8(b)?),
        (V::Bytes(b), Type::Json) => Value::Json(utf8(b)?),
        (V::Bytes(b), Type::Bytes) => Value::Bytes(b.clone()),
        (V::Bytes(b), Type::Uuid) => Value::Uuid(b.as_slice().try_into().map_err(|_| mismatch())?),
        (V::Int(us), Type::Timestamp) => Value::Timestamp(*us),
        (V::UInt(us), Type::Timestamp) => Value::Timestamp(i64::try_from(*us).map_err(|_| mismatch())?),
        _ => return Err(mismatch()),
    })
}

/// Whether the `index`th `?` of `text` (0-based) is the first argument of
/// `JSON_TABLE(`. Quoted identifiers and string literals are skipped (a `?` inside
/// them is not a placeholder).
fn is_json_table_argument(text: &str, index: usize) -> bool {
    let mut quote: Option<char> = None;
    let mut n = 0;
    for (at, ch) in text.char_indices() {
        match (quote, ch) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'' | '`') => quote = Some(ch),
            (None, '?') if n == index => return text[..at].ends_with("JSON_TABLE("),
            (None, '?') => n += 1,
            (None, _) => {}
        }
    }
    false
}

fn is_decimal(column: &Column) -> bool {
    matches!(column.column_type(), ColumnType::MYSQL_TYPE_DECIMAL | ColumnType::MYSQL_TYPE_NEWDECIMAL)
}

/// A DECIMAL's digits (`-12`, `12.000`) as an `i64`, when it is a whole number in
/// range.
fn decimal_to_i64(bytes: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(bytes).ok()?;
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if !fraction.bytes().all(|b| b == b'0') {
        return None;
    }
    whole.parse().ok()
}

fn describe_value(value: &mysql::Value, column: &Column) -> String {
    match value {
        mysql::Value::NULL => "NULL".to_owned(),
        mysql::Value::Int(i) => format!("the integer {i}"),
        mysql::Value::UInt(u) => format!("the unsigned integer {u}"),
        mysql::Value::Float(x) => format!("the float {x:?}"),
        mysql::Value::Double(x) => format!("the double {x:?}"),
        mysql::Value::Bytes(b) => format!("{} bytes of {:?}", b.len(), column.column_type()),
        _ => format!("a date or time ({:?})", column.column_type()),
    }
}

/// An open MySQL transaction on a pooled connection of its own: `START
/// TRANSACTION` when it began, `COMMIT` or (dropped without it) `ROLLBACK`.
struct MySqlTx {
    conn: Checkout,
    open: bool,
}

impl Tx for MySqlTx {
    fn execute(&mut self, q: &SqlQuery) -> Result<u64, DbError> {
        let result = run_execute(&mut self.conn.conn, q);
        if let Err(e) = &result {
            self.conn.broken_if_lost(e);
        }
        result
    }

    fn query(&mut self, q: &SqlQuery, types: &[Type]) -> Result<Vec<Vec<Value>>, DbError> {
        let result = run_query(&mut self.conn.conn, q, types);
        if let Err(e) = &result {
            self.conn.broken_if_lost(e);
        }
        result
    }
}

impl TxConn for MySqlTx {
    fn commit(mut self: Box<Self>) -> Result<(), DbError> {
        let result = self.conn.conn.query_drop("COMMIT").map_err(to_db_error);
        match &result {
            Ok(()) => self.open = false,
            Err(e) => {
                self.conn.broken_if_lost(e);
            }
        }
        result
    }

    fn as_tx(&mut self) -> &mut dyn Tx {
        self
    }
}

impl Drop for MySqlTx {
    fn drop(&mut self) {
        if self.open && self.conn.conn.query_drop("ROLLBACK").is_err() {
            // A connection whose transaction could not be rolled back must not
            // serve anyone again: resetting it on its return fails or clears it.
            self.conn.conn.reset_connection(true);
        }
    }
}

impl Database for MySql {
    fn dialect(&self) -> Dialect {
        Dialect::MySql
    }

    fn query(&self, q: &SqlQuery, types: &[Type]) -> Result<Vec<Vec<Value>>, DbError> {
        read_retrying_once(|| self.query_once(q, types))
    }

    fn begin(&self) -> Result<Box<dyn TxConn>, DbError> {
        let mut conn = self.checkout()?;
        if let Err(e) = conn.conn.query_drop("START TRANSACTION").map_err(to_db_error) {
            conn.broken_if_lost(&e);
            return Err(e);
        }
        Ok(Box::new(MySqlTx { conn, open: true }))
    }

    fn execute_ddl(&self, statements: &[String]) -> Result<(), DbError> {
        let mut conn = self.checkout()?;
        for statement in statements {
            match conn.conn.query_drop(statement) {
                Ok(()) => {}
                Err(mysql::Error::MySqlError(e))
                    if e.code == ER_DUP_KEYNAME && statement.trim_start().starts_with("CREATE INDEX") => {}
                Err(e) => {
                    let error = match to_db_error(e) {
                        DbError::Query { message, code, source } => {
                            DbError::Query { message: format!("{message} (in `{statement}`)"), code, source }
                        }
                        other => other,
                    };
                    conn.broken_if_lost(&error);
                    return Err(error);
                }
            }
        }
        Ok(())
    }

    fn describe(&self) -> String {
        format!("MySQL {}", self.description)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::panic)]
    use super::{bind, decimal_to_i64, session_setup};
    use crate::db::mysql::MySqlOptions;
    use memdex_grammar::Value;
    use memdex_grammar::sql::SqlQuery;
    use std::time::Duration;

    #[test]
    fn decimals_convert_only_when_whole() {
        assert_eq!(decimal_to_i64(b"12"), Some(12));
        assert_eq!(decimal_to_i64(b"-12.000"), Some(-12));
        assert_eq!(decimal_to_i64(b"12.5"), None);
        assert_eq!(decimal_to_i64(b"9223372036854775808"), None);
        assert_eq!(decimal_to_i64(b"-9223372036854775808"), Some(i64::MIN));
    }

    fn q(text: &str, params: Vec<Value>) -> SqlQuery {
        SqlQuery { text: text.into(), params }
    }

    #[test]
    fn nan_and_stray_lists_are_refused() {
        let list = || Value::List(vec![Value::Int(1), Value::Text("a\"b".into())]);
        assert!(bind(&q("SELECT ?", vec![Value::Float(f64::NAN)])).is_err());
        assert!(bind(&q("SELECT ?", vec![list()])).is_err());
        assert!(bind(&q("SELECT ?, ?, ?", vec![Value::Float(-0.0), Value::Text("é".into()), Value::Null])).is_ok());
        let json = "SELECT 1 FROM t WHERE '?' = ? AND x IN (SELECT v FROM JSON_TABLE(?, '$[*]' COLUMNS(v BIGINT PATH '$')) AS l)";
        assert!(bind(&q(json, vec![list(), Value::Null])).is_err());
        match bind(&q(json, vec![Value::Text("x".into()), list()])).as_deref().map(|v| v.get(1).cloned()) {
            Ok(Some(mysql::Value::Bytes(b))) => assert_eq!(b, br#"[1,"a\"b"]"#),
            other => panic!("{other:?}"),
        }
        let nan_inside = Value::List(vec![Value::Float(f64::NAN)]);
        assert!(bind(&q(json, vec![Value::Text("x".into()), nan_inside])).is_err());
    }

    #[test]
    fn statement_timeout_is_in_seconds() {
        let options = MySqlOptions { statement_timeout: Duration::from_millis(1500), ..MySqlOptions::default() };
        assert!(session_setup(&options).iter().any(|s| s.ends_with("max_statement_time = 1.500")));
    }
}
