//! Outbox drains (race rule 4, lost invalidations; see `crate::outbox`):
//!
//! * this process's own failed invalidations, in ONE cache batch per call, however
//!   many writes failed: a call never pays a round trip (or a timeout) per entry;
//! * every `outbox_interval`, everyone's entries older than `outbox_grace`: one
//!   select, one cache batch of their keys, one delete of the applied entries.
//!
//! Deleting a key is always safe (fills happen under a lease taken before their
//! database read), so an entry applied twice, or by two processes, is harmless.

use memdex_grammar::sql::SqlQuery;

use super::{CacheFacts, Env, Label, Machine, Replies, SqlReply, SqlRequest, Step};
use crate::cache::{CacheOp, CacheReply};
use crate::db::DbError;
use crate::error::Error;
use crate::outbox::{self, Entry};
use crate::stats::Counters;

/// What one entry's deletes came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Applied {
    /// Every key deleted (or already gone).
    All,
    /// Some failed, and the cache owes every one that failed (deletes them on
    /// their server before it serves again).
    Owed,
    /// Some failed.
    Not,
}

#[derive(Debug)]
enum Phase {
    /// The table's version of those of this process's entries whose write's
    /// outcome it does not know (these ids: `Outbox::in_doubt`), read before the
    /// retry.
    Resolve(SqlQuery, Vec<i64>, Vec<Entry>),
    /// The retry of this process's own entries, those in doubt named.
    Own(Vec<Entry>, Vec<i64>),
    /// The periodic drain: the old entries of every process.
    Select(SqlQuery),
    /// Their keys, deleted in one batch.
    Delete(Vec<Entry>),
    /// The applied entries (and this process's done ones) removed from the table.
    Forget(Vec<SqlQuery>),
    Done,
}

/// One drain: own entries if any are pending; the table when `periodic`.
#[derive(Debug)]
pub(crate) struct Drain<'a> {
    env: Env<'a>,
    phase: Phase,
    periodic: bool,
    applied: usize,
    error: Option<Error>,
}

impl<'a> Drain<'a> {
    /// A drain as every call runs it: own entries when pending, the table when the
    /// interval has passed. `None` when there is nothing to do.
    pub(crate) fn due(env: Env<'a>) -> Option<Drain<'a>> {
        let outbox = &env.ctx.outbox;
        let periodic = outbox.due();
        (periodic || outbox.has_pending()).then(|| Drain::new(env, periodic))
    }

    /// Whether the interval had passed (the table is drained too), as opposed to a
    /// drain of this process's pending entries alone, which every call runs while
    /// any are pending.
    pub(crate) fn is_periodic(&self) -> bool {
        self.periodic
    }

    /// A drain of own entries and, with `periodic`, of the table now.
    pub(crate) fn new(env: Env<'a>, periodic: bool) -> Drain<'a> {
        let mut drain = Drain { env, phase: Phase::Done, periodic, applied: 0, error: None };
        drain.phase = if env.ctx.outbox.has_pending() { drain.own() } else { drain.table() };
        drain
    }

    /// The retry of this process's pending entries, after reading the table's
    /// version of those in doubt.
    fn own(&self) -> Phase {
        let outbox = &self.env.ctx.outbox;
        let entries = outbox.take_pending();
        let in_doubt = outbox.take_in_doubt(&entries);
        if in_doubt.is_empty() {
            return Phase::Own(entries, in_doubt);
        }
        Phase::Resolve(outbox::entries_by_ids(self.env.dialect, &in_doubt), in_doubt, entries)
    }

    /// The periodic part, if due.
    fn table(&mut self) -> Phase {
        if !self.periodic {
            return Phase::Done;
        }
        let cutoff = self.env.ctx.outbox.start_table_drain();
        match outbox::drain_query(self.env.dialect, cutoff) {
            Ok(query) => Phase::Select(query),
            Err(e) => self.fail(e),
        }
    }

    fn fail(&mut self, e: DbError) -> Phase {
        self.error = Some(Error::from(e));
        Phase::Done
    }

    /// The statements that forget the applied entries and this process's done ones.
    fn forget(&mut self, applied: &[i64]) -> Phase {
        let mut statements = Vec::new();
        for ids in [applied.to_vec(), self.env.ctx.outbox.take_done()] {
            if ids.is_empty() {
                continue;
            }
            match outbox::delete_ids(self.env.dialect, &ids) {
                Ok(q) => statements.push(q),
                Err(e) => return self.fail(e),
            }
        }
        if statements.is_empty() { Phase::Done } else { Phase::Forget(statements) }
    }

    fn outcomes(&self, entries: &[Entry], replies: &Replies) -> Vec<Applied> {
        outcomes(self.env.cache, entries, replies)
    }
}

/// One outcome per entry of a batch of their deletes ([`deletes`]).
pub(super) fn outcomes(cache: &dyn CacheFacts, entries: &[Entry], replies: &Replies) -> Vec<Applied> {
    let mut at = 0;
    entries
        .iter()
        .map(|(_, keys)| {
            let answers = replies.get(at..at + keys.len());
            at += keys.len();
            let Some(answers) = answers else { return Applied::Not };
            let failed: Vec<&str> = keys
                .iter()
                .zip(answers)
                .filter(|(_, reply)| !matches!(reply, Ok(CacheReply::Deleted | CacheReply::NotFound)))
                .map(|(key, _)| key.as_str())
                .collect();
            if failed.is_empty() {
                Applied::All
            } else if cache.owes(&failed) {
                Applied::Owed
            } else {
                Applied::Not
            }
        })
        .collect()
}

impl Drop for Drain<'_> {
    fn drop(&mut self) {
        // Dropped while retrying this process's own entries (a cancelled future):
        // they go back, or this process would forget to apply them.
        if let Phase::Own(entries, in_doubt) | Phase::Resolve(_, in_doubt, entries) =
            std::mem::replace(&mut self.phase, Phase::Done)
        {
            self.env.ctx.outbox.mark_in_doubt(in_doubt);
            self.env.ctx.outbox.return_pending(entries);
        }
    }
}

/// One batch deleting every key of `entries`, in entry order.
pub(super) fn deletes(entries: &[Entry]) -> Vec<CacheOp<'_>> {
    entries.iter().flat_map(|(_, keys)| keys.iter().map(|key| CacheOp::Delete { key })).collect()
}

impl Machine for Drain<'_> {
    type Output = usize;

    fn label(&self) -> Label {
        Label { op: "outbox_drain", model: "" }
    }

    fn poll(&mut self) -> Step<'_> {
        match &self.phase {
            Phase::Own(entries, _) | Phase::Delete(entries) => Step::Cache(deletes(entries)),
            Phase::Select(query) | Phase::Resolve(query, ..) => {
                Step::Sql(SqlRequest::Query { query, types: outbox::ROW_TYPES })
            }
            Phase::Forget(statements) => match statements.last() {
                Some(query) => Step::Sql(SqlRequest::Execute(query)),
                None => Step::Done,
            },
            Phase::Done => Step::Done,
        }
    }

    fn handle_cache(&mut self, replies: Replies) {
        match std::mem::replace(&mut self.phase, Phase::Done) {
            Phase::Own(entries, in_doubt) => {
                // An entry now applied is done, but for one in doubt, which stays in
                // the table for the periodic drain (its statement may commit after
                // this); one whose failed keys the cache owes leaves this process's
                // list (the table entry tells the others); the rest stays pending.
                let outcomes = self.outcomes(&entries, &replies);
                let (mut still, mut doubted) = (Vec::new(), Vec::new());
                let mut applied = 0;
                for ((id, keys), outcome) in entries.into_iter().zip(outcomes) {
                    match outcome {
                        Applied::All => {
                            if !in_doubt.contains(&id) {
                                self.env.ctx.outbox.done(id);
                            }
                            applied += 1;
                        }
                        Applied::Owed => {}
                        Applied::Not => {
                            if in_doubt.contains(&id) {
                                doubted.push(id);
                            }
                            still.push((id, keys));
                        }
                    }
                }
                self.env.ctx.outbox.mark_in_doubt(doubted);
                self.env.ctx.outbox.return_pending(still);
                Counters::add(&self.env.ctx.stats.outbox_drained, applied as u64);
                self.applied += applied;
                self.phase = self.table();
            }
            Phase::Delete(entries) => {
                let outcomes = self.outcomes(&entries, &replies);
                let applied: Vec<i64> =
                    entries.iter().zip(outcomes).filter(|(_, o)| *o == Applied::All).map(|((id, _), _)| *id).collect();
                Counters::add(&self.env.ctx.stats.outbox_drained, applied.len() as u64);
                self.applied += applied.len();
                self.phase = self.forget(&applied);
            }
            other => self.phase = other,
        }
    }

    fn handle_sql(&mut self, reply: Result<SqlReply, DbError>) {
        let reply = match reply {
            Ok(reply) => reply,
            Err(e) => {
                if let Phase::Resolve(_, in_doubt, entries) = std::mem::replace(&mut self.phase, Phase::Done) {
                    self.env.ctx.outbox.mark_in_doubt(in_doubt);
                    self.env.ctx.outbox.return_pending(entries);
                }
                self.phase = self.fail(e);
                return;
            }
        };
        match std::mem::replace(&mut self.phase, Phase::Done) {
            Phase::Resolve(_, in_doubt, mut entries) => {
                // An entry the table does not hold was not written (or is being
                // written still: the periodic drain of the table deletes its keys
                // then); its known keys go all the same.
                for (id, keys) in outbox::entries(&reply.into_rows()) {
                    if let Some((_, known)) = entries.iter_mut().find(|(e, _)| *e == id) {
                        known.extend(keys);
                    }
                }
                self.phase = Phase::Own(entries, in_doubt);
            }
            Phase::Select(_) => {
                let entries = outbox::entries(&reply.into_rows());
                self.phase = if entries.is_empty() { self.forget(&[]) } else { Phase::Delete(entries) };
            }
            Phase::Forget(mut statements) => {
                statements.pop();
                if !statements.is_empty() {
                    self.phase = Phase::Forget(statements);
                }
            }
            other => self.phase = other,
        }
    }

    fn finish(mut self) -> Result<usize, Error> {
        match self.error.take() {
            Some(e) => Err(e),
            None => Ok(self.applied),
        }
    }
}
