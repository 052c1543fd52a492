//! What children of mp-core's process tests run: plain `fn` items with serde arguments (so
//! that they run under every start method), and the assertions those tests share.

use mp_core::StartMethod;
use mp_core::{current_process, get_start_method_if_set, parent_process, Connection, Error};
use serde::{Deserialize, Serialize};

use crate::{FOREVER, LONG};

/// Returns at once.
pub fn return_unit(_: ()) {}

/// Sleeps [`FOREVER`]: a child to kill.
pub fn sleep_long(_: ()) {
    std::thread::sleep(FOREVER);
}

/// Sleeps [`FOREVER`], then returns a string: a child to kill that has a return value.
pub fn sleep_long_string(_: ()) -> String {
    std::thread::sleep(FOREVER);
    "woke up".into()
}

/// Waits (at most [`LONG`]) for one message on `conn`, then returns.
pub fn wait_for_go(mut conn: Connection) {
    if conn.poll_timeout(LONG).unwrap_or(false) {
        let _ = conn.recv::<u8>();
    }
}

/// Panics with `msg`, from a child that would return a string.
pub fn panic_string(msg: String) -> String {
    panic!("{msg}");
}

/// `"x"` `n` times, a dash, and the child's name.
pub fn make_string(n: usize) -> String {
    format!("{}-{}", "x".repeat(n), current_process().get_name())
}

/// The squares of `0..n`.
pub fn make_vec(n: u64) -> Vec<u64> {
    (0..n).map(|i| i * i).collect()
}

/// A nested value for return-value tests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// A number.
    pub id: u32,
    /// A string.
    pub label: String,
    /// Floats.
    pub weights: Vec<f64>,
    /// Another record, boxed.
    pub nested: Option<Box<Record>>,
}

/// The [`Record`] for `id` (with one nested record).
pub fn make_record(id: u32) -> Record {
    Record {
        id,
        label: format!("record {id}"),
        weights: vec![0.5, 1.5, -2.25],
        nested: Some(Box::new(Record {
            id: id + 1,
            label: "inner".into(),
            weights: Vec::new(),
            nested: None,
        })),
    }
}

/// Receives a number (within [`LONG`]), sends back its double, returns the number.
pub fn echo_double(mut conn: Connection) -> u64 {
    assert!(
        conn.poll_timeout(LONG).unwrap(),
        "no message from the parent"
    );
    let n: u64 = conn.recv().unwrap();
    conn.send(&(n * 2)).unwrap();
    n
}

/// Sends `"from the child"`.
pub fn send_one(mut conn: Connection) {
    conn.send(&"from the child").unwrap();
}

/// What a child knows about itself and its parent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Me {
    /// `current_process().get_name()`.
    pub name: String,
    /// `current_process().pid()`.
    pub pid: i32,
    /// The parent pid as the OS sees it.
    pub os_ppid: i32,
    /// `current_process().identity()`.
    pub identity: Vec<u32>,
    /// `current_process().is_daemon()`.
    pub daemon: bool,
    /// `current_process().get_authkey()`.
    pub authkey: Vec<u8>,
    /// `parent_process()`: pid, name, is_alive.
    pub parent: Option<(i32, String, bool)>,
    /// `get_start_method_if_set()` in the child.
    pub start_method: Option<StartMethod>,
    /// Whether this process's command line is a re-executed bootstrap child's.
    pub reexecuted: bool,
}

/// What the child knows about itself and its parent.
pub fn whoami(_: ()) -> Me {
    let cp = current_process();
    let cmdline = std::fs::read("/proc/self/cmdline").unwrap_or_default();
    Me {
        name: cp.get_name(),
        pid: cp.pid(),
        os_ppid: rustix::process::getppid().map_or(0, |p| p.as_raw_nonzero().get()),
        identity: cp.identity(),
        daemon: cp.is_daemon(),
        authkey: cp.get_authkey(),
        parent: parent_process().map(|p| (p.pid(), p.get_name().to_string(), p.is_alive())),
        start_method: get_start_method_if_set(),
        reexecuted: cmdline
            .split(|&b| b == 0)
            .any(|arg| arg == b"--multiprocessing-fork"),
    }
}

/// Asserts that `r` is `Err(Error::Closed(_))`: a method called after `close()`.
#[track_caller]
pub fn assert_closed<T: std::fmt::Debug>(what: &str, r: mp_core::Result<T>) {
    match r {
        Err(Error::Closed(_)) => {}
        other => panic!("{what} after close(): expected Error::Closed, got {other:?}"),
    }
}

/// Asserts that `r` is `Err(Error::InvalidState(_))`.
#[track_caller]
pub fn assert_invalid_state<T: std::fmt::Debug>(what: &str, r: mp_core::Result<T>) {
    match r {
        Err(Error::InvalidState(_)) => {}
        other => panic!("{what}: expected Error::InvalidState, got {other:?}"),
    }
}
