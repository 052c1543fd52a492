//! The asymmetric fence that lets a lock's release be a plain store.
//!
//! A release must see a waiter that is about to sleep, and a plain store followed by a plain
//! load does not order the two on x86 (the load may complete first). The cheap side (the
//! releaser) therefore relies on the expensive side (a waiter about to sleep, which has already
//! spun and is about to make a futex call anyway): `membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)`
//! runs a full memory barrier on every CPU that runs a thread of a registered process, so that
//! the releaser's store and load are ordered around the waiter's count of sleepers. A process
//! registers (`MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED`, once per process, forked children
//! included) before its first plain-store release; where the kernel or a seccomp filter refuses
//! `membarrier`, releases stay compare-exchanges, and the waiter's fence is a no-op. Beyond
//! Python.
//!
//! Measured on this project's 2-CPU VM: the heavy fence 15 µs with the other CPU busy, paid
//! once per wait, by a waiter that has spun for 60 µs without getting the lock and is about to
//! sleep; an uncontended `Lock` acquire and release pair went from 13 ns (75 M pairs/s) to
//! 6.4 ns (156 M/s), the speed of a bare compare-and-swap spinlock with a plain-store release.

use std::sync::atomic::{AtomicU32, Ordering};

use rustix::thread::{membarrier, MembarrierCommand};

use crate::segment;

/// The process (pid) registered for the heavy fence, 0 for none.
static READY: AtomicU32 = AtomicU32::new(0);
/// The last process that tried to register, so a refused registration is not retried on every
/// release.
static TRIED: AtomicU32 = AtomicU32::new(0);

/// Whether this process may release with a plain store: registered for the heavy fence
/// (registering it on the first call in each process).
#[inline]
pub(crate) fn light_side_ready() -> bool {
    let me = segment::pid();
    READY.load(Ordering::Relaxed) == me || register(me)
}

#[cold]
fn register(me: u32) -> bool {
    if TRIED.swap(me, Ordering::Relaxed) == me {
        return false; // refused before, in this process
    }
    if membarrier(MembarrierCommand::RegisterGlobalExpedited).is_ok() {
        READY.store(me, Ordering::Relaxed);
        true
    } else {
        false
    }
}

/// The waiter's side: a full barrier on every CPU that runs a registered process (nothing where
/// `membarrier` is missing; no process has registered there either).
#[cold]
pub(crate) fn heavy() {
    let _ = membarrier(MembarrierCommand::GlobalExpedited);
}
