//! An exploration aid for the differential harness, not a check: runs random cases
//! without stopping or shrinking, and prints the first line of every disagreement,
//! to survey at once what is wrong after a change (docs/soak.md).
//!
//! ```text
//! MEMDEX_DIFF_CASES=300 MEMDEX_DIFF_SEED=3 cargo run -p memdex-tests --bin diff-explore
//! ```
//!
//! It needs what the differential test needs: memcached and PostgreSQL 15 installed.
//! The exit status is the number of disagreeing queries (capped at 255), so a script
//! can tell a clean survey from one that found something.

use memdex_tests::differential::query::{case, ev_b};
use memdex_tests::differential::{Coverage, Row, World, env_u64, probe};
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

fn main() {
    // `exit` runs no destructors: the survey returns first, so that the world's
    // memcached servers and databases are stopped and dropped before the process ends.
    let disagreements = survey();
    std::process::exit(disagreements.min(255) as i32);
}

/// Runs the cases and prints every disagreement; returns how many queries disagreed.
fn survey() -> u32 {
    let mut world = World::new(Coverage::Full);
    let seed = env_u64("MEMDEX_DIFF_SEED", 1);
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let mut runner = TestRunner::new_with_rng(Config::default(), TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes));
    let strategy = case();
    let cases = env_u64("MEMDEX_DIFF_CASES", 200);
    let mut disagreements = 0u32;
    for n in 0..cases {
        let Ok(tree) = strategy.new_tree(&mut runner) else { continue };
        let case = tree.current();
        // Rows with the same id: the last one wins, as in a table.
        let mut rows: Vec<Row> = Vec::new();
        for r in case.rows {
            rows.retain(|x| x.id != r.id);
            rows.push(r);
        }
        if let Err(e) = world.load(&rows) {
            println!("case {n}: load: {}", e.lines().next().unwrap_or(""));
            continue;
        }
        for q in &case.queries {
            if let Err(e) = probe(&mut world, &q.probe(), &|r| ev_b(&q.pred, r)) {
                disagreements += 1;
                report(n, &e);
            }
        }
    }
    println!("{cases} cases (seed {seed}): {disagreements} disagreeing queries");
    disagreements
}

/// One line per disagreement (the query, its lane, and the line that says what
/// went wrong), and the whole message when it lists rows.
fn report(case: u64, message: &str) {
    let lines: Vec<&str> = message.lines().collect();
    let says_what = ["SQL failed", "expected", "error", "rejected"];
    let tail = lines.iter().rev().find(|l| says_what.iter().any(|w| l.contains(w))).unwrap_or(&"");
    println!("case {case}: {} | {} | {}", lines.first().unwrap_or(&""), lines.get(1).unwrap_or(&""), tail);
    if message.contains("got ids") || message.contains("differs") {
        println!("{message}\n----");
    }
}
