//! Errors of the synchronization primitives.

use std::fmt;

/// You hold the lock now; its previous owner died while holding it, so whatever it protected
/// may be half-updated.
///
/// The one owner-died carrier of the stack (mp-sync's locks, mp-shared's values, the manager's
/// lock proxies): what it carries is what you hold, `()` for the raw `acquire*` methods, the
/// guard for the guard methods (like `std::sync::PoisonError`). Converting it into an `Error`
/// with `?` drops what it carries: a guard then releases the lock; after a raw `acquire*` the
/// lock stays held, as that call said.
///
/// Beyond Python: CPython's locks stay locked forever when their owner dies.
pub struct OwnerDied<T = ()> {
    held: T,
}

impl<T> OwnerDied<T> {
    /// Wraps what the caller now holds.
    pub fn new(held: T) -> Self {
        OwnerDied { held }
    }

    /// Maps what is held (a guard into a guard of a larger object, say).
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> OwnerDied<U> {
        OwnerDied { held: f(self.held) }
    }

    /// The guard (or `()`) of the lock now held.
    pub fn into_inner(self) -> T {
        self.held
    }

    /// A reference to the guard (or `()`).
    pub fn get_ref(&self) -> &T {
        &self.held
    }
}

impl<T> fmt::Debug for OwnerDied<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OwnerDied { .. }")
    }
}

impl<T> fmt::Display for OwnerDied<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the previous owner of the lock died while holding it; the lock is now held by the caller")
    }
}

impl<T> std::error::Error for OwnerDied<T> {}

/// Every error of `mp-sync`; each variant names the Python exception it stands for.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `release()` of a lock that is not locked (Python: `ValueError`).
    #[error("release of an unlocked lock")]
    NotLocked,
    /// `release()` of an `RLock` (or a `Condition` operation) by a thread that does not own it
    /// (Python: `AssertionError`/`RuntimeError` "cannot release un-acquired lock").
    #[error("cannot release un-acquired lock")]
    NotOwner,
    /// A `BoundedSemaphore` released past its initial value, or a semaphore past its maximum
    /// (Python: `ValueError("semaphore or lock released too many times")`).
    #[error("semaphore or lock released too many times")]
    TooManyReleases,
    /// The lock's previous owner died while holding it: an [`OwnerDied`] converted with `?`.
    /// A guard it carried was dropped, releasing the lock; after a raw `acquire*` the lock is
    /// held (the same meaning in every crate of the stack).
    #[error("the previous owner of the lock died while holding it")]
    OwnerDied,
    /// The barrier is broken, or was reset or aborted while waiting
    /// (Python: `threading.BrokenBarrierError`).
    #[error("barrier is broken")]
    BrokenBarrier,
    /// A `Condition` has no room for another waiter.
    #[error("too many waiters on one condition (at most {0})")]
    TooManyWaiters(usize),
    /// An argument out of range (Python: `ValueError`).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// An error of the layer below (creating or transferring shared memory).
    #[error(transparent)]
    Core(#[from] mp_core::Error),
}

impl<T> From<OwnerDied<T>> for Error {
    fn from(_: OwnerDied<T>) -> Self {
        Error::OwnerDied
    }
}

impl Error {
    /// True for [`Error::BrokenBarrier`].
    pub fn is_broken_barrier(&self) -> bool {
        matches!(self, Error::BrokenBarrier)
    }
    /// True for [`Error::OwnerDied`].
    pub fn is_owner_died(&self) -> bool {
        matches!(self, Error::OwnerDied)
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
