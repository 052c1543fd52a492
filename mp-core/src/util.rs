//! Finalizers: Python's `multiprocessing.util.Finalize`.
//!
//! A [`Finalize`] is a callback registered in this process, run at most once: when it is
//! called ([`Finalize::call`]), or at this process's exit if it has an exit priority. At exit,
//! as in CPython's `util._exit_function`, the finalizers with priority `>= 0` run first, then
//! daemonic children are terminated and the others joined, then the remaining finalizers (those
//! with a negative priority) run; a higher priority runs earlier, and among equal priorities the
//! later-made finalizer runs first. A finalizer without a priority runs only when called.
//!
//! "At exit" means: in the main process, when it exits normally (returns from `main` or calls
//! `std::process::exit`; the hook is `atexit`, registered by the first finalizer with a
//! priority); in a child process, when its target has returned, panicked or called
//! [`exit`](crate::exit). A process killed by a signal runs nothing.
//!
//! Finalizers belong to the process that made them: a child (under every start method, fork
//! included) starts with none, and a handle to a parent's finalizer does nothing in a child.
//! In a forked child the parent's callbacks are neither run nor dropped (their captured values
//! might be resources the parent still owns).
//!
//! Python's `Finalize(obj, callback)` also runs when `obj` is garbage-collected; in Rust, the
//! object calls [`Finalize::call`] from its `Drop`.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Mutex, MutexGuard, PoisonError};

use once_cell::sync::Lazy;

/// What a finalizer runs.
type Callback = Box<dyn FnOnce() + Send + 'static>;

struct Entry {
    priority: Option<i32>,
    callback: Callback,
}

/// The finalizers of this process, by creation number.
struct Registry {
    /// The process these entries belong to.
    pid: i32,
    next: u64,
    entries: BTreeMap<u64, Entry>,
}

static REGISTRY: Lazy<Mutex<Registry>> = Lazy::new(|| {
    Mutex::new(Registry {
        pid: this_pid(),
        next: 0,
        entries: BTreeMap::new(),
    })
});

fn this_pid() -> i32 {
    rustix::process::getpid().as_raw_nonzero().get()
}

/// The registry, emptied first if it was inherited from a parent by `fork`: the parent's
/// callbacks are forgotten, never run nor dropped here.
fn registry() -> MutexGuard<'static, Registry> {
    let mut r = REGISTRY.lock().unwrap_or_else(PoisonError::into_inner);
    let me = this_pid();
    if r.pid != me {
        r.pid = me;
        std::mem::forget(std::mem::take(&mut r.entries));
    }
    r
}

/// A registered finalizer: a callback run at most once, when called or at exit.
///
/// Python: `multiprocessing.util.Finalize(obj, callback, args, kwargs, exitpriority)`. The
/// callback is any `FnOnce() + Send` (Python's `callback(*args, **kwargs)`); there is no `obj`
/// (see the [module docs](self)). Handles are `Clone`; every clone names the same finalizer.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use mp_core::util::Finalize;
///
/// let log = Arc::new(Mutex::new(Vec::new()));
/// let l = log.clone();
/// let f = Finalize::new(move || l.lock().unwrap().push("cleaned up"), Some(0));
/// assert!(f.still_active());
/// assert!(f.call()); // runs it now...
/// assert!(!f.call()); // ...once
/// assert!(!f.still_active());
/// assert_eq!(*log.lock().unwrap(), ["cleaned up"]);
/// ```
#[derive(Clone, Debug)]
#[must_use = "a finalizer without a priority runs only when called"]
pub struct Finalize {
    id: u64,
    pid: i32,
}

impl Finalize {
    /// Registers `callback`, to run once: when [`call`](Self::call)ed, or at this process's
    /// exit if `exitpriority` is `Some` (see the [module docs](self) for the order).
    ///
    /// Python: `Finalize(obj, callback, exitpriority=...)`.
    pub fn new(callback: impl FnOnce() + Send + 'static, exitpriority: Option<i32>) -> Finalize {
        if exitpriority.is_some() {
            crate::process::ensure_at_exit();
        }
        let mut r = registry();
        let id = r.next;
        r.next += 1;
        r.entries.insert(
            id,
            Entry {
                priority: exitpriority,
                callback: Box::new(callback),
            },
        );
        Finalize { id, pid: r.pid }
    }

    /// Runs the callback now, unless it already ran, was cancelled, or belongs to another
    /// process; returns whether it ran. A panic in the callback is caught and reported on
    /// stderr (Python logs the exception), and counts as run.
    ///
    /// Python: `Finalize.__call__()`.
    pub fn call(&self) -> bool {
        match self.take() {
            Some(entry) => {
                run(entry.callback);
                true
            }
            None => false,
        }
    }

    /// Unregisters the callback without running it (it is dropped). Python: `Finalize.cancel()`.
    pub fn cancel(&self) {
        drop(self.take());
    }

    /// Whether the callback is still to run. Python: `Finalize.still_active()`.
    pub fn still_active(&self) -> bool {
        let r = registry();
        r.pid == self.pid && r.entries.contains_key(&self.id)
    }

    /// The exit priority given to [`new`](Self::new) (`None` once it ran or was cancelled).
    pub fn exitpriority(&self) -> Option<i32> {
        let r = registry();
        if r.pid != self.pid {
            return None;
        }
        r.entries.get(&self.id).and_then(|e| e.priority)
    }

    fn take(&self) -> Option<Entry> {
        let mut r = registry();
        if r.pid != self.pid {
            return None;
        }
        r.entries.remove(&self.id)
    }
}

/// Runs one callback, catching a panic.
fn run(callback: Callback) {
    if catch_unwind(AssertUnwindSafe(callback)).is_err() {
        eprintln!("multiprocessing: a finalizer panicked");
    }
}

/// Python's `util._run_finalizers(minpriority)`: runs every finalizer with a priority (at least
/// `minpriority`, when given), highest first, later-made first among equals. Callbacks run
/// outside the registry lock, so they may make or call finalizers themselves.
pub(crate) fn run_finalizers(minpriority: Option<i32>) {
    loop {
        let next = {
            let mut r = registry();
            let key = r
                .entries
                .iter()
                .filter_map(|(&id, e)| e.priority.map(|p| (p, id)))
                .filter(|&(p, _)| minpriority.map_or(true, |min| p >= min))
                .max();
            key.and_then(|(_, id)| r.entries.remove(&id))
        };
        match next {
            Some(entry) => run(entry.callback),
            None => return,
        }
    }
}
