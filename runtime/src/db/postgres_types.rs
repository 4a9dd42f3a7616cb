//! PostgreSQL values and errors, shared by the blocking (`postgres`) and the async
//! (`tokio-postgres`) backends: both speak the same wire types.
//!
//! Parameters are converted to the types PostgreSQL inferred for the prepared
//! statement (`Statement::params`), so an integer bound where the statement
//! expects `float8` is sent as a float and a NULL is sent as a NULL of the expected
//! type. Rows are decoded to the types the caller asks for.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio_postgres::Config;
use tokio_postgres::config::Host;
use tokio_postgres::error::SqlState;
// The buffer type of `ToSql`, as the driver's own `to_sql_checked!` names it.
use tokio_postgres::types::private::BytesMut;
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type as PgType, to_sql_checked};
use tokio_postgres::{Row, Statement};

use memdex_grammar::capture::SessionMark;
use memdex_grammar::{Type, Value};

use super::postgres::PostgresOptions;
use super::{DbError, integral, value_kind};

/// The full message: the server's message, SQLSTATE, detail and hint for server
/// errors; the chain of causes otherwise (`postgres::Error`'s own text is terse).
pub(crate) fn error_text(e: &tokio_postgres::Error) -> String {
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

/// A lost connection is a `Connect` error (the caller may retry elsewhere); a
/// unique violation (SQLSTATE 23505) is a `UniqueViolation` naming its constraint;
/// anything else the server rejected is a `Query` error with its SQLSTATE.
pub(crate) fn to_db_error(e: tokio_postgres::Error) -> DbError {
    let message = error_text(&e);
    if let Some(db) = e.as_db_error() {
        if *db.code() == SqlState::UNIQUE_VIOLATION {
            let constraint = db.constraint().map(str::to_owned);
            return DbError::UniqueViolation { constraint, message, source: Some(Box::new(e)) };
        }
        let code = Some(db.code().code().to_owned());
        return DbError::Query { message, code, source: Some(Box::new(e)) };
    }
    if e.is_closed() || std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>()) {
        return DbError::Connect {
            message: format!("PostgreSQL connection lost: {message}"),
            source: Some(Box::new(e)),
        };
    }
    DbError::Query { message, code: None, source: Some(Box::new(e)) }
}

/// Parses connection parameters (key=value pairs or a `postgres://` URL) and
/// applies the options both backends share: the connect timeout unless the
/// parameters set one, and the session's statement timeout.
pub(crate) fn parse_config(params: &str, options: &PostgresOptions) -> Result<Config, DbError> {
    let mut config: Config = params.parse().map_err(|e: tokio_postgres::Error| DbError::Connect {
        message: format!("invalid PostgreSQL parameters: {e}"),
        source: Some(Box::new(e)),
    })?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(options.connect_timeout);
    }
    set_statement_timeout(&mut config, options.statement_timeout);
    Ok(config)
}

/// Sets the session's `statement_timeout`, and the mark capture triggers skip
/// (`memdex_grammar::capture::SessionMark`), in the startup packet (no round trip
/// per client), after any options the parameters already carry.
fn set_statement_timeout(config: &mut Config, timeout: Duration) {
    let setting = format!("-c statement_timeout={} -c {}=on", timeout.as_millis(), SessionMark::POSTGRES_SETTING);
    let options = match config.get_options() {
        Some(existing) if !existing.is_empty() => format!("{existing} {setting}"),
        _ => setting,
    };
    config.options(&options);
}

/// `host=… port=… dbname=… user=…`, never the password.
pub(crate) fn describe_config(config: &Config) -> String {
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

/// Converts `params` to the types the statement expects.
pub(crate) fn bind<'a>(
    statement: &Statement,
    params: &'a [Value],
) -> Result<Vec<Box<dyn ToSql + Sync + Send + 'a>>, DbError> {
    let expected = statement.params();
    if expected.len() != params.len() {
        return Err(DbError::query(format!(
            "the statement has {} parameters but {} values were bound",
            expected.len(),
            params.len()
        )));
    }
    params.iter().zip(expected).enumerate().map(|(i, (value, ty))| bind_one(i + 1, value, ty)).collect()
}

fn bind_one<'a>(position: usize, value: &'a Value, ty: &PgType) -> Result<Box<dyn ToSql + Sync + Send + 'a>, DbError> {
    let cannot = |why: &str| {
        DbError::query(format!("parameter {position}: cannot bind {} as PostgreSQL {ty}{why}", value_kind(value)))
    };
    let boxed: Box<dyn ToSql + Sync + Send + 'a> = match (value, ty) {
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
        (Value::Bytes(b), &PgType::BYTEA) => Box::new(b.as_slice()),
        (Value::Timestamp(us), &PgType::TIMESTAMPTZ) => {
            Box::new(system_time(*us).ok_or_else(|| cannot(" (out of range)"))?)
        }
        (Value::Uuid(u), &PgType::UUID) => Box::new(PgUuid(*u)),
        (Value::Json(j), &PgType::JSONB | &PgType::JSON) => Box::new(PgJson(j.clone())),
        _ => return Err(cannot("")),
    };
    Ok(boxed)
}

/// A long `in` list bound as one array (`col = ANY($n)`), its elements converted
/// as single values of the element type are (`bind_one`).
fn bind_array<'a>(
    position: usize,
    items: &'a [Value],
    ty: &PgType,
) -> Result<Box<dyn ToSql + Sync + Send + 'a>, DbError> {
    let cannot = |item: &Value, why: &str| {
        DbError::query(format!(
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
            return Err(DbError::query(format!(
                "parameter {position}: cannot bind a list as PostgreSQL {ty} (lists bind only to `= ANY($n)`)"
            )));
        }
    })
}

/// A NULL that the driver accepts for a parameter of type `ty`.
fn typed_null(ty: &PgType) -> Option<Box<dyn ToSql + Sync + Send>> {
    Some(match *ty {
        PgType::INT8 => Box::new(None::<i64>),
        PgType::INT4 => Box::new(None::<i32>),
        PgType::INT2 => Box::new(None::<i16>),
        PgType::FLOAT8 => Box::new(None::<f64>),
        PgType::FLOAT4 => Box::new(None::<f32>),
        PgType::BOOL => Box::new(None::<bool>),
        PgType::BYTEA => Box::new(None::<&[u8]>),
        PgType::TIMESTAMPTZ => Box::new(None::<SystemTime>),
        PgType::UUID => Box::new(None::<PgUuid>),
        PgType::JSONB | PgType::JSON => Box::new(None::<PgJson>),
        ref t if <&str as ToSql>::accepts(t) => Box::new(None::<&str>),
        _ => return None,
    })
}

/// Decodes column `i` of `row` to the requested type.
pub(crate) fn decode(row: &Row, i: usize, ty: Type) -> Result<Value, DbError> {
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
        (Type::Bytes, &PgType::BYTEA) => get::<Vec<u8>>(row, i)?.map(Value::Bytes),
        (Type::Timestamp, &PgType::TIMESTAMPTZ | &PgType::TIMESTAMP) => match get::<SystemTime>(row, i)? {
            None => None,
            Some(t) => {
                Some(Value::Timestamp(micros(t).ok_or_else(|| mismatch("holds an instant out of range".into()))?))
            }
        },
        (Type::Uuid, &PgType::UUID) => get::<PgUuid>(row, i)?.map(|u| Value::Uuid(u.0)),
        (Type::Json, &PgType::JSONB | &PgType::JSON) => get::<PgJson>(row, i)?.map(|j| Value::Json(j.0)),
        _ => return Err(wrong_type()),
    };
    Ok(value.unwrap_or(Value::Null))
}

/// The instant `us` microseconds after 1970 (before it when negative), as the
/// driver binds `timestamptz`; `None` beyond what `SystemTime` holds.
fn system_time(us: i64) -> Option<SystemTime> {
    let magnitude = Duration::from_micros(us.unsigned_abs());
    if us >= 0 { UNIX_EPOCH.checked_add(magnitude) } else { UNIX_EPOCH.checked_sub(magnitude) }
}

/// Microseconds since 1970 of an instant read from a `timestamptz` (which holds
/// whole microseconds, so nothing is cut).
fn micros(t: SystemTime) -> Option<i64> {
    match t.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_micros()).ok(),
        Err(before) => i64::try_from(before.duration().as_micros()).ok().map(|us| -us),
    }
}

/// A `uuid` on the wire: its 16 bytes. (The driver converts UUIDs only through an
/// optional `uuid` dependency; the wire format is the bytes themselves.)
#[derive(Debug)]
struct PgUuid([u8; 16]);

impl ToSql for PgUuid {
    fn to_sql(&self, _: &PgType, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        out.extend_from_slice(&self.0);
        Ok(IsNull::No)
    }

    fn accepts(ty: &PgType) -> bool {
        *ty == PgType::UUID
    }

    to_sql_checked!();
}

impl<'a> FromSql<'a> for PgUuid {
    fn from_sql(_: &PgType, raw: &'a [u8]) -> Result<Self, BoxError> {
        Ok(PgUuid(raw.try_into().map_err(|_| format!("a uuid of {} bytes", raw.len()))?))
    }

    fn accepts(ty: &PgType) -> bool {
        *ty == PgType::UUID
    }
}

/// A `jsonb` or `json` value as JSON text: `jsonb`'s binary format is a version
/// byte (1) before the text, `json`'s is the text alone.
#[derive(Debug)]
struct PgJson(String);

const JSONB_VERSION: u8 = 1;

impl ToSql for PgJson {
    fn to_sql(&self, ty: &PgType, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        if *ty == PgType::JSONB {
            out.extend_from_slice(&[JSONB_VERSION]);
        }
        out.extend_from_slice(self.0.as_bytes());
        Ok(IsNull::No)
    }

    fn accepts(ty: &PgType) -> bool {
        matches!(*ty, PgType::JSONB | PgType::JSON)
    }

    to_sql_checked!();
}

impl<'a> FromSql<'a> for PgJson {
    fn from_sql(ty: &PgType, raw: &'a [u8]) -> Result<Self, BoxError> {
        let text = match (ty, raw.split_first()) {
            (&PgType::JSONB, Some((&JSONB_VERSION, rest))) => rest,
            (&PgType::JSONB, _) => return Err("an unknown jsonb format version".into()),
            _ => raw,
        };
        Ok(PgJson(std::str::from_utf8(text)?.to_owned()))
    }

    fn accepts(ty: &PgType) -> bool {
        matches!(*ty, PgType::JSONB | PgType::JSON)
    }
}

type BoxError = Box<dyn std::error::Error + Sync + Send>;

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

/// Decodes every row of a query's reply to `types`, after checking the statement
/// returns as many columns as were asked for.
pub(crate) fn decode_rows(statement: &Statement, rows: &[Row], types: &[Type]) -> Result<Vec<Vec<Value>>, DbError> {
    let columns = statement.columns().len();
    if columns != types.len() {
        return Err(DbError::Decode {
            column: columns.min(types.len()),
            reason: format!("the query returns {columns} columns but {} types were requested", types.len()),
        });
    }
    rows.iter().map(|row| types.iter().enumerate().map(|(i, ty)| decode(row, i, *ty)).collect()).collect()
}

/// The bound values as the driver takes them.
pub(crate) fn refs<'a>(bound: &'a [Box<dyn ToSql + Sync + Send + 'a>]) -> Vec<&'a (dyn ToSql + Sync)> {
    bound.iter().map(|b| &**b as &(dyn ToSql + Sync)).collect()
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
