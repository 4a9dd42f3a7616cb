//! Field types as column types: `i64` is an integer column, `Option<String>` a
//! nullable text column, anything else an error saying what is supported.

use memdex_grammar::Type;
use quote::quote;
use syn::spanned::Spanned;

const SUPPORTED_TYPES: &str = "i64, i32, i16, i8, u32, u16, u8, f64, f32, String, bool, Vec<u8>, \
     chrono::DateTime<Utc>, time::OffsetDateTime, uuid::Uuid, serde_json::Value, or an Option of one of those";

/// The column type of a field type, and whether it is nullable, by its last path
/// segment (type aliases cannot be seen through by a macro, so they are reported as
/// unsupported).
pub(super) fn classify(ty: &syn::Type) -> syn::Result<(Type, bool)> {
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
    if let Some(ty) = generic_scalar(last) {
        return Ok(ty);
    }
    if !last.arguments.is_none() {
        return Err(unsupported());
    }
    if last.ident == "Value" {
        // `Value` alone could be any crate's (memdex has one too): only the full
        // `serde_json::Value` names a JSON document.
        let in_serde_json =
            p.path.segments.len() >= 2 && p.path.segments[p.path.segments.len() - 2].ident == "serde_json";
        return if in_serde_json { Ok(Type::Json) } else { Err(unsupported()) };
    }
    Ok(match last.ident.to_string().as_str() {
        "i64" | "i32" | "i16" | "i8" | "u32" | "u16" | "u8" => Type::Int,
        "f64" | "f32" => Type::Float,
        "String" => Type::Text,
        "bool" => Type::Bool,
        "OffsetDateTime" => Type::Timestamp,
        "Uuid" => Type::Uuid,
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

/// The column types spelled with generic arguments: `Vec<u8>` (bytes) and
/// `DateTime<Utc>` (an instant). A type of another crate with the same name fails
/// to compile at the field all the same, since it has no memdex conversion.
fn generic_scalar(last: &syn::PathSegment) -> Option<Type> {
    let syn::PathArguments::AngleBracketed(args) = &last.arguments else { return None };
    let [syn::GenericArgument::Type(syn::Type::Path(arg))] = args.args.iter().collect::<Vec<_>>()[..] else {
        return None;
    };
    let arg = arg.path.segments.last()?;
    match (last.ident.to_string().as_str(), arg.ident.to_string().as_str()) {
        ("Vec", "u8") => Some(Type::Bytes),
        ("DateTime", "Utc") => Some(Type::Timestamp),
        _ => None,
    }
}

pub(super) fn option_inner(ty: &syn::Type) -> Option<&syn::Type> {
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
