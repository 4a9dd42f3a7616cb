//! The state of one index scan: the nodes and objects a fetch reads, what each
//! reply said about them, and the pure steps between round trips (no I/O here; the
//! phases that send things live in `fetch`).

use std::collections::HashMap;

use memdex_grammar::Dialect;
use memdex_grammar::Value;
use memdex_grammar::keys::KeySpace;
use memdex_grammar::plan::{BindError, NodeRef, Plan, bind, node_matches, node_of_row};
use memdex_grammar::sql::{self, SqlQuery};

use super::Replies;
use super::window::Window;
use super::writeback::WriteBack;
use crate::cache::{CacheError, CacheOp, CacheReply};
use crate::codec::{self, Entry, NodeDecode};
use crate::error::Error;
use crate::model::Model;
use crate::near::ObjectId;
use crate::prepared::Filter;
use crate::stats::Counters;

use super::{Context, Outcome, sort_by_key};

/// The per-fetch maps hash short keys and integers from the fetch's own nodes;
/// SipHash's strength buys nothing there, and it was a tenth of a hot fetch.
pub(crate) type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

pub(crate) fn fast_map<K, V>(capacity: usize) -> FastMap<K, V> {
    HashMap::with_capacity_and_hasher(capacity, foldhash::fast::RandomState::default())
}

/// Marks slots as seen per pass without clearing between passes: a slot is seen
/// in the current pass when it holds the pass's number.
struct Seen {
    pass: u32,
    marks: Vec<u32>,
}

impl Seen {
    fn new(slots: usize) -> Seen {
        Seen { pass: 0, marks: vec![0; slots] }
    }

    fn next_pass(&mut self) {
        self.pass += 1;
    }

    /// True the first time `slot` is seen in this pass.
    fn first(&mut self, slot: usize) -> bool {
        let fresh = self.marks[slot] != self.pass;
        self.marks[slot] = self.pass;
        fresh
    }
}

/// The most nodes a snapshot names one by one, each node's condition OR-ed to the
/// next: SQLite refuses expressions nested deeper than 1,000, and every database caps
/// the values one statement binds.
const MAX_SNAPSHOT_NODES: usize = 256;

/// The most prefix nodes a wide snapshot names one by one (a prefix node has no
/// list form); a query with more, one of whose nodes misses, is answered by the
/// database (one statement too, so one snapshot).
const MAX_WIDE_PREFIX_NODES: usize = 64;

/// The fewest objects round trip 2 reads without leases (see
/// [`Scan::objects_likely_cold`]).
const MIN_PLAIN_OBJECT_READS: usize = 4;

/// Keys bound in one `WHERE key IN (…)`.
pub(crate) const MAX_KEYS_PER_QUERY: usize = 10_000;

/// A node as this fetch saw it.
pub(crate) struct NodeState {
    pub(crate) key: String,
    node: NodeRef,
    /// Its entries: each id with the etag of the version the node was told of.
    entries: Vec<Entry>,
    /// An ordered index's order column (its nodes keep each verified id's value).
    order: Option<usize>,
    /// The order values of `entries` (parallel) in an ordered node, else empty.
    orders: Vec<Option<Value>>,
    /// A page read from this ordered node's bytes alone (`Window::page_from`): the
    /// bytes, decoded whole only if the fetch must read every object after all.
    raw: Option<bytes::Bytes>,
    /// That page's entries, each with its order value, in page order.
    page: Option<Vec<(Value, Entry)>>,
    /// How many of `entries` (the first ones) a fill or a write-back verified; the
    /// rest were appended since, possibly late (`codec`, K12).
    verified: usize,
    /// The object slot of each entry (parallel to `entries`), so that each object
    /// key is built and hashed once per fetch.
    slots: Vec<usize>,
    /// CAS of the node as read from the cache, when it was a complete node: the
    /// lazy-removal write-back must match it, so a concurrent append survives
    /// (race rule 2).
    read_cas: Option<u64>,
    /// CAS of the lease placeholder this fetch won, or of an unreadable value to
    /// overwrite: the fill stores only if nobody touched the key since (race rule 1).
    fill_cas: Option<u64>,
    /// The digest of the node's key and bytes as read, when the fetch reads this node
    /// alone and the near cache is on: what the rows it serves are kept by
    /// ([`Scan::keep_node_rows`]).
    digest: Option<u128>,
}

impl NodeState {
    /// The type of an ordered node's order column (`None` for an unordered node).
    fn order_type(&self, schema: &memdex_grammar::Schema) -> Option<memdex_grammar::Type> {
        self.order.and_then(|c| schema.columns.get(c)).map(|c| c.ty)
    }
}

/// What the nodes listing an object say of its version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Listed {
    /// No node of this fetch lists it (a key lookup).
    Unlisted,
    /// Every entry names this version.
    Version(u64),
    /// Entries name several versions, or one that is unknown: the row changed
    /// since a node was filled, and only the database says which version is current.
    Changed,
}

impl Listed {
    fn with(self, etag: u64) -> Listed {
        match self {
            _ if etag == codec::UNKNOWN_ETAG => Listed::Changed,
            Listed::Unlisted => Listed::Version(etag),
            Listed::Version(e) if e == etag => self,
            _ => Listed::Changed,
        }
    }
}

/// An object as this fetch saw it.
struct ObjectState<T> {
    /// Where its cache key is in the scan's key buffer: one buffer for every object
    /// key of the fetch instead of an allocation per object.
    key: std::ops::Range<usize>,
    id: Value,
    row: Option<T>,
    /// The etag of the cached bytes the row was decoded from (a hit), or of the
    /// row's encoding (read from the database).
    etag: Option<u64>,
    listed: Listed,
    /// A node lists it by an appended entry, not yet verified: its cached bytes are
    /// read even when the near cache keeps the version named (K12).
    appended: bool,
    /// The row came from the database during this fetch (evidence for lazy removal).
    from_db: bool,
    /// The row came from this process's near cache (nothing to keep, nothing read).
    from_near: bool,
    /// The etag of the cached copy, kept when the database is asked about a row the
    /// cache had (to delete a copy the database shows is stale).
    cached_etag: Option<u64>,
    /// The row's bytes as memdex encodes it, when read from the database (to fill
    /// the cache and to spell its entries).
    encoded: Option<Vec<u8>>,
    fill_cas: Option<u64>,
    needs_db: bool,
}

impl<T> ObjectState<T> {
    /// What the near cache counts this object's row as weighing: its encoding when
    /// the fetch has it (read from the database), else a typical object's size.
    fn kept_len(&self) -> usize {
        self.encoded.as_ref().map_or(256, Vec::len)
    }
}

/// Every node and object of one fetch.
pub(crate) struct Scan<T> {
    keys: std::sync::Arc<KeySpace>,
    /// The shape tag of this model's encoded objects.
    tag: u32,
    pub(crate) nodes: Vec<NodeState>,
    /// The nodes of each disjunct (slots in `nodes`).
    disjunct_nodes: Vec<Vec<usize>>,
    /// The objects each disjunct names directly (key lookups; slots in `objects`).
    direct_slots: Vec<Vec<usize>>,
    objects: Vec<ObjectState<T>>,
    object_slot: FastMap<ObjectId, usize>,
    key_text: String,
    /// Objects of key lookups, read in round trip 1 with the nodes.
    direct_count: usize,
    /// Whether round trip 2 re-reads the nodes' CAS (several cached nodes, not all
    /// of them seen unchanged before the fetch began).
    recheck: bool,
    /// The near cache's tick taken when the fetch was bound, before it sent anything,
    /// when it reads several nodes ([`Scan::nodes_seen_before`]).
    since: Option<u64>,
    /// Every node round trip 1 read is one this process read, byte for byte, in a
    /// reply that came in before `since`: the nodes' re-read is not needed.
    seen_before: bool,
    /// The objects round trip 2 reads (those neither known from round trip 1 nor
    /// kept in the near cache).
    round_two: Vec<usize>,
    /// The objects round trip 2 read without leases and did not find: read again,
    /// taking leases, in a round of their own.
    lease_round: Vec<usize>,
    /// The page to read from an ordered node (`window`), when the query has one.
    window: Option<Window>,
    /// The page's objects, in page order, once the node ordered itself.
    page: Option<Vec<usize>>,
    /// The rows the near cache kept for each node's bytes, when it had them all: the
    /// answer, before the filter ([`Scan::read_round_one`]).
    node_rows: Option<Vec<std::sync::Arc<Vec<T>>>>,
}

impl<T: Model> Scan<T> {
    /// Binds every disjunct to its nodes (or, for key lookups, its objects).
    /// `Ok(None)`: this query cannot be bound to nodes at run time (a prefix
    /// pattern shorter than the index, too many nodes); the database answers it.
    pub(crate) fn bind(
        ctx: &Context,
        plan: &Plan,
        params: &dyn memdex_grammar::Params,
    ) -> Result<Option<Scan<T>>, Error> {
        let schema = T::schema();
        let keys = ctx.keyspace::<T>();
        let mut nodes: Vec<NodeState> = Vec::new();
        let mut node_slot: FastMap<String, usize> = fast_map(plan.disjuncts.len());
        let mut disjunct_nodes = Vec::with_capacity(plan.disjuncts.len());
        let mut direct_ids: Vec<Vec<Value>> = Vec::with_capacity(plan.disjuncts.len());
        for d in &plan.disjuncts {
            let bound = match bind(schema, d, params, ctx.settings.max_nodes_per_query) {
                Ok(bound) => bound,
                Err(e @ (BindError::Unbound(_) | BindError::NotAList(_))) => return Err(Error::Param(e.to_string())),
                Err(e) => {
                    tracing::debug!("answering from the database: {e}");
                    return Ok(None);
                }
            };
            // Sized up front: on the two-round-trip path each growth was a
            // `malloc` the profile saw.
            let mut mine = Vec::with_capacity(bound.len());
            nodes.reserve(bound.len());
            let mut direct = Vec::new();
            for node in bound {
                if node.index.is_none() {
                    direct.extend(node.values.into_iter().next());
                    continue;
                }
                let key = keys.node(schema, &node);
                let order = node.index.and_then(|i| schema.indexes.get(i)).and_then(|ix| ix.order).map(|o| o.column);
                let slot = *node_slot.entry(key.clone()).or_insert_with(|| {
                    nodes.push(NodeState {
                        key,
                        node,
                        entries: Vec::new(),
                        order,
                        orders: Vec::new(),
                        raw: None,
                        page: None,
                        verified: 0,
                        slots: Vec::new(),
                        read_cas: None,
                        fill_cas: None,
                        digest: None,
                    });
                    nodes.len() - 1
                });
                mine.push(slot);
            }
            disjunct_nodes.push(mine);
            direct_ids.push(direct);
        }
        let mut scan = Scan {
            keys,
            tag: schema.schema_hash(),
            nodes,
            disjunct_nodes,
            direct_slots: Vec::new(),
            objects: Vec::new(),
            object_slot: fast_map(direct_ids.iter().map(Vec::len).sum()),
            key_text: String::new(),
            direct_count: 0,
            recheck: false,
            since: None,
            seen_before: false,
            round_two: Vec::new(),
            lease_round: Vec::new(),
            window: None,
            page: None,
            node_rows: None,
        };
        if scan.nodes.len() > 1 && ctx.near.is_on() {
            // Before anything is sent (this scan's first batch comes after `bind`).
            scan.since = Some(ctx.near.tick());
        }
        // Objects in first-seen order, each once; its key is built once per fetch.
        scan.direct_slots = direct_ids.iter().map(|ids| ids.iter().map(|id| scan.want(id)).collect()).collect();
        scan.direct_count = scan.objects.len();
        Ok(Some(scan))
    }

    /// A scan of nothing.
    pub(crate) fn empty() -> Scan<T> {
        Scan {
            keys: std::sync::Arc::new(KeySpace::new("", T::schema(), 0)),
            tag: T::schema().schema_hash(),
            nodes: Vec::new(),
            disjunct_nodes: Vec::new(),
            direct_slots: Vec::new(),
            objects: Vec::new(),
            object_slot: fast_map(0),
            key_text: String::new(),
            direct_count: 0,
            recheck: false,
            since: None,
            seen_before: false,
            round_two: Vec::new(),
            lease_round: Vec::new(),
            window: None,
            page: None,
            node_rows: None,
        }
    }

    /// Reads only `window` of the node, should it order itself (`window`): a query
    /// of one node and no key lookups.
    pub(crate) fn set_window(&mut self, window: Window) {
        if self.nodes.len() == 1 && self.objects.is_empty() {
            self.window = Some(window);
        }
    }

    /// When the one node was read from the cache and orders itself, gives the
    /// page's objects their slots and makes round trip 2 read only them; false when
    /// the whole node must be read ([`Scan::list_objects`]).
    pub(crate) fn list_window(&mut self) -> bool {
        let (Some(_), [n]) = (&self.window, self.nodes.as_slice()) else { return false };
        let Some(page) = &n.page else { return false };
        let entries: Vec<Entry> = page.iter().map(|(_, entry)| entry.clone()).collect();
        let slots: Vec<usize> = entries
            .iter()
            .map(|(id, etag)| {
                let slot = self.want(id);
                let o = &mut self.objects[slot];
                o.listed = o.listed.with(*etag);
                slot
            })
            .collect();
        self.round_two = slots.clone();
        self.page = Some(slots);
        true
    }

    /// The page read from an ordered node: every object of it at the version the
    /// node names, and matching (the node's word, checked again). `None` when one
    /// missed or changed since the node was read: [`Scan::abandon_window`].
    pub(crate) fn window_answer(&mut self, ctx: &Context, filter: &Filter<'_, T>) -> Option<Vec<T>> {
        let page = self.page.as_ref()?;
        let usable = page.iter().all(|&slot| {
            let o = &self.objects[slot];
            let current = matches!(o.listed, Listed::Version(etag) if o.etag == Some(etag));
            current && !o.needs_db && o.row.as_ref().is_some_and(|row| filter.matches(row))
        });
        if !usable {
            return None;
        }
        self.keep_near(ctx);
        let page = self.page.take().unwrap_or_default();
        Some(page.iter().filter_map(|&slot| self.objects[slot].row.take()).collect())
    }

    /// Goes on as an unordered scan after a page read: every listed object, round
    /// trip 2 reading those the page did not. True when it has anything to read.
    /// `None` when the node's bytes, read for the page alone, do not decode whole
    /// (damage outside the page): the database answers.
    pub(crate) fn abandon_window(&mut self) -> Option<bool> {
        let read = self.page.take().unwrap_or_default();
        self.window = None;
        let schema = T::schema();
        for n in &mut self.nodes {
            let Some(raw) = n.raw.take() else { continue };
            let order_type = n.order_type(schema);
            let node = codec::decode_node(&raw, schema.key_column().ty, order_type).ok()?;
            (n.entries, n.orders, n.verified) = (node.entries, node.orders, node.verified);
        }
        self.list_objects();
        self.round_two.retain(|slot| !read.contains(slot));
        Some(!self.round_two.is_empty())
    }

    /// Whether this scan reads a page of an ordered node.
    pub(crate) fn paging(&self) -> bool {
        self.page.is_some()
    }

    /// The slot of the object with key `id`, added on first sight.
    fn want(&mut self, id: &Value) -> usize {
        let Scan { objects, object_slot, key_text, keys, .. } = self;
        *object_slot.entry(ObjectId::of(keys, id)).or_insert_with(|| {
            let start = key_text.len();
            keys.push_object(id, key_text);
            objects.push(ObjectState {
                key: start..key_text.len(),
                id: id.clone(),
                row: None,
                etag: None,
                listed: Listed::Unlisted,
                appended: false,
                from_db: false,
                from_near: false,
                cached_etag: None,
                encoded: None,
                fill_cas: None,
                needs_db: false,
            });
            objects.len() - 1
        })
    }

    fn object_key(&self, slot: usize) -> &str {
        &self.key_text[self.objects[slot].key.clone()]
    }

    /// Whether this scan reads one node and nothing else (no key lookups, no page of
    /// an ordered node): one the near cache may answer from the rows it keeps for the
    /// node's bytes (several nodes need more: [`Scan::kept_rows`]).
    fn reads_one_node(&self) -> bool {
        self.nodes.len() == 1 && self.direct_count == 0 && self.window.is_none()
    }

    /// The rows the near cache kept for each node's bytes, when round trip 1 found
    /// them all ([`Scan::read_round_one`]): the fetch answers from them alone.
    pub(crate) fn take_node_rows(&mut self) -> Option<Vec<std::sync::Arc<Vec<T>>>> {
        self.node_rows.take()
    }

    /// Keeps each node's rows under its digest, when every object it lists was
    /// served at exactly the version the node names (from the near cache or the
    /// cache's bytes), every entry verified, nothing in doubt: the rows any fetch
    /// reading the same bytes would list, check and serve. Sorted by key. Only for
    /// a fetch of nodes alone (no key lookups, no page of an ordered node).
    pub(crate) fn keep_node_rows(&self, ctx: &Context) {
        if self.direct_count > 0 || self.window.is_some() {
            return;
        }
        let clean = |o: &ObjectState<T>| {
            o.row.is_some() && !o.from_db && !o.needs_db && matches!(o.listed, Listed::Version(e) if o.etag == Some(e))
        };
        for n in &self.nodes {
            let Some(digest) = n.digest else { continue };
            let whole = n.read_cas.is_some() && n.verified == n.entries.len();
            let mut slots = n.slots.clone();
            slots.sort_unstable();
            slots.dedup();
            if !whole || !slots.iter().all(|&slot| clean(&self.objects[slot])) {
                continue;
            }
            let mut rows: Vec<T> = slots.iter().filter_map(|&slot| self.objects[slot].row.clone()).collect();
            sort_by_key(&mut rows);
            let weight = slots.iter().map(|&slot| self.objects[slot].kept_len()).sum();
            ctx.near.keep_node_rows(digest, rows, weight);
        }
    }

    /// Whether [`Scan::snapshot_query`] can read these nodes in one statement.
    pub(crate) fn snapshot_possible(&self) -> bool {
        let schema = T::schema();
        self.nodes.len() <= MAX_SNAPSHOT_NODES
            || self
                .nodes
                .iter()
                .filter(|n| n.node.index.and_then(|i| schema.indexes.get(i)).is_some_and(|ix| ix.prefix.is_some()))
                .count()
                <= MAX_WIDE_PREFIX_NODES
    }

    /// Round trip 1: every node, plus the objects of key lookups.
    pub(crate) fn round_one(&self, lease: Option<u32>) -> Vec<CacheOp<'_>> {
        let mut ops: Vec<CacheOp<'_>> = self.nodes.iter().map(|n| CacheOp::Get { key: &n.key, lease }).collect();
        ops.extend((0..self.direct_count).map(|slot| CacheOp::Get { key: self.object_key(slot), lease }));
        ops
    }

    /// Reads round trip 1's replies; true when every node was a complete, readable
    /// node.
    pub(crate) fn read_round_one(&mut self, ctx: &Context, replies: &mut Replies) -> bool {
        let at = self.nodes.len().min(replies.len());
        let (node_replies, object_replies) = replies.split_at_mut(at);
        let mut all_hit = node_replies.len() == self.nodes.len();
        let schema = T::schema();
        if ctx.near.is_on() && (self.since.is_some() || self.reads_one_node()) {
            self.note_digests(node_replies);
            if let Some(since) = self.since {
                self.seen_before = all_hit && self.nodes_seen_before(ctx, since);
                if self.seen_before {
                    Counters::add(&ctx.stats.node_sets_seen, 1);
                }
            }
            if let Some(rows) = self.kept_rows(ctx) {
                self.node_rows = Some(rows);
                return true;
            }
        }
        for (n, reply) in self.nodes.iter_mut().zip(node_replies) {
            if let Some(window) = &self.window {
                if read_page(ctx, schema, window, n, reply) {
                    continue;
                }
            }
            all_hit &= read_node(ctx, schema, n, reply);
        }
        if self.since.is_some() {
            // For the fetches after this one: every node read whole (bytes that
            // decode), whether or not the others hit.
            for n in self.nodes.iter().filter(|n| n.read_cas.is_some()) {
                if let Some(digest) = n.digest {
                    ctx.near.saw(digest);
                }
            }
        }
        read_objects(ctx, self.tag, &mut self.objects, 0..self.direct_count, object_replies);
        all_hit
    }

    /// Gives each node read whole the digest of its key and bytes: what its rows are
    /// kept by, and, over several nodes, what says it was seen before — there only for
    /// bytes that name one state of the node ([`codec::is_unique_node`]).
    fn note_digests(&mut self, replies: &[Result<CacheReply, CacheError>]) {
        let several = self.nodes.len() > 1;
        for (n, reply) in self.nodes.iter_mut().zip(replies) {
            n.digest = match reply {
                Ok(CacheReply::Hit { value, .. }) if !several || codec::is_unique_node(value) => {
                    Some(crate::near::node_digest(&n.key, value))
                }
                _ => None,
            };
        }
    }

    /// Whether every node was read, byte for byte, by a reply that came in before
    /// tick `since` (one taken before this fetch sent anything).
    ///
    /// Why that is as good as reading the nodes again: node X read now at moment c(X)
    /// and before at e(X), with the same bytes, did not change in between; every e(X)
    /// comes before every c(Y) (each earlier reply was in before this fetch sent), so
    /// at the first c(Y) every node held exactly what this fetch read.
    fn nodes_seen_before(&self, ctx: &Context, since: u64) -> bool {
        self.nodes.iter().all(|n| n.digest.is_some_and(|d| ctx.near.seen_before(d, since)))
    }

    /// The rows the near cache kept for every node's bytes, counted as node hits,
    /// when it has them all: over several nodes only once they were all seen before
    /// (one moment), and only when no id is in two of them (its two rows could be two
    /// versions; the nodes' entries then go through the usual checks).
    fn kept_rows(&self, ctx: &Context) -> Option<Vec<std::sync::Arc<Vec<T>>>> {
        if self.direct_count > 0 || self.window.is_some() || (self.nodes.len() > 1 && !self.seen_before) {
            return None;
        }
        let kept: Vec<std::sync::Arc<Vec<T>>> =
            self.nodes.iter().map(|n| n.digest.and_then(|d| ctx.near.node_rows::<T>(d))).collect::<Option<_>>()?;
        if kept.len() > 1 {
            let mut ids = fast_map(kept.iter().map(|rows| rows.len()).sum());
            let distinct = kept.iter().flat_map(|rows| rows.iter()).all(|row| {
                let id = ObjectId::of(&self.keys, &row.key().into());
                ids.insert(id, ()).is_none()
            });
            if !distinct {
                return None;
            }
        }
        // The fetch answers from the kept rows and drops the scan.
        Counters::add(&ctx.stats.node_hits, kept.len() as u64);
        Some(kept)
    }

    /// The one statement that reads every node of the query: one snapshot.
    ///
    /// Up to [`MAX_SNAPSHOT_NODES`] nodes, [`sql::node_rows`]: each node's condition
    /// is the SQL the model's indexes are built for, one index lookup per node.
    /// Wider, [`sql::node_rows_by_lists`]: one bound list per index column, a
    /// superset for composite indexes that [`Scan::apply_snapshot`] makes exact by
    /// assigning rows to nodes with `node_matches`.
    pub(crate) fn snapshot_query(&self, dialect: Dialect) -> Result<SqlQuery, Error> {
        let schema = T::schema();
        let specs: Vec<(usize, &[Value])> =
            self.nodes.iter().filter_map(|n| n.node.index.map(|i| (i, n.node.values.as_slice()))).collect();
        if specs.len() <= MAX_SNAPSHOT_NODES {
            return Ok(sql::node_rows(dialect, schema, &specs));
        }
        sql::node_rows_by_lists(dialect, schema, &specs).map_err(|e| Error::Param(e.to_string()))
    }

    /// Answers every node from the snapshot's rows, keeping as candidates the ids
    /// of updates still in flight (read after the rows, K10, listed with an unknown
    /// version). Only membership is taken from the snapshot: the objects then go
    /// through the cache as usual.
    pub(crate) fn apply_snapshot(&mut self, rows: &[T], in_flight: &[Value]) {
        let schema = T::schema();
        let etags: Vec<u64> = rows
            .iter()
            .map(|r| codec::encode_object(r, self.tag).map_or(codec::UNKNOWN_ETAG, |b| codec::etag(&b)))
            .collect();
        for n in &mut self.nodes {
            let members =
                rows.iter().zip(&etags).filter(|(r, _)| node_matches(schema, &n.node, &|c| r.column_value(c)));
            n.entries = members.clone().map(|(r, &etag)| (r.key().into(), etag)).collect();
            if let Some(column) = n.order {
                n.orders = members.map(|(r, _)| Some(r.column_value(column))).collect();
            }
            for id in in_flight {
                if !n.entries.iter().any(|(listed, _)| listed == id) {
                    n.entries.push((id.clone(), codec::UNKNOWN_ETAG));
                    if n.order.is_some() {
                        n.orders.push(None);
                    }
                }
            }
            n.verified = n.entries.len();
            // The cached list is superseded by the snapshot: nothing to clean.
            n.read_cas = None;
        }
    }

    /// Gives every listed id its object slot; true when round trip 2 has anything to
    /// read (objects not known yet, or several cached nodes to re-check).
    pub(crate) fn list_objects(&mut self) -> bool {
        let listed: usize = self.nodes.iter().map(|n| n.entries.len()).sum();
        self.object_slot.reserve(listed);
        self.objects.reserve(listed);
        // Integer keys under the default namespace are ~40 bytes; longer ones grow it.
        self.key_text.reserve(listed * 48);
        for n in 0..self.nodes.len() {
            let entries = std::mem::take(&mut self.nodes[n].entries);
            let verified = self.nodes[n].verified;
            let mut slots = Vec::with_capacity(entries.len());
            for (at, (id, etag)) in entries.iter().enumerate() {
                let slot = self.want(id);
                let o = &mut self.objects[slot];
                o.listed = o.listed.with(*etag);
                o.appended |= at >= verified;
                slots.push(slot);
            }
            self.nodes[n].slots = slots;
            self.nodes[n].entries = entries;
        }
        // Several nodes read from the cache were read one after another, not at one
        // instant: an id moving between two of them (appended to its new node,
        // removed lazily from its old one) can be missed by both reads. So their CAS
        // tokens are read again, in the same round trip as the objects, and if any
        // changed in between ("double collect"), the database answers instead. Every
        // change of a node (append, write-back, delete, expiry) changes or drops its
        // CAS, so "same CAS" is exactly "same node".
        //
        // Unless every node's bytes are ones this process read before the fetch
        // began (`seen_before`): bytes of a node never come back once it changed
        // (`codec::NODE_HEADER_TAG`), so each node did not change between that read
        // and this fetch's, and at the moment of this fetch's first node read every
        // node held what it read — one instant, as the re-read would show.
        self.recheck = self.nodes.len() > 1 && self.nodes.iter().all(|n| n.read_cas.is_some()) && !self.seen_before;
        self.round_two = (self.direct_count..self.objects.len()).collect();
        !self.round_two.is_empty() || self.recheck
    }

    /// Serves from the near cache every listed object kept at the one version its
    /// nodes name; round trip 2 then reads only the others (and the CAS re-check).
    /// Returns whether round trip 2 still has anything to do.
    pub(crate) fn use_near(&mut self, ctx: &Context) -> bool {
        let near = &ctx.near;
        if near.is_on() {
            let (mut hits, mut misses, mut unverified) = (0u64, 0u64, 0u64);
            let keys = &self.keys;
            let objects = &mut self.objects;
            self.round_two.retain(|&slot| {
                let o = &mut objects[slot];
                let Listed::Version(etag) = o.listed else { return true };
                if o.appended {
                    unverified += 1;
                    return true;
                }
                match near.get::<T>(&ObjectId::of(keys, &o.id), etag) {
                    Some(row) => {
                        o.row = Some(row);
                        o.etag = Some(etag);
                        o.from_near = true;
                        hits += 1;
                        false
                    }
                    None => {
                        misses += 1;
                        true
                    }
                }
            });
            Counters::add(&ctx.stats.near_hits, hits);
            Counters::add(&ctx.stats.near_misses, misses);
            Counters::add(&ctx.stats.near_unverified, unverified);
        }
        !self.round_two.is_empty() || self.recheck
    }

    /// Keeps in the near cache the objects this fetch decoded (from the cache's
    /// bytes, or the database's rows), under the etag of their encoding.
    pub(crate) fn keep_near(&self, ctx: &Context) {
        if !ctx.near.is_on() {
            return;
        }
        for o in self.objects.iter().filter(|o| !o.from_near) {
            let (Some(row), Some(etag)) = (&o.row, o.etag) else { continue };
            let len = o.kept_len();
            ctx.near.keep(ObjectId::of(&self.keys, &o.id), etag, row.clone(), len);
        }
    }

    /// Whether round trip 2 takes its leases at once rather than in a round of its
    /// own for the objects that missed: when a node came from the database (its
    /// objects are likely cold too), and when it reads only a few objects — one
    /// multi-key command saves memcached well under a µs per key, while a lease
    /// round costs a whole round trip, and the few objects a fetch with the near
    /// cache reads are mostly those a write just changed, so they would miss.
    pub(crate) fn objects_likely_cold(&self) -> bool {
        self.round_two.len() < MIN_PLAIN_OBJECT_READS || self.nodes.iter().any(|n| n.read_cas.is_none())
    }

    /// Round trip 2: every object not known yet, and the CAS re-check. Without a
    /// lease the objects are plain reads, which the memcached backend sends as one
    /// multi-key command; those that miss are read again under lease
    /// ([`Scan::lease_round`]) before the database is asked.
    pub(crate) fn round_two(&self, lease: Option<u32>) -> Vec<CacheOp<'_>> {
        let mut ops: Vec<CacheOp<'_>> =
            self.round_two.iter().map(|&slot| CacheOp::Get { key: self.object_key(slot), lease }).collect();
        if self.recheck {
            // Only the CAS: an unchanged node has the CAS it was read with, so its
            // value need not travel again.
            ops.extend(self.nodes.iter().map(|n| CacheOp::GetCas { key: &n.key }));
        }
        ops
    }

    /// Reads round trip 2's replies (`leased`: whether its gets took leases);
    /// false when a re-checked node changed in between (the database must answer).
    pub(crate) fn read_round_two(&mut self, ctx: &Context, replies: &Replies, leased: bool) -> bool {
        let object_ops = self.round_two.len();
        let (object_replies, node_replies) = replies.split_at(object_ops.min(replies.len()));
        self.lease_round.clear();
        if leased {
            read_objects(ctx, self.tag, &mut self.objects, self.round_two.iter().copied(), object_replies);
        } else {
            self.read_plain_objects(ctx, object_replies);
        }
        if self.recheck {
            Counters::add(&ctx.stats.node_rechecks, 1);
        }
        let moved = self.recheck
            && (node_replies.len() != self.nodes.len()
                || self.nodes.iter().zip(node_replies).any(|(n, r)| match r {
                    Ok(CacheReply::Present { cas }) => Some(*cas) != n.read_cas,
                    _ => true,
                }));
        !moved
    }

    /// The objects round trip 2 read without a lease and missed, read again with
    /// one: a miss now takes the lease its fill needs. Empty when none missed.
    pub(crate) fn lease_round(&self, lease: Option<u32>) -> Vec<CacheOp<'_>> {
        self.lease_round.iter().map(|&slot| CacheOp::Get { key: self.object_key(slot), lease }).collect()
    }

    /// Whether some objects of round trip 2 wait for the lease round.
    pub(crate) fn has_lease_round(&self) -> bool {
        !self.lease_round.is_empty()
    }

    /// Reads the lease round's replies, exactly as a leased round trip 2's.
    pub(crate) fn read_lease_round(&mut self, ctx: &Context, replies: &Replies) {
        let slots = std::mem::take(&mut self.lease_round);
        read_objects(ctx, self.tag, &mut self.objects, slots, replies);
    }

    /// Reads round trip 2's replies to plain gets: hits are taken, the objects that
    /// missed wait for the lease round, and a failed read goes to the database.
    fn read_plain_objects(&mut self, ctx: &Context, replies: &[Result<CacheReply, CacheError>]) {
        let mut hits = 0u64;
        for (at, &slot) in self.round_two.iter().enumerate() {
            let o = &mut self.objects[slot];
            match replies.get(at) {
                Some(reply) => match read_plain_object(self.tag, o, reply) {
                    Some(true) => hits += 1,
                    Some(false) => self.lease_round.push(slot),
                    None => fail_object(ctx, o),
                },
                // An object without a reply (a short reply list) is a miss like any other.
                None => o.needs_db = true,
            }
        }
        Counters::add(&ctx.stats.object_hits, hits);
    }

    /// Which cached objects the database must confirm: one whose nodes name
    /// several versions (the row changed since a node was filled), or a version other
    /// than the cached bytes' (the object is stale, or newer than the node heard of:
    /// the writer's invalidation and append land on different servers in no fixed
    /// order). And, as a last check, one that no longer belongs to a node listing it.
    /// Ids are only ever dropped from a node on the database's word.
    pub(crate) fn doubt_changed_objects(&mut self) {
        let schema = T::schema();
        for o in self.objects.iter_mut().filter(|o| o.row.is_some() && !o.from_db) {
            o.needs_db |= match o.listed {
                Listed::Unlisted => false,
                Listed::Changed => true,
                Listed::Version(etag) => o.etag != Some(etag),
            };
        }
        for n in self.nodes.iter().filter(|n| n.read_cas.is_some()) {
            for &slot in &n.slots {
                let o = &mut self.objects[slot];
                if let Some(row) = &o.row {
                    if !o.from_db && !node_matches(schema, &n.node, &|c| row.column_value(c)) {
                        o.needs_db = true;
                    }
                }
            }
        }
    }

    /// What this scan found in the cache, for the fetch's span and metrics.
    pub(crate) fn outcome(&self) -> Outcome {
        let node_hits = self.nodes.iter().filter(|n| n.read_cas.is_some()).count() as u64;
        let mut outcome = Outcome { node_hits, node_misses: self.nodes.len() as u64 - node_hits, ..Outcome::default() };
        for o in &self.objects {
            if o.from_near {
                outcome.near_hits += 1;
            } else if o.from_db {
                outcome.object_misses += 1;
            } else if o.row.is_some() {
                outcome.object_hits += 1;
            }
        }
        outcome
    }

    /// The ids of every object missing, unreadable or in doubt, in chunks of at
    /// most [`MAX_KEYS_PER_QUERY`] (what every dialect binds in one statement).
    pub(crate) fn doubtful_queries(&self, dialect: Dialect) -> Vec<SqlQuery> {
        let doubtful: Vec<Value> = self.objects.iter().filter(|o| o.needs_db).map(|o| o.id.clone()).collect();
        doubtful.chunks(MAX_KEYS_PER_QUERY).map(|chunk| sql::rows_by_keys(dialect, T::schema(), chunk)).collect()
    }

    /// Places the rows the database returned for the doubtful objects, encoded as
    /// the cache holds them; an object with no row was deleted.
    pub(crate) fn place_loaded(&mut self, rows: Vec<T>) {
        let mut by_key: HashMap<String, T> = rows.into_iter().map(|r| (self.keys.object(&r.key().into()), r)).collect();
        for o in self.objects.iter_mut().filter(|o| o.needs_db) {
            o.cached_etag = o.row.as_ref().and(o.etag);
            o.row = by_key.remove(&self.key_text[o.key.clone()]);
            o.encoded = o.row.as_ref().and_then(|r| codec::encode_object(r, self.tag));
            o.etag = Some(o.encoded.as_deref().map_or(codec::DELETED_ETAG, codec::etag));
            o.from_db = true;
        }
    }

    /// What the fetch writes back: object fills and repairs, node fills, and the
    /// lazy removals (with the appends that must land first).
    pub(crate) fn plan_writes(&self, ctx: &Context, max_value: usize) -> WritePlan {
        let mut plan = WritePlan::default();
        // Only a fetch over several nodes looks for node bytes seen before.
        plan.writes.record_seen_nodes(self.since.is_some());
        self.plan_object_writes(ctx, max_value, &mut plan.writes);
        self.plan_node_writes(ctx, max_value, &mut plan);
        plan
    }

    /// Objects: fill leases won, repair unreadable values, drop copies the database
    /// shows are stale (their writer deletes them too; doing it now spares the other
    /// readers the same trip to the database).
    fn plan_object_writes(&self, ctx: &Context, max_value: usize, writes: &mut WriteBack) {
        let ttl = ctx.settings.object_ttl;
        for (slot, o) in self.objects.iter().enumerate().filter(|(_, o)| o.from_db) {
            let key = || self.object_key(slot).to_owned();
            match (o.fill_cas, &o.encoded) {
                (Some(cas), Some(bytes)) if bytes.len() <= max_value => writes.fill(key(), bytes.clone(), ttl, cas),
                // No row (deleted), or too large to cache: do not leave the placeholder
                // blocking other fills until it expires.
                (Some(_), _) => writes.delete(key()),
                (None, _) if o.cached_etag.is_some_and(|cached| Some(cached) != o.etag) => writes.delete(key()),
                (None, _) => {}
            }
        }
    }

    /// Whether a cached node is written back exactly as read: unordered, every
    /// entry verified, each id listed once, no object read from the database. The
    /// hot path's common case, decided without building the entries it would keep
    /// (a `perf` profile of a hot 100-object fetch put planning its write-back at
    /// ~5% of the client's samples before this check).
    fn node_stays(&self, n: &NodeState, seen: &mut Seen) -> bool {
        if n.order.is_some() || n.verified < n.entries.len() {
            return false;
        }
        seen.next_pass();
        n.slots.iter().all(|&slot| seen.first(slot) && !self.objects[slot].from_db)
    }

    /// Nodes: fill leases won; write cached nodes back clean: each id the database
    /// was asked about listed once with its current version, or dropped when it no
    /// longer belongs (re-homed first); repeated entries of one version collapsed.
    fn plan_node_writes(&self, ctx: &Context, max_value: usize, plan: &mut WritePlan) {
        let schema = T::schema();
        let ttl = ctx.settings.node_ttl;
        let mut seen = Seen::new(self.objects.len());
        for n in &self.nodes {
            if let Some(cas) = n.fill_cas {
                let bytes = codec::encode_node(&n.entries, &n.orders);
                if bytes.len() <= max_value {
                    plan.writes.fill(n.key.clone(), bytes, ttl, cas);
                } else {
                    plan.writes.delete(n.key.clone());
                }
                continue;
            }
            let Some(cas) = n.read_cas else { continue };
            if self.node_stays(n, &mut seen) {
                continue;
            }
            seen.next_pass();
            let mut kept: Vec<Entry> = Vec::with_capacity(n.entries.len());
            let mut kept_orders: Vec<Option<Value>> = Vec::new();
            let mut removed = 0u64;
            for ((id, etag), &slot) in n.entries.iter().zip(&n.slots) {
                if !seen.first(slot) {
                    continue;
                }
                let o = &self.objects[slot];
                // The order value of the version kept: the row's, read at that
                // version (from the cache's bytes of that etag or the database).
                let order_of = |row: Option<&T>| n.order.and_then(|c| row.map(|r| r.column_value(c)));
                if !o.from_db {
                    // Seen only in the cache, one version throughout: keep.
                    kept.push((id.clone(), *etag));
                    kept_orders.push(order_of(o.row.as_ref()));
                    continue;
                }
                let row = o.row.as_ref().filter(|row| node_matches(schema, &n.node, &|c| row.column_value(c)));
                if row.is_some() {
                    kept.push((id.clone(), o.etag.unwrap_or(codec::UNKNOWN_ETAG)));
                    kept_orders.push(order_of(row));
                    continue;
                }
                removed += 1;
                if let (Some(row), Some(index), Some(etag)) = (&o.row, n.node.index, o.etag) {
                    let home = node_of_row(schema, index, &|c| row.column_value(c));
                    // Once per (node, id): an id listed by many nodes (a fill keeps
                    // in-flight ids in each, K10) goes home once.
                    let entry = (self.keys.node(schema, &home), codec::entry_record(id, etag));
                    if !plan.rehomed.contains(&entry) {
                        plan.rehomed.push(entry);
                    }
                }
            }
            // Written back also when nothing changed but appended entries: they are
            // verified now (each by the database or by its object's cached bytes).
            let changed = kept.len() != n.entries.len() || kept.iter().zip(&n.entries).any(|(k, e)| k != e);
            // An ordered node's entry without its order value (or with another) is
            // written back with the value, so that the next page read trusts it.
            let reordered = n.order.is_some() && kept_orders != n.orders;
            if changed || reordered || n.verified < n.entries.len() {
                plan.removed += removed;
                let orders = if n.order.is_some() { kept_orders } else { Vec::new() };
                plan.cleaned.push((n.key.clone(), codec::encode_node(&kept, &orders), cas));
            }
        }
    }

    /// The answer: each disjunct's candidates through the full predicate, deduped,
    /// ordered by key. Each object is looked at once, so its row is moved out.
    pub(crate) fn answer(&mut self, filter: &Filter<'_, T>) -> Vec<T> {
        let mut seen = Seen::new(self.objects.len());
        seen.next_pass();
        let mut answered: Vec<usize> = Vec::with_capacity(self.objects.len());
        let nodes = &self.nodes;
        let candidates = self.disjunct_nodes.iter().zip(&self.direct_slots).flat_map(|(node_slots, direct)| {
            node_slots.iter().flat_map(|&s| nodes[s].slots.iter()).chain(direct.iter())
        });
        for &slot in candidates {
            let o = &self.objects[slot];
            if seen.first(slot) && o.row.as_ref().is_some_and(|row| filter.matches(row)) {
                debug_assert!(o.row.as_ref().is_some_and(|row| row.key().into() == o.id), "a row in another's slot");
                answered.push(slot);
            }
        }
        // Sorted by key as `sort_by_key` sorts rows, by the ids the slots already
        // hold (a row is in the slot of its own key) rather than a key `Value`
        // made and dropped per row, and only when the ids are not in key order
        // already (as when rows were inserted in key order): 1.6 % fewer
        // instructions per near-cache-off fetch of 100 objects (callgrind, `bench
        // --cpu-split`).
        let objects = &mut self.objects;
        let by_id = |a: &usize, b: &usize| objects[*a].id.order(&objects[*b].id);
        if !answered.is_sorted_by(|a, b| by_id(a, b).is_le()) {
            answered.sort_unstable_by(by_id);
        }
        answered.into_iter().filter_map(|slot| objects[slot].row.take()).collect()
    }
}

/// What a fetch writes back after it read everything.
#[derive(Default)]
pub(crate) struct WritePlan {
    /// Fills, repairs and deletes (the last batch).
    pub(crate) writes: WriteBack,
    /// `(node key, id record)`: ids appended to the node the database now puts them
    /// in, before any node is written back without them.
    pub(crate) rehomed: Vec<(String, Vec<u8>)>,
    /// `(node key, cleaned bytes, CAS read)`: lazy-removal write-backs, sent only
    /// once every re-homing append landed.
    pub(crate) cleaned: Vec<(String, Vec<u8>, u64)>,
    /// Ids the clean-ups drop.
    pub(crate) removed: u64,
}

/// Reads an ordered node's reply for a page alone: `true` when the node is
/// complete, every entry verified with its value, and the page found in its bytes
/// (the rest of the node stays undecoded). Otherwise [`read_node`] reads it whole.
fn read_page(
    ctx: &Context,
    schema: &memdex_grammar::Schema,
    window: &Window,
    n: &mut NodeState,
    reply: &mut Result<CacheReply, CacheError>,
) -> bool {
    let Ok(CacheReply::Hit { value, cas }) = reply else { return false };
    let Some(order_type) = n.order_type(schema) else { return false };
    let Some(node) = codec::ordered_node(value, schema.key_column().ty, order_type) else { return false };
    let Some(page) = window.page_from(&node) else { return false };
    Counters::add(&ctx.stats.node_hits, 1);
    n.page = Some(page);
    // The reply's own bytes, not a copy: nothing reads the reply after this.
    n.raw = Some(std::mem::take(value));
    n.read_cas = Some(*cas);
    true
}

/// Reads one node's reply; `true` when it was a complete, readable node.
fn read_node(
    ctx: &Context,
    schema: &memdex_grammar::Schema,
    n: &mut NodeState,
    reply: &Result<CacheReply, CacheError>,
) -> bool {
    let key_type = schema.key_column().ty;
    let order_type = n.order_type(schema);
    match reply {
        Ok(CacheReply::Hit { value, cas }) => match codec::decode_node(value, key_type, order_type) {
            Ok(node) => {
                Counters::add(&ctx.stats.node_hits, 1);
                n.entries = node.entries;
                n.orders = node.orders;
                n.verified = node.verified;
                n.read_cas = Some(*cas);
                return true;
            }
            // A placeholder that got appends: someone else is filling it.
            Err(NodeDecode::Unfilled) => Counters::add(&ctx.stats.lease_busy, 1),
            // Garbage: overwrite it under its own CAS once the database answered.
            Err(NodeDecode::Corrupt) => n.fill_cas = Some(*cas),
        },
        Ok(CacheReply::LeaseWon { cas }) => n.fill_cas = Some(*cas),
        Ok(CacheReply::LeaseBusy) => Counters::add(&ctx.stats.lease_busy, 1),
        Ok(_) | Err(_) => {}
    }
    Counters::add(&ctx.stats.node_misses, 1);
    false
}

/// Reads one batch's replies (to gets taking leases) into the objects at `slots`,
/// in order, counting the hits once.
fn read_objects<T: Model>(
    ctx: &Context,
    tag: u32,
    objects: &mut [ObjectState<T>],
    slots: impl IntoIterator<Item = usize>,
    replies: &[Result<CacheReply, CacheError>],
) {
    let mut hits = 0u64;
    for (at, slot) in slots.into_iter().enumerate() {
        let o = &mut objects[slot];
        match replies.get(at) {
            Some(reply) => hits += u64::from(read_object(ctx, tag, o, reply)),
            // An object without a reply (a short reply list) is a miss like any other.
            None => o.needs_db = true,
        }
    }
    Counters::add(&ctx.stats.object_hits, hits);
}

/// Takes a hit that is this object's row. The decoded row must carry this object's
/// key: bytes of another row under this key (a corrupted or cross-wired value) would
/// otherwise be returned in its place, and twice.
fn take_hit<T: Model>(tag: u32, o: &mut ObjectState<T>, value: &[u8]) -> bool {
    match codec::decode_object::<T>(value, tag) {
        Some(row) if row.key().into() == o.id => {
            o.row = Some(row);
            o.etag = Some(codec::etag(value));
            true
        }
        _ => false,
    }
}

/// A miss (or a failed read) the database answers, counted.
fn fail_object<T>(ctx: &Context, o: &mut ObjectState<T>) {
    Counters::add(&ctx.stats.object_misses, 1);
    o.needs_db = true;
}

/// Reads one object's reply to a plain get (no lease): `Some(true)` for a hit (the
/// caller counts it), `Some(false)` when it must be read again under lease (a miss,
/// a lease placeholder, unreadable bytes to repair under their CAS), `None` when
/// the server failed (the database answers; a lease round would fail alike).
fn read_plain_object<T: Model>(
    tag: u32,
    o: &mut ObjectState<T>,
    reply: &Result<CacheReply, CacheError>,
) -> Option<bool> {
    match reply {
        Ok(CacheReply::Hit { value, .. }) => Some(take_hit(tag, o, value)),
        Ok(CacheReply::Miss) => Some(false),
        Ok(_) | Err(_) => None,
    }
}

/// Reads one object's reply; `true` for a hit, which the caller counts (one
/// counter update per batch rather than per object).
fn read_object<T: Model>(
    ctx: &Context,
    tag: u32,
    o: &mut ObjectState<T>,
    reply: &Result<CacheReply, CacheError>,
) -> bool {
    match reply {
        Ok(CacheReply::Hit { value, cas }) => {
            if take_hit(tag, o, value) {
                return true;
            }
            // Undecodable bytes, or another row's: a miss, repaired under the
            // value's own CAS.
            o.fill_cas = Some(*cas);
        }
        Ok(CacheReply::LeaseWon { cas }) => o.fill_cas = Some(*cas),
        Ok(CacheReply::LeaseBusy) => Counters::add(&ctx.stats.lease_busy, 1),
        Ok(_) | Err(_) => {}
    }
    fail_object(ctx, o);
    false
}

#[cfg(test)]
mod tests {
    use memdex_grammar::{Schema, Type};

    use super::*;

    /// The executor tells objects apart by `ObjectId`; before, it did by cache key.
    /// Both must agree on every pair of ids, or a fetch could hold one object twice.
    #[test]
    fn object_identity_is_cache_key_identity() {
        let schema = Schema::new("Thing", "thing").column("id", Type::Text, false).key("id");
        let keys = KeySpace::new("ns", &schema, 0);
        let identity = |id: &Value| ObjectId::of(&keys, id);
        let ids: Vec<Value> = [
            Value::Int(5),
            Value::Int(-5),
            Value::Int(0),
            Value::Int(i64::MIN),
            Value::Text("5".into()),
            Value::Text("-5".into()),
            Value::Text("05".into()),
            Value::Text("+5".into()),
            Value::Text("-0".into()),
            Value::Text("0".into()),
            Value::Text(i64::MIN.to_string()),
            Value::Text("99999999999999999999".into()),
            Value::Text("a b".into()),
            Value::Text("a%20b".into()),
            Value::Float(5.0),
            Value::Bool(true),
            Value::Null,
        ]
        .into();
        for a in &ids {
            for b in &ids {
                assert_eq!(identity(a) == identity(b), keys.object(a) == keys.object(b), "{a:?} vs {b:?}");
            }
        }
    }
}
