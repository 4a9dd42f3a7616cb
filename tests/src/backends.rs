//! Runs one test body over every database × cache combination memdex supports:
//! SQLite, PostgreSQL and MariaDB; the in-process cache and a real memcached. Each store a
//! test asks for is fresh (its own database, its own cache namespace).

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use memdex::cache::in_process::InProcessCache;
use memdex::cache::memcached::Memcached;
use memdex::cache::{CacheBackend, CacheConfig, CacheError, CacheOp, CacheReply};
use memdex::{Store, StoreBuilder};

use crate::servers::mariadb::MariaDbServer;
use crate::servers::memcached::MemcachedServer;
use crate::servers::postgres::PostgresServer;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
    MySql,
}

impl Db {
    /// Every database, in the order tests run them.
    pub const ALL: [Db; 3] = [Db::Sqlite, Db::Postgres, Db::MySql];
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cache {
    InProcess,
    Memcached,
}

/// One combination; `store()` builds a fresh store on it.
#[derive(Debug)]
pub struct Backends {
    pub db: Db,
    pub cache: Cache,
    tag: String,
    memcached: Option<String>,
}

static SEQUENCE: AtomicU64 = AtomicU64::new(0);

/// One PostgreSQL for the whole test binary: each store gets its own database.
pub fn postgres() -> &'static PostgresServer {
    PostgresServer::shared().expect("PostgreSQL 15 starts (is postgresql-15 installed?)")
}

/// One MariaDB for the whole test binary: each store gets its own database.
pub fn mariadb() -> &'static MariaDbServer {
    MariaDbServer::shared().expect("MariaDB starts (is mariadb-server installed?)")
}

/// A builder on a fresh database `name` of `db` (SQLite: in memory).
fn with_database(builder: memdex::StoreBuilder, db: Db, name: &str) -> memdex::StoreBuilder {
    match db {
        Db::Sqlite => builder.sqlite_in_memory(),
        Db::Postgres => builder.postgres(postgres().create_database(name).expect("create database")),
        Db::MySql => builder.mysql(mariadb().create_database(name).expect("create database")),
    }
}

impl Backends {
    pub fn store(&self) -> Store {
        self.store_with(|builder| builder)
    }

    /// A fresh store, its builder first passed through `configure` (to set a
    /// tunable on top of this combination's database and cache).
    pub fn store_with(&self, configure: impl FnOnce(StoreBuilder) -> StoreBuilder) -> Store {
        let n = SEQUENCE.fetch_add(1, Ordering::Relaxed);
        let name = format!("{}_{}_{n}", self.tag, std::process::id()).replace(['-', ' '], "_").to_lowercase();
        let builder = with_database(Store::builder().namespace(name.clone()), self.db, &name);
        let builder = match self.cache {
            Cache::InProcess => builder.in_process_cache(),
            Cache::Memcached => builder.memcached(self.memcached.clone()),
        };
        configure(builder).build().expect("store builds")
    }

    /// A fresh store whose cache (this combination's kind) sits behind a
    /// [`SwitchCache`], and the switch.
    pub fn store_with_switch(&self) -> (Store, CacheSwitch) {
        let n = SEQUENCE.fetch_add(1, Ordering::Relaxed);
        let name = format!("{}_{}_{n}", self.tag, std::process::id()).replace(['-', ' '], "_").to_lowercase();
        let builder = with_database(Store::builder().namespace(name.clone()), self.db, &name);
        let (cache, switch) = SwitchCache::new(self.fresh_cache());
        (builder.cache(Box::new(cache)).build().expect("store builds"), switch)
    }

    /// A cache of this combination's kind that a test hands to its store
    /// (`StoreBuilder::cache`, through a wrapper such as `Stepping`) and keeps a handle
    /// on, to read and write the cache as another process would.
    pub fn shared_cache(&self) -> Arc<dyn CacheBackend> {
        Arc::from(self.fresh_cache())
    }

    /// A new client of this combination's memcached, or a new in-process cache.
    fn fresh_cache(&self) -> Box<dyn CacheBackend> {
        match (&self.cache, &self.memcached) {
            (Cache::Memcached, Some(addr)) => Box::new(
                Memcached::connect(std::slice::from_ref(addr), CacheConfig::default()).expect("connect to memcached"),
            ),
            _ => Box::new(InProcessCache::new(CacheConfig::default())),
        }
    }
}

/// Runs `body` once per combination, naming the combination when it fails. A
/// memcached is started for the call (a process of the test's own, stopped when the
/// call returns, so none outlives the test binary).
pub fn each_backend(tag: &str, body: impl Fn(&Backends)) {
    let server = MemcachedServer::start().expect("memcached starts (is the memcached package installed?)");
    for db in Db::ALL {
        for cache in [Cache::InProcess, Cache::Memcached] {
            let memcached = (cache == Cache::Memcached).then(|| server.addr());
            let b = Backends { db, cache, tag: tag.to_owned(), memcached };
            eprintln!("-- {tag}: {db:?} + {cache:?}");
            body(&b);
        }
    }
}

/// How a [`SwitchCache`] answers, switched while a test runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum CacheMode {
    /// Every operation goes through.
    Up = 0,
    /// Every operation fails (the server is unreachable).
    Down = 1,
    /// Reads go through; every write (set, cas, append, delete) fails, so a write's
    /// invalidations stay pending in its process.
    WritesFail = 2,
}

/// A cache in front of a real one whose failures a test switches on and off.
#[derive(Debug)]
pub struct SwitchCache {
    inner: Box<dyn CacheBackend>,
    mode: Arc<AtomicU8>,
}

impl SwitchCache {
    /// The cache, and the switch that sets its mode.
    pub fn new(inner: Box<dyn CacheBackend>) -> (SwitchCache, CacheSwitch) {
        let mode = Arc::new(AtomicU8::new(CacheMode::Up as u8));
        (SwitchCache { inner, mode: mode.clone() }, CacheSwitch(mode))
    }
}

/// Sets the mode of a [`SwitchCache`].
#[derive(Clone, Debug)]
pub struct CacheSwitch(Arc<AtomicU8>);

impl CacheSwitch {
    pub fn set(&self, mode: CacheMode) {
        self.0.store(mode as u8, Ordering::SeqCst);
    }
}

impl CacheBackend for SwitchCache {
    fn run(&self, ops: &[CacheOp<'_>]) -> Vec<Result<CacheReply, CacheError>> {
        let mode = self.mode.load(Ordering::SeqCst);
        let fails = |op: &CacheOp<'_>| match mode {
            m if m == CacheMode::Down as u8 => true,
            m if m == CacheMode::WritesFail as u8 => !matches!(op, CacheOp::Get { .. }),
            _ => false,
        };
        if !ops.iter().any(fails) {
            return self.inner.run(ops);
        }
        let passing: Vec<CacheOp<'_>> = ops.iter().filter(|op| !fails(op)).cloned().collect();
        let mut replies = self.inner.run(&passing).into_iter();
        ops.iter()
            .map(|op| {
                if fails(op) {
                    Err(CacheError::Unreachable { server: "switch".into(), reason: "test: switched off".into() })
                } else {
                    replies.next().unwrap_or_else(|| {
                        Err(CacheError::Unreachable { server: "switch".into(), reason: "no reply".into() })
                    })
                }
            })
            .collect()
    }

    fn max_value_size(&self) -> usize {
        self.inner.max_value_size()
    }

    fn describe(&self) -> String {
        format!("switch({})", self.inner.describe())
    }
}
