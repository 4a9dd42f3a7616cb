//! The macro form and the text form of the same query give the same IR, plan, node
//! keys and SQL in every dialect: one planner serves both (ARCHITECTURE.md).
//!
//! Each case is written twice: as a closure for `select!(@ir …)` and as a Python
//! lambda in which the closure's captured values appear as `p0`, `p1`, … (the names
//! the macro gives them, in order), bound to the values the macro captured.

use memdex::__private::LoweredQuery;
use memdex::grammar::keys::KeySpace;
use memdex::grammar::params::types_of;
use memdex::grammar::plan::bind;
use memdex::grammar::sql::{self, SelectSpec};
use memdex::grammar::{Access, Dialect, Prepared, Value, prepare, text};
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

fn check(text_form: &str, lowered: LoweredQuery) {
    let macro_lambda = lowered.filter.expect("a select has a filter");
    let params: Vec<(String, Value)> =
        lowered.params.iter().enumerate().map(|(i, v)| (format!("p{i}"), v.clone())).collect();
    let text_lambda = text::parse(text_form).unwrap_or_else(|e| panic!("{}", e.render(text_form)));
    let from_macro = outcome(&macro_lambda, &params);
    let from_text = outcome(&text_lambda, &params);
    assert_eq!(from_macro, from_text, "the two forms disagree on {text_form}");
}

#[test]
fn forty_queries_written_both_ways_agree() {
    let cat = 5_i64;
    let other = 6_i64;
    let name = "mi".to_string();
    let ids = vec![1_i64, 2, 3];
    let cats = vec![5_i64, 6];
    let status = "open".to_string();
    let limit = 10.0_f64;
    let statuses = vec!["open".to_string(), "paid".to_string()];
    let mut n = 0;
    let mut case = |text_form: &str, lowered: LoweredQuery| {
        check(text_form, lowered);
        n += 1;
    };
    case("lambda c: c.category_id == 5", select!(@ir Item, |c| c.category_id == 5));
    case("lambda c: c.category_id == p0", select!(@ir Item, |c| c.category_id == cat));
    case("lambda c: 5 == c.category_id", select!(@ir Item, |c| 5 == c.category_id));
    case("lambda c: c.id == 7", select!(@ir Item, |c| c.id == 7));
    case("lambda c: c.id == p0 or c.id == p1", select!(@ir Item, |c| c.id == cat || c.id == other));
    case(
        "lambda c: c.category_id == p0 and c.price > 10.0",
        select!(@ir Item, |c| c.category_id == cat && c.price > 10.0),
    );
    case(
        "lambda c: c.category_id == p0 and c.price > p1",
        select!(@ir Item, |c| c.category_id == cat && c.price > limit),
    );
    case(
        "lambda c: c.category_id == 5 and c.price <= 3.5",
        select!(@ir Item, |c| c.category_id == 5 && c.price <= 3.5),
    );
    case(
        "lambda c: c.category_id == 5 and c.price >= 3.5",
        select!(@ir Item, |c| c.category_id == 5 && c.price >= 3.5),
    );
    case("lambda c: c.category_id == 5 and c.price < 3.5", select!(@ir Item, |c| c.category_id == 5 && c.price < 3.5));
    case(
        "lambda c: c.category_id == 5 and c.status != 'x'",
        select!(@ir Item, |c| c.category_id == 5 && c.status != "x"),
    );
    case(
        "lambda c: c.category_id == 5 or c.category_id == 6",
        select!(@ir Item, |c| c.category_id == 5 || c.category_id == 6),
    );
    case("lambda c: c.category_id in (5, 6)", select!(@ir Item, |c| [5, 6].contains(&c.category_id)));
    case("lambda c: c.category_id in p0", select!(@ir Item, |c| cats.contains(&c.category_id)));
    case("lambda c: c.id in p0", select!(@ir Item, |c| ids.contains(&c.id)));
    case("lambda c: c.first_name.startswith('mi')", select!(@ir Item, |c| c.first_name.starts_with("mi")));
    case("lambda c: c.first_name.startswith(p0)", select!(@ir Item, |c| c.first_name.starts_with(name.as_str())));
    case(
        "lambda c: c.first_name.startswith('m') and c.first_name.endswith('a')",
        select!(@ir Item, |c| c.first_name.starts_with("m") && c.first_name.ends_with("a")),
    );
    case(
        "lambda c: c.category_id == 5 and '_' in c.first_name",
        select!(@ir Item, |c| c.category_id == 5 && c.first_name.contains("_")),
    );
    case(
        "lambda c: c.category_id == 5 and not c.first_name.startswith('m')",
        select!(@ir Item, |c| c.category_id == 5 && !c.first_name.starts_with("m")),
    );
    case(
        "lambda c: c.cart_id == 3 and c.status == 'open'",
        select!(@ir Item, |c| c.cart_id == 3 && c.status == "open"),
    );
    case("lambda c: c.cart_id == 3 and c.status == p0", select!(@ir Item, |c| c.cart_id == 3 && c.status == status));
    case(
        "lambda c: c.cart_id == 3 and c.status in p0",
        select!(@ir Item, |c| c.cart_id == 3 && statuses.contains(&c.status)),
    );
    case(
        "lambda c: c.cart_id == 3 and (c.status == 'open' or c.status == 'paid')",
        select!(@ir Item, |c| c.cart_id == 3 && (c.status == "open" || c.status == "paid")),
    );
    case(
        "lambda c: c.cart_id == 3 and c.status == 'open' and c.category_id == 5",
        select!(@ir Item, |c| c.cart_id == 3 && c.status == "open" && c.category_id == 5),
    );
    case(
        "lambda c: c.category_id == 5 and c.deleted_at is None",
        select!(@ir Item, |c| c.category_id == 5 && c.deleted_at.is_none()),
    );
    case(
        "lambda c: c.category_id == 5 and c.deleted_at is not None",
        select!(@ir Item, |c| c.category_id == 5 && c.deleted_at.is_some()),
    );
    case(
        "lambda c: c.category_id == 5 and c.deleted_at == 100",
        select!(@ir Item, |c| c.category_id == 5 && c.deleted_at == Some(100)),
    );
    case(
        "lambda c: c.category_id == 5 and c.deleted_at != 100",
        select!(@ir Item, |c| c.category_id == 5 && c.deleted_at != Some(100)),
    );
    case(
        "lambda c: c.category_id == 5 and ieq(c.status, 'OPEN')",
        select!(@ir Item, |c| c.category_id == 5 && c.status.eq_ignore_ascii_case("OPEN")),
    );
    case(
        "lambda c: c.category_id == 5 and c.status.lower() == 'open'",
        select!(@ir Item, |c| c.category_id == 5 && c.status.to_lowercase() == "open"),
    );
    case(
        "lambda c: c.category_id == 5 and len(c.first_name) > 3",
        select!(@ir Item, |c| c.category_id == 5 && c.first_name.len() > 3),
    );
    case(
        "lambda c: c.category_id == 5 and c.price * 2.0 + 1.0 > 10.0",
        select!(@ir Item, |c| c.category_id == 5 && c.price * 2.0 + 1.0 > 10.0),
    );
    case(
        "lambda c: c.category_id == 5 and c.cart_id % 2 == 0",
        select!(@ir Item, |c| c.category_id == 5 && c.cart_id % 2 == 0),
    );
    case(
        "lambda c: c.category_id == 5 and c.cart_id - 1 < 10 / 3",
        select!(@ir Item, |c| c.category_id == 5 && c.cart_id - 1 < 10 / 3),
    );
    case("lambda c: c.category_id == 5 and c.flag", select!(@ir Item, |c| c.category_id == 5 && c.flag));
    case("lambda c: c.category_id == 5 and not c.flag", select!(@ir Item, |c| c.category_id == 5 && !c.flag));
    case("lambda c: not (c.category_id != 5)", select!(@ir Item, |c| !(c.category_id != 5)));
    case(
        "lambda c: not (c.category_id != 5 or c.price > 1.0)",
        select!(@ir Item, |c| !(c.category_id != 5 || c.price > 1.0)),
    );
    case(
        "lambda c: (c.category_id == 5 or c.first_name.startswith('z')) and c.price > 1.0",
        select!(@ir Item, |c| (c.category_id == 5 || c.first_name.starts_with("z")) && c.price > 1.0),
    );
    case(
        "lambda c: c.category_id == 5 and c.category_id == 6",
        select!(@ir Item, |c| c.category_id == 5 && c.category_id == 6),
    );
    case(
        "lambda c: c.category_id == p0 or c.id in (1, 2) or c.first_name.startswith('q')",
        select!(@ir Item, |c| c.category_id == cat || [1, 2].contains(&c.id) || c.first_name.starts_with("q")),
    );
    case(
        "lambda c: c.category_id == 5 and c.price > -1.5",
        select!(@ir Item, |c| c.category_id == 5 && c.price > -1.5),
    );
    case(
        "lambda c: c.category_id == 5 and c.price > -(1.5) and c.cart_id < 2 * (3 + 4)",
        select!(@ir Item, |c| c.category_id == 5 && c.price > -(1.5) && c.cart_id < 2 * (3 + 4)),
    );
    assert!(n >= 40, "{n} cases");
}
