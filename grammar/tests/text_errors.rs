//! Text-form errors as the user sees them: kind, message, line, column and caret
//! (insta snapshots of `Errors::render`), plus the limits that keep the parser from
//! overflowing its stack.

use memdex_grammar::ErrorKind;
use memdex_grammar::text;

/// Parses `src`, which must fail, and renders every error.
fn rendered(src: &str) -> String {
    let result = text::parse(src);
    assert!(result.is_err(), "`{src}` parsed, but should fail: {result:?}");
    let errors = result.err().unwrap_or_default();
    format!("{src}\n{}\n", errors.render(src))
}

/// One snapshot per group of related errors.
fn check(name: &str, inputs: &[&str]) {
    let text: Vec<String> = inputs.iter().map(|s| rendered(s)).collect();
    insta::assert_snapshot!(name, text.join("\n"));
}

/// The kinds of the errors `src` produces, in order.
fn kinds(src: &str) -> Vec<ErrorKind> {
    text::parse(src).err().map(|e| e.0.into_iter().map(|e| e.kind).collect()).unwrap_or_default()
}

#[test]
fn syntax_errors() {
    check(
        "syntax_errors",
        &[
            "",
            "c.x == 1",
            "lambda: c.x == 1",
            "lambda c c.x == 1",
            "lambda c: ",
            "lambda c: c.x ==",
            "lambda c: (c.x == 1",
            "lambda c: c.x == 1)",
            "lambda c: c.x = 1",
            "lambda c: c.x == 1 && c.y == 2",
            "lambda c: !c.x",
            "lambda c: c.s == 'unterminated",
            "lambda c:\n  c.x == 1 and\n  c.y == ",
            "lambda c: c.x in (1, 2",
        ],
    );
}

#[test]
fn literal_errors() {
    check(
        "literal_errors",
        &[
            "lambda c: c.x == 9223372036854775808",
            "lambda c: c.x == -9223372036854775809",
            "lambda c: c.x == 007",
            r"lambda c: c.s == 'a\qb'",
            r"lambda c: c.s == '\x4'",
            r"lambda c: c.s == '\ud800'",
            "lambda c: c.x == 1abc",
        ],
    );
}

#[test]
fn lambda_parameter_errors() {
    check(
        "lambda_parameter_errors",
        &["lambda c: c", "lambda c: c == 1", "lambda c: c.a.b == 1", "lambda c, d: c.x == d.x", "lambda c: c(1)"],
    );
}

#[test]
fn unsupported_errors() {
    check(
        "unsupported_errors",
        &[
            "lambda c: foo(c.x)",
            "lambda c: c.s.strip() == 'a'",
            "lambda c: c.x is 1",
            "lambda c: c.x < c.y < c.z",
            "lambda c: c.x == (1, 2)",
            "lambda c: x.y == 1",
            "lambda c: len(c.a, c.b) == 1",
            "lambda c: c.s.startswith('a', 1)",
            "lambda c: c.s.lower == 'a'",
            "lambda c: min(c.a, c.b) == 1",
        ],
    );
}

#[test]
fn all_errors_are_collected() {
    assert_eq!(
        kinds("lambda c: foo(c.x) and c.a.b == 1 and bar() and c"),
        vec![
            ErrorKind::Unsupported { name: "foo".into(), supported: unsupported_functions() },
            ErrorKind::LambdaParam { message: "`c.a.b` is a field of a field; only fields of `c` can be used".into() },
            ErrorKind::Unsupported { name: "bar".into(), supported: unsupported_functions() },
            ErrorKind::LambdaParam {
                message: "`c` is the lambda parameter; use one of its fields, like `c.name`".into()
            },
        ]
    );
}

fn unsupported_functions() -> String {
    "`len(s)`, `ieq(a, b)`, `count()`, `sum(x)`, `min(x)`, `max(x)`, `avg(x)`".into()
}

/// Nesting is bounded: up to the limit parses, one more level is a syntax error
/// (not a stack overflow), in brackets and in bracket-free operator chains alike.
#[test]
fn depth_limits() {
    let nested = |n: usize| format!("lambda c: {}c.x{} == 1", "(".repeat(n), ")".repeat(n));
    assert!(text::parse(&nested(text::MAX_NESTING)).is_ok());
    assert!(matches!(kinds(&nested(text::MAX_NESTING + 1)).as_slice(), [ErrorKind::Syntax { .. }]));
    assert!(matches!(kinds(&nested(200)).as_slice(), [ErrorKind::Syntax { .. }]));
    assert!(matches!(kinds(&nested(20_000)).as_slice(), [ErrorKind::Syntax { .. }]));
    // Brackets inside strings do not count.
    assert!(text::parse(&format!("lambda c: c.s == '{}'", "(".repeat(1000))).is_ok());

    let sum = |n: usize| format!("lambda c: c.x{} == 1", " + 1".repeat(n));
    assert!(text::parse(&sum(text::MAX_DEPTH - 3)).is_ok());
    assert!(matches!(kinds(&sum(20_000)).as_slice(), [ErrorKind::Syntax { .. }]));
    let nots = |n: usize| format!("lambda c: {}c.b", "not ".repeat(n));
    assert!(text::parse(&nots(text::MAX_DEPTH - 1)).is_ok());
    assert!(matches!(kinds(&nots(20_000)).as_slice(), [ErrorKind::Syntax { .. }]));
    let negs = |n: usize| format!("lambda c: {}c.x == 1", "-".repeat(n));
    assert!(matches!(kinds(&negs(20_000)).as_slice(), [ErrorKind::Syntax { .. }]));
    // Wide is fine: a flat `and` of many operands is one node.
    let wide = format!("lambda c: c.x == 1{}", " and c.x == 1".repeat(20_000));
    assert!(text::parse(&wide).is_ok());
}

#[test]
fn depth_error_message() {
    check("depth_error_message", &[&format!("lambda c: {}c.x{} == 1", "(".repeat(65), ")".repeat(65))]);
}

/// An error on a line other than the last shows that line alone, with its caret.
#[test]
fn an_error_on_an_earlier_line_shows_that_line() {
    let src = "lambda c: c.x ==\n  and c.y == 1\n  # the end";
    let rendered = text::parse(src).err().unwrap_or_default().render(src);
    assert!(rendered.contains("--> line 2, column 3"), "{rendered}");
    assert!(rendered.contains("2 |   and c.y == 1\n"), "{rendered}");
    assert!(!rendered.contains("the end"), "{rendered}");
}

/// A span that does not fall on a character boundary (a caller's own span over
/// multi-byte text) renders from the boundary before it instead of panicking.
#[test]
fn a_span_inside_a_character_renders_without_panicking() {
    use memdex_grammar::{Error, Errors, Span};
    let src = "lambda c: c.name == 'é'";
    let inside = src.find('é').map_or(0, |at| at + 1);
    let error = Error::new(ErrorKind::Syntax { expected: "x".into() }, Span::new(inside, inside + 1));
    let errors = Errors::from(error);
    assert!(!errors.is_empty() && Errors::default().is_empty());
    let rendered = errors.render(src);
    // The caret starts at the character the span falls inside (column 22), not after it.
    assert!(rendered.contains("--> line 1, column 22\n"), "{rendered}");
    assert!(rendered.contains("^"), "{rendered}");
    assert_eq!(Errors::from(Error::new(ErrorKind::Syntax { expected: "x".into() }, Span::new(0, 1))).iter().count(), 1);
}
