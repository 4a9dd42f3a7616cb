//! PostgreSQL for the async store: `tokio-postgres` clients in a `deadpool` pool,
//! with deadpool's per-client statement cache (`prepare_cached`). Values and errors
//! go through `postgres_types`, as for the blocking backend.
//!
//! Cancellation: a client checked out for a statement goes back to the pool when its
//! future completes or is dropped; tokio-postgres pairs each reply with its request
//! on the connection task, so a dropped query leaves the client usable. A
//! transaction dropped before its commit takes its client out of the pool for good
//! (closing the connection, so the server rolls back): no other caller can ever run
//! inside a transaction it did not open.

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};

use memdex_grammar::sql::SqlQuery;
use memdex_grammar::{Type, Value};

use super::postgres::PostgresOptions;
use super::postgres_tls::{PgTls, Prepared, prepare};
use super::postgres_types::{bind, decode_rows, describe_config, parse_config, refs, to_db_error};
use super::{DbError, PoolState};

/// A PostgreSQL database for the async store.
pub(crate) struct AsyncPostgres {
    pool: Pool,
    description: String,
}

impl std::fmt::Debug for AsyncPostgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncPostgres").field("server", &self.description).finish_non_exhaustive()
    }
}

impl AsyncPostgres {
    /// Parses `params` (key=value pairs or a `postgres://` URL) and opens one client
    /// at once, so that a wrong address or password fails here.
    pub(crate) async fn connect(params: &str, options: &PostgresOptions) -> Result<AsyncPostgres, DbError> {
        let Prepared { params, driver_mode, tls, settings } = prepare(params).map_err(DbError::connect)?;
        let mut config = parse_config(&params, options)?;
        config.ssl_mode(driver_mode);
        let description = format!("{} sslmode={}", describe_config(&config), settings.mode);
        // Recycling checks only that the connection is open: no round trip per
        // checkout (a read retries once on a connection found closed).
        let recycling = ManagerConfig { recycling_method: RecyclingMethod::Fast };
        let manager = match tls {
            PgTls::Plain => Manager::from_config(config.clone(), tokio_postgres::NoTls, recycling),
            #[cfg(feature = "tls")]
            PgTls::Rustls(connector) => Manager::from_config(config.clone(), connector, recycling),
        };
        let connect_timeout = config.get_connect_timeout().copied().unwrap_or(options.connect_timeout);
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(1) as usize)
            .wait_timeout(Some(options.pool_wait))
            .create_timeout(Some(connect_timeout + Duration::from_millis(100)))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| DbError::Connect { message: format!("PostgreSQL pool: {e}"), source: Some(Box::new(e)) })?;
        let db = AsyncPostgres { pool, description };
        drop(db.client().await?);
        Ok(db)
    }

    async fn client(&self) -> Result<Object, DbError> {
        self.pool.get().await.map_err(|e| DbError::Connect {
            message: format!("PostgreSQL {}: {e}", self.description),
            source: Some(Box::new(e)),
        })
    }

    /// One read; `true` with the error when the client's connection was lost.
    async fn query_once(&self, q: &SqlQuery, types: &[Type]) -> Result<Vec<Vec<Value>>, (DbError, bool)> {
        let client = self.client().await.map_err(|e| (e, false))?;
        let (result, client) = query_owing(client, q, types).await;
        let closed = client.as_ref().is_some_and(|c| c.is_closed());
        result.map_err(|e| (e, closed))
    }

    pub(crate) async fn query(&self, q: &SqlQuery, types: &[Type]) -> Result<Vec<Vec<Value>>, DbError> {
        match self.query_once(q, types).await {
            Ok(rows) => Ok(rows),
            // An idle pooled client may have lost its connection (server restart);
            // a read is safe to repeat once on a fresh client.
            Err((_, true)) => self.query_once(q, types).await.map_err(|(e, _)| e),
            Err((e, false)) => Err(e),
        }
    }

    /// One statement that writes, autocommitted, never tried again (after a lost
    /// reply its outcome is unknown): [`crate::Database::write_alone`].
    pub(crate) async fn write_alone(&self, q: &SqlQuery, types: &[Type]) -> Result<Vec<Vec<Value>>, DbError> {
        let (result, _client) = query_owing(self.client().await?, q, types).await;
        result
    }

    /// Opens a transaction on a client of its own.
    pub(crate) async fn begin(&self) -> Result<AsyncPgTx, DbError> {
        // The transaction holds the client before BEGIN is sent: a future dropped
        // while BEGIN is in flight drops the client with it (see `Drop`), rather
        // than giving the pool a connection inside a transaction, where the next
        // user's statements would run uncommitted (a statement alone,
        // `write_alone`, would never commit).
        let tx = AsyncPgTx { client: Some(self.client().await?) };
        tx.client()?.batch_execute("BEGIN").await.map_err(to_db_error)?;
        Ok(tx)
    }

    pub(crate) async fn execute_ddl(&self, statements: &[String]) -> Result<(), DbError> {
        let client = self.client().await?;
        let mut outcome = Ok(());
        for statement in statements {
            if let Err(e) = client.batch_execute(statement).await {
                outcome = Err(match to_db_error(e) {
                    DbError::Query { message, code, source } => {
                        DbError::Query { message: format!("{message} (in `{statement}`)"), code, source }
                    }
                    other => other,
                });
                break;
            }
        }
        // Statements prepared before a schema change may describe old result types.
        self.pool.manager().statement_caches.clear();
        outcome
    }

    pub(crate) fn describe(&self) -> String {
        format!("PostgreSQL {}", self.description)
    }

    pub(crate) fn pool_state(&self) -> PoolState {
        let status = self.pool.status();
        PoolState { connections: status.size as u32, idle: status.available as u32 }
    }
}

async fn query_on(client: &Object, q: &SqlQuery, types: &[Type]) -> Result<Vec<Vec<Value>>, DbError> {
    let statement = client.prepare_cached(&q.text).await.map_err(to_db_error)?;
    let bound = bind(&statement, &q.params)?;
    let rows = client.query(&statement, &refs(&bound)).await.map_err(to_db_error)?;
    decode_rows(&statement, &rows, types)
}

async fn execute_on(client: &Object, q: &SqlQuery) -> Result<u64, DbError> {
    let statement = client.prepare_cached(&q.text).await.map_err(to_db_error)?;
    let bound = bind(&statement, &q.params)?;
    client.execute(&statement, &refs(&bound)).await.map_err(to_db_error)
}

/// An open transaction on a client of its own.
pub(crate) struct AsyncPgTx {
    /// `None` once committed.
    client: Option<Object>,
}

impl std::fmt::Debug for AsyncPgTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncPgTx").field("open", &self.client.is_some()).finish()
    }
}

impl AsyncPgTx {
    fn client(&self) -> Result<&Object, DbError> {
        self.client.as_ref().ok_or_else(|| DbError::query("the transaction is already committed"))
    }

    pub(crate) async fn execute(&mut self, q: &SqlQuery) -> Result<u64, DbError> {
        execute_on(self.client()?, q).await
    }

    pub(crate) async fn query(&mut self, q: &SqlQuery, types: &[Type]) -> Result<Vec<Vec<Value>>, DbError> {
        query_on(self.client()?, q, types).await
    }

    /// Rolls back and gives the client back to the pool (a failed ROLLBACK closes it).
    pub(crate) async fn rollback(mut self) -> Result<(), DbError> {
        let client = self.client()?;
        client.batch_execute("ROLLBACK").await.map_err(to_db_error)?;
        self.client.take();
        Ok(())
    }

    pub(crate) async fn commit(mut self) -> Result<(), DbError> {
        let client = self.client()?;
        client.batch_execute("COMMIT").await.map_err(to_db_error)?;
        // Committed: the client goes back to the pool.
        self.client.take();
        Ok(())
    }

    /// Runs `statements`, then commits, in ONE round trip: tokio-postgres sends a
    /// request when its future is first polled, and `join_all` polls them in order,
    /// so the statements and the COMMIT leave together (pipelined) and run in that
    /// order. Should a statement fail, PostgreSQL aborts the transaction, the later
    /// statements fail with it, and the COMMIT rolls it back (a COMMIT of an aborted
    /// transaction is a ROLLBACK): the first statement error is returned and nothing
    /// was written. The statements are prepared first (from the cache once seen).
    pub(crate) async fn execute_all_and_commit(mut self, statements: &[SqlQuery]) -> Result<(), DbError> {
        let client = self.client()?;
        let mut prepared = Vec::with_capacity(statements.len());
        for q in statements {
            let statement = client.prepare_cached(&q.text).await.map_err(to_db_error)?;
            let bound = bind(&statement, &q.params)?;
            prepared.push((statement, bound));
        }
        let params: Vec<_> = prepared.iter().map(|(_, bound)| refs(bound)).collect();
        let executes = prepared.iter().zip(&params).map(|((statement, _), params)| client.execute(statement, params));
        let (executed, committed) =
            futures_util::future::join(futures_util::future::join_all(executes), client.batch_execute("COMMIT")).await;
        if let Some(error) = executed.into_iter().find_map(Result::err) {
            // The COMMIT ran as a ROLLBACK; the client is dropped with the
            // transaction all the same (see `Drop`), never reused in doubt.
            return Err(to_db_error(error));
        }
        committed.map_err(to_db_error)?;
        self.client.take();
        Ok(())
    }
}

/// [`query_on`] on a pooled client it owns until the reply comes, and then gives
/// back. Dropped before — its future cancelled — it takes the client out of the
/// pool, and its connection closes: given back, the client would make the next
/// user's statements wait behind the one still running (a write waiting for a row
/// lock, up to the statement timeout). A statement that writes may still commit on
/// the server: its outbox entry is then in doubt (`Outbox::in_doubt`).
async fn query_owing(
    client: Object,
    q: &SqlQuery,
    types: &[Type],
) -> (Result<Vec<Vec<Value>>, DbError>, Option<Object>) {
    let mut owed = OwedReply(Some(client));
    let result = match owed.0.as_ref() {
        Some(client) => query_on(client, q, types).await,
        None => Err(DbError::query("no client")),
    };
    (result, owed.0.take())
}

/// A pooled client whose statement's reply has not come yet (see [`query_owing`]).
struct OwedReply(Option<Object>);

impl Drop for OwedReply {
    fn drop(&mut self) {
        if let Some(client) = self.0.take() {
            drop(Object::take(client));
        }
    }
}

impl Drop for AsyncPgTx {
    fn drop(&mut self) {
        // Not committed (rolled back by the caller, failed, or a dropped future):
        // the client leaves the pool and its connection closes, which rolls back on
        // the server. A ROLLBACK would need an `.await` a destructor cannot make.
        if let Some(client) = self.client.take() {
            drop(Object::take(client));
        }
    }
}
