//! Support for running the async store from synchronous tests: one multi-thread
//! tokio runtime per test binary, and the async memcached client seen as a blocking
//! [`CacheBackend`] so that the shared conformance checks run on its transport too.

use std::future::Future;
use std::sync::OnceLock;

use memdex::cache::memcached::AsyncMemcached;
use memdex::cache::{CacheBackend, CacheError, CacheHealth, CacheOp, CacheReply};
use tokio::runtime::Runtime;

/// The runtime of this test binary (two workers, like the machines CI runs on).
pub fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime")
    })
}

/// Runs a future to completion on the test runtime.
pub fn block_on<F: Future>(future: F) -> F::Output {
    runtime().block_on(future)
}

/// The tokio memcached client behind the blocking interface: every batch is
/// `block_on(client.run(ops))`, so each byte still goes over `tokio::net`.
#[derive(Debug)]
pub struct OnRuntime(pub AsyncMemcached);

impl OnRuntime {
    /// Connects the async client (inside the test runtime).
    pub fn connect(servers: &[String], config: memdex::cache::CacheConfig) -> Result<OnRuntime, CacheError> {
        block_on(AsyncMemcached::connect(servers, config)).map(OnRuntime)
    }
}

impl CacheBackend for OnRuntime {
    fn run(&self, ops: &[CacheOp<'_>]) -> Vec<Result<CacheReply, CacheError>> {
        block_on(self.0.run(ops))
    }

    fn max_value_size(&self) -> usize {
        self.0.max_value_size()
    }

    fn describe(&self) -> String {
        self.0.describe()
    }

    fn owes(&self, keys: &[&str]) -> bool {
        self.0.owes(keys)
    }

    fn is_available(&self, key: &str) -> bool {
        self.0.is_available(key)
    }

    fn health(&self) -> CacheHealth {
        self.0.health()
    }
}

/// A store through either driver, its calls made from synchronous test code: a
/// test that says what both drivers must do writes it once.
#[derive(Clone, Debug)]
pub enum EitherStore {
    Blocking(memdex::Store),
    Tokio(memdex::AsyncStore),
}

impl EitherStore {
    /// The store `builder` builds, through the driver named `driver` (`"blocking"`
    /// or `"async"`).
    pub fn build(driver: &str, builder: memdex::StoreBuilder) -> Result<EitherStore, memdex::Error> {
        match driver {
            "blocking" => builder.build().map(EitherStore::Blocking),
            _ => block_on(builder.build_async()).map(EitherStore::Tokio),
        }
    }

    pub fn insert<T: memdex::Model>(&self, row: &T) -> Result<(), memdex::Error> {
        match self {
            EitherStore::Blocking(s) => s.insert(row),
            EitherStore::Tokio(s) => block_on(s.insert(row)),
        }
    }

    pub fn update<T: memdex::Model>(&self, row: &T) -> Result<(), memdex::Error> {
        match self {
            EitherStore::Blocking(s) => s.update(row),
            EitherStore::Tokio(s) => block_on(s.update(row)),
        }
    }

    pub fn delete<T: memdex::Model>(&self, key: &T::Key) -> Result<(), memdex::Error> {
        match self {
            EitherStore::Blocking(s) => s.delete::<T>(key),
            EitherStore::Tokio(s) => block_on(s.delete::<T>(key)),
        }
    }

    /// The rows of `q`.
    pub fn fetch<T: memdex::Model>(&self, q: &memdex::Select<'_, T>) -> Result<Vec<T>, memdex::Error> {
        match self {
            EitherStore::Blocking(s) => q.fetch(s),
            EitherStore::Tokio(s) => block_on(q.fetch_async(s)),
        }
    }

    pub fn stats(&self) -> memdex::Stats {
        match self {
            EitherStore::Blocking(s) => s.stats(),
            EitherStore::Tokio(s) => s.stats(),
        }
    }
}
