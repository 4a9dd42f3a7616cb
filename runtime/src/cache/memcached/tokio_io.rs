//! The tokio transport: the same meta protocol ([`super::wire`]), routing, health
//! and mark-down as the blocking client ([`super::Shared`]), over
//! `tokio::net::TcpStream`s. One batch is one round trip: every server's part runs
//! at once on the calling task (`join_all`, no task spawned per server).
//!
//! Cancellation: a part owns its connection for the whole exchange and gives it back
//! to the pool only after every reply was read. A future dropped between a send and
//! its replies drops the connection with it, so no pooled connection ever holds
//! replies that belong to someone else.

use std::sync::{Arc, Mutex};

use futures_util::future::join_all;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::{Instant, timeout_at};

use super::stream::{AsyncStream, Endpoint};
use super::wire::{PartExchange, ReadBuf, mutates};
use super::{Failure, OpResult, Shared, part_results, transport_error};
use crate::cache::{CacheConfig, CacheError, CacheHealth, CacheOp};

/// Idle connections kept per server.
const MAX_IDLE_PER_SERVER: usize = 16;

/// A sharded, pipelined memcached client over tokio sockets: the async twin of
/// [`Memcached`](super::Memcached), with the same routing (keys land on the same
/// servers) and the same mark-down of failed servers.
#[derive(Debug)]
pub struct AsyncMemcached {
    shared: Arc<Shared>,
    pools: Vec<Pool>,
}

/// Idle connections of one server. The lock is never held across an `.await`.
#[derive(Debug, Default)]
struct Pool {
    idle: Mutex<Vec<Connection>>,
}

impl Pool {
    fn pooled(&self) -> Option<Connection> {
        loop {
            let mut connection = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop()?;
            if connection.is_reusable() {
                return Some(connection);
            }
        }
    }

    fn release(&self, connection: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < MAX_IDLE_PER_SERVER {
            idle.push(connection);
        }
    }

    fn clear(&self) {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

/// One connection, in step between exchanges.
#[derive(Debug)]
struct Connection {
    stream: AsyncStream,
    read: ReadBuf,
    out: Vec<u8>,
}

impl Connection {
    /// Connects (and, for TLS, handshakes) within the connect timeout.
    async fn dial(endpoint: &Endpoint, config: &CacheConfig) -> std::io::Result<Connection> {
        let stream = endpoint.dial_async(config.connect_timeout).await?;
        Ok(Connection { stream, read: ReadBuf::default(), out: Vec::new() })
    }

    /// Nothing left over and nothing arrived since (no EOF, no stray bytes).
    fn is_reusable(&mut self) -> bool {
        self.read.is_empty() && self.stream.is_quiet()
    }

    /// Writes the request, counting the bytes the kernel took (a failure after some
    /// left makes the mutations ambiguous).
    async fn send(&mut self, deadline: Instant) -> Result<(), (std::io::Error, bool)> {
        let mut written = 0;
        while written < self.out.len() {
            match timeout_at(deadline, self.stream.write(&self.out[written..])).await {
                Ok(Ok(0)) => return Err((std::io::ErrorKind::WriteZero.into(), written > 0)),
                Ok(Ok(n)) => written += n,
                Ok(Err(error)) => return Err((error, written > 0)),
                Err(_) => return Err((std::io::ErrorKind::TimedOut.into(), written > 0)),
            }
        }
        // Records rustls still holds may not have left: mutations are ambiguous.
        self.stream.flush_records(deadline).await.map_err(|error| (error, true))
    }

    /// Reads more bytes, waiting until `deadline` at most.
    async fn read_more(&mut self, deadline: Instant) -> Result<(), Failure> {
        let read = match self.stream.read_now(self.read.spare()) {
            Some(read) => read?,
            None => match timeout_at(deadline, self.stream.read(self.read.spare())).await {
                Ok(read) => read?,
                Err(_) => return Err(Failure::Io(std::io::ErrorKind::TimedOut.into())),
            },
        };
        if read == 0 {
            return Err(Failure::Io(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "server closed the connection",
            )));
        }
        self.read.filled(read);
        Ok(())
    }
}

impl AsyncMemcached {
    /// A client for `servers` (`"host:port"`). Fails only when the list is empty or
    /// an address does not resolve; a server that cannot be reached now is marked
    /// down and probed in the background, as with the blocking client.
    pub async fn connect(servers: &[impl AsRef<str>], config: CacheConfig) -> Result<AsyncMemcached, CacheError> {
        let shared = Shared::new(servers, config)?;
        let pools: Vec<Pool> = shared.servers.iter().map(|_| Pool::default()).collect();
        let dialled = join_all(shared.servers.iter().map(|s| Connection::dial(&s.endpoint, &shared.config))).await;
        for ((server, pool), dialled) in shared.servers.iter().zip(&pools).zip(dialled) {
            match dialled {
                Ok(connection) => pool.release(connection),
                Err(error) => {
                    tracing::warn!(server = %server.name, %error, "memcached not reachable at start; marked down");
                    server.health.mark_down(std::iter::empty(), &shared.counters);
                    shared.ensure_prober();
                }
            }
        }
        Ok(AsyncMemcached { shared, pools })
    }

    /// The server (`host:port`, as configured) that `key` is routed to.
    pub fn server_for(&self, key: &str) -> &str {
        self.shared.name(self.shared.route(key))
    }

    /// Runs a batch in one round trip per server involved (servers concurrently),
    /// ops on one server in order; one result per op, in op order.
    pub async fn run(&self, ops: &[CacheOp<'_>]) -> Vec<OpResult> {
        let shared = &self.shared;
        let (results, per_server) = shared.plan(ops);
        let parts = per_server.iter().enumerate().filter(|(_, positions)| !positions.is_empty());
        let answers = join_all(parts.map(|(server, positions)| async move {
            let answers = match shared.skip_if_down(server, ops, positions) {
                Some(answers) => answers,
                None => self.exchange(server, ops, positions).await,
            };
            if shared.settle(server, ops, positions, &answers) {
                self.pools[server].clear();
            }
            (positions.as_slice(), answers)
        }))
        .await;
        shared.assemble(results, answers)
    }

    /// One server's part: a pooled or new connection, the requests in one write,
    /// the replies in order by the deadline.
    async fn exchange(&self, server: usize, ops: &[CacheOp<'_>], positions: &[usize]) -> Vec<OpResult> {
        let config = &self.shared.config;
        let name = self.shared.name(server);
        let mut connection = match self.pools[server].pooled() {
            Some(connection) => connection,
            None => match Connection::dial(self.shared.endpoint(server), config).await {
                Ok(connection) => connection,
                Err(error) => {
                    let error = transport_error(name, &error, false);
                    return positions.iter().map(|_| Err(error.clone())).collect();
                }
            },
        };
        connection.out.clear();
        let mut exchange = PartExchange::encode(ops, positions, &mut connection.out);
        let deadline = Instant::now() + config.io_timeout;
        if let Err((error, sent)) = connection.send(deadline).await {
            return positions
                .iter()
                .map(|&position| Err(transport_error(name, &error, sent && mutates(&ops[position]))))
                .collect();
        }
        let failure = loop {
            match exchange.advance(ops, positions, &mut connection.read) {
                Ok(true) => break None,
                Ok(false) => {
                    if let Err(failure) = connection.read_more(deadline).await {
                        break Some(failure);
                    }
                }
                Err(reason) => break Some(Failure::Garbage(reason)),
            }
        };
        if failure.is_none() {
            self.pools[server].release(connection);
        }
        part_results(name, ops, positions, exchange, failure.as_ref())
    }

    /// The largest value this client stores.
    pub fn max_value_size(&self) -> usize {
        self.shared.config.max_value_size
    }

    /// "memcached host:port, …".
    pub fn describe(&self) -> String {
        self.shared.describe()
    }

    /// Whether every one of `keys` is owed to a marked-down server.
    pub fn owes(&self, keys: &[&str]) -> bool {
        self.shared.owes(keys)
    }

    /// Whether `key`'s server is expected to answer.
    pub fn is_available(&self, key: &str) -> bool {
        self.shared.is_available(key)
    }

    /// Mark-downs and probes so far.
    pub fn health(&self) -> CacheHealth {
        self.shared.health()
    }
}
