//! Servers started for one test run on free loopback ports, stopped on drop.

pub mod mariadb;
pub mod memcached;
pub mod postgres;

use std::ffi::OsStr;
use std::fs;
use std::io::Read;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Starts a server, trying again on failure: another process can take the free
/// port between choosing it and the server binding it.
fn start_with_retries<T>(start: impl Fn() -> Result<T, String>) -> Result<T, String> {
    let mut last_error = String::new();
    for _ in 0..3 {
        match start() {
            Ok(server) => return Ok(server),
            Err(e) => last_error = e,
        }
    }
    Err(last_error)
}

/// Runs a command to completion; its output becomes the error on failure.
fn run(command: &mut Command, what: &str) -> Result<(), String> {
    let output = command.output().map_err(|e| format!("{what}: cannot run: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what} failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// A port nobody listens on right now (the kernel picks it; start-up retries if
/// another process takes it before the server binds it).
fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("finding a free port: {e}"))?;
    listener.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

/// A name part unique within this machine for this process's lifetime.
pub(crate) fn unique() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    format!("{}_{}_{nanos}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// A server's log file so far, for error messages (empty if unreadable).
fn read_log(path: &Path) -> String {
    let mut text = String::new();
    if let Ok(mut file) = fs::File::open(path) {
        let _ = file.read_to_string(&mut text);
    }
    text
}

/// A shell process that waits for its stdin to close (the test process exited, for
/// any reason, even SIGKILL), then runs `cleanup` — a script that stops a server and
/// removes its directory. Values travel as the script's arguments (`$1`, `$2`, …),
/// never inside it.
fn spawn_watchdog(name: &str, cleanup: &str, args: &[&OsStr]) -> Result<(Child, ChildStdin), String> {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!("cat >/dev/null; {cleanup}"))
        .arg(name)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("starting the watchdog: {e}"))?;
    match child.stdin.take() {
        Some(stdin) => Ok((child, stdin)),
        None => Err("the watchdog has no stdin pipe".to_owned()),
    }
}
