//! Integration tests for `Value`: element types, visibility across processes under every
//! start method, read-modify-write under the lock from two processes, shared locks, guards
//! that refuse to alias, and a lock whose owner died.
//!
//! Ported in spirit from CPython's `Lib/test/_test_multiprocessing.py`, `_TestValue`
//! (`test_value`: a child writes values of several typecodes that the parent then reads;
//! `test_rawvalue`; `test_getobj_getlock`: a given lock is the one `get_lock()` returns).
//! The contention, deadlock, aliasing and owner-death tests are new.

use std::time::Duration;

use bytemuck::{Pod, Zeroable};
use mp_core::{pipe, Connection, Process, StartMethod};
use mp_shared::{AnyLock, Error, LockError, Value};
use mp_sync::{Event, Lock, RLock};
use mp_testkit::{recv, start, LONG, METHODS};

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable, serde::Serialize, serde::Deserialize)]
struct Point {
    x: f64,
    y: f64,
}

type Values = (
    Value<i32>,
    Value<f64>,
    Value<u8>,
    Value<i16>,
    Value<i64>,
    Value<Point>,
);

/// Python's `_TestValue._test`: read what the parent set, write new values.
fn write_values((i, d, c, h, q, p): Values) -> (i32, f64, u8, i16, i64, Point) {
    let seen = (
        i.get().unwrap(),
        d.get().unwrap(),
        c.get().unwrap(),
        h.get().unwrap(),
        q.get().unwrap(),
        p.get().unwrap(),
    );
    i.set(-i32::MAX).unwrap();
    d.set(1.0 / 3.0).unwrap();
    c.set(b'x').unwrap();
    h.set(-7).unwrap();
    q.set(i64::MIN).unwrap();
    p.set(Point { x: 1.5, y: -2.5 }).unwrap();
    seen
}

#[test]
fn writes_cross_processes_for_every_type_and_start_method() {
    for m in METHODS {
        let values: Values = (
            Value::new(25).unwrap(),
            Value::new(1.25).unwrap(),
            Value::new(b'c').unwrap(),
            Value::new(300).unwrap(),
            Value::new(1 << 40).unwrap(),
            Value::new(Point { x: 3.0, y: 4.0 }).unwrap(),
        );
        let p = start(m, write_values, values.clone());
        let seen = p.finish();
        assert_eq!(
            seen,
            (25, 1.25, b'c', 300, 1 << 40, Point { x: 3.0, y: 4.0 }),
            "{m}"
        );
        let (i, d, c, h, q, pt) = values;
        assert_eq!(i.get().unwrap(), -i32::MAX, "{m}");
        assert_eq!(d.get().unwrap(), 1.0 / 3.0, "{m}");
        assert_eq!(c.get().unwrap(), b'x', "{m}");
        assert_eq!(h.get().unwrap(), -7, "{m}");
        assert_eq!(q.get().unwrap(), i64::MIN, "{m}");
        assert_eq!(pt.get().unwrap(), Point { x: 1.5, y: -2.5 }, "{m}");
    }
}

/// Waits for `go`, then returns what the value holds.
fn read_after((v, go): (Value<i64>, Event)) -> i64 {
    assert!(go.wait_timeout(Duration::from_secs(20)).unwrap());
    v.get().unwrap()
}

#[test]
fn parent_writes_after_start_are_seen_by_the_child() {
    for m in METHODS {
        let v = Value::new(1i64).unwrap();
        let go = Event::new().unwrap();
        let p = start(m, read_after, (v.clone(), go.clone()));
        v.set(42).unwrap();
        go.set();
        assert_eq!(p.finish(), 42, "{m}");
    }
}

/// `with v.get_lock(): v.value += 1`, `n` times, with the guard.
fn increment((v, n): (Value<i64>, u32)) {
    for _ in 0..n {
        *v.lock().unwrap() += 1;
    }
}

/// The same through Python's spelling: hold `get_lock()`, then `get` and `set` (re-entering
/// the `RLock`).
fn increment_python_style((v, n): (Value<i64>, u32)) {
    for _ in 0..n {
        let _held = v.get_lock().lock().unwrap();
        v.set(v.get().unwrap() + 1).unwrap();
    }
}

#[test]
fn two_processes_increment_without_losing_updates() {
    for m in METHODS {
        let v = Value::new(0i64).unwrap();
        let a = start(m, increment, (v.clone(), 2000));
        let b = start(m, increment_python_style, (v.clone(), 2000));
        a.finish();
        b.finish();
        assert_eq!(v.get().unwrap(), 4000, "{m}");
    }
}

#[test]
fn given_lock_is_the_one_get_lock_returns() {
    let lock = RLock::new().unwrap();
    let v = Value::with_lock(1i32, lock.clone()).unwrap();
    assert!(v.get_lock().same_as(&AnyLock::from(lock)));
    assert!(v.get_lock().is_recursive());
    assert!(Value::new(0u8).unwrap().get_lock().is_recursive());
}

#[test]
fn values_sharing_an_rlock_update_together() {
    let lock = AnyLock::new_rlock().unwrap();
    let a = Value::with_lock(10i32, lock.clone()).unwrap();
    let b = Value::with_lock(0i32, lock.clone()).unwrap();
    {
        let _held = lock.lock().unwrap();
        // A transfer: both under the one lock, with guards on both values at once.
        let mut ga = a.lock().unwrap();
        let mut gb = b.lock().unwrap();
        *ga -= 3;
        *gb += 3;
    }
    assert_eq!((a.get().unwrap(), b.get().unwrap()), (7, 3));
}

#[test]
fn held_non_recursive_lock_is_would_deadlock_not_a_hang() {
    let v = Value::with_lock(5i32, Lock::new().unwrap()).unwrap();
    let held = v.get_lock().lock().unwrap();
    assert!(matches!(v.get(), Err(Error::WouldDeadlock)));
    assert!(matches!(v.set(1), Err(Error::WouldDeadlock)));
    assert!(matches!(v.lock(), Err(LockError::WouldDeadlock)));
    drop(held);
    assert_eq!(v.get().unwrap(), 5);
    let g = v.lock().unwrap();
    assert!(matches!(v.try_lock(), Err(LockError::WouldDeadlock)));
    drop(g);
}

#[test]
fn a_second_guard_on_the_same_value_is_borrowed_not_aliased() {
    let v = Value::new(1i32).unwrap();
    let other_handle = v.clone();
    let mut g = v.lock().unwrap();
    *g = 2;
    assert!(matches!(v.lock(), Err(LockError::Borrowed)));
    assert!(matches!(other_handle.try_lock(), Err(LockError::Borrowed)));
    assert!(matches!(v.get(), Err(Error::Borrowed)));
    assert!(matches!(v.set(3), Err(Error::Borrowed)));
    assert_eq!(*g, 2);
    drop(g);
    assert_eq!(v.get().unwrap(), 2);
    // Nothing is left held by the refused attempts.
    assert!(v.get_lock().try_lock().unwrap().is_some());
}

#[test]
fn guard_in_another_thread_makes_lock_timeout_wait() {
    let v = Value::new(0u32).unwrap();
    let g = v.lock().unwrap();
    let v2 = v.clone();
    let t = std::thread::spawn(move || {
        assert!(v2
            .lock_timeout(Duration::from_millis(50))
            .unwrap()
            .is_none());
        assert!(v2.try_lock().unwrap().is_none());
        *v2.lock().unwrap() += 1;
    });
    std::thread::sleep(Duration::from_millis(200));
    drop(g);
    t.join().unwrap();
    assert_eq!(v.get().unwrap(), 1);
}

/// Takes the value's lock, writes half an update, and dies holding it.
fn die_holding((v, _unused): (Value<i64>, ())) {
    let mut g = v.lock().unwrap();
    *g = -1;
    std::mem::forget(g);
    mp_core::exit(3);
}

#[test]
fn lock_held_by_a_dead_process_is_taken_over_and_reported() {
    for m in METHODS {
        let v = Value::new(0i64).unwrap();
        let p = start(m, die_holding, (v.clone(), ()));
        assert_eq!(p.join_timeout(LONG).unwrap(), Some(3), "{m}");
        // The first access reports the death (and does nothing), the next one works.
        assert!(matches!(v.get(), Err(Error::OwnerDied)), "{m}");
        assert_eq!(v.get().unwrap(), -1, "{m}");
        let p = start(m, die_holding, (v.clone(), ()));
        assert_eq!(p.join_timeout(LONG).unwrap(), Some(3), "{m}");
        // A guard taken over keeps the lock, and sees the half-made update.
        let mut g = match v.lock() {
            Err(LockError::OwnerDied(died)) => died.into_inner(),
            other => panic!("{m}: expected OwnerDied, got {other:?}"),
        };
        assert_eq!(*g, -1);
        *g = 7;
        drop(g);
        assert_eq!(v.get().unwrap(), 7, "{m}");
    }
}

/// Receives a value over a connection and doubles it.
fn double_received(mut conn: Connection) {
    let v: Value<i64> = conn.recv().unwrap();
    *v.lock().unwrap() *= 2;
    conn.send(&()).unwrap();
}

#[test]
fn sent_over_a_duplex_connection() {
    for m in METHODS {
        let (mut ours, theirs) = pipe(true).unwrap();
        let p = start(m, double_received, theirs);
        let v = Value::new(21i64).unwrap();
        ours.send(&v).unwrap();
        let () = recv(&mut ours);
        assert_eq!(v.get().unwrap(), 42, "{m}");
        p.finish();
    }
}

#[test]
fn serializing_outside_a_transfer_is_an_error() {
    let v = Value::new(1i32).unwrap();
    let err = mp_core::codec::encode(&v).unwrap_err();
    assert!(matches!(err, mp_core::Error::Handle(_)), "{err}");
}

/// Closure children (fork only) see the same memory.
#[test]
fn closure_child_under_fork() {
    let v = Value::new(Point { x: 0.0, y: 0.0 }).unwrap();
    let v2 = v.clone();
    let mut p = Process::from_closure(move || {
        v2.lock().unwrap().y = 9.0;
    })
    .start_method(StartMethod::Fork);
    p.start().unwrap();
    assert_eq!(p.join_timeout(LONG).unwrap(), Some(0));
    assert_eq!(v.get().unwrap(), Point { x: 0.0, y: 9.0 });
}

#[test]
fn handles_are_send_and_sync() {
    fn send_sync<T: Send + Sync + Clone>() {}
    send_sync::<Value<Point>>();
    send_sync::<mp_shared::Array<i32>>();
    send_sync::<mp_shared::RawValue<f64>>();
    send_sync::<mp_shared::RawArray<u8>>();
    send_sync::<mp_shared::SharedAtomic<u64>>();
    send_sync::<AnyLock>();
    fn send_sync_only<T: Send + Sync>() {}
    send_sync_only::<mp_shared::SharedMemory>();
}
