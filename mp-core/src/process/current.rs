//! This process and its relatives: `current_process`, `parent_process` and `active_children`.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use super::registry::{cleanup, global};
use super::{process_id, Process};
use crate::deadline::Deadline;
use crate::error::Result;
use crate::io;

/// The process running this code: name, pid, daemon flag, authkey.
///
/// Python: `multiprocessing.current_process()` (in the main process its name is
/// `"MainProcess"`; in a child, the name its `Process` had).
pub fn current_process() -> CurrentProcess {
    CurrentProcess { _private: () }
}

/// A handle on this process; see [`current_process`].
#[derive(Debug)]
pub struct CurrentProcess {
    _private: (),
}

impl CurrentProcess {
    /// Python: `current_process().name`.
    pub fn get_name(&self) -> String {
        global().name.clone()
    }
    /// Python: `current_process().name = ...`.
    pub fn set_name(&self, name: impl Into<String>) {
        global().name = name.into();
    }
    /// Python: `current_process().pid`.
    pub fn pid(&self) -> i32 {
        process_id() as i32
    }
    /// Python: `current_process().daemon`.
    pub fn is_daemon(&self) -> bool {
        global().daemon
    }
    /// Python: `current_process().authkey`: 32 random bytes in the main process, inherited by
    /// children.
    pub fn get_authkey(&self) -> Vec<u8> {
        global().authkey.clone()
    }
    /// Python: `current_process().authkey = ...`.
    pub fn set_authkey(&self, key: impl Into<Vec<u8>>) {
        global().authkey = key.into();
    }
    /// Python: `current_process()._identity`: empty in the main process, `[1]` in `Process-1`,
    /// `[1, 2]` in `Process-1:2`.
    pub fn identity(&self) -> Vec<u32> {
        global().identity.clone()
    }
}

/// The parent of this process as a child of ours knows it.
///
/// Python: the object `multiprocessing.parent_process()` returns.
#[derive(Clone, Debug)]
pub struct ParentProcess {
    pub(super) name: String,
    pub(super) pid: i32,
    pub(super) pidfd: Option<Arc<OwnedFd>>,
}

impl ParentProcess {
    /// Python: `parent_process().name`.
    pub fn get_name(&self) -> &str {
        &self.name
    }
    /// Python: `parent_process().pid`.
    pub fn pid(&self) -> i32 {
        self.pid
    }
    /// Whether the parent still runs. Python: `parent_process().is_alive()`.
    pub fn is_alive(&self) -> bool {
        match &self.pidfd {
            Some(fd) => matches!(io::wait_readable(fd.as_fd(), Deadline::now()), Ok(false)),
            None => false,
        }
    }
    /// Waits until the parent ends. Python: `parent_process().join()`.
    pub fn join(&self) -> Result<()> {
        self.join_until(Deadline::NEVER).map(|_| ())
    }
    /// Waits up to `timeout` for the parent to end; returns whether it ended (Python's
    /// `join(timeout)` then `not is_alive()`).
    pub fn join_timeout(&self, timeout: Duration) -> Result<bool> {
        self.join_until(Deadline::after(timeout))
    }
    /// [`join_timeout`](Self::join_timeout) with a deadline.
    pub fn join_deadline(&self, deadline: impl Into<Deadline>) -> Result<bool> {
        self.join_until(deadline.into())
    }
    fn join_until(&self, deadline: Deadline) -> Result<bool> {
        match &self.pidfd {
            Some(fd) => io::wait_readable(fd.as_fd(), deadline),
            None => Ok(true),
        }
    }
}

/// The parent process, or `None` in the main process. Python: `multiprocessing.parent_process()`.
pub fn parent_process() -> Option<ParentProcess> {
    global().parent.clone()
}

/// The children of this process that are still running; reaps those that ended.
///
/// Python: `multiprocessing.active_children()`.
pub fn active_children() -> Vec<Process> {
    cleanup();
    global()
        .children
        .iter()
        .cloned()
        .map(Process::from_inner)
        .collect()
}
