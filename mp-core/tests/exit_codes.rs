//! Exit codes and what a child's end tells its parent: `exitcode` before, during and after a
//! run, a panic (exit code 1 and its message), `exit(n)`, `terminate()` (-15) and `kill()` (-9).
//!
//! Ported in spirit from CPython's `Lib/test/_test_multiprocessing.py`: `_TestProcess`'s
//! `test_process` (exitcode and is_alive around a run), `test_terminate` and `test_kill`
//! (`_kill_process`), and `test_sys_exit`. The panic message reaching `join_result` goes beyond
//! Python.

use std::time::Duration;

use mp_core::{active_children, pipe, Error, Process};

use mp_testkit::bodies::{panic_string, sleep_long, sleep_long_string, wait_for_go};
use mp_testkit::{join, join_result, our_pid, METHODS};

fn panic_unit(msg: String) {
    panic!("{msg}");
}

fn exit_unit(code: i32) {
    mp_core::exit(code);
}

fn exit_string(code: i32) -> String {
    mp_core::exit(code);
}

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
