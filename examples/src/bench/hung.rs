//! Section 7: a hung cache server. Two memcached servers, the second behind a proxy
//! that stalls (accepts, never answers): reads and inserts with both servers up,
//! then with the second one hung, next to the same reads from the database alone
//! and one healthy cache round trip.
//!
//! The first call after the hang pays one I/O timeout (that is how the client learns
//! of it) and is reported on its own; the percentiles are of the calls after it.

use memdex::cache::memcached::Memcached;
use memdex::cache::{CacheBackend, CacheConfig, CacheOp};
use memdex::{Store, scan, select};
use memdex_tests::proxy::{FaultProxy, Mode};

use super::data;
use super::memdex_side::{DbTarget, Item};
use super::report::{Section, Table};
use super::timing::{Budget, Summary, format_ns, format_ratio, measure, measure_interleaved};

/// Categories of this section's own rows, away from the other sections' data.
const FIRST_CATEGORY: i64 = 50_000;
const CATEGORIES: i64 = 40;
const ITEMS_PER_CATEGORY: i64 = 10;
/// Ids of the rows this section loads, and of those it inserts while it measures.
const FIRST_ID: i64 = 50_000_000;
const FIRST_NEW_ID: i64 = 60_000_000;

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// The store and its rolling state: the next category to read, the next id to insert.
struct Workload {
    store: Store,
    next_category: i64,
    next_id: i64,
}

impl Workload {
    fn open(db: &DbTarget, memcached: &[String], namespace: &str) -> Result<Workload, String> {
        let builder = Store::builder().namespace(namespace);
        let builder = match db {
            DbTarget::Postgres(params) => builder.postgres(params.clone()),
            DbTarget::SqliteInMemory => builder.sqlite_in_memory(),
        };
        let store = builder.memcached(memcached.iter().cloned()).build().map_err(err)?;
        store.migrate::<Item>().map_err(err)?;
        Ok(Workload { store, next_category: 0, next_id: FIRST_NEW_ID })
    }

    fn load(&self) -> Result<(), String> {
        let first = FIRST_CATEGORY;
        if !select!(Item, |i| i.category_id == first).fetch(&self.store).map_err(err)?.is_empty() {
            return Ok(());
        }
        self.store
            .transaction(|tx| {
                for n in 0..CATEGORIES * ITEMS_PER_CATEGORY {
                    tx.insert(&Item::from(&data::row(FIRST_ID + n, FIRST_CATEGORY + n % CATEGORIES)))?;
                }
                Ok(())
            })
            .map_err(err)
    }

    fn category(&mut self) -> i64 {
        self.next_category = (self.next_category + 1) % CATEGORIES;
        FIRST_CATEGORY + self.next_category
    }

    fn read(&mut self) -> Result<(), String> {
        let category = self.category();
        let rows = select!(Item, |i| i.category_id == category).fetch(&self.store).map_err(err)?;
        if rows.len() < ITEMS_PER_CATEGORY as usize {
            return Err(format!("category {category}: {} rows", rows.len()));
        }
        Ok(())
    }

    fn read_database_only(&mut self) -> Result<(), String> {
        let category = self.category();
        let rows = scan!(Item, |i| i.category_id == category).fetch(&self.store).map_err(err)?;
        if rows.len() < ITEMS_PER_CATEGORY as usize {
            return Err(format!("category {category}: {} rows", rows.len()));
        }
        Ok(())
    }

    fn insert(&mut self) -> Result<(), String> {
        let category = self.category();
        self.next_id += 1;
        self.store.insert(&Item::from(&data::row(self.next_id, category))).map_err(err)
    }
}

/// p50 / p99 cells of one case.
fn cells(label: &str, summary: &Result<Summary, String>) -> [String; 3] {
    match summary {
        Ok(s) => [label.to_owned(), format_ns(s.median_ns), format_ns(s.p99_ns)],
        Err(e) => [label.to_owned(), format!("unavailable: {e}"), String::new()],
    }
}

/// The section. `memcached` must hold at least two servers.
pub fn section(title: &str, db: &DbTarget, memcached: &[String], budget: Budget) -> Section {
    let mut section = Section::new(title);
    match run(db, memcached, budget, &mut section) {
        Ok(table) => section.tables.push(table),
        Err(e) => section.note(format!("unavailable: {e}")),
    }
    section
}

fn run(db: &DbTarget, memcached: &[String], budget: Budget, section: &mut Section) -> Result<Table, String> {
    let [healthy, hung, ..] = memcached else { return Err("needs two memcached servers".into()) };
    let upstream = hung.parse().map_err(err)?;
    let proxy = FaultProxy::start(upstream).map_err(err)?;
    let namespace = format!("hung_{}", std::process::id());
    let mut w = Workload::open(db, &[healthy.clone(), proxy.addr_string()], &namespace)?;
    w.load()?;
    for _ in 0..2 * CATEGORIES {
        w.read()?;
    }
    let round_trip =
        Memcached::connect(std::slice::from_ref(healthy), CacheConfig::default()).map_err(err).and_then(|client| {
            measure(budget, || {
                let replies = client.run(&[CacheOp::Get { key: "memdex-bench-probe", lease: None }]);
                replies.into_iter().next().map(drop).ok_or("no reply".to_owned())
            })
        });
    let db_read = measure(budget, || w.read_database_only());
    let healthy_read = measure(budget, || w.read());
    let healthy_insert = measure(budget, || w.insert());

    proxy.set_mode(Mode::Stall);
    std::thread::sleep(std::time::Duration::from_millis(30));
    let first = std::time::Instant::now();
    w.insert()?;
    let first = first.elapsed();
    let before_reads = w.store.stats();
    let hung_read = measure(budget, || w.read());
    let after_reads = w.store.stats();
    // The same two reads again, interleaved, so that the database-only read pays
    // exactly what the machine does meanwhile (the stalled proxy's threads, the
    // prober) and the comparison shows what the hang costs memdex alone.
    let (hung_pair, db_pair) = {
        let cell = std::cell::RefCell::new(&mut w);
        let mut pair = measure_interleaved(
            budget,
            vec![Ok(Box::new(|| cell.borrow_mut().read())), Ok(Box::new(|| cell.borrow_mut().read_database_only()))],
        )
        .into_iter();
        (pair.next().unwrap_or_else(|| Err("no result".into())), pair.next().unwrap_or_else(|| Err("no result".into())))
    };
    let hung_insert = measure(budget, || w.insert());
    let stats = w.store.stats();
    proxy.set_mode(Mode::Pass);

    let mut table = Table::new(["case", "p50", "p99"]);
    table.row(cells("one healthy cache round trip (one mg)", &round_trip));
    table.row(cells("read, database only (scan! of a category)", &db_read));
    table.row(cells("read, both servers up", &healthy_read));
    table.row(cells("read, one of two servers hung", &hung_read));
    table.row(cells("  the same, interleaved with the next row", &hung_pair));
    table.row(cells("  read, database only, one server hung (interleaved)", &db_pair));
    table.row(cells("insert, both servers up", &healthy_insert));
    table.row(cells("insert, one of two servers hung", &hung_insert));
    let per_read = |f: fn(&memdex::Stats) -> u64| {
        let reads = (after_reads.degraded_calls + after_reads.node_hits)
            .saturating_sub(before_reads.degraded_calls + before_reads.node_hits)
            .max(1);
        (f(&after_reads) - f(&before_reads)) as f64 / reads as f64
    };
    section.note(format!(
        "While one server hung, per read: {:.2} database statements, {:.2} degraded calls, {:.2} cache ops \
         failed at once, {:.1} near-cache hits, {:.2} object reads.",
        per_read(|s| s.db_queries),
        per_read(|s| s.degraded_calls),
        per_read(|s| s.cache_skipped_ops),
        per_read(|s| s.near_hits),
        per_read(|s| s.object_hits + s.object_misses),
    ));
    section.note(format!(
        "The first call after the hang took {} (one I/O timeout: the client marks the server down); \
         afterwards {} ops went to the database at once, {} probes, {} write(s) owed to the hung server, {} \
         left pending.",
        format_ns(first.as_nanos() as f64),
        stats.cache_skipped_ops,
        stats.cache_probes,
        stats.outbox_owed,
        stats.outbox_deferred
    ));
    if let (Ok(hung), Ok(dbr), Ok(rt)) = (&hung_read, &db_read, &round_trip) {
        let bound = 2.0 * dbr.p99_ns + rt.median_ns;
        section.note(format!(
            "Target: read p99 with a hung server ≤ 2x the database-only read's p99 + one healthy round trip \
             ({} ≤ {}): {}.",
            format_ns(hung.p99_ns),
            format_ns(bound),
            if hung.p99_ns <= bound { "met" } else { "missed" }
        ));
    }
    if let (Ok(hung), Ok(dbr), Ok(rt)) = (&hung_pair, &db_pair, &round_trip) {
        let bound = 2.0 * dbr.p99_ns + rt.median_ns;
        section.note(format!(
            "The same target against the database-only read measured interleaved with it while the server hung \
             ({} ≤ {}): {}.",
            format_ns(hung.p99_ns),
            format_ns(bound),
            if hung.p99_ns <= bound { "met" } else { "missed" }
        ));
    }
    if let (Ok(hung), Ok(ok)) = (&hung_insert, &healthy_insert) {
        let met = hung.median_ns <= 2.0 * ok.median_ns && hung.p99_ns <= 2.0 * ok.p99_ns;
        section.note(format!(
            "Target: inserts with a hung server within 2x their healthy cost: p50 {}, p99 {} — {}.",
            format_ratio(hung.median_ns, ok.median_ns),
            format_ratio(hung.p99_ns, ok.p99_ns),
            if met { "met" } else { "missed" }
        ));
    }
    Ok(table)
}
