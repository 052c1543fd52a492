//! `cargo xtask`: project automation for the multiprocessing workspace.
//!
//! This follows the [cargo-xtask] convention: `.cargo/config.toml` aliases `cargo xtask` to
//! `cargo run --package xtask --`, and this binary changes to the project root and dispatches on
//! its first argument. It depends on nothing but std, so it builds in a second.
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
//! - `cargo xtask bench [NAME...]` runs the Rust benchmark (`cargo bench --bench mpbench`) and
//!   the CPython one (`python3 bench/cpython_bench.py`), joins their medians per figure, prints
//!   one line per figure
//!   (`name=<name> unit=<unit> rust=<v> cpython=<v> limit=<v> speedup=<x> of_limit=<y>`) and
//!   writes the same numbers as a Markdown table to `target/bench/report.md`.
//!
//! [cargo-xtask]: https://github.com/matklad/cargo-xtask

use std::collections::HashMap;
use std::env;
use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;

/// An error already worth showing to the user; an empty message means it was already printed.
type Result<T> = std::result::Result<T, String>;

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  ci               fmt check, clippy, tests, doc tests and docs, as CI runs them
  bench [NAME...]  Rust vs CPython benchmarks (all figures when no NAME is given);
                   writes target/bench/report.md
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

// ---------------------------------------------------------------------------------------------
// Running commands
// ---------------------------------------------------------------------------------------------

/// One external command: what to run, how to show it, and extra environment.
struct Step {
    /// The executable actually started (for `cargo`, the `CARGO` that runs us, if any).
    program: OsString,
    /// The name shown in the `==>` line.
    shown: String,
    /// Arguments after the program.
    args: Vec<String>,
    /// Extra environment variables.
    envs: Vec<(String, String)>,
}

impl Step {
    /// A `cargo` invocation, using the same cargo that started xtask when known.
    fn cargo(args: &[&str]) -> Self {
        Step {
            program: env::var_os("CARGO").unwrap_or_else(|| "cargo".into()),
            shown: "cargo".to_owned(),
            args: args.iter().map(|&a| a.to_owned()).collect(),
            envs: Vec::new(),
        }
    }

    /// Any other program, looked up on `PATH`.
    fn program(program: &str, args: &[&str]) -> Self {
        Step {
            program: program.into(),
            shown: program.to_owned(),
            args: args.iter().map(|&a| a.to_owned()).collect(),
            envs: Vec::new(),
        }
    }

    /// Adds arguments.
    fn args<S: AsRef<str>>(mut self, args: &[S]) -> Self {
        self.args.extend(args.iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Adds an environment variable.
    fn env(mut self, key: &str, value: &str) -> Self {
        self.envs.push((key.to_owned(), value.to_owned()));
        self
    }

    /// The command line as shown to the user, shell-quoted where needed.
    fn display(&self) -> String {
        let mut words: Vec<String> = self
            .envs
            .iter()
            .map(|(k, v)| format!("{k}={}", shell_quote(v)))
            .collect();
        words.push(self.shown.clone());
        words.extend(self.args.iter().map(|a| shell_quote(a)));
        words.join(" ")
    }

    /// A `Command` ready to spawn.
    fn command(&self) -> Command {
        let mut command = Command::new(&self.program);
        command.args(&self.args);
        for (k, v) in &self.envs {
            command.env(k, v);
        }
        command
    }

    /// Prints the `==> <command>` line.
    fn announce(&self) {
        println!("==> {}", self.display());
        flush_stdout();
    }

    /// Runs the command with inherited stdio; an error if it cannot start or fails.
    fn run(&self) -> Result<()> {
        self.announce();
        let status = self
            .command()
            .status()
            .map_err(|e| format!("cannot run `{}`: {e}", self.display()))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("`{}` failed ({status})", self.display()))
        }
    }

    /// Runs the command, streaming its stdout and stderr to ours and also into `log`
    /// (whole lines, so the log keeps each line intact).
    fn run_tee(&self, log: &Path) -> Result<()> {
        self.announce();
        let file =
            File::create(log).map_err(|e| format!("cannot create {}: {e}", log.display()))?;
        let file = Arc::new(Mutex::new(file));
        let mut child = self
            .command()
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run `{}`: {e}", self.display()))?;
        let pumps = [
            child
                .stdout
                .take()
                .map(|out| pump(out, false, Arc::clone(&file))),
            child
                .stderr
                .take()
                .map(|err| pump(err, true, Arc::clone(&file))),
        ];
        let status = child.wait();
        for pump in pumps.into_iter().flatten() {
            let _ = pump.join();
        }
        let status = status.map_err(|e| format!("cannot wait for `{}`: {e}", self.display()))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("`{}` failed ({status})", self.display()))
        }
    }

    /// Runs the command with stdout captured line by line; each line is echoed to our stderr
    /// (as progress) and handed to `each_line`. Stderr is inherited.
    fn run_lines(&self, mut each_line: impl FnMut(&str)) -> Result<()> {
        self.announce();
        let mut child = self
            .command()
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run `{}`: {e}", self.display()))?;
        if let Some(out) = child.stdout.take() {
            for line in BufReader::new(out).split(b'\n') {
                let Ok(line) = line else { break };
                let line = String::from_utf8_lossy(&line);
                let line = line.trim_end_matches('\r');
                eprintln!("{line}");
                each_line(line);
            }
        }
        let status = child
            .wait()
            .map_err(|e| format!("cannot wait for `{}`: {e}", self.display()))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("`{}` failed ({status})", self.display()))
        }
    }
}

/// Copies `src` line by line to our stdout (or stderr) and to `log`.
fn pump<R: Read + Send + 'static>(
    src: R,
    to_stderr: bool,
    log: Arc<Mutex<File>>,
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let mut reader = BufReader::new(src);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
            // Terminal and log errors are not worth failing CI over; keep draining the pipe.
            if to_stderr {
                let mut err = io::stderr().lock();
                let _ = err.write_all(&line);
                let _ = err.flush();
            } else {
                let mut out = io::stdout().lock();
                let _ = out.write_all(&line);
                let _ = out.flush();
            }
            if let Ok(mut log) = log.lock() {
                let _ = log.write_all(&line);
            }
        }
    })
}

/// Runs a command quietly and says whether it exited successfully.
fn succeeds(program: &OsString, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs a command and returns its trimmed stdout, or `None` if it fails.
fn capture(program: &str, args: &[&str]) -> Option<String> {
    let output = Command::new(program)
        .args(args)
        .stderr(Stdio::null())
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

fn flush_stdout() {
    let _ = io::stdout().flush();
}

/// Quotes a word for display in a POSIX shell, only when it needs it.
fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if plain {
        word.to_owned()
    } else {
        format!("\"{}\"", word.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

// ---------------------------------------------------------------------------------------------
// cargo xtask ci
// ---------------------------------------------------------------------------------------------

/// `cargo xtask ci`: see the crate documentation.
fn ci() -> Result<()> {
    Step::cargo(&["fmt", "--all", "--", "--check"]).run()?;
    Step::cargo(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ])
    .run()?;

    let cargo = Step::cargo(&[]).program;
    let nextest = succeeds(&cargo, &["nextest", "--version"]);
    let tests = if nextest {
        Step::cargo(&["nextest", "run", "--workspace", "--no-fail-fast"])
    } else {
        println!("==> cargo-nextest not found; falling back to cargo test");
        Step::cargo(&["test", "--workspace", "--no-fail-fast"])
    };
    let log_dir = target_dir().join("xtask");
    fs::create_dir_all(&log_dir)
        .map_err(|e| format!("cannot create {}: {e}", log_dir.display()))?;
    let log = log_dir.join("test.log");
    let tested = tests.run_tee(&log);
    let summary = fs::read(&log)
        .map(|bytes| test_summary(&String::from_utf8_lossy(&bytes), nextest))
        .unwrap_or_default();
    if let Err(message) = tested {
        // End with the counts even when the tests fail, so the log's tail tells the story.
        eprintln!("xtask: error: {message}");
        print_summary(&tests, &summary);
        return Err(String::new());
    }

    Step::cargo(&["test", "--workspace", "--doc"]).run()?;
    Step::cargo(&["doc", "--workspace", "--no-deps"])
        .env("RUSTDOCFLAGS", "-D warnings -D missing_docs")
        .run()?;

    print_summary(&tests, &summary);
    Ok(())
}

/// What the test step reported: the lines to show again and the totals.
#[derive(Debug, Default, PartialEq)]
struct TestSummary {
    /// The runner's own summary lines, as printed (colour codes removed).
    lines: Vec<String>,
    /// Tests that passed.
    passed: u64,
    /// Tests that failed, timed out or could not be run.
    failed: u64,
}

fn print_summary(tests: &Step, summary: &TestSummary) {
    println!("==> test summary ({})", tests.display());
    if summary.lines.is_empty() {
        println!("(no test summary line found in the test output)");
    }
    for line in &summary.lines {
        println!("{line}");
    }
    println!("{} passed, {} failed", summary.passed, summary.failed);
    flush_stdout();
}

/// Finds the summary in a test log: nextest's last `Summary [...]` line (with the indented
/// per-test status lines that follow it), or every `test result:` line of `cargo test`.
fn test_summary(log: &str, nextest: bool) -> TestSummary {
    let lines: Vec<String> = log.lines().map(strip_ansi).collect();
    let mut summary = TestSummary::default();
    if nextest {
        let Some(start) = lines
            .iter()
            .rposition(|l| l.trim_start().starts_with("Summary ["))
        else {
            return summary;
        };
        summary.lines.push(lines[start].clone());
        summary.lines.extend(
            lines[start + 1..]
                .iter()
                .take_while(|l| l.starts_with("    ") && !l.trim().is_empty())
                .cloned(),
        );
        let (passed, failed) = count_results(&lines[start]);
        summary.passed = passed;
        summary.failed = failed;
    } else {
        for line in lines.iter().filter(|l| l.contains("test result:")) {
            let (passed, failed) = count_results(line);
            summary.passed += passed;
            summary.failed += failed;
            summary.lines.push(line.clone());
        }
    }
    summary
}

/// Counts `N passed` and `N failed` / `N timed out` / `N exec failed` in one summary line;
/// works for nextest (`2 passed, 1 failed`) and libtest (`2 passed; 1 failed;`).
fn count_results(line: &str) -> (u64, u64) {
    let words: Vec<&str> = line
        .split_whitespace()
        .map(|w| w.trim_matches(|c: char| ",;.:()".contains(c)))
        .collect();
    let (mut passed, mut failed) = (0, 0);
    for pair in words.windows(2) {
        let Ok(n) = pair[0].parse::<u64>() else {
            continue;
        };
        match pair[1] {
            "passed" => passed += n,
            "failed" | "timed" | "exec" => failed += n,
            _ => {}
        }
    }
    (passed, failed)
}

/// Removes ANSI escape sequences (`ESC [ ... final-byte`) from a line.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if ('\u{40}'..='\u{7e}').contains(&c) {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// cargo xtask bench
// ---------------------------------------------------------------------------------------------

/// `cargo xtask bench [NAME...]`: see the crate documentation.
fn bench(names: &[String]) -> Result<()> {
    let mut samples = Vec::new();
    let mut failures = Vec::new();

    let rust = Step::cargo(&["bench", "--bench", "mpbench", "--"]).args(names);
    if let Err(e) = rust.run_lines(|line| samples.extend(Sample::parse(line))) {
        eprintln!("xtask: error: {e}");
        failures.push(e);
    }

    // Without explicit names, ask CPython for exactly the figures the Rust side produced.
    let mut python_names: Vec<String> = names.to_vec();
    if python_names.is_empty() {
        for sample in &samples {
            if !python_names.contains(&sample.figure) {
                python_names.push(sample.figure.clone());
            }
        }
    }
    let python = env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let cpython = Step::program(&python, &["bench/cpython_bench.py"]).args(&python_names);
    if let Err(e) = cpython.run_lines(|line| samples.extend(Sample::parse(line))) {
        eprintln!("xtask: error: {e}");
        failures.push(e);
    }

    let rows = join_samples(&samples);
    println!("==> results");
    for row in &rows {
        println!("{}", row.line());
    }
    flush_stdout();

    let report_dir = target_dir().join("bench");
    let report = report_dir.join("report.md");
    fs::create_dir_all(&report_dir)
        .and_then(|()| fs::write(&report, markdown_report(&rows)))
        .map_err(|e| format!("cannot write {}: {e}", report.display()))?;
    eprintln!("report written to {}", report.display());

    if failures.is_empty() {
        Ok(())
    } else {
        Err(format!("{} benchmark step(s) failed", failures.len()))
    }
}

/// One `figure=<name> side=<side> unit=<unit> value=<number>` line.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    /// Figure name, e.g. `pipe_pingpong`.
    figure: String,
    /// `rust`, `cpython` or `limit`.
    side: String,
    /// Unit, e.g. `us` or `MB/s`.
    unit: String,
    /// The median measurement.
    value: f64,
}

impl Sample {
    /// Parses a sample line; any other line gives `None`.
    fn parse(line: &str) -> Option<Sample> {
        let fields: HashMap<&str, &str> = line
            .split_whitespace()
            .filter_map(|word| word.split_once('='))
            .collect();
        Some(Sample {
            figure: fields.get("figure")?.to_string(),
            side: fields.get("side")?.to_string(),
            unit: fields.get("unit")?.to_string(),
            value: fields.get("value")?.parse().ok()?,
        })
    }
}

/// All sides of one figure.
#[derive(Debug, Default, PartialEq)]
struct Row {
    /// Figure name.
    name: String,
    /// Unit of the figure (the Rust side's when the sides disagree).
    unit: String,
    /// Median of the Rust implementation.
    rust: Option<f64>,
    /// Median of CPython's `multiprocessing`.
    cpython: Option<f64>,
    /// Median of the bare-OS limit.
    limit: Option<f64>,
}

impl Row {
    /// Whether higher is better (`.../s`) rather than a time.
    fn is_rate(&self) -> bool {
        self.unit.ends_with("/s")
    }

    /// How many times better than CPython the Rust side is (> 1: better).
    fn speedup(&self) -> Option<f64> {
        let (rust, cpython) = (self.rust?, self.cpython?);
        finite(if self.is_rate() {
            rust / cpython
        } else {
            cpython / rust
        })
    }

    /// The fraction of the OS limit the Rust side reaches (1.0: at the limit).
    fn of_limit(&self) -> Option<f64> {
        let (rust, limit) = (self.rust?, self.limit?);
        finite(if self.is_rate() {
            rust / limit
        } else {
            limit / rust
        })
    }

    /// The formatted cells: name, unit, rust, cpython, limit, speedup, of_limit.
    fn cells(&self) -> [String; 7] {
        [
            self.name.clone(),
            self.unit.clone(),
            fmt_value(self.rust),
            fmt_value(self.cpython),
            fmt_value(self.limit),
            fmt_ratio(self.speedup()),
            fmt_ratio(self.of_limit()),
        ]
    }

    /// The `name=... of_limit=...` line.
    fn line(&self) -> String {
        let [name, unit, rust, cpython, limit, speedup, of_limit] = self.cells();
        format!(
            "name={name} unit={unit} rust={rust} cpython={cpython} limit={limit} \
             speedup={speedup} of_limit={of_limit}"
        )
    }
}

/// Joins samples per figure, in order of first appearance (the Rust bench runs first).
fn join_samples(samples: &[Sample]) -> Vec<Row> {
    let mut rows: Vec<Row> = Vec::new();
    for sample in samples {
        let index = match rows.iter().position(|r| r.name == sample.figure) {
            Some(i) => i,
            None => {
                rows.push(Row {
                    name: sample.figure.clone(),
                    unit: sample.unit.clone(),
                    ..Row::default()
                });
                rows.len() - 1
            }
        };
        let row = &mut rows[index];
        if row.unit != sample.unit {
            eprintln!(
                "xtask: warning: figure {} has unit {} on the {} side but {} elsewhere",
                sample.figure, sample.unit, sample.side, row.unit
            );
        }
        let slot = match sample.side.as_str() {
            "rust" => &mut row.rust,
            "cpython" => &mut row.cpython,
            "limit" => &mut row.limit,
            other => {
                eprintln!("xtask: warning: unknown side `{other}` ignored");
                continue;
            }
        };
        *slot = Some(sample.value);
    }
    rows
}

fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

/// A measurement with about four significant digits (`-` when missing).
fn fmt_value(value: Option<f64>) -> String {
    let Some(v) = value.and_then(finite) else {
        return "-".to_owned();
    };
    let magnitude = v.abs();
    if magnitude >= 1000.0 || magnitude == 0.0 {
        format!("{v:.0}")
    } else {
        // Truncation is intended: floor(log10) is a small integer for 0 < magnitude < 1000.
        #[allow(clippy::cast_possible_truncation)]
        let exponent = magnitude.log10().floor() as i32;
        let decimals = (3 - exponent).clamp(0, 9) as usize;
        format!("{v:.decimals$}")
    }
}

/// A ratio with three decimals (`-` when missing).
fn fmt_ratio(ratio: Option<f64>) -> String {
    ratio.map_or_else(|| "-".to_owned(), |r| format!("{r:.3}"))
}

/// The Markdown report: a header line describing the machine, then the table.
fn markdown_report(rows: &[Row]) -> String {
    let date = capture("date", &["-u"]).unwrap_or_else(|| "unknown date".to_owned());
    let uname = capture("uname", &["-srm"]).unwrap_or_else(|| "unknown OS".to_owned());
    let nproc = capture("nproc", &[]).unwrap_or_else(|| "?".to_owned());
    let cpu = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| cpu_model(&info))
        .unwrap_or_else(|| "unknown CPU".to_owned());

    let mut md = String::from("# multiprocessing benchmarks: Rust vs CPython\n\n");
    md.push_str(&format!("{date} · {uname} · {cpu} · nproc {nproc}\n\n"));
    md.push_str("| name | unit | rust | cpython | limit | speedup | of_limit |\n");
    md.push_str("| --- | --- | ---: | ---: | ---: | ---: | ---: |\n");
    for row in rows {
        md.push_str(&format!("| {} |\n", row.cells().join(" | ")));
    }
    md.push_str(
        "\nValues are medians. Units ending in `/s` are rates (higher is better); the others \
         are times (lower is better). `speedup` is how many times better than CPython the Rust \
         side is (> 1: better); `of_limit` is the fraction of the bare-OS limit it reaches \
         (1.0: at the limit). `-`: not measured.\n",
    );
    md
}

/// The first `model name` of `/proc/cpuinfo`.
fn cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key.trim() == "model name").then(|| value.trim().to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nextest_summary_is_found_and_counted() {
        let log = "\
        PASS [   0.001s] (1/3) nxt a
        FAIL [   0.149s] (3/3) nxt b
────────────
     Summary [   0.150s] 3 tests run: 2 passed (1 slow), 1 failed, 1 timed out, 1 skipped
        FAIL [   0.149s] (3/3) nxt b
error: test run failed
";
        let summary = test_summary(log, true);
        assert_eq!(summary.passed, 2);
        assert_eq!(summary.failed, 2);
        assert_eq!(summary.lines.len(), 2);
        assert!(summary.lines[0].starts_with("     Summary ["));
    }

    #[test]
    fn cargo_test_results_are_summed() {
        let log = "\
test result: ok. 5 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s
running 0 tests
test result: FAILED. 2 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.16s
";
        let summary = test_summary(log, false);
        assert_eq!((summary.passed, summary.failed), (7, 1));
        assert_eq!(summary.lines.len(), 2);
    }

    #[test]
    fn ansi_codes_are_stripped() {
        assert_eq!(
            strip_ansi("\u{1b}[32;1m     Summary\u{1b}[0m [ 1s]"),
            "     Summary [ 1s]"
        );
    }

    #[test]
    fn sample_lines_parse() {
        let s = Sample::parse("figure=pipe_1mib side=rust unit=MB/s value=1234.5").unwrap();
        assert_eq!(s.figure, "pipe_1mib");
        assert_eq!(s.side, "rust");
        assert_eq!(s.unit, "MB/s");
        assert_eq!(s.value, 1234.5);
        assert_eq!(Sample::parse("Compiling multiprocessing v0.1.0"), None);
        assert_eq!(Sample::parse("figure=x side=rust unit=us value=abc"), None);
    }

    #[test]
    fn rates_and_times_compare_the_right_way() {
        let samples: Vec<Sample> = [
            "figure=process_fork side=rust unit=us value=100",
            "figure=process_fork side=limit unit=us value=80",
            "figure=pipe_pingpong side=rust unit=round_trips/s value=50000",
            "figure=process_fork side=cpython unit=us value=250",
            "figure=pipe_pingpong side=cpython unit=round_trips/s value=25000",
            "figure=python_only side=cpython unit=us value=1",
        ]
        .iter()
        .filter_map(|l| Sample::parse(l))
        .collect();
        let rows = join_samples(&samples);
        assert_eq!(
            rows[0].line(),
            "name=process_fork unit=us rust=100.0 cpython=250.0 limit=80.00 \
             speedup=2.500 of_limit=0.800"
        );
        assert_eq!(
            rows[1].line(),
            "name=pipe_pingpong unit=round_trips/s rust=50000 cpython=25000 limit=- \
             speedup=2.000 of_limit=-"
        );
        assert_eq!(
            rows[2].line(),
            "name=python_only unit=us rust=- cpython=1.000 limit=- speedup=- of_limit=-"
        );
    }

    #[test]
    fn values_keep_about_four_significant_digits() {
        assert_eq!(fmt_value(Some(123_456.7)), "123457");
        assert_eq!(fmt_value(Some(123.456)), "123.5");
        assert_eq!(fmt_value(Some(1.23456)), "1.235");
        assert_eq!(fmt_value(Some(0.0123456)), "0.01235");
        assert_eq!(fmt_value(Some(0.0)), "0");
        assert_eq!(fmt_value(None), "-");
        assert_eq!(fmt_value(Some(f64::NAN)), "-");
    }

    #[test]
    fn cpu_model_is_read() {
        let info = "processor\t: 0\nmodel name\t: AMD EPYC 7B13\nflags\t: fpu\n";
        assert_eq!(cpu_model(info).as_deref(), Some("AMD EPYC 7B13"));
    }
}
