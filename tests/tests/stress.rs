//! Concurrency stress: writer threads move rows between index values and edit their
//! fields while reader threads query, through several stores ("processes") sharing
//! one database and one cache. Every read is checked, after the run, against what
//! the database held around it:
//!
//! * a row returned must equal a version of that row that could have been current
//!   at some moment during the read, and must match the query;
//! * a row whose every possibly-current version during the read existed and matched
//!   (it matched throughout) must be returned.
//!
//! Writers own disjoint sets of rows, so each row's versions are committed in a
//! known order; each version is recorded with the instants just before its write
//! began and just after it returned (commit and cache batch included). Readers record
//! the instants around their fetch. Seeds are fixed; counts come from the
//! environment for soak runs (docs/soak.md).
//!
//! The "processes" run on either driver: blocking stores called from threads, async
//! stores awaited from threads (mixed with blocking ones on one database and one
//! cache), or async stores driven by tokio tasks on a multi-thread runtime.
//!
//! The `two_versions_*` runs put two versions of the model on the table at once, as a
//! rolling deploy does (issue 15; `rolling_deploy.rs` tests each shape step by step):
//! `Acct` (v1) and `AcctV2`, which maps a nullable column `note` as well and declares
//! an index on `val` that v1 does not. v1 migrates first (creating the table), the
//! team's migration adds `note`, then v2 migrates (creating its index and registering
//! it in `memdex_indexes`). Processes of both versions then write and read the same
//! rows, v2 also through its index on `val`, whose nodes v1's writes reach only through
//! the registry. Each read is checked as above on the fields its version maps: a v1
//! update leaves `note` as it was (its statement names only v1's columns), a v1 insert
//! leaves it NULL, and a v2 write sets it.

// Tests fail by panicking, with a message saying what went wrong.
#![allow(clippy::panic, clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use memdex::cache::in_process::InProcessCache;
use memdex::cache::memcached::Memcached;
use memdex::cache::{CacheBackend, CacheConfig, CacheError, CacheOp, CacheReply};
use memdex::db::Database;
use memdex::db::mysql::MySql;
use memdex::db::postgres::Postgres;
use memdex::db::sqlite::Sqlite;
use memdex::{AsyncStore, Model, Schema, Store, Type, Value, select};
use memdex_tests::asynchronous::{block_on, runtime};
use memdex_tests::servers::memcached::MemcachedServer;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Acct {
    pub id: i64,
    pub bucket: i64,
    pub val: i64,
    /// Incremented by every write, so that two versions never look alike.
    pub ver: i64,
}

impl Model for Acct {
    type Key = i64;

    fn schema() -> &'static Schema {
        static SCHEMA: OnceLock<Schema> = OnceLock::new();
        SCHEMA.get_or_init(|| {
            Schema::new("Acct", "stress_acct")
                .column("id", Type::Int, false)
                .column("bucket", Type::Int, false)
                .column("val", Type::Int, false)
                .column("ver", Type::Int, false)
                .key("id")
                .index(&["bucket"], None)
        })
    }

    const INDEXES: &'static [memdex::__private::IndexInfo] = &[
        memdex::__private::IndexInfo { columns: &["id"], prefix: 0 },
        memdex::__private::IndexInfo { columns: &["bucket"], prefix: 0 },
    ];
    const INDEX_LIST: &'static str = "id (key), bucket";

    fn column_value(&self, column: usize) -> Value {
        Value::Int([self.id, self.bucket, self.val, self.ver].get(column).copied().unwrap_or_default())
    }

    fn from_values(values: Vec<Value>) -> Result<Self, String> {
        let ints: Vec<i64> = values
            .iter()
            .map(|v| v.as_i64().ok_or_else(|| format!("not an integer: {v:?}")))
            .collect::<Result<_, _>>()?;
        match ints[..] {
            [id, bucket, val, ver] => Ok(Acct { id, bucket, val, ver }),
            _ => Err(format!("{} columns, expected 4", ints.len())),
        }
    }

    fn key(&self) -> i64 {
        self.id
    }
}

/// The second version of `Acct`, on the same table, as a rolling deploy runs it next
/// to the first: it maps a nullable column `note` (added by the team's migration before
/// this version is deployed) and declares an index on `val`, which v1 does not.
#[derive(Model, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[memdex(table = "stress_acct")]
pub struct AcctV2 {
    #[memdex(key)]
    pub id: i64,
    #[memdex(index)]
    pub bucket: i64,
    #[memdex(index)]
    pub val: i64,
    pub ver: i64,
    pub note: Option<String>,
}

/// `Acct` with an ordered index instead of its index on `bucket`: a bucket is a cart
/// whose rows are kept in the order of `val` (issue 16), for the paging runs
/// (`*_pages_*`), which run this version alone on a table of its own.
#[derive(Model, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[memdex(table = "stress_acct")]
#[memdex(index(bucket, order_by = val))]
pub struct AcctOrdered {
    #[memdex(key)]
    pub id: i64,
    pub bucket: i64,
    pub val: i64,
    pub ver: i64,
}

/// A row as the table holds it, every column: the oracle's record and what the
/// writers and readers trade in. v2 maps every column; in the runs of v1 alone,
/// `note` stays `None`.
type Row = AcctV2;

/// Which version of the model a process runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Build {
    V1,
    V2,
    /// `AcctOrdered`: v1's columns, an ordered index.
    Ordered,
}

impl Build {
    /// The row as this version reads it.
    fn sees(self, row: &Row) -> Row {
        match self {
            Build::V1 | Build::Ordered => Acct::from_row(row).into_row(),
            Build::V2 => row.clone(),
        }
    }

    /// `note` after a write through this version: v2 writes `fresh`; v1's statements
    /// name no `note`, so its update leaves the one the row had (`was`) and its insert
    /// leaves NULL (`was` is `None`).
    fn note(self, fresh: String, was: Option<String>) -> Option<String> {
        match self {
            Build::V1 | Build::Ordered => was,
            Build::V2 => Some(fresh),
        }
    }
}

/// A version's struct, made from and turned into the table's row.
trait Edition: Model<Key = i64> {
    fn from_row(row: &Row) -> Self;
    fn into_row(self) -> Row;
}

impl Edition for Acct {
    fn from_row(r: &Row) -> Acct {
        Acct { id: r.id, bucket: r.bucket, val: r.val, ver: r.ver }
    }
    fn into_row(self) -> Row {
        Row { id: self.id, bucket: self.bucket, val: self.val, ver: self.ver, note: None }
    }
}

impl Edition for AcctOrdered {
    fn from_row(r: &Row) -> AcctOrdered {
        AcctOrdered { id: r.id, bucket: r.bucket, val: r.val, ver: r.ver }
    }
    fn into_row(self) -> Row {
        Row { id: self.id, bucket: self.bucket, val: self.val, ver: self.ver, note: None }
    }
}

impl Edition for AcctV2 {
    fn from_row(r: &Row) -> AcctV2 {
        r.clone()
    }
    fn into_row(self) -> Row {
        self
    }
}

/// One committed version of a row: `None` when the write deleted it. `began` is
/// taken before the write started, `ended` after it returned; the commit happened
/// in between. `by` is the version of the model that wrote it.
#[derive(Clone)]
struct Version {
    began: Instant,
    ended: Instant,
    by: Build,
    state: Option<Row>,
}

/// The state and its writer (the instants say nothing once printed).
impl std::fmt::Debug for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} by {:?}", self.state, self.by)
    }
}

#[derive(Clone, Debug)]
enum Read {
    Bucket(i64),
    Buckets(Vec<i64>, i64),
    Key(i64),
    /// Through v2's index on `val` (one node, or several).
    Vals(Vec<i64>),
    /// A page of a bucket in the order of `val` (the paging runs).
    Page(PageRead),
}

/// A page of bucket `bucket` ordered by `val` (descending: reversed), ties by `id`:
/// `limit` rows from `offset`, of the rows after `after` (keyset paging: the `(val,
/// id)` of the last row of the previous page).
#[derive(Clone, Debug)]
struct PageRead {
    bucket: i64,
    descending: bool,
    limit: u64,
    offset: u64,
    after: Option<(i64, i64)>,
}

impl PageRead {
    /// A row's place in the page's order.
    fn place(&self, val: i64, id: i64) -> (i64, i64) {
        (if self.descending { -val } else { val }, id)
    }

    fn matches(&self, a: &Row) -> bool {
        a.bucket == self.bucket && self.after.is_none_or(|(val, id)| self.place(a.val, a.id) > self.place(val, id))
    }

    /// Whether the page must hold a row that matched throughout the read and whose
    /// every possibly-current version is at `places`: a page is a slice of the
    /// matching rows in order, so every matching row strictly between its first and
    /// its last row belongs in it; before its first only when it starts at the first
    /// matching row (`offset` 0), after its last only when it is short (the end).
    fn must_hold(&self, rows: &[Row], places: &[(i64, i64)]) -> bool {
        let at = |r: &Row| self.place(r.val, r.id);
        let above_first = match (self.offset, rows.first()) {
            (0, _) => true,
            (_, Some(first)) => places.iter().all(|p| *p > at(first)),
            (_, None) => false,
        };
        let below_last = match rows.last() {
            _ if (rows.len() as u64) < self.limit => true,
            Some(last) => places.iter().all(|p| *p < at(last)),
            None => true,
        };
        above_first && below_last
    }
}

impl Read {
    fn matches(&self, a: &Row) -> bool {
        match self {
            Read::Bucket(b) => a.bucket == *b,
            Read::Buckets(bs, min) => bs.contains(&a.bucket) && a.val >= *min,
            Read::Key(k) => a.id == *k,
            Read::Vals(vs) => vs.contains(&a.val),
            Read::Page(p) => p.matches(a),
        }
    }

    /// The query as text, and its parameters.
    fn text(&self) -> (&'static str, Vec<(&'static str, Value)>) {
        match self {
            Read::Bucket(b) => ("lambda a: a.bucket == b", vec![("b", (*b).into())]),
            Read::Buckets(bs, min) => {
                ("lambda a: a.bucket in bs and a.val >= m", vec![("bs", bs.clone().into()), ("m", (*min).into())])
            }
            Read::Key(k) => ("lambda a: a.id == k", vec![("k", (*k).into())]),
            Read::Page(p) => ("lambda a: a.bucket == b", vec![("b", p.bucket.into())]),
            Read::Vals(vs) => match vs[..] {
                [v] => ("lambda a: a.val == v", vec![("v", v.into())]),
                _ => ("lambda a: a.val in vs", vec![("vs", vs.clone().into())]),
            },
        }
    }
}

/// A write, as the table sees it.
#[derive(Clone, Debug)]
enum Write {
    Insert(Row),
    Update(Row),
    Delete(i64),
}

/// A blocking store, or an async one.
#[derive(Clone, Debug)]
enum Handle {
    Blocking(Store),
    Tokio(AsyncStore),
}

impl Handle {
    fn stats(&self) -> memdex::Stats {
        match self {
            Handle::Blocking(s) => s.stats(),
            Handle::Tokio(s) => s.stats(),
        }
    }

    async fn migrate<M: Edition>(&self) -> Result<(), memdex::Error> {
        match self {
            Handle::Blocking(s) => s.migrate::<M>(),
            Handle::Tokio(s) => s.migrate::<M>().await,
        }
    }

    /// `write` through version `M`, which writes the columns it maps.
    async fn write<M: Edition>(&self, write: &Write) -> Result<(), memdex::Error> {
        match (self, write) {
            (Handle::Blocking(s), Write::Insert(a)) => s.insert(&M::from_row(a)),
            (Handle::Blocking(s), Write::Update(a)) => s.update(&M::from_row(a)),
            (Handle::Blocking(s), Write::Delete(id)) => s.delete::<M>(id),
            (Handle::Tokio(s), Write::Insert(a)) => s.insert(&M::from_row(a)).await,
            (Handle::Tokio(s), Write::Update(a)) => s.update(&M::from_row(a)).await,
            (Handle::Tokio(s), Write::Delete(id)) => s.delete::<M>(id).await,
        }
    }

    /// A page through `AcctOrdered`'s ordered index.
    async fn page(&self, p: &PageRead) -> Result<Vec<Row>, memdex::Error> {
        let bucket = p.bucket;
        let q = select!(AcctOrdered, |a| a.bucket == bucket);
        let q = if p.descending { q.order_by_desc(AcctOrdered::val()) } else { q.order_by(AcctOrdered::val()) };
        let q = q.limit(p.limit).offset(p.offset);
        // Keyset paging reads the order column and the key of the row it is given.
        let q = match p.after {
            Some((val, id)) => q.after(&AcctOrdered { id, bucket, val, ver: 0 }),
            None => q,
        };
        let rows = match self {
            Handle::Blocking(s) => q.fetch(s)?,
            Handle::Tokio(s) => q.fetch_async(s).await?,
        };
        Ok(rows.into_iter().map(AcctOrdered::into_row).collect())
    }

    /// `read` through version `M`, its rows as `M` sees them.
    async fn read<M: Edition>(&self, read: &Read) -> Result<Vec<Row>, memdex::Error> {
        let (text, params) = read.text();
        let rows = match self {
            Handle::Blocking(s) => s.recall_text::<M>(text, &params)?,
            Handle::Tokio(s) => s.recall_text::<M>(text, &params).await?,
        };
        Ok(rows.into_iter().map(M::into_row).collect())
    }
}

/// One "process": a store, running one version of the model.
#[derive(Clone, Debug)]
struct Proc {
    store: Handle,
    build: Build,
}

impl Proc {
    async fn migrate(&self) -> Result<(), memdex::Error> {
        match self.build {
            Build::V1 => self.store.migrate::<Acct>().await,
            Build::V2 => self.store.migrate::<AcctV2>().await,
            Build::Ordered => self.store.migrate::<AcctOrdered>().await,
        }
    }

    async fn write(&self, write: &Write) -> Result<(), memdex::Error> {
        match self.build {
            Build::V1 => self.store.write::<Acct>(write).await,
            Build::V2 => self.store.write::<AcctV2>(write).await,
            Build::Ordered => self.store.write::<AcctOrdered>(write).await,
        }
    }

    async fn read(&self, read: &Read) -> Result<Vec<Row>, memdex::Error> {
        match self.build {
            _ if matches!(read, Read::Page(_)) => match (self.build, read) {
                (Build::Ordered, Read::Page(p)) => self.store.page(p).await,
                _ => panic!("pages are read through the ordered build only, not {:?}", self.build),
            },
            Build::V1 => self.store.read::<Acct>(read).await,
            Build::V2 => self.store.read::<AcctV2>(read).await,
            Build::Ordered => self.store.read::<AcctOrdered>(read).await,
        }
    }
}

/// Processes on `stores`, every one running v1.
fn v1_only(stores: impl IntoIterator<Item = Handle>) -> Vec<Proc> {
    stores.into_iter().map(|store| Proc { store, build: Build::V1 }).collect()
}

/// Processes on `stores`, every one running the ordered build.
fn ordered_only(stores: impl IntoIterator<Item = Handle>) -> Vec<Proc> {
    stores.into_iter().map(|store| Proc { store, build: Build::Ordered }).collect()
}

/// Processes on `stores` running v1 and v2 in turn (v1 first).
fn both_versions(stores: impl IntoIterator<Item = Handle>) -> Vec<Proc> {
    let builds = [Build::V1, Build::V2].into_iter().cycle();
    stores.into_iter().zip(builds).map(|(store, build)| Proc { store, build }).collect()
}

/// How the writers and readers run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// One thread each, awaiting each call in turn.
    Threads,
    /// One tokio task each, on the test runtime (only async stores).
    Tasks,
}

#[derive(Debug)]
struct Observation {
    began: Instant,
    ended: Instant,
    /// The version that read: the rows are as it sees them.
    build: Build,
    read: Read,
    rows: Vec<Row>,
}

/// A cache shared by several stores (several "processes" on one cache).
#[derive(Debug, Clone)]
struct Shared(Arc<dyn CacheBackend>);

impl CacheBackend for Shared {
    fn run(&self, ops: &[CacheOp<'_>]) -> Vec<Result<CacheReply, CacheError>> {
        self.0.run(ops)
    }
    fn max_value_size(&self) -> usize {
        self.0.max_value_size()
    }
    fn describe(&self) -> String {
        self.0.describe()
    }
}

#[derive(Clone, Copy, Debug)]
struct Shape {
    writers: usize,
    readers: usize,
    stores: usize,
    rows: i64,
    buckets: i64,
    writes_per_writer: usize,
    reads_per_reader: usize,
    seed: u64,
    /// Reads over several nodes at once (`bucket in (…)`), which found K7 (a row
    /// moving between a node answered by the database and one answered by the
    /// cache); on by default since its fix, `MEMDEX_STRESS_MULTI=0` turns them off.
    multi_node: bool,
    /// Writers set `val` in `-vals..vals`, and v2 reads those values.
    vals: i64,
    /// Readers page through buckets (`page_reader`) instead of `reader`'s reads.
    pages: bool,
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

impl Shape {
    fn ci(seed: u64) -> Shape {
        let scale = env_usize("MEMDEX_STRESS_SCALE", 1);
        Shape {
            // `MEMDEX_STRESS_WRITERS=1` leaves the nodes unchanged between more reads,
            // so that more multi-node reads skip their re-read (`node_sets_seen`).
            writers: env_usize("MEMDEX_STRESS_WRITERS", 3).max(1),
            readers: 3,
            stores: 3,
            rows: 24,
            buckets: 4,
            writes_per_writer: 250 * scale,
            reads_per_reader: 250 * scale,
            seed: std::env::var("MEMDEX_STRESS_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(seed),
            multi_node: env_usize("MEMDEX_STRESS_MULTI", 1) == 1,
            vals: 50,
            pages: false,
        }
    }

    /// Paging: two buckets of about twelve rows each, and few values of `val`, so
    /// that pages cut through ties (broken by `id`).
    fn pages(seed: u64) -> Shape {
        Shape { buckets: 2, vals: 8, pages: true, ..Shape::ci(seed) }
    }

    /// Two versions at once: two processes of each, and few enough values of `val`
    /// that v2's nodes of its index on `val` hold several rows each.
    fn two_versions(seed: u64) -> Shape {
        Shape { stores: 4, vals: 4, ..Shape::ci(seed) }
    }
}

static SEQ: AtomicU64 = AtomicU64::new(0);

fn namespace(tag: &str) -> String {
    format!("stress_{tag}_{}_{}", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed))
}

/// Migrates v1, then runs writers and readers and checks every read. Returns
/// (writes, reads, checks).
fn stress(tag: &str, procs: Vec<Proc>, shape: Shape, mode: Mode) -> (usize, usize, usize) {
    block_on(procs[0].migrate()).expect("migrate");
    run(tag, procs, shape, mode)
}

/// The stress run with two versions of the model at once, in a rolling deploy's
/// order: v1 migrates (creating the table), the team's migration adds `note` through
/// `db` (memdex's `migrate` never adds a column), then v2 migrates (its index on `val`
/// is created and registered). `procs` holds processes of both versions, v1 first.
/// Every run has a database of its own, so `stress_acct` there is this run's table.
fn stress_two_versions(tag: &str, procs: Vec<Proc>, db: &dyn Database, shape: Shape) -> (usize, usize, usize) {
    let first = |build| procs.iter().find(|p| p.build == build).expect("a process of each version");
    block_on(first(Build::V1).migrate()).expect("v1 migrates");
    db.execute_ddl(&["ALTER TABLE stress_acct ADD COLUMN note TEXT".to_owned()]).expect("the migration adds `note`");
    block_on(first(Build::V2).migrate()).expect("v2 migrates");
    run(tag, procs, shape, Mode::Threads)
}

/// Runs writers and readers on a migrated table, then checks every read.
fn run(tag: &str, procs: Vec<Proc>, shape: Shape, mode: Mode) -> (usize, usize, usize) {
    let seeder = procs[0].clone();
    let start = Instant::now();
    // Initial rows, committed before anything starts.
    let mut history: HashMap<i64, Vec<Version>> = HashMap::new();
    for id in 1..=shape.rows {
        let a = Row { id, bucket: id % shape.buckets, val: id, ver: 0, note: None };
        block_on(seeder.write(&Write::Insert(a.clone()))).expect("seed row");
        history.insert(id, vec![Version { began: start, ended: Instant::now(), by: seeder.build, state: Some(a) }]);
    }
    let procs = Arc::new(procs);
    let writers: Vec<_> = (0..shape.writers)
        .map(|w| {
            let own: HashMap<i64, Row> = history
                .iter()
                .filter(|(id, _)| (**id as usize) % shape.writers == w)
                .map(|(id, v)| (*id, v[0].state.clone().expect("seeded")))
                .collect();
            spawn(mode, writer(w, procs.clone(), own, shape))
        })
        .collect();
    let readers: Vec<_> = (0..shape.readers)
        .map(|r| {
            if shape.pages {
                spawn(mode, page_reader(r, procs.clone(), shape))
            } else {
                spawn(mode, reader(r, procs.clone(), shape))
            }
        })
        .collect();
    for w in writers {
        for (id, v) in w.join() {
            history.entry(id).or_default().push(v);
        }
    }
    let observations: Vec<Observation> = readers.into_iter().flat_map(Running::join).collect();
    // Each row's versions are in commit order already (one writer per row).
    let (checks, violations) = check(&history, &observations);
    let writes = shape.writers * shape.writes_per_writer;
    let reads = observations.len();
    let stats: Vec<memdex::Stats> = procs.iter().map(|p| p.store.stats()).collect();
    let sum = |f: fn(&memdex::Stats) -> u64| stats.iter().map(f).sum::<u64>();
    eprintln!(
        "stress {tag}: {writes} writes, {reads} reads, {checks} checks, {} violations, {:.1?}; \
         cache errors {}, mark-downs {}, owed {}, deferred {}, near hits {}, near unverified {}, \
         multi-node reads re-read {} / seen unchanged {}, guarded statements shut {}",
        violations.len(),
        start.elapsed(),
        sum(|s| s.cache_errors),
        sum(|s| s.cache_markdowns),
        sum(|s| s.outbox_owed),
        sum(|s| s.outbox_deferred),
        sum(|s| s.near_hits),
        sum(|s| s.near_unverified),
        sum(|s| s.node_rechecks),
        sum(|s| s.node_sets_seen),
        sum(|s| s.guards_shut),
    );
    assert_eq!(sum(|s| s.cache_errors), 0, "stress {tag}: the cache failed, so the run tested nothing: {stats:?}");
    assert!(
        violations.is_empty(),
        "stress {tag}: {} violations, first ones:\n{}",
        violations.len(),
        violations[..violations.len().min(5)].join("\n")
    );
    (writes, reads, checks)
}

/// A cache timeout no loaded machine reaches. This test checks the race rules on a
/// working cache; a cache batch that fails after a commit leaves other processes
/// stale until the outbox drains (race rule 4's bound, which `faults.rs` tests), and
/// a timeout caused by the load alone would look like a race here.
const PATIENCE: Duration = Duration::from_secs(10);

fn patient() -> CacheConfig {
    CacheConfig { connect_timeout: PATIENCE, io_timeout: PATIENCE, ..CacheConfig::default() }
}

/// A writer or reader running on a thread or as a task.
enum Running<T> {
    Thread(thread::JoinHandle<T>),
    Task(tokio::task::JoinHandle<T>),
}

impl<T> Running<T> {
    fn join(self) -> T {
        match self {
            Running::Thread(handle) => handle.join().expect("a writer or reader thread panicked"),
            Running::Task(handle) => block_on(handle).expect("a writer or reader task panicked"),
        }
    }
}

fn spawn<T: Send + 'static>(mode: Mode, work: impl std::future::Future<Output = T> + Send + 'static) -> Running<T> {
    match mode {
        Mode::Threads => Running::Thread(thread::spawn(move || block_on(work))),
        Mode::Tasks => Running::Task(runtime().spawn(work)),
    }
}

/// One writer: moves, edits, deletes and re-inserts its own rows through random
/// processes (of either version, where both run), logging each version with the
/// instants around its write.
async fn writer(w: usize, procs: Arc<Vec<Proc>>, mut own: HashMap<i64, Row>, shape: Shape) -> Vec<(i64, Version)> {
    let mut rng = StdRng::seed_from_u64(shape.seed ^ ((w as u64 + 1) * 0x9E37_79B9));
    let ids: Vec<i64> = {
        let mut v: Vec<i64> = own.keys().copied().collect();
        v.sort_unstable();
        v
    };
    let mut deleted: HashMap<i64, Row> = HashMap::new();
    let mut log: Vec<(i64, Version)> = Vec::new();
    for n in 0..shape.writes_per_writer {
        let proc = &procs[rng.gen_range(0..procs.len())];
        let id = ids[rng.gen_range(0..ids.len())];
        let began = Instant::now();
        let note = format!("writer {w}, op {n}");
        let write = if let Some(mut gone) = deleted.remove(&id) {
            gone.ver += 1;
            gone.bucket = rng.gen_range(0..shape.buckets);
            gone.note = proc.build.note(note, None);
            Write::Insert(gone)
        } else {
            let mut a = own.remove(&id).expect("a row not deleted is current");
            a.ver += 1;
            match rng.gen_range(0..10) {
                0 => {
                    deleted.insert(id, a);
                    Write::Delete(id)
                }
                roll => {
                    if roll <= 5 {
                        a.bucket = (a.bucket + rng.gen_range(1..shape.buckets)) % shape.buckets;
                    } else {
                        a.val = rng.gen_range(-shape.vals..shape.vals);
                    }
                    a.note = proc.build.note(note, a.note.take());
                    Write::Update(a)
                }
            }
        };
        proc.write(&write).await.unwrap_or_else(|e| panic!("writer {w} op {n}, {:?}: {write:?}: {e}", proc.build));
        let state = match write {
            Write::Insert(a) | Write::Update(a) => {
                own.insert(id, a.clone());
                Some(a)
            }
            Write::Delete(_) => None,
        };
        log.push((id, Version { began, ended: Instant::now(), by: proc.build, state }));
    }
    log
}

/// One reader: random single-node, multi-node and key reads through random
/// processes, and reads through v2's index on `val` when the process runs v2, each
/// recorded with the instants around it.
async fn reader(r: usize, procs: Arc<Vec<Proc>>, shape: Shape) -> Vec<Observation> {
    let mut rng = StdRng::seed_from_u64(shape.seed ^ ((r as u64 + 101) * 0x85EB_CA6B));
    let mut seen = Vec::with_capacity(shape.reads_per_reader);
    for n in 0..shape.reads_per_reader {
        let proc = &procs[rng.gen_range(0..procs.len())];
        let through_val = proc.build == Build::V2 && rng.gen_bool(0.4);
        let read = match rng.gen_range(0..4) {
            _ if through_val => {
                Read::Vals((0..rng.gen_range(1..3)).map(|_| rng.gen_range(-shape.vals..shape.vals)).collect())
            }
            0 | 1 => Read::Bucket(rng.gen_range(0..shape.buckets)),
            2 if !shape.multi_node => Read::Bucket(rng.gen_range(0..shape.buckets)),
            2 => Read::Buckets(
                (0..rng.gen_range(1..3)).map(|_| rng.gen_range(0..shape.buckets)).collect(),
                rng.gen_range(-60..60),
            ),
            _ => Read::Key(rng.gen_range(1..=shape.rows)),
        };
        let began = Instant::now();
        let rows = proc.read(&read).await.unwrap_or_else(|e| panic!("reader {r} op {n}, {:?}: {e}", proc.build));
        seen.push(Observation { began, ended: Instant::now(), build: proc.build, read, rows });
    }
    seen
}

/// One paging reader: walks a random bucket page by page, ascending or descending,
/// by `offset` or by keyset (`after` the last row of the previous page), through a
/// random process for each page, each page recorded with the instants around it. A
/// walk ends at a short page or after six pages.
async fn page_reader(r: usize, procs: Arc<Vec<Proc>>, shape: Shape) -> Vec<Observation> {
    let mut rng = StdRng::seed_from_u64(shape.seed ^ ((r as u64 + 211) * 0xC2B2_AE35));
    let mut seen = Vec::with_capacity(shape.reads_per_reader);
    while seen.len() < shape.reads_per_reader {
        let (bucket, descending, keyset) = (rng.gen_range(0..shape.buckets), rng.gen_bool(0.5), rng.gen_bool(0.5));
        let limit = rng.gen_range(2..6);
        let mut page = PageRead { bucket, descending, limit, offset: 0, after: None };
        for _ in 0..6 {
            let proc = &procs[rng.gen_range(0..procs.len())];
            let read = Read::Page(page.clone());
            let began = Instant::now();
            let rows = proc.read(&read).await.unwrap_or_else(|e| panic!("page reader {r}, {page:?}: {e}"));
            seen.push(Observation { began, ended: Instant::now(), build: proc.build, read, rows: rows.clone() });
            match rows.last() {
                Some(last) if rows.len() as u64 == limit => {
                    if keyset {
                        page.after = Some((last.val, last.id));
                    } else {
                        page.offset += limit;
                    }
                }
                _ => break,
            }
        }
    }
    seen
}

/// The versions of a row that may have been current at some moment of [r0, r1].
fn possibly_current(versions: &[Version], r0: Instant, r1: Instant) -> Vec<&Version> {
    versions
        .iter()
        .enumerate()
        .filter(|(i, v)| {
            let could_start = v.began <= r1;
            let next_could_end_after = versions.get(i + 1).is_none_or(|next| next.ended >= r0);
            could_start && next_could_end_after
        })
        .map(|(_, v)| v)
        .collect()
}

fn check(history: &HashMap<i64, Vec<Version>>, observations: &[Observation]) -> (usize, Vec<String>) {
    let mut checks = 0;
    let mut violations = Vec::new();
    for o in observations {
        let mut ids: Vec<i64> = o.rows.iter().map(|a| a.id).collect();
        ids.sort_unstable();
        ids.dedup();
        checks += 1;
        let read = format!("{:?} read {:?}", o.build, o.read);
        if ids.len() != o.rows.len() {
            violations.push(format!("{read}: a row returned twice: {:?}", o.rows));
        }
        if let Read::Page(p) = &o.read {
            checks += 1;
            if p.limit < o.rows.len() as u64
                || !o.rows.windows(2).all(|w| p.place(w[0].val, w[0].id) < p.place(w[1].val, w[1].id))
            {
                violations.push(format!("{read}: the page is out of order or too long: {:?}", o.rows));
            }
        }
        for row in &o.rows {
            checks += 1;
            let Some(versions) = history.get(&row.id) else {
                violations.push(format!("{read}: returned a row that never existed: {row:?}"));
                continue;
            };
            let current = possibly_current(versions, o.began, o.ended);
            // Compared on the fields the reading version maps.
            let held = |v: &&Version| v.state.as_ref().is_some_and(|s| o.build.sees(s) == *row);
            if !o.read.matches(row) || !current.iter().any(held) {
                violations.push(format!(
                    "{read}: returned {row:?}, which did not match at any moment of the read; versions then: {current:?}"
                ));
            }
        }
        for (id, versions) in history {
            let current = possibly_current(versions, o.began, o.ended);
            let throughout =
                !current.is_empty() && current.iter().all(|v| v.state.as_ref().is_some_and(|a| o.read.matches(a)));
            // A page holds only the rows of its stretch of the order.
            let in_page = || match &o.read {
                Read::Page(p) => {
                    let places: Vec<(i64, i64)> =
                        current.iter().filter_map(|v| v.state.as_ref()).map(|a| p.place(a.val, a.id)).collect();
                    p.must_hold(&o.rows, &places)
                }
                _ => true,
            };
            if throughout && in_page() {
                checks += 1;
                if !ids.contains(id) {
                    violations.push(format!(
                        "{read}: row {id} matched throughout the read but is missing; versions then: {current:?}; got {:?}",
                        o.rows
                    ));
                }
            }
        }
    }
    (checks, violations)
}

fn sqlite_stores(tag: &str, cache: Arc<dyn CacheBackend>, n: usize) -> (Vec<Store>, TempFile) {
    let file = TempFile::new(tag);
    let ns = namespace(tag);
    let stores = (0..n)
        .map(|_| {
            Store::builder()
                .sqlite(file.0.to_string_lossy().into_owned())
                .namespace(ns.clone())
                .cache(Box::new(Shared(cache.clone())))
                .build()
                .expect("store")
        })
        .collect();
    (stores, file)
}

/// A temporary database file, removed (with its journal files) on drop.
struct TempFile(std::path::PathBuf);

impl TempFile {
    fn new(tag: &str) -> TempFile {
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        TempFile(std::env::temp_dir().join(format!("memdex-stress-{tag}-{}-{n}.db", std::process::id())))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let mut p = self.0.clone().into_os_string();
            p.push(suffix);
            let _ = std::fs::remove_file(p);
        }
    }
}

#[test]
fn sqlite_with_the_in_process_cache() {
    let cache: Arc<dyn CacheBackend> = Arc::new(InProcessCache::new(CacheConfig::default()));
    let (stores, _file) = sqlite_stores("inproc", cache, 3);
    stress("sqlite + in-process", v1_only(blocking(stores)), Shape::ci(11), Mode::Threads);
}

#[test]
fn sqlite_with_memcached() {
    let server = MemcachedServer::start().expect("memcached starts");
    let cache: Arc<dyn CacheBackend> = Arc::new(Memcached::connect(&[server.addr()], patient()).expect("memcached"));
    let (stores, _file) = sqlite_stores("memcached", cache, 3);
    stress("sqlite + memcached", v1_only(blocking(stores)), Shape::ci(12), Mode::Threads);
}

/// Two versions at once on one SQLite file and one memcached.
#[test]
fn two_versions_on_sqlite_with_memcached() {
    let server = MemcachedServer::start().expect("memcached starts");
    let cache: Arc<dyn CacheBackend> = Arc::new(Memcached::connect(&[server.addr()], patient()).expect("memcached"));
    let shape = Shape::two_versions(17);
    let (stores, file) = sqlite_stores("twov", cache, shape.stores);
    let db = Sqlite::open(&file.0).expect("open the SQLite file");
    stress_two_versions("two versions, sqlite + memcached", both_versions(blocking(stores)), &db, shape);
}

/// A PostgreSQL database for one test, and a memcached.
fn postgres_and_memcached(tag: &str) -> (String, String, MemcachedServer) {
    let pg = memdex_tests::backends::postgres();
    let ns = namespace(tag);
    let params = pg.create_database(&ns).expect("create database").to_string();
    (params, ns, MemcachedServer::start().expect("memcached starts"))
}

/// A blocking store on PostgreSQL, with memcached connections of its own: a
/// separate process.
fn blocking_pg(params: &str, ns: &str, server: &MemcachedServer) -> Handle {
    let cache = Memcached::connect(&[server.addr()], patient()).expect("memcached");
    Handle::Blocking(Store::builder().postgres(params).namespace(ns).cache(Box::new(cache)).build().expect("store"))
}

/// An async store on PostgreSQL (tokio-postgres) and memcached (tokio sockets).
fn tokio_pg(params: &str, ns: &str, server: &MemcachedServer) -> Handle {
    let builder =
        Store::builder().postgres(params).namespace(ns).memcached([server.addr()]).cache_timeouts(PATIENCE, PATIENCE);
    Handle::Tokio(block_on(builder.build_async()).expect("async store"))
}

fn blocking(stores: Vec<Store>) -> Vec<Handle> {
    stores.into_iter().map(Handle::Blocking).collect()
}

#[test]
fn postgres_with_memcached() {
    let (params, ns, server) = postgres_and_memcached("pg");
    let shape = Shape::ci(13);
    let procs = v1_only((0..shape.stores).map(|_| blocking_pg(&params, &ns, &server)));
    stress("postgres + memcached", procs, shape, Mode::Threads);
}

/// Both drivers on one database and one cache: async and blocking processes take
/// turns writing and reading the same rows.
#[test]
fn postgres_with_memcached_both_drivers() {
    let (params, ns, server) = postgres_and_memcached("pgmix");
    let shape = Shape::ci(14);
    let procs =
        v1_only([tokio_pg(&params, &ns, &server), blocking_pg(&params, &ns, &server), tokio_pg(&params, &ns, &server)]);
    stress("postgres + memcached, both drivers", procs, shape, Mode::Threads);
}

/// The async store as a service uses it: many tokio tasks on a multi-thread
/// runtime, moving rows and reading buckets through async stores.
#[test]
fn postgres_with_memcached_tokio_tasks() {
    let (params, ns, server) = postgres_and_memcached("pgtasks");
    let mut shape = Shape::ci(15);
    shape.writers = 4;
    shape.readers = 8;
    let procs = v1_only((0..shape.stores).map(|_| tokio_pg(&params, &ns, &server)));
    stress("postgres + memcached, tokio tasks", procs, shape, Mode::Tasks);
}

/// Two versions at once on PostgreSQL, each version on a blocking and an async
/// process.
#[test]
fn two_versions_on_postgres_with_memcached() {
    let (params, ns, server) = postgres_and_memcached("pgtwov");
    let shape = Shape::two_versions(18);
    let procs = both_versions([
        blocking_pg(&params, &ns, &server),
        blocking_pg(&params, &ns, &server),
        tokio_pg(&params, &ns, &server),
        tokio_pg(&params, &ns, &server),
    ]);
    let db = Postgres::connect(&params).expect("connect to PostgreSQL");
    stress_two_versions("two versions, postgres + memcached", procs, &db, shape);
}

/// Paging (issue 16): readers page through the buckets of an ordered index, by
/// `offset` and by keyset, while the writers reorder rows (`val`), move them between
/// buckets, delete and re-insert them; three processes on one SQLite file and one
/// memcached.
#[test]
fn sqlite_pages_with_memcached() {
    let server = MemcachedServer::start().expect("memcached starts");
    let cache: Arc<dyn CacheBackend> = Arc::new(Memcached::connect(&[server.addr()], patient()).expect("memcached"));
    let shape = Shape::pages(21);
    let (stores, _file) = sqlite_stores("pages", cache, shape.stores);
    stress("pages, sqlite + memcached", ordered_only(blocking(stores)), shape, Mode::Threads);
}

/// Paging on PostgreSQL and memcached, through async and blocking processes.
#[test]
fn postgres_pages_with_memcached_both_drivers() {
    let (params, ns, server) = postgres_and_memcached("pgpages");
    let shape = Shape::pages(22);
    let procs = ordered_only([
        tokio_pg(&params, &ns, &server),
        blocking_pg(&params, &ns, &server),
        tokio_pg(&params, &ns, &server),
    ]);
    stress("pages, postgres + memcached, both drivers", procs, shape, Mode::Threads);
}

/// A MariaDB database for one test, and a memcached.
fn mariadb_and_memcached(tag: &str) -> (String, String, MemcachedServer) {
    let ns = namespace(tag);
    let url = memdex_tests::backends::mariadb().create_database(&ns).expect("create database");
    (url, ns, MemcachedServer::start().expect("memcached starts"))
}

/// A store on MariaDB with its own memcached connections and its own database pool:
/// a separate process.
fn mariadb_store(url: &str, ns: &str, server: &MemcachedServer) -> Handle {
    let cache = Memcached::connect(&[server.addr()], patient()).expect("memcached");
    Handle::Blocking(Store::builder().mysql(url).namespace(ns).cache(Box::new(cache)).build().expect("store"))
}

#[test]
fn mariadb_with_memcached() {
    let (url, ns, server) = mariadb_and_memcached("my");
    let shape = Shape::ci(16);
    let procs = v1_only((0..shape.stores).map(|_| mariadb_store(&url, &ns, &server)));
    stress("mariadb + memcached", procs, shape, Mode::Threads);
}

/// Two versions at once on MariaDB.
#[test]
fn two_versions_on_mariadb_with_memcached() {
    let (url, ns, server) = mariadb_and_memcached("mytwov");
    let shape = Shape::two_versions(19);
    let procs = both_versions((0..shape.stores).map(|_| mariadb_store(&url, &ns, &server)));
    let db = MySql::connect(&url).expect("connect to MariaDB");
    stress_two_versions("two versions, mariadb + memcached", procs, &db, shape);
}

/// The soak run (docs/soak.md): `MEMDEX_STRESS_SCALE` times the CI counts.
#[test]
#[ignore = "soak run: see docs/soak.md"]
fn soak() {
    let seed = std::env::var("MEMDEX_STRESS_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(99);
    let mut shape = Shape::ci(seed);
    shape.writers = 4;
    shape.readers = 4;
    shape.writes_per_writer *= 20;
    shape.reads_per_reader *= 20;
    let server = MemcachedServer::start().expect("memcached starts");
    let cache: Arc<dyn CacheBackend> = Arc::new(Memcached::connect(&[server.addr()], patient()).expect("memcached"));
    let (stores, _file) = sqlite_stores("soak", cache, 4);
    stress("soak: sqlite + memcached", v1_only(blocking(stores)), shape, Mode::Threads);
}

/// The checker itself: a stale row and a missing row are caught.
#[test]
fn checker_catches_stale_and_missing_rows() {
    let t0 = Instant::now();
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    let v = |id, bucket, ver| Some(Row { id, bucket, val: 0, ver, note: None });
    let version = |began, state| Version { began: at(began), ended: at(began + 1), by: Build::V1, state };
    let mut history = HashMap::new();
    history.insert(1, vec![version(0, v(1, 0, 0)), version(10, v(1, 1, 1))]);
    let obs = |began, ended, rows| Observation {
        began: at(began),
        ended: at(ended),
        build: Build::V1,
        read: Read::Bucket(0),
        rows,
    };
    // During [2, 5] the row is in bucket 0: it must be returned, and may be.
    assert_eq!(check(&history, &[obs(2, 5, v(1, 0, 0).into_iter().collect())]).1.len(), 0);
    assert_eq!(check(&history, &[obs(2, 5, vec![])]).1.len(), 1, "missing row");
    // During [20, 25] it had moved: returning the old version is stale.
    assert_eq!(check(&history, &[obs(20, 25, v(1, 0, 0).into_iter().collect())]).1.len(), 1, "stale row");
    // A read overlapping the move may return either.
    assert_eq!(check(&history, &[obs(5, 10, vec![])]).1.len(), 0);
    assert_eq!(check(&history, &[obs(5, 10, v(1, 0, 0).into_iter().collect())]).1.len(), 0);
}

/// The checker compares a row on the fields the reading version maps: v1 reads a
/// row v2 wrote without its note, and v2 must read the note the row holds.
#[test]
fn checker_compares_the_fields_the_reader_maps() {
    let t0 = Instant::now();
    let noted = Row { id: 1, bucket: 0, val: 0, ver: 0, note: Some("written by v2".into()) };
    let written =
        Version { began: t0, ended: t0 + Duration::from_millis(1), by: Build::V2, state: Some(noted.clone()) };
    let history = HashMap::from([(1, vec![written])]);
    let read = |build, row: &Row| Observation {
        began: t0 + Duration::from_millis(2),
        ended: t0 + Duration::from_millis(5),
        build,
        read: Read::Bucket(0),
        rows: vec![row.clone()],
    };
    let without_note = Build::V1.sees(&noted);
    assert_eq!(without_note.note, None);
    assert_eq!(check(&history, &[read(Build::V1, &without_note)]).1.len(), 0, "v1 maps no note");
    assert_eq!(check(&history, &[read(Build::V2, &noted)]).1.len(), 0, "v2 reads the note");
    assert_eq!(check(&history, &[read(Build::V2, &without_note)]).1.len(), 1, "v2 lost the note");
    assert_eq!(check(&history, &[read(Build::V1, &noted)]).1.len(), 1, "v1 cannot read a note");
}

/// The checker on pages: a page is a stretch of the order, so a row that matched
/// throughout and sits inside that stretch must be in it, and nothing else is asked
/// of a page; rows out of order are caught.
#[test]
fn checker_catches_pages_out_of_order_and_with_a_row_missing() {
    let t0 = Instant::now();
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    let row = |id, val| Row { id, bucket: 0, val, ver: 0, note: None };
    let history: HashMap<i64, Vec<Version>> = [(1, 10), (2, 20), (3, 30), (4, 40)]
        .into_iter()
        .map(|(id, val)| {
            (id, vec![Version { began: at(0), ended: at(1), by: Build::Ordered, state: Some(row(id, val)) }])
        })
        .collect();
    let page = |offset, after, rows: &[(i64, i64)]| Observation {
        began: at(2),
        ended: at(5),
        build: Build::Ordered,
        read: Read::Page(PageRead { bucket: 0, descending: false, limit: 2, offset, after }),
        rows: rows.iter().map(|&(id, val)| row(id, val)).collect(),
    };
    let violations = |o: Observation| check(&history, &[o]).1.len();
    assert_eq!(violations(page(0, None, &[(1, 10), (2, 20)])), 0);
    assert_eq!(violations(page(1, None, &[(2, 20), (3, 30)])), 0, "rows before an offset page are not asked for");
    assert_eq!(violations(page(2, None, &[(3, 30), (4, 40)])), 0);
    assert_eq!(violations(page(0, Some((20, 2)), &[(3, 30), (4, 40)])), 0);
    assert_eq!(violations(page(0, None, &[(2, 20), (3, 30)])), 1, "the first row is missing");
    assert_eq!(violations(page(1, None, &[(2, 20), (4, 40)])), 1, "a row inside the page is missing");
    assert_eq!(violations(page(3, None, &[])), 0, "an empty page after an offset asks for nothing");
    assert_eq!(violations(page(2, None, &[(3, 30)])), 1, "a short page is the end: row 4 is missing");
    assert_eq!(violations(page(0, Some((20, 2)), &[(4, 40), (3, 30)])), 1, "out of order");
    assert_eq!(violations(page(0, Some((20, 2)), &[(2, 20), (3, 30)])), 1, "not after the cursor");
}
