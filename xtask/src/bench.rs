//! `cargo xtask bench [NAME...]`: runs the Rust and the CPython benchmarks, joins their medians
//! per figure, prints one line per figure and writes `target/bench/report.md`.

use std::collections::HashMap;
use std::env;
use std::fs;

use crate::run::{capture, flush_stdout, Step};
use crate::{target_dir, Result};

/// `cargo xtask bench [NAME...]`: see the crate documentation.
pub(crate) fn bench(names: &[String]) -> Result<()> {
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
