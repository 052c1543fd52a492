//! Start methods: their names, the default and contexts (`set_start_method`,
//! `get_context`), that each method really forks, spawns or uses the fork server, closures
//! (fork only), the executable and function identity (a binary that is not this one is a
//! `BinaryMismatch`), stdout flushed before a child starts, and a fork while another thread
//! panics.
//!
//! Ported in spirit from CPython's `Lib/test/_test_multiprocessing.py`: `TestStartMethod`'s
//! `test_context`, `test_set_get` and `test_get_all`; `_TestProcess.test_set_executable`;
//! `_TestSubclassingProcess.test_stderr_flush` (here: stdout is flushed before a child starts).
//! Closures and function identity go beyond Python. Regression tests are named after what broke
//! (`fork_child_does_not_hang_while_another_thread_panics`).
//!
//! What changes process-wide state (the default start method, the executable, stdout, the
//! panic hook) runs as a scenario in a process of its own (see `mp_testkit::Scenario`).

use std::time::Duration;

use mp_core::{
    get_all_start_methods, get_context, get_start_method, get_start_method_if_set, set_executable,
    set_start_method, set_start_method_force, Error, Process, StartMethod,
};

use mp_testkit::bodies::{assert_invalid_state, make_vec, whoami, Me};
use mp_testkit::{in_scenario, join, join_result, our_pid, run_scenario, say, LONG, METHODS};

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

fn print_tag(tag: String) {
    println!("child-{tag}|");
}

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
