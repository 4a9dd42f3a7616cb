//! Builders for IR in tests, so a test reads like the query it stands for:
//! `and([eq(f("category_id"), p("cat")), gt(f("price"), lit(10.0))])`.
//!
//! Every builder gives [`Span::DUMMY`]; [`at`] sets a span where a test checks one.
//! [`show`] renders IR compactly (Python spelling, every compound operand in
//! parentheses) so expectations stay readable without depending on the printer.
#![allow(dead_code)]

use memdex_grammar::Schema;
use memdex_grammar::ir::{ArithOp, CmpOp, Expr, ExprKind, Haystack, StrOp};
use memdex_grammar::span::Span;
use memdex_grammar::value::{Type, Value};

pub fn f(name: &str) -> Expr {
    Expr::field(name, Span::DUMMY)
}
pub fn lit(v: impl Into<Value>) -> Expr {
    Expr::lit(v, Span::DUMMY)
}
pub fn none() -> Expr {
    Expr::lit(Value::Null, Span::DUMMY)
}
pub fn p(name: &str) -> Expr {
    Expr::param(name, Span::DUMMY)
}
pub fn at(mut e: Expr, start: usize, end: usize) -> Expr {
    e.span = Span::new(start, end);
    e
}
fn cmp(op: CmpOp, a: Expr, b: Expr) -> Expr {
    Expr::cmp(op, a, b, Span::DUMMY)
}
pub fn eq(a: Expr, b: Expr) -> Expr {
    cmp(CmpOp::Eq, a, b)
}
pub fn ne(a: Expr, b: Expr) -> Expr {
    cmp(CmpOp::Ne, a, b)
}
pub fn lt(a: Expr, b: Expr) -> Expr {
    cmp(CmpOp::Lt, a, b)
}
pub fn le(a: Expr, b: Expr) -> Expr {
    cmp(CmpOp::Le, a, b)
}
pub fn gt(a: Expr, b: Expr) -> Expr {
    cmp(CmpOp::Gt, a, b)
}
pub fn ge(a: Expr, b: Expr) -> Expr {
    cmp(CmpOp::Ge, a, b)
}
fn new(kind: ExprKind) -> Expr {
    Expr::new(kind, Span::DUMMY)
}
pub fn not(a: Expr) -> Expr {
    new(ExprKind::Not(Box::new(a)))
}
pub fn neg(a: Expr) -> Expr {
    new(ExprKind::Neg(Box::new(a)))
}
pub fn and<const N: usize>(items: [Expr; N]) -> Expr {
    new(ExprKind::And(items.into()))
}
pub fn or<const N: usize>(items: [Expr; N]) -> Expr {
    new(ExprKind::Or(items.into()))
}
pub fn and_v(items: Vec<Expr>) -> Expr {
    new(ExprKind::And(items))
}
pub fn or_v(items: Vec<Expr>) -> Expr {
    new(ExprKind::Or(items))
}
pub fn is_none(a: Expr) -> Expr {
    new(ExprKind::IsNull { expr: Box::new(a), negated: false })
}
pub fn is_some(a: Expr) -> Expr {
    new(ExprKind::IsNull { expr: Box::new(a), negated: true })
}
fn str_test(op: StrOp, s: Expr, pat: Expr) -> Expr {
    new(ExprKind::StrTest { op, subject: Box::new(s), pattern: Box::new(pat) })
}
pub fn starts_with(s: Expr, pat: Expr) -> Expr {
    str_test(StrOp::StartsWith, s, pat)
}
pub fn ends_with(s: Expr, pat: Expr) -> Expr {
    str_test(StrOp::EndsWith, s, pat)
}
pub fn contains(s: Expr, pat: Expr) -> Expr {
    str_test(StrOp::Contains, s, pat)
}
pub fn in_items<const N: usize>(needle: Expr, items: [Expr; N]) -> Expr {
    new(ExprKind::In { needle: Box::new(needle), haystack: Haystack::Items(items.into()) })
}
pub fn in_param(needle: Expr, name: &str) -> Expr {
    new(ExprKind::In { needle: Box::new(needle), haystack: Haystack::Param(name.into()) })
}
pub fn lower(a: Expr) -> Expr {
    new(ExprKind::Lower(Box::new(a)))
}
pub fn ieq(a: Expr, b: Expr) -> Expr {
    new(ExprKind::IEq(Box::new(a), Box::new(b)))
}
pub fn len(a: Expr) -> Expr {
    new(ExprKind::Len(Box::new(a)))
}
fn arith(op: ArithOp, a: Expr, b: Expr) -> Expr {
    new(ExprKind::Arith { op, lhs: Box::new(a), rhs: Box::new(b) })
}
pub fn add(a: Expr, b: Expr) -> Expr {
    arith(ArithOp::Add, a, b)
}
pub fn sub(a: Expr, b: Expr) -> Expr {
    arith(ArithOp::Sub, a, b)
}
pub fn mul(a: Expr, b: Expr) -> Expr {
    arith(ArithOp::Mul, a, b)
}
pub fn div(a: Expr, b: Expr) -> Expr {
    arith(ArithOp::Div, a, b)
}
pub fn rem(a: Expr, b: Expr) -> Expr {
    arith(ArithOp::Rem, a, b)
}

/// Compact Python-like rendering: `c.` before fields, compound operands parenthesised.
pub fn show(e: &Expr) -> String {
    fn operand(e: &Expr) -> String {
        match &e.kind {
            ExprKind::Field(_) | ExprKind::Lit(_) | ExprKind::Param(_) => show(e),
            _ => format!("({})", show(e)),
        }
    }
    match &e.kind {
        ExprKind::Field(name) => format!("c.{name}"),
        ExprKind::Lit(v) => v.to_string(),
        ExprKind::Param(name) => name.clone(),
        ExprKind::Not(a) => format!("not {}", operand(a)),
        ExprKind::Neg(a) => format!("-{}", operand(a)),
        ExprKind::And(items) => items.iter().map(operand).collect::<Vec<_>>().join(" and "),
        ExprKind::Or(items) => items.iter().map(operand).collect::<Vec<_>>().join(" or "),
        ExprKind::Cmp { op, lhs, rhs } => format!("{} {} {}", operand(lhs), op.symbol(), operand(rhs)),
        ExprKind::Arith { op, lhs, rhs } => format!("{} {} {}", operand(lhs), op.symbol(), operand(rhs)),
        ExprKind::StrTest { op, subject, pattern } => match op {
            StrOp::StartsWith => format!("{}.startswith({})", operand(subject), show(pattern)),
            StrOp::EndsWith => format!("{}.endswith({})", operand(subject), show(pattern)),
            StrOp::Contains => format!("{} in {}", operand(pattern), operand(subject)),
        },
        ExprKind::Lower(a) => format!("{}.lower()", operand(a)),
        ExprKind::IEq(a, b) => format!("ieq({}, {})", show(a), show(b)),
        ExprKind::Len(a) => format!("len({})", show(a)),
        ExprKind::In { needle, haystack } => match haystack {
            Haystack::Items(items) => {
                let items: Vec<String> = items.iter().map(show).collect();
                let comma = if items.len() == 1 { "," } else { "" };
                format!("{} in ({}{comma})", operand(needle), items.join(", "))
            }
            Haystack::Param(name) => format!("{} in {name}", operand(needle)),
        },
        ExprKind::IsNull { expr, negated: false } => format!("{} is None", operand(expr)),
        ExprKind::IsNull { expr, negated: true } => format!("{} is not None", operand(expr)),
        ExprKind::Agg { func, arg } => {
            format!("{}({})", func.name(), arg.as_ref().map(|a| show(a)).unwrap_or_default())
        }
    }
}

/// The shop's model, with every kind of index the planner knows.
pub fn item_schema() -> Schema {
    Schema::new("Item", "item")
        .column("id", Type::Int, false)
        .column("category_id", Type::Int, false)
        .column("first_name", Type::Text, false)
        .column("price", Type::Float, false)
        .column("deleted_at", Type::Int, true)
        .column("cart_id", Type::Int, false)
        .column("status", Type::Text, false)
        .column("color", Type::Text, true)
        .column("active", Type::Bool, false)
        .column("last_name", Type::Text, false)
        .key("id")
        .index(&["category_id"], None)
        .index(&["first_name"], Some(1))
        .index(&["cart_id", "status"], None)
        .index(&["cart_id"], None)
        .index(&["deleted_at"], None)
        .index(&["price"], None)
        .index(&["last_name"], Some(3))
}
