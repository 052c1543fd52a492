//! [`AnyLock`]: the lock of a synchronized object, a `Lock` or an `RLock`.

use std::fmt;
use std::marker::PhantomData;
use std::time::{Duration, Instant};

use mp_sync::{Lock, OwnerDied, RLock};
use serde::{Deserialize, Serialize};

use crate::error::{Error, LockError, Result};

/// How long an acquisition may wait.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Wait {
    /// Until the lock is free.
    Forever,
    /// Until this instant.
    Until(Instant),
    /// Not at all.
    No,
}

/// What an acquisition got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Acquired {
    /// The lock is held.
    Yes,
    /// The lock is held, taken over from a process that died holding it.
    OwnerDied,
    /// The lock was not acquired in time.
    No,
}

/// The lock of a synchronized [`Value`](crate::Value) or [`Array`](crate::Array): an
/// `mp_sync` [`Lock`] or [`RLock`].
///
/// Python: the object `Value.get_lock()` returns (by default an `RLock`; `lock=` chooses one).
/// Build it from either lock with `From`; clone it to share one lock between several values.
/// Like the locks themselves, it is shared with a child when passed to it (under any start
/// method) or sent over a duplex `Connection`.
///
/// Its methods behave as those of the lock inside; the guard methods ([`lock`](Self::lock),
/// ...) also refuse, with [`LockError::WouldDeadlock`], to wait for a `Lock` that the calling
/// thread already holds.
#[derive(Clone, Serialize, Deserialize)]
pub enum AnyLock {
    /// A non-recursive lock (Python: `multiprocessing.Lock`).
    Lock(Lock),
    /// A recursive lock (Python: `multiprocessing.RLock`), the default.
    RLock(RLock),
}

impl fmt::Debug for AnyLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AnyLock::Lock(l) => l.fmt(f),
            AnyLock::RLock(l) => l.fmt(f),
        }
    }
}

impl From<Lock> for AnyLock {
    fn from(lock: Lock) -> Self {
        AnyLock::Lock(lock)
    }
}

impl From<RLock> for AnyLock {
    fn from(lock: RLock) -> Self {
        AnyLock::RLock(lock)
    }
}

impl AnyLock {
    /// A new recursive lock, the default lock of a [`Value`](crate::Value) or
    /// [`Array`](crate::Array). Python: `multiprocessing.RLock()`.
    pub fn new_rlock() -> Result<AnyLock> {
        Ok(AnyLock::RLock(RLock::new()?))
    }

    /// A new non-recursive lock. Python: `multiprocessing.Lock()`.
    pub fn new_lock() -> Result<AnyLock> {
        Ok(AnyLock::Lock(Lock::new()?))
    }

    /// Blocks until the lock is acquired. Python: `lock.acquire()`.
    ///
    /// `Err(OwnerDied)` means the lock was taken over from a dead owner and *is* held.
    #[inline]
    pub fn acquire(&self) -> std::result::Result<(), OwnerDied> {
        match self {
            AnyLock::Lock(l) => l.acquire(),
            AnyLock::RLock(l) => l.acquire(),
        }
    }

    /// Waits at most `timeout`; `Ok(false)` if not acquired. Python: `lock.acquire(timeout=t)`.
    pub fn acquire_timeout(&self, timeout: Duration) -> std::result::Result<bool, OwnerDied> {
        match self {
            AnyLock::Lock(l) => l.acquire_timeout(timeout),
            AnyLock::RLock(l) => l.acquire_timeout(timeout),
        }
    }

    /// [`acquire_timeout`](Self::acquire_timeout) with a deadline.
    pub fn acquire_deadline(&self, deadline: Instant) -> std::result::Result<bool, OwnerDied> {
        match self {
            AnyLock::Lock(l) => l.acquire_deadline(deadline),
            AnyLock::RLock(l) => l.acquire_deadline(deadline),
        }
    }

    /// Acquires only if that needs no waiting. Python: `lock.acquire(False)`.
    #[inline]
    pub fn try_acquire(&self) -> std::result::Result<bool, OwnerDied> {
        match self {
            AnyLock::Lock(l) => l.try_acquire(),
            AnyLock::RLock(l) => l.try_acquire(),
        }
    }

    /// Releases the lock (one level of an `RLock`). Python: `lock.release()`.
    ///
    /// Errors as the lock's own `release` ([`mp_sync::Error::NotLocked`],
    /// [`mp_sync::Error::NotOwner`]), wrapped in [`Error::Sync`].
    #[inline]
    pub fn release(&self) -> Result<()> {
        match self {
            AnyLock::Lock(l) => l.release(),
            AnyLock::RLock(l) => l.release(),
        }
        .map_err(Error::from)
    }

    /// Whether the calling thread holds the lock.
    pub fn is_owned(&self) -> bool {
        match self {
            AnyLock::Lock(l) => l.is_owned(),
            AnyLock::RLock(l) => l.is_owned(),
        }
    }

    /// Whether this is an `RLock`.
    pub fn is_recursive(&self) -> bool {
        matches!(self, AnyLock::RLock(_))
    }

    /// Whether two handles are the same lock.
    pub fn same_as(&self, other: &AnyLock) -> bool {
        match (self, other) {
            (AnyLock::Lock(a), AnyLock::Lock(b)) => a.same_as(b),
            (AnyLock::RLock(a), AnyLock::RLock(b)) => a.same_as(b),
            _ => false,
        }
    }

    /// Acquires the lock and returns a guard that releases it when dropped.
    /// Python: `with lock:` (and `with value.get_lock():`).
    ///
    /// [`LockError::OwnerDied`] carries the guard of a lock taken over from a dead owner;
    /// [`LockError::WouldDeadlock`] if this thread already holds this non-recursive `Lock`.
    pub fn lock(&self) -> std::result::Result<AnyLockGuard<'_>, LockError<AnyLockGuard<'_>>> {
        // Waiting forever never comes back empty-handed; if it did, it would wait again.
        loop {
            if let Some(g) = self.guard(Wait::Forever)? {
                return Ok(g);
            }
        }
    }

    /// [`lock`](Self::lock) waiting at most `timeout`; `Ok(None)` on timeout.
    pub fn lock_timeout(
        &self,
        timeout: Duration,
    ) -> std::result::Result<Option<AnyLockGuard<'_>>, LockError<AnyLockGuard<'_>>> {
        self.guard(deadline_after(timeout))
    }

    /// [`lock`](Self::lock) waiting until `deadline`; `Ok(None)` if it passes.
    pub fn lock_deadline(
        &self,
        deadline: Instant,
    ) -> std::result::Result<Option<AnyLockGuard<'_>>, LockError<AnyLockGuard<'_>>> {
        self.guard(Wait::Until(deadline))
    }

    /// [`lock`](Self::lock) without waiting; `Ok(None)` if the lock is taken.
    pub fn try_lock(
        &self,
    ) -> std::result::Result<Option<AnyLockGuard<'_>>, LockError<AnyLockGuard<'_>>> {
        self.guard(Wait::No)
    }

    /// Acquires as `wait` says; refuses to wait for a `Lock` this thread holds.
    #[inline]
    pub(crate) fn acquire_with(&self, wait: Wait) -> std::result::Result<Acquired, LockError<()>> {
        if let AnyLock::Lock(l) = self {
            // Try first: the free lock costs one compare-exchange; only a taken one is checked
            // for being ours (which waiting for would never end).
            match l.try_acquire() {
                Ok(true) => return Ok(Acquired::Yes),
                Err(_) => return Ok(Acquired::OwnerDied),
                Ok(false) if l.is_owned() => return Err(LockError::WouldDeadlock),
                Ok(false) if matches!(wait, Wait::No) => return Ok(Acquired::No),
                Ok(false) => {}
            }
        }
        let r = match wait {
            Wait::Forever => self.acquire().map(|()| true),
            Wait::Until(d) => self.acquire_deadline(d),
            Wait::No => self.try_acquire(),
        };
        Ok(match r {
            Ok(true) => Acquired::Yes,
            Ok(false) => Acquired::No,
            Err(_) => Acquired::OwnerDied,
        })
    }

    /// A guard, as `wait` says.
    #[inline]
    pub(crate) fn guard(
        &self,
        wait: Wait,
    ) -> std::result::Result<Option<AnyLockGuard<'_>>, LockError<AnyLockGuard<'_>>> {
        match self
            .acquire_with(wait)
            .map_err(|e| e.map(|()| AnyLockGuard::new(self)))?
        {
            Acquired::Yes => Ok(Some(AnyLockGuard::new(self))),
            Acquired::OwnerDied => Err(LockError::OwnerDied(AnyLockGuard::new(self))),
            Acquired::No => Ok(None),
        }
    }
}

/// The deadline `timeout` from now (forever if it is too far to represent).
pub(crate) fn deadline_after(timeout: Duration) -> Wait {
    Instant::now()
        .checked_add(timeout)
        .map_or(Wait::Forever, Wait::Until)
}

/// Holds an [`AnyLock`] (one level of an `RLock`); releases it when dropped.
///
/// Python: the body of `with lock:`. Not `Send`: an `RLock` is released by the thread that
/// holds it.
#[must_use = "if unused the lock will immediately unlock"]
pub struct AnyLockGuard<'a> {
    lock: &'a AnyLock,
    _not_send: PhantomData<*const ()>,
}

impl<'a> AnyLockGuard<'a> {
    /// A guard for a lock this thread has just acquired.
    #[inline]
    fn new(lock: &'a AnyLock) -> Self {
        AnyLockGuard {
            lock,
            _not_send: PhantomData,
        }
    }

    /// The lock this guard holds (an associated function, so it never shadows a method).
    pub fn lock_of(guard: &Self) -> &'a AnyLock {
        guard.lock
    }
}

impl fmt::Debug for AnyLockGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AnyLockGuard")
    }
}

impl Drop for AnyLockGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        let _ = self.lock.release();
    }
}
