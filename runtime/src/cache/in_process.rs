//! An in-process cache with memcached's semantics for the ops memdex uses: CAS
//! tokens that change on every mutation, append only onto existing items, leases
//! with empty placeholders, TTL expiry and an LRU bound on the bytes held.
//!
//! The cache is split into shards, each behind its own mutex, so that threads
//! touching different keys rarely wait for each other. CAS tokens come from one
//! atomic counter shared by all shards, so a token is never reused for another item.
//!
//! Time comes from a [`Clock`], so tests can expire items without sleeping
//! ([`ManualClock`] with [`InProcessCache::with_clock`]).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::{Bytes, CacheBackend, CacheConfig, CacheError, CacheOp, CacheReply};

/// memcached's limit on the length of a key on the wire.
pub const MAX_KEY_LENGTH: usize = 250;

/// Bytes charged per item on top of its key and value, roughly memcached's item
/// header, so that a cache of many tiny items still evicts.
const ITEM_OVERHEAD: usize = 48;

/// Number of independently locked shards. A power of two well above the core
/// count of the machines memdex targets keeps lock contention low without
/// splitting the capacity into uselessly small pieces.
const SHARDS: usize = 16;

/// Why `key` cannot be used with memcached's text/meta protocol, if it cannot.
/// Both backends reject the same keys, so a program that works against the
/// in-process cache works against memcached.
pub(crate) fn invalid_key_reason(key: &str) -> Option<String> {
    if key.is_empty() {
        return Some("empty key".to_owned());
    }
    if key.len() > MAX_KEY_LENGTH {
        return Some(format!("key of {} bytes exceeds {MAX_KEY_LENGTH}", key.len()));
    }
    // No early exit: the whole-key fold vectorises, and every key of every batch
    // passes through here.
    if key.bytes().fold(false, |bad, byte| bad | (byte <= b' ') | (byte == 0x7f)) {
        return Some(format!("key {key:?} contains whitespace or control bytes"));
    }
    None
}

/// A source of the current time, as a duration since an arbitrary fixed origin.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The time elapsed since the clock's origin; it never goes backwards.
    fn now(&self) -> Duration;
}

/// The real monotonic clock.
#[derive(Debug)]
pub struct SystemClock {
    origin: Instant,
}

impl Default for SystemClock {
    fn default() -> Self {
        SystemClock { origin: Instant::now() }
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }
}

/// A clock that moves only when told to, for tests of expiry. Clones share the
/// same time.
#[derive(Clone, Debug, Default)]
pub struct ManualClock {
    millis: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock standing at its origin (zero) until [`ManualClock::advance`] moves it.
    pub fn new() -> Self {
        ManualClock::default()
    }

    /// Moves the time forward by `by`.
    pub fn advance(&self, by: Duration) {
        let millis = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.millis.fetch_add(millis, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Duration {
        Duration::from_millis(self.millis.load(Ordering::SeqCst))
    }
}

#[derive(Debug)]
struct Item {
    value: Bytes,
    cas: u64,
    /// `None` never expires.
    expires_at: Option<Duration>,
    /// False for a lease placeholder until a `Set` or `Cas` replaces it; appends
    /// do not fill it, so lease-getters keep seeing it as busy.
    filled: bool,
    /// The item's position in its shard's LRU order.
    last_used: u64,
}

impl Item {
    fn charge(key: &str, value: &[u8]) -> usize {
        key.len() + value.len() + ITEM_OVERHEAD
    }

    fn is_expired(&self, now: Duration) -> bool {
        self.expires_at.is_some_and(|at| now >= at)
    }
}

#[derive(Debug, Default)]
struct Shard {
    items: HashMap<Box<str>, Item>,
    /// `last_used` tick → key, oldest first.
    lru: BTreeMap<u64, Box<str>>,
    next_tick: u64,
    used_bytes: usize,
}

impl Shard {
    fn tick(&mut self) -> u64 {
        self.next_tick += 1;
        self.next_tick
    }

    /// The live item under `key`, marked as just used; an expired item is removed.
    fn live(&mut self, key: &str, now: Duration) -> Option<&mut Item> {
        let expired = self.items.get(key)?.is_expired(now);
        if expired {
            self.remove(key);
            return None;
        }
        let tick = self.tick();
        let item = self.items.get_mut(key)?;
        let old = std::mem::replace(&mut item.last_used, tick);
        if let Some(name) = self.lru.remove(&old) {
            self.lru.insert(tick, name);
        }
        self.items.get_mut(key)
    }

    fn remove(&mut self, key: &str) -> Option<Item> {
        let item = self.items.remove(key)?;
        self.lru.remove(&item.last_used);
        self.used_bytes -= Item::charge(key, &item.value);
        Some(item)
    }

    /// Stores a new item (replacing any old one), then evicts from the cold end
    /// until the shard fits `capacity`. False when the item alone does not fit.
    fn insert(
        &mut self,
        key: &str,
        value: Bytes,
        cas: u64,
        expires_at: Option<Duration>,
        filled: bool,
        capacity: usize,
    ) -> bool {
        self.remove(key);
        let charge = Item::charge(key, &value);
        if charge > capacity {
            return false;
        }
        let tick = self.tick();
        self.used_bytes += charge;
        self.lru.insert(tick, key.into());
        self.items.insert(key.into(), Item { value, cas, expires_at, filled, last_used: tick });
        self.evict(capacity);
        true
    }

    fn evict(&mut self, capacity: usize) {
        while self.used_bytes > capacity {
            let Some((_, coldest)) = self.lru.pop_first() else { break };
            if let Some(item) = self.items.remove(&coldest) {
                self.used_bytes -= Item::charge(&coldest, &item.value);
            }
        }
    }
}

/// The in-process cache. Cheap to share behind an `Arc`; every method takes `&self`.
pub struct InProcessCache {
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
    next_cas: AtomicU64,
    clock: Arc<dyn Clock>,
    config: CacheConfig,
    shard_capacity: usize,
}

impl fmt::Debug for InProcessCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InProcessCache")
            .field("shards", &self.shards.len())
            .field("clock", &self.clock)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl InProcessCache {
    /// A cache on the system's monotonic clock.
    pub fn new(config: CacheConfig) -> Self {
        InProcessCache::with_clock(config, Arc::new(SystemClock::default()))
    }

    /// A cache reading time from `clock` (a [`ManualClock`] in tests).
    pub fn with_clock(config: CacheConfig, clock: Arc<dyn Clock>) -> Self {
        let shards = (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect();
        InProcessCache {
            shards,
            hasher: RandomState::new(),
            // memcached's first CAS is 1; 0 never names an item.
            next_cas: AtomicU64::new(1),
            clock,
            shard_capacity: config.capacity_bytes / SHARDS,
            config,
        }
    }

    fn shard(&self, key: &str) -> MutexGuard<'_, Shard> {
        // The modulo keeps the index below SHARDS, so indexing cannot fail.
        let index = (self.hasher.hash_one(key) % SHARDS as u64) as usize;
        // A panic while holding a shard lock cannot leave an item half-written
        // (every mutation is a single insert or remove), so a poisoned lock is
        // still consistent and safe to keep using.
        self.shards[index].lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn new_cas(&self) -> u64 {
        self.next_cas.fetch_add(1, Ordering::Relaxed)
    }

    fn expiry(&self, now: Duration, ttl: u32) -> Option<Duration> {
        (ttl != 0).then(|| now + Duration::from_secs(u64::from(ttl)))
    }

    fn run_one(&self, op: &CacheOp<'_>) -> Result<CacheReply, CacheError> {
        let key = op.key();
        if let Some(reason) = invalid_key_reason(key) {
            return Err(CacheError::Protocol { server: self.describe(), reason });
        }
        let now = self.clock.now();
        let mut shard = self.shard(key);
        let reply = match *op {
            CacheOp::Get { lease, .. } => match (shard.live(key, now), lease) {
                (Some(item), None) => CacheReply::Hit { value: item.value.clone(), cas: item.cas },
                (Some(item), Some(_)) if item.filled => CacheReply::Hit { value: item.value.clone(), cas: item.cas },
                (Some(_), Some(_)) => CacheReply::LeaseBusy,
                (None, None) => CacheReply::Miss,
                (None, Some(ttl)) => {
                    let cas = self.new_cas();
                    let expires_at = self.expiry(now, ttl);
                    if shard.insert(key, Bytes::new(), cas, expires_at, false, self.shard_capacity) {
                        CacheReply::LeaseWon { cas }
                    } else {
                        // No room even for an empty placeholder: nobody can hold
                        // the lease, so the caller answers without filling.
                        CacheReply::LeaseBusy
                    }
                }
            },
            CacheOp::GetCas { .. } => match shard.live(key, now) {
                Some(item) => CacheReply::Present { cas: item.cas },
                None => CacheReply::Miss,
            },
            CacheOp::Set { value, ttl, .. } => {
                // Like the memcached backend, which refuses before sending, an
                // oversized value leaves whatever is stored untouched.
                if value.len() > self.config.max_value_size {
                    return Ok(CacheReply::NotStored);
                }
                let cas = self.new_cas();
                let expires_at = self.expiry(now, ttl);
                if shard.insert(key, Bytes::copy_from_slice(value), cas, expires_at, true, self.shard_capacity) {
                    CacheReply::Stored
                } else {
                    CacheReply::NotStored
                }
            }
            CacheOp::Cas { value, ttl, cas, .. } => match shard.live(key, now) {
                None => CacheReply::NotFound,
                Some(item) if item.cas != cas => CacheReply::Exists,
                Some(_) if value.len() > self.config.max_value_size => CacheReply::NotStored,
                Some(_) => {
                    let cas = self.new_cas();
                    let expires_at = self.expiry(now, ttl);
                    if shard.insert(key, Bytes::copy_from_slice(value), cas, expires_at, true, self.shard_capacity) {
                        CacheReply::Stored
                    } else {
                        CacheReply::NotStored
                    }
                }
            },
            CacheOp::Append { value, .. } => match shard.live(key, now) {
                None => CacheReply::NotStored,
                Some(item) if item.value.len() + value.len() > self.config.max_value_size => CacheReply::NotStored,
                Some(item) => {
                    let mut grown = Vec::with_capacity(item.value.len() + value.len());
                    grown.extend_from_slice(&item.value);
                    grown.extend_from_slice(value);
                    let (expires_at, filled) = (item.expires_at, item.filled);
                    let cas = self.new_cas();
                    if shard.insert(key, Bytes::from(grown), cas, expires_at, filled, self.shard_capacity) {
                        CacheReply::Stored
                    } else {
                        CacheReply::NotStored
                    }
                }
            },
            CacheOp::Delete { .. } => {
                let live = shard.live(key, now).is_some();
                shard.remove(key);
                if live { CacheReply::Deleted } else { CacheReply::NotFound }
            }
        };
        Ok(reply)
    }
}

impl CacheBackend for InProcessCache {
    fn run(&self, ops: &[CacheOp<'_>]) -> Vec<Result<CacheReply, CacheError>> {
        ops.iter().map(|op| self.run_one(op)).collect()
    }

    fn max_value_size(&self) -> usize {
        self.config.max_value_size
    }

    fn describe(&self) -> String {
        "in-process".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache_with(capacity_bytes: usize) -> (InProcessCache, ManualClock) {
        let clock = ManualClock::new();
        let config = CacheConfig { capacity_bytes, ..CacheConfig::default() };
        (InProcessCache::with_clock(config, Arc::new(clock.clone())), clock)
    }

    fn one(cache: &InProcessCache, op: CacheOp<'_>) -> CacheReply {
        cache.run(&[op]).remove(0).expect("the in-process cache only fails on invalid keys")
    }

    #[test]
    fn items_expire_by_the_clock() {
        let (cache, clock) = cache_with(1 << 20);
        assert_eq!(one(&cache, CacheOp::Set { key: "short", value: b"a", ttl: 2 }), CacheReply::Stored);
        assert_eq!(one(&cache, CacheOp::Set { key: "forever", value: b"b", ttl: 0 }), CacheReply::Stored);
        clock.advance(Duration::from_millis(1999));
        assert!(matches!(one(&cache, CacheOp::Get { key: "short", lease: None }), CacheReply::Hit { .. }));
        clock.advance(Duration::from_millis(1));
        assert_eq!(one(&cache, CacheOp::Get { key: "short", lease: None }), CacheReply::Miss);
        clock.advance(Duration::from_secs(1_000_000));
        assert!(matches!(one(&cache, CacheOp::Get { key: "forever", lease: None }), CacheReply::Hit { .. }));
    }

    #[test]
    fn an_expired_lease_can_be_won_again() {
        let (cache, clock) = cache_with(1 << 20);
        assert!(matches!(one(&cache, CacheOp::Get { key: "k", lease: Some(5) }), CacheReply::LeaseWon { .. }));
        assert_eq!(one(&cache, CacheOp::Get { key: "k", lease: Some(5) }), CacheReply::LeaseBusy);
        clock.advance(Duration::from_secs(5));
        assert!(matches!(one(&cache, CacheOp::Get { key: "k", lease: Some(5) }), CacheReply::LeaseWon { .. }));
    }

    #[test]
    fn least_recently_used_items_are_evicted_first() {
        // One shard's share of the capacity holds a few 100-byte items.
        let (cache, _) = cache_with(SHARDS * 4 * (100 + 8 + ITEM_OVERHEAD));
        let keys: Vec<String> = (0..400).map(|i| format!("key{i:05}")).collect();
        let value = [7u8; 100];
        for key in &keys {
            assert_eq!(one(&cache, CacheOp::Set { key, value: &value, ttl: 0 }), CacheReply::Stored);
            // Touching the first key after every write keeps it the most recent.
            assert!(matches!(one(&cache, CacheOp::Get { key: &keys[0], lease: None }), CacheReply::Hit { .. }));
        }
        let held = keys
            .iter()
            .filter(|key| matches!(one(&cache, CacheOp::Get { key, lease: None }), CacheReply::Hit { .. }))
            .count();
        assert!(held <= SHARDS * 4, "{held} items held over capacity");
        assert!(held >= SHARDS, "{held} items held: eviction too eager");
        assert!(matches!(one(&cache, CacheOp::Get { key: &keys[0], lease: None }), CacheReply::Hit { .. }));
        let used: usize = cache.shards.iter().map(|shard| shard.lock().map(|s| s.used_bytes).unwrap_or(0)).sum();
        assert!(used <= cache.config.capacity_bytes);
    }

    #[test]
    fn concurrent_appends_are_all_kept() {
        let (cache, _) = cache_with(1 << 20);
        assert_eq!(one(&cache, CacheOp::Set { key: "node", value: b"", ttl: 0 }), CacheReply::Stored);
        std::thread::scope(|scope| {
            for thread in 0..4u8 {
                let cache = &cache;
                scope.spawn(move || {
                    for _ in 0..250 {
                        let reply = one(cache, CacheOp::Append { key: "node", value: &[thread] });
                        assert_eq!(reply, CacheReply::Stored);
                    }
                });
            }
        });
        let CacheReply::Hit { value, .. } = one(&cache, CacheOp::Get { key: "node", lease: None }) else {
            unreachable!("the node was stored without expiry");
        };
        assert_eq!(value.len(), 1000);
        for thread in 0..4u8 {
            assert_eq!(value.iter().filter(|&&byte| byte == thread).count(), 250);
        }
    }
}
