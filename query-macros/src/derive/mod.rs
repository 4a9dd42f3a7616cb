//! `#[derive(Model)]`: the schema, the compile-time index list `select!` checks
//! against, row conversion, and one `Col` handle per field.
//!
//! In phases, as serde_derive does:
//!
//! 1. [`attr`] reads the struct and its `#[memdex(…)]` attributes into a
//!    [`attr::ModelDecl`], reporting malformed attributes;
//! 2. [`check`] classifies the field types ([`types`]), finds the key and resolves
//!    the indexes into the grammar's `Schema`, reporting every inconsistency;
//! 3. [`expand`] writes the `impl Model` from that schema.
//!
//! Every mistake is reported at the attribute or field it is about, all of them in
//! one compile (errors are combined, not first-only). After a mistake, [`fallback`]
//! still emits an `impl Model` that type-checks, so that the mistakes are the only
//! errors: without it every `select!`, `Item::price()` or `store.insert(&item)` using
//! the model would add an error of its own.

mod attr;
mod check;
mod expand;
mod fallback;
mod types;

use proc_macro2::{Span, TokenStream};
use syn::DeriveInput;

#[cfg(test)]
pub(crate) use check::snake_case;

/// Collects errors so that every mistake is reported, not only the first.
#[derive(Default)]
struct Errors(Option<syn::Error>);

impl Errors {
    fn push(&mut self, e: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(e),
            None => self.0 = Some(e),
        }
    }

    fn at(&mut self, span: Span, message: impl std::fmt::Display) {
        self.push(syn::Error::new(span, message));
    }
}

/// The derive: the `impl Model` of a valid model; for an invalid one, its errors
/// and the fallback impl. `Err` only when the input is not an item at all.
pub fn derive_model_inner(input: TokenStream) -> syn::Result<TokenStream> {
    let input: DeriveInput = syn::parse2(input)?;
    let (decl, checked, errors) = read_and_check(&input);
    Ok(match (errors.0, check::schema(&decl, &checked)) {
        (None, Some(schema)) => expand::model(&decl, &schema),
        (Some(error), _) => fallback::model(&decl, &checked, &error),
        // Checking reports every reason a schema cannot be built, so this does not
        // happen; if it did, the user would get an error rather than a broken impl.
        (None, None) => syn::Error::new(input.ident.span(), "memdex could not read this model").into_compile_error(),
    })
}

/// Phases 1 and 2, with every error they reported.
fn read_and_check(input: &DeriveInput) -> (attr::ModelDecl<'_>, check::Checked, Errors) {
    let mut errors = Errors::default();
    let decl = attr::read(input, &mut errors);
    let checked = check::model(&decl, &mut errors);
    (decl, checked, errors)
}

/// The errors the derive reports for `input`, all of them combined; `Ok` for a
/// valid model.
#[cfg(test)]
pub(crate) fn derive_errors(input: TokenStream) -> syn::Result<()> {
    let input: DeriveInput = syn::parse2(input)?;
    let (_, _, errors) = read_and_check(&input);
    errors.0.map_or(Ok(()), Err)
}
