//! Integration tests for `Array`: construction, indexing and slicing errors (never panics),
//! guards over `[T]`, visibility across processes under every start method, and a lock shared
//! with a `Value`.
//!
//! Ported in spirit from CPython's `Lib/test/_test_multiprocessing.py`, `_TestArray`
//! (`test_array`: a child negates every element, `test_array_from_size`, `test_rawarray`,
//! `test_getobj_getlock_obj`). The error cases are new: CPython raises `IndexError`; here they
//! are typed errors.

use mp_shared::{AnyLock, Array, Error, LockError, Value};
use mp_testkit::{start, METHODS};

/// The seed: `for i in range(len(a)): a[i] = -a[i]`, element by element.
fn negate(a: Array<i32>) -> usize {
    for i in 0..a.len() {
        let x = a.get(i).unwrap();
        a.set(i, -x).unwrap();
    }
    a.len()
}

/// The same under one guard.
fn negate_locked(a: Array<f64>) {
    for x in a.lock().unwrap().iter_mut() {
        *x = -*x;
    }
}

#[test]
fn child_negates_the_array_under_every_start_method() {
    for m in METHODS {
        let a = Array::from_slice(&(0..10).collect::<Vec<i32>>()).unwrap();
        let p = start(m, negate, a.clone());
        assert_eq!(p.finish(), 10, "{m}");
        assert_eq!(
            a.to_vec().unwrap(),
            [0, -1, -2, -3, -4, -5, -6, -7, -8, -9],
            "{m}"
        );

        let f = Array::from_slice(&[1.5f64, -2.0, 0.25]).unwrap();
        let p = start(m, negate_locked, f.clone());
        p.finish();
        assert_eq!(f.to_vec().unwrap(), [-1.5, 2.0, -0.25], "{m}");
    }
}

#[test]
fn zeroed_and_from_slice() {
    let a: Array<u8> = Array::zeroed(100).unwrap();
    assert_eq!(a.len(), 100);
    assert!(a.to_vec().unwrap().iter().all(|&b| b == 0));
    let e: Array<i64> = Array::zeroed(0).unwrap();
    assert!(e.is_empty());
    assert_eq!(e.to_vec().unwrap(), Vec::<i64>::new());
    assert!(e.lock().unwrap().is_empty());
    let s = Array::from_slice(&[1i16, 2, 3]).unwrap();
    assert_eq!(s.to_vec().unwrap(), [1, 2, 3]);
}

#[test]
fn out_of_range_is_an_error_not_a_panic() {
    let a = Array::from_slice(&[1u32, 2, 3]).unwrap();
    assert!(matches!(
        a.get(3),
        Err(Error::IndexOutOfRange { index: 3, len: 3 })
    ));
    assert!(matches!(
        a.set(usize::MAX, 0),
        Err(Error::IndexOutOfRange { .. })
    ));
    assert!(matches!(
        a.get_slice(2..5),
        Err(Error::RangeOutOfRange {
            start: 2,
            end: 5,
            len: 3
        })
    ));
    #[allow(clippy::reversed_empty_ranges)]
    let backwards = a.get_slice(2..1);
    assert!(backwards.unwrap_err().is_out_of_range());
    assert!(a.get_slice(..=3).unwrap_err().is_out_of_range());
    assert!(matches!(
        a.set_slice(0..2, &[1]),
        Err(Error::LengthMismatch {
            expected: 2,
            found: 1
        })
    ));
    let e: Array<u32> = Array::zeroed(0).unwrap();
    assert!(e.get(0).unwrap_err().is_out_of_range());
    // Nothing changed, and the lock is free.
    assert_eq!(a.to_vec().unwrap(), [1, 2, 3]);
}

#[test]
fn slices() {
    let a = Array::from_slice(&(0..10).collect::<Vec<i64>>()).unwrap();
    assert_eq!(a.get_slice(2..5).unwrap(), [2, 3, 4]);
    assert_eq!(a.get_slice(..2).unwrap(), [0, 1]);
    assert_eq!(a.get_slice(8..).unwrap(), [8, 9]);
    assert_eq!(a.get_slice(..).unwrap().len(), 10);
    assert_eq!(a.get_slice(4..4).unwrap(), Vec::<i64>::new());
    a.set_slice(2..5, &[-2, -3, -4]).unwrap();
    a.set_slice(9.., &[90]).unwrap();
    assert_eq!(a.to_vec().unwrap(), [0, 1, -2, -3, -4, 5, 6, 7, 8, 90]);
}

#[test]
fn guards_refuse_to_alias() {
    let a = Array::from_slice(&[1u8, 2]).unwrap();
    let mut g = a.lock().unwrap();
    g[0] = 10;
    assert!(matches!(a.clone().lock(), Err(LockError::Borrowed)));
    assert!(matches!(a.get(0), Err(Error::Borrowed)));
    assert!(matches!(a.to_vec(), Err(Error::Borrowed)));
    drop(g);
    assert_eq!(a.to_vec().unwrap(), [10, 2]);
}

/// Moves one unit from `a[0]` to `v`, under the lock they share, `n` times.
fn transfer((a, v, n): (Array<i32>, Value<i32>, u32)) {
    for _ in 0..n {
        let _held = a.get_lock().lock().unwrap();
        let mut ga = a.lock().unwrap();
        let mut gv = v.lock().unwrap();
        ga[0] -= 1;
        *gv += 1;
    }
}

#[test]
fn array_and_value_sharing_a_lock_across_processes() {
    for m in METHODS {
        let lock = AnyLock::new_rlock().unwrap();
        let a = Array::from_slice_with_lock(&[1000i32, 0], lock.clone()).unwrap();
        let v = Value::with_lock(0i32, lock.clone()).unwrap();
        let p1 = start(m, transfer, (a.clone(), v.clone(), 300));
        let p2 = start(m, transfer, (a.clone(), v.clone(), 300));
        // Sums stay consistent at every moment the lock is free.
        for _ in 0..20 {
            let _held = lock.lock().unwrap();
            assert_eq!(a.get(0).unwrap() + v.get().unwrap(), 1000, "{m}");
        }
        p1.finish();
        p2.finish();
        assert_eq!((a.get(0).unwrap(), v.get().unwrap()), (400, 600), "{m}");
    }
}

#[test]
fn plain_lock_arrays() {
    let a = Array::zeroed_with_lock(4, mp_sync::Lock::new().unwrap()).unwrap();
    a.set(1, 5u64).unwrap();
    assert_eq!(a.get(1).unwrap(), 5);
    let _held = a.get_lock().lock().unwrap();
    assert!(matches!(a.get(1), Err(Error::WouldDeadlock)));
}
