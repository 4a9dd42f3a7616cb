//! `#[derive(Model)]`: the schema, the compile-time index list `select!` checks
//! against, row conversion, and one `Col` handle per field.
//!
//! Every mistake in the attributes is reported at the attribute or field it is
//! about, all of them in one compile (errors are combined, not first-only).

use memdex_grammar::{Schema, Type};
use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::meta::ParseNestedMeta;
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Fields, Ident, LitInt, LitStr};

/// What the derive reads from one field.
struct FieldInfo {
    ident: Ident,
    /// The field name as queries spell it (`r#type` is `type`).
    name: String,
    column: String,
    vis: syn::Visibility,
    ty: syn::Type,
    /// `None` when the type is unsupported (already reported).
    kind: Option<(Type, bool)>,
    key: Option<Span>,
}

/// An index as declared: field names with their spans, and the prefix length.
struct IndexDecl {
    fields: Vec<(String, Span)>,
    prefix: Option<u32>,
    span: Span,
}

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

pub fn derive_model_inner(input: TokenStream) -> syn::Result<TokenStream> {
    let input: DeriveInput = syn::parse2(input)?;
    let mut errors = Errors::default();
    let model = &input.ident;
    let model_name = model.unraw().to_string();

    let named = match &input.data {
        Data::Struct(s) => match &s.fields {
            Fields::Named(f) => Some(&f.named),
            Fields::Unnamed(_) => {
                errors.at(
                    input.ident.span(),
                    "a memdex model must be a struct with named fields: queries refer to columns by field name",
                );
                None
            }
            Fields::Unit => {
                errors.at(input.ident.span(), "a memdex model needs fields: a unit struct has no columns");
                None
            }
        },
        Data::Enum(e) => {
            errors.at(e.enum_token.span, "#[derive(Model)] only supports structs with named fields, not enums");
            None
        }
        Data::Union(u) => {
            errors.at(u.union_token.span, "#[derive(Model)] only supports structs with named fields, not unions");
            None
        }
    };
    if !input.generics.params.is_empty() {
        errors.at(input.generics.span(), "a memdex model cannot be generic: its table and columns must be fixed");
    }

    // Struct attributes: table name and composite indexes.
    let mut table: Option<(String, Span)> = None;
    let mut indexes: Vec<IndexDecl> = Vec::new();
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("memdex")) {
        let result = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("table") {
                let lit: LitStr = meta.value()?.parse()?;
                if table.is_some() {
                    errors.at(meta.path.span(), "`table` is given twice");
                } else if lit.value().is_empty() {
                    errors.at(lit.span(), "the table name cannot be empty");
                } else {
                    table = Some((lit.value(), lit.span()));
                }
            } else if meta.path.is_ident("index") {
                let span = meta.path.span();
                let mut fields = Vec::new();
                if meta.input.is_empty() || meta.input.peek(syn::Token![,]) {
                    errors.at(
                        span,
                        "on the struct, `index(a, b)` names the fields of a composite index; \
                         put `#[memdex(index)]` on a field to index it alone",
                    );
                    return Ok(());
                }
                meta.parse_nested_meta(|inner| {
                    if inner.path.is_ident("prefix") {
                        skip_value(&inner)?;
                        errors.at(
                            inner.path.span(),
                            "a prefix index covers one string field: write `#[memdex(index(prefix = n))]` on that field",
                        );
                    } else if let Some(ident) = inner.path.get_ident() {
                        if !inner.input.is_empty() && !inner.input.peek(syn::Token![,]) {
                            skip_value(&inner)?;
                            errors.at(inner.path.span(), "expected a field name");
                        } else {
                            fields.push((ident.unraw().to_string(), ident.span()));
                        }
                    } else {
                        skip_value(&inner)?;
                        errors.at(inner.path.span(), "expected a field name");
                    }
                    Ok(())
                })?;
                if fields.is_empty() {
                    errors.at(span, "an index needs at least one field: `index(a, b)`");
                } else {
                    indexes.push(IndexDecl { fields, prefix: None, span });
                }
            } else {
                skip_value(&meta)?;
                errors.at(
                    meta.path.span(),
                    format!(
                        "unknown memdex option `{}` on a struct; expected `table = \"…\"` or `index(field, …)`",
                        path_text(&meta.path)
                    ),
                );
            }
            Ok(())
        });
        if let Err(e) = result {
            errors.push(e);
        }
    }

    // Field attributes.
    let mut fields: Vec<FieldInfo> = Vec::new();
    let mut field_indexes: Vec<IndexDecl> = Vec::new();
    for field in named.into_iter().flatten() {
        // Named fields always have an ident.
        let Some(ident) = field.ident.clone() else { continue };
        let name = ident.unraw().to_string();
        let kind = match classify(&field.ty) {
            Ok(k) => Some(k),
            Err(e) => {
                errors.push(e);
                None
            }
        };
        let mut info = FieldInfo {
            ident,
            column: name.clone(),
            name,
            vis: field.vis.clone(),
            ty: field.ty.clone(),
            kind,
            key: None,
        };
        let mut column_set = false;
        for attr in field.attrs.iter().filter(|a| a.path().is_ident("memdex")) {
            let result = attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("key") {
                    if info.key.is_some() {
                        errors.at(meta.path.span(), "`key` is given twice");
                    }
                    info.key = Some(meta.path.span());
                } else if meta.path.is_ident("column") {
                    let lit: LitStr = meta.value()?.parse()?;
                    if column_set {
                        errors.at(meta.path.span(), "`column` is given twice");
                    } else if lit.value().is_empty() {
                        errors.at(lit.span(), "the column name cannot be empty");
                    }
                    column_set = true;
                    info.column = lit.value();
                } else if meta.path.is_ident("index") {
                    let span = meta.path.span();
                    let mut prefix = None;
                    if meta.input.peek(syn::token::Paren) {
                        meta.parse_nested_meta(|inner| {
                            if inner.path.is_ident("prefix") {
                                let lit: LitInt = inner.value()?.parse()?;
                                match lit.base10_parse::<u32>() {
                                    Ok(0) => errors.at(
                                        lit.span(),
                                        "`prefix = 0` indexes nothing; use at least 1 character, \
                                         or `#[memdex(index)]` for a whole-value index",
                                    ),
                                    Ok(n) => prefix = Some(n),
                                    Err(_) => errors.at(lit.span(), "the prefix length must be a positive integer"),
                                }
                            } else {
                                skip_value(&inner)?;
                                errors.at(
                                    inner.path.span(),
                                    format!(
                                        "unknown index option `{}` on a field; expected `prefix = n` \
                                         (composite indexes go on the struct: `#[memdex(index(a, b))]`)",
                                        path_text(&inner.path)
                                    ),
                                );
                            }
                            Ok(())
                        })?;
                    }
                    if prefix.is_some() && info.kind.is_some_and(|k| k != (Type::Text, false)) {
                        errors.at(
                            field.ty.span(),
                            format!(
                                "a prefix index serves `starts_with`, so `{}` must be a `String` (not an Option or a number)",
                                info.name
                            ),
                        );
                    }
                    field_indexes.push(IndexDecl { fields: vec![(info.name.clone(), info.ident.span())], prefix, span });
                } else {
                    skip_value(&meta)?;
                    errors.at(
                        meta.path.span(),
                        format!(
                            "unknown memdex option `{}` on a field; expected `key`, `index`, \
                             `index(prefix = n)` or `column = \"…\"`",
                            path_text(&meta.path)
                        ),
                    );
                }
                Ok(())
            });
            if let Err(e) = result {
                errors.push(e);
            }
        }
        fields.push(info);
    }
    indexes.extend(field_indexes);

    // The key.
    let keys: Vec<&FieldInfo> = fields.iter().filter(|f| f.key.is_some()).collect();
    let key_index = match keys.as_slice() {
        [] => {
            if named.is_some() {
                errors.at(
                    model.span(),
                    format!("`{model_name}` has no key: mark the primary-key field with `#[memdex(key)]`"),
                );
            }
            None
        }
        [one] => {
            if let Some((ty, nullable)) = one.kind {
                if nullable {
                    errors.at(one.ty.span(), "the key cannot be an `Option`: every row needs a key");
                } else if ty == Type::Float {
                    errors.at(one.ty.span(), "the key cannot be a float: NaN is not equal to itself");
                }
            }
            fields.iter().position(|f| f.key.is_some())
        }
        [first, rest @ ..] => {
            for k in rest {
                if let Some(span) = k.key {
                    errors.at(
                        span,
                        format!(
                            "`{model_name}` already has a key (`{}`); a model has exactly one `#[memdex(key)]`",
                            first.name
                        ),
                    );
                }
            }
            None
        }
    };

    // Columns: names must be unique.
    for (i, f) in fields.iter().enumerate() {
        if fields[..i].iter().any(|g| g.column == f.column) {
            errors.at(f.ident.span(), format!("two fields use the column name `{}`", f.column));
        }
    }

    // Indexes: fields must exist; the key is always indexed; no duplicates.
    let mut resolved: Vec<(Vec<usize>, Option<u32>)> = Vec::new();
    for ix in &indexes {
        let mut columns = Vec::new();
        for (name, span) in &ix.fields {
            match fields.iter().position(|f| &f.name == name) {
                Some(c) if columns.contains(&c) => errors.at(*span, format!("`{name}` is listed twice in this index")),
                Some(c) => columns.push(c),
                None => errors
                    .at(*span, format!("`{name}` is not a field of `{model_name}`{}", did_you_mean(name, &fields))),
            }
        }
        if columns.len() != ix.fields.len() {
            continue;
        }
        if columns.len() == 1 && Some(columns[0]) == key_index && ix.prefix.is_none() {
            errors.at(ix.span, "the key is always indexed; remove this index");
            continue;
        }
        if resolved.iter().any(|(c, p)| *c == columns && *p == ix.prefix) {
            errors.at(ix.span, "this index is declared twice");
            continue;
        }
        resolved.push((columns, ix.prefix));
    }

    if let Some(e) = errors.0 {
        return Err(e);
    }
    // No errors: every field was classified and the key found.
    let Some(key_index) = key_index else { return Err(syn::Error::new(model.span(), "no key")) };
    let table = table.map_or_else(|| snake_case(&model_name), |(t, _)| t);

    // The schema, built here too so that INDEX_LIST is exactly what
    // `Schema::describe_indexes` says at run time.
    let mut schema = Schema::new(model_name.clone(), table.clone());
    for f in &fields {
        let (ty, nullable) = f.kind.unwrap_or((Type::Int, false));
        schema = schema.column(&f.name, ty, nullable);
        if let Some(last) = schema.columns.last_mut() {
            last.name = f.column.clone();
        }
    }
    schema.key = key_index;
    for (columns, prefix) in &resolved {
        schema.indexes.push(memdex_grammar::IndexDef { columns: columns.clone(), prefix: *prefix });
    }
    let index_list = schema.describe_indexes();

    Ok(expand(&input, &schema, &fields, &index_list))
}

fn expand(input: &DeriveInput, schema: &Schema, fields: &[FieldInfo], index_list: &str) -> TokenStream {
    let field_names: Vec<&str> = fields.iter().map(|f| f.name.as_str()).collect();
    let model = &input.ident;
    let model_name = &schema.model;
    let table = &schema.table;
    let count = fields.len();
    let key_field = &fields[schema.key].ident;
    let key_ty = &fields[schema.key].ty;

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
    let key = schema.key;
    let index_defs = schema.indexes.iter().map(|ix| {
        let cols = &ix.columns;
        let prefix = match ix.prefix {
            Some(n) => quote!(::std::option::Option::Some(#n)),
            None => quote!(::std::option::Option::None),
        };
        quote! {
            ::memdex::__private::grammar::IndexDef { columns: ::std::vec![#(#cols),*], prefix: #prefix }
        }
    });
    let key_name = &schema.columns[schema.key].field;
    let index_infos = schema.indexes.iter().map(|ix| {
        let names = ix.columns.iter().map(|&c| &schema.columns[c].field);
        let prefix = ix.prefix.unwrap_or(0);
        quote!(::memdex::__private::IndexInfo { columns: &[#(#names),*], prefix: #prefix })
    });

    let value_arms = fields.iter().enumerate().map(|(i, f)| {
        let ident = &f.ident;
        quote!(#i => ::memdex::__private::to_value(&self.#ident))
    });
    let from_fields = fields.iter().map(|f| {
        let (ident, name, column) = (&f.ident, &f.name, &f.column);
        quote!(#ident: ::memdex::__private::field_from_value(values.next(), #name, #column)?)
    });
    let handles = fields.iter().enumerate().map(|(i, f)| {
        let (ident, vis) = (&f.ident, &f.vis);
        let doc = format!("The `{}` column of `{model_name}`, for `order_by`.", f.name);
        quote_spanned! {f.ident.span()=>
            #[doc = #doc]
            #[must_use]
            #vis const fn #ident() -> ::memdex::Col<Self> {
                ::memdex::Col::new(#i)
            }
        }
    });
    let schema_static = format_ident!("SCHEMA", span = Span::mixed_site());

    quote! {
        impl ::memdex::Model for #model {
            type Key = #key_ty;

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

            const INDEXES: &'static [::memdex::__private::IndexInfo] = &[
                ::memdex::__private::IndexInfo { columns: &[#key_name], prefix: 0 },
                #(#index_infos),*
            ];

            const INDEX_LIST: &'static str = #index_list;

            const FIELDS: &'static [&'static str] = &[#(#field_names),*];

            fn column_value(&self, column: usize) -> ::memdex::Value {
                match column {
                    #(#value_arms,)*
                    _ => ::memdex::Value::Null,
                }
            }

            fn from_values(
                values: ::std::vec::Vec<::memdex::Value>,
            ) -> ::std::result::Result<Self, ::std::string::String> {
                if values.len() != #count {
                    return ::std::result::Result::Err(::memdex::__private::column_count_error(#count, values.len()));
                }
                let mut values = values.into_iter();
                ::std::result::Result::Ok(#model { #(#from_fields),* })
            }

            fn key(&self) -> Self::Key {
                ::std::clone::Clone::clone(&self.#key_field)
            }
        }

        impl #model {
            #(#handles)*
        }
    }
}

fn type_tokens(ty: Type) -> TokenStream {
    match ty {
        Type::Bool => quote!(::memdex::Type::Bool),
        Type::Int => quote!(::memdex::Type::Int),
        Type::Float => quote!(::memdex::Type::Float),
        Type::Text => quote!(::memdex::Type::Text),
    }
}

const SUPPORTED_TYPES: &str = "i64, i32, i16, i8, u32, u16, u8, f64, f32, String, bool, or an Option of one of those";

/// The column type of a field type, by its last path segment (type aliases cannot
/// be seen through by a macro, so they are reported as unsupported).
fn classify(ty: &syn::Type) -> syn::Result<(Type, bool)> {
    if let Some(inner) = option_inner(ty) {
        if option_inner(inner).is_some() {
            return Err(syn::Error::new(ty.span(), "`Option<Option<_>>` cannot be stored: a column has one NULL"));
        }
        return scalar(inner).map(|t| (t, true));
    }
    scalar(ty).map(|t| (t, false))
}

fn scalar(ty: &syn::Type) -> syn::Result<Type> {
    let unsupported = || {
        syn::Error::new(
            ty.span(),
            format!("unsupported field type `{}`; a memdex column is {SUPPORTED_TYPES}", type_text(ty)),
        )
    };
    let syn::Type::Path(p) = ty else { return Err(unsupported()) };
    if p.qself.is_some() {
        return Err(unsupported());
    }
    let Some(last) = p.path.segments.last() else { return Err(unsupported()) };
    if !last.arguments.is_none() {
        return Err(unsupported());
    }
    Ok(match last.ident.to_string().as_str() {
        "i64" | "i32" | "i16" | "i8" | "u32" | "u16" | "u8" => Type::Int,
        "f64" | "f32" => Type::Float,
        "String" => Type::Text,
        "bool" => Type::Bool,
        "u64" | "usize" | "isize" | "i128" | "u128" => {
            return Err(syn::Error::new(
                ty.span(),
                format!(
                    "`{}` does not fit a database integer (i64) exactly; use i64 or a smaller integer type",
                    type_text(ty)
                ),
            ));
        }
        _ => return Err(unsupported()),
    })
}

fn option_inner(ty: &syn::Type) -> Option<&syn::Type> {
    let syn::Type::Path(p) = ty else { return None };
    let last = p.path.segments.last()?;
    if last.ident != "Option" {
        return None;
    }
    let syn::PathArguments::AngleBracketed(args) = &last.arguments else { return None };
    match args.args.first()? {
        syn::GenericArgument::Type(t) if args.args.len() == 1 => Some(t),
        _ => None,
    }
}

fn type_text(ty: &syn::Type) -> String {
    // In a type, `<` and `>` are brackets, not comparisons.
    crate::text::tokens(quote!(#ty)).replace(" < ", "<").replace(" <", "<").replace(" >", ">").replace("> ", ">")
}

fn path_text(p: &syn::Path) -> String {
    crate::text::tokens(quote!(#p))
}

/// Consumes an unknown option's value (`= …` or `(…)`) so that parsing can go on and
/// report the next mistake too.
fn skip_value(meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
    if meta.input.peek(syn::Token![=]) {
        let _: syn::Expr = meta.value()?.parse()?;
    } else if meta.input.peek(syn::token::Paren) {
        let _group;
        syn::parenthesized!(_group in meta.input);
    }
    Ok(())
}

fn did_you_mean(name: &str, fields: &[FieldInfo]) -> String {
    fields
        .iter()
        .map(|f| (strsim::levenshtein(name, &f.name), &f.name))
        .filter(|(d, f)| *d <= 2.max(f.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, f)| format!("; did you mean `{f}`?"))
        .unwrap_or_default()
}

/// `OrderLine` → `order_line`, `HTTPRequest` → `http_request`.
pub(crate) fn snake_case(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if c.is_uppercase() {
            let prev_lower = i > 0 && (chars[i - 1].is_lowercase() || chars[i - 1].is_ascii_digit());
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            let prev_upper = i > 0 && chars[i - 1].is_uppercase();
            if i > 0 && !out.ends_with('_') && (prev_lower || (prev_upper && next_lower)) {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}
