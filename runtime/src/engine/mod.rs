//! The sans-I/O core: every read, write, fill, lazy removal and outbox drain as a
//! state machine that *emits* cache batches and SQL requests and *consumes* their
//! replies, and never touches a socket or a connection (the shape of quinn-proto's
//! `Connection` or rustls's `ConnectionCommon`).
//!
//! A driver runs a machine by a loop that both drivers share in spirit:
//!
//! ```text
//! loop {
//!     match machine.poll() {
//!         Step::Cache(ops) => machine.handle_cache(cache.run(&ops)),   // one round trip
//!         Step::Sql(request) => machine.handle_sql(db.run(request)),   // one statement
//!         Step::Done => return machine.finish(),
//!     }
//! }
//! ```
//!
//! The blocking driver (`crate::exec::blocking`) runs it over std sockets and pooled
//! database connections, the tokio driver (`crate::exec::asynchronous`, feature `tokio`)
//! over `tokio::net` and an async pool. Neither knows a race rule: every rule of
//! ARCHITECTURE.md's table is written once, here, next to the phase it belongs to.
//! Tests drive the machines directly, with any interleaving of replies.
//!
//! Machines are plain data: dropping one between a request and its reply is always
//! safe (the driver discards the connection that still owes the reply).

use std::any::TypeId;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use memdex_grammar::keys::KeySpace;
use memdex_grammar::sql::SqlQuery;
use memdex_grammar::{Type, Value};

use crate::cache::{CacheError, CacheOp, CacheReply};
use crate::capture::Capture;
use crate::db::DbError;
use crate::error::Error;
use crate::model::Model;
use crate::near::NearCache;
use crate::outbox::Outbox;
use crate::prepared::TextCache;
use crate::registry;
use crate::settings::Settings;
use crate::statements::StatementTexts;
use crate::stats::Counters;
use crate::trace::Tracer;
pub(crate) use observe::{Label, Observation, Outcome};

pub(crate) mod changes;
pub(crate) mod database;
pub(crate) mod drain;
pub(crate) mod fetch;
pub(crate) mod last_written;
pub(crate) mod observe;
pub(crate) mod scan;
pub(crate) mod schema;
pub(crate) mod window;
pub(crate) mod write;
mod writeback;

/// The replies of one cache batch, one per op, in op order.
pub(crate) type Replies = Vec<Result<CacheReply, CacheError>>;

/// What a machine needs done next.
#[derive(Debug)]
pub(crate) enum Step<'m> {
    /// Send this batch in one round trip, then call `handle_cache` with its replies.
    Cache(Vec<CacheOp<'m>>),
    /// Run this statement, then call `handle_sql` with its outcome.
    Sql(SqlRequest<'m>),
    /// Finished: call `finish`.
    Done,
}

/// One statement for the database, outside any explicit transaction.
#[derive(Debug)]
pub(crate) enum SqlRequest<'m> {
    /// A query; each row decoded to `types`.
    Query { query: &'m SqlQuery, types: &'m [Type] },
    /// A statement; the reply is the number of rows it changed.
    Execute(&'m SqlQuery),
}

/// The outcome of a [`SqlRequest`].
#[derive(Debug)]
pub(crate) enum SqlReply {
    Rows(Vec<Vec<Value>>),
    /// A statement's reply: it ran.
    Executed,
}

impl SqlReply {
    /// The rows of a query's reply (none for a statement's).
    pub(crate) fn into_rows(self) -> Vec<Vec<Value>> {
        match self {
            SqlReply::Rows(rows) => rows,
            SqlReply::Executed => Vec::new(),
        }
    }
}

/// A state machine of the core. After every `handle_*`, the driver calls `poll`
/// again; `finish` is called once, after `poll` said [`Step::Done`].
pub(crate) trait Machine {
    type Output;

    /// The operation's name and model, for its span and metrics.
    fn label(&self) -> Label;

    /// What it learned about the cache, read by the driver before `finish`.
    fn outcome(&self) -> Outcome {
        Outcome::default()
    }

    /// What to do next. Never blocks, never does I/O.
    fn poll(&mut self) -> Step<'_>;

    /// The replies to the batch the last `poll` returned.
    fn handle_cache(&mut self, replies: Replies);

    /// The outcome of the statement the last `poll` returned.
    fn handle_sql(&mut self, reply: Result<SqlReply, DbError>);

    /// The result, once `poll` returned [`Step::Done`].
    fn finish(self) -> Result<Self::Output, Error>;
}

/// What the machines ask of the cache without a round trip: facts a driver's cache
/// knows locally (its limits, which servers are marked down, what it owes them).
pub(crate) trait CacheFacts: Sync {
    /// The largest value the cache stores.
    fn max_value_size(&self) -> usize;
    /// Whether `key`'s server is expected to answer.
    fn is_available(&self, key: &str) -> bool;
    /// Whether the cache deletes every one of `keys` before it serves them again.
    fn owes(&self, keys: &[&str]) -> bool;
}

impl CacheFacts for Box<dyn crate::cache::CacheBackend> {
    fn max_value_size(&self) -> usize {
        self.as_ref().max_value_size()
    }
    fn is_available(&self, key: &str) -> bool {
        self.as_ref().is_available(key)
    }
    fn owes(&self, keys: &[&str]) -> bool {
        self.as_ref().owes(keys)
    }
}

/// The I/O-free state a store shares between its calls: settings, counters, the
/// trace, the outbox's bookkeeping, key spaces and prepared text queries.
#[derive(Debug)]
pub(crate) struct Context {
    pub(crate) settings: Settings,
    pub(crate) stats: Counters,
    pub(crate) tracer: Tracer,
    pub(crate) outbox: Outbox,
    /// `None` unless the store captures writes made outside memdex.
    pub(crate) capture: Option<Capture>,
    /// The registered indexes this process read last (deletes read their columns).
    pub(crate) registry: registry::Snapshot,
    pub(crate) text_cache: TextCache,
    /// The write path's statement texts, rendered once per shape.
    pub(crate) statements: StatementTexts,
    pub(crate) near: NearCache,
    /// What this process last wrote to each row's indexed columns: a one-statement
    /// move or delete's first guard.
    pub(crate) last_written: last_written::LastWritten,
    keyspaces: RwLock<HashMap<TypeId, Arc<KeySpace>>>,
}

impl Context {
    pub(crate) fn new(settings: Settings, tracer: Tracer) -> Context {
        Context {
            outbox: Outbox::new(&settings),
            capture: Capture::new(&settings),
            registry: registry::Snapshot::default(),
            text_cache: TextCache::new(settings.text_cache_capacity),
            statements: StatementTexts::default(),
            near: NearCache::new(settings.near_cache_capacity),
            last_written: last_written::LastWritten::default(),
            settings,
            stats: Counters::default(),
            tracer,
            keyspaces: RwLock::new(HashMap::new()),
        }
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

    /// Counts one cache round trip and the ops of it that failed, and traces it.
    pub(crate) fn record_batch(&self, ops: &[CacheOp<'_>], replies: &[Result<CacheReply, CacheError>]) {
        Counters::add(&self.stats.cache_round_trips, 1);
        let errors = replies.iter().filter(|r| r.is_err()).count();
        if errors > 0 {
            Counters::add(&self.stats.cache_errors, errors as u64);
        }
        self.tracer.batch(ops, replies);
    }

    /// Counts one statement sent to the database, and traces it.
    pub(crate) fn record_sql(&self, query: &SqlQuery) {
        Counters::add(&self.stats.db_queries, 1);
        self.tracer.sql(&query.text, query.params.len());
    }
}

/// What every machine of one call works with.
#[derive(Clone, Copy)]
pub(crate) struct Env<'a> {
    pub(crate) ctx: &'a Context,
    pub(crate) cache: &'a dyn CacheFacts,
    pub(crate) dialect: memdex_grammar::Dialect,
}

impl std::fmt::Debug for Env<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Env").field("dialect", &self.dialect).finish_non_exhaustive()
    }
}

/// Decodes database rows into models.
pub(crate) fn decode_rows<T: Model>(rows: Vec<Vec<Value>>) -> Result<Vec<T>, Error> {
    let schema = T::schema();
    rows.into_iter()
        .map(|values| T::from_values(values).map_err(|reason| Error::Decode { model: schema.model.clone(), reason }))
        .collect()
}

/// Orders rows by key: the order of every answer, from the cache or the database.
/// Each key is turned into its `Value` once (`sort_by_cached_key`, stable like
/// `sort_by`), not twice per comparison: for 100 rows that was ~1,300 conversions
/// and drops, a quarter of the answer's time on the two-round-trip path (perf,
/// stop 29).
pub(crate) fn sort_by_key<T: Model>(rows: &mut [T]) {
    rows.sort_by_cached_key(|row| KeyOrder(row.key().into()));
}

/// A key `Value` ordered by [`Value::order`] (a total order).
struct KeyOrder(Value);

impl Ord for KeyOrder {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.order(&other.0)
    }
}

impl PartialOrd for KeyOrder {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for KeyOrder {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for KeyOrder {}

/// The types of a model's columns, in schema order (how its rows are decoded).
pub(crate) fn column_types<T: Model>() -> Vec<Type> {
    T::schema().columns.iter().map(|c| c.ty).collect()
}
