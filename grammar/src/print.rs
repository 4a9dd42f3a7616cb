//! IR → text form. `parse(print(l)) == l` up to spans (property-tested).
//!
//! Parentheses are added only where the text form's precedence would otherwise
//! give a different tree: a looser operator inside a tighter one, the right operand
//! of a left-associative operator at the same level, an `and` directly inside an
//! `and` (the parser would flatten it), a comparison inside a comparison
//! (comparisons do not chain).
//!
//! What has no text spelling, and how it prints (none of it comes out of the
//! parser; only hand-built IR can hold it):
//!
//! * NaN prints as `nan`, which does not parse: Python has no NaN literal either.
//!   Infinities print as `1e999` / `-1e999`, which parse back to them.
//! * `And`/`Or` with fewer than two operands print as what they mean (`True`,
//!   `False`, or the single operand), so they parse back to something equivalent
//!   but not to the same tree.
//! * `StrTest::Contains` whose subject is a bare parameter prints as `x in p`, which
//!   parses as `In { haystack: Param(p) }`; the checker turns that back into a
//!   substring test when `p` is bound to a string.
//! * A `Lit(List)` prints as a tuple, which only parses after `in`.

use crate::ir::{ArithOp, Expr, ExprKind, Haystack, Lambda, StrOp};
use crate::value::Value;

/// The whole lambda in Python spelling: `lambda c: c.x == 1 and c.s.startswith("m")`.
pub fn lambda(l: &Lambda) -> String {
    format!("lambda {}: {}", l.param, expr(&l.body, &l.param))
}

/// One expression in Python spelling, with the minimum parentheses needed to parse
/// back to the same tree.
pub fn expr(e: &Expr, param: &str) -> String {
    let mut out = String::new();
    Printer { param, out: &mut out }.expr(e, Prec::Or);
    out
}

/// Binding strength, loosest first (Python's order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Prec {
    Or,
    And,
    Not,
    Cmp,
    Sum,
    Product,
    Unary,
    Postfix,
}

impl Prec {
    fn tighter(self) -> Prec {
        match self {
            Prec::Or => Prec::And,
            Prec::And => Prec::Not,
            Prec::Not => Prec::Cmp,
            Prec::Cmp => Prec::Sum,
            Prec::Sum => Prec::Product,
            Prec::Product => Prec::Unary,
            Prec::Unary | Prec::Postfix => Prec::Postfix,
        }
    }
}

/// How tightly `e`'s printed form binds.
fn prec(e: &Expr) -> Prec {
    match &e.kind {
        ExprKind::Or(v) if v.len() >= 2 => Prec::Or,
        ExprKind::And(v) if v.len() >= 2 => Prec::And,
        // A one-operand chain prints as its operand.
        ExprKind::Or(v) | ExprKind::And(v) => v.first().map_or(Prec::Postfix, prec),
        ExprKind::Not(_) => Prec::Not,
        ExprKind::Cmp { .. } | ExprKind::In { .. } | ExprKind::IsNull { .. } => Prec::Cmp,
        ExprKind::StrTest { op: StrOp::Contains, .. } => Prec::Cmp,
        ExprKind::Arith { op: ArithOp::Add | ArithOp::Sub, .. } => Prec::Sum,
        ExprKind::Arith { .. } => Prec::Product,
        ExprKind::Neg(_) => Prec::Unary,
        // `-5` is a unary minus as far as the grammar's precedence is concerned.
        ExprKind::Lit(Value::Int(i)) if *i < 0 => Prec::Unary,
        ExprKind::Lit(Value::Float(x)) if x.is_sign_negative() && !x.is_nan() => Prec::Unary,
        _ => Prec::Postfix,
    }
}

struct Printer<'a> {
    param: &'a str,
    out: &'a mut String,
}

impl Printer<'_> {
    /// Prints `e`, in parentheses when it binds more loosely than `min`.
    fn expr(&mut self, e: &Expr, min: Prec) {
        if prec(e) < min {
            self.out.push('(');
            self.bare(e);
            self.out.push(')');
        } else {
            self.bare(e);
        }
    }

    fn bare(&mut self, e: &Expr) {
        match &e.kind {
            ExprKind::Field(f) => {
                self.out.push_str(self.param);
                self.out.push('.');
                self.out.push_str(f);
            }
            ExprKind::Lit(v) => literal(v, self.out),
            ExprKind::Param(p) => self.out.push_str(p),
            ExprKind::Not(inner) => {
                self.out.push_str("not ");
                self.expr(inner, Prec::Not);
            }
            ExprKind::Neg(inner) => {
                self.out.push('-');
                // `-5` would parse as a negative literal, `--5` likewise; a
                // parenthesised number keeps the negation a node of its own.
                let number = matches!(inner.kind, ExprKind::Lit(Value::Int(_) | Value::Float(_)));
                if number {
                    self.out.push('(');
                    self.bare(inner);
                    self.out.push(')');
                } else {
                    self.expr(inner, Prec::Unary);
                }
            }
            ExprKind::And(v) => self.chain(v, " and ", Prec::And, "True"),
            ExprKind::Or(v) => self.chain(v, " or ", Prec::Or, "False"),
            ExprKind::Cmp { op, lhs, rhs } => {
                self.expr(lhs, Prec::Sum);
                self.out.push(' ');
                self.out.push_str(op.symbol());
                self.out.push(' ');
                self.expr(rhs, Prec::Sum);
            }
            ExprKind::Arith { op, lhs, rhs } => {
                let level = prec(e);
                self.expr(lhs, level);
                self.out.push(' ');
                self.out.push_str(op.symbol());
                self.out.push(' ');
                self.expr(rhs, level.tighter());
            }
            ExprKind::StrTest { op: StrOp::Contains, subject, pattern } => {
                self.expr(pattern, Prec::Sum);
                self.out.push_str(" in ");
                // A parenthesised subject keeps a tuple-looking or bare-name subject
                // from reading as a membership test where parentheses help.
                self.expr(subject, Prec::Sum);
            }
            ExprKind::StrTest { op, subject, pattern } => {
                self.expr(subject, Prec::Postfix);
                self.out.push_str(if *op == StrOp::StartsWith { ".startswith(" } else { ".endswith(" });
                self.expr(pattern, Prec::Or);
                self.out.push(')');
            }
            ExprKind::Lower(inner) => {
                self.expr(inner, Prec::Postfix);
                self.out.push_str(".lower()");
            }
            ExprKind::IEq(a, b) => {
                self.out.push_str("ieq(");
                self.expr(a, Prec::Or);
                self.out.push_str(", ");
                self.expr(b, Prec::Or);
                self.out.push(')');
            }
            ExprKind::Len(inner) => {
                self.out.push_str("len(");
                self.expr(inner, Prec::Or);
                self.out.push(')');
            }
            ExprKind::In { needle, haystack } => {
                self.expr(needle, Prec::Sum);
                self.out.push_str(" in ");
                match haystack {
                    Haystack::Param(p) => self.out.push_str(p),
                    Haystack::Items(items) => {
                        self.out.push('(');
                        for (i, item) in items.iter().enumerate() {
                            if i > 0 {
                                self.out.push_str(", ");
                            }
                            self.expr(item, Prec::Or);
                        }
                        // `(x,)` is a one-element tuple; `(x)` is just `x`.
                        if items.len() == 1 {
                            self.out.push(',');
                        }
                        self.out.push(')');
                    }
                }
            }
            ExprKind::IsNull { expr, negated } => {
                self.expr(expr, Prec::Sum);
                self.out.push_str(if *negated { " is not None" } else { " is None" });
            }
            ExprKind::Agg { func, arg } => {
                self.out.push_str(func.name());
                self.out.push('(');
                if let Some(arg) = arg {
                    self.expr(arg, Prec::Or);
                }
                self.out.push(')');
            }
        }
    }

    /// `a and b and c`: operands at the next tighter level, so a nested chain of the
    /// same operator keeps its parentheses (and its own node).
    fn chain(&mut self, operands: &[Expr], separator: &str, level: Prec, empty: &str) {
        match operands {
            [] => self.out.push_str(empty),
            [only] => self.bare(only),
            _ => {
                for (i, operand) in operands.iter().enumerate() {
                    if i > 0 {
                        self.out.push_str(separator);
                    }
                    self.expr(operand, level.tighter());
                }
            }
        }
    }
}

/// A literal in Python spelling that parses back to the same value.
fn literal(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("None"),
        Value::Bool(true) => out.push_str("True"),
        Value::Bool(false) => out.push_str("False"),
        Value::Int(i) => out.push_str(&i.to_string()),
        Value::Float(x) => out.push_str(&float(*x)),
        Value::Text(s) => string(s, out),
        // The text form has no literals of these types (they are bound parameters;
        // the IR never holds one as a literal): the spelling is for messages only.
        Value::Bytes(_) | Value::Timestamp(_) | Value::Uuid(_) | Value::Json(_) => out.push_str(&v.to_string()),
        Value::List(items) => {
            out.push('(');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                literal(item, out);
            }
            if items.len() == 1 {
                out.push(',');
            }
            out.push(')');
        }
    }
}

/// The shortest text that parses back to exactly `x` (Rust's `{:?}` is the shortest
/// round-tripping representation and always has a `.` or an exponent, so it reads
/// as a float, not an integer).
fn float(x: f64) -> String {
    if x.is_nan() {
        "nan".to_owned()
    } else if x.is_infinite() {
        if x > 0.0 { "1e999".to_owned() } else { "-1e999".to_owned() }
    } else {
        format!("{x:?}")
    }
}

/// A double-quoted Python string literal. Quotes, backslashes and control
/// characters are escaped; everything else is written as itself.
fn string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}
