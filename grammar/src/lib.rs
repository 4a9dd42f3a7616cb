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
//!
//! # Example
//!
//! A lambda in text, planned against a small schema, as SQL and as an explanation:
//!
//! ```
//! use memdex_grammar::keys::KeySpace;
//! use memdex_grammar::params::types_of;
//! use memdex_grammar::sql::{self, SelectSpec};
//! use memdex_grammar::{Access, Dialect, Schema, Type, Value, explain, normalise, prepare_text};
//!
//! let schema = Schema::new("Item", "item")
//!     .column("id", Type::Int, false)
//!     .column("category_id", Type::Int, false)
//!     .column("price", Type::Float, false)
//!     .key("id")
//!     .index(&["category_id"], None);
//! let params = [("cat", Value::Int(5))];
//! let text = "lambda c: c.category_id == cat and c.price > 10.0";
//!
//! // Parse, check, normalise and plan: one disjunct, served by the category_id index.
//! let prepared =
//!     prepare_text(&schema, text, &types_of(&params), Access::Indexed, normalise::DEFAULT_DISJUNCT_LIMIT)
//!         .map_err(|errors| errors.render(text))?;
//!
//! // The SQL a cache miss runs; the value of `cat` is bound, never spliced.
//! let spec = SelectSpec { filter: prepared.filter.as_ref(), ..SelectSpec::default() };
//! let select = sql::select(Dialect::Postgres, &schema, spec, &params)?;
//! assert_eq!(
//!     select.text,
//!     r#"SELECT "id", "category_id", "price" FROM "item" WHERE "category_id" = $1 AND "price" > $2"#
//! );
//! assert_eq!(select.params, [Value::Int(5), Value::Float(10.0)]);
//!
//! // What a person reads: the access, the node keys, the residual filter, the SQL.
//! let keys = KeySpace::new("shop", &schema, 0);
//! let explained = explain::explain(&schema, prepared.plan.as_ref(), &keys, select.text, &prepared.param);
//! assert_eq!(explained.disjuncts[0].access, "index category_id");
//! assert_eq!(explained.disjuncts[0].residual.as_deref(), Some("c.price > 10.0"));
//! let expected = r#"plan for Item: 1 disjunct, 2 round trips on a hot cache
//!   [1] c.category_id == cat and c.price > 10.0
//!       index category_id  →  get shop:item:0:category_id={cat}
//!       residual: c.price > 10.0
//! sql (on a miss): SELECT "id", "category_id", "price" FROM "item" WHERE "category_id" = $1 AND "price" > $2"#;
//! assert_eq!(explained.to_string(), expected);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs)]

pub mod capture;
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
pub use schema::{Column, IndexDef, IndexOrder, Schema};
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

/// Checks, normalises and (for [`Access::Indexed`]) plans a filter lambda; `params`
/// gives each parameter's type ([`params::types_of`] reads them from bound values)
/// and `disjunct_limit` bounds the DNF ([`normalise::DEFAULT_DISJUNCT_LIMIT`]).
///
/// # Errors
///
/// All errors of the failing phase together: checking (unknown fields, types,
/// unbound parameters), normalisation (too many disjuncts) or planning (a disjunct
/// no index serves, for [`Access::Indexed`] only).
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

/// [`text::parse`] then [`prepare`]: the text form's whole preparation. The crate
/// docs show it end to end.
///
/// # Errors
///
/// The syntax errors of the text, else [`prepare`]'s. Render them for a person with
/// [`Errors::render`] and the source.
///
/// ```
/// use memdex_grammar::{Access, ErrorKind, ParamType, Schema, Type, prepare_text};
///
/// let schema = Schema::new("Item", "item").column("id", Type::Int, false).column("price", Type::Float, false);
/// let no_params = |_: &str| ParamType::Missing;
/// // Fine as a scan, but no index serves it.
/// assert!(prepare_text(&schema, "lambda c: c.price > 1.0", &no_params, Access::Scan, 64).is_ok());
/// let errors = prepare_text(&schema, "lambda c: c.price > 1.0", &no_params, Access::Indexed, 64).unwrap_err();
/// assert!(matches!(errors.0[0].kind, ErrorKind::Unindexable { .. }));
/// ```
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
