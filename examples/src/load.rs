//! The load generator's core (`cargo run --release --example load`): the shop
//! service started in this process once per read path, N concurrent HTTP clients on
//! a Zipf-distributed read/write mix against each in turn, and what they measured —
//! requests per second, latency percentiles, and database queries per 1,000
//! requests from the store's own counters — as a text table and an SVG chart.
//!
//! The peers run one after the other, not at once, so that neither takes CPU from
//! the other; each has its own store and is warmed up before it is measured.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use memdex::StoreBuilder;
use plotters::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Zipf};
use serde_json::json;
use tokio::net::TcpListener;

use crate::service::{self, ReadPath, Seed, Shop};

/// What to run.
#[derive(Clone, Debug)]
pub struct LoadConfig {
    /// Concurrent HTTP clients, each sending one request at a time.
    pub clients: usize,
    /// How long each peer is measured.
    pub duration: Duration,
    /// How long each peer runs the same load first, unmeasured (fills the cache).
    pub warmup: Duration,
    /// The share of requests that are writes (a move of an item to another category).
    pub write_ratio: f64,
    /// The Zipf exponent of the item, category and cart choices (1 and above: a few
    /// hot keys take most requests).
    pub zipf_exponent: f64,
    /// The sample data each peer's store starts with.
    pub seed: Seed,
}

impl Default for LoadConfig {
    fn default() -> LoadConfig {
        LoadConfig {
            clients: 16,
            duration: Duration::from_secs(10),
            warmup: Duration::from_secs(2),
            write_ratio: 0.05,
            zipf_exponent: 1.1,
            seed: Seed::default(),
        }
    }
}

impl LoadConfig {
    /// Why this configuration cannot run, if it cannot.
    ///
    /// # Errors
    ///
    /// A sentence naming the value that is out of range.
    pub fn check(&self) -> Result<(), String> {
        if self.clients == 0 {
            return Err("--clients must be at least 1".into());
        }
        if !(0.0..=1.0).contains(&self.write_ratio) {
            return Err(format!("--write-ratio must be between 0 and 1, not {}", self.write_ratio));
        }
        if self.duration.is_zero() {
            return Err("--seconds must be above 0".into());
        }
        if self.zipf_exponent.is_nan() || self.zipf_exponent <= 0.0 {
            return Err(format!("the Zipf exponent must be above 0, not {}", self.zipf_exponent));
        }
        let seed = &self.seed;
        if seed.items < 1 || seed.categories < 1 || seed.carts < 1 || seed.lines_per_cart < 1 {
            return Err("the sample data needs at least one item, category, cart and cart line".into());
        }
        Ok(())
    }
}

/// What one peer served while it was measured.
#[derive(Clone, Debug)]
pub struct PeerReport {
    /// "memdex" or "no cache".
    pub name: String,
    /// How its reads were answered.
    pub reads: ReadPath,
    /// Its database and cache, as the store describes them.
    pub store: String,
    /// Requests answered with a 2xx status.
    pub requests: u64,
    /// Requests that failed (a transport error or a status other than 2xx).
    pub errors: u64,
    /// What the first failure said, for the report.
    pub first_error: Option<String>,
    /// How long the measurement ran.
    pub elapsed: Duration,
    /// The latency of every successful request in µs, ascending.
    pub latencies_us: Vec<u32>,
    /// SQL statements the store sent while measured (`Stats::db_queries`).
    pub db_queries: u64,
    /// Node, object and near-cache hits while measured.
    pub cache_hits: u64,
}

impl PeerReport {
    /// Successful requests per second.
    pub fn requests_per_second(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The latency below which `percent` % of the requests finished, in ms.
    pub fn percentile_ms(&self, percent: f64) -> f64 {
        let n = self.latencies_us.len();
        if n == 0 {
            return 0.0;
        }
        let rank = ((percent / 100.0) * n as f64).ceil() as usize;
        f64::from(self.latencies_us[rank.clamp(1, n) - 1]) / 1000.0
    }

    /// Database queries per 1,000 requests.
    pub fn db_queries_per_1000(&self) -> f64 {
        self.db_queries as f64 * 1000.0 / (self.requests.max(1)) as f64
    }

    /// Cache hits per request.
    pub fn hits_per_request(&self) -> f64 {
        self.cache_hits as f64 / (self.requests.max(1)) as f64
    }
}

/// Both peers' figures.
#[derive(Clone, Debug)]
pub struct LoadReport {
    pub config: LoadConfig,
    pub peers: Vec<PeerReport>,
}

/// The read paths compared, in the order they run, with their names in the report.
pub const PEERS: [(&str, ReadPath); 2] = [("no cache", ReadPath::Database), ("memdex", ReadPath::Cache)];

/// Runs the load against one service per read path. `store_for` gives each peer's
/// store builder; each store is seeded (when its item table is empty), served on a
/// free loopback port, warmed up, measured, and stopped before the next starts.
///
/// # Errors
///
/// A sentence saying which step failed: the configuration, the store, the seed,
/// the listener or the server.
pub async fn run(config: &LoadConfig, store_for: impl Fn(ReadPath) -> StoreBuilder) -> Result<LoadReport, String> {
    config.check()?;
    let mut peers = Vec::new();
    for (name, reads) in PEERS {
        peers.push(run_peer(config, name, reads, store_for(reads)).await?);
    }
    Ok(LoadReport { config: config.clone(), peers })
}

async fn run_peer(
    config: &LoadConfig,
    name: &str,
    reads: ReadPath,
    builder: StoreBuilder,
) -> Result<PeerReport, String> {
    let store = builder.build_async().await.map_err(|e| format!("{name}: the store does not open: {e}"))?;
    service::migrate(&store).await.map_err(|e| format!("{name}: migrate: {e}"))?;
    service::seed(&store, &config.seed).await.map_err(|e| format!("{name}: seed: {e}"))?;
    let listener = TcpListener::bind("127.0.0.1:0").await.map_err(|e| format!("{name}: listen: {e}"))?;
    let running = service::spawn(listener, Shop::new(store.clone(), reads)).map_err(|e| format!("{name}: {e}"))?;
    let mix = Arc::new(Mix::new(config)?);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(config.clients)
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| format!("the HTTP client: {e}"))?;
    let base = running.url();

    drive(&http, &base, &mix, config.clients, config.warmup, 0).await;
    let before = store.stats();
    let started = Instant::now();
    let tally = drive(&http, &base, &mix, config.clients, config.duration, 1).await;
    let elapsed = started.elapsed();
    let after = store.stats();
    running.stop().await.map_err(|e| format!("{name}: the server failed: {e}"))?;

    let hits = |s: &memdex::Stats| s.node_hits + s.object_hits + s.near_hits;
    Ok(PeerReport {
        name: name.to_owned(),
        reads,
        store: store.describe(),
        requests: tally.latencies_us.len() as u64,
        errors: tally.errors,
        first_error: tally.first_error,
        elapsed,
        latencies_us: tally.latencies_us,
        db_queries: after.db_queries - before.db_queries,
        cache_hits: hits(&after) - hits(&before),
    })
}

/// What the clients of one phase saw.
#[derive(Debug, Default)]
struct Tally {
    latencies_us: Vec<u32>,
    errors: u64,
    first_error: Option<String>,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.latencies_us.extend(other.latencies_us);
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

/// Runs `clients` clients for `duration` and gathers their tallies, latencies
/// sorted. `phase` varies the random choices between warm-up and measurement.
async fn drive(
    http: &reqwest::Client,
    base: &str,
    mix: &Arc<Mix>,
    clients: usize,
    duration: Duration,
    phase: u64,
) -> Tally {
    let until = Instant::now() + duration;
    let tasks: Vec<_> = (0..clients)
        .map(|i| {
            let rng = StdRng::seed_from_u64(phase * 1_000_003 + i as u64);
            tokio::spawn(client(http.clone(), base.to_owned(), mix.clone(), rng, until))
        })
        .collect();
    let mut tally = Tally::default();
    for task in tasks {
        match task.await {
            Ok(client_tally) => tally.merge(client_tally),
            Err(e) => {
                tally.errors += 1;
                tally.first_error.get_or_insert_with(|| format!("a client task failed: {e}"));
            }
        }
    }
    tally.latencies_us.sort_unstable();
    tally
}

/// One client: a request at a time until `until`.
async fn client(http: reqwest::Client, base: String, mix: Arc<Mix>, mut rng: StdRng, until: Instant) -> Tally {
    let mut tally = Tally::default();
    while Instant::now() < until {
        let request = mix.next(&mut rng);
        let started = Instant::now();
        match send(&http, &base, &request).await {
            Ok(()) => tally.latencies_us.push(u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX)),
            Err(e) => {
                tally.errors += 1;
                tally.first_error.get_or_insert(e);
            }
        }
    }
    tally
}

/// One request of the mix.
#[derive(Clone, Copy, Debug)]
enum Request {
    Item(i64),
    CategoryPage { category: i64, offset: u64 },
    CartPage { cart: i64, offset: u64 },
    Move { item: i64, category: i64 },
}

/// Rows per page the clients ask for.
const PAGE: u64 = 20;

/// Sends a request and reads its whole body; anything but a 2xx is an error.
async fn send(http: &reqwest::Client, base: &str, request: &Request) -> Result<(), String> {
    let builder = match *request {
        Request::Item(id) => http.get(format!("{base}/items/{id}")),
        Request::CategoryPage { category, offset } => {
            http.get(format!("{base}/categories/{category}/items?limit={PAGE}&offset={offset}"))
        }
        Request::CartPage { cart, offset } => http.get(format!("{base}/carts/{cart}?limit={PAGE}&offset={offset}")),
        Request::Move { item, category } => {
            http.post(format!("{base}/items/{item}/move")).json(&json!({ "category_id": category }))
        }
    };
    let response = builder.send().await.map_err(|e| format!("{request:?}: {e}"))?;
    let status = response.status();
    let body = response.bytes().await.map_err(|e| format!("{request:?}: reading the body: {e}"))?;
    if !status.is_success() {
        return Err(format!("{request:?}: {status}: {}", String::from_utf8_lossy(&body)));
    }
    Ok(())
}

/// The request mix: writes with probability `write_ratio`; reads are half single
/// items, 30 % category pages and 20 % cart pages. Items, categories and carts are
/// drawn by Zipf rank (rank 1, the hottest, is id 1).
///
/// A write moves a Zipf-drawn item to a category drawn uniformly. Were the target
/// drawn by Zipf too, the hot categories would swallow the moved items and grow
/// without bound over a run, measuring that drift rather than the service; uniform
/// targets keep every category near its seeded size.
#[derive(Debug)]
struct Mix {
    items: Zipf<f64>,
    categories: Zipf<f64>,
    carts: Zipf<f64>,
    category_count: i64,
    write_ratio: f64,
    category_pages: u64,
    cart_pages: u64,
}

impl Mix {
    fn new(config: &LoadConfig) -> Result<Mix, String> {
        let zipf = |n: i64| Zipf::new(n.max(1) as u64, config.zipf_exponent).map_err(|e| format!("Zipf: {e}"));
        let seed = &config.seed;
        // Pages that hold rows at the seeded sizes (categories change size as items
        // move, so a late page may come back short or empty: still a valid read).
        let pages = |rows: i64| (rows.max(1) as u64).div_ceil(PAGE);
        Ok(Mix {
            items: zipf(seed.items)?,
            categories: zipf(seed.categories)?,
            carts: zipf(seed.carts)?,
            category_count: seed.categories.max(1),
            write_ratio: config.write_ratio,
            category_pages: pages(seed.items / seed.categories.max(1)),
            cart_pages: pages(seed.lines_per_cart),
        })
    }

    fn next(&self, rng: &mut StdRng) -> Request {
        let rank = |zipf: &Zipf<f64>, rng: &mut StdRng| zipf.sample(rng) as i64;
        if rng.gen_bool(self.write_ratio) {
            return Request::Move { item: rank(&self.items, rng), category: rng.gen_range(1..=self.category_count) };
        }
        match rng.gen_range(0..10) {
            0..=4 => Request::Item(rank(&self.items, rng)),
            5..=7 => Request::CategoryPage {
                category: rank(&self.categories, rng),
                offset: rng.gen_range(0..self.category_pages) * PAGE,
            },
            _ => Request::CartPage { cart: rank(&self.carts, rng), offset: rng.gen_range(0..self.cart_pages) * PAGE },
        }
    }
}

// ---------------------------------------------------------------------------
// Reporting

/// A row of the text table: its label and how a peer's cell is written.
type Row = (&'static str, fn(&PeerReport) -> String);

impl LoadReport {
    /// The figures side by side, and what each peer is.
    pub fn text(&self) -> String {
        let c = &self.config;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{} clients, {:.1} s measured per peer after {:.1} s of warm-up; write ratio {}; Zipf s = {} over {} items in {} categories and {} carts of {} lines",
            c.clients,
            c.duration.as_secs_f64(),
            c.warmup.as_secs_f64(),
            c.write_ratio,
            c.zipf_exponent,
            c.seed.items,
            c.seed.categories,
            c.seed.carts,
            c.seed.lines_per_cart
        );
        let _ = writeln!(
            out,
            "mix: 50 % item by id, 30 % category page, 20 % cart page (20 rows); a write moves an item to a random category"
        );
        let _ = writeln!(
            out,
            "cache hits count index nodes and objects (a category page reads every object its node lists)\n"
        );
        let rows: [Row; 8] = [
            ("requests", |p| p.requests.to_string()),
            ("requests/s", |p| format!("{:.0}", p.requests_per_second())),
            ("p50 latency (ms)", |p| format!("{:.2}", p.percentile_ms(50.0))),
            ("p90 latency (ms)", |p| format!("{:.2}", p.percentile_ms(90.0))),
            ("p99 latency (ms)", |p| format!("{:.2}", p.percentile_ms(99.0))),
            ("DB queries / 1,000 requests", |p| format!("{:.0}", p.db_queries_per_1000())),
            ("cache hits / request", |p| format!("{:.1}", p.hits_per_request())),
            ("errors", |p| p.errors.to_string()),
        ];
        let _ = write!(out, "{:<30}", "");
        for peer in &self.peers {
            let _ = write!(out, "{:>16}", peer.name);
        }
        let _ = writeln!(out);
        for (label, value) in rows {
            let _ = write!(out, "{label:<30}");
            for peer in &self.peers {
                let _ = write!(out, "{:>16}", value(peer));
            }
            let _ = writeln!(out);
        }
        let _ = writeln!(out);
        for peer in &self.peers {
            let _ = writeln!(out, "{}: {} on {}", peer.name, peer.reads.describe(), peer.store);
            if let Some(error) = &peer.first_error {
                let _ = writeln!(out, "  first error: {error}");
            }
        }
        out
    }

    /// Draws requests/s per peer (left) and the latency percentiles of each (right).
    ///
    /// # Errors
    ///
    /// The SVG backend's error, as text.
    pub fn write_svg(&self, path: &Path) -> Result<(), String> {
        let root = SVGBackend::new(path, (1000, 420)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let (left, right) = root.split_horizontally(380);
        draw_throughput(&left, &self.peers).map_err(|e| e.to_string())?;
        draw_latency(&right, &self.peers).map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())
    }
}

type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;
type DrawResult = Result<(), DrawingAreaErrorKind<<SVGBackend<'static> as DrawingBackend>::ErrorType>>;

const PALETTE: [RGBColor; 2] = [RGBColor(127, 127, 127), RGBColor(31, 119, 180)];

fn draw_throughput(area: &Area<'_>, peers: &[PeerReport]) -> DrawResult {
    let top = peers.iter().map(PeerReport::requests_per_second).fold(1.0, f64::max) * 1.2;
    let n = peers.len().max(1);
    let mut chart = ChartBuilder::on(area)
        .caption("requests/s", ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..n as f64, 0f64..top)?;
    let names: Vec<String> = peers.iter().map(|p| p.name.clone()).collect();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n * 2 + 1)
        .x_label_formatter(&|x| {
            let i = x.floor() as usize;
            if (x - i as f64 - 0.5).abs() < 0.01 { names.get(i).cloned().unwrap_or_default() } else { String::new() }
        })
        .draw()?;
    for (i, peer) in peers.iter().enumerate() {
        let (x, rps) = (i as f64, peer.requests_per_second());
        let colour = PALETTE[i % PALETTE.len()];
        chart.draw_series(std::iter::once(Rectangle::new([(x + 0.2, 0.0), (x + 0.8, rps)], colour.filled())))?;
        chart.draw_series(std::iter::once(Text::new(
            format!("{rps:.0}"),
            (x + 0.3, rps + top * 0.02),
            ("sans-serif", 13),
        )))?;
    }
    Ok(())
}

/// The percentiles drawn, evenly spaced on the x axis.
const PERCENTILES: [f64; 7] = [50.0, 75.0, 90.0, 95.0, 99.0, 99.9, 100.0];

fn draw_latency(area: &Area<'_>, peers: &[PeerReport]) -> DrawResult {
    let values = peers.iter().flat_map(|p| PERCENTILES.iter().map(|&q| p.percentile_ms(q)));
    let top = values.clone().fold(0.01, f64::max) * 1.5;
    let bottom = values.fold(top, f64::min).max(0.001) / 1.5;
    let mut chart = ChartBuilder::on(area)
        .caption("latency by percentile (ms, log)", ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d(-0.5f64..PERCENTILES.len() as f64 - 0.5, (bottom..top).log_scale())?;
    chart
        .configure_mesh()
        .x_labels(PERCENTILES.len())
        .x_label_formatter(&|x| {
            let i = x.round();
            let label = PERCENTILES.get(i as usize).filter(|_| (x - i).abs() < 0.01 && i >= 0.0);
            label.map(|q| if *q == 100.0 { "max".to_owned() } else { format!("p{q}") }).unwrap_or_default()
        })
        .y_desc("ms")
        .draw()?;
    for (i, peer) in peers.iter().enumerate() {
        let colour = PALETTE[i % PALETTE.len()];
        let points: Vec<(f64, f64)> =
            PERCENTILES.iter().enumerate().map(|(x, &q)| (x as f64, peer.percentile_ms(q).max(bottom))).collect();
        chart
            .draw_series(LineSeries::new(points.iter().copied(), colour.stroke_width(2)))?
            .label(peer.name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2)));
        chart.draw_series(points.iter().map(|&p| Circle::new(p, 3, colour.filled())))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}
