//! The differential harness: one text query, with its bound parameters, answered on
//! every path memdex has, each answer compared with an oracle written here,
//! independently of memdex's own evaluator:
//!
//! * the cached path on SQLite and on PostgreSQL, each with the in-process cache and
//!   with a real memcached, read warm (whatever earlier cases left cached), cold (a
//!   fresh cache epoch) and hot (the same query again);
//! * the same stores with a cache that is down (every operation fails), which must
//!   answer from the database alone;
//! * the SQL memdex emits, run directly on SQLite and on PostgreSQL (what `scan!`
//!   and every database fallback run);
//! * the same three kinds of lane on MariaDB, in a world of its own
//!   ([`Coverage::MariaDb`]).
//!
//! A probe may page its answer (an order column, `limit`, `offset`, keyset `after`),
//! and the model has ordered indexes (issue 16), so the pages an ordered index
//! answers alone and the pages cut in memory are both compared; a probe written for
//! an ordered index also checks, once settled, that only its page's objects were read.
//!
//! [`query`] holds the random queries (the oracle's own predicate language, its
//! meaning over [`Row`], its rendering to the text form, and the generators).
//! `tests/tests/differential.rs` drives both with random rows and queries,
//! `tests/tests/regressions.rs` keeps what they found as named cases, and the
//! `diff-explore` binary surveys disagreements without stopping at the first.

// The harness fails a test by panicking, with a message saying what went wrong.
#![allow(clippy::panic, clippy::unwrap_used)]

pub mod query;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::asynchronous::block_on;
use crate::servers::memcached::MemcachedServer;
use memdex::cache::in_process::InProcessCache;
use memdex::cache::memcached::Memcached;
use memdex::cache::{CacheBackend, CacheConfig, CacheError, CacheOp, CacheReply};
use memdex::db::Database;
use memdex::grammar::ir::{ArithOp, CmpOp, StrOp};
use memdex::grammar::sql::{OrderBy, SelectSpec};
use memdex::{AsyncStore, Col, Error, Model, Schema, Select, Store, Type, Value};
use serde::{Deserialize, Serialize};

// ---------------------------------------------------------------------------
// The test model, implemented by hand so that the harness depends on the runtime
// and the grammar only (not on the derive).
// ---------------------------------------------------------------------------

/// A row with one column of every kind the language treats differently.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub id: i64,
    pub cat: i64,
    pub grp: Option<i64>,
    pub name: String,
    pub tag: String,
    pub price: f64,
    pub qty: i64,
    pub note: Option<String>,
    pub flag: bool,
    /// An instant, in microseconds since 1970 (a `Type::Timestamp` column).
    pub at: i64,
    /// A UUID's bytes (a `Type::Uuid` column).
    pub ext: [u8; 16],
    /// A byte string (a `Type::Bytes` column).
    pub blob: Vec<u8>,
}

pub const ID: usize = 0;
pub const CAT: usize = 1;
pub const GRP: usize = 2;
pub const NAME: usize = 3;
pub const TAG: usize = 4;
pub const PRICE: usize = 5;
pub const QTY: usize = 6;
pub const NOTE: usize = 7;
pub const FLAG: usize = 8;
pub const AT: usize = 9;
pub const EXT: usize = 10;
pub const BLOB: usize = 11;
pub const COLUMNS: [&str; 12] =
    ["id", "cat", "grp", "name", "tag", "price", "qty", "note", "flag", "at", "ext", "blob"];

impl Model for Row {
    type Key = i64;

    fn schema() -> &'static Schema {
        static SCHEMA: OnceLock<Schema> = OnceLock::new();
        SCHEMA.get_or_init(|| {
            Schema::new("Row", "diff_row")
                .column("id", Type::Int, false)
                .column("cat", Type::Int, false)
                .column("grp", Type::Int, true)
                .column("name", Type::Text, false)
                .column("tag", Type::Text, false)
                .column("price", Type::Float, false)
                .column("qty", Type::Int, false)
                .column("note", Type::Text, true)
                .column("flag", Type::Bool, false)
                .column("at", Type::Timestamp, false)
                .column("ext", Type::Uuid, false)
                .column("blob", Type::Bytes, false)
                .key("id")
                .index(&["cat"], None)
                .index(&["name"], Some(2))
                .index(&["tag"], None)
                .index(&["cat", "grp"], None)
                .index(&["at"], None)
                .index(&["ext"], None)
                .index(&["blob"], None)
                // Ordered indexes (issue 16), declared after every plain index so
                // that declaration order keeps the plain ones serving every query
                // they served before (same plans, same node keys); a page ordered
                // by an order column moves onto these. `grp` is nullable with many
                // ties, `price` a float (signed zeros, infinities) declared
                // descending, `name` text ordered by bytes; `(cat, grp)` by `qty`
                // is a composite ordered index.
                .ordered_index(&["cat"], "grp", false)
                .ordered_index(&["cat"], "price", true)
                .ordered_index(&["cat"], "name", false)
                .ordered_index(&["cat", "grp"], "qty", false)
        })
    }

    const INDEXES: &'static [memdex::__private::IndexInfo] = &[
        memdex::__private::IndexInfo { columns: &["id"], prefix: 0 },
        memdex::__private::IndexInfo { columns: &["cat"], prefix: 0 },
        memdex::__private::IndexInfo { columns: &["name"], prefix: 2 },
        memdex::__private::IndexInfo { columns: &["tag"], prefix: 0 },
        memdex::__private::IndexInfo { columns: &["cat", "grp"], prefix: 0 },
        memdex::__private::IndexInfo { columns: &["at"], prefix: 0 },
        memdex::__private::IndexInfo { columns: &["ext"], prefix: 0 },
        memdex::__private::IndexInfo { columns: &["blob"], prefix: 0 },
        memdex::__private::IndexInfo { columns: &["cat"], prefix: 0 },
        memdex::__private::IndexInfo { columns: &["cat"], prefix: 0 },
        memdex::__private::IndexInfo { columns: &["cat"], prefix: 0 },
        memdex::__private::IndexInfo { columns: &["cat", "grp"], prefix: 0 },
    ];
    const INDEX_LIST: &'static str = "id (key), cat, name (prefix 2), tag, (cat, grp), at, ext, blob, \
        cat (ordered by grp), cat (ordered by price desc), cat (ordered by name), (cat, grp) (ordered by qty)";

    fn column_value(&self, column: usize) -> Value {
        match column {
            ID => Value::Int(self.id),
            CAT => Value::Int(self.cat),
            GRP => self.grp.map_or(Value::Null, Value::Int),
            NAME => Value::Text(self.name.clone()),
            TAG => Value::Text(self.tag.clone()),
            PRICE => Value::Float(self.price),
            QTY => Value::Int(self.qty),
            NOTE => self.note.clone().map_or(Value::Null, Value::Text),
            FLAG => Value::Bool(self.flag),
            AT => Value::Timestamp(self.at),
            EXT => Value::Uuid(self.ext),
            BLOB => Value::Bytes(self.blob.clone()),
            _ => Value::Null,
        }
    }

    fn from_values(values: Vec<Value>) -> Result<Self, String> {
        let [id, cat, grp, name, tag, price, qty, note, flag, at, ext, blob]: [Value; 12] =
            values.try_into().map_err(|v: Vec<Value>| format!("{} columns, expected 12", v.len()))?;
        let int = |v: Value, c: &str| match v {
            Value::Int(i) => Ok(i),
            other => Err(format!("{c}: expected an integer, got {other:?}")),
        };
        let text = |v: Value, c: &str| match v {
            Value::Text(s) => Ok(s),
            other => Err(format!("{c}: expected a string, got {other:?}")),
        };
        Ok(Row {
            id: int(id, "id")?,
            cat: int(cat, "cat")?,
            grp: if grp.is_null() { None } else { Some(int(grp, "grp")?) },
            name: text(name, "name")?,
            tag: text(tag, "tag")?,
            price: match price {
                Value::Float(x) => x,
                other => return Err(format!("price: expected a float, got {other:?}")),
            },
            qty: int(qty, "qty")?,
            note: if note.is_null() { None } else { Some(text(note, "note")?) },
            flag: match flag {
                Value::Bool(b) => b,
                other => return Err(format!("flag: expected a bool, got {other:?}")),
            },
            at: match at {
                Value::Timestamp(us) => us,
                other => return Err(format!("at: expected a timestamp, got {other:?}")),
            },
            ext: match ext {
                Value::Uuid(u) => u,
                other => return Err(format!("ext: expected a uuid, got {other:?}")),
            },
            blob: match blob {
                Value::Bytes(b) => b,
                other => return Err(format!("blob: expected bytes, got {other:?}")),
            },
        })
    }

    fn key(&self) -> i64 {
        self.id
    }
}

/// A row with neutral values, for hand-written cases.
pub fn row(id: i64) -> Row {
    Row {
        id,
        cat: 1,
        grp: None,
        name: "ab".into(),
        tag: "t".into(),
        price: 0.0,
        qty: 0,
        note: None,
        flag: false,
        at: 0,
        ext: [0; 16],
        blob: Vec::new(),
    }
}

// ---------------------------------------------------------------------------
// Cache wrappers.
// ---------------------------------------------------------------------------

/// Puts every key under an epoch prefix, so that bumping the epoch gives a cold
/// cache without restarting anything.
#[derive(Debug)]
pub struct EpochCache {
    inner: Arc<dyn CacheBackend>,
    epoch: Arc<AtomicU64>,
}

impl EpochCache {
    fn key(&self, key: &str) -> String {
        let mut k = format!("{:x}|", self.epoch.load(Ordering::Relaxed));
        let excess = (k.len() + key.len()).saturating_sub(memdex::grammar::keys::MAX_KEY_LEN);
        // The front of every key is the store's namespace, the same for all keys:
        // dropping some of it keeps keys distinct and under memcached's limit.
        let mut cut = excess;
        while !key.is_char_boundary(cut) {
            cut += 1;
        }
        k.push_str(&key[cut..]);
        k
    }
}

impl CacheBackend for EpochCache {
    fn run(&self, ops: &[CacheOp<'_>]) -> Vec<Result<CacheReply, CacheError>> {
        let keys: Vec<String> = ops.iter().map(|op| self.key(op.key())).collect();
        let mapped: Vec<CacheOp<'_>> = ops
            .iter()
            .zip(&keys)
            .map(|(op, key)| match *op {
                CacheOp::Get { lease, .. } => CacheOp::Get { key, lease },
                CacheOp::GetCas { .. } => CacheOp::GetCas { key },
                CacheOp::Set { value, ttl, .. } => CacheOp::Set { key, value, ttl },
                CacheOp::Cas { value, ttl, cas, .. } => CacheOp::Cas { key, value, ttl, cas },
                CacheOp::Append { value, .. } => CacheOp::Append { key, value },
                CacheOp::Delete { .. } => CacheOp::Delete { key },
            })
            .collect();
        self.inner.run(&mapped)
    }

    fn max_value_size(&self) -> usize {
        self.inner.max_value_size()
    }

    fn describe(&self) -> String {
        format!("epoch({})", self.inner.describe())
    }
}

/// A cache that is down: every operation fails.
#[derive(Debug)]
pub struct DownCache;

impl CacheBackend for DownCache {
    fn run(&self, ops: &[CacheOp<'_>]) -> Vec<Result<CacheReply, CacheError>> {
        ops.iter()
            .map(|_| Err(CacheError::Unreachable { server: "down".into(), reason: "test: cache down".into() }))
            .collect()
    }
    fn max_value_size(&self) -> usize {
        CacheConfig::default().max_value_size
    }
    fn describe(&self) -> String {
        "down".into()
    }
}

// ---------------------------------------------------------------------------
// The world: one store per path, all holding the same rows.
// ---------------------------------------------------------------------------

/// A lane's store: blocking, or async (its calls awaited on the test runtime; its
/// cache a memcached of its own, flushed for the cold pass).
#[derive(Debug)]
pub enum LaneStore {
    Blocking(Store),
    Tokio { store: AsyncStore, memcached: MemcachedServer },
}

impl LaneStore {
    pub fn select_text(&self, text: &str, params: &[(&str, Value)]) -> Result<Select<'static, Row>, Error> {
        match self {
            LaneStore::Blocking(s) => s.select_text(text, params),
            LaneStore::Tokio { store, .. } => store.select_text(text, params),
        }
    }

    pub fn fetch(&self, select: &Select<'_, Row>) -> Result<Vec<Row>, Error> {
        match self {
            LaneStore::Blocking(s) => select.fetch(s),
            LaneStore::Tokio { store, .. } => block_on(select.fetch_async(store)),
        }
    }

    pub fn count(&self, select: &Select<'_, Row>) -> Result<u64, Error> {
        match self {
            LaneStore::Blocking(s) => select.count(s),
            LaneStore::Tokio { store, .. } => block_on(select.count_async(store)),
        }
    }

    pub fn stats(&self) -> memdex::Stats {
        match self {
            LaneStore::Blocking(s) => s.stats(),
            LaneStore::Tokio { store, .. } => store.stats(),
        }
    }

    pub fn recall_text(&self, text: &str, params: &[(&str, Value)]) -> Result<Vec<Row>, Error> {
        self.select_text(text, params).and_then(|s| self.fetch(&s))
    }

    /// Deletes the rows `gone`, and writes every row of `target` that differs from
    /// `current`, in one transaction.
    fn load(&self, current: &BTreeMap<i64, Row>, gone: &[i64], target: &BTreeMap<i64, Row>) -> Result<(), Error> {
        let changed =
            |r: &Row| !matches!(current.get(&r.id), Some(old) if old == r && old.price.to_bits() == r.price.to_bits());
        match self {
            LaneStore::Blocking(s) => s.transaction(|tx| {
                for id in gone {
                    tx.delete::<Row>(id)?;
                }
                for r in target.values().filter(|r| changed(r)) {
                    if current.contains_key(&r.id) { tx.update(r)? } else { tx.insert(r)? }
                }
                Ok(())
            }),
            LaneStore::Tokio { store, .. } => block_on(async {
                let mut tx = store.begin().await?;
                for id in gone {
                    tx.delete::<Row>(id).await?;
                }
                for r in target.values().filter(|r| changed(r)) {
                    if current.contains_key(&r.id) { tx.update(r).await? } else { tx.insert(r).await? }
                }
                tx.commit().await
            }),
        }
    }

    /// Empties the lane's cache, for the cold pass of a lane without an epoch.
    fn flush(&self) {
        if let LaneStore::Tokio { memcached, .. } = self {
            use std::io::{BufRead, Write};
            let mut stream = std::net::TcpStream::connect(memcached.addr()).expect("connect to flush");
            stream.write_all(b"flush_all\r\n").expect("flush_all");
            let mut line = String::new();
            std::io::BufReader::new(stream).read_line(&mut line).expect("flush_all reply");
            assert_eq!(line, "OK\r\n", "flush_all");
        }
    }
}

/// One way of answering a query.
#[allow(missing_debug_implementations)] // holds a database handle without Debug
pub struct Lane {
    pub name: String,
    pub store: LaneStore,
    /// `None`: a store that never writes (it reads the database of a writing lane).
    pub epoch: Option<Arc<AtomicU64>>,
    pub writes: bool,
    /// A direct handle on the lane's database, for running emitted SQL (`Some` on
    /// one lane per dialect).
    pub raw: Option<Box<dyn Database>>,
}

/// Every lane, the rows they all hold, and counters for the report.
#[allow(missing_debug_implementations)]
pub struct World {
    pub lanes: Vec<Lane>,
    pub rows: BTreeMap<i64, Row>,
    pub stats: WorldStats,
    /// The databases hold no infinity (MariaDB): rows are stored, and checked by
    /// the oracle, with ±`f64::MAX` for a ±inf price.
    finite_floats: bool,
    _dir: tempfile::TempDir,
    /// This world's own memcached, stopped with it.
    _memcached: MemcachedServer,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct WorldStats {
    pub queries: u64,
    pub fetches: u64,
    pub sql_runs: u64,
    pub skipped_too_many_disjuncts: u64,
    /// Settled passes of probes written for an ordered index ([`Probe::ordered_page`])
    /// whose page is shorter than the matching rows, so that reading the page alone
    /// and reading the whole node differ in how many objects they read.
    pub ordered_pages: u64,
    /// Those of them that read no more objects than the page holds: the ordered
    /// index really answered them.
    pub windowed: u64,
}

/// Which lanes a world has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coverage {
    /// SQLite only, both caches (fast; for regressions about the cached path).
    Sqlite,
    /// SQLite and PostgreSQL, both caches, and the cache-down lanes.
    Full,
    /// MariaDB, both caches, and the cache-down lane. MariaDB stores no infinity,
    /// so a row's ±inf price is stored (and seen by the oracle) as ±`f64::MAX`.
    MariaDb,
}

static WORLD_SEQ: AtomicU64 = AtomicU64::new(0);

fn unique(tag: &str) -> String {
    format!("{tag}_{}_{}", std::process::id(), WORLD_SEQ.fetch_add(1, Ordering::Relaxed))
}

fn memcached_backend(addr: String) -> Arc<dyn CacheBackend> {
    Arc::new(Memcached::connect(&[addr], CacheConfig::default()).expect("connect to the test memcached"))
}

fn in_process_backend() -> Arc<dyn CacheBackend> {
    Arc::new(InProcessCache::new(CacheConfig::default()))
}

fn builder(db: DbAt, namespace: &str) -> memdex::StoreBuilder {
    let b = Store::builder().namespace(namespace);
    let b = match db {
        DbAt::Sqlite(path) => b.sqlite(path),
        DbAt::Postgres(params) => b.postgres(params),
        DbAt::MySql(url) => b.mysql(url),
    };
    // The outbox of the reading lanes must not apply (and so must not race) the
    // writing lane's entries: a long grace keeps drains to their own entries.
    b.outbox(Duration::from_millis(200), Duration::from_secs(3600))
}

fn build(db: DbAt, cache: Box<dyn CacheBackend>, namespace: &str) -> Store {
    builder(db, namespace).cache(cache).build().expect("store builds")
}

#[derive(Clone)]
enum DbAt {
    Sqlite(String),
    Postgres(String),
    MySql(String),
}

impl DbAt {
    fn open(&self) -> Box<dyn Database> {
        match self {
            DbAt::Sqlite(path) => Box::new(memdex::db::sqlite::Sqlite::open(path).expect("open sqlite")),
            DbAt::Postgres(params) => Box::new(memdex::db::postgres::Postgres::connect(params).expect("connect pg")),
            DbAt::MySql(url) => Box::new(memdex::db::mysql::MySql::connect(url).expect("connect MariaDB")),
        }
    }
}

impl World {
    pub fn new(coverage: Coverage) -> World {
        let dir = tempfile::Builder::new().prefix("memdex-diff-").tempdir().expect("temp dir");
        let memcached = MemcachedServer::start().expect("memcached starts");
        let mut lanes = Vec::new();
        let mut dbs: Vec<(&str, Vec<DbAt>)> = Vec::new();
        if coverage != Coverage::MariaDb {
            dbs.push((
                "sqlite",
                vec![
                    DbAt::Sqlite(dir.path().join("a.db").to_string_lossy().into_owned()),
                    DbAt::Sqlite(dir.path().join("b.db").to_string_lossy().into_owned()),
                ],
            ));
        }
        if coverage == Coverage::MariaDb {
            // One database per lane for the whole run, brought to each case's rows
            // by `load` (deletes, updates, inserts), never recreated.
            let server = crate::backends::mariadb();
            let url = |tag: &str| server.create_database(&unique(tag)).expect("create database");
            dbs.push(("mariadb", vec![DbAt::MySql(url("diffa")), DbAt::MySql(url("diffb"))]));
        }
        if coverage == Coverage::Full {
            let pg = crate::backends::postgres();
            let a = unique("diffa");
            let b = unique("diffb");
            dbs.push((
                "postgres",
                vec![
                    DbAt::Postgres(pg.create_database(&a).expect("create database").to_string()),
                    DbAt::Postgres(pg.create_database(&b).expect("create database").to_string()),
                ],
            ));
        }
        for (db_name, at) in dbs {
            for (i, (db, cache_name)) in at.iter().zip(["in-process", "memcached"]).enumerate() {
                let inner = if i == 0 { in_process_backend() } else { memcached_backend(memcached.addr()) };
                let epoch = Arc::new(AtomicU64::new(0));
                let cache = Box::new(EpochCache { inner, epoch: epoch.clone() });
                let store = build(db.clone(), cache, &unique("diff"));
                store.migrate::<Row>().expect("migrate");
                lanes.push(Lane {
                    name: format!("{db_name} + {cache_name}"),
                    store: LaneStore::Blocking(store),
                    epoch: Some(epoch),
                    writes: true,
                    raw: (i == 0).then(|| db.open()),
                });
            }
            if coverage != Coverage::Sqlite {
                // The tokio driver, with a database of its own (it writes its rows
                // through async transactions) and a memcached of its own.
                let db = match at[0] {
                    DbAt::Sqlite(_) => {
                        DbAt::Sqlite(dir.path().join(format!("{db_name}-tokio.db")).to_string_lossy().into_owned())
                    }
                    DbAt::Postgres(_) => {
                        let pg = crate::backends::postgres();
                        DbAt::Postgres(pg.create_database(&unique("difft")).expect("create database").to_string())
                    }
                    DbAt::MySql(_) => DbAt::MySql(
                        crate::backends::mariadb().create_database(&unique("difft")).expect("create database"),
                    ),
                };
                let memcached = MemcachedServer::start().expect("memcached starts");
                let store = block_on(builder(db, &unique("tokio")).memcached([memcached.addr()]).build_async())
                    .expect("async store builds");
                block_on(store.migrate::<Row>()).expect("migrate");
                lanes.push(Lane {
                    name: format!("{db_name} + memcached, tokio driver"),
                    store: LaneStore::Tokio { store, memcached },
                    epoch: None,
                    writes: true,
                    raw: None,
                });
                let store = build(at[0].clone(), Box::new(DownCache), &unique("down"));
                lanes.push(Lane {
                    name: format!("{db_name}, cache down"),
                    store: LaneStore::Blocking(store),
                    epoch: None,
                    writes: false,
                    raw: None,
                });
            }
        }
        World {
            lanes,
            rows: BTreeMap::new(),
            stats: WorldStats::default(),
            finite_floats: coverage == Coverage::MariaDb,
            _dir: dir,
            _memcached: memcached,
        }
    }

    /// Makes every lane hold exactly `rows` (one transaction per lane: deletes,
    /// updates and inserts, so that nodes and objects cached by earlier cases go
    /// stale the way they do in production).
    pub fn load(&mut self, rows: &[Row]) -> Result<(), String> {
        let storable = |r: &Row| match r.price {
            x if self.finite_floats && x.is_infinite() => Row { price: f64::MAX.copysign(x), ..r.clone() },
            _ => r.clone(),
        };
        let target: BTreeMap<i64, Row> = rows.iter().map(|r| (r.id, storable(r))).collect();
        let gone: Vec<i64> = self.rows.keys().filter(|id| !target.contains_key(id)).copied().collect();
        for lane in self.lanes.iter().filter(|l| l.writes) {
            lane.store
                .load(&self.rows, &gone, &target)
                .map_err(|e| format!("{}: loading rows failed: {e}\nrows: {rows:#?}", lane.name))?;
        }
        self.rows = target;
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// One query on every lane.
// ---------------------------------------------------------------------------

/// A query as the harness runs it.
#[derive(Clone, Debug)]
pub struct Probe {
    pub text: String,
    pub params: Vec<(String, Value)>,
    /// `(column, descending)`, applied before the key.
    pub order: Option<(usize, bool)>,
    pub limit: Option<u64>,
    pub offset: u64,
    /// Keyset paging: only the rows after this one in the probe's order (its
    /// column, then the key). It need not be stored: a deleted row, or one whose
    /// values changed since, places the page by the values given.
    pub after: Option<Row>,
    /// Set by a generator that wrote the probe to be answered from an ordered index
    /// when hot (one equality on exactly an ordered index's columns, nothing else in
    /// the filter, ordered by its order column, with a limit): it is read once more
    /// when hot ("settled"), which counts whether it read only the page's objects
    /// ([`WorldStats::windowed`]).
    pub ordered_page: bool,
}

impl Probe {
    pub fn new(text: &str, params: &[(&str, Value)]) -> Probe {
        Probe {
            text: text.to_owned(),
            params: params.iter().map(|(n, v)| ((*n).to_owned(), v.clone())).collect(),
            order: None,
            limit: None,
            offset: 0,
            after: None,
            ordered_page: false,
        }
    }

    pub fn ordered(mut self, column: usize, desc: bool) -> Probe {
        self.order = Some((column, desc));
        self
    }

    pub fn page(mut self, limit: Option<u64>, offset: u64) -> Probe {
        self.limit = limit;
        self.offset = offset;
        self
    }

    pub fn after(mut self, last: Row) -> Probe {
        self.after = Some(last);
        self
    }

    pub fn describe(&self) -> String {
        let mut s = format!("query:  {}\n", self.text);
        for (n, v) in &self.params {
            let _ = writeln!(s, "  {n} = {v:?}");
        }
        if let Some((c, desc)) = self.order {
            let _ = writeln!(s, "  order by {} {}", COLUMNS[c], if desc { "desc" } else { "asc" });
        }
        if self.limit.is_some() || self.offset > 0 {
            let _ = writeln!(s, "  limit {:?} offset {}", self.limit, self.offset);
        }
        if let Some(after) = &self.after {
            let _ = writeln!(s, "  after {after:?}");
        }
        s
    }
}

/// Orders rows as memdex promises: by the column (None first, strings by bytes,
/// numbers numerically), then by key.
pub fn oracle_order(rows: &mut [Row], order: Option<(usize, bool)>) {
    rows.sort_by(|a, b| oracle_cmp(a, b, order));
}

/// Two rows in memdex's promised order (see [`oracle_order`]).
pub fn oracle_cmp(a: &Row, b: &Row, order: Option<(usize, bool)>) -> std::cmp::Ordering {
    if let Some((c, desc)) = order {
        let o = compare_column(a, b, c);
        let o = if desc { o.reverse() } else { o };
        if o.is_ne() {
            return o;
        }
    }
    a.id.cmp(&b.id)
}

/// The oracle's paging of rows already in [`oracle_order`]: drops every row at or
/// before `after` in that order, then skips `offset` rows and keeps `limit`.
pub fn oracle_page(rows: Vec<Row>, probe: &Probe) -> Vec<Row> {
    rows.into_iter()
        .filter(|r| probe.after.as_ref().is_none_or(|last| oracle_cmp(r, last, probe.order).is_gt()))
        .skip(probe.offset as usize)
        .take(probe.limit.map_or(usize::MAX, |l| l as usize))
        .collect()
}

fn compare_column(a: &Row, b: &Row, c: usize) -> std::cmp::Ordering {
    match c {
        ID => a.id.cmp(&b.id),
        CAT => a.cat.cmp(&b.cat),
        GRP => a.grp.cmp(&b.grp),
        NAME => a.name.as_bytes().cmp(b.name.as_bytes()),
        TAG => a.tag.as_bytes().cmp(b.tag.as_bytes()),
        // Rows never hold NaN (SQLite cannot store it), so this order is total.
        PRICE => a.price.partial_cmp(&b.price).unwrap_or(std::cmp::Ordering::Equal),
        QTY => a.qty.cmp(&b.qty),
        NOTE => a.note.as_deref().map(str::as_bytes).cmp(&b.note.as_deref().map(str::as_bytes)),
        AT => a.at.cmp(&b.at),
        EXT => a.ext.cmp(&b.ext),
        BLOB => a.blob.cmp(&b.blob),
        _ => a.flag.cmp(&b.flag),
    }
}

/// What the oracle expects: the page of ids, and the total count.
pub fn expected(rows: &BTreeMap<i64, Row>, probe: &Probe, pred: &dyn Fn(&Row) -> bool) -> (Vec<i64>, u64) {
    let mut matching: Vec<Row> = rows.values().filter(|r| pred(r)).cloned().collect();
    let total = matching.len() as u64;
    oracle_order(&mut matching, probe.order);
    let page = oracle_page(matching, probe).into_iter().map(|r| r.id).collect();
    (page, total)
}

/// The outcome of one probe.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Every lane agreed with the oracle.
    Agreed,
    /// The query was rejected for expanding to too many disjuncts (counted, not a
    /// disagreement: the generator does not bound DNF size exactly).
    TooManyDisjuncts,
}

/// Runs `probe` on every lane and compares with the oracle `pred`. `Err` describes
/// the first disagreement.
pub fn probe(world: &mut World, probe: &Probe, pred: &dyn Fn(&Row) -> bool) -> Result<Outcome, String> {
    world.stats.queries += 1;
    let (want, want_count) = expected(&world.rows, probe, pred);
    let params: Vec<(&str, Value)> = probe.params.iter().map(|(n, v)| (n.as_str(), v.clone())).collect();
    let context = |lane: &str, path: &str| {
        format!(
            "{lane}, {path}:\n{}rows:\n{}",
            probe.describe(),
            world.rows.values().map(|r| format!("  {r:?}\n")).collect::<String>()
        )
    };
    for lane in &world.lanes {
        let select = match lane.store.select_text(&probe.text, &params) {
            Ok(s) => s,
            Err(Error::Query { errors, .. })
                if errors.iter().all(|e| matches!(e.kind, memdex::grammar::ErrorKind::TooManyDisjuncts { .. })) =>
            {
                return Ok(Outcome::TooManyDisjuncts);
            }
            Err(e) => return Err(format!("{}\nrejected: {e}", context(&lane.name, "select_text"))),
        };
        let select = match probe.order {
            Some((c, false)) => select.order_by(Col::new(c)),
            Some((c, true)) => select.order_by_desc(Col::new(c)),
            None => select,
        };
        let select = select.offset(probe.offset);
        let select = match probe.limit {
            Some(l) => select.limit(l),
            None => select,
        };
        let select = match &probe.after {
            Some(last) => select.after(last),
            None => select,
        };
        // A probe written for an ordered index is read once more: a fill from the
        // database lists, besides the rows, the ids of recent moves whose outbox
        // entries are not cleaned up yet (K10: their new node may not list them
        // yet), of no known version, so the node cannot order itself until a read
        // has checked those ids and written the node back. The read after that
        // ("settled") must come from the ordered index alone.
        let passes: &[&str] = match (lane.writes, probe.ordered_page) {
            (true, false) => &["warm", "cold", "hot"],
            (true, true) => &["warm", "cold", "hot", "settled"],
            (false, _) => &["database"],
        };
        for &pass in passes {
            if pass == "cold" {
                match &lane.epoch {
                    Some(epoch) => _ = epoch.fetch_add(1, Ordering::Relaxed),
                    None => lane.store.flush(),
                }
            }
            world.stats.fetches += 1;
            let before = lane.store.stats();
            let got = match lane.store.fetch(&select) {
                Ok(got) => got,
                Err(e) => return Err(format!("{}\nerror: {e}", context(&lane.name, pass))),
            };
            if pass == "settled" && (want.len() as u64) < want_count {
                let after = lane.store.stats();
                let read = (after.object_hits + after.object_misses + after.near_hits)
                    - (before.object_hits + before.object_misses + before.near_hits);
                world.stats.ordered_pages += 1;
                world.stats.windowed += u64::from(read <= want.len() as u64);
            }
            let got_ids: Vec<i64> = got.iter().map(|r| r.id).collect();
            if got_ids != want {
                return Err(format!("{}\nexpected ids {want:?}\n     got ids {got_ids:?}", context(&lane.name, pass)));
            }
            for r in &got {
                if world.rows.get(&r.id) != Some(r) {
                    return Err(format!(
                        "{}\nreturned a row that differs from the stored one:\n  got    {r:?}\n  stored {:?}",
                        context(&lane.name, pass),
                        world.rows.get(&r.id)
                    ));
                }
            }
        }
        let count = match lane.store.count(&select) {
            Ok(c) => c,
            Err(e) => return Err(format!("{}\nerror: {e}", context(&lane.name, "count"))),
        };
        if count != want_count {
            return Err(format!("{}\nexpected count {want_count}, got {count}", context(&lane.name, "count")));
        }
        if let Some(db) = &lane.raw {
            world.stats.sql_runs += 1;
            let got = run_sql(&**db, probe).map_err(|e| format!("{}\n{e}", context(&lane.name, "emitted SQL")))?;
            if got != want {
                return Err(format!(
                    "{}\nexpected ids {want:?}\n     got ids {got:?}",
                    context(&lane.name, "emitted SQL")
                ));
            }
        }
    }
    Ok(Outcome::Agreed)
}

/// Prepares the query as `scan!` would and runs the emitted SQL directly, ordered by
/// the probe's column and then the key (so that ties are deterministic). The SQL
/// memdex emits has no keyset condition (`scan!` has no `after`): a probe with one
/// runs the ordered SQL without `LIMIT`/`OFFSET` and pages the database's order here,
/// with the oracle's `after` test.
pub fn run_sql(db: &dyn Database, probe: &Probe) -> Result<Vec<i64>, String> {
    let schema = Row::schema();
    let types = |name: &str| memdex::grammar::ParamType::of(memdex::grammar::Params::get(&probe.params, name));
    let prepared = memdex::grammar::prepare_text(schema, &probe.text, &types, memdex::grammar::Access::Scan, 64)
        .map_err(|e| format!("prepare (scan) failed: {}", e.render(&probe.text)))?;
    let mut order: Vec<OrderBy> = probe.order.map(|(column, desc)| OrderBy { column, desc }).into_iter().collect();
    order.push(OrderBy { column: ID, desc: false });
    let keyset = probe.after.is_some();
    let spec = SelectSpec {
        filter: prepared.filter.as_ref(),
        order: &order,
        limit: if keyset { None } else { probe.limit },
        offset: (probe.offset > 0 && !keyset).then_some(probe.offset),
    };
    let q = memdex::grammar::sql::select(db.dialect(), schema, spec, &probe.params)
        .map_err(|e| format!("emitting SQL failed: {e}"))?;
    let column_types: Vec<Type> = schema.columns.iter().map(|c| c.ty).collect();
    let raw =
        db.query(&q, &column_types).map_err(|e| format!("SQL failed: {e}\nsql: {}\nparams: {:?}", q.text, q.params))?;
    let rows = raw
        .into_iter()
        .map(Row::from_values)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("decode: {e}\nsql: {}", q.text))?;
    let rows = if keyset { oracle_page(rows, probe) } else { rows };
    Ok(rows.into_iter().map(|r| r.id).collect())
}

/// Loads `rows` and checks one query against a hand-written oracle.
pub fn check(coverage: Coverage, rows: &[Row], probe_: Probe, pred: impl Fn(&Row) -> bool) {
    let mut world = World::new(coverage);
    world.load(rows).unwrap_or_else(|e| panic!("{e}"));
    match probe(&mut world, &probe_, &pred) {
        Ok(Outcome::Agreed) => {}
        Ok(other) => panic!("{other:?}"),
        Err(e) => panic!("{e}"),
    }
}

// ---------------------------------------------------------------------------
// Helpers shared with the generator.
// ---------------------------------------------------------------------------

/// A Python string literal for `s` (escapes only what the text form requires).
pub fn py_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() && (c as u32) <= 0xffff => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if c.is_control() => {
                let _ = write!(out, "\\U{:08x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// A float literal the text form reads back as exactly `x` (no literal for NaN).
pub fn py_float(x: f64) -> String {
    if x == f64::INFINITY {
        "1e999".into()
    } else if x == f64::NEG_INFINITY {
        "-1e999".into()
    } else {
        // `{:?}` is the shortest text that round-trips, and always has a `.` or an
        // exponent, so the text form reads it as a float.
        format!("{x:?}")
    }
}

/// Rust's meaning of `a op b` for integers that exist.
pub fn cmp_holds<T: PartialOrd>(op: CmpOp, a: T, b: T) -> bool {
    match op {
        CmpOp::Eq => a == b,
        CmpOp::Ne => a != b,
        CmpOp::Lt => a < b,
        CmpOp::Le => a <= b,
        CmpOp::Gt => a > b,
        CmpOp::Ge => a >= b,
    }
}

/// Rust's integer arithmetic; `None` where Rust would panic.
pub fn int_arith(op: ArithOp, a: i64, b: i64) -> Option<i64> {
    match op {
        ArithOp::Add => a.checked_add(b),
        ArithOp::Sub => a.checked_sub(b),
        ArithOp::Mul => a.checked_mul(b),
        ArithOp::Div => a.checked_div(b),
        ArithOp::Rem => a.checked_rem(b),
    }
}

pub fn float_arith(op: ArithOp, a: f64, b: f64) -> f64 {
    match op {
        ArithOp::Add => a + b,
        ArithOp::Sub => a - b,
        ArithOp::Mul => a * b,
        ArithOp::Div => a / b,
        ArithOp::Rem => a % b,
    }
}

pub fn str_test(op: StrOp, subject: &str, pattern: &str) -> bool {
    match op {
        StrOp::StartsWith => subject.starts_with(pattern),
        StrOp::EndsWith => subject.ends_with(pattern),
        StrOp::Contains => subject.contains(pattern),
    }
}

/// A count or seed from the environment (soak runs and the explorer), or `default`.
pub fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}
