//! [`Error`]: every way a pool call or a task can fail.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Every error of `mp-pool`; each variant names the Python exception it stands for, or says
/// that Python has none (where CPython hangs instead).
///
/// `Display` is lowercase. The error is `Clone` (a map's error is returned by every `get`), so
/// an [`mp_core::Error`] is held in an `Arc`.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The task's function returned `Err` (a `try_*` call): its `Display`, and where the
    /// worker saw it (Python: the exception the function raised, re-raised by `get`).
    #[error("task failed: {message}")]
    Remote {
        /// The error's `Display`.
        message: String,
    },
    /// The task's function panicked; the worker caught it and goes on (Python: the exception
    /// the function raised, re-raised by `get`).
    #[error("task panicked at {}: {message}", .location.as_deref().unwrap_or("an unknown location"))]
    TaskPanicked {
        /// The panic's message.
        message: String,
        /// `file:line:column` of the panic, when known.
        location: Option<String>,
    },
    /// The worker running the task died (SIGKILL, the OOM killer, `abort()`, `exit()` in the
    /// task); the pool replaced it. Python has none: CPython's `get()` hangs forever
    /// (gh-66587).
    #[error("worker {pid} died while running the task ({})", describe_exit(*.exitcode))]
    WorkerLost {
        /// The worker's pid.
        pid: i32,
        /// Python's `exitcode` of the worker: `-N` after signal `N`, else its exit status.
        exitcode: i32,
    },
    /// The task ran longer than its time limit; its worker was killed and replaced (Python has
    /// none; billiard's `TimeLimitExceeded`).
    #[error("task exceeded its time limit of {limit:?} (worker {pid} killed)")]
    TimeLimitExceeded {
        /// The limit.
        limit: Duration,
        /// The worker that was killed.
        pid: i32,
    },
    /// The pool was terminated (or dropped) before the task finished (Python has none: CPython
    /// leaves such results unresolved forever, gh-126743).
    #[error("the pool was terminated before the task finished")]
    Terminated,
    /// The task was cancelled with [`AsyncResult::cancel`](crate::AsyncResult::cancel).
    #[error("the task was cancelled")]
    Cancelled,
    /// A `get_timeout`/`get_deadline` ran out of time (Python: `multiprocessing.TimeoutError`).
    #[error("timed out")]
    Timeout,
    /// `successful()` was called before the result was ready (Python: `ValueError`).
    #[error("the result is not ready")]
    NotReady,
    /// A call on a pool that was closed or terminated (Python: `ValueError("Pool not
    /// running")`).
    #[error("pool not running")]
    NotRunning,
    /// `join()` on a pool that was neither closed nor terminated (Python: `ValueError`).
    #[error("pool is still running: close() or terminate() it before join()")]
    StillRunning,
    /// An argument out of range, such as `processes(0)` (Python: `ValueError`).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The pool's initializer failed or panicked in a worker; the pool stops instead of
    /// respawning workers forever (CPython does, gh-87472).
    #[error("the pool's initializer failed: {0}")]
    Initializer(String),
    /// Encoding an argument, decoding a result, or an OS error of the layer below.
    #[error(transparent)]
    Core(Arc<mp_core::Error>),
}

fn describe_exit(code: i32) -> String {
    if code < 0 {
        format!("killed by signal {}", -code)
    } else {
        format!("exit code {code}")
    }
}

impl From<mp_core::Error> for Error {
    fn from(e: mp_core::Error) -> Self {
        Error::Core(Arc::new(e))
    }
}

impl Error {
    /// True for [`Error::Remote`] and [`Error::TaskPanicked`]: the task's own failure.
    pub fn is_task_failure(&self) -> bool {
        matches!(self, Error::Remote { .. } | Error::TaskPanicked { .. })
    }
    /// True for [`Error::TaskPanicked`].
    pub fn is_panic(&self) -> bool {
        matches!(self, Error::TaskPanicked { .. })
    }
    /// True for [`Error::WorkerLost`].
    pub fn is_worker_lost(&self) -> bool {
        matches!(self, Error::WorkerLost { .. })
    }
    /// True for [`Error::TimeLimitExceeded`].
    pub fn is_time_limit(&self) -> bool {
        matches!(self, Error::TimeLimitExceeded { .. })
    }
    /// True for [`Error::Terminated`].
    pub fn is_terminated(&self) -> bool {
        matches!(self, Error::Terminated)
    }
    /// True for [`Error::Cancelled`].
    pub fn is_cancelled(&self) -> bool {
        matches!(self, Error::Cancelled)
    }
    /// True for [`Error::Timeout`].
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout)
    }
    /// True for [`Error::NotRunning`].
    pub fn is_not_running(&self) -> bool {
        matches!(self, Error::NotRunning)
    }
    /// True for [`Error::Initializer`].
    pub fn is_initializer(&self) -> bool {
        matches!(self, Error::Initializer(_))
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A task's own failure as it crosses from the worker: a panic (with its location) or an
/// `Err` the function returned.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct Failure {
    pub(crate) panicked: bool,
    pub(crate) message: String,
    pub(crate) location: Option<String>,
}

impl From<Failure> for Error {
    fn from(f: Failure) -> Self {
        if f.panicked {
            Error::TaskPanicked {
                message: f.message,
                location: f.location,
            }
        } else {
            Error::Remote { message: f.message }
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&Error::from(self.clone()), f)
    }
}
