//! Pass cases for the macros: every row of the language table compiles with
//! `select!`, `scan!` and `view!`, and lowers to the IR the text form gives.

use memdex::__private::LoweredQuery;
use memdex::grammar::ir::{AggFunc, ArithOp, CmpOp, Expr, ExprKind, Haystack, Lambda, StrOp};
use memdex::{Model, Value, scan, select, view};
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
    pub cart_id: i32,
    pub status: String,
    pub flag: bool,
    #[memdex(column = "note_text")]
    pub note: Option<String>,
}

#[test]
fn derive_schema() {
    let s = Item::schema();
    assert_eq!(s.table, "item");
    assert_eq!(Item::INDEX_LIST, s.describe_indexes());
    assert_eq!(Item::INDEX_LIST, "id (key), (cart_id, status), category_id, first_name (prefix 1)");
    assert_eq!(s.columns[8].name, "note_text");
    assert_eq!(Item::price().field(), "price");
}

/// The filter IR of a probe, without spans, and the parameter values.
fn filter_of(q: LoweredQuery) -> (Expr, Vec<Value>) {
    let lambda: Lambda = q.filter.expect("a filter");
    assert_eq!(lambda.param, "c");
    (lambda.body.without_spans(), q.params)
}

fn d() -> memdex::grammar::Span {
    memdex::grammar::Span::DUMMY
}
fn field(f: &str) -> Expr {
    Expr::field(f, d())
}
fn lit(v: impl Into<Value>) -> Expr {
    Expr::lit(v, d())
}
fn param(i: usize) -> Expr {
    Expr::param(format!("p{i}"), d())
}
fn cmp(op: CmpOp, l: Expr, r: Expr) -> Expr {
    Expr::cmp(op, l, r, d())
}
fn node(kind: ExprKind) -> Expr {
    Expr::new(kind, d())
}

#[test]
// `!= None` is a form of the query language under test, not a comparison Rust runs.
#[allow(clippy::partialeq_to_none)]
fn select_rows_lower_to_the_expected_ir() {
    let cat = 5_i64;
    let name = String::from("m");
    let ids = vec![1_i64, 2];
    let check = |got: LoweredQuery, expect: Expr, params: Vec<Value>| {
        let (e, p) = filter_of(got);
        assert_eq!(e, expect);
        assert_eq!(p, params);
    };
    check(
        select!(@ir Item, |c| c.category_id == cat && c.price > 10.0),
        node(ExprKind::And(vec![
            cmp(CmpOp::Eq, field("category_id"), param(0)),
            cmp(CmpOp::Gt, field("price"), lit(10.0)),
        ])),
        vec![Value::Int(5)],
    );
    check(
        select!(@ir Item, |c| c.first_name.starts_with("mi")),
        node(ExprKind::StrTest {
            op: StrOp::StartsWith,
            subject: Box::new(field("first_name")),
            pattern: Box::new(lit("mi")),
        }),
        vec![],
    );
    check(
        select!(@ir Item, |c| c.first_name.starts_with(&name) && !c.first_name.ends_with('x')),
        node(ExprKind::And(vec![
            node(ExprKind::StrTest {
                op: StrOp::StartsWith,
                subject: Box::new(field("first_name")),
                pattern: Box::new(param(0)),
            }),
            node(ExprKind::Not(Box::new(node(ExprKind::StrTest {
                op: StrOp::EndsWith,
                subject: Box::new(field("first_name")),
                pattern: Box::new(lit("x")),
            })))),
        ])),
        vec![Value::Text("m".into())],
    );
    check(
        select!(@ir Item, |c| [1, 2].contains(&c.id) || ids.contains(&c.category_id)),
        node(ExprKind::Or(vec![
            node(ExprKind::In { needle: Box::new(field("id")), haystack: Haystack::Items(vec![lit(1), lit(2)]) }),
            node(ExprKind::In { needle: Box::new(field("category_id")), haystack: Haystack::Param("p0".into()) }),
        ])),
        vec![Value::List(vec![Value::Int(1), Value::Int(2)])],
    );
    check(
        select!(@ir Item, |c| c.category_id == 1 && c.deleted_at.is_none() && c.note == Some(name.clone())),
        node(ExprKind::And(vec![
            cmp(CmpOp::Eq, field("category_id"), lit(1)),
            node(ExprKind::IsNull { expr: Box::new(field("deleted_at")), negated: false }),
            cmp(CmpOp::Eq, field("note"), param(0)),
        ])),
        vec![Value::Text("m".into())],
    );
    check(
        select!(@ir Item, |c| c.category_id == 1 && c.note != None && c.deleted_at.is_some()),
        node(ExprKind::And(vec![
            cmp(CmpOp::Eq, field("category_id"), lit(1)),
            cmp(CmpOp::Ne, field("note"), lit(Value::Null)),
            node(ExprKind::IsNull { expr: Box::new(field("deleted_at")), negated: true }),
        ])),
        vec![],
    );
    check(
        select!(@ir Item, |c| c.id == cat + 1 && c.status.to_lowercase() == "x" && c.status.len() > 2
            && c.status.eq_ignore_ascii_case("Y") && c.price * 2.0 - 1.0 >= -3.5 && c.flag),
        node(ExprKind::And(vec![
            cmp(CmpOp::Eq, field("id"), param(0)),
            cmp(CmpOp::Eq, node(ExprKind::Lower(Box::new(field("status")))), lit("x")),
            cmp(CmpOp::Gt, node(ExprKind::Len(Box::new(field("status")))), lit(2)),
            node(ExprKind::IEq(Box::new(field("status")), Box::new(lit("Y")))),
            cmp(
                CmpOp::Ge,
                node(ExprKind::Arith {
                    op: ArithOp::Sub,
                    lhs: Box::new(node(ExprKind::Arith {
                        op: ArithOp::Mul,
                        lhs: Box::new(field("price")),
                        rhs: Box::new(lit(2.0)),
                    })),
                    rhs: Box::new(lit(1.0)),
                }),
                lit(-3.5),
            ),
            field("flag"),
        ])),
        vec![Value::Int(6)],
    );
    check(
        select!(@ir Item, |c| c.cart_id == 3 && (c.status == "open" || c.status == "paid")),
        node(ExprKind::And(vec![
            cmp(CmpOp::Eq, field("cart_id"), lit(3)),
            node(ExprKind::Or(vec![
                cmp(CmpOp::Eq, field("status"), lit("open")),
                cmp(CmpOp::Eq, field("status"), lit("paid")),
            ])),
        ])),
        vec![],
    );
}

#[test]
fn scan_and_view_lower() {
    let (e, p) = filter_of(scan!(@ir Item, |c| c.price < 1.0 && c.deleted_at.is_none()));
    assert_eq!(
        e,
        node(ExprKind::And(vec![
            cmp(CmpOp::Lt, field("price"), lit(1.0)),
            node(ExprKind::IsNull { expr: Box::new(field("deleted_at")), negated: false }),
        ]))
    );
    assert!(p.is_empty());

    let v = view!(@ir Item, |m| avg(m.price));
    assert!(v.filter.is_none());
    let agg = v.aggregate.expect("aggregate");
    assert_eq!(agg.param, "m");
    assert_eq!(
        agg.body.without_spans(),
        node(ExprKind::Agg { func: AggFunc::Avg, arg: Some(Box::new(field("price"))) })
    );

    let cat = 2_i64;
    let v = view!(@ir Item, |m| m.category_id == cat, |m| count());
    assert_eq!(v.filter.expect("filter").body.without_spans(), cmp(CmpOp::Eq, field("category_id"), param(0)));
    assert_eq!(
        v.aggregate.expect("aggregate").body.without_spans(),
        node(ExprKind::Agg { func: AggFunc::Count, arg: None })
    );
    assert_eq!(v.params, vec![Value::Int(2)]);
}

#[test]
fn real_queries_compile_with_their_types() {
    let cat = 5_i64;
    let q = select!(Item, |c| c.category_id == cat && c.price > 10.0).order_by_desc(Item::price()).limit(10);
    let _ = format!("{q:?}");
    let _s = scan!(Item, |c| c.price < 1.0);
    let _v: memdex::View<'_, Item, Option<f64>> = view!(Item, |m| avg(m.price));
    let _n: memdex::View<'_, Item, u64> = view!(Item, |m| m.category_id == cat, |m| count());
    let _m: memdex::View<'_, Item, Option<f64>> = view!(Item, |m| m.category_id == cat, |m| max(m.cart_id));
}

#[test]
fn row_round_trip_and_decode_errors() {
    let item = Item {
        id: 7,
        category_id: 5,
        first_name: "mira".into(),
        price: 2.5,
        deleted_at: None,
        cart_id: 3,
        status: "open".into(),
        flag: true,
        note: Some("n".into()),
    };
    let values: Vec<Value> = (0..9).map(|i| item.column_value(i)).collect();
    assert_eq!(values[4], Value::Null);
    assert_eq!(Item::from_values(values.clone()), Ok(item.clone()));
    assert_eq!(item.key(), 7);
    assert_eq!(Item::from_values(values[..8].to_vec()), Err("expected 9 column values, found 8".to_string()));
    let mut wrong = values.clone();
    wrong[5] = Value::Int(i64::MAX);
    assert_eq!(
        Item::from_values(wrong),
        Err(format!("field `cart_id` (column `cart_id`): {} does not fit in i32", i64::MAX))
    );
    let mut wrong = values;
    wrong[8] = Value::Int(1);
    assert_eq!(
        Item::from_values(wrong),
        Err("field `note` (column `note_text`): expected a string, found integer 1".to_string())
    );
}
