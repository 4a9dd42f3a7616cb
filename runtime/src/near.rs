//! The near cache: decoded objects kept in this process, by model and id, each with
//! the etag of its encoding, bounded in bytes (`StoreBuilder::near_cache_capacity`,
//! 0 = off).
//!
//! It is content-addressed: an entry holds an object's encoded bytes' hash and those
//! bytes decoded, which is true forever; one version per object (the last kept), and
//! a lookup names the version it wants. Whether a kept version is *current*
//! is never the near cache's to say: a fetch serves a kept object only when every
//! index node listing the id (read in that same fetch) names exactly that version —
//! the condition under which it would serve the object read from memcached (see
//! `crate::codec` and `engine::scan`). A hot fetch whose ids are all kept at the
//! versions their nodes name is therefore one round trip: the nodes.
//!
//! Its condition does not rest on memcached's CAS numbers (a cold restart reuses
//! them, and a server started with `-C` has none): etags come from the bytes the
//! database's rows encode to, listed in nodes by the writes and fills themselves.
//!
//! It also keeps, per node, the rows a fetch of nodes alone served from it, by a digest
//! of the node's key and bytes: content-addressed too. The same bytes list the same
//! ids at the same versions, with the same number of verified entries, so a later
//! fetch that reads identical bytes, with every listed object still kept, would
//! list, look up, check and sort exactly the rows kept; it filters them and is done.
//! Any write that touches a row of the node appends to it, which changes its bytes.
//!
//! And it records which node bytes this process has read (or stored), each with
//! the tick of a logical clock at which its reply came in: a fetch over several
//! nodes whose every node it reads is one recorded before the fetch began need
//! not read their CAS again to know that it saw them all at one moment
//! (`engine::scan`, "seen before"). That rests on node bytes never coming back once
//! they changed — the nonce every whole write of a node draws (`crate::codec`) —
//! and, again, not on CAS numbers.

use std::any::{Any, TypeId};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use quick_cache::sync::Cache;
use quick_cache::{DefaultHashBuilder, Lifecycle, Weighter};

use memdex_grammar::Value;
use memdex_grammar::keys::KeySpace;

/// An object's identity within one fetch: an integer id as itself (no key built or
/// hashed as text), any other id by its cache key. Two ids are the same object
/// exactly when their cache keys are equal.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub(crate) enum ObjectId {
    Int(i64),
    Key(String),
}

impl ObjectId {
    pub(crate) fn of(keys: &KeySpace, id: &Value) -> ObjectId {
        match id {
            Value::Int(i) => ObjectId::Int(*i),
            // Text spelled exactly as `i64`'s `Display` spells an integer has that
            // integer's cache key, so it is the same object.
            Value::Text(t) => match t.parse::<i64>() {
                Ok(i) if i.to_string() == *t => ObjectId::Int(i),
                _ => ObjectId::Key(keys.object(id)),
            },
            _ => ObjectId::Key(keys.object(id)),
        }
    }
}

/// What a kept value is keyed by: an object by its model and its id (its version is
/// kept beside it, [`Kept::etag`]); a node's rows by their model and the digest of
/// the node's key and bytes ([`node_digest`]).
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub(crate) enum NearKey {
    Object {
        model: TypeId,
        id: ObjectId,
    },
    Node {
        model: TypeId,
        digest: u128,
    },
    /// A node's key and bytes ([`node_digest`]) that a fetch over several nodes read
    /// (the value: [`NearCache::tick`] once the reply was in).
    Seen {
        digest: u128,
    },
}

/// The digest a node's rows are kept by: its key and its bytes, 128 bits so that
/// two different nodes never share one in practice (a shared digest would serve one
/// node's rows for the other).
pub(crate) fn node_digest(key: &str, bytes: &[u8]) -> u128 {
    xxhash_rust::xxh3::xxh3_128_with_seed(bytes, xxhash_rust::xxh3::xxh3_64(key.as_bytes()))
}

/// A kept object: the decoded row, its version (an object's etag; 0 for the other
/// entries), and what it weighs (its encoded size, plus the entry's bookkeeping).
#[derive(Clone)]
struct Kept {
    row: Arc<dyn Any + Send + Sync>,
    etag: u64,
    weight: u32,
}

#[derive(Clone)]
struct ByWeight;

impl Weighter<NearKey, Kept> for ByWeight {
    fn weight(&self, _: &NearKey, kept: &Kept) -> u64 {
        u64::from(kept.weight)
    }
}

/// Counts the entries the bound pushed out (or never let in: one heavier than the
/// whole cache), so that `Stats::near_evictions` can tell an operator the capacity
/// is too small for the working set.
#[derive(Clone, Default)]
struct CountEvictions(Arc<AtomicU64>);

impl Lifecycle<NearKey, Kept> for CountEvictions {
    type RequestState = ();

    fn on_evict(&self, (): &mut (), _: NearKey, _: Kept) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// What the near cache holds right now and what its bound has pushed out, for
/// [`crate::Stats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct NearGauges {
    /// Bytes charged to the kept entries (their encoded sizes plus overhead).
    pub(crate) bytes: u64,
    /// Entries kept (objects, nodes' rows, and the node bytes seen).
    pub(crate) entries: u64,
    /// Entries evicted for room since the store was built.
    pub(crate) evictions: u64,
}

/// Bytes charged per entry on top of the object's encoded size: the key, the `Arc`,
/// the decoded struct's own allocations (a rough, deliberately generous figure).
const ENTRY_OVERHEAD: u32 = 96;

/// The near cache of one store.
pub(crate) struct NearCache {
    kept: Option<Cache<NearKey, Kept, ByWeight, DefaultHashBuilder, CountEvictions>>,
    evictions: CountEvictions,
    /// A logical clock: each fetch over several nodes takes a tick before it sends
    /// anything, and each node it then reads is recorded with a later tick, so that
    /// "recorded before my tick" means "read by a reply that came in before I sent".
    ticks: AtomicU64,
}

impl std::fmt::Debug for NearCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kept {
            Some(cache) => f.debug_struct("NearCache").field("bytes", &cache.weight()).finish(),
            None => f.write_str("NearCache(off)"),
        }
    }
}

impl NearCache {
    /// A near cache of at most `capacity` bytes; 0 turns it off.
    pub(crate) fn new(capacity: usize) -> NearCache {
        let evictions = CountEvictions::default();
        let kept = (capacity > 0).then(|| {
            // A first guess of how many objects fit, for the table's initial size.
            let estimated = (capacity / 512).clamp(16, 1 << 20);
            Cache::with(estimated, capacity as u64, ByWeight, DefaultHashBuilder::default(), evictions.clone())
        });
        NearCache { kept, evictions, ticks: AtomicU64::new(0) }
    }

    /// Its size now and its evictions so far (all zero when it is off).
    pub(crate) fn gauges(&self) -> NearGauges {
        let Some(cache) = &self.kept else { return NearGauges::default() };
        NearGauges {
            bytes: cache.weight(),
            entries: cache.len() as u64,
            evictions: self.evictions.0.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn is_on(&self) -> bool {
        self.kept.is_some()
    }

    /// The kept object `id` of model `T` at version `etag`.
    pub(crate) fn get<T: Clone + Send + Sync + 'static>(&self, id: &ObjectId, etag: u64) -> Option<T> {
        let kept = self.kept.as_ref()?.get(&NearKey::Object { model: TypeId::of::<T>(), id: id.clone() })?;
        if kept.etag != etag {
            return None;
        }
        kept.row.downcast_ref::<T>().cloned()
    }

    /// The kept object `id` of model `T` at whatever version was kept last: never
    /// served (nothing says it is current), only what a write believes its row
    /// holds before its guard checks (`engine::write::Attempts`).
    pub(crate) fn latest<T: Clone + Send + Sync + 'static>(&self, id: &ObjectId) -> Option<T> {
        let kept = self.kept.as_ref()?.get(&NearKey::Object { model: TypeId::of::<T>(), id: id.clone() })?;
        kept.row.downcast_ref::<T>().cloned()
    }

    /// Drops the kept object `id` of the model with this `TypeId`: this process just
    /// wrote it, so what it kept is older than what it wrote.
    pub(crate) fn forget(&self, model: TypeId, id: ObjectId) {
        if let Some(cache) = &self.kept {
            cache.remove(&NearKey::Object { model, id });
        }
    }

    /// The rows kept for the node whose key and bytes have this digest, sorted by key.
    pub(crate) fn node_rows<T: Send + Sync + 'static>(&self, digest: u128) -> Option<Arc<Vec<T>>> {
        let kept = self.kept.as_ref()?.get(&NearKey::Node { model: TypeId::of::<T>(), digest })?;
        kept.row.downcast::<Vec<T>>().ok()
    }

    /// Keeps the rows a fetch of one node served, sorted by key, under the digest of
    /// the node's key and bytes; `encoded_len` is what their encodings take.
    pub(crate) fn keep_node_rows<T: Send + Sync + 'static>(&self, digest: u128, rows: Vec<T>, encoded_len: usize) {
        self.insert(NearKey::Node { model: TypeId::of::<T>(), digest }, Arc::new(rows), 0, encoded_len);
    }

    /// The next tick of the near cache's clock ([`NearCache::seen_before`]).
    pub(crate) fn tick(&self) -> u64 {
        // SeqCst: a tick taken after another is ordered after everything the other's
        // thread did before taking it, whichever thread took it.
        self.ticks.fetch_add(1, Ordering::SeqCst)
    }

    /// Whether a node with this digest of key and bytes was recorded
    /// ([`NearCache::saw`]) before tick `since` was taken.
    pub(crate) fn seen_before(&self, digest: u128, since: u64) -> bool {
        let Some(kept) = self.kept.as_ref().and_then(|cache| cache.get(&NearKey::Seen { digest })) else {
            return false;
        };
        kept.row.downcast_ref::<u64>().is_some_and(|&at| at < since)
    }

    /// Records that a reply that came in just now held a node with this digest of key
    /// and bytes; a record already there is older, and stays.
    pub(crate) fn saw(&self, digest: u128) {
        let Some(cache) = &self.kept else { return };
        if cache.get(&NearKey::Seen { digest }).is_none() {
            self.insert(NearKey::Seen { digest }, Arc::new(self.tick()), 0, 0);
        }
    }

    /// Keeps `row`, whose encoding (`encoded_len` bytes long) hashes to `etag`, in
    /// place of any version of it kept before.
    pub(crate) fn keep<T: Send + Sync + 'static>(&self, id: ObjectId, etag: u64, row: T, encoded_len: usize) {
        self.insert(NearKey::Object { model: TypeId::of::<T>(), id }, Arc::new(row), etag, encoded_len);
    }

    /// Keeps `row` under `key` with its version `etag`, weighing what its encoding
    /// takes plus the entry's own overhead (nothing when the near cache is off).
    fn insert(&self, key: NearKey, row: Arc<dyn Any + Send + Sync>, etag: u64, encoded_len: usize) {
        let Some(cache) = &self.kept else { return };
        let weight = u32::try_from(encoded_len).unwrap_or(u32::MAX).saturating_add(ENTRY_OVERHEAD);
        cache.insert(key, Kept { row, etag, weight });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_objects_are_found_by_model_id_and_version_only() {
        let near = NearCache::new(1 << 20);
        near.keep(ObjectId::Int(1), 7, String::from("one at 7"), 8);
        assert_eq!(near.get::<String>(&ObjectId::Int(1), 7).as_deref(), Some("one at 7"));
        assert_eq!(near.get::<String>(&ObjectId::Int(1), 8), None, "another version");
        assert_eq!(near.get::<String>(&ObjectId::Int(2), 7), None, "another id");
        assert_eq!(near.get::<u64>(&ObjectId::Int(1), 7), None, "another model");
        // One version per object: the last kept, which a write may look at.
        near.keep(ObjectId::Int(1), 8, String::from("one at 8"), 8);
        assert_eq!(near.get::<String>(&ObjectId::Int(1), 7), None, "replaced");
        assert_eq!(near.get::<String>(&ObjectId::Int(1), 8).as_deref(), Some("one at 8"));
        assert_eq!(near.latest::<String>(&ObjectId::Int(1)).as_deref(), Some("one at 8"));
        assert_eq!(near.latest::<u64>(&ObjectId::Int(1)), None, "another model");
        near.forget(TypeId::of::<u64>(), ObjectId::Int(1));
        assert_eq!(near.latest::<String>(&ObjectId::Int(1)).as_deref(), Some("one at 8"), "another model's");
        near.forget(TypeId::of::<String>(), ObjectId::Int(1));
        assert_eq!(near.latest::<String>(&ObjectId::Int(1)), None);
        let off = NearCache::new(0);
        off.keep(ObjectId::Int(1), 7, String::from("x"), 1);
        assert_eq!(off.get::<String>(&ObjectId::Int(1), 7), None);
        assert!(!off.is_on());
    }

    #[test]
    fn node_rows_are_found_by_model_and_the_digest_of_key_and_bytes_only() {
        let near = NearCache::new(1 << 20);
        let digest = node_digest("ns:item:category_id=5", b"entries");
        near.keep_node_rows(digest, vec![String::from("a"), String::from("b")], 2);
        assert_eq!(near.node_rows::<String>(digest).as_deref(), Some(&vec![String::from("a"), String::from("b")]));
        assert_eq!(near.node_rows::<u64>(digest), None, "another model");
        assert_eq!(near.node_rows::<String>(node_digest("ns:item:category_id=5", b"entries2")), None, "other bytes");
        assert_eq!(near.node_rows::<String>(node_digest("ns:item:category_id=6", b"entries")), None, "another node");
        assert_eq!(near.get::<String>(&ObjectId::Int(5), 0), None, "objects and nodes never meet");
        let off = NearCache::new(0);
        off.keep_node_rows(digest, vec![1u8], 1);
        assert_eq!(off.node_rows::<u8>(digest), None);
    }

    #[test]
    fn the_bound_is_in_bytes() {
        let near = NearCache::new(64 * 1024);
        for id in 0..10_000 {
            near.keep(ObjectId::Int(id), 1, vec![0u8; 200], 200);
        }
        let kept = (0..10_000).filter(|&id| near.get::<Vec<u8>>(&ObjectId::Int(id), 1).is_some()).count();
        assert!(kept > 0 && kept < 400, "64 KiB holds about 220 objects of ~300 bytes, kept {kept}");
        // What it holds and what it pushed out add up to what it was given.
        let gauges = near.gauges();
        assert_eq!(gauges.entries, kept as u64);
        assert_eq!(gauges.entries + gauges.evictions, 10_000);
        assert!(gauges.bytes <= 64 * 1024 && gauges.bytes >= gauges.entries * 296, "{gauges:?}");
    }

    #[test]
    fn the_gauges_count_what_is_kept_and_an_entry_too_heavy_to_keep() {
        let near = NearCache::new(1 << 20);
        near.keep(ObjectId::Int(1), 7, String::from("one"), 100);
        near.keep_node_rows(node_digest("k", b"b"), vec![1u8, 2], 50);
        assert_eq!(
            near.gauges(),
            NearGauges { bytes: 100 + 50 + 2 * u64::from(ENTRY_OVERHEAD), entries: 2, evictions: 0 }
        );
        // A row heavier than the whole cache is never kept, and says so.
        near.keep(ObjectId::Int(2), 7, String::from("huge"), 2 << 20);
        assert_eq!(near.get::<String>(&ObjectId::Int(2), 7), None);
        assert_eq!(near.gauges().evictions, 1);
        assert_eq!(NearCache::new(0).gauges(), NearGauges::default());
    }
}
