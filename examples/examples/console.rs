//! A console for text queries against the shop's models:
//! `cargo run --example console`.
//!
//! By default it opens an in-memory SQLite database holding the shop's sample data;
//! `MEMDEX_DATABASE_URL` names another database instead (`sqlite://path`,
//! `sqlite::memory:`, `postgres://…`; the shop's tables are created there when
//! missing, and no rows are written). `MEMDEX_MEMCACHED=host:port,host:port` picks
//! memcached servers, else the cache is in-process.
//!
//! From a terminal, lines are read with editing and a history (kept in
//! `$HOME/.memdex_console_history`); from a pipe, plain lines are read and no
//! prompt is printed, so that `printf '…\n:quit\n' | cargo run --example console`
//! can drive it. `:help` lists the commands.

use std::error::Error;
use std::io::{self, BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use memdex::Store;
use memdex_examples::console::{Console, Database, Next, memcached_servers};
use memdex_examples::shop_models;
use rustyline::error::ReadlineError;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("console: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn Error>> {
    let database_url = std::env::var("MEMDEX_DATABASE_URL").ok().filter(|url| !url.is_empty());
    let database = match &database_url {
        Some(url) => Database::from_url(url)?,
        None => Database::SqliteInMemory,
    };
    let mut builder = database.configure(Store::builder());
    let servers = std::env::var("MEMDEX_MEMCACHED").map(|list| memcached_servers(&list)).unwrap_or_default();
    if servers.is_empty() {
        builder = builder.in_process_cache();
    } else {
        builder = builder.memcached(servers);
        if database == Database::SqliteInMemory {
            // The database starts empty on every run, so the cache must not serve
            // another run's nodes and objects: this run gets keys of its own.
            builder = builder.namespace(format!("console{}", std::process::id()));
        }
    }
    let console = Console::open(builder)?;
    let mut stdout = io::stdout().lock();
    writeln!(stdout, "memdex console on {}", console.describe())?;
    if database_url.is_none() {
        console.load_sample_data()?;
        writeln!(stdout, "the shop's sample data: {}", shop_models::SAMPLE_DATA)?;
    } else {
        writeln!(stdout, "the shop's tables are there (created where missing); no rows were written")?;
    }
    writeln!(stdout, ":help lists the commands, :quit leaves")?;
    if io::stdin().is_terminal() { edit_lines(console, &mut stdout) } else { read_lines(console, &mut stdout) }
}

/// Lines from a terminal, with editing and history.
fn edit_lines(mut console: Console, out: &mut impl Write) -> Result<(), Box<dyn Error>> {
    let mut editor = rustyline::DefaultEditor::new()?;
    let history = std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".memdex_console_history"));
    if let Some(path) = &history {
        // No history file yet is the usual first run, not a problem.
        let _ = editor.load_history(path);
    }
    loop {
        // Answers are written through `out`; the prompt goes straight to the
        // terminal, so the answers must be out before it.
        out.flush()?;
        match editor.readline(&console.prompt()) {
            Ok(line) => {
                // A history that cannot take a line still leaves the console usable.
                let _ = editor.add_history_entry(line.as_str());
                if console.line(&line, out)? == Next::Quit {
                    break;
                }
            }
            // Ctrl-C drops the line being typed, as in a shell; Ctrl-D leaves.
            Err(ReadlineError::Interrupted) => {}
            Err(ReadlineError::Eof) => break,
            Err(error) => return Err(error.into()),
        }
    }
    if let Some((path, Err(error))) = history.as_ref().map(|path| (path, editor.save_history(path))) {
        eprintln!("console: the history was not saved to {}: {error}", path.display());
    }
    Ok(())
}

/// Plain lines from a pipe or a file, until `:quit` or the end of the input. Bytes
/// that are not UTF-8 are replaced rather than refused, so that the line is still
/// answered (as a malformed query).
fn read_lines(mut console: Console, out: &mut impl Write) -> Result<(), Box<dyn Error>> {
    let mut stdin = io::stdin().lock();
    let mut buffer = Vec::new();
    loop {
        buffer.clear();
        if stdin.read_until(b'\n', &mut buffer)? == 0 {
            return Ok(());
        }
        if console.line(&String::from_utf8_lossy(&buffer), out)? == Next::Quit {
            return Ok(());
        }
        out.flush()?;
    }
}
