//! `Lock` and `RLock`.

use std::cell::Cell;
use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::{Error, OwnerDied, Result};
use crate::raw::{self, Acquired};
use crate::sys::{self, Segment, Tagged};

thread_local! {
    /// (pid, tid) of this thread, refreshed after a fork.
    static TID: Cell<(u32, u32)> = const { Cell::new((0, 0)) };
}

/// This thread's id (`gettid`), cached per thread and per process.
#[inline]
pub(crate) fn tid() -> u32 {
    TID.with(|c| {
        let me = sys::pid();
        let (pid, tid) = c.get();
        if pid == me {
            return tid;
        }
        let tid = rustix::thread::gettid().as_raw_nonzero().get() as u32;
        c.set((me, tid));
        tid
    })
}

/// Turns an acquire outcome into Python's `acquire()` result.
#[inline]
fn outcome(a: Acquired) -> std::result::Result<bool, OwnerDied> {
    match a {
        Acquired::Yes => Ok(true),
        Acquired::No => Ok(false),
        Acquired::OwnerDied => Err(OwnerDied::new(())),
    }
}

/// Shared state of a [`Lock`].
#[repr(C)]
pub(crate) struct LockState {
    magic: AtomicU32,
    /// The raw lock word (see `raw`).
    word: AtomicU32,
    /// The thread that last acquired it (only meaningful while locked).
    owner_tid: AtomicU32,
}

impl Tagged for LockState {
    const MAGIC: u32 = 0x4c4f_434b; // "LOCK"
    const NAME: &'static str = "Lock";
    fn magic(&self) -> &AtomicU32 {
        &self.magic
    }
}

/// A non-recursive lock shared between processes.
///
/// Python: `multiprocessing.Lock`. Any thread of any process may release it (as in Python, it
/// is not owned). Cloning gives another handle to the same lock; pass it to a child (under any
/// start method) or send it over a duplex `Connection` to share it.
///
/// # Owner death
///
/// If a process dies while holding the lock, the next acquirer gets it within about 100 ms of
/// the death (whatever timeout it asked for), and learns so through [`OwnerDied`]: the
/// `acquire*` methods return `Err(OwnerDied)` *with the lock held*, the guard methods return
/// `Err(OwnerDied(guard))` (like `std::sync::PoisonError`). Converting either into [`Error`]
/// with `?` drops the guard (and so releases the lock) or, for the raw methods, leaves it held.
#[derive(Clone, Serialize, Deserialize)]
pub struct Lock {
    s: Segment<LockState>,
}

impl fmt::Debug for Lock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lock")
            .field("owner", &raw::owner(&self.s.get().word))
            .finish()
    }
}

impl Lock {
    /// A new, unlocked lock. Python: `multiprocessing.Lock()`.
    pub fn new() -> Result<Lock> {
        Ok(Lock {
            s: Segment::new(|_| {})?,
        })
    }

    #[inline]
    fn won(&self, a: Acquired) -> std::result::Result<bool, OwnerDied> {
        if a != Acquired::No {
            self.s.get().owner_tid.store(tid(), Ordering::Relaxed);
        }
        outcome(a)
    }

    /// Blocks until the lock is acquired. Python: `Lock.acquire()`.
    #[inline]
    pub fn acquire(&self) -> std::result::Result<(), OwnerDied> {
        self.won(raw::lock(&self.s.get().word, None)).map(|_| ())
    }

    /// Waits at most `timeout`; `Ok(false)` if the lock was not acquired.
    /// Python: `Lock.acquire(timeout=t)`.
    pub fn acquire_timeout(&self, timeout: Duration) -> std::result::Result<bool, OwnerDied> {
        self.won(raw::lock(
            &self.s.get().word,
            crate::futex::deadline(Some(timeout)),
        ))
    }

    /// [`acquire_timeout`](Self::acquire_timeout) with a deadline.
    pub fn acquire_deadline(&self, deadline: Instant) -> std::result::Result<bool, OwnerDied> {
        self.won(raw::lock(&self.s.get().word, Some(deadline)))
    }

    /// Acquires only if that needs no waiting. Python: `Lock.acquire(False)`.
    pub fn try_acquire(&self) -> std::result::Result<bool, OwnerDied> {
        self.won(raw::try_lock(&self.s.get().word))
    }

    /// Releases the lock (from any thread or process). Releasing an unlocked lock is
    /// [`Error::NotLocked`] (Python: `ValueError`). Python: `Lock.release()`.
    #[inline]
    pub fn release(&self) -> Result<()> {
        let st = self.s.get();
        st.owner_tid.store(0, Ordering::Relaxed);
        if raw::unlock(&st.word) {
            Ok(())
        } else {
            Err(Error::NotLocked)
        }
    }

    /// Acquires the lock and returns a guard that releases it when dropped.
    /// Python: `with lock:`.
    pub fn lock(&self) -> std::result::Result<LockGuard<'_>, OwnerDied<LockGuard<'_>>> {
        match self.acquire() {
            Ok(()) => Ok(LockGuard { lock: self }),
            Err(_) => Err(OwnerDied::new(LockGuard { lock: self })),
        }
    }

    /// [`lock`](Self::lock) waiting at most `timeout`; `Ok(None)` on timeout.
    pub fn lock_timeout(
        &self,
        timeout: Duration,
    ) -> std::result::Result<Option<LockGuard<'_>>, OwnerDied<LockGuard<'_>>> {
        self.guard(self.acquire_timeout(timeout))
    }

    /// [`lock`](Self::lock) without waiting; `Ok(None)` if the lock is taken.
    pub fn try_lock(&self) -> std::result::Result<Option<LockGuard<'_>>, OwnerDied<LockGuard<'_>>> {
        self.guard(self.try_acquire())
    }

    fn guard(
        &self,
        r: std::result::Result<bool, OwnerDied>,
    ) -> std::result::Result<Option<LockGuard<'_>>, OwnerDied<LockGuard<'_>>> {
        match r {
            Ok(true) => Ok(Some(LockGuard { lock: self })),
            Ok(false) => Ok(None),
            Err(_) => Err(OwnerDied::new(LockGuard { lock: self })),
        }
    }

    /// Whether the calling thread holds the lock (Python's internal `_is_owned`).
    pub fn is_owned(&self) -> bool {
        let st = self.s.get();
        raw::owner(&st.word) == sys::pid() && st.owner_tid.load(Ordering::Relaxed) == tid()
    }

    /// Whether anyone holds the lock.
    pub fn is_locked(&self) -> bool {
        raw::owner(&self.s.get().word) != 0
    }

    /// Whether two handles are the same lock.
    pub fn same_as(&self, other: &Lock) -> bool {
        self.s.same(&other.s)
    }
}

/// Holds a [`Lock`]; releases it when dropped.
#[must_use = "if unused the Lock will immediately unlock"]
pub struct LockGuard<'a> {
    lock: &'a Lock,
}

impl fmt::Debug for LockGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LockGuard")
    }
}

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        let _ = self.lock.release();
    }
}

/// Shared state of an [`RLock`].
#[repr(C)]
pub(crate) struct RLockState {
    magic: AtomicU32,
    word: AtomicU32,
    owner_tid: AtomicU32,
    count: AtomicU32,
}

impl Tagged for RLockState {
    const MAGIC: u32 = 0x524c_434b; // "RLCK"
    const NAME: &'static str = "RLock";
    fn magic(&self) -> &AtomicU32 {
        &self.magic
    }
}

/// A recursive lock shared between processes, owned by one thread of one process.
///
/// Python: `multiprocessing.RLock`. The owning thread may acquire it again; it is free once
/// released as many times. Releasing it from a thread that does not own it, or more often than
/// acquired, is [`Error::NotOwner`]. Owner death as for [`Lock`]: the taker owns it once
/// (recursion count 1).
#[derive(Clone, Serialize, Deserialize)]
pub struct RLock {
    s: Segment<RLockState>,
}

impl fmt::Debug for RLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.s.get();
        f.debug_struct("RLock")
            .field("owner", &raw::owner(&st.word))
            .field("count", &st.count.load(Ordering::Relaxed))
            .finish()
    }
}

impl RLock {
    /// A new, unlocked recursive lock. Python: `multiprocessing.RLock()`.
    pub fn new() -> Result<RLock> {
        Ok(RLock {
            s: Segment::new(|_| {})?,
        })
    }

    /// Whether the calling thread owns the lock.
    #[inline]
    pub fn is_owned(&self) -> bool {
        let st = self.s.get();
        raw::owner(&st.word) == sys::pid() && st.owner_tid.load(Ordering::Relaxed) == tid()
    }

    /// The recursion depth of the owner (0 when free).
    pub fn count(&self) -> u32 {
        let st = self.s.get();
        if raw::owner(&st.word) == 0 {
            0
        } else {
            st.count.load(Ordering::Relaxed)
        }
    }

    #[inline]
    fn acquire_with(
        &self,
        take: impl FnOnce(&AtomicU32) -> Acquired,
    ) -> std::result::Result<bool, OwnerDied> {
        let st = self.s.get();
        // Free: take it at once. Ours: one level deeper (only the owner touches `count`).
        if st
            .word
            .compare_exchange(0, sys::pid(), Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            st.owner_tid.store(tid(), Ordering::Relaxed);
            st.count.store(1, Ordering::Relaxed);
            return Ok(true);
        }
        if self.is_owned() {
            let depth = st.count.load(Ordering::Relaxed);
            st.count.store(depth + 1, Ordering::Relaxed);
            return Ok(true);
        }
        let a = take(&st.word);
        if a != Acquired::No {
            st.owner_tid.store(tid(), Ordering::Relaxed);
            st.count.store(1, Ordering::Relaxed);
        }
        outcome(a)
    }

    /// Blocks until acquired (at once if this thread owns it). Python: `RLock.acquire()`.
    #[inline]
    pub fn acquire(&self) -> std::result::Result<(), OwnerDied> {
        self.acquire_with(|w| raw::lock(w, None)).map(|_| ())
    }

    /// Waits at most `timeout`. Python: `RLock.acquire(timeout=t)`.
    pub fn acquire_timeout(&self, timeout: Duration) -> std::result::Result<bool, OwnerDied> {
        let deadline = crate::futex::deadline(Some(timeout));
        self.acquire_with(|w| raw::lock(w, deadline))
    }

    /// [`acquire_timeout`](Self::acquire_timeout) with a deadline.
    pub fn acquire_deadline(&self, deadline: Instant) -> std::result::Result<bool, OwnerDied> {
        self.acquire_with(|w| raw::lock(w, Some(deadline)))
    }

    /// Acquires only if that needs no waiting. Python: `RLock.acquire(False)`.
    pub fn try_acquire(&self) -> std::result::Result<bool, OwnerDied> {
        self.acquire_with(raw::try_lock)
    }

    /// Releases one level. Python: `RLock.release()`.
    #[inline]
    pub fn release(&self) -> Result<()> {
        if !self.is_owned() {
            return Err(Error::NotOwner);
        }
        let st = self.s.get();
        let depth = st.count.load(Ordering::Relaxed);
        if depth <= 1 {
            st.count.store(0, Ordering::Relaxed);
            st.owner_tid.store(0, Ordering::Relaxed);
            raw::unlock(&st.word);
        } else {
            st.count.store(depth - 1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Releases every level; returns how many there were (Python's `_release_save`).
    pub(crate) fn release_all(&self) -> Result<u32> {
        if !self.is_owned() {
            return Err(Error::NotOwner);
        }
        let st = self.s.get();
        let count = st.count.swap(0, Ordering::Relaxed);
        st.owner_tid.store(0, Ordering::Relaxed);
        raw::unlock(&st.word);
        Ok(count)
    }

    /// Acquires again with a saved depth (Python's `_acquire_restore`).
    pub(crate) fn acquire_restore(&self, count: u32) -> std::result::Result<(), OwnerDied> {
        let st = self.s.get();
        let a = raw::lock(&st.word, None);
        st.owner_tid.store(tid(), Ordering::Relaxed);
        st.count.store(count.max(1), Ordering::Relaxed);
        outcome(a).map(|_| ())
    }

    /// Acquires and returns a guard that releases one level when dropped.
    pub fn lock(&self) -> std::result::Result<RLockGuard<'_>, OwnerDied<RLockGuard<'_>>> {
        match self.acquire() {
            Ok(()) => Ok(RLockGuard { lock: self }),
            Err(_) => Err(OwnerDied::new(RLockGuard { lock: self })),
        }
    }

    /// Whether two handles are the same lock.
    pub fn same_as(&self, other: &RLock) -> bool {
        self.s.same(&other.s)
    }
}

/// Holds one level of an [`RLock`]; releases it when dropped.
#[must_use = "if unused the RLock will immediately unlock"]
pub struct RLockGuard<'a> {
    lock: &'a RLock,
}

impl fmt::Debug for RLockGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RLockGuard")
    }
}

impl Drop for RLockGuard<'_> {
    fn drop(&mut self) {
        let _ = self.lock.release();
    }
}
