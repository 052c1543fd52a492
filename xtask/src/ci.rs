//! `cargo xtask ci`: fmt check, clippy, tests (tee'd into `target/xtask/test.log`), doc tests
//! and docs, then the test runner's summary again.

use std::fs;

use crate::run::{flush_stdout, succeeds, Step};
use crate::{target_dir, Result};

/// `cargo xtask ci`: see the crate documentation.
pub(crate) fn ci() -> Result<()> {
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
}
