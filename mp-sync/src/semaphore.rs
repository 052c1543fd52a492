//! `Semaphore` and `BoundedSemaphore`.

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use mp_core::Deadline;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::futex::{self, Woke};
use crate::segment::{Segment, Tagged};

/// The largest value a semaphore holds (Python's `SEM_VALUE_MAX` on Linux).
pub const SEM_VALUE_MAX: u32 = i32::MAX as u32;

mp_core::shared_state! {
    pub(crate) struct SemState {
        magic: AtomicU32,
        /// The count; also the futex word sleepers wait on while it is 0.
        value: AtomicU32,
        /// How many may be sleeping (a dead sleeper only costs a spare wake-up).
        sleepers: AtomicU32,
        /// The bound (`BoundedSemaphore`), or `SEM_VALUE_MAX`.
        max: AtomicU32,
    }
}

impl Tagged for SemState {
    const MAGIC: u32 = 0x5345_4d41; // "SEMA"
    const NAME: &'static str = "Semaphore";
    fn magic(&self) -> &AtomicU32 {
        &self.magic
    }
}

/// A counting semaphore shared between processes.
///
/// Python: `multiprocessing.Semaphore(value)`. `acquire` takes a unit, waiting while there is
/// none; `release` gives one back (and may exceed the initial value; see [`BoundedSemaphore`]).
/// A unit taken by a process that dies is lost, as with POSIX semaphores: a semaphore does not
/// know who holds its units.
#[derive(Clone, Serialize, Deserialize)]
pub struct Semaphore {
    s: Segment<SemState>,
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Semaphore")
            .field("value", &self.get_value())
            .finish()
    }
}

impl Semaphore {
    /// A semaphore holding `value` units. Python: `multiprocessing.Semaphore(value=1)`.
    pub fn new(value: u32) -> Result<Semaphore> {
        Self::with_max(value, SEM_VALUE_MAX)
    }

    fn with_max(value: u32, max: u32) -> Result<Semaphore> {
        if value > max {
            return Err(Error::InvalidArgument(format!(
                "semaphore initial value {value} exceeds {max}"
            )));
        }
        let s = Segment::new(|st: &SemState| {
            st.value.store(value, Ordering::Relaxed);
            st.max.store(max, Ordering::Relaxed);
        })?;
        Ok(Semaphore { s })
    }

    fn take(&self, deadline: Deadline) -> bool {
        let st = self.s.get();
        let mut backoff = mp_core::spin::Backoff::new();
        loop {
            let v = st.value.load(Ordering::Relaxed);
            if v > 0 {
                if st
                    .value
                    .compare_exchange_weak(v, v - 1, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    return true;
                }
                continue;
            }
            if backoff.snooze() {
                continue;
            }
            if deadline.has_passed() {
                return false;
            }
            st.sleepers.fetch_add(1, Ordering::SeqCst);
            let woke = futex::wait_sliced(&st.value, 0, deadline);
            st.sleepers.fetch_sub(1, Ordering::SeqCst);
            if woke == Woke::TimedOut && st.value.load(Ordering::Relaxed) == 0 {
                return false;
            }
        }
    }

    /// Takes a unit, waiting as long as needed. Python: `Semaphore.acquire()`.
    pub fn acquire(&self) -> Result<()> {
        self.take(Deadline::NEVER);
        Ok(())
    }

    /// Waits at most `timeout`; `Ok(false)` if no unit came.
    /// Python: `Semaphore.acquire(timeout=t)`.
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<bool> {
        Ok(self.take(Deadline::after(timeout)))
    }

    /// [`acquire_timeout`](Self::acquire_timeout) with a deadline.
    pub fn acquire_deadline(&self, deadline: impl Into<Deadline>) -> Result<bool> {
        Ok(self.take(deadline.into()))
    }

    /// Takes a unit only if one is there. Python: `Semaphore.acquire(False)`.
    pub fn try_acquire(&self) -> Result<bool> {
        Ok(self.take(Deadline::now()))
    }

    /// Gives a unit back, waking one waiter. Past the maximum it is
    /// [`Error::TooManyReleases`]. Python: `Semaphore.release()`.
    pub fn release(&self) -> Result<()> {
        let st = self.s.get();
        let max = st.max.load(Ordering::Relaxed);
        let mut v = st.value.load(Ordering::Relaxed);
        loop {
            if v >= max {
                return Err(Error::TooManyReleases);
            }
            match st
                .value
                .compare_exchange_weak(v, v + 1, Ordering::SeqCst, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(now) => v = now,
            }
        }
        if st.sleepers.load(Ordering::SeqCst) > 0 {
            futex::wake(&st.value, 1);
        }
        Ok(())
    }

    /// The number of units available now. Python: `Semaphore.get_value()`.
    pub fn get_value(&self) -> u32 {
        self.s.get().value.load(Ordering::Relaxed)
    }

    /// Whether two handles are the same semaphore.
    pub fn same_as(&self, other: &Semaphore) -> bool {
        self.s.same(&other.s)
    }

    /// Takes a unit and returns a guard that gives it back when dropped. Python: `with sem:`.
    pub fn lock(&self) -> Result<SemaphoreGuard<'_>> {
        self.take(Deadline::NEVER);
        Ok(SemaphoreGuard { sem: self })
    }

    /// [`lock`](Self::lock) waiting at most `timeout` for a unit; `Ok(None)` if none came.
    pub fn lock_timeout(&self, timeout: Duration) -> Result<Option<SemaphoreGuard<'_>>> {
        Ok(self
            .take(Deadline::after(timeout))
            .then(|| SemaphoreGuard { sem: self }))
    }

    /// [`lock_timeout`](Self::lock_timeout) with a deadline.
    pub fn lock_deadline(
        &self,
        deadline: impl Into<Deadline>,
    ) -> Result<Option<SemaphoreGuard<'_>>> {
        Ok(self
            .take(deadline.into())
            .then(|| SemaphoreGuard { sem: self }))
    }

    /// [`lock`](Self::lock) only if a unit is there now; `Ok(None)` otherwise.
    pub fn try_lock(&self) -> Result<Option<SemaphoreGuard<'_>>> {
        Ok(self
            .take(Deadline::now())
            .then(|| SemaphoreGuard { sem: self }))
    }
}

/// Holds a unit of a [`Semaphore`]; releases it when dropped.
#[must_use = "if unused the Semaphore unit is released at once"]
pub struct SemaphoreGuard<'a> {
    sem: &'a Semaphore,
}

impl fmt::Debug for SemaphoreGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SemaphoreGuard")
    }
}

impl Drop for SemaphoreGuard<'_> {
    fn drop(&mut self) {
        let _ = self.sem.release();
    }
}

/// A semaphore that may not be released past its initial value.
///
/// Python: `multiprocessing.BoundedSemaphore(value)`: the extra release is
/// [`Error::TooManyReleases`] (Python's `ValueError`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BoundedSemaphore {
    inner: Semaphore,
}

impl BoundedSemaphore {
    /// A bounded semaphore holding (and never exceeding) `value` units.
    /// Python: `multiprocessing.BoundedSemaphore(value=1)`.
    pub fn new(value: u32) -> Result<BoundedSemaphore> {
        Ok(BoundedSemaphore {
            inner: Semaphore::with_max(value, value)?,
        })
    }
}

impl BoundedSemaphore {
    /// Takes a unit, waiting as long as needed. Python: `BoundedSemaphore.acquire()`.
    pub fn acquire(&self) -> Result<()> {
        self.inner.acquire()
    }

    /// Waits at most `timeout`; `Ok(false)` if no unit came.
    /// Python: `BoundedSemaphore.acquire(timeout=t)`.
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<bool> {
        self.inner.acquire_timeout(timeout)
    }

    /// [`acquire_timeout`](Self::acquire_timeout) with a deadline.
    pub fn acquire_deadline(&self, deadline: impl Into<Deadline>) -> Result<bool> {
        self.inner.acquire_deadline(deadline)
    }

    /// Takes a unit only if one is there. Python: `BoundedSemaphore.acquire(False)`.
    pub fn try_acquire(&self) -> Result<bool> {
        self.inner.try_acquire()
    }

    /// Gives a unit back; past the initial value it is [`Error::TooManyReleases`] (Python's
    /// `ValueError`). Python: `BoundedSemaphore.release()`.
    pub fn release(&self) -> Result<()> {
        self.inner.release()
    }

    /// The number of units available now. Python: `BoundedSemaphore.get_value()`.
    pub fn get_value(&self) -> u32 {
        self.inner.get_value()
    }

    /// Takes a unit and returns a guard that gives it back when dropped.
    /// Python: `with bounded_sem:`.
    pub fn lock(&self) -> Result<SemaphoreGuard<'_>> {
        self.inner.lock()
    }

    /// [`lock`](Self::lock) waiting at most `timeout` for a unit; `Ok(None)` if none came.
    pub fn lock_timeout(&self, timeout: Duration) -> Result<Option<SemaphoreGuard<'_>>> {
        self.inner.lock_timeout(timeout)
    }

    /// [`lock_timeout`](Self::lock_timeout) with a deadline.
    pub fn lock_deadline(
        &self,
        deadline: impl Into<Deadline>,
    ) -> Result<Option<SemaphoreGuard<'_>>> {
        self.inner.lock_deadline(deadline)
    }

    /// [`lock`](Self::lock) only if a unit is there now; `Ok(None)` otherwise.
    pub fn try_lock(&self) -> Result<Option<SemaphoreGuard<'_>>> {
        self.inner.try_lock()
    }

    /// Whether two handles are the same semaphore.
    pub fn same_as(&self, other: &BoundedSemaphore) -> bool {
        self.inner.same_as(&other.inner)
    }
}
