//! `JoinableQueue<T>` between real processes, under every start method (fork, spawn,
//! forkserver): `task_done` and `join` (issue 5, item 5).
//!
//! Ported in spirit from CPython's `Lib/test/_test_multiprocessing.py`:
//! `_TestQueue.test_task_done` (workers in child processes `get` and `task_done`, the parent
//! `join`s, then sends one `None` per worker) and the `ValueError` of a `task_done` called too
//! many times (`test_queue_task_done` in `Lib/test/test_queue.py`). New here: `join` called in a
//! child process, and `join_timeout`.

use std::time::{Duration, Instant};

use mp_queue::{Error, JoinableQueue, Queue};
use mp_testkit::{assert_took_about, eventually, start, LONG, METHODS, SETTLE};

// ----- children -----

/// Gets numbers until `None`; for each, puts its square into `results`, then `task_done`.
/// The `None` is marked done too. Returns how many numbers it handled.
fn worker((q, results): (JoinableQueue<Option<u32>>, Queue<u32>)) -> u32 {
    let mut n = 0;
    loop {
        let item = q.get_timeout(LONG).expect("worker get_timeout");
        match item {
            Some(x) => {
                results.put(x * x).expect("worker put");
                q.task_done().expect("worker task_done");
                n += 1;
            }
            None => {
                q.task_done().expect("worker task_done of the sentinel");
                return n;
            }
        }
    }
}

/// `join_timeout(short)` (must time out while tasks remain), then `join_timeout(LONG)`;
/// returns how long the second one waited.
fn joiner((q, short): (JoinableQueue<u32>, Duration)) -> Duration {
    let t = Instant::now();
    let r = q.join_timeout(short);
    assert!(
        matches!(r, Ok(false)),
        "join_timeout with tasks left: {r:?}"
    );
    assert_took_about(t.elapsed(), short, "join_timeout in the child");
    let t = Instant::now();
    assert!(q.join_timeout(LONG).expect("join_timeout in the child"));
    t.elapsed()
}

/// Calls `task_done` `n` times; returns the results in order.
fn mark_done((q, n): (JoinableQueue<u32>, u32)) -> Vec<String> {
    (0..n)
        .map(|_| match q.task_done() {
            Ok(()) => "ok".to_string(),
            Err(Error::TaskDone) => "TaskDone".to_string(),
            Err(e) => format!("{e:?}"),
        })
        .collect()
}

// ----- tests -----

#[test]
fn task_done_more_times_than_items_put_is_an_error() {
    let q: JoinableQueue<u32> = JoinableQueue::new().unwrap();
    assert!(matches!(q.task_done(), Err(Error::TaskDone)));
    q.put(1).unwrap();
    q.put(2).unwrap();
    assert_eq!(q.get_nowait().unwrap(), 1);
    q.task_done().unwrap();
    // As in Python, the count is of items put, not of items got.
    q.task_done().unwrap();
    assert!(matches!(q.task_done(), Err(Error::TaskDone)));
    assert_eq!(q.qsize(), 1, "task_done does not consume");
    assert_eq!(q.get_nowait().unwrap(), 2);
    assert!(matches!(q.task_done(), Err(Error::TaskDone)));
    assert!(q.join_timeout(Duration::ZERO).unwrap());
}

#[test]
fn task_done_too_many_times_in_a_child_is_an_error() {
    for m in METHODS {
        let q: JoinableQueue<u32> = JoinableQueue::new().unwrap();
        q.put(1).unwrap();
        let got = start(m, mark_done, (q.clone(), 3)).finish();
        assert_eq!(got, ["ok", "TaskDone", "TaskDone"], "{m:?}");
        assert!(q.join_timeout(Duration::ZERO).unwrap());
        assert!(matches!(q.task_done(), Err(Error::TaskDone)), "{m:?}");
    }
}

#[test]
fn join_timeout_waits_for_every_task_in_one_process() {
    let q: JoinableQueue<u32> = JoinableQueue::with_maxsize(4).unwrap();
    assert!(q
        .join_timeout(Duration::ZERO)
        .expect("nothing put: join returns at once"));
    q.put(1).unwrap();
    q.put(2).unwrap();
    let short = Duration::from_millis(100);
    let t = Instant::now();
    assert!(matches!(q.join_timeout(short), Ok(false)));
    assert_took_about(t.elapsed(), short, "join_timeout with two tasks left");
    q.get_nowait().unwrap();
    q.task_done().unwrap();
    assert!(matches!(q.join_timeout(Duration::ZERO), Ok(false)));
    q.get_nowait().unwrap();
    q.task_done().unwrap();
    assert!(q.join_timeout(Duration::ZERO).unwrap());
    q.join().unwrap();
}

#[test]
fn join_returns_once_worker_children_marked_every_item_done() {
    for m in METHODS {
        let q: JoinableQueue<Option<u32>> = JoinableQueue::new().unwrap();
        let results: Queue<u32> = Queue::new().unwrap();
        let workers: Vec<_> = (0..3)
            .map(|_| start(m, worker, (q.clone(), results.clone())))
            .collect();
        for x in 0..1000 {
            q.put(Some(x)).unwrap();
        }
        assert!(
            q.join_timeout(LONG)
                .unwrap_or_else(|e| panic!("{m:?}: join_timeout: {e}")),
            "{m:?}: tasks left after join_timeout"
        );
        // Every task_done came after its result was put: all 1000 are in.
        assert_eq!(results.qsize(), 1000, "{m:?}");
        let mut got: Vec<u32> = (0..1000).map(|_| results.get_nowait().unwrap()).collect();
        got.sort_unstable();
        assert!(got.iter().copied().eq((0..1000).map(|x| x * x)), "{m:?}");
        for _ in &workers {
            q.put(None).unwrap();
        }
        let handled: u32 = workers.iter().map(|w| w.finish()).sum();
        assert_eq!(handled, 1000, "{m:?}");
        assert!(q.join_timeout(LONG).unwrap());
        assert!(q.empty());
    }
}

#[test]
fn join_in_a_child_returns_when_the_parent_marks_the_last_item_done() {
    for m in METHODS {
        let q: JoinableQueue<u32> = JoinableQueue::new().unwrap();
        for x in 0..5 {
            q.put(x).unwrap();
        }
        let child = start(m, joiner, (q.clone(), Duration::from_millis(50)));
        for x in 0..5 {
            assert_eq!(q.get_timeout(LONG).unwrap(), x);
            q.task_done().unwrap();
            if x < 4 {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let t = Instant::now();
        let waited = child.finish();
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "{m:?}: the child's join returned {:?} after the last task_done",
            t.elapsed()
        );
        assert!(waited < LONG, "{m:?}");
        assert!(matches!(q.task_done(), Err(Error::TaskDone)), "{m:?}");
    }
}

#[test]
fn join_in_a_child_blocks_while_a_task_remains() {
    for m in METHODS {
        let q: JoinableQueue<u32> = JoinableQueue::new().unwrap();
        q.put(1).unwrap();
        let child = start(m, joiner, (q.clone(), Duration::from_millis(10)));
        // Let the child pass its short join and block in the long one.
        std::thread::sleep(SETTLE);
        assert!(child.running(), "{m:?}: join returned with a task left");
        q.get_timeout(LONG).unwrap();
        q.task_done().unwrap();
        eventually("the child's join returning", || !child.running());
        child.finish();
    }
}
