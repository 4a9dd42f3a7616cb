//! Checking a lambda against a [`Schema`]: fields exist, types agree, the body is a
//! boolean filter (or a single aggregate for views).
//!
//! * Collects all errors, each at its span: `UnknownField` (with a did-you-mean by
//!   edit distance ≤ 2 or prefix), `TypeMismatch`, `NotBoolean`, `MisplacedAggregate`,
//!   `UnboundParam` (ParamType::Missing), `Unsupported` (ordering `<` on an `Option`
//!   column, string methods on a non-string or nullable value, `in` on a nullable
//!   value, arithmetic on strings, a string-test pattern that is not a literal, a
//!   parameter or `.lower()` of one).
//! * Rewrites where the text form is looser than Rust: an integer literal compared
//!   with / used in arithmetic with / listed for a float value becomes a float
//!   literal; `x in p` with `p` bound to a string becomes a substring test.
//! * Parameters typed [`ParamType::Unknown`] (the macro form, where rustc has already
//!   checked them) fit wherever a value fits. An integer parameter also fits a float
//!   value: it is compared numerically, which is what the text form's user means.
//! * Returns the (possibly rewritten) expression.

use crate::error::{Error, ErrorKind, Errors};
use crate::ir::{AggFunc, ArithOp, CmpOp, Expr, ExprKind, Haystack, StrOp};
use crate::params::ParamType;
use crate::schema::Schema;
use crate::span::Span;
use crate::value::{Type, Value};

/// A checked aggregate: `avg(m.runs)` → `{ func: Avg, arg: Some(m.runs) }`.
#[derive(Clone, Debug, PartialEq)]
pub struct Aggregate {
    /// Which aggregate.
    pub func: AggFunc,
    /// The checked argument (`None` for `count()`).
    pub arg: Option<Expr>,
    /// The whole aggregate expression.
    pub span: Span,
    /// The argument's type (`None` for `count()`).
    pub arg_type: Option<Type>,
}

/// Checks a filter body against `schema`; `params` gives each parameter's type
/// (see [`crate::params::types_of`]). Returns the body, rewritten where the text
/// form is looser than Rust (see the module docs).
///
/// # Errors
///
/// Every problem found, each at its span: unknown fields, type mismatches, unbound
/// parameters, unsupported constructs, a body that is not boolean.
///
/// ```
/// use memdex_grammar::{ErrorKind, ParamType, Schema, Type, check, text};
///
/// let schema = Schema::new("Item", "item").column("id", Type::Int, false).column("price", Type::Float, false);
/// let no_params = |_: &str| ParamType::Missing;
///
/// // An integer literal compared with a float field becomes a float literal.
/// let lambda = text::parse("lambda c: c.price > 10")?;
/// let checked = check::filter(&schema, &lambda.body, &no_params)?;
/// assert_eq!(memdex_grammar::print::expr(&checked, "c"), "c.price > 10.0");
///
/// let lambda = text::parse("lambda c: c.prise > 10 and c.id == 'x'")?;
/// let errors = check::filter(&schema, &lambda.body, &no_params).unwrap_err();
/// assert!(matches!(errors.0[0].kind, ErrorKind::UnknownField { .. }));
/// assert!(matches!(errors.0[1].kind, ErrorKind::TypeMismatch { .. }));
/// # Ok::<(), memdex_grammar::Errors>(())
/// ```
pub fn filter(schema: &Schema, body: &Expr, params: &dyn Fn(&str) -> ParamType) -> Result<Expr, Errors> {
    let mut checker = Checker { schema, params, errors: Errors::default() };
    let (checked, ty) = checker.expr(body);
    checker.require_bool(&ty, body.span, "the filter", true);
    checker.errors.into_result(checked)
}

/// Checks a view's aggregate body: exactly one of `count() sum(e) min(e) max(e) avg(e)`;
/// `count()` takes no argument, the others one numeric, non-optional expression
/// (`min`/`max` over strings are not offered: the dialects order strings differently).
///
/// # Errors
///
/// A body that is not one aggregate, an argument that is not numeric, and every
/// error [`filter`] reports inside the argument.
///
/// ```
/// use memdex_grammar::ir::AggFunc;
/// use memdex_grammar::{ParamType, Schema, Type, check, text};
///
/// let schema = Schema::new("Master", "master").column("id", Type::Int, false).column("runs", Type::Int, false);
/// let lambda = text::parse("lambda m: avg(m.runs)")?;
/// let aggregate = check::aggregate(&schema, &lambda.body, &|_: &str| ParamType::Missing)?;
/// assert_eq!(aggregate.func, AggFunc::Avg);
/// assert_eq!(aggregate.arg_type, Some(Type::Int));
/// # Ok::<(), memdex_grammar::Errors>(())
/// ```
pub fn aggregate(schema: &Schema, body: &Expr, params: &dyn Fn(&str) -> ParamType) -> Result<Aggregate, Errors> {
    let mut checker = Checker { schema, params, errors: Errors::default() };
    let ExprKind::Agg { func, arg } = &body.kind else {
        let (_, ty) = checker.expr(body);
        let found = describe(&ty);
        checker.errors.push(
            Error::new(
                ErrorKind::TypeMismatch {
                    context: "a view".into(),
                    expected: "one aggregate: `count()`, `sum(x)`, `min(x)`, `max(x)` or `avg(x)`".into(),
                    found,
                },
                body.span,
            )
            .with_hint("put the filter in its own lambda: `view!(T, |m| filter, |m| avg(m.x))`"),
        );
        return Err(checker.errors);
    };
    let func = *func;
    let (arg, arg_type) = match (func, arg) {
        (AggFunc::Count, None) => (None, None),
        (AggFunc::Count, Some(a)) => {
            checker.errors.push(Error::new(
                ErrorKind::TypeMismatch {
                    context: "`count`".into(),
                    expected: "no argument".into(),
                    found: "one".into(),
                },
                a.span,
            ));
            (None, None)
        }
        (_, None) => {
            checker.errors.push(Error::new(
                ErrorKind::TypeMismatch {
                    context: format!("`{}`", func.name()),
                    expected: "one numeric argument".into(),
                    found: "none".into(),
                },
                body.span,
            ));
            (None, None)
        }
        (_, Some(a)) => {
            let (checked, ty) = checker.expr(a);
            let context = format!("`{}`", func.name());
            let arg_type = match ty {
                Ty::Value { ty: t @ (Type::Int | Type::Float), nullable: false } => Some(t),
                Ty::Any | Ty::Error => None,
                other => {
                    checker.mismatch(&context, "a non-optional number", &other, a.span);
                    None
                }
            };
            (Some(checked), arg_type)
        }
    };
    checker.errors.into_result(Aggregate { func, arg, span: body.span, arg_type })
}

/// What the checker knows of an expression's type.
#[derive(Clone, Debug, PartialEq)]
enum Ty {
    Value {
        ty: Type,
        nullable: bool,
    },
    /// `None`, or a parameter bound to it.
    Null,
    /// A parameter whose type rustc checks (the macro form).
    Any,
    /// A parameter bound to a list; only valid after `in`.
    List(Option<Type>),
    /// Already reported; suppresses follow-on errors.
    Error,
}

impl Ty {
    fn of(ty: Type) -> Ty {
        Ty::Value { ty, nullable: false }
    }
}

fn describe(ty: &Ty) -> String {
    match ty {
        Ty::Value { ty, nullable: false } => ty.to_string(),
        Ty::Value { ty, nullable: true } => format!("optional {ty}"),
        Ty::Null => "None".into(),
        Ty::Any => "a value".into(),
        Ty::List(Some(t)) => format!("a list of {t}"),
        Ty::List(None) => "a list".into(),
        Ty::Error => "an invalid expression".into(),
    }
}

struct Checker<'a> {
    schema: &'a Schema,
    params: &'a dyn Fn(&str) -> ParamType,
    errors: Errors,
}

impl Checker<'_> {
    fn push(&mut self, kind: ErrorKind, span: Span) {
        self.errors.push(Error::new(kind, span));
    }

    fn mismatch(&mut self, context: &str, expected: &str, found: &Ty, span: Span) {
        if *found == Ty::Error {
            return;
        }
        let kind = ErrorKind::TypeMismatch {
            context: context.to_owned(),
            expected: expected.to_owned(),
            found: describe(found),
        };
        self.push(kind, span);
    }

    fn unsupported(&mut self, name: &str, supported: &str, span: Span) {
        self.push(ErrorKind::Unsupported { name: name.to_owned(), supported: supported.to_owned() }, span);
    }

    /// Reports unless `ty` is a (non-optional) bool.
    fn require_bool(&mut self, ty: &Ty, span: Span, context: &str, is_body: bool) {
        match ty {
            Ty::Value { ty: Type::Bool, nullable: false } | Ty::Any | Ty::Error => {}
            Ty::Value { ty, nullable: false } if is_body => {
                self.push(ErrorKind::NotBoolean { found: *ty }, span);
            }
            other => self.mismatch(context, "bool", other, span),
        }
    }

    /// Reports unless `ty` is a non-optional string; `what` names the operation.
    fn require_string(&mut self, ty: &Ty, span: Span, what: &str) {
        match ty {
            Ty::Value { ty: Type::Text, nullable: false } | Ty::Any | Ty::Error => {}
            Ty::Value { ty: Type::Text, nullable: true } => self.unsupported(
                what,
                "string operations on non-optional strings (an `Option<String>` has no such method in Rust)",
                span,
            ),
            other => self.mismatch(&format!("`{what}`"), "string", other, span),
        }
    }

    fn expr(&mut self, e: &Expr) -> (Expr, Ty) {
        let span = e.span;
        let rebuild = |kind: ExprKind| Expr::new(kind, span);
        match &e.kind {
            ExprKind::Field(name) => (e.clone(), self.field(name, span)),
            ExprKind::Lit(v) => (e.clone(), literal_type(v)),
            ExprKind::Param(name) => (e.clone(), self.param(name, span)),
            ExprKind::Not(inner) => {
                let (inner, ty) = self.expr(inner);
                self.require_bool(&ty, inner.span, "`not`", false);
                (rebuild(ExprKind::Not(Box::new(inner))), Ty::of(Type::Bool))
            }
            ExprKind::And(items) | ExprKind::Or(items) => {
                let word = if matches!(e.kind, ExprKind::And(_)) { "`and`" } else { "`or`" };
                let checked: Vec<Expr> = items
                    .iter()
                    .map(|item| {
                        let (c, ty) = self.expr(item);
                        self.require_bool(&ty, item.span, word, false);
                        c
                    })
                    .collect();
                let kind =
                    if matches!(e.kind, ExprKind::And(_)) { ExprKind::And(checked) } else { ExprKind::Or(checked) };
                (rebuild(kind), Ty::of(Type::Bool))
            }
            ExprKind::Neg(inner) => {
                let (inner, ty) = self.expr(inner);
                let ty = self.numeric(&ty, inner.span, "unary `-`");
                (rebuild(ExprKind::Neg(Box::new(inner))), ty)
            }
            ExprKind::Cmp { op, lhs, rhs } => self.cmp(*op, lhs, rhs, span),
            ExprKind::Arith { op, lhs, rhs } => self.arith(*op, lhs, rhs, span),
            ExprKind::StrTest { op, subject, pattern } => {
                let name = match op {
                    StrOp::StartsWith => "startswith",
                    StrOp::EndsWith => "endswith",
                    StrOp::Contains => "in",
                };
                let (subject, sty) = self.expr(subject);
                self.require_string(&sty, subject.span, name);
                let (pattern, pty) = self.expr(pattern);
                if !is_pattern(&pattern) {
                    self.unsupported(
                        name,
                        "a string literal, a parameter, or `.lower()` of one as the pattern \
                         (the argument of `startswith`/`endswith`, the left operand of `in`)",
                        pattern.span,
                    );
                } else {
                    self.require_string(&pty, pattern.span, name);
                }
                (
                    rebuild(ExprKind::StrTest { op: *op, subject: Box::new(subject), pattern: Box::new(pattern) }),
                    Ty::of(Type::Bool),
                )
            }
            ExprKind::Lower(inner) => {
                let (inner, ty) = self.expr(inner);
                self.require_string(&ty, inner.span, "lower");
                (rebuild(ExprKind::Lower(Box::new(inner))), Ty::of(Type::Text))
            }
            ExprKind::IEq(a, b) => {
                let (a, aty) = self.expr(a);
                self.require_string(&aty, a.span, "ieq");
                let (b, bty) = self.expr(b);
                self.require_string(&bty, b.span, "ieq");
                (rebuild(ExprKind::IEq(Box::new(a), Box::new(b))), Ty::of(Type::Bool))
            }
            ExprKind::Len(inner) => {
                let (inner, ty) = self.expr(inner);
                self.require_string(&ty, inner.span, "len");
                (rebuild(ExprKind::Len(Box::new(inner))), Ty::of(Type::Int))
            }
            ExprKind::In { needle, haystack } => self.membership(needle, haystack, span),
            ExprKind::IsNull { expr, negated } => {
                let (inner, ty) = self.expr(expr);
                match &ty {
                    Ty::Value { nullable: true, .. } | Ty::Null | Ty::Any | Ty::Error => {}
                    other => {
                        let context = if *negated { "`is not None`" } else { "`is None`" };
                        self.mismatch(context, "an optional value", other, inner.span);
                    }
                }
                (rebuild(ExprKind::IsNull { expr: Box::new(inner), negated: *negated }), Ty::of(Type::Bool))
            }
            ExprKind::Agg { func, arg } => {
                self.push(ErrorKind::MisplacedAggregate { func: func.name().to_owned() }, span);
                // The argument may hold errors of its own.
                if let Some(arg) = arg {
                    self.expr(arg);
                }
                (e.clone(), Ty::Error)
            }
        }
    }

    fn field(&mut self, name: &str, span: Span) -> Ty {
        match self.schema.column_by_field(name) {
            Some(col) if !col.ty.comparable() => {
                // A JSON document has no comparison Rust and every database agree on
                // (key order, number spelling): it is stored, never queried.
                let supported = "storing and reading JSON fields; queries compare bools, numbers, strings, \
                                 bytes, timestamps and UUIDs";
                self.unsupported(&format!("the JSON field `{name}` in a query"), supported, span);
                Ty::Error
            }
            Some(col) => Ty::Value { ty: col.ty, nullable: col.nullable },
            None => {
                let suggestion = did_you_mean(name, self.schema.columns.iter().map(|c| c.field.as_str()));
                let fields: Vec<&str> = self.schema.columns.iter().map(|c| c.field.as_str()).collect();
                let error = Error::new(
                    ErrorKind::UnknownField { name: name.to_owned(), model: self.schema.model.clone(), suggestion },
                    span,
                )
                .with_hint(format!("the fields are {}", fields.join(", ")));
                self.errors.push(error);
                Ty::Error
            }
        }
    }

    fn param(&mut self, name: &str, span: Span) -> Ty {
        match (self.params)(name) {
            ParamType::Unknown => Ty::Any,
            ParamType::Scalar(t) => Ty::of(t),
            ParamType::Null => Ty::Null,
            ParamType::List(t) => Ty::List(t),
            ParamType::Missing => {
                self.push(ErrorKind::UnboundParam { name: name.to_owned() }, span);
                Ty::Error
            }
        }
    }

    /// The type of a numeric operand, or `Error` after reporting why it is not one.
    fn numeric(&mut self, ty: &Ty, span: Span, what: &str) -> Ty {
        match ty {
            Ty::Value { ty: Type::Int | Type::Float, nullable: false } | Ty::Any | Ty::Error => ty.clone(),
            Ty::Value { ty: Type::Text, nullable: false } => {
                self.unsupported(what, "arithmetic on numbers (strings have no arithmetic here)", span);
                Ty::Error
            }
            other => {
                self.mismatch(&format!("`{what}`"), "a non-optional number", other, span);
                Ty::Error
            }
        }
    }

    fn cmp(&mut self, op: CmpOp, lhs: &Expr, rhs: &Expr, span: Span) -> (Expr, Ty) {
        let (mut l, lty) = self.expr(lhs);
        let (mut r, rty) = self.expr(rhs);
        let context = quoted(op);
        let ordering = !matches!(op, CmpOp::Eq | CmpOp::Ne);
        for (ty, s) in [(&lty, l.span), (&rty, r.span)] {
            match ty {
                Ty::List(_) => self.mismatch(context, "a single value", ty, s),
                Ty::Value { nullable: true, .. } | Ty::Null if ordering => self.unsupported(
                    op.symbol(),
                    "ordering comparisons on non-optional values; test `is not None` and compare a non-optional value",
                    s,
                ),
                _ => {}
            }
        }
        self.unify(context, &mut l, &lty, &mut r, &rty);
        (Expr::new(ExprKind::Cmp { op, lhs: Box::new(l), rhs: Box::new(r) }, span), Ty::of(Type::Bool))
    }

    /// Makes two operands of a comparison agree: equal types, an integer literal
    /// rewritten to a float against a float, `None` only against an optional value.
    fn unify(&mut self, context: &str, l: &mut Expr, lty: &Ty, r: &mut Expr, rty: &Ty) {
        match (lty, rty) {
            (Ty::Error | Ty::Any | Ty::List(_), _) | (_, Ty::Error | Ty::Any | Ty::List(_)) => {}
            (Ty::Null, Ty::Null) => {}
            (Ty::Null, Ty::Value { nullable, .. }) | (Ty::Value { nullable, .. }, Ty::Null) => {
                if !nullable {
                    let (value_ty, null_span) = if *lty == Ty::Null { (rty, l.span) } else { (lty, r.span) };
                    let kind = ErrorKind::TypeMismatch {
                        context: context.to_owned(),
                        expected: describe(value_ty),
                        found: "None".into(),
                    };
                    self.errors
                        .push(Error::new(kind, null_span).with_hint("only optional (`Option`) fields can be None"));
                }
            }
            (Ty::Value { ty: a, .. }, Ty::Value { ty: b, .. }) => {
                if a == b {
                    return;
                }
                match (a, b) {
                    (Type::Float, Type::Int) if int_to_float(r) => {}
                    (Type::Int, Type::Float) if int_to_float(l) => {}
                    // An integer parameter against a float value compares numerically.
                    (Type::Float, Type::Int) if matches!(r.kind, ExprKind::Param(_)) => {}
                    (Type::Int, Type::Float) if matches!(l.kind, ExprKind::Param(_)) => {}
                    _ => self.mismatch(context, &a.to_string(), rty, r.span),
                }
            }
        }
    }

    fn arith(&mut self, op: ArithOp, lhs: &Expr, rhs: &Expr, span: Span) -> (Expr, Ty) {
        let (mut l, lty) = self.expr(lhs);
        let (mut r, rty) = self.expr(rhs);
        let lty = self.numeric(&lty, l.span, op.symbol());
        let rty = self.numeric(&rty, r.span, op.symbol());
        let ty = match (&lty, &rty) {
            (Ty::Error, _) | (_, Ty::Error) => Ty::Error,
            (Ty::Any, t) | (t, Ty::Any) => t.clone(),
            (Ty::Value { ty: a, .. }, Ty::Value { ty: b, .. }) if a == b => lty.clone(),
            (Ty::Value { ty: Type::Float, .. }, _) if int_to_float(&mut r) => lty.clone(),
            (_, Ty::Value { ty: Type::Float, .. }) if int_to_float(&mut l) => rty.clone(),
            (Ty::Value { ty: a, .. }, _) => {
                self.mismatch(&format!("`{}`", op.symbol()), &a.to_string(), &rty, r.span);
                Ty::Error
            }
            _ => Ty::Error,
        };
        // SQL's `%` is defined for integers only (PostgreSQL has no float `%`, SQLite
        // truncates to integers), so a float remainder could not run on the database.
        let ty = if op == ArithOp::Rem && matches!(ty, Ty::Value { ty: Type::Float, .. }) {
            let kind =
                ErrorKind::TypeMismatch { context: "`%`".into(), expected: "integers".into(), found: describe(&ty) };
            self.errors.push(Error::new(kind, span).with_hint(
                "`%` needs integer operands: SQL has no float remainder; compare integers, or filter the float in Rust",
            ));
            Ty::Error
        } else {
            ty
        };
        (Expr::new(ExprKind::Arith { op, lhs: Box::new(l), rhs: Box::new(r) }, span), ty)
    }

    fn membership(&mut self, needle: &Expr, haystack: &Haystack, span: Span) -> (Expr, Ty) {
        let (mut n, nty) = self.expr(needle);
        match &nty {
            Ty::Value { nullable: true, .. } | Ty::Null => {
                self.unsupported("in", "`in` on non-optional values (test `is not None` first)", n.span);
            }
            Ty::List(_) => self.mismatch("`in`", "a single value", &nty, n.span),
            _ => {}
        }
        let haystack = match haystack {
            Haystack::Items(items) => {
                let mut checked = Vec::with_capacity(items.len());
                for item in items {
                    let (mut c, ity) = self.expr(item);
                    if !matches!(c.kind, ExprKind::Lit(_) | ExprKind::Param(_)) {
                        self.unsupported("in item", "literals and parameters as the items of `in (…)`", c.span);
                    } else if ity == Ty::Null {
                        self.mismatch("`in`", &describe(&nty), &ity, c.span);
                    } else {
                        self.unify("`in`", &mut n, &nty, &mut c, &ity);
                    }
                    checked.push(c);
                }
                Haystack::Items(checked)
            }
            Haystack::Param(name) => match (self.params)(name) {
                ParamType::Missing => {
                    self.push(ErrorKind::UnboundParam { name: name.clone() }, span);
                    haystack.clone()
                }
                ParamType::Unknown | ParamType::List(None) => haystack.clone(),
                ParamType::List(Some(t)) => {
                    if let Ty::Value { ty, .. } = &nty
                        && *ty != t
                        && !(*ty == Type::Float && t == Type::Int)
                    {
                        self.mismatch("`in`", &format!("a list of {ty}"), &Ty::List(Some(t)), span);
                    }
                    haystack.clone()
                }
                // `x in p` with `p` a string: a substring test.
                ParamType::Scalar(Type::Text) if matches!(nty, Ty::Value { ty: Type::Text, .. } | Ty::Any) => {
                    let subject = Expr::param(name.clone(), span);
                    return self.expr(&Expr::new(
                        ExprKind::StrTest { op: StrOp::Contains, subject: Box::new(subject), pattern: Box::new(n) },
                        span,
                    ));
                }
                other => {
                    let found = match other {
                        ParamType::Scalar(t) => Ty::of(t),
                        _ => Ty::Null,
                    };
                    self.mismatch("`in`", "a list or a string", &found, span);
                    haystack.clone()
                }
            },
        };
        (Expr::new(ExprKind::In { needle: Box::new(n), haystack }, span), Ty::of(Type::Bool))
    }
}

/// The operator in backquotes, as messages name it; static, because every comparison
/// needs it in hand and only a failing one uses it.
fn quoted(op: CmpOp) -> &'static str {
    match op {
        CmpOp::Eq => "`==`",
        CmpOp::Ne => "`!=`",
        CmpOp::Lt => "`<`",
        CmpOp::Le => "`<=`",
        CmpOp::Gt => "`>`",
        CmpOp::Ge => "`>=`",
    }
}

fn literal_type(v: &Value) -> Ty {
    match v {
        Value::Null => Ty::Null,
        Value::List(items) => Ty::List(items.iter().find_map(Value::ty)),
        v => v.ty().map_or(Ty::Error, Ty::of),
    }
}

/// Rewrites an integer literal (or a negated one, `-(5)`) into the equal float
/// literal; false, leaving `e` alone, if `e` is not one.
fn int_to_float(e: &mut Expr) -> bool {
    match &mut e.kind {
        ExprKind::Lit(Value::Int(i)) => {
            // Exact for |i| ≤ 2^53; beyond that the nearest float, as Python's `float(i)`.
            e.kind = ExprKind::Lit(Value::Float(*i as f64));
            true
        }
        ExprKind::Neg(inner) => int_to_float(inner),
        _ => false,
    }
}

/// What a string test's pattern may be: a value known before the query runs, so
/// that the SQL can escape it into a `LIKE` pattern.
fn is_pattern(e: &Expr) -> bool {
    match &e.kind {
        ExprKind::Lit(_) | ExprKind::Param(_) => true,
        ExprKind::Lower(inner) => matches!(inner.kind, ExprKind::Lit(_) | ExprKind::Param(_)),
        _ => false,
    }
}

/// The closest field name within edit distance 2, or one that extends or shortens
/// `name` (`first` → `first_name`).
fn did_you_mean<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> Option<String> {
    candidates
        .filter_map(|c| {
            let d = strsim::levenshtein(name, c);
            let prefix = c.starts_with(name) || name.starts_with(c);
            (d <= 2 || prefix).then_some((d, c))
        })
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.to_owned())
}
