//! Spinning before sleeping: the stack's one policy for a wait that is usually short. Beyond
//! Python.
//!
//! A thread that sleeps costs its waker a wake-up, and on a virtual machine whose idle CPU
//! halts, the wake-up waits for the host to run that CPU again. On this project's 2-CPU VM a
//! pipe round trip between two processes measured 6 µs with both on one CPU and 60–100 µs
//! across the two, in one state of its host (7–15 µs in another). A waiter that expects its
//! answer within microseconds (a `recv` in a request/reply exchange, a manager's proxy, the
//! manager's server between a client's requests) therefore looks for it without blocking for
//! up to [`SPIN`] before it sleeps, yielding the CPU between looks: on a busy machine a
//! runnable thread (perhaps the very peer it waits for) runs instead, on an idle one the look
//! comes again at once.
//!
//! At most one fewer thread than there are CPUs spin at once in a process (at least one; none
//! on a machine with one CPU, where the awaited thread could not run meanwhile): a [`Spinner`]
//! is the right to spin. Under a crowd of waiters the others sleep at once, so spinning never
//! takes the CPUs the awaited work needs.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long a waiter looks before it sleeps.
pub const SPIN: Duration = Duration::from_micros(50);

/// Spinners now.
static SPINNERS: AtomicUsize = AtomicUsize::new(0);

/// In a new child (the fork hook): the threads that held the right to spin stayed in the
/// parent, and would otherwise hold it here forever.
pub(crate) fn forget_spinners_in_child() {
    SPINNERS.store(0, Ordering::Relaxed);
}

/// The right of one thread to spin (see the [module](self)); given back when dropped.
#[derive(Debug)]
pub struct Spinner {
    _private: (),
}

impl Spinner {
    /// The right to spin, if fewer than `cpu_count() - 1` (at least one) threads of this
    /// process hold it and this machine has several CPUs.
    pub fn take() -> Option<Spinner> {
        static MAX: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
        let max = *MAX.get_or_init(|| crate::process::cpu_count().saturating_sub(1));
        SPINNERS
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| Spinner { _private: () })
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        SPINNERS.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Calls `done` until it says yes (`true`) or `limit` has passed (`false`), yielding the CPU
/// between calls; `false` at once when no [`Spinner`] is free.
pub fn spin_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let Some(_spinner) = Spinner::take() else {
        return false;
    };
    let t0 = Instant::now();
    loop {
        if done() {
            return true;
        }
        if t0.elapsed() >= limit {
            return false;
        }
        std::thread::yield_now();
    }
}
