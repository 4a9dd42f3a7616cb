//! The shop: items by category, paged carts, a move between categories with lazy
//! removal, a prefix index, an aggregate — the scenarios of the memcached-indices
//! and LINQ posts, on SQLite with memcached when one is reachable (else the
//! in-process cache).
//!
//! `cargo run --example shop` (set `MEMDEX_MEMCACHED=host:port` to pick a server;
//! `127.0.0.1:11211` is tried by default).

use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use memdex::{Dialect, Model, Store, select, view};
use serde::{Deserialize, Serialize};

#[derive(Model, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[memdex(table = "item")]
pub struct Item {
    #[memdex(key)]
    pub id: i64,
    #[memdex(index)]
    pub category_id: i64,
    pub name: String,
    pub price: f64,
}

#[derive(Model, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[memdex(table = "cart_line")]
pub struct CartLine {
    #[memdex(key)]
    pub id: i64,
    #[memdex(index)]
    pub cart_id: i64,
    pub item_id: i64,
    pub position: i64,
}

#[derive(Model, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[memdex(table = "customer")]
pub struct Customer {
    #[memdex(key)]
    pub id: i64,
    #[memdex(index(prefix = 1))]
    pub first_name: String,
    pub last_name: String,
}

#[derive(Model, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[memdex(table = "master")]
pub struct Master {
    #[memdex(key)]
    pub id: i64,
    #[memdex(index)]
    pub team: String,
    pub name: String,
    pub runs: i64,
}

/// The cart query of the post: one index node serves every page.
fn get_items_in_cart(store: &Store, cart: i64, limit: u64, offset: u64) -> Result<Vec<CartLine>, memdex::Error> {
    select!(CartLine, |l| l.cart_id == cart).order_by(CartLine::position()).limit(limit).offset(offset).fetch(store)
}

fn memcached_address() -> Option<SocketAddr> {
    let wanted = std::env::var("MEMDEX_MEMCACHED").unwrap_or_else(|_| "127.0.0.1:11211".into());
    let addr = wanted.to_socket_addrs().ok()?.next()?;
    TcpStream::connect_timeout(&addr, Duration::from_millis(150)).ok().map(|_| addr)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tracing_on = Arc::new(AtomicBool::new(false));
    let sink = tracing_on.clone();
    let db_path = std::env::temp_dir().join(format!("memdex-shop-{}.db", std::process::id()));
    let builder = Store::builder().sqlite(db_path.to_string_lossy()).trace_to(move |line| {
        if sink.load(Ordering::Relaxed) {
            println!("    | {line}");
        }
    });
    let (builder, cache) = match memcached_address() {
        Some(addr) => {
            (builder.memcached([addr.to_string()]).namespace(format!("shop{}", std::process::id())), "memcached")
        }
        None => (builder.in_process_cache(), "in-process cache"),
    };
    let store = builder.build()?;
    println!("memdex shop on {} (cache: {cache})", store.describe());
    let trace = |on: bool| tracing_on.store(on, Ordering::Relaxed);

    store.migrate::<Item>()?;
    store.migrate::<CartLine>()?;
    store.migrate::<Customer>()?;
    store.migrate::<Master>()?;

    // Sample data: the post's four items in category 5, more in other categories,
    // a 1,000-line cart, customers, and a baseball roster.
    let started = Instant::now();
    store.transaction(|tx| {
        for (id, name, price) in
            [(1111, "lamp", 19.5), (2222, "desk", 129.0), (3333, "chair", 49.0), (4444, "rug", 80.0)]
        {
            tx.insert(&Item { id, category_id: 5, name: name.into(), price })?;
        }
        for id in 1..=200 {
            tx.insert(&Item { id, category_id: 10 + id % 10, name: format!("item {id}"), price: id as f64 })?;
        }
        for position in 0..1000 {
            tx.insert(&CartLine { id: 10_000 + position, cart_id: 42, item_id: position % 200 + 1, position })?;
        }
        for (id, first, last) in
            [(1, "mira", "Holm"), (2, "Mads", "Berg"), (3, "mikkel", "Dahl"), (4, "nora", "Lie"), (5, "max", "Ek")]
        {
            tx.insert(&Customer { id, first_name: first.into(), last_name: last.into() })?;
        }
        for (id, team, name, runs) in
            [(1, "SEA", "Ichiro", 127), (2, "SEA", "Edgar", 102), (3, "NYY", "Derek", 110), (4, "NYY", "Bernie", 98)]
        {
            tx.insert(&Master { id, team: team.into(), name: name.into(), runs })?;
        }
        Ok(())
    })?;
    println!("sample data: 204 items, a 1,000-line cart, 5 customers, 4 players ({:?})\n", started.elapsed());

    println!("1. items in category 5, cold cache (node and objects filled from SQL under leases):");
    let cat = 5;
    trace(true);
    let items = select!(Item, |i| i.category_id == cat).fetch(&store)?;
    trace(false);
    println!("   -> {:?}", items.iter().map(|i| i.id).collect::<Vec<_>>());
    println!("   again, hot cache (two round trips: the node, then its objects):");
    trace(true);
    let items = select!(Item, |i| i.category_id == cat).fetch(&store)?;
    trace(false);
    println!("   -> {} items\n", items.len());

    println!("2. get_items_in_cart(42, limit, offset): every page from one node");
    let first = get_items_in_cart(&store, 42, 10, 0)?;
    let before = store.stats();
    let mut pages = 0;
    for (limit, offset) in [(10, 10), (20, 500), (5, 995), (15, 37), (10, 990)] {
        let page = get_items_in_cart(&store, 42, limit, offset)?;
        pages += 1;
        println!(
            "   limit {limit:>2} offset {offset:>3}: positions {:?}..{:?}",
            page.first().map(|l| l.position),
            page.last().map(|l| l.position)
        );
    }
    let after = store.stats();
    println!(
        "   {pages} more pages after the first ({} lines): {} database queries, {} node hits — one node `cart_id=42`, not one key per page\n",
        first.len(),
        after.db_queries - before.db_queries,
        after.node_hits - before.node_hits
    );

    println!("3. move item 3333 from category 5 to 6 (add eagerly to 6, remove lazily from 5):");
    trace(true);
    store.update(&Item { id: 3333, category_id: 6, name: "chair".into(), price: 49.0 })?;
    println!("   next read of category 5 drops 3333 from the node on the database's word:");
    let five = select!(Item, |i| i.category_id == cat).fetch(&store)?;
    let six = select!(Item, |i| i.category_id == 6).fetch(&store)?;
    trace(false);
    println!("   category 5 -> {:?}", five.iter().map(|i| i.id).collect::<Vec<_>>());
    println!("   category 6 has 3333: {}\n", six.iter().any(|i| i.id == 3333));

    println!("4. customers whose first name starts with \"m\" (prefix index, case-sensitive):");
    let m_names = select!(Customer, |c| c.first_name.starts_with("m")).fetch(&store)?;
    println!("   -> {:?}", m_names.iter().map(|c| c.first_name.as_str()).collect::<Vec<_>>());
    let text = store.recall_text::<Customer>("lambda c: c.first_name.startswith('m') and c.last_name != 'Ek'", &[])?;
    println!(
        "   text form `lambda c: c.first_name.startswith('m') and c.last_name != 'Ek'` -> {:?}\n",
        text.iter().map(|c| c.first_name.as_str()).collect::<Vec<_>>()
    );

    println!("5. the average of runs (the LINQ post's `lambda m: avg(m.Runs)`):");
    let all: Option<f64> = view!(Master, |m| avg(m.runs)).fetch(&store)?;
    let team = "SEA".to_string();
    let sea: Option<f64> = view!(Master, |m| m.team == team, |m| avg(m.runs)).fetch(&store)?;
    println!("   all players: {all:?}; SEA (filtered through the cache): {sea:?}\n");

    println!("6. explain:");
    let q = select!(Item, |i| (i.category_id == 5 || i.category_id == 6) && i.price > 40.0);
    for line in q.explain(Dialect::Sqlite).to_string().lines() {
        println!("   {line}");
    }

    println!("\nstats: {:#?}", store.stats());
    drop(store);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db_path.display()));
    }
    Ok(())
}
