//! memdex's proc macros: [`macro@Model`] (the derive), [`select!`], [`scan!`] and
//! [`view!`]. Use them through the `memdex` crate, which re-exports them; the
//! generated code names `::memdex::…` and `::memdex::__private::…` only.
//!
//! This crate's documentation is the reference for both:
//!
//! * the `#[memdex(…)]` attributes, the supported field types and what the derive
//!   generates: [`macro@Model`];
//! * the query language, in its two spellings (a Rust closure here, a Python lambda
//!   for `Store::recall_text` and friends), and the index rule `select!` checks at
//!   compile time: [`select!`]; [`scan!`] and [`view!`] use the same language.
//!
//! Each macro is a thin shim over an `*_inner(proc_macro2::TokenStream)` function
//! that unit tests call directly; the language logic (normalisation, candidates for
//! index planning, messages) lives in `memdex-grammar`, which the text form uses too,
//! so a query has the same plan, cache keys and SQL whichever way it is written.
//!
//! The examples below are `text` blocks: a proc-macro crate cannot run code that
//! uses its own macros against the runtime. `memdex`'s own tests and examples run
//! every construct shown here.

#![warn(missing_docs)]

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

/// Makes a struct a memdex model: its table, columns, key and indexes (the
/// schema), the index list [`select!`] checks queries against at compile time,
/// conversion from database rows, and one column handle per field
/// (`Item::price()`) for `order_by`.
///
/// ```text
/// use memdex::Model;
///
/// #[derive(Model, Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
/// #[memdex(table = "item")]
/// #[memdex(index(cart_id, status))]
/// pub struct Item {
///     #[memdex(key)]               pub id: i64,
///     #[memdex(index)]             pub category_id: i64,
///     #[memdex(index(prefix = 1))] pub first_name: String,
///     #[memdex(column = "cost")]   pub price: f64,
///     pub deleted_at: Option<i64>,
///     pub cart_id: i64,
///     pub status: String,
/// }
/// ```
///
/// A model is a struct with named fields and no generic parameters. It also needs
/// `Clone`, `serde::Serialize` and `serde::Deserialize` (cached objects are stored
/// serialized) and must be `Send + Sync + 'static`.
///
/// # Attributes on the struct
///
/// | attribute | meaning |
/// |---|---|
/// | `#[memdex(table = "item")]` | The SQL table. Default: the struct's name in snake_case (`OrderLine` → `order_line`, `HTTPRequest` → `http_request`). Given at most once, not empty. |
/// | `#[memdex(index(cart_id, status))]` | A composite index over the named fields, in that order. It serves an alternative of a query that pins every one of its fields with `==`, `in` or `is_none()`; its cache nodes are named by all the values (`…:cart_id=3&status=open`). Any number of them; each names at least one field, each field once. A prefix index cannot be composite. |
///
/// # Attributes on a field
///
/// | attribute | meaning |
/// |---|---|
/// | `#[memdex(key)]` | The primary key: exactly one field has it. The key is always indexed: a query that pins it reads the objects directly, without an index node (so `#[memdex(index)]` on the key alone is an error). It cannot be an `Option` (every row needs a key) or a float (NaN is not equal to itself). |
/// | `#[memdex(index)]` | An index on this field alone: one cache node per value (`…:category_id=5`), listing the keys of the rows with that value. Serves `==`, `in` and `is_none()`. |
/// | `#[memdex(index(prefix = n))]` | A prefix index on a `String` field (not an `Option`): one node per first `n` characters (Unicode scalar values, `n ≥ 1`). Serves `starts_with(p)` when `p` is a literal of at least `n` characters, or a captured value (whose length is checked when the query runs: a shorter one is answered by the database instead). `==` does not use it. |
/// | `#[memdex(column = "cost")]` | The SQL column. Default: the field name (`r#type` is `type`). Given at most once, not empty, and no two fields share a column. Queries still name the field. |
///
/// Options combine in one attribute or several: `#[memdex(key, column = "item_id")]`,
/// `#[memdex(index, index(prefix = 2))]` (a field may have both a whole-value and a
/// prefix index). The same index declared twice is an error.
///
/// # Field types
///
/// | Rust type | column |
/// |---|---|
/// | `i64`, `i32`, `i16`, `i8`, `u32`, `u16`, `u8` | 64-bit integer |
/// | `f64`, `f32` | double precision float |
/// | `String` | text, compared and ordered by bytes in every database |
/// | `bool` | boolean |
/// | `Vec<u8>` | bytes, compared and ordered by bytes |
/// | `DateTime<Utc>` (chrono, feature `chrono`), `OffsetDateTime` (time, feature `time`) | an instant, microsecond precision |
/// | `Uuid` (uuid, feature `uuid`) | a UUID, compared by bytes |
/// | `serde_json::Value` (feature `json`; spelled with `serde_json::`) | a JSON document: stored, never compared or indexed; needs `#[serde(with = "memdex::json")]` (`memdex::json::option` for an `Option`) |
/// | an enum of unit variants, with `#[memdex(text)]` and `memdex::text_enum!(Enum)` | text: the variant's serde name |
/// | `Option<T>` of one of those | the same, nullable (`None` is NULL) |
///
/// `u64`, `usize`, `isize`, `i128` and `u128` are refused: they do not fit a
/// database integer (`i64`) exactly. Types are recognised by their last path
/// segment, so a type alias is refused too (a macro cannot see through it), and
/// `Option<Option<_>>` is refused (a column has one NULL).
///
/// # What it generates
///
/// * `impl memdex::Model for Item`: `type Key` is the key field's type; `schema()`
///   (table, columns, key, indexes, built once); the consts `select!`'s compile-time
///   check reads (`INDEXES`: the key first, then each index; `INDEX_LIST`: the same
///   in words, `id (key), (cart_id, status), category_id, first_name (prefix 1)`;
///   `FIELDS`); `column_value`, `from_values` (a database row to the struct, with an
///   error naming the field and column when a value does not fit) and `key()`.
/// * One `const fn` per field with the field's visibility, `Item::price() ->
///   memdex::Col<Item>`, for `order_by(Item::price())`.
///
/// # Errors
///
/// Every mistake is a compile error at the attribute or field it is about, and all
/// of them are reported in one compile: an unknown option (the error lists the
/// options that exist), an option given twice or empty, `prefix = 0`, a prefix
/// index on a field that is not a `String`, `prefix` or a non-field in a struct's
/// `index(…)`, a field an index names that does not exist (with a did-you-mean), a
/// field listed twice in one index, the key indexed alone, an index declared twice,
/// no key or two keys, an `Option` or float key, a key that is not an integer or a
/// `String`, an index on a JSON field, a JSON field without its serde adapter, two
/// fields with one column name,
/// an unsupported field type, a generic struct, a tuple or unit struct, an enum or a
/// union.
///
/// After such a mistake the derive still emits an `impl Model` (whose code never
/// runs: the crate does not build) and the column handles, so that the model's uses
/// (`select!`, `Item::price()`, `store.insert(&item)`) add no errors of their own:
/// the attribute's error is the one the user sees.
///
/// ```text
/// error: unknown memdex option `indx` on a field; expected `key`, `index`, `index(prefix = n)` or `column = "…"`
///   --> src/model.rs:13:14
///    |
/// 13 |     #[memdex(indx)]
///    |              ^^^^
/// ```
#[proc_macro_derive(Model, attributes(memdex))]
pub fn derive_model(input: TokenStream) -> TokenStream {
    expand(input, derive_model_inner)
}

/// A query served by the cache's index nodes: `select!(Model, |c| filter)`.
///
/// ```text
/// let cat = 5;
/// let q = select!(Item, |c| c.category_id == cat && c.price > 10.0);
/// let rows: Vec<Item> = q.fetch(&store)?;
/// let page = select!(Item, |c| c.category_id == cat)
///     .order_by_desc(Item::price()).limit(10).offset(30).fetch(&store)?;
/// let n: u64 = q.count(&store)?;
/// println!("{}", q.explain(Dialect::Sqlite));   // plan, node keys, SQL, round trips
/// ```
///
/// The closure is written once and used twice: lowered at compile time to the
/// query language below (planned once per call site, and turned into SQL for the
/// database on a cache miss), and kept as it is, as the in-memory predicate that
/// filters cached objects, so rustc checks its field names and types where they
/// were written. The expression's value is the runtime's query type (`fetch`,
/// `count`, `order_by`, `limit`, `offset`, `explain`, `sql`).
///
/// # The language
///
/// The same language has two spellings: the closure of these macros, and the Python
/// lambda text the runtime parses (`store.recall_text::<Item>("lambda c: …",
/// &[("cat", 5.into())])`). Both give the same plan, cache keys and SQL.
///
/// | Rust closure | text form | meaning (SQL) |
/// |---|---|---|
/// | `c.field` | `c.field` | a field of the row (a column). The parameter may have any name, be `_`, or carry a type (`\|c: &Item\|`). |
/// | `==  !=  <  <=  >  >=` | same | comparisons (`= <> < <= > >=`). On an `Option` field `==` and `!=` keep Rust's meaning: `None == None` (`IS NOT DISTINCT FROM`, `<=>`, `IS`). Strings compare by bytes. |
/// | `&&  \|\|  !` | `and  or  not` | `AND OR NOT` |
/// | `+ - * / %`, unary `-` | same | `i64` arithmetic as Rust's: `/` truncates toward zero; an overflow or a division by zero makes the comparison that uses it false (never a panic, never a database error). A float result that is not finite counts the same way. No `%` on floats. |
/// | `c.s.starts_with(x)`, `c.s.ends_with(x)`, `c.s.contains(x)` | `c.s.startswith(x)`, `c.s.endswith(x)`, `x in c.s` | `LIKE` (SQLite: `GLOB`) with the wildcards in `x` escaped: case-sensitive and byte-exact in every database. `x` is a literal or a captured value. |
/// | `c.s.eq_ignore_ascii_case(x)` | `ieq(c.s, x)` | equality ignoring ASCII case only |
/// | `c.s.to_lowercase()` | `c.s.lower()` | Unicode lowercase, on both sides of what it is compared with |
/// | `c.s.len()` | `len(c.s)` | the length in bytes, as Rust's `str::len` |
/// | `[1, 2].contains(&c.x)`, `ids.contains(&c.x)` | `c.x in (1, 2)`, `c.x in [1, 2]`, `c.x in ids` | membership (`IN`; a list of over 100 values is bound as one parameter where the database can) |
/// | `c.o.is_none()`, `c.o.is_some()` | `c.o is None`, `c.o is not None` | `IS NULL`, `IS NOT NULL` |
/// | `c.o == Some(v)`, `c.o == None` | `c.o == v`, `c.o == None` | null-aware equality with an `Option` field |
/// | literals: integers, floats, `"strings"`, `true`, `false` | integers, floats (`1.5`, `1e3`, `.5`), `'strings'` or `"strings"` with escapes, `True`, `False`, `None` | always bound parameters, never spliced into SQL text |
/// | captured values: any expression that does not mention the parameter (`cat`, `self.limit`, `x + 1`, `&name`, `f(x)`), evaluated when the query value is built | free names, bound by name when the query runs | bound parameters |
/// | `view!(T, \|m\| avg(m.f))` with `count()`, `sum`, `min`, `max`, `avg` | `lambda m: avg(m.f)` | aggregates (see [`view!`]) |
///
/// A captured value is one of `i8`, `i16`, `i32`, `i64`, `u8`, `u16`, `u32`, `f32`,
/// `f64`, `bool`, `String`, `&str`, or an `Option`, slice, array or `Vec` of those
/// (a list for `ids.contains(&c.x)`); another type is a compile error at it.
/// References (`&c.s == &name`) and parentheses are allowed anywhere.
///
/// Anything else is a compile error at that sub-expression, saying what is
/// supported: a call of another function (`foo(c.x)`), another method
/// (`c.s.trim()`), a block, `if`, a second closure parameter, a field of a field
/// (`c.a.b`), the parameter used as a value, a dereference, a bit operator, an
/// aggregate outside [`view!`]. Several mistakes in one query are all reported.
///
/// # Indexes: what `select!` accepts
///
/// The filter is normalised to alternatives (disjunctive normal form, at most 64 of
/// them). Every alternative must pin all the fields of one index of the model, or
/// its key, with `==`, `in` or `is_none()` (a prefix index: with `starts_with` of a
/// long enough literal, or of a captured value). The most selective index wins
/// (the key, then composite indexes, then single, then prefix); everything else in
/// the alternative filters the objects in memory. An alternative that can never
/// hold (`c.x == 1 && c.x == 2`) is dropped and needs no index.
///
/// An alternative no index serves is a compile error at that alternative, with the
/// same words the text form's `Error::Unindexable` uses:
///
/// ```text
/// error[E0080]: evaluation panicked: memdex: no index of Item serves `c.price > 10.0`: every
/// alternative of a select needs `==`, `in` or a prefix `starts_with` on all columns of one index
/// (indexes: id (key), (cart_id, status), category_id, first_name (prefix 2)); add an `==` or `in`
/// test on an indexed field (this alternative only tests `price` in other ways), or use scan! to
/// query the database
///   --> src/main.rs:22:32
///    |
/// 22 |     let _q = select!(Item, |c| c.price > 10.0);
///    |                                ^^^^^^^^^^^^^^ evaluation of `main::_` failed inside this call
/// ```
///
/// The suggestion depends on the alternative: ``add #[memdex(index)] on `price` ``
/// when it tests `c.price == x`, the composite index to add when it pins several
/// fields, a longer pattern or a prefix index for `starts_with`.
///
/// [`scan!`] runs the same language on the database, without this requirement.
#[proc_macro]
pub fn select(input: TokenStream) -> TokenStream {
    expand(input, select_inner)
}

/// A query run on the database, without the cache: `scan!(Model, |c| filter)`,
/// for filters no index serves.
///
/// ```text
/// let cheap: Vec<Item> = scan!(Item, |c| c.price < 1.0).fetch(&store)?;
/// ```
///
/// The language is [`select!`]'s, with no index requirement; the closure is again
/// both the SQL (`WHERE`) and the in-memory predicate, which decides: the SQL may
/// select a superset (arithmetic is left to the predicate), never fewer rows.
#[proc_macro]
pub fn scan(input: TokenStream) -> TokenStream {
    expand(input, scan_inner)
}

/// An aggregate over a model's rows: `view!(Model, |m| aggregate)` over every row,
/// or `view!(Model, |m| filter, |m| aggregate)` over the rows the filter selects.
///
/// ```text
/// let all: Option<f64> = view!(Master, |m| avg(m.runs)).fetch(&store)?;
/// let sea: Option<f64> = view!(Master, |m| m.team == team, |m| avg(m.runs)).fetch(&store)?;
/// let n: u64 = view!(Master, |m| m.team == team, |m| count()).fetch(&store)?;
/// ```
///
/// The aggregate closure's body is exactly one of `count()`, `sum(m.f)`,
/// `min(m.f)`, `max(m.f)` or `avg(m.f)`, where the argument is a numeric
/// expression of the row (rustc checks that it is numeric). `count()` gives a
/// `u64`; the others an `Option<f64>`, `None` over no rows. Without a filter the
/// database computes it. With one, the filter is [`select!`]'s language and
/// follows its index rule (an unindexable filter is a compile error); the rows come
/// from the cache and the aggregate is computed in memory.
#[proc_macro]
pub fn view(input: TokenStream) -> TokenStream {
    expand(input, view_inner)
}
