//! The last batch of a fetch: fills under lease, repairs, lazy-removal write-backs
//! (all with CAS) and deletes; and what a lost CAS leaves to clean up.

use super::Replies;
use crate::cache::{CacheOp, CacheReply};
use crate::codec;
use crate::stats::Counters;

use super::Context;

/// What a lost CAS of the write-back batch leaves behind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OnLost {
    /// A fill under lease (or the repair of an unreadable value): the key now holds a
    /// placeholder with appends but no header, which would block every other fill
    /// until it expires, so it is deleted.
    Delete,
    /// A lazy-removal write-back of a complete node: the node that changed under it
    /// is still complete and readable (appends keep the header) and still lists every
    /// id it listed, so it is left alone (K9: deleting it let a fill from the database
    /// replace it while a writer's append to a row's new node was still in flight).
    Keep,
}

/// A CAS store of the write-back batch.
#[derive(Debug)]
struct CasStore {
    value: Vec<u8>,
    ttl: u32,
    cas: u64,
    on_lost: OnLost,
}

/// The write-back batch: CAS stores and deletes (`None`), sent together.
#[derive(Debug, Default)]
pub(crate) struct WriteBack {
    ops: Vec<(String, Option<CasStore>)>,
    /// Whether the nodes it stores are recorded as seen ([`WriteBack::lost`]).
    record_seen: bool,
}

impl WriteBack {
    /// Records the nodes it stores as seen: for a fetch over several nodes, which the
    /// next such fetch then need not read again.
    pub(crate) fn record_seen_nodes(&mut self, record: bool) {
        self.record_seen = record;
    }

    /// A fill under lease, or the repair of an unreadable value under its CAS
    /// (race rule 1: it stores only if no write touched the key since the miss).
    pub(crate) fn fill(&mut self, key: String, value: Vec<u8>, ttl: u32, cas: u64) {
        self.ops.push((key, Some(CasStore { value, ttl, cas, on_lost: OnLost::Delete })));
    }

    /// A lazy-removal write-back of a cleaned node, under the CAS read in this fetch
    /// (race rule 2: a concurrent append changes the CAS, so it survives).
    pub(crate) fn cleanup(&mut self, key: String, value: Vec<u8>, ttl: u32, cas: u64) {
        self.ops.push((key, Some(CasStore { value, ttl, cas, on_lost: OnLost::Keep })));
    }

    pub(crate) fn delete(&mut self, key: String) {
        self.ops.push((key, None));
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    pub(crate) fn ops(&self) -> Vec<CacheOp<'_>> {
        self.ops
            .iter()
            .map(|(key, store)| match store {
                Some(s) => CacheOp::Cas { key, value: &s.value, ttl: s.ttl, cas: s.cas },
                None => CacheOp::Delete { key },
            })
            .collect()
    }

    /// Counts the outcome of each CAS store and returns the keys to delete: the
    /// placeholders whose fill lost to a write, which now hold appends but no header
    /// and would block every other fill until they expire (the next reader fills
    /// them; fills re-read the database after taking their lease). A complete node
    /// whose clean-up lost is never deleted (see `OnLost::Keep`).
    ///
    /// A node it stored held exactly those bytes when its server stored them: the
    /// near cache records them as seen, as it records a node read, when asked to
    /// (a fetch over several nodes then need not read it again,
    /// `Scan::nodes_seen_before`).
    pub(crate) fn lost(&self, ctx: &Context, replies: &Replies) -> Vec<String> {
        let mut lost = Vec::new();
        for ((key, store), reply) in self.ops.iter().zip(replies) {
            let Some(store) = store else { continue };
            match reply {
                Ok(CacheReply::Stored) => {
                    Counters::add(&ctx.stats.fills_won, 1);
                    if self.record_seen && ctx.near.is_on() && codec::is_unique_node(&store.value) {
                        ctx.near.saw(crate::near::node_digest(key, &store.value));
                    }
                }
                Ok(CacheReply::Exists) if store.on_lost == OnLost::Delete => {
                    Counters::add(&ctx.stats.fills_lost, 1);
                    lost.push(key.clone());
                }
                _ => Counters::add(&ctx.stats.fills_lost, 1),
            }
        }
        lost
    }
}
