//! A hand-written fast path for the text form: a recursive-descent reader over the
//! bytes that builds the same [`Lambda`] as the pest grammar and its lowering (same
//! nodes, spans, names and literal values) for the inputs it fully understands.
//!
//! pest pays a rule call, a stack check and error bookkeeping for every rule it
//! tries, and a typical query tries several hundred; this reader looks at each byte
//! about once. It is deliberately partial: on anything it does not handle — every
//! error, a construct outside the common subset, non-ASCII text outside string
//! literals, nesting beyond [`MAX_NESTING`], a tree deeper than [`MAX_DEPTH`] — it
//! *declines* (returns `None`) and [`super::parse`] runs the pest grammar, which
//! stays the authority for the language and for every error message. A decline is
//! always safe; an answer must be exactly pest's. `grammar/tests/text_fast_path.rs`
//! checks that differentially over the repository's queries, mutations of them and
//! generated lambdas.
//!
//! How the grammar's rules map here:
//!
//! * Whitespace is the grammar's `WHITESPACE` (space, tab, line feed, carriage
//!   return), allowed between any two tokens, as pest's implicit whitespace is.
//! * A pair's span in the pest path is its text with trailing whitespace trimmed
//!   (`span_of`): from its first token to the end of its last. `last_end` (the end
//!   of the last token read) gives that end here.
//! * Words are ASCII `[A-Za-z_][A-Za-z0-9_]*`; a word followed by a non-ASCII byte
//!   might continue with an `XID_CONTINUE` character, so it declines.
//! * Every Python keyword is refused as a name, as the grammar's `keyword` rule
//!   does; `assert` (a name to the grammar, because `as` decides first) declines.

use super::{MAX_DEPTH, MAX_NESTING, number_value, unescape};
use crate::ir::{AggFunc, ArithOp, CmpOp, Expr, ExprKind, Haystack, Lambda, StrOp};
use crate::span::Span;
use crate::value::Value;

/// Reads `src` completely, or declines.
pub(super) fn parse(src: &str) -> Option<Lambda> {
    let mut p = Reader { src, bytes: src.as_bytes(), pos: 0, last_end: 0, param: "", nesting: 0 };
    p.skip_ws();
    if p.peek_word()? != "lambda" {
        return None;
    }
    p.advance_token(6);
    let param_start = p.pos;
    let param = p.name()?;
    let param_span = Span::new(param_start, p.last_end);
    p.param = param;
    if !p.eat(b':') {
        return None;
    }
    let body = p.expr()?;
    if p.pos != p.bytes.len() {
        return None;
    }
    Some(Lambda { param: param.to_owned(), param_span, body: body.expr, span: Span::new(0, src.trim_end().len()) })
}

/// An expression and the depth of its tree (see `Lowerer::node`).
struct Lowered {
    expr: Expr,
    depth: usize,
}

impl Lowered {
    fn leaf(kind: ExprKind, span: Span) -> Lowered {
        Lowered { expr: Expr::new(kind, span), depth: 1 }
    }
}

/// What a `postfix` amounts to, before the levels above decide what it may be.
enum Operand {
    Value(Lowered),
    /// A bare number literal (its text range), converted only once it is known
    /// whether a `-` folds into it: `-9223372036854775808` is only valid negated.
    Number(usize, usize),
    /// A tuple or list display, valid only on the right of `in`.
    Display(Vec<Lowered>),
}

impl Operand {
    /// The operand as a value; a display anywhere but after `in` is an error.
    fn value(self, src: &str) -> Option<Lowered> {
        match self {
            Operand::Value(v) => Some(v),
            Operand::Number(start, end) => number(src, start, end, false),
            Operand::Display(_) => None,
        }
    }
}

fn number(src: &str, start: usize, end: usize, negative: bool) -> Option<Lowered> {
    let value = number_value(src.get(start..end)?, negative).ok()?;
    Some(Lowered::leaf(ExprKind::Lit(value), Span::new(start, end)))
}

/// A postfix chain's head, as in `Lowerer::postfix`.
enum Head<'s> {
    Value(Lowered),
    LambdaParam,
    Name(&'s str, Span),
    Method { receiver: Lowered, name: &'s str },
}

/// The comparison operators (`comp_op`).
#[derive(Clone, Copy)]
enum CompOp {
    Cmp(CmpOp),
    In,
    NotIn,
    Is,
    IsNot,
}

struct Reader<'s> {
    src: &'s str,
    bytes: &'s [u8],
    /// The next byte to read; always past any whitespace.
    pos: usize,
    /// The end of the last token read.
    last_end: usize,
    /// The lambda parameter's name.
    param: &'s str,
    /// Brackets open around `pos`.
    nesting: usize,
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

fn is_word_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

fn is_word_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Python's keywords, which the grammar's `ident` refuses (and `assert`, see the
/// module comment).
fn is_keyword(word: &str) -> bool {
    matches!(
        word,
        "and"
            | "async"
            | "await"
            | "as"
            | "assert"
            | "break"
            | "class"
            | "continue"
            | "del"
            | "def"
            | "else"
            | "except"
            | "elif"
            | "for"
            | "from"
            | "finally"
            | "global"
            | "in"
            | "is"
            | "if"
            | "import"
            | "lambda"
            | "not"
            | "nonlocal"
            | "or"
            | "pass"
            | "return"
            | "raise"
            | "try"
            | "with"
            | "while"
            | "yield"
            | "False"
            | "None"
            | "True"
    )
}

impl<'s> Reader<'s> {
    fn skip_ws(&mut self) {
        while self.bytes.get(self.pos).is_some_and(|&b| is_ws(b)) {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn peek_at(&self, at: usize) -> Option<u8> {
        self.bytes.get(at).copied()
    }

    /// Consumes a token of `len` bytes and the whitespace after it.
    fn advance_token(&mut self, len: usize) {
        self.pos += len;
        self.last_end = self.pos;
        self.skip_ws();
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.advance_token(1);
            true
        } else {
            false
        }
    }

    /// The word at `at` (empty if none starts there); `None` (decline) when a
    /// non-ASCII byte follows it, which might continue it.
    fn word_at(&self, at: usize) -> Option<&'s str> {
        if !self.peek_at(at).is_some_and(is_word_start) {
            return Some("");
        }
        let mut end = at + 1;
        while self.peek_at(end).is_some_and(is_word_char) {
            end += 1;
        }
        if self.peek_at(end).is_some_and(|b| !b.is_ascii()) {
            return None;
        }
        self.src.get(at..end)
    }

    fn peek_word(&self) -> Option<&'s str> {
        self.word_at(self.pos)
    }

    /// A name that is not a keyword (the grammar's `ident`).
    fn name(&mut self) -> Option<&'s str> {
        let word = self.peek_word()?;
        if word.is_empty() || is_keyword(word) {
            return None;
        }
        self.advance_token(word.len());
        Some(word)
    }

    /// `Lowerer::node`: a node over children of `child_depth`, declining where the
    /// pest path reports the tree as too deep.
    fn node(kind: ExprKind, span: Span, child_depth: usize) -> Option<Lowered> {
        let depth = child_depth + 1;
        (depth <= MAX_DEPTH).then(|| Lowered { expr: Expr::new(kind, span), depth })
    }

    /// `expr`/`or_expr`.
    fn expr(&mut self) -> Option<Lowered> {
        self.chain("or", Self::and_expr, ExprKind::Or)
    }

    fn and_expr(&mut self) -> Option<Lowered> {
        self.chain("and", Self::not_expr, ExprKind::And)
    }

    /// `a <kw> b <kw> …` as one n-ary node; a single operand as it is.
    fn chain(
        &mut self,
        keyword: &str,
        operand: fn(&mut Self) -> Option<Lowered>,
        make: fn(Vec<Expr>) -> ExprKind,
    ) -> Option<Lowered> {
        let start = self.pos;
        let first = operand(self)?;
        if self.peek_word()? != keyword {
            return Some(first);
        }
        let mut depth = first.depth;
        let mut items = vec![first.expr];
        while self.peek_word()? == keyword {
            self.advance_token(keyword.len());
            let next = operand(self)?;
            depth = depth.max(next.depth);
            items.push(next.expr);
        }
        Self::node(make(items), Span::new(start, self.last_end), depth)
    }

    fn not_expr(&mut self) -> Option<Lowered> {
        let mut nots = Vec::new();
        while self.peek_word()? == "not" {
            nots.push(self.pos);
            self.advance_token(3);
        }
        let mut result = self.comparison()?;
        let end = self.last_end;
        for start in nots.into_iter().rev() {
            let depth = result.depth;
            result = Self::node(ExprKind::Not(Box::new(result.expr)), Span::new(start, end), depth)?;
        }
        Some(result)
    }

    /// The comparison operator at `pos`, consumed; `None` inside when there is none.
    /// A `not` or `is` that is not a complete operator declines: nothing else may
    /// follow an operand there.
    fn comp_op(&mut self) -> Option<Option<CompOp>> {
        let two = |p: &Self, second: u8| p.peek_at(p.pos + 1) == Some(second);
        let (op, len) = match self.peek() {
            Some(b'=') if two(self, b'=') => (CompOp::Cmp(CmpOp::Eq), 2),
            Some(b'!') if two(self, b'=') => (CompOp::Cmp(CmpOp::Ne), 2),
            Some(b'<') if two(self, b'=') => (CompOp::Cmp(CmpOp::Le), 2),
            Some(b'>') if two(self, b'=') => (CompOp::Cmp(CmpOp::Ge), 2),
            Some(b'<') => (CompOp::Cmp(CmpOp::Lt), 1),
            Some(b'>') => (CompOp::Cmp(CmpOp::Gt), 1),
            Some(b'=' | b'!') => return None,
            _ => match self.peek_word()? {
                "in" => (CompOp::In, 2),
                "not" => {
                    // `not_in`: `not`, at least one whitespace character, `in`.
                    let after = self.pos + 3;
                    let gap = self.bytes.get(after..)?.iter().take_while(|&&b| is_ws(b)).count();
                    if gap == 0 || self.word_at(after + gap)? != "in" {
                        return None;
                    }
                    (CompOp::NotIn, 3 + gap + 2)
                }
                "is" => {
                    let after = self.pos + 2;
                    let gap = self.bytes.get(after..)?.iter().take_while(|&&b| is_ws(b)).count();
                    if gap > 0 && self.word_at(after + gap)? == "not" {
                        (CompOp::IsNot, 2 + gap + 3)
                    } else {
                        (CompOp::Is, 2)
                    }
                }
                _ => return Some(None),
            },
        };
        self.advance_token(len);
        Some(Some(op))
    }

    fn comparison(&mut self) -> Option<Lowered> {
        let start = self.pos;
        let lhs = self.sum()?;
        let Some(op) = self.comp_op()? else { return lhs.value(self.src) };
        let lhs = lhs.value(self.src)?;
        let rhs = self.sum()?;
        let span = Span::new(start, self.last_end);
        match op {
            CompOp::Cmp(op) => {
                let rhs = rhs.value(self.src)?;
                let depth = lhs.depth.max(rhs.depth);
                Self::node(ExprKind::Cmp { op, lhs: Box::new(lhs.expr), rhs: Box::new(rhs.expr) }, span, depth)
            }
            CompOp::In => self.membership(lhs, rhs, span),
            CompOp::NotIn => {
                let test = self.membership(lhs, rhs, span)?;
                let depth = test.depth;
                Self::node(ExprKind::Not(Box::new(test.expr)), span, depth)
            }
            CompOp::Is | CompOp::IsNot => {
                let rhs = rhs.value(self.src)?;
                if !matches!(rhs.expr.kind, ExprKind::Lit(Value::Null)) {
                    return None;
                }
                let depth = lhs.depth;
                let negated = matches!(op, CompOp::IsNot);
                Self::node(ExprKind::IsNull { expr: Box::new(lhs.expr), negated }, span, depth)
            }
        }
    }

    /// `Lowerer::membership`.
    fn membership(&self, needle: Lowered, rhs: Operand, span: Span) -> Option<Lowered> {
        let haystack = match rhs {
            Operand::Display(items) => {
                let depth = needle.depth.max(items.iter().map(|l| l.depth).max().unwrap_or(0));
                let items = items.into_iter().map(|l| l.expr).collect();
                let kind = ExprKind::In { needle: Box::new(needle.expr), haystack: Haystack::Items(items) };
                return Self::node(kind, span, depth);
            }
            other => other.value(self.src)?,
        };
        if let ExprKind::Param(name) = haystack.expr.kind {
            let depth = needle.depth;
            let kind = ExprKind::In { needle: Box::new(needle.expr), haystack: Haystack::Param(name) };
            return Self::node(kind, span, depth);
        }
        let depth = needle.depth.max(haystack.depth);
        let kind =
            ExprKind::StrTest { op: StrOp::Contains, subject: Box::new(haystack.expr), pattern: Box::new(needle.expr) };
        Self::node(kind, span, depth)
    }

    /// `sum` and `product`: left-associative chains of binary operators.
    fn sum(&mut self) -> Option<Operand> {
        self.binary(Self::product, |b| match b {
            b'+' => Some(ArithOp::Add),
            b'-' => Some(ArithOp::Sub),
            _ => None,
        })
    }

    fn product(&mut self) -> Option<Operand> {
        self.binary(Self::unary, |b| match b {
            b'*' => Some(ArithOp::Mul),
            b'/' => Some(ArithOp::Div),
            b'%' => Some(ArithOp::Rem),
            _ => None,
        })
    }

    fn binary(
        &mut self,
        operand: fn(&mut Self) -> Option<Operand>,
        op_of: fn(u8) -> Option<ArithOp>,
    ) -> Option<Operand> {
        let start = self.pos;
        let first = operand(self)?;
        let Some(mut op) = self.peek().and_then(op_of) else { return Some(first) };
        let mut acc = first.value(self.src)?;
        loop {
            self.advance_token(1);
            let rhs = operand(self)?.value(self.src)?;
            let depth = acc.depth.max(rhs.depth);
            let kind = ExprKind::Arith { op, lhs: Box::new(acc.expr), rhs: Box::new(rhs.expr) };
            acc = Self::node(kind, Span::new(start, self.last_end), depth)?;
            match self.peek().and_then(op_of) {
                Some(next) => op = next,
                None => return Some(Operand::Value(acc)),
            }
        }
    }

    /// `neg* postfix`, folding a `-` directly before a bare number into it.
    fn unary(&mut self) -> Option<Operand> {
        let mut negs = Vec::new();
        while self.peek() == Some(b'-') {
            negs.push(self.pos);
            self.advance_token(1);
        }
        let operand = self.postfix()?;
        if negs.is_empty() {
            return Some(operand);
        }
        let end = self.last_end;
        let mut result = match operand {
            Operand::Number(start, number_end) => {
                // `negs` is not empty here.
                let minus = negs.pop()?;
                let mut lit = number(self.src, start, number_end, true)?;
                lit.expr.span = Span::new(minus, number_end);
                lit
            }
            other => other.value(self.src)?,
        };
        for start in negs.into_iter().rev() {
            let depth = result.depth;
            result = Self::node(ExprKind::Neg(Box::new(result.expr)), Span::new(start, end), depth)?;
        }
        Some(Operand::Value(result))
    }

    /// `primary (.name | (args))*`, as `Lowerer::postfix` lowers it.
    fn postfix(&mut self) -> Option<Operand> {
        let start = self.pos;
        let mut head = match self.peek()? {
            b if is_word_start(b) => {
                let word = self.peek_word()?;
                let span = Span::new(self.pos, self.pos + word.len());
                let head = match word {
                    "True" => Head::Value(Lowered::leaf(ExprKind::Lit(Value::Bool(true)), span)),
                    "False" => Head::Value(Lowered::leaf(ExprKind::Lit(Value::Bool(false)), span)),
                    "None" => Head::Value(Lowered::leaf(ExprKind::Lit(Value::Null), span)),
                    _ if is_keyword(word) => return None,
                    _ if word == self.param => Head::LambdaParam,
                    _ => Head::Name(word, span),
                };
                self.advance_token(word.len());
                head
            }
            b'0'..=b'9' => return self.number_then_postfix(start),
            b'.' if self.peek_at(self.pos + 1).is_some_and(|b| b.is_ascii_digit()) => {
                return self.number_then_postfix(start);
            }
            quote @ (b'"' | b'\'') => Head::Value(self.string(quote)?),
            b'(' => {
                let (mut items, comma) = self.items(b')')?;
                if items.len() == 1 && !comma {
                    Head::Value(items.pop()?)
                } else {
                    return self.display(items);
                }
            }
            b'[' => {
                let (items, _) = self.items(b']')?;
                return self.display(items);
            }
            _ => return None,
        };
        self.postfix_ops(start, &mut head)?;
        match head {
            Head::Value(v) => Some(Operand::Value(v)),
            Head::Name(name, span) => Some(Operand::Value(Lowered::leaf(ExprKind::Param(name.to_owned()), span))),
            Head::LambdaParam | Head::Method { .. } => None,
        }
    }

    /// A tuple or list display: valid only as a whole operand (no `.x`, no call).
    fn display(&self, items: Vec<Lowered>) -> Option<Operand> {
        if matches!(self.peek(), Some(b'.' | b'(')) { None } else { Some(Operand::Display(items)) }
    }

    /// A number literal; followed by `.name` or a call it is a value like any other.
    fn number_then_postfix(&mut self, start: usize) -> Option<Operand> {
        let end = self.number_token()?;
        self.advance_token(end - self.pos);
        if !matches!(self.peek(), Some(b'.' | b'(')) {
            return Some(Operand::Number(start, end));
        }
        let mut head = Head::Value(number(self.src, start, end, false)?);
        self.postfix_ops(start, &mut head)?;
        match head {
            Head::Value(v) => Some(Operand::Value(v)),
            _ => None,
        }
    }

    /// The end of the number token at `pos` (the grammar's `number`), or `None`
    /// when it is not one or a letter, digit, `_` or `.` follows it.
    fn number_token(&self) -> Option<usize> {
        let digits = |mut at: usize| -> Option<usize> {
            if !self.peek_at(at)?.is_ascii_digit() {
                return None;
            }
            at += 1;
            loop {
                match self.peek_at(at) {
                    Some(b) if b.is_ascii_digit() => at += 1,
                    Some(b'_') if self.peek_at(at + 1).is_some_and(|b| b.is_ascii_digit()) => at += 2,
                    _ => return Some(at),
                }
            }
        };
        let mut at = self.pos;
        if self.peek_at(at) == Some(b'.') {
            at = digits(at + 1)?;
        } else {
            at = digits(at)?;
            if self.peek_at(at) == Some(b'.') {
                at += 1;
                if self.peek_at(at).is_some_and(|b| b.is_ascii_digit()) {
                    at = digits(at)?;
                }
            }
        }
        if matches!(self.peek_at(at), Some(b'e' | b'E')) {
            let sign = usize::from(matches!(self.peek_at(at + 1), Some(b'+' | b'-')));
            // An `e` that starts no exponent is a letter after the number: declined below.
            if let Some(end) = digits(at + 1 + sign) {
                at = end;
            }
        }
        match self.peek_at(at) {
            Some(b) if is_word_char(b) || b == b'.' || !b.is_ascii() => None,
            _ => Some(at),
        }
    }

    /// A string literal starting with `quote` at `pos`, escapes decoded.
    fn string(&mut self, quote: u8) -> Option<Lowered> {
        let start = self.pos;
        let mut at = start + 1;
        loop {
            match self.peek_at(at)? {
                b'\\' => {
                    // `\` and any one character; a multi-byte one is skipped a byte at a
                    // time, none of which is a quote, backslash or line feed.
                    self.peek_at(at + 1)?;
                    at += 2;
                }
                b'\n' => return None,
                b if b == quote => break,
                _ => at += 1,
            }
        }
        let body = self.src.get(start + 1..at)?;
        let text = unescape(body, start + 1).ok()?;
        self.advance_token(at + 1 - start);
        Some(Lowered::leaf(ExprKind::Lit(Value::Text(text)), Span::new(start, at + 1)))
    }

    /// `( … )`, `[ … ]` and call arguments: the expressions and whether a comma
    /// appeared. `pos` is at the opening bracket.
    fn items(&mut self, close: u8) -> Option<(Vec<Lowered>, bool)> {
        self.nesting += 1;
        if self.nesting > MAX_NESTING {
            return None;
        }
        self.advance_token(1);
        let mut items = Vec::new();
        let mut comma = false;
        if !self.eat(close) {
            loop {
                items.push(self.expr()?);
                if self.eat(b',') {
                    comma = true;
                    if self.eat(close) {
                        break;
                    }
                } else if self.eat(close) {
                    break;
                } else {
                    return None;
                }
            }
        }
        self.nesting -= 1;
        Some((items, comma))
    }

    /// Attributes and calls after a primary, as `Lowerer::postfix` applies them.
    fn postfix_ops(&mut self, start: usize, head: &mut Head<'s>) -> Option<()> {
        loop {
            match self.peek() {
                Some(b'.') => {
                    self.advance_token(1);
                    let name = self.name()?;
                    let upto = Span::new(start, self.last_end);
                    *head = match std::mem::replace(head, Head::LambdaParam) {
                        Head::LambdaParam => Head::Value(Lowered::leaf(ExprKind::Field(name.to_owned()), upto)),
                        Head::Value(receiver) => Head::Method { receiver, name },
                        Head::Name(base, base_span) => {
                            Head::Method { receiver: Lowered::leaf(ExprKind::Param(base.to_owned()), base_span), name }
                        }
                        // A field of a field, or an attribute of a method.
                        Head::Method { .. } => return None,
                    };
                }
                Some(b'(') => {
                    let (args, _) = self.items(b')')?;
                    let upto = Span::new(start, self.last_end);
                    *head = match std::mem::replace(head, Head::LambdaParam) {
                        Head::Name(name, _) => Head::Value(function(name, args, upto)?),
                        Head::Method { receiver, name } => Head::Value(method(receiver, name, args, upto)?),
                        Head::LambdaParam | Head::Value(_) => return None,
                    };
                }
                _ => return Some(()),
            }
        }
    }
}

/// `Lowerer::function` for the calls it accepts.
fn function(name: &str, mut args: Vec<Lowered>, span: Span) -> Option<Lowered> {
    let depth = args.iter().map(|l| l.depth).max().unwrap_or(0);
    if let Some(func) = AggFunc::from_name(name) {
        if args.len() > 1 {
            return None;
        }
        let arg = args.pop().map(|l| Box::new(l.expr));
        return Reader::node(ExprKind::Agg { func, arg }, span, depth);
    }
    let kind = match (name, args.len()) {
        ("len", 1) => ExprKind::Len(Box::new(args.pop()?.expr)),
        ("ieq", 2) => {
            let b = args.pop()?;
            let a = args.pop()?;
            ExprKind::IEq(Box::new(a.expr), Box::new(b.expr))
        }
        _ => return None,
    };
    Reader::node(kind, span, depth)
}

/// `Lowerer::method` for the calls it accepts.
fn method(receiver: Lowered, name: &str, mut args: Vec<Lowered>, span: Span) -> Option<Lowered> {
    let depth = receiver.depth.max(args.iter().map(|l| l.depth).max().unwrap_or(0));
    let op = match (name, args.len()) {
        ("lower", 0) => return Reader::node(ExprKind::Lower(Box::new(receiver.expr)), span, depth),
        ("startswith", 1) => StrOp::StartsWith,
        ("endswith", 1) => StrOp::EndsWith,
        _ => return None,
    };
    let pattern = args.pop()?;
    let kind = ExprKind::StrTest { op, subject: Box::new(receiver.expr), pattern: Box::new(pattern.expr) };
    Reader::node(kind, span, depth)
}
