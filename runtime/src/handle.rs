//! The store handles the public API hangs off. The types live below the query and
//! store façades so that both can name them without importing each other; their
//! methods are in `crate::store` (and `crate::query` for the queries' `fetch`).

use std::sync::Arc;

use crate::exec::blocking::Driver;

/// A database with a cache in front. Cheap to clone; share it between threads.
///
/// Built with [`Store::builder`]; every method is blocking. Inside an async runtime,
/// use `AsyncStore` (feature `tokio`) instead.
#[derive(Clone, Debug)]
pub struct Store {
    pub(crate) driver: Arc<Driver>,
}
