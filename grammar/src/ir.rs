//! The intermediate representation shared by the text form and the macro form.
//!
//! Both front ends lower to [`Lambda`]; everything after that (checking, DNF,
//! planning, SQL, evaluation) only ever sees this IR, which is what makes the two
//! forms give the same plan, keys and SQL.

use crate::span::Span;
use crate::value::Value;

/// `lambda c: <body>` / `|c| <body>`.
#[derive(Clone, Debug, PartialEq)]
pub struct Lambda {
    /// The parameter's name (`c`). Field references are resolved against it while
    /// parsing, so the body only contains [`ExprKind::Field`].
    pub param: String,
    /// Where the parameter was written, for messages about it.
    pub param_span: Span,
    /// The filter (a boolean expression) or, for a view, the aggregate.
    pub body: Expr,
    /// The whole lambda.
    pub span: Span,
}

/// An expression node with the span of the syntax it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    /// What the node is.
    pub kind: ExprKind,
    /// The syntax it came from: byte offsets into the text form's source, or the
    /// macro form's node number (see [`crate::span`]).
    pub span: Span,
}

/// The kinds of expression node, one per construct of the language (DESIGN.md,
/// "The language"), each with its spelling in both forms.
#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    /// `c.first_name`: a field of the model, by its Rust field name.
    Field(String),
    /// A literal. `None` is `Lit(Value::Null)`; the macro form's `Some(x)` is lowered
    /// to `x` (comparisons against an `Option` column are null-aware anyway).
    Lit(Value),
    /// A bound parameter by name: a free name in the text form, a captured
    /// variable or expression in the macro form (named `p0`, `p1`, …).
    Param(String),
    /// `not e` / `!e`.
    Not(Box<Expr>),
    /// `-e`.
    Neg(Box<Expr>),
    /// `a and b and …`: n-ary; the parser flattens an unparenthesised chain.
    And(Vec<Expr>),
    /// `a or b or …`: n-ary; the parser flattens an unparenthesised chain.
    Or(Vec<Expr>),
    /// `lhs op rhs` for `== != < <= > >=`; `==` and `!=` are null-aware, as Rust's
    /// `Option` comparisons are.
    Cmp {
        /// The comparison.
        op: CmpOp,
        /// The left operand.
        lhs: Box<Expr>,
        /// The right operand.
        rhs: Box<Expr>,
    },
    /// `lhs op rhs` for `+ - * / %`, with Rust's integer semantics (overflow and
    /// division by zero make the value undefined, see [`crate::eval`]).
    Arith {
        /// The operation.
        op: ArithOp,
        /// The left operand.
        lhs: Box<Expr>,
        /// The right operand.
        rhs: Box<Expr>,
    },
    /// `c.s.starts_with(p)` / `c.s.startswith(p)`, `ends_with`, `contains` / `p in c.s`.
    StrTest {
        /// Which test.
        op: StrOp,
        /// The string tested (a field, possibly lowercased).
        subject: Box<Expr>,
        /// What it must start with, end with or contain: a literal or a parameter.
        pattern: Box<Expr>,
    },
    /// `c.s.to_lowercase()` / `c.s.lower()`.
    Lower(Box<Expr>),
    /// `c.s.eq_ignore_ascii_case(x)` / `ieq(c.s, x)`.
    IEq(Box<Expr>, Box<Expr>),
    /// `c.s.len()` / `len(c.s)`: the length in bytes, as Rust counts it.
    Len(Box<Expr>),
    /// `c.x in (1, 2)` / `[1, 2].contains(&c.x)`, or `c.x in ids` / `ids.contains(&c.x)`.
    In {
        /// The value looked for (usually a field).
        needle: Box<Expr>,
        /// The values it is looked for among.
        haystack: Haystack,
    },
    /// `c.o is None` (`negated: false`) / `c.o is not None` (`negated: true`).
    IsNull {
        /// The tested value (an `Option` field).
        expr: Box<Expr>,
        /// `is not None` rather than `is None`.
        negated: bool,
    },
    /// `avg(m.runs)`, `count()`. Only valid as the whole body of a view's lambda.
    Agg {
        /// Which aggregate.
        func: AggFunc,
        /// What it aggregates: `None` for `count()`.
        arg: Option<Box<Expr>>,
    },
}

/// The right-hand side of `in`.
#[derive(Clone, Debug, PartialEq)]
pub enum Haystack {
    /// A literal list of items (each a literal or parameter).
    Items(Vec<Expr>),
    /// A parameter bound to a [`Value::List`].
    Param(String),
}

/// A comparison operator, spelled the same in Rust and Python.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CmpOp {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

/// An arithmetic operator, spelled the same in Rust and Python.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ArithOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`: on integers it truncates toward zero, as Rust's (not Python's `//`).
    Div,
    /// `%`: on integers the remainder takes the dividend's sign, as Rust's; floats
    /// have none (the checker rejects it).
    Rem,
}

/// A string test, byte-exact and case-sensitive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StrOp {
    /// `starts_with` / `startswith`: the only one a (prefix) index can serve.
    StartsWith,
    /// `ends_with` / `endswith`.
    EndsWith,
    /// `contains` / `pattern in subject`.
    Contains,
}

/// An aggregate of `view!` / a view lambda.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AggFunc {
    /// `count()`: the number of rows.
    Count,
    /// `sum(x)`.
    Sum,
    /// `min(x)`.
    Min,
    /// `max(x)`.
    Max,
    /// `avg(x)`.
    Avg,
}

impl CmpOp {
    /// The operator that gives `!(a op b)` for totally ordered, non-null operands.
    pub fn negate(self) -> CmpOp {
        match self {
            CmpOp::Eq => CmpOp::Ne,
            CmpOp::Ne => CmpOp::Eq,
            CmpOp::Lt => CmpOp::Ge,
            CmpOp::Le => CmpOp::Gt,
            CmpOp::Gt => CmpOp::Le,
            CmpOp::Ge => CmpOp::Lt,
        }
    }

    /// `a op b` ⇔ `b op.flip() a`.
    pub fn flip(self) -> CmpOp {
        match self {
            CmpOp::Eq => CmpOp::Eq,
            CmpOp::Ne => CmpOp::Ne,
            CmpOp::Lt => CmpOp::Gt,
            CmpOp::Le => CmpOp::Ge,
            CmpOp::Gt => CmpOp::Lt,
            CmpOp::Ge => CmpOp::Le,
        }
    }

    /// The Rust / Python spelling (they agree).
    pub fn symbol(self) -> &'static str {
        match self {
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }
}

impl ArithOp {
    /// The Rust / Python spelling (they agree).
    pub fn symbol(self) -> &'static str {
        match self {
            ArithOp::Add => "+",
            ArithOp::Sub => "-",
            ArithOp::Mul => "*",
            ArithOp::Div => "/",
            ArithOp::Rem => "%",
        }
    }
}

impl AggFunc {
    /// The name both forms call it by (`avg`).
    pub fn name(self) -> &'static str {
        match self {
            AggFunc::Count => "count",
            AggFunc::Sum => "sum",
            AggFunc::Min => "min",
            AggFunc::Max => "max",
            AggFunc::Avg => "avg",
        }
    }

    /// The aggregate called `name`, if there is one.
    pub fn from_name(name: &str) -> Option<AggFunc> {
        Some(match name {
            "count" => AggFunc::Count,
            "sum" => AggFunc::Sum,
            "min" => AggFunc::Min,
            "max" => AggFunc::Max,
            "avg" => AggFunc::Avg,
            _ => return None,
        })
    }
}

impl Expr {
    /// A node of `kind` at `span`.
    pub fn new(kind: ExprKind, span: Span) -> Expr {
        Expr { kind, span }
    }

    /// A field of the model, by its Rust field name.
    pub fn field(name: impl Into<String>, span: Span) -> Expr {
        Expr::new(ExprKind::Field(name.into()), span)
    }

    /// A literal.
    pub fn lit(value: impl Into<Value>, span: Span) -> Expr {
        Expr::new(ExprKind::Lit(value.into()), span)
    }

    /// A bound parameter, by name.
    pub fn param(name: impl Into<String>, span: Span) -> Expr {
        Expr::new(ExprKind::Param(name.into()), span)
    }

    /// `lhs op rhs`.
    ///
    /// ```
    /// use memdex_grammar::ir::{CmpOp, Expr};
    /// use memdex_grammar::{Span, print};
    ///
    /// let e = Expr::cmp(CmpOp::Eq, Expr::field("category_id", Span::DUMMY), Expr::lit(5, Span::DUMMY), Span::DUMMY);
    /// assert_eq!(print::expr(&e, "c"), "c.category_id == 5");
    /// ```
    pub fn cmp(op: CmpOp, lhs: Expr, rhs: Expr, span: Span) -> Expr {
        Expr::new(ExprKind::Cmp { op, lhs: Box::new(lhs), rhs: Box::new(rhs) }, span)
    }

    /// The direct children, in source order.
    pub fn children(&self) -> Vec<&Expr> {
        use ExprKind::*;
        match &self.kind {
            Field(_) | Lit(_) | Param(_) => vec![],
            Not(e) | Neg(e) | Lower(e) | Len(e) => vec![e],
            And(v) | Or(v) => v.iter().collect(),
            Cmp { lhs, rhs, .. } | Arith { lhs, rhs, .. } => vec![lhs, rhs],
            StrTest { subject, pattern, .. } => vec![subject, pattern],
            IEq(a, b) => vec![a, b],
            In { needle, haystack } => {
                let mut v = vec![needle.as_ref()];
                if let Haystack::Items(items) = haystack {
                    v.extend(items);
                }
                v
            }
            IsNull { expr, .. } => vec![expr],
            Agg { arg, .. } => arg.iter().map(|b| b.as_ref()).collect(),
        }
    }

    /// Mutable access to the direct children, in source order.
    pub fn children_mut(&mut self) -> Vec<&mut Expr> {
        use ExprKind::*;
        match &mut self.kind {
            Field(_) | Lit(_) | Param(_) => vec![],
            Not(e) | Neg(e) | Lower(e) | Len(e) => vec![e],
            And(v) | Or(v) => v.iter_mut().collect(),
            Cmp { lhs, rhs, .. } | Arith { lhs, rhs, .. } => vec![lhs, rhs],
            StrTest { subject, pattern, .. } => vec![subject, pattern],
            IEq(a, b) => vec![a, b],
            In { needle, haystack } => {
                let mut v = vec![needle.as_mut()];
                if let Haystack::Items(items) = haystack {
                    v.extend(items.iter_mut());
                }
                v
            }
            IsNull { expr, .. } => vec![expr],
            Agg { arg, .. } => arg.iter_mut().map(|b| b.as_mut()).collect(),
        }
    }

    /// A copy with every span set to [`Span::DUMMY`], for comparing the IR of the
    /// macro form with the IR of the text form.
    pub fn without_spans(&self) -> Expr {
        let mut e = self.clone();
        e.clear_spans();
        e
    }

    fn clear_spans(&mut self) {
        self.span = Span::DUMMY;
        for c in self.children_mut() {
            c.clear_spans();
        }
    }

    /// Every field name this expression mentions, in source order (with repeats).
    pub fn fields(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.visit(&mut |e| {
            if let ExprKind::Field(f) = &e.kind {
                out.push(f.as_str());
            }
        });
        out
    }

    /// Pre-order traversal.
    pub fn visit<'a>(&'a self, f: &mut dyn FnMut(&'a Expr)) {
        f(self);
        for c in self.children() {
            c.visit(f);
        }
    }
}
