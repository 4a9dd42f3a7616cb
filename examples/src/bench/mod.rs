//! The benchmark behind `cargo run --release --example bench`: it starts its own
//! memcached and PostgreSQL on loopback, measures memdex against a raw-protocol
//! floor and the databases alone, and reports medians and ratios as text, Markdown
//! and an SVG chart. Sizes come from a [`Config`]: [`Config::full`] for the report,
//! [`Config::tiny`] for the smoke test that keeps this code from rotting.
//!
//! Every section runs even when a server cannot start or a piece fails: the
//! section then says what is missing instead of a figure, so one broken piece never
//! hides the others' results.

pub mod baselines;
pub mod buildcost;
pub mod cpu_split;
pub mod data;
pub mod hung;
pub mod memdex_side;
pub mod offload;
pub mod paging;
pub mod raw;
pub mod report;
pub mod servers;
pub mod timing;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use data::Dataset;
use memdex_side::{Bench, DbTarget};
use memdex_tests::servers::mariadb::MariaDbServer;
use report::{Bar, Report, Section, Series, Table};
use timing::{Budget, Probe, Summary, format_ns, format_ratio, measure, measure_interleaved, measure_with_cpu};

/// Section titles, in order; the smoke test checks that each appears.
pub const SECTIONS: [&str; 8] = [
    "1. Hot index scan",
    "2. Growth",
    "3. Database offload",
    "4. Planning",
    "5. Writes",
    "6. Build cost",
    "7. A hung cache server",
    "8. Paging a cart",
];

/// Sizes and budgets of one run.
#[derive(Clone, Debug)]
pub struct Config {
    pub name: &'static str,
    /// Objects in the hot node of section 1.
    pub hot_objects: usize,
    pub budget: Budget,
    /// Objects per node for the growth sweep.
    pub growth_objects: Vec<usize>,
    /// Disjuncts for the growth sweep, each a node of `objects_per_disjunct`.
    pub disjuncts: Vec<usize>,
    pub objects_per_disjunct: usize,
    pub growth_budget: Budget,
    pub threads: Vec<usize>,
    /// How long each throughput point runs.
    pub throughput_time: Duration,
    /// Numbers of memcached servers to shard across.
    pub servers: Vec<usize>,
    pub offload: offload::Workload,
    pub cart_items: u64,
    /// Carts of 10 lines shuffled in with the paged cart of `cart_items` lines.
    pub other_carts: i64,
    pub planning_budget: Budget,
    pub write_budget: Budget,
    pub build_queries: usize,
    /// Timed builds per crate; 0 only generates the crates.
    pub build_runs: usize,
    /// The workspace root (for the build-cost crates and the shared target directory).
    pub workspace: PathBuf,
}

impl Config {
    pub fn full(workspace: PathBuf) -> Config {
        Config {
            name: "full",
            hot_objects: 100,
            budget: Budget::new(200, 3_000, Duration::from_secs(6)),
            growth_objects: vec![10, 100, 1_000],
            disjuncts: vec![1, 4, 16],
            objects_per_disjunct: 10,
            growth_budget: Budget::new(50, 1_000, Duration::from_secs(3)),
            threads: vec![1, 2, 4],
            throughput_time: Duration::from_secs(2),
            servers: vec![1, 2, 3],
            offload: offload::Workload {
                categories: 1_000,
                items_per_category: 20,
                operations: 40_000,
                write_ratio: 0.05,
                zipf_exponent: 1.0,
                step_ms: 10,
                seed: 42,
            },
            cart_items: 1_000,
            other_carts: 900,
            planning_budget: Budget::new(200, 5_000, Duration::from_secs(3)),
            write_budget: Budget::new(50, 1_000, Duration::from_secs(4)),
            build_queries: 100,
            build_runs: 1,
            workspace,
        }
    }

    pub fn tiny(workspace: PathBuf) -> Config {
        Config {
            name: "tiny (smoke test: figures mean nothing)",
            hot_objects: 10,
            budget: Budget::new(2, 20, Duration::from_millis(200)),
            growth_objects: vec![2, 5],
            disjuncts: vec![1, 2],
            objects_per_disjunct: 2,
            growth_budget: Budget::new(1, 10, Duration::from_millis(100)),
            threads: vec![1, 2],
            throughput_time: Duration::from_millis(100),
            servers: vec![1, 2],
            offload: offload::Workload {
                categories: 10,
                items_per_category: 5,
                operations: 300,
                write_ratio: 0.05,
                zipf_exponent: 1.0,
                step_ms: 1_000,
                seed: 42,
            },
            cart_items: 30,
            other_carts: 3,
            planning_budget: Budget::new(2, 20, Duration::from_millis(100)),
            write_budget: Budget::new(1, 10, Duration::from_millis(200)),
            build_queries: 2,
            build_runs: 0,
            workspace,
        }
    }
}

/// Category numbers of the dataset.
const HOT: i64 = 1;
const GROWTH_BASE: i64 = 10;
const DISJUNCT_BASE: i64 = 100;
/// The writes section's peers: the UPDATE memdex's update is measured against, on
/// its own and in a transaction of its own.
const PLAIN_AUTOCOMMIT: &str = "plain PostgreSQL UPDATE (prepared, autocommit)";
const PLAIN_IN_TRANSACTION: &str = "plain PostgreSQL UPDATE in its own transaction (BEGIN, UPDATE, COMMIT)";

fn layout(cfg: &Config) -> Vec<(i64, usize)> {
    let mut layout = vec![(HOT, cfg.hot_objects)];
    for (i, &n) in cfg.growth_objects.iter().enumerate() {
        layout.push((GROWTH_BASE + i as i64, n));
    }
    let max_disjuncts = cfg.disjuncts.iter().copied().max().unwrap_or(0);
    for i in 0..max_disjuncts {
        layout.push((DISJUNCT_BASE + i as i64, cfg.objects_per_disjunct));
    }
    layout
}

/// The servers of one run. A server that cannot start is `Err` with the reason.
struct Servers {
    memcached: Vec<Result<servers::Memcached, String>>,
    postgres: Result<servers::Postgres, String>,
}

impl Servers {
    fn start(cfg: &Config) -> Servers {
        let count = cfg.servers.iter().copied().max().unwrap_or(1).max(1);
        Servers {
            memcached: (0..count).map(|_| servers::Memcached::start(256).map_err(|e| e.to_string())).collect(),
            postgres: servers::Postgres::start().map_err(|e| e.to_string()),
        }
    }

    fn memcached_addrs(&self, n: usize) -> Result<Vec<String>, String> {
        self.memcached.iter().take(n).map(|m| m.as_ref().map(|m| m.addr()).map_err(Clone::clone)).collect()
    }

    fn db(&self) -> DbTarget {
        match &self.postgres {
            Ok(pg) => DbTarget::Postgres(pg.params()),
            Err(_) => DbTarget::SqliteInMemory,
        }
    }
}

/// Runs only the writes section (`bench --writes`): memdex's update against a plain
/// PostgreSQL UPDATE, on the same servers and data as the full run.
pub fn writes_only(cfg: &Config) -> Report {
    let servers = Servers::start(cfg);
    let data = Dataset::new(&layout(cfg));
    let store = servers
        .memcached_addrs(1)
        .and_then(|addrs| memdex_side::open(&servers.db(), &addrs))
        .and_then(|b| b.load(&data.rows).map(|()| b));
    let mut report = Report { settings: format!("{} run, writes only", cfg.name), ..Report::default() };
    report.sections.push(writes(cfg, &servers, &data, &store));
    report
}

/// Runs only the paging section (`bench --pages`): a page of a cart on an ordered
/// index against a hot 10-object fetch, an unordered index and PostgreSQL.
pub fn pages_only(cfg: &Config) -> Report {
    let servers = Servers::start(cfg);
    let mut report = Report { settings: format!("{} run, paging only", cfg.name), ..Report::default() };
    report.sections.push(paging_section(cfg, &servers));
    report
}

fn paging_section(cfg: &Config, servers: &Servers) -> Section {
    let memcached = servers.memcached_addrs(1).and_then(|a| a.into_iter().next().ok_or_else(|| "no memcached".into()));
    let sizes = paging::Sizes { cart_lines: cfg.cart_items as i64, other_carts: cfg.other_carts, budget: cfg.budget };
    paging::section(SECTIONS[7], &servers.db(), memcached, sizes)
}

/// Runs every section and returns the report.
pub fn run(cfg: &Config) -> Report {
    let started = Instant::now();
    let servers = Servers::start(cfg);
    let data = Dataset::new(&layout(cfg));
    let mut report = Report {
        machine: report::describe_machine(servers::Memcached::BINARY, servers::Postgres::BIN),
        settings: format!("{} run", cfg.name),
        ..Report::default()
    };
    // One memdex store on one memcached, loaded once, serves sections 1, 2 and 5.
    let store = servers
        .memcached_addrs(1)
        .and_then(|addrs| memdex_side::open(&servers.db(), &addrs))
        .and_then(|b| b.load(&data.rows).map(|()| b));
    report.sections.push(hot_scan(cfg, &servers, &data, &store, &mut report.hot_bars));
    report.sections.push(growth(cfg, &servers, &data, &store, &mut report.growth));
    report.sections.push(offload_section(cfg));
    report.sections.push(planning(cfg));
    report.sections.push(writes(cfg, &servers, &data, &store));
    report.sections.push(build_cost(cfg));
    report.sections.push(match servers.memcached_addrs(2) {
        Ok(addrs) => hung::section(SECTIONS[6], &servers.db(), &addrs, cfg.write_budget),
        Err(e) => {
            let mut section = Section::new(SECTIONS[6]);
            section.note(format!("unavailable: {e}"));
            section
        }
    });
    report.sections.push(paging_section(cfg, &servers));
    let db = match (&servers.postgres, &store) {
        (Ok(_), Ok(b)) => b.describe(),
        (Err(e), _) => format!("PostgreSQL unavailable ({e}); memdex on SQLite in memory"),
        (_, Err(e)) => format!("memdex unavailable: {e}"),
    };
    report.settings = format!("{} run in {:.0} s; memdex store: {db}", cfg.name, started.elapsed().as_secs_f64());
    report
}

/// One timed case of a comparison table.
struct Case {
    label: String,
    summary: Result<Summary, String>,
    round_trips: String,
}

fn case(label: &str, round_trips: impl Into<String>, summary: Result<Summary, String>) -> Case {
    Case { label: label.into(), summary, round_trips: round_trips.into() }
}

fn median(c: &Case) -> Option<f64> {
    c.summary.as_ref().ok().map(|s| s.median_ns)
}

/// Where each case of section 1 sits in [`HOT_CASES`] (and in its probes, cases and
/// round trips, which follow that order).
mod hot {
    pub const MEMDEX: usize = 0;
    pub const ASYNC: usize = 1;
    pub const NO_NEAR: usize = 2;
    pub const FLOOR_1: usize = 3;
    pub const MULTI_GET: usize = 4;
    pub const TYPED_FLOOR: usize = 5;
    pub const PIPELINED: usize = 6;
    pub const NAIVE: usize = 7;
    pub const PG_CLUSTERED: usize = 8;
    pub const PG_SCATTERED: usize = 9;
    pub const MARIADB: usize = 10;
    pub const SQLITE: usize = 11;
}

/// The cases of section 1, in table order.
const HOT_CASES: [(&str, &str); 12] = [
    ("memdex select! fetch", "memdex"),
    ("memdex fetch_async (AsyncStore, current-thread runtime)", "memdex async"),
    ("memdex select! fetch, near cache off", "memdex, no near"),
    ("raw floor, 1 round trip (the node: one mg)", "floor 1 RT"),
    ("raw floor, 2 round trips (classic get node; get k1 … kn)", "floor multi-get"),
    ("the classic floor + decoding the rows into the structs memdex returns", "floor + decode"),
    ("raw floor, 2 round trips (pipelined mg … v + mn)", "floor mg"),
    ("one get per key (naive)", "naive"),
    ("PostgreSQL (prepared, indexed; rows clustered)", "PostgreSQL clustered"),
    ("PostgreSQL (prepared, indexed; 10,000 rows, a category over 100 pages)", "PostgreSQL"),
    ("MariaDB (prepared, indexed; the same 10,000 rows)", "MariaDB"),
    ("SQLite in memory (prepared, indexed)", "SQLite"),
];

/// Round trips a fetch of `category` took after a warm-up, as "c cache, d db".
fn trips(counters: impl Fn() -> memdex_side::Counters, fetch: impl Fn() -> Result<usize, String>) -> String {
    let (Ok(_), Ok(_)) = (fetch(), fetch()) else { return "–".into() };
    let before = counters();
    let _ = fetch();
    let after = counters();
    format!("{} cache, {} db", after.cache_round_trips - before.cache_round_trips, after.db_queries - before.db_queries)
}

/// A probe of one row count: the rows a fetch returned must be the hot category's.
fn checked(n: usize, want: usize, who: &str) -> Result<(), String> {
    if n == want { Ok(()) } else { Err(format!("{who} returned {n} rows, expected {want}")) }
}

fn hot_scan(
    cfg: &Config,
    servers: &Servers,
    data: &Dataset,
    store: &Result<Bench, String>,
    bars: &mut Vec<Bar>,
) -> Section {
    let mut section =
        Section::new(format!("{} ({} objects of ~200 bytes, one disjunct, all cached)", SECTIONS[0], cfg.hot_objects));
    let ids = data.ids(HOT);
    let want = ids.len();
    let (node_keys, object_keys) = memdex_side::keys(HOT, ids);
    let addrs = servers.memcached_addrs(1);
    let addr = addrs.as_ref().map(|a| a[0].clone()).map_err(Clone::clone);
    let db = servers.db();
    let no_near = addrs.clone().and_then(|a| memdex_side::open_without_near(&db, &a));
    let async_store = addrs.clone().and_then(|a| memdex_side::open_async(&db, &a, 0));
    let mut round_trips = vec![String::from("–"); HOT_CASES.len()];
    if let Ok(b) = store {
        round_trips[hot::MEMDEX] = trips(|| b.counters(), || b.hot(HOT));
    }
    if let Ok(b) = &async_store {
        round_trips[hot::ASYNC] = trips(|| b.counters(), || b.hot(HOT));
    }
    if let Ok(b) = &no_near {
        round_trips[hot::NO_NEAR] = trips(|| b.counters(), || b.hot(HOT));
    }
    for (i, t) in [
        (hot::FLOOR_1, "1 cache"),
        (hot::MULTI_GET, "2 cache"),
        (hot::TYPED_FLOOR, "2 cache"),
        (hot::PIPELINED, "2 cache"),
    ] {
        round_trips[i] = t.into();
    }
    for i in [hot::PG_CLUSTERED, hot::PG_SCATTERED, hot::MARIADB] {
        round_trips[i] = "1 db".into();
    }
    round_trips[hot::NAIVE] = format!("{} cache", node_keys.len() + object_keys.len());
    round_trips[hot::SQLITE] = "in-process".into();

    let pg = servers.postgres.as_ref().map_err(|e| e.to_string());
    let pg_clustered =
        pg.clone().and_then(|pg| baselines::PgBaseline::setup(&pg.params(), &data.rows).map_err(|e| e.to_string()));
    let pg_scattered = pg
        .and_then(|pg| baselines::PgBaseline::setup_scattered(&pg.params(), SCATTERED_BASE).map_err(|e| e.to_string()));
    let mariadb_server = MariaDbServer::start();
    let mariadb = mariadb_server.as_ref().map_err(Clone::clone).and_then(|server| {
        let url = server.fresh_database()?;
        baselines::MySqlBaseline::setup_scattered(&url, SCATTERED_BASE).map_err(|e| e.to_string())
    });
    let sqlite = baselines::SqliteBaseline::setup(&data.rows).map_err(|e| e.to_string());
    let mut pg_clustered = pg_clustered;
    let mut pg_scattered = pg_scattered;
    let mut mariadb = mariadb;
    if let Ok((base, category)) = &mut pg_scattered
        && let Ok(plan) = base.explain(*category)
    {
        section.note(format!("PostgreSQL (scattered) plan: {}", plan.lines().next().unwrap_or_default().trim()));
    }
    if let Ok((base, category)) = &mut mariadb
        && let Ok(plan) = base.explain(*category)
    {
        section.note(format!("MariaDB plan: {plan}"));
    }

    let mut floor =
        addr.clone().and_then(|a| raw::FloorProbe::new(&a, &node_keys, &object_keys).map_err(|e| e.to_string()));
    let mut node_only = addr.clone().and_then(|a| raw::NodeOnlyProbe::new(&a, &node_keys).map_err(|e| e.to_string()));
    let mut multi_get =
        addr.clone().and_then(|a| raw::MultiGetProbe::new(&a, &node_keys, &object_keys).map_err(|e| e.to_string()));
    let mut decoding_multi_get =
        addr.clone().and_then(|a| raw::MultiGetProbe::new(&a, &node_keys, &object_keys).map_err(|e| e.to_string()));
    let decode = memdex::__private::object_decoder::<memdex_side::Item>();
    let mut naive =
        addr.clone().and_then(|a| raw::NaiveProbe::new(&a, &node_keys, &object_keys).map_err(|e| e.to_string()));
    let unavailable = |e: &String| -> Probe<'_> { Err(e.clone()) };
    let probes: Vec<Probe<'_>> = vec![
        match store {
            Ok(b) => Ok(Box::new(move || checked(b.hot(HOT)?, want, "memdex"))),
            Err(e) => unavailable(e),
        },
        match &async_store {
            Ok(b) => Ok(Box::new(move || checked(b.hot(HOT)?, want, "memdex async"))),
            Err(e) => unavailable(e),
        },
        match &no_near {
            Ok(b) => Ok(Box::new(move || checked(b.hot(HOT)?, want, "memdex without near cache"))),
            Err(e) => unavailable(e),
        },
        match &mut node_only {
            Ok(p) => Ok(Box::new(move || p.run().map(drop).map_err(|e| e.to_string()))),
            Err(e) => unavailable(e),
        },
        match &mut multi_get {
            Ok(p) => Ok(Box::new(move || p.run(want).map(drop).map_err(|e| e.to_string()))),
            Err(e) => unavailable(e),
        },
        match &mut decoding_multi_get {
            Ok(p) => Ok(Box::new(move || p.run_decoding(want, &decode).map(drop).map_err(|e| e.to_string()))),
            Err(e) => unavailable(e),
        },
        match &mut floor {
            Ok(p) => Ok(Box::new(move || p.run().map(drop).map_err(|e| e.to_string()))),
            Err(e) => unavailable(e),
        },
        match &mut naive {
            Ok(p) => Ok(Box::new(move || p.run().map(drop).map_err(|e| e.to_string()))),
            Err(e) => unavailable(e),
        },
        match &mut pg_clustered {
            Ok(base) => Ok(Box::new(move || {
                checked(base.by_category(HOT).map_err(|e| e.to_string())?.len(), want, "PostgreSQL")
            })),
            Err(e) => unavailable(e),
        },
        match &mut pg_scattered {
            Ok((base, category)) => {
                let category = *category;
                Ok(Box::new(move || {
                    checked(base.by_category(category).map_err(|e| e.to_string())?.len(), 100, "PostgreSQL (scattered)")
                }))
            }
            Err(e) => unavailable(e),
        },
        match &mut mariadb {
            Ok((base, category)) => {
                let category = *category;
                Ok(Box::new(move || {
                    checked(base.by_category(category).map_err(|e| e.to_string())?.len(), 100, "MariaDB (scattered)")
                }))
            }
            Err(e) => unavailable(e),
        },
        match &sqlite {
            Ok(base) => {
                Ok(Box::new(move || checked(base.by_category(HOT).map_err(|e| e.to_string())?.len(), want, "SQLite")))
            }
            Err(e) => unavailable(e),
        },
    ];
    let summaries = measure_interleaved(cfg.budget, probes);
    let cases: Vec<Case> = HOT_CASES
        .iter()
        .zip(summaries)
        .zip(round_trips)
        .map(|(((label, _), summary), trips)| case(label, trips, summary))
        .collect();
    hot_table(&mut section, &cases, bars);
    hot_targets(&mut section, &cases);
    drop(mariadb_server);
    section
}

/// The first category of `PgBaseline::setup_scattered`'s table (its own table: no
/// other section reads it).
const SCATTERED_BASE: i64 = 5_000;

/// Section 1's table and chart bars: each case's median and spread, and its ratio to
/// the floor with the same round trips and to memdex.
fn hot_table(section: &mut Section, cases: &[Case], bars: &mut Vec<Bar>) {
    let memdex_ns = median(&cases[hot::MEMDEX]);
    let floor_1 = median(&cases[hot::FLOOR_1]);
    let floor_2 =
        [median(&cases[hot::MULTI_GET]), median(&cases[hot::PIPELINED])].into_iter().flatten().reduce(f64::min);
    let mut table = Table::new([
        "case",
        "median",
        "p10",
        "p90",
        "round trips",
        "÷ floor of its round trips",
        "÷ memdex",
        "at 200 µs RTT",
        "at 500 µs RTT",
    ]);
    for (i, c) in cases.iter().enumerate() {
        let floor = if c.round_trips.starts_with("1 cache") { floor_1 } else { floor_2 };
        let Ok(s) = &c.summary else {
            let reason = c.summary.as_ref().err().cloned().unwrap_or_default();
            let mut cells = vec![c.label.clone(), format!("unavailable: {reason}"), "".into(), "".into()];
            cells.push(c.round_trips.clone());
            cells.resize(9, String::new());
            table.row(cells);
            continue;
        };
        let is_cache = c.round_trips.contains("cache") && !c.round_trips.contains("db") || i <= hot::NO_NEAR;
        table.row([
            c.label.clone(),
            format_ns(s.median_ns),
            format_ns(s.p10_ns),
            format_ns(s.p90_ns),
            c.round_trips.clone(),
            floor.filter(|_| is_cache).map_or("–".into(), |f| format_ratio(s.median_ns, f)),
            memdex_ns.map_or("–".into(), |m| format_ratio(s.median_ns, m)),
            at_rtt(s.median_ns, &c.round_trips, 200.0),
            at_rtt(s.median_ns, &c.round_trips, 500.0),
        ]);
        bars.push(Bar {
            label: HOT_CASES[i].1.to_owned(),
            median_us: s.median_ns / 1000.0,
            p10_us: s.p10_ns / 1000.0,
            p90_us: s.p90_ns / 1000.0,
        });
    }
    section.tables.push(table);
}

/// A case's time on a network with round-trip time `rtt_us`: the loopback median
/// plus one RTT per round trip (cache and database alike; an in-process case pays
/// none). A model, not a measurement: it says what the round-trip counts cost.
fn at_rtt(median_ns: f64, round_trips: &str, rtt_us: f64) -> String {
    let trips: u32 = round_trips.split(|c: char| !c.is_ascii_digit()).filter_map(|n| n.parse::<u32>().ok()).sum();
    format_ns(median_ns + f64::from(trips) * rtt_us * 1000.0)
}

/// The targets of section 1, each as measured in this run.
fn hot_targets(section: &mut Section, cases: &[Case]) {
    let m = |i: usize| median(&cases[i]);
    let verdict = |met: bool| if met { "met" } else { "missed" };
    if let (Some(memdex), Some(pg)) = (m(hot::MEMDEX), m(hot::PG_SCATTERED)) {
        let r = pg / memdex;
        section.note(format!(
            "Target: memdex's hot read ≥ 3x faster than PostgreSQL on the scattered table: {r:.2}x — {}.",
            verdict(r >= 3.0)
        ));
    }
    if let (Some(memdex), Some(floor)) = (m(hot::MEMDEX), m(hot::FLOOR_1)) {
        section.note(format!("memdex's hot read is {:.2}x the one-round-trip floor.", memdex / floor));
    }
    let floor_2 = [m(hot::MULTI_GET), m(hot::PIPELINED)].into_iter().flatten().reduce(f64::min);
    if let (Some(no_near), Some(floor)) = (m(hot::NO_NEAR), floor_2) {
        let r = no_near / floor;
        section.note(format!(
            "Target: the two-round-trip path (near cache off) ≤ 1.25x the faster two-round-trip floor (the classic \
             multi-get): {r:.2}x — {}.",
            verdict(r <= 1.25)
        ));
        if let Some(decoded) = m(hot::TYPED_FLOOR) {
            section.note(format!(
                "Decoding the rows alone (the classic floor + decoding each value into the structs memdex returns, \
                 nothing else) is {:.2}x the classic floor; memdex without its near cache is {:.2}x that.",
                decoded / floor,
                no_near / decoded
            ));
        }
    }
    if let (Some(blocking), Some(asynchronous)) = (m(hot::MEMDEX), m(hot::ASYNC)) {
        let r = asynchronous / blocking;
        section.note(format!("Target: the async hot read ≤ 1.15x the blocking one: {r:.2}x — {}.", verdict(r <= 1.15)));
    }
    section.note(
        "All cases run interleaved, 50 runs of each in turn, so that a change of load hits all alike. The raw \
         floors send prebuilt requests and only frame the replies (no decoding); the typed floor decodes the \
         objects too, with memdex's own codec; memdex and the databases return decoded structs. The \
         1-round-trip floor moves the node alone: what a hot fetch must move when its \
         objects are kept decoded in the process at the versions the node names.",
    );
}

/// That one of two fetches returned all `expected` rows in one cache round trip and
/// no database query. Once a second a fetch also polls the outbox table (one query),
/// hence the second try: the async check had none and failed about one loop in ten.
fn one_round_trip(
    label: &str,
    expected: usize,
    mut fetch: impl FnMut() -> Result<(usize, memdex_side::Counters, memdex_side::Counters), String>,
) -> Result<(), String> {
    let mut seen = Vec::new();
    for _ in 0..2 {
        let (rows, before, after) = fetch()?;
        seen.push((rows, (after.cache_round_trips - before.cache_round_trips, after.db_queries - before.db_queries)));
    }
    if seen.contains(&(expected, (1, 0))) {
        Ok(())
    } else {
        Err(format!("{label}: (rows, (cache, db) round trips) of two fetches: {seen:?}"))
    }
}

fn growth(
    cfg: &Config,
    servers: &Servers,
    data: &Dataset,
    store: &Result<Bench, String>,
    series: &mut Vec<Series>,
) -> Section {
    let mut section = Section::new(SECTIONS[1]);
    let addr = servers.memcached_addrs(1).map(|a| a[0].clone());

    // Objects per node.
    let mut table = Table::new(["objects per node", "memdex", "floor", "÷ floor", "memdex round trips (cache, db)"]);
    let (mut memdex_points, mut floor_points) = (Vec::new(), Vec::new());
    for (i, &n) in cfg.growth_objects.iter().enumerate() {
        let category = GROWTH_BASE + i as i64;
        let (node_keys, object_keys) = memdex_side::keys(category, data.ids(category));
        let mut trips = "–".to_owned();
        let m = store.as_ref().map_err(Clone::clone).and_then(|b| {
            b.hot(category)?;
            let before = b.counters();
            b.hot(category)?;
            let after = b.counters();
            trips = format!(
                "{}, {}",
                after.cache_round_trips - before.cache_round_trips,
                after.db_queries - before.db_queries
            );
            measure(cfg.growth_budget, || b.hot(category).map(drop))
        });
        let f = addr.clone().and_then(|addr| {
            let mut probe = raw::FloorProbe::new(&addr, &node_keys, &object_keys).map_err(|e| e.to_string())?;
            measure(cfg.growth_budget, || probe.run().map(drop)).map_err(|e| e.to_string())
        });
        if let Ok(s) = &m {
            memdex_points.push((n as f64, s.median_us()));
        }
        if let Ok(s) = &f {
            floor_points.push((n as f64, s.median_us()));
        }
        table.row([n.to_string(), cell(&m), cell(&f), ratio_cell(&m, &f), trips]);
    }
    section.tables.push(table);
    series.push(Series { label: "memdex".into(), points: memdex_points });
    series.push(Series { label: "raw floor".into(), points: floor_points });

    // Disjuncts.
    let mut table = Table::new([
        "disjuncts",
        "objects",
        "memdex",
        "floor",
        "÷ floor",
        "floor, the nodes alone",
        "÷ nodes alone",
        "memdex round trips (cache, db)",
    ]);
    for &k in &cfg.disjuncts {
        let categories: Vec<i64> = (0..k as i64).map(|i| DISJUNCT_BASE + i).collect();
        let (mut node_keys, mut object_keys) = (Vec::new(), Vec::new());
        for &c in &categories {
            let (n, o) = memdex_side::keys(c, data.ids(c));
            node_keys.extend(n);
            object_keys.extend(o);
        }
        let mut trips = "–".to_owned();
        let m = store.as_ref().map_err(Clone::clone).and_then(|b| {
            let q = b.prepare_any_of(&categories)?;
            b.any_of(&q)?;
            let before = b.counters();
            let rows = b.any_of(&q)?;
            let after = b.counters();
            if rows != object_keys.len() {
                return Err(format!("memdex returned {rows} rows, expected {}", object_keys.len()));
            }
            trips = format!(
                "{}, {}",
                after.cache_round_trips - before.cache_round_trips,
                after.db_queries - before.db_queries
            );
            measure(cfg.growth_budget, || b.any_of(&q).map(drop))
        });
        let probe = addr
            .clone()
            .and_then(|addr| raw::FloorProbe::new(&addr, &node_keys, &object_keys).map_err(|e| e.to_string()));
        let (f, nodes) = match probe {
            Ok(mut probe) => (
                measure(cfg.growth_budget, || probe.run().map(drop)).map_err(|e| e.to_string()),
                measure(cfg.growth_budget, || probe.run_nodes().map(drop)).map_err(|e| e.to_string()),
            ),
            Err(e) => (Err(e.clone()), Err(e)),
        };
        table.row([
            k.to_string(),
            object_keys.len().to_string(),
            cell(&m),
            cell(&f),
            ratio_cell(&m, &f),
            cell(&nodes),
            ratio_cell(&m, &nodes),
            trips,
        ]);
    }
    section.tables.push(table);
    section.note(format!(
        "Disjuncts are `c.category_id == k0 or c.category_id == k1 or …` (text form, planned once), each node \
         holding {} objects; the floor fetches all nodes in one batch and all objects in a second; the nodes \
         alone are its first batch, what a hot fetch must move when its objects are kept in the process. A hot \
         fetch over several nodes is one round trip once the process has seen each node's bytes unchanged \
         (otherwise its second round trip re-reads the nodes' CAS).",
        cfg.objects_per_disjunct
    ));

    // Threads.
    let mut table = Table::new(["clients", "fetches/s", "median per fetch"]);
    for &threads in &cfg.threads {
        match store.as_ref().map_err(Clone::clone).and_then(|b| throughput(b, threads, cfg.throughput_time)) {
            Ok((rate, per)) => {
                table.row([format!("{threads} threads, one Store"), format!("{rate:.0}"), format_ns(per)])
            }
            Err(e) => table.row([format!("{threads} threads, one Store"), format!("unavailable: {e}"), String::new()]),
        }
    }
    // PostgreSQL's own throughput on the scattered table: a connection per thread.
    let pg = servers.postgres.as_ref().map_err(|e| e.to_string()).and_then(|pg| {
        let params = pg.params();
        let (base, category) =
            baselines::PgBaseline::setup_scattered(&params, SCATTERED_BASE).map_err(|e| e.to_string())?;
        Ok((base, category, params))
    });
    for &threads in &cfg.threads {
        let label = format!("{threads} threads, PostgreSQL (scattered table)");
        match pg
            .as_ref()
            .map_err(Clone::clone)
            .and_then(|(base, category, params)| pg_throughput(base, params, *category, threads, cfg.throughput_time))
        {
            Ok((rate, per)) => table.row([label, format!("{rate:.0}"), format_ns(per)]),
            Err(e) => table.row([label, format!("unavailable: {e}"), String::new()]),
        }
    }
    // The same from tasks on one AsyncStore, on a runtime of two workers (the cores).
    let asynchronous = servers.memcached_addrs(1).and_then(|a| memdex_side::open_async(&servers.db(), &a, 2));
    for tasks in [1, 4] {
        let label = format!("{tasks} tasks, one AsyncStore (2 workers)");
        match asynchronous.as_ref().map_err(Clone::clone).and_then(|b| b.throughput(tasks, HOT, cfg.throughput_time)) {
            Ok((rate, per)) => table.row([label, format!("{rate:.0}"), format_ns(per)]),
            Err(e) => table.row([label, format!("unavailable: {e}"), String::new()]),
        }
    }
    section.tables.push(table);
    section.note(format!(
        "Throughput: the hot query of section 1 from each thread on one shared Store, or from each task on one \
         AsyncStore, for {:.1} s (2 cores, shared).",
        cfg.throughput_time.as_secs_f64()
    ));

    // Servers.
    let mut table = Table::new(["memcached servers", "memdex median", "round trips (cache, db)"]);
    for &n in &cfg.servers {
        let result = servers.memcached_addrs(n).and_then(|addrs| {
            let b = memdex_side::open(&servers.db(), &addrs)?;
            b.hot(HOT)?;
            let before = b.counters();
            b.hot(HOT)?;
            let after = b.counters();
            let trips = format!(
                "{}, {}",
                after.cache_round_trips - before.cache_round_trips,
                after.db_queries - before.db_queries
            );
            Ok((measure(cfg.growth_budget, || b.hot(HOT).map(drop))?, trips))
        });
        match result {
            Ok((s, trips)) => table.row([n.to_string(), format_ns(s.median_ns), trips]),
            Err(e) => table.row([n.to_string(), format!("unavailable: {e}"), String::new()]),
        }
    }
    section.tables.push(table);
    section.note(
        "With several servers the keys are sharded; a round trip counts one batch, sent to every server \
         involved at once.",
    );
    section
}

/// Fetches per second from `threads` threads sharing one store, and the median time
/// of one fetch.
fn throughput(b: &Bench, threads: usize, time: Duration) -> Result<(f64, f64), String> {
    let deadline = Instant::now() + time;
    let results: Vec<Result<Vec<f64>, String>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(move || {
                    let mut samples = Vec::new();
                    while Instant::now() < deadline {
                        let t = Instant::now();
                        b.hot(HOT)?;
                        samples.push(t.elapsed().as_nanos() as f64);
                    }
                    Ok(samples)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err("a client thread panicked".into()))).collect()
    });
    let mut all = Vec::new();
    for r in results {
        all.extend(r?);
    }
    let n = all.len();
    let per = Summary::of(all).map_or(f64::NAN, |s| s.median_ns);
    Ok((n as f64 / time.as_secs_f64(), per))
}

/// Queries per second from `threads` threads, each on its own connection to the
/// table `base` was set up on, and the median time of one query.
fn pg_throughput(
    base: &baselines::PgBaseline,
    params: &str,
    category: i64,
    threads: usize,
    time: Duration,
) -> Result<(f64, f64), String> {
    let mut conns: Vec<baselines::PgBaseline> =
        (0..threads).map(|_| base.connect(params).map_err(|e| e.to_string())).collect::<Result<_, _>>()?;
    let deadline = Instant::now() + time;
    let results: Vec<Result<Vec<f64>, String>> = std::thread::scope(|s| {
        let handles: Vec<_> = conns
            .iter_mut()
            .map(|conn| {
                s.spawn(move || {
                    let mut samples = Vec::new();
                    while Instant::now() < deadline {
                        let t = Instant::now();
                        conn.by_category(category).map_err(|e| e.to_string())?;
                        samples.push(t.elapsed().as_nanos() as f64);
                    }
                    Ok(samples)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err("a client thread panicked".into()))).collect()
    });
    let mut all = Vec::new();
    for r in results {
        all.extend(r?);
    }
    let n = all.len();
    Ok((n as f64 / time.as_secs_f64(), Summary::of(all).map_or(f64::NAN, |s| s.median_ns)))
}

fn cell(r: &Result<Summary, String>) -> String {
    match r {
        Ok(s) => format_ns(s.median_ns),
        Err(e) => format!("unavailable: {e}"),
    }
}

fn ratio_cell(a: &Result<Summary, String>, b: &Result<Summary, String>) -> String {
    match (a, b) {
        (Ok(a), Ok(b)) => format_ratio(a.median_ns, b.median_ns),
        _ => "–".into(),
    }
}

fn offload_section(cfg: &Config) -> Section {
    let w = &cfg.offload;
    let mut section = Section::new(SECTIONS[2]);
    let rows = offload::workload_rows(w);
    let mut results = Vec::new();
    match memdex_side::offload_strategy(&rows) {
        Ok(mut s) => results.push(offload::run(w, s.as_mut())),
        Err(e) => results.push(Err(format!("memdex: {e}"))),
    }
    for kind in
        [offload::PeerKind::PerCallTtl { ttl_ms: 60_000 }, offload::PeerKind::FlushOnWrite, offload::PeerKind::NoCache]
    {
        results.push(offload::Peer::new(kind, &rows).and_then(|mut p| offload::run(w, &mut p)));
    }
    let mut table = Table::new([
        "strategy",
        "reads",
        "writes",
        "db queries (reads)",
        "per 1,000 reads",
        "stale results",
        "keys written",
    ]);
    for r in &results {
        match r {
            Ok(r) => table.row([
                r.strategy.clone(),
                r.reads.to_string(),
                r.writes.to_string(),
                r.read_queries.to_string(),
                format!("{:.1}", r.queries_per_1000_reads()),
                r.stale.to_string(),
                r.keys_written.to_string(),
            ]),
            Err(e) => table.row([
                format!("unavailable: {e}"),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
            ]),
        }
    }
    section.tables.push(table);
    let ok: Vec<&offload::OffloadResult> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    if let Some(m) = ok.iter().find(|r| r.strategy.starts_with("memdex")) {
        let fewest = ok.iter().all(|r| r.read_queries >= m.read_queries);
        section.note(format!(
            "Target memdex issues the fewest database queries with zero stale results: {} ({} queries, {} stale).",
            if fewest && m.stale == 0 { "met" } else { "missed" },
            m.read_queries,
            m.stale
        ));
    }
    section.note(format!(
        "{} categories × {} items, Zipf(s = {}) over categories for reads and for writes' targets, {} operations \
         with {:.0}% writes (each moves a random item to another category), pages of limit 5–20 at every page \
         offset ordered by price; simulated time advances {} ms per operation. A result is stale when it differs \
         from the database's answer at that moment.",
        w.categories,
        w.items_per_category,
        w.zipf_exponent,
        w.operations,
        w.write_ratio * 100.0,
        w.step_ms
    ));

    let mut table = Table::new(["strategy", format!("keys for one {}-item cart", cfg.cart_items).as_str()]);
    let memdex_keys = memdex_side::open_traced(&DbTarget::SqliteInMemory, &[])
        .and_then(|b| {
            let data = Dataset::new(&[(HOT, cfg.cart_items as usize)]);
            b.load(&data.rows)?;
            b.cart_node_keys(HOT, cfg.cart_items)
        })
        .map_or_else(
            |e| format!("unavailable: {e}"),
            |n| format!("{n} node (+ one key per object, shared by every query)"),
        );
    table.row(["memdex".to_owned(), memdex_keys]);
    table.row([
        "per-call keys (limit 5–20 × every page offset)".to_owned(),
        offload::per_call_keys_per_cart(cfg.cart_items, 5..=20).to_string(),
    ]);
    section.tables.push(table);
    section.note(
        "memdex's count is measured: every page of the cart is fetched and the distinct index-node keys of the \
         cache conversation are counted.",
    );
    section
}

fn planning(cfg: &Config) -> Section {
    let mut section = Section::new(SECTIONS[3]);
    let mut table = Table::new(["step", "median", "p90", "target"]);
    match memdex_side::planning(cfg.planning_budget) {
        Ok(s) => {
            table.row([
                "text parse + check + plan + SQL".into(),
                format_ns(s.median_ns),
                format_ns(s.p90_ns),
                "≤ 10 µs".to_owned(),
            ]);
            section.note(format!(
                "Planning target ≤ 10 µs median: {}.",
                if s.median_ns <= 10_000.0 { "met" } else { "missed" }
            ));
        }
        Err(e) => table.row([
            "text parse + check + plan + SQL".into(),
            format!("unavailable: {e}"),
            String::new(),
            "≤ 10 µs".into(),
        ]),
    }
    match memdex_side::macro_overhead(cfg.planning_budget) {
        Ok((overhead, work)) => {
            table.row([
                "select! per-call overhead (build the query value)".into(),
                format_ns(overhead.median_ns),
                format_ns(overhead.p90_ns),
                "≤ 1 µs".to_owned(),
            ]);
            table.row([
                "for scale: the same fetch on the in-process cache".into(),
                format_ns(work.median_ns),
                format_ns(work.p90_ns),
                String::new(),
            ]);
            section.note(format!(
                "Macro overhead target ≤ 1 µs: {}.",
                if overhead.median_ns <= 1_000.0 { "met" } else { "missed" }
            ));
        }
        Err(e) => {
            table.row(["select! per-call overhead".into(), format!("unavailable: {e}"), String::new(), "≤ 1 µs".into()])
        }
    }
    section.tables.push(table);
    section.note(
        "The select! overhead is what a call pays before any work: the query's plan is prepared once per call \
         site, so a call only binds its captured values and boxes its predicate.",
    );
    section
}

fn writes(cfg: &Config, servers: &Servers, data: &Dataset, store: &Result<Bench, String>) -> Section {
    let mut section = Section::new(SECTIONS[4]);
    let mut table = Table::new([
        "case",
        "median",
        "p90",
        "client CPU / write",
        "db statements / write",
        "cache round trips / write",
    ]);
    let ids = data.ids(HOT);
    let target = data.rows.iter().find(|r| Some(&r.id) == ids.first()).cloned();
    let memdex = store.as_ref().map_err(Clone::clone).and_then(|b| {
        let mut row = target.clone().ok_or("no row to update")?;
        let mut price = row.price;
        let mut next = |row: &mut data::Row| {
            price += 0.25;
            row.price = price;
        };
        next(&mut row);
        b.update_price(&row)?;
        let before = b.counters();
        next(&mut row);
        b.update_price(&row)?;
        let after = b.counters();
        let (s, cpu) = measure_with_cpu(cfg.write_budget, || {
            next(&mut row);
            b.update_price(&row)
        })?;
        Ok((s, cpu, after.db_queries - before.db_queries, after.cache_round_trips - before.cache_round_trips))
    });
    let memdex_ns = memdex.as_ref().ok().map(|m| m.0.median_ns);
    match &memdex {
        Ok((s, cpu, db, cache)) => {
            table.row([
                "memdex update".into(),
                format_ns(s.median_ns),
                format_ns(s.p90_ns),
                cpu.map_or_else(String::new, format_ns),
                db.to_string(),
                cache.to_string(),
            ]);
            section.note(format!(
                "Target: the database transaction plus exactly one pipelined cache batch: {} ({cache} cache round trip(s)).",
                if *cache == 1 { "met" } else { "missed" }
            ));
        }
        Err(e) => table.row([
            "memdex update".into(),
            format!("unavailable: {e}"),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
        ]),
    }
    let plain = |in_transaction: bool| {
        servers.postgres.as_ref().map_err(|e| e.to_string()).and_then(|pg| {
            let mut base = baselines::PgBaseline::setup(&pg.params(), &data.rows).map_err(|e| e.to_string())?;
            let id = ids.first().copied().ok_or("no row to update")?;
            let mut price = 1.0;
            measure_with_cpu(cfg.write_budget, || {
                price += 0.25;
                let updated = if in_transaction {
                    base.update_price_in_transaction(id, price)
                } else {
                    base.update_price(id, price)
                };
                updated.map(drop)
            })
            .map_err(|e| e.to_string())
        })
    };
    let peers = [(PLAIN_AUTOCOMMIT, "1", plain(false)), (PLAIN_IN_TRANSACTION, "3", plain(true))];
    for (label, statements, peer) in &peers {
        match peer {
            Ok((s, cpu)) => table.row([
                (*label).into(),
                format_ns(s.median_ns),
                format_ns(s.p90_ns),
                cpu.map_or_else(String::new, format_ns),
                (*statements).into(),
                "0".into(),
            ]),
            Err(e) => table.row([
                (*label).into(),
                format!("unavailable: {e}"),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
            ]),
        }
    }
    section.tables.push(table);
    if let (Some(m), [(_, _, Ok((auto, _))), (_, _, Ok((in_tx, _)))]) = (memdex_ns, &peers) {
        section.note(format!(
            "memdex update ÷ plain UPDATE, measured one after the other: {} of the autocommitted one, {} of \
             the one in its own transaction (the target is judged on the interleaved runs below).",
            format_ratio(m, auto.median_ns),
            format_ratio(m, in_tx.median_ns),
        ));
    }
    section.note(
        "Client CPU is this process's CPU time per write (its threads' schedstat, warm-up runs included): the \
         client's own work and the kernel's loopback work on its behalf; the rest of a pinned write's time is the \
         servers'.",
    );
    section.note(
        "memdex's statements per write are its own count (`Store::stats().db_queries`): on PostgreSQL an update \
         or a delete of this model (its index column is an integer: the database can spell its node keys) is \
         ONE autocommitted statement — the UPDATE, reading the row as it was (locked) in the same statement and \
         guarded by the index registry, with the outbox record of the keys to invalidate, those of the nodes the \
         row was in spelled by the statement from what it read (so a lost cache batch is repaired), and the \
         clean-up of applied records — whether or not it moves the row and whatever this process knows of it. \
         (A model with a float or instant index column, or a store built with `guarded_writes(true)`, is guarded \
         by the indexed values the process read or wrote last instead: a second statement where another process \
         wrote the row since.)",
    );
    if let Some(target) = target {
        async_write_cost(cfg, servers, target, store, &mut section);
    }
    insert_cost(cfg, servers, store, &mut section);
    capture_cost(cfg, servers, data, &mut section);
    section
}

/// The blocking and the async store's update of the same row against a plain
/// UPDATE, autocommitted and in a transaction of its own (the peer the write target
/// is judged against), interleaved. On PostgreSQL both make one database round trip
/// for this update (one statement that reads the row as it was, with its outbox
/// entry) and one cache round trip. Beside them, each store moves a row of its own
/// between two categories, and the two move a third row in turn (each moves a row
/// the other moved last): one statement each on PostgreSQL.
fn async_write_cost(
    cfg: &Config,
    servers: &Servers,
    target: data::Row,
    store: &Result<Bench, String>,
    section: &mut Section,
) {
    let Ok(pg) = servers.postgres.as_ref() else { return };
    let asynchronous = servers.memcached_addrs(1).and_then(|a| memdex_side::open_async(&servers.db(), &a, 0));
    let connect = || baselines::PgBaseline::on_table(&pg.params(), "plain_item").map_err(|e| e.to_string());
    let (mut plain, mut plain_in_transaction) = (connect(), connect());
    let id = target.id;
    let (mut blocking_row, mut async_row, mut price, mut tx_price) = (target.clone(), target, 1.0, 1.0);
    // Moves: a row of each store's own, moved between two categories no section
    // reads each time (their nodes are never filled: a move's appends find none,
    // and no node grows through the run).
    let (mut blocking_mover, mut async_mover) = (data::row(800_000_001, MOVED[0]), data::row(800_000_002, MOVED[0]));
    // And a row the two stores move in turn, so that each moves a row the other
    // moved last: its belief of the row's nodes is stale every time.
    let mut shared_mover = data::row(800_000_003, MOVED[0]);
    let movers = (store.as_ref().map_err(Clone::clone).and_then(|b| b.insert(&blocking_mover)))
        .and_then(|()| asynchronous.as_ref().map_err(Clone::clone).and_then(|b| b.insert(&async_mover)))
        .and_then(|()| store.as_ref().map_err(Clone::clone).and_then(|b| b.insert(&shared_mover)));
    let mut turn = 0_u64;
    let move_row = |row: &mut data::Row| {
        row.category_id = if row.category_id == MOVED[0] { MOVED[1] } else { MOVED[0] };
        row.clone()
    };
    let counted: [Statements; 5] = Default::default();
    type Run<'a> = Box<dyn FnMut() -> Result<(), String> + 'a>;
    let probes: Vec<Probe<'_>> = vec![
        plain.as_mut().map_err(|e| e.clone()).map(|base| -> Run<'_> {
            Box::new(move || {
                price += 0.25;
                base.update_price(id, price).map(drop).map_err(|e| e.to_string())
            })
        }),
        plain_in_transaction.as_mut().map_err(|e| e.clone()).map(|base| -> Run<'_> {
            Box::new(move || {
                tx_price += 0.25;
                base.update_price_in_transaction(id, tx_price).map(drop).map_err(|e| e.to_string())
            })
        }),
        store.as_ref().map_err(Clone::clone).map(|b| -> Run<'_> {
            counted[0].count(
                || b.counters().db_queries,
                move || {
                    blocking_row.price += 0.25;
                    b.update_price(&blocking_row)
                },
            )
        }),
        asynchronous.as_ref().map_err(Clone::clone).map(|b| -> Run<'_> {
            counted[1].count(
                || b.counters().db_queries,
                move || {
                    async_row.price += 0.25;
                    b.update_price(&async_row)
                },
            )
        }),
        (movers.clone().and(store.as_ref().map_err(Clone::clone))).map(|b| -> Run<'_> {
            counted[2].count(|| b.counters().db_queries, move || b.update_price(&move_row(&mut blocking_mover)))
        }),
        (movers.clone().and(asynchronous.as_ref().map_err(Clone::clone))).map(|b| -> Run<'_> {
            counted[3].count(|| b.counters().db_queries, move || b.update_price(&move_row(&mut async_mover)))
        }),
        (movers.and(store.as_ref().map_err(Clone::clone)))
            .and_then(|b| asynchronous.as_ref().map_err(Clone::clone).map(|a| (b, a)))
            .map(|(b, a)| -> Run<'_> {
                counted[4].count(
                    || b.counters().db_queries + a.counters().db_queries,
                    move || {
                        turn += 1;
                        let row = move_row(&mut shared_mover);
                        if turn.is_multiple_of(2) { b.update_price(&row) } else { a.update_price(&row) }
                    },
                )
            }),
    ];
    let summaries = measure_interleaved(cfg.write_budget, probes);
    let [updates @ .., in_turn] = &counted;
    let [blocking, asynchronous, blocking_move, async_move] = updates.each_ref().map(Statements::per_call);
    let labels = [
        (PLAIN_AUTOCOMMIT, "1".to_owned()),
        (PLAIN_IN_TRANSACTION, "3".to_owned()),
        ("memdex update, blocking Store", blocking),
        ("memdex update, AsyncStore", asynchronous),
    ];
    let (table, medians) = round_trip_table("case (interleaved, one row)", &labels, &summaries[..4]);
    section.tables.push(table);
    let move_labels = [
        ("memdex move to another category, blocking Store", blocking_move),
        ("the same, AsyncStore", async_move),
        ("a move of a row the other store moved last, blocking and async in turn", in_turn.per_call()),
    ];
    let (move_table, moves) = round_trip_table("case (interleaved with the above)", &move_labels, &summaries[4..]);
    section.tables.push(move_table);
    if let ([_, Some(in_transaction), ..], [Some(blocking), Some(asynchronous), Some(in_turn)]) =
        (&medians[..], &moves[..])
    {
        section.note(format!(
            "Moves, interleaved with the updates: blocking {} and async {} of the plain UPDATE in its own \
             transaction, a move of a row the other store moved last {}. On PostgreSQL a move is one \
             autocommitted statement that reads the row as it was and names the nodes it leaves from what it read, \
             whoever wrote the row last.",
            format_ratio(*blocking, *in_transaction),
            format_ratio(*asynchronous, *in_transaction),
            format_ratio(*in_turn, *in_transaction)
        ));
    }
    if let [Some(plain), Some(in_transaction), Some(blocking), Some(asynchronous)] = medians[..] {
        section.note(format!(
            "Interleaved: the blocking update {} of the autocommitted UPDATE and {} of the one in its own \
             transaction; the async one {} and {} ({} of the blocking one).",
            format_ratio(blocking, plain),
            format_ratio(blocking, in_transaction),
            format_ratio(asynchronous, plain),
            format_ratio(asynchronous, in_transaction),
            format_ratio(asynchronous, blocking)
        ));
        let met = |update: f64| if update <= 2.0 * in_transaction { "met" } else { "missed" };
        section.note(format!(
            "Target: a memdex update ≤ 2x a plain UPDATE in its own transaction, interleaved: blocking {}, async {}.",
            met(blocking),
            met(asynchronous)
        ));
    }
}

/// The two categories the write section's moves alternate between.
const MOVED: [i64; 2] = [800_001, 800_002];

/// The database statements a memdex probe sends per call, as its store counts them
/// (`Stats::db_queries`), over its first [`Statements::COUNTED`] calls (warm-up
/// included): reading the counters costs a little, and later calls do not pay it.
#[derive(Default)]
struct Statements(std::cell::Cell<(u64, u64)>);

impl Statements {
    const COUNTED: u64 = 64;

    /// `run`, counting the statements `queries` (a store's count so far) says each
    /// of its first calls sent.
    fn count<'a>(
        &'a self,
        queries: impl Fn() -> u64 + 'a,
        mut run: impl FnMut() -> Result<(), String> + 'a,
    ) -> Box<dyn FnMut() -> Result<(), String> + 'a> {
        Box::new(move || {
            let (sent, calls) = self.0.get();
            if calls >= Self::COUNTED {
                return run();
            }
            let before = queries();
            run()?;
            self.0.set((sent + queries() - before, calls + 1));
            Ok(())
        })
    }

    /// Statements per counted call, as the report's round-trip column shows them.
    fn per_call(&self) -> String {
        let (sent, calls) = self.0.get();
        if calls == 0 {
            return "—".to_owned();
        }
        let mean = sent as f64 / calls as f64;
        if (mean - mean.round()).abs() < 0.005 { format!("{}", mean.round()) } else { format!("{mean:.2}") }
    }
}

/// The table of interleaved probes' medians and p90s, a row per `(label, database
/// round trips)` in the probes' order, and each probe's median (`None` for one that
/// could not run).
fn round_trip_table(
    title: &str,
    labels: &[(&str, String)],
    summaries: &[Result<Summary, String>],
) -> (Table, Vec<Option<f64>>) {
    let mut table = Table::new([title, "median", "p90", "database round trips"]);
    for ((label, trips), summary) in labels.iter().zip(summaries) {
        match summary {
            Ok(s) => table.row([(*label).to_owned(), format_ns(s.median_ns), format_ns(s.p90_ns), (*trips).to_owned()]),
            Err(e) => table.row([(*label).to_owned(), format!("unavailable: {e}"), String::new(), String::new()]),
        }
    }
    let medians = summaries.iter().map(|s| s.as_ref().ok().map(|s| s.median_ns)).collect();
    (table, medians)
}

/// The blocking and the async store's insert of a new row against a plain INSERT,
/// autocommitted and in a transaction of its own, and their delete of that row
/// against a plain DELETE alike, all interleaved. On PostgreSQL a memdex insert is
/// one guarded statement with its outbox entry (its row was in no index node) and
/// one cache round trip; a delete is one statement that returns the row as it was,
/// and beside the deletes of rows the stores inserted the blocking store deletes
/// rows plain SQL inserted. Each insert gets a fresh id, in a
/// category no other section reads; each delete probe deletes the oldest row its
/// insert probe left (every probe runs as often as the others, in order, so one is
/// always there).
fn insert_cost(cfg: &Config, servers: &Servers, store: &Result<Bench, String>, section: &mut Section) {
    use std::cell::RefCell;
    use std::collections::VecDeque;
    use std::sync::atomic::{AtomicI64, Ordering};
    /// Ids no dataset and no other section uses (the hung-server section inserts
    /// from 60,000,000), shared by every probe.
    static NEXT_ID: AtomicI64 = AtomicI64::new(900_000_000);
    const CATEGORY: i64 = 900_000;
    let Ok(pg) = servers.postgres.as_ref() else { return };
    let asynchronous = servers.memcached_addrs(1).and_then(|a| memdex_side::open_async(&servers.db(), &a, 0));
    let connect = || baselines::PgBaseline::on_table(&pg.params(), "plain_item").map_err(|e| e.to_string());
    // One connection per probe pair (the INSERT and the DELETE of one kind) keeps
    // each pair's prepared statements; the pair's rows wait in its queue.
    let (plain, plain_in_transaction) = (connect().map(RefCell::new), connect().map(RefCell::new));
    // Rows inserted by plain SQL (another process, as memdex sees it) for memdex's
    // blocking store to delete: the delete of a row this process did not write.
    // (Its category is one no fetch reads, so no node misses them.)
    let feeder = baselines::PgBaseline::on_table(&pg.params(), "item").map_err(|e| e.to_string()).map(RefCell::new);
    let queues: [RefCell<VecDeque<i64>>; 5] = Default::default();
    let fresh = |queue: &RefCell<VecDeque<i64>>| {
        let row = data::row(NEXT_ID.fetch_add(1, Ordering::Relaxed), CATEGORY);
        queue.borrow_mut().push_back(row.id);
        row
    };
    let oldest = |queue: &RefCell<VecDeque<i64>>| queue.borrow_mut().pop_front().ok_or("no row left to delete");
    let [q0, q1, q2, q3, q4] = &queues;
    let counted: [Statements; 5] = Default::default();
    type Run<'a> = Box<dyn FnMut() -> Result<(), String> + 'a>;
    let probes: Vec<Probe<'_>> = vec![
        plain.as_ref().map_err(Clone::clone).map(|base| -> Run<'_> {
            Box::new(move || base.borrow_mut().insert(&fresh(q0)).map(drop).map_err(|e| e.to_string()))
        }),
        plain_in_transaction.as_ref().map_err(Clone::clone).map(|base| -> Run<'_> {
            Box::new(move || base.borrow_mut().insert_in_transaction(&fresh(q1)).map(drop).map_err(|e| e.to_string()))
        }),
        store
            .as_ref()
            .map_err(Clone::clone)
            .map(|b| -> Run<'_> { counted[0].count(|| b.counters().db_queries, move || b.insert(&fresh(q2))) }),
        asynchronous
            .as_ref()
            .map_err(Clone::clone)
            .map(|b| -> Run<'_> { counted[1].count(|| b.counters().db_queries, move || b.insert(&fresh(q3))) }),
        feeder.as_ref().map_err(Clone::clone).map(|base| -> Run<'_> {
            Box::new(move || base.borrow_mut().insert(&fresh(q4)).map(drop).map_err(|e| e.to_string()))
        }),
        plain.as_ref().map_err(Clone::clone).map(|base| -> Run<'_> {
            Box::new(move || base.borrow_mut().delete(oldest(q0)?).map(drop).map_err(|e| e.to_string()))
        }),
        plain_in_transaction.as_ref().map_err(Clone::clone).map(|base| -> Run<'_> {
            Box::new(move || base.borrow_mut().delete_in_transaction(oldest(q1)?).map(drop).map_err(|e| e.to_string()))
        }),
        store
            .as_ref()
            .map_err(Clone::clone)
            .map(|b| -> Run<'_> { counted[2].count(|| b.counters().db_queries, move || b.delete(oldest(q2)?)) }),
        asynchronous
            .as_ref()
            .map_err(Clone::clone)
            .map(|b| -> Run<'_> { counted[3].count(|| b.counters().db_queries, move || b.delete(oldest(q3)?)) }),
        store
            .as_ref()
            .map_err(Clone::clone)
            .map(|b| -> Run<'_> { counted[4].count(|| b.counters().db_queries, move || b.delete(oldest(q4)?)) }),
    ];
    let summaries = measure_interleaved(cfg.write_budget, probes);
    let [blocking, asynchronous, blocking_delete, async_delete, other_delete] =
        counted.each_ref().map(Statements::per_call);
    let labels = [
        ("plain PostgreSQL INSERT (prepared, autocommit)", "1".to_owned()),
        ("plain PostgreSQL INSERT in its own transaction (BEGIN, INSERT, COMMIT)", "3".to_owned()),
        ("memdex insert, blocking Store", blocking),
        ("memdex insert, AsyncStore", asynchronous),
    ];
    let (table, medians) = round_trip_table("case (interleaved, a new row each)", &labels, &summaries[..4]);
    section.tables.push(table);
    if let [Some(plain), Some(in_transaction), Some(blocking), Some(asynchronous)] = medians[..] {
        section.note(format!(
            "Inserts, interleaved: the blocking insert {} of the autocommitted INSERT and {} of the one in its own \
             transaction; the async one {} and {}.",
            format_ratio(blocking, plain),
            format_ratio(blocking, in_transaction),
            format_ratio(asynchronous, plain),
            format_ratio(asynchronous, in_transaction)
        ));
    }
    // Summary 4 is the plain INSERT that feeds the last delete: the first row's
    // twin, not shown.
    let labels = [
        ("plain PostgreSQL DELETE (prepared, autocommit)", "1".to_owned()),
        ("plain PostgreSQL DELETE in its own transaction (BEGIN, DELETE, COMMIT)", "3".to_owned()),
        ("memdex delete, blocking Store", blocking_delete),
        ("memdex delete, AsyncStore", async_delete),
        ("memdex delete of a row plain SQL inserted, blocking Store", other_delete),
    ];
    let (table, medians) =
        round_trip_table("case (interleaved, each row the inserts above left)", &labels, &summaries[5..]);
    section.tables.push(table);
    if let [Some(plain), Some(in_transaction), Some(blocking), Some(asynchronous), other] = medians[..] {
        section.note(format!(
            "Deletes, interleaved with the inserts: the blocking delete {} of the autocommitted DELETE and {} of the \
             one in its own transaction; the async one {} and {}; of a row plain SQL inserted {}. On PostgreSQL a \
             memdex delete is one statement that returns the row as it was, its outbox record naming the nodes the \
             row was in from it, whoever wrote the row.",
            format_ratio(blocking, plain),
            format_ratio(blocking, in_transaction),
            format_ratio(asynchronous, plain),
            format_ratio(asynchronous, in_transaction),
            other.map_or_else(|| "unavailable".to_owned(), |o| format_ratio(o, in_transaction)),
        ));
    }
}

/// What capturing outside writes (`capture_outside_writes`) costs a write, on
/// PostgreSQL, interleaved, on two tables of the same rows, one with memdex's
/// capture triggers: a plain UPDATE of each (the outside writer pays one insert
/// into `memdex_changes`), and memdex's own update of each (the triggers' `WHEN`
/// skips memdex's sessions).
fn capture_cost(cfg: &Config, servers: &Servers, data: &Dataset, section: &mut Section) {
    use memdex_side::{CapturedItem, TableWriter, UncapturedItem};
    let Ok(pg) = servers.postgres.as_ref() else { return };
    let db = DbTarget::Postgres(pg.params());
    let rows: Vec<data::Row> = data.rows.iter().filter(|r| r.category_id == HOT).cloned().collect();
    let Some(target) = rows.first().cloned() else { return };
    let addrs = servers.memcached_addrs(1);
    let captured: Result<TableWriter<CapturedItem>, String> =
        addrs.clone().and_then(|a| memdex_side::table_writer(&db, &a, &rows, true));
    let uncaptured: Result<TableWriter<UncapturedItem>, String> =
        addrs.and_then(|a| memdex_side::table_writer(&db, &a, &rows, false));
    let raw = |table: &str| baselines::PgBaseline::on_table(&pg.params(), table).map_err(|e| e.to_string());
    let (mut plain, mut outside) = (raw("uncaptured_item"), raw("captured_item"));
    let id = target.id;
    let (mut plain_row, mut captured_row) = (target.clone(), target);
    let probes: Vec<Probe<'_>> = vec![
        plain.as_mut().map_err(|e| e.clone()).map(|base| -> Box<dyn FnMut() -> Result<(), String>> {
            Box::new(move || base.update_price(id, 1.0 + (id as f64)).map(drop).map_err(|e| e.to_string()))
        }),
        outside.as_mut().map_err(|e| e.clone()).map(|base| -> Box<dyn FnMut() -> Result<(), String>> {
            Box::new(move || base.update_price(id, 2.0 + (id as f64)).map(drop).map_err(|e| e.to_string()))
        }),
        uncaptured.as_ref().map_err(Clone::clone).map(|w| -> Box<dyn FnMut() -> Result<(), String>> {
            Box::new(move || {
                plain_row.price += 0.25;
                w.update_price(&plain_row)
            })
        }),
        captured.as_ref().map_err(Clone::clone).map(|w| -> Box<dyn FnMut() -> Result<(), String>> {
            Box::new(move || {
                captured_row.price += 0.25;
                w.update_price(&captured_row)
            })
        }),
    ];
    let summaries = measure_interleaved(cfg.write_budget, probes);
    let mut table = Table::new(["case (interleaved, two tables of the same rows)", "median", "p90"]);
    let labels = [
        "plain PostgreSQL UPDATE, no capture triggers",
        "plain PostgreSQL UPDATE, capture triggers (a writer outside memdex)",
        "memdex update, no capture triggers",
        "memdex update, capture triggers (their WHEN skips memdex's session)",
    ];
    for (label, summary) in labels.iter().zip(&summaries) {
        match summary {
            Ok(s) => table.row([(*label).to_owned(), format_ns(s.median_ns), format_ns(s.p90_ns)]),
            Err(e) => table.row([(*label).to_owned(), format!("unavailable: {e}"), String::new()]),
        }
    }
    section.tables.push(table);
    let median = |i: usize| summaries.get(i).and_then(|s| s.as_ref().ok()).map(|s| s.median_ns);
    if let (Some(with), Some(without)) = (median(1), median(0)) {
        section.note(format!(
            "Capture costs a writer outside memdex {} per row written ({}: one more insert, into \
             `memdex_changes`, in its transaction).",
            format_ns(with - without),
            format_ratio(with, without)
        ));
    }
    if let (Some(with), Some(without)) = (median(3), median(2)) {
        section.note(format!(
            "A memdex update of the table with capture triggers: {} of one without (the triggers' `WHEN` \
             queues nothing for memdex's session).",
            format_ratio(with, without)
        ));
    }
    // The outside UPDATEs' changes, applied and removed.
    if let Ok(w) = &captured {
        while w.drain().is_ok_and(|n| n > 0) {}
    }
}

fn build_cost(cfg: &Config) -> Section {
    let mut section = Section::new(SECTIONS[5]);
    let root = cfg.workspace.join("target/bench-build");
    let target_dir = cfg.workspace.join("target");
    let mut table = Table::new(["crate", "queries", "lines", "compile time (crate only)"]);
    let mut times = Vec::new();
    for flavour in [buildcost::Flavour::Select, buildcost::Flavour::Closures] {
        let lines = buildcost::lib_source(flavour, cfg.build_queries).lines().count();
        let result = buildcost::generate(&root, &cfg.workspace, flavour, cfg.build_queries)
            .map_err(|e| e.to_string())
            .and_then(|dir| {
                if cfg.build_runs == 0 {
                    Ok(None)
                } else {
                    buildcost::time_build(&dir, &target_dir, flavour, cfg.build_runs).map(Some)
                }
            });
        let shown = match &result {
            Ok(Some(t)) => {
                let best = t.iter().copied().fold(f64::INFINITY, f64::min);
                times.push(best);
                format!("{best:.1} s")
            }
            Ok(None) => "generated, not built (smoke run)".into(),
            Err(e) => format!("unavailable: {}", e.lines().last().unwrap_or_default()),
        };
        table.row([flavour.package().to_owned(), cfg.build_queries.to_string(), lines.to_string(), shown]);
    }
    section.tables.push(table);
    if let [select, closures] = times[..] {
        section.note(format!(
            "select! ÷ closures: {} ({:.1} ms more per query).",
            format_ratio(select, closures),
            (select - closures) * 1000.0 / cfg.build_queries.max(1) as f64
        ));
    }
    section.note(
        "`cargo build` (debug) of each crate after its dependencies were built; the crate's own artifacts are \
         removed before the timed build, so it compiles from scratch. Both crates derive the same Model; only \
         the 100 functions differ.",
    );
    section
}

/// Writes the Markdown report and the SVG chart (creating their directories).
pub fn write_files(
    report: &Report,
    markdown: &std::path::Path,
    svg: &std::path::Path,
    svg_link: &str,
) -> Result<(), String> {
    for path in [markdown, svg] {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
    }
    report.write_svg(svg)?;
    std::fs::write(markdown, report.to_markdown(Some(svg_link))).map_err(|e| format!("{}: {e}", markdown.display()))
}

/// What `--hot-loop` measures besides the plain hot query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HotLoop {
    /// Fetches per measured case.
    pub iterations: usize,
    /// Also measure a store sharded over this many memcached servers (1: none).
    pub servers: usize,
    /// Also measure a disjunction over this many 10-object nodes (0 or 1: none).
    pub disjuncts: usize,
}

/// Medians (ns per fetch) of one `--hot-loop` run; `None` where not measured.
#[derive(Clone, Debug, Default)]
pub struct HotLoopResult {
    pub memdex: f64,
    pub floor: f64,
    pub sharded: Option<f64>,
    pub disjuncts: Option<(f64, f64)>,
    /// One `update` of a hot item (SQLite in memory and one cache batch).
    pub update: f64,
    /// The same hot query through `fetch_async` on a current-thread runtime.
    pub asynchronous: f64,
}

/// For profilers and quick before/after comparisons: the hot query of section 1 on
/// memcached and SQLite in memory (the hot path never reaches the database), and the
/// floor probe over the same keys, interleaved in rounds of 100 so that a change of
/// machine load hits both alike. Optionally the same query on a store sharded over
/// several servers, and a disjunction next to its own floor. Returns medians.
pub fn hot_loop(cfg: &Config, spec: HotLoop) -> Result<HotLoopResult, String> {
    // The sharded store gets servers of its own: two stores on separate in-memory
    // databases must not share cache keys (one's fills and lazy removals would be
    // the other's stale data).
    // The async store, too, has a server of its own (the last).
    let count = if spec.servers > 1 { 2 + spec.servers } else { 2 };
    let servers: Vec<servers::Memcached> =
        (0..count).map(|_| servers::Memcached::start(64).map_err(|e| e.to_string())).collect::<Result<_, _>>()?;
    let addrs: Vec<String> = servers.iter().map(|m| m.addr()).collect();
    let mut layout = vec![(HOT, cfg.hot_objects)];
    let categories: Vec<i64> =
        if spec.disjuncts > 1 { (0..spec.disjuncts as i64).map(|i| DISJUNCT_BASE + i).collect() } else { Vec::new() };
    layout.extend(categories.iter().map(|&c| (c, cfg.objects_per_disjunct)));
    let data = Dataset::new(&layout);
    let b = memdex_side::open(&DbTarget::SqliteInMemory, &addrs[..1])?;
    b.load(&data.rows)?;
    b.hot(HOT)?;
    let (node_keys, object_keys) = memdex_side::keys(HOT, data.ids(HOT));
    let mut probe = raw::FloorProbe::new(&addrs[0], &node_keys, &object_keys).map_err(|e| e.to_string())?;
    let (addrs, async_addr) = addrs.split_at(addrs.len() - 1);
    let asynchronous = memdex_side::open_async(&DbTarget::SqliteInMemory, async_addr, 0)?;
    asynchronous.load(&data.rows)?;
    asynchronous.hot(HOT)?;
    let sharded = if addrs.len() > 1 {
        let s = memdex_side::open(&DbTarget::SqliteInMemory, &addrs[1..])?;
        s.load(&data.rows)?;
        s.hot(HOT)?;
        Some(s)
    } else {
        None
    };
    let disjunct = if categories.is_empty() {
        None
    } else {
        let q = b.prepare_any_of(&categories)?;
        b.any_of(&q)?;
        let (mut nodes, mut objects) = (Vec::new(), Vec::new());
        for &c in &categories {
            let (n, o) = memdex_side::keys(c, data.ids(c));
            nodes.extend(n);
            objects.extend(o);
        }
        let probe = raw::FloorProbe::new(&addrs[0], &nodes, &objects).map_err(|e| e.to_string())?;
        Some((q, probe))
    };
    let mut disjunct = disjunct;

    let time = |f: &mut dyn FnMut() -> Result<(), String>, samples: &mut Vec<f64>| -> Result<(), String> {
        let t = Instant::now();
        f()?;
        samples.push(t.elapsed().as_nanos() as f64);
        Ok(())
    };
    let (mut m, mut f, mut sh, mut dm, mut df) = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut asynchronous_samples = Vec::new();
    let mut updates = Vec::new();
    let mut updated = data.rows.iter().find(|r| r.category_id == HOT).cloned().ok_or("no hot row")?;
    const ROUND: usize = 100;
    let mut done = 0;
    while done < spec.iterations {
        let n = ROUND.min(spec.iterations - done);
        for _ in 0..n {
            time(&mut || b.hot(HOT).map(drop), &mut m)?;
        }
        for _ in 0..n {
            time(&mut || probe.run().map(drop).map_err(|e| e.to_string()), &mut f)?;
        }
        for _ in 0..n {
            time(&mut || asynchronous.hot(HOT).map(drop), &mut asynchronous_samples)?;
        }
        if let Some(s) = &sharded {
            for _ in 0..n {
                time(&mut || s.hot(HOT).map(drop), &mut sh)?;
            }
        }
        if let Some((q, p)) = &mut disjunct {
            for _ in 0..n {
                time(&mut || b.any_of(q).map(drop), &mut dm)?;
            }
            for _ in 0..n {
                time(&mut || p.run().map(drop).map_err(|e| e.to_string()), &mut df)?;
            }
        }
        // A few writes per round; the hot fetch after each refills the one object.
        for _ in 0..n / 10 {
            updated.price += 0.25;
            time(&mut || b.update_price(&updated), &mut updates)?;
        }
        done += n;
    }
    // Only a complete answer in one cache round trip (the node; its objects come
    // from the near cache) and no database query is the hot fetch this loop measures.
    for (store, label) in [(Some(&b), "memdex"), (sharded.as_ref(), "sharded memdex")] {
        if let Some(store) = store {
            one_round_trip(label, cfg.hot_objects, || {
                let before = store.counters();
                let rows = store.hot(HOT)?;
                Ok((rows, before, store.counters()))
            })?;
        }
    }
    one_round_trip("async memdex", cfg.hot_objects, || {
        let before = asynchronous.counters();
        let rows = asynchronous.hot(HOT)?;
        Ok((rows, before, asynchronous.counters()))
    })?;
    let median = |v: Vec<f64>| Summary::of(v).map_or(f64::NAN, |s| s.median_ns);
    Ok(HotLoopResult {
        memdex: median(m),
        floor: median(f),
        sharded: sharded.is_some().then(|| median(sh)),
        disjuncts: disjunct.is_some().then(|| (median(dm), median(df))),
        update: median(updates),
        asynchronous: median(asynchronous_samples),
    })
}
