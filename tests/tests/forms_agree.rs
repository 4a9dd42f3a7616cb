//! The macro form and the text form of the same query give the same IR, plan, node
//! keys and SQL in every dialect: one planner serves both (ARCHITECTURE.md).
//!
//! Each case is written twice: as a closure for `select!(@ir …)` and as a Python
//! lambda in which the closure's captured values appear as `p0`, `p1`, … (the names
//! the macro gives them, in order), bound to the values the macro captured.
//!
//! The indexability rule is written twice too: `select!` checks it at compile time
//! with a const fn (`memdex::__private::indexable`, which cannot call the planner),
//! the text form at run time with the planner (`memdex_grammar::plan`). The last test
//! runs both over the corpus and over queries no index serves.

// Tests fail by panicking, with a message saying what went wrong.
#![allow(clippy::panic)]

use memdex::__private::LoweredQuery;
use memdex::grammar::keys::KeySpace;
use memdex::grammar::normalise::to_dnf;
use memdex::grammar::params::types_of;
use memdex::grammar::plan::bind;
use memdex::grammar::plan::{CandidateKind, candidates, contradictory, plan_dnf};
use memdex::grammar::sql::{self, SelectSpec};
use memdex::grammar::{Access, Dialect, ErrorKind, Expr, Prepared, Value, prepare, text};
use memdex::{Model, select};
use serde::{Deserialize, Serialize};

#[derive(Model, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[memdex(table = "item")]
#[memdex(index(cart_id, status))]
pub struct Item {
    #[memdex(key)]
    pub id: i64,
    #[memdex(index)]
    pub category_id: i64,
    #[memdex(index(prefix = 1))]
    pub first_name: String,
    pub price: f64,
    pub deleted_at: Option<i64>,
    pub cart_id: i64,
    pub status: String,
    pub flag: bool,
}

/// Everything a query turns into, in comparable form.
#[derive(Debug, PartialEq)]
struct Outcome {
    ir: memdex::grammar::Expr,
    checked: Option<memdex::grammar::Expr>,
    explain: String,
    keys: Vec<Vec<String>>,
    sql: Vec<(String, Vec<Value>)>,
}

fn outcome(lambda: &memdex::grammar::Lambda, params: &Vec<(String, Value)>) -> Outcome {
    let schema = Item::schema();
    let types = types_of(params);
    let prepared: Prepared =
        prepare(schema, lambda, &types, Access::Indexed, 64).unwrap_or_else(|e| panic!("prepare: {e}"));
    let plan = prepared.plan.as_ref().expect("indexed queries have a plan");
    let keyspace = KeySpace::new("memdex", schema, 0);
    let keys = plan
        .disjuncts
        .iter()
        .map(|d| {
            bind(schema, d, params, 1000)
                .map(|nodes| nodes.iter().map(|n| keyspace.node(schema, n)).collect())
                .unwrap_or_else(|e| vec![format!("bind error: {e}")])
        })
        .collect();
    let sql = [Dialect::Sqlite, Dialect::Postgres, Dialect::MySql]
        .into_iter()
        .map(|d| {
            let spec = SelectSpec { filter: prepared.filter.as_ref(), ..SelectSpec::default() };
            let q = sql::select(d, schema, spec, params).expect("sql");
            (q.text, q.params)
        })
        .collect();
    // The plan's printed form holds the access, node key templates and residuals;
    // the lambda's parameter name is normalised so that `|c|` and `lambda x:` agree.
    let explain = memdex::grammar::explain::explain(schema, Some(plan), &keyspace, String::new(), "c").to_string();
    Outcome {
        ir: lambda.body.without_spans(),
        checked: prepared.filter.as_ref().map(|f| f.without_spans()),
        explain,
        keys,
        sql,
    }
}

/// The macro's captured values under the names the text form gives them: `p0`, `p1`, …
fn named_params(lowered: &LoweredQuery) -> Vec<(String, Value)> {
    lowered.params.iter().enumerate().map(|(i, v)| (format!("p{i}"), v.clone())).collect()
}

fn check(text_form: &str, lowered: &LoweredQuery) {
    let macro_lambda = lowered.filter.as_ref().expect("a select has a filter");
    let params = named_params(lowered);
    let text_lambda = text::parse(text_form).unwrap_or_else(|e| panic!("{}", e.render(text_form)));
    let from_macro = outcome(macro_lambda, &params);
    let from_text = outcome(&text_lambda, &params);
    assert_eq!(from_macro, from_text, "the two forms disagree on {text_form}");
}

/// The corpus: each query as Python-lambda text and as `select!(@ir …)` lowered the
/// closure, with the values it captured.
// Some queries negate on purpose (`!(c.category_id != 5)`): the lowering of `!` is
// part of what is compared.
#[allow(clippy::nonminimal_bool)]
fn corpus() -> Vec<(&'static str, LoweredQuery)> {
    let cat = 5_i64;
    let other = 6_i64;
    let name = "mi".to_string();
    let ids = vec![1_i64, 2, 3];
    let cats = vec![5_i64, 6];
    let status = "open".to_string();
    let limit = 10.0_f64;
    let statuses = vec!["open".to_string(), "paid".to_string()];
    vec![
        ("lambda c: c.category_id == 5", select!(@ir Item, |c| c.category_id == 5)),
        ("lambda c: c.category_id == p0", select!(@ir Item, |c| c.category_id == cat)),
        ("lambda c: 5 == c.category_id", select!(@ir Item, |c| 5 == c.category_id)),
        ("lambda c: c.id == 7", select!(@ir Item, |c| c.id == 7)),
        ("lambda c: c.id == p0 or c.id == p1", select!(@ir Item, |c| c.id == cat || c.id == other)),
        (
            "lambda c: c.category_id == p0 and c.price > 10.0",
            select!(@ir Item, |c| c.category_id == cat && c.price > 10.0),
        ),
        (
            "lambda c: c.category_id == p0 and c.price > p1",
            select!(@ir Item, |c| c.category_id == cat && c.price > limit),
        ),
        (
            "lambda c: c.category_id == 5 and c.price <= 3.5",
            select!(@ir Item, |c| c.category_id == 5 && c.price <= 3.5),
        ),
        (
            "lambda c: c.category_id == 5 and c.price >= 3.5",
            select!(@ir Item, |c| c.category_id == 5 && c.price >= 3.5),
        ),
        ("lambda c: c.category_id == 5 and c.price < 3.5", select!(@ir Item, |c| c.category_id == 5 && c.price < 3.5)),
        (
            "lambda c: c.category_id == 5 and c.status != 'x'",
            select!(@ir Item, |c| c.category_id == 5 && c.status != "x"),
        ),
        (
            "lambda c: c.category_id == 5 or c.category_id == 6",
            select!(@ir Item, |c| c.category_id == 5 || c.category_id == 6),
        ),
        ("lambda c: c.category_id in (5, 6)", select!(@ir Item, |c| [5, 6].contains(&c.category_id))),
        ("lambda c: c.category_id in p0", select!(@ir Item, |c| cats.contains(&c.category_id))),
        ("lambda c: c.id in p0", select!(@ir Item, |c| ids.contains(&c.id))),
        ("lambda c: c.first_name.startswith('mi')", select!(@ir Item, |c| c.first_name.starts_with("mi"))),
        ("lambda c: c.first_name.startswith(p0)", select!(@ir Item, |c| c.first_name.starts_with(name.as_str()))),
        (
            "lambda c: c.first_name.startswith('m') and c.first_name.endswith('a')",
            select!(@ir Item, |c| c.first_name.starts_with("m") && c.first_name.ends_with("a")),
        ),
        (
            "lambda c: c.category_id == 5 and '_' in c.first_name",
            select!(@ir Item, |c| c.category_id == 5 && c.first_name.contains("_")),
        ),
        (
            "lambda c: c.category_id == 5 and not c.first_name.startswith('m')",
            select!(@ir Item, |c| c.category_id == 5 && !c.first_name.starts_with("m")),
        ),
        (
            "lambda c: c.cart_id == 3 and c.status == 'open'",
            select!(@ir Item, |c| c.cart_id == 3 && c.status == "open"),
        ),
        ("lambda c: c.cart_id == 3 and c.status == p0", select!(@ir Item, |c| c.cart_id == 3 && c.status == status)),
        (
            "lambda c: c.cart_id == 3 and c.status in p0",
            select!(@ir Item, |c| c.cart_id == 3 && statuses.contains(&c.status)),
        ),
        (
            "lambda c: c.cart_id == 3 and (c.status == 'open' or c.status == 'paid')",
            select!(@ir Item, |c| c.cart_id == 3 && (c.status == "open" || c.status == "paid")),
        ),
        (
            "lambda c: c.cart_id == 3 and c.status == 'open' and c.category_id == 5",
            select!(@ir Item, |c| c.cart_id == 3 && c.status == "open" && c.category_id == 5),
        ),
        (
            "lambda c: c.category_id == 5 and c.deleted_at is None",
            select!(@ir Item, |c| c.category_id == 5 && c.deleted_at.is_none()),
        ),
        (
            "lambda c: c.category_id == 5 and c.deleted_at is not None",
            select!(@ir Item, |c| c.category_id == 5 && c.deleted_at.is_some()),
        ),
        (
            "lambda c: c.category_id == 5 and c.deleted_at == 100",
            select!(@ir Item, |c| c.category_id == 5 && c.deleted_at == Some(100)),
        ),
        (
            "lambda c: c.category_id == 5 and c.deleted_at != 100",
            select!(@ir Item, |c| c.category_id == 5 && c.deleted_at != Some(100)),
        ),
        (
            "lambda c: c.category_id == 5 and ieq(c.status, 'OPEN')",
            select!(@ir Item, |c| c.category_id == 5 && c.status.eq_ignore_ascii_case("OPEN")),
        ),
        (
            "lambda c: c.category_id == 5 and c.status.lower() == 'open'",
            select!(@ir Item, |c| c.category_id == 5 && c.status.to_lowercase() == "open"),
        ),
        (
            "lambda c: c.category_id == 5 and len(c.first_name) > 3",
            select!(@ir Item, |c| c.category_id == 5 && c.first_name.len() > 3),
        ),
        (
            "lambda c: c.category_id == 5 and c.price * 2.0 + 1.0 > 10.0",
            select!(@ir Item, |c| c.category_id == 5 && c.price * 2.0 + 1.0 > 10.0),
        ),
        (
            "lambda c: c.category_id == 5 and c.cart_id % 2 == 0",
            select!(@ir Item, |c| c.category_id == 5 && c.cart_id % 2 == 0),
        ),
        (
            "lambda c: c.category_id == 5 and c.cart_id - 1 < 10 / 3",
            select!(@ir Item, |c| c.category_id == 5 && c.cart_id - 1 < 10 / 3),
        ),
        ("lambda c: c.category_id == 5 and c.flag", select!(@ir Item, |c| c.category_id == 5 && c.flag)),
        ("lambda c: c.category_id == 5 and not c.flag", select!(@ir Item, |c| c.category_id == 5 && !c.flag)),
        ("lambda c: not (c.category_id != 5)", select!(@ir Item, |c| !(c.category_id != 5))),
        (
            "lambda c: not (c.category_id != 5 or c.price > 1.0)",
            select!(@ir Item, |c| !(c.category_id != 5 || c.price > 1.0)),
        ),
        (
            "lambda c: (c.category_id == 5 or c.first_name.startswith('z')) and c.price > 1.0",
            select!(@ir Item, |c| (c.category_id == 5 || c.first_name.starts_with("z")) && c.price > 1.0),
        ),
        (
            "lambda c: c.category_id == 5 and c.category_id == 6",
            select!(@ir Item, |c| c.category_id == 5 && c.category_id == 6),
        ),
        (
            "lambda c: c.category_id == p0 or c.id in (1, 2) or c.first_name.startswith('q')",
            select!(@ir Item, |c| c.category_id == cat || [1, 2].contains(&c.id) || c.first_name.starts_with("q")),
        ),
        (
            "lambda c: c.category_id == 5 and c.price > -1.5",
            select!(@ir Item, |c| c.category_id == 5 && c.price > -1.5),
        ),
        (
            "lambda c: c.category_id == 5 and c.price > -(1.5) and c.cart_id < 2 * (3 + 4)",
            select!(@ir Item, |c| c.category_id == 5 && c.price > -(1.5) && c.cart_id < 2 * (3 + 4)),
        ),
        // A disjunct that can never hold needs no index: the planner drops it.
        (
            "lambda c: c.category_id == 5 or (c.price == 1.0 and c.price == 2.0)",
            select!(@ir Item, |c| c.category_id == 5 || (c.price == 1.0 && c.price == 2.0)),
        ),
        ("lambda c: c.price == 1.0 and c.price != 1.0", select!(@ir Item, |c| c.price == 1.0 && c.price != 1.0)),
    ]
}

#[test]
fn forty_queries_written_both_ways_agree() {
    let corpus = corpus();
    for (text_form, lowered) in &corpus {
        check(text_form, lowered);
    }
    assert!(corpus.len() >= 40, "{} cases", corpus.len());
}

/// Queries that some disjunct of which no index of `Item` serves, with their
/// parameters: every way a disjunct can miss (no criterion, a criterion the planner
/// does not take, a composite index half covered, a prefix pattern too short), alone
/// and next to an indexable disjunct.
fn unindexable() -> Vec<(&'static str, Vec<(String, Value)>)> {
    let no_params = Vec::new;
    vec![
        ("lambda c: c.price > 10.0", no_params()),
        ("lambda c: c.price > p0", vec![("p0".into(), Value::Float(1.0))]),
        ("lambda c: c.flag", no_params()),
        ("lambda c: c.deleted_at is None", no_params()),
        ("lambda c: c.category_id != 5", no_params()),
        ("lambda c: not (c.category_id == 5)", no_params()),
        ("lambda c: c.category_id > 5", no_params()),
        ("lambda c: c.category_id + 1 == 6", no_params()),
        ("lambda c: not (c.category_id in (5, 6))", no_params()),
        ("lambda c: c.category_id == 5 or c.price > 1.0", no_params()),
        ("lambda c: c.category_id == 5 or c.cart_id == 3", no_params()),
        ("lambda c: c.cart_id == 3", no_params()),
        ("lambda c: c.status == 'open'", no_params()),
        ("lambda c: c.cart_id == 3 and c.status != 'open'", no_params()),
        ("lambda c: c.cart_id in (3, 4) and c.status.startswith('o')", no_params()),
        ("lambda c: c.status in p0", vec![("p0".into(), Value::List(vec![Value::Text("open".into())]))]),
        ("lambda c: c.first_name.startswith('')", no_params()),
        ("lambda c: c.first_name.endswith('m')", no_params()),
        ("lambda c: 'm' in c.first_name", no_params()),
        ("lambda c: c.first_name == 'mike'", no_params()),
        ("lambda c: c.first_name.lower() == 'mike'", no_params()),
        ("lambda c: ieq(c.first_name, 'mike')", no_params()),
        ("lambda c: (c.category_id == 5 or c.price > 1.0) and c.flag", no_params()),
    ]
}

/// The const fn's answer for one disjunct, from the arguments `select!` gives it
/// (`query-macros/src/query.rs` `index_checks`): the fields with `==`/`in` criteria,
/// and the `starts_with` fields with their literal length (`RUNTIME_PREFIX` for a
/// parameter).
fn compile_time_indexable(conjunction: &[Expr]) -> bool {
    let mut eq: Vec<String> = Vec::new();
    let mut prefix: Vec<(String, u32)> = Vec::new();
    for candidate in candidates(conjunction) {
        match candidate.kind {
            CandidateKind::Eq | CandidateKind::In => eq.push(candidate.field),
            CandidateKind::Prefix { literal_chars } => {
                prefix.push((candidate.field, literal_chars.unwrap_or(memdex::__private::RUNTIME_PREFIX)));
            }
        }
    }
    let eq: Vec<&str> = eq.iter().map(String::as_str).collect();
    let prefix: Vec<(&str, u32)> = prefix.iter().map(|(f, n)| (f.as_str(), *n)).collect();
    memdex::__private::indexable(Item::INDEXES, &eq, &prefix)
}

/// The planner's answer for one disjunct: planned, or refused as unindexable.
fn planner_indexable(conjunction: Vec<Expr>) -> bool {
    match plan_dnf(Item::schema(), vec![conjunction], "c") {
        Ok(_) => true,
        Err(errors) => {
            assert!(
                errors.iter().all(|e| matches!(e.kind, ErrorKind::Unindexable { .. })),
                "the planner refused a disjunct for another reason: {errors}"
            );
            false
        }
    }
}

#[test]
fn compile_time_indexability_agrees_with_the_planner() {
    let corpus = corpus();
    let mut cases: Vec<(&str, Vec<(String, Value)>)> =
        corpus.iter().map(|(text_form, lowered)| (*text_form, named_params(lowered))).collect();
    cases.extend(unindexable());
    let mut refused_queries = 0;
    for (text_form, params) in &cases {
        let lambda = text::parse(text_form).unwrap_or_else(|e| panic!("{}", e.render(text_form)));
        // The macro checks the closure as lowered, before type checking; the planner
        // plans the checked filter. Both are normalised with the same limit.
        let lowered_dnf = to_dnf(&lambda.body, 64).unwrap_or_else(|e| panic!("{text_form}: {e}"));
        let types = types_of(params);
        let checked = prepare(Item::schema(), &lambda, &types, Access::Scan, 64)
            .unwrap_or_else(|e| panic!("{}", e.render(text_form)))
            .filter
            .expect("a filter");
        let checked_dnf = to_dnf(&checked, 64).unwrap_or_else(|e| panic!("{text_form}: {e}"));
        assert_eq!(lowered_dnf.len(), checked_dnf.len(), "{text_form}: checking changed the disjuncts");
        for (lowered, checked) in lowered_dnf.iter().zip(checked_dnf) {
            // `select!` asserts nothing about a disjunct that can never hold, as the
            // planner drops it.
            let compile_time = contradictory(lowered) || compile_time_indexable(lowered);
            let planner = planner_indexable(checked);
            assert_eq!(
                compile_time, planner,
                "{text_form}: select!'s check says {compile_time}, the planner {planner}"
            );
        }
        // The query as a whole: `select!` compiles exactly when `prepare` plans it.
        let whole = prepare(Item::schema(), &lambda, &types, Access::Indexed, 64).is_ok();
        let every_disjunct = lowered_dnf.iter().all(|d| contradictory(d) || compile_time_indexable(d));
        assert_eq!(every_disjunct, whole, "{text_form}: whole-query answers differ");
        refused_queries += usize::from(!whole);
    }
    assert_eq!(refused_queries, unindexable().len(), "every query of `unindexable()` is refused, no other");
}
