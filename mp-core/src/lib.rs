//! The bottom layer of `multiprocessing` for Rust: processes, start methods, pipes and
//! connections.
//!
//! Mirrors Python's `multiprocessing.process`, `multiprocessing.context` and the `Pipe`/
//! `Connection` half of `multiprocessing.connection`: real OS processes, started by fork, spawn
//! or forkserver, talking over pipes in CPython's own wire format.
//!
//! ```
//! use mp_core::{pipe, Process, Connection};
//!
//! fn greet(name: String) -> String {
//!     format!("hello {name}")
//! }
//!
//! fn echo(mut conn: Connection) {
//!     let n: i32 = conn.recv().unwrap();
//!     conn.send(&(n * 2)).unwrap();
//! }
//!
//! // A child runs `greet("bob")`; its return value comes back to the parent.
//! let mut p = Process::new(greet, "bob".to_string());
//! p.start().unwrap();
//! assert_eq!(p.join_result().unwrap(), "hello bob");
//! assert_eq!(p.exitcode().unwrap(), Some(0));
//!
//! // A Connection passed to a child moves there.
//! let (mut parent, child) = pipe(true).unwrap();
//! let mut p = Process::new(echo, child);
//! p.start().unwrap();
//! parent.send(&21).unwrap();
//! assert_eq!(parent.recv::<i32>().unwrap(), 42);
//! p.join().unwrap();
//! ```
//!
//! # Start methods
//!
//! [`StartMethod::Fork`] (the default on Linux) forks this process: fastest, runs closures
//! ([`Process::from_closure`]), inherits everything. [`StartMethod::Spawn`] re-executes the
//! program: a constructor placed in `.init_array` takes the child over before `main` runs, so
//! no setup is needed in `main`, in tests or in examples. [`StartMethod::Forkserver`] asks a
//! single-threaded server (spawned on first use) to fork the child. Under spawn and forkserver
//! a child runs a `fn(A) -> R` whose identity (its offset in this binary plus a fingerprint of
//! the binary) crosses the process boundary; a different executable is rejected with
//! [`Error::BinaryMismatch`].
//!
//! # Handles
//!
//! Objects holding fds (a [`Connection`], a [`SharedSegment`], and the locks, queues and values
//! of the crates above) serialize as *handles*: inside a transfer (arguments of a child, a
//! message over a duplex `Connection`) their fds travel beside the bytes, by inheritance or
//! `SCM_RIGHTS`. Serializing one anywhere else is an [`Error::Handle`]. See [`handle`].
//!
//! # Names
//!
//! One rule for the attributes of processes, on [`Process`], [`CurrentProcess`] and
//! [`ParentProcess`] alike: read-only attributes keep Python's name ([`Process::pid`],
//! [`Process::exitcode`], [`Process::sentinel`], [`CurrentProcess::identity`]); those a builder
//! also sets are read with `get_`/`is_` (the builder owns the bare name): `get_name()`,
//! `is_daemon()`, `get_authkey()`, and written with `set_name`, `set_daemon`, `set_authkey`.
//! `close` takes the receiver the handle's other methods take (`&self` on a [`Process`] and on
//! queues, whose state is shared inside; `&mut self` on a [`Connection`] or a listener; `self` on
//! a named shared-memory segment, which has nothing left to do once closed) and returns a
//! `Result` only where Python raises (closing a running process).
//!
//! # Differences from Python
//!
//! - Python's `timeout=None` / `block` arguments become separate methods
//!   ([`Process::join`], [`Process::join_timeout`], [`Process::join_deadline`]), the same way in
//!   every crate of the stack: the [timeout contract](deadline) is written down once, beside the
//!   [`Deadline`] type under every wait. Exceptions become [`Error`] variants.
//! - A child's return value reaches the parent ([`Process::join_result`]).
//! - Arguments move into the child: after `start`, the parent no longer holds them.
//! - Daemonic children die with their parent even when it is killed by a signal (a lifeline
//!   pipe watched by a thread in the child); Python only terminates them at a normal exit.
//! - [`exit`] is `sys.exit`: in a child's target it unwinds to the bootstrap, which exits with
//!   the code.
//! - Forking a multithreaded parent carries CPython's hazard: the child has only the forking
//!   thread, and a lock another thread held stays locked in it. A warning is logged (`log`) when
//!   that happens; prefer forkserver or spawn in threaded programs.
//! - `Pipe(duplex=False)` is a real pipe, as in Python, and cannot carry handles; a duplex
//!   `Pipe` can.
//! - Each process that uses forkserver has its own server, which exits with that process.
//! - Requires Linux 5.3 or later (pidfds).
#![deny(unsafe_code)]

mod bootstrap;
pub mod codec;
mod connection;
mod constructor;
mod context;
pub mod deadline;
mod depth;
mod error;
mod forkserver;
pub mod frames;
pub mod handle;
pub mod helper;
mod identity;
pub mod io;
mod process;
mod shm;
pub mod spin;
mod sys;
mod trampoline;
pub mod util;
mod view;
pub mod wirebuf;

pub use connection::{pipe, Connection};
pub use context::{
    get_all_start_methods, get_context, get_start_method, get_start_method_if_set, set_executable,
    set_forkserver_preload, set_start_method, set_start_method_force, Context, StartMethod,
};
pub use deadline::Deadline;
pub use error::{Error, Message, Result};
pub use helper::{start_detached, Helper, HelperOptions};
pub use identity::{FnPtr, Function};
pub use process::{
    active_children, cpu_count, current_process, exit, parent_process, process_id,
    process_is_alive, set_join_at_exit, CurrentProcess, ParentProcess, Process,
};
pub use shm::SharedSegment;
pub use view::{SharedState, SharedView};

/// Runs the child bootstrap when the platform did not run the `.init_array` constructor (it
/// always does on Linux with glibc or musl, so this is a no-op there): call it first in `main`
/// if your platform needs it.
///
/// Python: `multiprocessing.freeze_support()`.
pub fn init() {
    bootstrap::on_load();
}

/// Python: `multiprocessing.freeze_support()`; the same as [`init`].
pub fn freeze_support() {
    init();
}
