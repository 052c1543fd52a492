//! `Barrier`.
//!
//! State, guarded by an internal raw lock: the number of arrivals in the current pass, a
//! persistent "broken" flag, and the futex word `gen`, which counts passes in its upper bits and
//! says in its low bit how the previous pass ended (1: broken). Waiters sleep on `gen`; the last
//! arrival (or whoever breaks the barrier) advances it and wakes them all, so each waiter learns
//! its own pass's outcome even if the barrier is reset right after.

use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use mp_core::{Deadline, Function};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::futex::{self, Woke};
use crate::raw;
use crate::segment::{Segment, Tagged};

mp_core::shared_state! {
    pub(crate) struct BarrierState {
        magic: AtomicU32,
        lock: raw::RawWord,
        parties: AtomicU32,
        count: AtomicU32,
        broken: AtomicU32,
        gen: AtomicU32,
    }
}

impl Tagged for BarrierState {
    const MAGIC: u32 = 0x4241_5252; // "BARR"
    const NAME: &'static str = "Barrier";
    fn magic(&self) -> &AtomicU32 {
        &self.magic
    }
}

/// A barrier for a fixed number of parties, shared between processes.
///
/// Python: `multiprocessing.Barrier(parties, action=None, timeout=None)`. Each `wait` blocks
/// until `parties` waiters have arrived, then all return, each with a distinct index in
/// `0..parties` (the first arrival gets 0). The `action`, a `fn()`, runs once per pass, in the
/// last process to arrive, before the others are released. A wait that times out, an
/// [`abort`](Self::abort) or a [`reset`](Self::reset) during a pass breaks it: every waiter gets
/// [`Error::BrokenBarrier`]. A waiter that dies leaves the others waiting until their timeout,
/// which then breaks the barrier.
#[derive(Clone, Serialize, Deserialize)]
pub struct Barrier {
    s: Segment<BarrierState>,
    action: Option<Function<fn()>>,
    timeout: Option<Duration>,
}

impl fmt::Debug for Barrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Barrier")
            .field("parties", &self.parties())
            .field("n_waiting", &self.n_waiting())
            .field("broken", &self.broken())
            .finish()
    }
}

/// Holds the barrier's internal lock.
struct Inner<'a> {
    st: &'a BarrierState,
}

impl Drop for Inner<'_> {
    fn drop(&mut self) {
        raw::unlock_held(&self.st.lock);
    }
}

impl Inner<'_> {
    /// Ends the current pass; `broken` says how.
    fn end_pass(&self, broken: bool) {
        let next =
            ((self.st.gen.load(Ordering::Relaxed) >> 1).wrapping_add(1) << 1) | u32::from(broken);
        self.st.count.store(0, Ordering::Relaxed);
        self.st.gen.store(next, Ordering::Release);
        futex::wake_all(&self.st.gen);
    }

    fn break_barrier(&self) {
        self.st.broken.store(1, Ordering::Relaxed);
        self.end_pass(true);
    }
}

impl Barrier {
    /// A barrier for `parties` waiters (`parties >= 1`), with an optional action and no default
    /// timeout. Python: `multiprocessing.Barrier(parties, action)`.
    pub fn new(parties: u32, action: Option<fn()>) -> Result<Barrier> {
        Self::build(parties, action, None)
    }

    /// A barrier whose [`wait`](Self::wait) gives up after `timeout` (breaking the barrier).
    /// Python: `multiprocessing.Barrier(parties, action, timeout)`.
    pub fn with_timeout(parties: u32, action: Option<fn()>, timeout: Duration) -> Result<Barrier> {
        Self::build(parties, action, Some(timeout))
    }

    fn build(parties: u32, action: Option<fn()>, timeout: Option<Duration>) -> Result<Barrier> {
        if parties == 0 {
            return Err(Error::InvalidArgument(
                "a barrier needs at least one party".into(),
            ));
        }
        let s = Segment::new(|st: &BarrierState| st.parties.store(parties, Ordering::Relaxed))?;
        Ok(Barrier {
            s,
            action: action.map(Function::new),
            timeout,
        })
    }

    fn inner(&self) -> Inner<'_> {
        let st = self.s.get();
        if raw::lock(&st.lock, Deadline::NEVER) == raw::Acquired::OwnerDied {
            // A process died inside a barrier operation: the state may be half-updated.
            let inner = Inner { st };
            inner.break_barrier();
            return inner;
        }
        Inner { st }
    }

    fn wait_until(&self, deadline: Deadline) -> Result<u32> {
        let inner = self.inner();
        let st = inner.st;
        if st.broken.load(Ordering::Relaxed) != 0 {
            return Err(Error::BrokenBarrier);
        }
        let index = st.count.fetch_add(1, Ordering::Relaxed);
        if index + 1 >= st.parties.load(Ordering::Relaxed) {
            if let Some(action) = &self.action {
                if panic::catch_unwind(AssertUnwindSafe(|| (action.get())())).is_err() {
                    inner.break_barrier();
                    return Err(Error::BrokenBarrier);
                }
            }
            inner.end_pass(false);
            return Ok(index);
        }
        let gen = st.gen.load(Ordering::Relaxed);
        drop(inner);
        loop {
            let now = st.gen.load(Ordering::Acquire);
            if now != gen {
                return if now & 1 == 0 {
                    Ok(index)
                } else {
                    Err(Error::BrokenBarrier)
                };
            }
            if futex::wait_sliced(&st.gen, gen, deadline) == Woke::TimedOut {
                let inner = self.inner();
                if st.gen.load(Ordering::Relaxed) == gen {
                    inner.break_barrier();
                }
            }
        }
    }

    /// Waits for all parties, with the barrier's default timeout (if it was made
    /// [`with_timeout`](Self::with_timeout)); returns this waiter's index. Python: `Barrier.wait()`.
    ///
    /// A timeout breaks the barrier and is [`Error::BrokenBarrier`], as Python raises
    /// `BrokenBarrierError`.
    pub fn wait(&self) -> Result<u32> {
        self.wait_until(self.timeout.map_or(Deadline::NEVER, Deadline::after))
    }

    /// [`wait`](Self::wait) with its own timeout. Python: `Barrier.wait(timeout)`.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<u32> {
        self.wait_until(Deadline::after(timeout))
    }

    /// [`wait_timeout`](Self::wait_timeout) with a deadline.
    pub fn wait_deadline(&self, deadline: impl Into<Deadline>) -> Result<u32> {
        self.wait_until(deadline.into())
    }

    /// Breaks the barrier: current and future waiters get [`Error::BrokenBarrier`] until
    /// [`reset`](Self::reset). Python: `Barrier.abort()`.
    pub fn abort(&self) {
        self.inner().break_barrier();
    }

    /// Makes the barrier usable again; current waiters get [`Error::BrokenBarrier`].
    /// Python: `Barrier.reset()`.
    pub fn reset(&self) {
        let inner = self.inner();
        if inner.st.count.load(Ordering::Relaxed) > 0 {
            inner.end_pass(true);
        }
        inner.st.broken.store(0, Ordering::Relaxed);
    }

    /// Python: `Barrier.parties`.
    pub fn parties(&self) -> u32 {
        self.s.get().parties.load(Ordering::Relaxed)
    }

    /// How many are waiting now. Python: `Barrier.n_waiting`.
    pub fn n_waiting(&self) -> u32 {
        self.s.get().count.load(Ordering::Relaxed)
    }

    /// Python: `Barrier.broken`.
    pub fn broken(&self) -> bool {
        self.s.get().broken.load(Ordering::Relaxed) != 0
    }
}
