//! Checking a lambda against a [`Schema`]: fields exist, types agree, the body is a
//! boolean filter (or a single aggregate for views).
//!
//! OWNER: helper "grammar-front". Contract:
//! * collects all errors, each at its span: `UnknownField` (with a did-you-mean by
//!   edit distance), `TypeMismatch`, `NotBoolean`, `MisplacedAggregate`,
//!   `UnboundParam` (ParamType::Missing), `Unsupported` (e.g. ordering `<` on an
//!   `Option` column, string methods on a non-string or nullable column, `in` on a
//!   nullable column: Rust would not compile those either).
//! * rewrites where the text form is looser than Rust: an integer literal compared
//!   with / used in arithmetic with a float column becomes a float literal.
//! * returns the (possibly rewritten) expression.

use crate::error::Errors;
use crate::ir::{AggFunc, Expr};
use crate::params::ParamType;
use crate::schema::Schema;
use crate::span::Span;
use crate::value::Type;

/// A checked aggregate: `avg(m.runs)` → `{ func: Avg, arg: Some(m.runs) }`.
#[derive(Clone, Debug, PartialEq)]
pub struct Aggregate {
    pub func: AggFunc,
    pub arg: Option<Expr>,
    pub span: Span,
    /// The argument's type (`None` for `count()`).
    pub arg_type: Option<Type>,
}

/// Checks a filter body; it must be boolean.
pub fn filter(schema: &Schema, body: &Expr, params: &dyn Fn(&str) -> ParamType) -> Result<Expr, Errors> {
    let _ = (schema, body, params);
    unimplemented!("grammar-front")
}

/// Checks a view's aggregate body: exactly one of `count() sum(e) min(e) max(e) avg(e)`
/// over a numeric expression (`min`/`max` also accept strings? no: numeric only).
pub fn aggregate(schema: &Schema, body: &Expr, params: &dyn Fn(&str) -> ParamType) -> Result<Aggregate, Errors> {
    let _ = (schema, body, params);
    unimplemented!("grammar-front")
}
