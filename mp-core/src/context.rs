//! Start methods and contexts: `set_start_method`, `get_context`, `set_executable`.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Mutex;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::connection::{pipe, Connection};
use crate::error::{Error, Result};
use crate::process::Process;

/// How a child process is started.
///
/// Python: the names `'fork'`, `'spawn'` and `'forkserver'` of `multiprocessing.set_start_method`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum StartMethod {
    /// `fork()` this process; the child runs the target and leaves with `_exit`. Fastest; runs
    /// closures; inherits everything, including the hazards of forking a multithreaded parent.
    Fork,
    /// Re-execute this program (see [`set_executable`]); the child takes over before `main`
    /// runs and runs a `fn(A) -> R` with serialized arguments.
    Spawn,
    /// Ask a single-threaded server, started by spawn on first use, to fork the child.
    Forkserver,
}

impl StartMethod {
    /// Python's name for the method: `"fork"`, `"spawn"` or `"forkserver"`.
    pub fn as_str(self) -> &'static str {
        match self {
            StartMethod::Fork => "fork",
            StartMethod::Spawn => "spawn",
            StartMethod::Forkserver => "forkserver",
        }
    }
}

impl fmt::Display for StartMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for StartMethod {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "fork" => Ok(StartMethod::Fork),
            "spawn" => Ok(StartMethod::Spawn),
            "forkserver" => Ok(StartMethod::Forkserver),
            other => Err(Error::InvalidArgument(format!(
                "cannot find context for {other:?}"
            ))),
        }
    }
}

static START_METHOD: Mutex<Option<StartMethod>> = Mutex::new(None);
static EXECUTABLE: Mutex<Option<PathBuf>> = Mutex::new(None);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The default start method's lock, held across `fork` so that a forked child finds it
/// released and can set its own.
pub(crate) fn start_method_lock() -> std::sync::MutexGuard<'static, Option<StartMethod>> {
    lock(&START_METHOD)
}

/// Sets the default start method, once.
///
/// Python: `multiprocessing.set_start_method(method)`; a second call fails with
/// [`Error::InvalidState`] ("context has already been set"), as in Python. See
/// [`set_start_method_force`].
pub fn set_start_method(method: StartMethod) -> Result<()> {
    let mut current = lock(&START_METHOD);
    if current.is_some() {
        return Err(Error::InvalidState("context has already been set".into()));
    }
    *current = Some(method);
    Ok(())
}

/// Sets (or with `None` clears) the default start method even if it was set before.
///
/// Python: `multiprocessing.set_start_method(method, force=True)`.
pub fn set_start_method_force(method: Option<StartMethod>) {
    *lock(&START_METHOD) = method;
}

/// The default start method: the one set, else [`StartMethod::Fork`] (Linux's default), which
/// then becomes fixed.
///
/// Python: `multiprocessing.get_start_method()`.
pub fn get_start_method() -> StartMethod {
    *lock(&START_METHOD).get_or_insert(StartMethod::Fork)
}

/// The start method if one was set or fixed, without fixing it.
///
/// Python: `multiprocessing.get_start_method(allow_none=True)`.
pub fn get_start_method_if_set() -> Option<StartMethod> {
    *lock(&START_METHOD)
}

/// Every start method this platform offers, the default first.
///
/// Python: `multiprocessing.get_all_start_methods()`.
pub fn get_all_start_methods() -> Vec<StartMethod> {
    vec![
        StartMethod::Fork,
        StartMethod::Spawn,
        StartMethod::Forkserver,
    ]
}

/// Sets the executable that spawn and forkserver run (default: this program, through
/// `/proc/self/exe`). It must be this very binary: any other is rejected by the function
/// identity check when a child starts.
///
/// Python: `multiprocessing.set_executable(path)`. `None` restores the default.
pub fn set_executable(path: Option<PathBuf>) {
    *lock(&EXECUTABLE) = path;
}

static FORKSERVER_PRELOAD: Mutex<Vec<fn()>> = Mutex::new(Vec::new());

/// Sets what the fork server runs once, before it forks its first child: its children then start
/// with whatever these functions set up (statics initialized, libraries loaded, caches warmed),
/// without paying for it each.
///
/// Python: `multiprocessing.set_forkserver_preload(module_names)`, which imports modules in the
/// server; a Rust program has no modules to import, so it names functions instead. Like Python's,
/// it applies to a fork server started afterwards (one already running keeps what it ran). A
/// preload function that panics is reported on the server's stderr and skipped, as CPython skips
/// a module that fails to import.
pub fn set_forkserver_preload(preload: &[fn()]) {
    *lock(&FORKSERVER_PRELOAD) = preload.to_vec();
}

/// What the next fork server runs first.
pub(crate) fn forkserver_preload() -> Vec<fn()> {
    lock(&FORKSERVER_PRELOAD).clone()
}

/// The executable spawn and forkserver run.
pub(crate) fn executable() -> PathBuf {
    lock(&EXECUTABLE)
        .clone()
        .unwrap_or_else(|| PathBuf::from("/proc/self/exe"))
}

/// A start method bound to the constructors that use it.
///
/// Python: `multiprocessing.get_context(method)`: the same API as the top level, with its own
/// start method.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Context {
    method: StartMethod,
}

/// A [`Context`] for `method`, or for the default start method when `None`.
///
/// Python: `multiprocessing.get_context(method=None)`.
pub fn get_context(method: Option<StartMethod>) -> Context {
    Context {
        method: method.unwrap_or_else(get_start_method),
    }
}

impl Context {
    /// This context's start method. Python: `ctx.get_start_method()`.
    pub fn get_start_method(&self) -> StartMethod {
        self.method
    }

    /// [`Process::new`] under this context's start method. Python: `ctx.Process(target, args)`.
    pub fn process<A, R>(&self, target: fn(A) -> R, args: A) -> Process<R>
    where
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + 'static,
    {
        Process::new(target, args).start_method(self.method)
    }

    /// [`Process::from_closure`] under this context's start method (fork only).
    pub fn process_closure<F, R>(&self, target: F) -> Process<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Serialize + DeserializeOwned + 'static,
    {
        Process::from_closure(target).start_method(self.method)
    }

    /// [`pipe`]. Python: `ctx.Pipe(duplex)`.
    pub fn pipe(&self, duplex: bool) -> Result<(Connection, Connection)> {
        pipe(duplex)
    }

    /// [`cpu_count`](crate::cpu_count). Python: `ctx.cpu_count()`.
    pub fn cpu_count(&self) -> usize {
        crate::process::cpu_count()
    }
}
