//! The in-memory predicate of the text form: evaluates checked IR against a row.
//!
//! OWNER: helper "grammar-plan". Semantics are Rust's (DESIGN.md "Semantics"):
//! `==`/`!=` are null-aware (`None == None`), strings compare by bytes,
//! `starts_with`/`ends_with`/`contains` are byte-exact and case-sensitive,
//! `to_lowercase` is Rust's `str::to_lowercase`, `eq_ignore_ascii_case` is Rust's,
//! `len` counts bytes, integer arithmetic is i64 with `/` truncating toward zero.
//! Where Rust would panic (overflow, division by zero) the comparison using the
//! result is false, never a panic. An int meeting a float compares numerically.

use crate::ir::Expr;
use crate::params::Params;
use crate::schema::Schema;
use crate::value::Value;

/// True when the row satisfies the filter. `column(i)` gives column `i`'s value.
pub fn matches(schema: &Schema, filter: &Expr, column: &dyn Fn(usize) -> Value, params: &dyn Params) -> bool {
    let _ = (schema, filter, column, params);
    unimplemented!("grammar-plan")
}

/// The value of a (non-boolean) expression for a row; `Value::Null` where Rust
/// would panic or the value is undefined. Used for aggregates over expressions.
pub fn value(schema: &Schema, e: &Expr, column: &dyn Fn(usize) -> Value, params: &dyn Params) -> Value {
    let _ = (schema, e, column, params);
    unimplemented!("grammar-plan")
}
