//! Integration tests of [`mp_sync::Event`], in one process and across real child processes under
//! every start method (fork, spawn, forkserver).
//!
//! Ported in spirit from CPython's `Lib/test/_test_multiprocessing.py`: `_TestEvent.test_event`
//! (`is_set`, `set`, `clear`, a timed wait on a clear event returns false after the timeout, a
//! wait on a set event returns at once, and a set in a child wakes the parent's wait). Here the
//! other direction (the parent wakes children and threads at once) is tested too.

use std::time::{Duration, Instant};

use mp_sync::Event;
use mp_testkit::{assert_sleeps, assert_took_about, start, within, Child, LONG, METHODS};

#[test]
fn set_clear_is_set_and_wait_in_one_process() {
    let event = Event::new().unwrap();
    assert!(!event.is_set());
    for t in [0, 50, 200].map(Duration::from_millis) {
        let t0 = Instant::now();
        assert!(!event.wait_timeout(t).unwrap());
        assert_took_about(t0.elapsed(), t, "Event::wait_timeout");
        let t0 = Instant::now();
        assert!(!event.wait_deadline(t0 + t).unwrap());
        assert_took_about(t0.elapsed(), t, "Event::wait_deadline");
    }
    event.set();
    assert!(event.is_set());
    event.set();
    assert!(event.is_set(), "setting twice keeps it set");
    let t0 = Instant::now();
    assert!(event.wait_timeout(LONG).unwrap());
    assert!(event.wait_timeout(Duration::ZERO).unwrap());
    let e = event.clone();
    within("Event::wait on a set event", move || e.wait()).unwrap();
    assert!(
        t0.elapsed() < Duration::from_secs(1),
        "a set event must not block"
    );
    assert!(event.clone().is_set(), "a clone is the same event");
    event.clear();
    assert!(!event.is_set());
    assert!(!event.wait_timeout(Duration::from_millis(20)).unwrap());
    event.clear();
    assert!(!event.is_set());
}

#[test]
fn a_set_in_another_thread_wakes_a_waiter() {
    let event = Event::new().unwrap();
    let e = event.clone();
    let setter = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        e.set();
    });
    let e = event.clone();
    within("Event::wait", move || e.wait()).unwrap();
    assert!(event.is_set());
    setter.join().unwrap();
}

#[test]
fn a_set_in_a_child_wakes_the_parent() {
    for m in METHODS {
        let event = Event::new().unwrap();
        let c = start(m, set_later, event.clone());
        let t0 = Instant::now();
        assert!(
            event.wait_timeout(LONG).unwrap(),
            "{m:?}: the child's set never woke us"
        );
        assert!(t0.elapsed() < Duration::from_secs(10));
        assert!(event.is_set());
        c.finish();
        // And the child's clear is seen here as well.
        start(m, clear, event.clone()).finish();
        assert!(!event.is_set(), "{m:?}");
    }
}

fn set_later(event: Event) {
    assert!(!event.is_set());
    std::thread::sleep(Duration::from_millis(50));
    event.set();
}

fn clear(event: Event) {
    assert!(event.is_set());
    event.clear();
    assert!(!event.is_set());
}

/// How many children and threads wait for the parent's `set`.
const CHILD_WAITERS: usize = 2;
const THREAD_WAITERS: usize = 2;

#[test]
fn a_set_in_the_parent_wakes_every_waiting_child_and_thread() {
    for m in METHODS {
        let (go, never) = (Event::new().unwrap(), Event::new().unwrap());
        let children: Vec<Child<bool>> = (0..CHILD_WAITERS)
            .map(|_| start(m, wait_for_go, (go.clone(), never.clone())))
            .collect();
        let threads: Vec<_> = (0..THREAD_WAITERS)
            .map(|_| {
                let args = (go.clone(), never.clone());
                std::thread::spawn(move || wait_for_go(args))
            })
            .collect();
        std::thread::sleep(Duration::from_millis(150));
        go.set();
        for c in &children {
            assert!(c.finish(), "{m:?}: a child's wait returned false");
        }
        for t in threads {
            assert!(t.join().unwrap(), "{m:?}: a thread's wait returned false");
        }
        assert!(!never.is_set());
    }
}

/// How long a waiter gives the parent's `set` (which comes after about 150 ms), and how soon it
/// must be woken: a waiter that is not woken, and only sees the flag when its own timeout
/// ends, fails the test.
const PATIENCE: Duration = Duration::from_secs(10);
const PROMPT: Duration = Duration::from_secs(5);

/// Checks that a wait on a clear event times out, then waits for `go`; whether `go` came, and
/// promptly.
fn wait_for_go((go, never): (Event, Event)) -> bool {
    let t = Duration::from_millis(50);
    let t0 = Instant::now();
    assert!(!never.wait_timeout(t).unwrap());
    assert_took_about(t0.elapsed(), t, "Event::wait_timeout in a waiter");
    let t0 = Instant::now();
    let set = go.wait_timeout(PATIENCE);
    let took = t0.elapsed();
    assert!(
        took < PROMPT,
        "the set woke this waiter only after {took:?}"
    );
    set.unwrap()
}

#[test]
fn a_wait_sleeps_rather_than_spins() {
    let event = Event::new().unwrap();
    assert_sleeps("Event::wait_timeout", || {
        assert!(!event.wait_timeout(Duration::from_millis(300)).unwrap())
    });
}
