//! Fault injection with real processes: a memcached killed and restarted mid-run, a
//! memcached so small that it evicts constantly, a TCP proxy that drops, stalls,
//! cuts or garbles the conversation, a cache batch lost right after the database
//! commit, and a COMMIT whose reply the connection to the database loses. In every phase each query must return exactly the rows the database holds
//! (the test keeps its own copy), and once the cache is back no stale row or lost id
//! may ever come back. Each test runs with the stores on a SQLite file and on
//! MariaDB.

// Tests fail by panicking, with a message saying what went wrong.
#![allow(clippy::panic, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use memdex::cache::memcached::Memcached;
use memdex::cache::{CacheBackend, CacheConfig, CacheError, CacheOp, CacheReply};
use memdex::{AsyncStore, Model, Schema, Store, Type, Value};
use memdex_tests::asynchronous::block_on;
use memdex_tests::proxy::{FaultProxy, Mode};
use memdex_tests::servers::memcached::MemcachedServer;
use memdex_tests::shared_db::{Engine, SharedDb};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Doc {
    pub id: i64,
    pub shelf: i64,
    pub body: String,
}

impl Model for Doc {
    type Key = i64;

    fn schema() -> &'static Schema {
        static SCHEMA: OnceLock<Schema> = OnceLock::new();
        SCHEMA.get_or_init(|| {
            Schema::new("Doc", "fault_doc")
                .column("id", Type::Int, false)
                .column("shelf", Type::Int, false)
                .column("body", Type::Text, false)
                .key("id")
                .index(&["shelf"], None)
        })
    }

    const INDEXES: &'static [memdex::__private::IndexInfo] = &[
        memdex::__private::IndexInfo { columns: &["id"], prefix: 0 },
        memdex::__private::IndexInfo { columns: &["shelf"], prefix: 0 },
    ];
    const INDEX_LIST: &'static str = "id (key), shelf";

    fn column_value(&self, column: usize) -> Value {
        match column {
            0 => Value::Int(self.id),
            1 => Value::Int(self.shelf),
            _ => Value::Text(self.body.clone()),
        }
    }

    fn from_values(values: Vec<Value>) -> Result<Self, String> {
        match &values[..] {
            [Value::Int(id), Value::Int(shelf), Value::Text(body)] => {
                Ok(Doc { id: *id, shelf: *shelf, body: body.clone() })
            }
            other => Err(format!("unexpected row {other:?}")),
        }
    }

    fn key(&self) -> i64 {
        self.id
    }
}

/// A memcached of `megabytes` MB with `item_limit` items, killed on drop.
fn memcached(megabytes: u32, item_limit: &str) -> MemcachedServer {
    let megabytes = megabytes.to_string();
    let mut args = vec!["-m", &megabytes, "-I", item_limit];
    if item_limit != "1m" {
        // memcached refuses an item limit below its slab chunk size.
        args.extend(["-o", "slab_chunk_max=16384"]);
    }
    MemcachedServer::start_with(&args).expect("memcached starts")
}

fn sock(mc: &MemcachedServer) -> SocketAddr {
    mc.addr().parse().expect("memcached address")
}

// ---------------------------------------------------------------------------
// The model of the table, and checks against it.
// ---------------------------------------------------------------------------

/// The database the stores of a test share, and the cache namespace they use (a
/// test may pick another one for where its keys land).
struct Db {
    shared: SharedDb,
    namespace: String,
}

fn db(engine: Engine, tag: &str) -> Db {
    let shared = SharedDb::new(engine, &format!("faults_{tag}"));
    let namespace = shared.name().to_owned();
    Db { shared, namespace }
}

const TIMEOUT: Duration = Duration::from_millis(100);
const OUTBOX_INTERVAL: Duration = Duration::from_millis(50);
const OUTBOX_GRACE: Duration = Duration::from_millis(200);

fn store(db: &Db, cache: Box<dyn CacheBackend>) -> Store {
    let s = db
        .shared
        .builder()
        .namespace(db.namespace.clone())
        .cache(cache)
        .cache_timeouts(TIMEOUT, TIMEOUT)
        .outbox(OUTBOX_INTERVAL, OUTBOX_GRACE)
        .build()
        .expect("store");
    s.migrate::<Doc>().expect("migrate");
    s
}

fn memcached_at(addr: impl ToString) -> Box<dyn CacheBackend> {
    let config = CacheConfig { connect_timeout: TIMEOUT, io_timeout: TIMEOUT, ..CacheConfig::default() };
    Box::new(Memcached::connect(&[addr.to_string()], config).expect("memcached client"))
}

const SHELVES: i64 = 5;

/// What the workload needs of a "process": the blocking store, or an async one
/// awaited here (the tokio driver, with its own memcached transport).
trait Process {
    fn insert(&self, d: &Doc) -> Result<(), memdex::Error>;
    fn update(&self, d: &Doc) -> Result<(), memdex::Error>;
    fn delete(&self, id: i64) -> Result<(), memdex::Error>;
    fn recall(&self, text: &str, params: &[(&str, Value)]) -> Result<Vec<Doc>, memdex::Error>;
    fn stats(&self) -> memdex::Stats;
    /// `update` in a transaction of its own (`Store::transaction`, `AsyncStore::begin`).
    fn update_in_transaction(&self, d: &Doc) -> Result<(), memdex::Error>;
    fn clone_box(&self) -> Box<dyn Process + Send>;
}

impl Process for Store {
    fn insert(&self, d: &Doc) -> Result<(), memdex::Error> {
        Store::insert(self, d)
    }
    fn update(&self, d: &Doc) -> Result<(), memdex::Error> {
        Store::update(self, d)
    }
    fn delete(&self, id: i64) -> Result<(), memdex::Error> {
        Store::delete::<Doc>(self, &id)
    }
    fn recall(&self, text: &str, params: &[(&str, Value)]) -> Result<Vec<Doc>, memdex::Error> {
        self.recall_text(text, params)
    }
    fn stats(&self) -> memdex::Stats {
        Store::stats(self)
    }
    fn update_in_transaction(&self, d: &Doc) -> Result<(), memdex::Error> {
        self.transaction(|tx| tx.update(d))
    }
    fn clone_box(&self) -> Box<dyn Process + Send> {
        Box::new(self.clone())
    }
}

impl Process for AsyncStore {
    fn insert(&self, d: &Doc) -> Result<(), memdex::Error> {
        block_on(AsyncStore::insert(self, d))
    }
    fn update(&self, d: &Doc) -> Result<(), memdex::Error> {
        block_on(AsyncStore::update(self, d))
    }
    fn delete(&self, id: i64) -> Result<(), memdex::Error> {
        block_on(AsyncStore::delete::<Doc>(self, &id))
    }
    fn recall(&self, text: &str, params: &[(&str, Value)]) -> Result<Vec<Doc>, memdex::Error> {
        block_on(self.recall_text(text, params))
    }
    fn stats(&self) -> memdex::Stats {
        AsyncStore::stats(self)
    }
    fn update_in_transaction(&self, d: &Doc) -> Result<(), memdex::Error> {
        block_on(async {
            let mut tx = self.begin().await?;
            tx.update(d).await?;
            tx.commit().await
        })
    }
    fn clone_box(&self) -> Box<dyn Process + Send> {
        Box::new(self.clone())
    }
}

/// The test's copy of the table, and a random workload over it.
struct Workload {
    rows: BTreeMap<i64, Doc>,
    rng: StdRng,
    body_len: usize,
    reads: u64,
    writes: u64,
}

impl Workload {
    fn new(seed: u64, body_len: usize) -> Workload {
        Workload { rows: BTreeMap::new(), rng: StdRng::seed_from_u64(seed), body_len, reads: 0, writes: 0 }
    }

    fn body(&mut self, id: i64) -> String {
        let fill = char::from(b'a' + self.rng.gen_range(0..26u8));
        format!("{id}:{}", fill.to_string().repeat(self.body_len))
    }

    /// One random write through `s`.
    fn write(&mut self, s: &impl Process) {
        self.writes += 1;
        let id = self.rng.gen_range(1..=40);
        let body = self.body(id);
        match (self.rows.get(&id).cloned(), self.rng.gen_range(0..8)) {
            (None, _) => {
                let d = Doc { id, shelf: self.rng.gen_range(0..SHELVES), body };
                s.insert(&d).expect("insert");
                self.rows.insert(id, d);
            }
            (Some(_), 0) => {
                s.delete(id).expect("delete");
                self.rows.remove(&id);
            }
            (Some(mut d), _) => {
                d.shelf = (d.shelf + self.rng.gen_range(1..SHELVES)) % SHELVES;
                d.body = body;
                s.update(&d).expect("update");
                self.rows.insert(id, d);
            }
        }
    }

    /// One random read through `s`, checked against the copy.
    fn read(&mut self, s: &impl Process, phase: &str) {
        self.reads += 1;
        if self.rng.gen_bool(0.2) {
            let id = self.rng.gen_range(1..=40);
            let got = s.recall("lambda d: d.id == k", &[("k", id.into())]).expect("key read");
            let want: Vec<Doc> = self.rows.get(&id).cloned().into_iter().collect();
            assert_eq!(got, want, "{phase}: key {id}");
            return;
        }
        let shelves: Vec<i64> = (0..self.rng.gen_range(1..3)).map(|_| self.rng.gen_range(0..SHELVES)).collect();
        let got = s
            .recall("lambda d: d.shelf in shelves", &[("shelves", shelves.clone().into())])
            .unwrap_or_else(|e| panic!("{phase}: read failed: {e}"));
        let want: Vec<Doc> = self.rows.values().filter(|d| shelves.contains(&d.shelf)).cloned().collect();
        if got != want {
            let ids = |v: &[Doc]| v.iter().map(|d| (d.id, d.shelf)).collect::<Vec<_>>();
            panic!("{phase}: shelves {shelves:?}: expected {:?}, got {:?}", ids(&want), ids(&got));
        }
    }

    /// Every shelf through `s`, checked (used after recovery).
    fn read_all(&mut self, s: &impl Process, phase: &str) {
        for shelf in 0..SHELVES {
            self.reads += 1;
            let got = s.recall("lambda d: d.shelf == k", &[("k", shelf.into())]).expect("read");
            let want: Vec<Doc> = self.rows.values().filter(|d| d.shelf == shelf).cloned().collect();
            assert_eq!(
                got.iter().map(|d| (d.id, &d.body)).collect::<Vec<_>>(),
                want.iter().map(|d| (d.id, &d.body)).collect::<Vec<_>>(),
                "{phase}: shelf {shelf}"
            );
        }
    }

    fn mixed(&mut self, s: &impl Process, ops: usize, phase: &str) {
        for _ in 0..ops {
            if self.rng.gen_bool(0.4) { self.write(s) } else { self.read(s, phase) }
        }
    }
}

/// Waits long enough for every process to have drained the outbox entries of a
/// cache batch that failed (interval + grace, with slack for a loaded machine).
fn converge_wait() {
    thread::sleep(OUTBOX_INTERVAL + OUTBOX_GRACE + Duration::from_millis(150));
}

// ---------------------------------------------------------------------------
// The tests.
// ---------------------------------------------------------------------------

/// memcached killed mid-run: queries keep answering from the database; restarted
/// (empty): answers stay right, and a second process converges.
fn memcached_killed_and_restarted(engine: Engine) {
    let mut mc = memcached(16, "1m");
    let d = db(engine, "kill");
    let writer = store(&d, memcached_at(sock(&mc)));
    let other = store(&d, memcached_at(sock(&mc)));
    let mut w = Workload::new(1, 20);
    w.mixed(&writer, 150, "before the kill");
    w.read_all(&other, "other process, before the kill");
    mc.kill();
    let outage = Instant::now();
    w.mixed(&writer, 100, "memcached down");
    w.read_all(&writer, "memcached down (writer)");
    w.read_all(&other, "memcached down (other process)");
    let outage = outage.elapsed();
    mc.restart().expect("memcached restarts");
    w.read_all(&writer, "right after the restart (writer)");
    w.mixed(&writer, 150, "after the restart");
    converge_wait();
    w.read_all(&other, "other process, after the restart");
    let s = writer.stats();
    eprintln!("kill/restart: {} writes, {} reads, outage {outage:?}; writer stats {s:?}", w.writes, w.reads);
}

/// A memcached of 2 MB with 64 KB items and 40 KB rows: nodes and objects are evicted
/// all the time, between a read's two round trips and between a fill's lease and its
/// store.
fn memcached_evicting_constantly(engine: Engine) {
    let mc = memcached(2, "64k");
    let d = db(engine, "evict");
    let a = store(&d, memcached_at(sock(&mc)));
    let b = store(&d, memcached_at(sock(&mc)));
    let mut w = Workload::new(2, 40 * 1024);
    for round in 0..6 {
        w.mixed(&a, 80, &format!("evicting, round {round}, process a"));
        w.mixed(&b, 80, &format!("evicting, round {round}, process b"));
    }
    converge_wait();
    w.read_all(&a, "evicting, end, a");
    w.read_all(&b, "evicting, end, b");
    eprintln!("evictions: {} writes, {} reads; stats {:?}", w.writes, w.reads, a.stats());
}

/// The proxy between the stores and memcached drops, stalls, cuts and garbles, with
/// the mode switched every few operations. The writer's own reads are right at
/// once; another process converges once the proxy passes again.
fn proxy_drops_stalls_cuts_and_garbles(engine: Engine) {
    let mc = memcached(16, "1m");
    let proxy = FaultProxy::start(sock(&mc)).expect("proxy");
    let d = db(engine, "proxy");
    let writer = store(&d, memcached_at(proxy.addr()));
    let other = store(&d, memcached_at(sock(&mc)));
    let mut w = Workload::new(3, 20);
    let mut rng = StdRng::seed_from_u64(33);
    let modes = [
        Mode::Pass,
        Mode::DropNew,
        Mode::Stall,
        Mode::CutAfter(1),
        Mode::CutAfter(7),
        Mode::CutAfter(40),
        Mode::Garbage(b"VA 999999 c1\r\nxx".to_vec()),
        Mode::Garbage(b"\x00\xff\r\nEN\r\nHD c18446744073709551615\r\n".to_vec()),
        Mode::Garbage(b"SERVER_ERROR out of memory\r\n".to_vec()),
    ];
    for step in 0..10 {
        let mode = modes[rng.gen_range(0..modes.len())].clone();
        proxy.set_mode(mode.clone());
        if rng.gen_bool(0.3) {
            proxy.cut_all();
        }
        w.mixed(&writer, 6, &format!("step {step}, proxy {mode:?}"));
    }
    proxy.set_mode(Mode::Pass);
    proxy.cut_all();
    w.read_all(&writer, "proxy passing again (writer)");
    converge_wait();
    w.read_all(&other, "proxy passing again (other process)");
    w.mixed(&writer, 100, "after the faults");
    converge_wait();
    w.read_all(&other, "after the faults (other process)");
    eprintln!("proxy: {} writes, {} reads, proxy {:?}, writer {:?}", w.writes, w.reads, proxy.stats(), writer.stats());
}

/// Wraps memcached and, while armed, cuts the network (through the proxy) exactly
/// when a write's post-commit batch (appends and deletes) is about to be sent: the
/// database has committed, the cache never hears of it.
#[derive(Debug)]
struct CutOnWriteBatch {
    inner: Box<dyn CacheBackend>,
    proxy: Arc<FaultProxy>,
    armed: Arc<AtomicBool>,
    cuts: Arc<AtomicU64>,
}

impl CacheBackend for CutOnWriteBatch {
    fn run(&self, ops: &[CacheOp<'_>]) -> Vec<Result<CacheReply, CacheError>> {
        let write_batch = ops.iter().any(|op| matches!(op, CacheOp::Append { .. }));
        if write_batch && self.armed.load(Ordering::Relaxed) {
            self.proxy.set_mode(Mode::DropNew);
            self.proxy.cut_all();
            self.cuts.fetch_add(1, Ordering::Relaxed);
        }
        let replies = self.inner.run(ops);
        self.proxy.set_mode(Mode::Pass);
        replies
    }
    fn max_value_size(&self) -> usize {
        self.inner.max_value_size()
    }
    fn describe(&self) -> String {
        format!("cut-on-write({})", self.inner.describe())
    }
}

/// Cache batches lost right after the commit, with the writer's process then dying:
/// the other process must serve the new rows within the configured bound.
fn cache_write_lost_after_commit(engine: Engine) {
    let mc = memcached(16, "1m");
    let proxy = Arc::new(FaultProxy::start(sock(&mc)).expect("proxy"));
    let d = db(engine, "lost");
    let other = store(&d, memcached_at(sock(&mc)));
    let mut w = Workload::new(4, 20);
    let armed = Arc::new(AtomicBool::new(false));
    let cuts = Arc::new(AtomicU64::new(0));
    for round in 0..8 {
        let writer = store(
            &d,
            Box::new(CutOnWriteBatch {
                inner: memcached_at(proxy.addr()),
                proxy: proxy.clone(),
                armed: armed.clone(),
                cuts: cuts.clone(),
            }),
        );
        // Warm both processes' view of every shelf, so that stale nodes and objects
        // are cached when the writes' invalidations get lost.
        w.read_all(&other, &format!("round {round}: other, before"));
        w.read_all(&writer, &format!("round {round}: writer, before"));
        armed.store(true, Ordering::Relaxed);
        for _ in 0..5 {
            w.write(&writer);
        }
        armed.store(false, Ordering::Relaxed);
        // The writer's own next reads are right at once.
        w.read_all(&writer, &format!("round {round}: writer, right after its lost batches"));
        if round % 2 == 0 {
            // The writing process dies right after its commit (its in-memory list of
            // pending invalidations is gone; only the database's outbox remains).
            drop(writer);
        }
        converge_wait();
        w.read_all(&other, &format!("round {round}: other process, after the bound"));
    }
    assert!(cuts.load(Ordering::Relaxed) >= 8, "the fault was injected");
    eprintln!("lost batches: {} cuts, {} writes, {} reads", cuts.load(Ordering::Relaxed), w.writes, w.reads);
}

/// A transaction whose COMMIT's reply is lost — the server committed, then the
/// connection to the database was cut — fails with an error that carries no
/// SQLSTATE: the writer cannot know whether it committed. Its outbox entry stays
/// pending in doubt, so the writer's next call reads the table's entry and deletes
/// the keys it names before it reads: it never serves the row as it was from its
/// caches. (Abandoned as a rolled-back transaction, the entry would be left to some
/// process's periodic drain, and until then the writer would read the moved row in
/// its old shelf, from memcached and its near cache.) On PostgreSQL with both
/// drivers, and on MariaDB.
#[test]
fn a_commit_whose_reply_is_lost_leaves_the_writer_reading_what_it_committed() {
    for (engine, tokio) in [(Engine::Postgres, false), (Engine::Postgres, true), (Engine::MariaDb, false)] {
        let label = format!("{engine:?}, {}", if tokio { "tokio" } else { "blocking" });
        let mc = memcached(16, "1m");
        let d = db(engine, &format!("commit_lost_{}", label.replace(", ", "_")));
        let proxy = FaultProxy::start(d.shared.server_addr().expect("a server")).expect("proxy");
        let builder = d
            .shared
            .builder_via(proxy.addr())
            .namespace(d.namespace.clone())
            .cache(memcached_at(sock(&mc)))
            .outbox(Duration::from_secs(3600), Duration::from_secs(3600));
        let writer: Box<dyn Process> = if tokio {
            let store = block_on(builder.build_async()).expect("async store");
            block_on(store.migrate::<Doc>()).expect("migrate");
            Box::new(store)
        } else {
            let store = builder.build().expect("store");
            store.migrate::<Doc>().expect("migrate");
            Box::new(store)
        };
        let doc = |shelf| Doc { id: 1, shelf, body: "moved".into() };
        let shelf = |n: i64| writer.recall("lambda d: d.shelf == s", &[("s", n.into())]).expect("read");
        writer.insert(&doc(1)).expect("insert");
        assert_eq!((shelf(1), shelf(2)), (vec![doc(1)], vec![]), "{label}: the nodes and the object cached");
        let moved = match engine {
            Engine::Postgres => move_with_its_commit_reply_cut(&d.shared, &proxy, writer.as_ref(), doc(2)),
            _ => {
                // MariaDB's client sends the COMMIT alone (COM_QUERY, 0x03), once
                // every statement's reply has come: the next reply is the COMMIT's.
                proxy.set_mode(Mode::LoseReplyTo(b"\x03COMMIT".to_vec()));
                writer.update_in_transaction(&doc(2))
            }
        };
        assert!(moved.is_err(), "{label}: the COMMIT's reply was lost, so the transaction fails: {moved:?}");
        let mut outside = d.shared.outside();
        assert_eq!(outside.integer("SELECT shelf FROM fault_doc WHERE id = 1"), 2, "{label}: it committed");
        proxy.set_mode(Mode::Pass);
        assert_eq!((shelf(1), shelf(2)), (vec![], vec![doc(2)]), "{label}: the writer reads what it committed");
        let stats = writer.stats();
        assert_eq!(
            (stats.outbox_deferred, stats.outbox_drained),
            (1, 1),
            "{label}: its entry was pending, then read from the table and applied"
        );
    }
}

/// Moves `doc` in a transaction of `writer`'s, on PostgreSQL, and cuts the
/// connection between the COMMIT and its reply: a deferred trigger holds the COMMIT
/// on an advisory lock this function holds, and lets go once every reply the
/// writer's connection gets from then on is cut. (The tokio driver sends the
/// transaction's last statements and its COMMIT in one pipelined write, so the
/// reply cannot be told from the statements' by its bytes alone.)
fn move_with_its_commit_reply_cut(
    db: &SharedDb,
    proxy: &FaultProxy,
    writer: &dyn Process,
    doc: Doc,
) -> Result<(), memdex::Error> {
    let mut outside = db.outside();
    outside.execute(
        "CREATE FUNCTION hold_commit() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN PERFORM pg_advisory_xact_lock(4242); RETURN NULL; END $$",
    );
    outside.execute(
        "CREATE CONSTRAINT TRIGGER hold_commit AFTER UPDATE ON fault_doc \
         DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION hold_commit()",
    );
    let mut holder = db.outside();
    holder.execute("SELECT pg_advisory_lock(4242)");
    let moving = {
        let writer = writer.clone_box();
        thread::spawn(move || writer.update_in_transaction(&doc))
    };
    outside.wait_for_a_lock_wait("the COMMIT");
    proxy.set_mode(Mode::CutAfter(0));
    holder.execute("SELECT pg_advisory_unlock(4242)");
    moving.join().expect("the writing thread does not panic")
}

// ---------------------------------------------------------------------------
// Server mark-down: a hung, killed or slow server out of two.
// ---------------------------------------------------------------------------

/// A client over several servers (`TIMEOUT` for connects and exchanges).
fn memcached_over(addrs: &[String]) -> Memcached {
    let config = CacheConfig { connect_timeout: TIMEOUT, io_timeout: TIMEOUT, ..CacheConfig::default() };
    Memcached::connect(addrs, config).expect("memcached client")
}

/// Switches the proxy to `mode` (a hang), and waits until its forwarding threads
/// have seen it (a chunk read just before the switch is still delivered).
fn hang(proxy: &FaultProxy, mode: Mode) {
    proxy.set_mode(mode);
    thread::sleep(Duration::from_millis(30));
}

/// Waits until the store's cache has no server marked down (the prober brought it
/// back); panics after `limit`.
fn wait_until_up(s: &impl Process, limit: Duration) {
    let start = Instant::now();
    while s.stats().cache_servers_down > 0 {
        assert!(start.elapsed() < limit, "the server was not marked up within {limit:?}: {:?}", s.stats());
        thread::sleep(Duration::from_millis(10));
    }
}

/// Whether the shelf nodes of `namespace` land on both of `router`'s servers.
fn spread_over_both(router: &Memcached, namespace: &str) -> bool {
    let servers: std::collections::HashSet<String> =
        doc_keys(namespace).iter().take(SHELVES as usize).map(|key| router.server_for(key).to_string()).collect();
    servers.len() == 2
}

/// The cache keys of every shelf node and every document the workload may write.
fn doc_keys(namespace: &str) -> Vec<String> {
    let keys = memdex::grammar::keys::KeySpace::new(namespace, Doc::schema(), 0);
    let nodes = (0..SHELVES).map(|shelf| {
        keys.node(Doc::schema(), &memdex::grammar::plan::NodeRef { index: Some(0), values: vec![Value::Int(shelf)] })
    });
    nodes.chain((1..=40).map(|id| keys.object(&Value::Int(id)))).collect()
}

/// One healthy server and one that hangs (its proxy stalls): after the first
/// timeout the hung server is marked down, and no call waits for it again: every
/// connection it sees from then on is a probe. Answers stay right throughout, the
/// healthy server keeps serving its keys, the hung server's keys are never sent to
/// the healthy one, and the writes made meanwhile do not make the writer bypass the
/// cache (their invalidations are owed to the hung server, not pending).
#[test]
fn a_hung_server_is_marked_down_and_costs_no_more_timeouts() {
    let hung = HungServer::start("hung");
    let writer = store(&hung.db, Box::new(memcached_over(&hung.servers)));
    let back = hung.run(&writer, Workload::new(4, 20), "blocking", |down, during| {
        assert_eq!(during.outbox_deferred, down.outbox_deferred, "writes while down are owed, not pending: {during:?}");
        assert!(during.outbox_owed > 0, "some write touched the hung server: {during:?}");
    });
    assert!(back.cache_down_ms > 0, "down time is counted: {back:?}");
}

/// The same hung server under the tokio driver (an `AsyncStore` with its own
/// memcached transport).
#[test]
fn a_hung_server_is_marked_down_on_the_tokio_driver_too() {
    let hung = HungServer::start("hung_tokio");
    let builder = hung
        .db
        .shared
        .builder()
        .namespace(hung.db.namespace.clone())
        .memcached(hung.servers.clone())
        .cache_timeouts(TIMEOUT, TIMEOUT)
        .outbox(OUTBOX_INTERVAL, OUTBOX_GRACE);
    let writer = block_on(builder.build_async()).expect("async store");
    block_on(writer.migrate::<Doc>()).expect("migrate");
    hung.run(&writer, Workload::new(6, 20), "tokio", |_, _| {});
}

/// Two memcached servers, the second behind a proxy that can hang it, and a
/// database whose shelf nodes are spread over both.
struct HungServer {
    healthy: MemcachedServer,
    _hung: MemcachedServer,
    proxy: FaultProxy,
    /// The healthy server, then the proxy.
    servers: [String; 2],
    /// A client over both, for where each key lives.
    router: Memcached,
    db: Db,
}

impl HungServer {
    fn start(tag: &str) -> HungServer {
        let healthy = memcached(16, "1m");
        let hung = memcached(16, "1m");
        let proxy = FaultProxy::start(sock(&hung)).expect("proxy");
        let servers = [healthy.addr(), proxy.addr_string()];
        let router = memcached_over(&servers);
        let mut db = db(Engine::Sqlite, tag);
        // The key space depends on the namespace and the proxy's port, both new each
        // run; with five shelves, one run in 32 would put every shelf node on one
        // server and the test would not test what it names. Pick a namespace whose
        // shelves are spread over both servers (SQLite ignores the namespace).
        while !spread_over_both(&router, &db.namespace) {
            db.namespace.push('x');
        }
        HungServer { healthy, _hung: hung, proxy, servers, router, db }
    }

    /// Both servers up, then the hang, then the server back, with `writer` (either
    /// driver) working and reading throughout; `while_hung` adds checks on the stats
    /// at the hang and after the work done meanwhile. Returns the stats right after
    /// the server came back.
    fn run(
        &self,
        writer: &impl Process,
        mut w: Workload,
        label: &str,
        while_hung: impl FnOnce(&memdex::Stats, &memdex::Stats),
    ) -> memdex::Stats {
        w.mixed(writer, 150, &format!("{label}: both servers up"));
        w.read_all(writer, &format!("{label}: both servers up"));

        hang(&self.proxy, Mode::Stall);
        w.read_all(writer, &format!("{label}: the first calls after the hang"));
        let down = writer.stats();
        assert_eq!(down.cache_servers_down, 1, "the hung server is marked down: {down:?}");
        let connections = self.proxy.stats().accepted;
        w.mixed(writer, 300, &format!("{label}: one server hung"));
        w.read_all(writer, &format!("{label}: one server hung"));
        let during = writer.stats();
        let dialled = self.proxy.stats().accepted - connections;
        assert!(
            dialled <= during.cache_probes - down.cache_probes + 1,
            "only probes dial the hung server: {dialled} connections, {} probes",
            during.cache_probes - down.cache_probes
        );
        assert!(during.cache_skipped_ops > down.cache_skipped_ops, "ops for the hung server fail at once: {during:?}");
        assert!(during.node_hits > down.node_hits, "the healthy server keeps serving: {during:?}");
        // A read of a node on the hung server goes to the database at once (one
        // statement), without taking leases that nobody would fill.
        assert!(
            during.degraded_calls > down.degraded_calls,
            "reads of the hung server's nodes degrade at once: {during:?}"
        );
        while_hung(&down, &during);
        // The hung server's keys never went to the healthy one.
        let healthy_only = memcached_over(&[self.healthy.addr()]);
        for key in doc_keys(&self.db.namespace) {
            if self.router.server_for(&key) == self.proxy.addr_string() {
                let reply = healthy_only.run(&[CacheOp::Get { key: &key, lease: None }]);
                assert_eq!(reply, vec![Ok(CacheReply::Miss)], "{key} belongs to the hung server");
            }
        }

        self.proxy.set_mode(Mode::Pass);
        wait_until_up(writer, Duration::from_secs(10));
        w.read_all(writer, &format!("{label}: right after the hung server came back"));
        let back = writer.stats();
        w.mixed(writer, 150, &format!("{label}: both servers up again"));
        w.read_all(writer, &format!("{label}: both servers up again"));
        assert!(writer.stats().node_hits > back.node_hits, "the server serves again");
        back
    }
}

/// The exact damage a down server could do when it comes back: it still holds the
/// node and the object of a row that moved while it was down, because the writer's
/// invalidations were lost on a black-holed route. The probe deletes what the
/// writer owes before the server serves again, so the writer's own reads are right
/// at once; another process converges through the outbox.
#[test]
fn a_server_back_from_a_black_hole_never_serves_what_a_write_invalidated_meanwhile() {
    let mc = memcached(16, "1m");
    let proxy = FaultProxy::start(sock(&mc)).expect("proxy");
    let d = db(Engine::Sqlite, "owed");
    let writer = store(&d, Box::new(memcached_over(&[proxy.addr_string()])));
    let other = store(&d, Box::new(memcached_over(&[proxy.addr_string()])));
    let shelf = |s: &Store, k: i64| {
        s.recall_text::<Doc>("lambda d: d.shelf == k", &[("k", k.into())])
            .expect("read")
            .iter()
            .map(|d| d.id)
            .collect::<Vec<_>>()
    };
    let body = |s: &Store| s.recall_text::<Doc>("lambda d: d.id == 1", &[]).expect("read")[0].body.clone();
    writer.insert(&Doc { id: 1, shelf: 0, body: "old".into() }).unwrap();
    writer.insert(&Doc { id: 2, shelf: 3, body: "two".into() }).unwrap();
    assert_eq!(shelf(&writer, 0), vec![1]);
    assert_eq!(shelf(&writer, 0), vec![1], "now cached: node, object");
    assert_eq!(body(&writer), "old");
    assert!(writer.stats().node_hits >= 1);

    hang(&proxy, Mode::Blackhole);
    writer.update(&Doc { id: 1, shelf: 1, body: "new".into() }).unwrap();
    assert_eq!(writer.stats().cache_servers_down, 1);
    writer.update(&Doc { id: 2, shelf: 3, body: "two, again".into() }).unwrap();
    assert_eq!(shelf(&writer, 0), Vec::<i64>::new(), "down: from the database");
    assert_eq!(shelf(&writer, 1), vec![1]);

    proxy.set_mode(Mode::Pass);
    wait_until_up(&writer, Duration::from_secs(10));
    assert_eq!(shelf(&writer, 0), Vec::<i64>::new(), "the stale node or object must not be served");
    assert_eq!(shelf(&writer, 1), vec![1]);
    assert_eq!(body(&writer), "new");
    converge_wait();
    wait_until_up(&other, Duration::from_secs(10));
    assert_eq!(shelf(&other, 0), Vec::<i64>::new(), "another process converges through the outbox");
    assert_eq!(body(&other), "new");
}

/// A server killed outright (connections refused) is marked down without any
/// timeout, and comes back when it is restarted.
#[test]
fn a_killed_server_is_marked_down_and_comes_back_when_restarted() {
    let a = memcached(16, "1m");
    let mut b = memcached(16, "1m");
    let d = db(Engine::Sqlite, "killb");
    let writer = store(&d, Box::new(memcached_over(&[a.addr(), b.addr()])));
    let mut w = Workload::new(5, 20);
    w.mixed(&writer, 150, "both servers up");
    b.kill();
    w.mixed(&writer, 200, "one server killed");
    w.read_all(&writer, "one server killed");
    let s = writer.stats();
    assert!(s.cache_markdowns >= 1 && s.cache_skipped_ops > 0, "{s:?}");
    b.restart().expect("memcached restarts");
    wait_until_up(&writer, Duration::from_secs(10));
    w.mixed(&writer, 150, "restarted");
    w.read_all(&writer, "restarted");
}

/// A server that answers, but slower than the timeout: marked down, probed (each
/// probe times out too, so it stays down), and back once it is fast again.
#[test]
fn a_slow_server_stays_down_until_it_answers_in_time() {
    let a = memcached(16, "1m");
    let b = memcached(16, "1m");
    let proxy = FaultProxy::start(sock(&b)).expect("proxy");
    let d = db(Engine::Sqlite, "slow");
    let writer = store(&d, Box::new(memcached_over(&[a.addr(), proxy.addr_string()])));
    let mut w = Workload::new(6, 20);
    w.mixed(&writer, 100, "both fast");
    proxy.set_mode(Mode::Delay(TIMEOUT * 3));
    w.mixed(&writer, 150, "one server slow");
    let before = writer.stats();
    assert_eq!(before.cache_servers_down, 1, "{before:?}");
    // Several probes, each of which must fail. Waited for rather than slept on: the
    // backoff doubles from 50 ms and each probe waits out its timeout, so on a
    // loaded machine two probes can take longer than any fixed pause.
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut probed = writer.stats();
    while probed.cache_probes < before.cache_probes + 2 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
        probed = writer.stats();
    }
    assert!(probed.cache_probes >= before.cache_probes + 2, "probed while slow: {probed:?}");
    assert_eq!(probed.cache_servers_down, 1, "still down while slow: {probed:?}");
    w.read_all(&writer, "one server slow");
    proxy.set_mode(Mode::Pass);
    wait_until_up(&writer, Duration::from_secs(10));
    w.mixed(&writer, 100, "fast again");
    w.read_all(&writer, "fast again");
}

/// With a backend that does not owe failed invalidations (the writer keeps them
/// pending and bypasses the cache), the retries still cost a call one cache batch,
/// however many writes failed: never one batch (and one timeout) per write.
#[test]
fn pending_invalidations_cost_a_call_one_cache_batch() {
    use memdex::cache::in_process::InProcessCache;
    use memdex_tests::backends::{CacheMode, SwitchCache};
    let d = db(Engine::Sqlite, "pending");
    let (cache, switch) = SwitchCache::new(Box::new(InProcessCache::new(CacheConfig::default())));
    // The table drain is kept out of the way (a minute), so the only batch the read
    // pays for pending entries is this process's own retry.
    let writer = d
        .shared
        .builder()
        .namespace(d.namespace.clone())
        .cache(Box::new(cache))
        .outbox(Duration::from_secs(60), Duration::from_secs(60))
        .build()
        .expect("store");
    writer.migrate::<Doc>().expect("migrate");
    for id in 1..=30 {
        writer.insert(&Doc { id, shelf: id % SHELVES, body: "b".into() }).unwrap();
    }
    switch.set(CacheMode::WritesFail);
    for id in 1..=30 {
        writer.update(&Doc { id, shelf: (id + 1) % SHELVES, body: "c".into() }).unwrap();
    }
    let before = writer.stats();
    assert_eq!(before.outbox_deferred, 30, "{before:?}");
    let rows = writer.recall_text::<Doc>("lambda d: d.shelf == 1", &[]).unwrap();
    assert!(rows.iter().all(|d| d.shelf == 1 && d.body == "c"), "{rows:?}");
    let after = writer.stats();
    assert_eq!(after.cache_round_trips - before.cache_round_trips, 1, "one retry batch for 30 pending writes");
    assert!(after.degraded_calls > before.degraded_calls, "the read bypassed the cache");
    switch.set(CacheMode::Up);
    let rows = writer.recall_text::<Doc>("lambda d: d.shelf == 1", &[]).unwrap();
    assert_eq!(rows.len(), 6);
    assert_eq!(writer.stats().outbox_drained, 30, "{:?}", writer.stats());
}

/// Every fault test on both engines: the SQLite file, and MariaDB (its outbox,
/// transactions and connection pool under the same cache faults).
macro_rules! on_every_engine {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $( #[test] fn $test() { super::$test(super::Engine::Sqlite) } )*
        }
        mod mariadb {
            $( #[test] fn $test() { super::$test(super::Engine::MariaDb) } )*
        }
    };
}

on_every_engine!(
    memcached_killed_and_restarted,
    memcached_evicting_constantly,
    proxy_drops_stalls_cuts_and_garbles,
    cache_write_lost_after_commit,
);
