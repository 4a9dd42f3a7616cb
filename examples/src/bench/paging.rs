//! Section 8, paging a cart (issue 16): a page of 10 lines from a 1,000-line cart,
//! `select!(CartLine, |l| l.cart_id == cart).order_by(CartLine::position()).limit(10).offset(500)`.
//!
//! Measured, interleaved, against the peers that matter: a hot fetch of a 10-line
//! cart (the page should cost about what 10 objects cost), the same page on an
//! unordered index (every line read, sorted in memory: what memdex did before
//! ordered nodes), PostgreSQL's `LIMIT/OFFSET` and keyset page on a table whose
//! lines are spread over the heap (rows inserted in a shuffled order, as carts fill
//! over days) and on a clustered copy. Bytes per page are memcached's own count of
//! the bytes it sent (`stats` `bytes_written`), so "proportional to the page, not
//! the cart" is measured, not argued.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;

use memdex::{Model, Store, select};

use super::memdex_side::{DbTarget, builder};
use super::report::{Section, Table};
use super::timing::{Budget, Probe, format_ns, format_ratio, measure_interleaved};

/// A cart line of about 200 bytes, on an ordered index.
#[derive(Model, Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[memdex(table = "bench_cart_line")]
#[memdex(index(cart_id, order_by = position))]
pub struct CartLine {
    #[memdex(key)]
    pub id: i64,
    pub cart_id: i64,
    pub position: i64,
    pub label: String,
    pub description: String,
}

/// The same lines on an unordered index: a page reads the whole cart.
#[derive(Model, Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[memdex(table = "bench_cart_line_unordered")]
pub struct UnorderedLine {
    #[memdex(key)]
    pub id: i64,
    #[memdex(index)]
    pub cart_id: i64,
    pub position: i64,
    pub label: String,
    pub description: String,
}

/// The cart paged.
const BIG: i64 = 1;
/// A cart of [`SMALL_LINES`] lines: the hot 10-object fetch.
const SMALL: i64 = 2;
const SMALL_LINES: i64 = 10;
const PAGE: u64 = 10;

/// Sizes of the section.
#[derive(Clone, Copy, Debug)]
pub struct Sizes {
    /// Lines of the paged cart.
    pub cart_lines: i64,
    /// Other carts of 10 lines each, shuffled in with it.
    pub other_carts: i64,
    pub budget: Budget,
}

fn line(id: i64, cart_id: i64, index: i64) -> CartLine {
    let mut description = format!("line {id} of cart {cart_id}: ");
    while description.len() < 160 {
        description.push_str(["sturdy ", "blue ", "compact ", "steel "][(id as usize + description.len()) % 4]);
    }
    description.truncate(160);
    CartLine { id, cart_id, position: index * 10, label: format!("line-{id:06}"), description }
}

impl From<&CartLine> for UnorderedLine {
    fn from(l: &CartLine) -> UnorderedLine {
        UnorderedLine {
            id: l.id,
            cart_id: l.cart_id,
            position: l.position,
            label: l.label.clone(),
            description: l.description.clone(),
        }
    }
}

/// Every line, in a shuffled order (a fixed-seed LCG, so runs compare), so that a
/// cart's lines land all over the table's heap.
fn lines(sizes: Sizes) -> Vec<CartLine> {
    let mut rows: Vec<CartLine> = (0..sizes.cart_lines).map(|i| line(i + 1, BIG, i)).collect();
    let mut id = sizes.cart_lines;
    for cart in 0..sizes.other_carts {
        for i in 0..SMALL_LINES {
            id += 1;
            rows.push(line(id, SMALL + cart, i));
        }
    }
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    for i in (1..rows.len()).rev() {
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        rows.swap(i, (state >> 33) as usize % (i + 1));
    }
    rows
}

/// What memcached has sent so far (`stats`: `bytes_written`).
fn bytes_written(addr: &str) -> Result<u64, String> {
    let mut stream = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    stream.write_all(b"stats\r\n").map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).map_err(|e| e.to_string())? == 0 || line.starts_with("END") {
            return Err("memcached's stats has no bytes_written".into());
        }
        if let Some(n) = line.strip_prefix("STAT bytes_written ") {
            return n.trim().parse().map_err(|e| format!("bytes_written {n:?}: {e}"));
        }
    }
}

/// Bytes memcached sends per call of `f` (the mean over `n` calls, less the
/// `stats` reply itself, measured once).
fn bytes_per_call(addr: &str, n: u64, mut f: impl FnMut() -> Result<(), String>) -> Result<u64, String> {
    let stats_reply = {
        let a = bytes_written(addr)?;
        bytes_written(addr)? - a
    };
    let before = bytes_written(addr)?;
    for _ in 0..n {
        f()?;
    }
    let after = bytes_written(addr)?;
    Ok((after - before - stats_reply) / n)
}

/// The two stores of the section: the near cache on, and off.
struct Stores {
    near: Store,
    far: Store,
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Both stores on `db` and `memcached`, the lines loaded (and, on PostgreSQL, the
/// clustered copy made and both tables analysed).
fn stores(db: &DbTarget, memcached: &str, sizes: Sizes) -> Result<Stores, String> {
    let memcached = [memcached.to_owned()];
    let near = builder(db, &memcached).namespace("paging").build().map_err(err)?;
    let far = builder(db, &memcached).namespace("paging").near_cache_capacity(0).build().map_err(err)?;
    near.migrate::<CartLine>().map_err(err)?;
    near.migrate::<UnorderedLine>().map_err(err)?;
    let rows = lines(sizes);
    near.transaction(|tx| {
        for row in &rows {
            tx.insert(row)?;
            tx.insert(&UnorderedLine::from(row))?;
        }
        Ok(())
    })
    .map_err(err)?;
    if let DbTarget::Postgres(params) = db {
        let mut client = postgres::Client::connect(params, postgres::NoTls).map_err(err)?;
        client
            .batch_execute(
                "ANALYZE bench_cart_line;
                 DROP TABLE IF EXISTS bench_cart_line_clustered;
                 CREATE TABLE bench_cart_line_clustered AS
                     SELECT * FROM bench_cart_line ORDER BY cart_id, position, id;
                 CREATE INDEX ON bench_cart_line_clustered (cart_id, position);
                 ANALYZE bench_cart_line_clustered;",
            )
            .map_err(err)?;
    }
    Ok(Stores { near, far })
}

/// The section's page of the cart through `store`.
fn page(store: &Store, offset: u64) -> Result<Vec<CartLine>, String> {
    select!(CartLine, |l| l.cart_id == BIG)
        .order_by(CartLine::position())
        .limit(PAGE)
        .offset(offset)
        .fetch(store)
        .map_err(err)
}

/// The keyset page after `last` through `store`.
fn page_after(store: &Store, last: &CartLine) -> Result<Vec<CartLine>, String> {
    select!(CartLine, |l| l.cart_id == BIG)
        .order_by(CartLine::position())
        .limit(PAGE)
        .after(last)
        .fetch(store)
        .map_err(err)
}

/// The small cart, whole, through `store`.
fn small_cart(store: &Store) -> Result<Vec<CartLine>, String> {
    select!(CartLine, |l| l.cart_id == SMALL).fetch(store).map_err(err)
}

/// The page on the unordered index: every line of the cart, sorted in memory.
fn unordered_page(store: &Store, offset: u64) -> Result<Vec<UnorderedLine>, String> {
    select!(UnorderedLine, |l| l.cart_id == BIG)
        .order_by(UnorderedLine::position())
        .limit(PAGE)
        .offset(offset)
        .fetch(store)
        .map_err(err)
}

/// `Ok` when `got` rows came back, as the case expects.
fn expect_len<T>(rows: Result<Vec<T>, String>, expected: usize) -> Result<(), String> {
    let got = rows?.len();
    if got == expected { Ok(()) } else { Err(format!("{got} rows, expected {expected}")) }
}

/// A PostgreSQL page as a timed probe: its own connection, one prepared statement.
fn pg_probe<'a>(db: &DbTarget, sql: &'static str, params: Vec<i64>, expected: usize) -> Probe<'a> {
    let DbTarget::Postgres(conn) = db else { return Err("PostgreSQL unavailable".into()) };
    let mut client = postgres::Client::connect(conn, postgres::NoTls).map_err(err)?;
    let statement = client.prepare(sql).map_err(err)?;
    Ok(Box::new(move || {
        let refs: Vec<&(dyn postgres::types::ToSql + Sync)> =
            params.iter().map(|p| p as &(dyn postgres::types::ToSql + Sync)).collect();
        let rows = client.query(&statement, &refs).map_err(err)?;
        if rows.len() == expected {
            Ok(())
        } else {
            Err(format!("PostgreSQL: {} rows, expected {expected}", rows.len()))
        }
    }))
}

const PG_OFFSET: &str = "SELECT id, cart_id, position, label, description FROM bench_cart_line \
                         WHERE cart_id = $1 ORDER BY position, id LIMIT $2 OFFSET $3";
const PG_KEYSET: &str = "SELECT id, cart_id, position, label, description FROM bench_cart_line \
                         WHERE cart_id = $1 AND (position, id) > ($2, $3) ORDER BY position, id LIMIT $4";
const PG_CLUSTERED: &str = "SELECT id, cart_id, position, label, description FROM bench_cart_line_clustered \
                            WHERE cart_id = $1 ORDER BY position, id LIMIT $2 OFFSET $3";

/// One row of the table: a case, how to run it, and how to count its bytes and
/// round trips (memdex cases only).
struct Case<'a> {
    label: &'static str,
    probe: Probe<'a>,
    /// The store the case runs on, for its round trips and bytes.
    store: Option<&'a Store>,
}

/// The section; `memcached` is the address the stores use.
pub fn section(title: &str, db: &DbTarget, memcached: Result<String, String>, sizes: Sizes) -> Section {
    let mut section = Section::new(title);
    let built = memcached.clone().and_then(|m| stores(db, &m, sizes));
    let (stores, addr) = match (built, memcached) {
        (Ok(s), Ok(addr)) => (s, addr),
        (Err(e), _) | (_, Err(e)) => {
            section.note(format!("unavailable: {e}"));
            return section;
        }
    };
    let lines = sizes.cart_lines as u64;
    let offset = (lines / 2).min(lines.saturating_sub(PAGE));
    let expected = PAGE.min(lines - offset) as usize;
    // The line before the page: keyset paging's `after`, the same page.
    let before = page(&stores.near, offset.saturating_sub(1)).ok().and_then(|rows| rows.into_iter().next());
    let (near, far) = (&stores.near, &stores.far);
    let keyset_params = before.as_ref().map_or_else(Vec::new, |l| vec![BIG, l.position, l.id, PAGE as i64]);
    let mut cases: Vec<Case<'_>> = vec![
        Case {
            label: "memdex page of 10, ordered index",
            probe: Ok(Box::new(move || expect_len(page(near, offset), expected))),
            store: Some(near),
        },
        Case {
            label: "memdex keyset page of 10 (.after the line before it)",
            probe: match before.clone() {
                Some(last) => Ok(Box::new(move || expect_len(page_after(near, &last), expected))),
                None => Err("no line before the page".into()),
            },
            store: Some(near),
        },
        Case {
            label: "memdex hot fetch of a 10-line cart",
            probe: Ok(Box::new(move || expect_len(small_cart(near), SMALL_LINES as usize))),
            store: Some(near),
        },
        Case {
            label: "memdex page of 10, ordered index, near cache off",
            probe: Ok(Box::new(move || expect_len(page(far, offset), expected))),
            store: Some(far),
        },
        Case {
            label: "memdex hot fetch of a 10-line cart, near cache off",
            probe: Ok(Box::new(move || expect_len(small_cart(far), SMALL_LINES as usize))),
            store: Some(far),
        },
        Case {
            label: "memdex page of 10, unordered index (whole cart read, sorted in memory)",
            probe: Ok(Box::new(move || expect_len(unordered_page(near, offset), expected))),
            store: Some(near),
        },
        Case {
            label: "memdex page of 10, unordered index, near cache off",
            probe: Ok(Box::new(move || expect_len(unordered_page(far, offset), expected))),
            store: Some(far),
        },
        Case {
            label: "PostgreSQL LIMIT/OFFSET (prepared; lines spread over the heap)",
            probe: pg_probe(db, PG_OFFSET, vec![BIG, PAGE as i64, offset as i64], expected),
            store: None,
        },
        Case {
            label: "PostgreSQL keyset (position, id) > (…) LIMIT (lines spread over the heap)",
            probe: if keyset_params.is_empty() {
                Err("no line before the page".into())
            } else {
                pg_probe(db, PG_KEYSET, keyset_params, expected)
            },
            store: None,
        },
        Case {
            label: "PostgreSQL LIMIT/OFFSET (prepared; table clustered by cart)",
            probe: pg_probe(db, PG_CLUSTERED, vec![BIG, PAGE as i64, offset as i64], expected),
            store: None,
        },
    ];
    // Bytes and round trips first, one call at a time (untimed), so that the timed
    // rounds below are the calls alone.
    let mut counted: Vec<(String, String)> = Vec::new();
    for case in &mut cases {
        let (Some(store), Ok(run)) = (case.store, case.probe.as_mut()) else {
            counted.push(("–".into(), "–".into()));
            continue;
        };
        let _ = run();
        let stats = store.stats();
        let trips = run().map(|()| {
            let after = store.stats();
            format!("{}, {}", after.cache_round_trips - stats.cache_round_trips, after.db_queries - stats.db_queries)
        });
        let bytes = bytes_per_call(&addr, 50, &mut **run);
        counted.push((
            trips.unwrap_or_else(|e| format!("failed: {e}")),
            bytes.map_or_else(|e| format!("unavailable: {e}"), |b| b.to_string()),
        ));
    }
    let labels: Vec<&str> = cases.iter().map(|c| c.label).collect();
    let summaries = measure_interleaved(sizes.budget, cases.into_iter().map(|c| c.probe).collect());
    let median = |label: &str| -> Option<f64> {
        let at = labels.iter().position(|l| *l == label)?;
        summaries[at].as_ref().ok().map(|s| s.median_ns)
    };
    let page_ns = median("memdex page of 10, ordered index");
    let mut table =
        Table::new(["case", "median", "p90", "vs the memdex page", "bytes from memcached", "round trips (cache, db)"]);
    for ((label, summary), (trips, bytes)) in labels.iter().zip(&summaries).zip(&counted) {
        let (median_cell, p90, ratio) = match summary {
            Ok(s) => (
                format_ns(s.median_ns),
                format_ns(s.p90_ns),
                page_ns.map_or("–".into(), |p| format_ratio(s.median_ns, p)),
            ),
            Err(e) => (format!("unavailable: {e}"), String::new(), String::new()),
        };
        table.row([(*label).to_owned(), median_cell, p90, ratio, bytes.clone(), trips.clone()]);
    }
    section.tables.push(table);
    let ratio = |a: &str, b: &str| match (median(a), median(b)) {
        (Some(a), Some(b)) => format_ratio(a, b),
        _ => "–".into(),
    };
    section.note(format!(
        "A {lines}-line cart among {} carts of {SMALL_LINES} lines, rows inserted in a shuffled order; the page is \
         `order_by(position).limit({PAGE}).offset({offset})`. Targets: the page within 1.5x of a hot 10-object \
         fetch — {} with the near cache, {} without; at least 5x faster than PostgreSQL's LIMIT/OFFSET on the \
         spread table — PostgreSQL takes {} of the memdex page (near cache on) and {} of it without the near cache.",
        sizes.other_carts,
        ratio("memdex page of 10, ordered index", "memdex hot fetch of a 10-line cart"),
        ratio("memdex page of 10, ordered index, near cache off", "memdex hot fetch of a 10-line cart, near cache off"),
        ratio("PostgreSQL LIMIT/OFFSET (prepared; lines spread over the heap)", "memdex page of 10, ordered index"),
        ratio(
            "PostgreSQL LIMIT/OFFSET (prepared; lines spread over the heap)",
            "memdex page of 10, ordered index, near cache off"
        ),
    ));
    section.note(
        "Bytes: memcached's `bytes_written` per call (the node's entries plus the page's objects; an unordered \
         index sends every object of the cart). The cart keeps one node key: `cart_id=1>position`.",
    );
    section
}

/// `bench --page-loop N`: the page of 10 (near cache on) and the hot 10-line cart, N
/// times each on SQLite in memory and a memcached of its own, for profilers; the
/// two medians.
pub fn page_loop(n: usize) -> Result<(f64, f64), String> {
    let memcached = super::servers::Memcached::start(64).map_err(err)?;
    let sizes = Sizes { cart_lines: 1_000, other_carts: 900, budget: Budget::new(0, n, std::time::Duration::MAX) };
    let stores = stores(&DbTarget::SqliteInMemory, &memcached.addr(), sizes)?;
    let near = &stores.near;
    let summaries = measure_interleaved(
        sizes.budget,
        vec![
            Ok(Box::new(move || expect_len(page(near, 500), 10))),
            Ok(Box::new(move || expect_len(small_cart(near), SMALL_LINES as usize))),
        ],
    );
    let median = |at: usize| summaries[at].as_ref().map(|s| s.median_ns).map_err(Clone::clone);
    Ok((median(0)?, median(1)?))
}
