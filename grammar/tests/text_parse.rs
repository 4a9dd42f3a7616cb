//! Every row of DESIGN.md's language table, parsed from text: the IR tree with each
//! node's span shown as the source text it covers (insta snapshots).

use memdex_grammar::ir::{Expr, ExprKind, Haystack};
use memdex_grammar::text;

/// An indented tree: one node per line, its kind and the source text its span covers.
fn tree(src: &str, e: &Expr, depth: usize, out: &mut String) {
    let covered = src.get(e.span.range()).unwrap_or("<span out of range>");
    let label = match &e.kind {
        ExprKind::Field(f) => format!("Field({f})"),
        ExprKind::Lit(v) => format!("Lit({v:?})"),
        ExprKind::Param(p) => format!("Param({p})"),
        ExprKind::Not(_) => "Not".into(),
        ExprKind::Neg(_) => "Neg".into(),
        ExprKind::And(_) => "And".into(),
        ExprKind::Or(_) => "Or".into(),
        ExprKind::Cmp { op, .. } => format!("Cmp({op:?})"),
        ExprKind::Arith { op, .. } => format!("Arith({op:?})"),
        ExprKind::StrTest { op, .. } => format!("StrTest({op:?})"),
        ExprKind::Lower(_) => "Lower".into(),
        ExprKind::IEq(..) => "IEq".into(),
        ExprKind::Len(_) => "Len".into(),
        ExprKind::In { haystack: Haystack::Items(_), .. } => "In(Items)".into(),
        ExprKind::In { haystack: Haystack::Param(p), .. } => format!("In(Param({p}))"),
        ExprKind::IsNull { negated, .. } => format!("IsNull(negated: {negated})"),
        ExprKind::Agg { func, .. } => format!("Agg({func:?})"),
    };
    out.push_str(&format!("{}{label}  `{covered}`\n", "  ".repeat(depth)));
    for c in e.children() {
        tree(src, c, depth + 1, out);
    }
}

/// Parses `src` and renders the lambda as a tree.
fn render(src: &str) -> String {
    match text::parse(src) {
        Ok(l) => {
            let mut out = format!("{src}\nparam `{}` at `{}`\n", l.param, &src[l.param_span.range()]);
            tree(src, &l.body, 0, &mut out);
            out
        }
        Err(e) => format!("{src}\nERROR\n{}\n", e.render(src)),
    }
}

/// One snapshot per feature: every input of the feature, each with its tree.
fn check(name: &str, inputs: &[&str]) {
    let text: Vec<String> = inputs.iter().map(|s| render(s)).collect();
    insta::assert_snapshot!(name, text.join("\n"));
}

#[test]
fn comparisons() {
    check(
        "comparisons",
        &[
            "lambda c: c.x == 1",
            "lambda c: c.x != 1",
            "lambda c: c.x < 1",
            "lambda c: c.x <= 1",
            "lambda c: c.x > 1",
            "lambda c: c.x >= 1",
            "lambda c: 1 == c.x",
            "lambda c: c.a == c.b",
        ],
    );
}

#[test]
fn boolean_operators() {
    check(
        "boolean_operators",
        &[
            "lambda c: c.a and c.b and c.c",
            "lambda c: c.a or c.b or c.c",
            "lambda c: not c.a",
            "lambda c: not not c.a",
            "lambda c: c.a or c.b and c.c",
            "lambda c: (c.a and c.b) and c.c",
            "lambda c: c.a and (c.b or c.c)",
            "lambda c: not c.x == 1",
            "lambda c: c.x == 1 and c.y == 2 or c.z == 3",
        ],
    );
}

#[test]
fn string_tests() {
    check(
        "string_tests",
        &[
            "lambda c: c.s.startswith('m')",
            "lambda c: c.s.endswith(\"m\")",
            "lambda c: \"_\" in c.s",
            "lambda c: p in c.s",
            "lambda c: 'a' not in c.s",
            "lambda c: 'a' in c.s.lower()",
            "lambda c: c.s.lower().startswith(p)",
            "lambda c: p.lower() == c.s",
            "lambda c: p.startswith(c.s)",
        ],
    );
}

#[test]
fn case_insensitive_and_length() {
    check(
        "case_insensitive_and_length",
        &[
            "lambda c: ieq(c.s, x)",
            "lambda c: c.s.lower() == 'abc'",
            "lambda c: len(c.s) > 3",
            "lambda c: len(c.s.lower()) == 0",
        ],
    );
}

#[test]
fn membership() {
    check(
        "membership",
        &[
            "lambda c: c.x in (1, 2)",
            "lambda c: c.x in [1, 2]",
            "lambda c: c.x in (1,)",
            "lambda c: c.x in ()",
            "lambda c: c.x in [a, -3, 'z',]",
            "lambda c: c.x in ids",
            "lambda c: c.x in (ids)",
            "lambda c: c.x not in ids",
            "lambda c: c.x not in (1, 2)",
        ],
    );
}

#[test]
fn null_tests() {
    check(
        "null_tests",
        &["lambda c: c.o is None", "lambda c: c.o is not None", "lambda c: not c.o is None", "lambda c: c.o == None"],
    );
}

#[test]
fn arithmetic() {
    check(
        "arithmetic",
        &[
            "lambda c: c.a + c.b * c.c > 1",
            "lambda c: (c.a + c.b) * c.c > 1",
            "lambda c: c.a - c.b - c.c == 0",
            "lambda c: c.a - (c.b - c.c) == 0",
            "lambda c: c.a / 2 % 3 == 1",
            "lambda c: -c.a < 0",
            "lambda c: - -c.a < 0",
            "lambda c: -c.a * 2 < 0",
            "lambda c: -(5) < c.a",
        ],
    );
}

#[test]
fn literals() {
    check(
        "literals",
        &[
            "lambda c: c.x == 0",
            "lambda c: c.x == 1_000",
            "lambda c: c.x == -5",
            "lambda c: c.x == 9223372036854775807",
            "lambda c: c.x == -9223372036854775808",
            "lambda c: c.x == 1.5",
            "lambda c: c.x == 1.",
            "lambda c: c.x == .5",
            "lambda c: c.x == 1e3",
            "lambda c: c.x == 2.5E-3",
            "lambda c: c.x == 1e999",
            "lambda c: c.x == -0.0",
            "lambda c: c.x == True",
            "lambda c: c.x == False",
            "lambda c: c.x == None",
            r#"lambda c: c.s == "it's""#,
            r#"lambda c: c.s == "a\n\t\\\'\"b""#,
            r#"lambda c: c.s == '\x41\u00e9\U0001F600\0'"#,
            "lambda c: c.s == 'héllo ✓'",
            "lambda c: c.s == ''",
        ],
    );
}

#[test]
fn params_and_aggregates() {
    check(
        "params_and_aggregates",
        &[
            "lambda c: c.category_id == cat",
            "lambda m: avg(m.runs)",
            "lambda m: count()",
            "lambda m: sum(m.a * 2)",
            "lambda m: min(m.a)",
            "lambda m: max(m.a)",
            "lambda élève: élève.nom == nom_donné",
            "lambda c:\n    c.x == 1\n    and c.y == 2",
            "lambda c: c.category_id == cat and c.price > 10.0 and c.first_name.startswith(\"m\")",
        ],
    );
}
