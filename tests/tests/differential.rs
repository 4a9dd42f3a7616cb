//! Differential testing: random rows and random queries from the whole language,
//! answered by every path memdex has, each compared with an oracle evaluated over the
//! row struct (both in `memdex_tests::differential`); and rounds of writes, each
//! followed by pages of the model's ordered indexes and pages cut in memory.
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

/// The ordered-page run (issue 16): each case loads rows, then runs rounds of small
/// writes (order values changed, rows moved between groups, inserted, deleted),
/// each followed by pages — of the ordered indexes (with offsets past the end and
/// keyset `after` rows stored or gone) and pages cut in memory — on every lane,
/// warm (the nodes the writes appended to), cold and hot, each compared with the
/// oracle and with the database's own SQL. Every page of an ordered index read hot
/// once more after the hot pass (when any node a fill listed an in-flight move in
/// has been checked) must read only its objects: the run fails if any fell back to
/// reading the whole node, or if there was none to check (so it cannot pass by
/// always falling back).
fn run_ordered(coverage: Coverage, cases: u32, seed: u64) {
    let world = std::cell::RefCell::new(World::new(coverage));
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let config = Config { cases, failure_persistence: None, max_shrink_iters: 2000, ..Config::default() };
    let mut runner = TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes));
    let result = runner.run(&ordered_case(), |case| {
        let mut world = world.borrow_mut();
        let mut rows: std::collections::BTreeMap<i64, Row> = case.rows.into_iter().map(|r| (r.id, r)).collect();
        let mut deleted: Vec<Row> = Vec::new();
        world.load(&rows.values().cloned().collect::<Vec<_>>()).map_err(TestCaseError::fail)?;
        for (n, round) in case.rounds.iter().enumerate() {
            for m in &round.mutations {
                m.apply(&mut rows, &mut deleted);
            }
            world.load(&rows.values().cloned().collect::<Vec<_>>()).map_err(TestCaseError::fail)?;
            // The previous round's queries first: their nodes were read and written
            // back (ordered) just before these writes, so their warm pass reads an
            // ordered node the writes appended to.
            let again = n.checked_sub(1).map_or(&[][..], |p| case.rounds[p].queries.as_slice());
            for q in again.iter().chain(&round.queries) {
                let probe_ = q.probe(&world.rows, &deleted);
                match probe(&mut world, &probe_, &|r| ev_b(&q.query.pred, r)) {
                    Ok(Outcome::Agreed) => {}
                    Ok(Outcome::TooManyDisjuncts) => {}
                    Err(e) => return Err(TestCaseError::fail(format!("round {n}: {e}"))),
                }
            }
        }
        Ok(())
    });
    let world = world.into_inner();
    let s = world.stats;
    eprintln!(
        "differential, ordered pages ({coverage:?}, seed {seed}): {cases} cases, {} queries, {} fetches, {} SQL runs, \
         {} lanes, {} settled pages of an ordered index shorter than their rows, {} of them read only the page",
        s.queries,
        s.fetches,
        s.sql_runs,
        world.lanes.len(),
        s.ordered_pages,
        s.windowed,
    );
    if let Err(e) = result {
        panic!("disagreement (seed {seed}):\n{e}");
    }
    assert!(s.ordered_pages > 0, "no settled page of an ordered index was checked");
    assert_eq!(s.windowed, s.ordered_pages, "settled pages of an ordered index read more objects than the page");
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

/// Ordered pages on SQLite and PostgreSQL (every lane of [`Coverage::Full`]).
#[test]
fn ordered_pages_agree_on_every_path() {
    run_ordered(Coverage::Full, env_u64("MEMDEX_DIFF_ORDERED_CASES", 40) as u32, env_u64("MEMDEX_DIFF_SEED", 0x5eed));
}

/// Ordered pages on MariaDB, in a world of its own.
#[test]
fn ordered_pages_agree_on_mariadb() {
    run_ordered(
        Coverage::MariaDb,
        env_u64("MEMDEX_DIFF_ORDERED_CASES", 40) as u32,
        env_u64("MEMDEX_DIFF_SEED", 0x5eed),
    );
}

/// The soak run (docs/soak.md): as many cases as `MEMDEX_DIFF_CASES` (default
/// 20 000), then as many ordered-page cases as `MEMDEX_DIFF_ORDERED_CASES` (default
/// 2 000), seed from `MEMDEX_DIFF_SEED` (default: the clock, printed).
#[test]
#[ignore = "soak run: see docs/soak.md"]
fn soak() {
    let seed = std::env::var("MEMDEX_DIFF_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_secs())
    });
    run(Coverage::Full, env_u64("MEMDEX_DIFF_CASES", 20_000) as u32, seed);
    run_ordered(Coverage::Full, env_u64("MEMDEX_DIFF_ORDERED_CASES", 2_000) as u32, seed);
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

/// An ordered page read hot, then the rows written under it: an insert at the
/// front of the order, a row moved into the group, an order value changed and a
/// delete. Each next page must hear of the write (its appended entry makes the
/// node unordered until a read has checked it), on every SQLite lane.
#[test]
fn ordered_pages_hear_of_the_writes_since() {
    let mut world = World::new(Coverage::Sqlite);
    let mut rows: Vec<Row> = (1..=6).map(|id| Row { grp: Some(id % 3), ..row(id) }).collect();
    rows.push(Row { cat: 2, grp: Some(-1), ..row(7) });
    let page = || Probe::new("lambda r: r.cat == 1", &[]).ordered(GRP, false).page(Some(2), 0);
    let in_cat_1 = |r: &Row| r.cat == 1;
    let step = |world: &mut World, rows: &[Row], what: &str| {
        world.load(rows).unwrap_or_else(|e| panic!("{what}: {e}"));
        for p in [page(), page().ordered(GRP, true), page().page(Some(3), 2)] {
            match probe(world, &Probe { ordered_page: true, ..p }, &in_cat_1) {
                Ok(Outcome::Agreed) => {}
                other => panic!("{what}: {other:?}"),
            }
        }
    };
    step(&mut world, &rows, "loaded");
    rows.push(Row { grp: None, ..row(8) });
    step(&mut world, &rows, "a row inserted at the front");
    rows[6].cat = 1;
    step(&mut world, &rows, "a row moved into the group");
    rows[2].grp = Some(-5);
    step(&mut world, &rows, "an order value changed");
    rows.remove(0);
    step(&mut world, &rows, "a row deleted");
    assert_eq!(world.stats.windowed, world.stats.ordered_pages, "{:?}", world.stats);
}

/// A residual filter pages in memory even on an ordered index's columns: the first
/// row of the group in the index's order fails the filter, so a page cut from the
/// node's order (before the filter) would start one row early, on every SQLite lane
/// and pass (the hot one would read the ordered node).
#[test]
fn a_residual_filter_pages_after_filtering() {
    let rows: Vec<Row> = (1..=6).map(|id| Row { grp: Some(id), qty: i64::from(id != 1), ..row(id) }).collect();
    let mut world = World::new(Coverage::Sqlite);
    world.load(&rows).unwrap_or_else(|e| panic!("{e}"));
    let page = || Probe::new("lambda r: r.cat == 1 and r.qty > 0", &[]).ordered(GRP, false);
    for p in [page().page(Some(2), 1), page().page(Some(1), 0).after(rows[1].clone()), page().page(Some(2), 2)] {
        match probe(&mut world, &p, &|r| r.cat == 1 && r.qty > 0) {
            Ok(Outcome::Agreed) => {}
            other => panic!("{other:?}"),
        }
    }
}
