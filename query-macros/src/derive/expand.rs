//! Phase 3: the `impl Model` of a checked model, and its `Col` handles.
//!
//! Generated code only names `::memdex::…` and `::memdex::__private::…`.

use memdex_grammar::{Schema, Type};
use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};

use super::attr::{FieldDecl, ModelDecl};

/// The whole expansion of a valid model.
pub(super) fn model(decl: &ModelDecl<'_>, schema: &Schema) -> TokenStream {
    let fields = decl.fields.as_deref().unwrap_or_default();
    let model = &decl.input.ident;
    // The schema was built from these fields, so its key is one of them.
    let key_field = fields.get(schema.key);
    let key_ty = key_field.map(|f| f.ty);
    let schema_fn = schema_fn(schema);
    let index_consts = index_consts(schema);
    let field_names = field_names(fields);
    let column_value = column_value(fields);
    let from_values = from_values(model, fields);
    let key = key_field.map(|f| f.ident);
    let handles = handles(&decl.name, fields);
    quote! {
        impl ::memdex::Model for #model {
            type Key = #key_ty;

            #schema_fn

            #index_consts

            const FIELDS: &'static [&'static str] = &[#(#field_names),*];

            #column_value

            #from_values

            fn key(&self) -> Self::Key {
                ::std::clone::Clone::clone(&self.#key)
            }
        }

        impl #model {
            #(#handles)*
        }
    }
}

/// `fn schema()`: `schema` rebuilt once, at its first use, in a static.
pub(super) fn schema_fn(schema: &Schema) -> TokenStream {
    let (model_name, table, key) = (&schema.model, &schema.table, schema.key);
    let columns = schema.columns.iter().map(|c| {
        let (field, name, nullable) = (&c.field, &c.name, c.nullable);
        let ty = type_tokens(c.ty);
        quote! {
            ::memdex::__private::grammar::Column {
                field: ::std::string::String::from(#field),
                name: ::std::string::String::from(#name),
                ty: #ty,
                nullable: #nullable,
            }
        }
    });
    let index_defs = schema.indexes.iter().map(|ix| {
        let cols = &ix.columns;
        let prefix = match ix.prefix {
            Some(n) => quote!(::std::option::Option::Some(#n)),
            None => quote!(::std::option::Option::None),
        };
        let order = match ix.order {
            Some(o) => {
                let (column, descending) = (o.column, o.descending);
                quote!(::std::option::Option::Some(::memdex::__private::grammar::IndexOrder {
                    column: #column,
                    descending: #descending,
                }))
            }
            None => quote!(::std::option::Option::None),
        };
        quote! {
            ::memdex::__private::grammar::IndexDef {
                columns: ::std::vec![#(#cols),*],
                prefix: #prefix,
                order: #order,
            }
        }
    });
    let schema_static = format_ident!("SCHEMA", span = Span::mixed_site());
    quote! {
        fn schema() -> &'static ::memdex::Schema {
            static #schema_static: ::std::sync::OnceLock<::memdex::Schema> = ::std::sync::OnceLock::new();
            #schema_static.get_or_init(|| ::memdex::Schema {
                model: ::std::string::String::from(#model_name),
                table: ::std::string::String::from(#table),
                columns: ::std::vec![#(#columns),*],
                key: #key,
                indexes: ::std::vec![#(#index_defs),*],
            })
        }
    }
}

/// `INDEXES` (the key first, then each declared index) and `INDEX_LIST`, exactly
/// what `Schema::describe_indexes` says at run time.
fn index_consts(schema: &Schema) -> TokenStream {
    let key_name = &schema.columns[schema.key].field;
    let index_infos = schema.indexes.iter().map(|ix| {
        let names = ix.columns.iter().map(|&c| &schema.columns[c].field);
        let prefix = ix.prefix.unwrap_or(0);
        quote!(::memdex::__private::IndexInfo { columns: &[#(#names),*], prefix: #prefix })
    });
    let index_list = schema.describe_indexes();
    quote! {
        const INDEXES: &'static [::memdex::__private::IndexInfo] = &[
            ::memdex::__private::IndexInfo { columns: &[#key_name], prefix: 0 },
            #(#index_infos),*
        ];

        const INDEX_LIST: &'static str = #index_list;
    }
}

/// The field names, for `FIELDS`.
pub(super) fn field_names<'a>(fields: &'a [FieldDecl<'_>]) -> impl Iterator<Item = &'a str> {
    fields.iter().map(|f| f.name.as_str())
}

/// `fn column_value`: column `i` is field `i`.
fn column_value(fields: &[FieldDecl<'_>]) -> TokenStream {
    let value_arms = fields.iter().enumerate().map(|(i, f)| {
        let ident = f.ident;
        quote!(#i => ::memdex::__private::to_value(&self.#ident))
    });
    quote! {
        fn column_value(&self, column: usize) -> ::memdex::Value {
            match column {
                #(#value_arms,)*
                _ => ::memdex::Value::Null,
            }
        }
    }
}

/// `fn from_values`: one value per column, converted to each field's type.
fn from_values(model: &syn::Ident, fields: &[FieldDecl<'_>]) -> TokenStream {
    let count = fields.len();
    let from_fields = fields.iter().map(|f| {
        let (ident, name, column) = (f.ident, &f.name, &f.column);
        quote!(#ident: ::memdex::__private::field_from_value(values.next(), #name, #column)?)
    });
    quote! {
        fn from_values(
            values: ::std::vec::Vec<::memdex::Value>,
        ) -> ::std::result::Result<Self, ::std::string::String> {
            if values.len() != #count {
                return ::std::result::Result::Err(::memdex::__private::column_count_error(#count, values.len()));
            }
            let mut values = values.into_iter();
            ::std::result::Result::Ok(#model { #(#from_fields),* })
        }
    }
}

/// One `const fn field() -> Col<Self>` per field, spanned at the field, so that
/// rustc's errors about a handle (a clash with another associated function of that
/// name) point at the field.
pub(super) fn handles<'a>(model_name: &'a str, fields: &'a [FieldDecl<'_>]) -> impl Iterator<Item = TokenStream> + 'a {
    fields.iter().enumerate().map(move |(i, f)| {
        let (ident, vis) = (f.ident, f.vis);
        let doc = format!("The `{}` column of `{model_name}`, for `order_by`.", f.name);
        quote_spanned! {f.ident.span()=>
            #[doc = #doc]
            #[must_use]
            #vis const fn #ident() -> ::memdex::Col<Self> {
                ::memdex::Col::new(#i)
            }
        }
    })
}

fn type_tokens(ty: Type) -> TokenStream {
    match ty {
        Type::Bool => quote!(::memdex::Type::Bool),
        Type::Int => quote!(::memdex::Type::Int),
        Type::Float => quote!(::memdex::Type::Float),
        Type::Text => quote!(::memdex::Type::Text),
        Type::Bytes => quote!(::memdex::Type::Bytes),
        Type::Timestamp => quote!(::memdex::Type::Timestamp),
        Type::Uuid => quote!(::memdex::Type::Uuid),
        Type::Json => quote!(::memdex::Type::Json),
    }
}
