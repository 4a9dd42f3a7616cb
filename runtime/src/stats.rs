//! Counters of what the store did, for `Store::stats()`.

use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! stats {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        /// A snapshot of the store's counters since it was built.
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct Stats {
            $($(#[$doc])* pub $name: u64,)*
        }

        #[derive(Debug, Default)]
        pub(crate) struct Counters {
            $(pub(crate) $name: AtomicU64,)*
        }

        impl Counters {
            pub(crate) fn snapshot(&self) -> Stats {
                Stats { $($name: self.$name.load(Ordering::Relaxed),)* }
            }
        }
    };
}

stats! {
    /// Index nodes found filled in the cache.
    node_hits,
    /// Index nodes missing, unfilled or unreadable (answered from the database).
    node_misses,
    /// Objects found in the cache.
    object_hits,
    /// Objects missing or unreadable in the cache.
    object_misses,
    /// Objects served from this process's near cache: kept at exactly the version
    /// every node listing them names (no object read at all).
    near_hits,
    /// Objects whose version the nodes named was not kept in the near cache (read
    /// from the cache or the database, then kept).
    near_misses,
    /// Objects listed by an entry a write appended and no reader verified yet: read
    /// from their cached bytes rather than served from the near cache, then
    /// verified by the fetch's write-back (an append can land late, naming a version
    /// the row has left; see `codec`).
    near_unverified,
    /// Fetches of index nodes answered from the rows this process kept for each
    /// node's exact bytes (`near_hits` counts their objects too): nothing listed,
    /// looked up or read beyond the nodes themselves.
    near_node_hits,
    /// Fetches over several index nodes, all found in the cache, that read the
    /// nodes' CAS again with their objects, because some node was not one this
    /// process had read before, byte for byte (it changed since, or this process
    /// never read it): the re-read makes sure a row moving between two of them is
    /// not missed by both reads. A hot fetch over unchanged nodes needs none.
    node_rechecks,
    /// Fetches over several index nodes, all found in the cache, whose every node
    /// this process had read or stored before, byte for byte: no re-read needed, so
    /// one round trip when the near cache holds their objects.
    node_sets_seen,
    /// Fills (nodes or objects) this store won the lease for and stored.
    fills_won,
    /// Fills that lost: a write touched the key between the miss and the fill.
    fills_lost,
    /// Misses where another client held the lease (answered without filling).
    lease_busy,
    /// Ids dropped from nodes because the database showed they no longer belong.
    lazy_removals,
    /// SQL statements and queries sent to the database.
    db_queries,
    /// Round trips to the cache.
    cache_round_trips,
    /// Cache operations that failed (server down, timeout, garbage); each was
    /// answered from the database instead.
    cache_errors,
    /// Calls answered entirely from the database because the cache could not be
    /// trusted or reached (pending invalidations, fallback plans).
    degraded_calls,
    /// Writes committed (insert, update, delete).
    writes,
    /// One-statement writes on PostgreSQL whose guard shut, so that they changed
    /// nothing: each one statement more than its write needed (a move or delete of a
    /// row this process had not read or written last, or had only before another
    /// process wrote it; a rolling deploy's new index). Growing about as fast as
    /// `writes`, it says the rows are mostly written by other processes.
    guards_shut,
    /// Outbox entries whose invalidations were applied by a drain.
    outbox_drained,
    /// Rows written outside memdex whose cache keys a drain deleted (captured by
    /// the triggers of `StoreBuilder::capture_outside_writes`).
    outside_changes_applied,
    /// Writes whose cache batch failed after the commit (left to the outbox), and
    /// whose process bypasses the cache until it has applied them itself.
    outbox_deferred,
    /// Writes whose cache batch failed after the commit on a server now marked
    /// down: the cache client deletes the keys there before the server serves again,
    /// and the outbox tells the other processes.
    outbox_owed,
    /// Cache servers marked down right now (a gauge, read from the cache backend).
    cache_servers_down,
    /// Times a cache server was marked down after a failure or a timeout.
    cache_markdowns,
    /// Probes sent to cache servers marked down.
    cache_probes,
    /// Cache operations failed at once, without any I/O, because their server was
    /// marked down (each was answered from the database).
    cache_skipped_ops,
    /// Milliseconds cache servers spent marked down, summed over servers.
    cache_down_ms,
    /// Bytes the near cache holds right now (a gauge): the kept objects' and node
    /// rows' encoded sizes plus a per-entry overhead, at most `near_cache_capacity`.
    near_bytes,
    /// Entries (objects, nodes' rows and the node bytes it saw) the near cache holds
    /// right now (a gauge).
    near_entries,
    /// Entries the near cache dropped for room (or never took: heavier than the
    /// whole cache) since the store was built. Growing steadily under a steady load,
    /// it says the capacity is smaller than the working set.
    near_evictions,
    /// Database connections open right now (a gauge, read from the pool).
    db_pool_connections,
    /// Database connections idle in the pool right now (a gauge).
    db_pool_idle,
    /// Text queries (`select_text`, `recall_text`) found prepared in the store's
    /// cache of text queries.
    text_cache_hits,
    /// Text queries prepared afresh: not in that cache yet, or the cache is off.
    text_cache_misses,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// What a store's gauges read at one moment: its database pool, its cache
/// backend's health, its near cache's size.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Gauges {
    pub(crate) pool: crate::db::PoolState,
    pub(crate) health: crate::cache::CacheHealth,
    pub(crate) near: crate::near::NearGauges,
}

/// Copies `gauges` into a snapshot of the counters (and onto the `metrics` facade).
pub(crate) fn merge_gauges(stats: &mut Stats, gauges: Gauges) {
    emit_gauges(gauges);
    let Gauges { pool, health, near } = gauges;
    stats.near_bytes = near.bytes;
    stats.near_entries = near.entries;
    stats.near_evictions = near.evictions;
    stats.db_pool_connections = u64::from(pool.connections);
    stats.db_pool_idle = u64::from(pool.idle);
    stats.cache_servers_down = health.servers_down;
    stats.cache_markdowns = health.markdowns;
    stats.cache_probes = health.probes;
    stats.cache_skipped_ops = health.skipped_ops;
    stats.cache_down_ms = health.down_ms;
}

/// The pool, cache and near-cache gauges on the `metrics` facade (feature
/// `metrics`): set whenever the store's [`Stats`] are read and after every periodic
/// outbox drain, so an exporter sees them refreshed at least every `outbox_interval`
/// of a store in use.
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub(crate) fn emit_gauges(gauges: Gauges) {
    #[cfg(feature = "metrics")]
    {
        let Gauges { pool, health, near } = gauges;
        metrics::gauge!("memdex_near_bytes").set(near.bytes as f64);
        metrics::gauge!("memdex_near_entries").set(near.entries as f64);
        metrics::counter!("memdex_near_evictions_total").absolute(near.evictions);
        metrics::gauge!("memdex_db_pool_connections").set(f64::from(pool.connections));
        metrics::gauge!("memdex_db_pool_idle").set(f64::from(pool.idle));
        metrics::gauge!("memdex_cache_servers_down").set(health.servers_down as f64);
    }
}
