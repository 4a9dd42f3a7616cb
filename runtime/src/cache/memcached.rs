//! memcached through the meta protocol (`mg`/`ms`/`md`), pipelined, with keys
//! sharded over servers by rendezvous hashing.
//!
//! The requests and replies are framed by the `memcache` crate's wire layer
//! ([`MetaCommand`], [`MetaResponse::parse_header`]); the transport is our own:
//! a small pool of blocking `TcpStream`s (`TCP_NODELAY`) per server. One
//! [`CacheBackend::run`] writes all ops of a server in a single `write`, then
//! reads all replies, so a batch costs one round trip per server whatever its
//! size; servers are served in parallel by scoped threads, and a batch touching
//! one server spawns none.
//!
//! Leases: a lease get is `mg <key> v c f N<ttl>`. memcached answers a miss by
//! creating an empty placeholder and flagging the creator `W` (won) and later
//! getters `Z` (busy). An append onto the placeholder drops those flags, so every
//! value this backend stores carries client flag 1 (`F1`) and a placeholder keeps
//! flag 0: a lease get that finds flag 0 is still busy, exactly like the
//! in-process cache. An item written by another client with flag 0 therefore
//! reads as busy to lease getters (a miss the executor answers from the database).
//!
//! Failure attribution: a server that cannot be dialled fails its ops with
//! `Unreachable` (or `Timeout`); a batch that was written but not answered fails
//! its unanswered reads with `Timeout`/`Unreachable` and its unanswered
//! mutations (including lease gets, which create placeholders) with `Ambiguous`.
//! A connection that saw any failure is dropped, never pooled with unread replies.

use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use memcache::exp::{MetaCommand, MetaOp, MetaResponse, ReturnCode};

use super::in_process::invalid_key_reason;
use super::{CacheBackend, CacheConfig, CacheError, CacheOp, CacheReply};

/// Idle connections kept per server; more are dialled under load and closed
/// when they come back to a full pool.
const MAX_IDLE_PER_SERVER: usize = 16;

/// Client flag on every value this backend stores; lease placeholders keep 0.
const FILLED_FLAG: &str = "F1";

/// Read buffer per connection: large enough that a 100-key multi-get of small
/// values is one or two `read` calls.
const READ_BUFFER: usize = 64 * 1024;

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

    /// Runs the ops of one server (positions into `ops`) as one pipelined exchange.
    fn run_on(&self, server: &Server, ops: &[CacheOp<'_>], positions: &[usize]) -> Vec<OpResult> {
        let mut payload = Vec::with_capacity(positions.len() * 64);
        for &position in positions {
            if let Err(error) = encode(&ops[position]).encode_into(&mut payload) {
                // Keys and sizes were checked before routing, so the crate's own
                // checks cannot fail; if they ever do, fail the batch cleanly.
                let reason = format!("could not encode request: {error}");
                return positions
                    .iter()
                    .map(|_| Err(CacheError::Protocol { server: server.name.clone(), reason: reason.clone() }))
                    .collect();
            }
        }
        let mut connection = match server.acquire(self.config.connect_timeout) {
            Ok(connection) => connection,
            Err(error) => {
                let error = transport_error(&server.name, &error, false);
                return positions.iter().map(|_| Err(error.clone())).collect();
            }
        };
        let deadline = Instant::now() + self.config.io_timeout;
        let mut results = Vec::with_capacity(positions.len());
        if let Err(error) = connection.write_all_by(&payload, deadline) {
            // Bytes may have left before the failure: mutations are ambiguous.
            let sent = connection.written > 0;
            for &position in positions {
                results.push(Err(transport_error(&server.name, &error, sent && mutates(&ops[position]))));
            }
            return results;
        }
        for (answered, &position) in positions.iter().enumerate() {
            match connection.receive(deadline) {
                Ok(response) => match interpret(&ops[position], response) {
                    Ok(reply) => results.push(Ok(reply)),
                    Err(reason) => {
                        // The stream can no longer be trusted to pair replies with
                        // requests: this op and every later one fail.
                        let error = CacheError::Protocol { server: server.name.clone(), reason };
                        results.extend(positions[answered..].iter().map(|_| Err(error.clone())));
                        return results;
                    }
                },
                Err(Failure::Garbage(reason)) => {
                    let error = CacheError::Protocol { server: server.name.clone(), reason };
                    results.extend(positions[answered..].iter().map(|_| Err(error.clone())));
                    return results;
                }
                Err(Failure::Io(error)) => {
                    for &position in &positions[answered..] {
                        results.push(Err(transport_error(&server.name, &error, mutates(&ops[position]))));
                    }
                    return results;
                }
            }
        }
        server.release(connection);
        results
    }
}

impl CacheBackend for Memcached {
    fn run(&self, ops: &[CacheOp<'_>]) -> Vec<OpResult> {
        let mut results: Vec<Option<OpResult>> = vec![None; ops.len()];
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
            match early {
                Some(result) => results[position] = Some(result),
                None => per_server[self.route(op.key())].push(position),
            }
        }

        let busy: Vec<(usize, &Vec<usize>)> =
            per_server.iter().enumerate().filter(|(_, positions)| !positions.is_empty()).collect();
        let mut place = |positions: &[usize], answers: Vec<OpResult>| {
            for (&position, answer) in positions.iter().zip(answers) {
                results[position] = Some(answer);
            }
        };
        match busy.as_slice() {
            [] => {}
            [(index, positions)] => place(positions, self.run_on(&self.servers[*index], ops, positions)),
            [(first, first_positions), rest @ ..] => {
                // One thread per additional server; this thread serves the first.
                let answered = std::thread::scope(|scope| {
                    let handles: Vec<_> = rest
                        .iter()
                        .map(|&(index, positions)| {
                            let server = &self.servers[index];
                            (server, positions, scope.spawn(move || self.run_on(server, ops, positions)))
                        })
                        .collect();
                    let mine = self.run_on(&self.servers[*first], ops, first_positions);
                    let mut answered = vec![(*first_positions, mine)];
                    for (server, positions, handle) in handles {
                        // `run_on` does not panic; if it ever did, its ops fail alone.
                        let answers = handle.join().unwrap_or_else(|_| {
                            let reason = "client thread panicked".to_owned();
                            let error = CacheError::Protocol { server: server.name.clone(), reason };
                            positions.iter().map(|_| Err(error.clone())).collect()
                        });
                        answered.push((positions, answers));
                    }
                    answered
                });
                for (positions, answers) in answered {
                    place(positions, answers);
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

/// The meta command for one op.
fn encode(op: &CacheOp<'_>) -> MetaCommand {
    match *op {
        CacheOp::Get { key, lease: None } => MetaCommand::new(MetaOp::Get, key).flag("v").flag("c").flag("f"),
        CacheOp::Get { key, lease: Some(ttl) } => {
            MetaCommand::new(MetaOp::Get, key).flag("v").flag("c").flag("f").flag(format!("N{ttl}"))
        }
        CacheOp::GetCas { key } => MetaCommand::new(MetaOp::Get, key).flag("c"),
        CacheOp::Set { key, value, ttl } => {
            MetaCommand::new(MetaOp::Set, key).flag(format!("T{ttl}")).flag(FILLED_FLAG).value(value)
        }
        CacheOp::Cas { key, value, ttl, cas } => MetaCommand::new(MetaOp::Set, key)
            .flag(format!("T{ttl}"))
            .flag(FILLED_FLAG)
            .flag(format!("C{cas}"))
            .value(value),
        // Append mode without `N` never creates the item.
        CacheOp::Append { key, value } => MetaCommand::new(MetaOp::Set, key).flag("MA").value(value),
        CacheOp::Delete { key } => MetaCommand::new(MetaOp::Delete, key),
    }
}

/// Whether an unanswered op may have changed the server's state.
fn mutates(op: &CacheOp<'_>) -> bool {
    !matches!(op, CacheOp::Get { lease: None, .. } | CacheOp::GetCas { .. })
}

/// A parsed reply, or why it does not answer `op`.
fn interpret(op: &CacheOp<'_>, response: Reply) -> Result<CacheReply, String> {
    let response = match response {
        Reply::Meta(response, value) => (response, value),
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
    let (response, value) = response;
    let unexpected = || format!("unexpected reply {:?} to {op:?}", response.rc());
    let flag = |name: u8| response.flags().find(|flag| flag.first() == Some(&name)).map(|flag| &flag[1..]);
    let number = |name: u8| -> Result<Option<u64>, String> {
        flag(name)
            .map(|digits| {
                std::str::from_utf8(digits)
                    .ok()
                    .and_then(|digits| digits.parse::<u64>().ok())
                    .ok_or_else(|| format!("malformed {} flag in reply to {op:?}", name as char))
            })
            .transpose()
    };
    match (op, response.rc()) {
        (CacheOp::Get { lease, .. }, ReturnCode::Va) => {
            let cas = number(b'c')?.ok_or_else(|| format!("reply to {op:?} lacks its CAS"))?;
            let value = value.unwrap_or_default();
            if lease.is_none() {
                return Ok(CacheReply::Hit { value, cas });
            }
            if flag(b'W').is_some() {
                Ok(CacheReply::LeaseWon { cas })
            } else if flag(b'Z').is_some() || number(b'f')?.unwrap_or(0) == 0 {
                Ok(CacheReply::LeaseBusy)
            } else {
                Ok(CacheReply::Hit { value, cas })
            }
        }
        // With `N` a miss creates a placeholder; `EN` means it could not (memory
        // pressure), so nobody holds the lease and the caller must not fill.
        (CacheOp::Get { lease: Some(_), .. }, ReturnCode::En) => Ok(CacheReply::LeaseBusy),
        (CacheOp::Get { lease: None, .. } | CacheOp::GetCas { .. }, ReturnCode::En) => Ok(CacheReply::Miss),
        (CacheOp::GetCas { .. }, ReturnCode::Hd) => {
            Ok(CacheReply::Present { cas: number(b'c')?.ok_or_else(|| format!("reply to {op:?} lacks its CAS"))? })
        }
        (CacheOp::Set { .. } | CacheOp::Cas { .. } | CacheOp::Append { .. }, ReturnCode::Hd) => Ok(CacheReply::Stored),
        (CacheOp::Set { .. } | CacheOp::Append { .. }, ReturnCode::Ns) => Ok(CacheReply::NotStored),
        (CacheOp::Cas { .. }, ReturnCode::Ex) => Ok(CacheReply::Exists),
        (CacheOp::Cas { .. }, ReturnCode::Nf) => Ok(CacheReply::NotFound),
        (CacheOp::Cas { .. }, ReturnCode::Ns) => Ok(CacheReply::NotStored),
        (CacheOp::Delete { .. }, ReturnCode::Hd) => Ok(CacheReply::Deleted),
        (CacheOp::Delete { .. }, ReturnCode::Nf) => Ok(CacheReply::NotFound),
        _ => Err(unexpected()),
    }
}

/// One framed reply off the wire.
enum Reply {
    Meta(MetaResponse, Option<Vec<u8>>),
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
    /// A pooled connection that is still in step and open, or a new one.
    fn acquire(&self, connect_timeout: Duration) -> io::Result<Connection> {
        loop {
            let pooled = self.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).pop();
            match pooled {
                Some(connection) if connection.is_reusable() => return Ok(connection),
                // Closed by the server (a restart) while idle: drop it, try the next.
                Some(_) => continue,
                None => return Connection::dial(&self.name, connect_timeout),
            }
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
#[derive(Debug)]
struct Connection {
    reader: BufReader<TcpStream>,
    /// Bytes of the current exchange accepted by the kernel.
    written: usize,
}

impl Connection {
    fn dial(name: &str, timeout: Duration) -> io::Result<Connection> {
        let mut last_error = io::Error::new(io::ErrorKind::NotFound, "address resolves to nothing");
        for address in resolve(name)? {
            match TcpStream::connect_timeout(&address, timeout) {
                Ok(stream) => {
                    stream.set_nodelay(true)?;
                    return Ok(Connection { reader: BufReader::with_capacity(READ_BUFFER, stream), written: 0 });
                }
                Err(error) => last_error = error,
            }
        }
        Err(last_error)
    }

    /// A quiet connection has nothing to read between exchanges; a readable EOF
    /// or stray bytes mean it is closed or out of step. One non-blocking peek.
    fn is_reusable(&self) -> bool {
        if !self.reader.buffer().is_empty() {
            return false;
        }
        let stream = self.reader.get_ref();
        if stream.set_nonblocking(true).is_err() {
            return false;
        }
        let mut probe = [0u8; 1];
        let quiet = matches!(stream.peek(&mut probe), Err(error) if error.kind() == io::ErrorKind::WouldBlock);
        stream.set_nonblocking(false).is_ok() && quiet
    }

    /// Sets the socket timeouts to the time left; a spent deadline is a timeout.
    fn arm(&self, deadline: Instant) -> io::Result<()> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        let stream = self.reader.get_ref();
        stream.set_read_timeout(Some(left))?;
        stream.set_write_timeout(Some(left))
    }

    fn write_all_by(&mut self, mut payload: &[u8], deadline: Instant) -> io::Result<()> {
        self.written = 0;
        while !payload.is_empty() {
            self.arm(deadline)?;
            let written = self.reader.get_mut().write(payload).map_err(timeout_kind)?;
            if written == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            self.written += written;
            payload = &payload[written..];
        }
        Ok(())
    }

    /// Makes sure there are buffered bytes, reading under the deadline if needed.
    fn fill(&mut self, deadline: Instant) -> io::Result<&[u8]> {
        if self.reader.buffer().is_empty() {
            self.arm(deadline)?;
        }
        let buffer = self.reader.fill_buf().map_err(timeout_kind)?;
        if buffer.is_empty() {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "server closed the connection"));
        }
        Ok(buffer)
    }

    fn read_line(&mut self, deadline: Instant) -> Result<Vec<u8>, Failure> {
        let mut line = Vec::new();
        loop {
            let buffer = self.fill(deadline)?;
            match buffer.iter().position(|&byte| byte == b'\n') {
                Some(end) => {
                    line.extend_from_slice(&buffer[..end]);
                    self.reader.consume(end + 1);
                    break;
                }
                None => {
                    let length = buffer.len();
                    line.extend_from_slice(buffer);
                    self.reader.consume(length);
                    // A reply header is a few hundred bytes at most; anything
                    // longer is not memcached talking.
                    if line.len() > 4096 {
                        return Err(Failure::Garbage("reply line longer than 4096 bytes".to_owned()));
                    }
                }
            }
        }
        if line.last() != Some(&b'\r') {
            return Err(Failure::Garbage("reply line not terminated by CRLF".to_owned()));
        }
        line.pop();
        Ok(line)
    }

    fn receive(&mut self, deadline: Instant) -> Result<Reply, Failure> {
        let line = self.read_line(deadline)?;
        if let Some(message) = line.strip_prefix(b"SERVER_ERROR") {
            return Ok(Reply::ServerError(String::from_utf8_lossy(message).trim().to_owned()));
        }
        let response = MetaResponse::parse_header(&line)
            .map_err(|error| Failure::Garbage(format!("{error} in reply {:?}", String::from_utf8_lossy(&line))))?;
        if response.rc() != ReturnCode::Va {
            return Ok(Reply::Meta(response, None));
        }
        // `parse_header` keeps the data length of a `VA` reply to itself; it is the
        // first token after the return code and was validated (bounded) there.
        let length = line
            .split(|&byte| byte == b' ')
            .filter(|token| !token.is_empty())
            .nth(1)
            .and_then(|token| std::str::from_utf8(token).ok())
            .and_then(|token| token.parse::<usize>().ok())
            .ok_or_else(|| Failure::Garbage("VA reply without a data length".to_owned()))?;
        let mut value = vec![0u8; length + 2];
        let mut filled = 0;
        while filled < value.len() {
            let buffer = self.fill(deadline)?;
            let take = buffer.len().min(value.len() - filled);
            value[filled..filled + take].copy_from_slice(&buffer[..take]);
            self.reader.consume(take);
            filled += take;
        }
        if !value.ends_with(b"\r\n") {
            return Err(Failure::Garbage("data block not terminated by CRLF".to_owned()));
        }
        value.truncate(length);
        Ok(Reply::Meta(response, Some(value)))
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
