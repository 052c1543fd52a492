//! `multiprocessing` for Rust: Python's `multiprocessing`, with the names a Python programmer
//! knows, over real OS processes.
//!
//! This umbrella crate re-exports the whole stack at the top level, as Python's module does;
//! each layer is also a crate of its own, usable alone.
//!
//! - **Processes** ([`mp_core`]): [`Process`], start methods ([`set_start_method`],
//!   [`get_context`]), [`current_process`], [`parent_process`], [`active_children`],
//!   [`cpu_count`], [`exit`].
//! - **Pipes** ([`mp_core`]): [`pipe`] and [`Connection`], in CPython's wire format.
//! - **Synchronization** ([`synchronize`], the `mp-sync` crate): [`Lock`], [`RLock`],
//!   [`Semaphore`], [`BoundedSemaphore`], [`Condition`], [`Event`], [`Barrier`], which survive a
//!   dead owner ([`OwnerDied`]).
//! - **Queues** ([`queues`], the `mp-queue` crate): [`Queue`], [`SimpleQueue`],
//!   [`JoinableQueue`], on a shared-memory ring that a `kill -9` never corrupts.
//! - **Shared memory** ([`sharedctypes`], the `mp-shared` crate): [`Value`], [`Array`],
//!   [`RawValue`], [`RawArray`], [`SharedAtomic`], and named [`SharedMemory`] with a resource
//!   tracker that cleans up after crashed processes.
//! - **Pools** ([`pool`], the `mp-pool` crate): [`Pool`] ([`PoolBuilder`]), [`AsyncResult`],
//!   [`MapResult`], [`IMapIterator`], [`IMapUnorderedIterator`]: Python's `Pool`, whose
//!   results never hang on a dead worker and obey time limits.
//! - **Connections** ([`connection`], the `mp-connection` crate): `Listener`, `Client`,
//!   `Address`, the CPython-compatible HMAC handshake and `wait`.
//! - **Shared segments, handles and function identities**: [`SharedSegment`], [`handle`],
//!   [`Function`].
//!
//! ```
//! use multiprocessing::{pipe, Connection, Process};
//!
//! fn f(mut conn: Connection) {
//!     conn.send(&(42, None::<i32>, "hello")).unwrap();
//! }
//!
//! let (mut parent_conn, child_conn) = pipe(true).unwrap();
//! let mut p = Process::new(f, child_conn);
//! p.start().unwrap();
//! let got: (i32, Option<i32>, String) = parent_conn.recv().unwrap();
//! assert_eq!(got, (42, None, "hello".to_string()));
//! p.join().unwrap();
//! ```
//!
//! Errors: each layer has its own `Error` enum; [`Error`] here wraps them all, so one `?` works
//! across layers. See the README for the table of Python names and their Rust counterparts.

#[doc(inline)]
pub use mp_core::{
    active_children, codec, cpu_count, current_process, exit, freeze_support,
    get_all_start_methods, get_context, get_start_method, get_start_method_if_set, handle, init,
    parent_process, pipe, process_id, process_is_alive, set_executable, set_forkserver_preload,
    set_join_at_exit, set_start_method, set_start_method_force, util, Connection, Context,
    CurrentProcess, Deadline, FnPtr, Function, Message, ParentProcess, Process, SharedSegment,
    StartMethod,
};
#[doc(inline)]
pub use mp_sync::{
    AnyLock, Barrier, BoundedSemaphore, Condition, Event, Lock, LockGuard, OwnerDied, RLock,
    RawLock, Semaphore, SemaphoreGuard,
};

#[doc(inline)]
pub use mp_pool::{AsyncResult, IMapIterator, IMapUnorderedIterator, MapResult, Pool, PoolBuilder};
#[doc(inline)]
pub use mp_queue::{JoinableQueue, Queue, QueueSizes, SimpleQueue};
#[doc(inline)]
pub use mp_shared::{Array, RawArray, RawValue, ShareableList, SharedAtomic, SharedMemory, Value};

/// Python's `multiprocessing.connection`: the `mp-connection` crate (with `Connection` and
/// `Pipe` re-exported at the top level too).
#[doc(inline)]
pub use mp_connection as connection;
/// The whole of `mp-core`, for items not re-exported at the top.
#[doc(inline)]
pub use mp_core;
/// Python's `multiprocessing.managers`: the `mp-manager` crate (with `Manager` re-exported at
/// the top level too).
#[doc(inline)]
pub use mp_manager as managers;
#[doc(inline)]
pub use mp_manager::{Manager, SharedMemoryManager};
/// Python's `multiprocessing.pool`: the `mp-pool` crate.
#[doc(inline)]
pub use mp_pool as pool;
/// Python's `multiprocessing.queues`: the `mp-queue` crate.
#[doc(inline)]
pub use mp_queue as queues;
/// Python's `multiprocessing.sharedctypes` and `multiprocessing.shared_memory`: the
/// `mp-shared` crate.
#[doc(inline)]
pub use mp_shared as sharedctypes;
/// Python's `multiprocessing.shared_memory` (`SharedMemory`, `ShareableList`): the same
/// `mp-shared` crate as [`sharedctypes`].
pub use mp_shared as shared_memory;
/// Python's `multiprocessing.synchronize`: the `mp-sync` crate.
#[doc(inline)]
pub use mp_sync as synchronize;

/// Any error of the stack; each variant wraps one layer's error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Processes, pipes, handles ([`mp_core::Error`]).
    #[error(transparent)]
    Core(#[from] mp_core::Error),
    /// Synchronization ([`mp_sync::Error`]).
    #[error(transparent)]
    Sync(#[from] mp_sync::Error),
    /// Queues ([`mp_queue::Error`]).
    #[error(transparent)]
    Queue(#[from] mp_queue::Error),
    /// Shared values, arrays and memory ([`mp_shared::Error`]).
    #[error(transparent)]
    Shared(#[from] mp_shared::Error),
    /// Listeners, clients and the handshake ([`mp_connection::Error`]).
    #[error(transparent)]
    Connection(#[from] mp_connection::Error),
    /// Pools and their results ([`mp_pool::Error`]).
    #[error(transparent)]
    Pool(#[from] mp_pool::Error),
    /// Managers and proxies ([`mp_manager::Error`]).
    #[error(transparent)]
    Manager(#[from] mp_manager::Error),
}

impl<T> From<OwnerDied<T>> for Error {
    fn from(e: OwnerDied<T>) -> Self {
        Error::Sync(e.into())
    }
}

impl Error {
    /// True for an end-of-file error (Python: `EOFError`).
    pub fn is_eof(&self) -> bool {
        matches!(self, Error::Core(e) if e.is_eof())
            || matches!(self, Error::Connection(e) if e.is_eof())
    }
    /// True for a failed handshake (Python: `multiprocessing.AuthenticationError`).
    pub fn is_authentication(&self) -> bool {
        matches!(self, Error::Connection(e) if e.is_authentication())
            || matches!(self, Error::Manager(e) if e.is_authentication())
    }
    /// True for a method that failed on a manager's server (Python: the exception a proxy
    /// re-raises).
    pub fn is_remote(&self) -> bool {
        matches!(self, Error::Manager(e) if e.is_remote())
    }
    /// True for a timeout of any layer that raises one (Python: `TimeoutError`,
    /// `socket.timeout`): a connection's `recv`/`send`, `accept`, `Client::connect`, the
    /// handshake. (Waits whose Python form returns a bool return `Ok(false)` instead, and queues
    /// raise [`is_empty`](Self::is_empty)/[`is_full`](Self::is_full): see
    /// [the timeout contract](mp_core::deadline).)
    pub fn is_timeout(&self) -> bool {
        match self {
            Error::Core(e) => e.is_timeout(),
            Error::Connection(e) => e.is_timeout(),
            Error::Queue(mp_queue::Error::Core(e)) => e.is_timeout(),
            Error::Sync(mp_sync::Error::Core(e)) => e.is_timeout(),
            Error::Shared(mp_shared::Error::Core(e)) => e.is_timeout(),
            Error::Pool(e) => e.is_timeout(),
            _ => false,
        }
    }
    /// True for a closed object (Python: `ValueError`/`OSError` on a closed queue, connection,
    /// listener or process).
    pub fn is_closed(&self) -> bool {
        match self {
            Error::Core(e) => matches!(e, mp_core::Error::Closed(_)),
            Error::Queue(e) => e.is_closed(),
            Error::Connection(e) => e.is_closed(),
            _ => false,
        }
    }
    /// True when a lock's previous owner died while holding it ([`OwnerDied`] converted with
    /// `?`), from a lock, a condition, a queue's locks or a synchronized value.
    pub fn is_owner_died(&self) -> bool {
        match self {
            Error::Sync(e) => e.is_owner_died(),
            Error::Shared(e) => e.is_owner_died(),
            Error::Queue(mp_queue::Error::Sync(e)) => e.is_owner_died(),
            _ => false,
        }
    }
    /// True for a broken barrier (Python: `threading.BrokenBarrierError`).
    pub fn is_broken_barrier(&self) -> bool {
        matches!(self, Error::Sync(e) if e.is_broken_barrier())
    }
    /// True for an empty queue (Python: `queue.Empty`).
    pub fn is_empty(&self) -> bool {
        matches!(self, Error::Queue(e) if e.is_empty())
    }
    /// True for a full queue (Python: `queue.Full`).
    pub fn is_full(&self) -> bool {
        matches!(self, Error::Queue(e) if e.is_full())
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
