//! `Store`: the database, the cache, and the settings that tie them together; the
//! write path (database first, then one pipelined cache batch).

use std::any::TypeId;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use memdex_grammar::keys::KeySpace;
use memdex_grammar::plan::node_of_row;
use memdex_grammar::sql;
use memdex_grammar::{Dialect, Value};

use crate::cache::in_process::InProcessCache;
use crate::cache::memcached::Memcached;
use crate::cache::{CacheBackend, CacheConfig, CacheOp, checked_appends, refused_appends};
use crate::codec;
use crate::db::postgres::Postgres;
use crate::db::sqlite::Sqlite;
use crate::db::{Database, DbError, Tx};
use crate::error::Error;
use crate::model::Model;
use crate::outbox::Outbox;
use crate::query::{Lookup, Select, TextCache, TextQuery};
use crate::stats::{Counters, Stats};
use crate::trace::Tracer;

/// A database with a cache in front. Cheap to clone; share it between threads.
#[derive(Clone, Debug)]
pub struct Store {
    pub(crate) inner: Arc<StoreInner>,
}

#[derive(Debug)]
pub(crate) struct StoreInner {
    pub(crate) db: Box<dyn Database>,
    pub(crate) cache: Box<dyn CacheBackend>,
    pub(crate) settings: Settings,
    pub(crate) stats: Counters,
    pub(crate) tracer: Tracer,
    pub(crate) outbox: Outbox,
    /// Prepared text queries, reused by `select_text` and `recall_text`.
    text_cache: TextCache,
    keyspaces: RwLock<HashMap<TypeId, Arc<KeySpace>>>,
}

/// Tunables, with the defaults `StoreBuilder` documents.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub(crate) namespace: String,
    pub(crate) generation: u64,
    pub(crate) node_ttl: u32,
    pub(crate) object_ttl: u32,
    pub(crate) lease_ttl: u32,
    pub(crate) max_nodes_per_query: usize,
    pub(crate) disjunct_limit: usize,
    pub(crate) outbox_interval: Duration,
    pub(crate) outbox_grace: Duration,
    pub(crate) text_cache_capacity: usize,
}

/// Prepared text queries a store keeps by default: far more distinct texts than a
/// program usually sends, at a few kilobytes each.
pub(crate) const DEFAULT_TEXT_CACHE_CAPACITY: usize = 256;

impl Default for Settings {
    fn default() -> Self {
        Settings {
            namespace: "memdex".into(),
            generation: 0,
            node_ttl: 3600,
            object_ttl: 3600,
            lease_ttl: 10,
            max_nodes_per_query: 10_000,
            disjunct_limit: memdex_grammar::normalise::DEFAULT_DISJUNCT_LIMIT,
            outbox_interval: Duration::from_secs(1),
            outbox_grace: Duration::from_secs(2),
            text_cache_capacity: DEFAULT_TEXT_CACHE_CAPACITY,
        }
    }
}

impl Store {
    pub fn builder() -> StoreBuilder {
        StoreBuilder::default()
    }

    /// Creates the model's table and indexes, and memdex's outbox table, if they do
    /// not exist.
    pub fn migrate<T: Model>(&self) -> Result<(), Error> {
        let inner = &self.inner;
        inner.outbox.ensure_table(&*inner.db)?;
        let statements = sql::create_table(inner.db.dialect(), T::schema());
        inner.count_db(statements.len());
        inner.db.execute_ddl(&statements)?;
        Ok(())
    }

    /// Inserts a row (an error if its key exists). A row memdex cannot store as it
    /// is (NaN, text too long to index) is refused before any database work.
    pub fn insert<T: Model>(&self, row: &T) -> Result<(), Error> {
        storable::<T>(self.dialect(), &row_values(row))?;
        self.transaction(|tx| tx.insert(row))
    }

    /// Updates the row with `row`'s key to `row` (`Error::NotFound` if there is none).
    pub fn update<T: Model>(&self, row: &T) -> Result<(), Error> {
        storable::<T>(self.dialect(), &row_values(row))?;
        self.transaction(|tx| tx.update(row))
    }

    /// Deletes the row with this key (`Error::NotFound` if there is none).
    pub fn delete<T: Model>(&self, key: &T::Key) -> Result<(), Error> {
        self.transaction(|tx| tx.delete::<T>(key))
    }

    /// Runs several writes in one database transaction. The cache hears of them
    /// only after the commit, in one pipelined batch; an `Err` from `f` rolls back
    /// and touches no cache key.
    pub fn transaction<R>(&self, f: impl FnOnce(&mut Transaction<'_>) -> Result<R, Error>) -> Result<R, Error> {
        let inner = &*self.inner;
        inner.outbox.ensure_table(&*inner.db)?;
        inner.outbox.maybe_drain(inner);
        let mut f = Some(f);
        let mut outcome: Option<Result<R, Error>> = None;
        let mut effects = Effects::default();
        let entry_id = inner.outbox.new_entry_id();
        let dialect = inner.db.dialect();
        let committed = inner.db.transaction(&mut |tx| {
            effects = Effects::default();
            let Some(f) = f.take() else {
                return Err(DbError::Query("a memdex transaction closure cannot be retried".into()));
            };
            let mut t = Transaction { tx, inner, effects: &mut effects, dialect };
            match f(&mut t) {
                Ok(r) => outcome = Some(Ok(r)),
                Err(e) => {
                    outcome = Some(Err(e));
                    return Err(DbError::Query("rolled back by the caller".into()));
                }
            }
            if !effects.keys.is_empty() {
                // Race rule 4 (lost invalidations): the keys this write must
                // invalidate are recorded in the same transaction as the write, so a
                // cache batch that fails after the commit — or a process that dies
                // right after it — leaves a durable record that any process drains.
                inner.count_db(1);
                tx.execute(&inner.outbox.insert_sql(dialect, entry_id, &effects.keys, &effects.moved))?;
            }
            inner.outbox.piggyback_cleanup(tx, dialect, inner)?;
            Ok(())
        });
        match (committed, outcome) {
            (_, Some(Err(e))) => Err(e),
            (Err(e), _) => Err(Error::Database(e)),
            (Ok(()), Some(Ok(r))) => {
                Counters::add(&inner.stats.writes, effects.writes);
                if !effects.keys.is_empty() {
                    inner.apply_effects(entry_id, &effects);
                }
                Ok(r)
            }
            (Ok(()), None) => Err(Error::Config("the database did not run the transaction".into())),
        }
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
        let inner = &*self.inner;
        let named: Vec<(String, Value)> = params.iter().map(|(n, v)| ((*n).to_owned(), v.clone())).collect();
        let types = |name: &str| memdex_grammar::ParamType::of(memdex_grammar::Params::get(&named, name));
        let query = TextQuery {
            model: TypeId::of::<T>(),
            schema: T::schema(),
            text,
            access: memdex_grammar::Access::Indexed,
            disjunct_limit: inner.settings.disjunct_limit,
        };
        let (compiled, lookup) = inner.text_cache.get_or_prepare(query, &types);
        match lookup {
            Lookup::Hit => Counters::add(&inner.stats.text_cache_hits, 1),
            Lookup::Miss => Counters::add(&inner.stats.text_cache_misses, 1),
        }
        let compiled = compiled.map_err(|e| Error::from_query(e, text))?;
        Ok(Select::from_text(compiled, named))
    }

    /// Counters since the store was built.
    pub fn stats(&self) -> Stats {
        self.inner.stats.snapshot()
    }

    /// The SQL dialect of the database.
    pub fn dialect(&self) -> Dialect {
        self.inner.db.dialect()
    }

    /// Applies pending invalidations (this process's, and any older than the grace
    /// period from other processes) now, instead of at the next periodic drain.
    pub fn drain_outbox(&self) -> Result<usize, Error> {
        self.inner.outbox.drain(&self.inner, true)
    }

    /// "SQLite (in memory) + in-process cache", for banners and logs.
    pub fn describe(&self) -> String {
        format!("{} + {}", self.inner.db.describe(), self.inner.cache.describe())
    }
}

impl StoreInner {
    pub(crate) fn count_db(&self, n: usize) {
        Counters::add(&self.stats.db_queries, n as u64);
    }

    /// The key space of a model under this store's namespace and generation.
    pub(crate) fn keyspace<T: Model>(&self) -> Arc<KeySpace> {
        let id = TypeId::of::<T>();
        if let Some(ks) = self.keyspaces.read().unwrap_or_else(|p| p.into_inner()).get(&id) {
            return ks.clone();
        }
        let ks = Arc::new(KeySpace::new(&self.settings.namespace, T::schema(), self.settings.generation));
        self.keyspaces.write().unwrap_or_else(|p| p.into_inner()).insert(id, ks.clone());
        ks
    }

    /// One cache round trip, counted and traced.
    pub(crate) fn cache_run(
        &self,
        ops: &[CacheOp<'_>],
    ) -> Vec<Result<crate::cache::CacheReply, crate::cache::CacheError>> {
        if ops.is_empty() {
            return Vec::new();
        }
        Counters::add(&self.stats.cache_round_trips, 1);
        let replies = self.cache.run(ops);
        let errors = replies.iter().filter(|r| r.is_err()).count();
        if errors > 0 {
            Counters::add(&self.stats.cache_errors, errors as u64);
        }
        self.tracer.batch(ops, &replies);
        replies
    }

    /// After a commit: invalidate objects and append ids to nodes, in one batch.
    fn apply_effects(&self, entry_id: i64, effects: &Effects) {
        let mut ops: Vec<CacheOp<'_>> = Vec::with_capacity(effects.objects.len() + effects.appends.len());
        // Invalidation, not refresh: a delete commutes with every other writer's
        // delete, so two writers whose batches land in the opposite order of their
        // commits cannot leave the older row cached (race rule 3). A delete also
        // voids any fill under lease that read the row before this commit (race
        // rule 1): the filler's CAS no longer matches.
        ops.extend(effects.objects.iter().map(|key| CacheOp::Delete { key }));
        // Add eagerly: append the id to the node of every index the new values map
        // to. Append never creates a node, so a node that is not cached stays a
        // miss (and its next fill reads this commit).
        // Each append is checked (`cache::checked_appends`): a node too full to take
        // the id is deleted below, rather than left cached without it (K11).
        let appends_from = ops.len();
        ops.extend(checked_appends(effects.appends.iter().map(|(key, record)| (key.as_str(), record.as_slice()))));
        let replies = self.cache_run(&ops);
        let mut failed = replies.iter().any(|r| r.is_err());
        let full = refused_appends(&ops[appends_from..], replies.get(appends_from..).unwrap_or(&[]));
        if !full.is_empty() {
            let deletes: Vec<CacheOp<'_>> = full.into_iter().map(|key| CacheOp::Delete { key }).collect();
            failed |= self.cache_run(&deletes).iter().any(|r| r.is_err());
        }
        if failed {
            Counters::add(&self.stats.outbox_deferred, 1);
            self.outbox.defer(entry_id, effects.keys.clone());
        } else {
            self.outbox.done(entry_id);
        }
    }
}

/// The cache effects of the writes of one transaction.
#[derive(Debug, Default)]
struct Effects {
    objects: Vec<String>,
    appends: Vec<(String, Vec<u8>)>,
    /// Every key above, for the outbox.
    keys: Vec<String>,
    /// `(table, key)` of every updated row, for the outbox: a node filled from the
    /// database before this write's cache batch lands keeps listing them.
    moved: Vec<(String, Value)>,
    writes: u64,
}

/// Writes inside `Store::transaction`.
pub struct Transaction<'t> {
    tx: &'t mut dyn Tx,
    inner: &'t StoreInner,
    effects: &'t mut Effects,
    dialect: Dialect,
}

impl std::fmt::Debug for Transaction<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transaction").field("writes", &self.effects.writes).finish()
    }
}

impl Transaction<'_> {
    pub fn insert<T: Model>(&mut self, row: &T) -> Result<(), Error> {
        let values = row_values(row);
        storable::<T>(self.dialect, &values)?;
        self.inner.count_db(1);
        self.tx.execute(&sql::insert(self.dialect, T::schema(), &values))?;
        self.record_row::<T>(&values, false);
        Ok(())
    }

    pub fn update<T: Model>(&mut self, row: &T) -> Result<(), Error> {
        let values = row_values(row);
        storable::<T>(self.dialect, &values)?;
        self.inner.count_db(1);
        let changed = self.tx.execute(&sql::update(self.dialect, T::schema(), &values))?;
        if changed == 0 {
            return Err(Error::NotFound { model: T::schema().model.clone(), key: values[T::schema().key].to_string() });
        }
        self.record_row::<T>(&values, true);
        Ok(())
    }

    pub fn delete<T: Model>(&mut self, key: &T::Key) -> Result<(), Error> {
        let key: Value = key.clone().into();
        self.inner.count_db(1);
        let changed = self.tx.execute(&sql::delete(self.dialect, T::schema(), &key))?;
        if changed == 0 {
            return Err(Error::NotFound { model: T::schema().model.clone(), key: key.to_string() });
        }
        // Nodes still list the id; readers drop it lazily when the database shows
        // the row is gone.
        let object = self.inner.keyspace::<T>().object(&key);
        self.effects.keys.push(object.clone());
        self.effects.objects.push(object);
        self.effects.writes += 1;
        Ok(())
    }

    /// `updated`: the row existed before this write, so it may be leaving nodes that
    /// still list it; the outbox entry names it (see `Outbox::in_flight`).
    fn record_row<T: Model>(&mut self, values: &[Value], updated: bool) {
        let schema = T::schema();
        let keys = self.inner.keyspace::<T>();
        let id = &values[schema.key];
        if updated && !schema.indexes.is_empty() {
            self.effects.moved.push((schema.table.clone(), id.clone()));
        }
        let object = keys.object(id);
        self.effects.keys.push(object.clone());
        self.effects.objects.push(object);
        let record = codec::id_record(id);
        for index in 0..schema.indexes.len() {
            let node = node_of_row(schema, index, &|c| values[c].clone());
            let key = keys.node(schema, &node);
            self.effects.keys.push(key.clone());
            self.effects.appends.push((key, record.clone()));
        }
        self.effects.writes += 1;
    }
}

/// Refuses, before the database sees them, values no database would give back as
/// Rust has them: NaN in a float field, and text longer than the database can index
/// (`sql::check_indexed_text`).
fn storable<T: Model>(dialect: Dialect, values: &[Value]) -> Result<(), Error> {
    let schema = T::schema();
    if let Some(c) = values.iter().position(|v| matches!(v, Value::Float(x) if x.is_nan())) {
        return Err(Error::NotANumber { model: schema.model.clone(), field: schema.columns[c].field.clone() });
    }
    sql::check_indexed_text(dialect, schema, values)?;
    Ok(())
}

fn row_values<T: Model>(row: &T) -> Vec<Value> {
    (0..T::schema().columns.len()).map(|c| row.column_value(c)).collect()
}

enum DbChoice {
    Sqlite(String),
    SqliteInMemory,
    Postgres(String),
    #[cfg(feature = "mysql")]
    MySql(String),
    Custom(Box<dyn Database>),
}

enum CacheChoice {
    Memcached(Vec<String>),
    InProcess,
    Custom(Box<dyn CacheBackend>),
}

/// Configures a [`Store`]: a database (required), a cache (default: in-process),
/// and tunables.
#[derive(Default)]
pub struct StoreBuilder {
    db: Option<DbChoice>,
    cache: Option<CacheChoice>,
    settings: Settings,
    cache_config: CacheConfig,
    trace: Option<Arc<dyn Fn(&str) + Send + Sync>>,
}

impl std::fmt::Debug for StoreBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreBuilder").field("settings", &self.settings).finish_non_exhaustive()
    }
}

impl StoreBuilder {
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
    #[cfg(feature = "mysql")]
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

    /// Prints the cache conversation to stderr (`get …`, `append …`, `SELECT …`).
    pub fn trace(mut self, on: bool) -> Self {
        self.trace = on.then(|| Arc::new(|line: &str| eprintln!("  {line}")) as Arc<dyn Fn(&str) + Send + Sync>);
        self
    }

    /// Sends the cache conversation to a function of yours.
    pub fn trace_to(mut self, sink: impl Fn(&str) + Send + Sync + 'static) -> Self {
        self.trace = Some(Arc::new(sink));
        self
    }

    pub fn build(self) -> Result<Store, Error> {
        let db: Box<dyn Database> = match self.db {
            None => {
                return Err(Error::Config("no database: call .sqlite(…), .sqlite_in_memory() or .postgres(…)".into()));
            }
            Some(DbChoice::Sqlite(path)) => Box::new(Sqlite::open(&path)?),
            Some(DbChoice::SqliteInMemory) => Box::new(Sqlite::in_memory()?),
            Some(DbChoice::Postgres(params)) => Box::new(Postgres::connect(&params)?),
            #[cfg(feature = "mysql")]
            Some(DbChoice::MySql(url)) => Box::new(crate::db::mysql::MySql::connect(&url)?),
            Some(DbChoice::Custom(db)) => db,
        };
        let cache: Box<dyn CacheBackend> = match self.cache {
            None | Some(CacheChoice::InProcess) => Box::new(InProcessCache::new(self.cache_config.clone())),
            Some(CacheChoice::Memcached(servers)) => Box::new(
                Memcached::connect(&servers, self.cache_config.clone())
                    .map_err(|e| Error::Config(format!("memcached: {e}")))?,
            ),
            Some(CacheChoice::Custom(cache)) => cache,
        };
        Ok(Store {
            inner: Arc::new(StoreInner {
                db,
                cache,
                outbox: Outbox::new(&self.settings),
                text_cache: TextCache::new(self.settings.text_cache_capacity),
                settings: self.settings,
                stats: Counters::default(),
                tracer: Tracer::new(self.trace),
                keyspaces: RwLock::new(HashMap::new()),
            }),
        })
    }
}
