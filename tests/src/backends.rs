//! Runs one test body over every database × cache combination memdex supports:
//! SQLite and PostgreSQL; the in-process cache and a real memcached. Each store a
//! test asks for is fresh (its own database, its own cache namespace).

use std::sync::atomic::{AtomicU64, Ordering};

use memdex::Store;

use crate::servers::memcached::MemcachedServer;
use crate::servers::postgres::PostgresServer;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
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

impl Backends {
    pub fn store(&self) -> Store {
        let n = SEQUENCE.fetch_add(1, Ordering::Relaxed);
        let name = format!("{}_{}_{n}", self.tag, std::process::id()).replace(['-', ' '], "_").to_lowercase();
        let builder = Store::builder().namespace(name.clone());
        let builder = match self.db {
            Db::Sqlite => builder.sqlite_in_memory(),
            Db::Postgres => builder.postgres(postgres().create_database(&name).expect("create database")),
        };
        let builder = match self.cache {
            Cache::InProcess => builder.in_process_cache(),
            Cache::Memcached => builder.memcached(self.memcached.clone()),
        };
        builder.build().expect("store builds")
    }
}

/// Runs `body` once per combination, naming the combination when it fails. A
/// memcached is started for the call (a process of the test's own, stopped when the
/// call returns, so none outlives the test binary).
pub fn each_backend(tag: &str, body: impl Fn(&Backends)) {
    let server = MemcachedServer::start().expect("memcached starts (is the memcached package installed?)");
    for db in [Db::Sqlite, Db::Postgres] {
        for cache in [Cache::InProcess, Cache::Memcached] {
            let memcached = (cache == Cache::Memcached).then(|| server.addr());
            let b = Backends { db, cache, tag: tag.to_owned(), memcached };
            eprintln!("-- {tag}: {db:?} + {cache:?}");
            body(&b);
        }
    }
}
