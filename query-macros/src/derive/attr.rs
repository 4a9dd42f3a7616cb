//! Phase 1: what the derive was given. Reads the struct's shape and its
//! `#[memdex(…)]` attributes into a [`ModelDecl`], and reports what is wrong with
//! an attribute on its own: an unknown option, a value of the wrong kind, an option
//! given twice. Whether the pieces fit together (the key, the index fields, the
//! types) is [`super::check`]'s job.

use proc_macro2::Span;
use quote::{ToTokens, quote};
use syn::ext::IdentExt;
use syn::meta::ParseNestedMeta;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Attribute, Data, DeriveInput, Fields, Ident, LitInt, LitStr};

use super::Errors;

/// The model as declared.
pub(super) struct ModelDecl<'a> {
    pub(super) input: &'a DeriveInput,
    /// The struct's name as messages and the schema spell it (`r#Type` is `Type`).
    pub(super) name: String,
    /// `#[memdex(table = "…")]` on the struct.
    pub(super) table: Option<String>,
    /// The fields in declaration order; `None` when the input is not a struct with
    /// named fields (already reported).
    pub(super) fields: Option<Vec<FieldDecl<'a>>>,
    /// The struct's composite indexes, then the fields' own, in declaration order.
    pub(super) indexes: Vec<IndexDecl>,
}

/// One field as declared.
pub(super) struct FieldDecl<'a> {
    pub(super) ident: &'a Ident,
    /// The field name as queries spell it (`r#type` is `type`).
    pub(super) name: String,
    /// The SQL column: `#[memdex(column = "…")]`, else the field name.
    pub(super) column: String,
    pub(super) vis: &'a syn::Visibility,
    pub(super) ty: &'a syn::Type,
    /// Where `#[memdex(key)]` was written, if it was.
    pub(super) key: Option<Span>,
    /// Whether a `#[serde(with = "memdex::json…")]` adapter is on the field (a
    /// JSON field needs one to be cached; see `memdex::json`).
    pub(super) json_adapter: bool,
    /// `#[memdex(text)]`: an enum made a column type by `memdex::text_enum!`, stored
    /// as its variant's name.
    pub(super) text: bool,
}

/// An index as declared: field names with their spans, the prefix length, and an
/// ordered index's order field.
pub(super) struct IndexDecl {
    pub(super) fields: Vec<(String, Span)>,
    pub(super) prefix: Option<u32>,
    pub(super) order: Option<OrderDecl>,
    pub(super) span: Span,
}

/// `order_by = position` or `order_by = position desc` inside `index(…)`.
pub(super) struct OrderDecl {
    pub(super) field: (String, Span),
    pub(super) descending: bool,
}

/// Reads the whole input. Every malformed attribute is reported; reading goes on
/// after each, so one compile shows them all.
pub(super) fn read<'a>(input: &'a DeriveInput, errors: &mut Errors) -> ModelDecl<'a> {
    let named = named_fields(input, errors);
    let mut indexes = Vec::new();
    let table = struct_attributes(input, &mut indexes, errors);
    let fields = named.map(|named| named.iter().filter_map(|f| field(f, &mut indexes, errors)).collect());
    ModelDecl { input, name: input.ident.unraw().to_string(), table, fields, indexes }
}

type NamedFields = Punctuated<syn::Field, syn::Token![,]>;

/// The named fields of a plain struct; any other shape is reported.
fn named_fields<'a>(input: &'a DeriveInput, errors: &mut Errors) -> Option<&'a NamedFields> {
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
    named
}

fn memdex_attributes(attrs: &[Attribute]) -> impl Iterator<Item = &Attribute> {
    attrs.iter().filter(|a| a.path().is_ident("memdex"))
}

/// The struct's options: `table = "…"` (returned) and `index(a, b)` (pushed).
fn struct_attributes(input: &DeriveInput, indexes: &mut Vec<IndexDecl>, errors: &mut Errors) -> Option<String> {
    let mut table: Option<String> = None;
    for attr in memdex_attributes(&input.attrs) {
        let result = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("table") {
                table_option(&meta, &mut table, errors)
            } else if meta.path.is_ident("index") {
                indexes.extend(composite_index(&meta, errors)?);
                Ok(())
            } else {
                skip_value(&meta)?;
                errors.at(
                    meta.path.span(),
                    format!(
                        "unknown memdex option `{}` on a struct; expected `table = \"…\"` or `index(field, …)`",
                        path_text(&meta.path)
                    ),
                );
                Ok(())
            }
        });
        if let Err(e) = result {
            errors.push(e);
        }
    }
    table
}

/// `table = "…"`: given once, not empty.
fn table_option(meta: &ParseNestedMeta<'_>, table: &mut Option<String>, errors: &mut Errors) -> syn::Result<()> {
    let lit: LitStr = meta.value()?.parse()?;
    if table.is_some() {
        errors.at(meta.path.span(), "`table` is given twice");
    } else if lit.value().is_empty() {
        errors.at(lit.span(), "the table name cannot be empty");
    } else {
        *table = Some(lit.value());
    }
    Ok(())
}

/// `index(a, b)` on the struct: the fields of a composite index, by name.
fn composite_index(meta: &ParseNestedMeta<'_>, errors: &mut Errors) -> syn::Result<Option<IndexDecl>> {
    let span = meta.path.span();
    if meta.input.is_empty() || meta.input.peek(syn::Token![,]) {
        errors.at(
            span,
            "on the struct, `index(a, b)` names the fields of a composite index; \
             put `#[memdex(index)]` on a field to index it alone",
        );
        return Ok(None);
    }
    let mut fields = Vec::new();
    let mut order = None;
    meta.parse_nested_meta(|inner| {
        if inner.path.is_ident("order_by") {
            let parsed = order_by(&inner, errors)?;
            if order.is_some() {
                errors.at(inner.path.span(), "`order_by` is given twice; an index keeps one order column");
            } else {
                order = parsed;
            }
            return Ok(());
        }
        if inner.path.is_ident("prefix") {
            skip_value(&inner)?;
            errors.at(
                inner.path.span(),
                "a prefix index covers one string field: write `#[memdex(index(prefix = n))]` on that field",
            );
            return Ok(());
        }
        let bare = inner.input.is_empty() || inner.input.peek(syn::Token![,]);
        match inner.path.get_ident() {
            Some(ident) if bare => fields.push((ident.unraw().to_string(), ident.span())),
            _ => {
                skip_value(&inner)?;
                errors.at(inner.path.span(), "expected a field name");
            }
        }
        Ok(())
    })?;
    if fields.is_empty() {
        errors.at(span, "an index needs at least one field: `index(a, b)`");
        return Ok(None);
    }
    Ok(Some(IndexDecl { fields, prefix: None, order, span }))
}

/// `order_by = field` with an optional `asc` or `desc` after the field.
fn order_by(meta: &ParseNestedMeta<'_>, errors: &mut Errors) -> syn::Result<Option<OrderDecl>> {
    let value = meta.value()?;
    let field = Ident::parse_any(value)?;
    let mut descending = false;
    if value.peek(Ident::peek_any) {
        let direction = Ident::parse_any(value)?;
        match direction.to_string().as_str() {
            "desc" => descending = true,
            "asc" => {}
            other => {
                errors.at(direction.span(), format!("expected `asc` or `desc` after the order field, found `{other}`"));
            }
        }
    }
    Ok(Some(OrderDecl { field: (field.unraw().to_string(), field.span()), descending }))
}

/// One field and its options; an index it declares is pushed onto `indexes`.
fn field<'a>(field: &'a syn::Field, indexes: &mut Vec<IndexDecl>, errors: &mut Errors) -> Option<FieldDecl<'a>> {
    // Named fields always have an ident.
    let ident = field.ident.as_ref()?;
    let name = ident.unraw().to_string();
    let json_adapter = field.attrs.iter().any(|a| {
        a.path().is_ident("serde")
            && crate::text::tokens(a.meta.to_token_stream()).replace(' ', "").contains("memdex::json")
    });
    let mut decl = FieldDecl {
        ident,
        column: name.clone(),
        name,
        vis: &field.vis,
        ty: &field.ty,
        key: None,
        json_adapter,
        text: false,
    };
    let mut column_given = false;
    for attr in memdex_attributes(&field.attrs) {
        let result = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("key") {
                if decl.key.is_some() {
                    errors.at(meta.path.span(), "`key` is given twice");
                }
                decl.key = Some(meta.path.span());
            } else if meta.path.is_ident("text") {
                if decl.text {
                    errors.at(meta.path.span(), "`text` is given twice");
                }
                decl.text = true;
            } else if meta.path.is_ident("column") {
                column_option(&meta, &mut decl.column, &mut column_given, errors)?;
            } else if meta.path.is_ident("index") {
                let prefix = index_options(&meta, errors)?;
                indexes.push(IndexDecl {
                    fields: vec![(decl.name.clone(), ident.span())],
                    prefix,
                    order: None,
                    span: meta.path.span(),
                });
            } else {
                skip_value(&meta)?;
                errors.at(
                    meta.path.span(),
                    format!(
                        "unknown memdex option `{}` on a field; expected `key`, `index`, \
                         `index(prefix = n)`, `text` or `column = \"…\"`",
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
    Some(decl)
}

/// `column = "…"`: given once, not empty.
fn column_option(
    meta: &ParseNestedMeta<'_>,
    column: &mut String,
    given: &mut bool,
    errors: &mut Errors,
) -> syn::Result<()> {
    let lit: LitStr = meta.value()?.parse()?;
    if *given {
        errors.at(meta.path.span(), "`column` is given twice");
    } else if lit.value().is_empty() {
        errors.at(lit.span(), "the column name cannot be empty");
    }
    *given = true;
    *column = lit.value();
    Ok(())
}

/// The options of a field's `index` or `index(prefix = n)`: the prefix length, if any.
fn index_options(meta: &ParseNestedMeta<'_>, errors: &mut Errors) -> syn::Result<Option<u32>> {
    let mut prefix = None;
    if !meta.input.peek(syn::token::Paren) {
        return Ok(prefix);
    }
    meta.parse_nested_meta(|inner| {
        if !inner.path.is_ident("prefix") {
            skip_value(&inner)?;
            errors.at(
                inner.path.span(),
                format!(
                    "unknown index option `{}` on a field; expected `prefix = n` \
                     (composite and ordered indexes go on the struct: `#[memdex(index(a, b))]`, \
                     `#[memdex(index(a, order_by = b))]`)",
                    path_text(&inner.path)
                ),
            );
            return Ok(());
        }
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
        Ok(())
    })?;
    Ok(prefix)
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

fn path_text(p: &syn::Path) -> String {
    crate::text::tokens(quote!(#p))
}
