//! The raw lock core and its one guard: every lock type (`Lock`, `RLock`, `AnyLock`,
//! `Condition`) implements `RawLock`, generic code works over any of them, across processes, and
//! a guard whose release fails (the lock was released behind its back) drops quietly.

use std::time::Duration;

use mp_core::StartMethod;
use mp_sync::{AnyLock, Condition, Error, Lock, LockGuard, RLock, RawLock};
use mp_testkit::{start, LONG, METHODS, SETTLE};

/// Generic code over the raw trait: take, check, release.
fn take_and_release<L: RawLock>(lock: &L) -> bool {
    let got = lock.acquire_until(mp_core::Deadline::after(LONG)).unwrap();
    let owned = lock.is_owned();
    lock.release().unwrap();
    got && owned && !lock.is_owned()
}

#[test]
fn every_lock_type_implements_the_raw_trait() {
    assert!(take_and_release(&Lock::new().unwrap()));
    assert!(take_and_release(&RLock::new().unwrap()));
    assert!(take_and_release(&AnyLock::new_lock().unwrap()));
    assert!(take_and_release(&AnyLock::new_rlock().unwrap()));
    assert!(take_and_release(&Condition::new().unwrap()));
}

/// A child holds the lock through a guard of the generic type for a while, then drops it.
fn hold_any((lock, hold): (AnyLock, Duration)) -> bool {
    let guard: LockGuard<'_, AnyLock> = lock.lock().unwrap();
    std::thread::sleep(hold);
    drop(guard);
    true
}

#[test]
fn a_guard_held_in_a_child_excludes_the_parent_until_it_drops() {
    for m in METHODS {
        for lock in [AnyLock::new_lock().unwrap(), AnyLock::new_rlock().unwrap()] {
            let child = start(m, hold_any, (lock.clone(), Duration::from_millis(500)));
            // The child takes it soon; wait until it is taken, then find it taken.
            let t0 = std::time::Instant::now();
            while lock.try_lock().unwrap().is_some() {
                assert!(t0.elapsed() < LONG, "{m}: the child never took the lock");
                std::thread::sleep(Duration::from_millis(5));
            }
            let guard = lock.lock_timeout(LONG).unwrap();
            assert!(
                guard.is_some(),
                "{m}: the lock was never released by the child's guard"
            );
            drop(guard);
            assert!(child.finish(), "{m}");
        }
    }
}

#[test]
fn a_lock_guard_released_behind_its_back_drops_quietly_and_the_lock_stays_usable() {
    let lock = Lock::new().unwrap();
    let guard = lock.lock().unwrap();
    lock.release().unwrap();
    // The guard's own release now finds the lock unlocked: the drop ignores it, no panic.
    drop(guard);
    assert!(!lock.is_locked());
    assert!(lock.try_acquire().unwrap(), "the lock is usable again");
    lock.release().unwrap();

    // `LockGuard::unlock` reports what a drop ignores.
    let guard = lock.lock().unwrap();
    lock.release().unwrap();
    assert!(matches!(LockGuard::unlock(guard), Err(Error::NotLocked)));
}

#[test]
fn an_rlock_guard_whose_release_fails_drops_quietly_and_the_rlock_stays_usable() {
    let rlock = RLock::new().unwrap();
    let guard = rlock.lock().unwrap();
    rlock.release().unwrap();
    assert_eq!(rlock.count(), 0);
    // The guard's release is now a release by a non-owner: NotOwner, ignored by the drop.
    drop(guard);
    assert_eq!(rlock.count(), 0);
    assert!(rlock.try_acquire().unwrap());
    rlock.release().unwrap();

    let guard = rlock.lock().unwrap();
    rlock.release().unwrap();
    assert!(matches!(LockGuard::unlock(guard), Err(Error::NotOwner)));
}

#[test]
fn a_lock_guard_may_move_to_another_thread_which_releases_it() {
    // A Lock belongs to no thread (Python's rule), so its guard is Send.
    let lock = Lock::new().unwrap();
    std::thread::scope(|s| {
        let guard = lock.lock().unwrap();
        s.spawn(move || drop(guard)).join().unwrap();
    });
    assert!(!lock.is_locked());
}

#[test]
fn try_and_timed_guards_of_a_taken_lock_come_back_empty() {
    let lock = AnyLock::new_lock().unwrap();
    let _held = lock.lock().unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            assert!(lock.try_lock().unwrap().is_none());
            assert!(lock.lock_timeout(SETTLE).unwrap().is_none());
            assert!(!lock.try_acquire().unwrap());
        });
    });
    let _ = StartMethod::Fork;
}

/// Holds the semaphore's only unit for `hold`, then gives it back.
fn hold_unit((sem, taken, hold): (mp_sync::Semaphore, mp_sync::Event, Duration)) {
    let guard = sem.lock().unwrap();
    taken.set();
    std::thread::sleep(hold);
    drop(guard);
}

#[test]
fn semaphore_guards_follow_the_timeout_contract_across_processes() {
    for m in METHODS {
        let sem = mp_sync::Semaphore::new(1).unwrap();
        let taken = mp_sync::Event::new().unwrap();
        let child = start(
            m,
            hold_unit,
            (sem.clone(), taken.clone(), Duration::from_millis(400)),
        );
        assert!(
            taken.wait_timeout(LONG).unwrap(),
            "{m}: the child never took the unit"
        );
        assert!(sem.try_lock().unwrap().is_none(), "{m}");
        assert!(
            sem.lock_timeout(Duration::from_millis(20))
                .unwrap()
                .is_none(),
            "{m}"
        );
        let guard = sem.lock_deadline(std::time::Instant::now() + LONG).unwrap();
        assert!(guard.is_some(), "{m}: the unit never came back");
        drop(guard);
        assert_eq!(sem.get_value(), 1, "{m}: the guard gave the unit back");
        child.finish();
        let bounded = mp_sync::BoundedSemaphore::new(1).unwrap();
        let g = bounded.try_lock().unwrap();
        assert!(g.is_some() && bounded.try_lock().unwrap().is_none());
    }
}
