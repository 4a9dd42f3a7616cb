//! Database offload: a read-heavy shop workload run against several caching
//! strategies, counting the database queries reads cause and the results that
//! disagree with the database at the moment they are returned (stale results).
//!
//! The workload: categories chosen by a Zipf law (a few are hot), carts paged with
//! a limit of 5–20 and every page offset, 5% of operations moving an item to another
//! category. Time is simulated (each operation advances the clock by a fixed step)
//! so that a 60 s expiry means the same thing at every size and machine speed.
//!
//! The peers are what cache code commonly does: cache each call's result under a
//! key naming every argument (category, limit, offset) for 60 s; the same but
//! flushing everything on every write; no cache. memdex plugs in through the same
//! [`Strategy`] trait (see `memdex_side`).

use std::collections::{BTreeMap, HashMap, HashSet};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rusqlite::Connection;

/// A caching strategy under test. Reads return the ids of the page, in order.
pub trait Strategy {
    fn name(&self) -> String;
    fn read(&mut self, now_ms: u64, category: i64, limit: u64, offset: u64) -> Result<Vec<i64>, String>;
    /// Moves `id` to `category` (database first, then whatever the strategy does).
    fn move_item(&mut self, now_ms: u64, id: i64, category: i64) -> Result<(), String>;
    /// Database queries issued by reads so far.
    fn read_queries(&self) -> u64;
    /// Distinct cache keys written so far.
    fn keys_written(&self) -> usize;
}

/// The workload's shape.
#[derive(Clone, Copy, Debug)]
pub struct Workload {
    pub categories: usize,
    pub items_per_category: usize,
    pub operations: usize,
    /// Fraction of operations that are writes.
    pub write_ratio: f64,
    pub zipf_exponent: f64,
    /// Simulated time per operation.
    pub step_ms: u64,
    pub seed: u64,
}

impl Workload {
    pub fn item_count(&self) -> usize {
        self.categories * self.items_per_category
    }
}

/// What one strategy did.
#[derive(Clone, Debug, PartialEq)]
pub struct OffloadResult {
    pub strategy: String,
    pub reads: u64,
    pub writes: u64,
    pub read_queries: u64,
    pub stale: u64,
    pub keys_written: usize,
}

impl OffloadResult {
    pub fn queries_per_1000_reads(&self) -> f64 {
        if self.reads == 0 { 0.0 } else { self.read_queries as f64 * 1000.0 / self.reads as f64 }
    }
}

/// Samples ranks 0..n with P(k) ∝ 1 / (k+1)^s.
#[derive(Clone, Debug)]
pub struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    pub fn new(n: usize, s: f64) -> Zipf {
        let mut cdf = Vec::with_capacity(n);
        let mut total = 0.0;
        for k in 0..n {
            total += 1.0 / ((k + 1) as f64).powf(s);
            cdf.push(total);
        }
        for c in &mut cdf {
            *c /= total;
        }
        Zipf { cdf }
    }

    pub fn sample(&self, rng: &mut impl Rng) -> usize {
        let u: f64 = rng.r#gen();
        self.cdf.partition_point(|&c| c < u).min(self.cdf.len().saturating_sub(1))
    }
}

/// The database's state, kept in memory to judge every result.
#[derive(Clone, Debug)]
pub struct Truth {
    category_of: BTreeMap<i64, i64>,
    price_of: HashMap<i64, f64>,
}

impl Truth {
    pub fn new(rows: &[(i64, i64, f64)]) -> Truth {
        Truth {
            category_of: rows.iter().map(|&(id, c, _)| (id, c)).collect(),
            price_of: rows.iter().map(|&(id, _, p)| (id, p)).collect(),
        }
    }

    /// The page as the database would answer it: ordered by price, then id.
    pub fn page(&self, category: i64, limit: u64, offset: u64) -> Vec<i64> {
        let mut ids: Vec<(f64, i64)> =
            self.category_of.iter().filter(|&(_, &c)| c == category).map(|(&id, _)| (self.price_of[&id], id)).collect();
        ids.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        ids.into_iter().skip(offset as usize).take(limit as usize).map(|(_, id)| id).collect()
    }

    pub fn move_item(&mut self, id: i64, category: i64) {
        self.category_of.insert(id, category);
    }

    pub fn len_of(&self, category: i64) -> usize {
        self.category_of.values().filter(|&&c| c == category).count()
    }
}

/// The rows of the workload: `(id, category, price)`; categories numbered from 1.
pub fn workload_rows(w: &Workload) -> Vec<(i64, i64, f64)> {
    let mut rng = StdRng::seed_from_u64(w.seed ^ 0x5eed);
    (0..w.item_count())
        .map(|i| {
            let id = i as i64 + 1;
            let category = (i % w.categories) as i64 + 1;
            // Distinct-ish prices with ties possible, so the id tie-break matters.
            let price = f64::from(rng.gen_range(1..=400u32)) * 0.25;
            (id, category, price)
        })
        .collect()
}

/// Runs the workload against `strategy`, judging every read against the truth.
pub fn run(w: &Workload, strategy: &mut dyn Strategy) -> Result<OffloadResult, String> {
    let rows = workload_rows(w);
    let mut truth = Truth::new(&rows);
    let zipf = Zipf::new(w.categories, w.zipf_exponent);
    let mut rng = StdRng::seed_from_u64(w.seed);
    let (mut reads, mut writes, mut stale) = (0u64, 0u64, 0u64);
    for op in 0..w.operations {
        let now_ms = op as u64 * w.step_ms;
        let category = zipf.sample(&mut rng) as i64 + 1;
        if rng.gen_bool(w.write_ratio) {
            let id = rng.gen_range(1..=w.item_count() as i64);
            strategy.move_item(now_ms, id, category)?;
            truth.move_item(id, category);
            writes += 1;
        } else {
            let limit = rng.gen_range(5..=20u64);
            // Every page of the cart, as a pager offers them (and one past the end).
            let pages = truth.len_of(category) as u64 / limit + 1;
            let offset = rng.gen_range(0..pages) * limit;
            let got = strategy.read(now_ms, category, limit, offset)?;
            if got != truth.page(category, limit, offset) {
                stale += 1;
            }
            reads += 1;
        }
    }
    Ok(OffloadResult {
        strategy: strategy.name(),
        reads,
        writes,
        read_queries: strategy.read_queries(),
        stale,
        keys_written: strategy.keys_written(),
    })
}

/// Cache keys a per-call cache needs for one cart of `items` items paged with every
/// limit in `limits` at every page offset (one key per limit × offset).
pub fn per_call_keys_per_cart(items: u64, limits: std::ops::RangeInclusive<u64>) -> u64 {
    limits.map(|l| items.div_ceil(l)).sum()
}

/// The shop's database for the peers: SQLite in memory, indexed, queries counted.
#[derive(Debug)]
pub struct PeerDb {
    conn: Connection,
    pub queries: u64,
}

impl PeerDb {
    pub fn new(rows: &[(i64, i64, f64)]) -> rusqlite::Result<PeerDb> {
        let mut conn = Connection::open_in_memory()?;
        conn.execute_batch(
            "CREATE TABLE item (id INTEGER PRIMARY KEY, category_id INTEGER NOT NULL, price REAL NOT NULL);
             CREATE INDEX item_category ON item (category_id, price, id);",
        )?;
        let tx = conn.transaction()?;
        {
            let mut insert = tx.prepare("INSERT INTO item (id, category_id, price) VALUES (?1, ?2, ?3)")?;
            for &(id, c, p) in rows {
                insert.execute(rusqlite::params![id, c, p])?;
            }
        }
        tx.commit()?;
        Ok(PeerDb { conn, queries: 0 })
    }

    pub fn page(&mut self, category: i64, limit: u64, offset: u64) -> rusqlite::Result<Vec<i64>> {
        self.queries += 1;
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id FROM item WHERE category_id = ?1 ORDER BY price, id LIMIT ?2 OFFSET ?3")?;
        let ids = stmt.query_map(rusqlite::params![category, limit as i64, offset as i64], |r| r.get(0))?;
        ids.collect()
    }

    pub fn move_item(&mut self, id: i64, category: i64) -> rusqlite::Result<()> {
        self.conn.execute("UPDATE item SET category_id = ?2 WHERE id = ?1", rusqlite::params![id, category])?;
        Ok(())
    }
}

/// How a peer caches each call's result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerKind {
    /// Every call's result under its own key, expiring after `ttl_ms`.
    PerCallTtl { ttl_ms: u64 },
    /// The same, and every write flushes the whole cache.
    FlushOnWrite,
    /// Every read asks the database.
    NoCache,
}

/// A peer strategy over [`PeerDb`].
#[derive(Debug)]
pub struct Peer {
    kind: PeerKind,
    db: PeerDb,
    cache: HashMap<(i64, u64, u64), (Vec<i64>, u64)>,
    keys: HashSet<(i64, u64, u64)>,
}

impl Peer {
    pub fn new(kind: PeerKind, rows: &[(i64, i64, f64)]) -> Result<Peer, String> {
        Ok(Peer {
            kind,
            db: PeerDb::new(rows).map_err(|e| e.to_string())?,
            cache: HashMap::new(),
            keys: HashSet::new(),
        })
    }
}

impl Strategy for Peer {
    fn name(&self) -> String {
        match self.kind {
            PeerKind::PerCallTtl { ttl_ms } => format!("per-call keys, {} s expiry", ttl_ms / 1000),
            PeerKind::FlushOnWrite => "per-call keys, flush on every write".into(),
            PeerKind::NoCache => "no cache".into(),
        }
    }

    fn read(&mut self, now_ms: u64, category: i64, limit: u64, offset: u64) -> Result<Vec<i64>, String> {
        let key = (category, limit, offset);
        if self.kind != PeerKind::NoCache
            && let Some((ids, expires)) = self.cache.get(&key)
            && *expires > now_ms
        {
            return Ok(ids.clone());
        }
        let ids = self.db.page(category, limit, offset).map_err(|e| e.to_string())?;
        let ttl = match self.kind {
            PeerKind::PerCallTtl { ttl_ms } => ttl_ms,
            PeerKind::FlushOnWrite => u64::MAX / 2,
            PeerKind::NoCache => return Ok(ids),
        };
        self.cache.insert(key, (ids.clone(), now_ms.saturating_add(ttl)));
        self.keys.insert(key);
        Ok(ids)
    }

    fn move_item(&mut self, _now_ms: u64, id: i64, category: i64) -> Result<(), String> {
        self.db.move_item(id, category).map_err(|e| e.to_string())?;
        if self.kind == PeerKind::FlushOnWrite {
            self.cache.clear();
        }
        Ok(())
    }

    fn read_queries(&self) -> u64 {
        self.db.queries
    }

    fn keys_written(&self) -> usize {
        self.keys.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> Workload {
        Workload {
            categories: 20,
            items_per_category: 10,
            operations: 2_000,
            write_ratio: 0.05,
            zipf_exponent: 1.0,
            step_ms: 100,
            seed: 7,
        }
    }

    #[test]
    fn zipf_favours_low_ranks_and_stays_in_range() {
        let z = Zipf::new(10, 1.0);
        let mut rng = StdRng::seed_from_u64(1);
        let mut counts = [0usize; 10];
        for _ in 0..10_000 {
            counts[z.sample(&mut rng)] += 1;
        }
        assert!(counts[0] > counts[1] && counts[1] > counts[9], "{counts:?}");
    }

    #[test]
    fn a_thousand_item_cart_needs_over_1500_per_call_keys() {
        assert_eq!(per_call_keys_per_cart(10, 5..=5), 2);
        assert_eq!(per_call_keys_per_cart(11, 5..=5), 3);
        assert!(per_call_keys_per_cart(1000, 5..=20) >= 1500);
    }

    #[test]
    fn no_cache_and_flush_on_write_are_never_stale_and_ttl_is() {
        let w = small();
        let rows = workload_rows(&w);
        let results: Vec<OffloadResult> =
            [PeerKind::NoCache, PeerKind::FlushOnWrite, PeerKind::PerCallTtl { ttl_ms: 60_000 }]
                .into_iter()
                .map(|k| run(&w, &mut Peer::new(k, &rows).expect("in-memory SQLite opens")).expect("runs"))
                .collect();
        let [none, flush, ttl] = [&results[0], &results[1], &results[2]];
        assert_eq!(none.stale, 0);
        assert_eq!(none.read_queries, none.reads);
        assert_eq!(flush.stale, 0);
        assert!(flush.read_queries < none.read_queries);
        assert!(ttl.stale > 0, "a 60 s expiry serves moved items: {ttl:?}");
        assert!(ttl.read_queries < flush.read_queries);
    }
}
