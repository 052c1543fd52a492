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
//!
//! A wait on a word in shared memory that another CPU holds for nanoseconds (a lock word, a
//! semaphore count, a queue's tail) is shorter still: it pauses in place with a [`Backoff`]
//! before it sleeps on the word's futex.

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

/// How long a [`Backoff`] pauses, in all, before it says to sleep.
pub const BACKOFF_SPIN: Duration = Duration::from_micros(60);

/// The longest single pause of a [`Backoff`], in pause instructions (a pause takes 10-40 ns,
/// by CPU).
const BACKOFF_MAX: u32 = 256;

/// The snoozes [`Backoff::after_a_pause`] has made (1 + 2 + 4 + 8 + 16 pause instructions).
const PAUSED_STEPS: u32 = 5;

/// The step from which a [`Backoff`] reads the clock: the looks before it (31 pauses) cost no
/// clock read, and catch a word that another CPU changes within a few hundred nanoseconds.
const BACKOFF_CLOCK_STEP: u32 = 5;

/// Exponential backoff between looks at a shared word: the stack's one short spin, before a
/// futex sleep (as crossbeam's `Backoff` and parking_lot's `SpinWait`). Beyond Python.
///
/// Each [`snooze`](Backoff::snooze) pauses twice as long as the one before, up to 256 pause
/// instructions, for at most [`BACKOFF_SPIN`] in all; on a machine with one CPU it never
/// pauses, since the holder of the word cannot run meanwhile. Looking again at once, as a
/// fixed spin does, takes the word's cache line from the CPU that holds a lock every few
/// nanoseconds, so that its release and its next acquire each wait for the line to come back.
/// Two processes incrementing one locked `Value` measured 6 M increments/s with a fixed spin
/// of 100 pauses on this project's 2-CPU VM, and 24-29 M/s with this backoff for 20 µs; and
/// a waiter that spins for 20 µs instead of 1 µs catches the handoffs whose answer takes
/// longer than a halted CPU's wake-up would (a lock handed back and forth: 50 k round trips/s
/// before, over 1 M after). 60 µs rather than 20: a process that takes a lock again and again
/// (the two `Value` incrementers) often keeps it past 20 µs; the waiter that then went to sleep
/// paid the heavy fence and set the waiters' bit, and every release of the holder became a
/// compare-exchange and a futex wake-up until it got the lock: 25 M increments/s with 20 µs,
/// 35 M/s with 60 (24 alternated repetitions each), no other figure moved beyond noise.
#[derive(Debug, Default)]
pub struct Backoff {
    step: u32,
    since: Option<Instant>,
}

impl Backoff {
    /// A backoff that has not paused yet.
    pub const fn new() -> Backoff {
        Backoff {
            step: 0,
            since: None,
        }
    }

    /// A backoff that has already paused as its first five snoozes would (31 pause
    /// instructions, a few hundred nanoseconds): for a consumer about to look at a producer's
    /// word after it has taken every item it knew of. Each look takes the producer's cache
    /// line from it; a look that comes at once finds one new item, one that comes a little
    /// later finds the several that a streaming producer has put meanwhile, taken in one look.
    /// A queue between two processes carried 8-9 M small items/s with [`Backoff::new`] on this
    /// project's 2-CPU VM and 17-18 M/s with this, its round trip 0.64 µs then 0.66-0.73 µs.
    pub fn after_a_pause() -> Backoff {
        let mut b = Backoff::new();
        for _ in 0..PAUSED_STEPS {
            b.snooze();
        }
        b
    }

    /// Pauses once, longer than last time; `false` (without pausing) once [`BACKOFF_SPIN`]
    /// has passed, or at once on a machine with one CPU, when the caller should sleep
    /// instead.
    #[inline]
    pub fn snooze(&mut self) -> bool {
        if let Some(t0) = self.since {
            if t0.elapsed() >= BACKOFF_SPIN {
                return false;
            }
        } else if self.step >= BACKOFF_CLOCK_STEP {
            self.since = Some(Instant::now());
        } else if self.step == 0 && !several_cpus() {
            return false;
        }
        let n = 1u32
            .checked_shl(self.step)
            .unwrap_or(u32::MAX)
            .min(BACKOFF_MAX);
        for _ in 0..n {
            std::hint::spin_loop();
        }
        self.step = self.step.saturating_add(1);
        true
    }
}

/// Whether this machine has more than one CPU (read once).
fn several_cpus() -> bool {
    static SEVERAL: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SEVERAL.get_or_init(|| crate::process::cpu_count() > 1)
}
