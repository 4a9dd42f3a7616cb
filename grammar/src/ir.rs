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
    pub param_span: Span,
    pub body: Expr,
    pub span: Span,
}

/// An expression node with the span of the syntax it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

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
    Cmp {
        op: CmpOp,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
    Arith {
        op: ArithOp,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
    /// `c.s.starts_with(p)` / `c.s.startswith(p)`, `ends_with`, `contains` / `p in c.s`.
    StrTest {
        op: StrOp,
        subject: Box<Expr>,
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
        needle: Box<Expr>,
        haystack: Haystack,
    },
    /// `c.o is None` (`negated: false`) / `c.o is not None` (`negated: true`).
    IsNull {
        expr: Box<Expr>,
        negated: bool,
    },
    /// `avg(m.runs)`, `count()`. Only valid as the whole body of a view's lambda.
    Agg {
        func: AggFunc,
        arg: Option<Box<Expr>>,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub enum Haystack {
    /// A literal list of items (each a literal or parameter).
    Items(Vec<Expr>),
    /// A parameter bound to a [`Value::List`].
    Param(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StrOp {
    StartsWith,
    EndsWith,
    Contains,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AggFunc {
    Count,
    Sum,
    Min,
    Max,
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
    pub fn name(self) -> &'static str {
        match self {
            AggFunc::Count => "count",
            AggFunc::Sum => "sum",
            AggFunc::Min => "min",
            AggFunc::Max => "max",
            AggFunc::Avg => "avg",
        }
    }

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
    pub fn new(kind: ExprKind, span: Span) -> Expr {
        Expr { kind, span }
    }

    pub fn field(name: impl Into<String>, span: Span) -> Expr {
        Expr::new(ExprKind::Field(name.into()), span)
    }

    pub fn lit(value: impl Into<Value>, span: Span) -> Expr {
        Expr::new(ExprKind::Lit(value.into()), span)
    }

    pub fn param(name: impl Into<String>, span: Span) -> Expr {
        Expr::new(ExprKind::Param(name.into()), span)
    }

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
