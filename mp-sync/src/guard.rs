//! The raw lock core and the safe layer over it, in lock_api's shape: one [`RawLock`] trait that
//! [`Lock`](crate::Lock), [`RLock`](crate::RLock), [`AnyLock`](crate::AnyLock) and
//! [`Condition`](crate::Condition) implement, one generic [`LockGuard`], and one macro that gives
//! every lock the same safe methods (`acquire`, `acquire_timeout`, `acquire_deadline`,
//! `try_acquire`, `release`, `lock`, `lock_timeout`, `lock_deadline`, `try_lock`), written once.
//!
//! The crates above (`mp-shared`'s synchronized values, the manager's lock proxies) build on the
//! same trait rather than writing their own lock type.

use std::fmt;
use std::marker::PhantomData;

use mp_core::Deadline;

use crate::error::{OwnerDied, Result};

/// Marks a lock whose guard may be dropped on another thread (a [`Lock`](crate::Lock): any
/// thread may release it, as in Python).
pub struct GuardSend(());

/// Marks a lock whose guard must be dropped on the thread that took it (an
/// [`RLock`](crate::RLock) belongs to one thread): its [`LockGuard`] is `!Send`.
pub struct GuardNoSend(PhantomData<*mut ()>);

/// A lock shared between processes: the core every lock type of the stack implements.
///
/// Python: the `acquire`/`release` protocol of `multiprocessing`'s locks.
///
/// An implementation is a real lock: between an `acquire_until` that returned `Ok(true)` or
/// `Err(OwnerDied)` and the matching `release`, no other acquirer (thread or process) acquires
/// it, except an `RLock`'s owning thread recursively. Memory safety never rests on that promise:
/// data a lock protects in shared memory has its own claim word (mp-shared's synchronized
/// values), so a misbehaving lock gives an error there, not undefined behaviour.
pub trait RawLock {
    /// [`GuardSend`] or [`GuardNoSend`]: whether a [`LockGuard`] of this lock is `Send`.
    type GuardMarker;

    /// Acquires the lock, waiting until `deadline`: `Ok(true)` when acquired, `Ok(false)` when
    /// the deadline passed first, `Err(OwnerDied)` when acquired from an owner that died holding
    /// it (the lock is held then too).
    fn acquire_until(&self, deadline: Deadline) -> std::result::Result<bool, OwnerDied>;

    /// Releases the lock (one level of a recursive lock).
    fn release(&self) -> Result<()>;

    /// Whether the calling thread holds the lock.
    fn is_owned(&self) -> bool;
}

/// Holds a lock; releases it when dropped.
///
/// Python: the body of `with lock:`. One type for every lock (`LockGuard<'_, Lock>`,
/// `LockGuard<'_, RLock>`, `LockGuard<'_, AnyLock>`, `LockGuard<'_, Condition>`). A guard of a
/// lock that belongs to one thread (an `RLock`, or anything that may be one) is not `Send`:
///
/// ```compile_fail
/// fn on_another_thread<T: Send>(_: T) {}
/// let rlock = mp_sync::RLock::new().unwrap();
/// let guard = rlock.lock().unwrap();
/// on_another_thread(guard); // error: `*mut ()` cannot be sent between threads safely
/// ```
///
/// If the release fails when the guard drops (the lock was released behind the guard's back,
/// by a `release()` call of its own), the drop does nothing more: it never panics, and the lock
/// stays as that other release left it.
#[must_use = "if unused the lock will immediately unlock"]
pub struct LockGuard<'a, L: RawLock + ?Sized> {
    lock: &'a L,
    _marker: PhantomData<L::GuardMarker>,
}

impl<'a, L: RawLock + ?Sized> LockGuard<'a, L> {
    /// A guard for a lock the calling thread has just acquired.
    #[inline]
    pub(crate) fn new(lock: &'a L) -> Self {
        LockGuard {
            lock,
            _marker: PhantomData,
        }
    }

    /// The lock this guard holds (an associated function, so it never shadows a method of the
    /// lock).
    pub fn lock_of(guard: &Self) -> &'a L {
        guard.lock
    }

    /// Releases the lock now, reporting what the release says (a drop ignores it).
    pub fn unlock(guard: Self) -> Result<()> {
        let lock = guard.lock;
        std::mem::forget(guard);
        lock.release()
    }
}

impl<L: RawLock + ?Sized> fmt::Debug for LockGuard<'_, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LockGuard")
    }
}

impl<L: RawLock + ?Sized> Drop for LockGuard<'_, L> {
    #[inline]
    fn drop(&mut self) {
        // A failed release means someone released it already; nothing is left to undo.
        let _ = self.lock.release();
    }
}

/// What the guard methods return: a guard, `None` on timeout, or the guard of a lock taken over
/// from a dead owner.
pub type GuardResult<'a, L> =
    std::result::Result<Option<LockGuard<'a, L>>, OwnerDied<LockGuard<'a, L>>>;

/// Acquires `lock` until `deadline` and wraps it in a guard.
#[inline]
pub(crate) fn guard_until<L: RawLock + ?Sized>(lock: &L, deadline: Deadline) -> GuardResult<'_, L> {
    match lock.acquire_until(deadline) {
        Ok(true) => Ok(Some(LockGuard::new(lock))),
        Ok(false) => Ok(None),
        Err(_) => Err(OwnerDied::new(LockGuard::new(lock))),
    }
}

/// Acquires `lock`, waiting forever, and wraps it in a guard.
#[inline]
pub(crate) fn guard<L: RawLock + ?Sized>(
    lock: &L,
) -> std::result::Result<LockGuard<'_, L>, OwnerDied<LockGuard<'_, L>>> {
    loop {
        // Waiting forever never comes back empty-handed; if it did, it would wait again.
        if let Some(g) = guard_until(lock, Deadline::NEVER)? {
            return Ok(g);
        }
    }
}

/// The safe surface of a lock, written once: inherent methods over its [`RawLock`] impl.
macro_rules! lock_surface {
    ($ty:ty, $py:literal) => {
        impl $ty {
            /// Blocks until the lock is acquired.
            #[doc = concat!("Python: `", $py, ".acquire()`.")]
            ///
            /// `Err(OwnerDied)`: acquired from an owner that died holding it; the lock is held.
            #[inline]
            pub fn acquire(&self) -> std::result::Result<(), $crate::OwnerDied> {
                <Self as $crate::RawLock>::acquire_until(self, mp_core::Deadline::NEVER).map(|_| ())
            }

            /// Waits at most `timeout`; `Ok(false)` if the lock was not acquired.
            #[doc = concat!("Python: `", $py, ".acquire(timeout=t)`.")]
            pub fn acquire_timeout(
                &self,
                timeout: std::time::Duration,
            ) -> std::result::Result<bool, $crate::OwnerDied> {
                <Self as $crate::RawLock>::acquire_until(self, mp_core::Deadline::after(timeout))
            }

            /// [`acquire_timeout`](Self::acquire_timeout) with a deadline.
            #[inline]
            pub fn acquire_deadline(
                &self,
                deadline: impl Into<mp_core::Deadline>,
            ) -> std::result::Result<bool, $crate::OwnerDied> {
                <Self as $crate::RawLock>::acquire_until(self, deadline.into())
            }

            /// Acquires only if that needs no waiting; `Ok(false)` otherwise.
            #[doc = concat!("Python: `", $py, ".acquire(False)`.")]
            #[inline]
            pub fn try_acquire(&self) -> std::result::Result<bool, $crate::OwnerDied> {
                <Self as $crate::RawLock>::acquire_until(self, mp_core::Deadline::now())
            }

            /// Releases the lock (one level of a recursive lock).
            #[doc = concat!("Python: `", $py, ".release()`.")]
            ///
            /// [`Error::NotLocked`](crate::Error::NotLocked) for an unlocked `Lock` (Python's
            /// `ValueError`), [`Error::NotOwner`](crate::Error::NotOwner) from a thread that does
            /// not own an `RLock` (Python's `AssertionError`/`RuntimeError`).
            #[inline]
            pub fn release(&self) -> $crate::Result<()> {
                <Self as $crate::RawLock>::release(self)
            }

            /// Whether the calling thread holds the lock (Python's internal `_is_owned`).
            #[inline]
            pub fn is_owned(&self) -> bool {
                <Self as $crate::RawLock>::is_owned(self)
            }

            /// Acquires the lock and returns a guard that releases it when dropped.
            #[doc = concat!("Python: `with ", $py, ":`.")]
            ///
            /// `Err(OwnerDied(guard))`: acquired from a dead owner; the guard is inside (like
            /// `std::sync::PoisonError`).
            #[inline]
            pub fn lock(
                &self,
            ) -> std::result::Result<
                $crate::LockGuard<'_, Self>,
                $crate::OwnerDied<$crate::LockGuard<'_, Self>>,
            > {
                $crate::guard::guard(self)
            }

            /// [`lock`](Self::lock) waiting at most `timeout`; `Ok(None)` on timeout.
            pub fn lock_timeout(
                &self,
                timeout: std::time::Duration,
            ) -> $crate::GuardResult<'_, Self> {
                $crate::guard::guard_until(self, mp_core::Deadline::after(timeout))
            }

            /// [`lock_timeout`](Self::lock_timeout) with a deadline.
            #[inline]
            pub fn lock_deadline(
                &self,
                deadline: impl Into<mp_core::Deadline>,
            ) -> $crate::GuardResult<'_, Self> {
                $crate::guard::guard_until(self, deadline.into())
            }

            /// [`lock`](Self::lock) without waiting; `Ok(None)` if the lock is taken.
            #[inline]
            pub fn try_lock(&self) -> $crate::GuardResult<'_, Self> {
                $crate::guard::guard_until(self, mp_core::Deadline::now())
            }
        }
    };
}
pub(crate) use lock_surface;
