//! memdex under test: the shop item as a memdex model, a store over the
//! benchmark's servers, and the queries each section times.

use std::collections::{HashMap, HashSet};
use std::hint::black_box;
use std::sync::{Arc, Mutex};

use memdex::grammar::keys::KeySpace;
use memdex::grammar::plan::NodeRef;
use memdex::grammar::sql::{self, SelectSpec};
use memdex::grammar::{Access, ParamType, Type};
use memdex::{AsyncStore, Dialect, Model, Select, Store, Value, select};

use super::data::{self, Row};
use super::offload::Strategy;
use super::timing::{Budget, Summary, measure, measure_batched};

/// Declares the shop item of `data::Row` as a memdex model on `$table`: the
/// benchmark's item, and the copies on tables of their own for the capture cost.
macro_rules! item_model {
    ($(#[$doc:meta])* $name:ident, $table:literal) => {
        $(#[$doc])*
        #[derive(Model, Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
        #[memdex(table = $table)]
        pub struct $name {
            #[memdex(key)]
            pub id: i64,
            #[memdex(index)]
            pub category_id: i64,
            pub name: String,
            pub price: f64,
            pub deleted_at: Option<i64>,
            pub description: String,
        }

        impl From<&Row> for $name {
            fn from(r: &Row) -> $name {
                $name {
                    id: r.id,
                    category_id: r.category_id,
                    name: r.name.clone(),
                    price: r.price,
                    deleted_at: r.deleted_at,
                    description: r.description.clone(),
                }
            }
        }
    };
}

item_model!(
    /// The shop item of `data::Row`, as memdex stores it.
    Item,
    "item"
);
item_model!(
    /// The same item on a table of its own whose writes outside memdex are
    /// captured: the capture cost's table (`TableWriter`).
    CapturedItem,
    "captured_item"
);
item_model!(
    /// The same item on a table of its own of the same rows, without capture: the
    /// capture cost's peer.
    UncapturedItem,
    "uncaptured_item"
);

/// A store writing one model `T` on a table of its own, created and loaded with
/// `rows` by [`table_writer`].
#[derive(Debug)]
pub struct TableWriter<T> {
    store: Store,
    model: std::marker::PhantomData<T>,
}

/// A store on `T`'s table (fresh: the benchmark's PostgreSQL is), capturing outside
/// writes when `capture` (its `migrate` installs the triggers). It drains once an
/// hour, so that its timed writes are writes alone.
pub fn table_writer<T: Model + for<'r> From<&'r Row>>(
    db: &DbTarget,
    memcached: &[String],
    rows: &[Row],
    capture: bool,
) -> Result<TableWriter<T>, String> {
    let hour = std::time::Duration::from_secs(3600);
    let store = builder(db, memcached).capture_outside_writes(capture).outbox(hour, hour).build().map_err(err)?;
    store.migrate::<T>().map_err(err)?;
    store.transaction(|tx| rows.iter().try_for_each(|r| tx.insert(&T::from(r)))).map_err(err)?;
    Ok(TableWriter { store, model: std::marker::PhantomData })
}

impl<T: Model + for<'r> From<&'r Row>> TableWriter<T> {
    pub fn update_price(&self, row: &Row) -> Result<(), String> {
        self.store.update(&T::from(row)).map_err(err)
    }

    /// Drains the changes the outside writers' timed UPDATEs left.
    pub fn drain(&self) -> Result<usize, String> {
        self.store.drain_outbox().map_err(err)
    }
}

/// Which database the store uses.
#[derive(Clone, Debug)]
pub enum DbTarget {
    Postgres(String),
    SqliteInMemory,
}

/// The store's counters that the report shows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub cache_round_trips: u64,
    pub db_queries: u64,
}

/// A memdex store with an optional record of its cache conversation.
#[derive(Debug)]
pub struct Bench {
    store: Store,
    trace: Option<Arc<Mutex<Vec<String>>>>,
}

/// A disjunction over categories, planned once (text form).
#[derive(Debug)]
pub struct AnyOf {
    query: Select<'static, Item>,
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

pub(super) fn builder(db: &DbTarget, memcached: &[String]) -> memdex::StoreBuilder {
    let b = Store::builder();
    let b = match db {
        DbTarget::Postgres(params) => b.postgres(params.clone()),
        DbTarget::SqliteInMemory => b.sqlite_in_memory(),
    };
    // The benchmark measures the near cache (on by default; named so that the
    // figure does not move with the default) unless a case turns it off.
    let b = b.near_cache_capacity(64 << 20);
    if memcached.is_empty() { b.in_process_cache() } else { b.memcached(memcached.iter().cloned()) }
}

/// A store on `db` with memcached servers `memcached` (the in-process cache if none).
pub fn open(db: &DbTarget, memcached: &[String]) -> Result<Bench, String> {
    let store = builder(db, memcached).build().map_err(err)?;
    store.migrate::<Item>().map_err(err)?;
    Ok(Bench { store, trace: None })
}

/// A store like [`open`]'s without the near cache: every hot fetch reads its
/// objects from memcached again (two round trips).
pub fn open_without_near(db: &DbTarget, memcached: &[String]) -> Result<Bench, String> {
    let store = builder(db, memcached).near_cache_capacity(0).build().map_err(err)?;
    store.migrate::<Item>().map_err(err)?;
    Ok(Bench { store, trace: None })
}

/// An [`AsyncStore`] on a tokio runtime of its own.
pub struct AsyncBench {
    store: AsyncStore,
    runtime: tokio::runtime::Runtime,
}

impl std::fmt::Debug for AsyncBench {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncBench").field("store", &self.store).finish_non_exhaustive()
    }
}

/// An async store over the same servers. `workers: 0` runs it on a current-thread
/// runtime (each fetch on the calling thread, as the blocking store's: the latency
/// comparison); otherwise on a multi-thread runtime with that many workers (the
/// throughput of many tasks).
pub fn open_async(db: &DbTarget, memcached: &[String], workers: usize) -> Result<AsyncBench, String> {
    let runtime = if workers == 0 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(workers).enable_all().build()
    }
    .map_err(err)?;
    // Sockets belong to the runtime that opened them: the store is built on its own.
    let store = runtime.block_on(builder(db, memcached).build_async()).map_err(err)?;
    runtime.block_on(store.migrate::<Item>()).map_err(err)?;
    Ok(AsyncBench { store, runtime })
}

impl AsyncBench {
    /// `AsyncStore::update` of `row`, driven to completion on this thread.
    pub fn update_price(&self, row: &Row) -> Result<(), String> {
        self.runtime.block_on(self.store.update(&Item::from(row))).map_err(err)
    }

    /// Inserts `rows` one by one (the hot loop's few hundred; a fresh database).
    pub fn load(&self, rows: &[Row]) -> Result<(), String> {
        rows.iter().try_for_each(|row| self.insert(row))
    }

    /// `AsyncStore::delete` of the row with this id, driven to completion on this thread.
    pub fn delete(&self, id: i64) -> Result<(), String> {
        self.runtime.block_on(self.store.delete::<Item>(&id)).map_err(err)
    }

    /// `AsyncStore::insert` of `row`, driven to completion on this thread.
    pub fn insert(&self, row: &Row) -> Result<(), String> {
        self.runtime.block_on(self.store.insert(&Item::from(row))).map_err(err)
    }

    /// The hot query, `fetch_async`, driven to completion on this thread.
    pub fn hot(&self, category: i64) -> Result<usize, String> {
        let rows = self
            .runtime
            .block_on(select!(Item, |i| i.category_id == category).fetch_async(&self.store))
            .map_err(err)?;
        Ok(black_box(rows).len())
    }

    pub fn counters(&self) -> Counters {
        let s = self.store.stats();
        Counters { cache_round_trips: s.cache_round_trips, db_queries: s.db_queries }
    }

    /// Fetches per second from `tasks` tasks sharing this store for `time`, and the
    /// median time of one fetch.
    pub fn throughput(&self, tasks: usize, category: i64, time: std::time::Duration) -> Result<(f64, f64), String> {
        let deadline = std::time::Instant::now() + time;
        let handles: Vec<_> = (0..tasks)
            .map(|_| {
                let store = self.store.clone();
                self.runtime.spawn(async move {
                    let mut samples = Vec::new();
                    while std::time::Instant::now() < deadline {
                        let t = std::time::Instant::now();
                        let rows = select!(Item, |i| i.category_id == category).fetch_async(&store).await;
                        rows.map_err(err)?;
                        samples.push(t.elapsed().as_nanos() as f64);
                    }
                    Ok::<_, String>(samples)
                })
            })
            .collect();
        let mut all = Vec::new();
        for handle in handles {
            all.extend(self.runtime.block_on(handle).map_err(err)??);
        }
        let n = all.len();
        Ok((n as f64 / time.as_secs_f64(), Summary::of(all).map_or(f64::NAN, |s| s.median_ns)))
    }
}

/// The same, recording every line of the cache conversation.
pub fn open_traced(db: &DbTarget, memcached: &[String]) -> Result<Bench, String> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    let store = builder(db, memcached)
        .trace_to(move |line| sink.lock().unwrap_or_else(|p| p.into_inner()).push(line.to_owned()))
        .build()
        .map_err(err)?;
    store.migrate::<Item>().map_err(err)?;
    Ok(Bench { store, trace: Some(lines) })
}

impl Bench {
    /// Inserts the rows that are not there yet (stores on one database share rows),
    /// in transactions of 500.
    pub fn load(&self, rows: &[Row]) -> Result<(), String> {
        let first = rows.first().map(|r| r.category_id);
        if let Some(c) = first
            && !select!(Item, |i| i.category_id == c).fetch(&self.store).map_err(err)?.is_empty()
        {
            return Ok(());
        }
        for chunk in rows.chunks(500) {
            self.store
                .transaction(|tx| {
                    for r in chunk {
                        tx.insert(&Item::from(r))?;
                    }
                    Ok(())
                })
                .map_err(err)?;
        }
        Ok(())
    }

    /// The hot query: every item of a category.
    pub fn hot(&self, category: i64) -> Result<usize, String> {
        let rows = select!(Item, |i| i.category_id == category).fetch(&self.store).map_err(err)?;
        Ok(black_box(rows).len())
    }

    pub fn prepare_any_of(&self, categories: &[i64]) -> Result<AnyOf, String> {
        let names: Vec<String> = (0..categories.len()).map(|i| format!("k{i}")).collect();
        let text = format!(
            "lambda c: {}",
            names.iter().map(|n| format!("c.category_id == {n}")).collect::<Vec<_>>().join(" or ")
        );
        let params: Vec<(&str, Value)> =
            names.iter().zip(categories).map(|(n, &c)| (n.as_str(), Value::Int(c))).collect();
        let query = self.store.select_text::<Item>(&text, &params).map_err(err)?;
        Ok(AnyOf { query })
    }

    pub fn any_of(&self, q: &AnyOf) -> Result<usize, String> {
        Ok(black_box(q.query.fetch(&self.store).map_err(err)?).len())
    }

    pub fn counters(&self) -> Counters {
        let s = self.store.stats();
        Counters { cache_round_trips: s.cache_round_trips, db_queries: s.db_queries }
    }

    pub fn update_price(&self, row: &Row) -> Result<(), String> {
        self.store.update(&Item::from(row)).map_err(err)
    }

    /// `Store::insert` of `row`.
    pub fn insert(&self, row: &Row) -> Result<(), String> {
        self.store.insert(&Item::from(row)).map_err(err)
    }

    /// `Store::delete` of the row with this id.
    pub fn delete(&self, id: i64) -> Result<(), String> {
        self.store.delete::<Item>(&id).map_err(err)
    }

    /// Fetches every page (limit 5–20, every page offset) of a cart and counts the
    /// distinct index-node keys the cache conversation names.
    pub fn cart_node_keys(&self, category: i64, items: u64) -> Result<usize, String> {
        let Some(trace) = &self.trace else { return Err("this store records no conversation".into()) };
        for limit in 5..=20u64 {
            let mut offset = 0;
            while offset < items {
                select!(Item, |i| i.category_id == category)
                    .order_by(Item::price())
                    .limit(limit)
                    .offset(offset)
                    .fetch(&self.store)
                    .map_err(err)?;
                offset += limit;
            }
        }
        let lines = trace.lock().unwrap_or_else(|p| p.into_inner());
        let nodes: HashSet<&str> = lines
            .iter()
            .filter_map(|l| l.strip_prefix("get "))
            .filter_map(|l| l.split(' ').next())
            .filter(|k| k.contains("category_id="))
            .collect();
        Ok(nodes.len())
    }

    pub fn describe(&self) -> String {
        self.store.describe()
    }
}

/// The node key and object keys memdex uses for a category (namespace and
/// generation are the store defaults).
pub fn keys(category: i64, ids: &[i64]) -> (Vec<String>, Vec<String>) {
    let schema = Item::schema();
    let ks = KeySpace::new("memdex", schema, 0);
    let index = schema.indexes.iter().position(|ix| ix.columns == [schema.column_index("category_id").unwrap_or(1)]);
    let node = ks.node(schema, &NodeRef { index, values: vec![Value::Int(category)] });
    (vec![node], ids.iter().map(|&id| ks.object(&Value::Int(id))).collect())
}

/// Text parse + check + normalise + plan + SQL for a typical query.
pub fn planning(budget: Budget) -> Result<Summary, String> {
    let schema = Item::schema();
    let text = "lambda c: c.category_id == cat and c.price > 10.0 and not c.name.startswith('x')";
    let params: [(&str, Value); 1] = [("cat", Value::Int(5))];
    let types = |name: &str| if name == "cat" { ParamType::Scalar(Type::Int) } else { ParamType::Missing };
    let limit = memdex::grammar::normalise::DEFAULT_DISJUNCT_LIMIT;
    measure(budget, || {
        let prepared = memdex::grammar::prepare_text(schema, text, &types, Access::Indexed, limit)
            .map_err(|e| format!("{e:?}"))?;
        let spec = SelectSpec { filter: prepared.filter.as_ref(), ..SelectSpec::default() };
        let q = sql::select(Dialect::Postgres, schema, spec, &params).map_err(err)?;
        black_box((prepared.plan, q));
        Ok(())
    })
}

/// The per-call cost of `select!` before any work (building the query value), and
/// for scale the whole fetch on a warm in-process cache.
pub fn macro_overhead(budget: Budget) -> Result<(Summary, Summary), String> {
    let category = black_box(HOT_FOR_OVERHEAD);
    // The first call prepares the call site's plan; time the calls after it.
    let overhead = measure_batched(budget, 100, || {
        let q = select!(Item, |i| i.category_id == category);
        black_box(q);
        Ok::<(), String>(())
    })?;
    let b = open(&DbTarget::SqliteInMemory, &[])?;
    let rows: Vec<Row> = (1..=10).map(|id| data::row(id, category)).collect();
    b.load(&rows)?;
    b.hot(category)?;
    let work = measure(budget, || b.hot(category).map(drop))?;
    Ok((overhead, work))
}

const HOT_FOR_OVERHEAD: i64 = 7;

/// memdex as an offload strategy: SQLite in memory behind the in-process cache.
pub fn offload_strategy(rows: &[(i64, i64, f64)]) -> Result<Box<dyn Strategy>, String> {
    let b = open_traced(&DbTarget::SqliteInMemory, &[])?;
    let items: Vec<Row> = rows
        .iter()
        .map(|&(id, c, p)| {
            let mut r = data::row(id, c);
            r.price = p;
            r
        })
        .collect();
    b.load(&items)?;
    if let Some(t) = &b.trace {
        t.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
    let start = b.counters();
    Ok(Box::new(MemdexOffload {
        rows: items.iter().map(|r| (r.id, Item::from(r))).collect(),
        read_queries: 0,
        bench: b,
        _start: start,
    }))
}

#[derive(Debug)]
struct MemdexOffload {
    bench: Bench,
    rows: HashMap<i64, Item>,
    read_queries: u64,
    _start: Counters,
}

impl Strategy for MemdexOffload {
    fn name(&self) -> String {
        "memdex (one index node per category)".into()
    }

    fn read(&mut self, _now_ms: u64, category: i64, limit: u64, offset: u64) -> Result<Vec<i64>, String> {
        let before = self.bench.counters().db_queries;
        let rows = select!(Item, |i| i.category_id == category)
            .order_by(Item::price())
            .limit(limit)
            .offset(offset)
            .fetch(&self.bench.store)
            .map_err(err)?;
        self.read_queries += self.bench.counters().db_queries - before;
        Ok(rows.into_iter().map(|r| r.id).collect())
    }

    fn move_item(&mut self, _now_ms: u64, id: i64, category: i64) -> Result<(), String> {
        let item = self.rows.get_mut(&id).ok_or_else(|| format!("no item {id}"))?;
        item.category_id = category;
        self.bench.store.update(&*item).map_err(err)
    }

    fn read_queries(&self) -> u64 {
        self.read_queries
    }

    fn keys_written(&self) -> usize {
        let Some(trace) = &self.bench.trace else { return 0 };
        let lines = trace.lock().unwrap_or_else(|p| p.into_inner());
        let keys: HashSet<&str> = lines
            .iter()
            .filter_map(|l| l.strip_prefix("cas ").or_else(|| l.strip_prefix("set ")))
            .filter_map(|l| l.split(' ').next())
            .collect();
        keys.len()
    }
}

#[cfg(test)]
mod model_tests {
    use super::*;

    /// The capture cost compares tables of the same rows: each copy of the item is
    /// on a table of its own, with the item's columns and index.
    #[test]
    fn the_item_copies_are_on_tables_of_their_own() {
        let tables = [Item::schema(), CapturedItem::schema(), UncapturedItem::schema()].map(|s| s.table.as_str());
        assert_eq!(tables, ["item", "captured_item", "uncaptured_item"]);
        assert_eq!(CapturedItem::schema().columns, Item::schema().columns);
        assert_eq!(UncapturedItem::schema().indexes, Item::schema().indexes);
    }
}
