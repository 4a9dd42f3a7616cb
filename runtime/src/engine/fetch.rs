//! `fetch` as a machine: the cache-aware index scan, phase by phase (DESIGN.md
//! "Execution"). A hot fetch is at most two round trips whatever the number of
//! disjuncts, `in` values or objects, and one when the near cache keeps every listed
//! object at the version its nodes name (round trip 2 then has nothing to read):
//!
//! 1. [`Phase::ReadNodes`]: one pipelined get of every index node of every disjunct
//!    (and of the objects of key lookups), each with a lease on miss;
//! 2. [`Phase::ReadObjects`]: one pipelined get of every object the nodes list, and
//!    the nodes' CAS again when there are several. When every node came from the
//!    cache the objects are plain reads (one multi-key command on memcached) and only
//!    those that miss are read again under lease ([`Phase::LeaseObjects`], a round
//!    trip only a miss costs); after a snapshot they take their leases at once.
//!
//! Misses are answered from the database: every node of the query by one snapshot
//! ([`Phase::Snapshot`], read *after* the leases were taken), every missing object
//! by `WHERE key IN (…)` ([`Phase::LoadObjects`]). Then, only when there is something
//! to write: the appends that re-home ids before a lazy removal ([`Phase::Rehome`]),
//! and one batch of fills, repairs and clean-ups, all under CAS ([`Phase::WriteBack`]).

use memdex_grammar::relax;
use memdex_grammar::sql::{self, SelectSpec, SqlQuery};
use memdex_grammar::{Prepared, Type};

use super::database::{Page, paged};
use super::scan::{Scan, WritePlan};
use super::window;
use super::writeback::WriteBack;
use super::{
    Env, Label, Machine, Outcome, Replies, SqlReply, SqlRequest, Step, column_types, decode_rows, sort_by_key,
};
use crate::cache::{CacheOp, checked_appends, refused_appends};
use crate::db::DbError;
use crate::error::Error;
use crate::model::Model;
use crate::prepared::Filter;
use crate::stats::Counters;

/// Where a fetch is.
enum Phase<T> {
    /// Round trip 1: nodes (and key-lookup objects), leases taken on miss.
    ReadNodes,
    /// A node missed: one statement reads every node of the query (one moment, so a
    /// row moving between two nodes is never missed by both), after the leases.
    Snapshot(SqlQuery),
    /// The updates still in flight, read *after* the snapshot's rows (K10).
    InFlight {
        rows: Vec<T>,
        query: SqlQuery,
    },
    /// Round trip 2: the objects the nodes list, and the CAS re-check.
    ReadObjects,
    /// The objects round trip 2 read without a lease and missed, read again under
    /// lease (only when some missed).
    LeaseObjects,
    /// The rows of missing or doubtful objects, a chunk per statement.
    LoadObjects {
        queries: Vec<SqlQuery>,
        loaded: Vec<T>,
    },
    /// Ids appended to their new node before any node is written back without them.
    Rehome(WritePlan),
    /// Fills, repairs and lazy-removal clean-ups, under CAS.
    WriteBack(WriteBack),
    /// Placeholders whose fill lost: deleted so that they block no other fill.
    DeleteLost(Vec<String>),
    /// The database answers the whole query (degraded): a superset, then the
    /// in-memory predicate.
    Database(SqlQuery),
    Done,
}

/// One `fetch` (or `count`): the rows matching the filter, paged by `page`.
pub(crate) struct Fetch<'a, T: Model> {
    env: Env<'a>,
    filter: &'a Filter<'a, T>,
    page: Page<'a>,
    types: Vec<Type>,
    phase: Phase<T>,
    scan: Option<Scan<T>>,
    result: Option<Result<Vec<T>, Error>>,
    /// The database answered the whole query.
    degraded: bool,
    /// What the scan found, kept when `answer` consumes it.
    answered: Outcome,
}

impl<'a, T: Model> Fetch<'a, T> {
    /// A fetch of `filter`. `cache_trusted`: false while this process has
    /// invalidations it could not apply (the database answers).
    pub(crate) fn new(env: Env<'a>, filter: &'a Filter<'a, T>, page: Page<'a>, cache_trusted: bool) -> Fetch<'a, T> {
        let mut fetch = Fetch {
            env,
            filter,
            page,
            types: column_types::<T>(),
            phase: Phase::Done,
            scan: None,
            result: None,
            degraded: false,
            answered: Outcome::default(),
        };
        match fetch.start(cache_trusted) {
            Ok(phase) => fetch.phase = phase,
            Err(e) => fetch.result = Some(Err(e)),
        }
        fetch
    }

    fn start(&mut self, cache_trusted: bool) -> Result<Phase<T>, Error> {
        let prepared = self.filter.prepared()?;
        let Some(plan) = prepared.plan.as_ref().filter(|_| cache_trusted) else {
            return self.degrade(prepared);
        };
        // A page of an ordered index reads that index's node, and only the page's
        // objects when the node can order itself (`window`).
        let ordered = window::ordered_plan::<T>(plan, &self.page);
        let plan = ordered.as_ref().map_or(plan, |(plan, _)| plan);
        let Some(mut scan) = Scan::bind(self.env.ctx, plan, self.filter.params.as_params())? else {
            return self.degrade(prepared);
        };
        if let Some((_, window)) = ordered {
            scan.set_window(window);
        }
        // A node on a cache server marked down cannot hit, and one missing node sends
        // the query to a snapshot from the database anyway: answer it there at once,
        // without taking leases that nobody would fill.
        if scan.nodes.iter().any(|n| !self.env.cache.is_available(&n.key)) {
            tracing::debug!("an index node's cache server is down; answering from the database");
            return self.degrade(prepared);
        }
        self.scan = Some(scan);
        Ok(Phase::ReadNodes)
    }

    /// The query on the database alone: the database selects a superset of the
    /// matching rows (`relax::superset`: the filter without the literals whose SQL
    /// may disagree with Rust), and the in-memory predicate decides.
    fn degrade(&mut self, prepared: &Prepared) -> Result<Phase<T>, Error> {
        Counters::add(&self.env.ctx.stats.degraded_calls, 1);
        self.degraded = true;
        Ok(Phase::Database(superset_query::<T>(self.env, self.filter, prepared)?))
    }

    /// The scan of the cache phases. Every phase that reads or writes the cache has
    /// one (`start` sets it before `ReadNodes`, only `answer` takes it); an empty
    /// scan stands in should that ever not hold, and answers nothing.
    fn scan(&mut self) -> &mut Scan<T> {
        self.scan.get_or_insert_with(Scan::empty)
    }

    fn fail(&mut self, error: Error) {
        self.result = Some(Err(error));
        self.phase = Phase::Done;
    }

    fn lease(&self) -> Option<u32> {
        Some(self.env.ctx.settings.lease_ttl)
    }

    /// The lease round trip 2 takes: none when its objects are likely hot, so that
    /// they go as plain reads (one multi-key command on memcached, far cheaper for
    /// the server than a leased read per object) and only those that miss are
    /// leased, in a round of their own; at once otherwise
    /// ([`Scan::objects_likely_cold`]).
    fn objects_lease(&self) -> Option<u32> {
        self.lease().filter(|_| self.scan.as_ref().is_none_or(Scan::objects_likely_cold))
    }

    /// After round trip 1.
    fn nodes_read(&mut self, replies: &mut Replies) {
        let (ctx, dialect) = (self.env.ctx, self.env.dialect);
        let all_hit = self.scan().read_round_one(ctx, replies);
        let scan = self.scan();
        if let Some(rows) = scan.take_node_rows() {
            return self.answer_from_kept(&rows);
        }
        if all_hit && scan.list_window() {
            let more = scan.use_near(ctx);
            self.phase = if more { Phase::ReadObjects } else { self.objects_read() };
            return;
        }
        if all_hit || scan.nodes.is_empty() {
            return self.objects_listed();
        }
        if !scan.snapshot_possible() {
            tracing::debug!("too many prefix nodes for one snapshot; answering from the database");
            let prepared = self.filter.prepared();
            let next = prepared.and_then(|p| self.degrade(p));
            return self.go(next);
        }
        let next = scan.snapshot_query(dialect).map(Phase::Snapshot);
        self.go(next)
    }

    fn go(&mut self, next: Result<Phase<T>, Error>) {
        match next {
            Ok(phase) => self.phase = phase,
            Err(e) => self.fail(e),
        }
    }

    /// After the nodes are known (from the cache or a snapshot).
    fn objects_listed(&mut self) {
        let ctx = self.env.ctx;
        let scan = self.scan();
        let more = scan.list_objects() && scan.use_near(ctx);
        self.phase = if more { Phase::ReadObjects } else { self.objects_read() };
    }

    /// After round trip 2 (or when it had nothing to read).
    fn objects_read(&mut self) -> Phase<T> {
        let (ctx, dialect, filter) = (self.env.ctx, self.env.dialect, self.filter);
        let scan = self.scan();
        if scan.paging() {
            if let Some(rows) = scan.window_answer(ctx, filter) {
                self.answered = scan.outcome();
                self.scan = None;
                self.result = Some(Ok(rows));
                return Phase::Done;
            }
            // An object of the page missed or changed since the node was read: the
            // rest of the node is read as an unordered scan reads it.
            tracing::debug!("a page object missed or changed; reading the whole ordered node");
            match scan.abandon_window() {
                Some(true) if scan.use_near(ctx) => return Phase::ReadObjects,
                Some(_) => {}
                None => {
                    let prepared = self.filter.prepared();
                    self.scan = None;
                    return prepared.and_then(|p| self.degrade(p)).unwrap_or_else(|e| {
                        self.result = Some(Err(e));
                        Phase::Done
                    });
                }
            }
        }
        let scan = self.scan();
        scan.doubt_changed_objects();
        let queries = scan.doubtful_queries(dialect);
        if queries.is_empty() { self.plan_writes() } else { Phase::LoadObjects { queries, loaded: Vec::new() } }
    }

    fn plan_writes(&mut self) -> Phase<T> {
        let (ctx, max_value) = (self.env.ctx, self.env.cache.max_value_size());
        let plan = self.scan().plan_writes(ctx, max_value);
        if plan.rehomed.is_empty() { self.clean(plan, true) } else { Phase::Rehome(plan) }
    }

    /// Adds the clean-ups to the write-back once their re-homing appends all landed
    /// (otherwise the ids stay listed, and a later read cleans them).
    fn clean(&mut self, plan: WritePlan, rehomed: bool) -> Phase<T> {
        let WritePlan { mut writes, cleaned, removed, .. } = plan;
        if rehomed {
            Counters::add(&self.env.ctx.stats.lazy_removals, removed);
            let ttl = self.env.ctx.settings.node_ttl;
            for (key, bytes, cas) in cleaned {
                writes.cleanup(key, bytes, ttl, cas);
            }
        }
        if writes.is_empty() { self.answer() } else { Phase::WriteBack(writes) }
    }

    fn answer(&mut self) -> Phase<T> {
        let ctx = self.env.ctx;
        let rows = self
            .scan
            .take()
            .map(|mut scan| {
                self.answered = scan.outcome();
                scan.keep_node_rows(ctx);
                scan.keep_near(ctx);
                scan.answer(self.filter)
            })
            .unwrap_or_default();
        self.result = Some(Ok(paged(rows, self.page)));
        Phase::Done
    }

    /// The answer from the rows the near cache kept for each node's bytes (each
    /// sorted by key, no id in two): the filter decides, as over rows listed and
    /// looked up one by one.
    fn answer_from_kept(&mut self, kept: &[std::sync::Arc<Vec<T>>]) {
        let stats = &self.env.ctx.stats;
        let total: usize = kept.iter().map(|rows| rows.len()).sum();
        Counters::add(&stats.near_node_hits, 1);
        Counters::add(&stats.near_hits, total as u64);
        self.answered = Outcome { node_hits: kept.len() as u64, near_hits: total as u64, ..Outcome::default() };
        self.scan = None;
        let mut rows: Vec<T> = Vec::with_capacity(total);
        rows.extend(kept.iter().flat_map(|rows| rows.iter()).filter(|row| self.filter.matches(row)).cloned());
        if kept.len() > 1 {
            sort_by_key(&mut rows);
        }
        self.result = Some(Ok(paged(rows, self.page)));
        self.phase = Phase::Done;
    }
}

impl<T: Model> Machine for Fetch<'_, T> {
    type Output = Vec<T>;

    fn label(&self) -> Label {
        Label { op: "fetch", model: &T::schema().model }
    }

    fn outcome(&self) -> Outcome {
        let mut outcome = self.scan.as_ref().map_or(self.answered, Scan::outcome);
        outcome.degraded = self.degraded;
        outcome
    }

    fn poll(&mut self) -> Step<'_> {
        let lease = self.lease();
        match &self.phase {
            Phase::ReadNodes => {
                let scan = self.scan.as_ref();
                // Nodes that cannot be read in one snapshot are read without leases:
                // if one misses, the database answers the query, so no lease would be
                // filled.
                let lease = lease.filter(|_| scan.is_some_and(|s| s.snapshot_possible()));
                Step::Cache(scan.map(|s| s.round_one(lease)).unwrap_or_default())
            }
            Phase::ReadObjects => {
                let lease = self.objects_lease();
                Step::Cache(self.scan.as_ref().map(|s| s.round_two(lease)).unwrap_or_default())
            }
            Phase::LeaseObjects => Step::Cache(self.scan.as_ref().map(|s| s.lease_round(lease)).unwrap_or_default()),
            Phase::Snapshot(query) | Phase::InFlight { query, .. } | Phase::Database(query) => {
                Step::Sql(SqlRequest::Query { query, types: self.types_for(query) })
            }
            Phase::LoadObjects { queries, .. } => match queries.last() {
                Some(query) => Step::Sql(SqlRequest::Query { query, types: &self.types }),
                None => Step::Done,
            },
            Phase::Rehome(plan) => {
                Step::Cache(checked_appends(plan.rehomed.iter().map(|(key, value)| (key.as_str(), value.as_slice()))))
            }
            Phase::WriteBack(writes) => Step::Cache(writes.ops()),
            Phase::DeleteLost(keys) => Step::Cache(keys.iter().map(|key| CacheOp::Delete { key }).collect()),
            Phase::Done => Step::Done,
        }
    }

    fn handle_cache(&mut self, mut replies: Replies) {
        match std::mem::replace(&mut self.phase, Phase::Done) {
            Phase::ReadNodes => self.nodes_read(&mut replies),
            Phase::ReadObjects => {
                let (ctx, leased) = (self.env.ctx, self.objects_lease().is_some());
                if self.scan().read_round_two(ctx, &replies, leased) {
                    self.phase = if self.scan().has_lease_round() { Phase::LeaseObjects } else { self.objects_read() };
                } else {
                    tracing::debug!("index nodes changed during the read; answering from the database");
                    let next = self.filter.prepared().and_then(|p| self.degrade(p));
                    self.scan = None;
                    self.go(next);
                }
            }
            Phase::LeaseObjects => {
                let ctx = self.env.ctx;
                self.scan().read_lease_round(ctx, &replies);
                self.phase = self.objects_read();
            }
            Phase::Rehome(mut plan) => {
                // An append refused by a node too full to take it (K11) means that
                // node lacks the id: it is deleted with the write-back, and the
                // clean-up waits.
                let ops = checked_appends(plan.rehomed.iter().map(|(key, value)| (key.as_str(), value.as_slice())));
                let full: Vec<String> = refused_appends(&ops, &replies).into_iter().map(str::to_owned).collect();
                let landed = full.is_empty() && replies.len() == ops.len() && replies.iter().all(|r| r.is_ok());
                for key in full {
                    plan.writes.delete(key);
                }
                self.phase = self.clean(plan, landed);
            }
            Phase::WriteBack(writes) => {
                let lost = writes.lost(self.env.ctx, &replies);
                self.phase = if lost.is_empty() { self.answer() } else { Phase::DeleteLost(lost) };
            }
            Phase::DeleteLost(_) => self.phase = self.answer(),
            other => self.phase = other,
        }
    }

    fn handle_sql(&mut self, reply: Result<SqlReply, DbError>) {
        let rows = match reply {
            Ok(reply) => reply.into_rows(),
            Err(e) => return self.fail(Error::from(e)),
        };
        match std::mem::replace(&mut self.phase, Phase::Done) {
            Phase::Snapshot(_) => match decode_rows::<T>(rows) {
                Ok(rows) => match self.env.ctx.outbox.in_flight_query(self.env.dialect) {
                    Ok(query) => self.phase = Phase::InFlight { rows, query },
                    Err(e) => self.fail(Error::from(e)),
                },
                Err(e) => self.fail(e),
            },
            Phase::InFlight { rows: snapshot, .. } => {
                let schema = T::schema();
                let in_flight = crate::outbox::in_flight_ids(&rows, &schema.table, schema.key_column().ty);
                self.scan().apply_snapshot(&snapshot, &in_flight);
                self.objects_listed();
            }
            Phase::LoadObjects { mut queries, mut loaded } => match decode_rows::<T>(rows) {
                Ok(rows) => {
                    queries.pop();
                    loaded.extend(rows);
                    if queries.is_empty() {
                        self.scan().place_loaded(loaded);
                        self.phase = self.plan_writes();
                    } else {
                        self.phase = Phase::LoadObjects { queries, loaded };
                    }
                }
                Err(e) => self.fail(e),
            },
            Phase::Database(_) => match decode_rows::<T>(rows) {
                Ok(rows) => {
                    let mut rows: Vec<T> = rows.into_iter().filter(|r| self.filter.matches(r)).collect();
                    sort_by_key(&mut rows);
                    self.result = Some(Ok(paged(rows, self.page)));
                }
                Err(e) => self.fail(e),
            },
            other => self.phase = other,
        }
    }

    fn finish(self) -> Result<Vec<T>, Error> {
        self.result.unwrap_or_else(|| Err(Error::Internal("a fetch finished without an answer".into())))
    }
}

impl<T: Model> Fetch<'_, T> {
    /// The row types a statement of this fetch returns: the model's columns, or the
    /// outbox's for the in-flight read.
    fn types_for(&self, query: &SqlQuery) -> &[Type] {
        match &self.phase {
            Phase::InFlight { query: q, .. } if std::ptr::eq(q, query) => crate::outbox::ROW_TYPES,
            _ => &self.types,
        }
    }
}

/// The superset statement of a filter: the filter without the literals whose SQL may
/// disagree with Rust (`relax::superset`). For an indexed query it keeps every
/// disjunct's index criteria, so it does not grow beyond the rows those name.
pub(crate) fn superset_query<T: Model>(
    env: Env<'_>,
    filter: &Filter<'_, T>,
    prepared: &Prepared,
) -> Result<SqlQuery, Error> {
    let params = filter.params.as_params();
    let relaxed = prepared.filter.as_ref().map(|f| relax::superset(f, params));
    let spec = SelectSpec { filter: relaxed.as_ref().and_then(|r| r.filter.as_deref()), ..SelectSpec::default() };
    sql::select(env.dialect, T::schema(), spec, params).map_err(|e| Error::Param(e.to_string()))
}
