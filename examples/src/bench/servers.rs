//! The servers the benchmark measures against, started by the benchmark itself on
//! free loopback ports and stopped when dropped: memcached, and PostgreSQL 15 run
//! as the `postgres` user from a throwaway data directory with `fsync=off`.

use std::io;
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Why a server could not be started; the report says so instead of a figure.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("{what} not found at {path}")]
    Missing { what: &'static str, path: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("{what} failed: {output}")]
    Failed { what: String, output: String },
    #[error("{what} did not become ready within {seconds} s")]
    NotReady { what: String, seconds: u64 },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> ServerError {
    let what = what.into();
    move |source| ServerError::Io { what, source }
}

/// A port nobody listens on right now (the OS picks it; the tiny window before the
/// server binds it is acceptable for a benchmark).
pub fn free_port() -> Result<u16, ServerError> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(io_err("binding a probe socket"))?;
    let port = listener.local_addr().map_err(io_err("reading the probe socket's port"))?.port();
    Ok(port)
}

fn wait_for_port(what: &str, port: u16, timeout: Duration) -> Result<(), ServerError> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(ServerError::NotReady { what: what.to_owned(), seconds: timeout.as_secs() })
}

/// A memcached process on `127.0.0.1:<port>`.
#[derive(Debug)]
pub struct Memcached {
    child: Child,
    pub port: u16,
}

impl Memcached {
    pub const BINARY: &'static str = "/usr/bin/memcached";

    /// Starts memcached with `memory_mb` of item memory.
    pub fn start(memory_mb: u32) -> Result<Memcached, ServerError> {
        if !Path::new(Self::BINARY).exists() {
            return Err(ServerError::Missing { what: "memcached", path: Self::BINARY.into() });
        }
        let port = free_port()?;
        let mut cmd = Command::new(Self::BINARY);
        cmd.args(["-l", "127.0.0.1", "-p", &port.to_string(), "-U", "0", "-m", &memory_mb.to_string(), "-t", "2"]);
        // memcached refuses to run as root without -u.
        if is_root() {
            cmd.args(["-u", "nobody"]);
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(io_err(format!("starting {}", Self::BINARY)))?;
        let server = Memcached { child, port };
        wait_for_port("memcached", port, Duration::from_secs(10))?;
        Ok(server)
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The server's process id (for its CPU time).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Memcached {
    fn drop(&mut self) {
        // The process is ours; SIGKILL is fine for a cache holding nothing durable.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0\n")).unwrap_or(false)
}

fn id_of(user: &str, flag: &str) -> Option<u32> {
    let out = Command::new("id").args([flag, user]).output().ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// A PostgreSQL 15 cluster in a temporary directory, on `127.0.0.1:<port>`.
#[derive(Debug)]
pub struct Postgres {
    dir: PathBuf,
    data: PathBuf,
    pub port: u16,
    run_as: Option<(u32, u32)>,
}

impl Postgres {
    pub const BIN: &'static str = "/usr/lib/postgresql/15/bin";

    pub fn start() -> Result<Postgres, ServerError> {
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let initdb = Path::new(Self::BIN).join("initdb");
        if !initdb.exists() {
            return Err(ServerError::Missing { what: "PostgreSQL 15", path: Self::BIN.into() });
        }
        // PostgreSQL refuses to run as root: as root, run it as `postgres`.
        let run_as = if is_root() {
            match (id_of("postgres", "-u"), id_of("postgres", "-g")) {
                (Some(uid), Some(gid)) => Some((uid, gid)),
                _ => return Err(ServerError::Missing { what: "the `postgres` user", path: "/etc/passwd".into() }),
            }
        } else {
            None
        };
        let dir = std::env::temp_dir().join(format!(
            "memdex-bench-pg-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(io_err(format!("creating {}", dir.display())))?;
        let port = free_port()?;
        let server = Postgres { data: dir.join("data"), dir, port, run_as };
        if let Some((uid, gid)) = run_as {
            let status = Command::new("chown")
                .arg(format!("{uid}:{gid}"))
                .arg(&server.dir)
                .status()
                .map_err(io_err("chown of the PostgreSQL directory"))?;
            if !status.success() {
                return Err(ServerError::Failed { what: "chown".into(), output: status.to_string() });
            }
        }
        server.run(
            Command::new(&initdb).arg("-D").arg(&server.data).args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
                "--locale=C",
            ]),
            "initdb",
        )?;
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {port} -k {} -c fsync=off -c synchronous_commit=off \
             -c full_page_writes=off -c shared_buffers=64MB",
            server.dir.display()
        );
        server.run(
            Command::new(Path::new(Self::BIN).join("pg_ctl"))
                .arg("-D")
                .arg(&server.data)
                .arg("-l")
                .arg(server.dir.join("log"))
                .args(["-o", &options, "-w", "-t", "30", "start"]),
            "pg_ctl start",
        )?;
        wait_for_port("PostgreSQL", port, Duration::from_secs(30))?;
        Ok(server)
    }

    fn run(&self, cmd: &mut Command, what: &str) -> Result<(), ServerError> {
        if let Some((uid, gid)) = self.run_as {
            cmd.uid(uid).gid(gid);
        }
        let out = cmd.current_dir(&self.dir).stdin(Stdio::null()).output().map_err(io_err(what))?;
        if out.status.success() {
            Ok(())
        } else {
            let mut output = String::from_utf8_lossy(&out.stderr).into_owned();
            output.push_str(&String::from_utf8_lossy(&out.stdout));
            Err(ServerError::Failed { what: what.to_owned(), output })
        }
    }

    /// A libpq-style connection string for the `postgres` database.
    pub fn params(&self) -> String {
        format!("host=127.0.0.1 port={} user=postgres dbname=postgres", self.port)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self.run(
            Command::new(Path::new(Self::BIN).join("pg_ctl")).arg("-D").arg(&self.data).args([
                "-m",
                "immediate",
                "-w",
                "stop",
            ]),
            "pg_ctl stop",
        );
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
