//! Managers and proxies: Python's `multiprocessing.managers` for Rust.
//!
//! A manager is a server process that owns objects; proxies in any process call their methods
//! by name over an authenticated [`Connection`](mp_core::Connection). The server's objects hold
//! dynamically typed values ([`rmpv::Value`], MessagePack), so a server can serve clients built
//! from another program; proxies are typed on the client ([`DictProxy<K, V>`],
//! [`ListProxy<T>`], [`NamespaceProxy`]). Code pointers never cross.
//!
//! ```
//! use mp_core::Process;
//! use mp_manager::{DictProxy, ListProxy, Manager};
//!
//! // Python's example: a child fills a dict and reverses a list.
//! fn f((d, l): (DictProxy<String, f64>, ListProxy<i32>)) {
//!     d.set("1".into(), 1.0).unwrap();
//!     d.set("2".into(), 2.0).unwrap();
//!     l.reverse().unwrap();
//! }
//!
//! let manager = Manager::new()?;
//! let d = manager.dict::<String, f64>()?;
//! let l = manager.list_from(&(0..10).collect::<Vec<i32>>())?;
//! let mut p = Process::new(f, (d.clone(), l.clone()));
//! p.start()?;
//! p.join()?;
//! assert_eq!(d.items()?, [("1".to_string(), 1.0), ("2".to_string(), 2.0)]);
//! assert_eq!(l.copy()?, [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # The protocol
//!
//! See [`protocol`]: one request, one reply, MessagePack over the stack's framing; objects
//! named by a [`Token`]; `#RETURN` / `#ERROR` / `#PROXY` replies as CPython's.
//!
//! # References
//!
//! Each proxy (with its clones in one process) holds one reference through a connection of its
//! own; the server drops a connection's references when it closes, so an object is freed when
//! its last proxy in any process is gone, including proxies in processes that were killed
//! ([`Manager::number_of_objects`] shows it). A proxy sent to another process holds one more
//! reference while in transit (`Share`), which the receiver takes over (`Adopt`); a proxy that
//! is never received (its receiver killed first) leaks that reference, as in CPython. A proxy
//! stored as a value of another object of its server (a list proxy in a dict, as CPython 3.6+
//! allows) pins its object for as long as the server runs (`Pin`); reading it back gives a
//! proxy of the same object.
//!
//! # Speed
//!
//! A call is one request and one reply, read a whole frame per `read`. A proxy waiting for its
//! reply, and a connection thread of the server waiting for its client's next request, first
//! poll the socket for up to 50 µs, yielding the CPU between polls, before they sleep in
//! `read` ([`mp_core::frames::FrameReader::spin_fill`]): a client calling in a loop then never
//! pays for the two wake-ups of a blocking round trip, so a call costs less than a raw
//! blocking socket round trip (`cargo xtask bench`, `manager_dict_ops`). At most one fewer
//! server thread than there are CPUs spins at once, so a crowd of clients is served by
//! sleeping threads; on a machine with one CPU nothing spins.
//!
//! # Differences from Python
//!
//! - The server dying makes every proxy call fail at once with [`Error::ServerGone`], in every
//!   process; Python's proxies may hang or raise `EOFError` depending on where they were.
//! - One slow, silent or hostile client never delays the others: handshakes run concurrently
//!   and each connection has a thread of its own on the server.
//! - Dict keys compare by their MessagePack value (integers of any width alike); Python's also
//!   makes `1 == 1.0 == True`.
//! - Proxies serialize only inside a handle transfer (to a child, over a duplex `Connection`).
//! - A manager `Lock` held by a process that dies is freed, and its next owner is told
//!   ([`Error::is_owner_died`]); Python's stays locked forever.
//! - User types are registered with [`ManagerBuilder::register`] and exposed with
//!   [`exposed!`] (a trait and a declarative macro instead of Python's `register(typeid,
//!   callable, exposed)`); the type id is the type's name and the constructor its `Default`.
//! - Built here so far: `dict`, `list`, `Namespace`, `Queue`, `JoinableQueue`, `Event`, `Lock`,
//!   `RLock`, `Semaphore`, `BoundedSemaphore`, `Condition`, `Barrier`, `Value`, `Array`, user
//!   types with methods returning proxies (`method_to_typeid`: `-> R as SomeProxy` in
//!   [`exposed!`]), proxies nested in other objects, and [`SharedMemoryManager`].
#![deny(unsafe_code)]

mod error;
mod exposed;
mod manager;
mod objects;
pub mod protocol;
mod proxy;
mod server;
mod shared_memory;

pub use error::{Error, Result};
#[doc(hidden)]
pub use exposed::__private;
pub use exposed::{Exposed, Fail};
pub use manager::{Manager, ManagerBuilder};
pub use protocol::{RemoteKind, Token};
pub use proxy::{
    ArrayProxy, BarrierProxy, ConditionProxy, DictProxy, EventProxy, Handle, JoinableQueueProxy,
    ListProxy, LockProxy, NamespaceProxy, Proxy, QueueProxy, SemaphoreProxy, ValueProxy,
};
pub use rmpv;
#[doc(hidden)]
pub use serde as __serde;
pub use server::Server;
pub use shared_memory::SharedMemoryManager;
