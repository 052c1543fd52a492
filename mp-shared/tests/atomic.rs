//! Integration tests for `SharedAtomic`: counters incremented by several processes under every
//! start method, and the other atomic operations. New (CPython has no atomic cells).

use mp_shared::SharedAtomic;
use mp_testkit::{start, METHODS};

fn count((c, n): (SharedAtomic<i64>, u32)) {
    for _ in 0..n {
        c.fetch_add(1);
    }
}

#[test]
fn counters_lose_no_increment_across_processes() {
    for m in METHODS {
        let c = SharedAtomic::new(0i64).unwrap();
        let a = start(m, count, (c.clone(), 20_000));
        let b = start(m, count, (c.clone(), 20_000));
        count((c.clone(), 20_000));
        a.finish();
        b.finish();
        assert_eq!(c.load(), 60_000, "{m}");
    }
}

/// Claims slots with compare-exchange; returns how many it got.
fn claim((slots, n): (Vec<SharedAtomic<u32>>, u32)) -> u32 {
    let me = std::process::id();
    let mut got = 0;
    for _ in 0..n {
        for s in &slots {
            if s.compare_exchange(0, me).is_ok() {
                got += 1;
            }
        }
    }
    got
}

#[test]
fn compare_exchange_hands_each_slot_to_one_process() {
    for m in METHODS {
        let slots: Vec<SharedAtomic<u32>> =
            (0..50).map(|_| SharedAtomic::new(0).unwrap()).collect();
        let a = start(m, claim, (slots.clone(), 3));
        let b = start(m, claim, (slots.clone(), 3));
        let total = a.finish() + b.finish();
        assert_eq!(total, 50, "{m}");
        assert!(slots.iter().all(|s| s.load() != 0), "{m}");
    }
}

#[test]
fn operations() {
    let a = SharedAtomic::new(5u8).unwrap();
    assert_eq!(a.fetch_sub(6), 5);
    assert_eq!(a.load(), 255); // wraps
    assert_eq!(a.swap(1), 255);
    assert_eq!(a.compare_exchange(2, 3), Err(1));
    assert_eq!(a.fetch_or(0b110), 1);
    assert_eq!(a.fetch_and(0b011), 0b111);
    assert_eq!(a.fetch_xor(0b001), 0b011);
    assert_eq!(a.fetch_max(9), 0b010);
    assert_eq!(a.fetch_min(4), 9);
    assert_eq!(a.fetch_update(|x| (x < 10).then_some(x * 2)), Ok(4));
    assert_eq!(a.fetch_update(|_| None), Err(8));
    a.store(0);
    assert_eq!(format!("{a:?}"), "SharedAtomic(0)");

    let b = SharedAtomic::new(usize::MAX).unwrap();
    b.fetch_add(1);
    assert_eq!(b.load(), 0);
    let c = SharedAtomic::new(-1i16).unwrap();
    assert_eq!(c.fetch_add(-1), -1);
    assert_eq!(c.load(), -2);
    let d = SharedAtomic::new(7isize).unwrap();
    let e = d.clone();
    e.fetch_add(1);
    assert_eq!(d.load(), 8);
}
