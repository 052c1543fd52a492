//! Integration tests of [`mp_sync::Lock`], in one process and across real child processes under
//! every start method (fork, spawn, forkserver); the lock reaches each child as an argument.
//!
//! Ported in spirit from CPython's `Lib/test/_test_multiprocessing.py`: `_TestLock.test_lock`
//! (acquire, a non-blocking acquire of a held lock, releasing an unlocked lock is an error) and
//! `_TestLock.test_lock_context` (`with lock:` is the guard here); the timed acquire follows
//! `_TestSemaphore.test_timeout`. Holding the lock in a child, releasing it from another process
//! (Python's `Lock` is not owned) and mutual exclusion over a counter in shared memory go beyond
//! that suite.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use mp_sync::{Error, Event, Lock};
use mp_testkit::{assert_sleeps, assert_took_about, start, within, Counters, LONG, METHODS};

#[test]
fn acquire_try_acquire_and_release_in_one_process() {
    let lock = Lock::new().unwrap();
    assert!(!lock.is_locked());
    let l = lock.clone();
    within("Lock::acquire of a free lock", move || l.acquire()).unwrap();
    assert!(lock.is_locked());
    // Not recursive: even its holder cannot take it again.
    assert!(!lock.try_acquire().unwrap());
    assert!(!lock.acquire_timeout(Duration::ZERO).unwrap());
    lock.release().unwrap();
    assert!(!lock.is_locked());
    assert!(lock.try_acquire().unwrap());
    let clone = lock.clone();
    assert!(clone.same_as(&lock));
    assert!(clone.is_locked(), "a clone is the same lock");
    assert!(!clone.try_acquire().unwrap());
    clone.release().unwrap();
    assert!(!lock.same_as(&Lock::new().unwrap()));
}

#[test]
fn release_of_an_unlocked_lock_is_not_locked() {
    let lock = Lock::new().unwrap();
    assert!(matches!(lock.release(), Err(Error::NotLocked)));
    assert!(lock.acquire_timeout(LONG).unwrap());
    lock.release().unwrap();
    assert!(matches!(lock.release(), Err(Error::NotLocked)));
    for m in METHODS {
        let c = start(m, release_unlocked, lock.clone());
        c.finish();
    }
    assert!(!lock.is_locked());
}

fn release_unlocked(lock: Lock) {
    assert!(
        matches!(lock.release(), Err(Error::NotLocked)),
        "release of an unlocked lock in a child must be NotLocked"
    );
}

#[test]
fn acquire_timeout_gives_up_after_the_timeout() {
    let lock = Lock::new().unwrap();
    assert!(lock.try_acquire().unwrap());
    for t in [0, 50, 250].map(Duration::from_millis) {
        let t0 = Instant::now();
        assert!(!lock.acquire_timeout(t).unwrap());
        assert_took_about(t0.elapsed(), t, "Lock::acquire_timeout");
        let t0 = Instant::now();
        assert!(lock.lock_timeout(t).unwrap().is_none());
        assert_took_about(t0.elapsed(), t, "Lock::lock_timeout");
        let t0 = Instant::now();
        assert!(!lock.acquire_deadline(t0 + t).unwrap());
        assert_took_about(t0.elapsed(), t, "Lock::acquire_deadline");
    }
    lock.release().unwrap();
}

#[test]
fn try_acquire_is_false_while_a_child_holds_it() {
    let t = Duration::from_millis(200);
    for m in METHODS {
        let lock = Lock::new().unwrap();
        let (held, go) = (Event::new().unwrap(), Event::new().unwrap());
        let c = start(m, hold_until, (lock.clone(), held.clone(), go.clone()));
        assert!(
            held.wait_timeout(LONG).unwrap(),
            "{m:?}: the child never took the lock"
        );
        assert!(lock.is_locked());
        assert!(
            !lock.is_owned(),
            "{m:?}: the child holds it, not this thread"
        );
        assert!(
            !lock.try_acquire().unwrap(),
            "{m:?}: try_acquire of a held lock"
        );
        assert!(lock.try_lock().unwrap().is_none());
        let t0 = Instant::now();
        assert!(!lock.acquire_timeout(t).unwrap(), "{m:?}: acquire_timeout");
        assert_took_about(t0.elapsed(), t, "Lock::acquire_timeout against a child");
        go.set();
        // The child drops its guard and stays alive until we have taken the lock.
        assert!(
            lock.acquire_timeout(LONG).unwrap(),
            "{m:?}: guard not released"
        );
        assert!(lock.is_owned());
        lock.release().unwrap();
        c.finish();
        assert!(!lock.is_locked());
    }
}

/// Holds `lock` through its guard until `go`, then drops the guard.
fn hold_until((lock, held, go): (Lock, Event, Event)) {
    let guard = lock
        .lock_timeout(LONG)
        .unwrap()
        .expect("lock_timeout in the child");
    assert!(lock.is_owned());
    held.set();
    assert!(go.wait_timeout(LONG).unwrap(), "go never came");
    drop(guard);
    assert!(!lock.is_owned());
}

#[test]
fn release_from_another_process_is_allowed() {
    for m in METHODS {
        let lock = Lock::new().unwrap();
        assert!(lock.acquire_timeout(LONG).unwrap());
        start(m, release_held, lock.clone()).finish();
        assert!(
            !lock.is_locked(),
            "{m:?}: the child's release did not free it"
        );
        assert!(lock.try_acquire().unwrap());
        lock.release().unwrap();
    }
}

fn release_held(lock: Lock) {
    assert!(lock.is_locked(), "the parent holds the lock");
    lock.release().expect("release from another process");
    assert!(matches!(lock.release(), Err(Error::NotLocked)));
}

#[test]
fn guard_releases_on_drop() {
    let lock = Lock::new().unwrap();
    {
        let l = lock.clone();
        within("Lock::lock of a free lock", move || {
            let guard = l.lock().unwrap();
            assert!(l.is_locked());
            assert!(l.try_lock().unwrap().is_none());
            drop(guard);
            assert!(!l.is_locked());
        });
    }
    let guard = lock.try_lock().unwrap().expect("try_lock of a free lock");
    // Another thread blocked on the lock gets it once the guard is dropped.
    let l = lock.clone();
    let waiter = std::thread::spawn(move || {
        let got = l.acquire_timeout(LONG).unwrap();
        if got {
            l.release().unwrap();
        }
        got
    });
    std::thread::sleep(Duration::from_millis(50));
    drop(guard);
    assert!(
        waiter.join().unwrap(),
        "the waiting thread never got the lock"
    );
    let guard = lock.lock_timeout(LONG).unwrap().expect("lock_timeout");
    drop(guard);
    assert!(!lock.is_locked());
}

/// How many children increment the counter, and how many times each.
const WORKERS: usize = 3;
const ROUNDS: u64 = 1000;

#[test]
fn processes_increment_a_shared_counter_under_the_lock() {
    for m in METHODS {
        let lock = Lock::new().unwrap();
        let counter = Counters::new(1);
        let children: Vec<_> = (0..WORKERS)
            .map(|_| start(m, increment, (lock.clone(), counter.clone())))
            .collect();
        for c in &children {
            c.finish();
        }
        assert_eq!(
            counter.get(0),
            WORKERS as u64 * ROUNDS,
            "{m:?}: lost updates"
        );
        assert!(!lock.is_locked());
    }
}

/// Increments the counter `ROUNDS` times with a separate load and store, so that only the lock
/// keeps updates from being lost; yields inside the critical section now and then to invite
/// interleaving.
fn increment((lock, counter): (Lock, Counters)) {
    let c = counter.at(0);
    for i in 0..ROUNDS {
        let _guard = lock.lock_timeout(LONG).unwrap().expect("lock_timeout");
        let v = c.load(Ordering::Relaxed);
        if i % 64 == 0 {
            std::thread::yield_now();
        }
        c.store(v + 1, Ordering::Relaxed);
    }
}

#[test]
fn a_blocked_acquire_sleeps_rather_than_spins() {
    let lock = Lock::new().unwrap();
    assert!(lock.try_acquire().unwrap());
    let l = lock.clone();
    // Another thread, so that the Lock is held by someone else than the waiter.
    std::thread::spawn(move || {
        assert_sleeps("Lock::acquire_timeout", || {
            assert!(!l.acquire_timeout(Duration::from_millis(300)).unwrap())
        })
    })
    .join()
    .unwrap();
    lock.release().unwrap();
}

/// Rounds of [`a_release_racing_a_waiter_going_to_sleep_wakes_it`] per start method.
const RACE_ROUNDS: u32 = 400;
/// A wait this long is the sign of a lost wake-up: the sleeper woke by its own first check
/// (10 ms), not by the release.
const LOST_WAKEUP: Duration = Duration::from_millis(8);

/// Busy for `us` microseconds (not a sleep: the other side must find the lock held).
fn busy_us(us: u64) {
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_micros(us) {
        std::hint::spin_loop();
    }
}

/// The delay before round `i`'s release, 0-127 µs: it sweeps the moment of the release across
/// the waiter's spin (`BACKOFF_SPIN`, 60 µs), its fence and its futex sleep.
fn race_delay(i: u32) -> u64 {
    u64::from(i.wrapping_mul(37) % 128)
}

/// The child side: takes `ping` (released by the parent), waits, gives back `pong`; returns
/// how many of its acquires looked like a lost wake-up.
fn race_partner((ping, pong): (Lock, Lock)) -> u32 {
    let mut slow = 0;
    for i in 0..RACE_ROUNDS {
        let t0 = Instant::now();
        assert!(ping.acquire_timeout(LONG).unwrap(), "ping never came");
        if t0.elapsed() >= LOST_WAKEUP {
            slow += 1;
        }
        busy_us(race_delay(i));
        pong.release().unwrap();
    }
    slow
}

/// A release is a plain store of 0 when nobody sleeps on the lock, so a waiter that goes to
/// sleep just as the holder releases must still be woken (it is counted among the sleepers and
/// fences before it sleeps). Two processes hand two locks back and forth, each release coming
/// 0-63 µs after the other side began to wait, so that it meets the waiter spinning, fencing or
/// asleep; a lost wake-up would show as a wait of 10 ms (the sleeper's own first check), and
/// an acquire that never completes fails the test. (It fails, 797 of 800 waits slow, with a
/// release that stores 0 without looking at the sleepers. The nanoseconds-wide race between a
/// release's store and a waiter's count is closed by the fence, as argued in `raw.rs`.)
#[test]
fn a_release_racing_a_waiter_going_to_sleep_wakes_it() {
    for m in METHODS {
        let (ping, pong) = (Lock::new().unwrap(), Lock::new().unwrap());
        assert!(ping.try_acquire().unwrap());
        assert!(pong.try_acquire().unwrap());
        let child = start(m, race_partner, (ping.clone(), pong.clone()));
        let mut slow = 0;
        for i in 0..RACE_ROUNDS {
            busy_us(race_delay(i.wrapping_add(11)));
            ping.release().unwrap();
            let t0 = Instant::now();
            assert!(
                pong.acquire_timeout(LONG).unwrap(),
                "{m:?}: pong never came"
            );
            if t0.elapsed() >= LOST_WAKEUP {
                slow += 1;
            }
        }
        let child_slow = child.finish();
        // A busy host may delay a few rounds that long; lost wake-ups would delay most.
        assert!(
            slow + child_slow <= RACE_ROUNDS / 20,
            "{m:?}: {slow} + {child_slow} of {} waits looked like lost wake-ups",
            2 * RACE_ROUNDS
        );
    }
}
