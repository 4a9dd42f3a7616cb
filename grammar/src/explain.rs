//! `Explain`: a readable plan, and a structured one for tests.
//!
//! OWNER: helper "grammar-plan".

use std::fmt;

use crate::plan::Plan;
use crate::schema::Schema;

#[derive(Clone, Debug, PartialEq)]
pub struct Explain {
    pub model: String,
    pub disjuncts: Vec<ExplainDisjunct>,
    /// The SQL run on a miss / by a scan, with placeholders.
    pub sql: String,
    /// Round trips to the cache when everything is cached (2, 1 for key lookups,
    /// 0 for an empty plan, and 0 for a scan).
    pub hot_round_trips: u32,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ExplainDisjunct {
    /// The disjunct in text form.
    pub text: String,
    /// "key id", "index category_id", "index (cart_id, status)", "index first_name (prefix 1)".
    pub access: String,
    /// The node key template with `{param}` holes: `item:category_id={cat}`.
    pub key_template: String,
    /// The residual filter in text form, if any.
    pub residual: Option<String>,
}

/// `param` is the lambda parameter name used to print expressions.
pub fn explain(schema: &Schema, plan: Option<&Plan>, sql: String, param: &str) -> Explain {
    let _ = (schema, plan, sql, param);
    unimplemented!("grammar-plan")
}

impl fmt::Display for Explain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let _ = f;
        unimplemented!("grammar-plan")
    }
}
