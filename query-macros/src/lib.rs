//! memdex's proc macros. Each is a thin shim over an `*_inner(proc_macro2::TokenStream)`
//! function that unit tests call directly; the language logic (normalisation,
//! candidates for index planning, messages) lives in `memdex-grammar`.
//!
//! Generated code only names `::memdex::…` and `::memdex::__private::…`.

use proc_macro::TokenStream;

mod derive;
mod emit;
mod lower;
mod query;
mod text;

#[cfg(test)]
mod tests;

pub(crate) use derive::derive_model_inner;
pub(crate) use query::{scan_inner, select_inner, view_inner};

fn expand(
    input: TokenStream,
    inner: fn(proc_macro2::TokenStream) -> syn::Result<proc_macro2::TokenStream>,
) -> TokenStream {
    inner(input.into()).unwrap_or_else(syn::Error::into_compile_error).into()
}

/// `#[derive(Model)]`: the schema, index facts for `select!`'s compile-time check,
/// row conversion and `Col` handles. See the `memdex` crate docs for the attributes.
#[proc_macro_derive(Model, attributes(memdex))]
pub fn derive_model(input: TokenStream) -> TokenStream {
    expand(input, derive_model_inner)
}

/// `select!(Item, |c| c.category_id == cat && c.price > 10.0)`: a query served by
/// index scans; fails to compile when some alternative has no index.
#[proc_macro]
pub fn select(input: TokenStream) -> TokenStream {
    expand(input, select_inner)
}

/// `scan!(Item, |c| c.price < 1.0)`: the same language, run on the database.
#[proc_macro]
pub fn scan(input: TokenStream) -> TokenStream {
    expand(input, scan_inner)
}

/// `view!(Master, |m| avg(m.runs))`, `view!(Master, |m| m.team == t, |m| count())`.
#[proc_macro]
pub fn view(input: TokenStream) -> TokenStream {
    expand(input, view_inner)
}
