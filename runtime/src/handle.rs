//! The store handles the public API hangs off. The types live below the query and
//! store façades so that both can name them without importing each other; their
//! methods are in `crate::store` (and `crate::query` for the queries' `fetch`).

use std::sync::Arc;

use crate::exec::blocking::Driver;

/// A database with a cache in front. Cheap to clone; share it between threads.
///
/// Built with [`Store::builder`]; every method is blocking. Inside an async runtime,
/// use `AsyncStore` (feature `tokio`) instead.
///
/// ```
/// use memdex::{Model, Store, select};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Model, Clone, Debug, PartialEq, Serialize, Deserialize)]
/// pub struct Item {
///     #[memdex(key)]
///     pub id: i64,
///     #[memdex(index)]
///     pub category_id: i64,
/// }
///
/// let store = Store::builder().sqlite_in_memory().in_process_cache().build()?;
/// store.migrate::<Item>()?;
/// store.insert(&Item { id: 1, category_id: 5 })?;
///
/// // Clones share the database, the cache and the counters.
/// let other = store.clone();
/// let found = std::thread::spawn(move || select!(Item, |i| i.category_id == 5).fetch(&other))
///     .join()
///     .expect("the thread ran")?;
/// assert_eq!(found, [Item { id: 1, category_id: 5 }]);
/// assert_eq!(store.describe(), "SQLite (in memory) + in-process");
/// # Ok::<(), memdex::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Store {
    pub(crate) driver: Arc<Driver>,
}

/// The async store (feature `tokio`): the same database and cache as a [`Store`],
/// reached without blocking. `Clone + Send + Sync + 'static`: share it as an axum
/// state. Built with `Store::builder()…build_async().await`.
///
/// ```
/// use memdex::{AsyncStore, Model, Store, select};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Model, Clone, Debug, PartialEq, Serialize, Deserialize)]
/// pub struct Item {
///     #[memdex(key)]
///     pub id: i64,
///     #[memdex(index)]
///     pub category_id: i64,
/// }
///
/// # let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
/// # runtime.block_on(async {
/// let store: AsyncStore = Store::builder().sqlite_in_memory().build_async().await?;
/// store.migrate::<Item>().await?;
/// store.insert(&Item { id: 1, category_id: 5 }).await?;
/// store.update(&Item { id: 1, category_id: 6 }).await?;
///
/// let in_six = select!(Item, |i| i.category_id == 6);
/// assert_eq!(in_six.fetch_async(&store).await?, [Item { id: 1, category_id: 6 }]);
///
/// store.delete::<Item>(&1).await?;
/// assert_eq!(in_six.count_async(&store).await?, 0);
/// # Ok::<(), memdex::Error>(())
/// # })?;
/// # Ok::<(), memdex::Error>(())
/// ```
#[cfg(feature = "tokio")]
#[derive(Clone, Debug)]
pub struct AsyncStore {
    pub(crate) driver: Arc<crate::exec::asynchronous::AsyncDriver>,
}
