//! Python's Pool API and semantics (issue items 1 to 6), under every start method, with real
//! worker processes. Several cases follow CPython's `Lib/test/_test_multiprocessing.py`
//! (`_TestPool`: `test_apply`, `test_map`, `test_map_chunksize`, `test_starmap`, `test_async`,
//! `test_async_timeout`, `test_imap`, `test_imap_unordered`, `test_empty_iterable`,
//! `test_make_pool`, `test_terminate`, `test_pool_worker_lifetime`); the facts are CPython's,
//! the code is ours. Every blocking call is bounded (`get_timeout(LONG)`, `join_timeout`,
//! `next_timeout`, `within`).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mp_core::{Process, StartMethod};
use mp_pool::{Error, Pool};
use mp_testkit::{int_form_edges, join_result, within, LONG, METHODS};

fn sqr(x: i64) -> i64 {
    x * x
}

fn add(a: i64, b: i64) -> i64 {
    a + b
}

fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

fn my_pid(_: u32) -> i32 {
    std::process::id() as i32
}

fn panic_on_7(x: i64) -> i64 {
    if x == 7 {
        panic!("seven is not allowed");
    }
    x * x
}

fn checked_sqrt(x: i64) -> Result<i64, String> {
    if x < 0 {
        Err(format!("negative input {x}"))
    } else {
        Ok((x as f64).sqrt() as i64)
    }
}

fn pool(m: StartMethod) -> Pool {
    Pool::builder()
        .processes(2)
        .start_method(m)
        .build()
        .expect("pool")
}

fn finish(p: Pool) {
    p.close();
    assert!(
        p.join_timeout(LONG).expect("join"),
        "the pool's workers did not exit"
    );
}

fn drain<R: serde::de::DeserializeOwned>(
    mut it: impl Iterator<Item = mp_pool::Result<R>> + NextTimeout<R>,
) -> Vec<R> {
    let mut got = Vec::new();
    while let Some(r) = it.next_within(LONG) {
        got.push(r.expect("item"));
    }
    got
}

/// `next_timeout` of both imap iterators, for `drain`.
trait NextTimeout<R> {
    fn next_within(&mut self, t: Duration) -> Option<mp_pool::Result<R>>;
}

impl<R: serde::de::DeserializeOwned, I: Iterator> NextTimeout<R> for mp_pool::IMapIterator<R, I> {
    fn next_within(&mut self, t: Duration) -> Option<mp_pool::Result<R>> {
        self.next_timeout(t)
    }
}

impl<R: serde::de::DeserializeOwned, I: Iterator> NextTimeout<R>
    for mp_pool::IMapUnorderedIterator<R, I>
{
    fn next_within(&mut self, t: Duration) -> Option<mp_pool::Result<R>> {
        self.next_timeout(t)
    }
}

#[test]
fn apply_map_starmap_and_imap_equal_the_sequential_results_under_every_start_method() {
    for m in METHODS {
        let p = pool(m);
        assert_eq!(
            p.apply_async(sqr, 10).unwrap().get_timeout(LONG).unwrap(),
            100,
            "{m}"
        );
        assert_eq!(p.apply(sqr, 7).unwrap(), 49, "{m}");
        let want: Vec<i64> = (0..100).map(sqr).collect();
        assert_eq!(
            p.map_async(sqr, 0..100).unwrap().get_timeout(LONG).unwrap(),
            want,
            "{m}"
        );
        assert_eq!(
            p.map_async_chunksize(sqr, 0..100, 7)
                .unwrap()
                .get_timeout(LONG)
                .unwrap(),
            want,
            "{m}"
        );
        let pairs: Vec<(i64, i64)> = (0..50).map(|i| (i, 2 * i)).collect();
        let sums: Vec<i64> = pairs.iter().map(|&(a, b)| a + b).collect();
        assert_eq!(
            p.starmap_async(add, pairs.clone())
                .unwrap()
                .get_timeout(LONG)
                .unwrap(),
            sums,
            "{m}"
        );
        assert_eq!(
            p.starmap_async_chunksize(add, pairs.clone(), 4)
                .unwrap()
                .get_timeout(LONG)
                .unwrap(),
            sums,
            "{m}"
        );
        assert_eq!(drain(p.imap(sqr, 0..100).unwrap()), want, "{m}");
        assert_eq!(
            drain(p.imap_chunksize(sqr, 0..100, 9).unwrap()),
            want,
            "{m}"
        );
        let mut got = drain(p.imap_unordered_chunksize(sqr, 0..100, 3).unwrap());
        got.sort_unstable();
        assert_eq!(got, want, "{m}");
        // A non-capturing closure is a task too.
        assert_eq!(
            p.apply_async(|s: String| s.len(), "four".to_string())
                .unwrap()
                .get_timeout(LONG)
                .unwrap(),
            4,
            "{m}"
        );
        finish(p);
    }
}

#[test]
fn the_blocking_forms_map_starmap_and_try_map_match_too() {
    let p = pool(StartMethod::Fork);
    within("blocking forms", move || {
        assert_eq!(
            p.map(sqr, 0..10).unwrap(),
            [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]
        );
        assert_eq!(
            p.map_chunksize(sqr, 0..10, 3).unwrap(),
            [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]
        );
        assert_eq!(p.starmap(add, vec![(1, 2), (3, 4)]).unwrap(), [3, 7]);
        assert_eq!(
            p.starmap_chunksize(add, vec![(1, 2), (3, 4), (5, 6)], 2)
                .unwrap(),
            [3, 7, 11]
        );
        assert_eq!(p.try_map(checked_sqrt, [0, 1, 4, 9]).unwrap(), [0, 1, 2, 3]);
        assert_eq!(p.try_apply(checked_sqrt, 16).unwrap(), 4);
        finish(p);
    });
}

/// The identity, the successor (wrapping) and a text, for every integer type.
macro_rules! int_fns {
    ($($t:ident),*) => {
        mod ints {
            $(pub mod $t {
                pub fn same(x: $t) -> $t { x }
                pub fn next(x: $t) -> $t { x.wrapping_add(1) }
                pub fn show(x: $t) -> String { x.to_string() }
                pub fn parse(s: String) -> $t { s.parse().unwrap() }
            })*
        }
    };
}
int_fns!(u8, u16, u32, u64, usize, i8, i16, i32, i64, isize);

/// Maps over every integer type the codec's fast path reads and writes (`codec::ints`), at
/// every boundary of every form, with integers as arguments and results, as arguments only
/// and as results only, by `map` (one chunk and several) and `imap`: the results are the
/// sequential ones under every start method.
#[test]
fn maps_over_every_integer_type_at_every_form_boundary_equal_the_sequential_results() {
    macro_rules! check {
        ($p:expr, $($t:ident),*) => {$({
            let xs: Vec<$t> = int_form_edges().into_iter().filter_map(|v| $t::try_from(v).ok()).collect();
            let p = $p;
            assert_eq!(p.map(ints::$t::same, xs.clone()).unwrap(), xs, stringify!($t));
            let next: Vec<$t> = xs.iter().map(|x| x.wrapping_add(1)).collect();
            assert_eq!(p.map_chunksize(ints::$t::next, xs.clone(), 2).unwrap(), next);
            let shown: Vec<String> = xs.iter().map(|x| x.to_string()).collect();
            assert_eq!(p.map(ints::$t::show, xs.clone()).unwrap(), shown);
            assert_eq!(p.map(ints::$t::parse, shown.clone()).unwrap(), xs);
            let got: Vec<$t> = drain(p.imap(ints::$t::next, xs.clone()).unwrap());
            assert_eq!(got, next);
        })*};
    }
    for m in METHODS {
        let p = pool(m);
        within("every integer type", move || {
            check!(&p, u8, u16, u32, u64, usize, i8, i16, i32, i64, isize);
            // Chunks large enough to be sent by a gather write (`send_gathered`).
            let big: Vec<u64> = (0..100_000u64).map(|x| x * 40_503).collect();
            let next: Vec<u64> = big.iter().map(|x| x + 1).collect();
            assert_eq!(p.map(ints::u64::next, big).unwrap(), next);
            finish(p);
        });
    }
}

#[test]
fn an_empty_input_gives_an_empty_result() {
    let p = pool(StartMethod::Fork);
    let r = p.map_async(sqr, Vec::<i64>::new()).unwrap();
    assert!(r.ready());
    assert_eq!(r.get_timeout(LONG).unwrap(), Vec::<i64>::new());
    assert_eq!(
        drain(p.imap(sqr, Vec::<i64>::new()).unwrap()),
        Vec::<i64>::new()
    );
    assert_eq!(
        drain(p.imap_unordered(sqr, Vec::<i64>::new()).unwrap()),
        Vec::<i64>::new()
    );
    assert!(p
        .starmap_async(add, Vec::new())
        .unwrap()
        .get_timeout(LONG)
        .unwrap()
        .is_empty());
    finish(p);
}

#[test]
fn zero_processes_zero_maxtasksperchild_and_zero_chunksize_are_typed_errors() {
    assert!(matches!(Pool::new(0), Err(Error::InvalidArgument(_))));
    assert!(matches!(
        Pool::builder().processes(1).maxtasksperchild(0).build(),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        Pool::builder()
            .processes(1)
            .time_limit(Duration::ZERO)
            .build(),
        Err(Error::InvalidArgument(_))
    ));
    let p = Pool::builder().processes(1).build().unwrap();
    assert!(matches!(
        p.map_async_chunksize(sqr, 0..3, 0),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        p.imap_chunksize(sqr, 0..3, 0),
        Err(Error::InvalidArgument(_))
    ));
    assert_eq!(p.processes(), 1);
    let q = Pool::builder()
        .processes(1)
        .context(mp_core::get_context(Some(StartMethod::Spawn)))
        .build()
        .unwrap();
    assert_eq!(
        q.apply_async(sqr, 9).unwrap().get_timeout(LONG).unwrap(),
        81
    );
    finish(q);
    assert_eq!(
        Pool::builder().build().unwrap().processes(),
        mp_core::cpu_count()
    );
    finish(p);
}

#[test]
fn async_results_report_ready_successful_wait_and_a_typed_timeout() {
    let p = pool(StartMethod::Fork);
    let slow = p.apply_async(sleep_ms, 400).unwrap();
    assert!(!slow.ready());
    assert!(matches!(slow.successful(), Err(Error::NotReady)));
    let t0 = Instant::now();
    assert!(matches!(
        slow.get_timeout(Duration::from_millis(50)),
        Err(Error::Timeout)
    ));
    assert!(t0.elapsed() >= Duration::from_millis(50));
    assert!(!slow.wait_timeout(Duration::from_millis(10)));
    assert!(slow.wait_deadline(Instant::now() + LONG));
    assert!(slow.ready());
    assert!(slow.successful().unwrap());
    assert_eq!(slow.get_timeout(LONG).unwrap(), 400);
    assert_eq!(slow.get_deadline(Instant::now()).unwrap(), 400, "get twice");
    let bad = p.apply_async(panic_on_7, 7).unwrap();
    assert!(bad.wait_timeout(LONG));
    assert!(!bad.successful().unwrap());
    let m = p.map_async(sleep_ms, [10, 20]).unwrap();
    assert!(m.wait_timeout(LONG));
    assert!(m.successful().unwrap());
    assert_eq!(m.get_timeout(LONG).unwrap(), [10, 20]);
    finish(p);
}

#[test]
fn callbacks_and_error_callbacks_run_in_the_parent_before_the_result_is_ready() {
    for m in METHODS {
        let p = pool(m);
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let (s1, s2, s3, s4) = (seen.clone(), seen.clone(), seen.clone(), seen.clone());
        let ok = p
            .apply_async_with(
                sqr,
                5,
                move |r: &i64| {
                    s1.lock()
                        .unwrap()
                        .push(format!("ok {r} in {}", std::process::id()))
                },
                move |e: &Error| s2.lock().unwrap().push(format!("unexpected {e}")),
            )
            .unwrap();
        let bad = p
            .apply_async_with(
                panic_on_7,
                7,
                move |_: &i64| s3.lock().unwrap().push("unexpected ok".into()),
                move |e: &Error| s4.lock().unwrap().push(format!("err {}", e.is_panic())),
            )
            .unwrap();
        assert_eq!(ok.get_timeout(LONG).unwrap(), 25);
        assert!(bad.get_timeout(LONG).unwrap_err().is_panic());
        let s5 = seen.clone();
        let s6 = seen.clone();
        let star = p
            .starmap_async_with(
                add,
                vec![(1, 2)],
                move |v: &Vec<i64>| s6.lock().unwrap().push(format!("star {v:?}")),
                |_| {},
            )
            .unwrap();
        assert_eq!(star.get_timeout(LONG).unwrap(), [3]);
        let all = p
            .map_async_with(
                sqr,
                0..4,
                move |v: &Vec<i64>| s5.lock().unwrap().push(format!("map {v:?}")),
                |_| {},
            )
            .unwrap();
        assert_eq!(all.get_timeout(LONG).unwrap(), [0, 1, 4, 9]);
        let seen = seen.lock().unwrap().clone();
        let me = std::process::id();
        assert!(seen.contains(&format!("ok 25 in {me}")), "{m}: {seen:?}");
        assert!(seen.contains(&"err true".to_string()), "{m}: {seen:?}");
        assert!(
            seen.contains(&"map [0, 1, 4, 9]".to_string()),
            "{m}: {seen:?}"
        );
        assert!(seen.contains(&"star [3]".to_string()), "{m}: {seen:?}");
        assert_eq!(seen.len(), 4, "{m}: {seen:?}");
        finish(p);
    }
}

#[test]
fn a_panicking_task_reports_message_and_location_and_its_worker_survives() {
    for m in METHODS {
        let p = Pool::builder()
            .processes(1)
            .start_method(m)
            .build()
            .unwrap();
        let before = p.apply_async(my_pid, 0).unwrap().get_timeout(LONG).unwrap();
        let e = p
            .apply_async(panic_on_7, 7)
            .unwrap()
            .get_timeout(LONG)
            .unwrap_err();
        match &e {
            Error::TaskPanicked { message, location } => {
                assert_eq!(message, "seven is not allowed", "{m}");
                let at = location.as_deref().unwrap_or("");
                assert!(at.contains("api.rs:"), "{m}: location {at:?}");
            }
            other => panic!("{m}: expected TaskPanicked, got {other:?}"),
        }
        assert!(e.to_string().contains("seven is not allowed"), "{m}: {e}");
        let e = p
            .try_apply_async(checked_sqrt, -4)
            .unwrap()
            .get_timeout(LONG)
            .unwrap_err();
        assert!(
            matches!(&e, Error::Remote { message } if message == "negative input -4"),
            "{m}: {e:?}"
        );
        let after = p.apply_async(my_pid, 0).unwrap().get_timeout(LONG).unwrap();
        assert_eq!(before, after, "{m}: the worker was replaced after a panic");
        assert_eq!(
            p.apply_async(sqr, 3).unwrap().get_timeout(LONG).unwrap(),
            9,
            "{m}"
        );
        finish(p);
    }
}

#[test]
fn a_map_with_a_failing_item_fails_only_after_every_chunk_has_finished() {
    let p = pool(StartMethod::Fork);
    // Item 7 fails at once; item 0 sleeps 300 ms in another chunk.
    fn slow_zero_bad_seven(x: i64) -> i64 {
        if x == 0 {
            std::thread::sleep(Duration::from_millis(300));
        }
        panic_on_7(x)
    }
    let t0 = Instant::now();
    let r = p
        .map_async_chunksize(slow_zero_bad_seven, 0..10, 1)
        .unwrap();
    let e = r.get_timeout(LONG).unwrap_err();
    assert!(
        t0.elapsed() >= Duration::from_millis(300),
        "returned before the slow chunk ended"
    );
    assert!(e.is_panic(), "{e:?}");
    assert!(!r.successful().unwrap());
    let e = p.try_map(checked_sqrt, [4, -1, 9]).unwrap_err();
    assert!(matches!(e, Error::Remote { .. }), "{e:?}");
    // Other tasks are unaffected.
    assert_eq!(
        p.map_async(sqr, 0..5).unwrap().get_timeout(LONG).unwrap(),
        [0, 1, 4, 9, 16]
    );
    // imap reports each item on its own.
    let items: Vec<bool> = {
        let mut it = p.imap(panic_on_7, 5..10).unwrap();
        let mut v = Vec::new();
        while let Some(r) = it.next_timeout(LONG) {
            v.push(r.is_ok());
        }
        v
    };
    assert_eq!(items, [true, true, false, true, true]);
    finish(p);
}

#[test]
fn failed_items_inside_a_chunk_keep_their_places_among_the_results() {
    // A chunk's `Ok` results cross as one array and its failures by index: each item comes
    // back in its own place, whichever items of the chunk fail (first, last, several in a row).
    fn fails(x: i64) -> bool {
        x % 7 == 0 || x == 19 || x == 20
    }
    fn sevens_panic(x: i64) -> i64 {
        assert!(!fails(x), "no {x}");
        x * x
    }
    let p = pool(StartMethod::Fork);
    let got: Vec<std::result::Result<i64, String>> = {
        let mut it = p.imap_chunksize(sevens_panic, 0..23, 8).unwrap();
        let mut v = Vec::new();
        while let Some(r) = it.next_timeout(LONG) {
            v.push(r.map_err(|e| e.to_string()));
        }
        v
    };
    assert_eq!(got.len(), 23);
    for (x, r) in (0..23).zip(&got) {
        if fails(x) {
            let m = format!("no {x}");
            assert!(r.as_ref().is_err_and(|e| e.contains(&m)), "item {x}: {r:?}");
        } else {
            assert_eq!(r.as_ref().ok(), Some(&(x * x)), "item {x}");
        }
    }
    finish(p);
}

/// An iterator whose `size_hint` claims an exact length it does not have.
struct Liar {
    next: i64,
    end: i64,
    claims: usize,
}

impl Iterator for Liar {
    type Item = i64;
    fn next(&mut self) -> Option<i64> {
        (self.next < self.end).then(|| {
            self.next += 1;
            self.next - 1
        })
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.claims, Some(self.claims))
    }
}

#[test]
fn a_map_reads_a_sized_input_chunk_by_chunk_and_a_lying_size_hint_loses_no_item() {
    let p = pool(StartMethod::Fork);
    let want = |n: i64| (0..n).map(sqr).collect::<Vec<_>>();
    assert_eq!(p.map(sqr, 0..1000).unwrap(), want(1000));
    for (end, claims) in [(10, 3), (10, 40), (0, 5), (5, 0), (1000, 999), (999, 1000)] {
        let liar = Liar {
            next: 0,
            end,
            claims,
        };
        assert_eq!(
            p.map(sqr, liar).unwrap(),
            want(end),
            "{end} items, {claims} claimed"
        );
        let liar = Liar {
            next: 0,
            end,
            claims,
        };
        assert_eq!(
            p.map_chunksize(sqr, liar, 3).unwrap(),
            want(end),
            "{end} items, {claims} claimed, chunks of 3"
        );
    }
    finish(p);
}

#[test]
fn map_uses_cpythons_default_chunksize() {
    // ceil(n / (4 * workers)): 10 items on 2 workers make chunks of 2, so 5 tasks, each run
    // by one worker; a worker's pid repeats inside a chunk.
    let p = Pool::builder()
        .processes(2)
        .maxtasksperchild(1)
        .build()
        .unwrap();
    let pids = p
        .map_async(my_pid, 0..10)
        .unwrap()
        .get_timeout(LONG)
        .unwrap();
    for pair in pids.chunks(2) {
        assert_eq!(pair[0], pair[1], "a chunk of 2 ran on one worker: {pids:?}");
    }
    let distinct: HashSet<i32> = pids.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        5,
        "maxtasksperchild(1): one worker per chunk: {pids:?}"
    );
    finish(p);
}

#[test]
fn calls_after_close_fail_and_join_before_close_fails() {
    let p = pool(StartMethod::Fork);
    assert!(matches!(p.join_timeout(LONG), Err(Error::StillRunning)));
    let pending = p.apply_async(sleep_ms, 200).unwrap();
    p.close();
    assert!(p.apply_async(sqr, 1).unwrap_err().is_not_running());
    assert!(p.map_async(sqr, 0..3).unwrap_err().is_not_running());
    assert!(p.imap(sqr, 0..3).unwrap_err().is_not_running());
    // Closing lets queued work finish.
    assert!(p.join_timeout(LONG).unwrap());
    assert_eq!(pending.get_timeout(LONG).unwrap(), 200);
    assert!(p.worker_pids().is_empty());
    p.terminate();
    assert!(p.join_timeout(LONG).unwrap());
}

/// Whether worker `pid` is gone: reaped at once by the pool when it is our child (fork,
/// spawn); a fork server's child is the server's to reap, which it does as soon as it sees the
/// child end, while our `join` returns as soon as the child's pidfd says it has ended (its own
/// last word gives the exit code), so that one gets a moment.
fn reaped(m: StartMethod, pid: i32) -> bool {
    let gone = || !std::path::Path::new(&format!("/proc/{pid}")).exists();
    if m == StartMethod::Forkserver {
        mp_testkit::eventually("the fork server reaping a worker", gone);
        true
    } else {
        gone()
    }
}

#[test]
fn join_after_close_reaps_every_worker_and_a_drop_after_close_does_too() {
    for m in METHODS {
        // `join` reaps the workers itself (the supervisor only tells them to stop): once it
        // returns, none of them is left, not even as a zombie.
        let p = pool(m);
        assert_eq!(
            p.apply_async(sqr, 7).unwrap().get_timeout(LONG).unwrap(),
            49
        );
        let pids = p.worker_pids();
        assert_eq!(pids.len(), 2);
        p.close();
        assert!(p.join_timeout(LONG).unwrap());
        for &pid in &pids {
            assert!(
                reaped(m, pid),
                "{m:?}: worker {pid} is still there after join"
            );
        }
        // A second join has nothing left to do.
        assert!(p.join_timeout(LONG).unwrap());

        // Closed, then dropped or terminated without a join: the workers are reaped all the
        // same.
        let p = pool(m);
        assert_eq!(
            p.apply_async(sqr, 8).unwrap().get_timeout(LONG).unwrap(),
            64
        );
        let pids = p.worker_pids();
        p.close();
        drop(p);
        let p = pool(m);
        assert_eq!(
            p.apply_async(sqr, 9).unwrap().get_timeout(LONG).unwrap(),
            81
        );
        let more = p.worker_pids();
        p.close();
        p.terminate();
        for &pid in pids.iter().chain(&more) {
            assert!(
                reaped(m, pid),
                "{m:?}: worker {pid} is still there after a drop or terminate"
            );
        }
        assert!(p.join_timeout(LONG).unwrap());
    }
}

/// Registers a finalizer that makes this process take `ms` milliseconds longer to exit.
fn linger_at_exit(ms: u64) -> u64 {
    let _f = mp_core::util::Finalize::new(
        move || std::thread::sleep(Duration::from_millis(ms)),
        Some(0),
    );
    ms
}

/// Regression test: two threads joining a closed pool at once both return only once its
/// workers have exited. (`join` reaps the workers itself; a second `join` that found them
/// already taken by the first returned at once, with a worker still running.)
#[test]
fn two_joins_at_once_both_wait_for_the_workers() {
    let p = pool(StartMethod::Fork);
    assert_eq!(
        p.apply_async(linger_at_exit, 400)
            .unwrap()
            .get_timeout(LONG)
            .unwrap(),
        400
    );
    let pids = p.worker_pids();
    p.close();
    let t0 = Instant::now();
    std::thread::scope(|s| {
        let first = s.spawn(|| p.join_timeout(LONG).unwrap());
        std::thread::sleep(Duration::from_millis(100));
        assert!(p.join_timeout(LONG).unwrap());
        let took = t0.elapsed();
        for &pid in &pids {
            assert!(
                reaped(StartMethod::Fork, pid),
                "worker {pid} is still there when the second join returned ({took:?} after close)"
            );
        }
        assert!(first.join().unwrap());
    });
}

#[test]
fn terminate_returns_promptly_with_ten_thousand_tasks_queued_and_busy_workers() {
    for m in METHODS {
        let p = pool(m);
        let pids = p.worker_pids();
        assert_eq!(pids.len(), 2);
        let results: Vec<_> = (0..10_000)
            .map(|_| p.apply_async(sleep_ms, 60_000).unwrap())
            .collect();
        std::thread::sleep(Duration::from_millis(100));
        let t0 = Instant::now();
        let p = within("terminate", move || {
            p.terminate();
            p
        });
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "{m}: terminate took {:?}",
            t0.elapsed()
        );
        for pid in pids {
            assert!(
                mp_testkit::ends_within(pid, LONG),
                "{m}: worker {pid} still runs"
            );
        }
        for r in &results {
            assert!(
                r.get_timeout(Duration::from_secs(1))
                    .unwrap_err()
                    .is_terminated(),
                "{m}"
            );
        }
        assert!(p.join_timeout(LONG).unwrap());
        assert!(p.apply_async(sqr, 1).unwrap_err().is_not_running());
    }
}

#[test]
fn dropping_a_pool_terminates_it_and_resolves_its_results() {
    let p = pool(StartMethod::Fork);
    let pids = p.worker_pids();
    let r = p.apply_async(sleep_ms, 60_000).unwrap();
    let queued = p.apply_async(sleep_ms, 60_000).unwrap();
    let queued2 = p.apply_async(sleep_ms, 60_000).unwrap();
    within("drop", move || drop(p));
    assert!(r.get_timeout(LONG).unwrap_err().is_terminated());
    assert!(queued.get_timeout(LONG).unwrap_err().is_terminated());
    assert!(queued2.get_timeout(LONG).unwrap_err().is_terminated());
    for pid in pids {
        assert!(
            mp_testkit::ends_within(pid, LONG),
            "worker {pid} still runs"
        );
    }
}

#[test]
fn maxtasksperchild_replaces_a_worker_after_n_tasks() {
    for m in METHODS {
        let p = Pool::builder()
            .processes(1)
            .maxtasksperchild(2)
            .start_method(m)
            .build()
            .unwrap();
        let pids: Vec<i32> = (0..6)
            .map(|i| p.apply_async(my_pid, i).unwrap().get_timeout(LONG).unwrap())
            .collect();
        assert_eq!(pids[0], pids[1], "{m}: {pids:?}");
        assert_eq!(pids[2], pids[3], "{m}: {pids:?}");
        assert_eq!(pids[4], pids[5], "{m}: {pids:?}");
        let distinct: HashSet<i32> = pids.iter().copied().collect();
        assert_eq!(distinct.len(), 3, "{m}: {pids:?}");
        // Submitted all at once, the tasks still go two per worker.
        let rs: Vec<_> = (0..6).map(|i| p.apply_async(my_pid, i).unwrap()).collect();
        let pids: Vec<i32> = rs.iter().map(|r| r.get_timeout(LONG).unwrap()).collect();
        let distinct: HashSet<i32> = pids.iter().copied().collect();
        assert_eq!(distinct.len(), 3, "{m}: {pids:?}");
        finish(p);
    }
}

/// Runs a pool inside a child process and returns its map.
fn pool_in_child(m: StartMethod) -> Vec<i64> {
    let p = Pool::builder()
        .processes(2)
        .start_method(m)
        .build()
        .expect("pool in child");
    let r = p
        .map_async(sqr, 0..5)
        .expect("map")
        .get_timeout(LONG)
        .expect("get");
    p.close();
    p.join_timeout(LONG).expect("join");
    r
}

#[test]
fn a_pool_works_inside_a_child_process_under_every_start_method() {
    for m in METHODS {
        let mut child = Process::new(pool_in_child, m).start_method(m);
        child.start().unwrap();
        assert_eq!(join_result(&child).unwrap(), [0, 1, 4, 9, 16], "{m}");
    }
}

#[test]
fn arguments_holding_handles_are_refused_with_a_clear_error() {
    let p = pool(StartMethod::Fork);
    fn take_conn(_: mp_core::Connection) {}
    let (a, _b) = mp_core::pipe(true).unwrap();
    let e = p.apply_async(take_conn, a).unwrap_err();
    assert!(
        matches!(e, Error::InvalidArgument(ref m) if m.contains("initializer")),
        "{e:?}"
    );
    finish(p);
}

#[test]
fn pools_results_and_iterators_cross_threads() {
    fn is_send_sync<T: Send + Sync>() {}
    fn is_send<T: Send>() {}
    is_send_sync::<Pool>();
    is_send_sync::<mp_pool::AsyncResult<i64>>();
    is_send_sync::<mp_pool::MapResult<i64>>();
    is_send::<mp_pool::IMapIterator<i64, std::vec::IntoIter<i64>>>();
    is_send::<mp_pool::IMapUnorderedIterator<i64, std::ops::Range<i64>>>();
    let p = pool(StartMethod::Fork);
    let it = p.imap(sqr, vec![1, 2, 3]).unwrap();
    let got = std::thread::spawn(move || {
        let mut it = it;
        let mut v = Vec::new();
        while let Some(r) = it.next_timeout(LONG) {
            v.push(r.unwrap());
        }
        v
    })
    .join()
    .unwrap();
    assert_eq!(got, [1, 4, 9]);
    finish(p);
}

/// A value that encodes but refuses to decode when it is 7: a result the caller cannot decode.
#[derive(Debug, PartialEq, serde::Serialize)]
struct NoSeven(i64);

impl<'de> serde::Deserialize<'de> for NoSeven {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = i64::deserialize(d)?;
        if v == 7 {
            return Err(serde::de::Error::custom("seven does not decode"));
        }
        Ok(NoSeven(v))
    }
}

fn no_seven(x: i64) -> NoSeven {
    NoSeven(x)
}

/// A map's values are decoded by `get` in the caller's thread, chunk by chunk as the chunks
/// arrive: a `get` that times out part-way loses nothing (a later one returns every value),
/// every `get` returns the whole result, and a value that does not decode fails the map once
/// it has finished, with the decoder's message, instead of hanging or panicking.
#[test]
fn a_map_get_decodes_as_chunks_arrive_and_may_time_out_part_way() {
    let p = pool(StartMethod::Fork);
    // Chunk 0 is fast, chunk 1 sleeps 300 ms: the first `get` decodes chunk 0, then times out.
    let m = p
        .map_async_chunksize(sleep_ms, vec![1, 2, 300, 4], 2)
        .unwrap();
    assert!(matches!(
        m.get_timeout(Duration::from_millis(100)),
        Err(Error::Timeout)
    ));
    assert_eq!(m.get_timeout(LONG).unwrap(), [1, 2, 300, 4]);
    assert_eq!(m.get_timeout(LONG).unwrap(), [1, 2, 300, 4], "get twice");
    assert!(m.successful().unwrap());

    let bad = p.map_async_chunksize(no_seven, 0..20, 3).unwrap();
    let e = bad.get_timeout(LONG).unwrap_err();
    assert!(e.to_string().contains("seven does not decode"), "{e}");
    assert!(bad.ready());
    // The same error again, and the pool goes on.
    assert!(bad.get_timeout(LONG).is_err());
    assert_eq!(
        p.map_async(no_seven, [1, 2, 3])
            .unwrap()
            .get_timeout(LONG)
            .unwrap(),
        [NoSeven(1), NoSeven(2), NoSeven(3)]
    );
    finish(p);
}

/// An `imap` (and an `imap_unordered`) of many tiny tasks, one per chunk, loses no wake-up:
/// no wait for the next result runs to its timeout (10 s, where a result takes microseconds),
/// so a wake-up lost between the iterator's last look and its sleep fails here instead of
/// stalling it (one was, once the iterator learned to spin for a moment before sleeping and
/// looked only before the spin).
#[test]
fn imap_of_many_tiny_tasks_never_misses_a_wake_up() {
    let p = Pool::builder()
        .processes(2)
        .start_method(StartMethod::Fork)
        .build()
        .unwrap();
    const N: i64 = 10_000;
    const WAIT: Duration = Duration::from_secs(10);
    let next = |it: &mut dyn FnMut(Duration) -> Option<mp_pool::Result<i64>>, what: &str| {
        let t0 = Instant::now();
        let got = it(WAIT);
        assert!(t0.elapsed() < WAIT, "{what}: a wait ran to its timeout");
        match got {
            Some(Ok(v)) => v,
            other => panic!("{what}: {other:?}"),
        }
    };
    for round in 0..3 {
        let mut it = p.imap(sqr, 0..N).unwrap();
        for i in 0..N {
            let v = next(
                &mut |t| it.next_timeout(t),
                &format!("round {round}, item {i}"),
            );
            assert_eq!(v, i * i);
        }
        assert!(it.next_timeout(WAIT).is_none());
        let mut it = p.imap_unordered(sqr, 0..N).unwrap();
        let mut sum = 0;
        for i in 0..N {
            sum += next(
                &mut |t| it.next_timeout(t),
                &format!("unordered {round}, item {i}"),
            );
        }
        assert_eq!(sum, (0..N).map(|i| i * i).sum::<i64>());
    }
    p.close();
    assert!(p.join_timeout(LONG).unwrap());
}
