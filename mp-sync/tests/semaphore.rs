//! Integration tests of [`mp_sync::Semaphore`] and [`mp_sync::BoundedSemaphore`], in one process
//! and across real child processes under every start method (fork, spawn, forkserver).
//!
//! Ported in spirit from CPython's `Lib/test/_test_multiprocessing.py`: `_TestSemaphore`'s
//! `test_semaphore` (`get_value` follows acquires and releases, a release may exceed the initial
//! value), `test_bounded_semaphore` (a release past the initial value is an error) and
//! `test_timeout` (timed and non-blocking acquires). Sharing the values with children, a child
//! woken by the parent's release, and a ping-pong between two processes through two semaphores
//! go beyond that suite.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use mp_sync::{BoundedSemaphore, Error, Semaphore, SEM_VALUE_MAX};
use mp_testkit::{assert_sleeps, assert_took_about, start, within, Counters, LONG, METHODS};

#[test]
fn get_value_follows_acquires_and_releases() {
    let sem = Semaphore::new(2).unwrap();
    assert_eq!(sem.get_value(), 2);
    let s = sem.clone();
    within("Semaphore::acquire with a unit free", move || s.acquire()).unwrap();
    assert_eq!(sem.get_value(), 1);
    assert!(sem.try_acquire().unwrap());
    assert_eq!(sem.get_value(), 0);
    assert!(!sem.try_acquire().unwrap());
    assert_eq!(sem.get_value(), 0);
    sem.release().unwrap();
    assert_eq!(sem.get_value(), 1);
    assert!(sem.acquire_timeout(LONG).unwrap());
    for v in 1..=3 {
        sem.release().unwrap();
        assert_eq!(sem.get_value(), v);
    }
    // Past the initial value: allowed for a plain semaphore.
    assert_eq!(sem.get_value(), 3);
    {
        let _guard = sem.lock();
        assert_eq!(sem.get_value(), 2);
    }
    assert_eq!(sem.get_value(), 3);
    assert!(
        sem.clone().try_acquire().unwrap(),
        "a clone is the same semaphore"
    );
    assert_eq!(sem.get_value(), 2);

    let empty = Semaphore::new(0).unwrap();
    assert_eq!(empty.get_value(), 0);
    assert!(!empty.try_acquire().unwrap());
}

#[test]
fn timed_acquires_give_up_after_the_timeout() {
    let sem = Semaphore::new(0).unwrap();
    for t in [0, 50, 250].map(Duration::from_millis) {
        let t0 = Instant::now();
        assert!(!sem.acquire_timeout(t).unwrap());
        assert_took_about(t0.elapsed(), t, "Semaphore::acquire_timeout");
        let t0 = Instant::now();
        assert!(!sem.acquire_deadline(t0 + t).unwrap());
        assert_took_about(t0.elapsed(), t, "Semaphore::acquire_deadline");
    }
    assert_eq!(sem.get_value(), 0);
}

#[test]
fn value_past_the_maximum_is_rejected() {
    assert!(matches!(
        Semaphore::new(SEM_VALUE_MAX + 1),
        Err(Error::InvalidArgument(_))
    ));
    let sem = Semaphore::new(SEM_VALUE_MAX).unwrap();
    assert!(matches!(sem.release(), Err(Error::TooManyReleases)));
    assert_eq!(sem.get_value(), SEM_VALUE_MAX);
}

#[test]
fn bounded_semaphore_rejects_a_release_past_its_initial_value() {
    let sem = BoundedSemaphore::new(2).unwrap();
    assert_eq!(sem.get_value(), 2);
    assert!(matches!(sem.release(), Err(Error::TooManyReleases)));
    assert_eq!(sem.get_value(), 2);
    assert!(sem.try_acquire().unwrap());
    assert!(sem.acquire_timeout(LONG).unwrap());
    assert!(!sem.try_acquire().unwrap());
    sem.release().unwrap();
    sem.release().unwrap();
    assert!(matches!(sem.release(), Err(Error::TooManyReleases)));
    assert_eq!(sem.get_value(), 2);

    let zero = BoundedSemaphore::new(0).unwrap();
    assert!(matches!(zero.release(), Err(Error::TooManyReleases)));
}

#[test]
fn values_are_shared_with_children() {
    for m in METHODS {
        let sem = Semaphore::new(3).unwrap();
        let bounded = BoundedSemaphore::new(2).unwrap();
        let empty = Semaphore::new(0).unwrap();
        let c = start(
            m,
            use_semaphores,
            (sem.clone(), bounded.clone(), empty.clone()),
        );
        // The child blocks on `empty` until this release.
        std::thread::sleep(Duration::from_millis(50));
        empty.release().unwrap();
        c.finish();
        assert_eq!(sem.get_value(), 4, "{m:?}");
        assert_eq!(bounded.get_value(), 1, "{m:?}");
        assert_eq!(empty.get_value(), 0, "{m:?}");
        assert!(matches!(bounded.release(), Ok(())));
        assert!(matches!(bounded.release(), Err(Error::TooManyReleases)));
    }
}

fn use_semaphores((sem, bounded, empty): (Semaphore, BoundedSemaphore, Semaphore)) {
    assert_eq!(sem.get_value(), 3);
    assert!(sem.try_acquire().unwrap());
    assert!(sem.acquire_timeout(LONG).unwrap());
    assert_eq!(sem.get_value(), 1);
    for _ in 0..3 {
        sem.release().unwrap();
    }
    assert_eq!(sem.get_value(), 4);
    assert_eq!(bounded.get_value(), 2);
    assert!(matches!(bounded.release(), Err(Error::TooManyReleases)));
    assert!(bounded.try_acquire().unwrap());
    assert!(
        empty.acquire_timeout(LONG).unwrap(),
        "the parent's release never came"
    );
}

/// Round trips of the ping-pong.
const ROUNDS: u64 = 1000;

#[test]
fn two_processes_ping_pong_through_two_semaphores() {
    for m in METHODS {
        let (ping, pong) = (Semaphore::new(0).unwrap(), Semaphore::new(0).unwrap());
        // The ball: the parent writes an odd number, the child answers with the next one.
        let ball = Counters::new(1);
        let c = start(m, ponger, (ping.clone(), pong.clone(), ball.clone()));
        for i in 0..ROUNDS {
            ball.at(0).store(2 * i + 1, Ordering::Relaxed);
            ping.release().unwrap();
            assert!(
                pong.acquire_timeout(LONG).unwrap(),
                "{m:?}: round {i}: no pong"
            );
            assert_eq!(ball.at(0).load(Ordering::Relaxed), 2 * i + 2, "{m:?}");
        }
        c.finish();
        assert_eq!(ping.get_value(), 0);
        assert_eq!(pong.get_value(), 0);
    }
}

fn ponger((ping, pong, ball): (Semaphore, Semaphore, Counters)) {
    for i in 0..ROUNDS {
        assert!(ping.acquire_timeout(LONG).unwrap(), "round {i}: no ping");
        let v = ball.at(0).load(Ordering::Relaxed);
        assert_eq!(v, 2 * i + 1, "round {i}: the ping and the ball disagree");
        ball.at(0).store(v + 1, Ordering::Relaxed);
        pong.release().unwrap();
    }
}

#[test]
fn a_blocked_acquire_sleeps_rather_than_spins() {
    let sem = Semaphore::new(0).unwrap();
    assert_sleeps("Semaphore::acquire_timeout", || {
        assert!(!sem.acquire_timeout(Duration::from_millis(300)).unwrap())
    });
}
