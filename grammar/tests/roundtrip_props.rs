//! Property tests of the text form: printing any IR tree the printer can spell and
//! parsing it back gives the same tree (spans aside); no input, however malformed,
//! makes the parser or the checker panic.

use memdex_grammar::ir::{AggFunc, ArithOp, CmpOp, Expr, ExprKind, Haystack, StrOp};
use memdex_grammar::{ParamType, Schema, Span, Type, Value, check, print, text};
use memdex_testkit::soup::Soup;
use proptest::prelude::*;

fn node(kind: ExprKind) -> Expr {
    Expr::new(kind, Span::DUMMY)
}

fn boxed(e: Expr) -> Box<Expr> {
    Box::new(e)
}

fn field() -> impl Strategy<Value = Expr> {
    prop_oneof![Just("a"), Just("b"), Just("first_name"), Just("price"), Just("deleted_at")]
        .prop_map(|f| Expr::field(f, Span::DUMMY))
}

/// Free names: never the lambda parameter `c`, never a keyword.
fn param_name() -> impl Strategy<Value = String> {
    prop_oneof![Just("p"), Just("q"), Just("ids"), Just("cat"), Just("len"), Just("x_1"), Just("ñame")]
        .prop_map(str::to_owned)
}

/// Every literal the text form can spell: NaN has no literal, lists only appear as
/// `in` haystacks.
fn literal() -> impl Strategy<Value = Expr> {
    let float = any::<f64>().prop_filter("NaN has no literal", |x| !x.is_nan());
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Int),
        prop_oneof![Just(0), Just(-1), Just(i64::MIN), Just(i64::MAX)].prop_map(Value::Int),
        float.prop_map(Value::Float),
        prop_oneof![Just(f64::INFINITY), Just(f64::NEG_INFINITY), Just(-0.0), Just(1e16), Just(5e-324)]
            .prop_map(Value::Float),
        any::<String>().prop_map(Value::Text),
        "[\"'\\\\\n\t%_a-zé✓]{0,6}".prop_map(Value::Text),
    ]
    .prop_map(|v| node(ExprKind::Lit(v)))
}

fn leaf() -> impl Strategy<Value = Expr> {
    prop_oneof![field(), literal(), param_name().prop_map(|p| Expr::param(p, Span::DUMMY))]
}

fn cmp_op() -> impl Strategy<Value = CmpOp> {
    prop_oneof![Just(CmpOp::Eq), Just(CmpOp::Ne), Just(CmpOp::Lt), Just(CmpOp::Le), Just(CmpOp::Gt), Just(CmpOp::Ge)]
}

fn arith_op() -> impl Strategy<Value = ArithOp> {
    prop_oneof![Just(ArithOp::Add), Just(ArithOp::Sub), Just(ArithOp::Mul), Just(ArithOp::Div), Just(ArithOp::Rem)]
}

fn agg_func() -> impl Strategy<Value = AggFunc> {
    prop_oneof![Just(AggFunc::Count), Just(AggFunc::Sum), Just(AggFunc::Min), Just(AggFunc::Max), Just(AggFunc::Avg)]
}

/// Any IR tree the printer can spell (see `print`'s module doc for what it cannot).
fn expr() -> impl Strategy<Value = Expr> {
    leaf().prop_recursive(5, 48, 4, |inner| {
        prop_oneof![
            inner.clone().prop_map(|e| node(ExprKind::Not(boxed(e)))),
            inner.clone().prop_map(|e| node(ExprKind::Neg(boxed(e)))),
            prop::collection::vec(inner.clone(), 2..4).prop_map(|v| node(ExprKind::And(v))),
            prop::collection::vec(inner.clone(), 2..4).prop_map(|v| node(ExprKind::Or(v))),
            (cmp_op(), inner.clone(), inner.clone()).prop_map(|(op, l, r)| node(ExprKind::Cmp {
                op,
                lhs: boxed(l),
                rhs: boxed(r)
            })),
            (arith_op(), inner.clone(), inner.clone()).prop_map(|(op, l, r)| node(ExprKind::Arith {
                op,
                lhs: boxed(l),
                rhs: boxed(r)
            })),
            (
                prop_oneof![Just(StrOp::StartsWith), Just(StrOp::EndsWith), Just(StrOp::Contains)],
                inner.clone(),
                inner.clone()
            )
                .prop_filter("a bare parameter after `in` is a membership test", |(op, subject, _)| {
                    !(*op == StrOp::Contains && matches!(subject.kind, ExprKind::Param(_)))
                })
                .prop_map(|(op, s, p)| node(ExprKind::StrTest {
                    op,
                    subject: boxed(s),
                    pattern: boxed(p)
                })),
            inner.clone().prop_map(|e| node(ExprKind::Lower(boxed(e)))),
            inner.clone().prop_map(|e| node(ExprKind::Len(boxed(e)))),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| node(ExprKind::IEq(boxed(a), boxed(b)))),
            (inner.clone(), prop::collection::vec(inner.clone(), 0..4))
                .prop_map(|(n, items)| node(ExprKind::In { needle: boxed(n), haystack: Haystack::Items(items) })),
            (inner.clone(), param_name())
                .prop_map(|(n, p)| node(ExprKind::In { needle: boxed(n), haystack: Haystack::Param(p) })),
            (inner.clone(), any::<bool>()).prop_map(|(e, negated)| node(ExprKind::IsNull { expr: boxed(e), negated })),
            (agg_func(), prop::option::of(inner.clone()))
                .prop_map(|(func, arg)| node(ExprKind::Agg { func, arg: arg.map(boxed) })),
        ]
    })
}

fn item_schema() -> Schema {
    Schema::new("Item", "item")
        .column("id", Type::Int, false)
        .column("category_id", Type::Int, false)
        .column("first_name", Type::Text, false)
        .column("price", Type::Float, false)
        .column("deleted_at", Type::Int, true)
        .key("id")
        .index(&["category_id"], None)
        .index(&["first_name"], Some(1))
}

fn param_types(name: &str) -> ParamType {
    match name {
        "p" => ParamType::Scalar(Type::Text),
        "q" => ParamType::Scalar(Type::Float),
        "ids" => ParamType::List(Some(Type::Int)),
        "cat" => ParamType::Scalar(Type::Int),
        "none" => ParamType::Null,
        "any" => ParamType::Unknown,
        _ => ParamType::Missing,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn print_then_parse_is_identity(e in expr()) {
        let src = format!("lambda c: {}", print::expr(&e, "c"));
        let parsed = text::parse(&src).map_err(|err| TestCaseError::fail(format!("{src}\n{}", err.render(&src))))?;
        prop_assert_eq!(parsed.body.without_spans(), e, "{}", src);
    }

    #[test]
    fn arbitrary_text_never_panics(src in any::<String>()) {
        let _ = text::parse(&src);
        let _ = text::parse(&format!("lambda c: {src}"));
    }

    #[test]
    fn token_soup_never_panics(tokens in Soup::new("c", &["first_name", "price"]).tokens(40), spaces in any::<bool>()) {
        let body = tokens.join(if spaces { " " } else { "" });
        for src in [format!("lambda c: {body}"), body] {
            if let Ok(l) = text::parse(&src) {
                let schema = item_schema();
                let _ = check::filter(&schema, &l.body, &param_types);
                let _ = check::aggregate(&schema, &l.body, &param_types);
            }
        }
    }

    /// Checking anything the generator makes never panics, and whatever it accepts
    /// still prints and parses back.
    #[test]
    fn checking_any_tree_never_panics(e in expr()) {
        let schema = item_schema();
        if let Ok(checked) = check::filter(&schema, &e, &param_types) {
            let src = format!("lambda c: {}", print::expr(&checked, "c"));
            prop_assert!(text::parse(&src).is_ok(), "{}", src);
        }
        let _ = check::aggregate(&schema, &e, &param_types);
    }
}
