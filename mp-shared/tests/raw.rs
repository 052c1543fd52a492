//! Integration tests for `RawValue` and `RawArray`: visibility across processes under every
//! start method, range errors, type checks on arrival, and words that never tear.
//!
//! Ported in spirit from CPython's `Lib/test/_test_multiprocessing.py`: `_TestValue.
//! test_rawvalue` and `_TestArray.test_rawarray` (a child writes a raw object that the parent
//! reads). The type check and the tearing test are new.

use bytemuck::{Pod, Zeroable};
use mp_core::{pipe, Connection};
use mp_shared::{Error, RawArray, RawValue};
use mp_testkit::{recv, start, METHODS};

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
struct Point {
    x: f64,
    y: f64,
}

fn write_raw((v, a, p): (RawValue<i32>, RawArray<u8>, RawValue<Point>)) -> i32 {
    let seen = v.get();
    v.set(seen * 2);
    a.set_slice(.., b"child").unwrap();
    p.set(Point { x: -1.0, y: 2.0 });
    seen
}

#[test]
fn child_writes_raw_objects_under_every_start_method() {
    for m in METHODS {
        let v = RawValue::new(21).unwrap();
        let a = RawArray::from_slice(b"-----").unwrap();
        let pt = RawValue::new(Point { x: 0.0, y: 0.0 }).unwrap();
        let p = start(m, write_raw, (v.clone(), a.clone(), pt.clone()));
        assert_eq!(p.finish(), 21, "{m}");
        assert_eq!(v.get(), 42, "{m}");
        assert_eq!(a.to_vec(), b"child", "{m}");
        assert_eq!(pt.get(), Point { x: -1.0, y: 2.0 }, "{m}");
    }
}

#[test]
fn raw_array_ranges() {
    let a: RawArray<i16> = RawArray::zeroed(5).unwrap();
    assert_eq!(a.len(), 5);
    a.set(4, -4).unwrap();
    assert_eq!(a.get(4).unwrap(), -4);
    assert!(matches!(
        a.get(5),
        Err(Error::IndexOutOfRange { index: 5, len: 5 })
    ));
    assert!(a.set(5, 0).unwrap_err().is_out_of_range());
    assert!(a.get_slice(3..9).unwrap_err().is_out_of_range());
    assert!(matches!(
        a.set_slice(0..2, &[1, 2, 3]),
        Err(Error::LengthMismatch { .. })
    ));
    a.set_slice(0..2, &[1, 2]).unwrap();
    assert_eq!(a.get_slice(..3).unwrap(), [1, 2, 0]);
    assert_eq!(a.to_vec(), [1, 2, 0, 0, -4]);
    assert!(RawArray::<u64>::zeroed(0).unwrap().is_empty());
}

/// Tries to receive a `RawValue<f32>` (the parent sends a `RawValue<i32>`).
fn receive_wrong_type(mut conn: Connection) -> String {
    match conn.recv::<RawValue<f32>>() {
        Ok(_) => "accepted".into(),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_segment_of_another_type_is_refused_on_arrival() {
    for m in METHODS {
        let (mut ours, theirs) = pipe(true).unwrap();
        let p = start(m, receive_wrong_type, theirs);
        ours.send(&RawValue::new(1i32).unwrap()).unwrap();
        let msg = p.finish();
        assert!(msg.contains("is not a raw object of f32"), "{m}: {msg}");
    }
}

/// Receives a raw value and sends back an array handle; a synchronized value is not a raw one.
fn receive_sync_as_raw(mut conn: Connection) {
    let refused = conn.recv::<RawValue<i64>>().is_err();
    conn.send(&refused).unwrap();
}

#[test]
fn a_synchronized_value_is_not_a_raw_one() {
    let (mut ours, theirs) = pipe(true).unwrap();
    let m = mp_core::StartMethod::Spawn;
    let p = start(m, receive_sync_as_raw, theirs);
    ours.send(&mp_shared::Value::new(1i64).unwrap()).unwrap();
    assert!(recv::<bool>(&mut ours));
    p.finish();
}

/// Flips the value between two patterns many times.
fn flip((v, n): (RawValue<u64>, u32)) {
    for i in 0..n {
        v.set(if i % 2 == 0 { u64::MAX } else { 0 });
    }
}

#[test]
fn eight_byte_values_never_tear() {
    let v = RawValue::new(0u64).unwrap();
    let m = mp_core::StartMethod::Fork;
    let p = start(m, flip, (v.clone(), 200_000));
    for _ in 0..200_000 {
        let x = v.get();
        assert!(x == 0 || x == u64::MAX, "torn read: {x:#x}");
    }
    p.finish();
}
