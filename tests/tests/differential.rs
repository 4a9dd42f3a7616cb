//! Differential testing: random rows and random queries from the whole language,
//! answered by every path memdex has, each compared with an oracle evaluated over the
//! row struct (both in `memdex_tests::differential`).
//!
//! The CI run is fixed-seed and bounded; a soak run takes its size and seed from the
//! environment (docs/soak.md):
//!
//! ```text
//! MEMDEX_DIFF_CASES=20000 MEMDEX_DIFF_SEED=7 cargo test -p memdex-tests --test differential -- --ignored soak
//! ```

// Tests fail by panicking, with a message saying what went wrong.
#![allow(clippy::panic, clippy::unwrap_used)]

use memdex::Value;
use memdex::grammar::ir::{ArithOp, CmpOp, StrOp};
use memdex_tests::differential::query::*;
use memdex_tests::differential::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};

// ---------------------------------------------------------------------------
// The runs.
// ---------------------------------------------------------------------------

fn run(coverage: Coverage, cases: u32, seed: u64) {
    let world = World::new(coverage);
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let config = Config { cases, failure_persistence: None, max_shrink_iters: 2000, ..Config::default() };
    let mut runner = TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes));
    let too_many = std::cell::Cell::new(0u64);
    let undefined = std::cell::Cell::new(0u64);
    let world = std::cell::RefCell::new(world);
    let result = runner.run(&case(), |case| {
        let mut world = world.borrow_mut();
        // Rows with the same id: the last one wins, as in a table.
        let mut rows: Vec<Row> = Vec::new();
        for r in case.rows {
            rows.retain(|x| x.id != r.id);
            rows.push(r);
        }
        world.load(&rows).map_err(TestCaseError::fail)?;
        for q in &case.queries {
            undefined.set(undefined.get() + u64::from(rows.iter().any(|r| meets_undefined(&q.pred, r))));
            let probe_ = q.probe();
            match probe(&mut world, &probe_, &|r| ev_b(&q.pred, r)) {
                Ok(Outcome::Agreed) => {}
                Ok(Outcome::TooManyDisjuncts) => too_many.set(too_many.get() + 1),
                Err(e) => return Err(TestCaseError::fail(e)),
            }
        }
        Ok(())
    });
    let world = world.into_inner();
    let too_many = too_many.get();
    let s = world.stats;
    eprintln!(
        "differential ({coverage:?}, seed {seed}): {cases} cases, {} queries, {} fetches, {} SQL runs, {} lanes, \
         {too_many} queries over the disjunct limit, {} reading an undefined value (overflow, division by zero, \
         non-finite float) for some row",
        s.queries,
        s.fetches,
        s.sql_runs,
        world.lanes.len(),
        undefined.get()
    );
    if let Err(e) = result {
        panic!("disagreement (seed {seed}):\n{e}");
    }
}

/// The CI run: fixed seed, every lane (SQLite and PostgreSQL, in-process cache and
/// memcached, cache down, emitted SQL on both databases).
#[test]
fn random_queries_agree_on_every_path() {
    run(Coverage::Full, env_u64("MEMDEX_DIFF_CASES", 1000) as u32, env_u64("MEMDEX_DIFF_SEED", 0x5eed));
}

/// The same cases, same seed, on MariaDB (both caches, the cache down, the
/// emitted SQL), in a world of its own so that it runs next to the test above.
/// MariaDB stores no infinity: a row's ±inf price is stored, and seen by the
/// oracle, as ±`f64::MAX` (literal and bound infinities in queries stay).
#[test]
fn random_queries_agree_on_mariadb() {
    run(Coverage::MariaDb, env_u64("MEMDEX_DIFF_CASES", 1000) as u32, env_u64("MEMDEX_DIFF_SEED", 0x5eed));
}

/// The soak run (docs/soak.md): as many cases as `MEMDEX_DIFF_CASES` (default
/// 20 000), seed from `MEMDEX_DIFF_SEED` (default: the clock, printed).
#[test]
#[ignore = "soak run: see docs/soak.md"]
fn soak() {
    let seed = std::env::var("MEMDEX_DIFF_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_secs())
    });
    run(Coverage::Full, env_u64("MEMDEX_DIFF_CASES", 20_000) as u32, seed);
}

/// The oracle itself against hand-computed answers, so that a wrong oracle cannot
/// make every path look right (or wrong) together.
#[test]
fn oracle_knows_rusts_semantics() {
    let r = Row { qty: i64::MAX, name: "Éa".into(), note: None, grp: Some(2), price: -0.0, ..row(1) };
    let lit = |v: i64| I::Leaf(Leaf { v, param: false });
    // Overflow: the comparison is false, and its negation true.
    let overflow = B::CmpI(CmpOp::Gt, I::Arith(ArithOp::Add, Box::new(I::Col(QTY)), Box::new(lit(1))), lit(0));
    assert!(!ev_b(&overflow, &r));
    assert!(ev_b(&B::Not(Box::new(overflow)), &r));
    // Division truncates toward zero; the remainder takes the dividend's sign.
    let div = B::CmpI(CmpOp::Eq, I::Arith(ArithOp::Div, Box::new(lit(-7)), Box::new(lit(2))), lit(-3));
    let rem = B::CmpI(CmpOp::Eq, I::Arith(ArithOp::Rem, Box::new(lit(-7)), Box::new(lit(2))), lit(-1));
    assert!(ev_b(&div, &r) && ev_b(&rem, &r));
    // Floats: a non-finite result is undefined (false, its `not` true); underflow
    // to zero and a stored infinity are values.
    let flit = |v: f64| F::Leaf(Leaf { v, param: false });
    let huge = Row { price: f64::MAX, ..r.clone() };
    let times_two = B::CmpF(CmpOp::Gt, F::Arith(ArithOp::Mul, Box::new(F::Col), Box::new(flit(2.0))), flit(0.0));
    assert!(!ev_b(&times_two, &huge) && ev_b(&B::Not(Box::new(times_two)), &huge));
    let by_zero = B::CmpF(CmpOp::Ne, F::Arith(ArithOp::Div, Box::new(flit(1.0)), Box::new(F::Col)), flit(0.0));
    assert!(!ev_b(&by_zero, &r), "1.0 / -0.0 is -inf: undefined");
    let tiny = Row { price: 5e-324, ..r.clone() };
    let underflow = B::CmpF(CmpOp::Eq, F::Arith(ArithOp::Mul, Box::new(F::Col), Box::new(flit(0.5))), flit(0.0));
    assert!(ev_b(&underflow, &tiny));
    let inf = Row { price: f64::INFINITY, ..r.clone() };
    assert!(ev_b(&B::CmpF(CmpOp::Gt, F::Col, flit(f64::MAX)), &inf));
    assert!(!ev_b(&B::CmpF(CmpOp::Gt, F::Neg(Box::new(F::Neg(Box::new(F::Col)))), flit(0.0)), &inf));
    // -0.0 == 0.0; len counts bytes; lower is Unicode; ieq is ASCII-only.
    assert!(ev_b(&B::CmpF(CmpOp::Eq, F::Col, F::Leaf(Leaf { v: 0.0, param: false })), &r));
    assert!(ev_b(&B::CmpI(CmpOp::Eq, I::Len(NAME), lit(3)), &r));
    let lower = B::CmpT(CmpOp::Eq, T::Lower(NAME), T::Leaf(Leaf { v: "éa".into(), param: false }));
    assert!(ev_b(&lower, &r));
    assert!(!ev_b(&B::IEq(T::Col(NAME), Leaf { v: "éA".into(), param: false }), &r));
    // Nullable: None != Some(x); None is None.
    assert!(ev_b(&B::OptT { ne: true, v: Leaf { v: "x".into(), param: false } }, &r));
    assert!(ev_b(&B::IsNull { col: NOTE, negated: false }, &r));
    assert!(!ev_b(&B::OptI { ne: false, v: None }, &r));
    // Rendering: parameters are bound, literals escaped.
    let mut render = Render::default();
    let text = render.b(&B::Str(StrOp::Contains, T::Col(NAME), Leaf { v: "a'\\".into(), param: false }));
    assert_eq!(text, "('a\\'\\\\' in r.name)");
    assert_eq!(
        render.b(&B::InI { col: CAT, list: List::Items(vec![Leaf { v: 5, param: true }], false), negated: true }),
        "(r.cat not in (p0,))"
    );
    assert_eq!(render.params, vec![("p0".to_owned(), Value::Int(5))]);
}
