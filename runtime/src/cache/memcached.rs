//! memcached through the meta protocol (`mg`/`ms`/`md`), pipelined, with keys
//! sharded over servers by rendezvous hashing.
//!
//! Requests are written straight into one buffer per connection and replies are
//! framed in place in the connection's read buffer: the hot path allocates nothing
//! per op but the value it hands back. The command and return-code tokens come from
//! the `memcache` crate's wire layer ([`MetaOp`], [`ReturnCode`]); the transport is
//! our own: a small pool of blocking `TcpStream`s (`TCP_NODELAY`) per server.
//!
//! One [`CacheBackend::run`] is one round trip whatever its size and however many
//! servers it touches: the calling thread writes every server's requests first
//! (each server's in a single `write`), then reads every server's replies, so the
//! servers work on their parts at the same time without a thread per server. Only
//! dialling is done in parallel (scoped threads, when several servers need a new
//! connection at once), so that one unreachable server's connect timeout does not
//! delay the others'.
//!
//! Leases: a lease get is `mg <key> v c f N<ttl>`. memcached answers a miss by
//! creating an empty placeholder and flagging the creator `W` (won) and later
//! getters `Z` (busy). An append onto the placeholder drops those flags, so every
//! value this backend stores carries client flag 1 (`F1`) and a placeholder keeps
//! flag 0: a lease get that finds flag 0 is still busy, exactly like the
//! in-process cache. An item written by another client with flag 0 therefore
//! reads as busy to lease getters (a miss the executor answers from the database).
//!
//! Timeouts: each server's part of a batch has `io_timeout` from the moment its
//! requests start to be written. (Requests go out one server after another; a
//! server that stops reading holds up the next server's requests only when a
//! batch is larger than the socket buffers, and then for at most its own
//! timeout.) Socket timeouts are only re-armed when the one in force
//! would end before that deadline or more than [`ARM_SLACK`] after it, which on a
//! hot connection is never within a batch, instead of two `setsockopt` calls per
//! `read`. Replies that already arrived are still read after the deadline passed
//! (while another server's part was waited for); only a wait is cut short.
//!
//! Failure attribution: a server that cannot be dialled fails its ops with
//! `Unreachable` (or `Timeout`); a batch that was written but not answered fails
//! its unanswered reads with `Timeout`/`Unreachable` and its unanswered
//! mutations (including lease gets, which create placeholders) with `Ambiguous`.
//! A connection that saw any failure is dropped, never pooled with unread replies.

use memdex_grammar::decimal::Digits;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use memcache::exp::{MetaOp, ReturnCode};

use super::health::{Health, HealthCounters};
use super::in_process::invalid_key_reason;
use super::{CacheBackend, CacheConfig, CacheError, CacheHealth, CacheOp, CacheReply};

/// Idle connections kept per server; more are dialled under load and closed
/// when they come back to a full pool.
const MAX_IDLE_PER_SERVER: usize = 16;

/// Client flag on every value this backend stores; lease placeholders keep 0.
const FILLED_FLAG: &[u8] = b"F1";

/// Read buffer per connection: large enough that a 100-key multi-get of small
/// values is one or two `read` calls.
const READ_BUFFER: usize = 64 * 1024;

/// A reply header is a few dozen bytes; anything longer is not memcached talking.
const MAX_LINE: usize = 4096;

/// The largest value a reply may announce (memcached's own ceiling for `-I`).
const MAX_VALUE: usize = 1 << 30;

/// How far past a deadline a socket timeout armed earlier may reach before it is
/// re-armed. A wait never ends *before* its deadline.
const ARM_SLACK: Duration = Duration::from_millis(2);

type OpResult = Result<CacheReply, CacheError>;

/// A sharded, pipelined memcached client.
#[derive(Debug)]
pub struct Memcached {
    shared: Arc<Shared>,
}

/// What the client and its prober thread share (the prober holds it weakly and
/// ends when the client is dropped).
#[derive(Debug)]
pub(crate) struct Shared {
    servers: Vec<Server>,
    config: CacheConfig,
    counters: HealthCounters,
    /// Whether a prober thread runs; decided under this lock so that exactly one
    /// runs while any server is down.
    prober_running: Mutex<bool>,
}

#[derive(Debug)]
struct Server {
    /// The address as configured: the identity keys are routed by, and the name
    /// in errors.
    name: String,
    /// The routing weight seed, a stable hash of `name`.
    seed: u64,
    idle: Mutex<Vec<Connection>>,
    health: Health,
}

impl Server {
    fn new(name: String) -> Server {
        Server { seed: fnv1a(name.as_bytes()), name, idle: Mutex::new(Vec::new()), health: Health::default() }
    }
}

/// One server's part of a batch.
struct Part<'b> {
    server: &'b Server,
    /// Positions of this server's ops in the batch.
    positions: &'b [usize],
    state: PartState,
}

enum PartState {
    /// No connection yet.
    Idle,
    /// Connected; nothing written yet.
    Ready(Connection),
    /// Requests written, replies due by the deadline.
    Sent(Connection, Instant),
    /// Answered (or failed), one result per position.
    Done(Vec<OpResult>),
}

impl Memcached {
    /// A client for `servers` (`"host:port"`). Fails only when the list is empty or
    /// an address does not resolve. A server that cannot be reached at start, or
    /// fails later, is marked down and probed in the background until it answers
    /// (see [`health`](super::health)).
    pub fn connect(servers: &[impl AsRef<str>], config: CacheConfig) -> Result<Memcached, CacheError> {
        if servers.is_empty() {
            return Err(CacheError::Unreachable {
                server: String::new(),
                reason: "no memcached servers configured".to_owned(),
            });
        }
        let mut resolved = Vec::with_capacity(servers.len());
        for server in servers {
            let name = server.as_ref().to_owned();
            if let Err(error) = resolve(&name) {
                return Err(CacheError::Unreachable { server: name, reason: error.to_string() });
            }
            resolved.push(Server::new(name));
        }
        let client = Memcached {
            shared: Arc::new(Shared {
                servers: resolved,
                config,
                counters: HealthCounters::default(),
                prober_running: Mutex::new(false),
            }),
        };
        // Warm each pool with one connection so the first batch does not pay the
        // dial; a server that is down now is marked down and probed.
        for server in &client.shared.servers {
            match Connection::dial(&server.name, client.shared.config.connect_timeout) {
                Ok(connection) => server.release(connection),
                Err(error) => {
                    tracing::warn!(server = %server.name, %error, "memcached not reachable at start; marked down");
                    client.mark_down(server, std::iter::empty());
                }
            }
        }
        Ok(client)
    }

    /// The server (`host:port`, as configured) that `key` is routed to.
    pub fn server_for(&self, key: &str) -> &str {
        &self.shared.servers[self.shared.route(key)].name
    }

    /// Marks `server` down owing `invalidations`, and makes sure the prober runs.
    fn mark_down<'k>(&self, server: &Server, invalidations: impl Iterator<Item = &'k str>) {
        if server.health.mark_down(invalidations, &self.shared.counters) {
            tracing::warn!(server = %server.name, "memcached server marked down");
            // Its idle connections may be stuck behind a stalled server; probes and
            // later batches dial afresh.
            server.idle.lock().unwrap_or_else(|p| p.into_inner()).clear();
        }
        self.ensure_prober();
    }

    /// Starts the prober thread unless one runs.
    fn ensure_prober(&self) {
        let mut running = self.shared.prober_running.lock().unwrap_or_else(|p| p.into_inner());
        if *running {
            return;
        }
        let weak = Arc::downgrade(&self.shared);
        let spawned =
            std::thread::Builder::new().name("memdex-cache-probe".to_owned()).spawn(move || probe_loop(&weak));
        match spawned {
            Ok(_) => *running = true,
            // The next failure or batch tries again; meanwhile the server stays down,
            // which costs cache hits, never answers.
            Err(error) => tracing::error!(%error, "cannot start the memcached prober thread"),
        }
    }
}

impl Shared {
    /// The index of the server `key` lives on: rendezvous hashing, so adding or
    /// removing a server moves only that server's keys, with a hash that is the
    /// same in every process and every build.
    fn route(&self, key: &str) -> usize {
        if self.servers.len() == 1 {
            return 0;
        }
        let key_hash = fnv1a(key.as_bytes());
        let mut best = (0, 0u64);
        for (index, server) in self.servers.iter().enumerate() {
            let score = mix(key_hash ^ server.seed);
            if index == 0 || score > best.1 {
                best = (index, score);
            }
        }
        best.0
    }

    /// Gives every part a connection: a pooled one, else a new one. Several new
    /// connections are dialled at once, each on its own scoped thread, so that the
    /// connect timeouts of unreachable servers overlap as the exchanges do.
    fn connect_parts(&self, parts: &mut [Part<'_>]) {
        for part in parts.iter_mut().filter(|part| matches!(part.state, PartState::Idle)) {
            if let Some(connection) = part.server.pooled() {
                part.state = PartState::Ready(connection);
            }
        }
        let timeout = self.config.connect_timeout;
        let mut to_dial: Vec<&mut Part<'_>> =
            parts.iter_mut().filter(|part| matches!(part.state, PartState::Idle)).collect();
        let dialled: Vec<io::Result<Connection>> = match to_dial.as_slice() {
            [] => Vec::new(),
            [part] => vec![Connection::dial(&part.server.name, timeout)],
            _ => std::thread::scope(|scope| {
                let handles: Vec<_> = to_dial
                    .iter()
                    .map(|part| {
                        let name = part.server.name.as_str();
                        scope.spawn(move || Connection::dial(name, timeout))
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|handle| handle.join().unwrap_or_else(|_| Err(io::Error::other("connecting thread panicked"))))
                    .collect()
            }),
        };
        for (part, connection) in to_dial.iter_mut().zip(dialled) {
            part.state = match connection {
                Ok(connection) => PartState::Ready(connection),
                Err(error) => {
                    let error = transport_error(&part.server.name, &error, false);
                    PartState::Done(part.positions.iter().map(|_| Err(error.clone())).collect())
                }
            };
        }
    }

    /// Writes a part's requests in one `write`; its deadline starts now.
    fn send(&self, ops: &[CacheOp<'_>], part: &mut Part<'_>) {
        let mut connection = match std::mem::replace(&mut part.state, PartState::Idle) {
            PartState::Ready(connection) => connection,
            other => {
                part.state = other;
                return;
            }
        };
        let mut payload = std::mem::take(&mut connection.out);
        payload.clear();
        for &position in part.positions {
            encode(&ops[position], &mut payload);
        }
        let deadline = Instant::now() + self.config.io_timeout;
        let written = connection.write_all_by(&payload, deadline);
        connection.out = payload;
        part.state = match written {
            Ok(()) => PartState::Sent(connection, deadline),
            Err(error) => {
                // Bytes may have left before the failure: mutations are ambiguous.
                let sent = connection.written > 0;
                let name = &part.server.name;
                PartState::Done(
                    part.positions
                        .iter()
                        .map(|&position| Err(transport_error(name, &error, sent && mutates(&ops[position]))))
                        .collect(),
                )
            }
        };
    }

    /// Reads a part's replies, in order, by its deadline.
    fn receive(&self, ops: &[CacheOp<'_>], part: &mut Part<'_>) {
        let (mut connection, deadline) = match std::mem::replace(&mut part.state, PartState::Idle) {
            PartState::Sent(connection, deadline) => (connection, deadline),
            other => {
                part.state = other;
                return;
            }
        };
        let name = &part.server.name;
        let positions = part.positions;
        let mut results = Vec::with_capacity(positions.len());
        for (answered, &position) in positions.iter().enumerate() {
            let failure = match connection.receive(deadline) {
                Ok(reply) => match interpret(&ops[position], reply) {
                    Ok(reply) => {
                        results.push(Ok(reply));
                        continue;
                    }
                    // The stream can no longer be trusted to pair replies with
                    // requests: this op and every later one fail.
                    Err(reason) => Failure::Garbage(reason),
                },
                Err(failure) => failure,
            };
            match failure {
                Failure::Garbage(reason) => {
                    let error = CacheError::Protocol { server: name.clone(), reason };
                    results.extend(positions[answered..].iter().map(|_| Err(error.clone())));
                }
                Failure::Io(error) => results.extend(
                    positions[answered..]
                        .iter()
                        .map(|&position| Err(transport_error(name, &error, mutates(&ops[position])))),
                ),
            }
            part.state = PartState::Done(results);
            return;
        }
        part.server.release(connection);
        part.state = PartState::Done(results);
    }
}

impl CacheBackend for Memcached {
    fn run(&self, ops: &[CacheOp<'_>]) -> Vec<OpResult> {
        let mut results: Vec<Option<OpResult>> = Vec::with_capacity(ops.len());
        let mut per_server: Vec<Vec<usize>> = vec![Vec::new(); self.shared.servers.len()];
        for (position, op) in ops.iter().enumerate() {
            let early = if let Some(reason) = invalid_key_reason(op.key()) {
                Some(Err(CacheError::Protocol { server: self.describe(), reason }))
            } else {
                match op {
                    CacheOp::Set { value, .. } | CacheOp::Cas { value, .. } | CacheOp::Append { value, .. }
                        if value.len() > self.shared.config.max_value_size =>
                    {
                        Some(Ok(CacheReply::NotStored))
                    }
                    _ => None,
                }
            };
            if early.is_none() {
                per_server[self.shared.route(op.key())].push(position);
            }
            results.push(early);
        }

        let mut parts: Vec<Part<'_>> = per_server
            .iter()
            .zip(&self.shared.servers)
            .filter(|(positions, _)| !positions.is_empty())
            .map(|(positions, server)| Part { server, positions, state: PartState::Idle })
            .collect();
        // A server marked down answers nothing: its ops fail now, without I/O, and
        // its invalidations are owed until a probe has applied them.
        for part in &mut parts {
            let invalidations = invalidations(ops, part.positions, |_| true);
            if part.server.health.skip_if_down(invalidations, &self.shared.counters, part.positions.len()) {
                let down = CacheError::Down { server: part.server.name.clone() };
                part.state = PartState::Done(part.positions.iter().map(|_| Err(down.clone())).collect());
            }
        }
        self.shared.connect_parts(&mut parts);
        // Every server gets its requests before any reply is waited for.
        for part in &mut parts {
            self.shared.send(ops, part);
        }
        for part in &mut parts {
            self.shared.receive(ops, part);
        }
        for part in parts {
            if let PartState::Done(answers) = part.state {
                if answers.iter().any(|answer| matches!(answer, Err(error) if error.marks_down())) {
                    let failed = |at: usize| matches!(answers[at], Err(ref error) if error.marks_down());
                    self.mark_down(part.server, invalidations(ops, part.positions, failed));
                }
                for (&position, answer) in part.positions.iter().zip(answers) {
                    results[position] = Some(answer);
                }
            }
        }
        results
            .into_iter()
            .map(|result| {
                result.unwrap_or_else(|| {
                    Err(CacheError::Protocol { server: self.describe(), reason: "no reply recorded".to_owned() })
                })
            })
            .collect()
    }

    fn max_value_size(&self) -> usize {
        self.shared.config.max_value_size
    }

    fn describe(&self) -> String {
        let names: Vec<&str> = self.shared.servers.iter().map(|server| server.name.as_str()).collect();
        format!("memcached {}", names.join(", "))
    }

    fn owes(&self, keys: &[&str]) -> bool {
        keys.iter().all(|key| self.shared.servers[self.shared.route(key)].health.owes_all(std::iter::once(*key)))
    }

    fn is_available(&self, key: &str) -> bool {
        !self.shared.servers[self.shared.route(key)].health.is_down()
    }

    fn health(&self) -> CacheHealth {
        let counters = &self.shared.counters;
        let running: u64 = self.shared.servers.iter().map(|server| server.health.running_down_ms()).sum();
        CacheHealth {
            servers_down: self.shared.servers.iter().filter(|server| server.health.is_down()).count() as u64,
            markdowns: counters.markdowns.load(std::sync::atomic::Ordering::Relaxed),
            probes: counters.probes.load(std::sync::atomic::Ordering::Relaxed),
            skipped_ops: counters.skipped_ops.load(std::sync::atomic::Ordering::Relaxed),
            down_ms: counters.down_ms.load(std::sync::atomic::Ordering::Relaxed) + running,
        }
    }
}

/// The keys of the ops at `positions` (those `selected` by their index within
/// `positions`) that invalidate: a delete or an append that did not reach the server
/// leaves a value it should have removed or extended. Fills and lease gets are not
/// among them: a lost fill leaves nothing stale.
fn invalidations<'o>(
    ops: &'o [CacheOp<'o>],
    positions: &'o [usize],
    selected: impl Fn(usize) -> bool + 'o,
) -> impl Iterator<Item = &'o str> + 'o {
    positions.iter().enumerate().filter(move |&(at, _)| selected(at)).filter_map(move |(_, &position)| {
        match ops[position] {
            CacheOp::Delete { key } | CacheOp::Append { key, .. } | CacheOp::Set { key, .. } => Some(key),
            _ => None,
        }
    })
}

/// The prober: while any server is down, probes each one when its time comes, and
/// ends when none is down (or the client is gone).
fn probe_loop(shared: &Weak<Shared>) {
    loop {
        let Some(client) = shared.upgrade() else { return };
        for server in &client.servers {
            if server.health.next_probe().is_some_and(|at| at <= Instant::now()) {
                client.probe(server);
            }
        }
        let next = client.servers.iter().filter_map(|server| server.health.next_probe()).min();
        let Some(next) = next else {
            let mut running = client.prober_running.lock().unwrap_or_else(|p| p.into_inner());
            // Decided under the lock `ensure_prober` takes after a mark-down, so a
            // server that went down just now either is seen here or gets a new prober.
            if client.servers.iter().all(|server| !server.health.is_down()) {
                *running = false;
                return;
            }
            continue;
        };
        drop(client);
        // Woken at least every 100 ms so that a dropped client ends the thread soon.
        std::thread::sleep(next.saturating_duration_since(Instant::now()).min(Duration::from_millis(100)));
    }
}

/// A factor in [0.5, 1] that spreads the probes of many processes apart.
fn jitter() -> f64 {
    0.5 + fastrand::f64() / 2.0
}

impl Shared {
    /// One probe: dial, delete every owed key, `mn`; the server is up again when all
    /// of it was answered in time and nothing more became owed meanwhile.
    fn probe(&self, server: &Server) {
        self.counters.probes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let outcome = Connection::dial(&server.name, self.config.connect_timeout).map_err(Failure::Io).and_then(
            |mut connection| loop {
                let owed = server.health.take_owed();
                self.apply_owed(&mut connection, &owed.keys)?;
                if server.health.mark_up(&owed.keys, &self.counters) {
                    return Ok(connection);
                }
            },
        );
        match outcome {
            Ok(connection) => {
                tracing::info!(server = %server.name, "memcached server answers again; marked up");
                server.release(connection);
            }
            Err(_) => server.health.probe_failed(jitter()),
        }
    }

    /// Deletes `keys` on one connection, a bounded chunk per exchange, ending with a
    /// no-op so that even an empty list proves the server answers.
    fn apply_owed(&self, connection: &mut Connection, keys: &[String]) -> Result<(), Failure> {
        const CHUNK: usize = 1000;
        let mut chunks = keys.chunks(CHUNK).peekable();
        let mut out = std::mem::take(&mut connection.out);
        let outcome = loop {
            let chunk = chunks.next().unwrap_or(&[]);
            let last = chunks.peek().is_none();
            out.clear();
            for key in chunk {
                encode(&CacheOp::Delete { key }, &mut out);
            }
            if last {
                out.extend_from_slice(b"mn\r\n");
            }
            let deadline = Instant::now() + self.config.io_timeout;
            if let Err(error) = connection.write_all_by(&out, deadline) {
                break Err(Failure::Io(error));
            }
            let mut answered = Ok(());
            for key in chunk {
                let op = CacheOp::Delete { key };
                match connection.receive(deadline).and_then(|reply| interpret(&op, reply).map_err(Failure::Garbage)) {
                    Ok(CacheReply::Deleted | CacheReply::NotFound) => {}
                    Ok(other) => answered = Err(Failure::Garbage(format!("unexpected reply {other:?} to {op:?}"))),
                    Err(failure) => {
                        answered = Err(failure);
                        break;
                    }
                }
            }
            if answered.is_ok() && last {
                answered = match connection.receive(deadline) {
                    Ok(Reply::Meta(header, None)) if header.rc == ReturnCode::Mn => Ok(()),
                    Ok(_) => Err(Failure::Garbage("no MN after the owed deletes".to_owned())),
                    Err(failure) => Err(failure),
                };
            }
            if answered.is_err() || last {
                break answered;
            }
        };
        connection.out = out;
        outcome
    }
}

/// Appends the meta command for one op. Keys were checked (no whitespace or
/// control bytes, at most 250 bytes) before routing, so they go on the wire as is.
fn encode(op: &CacheOp<'_>, out: &mut Vec<u8>) {
    let mut head = |command: MetaOp, key: &str| {
        out.extend_from_slice(command.wire());
        out.push(b' ');
        out.extend_from_slice(key.as_bytes());
    };
    match *op {
        CacheOp::Get { key, lease } => {
            head(MetaOp::Get, key);
            out.extend_from_slice(b" v c f");
            if let Some(ttl) = lease {
                out.extend_from_slice(b" N");
                push_decimal(out, u64::from(ttl));
            }
        }
        CacheOp::GetCas { key } => {
            head(MetaOp::Get, key);
            out.extend_from_slice(b" c");
        }
        CacheOp::Set { key, value, ttl } => {
            store_head(out, key, value, ttl);
            return data_block(out, value);
        }
        CacheOp::Cas { key, value, ttl, cas } => {
            store_head(out, key, value, ttl);
            out.extend_from_slice(b" C");
            push_decimal(out, cas);
            return data_block(out, value);
        }
        // Append mode without `N` never creates the item.
        CacheOp::Append { key, value } => {
            head(MetaOp::Set, key);
            out.push(b' ');
            push_decimal(out, value.len() as u64);
            out.extend_from_slice(b" MA");
            return data_block(out, value);
        }
        CacheOp::Delete { key } => head(MetaOp::Delete, key),
    }
    out.extend_from_slice(b"\r\n");
}

/// `ms <key> <length> T<ttl> F1`, without the line end.
fn store_head(out: &mut Vec<u8>, key: &str, value: &[u8], ttl: u32) {
    out.extend_from_slice(MetaOp::Set.wire());
    out.push(b' ');
    out.extend_from_slice(key.as_bytes());
    out.push(b' ');
    push_decimal(out, value.len() as u64);
    out.extend_from_slice(b" T");
    push_decimal(out, u64::from(ttl));
    out.push(b' ');
    out.extend_from_slice(FILLED_FLAG);
}

/// Ends a store's request line and appends its data block.
fn data_block(out: &mut Vec<u8>, value: &[u8]) {
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Appends `n` in decimal without going through `fmt`.
fn push_decimal(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(Digits::new(n).as_bytes());
}

/// Whether an unanswered op may have changed the server's state.
fn mutates(op: &CacheOp<'_>) -> bool {
    !matches!(op, CacheOp::Get { lease: None, .. } | CacheOp::GetCas { .. })
}

/// A parsed reply, or why it does not answer `op`.
fn interpret(op: &CacheOp<'_>, reply: Reply) -> Result<CacheReply, String> {
    let (header, value) = match reply {
        Reply::Meta(header, value) => (header, value),
        Reply::ServerError(message) => {
            // memcached swallows the data block of a store it cannot hold
            // ("object too large for cache", "out of memory storing object") and
            // stays in step, so only a store may answer this way.
            return match op {
                CacheOp::Set { .. } | CacheOp::Cas { .. } | CacheOp::Append { .. } => Ok(CacheReply::NotStored),
                _ => Err(format!("SERVER_ERROR {message}")),
            };
        }
    };
    let number = |name: char, flag: Flag| -> Result<Option<u64>, String> {
        match flag {
            Flag::Absent => Ok(None),
            Flag::Number(n) => Ok(Some(n)),
            Flag::Malformed => Err(format!("malformed {name} flag in reply to {op:?}")),
        }
    };
    let cas = || number('c', header.cas)?.ok_or_else(|| format!("reply to {op:?} lacks its CAS"));
    match (op, header.rc) {
        (CacheOp::Get { lease, .. }, ReturnCode::Va) => {
            let cas = cas()?;
            let value = value.unwrap_or_default();
            if lease.is_none() {
                return Ok(CacheReply::Hit { value, cas });
            }
            if header.won {
                Ok(CacheReply::LeaseWon { cas })
            } else if header.busy || number('f', header.client_flags)?.unwrap_or(0) == 0 {
                Ok(CacheReply::LeaseBusy)
            } else {
                Ok(CacheReply::Hit { value, cas })
            }
        }
        // With `N` a miss creates a placeholder; `EN` means it could not (memory
        // pressure), so nobody holds the lease and the caller must not fill.
        (CacheOp::Get { lease: Some(_), .. }, ReturnCode::En) => Ok(CacheReply::LeaseBusy),
        (CacheOp::Get { lease: None, .. } | CacheOp::GetCas { .. }, ReturnCode::En) => Ok(CacheReply::Miss),
        (CacheOp::GetCas { .. }, ReturnCode::Hd) => Ok(CacheReply::Present { cas: cas()? }),
        (CacheOp::Set { .. } | CacheOp::Cas { .. } | CacheOp::Append { .. }, ReturnCode::Hd) => Ok(CacheReply::Stored),
        (CacheOp::Set { .. } | CacheOp::Append { .. }, ReturnCode::Ns) => Ok(CacheReply::NotStored),
        (CacheOp::Cas { .. }, ReturnCode::Ex) => Ok(CacheReply::Exists),
        (CacheOp::Cas { .. }, ReturnCode::Nf) => Ok(CacheReply::NotFound),
        (CacheOp::Cas { .. }, ReturnCode::Ns) => Ok(CacheReply::NotStored),
        (CacheOp::Delete { .. }, ReturnCode::Hd) => Ok(CacheReply::Deleted),
        (CacheOp::Delete { .. }, ReturnCode::Nf) => Ok(CacheReply::NotFound),
        (_, rc) => Err(format!("unexpected reply {rc:?} to {op:?}")),
    }
}

/// A numeric reply flag.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Flag {
    #[default]
    Absent,
    Number(u64),
    Malformed,
}

impl Flag {
    fn parse(digits: &[u8]) -> Flag {
        parse_decimal(digits).map_or(Flag::Malformed, Flag::Number)
    }
}

/// The parts of a meta reply header the client reads.
#[derive(Debug, PartialEq, Eq)]
struct Header {
    rc: ReturnCode,
    /// The data length of a `VA` reply.
    length: Option<usize>,
    /// `c`: the CAS token.
    cas: Flag,
    /// `f`: the client flags.
    client_flags: Flag,
    /// `W`: this getter won the lease.
    won: bool,
    /// `Z`: another getter holds the lease.
    busy: bool,
}

impl Header {
    /// Parses a header line (without its CRLF) in place.
    fn parse(line: &[u8]) -> Result<Header, String> {
        let mut tokens = line.split(|&byte| byte == b' ').filter(|token| !token.is_empty());
        let garbage = || format!("unreadable reply {:?}", String::from_utf8_lossy(line));
        let rc = tokens.next().and_then(|token| ReturnCode::from_wire(token).ok()).ok_or_else(garbage)?;
        let mut header =
            Header { rc, length: None, cas: Flag::Absent, client_flags: Flag::Absent, won: false, busy: false };
        if rc == ReturnCode::Va {
            let length = tokens
                .next()
                .and_then(parse_decimal)
                .and_then(|length| usize::try_from(length).ok())
                .filter(|&length| length <= MAX_VALUE)
                .ok_or_else(|| format!("VA reply without a valid data length: {:?}", String::from_utf8_lossy(line)))?;
            header.length = Some(length);
        }
        for token in tokens {
            match token.split_first() {
                Some((b'c', digits)) => header.cas = Flag::parse(digits),
                Some((b'f', digits)) => header.client_flags = Flag::parse(digits),
                Some((b'W', _)) => header.won = true,
                Some((b'Z', _)) => header.busy = true,
                _ => {}
            }
        }
        Ok(header)
    }
}

/// Decimal digits as a `u64`; `None` for anything else (empty, signs, overflow).
fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 20 {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &digit| {
        if digit.is_ascii_digit() { n.checked_mul(10)?.checked_add(u64::from(digit - b'0')) } else { None }
    })
}

/// One framed reply off the wire.
enum Reply {
    Meta(Header, Option<Vec<u8>>),
    /// A `SERVER_ERROR` line, after which the stream is still in step.
    ServerError(String),
}

/// Why reading a reply failed.
enum Failure {
    Io(io::Error),
    /// Bytes that are not a meta reply; the connection is out of step.
    Garbage(String),
}

impl From<io::Error> for Failure {
    fn from(error: io::Error) -> Self {
        Failure::Io(error)
    }
}

/// The error for an op that a transport failure left unanswered.
fn transport_error(server: &str, error: &io::Error, ambiguous: bool) -> CacheError {
    let server = server.to_owned();
    if ambiguous {
        return CacheError::Ambiguous { server, reason: error.to_string() };
    }
    match error.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => CacheError::Timeout { server },
        _ => CacheError::Unreachable { server, reason: error.to_string() },
    }
}

fn resolve(name: &str) -> io::Result<Vec<SocketAddr>> {
    let addresses: Vec<SocketAddr> = name.to_socket_addrs()?.collect();
    if addresses.is_empty() {
        return Err(io::Error::new(io::ErrorKind::NotFound, "address resolves to nothing"));
    }
    Ok(addresses)
}

impl Server {
    /// A pooled connection that is still in step and open, if there is one.
    fn pooled(&self) -> Option<Connection> {
        loop {
            let pooled = self.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).pop()?;
            if pooled.is_reusable() {
                return Some(pooled);
            }
            // Closed by the server (a restart) while idle: drop it, try the next.
        }
    }

    fn release(&self, connection: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if idle.len() < MAX_IDLE_PER_SERVER {
            idle.push(connection);
        }
    }
}

/// One TCP connection, always in step between exchanges.
struct Connection {
    stream: TcpStream,
    /// Received bytes; `buffer[start..end]` are not consumed yet.
    buffer: Box<[u8]>,
    start: usize,
    end: usize,
    /// The request buffer, kept to be reused by the next exchange.
    out: Vec<u8>,
    /// Bytes of the current exchange accepted by the kernel.
    written: usize,
    /// The socket timeouts in force and when they were set (`None`: never set).
    read_armed: Option<(Instant, Duration)>,
    write_armed: Option<(Instant, Duration)>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("stream", &self.stream)
            .field("buffered", &(self.end - self.start))
            .finish_non_exhaustive()
    }
}

impl Connection {
    fn dial(name: &str, timeout: Duration) -> io::Result<Connection> {
        let mut last_error = io::Error::new(io::ErrorKind::NotFound, "address resolves to nothing");
        for address in resolve(name)? {
            match TcpStream::connect_timeout(&address, timeout) {
                Ok(stream) => {
                    stream.set_nodelay(true)?;
                    return Ok(Connection {
                        stream,
                        buffer: vec![0; READ_BUFFER].into_boxed_slice(),
                        start: 0,
                        end: 0,
                        out: Vec::new(),
                        written: 0,
                        read_armed: None,
                        write_armed: None,
                    });
                }
                Err(error) => last_error = error,
            }
        }
        Err(last_error)
    }

    /// A quiet connection has nothing to read between exchanges; a readable EOF
    /// or stray bytes mean it is closed or out of step. One non-blocking peek.
    fn is_reusable(&self) -> bool {
        if self.start != self.end {
            return false;
        }
        if self.stream.set_nonblocking(true).is_err() {
            return false;
        }
        let mut probe = [0u8; 1];
        let quiet = matches!(self.stream.peek(&mut probe), Err(error) if error.kind() == io::ErrorKind::WouldBlock);
        self.stream.set_nonblocking(false).is_ok() && quiet
    }

    /// Makes the socket's timeout end no earlier than `deadline` and at most
    /// [`ARM_SLACK`] after it; false when the deadline has passed. A timeout is
    /// counted from the start of each call, so one armed earlier is still good
    /// while less than the slack has gone by since.
    fn arm(
        stream: &TcpStream,
        armed: &mut Option<(Instant, Duration)>,
        write: bool,
        deadline: Instant,
    ) -> io::Result<bool> {
        let now = Instant::now();
        let left = deadline.saturating_duration_since(now);
        if left.is_zero() {
            return Ok(false);
        }
        let good = armed.is_some_and(|(_, timeout)| timeout >= left && timeout - left <= ARM_SLACK);
        if !good {
            let timeout = left + ARM_SLACK / 2;
            if write {
                stream.set_write_timeout(Some(timeout))?;
            } else {
                stream.set_read_timeout(Some(timeout))?;
            }
            *armed = Some((now, timeout));
        }
        Ok(true)
    }

    fn write_all_by(&mut self, mut payload: &[u8], deadline: Instant) -> io::Result<()> {
        self.written = 0;
        while !payload.is_empty() {
            if !Connection::arm(&self.stream, &mut self.write_armed, true, deadline)? {
                return Err(io::ErrorKind::TimedOut.into());
            }
            let written = self.stream.write(payload).map_err(timeout_kind)?;
            if written == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            self.written += written;
            payload = &payload[written..];
        }
        Ok(())
    }

    /// Reads more bytes after `buffer[..end]`, waiting until `deadline` at most.
    /// After the deadline, bytes that already arrived are still taken, without
    /// waiting for more.
    fn read_more(&mut self, deadline: Instant) -> io::Result<()> {
        let read = if Connection::arm(&self.stream, &mut self.read_armed, false, deadline)? {
            self.stream.read(&mut self.buffer[self.end..]).map_err(timeout_kind)?
        } else {
            self.stream.set_nonblocking(true)?;
            let read = self.stream.read(&mut self.buffer[self.end..]);
            self.stream.set_nonblocking(false)?;
            read.map_err(timeout_kind)?
        };
        if read == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "server closed the connection"));
        }
        self.end += read;
        Ok(())
    }

    /// Unconsumed bytes, reading if there are none.
    fn fill(&mut self, deadline: Instant) -> io::Result<&[u8]> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            self.read_more(deadline)?;
        }
        Ok(&self.buffer[self.start..self.end])
    }

    /// The next line, without its CRLF, as a range of `buffer` (consumed).
    fn read_line(&mut self, deadline: Instant) -> Result<std::ops::Range<usize>, Failure> {
        let mut searched = self.start;
        loop {
            if let Some(at) = self.buffer[searched..self.end].iter().position(|&byte| byte == b'\n') {
                let newline = searched + at;
                let line = self.start..newline;
                self.start = newline + 1;
                if line.is_empty() || self.buffer[newline - 1] != b'\r' {
                    return Err(Failure::Garbage("reply line not terminated by CRLF".to_owned()));
                }
                return Ok(line.start..line.end - 1);
            }
            if self.end - self.start > MAX_LINE {
                return Err(Failure::Garbage(format!("reply line longer than {MAX_LINE} bytes")));
            }
            // Move the partial line (a few bytes) to the front, so that the next
            // `read` can take up to a whole buffer of replies.
            if self.start > 0 {
                self.buffer.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            searched = self.end;
            self.read_more(deadline)?;
        }
    }

    fn receive(&mut self, deadline: Instant) -> Result<Reply, Failure> {
        let line = self.read_line(deadline)?;
        let line = &self.buffer[line];
        if let Some(message) = line.strip_prefix(b"SERVER_ERROR") {
            return Ok(Reply::ServerError(String::from_utf8_lossy(message).trim().to_owned()));
        }
        let header = Header::parse(line).map_err(Failure::Garbage)?;
        let Some(length) = header.length else {
            return Ok(Reply::Meta(header, None));
        };
        let mut value = Vec::with_capacity(length);
        while value.len() < length {
            let available = self.fill(deadline)?;
            let take = available.len().min(length - value.len());
            value.extend_from_slice(&available[..take]);
            self.start += take;
        }
        let mut terminator = [0u8; 2];
        for byte in &mut terminator {
            *byte = self.fill(deadline)?[0];
            self.start += 1;
        }
        if terminator != *b"\r\n" {
            return Err(Failure::Garbage("data block not terminated by CRLF".to_owned()));
        }
        Ok(Reply::Meta(header, Some(value)))
    }
}

/// Socket timeouts surface as `WouldBlock` on Unix; call them what they are.
fn timeout_kind(error: io::Error) -> io::Error {
    if error.kind() == io::ErrorKind::WouldBlock { io::Error::new(io::ErrorKind::TimedOut, error) } else { error }
}

/// 64-bit FNV-1a: stable across processes, builds and Rust versions, unlike
/// `DefaultHasher`, so every process routes a key to the same server.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3))
}

/// SplitMix64's finaliser, spreading the combined key and server hashes.
fn mix(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(op: CacheOp<'_>) -> String {
        let mut out = Vec::new();
        encode(&op, &mut out);
        String::from_utf8(out).expect("requests are ASCII around ASCII values")
    }

    #[test]
    fn requests_are_spelled_as_the_meta_protocol_wants() {
        let check = |op: CacheOp<'_>, expect: &str| assert_eq!(encoded(op), expect, "{op:?}");
        check(CacheOp::Get { key: "a:b=1", lease: None }, "mg a:b=1 v c f\r\n");
        check(CacheOp::Get { key: "k", lease: Some(30) }, "mg k v c f N30\r\n");
        check(CacheOp::GetCas { key: "k" }, "mg k c\r\n");
        check(CacheOp::Set { key: "k", value: b"xy", ttl: 0 }, "ms k 2 T0 F1\r\nxy\r\n");
        check(
            CacheOp::Cas { key: "k", value: b"", ttl: 600, cas: u64::MAX },
            "ms k 0 T600 F1 C18446744073709551615\r\n\r\n",
        );
        check(CacheOp::Append { key: "k", value: b"12," }, "ms k 3 MA\r\n12,\r\n");
        check(CacheOp::Delete { key: "k" }, "md k\r\n");
    }

    #[test]
    fn reply_headers_are_parsed_in_place() {
        let header = Header::parse(b"VA 185 c203 f1").expect("a VA header");
        assert_eq!(
            header,
            Header {
                rc: ReturnCode::Va,
                length: Some(185),
                cas: Flag::Number(203),
                client_flags: Flag::Number(1),
                won: false,
                busy: false
            }
        );
        let lease = Header::parse(b"VA 0 c9 f0 W").expect("a lease header");
        assert!(lease.won && !lease.busy && lease.length == Some(0));
        assert!(Header::parse(b"VA 0 c9 f0 Z").expect("a busy header").busy);
        assert_eq!(Header::parse(b"HD c18446744073709551615").map(|h| h.cas), Ok(Flag::Number(u64::MAX)));
        assert_eq!(Header::parse(b"HD c18446744073709551616").map(|h| h.cas), Ok(Flag::Malformed));
        assert_eq!(Header::parse(b"HD c-1").map(|h| h.cas), Ok(Flag::Malformed));
        assert_eq!(Header::parse(b"EN").map(|h| (h.rc, h.cas)), Ok((ReturnCode::En, Flag::Absent)));
        for garbage in [&b""[..], b"HELLO", b"VA", b"VA banana", b"VA -1", b"VA 1073741825", b"CLIENT_ERROR bad"] {
            assert!(Header::parse(garbage).is_err(), "{:?}", String::from_utf8_lossy(garbage));
        }
    }

    #[test]
    fn decimals_round_trip() {
        for n in [0, 7, 10, 99, 1_000_000, u64::MAX] {
            let mut out = Vec::new();
            push_decimal(&mut out, n);
            assert_eq!(out, n.to_string().as_bytes());
            assert_eq!(parse_decimal(&out), Some(n));
        }
        assert_eq!(parse_decimal(b""), None);
        assert_eq!(parse_decimal(b"+1"), None);
    }

    #[test]
    fn routing_is_stable_and_moves_only_the_removed_servers_keys() {
        let names = ["10.0.0.1:11211", "10.0.0.2:11211", "10.0.0.3:11211"];
        let client = |names: &[&str]| Shared {
            servers: names.iter().map(|name| Server::new((*name).to_owned())).collect(),
            config: CacheConfig::default(),
            counters: HealthCounters::default(),
            prober_running: Mutex::new(false),
        };
        let three = client(&names);
        let two = client(&[names[0], names[2]]);
        let mut counts = [0usize; 3];
        for i in 0..3000 {
            let key = format!("ns:item:1:0:id={i}");
            let before = three.route(&key);
            counts[before] += 1;
            let after = two.route(&key);
            match before {
                0 => assert_eq!(after, 0),
                2 => assert_eq!(after, 1),
                _ => {}
            }
        }
        assert!(counts.iter().all(|&count| count > 800), "unbalanced: {counts:?}");
        // Fixed inputs, fixed answers: the hash must not change between builds.
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
