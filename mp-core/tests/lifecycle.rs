//! The life of a `Process` object: `join_timeout` while the child runs, starting twice,
//! `close()` (and every method after it), `join` and `sentinel` before `start`, and the
//! sentinel becoming readable when the child ends.
//!
//! Ported in spirit from CPython's `Lib/test/_test_multiprocessing.py`: `_TestProcess`'s
//! `test_sentinel` and `test_close`.

use std::time::{Duration, Instant};

use mp_core::{pipe, Process};

use mp_testkit::bodies::{
    assert_closed, assert_invalid_state, return_unit, sleep_long, wait_for_go,
};
use mp_testkit::{join, readable, LONG, METHODS};

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
