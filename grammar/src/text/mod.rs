//! The text form: Python lambda syntax, parsed with the pest grammar in
//! `lambda.pest`, lowered to [`crate::ir::Lambda`] with byte spans. The common
//! queries take a hand-written fast path (`text/fast.rs`) that builds the same `Lambda`
//! and leaves everything else, every error included, to the grammar.
//!
//! * `parse(src)` accepts exactly the language table of DESIGN.md in Python spelling:
//!   `lambda c: c.category_id in (2, 5) and not c.first_name.startswith("m")`,
//!   `lambda m: avg(m.runs)`, `c.o is None`, `c.o is not None`, `"_" in c.name`,
//!   `ieq(c.s, x)`, `len(c.s)`, `c.s.lower()`, `c.x in ids`, literals (ints, floats,
//!   single/double-quoted strings with escapes, True/False/None), free names → Param.
//! * Field references resolve against the lambda parameter: the body contains
//!   `ExprKind::Field`; another bare name is a `Param`; `c` used bare, `c.a.b`, or a
//!   second lambda parameter are `ErrorKind::LambdaParam` at that span.
//! * Unknown functions/methods are `ErrorKind::Unsupported` at that span.
//! * Syntax errors are `ErrorKind::Syntax` with what was expected and the span of the
//!   offending position. Never panics, on any input.
//!
//! Decisions where Python and this language part ways:
//!
//! * `-` directly before a number literal is folded into the literal (`-5` is
//!   `Lit(-5)`, not `Neg(Lit(5))`), as Python's constant folding does; this is what
//!   makes `-9223372036854775808` (`i64::MIN`) writable. `-(5)` stays a negation.
//! * An integer literal outside `i64` is a syntax error. A float literal too large for
//!   `f64` is infinity (`1e999`), as in Python; NaN has no literal.
//! * `x in y` is a membership test when `y` is a tuple or list display
//!   (`c.x in (1, 2)`, `c.x in [1]`, `c.x in ()`) or a bare free name (`c.x in ids`),
//!   and a substring test (`StrTest::Contains`) otherwise (`"m" in c.name`).
//! * `x not in y` is `Not(x in y)`; comparisons do not chain (`a < b < c` is an error,
//!   because Rust has no such thing and the two forms accept the same language).
//! * Parentheses only group: `(a and b) and c` keeps its inner `And`; only an
//!   unparenthesised chain is flattened into one n-ary node.

mod fast;

use std::borrow::Cow;

use pest::Parser as _;
use pest::iterators::Pair;

use crate::error::{Error, ErrorKind, Errors};
use crate::ir::{AggFunc, ArithOp, CmpOp, Expr, ExprKind, Haystack, Lambda, StrOp};
use crate::span::Span;
use crate::value::Value;

/// How deeply brackets may nest. pest recurses through every precedence level for
/// each bracket, so this bounds its stack use (checked before pest runs).
pub const MAX_NESTING: usize = 64;

/// How deep the lowered expression tree may be. Long operator chains (`1 + 1 + …`,
/// `not not …`) nest without brackets; every later phase walks the tree recursively,
/// so its depth is bounded here rather than by luck.
pub const MAX_DEPTH: usize = 200;

/// The pest parser, in a module of its own so that the `Rule` enum pest_derive
/// generates (public, undocumented, one variant per grammar rule) stays private.
mod grammar {
    #[derive(pest_derive::Parser)]
    #[grammar = "text/lambda.pest"]
    pub(super) struct LambdaParser;
}

use grammar::{LambdaParser, Rule};

/// Parses `lambda <param>: <body>`.
///
/// The common queries are read by the hand-written fast path (`text/fast.rs`); whatever it does
/// not fully understand (every error among it) goes to the pest grammar, which
/// stays the authority for the language and for every error message. Both build
/// the same [`Lambda`], spans included (tested differentially in
/// `grammar/tests/text_fast_path.rs`).
///
/// # Errors
///
/// Syntax errors and constructs outside the language, each with its span (render
/// them with [`Errors::render`]); brackets nested deeper than [`MAX_NESTING`] or a
/// tree deeper than [`MAX_DEPTH`].
///
/// ```
/// use memdex_grammar::ir::ExprKind;
/// use memdex_grammar::text;
///
/// let lambda = text::parse("lambda c: c.first_name.startswith('m') and c.id in ids")?;
/// assert_eq!(lambda.param, "c");
/// assert!(matches!(lambda.body.kind, ExprKind::And(ref parts) if parts.len() == 2));
///
/// let source = "lambda c: c.price >";
/// let errors = text::parse(source).unwrap_err();
/// assert!(errors.render(source).starts_with("error: syntax error: expected"));
/// # Ok::<(), memdex_grammar::Errors>(())
/// ```
pub fn parse(src: &str) -> Result<Lambda, Errors> {
    check_nesting(src)?;
    if let Some(lambda) = fast::parse(src) {
        return Ok(lambda);
    }
    parse_pest(src)
}

/// [`parse`] through the pest grammar alone, without the fast path: the reference
/// the fast path is tested against.
///
/// # Errors
///
/// As [`parse`]'s: both give the same errors, since `parse` leaves every error to pest.
pub fn parse_with_pest(src: &str) -> Result<Lambda, Errors> {
    check_nesting(src)?;
    parse_pest(src)
}

/// The fast path alone: `Some` exactly when it reads `src` completely, and then the
/// same [`Lambda`] as [`parse_with_pest`]; `None` (decline) for everything else.
/// For tests and benchmarks; [`parse`] is the entry point.
pub fn parse_fast(src: &str) -> Option<Lambda> {
    check_nesting(src).ok()?;
    fast::parse(src)
}

/// The pest grammar and the lowering of its pairs (nesting already checked).
fn parse_pest(src: &str) -> Result<Lambda, Errors> {
    let mut pairs = LambdaParser::parse(Rule::lambda, src).map_err(|e| syntax_error(src, &e))?;
    // The `lambda` rule matched, so there is exactly one pair for it.
    let Some(lambda) = pairs.next() else {
        return Err(Errors::one(Error::new(syntax("a lambda"), Span::new(0, src.len()))));
    };
    let span = span_of(&lambda);
    let mut param = None;
    let mut body = None;
    let mut lowerer = Lowerer { param: "", errors: Errors::default() };
    for pair in lambda.into_inner() {
        match pair.as_rule() {
            Rule::params => {
                let mut names = pair.into_inner().filter(|p| p.as_rule() == Rule::ident);
                if let Some(first) = names.next() {
                    lowerer.param = first.as_str();
                    param = Some((first.as_str().to_owned(), span_of(&first)));
                }
                for extra in names {
                    lowerer.errors.push(
                        Error::new(
                            ErrorKind::LambdaParam {
                                message: format!(
                                    "a query lambda takes one parameter; `{}` is a second one",
                                    extra.as_str()
                                ),
                            },
                            span_of(&extra),
                        )
                        .with_hint("bind other values by name: free names in the body are parameters"),
                    );
                }
            }
            Rule::expr => body = Some(lowerer.expr(pair)),
            _ => {}
        }
    }
    match (param, body) {
        (Some((param, param_span)), Some(body)) => {
            lowerer.errors.into_result(Lambda { param, param_span, body: body.expr, span })
        }
        // The grammar requires both; this is only reachable if it changes.
        _ => Err(Errors::one(Error::new(syntax("`lambda <name>: <expression>`"), span))),
    }
}

fn syntax(expected: impl Into<String>) -> ErrorKind {
    ErrorKind::Syntax { expected: expected.into() }
}

/// The pair's span without trailing whitespace: pest's implicit whitespace after the
/// last operand of a repetition ends up inside the enclosing pair.
fn span_of(pair: &Pair<'_, Rule>) -> Span {
    let s = pair.as_span();
    Span::new(s.start(), s.start() + s.as_str().trim_end().len())
}

/// Rejects bracket nesting deeper than [`MAX_NESTING`] before pest sees the text.
/// String literals are skipped so that `"((("` is not counted.
fn check_nesting(src: &str) -> Result<(), Errors> {
    // The depth never exceeds the number of opening brackets: a query with few of
    // them (every common one) needs no scan of its strings.
    if src.bytes().filter(|&b| b == b'(' || b == b'[').count() <= MAX_NESTING {
        return Ok(());
    }
    // Bytes, not chars: every byte this looks for is ASCII, and no byte of a
    // multi-byte UTF-8 character is (an escaped one's later bytes are skipped as
    // ordinary string content), so `i` is the same byte offset either way.
    let mut depth = 0usize;
    let mut quote: Option<u8> = None;
    let mut escaped = false;
    for (i, &b) in src.as_bytes().iter().enumerate() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == q || b == b'\n' {
                quote = None;
            }
            continue;
        }
        match b {
            b'"' | b'\'' => quote = Some(b),
            b'(' | b'[' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(Errors::one(
                        Error::new(
                            syntax(format!("at most {MAX_NESTING} levels of nested brackets")),
                            Span::new(i, i + 1),
                        )
                        .with_hint("split the query or use fewer parentheses"),
                    ));
                }
            }
            b')' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// Turns pest's failure into one `Syntax` error naming, in words, what would have
/// been accepted where the text stopped making sense.
fn syntax_error(src: &str, e: &pest::error::Error<Rule>) -> Errors {
    let pos = match e.location {
        pest::error::InputLocation::Pos(p) => p,
        pest::error::InputLocation::Span((s, _)) => s,
    };
    let mut words: Vec<&'static str> = Vec::new();
    if let pest::error::ErrorVariant::ParsingError { positives, .. } = &e.variant {
        for rule in positives {
            let w = rule_words(*rule);
            if !words.contains(&w) {
                words.push(w);
            }
        }
    }
    // "an expression" already covers every way an expression can start.
    if words.contains(&"an expression") {
        words.retain(|w| !matches!(*w, "`-`" | "`not`" | "a name" | "`(`" | "`[`" | "a number" | "a string"));
        words.retain(|w| *w != "an expression");
        words.insert(0, "an expression");
    }
    words.sort_by_key(|w| WORD_ORDER.iter().position(|o| o == w).unwrap_or(WORD_ORDER.len()));
    let mut expected = if words.is_empty() { "something else".to_owned() } else { join_or(&words) };
    let rest = src.get(pos..).unwrap_or("");
    // pest gives up on an unterminated string at its opening quote.
    if let Some(quote) = rest.chars().next().filter(|c| matches!(c, '"' | '\''))
        && words.contains(&"an expression")
    {
        expected = format!("a closing {quote} before the end of the line");
    }
    let end = offending_end(src, pos);
    let mut error = Error::new(syntax(expected), Span::new(pos, end));
    if let Some(hint) = rust_spelling_hint(&src[pos.min(src.len())..]) {
        error = error.with_hint(hint);
    }
    Errors::one(error)
}

/// The order "expected" words are listed in: what starts a term, then what
/// continues one, then what ends the query.
const WORD_ORDER: &[&str] = &[
    "`lambda`",
    "a name",
    "an expression",
    "an operator",
    "`.`",
    "`(`",
    "`,`",
    "`:`",
    "`)`",
    "`]`",
    "`and`",
    "`or`",
    "end of input",
];

/// The words used for a rule in "expected …" messages.
fn rule_words(rule: Rule) -> &'static str {
    match rule {
        Rule::expr
        | Rule::or_expr
        | Rule::and_expr
        | Rule::not_expr
        | Rule::comparison
        | Rule::sum
        | Rule::product
        | Rule::unary
        | Rule::postfix
        | Rule::primary
        | Rule::kw_true
        | Rule::kw_false
        | Rule::kw_none => "an expression",
        Rule::number | Rule::float | Rule::int | Rule::digits => "a number",
        Rule::string => "a string",
        Rule::ident | Rule::params => "a name",
        Rule::comp_op
        | Rule::eq
        | Rule::ne
        | Rule::le
        | Rule::ge
        | Rule::lt
        | Rule::gt
        | Rule::not_in
        | Rule::kw_in
        | Rule::is_not
        | Rule::kw_is
        | Rule::sum_op
        | Rule::plus
        | Rule::minus
        | Rule::prod_op
        | Rule::star
        | Rule::slash
        | Rule::percent => "an operator",
        Rule::neg => "`-`",
        Rule::attribute | Rule::dot => "`.`",
        Rule::call | Rule::lparen | Rule::parens => "`(`",
        Rule::rparen => "`)`",
        Rule::list | Rule::lbracket => "`[`",
        Rule::rbracket => "`]`",
        Rule::comma => "`,`",
        Rule::colon => "`:`",
        Rule::kw_lambda | Rule::lambda => "`lambda`",
        Rule::kw_and => "`and`",
        Rule::kw_or => "`or`",
        Rule::kw_not => "`not`",
        Rule::EOI => "end of input",
        Rule::keyword => "a keyword",
        Rule::exponent => "an exponent",
        Rule::dq_chars | Rule::sq_chars => "a closing quote",
        Rule::WHITESPACE => "a space",
        Rule::ident_char => "a letter or digit",
    }
}

fn join_or(words: &[&str]) -> String {
    match words {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// Where the offending token ends: a whole word, a whole string or one character,
/// so the caret underlines what the reader will recognise.
fn offending_end(src: &str, pos: usize) -> usize {
    let Some(rest) = src.get(pos..) else { return src.len() };
    let mut chars = rest.char_indices();
    let Some((_, first)) = chars.next() else { return pos };
    if first.is_alphanumeric() || first == '_' {
        let len = rest.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(rest.len());
        return pos + len;
    }
    pos + first.len_utf8()
}

/// Rust spellings that people will type into the Python form.
fn rust_spelling_hint(rest: &str) -> Option<&'static str> {
    let rest = rest.trim_start();
    if rest.starts_with("&&") {
        Some("the text form spells `&&` as `and`")
    } else if rest.starts_with("||") {
        Some("the text form spells `||` as `or`")
    } else if rest.starts_with('!') && !rest.starts_with("!=") {
        Some("the text form spells `!` as `not`")
    } else if rest.starts_with('=') && !rest.starts_with("==") {
        Some("equality is `==`")
    } else if rest.starts_with('|') {
        Some("the text form is a Python lambda: `lambda c: …`")
    } else {
        None
    }
}

/// A lowered expression and the depth of its tree, tracked so that depth is bounded
/// without walking the tree again.
struct Lowered {
    expr: Expr,
    depth: usize,
}

struct Lowerer<'i> {
    /// The lambda parameter's name.
    param: &'i str,
    errors: Errors,
}

/// What a postfix chain's head and attributes amount to before calls are applied.
enum Head<'i> {
    /// A complete expression.
    Value(Lowered),
    /// `c` itself (only valid when followed by `.field`).
    LambdaParam(Span),
    /// A bare free name that may still be called: `len`, `ieq`, `avg`, … or `ids`.
    Name(&'i str, Span),
    /// `<receiver>.<method>` waiting for its call.
    Method { receiver: Lowered, name: &'i str, span: Span },
}

const FUNCTIONS: &str = "`len(s)`, `ieq(a, b)`, `count()`, `sum(x)`, `min(x)`, `max(x)`, `avg(x)`";
const METHODS: &str = "`.startswith(s)`, `.endswith(s)`, `.lower()`";

impl<'i> Lowerer<'i> {
    fn error(&mut self, kind: ErrorKind, span: Span) -> Lowered {
        self.errors.push(Error::new(kind, span));
        Self::placeholder(span)
    }

    fn error_with_hint(&mut self, kind: ErrorKind, span: Span, hint: impl Into<String>) -> Lowered {
        self.errors.push(Error::new(kind, span).with_hint(hint));
        Self::placeholder(span)
    }

    /// Stands in for a sub-expression that had an error, so lowering can go on and
    /// report the errors after it too. Never returned to callers: `parse` fails.
    fn placeholder(span: Span) -> Lowered {
        Lowered { expr: Expr::new(ExprKind::Lit(Value::Null), span), depth: 1 }
    }

    /// Builds a node over children of the given depths, or an error if the tree
    /// would become deeper than [`MAX_DEPTH`].
    fn node(&mut self, kind: ExprKind, span: Span, child_depth: usize) -> Lowered {
        let depth = child_depth + 1;
        if depth > MAX_DEPTH {
            // One error is enough: every enclosing node would repeat it.
            if self
                .errors
                .iter()
                .any(|e| matches!(&e.kind, ErrorKind::Syntax { expected } if expected.contains("levels deep")))
            {
                return Self::placeholder(span);
            }
            return self.error_with_hint(
                syntax(format!("an expression at most {MAX_DEPTH} levels deep")),
                span,
                "split long chains of operators, or bind a computed value as a parameter",
            );
        }
        Lowered { expr: Expr::new(kind, span), depth }
    }

    fn expr(&mut self, pair: Pair<'i, Rule>) -> Lowered {
        match pair.as_rule() {
            Rule::expr | Rule::primary => match pair.into_inner().next() {
                Some(inner) => self.expr(inner),
                None => Self::placeholder(Span::DUMMY),
            },
            Rule::or_expr => self.chain(pair, Rule::and_expr, ExprKind::Or),
            Rule::and_expr => self.chain(pair, Rule::not_expr, ExprKind::And),
            Rule::not_expr => self.not_expr(pair),
            Rule::comparison => self.comparison(pair),
            Rule::sum | Rule::product => self.arith(pair),
            Rule::unary => self.unary(pair),
            Rule::postfix => self.postfix(pair),
            Rule::number => self.number(&pair, false),
            Rule::string => self.string(pair),
            Rule::kw_true => Lowered { expr: Expr::lit(true, span_of(&pair)), depth: 1 },
            Rule::kw_false => Lowered { expr: Expr::lit(false, span_of(&pair)), depth: 1 },
            Rule::kw_none => Lowered { expr: Expr::new(ExprKind::Lit(Value::Null), span_of(&pair)), depth: 1 },
            Rule::ident => {
                let span = span_of(&pair);
                if pair.as_str() == self.param {
                    self.bare_param(span)
                } else {
                    Lowered { expr: Expr::param(pair.as_str(), span), depth: 1 }
                }
            }
            Rule::parens => self.parens(pair),
            Rule::list => {
                let span = span_of(&pair);
                // A list display outside `in` is not a value of the language; its
                // items are still lowered for their own errors.
                let name = excerpt(pair.as_str());
                let _ = self.items(pair);
                self.error(
                    ErrorKind::Unsupported { name, supported: "lists only after `in`: `c.x in [1, 2]`".into() },
                    span,
                )
            }
            _ => {
                // Only reachable if the grammar grows a rule this function does not know.
                let span = span_of(&pair);
                self.error(syntax("an expression"), span)
            }
        }
    }

    fn bare_param(&mut self, span: Span) -> Lowered {
        let message = format!("`{0}` is the lambda parameter; use one of its fields, like `{0}.name`", self.param);
        self.error(ErrorKind::LambdaParam { message }, span)
    }

    /// `a or b or c` / `a and b and c`: one n-ary node for the whole chain.
    fn chain(&mut self, pair: Pair<'i, Rule>, operand: Rule, make: fn(Vec<Expr>) -> ExprKind) -> Lowered {
        let span = span_of(&pair);
        let mut operands = pair.into_inner().filter(|p| p.as_rule() == operand);
        // The grammar gives at least one operand. Most chains have exactly one (a
        // query without `or` is an `or` chain of one; an alternative without `and` is
        // an `and` chain of one), which is returned as it is, without a vector.
        let Some(first) = operands.next() else { return Self::placeholder(span) };
        let first = self.expr(first);
        let Some(second) = operands.next() else { return first };
        let mut depth = first.depth;
        let mut items = vec![first.expr];
        for p in std::iter::once(second).chain(operands) {
            let operand = self.expr(p);
            depth = depth.max(operand.depth);
            items.push(operand.expr);
        }
        self.node(make(items), span, depth)
    }

    fn not_expr(&mut self, pair: Pair<'i, Rule>) -> Lowered {
        let end = span_of(&pair).end as usize;
        let mut nots = Vec::new();
        let mut operand = None;
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::kw_not => nots.push(p.as_span().start()),
                _ => operand = Some(self.expr(p)),
            }
        }
        let mut result = operand.unwrap_or_else(|| Self::placeholder(Span::DUMMY));
        // Innermost `not` first, each spanning from its keyword to the operand's end.
        for start in nots.into_iter().rev() {
            let span = Span::new(start, end);
            let depth = result.depth;
            result = self.node(ExprKind::Not(Box::new(result.expr)), span, depth);
        }
        result
    }

    fn comparison(&mut self, pair: Pair<'i, Rule>) -> Lowered {
        let span = span_of(&pair);
        let mut inner = pair.into_inner();
        let Some(first) = inner.next() else { return Self::placeholder(span) };
        let Some(op) = inner.next() else { return self.expr(first) };
        let Some(second) = inner.next() else { return Self::placeholder(span) };
        if let Some(extra_op) = inner.next() {
            let s = span_of(&extra_op);
            return self.error_with_hint(
                syntax("`and`, `or` or the end of the expression (comparisons do not chain)"),
                s,
                "write `a < b and b < c`",
            );
        }
        let op_rule = op.into_inner().next().map(|p| p.as_rule());
        let lhs = self.expr(first);
        match op_rule {
            Some(Rule::kw_in) => self.membership(lhs, second, span),
            Some(Rule::not_in) => {
                let test = self.membership(lhs, second, span);
                let depth = test.depth;
                self.node(ExprKind::Not(Box::new(test.expr)), span, depth)
            }
            Some(rule @ (Rule::kw_is | Rule::is_not)) => {
                let rhs = self.expr(second);
                if !matches!(rhs.expr.kind, ExprKind::Lit(Value::Null)) {
                    return self.error(
                        ErrorKind::Unsupported {
                            name: "is".into(),
                            supported: "`x is None` and `x is not None`; compare values with `==`".into(),
                        },
                        rhs.expr.span,
                    );
                }
                let depth = lhs.depth;
                let negated = rule == Rule::is_not;
                self.node(ExprKind::IsNull { expr: Box::new(lhs.expr), negated }, span, depth)
            }
            Some(rule) => {
                let op = match rule {
                    Rule::eq => CmpOp::Eq,
                    Rule::ne => CmpOp::Ne,
                    Rule::lt => CmpOp::Lt,
                    Rule::le => CmpOp::Le,
                    Rule::gt => CmpOp::Gt,
                    _ => CmpOp::Ge,
                };
                let rhs = self.expr(second);
                let depth = lhs.depth.max(rhs.depth);
                self.node(ExprKind::Cmp { op, lhs: Box::new(lhs.expr), rhs: Box::new(rhs.expr) }, span, depth)
            }
            None => Self::placeholder(span),
        }
    }

    /// `needle in <rhs>`: membership in a tuple/list display or a list parameter,
    /// else a substring test.
    fn membership(&mut self, needle: Lowered, rhs: Pair<'i, Rule>, span: Span) -> Lowered {
        match display_of(&rhs) {
            Some(display) => {
                let (items, _) = self.items(display);
                let depth = needle.depth.max(items.iter().map(|l| l.depth).max().unwrap_or(0));
                let items = items.into_iter().map(|l| l.expr).collect();
                self.node(ExprKind::In { needle: Box::new(needle.expr), haystack: Haystack::Items(items) }, span, depth)
            }
            None => {
                let haystack = self.expr(rhs);
                if let ExprKind::Param(name) = &haystack.expr.kind {
                    let haystack = Haystack::Param(name.clone());
                    let depth = needle.depth;
                    return self.node(ExprKind::In { needle: Box::new(needle.expr), haystack }, span, depth);
                }
                let depth = needle.depth.max(haystack.depth);
                let kind = ExprKind::StrTest {
                    op: StrOp::Contains,
                    subject: Box::new(haystack.expr),
                    pattern: Box::new(needle.expr),
                };
                self.node(kind, span, depth)
            }
        }
    }

    /// The expressions of a tuple, list or call argument list, and whether a comma
    /// appeared (which makes `(x,)` a tuple and `(x)` a parenthesised `x`).
    fn items(&mut self, pair: Pair<'i, Rule>) -> (Vec<Lowered>, bool) {
        let mut items = Vec::new();
        let mut comma = false;
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::expr => items.push(self.expr(p)),
                Rule::comma => comma = true,
                _ => {}
            }
        }
        (items, comma)
    }

    fn parens(&mut self, pair: Pair<'i, Rule>) -> Lowered {
        let span = span_of(&pair);
        let src_text = pair.as_str();
        let (mut items, comma) = self.items(pair);
        if items.len() == 1 && !comma {
            return items.pop().unwrap_or_else(|| Self::placeholder(span));
        }
        self.error(
            ErrorKind::Unsupported {
                name: excerpt(src_text),
                supported: "tuples only after `in`: `c.x in (1, 2)`".into(),
            },
            span,
        )
    }

    fn arith(&mut self, pair: Pair<'i, Rule>) -> Lowered {
        let mut inner = pair.into_inner();
        let Some(first) = inner.next() else { return Self::placeholder(Span::DUMMY) };
        let start = first.as_span().start();
        let mut acc = self.expr(first);
        while let (Some(op), Some(rhs)) = (inner.next(), inner.next()) {
            let span = Span::new(start, span_of(&rhs).end as usize);
            let op = match op.into_inner().next().map(|p| p.as_rule()) {
                Some(Rule::plus) => ArithOp::Add,
                Some(Rule::minus) => ArithOp::Sub,
                Some(Rule::star) => ArithOp::Mul,
                Some(Rule::slash) => ArithOp::Div,
                _ => ArithOp::Rem,
            };
            let rhs = self.expr(rhs);
            let depth = acc.depth.max(rhs.depth);
            acc = self.node(ExprKind::Arith { op, lhs: Box::new(acc.expr), rhs: Box::new(rhs.expr) }, span, depth);
        }
        acc
    }

    fn unary(&mut self, pair: Pair<'i, Rule>) -> Lowered {
        let mut negs = Vec::new();
        let mut operand = None;
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::neg => negs.push(p.as_span().start()),
                _ => operand = Some(p),
            }
        }
        let Some(operand) = operand else { return Self::placeholder(Span::DUMMY) };
        let end = span_of(&operand).end as usize;
        // `-5`: a negative literal, when the minus is directly in front of a bare
        // number (no postfix, no parentheses).
        let negative_literal = negs.last().and_then(|&start| literal_number(&operand).map(|number| (start, number)));
        let mut result = match negative_literal {
            Some((start, number)) => {
                negs.pop();
                let mut lit = self.number(&number, true);
                lit.expr.span = Span::new(start, lit.expr.span.end as usize);
                lit
            }
            _ => self.expr(operand),
        };
        for start in negs.into_iter().rev() {
            let span = Span::new(start, end);
            let depth = result.depth;
            result = self.node(ExprKind::Neg(Box::new(result.expr)), span, depth);
        }
        result
    }

    fn number(&mut self, pair: &Pair<'i, Rule>, negative: bool) -> Lowered {
        let span = span_of(pair);
        match number_value(pair.as_str(), negative) {
            Ok(value) => Lowered { expr: Expr::new(ExprKind::Lit(value), span), depth: 1 },
            Err(NumberError::NotANumber) => self.error(syntax("a number"), span),
            Err(NumberError::LeadingZeros) => self.error_with_hint(
                syntax("a number without leading zeros"),
                span,
                "Python does not allow leading zeros in decimal integers",
            ),
            Err(NumberError::OutOfRange) => self.error_with_hint(
                syntax(format!("an integer between {} and {}", i64::MIN, i64::MAX)),
                span,
                "write a float literal (`1e20`) for larger numbers",
            ),
        }
    }

    fn string(&mut self, pair: Pair<'i, Rule>) -> Lowered {
        let span = span_of(&pair);
        let Some(chars) = pair.into_inner().next() else { return Self::placeholder(span) };
        let start = chars.as_span().start();
        match unescape(chars.as_str(), start) {
            Ok(s) => Lowered { expr: Expr::lit(s, span), depth: 1 },
            Err(e) => {
                self.errors.push(e);
                Self::placeholder(span)
            }
        }
    }

    /// `primary (.name | (args))*`: fields, methods and function calls.
    fn postfix(&mut self, pair: Pair<'i, Rule>) -> Lowered {
        let span = span_of(&pair);
        let mut inner = pair.into_inner();
        let Some(primary) = inner.next() else { return Self::placeholder(span) };
        let start = primary.as_span().start();
        let mut head = match primary.into_inner().next() {
            Some(p) if p.as_rule() == Rule::ident => {
                let s = span_of(&p);
                if p.as_str() == self.param { Head::LambdaParam(s) } else { Head::Name(p.as_str(), s) }
            }
            Some(p) => Head::Value(self.expr(p)),
            None => Head::Value(Self::placeholder(Span::DUMMY)),
        };
        for op in inner {
            let op_span = span_of(&op);
            let upto = Span::new(start, op_span.end as usize);
            head = match op.as_rule() {
                Rule::attribute => {
                    let Some(name) = op.into_inner().find(|p| p.as_rule() == Rule::ident) else {
                        return Self::placeholder(span);
                    };
                    let name = name.as_str();
                    match head {
                        Head::LambdaParam(_) => Head::Value(Lowered { expr: Expr::field(name, upto), depth: 1 }),
                        Head::Value(receiver) => Head::Method { receiver, name, span: upto },
                        Head::Name(base, base_span) => Head::Method {
                            receiver: Lowered { expr: Expr::param(base, base_span), depth: 1 },
                            name,
                            span: upto,
                        },
                        Head::Method { receiver, name: method, .. } => {
                            Head::Value(self.unknown_attribute(&receiver, method, upto))
                        }
                    }
                }
                Rule::call => {
                    let (args, _) = self.items(op);
                    Head::Value(match head {
                        Head::Name(name, name_span) => self.function(name, name_span, args, upto),
                        Head::Method { receiver, name, span: _ } => self.method(receiver, name, args, upto),
                        Head::LambdaParam(s) => {
                            let message = format!("`{}` is the lambda parameter, not a function", self.param);
                            self.error(ErrorKind::LambdaParam { message }, s)
                        }
                        Head::Value(v) => self.error(
                            ErrorKind::Unsupported {
                                name: "calling an expression".into(),
                                supported: format!("the functions {FUNCTIONS} and the methods {METHODS}"),
                            },
                            Span::new(v.expr.span.start as usize, upto.end as usize),
                        ),
                    })
                }
                _ => head,
            };
        }
        match head {
            Head::Value(v) => v,
            Head::LambdaParam(s) => self.bare_param(s),
            Head::Name(name, s) => Lowered { expr: Expr::param(name, s), depth: 1 },
            Head::Method { receiver, name, span } => {
                if is_method(name) {
                    self.error_with_hint(
                        syntax(format!("`(` to call `{name}`")),
                        Span::new(span.end as usize, span.end as usize),
                        "methods are called: `c.name.lower()`",
                    )
                } else {
                    self.unknown_attribute(&receiver, name, span)
                }
            }
        }
    }

    /// `<receiver>.<name>` that is neither a field of the lambda parameter nor a
    /// method call.
    fn unknown_attribute(&mut self, receiver: &Lowered, name: &str, span: Span) -> Lowered {
        if let ExprKind::Field(field) = &receiver.expr.kind {
            let message =
                format!("`{0}.{field}.{name}` is a field of a field; only fields of `{0}` can be used", self.param);
            self.error(ErrorKind::LambdaParam { message }, span)
        } else if let ExprKind::Param(base) = &receiver.expr.kind {
            let kind = ErrorKind::Unsupported {
                name: format!("{base}.{name}"),
                supported: format!("fields of the lambda parameter (`{}.field`)", self.param),
            };
            self.error(kind, span)
        } else {
            self.error(ErrorKind::Unsupported { name: name.to_owned(), supported: METHODS.into() }, span)
        }
    }

    fn arity(&mut self, name: &str, expected: &str, got: usize, span: Span) -> Lowered {
        self.error(syntax(format!("{expected} for `{name}`, found {got}")), span)
    }

    fn function(&mut self, name: &str, name_span: Span, mut args: Vec<Lowered>, span: Span) -> Lowered {
        let depth = args.iter().map(|l| l.depth).max().unwrap_or(0);
        if let Some(func) = AggFunc::from_name(name) {
            // The checker decides where aggregates are allowed and their arity beyond
            // what the IR can hold (`count(x)`, `sum()`).
            if args.len() > 1 {
                return self.arity(name, "at most one argument", args.len(), span);
            }
            let arg = args.pop().map(|l| Box::new(l.expr));
            return self.node(ExprKind::Agg { func, arg }, span, depth);
        }
        match name {
            "len" => {
                if args.len() != 1 {
                    return self.arity(name, "one argument", args.len(), span);
                }
                let arg = args.remove(0);
                self.node(ExprKind::Len(Box::new(arg.expr)), span, depth)
            }
            "ieq" => {
                if args.len() != 2 {
                    return self.arity(name, "two arguments", args.len(), span);
                }
                let b = args.remove(1);
                let a = args.remove(0);
                self.node(ExprKind::IEq(Box::new(a.expr), Box::new(b.expr)), span, depth)
            }
            _ => self.error(ErrorKind::Unsupported { name: name.to_owned(), supported: FUNCTIONS.into() }, name_span),
        }
    }

    fn method(&mut self, receiver: Lowered, name: &str, mut args: Vec<Lowered>, span: Span) -> Lowered {
        let depth = receiver.depth.max(args.iter().map(|l| l.depth).max().unwrap_or(0));
        let op = match name {
            "startswith" => StrOp::StartsWith,
            "endswith" => StrOp::EndsWith,
            "lower" => {
                if !args.is_empty() {
                    return self.arity(name, "no arguments", args.len(), span);
                }
                return self.node(ExprKind::Lower(Box::new(receiver.expr)), span, depth);
            }
            _ => {
                // Point at `.name(…)`, after the receiver.
                let at = Span::new(receiver.expr.span.end as usize, span.end as usize);
                return self.error(ErrorKind::Unsupported { name: name.to_owned(), supported: METHODS.into() }, at);
            }
        };
        if args.len() != 1 {
            return self.arity(name, "one argument", args.len(), span);
        }
        let pattern = args.remove(0);
        self.node(
            ExprKind::StrTest { op, subject: Box::new(receiver.expr), pattern: Box::new(pattern.expr) },
            span,
            depth,
        )
    }
}

/// Why a number literal's text has no value.
enum NumberError {
    /// Not a float Rust can read (the grammar should not let one through).
    NotANumber,
    /// `007`: Python refuses leading zeros in decimal integers.
    LeadingZeros,
    /// An integer outside `i64`.
    OutOfRange,
}

/// The value of a number literal as the grammar's `number` rule matched it, negated
/// when a `-` directly in front of it is folded into it. Shared by the pest path and
/// the fast path (`text/fast.rs`), so both read every literal the same way.
fn number_value(raw: &str, negative: bool) -> Result<Value, NumberError> {
    let text: Cow<'_, str> =
        if raw.contains('_') { Cow::Owned(raw.chars().filter(|&c| c != '_').collect()) } else { Cow::Borrowed(raw) };
    // The grammar's `float` always has a `.` or an exponent, its `int` never does.
    let is_float = raw.bytes().any(|b| matches!(b, b'.' | b'e' | b'E'));
    if is_float {
        return match text.parse::<f64>() {
            Ok(x) => Ok(Value::Float(if negative { -x } else { x })),
            Err(_) => Err(NumberError::NotANumber),
        };
    }
    if text.len() > 1 && text.starts_with('0') && text.bytes().any(|b| b != b'0') {
        return Err(NumberError::LeadingZeros);
    }
    let signed = if negative { Cow::Owned(format!("-{text}")) } else { text };
    signed.parse::<i64>().map(Value::Int).map_err(|_| NumberError::OutOfRange)
}

/// Source text for a message, shortened when long.
fn excerpt(text: &str) -> String {
    const MAX: usize = 40;
    match text.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_owned(),
    }
}

fn is_method(name: &str) -> bool {
    matches!(name, "startswith" | "endswith" | "lower")
}

/// The tuple or list display directly on the right of `in` (through one level of
/// `sum`/`product`/… wrappers, which pest keeps even for a single operand), if any.
/// A parenthesised single expression is not a display.
fn display_of<'i>(pair: &Pair<'i, Rule>) -> Option<Pair<'i, Rule>> {
    let mut current = pair.clone();
    loop {
        match current.as_rule() {
            Rule::list => return Some(current),
            Rule::parens => {
                let tuple = current.clone().into_inner().any(|p| p.as_rule() == Rule::comma)
                    || !current.clone().into_inner().any(|p| p.as_rule() == Rule::expr);
                return tuple.then_some(current);
            }
            Rule::sum | Rule::product | Rule::unary | Rule::postfix | Rule::primary => {
                let mut inner = current.into_inner();
                let first = inner.next()?;
                if inner.next().is_some() {
                    return None;
                }
                current = first;
            }
            _ => return None,
        }
    }
}

/// The bare number literal a `unary`'s operand consists of, if that is all it is.
fn literal_number<'i>(postfix: &Pair<'i, Rule>) -> Option<Pair<'i, Rule>> {
    let mut inner = postfix.clone().into_inner();
    let primary = inner.next()?;
    if inner.next().is_some() {
        return None;
    }
    let literal = primary.into_inner().next()?;
    (literal.as_rule() == Rule::number).then_some(literal)
}

/// Decodes Python escapes in a string literal's body. `offset` is the body's byte
/// offset in the source, so that an invalid escape's error points at it.
fn unescape(body: &str, offset: usize) -> Result<String, Error> {
    let mut out = String::with_capacity(body.len());
    let mut chars = body.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let bad = |len: usize, what: &str| {
            Error::new(syntax(what.to_owned()), Span::new(offset + i, offset + i + len))
                .with_hint("the escapes are \\n \\t \\r \\0 \\\\ \\' \\\" \\xNN \\uNNNN \\UNNNNNNNN")
        };
        let Some((_, e)) = chars.next() else { return Err(bad(1, "an escape after `\\`")) };
        match e {
            'n' => out.push('\n'),
            't' => out.push('\t'),
            'r' => out.push('\r'),
            '0' => out.push('\0'),
            '\\' => out.push('\\'),
            '\'' => out.push('\''),
            '"' => out.push('"'),
            'x' | 'u' | 'U' => {
                let digits = match e {
                    'x' => 2,
                    'u' => 4,
                    _ => 8,
                };
                let hex: String = body[i + 2..].chars().take(digits).collect();
                let len = 2 + hex.len();
                if hex.len() != digits || !hex.chars().all(|h| h.is_ascii_hexdigit()) {
                    return Err(bad(len, &format!("{digits} hex digits after `\\{e}`")));
                }
                let code = u32::from_str_radix(&hex, 16).map_err(|_| bad(len, "hex digits"))?;
                let Some(ch) = char::from_u32(code) else {
                    return Err(bad(len, "a Unicode scalar value (not a surrogate, at most 10FFFF)"));
                };
                out.push(ch);
                for _ in 0..digits {
                    chars.next();
                }
            }
            other => return Err(bad(1 + other.len_utf8(), "a valid escape")),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use pest::Parser as _;

    use super::{LambdaParser, Rule, parse};
    use crate::ir::ExprKind;

    /// Python's keywords, as the grammar's `keyword` rule refuses them.
    const KEYWORDS: &[&str] = &[
        "lambda", "and", "or", "not", "in", "is", "True", "False", "None", "if", "else", "for", "async", "await",
        "yield", "del", "pass", "def", "class", "return", "import", "from", "as", "with", "while", "try", "except",
        "finally", "raise", "global", "nonlocal", "break", "continue", "elif",
    ];

    /// Whether `src` parses to `c.<name> == 1` with that field name.
    fn is_field_comparison(src: &str, name: &str) -> bool {
        matches!(parse(src), Ok(l) if matches!(&l.body.kind,
            ExprKind::Cmp { lhs, .. } if matches!(&lhs.kind, ExprKind::Field(f) if f == name)))
    }

    /// The grouped `keyword` rule refuses exactly the words of the plain list: every
    /// keyword, and no name that only starts with one. `assert` stays a name: `as`
    /// comes first and decides.
    #[test]
    fn keywords_are_not_names() {
        for kw in KEYWORDS {
            let src = format!("lambda c: c.{kw} == 1");
            assert!(parse(&src).is_err(), "{src} parsed");
        }
        for name in ["assert", "inx", "is_set", "nonlocalx", "ifx", "Trueish", "lambdas", "ab", "x", "_", "é"] {
            let src = format!("lambda c: c.{name} == 1");
            assert!(is_field_comparison(&src, name), "{src}");
        }
    }

    /// Operator rules with several alternatives peek at the next character before
    /// trying them. That is only invisible in errors because pest reports such a
    /// rule itself when more than one of its alternatives failed: the "expected" list
    /// names `comp_op`, `sum_op` and `prod_op`, never `eq`, `plus` or `star`.
    #[test]
    fn an_operator_position_reports_the_operator_rules() {
        let result = LambdaParser::parse(Rule::lambda, "lambda c: c.x c");
        let positives = match &result {
            Err(pest::error::Error { variant: pest::error::ErrorVariant::ParsingError { positives, .. }, .. }) => {
                positives.clone()
            }
            _ => Vec::new(),
        };
        assert!(!positives.is_empty(), "expected a parsing error naming rules, got {result:?}");
        for rule in [Rule::comp_op, Rule::sum_op, Rule::prod_op, Rule::dot, Rule::lparen] {
            assert!(positives.contains(&rule), "{rule:?} missing from {positives:?}");
        }
        for rule in [Rule::eq, Rule::lt, Rule::kw_in, Rule::plus, Rule::star] {
            assert!(!positives.contains(&rule), "{rule:?} in {positives:?}");
        }
    }
}
