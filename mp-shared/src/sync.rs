//! The core shared by [`Value`](crate::Value) and [`Array`](crate::Array): shared cells and
//! their lock, and the access that holds both the lock and the claim on the data.

use std::fmt;

use bytemuck::Pod;
use serde::{Deserialize, Serialize};

use mp_core::Deadline;
use mp_sync::{AnyLock, LockGuard, OwnerDied};

use crate::error::{Error, LockError, Result};
use crate::sys::{Claim, SyncCells};

/// Synchronized cells: data that is only touched while holding `lock` and a claim.
#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
pub(crate) struct Synced<T: Pod> {
    pub(crate) cells: SyncCells<T>,
    pub(crate) lock: AnyLock,
}

impl<T: Pod> Clone for Synced<T> {
    fn clone(&self) -> Self {
        Synced {
            cells: self.cells.clone(),
            lock: self.lock.clone(),
        }
    }
}

/// The lock held and the data claimed. Fields drop in order: the claim is given back before
/// the lock.
pub(crate) struct Access<'a, T> {
    pub(crate) claim: Claim<'a, T>,
    _lock: LockGuard<'a, AnyLock>,
}

impl<T> fmt::Debug for Access<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.claim.fmt(f)
    }
}

impl<T: Pod> Synced<T> {
    /// New cells (`len` elements, from `init` if given) guarded by `lock`.
    pub(crate) fn create(len: usize, init: Option<&[T]>, lock: AnyLock) -> Result<Self> {
        Ok(Synced {
            cells: SyncCells::create(len, init)?,
            lock,
        })
    }

    /// Takes the lock until `deadline`, then claims the data; refuses to wait for a `Lock`
    /// this thread holds (that wait would never end).
    #[inline]
    pub(crate) fn access(
        &self,
        deadline: Deadline,
    ) -> std::result::Result<Option<Access<'_, T>>, LockError<Access<'_, T>>> {
        // A plain `Lock` is tried first: a free lock costs one compare-exchange, and only a
        // taken one is checked for being ours (a wait for it would never end). An `RLock` is
        // taken at once (it is re-entered, or waited for).
        let taken = match &self.lock {
            AnyLock::Lock(l) => match self.lock.try_lock() {
                Ok(None) if l.is_owned() => return Err(LockError::WouldDeadlock),
                Ok(None) if deadline.has_passed() => return Ok(None),
                Ok(None) => self.lock.lock_deadline(deadline),
                taken => taken,
            },
            AnyLock::RLock(_) => self.lock.lock_deadline(deadline),
        };
        let (lock, died) = match taken {
            Ok(Some(g)) => (g, false),
            Ok(None) => return Ok(None),
            Err(died) => (died.into_inner(), true),
        };
        // On failure `lock` drops here, releasing the lock.
        let claim = self.cells.claim().ok_or(LockError::Borrowed)?;
        let access = Access { claim, _lock: lock };
        if died {
            Err(LockError::OwnerDied(OwnerDied::new(access)))
        } else {
            Ok(Some(access))
        }
    }

    /// Runs `f` on the claimed data, holding the lock; blocks until it is free.
    ///
    /// A lock taken over from a dead owner is released again and reported as
    /// [`Error::OwnerDied`], without running `f`.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut Claim<'_, T>) -> R) -> Result<R> {
        loop {
            match self.access(Deadline::NEVER) {
                Ok(Some(mut a)) => return Ok(f(&mut a.claim)),
                // Waiting forever never comes back empty-handed; if it did, wait again.
                Ok(None) => continue,
                Err(e) => return Err(Error::from(e)),
            }
        }
    }
}

/// The guard methods of a synchronized object (`lock`, `lock_timeout`, `lock_deadline`,
/// `try_lock`), written once for [`Value`](crate::Value) and [`Array`](crate::Array): `$ty<T>`
/// holds a [`Synced`] in `inner`, `$guard<'_, T>` wraps an [`Access`] in `access`.
macro_rules! guard_surface {
    ($ty:ident, $guard:ident, $what:literal) => {
        impl<T: Pod> $ty<T> {
            /// Takes the lock and returns a guard that derefs to the data; the lock is released
            /// when the guard drops.
            #[doc = concat!("Python: `with ", $what, ".get_lock(): ...`.")]
            ///
            /// Blocks until the lock is free. [`LockError::OwnerDied`] carries the guard of a
            /// lock taken over from a dead owner (the data may be half-updated);
            /// [`LockError::WouldDeadlock`] and [`LockError::Borrowed`] as described on
            /// [`Value`](crate::Value).
            pub fn lock(&self) -> std::result::Result<$guard<'_, T>, LockError<$guard<'_, T>>> {
                loop {
                    if let Some(g) = self.guard(Deadline::NEVER)? {
                        return Ok(g);
                    }
                }
            }

            /// [`lock`](Self::lock) waiting at most `timeout`; `Ok(None)` on timeout.
            #[allow(clippy::type_complexity)]
            pub fn lock_timeout(
                &self,
                timeout: std::time::Duration,
            ) -> std::result::Result<Option<$guard<'_, T>>, LockError<$guard<'_, T>>> {
                self.guard(Deadline::after(timeout))
            }

            /// [`lock_timeout`](Self::lock_timeout) with a deadline.
            #[allow(clippy::type_complexity)]
            pub fn lock_deadline(
                &self,
                deadline: impl Into<Deadline>,
            ) -> std::result::Result<Option<$guard<'_, T>>, LockError<$guard<'_, T>>> {
                self.guard(deadline.into())
            }

            /// [`lock`](Self::lock) without waiting; `Ok(None)` if the lock is taken.
            #[allow(clippy::type_complexity)]
            pub fn try_lock(
                &self,
            ) -> std::result::Result<Option<$guard<'_, T>>, LockError<$guard<'_, T>>> {
                self.guard(Deadline::now())
            }

            #[allow(clippy::type_complexity)]
            #[inline]
            fn guard(
                &self,
                deadline: Deadline,
            ) -> std::result::Result<Option<$guard<'_, T>>, LockError<$guard<'_, T>>> {
                match self.inner.access(deadline) {
                    Ok(a) => Ok(a.map(|access| $guard { access })),
                    Err(e) => Err(e.map(|access| $guard { access })),
                }
            }
        }
    };
}
pub(crate) use guard_surface;
