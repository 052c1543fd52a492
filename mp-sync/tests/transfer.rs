//! Handle transfer of every `mp-sync` primitive: each can be sent over a duplex
//! `mp_core::pipe(true)` connection to a child (not only passed as an argument), under every start
//! method (fork, spawn, forkserver), and works there on the same shared state as the parent's
//! handle; serializing one outside a transfer is an error.
//!
//! Not ported from CPython (which pickles a lock's semaphore handle only while spawning a child,
//! and raises `RuntimeError` elsewhere); it checks DESIGN.md's handle transfer for `mp-sync`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use mp_core::{codec, pipe, Connection};
use mp_sync::{
    AnyLock, Barrier, BoundedSemaphore, Condition, Error, Event, Lock, RLock, Semaphore,
};
use mp_testkit::{start, LONG, METHODS};
use serde::{Deserialize, Serialize};

/// One of every primitive.
#[derive(Clone, Serialize, Deserialize)]
struct All {
    lock: Lock,
    rlock: RLock,
    sem: Semaphore,
    bounded: BoundedSemaphore,
    cond: Condition,
    event: Event,
    barrier: Barrier,
}

/// Runs of [`action`] in this process.
static ACTIONS: AtomicU64 = AtomicU64::new(0);

fn action() {
    ACTIONS.fetch_add(1, Ordering::SeqCst);
}

impl All {
    fn new() -> All {
        All {
            lock: Lock::new().unwrap(),
            rlock: RLock::new().unwrap(),
            sem: Semaphore::new(1).unwrap(),
            bounded: BoundedSemaphore::new(1).unwrap(),
            cond: Condition::new().unwrap(),
            event: Event::new().unwrap(),
            barrier: Barrier::new(2, Some(action)).unwrap(),
        }
    }
}

/// Takes the condition's lock, waiting at most [`LONG`].
fn enter(cond: &Condition) {
    let got = match cond.get_lock() {
        AnyLock::Lock(l) => l.acquire_timeout(LONG),
        AnyLock::RLock(l) => l.acquire_timeout(LONG),
    };
    assert!(got.expect("the previous owner died"), "no condition lock");
}

#[test]
fn every_primitive_sent_over_a_pipe_works_in_the_child() {
    for m in METHODS {
        let (mut conn, theirs) = pipe(true).unwrap();
        conn.set_timeout(Some(LONG));
        let c = start(m, remote, theirs);
        let all = All::new();
        conn.send(&all).unwrap();

        // Step 1: the child took the Lock and the RLock (twice), released two Semaphore units,
        // took the BoundedSemaphore's unit and set the Event.
        assert_eq!(conn.recv::<String>().unwrap(), "step 1", "{m:?}");
        assert!(
            all.lock.is_locked() && !all.lock.try_acquire().unwrap(),
            "{m:?}"
        );
        assert_eq!(all.rlock.count(), 2);
        assert!(!all.rlock.try_acquire().unwrap());
        assert!(matches!(all.rlock.release(), Err(Error::NotOwner)));
        assert_eq!(all.sem.get_value(), 3);
        assert_eq!(all.bounded.get_value(), 0);
        assert!(all.event.is_set());
        // A Lock may be released by another process: free the child's.
        all.lock.release().unwrap();
        all.bounded.release().unwrap();
        all.event.clear();
        conn.send("step 2").unwrap();

        // Step 2: the child waits on the Condition after saying so under its lock.
        assert_eq!(conn.recv::<String>().unwrap(), "waiting", "{m:?}");
        enter(&all.cond);
        all.cond.notify(1).unwrap();
        all.cond.release().unwrap();

        // Step 3: both pass the Barrier; the action runs once, in one of the two.
        let before = ACTIONS.load(Ordering::SeqCst);
        let mine = all.barrier.wait_timeout(LONG).expect("barrier");
        let here = ACTIONS.load(Ordering::SeqCst) - before;
        let (theirs, there): (u32, u64) = conn.recv().unwrap();
        let mut indexes = [mine, theirs];
        indexes.sort_unstable();
        assert_eq!(indexes, [0, 1], "{m:?}");
        assert_eq!(here + there, 1, "{m:?}: the action must run once");
        c.finish();
        assert!(!all.lock.is_locked());
        assert_eq!(all.rlock.count(), 0);
        assert_eq!(all.bounded.get_value(), 1);
        assert!(all.event.is_set(), "{m:?}: the child's last set");
    }
}

/// The child's half of `every_primitive_sent_over_a_pipe_works_in_the_child`.
fn remote(mut conn: Connection) {
    conn.set_timeout(Some(LONG));
    let all: All = conn.recv().expect("receiving the primitives");

    assert!(all.lock.acquire_timeout(LONG).unwrap());
    assert!(all.rlock.acquire_timeout(LONG).unwrap());
    assert!(all.rlock.try_acquire().unwrap());
    all.sem.release().unwrap();
    all.sem.release().unwrap();
    assert!(matches!(all.bounded.release(), Err(Error::TooManyReleases)));
    assert!(all.bounded.try_acquire().unwrap());
    assert!(!all.event.wait_timeout(Duration::from_millis(10)).unwrap());
    all.event.set();
    conn.send("step 1").unwrap();

    assert_eq!(conn.recv::<String>().unwrap(), "step 2");
    assert!(!all.lock.is_locked(), "the parent released our Lock");
    assert!(all.lock.try_acquire().unwrap());
    all.lock.release().unwrap();
    all.rlock.release().unwrap();
    all.rlock.release().unwrap();
    assert_eq!(all.bounded.get_value(), 1);
    assert!(!all.event.is_set(), "the parent cleared the Event");

    enter(&all.cond);
    conn.send("waiting").unwrap();
    assert!(
        all.cond.wait_timeout(LONG).unwrap(),
        "the parent's notify never came"
    );
    all.cond.release().unwrap();

    let before = ACTIONS.load(Ordering::SeqCst);
    let index = all.barrier.wait_timeout(LONG).expect("barrier");
    let ran = ACTIONS.load(Ordering::SeqCst) - before;
    all.event.set();
    conn.send(&(index, ran)).unwrap();
}

#[test]
fn a_primitive_received_over_a_pipe_can_be_sent_on_to_a_grandchild() {
    for m in METHODS {
        let (mut conn, theirs) = pipe(true).unwrap();
        conn.set_timeout(Some(LONG));
        let c = start(m, relay, theirs);
        let lock = Lock::new().unwrap();
        let event = Event::new().unwrap();
        conn.send(&(lock.clone(), event.clone())).unwrap();
        assert!(
            event.wait_timeout(LONG).unwrap(),
            "{m:?}: the grandchild never set the event"
        );
        assert!(lock.is_locked(), "{m:?}: the grandchild took the lock");
        lock.release().unwrap();
        c.finish();
    }
}

/// Receives a Lock and an Event, and passes them to a child of its own (by fork: a child of a
/// spawned or forkserver child), which takes the lock and sets the event.
fn relay(mut conn: Connection) {
    conn.set_timeout(Some(LONG));
    let args: (Lock, Event) = conn.recv().unwrap();
    start(mp_core::StartMethod::Fork, take_and_tell, args).finish();
}

fn take_and_tell((lock, event): (Lock, Event)) {
    assert!(lock.try_acquire().unwrap());
    event.set();
}

#[test]
fn serializing_a_primitive_outside_a_transfer_is_an_error() {
    let all = All::new();
    #[track_caller]
    fn refused<T: Serialize>(what: &str, value: &T) {
        match codec::encode(value) {
            Err(mp_core::Error::Handle(_)) => {}
            Err(e) => panic!("encoding a {what} outside a transfer: wrong error {e:?}"),
            Ok(_) => panic!("a {what} was encoded outside a transfer"),
        }
    }
    refused("Lock", &all.lock);
    refused("RLock", &all.rlock);
    refused("Semaphore", &all.sem);
    refused("BoundedSemaphore", &all.bounded);
    refused("Condition", &all.cond);
    refused("Event", &all.event);
    refused("Barrier", &all.barrier);
    refused("struct of primitives", &all);
    // The primitives still work afterwards.
    assert!(all.lock.try_acquire().unwrap());
    all.lock.release().unwrap();
}

#[test]
fn sending_over_a_one_way_pipe_is_an_error() {
    let (_r, mut w) = pipe(false).unwrap();
    let r = w.send(&Lock::new().unwrap());
    assert!(r.is_err(), "a handle went over a one-way pipe");
}

#[test]
fn a_handle_received_as_another_kind_is_refused() {
    let (mut a, mut b) = pipe(true).unwrap();
    b.set_timeout(Some(LONG));
    a.send(&Lock::new().unwrap()).unwrap();
    assert!(
        b.recv::<Event>().is_err(),
        "a Lock was received as an Event"
    );
    a.send(&Event::new().unwrap()).unwrap();
    assert!(
        b.recv::<Condition>().is_err(),
        "an Event was received as a Condition"
    );
    a.send(&Semaphore::new(1).unwrap()).unwrap();
    let sem: Semaphore = b.recv().expect("a Semaphore received as itself");
    assert_eq!(sem.get_value(), 1);
}

#[test]
fn handles_that_crossed_a_transfer_are_still_the_same_lock() {
    // Over a pipe, within this process: two handles of one lock, and the original.
    let (mut a, mut b) = pipe(true).unwrap();
    b.set_timeout(Some(LONG));
    let (lock, rlock) = (Lock::new().unwrap(), RLock::new().unwrap());
    a.send(&(lock.clone(), lock.clone(), rlock.clone()))
        .unwrap();
    let (x, y, r): (Lock, Lock, RLock) = b.recv().unwrap();
    assert!(x.same_as(&y), "two received handles of one Lock");
    assert!(x.same_as(&lock), "a received handle and the original Lock");
    assert!(
        r.same_as(&rlock),
        "a received handle and the original RLock"
    );
    assert!(!x.same_as(&Lock::new().unwrap()));
    // In children, under every start method.
    for m in METHODS {
        let other = Lock::new().unwrap();
        start(m, same_in_child, (lock.clone(), lock.clone(), other)).finish();
    }
}

fn same_in_child((a, b, other): (Lock, Lock, Lock)) {
    assert!(a.same_as(&b), "two handles of one Lock passed to a child");
    assert!(!a.same_as(&other), "handles of two Locks");
}
