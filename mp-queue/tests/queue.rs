//! `Queue<T>` between real processes, under every start method (fork, spawn, forkserver):
//! bounds and the `Full`/`Empty` errors with their timing, exact `qsize`, FIFO order per
//! producer, items of any size, `close`, and items that fail to encode or decode (issue 5,
//! items 1 to 3).
//!
//! Ported in spirit from CPython's `Lib/test/_test_multiprocessing.py`, class `_TestQueue`:
//! `test_put` and `test_get` (the `qsize`/`empty`/`full` sequence, `put_nowait`/`get_nowait`,
//! and the timing of timed `put`/`get` that give up), `test_fork` (items put by a child; here
//! also a bounded queue that blocks its producer child), `test_qsize`, `test_timeout`,
//! `test_queue_feeder_donot_stop_onexc` and `test_queue_feeder_on_queue_feeder_error` (an
//! object that fails to pickle; here a value whose `Serialize` fails, and `qsize` unchanged
//! after it), `test_closed_queue_put_get_exceptions` and `test_closed_queue_empty_exceptions`
//! (`close`, `join_thread`). New here: 1 MiB and 64 MiB items and mixed sizes, the byte-bounded
//! data area (`with_sizes`, `TooLarge`), a wrong-type `get`, an item holding a handle, and
//! regression tests for `put_nowait` under contention, bursts after the ring wrapped, and a
//! closed handle passed to a child.

use std::time::{Duration, Instant};

use mp_core::codec::Bytes;
use mp_core::{pipe, Connection, StartMethod};
use mp_queue::{Error, Queue, QueueSizes};
use mp_testkit::{
    assert_err, assert_prompt, assert_took_about, big_item, brief, eventually, is_big_item,
    pattern, start, Rng, LONG, METHODS, SETTLE,
};
use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

// ----- children (plain `fn` items, serde arguments) -----

/// Puts `0..n`, then returns.
fn put_range((q, n): (Queue<u32>, u32)) {
    for i in 0..n {
        q.put_timeout(i, LONG).expect("child put_timeout");
    }
}

/// Gets `n` items and returns them in the order they came.
fn get_n((q, n): (Queue<u32>, u32)) -> Vec<u32> {
    (0..n)
        .map(|_| q.get_timeout(LONG).expect("child get_timeout"))
        .collect()
}

/// Puts `0..n` with `put_nowait`, counting the `Full` errors.
fn put_nowait_range((q, n): (Queue<u32>, u32)) -> u32 {
    let mut full = 0;
    for i in 0..n {
        loop {
            match q.put_nowait(i) {
                Ok(()) => break,
                Err(Error::Full) => full += 1,
                Err(e) => panic!("put_nowait: {e}"),
            }
        }
    }
    full
}

/// On an empty queue: `get_nowait` and `get_timeout` give `Empty`; returns how long the
/// timed one took.
fn get_from_empty((q, timeout): (Queue<u32>, Duration)) -> Duration {
    assert!(matches!(q.get_nowait(), Err(Error::Empty)), "get_nowait");
    let t = Instant::now();
    let r = q.get_timeout(timeout);
    let took = t.elapsed();
    assert!(matches!(r, Err(Error::Empty)), "get_timeout gave {r:?}");
    took
}

/// On a full queue: `put_nowait` and `put_timeout` give `Full`; returns how long the timed
/// one took.
fn put_into_full((q, timeout): (Queue<u32>, Duration)) -> Duration {
    assert!(q.full(), "the queue should be full");
    assert!(matches!(q.put_nowait(99), Err(Error::Full)), "put_nowait");
    let t = Instant::now();
    let r = q.put_timeout(99, timeout);
    let took = t.elapsed();
    assert!(matches!(r, Err(Error::Full)), "put_timeout gave {r:?}");
    took
}

/// Puts a `len`-byte pattern item made from `seed`.
fn put_pattern((q, seed, len): (Queue<Bytes>, u64, usize)) {
    q.put_timeout(pattern(seed, len), LONG)
        .expect("child put_timeout");
}

/// Gets one item and says whether it is the `len`-byte pattern of `seed`.
fn get_pattern((q, seed, len): (Queue<Bytes>, u64, usize)) -> bool {
    let item = q.get_timeout(LONG).expect("child get_timeout");
    item == pattern(seed, len)
}

/// Puts one big item (see `mp_testkit::big_item`).
fn put_big((q, seed, len, fill): (Queue<Bytes>, u64, usize, u8)) {
    let item = big_item(seed, len, fill);
    q.put_timeout(item, LONG).expect("child put_timeout");
}

/// Gets one item and says whether it is `big_item(seed, len, fill)`.
fn get_big((q, seed, len, fill): (Queue<Bytes>, u64, usize, u8)) -> bool {
    let item = q.get_timeout(LONG).expect("child get_timeout");
    is_big_item(&item, seed, len, fill)
}

/// The sizes of the mixed-size test: `n` sizes in `0..=max`, with 0 and `max` among them.
fn mixed_sizes(seed: u64, n: usize, max: usize) -> Vec<usize> {
    let mut rng = Rng::new(seed);
    let mut sizes: Vec<usize> = (0..n).map(|_| rng.below(max as u64 + 1) as usize).collect();
    sizes[0] = 0;
    sizes[n / 2] = max;
    sizes[n - 1] = 0;
    sizes
}

/// Puts items of the sizes `mixed_sizes(seed, n, max)`, each `(index, pattern)`.
fn put_mixed((q, seed, n, max): (Queue<(u32, Bytes)>, u64, usize, usize)) {
    for (i, len) in mixed_sizes(seed, n, max).into_iter().enumerate() {
        q.put_timeout((i as u32, pattern(seed ^ i as u64, len)), LONG)
            .expect("child put_timeout");
    }
}

/// Puts `0..n`, closes its handle, checks that its handle is closed, and returns.
fn put_then_close((q, n): (Queue<u32>, u32)) {
    for i in 0..n {
        q.put_timeout(i, LONG).expect("child put_timeout");
    }
    q.close();
    assert!(matches!(q.put(n), Err(Error::Closed)), "put after close");
    assert!(
        matches!(q.get_nowait(), Err(Error::Closed)),
        "get_nowait after close"
    );
    q.join_thread();
}

/// Receives a `Queue<String>` over `conn` as a `Queue<u64>`: a wrong-type `get` gives
/// `Codec`; then puts a `u64`. Returns what it saw.
fn get_as_wrong_type(mut conn: Connection) -> String {
    let q: Queue<u64> = conn.recv().expect("recv the queue");
    let first = q.get_timeout(LONG);
    let after = q.qsize();
    q.put_timeout(42u64, LONG).expect("put u64");
    format!("{}; qsize after: {after}", brief(&first))
}

// ----- 1. bounds, Full and Empty, qsize -----

#[test]
fn unbounded_put_never_blocks_without_a_consumer() {
    let q: Queue<u32> = Queue::new().unwrap();
    assert_eq!(q.maxsize(), 0);
    for i in 0..10_000 {
        q.put_nowait(i)
            .unwrap_or_else(|e| panic!("put_nowait #{i} on an unbounded queue: {e}"));
    }
    assert_eq!(q.qsize(), 10_000);
    assert!(!q.full(), "an unbounded queue is never full");
    assert!(!q.empty());
    for i in 0..10_000 {
        assert_eq!(q.get_nowait().unwrap(), i);
    }
    assert!(q.empty());
}

#[test]
fn qsize_empty_and_full_count_exactly() {
    let q: Queue<String> = Queue::with_maxsize(2).unwrap();
    assert_eq!(q.maxsize(), 2);
    let mut seen = vec![q.qsize()];
    assert!(q.empty() && !q.full());
    q.put("a".to_string()).unwrap();
    seen.push(q.qsize());
    assert!(!q.empty() && !q.full());
    q.put_nowait("b".to_string()).unwrap();
    seen.push(q.qsize());
    assert!(!q.empty() && q.full());
    assert_eq!(q.get_nowait().unwrap(), "a");
    seen.push(q.qsize());
    assert!(!q.full());
    assert_eq!(q.get_timeout(LONG).unwrap(), "b");
    seen.push(q.qsize());
    assert!(q.empty() && !q.full());
    assert_eq!(seen, [0, 1, 2, 1, 0]);
}

#[test]
fn qsize_is_exact_across_processes_with_no_feeder_delay() {
    for m in METHODS {
        let q: Queue<u32> = Queue::new().unwrap();
        start(m, put_range, (q.clone(), 2)).finish();
        // No feeder thread: what a child put is counted as soon as its put returned.
        assert_eq!(q.qsize(), 2, "{m:?}");
        assert!(!q.empty(), "{m:?}");
        let got = start(m, get_n, (q.clone(), 1)).finish();
        assert_eq!(got, [0], "{m:?}");
        assert_eq!(q.qsize(), 1, "{m:?}");
        assert_eq!(q.get_nowait().unwrap(), 1, "{m:?}");
        assert_eq!(q.qsize(), 0, "{m:?}");
        assert!(q.empty(), "{m:?}");
    }
}

#[test]
fn a_full_bounded_queue_refuses_put_nowait_at_once_and_put_timeout_after_the_timeout() {
    let q: Queue<u32> = Queue::with_maxsize(3).unwrap();
    for i in 0..3 {
        q.put_nowait(i).unwrap();
    }
    assert!(q.full());
    let t = Instant::now();
    assert_err!(q.put_nowait(3), Error::Full, "put_nowait on a full queue");
    assert_prompt(t.elapsed(), "put_nowait on a full queue");
    assert!(q.put_nowait(3).unwrap_err().is_full());
    for timeout in [Duration::from_millis(50), Duration::from_millis(300)] {
        let t = Instant::now();
        assert_err!(q.put_timeout(3, timeout), Error::Full, "put_timeout");
        assert_took_about(t.elapsed(), timeout, "put_timeout on a full queue");
    }
    let t = Instant::now();
    assert_err!(
        q.put_deadline(3, Instant::now() + Duration::from_millis(100)),
        Error::Full,
        "put_deadline"
    );
    assert_took_about(t.elapsed(), Duration::from_millis(100), "put_deadline");
    assert_eq!(q.qsize(), 3, "refused puts must not change the queue");
    assert_eq!(q.get_nowait().unwrap(), 0);
    q.put_nowait(3).unwrap();
    assert_eq!(
        (0..3).map(|_| q.get_nowait().unwrap()).collect::<Vec<_>>(),
        [1, 2, 3]
    );
}

#[test]
fn an_empty_queue_refuses_get_nowait_at_once_and_get_timeout_after_the_timeout() {
    let q: Queue<u32> = Queue::new().unwrap();
    let t = Instant::now();
    assert_err!(q.get_nowait(), Error::Empty, "get_nowait on an empty queue");
    assert_prompt(t.elapsed(), "get_nowait on an empty queue");
    assert!(q.get_nowait().unwrap_err().is_empty());
    for timeout in [
        Duration::ZERO,
        Duration::from_millis(50),
        Duration::from_millis(300),
    ] {
        let t = Instant::now();
        assert_err!(q.get_timeout(timeout), Error::Empty, "get_timeout");
        assert_took_about(t.elapsed(), timeout, "get_timeout on an empty queue");
    }
    let t = Instant::now();
    assert_err!(
        q.get_deadline(Instant::now() + Duration::from_millis(100)),
        Error::Empty,
        "get_deadline"
    );
    assert_took_about(t.elapsed(), Duration::from_millis(100), "get_deadline");
    q.put(7).unwrap();
    assert_eq!(q.get_timeout(Duration::ZERO).unwrap(), 7);
}

#[test]
fn full_and_empty_errors_in_children() {
    let timeout = Duration::from_millis(200);
    for m in METHODS {
        let q: Queue<u32> = Queue::new().unwrap();
        let took = start(m, get_from_empty, (q.clone(), timeout)).finish();
        assert_took_about(took, timeout, &format!("{m:?}: get_timeout in a child"));

        let q: Queue<u32> = Queue::with_maxsize(2).unwrap();
        q.put(1).unwrap();
        q.put(2).unwrap();
        let took = start(m, put_into_full, (q.clone(), timeout)).finish();
        assert_took_about(took, timeout, &format!("{m:?}: put_timeout in a child"));
        assert_eq!(q.qsize(), 2, "{m:?}");
        assert_eq!(q.get_nowait().unwrap(), 1);
        assert_eq!(q.get_nowait().unwrap(), 2);
    }
}

/// Regression test: `put_nowait` must report `Full` only when there is no room, not when
/// another producer happens to hold the queue's put lock (CPython's `put(block=False)` fails
/// only when its slot semaphore is exhausted).
#[test]
fn put_nowait_on_an_unbounded_queue_is_never_full_while_other_producers_put() {
    let n = 20_000;
    let q: Queue<u32> = Queue::new().unwrap();
    let producers: Vec<_> = (0..3)
        .map(|_| start(StartMethod::Fork, put_nowait_range, (q.clone(), n)))
        .collect();
    let spurious: Vec<u32> = producers.iter().map(|p| p.finish()).collect();
    assert_eq!(q.qsize(), 3 * n as usize);
    assert_eq!(
        spurious,
        [0, 0, 0],
        "put_nowait on an unbounded queue gave Error::Full while other producers were putting"
    );
}

/// Regression test: an unbounded queue holds up to its data area's capacity (1 GiB by
/// default) whatever went through it before. Once the ring has wrapped back to offset 0 (it
/// does after the first 4 MiB, its resident size), the rest of the area lies behind a skip
/// record, and a burst larger than the space before the consumers' position must not make
/// `put_nowait` report `Full` (or `put` block with no consumer).
#[test]
fn an_unbounded_queue_takes_a_burst_after_its_ring_wrapped() {
    let q: Queue<Bytes> = Queue::new().unwrap();
    // Steady traffic: 5 MiB through the queue, each item consumed at once.
    for i in 0..5_000u64 {
        q.put(pattern(i, 1024)).unwrap();
        assert_eq!(q.get_nowait().unwrap().0.len(), 1024);
    }
    // Then a 16 MiB burst with no consumer.
    let burst = 16 * 1024;
    for i in 0..burst {
        let r = q.put_nowait(pattern(i, 1024));
        assert!(
            r.is_ok(),
            "put_nowait #{i} of a 16 MiB burst into an unbounded 1 GiB queue holding {} items \
             ({} KiB): {}",
            q.qsize(),
            q.qsize(),
            brief(&r)
        );
    }
    for i in 0..burst {
        assert!(q.get_nowait().unwrap() == pattern(i, 1024), "item {i}");
    }
    assert!(q.empty());
}

/// Regression test: the same, with a 64 MiB item: after one 64 MiB item went through the
/// queue and one small item waits in it, another 64 MiB item must fit (1 GiB area).
#[test]
fn a_64_mib_item_fits_behind_a_small_one_after_a_64_mib_item_went_through() {
    let len = 64 << 20;
    let q: Queue<Bytes> = Queue::new().unwrap();
    q.put(big_item(1, len, 0x11)).unwrap();
    assert!(is_big_item(&q.get_nowait().unwrap(), 1, len, 0x11));
    q.put(Bytes(vec![1, 2, 3])).unwrap();
    let r = q.put_timeout(big_item(2, len, 0x22), Duration::from_secs(2));
    assert!(
        r.is_ok(),
        "a 64 MiB put into a 1 GiB queue holding one 3-byte item: {}",
        brief(&r)
    );
    assert_eq!(q.get_nowait().unwrap().0, [1, 2, 3]);
    assert!(is_big_item(&q.get_nowait().unwrap(), 2, len, 0x22));
}

// ----- FIFO order, blocking producers -----

#[test]
fn items_of_a_producer_arrive_in_order_both_ways() {
    for m in METHODS {
        let q: Queue<u32> = Queue::new().unwrap();
        let child = start(m, put_range, (q.clone(), 5_000));
        for i in 0..5_000 {
            assert_eq!(q.get_timeout(LONG).unwrap(), i, "{m:?}: child to parent");
        }
        child.finish();

        let child = start(m, get_n, (q.clone(), 5_000));
        for i in 0..5_000 {
            q.put(i).unwrap();
        }
        let got = child.finish();
        assert!(
            got.iter().copied().eq(0..5_000),
            "{m:?}: parent to child, out of order"
        );
        assert!(q.empty());
    }
}

#[test]
fn a_bounded_queue_blocks_a_producer_child_until_the_parent_consumes() {
    for m in METHODS {
        let q: Queue<u32> = Queue::with_maxsize(3).unwrap();
        let child = start(m, put_range, (q.clone(), 20));
        eventually("the child filling the queue", || q.qsize() == 3);
        std::thread::sleep(SETTLE);
        assert!(child.running(), "{m:?}: the producer should be blocked");
        assert_eq!(q.qsize(), 3, "{m:?}: a bounded queue went past its maxsize");
        assert!(q.full());
        for i in 0..20 {
            assert_eq!(q.get_timeout(LONG).unwrap(), i, "{m:?}");
            assert!(q.qsize() <= 3, "{m:?}: qsize {} > maxsize", q.qsize());
        }
        assert_eq!(child.join(), 0, "{m:?}");
        assert!(q.empty());
    }
}

// ----- items of any size -----

#[test]
fn a_1_mib_item_crosses_into_and_out_of_a_child() {
    let len = 1 << 20;
    for m in METHODS {
        let q: Queue<Bytes> = Queue::new().unwrap();
        start(m, put_pattern, (q.clone(), 11, len)).finish();
        let got = q.get_timeout(LONG).unwrap();
        assert!(got == pattern(11, len), "{m:?}: 1 MiB from a child differs");

        q.put(pattern(12, len)).unwrap();
        assert!(
            start(m, get_pattern, (q.clone(), 12, len)).finish(),
            "{m:?}: 1 MiB to a child differs"
        );
        assert!(q.empty());
    }
}

#[test]
fn a_64_mib_item_crosses_into_and_out_of_a_child() {
    let len = 64 << 20;
    for (i, m) in METHODS.into_iter().enumerate() {
        let q: Queue<Bytes> = Queue::new().unwrap();
        start(m, put_big, (q.clone(), 64 + i as u64, len, 0xa5)).finish();
        assert_eq!(q.qsize(), 1);
        let got = q.get_timeout(LONG).unwrap();
        assert!(
            is_big_item(&got, 64 + i as u64, len, 0xa5),
            "{m:?}: 64 MiB from a child differs"
        );
        drop(got);

        q.put(big_item(640 + i as u64, len, 0x5a)).unwrap();
        assert!(
            start(m, get_big, (q.clone(), 640 + i as u64, len, 0x5a)).finish(),
            "{m:?}: 64 MiB to a child differs"
        );
        assert!(q.empty());
    }
}

#[test]
fn items_of_mixed_sizes_up_to_100_kb_arrive_whole_and_in_order() {
    let (n, max) = (300, 100_000);
    for (k, m) in METHODS.into_iter().enumerate() {
        // The default data area, and a small one (256 KiB) that the items wrap around many
        // times, so that the producer also waits for room by bytes.
        let small = QueueSizes {
            capacity: 256 << 10,
            resident: 64 << 10,
        };
        for q in [Queue::new().unwrap(), Queue::with_sizes(0, small).unwrap()] {
            let seed = 100 + k as u64;
            let child = start(m, put_mixed, (q.clone(), seed, n, max));
            for (i, len) in mixed_sizes(seed, n, max).into_iter().enumerate() {
                let (index, data) = q.get_timeout(LONG).unwrap();
                assert_eq!(index, i as u32, "{m:?}: out of order");
                assert!(
                    data == pattern(seed ^ i as u64, len),
                    "{m:?}: item {i} ({len} bytes) came back different"
                );
            }
            child.finish();
            assert!(q.empty());
        }
    }
}

#[test]
fn an_item_larger_than_the_data_area_is_refused_and_the_queue_keeps_working() {
    let sizes = QueueSizes {
        capacity: 64 << 10,
        resident: 16 << 10,
    };
    let q: Queue<Bytes> = Queue::with_sizes(0, sizes).unwrap();
    let r = q.put(Bytes(vec![1; 100_000]));
    assert!(
        matches!(r, Err(Error::TooLarge { capacity: 65536 })),
        "put of 100 kB into a 64 KiB area: {}",
        brief(&r)
    );
    assert_eq!(q.qsize(), 0);
    q.put(Bytes(vec![2; 60_000])).unwrap();
    q.put_nowait(Bytes(vec![3; 10])).unwrap();
    assert_eq!(q.get_nowait().unwrap().0, vec![2; 60_000]);
    assert_eq!(q.get_nowait().unwrap().0, vec![3; 10]);
    assert!(q.empty());
}

/// Regression test: an item that can never fit (larger than the whole data area) is
/// [`Error::TooLarge`] at once, whether or not other items are queued; waiting for room cannot
/// help, so `put_nowait`/`put_timeout` must not say `Full` and `put` must not wait.
#[test]
fn an_item_larger_than_the_data_area_is_too_large_at_once_behind_other_items() {
    let sizes = QueueSizes {
        capacity: 64 << 10,
        resident: 16 << 10,
    };
    let q: Queue<Bytes> = Queue::with_sizes(0, sizes).unwrap();
    q.put(Bytes(vec![1])).unwrap();
    let r = q.put_nowait(Bytes(vec![2; 100_000]));
    assert!(
        matches!(r, Err(Error::TooLarge { .. })),
        "put_nowait of 100 kB into a 64 KiB area holding one item: {}",
        brief(&r)
    );
    let t = Instant::now();
    let r = q.put_timeout(Bytes(vec![2; 100_000]), Duration::from_millis(300));
    assert!(
        matches!(r, Err(Error::TooLarge { .. })),
        "put_timeout of 100 kB into a 64 KiB area holding one item: {}",
        brief(&r)
    );
    assert_prompt(t.elapsed(), "put_timeout of an item that can never fit");
    assert_eq!(q.qsize(), 1);
    assert_eq!(q.get_nowait().unwrap().0, [1]);
}

// ----- 2. close -----

#[test]
fn a_closed_handle_refuses_put_and_get() {
    let q: Queue<u32> = Queue::new().unwrap();
    let other = Queue::new().unwrap();
    q.put(1).unwrap();
    q.close();
    assert_err!(q.put(2), Error::Closed, "put");
    assert_err!(q.put_nowait(2), Error::Closed, "put_nowait");
    assert_err!(q.put_timeout(2, LONG), Error::Closed, "put_timeout");
    assert_err!(q.get(), Error::Closed, "get");
    assert_err!(q.get_nowait(), Error::Closed, "get_nowait");
    assert_err!(q.get_timeout(LONG), Error::Closed, "get_timeout");
    assert!(q.put(2).unwrap_err().is_closed());
    // The documented no-ops, and closing twice.
    q.join_thread();
    q.cancel_join_thread();
    q.close();
    assert_eq!(q.qsize(), 1, "close does not drop the items");
    // Another queue is unaffected.
    other.put(5u32).unwrap();
    assert_eq!(other.get_nowait().unwrap(), 5);
}

#[test]
fn items_put_before_a_child_closes_its_handle_reach_the_parent() {
    for m in METHODS {
        let q: Queue<u32> = Queue::new().unwrap();
        q.cancel_join_thread();
        start(m, put_then_close, (q.clone(), 100)).finish();
        // The child closed its own handle; ours still works.
        for i in 0..100 {
            assert_eq!(q.get_timeout(LONG).unwrap(), i, "{m:?}");
        }
        assert!(q.empty());
        q.put(7).unwrap();
        assert_eq!(q.get_nowait().unwrap(), 7);
        q.join_thread();
    }
}

#[test]
fn closing_the_parents_handle_leaves_a_running_childs_handle_working() {
    for m in METHODS {
        let q: Queue<u32> = Queue::new().unwrap();
        q.put(1).unwrap();
        q.put(2).unwrap();
        let consumer = start(m, get_n, (q.clone(), 3));
        let producer = start(m, put_range, (q.clone(), 1));
        q.close();
        assert_err!(q.put(3), Error::Closed, "{m:?}: put after close");
        producer.finish();
        assert_eq!(consumer.finish(), [1, 2, 0], "{m:?}");
    }
}

/// Python: `close()` means "no more data will be put on this queue by the current process";
/// a child's handle is its own (CPython resets `_closed` in the child), under every start
/// method alike.
#[test]
fn a_handle_passed_to_a_child_after_close_is_open_in_the_child() {
    let mut failures = Vec::new();
    for m in METHODS {
        let q: Queue<u32> = Queue::new().unwrap();
        let keep = q.clone();
        q.close();
        let child = start(m, put_range, (q, 1));
        if child.join() != 0 {
            let why = child.join_result().err().map(|e| e.to_string());
            failures.push(format!("{m:?}: {why:?}"));
        } else {
            assert_eq!(keep.qsize(), 1, "{m:?}");
        }
        assert_err!(
            keep.get_nowait(),
            Error::Closed,
            "{m:?}: clones share the closed flag"
        );
    }
    assert!(
        failures.is_empty(),
        "a child could not put through a handle the parent had closed before passing it:\n{}",
        failures.join("\n")
    );
}

// ----- 3. items that fail to encode or decode -----

/// Encodes as a u32, except `Bad`, whose `Serialize` fails.
#[derive(Debug, PartialEq)]
enum Flaky {
    Good(u32),
    Bad,
}

impl Serialize for Flaky {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Flaky::Good(n) => s.serialize_u32(*n),
            Flaky::Bad => Err(S::Error::custom("nope")),
        }
    }
}

impl<'de> Deserialize<'de> for Flaky {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        u32::deserialize(d).map(Flaky::Good)
    }
}

#[test]
fn an_item_that_fails_to_serialize_is_refused_and_the_queue_keeps_working() {
    for maxsize in [0, 3] {
        let q: Queue<Vec<Flaky>> = Queue::with_maxsize(maxsize).unwrap();
        q.put(vec![Flaky::Good(1)]).unwrap();
        // Fails at once; fails after encoding 100k elements into the ring.
        let late: Vec<Flaky> = (0..100_000).map(Flaky::Good).chain([Flaky::Bad]).collect();
        for bad in [vec![Flaky::Bad], late] {
            for attempt in 0..2 {
                let r = match attempt {
                    0 => q.put(&bad),
                    _ => q.put_nowait(&bad),
                };
                match &r {
                    Err(Error::Codec(msg)) => assert!(msg.contains("nope"), "{msg}"),
                    other => panic!("put of an unserializable item gave {}", brief(other)),
                }
                assert_eq!(q.qsize(), 1, "a failed put changed the queue");
            }
        }
        q.put(vec![Flaky::Good(2), Flaky::Good(3)]).unwrap();
        assert_eq!(q.qsize(), 2);
        assert_eq!(q.get_nowait().unwrap(), [Flaky::Good(1)]);
        assert_eq!(q.get_nowait().unwrap(), [Flaky::Good(2), Flaky::Good(3)]);
        assert_err!(q.get_nowait(), Error::Empty, "after the good items");
    }
}

#[test]
fn an_item_holding_a_handle_is_refused_and_the_queue_keeps_working() {
    let q: Queue<Option<Queue<u8>>> = Queue::new().unwrap();
    let inner: Queue<u8> = Queue::new().unwrap();
    let r = q.put(Some(inner));
    assert!(
        matches!(r, Err(Error::Codec(_))),
        "a queue put into a queue: {}",
        brief(&r)
    );
    assert_eq!(q.qsize(), 0);
    q.put(None).unwrap();
    assert!(q.get_nowait().unwrap().is_none());
}

#[test]
fn a_wrong_type_get_is_a_codec_error_and_the_queue_keeps_working() {
    for m in METHODS {
        let q: Queue<String> = Queue::new().unwrap();
        q.put("first".to_string()).unwrap();
        q.put("second".to_string()).unwrap();
        let (mut ours, theirs) = pipe(true).unwrap();
        let child = start(m, get_as_wrong_type, theirs);
        ours.send(&q).unwrap();
        let seen = child.finish();
        assert!(
            seen.starts_with("Err(Codec(") && seen.ends_with("qsize after: 1"),
            "{m:?}: the child's get of a String as a u64 gave {seen}"
        );
        // The bad item was consumed; the next one is intact, then the child's u64, which does
        // not decode as a String either.
        assert_eq!(q.get_timeout(LONG).unwrap(), "second", "{m:?}");
        assert_err!(
            q.get_timeout(LONG),
            Error::Codec(_),
            "{m:?}: a u64 as a String"
        );
        assert!(q.empty());
        q.put("ok".to_string()).unwrap();
        assert_eq!(q.get_nowait().unwrap(), "ok");
    }
}

/// Gets `n` items of `Bytes`, checking each is `len` bytes that begin and end with `byte`;
/// returns how many were. (It looks at no more: between its gets a consumer is not at work, and
/// a producer then goes forward in the ring, so a slow check, as a whole scan is in a debug
/// build, would make the test measure the check.)
fn get_bytes_n((q, n, len, byte): (Queue<Bytes>, u32, usize, u8)) -> u32 {
    let mut right = 0;
    for _ in 0..n {
        let item = q.get_timeout(LONG).expect("child get_timeout");
        if item.0.len() == len && item.0.first() == Some(&byte) && item.0.last() == Some(&byte) {
            right += 1;
        }
    }
    right
}

/// This process's minor page faults so far (`/proc/self/stat`, field 10).
fn minor_faults() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // The command name (field 2) may hold spaces; the fields after it are plain.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    rest.split(' ').nth(7).unwrap().parse().unwrap()
}

/// Regression test: a stream of items of several MiB keeps reusing the queue's pages, as a
/// stream of small items does. With a resident part fixed at 4 MiB, an item of 4 MiB could
/// never go back to the warm pages at offset 0 while another was queued: each went to fresh
/// pages, released again at every drain, and the producer faulted in every page it wrote
/// (0.5-0.9 GB/s instead of 5). Here 48 items of 4 MiB (192 MiB, 49 152 pages) go as fast as
/// they can to a consumer child, through a queue bounded at 2 items (a backlog of one or two
/// items, as in a stream whose producer is the faster); the producer may fault in the pages of
/// the grown resident part (16 MiB) and of a few items beyond it, not of all of them (48 130
/// faults before, 4 000-11 000 after).
#[test]
fn a_stream_of_large_items_reuses_the_queues_pages() {
    const N: u32 = 48;
    const LEN: usize = 4 << 20;
    for m in METHODS {
        let q: Queue<Bytes> = Queue::with_maxsize(2).unwrap();
        let item = Bytes(vec![0xa5; LEN]);
        let child = start(m, get_bytes_n, (q.clone(), N, LEN, 0xa5));
        let before = minor_faults();
        for _ in 0..N {
            q.put_timeout(&item, LONG).unwrap();
        }
        let faults = minor_faults() - before;
        assert_eq!(child.finish(), N, "{m:?}: an item came back different");
        let pages = u64::from(N) * (LEN as u64 / 4096);
        assert!(
            faults < pages / 2,
            "{m:?}: the producer faulted {faults} times writing {N} items of 4 MiB ({pages} \
             pages): the queue did not reuse its pages"
        );
    }
}
