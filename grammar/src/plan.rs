//! Index planning: for each disjunct, the equality criteria that name index nodes,
//! and the residual filter.
//!
//! OWNER: helper "grammar-plan". See DESIGN.md "Index planning".

use crate::error::Errors;
use crate::ir::Expr;
use crate::normalise::Conjunction;
use crate::params::Params;
use crate::schema::Schema;
use crate::span::Span;
use crate::value::Value;

/// A literal or a bound parameter: what an equality criterion compares against.
#[derive(Clone, Debug, PartialEq)]
pub enum Operand {
    Lit(Value),
    Param(String),
}

#[derive(Clone, Debug, PartialEq)]
pub enum LookupValues {
    /// `field == v` (also `field is None`, as `One(Lit(Null))`).
    One(Operand),
    /// `field in (a, b, …)`: one node per value.
    Many(Vec<Operand>),
    /// `field in ids`: one node per element of the bound list.
    List(String),
    /// `field.starts_with(p)` against a `prefix = chars` index: the node of the first
    /// `chars` characters of `p` (the whole `starts_with` stays in the residual).
    Prefix { operand: Operand, chars: u32 },
}

/// One column of an index and the values the disjunct pins it to.
#[derive(Clone, Debug, PartialEq)]
pub struct Lookup {
    pub column: usize,
    pub values: LookupValues,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Access {
    /// The key itself is pinned: objects are fetched directly, no node.
    Key(Lookup),
    /// Nodes of `schema.indexes[index]`; `lookups` follow the index's column order.
    Index { index: usize, lookups: Vec<Lookup> },
}

#[derive(Clone, Debug, PartialEq)]
pub struct DisjunctPlan {
    pub span: Span,
    /// The whole disjunct (all its conjuncts).
    pub conjuncts: Conjunction,
    pub access: Access,
    /// The conjuncts not answered by the nodes; filters objects in memory.
    pub residual: Vec<Expr>,
}

/// The plan of a filter. No disjuncts: the filter is contradictory, the answer is empty.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub disjuncts: Vec<DisjunctPlan>,
}

/// The disjuncts of a DNF, planned against the schema's key and indexes. Each
/// disjunct picks the most selective covering access (key, then composite indexes
/// by width, then single, then prefix). Disjuncts that are contradictory on literals
/// (`x == 1 and x == 2`, `x == 1 and x != 1`) are dropped. Every disjunct without a
/// covering access yields `ErrorKind::Unindexable` at its span, with
/// [`unindexable_message`]'s wording; all of them are reported.
pub fn plan(schema: &Schema, dnf: &[Conjunction]) -> Result<Plan, Errors> {
    let _ = (schema, dnf);
    unimplemented!("grammar-plan")
}

/// What can serve as an equality criterion in a conjunction, found without a schema
/// (the macro uses it at compile time, the planner at run time: one rule for both).
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    pub field: String,
    pub kind: CandidateKind,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum CandidateKind {
    /// `field == operand` (either side), `field is None`.
    Eq,
    /// `field in (…)`, `field in ids`.
    In,
    /// `field.starts_with(operand)`; `literal_chars` is the pattern's length in chars
    /// when it is a literal (a prefix index of n chars needs at least n).
    Prefix { literal_chars: Option<u32> },
}

pub fn candidates(conjunction: &[Expr]) -> Vec<Candidate> {
    let _ = conjunction;
    unimplemented!("grammar-plan")
}

/// The words of an unindexable error, shared by the text form (runtime error) and the
/// macro form (compile-time const panic). The model's index list goes between
/// `before` and `after`, so the macro can splice in the derive's const string:
/// message = `before + schema.describe_indexes() + after`.
pub fn unindexable_message(model: &str, disjunct: &str, suggestion: &str) -> (String, String) {
    (
        format!(
            "memdex: no index of {model} serves `{disjunct}`: every alternative of a select needs `==`, `in` or a prefix `starts_with` on all columns of one index (indexes: "
        ),
        format!("); {suggestion}, or use scan! to query the database"),
    )
}

/// One node to fetch: the index (None: the key itself) and one value per index
/// column (for a prefix index, the prefix string).
#[derive(Clone, Debug, PartialEq)]
pub struct NodeRef {
    pub index: Option<usize>,
    pub values: Vec<Value>,
}

/// Why a disjunct could not be bound to nodes at run time; the runtime answers from
/// the database instead.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum BindError {
    #[error("parameter `{0}` is not bound")]
    Unbound(String),
    #[error("starts_with pattern shorter than the {chars}-character prefix index")]
    PrefixTooShort { chars: u32 },
    #[error("the query names {count} index nodes, more than the limit of {limit}")]
    TooManyNodes { count: usize, limit: usize },
    #[error("parameter `{0}` must be a list")]
    NotAList(String),
}

/// Binds a disjunct's access to parameter values: the cartesian product of its
/// lookups' values, at most `limit` nodes. Duplicate values give one node.
pub fn bind(d: &DisjunctPlan, params: &dyn Params, limit: usize) -> Result<Vec<NodeRef>, BindError> {
    let _ = (d, params, limit);
    unimplemented!("grammar-plan")
}

/// Does a row (given as its column values) belong in the node? Used to drop ids
/// lazily: equality per column (null-aware), first `n` chars for a prefix index.
pub fn node_matches(schema: &Schema, node: &NodeRef, column: &dyn Fn(usize) -> Value) -> bool {
    let _ = (schema, node, column);
    unimplemented!("grammar-plan")
}

/// The node of `schema.indexes[index]` that a row with these column values belongs
/// to (writes append the row's key there).
pub fn node_of_row(schema: &Schema, index: usize, column: &dyn Fn(usize) -> Value) -> NodeRef {
    let _ = (schema, index, column);
    unimplemented!("grammar-plan")
}
