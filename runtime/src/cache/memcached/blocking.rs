//! The blocking transport: a small pool of std `TcpStream`s (`TCP_NODELAY`) per
//! server, and one batch's exchange with every server it touches.
//!
//! One batch is one round trip whatever its size and however many servers it
//! touches: the calling thread writes every server's requests first (each server's
//! in a single `write`), then reads every server's replies, so the servers work on
//! their parts at the same time without a thread per server. Only dialling is done
//! in parallel (scoped threads, when several servers need a new connection at once),
//! so that one unreachable server's connect timeout does not delay the others'.
//!
//! Timeouts: each server's part of a batch has `io_timeout` from the moment its
//! requests start to be written. (Requests go out one server after another; a
//! server that stops reading holds up the next server's requests only when a batch
//! is larger than the socket buffers, and then for at most its own timeout.) Socket
//! timeouts are only re-armed when the one in force would end before that deadline
//! or more than [`ARM_SLACK`] after it, which on a hot connection is never within a
//! batch, instead of two `setsockopt` calls per `read`. Replies that already arrived
//! are still read after the deadline passed (while another server's part was
//! waited for); only a wait is cut short.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::stream::{Endpoint, Stream};
use super::wire::{PartExchange, ReadBuf, Reply, mutates};
use super::{Failure, OpResult, Shared, transport_error};
use crate::cache::CacheOp;

/// Idle connections kept per server; more are dialled under load and closed
/// when they come back to a full pool.
const MAX_IDLE_PER_SERVER: usize = 16;

/// How far past a deadline a socket timeout armed earlier may reach before it is
/// re-armed. A wait never ends *before* its deadline.
const ARM_SLACK: Duration = Duration::from_millis(2);

/// Idle connections of one server.
#[derive(Debug, Default)]
pub(super) struct Pool {
    idle: Mutex<Vec<Connection>>,
}

impl Pool {
    /// A pooled connection that is still in step and open, if there is one.
    fn pooled(&self) -> Option<Connection> {
        loop {
            let mut pooled = self.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).pop()?;
            if pooled.is_reusable() {
                return Some(pooled);
            }
            // Closed by the server (a restart) while idle: drop it, try the next.
        }
    }

    pub(super) fn release(&self, connection: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if idle.len() < MAX_IDLE_PER_SERVER {
            idle.push(connection);
        }
    }

    /// Drops every idle connection (its server was marked down: they may be stuck
    /// behind a stalled process).
    pub(super) fn clear(&self) {
        self.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clear();
    }
}

/// One server's part of a batch.
pub(super) struct Part<'b> {
    pub(super) server: usize,
    pub(super) pool: &'b Pool,
    /// Positions of this server's ops in the batch.
    pub(super) positions: &'b [usize],
    pub(super) state: PartState,
}

pub(super) enum PartState {
    /// No connection yet.
    Idle,
    /// Connected; nothing written yet.
    Ready(Connection),
    /// Requests written, replies due by the deadline, read by the exchange.
    Sent(Connection, Instant, PartExchange),
    /// Answered (or failed), one result per position.
    Done(Vec<OpResult>),
}

/// One batch's exchange over every part that is not decided yet.
pub(super) fn exchange(shared: &Shared, ops: &[CacheOp<'_>], parts: &mut [Part<'_>]) {
    connect_parts(shared, parts);
    // Every server gets its requests before any reply is waited for.
    for part in parts.iter_mut() {
        send(shared, ops, part);
    }
    for part in parts.iter_mut() {
        receive(shared, ops, part);
    }
}

/// Gives every part a connection: a pooled one, else a new one. Several new
/// connections are dialled at once, each on its own scoped thread, so that the
/// connect timeouts of unreachable servers overlap as the exchanges do.
fn connect_parts(shared: &Shared, parts: &mut [Part<'_>]) {
    for part in parts.iter_mut().filter(|part| matches!(part.state, PartState::Idle)) {
        if let Some(connection) = part.pool.pooled() {
            part.state = PartState::Ready(connection);
        }
    }
    let timeout = shared.config.connect_timeout;
    let mut to_dial: Vec<&mut Part<'_>> =
        parts.iter_mut().filter(|part| matches!(part.state, PartState::Idle)).collect();
    let dialled: Vec<io::Result<Connection>> = match to_dial.as_slice() {
        [] => Vec::new(),
        [part] => vec![Connection::dial(shared.endpoint(part.server), timeout)],
        _ => std::thread::scope(|scope| {
            let handles: Vec<_> = to_dial
                .iter()
                .map(|part| {
                    let endpoint = shared.endpoint(part.server);
                    scope.spawn(move || Connection::dial(endpoint, timeout))
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
                let error = transport_error(shared.name(part.server), &error, false);
                PartState::Done(part.positions.iter().map(|_| Err(error.clone())).collect())
            }
        };
    }
}

/// Writes a part's requests in one `write`; its deadline starts now.
fn send(shared: &Shared, ops: &[CacheOp<'_>], part: &mut Part<'_>) {
    let mut connection = match std::mem::replace(&mut part.state, PartState::Idle) {
        PartState::Ready(connection) => connection,
        other => {
            part.state = other;
            return;
        }
    };
    let mut payload = std::mem::take(&mut connection.out);
    payload.clear();
    let exchange = PartExchange::encode(ops, part.positions, &mut payload);
    let deadline = Instant::now() + shared.config.io_timeout;
    let written = connection.write_all_by(&payload, deadline);
    connection.out = payload;
    part.state = match written {
        Ok(()) => PartState::Sent(connection, deadline, exchange),
        Err(error) => {
            // Bytes may have left before the failure: mutations are ambiguous.
            let sent = connection.written > 0;
            let name = shared.name(part.server);
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
fn receive(shared: &Shared, ops: &[CacheOp<'_>], part: &mut Part<'_>) {
    let (mut connection, deadline, mut exchange) = match std::mem::replace(&mut part.state, PartState::Idle) {
        PartState::Sent(connection, deadline, exchange) => (connection, deadline, exchange),
        other => {
            part.state = other;
            return;
        }
    };
    let positions = part.positions;
    let failure = loop {
        match exchange.advance(ops, positions, &mut connection.read) {
            Ok(true) => break None,
            Ok(false) => {
                if let Err(error) = connection.read_more(deadline) {
                    break Some(Failure::Io(error));
                }
            }
            // The stream can no longer be trusted to pair replies with requests:
            // every op not answered yet fails.
            Err(reason) => break Some(Failure::Garbage(reason)),
        }
    };
    if failure.is_none() {
        part.pool.release(connection);
    }
    let name = shared.name(part.server);
    part.state = PartState::Done(super::part_results(name, ops, positions, exchange, failure.as_ref()));
}

/// One connection (TCP, or TLS over it), always in step between exchanges.
pub(super) struct Connection {
    stream: Stream,
    /// Received bytes not consumed yet.
    read: ReadBuf,
    /// The request buffer, kept to be reused by the next exchange.
    pub(super) out: Vec<u8>,
    /// Bytes of the current exchange accepted by the kernel.
    written: usize,
    /// The socket timeouts in force and when they were set (`None`: never set).
    read_armed: Option<(Instant, Duration)>,
    write_armed: Option<(Instant, Duration)>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection").field("stream", &self.stream).finish_non_exhaustive()
    }
}

impl Connection {
    pub(super) fn dial(endpoint: &Endpoint, timeout: Duration) -> io::Result<Connection> {
        Ok(Connection {
            stream: endpoint.dial(timeout)?,
            read: ReadBuf::default(),
            out: Vec::new(),
            written: 0,
            read_armed: None,
            write_armed: None,
        })
    }

    /// A quiet connection has nothing to read between exchanges; a readable EOF
    /// or stray bytes mean it is closed or out of step. One non-blocking look.
    fn is_reusable(&mut self) -> bool {
        self.read.is_empty() && self.stream.is_quiet()
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

    pub(super) fn write_all_by(&mut self, mut payload: &[u8], deadline: Instant) -> io::Result<()> {
        self.written = 0;
        while !payload.is_empty() {
            if !Connection::arm(self.stream.tcp(), &mut self.write_armed, true, deadline)? {
                return Err(io::ErrorKind::TimedOut.into());
            }
            let written = self.stream.write(payload).map_err(timeout_kind)?;
            if written == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            self.written += written;
            payload = &payload[written..];
        }
        // TLS records rustls still holds go out now (plain TCP holds nothing).
        self.stream.flush().map_err(timeout_kind)
    }

    /// Reads more bytes, waiting until `deadline` at most. After the deadline,
    /// bytes that already arrived are still taken, without waiting for more.
    fn read_more(&mut self, deadline: Instant) -> io::Result<()> {
        let read = if Connection::arm(self.stream.tcp(), &mut self.read_armed, false, deadline)? {
            self.stream.read(self.read.spare()).map_err(timeout_kind)?
        } else {
            self.stream.tcp().set_nonblocking(true)?;
            let read = self.stream.read(self.read.spare());
            self.stream.tcp().set_nonblocking(false)?;
            read.map_err(timeout_kind)?
        };
        if read == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "server closed the connection"));
        }
        self.read.filled(read);
        Ok(())
    }

    /// The next reply, reading until it is complete or the deadline passed.
    pub(super) fn receive(&mut self, deadline: Instant) -> Result<Reply, Failure> {
        loop {
            if let Some(reply) = self.read.next_reply().map_err(Failure::Garbage)? {
                return Ok(reply);
            }
            self.read_more(deadline)?;
        }
    }
}

/// Socket timeouts surface as `WouldBlock` on Unix; call them what they are.
pub(super) fn timeout_kind(error: io::Error) -> io::Error {
    if error.kind() == io::ErrorKind::WouldBlock { io::Error::new(io::ErrorKind::TimedOut, error) } else { error }
}
