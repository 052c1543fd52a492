//! A quick timing loop over the Pool figures' workloads (for profiling; `cargo xtask bench`
//! gives the real figures).

use std::time::Instant;

use mp_pool::Pool;

fn square(x: u64) -> u64 {
    x * x
}

fn main() {
    let which = std::env::args().nth(1).unwrap_or_else(|| "map".into());
    let p = Pool::builder()
        .processes(2)
        .start_method(mp_core::StartMethod::Fork)
        .build()
        .expect("pool");
    p.apply(square, 1).expect("warm-up");
    for _ in 0..20 {
        let t0 = Instant::now();
        match which.as_str() {
            "map" => {
                p.map(square, 0..100_000).expect("map");
            }
            "imap" => {
                let n = p.imap(square, 0..10_000).expect("imap").count();
                assert_eq!(n, 10_000);
            }
            _ => {
                let rs: Vec<_> = (0..10_000u64)
                    .map(|i| p.apply_async(square, i).expect("apply"))
                    .collect();
                for r in rs {
                    r.get().expect("get");
                }
            }
        }
        println!("{which}: {:.3} ms", t0.elapsed().as_secs_f64() * 1e3);
    }
    p.close();
    p.join().expect("join");
}
