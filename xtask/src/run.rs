//! Running external commands: the `Step` type (announce, run, tee into a log, read line by
//! line) and small helpers (quiet runs, captured output, shell quoting for display).

use std::env;
use std::ffi::OsString;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;

use crate::Result;

/// One external command: what to run, how to show it, and extra environment.
pub(crate) struct Step {
    /// The executable actually started (for `cargo`, the `CARGO` that runs us, if any).
    pub(crate) program: OsString,
    /// The name shown in the `==>` line.
    shown: String,
    /// Arguments after the program.
    args: Vec<String>,
    /// Extra environment variables.
    envs: Vec<(String, String)>,
}

impl Step {
    /// A `cargo` invocation, using the same cargo that started xtask when known.
    pub(crate) fn cargo(args: &[&str]) -> Self {
        Step {
            program: env::var_os("CARGO").unwrap_or_else(|| "cargo".into()),
            shown: "cargo".to_owned(),
            args: args.iter().map(|&a| a.to_owned()).collect(),
            envs: Vec::new(),
        }
    }

    /// Any other program, looked up on `PATH`.
    pub(crate) fn program(program: &str, args: &[&str]) -> Self {
        Step {
            program: program.into(),
            shown: program.to_owned(),
            args: args.iter().map(|&a| a.to_owned()).collect(),
            envs: Vec::new(),
        }
    }

    /// Adds arguments.
    pub(crate) fn args<S: AsRef<str>>(mut self, args: &[S]) -> Self {
        self.args.extend(args.iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Adds an environment variable.
    pub(crate) fn env(mut self, key: &str, value: &str) -> Self {
        self.envs.push((key.to_owned(), value.to_owned()));
        self
    }

    /// The command line as shown to the user, shell-quoted where needed.
    pub(crate) fn display(&self) -> String {
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
    pub(crate) fn run(&self) -> Result<()> {
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
    pub(crate) fn run_tee(&self, log: &Path) -> Result<()> {
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

    /// Starts the command as a server: stdin and stdout piped to us, stderr inherited. It
    /// prints no `==>` line (a benchmark starts one per figure and announces them once).
    pub(crate) fn spawn_server(&self) -> Result<std::process::Child> {
        self.command()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run `{}`: {e}", self.display()))
    }

    /// Runs the command with stdout captured line by line; each line is echoed to our stderr
    /// (as progress) and handed to `each_line`. Stderr is inherited.
    pub(crate) fn run_lines(&self, mut each_line: impl FnMut(&str)) -> Result<()> {
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
pub(crate) fn succeeds(program: &OsString, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs a command and returns its trimmed stdout, or `None` if it fails.
pub(crate) fn capture(program: &str, args: &[&str]) -> Option<String> {
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

pub(crate) fn flush_stdout() {
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
