//! Scenarios: a test that changes process-wide state, needs a process of its own or kills its
//! parent re-executes its own test binary to run one `scenario_*` test there.
//!
//! The calling test runs [`run_scenario`] (or [`Scenario::start`]) with the name of a test in
//! the same file; that test begins with `if !in_scenario("scenario_x") { return; }`, so it
//! does nothing in an ordinary run, under `cargo nextest` (a process per test) and under
//! `cargo test` (threads of one process) alike. The scenario reports with [`say`]
//! (`KEY=[value]` lines, because libtest prints its own lines around them) and the caller
//! reads them back with [`markers`].

use std::io::{Read, Write};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The environment variable naming the scenario a re-executed test binary runs.
const SCENARIO_VAR: &str = "MP_TEST_SCENARIO";

/// True in a process re-executed to run the scenario test `name`.
pub fn in_scenario(name: &str) -> bool {
    std::env::var(SCENARIO_VAR).as_deref() == Ok(name)
}

/// Prints a tagged line (`KEY=[value]`) to stdout, flushed.
pub fn say(key: &str, value: impl std::fmt::Display) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "\n{key}=[{value}]");
    let _ = out.flush();
}

/// Every value tagged `key` in `out`, in order.
pub fn markers(out: &str, key: &str) -> Vec<String> {
    let tag = format!("{key}=[");
    let mut found = Vec::new();
    let mut rest = out;
    while let Some(at) = rest.find(&tag) {
        rest = &rest[at + tag.len()..];
        let end = rest.find(']').unwrap_or(rest.len());
        found.push(rest[..end].to_string());
        rest = &rest[end..];
    }
    found
}

/// A collected output stream of a scenario process.
#[derive(Default)]
struct Stream {
    bytes: Mutex<Vec<u8>>,
    eof: AtomicBool,
}

impl Stream {
    /// Starts a thread that reads `from` to its end.
    fn collect(mut from: impl Read + Send + 'static) -> Arc<Stream> {
        let stream = Arc::new(Stream::default());
        let s = stream.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                match from.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => s.bytes.lock().unwrap().extend_from_slice(&buf[..n]),
                }
            }
            s.eof.store(true, Ordering::SeqCst);
        });
        stream
    }

    /// What arrived so far.
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes.lock().unwrap()).into_owned()
    }
}

/// This test binary, re-executed to run one scenario; killed and reaped when dropped.
pub struct Scenario {
    name: String,
    child: Child,
    exited: Option<ExitStatus>,
    stdout: Arc<Stream>,
    stderr: Arc<Stream>,
}

impl Scenario {
    /// Re-executes this test binary to run the scenario test `name`, with `env` added to its
    /// environment; its stdout and stderr are collected as they come.
    pub fn start(name: &str, env: &[(&str, &str)]) -> Scenario {
        let exe = std::env::current_exe().expect("current_exe");
        let mut cmd = Command::new(exe);
        cmd.args(["--exact", name, "--nocapture", "--test-threads=1", "-q"])
            .env(SCENARIO_VAR, name)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("re-execute the test binary");
        let stdout = Stream::collect(child.stdout.take().unwrap());
        let stderr = Stream::collect(child.stderr.take().unwrap());
        Scenario {
            name: name.to_string(),
            child,
            exited: None,
            stdout,
            stderr,
        }
    }

    /// What the scenario has printed to stdout so far.
    pub fn stdout(&self) -> String {
        self.stdout.text()
    }

    /// Everything the scenario printed, for failure messages.
    pub fn report(&self) -> String {
        format!(
            "scenario {} (exit status {:?})\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.name,
            self.exited,
            self.stdout.text(),
            self.stderr.text()
        )
    }

    /// Waits for the first value tagged `key` on stdout; kills the scenario and fails the test
    /// if none comes within `timeout` or the scenario ends without one.
    pub fn wait_for_marker(&mut self, key: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = markers(&self.stdout(), key).into_iter().next() {
                return v;
            }
            if self.exited.is_none() {
                self.exited = self.child.try_wait().expect("try_wait");
            }
            if Instant::now() >= deadline
                || (self.exited.is_some() && self.stdout.eof.load(Ordering::SeqCst))
            {
                self.kill();
                panic!("no {key}=[..] from the scenario\n{}", self.report());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits for the scenario process to exit; kills it and fails after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exited {
                return status;
            }
            self.exited = self.child.try_wait().expect("try_wait");
            if self.exited.is_none() {
                if Instant::now() >= deadline {
                    self.kill();
                    panic!(
                        "the scenario did not exit within {timeout:?}\n{}",
                        self.report()
                    );
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }

    /// Waits until both output streams reach EOF (every process holding them is gone) or
    /// `timeout` passes.
    pub fn wait_eof(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.stdout.eof.load(Ordering::SeqCst) && self.stderr.eof.load(Ordering::SeqCst) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    }

    /// SIGKILLs the scenario process and reaps it.
    pub fn kill(&mut self) {
        if self.exited.is_none() {
            let _ = self.child.kill();
            self.exited = self.child.wait().ok();
        }
    }
}

impl Drop for Scenario {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs scenario `name` to its end and returns its stdout; fails if it fails or hangs.
pub fn run_scenario(name: &str) -> String {
    run_scenario_with(name, &[])
}

/// [`run_scenario`] with `env` added to the scenario's environment (say, a malloc tunable that
/// makes a memory measurement deterministic).
pub fn run_scenario_with(name: &str, env: &[(&str, &str)]) -> String {
    let mut s = Scenario::start(name, env);
    let status = s.wait_exit(Duration::from_secs(60));
    // Children that inherited the pipes may outlive the scenario; give them a moment, then
    // take what arrived (everything the scenario process itself wrote is in by now, or nearly).
    if !s.wait_eof(Duration::from_secs(5)) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(status.success(), "{}", s.report());
    s.stdout()
}
