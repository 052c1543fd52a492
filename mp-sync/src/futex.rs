//! Futex waits with deadlines, on words shared between processes (no `FUTEX_PRIVATE_FLAG`).

use std::sync::atomic::AtomicU32;
use std::time::{Duration, Instant};

use rustix::io::Errno;
use rustix::thread::futex;

/// Why [`wait`] returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Woke {
    /// Woken, interrupted or the value had already changed: look again.
    Maybe,
    /// The deadline passed.
    TimedOut,
}

/// Sleeps while `word == expected`, until woken or `deadline` (`None`: no deadline).
pub(crate) fn wait(word: &AtomicU32, expected: u32, deadline: Option<Instant>) -> Woke {
    let timeout = match deadline {
        None => None,
        Some(d) => {
            let left = d.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Woke::TimedOut;
            }
            Some(timespec(left))
        }
    };
    match futex::wait(word, futex::Flags::empty(), expected, timeout.as_ref()) {
        Err(Errno::TIMEDOUT) => Woke::TimedOut,
        // Woken, EAGAIN (the value changed), EINTR: all mean "look again".
        _ => Woke::Maybe,
    }
}

/// Wakes up to `n` sleepers on `word`.
pub(crate) fn wake(word: &AtomicU32, n: u32) {
    let _ = futex::wake(word, futex::Flags::empty(), n);
}

/// Wakes every sleeper on `word`.
pub(crate) fn wake_all(word: &AtomicU32) {
    wake(word, i32::MAX as u32);
}

fn timespec(d: Duration) -> futex::Timespec {
    futex::Timespec {
        tv_sec: d.as_secs().min(i64::MAX as u64) as i64,
        tv_nsec: i64::from(d.subsec_nanos()),
    }
}

/// The earlier of two optional deadlines.
pub(crate) fn earliest(a: Option<Instant>, b: Instant) -> Instant {
    match a {
        Some(a) if a < b => a,
        _ => b,
    }
}

/// A timeout as a deadline; `None` (or one too far to represent) waits forever.
pub(crate) fn deadline(timeout: Option<Duration>) -> Option<Instant> {
    timeout.and_then(|t| Instant::now().checked_add(t))
}
