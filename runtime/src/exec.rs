//! The executor: cache-aware index scans (DESIGN.md "Execution").

use memdex_grammar::explain::Explain;
use memdex_grammar::sql::OrderBy;
use memdex_grammar::{Dialect, Schema};

use crate::error::Error;
use crate::model::Model;
use crate::query::{BoundParams, Compiled, Select, View};
use crate::store::Store;

pub(crate) fn fetch<T: Model>(store: &Store, q: &Select<'_, T>) -> Result<Vec<T>, Error> {
    let _ = (store, q);
    unimplemented!("exec")
}
pub(crate) fn count<T: Model>(store: &Store, q: &Select<'_, T>) -> Result<u64, Error> {
    let _ = (store, q);
    unimplemented!("exec")
}
pub(crate) fn scan_fetch<T: Model>(store: &Store, q: &Select<'_, T>) -> Result<Vec<T>, Error> {
    let _ = (store, q);
    unimplemented!("exec")
}
pub(crate) fn scan_count<T: Model>(store: &Store, q: &Select<'_, T>) -> Result<u64, Error> {
    let _ = (store, q);
    unimplemented!("exec")
}
pub(crate) fn view<T: Model, O>(store: &Store, v: &View<'_, T, O>) -> Result<Option<f64>, Error> {
    let _ = (store, v);
    unimplemented!("exec")
}
pub(crate) fn view_sql<T: Model, O>(v: &View<'_, T, O>, dialect: Dialect) -> String {
    let _ = (v, dialect);
    unimplemented!("exec")
}
pub(crate) fn explain(
    schema: &Schema,
    compiled: &Compiled,
    params: &BoundParams,
    spec: (Vec<OrderBy>, Option<u64>, u64),
    dialect: Dialect,
) -> Explain {
    let _ = (schema, compiled, params, spec, dialect);
    unimplemented!("exec")
}
pub(crate) fn sql_text(
    schema: &Schema,
    compiled: &Compiled,
    params: &BoundParams,
    spec: (Vec<OrderBy>, Option<u64>, u64),
    dialect: Dialect,
) -> String {
    let _ = (schema, compiled, params, spec, dialect);
    unimplemented!("exec")
}
