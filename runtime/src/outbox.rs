//! Race rule 4: a cache write that fails after the database commit must not leave a
//! stale node or object readable.
//!
//! Every write records the cache keys it must touch in `memdex_outbox`, in the same
//! database transaction as the write itself. After the commit the writer applies the
//! cache batch; if that succeeds the entry is done and is deleted later, piggybacked
//! on the next write's transaction or a drain. If it fails (server down, timeout,
//! ambiguous reply), or the process dies before trying, the entry stays, and:
//!
//! * the writing process knows (`pending`): its reads bypass the cache until it has
//!   deleted those keys, so its own next read is right at once;
//! * every process drains, at most every `outbox_interval`, the entries older than
//!   `outbox_grace`: it deletes their keys (objects and nodes alike — a deleted node
//!   is refilled from the database, which holds the write) and then the entries.
//!
//! Deleting a key is always safe: fills happen under a lease taken *before* the
//! database read, so a delete can only make a concurrent fill fail, never make it
//! store older data. Applying an entry twice is therefore harmless.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use memdex_grammar::ir::{CmpOp, Expr, ExprKind, Haystack};
use memdex_grammar::sql::{self, OrderBy, SelectSpec, SqlQuery};
use memdex_grammar::{Dialect, Schema, Span, Type, Value};

use crate::cache::{CacheOp, CacheReply};
use crate::db::{Database, DbError, Tx};
use crate::error::Error;
use crate::stats::Counters;
use crate::store::{Settings, StoreInner};

const TABLE: &str = "memdex_outbox";
/// Entries a drain handles at once; the next drain takes the rest.
const DRAIN_BATCH: u64 = 200;
/// Done entries deleted per piggybacked statement.
const CLEANUP_BATCH: usize = 500;

fn schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        Schema::new("MemdexOutbox", TABLE)
            .column("id", Type::Int, false)
            .column("keys", Type::Text, false)
            .column("created_at", Type::Int, false)
            .key("id")
            .index(&["created_at"], None)
    })
}

#[derive(Debug)]
pub(crate) struct Outbox {
    table_ready: OnceLock<()>,
    /// Entries whose cache batch succeeded; their rows can go.
    done: Mutex<Vec<i64>>,
    /// This process's entries whose cache batch failed.
    pending: Mutex<Vec<(i64, Vec<String>)>>,
    has_pending: AtomicBool,
    next_drain_ms: AtomicU64,
    interval: Duration,
    grace: Duration,
    sequence: AtomicU64,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl Outbox {
    pub(crate) fn new(settings: &Settings) -> Outbox {
        Outbox {
            table_ready: OnceLock::new(),
            done: Mutex::new(Vec::new()),
            pending: Mutex::new(Vec::new()),
            has_pending: AtomicBool::new(false),
            next_drain_ms: AtomicU64::new(0),
            interval: settings.outbox_interval,
            grace: settings.outbox_grace,
            sequence: AtomicU64::new(0),
        }
    }

    pub(crate) fn ensure_table(&self, db: &dyn Database) -> Result<(), DbError> {
        if self.table_ready.get().is_some() {
            return Ok(());
        }
        db.execute_ddl(&sql::create_table(db.dialect(), schema()))?;
        let _ = self.table_ready.set(());
        Ok(())
    }

    /// A fresh entry id: unique across processes with overwhelming probability
    /// (time, process id and a per-process sequence, mixed).
    pub(crate) fn new_entry_id(&self) -> i64 {
        let seq = self.sequence.fetch_add(1, Ordering::Relaxed);
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        let mut x = nanos ^ (u64::from(std::process::id()) << 40) ^ seq.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        // splitmix64 finaliser
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^= x >> 31;
        (x >> 1) as i64
    }

    pub(crate) fn insert_sql(&self, dialect: Dialect, id: i64, keys: &[String]) -> SqlQuery {
        let row = [Value::Int(id), Value::Text(keys.join("\n")), Value::Int(now_ms() as i64)];
        sql::insert(dialect, schema(), &row)
    }

    /// Deletes done entries inside the caller's write transaction (no extra round
    /// trip on SQLite; one statement on PostgreSQL).
    pub(crate) fn piggyback_cleanup(
        &self,
        tx: &mut dyn Tx,
        dialect: Dialect,
        inner: &StoreInner,
    ) -> Result<(), DbError> {
        let ids = self.take_done();
        if ids.is_empty() {
            return Ok(());
        }
        inner.count_db(1);
        let result = delete_ids(dialect, &ids).and_then(|q| tx.execute(&q));
        if result.is_err() {
            self.done.lock().unwrap_or_else(|p| p.into_inner()).extend(ids);
        }
        result.map(|_| ())
    }

    fn take_done(&self) -> Vec<i64> {
        let mut done = self.done.lock().unwrap_or_else(|p| p.into_inner());
        let n = done.len().min(CLEANUP_BATCH);
        done.drain(..n).collect()
    }

    pub(crate) fn done(&self, id: i64) {
        self.done.lock().unwrap_or_else(|p| p.into_inner()).push(id);
    }

    pub(crate) fn defer(&self, id: i64, keys: Vec<String>) {
        self.pending.lock().unwrap_or_else(|p| p.into_inner()).push((id, keys));
        self.has_pending.store(true, Ordering::Release);
    }

    /// Called before every read and write: drains this process's own failed
    /// invalidations, and every `interval` everyone's old ones. Returns whether the
    /// cache may be trusted for reads right now (false while this process still has
    /// invalidations it could not apply).
    pub(crate) fn maybe_drain(&self, inner: &StoreInner) -> bool {
        let due = now_ms() >= self.next_drain_ms.load(Ordering::Relaxed);
        let pending = self.has_pending.load(Ordering::Acquire);
        if due || pending {
            if let Err(e) = self.drain(inner, false) {
                tracing::warn!(target: "memdex::outbox", "outbox drain failed: {e}");
            }
        }
        !self.has_pending.load(Ordering::Acquire)
    }

    /// Applies pending invalidations; `force` ignores the interval. Returns how many
    /// entries were applied.
    pub(crate) fn drain(&self, inner: &StoreInner, force: bool) -> Result<usize, Error> {
        let mut applied = self.drain_own(inner);
        let now = now_ms();
        let next = self.next_drain_ms.load(Ordering::Relaxed);
        if force || now >= next {
            self.next_drain_ms.store(now + self.interval.as_millis() as u64, Ordering::Relaxed);
            self.ensure_table(&*inner.db)?;
            applied += self.drain_table(inner, now.saturating_sub(self.grace.as_millis() as u64))?;
            let ids = self.take_done();
            if !ids.is_empty() {
                inner.count_db(1);
                let d = inner.db.dialect();
                let q = delete_ids(d, &ids)?;
                inner.db.transaction(&mut |tx| tx.execute(&q).map(|_| ()))?;
            }
        }
        Ok(applied)
    }

    fn drain_own(&self, inner: &StoreInner) -> usize {
        if !self.has_pending.load(Ordering::Acquire) {
            return 0;
        }
        let entries: Vec<(i64, Vec<String>)> =
            std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()));
        let mut still = Vec::new();
        let mut applied = 0;
        for (id, keys) in entries {
            if delete_keys(inner, &keys) {
                self.done(id);
                applied += 1;
            } else {
                still.push((id, keys));
            }
        }
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending.extend(still);
        self.has_pending.store(!pending.is_empty(), Ordering::Release);
        Counters::add(&inner.stats.outbox_drained, applied as u64);
        applied
    }

    fn drain_table(&self, inner: &StoreInner, cutoff_ms: u64) -> Result<usize, Error> {
        let d = inner.db.dialect();
        let filter = Expr::cmp(
            CmpOp::Le,
            Expr::field("created_at", Span::DUMMY),
            Expr::param("cutoff", Span::DUMMY),
            Span::DUMMY,
        );
        let order = [OrderBy { column: 2, desc: false }];
        let spec = SelectSpec { filter: Some(&filter), order: &order, limit: Some(DRAIN_BATCH), offset: None };
        let params = vec![("cutoff".to_owned(), Value::Int(cutoff_ms as i64))];
        let q = sql::select(d, schema(), spec, &params).map_err(|e| Error::Config(e.to_string()))?;
        inner.count_db(1);
        let rows = inner.db.query(&q, &[Type::Int, Type::Text, Type::Int])?;
        let mut applied_ids = Vec::new();
        for row in rows {
            let (Some(Value::Int(id)), Some(Value::Text(keys))) = (row.first(), row.get(1)) else { continue };
            let keys: Vec<String> = keys.split('\n').filter(|k| !k.is_empty()).map(str::to_owned).collect();
            if delete_keys(inner, &keys) {
                applied_ids.push(*id);
            }
        }
        if !applied_ids.is_empty() {
            inner.count_db(1);
            let q = delete_ids(d, &applied_ids)?;
            inner.db.transaction(&mut |tx| tx.execute(&q).map(|_| ()))?;
            Counters::add(&inner.stats.outbox_drained, applied_ids.len() as u64);
        }
        Ok(applied_ids.len())
    }
}

/// Deletes keys in one batch; true when the cache confirmed every one.
fn delete_keys(inner: &StoreInner, keys: &[String]) -> bool {
    let ops: Vec<CacheOp<'_>> = keys.iter().map(|key| CacheOp::Delete { key }).collect();
    inner.cache_run(&ops).iter().all(|r| matches!(r, Ok(CacheReply::Deleted | CacheReply::NotFound)))
}

fn delete_ids(dialect: Dialect, ids: &[i64]) -> Result<SqlQuery, DbError> {
    let filter = Expr::new(
        ExprKind::In { needle: Box::new(Expr::field("id", Span::DUMMY)), haystack: Haystack::Param("ids".into()) },
        Span::DUMMY,
    );
    let params = vec![("ids".to_owned(), Value::List(ids.iter().map(|&i| Value::Int(i)).collect()))];
    sql::delete_where(dialect, schema(), &filter, &params).map_err(|e| DbError::Query(e.to_string()))
}
