//! How a child comes to life and how it leaves, under every start method.
//!
//! - Spawn: the parent re-executes the program with `MULTIPROCESSING_RS_BOOTSTRAP` in the
//!   environment and one end of a socketpair as standard input. A constructor in `.init_array`
//!   ([`on_load`]) sees the variable before `main`, reads a [`Hello`] (with its fds) from the
//!   socket, checks the function identity, answers with an [`Ack`], and runs the job. `main`
//!   never runs in such a child.
//! - Forkserver: the same, but the [`Hello`] asks the process to become a fork server.
//! - Fork: the child continues from `fork()` straight into [`child_main`].
//!
//! [`child_main`] is the one way out: it runs the target under `catch_unwind`, writes the
//! outcome to the result file, joins the child's own children as Python does at exit, flushes
//! stdio and leaves with `_exit`, never returning into the parent's stack.

use std::cell::Cell;
use std::ffi::OsString;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::panic::{self, AssertUnwindSafe};
use std::process::{Command, Stdio};

use rustix::process::{Pid, PidfdFlags};
use serde::{Deserialize, Serialize};

use crate::codec::{self, Bytes};
use crate::connection::{self, pipe, Connection};
use crate::context::StartMethod;
use crate::error::{Error, Result};
use crate::handle::{self, HandleFd};
use crate::identity::{self, Fingerprint};
use crate::{forkserver, io, process, sys};

/// The environment variable that makes a re-executed program a child.
pub(crate) const ENV_VAR: &str = "MULTIPROCESSING_RS_BOOTSTRAP";
/// The exit code of a child that never got to run its target.
pub(crate) const EXIT_BOOTSTRAP_FAILED: i32 = 255;

/// What a child needs to know about itself.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct ChildConfig {
    pub name: String,
    pub identity: Vec<u32>,
    pub daemon: bool,
    pub authkey: Bytes,
    pub parent_pid: i32,
    pub parent_name: String,
    pub start_method: Option<StartMethod>,
    pub executable: Option<String>,
    pub join_at_exit: bool,
}

/// A function to run in a child that was not forked from the parent.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Job {
    pub fingerprint: Fingerprint,
    pub trampoline: i64,
    pub target: i64,
    pub args: Bytes,
    pub arg_fds: Vec<HandleFd>,
    pub result: Option<HandleFd>,
    pub lifeline: Option<HandleFd>,
    pub config: ChildConfig,
}

/// The first message to a re-executed program.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Hello {
    /// Run this job and exit.
    Run(Job),
    /// Become a fork server for the sender.
    Forkserver {
        fingerprint: Fingerprint,
        /// Offsets of the `fn()`s to run first (`set_forkserver_preload`).
        preload: Vec<i64>,
    },
}

/// A re-executed program's answer to [`Hello`].
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Ack {
    Ready,
    Failed(String),
}

/// The first byte of a child's result file.
const RESULT_RETURNED: u8 = 0;
const RESULT_FAILED: u8 = 1;

/// A child's outcome as its parent reads it from the result file.
pub(crate) enum Outcome {
    Returned(Vec<u8>),
    Failed(String),
    Nothing,
}

/// Parses the bytes of a result file.
pub(crate) fn parse_outcome(bytes: &[u8]) -> Outcome {
    match bytes.split_first() {
        Some((&RESULT_RETURNED, rest)) => Outcome::Returned(rest.to_vec()),
        Some((&RESULT_FAILED, rest)) => Outcome::Failed(String::from_utf8_lossy(rest).into_owned()),
        _ => Outcome::Nothing,
    }
}

// ----- the parent's side of spawn -----

/// Re-executes the program as a bootstrap child and sends it `hello`; returns once the child
/// has acknowledged it. The child's pid, a pidfd for it, and the bootstrap connection. With
/// `quiet`, the child's standard output and error are `/dev/null`.
pub(crate) fn launch(hello: &Hello, quiet: bool) -> Result<(Pid, OwnedFd, Connection)> {
    crate::constructor::keep_constructor();
    let (mut ours, theirs) = pipe(true)?;
    let theirs = theirs.into_owned_fd()?;
    let exe = crate::context::executable();
    let mut cmd = Command::new(&exe);
    cmd.arg0(
        std::env::args_os()
            .next()
            .unwrap_or_else(|| OsString::from("multiprocessing")),
    )
    .arg("--multiprocessing-fork")
    .env(ENV_VAR, "1")
    .stdin(Stdio::from(theirs));
    if quiet {
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
    }
    let child = cmd.spawn().map_err(|e| {
        Error::Io(std::io::Error::new(
            e.kind(),
            format!("cannot run {}: {e}", exe.display()),
        ))
    })?;
    drop(cmd);
    let pid = Pid::from_raw(child.id() as i32)
        .ok_or_else(|| Error::Io(std::io::Error::other("spawn returned an invalid pid")))?;
    drop(child);
    let pidfd = match rustix::process::pidfd_open(pid, PidfdFlags::empty()) {
        Ok(fd) => fd,
        Err(e) => {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            let _ = rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty());
            return Err(e.into());
        }
    };
    let answer = ours.send(hello).and_then(|()| {
        // A program that is not ours may never answer: give it a generous while.
        if !ours.poll_timeout(std::time::Duration::from_secs(60))? {
            return Err(Error::Timeout);
        }
        ours.recv::<Ack>()
    });
    match answer {
        Ok(Ack::Ready) => Ok((pid, pidfd, ours)),
        failed => {
            let _ = rustix::process::pidfd_send_signal(&pidfd, rustix::process::Signal::KILL);
            let _ = rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty());
            Err(match failed {
                Ok(Ack::Failed(msg)) => Error::BinaryMismatch(msg),
                Err(Error::Eof)
                | Err(Error::Codec(_))
                | Err(Error::Timeout)
                | Err(Error::Protocol(_)) => Error::BinaryMismatch(format!(
                    "{} did not run the multiprocessing bootstrap; the executable must be this \
                     program, built with this library",
                    exe.display()
                )),
                // A program that exits without reading the hello resets the socket.
                Err(Error::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
                    ) =>
                {
                    Error::BinaryMismatch(format!(
                        "{} did not run the multiprocessing bootstrap (it closed the bootstrap \
                         socket); the executable must be this program, built with this library",
                        exe.display()
                    ))
                }
                Err(e) => e,
                Ok(Ack::Ready) => unreachable_ack(),
            })
        }
    }
}

fn unreachable_ack() -> Error {
    Error::Protocol("unexpected acknowledgement".into())
}

// ----- the child's side -----

/// Runs before `main` in every process of a program that uses this crate (see `sys::on_load`).
/// Returns at once unless this process was re-executed as a child.
pub(crate) fn on_load() {
    if std::env::var_os(ENV_VAR).is_none() {
        return;
    }
    std::env::remove_var(ENV_VAR);
    sys::ignore_sigpipe();
    sys::default_sigchld();
    let fd = match sys::take_stdin() {
        Ok(fd) => fd,
        Err(e) => bootstrap_failed(&format!("cannot take the bootstrap socket: {e}")),
    };
    // The bootstrap socket comes from the parent, a process of this program: trusted (fd
    // carrier frames, functions).
    let mut conn = match Connection::from_fd(fd, true, true) {
        Ok(conn) => conn.trusted(),
        Err(e) => bootstrap_failed(&format!("bad bootstrap socket: {e}")),
    };
    let hello = connection::recv_frame_with_fds(&mut conn).and_then(|(payload, fds)| {
        handle::with_handles(fds, || codec::decode::<Hello>(&payload)).0
    });
    match hello {
        Ok(Hello::Run(job)) => {
            let verified = match identity::check(&job.fingerprint) {
                Ok(v) => v,
                Err(e) => {
                    let _ = conn.send(&Ack::Failed(e.to_string()));
                    bootstrap_failed(&e.to_string())
                }
            };
            if conn.send(&Ack::Ready).is_err() {
                bootstrap_failed("the parent went away during the bootstrap");
            }
            drop(conn);
            run_job(verified, job, None)
        }
        Ok(Hello::Forkserver {
            fingerprint,
            preload,
        }) => match identity::check(&fingerprint) {
            Ok(verified) => forkserver::serve(verified, conn, preload),
            Err(e) => {
                let _ = conn.send(&Ack::Failed(e.to_string()));
                bootstrap_failed(&e.to_string())
            }
        },
        Err(e) => bootstrap_failed(&format!("cannot read the bootstrap message: {e}")),
    }
}

fn bootstrap_failed(msg: &str) -> ! {
    eprintln!("multiprocessing: child bootstrap failed: {msg}");
    sys::exit_immediately(EXIT_BOOTSTRAP_FAILED)
}

/// Runs a [`Job`] in this (spawned or forkserver-forked) process. Never returns.
///
/// `last_word`: where a fork server's child writes its exit code before it leaves (see
/// `forkserver`).
pub(crate) fn run_job(verified: identity::Verified, job: Job, last_word: Option<OwnedFd>) -> ! {
    let Job {
        trampoline,
        target,
        args,
        arg_fds,
        result,
        lifeline,
        config,
        ..
    } = job;
    let fds = arg_fds.into_iter().map(|h| h.0).collect();
    child_main(
        config,
        result.map(|h| h.0),
        lifeline.map(|h| h.0),
        last_word,
        move || crate::trampoline::call_trampoline(&verified, trampoline, target, &args.0, fds),
    )
}

thread_local! {
    /// True on the thread that runs a child's target, while it runs.
    static IN_TARGET: Cell<bool> = const { Cell::new(false) };
}

/// Installs, once per process, a panic hook that prefixes a child target's panic with
/// `Process <name>:` (as CPython's traceback header does) and then runs the previous hook.
///
/// Called in the parent before any fork, so that a forked child never touches the hook lock
/// (another thread may hold it at the moment of the fork); spawned children call it for
/// themselves.
pub(crate) fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if in_target() {
                if let Some(name) = process::name_if_free() {
                    eprintln!("Process {name}:");
                }
            }
            previous(info);
        }));
    });
}

/// The panic payload of [`exit`](crate::exit) inside a child's target.
pub(crate) struct ExitRequest(pub i32);

/// True while the current thread runs a child's target.
pub(crate) fn in_target() -> bool {
    IN_TARGET.with(Cell::get)
}

/// The life of a child after it exists: set up, run `run`, record the outcome, clean up, `_exit`.
pub(crate) fn child_main(
    config: ChildConfig,
    result: Option<OwnedFd>,
    lifeline: Option<OwnedFd>,
    last_word: Option<OwnedFd>,
    run: impl FnOnce() -> Result<Vec<u8>>,
) -> ! {
    process::become_child(config);
    if let Some(fd) = lifeline {
        watch_lifeline(fd);
    }
    install_panic_hook();
    IN_TARGET.with(|t| t.set(true));
    let outcome = panic::catch_unwind(AssertUnwindSafe(run));
    IN_TARGET.with(|t| t.set(false));
    let (code, record): (i32, Option<(u8, Vec<u8>)>) = match outcome {
        // `()` (MessagePack nil) needs no record: the parent reads "nothing" as `()`.
        Ok(Ok(bytes)) if bytes == [0xc0] => (0, None),
        Ok(Ok(bytes)) => (0, Some((RESULT_RETURNED, bytes))),
        Ok(Err(e)) => {
            eprintln!("Process {}: {e}", process::current_process().get_name());
            (1, Some((RESULT_FAILED, e.to_string().into_bytes())))
        }
        Err(payload) => match payload.downcast::<ExitRequest>() {
            Ok(exit) => (exit.0, None),
            Err(payload) => {
                let msg = if let Some(s) = payload.downcast_ref::<&str>() {
                    (*s).to_string()
                } else if let Some(s) = payload.downcast_ref::<String>() {
                    s.clone()
                } else {
                    "the process panicked".to_string()
                };
                std::mem::forget(payload);
                (1, Some((RESULT_FAILED, msg.into_bytes())))
            }
        },
    };
    if let (Some(fd), Some((tag, bytes))) = (result.as_ref(), record) {
        if io::write_all(fd.as_fd(), &[tag])
            .and_then(|()| io::write_all(fd.as_fd(), &bytes))
            .is_err()
        {
            eprintln!(
                "Process {}: cannot record the result",
                process::current_process().get_name()
            );
        }
    }
    process::exit_function();
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    if let Some(fd) = last_word {
        // Nothing to do if it fails: the fork server, alive, reports the code itself.
        let _ = io::write_all(fd.as_fd(), &code.to_be_bytes());
    }
    sys::exit_immediately(code)
}

/// A daemonic child dies with its parent: the lifeline pipe's only write end is the parent's,
/// and its hangup, however the parent died (even by SIGKILL), kills this process. The kernel
/// delivers that SIGKILL itself (`sys::kill_me_at_hangup`); where it cannot be arranged, a
/// thread waits for the pipe's end of file instead.
fn watch_lifeline(fd: OwnedFd) {
    use std::os::fd::IntoRawFd;
    if sys::kill_me_at_hangup(fd.as_fd()).is_ok() {
        // A parent that was gone before the arming sent nothing: look once (readable means
        // hung up, as the parent never writes).
        let gone = io::wait_readable(fd.as_fd(), crate::Deadline::now()).unwrap_or(false);
        if gone {
            let _ = rustix::process::kill_process(
                rustix::process::getpid(),
                rustix::process::Signal::KILL,
            );
        }
        // Open for the rest of this process's life: the hangup is this fd's.
        let _ = fd.into_raw_fd();
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("mp-lifeline".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            let mut byte = [0u8; 1];
            // Returns at EOF (the parent is gone); retries only interrupted reads.
            while let Err(rustix::io::Errno::INTR) = rustix::io::read(&fd, &mut byte) {}
            let _ = rustix::process::kill_process(
                rustix::process::getpid(),
                rustix::process::Signal::KILL,
            );
        });
    if let Err(e) = spawned {
        eprintln!("multiprocessing: cannot watch the parent's lifeline: {e}");
    }
}
