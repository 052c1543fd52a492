//! The raw lock: one futex word that names its owner process, so that a dead owner is noticed.
//!
//! | word value | meaning |
//! |---|---|
//! | `0` | unlocked |
//! | `pid` | locked by process `pid`, nobody waiting |
//! | `pid \| WAITERS` | locked by `pid`, someone may be sleeping on the word |
//!
//! Acquire is a compare-exchange `0 → pid`, then a short spin, then futex sleeps. A sleeper wakes
//! after 10 ms, then at least every [`CHECK_INTERVAL`], to ask whether the owner still lives; if it died (gone, or
//! a zombie) the sleeper takes the lock over with a compare-exchange from the dead owner's
//! value and learns [`Acquired::OwnerDied`]. Release swaps in `0` and wakes one sleeper if the
//! `WAITERS` bit was set.
//!
//! A pid reused by an unrelated process before anyone looks makes a dead owner look alive;
//! Linux hands out pids in increasing order, so that takes a full wrap of the pid space.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use mp_core::Deadline;

use crate::futex::{self, Woke};
use crate::segment;

/// Set in the word when a sleeper may be waiting.
const WAITERS: u32 = 1 << 31;
/// The owner's pid (Linux's `pid_max` is at most 2^22).
const PID_MASK: u32 = !WAITERS;
/// How often a sleeper checks that the owner lives.
pub(crate) const CHECK_INTERVAL: Duration = Duration::from_millis(100);
/// The first check comes sooner, so a lock whose owner is already dead is taken over fast.
const FIRST_CHECK: Duration = Duration::from_millis(10);
/// Spins before sleeping.
const SPINS: u32 = 100;

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

/// Tries to take `word` without blocking; a dead owner's lock is taken over.
pub(crate) fn try_lock(word: &AtomicU32) -> Acquired {
    let me = segment::pid();
    match word.compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed) {
        Ok(_) => Acquired::Yes,
        Err(v) => take_over_if_dead(word, v, me),
    }
}

/// Takes the lock from a dead owner, if `seen` names one and nobody changed the word since.
fn take_over_if_dead(word: &AtomicU32, seen: u32, me: u32) -> Acquired {
    let owner = seen & PID_MASK;
    if owner != 0 && owner != me && !alive(owner) {
        // Keep the waiters bit: others may sleep on the word.
        let new = me | (seen & WAITERS);
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
    for _ in 0..SPINS {
        std::hint::spin_loop();
        if word.load(Ordering::Relaxed) == 0
            && word
                .compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
        {
            return Acquired::Yes;
        }
    }
    loop {
        let v = word.load(Ordering::Relaxed);
        if v == 0 {
            // Others may sleep on the word: keep the bit so our release wakes them.
            if word
                .compare_exchange(0, me | WAITERS, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                return Acquired::Yes;
            }
            continue;
        }
        if v & WAITERS == 0
            && word
                .compare_exchange(v, v | WAITERS, Ordering::Relaxed, Ordering::Relaxed)
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
        if futex::wait(word, v | WAITERS, slice_end) == Woke::TimedOut {
            let now = word.load(Ordering::Relaxed);
            if now == 0 {
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
    let v = word.swap(0, Ordering::Release);
    if v & WAITERS != 0 {
        futex::wake(word, 1);
    }
    v != 0
}

/// The pid that holds `word` (0 when unlocked).
#[inline]
pub(crate) fn owner(word: &AtomicU32) -> u32 {
    word.load(Ordering::Relaxed) & PID_MASK
}
