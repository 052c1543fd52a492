//! Daemons and exit handling: daemonic children are terminated when their parent exits and die
//! with a SIGKILLed parent, non-daemonic children are joined at exit unless
//! `set_join_at_exit(false)`, and daemonic processes cannot have children.
//!
//! Ported in spirit from CPython's `Lib/test/_test_multiprocessing.py`:
//! `_TestProcess.test_daemon_argument` and the daemon rules of `Process.start`. Daemons dying
//! with a SIGKILLed parent go beyond Python.
//!
//! Each test that needs its parent to exit (or to be killed) runs that parent as a scenario
//! (see `mp_testkit::Scenario`): the test re-executes this test binary to run one
//! `scenario_*` test, which does nothing in an ordinary run.

use std::io::Write;
use std::os::fd::AsFd;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use mp_core::{set_join_at_exit, Error, Process, StartMethod};
use rustix::process::{PidfdFlags, Signal};

use mp_testkit::bodies::{assert_invalid_state, return_unit, sleep_long};
use mp_testkit::{
    at_exit, ends_within, in_scenario, is_running, join, join_result, kill_pid, markers, pid_of,
    readable, reap_all_children, run_scenario, say, zombie_children, Scenario, FOREVER, LONG,
    METHODS,
};

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
    at_exit(report_at_exit);
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

fn sleep_then_print((tag, millis): (String, u64)) {
    std::thread::sleep(Duration::from_millis(millis));
    println!("\nCHILD_DONE=[{tag}]");
    let _ = std::io::stdout().flush();
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

/// Starts one [`sleep_then_print`] child per start method, each printing after `millis`,
/// watches their pids at exit, and says `STARTED=[all]`.
fn start_watched_printers(millis: u64) {
    for m in METHODS {
        let mut p = Process::new(sleep_then_print, (m.to_string(), millis)).start_method(m);
        p.start().unwrap();
        WATCHED_AT_EXIT
            .lock()
            .unwrap()
            .push(p.pid().unwrap().unwrap());
    }
    say("STARTED", "all");
}

#[test]
fn scenario_join_at_exit() {
    if !in_scenario("scenario_join_at_exit") {
        return;
    }
    register_exit_report();
    start_watched_printers(300);
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
    start_watched_printers(5000);
}

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

/// A daemon watches its parent's lifeline without a thread of its own: the kernel signals it
/// when the pipe hangs up (`F_SETSIG`), so a daemonic child has exactly one thread (a watcher
/// thread cost each pool worker a clone at start and a wakeup at exit).
#[test]
fn a_daemon_watches_its_lifeline_without_a_thread() {
    for m in METHODS {
        let mut p = Process::new(sleep_long, ()).daemon(true).start_method(m);
        p.start().unwrap();
        let pid = p.pid().unwrap().unwrap();
        // Once the child sleeps, and a while after (a spawned child also sleeps while it
        // reads its bootstrap, before the lifeline is watched), count its threads.
        mp_testkit::eventually(&format!("{m}: the daemon {pid} sleeps"), || {
            std::fs::read_to_string(format!("/proc/{pid}/status"))
                .is_ok_and(|s| s.contains("State:\tS"))
        });
        std::thread::sleep(Duration::from_millis(200));
        let threads = std::fs::read_dir(format!("/proc/{pid}/task"))
            .unwrap()
            .count();
        assert_eq!(threads, 1, "{m}: the daemon runs {threads} threads");
        p.kill().unwrap();
        join(&p);
    }
}
