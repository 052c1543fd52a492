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

/// How long a fork server's child that has ended may take to have its exit code on the status
/// pipe (the server reaps it and writes at once; this bounds a loaded machine).
const STATUS_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// The exit code of a fork server's child whose code was lost (the server died, and the child
/// ended without writing its own): CPython's value in that case.
pub(crate) const UNKNOWN_EXIT_CODE: i32 = 255;

/// How a started child is watched.
pub(super) enum Waiter {
    /// Our own child, reaped with `waitpid`. Its pid cannot be reused before we reap it, so
    /// signals and a pidfd (opened only when a sentinel is asked for) are safe.
    Direct(Pid),
    /// A child of the fork server: its pidfd for signals and as the sentinel, and a pipe on
    /// which the child writes its exit code as it leaves and the server writes it once it has
    /// reaped the child (see `forkserver`).
    Forkserver {
        pidfd: Arc<OwnedFd>,
        status: OwnedFd,
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
            Some(Waiter::Forkserver { pidfd, status }) => {
                if !io::wait_readable(pidfd.as_fd(), Deadline::now())? {
                    return Ok(None);
                }
                // Ended. Its last word is on the pipe, or the server's report is about to be
                // (a child killed by a signal says nothing; the server reaps it at once).
                let mut buf = [0u8; 4];
                let ready = io::wait_readable(status.as_fd(), Deadline::after(STATUS_GRACE))?;
                if ready && io::read_full(status.as_fd(), &mut buf)? == 4 {
                    i32::from_be_bytes(buf)
                } else {
                    // The server died, and the child ended without a word (a signal, or an
                    // `_exit` in foreign code): the code is lost. CPython reports 255 too.
                    UNKNOWN_EXIT_CODE
                }
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
                (Some(Waiter::Forkserver { pidfd, .. }), _) => Ok(pidfd.clone()),
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
