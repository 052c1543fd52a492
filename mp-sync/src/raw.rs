//! The raw lock: one futex word that names its owner process, so that a dead owner is noticed.
//!
//! | word value | meaning |
//! |---|---|
//! | `0` | unlocked |
//! | `pid` | locked by process `pid`, nobody waiting |
//! | `pid \| WAITERS` | locked by `pid`, someone may be sleeping on the word |
//! | `\| STARVING` | (with either of the above, or alone: unlocked) a sleeper has waited past [`FAIR_BOUND`]: only sleepers may take the lock |
//!
//! Acquire is a compare-exchange `0 → pid`, then a short spin (an exponential [`Backoff`]), then futex sleeps. A sleeper wakes
//! after 10 ms, then at least every [`CHECK_INTERVAL`], to ask whether the owner still lives; if it died (gone, or
//! a zombie) the sleeper takes the lock over with a compare-exchange from the dead owner's
//! value and learns [`Acquired::OwnerDied`]. Release clears the word (but for `STARVING`, which
//! keeps `WAITERS` with it) and wakes one sleeper if the `WAITERS` bit was set.
//!
//! # Eventual fairness
//!
//! A releaser that takes the lock straight back (a tight loop) wins against the sleeper it has
//! just woken nearly every time, and a sleeper could wait for seconds. So, as in parking_lot's
//! "eventual fairness", a sleeper that wakes without the lock after waiting longer than
//! [`FAIR_BOUND`] sets `STARVING`. While it is set the fast path and the spinners of newcomers
//! fail (the word is not `0`), and an unlocked `STARVING` word is taken only by a thread that
//! has slept on it: the sleepers, which the kernel wakes in turn, one per release. The first
//! sleeper that gets the lock after waiting past the bound clears the bit; one that has not
//! waited that long keeps it, so a starving sleeper keeps its claim. A `STARVING` bit left by
//! a sleeper that gave up (its timeout) or died costs newcomers one short sleep: the first that
//! wakes on its own takes the lock and, having waited past the bound, clears the bit. A
//! non-blocking try (`acquire(False)`) takes any unlocked word, as Python's does.
//! Uncontended acquires and the handoff between two processes never wait that long, so they
//! never see the bit.
//!
//! A pid reused by an unrelated process before anyone looks makes a dead owner look alive;
//! Linux hands out pids in increasing order, so that takes a full wrap of the pid space.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use mp_core::spin::Backoff;
use mp_core::Deadline;

use crate::futex::{self, Woke};
use crate::segment;

/// Set in the word when a sleeper may be waiting.
const WAITERS: u32 = 1 << 31;
/// Set in the word when a sleeper has waited past [`FAIR_BOUND`]: newcomers must not barge in.
const STARVING: u32 = 1 << 30;
/// The owner's pid (Linux's `pid_max` is at most 2^22).
const PID_MASK: u32 = !(WAITERS | STARVING);
/// How long a sleeper waits before it claims the lock's next release (parking_lot hands a
/// lock over after 0.5 ms; a process switch costs more than a thread switch).
const FAIR_BOUND: Duration = Duration::from_millis(2);
/// How often a sleeper checks that the owner lives.
pub(crate) const CHECK_INTERVAL: Duration = Duration::from_millis(100);
/// The first check comes sooner, so a lock whose owner is already dead is taken over fast.
const FIRST_CHECK: Duration = Duration::from_millis(10);

/// How an acquire ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Acquired {
    /// Got the lock.
    Yes,
    /// Got the lock from an owner that died holding it.
    OwnerDied,
    /// Did not get it before the deadline (or at once, for a try).
    No,
}

/// Whether process `pid` still runs (a zombie does not).
pub(crate) fn alive(pid: u32) -> bool {
    mp_core::process_is_alive(pid)
}

/// Tries to take `word` without blocking; a dead owner's lock is taken over. An unlocked word
/// is taken even when a sleeper claims it (`STARVING`): Python's `acquire(False)` of a free
/// lock succeeds.
pub(crate) fn try_lock(word: &AtomicU32) -> Acquired {
    let me = segment::pid();
    let mut v = 0;
    loop {
        match word.compare_exchange(v, me | v, Ordering::Acquire, Ordering::Relaxed) {
            Ok(_) => return Acquired::Yes,
            Err(seen) if seen & PID_MASK == 0 => v = seen,
            Err(seen) => return take_over_if_dead(word, seen, me),
        }
    }
}

/// Takes the lock from a dead owner, if `seen` names one and nobody changed the word since.
fn take_over_if_dead(word: &AtomicU32, seen: u32, me: u32) -> Acquired {
    let owner = seen & PID_MASK;
    if owner != 0 && owner != me && !alive(owner) {
        // Keep the waiters and starving bits: others may sleep on the word.
        let new = me | (seen & (WAITERS | STARVING));
        if word
            .compare_exchange(seen, new, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            return Acquired::OwnerDied;
        }
    }
    Acquired::No
}

/// Takes `word`, waiting until `deadline`.
#[inline]
pub(crate) fn lock(word: &AtomicU32, deadline: Deadline) -> Acquired {
    let me = segment::pid();
    if word
        .compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
        .is_ok()
    {
        return Acquired::Yes;
    }
    lock_slow(word, me, deadline)
}

#[cold]
fn lock_slow(word: &AtomicU32, me: u32, deadline: Deadline) -> Acquired {
    let mut checks = 0u32;
    let mut backoff = Backoff::new();
    while backoff.snooze() {
        if word.load(Ordering::Relaxed) == 0
            && word
                .compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
        {
            return Acquired::Yes;
        }
    }
    // When this thread first slept on the word (only sleepers may take a `STARVING` word);
    // read only once it has, so the handoff that spinning catches costs no clock read.
    let mut slept: Option<std::time::Instant> = None;
    loop {
        let v = word.load(Ordering::Relaxed);
        if v & PID_MASK == 0 && (v & STARVING == 0 || slept.is_some()) {
            // Unlocked. Others may sleep on the word: keep the bit so our release wakes them;
            // clear `STARVING` if this wait was past the bound (the claim was ours, or whoever
            // made it has been served by the kernel's turn order before us).
            let starving = if v & STARVING != 0 && slept.is_some_and(|t| t.elapsed() < FAIR_BOUND) {
                STARVING
            } else {
                0
            };
            if word
                .compare_exchange(
                    v,
                    me | WAITERS | starving,
                    Ordering::Acquire,
                    Ordering::Relaxed,
                )
                .is_ok()
            {
                return Acquired::Yes;
            }
            continue;
        }
        // Going to sleep (again): say so, and claim the next release once past the bound.
        let mut want = v | WAITERS;
        if v & STARVING == 0 && slept.is_some_and(|t| t.elapsed() >= FAIR_BOUND) {
            want |= STARVING;
        }
        if want != v
            && word
                .compare_exchange(v, want, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            continue;
        }
        let slice = if checks == 0 {
            FIRST_CHECK
        } else {
            CHECK_INTERVAL
        };
        checks += 1;
        let slice_end = Deadline::at(deadline.slice(slice));
        if slept.is_none() {
            slept = Some(std::time::Instant::now());
        }
        let woke = futex::wait(word, want, slice_end);
        if woke == Woke::TimedOut {
            let now = word.load(Ordering::Relaxed);
            if now & PID_MASK == 0 {
                continue;
            }
            if take_over_if_dead(word, now, me) == Acquired::OwnerDied {
                return Acquired::OwnerDied;
            }
            if deadline.has_passed() {
                return Acquired::No;
            }
        }
    }
}

/// Releases `word`; false if it was not locked.
#[inline]
pub(crate) fn unlock(word: &AtomicU32) -> bool {
    // Keeps `STARVING` (the next holder must be a sleeper), and with it `WAITERS`.
    let mut v = word.load(Ordering::Relaxed);
    loop {
        let new = if v & STARVING != 0 {
            STARVING | WAITERS
        } else {
            0
        };
        match word.compare_exchange_weak(v, new, Ordering::Release, Ordering::Relaxed) {
            Ok(_) => break,
            Err(seen) => v = seen,
        }
    }
    if v & WAITERS != 0 {
        futex::wake(word, 1);
    }
    v & PID_MASK != 0
}

/// The pid that holds `word` (0 when unlocked).
#[inline]
pub(crate) fn owner(word: &AtomicU32) -> u32 {
    word.load(Ordering::Relaxed) & PID_MASK
}
