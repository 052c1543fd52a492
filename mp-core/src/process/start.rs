//! The fork and spawn start paths, the lifeline pipe daemonic children watch, and what runs
//! before a fork (the multithreading warning, flushing stdio).

use std::io::Write;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use super::reap::Waiter;
use super::registry::{global, Global};
use super::target::Target;
use crate::bootstrap::{self, ChildConfig, Job};
use crate::context::{self, StartMethod};
use crate::error::{Error, Result};
use crate::sys;

pub(super) fn flush_stdio() {
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
}

/// The read end of this process's lifeline pipe (a fresh duplicate).
pub(super) fn lifeline_reader() -> Result<OwnedFd> {
    let mut g = global();
    lifeline_reader_locked(&mut g)
}

fn lifeline_reader_locked(g: &mut Global) -> Result<OwnedFd> {
    if g.lifeline.is_none() {
        g.lifeline = Some(rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?);
    }
    match &g.lifeline {
        Some((r, _)) => Ok(r.try_clone()?),
        None => Err(Error::InvalidState("no lifeline".into())),
    }
}

fn warn_if_threaded() {
    if !log::log_enabled!(log::Level::Warn) {
        return;
    }
    let threads = std::fs::read_dir("/proc/self/task")
        .map(|d| d.count())
        .unwrap_or(1);
    if threads > 1 {
        log::warn!(
            "this process has {threads} threads; a forked child inherits only the forking one, and a \
             lock another thread held stays locked in the child: prefer the forkserver or spawn \
             start method"
        );
    }
}

pub(super) fn start_fork(
    target: Box<dyn Target>,
    mut config: ChildConfig,
    result: Option<&OwnedFd>,
    daemon: bool,
) -> Result<Started> {
    warn_if_threaded();
    config.start_method = None;
    config.executable = None;
    // The binary's fingerprint, computed here once rather than in each child: a forked child
    // inherits it, and a pool worker checks it on its first task (a `stat` of
    // `/proc/self/exe`, a path walk through procfs, on the way to its first result).
    let _ = crate::identity::fingerprint();
    sys::trim_heap();
    // Hold the stdio locks and the registry across the fork, so the child finds them
    // consistent (released) even if another thread was printing or starting a process.
    let stdout = std::io::stdout().lock();
    let stderr = std::io::stderr().lock();
    let mut g = global();
    // And the start method (taken after the registry, the order everywhere): a child of a fork
    // context in a program whose default is another method reports fork, as in Python.
    let mut start_method = context::start_method_lock();
    let lifeline = if daemon {
        Some(lifeline_reader_locked(&mut g)?)
    } else {
        None
    };
    match sys::fork()? {
        sys::Forked::Child => {
            // Only this thread exists now. Close what only the parent may hold (the lifeline's
            // write end, the fork server's socket), release the registry, and become the child.
            g.lifeline = None;
            g.forkserver = None;
            if start_method.is_some() {
                *start_method = Some(StartMethod::Fork);
            }
            drop(start_method);
            drop(g);
            drop(stderr);
            drop(stdout);
            let result = result.and_then(|fd| fd.try_clone().ok());
            bootstrap::child_main(config, result, lifeline, None, move || target.run())
        }
        sys::Forked::Parent(pid) => {
            drop(start_method);
            drop(g);
            drop(stderr);
            drop(stdout);
            drop(target);
            Ok((pid.as_raw_nonzero().get(), Waiter::Direct(pid), None))
        }
    }
}

pub(super) fn start_spawn(job: Job) -> Result<Started> {
    let (pid, pidfd, _conn) = bootstrap::launch(&bootstrap::Hello::Run(job), false)?;
    Ok((
        pid.as_raw_nonzero().get(),
        Waiter::Direct(pid),
        Some(Arc::new(pidfd)),
    ))
}

/// A started child: its pid, how to wait for it, and its sentinel if one is already open.
pub(super) type Started = (i32, Waiter, Option<Arc<OwnedFd>>);
