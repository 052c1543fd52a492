//! `AsyncResult` and `MapResult` are `std::future::Future`s (issue item 12), woken by the
//! pool: awaited here on a minimal executor of a few lines (no async runtime), under every
//! start method.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use mp_pool::{Error, Pool};
use mp_testkit::{LONG, METHODS};

/// Wakes the thread that polls.
struct Unpark(std::thread::Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Runs `fut` to completion on this thread, sleeping between polls until woken; fails the
/// test after `LONG`. Counts the polls, so a pool that never wakes shows.
fn block_on<F: Future>(fut: F) -> (F::Output, usize) {
    let mut fut = pin!(fut);
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let end = Instant::now() + LONG;
    let mut polls = 0;
    loop {
        polls += 1;
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return (v, polls);
        }
        let left = end.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "the future was never woken");
        std::thread::park_timeout(left);
    }
}

fn sqr(x: i64) -> i64 {
    x * x
}

fn slow_sqr(x: i64) -> i64 {
    std::thread::sleep(Duration::from_millis(200));
    x * x
}

fn boom(_: ()) -> i64 {
    panic!("async boom")
}

#[test]
fn async_results_can_be_awaited_on_a_minimal_executor() {
    for m in METHODS {
        let p = Pool::builder()
            .processes(2)
            .start_method(m)
            .build()
            .unwrap();
        let r = p.apply_async(slow_sqr, 6).unwrap();
        let (v, polls) = block_on(r);
        assert_eq!(v.unwrap(), 36, "{m}");
        assert!(polls >= 2, "{m}: a 200 ms task was ready at the first poll");
        let (v, _) = block_on(p.map_async(sqr, 0..10).unwrap());
        assert_eq!(v.unwrap(), [0, 1, 4, 9, 16, 25, 36, 49, 64, 81], "{m}");
        let (v, _) = block_on(p.apply_async(boom, ()).unwrap());
        assert!(matches!(v, Err(Error::TaskPanicked { .. })), "{m}");
        // Several at once, in an async block.
        let a = p.apply_async(slow_sqr, 2).unwrap();
        let b = p.apply_async(slow_sqr, 3).unwrap();
        let (sum, _) = block_on(async move { a.await.unwrap() + b.await.unwrap() });
        assert_eq!(sum, 13, "{m}");
        p.close();
        assert!(p.join_timeout(LONG).unwrap());
    }
}

#[test]
fn an_awaited_result_is_woken_by_terminate() {
    fn forever(_: ()) -> u8 {
        std::thread::sleep(Duration::from_secs(60));
        0
    }
    let p = Arc::new(Pool::new(1).unwrap());
    let r = p.apply_async(forever, ()).unwrap();
    let killer = {
        let p = p.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            p.terminate();
        })
    };
    let (v, _) = block_on(r);
    assert!(v.unwrap_err().is_terminated());
    killer.join().unwrap();
}
