//! Drives the console example's binary through a pipe, as a script would: a query,
//! `:explain`, a malformed query, `:stats` and `:quit`, and checks what it prints.
//! The binary is built (or found up to date) by cargo first, in the target directory
//! and profile of this test, so that it is never built twice.

use std::error::Error;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The console example's binary, built by cargo if it is missing or stale.
fn console_binary() -> Result<PathBuf, Box<dyn Error>> {
    // This test runs from <target>/<profile>/deps/; the example lands in
    // <target>/<profile>/examples/.
    let exe = std::env::current_exe()?;
    let profile_dir = exe.parent().and_then(Path::parent).ok_or("the test binary is not in <target>/<profile>/deps")?;
    let target_dir = profile_dir.parent().ok_or("the profile directory has no parent")?;
    let mut cargo = Command::new(env!("CARGO"));
    cargo.args(["build", "--quiet", "--package", "memdex-examples", "--example", "console", "--target-dir"]);
    cargo.arg(target_dir);
    if profile_dir.file_name().is_some_and(|name| name == "release") {
        cargo.arg("--release");
    }
    let status = cargo.current_dir(env!("CARGO_MANIFEST_DIR")).status()?;
    if !status.success() {
        return Err(format!("cargo build --example console failed: {status}").into());
    }
    Ok(profile_dir.join("examples").join(format!("console{}", std::env::consts::EXE_SUFFIX)))
}

/// Runs the console with `input` on its standard input and returns what it printed.
fn console(input: &str) -> Result<String, Box<dyn Error>> {
    let mut child = Command::new(console_binary()?)
        // The default store: the shop's sample data in memory, the in-process cache.
        .env_remove("MEMDEX_DATABASE_URL")
        .env_remove("MEMDEX_MEMCACHED")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    child.stdin.take().ok_or("no stdin pipe")?.write_all(input.as_bytes())?;
    let output = child.wait_with_output()?;
    let stdout = String::from_utf8(output.stdout)?;
    if !output.status.success() {
        return Err(format!(
            "the console failed ({}):\n{stdout}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    Ok(stdout)
}

#[test]
fn a_piped_session_answers_every_line() -> Result<(), Box<dyn Error>> {
    let out = console(
        "lambda i: i.category_id == 5\n\
         :explain customer: lambda c: c.first_name.startswith('m')\n\
         lambda i: i.category_id == = 5\n\
         :stats\n\
         :quit\n\
         lambda i: i.category_id == 11\n",
    )?;
    assert!(out.contains("memdex console on SQLite"), "{out}");
    // The query: category 5's four items, as a table.
    assert!(out.contains("1111            5  lamp    19.5"), "{out}");
    assert!(out.contains("(4 rows)"), "{out}");
    // The plan of a query on another model.
    assert!(out.contains("plan for Customer: 1 disjunct"), "{out}");
    assert!(out.contains("get memdex:customer:") && out.contains(":first_name[:1]=m"), "{out}");
    // The malformed query: an error with its line, column and caret, and the
    // console carries on.
    assert!(out.contains("--> line 1, column"), "{out}");
    assert!(out.contains("1 | lambda i: i.category_id == = 5"), "{out}");
    assert!(out.lines().any(|line| line.trim_start().starts_with("| ") && line.trim_end().ends_with('^')), "{out}");
    // The counters, after the queries above.
    assert!(out.contains("node_hits:") && out.contains("db_queries:"), "{out}");
    // Nothing after :quit is read.
    assert!(!out.contains("item 11"), "{out}");
    Ok(())
}

#[test]
fn the_end_of_the_input_ends_the_console() -> Result<(), Box<dyn Error>> {
    let out = console("customer: lambda c: c.id == 4\n")?;
    assert!(out.contains("nora") && out.contains("(1 row)"), "{out}");
    Ok(())
}
