//! Unit tests of the lowering (Rust syntax → IR) and snapshots of expansions.

// Tests fail by panicking, with a message saying what went wrong.
#![allow(clippy::panic)]

use memdex_grammar::Value;
use memdex_grammar::ir::{Expr, ExprKind, Lambda};
use quote::quote;

use crate::lower::{BodyKind, Lowering};

/// Lowers `|c| body` and prints the IR without spans, plus the captured parameters.
fn lower(src: &str) -> Result<(Expr, Vec<String>), String> {
    let expr: syn::Expr = syn::parse_str(src).map_err(|e| e.to_string())?;
    let mut l = Lowering::new();
    let lambda = l.closure(&expr, "|c| …").and_then(|c| l.lambda(&c, BodyKind::Filter));
    if let Some(e) = l.take_errors() {
        return Err(e.into_iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"));
    }
    let lambda: Lambda = lambda.ok_or("no lambda")?;
    let params = l.params.iter().map(|p| crate::text::tokens(quote::ToTokens::to_token_stream(&p.expr))).collect();
    Ok((lambda.body.without_spans(), params))
}

/// Compact IR printing for expectations.
fn show(e: &Expr) -> String {
    let args = |v: Vec<&Expr>| v.into_iter().map(show).collect::<Vec<_>>().join(", ");
    match &e.kind {
        ExprKind::Field(f) => format!(".{f}"),
        ExprKind::Lit(Value::Text(s)) => format!("{s:?}"),
        ExprKind::Lit(v) => format!("{v}"),
        ExprKind::Param(p) => format!("${p}"),
        ExprKind::Not(x) => format!("Not({})", show(x)),
        ExprKind::Neg(x) => format!("Neg({})", show(x)),
        ExprKind::And(v) => format!("And({})", args(v.iter().collect())),
        ExprKind::Or(v) => format!("Or({})", args(v.iter().collect())),
        ExprKind::Cmp { op, lhs, rhs } => format!("({} {} {})", show(lhs), op.symbol(), show(rhs)),
        ExprKind::Arith { op, lhs, rhs } => format!("({} {} {})", show(lhs), op.symbol(), show(rhs)),
        ExprKind::StrTest { op, subject, pattern } => format!("{op:?}({}, {})", show(subject), show(pattern)),
        ExprKind::Lower(x) => format!("Lower({})", show(x)),
        ExprKind::IEq(a, b) => format!("IEq({}, {})", show(a), show(b)),
        ExprKind::Len(x) => format!("Len({})", show(x)),
        ExprKind::In { needle, haystack } => match haystack {
            memdex_grammar::ir::Haystack::Items(items) => {
                format!("In({}, [{}])", show(needle), args(items.iter().collect()))
            }
            memdex_grammar::ir::Haystack::Param(p) => format!("In({}, ${p})", show(needle)),
        },
        ExprKind::IsNull { expr, negated } => format!("IsNull({}, negated: {negated})", show(expr)),
        ExprKind::Agg { func, arg } => {
            format!("{}({})", func.name(), arg.as_ref().map(|a| show(a)).unwrap_or_default())
        }
    }
}

fn check(src: &str, expect: &str) {
    match lower(src) {
        Ok((e, params)) => {
            let mut got = show(&e);
            if !params.is_empty() {
                got.push_str(&format!("  where {}", params.join(", ")));
            }
            assert_eq!(got, expect, "lowering {src}");
        }
        Err(err) => panic!("lowering {src} failed: {err}"),
    }
}

fn check_err(src: &str, expect: &str) {
    match lower(src) {
        Ok((e, _)) => panic!("lowering {src} should fail, gave {}", show(&e)),
        Err(err) => assert_eq!(err, expect, "lowering {src}"),
    }
}

#[test]
fn language_table_rows() {
    check("|c| c.category_id == 5", "(.category_id == 5)");
    check("|c| c.a != 1 && c.b < 2 && c.c <= 3", "And((.a != 1), (.b < 2), (.c <= 3))");
    check("|c| c.a > 1 || c.b >= 2 || !c.flag", "Or((.a > 1), (.b >= 2), Not(.flag))");
    check("|c| (c.a == 1 && c.b == 2) && c.c == 3", "And(And((.a == 1), (.b == 2)), (.c == 3))");
    check("|c| c.a == 1 || c.b == 2 && c.c == 3", "Or((.a == 1), And((.b == 2), (.c == 3)))");
    check("|c| c.s.starts_with(\"m\")", "StartsWith(.s, \"m\")");
    check("|c| c.s.ends_with(x)", "EndsWith(.s, $p0)  where x");
    check("|c| c.s.contains('%')", "Contains(.s, \"%\")");
    check("|c| c.s.eq_ignore_ascii_case(&name)", "IEq(.s, $p0)  where name");
    check("|c| c.s.to_lowercase() == \"x\"", "(Lower(.s) == \"x\")");
    check("|c| c.s.len() > 3", "(Len(.s) > 3)");
    check("|c| [1, 2].contains(&c.x)", "In(.x, [1, 2])");
    check("|c| [a, -2].contains(&c.x)", "In(.x, [$p0, -2])  where a");
    check("|c| ids.contains(&c.x)", "In(.x, $p0)  where ids");
    check("|c| c.o.is_none()", "IsNull(.o, negated: false)");
    check("|c| c.o.is_some()", "IsNull(.o, negated: true)");
    check("|c| c.o == Some(v)", "(.o == $p0)  where v");
    check("|c| c.o == Some(3)", "(.o == 3)");
    check("|c| c.o == None", "(.o == None)");
    check("|c| c.a + 1 - c.b * 2 / 3 % 4 == 0", "(((.a + 1) - (((.b * 2) / 3) % 4)) == 0)");
    check("|c| -c.a == -5", "(Neg(.a) == -5)");
    // A negated constant in parentheses mentions no field: it is a captured value.
    check("|c| c.a == -(5)", "(.a == Neg(5))");
    check("|c| c.a == -9223372036854775808", "(.a == -9223372036854775808)");
    check("|c| c.price > 10.0", "(.price > 10.0)");
    check("|c| c.flag == true", "(.flag == True)");
    check("|c| c.r#type == 1", "(.type == 1)");
}

#[test]
fn captured_values_are_parameters() {
    check("|c| c.category_id == cat && c.price > 10.0", "And((.category_id == $p0), (.price > 10.0))  where cat");
    check("|c| c.a == self.limit", "(.a == $p0)  where self.limit");
    check("|c| c.a == x + 1", "(.a == $p0)  where x + 1");
    check("|c| c.a == cfg.a.b", "(.a == $p0)  where cfg.a.b");
    check("|c| c.s == &name", "(.s == $p0)  where name");
    check("|c| c.a == f(x) && flag", "And((.a == $p0), $p1)  where f(x), flag");
    check("|_| true", "True");
    check("|c| c.a == 1 && true", "And((.a == 1), True)");
}

#[test]
fn unsupported_syntax_is_an_error_at_the_subexpression() {
    let supported = crate::lower::SUPPORTED;
    check_err("|c| foo(c.x)", &format!("calling `foo` is not supported in a memdex query; supported: {supported}"));
    check_err(
        "|c| c.s.trim() == \"x\"",
        &format!("the method `trim` is not supported in a memdex query; supported: {supported}"),
    );
    check_err(
        "|c, d| c.x == 1",
        "a query closure takes exactly one parameter (the row); a second parameter is not supported",
    );
    check_err(
        "|c| c.a.b == 1",
        "a field of a field is not supported: a query reads the model's own columns (`c.field`)",
    );
    check_err(
        "|c| { let y = 1; c.x == y }",
        &format!("a block is not supported in a memdex query; supported: {supported}"),
    );
    check_err(
        "|c| if c.x { c.y == 1 } else { false }",
        &format!("`if` (use `&&`, `||` and `!`) is not supported in a memdex query; supported: {supported}"),
    );
    check_err("|c| c == other", "the closure parameter `c` can only be used to read a field, like `c.field`");
    check_err(
        "|c| c.a & 1 == 1",
        &format!("the operator `&` is not supported in a memdex query; supported: {supported}"),
    );
    check_err(
        "|c| \"abc\".contains(&c.s)",
        "a field as the pattern of a literal's `contains` is not supported; to test a field's content, write `c.field.contains(…)`",
    );
    check_err("|c| c.s.starts_with()", "`starts_with` takes one argument");
    check_err(
        "|c| avg(c.x) > 1",
        "aggregates (count, sum, avg, min, max) can only be the whole body of view!'s last closure",
    );
    check_err(
        "|c| c.x == 1 && c.s.trim() == \"\" && bar(c.y)",
        &format!(
            "the method `trim` is not supported in a memdex query; supported: {supported}\n\
         calling `bar` is not supported in a memdex query; supported: {supported}"
        ),
    );
    check_err("x", "expected a closure, like `|c| …`");
}

fn pretty(ts: proc_macro2::TokenStream) -> String {
    // Expansions are long; one line per statement-ish token keeps snapshots readable.
    crate::text::tokens(ts)
}

#[test]
fn derive_expansion() {
    let out = crate::derive_model_inner(quote! {
        #[memdex(table = "item")]
        #[memdex(index(cart_id, status))]
        #[memdex(index(cart_id, order_by = price desc))]
        pub struct Item {
            #[memdex(key)] pub id: i64,
            #[memdex(index)] pub category_id: i64,
            #[memdex(index(prefix = 1))] pub first_name: String,
            #[memdex(column = "cost")] pub price: f64,
            pub deleted_at: Option<i64>,
            pub cart_id: i32,
            pub status: String,
        }
    })
    .expect("valid model");
    insta::assert_snapshot!(pretty(out));
}

#[test]
fn select_expansion() {
    let out = crate::select_inner(quote!(Item, |c| c.category_id == cat && c.price > 10.0)).expect("valid query");
    insta::assert_snapshot!(pretty(out));
}

#[test]
fn scan_expansion() {
    let out = crate::scan_inner(quote!(Item, |c| [1, 2].contains(&c.id) || ids.contains(&c.cart_id))).expect("valid");
    insta::assert_snapshot!(pretty(out));
}

#[test]
fn view_expansion() {
    let out = crate::view_inner(quote!(Master, |m| m.team == team, |m| avg(m.runs))).expect("valid");
    insta::assert_snapshot!(pretty(out));
    let out = crate::view_inner(quote!(Master, |m| count())).expect("valid");
    insta::assert_snapshot!("view_count", pretty(out));
}

#[test]
fn table_name_defaults_to_snake_case() {
    for (name, table) in
        [("Item", "item"), ("OrderLine", "order_line"), ("HTTPRequest", "http_request"), ("A1B", "a1_b")]
    {
        assert_eq!(crate::derive::snake_case(name), table);
    }
}

#[test]
fn derive_errors_are_combined() {
    let err = crate::derive::derive_errors(quote! {
        #[memdex(tabel = "x")]
        #[memdex(index(a, missing))]
        #[memdex(index(n, order_by = n))]
        #[memdex(index(n, order_by = nope))]
        #[memdex(index(n, order_by = t sideways))]
        #[memdex(index(n, order_by = t, order_by = a))]
        #[memdex(index(s, order_by = t))]
        #[memdex(index(s, order_by = t desc))]
        struct M {
            #[memdex(key)] a: i64,
            #[memdex(key)] b: i64,
            #[memdex(index(prefix = 2))] n: i64,
            #[memdex(index(prefix = 0))] s: String,
            #[memdex(indx)] t: u64,
        }
    })
    .expect_err("invalid model");
    let messages: Vec<String> = err.into_iter().map(|e| e.to_string()).collect();
    insta::assert_debug_snapshot!(messages);
}

/// After a mistake the derive emits its errors and a fallback impl, so that code
/// using the model adds no errors of its own: the key keeps its field's type, the
/// handles and `FIELDS` the fields', and `INDEXES` serves every disjunct.
#[test]
fn derive_fallback_expansion() {
    let out = crate::derive_model_inner(quote! {
        #[memdex(tabel = "item")]
        pub struct Item {
            #[memdex(key)] pub id: i64,
            #[memdex(indx)] pub category_id: i64,
            pub price: f64,
        }
    })
    .expect("an item with attribute errors still expands");
    insta::assert_snapshot!(pretty(out));
}
