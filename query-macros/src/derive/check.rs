//! Phase 2: whether the declared pieces fit together. Classifies each field's type,
//! finds the one key, checks that column names are unique, and resolves every index
//! to the fields it names; then builds the grammar's [`Schema`], the same value the
//! runtime gets from `Model::schema()`. Every inconsistency is reported at the
//! attribute or field it is about.

use memdex_grammar::{IndexDef, IndexOrder, Schema, Type};
use syn::spanned::Spanned;

use super::Errors;
use super::attr::{FieldDecl, IndexDecl, ModelDecl};
use super::types::{classify, option_inner};

/// What checking found out, even when it reported errors (the fallback expansion
/// uses it too).
pub(super) struct Checked {
    /// Per field, its column type and whether it is nullable; `None` when the type
    /// is unsupported (reported).
    pub(super) kinds: Vec<Option<(Type, bool)>>,
    /// The key field's position, when exactly one field is the key.
    pub(super) key: Option<usize>,
    /// The declared indexes as column numbers, in declaration order.
    pub(super) indexes: Vec<IndexDef>,
}

/// Checks the declaration, reporting every inconsistency into `errors`.
pub(super) fn model(decl: &ModelDecl<'_>, errors: &mut Errors) -> Checked {
    let fields = decl.fields.as_deref().unwrap_or_default();
    let kinds: Vec<_> = fields.iter().map(|f| kind(f).map_err(|e| errors.push(e)).ok()).collect();
    prefix_indexes_are_on_strings(decl, fields, &kinds, errors);
    let key = key(decl, &kinds, errors);
    columns_are_unique(fields, errors);
    let indexes = resolve_indexes(decl, fields, key, errors);
    indexes_are_comparable(decl, fields, &kinds, errors);
    json_fields_have_adapters(fields, &kinds, errors);
    Checked { kinds, key, indexes }
}

/// A field's column type and nullability: text for a `#[memdex(text)]` enum (or an
/// `Option` of one), else what its type says.
fn kind(f: &FieldDecl<'_>) -> syn::Result<(Type, bool)> {
    if f.text {
        return Ok((Type::Text, option_inner(f.ty).is_some()));
    }
    classify(f.ty)
}

/// A prefix index serves `starts_with`, which only a `String` field has.
fn prefix_indexes_are_on_strings(
    decl: &ModelDecl<'_>,
    fields: &[FieldDecl<'_>],
    kinds: &[Option<(Type, bool)>],
    errors: &mut Errors,
) {
    for ix in decl.indexes.iter().filter(|ix| ix.prefix.is_some()) {
        // Only a field's own attribute declares a prefix index, so it names one field.
        let Some((name, _)) = ix.fields.first() else { continue };
        let Some(i) = fields.iter().position(|f| &f.name == name) else { continue };
        if kinds[i].is_some_and(|k| k != (Type::Text, false)) {
            errors.at(
                fields[i].ty.span(),
                format!(
                    "a prefix index serves `starts_with`, so `{name}` must be a `String` (not an Option or a number)"
                ),
            );
        }
    }
}

/// The key field: exactly one, neither an `Option` nor a float.
fn key(decl: &ModelDecl<'_>, kinds: &[Option<(Type, bool)>], errors: &mut Errors) -> Option<usize> {
    let fields = decl.fields.as_deref()?;
    let mut keys = fields.iter().enumerate().filter(|(_, f)| f.key.is_some());
    let Some((first, key_field)) = keys.next() else {
        let model = &decl.name;
        errors.at(
            decl.input.ident.span(),
            format!("`{model}` has no key: mark the primary-key field with `#[memdex(key)]`"),
        );
        return None;
    };
    let mut unique = true;
    for (_, other) in keys {
        unique = false;
        let span = other.key.unwrap_or_else(|| other.ident.span());
        errors.at(
            span,
            format!(
                "`{}` already has a key (`{}`); a model has exactly one `#[memdex(key)]`",
                decl.name, key_field.name
            ),
        );
    }
    if !unique {
        return None;
    }
    match kinds[first] {
        Some((_, true)) => errors.at(key_field.ty.span(), "the key cannot be an `Option`: every row needs a key"),
        Some((Type::Float, _)) => {
            errors.at(key_field.ty.span(), "the key cannot be a float: NaN is not equal to itself");
        }
        // Index nodes and the outbox spell keys as integers or strings.
        Some((Type::Bytes | Type::Timestamp | Type::Uuid | Type::Json, _)) => {
            errors.at(key_field.ty.span(), "the key must be an integer or a `String`");
        }
        _ => {}
    }
    Some(first)
}

/// An index lists rows by equal values, which a JSON document does not have.
fn indexes_are_comparable(
    decl: &ModelDecl<'_>,
    fields: &[FieldDecl<'_>],
    kinds: &[Option<(Type, bool)>],
    errors: &mut Errors,
) {
    let order_fields = decl.indexes.iter().filter_map(|ix| ix.order.as_ref().map(|o| &o.field));
    for (name, span) in decl.indexes.iter().flat_map(|ix| &ix.fields).chain(order_fields) {
        let Some(i) = fields.iter().position(|f| &f.name == name) else { continue };
        if kinds[i].is_some_and(|(ty, _)| !ty.comparable()) {
            errors.at(
                *span,
                format!(
                    "`{name}` is a JSON document, which cannot be indexed: JSON is stored and read back, never compared"
                ),
            );
        }
    }
}

/// A JSON field is cached as its text, through `memdex::json`'s serde adapter:
/// without it the cached object could be written but never read back.
fn json_fields_have_adapters(fields: &[FieldDecl<'_>], kinds: &[Option<(Type, bool)>], errors: &mut Errors) {
    for (f, kind) in fields.iter().zip(kinds) {
        let Some((Type::Json, nullable)) = kind else { continue };
        if !f.json_adapter {
            let adapter = if *nullable { "memdex::json::option" } else { "memdex::json" };
            errors.at(
                f.ty.span(),
                format!(
                    "a JSON field is cached as its text: add `#[serde(with = \"{adapter}\")]` to `{}` \
                     (serde_json::Value cannot be read back from memdex's compact cache format otherwise)",
                    f.name
                ),
            );
        }
    }
}

/// Two fields cannot share a column name (`#[memdex(column = "…")]` can make them).
fn columns_are_unique(fields: &[FieldDecl<'_>], errors: &mut Errors) {
    for (i, f) in fields.iter().enumerate() {
        if fields[..i].iter().any(|g| g.column == f.column) {
            errors.at(f.ident.span(), format!("two fields use the column name `{}`", f.column));
        }
    }
}

/// Each index as column numbers: its fields exist and are listed once, it is not
/// the key alone (always indexed), and it is not declared twice.
fn resolve_indexes(
    decl: &ModelDecl<'_>,
    fields: &[FieldDecl<'_>],
    key: Option<usize>,
    errors: &mut Errors,
) -> Vec<IndexDef> {
    let mut resolved: Vec<IndexDef> = Vec::new();
    for ix in &decl.indexes {
        let Some(columns) = index_columns(decl, fields, ix, errors) else { continue };
        let Ok(order) = index_order(decl, fields, ix, &columns, errors) else { continue };
        let index = IndexDef { columns, prefix: ix.prefix, order };
        if index.columns.len() == 1 && Some(index.columns[0]) == key && index.prefix.is_none() {
            errors.at(ix.span, "the key is always indexed; remove this index");
        } else if resolved.iter().any(|r| same_nodes(r, &index)) {
            errors.at(ix.span, "this index is declared twice (an ordered index serves both directions)");
        } else {
            resolved.push(index);
        }
    }
    resolved
}

/// The column numbers of an index's fields; `None` (reported) when one is unknown
/// or listed twice.
fn index_columns(
    decl: &ModelDecl<'_>,
    fields: &[FieldDecl<'_>],
    ix: &IndexDecl,
    errors: &mut Errors,
) -> Option<Vec<usize>> {
    let mut columns = Vec::new();
    for (name, span) in &ix.fields {
        match fields.iter().position(|f| &f.name == name) {
            Some(c) if columns.contains(&c) => errors.at(*span, format!("`{name}` is listed twice in this index")),
            Some(c) => columns.push(c),
            None => {
                errors.at(*span, format!("`{name}` is not a field of `{}`{}", decl.name, did_you_mean(name, fields)))
            }
        }
    }
    (columns.len() == ix.fields.len()).then_some(columns)
}

/// Whether two indexes name the same nodes: the direction an ordered index was
/// declared with is only the database index's, a node serves both.
fn same_nodes(a: &IndexDef, b: &IndexDef) -> bool {
    a.columns == b.columns && a.prefix == b.prefix && a.order.map(|o| o.column) == b.order.map(|o| o.column)
}

/// An ordered index's order column: a field of the model, not one of the index's
/// own (every id of a node has the same value there). `Err` when reported.
fn index_order(
    decl: &ModelDecl<'_>,
    fields: &[FieldDecl<'_>],
    ix: &IndexDecl,
    columns: &[usize],
    errors: &mut Errors,
) -> Result<Option<IndexOrder>, ()> {
    let Some(order) = &ix.order else { return Ok(None) };
    let (name, span) = &order.field;
    match fields.iter().position(|f| &f.name == name) {
        Some(c) if columns.contains(&c) => {
            errors.at(
                *span,
                format!("`{name}` is a column of this index: every id of one node has the same `{name}`, so ordering by it orders nothing"),
            );
            Err(())
        }
        Some(column) => Ok(Some(IndexOrder { column, descending: order.descending })),
        None => {
            errors.at(*span, format!("`{name}` is not a field of `{}`{}", decl.name, did_you_mean(name, fields)));
            Err(())
        }
    }
}

fn did_you_mean(name: &str, fields: &[FieldDecl<'_>]) -> String {
    fields
        .iter()
        .map(|f| (strsim::levenshtein(name, &f.name), &f.name))
        .filter(|(d, f)| *d <= 2.max(f.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, f)| format!("; did you mean `{f}`?"))
        .unwrap_or_default()
}

/// The schema of a model that checked without errors: every field classified, the
/// key found. `None` otherwise.
pub(super) fn schema(decl: &ModelDecl<'_>, checked: &Checked) -> Option<Schema> {
    let fields = decl.fields.as_deref()?;
    let table = decl.table.clone().unwrap_or_else(|| snake_case(&decl.name));
    let mut schema = Schema::new(decl.name.clone(), table);
    for (f, kind) in fields.iter().zip(&checked.kinds) {
        let (ty, nullable) = (*kind)?;
        schema = schema.column(&f.name, ty, nullable);
        if let Some(last) = schema.columns.last_mut() {
            last.name = f.column.clone();
        }
    }
    schema.key = checked.key?;
    schema.indexes = checked.indexes.clone();
    Some(schema)
}

/// `OrderLine` → `order_line`, `HTTPRequest` → `http_request`: the default table name.
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
