//! Queues between processes: Python's `Queue`, `SimpleQueue` and `JoinableQueue`, on a
//! shared-memory ring that a `kill -9` never corrupts.
//!
//! Mirrors Python's `multiprocessing.queues`. CPython's `Queue` is a pipe, two locks and a feeder
//! thread; a process killed while using it can corrupt it for everyone (a half-written message
//! in the pipe, a lock held forever). Here a queue is one shared segment holding a ring of
//! encoded items, a robust put lock and a robust get lock (`mp_sync::Lock`, which a dead
//! holder frees), and futex words to sleep on. Every change a producer or consumer makes
//! becomes visible in one atomic store, so a process killed at any instant leaves the queue
//! usable by the others.
//!
//! ```
//! use mp_core::Process;
//! use mp_queue::Queue;
//!
//! fn worker((tasks, results): (Queue<Option<u64>>, Queue<u64>)) {
//!     while let Ok(Some(n)) = tasks.get() {
//!         results.put(n * n).unwrap();
//!     }
//! }
//!
//! let tasks = Queue::new().unwrap();
//! let results = Queue::new().unwrap();
//! let mut p = Process::new(worker, (tasks.clone(), results.clone()));
//! p.start().unwrap();
//! for n in 1..=3 {
//!     tasks.put(Some(n)).unwrap();
//! }
//! tasks.put(None).unwrap();
//! let mut got: Vec<u64> = (0..3).map(|_| results.get().unwrap()).collect();
//! got.sort();
//! assert_eq!(got, [1, 4, 9]);
//! p.join().unwrap();
//! ```
//!
//! # The ring
//!
//! Items are encoded (MessagePack) straight into the shared data area and decoded straight out
//! of it. The area is address space, not memory: 1 GiB by default, of which only the pages
//! holding items exist; a steady queue wraps around within its first 4 MiB, and the pages a
//! burst used beyond that are released when it drains ([`QueueSizes`]). An item must fit in the
//! area whole (a 64 MiB item is fine).
//!
//! # Differences from Python
//!
//! - Every blocking call follows the stack's one [timeout contract](mp_core::deadline):
//!   `x()`, `x_timeout(Duration)`, `x_deadline(Instant)` and `try_x()`/`x_nowait()`, with
//!   `Ok(false)` where Python returns `False` and a typed error where Python raises.
//! - No feeder thread: `put` has written the item into the queue when it returns, so
//!   [`Queue::join_thread`] and [`Queue::cancel_join_thread`] are no-ops, and items put just
//!   before a process exits are never lost.
//! - An unbounded queue holds up to its data area's capacity (1 GiB of encoded items by
//!   default); past that, `put` waits for room like a bounded one.
//! - [`Queue::qsize`] is exact whenever no put or get is in progress.
//! - Items are serde values; values holding handles (connections, locks) cannot go through a
//!   queue (send those over a duplex `Connection`).
//! - A consumer killed in the middle of `get` either left the item in the queue (it had not
//!   yet taken it) or took it with it; a producer killed in the middle of `put` either put the
//!   whole item or nothing.
#![deny(unsafe_code)]

mod error;
mod queue;
mod ring;
mod sys;

pub use error::{Error, Result};
pub use queue::{JoinableQueue, Queue, QueueSizes, SimpleQueue};
