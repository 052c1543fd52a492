//! The Rust side (and the limit) of the Pool figures: the same workloads as
//! `bench/cpython_pool.py`, run with `multiprocessing::Pool` (fork). Every figure is a time in
//! milliseconds (lower is better).
//!
//! | figure                 | workload                                                      | limit                          |
//! | ---------------------- | ------------------------------------------------------------- | ------------------------------ |
//! | `pool_map_100k`        | `Pool(2).map(square, 0..100_000)`, default chunksize          | none                           |
//! | `pool_imap_10k`        | `imap(square, 0..10_000)`, chunksize 1, all collected         | none                           |
//! | `pool_apply_async_10k` | 10 000 `apply_async(square, i)`, then every `get()`           | none                           |
//! | `pool_startup`         | `Pool(2)` created, one `apply`, `close`, `join`               | the same with bare forks and sockets (`limits.rs`) |
//! | `pool_map_cpu`         | `Pool(2).map(spin, 0..200)`: 200 tasks of ~2 ms of CPU each   | the same 200 calls in-process / 2 |
//!
//! Except for `pool_startup`, the pool is created (and has answered one task) before the clock
//! starts, and is closed and joined after it stops. One repetition of the shortest figures is
//! the mean of several runs of the workload, on both sides (and for `pool_startup`'s limit):
//! [`STARTUPS`] pools for `pool_startup`, [`MAPS`] maps on one pool for `pool_map_100k`,
//! [`APPLY_ROUNDS`] rounds for `pool_apply_async_10k`, [`IMAPS`] `imap`s for `pool_imap_10k`.
//! One run of them lasts 1-25 ms on our side: a single scheduling hiccup, or CPython's Pool
//! falling into the slower of its two modes (its startup is bimodal, about 4.5 and 7.5 ms),
//! would otherwise decide a repetition.

use std::hint::black_box;
use std::time::Instant;

use multiprocessing::{Pool, StartMethod};

/// Measures one repetition of figure `name`, returning `(unit, value)`, or `None` when `name`
/// is not a Pool figure.
pub fn run(name: &str) -> Option<(&'static str, f64)> {
    Some(match name {
        "pool_map_100k" => ("ms", timed(map_100k, MAPS)),
        "pool_imap_10k" => ("ms", timed(imap_10k, IMAPS)),
        "pool_apply_async_10k" => ("ms", timed(apply_async_10k, APPLY_ROUNDS)),
        "pool_startup" => (
            "ms",
            (0..STARTUPS).map(|_| startup()).sum::<f64>() / f64::from(STARTUPS),
        ),
        "pool_map_cpu" => ("ms", timed(map_cpu, 1)),
        _ => return None,
    })
}

/// Pools created per repetition of `pool_startup` (and of its limit; `bench/cpython_pool.py`
/// has the same): a repetition is their mean.
pub const STARTUPS: u32 = 10;
/// Maps per repetition of `pool_map_100k` (as in `bench/cpython_pool.py`).
const MAPS: u32 = 10;
/// Rounds of 10 000 `apply_async` per repetition of `pool_apply_async_10k` (as in
/// `bench/cpython_pool.py`).
const APPLY_ROUNDS: u32 = 6;
/// `imap`s per repetition of `pool_imap_10k` (as in `bench/cpython_pool.py`): with one,
/// CPython's took 89-231 ms within a run (ours 17-25), and two runs' median ratios differed by
/// 27% (6.8 and 8.7).
const IMAPS: u32 = 3;

/// The limit of figure `name`, when it has one.
pub fn limit(name: &str) -> Option<(&'static str, f64)> {
    match name {
        "pool_map_cpu" => {
            let t0 = Instant::now();
            for i in 0..TASKS {
                black_box(spin(black_box(i)));
            }
            Some(("ms", t0.elapsed().as_secs_f64() * 1e3 / 2.0))
        }
        _ => None,
    }
}

fn square(x: u64) -> u64 {
    x * x
}

/// Iterations of [`spin`]: about 2 ms of CPU.
const SPIN_ITERS: u64 = 900_000;
/// Tasks of `pool_map_cpu`.
const TASKS: u64 = 200;

/// About 2 ms of CPU: a xorshift over [`SPIN_ITERS`] steps.
fn spin(x: u64) -> u64 {
    let mut s = x + 1;
    for _ in 0..SPIN_ITERS {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s = black_box(s);
    }
    s
}

fn pool() -> Pool {
    Pool::builder()
        .processes(2)
        .start_method(StartMethod::Fork)
        .build()
        .expect("pool")
}

/// Milliseconds of `body` on a warmed-up pool of 2: the mean of `runs` runs in a row.
fn timed(body: fn(&Pool), runs: u32) -> f64 {
    let p = pool();
    assert_eq!(p.apply(square, 1).expect("warm-up"), 1);
    let t0 = Instant::now();
    for _ in 0..runs {
        body(&p);
    }
    let elapsed = t0.elapsed();
    p.close();
    p.join().expect("join");
    elapsed.as_secs_f64() * 1e3 / f64::from(runs)
}

fn map_100k(p: &Pool) {
    let r = p.map(square, 0..100_000).expect("map");
    assert_eq!(r[99_999], 99_999 * 99_999);
}

fn imap_10k(p: &Pool) {
    let r: Vec<u64> = p
        .imap(square, 0..10_000)
        .expect("imap")
        .map(|r| r.expect("item"))
        .collect();
    assert_eq!(r[9_999], 9_999 * 9_999);
}

fn apply_async_10k(p: &Pool) {
    let rs: Vec<_> = (0..10_000u64)
        .map(|i| p.apply_async(square, i).expect("apply_async"))
        .collect();
    let mut last = 0;
    for r in &rs {
        last = r.get().expect("get");
    }
    assert_eq!(last, 9_999 * 9_999);
}

fn map_cpu(p: &Pool) {
    let r = p.map(spin, 0..TASKS).expect("map");
    assert_eq!(r.len(), TASKS as usize);
}

fn startup() -> f64 {
    let t0 = Instant::now();
    let p = pool();
    assert_eq!(p.apply(square, 3).expect("apply"), 9);
    p.close();
    p.join().expect("join");
    t0.elapsed().as_secs_f64() * 1e3
}
