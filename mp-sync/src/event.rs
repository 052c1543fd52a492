//! `Event`.

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use mp_core::Deadline;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::futex::{self, Woke};
use crate::segment::{Segment, Tagged};

mp_core::shared_state! {
    pub(crate) struct EventState {
        magic: AtomicU32,
        /// 0 or 1; also the futex word.
        flag: AtomicU32,
    }
}

impl Tagged for EventState {
    const MAGIC: u32 = 0x4556_4e54; // "EVNT"
    const NAME: &'static str = "Event";
    fn magic(&self) -> &AtomicU32 {
        &self.magic
    }
}

/// A flag that processes can wait for.
///
/// Python: `multiprocessing.Event`. `set` wakes every waiter, in every process.
#[derive(Clone, Serialize, Deserialize)]
pub struct Event {
    s: Segment<EventState>,
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("set", &self.is_set())
            .finish()
    }
}

impl Event {
    /// A new, clear event. Python: `multiprocessing.Event()`.
    pub fn new() -> Result<Event> {
        Ok(Event {
            s: Segment::new(|_| {})?,
        })
    }

    /// Python: `Event.is_set()`.
    pub fn is_set(&self) -> bool {
        self.s.get().flag.load(Ordering::Acquire) != 0
    }

    /// Sets the flag and wakes all waiters. Python: `Event.set()`.
    pub fn set(&self) {
        let flag = &self.s.get().flag;
        if flag.swap(1, Ordering::Release) == 0 {
            futex::wake_all(flag);
        }
    }

    /// Clears the flag. Python: `Event.clear()`.
    pub fn clear(&self) {
        self.s.get().flag.store(0, Ordering::Release);
    }

    fn wait_until(&self, deadline: Deadline) -> bool {
        let flag = &self.s.get().flag;
        loop {
            if flag.load(Ordering::Acquire) != 0 {
                return true;
            }
            if futex::wait_sliced(flag, 0, deadline) == Woke::TimedOut {
                return flag.load(Ordering::Acquire) != 0;
            }
        }
    }

    /// Waits until the flag is set. Python: `Event.wait()`.
    pub fn wait(&self) -> Result<()> {
        self.wait_until(Deadline::NEVER);
        Ok(())
    }

    /// Waits at most `timeout`; `Ok(true)` if the flag is set. Python: `Event.wait(timeout)`.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<bool> {
        Ok(self.wait_until(Deadline::after(timeout)))
    }

    /// [`wait_timeout`](Self::wait_timeout) with a deadline.
    pub fn wait_deadline(&self, deadline: impl Into<Deadline>) -> Result<bool> {
        Ok(self.wait_until(deadline.into()))
    }
}
