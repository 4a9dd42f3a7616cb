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
    Syntax {
        /// What would have been accepted where the text went wrong.
        expected: String,
    },
    /// `c.name` where the model has no field `name` (checking).
    #[error("`{name}` is not a field of {model}{}", did_you_mean(suggestion))]
    UnknownField {
        /// The name as written.
        name: String,
        /// The model's name.
        model: String,
        /// The closest field name, when one is close enough to suggest.
        suggestion: Option<String>,
    },
    /// An operand of the wrong type: a string compared with a number, `starts_with`
    /// on an integer, `%` on floats (checking).
    #[error("type mismatch: {context} expects {expected}, found {found}")]
    TypeMismatch {
        /// The construct that was given the operand (`the operands of \`<\``).
        context: String,
        /// The type it accepts.
        expected: String,
        /// The type it was given.
        found: String,
    },
    /// `c` used as a value, a second lambda parameter, a field of a field, …
    #[error("{message}")]
    LambdaParam {
        /// What was wrong and how to write it instead.
        message: String,
    },
    /// A function or method outside the language (`foo(c.x)`, `c.s.trim()`).
    #[error("`{name}` is not supported here; supported: {supported}")]
    Unsupported {
        /// The function, method or construct as written.
        name: String,
        /// What the language has instead, in words.
        supported: String,
    },
    /// A free name in the text form with no value bound to it.
    #[error("no value bound for parameter `{name}`")]
    UnboundParam {
        /// The free name.
        name: String,
    },
    /// The lambda's body is not a boolean (`lambda c: c.price`).
    #[error("the filter must be a boolean expression, found {found}")]
    NotBoolean {
        /// The body's type.
        found: Type,
    },
    /// An aggregate inside a filter, or nested in an expression.
    #[error("an aggregate ({func}) may only be the whole body of a view's lambda")]
    MisplacedAggregate {
        /// The aggregate's name (`avg`).
        func: String,
    },
    /// The disjunctive normal form would have more alternatives than the limit
    /// (normalisation), detected before it is built.
    #[error("the query expands to more than {limit} alternatives (`or` of `and`s); split it or use `in`")]
    TooManyDisjuncts {
        /// The limit in force.
        limit: usize,
    },
    /// An alternative (disjunct) no index of the model serves (planning); the
    /// message names the model's indexes and what to add.
    #[error("{message}")]
    Unindexable {
        /// The whole message, worded the same as `select!`'s compile error.
        message: String,
    },
}

fn did_you_mean(s: &Option<String>) -> String {
    s.as_ref().map(|s| format!("; did you mean `{s}`?")).unwrap_or_default()
}

/// One error at one place.
#[derive(Clone, Debug, PartialEq)]
pub struct Error {
    /// What went wrong.
    pub kind: ErrorKind,
    /// Where: the syntax the error is about.
    pub span: Span,
    /// What to do about it, when there is something useful to say.
    pub hint: Option<String>,
}

impl Error {
    /// An error of `kind` at `span`, without a hint.
    pub fn new(kind: ErrorKind, span: Span) -> Error {
        Error { kind, span, hint: None }
    }

    /// The same error with a hint saying what to do about it.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Error {
        self.hint = Some(hint.into());
        self
    }

    /// The message with line, column, the source line and a caret under the span.
    /// `source` is the text the span points into; a span outside it is clamped.
    ///
    /// ```
    /// use memdex_grammar::{ParamType, Schema, Type, check, text};
    ///
    /// let schema = Schema::new("Customer", "customer")
    ///     .column("id", Type::Int, false)
    ///     .column("first_name", Type::Text, false);
    /// let source = r#"lambda c: c.fist_name == "x""#;
    /// let lambda = text::parse(source)?;
    /// let errors = check::filter(&schema, &lambda.body, &|_: &str| ParamType::Missing).unwrap_err();
    /// let expected = r#"error: `fist_name` is not a field of Customer; did you mean `first_name`?
    ///  --> line 1, column 11
    ///   |
    /// 1 | lambda c: c.fist_name == "x"
    ///   |           ^^^^^^^^^^^
    ///   = hint: the fields are id, first_name"#;
    /// assert_eq!(errors.render(source), expected);
    /// # Ok::<(), memdex_grammar::Errors>(())
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
    /// A list of one error.
    pub fn one(e: Error) -> Errors {
        Errors(vec![e])
    }

    /// Adds an error.
    pub fn push(&mut self, e: Error) {
        self.0.push(e);
    }

    /// Whether no error was collected.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(value)` when nothing was collected.
    pub fn into_result<T>(self, value: T) -> Result<T, Errors> {
        if self.0.is_empty() { Ok(value) } else { Err(self) }
    }

    /// Every error rendered as [`Error::render`] does, separated by a blank line.
    pub fn render(&self, source: &str) -> String {
        self.0.iter().map(|e| e.render(source)).collect::<Vec<_>>().join("\n\n")
    }

    /// The errors, in the order they were found.
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
