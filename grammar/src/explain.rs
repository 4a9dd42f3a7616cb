//! `Explain`: a readable plan, and a structured one for tests.
//!
//! For each disjunct it says which access serves it (the key, or which index), the
//! cache keys it reads (with `{param}` holes where the value is bound at run time),
//! and what is left to filter in memory; then the SQL a miss (or a scan) runs.

use std::fmt;

use crate::keys::KeySpace;
use crate::plan::{Access, DisjunctPlan, Lookup, LookupValues, Operand, Plan, column_value, conjunction_expr};
use crate::print;
use crate::schema::Schema;
use crate::value::Value;

/// At most this many node keys are listed per disjunct; the rest are counted.
const MAX_KEYS_SHOWN: usize = 6;

/// How a query will run, for people (`Display`) and for tests (the fields).
#[derive(Clone, Debug, PartialEq)]
pub struct Explain {
    /// The model's name.
    pub model: String,
    /// One entry per planned disjunct, in plan order.
    pub disjuncts: Vec<ExplainDisjunct>,
    /// The SQL run on a miss / by a scan, with placeholders.
    pub sql: String,
    /// Round trips to the cache when everything is cached (2, 1 for key lookups,
    /// 0 for an empty plan, and 0 for a scan).
    pub hot_round_trips: u32,
    /// No plan: the query runs on the database only (`scan!`, or no filter).
    pub scan: bool,
    /// How the rows are ordered and paged, when the query orders or pages them
    /// (set by the runtime, which knows the page: from an ordered index, or in
    /// memory).
    pub page: Option<String>,
}

/// How one disjunct is served.
#[derive(Clone, Debug, PartialEq)]
pub struct ExplainDisjunct {
    /// The disjunct in text form.
    pub text: String,
    /// "key id", "index category_id", "index (cart_id, status)", "index first_name (prefix 1)".
    pub access: String,
    /// The node key template with `{param}` holes: `item:category_id={cat}`. Several
    /// keys (an `in` list of literals) are separated by spaces, as a multi-get lists them.
    pub key_template: String,
    /// The residual filter in text form, if any.
    pub residual: Option<String>,
}

/// Explains `plan` (`None`: a scan, run on the database only) with node keys spelled
/// by `keys` and `sql`, the statement a miss or a scan runs; `param` is the lambda
/// parameter name used to print expressions. The crate docs show one printed.
pub fn explain(schema: &Schema, plan: Option<&Plan>, keys: &KeySpace, sql: String, param: &str) -> Explain {
    let disjuncts: Vec<ExplainDisjunct> =
        plan.map(|p| p.disjuncts.iter().map(|d| disjunct(schema, d, keys, param)).collect()).unwrap_or_default();
    let hot_round_trips = match plan {
        None => 0,
        Some(p) if p.disjuncts.is_empty() => 0,
        // Objects in one multi-get; no node to read first.
        Some(p) if p.disjuncts.iter().all(|d| matches!(d.access, Access::Key(_))) => 1,
        // Nodes in one multi-get, then objects in another.
        Some(_) => 2,
    };
    Explain { model: schema.model.clone(), disjuncts, sql, hot_round_trips, scan: plan.is_none(), page: None }
}

fn disjunct(schema: &Schema, d: &DisjunctPlan, keys: &KeySpace, param: &str) -> ExplainDisjunct {
    let text = print::expr(&conjunction_expr(&d.conjuncts, d.span), param);
    let residual = (!d.residual.is_empty()).then(|| print::expr(&conjunction_expr(&d.residual, d.span), param));
    let field = |col: usize| schema.columns.get(col).map_or("?", |c| c.field.as_str());
    let (access, key_template) = match &d.access {
        Access::Key(lookup) => {
            let keys: Vec<String> = alternatives(schema, lookup)
                .into_iter()
                .map(|v| match v {
                    Ok(v) => keys.object(&v),
                    Err(hole) => object_template(keys, &hole),
                })
                .collect();
            (format!("key {}", field(schema.key)), list_keys(keys))
        }
        Access::Index { index, lookups } => {
            let ix = &schema.indexes[*index];
            let names: Vec<&str> = ix.columns.iter().map(|&c| field(c)).collect();
            let mut access =
                if names.len() == 1 { format!("index {}", names[0]) } else { format!("index ({})", names.join(", ")) };
            if let Some(n) = ix.prefix {
                access.push_str(&format!(" (prefix {n})"));
            }
            if let Some(order) = ix.order {
                access.push_str(&format!(" (ordered by {})", field(order.column)));
            }
            let per_lookup: Vec<Vec<Result<Value, String>>> = lookups.iter().map(|l| alternatives(schema, l)).collect();
            let templates = product(&per_lookup).into_iter().map(|values| keys.node_template(schema, *index, &values));
            (access, list_keys(templates.collect()))
        }
    };
    ExplainDisjunct { text, access, key_template, residual }
}

/// The values a lookup can take: literals in the column's type (as `bind` gives
/// them), `Err(hole)` for values known only when bound.
fn alternatives(schema: &Schema, lookup: &Lookup) -> Vec<Result<Value, String>> {
    let column = schema.columns.get(lookup.column);
    let literal = |o: &Operand| -> Option<Result<Value, String>> {
        match o {
            // A literal no row can equal names no node; `bind` drops it too.
            Operand::Lit(v) => column.and_then(|c| column_value(c, v)).map(Ok),
            Operand::Param(name) => Some(Err(name.clone())),
        }
    };
    match &lookup.values {
        LookupValues::One(o) => literal(o).into_iter().collect(),
        LookupValues::Many(ops) => {
            let mut out: Vec<Result<Value, String>> = Vec::new();
            for alt in ops.iter().filter_map(literal) {
                if !out.contains(&alt) {
                    out.push(alt);
                }
            }
            out
        }
        LookupValues::List(name) => vec![Err(format!("{name}[*]"))],
        LookupValues::Prefix { operand: Operand::Lit(Value::Text(s)), chars } => {
            vec![Ok(Value::Text(crate::plan::prefix_of(s, *chars)))]
        }
        LookupValues::Prefix { operand: Operand::Lit(_), .. } => vec![],
        LookupValues::Prefix { operand: Operand::Param(name), .. } => vec![Err(name.clone())],
    }
}

/// The cartesian product of per-column alternatives, at most one more than is shown.
fn product(per_column: &[Vec<Result<Value, String>>]) -> Vec<Vec<Result<Value, String>>> {
    let mut out: Vec<Vec<Result<Value, String>>> = vec![vec![]];
    for alts in per_column {
        let mut next = Vec::new();
        'outer: for prefix in &out {
            for alt in alts {
                let mut row = prefix.clone();
                row.push(alt.clone());
                next.push(row);
                if next.len() > MAX_KEYS_SHOWN {
                    break 'outer;
                }
            }
        }
        out = next;
    }
    out
}

/// The key of the object whose key is bound at run time. `KeySpace` has no template
/// method for objects, so the key of the object `0` is taken and its last character
/// (the `0`) replaced by the hole.
fn object_template(keys: &KeySpace, hole: &str) -> String {
    let zero = keys.object(&Value::Int(0));
    match zero.strip_suffix('0') {
        Some(prefix) => format!("{prefix}{{{hole}}}"),
        // Only when the namespace alone is longer than a key may be.
        None => format!("{zero}…{{{hole}}}"),
    }
}

fn list_keys(keys: Vec<String>) -> String {
    if keys.is_empty() {
        return "(no node: no row can match)".to_owned();
    }
    if keys.len() > MAX_KEYS_SHOWN {
        let shown = keys[..MAX_KEYS_SHOWN].join(" ");
        return format!("{shown} …");
    }
    keys.join(" ")
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

impl fmt::Display for Explain {
    /// ```text
    /// plan for Item: 2 disjuncts, 2 round trips on a hot cache
    ///   [1] c.category_id == cat and c.price > 10.0
    ///       index category_id  →  get memdex:item:0:category_id={cat}
    ///       residual: c.price > 10.0
    ///   …
    /// sql (on a miss): SELECT …
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.scan {
            writeln!(f, "plan for {}: database scan, the cache is not used", self.model)?;
            return write!(f, "sql: {}", self.sql);
        }
        if self.disjuncts.is_empty() {
            writeln!(f, "plan for {}: the filter can never hold; no rows, 0 round trips", self.model)?;
            return write!(f, "sql: {}", self.sql);
        }
        writeln!(
            f,
            "plan for {}: {}, {} on a hot cache",
            self.model,
            plural(self.disjuncts.len(), "disjunct", "disjuncts"),
            plural(self.hot_round_trips as usize, "round trip", "round trips")
        )?;
        for (i, d) in self.disjuncts.iter().enumerate() {
            let label = format!("[{}] ", i + 1);
            let indent = " ".repeat(label.len());
            writeln!(f, "  {label}{}", d.text)?;
            writeln!(f, "  {indent}{}  →  get {}", d.access, d.key_template)?;
            if let Some(r) = &d.residual {
                writeln!(f, "  {indent}residual: {r}")?;
            }
        }
        if let Some(page) = &self.page {
            writeln!(f, "page: {page}")?;
        }
        write!(f, "sql (on a miss): {}", self.sql)
    }
}
