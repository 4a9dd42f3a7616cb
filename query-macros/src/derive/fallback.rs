//! After a mistake in the model: its errors, plus an `impl Model` and the `Col`
//! handles, so that the mistakes are the only errors the user sees.
//!
//! Without an impl, every use of the model would fail too: each `select!` (whose
//! const check reads `INDEXES`, `FIELDS` and `INDEX_LIST`), each `Item::price()`, each
//! `store.insert(&item)`. The impl type-checks wherever the real one would: the key
//! keeps its field's type, the handles and `FIELDS` the fields'. Its bodies never run
//! (the `compile_error!`s stop the crate from building), but they are ordinary code
//! that returns a value, not a panic.
//!
//! `INDEXES` lists one index without columns, which every disjunct covers, so that no
//! `select!` adds an unindexable error about a model whose index list could not be
//! read. A generic model gets no impl: the derive refuses generics, and an impl would
//! need bounds on parameters memdex knows nothing about.

use memdex_grammar::Schema;
use proc_macro2::TokenStream;
use quote::quote;

use super::attr::{FieldDecl, ModelDecl};
use super::check::Checked;
use super::expand::{field_names, handles, schema_fn};

/// The errors, then the fallback impl and handles (none for a generic model).
pub(super) fn model(decl: &ModelDecl<'_>, checked: &Checked, error: &syn::Error) -> TokenStream {
    let errors = error.to_compile_error();
    if !decl.input.generics.params.is_empty() {
        return errors;
    }
    let model = &decl.input.ident;
    let fields = decl.fields.as_deref().unwrap_or_default();
    let (key_ty, key_value) = key(fields, checked);
    let table = decl.table.clone().unwrap_or_default();
    let schema_fn = schema_fn(&Schema::new(decl.name.clone(), table));
    let field_names = field_names(fields);
    let handles = handles(&decl.name, fields);
    let not_built = format!("`{}` has errors in its #[derive(Model)] and was not built", decl.name);
    quote! {
        #errors

        impl ::memdex::Model for #model {
            type Key = #key_ty;

            #schema_fn

            const INDEXES: &'static [::memdex::__private::IndexInfo] =
                &[::memdex::__private::IndexInfo { columns: &[], prefix: 0 }];

            const INDEX_LIST: &'static str = "";

            const FIELDS: &'static [&'static str] = &[#(#field_names),*];

            fn column_value(&self, _column: usize) -> ::memdex::Value {
                ::memdex::Value::Null
            }

            fn from_values(
                _values: ::std::vec::Vec<::memdex::Value>,
            ) -> ::std::result::Result<Self, ::std::string::String> {
                ::std::result::Result::Err(::std::string::String::from(#not_built))
            }

            fn key(&self) -> Self::Key {
                #key_value
            }
        }

        impl #model {
            #(#handles)*
        }
    }
}

/// The `Key` type and the body of `fn key`. The first field marked as the key with
/// a supported type is the key even when it is not a valid one (an `Option`, one of
/// two keys), so that code like `store.delete::<Item>(&item.id)` keeps
/// type-checking; without such a field, any value will do.
fn key(fields: &[FieldDecl<'_>], checked: &Checked) -> (TokenStream, TokenStream) {
    let key = fields.iter().zip(&checked.kinds).find(|(f, kind)| f.key.is_some() && kind.is_some());
    match key {
        Some((f, _)) => {
            let (ty, ident) = (f.ty, f.ident);
            (quote!(#ty), quote!(::std::clone::Clone::clone(&self.#ident)))
        }
        None => (quote!(::memdex::Value), quote!(::memdex::Value::Null)),
    }
}
