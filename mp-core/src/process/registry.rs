//! The per-process registry: what this process knows about itself and its children, how a new
//! child takes it over, and the exit handling that terminates or joins the children.

use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use once_cell::sync::Lazy;
use rustix::process::{Pid, PidfdFlags};

use super::reap::Inner;
use super::{ParentProcess, Process};
use crate::bootstrap::ChildConfig;
use crate::context;
use crate::forkserver;

/// What this process knows about itself and its children. One lock; `fork` holds it so the
/// child finds it consistent.
pub(crate) struct Global {
    pub(super) name: String,
    pub(super) identity: Vec<u32>,
    pub(super) daemon: bool,
    pub(super) authkey: Vec<u8>,
    pub(super) parent: Option<ParentProcess>,
    pub(super) counter: u32,
    pub(super) children: Vec<Arc<Inner>>,
    /// The read and write ends of the pipe daemonic children watch; only this process holds
    /// the write end.
    pub(super) lifeline: Option<(OwnedFd, OwnedFd)>,
    pub(crate) forkserver: Option<forkserver::Client>,
    pub(super) at_exit_registered: bool,
    pub(super) join_at_exit: bool,
}

static GLOBAL: Lazy<Mutex<Global>> = Lazy::new(|| {
    let mut authkey = vec![0u8; 32];
    if rustix::rand::getrandom(&mut authkey, rustix::rand::GetRandomFlags::empty()).is_err() {
        // Fall back to the clock and pid: still unique per run, though not secret.
        let seed = format!(
            "{:?}{}",
            Instant::now(),
            rustix::process::getpid().as_raw_nonzero()
        );
        authkey = seed.into_bytes();
        authkey.resize(32, 0);
    }
    Mutex::new(Global {
        name: "MainProcess".into(),
        identity: Vec::new(),
        daemon: false,
        authkey,
        parent: None,
        counter: 1,
        children: Vec::new(),
        lifeline: None,
        forkserver: None,
        at_exit_registered: false,
        join_at_exit: true,
    })
});

/// This process's name if the registry is free right now (for a panic hook, which must not
/// wait for a lock).
pub(crate) fn name_if_free() -> Option<String> {
    GLOBAL.try_lock().ok().map(|g| g.name.clone())
}

pub(crate) fn global() -> MutexGuard<'static, Global> {
    GLOBAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Turns this process's registry into a new child's (after fork, spawn or a forkserver fork).
pub(crate) fn become_child(config: ChildConfig) {
    let parent_pidfd = Pid::from_raw(config.parent_pid)
        .and_then(|pid| rustix::process::pidfd_open(pid, PidfdFlags::empty()).ok())
        .map(Arc::new);
    let mut g = global();
    g.name = config.name;
    g.identity = config.identity;
    g.daemon = config.daemon;
    g.authkey = config.authkey.0;
    g.parent = Some(ParentProcess {
        name: config.parent_name,
        pid: config.parent_pid,
        pidfd: parent_pidfd,
    });
    g.counter = 1;
    g.children.clear();
    g.lifeline = None;
    g.forkserver = None;
    g.join_at_exit = config.join_at_exit;
    drop(g);
    // A forked child already has its parent's settings (and must not take their locks, which
    // another thread of the parent may have held at the fork): they come as `None` then.
    if let Some(m) = config.start_method {
        context::set_start_method_force(Some(m));
    }
    if let Some(exe) = config.executable {
        context::set_executable(Some(exe.into()));
    }
}

/// Python's `util._exit_function`: at exit, run the finalizers of priority >= 0, terminate
/// daemonic children, then join the rest (unless [`set_join_at_exit`]`(false)`), run the
/// remaining finalizers, and let the fork server go.
pub(crate) fn exit_function() {
    crate::util::run_finalizers(Some(0));
    let (children, join_all) = {
        let g = global();
        (g.children.clone(), g.join_at_exit)
    };
    let children: Vec<Process> = children.into_iter().map(Process::from_inner).collect();
    for p in &children {
        if p.inner.daemon() && matches!(p.exitcode(), Ok(None)) {
            let _ = p.terminate();
        }
    }
    for p in &children {
        if join_all || p.inner.daemon() {
            let _ = p.join();
        }
    }
    crate::util::run_finalizers(None);
    let server = global().forkserver.take();
    if let Some(server) = server {
        server.shut_down();
    }
}

/// Registers [`exit_function`] with `atexit`, once per process.
pub(crate) fn ensure_at_exit() {
    let mut g = global();
    if !g.at_exit_registered {
        g.at_exit_registered = true;
        crate::sys::at_exit(at_exit_hook);
    }
}

pub(super) extern "C" fn at_exit_hook() {
    exit_function();
}

/// Chooses whether this process joins its non-daemonic children when it exits normally
/// (default `true`, as Python does). With `false` they are left running.
pub fn set_join_at_exit(join: bool) {
    global().join_at_exit = join;
}

/// Drops an ended child from the registry (Python: `_children.discard(self)`), so its fds go
/// with its last handle.
pub(super) fn forget_child(inner: &Arc<Inner>) {
    global().children.retain(|c| !Arc::ptr_eq(c, inner));
}

/// Reaps children that have ended and forgets them (Python: `process._cleanup()`).
pub(super) fn cleanup() {
    let mut g = global();
    g.children.retain(|c| !matches!(c.try_reap(), Ok(Some(_))));
}
