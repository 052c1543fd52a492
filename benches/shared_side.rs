//! The Rust side of the shared-memory figures: the same workloads as `bench/cpython_shared.py`,
//! run with `mp-shared`.
//!
//! | figure | workload | unit |
//! | --- | --- | --- |
//! | `value_2proc_increments` | two forked children each do 100k `*v.lock()? += 1` on one `Value<i64>` (its own `RLock`), Python's `with v.get_lock(): v.value += 1` | increments per second |
//! | `atomic_2proc_increments` | the same with `SharedAtomic<i64>::fetch_add(1)` (no CPython twin) | increments per second |
//!
//! The two children are pinned to two different CPUs, as CPython's are (`bench/cpython_shared.py`).
//! Left to the scheduler, they sometimes share one CPU, where each runs a whole time slice of
//! uncontended increments: about 28 M/s here against 9-11 M/s on two CPUs (CPython: 0.81 M/s
//! against 0.39 M/s), and a run's figure depended on which placement it got.
//!
//! Timing runs from the start barrier (which both children pass once they are running) to the
//! last child finishing, measured in the children; the final count is checked. The time per
//! increment is `1e9 / value` nanoseconds. Seen on a 2-CPU VM: `atomic_2proc_increments`
//! 50-125 M ops/s, i.e. 8-20 ns per increment (the counter's cache line bouncing between two
//! cores); `value_2proc_increments` 24-29 M ops/s (35-42 ns per locked increment) since the
//! lock's waiter backs off exponentially (`mp_core::spin::Backoff`), 5-7 M ops/s on the same
//! machine with the fixed spin before it, against 1.0-1.2 M ops/s for CPython; 35 M ops/s
//! once the backoff lasted 60 µs instead of 20 before the waiter sleeps.

use std::time::{Duration, Instant};

use multiprocessing::sharedctypes::{SharedAtomic, Value};
use multiprocessing::{get_context, Barrier, StartMethod};

/// Increments per child.
const PER_CHILD: u32 = 100_000;

/// Measures one repetition of figure `name`, returning `(unit, value)`, or `None` when `name`
/// is not a shared-memory figure.
pub fn run(name: &str) -> Option<(&'static str, f64)> {
    Some(match name {
        "value_2proc_increments" => ("ops/s", value_2proc(PER_CHILD)),
        "atomic_2proc_increments" => ("ops/s", atomic_2proc(PER_CHILD)),
        _ => return None,
    })
}

/// Waits at the start barrier, bounded so that a broken run fails instead of hanging.
fn start_line(barrier: &Barrier) {
    barrier
        .wait_timeout(Duration::from_secs(60))
        .expect("start barrier");
}

/// What a child reports: when it passed the barrier and when it finished, in seconds since
/// the parent's `epoch` (an `Instant` taken before the fork, valid in the forked child).
type Span = (f64, f64);

/// `with v.get_lock(): v.value += 1`, `n` times.
fn value_child((v, barrier, epoch, n): (Value<i64>, Barrier, Epoch, u32)) -> Span {
    start_line(&barrier);
    let start = epoch.secs();
    for _ in 0..n {
        let mut g = v.lock().expect("lock");
        *g += 1;
    }
    (start, epoch.secs())
}

/// `c.fetch_add(1)`, `n` times.
fn atomic_child((c, barrier, epoch, n): (SharedAtomic<i64>, Barrier, Epoch, u32)) -> Span {
    start_line(&barrier);
    let start = epoch.secs();
    for _ in 0..n {
        c.fetch_add(1);
    }
    (start, epoch.secs())
}

/// The parent's clock origin, carried into forked children (`Instant` is `CLOCK_MONOTONIC`,
/// the same clock in every process).
#[derive(Clone, Copy)]
struct Epoch(Instant);

impl Epoch {
    fn secs(self) -> f64 {
        self.0.elapsed().as_secs_f64()
    }
}

// Only ever "serialized" for a forked child, which receives the value itself: fork does not
// serialize arguments.
impl serde::Serialize for Epoch {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("an Epoch only crosses a fork"))
    }
}

impl<'de> serde::Deserialize<'de> for Epoch {
    fn deserialize<D: serde::Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        Err(serde::de::Error::custom("an Epoch only crosses a fork"))
    }
}

/// Starts two forked children running `f(args)` and returns the seconds from the first one
/// passing the start barrier (with the other) to the last one finishing.
fn two_children<A>(f: fn(A) -> Span, args: impl Fn(Barrier, Epoch) -> A) -> f64
where
    A: serde::Serialize + serde::de::DeserializeOwned + Send + 'static,
{
    let ctx = get_context(Some(StartMethod::Fork));
    let barrier = Barrier::new(2, None).expect("barrier");
    let epoch = Epoch(Instant::now());
    let mut children = Vec::new();
    for i in 0..2 {
        let mut p = ctx.process(f, args(barrier.clone(), epoch));
        // Child i runs on CPU i: it inherits the affinity the parent has while it forks.
        let pinned = crate::limits::Pinned::to_cpu(i);
        p.start().expect("start");
        drop(pinned);
        children.push(p);
    }
    let spans: Vec<Span> = children
        .iter()
        .map(|p| p.join_result().expect("a bench child failed"))
        .collect();
    let start = spans.iter().map(|s| s.0).fold(f64::INFINITY, f64::min);
    let end = spans.iter().map(|s| s.1).fold(0.0, f64::max);
    end - start
}

/// Increments per second of two processes updating one `Value<i64>` under its lock.
fn value_2proc(per_child: u32) -> f64 {
    let v = Value::new(0i64).expect("value");
    let elapsed = two_children(value_child, |b, e| (v.clone(), b, e, per_child));
    assert_eq!(v.get().expect("get"), 2 * i64::from(per_child));
    2.0 * f64::from(per_child) / elapsed
}

/// Increments per second of two processes doing `fetch_add(1)` on one `SharedAtomic<i64>`.
fn atomic_2proc(per_child: u32) -> f64 {
    let c = SharedAtomic::new(0i64).expect("atomic");
    let elapsed = two_children(atomic_child, |b, e| (c.clone(), b, e, per_child));
    assert_eq!(c.load(), 2 * i64::from(per_child));
    2.0 * f64::from(per_child) / elapsed
}
