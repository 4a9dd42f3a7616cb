//! Support for the code `memdex-macros` generates. Not public API: names and
//! signatures here change with the macros.

pub use const_panic;
pub use memdex_grammar as grammar;

pub use crate::prepared::{Compiled, compile, compile_view};
pub use crate::query::{scan, select, view};

use memdex_grammar::ir::Lambda;
use memdex_grammar::span::Span;
use memdex_grammar::{Errors, Value};

use crate::model::Model;

pub use crate::model::IndexInfo;

/// The conversions of [`text_enum!`](crate::text_enum).
pub use crate::enum_text::{from_text as enum_from_text, value as enum_value};

/// Marks a `starts_with` pattern whose length is only known at run time.
pub const RUNTIME_PREFIX: u32 = u32::MAX;

const fn str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

const fn contains(list: &[&str], s: &str) -> bool {
    let mut i = 0;
    while i < list.len() {
        if str_eq(list[i], s) {
            return true;
        }
        i += 1;
    }
    false
}

/// Whether some index (or the key) is covered by a disjunct's equality criteria.
/// `eq`: fields with `==`, `in` or `is_none` criteria; `prefix`: fields with a
/// `starts_with` criterion and the pattern's length in chars ([`RUNTIME_PREFIX`]
/// when it is a captured value: the runtime checks it, and answers from the
/// database when it is too short). Mirrors `memdex_grammar::plan`'s rule.
pub const fn indexable(indexes: &[IndexInfo], eq: &[&str], prefix: &[(&str, u32)]) -> bool {
    let mut i = 0;
    while i < indexes.len() {
        let ix = indexes[i];
        if ix.prefix > 0 && ix.columns.len() == 1 {
            let mut j = 0;
            while j < prefix.len() {
                if str_eq(prefix[j].0, ix.columns[0]) && prefix[j].1 >= ix.prefix {
                    return true;
                }
                j += 1;
            }
        }
        let mut covered = true;
        let mut c = 0;
        while c < ix.columns.len() {
            if !contains(eq, ix.columns[c]) {
                covered = false;
            }
            c += 1;
        }
        if covered && ix.prefix == 0 {
            return true;
        }
        i += 1;
    }
    false
}

/// False when a criterion names a field the model does not have: rustc already
/// reports that at the user's code, and one mistake should give one error.
const fn names_known(fields: &[&str], eq: &[&str], prefix: &[(&str, u32)]) -> bool {
    if fields.is_empty() {
        return true;
    }
    let mut i = 0;
    while i < eq.len() {
        if !contains(fields, eq[i]) {
            return false;
        }
        i += 1;
    }
    let mut j = 0;
    while j < prefix.len() {
        if !contains(fields, prefix[j].0) {
            return false;
        }
        j += 1;
    }
    true
}

/// The const assertion `select!` emits once per disjunct, spanned at the disjunct.
/// The message is `before + index_list + after` (see
/// `memdex_grammar::plan::unindexable_message`), so it reads the same as the text
/// form's `Error::Unindexable`.
pub const fn assert_indexable(
    indexes: &[IndexInfo],
    fields: &[&str],
    eq: &[&str],
    prefix: &[(&str, u32)],
    before: &str,
    index_list: &str,
    after: &str,
) {
    if !indexable(indexes, eq, prefix) && names_known(fields, eq, prefix) {
        const_panic::concat_panic!(display: before, display: index_list, display: after);
    }
}

/// Converts a captured value into a bound parameter.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a memdex query parameter",
    label = "captured values become bound parameters; this one has no SQL value",
    note = "supported: i8, i16, i32, i64, u8, u16, u32, f32, f64, bool, String, &str, Vec<u8> and &[u8] (bytes), chrono::DateTime<Utc>, time::OffsetDateTime, uuid::Uuid (with their features), and Option, slices, arrays or Vecs of those"
)]
pub trait ToValue {
    fn to_value(&self) -> Value;

    /// A slice of these as one value: a list, except that bytes (`&[u8]`,
    /// `Vec<u8>`) are one byte string.
    fn slice_to_value(items: &[Self]) -> Value
    where
        Self: Sized,
    {
        list_value(items)
    }
}

/// The elements of a slice, each as a value.
fn list_value<T: ToValue>(items: &[T]) -> Value {
    Value::List(items.iter().map(ToValue::to_value).collect())
}

macro_rules! to_value_via_into {
    ($($t:ty),*) => {$(
        impl ToValue for $t {
            fn to_value(&self) -> Value { Value::from(self.clone()) }
        }
    )*};
}
to_value_via_into!(i8, i16, i32, i64, u16, u32, f32, f64, bool, String);

impl ToValue for u8 {
    fn to_value(&self) -> Value {
        Value::Int(i64::from(*self))
    }

    fn slice_to_value(items: &[u8]) -> Value {
        Value::Bytes(items.to_vec())
    }
}

impl ToValue for str {
    fn to_value(&self) -> Value {
        Value::Text(self.to_owned())
    }
}
impl<T: ToValue + ?Sized> ToValue for &T {
    fn to_value(&self) -> Value {
        (**self).to_value()
    }
}
impl<T: ToValue> ToValue for Option<T> {
    fn to_value(&self) -> Value {
        self.as_ref().map_or(Value::Null, ToValue::to_value)
    }
}
impl<T: ToValue> ToValue for [T] {
    fn to_value(&self) -> Value {
        T::slice_to_value(self)
    }
}
impl<T: ToValue, const N: usize> ToValue for [T; N] {
    fn to_value(&self) -> Value {
        self.as_slice().to_value()
    }
}
impl<T: ToValue> ToValue for Vec<T> {
    fn to_value(&self) -> Value {
        self.as_slice().to_value()
    }
}

/// `to_value(&expr)` in generated code.
pub fn to_value<V: ToValue + ?Sized>(v: &V) -> Value {
    v.to_value()
}

/// A captured list for `ids.contains(&c.x)`: becomes a [`Value::List`] parameter.
/// Only sequences implement it, so `name.contains(&c.s)` (a string haystack) is a
/// type error at `name` rather than a parameter of the wrong shape at run time.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a list: `x.contains(&c.field)` needs x to be an array, slice or Vec",
    label = "not a list of values",
    note = "to test a string field's content, write `c.field.contains(x)`"
)]
pub trait ToListValue {
    fn to_list_value(&self) -> Value;
}

// Always a list, even of `u8`: `ids.contains(&c.small)` tests membership.
impl<T: ToValue> ToListValue for [T] {
    fn to_list_value(&self) -> Value {
        list_value(self)
    }
}
impl<T: ToValue, const N: usize> ToListValue for [T; N] {
    fn to_list_value(&self) -> Value {
        list_value(self)
    }
}
impl<T: ToValue> ToListValue for Vec<T> {
    fn to_list_value(&self) -> Value {
        list_value(self)
    }
}
impl<T: ToListValue + ?Sized> ToListValue for &T {
    fn to_list_value(&self) -> Value {
        (**self).to_list_value()
    }
}

/// `to_list_value(&expr)` in generated code.
pub fn to_list_value<V: ToListValue + ?Sized>(v: &V) -> Value {
    v.to_list_value()
}

/// A field type `#[derive(Model)]` can read back from a database value.
///
/// Conversions are exact: an integer out of the field's range is an error, never a
/// wrapped value. Databases that store booleans as integers (SQLite) and floats that
/// happen to be whole as integers are accepted, since those are the same value.
pub trait FromValue: Sized {
    fn from_value(v: Value) -> Result<Self, String>;
}

fn found(v: &Value) -> String {
    match v {
        Value::Null => "NULL".into(),
        Value::List(_) => "a list".into(),
        other => format!("{} {other}", other.ty().map_or_else(String::new, |t| t.to_string())),
    }
}

macro_rules! from_value_int {
    ($($t:ty),*) => {$(
        impl FromValue for $t {
            fn from_value(v: Value) -> Result<$t, String> {
                match v {
                    Value::Int(i) => <$t>::try_from(i)
                        .map_err(|_| format!("{i} does not fit in {}", stringify!($t))),
                    other => Err(format!("expected an integer, found {}", found(&other))),
                }
            }
        }
    )*};
}
from_value_int!(i8, i16, i32, i64, u8, u16, u32);

impl FromValue for f64 {
    fn from_value(v: Value) -> Result<f64, String> {
        match v {
            Value::Float(x) => Ok(x),
            // A REAL column may hand back a whole number as an integer; i64 → f64 is
            // the same number for every value a float column could have stored.
            Value::Int(i) => Ok(i as f64),
            other => Err(format!("expected a float, found {}", found(&other))),
        }
    }
}
impl FromValue for f32 {
    fn from_value(v: Value) -> Result<f32, String> {
        // Stored from an f32, so narrowing back is exact.
        f64::from_value(v).map(|x| x as f32)
    }
}
impl FromValue for bool {
    fn from_value(v: Value) -> Result<bool, String> {
        match v {
            Value::Bool(b) => Ok(b),
            Value::Int(0) => Ok(false),
            Value::Int(1) => Ok(true),
            other => Err(format!("expected a bool, found {}", found(&other))),
        }
    }
}
impl FromValue for String {
    fn from_value(v: Value) -> Result<String, String> {
        match v {
            Value::Text(s) => Ok(s),
            other => Err(format!("expected a string, found {}", found(&other))),
        }
    }
}
impl FromValue for Vec<u8> {
    fn from_value(v: Value) -> Result<Vec<u8>, String> {
        match v {
            Value::Bytes(b) => Ok(b),
            other => Err(format!("expected bytes, found {}", found(&other))),
        }
    }
}
impl<T: FromValue> FromValue for Option<T> {
    fn from_value(v: Value) -> Result<Option<T>, String> {
        match v {
            Value::Null => Ok(None),
            other => T::from_value(other).map(Some),
        }
    }
}

/// Microseconds since 1970 of a timestamp value; the error names what was found.
#[cfg(any(feature = "chrono", feature = "time"))]
fn timestamp_micros(v: Value) -> Result<i64, String> {
    match v {
        Value::Timestamp(us) => Ok(us),
        other => Err(format!("expected a timestamp, found {}", found(&other))),
    }
}

/// `chrono::DateTime<Utc>`: microseconds since 1970. Sub-microsecond digits are
/// cut (toward the past), as every database stores microseconds.
#[cfg(feature = "chrono")]
impl ToValue for chrono::DateTime<chrono::Utc> {
    fn to_value(&self) -> Value {
        Value::Timestamp(self.timestamp_micros())
    }
}
#[cfg(feature = "chrono")]
impl FromValue for chrono::DateTime<chrono::Utc> {
    fn from_value(v: Value) -> Result<Self, String> {
        let us = timestamp_micros(v)?;
        chrono::DateTime::from_timestamp_micros(us)
            .ok_or_else(|| format!("{us} µs since 1970 is beyond chrono's range"))
    }
}

/// `time::OffsetDateTime`: the instant, as microseconds since 1970 (the offset is
/// not stored: the value reads back in UTC, equal to the one written).
#[cfg(feature = "time")]
impl ToValue for time::OffsetDateTime {
    fn to_value(&self) -> Value {
        // The range of `OffsetDateTime` (±9999 years) fits i64 microseconds.
        let us = self.unix_timestamp_nanos().div_euclid(1000);
        Value::Timestamp(i64::try_from(us).unwrap_or(if us < 0 { i64::MIN } else { i64::MAX }))
    }
}
#[cfg(feature = "time")]
impl FromValue for time::OffsetDateTime {
    fn from_value(v: Value) -> Result<Self, String> {
        let us = timestamp_micros(v)?;
        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000)
            .map_err(|_| format!("{us} µs since 1970 is beyond the time crate's range"))
    }
}

/// `uuid::Uuid`: its 16 bytes.
#[cfg(feature = "uuid")]
impl ToValue for uuid::Uuid {
    fn to_value(&self) -> Value {
        Value::Uuid(*self.as_bytes())
    }
}
#[cfg(feature = "uuid")]
impl FromValue for uuid::Uuid {
    fn from_value(v: Value) -> Result<Self, String> {
        match v {
            Value::Uuid(u) => Ok(uuid::Uuid::from_bytes(u)),
            other => Err(format!("expected a uuid, found {}", found(&other))),
        }
    }
}

/// `serde_json::Value`: its JSON text. Stored and read back only; no query takes
/// one (it is not [`Queryable`]).
#[cfg(feature = "json")]
impl ToValue for serde_json::Value {
    fn to_value(&self) -> Value {
        Value::Json(self.to_string())
    }
}
#[cfg(feature = "json")]
impl FromValue for serde_json::Value {
    fn from_value(v: Value) -> Result<Self, String> {
        match v {
            Value::Json(text) => serde_json::from_str(&text).map_err(|e| format!("holds invalid JSON: {e}")),
            other => Err(format!("expected JSON, found {}", found(&other))),
        }
    }
}

/// The field types a query may compare: every column type but JSON. `select!`
/// checks each field its filter reads, so `c.doc == x` on a JSON field fails to
/// compile at the field.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be compared in a memdex query",
    label = "a JSON field is stored and read back, never compared, filtered on or indexed",
    note = "queries compare bools, numbers, strings, bytes, timestamps and UUIDs"
)]
pub trait Queryable {}
macro_rules! queryable {
    ($($t:ty),*) => {$( impl Queryable for $t {} )*};
}
queryable!(i8, i16, i32, i64, u8, u16, u32, f32, f64, bool, String, Vec<u8>);
#[cfg(feature = "chrono")]
impl Queryable for chrono::DateTime<chrono::Utc> {}
#[cfg(feature = "time")]
impl Queryable for time::OffsetDateTime {}
#[cfg(feature = "uuid")]
impl Queryable for uuid::Uuid {}
impl<T: Queryable> Queryable for Option<T> {}
impl<T: Queryable + ?Sized> Queryable for &T {}

/// `queryable(&c.field)` in the never-run closure `select!` emits.
pub fn queryable<V: Queryable + ?Sized>(_: &V) {}

/// One column of a row for `Model::from_values`: the value converted to the field's
/// type, or an error naming the field and its column.
pub fn field_from_value<V: FromValue>(value: Option<Value>, field: &str, column: &str) -> Result<V, String> {
    let value = value.ok_or_else(|| format!("no value for field `{field}` (column `{column}`)"))?;
    V::from_value(value).map_err(|e| format!("field `{field}` (column `{column}`): {e}"))
}

/// The error of `Model::from_values` when the row has the wrong number of columns.
pub fn column_count_error(expected: usize, found: usize) -> String {
    format!("expected {expected} column values, found {found}")
}

/// The span the macros give IR node number `id` (see `memdex_grammar::span`).
pub const fn span(id: u32) -> Span {
    Span { start: id, end: id + 1 }
}

/// Checks, in a closure rustc type-checks but never runs, that a view's aggregate
/// argument is numeric.
pub fn aggregate_arg<V: Numeric>(_: &V) {}

/// The column types `sum`, `avg`, `min` and `max` accept.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be aggregated: sum, avg, min and max need a number",
    label = "not an integer or float"
)]
pub trait Numeric {}
macro_rules! numeric {
    ($($t:ty),*) => {$( impl Numeric for $t {} )*};
}
numeric!(i8, i16, i32, i64, u8, u16, u32, f32, f64);
impl<T: Numeric> Numeric for Option<T> {}
impl<T: Numeric + ?Sized> Numeric for &T {}

/// The compiled query of a call site whose macro reported errors. The program does
/// not compile, so this never runs; it only gives the expansion its usual type so
/// that one mistake gives one error.
pub fn not_compiled<T: Model>() -> Compiled {
    let schema = T::schema();
    Compiled {
        schema,
        prepared: Err(Errors::default()),
        aggregate: None,
        source: String::from("<query with compile errors>"),
    }
}

/// What `select!(@ir …)` / `scan!(@ir …)` return: the lambda the macro built and the
/// parameter values, for tests of the lowering.
#[derive(Clone, Debug, PartialEq)]
pub struct LoweredQuery {
    pub filter: Option<Lambda>,
    pub aggregate: Option<Lambda>,
    pub params: Vec<Value>,
}

/// The ids a cached index node lists, for tests that inspect the cache: `None` for
/// bytes that are not a complete node (a lease placeholder, possibly with appends,
/// or garbage).
pub fn decode_node_ids(
    bytes: &[u8],
    key_type: memdex_grammar::Type,
    order: Option<memdex_grammar::Type>,
) -> Option<Vec<Value>> {
    crate::codec::decode_node(bytes, key_type, order)
        .ok()
        .map(|node| node.entries.into_iter().map(|(id, _)| id).collect())
}

/// A cached object decoded as `T`, for tests that inspect the cache: `None` for bytes
/// that are not one (a placeholder, another shape).
pub fn decode_object<T: Model>(bytes: &[u8]) -> Option<T> {
    crate::codec::decode_object(bytes, T::schema().schema_hash())
}

/// A decoder of cached objects as `T`, its shape tag computed once: the benchmark's
/// typed floor decodes the values of a multi-get exactly as the executor does.
pub fn object_decoder<T: Model>() -> impl Fn(&[u8]) -> Option<T> {
    let tag = T::schema().schema_hash();
    move |bytes| crate::codec::decode_object(bytes, tag)
}

/// The node codec the executor runs, for the runtime's criterion benches (which
/// measure this very code rather than a copy of it).
pub mod node_codec {
    pub use crate::codec::{Entry, Node, decode_node, encode_node, entry_record, etag};
}

/// Makes an enum of unit variants (with serde's `Serialize` and `Deserialize`) a
/// text column type: a field of it marked `#[memdex(text)]` is stored as the
/// variant's serde name, and a query compares it by `==`, `!=` and `in` (through
/// an index too). Ordering comparisons compare the stored names, not the
/// declaration order: do not derive `PartialOrd` for an enum you order by in queries.
///
/// ```
/// use memdex::{Model, select};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
/// #[serde(rename_all = "snake_case")]
/// pub enum Status {
///     Open,
///     Paid,
/// }
/// memdex::text_enum!(Status);
///
/// #[derive(Model, Clone, Debug, Serialize, Deserialize)]
/// pub struct Order {
///     #[memdex(key)]
///     pub id: i64,
///     #[memdex(text, index)]
///     pub status: Status,
/// }
///
/// let paid = select!(Order, |o| o.status == Status::Paid);
/// ```
#[macro_export]
macro_rules! text_enum {
    ($($t:ty),+ $(,)?) => {$(
        impl $crate::__private::ToValue for $t {
            fn to_value(&self) -> $crate::__private::grammar::Value {
                $crate::__private::enum_value(self)
            }
        }
        impl $crate::__private::FromValue for $t {
            fn from_value(v: $crate::__private::grammar::Value) -> ::std::result::Result<Self, ::std::string::String> {
                match v {
                    $crate::__private::grammar::Value::Text(text) => $crate::__private::enum_from_text(text),
                    other => ::std::result::Result::Err(::std::format!("expected a variant's name, found {other:?}")),
                }
            }
        }
        impl $crate::__private::Queryable for $t {}
    )+};
}
