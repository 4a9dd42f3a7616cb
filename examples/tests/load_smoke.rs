//! The load generator's core for about a second: two clients against each peer, on
//! small in-memory stores. It asserts that both peers served requests without an
//! error and that their counters and the report agree with what happened — never
//! a timing.

// Tests fail by panicking, with a message saying what went wrong.
#![allow(clippy::panic, clippy::unwrap_used)]

use std::time::Duration;

use memdex::Store;
use memdex_examples::load::{self, LoadConfig};
use memdex_examples::service::{ReadPath, Seed};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_peers_serve_without_errors() {
    let config = LoadConfig {
        clients: 2,
        duration: Duration::from_millis(400),
        warmup: Duration::from_millis(100),
        write_ratio: 0.1,
        zipf_exponent: 1.1,
        seed: Seed { items: 200, categories: 10, carts: 5, lines_per_cart: 30 },
    };
    let report = load::run(&config, |_| Store::builder().sqlite_in_memory().in_process_cache()).await.unwrap();

    assert_eq!(report.peers.len(), 2);
    for peer in &report.peers {
        assert!(peer.requests > 0, "{} served no request", peer.name);
        assert_eq!(peer.errors, 0, "{}: {:?}", peer.name, peer.first_error);
        assert_eq!(peer.latencies_us.len() as u64, peer.requests);
        assert!(peer.latencies_us.windows(2).all(|w| w[0] <= w[1]), "latencies are sorted");
        assert!(peer.percentile_ms(50.0) <= peer.percentile_ms(99.0));
        assert!(peer.db_queries > 0, "{}: every peer writes, so it asks the database", peer.name);
    }
    let by_path = |reads| report.peers.iter().find(|p| p.reads == reads).unwrap();
    // The peer without a cache reads the database for every request and never hits.
    let direct = by_path(ReadPath::Database);
    assert_eq!(direct.cache_hits, 0);
    assert!(direct.db_queries >= direct.requests, "{} queries for {} requests", direct.db_queries, direct.requests);
    assert!(by_path(ReadPath::Cache).cache_hits > 0, "the memdex peer never hit its cache");

    let text = report.text();
    for row in ["requests/s", "p50 latency", "p99 latency", "DB queries / 1,000 requests", "memdex", "no cache"] {
        assert!(text.contains(row), "{row:?} missing from the report:\n{text}");
    }
    let svg = std::env::temp_dir().join(format!("memdex-load-smoke-{}.svg", std::process::id()));
    report.write_svg(&svg).unwrap();
    let drawn = std::fs::read_to_string(&svg).unwrap();
    let _ = std::fs::remove_file(&svg);
    assert!(drawn.starts_with("<svg") && drawn.contains("memdex"), "the chart names the peers");
}
