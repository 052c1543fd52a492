//! `cargo xtask bench [--reps N] [--sweep] [NAME...]`: Rust, CPython and the bare-OS limit,
//! measured side by side.
//!
//! Both benchmark programs run as servers (`mpbench --serve`, `cpython_bench.py --serve`) that
//! measure one repetition per request; each figure gets a fresh pair of them, so that what one
//! figure leaves behind in a process (a grown heap, threads, caches) does not weigh on the next.
//! For each figure xtask asks each side for one warm-up repetition it does not count, then for
//! a Rust repetition, then a CPython one, then a limit one, and again (`R C L R C L ...`), so
//! that the two sides of every ratio see the same machine, seconds apart rather than minutes.
//! Each line reports the medians of the sides, the median of the per-repetition ratios
//! (`speedup`, `of_limit`) and their spread (min–max over the repetitions), and the number of
//! repetitions. The report goes to `target/bench/report.md`.
//!
//! `--sweep` measures the curves of `benches/sweep_side.rs` (pipe and queue throughput over
//! message sizes, queue throughput over process counts) the same way and draws them as SVG
//! charts in `bench/charts/`, which the README shows.

use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout};

use crate::run::{capture, flush_stdout, Step};
use crate::{target_dir, Result};

mod chart;

/// Repetitions per figure and side by default. On a shared 2-core VM, 27 did not make two runs
/// agree more often than 9 (the machine's own speed moves between runs, see the README), so
/// the default stays at what a run of a few minutes affords.
const DEFAULT_REPS: usize = 9;
/// Repetitions per point of a sweep by default.
const DEFAULT_SWEEP_REPS: usize = 3;

/// `cargo xtask bench`: see the module documentation.
pub(crate) fn bench(args: &[String]) -> Result<()> {
    let options = Options::parse(args)?;
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let names = if options.sweep {
        sweep_names()
    } else if options.names.is_empty() {
        list_figures()?
    } else {
        options.names.clone()
    };
    let reps = options.reps.unwrap_or(if options.sweep {
        DEFAULT_SWEEP_REPS
    } else {
        DEFAULT_REPS
    });

    // Each figure gets a fresh pair of servers, so that no figure's cost depends on the ones
    // measured before it in the same process (CPython's `pool_startup` was 5 ms in a fresh
    // interpreter and 6-10 ms right after `pool_apply_async_10k` had grown its heap).
    let exe = rust_server_exe()?;
    let rust_step = || Step::program(&exe, &["--serve"]);
    let cpython_step = || Step::program(&python, &["bench/cpython_bench.py", "--serve"]);
    println!(
        "==> each figure: a fresh `{}` and a fresh `{}`",
        rust_step().display(),
        cpython_step().display()
    );
    flush_stdout();

    let mut rows = Vec::new();
    for name in &names {
        let mut rust = Server::start(rust_step(), "rust")?;
        let mut cpython = Server::start(cpython_step(), "cpython")?;
        let row = measure(name, reps, &mut rust, &mut cpython)?;
        rust.finish();
        cpython.finish();
        println!("{}", row.line());
        flush_stdout();
        rows.push(row);
    }

    let report_dir = target_dir().join("bench");
    let report = report_dir.join(if options.sweep {
        "sweep.md"
    } else {
        "report.md"
    });
    let samples = report_dir.join(if options.sweep {
        "sweep_samples.csv"
    } else {
        "samples.csv"
    });
    fs::create_dir_all(&report_dir)
        .and_then(|()| fs::write(&report, markdown_report(&rows, reps)))
        .and_then(|()| fs::write(&samples, samples_csv(&rows)))
        .map_err(|e| format!("cannot write {}: {e}", report.display()))?;
    eprintln!(
        "report written to {} (every repetition in {})",
        report.display(),
        samples.display()
    );
    if options.sweep {
        for path in chart::draw_all(&rows)? {
            eprintln!("chart written to {path}");
        }
    }
    Ok(())
}

/// Every repetition of every figure, one line each: `name,unit,rep,rust,cpython,limit` (an
/// empty field where that side has no such figure).
fn samples_csv(rows: &[Row]) -> String {
    let mut out = String::from("name,unit,rep,rust,cpython,limit\n");
    for row in rows {
        for (i, rep) in row.reps.iter().enumerate() {
            let cell = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
            let _ = writeln!(
                out,
                "{},{},{},{},{},{}",
                row.name,
                row.unit,
                i,
                cell(rep[0]),
                cell(rep[1]),
                cell(rep[2])
            );
        }
    }
    out
}

/// The command line of `cargo xtask bench`.
#[derive(Debug, Default, PartialEq)]
struct Options {
    reps: Option<usize>,
    sweep: bool,
    names: Vec<String>,
}

impl Options {
    fn parse(args: &[String]) -> Result<Options> {
        let mut options = Options::default();
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--reps" => {
                    let n = args
                        .next()
                        .and_then(|n| n.parse::<usize>().ok())
                        .filter(|&n| n > 0)
                        .ok_or("--reps needs a positive number")?;
                    options.reps = Some(n);
                }
                "--sweep" => options.sweep = true,
                flag if flag.starts_with("--") => {
                    return Err(format!("unknown option {flag} (try --reps N, --sweep)"))
                }
                name => options.names.push(name.to_owned()),
            }
        }
        if options.sweep && !options.names.is_empty() {
            return Err("--sweep measures its own figures; give no names with it".to_owned());
        }
        Ok(options)
    }
}

/// The default figure list: what the Rust side knows (`mpbench --list`).
fn list_figures() -> Result<Vec<String>> {
    let mut names = Vec::new();
    Step::cargo(&["bench", "--bench", "mpbench", "--", "--list"])
        .run_lines(|line| names.push(line.trim().to_owned()))?;
    names.retain(|n| !n.is_empty());
    Ok(names)
}

/// The path of the Rust benchmark executable (`mpbench --exe`, built by cargo if needed).
fn rust_server_exe() -> Result<String> {
    let mut exe = None;
    Step::cargo(&["bench", "--bench", "mpbench", "--", "--exe"])
        .run_lines(|line| exe = Some(line.trim().to_owned()))?;
    exe.filter(|e| !e.is_empty())
        .ok_or_else(|| "`mpbench --exe` printed no path".to_owned())
}

/// The points of `--sweep`, in chart order (keep in step with `benches/sweep_side.rs`).
fn sweep_names() -> Vec<String> {
    let sizes: Vec<usize> = (0..11).map(|i| 64usize << (2 * i)).collect();
    let mut names = Vec::new();
    for kind in ["sweep_pipe", "sweep_queue"] {
        names.extend(sizes.iter().map(|s| format!("{kind}:{s}")));
    }
    names.extend(
        [1, 2, 4, 8]
            .iter()
            .map(|p| format!("sweep_queue_procs:{p}")),
    );
    names
}

/// One benchmark program in `--serve` mode.
struct Server {
    name: &'static str,
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Server {
    fn start(step: Step, name: &'static str) -> Result<Server> {
        let mut child = step.spawn_server()?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(format!("the {name} benchmark has no pipes"));
        };
        Ok(Server {
            name,
            child,
            stdin: Some(stdin),
            stdout: BufReader::new(stdout),
        })
    }

    /// Asks for one repetition; `None` when the server does not know the figure.
    fn ask(&mut self, request: &str) -> Result<Option<Sample>> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| format!("the {} benchmark is closed", self.name))?;
        writeln!(stdin, "{request}")
            .and_then(|()| stdin.flush())
            .map_err(|e| format!("the {} benchmark went away: {e}", self.name))?;
        let mut line = String::new();
        match self.stdout.read_line(&mut line) {
            Ok(0) => Err(format!(
                "the {} benchmark ended during `{request}` (see its output above)",
                self.name
            )),
            Ok(_) if line.trim_end().ends_with(" unknown") => Ok(None),
            Ok(_) => Sample::parse(line.trim_end())
                .map(Some)
                .ok_or_else(|| format!("the {} benchmark said {line:?}", self.name)),
            Err(e) => Err(format!("cannot read the {} benchmark: {e}", self.name)),
        }
    }

    /// Closes its stdin (it then exits) and waits for it.
    fn finish(mut self) {
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.stdin.is_some() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Measures `reps` interleaved repetitions of figure `name`.
fn measure(name: &str, reps: usize, rust: &mut Server, cpython: &mut Server) -> Result<Row> {
    let mut row = Row {
        name: name.to_owned(),
        ..Row::default()
    };
    // A warm-up repetition of each side, not counted: the servers are fresh, and the first
    // repetition in a process pays for its first page faults and lazy set-ups (it ran 2-3
    // times slower than the others on the Rust side of the Pool figures).
    let mut ask_rust = rust.ask(&format!("rust {name}"))?.is_some();
    let mut ask_cpython = cpython.ask(name)?.is_some();
    let mut ask_limit = rust.ask(&format!("limit {name}"))?.is_some();
    if !(ask_rust || ask_cpython || ask_limit) {
        eprintln!("xtask: warning: no side knows figure {name:?}, skipped");
        return Ok(row);
    }
    for _ in 0..reps {
        let mut pair: [Option<Sample>; 3] = [None, None, None];
        if ask_rust {
            pair[0] = rust.ask(&format!("rust {name}"))?;
            ask_rust = pair[0].is_some();
        }
        if ask_cpython {
            pair[1] = cpython.ask(name)?;
            ask_cpython = pair[1].is_some();
        }
        if ask_limit {
            pair[2] = rust.ask(&format!("limit {name}"))?;
            ask_limit = pair[2].is_some();
        }
        row.add(pair);
    }
    Ok(row)
}

/// One `figure=<name> side=<side> unit=<unit> value=<number>` line.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    /// `rust`, `cpython` or `limit`.
    side: String,
    /// Unit, e.g. `us` or `MB/s`.
    unit: String,
    /// The measurement.
    value: f64,
}

impl Sample {
    /// Parses a sample line; any other line gives `None`.
    fn parse(line: &str) -> Option<Sample> {
        let fields: std::collections::HashMap<&str, &str> = line
            .split_whitespace()
            .filter_map(|word| word.split_once('='))
            .collect();
        fields.get("figure")?;
        Some(Sample {
            side: fields.get("side")?.to_string(),
            unit: fields.get("unit")?.to_string(),
            value: fields.get("value")?.parse().ok()?,
        })
    }
}

/// Every repetition of one figure.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Row {
    /// Figure name.
    pub(crate) name: String,
    /// Unit of the figure (the first side's).
    pub(crate) unit: String,
    /// Per repetition: Rust, CPython, limit (each absent when that side has no such figure).
    pub(crate) reps: Vec<[Option<f64>; 3]>,
}

impl Row {
    fn add(&mut self, rep: [Option<Sample>; 3]) {
        for sample in rep.iter().flatten() {
            if self.unit.is_empty() {
                self.unit = sample.unit.clone();
            } else if self.unit != sample.unit {
                eprintln!(
                    "xtask: warning: figure {} has unit {} on the {} side but {} elsewhere",
                    self.name, sample.unit, sample.side, self.unit
                );
            }
        }
        self.reps.push(rep.map(|s| s.map(|s| s.value)));
    }

    /// Whether higher is better (`.../s`) rather than a time.
    fn is_rate(&self) -> bool {
        self.unit.ends_with("/s")
    }

    /// The median of one side (0: Rust, 1: CPython, 2: limit).
    pub(crate) fn median(&self, side: usize) -> Option<f64> {
        median(self.reps.iter().filter_map(|r| r[side]).collect())
    }

    /// Per repetition, how many times better side `a` is than side `b` (> 1: better).
    fn ratios(&self, a: usize, b: usize) -> Vec<f64> {
        self.reps
            .iter()
            .filter_map(|r| {
                let (x, y) = (r[a]?, r[b]?);
                finite(if self.is_rate() { x / y } else { y / x })
            })
            .collect()
    }

    /// Median and (min, max) of the Rust/CPython ratios.
    fn speedup(&self) -> Option<(f64, f64, f64)> {
        spread(self.ratios(0, 1))
    }

    /// Median and (min, max) of the Rust/limit ratios.
    fn of_limit(&self) -> Option<(f64, f64, f64)> {
        spread(self.ratios(0, 2))
    }

    /// The formatted cells: name, unit, rust, cpython, limit, speedup, its spread, of_limit,
    /// its spread.
    fn cells(&self) -> [String; 9] {
        let (speedup, speedup_spread) = fmt_spread(self.speedup());
        let (of_limit, of_limit_spread) = fmt_spread(self.of_limit());
        [
            self.name.clone(),
            self.unit.clone(),
            fmt_value(self.median(0)),
            fmt_value(self.median(1)),
            fmt_value(self.median(2)),
            speedup,
            speedup_spread,
            of_limit,
            of_limit_spread,
        ]
    }

    /// The `name=... reps=...` line.
    fn line(&self) -> String {
        let [name, unit, rust, cpython, limit, speedup, speedup_spread, of_limit, of_limit_spread] =
            self.cells();
        format!(
            "name={name} unit={unit} rust={rust} cpython={cpython} limit={limit} \
             speedup={speedup} speedup_spread={speedup_spread} of_limit={of_limit} \
             of_limit_spread={of_limit_spread} reps={}",
            self.reps.len()
        )
    }
}

fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    Some(if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    })
}

fn spread(values: Vec<f64>) -> Option<(f64, f64, f64)> {
    let min = values.iter().copied().reduce(f64::min)?;
    let max = values.iter().copied().reduce(f64::max)?;
    Some((median(values)?, min, max))
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

/// A ratio with three decimals, and its spread as `min-max` (`-` when missing).
fn fmt_spread(ratio: Option<(f64, f64, f64)>) -> (String, String) {
    ratio.map_or_else(
        || ("-".to_owned(), "-".to_owned()),
        |(m, lo, hi)| (format!("{m:.3}"), format!("{lo:.2}-{hi:.2}")),
    )
}

/// The Markdown report: a header line describing the machine and the run, then the table.
fn markdown_report(rows: &[Row], reps: usize) -> String {
    let date = capture("date", &["-u"]).unwrap_or_else(|| "unknown date".to_owned());
    let uname = capture("uname", &["-srm"]).unwrap_or_else(|| "unknown OS".to_owned());
    let nproc = capture("nproc", &[]).unwrap_or_else(|| "?".to_owned());
    let cpu = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| cpu_model(&info))
        .unwrap_or_else(|| "unknown CPU".to_owned());

    let mut md = String::from("# multiprocessing benchmarks: Rust vs CPython\n\n");
    let _ = writeln!(
        md,
        "{date} · {uname} · {cpu} · nproc {nproc} · {reps} interleaved repetitions per figure\n"
    );
    md.push_str(
        "| name | unit | rust | cpython | limit | speedup | (min–max) | of_limit | (min–max) |\n",
    );
    md.push_str("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    for row in rows {
        let _ = writeln!(md, "| {} |", row.cells().join(" | "));
    }
    md.push_str(
        "\nEach figure is measured by a fresh Rust server and a fresh CPython server, each \
         of which first measures one warm-up repetition that is not counted; then their \
         repetitions are interleaved (R C L R C L ...). Values are \
         medians over the repetitions; `speedup` (how many times better than CPython, > 1: \
         better) and `of_limit` (the fraction of the bare-OS limit reached, 1.0: at the limit) \
         are medians of the per-repetition ratios, with their min–max spread. Units ending in \
         `/s` are rates (higher is better); the others are times (lower is better). `-`: not \
         measured.\n",
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

    fn row(name: &str, unit: &str, reps: &[[Option<f64>; 3]]) -> Row {
        Row {
            name: name.to_owned(),
            unit: unit.to_owned(),
            reps: reps.to_vec(),
        }
    }

    #[test]
    fn sample_lines_parse() {
        let s = Sample::parse("figure=pipe_1mib side=rust unit=MB/s value=1234.5").unwrap();
        assert_eq!(s.side, "rust");
        assert_eq!(s.unit, "MB/s");
        assert_eq!(s.value, 1234.5);
        assert_eq!(Sample::parse("Compiling multiprocessing v0.1.0"), None);
        assert_eq!(Sample::parse("figure=x side=rust unit=us value=abc"), None);
    }

    #[test]
    fn ratios_are_per_repetition_and_compare_the_right_way() {
        // Times: CPython 250, 300, 200 against Rust 100, 100, 100 → 2.5, 3.0, 2.0.
        let fork = row(
            "process_fork",
            "us",
            &[
                [Some(100.0), Some(250.0), Some(80.0)],
                [Some(100.0), Some(300.0), Some(90.0)],
                [Some(100.0), Some(200.0), Some(70.0)],
            ],
        );
        assert_eq!(
            fork.line(),
            "name=process_fork unit=us rust=100.0 cpython=250.0 limit=80.00 speedup=2.500 \
             speedup_spread=2.00-3.00 of_limit=0.800 of_limit_spread=0.70-0.90 reps=3"
        );
        // Rates: higher is better; a missing side gives `-`.
        let ping = row(
            "pipe_pingpong",
            "round_trips/s",
            &[
                [Some(50000.0), Some(25000.0), None],
                [Some(40000.0), Some(10000.0), None],
            ],
        );
        assert_eq!(
            ping.line(),
            "name=pipe_pingpong unit=round_trips/s rust=45000 cpython=17500 limit=- \
             speedup=3.000 speedup_spread=2.00-4.00 of_limit=- of_limit_spread=- reps=2"
        );
    }

    #[test]
    fn options_parse() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            Options::parse(&args(&["--reps", "3", "pipe_1mib"])).unwrap(),
            Options {
                reps: Some(3),
                sweep: false,
                names: vec!["pipe_1mib".to_owned()]
            }
        );
        assert!(Options::parse(&args(&["--reps", "0"])).is_err());
        assert!(Options::parse(&args(&["--sweep", "x"])).is_err());
        assert!(Options::parse(&args(&["--bogus"])).is_err());
        assert_eq!(sweep_names().len(), 26);
        assert_eq!(sweep_names()[0], "sweep_pipe:64");
        assert_eq!(sweep_names()[10], format!("sweep_pipe:{}", 64usize << 20));
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
