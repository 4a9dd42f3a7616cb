//! The shop: items by category, paged carts, a move between categories with lazy
//! removal, a prefix index, an aggregate — the scenarios of the memcached-indices
//! and LINQ posts, on SQLite with memcached when one is reachable (else the
//! in-process cache).
//!
//! `cargo run --example shop` (set `MEMDEX_MEMCACHED=host:port` to pick a server;
//! `127.0.0.1:11211` is tried by default; `MEMDEX_DATABASE_URL=postgres://…` for
//! another database).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use memdex::{Dialect, Store, select, view};
use memdex_examples::shop_models::{self, CartLine, Customer, Item, Master, memcached_address};

/// The cart query of the post: one index node serves every page.
fn get_items_in_cart(store: &Store, cart: i64, limit: u64, offset: u64) -> Result<Vec<CartLine>, memdex::Error> {
    select!(CartLine, |l| l.cart_id == cart).order_by(CartLine::position()).limit(limit).offset(offset).fetch(store)
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
    // `MEMDEX_DATABASE_URL` (or `DATABASE_URL`) moves the shop to another database,
    // `MEMDEX_MEMCACHED` to other servers; unset, the embedded default stays.
    let store = builder.from_env().build()?;
    println!("memdex shop on {} (cache: {cache})", store.describe());
    let trace = |on: bool| tracing_on.store(on, Ordering::Relaxed);

    shop_models::migrate(&store)?;

    // Sample data: the post's four items in category 5, more in other categories,
    // a 1,000-line cart, customers, and a baseball roster.
    let started = Instant::now();
    shop_models::insert_sample_data(&store)?;
    println!("sample data: {} ({:?})\n", shop_models::SAMPLE_DATA, started.elapsed());

    println!("1. items in category 5, cold cache (node and objects filled from SQL under leases):");
    let cat = 5;
    trace(true);
    let items = select!(Item, |i| i.category_id == cat).fetch(&store)?;
    trace(false);
    println!("   -> {:?}", items.iter().map(|i| i.id).collect::<Vec<_>>());
    println!("   again, hot cache (one round trip: the node; its objects are in this process's near cache):");
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
        "   {pages} more pages after the first ({} lines): {} database queries, {} node hits — one node \
         `cart_id=42>position`, not one key per page; {} lines read in all, only the pages' own (the node is \
         ordered by position)\n",
        first.len(),
        after.db_queries - before.db_queries,
        after.node_hits - before.node_hits,
        (after.object_hits + after.near_hits + after.object_misses)
            - (before.object_hits + before.near_hits + before.object_misses)
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
