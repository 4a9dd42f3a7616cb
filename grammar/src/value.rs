//! Runtime values: literals in the IR, bound parameters, column values of rows.

use std::cmp::Ordering;
use std::fmt;

/// A value of the query language.
///
/// `Null` is Rust's `None`. `List` only appears as a bound parameter of an `in` test
/// (`c.x in ids`); columns never hold lists.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Value {
    /// `None` (SQL's NULL).
    Null,
    /// A `bool`.
    Bool(bool),
    /// Every integer type a column may have, widened to `i64`.
    Int(i64),
    /// `f64` (and `f32`, widened).
    Float(f64),
    /// A `String`.
    Text(String),
    /// The elements of a bound list, for `c.x in ids`.
    List(Vec<Value>),
    /// A byte string (`Vec<u8>`), compared byte by byte.
    Bytes(Vec<u8>),
    /// An instant, as microseconds since 1970-01-01T00:00:00Z (negative before it):
    /// `chrono::DateTime<Utc>`, `time::OffsetDateTime`. Microseconds are what every
    /// supported database stores exactly, so equality and order are the integers'.
    Timestamp(i64),
    /// A UUID's 16 bytes in network order; ordered as bytes, as every database orders it.
    Uuid([u8; 16]),
    /// A JSON document (`serde_json::Value`) as JSON text. It can be stored and read
    /// back, never compared: queries and indexes reject a JSON column.
    Json(String),
}

/// The scalar types a column or expression can have.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Type {
    /// `bool`.
    Bool,
    /// `i8` to `i64`, `u8` to `u32`: a 64-bit signed integer column.
    Int,
    /// `f32`, `f64`: a double precision column.
    Float,
    /// `String`: a text column, compared by bytes.
    Text,
    /// `Vec<u8>`: a byte string column, compared by bytes.
    Bytes,
    /// `chrono::DateTime<Utc>`, `time::OffsetDateTime`: an instant with microsecond
    /// precision, ordered in time.
    Timestamp,
    /// `uuid::Uuid`: 16 bytes, compared by bytes.
    Uuid,
    /// `serde_json::Value`: stored and read back, never compared or indexed.
    Json,
}

impl Type {
    /// A short ASCII name of the type, for the texts memdex stores in the database
    /// (the index registry's definitions, the captured changes' shapes).
    pub fn tag(self) -> &'static str {
        match self {
            Type::Bool => "bool",
            Type::Int => "int",
            Type::Float => "float",
            Type::Text => "text",
            Type::Bytes => "bytes",
            Type::Timestamp => "ts",
            Type::Uuid => "uuid",
            Type::Json => "json",
        }
    }

    /// The type [`Type::tag`] names.
    pub fn from_tag(tag: &str) -> Option<Type> {
        Some(match tag {
            "bool" => Type::Bool,
            "int" => Type::Int,
            "float" => Type::Float,
            "text" => Type::Text,
            "bytes" => Type::Bytes,
            "ts" => Type::Timestamp,
            "uuid" => Type::Uuid,
            "json" => Type::Json,
            _ => return None,
        })
    }

    /// Whether values of this type can be compared in a query or listed by an index
    /// node (every type but JSON: JSON documents have no equality SQL and Rust agree on).
    pub fn comparable(self) -> bool {
        self != Type::Json
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Type::Bool => "bool",
            Type::Int => "integer",
            Type::Float => "float",
            Type::Text => "string",
            Type::Bytes => "bytes",
            Type::Timestamp => "timestamp",
            Type::Uuid => "uuid",
            Type::Json => "json",
        })
    }
}

impl Value {
    /// The scalar type of a non-null, non-list value.
    pub fn ty(&self) -> Option<Type> {
        match self {
            Value::Bool(_) => Some(Type::Bool),
            Value::Int(_) => Some(Type::Int),
            Value::Float(_) => Some(Type::Float),
            Value::Text(_) => Some(Type::Text),
            Value::Bytes(_) => Some(Type::Bytes),
            Value::Timestamp(_) => Some(Type::Timestamp),
            Value::Uuid(_) => Some(Type::Uuid),
            Value::Json(_) => Some(Type::Json),
            Value::Null | Value::List(_) => None,
        }
    }

    /// Whether this is `Null`.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The string of a `Text` value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }

    /// The integer of an `Int` value (a `Float` is not converted).
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// Numeric view used when an integer meets a float (text-form literals).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(x) => Some(*x),
            _ => None,
        }
    }

    /// Rust's ordering, used for in-memory `order_by`: `None` sorts before every `Some`
    /// (as `Option`'s `Ord` does), strings compare by bytes, integers and floats
    /// numerically. Floats that are unordered (NaN) sort after every other number so
    /// that sorting is total. The SQL emitter makes each dialect order the same way.
    pub fn order(&self, other: &Value) -> Ordering {
        use Value::*;
        match (self, other) {
            (Null, Null) => Ordering::Equal,
            (Null, _) => Ordering::Less,
            (_, Null) => Ordering::Greater,
            (Bool(a), Bool(b)) => a.cmp(b),
            (Int(a), Int(b)) => a.cmp(b),
            (Text(a), Text(b)) => a.as_bytes().cmp(b.as_bytes()),
            (Bytes(a), Bytes(b)) => a.cmp(b),
            (Timestamp(a), Timestamp(b)) => a.cmp(b),
            (Uuid(a), Uuid(b)) => a.cmp(b),
            (Json(a), Json(b)) => a.cmp(b),
            (Int(_) | Float(_), Int(_) | Float(_)) => {
                let (a, b) = (self.as_f64().unwrap_or(f64::NAN), other.as_f64().unwrap_or(f64::NAN));
                a.partial_cmp(&b).unwrap_or_else(|| a.is_nan().cmp(&b.is_nan()))
            }
            (List(a), List(b)) => {
                a.iter().zip(b).map(|(x, y)| x.order(y)).find(|o| o.is_ne()).unwrap_or(a.len().cmp(&b.len()))
            }
            _ => self.rank().cmp(&other.rank()),
        }
    }

    fn rank(&self) -> u8 {
        match self {
            Value::Null => 0,
            Value::Bool(_) => 1,
            Value::Int(_) | Value::Float(_) => 2,
            Value::Text(_) => 3,
            Value::List(_) => 4,
            Value::Bytes(_) => 5,
            Value::Timestamp(_) => 6,
            Value::Uuid(_) => 7,
            Value::Json(_) => 8,
        }
    }
}

impl fmt::Display for Value {
    /// Python-literal spelling, as the text form writes it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("None"),
            Value::Bool(true) => f.write_str("True"),
            Value::Bool(false) => f.write_str("False"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) if x.is_finite() && x.fract() == 0.0 && x.abs() < 1e15 => write!(f, "{x:.1}"),
            Value::Float(x) => write!(f, "{x:?}"),
            Value::Text(s) => write!(f, "{s:?}"),
            // Python's spelling of a bytes literal, every byte escaped.
            Value::Bytes(b) => {
                f.write_str("b'")?;
                b.iter().try_for_each(|x| write!(f, "\\x{x:02x}"))?;
                f.write_str("'")
            }
            // There are no literals of these types in the text form: they are bound
            // parameters, and this spelling is for messages only.
            Value::Timestamp(us) => write!(f, "timestamp({us})"),
            Value::Uuid(u) => {
                f.write_str("uuid('")?;
                write_uuid(u, f)?;
                f.write_str("')")
            }
            Value::Json(j) => write!(f, "json({j:?})"),
            Value::List(items) => {
                f.write_str("(")?;
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{v}")?;
                }
                if items.len() == 1 {
                    f.write_str(",")?;
                }
                f.write_str(")")
            }
        }
    }
}

/// The hyphenated lower-case spelling of a UUID (`8-4-4-4-12` hex digits).
pub fn write_uuid(u: &[u8; 16], out: &mut impl fmt::Write) -> fmt::Result {
    for (i, b) in u.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.write_char('-')?;
        }
        write!(out, "{b:02x}")?;
    }
    Ok(())
}

macro_rules! from_int {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Value { Value::Int(i64::from(v)) }
        }
    )*};
}
from_int!(i8, i16, i32, i64, u8, u16, u32);

impl From<f64> for Value {
    fn from(v: f64) -> Value {
        Value::Float(v)
    }
}
impl From<f32> for Value {
    fn from(v: f32) -> Value {
        Value::Float(f64::from(v))
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Value {
        Value::Bool(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::Text(v.to_owned())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Value {
        Value::Text(v)
    }
}
impl From<&String> for Value {
    fn from(v: &String) -> Value {
        Value::Text(v.clone())
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Value {
        v.map_or(Value::Null, Into::into)
    }
}
impl<T: Into<Value>> From<Vec<T>> for Value {
    fn from(v: Vec<T>) -> Value {
        Value::List(v.into_iter().map(Into::into).collect())
    }
}
