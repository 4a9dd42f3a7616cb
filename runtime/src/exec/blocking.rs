//! The blocking driver: runs the core's machines over a [`CacheBackend`] (std
//! sockets) and a [`Database`] (pooled blocking connections). It moves bytes and
//! rows and knows no race rule.

use memdex_grammar::{Dialect, Schema};

use crate::cache::{CacheBackend, CacheOp};
use crate::capture;
use crate::db::{Database, DbError, Tx};
use crate::engine::changes::ApplyChanges;
use crate::engine::database::{self, Page};
use crate::engine::drain::Drain;
use crate::engine::fetch::Fetch;
use crate::engine::schema::{CheckSchema, no_drift, outbox_usable};
use crate::engine::write::{ApplyEffects, Attempt, Attempts, Commit, OneStatementWrite, Reply, RowWrite, WriteSet};
use crate::engine::{Context, Env, Label, Machine, Observation, Outcome, Replies, SqlReply, SqlRequest, Step};
use crate::error::Error;
use crate::model::Model;
use crate::outbox;
use crate::prepared::Filter;
use crate::registry::{self, Registration};

/// A store's context, database and cache, run blocking.
#[derive(Debug)]
pub(crate) struct Driver {
    pub(crate) ctx: Context,
    pub(crate) db: Box<dyn Database>,
    pub(crate) cache: Box<dyn CacheBackend>,
}

impl Driver {
    pub(crate) fn env(&self) -> Env<'_> {
        Env { ctx: &self.ctx, cache: &self.cache, dialect: self.db.dialect() }
    }

    pub(crate) fn dialect(&self) -> Dialect {
        self.db.dialect()
    }

    /// Runs a machine to its end, inside its span (`engine::observe`).
    pub(crate) fn run<M: Machine>(&self, mut machine: M) -> Result<M::Output, Error> {
        let mut seen = Observation::start(machine.label(), self.dialect());
        let span = seen.span().clone();
        let _entered = span.enter();
        loop {
            let replies = match machine.poll() {
                Step::Cache(ops) => {
                    if !ops.is_empty() {
                        seen.round_trip();
                    }
                    Ok(self.cache_run(&ops))
                }
                Step::Sql(request) => {
                    seen.statement();
                    Err(self.sql(request))
                }
                Step::Done => {
                    let outcome = machine.outcome();
                    let result = machine.finish();
                    seen.finish(outcome, result.is_ok());
                    return result;
                }
            };
            match replies {
                Ok(replies) => machine.handle_cache(replies),
                Err(reply) => machine.handle_sql(reply),
            }
        }
    }

    /// One cache round trip, counted and traced (none for an empty batch).
    fn cache_run(&self, ops: &[CacheOp<'_>]) -> Replies {
        if ops.is_empty() {
            return Vec::new();
        }
        let replies = self.cache.run(ops);
        self.ctx.record_batch(ops, &replies);
        replies
    }

    /// One statement, counted and traced.
    fn sql(&self, request: SqlRequest<'_>) -> Result<SqlReply, DbError> {
        match request {
            SqlRequest::Query { query, types } => {
                self.ctx.record_sql(query);
                self.db.query(query, types).map(SqlReply::Rows)
            }
            SqlRequest::Execute(query) => {
                self.ctx.record_sql(query);
                self.db.transaction(&mut |tx| tx.execute(query).map(drop))?;
                Ok(SqlReply::Executed)
            }
        }
    }

    /// Creates the outbox table if it is missing (a table an older memdex created
    /// gains its `moved` column in place). A store that does not manage its schema
    /// runs no DDL: it checks that the table and its columns are there instead.
    pub(crate) fn ensure_outbox(&self) -> Result<(), Error> {
        if !self.ctx.settings.manage_schema {
            let drift = self.run(CheckSchema::new(self.dialect(), outbox::schema())?)?;
            outbox_usable(&outbox::schema().table, &drift)?;
            let drift = self.run(CheckSchema::new(self.dialect(), registry::schema())?)?;
            return no_drift(&registry::schema().table, &drift);
        }
        let dialect = self.dialect();
        self.db.execute_ddl(&outbox::create_statements(dialect))?;
        let probe = outbox::probe_query(dialect)?;
        if self.db.query(&probe, outbox::ROW_TYPES).is_err() {
            self.db.execute_ddl(&[outbox::add_moved_column(dialect)])?;
        }
        self.db.execute_ddl(&registry::create_statements(dialect))?;
        Ok(())
    }

    /// Installs `schema`'s capture triggers (and the changes table), in one
    /// transaction that first takes the registration's locks, so that processes
    /// migrating at once replace the triggers one after the other.
    pub(crate) fn install_capture(&self, schema: &'static Schema) -> Result<(), Error> {
        let install = capture::Install::new(self.dialect(), schema, registry::schema());
        Ok(self.db.transaction(&mut |tx| {
            for statement in install.statements() {
                self.ctx.record_sql(statement);
                tx.execute(statement)?;
            }
            Ok(())
        })?)
    }

    /// Records `schema`'s indexes in the index registry, in one transaction taken
    /// under the registration's locks (`crate::registry`).
    pub(crate) fn register_indexes(&self, schema: &'static Schema) -> Result<(), Error> {
        let Some(registration) = Registration::new(self.dialect(), schema)? else { return Ok(()) };
        let mut held = None;
        if !registration.hold.is_empty() {
            let mut conn = self.db.begin()?;
            for statement in &registration.hold {
                self.ctx.record_sql(statement);
                conn.as_tx().execute(statement)?;
            }
            held = Some(conn);
        }
        let registered = self.db.transaction(&mut |tx| {
            for statement in &registration.begin {
                self.ctx.record_sql(statement);
                tx.execute(statement)?;
            }
            self.ctx.record_sql(&registration.lookup);
            let rows = tx.query(&registration.lookup, registry::ROW_TYPES)?;
            for insert in registration.inserts(&rows) {
                self.ctx.record_sql(&insert);
                tx.execute(&insert)?;
            }
            Ok(())
        });
        // Released whatever happened: a rollback would not release these locks, and
        // the connection goes back to the pool.
        if let (Some(mut conn), Some(end)) = (held, &registration.end) {
            self.ctx.record_sql(end);
            let released = conn.as_tx().execute(end);
            registered?;
            released?;
            conn.commit()?;
            return Ok(());
        }
        Ok(registered?)
    }

    /// Checks that `schema`'s table has every column and index memdex creates for it.
    pub(crate) fn check_schema(&self, schema: &'static Schema) -> Result<(), Error> {
        let drift = self.run(CheckSchema::new(self.dialect(), schema)?)?;
        no_drift(&schema.table, &drift)
    }

    /// The store's gauges as they read now.
    pub(crate) fn gauges(&self) -> crate::stats::Gauges {
        crate::stats::Gauges { pool: self.db.pool_state(), health: self.cache.health(), near: self.ctx.near.gauges() }
    }

    /// Before every read and write: this process's failed invalidations, and every
    /// interval everyone's old ones, each in one bounded batch. A failure is logged,
    /// never the call's. Returns whether the cache may be trusted for reads (false
    /// while this process still has invalidations it could not apply).
    pub(crate) fn maybe_drain(&self) -> bool {
        if let Some(drain) = Drain::due(self.env()) {
            let periodic = drain.is_periodic();
            if let Err(e) = self.run(drain) {
                tracing::warn!(target: "memdex::outbox", "outbox drain failed: {e}");
            }
            // Once an interval (not at every call while invalidations are pending),
            // so that an exporter sees the gauges of a store whose `stats()` nobody
            // reads.
            if periodic {
                crate::stats::emit_gauges(self.gauges());
            }
        }
        if let Some(apply) = ApplyChanges::due(self.env()) {
            if let Err(e) = self.run(apply) {
                tracing::warn!(target: "memdex::capture", "applying captured changes failed: {e}");
            }
        }
        !self.ctx.outbox.has_pending()
    }

    /// The rows matching `filter`, paged by `page` ([`Page::ALL`]: every one, ordered by key).
    pub(crate) fn fetch<T: Model>(&self, filter: &Filter<'_, T>, page: Page<'_>) -> Result<Vec<T>, Error> {
        let trusted = self.maybe_drain();
        self.run(Fetch::new(self.env(), filter, page, trusted))
    }

    pub(crate) fn scan<T: Model>(&self, filter: &Filter<'_, T>, page: Page<'_>) -> Result<Vec<T>, Error> {
        self.run(database::scan_rows(self.env(), filter, page)?)
    }

    pub(crate) fn scan_count<T: Model>(&self, filter: &Filter<'_, T>) -> Result<u64, Error> {
        self.run(database::scan_count(self.env(), filter)?)
    }

    pub(crate) fn aggregate<T: Model>(
        &self,
        agg: &memdex_grammar::Aggregate,
        params: &dyn memdex_grammar::Params,
    ) -> Result<Option<f64>, Error> {
        self.run(database::aggregate::<T>(self.env(), agg, params)?)
    }

    /// Runs `body` in one database transaction, then applies the cache effects of
    /// its writes in one batch. `body` gets the transaction and the writes' effects;
    /// an `Err` from it rolls back and touches no cache key.
    pub(crate) fn transaction<R>(
        &self,
        body: impl FnOnce(&mut dyn Tx, &mut WriteSet) -> Result<R, Error>,
    ) -> Result<R, Error> {
        // The transaction's span holds the spans of its cache effects and drains;
        // its own statements are counted in `Stats`, not on the span.
        self.as_transaction(|| self.transaction_in_span(body))
    }

    fn transaction_in_span<R>(
        &self,
        body: impl FnOnce(&mut dyn Tx, &mut WriteSet) -> Result<R, Error>,
    ) -> Result<R, Error> {
        self.maybe_drain();
        let mut body = Some(body);
        let mut outcome: Option<Result<R, Error>> = None;
        let mut set = WriteSet::default();
        let mut commit: Option<Commit<'_>> = None;
        // Whether every statement ran, so that an error now is the COMMIT's.
        let mut committing = false;
        let committed = self.db.transaction(&mut |tx| {
            set = WriteSet::default();
            let Some(body) = body.take() else {
                return Err(DbError::query("a memdex transaction closure cannot be retried"));
            };
            match body(tx, &mut set) {
                Ok(r) => outcome = Some(Ok(r)),
                Err(e) => {
                    outcome = Some(Err(e));
                    return Err(DbError::query("rolled back by the caller"));
                }
            }
            // Kept outside the closure before its statements run: should one fail,
            // the plan is dropped after the rollback and gives its done entries back.
            let plan = commit.insert(kept(&mut outcome, Commit::plan(&self.ctx, self.dialect(), &set))?);
            let registered = match &plan.lookup {
                Some(lookup) => {
                    self.ctx.record_sql(lookup);
                    tx.query(lookup, registry::ROW_TYPES)?
                }
                None => Vec::new(),
            };
            kept(&mut outcome, plan.complete(&mut set, &registered))?;
            while let Some((query, types)) = kept(&mut outcome, plan.next_read())? {
                self.ctx.record_sql(&query);
                let rows = tx.query(&query, &types)?;
                kept(&mut outcome, plan.read_reply(&mut set, rows))?;
            }
            for statement in &plan.statements {
                self.ctx.record_sql(statement);
                tx.execute(statement)?;
            }
            committing = true;
            Ok(())
        });
        match (committed, outcome, commit) {
            (Ok(()), Some(Ok(r)), Some(plan)) => {
                let mut effects = ApplyEffects::new(self.env(), plan.entry_id, set);
                plan.committed(&mut effects);
                self.run(effects)?;
                Ok(r)
            }
            (Err(e), Some(Ok(_)), Some(plan)) if committing => {
                // The COMMIT failed: without a reply (the connection lost), the
                // transaction may have committed, and its entry is in doubt.
                ApplyEffects::new(self.env(), plan.entry_id, set).failed(&e);
                Err(Error::from(e))
            }
            (committed, outcome, _not_committed) => match (committed, outcome) {
                (_, Some(Err(e))) => Err(e),
                (Err(e), _) => Err(Error::from(e)),
                _ => Err(Error::Internal("the database did not run the transaction".into())),
            },
        }
    }
}

/// `result`, its error kept in `outcome` (where the caller of the transaction finds
/// it, with its variant) and the transaction rolled back by a database error that
/// says the same.
fn kept<T, R>(outcome: &mut Option<Result<R, Error>>, result: Result<T, Error>) -> Result<T, DbError> {
    result.map_err(|e| {
        let message = e.to_string();
        *outcome = Some(Err(e));
        DbError::query(message)
    })
}

impl Driver {
    /// Updates the row with `row`'s key in one statement with its outbox entry,
    /// then applies the effects ([`OneStatementWrite`]): one statement when the row
    /// stays in its index nodes or this process wrote it last, two when it moves
    /// otherwise ([`Attempts`]). False when the dialect has no such statement or the
    /// guards stopped it: the caller then updates the row in a transaction.
    pub(crate) fn update_in_one_statement<T: Model>(&self, row: &T) -> Result<bool, Error> {
        self.in_one_statement(Attempts::update(&self.ctx, self.dialect(), row))
    }

    /// Inserts `row` in one statement with its outbox entry, as
    /// [`Driver::update_in_one_statement`] updates.
    pub(crate) fn insert_in_one_statement<T: Model>(&self, row: &T) -> Result<bool, Error> {
        self.in_one_statement(Attempts::insert(&self.ctx, self.dialect(), row))
    }

    /// Deletes the row with this key in one statement with its outbox entry, guarded
    /// by what this process last wrote to the row or else by the row as read just
    /// before, as [`Driver::update_in_one_statement`] updates. False also when no
    /// row was found: the transaction then tells.
    pub(crate) fn delete_in_one_statement<T: Model>(&self, key: &T::Key) -> Result<bool, Error> {
        self.in_one_statement(Attempts::<T>::delete(&self.ctx, self.dialect(), key))
    }

    /// Runs the attempts of one write, all inside one transaction's span, which holds
    /// the span of its cache effects.
    fn in_one_statement<T: Model>(&self, mut attempts: Attempts<'_, '_, T>) -> Result<bool, Error> {
        if !attempts.may_serve() {
            return Ok(false);
        }
        self.as_transaction(|| {
            // Pending entries applied first are done, for the first statement to
            // delete.
            self.maybe_drain();
            let mut next = attempts.first()?;
            loop {
                let found = match next {
                    Attempt::Write(write) => match self.one_statement(write)? {
                        Reply::Written(effects) => return self.run(*effects).map(|()| true),
                        Reply::Shut(found) => found,
                    },
                    Attempt::Read(query, types) => {
                        self.ctx.record_sql(&query);
                        self.db.query(&query, &types)?.into_iter().next()
                    }
                    Attempt::LongWay => return Ok(false),
                };
                next = attempts.after(found)?;
            }
        })
    }

    /// Runs `write` inside a transaction's span, which holds the span of its cache
    /// effects.
    fn as_transaction<R>(&self, write: impl FnOnce() -> Result<R, Error>) -> Result<R, Error> {
        let seen = Observation::start(Label::TRANSACTION, self.dialect());
        let span = seen.span().clone();
        let _entered = span.enter();
        let result = write();
        seen.finish(Outcome::default(), result.is_ok());
        result
    }

    /// Sends one guarded statement; its reply.
    fn one_statement<'a>(&'a self, write: OneStatementWrite<'a>) -> Result<Reply<'a>, Error> {
        let (query, types, in_flight) = write.start(self.env());
        self.ctx.record_sql(&query);
        match self.db.write_alone(&query, &types) {
            Ok(rows) => Ok(in_flight.reply(rows)),
            Err(e) => {
                in_flight.failed(&e);
                Err(e.into())
            }
        }
    }

    /// Runs one row write inside a transaction: its statement, then its effects.
    pub(crate) fn write(&self, tx: &mut dyn Tx, set: &mut WriteSet, mut write: RowWrite) -> Result<(), Error> {
        if let Some(before) = &write.before {
            self.ctx.record_sql(before);
            let rows = tx.query(before, &write.types)?;
            write.read_before(rows);
        }
        self.ctx.record_sql(&write.query);
        let changed = if write.returns_old {
            let rows = tx.query(&write.query, &write.types)?;
            let changed = rows.len() as u64;
            write.read_before(rows);
            changed
        } else {
            tx.execute(&write.query)?
        };
        write.applied(changed, set)
    }
}
