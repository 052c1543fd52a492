//! `multiprocessing` for Rust: Python's `multiprocessing`, with the names a Python programmer
//! knows, over real OS processes.
//!
//! This umbrella crate re-exports the whole stack; each layer is also usable alone.
//!
//! - **Processes** ([`mp_core`]): [`Process`], start methods ([`set_start_method`],
//!   [`get_context`]), [`current_process`], [`parent_process`], [`active_children`],
//!   [`cpu_count`], [`exit`].
//! - **Pipes** ([`mp_core`]): [`pipe`] and [`Connection`], in CPython's wire format.
//! - **Shared segments and handles**: [`SharedSegment`], [`handle`].
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
//! See the README for the table of Python names and their Rust counterparts.

#[doc(inline)]
pub use mp_core::{
    active_children, codec, cpu_count, current_process, exit, freeze_support,
    get_all_start_methods, get_context, get_start_method, get_start_method_if_set, handle, init,
    parent_process, pipe, set_executable, set_join_at_exit, set_start_method,
    set_start_method_force, Connection, Context, CurrentProcess, Error, Message, ParentProcess,
    Process, Result, SharedSegment, StartMethod,
};

/// The whole of `mp-core`, for items not re-exported at the top.
pub use mp_core;
