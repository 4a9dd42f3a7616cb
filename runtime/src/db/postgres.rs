//! PostgreSQL backend via the synchronous `postgres` crate (no TLS):
//! [`Postgres::connect`] with libpq-style parameters (`host=… port=… user=… dbname=…`).
//!
//! Clients live in a small pool, opened lazily up to a bound; a client whose
//! connection broke is dropped rather than returned. Each client caches its prepared
//! statements by SQL text. Parameters are converted to the types PostgreSQL inferred
//! for the prepared statement (`Statement::params`), so an integer bound where the
//! statement expects `float8` is sent as a float and a NULL is sent as a NULL of the
//! expected type. Rows are decoded to the types the caller asks for.
//!
//! Timeouts: `connect_timeout` (unless the parameters set one) and a per-session
//! `statement_timeout`, both configurable through [`PostgresOptions`], so a slow or
//! dead server yields a [`DbError`] rather than a hang.
//!
//! TEXT cannot hold the NUL character in PostgreSQL; binding a string containing one
//! fails with a clean [`DbError::Query`] ("invalid byte sequence for encoding UTF8: 0x00").

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use postgres::config::Host;
use postgres::types::{FromSql, ToSql, Type as PgType};
use postgres::{Client, Config, GenericClient, NoTls, Row, Statement};

use memdex_grammar::sql::SqlQuery;
use memdex_grammar::{Dialect, Type, Value};

use super::sqlite::pool::{Pool, Pooled};
use super::{Database, DbError, Tx, integral, value_kind};

/// Tuning knobs for [`Postgres::connect_with`].
#[derive(Clone, Debug)]
pub struct PostgresOptions {
    /// The most clients open at once.
    pub pool_size: usize,
    /// Used when the connection parameters do not set `connect_timeout`.
    pub connect_timeout: Duration,
    /// The server cancels any statement running longer than this.
    pub statement_timeout: Duration,
    /// How long a caller waits for a free pooled client before failing.
    pub pool_wait: Duration,
    /// Prepared statements kept per client; the cache is cleared when it fills up.
    pub statement_cache: usize,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions {
            pool_size: 8,
            connect_timeout: Duration::from_secs(10),
            statement_timeout: Duration::from_secs(30),
            pool_wait: Duration::from_secs(30),
            statement_cache: 256,
        }
    }
}

/// One pooled connection and its prepared statements.
struct PgClient {
    client: Client,
    statements: HashMap<String, Statement>,
    /// The DDL generation the cached statements were prepared under.
    generation: u64,
}

/// A PostgreSQL database, pooled and safe to share between threads.
pub struct Postgres {
    config: Config,
    options: PostgresOptions,
    pool: Pool<PgClient>,
    /// Bumped by every `execute_ddl`: statements prepared before a schema change may
    /// describe old result types, so clients drop their cache when they see a new value.
    ddl_generation: AtomicU64,
    description: String,
}

impl std::fmt::Debug for Postgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Postgres").field("server", &self.description).field("options", &self.options).finish()
    }
}

impl Postgres {
    /// Connects with default [`PostgresOptions`].
    pub fn connect(params: &str) -> Result<Postgres, DbError> {
        Postgres::connect_with(params, PostgresOptions::default())
    }

    /// Parses `params` and opens one client at once, so a wrong address or password
    /// fails here rather than on the first query.
    pub fn connect_with(params: &str, options: PostgresOptions) -> Result<Postgres, DbError> {
        let mut config: Config =
            params.parse().map_err(|e| DbError::Connect(format!("invalid PostgreSQL parameters: {e}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(options.connect_timeout);
        }
        let description = describe_config(&config);
        let first = open_client(&config, &options, 0)?;
        let pool = Pool::new(options.pool_size.max(1), options.pool_wait, vec![first]);
        Ok(Postgres { config, options, pool, ddl_generation: AtomicU64::new(0), description })
    }

    /// Checks out a client whose statement cache is current.
    fn client(&self) -> Result<Pooled<'_, PgClient>, DbError> {
        let generation = self.ddl_generation.load(Ordering::Acquire);
        let mut client = self.pool.get(|| open_client(&self.config, &self.options, generation))?;
        if client.generation != generation {
            client.statements.clear();
            client.generation = generation;
        }
        Ok(client)
    }

    fn query_once(&self, q: &SqlQuery, types: &[Type]) -> Result<Vec<Vec<Value>>, (DbError, bool)> {
        let mut conn = self.client().map_err(|e| (e, false))?;
        let PgClient { client, statements, .. } = &mut *conn;
        let result = run_query(client, statements, self.options.statement_cache, q, types);
        let closed = conn.client.is_closed();
        if closed {
            conn.discard();
        }
        result.map_err(|e| (e, closed))
    }
}

fn open_client(config: &Config, options: &PostgresOptions, generation: u64) -> Result<PgClient, DbError> {
    let mut client = config
        .connect(NoTls)
        .map_err(|e| DbError::Connect(format!("PostgreSQL {}: {}", describe_config(config), error_text(&e))))?;
    let timeout_ms = options.statement_timeout.as_millis();
    client
        .batch_execute(&format!("SET statement_timeout = {timeout_ms}"))
        .map_err(|e| DbError::Connect(format!("setting statement_timeout: {}", error_text(&e))))?;
    Ok(PgClient { client, statements: HashMap::new(), generation })
}

/// `host=… port=… dbname=… user=…`, never the password.
fn describe_config(config: &Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|h| match h {
            Host::Tcp(name) => name.clone(),
            Host::Unix(path) => path.display().to_string(),
        })
        .collect();
    let ports: Vec<String> = config.get_ports().iter().map(u16::to_string).collect();
    format!(
        "host={} port={} dbname={} user={}",
        hosts.join(","),
        if ports.is_empty() { "5432".to_owned() } else { ports.join(",") },
        config.get_dbname().unwrap_or("(default)"),
        config.get_user().unwrap_or("(default)")
    )
}

/// The full message: the server's message, SQLSTATE, detail and hint for server
/// errors; the chain of causes otherwise (`postgres::Error`'s own text is terse).
fn error_text(e: &postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut text = format!("{}: {} (SQLSTATE {})", db.severity(), db.message(), db.code().code());
        if let Some(detail) = db.detail() {
            text.push_str(&format!("; detail: {detail}"));
        }
        if let Some(hint) = db.hint() {
            text.push_str(&format!("; hint: {hint}"));
        }
        return text;
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A lost connection is a `Connect` error (the caller may retry elsewhere); anything
/// the server rejected is a `Query` error.
fn to_db_error(e: &postgres::Error) -> DbError {
    if e.as_db_error().is_none()
        && (e.is_closed() || std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>()))
    {
        DbError::Connect(format!("PostgreSQL connection lost: {}", error_text(e)))
    } else {
        DbError::Query(error_text(e))
    }
}

/// The cached prepared statement for `text`, preparing it on a miss.
fn prepare(
    client: &mut impl GenericClient,
    statements: &mut HashMap<String, Statement>,
    capacity: usize,
    text: &str,
) -> Result<Statement, DbError> {
    if let Some(statement) = statements.get(text) {
        return Ok(statement.clone());
    }
    let statement = client.prepare(text).map_err(|e| to_db_error(&e))?;
    if statements.len() >= capacity {
        // Dropping a `Statement` closes it on the server; a full clear is simple and
        // the hot statements come back on their next use.
        statements.clear();
    }
    statements.insert(text.to_owned(), statement.clone());
    Ok(statement)
}

/// Converts `params` to the types the statement expects.
fn bind<'a>(statement: &Statement, params: &'a [Value]) -> Result<Vec<Box<dyn ToSql + Sync + 'a>>, DbError> {
    let expected = statement.params();
    if expected.len() != params.len() {
        return Err(DbError::Query(format!(
            "the statement has {} parameters but {} values were bound",
            expected.len(),
            params.len()
        )));
    }
    params.iter().zip(expected).enumerate().map(|(i, (value, ty))| bind_one(i + 1, value, ty)).collect()
}

fn bind_one<'a>(position: usize, value: &'a Value, ty: &PgType) -> Result<Box<dyn ToSql + Sync + 'a>, DbError> {
    let cannot = |why: &str| {
        DbError::Query(format!("parameter {position}: cannot bind {} as PostgreSQL {ty}{why}", value_kind(value)))
    };
    let boxed: Box<dyn ToSql + Sync + 'a> = match (value, ty) {
        (Value::List(items), _) => bind_array(position, items, ty)?,
        (Value::Null, _) => typed_null(ty).ok_or_else(|| cannot(""))?,
        (Value::Int(i), &PgType::INT8) => Box::new(*i),
        (Value::Int(i), &PgType::INT4) => Box::new(i32::try_from(*i).map_err(|_| cannot(" (out of range)"))?),
        (Value::Int(i), &PgType::INT2) => Box::new(i16::try_from(*i).map_err(|_| cannot(" (out of range)"))?),
        (Value::Int(i), &PgType::FLOAT8) => Box::new(*i as f64),
        (Value::Int(i), &PgType::FLOAT4) => Box::new(*i as f32),
        (Value::Float(x), &PgType::FLOAT8) => Box::new(*x),
        (Value::Float(x), &PgType::FLOAT4) => Box::new(*x as f32),
        (Value::Float(x), &PgType::INT8) => Box::new(integral(*x).ok_or_else(|| cannot(" (not a whole number)"))?),
        (Value::Bool(b), &PgType::BOOL) => Box::new(*b),
        (Value::Text(s), t) if <&str as ToSql>::accepts(t) => Box::new(s.as_str()),
        _ => return Err(cannot("")),
    };
    Ok(boxed)
}

/// A long `in` list bound as one array (`col = ANY($n)`), its elements converted
/// as single values of the element type are (`bind_one`).
fn bind_array<'a>(position: usize, items: &'a [Value], ty: &PgType) -> Result<Box<dyn ToSql + Sync + 'a>, DbError> {
    let cannot = |item: &Value, why: &str| {
        DbError::Query(format!(
            "parameter {position}: cannot bind {} in a list as PostgreSQL {ty}{why}",
            value_kind(item)
        ))
    };
    fn each<'a, T: 'a>(
        items: &'a [Value],
        one: impl Fn(&'a Value) -> Result<Option<T>, DbError>,
    ) -> Result<Vec<Option<T>>, DbError> {
        items.iter().map(one).collect()
    }
    Ok(match *ty {
        PgType::INT8_ARRAY => Box::new(each(items, |v| match v {
            Value::Null => Ok(None),
            Value::Int(i) => Ok(Some(*i)),
            Value::Float(x) => integral(*x).map(Some).ok_or_else(|| cannot(v, " (not a whole number)")),
            _ => Err(cannot(v, "")),
        })?),
        PgType::INT4_ARRAY => Box::new(each(items, |v| match v {
            Value::Null => Ok(None),
            Value::Int(i) => i32::try_from(*i).map(Some).map_err(|_| cannot(v, " (out of range)")),
            _ => Err(cannot(v, "")),
        })?),
        PgType::FLOAT8_ARRAY => Box::new(each(items, |v| match v {
            Value::Null => Ok(None),
            Value::Int(i) => Ok(Some(*i as f64)),
            Value::Float(x) => Ok(Some(*x)),
            _ => Err(cannot(v, "")),
        })?),
        PgType::BOOL_ARRAY => Box::new(each(items, |v| match v {
            Value::Null => Ok(None),
            Value::Bool(b) => Ok(Some(*b)),
            _ => Err(cannot(v, "")),
        })?),
        ref t if <Vec<Option<&str>> as ToSql>::accepts(t) => Box::new(each(items, |v| match v {
            Value::Null => Ok(None),
            Value::Text(s) => Ok(Some(s.as_str())),
            _ => Err(cannot(v, "")),
        })?),
        _ => {
            return Err(DbError::Query(format!(
                "parameter {position}: cannot bind a list as PostgreSQL {ty} (lists bind only to `= ANY($n)`)"
            )));
        }
    })
}

/// A NULL that the driver accepts for a parameter of type `ty`.
fn typed_null(ty: &PgType) -> Option<Box<dyn ToSql + Sync>> {
    Some(match *ty {
        PgType::INT8 => Box::new(None::<i64>),
        PgType::INT4 => Box::new(None::<i32>),
        PgType::INT2 => Box::new(None::<i16>),
        PgType::FLOAT8 => Box::new(None::<f64>),
        PgType::FLOAT4 => Box::new(None::<f32>),
        PgType::BOOL => Box::new(None::<bool>),
        ref t if <&str as ToSql>::accepts(t) => Box::new(None::<&str>),
        _ => return None,
    })
}

fn run_query(
    client: &mut impl GenericClient,
    statements: &mut HashMap<String, Statement>,
    capacity: usize,
    q: &SqlQuery,
    types: &[Type],
) -> Result<Vec<Vec<Value>>, DbError> {
    let statement = prepare(client, statements, capacity, &q.text)?;
    let columns = statement.columns().len();
    if columns != types.len() {
        return Err(DbError::Decode {
            column: columns.min(types.len()),
            reason: format!("the query returns {columns} columns but {} types were requested", types.len()),
        });
    }
    let bound = bind(&statement, &q.params)?;
    let refs: Vec<&(dyn ToSql + Sync)> = bound.iter().map(|b| &**b as &(dyn ToSql + Sync)).collect();
    let rows = client.query(&statement, &refs).map_err(|e| to_db_error(&e))?;
    rows.iter().map(|row| types.iter().enumerate().map(|(i, ty)| decode(row, i, *ty)).collect()).collect()
}

fn run_execute(
    client: &mut impl GenericClient,
    statements: &mut HashMap<String, Statement>,
    capacity: usize,
    q: &SqlQuery,
) -> Result<u64, DbError> {
    let statement = prepare(client, statements, capacity, &q.text)?;
    let bound = bind(&statement, &q.params)?;
    let refs: Vec<&(dyn ToSql + Sync)> = bound.iter().map(|b| &**b as &(dyn ToSql + Sync)).collect();
    client.execute(&statement, &refs).map_err(|e| to_db_error(&e))
}

/// Decodes column `i` of `row` to the requested type.
fn decode(row: &Row, i: usize, ty: Type) -> Result<Value, DbError> {
    let column = &row.columns()[i];
    let pg = column.type_();
    let mismatch = |why: String| DbError::Decode { column: i, reason: format!("column `{}` {why}", column.name()) };
    let wrong_type = || mismatch(format!("has PostgreSQL type {pg}, expected {ty}"));
    fn get<'a, T: FromSql<'a>>(row: &'a Row, i: usize) -> Result<Option<T>, DbError> {
        row.try_get::<_, Option<T>>(i).map_err(|e| DbError::Decode { column: i, reason: error_text(&e) })
    }
    // NULL is `Value::Null` whatever the column's type (an untyped `SELECT NULL` is
    // `text` to PostgreSQL), as on SQLite, where NULL has no declared type at all.
    if get::<NotNull>(row, i)?.is_none() {
        return Ok(Value::Null);
    }
    let value = match (ty, pg) {
        (Type::Int, &PgType::INT8) => get::<i64>(row, i)?.map(Value::Int),
        (Type::Int, &PgType::INT4) => get::<i32>(row, i)?.map(|v| Value::Int(v.into())),
        (Type::Int, &PgType::INT2) => get::<i16>(row, i)?.map(|v| Value::Int(v.into())),
        (Type::Int, &PgType::FLOAT8 | &PgType::FLOAT4) => {
            let x = if *pg == PgType::FLOAT8 { get::<f64>(row, i)? } else { get::<f32>(row, i)?.map(f64::from) };
            match x {
                None => None,
                Some(x) => Some(Value::Int(integral(x).ok_or_else(|| mismatch(format!("holds {x}, not an integer")))?)),
            }
        }
        (Type::Int, &PgType::NUMERIC) => match get::<Numeric>(row, i)? {
            None => None,
            Some(n) => Some(Value::Int(n.to_i64().ok_or_else(|| mismatch(format!("holds {n}, not an i64")))?)),
        },
        (Type::Float, &PgType::FLOAT8) => get::<f64>(row, i)?.map(Value::Float),
        (Type::Float, &PgType::FLOAT4) => get::<f32>(row, i)?.map(|v| Value::Float(v.into())),
        (Type::Float, &PgType::INT8) => get::<i64>(row, i)?.map(|v| Value::Float(v as f64)),
        (Type::Float, &PgType::INT4) => get::<i32>(row, i)?.map(|v| Value::Float(v.into())),
        (Type::Float, &PgType::INT2) => get::<i16>(row, i)?.map(|v| Value::Float(v.into())),
        (Type::Float, &PgType::NUMERIC) => get::<Numeric>(row, i)?.map(|n| Value::Float(n.to_f64())),
        (Type::Bool, &PgType::BOOL) => get::<bool>(row, i)?.map(Value::Bool),
        (Type::Text, t) if <&str as FromSql<'_>>::accepts(t) => get::<String>(row, i)?.map(Value::Text),
        _ => return Err(wrong_type()),
    };
    Ok(value.unwrap_or(Value::Null))
}

/// Decodes any non-NULL value without looking at it: tells NULL apart from the rest.
struct NotNull;

impl<'a> FromSql<'a> for NotNull {
    fn from_sql(_: &PgType, _: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(NotNull)
    }

    fn accepts(_: &PgType) -> bool {
        true
    }
}

/// A `numeric` value in decimal form: `digits × 10^exponent`, or a special value.
/// (The `postgres` crate decodes `numeric` only through optional decimal crates;
/// AVG and SUM over integers return it, so memdex decodes the wire format itself.)
#[derive(Debug)]
enum Numeric {
    Finite { negative: bool, digits: String, exponent: i64 },
    NaN,
    Infinity { negative: bool },
}

impl std::fmt::Display for Numeric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Numeric::Finite { negative, digits, exponent } => {
                write!(f, "{}{}e{exponent}", if *negative { "-" } else { "" }, digits)
            }
            Numeric::NaN => f.write_str("NaN"),
            Numeric::Infinity { negative } => f.write_str(if *negative { "-Infinity" } else { "Infinity" }),
        }
    }
}

impl Numeric {
    /// The nearest `f64` (Rust's float parsing rounds correctly).
    fn to_f64(&self) -> f64 {
        match self {
            Numeric::NaN => f64::NAN,
            Numeric::Infinity { negative: false } => f64::INFINITY,
            Numeric::Infinity { negative: true } => f64::NEG_INFINITY,
            Numeric::Finite { .. } => self.to_string().parse().unwrap_or(f64::NAN),
        }
    }

    /// The exact `i64`, when the value is a whole number in range.
    fn to_i64(&self) -> Option<i64> {
        let Numeric::Finite { negative, digits, exponent } = self else { return None };
        let whole = if *exponent >= 0 {
            // More than 19 digits cannot fit an i64 (and stops absurd padding).
            if digits.len() as i64 + exponent > 20 {
                return None;
            }
            format!("{digits}{}", "0".repeat(*exponent as usize))
        } else {
            let cut = digits.len().saturating_sub(exponent.unsigned_abs() as usize);
            let (int, frac) = digits.split_at(cut);
            if frac.bytes().any(|b| b != b'0') {
                return None;
            }
            if int.is_empty() { "0".to_owned() } else { int.to_owned() }
        };
        let magnitude: i128 = whole.parse().ok()?;
        i64::try_from(if *negative { -magnitude } else { magnitude }).ok()
    }
}

impl<'a> FromSql<'a> for Numeric {
    fn from_sql(_: &PgType, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        // Wire format: ndigits, weight, sign, dscale (each 16 bits, big endian), then
        // ndigits base-10000 digits; the first digit is worth 10000^weight.
        let word = |at: usize| -> Result<u16, Box<dyn std::error::Error + Sync + Send>> {
            raw.get(at..at + 2).map(|b| u16::from_be_bytes([b[0], b[1]])).ok_or_else(|| "truncated numeric".into())
        };
        let ndigits = usize::from(word(0)?);
        let weight = i64::from(word(2)? as i16);
        let sign = word(4)?;
        match sign {
            0xC000 => return Ok(Numeric::NaN),
            0xD000 => return Ok(Numeric::Infinity { negative: false }),
            0xF000 => return Ok(Numeric::Infinity { negative: true }),
            0x0000 | 0x4000 => {}
            other => return Err(format!("unknown numeric sign {other:#x}").into()),
        }
        let mut digits = String::with_capacity(ndigits * 4 + 1);
        for k in 0..ndigits {
            let digit = word(8 + 2 * k)?;
            if digit > 9999 {
                return Err(format!("invalid numeric digit {digit}").into());
            }
            digits.push_str(&format!("{digit:04}"));
        }
        if digits.is_empty() {
            digits.push('0');
        }
        let exponent = 4 * (weight - ndigits as i64 + 1);
        Ok(Numeric::Finite { negative: sign == 0x4000, digits, exponent })
    }

    fn accepts(ty: &PgType) -> bool {
        *ty == PgType::NUMERIC
    }
}

/// Statements inside one PostgreSQL transaction.
struct PgTx<'a, 't> {
    tx: &'a mut postgres::Transaction<'t>,
    statements: &'a mut HashMap<String, Statement>,
    capacity: usize,
}

impl Tx for PgTx<'_, '_> {
    fn execute(&mut self, q: &SqlQuery) -> Result<u64, DbError> {
        run_execute(self.tx, self.statements, self.capacity, q)
    }

    fn query(&mut self, q: &SqlQuery, types: &[Type]) -> Result<Vec<Vec<Value>>, DbError> {
        run_query(self.tx, self.statements, self.capacity, q, types)
    }
}

impl Database for Postgres {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn query(&self, q: &SqlQuery, types: &[Type]) -> Result<Vec<Vec<Value>>, DbError> {
        match self.query_once(q, types) {
            Ok(rows) => Ok(rows),
            // An idle pooled client may have lost its connection (server restart);
            // a read is safe to repeat once on a fresh client.
            Err((_, true)) => self.query_once(q, types).map_err(|(e, _)| e),
            Err((e, false)) => Err(e),
        }
    }

    fn transaction(&self, f: &mut dyn FnMut(&mut dyn Tx) -> Result<(), DbError>) -> Result<(), DbError> {
        let mut conn = self.client()?;
        let capacity = self.options.statement_cache;
        let PgClient { client, statements, .. } = &mut *conn;
        let outcome = (|| {
            let mut tx = client.transaction().map_err(|e| to_db_error(&e))?;
            // Dropping `tx` without commit rolls back, also when `f` fails or panics.
            f(&mut PgTx { tx: &mut tx, statements, capacity })?;
            tx.commit().map_err(|e| to_db_error(&e))
        })();
        if conn.client.is_closed() {
            conn.discard();
        }
        outcome
    }

    fn execute_ddl(&self, statements: &[String]) -> Result<(), DbError> {
        let mut conn = self.client()?;
        let mut outcome = Ok(());
        for statement in statements {
            if let Err(e) = conn.client.batch_execute(statement) {
                outcome = Err(match to_db_error(&e) {
                    DbError::Query(msg) => DbError::Query(format!("{msg} (in `{statement}`)")),
                    other => other,
                });
                break;
            }
        }
        // Even a failed batch may have changed the schema.
        self.ddl_generation.fetch_add(1, Ordering::AcqRel);
        if conn.client.is_closed() {
            conn.discard();
        }
        outcome
    }

    fn describe(&self) -> String {
        format!("PostgreSQL {}", self.description)
    }
}

#[cfg(test)]
mod tests {
    use super::Numeric;

    fn numeric(negative: bool, digits: &str, exponent: i64) -> Numeric {
        Numeric::Finite { negative, digits: digits.to_owned(), exponent }
    }

    #[test]
    fn numeric_conversions() {
        assert_eq!(numeric(false, "00120000", -4).to_i64(), Some(12));
        assert_eq!(numeric(true, "0012", 4).to_i64(), Some(-120_000));
        assert_eq!(numeric(false, "00125000", -4).to_i64(), None);
        assert_eq!(numeric(false, "00125000", -4).to_f64(), 12.5);
        assert_eq!(numeric(true, "0922337203685477", 4).to_i64(), Some(-9_223_372_036_854_770_000));
        assert_eq!(numeric(true, "0922337203685477", 8).to_i64(), None);
        assert_eq!(numeric(true, "00000922337203685477", 0).to_i64(), Some(-922_337_203_685_477));
        assert_eq!(numeric(true, "9223372036854775808", 0).to_i64(), Some(i64::MIN));
        assert_eq!(numeric(false, "9223372036854775808", 0).to_i64(), None);
        assert_eq!(Numeric::NaN.to_i64(), None);
        assert!(Numeric::NaN.to_f64().is_nan());
    }
}
