//! The tokio driver: runs the same machines as the blocking driver, awaiting each
//! cache batch and statement instead of blocking on it. It moves bytes and rows and
//! knows no race rule.
//!
//! * Cache: memcached over `tokio::net` ([`AsyncMemcached`]); the in-process cache
//!   called directly (it never blocks); any other [`CacheBackend`] on the blocking
//!   thread pool (`spawn_blocking`), so a custom or test cache works too.
//! * Database: PostgreSQL through `tokio-postgres` and `deadpool`; SQLite (and any
//!   other [`Database`]) on the blocking thread pool, so no worker ever waits on it.
//!
//! Every future is `Send`. A future dropped at any `.await` leaves nothing out of
//! step: a memcached connection mid-exchange is dropped with it, a pooled database
//! connection mid-statement is either given back whole (tokio-postgres pairs replies
//! with requests on its own task) or taken out of the pool (a transaction that did
//! not commit), and an unsettled write leaves its outbox entry pending (see
//! `engine::write::ApplyEffects`).

use std::sync::Arc;

use tracing::Instrument;

use memdex_grammar::sql::SqlQuery;
use memdex_grammar::{Dialect, Schema, Type, Value};

use crate::cache::in_process::InProcessCache;
use crate::cache::memcached::AsyncMemcached;
use crate::cache::{CacheBackend, CacheHealth, CacheOp, OwnedOp};
use crate::capture;
use crate::db::{Database, DbError, PoolState, TxConn};
use crate::engine::changes::ApplyChanges;
use crate::engine::database::{self, Page};
use crate::engine::drain::Drain;
use crate::engine::fetch::Fetch;
use crate::engine::schema::{CheckSchema, no_drift, outbox_usable};
use crate::engine::write::{ApplyEffects, Attempt, Attempts, Commit, OneStatementWrite, Reply, RowWrite, WriteSet};
use crate::engine::{
    CacheFacts, Context, Env, Label, Machine, Observation, Outcome, Replies, SqlReply, SqlRequest, Step,
};
use crate::error::Error;
use crate::model::Model;
use crate::outbox;
use crate::prepared::Filter;
use crate::registry::{self, Registration};

#[cfg(feature = "postgres")]
use crate::db::postgres_async::{AsyncPgTx, AsyncPostgres};

/// The cache as the tokio driver reaches it.
#[derive(Debug)]
pub(crate) enum AsyncCache {
    Memcached(AsyncMemcached),
    InProcess(InProcessCache),
    Blocking(Arc<dyn CacheBackend>),
}

impl AsyncCache {
    async fn run(&self, ops: &[CacheOp<'_>]) -> Replies {
        match self {
            AsyncCache::Memcached(memcached) => memcached.run(ops).await,
            AsyncCache::InProcess(cache) => cache.run(ops),
            AsyncCache::Blocking(cache) => {
                let cache = cache.clone();
                let owned: Vec<OwnedOp> = ops.iter().map(OwnedOp::from).collect();
                let count = owned.len();
                tokio::task::spawn_blocking(move || {
                    let ops: Vec<CacheOp<'_>> = owned.iter().map(OwnedOp::as_op).collect();
                    cache.run(&ops)
                })
                .await
                .unwrap_or_else(|e| {
                    let error = crate::cache::CacheError::Protocol {
                        server: "blocking cache".into(),
                        reason: format!("the cache call failed: {e}"),
                    };
                    vec![Err(error); count]
                })
            }
        }
    }

    pub(crate) fn describe(&self) -> String {
        match self {
            AsyncCache::Memcached(memcached) => memcached.describe(),
            AsyncCache::InProcess(cache) => cache.describe(),
            AsyncCache::Blocking(cache) => cache.describe(),
        }
    }

    pub(crate) fn health(&self) -> CacheHealth {
        match self {
            AsyncCache::Memcached(memcached) => memcached.health(),
            AsyncCache::InProcess(cache) => cache.health(),
            AsyncCache::Blocking(cache) => cache.health(),
        }
    }
}

impl CacheFacts for AsyncCache {
    fn max_value_size(&self) -> usize {
        match self {
            AsyncCache::Memcached(memcached) => memcached.max_value_size(),
            AsyncCache::InProcess(cache) => cache.max_value_size(),
            AsyncCache::Blocking(cache) => cache.max_value_size(),
        }
    }

    fn is_available(&self, key: &str) -> bool {
        match self {
            AsyncCache::Memcached(memcached) => memcached.is_available(key),
            AsyncCache::InProcess(cache) => cache.is_available(key),
            AsyncCache::Blocking(cache) => cache.is_available(key),
        }
    }

    fn owes(&self, keys: &[&str]) -> bool {
        match self {
            AsyncCache::Memcached(memcached) => memcached.owes(keys),
            AsyncCache::InProcess(cache) => cache.owes(keys),
            AsyncCache::Blocking(cache) => cache.owes(keys),
        }
    }
}

/// The database as the tokio driver reaches it.
#[derive(Debug)]
pub(crate) enum AsyncDb {
    #[cfg(feature = "postgres")]
    Postgres(AsyncPostgres),
    /// A blocking database (SQLite, or one of your own), on the blocking pool.
    Blocking(Arc<dyn Database>),
}

/// Runs `f` on tokio's blocking thread pool.
async fn blocking<R: Send + 'static>(f: impl FnOnce() -> Result<R, DbError> + Send + 'static) -> Result<R, DbError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(DbError::query(format!("the database call on the blocking pool failed: {e}"))))
}

impl AsyncDb {
    pub(crate) fn dialect(&self) -> Dialect {
        match self {
            #[cfg(feature = "postgres")]
            AsyncDb::Postgres(_) => Dialect::Postgres,
            AsyncDb::Blocking(db) => db.dialect(),
        }
    }

    async fn query(&self, q: &SqlQuery, types: &[Type]) -> Result<Vec<Vec<Value>>, DbError> {
        match self {
            #[cfg(feature = "postgres")]
            AsyncDb::Postgres(pg) => pg.query(q, types).await,
            AsyncDb::Blocking(db) => {
                let (db, q, types) = (db.clone(), q.clone(), types.to_vec());
                blocking(move || db.query(&q, &types)).await
            }
        }
    }

    /// One statement that writes, as a transaction of its own, never tried again.
    async fn write_alone(&self, q: &SqlQuery, types: &[Type]) -> Result<Vec<Vec<Value>>, DbError> {
        match self {
            #[cfg(feature = "postgres")]
            AsyncDb::Postgres(pg) => pg.write_alone(q, types).await,
            AsyncDb::Blocking(db) => {
                let (db, q, types) = (db.clone(), q.clone(), types.to_vec());
                blocking(move || db.write_alone(&q, &types)).await
            }
        }
    }

    /// A statement on its own (autocommit).
    async fn execute(&self, q: &SqlQuery) -> Result<u64, DbError> {
        let mut tx = self.begin().await?;
        let changed = tx.execute(q).await?;
        tx.commit().await?;
        Ok(changed)
    }

    pub(crate) async fn begin(&self) -> Result<AsyncTx, DbError> {
        match self {
            #[cfg(feature = "postgres")]
            AsyncDb::Postgres(pg) => pg.begin().await.map(AsyncTx::Postgres),
            AsyncDb::Blocking(db) => {
                let db = db.clone();
                blocking(move || db.begin()).await.map(|tx| AsyncTx::Blocking(Some(tx)))
            }
        }
    }

    pub(crate) async fn execute_ddl(&self, statements: &[String]) -> Result<(), DbError> {
        match self {
            #[cfg(feature = "postgres")]
            AsyncDb::Postgres(pg) => pg.execute_ddl(statements).await,
            AsyncDb::Blocking(db) => {
                let (db, statements) = (db.clone(), statements.to_vec());
                blocking(move || db.execute_ddl(&statements)).await
            }
        }
    }

    pub(crate) fn describe(&self) -> String {
        match self {
            #[cfg(feature = "postgres")]
            AsyncDb::Postgres(pg) => pg.describe(),
            AsyncDb::Blocking(db) => db.describe(),
        }
    }

    pub(crate) fn pool_state(&self) -> PoolState {
        match self {
            #[cfg(feature = "postgres")]
            AsyncDb::Postgres(pg) => pg.pool_state(),
            AsyncDb::Blocking(db) => db.pool_state(),
        }
    }
}

/// An open transaction of the async store.
#[derive(Debug)]
// One per transaction in flight, moved rarely: boxing the larger variant would add an
// allocation per transaction for no measurable gain.
#[allow(clippy::large_enum_variant)]
pub(crate) enum AsyncTx {
    #[cfg(feature = "postgres")]
    Postgres(AsyncPgTx),
    /// A blocking transaction, moved to the blocking pool for each statement. `None`
    /// only while a statement runs; dropped there with a cancelled future, it rolls
    /// back.
    Blocking(Option<Box<dyn TxConn>>),
}

impl std::fmt::Debug for dyn TxConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TxConn")
    }
}

impl AsyncTx {
    /// Runs `f` with the blocking transaction on the blocking pool.
    async fn on_blocking<R: Send + 'static>(
        slot: &mut Option<Box<dyn TxConn>>,
        f: impl FnOnce(&mut dyn TxConn) -> Result<R, DbError> + Send + 'static,
    ) -> Result<R, DbError> {
        let mut tx = slot.take().ok_or_else(|| DbError::query("the transaction was lost to a failed statement"))?;
        let (tx, result) = tokio::task::spawn_blocking(move || {
            let result = f(&mut *tx);
            (tx, result)
        })
        .await
        .map_err(|e| DbError::query(format!("the database call on the blocking pool failed: {e}")))?;
        *slot = Some(tx);
        result
    }

    pub(crate) async fn execute(&mut self, q: &SqlQuery) -> Result<u64, DbError> {
        match self {
            #[cfg(feature = "postgres")]
            AsyncTx::Postgres(tx) => tx.execute(q).await,
            AsyncTx::Blocking(slot) => {
                let q = q.clone();
                AsyncTx::on_blocking(slot, move |tx| tx.execute(&q)).await
            }
        }
    }

    pub(crate) async fn query(&mut self, q: &SqlQuery, types: &[Type]) -> Result<Vec<Vec<Value>>, DbError> {
        match self {
            #[cfg(feature = "postgres")]
            AsyncTx::Postgres(tx) => tx.query(q, types).await,
            AsyncTx::Blocking(slot) => {
                let (q, types) = (q.clone(), types.to_vec());
                AsyncTx::on_blocking(slot, move |tx| tx.query(&q, &types)).await
            }
        }
    }

    pub(crate) async fn commit(self) -> Result<(), DbError> {
        match self {
            #[cfg(feature = "postgres")]
            AsyncTx::Postgres(tx) => tx.commit().await,
            AsyncTx::Blocking(slot) => {
                let tx = slot.ok_or_else(|| DbError::query("the transaction was lost to a failed statement"))?;
                blocking(move || tx.commit()).await
            }
        }
    }

    /// Runs `statements`, then commits: on PostgreSQL in one pipelined round trip
    /// (`AsyncPgTx::execute_all_and_commit`), elsewhere one after the other.
    pub(crate) async fn execute_all_and_commit(self, statements: &[SqlQuery]) -> Result<(), DbError> {
        match self {
            #[cfg(feature = "postgres")]
            AsyncTx::Postgres(tx) => tx.execute_all_and_commit(statements).await,
            mut blocking @ AsyncTx::Blocking(_) => {
                for statement in statements {
                    blocking.execute(statement).await?;
                }
                blocking.commit().await
            }
        }
    }

    pub(crate) async fn rollback(self) -> Result<(), DbError> {
        match self {
            #[cfg(feature = "postgres")]
            AsyncTx::Postgres(tx) => tx.rollback().await,
            // Dropping a blocking transaction rolls it back; on the blocking pool, as
            // the rollback is a statement.
            AsyncTx::Blocking(slot) => {
                blocking(move || {
                    drop(slot);
                    Ok(())
                })
                .await
            }
        }
    }
}

/// A store's context, database and cache, run on tokio.
#[derive(Debug)]
pub(crate) struct AsyncDriver {
    pub(crate) ctx: Context,
    pub(crate) db: AsyncDb,
    pub(crate) cache: AsyncCache,
}

impl AsyncDriver {
    pub(crate) fn env(&self) -> Env<'_> {
        Env { ctx: &self.ctx, cache: &self.cache, dialect: self.db.dialect() }
    }

    pub(crate) fn dialect(&self) -> Dialect {
        self.db.dialect()
    }

    /// Runs a machine to its end, inside its span (`engine::observe`).
    pub(crate) async fn run<M: Machine + Send>(&self, machine: M) -> Result<M::Output, Error> {
        let mut seen = Observation::start(machine.label(), self.dialect());
        let span = seen.span().clone();
        let (outcome, result) = self.steps(machine, &mut seen).instrument(span).await;
        seen.finish(outcome, result.is_ok());
        result
    }

    /// The driving loop of [`AsyncDriver::run`].
    async fn steps<M: Machine + Send>(
        &self,
        mut machine: M,
        seen: &mut Observation,
    ) -> (Outcome, Result<M::Output, Error>) {
        loop {
            match machine.poll() {
                Step::Cache(ops) => {
                    if !ops.is_empty() {
                        seen.round_trip();
                    }
                    let replies = self.cache_run(&ops).await;
                    drop(ops);
                    machine.handle_cache(replies);
                }
                Step::Sql(request) => {
                    seen.statement();
                    let reply = self.sql(request).await;
                    machine.handle_sql(reply);
                }
                Step::Done => return (machine.outcome(), machine.finish()),
            }
        }
    }

    /// One cache round trip, counted and traced (none for an empty batch).
    async fn cache_run(&self, ops: &[CacheOp<'_>]) -> Replies {
        if ops.is_empty() {
            return Vec::new();
        }
        let replies = self.cache.run(ops).await;
        self.ctx.record_batch(ops, &replies);
        replies
    }

    /// One statement, counted and traced.
    async fn sql(&self, request: SqlRequest<'_>) -> Result<SqlReply, DbError> {
        match request {
            SqlRequest::Query { query, types } => {
                self.ctx.record_sql(query);
                self.db.query(query, types).await.map(SqlReply::Rows)
            }
            SqlRequest::Execute(query) => {
                self.ctx.record_sql(query);
                self.db.execute(query).await.map(|_| SqlReply::Executed)
            }
        }
    }

    /// Creates the outbox table if it is missing, as the blocking driver's; a store
    /// that does not manage its schema checks it instead.
    pub(crate) async fn ensure_outbox(&self) -> Result<(), Error> {
        if !self.ctx.settings.manage_schema {
            let drift = self.run(CheckSchema::new(self.dialect(), outbox::schema())?).await?;
            outbox_usable(&outbox::schema().table, &drift)?;
            let drift = self.run(CheckSchema::new(self.dialect(), registry::schema())?).await?;
            return no_drift(&registry::schema().table, &drift);
        }
        let dialect = self.dialect();
        self.db.execute_ddl(&outbox::create_statements(dialect)).await?;
        let probe = outbox::probe_query(dialect)?;
        if self.db.query(&probe, outbox::ROW_TYPES).await.is_err() {
            self.db.execute_ddl(&[outbox::add_moved_column(dialect)]).await?;
        }
        self.db.execute_ddl(&registry::create_statements(dialect)).await?;
        Ok(())
    }

    /// Records `schema`'s indexes in the index registry, as the blocking driver's.
    pub(crate) async fn register_indexes(&self, schema: &'static Schema) -> Result<(), Error> {
        let Some(registration) = Registration::new(self.dialect(), schema)? else { return Ok(()) };
        let mut held = None;
        if !registration.hold.is_empty() {
            let mut conn = self.db.begin().await?;
            for statement in &registration.hold {
                self.ctx.record_sql(statement);
                conn.execute(statement).await?;
            }
            held = Some(conn);
        }
        let mut tx = self.db.begin().await?;
        let ran = async {
            for statement in &registration.begin {
                self.ctx.record_sql(statement);
                tx.execute(statement).await?;
            }
            self.ctx.record_sql(&registration.lookup);
            let rows = tx.query(&registration.lookup, registry::ROW_TYPES).await?;
            for insert in registration.inserts(&rows) {
                self.ctx.record_sql(&insert);
                tx.execute(&insert).await?;
            }
            Ok::<(), DbError>(())
        }
        .await;
        let registered = match ran {
            Ok(()) => tx.commit().await,
            Err(e) => {
                tx.rollback().await.ok();
                Err(e)
            }
        };
        // Released whatever happened: a rollback would not release these locks, and
        // the connection goes back to the pool.
        if let (Some(mut conn), Some(end)) = (held, &registration.end) {
            self.ctx.record_sql(end);
            let released = conn.execute(end).await;
            registered?;
            released?;
            conn.commit().await?;
            return Ok(());
        }
        Ok(registered?)
    }

    /// Installs `schema`'s capture triggers, as the blocking driver's.
    pub(crate) async fn install_capture(&self, schema: &'static Schema) -> Result<(), Error> {
        let install = capture::Install::new(self.dialect(), schema, registry::schema());
        let mut tx = self.db.begin().await?;
        let ran = async {
            for statement in install.statements() {
                self.ctx.record_sql(statement);
                tx.execute(statement).await?;
            }
            Ok::<(), DbError>(())
        }
        .await;
        match ran {
            Ok(()) => Ok(tx.commit().await?),
            Err(e) => {
                tx.rollback().await.ok();
                Err(e.into())
            }
        }
    }

    /// Checks that `schema`'s table has every column and index memdex creates for it.
    pub(crate) async fn check_schema(&self, schema: &'static Schema) -> Result<(), Error> {
        let drift = self.run(CheckSchema::new(self.dialect(), schema)?).await?;
        no_drift(&schema.table, &drift)
    }

    /// The store's gauges as they read now.
    pub(crate) fn gauges(&self) -> crate::stats::Gauges {
        crate::stats::Gauges { pool: self.db.pool_state(), health: self.cache.health(), near: self.ctx.near.gauges() }
    }

    /// As the blocking driver's: own failed invalidations, and every interval the
    /// old ones of everyone, each in one bounded batch; a failure is logged.
    pub(crate) async fn maybe_drain(&self) -> bool {
        if let Some(drain) = Drain::due(self.env()) {
            let periodic = drain.is_periodic();
            if let Err(e) = self.run(drain).await {
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
            if let Err(e) = self.run(apply).await {
                tracing::warn!(target: "memdex::capture", "applying captured changes failed: {e}");
            }
        }
        !self.ctx.outbox.has_pending()
    }

    /// The rows matching `filter`, paged by `page` ([`Page::ALL`]: every one, ordered by key).
    pub(crate) async fn fetch<T: Model>(&self, filter: &Filter<'_, T>, page: Page<'_>) -> Result<Vec<T>, Error> {
        let trusted = self.maybe_drain().await;
        self.run(Fetch::new(self.env(), filter, page, trusted)).await
    }

    pub(crate) async fn scan<T: Model>(&self, filter: &Filter<'_, T>, page: Page<'_>) -> Result<Vec<T>, Error> {
        self.run(database::scan_rows(self.env(), filter, page)?).await
    }

    pub(crate) async fn scan_count<T: Model>(&self, filter: &Filter<'_, T>) -> Result<u64, Error> {
        self.run(database::scan_count(self.env(), filter)?).await
    }

    pub(crate) async fn aggregate<T: Model>(
        &self,
        agg: &memdex_grammar::Aggregate,
        params: &(dyn memdex_grammar::Params + Sync),
    ) -> Result<Option<f64>, Error> {
        self.run(database::aggregate::<T>(self.env(), agg, params)?).await
    }

    /// Runs one row write inside a transaction: its statement, then its effects.
    pub(crate) async fn write(&self, tx: &mut AsyncTx, set: &mut WriteSet, mut write: RowWrite) -> Result<(), Error> {
        if let Some(before) = &write.before {
            self.ctx.record_sql(before);
            let rows = tx.query(before, &write.types).await?;
            write.read_before(rows);
        }
        self.ctx.record_sql(&write.query);
        let changed = if write.returns_old {
            let rows = tx.query(&write.query, &write.types).await?;
            let changed = rows.len() as u64;
            write.read_before(rows);
            changed
        } else {
            tx.execute(&write.query).await?
        };
        write.applied(changed, set)
    }

    /// Updates the row with `row`'s key in one statement with its outbox entry, then
    /// applies the effects, as
    /// [`Driver::update_in_one_statement`](crate::exec::blocking::Driver::update_in_one_statement).
    /// False when the dialect has no such statement or the guards stopped it: the
    /// caller then updates the row in a transaction.
    pub(crate) async fn update_in_one_statement<T: Model>(&self, row: &T) -> Result<bool, Error> {
        self.in_one_statement(Attempts::update(&self.ctx, self.dialect(), row)).await
    }

    /// Inserts `row` in one statement with its outbox entry, as
    /// [`AsyncDriver::update_in_one_statement`] updates.
    pub(crate) async fn insert_in_one_statement<T: Model>(&self, row: &T) -> Result<bool, Error> {
        self.in_one_statement(Attempts::insert(&self.ctx, self.dialect(), row)).await
    }

    /// Deletes the row with this key in one statement, as
    /// [`Driver::delete_in_one_statement`](crate::exec::blocking::Driver::delete_in_one_statement).
    pub(crate) async fn delete_in_one_statement<T: Model>(&self, key: &T::Key) -> Result<bool, Error> {
        self.in_one_statement(Attempts::<T>::delete(&self.ctx, self.dialect(), key)).await
    }

    /// Runs the attempts of one write, all inside one transaction's span, which holds
    /// the span of its cache effects.
    async fn in_one_statement<T: Model>(&self, mut attempts: Attempts<'_, '_, T>) -> Result<bool, Error> {
        if !attempts.may_serve() {
            return Ok(false);
        }
        self.as_transaction(async {
            // Pending entries applied first are done, for the first statement to
            // delete.
            self.maybe_drain().await;
            let mut next = attempts.first()?;
            loop {
                let found = match next {
                    Attempt::Write(write) => match self.one_statement(write).await? {
                        Reply::Written(effects) => return self.run(*effects).await.map(|()| true),
                        Reply::Shut(found) => found,
                    },
                    Attempt::Read(query, types) => {
                        self.ctx.record_sql(&query);
                        self.db.query(&query, &types).await?.into_iter().next()
                    }
                    Attempt::LongWay => return Ok(false),
                };
                next = attempts.after(found)?;
            }
        })
        .await
    }

    /// The span of a transaction (as the blocking driver's), open until its commit,
    /// its rollback or its drop ([`AsyncTransaction`](crate::AsyncTransaction)).
    pub(crate) fn observe_transaction(&self) -> Observation {
        Observation::start(Label::TRANSACTION, self.dialect())
    }

    /// Runs a one-statement `write` inside a transaction's span, which holds the
    /// span of its cache effects.
    async fn as_transaction(&self, write: impl Future<Output = Result<bool, Error>>) -> Result<bool, Error> {
        let seen = self.observe_transaction();
        let result = write.instrument(seen.span().clone()).await;
        seen.finish(Outcome::default(), result.is_ok());
        result
    }

    /// Sends one guarded statement; its reply.
    async fn one_statement<'a>(&'a self, write: OneStatementWrite<'a>) -> Result<Reply<'a>, Error> {
        let (query, types, in_flight) = write.start(self.env());
        self.ctx.record_sql(&query);
        match self.db.write_alone(&query, &types).await {
            Ok(rows) => Ok(in_flight.reply(rows)),
            Err(e) => {
                in_flight.failed(&e);
                Err(e.into())
            }
        }
    }

    /// Commits a transaction with the outbox entry of its writes, then applies their
    /// cache effects in one batch.
    pub(crate) async fn commit(&self, mut tx: AsyncTx, mut set: WriteSet) -> Result<(), Error> {
        let mut plan = Commit::plan(&self.ctx, self.dialect(), &set)?;
        // The registry lookup, and the reads of columns it calls for, in the
        // transaction; any failure (the registry changed under a delete, the
        // database) rolls it back.
        let completed = async {
            let registered = match &plan.lookup {
                Some(lookup) => {
                    self.ctx.record_sql(lookup);
                    tx.query(lookup, registry::ROW_TYPES).await?
                }
                None => Vec::new(),
            };
            plan.complete(&mut set, &registered)?;
            while let Some((query, types)) = plan.next_read()? {
                self.ctx.record_sql(&query);
                let rows = tx.query(&query, &types).await?;
                plan.read_reply(&mut set, rows)?;
            }
            Ok::<(), Error>(())
        }
        .await;
        if let Err(e) = completed {
            tx.rollback().await.ok();
            return Err(e);
        }
        // Made before the COMMIT: should this future be dropped while the commit's
        // outcome is unknown, the entry stays pending in this process (its reads
        // bypass the cache until it is applied) rather than forgotten.
        let mut effects = ApplyEffects::new(self.env(), plan.entry_id, set);
        for statement in &plan.statements {
            self.ctx.record_sql(statement);
        }
        let committed = tx.execute_all_and_commit(&plan.statements).await;
        if let Err(e) = committed {
            effects.failed(&e);
            return Err(e.into());
        }
        plan.committed(&mut effects);
        self.run(effects).await
    }
}
