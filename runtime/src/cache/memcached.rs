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
use std::sync::Mutex;
use std::time::{Duration, Instant};

use memcache::exp::{MetaOp, ReturnCode};

use super::in_process::invalid_key_reason;
use super::{CacheBackend, CacheConfig, CacheError, CacheOp, CacheReply};

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
    servers: Vec<Server>,
    config: CacheConfig,
}

#[derive(Debug)]
struct Server {
    /// The address as configured: the identity keys are routed by, and the name
    /// in errors.
    name: String,
    /// The routing weight seed, a stable hash of `name`.
    seed: u64,
    idle: Mutex<Vec<Connection>>,
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
    /// an address does not resolve; servers that are down now are dialled again on
    /// every batch, so the client recovers when they come back.
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
            resolved.push(Server { seed: fnv1a(name.as_bytes()), name, idle: Mutex::new(Vec::new()) });
        }
        let client = Memcached { servers: resolved, config };
        // Warm each pool with one connection so the first batch does not pay the
        // dial; a server that is down now is simply dialled again later.
        for server in &client.servers {
            match Connection::dial(&server.name, client.config.connect_timeout) {
                Ok(connection) => server.release(connection),
                Err(error) => tracing::warn!(server = %server.name, %error, "memcached not reachable at start"),
            }
        }
        Ok(client)
    }

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
        for part in parts.iter_mut() {
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
        let mut per_server: Vec<Vec<usize>> = vec![Vec::new(); self.servers.len()];
        for (position, op) in ops.iter().enumerate() {
            let early = if let Some(reason) = invalid_key_reason(op.key()) {
                Some(Err(CacheError::Protocol { server: self.describe(), reason }))
            } else {
                match op {
                    CacheOp::Set { value, .. } | CacheOp::Cas { value, .. } | CacheOp::Append { value, .. }
                        if value.len() > self.config.max_value_size =>
                    {
                        Some(Ok(CacheReply::NotStored))
                    }
                    _ => None,
                }
            };
            if early.is_none() {
                per_server[self.route(op.key())].push(position);
            }
            results.push(early);
        }

        let mut parts: Vec<Part<'_>> = per_server
            .iter()
            .zip(&self.servers)
            .filter(|(positions, _)| !positions.is_empty())
            .map(|(positions, server)| Part { server, positions, state: PartState::Idle })
            .collect();
        self.connect_parts(&mut parts);
        // Every server gets its requests before any reply is waited for.
        for part in &mut parts {
            self.send(ops, part);
        }
        for part in &mut parts {
            self.receive(ops, part);
        }
        for part in parts {
            if let PartState::Done(answers) = part.state {
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
        self.config.max_value_size
    }

    fn describe(&self) -> String {
        let names: Vec<&str> = self.servers.iter().map(|server| server.name.as_str()).collect();
        format!("memcached {}", names.join(", "))
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
        let client = |names: &[&str]| Memcached {
            servers: names
                .iter()
                .map(|name| Server { name: (*name).to_owned(), seed: fnv1a(name.as_bytes()), idle: Mutex::default() })
                .collect(),
            config: CacheConfig::default(),
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
