//! The core shared by [`Value`](crate::Value) and [`Array`](crate::Array): shared cells and
//! their lock, and the access that holds both the lock and the claim on the data.

use std::fmt;

use bytemuck::Pod;
use serde::{Deserialize, Serialize};

use crate::error::{Error, LockError, Result};
use crate::lock::{AnyLock, AnyLockGuard, Wait};
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
    _lock: AnyLockGuard<'a>,
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

    /// Takes the lock as `wait` says, then claims the data.
    pub(crate) fn access(
        &self,
        wait: Wait,
    ) -> std::result::Result<Option<Access<'_, T>>, LockError<Access<'_, T>>> {
        let (lock, died) = match self.lock.guard(wait) {
            Ok(Some(g)) => (g, false),
            Ok(None) => return Ok(None),
            Err(LockError::OwnerDied(g)) => (g, true),
            Err(LockError::WouldDeadlock) => return Err(LockError::WouldDeadlock),
            Err(LockError::Borrowed) => return Err(LockError::Borrowed),
        };
        // On failure `lock` drops here, releasing the lock.
        let claim = self.cells.claim().ok_or(LockError::Borrowed)?;
        let access = Access { claim, _lock: lock };
        if died {
            Err(LockError::OwnerDied(access))
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
            match self.access(Wait::Forever) {
                Ok(Some(mut a)) => return Ok(f(&mut a.claim)),
                // Waiting forever never comes back empty-handed; if it did, wait again.
                Ok(None) => continue,
                Err(e) => return Err(Error::from(e)),
            }
        }
    }
}
