//! Binding the grammar's values on a plain `rusqlite` connection, for the tests that
//! run emitted SQL on SQLite.

use memdex_grammar::Value;
use rusqlite::types::Value as SqliteValue;

pub fn sqlite_value(v: &Value) -> SqliteValue {
    match v {
        Value::Null => SqliteValue::Null,
        Value::Bool(b) => SqliteValue::Integer(i64::from(*b)),
        Value::Int(i) => SqliteValue::Integer(*i),
        Value::Float(x) => SqliteValue::Real(*x),
        Value::Text(s) => SqliteValue::Text(s.clone()),
        Value::Bytes(b) => SqliteValue::Blob(b.clone()),
        Value::Uuid(u) => SqliteValue::Blob(u.to_vec()),
        Value::Timestamp(us) => SqliteValue::Integer(*us),
        Value::Json(j) => SqliteValue::Text(j.clone()),
        Value::List(_) => unreachable!("the emitter binds list elements one by one"),
    }
}
