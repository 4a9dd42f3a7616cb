//! The store façade: building a [`Store`], migrations, writes and transactions,
//! text queries, counters. Every call runs on the blocking driver
//! (`crate::exec::blocking`), which runs the core's machines.

use std::sync::Arc;
use std::time::Duration;

use memdex_grammar::sql;
use memdex_grammar::{Dialect, Value};

use crate::cache::in_process::InProcessCache;
use crate::cache::memcached::Memcached;
use crate::cache::{CacheBackend, CacheConfig};
use crate::db::{Database, Tx};
use crate::engine::Context;
use crate::engine::write::{RowWrite, WriteSet, check_storable};
use crate::error::Error;
use crate::exec::blocking::Driver;
use crate::handle::Store;
use crate::model::Model;
use crate::prepared::{Lookup, TextQuery};
use crate::query::Select;
use crate::settings::Settings;
use crate::stats::{Counters, Stats};
use crate::trace::{TraceSink, Tracer};

impl Store {
    /// A builder: choose a database (required) and a cache (default: in-process).
    ///
    /// ```
    /// use memdex::{Dialect, Store};
    ///
    /// let store = Store::builder().sqlite_in_memory().in_process_cache().build()?;
    /// assert_eq!(store.dialect(), Dialect::Sqlite);
    /// # Ok::<(), memdex::Error>(())
    /// ```
    pub fn builder() -> StoreBuilder {
        StoreBuilder::default()
    }

    /// Creates the model's table and indexes, and memdex's outbox table, if they do
    /// not exist ([`crate::ddl`] gives the statements).
    ///
    /// On a store built with
    /// [`StoreBuilder::manage_schema(false)`](StoreBuilder::manage_schema) it runs no
    /// DDL: it checks the model's table as [`Store::check_schema`] does, and fails
    /// with [`Error::SchemaDrift`] naming what is missing. A `migrate` call at start-up
    /// thus stays right whoever owns the schema: it creates the tables, or it proves
    /// that the team's migrations did.
    ///
    /// Either way it then records the model's indexes in memdex's index registry
    /// (`memdex_indexes`), so that every other version of the model running at the
    /// same time (a rolling deploy) appends its writes to the nodes of these indexes
    /// too. The registration locks the model's table until it commits, after the
    /// write transactions in flight on it (on MariaDB with `LOCK TABLES`, a right of
    /// its own). Call `migrate` before the store serves queries through a newly
    /// declared index.
    pub fn migrate<T: Model>(&self) -> Result<(), Error> {
        let driver = &self.driver;
        if !driver.ctx.settings.manage_schema {
            self.check_schema::<T>()?;
        } else {
            driver.ensure_outbox()?;
            let statements = sql::create_table(driver.dialect(), T::schema());
            Counters::add(&driver.ctx.stats.db_queries, statements.len() as u64);
            driver.db.execute_ddl(&statements)?;
        }
        // Registration is no DDL: a store that does not manage its schema registers
        // its model's indexes too, or the other versions' writes would not append to
        // the nodes of the indexes only this version declares.
        driver.register_indexes(T::schema())?;
        if driver.ctx.settings.capture_outside_writes && driver.ctx.settings.manage_schema {
            driver.install_capture(T::schema())?;
        }
        Ok(())
    }

    /// Checks that the model's table exists with every column and index
    /// [`crate::ddl`] creates for it (an index counts when one of the table's has its
    /// name, or exactly its columns), and runs no DDL. Column types are not compared.
    ///
    /// # Errors
    ///
    /// [`Error::SchemaDrift`] naming the table and each problem: the table does not
    /// exist, a column is missing, an index (with its columns) is missing.
    pub fn check_schema<T: Model>(&self) -> Result<(), Error> {
        self.driver.check_schema(T::schema())
    }

    /// Inserts a row (an error if its key exists). A row memdex cannot store as it
    /// is (NaN, text too long to index) is refused before any database work.
    pub fn insert<T: Model>(&self, row: &T) -> Result<(), Error> {
        check_storable(self.dialect(), row)?;
        // On PostgreSQL one statement, unless another version's index is registered;
        // elsewhere a transaction.
        if self.driver.insert_in_one_statement(row)? {
            return Ok(());
        }
        self.transaction(|tx| tx.insert(row))
    }

    /// Updates the row with `row`'s key to `row` (`Error::NotFound` if there is none).
    pub fn update<T: Model>(&self, row: &T) -> Result<(), Error> {
        check_storable(self.dialect(), row)?;
        // On PostgreSQL an update is one statement when it moves the row to no other
        // index node or this process wrote the row last, two otherwise; when those
        // guards shut (and for every update elsewhere), a transaction.
        if self.driver.update_in_one_statement(row)? {
            return Ok(());
        }
        self.transaction(|tx| tx.update(row))
    }

    /// Deletes the row with this key (`Error::NotFound` if there is none).
    pub fn delete<T: Model>(&self, key: &T::Key) -> Result<(), Error> {
        // On PostgreSQL one statement deletes the row, guarded by what this process
        // wrote to it last or else by the row read first (its index columns
        // unchanged); elsewhere, or when the row changed nodes in between, a
        // transaction.
        if self.driver.delete_in_one_statement::<T>(key)? {
            return Ok(());
        }
        match self.transaction(|tx| tx.delete::<T>(key)) {
            // Once per process and registration, during a rolling deploy: the
            // rolled-back delete runs again, now reading the index's columns.
            Err(Error::RegistryChanged { .. }) => self.transaction(|tx| tx.delete::<T>(key)),
            done => done,
        }
    }

    /// Runs several writes in one database transaction. The cache hears of them
    /// only after the commit, in one pipelined batch; an `Err` from `f` rolls back
    /// and touches no cache key.
    ///
    /// ```
    /// # use memdex::{Model, Store, select};
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(Model, Clone, Debug, PartialEq, Serialize, Deserialize)]
    /// # pub struct Account {
    /// #     #[memdex(key)] pub id: i64,
    /// #     #[memdex(index)] pub owner: String,
    /// #     pub balance: i64,
    /// # }
    /// # let store = Store::builder().sqlite_in_memory().build()?;
    /// # store.migrate::<Account>()?;
    /// # store.insert(&Account { id: 1, owner: "ann".into(), balance: 100 })?;
    /// # store.insert(&Account { id: 2, owner: "bob".into(), balance: 0 })?;
    /// // Both updates commit, or neither does.
    /// let moved = store.transaction(|tx| {
    ///     tx.update(&Account { id: 1, owner: "ann".into(), balance: 70 })?;
    ///     tx.update(&Account { id: 2, owner: "bob".into(), balance: 30 })?;
    ///     Ok(30)
    /// })?;
    /// assert_eq!(moved, 30);
    /// let bob = select!(Account, |a| a.owner == "bob").fetch(&store)?;
    /// assert_eq!(bob[0].balance, 30);
    /// # Ok::<(), memdex::Error>(())
    /// ```
    pub fn transaction<R>(&self, f: impl FnOnce(&mut Transaction<'_>) -> Result<R, Error>) -> Result<R, Error> {
        let driver = &*self.driver;
        driver.transaction(|tx, set| f(&mut Transaction { tx, driver, set }))
    }

    /// A text query (Python lambda syntax) with free names bound by name:
    /// `store.recall_text::<Item>("lambda c: c.category_id == cat", &[("cat", 5.into())])`.
    /// Planned exactly as `select!` plans the same query.
    pub fn recall_text<T: Model>(&self, text: &str, params: &[(&str, Value)]) -> Result<Vec<T>, Error> {
        self.select_text::<T>(text, params)?.fetch(self)
    }

    /// The text form as a `Select`, for ordering, paging, counting or explaining.
    ///
    /// The prepared query (parsed, checked, normalised and planned) is kept in the
    /// store's cache of text queries ([`StoreBuilder::text_cache_capacity`]), and
    /// reused by later calls with the same text and parameters of the same types.
    pub fn select_text<T: Model>(&self, text: &str, params: &[(&str, Value)]) -> Result<Select<'static, T>, Error> {
        select_text(&self.driver.ctx, text, params)
    }

    /// Counters since the store was built, with the cache servers' health, the
    /// database pool's gauges and the near cache's size.
    pub fn stats(&self) -> Stats {
        let mut stats = self.driver.ctx.stats.snapshot();
        crate::stats::merge_gauges(&mut stats, self.driver.gauges());
        stats
    }

    /// The SQL dialect of the database.
    pub fn dialect(&self) -> Dialect {
        self.driver.dialect()
    }

    /// Applies pending invalidations (this process's, and any older than the grace
    /// period from other processes) now, instead of at the next periodic drain; with
    /// [`StoreBuilder::capture_outside_writes`], the captured outside writes too.
    /// Returns how many entries and changes it applied.
    pub fn drain_outbox(&self) -> Result<usize, Error> {
        let mut applied = self.driver.run(crate::engine::drain::Drain::new(self.driver.env(), true))?;
        if self.driver.ctx.capture.is_some() {
            applied += self.driver.run(crate::engine::changes::ApplyChanges::new(self.driver.env()))?;
        }
        Ok(applied)
    }

    /// "SQLite (in memory) + in-process cache", for banners and logs.
    pub fn describe(&self) -> String {
        format!("{} + {}", self.driver.db.describe(), self.driver.cache.describe())
    }
}

/// A text query prepared through the context's cache of text queries.
pub(crate) fn select_text<T: Model>(
    ctx: &Context,
    text: &str,
    params: &[(&str, Value)],
) -> Result<Select<'static, T>, Error> {
    let named: Vec<(String, Value)> = params.iter().map(|(n, v)| ((*n).to_owned(), v.clone())).collect();
    let types = |name: &str| memdex_grammar::ParamType::of(memdex_grammar::Params::get(&named, name));
    let query = TextQuery {
        model: std::any::TypeId::of::<T>(),
        schema: T::schema(),
        text,
        access: memdex_grammar::Access::Indexed,
        disjunct_limit: ctx.settings.disjunct_limit,
    };
    let (compiled, lookup) = ctx.text_cache.get_or_prepare(query, &types);
    match lookup {
        Lookup::Hit => Counters::add(&ctx.stats.text_cache_hits, 1),
        Lookup::Miss => Counters::add(&ctx.stats.text_cache_misses, 1),
    }
    let compiled = compiled.map_err(|e| Error::from_query(e, text))?;
    Ok(Select::from_text(compiled, named))
}

/// Writes inside `Store::transaction`.
pub struct Transaction<'t> {
    tx: &'t mut dyn Tx,
    driver: &'t Driver,
    set: &'t mut WriteSet,
}

impl std::fmt::Debug for Transaction<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transaction").field("writes", &self.set.writes).finish()
    }
}

impl Transaction<'_> {
    /// Inserts a row (an error if its key exists).
    pub fn insert<T: Model>(&mut self, row: &T) -> Result<(), Error> {
        let write = RowWrite::insert(&self.driver.ctx, self.driver.dialect(), row)?;
        self.driver.write(self.tx, self.set, write)
    }

    /// Updates the row with `row`'s key (`Error::NotFound` if there is none).
    pub fn update<T: Model>(&mut self, row: &T) -> Result<(), Error> {
        let write = RowWrite::update(&self.driver.ctx, self.driver.dialect(), row)?;
        self.driver.write(self.tx, self.set, write)
    }

    /// Deletes the row with this key (`Error::NotFound` if there is none).
    pub fn delete<T: Model>(&mut self, key: &T::Key) -> Result<(), Error> {
        let write = RowWrite::delete::<T>(&self.driver.ctx, self.driver.dialect(), key);
        self.driver.write(self.tx, self.set, write)
    }
}

pub(crate) enum DbChoice {
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    Sqlite(String),
    SqliteInMemory,
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    Postgres(String),
    #[cfg_attr(not(feature = "mysql"), allow(dead_code))]
    MySql(String),
    Custom(Box<dyn Database>),
}

impl DbChoice {
    /// Opens the chosen database; a backend this build left out (a cargo feature
    /// not enabled) is a configuration error naming the feature.
    pub(crate) fn open(self) -> Result<Box<dyn Database>, Error> {
        Ok(match self {
            #[cfg(feature = "sqlite")]
            DbChoice::Sqlite(path) => Box::new(crate::db::sqlite::Sqlite::open(&path)?),
            #[cfg(feature = "sqlite")]
            DbChoice::SqliteInMemory => Box::new(crate::db::sqlite::Sqlite::in_memory()?),
            #[cfg(not(feature = "sqlite"))]
            DbChoice::Sqlite(_) | DbChoice::SqliteInMemory => return Err(missing_feature("SQLite", "sqlite")),
            #[cfg(feature = "postgres")]
            DbChoice::Postgres(params) => {
                check_postgres_tls(&params)?;
                Box::new(crate::db::postgres::Postgres::connect(&params)?)
            }
            #[cfg(not(feature = "postgres"))]
            DbChoice::Postgres(_) => return Err(missing_feature("PostgreSQL", "postgres")),
            #[cfg(feature = "mysql")]
            DbChoice::MySql(url) => {
                crate::db::mysql::check_tls(&url).map_err(|why| Error::Config(format!("MySQL: {why}")))?;
                Box::new(crate::db::mysql::MySql::connect(&url)?)
            }
            #[cfg(not(feature = "mysql"))]
            DbChoice::MySql(_) => return Err(missing_feature("MySQL", "mysql")),
            DbChoice::Custom(db) => db,
        })
    }
}

/// PostgreSQL TLS settings that cannot work (a bad `sslmode`, an unreadable
/// `sslrootcert`, TLS asked for without the `tls` feature) are a configuration
/// error, found before any connection is tried.
#[cfg(feature = "postgres")]
pub(crate) fn check_postgres_tls(params: &str) -> Result<(), Error> {
    crate::db::postgres_tls::prepare(params).map(drop).map_err(|why| Error::Config(format!("PostgreSQL: {why}")))
}

/// The error for a backend this build of memdex does not include.
#[allow(dead_code)]
fn missing_feature(backend: &str, feature: &str) -> Error {
    Error::Config(format!("{backend} support is not compiled in: enable memdex's `{feature}` cargo feature"))
}

pub(crate) enum CacheChoice {
    Memcached(Vec<String>),
    InProcess,
    Custom(Box<dyn CacheBackend>),
}

/// Configures a [`Store`]: a database (required), a cache (default: in-process),
/// and tunables.
///
/// Every method takes the builder and returns it; [`StoreBuilder::build`] (or
/// `build_async`, feature `tokio`) opens the store and reports the first mistake.
///
/// ```
/// use std::time::Duration;
/// use memdex::Store;
///
/// let store = Store::builder()
///     .sqlite_in_memory()
///     .in_process_cache()
///     .namespace("shop")                  // every cache key starts `shop:`
///     .ttl(600, 3600)                     // index nodes 10 min, objects 1 h
///     .cache_timeouts(Duration::from_millis(100), Duration::from_millis(150))
///     .near_cache_capacity(16 << 20)      // 16 MiB of decoded objects
///     .text_cache_capacity(64)            // prepared text queries kept
///     .build()?;
/// assert_eq!(store.stats().writes, 0);
/// # Ok::<(), memdex::Error>(())
/// ```
#[derive(Default)]
pub struct StoreBuilder {
    db: Option<DbChoice>,
    cache: Option<CacheChoice>,
    /// A bad URL or environment value, reported by `build`.
    config_error: Option<Error>,
    settings: Settings,
    cache_config: CacheConfig,
    trace: Option<TraceSink>,
}

impl std::fmt::Debug for StoreBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreBuilder").field("settings", &self.settings).finish_non_exhaustive()
    }
}

impl StoreBuilder {
    /// The database a URL names: `sqlite://path` (a file, created if missing;
    /// `sqlite:///abs/path` for an absolute path), `sqlite::memory:`,
    /// `postgres://user:password@host:port/db?sslmode=…` (also `postgresql://`),
    /// `mysql://user:password@host:port/db` (also `mariadb://`). A URL that cannot
    /// be understood makes [`StoreBuilder::build`] fail with `Error::Config`,
    /// naming what is wrong.
    ///
    /// ```
    /// use memdex::{Error, Store};
    ///
    /// let store = Store::builder().url("sqlite::memory:").build()?;
    /// assert_eq!(store.describe(), "SQLite (in memory) + in-process");
    ///
    /// let err = Store::builder().url("redis://localhost").build().unwrap_err();
    /// assert!(matches!(err, Error::Config(ref why) if why.contains("unknown scheme `redis`")), "{err}");
    /// # Ok::<(), memdex::Error>(())
    /// ```
    pub fn url(mut self, url: &str) -> Self {
        self.use_url(url, "database URL");
        self
    }

    fn use_url(&mut self, url: &str, what: &str) {
        match crate::config::database_url(url, what) {
            Ok(crate::config::DatabaseUrl::SqliteFile(path)) => self.db = Some(DbChoice::Sqlite(path)),
            Ok(crate::config::DatabaseUrl::SqliteMemory) => self.db = Some(DbChoice::SqliteInMemory),
            Ok(crate::config::DatabaseUrl::Postgres(url)) => self.db = Some(DbChoice::Postgres(url)),
            Ok(crate::config::DatabaseUrl::MySql(url)) => self.db = Some(DbChoice::MySql(url)),
            Err(e) => self.config_error = Some(e),
        }
    }

    /// Configuration from the environment: the database from `MEMDEX_DATABASE_URL`
    /// (else `DATABASE_URL`), as [`StoreBuilder::url`] reads it; memcached servers
    /// from `MEMDEX_MEMCACHED` (`host:port,host:port`, an entry written
    /// `tls://host:port` dialled over TLS), else the cache chosen so far (by
    /// default the in-process cache); with the `tls` feature,
    /// `MEMDEX_MEMCACHED_TLS_CA=/path/ca.pem` dials every memcached server over TLS
    /// trusting that CA (see [`StoreBuilder::memcached_tls`]). A variable that is not set leaves that
    /// choice as it is; a value that cannot be understood makes `build` fail with
    /// `Error::Config` naming the variable.
    ///
    /// Choices made in code before `from_env` are defaults the environment may
    /// override; so a service can run on SQLite and the in-process cache in
    /// development, and on the servers its deployment names in production:
    ///
    /// ```no_run
    /// use memdex::Store;
    ///
    /// // MEMDEX_DATABASE_URL=postgres://shop@db.internal/shop
    /// // MEMDEX_MEMCACHED=cache1.internal:11211,cache2.internal:11211
    /// let store = Store::builder().sqlite("dev.db").from_env().build()?;
    /// println!("memdex on {}", store.describe());
    /// # Ok::<(), memdex::Error>(())
    /// ```
    // A builder step, named as DESIGN.md names it (`.from_env()` after `builder()`).
    #[allow(clippy::wrong_self_convention)]
    pub fn from_env(self) -> Self {
        self.from_vars(&|name| std::env::var(name).ok())
    }

    #[allow(clippy::wrong_self_convention)]
    fn from_vars(mut self, get: &dyn Fn(&str) -> Option<String>) -> Self {
        if let Some((name, url)) = crate::config::first_var(&crate::config::DATABASE_VARS, get) {
            self.use_url(&url, name);
        }
        if let Some((name, list)) = crate::config::first_var(&[crate::config::MEMCACHED_VAR], get) {
            match crate::config::memcached_servers(&list, name) {
                Ok(servers) => self.cache = Some(CacheChoice::Memcached(servers)),
                Err(e) => self.config_error = Some(e),
            }
        }
        #[cfg(feature = "tls")]
        if let Some((_, ca_file)) = crate::config::first_var(&[crate::config::MEMCACHED_CA_VAR], get) {
            let tls = self.cache_config.tls.take().unwrap_or_default();
            self.cache_config.tls = Some(tls.ca_file(ca_file.trim()));
        }
        self
    }

    /// SQLite in a file (created if missing).
    pub fn sqlite(mut self, path: impl Into<String>) -> Self {
        self.db = Some(DbChoice::Sqlite(path.into()));
        self
    }

    /// SQLite in memory, for tests and examples.
    pub fn sqlite_in_memory(mut self) -> Self {
        self.db = Some(DbChoice::SqliteInMemory);
        self
    }

    /// PostgreSQL, with a libpq-style connection string (`host=… user=… dbname=…`).
    pub fn postgres(mut self, params: impl Into<String>) -> Self {
        self.db = Some(DbChoice::Postgres(params.into()));
        self
    }

    /// MySQL or MariaDB (feature `mysql`), with a URL:
    /// `mysql://user:password@host:port/database`.
    pub fn mysql(mut self, url: impl Into<String>) -> Self {
        self.db = Some(DbChoice::MySql(url.into()));
        self
    }

    /// A database backend of your own.
    pub fn database(mut self, db: Box<dyn Database>) -> Self {
        self.db = Some(DbChoice::Custom(db));
        self
    }

    /// memcached servers (`host:port`); keys are sharded across them.
    pub fn memcached<I, S>(mut self, servers: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.cache = Some(CacheChoice::Memcached(servers.into_iter().map(Into::into).collect()));
        self
    }

    /// memcached over TLS (feature `tls`) for every server, verified against
    /// `tls`'s CA file (else the Mozilla roots) and name (else each server's host).
    /// A single server can also be written `tls://host:port` (in
    /// [`StoreBuilder::memcached`] or `MEMDEX_MEMCACHED`), which needs no settings
    /// when its certificate is publicly trusted. The handshake is part of
    /// connecting: it must end within the cache's connect timeout, and a server
    /// whose certificate does not verify is unreachable (marked down, probed). A CA
    /// file that cannot be read makes [`StoreBuilder::build`] fail with
    /// `Error::Config`.
    ///
    /// ```no_run
    /// use memdex::cache::memcached::MemcachedTls;
    /// let store = memdex::Store::builder()
    ///     .sqlite_in_memory()
    ///     .memcached(["cache1.internal:11211"])
    ///     .memcached_tls(MemcachedTls::new().ca_file("/etc/memcached/ca.pem"))
    ///     .build()?;
    /// # Ok::<(), memdex::Error>(())
    /// ```
    #[cfg(feature = "tls")]
    pub fn memcached_tls(mut self, tls: crate::cache::memcached::MemcachedTls) -> Self {
        self.cache_config.tls = Some(tls);
        self
    }

    /// The in-process cache (the default): memcached's semantics inside this process.
    pub fn in_process_cache(mut self) -> Self {
        self.cache = Some(CacheChoice::InProcess);
        self
    }

    /// A cache backend of your own (tests use this to step through interleavings).
    pub fn cache(mut self, cache: Box<dyn CacheBackend>) -> Self {
        self.cache = Some(CacheChoice::Custom(cache));
        self
    }

    /// Prefix of every cache key (default `memdex`).
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.settings.namespace = namespace.into();
        self
    }

    /// Cache generation: bump it to abandon every cached entry at once.
    pub fn generation(mut self, generation: u64) -> Self {
        self.settings.generation = generation;
        self
    }

    /// Time to live of index nodes and objects, in seconds (default 3600 each).
    pub fn ttl(mut self, node_ttl: u32, object_ttl: u32) -> Self {
        self.settings.node_ttl = node_ttl;
        self.settings.object_ttl = object_ttl;
        self
    }

    /// How long a lease placeholder lives if its winner never fills it (default 10 s).
    pub fn lease_ttl(mut self, seconds: u32) -> Self {
        self.settings.lease_ttl = seconds.max(1);
        self
    }

    /// Connect and per-exchange timeouts for the cache (defaults 200 ms, 250 ms).
    pub fn cache_timeouts(mut self, connect: Duration, io: Duration) -> Self {
        self.cache_config.connect_timeout = connect;
        self.cache_config.io_timeout = io;
        self
    }

    /// Size bound of the in-process cache, in bytes (default 64 MiB).
    pub fn in_process_capacity(mut self, bytes: usize) -> Self {
        self.cache_config.capacity_bytes = bytes;
        self
    }

    /// Largest value stored in the cache (default just under memcached's 1 MiB).
    pub fn max_value_size(mut self, bytes: usize) -> Self {
        self.cache_config.max_value_size = bytes;
        self
    }

    /// How often each process looks for invalidations other processes could not
    /// apply (default 1 s), and how old such an entry must be before a process that
    /// did not write it applies it (default 2 s). Together they bound how long
    /// another process may serve a row older than a write whose cache batch failed.
    pub fn outbox(mut self, interval: Duration, grace: Duration) -> Self {
        self.settings.outbox_interval = interval;
        self.settings.outbox_grace = grace;
        self
    }

    /// Bound on the number of alternatives a query may expand to (default 64).
    pub fn disjunct_limit(mut self, limit: usize) -> Self {
        self.settings.disjunct_limit = limit;
        self
    }

    /// How many prepared text queries (`select_text`, `recall_text`) the store keeps
    /// for reuse, least recently used out first (default
    /// 256); 0 prepares every call afresh.
    pub fn text_cache_capacity(mut self, queries: usize) -> Self {
        self.settings.text_cache_capacity = queries;
        self
    }

    /// Bytes of decoded objects this process keeps in its near cache (default 64
    /// MiB; 0 turns it off). A fetch serves a kept object only when the index nodes
    /// it reads name exactly the kept version in entries a fill or a reader's
    /// write-back verified, so a hot fetch is one round trip (the nodes); an id a
    /// write appended since is read from its cached bytes, as without the near
    /// cache. The same bytes also hold, per index node, the rows a fetch of that node
    /// alone served, by a digest of the node's bytes: a later fetch reading the same
    /// bytes filters those rows without looking up its objects one by one
    /// (`Stats::near_node_hits`; ARCHITECTURE.md, "Near cache"). To size it, watch
    /// `Stats::near_bytes` against the capacity and `Stats::near_evictions`: evictions
    /// that keep growing under a steady load mean the hot rows do not fit.
    pub fn near_cache_capacity(mut self, bytes: usize) -> Self {
        self.settings.near_cache_capacity = bytes;
        self
    }

    /// On PostgreSQL, whether an update or a delete is guarded by the indexed values
    /// this process believes the row holds (default `false`).
    ///
    /// By default an update or a delete of a model whose node keys the database can
    /// spell (index columns of integers, booleans, text, instants, UUIDs or bytes) is ONE
    /// statement that reads the row as it was, locked, and names the nodes it was in
    /// from what it read, whatever this process knows of the row. With `true` it is
    /// instead guarded by what this process read or wrote last in the row (or, for
    /// an update, by the values it writes): about 8 % cheaper for an update that
    /// keeps its row in its nodes (`bench --writes`), a second statement for a move
    /// or delete of a row another process wrote since. Both are exact; a model with
    /// a float index column is always guarded.
    pub fn guarded_writes(mut self, guarded: bool) -> Self {
        self.settings.guarded_writes = guarded;
        self
    }

    /// Whether the store runs DDL (default `true`): creates memdex's outbox table
    /// when it is built and the model's table in [`Store::migrate`].
    ///
    /// With `false` the store runs no DDL at all, so the application's database
    /// role needs no right to create or alter tables: the tables come from the
    /// team's own migrations ([`crate::ddl`], [`crate::outbox_ddl`]). `build` then
    /// checks that the outbox table exists with its columns and fails with
    /// [`Error::SchemaDrift`] naming what is missing (a missing outbox index is only
    /// logged); `migrate` and [`Store::check_schema`] check a model's table.
    ///
    /// ```
    /// use memdex::{Error, Store};
    ///
    /// // An empty database has no outbox table, and this store may not create it.
    /// let error = Store::builder().sqlite_in_memory().manage_schema(false).build();
    /// let Err(Error::SchemaDrift { table, problems }) = error else { panic!("{error:?}") };
    /// assert_eq!(table, "memdex_outbox");
    /// assert_eq!(problems, ["the table does not exist"]);
    /// ```
    pub fn manage_schema(mut self, manage: bool) -> Self {
        self.settings.manage_schema = manage;
        self
    }

    /// Whether this store keeps the cache right after writes made outside memdex —
    /// a `psql` session, another service, a data migration (default `false`).
    ///
    /// With `true`, [`Store::migrate`] installs triggers on the model's table that
    /// record the key and indexed columns of every row such a write touches, before
    /// and after, in `memdex_changes` (in the write's own transaction; memdex's own
    /// sessions are skipped). Each drain — every outbox interval, before a read or a
    /// write ([`StoreBuilder::outbox`]) — deletes the cache keys those rows name and
    /// then the rows. A read that starts more than an interval plus one drain after
    /// an outside write committed sees it, from every process (as long as fewer
    /// than 500 changes wait at once; each drain takes 500). Until then a read may
    /// return what the cache held before the write.
    ///
    /// The cost falls on the outside writers: one more insert per row written, in
    /// their transaction. memdex's own writes pay a comparison per row. Writes made
    /// before the triggers exist are not captured. See
    /// docs/outside-writers.md.
    pub fn capture_outside_writes(mut self, capture: bool) -> Self {
        self.settings.capture_outside_writes = capture;
        self
    }

    /// Prints the cache conversation to stderr (`get …`, `append …`, `SELECT …`).
    pub fn trace(mut self, on: bool) -> Self {
        self.trace = on.then(|| Arc::new(|line: &str| eprintln!("  {line}")) as TraceSink);
        self
    }

    /// Sends the cache conversation to a function of yours.
    pub fn trace_to(mut self, sink: impl Fn(&str) + Send + Sync + 'static) -> Self {
        self.trace = Some(Arc::new(sink));
        self
    }

    /// Opens the database and the cache and checks that memdex's outbox table
    /// exists (creating it if missing, unless [`StoreBuilder::manage_schema`] is
    /// off: then a missing table or column is [`Error::SchemaDrift`]).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when no database was chosen, a URL or environment value
    /// could not be understood, the chosen backend's cargo feature is not enabled,
    /// or a memcached address does not resolve; [`Error::Database`] when the
    /// database cannot be opened or reached; [`Error::SchemaDrift`] when
    /// [`StoreBuilder::manage_schema`] is off and the outbox table or one of its
    /// columns is missing. A memcached server that cannot be reached is not an
    /// error: it is marked down and probed until it answers.
    ///
    /// ```
    /// use memdex::{Error, Store};
    ///
    /// let store = Store::builder().sqlite_in_memory().build()?;
    ///
    /// let err = Store::builder().in_process_cache().build().unwrap_err();
    /// assert!(matches!(err, Error::Config(ref why) if why.starts_with("no database")), "{err}");
    /// # Ok::<(), memdex::Error>(())
    /// ```
    pub fn build(self) -> Result<Store, Error> {
        let (db, cache, settings, cache_config, trace) = self.into_parts()?;
        let db = db.open()?;
        let cache: Box<dyn CacheBackend> = match cache {
            CacheChoice::InProcess => Box::new(InProcessCache::new(cache_config)),
            CacheChoice::Memcached(servers) => Box::new(
                Memcached::connect(&servers, cache_config).map_err(|e| Error::Config(format!("memcached: {e}")))?,
            ),
            CacheChoice::Custom(cache) => cache,
        };
        let driver = Driver { ctx: Context::new(settings, Tracer::new(trace)), db, cache };
        driver.ensure_outbox()?;
        Ok(Store { driver: Arc::new(driver) })
    }

    /// The choices made, for `build` and `build_async`; no database is an error.
    pub(crate) fn into_parts(self) -> Result<BuilderParts, Error> {
        if let Some(e) = self.config_error {
            return Err(e);
        }
        let Some(db) = self.db else {
            return Err(Error::Config("no database: call .sqlite(…), .sqlite_in_memory() or .postgres(…)".into()));
        };
        Ok((db, self.cache.unwrap_or(CacheChoice::InProcess), self.settings, self.cache_config, self.trace))
    }
}

/// A builder taken apart: database, cache, settings, cache limits, trace sink.
pub(crate) type BuilderParts = (DbChoice, CacheChoice, Settings, CacheConfig, Option<TraceSink>);

#[cfg(test)]
#[allow(clippy::panic)] // a test fails by panicking
mod tests {
    use super::*;

    fn env(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| vars.iter().find(|(n, _)| *n == name).map(|(_, v)| (*v).to_owned())
    }

    fn config_error(builder: StoreBuilder) -> String {
        match builder.build() {
            Err(Error::Config(message)) => message,
            other => panic!("expected a configuration error, got {other:?}"),
        }
    }

    #[test]
    fn a_url_or_the_environment_chooses_the_database_and_the_cache() {
        let store = Store::builder().url("sqlite::memory:").build().expect("an in-memory store");
        assert_eq!(store.describe(), "SQLite (in memory) + in-process");
        let store = Store::builder()
            .from_vars(&env(&[("DATABASE_URL", "sqlite::memory:"), ("MEMDEX_DATABASE_URL", "")]))
            .build()
            .expect("DATABASE_URL when MEMDEX_DATABASE_URL is empty");
        assert_eq!(store.dialect(), Dialect::Sqlite);
        // Nothing set: the choices made in code stand.
        let store = Store::builder().sqlite_in_memory().from_vars(&env(&[])).build().expect("store");
        assert_eq!(store.describe(), "SQLite (in memory) + in-process");
    }

    #[test]
    fn a_bad_value_is_a_config_error_naming_its_source() {
        let message = config_error(Store::builder().url("redis://localhost"));
        assert!(message.contains("unknown scheme `redis`"), "{message}");
        let message = config_error(
            Store::builder()
                .from_vars(&env(&[("MEMDEX_DATABASE_URL", "sqlite::memory:"), ("MEMDEX_MEMCACHED", "cache1")])),
        );
        assert!(message.starts_with("MEMDEX_MEMCACHED: `cache1` is not host:port"), "{message}");
        let message = config_error(Store::builder().from_vars(&env(&[("DATABASE_URL", "shop.db")])));
        assert!(message.starts_with("DATABASE_URL: `shop.db` is not a URL"), "{message}");
        let message = config_error(Store::builder());
        assert!(message.starts_with("no database"), "{message}");
    }

    /// TLS asked for in a build without the `tls` feature is a configuration error
    /// naming it, found before any connection is tried (port 1 refuses anyway); a
    /// memcached server written `tls://` likewise.
    #[cfg(all(feature = "postgres", not(feature = "tls")))]
    #[test]
    fn tls_without_the_feature_is_a_configuration_error() {
        for mode in ["require", "verify-ca", "verify-full"] {
            let url = format!("postgres://u@127.0.0.1:1/db?sslmode={mode}");
            let message = config_error(Store::builder().url(&url));
            assert!(message.contains("`tls` cargo feature"), "{mode}: {message}");
        }
        let message = config_error(Store::builder().url("sqlite::memory:").memcached(["tls://127.0.0.1:1"]));
        assert!(message.contains("`tls` cargo feature"), "{message}");
    }

    /// The `mysql` crate panics on a TLS connection without TLS support: memdex
    /// refuses the URL first.
    #[cfg(all(feature = "mysql", not(feature = "tls")))]
    #[test]
    fn mysql_tls_without_the_feature_is_a_configuration_error() {
        let message = config_error(Store::builder().url("mysql://u:p@127.0.0.1:1/db?root_cert_path=/ca.pem"));
        assert!(message.contains("`tls` cargo feature"), "{message}");
        let direct = crate::db::mysql::MySql::connect("mysql://u:p@127.0.0.1:1/db?root_cert_path=/ca.pem");
        assert!(matches!(direct, Err(crate::db::DbError::Connect { ref message, .. }) if message.contains("`tls`")));
    }

    #[cfg(feature = "tls")]
    #[test]
    fn the_memcached_tls_ca_file_comes_from_the_environment() {
        use crate::cache::memcached::MemcachedTls;
        static VARS: [(&str, &str); 2] =
            [("MEMDEX_MEMCACHED", "tls://cache1:11211"), ("MEMDEX_MEMCACHED_TLS_CA", " /etc/ca.pem ")];
        let vars = &VARS;
        let builder = Store::builder().from_vars(&env(vars));
        assert_eq!(builder.cache_config.tls, Some(MemcachedTls::new().ca_file("/etc/ca.pem")));
        // A name set in code stays; the environment adds the CA file.
        let builder = Store::builder().memcached_tls(MemcachedTls::new().server_name("cache")).from_vars(&env(vars));
        assert_eq!(builder.cache_config.tls, Some(MemcachedTls::new().server_name("cache").ca_file("/etc/ca.pem")));
        let builder = Store::builder().from_vars(&env(&vars[..1]));
        assert_eq!(builder.cache_config.tls, None);
    }
}
