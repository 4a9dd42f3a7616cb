//! Cache backends: memcached (meta protocol, pipelined, sharded) and an in-process
//! cache with the same semantics. Both pass one conformance suite
//! (`tests/tests/cache_conformance.rs`).
//!
//! The executor speaks to a backend only in batches: one [`CacheBackend::run`] is
//! one round trip (per server, servers in parallel), whatever the number of ops.

use std::fmt;
use std::time::Duration;

/// The bytes of a [`CacheReply::Hit`] (the `bytes` crate's shared byte slice).
pub use bytes::Bytes;

pub(crate) mod health;
pub mod in_process;
pub mod memcached;

/// One operation of a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheOp<'a> {
    /// The value and its CAS token. With `lease: Some(ttl)`, a miss atomically
    /// creates an empty placeholder living `ttl` seconds and the caller who created
    /// it wins the lease ([`CacheReply::LeaseWon`]); others see
    /// [`CacheReply::LeaseBusy`] until the placeholder is replaced or expires.
    Get {
        /// The cache key to read.
        key: &'a str,
        /// `Some(ttl)` to take a lease on a miss, the placeholder living `ttl`
        /// seconds; `None` for a plain read that changes nothing.
        lease: Option<u32>,
    },
    /// Only the CAS token of a stored item, without its value (memcached's
    /// `mg <key> c`): [`CacheReply::Present`] or [`CacheReply::Miss`]. Never takes a
    /// lease and never changes anything; it answers "is this still the item I read?"
    /// without moving the value again. A lease placeholder is an item like any other.
    GetCas {
        /// The cache key whose CAS token is wanted.
        key: &'a str,
    },
    /// Stores unconditionally.
    Set {
        /// The cache key to store under.
        key: &'a str,
        /// The bytes to store; a value over the backend's size limit is not stored.
        value: &'a [u8],
        /// Seconds the item lives; 0 means until evicted.
        ttl: u32,
    },
    /// Stores only when the item still has CAS `cas` (a fill under lease, a
    /// lazy-removal write-back). `Exists` when it changed, `NotFound` when gone.
    Cas {
        /// The cache key to store under.
        key: &'a str,
        /// The bytes to store in place of the current value.
        value: &'a [u8],
        /// Seconds the new item lives; 0 means until evicted.
        ttl: u32,
        /// The CAS token the item must still have (from a `Hit`, `Present` or
        /// `LeaseWon` reply) for the store to happen.
        cas: u64,
    },
    /// Appends to an existing item and changes its CAS; never creates an item
    /// (`NotStored` when absent). Appending to a lease placeholder is allowed.
    Append {
        /// The cache key of the existing item to extend.
        key: &'a str,
        /// The bytes to add at the end of the item's value.
        value: &'a [u8],
    },
    /// Removes the item (`Deleted` or `NotFound`).
    Delete {
        /// The cache key to remove.
        key: &'a str,
    },
}

impl<'a> CacheOp<'a> {
    /// The key the op acts on.
    pub fn key(&self) -> &'a str {
        match self {
            CacheOp::Get { key, .. }
            | CacheOp::GetCas { key }
            | CacheOp::Set { key, .. }
            | CacheOp::Cas { key, .. }
            | CacheOp::Append { key, .. }
            | CacheOp::Delete { key } => key,
        }
    }
}

/// A [`CacheOp`] that owns its key and value, to send a batch to another thread.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OwnedOp {
    /// An owned [`CacheOp::Get`]: the value and CAS of `key`, taking a lease on a
    /// miss when `lease` gives the placeholder's time to live in seconds.
    Get {
        /// The cache key to read.
        key: String,
        /// `Some(ttl)` to take a lease on a miss; `None` for a plain read.
        lease: Option<u32>,
    },
    /// An owned [`CacheOp::GetCas`]: only the CAS token of `key`.
    GetCas {
        /// The cache key whose CAS token is wanted.
        key: String,
    },
    /// An owned [`CacheOp::Set`]: stores `value` under `key` unconditionally.
    Set {
        /// The cache key to store under.
        key: String,
        /// The bytes to store.
        value: Vec<u8>,
        /// Seconds the item lives; 0 means until evicted.
        ttl: u32,
    },
    /// An owned [`CacheOp::Cas`]: stores `value` only if the item still has `cas`.
    Cas {
        /// The cache key to store under.
        key: String,
        /// The bytes to store in place of the current value.
        value: Vec<u8>,
        /// Seconds the new item lives; 0 means until evicted.
        ttl: u32,
        /// The CAS token the item must still have for the store to happen.
        cas: u64,
    },
    /// An owned [`CacheOp::Append`]: extends an existing item, never creates one.
    Append {
        /// The cache key of the existing item to extend.
        key: String,
        /// The bytes to add at the end of the item's value.
        value: Vec<u8>,
    },
    /// An owned [`CacheOp::Delete`]: removes the item.
    Delete {
        /// The cache key to remove.
        key: String,
    },
}

impl From<&CacheOp<'_>> for OwnedOp {
    fn from(op: &CacheOp<'_>) -> OwnedOp {
        match *op {
            CacheOp::Get { key, lease } => OwnedOp::Get { key: key.to_owned(), lease },
            CacheOp::GetCas { key } => OwnedOp::GetCas { key: key.to_owned() },
            CacheOp::Set { key, value, ttl } => OwnedOp::Set { key: key.to_owned(), value: value.to_vec(), ttl },
            CacheOp::Cas { key, value, ttl, cas } => {
                OwnedOp::Cas { key: key.to_owned(), value: value.to_vec(), ttl, cas }
            }
            CacheOp::Append { key, value } => OwnedOp::Append { key: key.to_owned(), value: value.to_vec() },
            CacheOp::Delete { key } => OwnedOp::Delete { key: key.to_owned() },
        }
    }
}

impl OwnedOp {
    /// The op, borrowing from this one.
    pub fn as_op(&self) -> CacheOp<'_> {
        match self {
            OwnedOp::Get { key, lease } => CacheOp::Get { key, lease: *lease },
            OwnedOp::GetCas { key } => CacheOp::GetCas { key },
            OwnedOp::Set { key, value, ttl } => CacheOp::Set { key, value, ttl: *ttl },
            OwnedOp::Cas { key, value, ttl, cas } => CacheOp::Cas { key, value, ttl: *ttl, cas: *cas },
            OwnedOp::Append { key, value } => CacheOp::Append { key, value },
            OwnedOp::Delete { key } => CacheOp::Delete { key },
        }
    }
}

/// The answer to one [`CacheOp`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CacheReply {
    /// A stored item (possibly a lease placeholder that got appends: the node codec
    /// tells those apart by their missing header).
    Hit {
        /// The stored bytes (empty for a bare lease placeholder): a shared slice,
        /// so that a backend hands out what it read or keeps without copying it
        /// (`Bytes::from(vec)` takes a `Vec` as it is). memcached's values share
        /// their connection's read buffer (64 KiB and up) until dropped: a caller
        /// that keeps one long copies it (`to_vec`).
        value: Bytes,
        /// The item's CAS token, to pass to a later [`CacheOp::Cas`].
        cas: u64,
    },
    /// Present, with this CAS (the answer to a [`CacheOp::GetCas`]).
    Present {
        /// The item's current CAS token; it changes on every mutation of the item.
        cas: u64,
    },
    /// Absent (a `Get` without lease, or a `GetCas`).
    Miss,
    /// Absent; this caller created the placeholder and should fill it with
    /// `Cas { cas, .. }`.
    LeaseWon {
        /// The CAS token of the placeholder this caller created.
        cas: u64,
    },
    /// Absent or a placeholder, and another caller holds the lease: answer from the
    /// database without filling.
    LeaseBusy,
    /// A `Set`, `Cas` or `Append` stored its value.
    Stored,
    /// A `Set`, `Cas` or `Append` stored nothing: an append onto an absent item, or
    /// a value (or an appended item) over the size limit, or no room for it.
    NotStored,
    /// A `Cas` found the item changed since its CAS token was read (CAS mismatch).
    Exists,
    /// A `Cas` or `Delete` found no item under the key.
    NotFound,
    /// A `Delete` removed the item.
    Deleted,
}

/// A failed operation. The executor treats every error as a miss for reads and as
/// a lost invalidation for writes (see the outbox in `crate::outbox`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CacheError {
    /// The server could not be dialled, or its connection failed before a read was
    /// answered (a read is safe to count as a miss).
    #[error("cache server {server} unreachable: {reason}")]
    Unreachable {
        /// The server as configured (`host:port`).
        server: String,
        /// The socket error, in words.
        reason: String,
    },
    /// The server did not accept a connection or answer a read within the
    /// configured timeouts ([`CacheConfig::connect_timeout`],
    /// [`CacheConfig::io_timeout`]).
    #[error("cache server {server} timed out")]
    Timeout {
        /// The server as configured (`host:port`).
        server: String,
    },
    /// The request was written but no answer came back: it may or may not have
    /// been applied.
    #[error("cache server {server}: request sent, no answer ({reason})")]
    Ambiguous {
        /// The server as configured (`host:port`).
        server: String,
        /// What happened to the connection after the request was written.
        reason: String,
    },
    /// The server answered something that is not a valid reply to the request, or
    /// the request itself was refused before sending (a key memcached cannot take:
    /// empty, over 250 bytes, or with whitespace or control bytes).
    #[error("cache protocol error from {server}: {reason}")]
    Protocol {
        /// The server as configured (`host:port`), or the backend's description.
        server: String,
        /// What was wrong with the reply or the key.
        reason: String,
    },
    /// The server is marked down after a failure: the op was not sent (no time is
    /// spent on it) and, if it invalidates, it is owed to the server until a
    /// background probe applies it (see [`CacheBackend::owes`]).
    #[error("cache server {server} is marked down")]
    Down {
        /// The server as configured (`host:port`).
        server: String,
    },
}

impl CacheError {
    /// Whether this failure marks its server down: the server did not answer in time,
    /// could not be reached, or stopped speaking the protocol.
    pub fn marks_down(&self) -> bool {
        !matches!(self, CacheError::Down { .. })
    }
}

/// How a backend's servers have fared, for `Store::stats` (all zero for a backend
/// without servers).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheHealth {
    /// Servers marked down right now.
    pub servers_down: u64,
    /// Times a server was marked down.
    pub markdowns: u64,
    /// Probes sent to down servers.
    pub probes: u64,
    /// Ops failed at once because their server was down (no time spent on them).
    pub skipped_ops: u64,
    /// Milliseconds servers spent marked down, summed over servers.
    pub down_ms: u64,
}

/// Timeouts and limits shared by the backends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheConfig {
    /// How long dialling a server may take before it counts as unreachable
    /// (default 200 ms).
    pub connect_timeout: Duration,
    /// How long one exchange (a batch written and its replies read) may take before
    /// the server counts as timed out (default 250 ms).
    pub io_timeout: Duration,
    /// Values larger than this are not stored (memcached's default item limit is 1 MiB).
    pub max_value_size: usize,
    /// In-process cache only: total bytes of keys and values before LRU eviction.
    pub capacity_bytes: usize,
    /// memcached only (feature `tls`): dial every server over TLS with these
    /// settings. Servers written `tls://host:port` use TLS without them (the
    /// Mozilla roots, the host's name).
    #[cfg(feature = "tls")]
    pub tls: Option<memcached::MemcachedTls>,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            connect_timeout: Duration::from_millis(200),
            io_timeout: Duration::from_millis(250),
            max_value_size: 1024 * 1024 - 512,
            capacity_bytes: 64 * 1024 * 1024,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }
}

/// A cache the executor can talk to.
pub trait CacheBackend: Send + Sync + fmt::Debug {
    /// Runs a batch in one round trip per server involved (servers concurrently),
    /// ops on one server in order. One result per op, in op order; an op on a
    /// failed server fails alone, the others still answer.
    fn run(&self, ops: &[CacheOp<'_>]) -> Vec<Result<CacheReply, CacheError>>;

    /// The largest value this backend stores.
    fn max_value_size(&self) -> usize;

    /// "memcached 127.0.0.1:11211" / "in-process", for logs and the shop's banner.
    fn describe(&self) -> String;

    /// Whether this backend will itself delete every one of `keys` before it serves
    /// them again: true when each failed invalidation was recorded as owed to a
    /// server that is marked down (memcached). The store then needs no bypass of its
    /// own: the durable outbox still tells other processes. The default, false,
    /// keeps the store's own path (its reads bypass the cache until it has deleted
    /// the keys itself).
    fn owes(&self, keys: &[&str]) -> bool {
        let _ = keys;
        false
    }

    /// Whether `key`'s server is expected to answer: false while it is marked down,
    /// so that a caller can skip work whose every outcome would be a miss (the
    /// default, for backends without servers, is true).
    fn is_available(&self, key: &str) -> bool {
        let _ = key;
        true
    }

    /// Counters of mark-downs and probes.
    fn health(&self) -> CacheHealth {
        CacheHealth::default()
    }
}

/// Appends of ids to nodes, each followed by a CAS-only read of the same key, in one
/// batch. Both backends answer `NotStored` alike for an append to a key that is not
/// cached (harmless: its next fill reads the database) and for one that would grow
/// the node past the largest value the cache stores, where the old node stays
/// cached *without* the id (K11). The read tells the two apart without another
/// round trip; [`refused_appends`] reads the replies.
pub(crate) fn checked_appends<'a>(appends: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> Vec<CacheOp<'a>> {
    appends.into_iter().flat_map(|(key, value)| [CacheOp::Append { key, value }, CacheOp::GetCas { key }]).collect()
}

/// The keys of a [`checked_appends`] batch whose append was refused while the node
/// is cached: those nodes lack an id they must list and are to be deleted (a fill
/// then reads the database). A key created between the two ops is deleted
/// needlessly, which is always safe.
pub(crate) fn refused_appends<'a>(ops: &[CacheOp<'a>], replies: &[Result<CacheReply, CacheError>]) -> Vec<&'a str> {
    let mut refused = Vec::new();
    for (pair, answers) in ops.chunks_exact(2).zip(replies.chunks_exact(2)) {
        if let (
            [CacheOp::Append { key, .. }, CacheOp::GetCas { .. }],
            [Ok(CacheReply::NotStored), Ok(CacheReply::Present { .. })],
        ) = (pair, answers)
        {
            refused.push(*key);
        }
    }
    refused
}
