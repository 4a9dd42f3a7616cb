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

/// The async store (feature `tokio`): the same database and cache as a [`Store`],
/// reached without blocking. `Clone + Send + Sync + 'static`: share it as an axum
/// state. Built with `Store::builder()…build_async().await`.
#[cfg(feature = "tokio")]
#[derive(Clone, Debug)]
pub struct AsyncStore {
    pub(crate) driver: Arc<crate::exec::asynchronous::AsyncDriver>,
}
