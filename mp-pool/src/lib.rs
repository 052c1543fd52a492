//! Python's `multiprocessing.Pool` for Rust: a pool of worker processes that never hangs a
//! caller, never loses a result and obeys time limits.
//!
//! Mirrors Python's `multiprocessing.pool`: [`Pool`] with `apply`, `apply_async`, `map`,
//! `map_async`, `imap`, `imap_unordered`, `starmap`, `starmap_async` (and chunksize variants),
//! `close`, `terminate`, `join`; [`AsyncResult`] and [`MapResult`] with `get`, `wait`, `ready`,
//! `successful`; [`IMapIterator`] and [`IMapUnorderedIterator`].
//!
//! ```
//! use mp_pool::Pool;
//!
//! fn square(x: u64) -> u64 {
//!     x * x
//! }
//!
//! let pool = Pool::new(2).unwrap();
//! assert_eq!(pool.apply_async(square, 10).unwrap().get().unwrap(), 100);
//! assert_eq!(pool.map(square, 0..10).unwrap(), [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]);
//! let lazy: Vec<u64> = pool.imap(square, 0..5).unwrap().map(Result::unwrap).collect();
//! assert_eq!(lazy, [0, 1, 4, 9, 16]);
//! pool.close();
//! pool.join().unwrap();
//! ```
//!
//! A task is a `fn(A) -> R` (a `fn` item or a non-capturing closure) with serde arguments and
//! result: it crosses to a worker as a *function identity* (see [`mp_core::Function`]), so
//! the pool works under every start method (fork, spawn, forkserver) and from inside a child
//! process. Functions that return `Result<T, E>` go through `try_apply`, `try_apply_async`
//! and `try_map`: an `Err` becomes [`Error::Remote`] with its `Display`.
//!
//! # Robustness
//!
//! Each worker has its own connection to the pool's supervisor thread, which therefore always
//! knows which task each worker runs:
//!
//! - a worker killed in the middle of a task (SIGKILL, the OOM killer, `abort()`) fails exactly
//!   that task with [`Error::WorkerLost`] (its pid and exit code); the pool replaces the
//!   worker and goes on, and a `map` returns that error once its other chunks have finished;
//! - a task past its time limit ([`PoolBuilder::time_limit`],
//!   [`Pool::apply_async_time_limit`]) has its worker killed and replaced and fails with
//!   [`Error::TimeLimitExceeded`];
//! - [`Pool::terminate`] and dropping the pool resolve every pending result to
//!   [`Error::Terminated`] at once; [`AsyncResult::cancel`] removes a queued task or kills
//!   the worker running it ([`Error::Cancelled`]);
//! - a task that panics fails with [`Error::TaskPanicked`] (message and location); its worker
//!   goes on;
//! - a panicking callback is caught and logged; an initializer that fails makes the pool's
//!   creation fail ([`Error::Initializer`]) instead of respawning workers forever;
//! - `maxtasksperchild` and a resident-memory cap ([`PoolBuilder::max_memory_per_child`])
//!   replace workers between tasks.
//!
//! [`AsyncResult`] and [`MapResult`] are also [`Future`](std::future::Future)s, woken by the
//! pool: `.await` them on any executor.
//!
//! # Where the work is done
//!
//! The supervisor thread only moves bytes: it sends tasks, reads results and resolves the
//! slots. Results stay encoded until they are asked for, and are decoded by the thread that
//! asks: `AsyncResult::get` decodes its value, and `MapResult::get` decodes each chunk onto the
//! end of the one vector it returns as soon as that chunk arrives in turn, while the workers
//! run the next ones (a `map` of 100 000 small items decodes in the caller's thread, in
//! parallel with the pool, and never stalls the supervisor). Each `get` decodes anew, so a
//! second `get` returns the whole value again, as Python's does; a `get` that times out
//! part-way loses nothing. Callbacks, which run on the supervisor thread, decode their value
//! there.
//!
//! # Differences from Python
//!
//! - Timeouts follow the stack's [timeout contract](mp_core::deadline): `get()`,
//!   `get_timeout(Duration)` (→ [`Error::Timeout`], Python's `TimeoutError`) and
//!   `get_deadline(Instant)`; `wait_timeout` returns whether the result is ready (Python's
//!   `wait` returns `None` and the caller asks `ready()`). `IMapIterator::next_timeout` is
//!   Python's `next(timeout)`; [`Pool::join_timeout`] is beyond Python.
//! - A failed task's error is a typed [`Error`], not the re-raised exception.
//! - `imap`/`imap_unordered` pull their input lazily, at most a buffer of chunks ahead
//!   (CPython 3.13 consumes the whole input first); their items are `Result`s.
//! - `starmap` takes two-argument functions (`fn(A, B) -> R`); pack more into a tuple.
//! - Callbacks take a reference (`FnOnce(&R)`) and run on the pool's supervisor thread, before
//!   the result becomes ready, as CPython's run on its result-handler thread.
//! - Task arguments cannot hold handles (a `Queue`, a `Connection`), as CPython cannot pickle
//!   them into a task; give them to the workers through the initializer.
//! - The pool's workers are daemonic processes of the pool's start method; under fork, the
//!   replacements are forked by the supervisor thread, so the multithreaded-fork hazard of
//!   [`mp_core`] applies to them as it does to CPython's.
//! - Dropping the pool terminates it (Python's `with` block); `close` + `join` let queued work
//!   finish first.
#![deny(unsafe_code)]

mod error;
mod imap;
mod pool;
mod result;
mod supervisor;
mod worker;

pub use error::{Error, Result};
pub use imap::{IMapIterator, IMapUnorderedIterator};
pub use pool::{Pool, PoolBuilder};
pub use result::{AsyncResult, MapResult};
pub use worker::InitOutcome;
