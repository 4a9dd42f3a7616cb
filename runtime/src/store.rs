//! `Store`: the database, the cache, and the settings that tie them together.

use std::sync::Arc;

use crate::cache::CacheBackend;
use crate::db::Database;
use crate::error::Error;
use crate::model::Model;

/// A database with a cache in front. Cheap to clone; share it between threads.
#[derive(Clone, Debug)]
pub struct Store {
    pub(crate) inner: Arc<StoreInner>,
}

#[derive(Debug)]
pub(crate) struct StoreInner {
    pub(crate) db: Box<dyn Database>,
    pub(crate) cache: Box<dyn CacheBackend>,
}

impl Store {
    pub fn builder() -> StoreBuilder {
        StoreBuilder::default()
    }

    /// Creates the model's table and indexes if they do not exist.
    pub fn migrate<T: Model>(&self) -> Result<(), Error> {
        unimplemented!("store")
    }
}

/// Configures a [`Store`].
#[derive(Debug, Default)]
pub struct StoreBuilder {}
