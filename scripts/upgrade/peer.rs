//! One process of the rolling-upgrade check (`scripts/upgrade-check`): a store on a
//! shared SQLite file and memcached, built against one release of memdex, that runs
//! the commands `check.py` sends on stdin, one line each, and answers each with one
//! line. It uses only the API both releases have, so the same source builds against
//! the previous release and this one.
//!
//! Commands: `insert ID CAT NAME`, `update ID CAT NAME`, `delete ID` (answer `ok`
//! or the error), `fetch A` and `fetch2 A B` (the ids of the rows in category A, or in
//! A or B, through the cache, sorted), `truth A B` (the same from the database alone,
//! `scan!`), `stats` (the store's counters).

use std::io::{BufRead, Write};

use memdex::{Model, Store, scan, select};

#[derive(Model, Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[memdex(table = "upgrade_item")]
pub struct Item {
    #[memdex(key)]
    pub id: i64,
    #[memdex(index)]
    pub cat: i64,
    pub name: String,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, sqlite, memcached] = &args[..] else {
        eprintln!("usage: peer SQLITE_FILE MEMCACHED_ADDR");
        std::process::exit(2);
    };
    let store = Store::builder().sqlite(sqlite.as_str()).memcached([memcached.as_str()]).build().expect("a store");
    store.migrate::<Item>().expect("migrate");
    let stdout = std::io::stdout();
    for line in std::io::stdin().lock().lines() {
        let line = line.expect("a line");
        let answer = run(&store, &line);
        let mut out = stdout.lock();
        writeln!(out, "{answer}").and_then(|()| out.flush()).expect("stdout");
    }
}

fn run(store: &Store, line: &str) -> String {
    let words: Vec<&str> = line.split_whitespace().collect();
    let int = |i: usize| words.get(i).and_then(|w| w.parse::<i64>().ok()).unwrap_or(-1);
    let row = || Item { id: int(1), cat: int(2), name: words.get(3).copied().unwrap_or("").to_owned() };
    let done = |r: Result<(), memdex::Error>| r.map_or_else(|e| format!("error: {e}"), |()| "ok".to_owned());
    let ids = |r: Result<Vec<Item>, memdex::Error>| match r {
        Ok(rows) => {
            let mut ids: Vec<i64> = rows.iter().map(|i| i.id).collect();
            ids.sort_unstable();
            ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
        }
        Err(e) => format!("error: {e}"),
    };
    let (a, b) = (int(1), int(2));
    match words.first().copied() {
        Some("insert") => done(store.insert(&row())),
        Some("update") => done(store.update(&row())),
        Some("delete") => done(store.delete::<Item>(&int(1))),
        Some("fetch") => ids(select!(Item, |i| i.cat == a).fetch(store)),
        Some("fetch2") => ids(select!(Item, |i| i.cat == a || i.cat == b).fetch(store)),
        Some("truth") => ids(scan!(Item, |i| i.cat == a || i.cat == b).fetch(store)),
        Some("stats") => format!("{:?}", store.stats()),
        _ => format!("error: unknown command {line:?}"),
    }
}
