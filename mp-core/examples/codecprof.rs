//! Times the codec on a pool chunk's shape (12 500 `u64`s): encode, decode, and the parts of
//! decode (the byte walk, the call-counting adapter), for profiling.
use std::hint::black_box;
use std::time::Instant;

fn time(name: &str, reps: usize, mut f: impl FnMut()) {
    let mut best = f64::MAX;
    for _ in 0..reps {
        let t0 = Instant::now();
        f();
        best = best.min(t0.elapsed().as_secs_f64() * 1e6);
    }
    println!("{name:>12}: {best:8.1} µs");
}

fn main() {
    let items: Vec<u64> = (0..12_500u64).map(|x| x * x).collect();
    let bytes = mp_core::codec::encode(&items).unwrap();
    time("encode", 200, || {
        black_box(mp_core::codec::encode(black_box(&items)).unwrap());
    });
    time("decode", 200, || {
        black_box(mp_core::codec::decode::<Vec<u64>>(black_box(&bytes)).unwrap());
    });
    let small: Vec<u64> = (0..12_500u64).collect();
    let sbytes = mp_core::codec::encode(&small).unwrap();
    time("small_dec", 200, || {
        black_box(mp_core::codec::decode::<Vec<u64>>(black_box(&sbytes)).unwrap());
    });
    time("small_rmp", 200, || {
        black_box(rmp_serde::from_slice::<Vec<u64>>(black_box(&sbytes)).unwrap());
    });
    time("rmp_decode", 200, || {
        black_box(rmp_serde::from_slice::<Vec<u64>>(black_box(&bytes)).unwrap());
    });
}
