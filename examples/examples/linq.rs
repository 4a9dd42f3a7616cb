//! The LINQ post's queries, as Rust closures and as Python-lambda text, side by side:
//! `cargo run --example linq`. Exits non-zero when the two forms of a query
//! disagree. The program is `memdex_examples::linq::run`, which the test
//! `linq_runs` calls too.

fn main() -> std::process::ExitCode {
    let stdout = std::io::stdout();
    match memdex_examples::linq::run(&mut stdout.lock()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("linq: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
