//! The raw lock: one futex word that names its owner process, so that a dead owner is noticed.
//!
//! | word value | meaning |
//! |---|---|
//! | `0` | unlocked |
//! | `pid` | locked by process `pid`, nobody waiting |
//! | `pid \| WAITERS` | locked by `pid`, someone may be sleeping on the word |
//! | `\| STARVING` | (with either of the above, or alone: unlocked) a sleeper has waited past [`FAIR_BOUND`]: only sleepers may take the lock |
//!
//! Acquire is a compare-exchange `0 → pid`, then a short spin (an exponential [`Backoff`]),
//! then futex sleeps. A sleeper wakes after 10 ms, then at least every [`CHECK_INTERVAL`], to
//! ask whether the owner still lives; if it died (gone, or a zombie) the sleeper takes the
//! lock over with a compare-exchange from the dead owner's value and learns
//! [`Acquired::OwnerDied`].
//!
//! Beside the word, a count of the threads in a sleep on it (from their first futex sleep until
//! their acquire returns). Release with nobody counted is a plain store of 0 and a plain load of
//! the count, made safe by an asymmetric fence (see [`unlock_held`] and `fence.rs`): no
//! read-modify-write, so an acquire and release pair costs one compare-exchange, as a bare
//! spinlock's does. With someone counted, release is a compare-exchange that clears the word
//! (but for `STARVING`, which keeps `WAITERS` with it) and wakes one sleeper. A process killed
//! while counted leaves the count one too high: every later release then takes the
//! compare-exchange path, correct and about as fast as before the plain-store release.
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

use crate::fence;
use crate::futex::{self, Woke};
use crate::segment;

mp_core::shared_state! {
    /// A raw lock in shared memory: the word, and how many threads sleep on it (or are about
    /// to), which a release that stored 0 over the word reads to know whether to wake one.
    pub(crate) struct RawWord {
        word: AtomicU32,
        sleepers: AtomicU32,
    }
}

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
pub(crate) fn try_lock(w: &RawWord) -> Acquired {
    let word = &w.word;
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

/// Takes an unlocked word at once (`0 → pid`); false otherwise.
#[inline]
pub(crate) fn try_free(w: &RawWord) -> bool {
    w.word
        .compare_exchange(0, segment::pid(), Ordering::Acquire, Ordering::Relaxed)
        .is_ok()
}

/// Takes the lock, waiting until `deadline`.
#[inline]
pub(crate) fn lock(w: &RawWord, deadline: Deadline) -> Acquired {
    if try_free(w) {
        return Acquired::Yes;
    }
    lock_slow(w, segment::pid(), deadline)
}

#[cold]
fn lock_slow(w: &RawWord, me: u32, deadline: Deadline) -> Acquired {
    let word = &w.word;
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
    // Counted among the sleepers from the first sleep until this call returns.
    let mut counted: Option<Sleeper<'_>> = None;
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
        if counted.is_none() {
            counted = Some(Sleeper::count(w));
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

/// One thread counted among a word's sleepers; uncounted when dropped.
struct Sleeper<'a>(&'a RawWord);

impl<'a> Sleeper<'a> {
    /// Counts this thread among the sleepers, then runs the heavy [`fence`]: a release that
    /// stores 0 over the word without looking at it loads the count after its store, and the
    /// fence makes that load see this count (or the kernel's compare see that store, and the
    /// futex wait return at once). Once the count is seen everywhere, the fence need not be
    /// repeated for later sleeps of the same wait.
    fn count(w: &'a RawWord) -> Sleeper<'a> {
        w.sleepers.fetch_add(1, Ordering::SeqCst);
        fence::heavy();
        Sleeper(w)
    }
}

impl Drop for Sleeper<'_> {
    fn drop(&mut self) {
        self.0.sleepers.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Releases the lock; false if it was not locked.
#[inline]
pub(crate) fn unlock(w: &RawWord) -> bool {
    if owner(w) == 0 {
        return unlock_slow(w);
    }
    unlock_held(w);
    true
}

/// Releases a lock the caller knows to be locked (its owner, or a `Lock` whose owner thread
/// is recorded).
///
/// With nobody in a sleep on the word, the release is a plain store of 0, then a plain load
/// of the sleepers' count, which wakes one if a sleeper was counted meanwhile: an asymmetric
/// Dekker with the heavy [`fence`] each sleeper runs once (as in liburcu and folly). The word
/// itself is not read: a load right after the acquire's compare-exchange waits for that
/// write to complete, which costs as much again as the release. Where the fence is missing, or
/// someone sleeps (and may have claimed the next turn with `STARVING`), a compare-exchange.
#[inline]
pub(crate) fn unlock_held(w: &RawWord) {
    if w.sleepers.load(Ordering::Relaxed) == 0 && fence::light_side_ready() {
        w.word.store(0, Ordering::Release);
        // The compiler must not move the load above the store; the CPU's own reordering is
        // what the heavy fence takes care of.
        std::sync::atomic::compiler_fence(Ordering::SeqCst);
        if w.sleepers.load(Ordering::Relaxed) != 0 {
            futex::wake(&w.word, 1);
        }
        return;
    }
    unlock_slow(w);
}

#[cold]
#[inline(never)]
fn unlock_slow(w: &RawWord) -> bool {
    let word = &w.word;
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
    if v & WAITERS != 0 || w.sleepers.load(Ordering::SeqCst) != 0 {
        futex::wake(word, 1);
    }
    v & PID_MASK != 0
}

/// The pid that holds the lock (0 when unlocked).
#[inline]
pub(crate) fn owner(w: &RawWord) -> u32 {
    w.word.load(Ordering::Relaxed) & PID_MASK
}
