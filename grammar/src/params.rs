//! Bound parameter values and what the checker may know of their types.

use crate::value::{Type, Value};

/// Where bound values come from when SQL is emitted or a predicate evaluated.
pub trait Params {
    /// The value bound to `name`, if any.
    fn get(&self, name: &str) -> Option<&Value>;
}

impl Params for [(&str, Value)] {
    fn get(&self, name: &str) -> Option<&Value> {
        self.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }
}

impl<const N: usize> Params for [(&str, Value); N] {
    fn get(&self, name: &str) -> Option<&Value> {
        Params::get(self.as_slice(), name)
    }
}

impl Params for Vec<(String, Value)> {
    fn get(&self, name: &str) -> Option<&Value> {
        self.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }
}

/// The macro form's parameters: captured values in the order the macro numbered
/// them, reachable as `p0`, `p1`, ….
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Positional(pub Vec<Value>);

impl Positional {
    /// The name the macro gives its `i`th parameter.
    pub fn name(i: usize) -> String {
        format!("p{i}")
    }
}

impl Params for Positional {
    fn get(&self, name: &str) -> Option<&Value> {
        let i: usize = name.strip_prefix('p')?.parse().ok()?;
        self.0.get(i)
    }
}

/// What the checker knows of a parameter's type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamType {
    /// The macro form: rustc checks the captured expression's type itself.
    Unknown,
    /// Bound to a non-null scalar of this type.
    Scalar(Type),
    /// Bound to `None`.
    Null,
    /// Bound to a list; the element type when the list is non-empty.
    List(Option<Type>),
    /// Nothing bound under that name (a text-form error).
    Missing,
}

impl ParamType {
    /// The type of a bound value; `None` (nothing bound) is `Missing`.
    pub fn of(value: Option<&Value>) -> ParamType {
        match value {
            None => ParamType::Missing,
            Some(Value::Null) => ParamType::Null,
            Some(Value::List(items)) => ParamType::List(items.iter().find_map(Value::ty)),
            Some(v) => v.ty().map_or(ParamType::Unknown, ParamType::Scalar),
        }
    }
}

/// Parameter types taken from bound values (the text form at run time).
pub fn types_of<'a>(params: &'a dyn Params) -> impl Fn(&str) -> ParamType + 'a {
    move |name| ParamType::of(params.get(name))
}
