//! Process-shared synchronization: Python's `Lock`, `RLock`, `Semaphore`, `BoundedSemaphore`,
//! `Condition`, `Event` and `Barrier`, which survive a dead owner.
//!
//! Mirrors the synchronization half of Python's `multiprocessing` (`multiprocessing.synchronize`).
//! Every primitive is a futex word in a shared segment (a memfd mapped `MAP_SHARED`): cloning a
//! handle, passing it to a child (fork, spawn or forkserver) or sending it over a duplex
//! `Connection` shares the same primitive. Waiting blocks in the kernel after a short spin, and
//! every wait has a timeout variant.
//!
//! ```
//! use mp_core::Process;
//! use mp_sync::{Event, Lock};
//!
//! fn child((lock, done): (Lock, Event)) {
//!     let _guard = lock.lock().unwrap();
//!     done.set();
//! }
//!
//! let lock = Lock::new().unwrap();
//! let done = Event::new().unwrap();
//! let mut p = Process::new(child, (lock.clone(), done.clone()));
//! p.start().unwrap();
//! assert!(done.wait_timeout(std::time::Duration::from_secs(30)).unwrap());
//! p.join().unwrap();
//! assert!(lock.try_acquire().unwrap());
//! lock.release().unwrap();
//! ```
//!
//! # Owner death
//!
//! A lock word holds its owner's pid. If a process dies while holding a [`Lock`], an [`RLock`]
//! or a [`Condition`]'s lock, the next acquirer (whatever its timeout) takes the lock over within
//! about 100 ms and is told so by [`OwnerDied`] (the lock is then held by the caller, like
//! pthread's `EOWNERDEAD` and `std::sync::PoisonError`). Units of a [`Semaphore`] taken by a dead
//! process are lost, as with POSIX semaphores. A waiter of a [`Barrier`] or [`Condition`] that
//! dies never wakes anybody, so the others rely on their timeouts: the barrier then breaks, the
//! condition wait returns false, and the dead waiter's slot is reclaimed. Sleepers look again
//! at least every 100 ms, so a process killed between changing a word and waking its sleepers
//! (a `set`, a `release`, a `notify`) delays them by at most that much, never forever.
//!
//! # Differences from Python
//!
//! - Timeouts follow the stack's one [timeout contract](mp_core::deadline): `acquire`,
//!   `acquire_timeout`, `acquire_deadline`, `try_acquire` (and `wait*` alike), `Ok(false)` where
//!   Python returns `False`; guards (`lock()`) replace `with`. Every lock implements one
//!   [`RawLock`] trait and shares one [`LockGuard`], `!Send` for locks owned by a thread.
//! - Owner death is detected and reported (CPython's locks stay locked forever).
//! - A `Lock` records which thread holds it, so `Condition::wait` on a plain `Lock` checks the
//!   caller holds it (as CPython does); any thread may still `release` a `Lock`.
//! - A [`Condition`] has at most [`MAX_WAITERS`] simultaneous waiters.
//! - A [`Barrier`]'s action is a `fn()` (it crosses into whichever process arrives last).
#![deny(unsafe_code)]

mod barrier;
mod condition;
mod error;
mod event;
mod fence;
pub mod futex;
mod guard;
mod lock;
mod raw;
mod segment;
mod semaphore;

pub use barrier::Barrier;
pub use condition::{Condition, MAX_WAITERS};
pub use error::{Error, OwnerDied, Result};
pub use event::Event;
pub use guard::{GuardNoSend, GuardResult, GuardSend, LockGuard, RawLock};
pub use lock::{AnyLock, Lock, RLock};
pub use semaphore::{BoundedSemaphore, Semaphore, SemaphoreGuard, SEM_VALUE_MAX};
