//! Errors of every phase, with the span they point at, and their rendering with
//! line, column and a caret under the offending text.

use std::fmt;

use crate::span::Span;
use crate::value::Type;

/// What went wrong. Each phase has its own variants so callers (and tests) can tell
/// them apart without matching on message text.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ErrorKind {
    /// The text is not a lambda of the language. `expected` lists what would have
    /// been accepted at that point ("`and`, `or` or end of input").
    #[error("syntax error: expected {expected}")]
    Syntax { expected: String },
    #[error("`{name}` is not a field of {model}{}", did_you_mean(suggestion))]
    UnknownField { name: String, model: String, suggestion: Option<String> },
    #[error("type mismatch: {context} expects {expected}, found {found}")]
    TypeMismatch { context: String, expected: String, found: String },
    /// `c` used as a value, a second lambda parameter, a field of a field, …
    #[error("{message}")]
    LambdaParam { message: String },
    /// A function or method outside the language (`foo(c.x)`, `c.s.trim()`).
    #[error("`{name}` is not supported here; supported: {supported}")]
    Unsupported { name: String, supported: String },
    /// A free name in the text form with no value bound to it.
    #[error("no value bound for parameter `{name}`")]
    UnboundParam { name: String },
    #[error("the filter must be a boolean expression, found {found}")]
    NotBoolean { found: Type },
    #[error("an aggregate ({func}) may only be the whole body of a view's lambda")]
    MisplacedAggregate { func: String },
    #[error("the query expands to more than {limit} alternatives (`or` of `and`s); split it or use `in`")]
    TooManyDisjuncts { limit: usize },
    #[error("{message}")]
    Unindexable { message: String },
}

fn did_you_mean(s: &Option<String>) -> String {
    s.as_ref().map(|s| format!("; did you mean `{s}`?")).unwrap_or_default()
}

/// One error at one place.
#[derive(Clone, Debug, PartialEq)]
pub struct Error {
    pub kind: ErrorKind,
    pub span: Span,
    /// What to do about it, when there is something useful to say.
    pub hint: Option<String>,
}

impl Error {
    pub fn new(kind: ErrorKind, span: Span) -> Error {
        Error { kind, span, hint: None }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Error {
        self.hint = Some(hint.into());
        self
    }

    /// The message with line, column, the source line and a caret under the span:
    ///
    /// ```text
    /// error: `fist_name` is not a field of Customer; did you mean `first_name`?
    ///  --> line 1, column 13
    ///   |
    /// 1 | lambda c: c.fist_name == "x"
    ///   |             ^^^^^^^^^
    ///   = hint: …
    /// ```
    pub fn render(&self, source: &str) -> String {
        let start = (self.span.start as usize).min(source.len());
        let end = (self.span.end as usize).clamp(start, source.len());
        let start = floor_char_boundary(source, start);
        let end = floor_char_boundary(source, end);
        let line_start = source[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = source[start..].find('\n').map_or(source.len(), |i| start + i);
        let line_no = source[..start].matches('\n').count() + 1;
        let column = source[line_start..start].chars().count() + 1;
        let text = &source[line_start..line_end];
        let width = source[start..end.min(line_end).max(start)].chars().count().max(1);
        let gutter = " ".repeat(line_no.to_string().len());
        let mut out = format!(
            "error: {}\n{gutter}--> line {line_no}, column {column}\n{gutter} |\n{line_no} | {text}\n{gutter} | {}{}",
            self.kind,
            " ".repeat(column - 1),
            "^".repeat(width)
        );
        if let Some(h) = &self.hint {
            out.push_str(&format!("\n{gutter} = hint: {h}"));
        }
        out
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.kind)?;
        if let Some(h) = &self.hint {
            write!(f, " (hint: {h})")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

/// All the errors found in one query: phases collect rather than stop at the first.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Errors(pub Vec<Error>);

impl Errors {
    pub fn one(e: Error) -> Errors {
        Errors(vec![e])
    }

    pub fn push(&mut self, e: Error) {
        self.0.push(e);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(value)` when nothing was collected.
    pub fn into_result<T>(self, value: T) -> Result<T, Errors> {
        if self.0.is_empty() { Ok(value) } else { Err(self) }
    }

    pub fn render(&self, source: &str) -> String {
        self.0.iter().map(|e| e.render(source)).collect::<Vec<_>>().join("\n\n")
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Error> {
        self.0.iter()
    }
}

impl From<Error> for Errors {
    fn from(e: Error) -> Errors {
        Errors::one(e)
    }
}

impl fmt::Display for Errors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Errors {}
