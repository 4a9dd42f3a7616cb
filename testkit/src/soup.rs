//! Token soup: sequences of the text language's tokens, literals at the edges of
//! what the lexer accepts, and characters that are not the language at all, in any
//! order. Mostly ill-formed; the parser, checker and planner must answer each with
//! a value or an error, never a panic, and the text fast path must agree with the
//! pest grammar on every one.

use proptest::prelude::*;

/// The language's own tokens: keywords, punctuation, operators and the names of
/// its builtins.
pub const LANGUAGE: &[&str] = &[
    "lambda",
    ":",
    ".",
    "(",
    ")",
    "[",
    "]",
    ",",
    "and",
    "or",
    "not",
    "in",
    "is",
    "None",
    "True",
    "False",
    "==",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "+",
    "-",
    "*",
    "/",
    "%",
    "len",
    "ieq",
    "lower",
    "startswith",
    "endswith",
    "avg",
    "count",
    "sum",
    "min",
    "max",
    "not in",
    "is not",
];

/// Literals at and past the edges of what the lexer accepts: integer bounds and
/// overflow, float spellings, digit separators, string escapes valid and not,
/// unterminated quotes.
pub const LITERALS: &[&str] = &[
    "1",
    "0",
    "007",
    "-9223372036854775808",
    "9223372036854775808",
    "99999999999999999999",
    "1.5",
    "1.",
    ".5",
    "1e",
    "e5",
    "1e999",
    "1_0",
    "'m'",
    "\"x\"",
    "'a'",
    "\"\\n\"",
    "'\\x4'",
    "'\\u00e9'",
    "'",
    "\"",
    "\\",
];

/// What is not the language: other languages' operators, stray characters, control
/// and non-ASCII characters, whitespace of every kind, unbalanced brackets.
pub const NOISE: &[&str] = &[
    "&&",
    "!",
    "=",
    "<>",
    "**",
    "@",
    "#",
    "_",
    "é",
    "😀",
    "\u{0}",
    "\u{2028}",
    " ",
    "\n",
    "\t",
    "\r",
    "((((",
    "))))",
    "not not not",
    "assert",
    "()",
    "(,)",
    "[1,]",
];

/// A soup for one model: the shared vocabulary plus the lambda's parameter, the
/// model's field names (bare and as `param.field`), a query parameter's name and a
/// lambda head.
#[derive(Clone, Debug)]
pub struct Soup {
    vocabulary: Vec<String>,
    param: String,
}

impl Soup {
    /// The soup for lambdas over `param` on a model with these `fields`.
    pub fn new(param: &str, fields: &[&str]) -> Self {
        let shared = LANGUAGE.iter().chain(LITERALS).chain(NOISE).map(|t| (*t).to_owned());
        let own = [param.to_owned(), format!("{param}."), format!("lambda {param}:"), "p".into(), "ids".into()];
        let fields = fields.iter().flat_map(|f| [(*f).to_owned(), format!("{param}.{f}"), format!(".{f}")]);
        Self { vocabulary: shared.chain(own).chain(fields).collect(), param: param.to_owned() }
    }

    /// Every token this soup draws from.
    pub fn vocabulary(&self) -> &[String] {
        &self.vocabulary
    }

    /// Up to `max` tokens, in any order.
    pub fn tokens(&self, max: usize) -> BoxedStrategy<Vec<String>> {
        proptest::collection::vec(proptest::sample::select(self.vocabulary.clone()), 0..=max).boxed()
    }

    /// A lambda head followed by up to `max` tokens joined by `separator` (`" "`
    /// keeps tokens apart; `""` lets them run into one another, as a lexer's worst
    /// case).
    pub fn lambda(&self, max: usize, separator: &'static str) -> BoxedStrategy<String> {
        let head = format!("lambda {}: ", self.param);
        self.tokens(max).prop_map(move |tokens| format!("{head}{}", tokens.join(separator))).boxed()
    }
}
