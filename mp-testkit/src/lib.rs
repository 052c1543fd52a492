//! The test kit of the multiprocessing workspace: the helpers that the integration tests of
//! every crate share, written once (not published).
//!
//! Each crate lists it under `[dev-dependencies]` (`mp-testkit = { path = "../mp-testkit" }`)
//! and its `tests/*.rs` files import what they need:
//!
//! ```no_run
//! use mp_testkit::{start, METHODS};
//!
//! fn double(n: u32) -> u32 {
//!     n * 2
//! }
//!
//! for m in METHODS {
//!     let child = start(m, double, 21);
//!     assert_eq!(child.finish(), 42, "{m}");
//! }
//! ```
//!
//! It depends only on `mp-core` (and std, rustix, libc, serde), so that every crate of the
//! workspace can use it without pulling the others in. Use it from `tests/` only, never from
//! a crate's `src/` unit tests.
//!
//! What is here:
//!
//! - [`METHODS`] and the timeouts ([`LONG`], [`FOREVER`], [`SETTLE`], [`CLEANUP`]): every bounded
//!   wait of a test uses one of them, so a bug fails a test instead of hanging it.
//! - Children: [`start`] gives a [`Child`], killed and reaped when dropped; [`join`] and
//!   [`join_result`] for a bare [`mp_core::Process`].
//! - Waiting and timing: [`eventually`], [`within`], [`assert_took_about`], [`assert_prompt`],
//!   [`assert_sleeps`], [`readable`], [`recv`].
//! - Shared memory: [`Counters`], [`word`], [`byte`], and a look at `/dev/shm`
//!   ([`in_dev_shm`], [`vanishes`], [`unique_name`], [`our_entries`]).
//! - Data: [`Rng`], [`pattern`], [`big_item`], [`brief`], [`assert_err!`].
//! - The operating system: pids ([`is_running`], [`kill_pid`], ...), fds ([`open_fds`]),
//!   zombies, [`at_exit`]: every `unsafe` a test needs is wrapped here.
//! - Scenarios: a test that needs a process of its own re-executes its test binary
//!   ([`Scenario`], [`run_scenario`], [`run_scenario_with`], [`in_scenario`], [`say`],
//!   [`markers`]).
//! - [`bodies`]: plain `fn` items that children of mp-core's process tests run.

pub mod bodies;
mod child;
mod data;
mod os;
mod scenario;
mod shm;
mod wait;

use std::time::Duration;

use mp_core::StartMethod;

pub use child::{join, join_result, start, Child};
pub use data::{big_item, brief, int_form_edges, is_big_item, pattern, Rng};
pub use os::{
    at_exit, count_fds, ends_within, is_running, kill_pid, open_fds, our_pid, pid_of,
    reap_all_children, zombie_children,
};
pub use scenario::{in_scenario, markers, run_scenario, run_scenario_with, say, Scenario};
pub use shm::{byte, in_dev_shm, our_entries, unique_name, vanishes, word, Counters};
pub use wait::{
    assert_prompt, assert_sleeps, assert_took_about, eventually, readable, recv, recv_bytes,
    thread_cpu_time, thread_sleeps, within, within_for,
};

/// Every start method, in the order the tests try them.
pub const METHODS: [StartMethod; 3] = [
    StartMethod::Fork,
    StartMethod::Spawn,
    StartMethod::Forkserver,
];

/// How long anything that should happen promptly may take before a test calls it a hang: a
/// message to arrive, a child to end, a blocking call to return, a condition to come true.
///
/// Generous, because the tests run many children at once on loaded machines; it bounds a bug,
/// it does not measure speed.
pub const LONG: Duration = Duration::from_secs(60);

/// How long a child that a test means to kill sleeps: past any test, short enough that a
/// leaked one does not linger.
pub const FOREVER: Duration = Duration::from_secs(60);

/// How long a test waits to see that something does *not* happen (a blocked child stays
/// blocked, a waiter is not woken).
pub const SETTLE: Duration = Duration::from_millis(300);

/// How long mp-shared's resource tracker may take to unlink a segment that nobody uses.
pub const CLEANUP: Duration = Duration::from_secs(15);

/// The exit code of a child killed by SIGKILL.
pub const KILLED: i32 = -9;
