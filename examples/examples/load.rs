//! The load generator: `cargo run --release --example load [-- --clients 16
//! --seconds 10 --write-ratio 0.05 --warmup 2 --svg target/load.svg]`.
//!
//! It starts the shop service in this process twice, one after the other — once
//! reading through memdex's cache, once reading every row from the database with
//! `scan!` (the same handlers, the same writes) — drives each with concurrent HTTP
//! clients on a Zipf-distributed read/write mix, and prints requests/s, p50/p99
//! latency and database queries per 1,000 requests side by side, and draws them in
//! one SVG chart.
//!
//! Each peer gets its own SQLite file under the temporary directory (deleted at the
//! end), seeded alike. `MEMDEX_DATABASE_URL=postgres://…` runs both on that database
//! instead (seeded when its item table is empty; the peers run in turn, each with
//! its own cache namespace). The memdex peer uses memcached when `MEMDEX_MEMCACHED`
//! names servers or one answers on 127.0.0.1:11211, else the in-process cache.

use std::path::PathBuf;
use std::time::Duration;

use memdex::{Store, StoreBuilder};
use memdex_examples::load::{self, LoadConfig};
use memdex_examples::service::{self, ReadPath};

/// The SQLite file of one peer when no database is configured.
fn private_file(reads: ReadPath) -> Option<PathBuf> {
    service::private_database()?;
    Some(std::env::temp_dir().join(format!("memdex-load-{}-{reads:?}.db", std::process::id())))
}

/// The store of one peer. The peer without a cache never reads one; its writes
/// still hand their invalidations to an in-process cache, so it gets that (cheapest)
/// one rather than a memcached.
fn store_for(reads: ReadPath) -> StoreBuilder {
    let builder = match private_file(reads) {
        Some(path) => Store::builder().sqlite(path.to_string_lossy()),
        None => Store::builder(),
    };
    let builder = service::with_local_memcached(builder).from_env();
    let builder = builder.namespace(format!("load-{}-{reads:?}", std::process::id()));
    match reads {
        ReadPath::Cache => builder,
        ReadPath::Database => builder.in_process_cache(),
    }
}

const USAGE: &str = "usage: load [--clients N] [--seconds S] [--warmup S] [--write-ratio R] [--svg PATH]";

/// The configuration and the chart's path from the command line.
fn parse_args() -> Result<(LoadConfig, PathBuf), String> {
    let mut config = LoadConfig::default();
    let mut svg = default_svg();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--help" || flag == "-h" {
            return Err(USAGE.into());
        }
        let value = args.next().ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        let number = |what: &str| value.parse::<f64>().map_err(|_| format!("{what} must be a number, not `{value}`"));
        match flag.as_str() {
            "--clients" => {
                config.clients = value.parse().map_err(|_| format!("--clients must be a count, not `{value}`"))?
            }
            "--seconds" => config.duration = seconds(number("--seconds")?)?,
            "--warmup" => config.warmup = seconds(number("--warmup")?)?,
            "--write-ratio" => config.write_ratio = number("--write-ratio")?,
            "--svg" => svg = PathBuf::from(value),
            other => return Err(format!("unknown option {other}\n{USAGE}")),
        }
    }
    config.check()?;
    Ok((config, svg))
}

fn seconds(value: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(value).map_err(|_| format!("{value} is not a number of seconds"))
}

/// `target/load.svg` of this workspace (or of `CARGO_TARGET_DIR`).
fn default_svg() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join("target"));
    target.join("load.svg")
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (config, svg) = match parse_args() {
        Ok(parsed) => parsed,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    if cfg!(debug_assertions) {
        eprintln!("note: a debug build; figures mean little (use cargo run --release --example load)");
    }
    let report = load::run(&config, store_for).await;
    for reads in [ReadPath::Database, ReadPath::Cache] {
        if let Some(path) = private_file(reads) {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
        }
    }
    let report = report?;
    print!("{}", report.text());
    if let Some(dir) = svg.parent() {
        std::fs::create_dir_all(dir)?;
    }
    report.write_svg(&svg)?;
    println!("chart: {}", svg.display());
    Ok(())
}
