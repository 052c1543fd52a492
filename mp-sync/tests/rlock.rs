//! Integration tests of [`mp_sync::RLock`], in one process, across threads and across real
//! child processes under every start method (fork, spawn, forkserver).
//!
//! Ported in spirit from CPython's `Lib/test/_test_multiprocessing.py`: `_TestLock.test_rlock`
//! (re-entrant acquires, then releasing more often than acquired is an error) and
//! `_TestLock.test_lock_context`. That an `RLock` is owned by one thread of one process (release
//! by another thread or process is [`Error::NotOwner`]) and that a child blocks while the parent
//! holds it are tested here across real processes.

use std::time::{Duration, Instant};

use mp_sync::{Error, Event, RLock};
use mp_testkit::{assert_sleeps, assert_took_about, start, within, LONG, METHODS, SETTLE};

#[test]
fn reentrant_in_one_thread() {
    let lock = RLock::new().unwrap();
    let l = lock.clone();
    within("re-entrant RLock acquires", move || {
        assert_eq!(l.count(), 0);
        assert!(l.acquire_timeout(LONG).unwrap());
        l.acquire().unwrap();
        assert!(l.try_acquire().unwrap());
        assert!(l.acquire_timeout(Duration::ZERO).unwrap());
        assert_eq!(l.count(), 4);
        assert!(l.is_owned());
        {
            let _guard = l.lock().unwrap();
            assert_eq!(l.count(), 5);
        }
        assert_eq!(l.count(), 4);
        for left in (0..4).rev() {
            l.release().unwrap();
            assert_eq!(l.count(), left);
        }
        assert!(!l.is_owned());
    });
    assert_eq!(lock.count(), 0);
    assert!(lock.try_acquire().unwrap());
    lock.release().unwrap();
}

#[test]
fn over_release_is_an_error() {
    let lock = RLock::new().unwrap();
    assert!(matches!(lock.release(), Err(Error::NotOwner)));
    assert!(lock.acquire_timeout(LONG).unwrap());
    assert!(lock.acquire_timeout(LONG).unwrap());
    lock.release().unwrap();
    lock.release().unwrap();
    assert!(matches!(lock.release(), Err(Error::NotOwner)));
    assert_eq!(lock.count(), 0);
    // Still usable afterwards.
    assert!(lock.try_acquire().unwrap());
    lock.release().unwrap();
}

#[test]
fn release_by_another_thread_is_not_owner() {
    let lock = RLock::new().unwrap();
    assert!(lock.acquire_timeout(LONG).unwrap());
    assert!(lock.acquire_timeout(LONG).unwrap());
    let l = lock.clone();
    std::thread::spawn(move || {
        assert!(!l.is_owned());
        assert!(matches!(l.release(), Err(Error::NotOwner)));
        // Not re-entrant for another thread of the same process.
        assert!(!l.try_acquire().unwrap());
        let t = Duration::from_millis(100);
        let t0 = Instant::now();
        assert!(!l.acquire_timeout(t).unwrap());
        assert_took_about(t0.elapsed(), t, "RLock::acquire_timeout in another thread");
    })
    .join()
    .unwrap();
    assert!(lock.is_owned());
    assert_eq!(lock.count(), 2);
    lock.release().unwrap();
    lock.release().unwrap();
    assert_eq!(lock.count(), 0);
}

#[test]
fn release_by_another_process_is_not_owner() {
    for m in METHODS {
        let lock = RLock::new().unwrap();
        assert!(lock.acquire_timeout(LONG).unwrap());
        assert!(lock.acquire_timeout(LONG).unwrap());
        start(m, foreign_release, lock.clone()).finish();
        assert!(lock.is_owned(), "{m:?}");
        assert_eq!(lock.count(), 2, "{m:?}: the child changed the count");
        lock.release().unwrap();
        lock.release().unwrap();
        assert!(matches!(lock.release(), Err(Error::NotOwner)));
    }
}

fn foreign_release(lock: RLock) {
    assert!(!lock.is_owned(), "the parent owns it, not this process");
    assert_eq!(lock.count(), 2);
    assert!(matches!(lock.release(), Err(Error::NotOwner)));
    assert!(!lock.try_acquire().unwrap());
    let t = Duration::from_millis(50);
    let t0 = Instant::now();
    assert!(!lock.acquire_timeout(t).unwrap());
    assert_took_about(t0.elapsed(), t, "RLock::acquire_timeout in a child");
}

#[test]
fn a_child_blocks_while_the_parent_holds_it() {
    for m in METHODS {
        let lock = RLock::new().unwrap();
        let (started, got) = (Event::new().unwrap(), Event::new().unwrap());
        assert!(lock.acquire_timeout(LONG).unwrap());
        assert!(lock.acquire_timeout(LONG).unwrap());
        let c = start(
            m,
            block_then_take,
            (lock.clone(), started.clone(), got.clone()),
        );
        assert!(
            started.wait_timeout(LONG).unwrap(),
            "{m:?}: the child never started"
        );
        assert!(
            !got.wait_timeout(SETTLE).unwrap(),
            "{m:?}: the child took a held RLock"
        );
        lock.release().unwrap();
        assert!(
            !got.wait_timeout(SETTLE).unwrap(),
            "{m:?}: the child took the RLock while one level was still held"
        );
        lock.release().unwrap();
        assert!(
            got.wait_timeout(LONG).unwrap(),
            "{m:?}: the child never got the RLock"
        );
        c.finish();
        assert_eq!(lock.count(), 0);
        assert!(lock.try_acquire().unwrap());
        lock.release().unwrap();
    }
}

/// Blocks on the parent's `RLock`; once it is free, takes it re-entrantly and gives it back.
fn block_then_take((lock, started, got): (RLock, Event, Event)) {
    started.set();
    assert!(lock.acquire_timeout(LONG).unwrap(), "never got the RLock");
    got.set();
    assert!(lock.is_owned());
    assert!(lock.try_acquire().unwrap());
    assert_eq!(lock.count(), 2);
    lock.release().unwrap();
    lock.release().unwrap();
    assert!(matches!(lock.release(), Err(Error::NotOwner)));
}

#[test]
fn a_blocked_acquire_sleeps_rather_than_spins() {
    let lock = RLock::new().unwrap();
    assert!(lock.try_acquire().unwrap());
    let l = lock.clone();
    std::thread::spawn(move || {
        assert_sleeps("RLock::acquire_timeout", || {
            assert!(!l.acquire_timeout(Duration::from_millis(300)).unwrap())
        })
    })
    .join()
    .unwrap();
    lock.release().unwrap();
}
