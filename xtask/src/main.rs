//! `cargo xtask`: project automation for the multiprocessing workspace.
//!
//! This follows the [cargo-xtask] convention: `.cargo/config.toml` aliases `cargo xtask` to
//! `cargo run --package xtask --`, and this binary changes to the project root and dispatches on
//! its first argument. Its one dependency is plotters (SVG only), for the sweep charts.
//!
//! # Subcommands
//!
//! - `cargo xtask ci` runs, in order and stopping at the first failure:
//!   `cargo fmt --all -- --check`, `cargo clippy --workspace --all-targets -- -D warnings`,
//!   the tests (`cargo nextest run --workspace --no-fail-fast` when cargo-nextest is installed,
//!   otherwise `cargo test --workspace --no-fail-fast`), the doc tests
//!   (`cargo test --workspace --doc`) and `cargo doc --workspace --no-deps` with
//!   `RUSTDOCFLAGS="-D warnings -D missing_docs"`. Each step is announced by a `==> <command>`
//!   line. The test step is streamed and also saved to `target/xtask/test.log`; the run ends by
//!   printing the test runner's summary line(s) again and a last line `N passed, N failed`.
//! - `cargo xtask bench [--reps N] [NAME...]` runs the Rust benchmark (`cargo bench --bench
//!   mpbench -- --serve`) and the CPython one (`python3 bench/cpython_bench.py --serve`) side by
//!   side, interleaving their repetitions with the bare-OS limit's (R C L R C L ..., N each,
//!   default 9), prints one line per figure (`name=<name> unit=<unit> rust=<v> cpython=<v>
//!   limit=<v> speedup=<x> speedup_spread=<min-max> of_limit=<y> of_limit_spread=<min-max>
//!   reps=<n>`) and writes the same numbers as a Markdown table to `target/bench/report.md`.
//! - `cargo xtask bench --sweep [--reps N]` measures pipe and queue throughput over message
//!   sizes 64 B … 64 MiB and queue throughput over 1, 2, 4, 8 producer/consumer processes the
//!   same way (default 3 repetitions), writes `target/bench/sweep.md` and draws the curves as
//!   SVG charts in `bench/charts/`.
//! - `cargo xtask fuzz NAME SECONDS [-- LIBFUZZER_ARGS...]` runs one cargo-fuzz target of
//!   `fuzz/` for that many seconds (`cargo +nightly fuzz run`, one process, with the project's
//!   timeout, memory and input-length limits), its corpus in `fuzz/corpus/NAME` and the committed
//!   `fuzz/seeds/NAME` and `fuzz/regressions/NAME` replayed first. It needs nightly and
//!   cargo-fuzz and says so when either is missing; `ci` needs neither.
//!   `cargo xtask fuzz --list` lists the targets.
//!
//! [cargo-xtask]: https://github.com/matklad/cargo-xtask

mod bench;
mod ci;
mod fuzz;
mod run;

use std::env;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use bench::bench;
use ci::ci;
use fuzz::fuzz;

/// An error already worth showing to the user; an empty message means it was already printed.
type Result<T> = std::result::Result<T, String>;

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  ci               fmt check, clippy, tests, doc tests and docs, as CI runs them
  bench [--reps N] [NAME...]
                   Rust vs CPython benchmarks, interleaved repetitions (all figures when no
                   NAME is given); writes target/bench/report.md
  bench --sweep [--reps N]
                   throughput curves over message sizes and process counts; writes
                   target/bench/sweep.md and the SVG charts in bench/charts/
  fuzz NAME SECONDS [-- ARGS...]
                   runs one cargo-fuzz target (nightly, cargo-fuzz) for SECONDS
  fuzz --list      lists the fuzz targets
  help             show this message";

fn main() -> ExitCode {
    let root = project_root();
    if let Err(e) = env::set_current_dir(&root) {
        eprintln!("xtask: error: cannot change to {}: {e}", root.display());
        return ExitCode::FAILURE;
    }
    let args: Vec<String> = env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") if args.len() == 1 => ci(),
        Some("ci") => Err(format!("`ci` takes no arguments\n{USAGE}")),
        Some("bench") => bench(&args[1..]),
        Some("fuzz") => fuzz(&args[1..]),
        Some("help" | "-h" | "--help") => {
            println!("{USAGE}");
            Ok(())
        }
        None => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
        Some(other) => Err(format!("unknown command `{other}`\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("xtask: error: {message}");
            }
            ExitCode::FAILURE
        }
    }
}

/// The workspace root: the parent of this crate's manifest directory.
fn project_root() -> PathBuf {
    let manifest_dir = env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    manifest_dir
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or(manifest_dir)
}

/// Cargo's target directory, honouring `CARGO_TARGET_DIR`.
fn target_dir() -> PathBuf {
    env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target"))
}
