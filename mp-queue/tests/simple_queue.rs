//! `SimpleQueue<T>` between real processes, under every start method (fork, spawn,
//! forkserver): `put`, `get`, `empty`, `close` (issue 5, item 4).
//!
//! Ported in spirit from CPython's `Lib/test/_test_multiprocessing.py`: `TestSimpleQueue`
//! (`test_empty`: a child puts while the parent checks `empty()` before and after, and
//! `test_close`). New here: items both ways through a child, a closed handle's errors, and a
//! `Queue` handle refused when received as a `SimpleQueue`.

use std::time::Duration;

use mp_core::{pipe, Connection};
use mp_queue::{Error, Queue, SimpleQueue};
use mp_testkit::{brief, start, LONG, METHODS};

// ----- children -----

/// Doubles every number from `tasks` into `results` until `None`; then closes its handle of
/// `results` and checks it is closed.
fn doubler((tasks, results): (SimpleQueue<Option<u64>>, SimpleQueue<u64>)) -> u32 {
    let mut n = 0;
    while let Some(x) = tasks.get_timeout(LONG).expect("child get_timeout") {
        results.put(x * 2).expect("child put");
        n += 1;
    }
    assert!(tasks.empty(), "the child saw items after the sentinel");
    results.close();
    assert!(
        matches!(results.put(0), Err(Error::Closed)),
        "put after close"
    );
    assert!(
        matches!(results.get_timeout(Duration::ZERO), Err(Error::Closed)),
        "get after close"
    );
    n
}

/// Puts "ready", then waits for "go", then puts "done" (CPython's `_test_empty`).
fn ready_go_done((q, back): (SimpleQueue<String>, SimpleQueue<String>)) {
    q.put("ready".to_string()).expect("put ready");
    let go = back.get_timeout(LONG).expect("get go");
    assert_eq!(go, "go");
    q.put("done".to_string()).expect("put done");
}

/// Receives a `Queue` handle over `conn` as a `SimpleQueue` and reports the outcome.
fn receive_as_simple(mut conn: Connection) -> String {
    let r: mp_core::Result<SimpleQueue<u32>> = conn.recv();
    brief(&r)
}

// ----- tests -----

#[test]
fn put_get_empty_in_one_process() {
    let q: SimpleQueue<Vec<String>> = SimpleQueue::new().unwrap();
    assert!(q.empty());
    q.put(vec!["a".to_string(), "b".to_string()]).unwrap();
    assert!(!q.empty());
    // `put` takes the item by value or by reference.
    let none: Vec<String> = Vec::new();
    q.put(&none).unwrap();
    assert_eq!(q.get().unwrap(), ["a", "b"]);
    assert!(!q.empty());
    assert_eq!(q.get_timeout(LONG).unwrap(), none);
    assert!(q.empty());
    assert!(matches!(
        q.get_timeout(Duration::from_millis(20)),
        Err(Error::Empty)
    ));
}

#[test]
fn empty_tracks_a_child_that_puts() {
    for m in METHODS {
        let q: SimpleQueue<String> = SimpleQueue::new().unwrap();
        let back: SimpleQueue<String> = SimpleQueue::new().unwrap();
        assert!(q.empty(), "{m:?}");
        let child = start(m, ready_go_done, (q.clone(), back.clone()));
        assert_eq!(q.get_timeout(LONG).unwrap(), "ready", "{m:?}");
        assert!(q.empty(), "{m:?}");
        back.put("go".to_string()).unwrap();
        child.finish();
        assert!(
            !q.empty(),
            "{m:?}: the child's item is in as soon as its put returned"
        );
        assert_eq!(q.get_timeout(LONG).unwrap(), "done", "{m:?}");
        assert!(q.empty(), "{m:?}");
    }
}

#[test]
fn items_cross_both_ways_through_a_child() {
    for m in METHODS {
        let tasks: SimpleQueue<Option<u64>> = SimpleQueue::new().unwrap();
        let results: SimpleQueue<u64> = SimpleQueue::new().unwrap();
        let child = start(m, doubler, (tasks.clone(), results.clone()));
        for x in 0..1000 {
            tasks.put(Some(x)).unwrap();
        }
        tasks.put(None).unwrap();
        for x in 0..1000 {
            assert_eq!(results.get_timeout(LONG).unwrap(), x * 2, "{m:?}");
        }
        assert_eq!(child.finish(), 1000, "{m:?}");
        // The child closed its handle; ours still works.
        assert!(results.empty());
        results.put(5).unwrap();
        assert_eq!(results.get().unwrap(), 5);
    }
}

#[test]
fn a_closed_handle_refuses_put_and_get_and_leaves_the_items() {
    let q: SimpleQueue<u32> = SimpleQueue::new().unwrap();
    q.put(1).unwrap();
    let other_handle = q.clone();
    q.close();
    assert!(matches!(q.put(2), Err(Error::Closed)));
    assert!(matches!(q.get(), Err(Error::Closed)));
    assert!(matches!(q.get_timeout(LONG), Err(Error::Closed)));
    assert!(
        matches!(other_handle.get(), Err(Error::Closed)),
        "clones share close"
    );
    assert!(!q.empty(), "close keeps the items");
    q.close();
}

#[test]
fn a_queue_handle_received_as_a_simple_queue_is_refused() {
    for m in METHODS {
        let q: Queue<u32> = Queue::new().unwrap();
        let (mut ours, theirs) = pipe(true).unwrap();
        let child = start(m, receive_as_simple, theirs);
        ours.send(&q).unwrap();
        let seen = child.finish();
        assert!(
            seen.starts_with("Err(") && seen.contains("not a SimpleQueue"),
            "{m:?}: a Queue received as a SimpleQueue gave {seen}"
        );
        q.put(1).unwrap();
        assert_eq!(q.get_nowait().unwrap(), 1);
    }
}
