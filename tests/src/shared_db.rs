//! One database that several stores share, as the processes of one deployment do:
//! every store built from a [`SharedDb`] is another process of the same application
//! (its own pool, near cache and pending outbox entries) over the same rows. The
//! fault, race and regression tests need that; [`crate::backends`] gives each store a
//! database of its own instead.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use memdex::{Store, StoreBuilder};

use crate::backends::{mariadb, postgres};
use crate::outside::OutsideSession;
use crate::servers::mariadb::MariaDbServer;
use crate::servers::memcached::MemcachedServer;
use crate::servers::postgres::PostgresServer;

/// Every engine, in the order [`each_engine`] runs them.
pub const ENGINES: [Engine; 3] = [Engine::Sqlite, Engine::Postgres, Engine::MariaDb];

/// Runs `body` on a fresh database of each engine with one memcached (its address
/// the second argument), started for the call and stopped when it returns.
pub fn each_engine(tag: &str, body: impl Fn(&SharedDb, &str)) {
    let memcached = MemcachedServer::start().expect("memcached starts (is the memcached package installed?)");
    // Both servers start (once per test binary) while the SQLite run goes.
    let starting =
        [std::thread::spawn(|| drop(PostgresServer::shared())), std::thread::spawn(|| drop(MariaDbServer::shared()))];
    for engine in ENGINES {
        eprintln!("-- {tag}: {engine:?}");
        body(&SharedDb::new(engine, tag), &memcached.addr());
    }
    for thread in starting {
        thread.join().expect("the start-up thread does not panic");
    }
}

/// Where a [`SharedDb`] keeps its rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    /// A SQLite file in the database's scratch directory (several connections, so
    /// several stores, can open a file; an in-memory database is one connection's).
    Sqlite,
    /// A fresh database on the test binary's PostgreSQL.
    Postgres,
    /// A fresh database on the test binary's MariaDB.
    MariaDb,
}

/// A database for several stores, and a scratch directory removed with it.
#[derive(Debug)]
pub struct SharedDb {
    engine: Engine,
    /// The SQLite file's path, or the server database's URL.
    location: String,
    name: String,
    dir: tempfile::TempDir,
}

impl SharedDb {
    /// A new, empty database; `tag` names the test in the database's and the
    /// directory's names (so a leftover says whose it is).
    pub fn new(engine: Engine, tag: &str) -> SharedDb {
        static SEQUENCE: AtomicU64 = AtomicU64::new(0);
        let n = SEQUENCE.fetch_add(1, Ordering::Relaxed);
        let name = format!("{tag}_{}_{n}", std::process::id()).replace(['-', ' '], "_").to_lowercase();
        let dir = tempfile::Builder::new().prefix(&format!("memdex-{name}-")).tempdir().expect("temp dir");
        let location = match engine {
            Engine::Sqlite => dir.path().join("shared.db").to_string_lossy().into_owned(),
            Engine::Postgres => postgres().create_database(&name).expect("PostgreSQL database"),
            Engine::MariaDb => mariadb().create_database(&name).expect("MariaDB database"),
        };
        SharedDb { engine, location, name, dir }
    }

    /// The engine the rows live on.
    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// A name unique to this database in the test binary: a good cache namespace
    /// for the stores that share it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The SQLite file, for a test that opens it directly (`None` on a server).
    pub fn sqlite_file(&self) -> Option<&str> {
        (self.engine == Engine::Sqlite).then_some(self.location.as_str())
    }

    /// A directory for the test's other files, removed with the database.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A session on this database that is not memdex's (`crate::outside`).
    pub fn outside(&self) -> OutsideSession {
        OutsideSession::open(self.engine, &self.location)
    }

    /// A builder on this database and nothing else: one more process.
    pub fn builder(&self) -> StoreBuilder {
        let builder = Store::builder();
        match self.engine {
            Engine::Sqlite => builder.sqlite(self.location.clone()),
            Engine::Postgres => builder.postgres(self.location.clone()),
            Engine::MariaDb => builder.mysql(self.location.clone()),
        }
    }

    /// The server's address (`None` for SQLite), for a proxy in front of it.
    pub fn server_addr(&self) -> Option<SocketAddr> {
        let port = match self.engine {
            Engine::Sqlite => return None,
            Engine::Postgres => postgres().port(),
            Engine::MariaDb => mariadb().port(),
        };
        Some(SocketAddr::from(([127, 0, 0, 1], port)))
    }

    /// [`SharedDb::builder`] reaching the server at `addr` (a proxy in front of
    /// [`SharedDb::server_addr`]) rather than directly.
    pub fn builder_via(&self, addr: SocketAddr) -> StoreBuilder {
        let Some(server) = self.server_addr() else {
            return self.builder();
        };
        let location = match self.engine {
            Engine::Postgres => {
                self.location.replace(&format!("port={}", server.port()), &format!("port={}", addr.port()))
            }
            _ => self.location.replace(&server.to_string(), &addr.to_string()),
        };
        let builder = Store::builder();
        match self.engine {
            Engine::Postgres => builder.postgres(location),
            _ => builder.mysql(location),
        }
    }
}
