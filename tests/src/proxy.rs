//! A loopback TCP proxy that injects faults between a client and a server (for
//! memdex: between the memcached backend and a memcached process).
//!
//! The proxy forwards bytes both ways. Its [`Mode`] can be switched at any time,
//! from any thread, and takes effect on live connections within a few milliseconds:
//!
//! * [`Mode::Pass`]: forward everything;
//! * [`Mode::DropNew`]: close every new connection as soon as it is accepted (live
//!   ones keep working; [`FaultProxy::cut_all`] closes those);
//! * [`Mode::Stall`]: accept and hold: nothing is forwarded either way, so a client
//!   waits for a reply until its own timeout. Bytes held back are delivered once
//!   the mode changes back to `Pass`, which is how a late reply from a timed-out
//!   request reaches a client that has moved on;
//! * [`Mode::CutAfter`]: each reply chunk from the server is cut after `n` bytes
//!   and the connection closed, mid-reply;
//! * [`Mode::Garbage`]: every reply from the server is replaced by the given bytes;
//! * [`Mode::Delay`]: every reply chunk from the server is held for the given time
//!   before it is delivered (a slow server);
//! * [`Mode::Blackhole`]: connections are accepted and every byte either way is
//!   read and thrown away (a black-holed route: unlike `Stall`, nothing sent
//!   meanwhile ever arrives);
//! * [`Mode::LoseReplyTo`]: once a client sends bytes holding the given pattern (a
//!   request), the server's next reply on that connection is thrown away and the
//!   connection closed: the server ran the request, the client never hears of it.
//!
//! Everything runs on plain threads with short read timeouts (no async runtime),
//! and stops when the proxy is dropped.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// How often forwarding threads look at the mode and the stop flag while idle.
const POLL: Duration = Duration::from_millis(5);

/// What the proxy does to the traffic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    Pass,
    DropNew,
    Stall,
    CutAfter(usize),
    Garbage(Vec<u8>),
    Delay(Duration),
    Blackhole,
    LoseReplyTo(Vec<u8>),
}

/// Counters of what the proxy did, for test reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProxyStats {
    pub accepted: u64,
    pub dropped: u64,
    pub cut: u64,
    pub garbage_replies: u64,
    pub bytes_to_server: u64,
    pub bytes_to_client: u64,
}

#[derive(Debug, Default)]
struct Counters {
    accepted: AtomicU64,
    dropped: AtomicU64,
    cut: AtomicU64,
    garbage_replies: AtomicU64,
    bytes_to_server: AtomicU64,
    bytes_to_client: AtomicU64,
}

#[derive(Debug)]
struct Shared {
    upstream: SocketAddr,
    mode: Mutex<Mode>,
    stop: AtomicBool,
    /// Both sockets of every live connection, so that `cut_all` can close them.
    live: Mutex<Vec<(TcpStream, TcpStream)>>,
    counters: Counters,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A forwarding thread that panicked cannot leave the mode or the connection
    // list half-written (each is replaced or pushed whole), so poison is ignored.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    fn mode(&self) -> Mode {
        lock(&self.mode).clone()
    }
}

/// The proxy: listens on a free loopback port, forwards to `upstream`.
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl FaultProxy {
    /// Starts a proxy in [`Mode::Pass`] in front of `upstream`.
    pub fn start(upstream: SocketAddr) -> io::Result<FaultProxy> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let shared = Arc::new(Shared {
            upstream,
            mode: Mutex::new(Mode::Pass),
            stop: AtomicBool::new(false),
            live: Mutex::new(Vec::new()),
            counters: Counters::default(),
        });
        let acceptor = {
            let shared = shared.clone();
            thread::Builder::new().name("fault-proxy-accept".into()).spawn(move || accept_loop(&listener, &shared))?
        };
        Ok(FaultProxy { addr, shared, acceptor: Some(acceptor) })
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `host:port`, the way memdex's builder takes servers.
    pub fn addr_string(&self) -> String {
        self.addr.to_string()
    }

    pub fn set_mode(&self, mode: Mode) {
        *lock(&self.shared.mode) = mode;
    }

    pub fn mode(&self) -> Mode {
        self.shared.mode()
    }

    /// Closes every live connection at once (both directions), as a server crash
    /// or a network cut would.
    pub fn cut_all(&self) {
        let live = std::mem::take(&mut *lock(&self.shared.live));
        for (client, server) in live {
            let _ = client.shutdown(Shutdown::Both);
            let _ = server.shutdown(Shutdown::Both);
            self.shared.counters.cut.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn stats(&self) -> ProxyStats {
        let c = &self.shared.counters;
        ProxyStats {
            accepted: c.accepted.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            cut: c.cut.load(Ordering::Relaxed),
            garbage_replies: c.garbage_replies.load(Ordering::Relaxed),
            bytes_to_server: c.bytes_to_server.load(Ordering::Relaxed),
            bytes_to_client: c.bytes_to_client.load(Ordering::Relaxed),
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.cut_all();
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    while !shared.stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((client, _)) => {
                shared.counters.accepted.fetch_add(1, Ordering::Relaxed);
                if shared.mode() == Mode::DropNew {
                    shared.counters.dropped.fetch_add(1, Ordering::Relaxed);
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                if let Err(e) = connect_pair(client, shared) {
                    // The upstream is down: the client sees its connection closed,
                    // exactly as if it had reached the dead server itself.
                    eprintln!("fault proxy: upstream {}: {e}", shared.upstream);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => thread::sleep(POLL),
            Err(_) => thread::sleep(POLL),
        }
    }
}

fn connect_pair(client: TcpStream, shared: &Arc<Shared>) -> io::Result<()> {
    client.set_nonblocking(false)?;
    let server = TcpStream::connect_timeout(&shared.upstream, Duration::from_secs(1))?;
    for s in [&client, &server] {
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(POLL))?;
    }
    lock(&shared.live).push((client.try_clone()?, server.try_clone()?));
    // Set when the client sent the request whose reply `Mode::LoseReplyTo` loses.
    let armed = Arc::new(AtomicBool::new(false));
    let up = (client.try_clone()?, server.try_clone()?, shared.clone(), armed.clone());
    thread::Builder::new()
        .name("fault-proxy-up".into())
        .spawn(move || pump(up.0, up.1, &up.2, Direction::ToServer, &up.3))?;
    let down = shared.clone();
    thread::Builder::new()
        .name("fault-proxy-down".into())
        .spawn(move || pump(server, client, &down, Direction::ToClient, &armed))?;
    Ok(())
}

fn holds(chunk: &[u8], pattern: &[u8]) -> bool {
    !pattern.is_empty() && chunk.windows(pattern.len()).any(|w| w == pattern)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    ToServer,
    ToClient,
}

/// Forwards `from` → `to` under the current mode until either side closes.
fn pump(mut from: TcpStream, mut to: TcpStream, shared: &Shared, direction: Direction, armed: &AtomicBool) {
    let mut buf = vec![0u8; 64 * 1024];
    let close = |from: &TcpStream, to: &TcpStream| {
        let _ = from.shutdown(Shutdown::Both);
        let _ = to.shutdown(Shutdown::Both);
    };
    loop {
        if shared.stop.load(Ordering::Relaxed) {
            close(&from, &to);
            return;
        }
        if shared.mode() == Mode::Stall {
            // Hold: leave the bytes in the kernel's buffers until the mode changes.
            thread::sleep(POLL);
            continue;
        }
        let n = match from.read(&mut buf) {
            Ok(0) => {
                close(&from, &to);
                return;
            }
            Ok(n) => n,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => continue,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => {
                close(&from, &to);
                return;
            }
        };
        let chunk = &buf[..n];
        let counters = &shared.counters;
        let written = match (direction, shared.mode()) {
            (_, Mode::Blackhole) => Ok(()),
            (Direction::ToServer, Mode::LoseReplyTo(pattern)) if holds(chunk, &pattern) => {
                armed.store(true, Ordering::SeqCst);
                counters.bytes_to_server.fetch_add(n as u64, Ordering::Relaxed);
                to.write_all(chunk)
            }
            (Direction::ToClient, Mode::LoseReplyTo(_)) if armed.load(Ordering::SeqCst) => {
                counters.cut.fetch_add(1, Ordering::Relaxed);
                close(&from, &to);
                return;
            }
            (Direction::ToServer, _) => {
                counters.bytes_to_server.fetch_add(n as u64, Ordering::Relaxed);
                to.write_all(chunk)
            }
            (Direction::ToClient, Mode::CutAfter(limit)) => {
                let keep = limit.min(n);
                counters.bytes_to_client.fetch_add(keep as u64, Ordering::Relaxed);
                let _ = to.write_all(&chunk[..keep]);
                let _ = to.flush();
                counters.cut.fetch_add(1, Ordering::Relaxed);
                close(&from, &to);
                return;
            }
            (Direction::ToClient, Mode::Garbage(garbage)) => {
                counters.garbage_replies.fetch_add(1, Ordering::Relaxed);
                counters.bytes_to_client.fetch_add(garbage.len() as u64, Ordering::Relaxed);
                to.write_all(&garbage)
            }
            (Direction::ToClient, Mode::Delay(delay)) => {
                thread::sleep(delay);
                counters.bytes_to_client.fetch_add(n as u64, Ordering::Relaxed);
                to.write_all(chunk)
            }
            // A mode switched to Stall between the check and the read: this chunk
            // was already read, deliver it (holding only what is still unread).
            (Direction::ToClient, Mode::Pass | Mode::DropNew | Mode::Stall | Mode::LoseReplyTo(_)) => {
                counters.bytes_to_client.fetch_add(n as u64, Ordering::Relaxed);
                to.write_all(chunk)
            }
        };
        if written.is_err() {
            close(&from, &to);
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server that echoes every byte back, on a free loopback port.
    struct Echo {
        addr: SocketAddr,
    }

    fn echo() -> Echo {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind echo");
        let addr = listener.local_addr().expect("echo addr");
        thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                thread::spawn(move || {
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = conn.read(&mut buf) {
                        if n == 0 || conn.write_all(&buf[..n]).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Echo { addr }
    }

    fn client(proxy: &FaultProxy) -> TcpStream {
        let c = TcpStream::connect(proxy.addr()).expect("connect to proxy");
        c.set_read_timeout(Some(Duration::from_millis(300))).expect("timeout");
        c
    }

    /// Reads until `want` bytes, EOF or timeout; returns what arrived and whether
    /// the connection was closed.
    fn read_some(c: &mut TcpStream, want: usize) -> (Vec<u8>, bool) {
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        while got.len() < want {
            match c.read(&mut buf) {
                Ok(0) => return (got, true),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                    return (got, false);
                }
                Err(_) => return (got, true),
            }
        }
        (got, false)
    }

    #[test]
    fn pass_forwards_both_ways() {
        let e = echo();
        let p = FaultProxy::start(e.addr).expect("proxy");
        let mut c = client(&p);
        c.write_all(b"hello").expect("write");
        assert_eq!(read_some(&mut c, 5), (b"hello".to_vec(), false));
        c.write_all(b" again").expect("write");
        assert_eq!(read_some(&mut c, 6).0, b" again");
        let s = p.stats();
        assert_eq!((s.accepted, s.bytes_to_server, s.bytes_to_client), (1, 11, 11));
    }

    #[test]
    fn drop_new_closes_new_connections_but_not_live_ones() {
        let e = echo();
        let p = FaultProxy::start(e.addr).expect("proxy");
        let mut live = client(&p);
        live.write_all(b"x").expect("write");
        assert_eq!(read_some(&mut live, 1).0, b"x");
        p.set_mode(Mode::DropNew);
        let mut fresh = client(&p);
        let _ = fresh.write_all(b"y");
        assert_eq!(read_some(&mut fresh, 1), (Vec::new(), true), "a new connection is closed");
        live.write_all(b"z").expect("write");
        assert_eq!(read_some(&mut live, 1).0, b"z", "a live connection still works");
        p.cut_all();
        let _ = live.write_all(b"w");
        assert_eq!(read_some(&mut live, 1), (Vec::new(), true), "cut_all closes live connections");
        assert_eq!(p.stats().dropped, 1);
    }

    #[test]
    fn stall_holds_bytes_until_the_mode_changes() {
        let e = echo();
        let p = FaultProxy::start(e.addr).expect("proxy");
        let mut c = client(&p);
        p.set_mode(Mode::Stall);
        thread::sleep(POLL * 4);
        c.write_all(b"held").expect("write");
        assert_eq!(read_some(&mut c, 4), (Vec::new(), false), "nothing comes back while stalled");
        p.set_mode(Mode::Pass);
        assert_eq!(read_some(&mut c, 4), (b"held".to_vec(), false), "the late reply arrives afterwards");
    }

    #[test]
    fn delay_holds_each_reply_for_its_time() {
        let e = echo();
        let p = FaultProxy::start(e.addr).expect("proxy");
        p.set_mode(Mode::Delay(Duration::from_millis(600)));
        let mut c = client(&p);
        c.write_all(b"slow").expect("write");
        assert_eq!(read_some(&mut c, 4), (Vec::new(), false), "nothing within the client's 300 ms");
        assert_eq!(read_some(&mut c, 4), (b"slow".to_vec(), false), "the reply arrives after the delay");
    }

    #[test]
    fn blackhole_loses_what_is_sent_meanwhile() {
        let e = echo();
        let p = FaultProxy::start(e.addr).expect("proxy");
        let mut c = client(&p);
        p.set_mode(Mode::Blackhole);
        thread::sleep(POLL * 4);
        c.write_all(b"lost").expect("write");
        assert_eq!(read_some(&mut c, 4), (Vec::new(), false));
        p.set_mode(Mode::Pass);
        c.write_all(b"kept").expect("write");
        assert_eq!(read_some(&mut c, 4), (b"kept".to_vec(), false), "only what was sent after the hole");
    }

    #[test]
    fn cut_after_n_bytes_closes_mid_reply() {
        let e = echo();
        let p = FaultProxy::start(e.addr).expect("proxy");
        let mut c = client(&p);
        p.set_mode(Mode::CutAfter(3));
        c.write_all(b"hello world").expect("write");
        assert_eq!(read_some(&mut c, 11), (b"hel".to_vec(), true));
        assert_eq!(p.stats().cut, 1);
    }

    #[test]
    fn the_reply_to_a_marked_request_is_lost_and_the_connection_closed() {
        let e = echo();
        let p = FaultProxy::start(e.addr).expect("proxy");
        let mut c = client(&p);
        p.set_mode(Mode::LoseReplyTo(b"COMMIT".to_vec()));
        c.write_all(b"BEGIN").expect("write");
        assert_eq!(read_some(&mut c, 5), (b"BEGIN".to_vec(), false), "other replies pass");
        c.write_all(b"COMMIT").expect("write");
        assert_eq!(read_some(&mut c, 6), (Vec::new(), true), "the request's reply is lost");
        assert_eq!((p.stats().bytes_to_server, p.stats().cut), (11, 1), "the request reached the server");
    }

    #[test]
    fn garbage_replaces_replies() {
        let e = echo();
        let p = FaultProxy::start(e.addr).expect("proxy");
        p.set_mode(Mode::Garbage(b"\x00\xffSERVER_ERROR ?\r\n".to_vec()));
        let mut c = client(&p);
        c.write_all(b"get k\r\n").expect("write");
        assert_eq!(read_some(&mut c, 18).0, b"\x00\xffSERVER_ERROR ?\r\n");
        assert_eq!(p.stats().garbage_replies, 1);
    }

    #[test]
    fn a_dead_upstream_closes_the_client() {
        // Bind and drop a listener so that its port is (almost certainly) closed.
        let dead = TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr");
        let p = FaultProxy::start(dead).expect("proxy");
        let mut c = client(&p);
        let _ = c.write_all(b"x");
        assert_eq!(read_some(&mut c, 1), (Vec::new(), true));
    }
}
