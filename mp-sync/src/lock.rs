//! `Lock`, `RLock`, and `AnyLock` (either of them).

use mp_core::Deadline;
use serde::{Deserialize, Serialize};
use std::cell::Cell;
use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::error::{Error, OwnerDied, Result};
use crate::guard::{lock_surface, GuardNoSend, GuardSend, RawLock};
use crate::raw::{self, Acquired, RawWord};
use crate::segment::{self, Segment, Tagged};

thread_local! {
    /// (pid, tid) of this thread, refreshed after a fork.
    static TID: Cell<(u32, u32)> = const { Cell::new((0, 0)) };
}

/// This thread's id (`gettid`), cached per thread and per process.
#[inline]
pub(crate) fn tid() -> u32 {
    TID.with(|c| {
        let me = segment::pid();
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

mp_core::shared_state! {
    /// Shared state of a [`Lock`].
    pub(crate) struct LockState {
        magic: AtomicU32,
        /// The raw lock word (see `raw`).
        word: RawWord,
        /// The thread that last acquired it (only meaningful while locked).
        owner_tid: AtomicU32,
    }
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

    /// A release that found no acquiring thread recorded: unlocked, or released by another
    /// thread between the acquire's compare-exchange and its record.
    #[cold]
    #[inline(never)]
    fn release_unrecorded(&self) -> Result<()> {
        if raw::unlock(&self.s.get().word) {
            Ok(())
        } else {
            Err(Error::NotLocked)
        }
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

// One holder at a time: `raw`'s compare-exchanges take the word from 0 (or
// from a dead owner's value); `release` is the only way back to 0.
impl RawLock for Lock {
    type GuardMarker = GuardSend;

    #[inline]
    fn acquire_until(&self, deadline: Deadline) -> std::result::Result<bool, OwnerDied> {
        let word = &self.s.get().word;
        let a = if deadline == Deadline::NEVER {
            raw::lock(word, deadline)
        } else if deadline.has_passed() {
            raw::try_lock(word)
        } else {
            raw::lock(word, deadline)
        };
        self.won(a)
    }

    /// Releases the lock (from any thread or process). Releasing an unlocked lock is
    /// [`Error::NotLocked`] (Python: `ValueError`).
    #[inline]
    fn release(&self) -> Result<()> {
        let st = self.s.get();
        // Every acquire records its thread: a recorded one says "locked" without a load of
        // the word, which the acquire's compare-exchange may still be writing.
        if st.owner_tid.load(Ordering::Relaxed) != 0 {
            st.owner_tid.store(0, Ordering::Relaxed);
            raw::unlock_held(&st.word);
            return Ok(());
        }
        self.release_unrecorded()
    }

    fn is_owned(&self) -> bool {
        let st = self.s.get();
        raw::owner(&st.word) == segment::pid() && st.owner_tid.load(Ordering::Relaxed) == tid()
    }
}

lock_surface!(Lock, "Lock");

mp_core::shared_state! {
    /// Shared state of an [`RLock`].
    pub(crate) struct RLockState {
        magic: AtomicU32,
        word: RawWord,
        owner_tid: AtomicU32,
        count: AtomicU32,
    }
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
        take: impl FnOnce(&RawWord) -> Acquired,
    ) -> std::result::Result<bool, OwnerDied> {
        let st = self.s.get();
        // Free: take it at once. Ours: one level deeper (only the owner touches `count`).
        if raw::try_free(&st.word) {
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

    /// Releases every level; returns how many there were (Python's `_release_save`).
    pub(crate) fn release_all(&self) -> Result<u32> {
        if !self.is_owned() {
            return Err(Error::NotOwner);
        }
        let st = self.s.get();
        let count = st.count.swap(0, Ordering::Relaxed);
        st.owner_tid.store(0, Ordering::Relaxed);
        raw::unlock_held(&st.word);
        Ok(count)
    }

    /// Acquires again with a saved depth (Python's `_acquire_restore`).
    pub(crate) fn acquire_restore(&self, count: u32) -> std::result::Result<(), OwnerDied> {
        let st = self.s.get();
        let a = raw::lock(&st.word, Deadline::NEVER);
        st.owner_tid.store(tid(), Ordering::Relaxed);
        st.count.store(count.max(1), Ordering::Relaxed);
        outcome(a).map(|_| ())
    }

    /// Whether two handles are the same lock.
    pub fn same_as(&self, other: &RLock) -> bool {
        self.s.same(&other.s)
    }
}

// One holder: the futex word admits one holding process, `owner_tid` one thread in it, and only
// that thread (`is_owned`) re-enters or releases; the word goes back to 0 at the last release.
impl RawLock for RLock {
    type GuardMarker = GuardNoSend;

    #[inline]
    fn acquire_until(&self, deadline: Deadline) -> std::result::Result<bool, OwnerDied> {
        if deadline.has_passed() {
            self.acquire_with(raw::try_lock)
        } else {
            self.acquire_with(|w| raw::lock(w, deadline))
        }
    }

    /// Releases one level. [`Error::NotOwner`] from a thread that does not own it.
    #[inline]
    fn release(&self) -> Result<()> {
        if !self.is_owned() {
            return Err(Error::NotOwner);
        }
        let st = self.s.get();
        let depth = st.count.load(Ordering::Relaxed);
        if depth <= 1 {
            st.count.store(0, Ordering::Relaxed);
            st.owner_tid.store(0, Ordering::Relaxed);
            raw::unlock_held(&st.word);
        } else {
            st.count.store(depth - 1, Ordering::Relaxed);
        }
        Ok(())
    }

    #[inline]
    fn is_owned(&self) -> bool {
        let st = self.s.get();
        raw::owner(&st.word) == segment::pid() && st.owner_tid.load(Ordering::Relaxed) == tid()
    }
}

lock_surface!(RLock, "RLock");

/// Either lock: what a [`Condition`](crate::Condition), a synchronized `Value` or `Array`
/// (mp-shared) and a manager's lock proxy hold when the user may choose.
///
/// Python: the `lock` argument of `Condition(lock)` and `Value(typecode, value, lock=...)`
/// (by default an `RLock`). Build it from either lock with `From`; clone it to share one lock.
/// Like the locks themselves, it is shared with a child when passed to it (under any start
/// method) or sent over a duplex `Connection`. Its guard is `!Send`, as it may be an `RLock`'s.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum AnyLock {
    /// A non-recursive lock (Python: `multiprocessing.Lock`).
    Lock(Lock),
    /// A recursive lock (Python: `multiprocessing.RLock`), the default.
    RLock(RLock),
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
    /// A new recursive lock (the default of `Condition` and `Value`).
    /// Python: `multiprocessing.RLock()`.
    pub fn new_rlock() -> Result<AnyLock> {
        Ok(AnyLock::RLock(RLock::new()?))
    }

    /// A new non-recursive lock. Python: `multiprocessing.Lock()`.
    pub fn new_lock() -> Result<AnyLock> {
        Ok(AnyLock::Lock(Lock::new()?))
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

    /// Releases completely; returns what [`restore`](Self::restore) needs (Python's
    /// `_release_save`).
    pub(crate) fn release_save(&self) -> Result<u32> {
        match self {
            AnyLock::Lock(l) => l.release().map(|()| 1),
            AnyLock::RLock(l) => l.release_all(),
        }
    }

    /// Takes the lock again after [`release_save`](Self::release_save) (Python's
    /// `_acquire_restore`).
    pub(crate) fn restore(&self, saved: u32) -> std::result::Result<(), OwnerDied> {
        match self {
            AnyLock::Lock(l) => l.acquire(),
            AnyLock::RLock(l) => l.acquire_restore(saved),
        }
    }
}

// Delegates to the lock inside.
impl RawLock for AnyLock {
    type GuardMarker = GuardNoSend;

    #[inline]
    fn acquire_until(&self, deadline: Deadline) -> std::result::Result<bool, OwnerDied> {
        match self {
            AnyLock::Lock(l) => l.acquire_until(deadline),
            AnyLock::RLock(l) => l.acquire_until(deadline),
        }
    }

    #[inline]
    fn release(&self) -> Result<()> {
        match self {
            AnyLock::Lock(l) => RawLock::release(l),
            AnyLock::RLock(l) => RawLock::release(l),
        }
    }

    #[inline]
    fn is_owned(&self) -> bool {
        match self {
            AnyLock::Lock(l) => RawLock::is_owned(l),
            AnyLock::RLock(l) => RawLock::is_owned(l),
        }
    }
}

lock_surface!(AnyLock, "lock");
