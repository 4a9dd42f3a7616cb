//! The public-API contract program (`../shared/contract/src/main.rs`, which
//! `check.sh` runs on the embedded SQLite store) as a test on MariaDB: every call of
//! the public API that shared/DESIGN.md promises, once, with the same rows and the
//! same expected answers, on MariaDB (and every other database) with the in-process
//! cache and with memcached; and the async store on MariaDB.

// Tests fail by panicking, with a message saying what went wrong.
#![allow(clippy::panic, clippy::unwrap_used)]

use memdex::{Dialect, Model, Store, scan, select, view};
use memdex_tests::backends::{Backends, each_backend};
use serde::{Deserialize, Serialize};

#[derive(Model, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[memdex(table = "customer")]
#[memdex(index(city, status))]
pub struct Customer {
    #[memdex(key)]
    pub id: i64,
    #[memdex(index(prefix = 1))]
    pub first_name: String,
    pub city: String,
    pub status: String,
    #[memdex(column = "visits_total")]
    pub visits: i64,
    pub closed_at: Option<i64>,
}

fn customer(id: i64, first_name: &str, city: &str, status: &str, visits: i64) -> Customer {
    Customer { id, first_name: first_name.into(), city: city.into(), status: status.into(), visits, closed_at: None }
}

/// The contract program's body, on `store`.
fn contract(store: &Store) -> Result<(), Box<dyn std::error::Error>> {
    store.migrate::<Customer>()?;
    for c in [
        customer(1, "mira", "Oslo", "gold", 12),
        customer(2, "Mads", "Oslo", "gold", 3),
        customer(3, "mikkel", "Oslo", "basic", 7),
        customer(4, "nora", "Bergen", "gold", 9),
    ] {
        store.insert(&c)?;
    }
    let m_names = select!(Customer, |c| c.first_name.starts_with("m")).fetch(store)?;
    assert_eq!(m_names.len(), 2);
    let city = "Oslo".to_string();
    let gold = select!(Customer, |c| c.city == city && c.status == "gold");
    assert_eq!(gold.count(store)?, 2);
    let top = select!(Customer, |c| c.city == city && (c.status == "gold" || c.status == "basic"))
        .order_by_desc(Customer::visits())
        .limit(2)
        .offset(0)
        .fetch(store)?;
    assert_eq!(top.iter().map(|c| c.id).collect::<Vec<_>>(), vec![1, 3]);
    let by_name =
        select!(Customer, |c| c.city == city && c.status == "gold").order_by(Customer::first_name()).fetch(store)?;
    assert_eq!(by_name[0].first_name, "Mads");
    assert!(!gold.explain(Dialect::MySql).to_string().is_empty());
    for dialect in [Dialect::Sqlite, Dialect::Postgres, Dialect::MySql] {
        assert!(gold.sql(dialect).starts_with("SELECT"));
    }
    let busy = scan!(Customer, |c| c.visits > 8 && c.closed_at.is_none()).fetch(store)?;
    assert_eq!(busy.len(), 2);
    let avg_all: Option<f64> = view!(Customer, |c| avg(c.visits)).fetch(store)?;
    assert_eq!(avg_all, Some(31.0 / 4.0));
    let oslo_max = view!(Customer, |c| c.city == "Oslo" && c.status == "gold", |c| max(c.visits)).fetch(store)?;
    assert_eq!(oslo_max.map(|v| v as i64), Some(12));
    let mut mads = customer(2, "Mads", "Bergen", "gold", 4);
    store.update(&mads)?;
    mads.visits = 5;
    store.update(&mads)?;
    // Writing a row's current values again still finds the row (CLIENT_FOUND_ROWS).
    store.update(&mads)?;
    assert_eq!(gold.count(store)?, 1);
    store.delete::<Customer>(&3)?;
    let text = store.recall_text::<Customer>(
        "lambda c: c.city == city and c.status in ('gold', 'basic') and not c.first_name.startswith('x')",
        &[("city", "Oslo".into())],
    )?;
    assert_eq!(text.len(), 1);
    let err = store.recall_text::<Customer>("lambda c: c.visits > 3", &[]).unwrap_err();
    assert!(matches!(err, memdex::Error::Unindexable { .. }), "{err}");
    Ok(())
}

/// On every database × cache: MariaDB is the point (check.sh covers the embedded
/// SQLite store), and the others cost a second.
#[test]
fn the_contract_program_runs_on_every_backend() {
    each_backend("contract", |b: &Backends| {
        let store = b.store();
        contract(&store).unwrap_or_else(|e| panic!("{:?} + {:?}: {e}", b.db, b.cache));
    });
}

/// The async store (feature `tokio`) on MariaDB: the blocking MySQL backend runs on
/// tokio's blocking pool, as SQLite does, with the same answers.
#[test]
fn the_async_store_runs_on_mariadb() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    runtime.block_on(async {
        let url = memdex_tests::backends::mariadb().fresh_database().expect("database");
        let store = Store::builder().mysql(url).in_process_cache().build_async().await.expect("build_async");
        store.migrate::<Customer>().await.expect("migrate");
        for c in [customer(1, "mira", "Oslo", "gold", 12), customer(2, "Mads", "Oslo", "gold", 3)] {
            store.insert(&c).await.expect("insert");
        }
        store.update(&customer(2, "Mads", "Bergen", "gold", 3)).await.expect("update");
        let city = "Oslo".to_string();
        let gold = select!(Customer, |c| c.city == city && c.status == "gold");
        let rows = gold.fetch_async(&store).await.expect("fetch_async");
        assert_eq!(rows.iter().map(|c| c.id).collect::<Vec<_>>(), vec![1]);
        assert_eq!(gold.count_async(&store).await.expect("count_async"), 1);
    });
}
