//! `Condition`.
//!
//! Each waiter takes a slot (its own futex word, its pid and a ticket number) while it holds
//! the condition's lock. `notify(n)` turns the `n` oldest waiting slots into "notified" and wakes
//! each one; a waiter whose time runs out turns its slot "cancelled" instead. Both transitions
//! are compare-exchanges from "waiting", so every waiter is either notified or timed out, never
//! both: `notify(n)` wakes exactly `min(n, waiters)`. Slots of dead waiters are reclaimed by the
//! next `notify`, and are never counted as woken.

use std::fmt;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use mp_core::Deadline;
use serde::{Deserialize, Serialize};

use crate::error::{Error, OwnerDied, Result};
use crate::futex::{self, Woke};
use crate::guard::{lock_surface, GuardNoSend, RawLock};
use crate::lock::{AnyLock, RLock};
use crate::raw;
use crate::segment::{self, Segment, Tagged};

const FREE: u32 = 0;
const CLAIMED: u32 = 1;
const WAITING: u32 = 2;
const NOTIFIED: u32 = 3;
const CANCELLED: u32 = 4;

/// How many threads (in all processes) may wait on one condition at once.
pub const MAX_WAITERS: usize = 255;

mp_core::shared_state! {
    struct Slot {
        state: AtomicU32,
        pid: AtomicU32,
        ticket: AtomicU64,
    }
}

mp_core::shared_state! {
    pub(crate) struct CondState {
        magic: AtomicU32,
        _pad: AtomicU32,
        next_ticket: AtomicU64,
        slots: [Slot; MAX_WAITERS],
    }
}

impl Tagged for CondState {
    const MAGIC: u32 = 0x434f_4e44; // "COND"
    const NAME: &'static str = "Condition";
    fn magic(&self) -> &AtomicU32 {
        &self.magic
    }
}

/// A condition variable shared between processes.
///
/// Python: `multiprocessing.Condition(lock=None)`. Waiting requires holding the condition's
/// lock ([`acquire`](Self::acquire) or [`lock`](Self::lock)); otherwise it is
/// [`Error::NotOwner`], as in Python. `notify(n)` wakes exactly `n` of the threads waiting at
/// that moment (or all, if fewer), oldest first, whichever process they are in. At most
/// [`MAX_WAITERS`] threads wait at once.
#[derive(Clone, Serialize, Deserialize)]
pub struct Condition {
    lock: AnyLock,
    s: Segment<CondState>,
}

impl fmt::Debug for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Condition")
            .field("lock", &self.lock)
            .finish()
    }
}

impl Condition {
    /// A condition over a new [`RLock`]. Python: `multiprocessing.Condition()`.
    pub fn new() -> Result<Condition> {
        Self::with_lock(RLock::new()?)
    }

    /// A condition over a given lock. Python: `multiprocessing.Condition(lock)`.
    pub fn with_lock(lock: impl Into<AnyLock>) -> Result<Condition> {
        Ok(Condition {
            lock: lock.into(),
            s: Segment::new(|_| {})?,
        })
    }

    /// The lock under this condition.
    pub fn get_lock(&self) -> &AnyLock {
        &self.lock
    }

    fn wait_until(&self, deadline: Deadline) -> Result<bool> {
        if !RawLock::is_owned(&self.lock) {
            return Err(Error::NotOwner);
        }
        let st = self.s.get();
        let claim = |s: &&Slot| {
            s.state
                .compare_exchange(FREE, CLAIMED, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
        };
        // When full, take back the slots of waiters that died.
        let reclaim = |s: &&Slot| {
            let state = s.state.load(Ordering::Acquire);
            state != FREE
                && !raw::alive(s.pid.load(Ordering::Relaxed))
                && s.state
                    .compare_exchange(state, CLAIMED, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
        };
        let slot = match st.slots.iter().find(claim) {
            Some(slot) => slot,
            None => st
                .slots
                .iter()
                .find(reclaim)
                .ok_or(Error::TooManyWaiters(MAX_WAITERS))?,
        };
        slot.pid.store(segment::pid(), Ordering::Relaxed);
        slot.ticket.store(
            st.next_ticket.fetch_add(1, Ordering::Relaxed),
            Ordering::Relaxed,
        );
        slot.state.store(WAITING, Ordering::Release);

        let saved = match self.lock.release_save() {
            Ok(saved) => saved,
            Err(e) => {
                slot.state.store(FREE, Ordering::Release);
                return Err(e);
            }
        };
        let notified = loop {
            match slot.state.load(Ordering::Acquire) {
                NOTIFIED => break true,
                WAITING => {}
                _ => break false,
            }
            if futex::wait_sliced(&slot.state, WAITING, deadline) == Woke::TimedOut {
                match slot.state.compare_exchange(
                    WAITING,
                    CANCELLED,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => break false,
                    Err(NOTIFIED) => break true,
                    Err(_) => break false,
                }
            }
        };
        slot.state.store(FREE, Ordering::Release);
        self.lock.restore(saved).map_err(Error::from)?;
        Ok(notified)
    }

    /// Releases the lock, waits for a notification, takes the lock again.
    /// Python: `Condition.wait()`.
    pub fn wait(&self) -> Result<()> {
        self.wait_until(Deadline::NEVER).map(|_| ())
    }

    /// Like [`wait`](Self::wait) for at most `timeout`; `Ok(false)` if no notification came.
    /// Python: `Condition.wait(timeout)`.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<bool> {
        self.wait_until(Deadline::after(timeout))
    }

    /// [`wait_timeout`](Self::wait_timeout) with a deadline.
    pub fn wait_deadline(&self, deadline: impl Into<Deadline>) -> Result<bool> {
        self.wait_until(deadline.into())
    }

    /// Waits until `predicate()` is true; returns it (`Ok(true)`).
    /// Python: `Condition.wait_for(predicate)`.
    pub fn wait_for(&self, predicate: impl FnMut() -> bool) -> Result<bool> {
        self.wait_for_until(predicate, Deadline::NEVER)
    }

    /// Waits until `predicate()` is true or `timeout` passes; returns the last value of the
    /// predicate. Python: `Condition.wait_for(predicate, timeout)`.
    pub fn wait_for_timeout(
        &self,
        predicate: impl FnMut() -> bool,
        timeout: Duration,
    ) -> Result<bool> {
        self.wait_for_until(predicate, Deadline::after(timeout))
    }

    /// [`wait_for_timeout`](Self::wait_for_timeout) with a deadline.
    pub fn wait_for_deadline(
        &self,
        predicate: impl FnMut() -> bool,
        deadline: impl Into<Deadline>,
    ) -> Result<bool> {
        self.wait_for_until(predicate, deadline.into())
    }

    fn wait_for_until(
        &self,
        mut predicate: impl FnMut() -> bool,
        deadline: Deadline,
    ) -> Result<bool> {
        let mut result = predicate();
        while !result {
            if deadline.has_passed() {
                break;
            }
            self.wait_until(deadline)?;
            result = predicate();
        }
        Ok(result)
    }

    /// Wakes up to `n` waiters (the longest-waiting first). Python: `Condition.notify(n=1)`.
    pub fn notify(&self, n: usize) -> Result<()> {
        if !RawLock::is_owned(&self.lock) {
            return Err(Error::NotOwner);
        }
        let st = self.s.get();
        let mut woken = 0;
        while woken < n {
            let oldest = st
                .slots
                .iter()
                .filter(|s| s.state.load(Ordering::Acquire) == WAITING)
                .min_by_key(|s| s.ticket.load(Ordering::Relaxed));
            let Some(slot) = oldest else { break };
            let pid = slot.pid.load(Ordering::Relaxed);
            if pid != segment::pid() && !raw::alive(pid) {
                // A waiter that died: free its slot, it does not count.
                let _ =
                    slot.state
                        .compare_exchange(WAITING, FREE, Ordering::AcqRel, Ordering::Relaxed);
                continue;
            }
            if slot
                .state
                .compare_exchange(WAITING, NOTIFIED, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                futex::wake(&slot.state, 1);
                woken += 1;
            }
        }
        Ok(())
    }

    /// Wakes every waiter. Python: `Condition.notify_all()`.
    pub fn notify_all(&self) -> Result<()> {
        self.notify(usize::MAX)
    }
}

// Delegates to the condition's lock.
impl RawLock for Condition {
    type GuardMarker = GuardNoSend;

    #[inline]
    fn acquire_until(&self, deadline: Deadline) -> std::result::Result<bool, OwnerDied> {
        self.lock.acquire_until(deadline)
    }

    #[inline]
    fn release(&self) -> Result<()> {
        RawLock::release(&self.lock)
    }

    #[inline]
    fn is_owned(&self) -> bool {
        RawLock::is_owned(&self.lock)
    }
}

// `acquire`, `release`, `lock` (Python: `with cond:`; wait and notify through the condition
// while the guard lives), ... of the condition's lock.
lock_surface!(Condition, "Condition");
