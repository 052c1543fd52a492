//! `mpbench`: the Rust side of `cargo xtask bench` (a `harness = false` benchmark binary).
//!
//! ```text
//! cargo bench --bench mpbench -- [NAME...]
//! ```
//!
//! For each requested figure (default: every name in `rust_side::figures()`), runs the Rust
//! implementation [`REPS`] times and prints the median as
//!
//! ```text
//! figure=<name> side=rust unit=<unit> value=<median>
//! ```
//!
//! then, when the operating system offers a comparable bare-syscall baseline (`limits.rs`),
//! runs that [`REPS`] times too and prints `figure=<name> side=limit unit=<unit> value=<median>`.
//! Units ending in `/s` are rates (higher is better); others are times (lower is better).
//! `cargo xtask bench` joins these lines with `bench/cpython_bench.py`'s.
//!
//! Arguments starting with `--` (cargo passes `--bench`) are ignored, except that a first
//! argument `--noop` makes the binary exit at once (the `process_spawn` limit spawns this very
//! executable that way), and `--serve` turns the binary into the Rust side of an interleaved
//! run: it reads requests `<side> <name>` (`side` is `rust` or `limit`) from stdin, one per
//! line, measures one repetition of each and answers with one line, the sample above or
//! `figure=<name> side=<side> unknown`, until stdin closes. `cargo xtask bench` alternates
//! these requests with the CPython side's, so both see the same conditions. `--list` prints the
//! figure names, one per line; `--exe` prints the path of this executable (so that `cargo xtask
//! bench` can start a fresh server for each figure without going through cargo every time).

mod connection_side;
mod limits;
mod manager_side;
mod pool_side;
mod rust_side;
mod shared_side;
mod sweep_side;

/// Repetitions per figure and side; the median is reported.
const REPS: usize = 5;

fn main() {
    let mut args = std::env::args().skip(1).peekable();
    if args.peek().map(String::as_str) == Some("--noop") {
        std::process::exit(0);
    }
    if std::env::args().any(|a| a == "--list") {
        for name in rust_side::figures() {
            println!("{name}");
        }
        return;
    }
    if std::env::args().any(|a| a == "--exe") {
        match std::env::current_exe() {
            Ok(path) => println!("{}", path.display()),
            Err(e) => {
                eprintln!("mpbench: cannot find my own executable: {e}");
                std::process::exit(1);
            }
        }
        return;
    }
    if std::env::args().any(|a| a == "--serve") {
        serve();
        return;
    }
    let requested: Vec<String> = args.filter(|a| !a.starts_with("--")).collect();
    let names: Vec<String> = if requested.is_empty() {
        rust_side::figures()
            .iter()
            .map(|&name| name.to_owned())
            .collect()
    } else {
        requested
    };

    for name in &names {
        let rust = median_of(|| rust_side::run(name));
        if let Some((unit, value)) = rust {
            println!("figure={name} side=rust unit={unit} value={value:.3}");
        }
        let limit = median_of(|| limits::run(name));
        if let Some((unit, value)) = limit {
            println!("figure={name} side=limit unit={unit} value={value:.3}");
        }
        if rust.is_none() && limit.is_none() {
            eprintln!("mpbench: unknown figure {name:?}, skipped");
        }
    }
}

/// Runs `measure` [`REPS`] times and returns its unit and the median value, or `None` when the
/// figure is unknown (the first call returns `None`).
fn median_of(
    mut measure: impl FnMut() -> Option<(&'static str, f64)>,
) -> Option<(&'static str, f64)> {
    let (unit, first) = measure()?;
    let mut values = vec![first];
    for _ in 1..REPS {
        let (again, value) = measure()?;
        assert_eq!(again, unit, "a figure changed its unit between repetitions");
        values.push(value);
    }
    values.sort_by(f64::total_cmp);
    Some((unit, values[values.len() / 2]))
}

/// The `--serve` loop: one repetition per request line, one answer line each.
fn serve() {
    use std::io::{BufRead, Write};
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { return };
        let Some((side, name)) = line.trim().split_once(' ') else {
            continue;
        };
        let measured = match side {
            "rust" => rust_side::run(name),
            "limit" => limits::run(name),
            _ => None,
        };
        let answer = match measured {
            Some((unit, value)) => {
                format!("figure={name} side={side} unit={unit} value={value:.3}")
            }
            None => format!("figure={name} side={side} unknown"),
        };
        let mut out = std::io::stdout().lock();
        if writeln!(out, "{answer}")
            .and_then(|()| out.flush())
            .is_err()
        {
            return;
        }
    }
}
