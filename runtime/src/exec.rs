//! The executor: cache-aware index scans (DESIGN.md "Execution").
//!
//! A `fetch` on a hot cache is two round trips whatever the number of disjuncts,
//! `in` values or objects:
//!
//! 1. one pipelined get of every index node of every disjunct (and of the objects of
//!    key lookups), each with a lease on miss;
//! 2. one pipelined get of every object the nodes list, each with a lease on miss.
//!
//! Misses are answered from the database: one query per missing node (run *after*
//! its lease was taken), one `WHERE key IN (…)` for every missing object. A third
//! batch, only when there is something to write, stores fills under their leases,
//! lazy-removal write-backs and repairs, all with CAS.

use std::collections::HashMap;

use memdex_grammar::explain::Explain;
use memdex_grammar::keys::KeySpace;
use memdex_grammar::plan::{BindError, NodeRef, Plan, bind, node_matches, node_of_row};
use memdex_grammar::relax;
use memdex_grammar::sql::{self, OrderBy, SelectSpec};
use memdex_grammar::{Dialect, Prepared, Schema, Type, Value};

use crate::cache::{CacheOp, CacheReply, checked_appends, refused_appends};
use crate::codec::{self, NodeDecode};
use crate::error::Error;
use crate::model::Model;
use crate::query::{BoundParams, Compiled, Select, View};
use crate::stats::Counters;
use crate::store::{Store, StoreInner};

pub(crate) fn fetch<T: Model>(store: &Store, q: &Select<'_, T>) -> Result<Vec<T>, Error> {
    let rows = matching_rows(store, q)?;
    Ok(page(rows, &q.order, q.limit, q.offset))
}

pub(crate) fn count<T: Model>(store: &Store, q: &Select<'_, T>) -> Result<u64, Error> {
    Ok(matching_rows(store, q)?.len() as u64)
}

fn prepared(compiled: &Compiled) -> Result<&Prepared, Error> {
    compiled.prepared.as_ref().map_err(|e| Error::from_query(e.clone(), &compiled.source))
}

/// Every row matching the query, ordered by key.
fn matching_rows<T: Model>(store: &Store, q: &Select<'_, T>) -> Result<Vec<T>, Error> {
    let inner = &*store.inner;
    let prepared = prepared(&q.compiled)?;
    let span = tracing::debug_span!("memdex.fetch", model = %T::schema().model, query = %q.compiled.source);
    let _entered = span.enter();
    let cache_trusted = inner.outbox.maybe_drain(inner);
    let scanned = match (&prepared.plan, cache_trusted) {
        (Some(plan), true) => index_scan(inner, q, plan)?,
        _ => None,
    };
    match scanned {
        Some(rows) => Ok(rows),
        None => {
            Counters::add(&inner.stats.degraded_calls, 1);
            database_rows(inner, q, prepared)
        }
    }
}

/// The query on the database alone: the database selects a superset of the matching
/// rows (`relax::superset`: the filter without the literals whose SQL may disagree
/// with Rust), and the in-memory predicate decides. A row the predicate accepts is
/// never lost to SQL's arithmetic; ordering and paging happen in memory (`fetch`).
fn database_rows<T: Model>(inner: &StoreInner, q: &Select<'_, T>, prepared: &Prepared) -> Result<Vec<T>, Error> {
    let mut rows = superset_rows(inner, q, prepared)?;
    rows.sort_by(|a, b| a.key().into().order(&b.key().into()));
    Ok(rows)
}

/// The rows of the superset filter that the in-memory predicate accepts, in the
/// database's order. For an indexed query the superset keeps every disjunct's index
/// criteria (equality, `in` and prefix tests are exact, unless a bound value is NaN),
/// so it does not grow beyond the rows those criteria name; a `scan!` may come back
/// as the whole table.
fn superset_rows<T: Model>(inner: &StoreInner, q: &Select<'_, T>, prepared: &Prepared) -> Result<Vec<T>, Error> {
    let params = q.params.as_params();
    let relaxed = prepared.filter.as_ref().map(|f| relax::superset(f, params));
    let filter = relaxed.as_ref().and_then(|r| r.filter.as_deref());
    let spec = SelectSpec { filter, ..SelectSpec::default() };
    let query = sql::select(inner.db.dialect(), T::schema(), spec, params).map_err(|e| Error::Param(e.to_string()))?;
    Ok(load_rows(inner, &query)?.into_iter().filter(|r| q.matches(r)).collect())
}

fn load_rows<T: Model>(inner: &StoreInner, query: &sql::SqlQuery) -> Result<Vec<T>, Error> {
    let schema = T::schema();
    let types: Vec<Type> = schema.columns.iter().map(|c| c.ty).collect();
    inner.count_db(1);
    inner.tracer.sql(&query.text, query.params.len());
    let raw = inner.db.query(query, &types)?;
    raw.into_iter()
        .map(|values| T::from_values(values).map_err(|reason| Error::Decode { model: schema.model.clone(), reason }))
        .collect()
}

/// Orders (by the requested columns, then by key so that every path returns the
/// same order), then skips `offset` and keeps `limit`.
fn page<T: Model>(mut rows: Vec<T>, order: &[OrderBy], limit: Option<u64>, offset: u64) -> Vec<T> {
    if !order.is_empty() {
        rows.sort_by(|a, b| {
            for o in order {
                let ord = a.column_value(o.column).order(&b.column_value(o.column));
                let ord = if o.desc { ord.reverse() } else { ord };
                if ord.is_ne() {
                    return ord;
                }
            }
            a.key().into().order(&b.key().into())
        });
    }
    let offset = usize::try_from(offset).unwrap_or(usize::MAX);
    let limit = limit.map_or(usize::MAX, |l| usize::try_from(l).unwrap_or(usize::MAX));
    rows.into_iter().skip(offset).take(limit).collect()
}

/// Keys bound in one `WHERE key IN (…)`.
const MAX_KEYS_PER_QUERY: usize = 10_000;

/// The per-fetch maps hash short keys and integers from the fetch's own nodes;
/// SipHash's strength buys nothing there, and it was a tenth of a hot fetch.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

fn fast_map<K, V>(capacity: usize) -> FastMap<K, V> {
    HashMap::with_capacity_and_hasher(capacity, foldhash::fast::RandomState::default())
}

/// An object's identity within one fetch: an integer id as itself (no key built or
/// hashed as text), any other id by its cache key. Two ids are the same object
/// exactly when their cache keys are equal.
#[derive(Hash, PartialEq, Eq)]
enum ObjectId {
    Int(i64),
    Key(String),
}

impl ObjectId {
    fn of(keys: &KeySpace, id: &Value) -> ObjectId {
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

/// The most nodes a snapshot ([`snapshot_nodes`]) names one by one, each node's
/// condition OR-ed to the next: SQLite refuses expressions nested deeper than
/// 1,000, and every database caps the values one statement binds.
const MAX_SNAPSHOT_NODES: usize = 256;

/// The most prefix nodes a wide snapshot names one by one (a prefix node has no
/// list form); a query with more, one of whose nodes misses, is answered by the
/// database (one statement too, so one snapshot).
const MAX_WIDE_PREFIX_NODES: usize = 64;

/// A node as this fetch saw it.
struct NodeState {
    key: String,
    node: NodeRef,
    ids: Vec<Value>,
    /// The object slot of each id (parallel to `ids`), so that each object key is
    /// built and hashed once per fetch.
    slots: Vec<usize>,
    /// CAS of the node as read from the cache, when it was a complete node: the
    /// lazy-removal write-back must match it, so a concurrent append survives
    /// (race rule 2).
    read_cas: Option<u64>,
    /// CAS of the lease placeholder this fetch won, or of an unreadable value to
    /// overwrite: the fill stores only if nobody touched the key since (race rule 1).
    fill_cas: Option<u64>,
}

/// An object as this fetch saw it.
struct ObjectState<T> {
    /// Where its cache key is in the fetch's key buffer: one buffer for every
    /// object key of the fetch instead of an allocation per object.
    key: std::ops::Range<usize>,
    id: Value,
    row: Option<T>,
    /// The row came from the database during this fetch (evidence for lazy removal).
    from_db: bool,
    /// The cached row's bytes, kept only for a cached row that is re-read from the
    /// database (to tell whether the cached copy is stale); a plain hit keeps none.
    cached: Option<Vec<u8>>,
    fill_cas: Option<u64>,
    needs_db: bool,
}

/// The index scan proper. `Ok(None)`: this query cannot be bound to nodes at run
/// time (a prefix pattern shorter than the index, too many nodes); the caller asks
/// the database instead.
fn index_scan<T: Model>(inner: &StoreInner, q: &Select<'_, T>, plan: &Plan) -> Result<Option<Vec<T>>, Error> {
    let schema = T::schema();
    let keys = inner.keyspace::<T>();
    let params = q.params.as_params();
    let lease = Some(inner.settings.lease_ttl);

    // Bind every disjunct to its nodes (or, for key lookups, its objects).
    let mut nodes: Vec<NodeState> = Vec::new();
    let mut node_slot: FastMap<String, usize> = fast_map(plan.disjuncts.len());
    let mut disjunct_nodes: Vec<Vec<usize>> = Vec::with_capacity(plan.disjuncts.len());
    let mut direct_ids: Vec<Vec<Value>> = Vec::with_capacity(plan.disjuncts.len());
    for d in &plan.disjuncts {
        let bound = match bind(schema, d, params, inner.settings.max_nodes_per_query) {
            Ok(bound) => bound,
            Err(e @ (BindError::Unbound(_) | BindError::NotAList(_))) => return Err(Error::Param(e.to_string())),
            Err(e) => {
                tracing::debug!("answering from the database: {e}");
                return Ok(None);
            }
        };
        let mut mine = Vec::new();
        let mut direct = Vec::new();
        for node in bound {
            if node.index.is_none() {
                direct.extend(node.values.into_iter().next());
                continue;
            }
            let key = keys.node(schema, &node);
            let slot = *node_slot.entry(key.clone()).or_insert_with(|| {
                nodes.push(NodeState { key, node, ids: Vec::new(), slots: Vec::new(), read_cas: None, fill_cas: None });
                nodes.len() - 1
            });
            mine.push(slot);
        }
        disjunct_nodes.push(mine);
        direct_ids.push(direct);
    }

    // Objects in first-seen order, each once; its key is built once per fetch, into
    // `key_text`.
    let mut objects: Vec<ObjectState<T>> = Vec::new();
    let mut key_text = String::new();
    let mut object_slot: FastMap<ObjectId, usize> = fast_map(direct_ids.iter().map(Vec::len).sum());
    let want = |id: &Value,
                objects: &mut Vec<ObjectState<T>>,
                object_slot: &mut FastMap<ObjectId, usize>,
                key_text: &mut String|
     -> usize {
        *object_slot.entry(ObjectId::of(&keys, id)).or_insert_with(|| {
            let start = key_text.len();
            keys.push_object(id, key_text);
            objects.push(ObjectState {
                key: start..key_text.len(),
                id: id.clone(),
                row: None,
                from_db: false,
                cached: None,
                fill_cas: None,
                needs_db: false,
            });
            objects.len() - 1
        })
    };
    let direct_slots: Vec<Vec<usize>> = direct_ids
        .iter()
        .map(|ids| ids.iter().map(|id| want(id, &mut objects, &mut object_slot, &mut key_text)).collect())
        .collect();

    // A node on a cache server marked down cannot hit, and one missing node sends
    // the query to a snapshot from the database anyway: answer it there at once,
    // without taking leases that nobody would fill.
    if nodes.iter().any(|n| !inner.cache.is_available(&n.key)) {
        tracing::debug!("an index node's cache server is down; answering from the database");
        return Ok(None);
    }

    // Round trip 1: every node, plus the objects of key lookups. Nodes that cannot
    // be read in one snapshot statement (`snapshot_query`) are read without leases:
    // if one misses, the query goes to the database (which answers it in one
    // statement), so no lease would be filled.
    let direct_count = objects.len();
    let too_wide = !snapshot_possible(schema, &nodes);
    {
        let round_one_lease = if too_wide { None } else { lease };
        let mut ops: Vec<CacheOp<'_>> =
            nodes.iter().map(|n| CacheOp::Get { key: &n.key, lease: round_one_lease }).collect();
        ops.extend(objects.iter().map(|o| CacheOp::Get { key: &key_text[o.key.clone()], lease: round_one_lease }));
        let replies = inner.cache_run(&ops);
        let (node_replies, object_replies) = replies.split_at(nodes.len().min(replies.len()));
        let mut all_hit = true;
        for (n, reply) in nodes.iter_mut().zip(node_replies) {
            all_hit &= read_node(inner, schema, n, reply);
        }
        read_objects(inner, &mut objects, object_replies);
        if !all_hit && !nodes.is_empty() {
            if too_wide {
                tracing::debug!("too many prefix nodes for one snapshot; answering from the database");
                return Ok(None);
            }
            snapshot_nodes::<T>(inner, schema, &mut nodes)?;
        }
    }

    // Round trip 2: every object the nodes list that is not known yet.
    let listed: usize = nodes.iter().map(|n| n.ids.len()).sum();
    object_slot.reserve(listed);
    objects.reserve(listed);
    // Integer keys under the default namespace are ~40 bytes; longer ones grow it.
    key_text.reserve(listed * 48);
    for n in &mut nodes {
        n.slots = n.ids.iter().map(|id| want(id, &mut objects, &mut object_slot, &mut key_text)).collect();
    }
    // Several nodes read from the cache were read one after another, not at one
    // instant: an id moving between two of them (appended to its new node, removed
    // lazily from its old one) can be missed by both reads. So their CAS tokens are
    // read again, in the same round trip as the objects, and if any changed in
    // between ("double collect"), this query is answered by the database instead.
    // Every change of a node (append, write-back, delete, expiry) changes or drops
    // its CAS, so "same CAS" is exactly "same node".
    let recheck = nodes.len() > 1 && nodes.iter().all(|n| n.read_cas.is_some());
    if objects.len() > direct_count || recheck {
        let mut ops: Vec<CacheOp<'_>> =
            objects[direct_count..].iter().map(|o| CacheOp::Get { key: &key_text[o.key.clone()], lease }).collect();
        let object_ops = ops.len();
        if recheck {
            // Only the CAS: an unchanged node has the CAS it was read with, so its
            // value need not travel again.
            ops.extend(nodes.iter().map(|n| CacheOp::GetCas { key: &n.key }));
        }
        let replies = inner.cache_run(&ops);
        let (object_replies, node_replies) = replies.split_at(object_ops.min(replies.len()));
        read_objects(inner, &mut objects[direct_count..], object_replies);
        let moved = recheck
            && (node_replies.len() != nodes.len()
                || nodes.iter().zip(node_replies).any(|(n, r)| match r {
                    Ok(CacheReply::Present { cas }) => Some(*cas) != n.read_cas,
                    _ => true,
                }));
        if moved {
            tracing::debug!("index nodes changed during the read; answering from the database");
            return Ok(None);
        }
    }

    // A cached object that no longer belongs to a node listing it may be stale: the
    // writer that moved it may have appended to the new node before its invalidation
    // of the object landed (they can sit on different servers). Ids are only ever
    // dropped from a node on the database's word, so such objects are re-read.
    for n in nodes.iter().filter(|n| n.read_cas.is_some()) {
        for &slot in &n.slots {
            let o = &mut objects[slot];
            if let Some(row) = &o.row {
                if !o.from_db && !node_matches(schema, &n.node, &|c| row.column_value(c)) {
                    // Objects are stored as `encode_object` wrote them, so re-encoding
                    // the decoded row gives the cached bytes back, off the hot path.
                    o.cached = codec::encode_object(row);
                    o.needs_db = true;
                }
            }
        }
    }

    // One database query for every object missing, unreadable or in doubt.
    let doubtful: Vec<Value> = objects.iter().filter(|o| o.needs_db).map(|o| o.id.clone()).collect();
    if !doubtful.is_empty() {
        // One query, unless the list is longer than every dialect accepts bound
        // parameters for (SQLite: 32,766; PostgreSQL: 65,535).
        let mut by_key: HashMap<String, T> = HashMap::with_capacity(doubtful.len());
        for chunk in doubtful.chunks(MAX_KEYS_PER_QUERY) {
            let query = sql::rows_by_keys(inner.db.dialect(), schema, chunk);
            by_key.extend(load_rows::<T>(inner, &query)?.into_iter().map(|r| (keys.object(&r.key().into()), r)));
        }
        for o in objects.iter_mut().filter(|o| o.needs_db) {
            o.row = by_key.remove(&key_text[o.key.clone()]);
            o.from_db = true;
        }
    }

    let mut writes = WriteBack::default();
    let max_value = inner.cache.max_value_size();

    // Objects: fill leases won, repair unreadable values, drop stale copies.
    for o in objects.iter().filter(|o| o.from_db) {
        let encoded = o.row.as_ref().and_then(codec::encode_object);
        match (o.fill_cas, &encoded) {
            (Some(cas), Some(bytes)) if bytes.len() <= max_value => {
                writes.cas(key_text[o.key.clone()].to_owned(), bytes.clone(), inner.settings.object_ttl, cas)
            }
            // No row (deleted), or too large to cache: do not leave the placeholder
            // blocking other fills until it expires.
            (Some(_), _) => writes.delete(key_text[o.key.clone()].to_owned()),
            (None, _) => {
                if o.cached.is_some() && o.cached != encoded {
                    writes.delete(key_text[o.key.clone()].to_owned());
                }
            }
        }
    }

    // Nodes: fill leases won; write back cleaned nodes (remove lazily).
    let mut removed_total = 0u64;
    // Ids moved to another node of the same index, appended there before the old
    // node is written back without them: between a writer's commit and its append,
    // the database already says "moved" while the new node does not list the id yet,
    // and a removal in that window would hide a row that matched throughout.
    let mut rehomed: Vec<(String, Vec<u8>)> = Vec::new();
    let mut cleaned: Vec<(String, Vec<u8>, u64)> = Vec::new();
    let mut seen = Seen::new(objects.len());
    for n in &nodes {
        if let Some(cas) = n.fill_cas {
            let bytes = codec::encode_node(&n.ids);
            if bytes.len() <= max_value {
                writes.cas(n.key.clone(), bytes, inner.settings.node_ttl, cas);
            } else {
                writes.delete(n.key.clone());
            }
            continue;
        }
        let Some(cas) = n.read_cas else { continue };
        seen.next_pass();
        let mut kept = Vec::with_capacity(n.ids.len());
        let mut removed = 0u64;
        for (id, &slot) in n.ids.iter().zip(&n.slots) {
            if !seen.first(slot) {
                continue;
            }
            let o = &objects[slot];
            // Seen only in the cache (and matching): keep.
            let belongs =
                !o.from_db || o.row.as_ref().is_some_and(|row| node_matches(schema, &n.node, &|c| row.column_value(c)));
            if belongs {
                kept.push(id.clone());
            } else {
                removed += 1;
                if let (Some(row), Some(index)) = (&o.row, n.node.index) {
                    let home = node_of_row(schema, index, &|c| row.column_value(c));
                    // Once per (node, id) and read: an id listed by many nodes (a
                    // fill keeps in-flight ids in each, K10) goes home once.
                    let entry = (keys.node(schema, &home), codec::id_record(id));
                    if !rehomed.contains(&entry) {
                        rehomed.push(entry);
                    }
                }
            }
        }
        if kept.len() != n.ids.len() {
            removed_total += removed;
            cleaned.push((n.key.clone(), codec::encode_node(&kept), cas));
        }
    }
    // Appends first, in their own batch; a clean-up whose appends did not all land
    // is dropped (the ids stay listed, and a later read cleans them).
    // An append refused by a node too full to take it (K11) means that node lacks
    // the id: it is deleted with the write-back, and the clean-up waits.
    let rehomed_ok = rehomed.is_empty() || {
        let ops = checked_appends(rehomed.iter().map(|(key, value)| (key.as_str(), value.as_slice())));
        let replies = inner.cache_run(&ops);
        let full = refused_appends(&ops, &replies);
        for key in &full {
            writes.delete((*key).to_owned());
        }
        full.is_empty() && replies.iter().all(|r| r.is_ok())
    };
    if rehomed_ok {
        Counters::add(&inner.stats.lazy_removals, removed_total);
        for (key, bytes, cas) in cleaned {
            writes.cleanup(key, bytes, inner.settings.node_ttl, cas);
        }
    }
    writes.run(inner);

    // The answer: each disjunct's candidates through the full predicate, deduped.
    // Each object is looked at once, so its row can be moved out.
    seen.next_pass();
    let mut rows: Vec<T> = Vec::with_capacity(objects.len());
    let candidates = disjunct_nodes
        .iter()
        .zip(&direct_slots)
        .flat_map(|(node_slots, direct)| node_slots.iter().flat_map(|&s| nodes[s].slots.iter()).chain(direct.iter()));
    for &slot in candidates {
        if !seen.first(slot) {
            continue;
        }
        if let Some(row) = objects[slot].row.take() {
            if q.matches(&row) {
                rows.push(row);
            }
        }
    }
    rows.sort_by(|a, b| a.key().into().order(&b.key().into()));
    Ok(Some(rows))
}

/// Reads one node's reply; `true` when it was a complete, readable node.
fn read_node(
    inner: &StoreInner,
    schema: &Schema,
    n: &mut NodeState,
    reply: &Result<CacheReply, crate::cache::CacheError>,
) -> bool {
    match reply {
        Ok(CacheReply::Hit { value, cas }) => match codec::decode_node(value, schema.key_column().ty) {
            Ok(ids) => {
                Counters::add(&inner.stats.node_hits, 1);
                n.ids = ids;
                n.read_cas = Some(*cas);
                return true;
            }
            // A placeholder that got appends: someone else is filling it.
            Err(NodeDecode::Unfilled) => Counters::add(&inner.stats.lease_busy, 1),
            // Garbage: overwrite it under its own CAS once the database answered.
            Err(NodeDecode::Corrupt) => n.fill_cas = Some(*cas),
        },
        Ok(CacheReply::LeaseWon { cas }) => n.fill_cas = Some(*cas),
        Ok(CacheReply::LeaseBusy) => Counters::add(&inner.stats.lease_busy, 1),
        Ok(_) | Err(_) => {}
    }
    Counters::add(&inner.stats.node_misses, 1);
    false
}

/// Answers every node of the query from one database statement, and so from one
/// snapshot. Used as soon as one node missed: node contents taken at different
/// moments (one from the cache now, another from the database later, or two
/// database queries in turn) can each miss a row that moved between them while it
/// matched the query throughout. The leases of the missed nodes were taken (round
/// trip 1) before this read, so a write committing from now on makes their fills
/// fail. Only membership is taken from the snapshot: the objects then go through the
/// cache as usual, where a miss is filled under its own lease.
fn snapshot_nodes<T: Model>(inner: &StoreInner, schema: &Schema, nodes: &mut [NodeState]) -> Result<(), Error> {
    let query = snapshot_query(inner.db.dialect(), schema, nodes).map_err(|e| Error::Param(e.to_string()))?;
    let rows: Vec<T> = load_rows(inner, &query)?;
    // Read *after* the rows (K10): the rows of an update whose cache batch has not
    // landed yet, which may be leaving these nodes while their new node does not
    // list them yet. Kept as candidates of every node filled here, so that a node
    // never loses an id before its new node has it; the predicate drops them from
    // answers and lazy removal from nodes once the database says where they live.
    let in_flight = inner.outbox.in_flight(inner, &schema.table, schema.key_column().ty)?;
    for n in nodes.iter_mut() {
        n.ids = rows
            .iter()
            .filter(|r| node_matches(schema, &n.node, &|c| r.column_value(c)))
            .map(|r| r.key().into())
            .collect();
        for id in &in_flight {
            if !n.ids.contains(id) {
                n.ids.push(id.clone());
            }
        }
        // The cached list is superseded by the snapshot: nothing to clean.
        n.read_cas = None;
    }
    Ok(())
}

/// Whether [`snapshot_query`] can read these nodes in one statement.
fn snapshot_possible(schema: &Schema, nodes: &[NodeState]) -> bool {
    nodes.len() <= MAX_SNAPSHOT_NODES
        || nodes
            .iter()
            .filter(|n| n.node.index.and_then(|i| schema.indexes.get(i)).is_some_and(|ix| ix.prefix.is_some()))
            .count()
            <= MAX_WIDE_PREFIX_NODES
}

/// The one statement that reads every node of a query (only called when
/// [`snapshot_possible`]).
///
/// Up to [`MAX_SNAPSHOT_NODES`] nodes, [`sql::node_rows`]: each node's condition
/// is the SQL the model's indexes are built for, one index lookup per node. Wider,
/// [`sql::node_rows_by_lists`]: one bound list per index column, a superset for
/// composite indexes that `snapshot_nodes` makes exact by assigning rows to nodes
/// with `node_matches`.
fn snapshot_query(dialect: Dialect, schema: &Schema, nodes: &[NodeState]) -> Result<sql::SqlQuery, sql::SqlError> {
    let specs: Vec<(usize, &[Value])> =
        nodes.iter().filter_map(|n| n.node.index.map(|i| (i, n.node.values.as_slice()))).collect();
    if specs.len() <= MAX_SNAPSHOT_NODES {
        return Ok(sql::node_rows(dialect, schema, &specs));
    }
    sql::node_rows_by_lists(dialect, schema, &specs)
}

/// Reads one batch's object replies into their objects, counting the hits once.
fn read_objects<T: Model>(
    inner: &StoreInner,
    objects: &mut [ObjectState<T>],
    replies: &[Result<CacheReply, crate::cache::CacheError>],
) {
    let hits =
        objects.iter_mut().zip(replies).map(|(o, reply)| read_object(inner, o, reply)).filter(|&hit| hit).count();
    Counters::add(&inner.stats.object_hits, hits as u64);
}

/// Reads one object's reply; `true` for a hit, which the caller counts (one
/// counter update per batch rather than per object).
fn read_object<T: Model>(
    inner: &StoreInner,
    o: &mut ObjectState<T>,
    reply: &Result<CacheReply, crate::cache::CacheError>,
) -> bool {
    match reply {
        Ok(CacheReply::Hit { value, cas }) => match codec::decode_object::<T>(value) {
            // A row is only this object if it carries this object's key: bytes of
            // another row under this key (a corrupted or cross-wired value) would
            // otherwise be returned in its place, and twice.
            Some(row) if row.key().into() == o.id => {
                o.row = Some(row);
                return true;
            }
            // Undecodable bytes, or another row's: a miss, repaired under the
            // value's own CAS.
            _ => o.fill_cas = Some(*cas),
        },
        Ok(CacheReply::LeaseWon { cas }) => o.fill_cas = Some(*cas),
        Ok(CacheReply::LeaseBusy) => Counters::add(&inner.stats.lease_busy, 1),
        Ok(_) | Err(_) => {}
    }
    Counters::add(&inner.stats.object_misses, 1);
    o.needs_db = true;
    false
}

/// What a lost CAS of the third batch leaves behind.
#[derive(Clone, Copy, PartialEq, Eq)]
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

/// A CAS store of the third batch.
struct CasStore {
    value: Vec<u8>,
    ttl: u32,
    cas: u64,
    on_lost: OnLost,
}

/// The third batch: CAS stores and deletes (`None`), sent together.
#[derive(Default)]
struct WriteBack {
    ops: Vec<(String, Option<CasStore>)>,
}

impl WriteBack {
    /// A fill under lease, or the repair of an unreadable value under its CAS.
    fn cas(&mut self, key: String, value: Vec<u8>, ttl: u32, cas: u64) {
        self.ops.push((key, Some(CasStore { value, ttl, cas, on_lost: OnLost::Delete })));
    }

    /// A lazy-removal write-back of a cleaned node, under the CAS read in this fetch.
    fn cleanup(&mut self, key: String, value: Vec<u8>, ttl: u32, cas: u64) {
        self.ops.push((key, Some(CasStore { value, ttl, cas, on_lost: OnLost::Keep })));
    }

    fn delete(&mut self, key: String) {
        self.ops.push((key, None));
    }

    fn run(self, inner: &StoreInner) {
        if self.ops.is_empty() {
            return;
        }
        let ops: Vec<CacheOp<'_>> = self
            .ops
            .iter()
            .map(|(key, store)| match store {
                Some(s) => CacheOp::Cas { key, value: &s.value, ttl: s.ttl, cas: s.cas },
                None => CacheOp::Delete { key },
            })
            .collect();
        let replies = inner.cache_run(&ops);
        let mut lost: Vec<CacheOp<'_>> = Vec::new();
        for ((op, reply), (_, store)) in ops.iter().zip(&replies).zip(&self.ops) {
            if let CacheOp::Cas { key, .. } = op {
                let on_lost = store.as_ref().map_or(OnLost::Delete, |s| s.on_lost);
                match reply {
                    Ok(CacheReply::Stored) => Counters::add(&inner.stats.fills_won, 1),
                    // A write touched the key since we read it. For a lease
                    // placeholder that means it now holds appends but no header and
                    // would block every other fill until it expires: delete it so the
                    // next reader fills it (fills re-read the database after taking
                    // their lease). A complete node is never deleted here: see
                    // `OnLost::Keep`.
                    Ok(CacheReply::Exists) if on_lost == OnLost::Delete => {
                        Counters::add(&inner.stats.fills_lost, 1);
                        lost.push(CacheOp::Delete { key });
                    }
                    _ => Counters::add(&inner.stats.fills_lost, 1),
                }
            }
        }
        if !lost.is_empty() {
            inner.cache_run(&lost);
        }
    }
}

/// `scan!`: the query on the database. When the filter's SQL is exact (no
/// arithmetic, no NaN), ordering, `LIMIT` and `OFFSET` run in SQL, as written.
/// Otherwise the database selects a superset (`relax::superset`), the in-memory
/// predicate decides, and ordering and paging follow in memory, so that no page is
/// cut from rows SQL would have dropped.
pub(crate) fn scan_fetch<T: Model>(store: &Store, q: &Select<'_, T>) -> Result<Vec<T>, Error> {
    let inner = &*store.inner;
    let prepared = prepared(&q.compiled)?;
    let params = q.params.as_params();
    let relaxed = prepared.filter.as_ref().map(|f| relax::superset(f, params));
    if relaxed.as_ref().is_none_or(|r| r.exact) {
        let spec = SelectSpec {
            filter: prepared.filter.as_ref(),
            order: &q.order,
            limit: q.limit,
            offset: (q.offset > 0).then_some(q.offset),
        };
        let query =
            sql::select(inner.db.dialect(), T::schema(), spec, params).map_err(|e| Error::Param(e.to_string()))?;
        // The SQL is the predicate's own; the predicate still has the last word, so
        // that no path ever returns a row it rejects.
        return Ok(load_rows(inner, &query)?.into_iter().filter(|r| q.matches(r)).collect());
    }
    let mut rows = superset_rows(inner, q, prepared)?;
    rows.sort_by(|a, b| a.key().into().order(&b.key().into()));
    Ok(page(rows, &q.order, q.limit, q.offset))
}

/// `scan!(…).count()`: `COUNT(*)` in SQL when the filter's SQL is exact; otherwise
/// the superset's rows counted through the in-memory predicate.
pub(crate) fn scan_count<T: Model>(store: &Store, q: &Select<'_, T>) -> Result<u64, Error> {
    let inner = &*store.inner;
    let prepared = prepared(&q.compiled)?;
    let params = q.params.as_params();
    let exact = prepared.filter.as_ref().is_none_or(|f| relax::superset(f, params).exact);
    if !exact {
        return Ok(superset_rows(inner, q, prepared)?.len() as u64);
    }
    let query = sql::count(inner.db.dialect(), T::schema(), prepared.filter.as_ref(), params)
        .map_err(|e| Error::Param(e.to_string()))?;
    inner.count_db(1);
    inner.tracer.sql(&query.text, query.params.len());
    let rows = inner.db.query(&query, &[Type::Int])?;
    Ok(rows.first().and_then(|r| r.first()).and_then(Value::as_i64).map_or(0, |n| n.max(0) as u64))
}

pub(crate) fn view<T: Model, O>(store: &Store, v: &View<'_, T, O>) -> Result<Option<f64>, Error> {
    let inner = &*store.inner;
    let agg = match &v.compiled.aggregate {
        Some(Ok(agg)) => agg,
        Some(Err(e)) => return Err(Error::from_query(e.clone(), &v.compiled.source)),
        None => return Err(Error::Config("a view without an aggregate".into())),
    };
    let schema = T::schema();
    let Some(filter) = &v.filter else {
        let query = sql::aggregate(inner.db.dialect(), schema, None, agg, v.params.as_params())
            .map_err(|e| Error::Param(e.to_string()))?;
        inner.count_db(1);
        inner.tracer.sql(&query.text, query.params.len());
        let rows = inner.db.query(&query, &[Type::Float])?;
        return Ok(rows.first().and_then(|r| r.first()).and_then(Value::as_f64));
    };
    // Filtered: the rows come through the cache; the aggregate is computed here,
    // with SQL's rules (NULLs skipped, no rows → None, count → 0).
    let rows = matching_rows(store, filter)?;
    let params = v.params.as_params();
    let values: Vec<f64> = match &agg.arg {
        None => return Ok(Some(rows.len() as f64)),
        Some(arg) => rows
            .iter()
            .filter_map(|r| memdex_grammar::eval::value(schema, arg, &|c| r.column_value(c), params).as_f64())
            .collect(),
    };
    use memdex_grammar::ir::AggFunc;
    Ok(match agg.func {
        AggFunc::Count => Some(values.len() as f64),
        _ if values.is_empty() => None,
        AggFunc::Sum => Some(values.iter().sum()),
        AggFunc::Avg => Some(values.iter().sum::<f64>() / values.len() as f64),
        AggFunc::Min => values.iter().copied().reduce(f64::min),
        AggFunc::Max => values.iter().copied().reduce(f64::max),
    })
}

pub(crate) fn view_sql<T: Model, O>(v: &View<'_, T, O>, dialect: Dialect) -> String {
    let filter = v.compiled.prepared.as_ref().ok().and_then(|p| p.filter.as_ref());
    match &v.compiled.aggregate {
        Some(Ok(agg)) => match sql::aggregate(dialect, T::schema(), filter, agg, v.params.as_params()) {
            Ok(q) => q.text,
            Err(e) => format!("-- cannot emit SQL: {e}"),
        },
        _ => "-- no aggregate".into(),
    }
}

fn select_sql(
    schema: &Schema,
    compiled: &Compiled,
    params: &BoundParams,
    spec: &(Vec<OrderBy>, Option<u64>, u64),
    dialect: Dialect,
) -> String {
    let filter = compiled.prepared.as_ref().ok().and_then(|p| p.filter.as_ref());
    let spec = SelectSpec { filter, order: &spec.0, limit: spec.1, offset: (spec.2 > 0).then_some(spec.2) };
    match sql::select(dialect, schema, spec, params.as_params()) {
        Ok(q) => q.text,
        Err(e) => format!("-- cannot emit SQL: {e}"),
    }
}

pub(crate) fn explain(
    schema: &Schema,
    compiled: &Compiled,
    params: &BoundParams,
    spec: (Vec<OrderBy>, Option<u64>, u64),
    dialect: Dialect,
) -> Explain {
    let sql = select_sql(schema, compiled, params, &spec, dialect);
    let keys = KeySpace::new("memdex", schema, 0);
    match &compiled.prepared {
        Ok(p) => memdex_grammar::explain::explain(schema, p.plan.as_ref(), &keys, sql, &p.param),
        Err(_) => memdex_grammar::explain::explain(schema, None, &keys, sql, "c"),
    }
}

pub(crate) fn sql_text(
    schema: &Schema,
    compiled: &Compiled,
    params: &BoundParams,
    spec: (Vec<OrderBy>, Option<u64>, u64),
    dialect: Dialect,
) -> String {
    select_sql(schema, compiled, params, &spec, dialect)
}

#[cfg(test)]
mod tests {
    use memdex_grammar::Type;

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
