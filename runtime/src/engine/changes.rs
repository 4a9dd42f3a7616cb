//! Applying the changes capture triggers recorded (`crate::capture`): one select of
//! the oldest, one lookup of the index registry for their tables, ONE cache batch
//! deleting every key they name, one delete of the applied ones. A change whose
//! keys could not all be deleted (and are not owed by the cache) stays for the
//! next drain; deleting twice is harmless.

use memdex_grammar::sql::SqlQuery;

use super::drain::{Applied, deletes, outcomes};
use super::{Env, Label, Machine, Replies, SqlReply, SqlRequest, Step};
use crate::capture::{self, Change};
use crate::db::DbError;
use crate::error::Error;
use crate::outbox::Entry;
use crate::registry;
use crate::stats::Counters;

#[derive(Debug)]
enum Phase {
    Select(SqlQuery),
    /// The registry rows of the changes' tables.
    Lookup {
        query: SqlQuery,
        changes: Vec<Change>,
    },
    /// Every change's keys, deleted in one batch.
    Delete(Vec<Entry>),
    Forget(SqlQuery),
    Done,
}

/// One drain of the captured changes.
#[derive(Debug)]
pub(crate) struct ApplyChanges<'a> {
    env: Env<'a>,
    phase: Phase,
    /// Rows that do not parse: deleted with the applied ones.
    unreadable: Vec<i64>,
    applied: usize,
    error: Option<Error>,
}

impl<'a> ApplyChanges<'a> {
    /// A drain of the changes when the store captures outside writes and its
    /// interval has passed; `None` otherwise.
    pub(crate) fn due(env: Env<'a>) -> Option<ApplyChanges<'a>> {
        env.ctx.capture.as_ref().is_some_and(capture::Capture::take_due).then(|| ApplyChanges::new(env))
    }

    /// A drain of the changes now.
    pub(crate) fn new(env: Env<'a>) -> ApplyChanges<'a> {
        let mut apply = ApplyChanges { env, phase: Phase::Done, unreadable: Vec::new(), applied: 0, error: None };
        apply.phase = match capture::oldest_query(env.dialect) {
            Ok(query) => Phase::Select(query),
            Err(e) => apply.fail(e),
        };
        apply
    }

    fn fail(&mut self, e: DbError) -> Phase {
        self.error = Some(Error::from(e));
        Phase::Done
    }

    fn lookup(&mut self, changes: Vec<Change>) -> Phase {
        let mut tables: Vec<&str> = changes.iter().map(|c| c.table.as_str()).collect();
        tables.sort_unstable();
        tables.dedup();
        match registry::lookup_query(self.env.dialect, &tables) {
            Ok(query) => Phase::Lookup { query, changes },
            Err(e) => self.fail(e),
        }
    }

    fn forget(&mut self, mut ids: Vec<i64>) -> Phase {
        ids.append(&mut self.unreadable);
        if ids.is_empty() {
            return Phase::Done;
        }
        match capture::delete_ids(self.env.dialect, &ids) {
            Ok(query) => Phase::Forget(query),
            Err(e) => self.fail(e),
        }
    }
}

impl Machine for ApplyChanges<'_> {
    type Output = usize;

    fn label(&self) -> Label {
        Label { op: "capture_drain", model: "" }
    }

    fn poll(&mut self) -> Step<'_> {
        match &self.phase {
            Phase::Select(query) => Step::Sql(SqlRequest::Query { query, types: capture::ROW_TYPES }),
            Phase::Lookup { query, .. } => Step::Sql(SqlRequest::Query { query, types: registry::ROW_TYPES }),
            Phase::Delete(entries) => Step::Cache(deletes(entries)),
            Phase::Forget(query) => Step::Sql(SqlRequest::Execute(query)),
            Phase::Done => Step::Done,
        }
    }

    fn handle_cache(&mut self, replies: Replies) {
        if let Phase::Delete(entries) = std::mem::replace(&mut self.phase, Phase::Done) {
            let applied: Vec<i64> = entries
                .iter()
                .zip(outcomes(self.env.cache, &entries, &replies))
                .filter(|(_, outcome)| *outcome != Applied::Not)
                .map(|((id, _), _)| *id)
                .collect();
            self.applied = applied.len();
            Counters::add(&self.env.ctx.stats.outside_changes_applied, applied.len() as u64);
            self.phase = self.forget(applied);
        }
    }

    fn handle_sql(&mut self, reply: Result<SqlReply, DbError>) {
        let reply = match reply {
            Ok(reply) => reply,
            Err(e) => {
                self.phase = self.fail(e);
                return;
            }
        };
        self.phase = match std::mem::replace(&mut self.phase, Phase::Done) {
            Phase::Select(_) => {
                let (changes, unreadable) = capture::changes(&reply.into_rows());
                if !unreadable.is_empty() {
                    tracing::warn!(target: "memdex::capture", "deleting {} captured changes that do not parse: {unreadable:?}", unreadable.len());
                }
                self.unreadable = unreadable;
                if changes.is_empty() { self.forget(Vec::new()) } else { self.lookup(changes) }
            }
            Phase::Lookup { changes, .. } => {
                let registered = registry::registered(&reply.into_rows());
                let entries = changes
                    .iter()
                    .map(|change| {
                        let mut keys = Vec::new();
                        change.keys(&self.env.ctx.settings, &registered, &mut keys);
                        (change.id, keys)
                    })
                    .collect();
                Phase::Delete(entries)
            }
            Phase::Forget(_) | Phase::Delete(_) | Phase::Done => Phase::Done,
        };
    }

    fn finish(mut self) -> Result<usize, Error> {
        match self.error.take() {
            Some(e) => Err(e),
            None => Ok(self.applied),
        }
    }
}
