//! PostgreSQL backend via the synchronous `postgres` crate: [`Postgres::connect`]
//! with libpq-style parameters (`host=… port=… user=… dbname=…`) or a
//! `postgres://` URL.
//!
//! Clients live in an `r2d2` pool (opened up to a bound, with an idle timeout and a
//! maximum lifetime); a client whose connection broke, or that is still inside a
//! transaction when it comes back, is closed rather than reused. Each client keeps
//! its prepared statements in an LRU cache by SQL text. Values and errors are
//! converted by `postgres_types`, shared with the async backend.
//!
//! TLS (feature `tls`): `sslmode` and `sslrootcert` in the parameters, with libpq's
//! meanings, over rustls (see `postgres_tls`).
//!
//! Timeouts: `connect_timeout` (unless the parameters set one) and a per-session
//! `statement_timeout`, both configurable through [`PostgresOptions`], so a slow or
//! dead server yields a [`DbError`] rather than a hang.
//!
//! The `postgres` crate drives a tokio runtime of its own for each call, which
//! panics inside another runtime; every call goes through
//! `outside_any_runtime`, so the blocking store works
//! (blocking its worker) even inside an async task.
//!
//! TEXT cannot hold the NUL character in PostgreSQL; binding a string containing one
//! fails with a clean [`DbError::Query`] ("invalid byte sequence for encoding UTF8: 0x00").

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use lru::LruCache;
use postgres::{Client, Config, Statement};

use memdex_grammar::sql::SqlQuery;
use memdex_grammar::{Dialect, Type, Value};

use super::postgres_tls::{PgTls, Prepared, prepare};
use super::postgres_types::{bind, decode_rows, describe_config, error_text, parse_config, refs, to_db_error};
use super::{Database, DbError, PoolState, Tx, TxConn, outside_any_runtime, read_retrying_once};

/// Tuning knobs for [`Postgres::connect_with`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct PostgresOptions {
    /// The most clients open at once.
    pub pool_size: u32,
    /// Used when the connection parameters do not set `connect_timeout`.
    pub connect_timeout: Duration,
    /// The server cancels any statement running longer than this.
    pub statement_timeout: Duration,
    /// How long a caller waits for a free pooled client before failing.
    pub pool_wait: Duration,
    /// Prepared statements kept per client, least recently used out first.
    pub statement_cache: usize,
    /// Idle clients beyond the minimum are closed after this long.
    pub idle_timeout: Option<Duration>,
    /// Clients are closed and reopened after this long.
    pub max_lifetime: Option<Duration>,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions {
            pool_size: 8,
            connect_timeout: Duration::from_secs(10),
            statement_timeout: Duration::from_secs(30),
            pool_wait: Duration::from_secs(30),
            statement_cache: 256,
            idle_timeout: Some(Duration::from_secs(600)),
            max_lifetime: Some(Duration::from_secs(1800)),
        }
    }
}

/// One pooled connection and its prepared statements.
pub(crate) struct PgClient {
    /// `None` only while being dropped (see the `Drop` impl).
    client: Option<Client>,
    statements: LruCache<String, Statement>,
    /// The DDL generation the cached statements were prepared under.
    generation: u64,
    /// Inside a transaction not yet committed or rolled back.
    in_transaction: bool,
}

impl PgClient {
    fn client(&mut self) -> Result<&mut Client, DbError> {
        self.client.as_mut().ok_or_else(|| DbError::connect("the PostgreSQL client was closed"))
    }

    fn is_closed(&self) -> bool {
        self.client.as_ref().is_none_or(Client::is_closed)
    }

    /// The cached prepared statement for `text`, preparing it on a miss. Dropping
    /// an evicted `Statement` closes it on the server.
    fn prepare(&mut self, text: &str) -> Result<Statement, DbError> {
        if let Some(statement) = self.statements.get(text) {
            return Ok(statement.clone());
        }
        let statement = self.client()?.prepare(text).map_err(to_db_error)?;
        self.statements.put(text.to_owned(), statement.clone());
        Ok(statement)
    }

    fn query(&mut self, q: &SqlQuery, types: &[Type]) -> Result<Vec<Vec<Value>>, DbError> {
        outside_any_runtime(|| {
            let statement = self.prepare(&q.text)?;
            let bound = bind(&statement, &q.params)?;
            let rows = self.client()?.query(&statement, &refs(&bound)).map_err(to_db_error)?;
            decode_rows(&statement, &rows, types)
        })
    }

    fn execute(&mut self, q: &SqlQuery) -> Result<u64, DbError> {
        outside_any_runtime(|| {
            let statement = self.prepare(&q.text)?;
            let bound = bind(&statement, &q.params)?;
            self.client()?.execute(&statement, &refs(&bound)).map_err(to_db_error)
        })
    }

    fn batch(&mut self, sql: &str) -> Result<(), DbError> {
        outside_any_runtime(|| self.client()?.batch_execute(sql).map_err(to_db_error))
    }
}

/// Opens clients for the pool.
#[derive(Debug)]
struct Manager {
    config: Config,
    tls: PgTls,
    /// The server, for errors (never the password).
    description: String,
    options: PostgresOptions,
    /// Bumped by every `execute_ddl`: statements prepared before a schema change may
    /// describe old result types, so clients drop their cache when they see a new value.
    ddl_generation: Arc<AtomicU64>,
}

impl r2d2::ManageConnection for Manager {
    type Connection = PgClient;
    type Error = DbError;

    fn connect(&self) -> Result<PgClient, DbError> {
        let generation = self.ddl_generation.load(Ordering::Acquire);
        outside_any_runtime(|| open_client(&self.config, &self.tls, &self.description, &self.options, generation))
    }

    fn is_valid(&self, conn: &mut PgClient) -> Result<(), DbError> {
        conn.batch("")
    }

    fn has_broken(&self, conn: &mut PgClient) -> bool {
        conn.in_transaction || conn.is_closed()
    }
}

/// A PostgreSQL database, pooled and safe to share between threads.
pub struct Postgres {
    pool: r2d2::Pool<Manager>,
    pool_wait: Duration,
    connect_wait: Duration,
    ddl_generation: Arc<AtomicU64>,
    description: String,
}

impl std::fmt::Debug for Postgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Postgres").field("server", &self.description).field("pool", &self.pool.state()).finish()
    }
}

impl Postgres {
    /// Connects with default [`PostgresOptions`].
    pub fn connect(params: &str) -> Result<Postgres, DbError> {
        Postgres::connect_with(params, PostgresOptions::default())
    }

    /// Parses `params` (key=value pairs or a `postgres://` URL) and opens one client
    /// at once, so a wrong address or password fails here rather than on the first
    /// query.
    pub fn connect_with(params: &str, options: PostgresOptions) -> Result<Postgres, DbError> {
        let Prepared { params, driver_mode, tls, settings } = prepare(params).map_err(DbError::connect)?;
        let mut config: tokio_postgres::Config = parse_config(&params, &options)?;
        config.ssl_mode(driver_mode);
        let description = format!("{} sslmode={}", describe_config(&config), settings.mode);
        let connect_wait =
            config.get_connect_timeout().copied().unwrap_or(options.connect_timeout).min(options.pool_wait);
        let config = Config::from(config);
        let ddl_generation = Arc::new(AtomicU64::new(0));
        // The first client is opened here, on this thread, so that its error (a
        // wrong password, say) is this call's rather than a pool timeout's.
        let first = outside_any_runtime(|| open_client(&config, &tls, &description, &options, 0))?;
        drop(first);
        let manager = Manager {
            config,
            tls,
            description: description.clone(),
            options: options.clone(),
            ddl_generation: ddl_generation.clone(),
        };
        let pool = r2d2::Pool::builder()
            .max_size(options.pool_size.max(1))
            .min_idle(Some(1))
            .idle_timeout(options.idle_timeout)
            .max_lifetime(options.max_lifetime)
            .connection_timeout(options.pool_wait)
            // A checkout would cost a round trip; broken clients are found by
            // `has_broken` when they come back, and a read retries once.
            .test_on_check_out(false)
            .thread_pool(super::pool_threads())
            .error_handler(Box::new(r2d2::LoggingErrorHandler))
            .build(manager)
            .map_err(pool_error)?;
        Ok(Postgres { pool, pool_wait: options.pool_wait, connect_wait, ddl_generation, description })
    }

    /// Checks out a client whose statement cache is current. A caller waits up to
    /// `pool_wait` for a busy pool to free a client, but only about
    /// `connect_timeout` when the pool holds no client at all (the server is most
    /// likely unreachable: waiting longer only delays the error).
    fn client(&self) -> Result<r2d2::PooledConnection<Manager>, DbError> {
        let generation = self.ddl_generation.load(Ordering::Acquire);
        let wait = if self.pool.state().connections == 0 { self.connect_wait } else { self.pool_wait };
        let mut client = self.pool.get_timeout(wait).map_err(pool_error)?;
        if client.generation != generation {
            client.statements.clear();
            client.generation = generation;
        }
        Ok(client)
    }

    /// One read; `true` with the error when the client's connection was lost.
    fn query_once(&self, q: &SqlQuery, types: &[Type]) -> Result<Vec<Vec<Value>>, (DbError, bool)> {
        let mut conn = self.client().map_err(|e| (e, false))?;
        conn.query(q, types).map_err(|e| (e, conn.is_closed()))
    }
}

fn pool_error(e: r2d2::Error) -> DbError {
    DbError::Connect { message: format!("no free database connection: {e}"), source: Some(Box::new(e)) }
}

fn open_client(
    config: &Config,
    tls: &PgTls,
    description: &str,
    options: &PostgresOptions,
    generation: u64,
) -> Result<PgClient, DbError> {
    let connected = match tls {
        PgTls::Plain => config.connect(postgres::NoTls),
        #[cfg(feature = "tls")]
        PgTls::Rustls(connector) => config.connect(connector.clone()),
    };
    let client = connected.map_err(|e| DbError::Connect {
        message: format!("PostgreSQL {description}: {}", error_text(&e)),
        source: Some(Box::new(e)),
    })?;
    let capacity = NonZeroUsize::new(options.statement_cache).unwrap_or(NonZeroUsize::MIN);
    Ok(PgClient { client: Some(client), statements: LruCache::new(capacity), generation, in_transaction: false })
}

impl Drop for PgClient {
    /// Closing a `postgres::Client` drives its runtime too: it must not happen on a
    /// thread that runs a tokio runtime (a store dropped inside an async task).
    fn drop(&mut self) {
        self.statements.clear();
        if let Some(client) = self.client.take() {
            outside_any_runtime(move || drop(client));
        }
    }
}

/// Statements inside one PostgreSQL transaction, on a pooled client of its own.
struct PgTx {
    conn: r2d2::PooledConnection<Manager>,
}

impl Tx for PgTx {
    fn execute(&mut self, q: &SqlQuery) -> Result<u64, DbError> {
        self.conn.execute(q)
    }

    fn query(&mut self, q: &SqlQuery, types: &[Type]) -> Result<Vec<Vec<Value>>, DbError> {
        self.conn.query(q, types)
    }
}

impl TxConn for PgTx {
    fn commit(mut self: Box<Self>) -> Result<(), DbError> {
        self.conn.batch("COMMIT")?;
        self.conn.in_transaction = false;
        Ok(())
    }

    fn as_tx(&mut self) -> &mut dyn Tx {
        self
    }
}

impl Drop for PgTx {
    fn drop(&mut self) {
        if self.conn.in_transaction && self.conn.batch("ROLLBACK").is_ok() {
            self.conn.in_transaction = false;
        }
        // Still in a transaction (the ROLLBACK failed): the pool closes the client.
    }
}

impl Database for Postgres {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn query(&self, q: &SqlQuery, types: &[Type]) -> Result<Vec<Vec<Value>>, DbError> {
        read_retrying_once(|| self.query_once(q, types))
    }

    /// The statement alone, autocommitted: one round trip.
    fn write_alone(&self, q: &SqlQuery, types: &[Type]) -> Result<Vec<Vec<Value>>, DbError> {
        self.client()?.query(q, types)
    }

    fn begin(&self) -> Result<Box<dyn TxConn>, DbError> {
        let mut conn = self.client()?;
        conn.batch("BEGIN")?;
        conn.in_transaction = true;
        Ok(Box::new(PgTx { conn }))
    }

    fn execute_ddl(&self, statements: &[String]) -> Result<(), DbError> {
        let mut conn = self.client()?;
        let mut outcome = Ok(());
        for statement in statements {
            if let Err(e) = conn.batch(statement) {
                outcome = Err(match e {
                    DbError::Query { message, code, source } => {
                        DbError::Query { message: format!("{message} (in `{statement}`)"), code, source }
                    }
                    other => other,
                });
                break;
            }
        }
        // Even a failed batch may have changed the schema.
        self.ddl_generation.fetch_add(1, Ordering::AcqRel);
        outcome
    }

    fn describe(&self) -> String {
        format!("PostgreSQL {}", self.description)
    }

    fn pool_state(&self) -> PoolState {
        let state = self.pool.state();
        PoolState { connections: state.connections, idle: state.idle_connections }
    }
}
