//! A memcached process (`/usr/bin/memcached`, Debian's 1.6 package) on a free
//! loopback port, one per test so tests can run in parallel, killed on drop; and
//! [`FakeMemcached`], a loopback listener that stays silent or answers garbage,
//! for timeout and protocol-error tests.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

const MEMCACHED: &str = "/usr/bin/memcached";

/// How long a fresh memcached gets to start accepting connections.
const STARTUP: Duration = Duration::from_secs(10);

/// A running memcached, stopped when dropped.
#[derive(Debug)]
pub struct MemcachedServer {
    child: Option<Child>,
    port: u16,
    args: Vec<String>,
}

impl MemcachedServer {
    /// A memcached with its default settings (64 MiB, 1 MiB items).
    pub fn start() -> io::Result<MemcachedServer> {
        MemcachedServer::start_with(&[])
    }

    /// A memcached with extra command-line arguments, e.g. `["-m", "1"]` for a
    /// tiny memory limit or `["-I", "2m"]` for a larger item limit.
    pub fn start_with(args: &[&str]) -> io::Result<MemcachedServer> {
        let args: Vec<String> = args.iter().map(|arg| (*arg).to_owned()).collect();
        // Another process can take the port between our probe and memcached's
        // bind; a few fresh ports make that race harmless.
        let mut last_error = io::Error::other("memcached did not start");
        for _ in 0..5 {
            let port = free_port()?;
            match spawn(port, &args) {
                Ok(child) => return Ok(MemcachedServer { child: Some(child), port, args }),
                Err(error) => last_error = error,
            }
        }
        Err(last_error)
    }

    /// A memcached that speaks only TLS (`-Z`), presenting `cert`.
    pub fn start_tls(cert: &crate::certs::ServerCert) -> io::Result<MemcachedServer> {
        let files = format!("ssl_chain_cert={},ssl_key={}", cert.cert_file.display(), cert.key_file.display());
        MemcachedServer::start_with(&["-Z", "-o", &files])
    }

    /// `127.0.0.1:<port>`, stable across [`restart`](Self::restart).
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Stops the process (SIGKILL: no goodbye to clients, like a crash).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Already exited is fine: either way it is gone after `wait`.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the server if it runs and starts an empty one on the same port.
    pub fn restart(&mut self) -> io::Result<()> {
        self.kill();
        // The old listener's port is free once the process is reaped; memcached
        // binds with SO_REUSEADDR, so lingering TIME_WAIT sockets do not matter.
        self.child = Some(spawn(self.port, &self.args)?);
        Ok(())
    }
}

impl Drop for MemcachedServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Starts memcached on `port` and waits until it accepts a connection.
fn spawn(port: u16, args: &[String]) -> io::Result<Child> {
    let mut child = Command::new(MEMCACHED)
        // memcached refuses to run as root without `-u`; as another user the
        // flag is ignored.
        .args(["-u", "root", "-l", "127.0.0.1", "-U", "0", "-t", "2", "-p"])
        .arg(port.to_string())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let deadline = Instant::now() + STARTUP;
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    loop {
        if let Some(status) = child.try_wait()? {
            let mut message = String::new();
            if let Some(mut stderr) = child.stderr.take() {
                let _ = stderr.read_to_string(&mut message);
            }
            return Err(io::Error::other(format!("memcached on port {port} exited ({status}): {message}")));
        }
        if TcpStream::connect_timeout(&address, Duration::from_millis(100)).is_ok() {
            return Ok(child);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::new(io::ErrorKind::TimedOut, format!("memcached on port {port} did not start")));
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// A loopback listener that accepts connections and reads everything sent, and
/// either never answers or answers every read with fixed bytes. Stopped on drop.
#[derive(Debug)]
pub struct FakeMemcached {
    address: SocketAddr,
    stop: Arc<AtomicBool>,
    acceptor: Option<thread::JoinHandle<()>>,
}

impl FakeMemcached {
    /// Accepts and reads, never answers: every request times out.
    pub fn silent() -> io::Result<FakeMemcached> {
        FakeMemcached::start(None)
    }

    /// Answers each chunk it reads with `reply` (e.g. garbage).
    pub fn replying(reply: &[u8]) -> io::Result<FakeMemcached> {
        FakeMemcached::start(Some(reply.to_vec()))
    }

    fn start(reply: Option<Vec<u8>>) -> io::Result<FakeMemcached> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let address = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let acceptor = thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let reply = reply.clone();
                let stopping = Arc::clone(&stopping);
                thread::spawn(move || serve(stream, reply.as_deref(), &stopping));
            }
        });
        Ok(FakeMemcached { address, stop, acceptor: Some(acceptor) })
    }

    pub fn addr(&self) -> String {
        self.address.to_string()
    }
}

fn serve(mut stream: TcpStream, reply: Option<&[u8]>, stop: &AtomicBool) {
    // A read timeout lets the connection notice the server stopping.
    let _ = stream.set_read_timeout(Some(Duration::from_millis(50)));
    let mut buffer = [0u8; 16 * 1024];
    while !stop.load(Ordering::SeqCst) {
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(_) => {
                let answered = reply.is_none_or(|reply| stream.write_all(reply).is_ok());
                if !answered {
                    break;
                }
            }
            Err(error) if matches!(error.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
    }
    let _ = stream.shutdown(Shutdown::Both);
}

impl Drop for FakeMemcached {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the acceptor blocked in `accept` so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.address, Duration::from_millis(100));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}
