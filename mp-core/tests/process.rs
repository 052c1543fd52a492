//! Integration tests of [`mp_core::Process`] and the functions about processes, with real child
//! processes under every start method (fork, spawn, forkserver) where one applies.
//!
//! Ported in spirit from CPython's `Lib/test/_test_multiprocessing.py`: `_TestProcess`'s
//! `test_current`, `test_process`, `test_terminate` and `test_kill` (`_kill_process`),
//! `test_sentinel`, `test_close`, `test_active_children`, `test_cpu_count`,
//! `test_parent_process_attributes`, `test_recursion` (the `Process-N:M` names),
//! `test_sys_exit`, `test_daemon_argument` and `test_set_executable`;
//! `_TestSubclassingProcess.test_stderr_flush` (here: stdout is flushed before a child starts);
//! `TestStartMethod`'s `test_context`, `test_set_get` and `test_get_all`. The rest (return
//! values, closures, function identity, daemons dying with a SIGKILLed parent, fd and zombie
//! accounting) goes beyond Python. Regression tests are named after what broke
//! (`fork_child_does_not_hang_while_another_thread_panics`).
//!
//! # Scenarios
//!
//! What changes process-wide state (the default start method, the executable), what needs a
//! process of its own (stdout, exit handling, fd and zombie accounting) and what kills its
//! parent runs as a *scenario*: the test re-executes this test binary with
//! `--exact scenario_<name>` and `MP_TEST_SCENARIO=scenario_<name>`, then reads that process's
//! output. A `scenario_*` test does nothing unless that variable names it, so these tests pass
//! both under `cargo nextest` (a process per test) and under `cargo test` (threads of one
//! process). Scenario output is tagged `KEY=[value]`, because libtest prints its own lines around
//! it.

use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mp_core::{
    active_children, cpu_count, current_process, get_all_start_methods, get_context,
    get_start_method, get_start_method_if_set, parent_process, pipe, set_executable,
    set_join_at_exit, set_start_method, set_start_method_force, Connection, Error, Process,
    StartMethod,
};
use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::process::{Pid, PidfdFlags, Signal};
use serde::{Deserialize, Serialize};

/// Every start method, in the order the tests try them.
const METHODS: [StartMethod; 3] = [
    StartMethod::Fork,
    StartMethod::Spawn,
    StartMethod::Forkserver,
];

/// How long anything that should happen at once may take before a test calls it a hang.
const LONG: Duration = Duration::from_secs(30);

/// How long a "sleeping forever" child sleeps: long past any test, short enough that a leaked
/// one does not linger.
const FOREVER: Duration = Duration::from_secs(60);

// ----- helpers -----

/// Joins `p` with a timeout; the exit code.
#[track_caller]
fn join<R>(p: &Process<R>) -> i32 {
    p.join_timeout(LONG)
        .expect("join_timeout failed")
        .unwrap_or_else(|| panic!("{p:?} did not end within {LONG:?}"))
}

/// Joins `p` with a timeout, then reads its return value.
#[track_caller]
fn join_result<R: Serialize + serde::de::DeserializeOwned + 'static>(
    p: &Process<R>,
) -> mp_core::Result<R> {
    join(p);
    p.join_result()
}

/// Whether `fd` becomes readable within `timeout`.
fn readable(fd: BorrowedFd<'_>, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let mut fds = [PollFd::from_borrowed_fd(fd, PollFlags::IN)];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let ts = Timespec {
            tv_sec: left.as_secs() as i64,
            tv_nsec: i64::from(left.subsec_nanos()),
        };
        match rustix::event::poll(&mut fds, Some(&ts)) {
            Ok(n) => return n > 0,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => panic!("poll: {e}"),
        }
    }
}

fn pid_of(raw: i32) -> Pid {
    Pid::from_raw(raw).expect("a positive pid")
}

/// Whether process `pid` exists and has not ended (a zombie counts as ended).
fn is_running(pid: i32) -> bool {
    match rustix::process::pidfd_open(pid_of(pid), PidfdFlags::empty()) {
        Ok(fd) => !readable(fd.as_fd(), Duration::ZERO),
        Err(_) => false,
    }
}

/// Waits up to `timeout` for process `pid` to end; true if it did (or is gone).
fn ends_within(pid: i32, timeout: Duration) -> bool {
    match rustix::process::pidfd_open(pid_of(pid), PidfdFlags::empty()) {
        Ok(fd) => readable(fd.as_fd(), timeout),
        Err(_) => true,
    }
}

/// Kills process `pid` if it still runs (cleanup after a failed expectation).
fn kill_pid(pid: i32) {
    if let Ok(fd) = rustix::process::pidfd_open(pid_of(pid), PidfdFlags::empty()) {
        let _ = rustix::process::pidfd_send_signal(&fd, Signal::KILL);
    }
}

fn our_pid() -> i32 {
    rustix::process::getpid().as_raw_nonzero().get()
}

/// The pids of this process's children that are zombies (ended, not reaped).
fn zombie_children() -> Vec<i32> {
    let me = our_pid();
    let mut zombies = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("read /proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let state = fields.next().unwrap_or("");
        let ppid = fields.next().and_then(|p| p.parse::<i32>().ok());
        if ppid == Some(me) && state == "Z" {
            zombies.push(pid);
        }
    }
    zombies
}

/// The open fds of this process, each with what it points at.
fn open_fds() -> Vec<(i32, String)> {
    let mut fds: Vec<(i32, String)> = std::fs::read_dir("/proc/self/fd")
        .expect("read /proc/self/fd")
        .flatten()
        .filter_map(|e| {
            let fd = e.file_name().to_string_lossy().parse().ok()?;
            let target = std::fs::read_link(e.path())
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| "?".into());
            Some((fd, target))
        })
        .collect();
    fds.sort();
    fds
}

#[track_caller]
fn assert_closed<T: std::fmt::Debug>(what: &str, r: mp_core::Result<T>) {
    match r {
        Err(Error::Closed(_)) => {}
        other => panic!("{what} after close(): expected Error::Closed, got {other:?}"),
    }
}

#[track_caller]
fn assert_invalid_state<T: std::fmt::Debug>(what: &str, r: mp_core::Result<T>) {
    match r {
        Err(Error::InvalidState(_)) => {}
        other => panic!("{what}: expected Error::InvalidState, got {other:?}"),
    }
}

/// The number N of a name `Process-N` (None for any other shape).
fn process_number(name: &str) -> Option<u32> {
    name.strip_prefix("Process-")?.parse().ok()
}

// ----- what children run (plain `fn` items, serde arguments) -----

fn return_unit(_: ()) {}

fn sleep_long(_: ()) {
    std::thread::sleep(FOREVER);
}

fn sleep_long_string(_: ()) -> String {
    std::thread::sleep(FOREVER);
    "woke up".into()
}

/// Waits (at most [`LONG`]) for one message on `conn`, then returns.
fn wait_for_go(mut conn: Connection) {
    if conn.poll(Some(LONG)).unwrap_or(false) {
        let _ = conn.recv::<u8>();
    }
}

fn panic_unit(msg: String) {
    panic!("{msg}");
}

fn panic_string(msg: String) -> String {
    panic!("{msg}");
}

fn exit_unit(code: i32) {
    mp_core::exit(code);
}

fn exit_string(code: i32) -> String {
    mp_core::exit(code);
}

fn make_string(n: usize) -> String {
    format!("{}-{}", "x".repeat(n), current_process().name())
}

fn make_vec(n: u64) -> Vec<u64> {
    (0..n).map(|i| i * i).collect()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Record {
    id: u32,
    label: String,
    weights: Vec<f64>,
    nested: Option<Box<Record>>,
}

fn make_record(id: u32) -> Record {
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

/// What a child knows about itself and its parent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Me {
    name: String,
    pid: i32,
    os_ppid: i32,
    identity: Vec<u32>,
    daemon: bool,
    authkey: Vec<u8>,
    /// `parent_process()`: pid, name, is_alive.
    parent: Option<(i32, String, bool)>,
    start_method: Option<StartMethod>,
    /// Whether this process's command line is a re-executed bootstrap child's.
    reexecuted: bool,
}

fn whoami(_: ()) -> Me {
    let cp = current_process();
    let cmdline = std::fs::read("/proc/self/cmdline").unwrap_or_default();
    Me {
        name: cp.name(),
        pid: cp.pid(),
        os_ppid: rustix::process::getppid().map_or(0, |p| p.as_raw_nonzero().get()),
        identity: cp.identity(),
        daemon: cp.daemon(),
        authkey: cp.authkey(),
        parent: parent_process().map(|p| (p.pid(), p.name().to_string(), p.is_alive())),
        start_method: get_start_method_if_set(),
        reexecuted: cmdline
            .split(|&b| b == 0)
            .any(|arg| arg == b"--multiprocessing-fork"),
    }
}

fn my_name(_: ()) -> String {
    current_process().name()
}

/// A child's name and the names of the two children it creates, as the child sees them and as
/// each grandchild reports itself.
#[derive(Debug, Serialize, Deserialize)]
struct Family {
    me: String,
    identity: Vec<u32>,
    /// (name of the `Process` object, name the grandchild reported, its start method)
    children: Vec<(String, String, StartMethod)>,
}

fn raise_family(method: StartMethod) -> Family {
    let mut children = Vec::new();
    for m in [StartMethod::Fork, method] {
        let mut p = Process::new(my_name, ()).start_method(m);
        p.start().expect("grandchild start");
        let reported = join_result(&p).expect("grandchild result");
        children.push((p.get_name(), reported, m));
    }
    Family {
        me: current_process().name(),
        identity: current_process().identity(),
        children,
    }
}

fn try_to_have_a_child(_: ()) -> String {
    let mut p = Process::new(return_unit, ()).start_method(StartMethod::Fork);
    match p.start() {
        Ok(()) => {
            let _ = p.join_timeout(LONG);
            "started".into()
        }
        Err(Error::InvalidState(msg)) => format!("InvalidState: {msg}"),
        Err(e) => format!("other error: {e:?}"),
    }
}

fn echo_double(mut conn: Connection) -> u64 {
    assert!(conn.poll(Some(LONG)).unwrap(), "no message from the parent");
    let n: u64 = conn.recv().unwrap();
    conn.send(&(n * 2)).unwrap();
    n
}

fn send_one(mut conn: Connection) {
    conn.send(&"from the child").unwrap();
}

fn print_tag(tag: String) {
    println!("child-{tag}|");
}

fn sleep_then_print((tag, millis): (String, u64)) {
    std::thread::sleep(Duration::from_millis(millis));
    println!("\nCHILD_DONE=[{tag}]");
    let _ = std::io::stdout().flush();
}

// ----- 1. Process semantics -----

#[test]
fn exitcode_is_none_before_start_and_while_running_then_zero() {
    for m in METHODS {
        let (r, mut w) = pipe(false).unwrap();
        let mut p = Process::new(wait_for_go, r).start_method(m);
        assert_eq!(p.exitcode().unwrap(), None, "{m}: before start");
        assert!(!p.is_alive().unwrap(), "{m}: alive before start");
        assert_eq!(p.pid().unwrap(), None, "{m}: pid before start");

        p.start().unwrap();
        let pid = p.pid().unwrap().expect("a pid after start");
        assert!(pid > 0);
        assert_ne!(pid, our_pid());
        assert_eq!(p.exitcode().unwrap(), None, "{m}: while running");
        assert!(p.is_alive().unwrap(), "{m}: not alive while running");

        w.send(&1u8).unwrap();
        assert_eq!(join(&p), 0, "{m}");
        assert_eq!(p.exitcode().unwrap(), Some(0), "{m}");
        assert!(!p.is_alive().unwrap(), "{m}: alive after join");
        assert_eq!(p.pid().unwrap(), Some(pid), "{m}: pid kept after join");
    }
}

#[test]
fn panic_gives_exitcode_1_and_the_message() {
    for m in METHODS {
        let mut p = Process::new(panic_string, format!("boom under {m}")).start_method(m);
        p.start().unwrap();
        match join_result(&p) {
            Err(Error::ProcessFailed {
                name,
                exitcode,
                message,
            }) => {
                assert_eq!(exitcode, 1, "{m}");
                assert_eq!(name, p.get_name(), "{m}");
                let message = message.unwrap_or_else(|| panic!("{m}: no panic message"));
                assert!(
                    message.contains(&format!("boom under {m}")),
                    "{m}: {message:?}"
                );
            }
            other => panic!("{m}: expected ProcessFailed, got {other:?}"),
        }
        assert_eq!(p.exitcode().unwrap(), Some(1), "{m}");
    }
}

#[test]
fn panic_message_reaches_join_result_of_a_unit_process() {
    for m in METHODS {
        let mut p = Process::new(panic_unit, format!("unit boom under {m}")).start_method(m);
        p.start().unwrap();
        match join_result(&p) {
            Err(Error::ProcessFailed {
                exitcode, message, ..
            }) => {
                assert_eq!(exitcode, 1, "{m}");
                let message = message.unwrap_or_else(|| {
                    panic!("{m}: a panicking Process<()> reports no panic message")
                });
                assert!(message.contains("unit boom"), "{m}: {message:?}");
            }
            other => panic!("{m}: expected ProcessFailed, got {other:?}"),
        }
        assert_eq!(p.exitcode().unwrap(), Some(1), "{m}");
    }
}

#[test]
fn exit_n_in_the_target_gives_exitcode_n() {
    for m in METHODS {
        for code in [0, 3, 42] {
            let mut p = Process::new(exit_unit, code).start_method(m);
            p.start().unwrap();
            assert_eq!(join(&p), code, "{m}: exit({code})");
            assert_eq!(p.exitcode().unwrap(), Some(code), "{m}");
        }
        let mut p = Process::new(exit_string, 7).start_method(m);
        p.start().unwrap();
        match join_result(&p) {
            Err(Error::ProcessFailed { exitcode: 7, .. }) => {}
            other => panic!("{m}: expected ProcessFailed with exit code 7, got {other:?}"),
        }
    }
}

/// Python's `_kill_process`: a daemonic sleeper, `join(0)` is `None`, then the signal.
fn check_signal(kill: bool) {
    let (signal, expected) = if kill {
        ("kill", -9)
    } else {
        ("terminate", -15)
    };
    for m in METHODS {
        let mut p = Process::new(sleep_long, ()).daemon(true).start_method(m);
        p.start().unwrap();
        let pid = p.pid().unwrap().unwrap();
        assert!(p.is_alive().unwrap(), "{m}");
        assert_eq!(p.exitcode().unwrap(), None, "{m}");
        assert!(
            active_children()
                .iter()
                .any(|c| c.pid().unwrap() == Some(pid)),
            "{m}: a running child is missing from active_children()"
        );
        assert_eq!(p.join_timeout(Duration::ZERO).unwrap(), None, "{m}");
        if kill {
            p.kill().unwrap();
        } else {
            p.terminate().unwrap();
        }
        assert_eq!(join(&p), expected, "{m}: exit code after {signal}()");
        assert_eq!(p.exitcode().unwrap(), Some(expected), "{m}");
        assert!(!p.is_alive().unwrap(), "{m}");
        assert!(
            !active_children()
                .iter()
                .any(|c| c.pid().unwrap() == Some(pid)),
            "{m}: an ended child is still in active_children()"
        );
        // Signalling an ended process is harmless, as in Python.
        p.terminate().unwrap();
        p.kill().unwrap();
        assert_eq!(p.exitcode().unwrap(), Some(expected), "{m}");
    }
}

#[test]
fn terminate_gives_exitcode_minus_15() {
    check_signal(false);
}

#[test]
fn kill_gives_exitcode_minus_9() {
    check_signal(true);
}

#[test]
fn join_timeout_returns_none_while_the_child_lives() {
    for m in METHODS {
        let mut p = Process::new(sleep_long, ()).daemon(true).start_method(m);
        p.start().unwrap();
        let t = Instant::now();
        assert_eq!(
            p.join_timeout(Duration::from_millis(100)).unwrap(),
            None,
            "{m}"
        );
        let waited = t.elapsed();
        assert!(
            waited >= Duration::from_millis(90),
            "{m}: join_timeout(100ms) returned after {waited:?}"
        );
        assert!(p.is_alive().unwrap(), "{m}");
        p.kill().unwrap();
        assert_eq!(join(&p), -9, "{m}");
    }
}

#[test]
fn starting_twice_fails() {
    for m in METHODS {
        let mut p = Process::new(return_unit, ()).start_method(m);
        p.start().unwrap();
        assert_invalid_state(&format!("{m}: second start"), p.start());
        assert_eq!(join(&p), 0, "{m}");
        assert_invalid_state(&format!("{m}: start after join"), p.start());
    }
}

#[test]
fn methods_of_a_closed_process_fail_with_closed() {
    for m in METHODS {
        let mut p = Process::new(return_unit, ()).start_method(m);
        p.start().unwrap();
        assert_eq!(join(&p), 0, "{m}");
        p.close().unwrap();
        assert_closed("pid", p.pid());
        assert_closed("exitcode", p.exitcode());
        assert_closed("is_alive", p.is_alive());
        assert_closed("join", p.join());
        assert_closed("join_timeout", p.join_timeout(Duration::ZERO));
        assert_closed("join_result", p.join_result());
        assert_closed("terminate", p.terminate());
        assert_closed("kill", p.kill());
        assert_closed("sentinel", p.sentinel().map(|_| ()));
        assert_closed("start", p.start());
        // Python's test_close closes twice: a second close is harmless.
        p.close()
            .unwrap_or_else(|e| panic!("{m}: a second close() failed: {e:?}"));
    }
    // A process never started can be closed, and then cannot start.
    let mut p = Process::new(return_unit, ());
    p.close().unwrap();
    assert_closed("start of a closed, never started process", p.start());
}

#[test]
fn closing_a_running_process_fails() {
    for m in METHODS {
        let (r, mut w) = pipe(false).unwrap();
        let mut p = Process::new(wait_for_go, r).start_method(m);
        p.start().unwrap();
        assert_invalid_state(&format!("{m}: close while running"), p.close());
        assert!(
            p.is_alive().unwrap(),
            "{m}: the failed close hurt the child"
        );
        w.send(&1u8).unwrap();
        assert_eq!(join(&p), 0, "{m}");
        p.close().unwrap();
    }
}

#[test]
fn join_and_sentinel_before_start_fail() {
    let p = Process::new(return_unit, ());
    assert_invalid_state("join before start", p.join());
    assert_invalid_state("join_timeout before start", p.join_timeout(Duration::ZERO));
    assert_invalid_state("join_result before start", p.join_result());
    assert!(p.sentinel().is_err(), "sentinel before start");
    assert!(!p.is_alive().unwrap());
    assert_eq!(p.exitcode().unwrap(), None);
}

#[test]
fn sentinel_becomes_readable_when_the_child_ends_and_not_before() {
    for m in METHODS {
        let (r, mut w) = pipe(false).unwrap();
        let mut p = Process::new(wait_for_go, r).start_method(m);
        p.start().unwrap();
        let sentinel = p.sentinel().unwrap();
        assert!(
            !readable(sentinel, Duration::ZERO),
            "{m}: readable at start"
        );
        assert!(
            !readable(sentinel, Duration::from_millis(50)),
            "{m}: readable while the child waits"
        );
        assert!(p.is_alive().unwrap(), "{m}");
        w.send(&1u8).unwrap();
        assert!(
            readable(sentinel, LONG),
            "{m}: not readable after the child ended"
        );
        assert_eq!(join(&p), 0, "{m}");
        // Python's test_sentinel: still ready after join.
        assert!(
            readable(p.sentinel().unwrap(), Duration::from_secs(10)),
            "{m}: not readable after join"
        );
    }
}

// ----- 2. names, current_process, parent_process, authkey, active_children -----

#[test]
fn processes_of_the_main_process_are_named_process_n_in_order() {
    let a = Process::new(return_unit, ());
    let b = Process::new(return_unit, ());
    let na = process_number(&a.get_name()).unwrap_or_else(|| panic!("{:?}", a.get_name()));
    let nb = process_number(&b.get_name()).unwrap_or_else(|| panic!("{:?}", b.get_name()));
    assert!(nb > na, "{} then {}", a.get_name(), b.get_name());
}

#[test]
fn a_child_names_its_children_process_n_m() {
    for m in METHODS {
        let mut p = Process::new(raise_family, m).start_method(m);
        p.start().unwrap();
        let family = join_result(&p).unwrap_or_else(|e| panic!("{m}: {e}"));
        assert_eq!(family.me, p.get_name(), "{m}");
        let n = process_number(&family.me).unwrap_or_else(|| panic!("{m}: {family:?}"));
        assert_eq!(family.identity, vec![n], "{m}");
        for (i, (object_name, reported, gm)) in family.children.iter().enumerate() {
            let expected = format!("Process-{n}:{}", i + 1);
            assert_eq!(object_name, &expected, "{m} child, {gm} grandchild");
            assert_eq!(reported, &expected, "{m} child, {gm} grandchild");
        }
    }
}

#[test]
fn name_builder_sets_the_name() {
    for m in METHODS {
        let name = format!("worker under {m}");
        let mut p = Process::new(whoami, ()).name(name.clone()).start_method(m);
        assert_eq!(p.get_name(), name);
        p.start().unwrap();
        let me = join_result(&p).unwrap();
        assert_eq!(me.name, name, "{m}");
        // The identity still counts: a named child's children are Process-N:M.
        assert_eq!(me.identity.len(), 1, "{m}: {me:?}");
    }
    let p = Process::new(return_unit, ());
    p.set_name("renamed");
    assert_eq!(p.get_name(), "renamed");
}

#[test]
fn the_main_process_is_mainprocess_without_a_parent() {
    let cp = current_process();
    assert_eq!(cp.name(), "MainProcess");
    assert!(parent_process().is_none());
    assert_eq!(cp.pid(), std::process::id() as i32);
    assert!(cp.identity().is_empty());
    assert!(!cp.daemon());
    assert_eq!(cp.authkey().len(), 32);
}

#[test]
fn a_child_knows_itself_and_its_parent() {
    let ours = current_process().authkey();
    for m in METHODS {
        for daemon in [false, true] {
            let mut p = get_context(Some(m)).process(whoami, ()).daemon(daemon);
            assert_eq!(p.is_daemon(), daemon);
            assert_eq!(p.get_authkey(), ours, "{m}: Process.authkey before start");
            p.start().unwrap();
            let me = join_result(&p).unwrap_or_else(|e| panic!("{m}: {e}"));
            assert_eq!(me.name, p.get_name(), "{m}");
            assert_eq!(Some(me.pid), p.pid().unwrap(), "{m}");
            assert_eq!(me.daemon, daemon, "{m}");
            assert_eq!(me.authkey.len(), 32, "{m}");
            assert_eq!(me.authkey, ours, "{m}: the child's authkey");
            let (ppid, pname, palive) = me.parent.clone().expect("a child has a parent");
            assert_eq!(ppid, our_pid(), "{m}: parent_process().pid");
            assert_eq!(pname, "MainProcess", "{m}: parent_process().name");
            assert!(palive, "{m}: parent_process().is_alive()");
        }
    }
}

#[test]
fn each_start_method_is_really_used() {
    for m in METHODS {
        let mut p = Process::new(whoami, ()).start_method(m);
        p.start().unwrap();
        let me = join_result(&p).unwrap();
        match m {
            StartMethod::Fork => {
                assert!(!me.reexecuted, "fork: the child was re-executed");
                assert_eq!(me.os_ppid, our_pid(), "fork: the OS parent");
            }
            StartMethod::Spawn => {
                assert!(me.reexecuted, "spawn: the child was not re-executed");
                assert_eq!(me.os_ppid, our_pid(), "spawn: the OS parent");
            }
            StartMethod::Forkserver => {
                assert!(
                    me.reexecuted,
                    "forkserver: the child is not the server's fork"
                );
                assert_ne!(
                    me.os_ppid,
                    our_pid(),
                    "forkserver: the child is ours, not the server's"
                );
            }
        }
    }
}

#[test]
fn authkey_builder_overrides_the_childs_key() {
    for m in METHODS {
        let key = format!("secret key for {m}").into_bytes();
        let mut p = Process::new(whoami, ())
            .authkey(key.clone())
            .start_method(m);
        assert_eq!(p.get_authkey(), key);
        p.start().unwrap();
        let me = join_result(&p).unwrap();
        assert_eq!(me.authkey, key, "{m}");
    }
}

#[test]
fn active_children_lists_running_children_only() {
    for m in METHODS {
        let (r, mut w) = pipe(false).unwrap();
        let mut p = Process::new(wait_for_go, r).start_method(m);
        p.start().unwrap();
        let pid = p.pid().unwrap();
        let listed = |pid| {
            active_children()
                .iter()
                .any(|c| c.pid().unwrap_or(None) == pid)
        };
        assert!(listed(pid), "{m}: a running child is not listed");
        w.send(&1u8).unwrap();
        assert_eq!(join(&p), 0);
        assert!(!listed(pid), "{m}: an ended child is still listed");
    }
}

#[test]
fn cpu_count_is_at_least_one() {
    assert!(cpu_count() >= 1);
    for m in METHODS {
        assert_eq!(get_context(Some(m)).cpu_count(), cpu_count());
    }
}

// ----- 3. return values -----

#[test]
fn join_result_returns_the_childs_value() {
    for m in METHODS {
        let ctx = get_context(Some(m));

        let mut p = ctx.process(make_string, 5);
        p.start().unwrap();
        assert_eq!(
            join_result(&p).unwrap(),
            format!("xxxxx-{}", p.get_name()),
            "{m}"
        );

        let mut p = ctx.process(make_vec, 1000);
        p.start().unwrap();
        assert_eq!(join_result(&p).unwrap(), make_vec(1000), "{m}");

        let mut p = ctx.process(make_record, 7);
        p.start().unwrap();
        assert_eq!(join_result(&p).unwrap(), make_record(7), "{m}");

        // A big value: more than a pipe buffer.
        let mut p = ctx.process(make_string, 1 << 20);
        p.start().unwrap();
        assert_eq!(
            join_result(&p).unwrap().len(),
            (1 << 20) + 1 + p.get_name().len()
        );

        let mut p = ctx.process(return_unit, ());
        p.start().unwrap();
        join_result(&p).unwrap();

        // Reading the value twice gives it twice.
        let mut p = ctx.process(make_vec, 3);
        p.start().unwrap();
        assert_eq!(join_result(&p).unwrap(), vec![0, 1, 4], "{m}");
        assert_eq!(p.join_result().unwrap(), vec![0, 1, 4], "{m}: second read");
    }
}

#[test]
fn join_result_of_a_killed_child_is_process_failed_minus_9() {
    for m in METHODS {
        let mut p = Process::new(sleep_long_string, ())
            .daemon(true)
            .start_method(m);
        p.start().unwrap();
        p.kill().unwrap();
        match join_result(&p) {
            Err(Error::ProcessFailed { exitcode: -9, .. }) => {}
            other => panic!("{m}: expected ProcessFailed with exit code -9, got {other:?}"),
        }
    }
}

#[test]
fn a_connection_passed_to_a_child_carries_messages() {
    for m in METHODS {
        let (mut ours, theirs) = pipe(true).unwrap();
        let mut p = Process::new(echo_double, theirs).start_method(m);
        p.start().unwrap();
        ours.send(&21u64).unwrap();
        assert!(ours.poll(Some(LONG)).unwrap(), "{m}: no answer");
        assert_eq!(ours.recv::<u64>().unwrap(), 42, "{m}");
        assert_eq!(join_result(&p).unwrap(), 21, "{m}");

        let (mut r, w) = pipe(false).unwrap();
        let mut p = Process::new(send_one, w).start_method(m);
        p.start().unwrap();
        assert!(
            r.poll(Some(LONG)).unwrap(),
            "{m}: nothing on the one-way pipe"
        );
        assert_eq!(r.recv::<String>().unwrap(), "from the child", "{m}");
        assert_eq!(join(&p), 0, "{m}");
    }
}

// ----- 4. start methods API, closures, function identity -----

#[test]
fn start_method_names_parse_and_display() {
    for (m, s) in METHODS.iter().zip(["fork", "spawn", "forkserver"]) {
        assert_eq!(m.to_string(), s);
        assert_eq!(m.as_str(), s);
        assert_eq!(s.parse::<StartMethod>().unwrap(), *m);
    }
    for bad in ["", "Fork", "thread", "fork "] {
        match bad.parse::<StartMethod>() {
            Err(Error::InvalidArgument(_)) => {}
            other => panic!("{bad:?}: expected InvalidArgument, got {other:?}"),
        }
    }
    // Python on Linux: all three, the default first.
    assert_eq!(get_all_start_methods(), METHODS.to_vec());
    for m in METHODS {
        assert_eq!(get_context(Some(m)).get_start_method(), m);
    }
}

#[test]
fn closures_run_under_fork_only() {
    let captured: Vec<i32> = (1..=4).collect();
    let mut p =
        Process::from_closure(move || captured.iter().sum::<i32>()).start_method(StartMethod::Fork);
    p.start().unwrap();
    assert_eq!(join_result(&p).unwrap(), 10);

    let local = String::from("captured");
    let mut p = get_context(Some(StartMethod::Fork)).process_closure(move || local.len());
    p.start().unwrap();
    assert_eq!(join_result(&p).unwrap(), 8);

    for m in [StartMethod::Spawn, StartMethod::Forkserver] {
        let local: Vec<u8> = std::iter::repeat_n(5, 3).collect();
        let mut p = Process::from_closure(move || local.len()).start_method(m);
        match p.start() {
            Err(Error::ClosureNeedsFork(_)) => {}
            other => panic!("{m}: expected ClosureNeedsFork, got {other:?}"),
        }
        assert_eq!(p.pid().unwrap(), None, "{m}: a pid after a failed start");
        assert!(!p.is_alive().unwrap(), "{m}");
        assert_invalid_state(&format!("{m}: join after a failed start"), p.join());

        let mut p = get_context(Some(m)).process_closure(|| 1u8);
        assert!(
            matches!(p.start(), Err(Error::ClosureNeedsFork(_))),
            "{m}: process_closure"
        );
    }
}

#[test]
fn start_methods_api() {
    let out = run_scenario("scenario_start_methods_api");
    assert!(out.contains("START_METHODS=[ok]"), "{out}");
}

#[test]
fn scenario_start_methods_api() {
    if !in_scenario("scenario_start_methods_api") {
        return;
    }
    let how = |ctx_method: Option<StartMethod>| -> Me {
        let mut p = match ctx_method {
            Some(m) => get_context(Some(m)).process(whoami, ()),
            None => Process::new(whoami, ()),
        };
        p.start().unwrap();
        join_result(&p).unwrap()
    };

    // Nothing set yet: Python's get_start_method(allow_none=True) is None.
    assert_eq!(get_start_method_if_set(), None);
    set_start_method(StartMethod::Spawn).unwrap();
    assert_invalid_state(
        "a second set_start_method",
        set_start_method(StartMethod::Fork),
    );
    assert_eq!(get_start_method(), StartMethod::Spawn);
    assert_eq!(get_context(None).get_start_method(), StartMethod::Spawn);
    // A process with no method of its own uses the default, and so does the child.
    let me = how(None);
    assert!(
        me.reexecuted,
        "the default (spawn) child was not re-executed"
    );
    assert_eq!(me.os_ppid, our_pid());
    assert_eq!(
        me.start_method,
        Some(StartMethod::Spawn),
        "the child's default"
    );
    // A context overrides the default.
    let me = how(Some(StartMethod::Fork));
    assert!(!me.reexecuted, "a fork-context child was re-executed");

    set_start_method_force(Some(StartMethod::Forkserver));
    assert_eq!(get_start_method(), StartMethod::Forkserver);
    let me = how(None);
    assert!(me.reexecuted);
    assert_ne!(
        me.os_ppid,
        our_pid(),
        "the default (forkserver) child is ours"
    );
    assert_eq!(me.start_method, Some(StartMethod::Forkserver));

    // Cleared, the default is fork, and asking for it fixes it (as Python's get_context does).
    set_start_method_force(None);
    assert_eq!(get_start_method_if_set(), None);
    assert_eq!(get_context(None).get_start_method(), StartMethod::Fork);
    assert_eq!(get_start_method_if_set(), Some(StartMethod::Fork));
    assert_invalid_state(
        "set_start_method after the default was fixed",
        set_start_method(StartMethod::Spawn),
    );
    let me = how(None);
    assert!(!me.reexecuted);
    say("START_METHODS", "ok");
}

fn expect_mismatch(what: &str, m: StartMethod) {
    let mut p = Process::new(make_vec, 3).start_method(m);
    match p.start() {
        Err(Error::BinaryMismatch(_)) => {}
        other => panic!("{what} under {m}: expected BinaryMismatch, got {other:?}"),
    }
    assert_eq!(p.pid().unwrap(), None, "{what} under {m}");
    assert!(!p.is_alive().unwrap(), "{what} under {m}");
}

fn expect_success(what: &str, m: StartMethod) {
    let mut p = Process::new(make_vec, 3).start_method(m);
    p.start()
        .unwrap_or_else(|e| panic!("{what} under {m}: {e:?}"));
    assert_eq!(join_result(&p).unwrap(), vec![0, 1, 4], "{what} under {m}");
}

#[test]
fn a_program_that_is_not_ours_is_a_binary_mismatch() {
    let out = run_scenario("scenario_not_our_program");
    assert!(out.contains("NOT_OUR_PROGRAM=[ok]"), "{out}");
}

#[test]
fn scenario_not_our_program() {
    if !in_scenario("scenario_not_our_program") {
        return;
    }
    // A program that does not speak the bootstrap protocol at all: it exits without reading.
    set_executable(Some("/bin/true".into()));
    expect_mismatch("/bin/true", StartMethod::Spawn);
    expect_mismatch("/bin/true", StartMethod::Forkserver);
    // Fork runs no executable.
    expect_success("/bin/true", StartMethod::Fork);
    set_executable(None);
    for m in METHODS {
        expect_success("the default executable", m);
    }
    say("NOT_OUR_PROGRAM", "ok");
}

#[test]
fn a_copy_of_this_binary_is_a_binary_mismatch() {
    let out = run_scenario("scenario_copied_binary");
    assert!(out.contains("COPIED_BINARY=[ok]"), "{out}");
}

#[test]
fn scenario_copied_binary() {
    if !in_scenario("scenario_copied_binary") {
        return;
    }
    // The same code in another file: the copy runs the bootstrap, and its fingerprint differs.
    let copy = std::env::temp_dir().join(format!("mp-core-process-test-copy-{}", our_pid()));
    std::fs::copy(std::env::current_exe().unwrap(), &copy).unwrap();
    set_executable(Some(copy.clone()));
    let spawn = std::panic::catch_unwind(|| expect_mismatch("a copy", StartMethod::Spawn));
    let forkserver =
        std::panic::catch_unwind(|| expect_mismatch("a copy", StartMethod::Forkserver));
    std::fs::remove_file(&copy).unwrap();
    spawn.unwrap();
    forkserver.unwrap();

    set_executable(None);
    for m in METHODS {
        expect_success("the default executable", m);
    }
    // An explicit path to this very binary is fine too (Python's test_set_executable).
    set_executable(Some(std::env::current_exe().unwrap()));
    expect_success("this binary by path", StartMethod::Spawn);
    expect_success("this binary by path", StartMethod::Forkserver);
    set_executable(None);
    say("COPIED_BINARY", "ok");
}

// ----- 5. stdout is flushed before a child starts -----

#[test]
fn stdout_is_flushed_before_a_child_starts() {
    let out = run_scenario("scenario_stdout_flush");
    for m in METHODS {
        let before = format!("before-{m}|");
        let child = format!("child-{m}|");
        assert_eq!(
            out.matches(&before).count(),
            1,
            "{m}: what the parent printed before start appears not exactly once:\n{out}"
        );
        assert_eq!(out.matches(&child).count(), 1, "{m}:\n{out}");
        assert!(
            out.find(&before) < out.find(&child),
            "{m}: the parent's output comes after the child's:\n{out}"
        );
    }
}

#[test]
fn scenario_stdout_flush() {
    if !in_scenario("scenario_stdout_flush") {
        return;
    }
    for m in METHODS {
        print!("before-{m}|");
        let mut p = get_context(Some(m)).process(print_tag, m.to_string());
        p.start().unwrap();
        assert_eq!(join(&p), 0, "{m}");
    }
    println!();
}

// ----- 6. daemons and exit handling -----

/// Pids whose state the scenario's exit hook reports.
static WATCHED_AT_EXIT: Mutex<Vec<i32>> = Mutex::new(Vec::new());

/// Runs at exit after `mp_core`'s own exit handling (it is registered before the first child
/// starts, and `atexit` handlers run last registered first): prints `PARENT_EXIT=[...]` with
/// whether each watched pid still runs.
extern "C" fn report_at_exit() {
    let watched = WATCHED_AT_EXIT.lock().unwrap_or_else(|e| e.into_inner());
    let states: Vec<String> = watched
        .iter()
        .map(|&pid| {
            format!(
                "{pid}:{}",
                if is_running(pid) { "running" } else { "ended" }
            )
        })
        .collect();
    let line = format!("\nPARENT_EXIT=[{}]\n", states.join(","));
    let _ = rustix::io::write(std::io::stdout().as_fd(), line.as_bytes());
}

fn register_exit_report() {
    // SAFETY: `report_at_exit` is a C-ABI function that takes no arguments; `atexit` only
    // stores the pointer and calls it once at exit.
    let rc = unsafe { libc::atexit(report_at_exit) };
    assert_eq!(rc, 0, "atexit");
}

/// Parses `PARENT_EXIT=[pid:state,...]`.
fn states_at_exit(out: &str) -> Vec<(i32, String)> {
    let all = markers(out, "PARENT_EXIT");
    assert_eq!(all.len(), 1, "the exit report is missing:\n{out}");
    all[0]
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| {
            let (pid, state) = s.split_once(':').unwrap();
            (pid.parse().unwrap(), state.to_string())
        })
        .collect()
}

#[test]
fn daemonic_children_are_terminated_when_the_parent_exits() {
    let out = run_scenario("scenario_daemons_at_exit");
    let daemons: Vec<i32> = markers(&out, "DAEMON")
        .iter()
        .map(|s| s.split_whitespace().last().unwrap().parse().unwrap())
        .collect();
    let leftover: Vec<i32> = daemons
        .iter()
        .copied()
        .filter(|&pid| !ends_within(pid, Duration::from_secs(5)))
        .collect();
    leftover.iter().for_each(|&pid| kill_pid(pid));
    assert!(
        leftover.is_empty(),
        "daemons outlived their parent: {leftover:?}\n{out}"
    );
    assert_eq!(daemons.len(), 3, "{out}");
    let at_exit = states_at_exit(&out);
    // Python terminates (and joins) daemonic children in its exit handler, before the process
    // is gone.
    for (pid, state) in at_exit {
        assert_eq!(
            state, "ended",
            "daemon {pid} still ran at the parent's exit\n{out}"
        );
    }
}

#[test]
fn scenario_daemons_at_exit() {
    if !in_scenario("scenario_daemons_at_exit") {
        return;
    }
    register_exit_report();
    for m in METHODS {
        let mut p = Process::new(sleep_long, ()).daemon(true).start_method(m);
        p.start().unwrap();
        let pid = p.pid().unwrap().unwrap();
        WATCHED_AT_EXIT.lock().unwrap().push(pid);
        say("DAEMON", format!("{m} {pid}"));
    }
    // Return: the harness's main returns, and the process exits normally.
}

#[test]
fn daemonic_children_die_with_a_sigkilled_parent() {
    let out = run_scenario("scenario_sigkill_supervisor");
    assert!(out.contains("SUPERVISOR=[ok]"), "{out}");
}

/// Sets itself as a child subreaper (so orphaned descendants are reparented here and can be
/// reaped), then for each start method runs `scenario_daemon_parent`, SIGKILLs it once it has
/// started a daemon, and checks the daemon dies within two seconds.
#[test]
fn scenario_sigkill_supervisor() {
    if !in_scenario("scenario_sigkill_supervisor") {
        return;
    }
    rustix::process::set_child_subreaper(Some(rustix::process::getpid())).unwrap();
    for m in METHODS {
        let mut parent =
            Scenario::start("scenario_daemon_parent", &[("MP_TEST_METHOD", m.as_str())]);
        let pid: i32 = parent.wait_for_marker("DAEMON", LONG).parse().unwrap();
        let pidfd = rustix::process::pidfd_open(pid_of(pid), PidfdFlags::empty())
            .unwrap_or_else(|e| panic!("{m}: the daemon {pid} is already gone: {e}"));
        assert!(
            !readable(pidfd.as_fd(), Duration::ZERO),
            "{m}: the daemon ended before its parent was killed\n{}",
            parent.report()
        );
        parent.kill();
        let died = readable(pidfd.as_fd(), Duration::from_secs(2));
        if !died {
            let _ = rustix::process::pidfd_send_signal(&pidfd, Signal::KILL);
        }
        assert!(
            died,
            "{m}: the daemon outlived its SIGKILLed parent by 2 s\n{}",
            parent.report()
        );
        reap_all_children(Duration::from_secs(5));
    }
    let zombies = zombie_children();
    assert!(zombies.is_empty(), "zombies left: {zombies:?}");
    say("SUPERVISOR", "ok");
}

/// Reaps every child of this process (orphans reparented here included) until none is left;
/// fails if one is still running after `timeout`.
fn reap_all_children(timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        match rustix::process::waitpid(None, rustix::process::WaitOptions::NOHANG) {
            Ok(Some(_)) => continue,
            Ok(None) => {
                assert!(
                    Instant::now() < deadline,
                    "descendants still running {timeout:?} after their parent was killed"
                );
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(rustix::io::Errno::CHILD) => return,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => panic!("waitpid: {e}"),
        }
    }
}

#[test]
fn scenario_daemon_parent() {
    if !in_scenario("scenario_daemon_parent") {
        return;
    }
    let m: StartMethod = std::env::var("MP_TEST_METHOD").unwrap().parse().unwrap();
    let mut p = Process::new(sleep_long, ()).daemon(true).start_method(m);
    p.start().unwrap();
    say("DAEMON", p.pid().unwrap().unwrap());
    // The supervisor kills this process long before this ends.
    std::thread::sleep(FOREVER);
}

#[test]
fn non_daemonic_children_are_joined_at_exit() {
    let out = run_scenario("scenario_join_at_exit");
    let exit_at = out.find("PARENT_EXIT=[").expect("no exit report");
    for m in METHODS {
        let done = format!("CHILD_DONE=[{m}]");
        let at = out
            .find(&done)
            .unwrap_or_else(|| panic!("{m}: the child's output is missing:\n{out}"));
        assert!(
            at < exit_at,
            "{m}: the child finished after its parent's exit handling:\n{out}"
        );
    }
    for (pid, state) in states_at_exit(&out) {
        assert_eq!(
            state, "ended",
            "child {pid} still ran at the parent's exit\n{out}"
        );
    }
}

#[test]
fn scenario_join_at_exit() {
    if !in_scenario("scenario_join_at_exit") {
        return;
    }
    register_exit_report();
    for m in METHODS {
        let mut p = Process::new(sleep_then_print, (m.to_string(), 300)).start_method(m);
        p.start().unwrap();
        WATCHED_AT_EXIT
            .lock()
            .unwrap()
            .push(p.pid().unwrap().unwrap());
    }
    say("STARTED", "all");
}

#[test]
fn set_join_at_exit_false_leaves_children_running() {
    let started = Instant::now();
    let mut s = Scenario::start("scenario_no_join_at_exit", &[]);
    let status = s.wait_exit(LONG);
    let exited_after = started.elapsed();
    // The exit report is written just before the process ends; let the reader catch up.
    s.wait_for_marker("PARENT_EXIT", Duration::from_secs(5));
    let out = s.stdout();
    let states = states_at_exit(&out);
    // Clean up the children the parent left behind before any assertion can fail.
    for &(pid, _) in &states {
        kill_pid(pid);
    }
    assert!(status.success(), "{}", s.report());
    assert_eq!(states.len(), 3, "{out}");
    for (pid, state) in &states {
        assert_eq!(state, "running", "child {pid} was joined at exit\n{out}");
    }
    let exit_at = out.find("PARENT_EXIT=[").unwrap();
    assert!(
        !out[..exit_at].contains("CHILD_DONE"),
        "a child finished before its parent exited:\n{out}"
    );
    assert!(
        exited_after < Duration::from_secs(4),
        "the parent waited for its children ({exited_after:?})"
    );
}

#[test]
fn scenario_no_join_at_exit() {
    if !in_scenario("scenario_no_join_at_exit") {
        return;
    }
    register_exit_report();
    set_join_at_exit(false);
    for m in METHODS {
        let mut p = Process::new(sleep_then_print, (m.to_string(), 5000)).start_method(m);
        p.start().unwrap();
        WATCHED_AT_EXIT
            .lock()
            .unwrap()
            .push(p.pid().unwrap().unwrap());
    }
    say("STARTED", "all");
}

// ----- 7. daemonic processes cannot have children -----

#[test]
fn daemonic_processes_cannot_have_children() {
    for m in METHODS {
        let mut p = Process::new(try_to_have_a_child, ())
            .daemon(true)
            .start_method(m);
        p.start().unwrap();
        let answer = join_result(&p).unwrap();
        assert!(
            answer.starts_with("InvalidState")
                && answer.contains("daemonic processes are not allowed to have children"),
            "{m}: {answer}"
        );
    }
    // A non-daemonic child may.
    let mut p = Process::new(try_to_have_a_child, ());
    p.start().unwrap();
    assert_eq!(join_result(&p).unwrap(), "started");
    // The daemon flag can change until start, not after.
    let p = Process::new(return_unit, ()).daemon(true);
    assert!(p.is_daemon());
    p.set_daemon(false).unwrap();
    assert!(!p.is_daemon());
    let mut p = p;
    p.start().unwrap();
    assert_invalid_state("set_daemon after start", p.set_daemon(true));
    join(&p);
}

// ----- regressions -----

#[test]
fn fork_child_does_not_hang_while_another_thread_panics() {
    let out = run_scenario("scenario_fork_while_another_thread_panics");
    assert!(out.contains("FORK_WHILE_PANICKING=[ok]"), "{out}");
}

/// Another thread is inside the panic hook (holding std's hook lock) when this thread forks:
/// the child must still run and exit. (It hung in `child_main`'s `panic::take_hook()`, a lock
/// that no thread of the child will ever release.)
#[test]
fn scenario_fork_while_another_thread_panics() {
    if !in_scenario("scenario_fork_while_another_thread_panics") {
        return;
    }
    let (inside, wait_inside) = std::sync::mpsc::channel::<()>();
    std::panic::set_hook(Box::new(move |_| {
        let _ = inside.send(());
        std::thread::sleep(Duration::from_secs(2));
    }));
    let _panicking = std::thread::spawn(|| panic!("a slow panic in another thread"));
    wait_inside
        .recv_timeout(LONG)
        .expect("the other thread never panicked");
    let mut p = Process::new(make_vec, 3).start_method(StartMethod::Fork);
    p.start().unwrap();
    let ended = p.join_timeout(Duration::from_secs(3)).unwrap();
    if ended.is_none() {
        p.kill().unwrap();
        join(&p);
    }
    assert_eq!(
        ended,
        Some(0),
        "the forked child hung while another thread of its parent was panicking"
    );
    assert_eq!(p.join_result().unwrap(), vec![0, 1, 4]);
    say("FORK_WHILE_PANICKING", "ok");
}

// ----- 8. no leaked fds, no zombies -----

#[test]
fn no_fds_or_zombies_are_left_behind() {
    let out = run_scenario("scenario_no_leaks");
    assert!(out.contains("NO_LEAKS=[ok]"), "{out}");
}

/// Starts and joins processes of every kind under every method.
fn run_a_bit_of_everything() {
    for m in METHODS {
        let ctx = get_context(Some(m));

        let mut p = ctx.process_closure(|| 1u8);
        if m == StartMethod::Fork {
            p.start().unwrap();
            assert_eq!(join_result(&p).unwrap(), 1);
        } else {
            assert!(p.start().is_err());
        }

        let mut p = ctx.process(make_string, 3);
        p.start().unwrap();
        assert!(join_result(&p).unwrap().starts_with("xxx-"));

        let mut p = ctx.process(make_record, 1);
        p.start().unwrap();
        assert_eq!(join_result(&p).unwrap(), make_record(1));

        let (mut ours, theirs) = pipe(true).unwrap();
        let mut p = ctx.process(echo_double, theirs);
        p.start().unwrap();
        ours.send(&5u64).unwrap();
        assert!(ours.poll(Some(LONG)).unwrap());
        assert_eq!(ours.recv::<u64>().unwrap(), 10);
        assert_eq!(join_result(&p).unwrap(), 5);
        drop(ours);

        let (mut r, w) = pipe(false).unwrap();
        let mut p = ctx.process(send_one, w);
        p.start().unwrap();
        assert!(r.poll(Some(LONG)).unwrap());
        let _: String = r.recv().unwrap();
        assert_eq!(join(&p), 0);
        drop(r);

        let mut p = ctx.process(panic_string, "expected panic".into());
        p.start().unwrap();
        assert!(join_result(&p).is_err());

        let mut p = ctx.process(sleep_long_string, ()).daemon(true);
        p.start().unwrap();
        p.kill().unwrap();
        assert!(join_result(&p).is_err());

        let mut p = ctx.process(return_unit, ()).daemon(true);
        p.start().unwrap();
        assert_eq!(join(&p), 0);
        p.close().unwrap();

        // Last, with no start after it: joining must release what the child held (Python's
        // join() drops the process from its _children).
        let mut p = ctx.process(make_vec, 2);
        p.start().unwrap();
        assert_eq!(join_result(&p).unwrap(), vec![0, 1]);
    }
}

#[test]
fn scenario_no_leaks() {
    if !in_scenario("scenario_no_leaks") {
        return;
    }
    // Warm up what lives as long as the process: the fork server's socket and the daemons'
    // lifeline pipe.
    run_a_bit_of_everything();
    // Measure from a clean registry: active_children() reaps and forgets ended children.
    let _ = active_children();
    let before = open_fds();
    for _ in 0..2 {
        run_a_bit_of_everything();
    }
    let after = open_fds();
    // active_children() reaps and forgets ended children (Python's _cleanup()).
    let _ = active_children();
    let after_cleanup = open_fds();
    let mut failures = Vec::new();
    if after_cleanup != before {
        failures.push(format!(
            "fds leaked for good:\nbefore: {before:?}\nafter:  {after_cleanup:?}"
        ));
    }
    if after != before {
        failures.push(format!(
            "joined and dropped processes still hold fds until the next start() or \
             active_children():\nbefore: {before:?}\nafter:  {after:?}"
        ));
    }
    let zombies = zombie_children();
    if !zombies.is_empty() {
        failures.push(format!("zombie children: {zombies:?}"));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    say("NO_LEAKS", "ok");
}

// ----- scenario machinery -----

/// The environment variable naming the scenario a re-executed test binary runs.
const SCENARIO_VAR: &str = "MP_TEST_SCENARIO";

/// True in a process re-executed to run the scenario test `name`.
fn in_scenario(name: &str) -> bool {
    std::env::var(SCENARIO_VAR).as_deref() == Ok(name)
}

/// Prints a tagged line (`KEY=[value]`) to stdout, flushed.
fn say(key: &str, value: impl std::fmt::Display) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "\n{key}=[{value}]");
    let _ = out.flush();
}

/// Every value tagged `key` in `out`, in order.
fn markers(out: &str, key: &str) -> Vec<String> {
    let tag = format!("{key}=[");
    let mut found = Vec::new();
    let mut rest = out;
    while let Some(at) = rest.find(&tag) {
        rest = &rest[at + tag.len()..];
        let end = rest.find(']').unwrap_or(rest.len());
        found.push(rest[..end].to_string());
        rest = &rest[end..];
    }
    found
}

/// A collected output stream of a scenario process.
#[derive(Default)]
struct Stream {
    bytes: Mutex<Vec<u8>>,
    eof: AtomicBool,
}

impl Stream {
    fn collect(mut from: impl Read + Send + 'static) -> Arc<Stream> {
        let stream = Arc::new(Stream::default());
        let s = stream.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                match from.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => s.bytes.lock().unwrap().extend_from_slice(&buf[..n]),
                }
            }
            s.eof.store(true, Ordering::SeqCst);
        });
        stream
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes.lock().unwrap()).into_owned()
    }
}

/// This test binary, re-executed to run one scenario.
struct Scenario {
    name: String,
    child: Child,
    exited: Option<ExitStatus>,
    stdout: Arc<Stream>,
    stderr: Arc<Stream>,
}

impl Scenario {
    fn start(name: &str, env: &[(&str, &str)]) -> Scenario {
        let exe = std::env::current_exe().expect("current_exe");
        let mut cmd = Command::new(exe);
        cmd.args(["--exact", name, "--nocapture", "--test-threads=1", "-q"])
            .env(SCENARIO_VAR, name)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("re-execute the test binary");
        let stdout = Stream::collect(child.stdout.take().unwrap());
        let stderr = Stream::collect(child.stderr.take().unwrap());
        Scenario {
            name: name.to_string(),
            child,
            exited: None,
            stdout,
            stderr,
        }
    }

    fn stdout(&self) -> String {
        self.stdout.text()
    }

    /// Everything the scenario printed, for failure messages.
    fn report(&self) -> String {
        format!(
            "scenario {} (exit status {:?})\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.name,
            self.exited,
            self.stdout.text(),
            self.stderr.text()
        )
    }

    /// Waits for the first value tagged `key` on stdout.
    fn wait_for_marker(&mut self, key: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = markers(&self.stdout(), key).into_iter().next() {
                return v;
            }
            if self.exited.is_none() {
                self.exited = self.child.try_wait().expect("try_wait");
            }
            if Instant::now() >= deadline
                || (self.exited.is_some() && self.stdout.eof.load(Ordering::SeqCst))
            {
                self.kill();
                panic!("no {key}=[..] from the scenario\n{}", self.report());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits for the scenario process to exit; kills it and fails after `timeout`.
    fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exited {
                return status;
            }
            self.exited = self.child.try_wait().expect("try_wait");
            if self.exited.is_none() {
                if Instant::now() >= deadline {
                    self.kill();
                    panic!(
                        "the scenario did not exit within {timeout:?}\n{}",
                        self.report()
                    );
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }

    /// Waits until both output streams reach EOF (every process holding them is gone) or
    /// `timeout` passes.
    fn wait_eof(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.stdout.eof.load(Ordering::SeqCst) && self.stderr.eof.load(Ordering::SeqCst) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    }

    /// SIGKILLs the scenario process and reaps it.
    fn kill(&mut self) {
        if self.exited.is_none() {
            let _ = self.child.kill();
            self.exited = self.child.wait().ok();
        }
    }
}

impl Drop for Scenario {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs scenario `name` to its end and returns its stdout; fails if it fails or hangs.
fn run_scenario(name: &str) -> String {
    let mut s = Scenario::start(name, &[]);
    let status = s.wait_exit(Duration::from_secs(60));
    // Children that inherited the pipes may outlive the scenario; give them a moment, then
    // take what arrived (everything the scenario process itself wrote is in by now, or nearly).
    if !s.wait_eof(Duration::from_secs(5)) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(status.success(), "{}", s.report());
    s.stdout()
}

fn returns_none(_: ()) -> Option<u32> {
    None
}

fn exits_early(_: ()) -> u32 {
    mp_core::exit(0)
}

/// Regression: a value that encodes as nil (`None`) is not recorded by the child; the parent
/// must still read it as `None`, and an `exit(0)` before returning must stay an error.
#[test]
fn a_none_result_and_an_early_exit_are_told_apart() {
    for m in METHODS {
        let mut p = Process::new(returns_none, ()).start_method(m);
        p.start().unwrap();
        assert_eq!(p.join_timeout(Duration::from_secs(30)).unwrap(), Some(0));
        assert_eq!(p.join_result().unwrap(), None, "{m}");
        let mut p = Process::new(exits_early, ()).start_method(m);
        p.start().unwrap();
        assert_eq!(p.join_timeout(Duration::from_secs(30)).unwrap(), Some(0));
        assert!(
            matches!(
                p.join_result(),
                Err(Error::ProcessFailed { exitcode: 0, .. })
            ),
            "{m}"
        );
    }
}
