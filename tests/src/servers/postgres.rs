//! A throwaway PostgreSQL server for one test run, on a free loopback port.
//!
//! [`PostgresServer::start`] runs `initdb` into a fresh temporary directory and starts
//! `postgres` on it with durability switched off (fsync, synchronous commit and full
//! page writes off: the data is discarded anyway). PostgreSQL refuses to run as root,
//! so when the tests run as root the binaries run as the `postgres` system user via
//! `runuser`, and the directory is handed to that user.
//!
//! Starting a server takes a second or two, so a test binary normally shares one
//! ([`PostgresServer::shared`]) and gives each test its own database
//! ([`PostgresServer::create_database`]).
//!
//! Cleanup: dropping the server stops it (`pg_ctl stop -m immediate`) and removes the
//! directory. A shared server lives in a `static`, which Rust never drops, so every
//! server also has a watchdog: a small shell process whose stdin is a pipe from the
//! test process. When the test process exits for any reason (even SIGKILL) the pipe
//! closes, the watchdog's `cat` sees end of file, and it stops the server and removes
//! the directory.
//!
//! Binaries: `$MEMDEX_PG_BIN` if set, else `/usr/lib/postgresql/15/bin`, else the newest
//! `/usr/lib/postgresql/*/bin`, else whatever `initdb`/`postgres` are on `PATH`.

use std::fs;
use std::net::TcpStream;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::{free_port, read_log, run, start_with_retries, unique};
use crate::certs::ServerCert;

use memdex::db::Database;
use memdex::db::postgres::Postgres;

/// How long to wait for a started server to accept connections.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// A running PostgreSQL server, stopped and deleted on drop.
#[derive(Debug)]
pub struct PostgresServer {
    port: u16,
    bin: PathBuf,
    /// The temporary directory holding `data/`, `sock/` and `server.log`.
    base: PathBuf,
    /// Whether binaries run via `runuser -u postgres` (the tests run as root).
    as_postgres_user: bool,
    server: Child,
    /// Holding the write end of the watchdog's stdin keeps the watchdog waiting.
    watchdog_stdin: Option<ChildStdin>,
    watchdog: Child,
}

static SHARED: OnceLock<Result<PostgresServer, String>> = OnceLock::new();

impl PostgresServer {
    /// One server for the whole test binary, started on first use.
    pub fn shared() -> Result<&'static PostgresServer, String> {
        SHARED.get_or_init(PostgresServer::start).as_ref().map_err(Clone::clone)
    }

    /// Starts a new server. A port taken between choosing and binding it is retried.
    pub fn start() -> Result<PostgresServer, String> {
        start_with_retries(|| PostgresServer::start_once(None))
    }

    /// Starts a new server with TLS on (`ssl=on`) presenting `cert`; clients may
    /// still connect in plaintext (`sslmode=disable`).
    pub fn start_tls(cert: &ServerCert) -> Result<PostgresServer, String> {
        start_with_retries(|| PostgresServer::start_once(Some(cert)))
    }

    fn start_once(tls: Option<&ServerCert>) -> Result<PostgresServer, String> {
        let bin = find_bin_dir();
        let base = std::env::temp_dir().join(format!("memdex-pg-{}-{}", std::process::id(), unique()));
        fs::create_dir_all(base.join("sock")).map_err(|e| format!("creating {}: {e}", base.display()))?;
        let uid = fs::metadata(&base).map_err(|e| format!("{}: {e}", base.display()))?.uid();
        let as_postgres_user = uid == 0;
        if as_postgres_user {
            run(Command::new("chown").arg("-R").arg("postgres:postgres").arg(&base), "chown")?;
        }
        let data = base.join("data");
        let cleanup_on_error = |e: String| {
            let _ = fs::remove_dir_all(&base);
            e
        };

        let mut initdb = command(as_postgres_user, &bin.join("initdb"));
        initdb.arg("-D").arg(&data).args(["-A", "trust", "-U", "postgres", "--locale=C.UTF-8", "-E", "UTF8"]);
        initdb.args(["--no-sync", "--no-instructions"]);
        run(&mut initdb, "initdb").map_err(cleanup_on_error)?;
        let tls_settings = match tls {
            Some(cert) => install_cert(cert, &data, as_postgres_user).map_err(cleanup_on_error)?,
            None => Vec::new(),
        };

        let port = free_port().map_err(cleanup_on_error)?;
        let log = fs::File::create(base.join("server.log")).map_err(|e| cleanup_on_error(e.to_string()))?;
        let log_err = log.try_clone().map_err(|e| cleanup_on_error(e.to_string()))?;
        let mut postgres = command(as_postgres_user, &bin.join("postgres"));
        postgres.arg("-D").arg(&data).arg("-k").arg(base.join("sock")).arg("-p").arg(port.to_string());
        for setting in [
            "listen_addresses=127.0.0.1",
            "fsync=off",
            "synchronous_commit=off",
            "full_page_writes=off",
            "shared_buffers=16MB",
            "max_connections=200",
            "logging_collector=off",
        ]
        .into_iter()
        .chain(tls_settings.iter().map(String::as_str))
        {
            postgres.arg("-c").arg(setting);
        }
        let server = postgres
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|e| cleanup_on_error(format!("starting postgres: {e}")))?;

        let (watchdog, watchdog_stdin) = spawn_watchdog(&bin, &base, as_postgres_user).map_err(cleanup_on_error)?;
        let mut this = PostgresServer {
            port,
            bin,
            base,
            as_postgres_user,
            server,
            watchdog_stdin: Some(watchdog_stdin),
            watchdog,
        };
        this.wait_until_ready()?;
        Ok(this)
    }

    /// Polls until the server accepts a PostgreSQL connection, failing early if the
    /// process exits (e.g. the port was taken).
    fn wait_until_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.server.try_wait() {
                return Err(format!("postgres exited during start-up ({status}):\n{}", self.log()));
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                match Postgres::connect(&self.connection_string_for("postgres")) {
                    Ok(_) => return Ok(()),
                    // "the database system is starting up": keep polling.
                    Err(e) if Instant::now() >= deadline => {
                        return Err(format!("postgres did not become ready: {e}\n{}", self.log()));
                    }
                    Err(_) => {}
                }
            } else if Instant::now() >= deadline {
                return Err(format!("postgres did not listen on port {}:\n{}", self.port, self.log()));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Parameters for the default `postgres` database.
    pub fn connection_string(&self) -> String {
        self.connection_string_for("postgres")
    }

    /// Parameters for database `dbname` on this server.
    pub fn connection_string_for(&self, dbname: &str) -> String {
        format!("host=127.0.0.1 port={} user=postgres dbname={dbname} connect_timeout=5", self.port)
    }

    /// Parameters for database `dbname` as another role (one a test created; the
    /// server trusts every local login).
    pub fn connection_string_as(&self, role: &str, dbname: &str) -> String {
        format!("host=127.0.0.1 port={} user={role} dbname={dbname} connect_timeout=5", self.port)
    }

    /// Creates database `name` (an SQL identifier: letters, digits, `_`) and returns
    /// its connection string.
    pub fn create_database(&self, name: &str) -> Result<String, String> {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("`{name}` is not a plain database name"));
        }
        let admin = Postgres::connect(&self.connection_string()).map_err(|e| e.to_string())?;
        admin.execute_ddl(&[format!("CREATE DATABASE \"{name}\"")]).map_err(|e| e.to_string())?;
        Ok(self.connection_string_for(name))
    }

    /// Creates database `name` in `encoding` (a PostgreSQL encoding name, such as
    /// `LATIN1`; collation `C`, so any encoding goes) and returns its connection
    /// string.
    pub fn create_database_encoded(&self, name: &str, encoding: &str) -> Result<String, String> {
        if !name.chars().chain(encoding.chars()).all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("`{name}` or `{encoding}` is not a plain name"));
        }
        let admin = Postgres::connect(&self.connection_string()).map_err(|e| e.to_string())?;
        let create =
            format!("CREATE DATABASE \"{name}\" ENCODING '{encoding}' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0");
        admin.execute_ddl(&[create]).map_err(|e| e.to_string())?;
        Ok(self.connection_string_for(name))
    }

    /// Creates a database with a fresh unique name; returns its connection string.
    pub fn fresh_database(&self) -> Result<String, String> {
        self.create_database(&format!("memdex_{}", unique()))
    }

    /// The server's log so far, for error messages.
    pub fn log(&self) -> String {
        read_log(&self.base.join("server.log"))
    }

    /// Stops the server at once (no checkpoint); later connections fail.
    pub fn stop(&mut self) {
        let mut pg_ctl = command(self.as_postgres_user, &self.bin.join("pg_ctl"));
        pg_ctl.arg("stop").arg("-D").arg(self.base.join("data")).args(["-m", "immediate", "-w"]);
        let stopped = pg_ctl.stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success());
        if !stopped {
            let _ = self.server.kill();
        }
        let _ = self.server.wait();
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        self.stop();
        let _ = fs::remove_dir_all(&self.base);
        // Closing the pipe lets the watchdog finish (its cleanup is now a no-op).
        drop(self.watchdog_stdin.take());
        let _ = self.watchdog.wait();
    }
}

/// Copies the certificate and key into the data directory, readable by the server
/// only (PostgreSQL refuses a key others can read); returns the settings to use them.
fn install_cert(cert: &ServerCert, data: &Path, as_postgres_user: bool) -> Result<Vec<String>, String> {
    use std::os::unix::fs::PermissionsExt;
    for (from, to) in [(&cert.cert_file, "server.crt"), (&cert.key_file, "server.key")] {
        let target = data.join(to);
        fs::copy(from, &target).map_err(|e| format!("copying {} to {}: {e}", from.display(), target.display()))?;
        fs::set_permissions(&target, fs::Permissions::from_mode(0o600)).map_err(|e| format!("chmod {to}: {e}"))?;
        if as_postgres_user {
            run(Command::new("chown").arg("postgres:postgres").arg(&target), "chown")?;
        }
    }
    Ok(vec!["ssl=on".into(), "ssl_cert_file=server.crt".into(), "ssl_key_file=server.key".into()])
}

/// The watchdog: stops the server in `base/data` and removes `base` once the test
/// process is gone.
fn spawn_watchdog(bin: &Path, base: &Path, as_postgres_user: bool) -> Result<(Child, ChildStdin), String> {
    let stop = if as_postgres_user {
        r#"runuser -u postgres -- "$1" stop -D "$2/data" -m immediate -w"#
    } else {
        r#""$1" stop -D "$2/data" -m immediate -w"#
    };
    let pg_ctl = bin.join("pg_ctl");
    super::spawn_watchdog(
        "memdex-pg-watchdog",
        &format!(r#"{stop} >/dev/null 2>&1; rm -rf "$2""#),
        &[pg_ctl.as_os_str(), base.as_os_str()],
    )
}

/// `program`, run as the `postgres` user when the tests run as root.
fn command(as_postgres_user: bool, program: &Path) -> Command {
    if as_postgres_user {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn find_bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("MEMDEX_PG_BIN") {
        return PathBuf::from(dir);
    }
    let preferred = PathBuf::from("/usr/lib/postgresql/15/bin");
    if preferred.join("postgres").exists() {
        return preferred;
    }
    let newest = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .max();
    match newest {
        Some(version) => PathBuf::from(format!("/usr/lib/postgresql/{version}/bin")),
        // An empty directory makes `bin.join("initdb")` a bare name, found on PATH.
        None => PathBuf::new(),
    }
}
