//! The named regression tests for every disagreement the differential run (or the
//! stress, fault and hostile tests) found, on the differential harness
//! (`memdex_tests::differential`). A test here that fails is a known, open bug: its
//! doc comment names the function at fault.

// Tests fail by panicking, with a message saying what went wrong.
#![allow(clippy::panic, clippy::unwrap_used)]

use std::sync::Arc;

use memdex::cache::in_process::InProcessCache;
use memdex::cache::{CacheBackend, CacheConfig, CacheOp};
use memdex::{Col, Error, Model, Store, Value};
use memdex_tests::differential::*;

// ---------------------------------------------------------------------------
// Named regressions.
// ---------------------------------------------------------------------------

/// Rows whose strings carry LIKE's metacharacters and differ only in case: the
/// emitted LIKE must be case-sensitive and escape `%`, `_` and `\`.
#[test]
fn like_patterns_are_literal_and_case_sensitive() {
    let mut rows = Vec::new();
    for (id, name) in [(1, "ab%c"), (2, "abXc"), (3, "AB%C"), (4, "ab_c"), (5, "ab\\c"), (6, "ab\\\\c")] {
        rows.push(Row { name: name.into(), ..row(id) });
    }
    for (pat, expect) in [("%c", vec![1]), ("_c", vec![4]), ("\\c", vec![5, 6]), ("%C", vec![3])] {
        let probe_ = Probe::new("lambda r: r.cat == 1 and r.name.endswith(p)", &[("p", pat.into())]);
        let want = expect.clone();
        check(Coverage::Sqlite, &rows, probe_, move |r| want.contains(&r.id));
        let probe_ = Probe::new(&format!("lambda r: r.cat == 1 and {} in r.name", py_str(pat)), &[]);
        check(Coverage::Sqlite, &rows, probe_, move |r| r.name.contains(pat));
    }
}

/// `len` counts bytes, as Rust's `str::len` does, in SQL too.
#[test]
fn len_counts_bytes() {
    let rows = [Row { name: "éé".into(), ..row(1) }, Row { name: "abc".into(), ..row(2) }];
    let probe_ = Probe::new("lambda r: r.cat == 1 and len(r.name) == 4", &[]);
    check(Coverage::Sqlite, &rows, probe_, |r| r.name.len() == 4);
}

/// Ordering by a nullable column puts `None` first, as `Option`'s order does, and
/// strings by bytes (not by collation) in every dialect.
#[test]
fn order_by_puts_none_first_and_strings_by_bytes() {
    let rows = [
        Row { note: Some("b".into()), tag: "Z".into(), ..row(1) },
        Row { note: None, tag: "a".into(), ..row(2) },
        Row { note: Some("B".into()), tag: "é".into(), ..row(3) },
        Row { note: Some("a".into()), tag: "_".into(), ..row(4) },
    ];
    for c in [NOTE, TAG] {
        for desc in [false, true] {
            let probe_ = Probe::new("lambda r: r.cat == 1", &[]).ordered(c, desc).page(Some(3), 1);
            check(Coverage::Sqlite, &rows, probe_, |_| true);
        }
    }
}

/// Two stores ("processes") on one SQLite file and one in-process cache; the first
/// one's batches go through the returned stepper.
fn two_processes(dir: &tempfile::TempDir) -> (Store, Store, memdex_tests::stepping::Stepping) {
    let cache: Arc<dyn CacheBackend> = Arc::new(InProcessCache::new(CacheConfig::default()));
    let stepper = memdex_tests::stepping::Stepping::new(cache);
    let db = dir.path().join("two.db").to_string_lossy().into_owned();
    let build = |cache: Box<dyn CacheBackend>| Store::builder().sqlite(db.clone()).cache(cache).build().expect("store");
    let stepped = build(Box::new(stepper.clone()));
    let other = build(stepper.plain());
    stepped.migrate::<Row>().expect("migrate");
    (stepped, other, stepper)
}

/// K7 (found by stress.rs with multi-node reads; fixed): a query over two nodes where
/// one is cached and the other misses. The reader gets the cached node, then a writer
/// moves a row from the missing node to the cached one and commits, then the reader
/// answered the missing node from the database (the row has left it) and never saw
/// the append to the node it had already read. The row matched `cat in (1, 3)` at
/// every moment, yet was missing: `runtime/src/exec.rs` `index_scan` mixed node
/// contents from two moments (cache at round trip 1, database after it). Fixed there:
/// when any node of a query misses, every node of the query is answered by one SQL
/// statement (one snapshot, `exec::snapshot_nodes`).
#[test]
fn k7_row_moving_between_a_cached_and_a_missed_node_is_lost() {
    let dir = tempfile::Builder::new().prefix("memdex-k7-").tempdir().expect("temp dir");
    let (reader, writer, stepper) = two_processes(&dir);
    writer.insert(&Row { cat: 1, ..row(1) }).expect("insert");
    writer.insert(&Row { cat: 3, ..row(9) }).expect("insert");
    // Node cat=1 cached; node cat=3 not.
    let warm = writer.recall_text::<Row>("lambda r: r.cat == 1", &[]).expect("warm");
    assert_eq!(warm.len(), 1);
    let mut fired = false;
    stepper.on_batch(move |ops, inner| {
        if fired {
            return memdex_tests::stepping::Step::Proceed;
        }
        fired = true;
        let replies = inner.run(ops);
        writer.update(&Row { cat: 1, ..row(9) }).expect("move row 9 to category 1");
        memdex_tests::stepping::Step::Reply(replies)
    });
    let got: Vec<i64> =
        reader.recall_text::<Row>("lambda r: r.cat in (1, 3)", &[]).expect("read").iter().map(|r| r.id).collect();
    stepper.clear();
    assert_eq!(got, vec![1, 9], "row 9 was in category 3, then 1: it matched throughout");
}

/// K9 (found by stress.rs, `Buckets([2, 1], min)` about one run in ten; fixed): a row
/// moving from node cat=3 to node cat=1 while a writer's post-commit batch (the
/// append to cat=1) is still in flight must stay listed by its old node until the new
/// one lists it. A lazy-removal write-back of cat=3 lost its CAS to a concurrent
/// append, and the lost write-back *deleted* the node; the next read refilled cat=3
/// from the database, where the row had already left it. A read of `cat in (1, 3)`
/// then found both nodes cached, unchanged between its two round trips, and the row
/// in neither, although it matched throughout. Fixed in `runtime/src/exec.rs`
/// (`WriteBack`, `OnLost::Keep`): a lost lazy-removal write-back leaves the node,
/// which is still complete and lists every id it listed, in place.
#[test]
fn k9_lost_lazy_removal_must_not_drop_a_node_while_a_move_is_in_flight() {
    use memdex_tests::stepping::{Step, Stepping};
    let dir = tempfile::Builder::new().prefix("memdex-k9-").tempdir().expect("temp dir");
    let cache: Arc<dyn CacheBackend> = Arc::new(InProcessCache::new(CacheConfig::default()));
    let writer_cache = Stepping::new(cache.clone());
    let cleaner_cache = Stepping::new(cache);
    let db = dir.path().join("k9.db").to_string_lossy().into_owned();
    let build = |cache: Box<dyn CacheBackend>| Store::builder().sqlite(db.clone()).cache(cache).build().expect("store");
    let writer = build(Box::new(writer_cache.clone()));
    let cleaner = build(Box::new(cleaner_cache.clone()));
    let other = build(writer_cache.plain());
    other.migrate::<Row>().expect("migrate");
    other.insert(&Row { cat: 1, ..row(1) }).expect("insert");
    other.insert(&Row { cat: 3, ..row(5) }).expect("insert");
    other.insert(&Row { cat: 3, ..row(9) }).expect("insert");
    fn read(store: &Store, text: &str) -> Vec<i64> {
        store.recall_text::<Row>(text, &[]).expect("read").iter().map(|r| r.id).collect()
    }
    // Nodes cat=1 [1] and cat=3 [5, 9] cached, with their objects.
    assert_eq!(read(&other, "lambda r: r.cat == 1"), vec![1]);
    assert_eq!(read(&other, "lambda r: r.cat == 3"), vec![5, 9]);
    // Row 5 leaves cat=3: the node still lists it, for a reader to remove lazily.
    other.update(&Row { cat: 2, ..row(5) }).expect("move row 5");

    // The cleaner's lazy removal of 5 from cat=3: between its read and its CAS
    // write-back (at its rehome append), another writer appends row 7 to cat=3.
    let appender = other.clone();
    cleaner_cache.on_batch(move |ops, _| {
        if ops.iter().any(|op| matches!(op, CacheOp::Append { .. })) {
            appender.insert(&Row { cat: 3, ..row(7) }).expect("insert row 7");
        }
        Step::Proceed
    });
    // The writer moves row 9 from cat=3 to cat=1; after its commit, before its batch
    // (object delete, append to cat=1) lands: the lost clean-up, a read of cat=3 (a
    // fill if the node is gone), and the read under test.
    let seen: Arc<std::sync::Mutex<Option<Vec<i64>>>> = Arc::default();
    let (seen_in_hook, reader) = (seen.clone(), other.clone());
    let mut fired = false;
    writer_cache.on_batch(move |ops, _| {
        if fired || !ops.iter().any(|op| matches!(op, CacheOp::Append { .. })) {
            return Step::Proceed;
        }
        fired = true;
        assert_eq!(
            read(&cleaner, "lambda r: r.cat == 3"),
            vec![9],
            "row 7 came after the cleaner read the node; row 9 is still cached as before its move"
        );
        let _ = read(&reader, "lambda r: r.cat == 3");
        *seen_in_hook.lock().unwrap() = Some(read(&reader, "lambda r: r.cat in (1, 3)"));
        Step::Proceed
    });
    writer.update(&Row { cat: 1, ..row(9) }).expect("move row 9");
    writer_cache.clear();
    cleaner_cache.clear();
    let got = seen.lock().unwrap().take().expect("the writer's batch ran the interleaving");
    assert_eq!(got, vec![1, 7, 9], "row 9 was in category 3, then 1: it matched throughout");
    assert_eq!(read(&other, "lambda r: r.cat in (1, 3)"), vec![1, 7, 9]);
}

/// K10 (found while reconstructing K9; fixed): the same window as K9 without any
/// lost CAS. A row moves from cat=3, which is not cached (never filled, evicted or
/// expired), to cat=1, which is cached. After the writer's commit and before its
/// batch appends the row to cat=1, a reader fills cat=3 from the database, where the
/// row has already left it. A read of `cat in (1, 3)` then found both nodes cached
/// and the row in neither, although it matched throughout. Nothing the cache holds
/// tells the reader, so the writer now protects the move in its own transaction:
/// its outbox entry names the rows it updated, and a fill reads the rows, then the
/// entries still in the outbox, and keeps those ids in the nodes it fills
/// (`runtime/src/outbox.rs` `Outbox::in_flight`, `exec::snapshot_nodes`;
/// RELIABILITY.md, K10).
#[test]
fn k10_row_moving_out_of_an_uncached_node_is_lost_while_its_append_is_in_flight() {
    use memdex_tests::stepping::Step;
    let dir = tempfile::Builder::new().prefix("memdex-k10-").tempdir().expect("temp dir");
    let (writer, other, stepper) = two_processes(&dir);
    other.insert(&Row { cat: 1, ..row(1) }).expect("insert");
    other.insert(&Row { cat: 3, ..row(9) }).expect("insert");
    fn read(store: &Store, text: &str) -> Vec<i64> {
        store.recall_text::<Row>(text, &[]).expect("read").iter().map(|r| r.id).collect()
    }
    // Node cat=1 cached; node cat=3 not.
    assert_eq!(read(&other, "lambda r: r.cat == 1"), vec![1]);
    let seen: Arc<std::sync::Mutex<Option<Vec<i64>>>> = Arc::default();
    let (seen_in_hook, reader) = (seen.clone(), other.clone());
    let mut fired = false;
    stepper.on_batch(move |ops, _| {
        if fired || !ops.iter().any(|op| matches!(op, CacheOp::Append { .. })) {
            return Step::Proceed;
        }
        fired = true;
        // Fills cat=3 from the database: row 9 has left it.
        assert_eq!(read(&reader, "lambda r: r.cat == 3"), Vec::<i64>::new());
        *seen_in_hook.lock().unwrap() = Some(read(&reader, "lambda r: r.cat in (1, 3)"));
        Step::Proceed
    });
    writer.update(&Row { cat: 1, ..row(9) }).expect("move row 9");
    stepper.clear();
    let got = seen.lock().unwrap().take().expect("the writer's batch ran the interleaving");
    assert_eq!(got, vec![1, 9], "row 9 was in category 3, then 1: it matched throughout");
}

/// K11 (found while reading the write path for K9; fixed): an append the cache refuses
/// because the node would grow past the largest value it stores answers `NotStored`
/// (both backends; memcached says "object too large" and keeps the old item), which
/// the writer could not tell from "node not cached". The full node stayed cached
/// without the id, and every read of it missed the row until the node was evicted or
/// expired. Fixed by following every append of a write's batch with a CAS-only read
/// of its node in the same batch (`cache::checked_appends`): an append refused while
/// the node is cached means the node is full, and the writer deletes it, so the next
/// read fills it from the database (RELIABILITY.md, K11).
#[test]
fn k11_append_refused_for_size_leaves_the_node_without_the_id() {
    let store = k11_store();
    for id in 10..30 {
        store.insert(&Row { cat: 1, ..row(id) }).expect("insert");
    }
    store.insert(&Row { cat: 2, ..row(30) }).expect("insert");
    assert_eq!(k11_ids(&store), (10..30).collect::<Vec<_>>(), "cat=1 filled");
    assert_eq!(k11_ids(&store), (10..30).collect::<Vec<_>>(), "cat=1 hot");
    assert_eq!(store.stats().node_hits, 1, "the node is cached: {:?}", store.stats());
    store.update(&Row { cat: 1, ..row(30) }).expect("move row 30 into the full node");
    assert_eq!(k11_ids(&store), (10..31).collect::<Vec<_>>(), "row 30 is in category 1");
}

/// A store whose cache is full for node `cat == 1`: every append to it is refused
/// (`NotStored`, as memcached answers "object too large") while the node stays
/// cached, exactly K11's condition whatever the node format's record size.
fn k11_store() -> Store {
    let steps = memdex_tests::stepping::Stepping::new(Arc::new(InProcessCache::new(CacheConfig::default())));
    let schema = Row::schema();
    let index = schema.indexes.iter().position(|ix| ix.columns == [CAT]).expect("an index on cat");
    let full = memdex::grammar::keys::KeySpace::new("k11", schema, 0)
        .node(schema, &memdex::grammar::plan::NodeRef { index: Some(index), values: vec![Value::Int(1)] });
    steps.on_batch(move |ops, inner| {
        let replies = ops
            .iter()
            .map(|op| match op {
                CacheOp::Append { key, .. } if *key == full => Ok(memdex::cache::CacheReply::NotStored),
                _ => inner.run(std::slice::from_ref(op)).remove(0),
            })
            .collect();
        memdex_tests::stepping::Step::Reply(replies)
    });
    let store = Store::builder()
        .sqlite_in_memory()
        .namespace("k11")
        .cache(Box::new(steps))
        .near_cache_capacity(0)
        .build()
        .expect("store");
    store.migrate::<Row>().expect("migrate");
    store
}

fn k11_ids(store: &Store) -> Vec<i64> {
    store.recall_text::<Row>("lambda r: r.cat == 1", &[]).expect("read").iter().map(|r| r.id).collect()
}

/// K11 in a transaction of several writes: the refused append of its *last* write
/// is found as well as its first's, however many appends the writes before it made
/// (the batch holds every write's appends, each followed by its check, then the
/// object deletes).
#[test]
fn k11_the_refused_append_of_any_write_of_a_transaction_is_found() {
    let store = k11_store();
    for id in 10..30 {
        store.insert(&Row { cat: 1, ..row(id) }).expect("insert");
    }
    store.insert(&Row { cat: 2, ..row(30) }).expect("insert");
    store.insert(&Row { cat: 3, ..row(31) }).expect("insert");
    store.insert(&Row { cat: 3, ..row(32) }).expect("insert");
    assert_eq!(k11_ids(&store), (10..30).collect::<Vec<_>>(), "cat=1 filled");
    store
        .transaction(|tx| {
            tx.update(&Row { cat: 3, name: "renamed".into(), tag: "u".into(), ..row(31) })?;
            tx.update(&Row { cat: 3, name: "renamed".into(), tag: "u".into(), ..row(32) })?;
            tx.update(&Row { cat: 1, ..row(30) })
        })
        .expect("edit rows 31 and 32, then move row 30 into the full node");
    assert_eq!(k11_ids(&store), (10..31).collect::<Vec<_>>(), "row 30 is in category 1");
}

// Bugs found by the differential run. K1–K5 are fixed (RELIABILITY.md, "What was
// found"); their tests stay as regressions.

/// K1 (fixed): PostgreSQL could not type a negation or arithmetic over bound values
/// alone: `-$2` or `$2 + $3` failed with "operator is not unique: - unknown". Every
/// literal is bound, so `r.qty > -(5)` failed on PostgreSQL (`scan!` and every
/// database fallback). Fixed in `grammar/src/sql/emit.rs` (`arith_operand`,
/// `typed_value`) with `SqlDialect::typed`: `CAST($2 AS BIGINT)` on PostgreSQL.
#[test]
fn k1_postgres_types_arithmetic_on_bound_values() {
    let rows = [Row { qty: -3, ..row(1) }, Row { qty: 9, ..row(2) }, Row { qty: -4, ..row(3) }];
    let probe_ = Probe::new("lambda r: r.cat == 1 and r.qty > -(p) + 1", &[("p", 5.into())]);
    check(Coverage::Full, &rows, probe_, |r| r.qty > -5 + 1);
    // No column on either side: nothing but the cast types the placeholders.
    let probe_ = Probe::new("lambda r: r.cat == 1 and p * 2 > q", &[("p", 5.into()), ("q", (1i64 << 40).into())]);
    check(Coverage::Full, &rows, probe_, |_| false);
}

/// K2 (fixed): `%` on floats was accepted by the checker (Rust has it) but refused by
/// the SQL emitter, so the same query worked on the cached path and failed on every
/// database path. SQL has no float remainder that matches Rust's, so the checker
/// (`grammar/src/check.rs` `arith`) now rejects it, with the error at the `%`
/// expression and a hint, in both forms: the text form when the query is prepared,
/// the macro form when its query is first compiled (the checker runs there too).
#[test]
fn k2_float_remainder_is_rejected_with_a_clear_error_in_both_forms() {
    let store = Store::builder().sqlite_in_memory().in_process_cache().build().expect("store");
    store.migrate::<Row>().expect("migrate");
    store.insert(&Row { price: 5.5, ..row(1) }).expect("insert");
    let expect_rejection = |what: &str, result: Result<Vec<Row>, Error>| match result {
        Err(Error::Query { rendered, errors }) => {
            let mismatch = errors.0.iter().any(|e| {
                matches!(&e.kind, memdex::grammar::ErrorKind::TypeMismatch { context, .. } if context == "`%`")
                    && e.hint.as_deref().is_some_and(|h| h.contains("`%` needs integer operands"))
            });
            assert!(mismatch, "{what}: the error names `%` and says what it needs:\n{rendered}");
        }
        other => panic!("{what}: float % must be a query error, got {other:?}"),
    };
    let text = "lambda r: r.name.startswith(p) and r.price % 2.0 == 1.5";
    expect_rejection("text form", store.recall_text::<Row>(text, &[("p", "a".into())]));
    let two = 2.0_f64;
    expect_rejection("macro form", memdex::select!(Row, |r| r.cat == 1 && r.price % two == 1.5).fetch(&store));
    // An integer remainder stays valid on every path.
    let probe_ = Probe::new("lambda r: r.name.startswith(p) and r.qty % 3 == 1", &[("p", "a".into())]);
    let rows = [Row { qty: 4, ..row(1) }, Row { qty: -2, ..row(2) }];
    check(Coverage::Sqlite, &rows, probe_, |r| r.qty % 3 == 1);
}

/// K3 (fixed): a bound integer divisor was emitted as `NULLIF($n, 0)`, which
/// PostgreSQL types int4, so binding a value beyond int4 failed ("cannot bind an
/// integer as PostgreSQL int4"); `octet_length` (int4) did the same to the values it
/// met. Fixed in `grammar/src/sql/emit.rs`: no `NULLIF` (a check before the
/// division says whether it is defined), bound operands cast to BIGINT, and
/// `octet_length` cast to BIGINT (`grammar/src/sql/dialect.rs`).
#[test]
fn k3_postgres_binds_large_divisors() {
    let rows = [Row { qty: 1 << 41, ..row(1) }, Row { qty: 3, ..row(2) }];
    let probe_ = Probe::new("lambda r: r.cat == 1 and r.qty % p == 0", &[("p", (1i64 << 40).into())]);
    check(Coverage::Full, &rows, probe_, |r| r.qty % (1 << 40) == 0);
    let probe_ = Probe::new(
        "lambda r: r.cat == 1 and len(r.name) * p > q",
        &[("p", (1i64 << 40).into()), ("q", (1i64 << 41).into())],
    );
    check(Coverage::Full, &rows, probe_, |r| (r.name.len() as i64) * (1 << 40) > 1 << 41);
}

/// K4 (fixed): where Rust's integer arithmetic would panic (overflow), memdex's
/// semantics make the comparison false, so `not (r.qty + 1 > 0)` holds for
/// `qty = i64::MAX`. SQLite turned the overflow into a float (the row was dropped);
/// PostgreSQL failed the whole query ("bigint out of range"). Fixed in
/// `grammar/src/sql/emit.rs` (`guarded`, `int_defined`): overflow-free checks run
/// before the arithmetic, and the comparison is FALSE where one fails.
#[test]
fn k4_integer_overflow_is_a_false_comparison_in_sql() {
    let rows = [
        Row { qty: i64::MAX, ..row(1) },
        Row { qty: 1, ..row(2) },
        Row { qty: i64::MIN, ..row(3) },
        Row { qty: -1, ..row(4) },
    ];
    let probe_ = Probe::new("lambda r: r.cat == 1 and not (r.qty + 1 > 0)", &[]);
    check(Coverage::Full, &rows, probe_, |r| r.qty.checked_add(1).is_none_or(|v| v <= 0));
    // i64::MIN / -1 and i64::MIN % -1 are undefined too (SQLite and PostgreSQL
    // would give a float and 0), and so is a constant that overflows while
    // PostgreSQL plans the query.
    let probe_ = Probe::new("lambda r: r.cat == 1 and not (r.qty / r.id * -1 < 0)", &[]);
    check(Coverage::Full, &rows, probe_, |r| {
        r.qty.checked_div(r.id).and_then(|v| v.checked_mul(-1)).is_none_or(|v| v >= 0)
    });
    let probe_ = Probe::new("lambda r: r.cat == 1 and not (r.qty % p == 0)", &[("p", (-1).into())]);
    check(Coverage::Full, &rows, probe_, |r| r.qty.checked_rem(-1).is_none_or(|v| v != 0));
    let probe_ = Probe::new("lambda r: r.cat == 1 and not (p + 1 + r.qty > 0)", &[("p", i64::MAX.into())]);
    check(Coverage::Full, &rows, probe_, |_| true);
}

/// Rust's float arithmetic under memdex's rule: a result that is not finite is
/// undefined (`None`).
fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

/// K5 (fixed, by a new rule): float arithmetic that leaves the finite range gave
/// Rust inf or NaN (`inf - inf != 1.0` was true), SQLite NULL, and PostgreSQL
/// "value out of range: overflow/underflow" or NaN ordered as a number. Now a float
/// result that is not finite is undefined, like integer overflow (`grammar/src/eval.rs`
/// module doc), and the SQL is NULL-free and error-free at the extremes
/// (`SqlDialect::float_finite`/`float_arith`): underflow to zero stays 0.
#[test]
fn k5_non_finite_float_arithmetic_is_undefined_on_every_path() {
    let rows = [
        Row { price: f64::INFINITY, ..row(1) },
        Row { price: 1e300, ..row(2) },
        Row { price: 1.0, ..row(3) },
        Row { price: 5e-324, ..row(4) },
        Row { price: f64::MAX, ..row(5) },
        Row { price: -0.0, ..row(6) },
        Row { price: f64::NEG_INFINITY, ..row(7) },
    ];
    let square_minus_square = |r: &Row| {
        let square = finite(r.price * r.price)?;
        finite(square - square)
    };
    let probe_ = Probe::new("lambda r: r.cat == 1 and r.price * r.price - r.price * r.price != 1.0", &[]);
    check(Coverage::Full, &rows, probe_, move |r| square_minus_square(r).is_some_and(|d| d != 1.0));
    let probe_ = Probe::new("lambda r: r.cat == 1 and not (r.price / p >= 0.0)", &[("p", 0.5.into())]);
    check(Coverage::Full, &rows, probe_, |r| finite(r.price / 0.5).is_none_or(|v| v < 0.0));
    // Stored infinities, untouched by arithmetic, are ordinary values.
    let probe_ = Probe::new("lambda r: r.cat == 1 and r.price > 1e308", &[]);
    check(Coverage::Full, &rows, probe_, |r| r.price > 1e308);
    // Underflow to zero is a value: 5e-324 * 0.5 == 0.0 (PostgreSQL would raise
    // "underflow" if it computed it).
    let probe_ = Probe::new("lambda r: r.cat == 1 and r.price * 0.5 == 0.0", &[]);
    check(Coverage::Full, &rows, probe_, |r| finite(r.price * 0.5) == Some(0.0));
}

/// K6 (FIXED, wrong rows from the store itself): the database fallback
/// (`runtime/src/exec.rs` `database_rows`, used when a bound prefix is shorter than
/// the index, the cache is down or this process has pending invalidations) filtered
/// with SQL first and Rust second, so a row SQL says NULL or false for (K4, K5) was
/// lost even though Rust's predicate — which the cached path applies — accepts it.
/// Now the database paths send a superset filter (`memdex_grammar::relax`) and the
/// predicate decides, ordering and paging in memory. Here every lane (both
/// databases, both caches, warm, cold and hot, and the cache down) answers a short
/// prefix — the database path — exactly as Rust says, paged or not. Since K5 the
/// text form's SQL computes the float rule exactly, so here the store's own answer
/// is what is checked; `store.rs` `database_paths_keep_rows_the_closure_accepts`
/// shows the same with a macro closure that follows IEEE, where SQL and the
/// predicate still disagree.
#[test]
fn k6_database_fallback_keeps_rows_rust_accepts() {
    let rows = [
        Row { price: f64::INFINITY, ..row(1) },
        Row { price: 2.0, ..row(2) },
        Row { price: f64::NEG_INFINITY, ..row(3) },
        Row { price: 1e308, ..row(4) },
        Row { price: 60.0, ..row(5) },
        Row { name: "zz".into(), price: f64::INFINITY, ..row(6) },
    ];
    // `price - price` is undefined (NaN) for ±inf: a test reading it is false and
    // its `not` true, so the infinite rows are kept by the `not`s alone.
    let text = "lambda r: r.name.startswith(p) and not (r.price - r.price > 1.0) \
                and (not (r.price - r.price == 0.0) or r.price < 50.0)";
    let pred = |r: &Row| {
        let d = finite(r.price - r.price);
        r.name.starts_with('a') && !d.is_some_and(|d| d > 1.0) && (!d.is_some_and(|d| d == 0.0) || r.price < 50.0)
    };
    let mut world = World::new(Coverage::Full);
    world.load(&rows).unwrap_or_else(|e| panic!("{e}"));
    let params = [("p", Value::from("a"))];
    let all = Probe::new(text, &params).ordered(PRICE, true);
    assert_eq!(expected(&world.rows, &all, &pred), (vec![1, 2, 3], 3), "the oracle itself");
    for probe_ in [all.clone(), all.clone().page(Some(2), 1), all.clone().page(None, 2)] {
        let (want, want_count) = expected(&world.rows, &probe_, &pred);
        for lane in &world.lanes {
            let select = lane.store.select_text(text, &params).unwrap_or_else(|e| panic!("{e}"));
            let select = select.order_by_desc(Col::new(PRICE)).offset(probe_.offset);
            let select = match probe_.limit {
                Some(l) => select.limit(l),
                None => select,
            };
            for pass in ["cold", "hot"] {
                let got = lane.store.fetch(&select).unwrap_or_else(|e| panic!("{}, {pass}: {e}", lane.name));
                let got: Vec<i64> = got.iter().map(|r| r.id).collect();
                assert_eq!(got, want, "{}, {pass}\n{}", lane.name, probe_.describe());
            }
            let count = lane.store.count(&select).unwrap_or_else(|e| panic!("{}, count: {e}", lane.name));
            assert_eq!(count, want_count, "{}, count", lane.name);
        }
    }
}

/// F2 (FIXED): an indexed text column longer than ~2.7 KB could not be stored on
/// PostgreSQL ("index row size exceeds btree version 4 maximum 2704"), while SQLite
/// stored it. `grammar/src/sql/ddl.rs` `create_table` now makes a one-column text
/// index a hash index there (and a prefix index one on `substr(col, 1, n)`); what a
/// btree must still hold (a text key, a composite index) is refused by memdex itself
/// (`store.rs` `long_indexed_text_is_stored_or_refused_by_memdex`).
#[test]
fn f2_postgres_stores_long_indexed_text() {
    // Incompressible text (PostgreSQL compresses index entries before the check).
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let tag: String = (0..6000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b'!' + (x % 94) as u8)
        })
        .collect();
    let rows = [Row { tag: tag.clone(), ..row(1) }];
    let probe_ = Probe::new("lambda r: r.tag == t", &[("t", tag.into())]);
    check(Coverage::Full, &rows, probe_, |_| true);
}
