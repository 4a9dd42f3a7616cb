//! The `Model` trait that `#[derive(Model)]` implements, and typed column handles.

use std::marker::PhantomData;

use memdex_grammar::{Schema, Value};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// One index as `select!`'s const check sees it: column field names, and the
/// prefix length (0: not a prefix index). Generated code names it through
/// `memdex::__private`; it lives here so that the model layer imports nothing above it.
#[doc(hidden)]
#[derive(Clone, Copy, Debug)]
pub struct IndexInfo {
    pub columns: &'static [&'static str],
    pub prefix: u32,
}

/// A struct stored in a table and cached as objects and index nodes.
///
/// Implemented by `#[derive(Model)]`; the attributes name the table, the key and
/// the indexes. Hand-written implementations must keep [`Model::INDEXES`],
/// [`Model::INDEX_LIST`] and [`Model::schema`] in agreement.
pub trait Model: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {
    /// The key field's type (`store.delete::<Item>(&id)`).
    type Key: Clone + Into<Value>;

    /// The schema, built once.
    fn schema() -> &'static Schema;

    /// Compile-time facts for `select!`'s indexability check: the key first
    /// (`prefix: 0`), then each declared index.
    const INDEXES: &'static [IndexInfo];

    /// The same list in words, as `Schema::describe_indexes` writes it.
    const INDEX_LIST: &'static str;

    /// The field names, so that `select!`'s check stays silent about a misspelt
    /// field (rustc reports it, once, at the user's code). Empty: unknown.
    const FIELDS: &'static [&'static str] = &[];

    /// The value of column `column` (schema order).
    fn column_value(&self, column: usize) -> Value;

    /// Builds the struct from one value per column, in schema order (a database row).
    fn from_values(values: Vec<Value>) -> Result<Self, String>;

    /// This row's key.
    fn key(&self) -> Self::Key;
}

/// A typed handle on a column, for ordering: `Item::price()`.
#[derive(Debug)]
pub struct Col<T> {
    pub(crate) column: usize,
    _model: PhantomData<fn() -> T>,
}

impl<T> Clone for Col<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Col<T> {}

impl<T: Model> Col<T> {
    /// The handle of column number `column` (used by the derive).
    #[doc(hidden)]
    pub const fn new(column: usize) -> Col<T> {
        Col { column, _model: PhantomData }
    }

    /// The column's field name.
    pub fn field(self) -> &'static str {
        &T::schema().columns[self.column].field
    }
}
