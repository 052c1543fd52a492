//! Integration tests of [`mp_sync::Condition`] over its own `RLock`, a given `Lock` and a given
//! `RLock`, with waiters that are threads of this process and real child processes under every
//! start method (fork, spawn, forkserver).
//!
//! Ported in spirit from CPython's `Lib/test/_test_multiprocessing.py`: `_TestCondition`'s
//! `test_notify`, `test_notify_n`, `test_notify_all` (exactly n of the waiters wake, then the
//! rest), `test_timeout` and `test_wait_result` (a timed wait returns false without a
//! notification, true with one), `test_waitfor` and `test_waitfor_timeout` (`wait_for` with a
//! predicate another process makes true, and with one that never becomes true). Waiting or
//! notifying without the lock is an error, as in `threading`'s `ConditionTests`.

use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mp_core::StartMethod;
use mp_sync::{AnyLock, Condition, Error, Lock, RLock, Semaphore};
use mp_testkit::{
    assert_sleeps, assert_took_about, eventually, start, Child, Counters, LONG, METHODS, SETTLE,
};

/// A condition of each kind: its own `RLock`, a given `Lock`, a given `RLock`.
fn conditions() -> [(&'static str, Condition); 3] {
    [
        ("own RLock", Condition::new().unwrap()),
        (
            "given Lock",
            Condition::with_lock(Lock::new().unwrap()).unwrap(),
        ),
        (
            "given RLock",
            Condition::with_lock(RLock::new().unwrap()).unwrap(),
        ),
    ]
}

/// Takes the condition's lock, waiting at most [`LONG`].
#[track_caller]
fn enter(cond: &Condition) {
    let got = match cond.get_lock() {
        AnyLock::Lock(l) => l.acquire_timeout(LONG),
        AnyLock::RLock(l) => l.acquire_timeout(LONG),
    };
    assert!(got.expect("the previous owner died"), "no condition lock");
}

/// Whether the calling thread holds the condition's lock.
fn owns(cond: &Condition) -> bool {
    match cond.get_lock() {
        AnyLock::Lock(l) => l.is_owned(),
        AnyLock::RLock(l) => l.is_owned(),
    }
}

#[test]
fn wait_timeout_returns_false_without_a_notification() {
    let t = Duration::from_millis(100);
    for (kind, cond) in conditions() {
        enter(&cond);
        let t0 = Instant::now();
        assert!(!cond.wait_timeout(t).unwrap(), "{kind}");
        assert_took_about(t0.elapsed(), t, "Condition::wait_timeout");
        assert!(owns(&cond), "{kind}: the lock is held again after the wait");
        let t0 = Instant::now();
        assert!(!cond.wait_deadline(t0 + t).unwrap(), "{kind}");
        assert_took_about(t0.elapsed(), t, "Condition::wait_deadline");
        let t0 = Instant::now();
        assert!(!cond.wait_timeout(Duration::ZERO).unwrap(), "{kind}");
        assert_took_about(t0.elapsed(), Duration::ZERO, "Condition::wait_timeout(0)");
        cond.release().unwrap();
        assert!(!owns(&cond));
    }
    // A waiter holding an RLock several times releases every level while it waits, and gets
    // them all back.
    let lock = RLock::new().unwrap();
    let cond = Condition::with_lock(lock.clone()).unwrap();
    for _ in 0..3 {
        enter(&cond);
    }
    let l = lock.clone();
    let other = std::thread::spawn(move || {
        // Succeeds only while the waiter below has released all three levels.
        let got = l.acquire_timeout(LONG).unwrap();
        if got {
            l.release().unwrap();
        }
        got
    });
    assert!(!cond.wait_timeout(Duration::from_millis(500)).unwrap());
    assert!(
        other.join().unwrap(),
        "the RLock stayed held during the wait"
    );
    assert_eq!(lock.count(), 3);
    for _ in 0..3 {
        cond.release().unwrap();
    }
    assert_eq!(lock.count(), 0);
}

#[test]
fn waiting_or_notifying_without_the_lock_is_not_owner() {
    for (kind, cond) in conditions() {
        let ms = Duration::from_millis(10);
        assert!(
            matches!(cond.wait_timeout(ms), Err(Error::NotOwner)),
            "{kind}"
        );
        assert!(
            matches!(cond.wait_for_timeout(|| false, ms), Err(Error::NotOwner)),
            "{kind}"
        );
        assert!(matches!(cond.notify(1), Err(Error::NotOwner)), "{kind}");
        assert!(matches!(cond.notify_all(), Err(Error::NotOwner)), "{kind}");
        // Held by this thread: another thread still does not hold it.
        enter(&cond);
        let c = cond.clone();
        std::thread::spawn(move || {
            assert!(matches!(c.wait_timeout(ms), Err(Error::NotOwner)), "{kind}");
            assert!(matches!(c.notify(1), Err(Error::NotOwner)), "{kind}");
            assert!(matches!(c.notify_all(), Err(Error::NotOwner)), "{kind}");
        })
        .join()
        .unwrap();
        cond.notify(1).unwrap();
        cond.notify_all().unwrap();
        cond.release().unwrap();
        assert!(cond.release().is_err(), "{kind}: over-release");
    }
    // Nor in another process.
    for m in METHODS {
        let cond = Condition::new().unwrap();
        enter(&cond);
        start(m, not_owner_in_child, cond.clone()).finish();
        cond.release().unwrap();
    }
}

fn not_owner_in_child(cond: Condition) {
    let ms = Duration::from_millis(10);
    assert!(matches!(cond.wait_timeout(ms), Err(Error::NotOwner)));
    assert!(matches!(cond.notify(1), Err(Error::NotOwner)));
    assert!(matches!(cond.notify_all(), Err(Error::NotOwner)));
    assert!(matches!(cond.release(), Err(Error::NotOwner)));
}

#[test]
fn wait_for_a_predicate_a_child_makes_true() {
    for m in METHODS {
        let cond = Condition::new().unwrap();
        let state = Counters::new(1);
        let c = start(m, count_to_five, (cond.clone(), state.clone()));
        enter(&cond);
        let s = state.clone();
        assert!(
            cond.wait_for_timeout(move || s.get(0) >= 5, LONG).unwrap(),
            "{m:?}: the predicate never became true"
        );
        assert_eq!(state.get(0), 5);
        assert!(owns(&cond));
        // Already true: no wait at all.
        let t0 = Instant::now();
        assert!(cond.wait_for_timeout(|| true, LONG).unwrap());
        assert!(t0.elapsed() < Duration::from_secs(1));
        // Never true: false after the timeout.
        let t = Duration::from_millis(100);
        let t0 = Instant::now();
        let mut calls = 0;
        let r = cond
            .wait_for_timeout(
                || {
                    calls += 1;
                    false
                },
                t,
            )
            .unwrap();
        assert!(!r);
        assert!(calls >= 1);
        assert_took_about(t0.elapsed(), t, "Condition::wait_for");
        cond.release().unwrap();
        c.finish();
    }
}

/// Raises the shared state to 5, one step at a time, notifying after each.
fn count_to_five((cond, state): (Condition, Counters)) {
    for _ in 0..5 {
        std::thread::sleep(Duration::from_millis(20));
        enter(&cond);
        state.bump(0);
        cond.notify_all().unwrap();
        cond.release().unwrap();
    }
}

/// Waits once on `cond` (at most [`LONG`]); announces itself on `ready` under the lock, and on
/// `woken` when the wait returns. The result of the wait.
fn waiter((cond, ready, woken): (Condition, Semaphore, Semaphore)) -> bool {
    enter(&cond);
    ready.release().unwrap();
    let notified = cond.wait_timeout(LONG).unwrap();
    assert!(owns(&cond), "the lock is held again after the wait");
    woken.release().unwrap();
    cond.release().unwrap();
    notified
}

/// Child waiters and thread waiters of `notify_n_wakes_exactly_n_of_mixed_waiters`.
const CHILD_WAITERS: usize = 3;
const THREAD_WAITERS: usize = 2;

#[test]
fn notify_n_wakes_exactly_n_of_mixed_waiters() {
    let waiters = CHILD_WAITERS + THREAD_WAITERS;
    for m in METHODS {
        // Each start method with another kind of lock.
        let cond = match m {
            StartMethod::Fork => Condition::new().unwrap(),
            StartMethod::Spawn => Condition::with_lock(Lock::new().unwrap()).unwrap(),
            StartMethod::Forkserver => Condition::with_lock(RLock::new().unwrap()).unwrap(),
        };
        let (ready, woken) = (Semaphore::new(0).unwrap(), Semaphore::new(0).unwrap());
        let args = || (cond.clone(), ready.clone(), woken.clone());
        let children: Vec<Child<bool>> = (0..CHILD_WAITERS)
            .map(|_| start(m, waiter, args()))
            .collect();
        let threads: Vec<JoinHandle<bool>> = (0..THREAD_WAITERS)
            .map(|_| {
                let a = args();
                std::thread::spawn(move || waiter(a))
            })
            .collect();
        // Each waiter released `ready` while holding the lock, and releases the lock only
        // inside its wait: once we hold the lock, all of them are waiting.
        for i in 0..waiters {
            assert!(
                ready.acquire_timeout(LONG).unwrap(),
                "{m:?}: waiter {i} never came"
            );
        }
        enter(&cond);
        assert_eq!(woken.get_value(), 0);
        cond.notify(2).unwrap();
        cond.release().unwrap();
        eventually("two waiters woken by notify(2)", || woken.get_value() >= 2);
        std::thread::sleep(SETTLE);
        assert_eq!(woken.get_value(), 2, "{m:?}: notify(2) must wake exactly 2");
        enter(&cond);
        cond.notify(0).unwrap();
        cond.release().unwrap();
        std::thread::sleep(SETTLE);
        assert_eq!(woken.get_value(), 2, "{m:?}: notify(0) woke someone");
        enter(&cond);
        cond.notify_all().unwrap();
        cond.release().unwrap();
        for i in 0..waiters {
            assert!(
                woken.acquire_timeout(LONG).unwrap(),
                "{m:?}: notify_all missed waiter {i}"
            );
        }
        for c in &children {
            assert!(c.finish(), "{m:?}: a child's wait_timeout returned false");
        }
        for t in threads {
            assert!(
                t.join().unwrap(),
                "{m:?}: a thread's wait_timeout returned false"
            );
        }
        // Nobody waits any more: a notification is a no-op.
        enter(&cond);
        cond.notify_all().unwrap();
        cond.release().unwrap();
    }
}

#[test]
fn notify_wakes_a_child_waiting_over_each_kind_of_lock() {
    for m in METHODS {
        for (kind, cond) in conditions() {
            let (ready, woken) = (Semaphore::new(0).unwrap(), Semaphore::new(0).unwrap());
            let c = start(m, waiter, (cond.clone(), ready.clone(), woken.clone()));
            assert!(
                ready.acquire_timeout(LONG).unwrap(),
                "{m:?} {kind}: the waiter never came"
            );
            enter(&cond);
            cond.notify(1).unwrap();
            cond.release().unwrap();
            assert!(c.finish(), "{m:?} {kind}: the child was not notified");
            assert_eq!(woken.get_value(), 1);
        }
    }
}

#[test]
fn a_wait_sleeps_rather_than_spins() {
    for (kind, cond) in conditions() {
        enter(&cond);
        assert_sleeps(kind, || {
            assert!(!cond.wait_timeout(Duration::from_millis(300)).unwrap())
        });
        cond.release().unwrap();
    }
}
