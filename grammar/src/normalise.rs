//! Normalisation to disjunctive normal form, as small passes:
//! push `not` inward (De Morgan, double negation, `not (a == b)` → `a != b`,
//! `not (x is None)` → `x is not None`; other negated leaves stay `Not(leaf)`),
//! flatten nested `and`/`or`, distribute `and` over `or`.
//!
//! OWNER: helper "grammar-plan". Contract: never needs a schema (the macro calls it
//! at compile time); bounded by `limit` disjuncts — exceeding it is
//! `ErrorKind::TooManyDisjuncts` at the whole expression, detected *before* building
//! the product (no exponential blow-up, no hang). Literal `True`/`False` conjuncts
//! and disjuncts are simplified away.

use crate::error::Error;
use crate::ir::Expr;

/// Default bound on the number of disjuncts.
pub const DEFAULT_DISJUNCT_LIMIT: usize = 64;

/// A conjunction of leaves (no `and`/`or` inside, `not` only around a leaf).
pub type Conjunction = Vec<Expr>;

/// The DNF of a boolean expression. An empty outer vector means "always false";
/// an inner empty conjunction means "always true".
pub fn to_dnf(e: &Expr, limit: usize) -> Result<Vec<Conjunction>, Error> {
    let _ = (e, limit);
    unimplemented!("grammar-plan")
}
