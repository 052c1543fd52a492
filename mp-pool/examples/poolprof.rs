//! The two figures `pool_map_100k` and `pool_startup` exactly as `benches/pool_side.rs`
//! measures them (a fresh pool per repetition), repeated for profiling; prints the median.
//!
//! `poolprof MODE [REPS]`, MODE one of: `map` (a new pool per repetition, as the benchmark),
//! `mapwarm` (the same map on one pool), `imap` (`imap` of 10 000 items, chunksize 1, on one
//! pool), `big` (`map` of 32 results of 4 MiB each, chunksize 1, on one pool), `apply` (10 000 `apply_async`, then every `get`, on one pool), `applyfresh` (the same on a new pool
//! per repetition, as the benchmark), `startup` (the benchmark's), `phases` (startup, with the medians of its three
//! phases: build, first `apply`, `close` + `join`). `PAUSE_MS=N` sleeps before each repetition,
//! for a cold start as the benchmark's one repetition per request sees it.

use std::time::Instant;

use mp_pool::Pool;

fn square(x: u64) -> u64 {
    x * x
}

fn pool() -> Pool {
    Pool::builder()
        .processes(2)
        .start_method(mp_core::StartMethod::Fork)
        .build()
        .expect("pool")
}

/// 4 MiB of one byte value, as one MessagePack `bin`.
fn four_mib(x: u8) -> mp_core::codec::Bytes {
    mp_core::codec::Bytes(vec![x; 4 << 20])
}

/// A new pool of 2 that has answered one task.
fn warmed_up() -> Pool {
    let p = pool();
    assert_eq!(p.apply(square, 1).expect("warm-up"), 1);
    p
}

/// `map(square, 0..100_000)` on `p`, timed.
fn map_100k(p: &Pool) -> std::time::Duration {
    let t0 = Instant::now();
    let r = p.map(square, 0..100_000).expect("map");
    let t = t0.elapsed();
    assert_eq!(r[99_999], 99_999 * 99_999);
    t
}

fn main() {
    let which = std::env::args().nth(1).unwrap_or_else(|| "map".into());
    let reps: usize = std::env::args()
        .nth(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(50);
    let mut times = Vec::with_capacity(reps);
    let mut warm: Option<Pool> = None;
    let mut phases: Vec<[std::time::Duration; 3]> = Vec::new();
    let pause = std::env::var("PAUSE_MS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map(std::time::Duration::from_millis);
    for _ in 0..reps {
        if let Some(p) = pause {
            std::thread::sleep(p);
        }
        let t = match which.as_str() {
            "map" => {
                let p = warmed_up();
                let t = map_100k(&p);
                p.close();
                p.join().expect("join");
                t
            }
            "mapwarm" => map_100k(warm.get_or_insert_with(warmed_up)),
            "big" => {
                let p = warm.get_or_insert_with(warmed_up);
                let t0 = Instant::now();
                let r = p.map_chunksize(four_mib, 0..32u8, 1).expect("map");
                let t = t0.elapsed();
                assert!(r
                    .iter()
                    .enumerate()
                    .all(|(i, b)| b.0.len() == 4 << 20 && b.0[0] == i as u8));
                t
            }
            "imap" => {
                let p = warm.get_or_insert_with(warmed_up);
                let t0 = Instant::now();
                let mut n = 0;
                for r in p.imap_chunksize(square, 0..10_000u64, 1).expect("imap") {
                    r.expect("item");
                    n += 1;
                }
                let t = t0.elapsed();
                assert_eq!(n, 10_000);
                t
            }
            "apply" | "applyfresh" => {
                let fresh = (which == "applyfresh").then(warmed_up);
                let p = match &fresh {
                    Some(p) => p,
                    None => warm.get_or_insert_with(warmed_up),
                };
                let t0 = Instant::now();
                let rs: Vec<_> = (0..10_000u64)
                    .map(|i| p.apply_async(square, i).expect("apply_async"))
                    .collect();
                if std::env::var_os("SHOW_SUBMIT").is_some() {
                    eprintln!("submitted in {:?}", t0.elapsed());
                }
                for r in &rs {
                    r.get().expect("get");
                }
                let t = t0.elapsed();
                if let Some(p) = fresh {
                    p.close();
                    p.join().expect("join");
                }
                t
            }
            "phases" => {
                let t0 = Instant::now();
                let p = pool();
                let t1 = Instant::now();
                assert_eq!(p.apply(square, 3).expect("apply"), 9);
                let t2 = Instant::now();
                p.close();
                p.join().expect("join");
                let t3 = Instant::now();
                phases.push([t1 - t0, t2 - t1, t3 - t2]);
                t3 - t0
            }
            _ => {
                let t0 = Instant::now();
                let p = pool();
                assert_eq!(p.apply(square, 3).expect("apply"), 9);
                p.close();
                p.join().expect("join");
                t0.elapsed()
            }
        };
        times.push(t.as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    if !phases.is_empty() {
        for (i, name) in ["build", "first apply", "close+join"].iter().enumerate() {
            let mut v: Vec<f64> = phases.iter().map(|p| p[i].as_secs_f64() * 1e3).collect();
            v.sort_by(f64::total_cmp);
            println!("  {name}: median {:.3} ms", v[v.len() / 2]);
        }
    }
    println!(
        "{which}: median {:.3} ms, min {:.3} ms, max {:.3} ms ({reps} reps)",
        times[reps / 2],
        times[0],
        times[reps - 1]
    );
}
