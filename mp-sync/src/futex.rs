//! Futex waits with deadlines on words shared between processes (no `FUTEX_PRIVATE_FLAG`): the
//! building block of every primitive here, public for the crates above (queues, pools).
//!
//! A waiter loads a word, checks its condition, and calls [`wait`] with the value it saw; a
//! waker changes the word, then calls [`wake`]. The kernel compares the word with the expected
//! value atomically with going to sleep, so no wake-up is lost.

use std::sync::atomic::AtomicU32;
use std::time::Duration;

use mp_core::Deadline;

use rustix::io::Errno;
use rustix::thread::futex;

/// Why [`wait`] returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Woke {
    /// Woken, interrupted or the value had already changed: look again.
    Maybe,
    /// The deadline passed.
    TimedOut,
}

/// Sleeps while `word == expected`, until woken or `deadline`.
pub fn wait(word: &AtomicU32, expected: u32, deadline: Deadline) -> Woke {
    let timeout = match deadline.remaining() {
        None => None,
        Some(left) if left.is_zero() => return Woke::TimedOut,
        Some(left) => Some(timespec(left)),
    };
    match futex::wait(word, futex::Flags::empty(), expected, timeout.as_ref()) {
        Err(Errno::TIMEDOUT) => Woke::TimedOut,
        // Woken, EAGAIN (the value changed), EINTR: all mean "look again".
        _ => Woke::Maybe,
    }
}

/// The longest [`wait_sliced`] sleeps before it returns to look again.
pub const SLICE: Duration = Duration::from_millis(100);

/// [`wait`] in slices of at most [`SLICE`]: [`Woke::TimedOut`] only once `deadline` has
/// passed, [`Woke::Maybe`] otherwise.
///
/// For words whose waker may die between changing the word and waking the sleepers (a
/// process killed at that instant): the sleepers then notice the change within a slice.
pub fn wait_sliced(word: &AtomicU32, expected: u32, deadline: Deadline) -> Woke {
    match wait(word, expected, Deadline::at(deadline.slice(SLICE))) {
        Woke::TimedOut if deadline.has_passed() => Woke::TimedOut,
        _ => Woke::Maybe,
    }
}

/// Wakes up to `n` sleepers on `word`.
pub fn wake(word: &AtomicU32, n: u32) {
    let _ = futex::wake(word, futex::Flags::empty(), n);
}

/// Wakes every sleeper on `word`.
pub fn wake_all(word: &AtomicU32) {
    wake(word, i32::MAX as u32);
}

fn timespec(d: Duration) -> futex::Timespec {
    futex::Timespec {
        tv_sec: d.as_secs().min(i64::MAX as u64) as i64,
        tv_nsec: i64::from(d.subsec_nanos()),
    }
}
