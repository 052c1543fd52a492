//! The shared state of a process object and how its child is reaped and waited for: `Inner`,
//! its `State`, and the `Waiter` that watches a started child.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex, MutexGuard};

use once_cell::sync::OnceCell;
use rustix::process::{Pid, PidfdFlags, WaitId, WaitIdOptions, WaitOptions};

use crate::context::StartMethod;
use crate::deadline::Deadline;
use crate::error::{Error, Result};
use crate::io;

/// How a started child is watched.
pub(super) enum Waiter {
    /// Our own child, reaped with `waitpid`. Its pid cannot be reused before we reap it, so
    /// signals and a pidfd (opened only when a sentinel is asked for) are safe.
    Direct(Pid),
    /// A child of the fork server: its pidfd for signals, and a pipe on which the server writes
    /// the exit code when the child ends.
    Forkserver {
        pidfd: OwnedFd,
        status: Arc<OwnedFd>,
    },
}

pub(super) struct State {
    pub(super) name: String,
    pub(super) identity: Vec<u32>,
    pub(super) daemon: bool,
    pub(super) authkey: Option<Vec<u8>>,
    pub(super) method: Option<StartMethod>,
    pub(super) started: bool,
    pub(super) closed: bool,
    pub(super) pid: Option<i32>,
    pub(super) waiter: Option<Waiter>,
    pub(super) exitcode: Option<i32>,
    pub(super) result: Option<OwnedFd>,
}

/// The shared part of a process object (the registry and every handle point at it).
pub(crate) struct Inner {
    pub(super) state: Mutex<State>,
    pub(super) sentinel: OnceCell<Arc<OwnedFd>>,
}

impl Inner {
    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn daemon(&self) -> bool {
        self.lock().daemon
    }

    /// Reaps the child if it has ended, without blocking; returns its exit code if known.
    pub(super) fn try_reap(&self) -> Result<Option<i32>> {
        let mut st = self.lock();
        if let Some(code) = st.exitcode {
            return Ok(Some(code));
        }
        let code = match &st.waiter {
            None => return Ok(None),
            Some(Waiter::Direct(pid)) => {
                match rustix::process::waitpid(Some(*pid), WaitOptions::NOHANG) {
                    Ok(Some((_, status))) => {
                        if let Some(code) = status.exit_status() {
                            code
                        } else if let Some(sig) = status.terminating_signal() {
                            -sig
                        } else {
                            return Ok(None);
                        }
                    }
                    Ok(None) => return Ok(None),
                    Err(rustix::io::Errno::INTR) => return Ok(None),
                    Err(e) => return Err(e.into()),
                }
            }
            Some(Waiter::Forkserver { status, .. }) => {
                if !io::wait_readable(status.as_fd(), Deadline::now())? {
                    return Ok(None);
                }
                let mut buf = [0u8; 4];
                if io::read_full(status.as_fd(), &mut buf)? != 4 {
                    return Err(Error::Io(std::io::Error::other(
                        "the fork server died before reporting the child's exit code",
                    )));
                }
                i32::from_be_bytes(buf)
            }
        };
        st.exitcode = Some(code);
        Ok(Some(code))
    }

    /// The fd that becomes readable when the child ends: the fork server's status pipe, or a
    /// pidfd opened on first use (for a child already reaped, a pipe at end of file).
    pub(super) fn sentinel(&self) -> Result<&Arc<OwnedFd>> {
        self.sentinel.get_or_try_init(|| {
            let st = self.lock();
            match (&st.waiter, st.exitcode) {
                (Some(Waiter::Direct(pid)), None) => {
                    // Not reaped (we hold the lock reaping needs), so the pid is still ours.
                    Ok(Arc::new(rustix::process::pidfd_open(
                        *pid,
                        PidfdFlags::empty(),
                    )?))
                }
                (Some(Waiter::Forkserver { status, .. }), _) => Ok(status.clone()),
                (Some(Waiter::Direct(_)), Some(_)) => {
                    let (r, _w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
                    Ok(Arc::new(r))
                }
                (None, _) => Err(Error::InvalidState("process not started".into())),
            }
        })
    }

    /// Blocks until the direct child `pid` has ended, without reaping it (so that every thread
    /// that waits wakes, and the reaping stays with `try_reap`).
    pub(super) fn wait_exited(pid: Pid) -> Result<()> {
        loop {
            match rustix::process::waitid(
                WaitId::Pid(pid),
                WaitIdOptions::EXITED | WaitIdOptions::NOWAIT,
            ) {
                Ok(_) => return Ok(()),
                Err(rustix::io::Errno::INTR) => {}
                // Reaped meanwhile by another thread of ours: `try_reap` has the code.
                Err(rustix::io::Errno::CHILD) => return Ok(()),
                Err(e) => return Err(e.into()),
            }
        }
    }
}
