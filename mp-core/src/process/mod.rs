//! `Process` and the functions about processes: `current_process`, `parent_process`,
//! `active_children`, `cpu_count`, `exit`.
//!
//! One file per part: `registry` (what this process knows about itself and its children),
//! `reap` (a process object's shared state, reaping and waiting), `target` (what a child runs),
//! `child` (the `Process` type), `start` (the fork and spawn paths), `current` (this process
//! and its parent), `os` (pids, the CPU count, `exit`).

mod child;
mod current;
mod os;
mod reap;
mod registry;
mod start;
mod target;

pub use child::Process;
pub use current::{
    active_children, current_process, parent_process, CurrentProcess, ParentProcess,
};
pub use os::{cpu_count, exit, process_id, process_is_alive};
pub use registry::set_join_at_exit;
pub(crate) use registry::{become_child, ensure_at_exit, exit_function, global, name_if_free};
pub(crate) use target::{FnTarget, Target};
