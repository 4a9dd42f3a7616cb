//! Normalisation to disjunctive normal form, as small passes:
//!
//! 1. [`push_not`]: push `not` inward (De Morgan, double negation, `not (a == b)` →
//!    `a != b`, `not (a != b)` → `a == b`, `not (x is None)` → `x is not None`,
//!    `not True` → `False`). Other negated leaves stay `Not(leaf)`: `not (a < b)` is
//!    *not* `a >= b` when a float is NaN, and `not s.startswith(p)` has no positive form.
//! 2. [`simplify_constants`]: literal `True`/`False` conjuncts and disjuncts go away.
//! 3. [`flatten`]: nested `and`s inside `and` (and `or`s inside `or`) become one n-ary node.
//! 4. [`count_disjuncts`] then [`distribute`]: `and` over `or`, only after the number of
//!    disjuncts the product will have is known to be within the limit.
//!
//! It never needs a schema, because the macros call it at compile time, where
//! only the closure is known. It is bounded by `limit` disjuncts: exceeding it is
//! `ErrorKind::TooManyDisjuncts` at the whole expression, detected *before* building
//! the product (no exponential blow-up, no hang). Literal `True`/`False` conjuncts
//! and disjuncts are simplified away.
//!
//! Every pass is linear in the size of the tree except [`distribute`], whose output
//! is at most `limit` conjunctions of at most as many leaves as the input has.

use crate::error::{Error, ErrorKind};
use crate::ir::{CmpOp, Expr, ExprKind};
use crate::span::Span;
use crate::value::Value;

/// Default bound on the number of disjuncts.
pub const DEFAULT_DISJUNCT_LIMIT: usize = 64;

/// A conjunction of leaves (no `and`/`or` inside, `not` only around a leaf).
pub type Conjunction = Vec<Expr>;

/// The DNF of a boolean expression. An empty outer vector means "always false";
/// an inner empty conjunction means "always true".
///
/// # Errors
///
/// `ErrorKind::TooManyDisjuncts` at the whole expression when the DNF would have
/// more than `limit` disjuncts; it is found before the product is built.
///
/// ```
/// use memdex_grammar::{normalise, print, text};
///
/// let lambda = text::parse("lambda c: c.a == 1 and (c.b == 2 or not (c.c == 3 or c.d))")?;
/// let dnf = normalise::to_dnf(&lambda.body, normalise::DEFAULT_DISJUNCT_LIMIT)?;
/// let shown: Vec<Vec<String>> =
///     dnf.iter().map(|conjunction| conjunction.iter().map(|leaf| print::expr(leaf, "c")).collect()).collect();
/// assert_eq!(shown, [vec!["c.a == 1", "c.b == 2"], vec!["c.a == 1", "c.c != 3", "not c.d"]]);
///
/// // (a or b) and (c or d) and … over 7 pairs: 128 disjuncts, over the limit.
/// let pairs = vec!["(c.a == 1 or c.b == 2)"; 7].join(" and ");
/// let lambda = text::parse(&format!("lambda c: {pairs}"))?;
/// assert!(normalise::to_dnf(&lambda.body, 64).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn to_dnf(e: &Expr, limit: usize) -> Result<Vec<Conjunction>, Error> {
    let whole = e.span;
    let e = flatten(simplify_constants(push_not(e.clone())));
    let count = count_disjuncts(&e);
    if count > limit {
        // The whole expression, as written: the passes may have replaced the root.
        return Err(Error::new(ErrorKind::TooManyDisjuncts { limit }, whole)
            .with_hint("each `or` inside an `and` multiplies the alternatives; `c.x in (1, 2)` is one alternative"));
    }
    Ok(distribute(e))
}

/// Pass 1: negation normal form. `not` ends up only around leaves that have no exact
/// negated form; `and`/`or` are swapped by De Morgan's laws.
pub fn push_not(e: Expr) -> Expr {
    nnf(e, None)
}

/// `negation` is `Some(span)` when `e` is to be negated; the span is the one the
/// negated result gets when it wraps a leaf (the `not`'s own span when the `not` was
/// written right there, the leaf's span when the negation came through De Morgan).
fn nnf(e: Expr, negation: Option<Span>) -> Expr {
    let Expr { kind, span } = e;
    match (kind, negation) {
        (ExprKind::Not(inner), None) => nnf(*inner, Some(span)),
        // Double negation.
        (ExprKind::Not(inner), Some(_)) => nnf(*inner, None),
        (ExprKind::And(items), None) => {
            Expr::new(ExprKind::And(items.into_iter().map(|x| nnf(x, None)).collect()), span)
        }
        (ExprKind::Or(items), None) => Expr::new(ExprKind::Or(items.into_iter().map(|x| nnf(x, None)).collect()), span),
        // De Morgan: each child is negated where it stands.
        (ExprKind::And(items), Some(_)) => Expr::new(ExprKind::Or(negate_all(items)), span),
        (ExprKind::Or(items), Some(_)) => Expr::new(ExprKind::And(negate_all(items)), span),
        (ExprKind::Lit(Value::Bool(b)), Some(not_span)) => Expr::new(ExprKind::Lit(Value::Bool(!b)), not_span),
        // `!(a == b)` is `a != b` for every Rust type the language has, `Option`s
        // included (both are null-aware), and NaN too (`NaN != NaN` is true).
        (ExprKind::Cmp { op: op @ (CmpOp::Eq | CmpOp::Ne), lhs, rhs }, Some(not_span)) => {
            Expr::new(ExprKind::Cmp { op: op.negate(), lhs, rhs }, not_span)
        }
        (ExprKind::IsNull { expr, negated }, Some(not_span)) => {
            Expr::new(ExprKind::IsNull { expr, negated: !negated }, not_span)
        }
        // Any other leaf: kept, negated as a whole when asked.
        (kind, None) => Expr::new(kind, span),
        (kind, Some(not_span)) => Expr::new(ExprKind::Not(Box::new(Expr::new(kind, span))), not_span),
    }
}

fn negate_all(items: Vec<Expr>) -> Vec<Expr> {
    items
        .into_iter()
        .map(|x| {
            let s = x.span;
            nnf(x, Some(s))
        })
        .collect()
}

/// Pass 2: removes literal `True`/`False` from `and`/`or` (bottom-up): `a and True` →
/// `a`, `a and False` → `False`, `a or True` → `True`, `a or False` → `a`. An `and`
/// or `or` left with one child becomes that child; with none, the neutral literal.
/// Expects negation normal form (so `not True` is already `False`).
pub fn simplify_constants(e: Expr) -> Expr {
    let Expr { kind, span } = e;
    match kind {
        ExprKind::And(items) => junction(items, span, true),
        ExprKind::Or(items) => junction(items, span, false),
        kind => Expr::new(kind, span),
    }
}

/// `is_and`: the neutral literal of an `and` is `True`, the absorbing one `False`;
/// the other way round for `or`.
fn junction(items: Vec<Expr>, span: Span, is_and: bool) -> Expr {
    let neutral = is_and;
    let mut kept = Vec::with_capacity(items.len());
    for item in items {
        let item = simplify_constants(item);
        match item.kind {
            ExprKind::Lit(Value::Bool(b)) if b == neutral => {}
            ExprKind::Lit(Value::Bool(_)) => return Expr::new(ExprKind::Lit(Value::Bool(!neutral)), span),
            _ => kept.push(item),
        }
    }
    match kept.len() {
        0 => Expr::new(ExprKind::Lit(Value::Bool(neutral)), span),
        1 => kept.pop().unwrap_or_else(|| Expr::new(ExprKind::Lit(Value::Bool(neutral)), span)),
        _ => Expr::new(if is_and { ExprKind::And(kept) } else { ExprKind::Or(kept) }, span),
    }
}

/// Pass 3: merges an `and` nested directly in an `and` (an `or` in an `or`) into its
/// parent, and replaces a one-child `and`/`or` by the child, bottom-up.
pub fn flatten(e: Expr) -> Expr {
    let Expr { kind, span } = e;
    match kind {
        ExprKind::And(items) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                match flatten(item) {
                    Expr { kind: ExprKind::And(inner), .. } => out.extend(inner),
                    other => out.push(other),
                }
            }
            single_or(out, span, ExprKind::And)
        }
        ExprKind::Or(items) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                match flatten(item) {
                    Expr { kind: ExprKind::Or(inner), .. } => out.extend(inner),
                    other => out.push(other),
                }
            }
            single_or(out, span, ExprKind::Or)
        }
        kind => Expr::new(kind, span),
    }
}

fn single_or(mut items: Vec<Expr>, span: Span, make: fn(Vec<Expr>) -> ExprKind) -> Expr {
    if items.len() == 1 {
        if let Some(only) = items.pop() {
            return only;
        }
    }
    Expr::new(make(items), span)
}

/// How many conjunctions [`distribute`] will produce, computed without building
/// them: a sum over `or`, a product over `and`. Saturates at `usize::MAX` instead of
/// overflowing, so any tree can be measured in linear time.
pub fn count_disjuncts(e: &Expr) -> usize {
    match &e.kind {
        ExprKind::Or(items) => items.iter().fold(0usize, |n, x| n.saturating_add(count_disjuncts(x))),
        // A zero factor wins over a saturated one (`False and <huge>` is empty): a
        // saturating product that meets a zero stays zero.
        ExprKind::And(items) => items.iter().fold(1usize, |n, x| n.saturating_mul(count_disjuncts(x))),
        ExprKind::Lit(Value::Bool(false)) => 0,
        ExprKind::Lit(Value::Bool(true)) => 1,
        _ => 1,
    }
}

/// Pass 4: distributes `and` over `or`. Callers bound the result with
/// [`count_disjuncts`] first; every intermediate product is at most that count
/// (all factors are ≥ 1 once an empty factor has short-circuited).
pub fn distribute(e: Expr) -> Vec<Conjunction> {
    match e.kind {
        ExprKind::Lit(Value::Bool(true)) => vec![vec![]],
        ExprKind::Lit(Value::Bool(false)) => vec![],
        ExprKind::Or(items) => items.into_iter().flat_map(distribute).collect(),
        ExprKind::And(items) => {
            let mut factors = Vec::with_capacity(items.len());
            for item in items {
                let dnf = distribute(item);
                if dnf.is_empty() {
                    return vec![];
                }
                factors.push(dnf);
            }
            let mut product: Vec<Conjunction> = vec![vec![]];
            for factor in factors {
                product = cross(product, factor);
            }
            product
        }
        kind => vec![vec![Expr::new(kind, e.span)]],
    }
}

/// Every `left ++ right` of the two lists, `left` varying slowest. Each conjunction is
/// moved into its last combination and cloned only for the others, so a factor of one
/// alternative (a plain conjunct, the common case) copies nothing.
fn cross(mut product: Vec<Conjunction>, mut factor: Vec<Conjunction>) -> Vec<Conjunction> {
    let mut next = Vec::with_capacity(product.len() * factor.len());
    let (Some(last_left), Some(last_right)) = (product.pop(), factor.pop()) else { return next };
    for left in product {
        for right in &factor {
            next.push(concat(left.clone(), right.iter().cloned()));
        }
        next.push(concat(left, last_right.iter().cloned()));
    }
    for right in factor {
        next.push(concat(last_left.clone(), right));
    }
    next.push(concat(last_left, last_right));
    next
}

fn concat(mut left: Conjunction, right: impl IntoIterator<Item = Expr>) -> Conjunction {
    left.extend(right);
    left
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::StrOp;

    fn sp(a: usize, b: usize) -> Span {
        Span::new(a, b)
    }
    fn f(name: &str) -> Expr {
        Expr::field(name, Span::DUMMY)
    }
    fn lit(v: impl Into<Value>) -> Expr {
        Expr::lit(v, Span::DUMMY)
    }
    fn eq(a: Expr, b: Expr) -> Expr {
        Expr::cmp(CmpOp::Eq, a, b, Span::DUMMY)
    }
    fn cmp(op: CmpOp, a: Expr, b: Expr) -> Expr {
        Expr::cmp(op, a, b, Span::DUMMY)
    }
    fn not(a: Expr) -> Expr {
        Expr::new(ExprKind::Not(Box::new(a)), Span::DUMMY)
    }
    fn and(v: Vec<Expr>) -> Expr {
        Expr::new(ExprKind::And(v), Span::DUMMY)
    }
    fn or(v: Vec<Expr>) -> Expr {
        Expr::new(ExprKind::Or(v), Span::DUMMY)
    }
    fn is_none(a: Expr, negated: bool) -> Expr {
        Expr::new(ExprKind::IsNull { expr: Box::new(a), negated }, Span::DUMMY)
    }

    #[test]
    fn push_not_de_morgan_and_exact_negations() {
        let a = eq(f("a"), lit(1));
        let b = cmp(CmpOp::Lt, f("b"), lit(2));
        assert_eq!(
            push_not(not(and(vec![a.clone(), b.clone()]))),
            or(vec![cmp(CmpOp::Ne, f("a"), lit(1)), not(b.clone())])
        );
        assert_eq!(push_not(not(or(vec![a.clone(), b.clone()]))), and(vec![cmp(CmpOp::Ne, f("a"), lit(1)), not(b)]));
        assert_eq!(push_not(not(not(a.clone()))), a);
        assert_eq!(push_not(not(cmp(CmpOp::Ne, f("a"), lit(1)))), a);
        assert_eq!(push_not(not(is_none(f("o"), false))), is_none(f("o"), true));
        assert_eq!(push_not(not(is_none(f("o"), true))), is_none(f("o"), false));
        assert_eq!(push_not(not(lit(true))), lit(false));
    }

    #[test]
    fn push_not_keeps_inexact_negations() {
        for leaf in [
            cmp(CmpOp::Lt, f("a"), lit(1.0)),
            cmp(CmpOp::Ge, f("a"), lit(1.0)),
            Expr::new(
                ExprKind::StrTest { op: StrOp::StartsWith, subject: Box::new(f("s")), pattern: Box::new(lit("m")) },
                Span::DUMMY,
            ),
            f("flag"),
        ] {
            assert_eq!(push_not(not(leaf.clone())), not(leaf));
        }
    }

    #[test]
    fn push_not_spans() {
        // `not (a == 1)` written at 0..12 becomes `a != 1` spanning the `not`.
        let e = Expr::new(ExprKind::Not(Box::new(Expr::cmp(CmpOp::Eq, f("a"), lit(1), sp(5, 11)))), sp(0, 12));
        assert_eq!(push_not(e).span, sp(0, 12));
        // Through De Morgan, each negated child keeps its own span.
        let e = Expr::new(
            ExprKind::Not(Box::new(Expr::new(
                ExprKind::And(vec![Expr::cmp(CmpOp::Lt, f("a"), lit(1), sp(5, 10)), f("b")]),
                sp(4, 20),
            ))),
            sp(0, 21),
        );
        let pushed = push_not(e);
        assert!(matches!(&pushed.kind, ExprKind::Or(items) if items[0].span == sp(5, 10)), "{pushed:?}");
    }

    #[test]
    fn simplify_removes_literals() {
        let a = eq(f("a"), lit(1));
        assert_eq!(simplify_constants(and(vec![a.clone(), lit(true)])), a);
        assert_eq!(simplify_constants(and(vec![a.clone(), lit(false)])), lit(false));
        assert_eq!(simplify_constants(or(vec![a.clone(), lit(true)])), lit(true));
        assert_eq!(simplify_constants(or(vec![a.clone(), lit(false)])), a);
        assert_eq!(simplify_constants(or(vec![and(vec![lit(true), lit(true)]), lit(false)])), lit(true));
    }

    #[test]
    fn flatten_merges_nested_junctions() {
        let (a, b, c) = (f("a"), f("b"), f("c"));
        assert_eq!(
            flatten(and(vec![a.clone(), and(vec![b.clone(), and(vec![c.clone()])])])),
            and(vec![a.clone(), b.clone(), c.clone()])
        );
        assert_eq!(flatten(or(vec![or(vec![a.clone()]), b.clone()])), or(vec![a.clone(), b.clone()]));
        // An or inside an and stays.
        let mixed = and(vec![a, or(vec![b, c])]);
        assert_eq!(flatten(mixed.clone()), mixed);
    }

    #[test]
    fn count_is_sum_of_products_and_saturates() {
        let ab = or(vec![f("a"), f("b")]);
        assert_eq!(count_disjuncts(&and(vec![ab.clone(), ab.clone(), f("c")])), 4);
        let huge = and(vec![ab.clone(); 200]);
        assert_eq!(count_disjuncts(&huge), usize::MAX);
        assert_eq!(count_disjuncts(&and(vec![huge, lit(false)])), 0);
    }

    #[test]
    fn distribute_builds_the_product_in_order() {
        let (a, b, c, d) = (f("a"), f("b"), f("c"), f("d"));
        let e = and(vec![or(vec![a.clone(), b.clone()]), or(vec![c.clone(), d.clone()])]);
        assert_eq!(
            distribute(e),
            vec![vec![a.clone(), c.clone()], vec![a.clone(), d.clone()], vec![b.clone(), c], vec![b, d]]
        );
        assert_eq!(distribute(lit(true)), vec![Vec::<Expr>::new()]);
        assert!(distribute(lit(false)).is_empty());
    }
}
