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
use memdex_grammar::ir::{CmpOp, Expr, ExprKind};
use memdex_grammar::sql::{self, OrderBy, SelectSpec, SqlQuery};
use memdex_grammar::{Dialect, Schema, Span, Type, Value};

use crate::db::DbError;
use crate::settings::Settings;
use crate::statements::{Shape, StatementTexts};

const TABLE: &str = "memdex_outbox";
/// Entries a drain handles at once; the next drain takes the rest.
const DRAIN_BATCH: u64 = 200;
/// Done entries deleted per piggybacked statement.
const CLEANUP_BATCH: usize = 500;
/// Keys of this process's failed invalidations retried in one call's batch.
const OWN_DRAIN_KEYS: usize = 2_000;

/// The types of an outbox row, in column order.
pub(crate) const ROW_TYPES: &[Type] = &[Type::Int, Type::Text, Type::Int, Type::Text];

/// The outbox table as a schema: its statements, and the schema check of a store
/// that does not manage its schema.
pub(crate) fn schema() -> &'static Schema {
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

/// One entry: its id and the keys it invalidates.
pub(crate) type Entry = (i64, Vec<String>);

/// This process's bookkeeping of the outbox. No I/O: the machines in
/// `crate::engine` emit the statements and batches built from it.
#[derive(Debug)]
pub(crate) struct Outbox {
    /// Entries whose cache batch succeeded; their rows can go.
    done: Mutex<Vec<i64>>,
    /// This process's entries whose cache batch failed.
    pending: Mutex<Vec<Entry>>,
    /// The ids of pending entries whose write's outcome this process does not know:
    /// its reply (or its COMMIT's) never came. The statement may commit later, and
    /// may name keys this process does not know (a write that spells the nodes its
    /// row was in from the row it reads, `sql::RowChange::UpdateReading`). A drain
    /// reads the table's entry first, and leaves it there for the periodic drain,
    /// which deletes its keys again once it is older than the grace: after a
    /// statement that commits late too.
    in_doubt: Mutex<Vec<i64>>,
    has_pending: AtomicBool,
    next_drain_ms: AtomicU64,
    interval: Duration,
    grace: Duration,
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl Outbox {
    pub(crate) fn new(settings: &Settings) -> Outbox {
        Outbox {
            done: Mutex::new(Vec::new()),
            pending: Mutex::new(Vec::new()),
            in_doubt: Mutex::new(Vec::new()),
            has_pending: AtomicBool::new(false),
            next_drain_ms: AtomicU64::new(0),
            interval: settings.outbox_interval,
            grace: settings.outbox_grace,
        }
    }

    /// A fresh entry id, drawn at random from the 63 bits of a non-negative `i64`:
    /// unique across processes with overwhelming probability (entries leave the table
    /// once applied, so few are live at once), without coordination. `fastrand`'s
    /// generator is seeded per thread from the process's random hash keys.
    pub(crate) fn new_entry_id(&self) -> i64 {
        fastrand::i64(0..=i64::MAX)
    }

    /// Every entry that names updated rows (pending ones, and done ones not yet
    /// cleaned up). Node fills run it *after* reading their rows; see
    /// [`in_flight_ids`].
    pub(crate) fn in_flight_query(&self, dialect: Dialect) -> Result<SqlQuery, DbError> {
        let filter = Expr::new(
            ExprKind::IsNull { expr: Box::new(Expr::field("moved", Span::DUMMY)), negated: true },
            Span::DUMMY,
        );
        let spec = SelectSpec { filter: Some(&filter), ..SelectSpec::default() };
        let no_params: Vec<(String, Value)> = Vec::new();
        sql::select(dialect, schema(), spec, &no_params).map_err(|e| DbError::query(e.to_string()))
    }

    /// Up to [`CLEANUP_BATCH`] done entries, to delete in the caller's transaction.
    pub(crate) fn take_done(&self) -> Vec<i64> {
        let mut done = self.done.lock().unwrap_or_else(|p| p.into_inner());
        let n = done.len().min(CLEANUP_BATCH);
        done.drain(..n).collect()
    }

    /// Gives back done entries whose deletion did not commit.
    pub(crate) fn restore_done(&self, ids: Vec<i64>) {
        self.done.lock().unwrap_or_else(|p| p.into_inner()).extend(ids);
    }

    pub(crate) fn done(&self, id: i64) {
        self.done.lock().unwrap_or_else(|p| p.into_inner()).push(id);
    }

    pub(crate) fn defer(&self, id: i64, keys: Vec<String>) {
        self.pending.lock().unwrap_or_else(|p| p.into_inner()).push((id, keys));
        self.has_pending.store(true, Ordering::Release);
    }

    /// [`Outbox::defer`] for an entry whose write's outcome is unknown: its keys are
    /// `known` and those the table's entry names, if the write committed
    /// ([`Outbox::in_doubt`]).
    pub(crate) fn defer_in_doubt(&self, id: i64, known: Vec<String>) {
        self.in_doubt.lock().unwrap_or_else(|p| p.into_inner()).push(id);
        self.defer(id, known);
    }

    /// Which of `entries` (just taken from the pending ones) are in doubt; they are
    /// no longer marked (a drain that cannot apply them marks them again with
    /// [`Outbox::mark_in_doubt`]).
    pub(crate) fn take_in_doubt(&self, entries: &[Entry]) -> Vec<i64> {
        let mut in_doubt = self.in_doubt.lock().unwrap_or_else(|p| p.into_inner());
        if in_doubt.is_empty() {
            return Vec::new();
        }
        let (taken, kept) = in_doubt.iter().partition(|id| entries.iter().any(|(e, _)| e == *id));
        *in_doubt = kept;
        taken
    }

    /// Marks these pending entries as in doubt again.
    pub(crate) fn mark_in_doubt(&self, ids: Vec<i64>) {
        self.in_doubt.lock().unwrap_or_else(|p| p.into_inner()).extend(ids);
    }

    /// Whether this process has invalidations it could not apply (its reads bypass
    /// the cache meanwhile).
    pub(crate) fn has_pending(&self) -> bool {
        self.has_pending.load(Ordering::Acquire)
    }

    /// Whether the periodic drain of everyone's old entries is due.
    pub(crate) fn due(&self) -> bool {
        now_ms() >= self.next_drain_ms.load(Ordering::Relaxed)
    }

    /// Starts a periodic drain now: the next one is due an interval later. Returns
    /// the cutoff: entries created before it are drained.
    pub(crate) fn start_table_drain(&self) -> u64 {
        let now = now_ms();
        self.next_drain_ms.store(now + self.interval.as_millis() as u64, Ordering::Relaxed);
        now.saturating_sub(self.grace.as_millis() as u64)
    }

    /// This process's pending entries to retry in ONE batch of at most
    /// [`OWN_DRAIN_KEYS`] keys (the rest waits for the next call; at least one entry
    /// is tried, whatever its size, so that none waits forever).
    pub(crate) fn take_pending(&self) -> Vec<Entry> {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let mut budget = OWN_DRAIN_KEYS;
        let fits = pending
            .iter()
            .take_while(|(_, keys)| {
                let fits = keys.len() <= budget;
                budget = budget.saturating_sub(keys.len());
                fits
            })
            .count();
        let tried = fits.max(1).min(pending.len());
        pending.drain(..tried).collect()
    }

    /// Puts back the entries of a retry that are still pending.
    pub(crate) fn return_pending(&self, still: Vec<Entry>) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending.extend(still);
        self.has_pending.store(!pending.is_empty(), Ordering::Release);
    }
}

/// The statements that create the outbox table and its index, if missing: what
/// `memdex::outbox_ddl` hands to a team's own migrations.
pub(crate) fn create_statements(dialect: Dialect) -> Vec<String> {
    sql::create_table(dialect, schema())
}

/// A query that fails on a table an older memdex created without `moved`.
pub(crate) fn probe_query(dialect: Dialect) -> Result<SqlQuery, DbError> {
    let spec = SelectSpec { limit: Some(1), ..SelectSpec::default() };
    let no_params: Vec<(String, Value)> = Vec::new();
    sql::select(dialect, schema(), spec, &no_params).map_err(|e| DbError::query(e.to_string()))
}

/// Adds `moved` (nullable, so in place) to a table an older memdex created.
pub(crate) fn add_moved_column(dialect: Dialect) -> String {
    let moved = schema().column_index("moved").unwrap_or(3);
    sql::add_column(dialect, schema(), moved)
}

/// The oldest entries created before `cutoff_ms`, at most [`DRAIN_BATCH`].
pub(crate) fn drain_query(dialect: Dialect, cutoff_ms: u64) -> Result<SqlQuery, DbError> {
    let filter =
        Expr::cmp(CmpOp::Le, Expr::field("created_at", Span::DUMMY), Expr::param("cutoff", Span::DUMMY), Span::DUMMY);
    let order = [OrderBy { column: 2, desc: false }];
    let spec = SelectSpec { filter: Some(&filter), order: &order, limit: Some(DRAIN_BATCH), offset: None };
    let params = vec![("cutoff".to_owned(), Value::Int(cutoff_ms as i64))];
    sql::select(dialect, schema(), spec, &params).map_err(|e| DbError::query(e.to_string()))
}

/// The entries with these ids, as the table holds them (read with
/// [`ROW_TYPES`]).
pub(crate) fn entries_by_ids(dialect: Dialect, ids: &[i64]) -> SqlQuery {
    let keys: Vec<Value> = ids.iter().map(|&i| Value::Int(i)).collect();
    sql::rows_by_keys(dialect, schema(), &keys)
}

/// The entries of a [`drain_query`]'s rows.
pub(crate) fn entries(rows: &[Vec<Value>]) -> Vec<Entry> {
    rows.iter()
        .filter_map(|row| match (row.first(), row.get(1)) {
            (Some(Value::Int(id)), Some(Value::Text(keys))) => {
                Some((*id, keys.split(sql::ENTRY_KEY_SEPARATOR).filter(|k| !k.is_empty()).map(str::to_owned).collect()))
            }
            _ => None,
        })
        .collect()
}

/// The keys of `table`'s rows named by the rows of an [`Outbox::in_flight_query`].
pub(crate) fn in_flight_ids(rows: &[Vec<Value>], table: &str, key_type: Type) -> Vec<Value> {
    let mut ids = Vec::new();
    for row in rows {
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
    ids
}

pub(crate) fn delete_ids(dialect: Dialect, ids: &[i64]) -> Result<SqlQuery, DbError> {
    let keys: Vec<Value> = ids.iter().map(|&i| Value::Int(i)).collect();
    sql::delete_keys(dialect, schema(), &keys).map_err(|e| DbError::query(e.to_string()))
}

/// The insert of entry `id`, its text kept in `texts`.
pub(crate) fn insert_sql(
    texts: &StatementTexts,
    dialect: Dialect,
    id: i64,
    keys: &[String],
    moved: &[(String, Value)],
) -> SqlQuery {
    let row = entry_row(id, keys, moved);
    texts.query(dialect, Shape::OutboxInsert, sql::insert_params(&row), || sql::insert(dialect, schema(), &row))
}

/// Entry `id` rewritten with these keys: an entry already written in the
/// transaction to which the registry's appends added keys.
pub(crate) fn rewrite_sql(dialect: Dialect, id: i64, keys: &[String], moved: &[(String, Value)]) -> SqlQuery {
    sql::update(dialect, schema(), &entry_row(id, keys, moved))
}

/// An outbox entry's row: its id, the keys its write touched, when, and the rows it
/// moved (also for a statement that embeds the entry's insert).
pub(crate) fn entry_row(id: i64, keys: &[String], moved: &[(String, Value)]) -> [Value; 4] {
    [
        Value::Int(id),
        Value::Text(keys.join(sql::ENTRY_KEY_SEPARATOR)),
        Value::Int(now_ms() as i64),
        Value::Text(encode_moved(moved)),
    ]
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

    /// Node fills read only the entries that name updated rows: an outbox full of
    /// insert and delete entries (which name none) must not be read on every fill.
    #[test]
    fn node_fills_read_only_entries_naming_moved_rows() {
        let outbox = Outbox::new(&Settings::default());
        for dialect in [Dialect::Sqlite, Dialect::Postgres, Dialect::MySql] {
            let query = outbox.in_flight_query(dialect).expect("the in-flight query");
            let text = query.text.to_ascii_lowercase();
            let where_clause = text.split(" where ").nth(1).unwrap_or_default();
            assert!(where_clause.contains("moved") && where_clause.contains("is not null"), "{dialect:?}: {text}");
        }
    }
}
