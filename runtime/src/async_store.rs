//! The async façade (feature `tokio`): [`AsyncStore`], built by
//! [`StoreBuilder::build_async`], with the same calls as [`Store`](crate::Store),
//! awaited; and [`AsyncTransaction`]. Every call runs on the tokio driver
//! (`crate::exec::asynchronous`), which runs the same machines as the blocking one.

use std::sync::Arc;

use tracing::Instrument;

use memdex_grammar::sql;
use memdex_grammar::{Dialect, Value};

use crate::cache::in_process::InProcessCache;
use crate::cache::memcached::AsyncMemcached;
use crate::engine::changes::ApplyChanges;
use crate::engine::drain::Drain;
use crate::engine::write::{RowWrite, WriteSet, check_storable};
use crate::engine::{Context, Observation, Outcome};
use crate::error::Error;
use crate::exec::asynchronous::{AsyncCache, AsyncDb, AsyncDriver, AsyncTx};
use crate::handle::AsyncStore;
use crate::model::Model;
use crate::query::Select;
use crate::stats::{Counters, Stats};
use crate::store::{CacheChoice, StoreBuilder, select_text};
use crate::trace::Tracer;

impl StoreBuilder {
    /// Opens the database and the cache for the async store, and checks that
    /// memdex's outbox table exists (creating it if missing, unless
    /// [`StoreBuilder::manage_schema`] is off). Call it inside a
    /// tokio runtime (it dials the servers); PostgreSQL then runs on
    /// `tokio-postgres`, SQLite on tokio's blocking pool.
    ///
    /// It fails as [`StoreBuilder::build`] does.
    ///
    /// ```no_run
    /// use memdex::{AsyncStore, Store};
    ///
    /// # async fn run() -> Result<(), memdex::Error> {
    /// // PostgreSQL (feature `postgres`) on tokio-postgres, memcached over tokio::net.
    /// let store: AsyncStore = Store::builder()
    ///     .url("postgres://shop@db.internal/shop")
    ///     .memcached(["cache1.internal:11211"])
    ///     .build_async()
    ///     .await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn build_async(self) -> Result<AsyncStore, Error> {
        let (db, cache, settings, cache_config, trace) = self.into_parts()?;
        let db = match db {
            #[cfg(feature = "postgres")]
            crate::store::DbChoice::Postgres(params) => {
                crate::store::check_postgres_tls(&params)?;
                let options = crate::db::postgres::PostgresOptions::default();
                AsyncDb::Postgres(crate::db::postgres_async::AsyncPostgres::connect(&params, &options).await?)
            }
            // SQLite (and a database of your own) is blocking: opened, and later
            // used, on the blocking pool.
            other => {
                let opened = tokio::task::spawn_blocking(move || other.open())
                    .await
                    .map_err(|e| Error::Internal(format!("opening the database failed: {e}")))??;
                AsyncDb::Blocking(Arc::from(opened))
            }
        };
        let cache = match cache {
            CacheChoice::InProcess => AsyncCache::InProcess(InProcessCache::new(cache_config)),
            CacheChoice::Memcached(servers) => AsyncCache::Memcached(
                AsyncMemcached::connect(&servers, cache_config)
                    .await
                    .map_err(|e| Error::Config(format!("memcached: {e}")))?,
            ),
            CacheChoice::Custom(cache) => AsyncCache::Blocking(Arc::from(cache)),
        };
        let driver = AsyncDriver { ctx: Context::new(settings, Tracer::new(trace)), db, cache };
        driver.ensure_outbox().await?;
        Ok(AsyncStore { driver: Arc::new(driver) })
    }
}

impl AsyncStore {
    /// Creates the model's table and indexes, and memdex's outbox table, if they do
    /// not exist; on a store that does not manage its schema, checks the model's
    /// table instead; then registers the model's indexes in memdex's index registry,
    /// as [`Store::migrate`](crate::Store::migrate).
    pub async fn migrate<T: Model>(&self) -> Result<(), Error> {
        let driver = &self.driver;
        if !driver.ctx.settings.manage_schema {
            self.check_schema::<T>().await?;
        } else {
            driver.ensure_outbox().await?;
            let statements = sql::create_table(driver.dialect(), T::schema());
            Counters::add(&driver.ctx.stats.db_queries, statements.len() as u64);
            driver.db.execute_ddl(&statements).await?;
        }
        // Registration is no DDL: a store that does not manage its schema registers
        // its model's indexes too, or the other versions' writes would not append to
        // the nodes of the indexes only this version declares.
        driver.register_indexes(T::schema()).await?;
        if driver.ctx.settings.capture_outside_writes && driver.ctx.settings.manage_schema {
            driver.install_capture(T::schema()).await?;
        }
        Ok(())
    }

    /// Checks that the model's table exists with every column and index
    /// [`crate::ddl`] creates for it, as [`Store::check_schema`](crate::Store::check_schema).
    pub async fn check_schema<T: Model>(&self) -> Result<(), Error> {
        self.driver.check_schema(T::schema()).await
    }

    /// Inserts a row (an error if its key exists).
    pub async fn insert<T: Model>(&self, row: &T) -> Result<(), Error> {
        check_storable(self.dialect(), row)?;
        // As `Store::insert`: one statement where it can be.
        if self.driver.insert_in_one_statement(row).await? {
            return Ok(());
        }
        let mut tx = self.begin().await?;
        tx.insert(row).await?;
        tx.commit().await
    }

    /// Updates the row with `row`'s key to `row` (`Error::NotFound` if there is none).
    pub async fn update<T: Model>(&self, row: &T) -> Result<(), Error> {
        check_storable(self.dialect(), row)?;
        // As `Store::update`: one statement where it can be.
        if self.driver.update_in_one_statement(row).await? {
            return Ok(());
        }
        let mut tx = self.begin().await?;
        tx.update(row).await?;
        tx.commit().await
    }

    /// Deletes the row with this key (`Error::NotFound` if there is none).
    pub async fn delete<T: Model>(&self, key: &T::Key) -> Result<(), Error> {
        // As `Store::delete`: a read and one guarded statement where it can be.
        if self.driver.delete_in_one_statement::<T>(key).await? {
            return Ok(());
        }
        match self.delete_once::<T>(key).await {
            // As `Store::delete`: the rolled-back delete runs again, once.
            Err(Error::RegistryChanged { .. }) => self.delete_once::<T>(key).await,
            done => done,
        }
    }

    async fn delete_once<T: Model>(&self, key: &T::Key) -> Result<(), Error> {
        let mut tx = self.begin().await?;
        tx.delete::<T>(key).await?;
        tx.commit().await
    }

    /// Opens a transaction: its writes commit together with
    /// [`AsyncTransaction::commit`], and only then does the cache hear of them, in
    /// one pipelined batch. Dropped without a commit, it rolls back and touches no
    /// cache key.
    pub async fn begin(&self) -> Result<AsyncTransaction, Error> {
        let seen = self.driver.observe_transaction();
        let span = seen.span().clone();
        let begun = async {
            self.driver.maybe_drain().await;
            self.driver.db.begin().await
        };
        match begun.instrument(span).await {
            Ok(tx) => {
                let driver = self.driver.clone();
                Ok(AsyncTransaction { tx: Some(tx), set: WriteSet::default(), driver, seen: Some(seen) })
            }
            Err(e) => {
                seen.finish(Outcome::default(), false);
                Err(e.into())
            }
        }
    }

    /// A text query (Python lambda syntax) with free names bound by name, as
    /// [`Store::recall_text`](crate::Store::recall_text).
    pub async fn recall_text<T: Model>(&self, text: &str, params: &[(&str, Value)]) -> Result<Vec<T>, Error> {
        self.select_text::<T>(text, params)?.fetch_async(self).await
    }

    /// The text form as a `Select` (prepared through the store's cache of text
    /// queries), for ordering, paging, counting or explaining.
    pub fn select_text<T: Model>(&self, text: &str, params: &[(&str, Value)]) -> Result<Select<'static, T>, Error> {
        select_text(&self.driver.ctx, text, params)
    }

    /// Applies pending invalidations now (and the captured outside writes), as
    /// [`Store::drain_outbox`](crate::Store::drain_outbox).
    pub async fn drain_outbox(&self) -> Result<usize, Error> {
        let mut applied = self.driver.run(Drain::new(self.driver.env(), true)).await?;
        if self.driver.ctx.capture.is_some() {
            applied += self.driver.run(ApplyChanges::new(self.driver.env())).await?;
        }
        Ok(applied)
    }

    /// Counters since the store was built, with the cache servers' health, the
    /// database pool's gauges and the near cache's size.
    pub fn stats(&self) -> Stats {
        let mut stats = self.driver.ctx.stats.snapshot();
        crate::stats::merge_gauges(&mut stats, self.driver.gauges());
        stats
    }

    /// The SQL dialect of the database.
    pub fn dialect(&self) -> Dialect {
        self.driver.dialect()
    }

    /// "PostgreSQL … + memcached …", for banners and logs.
    pub fn describe(&self) -> String {
        format!("{} + {}", self.driver.db.describe(), self.driver.cache.describe())
    }
}

/// Writes inside [`AsyncStore::begin`]: they commit together.
#[derive(Debug)]
pub struct AsyncTransaction {
    /// `None` after a statement failed (the transaction is rolled back) or once
    /// committed.
    tx: Option<AsyncTx>,
    set: WriteSet,
    driver: Arc<AsyncDriver>,
    /// The transaction's span: each call runs inside it; the commit, the rollback
    /// or the drop closes it.
    seen: Option<Observation>,
}

impl AsyncTransaction {
    /// The transaction's span, for the futures of its calls.
    fn span(&self) -> tracing::Span {
        self.seen.as_ref().map_or_else(tracing::Span::none, |seen| seen.span().clone())
    }

    /// Closes the span: `ok` when the writes committed.
    fn close(&mut self, ok: bool) {
        if let Some(seen) = self.seen.take() {
            seen.finish(Outcome::default(), ok);
        }
    }

    async fn write(&mut self, write: Result<RowWrite, Error>) -> Result<(), Error> {
        let write = write?;
        let span = self.span();
        let tx = self.tx.as_mut().ok_or_else(|| Error::Config("the transaction already failed or ended".into()))?;
        let result = self.driver.write(tx, &mut self.set, write).instrument(span).await;
        if result.is_err() {
            // A failed statement aborts the transaction on PostgreSQL; roll back now
            // rather than let later statements fail confusingly.
            if let Some(tx) = self.tx.take() {
                let _ = tx.rollback().await;
            }
        }
        result
    }

    /// Checks that the model's table exists with every column and index
    /// [`crate::ddl`] creates for it, as [`Store::check_schema`](crate::Store::check_schema).
    pub async fn check_schema<T: Model>(&self) -> Result<(), Error> {
        self.driver.check_schema(T::schema()).await
    }

    /// Inserts a row (an error if its key exists).
    pub async fn insert<T: Model>(&mut self, row: &T) -> Result<(), Error> {
        let write = RowWrite::insert(&self.driver.ctx, self.driver.dialect(), row);
        self.write(write).await
    }

    /// Updates the row with `row`'s key (`Error::NotFound` if there is none).
    pub async fn update<T: Model>(&mut self, row: &T) -> Result<(), Error> {
        let write = RowWrite::update(&self.driver.ctx, self.driver.dialect(), row);
        self.write(write).await
    }

    /// Deletes the row with this key (`Error::NotFound` if there is none).
    pub async fn delete<T: Model>(&mut self, key: &T::Key) -> Result<(), Error> {
        let write = Ok(RowWrite::delete::<T>(&self.driver.ctx, self.driver.dialect(), key));
        self.write(write).await
    }

    /// Commits the writes, then applies their cache effects in one batch.
    pub async fn commit(mut self) -> Result<(), Error> {
        let tx = self.tx.take().ok_or_else(|| Error::Config("the transaction already failed or ended".into()))?;
        let set = std::mem::take(&mut self.set);
        let result = self.driver.commit(tx, set).instrument(self.span()).await;
        self.close(result.is_ok());
        result
    }

    /// Rolls the writes back; the cache never hears of them.
    pub async fn rollback(mut self) -> Result<(), Error> {
        let result = match self.tx.take() {
            Some(tx) => tx.rollback().instrument(self.span()).await.map_err(Error::from),
            None => Ok(()),
        };
        // Not committed: seen as the blocking driver sees a transaction whose body
        // returned an error.
        self.close(false);
        result
    }
}

impl Drop for AsyncTransaction {
    /// Dropped without a commit, the writes roll back: the span closes as not ok.
    fn drop(&mut self) {
        self.close(false);
    }
}
