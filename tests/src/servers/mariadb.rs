//! A throwaway MariaDB server for one test run, on a free loopback port.
//!
//! [`MariaDbServer::start`] runs `mariadb-install-db` into a fresh temporary
//! directory and starts `mariadbd` on it, listening on 127.0.0.1 only, with
//! durability switched off (the log is flushed about once a second, not at every
//! commit, and there is no binary log: the data is discarded anyway). Nothing of the
//! machine's own configuration is read (`--no-defaults`), and the system service is
//! never touched.
//!
//! Authentication is real: the install creates `root@localhost`, reachable only
//! through the server's own unix socket in the temporary directory, and start-up
//! uses it once to create the user the tests connect as, `memdex` with a random
//! password, over TCP. The tests therefore run with MariaDB's grant checks on, as
//! an application would.
//!
//! MariaDB refuses to run as root, so when the tests run as root the server runs as
//! the `mysql` system user (created by the Debian package) through `--user`, and the
//! directory is handed to that user.
//!
//! A test binary normally shares one server ([`MariaDbServer::shared`]) and gives
//! each test its own database ([`MariaDbServer::create_database`]).
//!
//! Cleanup: dropping the server kills it and removes the directory. A shared server
//! lives in a `static`, which Rust never drops, so every server also has a watchdog:
//! a small shell process whose stdin is a pipe from the test process. When the test
//! process exits for any reason (even SIGKILL) the pipe closes, the watchdog's `cat`
//! sees end of file, and it kills the server and removes the directory.
//!
//! Binaries: `$MEMDEX_MARIADB_BIN` if set (a directory holding `mariadbd` and
//! `mariadb-install-db`), else `/usr/sbin/mariadbd` and `/usr/bin/mariadb-install-db`
//! (Debian's `mariadb-server`), else whatever is on `PATH`.

use std::fs;
use std::net::TcpStream;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::{free_port, read_log, run, start_with_retries, unique};

use memdex::db::Database;
use memdex::db::mysql::MySql;

/// How long to wait for a started server to accept connections.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// The user the tests connect as.
const USER: &str = "memdex";

/// A running MariaDB server, stopped and deleted on drop.
#[derive(Debug)]
pub struct MariaDbServer {
    port: u16,
    password: String,
    /// The temporary directory holding `data/`, `sock` and `server.log`.
    base: PathBuf,
    server: Child,
    /// Holding the write end of the watchdog's stdin keeps the watchdog waiting.
    watchdog_stdin: Option<ChildStdin>,
    watchdog: Child,
}

static SHARED: OnceLock<Result<MariaDbServer, String>> = OnceLock::new();

impl MariaDbServer {
    /// One server for the whole test binary, started on first use.
    pub fn shared() -> Result<&'static MariaDbServer, String> {
        SHARED.get_or_init(MariaDbServer::start).as_ref().map_err(Clone::clone)
    }

    /// Starts a new server. A port taken between choosing and binding it is retried.
    pub fn start() -> Result<MariaDbServer, String> {
        start_with_retries(|| MariaDbServer::start_once(None))
    }

    /// Starts a new server with TLS on, presenting `cert`; clients may still
    /// connect in plaintext.
    pub fn start_tls(cert: &crate::certs::ServerCert) -> Result<MariaDbServer, String> {
        start_with_retries(|| MariaDbServer::start_once(Some(cert)))
    }

    fn start_once(tls: Option<&crate::certs::ServerCert>) -> Result<MariaDbServer, String> {
        let (mariadbd, install_db) = find_binaries();
        let base = std::env::temp_dir().join(format!("memdex-mariadb-{}-{}", std::process::id(), unique()));
        fs::create_dir_all(&base).map_err(|e| format!("creating {}: {e}", base.display()))?;
        let cleanup_on_error = |e: String| {
            let _ = fs::remove_dir_all(&base);
            e
        };
        let uid = fs::metadata(&base).map_err(|e| cleanup_on_error(format!("{}: {e}", base.display())))?.uid();
        let as_mysql_user = uid == 0;
        if as_mysql_user {
            run(Command::new("chown").arg("mysql:mysql").arg(&base), "chown").map_err(cleanup_on_error)?;
        }
        let data = base.join("data");
        let socket = base.join("sock");

        let mut install = Command::new(&install_db);
        install.arg("--no-defaults").arg(format!("--datadir={}", data.display()));
        install.args(["--auth-root-authentication-method=normal", "--skip-test-db", "--skip-name-resolve"]);
        if as_mysql_user {
            install.arg("--user=mysql");
        }
        run(&mut install, "mariadb-install-db").map_err(cleanup_on_error)?;
        let tls_args = match tls {
            Some(cert) => install_cert(cert, &base, as_mysql_user).map_err(cleanup_on_error)?,
            None => Vec::new(),
        };

        let port = free_port().map_err(cleanup_on_error)?;
        let log = fs::File::create(base.join("server.log")).map_err(|e| cleanup_on_error(e.to_string()))?;
        let log_err = log.try_clone().map_err(|e| cleanup_on_error(e.to_string()))?;
        let mut mariadbd_cmd = Command::new(&mariadbd);
        mariadbd_cmd
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--socket={}", socket.display()))
            .arg(format!("--pid-file={}", base.join("pid").display()))
            .arg(format!("--port={port}"))
            .args([
                "--bind-address=127.0.0.1",
                "--skip-name-resolve",
                "--skip-log-bin",
                "--innodb-flush-log-at-trx-commit=0",
                "--innodb-doublewrite=0",
                "--innodb-buffer-pool-size=64M",
                "--innodb-log-file-size=48M",
                "--max-connections=300",
                "--character-set-server=utf8mb4",
                // The server's default for new databases: a collation that ignores
                // case, so that a table memdex did not create compares text the
                // usual MariaDB way and the tests see the emitted SQL compensate.
                "--collation-server=utf8mb4_general_ci",
            ]);
        mariadbd_cmd.args(&tls_args);
        if as_mysql_user {
            mariadbd_cmd.arg("--user=mysql");
        }
        let server = mariadbd_cmd
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|e| cleanup_on_error(format!("starting mariadbd: {e}")))?;
        let (watchdog, watchdog_stdin) = spawn_watchdog(server.id(), &base).map_err(cleanup_on_error)?;
        let mut this = MariaDbServer {
            port,
            password: format!("pw{}", unique()),
            base,
            server,
            watchdog_stdin: Some(watchdog_stdin),
            watchdog,
        };
        this.wait_until_ready(&socket)?;
        this.create_user(&socket)?;
        Ok(this)
    }

    /// Polls until the server accepts connections on its socket and port, failing
    /// early if the process exits (e.g. the port was taken).
    fn wait_until_ready(&mut self, socket: &Path) -> Result<(), String> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.server.try_wait() {
                return Err(format!("mariadbd exited during start-up ({status}):\n{}", self.log()));
            }
            if socket.exists() && TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!("mariadbd did not listen on port {}:\n{}", self.port, self.log()));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Creates the tests' user with its password, as root over the unix socket (the
    /// only way root can log in). It may grant what it has, so that a test can make
    /// a user of narrower rights (an application's role without DDL). The password travels on stdin, never in argv.
    fn create_user(&self, socket: &Path) -> Result<(), String> {
        let sql = format!(
            "CREATE USER '{USER}'@'127.0.0.1' IDENTIFIED BY '{pw}';\nGRANT ALL PRIVILEGES ON *.* TO \
             '{USER}'@'127.0.0.1' WITH GRANT OPTION;\n",
            pw = self.password
        );
        let mut client = Command::new(client_binary())
            .arg("--no-defaults")
            .arg(format!("--socket={}", socket.display()))
            .args(["--user=root", "--batch"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("running the mariadb client: {e}"))?;
        if let Some(mut stdin) = client.stdin.take() {
            use std::io::Write;
            stdin.write_all(sql.as_bytes()).map_err(|e| format!("writing to the mariadb client: {e}"))?;
        }
        let output = client.wait_with_output().map_err(|e| format!("the mariadb client: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "creating the test user failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        // The first TCP login proves the user works and warms the server up.
        MySql::connect(&self.url_for("mysql")).map(drop).map_err(|e| format!("logging in as {USER}: {e}"))
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of database `name` on this server.
    pub fn url_for(&self, name: &str) -> String {
        format!("mysql://{USER}:{}@127.0.0.1:{}/{name}", self.password, self.port)
    }

    /// The URL of database `name` for another user (one a test created).
    pub fn url_as(&self, user: &str, password: &str, name: &str) -> String {
        format!("mysql://{user}:{password}@127.0.0.1:{}/{name}", self.port)
    }

    /// Creates database `name` (letters, digits, `_`) and returns its URL. The
    /// database keeps the server's default collation (case-insensitive): memdex's
    /// own tables name theirs, and text semantics must not depend on the database.
    pub fn create_database(&self, name: &str) -> Result<String, String> {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("`{name}` is not a plain database name"));
        }
        let admin = MySql::connect(&self.url_for("mysql")).map_err(|e| e.to_string())?;
        admin.execute_ddl(&[format!("CREATE DATABASE `{name}`")]).map_err(|e| e.to_string())?;
        Ok(self.url_for(name))
    }

    /// Creates a database with a fresh unique name; returns its URL.
    pub fn fresh_database(&self) -> Result<String, String> {
        self.create_database(&format!("memdex_{}", unique()))
    }

    /// The server's log so far, for error messages.
    pub fn log(&self) -> String {
        read_log(&self.base.join("server.log"))
    }

    /// Stops the server at once (SIGKILL, like a crash: nothing here needs a clean
    /// shutdown); later connections fail.
    pub fn stop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

impl Drop for MariaDbServer {
    fn drop(&mut self) {
        self.stop();
        let _ = fs::remove_dir_all(&self.base);
        // Closing the pipe lets the watchdog finish (its cleanup is now a no-op).
        drop(self.watchdog_stdin.take());
        let _ = self.watchdog.wait();
    }
}

/// The watchdog: kills the server (by its process id) and removes `base` once the
/// test process is gone.
fn spawn_watchdog(pid: u32, base: &Path) -> Result<(Child, ChildStdin), String> {
    let pid = pid.to_string();
    super::spawn_watchdog(
        "memdex-mariadb-watchdog",
        r#"kill -9 "$1" >/dev/null 2>&1; sleep 0.2; rm -rf "$2""#,
        &[pid.as_ref(), base.as_os_str()],
    )
}

/// `mariadbd` and `mariadb-install-db`.
fn find_binaries() -> (PathBuf, PathBuf) {
    if let Some(dir) = std::env::var_os("MEMDEX_MARIADB_BIN") {
        let dir = PathBuf::from(dir);
        return (dir.join("mariadbd"), dir.join("mariadb-install-db"));
    }
    let pick = |installed: &str, name: &str| {
        if Path::new(installed).exists() { PathBuf::from(installed) } else { PathBuf::from(name) }
    };
    (pick("/usr/sbin/mariadbd", "mariadbd"), pick("/usr/bin/mariadb-install-db", "mariadb-install-db"))
}

/// The command-line client, used once per server to create the tests' user.
fn client_binary() -> PathBuf {
    match std::env::var_os("MEMDEX_MARIADB_BIN") {
        Some(dir) if PathBuf::from(&dir).join("mariadb").exists() => PathBuf::from(dir).join("mariadb"),
        _ => PathBuf::from("mariadb"),
    }
}

/// Copies the certificate and key next to the data directory, readable by the
/// server's user; returns the options that use them.
fn install_cert(cert: &crate::certs::ServerCert, base: &Path, as_mysql_user: bool) -> Result<Vec<String>, String> {
    let mut args = Vec::new();
    for (from, to, option) in
        [(&cert.cert_file, "server.crt", "--ssl-cert"), (&cert.key_file, "server.key", "--ssl-key")]
    {
        let target = base.join(to);
        fs::copy(from, &target).map_err(|e| format!("copying {} to {}: {e}", from.display(), target.display()))?;
        if as_mysql_user {
            run(Command::new("chown").arg("mysql:mysql").arg(&target), "chown")?;
        }
        args.push(format!("{option}={}", target.display()));
    }
    Ok(args)
}
