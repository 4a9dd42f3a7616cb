//! memdex's query language, from text or IR to plan and SQL. No I/O, no `syn`.
//!
//! The phases, each in its own module:
//!
//! 1. [`text`]: Python-lambda text → [`ir::Lambda`] (the macro form builds the same
//!    IR from Rust syntax in `memdex-macros`);
//! 2. [`check`]: fields, types and shape against a [`Schema`];
//! 3. [`normalise`]: disjunctive normal form, in small passes;
//! 4. [`plan`]: per disjunct, the index nodes and the residual filter;
//! 5. [`sql`]: SQL per dialect through the sqlparser AST; [`explain`] for people.
//!
//! [`eval`] evaluates the IR in memory (the text form's predicate), [`keys`] names
//! cache entries. [`prepare`] runs phases 2–4 in one call for both front ends, so a
//! query has the same plan whichever way it was written.

pub mod check;
pub mod decimal;
pub mod error;
pub mod eval;
pub mod explain;
pub mod ir;
pub mod keys;
pub mod normalise;
pub mod params;
pub mod plan;
pub mod print;
pub mod relax;
pub mod schema;
pub mod span;
pub mod sql;
pub mod text;
pub mod value;

pub use check::Aggregate;
pub use error::{Error, ErrorKind, Errors};
pub use ir::{Expr, ExprKind, Lambda};
pub use params::{ParamType, Params, Positional};
pub use plan::Plan;
pub use schema::{Column, IndexDef, Schema};
pub use span::Span;
pub use sql::Dialect;
pub use value::{Type, Value};

/// How a query will be run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// `select!` / `recall_text`: must be served by indexes.
    Indexed,
    /// `scan!`: runs on the database; no index requirement.
    Scan,
}

/// A checked, normalised and planned filter.
#[derive(Clone, Debug, PartialEq)]
pub struct Prepared {
    /// The checked filter (`None`: every row).
    pub filter: Option<Expr>,
    /// The index plan (`None` for a scan or a filter-less query).
    pub plan: Option<Plan>,
    /// The lambda parameter's name, for printing.
    pub param: String,
}

/// Checks, normalises and (for [`Access::Indexed`]) plans a filter lambda. All errors
/// of the failing phase are returned together.
pub fn prepare(
    schema: &Schema,
    lambda: &Lambda,
    params: &dyn Fn(&str) -> ParamType,
    access: Access,
    disjunct_limit: usize,
) -> Result<Prepared, Errors> {
    let filter = check::filter(schema, &lambda.body, params)?;
    plan_checked(schema, filter, lambda.param.clone(), access, disjunct_limit)
}

/// [`text::parse`] then [`prepare`].
pub fn prepare_text(
    schema: &Schema,
    source: &str,
    params: &dyn Fn(&str) -> ParamType,
    access: Access,
    disjunct_limit: usize,
) -> Result<Prepared, Errors> {
    let lambda = text::parse(source)?;
    let filter = check::filter(schema, &lambda.body, params)?;
    // The parsed lambda is ours: its parameter name moves into the result.
    plan_checked(schema, filter, lambda.param, access, disjunct_limit)
}

/// Phases 3 and 4 of [`prepare`] on a checked filter. The DNF is a copy of the
/// filter (the filter itself is kept for SQL and the in-memory predicate); its
/// conjunctions move into the plan.
fn plan_checked(
    schema: &Schema,
    filter: Expr,
    param: String,
    access: Access,
    disjunct_limit: usize,
) -> Result<Prepared, Errors> {
    let plan = match access {
        Access::Scan => None,
        Access::Indexed => {
            let dnf = normalise::to_dnf(&filter, disjunct_limit)?;
            Some(plan::plan_dnf(schema, dnf, &param)?)
        }
    };
    Ok(Prepared { filter: Some(filter), plan, param })
}
