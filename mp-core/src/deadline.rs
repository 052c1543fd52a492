//! [`Deadline`]: the one wait type under every blocking call of the stack, and the timeout
//! contract that every crate follows.
//!
//! # The timeout contract
//!
//! Every blocking operation `x` of every crate (`mp-core`, `mp-sync`, `mp-shared`, `mp-queue`,
//! `mp-connection`, and the pool and manager built on them) comes as:
//!
//! | method | waits | Python |
//! |---|---|---|
//! | `x()` | forever | `x()`, `x(timeout=None)` |
//! | `x_timeout(Duration)` | at most the duration | `x(timeout=t)` |
//! | `x_deadline(Instant)` | until the instant (a [`Deadline`] is accepted too) | (none) |
//! | `try_x()` or `x_nowait()` | not at all | `x(block=False)`, `x_nowait()` |
//!
//! The last three are one-line wrappers over one internal `x_until(Deadline)`; the fourth
//! exists only where Python has `block=False` (`try_` where Python's name has no `_nowait`).
//! No public method takes an `Option<Duration>` or an `Option<Instant>`: "no limit" is the plain
//! method. A duration too long to add to the clock waits forever. `x_deadline` takes
//! `impl Into<Deadline>`: an `Instant`, or a [`Deadline`] that code built on this one passes
//! through unchanged (a pool bounding many waits by one deadline, say).
//!
//! What a timeout returns follows one rule, Python's:
//!
//! 1. Where Python returns a bool (`Lock.acquire`, `Semaphore.acquire`, `Event.wait`,
//!    `Condition.wait`, `Condition.wait_for`, `Connection.poll`), Rust returns `Ok(true)` when it
//!    happened and `Ok(false)` when the time ran out.
//! 2. Where Python raises (`Queue.get` → `queue.Empty`, `Queue.put` → `queue.Full`,
//!    `Barrier.wait` → `BrokenBarrierError`, a socket timeout in `Listener.accept`, `Client` or a
//!    `recv` → `TimeoutError`), Rust returns that typed error (`Empty`, `Full`, `BrokenBarrier`,
//!    `Timeout`).
//! 3. Where Python returns `None` and the caller looks at the object (`Process.join` then
//!    `exitcode`; `connection.wait` returns the ready objects), Rust returns what the caller would
//!    look at: `Ok(Some(exit code))` or `Ok(None)` while the child runs; the ready indices, empty
//!    on timeout.
//! 4. Where Python has no timeout at all (`JoinableQueue.join`, `SimpleQueue.get`), Rust's
//!    `_timeout` form follows the nearest Python operation: a wait for a state is rule 1
//!    (`JoinableQueue::join_timeout` → `Ok(bool)`, as `Event.wait`), a fetch is rule 2
//!    (`SimpleQueue::get_timeout` → `Err(Empty)`, as `Queue.get`).
//!
//! Sleeps never spin past a short adaptive spin, and `EINTR` is retried with the time left.

use std::time::{Duration, Instant};

/// When a blocking operation gives up: never, or at an instant.
///
/// The one wait type of the stack (see the [module docs](self) for the contract built on it):
/// every `x()`, `x_timeout(d)`, `x_deadline(t)` and `try_x()` is a call of one internal
/// `x_until(Deadline)` with [`Deadline::NEVER`], [`Deadline::after`]`(d)`,
/// [`Deadline::at`]`(t)` or [`Deadline::now`]`()`. Crates built on `mp-core` use it the same way.
///
/// Beyond Python (which has only relative timeouts): deadlines compose, so an operation made of
/// several waits (a handshake, a pool's `get` over many results) is bounded as a whole.
///
/// [`Deadline::now`] reads no clock: a `try_x` costs what the attempt costs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Deadline(When);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum When {
    Never,
    /// Already passed: only look.
    Now,
    At(Instant),
}

impl Deadline {
    /// Waits forever.
    pub const NEVER: Deadline = Deadline(When::Never);

    /// Gives up at once: only looks (the `try_x`/`x_nowait` form).
    #[inline]
    pub fn now() -> Deadline {
        Deadline(When::Now)
    }

    /// Gives up `timeout` from now; a timeout too long to add to the clock waits forever.
    #[inline]
    pub fn after(timeout: Duration) -> Deadline {
        Instant::now()
            .checked_add(timeout)
            .map_or(Deadline::NEVER, Deadline::at)
    }

    /// Gives up at `instant`.
    #[inline]
    pub fn at(instant: Instant) -> Deadline {
        Deadline(When::At(instant))
    }

    /// The instant (the present one for [`Deadline::now`]), or `None` for [`Deadline::NEVER`].
    #[inline]
    pub fn instant(self) -> Option<Instant> {
        match self.0 {
            When::Never => None,
            When::Now => Some(Instant::now()),
            When::At(d) => Some(d),
        }
    }

    /// Whether this is [`Deadline::NEVER`].
    #[inline]
    pub fn is_never(self) -> bool {
        self.0 == When::Never
    }

    /// Whether the instant has come (never true for [`Deadline::NEVER`], always for
    /// [`Deadline::now`]).
    #[inline]
    pub fn has_passed(self) -> bool {
        match self.0 {
            When::Never => false,
            When::Now => true,
            When::At(d) => Instant::now() >= d,
        }
    }

    /// The time left, zero once it has passed; `None` for [`Deadline::NEVER`].
    #[inline]
    pub fn remaining(self) -> Option<Duration> {
        match self.0 {
            When::Never => None,
            When::Now => Some(Duration::ZERO),
            When::At(d) => Some(d.saturating_duration_since(Instant::now())),
        }
    }

    /// The earlier of the two.
    #[inline]
    pub fn min(self, other: Deadline) -> Deadline {
        match (self.0, other.0) {
            (When::Now, _) | (_, When::Now) => Deadline::now(),
            (When::At(a), When::At(b)) => Deadline::at(a.min(b)),
            (When::At(_), When::Never) => self,
            (When::Never, _) => other,
        }
    }

    /// The end of one sleep of at most `slice`: the earlier of this deadline and `slice` from
    /// now. For waits that must look around every so often (a dead owner, a dead waker).
    #[inline]
    pub fn slice(self, slice: Duration) -> Instant {
        let now = Instant::now();
        let end = now + slice;
        match self.0 {
            When::Now => now,
            When::At(d) if d < end => d,
            _ => end,
        }
    }
}

impl From<Instant> for Deadline {
    fn from(instant: Instant) -> Deadline {
        Deadline::at(instant)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_never_passes_and_has_no_instant() {
        assert!(Deadline::NEVER.is_never());
        assert!(!Deadline::NEVER.has_passed());
        assert_eq!(Deadline::NEVER.remaining(), None);
        assert_eq!(Deadline::NEVER.instant(), None);
    }

    #[test]
    fn now_has_passed_and_after_has_not() {
        assert!(Deadline::now().has_passed());
        assert_eq!(Deadline::now().remaining(), Some(Duration::ZERO));
        let d = Deadline::after(Duration::from_secs(60));
        assert!(!d.has_passed());
        assert!(d.remaining().unwrap() > Duration::from_secs(59));
    }

    #[test]
    fn a_timeout_too_long_for_the_clock_waits_forever() {
        assert_eq!(Deadline::after(Duration::MAX), Deadline::NEVER);
    }

    #[test]
    fn min_and_slice_take_the_earlier() {
        let soon = Deadline::after(Duration::from_millis(10));
        let late = Deadline::after(Duration::from_secs(10));
        assert_eq!(soon.min(late), soon);
        assert_eq!(late.min(soon), soon);
        assert_eq!(Deadline::NEVER.min(soon), soon);
        assert_eq!(soon.min(Deadline::NEVER), soon);
        assert_eq!(soon.slice(Duration::from_secs(1)), soon.instant().unwrap());
        let end = late.slice(Duration::from_millis(5));
        assert!(end < late.instant().unwrap());
        assert!(Deadline::NEVER.slice(Duration::from_millis(5)) > Instant::now());
        assert_eq!(Deadline::now().min(late), Deadline::now());
        assert!(Deadline::now().slice(Duration::from_secs(1)) <= Instant::now());
    }
}
