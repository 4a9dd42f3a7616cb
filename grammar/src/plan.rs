//! Index planning: for each disjunct, the equality criteria that name index nodes,
//! and the residual filter.
//!
//! The rules are DESIGN.md's "Index planning": a disjunct is served by the key or
//! by a declared index whose columns its equality criteria all cover (a prefix
//! index by a long enough `startswith` literal); the most selective access wins;
//! everything else in the disjunct is its residual, checked in memory.

use crate::error::{Error, ErrorKind, Errors};
use crate::eval::values_equal;
use crate::ir::{CmpOp, Expr, ExprKind, Haystack, StrOp};
use crate::normalise::Conjunction;
use crate::params::Params;
use crate::schema::{Column, IndexDef, Schema};
use crate::span::Span;
use crate::value::{Type, Value};

/// A literal or a bound parameter: what an equality criterion compares against.
#[derive(Clone, Debug, PartialEq)]
pub enum Operand {
    /// A literal written in the query.
    Lit(Value),
    /// A parameter, by name, bound when the query runs.
    Param(String),
}

/// The values one index column is pinned to, and so which nodes it names.
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
    Prefix {
        /// The `starts_with` pattern.
        operand: Operand,
        /// The index's prefix length in characters.
        chars: u32,
    },
}

/// One column of an index and the values the disjunct pins it to.
#[derive(Clone, Debug, PartialEq)]
pub struct Lookup {
    /// The column number in the schema.
    pub column: usize,
    /// What it is pinned to.
    pub values: LookupValues,
}

/// How one disjunct reaches its rows.
#[derive(Clone, Debug, PartialEq)]
pub enum Access {
    /// The key itself is pinned: objects are fetched directly, no node.
    Key(Lookup),
    /// Nodes of `schema.indexes[index]`; `lookups` follow the index's column order.
    Index {
        /// The index's position in `Schema::indexes`.
        index: usize,
        /// One lookup per index column, in the index's column order.
        lookups: Vec<Lookup>,
    },
}

/// The plan of one disjunct (one alternative of the DNF).
#[derive(Clone, Debug, PartialEq)]
pub struct DisjunctPlan {
    /// The disjunct's syntax, for messages.
    pub span: Span,
    /// The whole disjunct (all its conjuncts).
    pub conjuncts: Conjunction,
    /// The key or index that serves it.
    pub access: Access,
    /// The conjuncts not answered by the nodes; filters objects in memory.
    pub residual: Vec<Expr>,
}

/// The plan of a filter. No disjuncts: the filter is contradictory, the answer is empty.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// One plan per disjunct that can hold, in DNF order.
    pub disjuncts: Vec<DisjunctPlan>,
}

/// The disjuncts of a DNF, planned against the schema's key and indexes. Each
/// disjunct picks the most selective covering access (key, then composite indexes
/// by width, then single, then prefix). Disjuncts that are contradictory on literals
/// (`x == 1 and x == 2`, `x == 1 and x != 1`) are dropped. Every disjunct without a
/// covering access yields `ErrorKind::Unindexable` at its span, with
/// [`unindexable_message`]'s wording; all of them are reported.
///
/// Disjuncts are printed in messages with the lambda parameter `c`; use
/// [`plan_with_param`] to print them with the parameter the user wrote.
///
/// # Errors
///
/// One `ErrorKind::Unindexable` per disjunct no index serves.
///
/// ```
/// use memdex_grammar::plan::{self, Access};
/// use memdex_grammar::{ParamType, Schema, Type, check, normalise, text};
///
/// let schema = Schema::new("Item", "item")
///     .column("id", Type::Int, false)
///     .column("category_id", Type::Int, false)
///     .column("price", Type::Float, false)
///     .key("id")
///     .index(&["category_id"], None);
/// let lambda = text::parse("lambda c: c.category_id == 5 and c.price > 10.0 or c.id == 7")?;
/// let filter = check::filter(&schema, &lambda.body, &|_: &str| ParamType::Missing)?;
/// let dnf = normalise::to_dnf(&filter, normalise::DEFAULT_DISJUNCT_LIMIT)?;
/// let plan = plan::plan(&schema, &dnf)?;
/// // The first disjunct reads the node `category_id=5` and filters on the price…
/// assert!(matches!(plan.disjuncts[0].access, Access::Index { index: 0, .. }));
/// assert_eq!(plan.disjuncts[0].residual.len(), 1);
/// // …the second fetches object 7 by its key.
/// assert!(matches!(plan.disjuncts[1].access, Access::Key(_)));
///
/// // No index serves `price > 10.0` alone.
/// let lambda = text::parse("lambda c: c.price > 10.0")?;
/// let filter = check::filter(&schema, &lambda.body, &|_: &str| ParamType::Missing)?;
/// let dnf = normalise::to_dnf(&filter, normalise::DEFAULT_DISJUNCT_LIMIT)?;
/// let errors = plan::plan(&schema, &dnf).unwrap_err();
/// assert!(errors.to_string().starts_with("memdex: no index of Item serves `c.price > 10.0`"));
/// # Ok::<(), memdex_grammar::Errors>(())
/// ```
pub fn plan(schema: &Schema, dnf: &[Conjunction]) -> Result<Plan, Errors> {
    plan_with_param(schema, dnf, "c")
}

/// [`plan`], printing disjuncts in error messages as `param.field …`.
///
/// # Errors
///
/// As [`plan`]'s.
pub fn plan_with_param(schema: &Schema, dnf: &[Conjunction], param: &str) -> Result<Plan, Errors> {
    plan_dnf(schema, dnf.to_vec(), param)
}

/// [`plan_with_param`] taking the DNF by value: each planned disjunct keeps its
/// conjunction, so the conjunctions move into the plan instead of being copied.
///
/// # Errors
///
/// As [`plan`]'s.
pub fn plan_dnf(schema: &Schema, dnf: Vec<Conjunction>, param: &str) -> Result<Plan, Errors> {
    let mut errors = Errors::default();
    let mut disjuncts = Vec::with_capacity(dnf.len());
    for conjunction in dnf {
        if contradictory(&conjunction) {
            continue;
        }
        let span = conjunction_span(&conjunction);
        match choose_access(schema, &conjunction) {
            Some((access, answered)) => {
                let residual = conjunction
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| !answered.contains(i))
                    .map(|(_, e)| e.clone())
                    .collect();
                disjuncts.push(DisjunctPlan { span, conjuncts: conjunction, access, residual });
            }
            None => {
                let text = crate::print::expr(&conjunction_expr(&conjunction, span), param);
                let (before, after) = unindexable_message(&schema.model, &text, &suggestion(schema, &conjunction));
                let message = format!("{before}{}{after}", schema.describe_indexes());
                errors.push(Error::new(ErrorKind::Unindexable { message }, span));
            }
        }
    }
    errors.into_result(Plan { disjuncts })
}

/// The join of the conjuncts' spans (`Span::DUMMY` for the always-true conjunction,
/// which has nothing to point at).
fn conjunction_span(conjunction: &[Expr]) -> Span {
    conjunction.iter().map(|e| e.span).reduce(Span::join).unwrap_or(Span::DUMMY)
}

/// A conjunction as one expression, for printing.
pub fn conjunction_expr(conjunction: &[Expr], span: Span) -> Expr {
    match conjunction {
        [one] => one.clone(),
        [] => Expr::new(ExprKind::Lit(Value::Bool(true)), span),
        many => Expr::new(ExprKind::And(many.to_vec()), span),
    }
}

/// One way to serve a disjunct, with what decides between ways.
struct AccessChoice {
    access: Access,
    /// The conjuncts the nodes answer exactly (they leave the residual).
    answered: Vec<usize>,
    /// Higher is better: key 3, full index 2, prefix index 1.
    tier: u8,
    /// Columns pinned.
    width: usize,
    /// Nodes per disjunct when known (literal values), else a large guess.
    fanout: usize,
    /// Declaration order breaks ties, so plans are stable.
    order: usize,
}

/// The best access for a conjunction, and the conjuncts it answers.
fn choose_access(schema: &Schema, conjunction: &[Expr]) -> Option<(Access, Vec<usize>)> {
    let found = criteria(conjunction);
    // Per column, the best equality criterion: fewest values first (`==` is one).
    let equality = |column: usize| -> Option<&Criterion<'_>> {
        let field = schema.columns.get(column)?.field.as_str();
        found
            .iter()
            .filter(|c| c.field == field && !matches!(c.kind, CriterionKind::Prefix(_)))
            .min_by_key(|c| criterion_fanout(c))
    };
    let mut options: Vec<AccessChoice> = Vec::new();
    if let Some(c) = equality(schema.key) {
        options.push(AccessChoice {
            access: Access::Key(Lookup { column: schema.key, values: lookup_values(c) }),
            answered: vec![c.conjunct],
            tier: 3,
            width: 1,
            fanout: criterion_fanout(c),
            order: 0,
        });
    }
    for (index, ix) in schema.indexes.iter().enumerate() {
        match ix.prefix {
            None => {
                let pinned: Option<Vec<&Criterion<'_>>> = ix.columns.iter().map(|&col| equality(col)).collect();
                let Some(pinned) = pinned else { continue };
                options.push(AccessChoice {
                    access: Access::Index {
                        index,
                        lookups: ix
                            .columns
                            .iter()
                            .zip(&pinned)
                            .map(|(&column, c)| Lookup { column, values: lookup_values(c) })
                            .collect(),
                    },
                    answered: pinned.iter().map(|c| c.conjunct).collect(),
                    tier: 2,
                    width: ix.columns.len(),
                    fanout: pinned.iter().map(|c| criterion_fanout(c)).fold(1, usize::saturating_mul),
                    order: index,
                });
            }
            Some(chars) => {
                let [column] = ix.columns[..] else { continue };
                let Some(field) = schema.columns.get(column).map(|c| c.field.as_str()) else { continue };
                let usable = found.iter().find(|c| {
                    c.field == field
                        && matches!(&c.kind, CriterionKind::Prefix(o) if literal_chars(o).is_none_or(|n| n >= chars))
                });
                let Some(Criterion { kind: CriterionKind::Prefix(operand), .. }) = usable else { continue };
                options.push(AccessChoice {
                    access: Access::Index {
                        index,
                        lookups: vec![Lookup {
                            column,
                            values: LookupValues::Prefix { operand: operand.clone(), chars },
                        }],
                    },
                    // The node holds every value with the same first characters: the
                    // whole `starts_with` still filters.
                    answered: vec![],
                    tier: 1,
                    // A longer prefix is the more selective one.
                    width: chars as usize,
                    fanout: 1,
                    order: index,
                });
            }
        }
    }
    let best = options.into_iter().min_by(|a, b| {
        b.tier.cmp(&a.tier).then(b.width.cmp(&a.width)).then(a.fanout.cmp(&b.fanout)).then(a.order.cmp(&b.order))
    })?;
    Some((best.access, best.answered))
}

/// What a parameter list's length is guessed as when ranking accesses.
const UNKNOWN_LIST_LEN: usize = 16;

fn criterion_fanout(c: &Criterion<'_>) -> usize {
    match &c.kind {
        CriterionKind::Eq(_) | CriterionKind::Prefix(_) => 1,
        CriterionKind::In(ops) => ops.len(),
        CriterionKind::InList(_) => UNKNOWN_LIST_LEN,
    }
}

fn lookup_values(c: &Criterion<'_>) -> LookupValues {
    match &c.kind {
        CriterionKind::Eq(o) => LookupValues::One(o.clone()),
        CriterionKind::In(ops) => LookupValues::Many(ops.clone()),
        CriterionKind::InList(name) => LookupValues::List(name.clone()),
        // Not reached: prefix criteria only serve prefix indexes, built directly.
        CriterionKind::Prefix(o) => LookupValues::Prefix { operand: o.clone(), chars: 0 },
    }
}

/// What to add so that the disjunct becomes indexable, worded to follow "; " in
/// [`unindexable_message`].
/// The suggestion for an alternative with no equality criterion at all, in the words
/// both forms use (the macro calls this too, so the messages cannot drift apart).
pub fn no_criteria_suggestion(conjunction: &[Expr]) -> String {
    let mut fields: Vec<&str> = Vec::new();
    for e in conjunction {
        for f in e.fields() {
            if !fields.contains(&f) {
                fields.push(f);
            }
        }
    }
    if fields.is_empty() {
        "this alternative tests no field at all; add an `==` or `in` test on an indexed field".to_owned()
    } else {
        let names: Vec<String> = fields.iter().map(|f| format!("`{f}`")).collect();
        format!(
            "add an `==` or `in` test on an indexed field (this alternative only tests {} in other ways)",
            names.join(", ")
        )
    }
}

fn suggestion(schema: &Schema, conjunction: &[Expr]) -> String {
    let found = criteria(conjunction);
    let known = |f: &str| schema.column_by_field(f).is_some();
    // A literal prefix shorter than an existing prefix index.
    for c in &found {
        let CriterionKind::Prefix(o) = &c.kind else { continue };
        let Some(n) = literal_chars(o) else { continue };
        let Some(col) = schema.column_index(c.field) else { continue };
        if let Some(chars) =
            schema.indexes.iter().filter(|ix| ix.columns == [col]).filter_map(|ix| ix.prefix).find(|&p| p > n)
        {
            return format!(
                "make the `starts_with` pattern on `{}` at least {chars} characters long (its index has prefix = {chars}; this one has {n})",
                c.field
            );
        }
    }
    let mut eq_fields: Vec<&str> = Vec::new();
    for c in &found {
        if !matches!(c.kind, CriterionKind::Prefix(_)) && known(c.field) && !eq_fields.contains(&c.field) {
            eq_fields.push(c.field);
        }
    }
    match eq_fields[..] {
        [one] => return format!("add #[memdex(index)] on `{one}`"),
        [_, _, ..] => return format!("add #[memdex(index({}))] on {}", eq_fields.join(", "), schema.model),
        [] => {}
    }
    let prefixed = found.iter().find(|c| {
        known(c.field) && matches!(&c.kind, CriterionKind::Prefix(o) if literal_chars(o).is_none_or(|n| n > 0))
    });
    if let Some(c) = prefixed {
        return format!("add #[memdex(index(prefix = 1))] on `{}`", c.field);
    }
    no_criteria_suggestion(conjunction)
}
/// What can serve as an equality criterion in a conjunction, found without a schema
/// (the macro uses it at compile time, the planner at run time: one rule for both).
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    /// The field the criterion pins.
    pub field: String,
    /// How it pins it.
    pub kind: CandidateKind,
}

/// The kind of an equality criterion.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum CandidateKind {
    /// `field == operand` (either side), `field is None`.
    Eq,
    /// `field in (…)`, `field in ids`.
    In,
    /// `field.starts_with(operand)`; `literal_chars` is the pattern's length in chars
    /// when it is a literal (a prefix index of n chars needs at least n).
    Prefix {
        /// The pattern's length in chars when it is a literal; `None` for a parameter.
        literal_chars: Option<u32>,
    },
}

/// The schema-free criteria of a conjunction, in conjunct order.
pub fn candidates(conjunction: &[Expr]) -> Vec<Candidate> {
    criteria(conjunction)
        .into_iter()
        .map(|c| {
            let kind = match &c.kind {
                CriterionKind::Eq(_) => CandidateKind::Eq,
                CriterionKind::In(_) | CriterionKind::InList(_) => CandidateKind::In,
                CriterionKind::Prefix(operand) => CandidateKind::Prefix { literal_chars: literal_chars(operand) },
            };
            Candidate { field: c.field.to_owned(), kind }
        })
        .collect()
}

/// The length in chars of a literal `starts_with` pattern; `None` for a parameter
/// (checked when it is bound).
fn literal_chars(operand: &Operand) -> Option<u32> {
    match operand {
        Operand::Lit(v) => Some(v.as_str().map_or(0, |s| u32::try_from(s.chars().count()).unwrap_or(u32::MAX))),
        Operand::Param(_) => None,
    }
}

/// One conjunct that can pin a field, with what it pins it to.
#[derive(Clone, Debug, PartialEq)]
struct Criterion<'a> {
    /// The conjunct's position in its conjunction.
    conjunct: usize,
    field: &'a str,
    kind: CriterionKind,
}

#[derive(Clone, Debug, PartialEq)]
enum CriterionKind {
    Eq(Operand),
    In(Vec<Operand>),
    InList(String),
    Prefix(Operand),
}

/// Finds the criteria: `field == operand` (either side), `field is None`,
/// `field in (operands…)`, `field in param`, `field.starts_with(operand)`. Negated
/// conjuncts never are criteria: `not (x in (1, 2))` names no node.
fn criteria(conjunction: &[Expr]) -> Vec<Criterion<'_>> {
    let mut out = Vec::new();
    for (i, e) in conjunction.iter().enumerate() {
        let found = match &e.kind {
            ExprKind::Cmp { op: CmpOp::Eq, lhs, rhs } => match (field_name(lhs), field_name(rhs)) {
                (Some(f), None) => operand(rhs).map(|o| (f, CriterionKind::Eq(o))),
                (None, Some(f)) => operand(lhs).map(|o| (f, CriterionKind::Eq(o))),
                _ => None,
            },
            ExprKind::IsNull { expr, negated: false } => {
                field_name(expr).map(|f| (f, CriterionKind::Eq(Operand::Lit(Value::Null))))
            }
            ExprKind::In { needle, haystack } => field_name(needle).and_then(|f| match haystack {
                Haystack::Items(items) => {
                    let ops: Option<Vec<Operand>> = items.iter().map(operand).collect();
                    ops.map(|ops| (f, CriterionKind::In(ops)))
                }
                Haystack::Param(name) => Some((f, CriterionKind::InList(name.clone()))),
            }),
            ExprKind::StrTest { op: StrOp::StartsWith, subject, pattern } => {
                field_name(subject).and_then(|f| operand(pattern).map(|o| (f, CriterionKind::Prefix(o))))
            }
            _ => None,
        };
        if let Some((field, kind)) = found {
            out.push(Criterion { conjunct: i, field, kind });
        }
    }
    out
}

fn field_name(e: &Expr) -> Option<&str> {
    match &e.kind {
        ExprKind::Field(f) => Some(f),
        _ => None,
    }
}

/// A literal or parameter; a negated number literal (`-1`, however the front end
/// spelled it) is folded into a literal. Anything involving a field is not an operand.
fn operand(e: &Expr) -> Option<Operand> {
    match &e.kind {
        ExprKind::Param(name) => Some(Operand::Param(name.clone())),
        _ => literal(e).map(Operand::Lit),
    }
}

/// The value of an operand that is a literal (see [`operand`]).
fn literal(e: &Expr) -> Option<Value> {
    match &e.kind {
        ExprKind::Lit(Value::List(_)) => None,
        ExprKind::Lit(v) => Some(v.clone()),
        ExprKind::Neg(inner) => match &inner.kind {
            ExprKind::Lit(Value::Int(i)) => i.checked_neg().map(Value::Int),
            ExprKind::Lit(Value::Float(x)) => Some(Value::Float(-x)),
            _ => None,
        },
        _ => None,
    }
}

/// Whether a conjunction can never hold, judged from its literal criteria alone (no
/// schema, so the macro can use the same rule): two different `==` literals on one
/// field (`x == 1 and x == 2`, `x is None and x == 5`), `==` and `!=` the same literal,
/// `==` a literal outside an `in` list, `in` lists with no common value, an `==` to
/// NaN. Equality is Rust's, null-aware, with integers and floats compared numerically.
pub fn contradictory(conjunction: &[Expr]) -> bool {
    let mut domains: Vec<Domain<'_>> = Vec::new();
    fn domain<'a, 'b>(domains: &'b mut Vec<Domain<'a>>, field: &'a str) -> &'b mut Domain<'a> {
        let i = match domains.iter().position(|d| d.field == field) {
            Some(i) => i,
            None => {
                domains.push(Domain { field, allowed: None, excluded: Vec::new() });
                domains.len() - 1
            }
        };
        &mut domains[i]
    }
    for e in conjunction {
        match &e.kind {
            ExprKind::Cmp { op: op @ (CmpOp::Eq | CmpOp::Ne), lhs, rhs } => {
                let found = match (field_name(lhs), field_name(rhs)) {
                    (Some(f), None) => literal(rhs).map(|v| (f, v)),
                    (None, Some(f)) => literal(lhs).map(|v| (f, v)),
                    _ => None,
                };
                let Some((field, value)) = found else { continue };
                let d = domain(&mut domains, field);
                if *op == CmpOp::Eq { d.restrict(vec![value]) } else { d.excluded.push(value) }
            }
            ExprKind::IsNull { expr, negated } => {
                let Some(field) = field_name(expr) else { continue };
                let d = domain(&mut domains, field);
                if *negated { d.excluded.push(Value::Null) } else { d.restrict(vec![Value::Null]) }
            }
            ExprKind::In { needle, haystack: Haystack::Items(items) } => {
                let Some(field) = field_name(needle) else { continue };
                let values: Option<Vec<Value>> = items.iter().map(literal).collect();
                // A parameter among the items could be anything.
                if let Some(values) = values {
                    domain(&mut domains, field).restrict(values);
                }
            }
            _ => {}
        }
    }
    domains.iter().any(Domain::is_empty)
}

/// What the literal criteria of a conjunction leave a field free to be.
struct Domain<'a> {
    field: &'a str,
    /// The values `==` and `in` still allow (`None`: no such criterion yet).
    allowed: Option<Vec<Value>>,
    /// The values `!=` and `is not None` exclude.
    excluded: Vec<Value>,
}

impl Domain<'_> {
    fn restrict(&mut self, values: Vec<Value>) {
        // A value that does not equal itself (NaN) can never be matched.
        let values: Vec<Value> = values.into_iter().filter(|v| values_equal(v, v)).collect();
        self.allowed = Some(match self.allowed.take() {
            None => values,
            Some(old) => old.into_iter().filter(|v| values.iter().any(|w| values_equal(v, w))).collect(),
        });
    }

    fn is_empty(&self) -> bool {
        self.allowed.as_ref().is_some_and(|vs| vs.iter().all(|v| self.excluded.iter().any(|x| values_equal(v, x))))
    }
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
    /// The index's position in `Schema::indexes`; `None` for the key itself.
    pub index: Option<usize>,
    /// One value per index column, typed to its column.
    pub values: Vec<Value>,
}

/// `values` without repeats (by `==`), in first-seen order. Sorting first keeps
/// this O(n log n): an `in` list may hold tens of thousands of values, where a
/// search of the kept values for each one would be quadratic.
fn distinct_in_order(values: Vec<Value>) -> Vec<Value> {
    let mut by_value: Vec<usize> = (0..values.len()).collect();
    // Stable, so equal values keep their first-seen order and the first one wins.
    by_value.sort_by(|&a, &b| values[a].order(&values[b]));
    let mut keep = vec![false; values.len()];
    let mut last: Option<usize> = None;
    for i in by_value {
        // Values equal by `==` are neighbours in `order` (the same variant once
        // typed to the column; `-0.0` next to `0.0`), so one comparison suffices.
        if last.is_none_or(|l| values[l] != values[i]) {
            keep[i] = true;
            last = Some(i);
        }
    }
    values.into_iter().zip(keep).filter_map(|(v, k)| k.then_some(v)).collect()
}

/// Why a disjunct could not be bound to nodes at run time; the runtime answers from
/// the database instead.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum BindError {
    /// A parameter the lookup needs has no value.
    #[error("parameter `{0}` is not bound")]
    Unbound(String),
    /// A `starts_with` parameter is shorter than the prefix index, so no node holds
    /// all its matches.
    #[error("starts_with pattern shorter than the {chars}-character prefix index")]
    PrefixTooShort {
        /// The index's prefix length.
        chars: u32,
    },
    /// The product of the lookups' values names more nodes than allowed.
    #[error("the query names {count} index nodes, more than the limit of {limit}")]
    TooManyNodes {
        /// How many nodes the values name.
        count: usize,
        /// The limit passed to [`bind`].
        limit: usize,
    },
    /// `c.x in ids` where `ids` is bound to something other than a list.
    #[error("parameter `{0}` must be a list")]
    NotAList(String),
}

/// Binds a disjunct's access to parameter values: the cartesian product of its
/// lookups' values, at most `limit` nodes. Duplicate values give one node.
///
/// Values take their column's type, so that a node has one key however its value
/// was written: a float without fractional part on an integer column becomes that
/// integer (`5.0` → `5`), an integer on a float column becomes a float, `-0.0`
/// becomes `0.0`. A value no row of the column can equal (a fractional float on an
/// integer column, NaN, `None` on a non-nullable column, a value of another type)
/// names no node: that combination contributes nothing, exactly as Rust's `==` says.
/// A prefix lookup names the node of the pattern's first `chars` characters.
///
/// # Errors
///
/// [`BindError`]: a parameter unbound or not a list, a prefix pattern too short, or
/// more than `limit` nodes. The runtime then answers from the database.
///
/// ```
/// use memdex_grammar::keys::KeySpace;
/// use memdex_grammar::params::types_of;
/// use memdex_grammar::{Access, Schema, Type, Value, prepare_text};
///
/// let schema = Schema::new("Item", "item")
///     .column("id", Type::Int, false)
///     .column("category_id", Type::Int, false)
///     .key("id")
///     .index(&["category_id"], None);
/// let params = [("cats", Value::List(vec![Value::Int(5), Value::Int(6), Value::Int(5)]))];
/// let text = "lambda c: c.category_id in cats";
/// let prepared = prepare_text(&schema, text, &types_of(&params), Access::Indexed, 64)?;
/// let disjunct = &prepared.plan.expect("indexed").disjuncts[0];
///
/// let nodes = memdex_grammar::plan::bind(&schema, disjunct, &params, 100).expect("bound");
/// let keys = KeySpace::new("shop", &schema, 0);
/// let keys: Vec<String> = nodes.iter().map(|n| keys.node(&schema, n)).collect();
/// assert_eq!(keys.len(), 2, "5 is named twice but has one node");
/// assert!(keys[0].ends_with(":category_id=5"), "{}", keys[0]);
/// # Ok::<(), memdex_grammar::Errors>(())
/// ```
pub fn bind(schema: &Schema, d: &DisjunctPlan, params: &dyn Params, limit: usize) -> Result<Vec<NodeRef>, BindError> {
    let (index, lookups): (Option<usize>, &[Lookup]) = match &d.access {
        Access::Key(lookup) => (None, std::slice::from_ref(lookup)),
        Access::Index { index, lookups } => (Some(*index), lookups),
    };
    let mut per_column: Vec<Vec<Value>> = Vec::with_capacity(lookups.len());
    for lookup in lookups {
        let column = schema.columns.get(lookup.column);
        let raw: Vec<Value> = match &lookup.values {
            LookupValues::One(o) => vec![resolve(o, params)?],
            LookupValues::Many(ops) => ops.iter().map(|o| resolve(o, params)).collect::<Result<_, _>>()?,
            LookupValues::List(name) => match params.get(name) {
                Some(Value::List(items)) => items.clone(),
                Some(_) => return Err(BindError::NotAList(name.clone())),
                None => return Err(BindError::Unbound(name.clone())),
            },
            LookupValues::Prefix { operand, chars } => match resolve(operand, params)? {
                Value::Text(s) => {
                    if s.chars().count() < *chars as usize {
                        return Err(BindError::PrefixTooShort { chars: *chars });
                    }
                    per_column.push(vec![Value::Text(prefix_of(&s, *chars))]);
                    continue;
                }
                // `starts_with` on a non-string is false for every row.
                _ => vec![],
            },
        };
        let typed = distinct_in_order(raw.iter().filter_map(|v| column.and_then(|c| column_value(c, v))).collect());
        per_column.push(typed);
    }
    let count = per_column.iter().map(Vec::len).fold(1usize, usize::saturating_mul);
    if count > limit {
        return Err(BindError::TooManyNodes { count, limit });
    }
    // The cartesian product, first lookup varying slowest. Each column's values are
    // distinct, so the combinations are too.
    let mut nodes: Vec<Vec<Value>> = vec![Vec::with_capacity(per_column.len())];
    for values in &per_column {
        let mut next = Vec::with_capacity(nodes.len() * values.len());
        for node in &nodes {
            for v in values {
                let mut n = node.clone();
                n.push(v.clone());
                next.push(n);
            }
        }
        nodes = next;
    }
    Ok(nodes.into_iter().map(|values| NodeRef { index, values }).collect())
}

fn resolve(o: &Operand, params: &dyn Params) -> Result<Value, BindError> {
    match o {
        Operand::Lit(v) => Ok(v.clone()),
        Operand::Param(name) => params.get(name).cloned().ok_or_else(|| BindError::Unbound(name.clone())),
    }
}

/// The first `chars` characters (Unicode scalar values, not bytes) of `s`.
pub fn prefix_of(s: &str, chars: u32) -> String {
    s.chars().take(chars as usize).collect()
}

/// `v` in the column's type, as node keys spell it; `None` when no value of the
/// column can equal `v` (see [`bind`]).
pub fn column_value(column: &Column, v: &Value) -> Option<Value> {
    // 2^63: the first float beyond i64's range.
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    match (column.ty, v) {
        (_, Value::Null) => column.nullable.then_some(Value::Null),
        (Type::Int, Value::Int(i)) => Some(Value::Int(*i)),
        (Type::Int, Value::Float(x)) if x.fract() == 0.0 && *x >= -TWO_63 && *x < TWO_63 => {
            // Integral and in range: the cast is exact.
            Some(Value::Int(*x as i64))
        }
        (Type::Float, Value::Float(x)) if x.is_nan() => None,
        (Type::Float, Value::Float(x)) => Some(Value::Float(if *x == 0.0 { 0.0 } else { *x })),
        // Text-form integers on float columns; Rust itself would not compile this.
        (Type::Float, Value::Int(i)) => Some(Value::Float(*i as f64)),
        (Type::Text, Value::Text(s)) => Some(Value::Text(s.clone())),
        (Type::Bool, Value::Bool(b)) => Some(Value::Bool(*b)),
        (Type::Bytes, Value::Bytes(b)) => Some(Value::Bytes(b.clone())),
        (Type::Timestamp, Value::Timestamp(us)) => Some(Value::Timestamp(*us)),
        (Type::Uuid, Value::Uuid(u)) => Some(Value::Uuid(*u)),
        // A JSON column is never indexed (nor compared).
        _ => None,
    }
}

/// Does a row (given as its column values) belong in the node? Used to drop ids
/// lazily: equality per column (null-aware), first `n` chars for a prefix index.
pub fn node_matches(schema: &Schema, node: &NodeRef, column: &dyn Fn(usize) -> Value) -> bool {
    let Some(index) = node.index else {
        return match node.values.as_slice() {
            [key] => node_value_eq(&(column)(schema.key), key),
            _ => false,
        };
    };
    let Some(ix) = schema.indexes.get(index) else { return false };
    ix.columns.len() == node.values.len()
        && ix.columns.iter().zip(&node.values).all(|(&col, want)| {
            let have = (column)(col);
            match (ix.prefix, &have) {
                (Some(n), Value::Text(s)) => matches!(want, Value::Text(w) if *w == prefix_of(s, n)),
                (Some(_), _) => false,
                (None, _) => node_value_eq(&have, want),
            }
        })
}

/// Equality of a row's value with a node's value: Rust's `==` (null-aware, numeric,
/// `-0.0 == 0.0`), except that NaN belongs to the node [`node_of_row`] files it under,
/// so that a NaN row is not removed from its own node on every read.
fn node_value_eq(have: &Value, want: &Value) -> bool {
    match (have, want) {
        (Value::Float(a), Value::Float(b)) if a.is_nan() && b.is_nan() => true,
        _ => values_equal(have, want),
    }
}

/// The node of `schema.indexes[index]` that a row with these column values belongs
/// to (writes append the row's key there).
pub fn node_of_row(schema: &Schema, index: usize, column: &dyn Fn(usize) -> Value) -> NodeRef {
    let values = schema.indexes.get(index).map_or_else(Vec::new, |ix| node_values(ix, column));
    NodeRef { index: Some(index), values }
}

/// The values naming the node of index `ix` that a row with these column values
/// belongs to: the column values, a prefix index's text cut to its prefix. The
/// index need not be one of the schema's own (an index another version of the
/// model declares, read from the index registry; see `keys::RegisteredIndex`).
pub fn node_values(ix: &IndexDef, column: &dyn Fn(usize) -> Value) -> Vec<Value> {
    ix.columns
        .iter()
        .map(|&col| {
            let v = (column)(col);
            match (ix.prefix, v) {
                (Some(n), Value::Text(s)) => Value::Text(prefix_of(&s, n)),
                // One key for both zeros, as `escape_value` also ensures.
                (_, Value::Float(0.0)) => Value::Float(0.0),
                (_, v) => v,
            }
        })
        .collect()
}
