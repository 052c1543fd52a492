//! Helper processes: servers that outlive the call that started them, started one way.
//!
//! Every long-lived helper of the stack starts here or through the same bootstrap: the fork
//! server (the same launcher, asked to serve forks instead of running a function), the
//! shared-memory resource tracker (mp-shared), and the servers of the pool and the manager.
//! A helper is a fresh re-execution of this program (the spawn start method, whatever the
//! default is: a clean, single-threaded process that inherits no lock and no stray fd), which
//! the bootstrap constructor turns into a call of `target(args)` before `main`; `args` cross
//! as any child's arguments do, handles (fds) included.
//!
//! A *detached* helper is not this process's child in Python's sense: it is not in
//! [`active_children`](crate::active_children), not joined or terminated at exit, and it has no
//! lifeline, so it outlives this process (and is reaped by init after it). A helper that must
//! die with its parent is an ordinary daemonic [`Process`](crate::Process).

use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use rustix::process::{Signal, WaitId, WaitIdOptions};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::bootstrap::{self, ChildConfig, Hello, Job};
use crate::codec::Bytes;
use crate::deadline::Deadline;
use crate::error::Result;
use crate::handle::HandleFd;
use crate::process::{current_process, FnTarget, Target};
use crate::{context, identity, io, StartMethod};

/// How a helper is started. Beyond Python (CPython starts each of its helpers its own way).
#[derive(Clone, Debug)]
pub struct HelperOptions {
    name: String,
    quiet: bool,
}

impl HelperOptions {
    /// Options for a helper called `name` (its `current_process().get_name()`).
    pub fn new(name: impl Into<String>) -> Self {
        HelperOptions {
            name: name.into(),
            quiet: false,
        }
    }

    /// Sends the helper's standard output and error to `/dev/null` (a helper that outlives a
    /// terminal must not write to it). Default: inherited.
    pub fn quiet(mut self, quiet: bool) -> Self {
        self.quiet = quiet;
        self
    }
}

/// A running helper process, started by [`start_detached`].
#[derive(Debug)]
pub struct Helper {
    pid: i32,
    pidfd: OwnedFd,
}

/// `start_detached()`—Starts `target(args)` in a detached helper process.
///
/// Returns once the helper runs the bootstrap (its function identity checked); `target` runs
/// next, in the helper, and the helper exits when it returns (exit code 0, or 1 after a panic).
/// See the [module docs](self) for what "detached" means.
///
/// Errors: arguments that do not serialize ([`Error::Codec`](crate::Error::Codec),
/// [`Error::Handle`](crate::Error::Handle)); an executable that is not this program
/// ([`Error::BinaryMismatch`](crate::Error::BinaryMismatch)); OS errors.
pub fn start_detached<A>(target: fn(A), args: A, options: &HelperOptions) -> Result<Helper>
where
    A: Serialize + DeserializeOwned + Send + 'static,
{
    crate::constructor::keep_constructor();
    let (trampoline, target, args, fds) = FnTarget { f: target, args }.job()?;
    let me = current_process();
    let config = ChildConfig {
        name: options.name.clone(),
        identity: Vec::new(),
        daemon: false,
        authkey: Bytes(me.get_authkey()),
        parent_pid: rustix::process::getpid().as_raw_nonzero().get(),
        parent_name: me.get_name(),
        start_method: Some(StartMethod::Spawn),
        executable: Some(context::executable().to_string_lossy().into_owned()),
        join_at_exit: true,
    };
    let job = Job {
        fingerprint: identity::fingerprint()?,
        trampoline,
        target,
        args: Bytes(args),
        arg_fds: fds.into_iter().map(HandleFd).collect(),
        result: None,
        lifeline: None,
        config,
    };
    let (pid, pidfd, _conn) = bootstrap::launch(&Hello::Run(job), options.quiet)?;
    Ok(Helper {
        pid: pid.as_raw_nonzero().get(),
        pidfd,
    })
}

impl Helper {
    /// The helper's process id.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Whether the helper still runs.
    pub fn is_alive(&self) -> bool {
        matches!(
            io::wait_readable(self.pidfd.as_fd(), Deadline::now()),
            Ok(false)
        )
    }

    /// Waits until the helper has ended (and reaps it: a helper seen to end leaves no zombie;
    /// one that outlives this process is reaped by init).
    pub fn wait(&self) -> Result<()> {
        self.wait_until(Deadline::NEVER).map(|_| ())
    }

    /// Waits at most `timeout` for the helper to end; `Ok(true)` if it ended.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<bool> {
        self.wait_until(Deadline::after(timeout))
    }

    /// [`wait_timeout`](Self::wait_timeout) with a deadline.
    pub fn wait_deadline(&self, deadline: impl Into<Deadline>) -> Result<bool> {
        self.wait_until(deadline.into())
    }

    fn wait_until(&self, deadline: Deadline) -> Result<bool> {
        let ended = io::wait_readable(self.pidfd.as_fd(), deadline)?;
        if ended {
            // Ours to reap (we spawned it); a second wait finds nothing, which is fine.
            let _ = rustix::process::waitid(
                WaitId::PidFd(self.pidfd.as_fd()),
                WaitIdOptions::EXITED | WaitIdOptions::NOHANG,
            );
        }
        Ok(ended)
    }

    /// Sends the helper `SIGKILL`.
    pub fn kill(&self) -> Result<()> {
        Ok(rustix::process::pidfd_send_signal(
            &self.pidfd,
            Signal::KILL,
        )?)
    }
}
