//! The memdex benchmark report: `cargo run --release -p memdex-examples --example bench`.
//!
//! Starts its own memcached and PostgreSQL on loopback, prints a table of medians and
//! ratios, and writes the same as `BENCHMARKS.md` and `docs/bench/bench.svg` at the
//! workspace root. `--tiny` runs the smoke-test sizes and writes under `target/`
//! instead; `--out DIR` writes the report files into DIR; `--hot-loop N` only runs
//! the hot query N times next to its floor and prints both medians (for profilers and
//! quick comparisons); with `--servers S` also on a store sharded over S servers, with
//! `--disjuncts D` also a D-way disjunction next to its floor. `--no-build-cost`
//! skips timing the two from-scratch builds of the build-cost section. `--cpu-split N`
//! only runs the two-round-trip path (near cache off) N times next to its floor and
//! splits each side's CPU time between the client and memcached. `--writes` only runs
//! the writes section (memdex's update against a plain PostgreSQL UPDATE); `--pages`
//! only the paging section (a page of a cart on an ordered index against its peers);
//! `--page-loop N` only that page and a hot 10-line cart, N times each (for profilers).

use memdex_examples::bench;

use std::path::PathBuf;

fn main() -> std::process::ExitCode {
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let workspace = workspace.canonicalize().unwrap_or(workspace);
    let mut tiny = false;
    let mut out: Option<PathBuf> = None;
    let mut hot_loop: Option<usize> = None;
    let mut hot_servers = 1;
    let mut hot_disjuncts = 0;
    let mut build_cost = true;
    let mut cpu_split: Option<usize> = None;
    let mut writes_only = false;
    let mut pages_only = false;
    let mut page_loop: Option<usize> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--tiny" => tiny = true,
            "--out" => out = args.next().map(PathBuf::from),
            "--hot-loop" => hot_loop = args.next().and_then(|n| n.parse().ok()),
            "--servers" => hot_servers = args.next().and_then(|n| n.parse().ok()).unwrap_or(1),
            "--disjuncts" => hot_disjuncts = args.next().and_then(|n| n.parse().ok()).unwrap_or(0),
            "--no-build-cost" => build_cost = false,
            "--cpu-split" => cpu_split = args.next().and_then(|n| n.parse().ok()),
            "--writes" => writes_only = true,
            "--pages" => pages_only = true,
            "--page-loop" => page_loop = args.next().and_then(|n| n.parse().ok()),
            "--bench" => {} // passed by `cargo bench`
            other => {
                eprintln!(
                    "unknown argument {other:?}; usage: bench [--tiny] [--out DIR] [--no-build-cost] [--hot-loop N [--servers S] [--disjuncts D]] [--cpu-split N] [--writes] [--pages] [--page-loop N]"
                );
                return std::process::ExitCode::FAILURE;
            }
        }
    }
    let mut cfg = if tiny { bench::Config::tiny(workspace.clone()) } else { bench::Config::full(workspace.clone()) };
    if !build_cost {
        // The build-cost section compiles two crates from scratch (minutes on two
        // cores); this generates them without timing a build.
        cfg.build_runs = 0;
    }
    if writes_only {
        print!("{}", bench::writes_only(&cfg).to_text());
        return std::process::ExitCode::SUCCESS;
    }
    if let Some(n) = page_loop {
        return match bench::paging::page_loop(n) {
            Ok((page, small)) => {
                println!(
                    "page of 10 of a 1,000-line cart: {:.1} µs; hot 10-line cart: {:.1} µs ({:.2}x)",
                    page / 1e3,
                    small / 1e3,
                    page / small
                );
                std::process::ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("page loop: {e}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    if pages_only {
        print!("{}", bench::pages_only(&cfg).to_text());
        return std::process::ExitCode::SUCCESS;
    }
    if let Some(n) = cpu_split {
        return match bench::cpu_split::two_round_trips(cfg.hot_objects, n) {
            Ok(s) => {
                println!("two round trips x{n}, near cache off: median wall, and CPU per fetch (client + memcached)");
                for (name, side) in [
                    ("memdex", s.memdex),
                    ("pipelined mg floor", s.pipelined),
                    ("classic get floor", s.classic),
                    ("classic + decoding", s.classic_decoding),
                ] {
                    println!(
                        "  {name:<20} {:>7.1} µs  ({:.2}x classic)   CPU {:>6.1} + {:>5.1} µs",
                        side.median,
                        side.median / s.classic.median,
                        side.client_cpu,
                        side.memcached_cpu
                    );
                }
                std::process::ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("cpu split: {e}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    if let Some(n) = hot_loop {
        // For profilers (callgrind, perf): only the hot query, n times.
        let spec = bench::HotLoop { iterations: n, servers: hot_servers, disjuncts: hot_disjuncts };
        return match bench::hot_loop(&cfg, spec) {
            Ok(r) => {
                let us = |ns: f64| ns / 1000.0;
                println!(
                    "hot loop x{n} (medians): memdex {:.1} µs, floor {:.1} µs, ratio {:.2}x",
                    us(r.memdex),
                    us(r.floor),
                    r.memdex / r.floor
                );
                println!(
                    "  async: {:.1} µs ({:.2}x the blocking fetch)",
                    us(r.asynchronous),
                    r.asynchronous / r.memdex
                );
                println!("  update: {:.1} µs", us(r.update));
                if let Some(s) = r.sharded {
                    println!(
                        "  {hot_servers} servers: memdex {:.1} µs ({:.2}x the 1-server floor)",
                        us(s),
                        s / r.floor
                    );
                }
                if let Some((m, f)) = r.disjuncts {
                    println!(
                        "  {hot_disjuncts} disjuncts: memdex {:.1} µs, floor {:.1} µs, ratio {:.2}x",
                        us(m),
                        us(f),
                        m / f
                    );
                }
                std::process::ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("hot loop failed: {e}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    let (markdown_path, svg_path, svg_link) = match (&out, tiny) {
        (Some(dir), _) => (dir.join("BENCHMARKS.md"), dir.join("bench.svg"), "bench.svg".to_owned()),
        (None, true) => {
            let dir = workspace.join("target/bench-report");
            (dir.join("BENCHMARKS.md"), dir.join("bench.svg"), "bench.svg".to_owned())
        }
        (None, false) => {
            (workspace.join("BENCHMARKS.md"), workspace.join("docs/bench/bench.svg"), "docs/bench/bench.svg".to_owned())
        }
    };
    let mut report = bench::run(&cfg);
    report.appendix = std::fs::read_to_string(workspace.join("docs/bench/profile.md")).ok();
    println!("{}", report.to_text());
    match bench::write_files(&report, &markdown_path, &svg_path, &svg_link) {
        Ok(()) => {
            println!("\nwrote {} and {}", markdown_path.display(), svg_path.display());
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("could not write the report: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
