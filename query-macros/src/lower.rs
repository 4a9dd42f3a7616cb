//! Rust closure syntax → the query IR ([`memdex_grammar::ir::Lambda`]).
//!
//! Every IR node gets a number; [`Lowering::nodes`] maps that number back to the
//! tokens the user wrote (first and last token, for error spans, and the text, for
//! messages). `Span { start: n, end: n + 1 }` is node `n` (see `memdex_grammar::span`).
//! Numbers are given in pre-order, so of two disjoint nodes the one with the larger
//! number ends later in the source.
//!
//! Any sub-expression that does not mention the closure parameter (a variable,
//! `self.limit`, `x + 1`, `&name`) becomes a bound parameter `p0, p1, …`; the rest
//! must be the language of DESIGN.md, and anything else is an error at that
//! sub-expression saying what is supported.

use memdex_grammar::ir::{AggFunc, ArithOp, CmpOp, Expr, ExprKind, Haystack, Lambda, StrOp};
use memdex_grammar::{Positional, Value};
use proc_macro2::{Span, TokenStream};
use quote::ToTokens;
use syn::visit::Visit;
use syn::{BinOp, Ident, UnOp};

/// What the language supports, for error messages.
pub const SUPPORTED: &str = "fields of the closure parameter (`c.field`), literals, captured values, \
`== != < <= > >=`, `&& || !`, `+ - * / %`, and the methods `starts_with`, `ends_with`, `contains`, \
`eq_ignore_ascii_case`, `to_lowercase`, `len`, `is_none`, `is_some`";

/// Where a numbered node came from.
#[derive(Clone, Debug)]
pub struct Node {
    pub first: Span,
    pub last: Span,
    /// The node as the user wrote it (tokens re-printed compactly).
    pub text: String,
}

/// How a captured expression becomes a parameter value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamKind {
    /// `to_value(&(expr))`.
    Scalar,
    /// `to_list_value(&(expr))`: the haystack of `ids.contains(&c.x)`.
    List,
}

/// A captured expression, in parameter order.
#[derive(Clone, Debug)]
pub struct Captured {
    pub expr: syn::Expr,
    pub kind: ParamKind,
}

/// What a lambda lowers as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyKind {
    /// A boolean filter (`select!`, `scan!`, a view's filter).
    Filter,
    /// A view's aggregate: `count()`, `sum(m.f)`, `avg(m.f)`, `min(m.f)`, `max(m.f)`.
    Aggregate,
}

/// A closure the user wrote, picked apart for the expansion.
#[derive(Clone, Debug)]
pub struct Closure {
    /// `move`, kept on the predicate closure.
    pub movability: Option<syn::Token![move]>,
    /// The whole closure, for the lambda's span.
    pub whole: TokenStream,
    /// The parameter pattern (`c` or `_`), with the user's span.
    pub pat: TokenStream,
    /// The parameter's name (`_` when unnamed); `None` for `_`.
    pub param: Option<Ident>,
    /// The parameter's type, if the user wrote one.
    pub ty: Option<syn::Type>,
    pub body: syn::Expr,
}

/// The lowering state of one macro call (one or two closures share it, so that
/// node numbers and parameter names are unique across a view's two lambdas).
#[derive(Default)]
pub struct Lowering {
    pub nodes: Vec<Node>,
    pub params: Vec<Captured>,
    errors: Option<syn::Error>,
    /// The current closure's parameter name.
    param: Option<Ident>,
}

impl Lowering {
    pub fn new() -> Lowering {
        Lowering::default()
    }

    /// All errors collected so far, combined.
    pub fn take_errors(&mut self) -> Option<syn::Error> {
        self.errors.take()
    }

    pub fn has_errors(&self) -> bool {
        self.errors.is_some()
    }

    fn error(&mut self, e: syn::Error) {
        match &mut self.errors {
            Some(all) => all.combine(e),
            None => self.errors = Some(e),
        }
    }

    fn error_at(&mut self, tokens: &dyn ToTokens, message: impl std::fmt::Display) {
        self.error(syn::Error::new_spanned(tokens, message));
    }

    /// Numbers a node and remembers where it came from.
    fn node(&mut self, tokens: &dyn ToTokens) -> memdex_grammar::Span {
        let ts = tokens.to_token_stream();
        let mut iter = ts.clone().into_iter();
        let first = iter.next().map_or_else(Span::call_site, |t| t.span());
        let last = ts.clone().into_iter().last().map_or(first, |t| t.span());
        let id = self.nodes.len();
        self.nodes.push(Node { first, last, text: crate::text::tokens(ts) });
        memdex_grammar::Span::new(id, id + 1)
    }

    /// The node numbered by `span.start` (and the last token of `span.end - 1`).
    pub fn tokens_of(&self, span: memdex_grammar::Span) -> Option<(Span, Span)> {
        let first = self.nodes.get(span.start as usize)?;
        let last = self.nodes.get((span.end as usize).saturating_sub(1)).unwrap_or(first);
        Some((first.first, last.last))
    }

    pub fn text_of(&self, span: memdex_grammar::Span) -> Option<&str> {
        self.nodes.get(span.start as usize).map(|n| n.text.as_str())
    }

    /// Checks the closure's shape (one parameter, an identifier or `_`).
    pub fn closure(&mut self, expr: &syn::Expr, what: &str) -> Option<Closure> {
        let syn::Expr::Closure(c) = expr else {
            self.error_at(expr, format!("expected a closure, like `{what}`"));
            return None;
        };
        if let Some(a) = &c.asyncness {
            self.error_at(a, "a query closure cannot be `async`");
        }
        if let Some(k) = &c.constness {
            self.error_at(k, "a query closure cannot be `const`");
        }
        if c.inputs.is_empty() {
            self.error_at(&c.or1_token, format!("the closure needs one parameter, the row: `{what}`"));
            return None;
        }
        for extra in c.inputs.iter().skip(1) {
            self.error_at(
                extra,
                "a query closure takes exactly one parameter (the row); a second parameter is not supported",
            );
        }
        let (pat, ty) = match &c.inputs[0] {
            syn::Pat::Type(t) => (&*t.pat, Some((*t.ty).clone())),
            other => (other, None),
        };
        let param = match pat {
            syn::Pat::Ident(p) if p.by_ref.is_none() && p.mutability.is_none() && p.subpat.is_none() => {
                Some(p.ident.clone())
            }
            syn::Pat::Wild(_) => None,
            other => {
                self.error_at(other, "the closure parameter must be a plain name, like `c`");
                return None;
            }
        };
        if c.inputs.len() > 1 {
            return None;
        }
        Some(Closure {
            movability: c.capture,
            whole: expr.to_token_stream(),
            pat: pat.to_token_stream(),
            param,
            ty,
            body: (*c.body).clone(),
        })
    }

    /// Lowers one closure. `None` when there were errors (collected in `self`).
    pub fn lambda(&mut self, closure: &Closure, kind: BodyKind) -> Option<Lambda> {
        self.param = closure.param.clone();
        let span = self.node(&closure.whole);
        let param_span = self.node(&closure.pat);
        let body = match kind {
            BodyKind::Filter => self.lower(&closure.body),
            BodyKind::Aggregate => self.aggregate(&closure.body),
        };
        let param = closure.param.as_ref().map_or_else(|| "_".to_string(), |p| p.to_string());
        (!self.has_errors()).then_some(Lambda { param, param_span, body, span })
    }

    /// Does `e` mention the closure parameter?
    fn mentions(&self, e: &syn::Expr) -> bool {
        let Some(param) = &self.param else { return false };
        let mut finder = Mentions { param, found: false };
        finder.visit_expr(e);
        finder.found
    }

    fn capture(&mut self, e: &syn::Expr, kind: ParamKind) -> Expr {
        let span = self.node(e);
        let name = Positional::name(self.params.len());
        self.params.push(Captured { expr: e.clone(), kind });
        Expr::param(name, span)
    }

    /// A placeholder after an error (never emitted: errors stop the expansion).
    fn poisoned(&self) -> Expr {
        Expr::lit(true, memdex_grammar::Span::DUMMY)
    }

    fn lower(&mut self, e: &syn::Expr) -> Expr {
        use syn::Expr as E;
        // Grouping first: it does not change meaning, and `(5)` is still a literal.
        match e {
            E::Paren(p) => return self.lower(&p.expr),
            E::Group(g) => return self.lower(&g.expr),
            E::Lit(l) => return self.literal(&l.lit, e, false),
            E::Unary(u) if matches!(u.op, UnOp::Neg(_)) => {
                if let E::Lit(l) = &*u.expr {
                    if matches!(l.lit, syn::Lit::Int(_) | syn::Lit::Float(_)) {
                        return self.literal(&l.lit, e, true);
                    }
                }
            }
            _ => {}
        }
        // A value from outside the query becomes a bound parameter; but an
        // expression of literals alone (`10 / 3`, `-(5)`) is lowered as written, so
        // that it has the same IR as the text form, which has no captured values.
        if !self.mentions(e) && !literals_only(e) {
            return self.outside(e);
        }
        match e {
            E::Path(p) if p.path.get_ident().is_some() => {
                self.error_at(
                    e,
                    format!(
                        "the closure parameter `{}` can only be used to read a field, like `{}.field`",
                        ident_text(p.path.get_ident()),
                        ident_text(p.path.get_ident())
                    ),
                );
                self.poisoned()
            }
            E::Field(f) => self.field(f, e),
            E::Binary(b) => self.binary(b, e),
            E::Unary(u) => match u.op {
                UnOp::Not(_) => {
                    let span = self.node(e);
                    let inner = self.lower(&u.expr);
                    Expr::new(ExprKind::Not(Box::new(inner)), span)
                }
                UnOp::Neg(_) => {
                    let span = self.node(e);
                    let inner = self.lower(&u.expr);
                    Expr::new(ExprKind::Neg(Box::new(inner)), span)
                }
                _ => {
                    self.error_at(
                        e,
                        format!("dereferencing is not supported in a memdex query; supported: {SUPPORTED}"),
                    );
                    self.poisoned()
                }
            },
            // `&c.name == &name` compares the same values as without the references.
            E::Reference(r) => self.lower(&r.expr),
            E::MethodCall(m) => self.method(m, e),
            E::Call(c) => self.call(c),
            other => {
                let what = unsupported_kind(other);
                self.error_at(other, format!("{what} is not supported in a memdex query; supported: {SUPPORTED}"));
                self.poisoned()
            }
        }
    }

    /// An expression that does not mention the closure parameter: a literal when it is
    /// one (`None`, `Some(5)`), else a bound parameter.
    fn outside(&mut self, e: &syn::Expr) -> Expr {
        match e {
            syn::Expr::Path(p) if p.qself.is_none() && p.path.is_ident("None") => {
                let span = self.node(e);
                Expr::lit(Value::Null, span)
            }
            syn::Expr::Call(c) if is_some(c) => self.lower(&c.args[0]),
            syn::Expr::Reference(r) => self.lower(&r.expr),
            syn::Expr::Call(c) if aggregate_name(&c.func).is_some() => {
                self.error_at(
                    &c.func,
                    "aggregates (count, sum, avg, min, max) can only be the whole body of view!'s last closure",
                );
                self.poisoned()
            }
            _ => self.capture(e, ParamKind::Scalar),
        }
    }

    fn literal(&mut self, lit: &syn::Lit, e: &syn::Expr, negative: bool) -> Expr {
        let span = self.node(e);
        let value = match lit {
            syn::Lit::Int(i) => {
                // Parse as i128 so that `-9223372036854775808` (i64::MIN) is writable.
                match i.base10_parse::<u64>() {
                    Ok(v) => {
                        let v = if negative { -i128::from(v) } else { i128::from(v) };
                        match i64::try_from(v) {
                            Ok(v) => Value::Int(v),
                            Err(_) => {
                                self.error_at(e, "integer literal out of range: memdex integers are i64");
                                return self.poisoned();
                            }
                        }
                    }
                    Err(err) => {
                        self.error(err);
                        return self.poisoned();
                    }
                }
            }
            syn::Lit::Float(f) => match f.base10_parse::<f64>() {
                Ok(x) => Value::Float(if negative { -x } else { x }),
                Err(err) => {
                    self.error(err);
                    return self.poisoned();
                }
            },
            syn::Lit::Str(s) => Value::Text(s.value()),
            syn::Lit::Char(c) => Value::Text(c.value().to_string()),
            syn::Lit::Bool(b) => Value::Bool(b.value),
            other => {
                self.error_at(
                    other,
                    "this literal is not supported in a memdex query; use integers, floats, strings, chars or bools",
                );
                return self.poisoned();
            }
        };
        Expr::lit(value, span)
    }

    fn field(&mut self, f: &syn::ExprField, e: &syn::Expr) -> Expr {
        let base_is_param = matches!(&*f.base, syn::Expr::Path(p)
            if p.qself.is_none() && self.param.as_ref().is_some_and(|param| p.path.is_ident(param)));
        match (&f.member, base_is_param) {
            (syn::Member::Named(name), true) => {
                let span = self.node(e);
                Expr::field(name.to_string().trim_start_matches("r#"), span)
            }
            (syn::Member::Unnamed(_), true) => {
                self.error_at(e, "models have named fields: write `c.field`");
                self.poisoned()
            }
            (_, false) => {
                self.error_at(
                    e,
                    "a field of a field is not supported: a query reads the model's own columns (`c.field`)",
                );
                self.poisoned()
            }
        }
    }

    fn binary(&mut self, b: &syn::ExprBinary, e: &syn::Expr) -> Expr {
        if matches!(b.op, BinOp::And(_) | BinOp::Or(_)) {
            let is_and = matches!(b.op, BinOp::And(_));
            let span = self.node(e);
            let mut items = Vec::new();
            self.chain(e, is_and, &mut items);
            let kind = if is_and { ExprKind::And(items) } else { ExprKind::Or(items) };
            return Expr::new(kind, span);
        }
        let cmp = match b.op {
            BinOp::Eq(_) => Some(CmpOp::Eq),
            BinOp::Ne(_) => Some(CmpOp::Ne),
            BinOp::Lt(_) => Some(CmpOp::Lt),
            BinOp::Le(_) => Some(CmpOp::Le),
            BinOp::Gt(_) => Some(CmpOp::Gt),
            BinOp::Ge(_) => Some(CmpOp::Ge),
            _ => None,
        };
        let arith = match b.op {
            BinOp::Add(_) => Some(ArithOp::Add),
            BinOp::Sub(_) => Some(ArithOp::Sub),
            BinOp::Mul(_) => Some(ArithOp::Mul),
            BinOp::Div(_) => Some(ArithOp::Div),
            BinOp::Rem(_) => Some(ArithOp::Rem),
            _ => None,
        };
        if cmp.is_none() && arith.is_none() {
            self.error_at(
                &b.op,
                format!(
                    "the operator `{}` is not supported in a memdex query; supported: {SUPPORTED}",
                    crate::text::tokens(b.op.to_token_stream())
                ),
            );
            return self.poisoned();
        }
        let span = self.node(e);
        let lhs = Box::new(self.lower(&b.left));
        let rhs = Box::new(self.lower(&b.right));
        match (cmp, arith) {
            (Some(op), _) => Expr::new(ExprKind::Cmp { op, lhs, rhs }, span),
            (None, Some(op)) => Expr::new(ExprKind::Arith { op, lhs, rhs }, span),
            (None, None) => self.poisoned(),
        }
    }

    /// Flattens an unparenthesised `a && b && c` into one n-ary node (as the text form does).
    fn chain(&mut self, e: &syn::Expr, is_and: bool, out: &mut Vec<Expr>) {
        if let syn::Expr::Binary(b) = e {
            let same = match b.op {
                BinOp::And(_) => is_and,
                BinOp::Or(_) => !is_and,
                _ => false,
            };
            if same {
                self.chain(&b.left, is_and, out);
                self.chain(&b.right, is_and, out);
                return;
            }
        }
        out.push(self.lower(e));
    }

    fn method(&mut self, m: &syn::ExprMethodCall, e: &syn::Expr) -> Expr {
        let name = m.method.to_string();
        if let Some(t) = &m.turbofish {
            self.error_at(t, "type arguments are not supported in a memdex query");
            return self.poisoned();
        }
        let receiver_mentions = self.mentions(&m.receiver);
        let arity = match name.as_str() {
            "starts_with" | "ends_with" | "contains" | "eq_ignore_ascii_case" => 1,
            "to_lowercase" | "len" | "is_none" | "is_some" => 0,
            _ => {
                self.error_at(
                    &m.method,
                    format!("the method `{name}` is not supported in a memdex query; supported: {SUPPORTED}"),
                );
                return self.poisoned();
            }
        };
        if m.args.len() != arity {
            let args = if arity == 1 { "one argument" } else { "no arguments" };
            self.error_at(&m.method, format!("`{name}` takes {args}"));
            return self.poisoned();
        }
        if !receiver_mentions {
            // Only `list.contains(&c.x)` has the field as the argument.
            if name == "contains" {
                return self.membership(m, e);
            }
            self.error_at(
                e,
                format!(
                    "`{name}` must be called on a field: write `c.field.{name}(…)`; a captured value's method \
                     cannot test a field"
                ),
            );
            return self.poisoned();
        }
        if array_literal(&m.receiver).is_some() {
            self.error_at(&m.receiver, "the elements of an `in` list must be literals or captured values");
            return self.poisoned();
        }
        let span = self.node(e);
        let subject = self.lower(&m.receiver);
        let kind = match name.as_str() {
            "starts_with" | "ends_with" | "contains" => {
                let op = match name.as_str() {
                    "starts_with" => StrOp::StartsWith,
                    "ends_with" => StrOp::EndsWith,
                    _ => StrOp::Contains,
                };
                let pattern = self.lower(&m.args[0]);
                ExprKind::StrTest { op, subject: Box::new(subject), pattern: Box::new(pattern) }
            }
            "eq_ignore_ascii_case" => {
                let other = self.lower(&m.args[0]);
                ExprKind::IEq(Box::new(subject), Box::new(other))
            }
            "to_lowercase" => ExprKind::Lower(Box::new(subject)),
            "len" => ExprKind::Len(Box::new(subject)),
            "is_none" => ExprKind::IsNull { expr: Box::new(subject), negated: false },
            _ => ExprKind::IsNull { expr: Box::new(subject), negated: true },
        };
        Expr::new(kind, span)
    }

    /// `[1, 2].contains(&c.x)` (literal items) or `ids.contains(&c.x)` (a list parameter).
    fn membership(&mut self, m: &syn::ExprMethodCall, e: &syn::Expr) -> Expr {
        if matches!(strip(&m.receiver), syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Str(_), .. })) {
            self.error_at(
                e,
                "a field as the pattern of a literal's `contains` is not supported; \
                 to test a field's content, write `c.field.contains(…)`",
            );
            return self.poisoned();
        }
        let span = self.node(e);
        let haystack = match array_literal(&m.receiver) {
            Some(items) => {
                let items: Vec<syn::Expr> = items.iter().cloned().collect();
                Haystack::Items(items.iter().map(|i| self.lower(i)).collect())
            }
            None => {
                let name = Positional::name(self.params.len());
                let _ = self.node(&m.receiver);
                self.params.push(Captured { expr: (*m.receiver).clone(), kind: ParamKind::List });
                Haystack::Param(name)
            }
        };
        let needle = self.lower(&m.args[0]);
        Expr::new(ExprKind::In { needle: Box::new(needle), haystack }, span)
    }

    fn call(&mut self, c: &syn::ExprCall) -> Expr {
        if is_some(c) {
            return self.lower(&c.args[0]);
        }
        if aggregate_name(&c.func).is_some() {
            self.error_at(
                &c.func,
                "aggregates (count, sum, avg, min, max) can only be the whole body of view!'s last closure",
            );
            return self.poisoned();
        }
        self.error_at(
            &c.func,
            format!(
                "calling `{}` is not supported in a memdex query; supported: {SUPPORTED}",
                crate::text::tokens(c.func.to_token_stream())
            ),
        );
        self.poisoned()
    }

    /// A view's aggregate body: exactly one `count()`, `sum(e)`, `avg(e)`, `min(e)`, `max(e)`.
    fn aggregate(&mut self, body: &syn::Expr) -> Expr {
        let e = strip_parens(body);
        let expected = "a view's aggregate is one of `count()`, `sum(m.field)`, `avg(m.field)`, \
                        `min(m.field)`, `max(m.field)`";
        let syn::Expr::Call(c) = e else {
            self.error_at(e, expected);
            return self.poisoned();
        };
        let Some(func) = aggregate_name(&c.func) else {
            self.error_at(
                &c.func,
                format!("`{}` is not an aggregate; {expected}", crate::text::tokens(c.func.to_token_stream())),
            );
            return self.poisoned();
        };
        let span = self.node(e);
        let arg = match (func, c.args.len()) {
            (AggFunc::Count, 0) => None,
            (AggFunc::Count, _) => {
                self.error_at(&c.args, "`count()` takes no argument: it counts rows");
                return self.poisoned();
            }
            (_, 1) => Some(Box::new(self.lower(&c.args[0]))),
            (_, _) => {
                self.error_at(e, format!("`{}` takes one argument, like `{}(m.field)`", func.name(), func.name()));
                return self.poisoned();
            }
        };
        Expr::new(ExprKind::Agg { func, arg }, span)
    }
}

/// Finds the closure parameter as a whole path expression (`c`, not `self.c`), also
/// inside macro calls (by token).
struct Mentions<'a> {
    param: &'a Ident,
    found: bool,
}

impl<'ast> Visit<'ast> for Mentions<'_> {
    fn visit_expr_path(&mut self, p: &'ast syn::ExprPath) {
        if p.qself.is_none() && p.path.is_ident(self.param) {
            self.found = true;
        }
    }
    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        if tokens_mention(m.tokens.clone(), self.param) {
            self.found = true;
        }
    }
}

fn tokens_mention(ts: TokenStream, param: &Ident) -> bool {
    ts.into_iter().any(|t| match t {
        proc_macro2::TokenTree::Ident(i) => &i == param,
        proc_macro2::TokenTree::Group(g) => tokens_mention(g.stream(), param),
        _ => false,
    })
}

fn is_some(c: &syn::ExprCall) -> bool {
    matches!(&*c.func, syn::Expr::Path(p) if p.qself.is_none() && p.path.is_ident("Some")) && c.args.len() == 1
}

fn aggregate_name(func: &syn::Expr) -> Option<AggFunc> {
    let syn::Expr::Path(p) = func else { return None };
    let ident = p.path.get_ident()?;
    AggFunc::from_name(&ident.to_string())
}

fn strip(e: &syn::Expr) -> &syn::Expr {
    match e {
        syn::Expr::Paren(p) => strip(&p.expr),
        syn::Expr::Group(g) => strip(&g.expr),
        syn::Expr::Reference(r) => strip(&r.expr),
        other => other,
    }
}

fn strip_parens(e: &syn::Expr) -> &syn::Expr {
    match e {
        syn::Expr::Paren(p) => strip_parens(&p.expr),
        syn::Expr::Group(g) => strip_parens(&g.expr),
        other => other,
    }
}

/// `[1, 2]`, `&[1, 2]`, `([1, 2])`: the items.
fn array_literal(e: &syn::Expr) -> Option<&syn::punctuated::Punctuated<syn::Expr, syn::Token![,]>> {
    match strip(e) {
        syn::Expr::Array(a) => Some(&a.elems),
        _ => None,
    }
}

fn ident_text(i: Option<&Ident>) -> String {
    i.map_or_else(String::new, ToString::to_string)
}

fn unsupported_kind(e: &syn::Expr) -> &'static str {
    use syn::Expr as E;
    match e {
        E::Block(_) | E::Unsafe(_) | E::Const(_) => "a block",
        E::If(_) => "`if` (use `&&`, `||` and `!`)",
        E::Match(_) => "`match` (use `&&`, `||` and `==`)",
        E::Closure(_) => "a closure",
        E::Let(_) => "`let`",
        E::Loop(_) | E::While(_) | E::ForLoop(_) => "a loop",
        E::Index(_) => "indexing",
        E::Cast(_) => "a cast",
        E::Macro(_) => "a macro call",
        E::Tuple(_) => "a tuple",
        E::Array(_) => "an array here (use `[…].contains(&c.field)`)",
        E::Struct(_) => "a struct literal",
        E::Range(_) => "a range (use `c.x >= a && c.x < b`)",
        E::Assign(_) => "assignment",
        E::Try(_) => "`?`",
        E::Await(_) => "`.await`",
        E::Return(_) | E::Break(_) | E::Continue(_) => "control flow",
        _ => "this expression",
    }
}

/// Span of an expression's first token, for errors about the whole closure.
pub fn first_span(e: &dyn ToTokens) -> Span {
    e.to_token_stream().into_iter().next().map_or_else(Span::call_site, |t| t.span())
}

/// Is `e` made of numeric, string and boolean literals and operators only?
fn literals_only(e: &syn::Expr) -> bool {
    use syn::Expr as E;
    match e {
        E::Lit(l) => matches!(l.lit, syn::Lit::Int(_) | syn::Lit::Float(_) | syn::Lit::Str(_) | syn::Lit::Bool(_)),
        E::Paren(p) => literals_only(&p.expr),
        E::Group(g) => literals_only(&g.expr),
        E::Unary(u) => matches!(u.op, UnOp::Neg(_) | UnOp::Not(_)) && literals_only(&u.expr),
        E::Binary(b) => literals_only(&b.left) && literals_only(&b.right),
        _ => false,
    }
}
