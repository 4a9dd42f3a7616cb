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
//!
//! An entry also names the rows its write *updated* (`moved`), for node fills. An
//! updated row may leave a node, and its id reaches its new node only with the cache
//! batch, after the commit. A node filled from the database in between would no
//! longer list the id while the new node does not list it yet, and a query over
//! both nodes (`bucket in (1, 2)`) would miss a row that matched throughout (K10 in
//! RELIABILITY.md). So a fill reads the rows first and then the in-flight entries
//! ([`Outbox::in_flight`]), and keeps every id they name as a candidate: any write
//! the rows already show has its entry visible to the later read unless its batch
//! has landed (entries go only after that), and the in-memory predicate and lazy
//! removal deal with a candidate that does not belong.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use memdex_grammar::decimal::Digits;
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
/// Keys of this process's failed invalidations retried in one call's batch.
const OWN_DRAIN_KEYS: usize = 2_000;

fn schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        Schema::new("MemdexOutbox", TABLE)
            .column("id", Type::Int, false)
            .column("keys", Type::Text, false)
            .column("created_at", Type::Int, false)
            .column("moved", Type::Text, true)
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
        // A table an older memdex created lacks `moved` (nullable, so it can be
        // added in place): probe for it and add it.
        let spec = SelectSpec { limit: Some(1), ..SelectSpec::default() };
        let no_params: Vec<(String, Value)> = Vec::new();
        let probe = sql::select(db.dialect(), schema(), spec, &no_params).map_err(|e| DbError::Query(e.to_string()))?;
        if db.query(&probe, &[Type::Int, Type::Text, Type::Int, Type::Text]).is_err() {
            let moved = schema().column_index("moved").unwrap_or(3);
            db.execute_ddl(&[sql::add_column(db.dialect(), schema(), moved)])?;
        }
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

    pub(crate) fn insert_sql(&self, dialect: Dialect, id: i64, keys: &[String], moved: &[(String, Value)]) -> SqlQuery {
        let row = [
            Value::Int(id),
            Value::Text(keys.join("\n")),
            Value::Int(now_ms() as i64),
            Value::Text(encode_moved(moved)),
        ];
        sql::insert(dialect, schema(), &row)
    }

    /// The keys of `table`'s rows that writes committed and not yet known to be in
    /// the cache have updated (every entry still in the table: pending ones, and done
    /// ones not yet cleaned up). Node fills call it *after* reading their rows.
    pub(crate) fn in_flight(&self, inner: &StoreInner, table: &str, key_type: Type) -> Result<Vec<Value>, Error> {
        self.ensure_table(&*inner.db)?;
        let filter = Expr::new(
            ExprKind::IsNull { expr: Box::new(Expr::field("moved", Span::DUMMY)), negated: true },
            Span::DUMMY,
        );
        let spec = SelectSpec { filter: Some(&filter), ..SelectSpec::default() };
        let no_params: Vec<(String, Value)> = Vec::new();
        let q =
            sql::select(inner.db.dialect(), schema(), spec, &no_params).map_err(|e| Error::Config(e.to_string()))?;
        inner.count_db(1);
        let rows = inner.db.query(&q, &[Type::Int, Type::Text, Type::Int, Type::Text])?;
        let mut ids = Vec::new();
        for row in &rows {
            let Some(Value::Text(moved)) = row.get(3) else { continue };
            for (t, key) in decode_moved(moved) {
                if t != table {
                    continue;
                }
                match key_type {
                    Type::Int => ids.extend(key.parse::<i64>().ok().map(Value::Int)),
                    _ => ids.push(Value::Text(key)),
                }
            }
        }
        Ok(ids)
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

    /// This process's failed invalidations, in ONE cache batch of at most
    /// [`OWN_DRAIN_KEYS`] keys (the rest waits for the next call): a call never pays
    /// more than one cache round trip for them, however many writes failed. An entry
    /// whose keys now all succeeded is done; one whose failed keys the backend owes
    /// (their server is marked down, see `CacheBackend::owes`) leaves the process's
    /// list: the backend deletes them before the server serves again, and the table
    /// entry stays for the other processes.
    fn drain_own(&self, inner: &StoreInner) -> usize {
        if !self.has_pending.load(Ordering::Acquire) {
            return 0;
        }
        let mut entries: Vec<(i64, Vec<String>)> =
            std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()));
        let mut budget = OWN_DRAIN_KEYS;
        let tried = entries.iter().take_while(|(_, keys)| {
            let fits = keys.len() <= budget;
            budget = budget.saturating_sub(keys.len());
            fits
        });
        // At least one entry is tried, whatever its size, so that no entry waits forever.
        let tried = tried.count().max(1).min(entries.len());
        let untried = entries.split_off(tried);
        let outcomes = delete_entries(inner, entries.iter().map(|(_, keys)| keys.as_slice()));
        let mut still = Vec::new();
        let mut applied = 0;
        for ((id, keys), outcome) in entries.into_iter().zip(outcomes) {
            match outcome {
                Applied::All => {
                    self.done(id);
                    applied += 1;
                }
                Applied::Owed => {}
                Applied::Not => still.push((id, keys)),
            }
        }
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending.extend(still);
        pending.extend(untried);
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
        let rows = inner.db.query(&q, &[Type::Int, Type::Text, Type::Int, Type::Text])?;
        let entries: Vec<(i64, Vec<&str>)> = rows
            .iter()
            .filter_map(|row| match (row.first(), row.get(1)) {
                (Some(Value::Int(id)), Some(Value::Text(keys))) => {
                    Some((*id, keys.split('\n').filter(|k| !k.is_empty()).collect()))
                }
                _ => None,
            })
            .collect();
        // One cache batch for every entry read; an entry is applied when every key
        // of it was deleted. Keys on a server marked down fail at once.
        let outcomes = delete_entries(inner, entries.iter().map(|(_, keys)| keys.as_slice()));
        let applied_ids: Vec<i64> = entries
            .iter()
            .zip(outcomes)
            .filter(|(_, outcome)| *outcome == Applied::All)
            .map(|((id, _), _)| *id)
            .collect();
        if !applied_ids.is_empty() {
            inner.count_db(1);
            let q = delete_ids(d, &applied_ids)?;
            inner.db.transaction(&mut |tx| tx.execute(&q).map(|_| ()))?;
            Counters::add(&inner.stats.outbox_drained, applied_ids.len() as u64);
        }
        Ok(applied_ids.len())
    }
}

/// `(table, key)` pairs as length-prefixed text (`5:items2:17…`): table names and
/// text keys may hold any character.
fn encode_moved(moved: &[(String, Value)]) -> String {
    let mut out = String::new();
    for (table, key) in moved {
        let key = match key {
            Value::Text(s) => s.clone(),
            other => other.to_string(),
        };
        for part in [table.as_str(), key.as_str()] {
            out.push_str(Digits::new(part.len() as u64).as_str());
            out.push(':');
            out.push_str(part);
        }
    }
    out
}

/// The pairs of [`encode_moved`]; stops at the first malformed part (a foreign or
/// damaged value names no row, which only makes a fill list fewer candidates than
/// it could — the same as an entry already cleaned up).
fn decode_moved(text: &str) -> Vec<(String, String)> {
    let mut parts = Vec::new();
    let mut rest = text;
    while let Some((len, tail)) = rest.split_once(':') {
        let Ok(len) = len.parse::<usize>() else { break };
        let (Some(part), Some(tail)) = (tail.get(..len), tail.get(len..)) else { break };
        parts.push(part.to_owned());
        rest = tail;
    }
    let mut pairs = Vec::with_capacity(parts.len() / 2);
    let mut it = parts.into_iter();
    while let (Some(table), Some(key)) = (it.next(), it.next()) {
        pairs.push((table, key));
    }
    pairs
}

/// What one entry's deletes came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Applied {
    /// Every key deleted (or already gone).
    All,
    /// Some failed, and the cache backend owes every one that failed.
    Owed,
    /// Some failed.
    Not,
}

/// Deletes the keys of several entries in ONE cache batch; one outcome per entry.
fn delete_entries<'k, K: AsRef<str> + 'k>(inner: &StoreInner, entries: impl Iterator<Item = &'k [K]>) -> Vec<Applied> {
    let mut ops: Vec<CacheOp<'_>> = Vec::new();
    let mut ends = Vec::new();
    for keys in entries {
        ops.extend(keys.iter().map(|key| CacheOp::Delete { key: key.as_ref() }));
        ends.push(ops.len());
    }
    let replies = inner.cache_run(&ops);
    let mut start = 0;
    ends.into_iter()
        .map(|end| {
            let failed: Vec<&str> = ops[start..end]
                .iter()
                .zip(replies.get(start..end).unwrap_or(&[]))
                .filter(|(_, reply)| !matches!(reply, Ok(CacheReply::Deleted | CacheReply::NotFound)))
                .map(|(op, _)| op.key())
                .collect();
            let complete = replies.len() >= end;
            start = end;
            match failed.is_empty() && complete {
                true => Applied::All,
                false if complete && inner.cache.owes(&failed) => Applied::Owed,
                false => Applied::Not,
            }
        })
        .collect()
}

fn delete_ids(dialect: Dialect, ids: &[i64]) -> Result<SqlQuery, DbError> {
    let filter = Expr::new(
        ExprKind::In { needle: Box::new(Expr::field("id", Span::DUMMY)), haystack: Haystack::Param("ids".into()) },
        Span::DUMMY,
    );
    let params = vec![("ids".to_owned(), Value::List(ids.iter().map(|&i| Value::Int(i)).collect()))];
    sql::delete_where(dialect, schema(), &filter, &params).map_err(|e| DbError::Query(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moved_rows_round_trip() {
        let moved = vec![
            ("item".to_owned(), Value::Int(-17)),
            ("odd:table".to_owned(), Value::Text("a:b\n5:x ü".into())),
            ("item".to_owned(), Value::Text(String::new())),
        ];
        let decoded = decode_moved(&encode_moved(&moved));
        let want: Vec<(String, String)> = vec![
            ("item".into(), "-17".into()),
            ("odd:table".into(), "a:b\n5:x ü".into()),
            ("item".into(), String::new()),
        ];
        assert_eq!(decoded, want);
        assert_eq!(decode_moved(""), Vec::<(String, String)>::new());
        // Damaged text yields the pairs before the damage, never a panic.
        assert_eq!(decode_moved("4:item2:17x:zz"), vec![("item".to_owned(), "17".to_owned())]);
        assert_eq!(decode_moved("99:item"), Vec::<(String, String)>::new());
        assert_eq!(decode_moved("2:aü1:b"), Vec::<(String, String)>::new());
    }
}
