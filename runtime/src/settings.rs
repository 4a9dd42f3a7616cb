//! A store's tunables, with the defaults `StoreBuilder` documents.

use std::time::Duration;

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
    pub(crate) near_cache_capacity: usize,
    /// Whether the store runs DDL (creates the outbox table at build, the model's
    /// table in `migrate`), or only checks that the tables are there.
    pub(crate) manage_schema: bool,
    /// Whether `migrate` installs capture triggers and drains apply the changes
    /// they record (`crate::capture`).
    pub(crate) capture_outside_writes: bool,
    /// Whether a one-statement update or delete on PostgreSQL is guarded by what
    /// the process believes the row holds even where the database could spell the
    /// old nodes' keys from the row it reads (`engine::write::Attempts`).
    pub(crate) guarded_writes: bool,
}

/// Bytes of decoded objects a store keeps in its near cache by default.
/// The near cache a store keeps by default (DESIGN.md "Near cache": on by default).
pub(crate) const DEFAULT_NEAR_CACHE_CAPACITY: usize = 64 * 1024 * 1024;

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
            near_cache_capacity: DEFAULT_NEAR_CACHE_CAPACITY,
            manage_schema: true,
            capture_outside_writes: false,
            guarded_writes: false,
        }
    }
}
