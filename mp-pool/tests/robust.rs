//! Beyond every peer (issue items 7 to 11 and 13): a worker killed in the middle of a task,
//! time limits, nothing left unresolved, cancellation, lazy bounded input, robust callbacks
//! and initializers, a memory cap. Real worker processes, a real SIGKILL, a real `abort()`,
//! under every start method where it applies; every blocking call bounded.
//!
//! CPython hangs in most of these cases (gh-66587, gh-126743, gh-83371, gh-87472, gh-84291),
//! so nothing here is ported from its test suite.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use mp_core::codec::Bytes;
use mp_core::StartMethod;
use mp_pool::{Error, Pool};
use mp_testkit::{ends_within, eventually, kill_pid, within, Counters, KILLED, LONG, METHODS};

fn sqr(x: i64) -> i64 {
    x * x
}

fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

fn my_pid(_: u32) -> i32 {
    std::process::id() as i32
}

fn abort_on_3(x: i64) -> i64 {
    if x == 3 {
        std::process::abort();
    }
    x * x
}

fn finish(p: Pool) {
    p.close();
    assert!(
        p.join_timeout(LONG).expect("join"),
        "the pool's workers did not exit"
    );
}

fn one_worker(m: StartMethod) -> Pool {
    Pool::builder()
        .processes(1)
        .start_method(m)
        .build()
        .expect("pool")
}

/// The workers' view of the test's counters (given by the initializer): slot 0 holds the pid
/// of the worker that runs `pid_then_sleep`.
static SEEN: OnceLock<Counters> = OnceLock::new();

fn keep_counters(c: Counters) {
    let _ = SEEN.set(c);
}

/// Says which worker runs it (when it is a long task), then sleeps.
fn pid_then_sleep(ms: u64) -> u64 {
    if let (Some(c), true) = (SEEN.get(), ms >= 1000) {
        c.set(0, u64::from(std::process::id()));
    }
    sleep_ms(ms)
}

#[test]
fn a_worker_sigkilled_mid_task_fails_exactly_that_task_with_worker_lost() {
    for m in METHODS {
        let seen = Counters::new(1);
        let p = Pool::builder()
            .processes(2)
            .start_method(m)
            .initializer(keep_counters, seen.clone())
            .build()
            .unwrap();
        let busy = p.apply_async(pid_then_sleep, 60_000).unwrap();
        let others: Vec<_> = (0..20)
            .map(|i| p.apply_async(sleep_ms, 10 + i % 3).unwrap())
            .collect();
        eventually("the long task starts", || seen.get(0) != 0);
        let victim = seen.get(0) as i32;
        assert!(p.worker_pids().contains(&victim), "{m}");
        kill_pid(victim);
        match busy.get_timeout(LONG) {
            Err(Error::WorkerLost { pid, exitcode }) => {
                assert_eq!(pid, victim, "{m}");
                assert_eq!(exitcode, KILLED, "{m}");
            }
            other => panic!("{m}: expected WorkerLost, got {other:?}"),
        }
        // Every other task is unaffected; the pool replaced the worker and goes on.
        for (i, r) in others.iter().enumerate() {
            assert_eq!(r.get_timeout(LONG).unwrap(), 10 + i as u64 % 3, "{m}");
        }
        eventually("a replacement worker", || {
            let now = p.worker_pids();
            now.len() == 2 && !now.contains(&victim)
        });
        assert_eq!(
            p.map_async(sqr, 0..20).unwrap().get_timeout(LONG).unwrap(),
            (0..20).map(sqr).collect::<Vec<_>>(),
            "{m}"
        );
        // A map whose worker is killed returns WorkerLost once the rest has finished.
        seen.set(0, 0);
        let map = p
            .map_async_chunksize(pid_then_sleep, vec![60_000, 5, 5, 5, 5, 5], 1)
            .unwrap();
        eventually("the map's long item starts", || seen.get(0) != 0);
        kill_pid(seen.get(0) as i32);
        assert!(map.get_timeout(LONG).unwrap_err().is_worker_lost(), "{m}");
        finish(p);
    }
}

#[test]
fn a_killed_worker_of_a_single_worker_pool_is_replaced_and_the_queue_goes_on() {
    for m in METHODS {
        let p = one_worker(m);
        let busy = p.apply_async(sleep_ms, 60_000).unwrap();
        let behind: Vec<_> = (0..5).map(|i| p.apply_async(sqr, i).unwrap()).collect();
        std::thread::sleep(Duration::from_millis(100));
        let victim = p.worker_pids()[0];
        kill_pid(victim);
        match busy.get_timeout(LONG) {
            Err(e @ Error::WorkerLost { .. }) => {
                assert!(e.to_string().contains("killed by signal 9"), "{m}: {e}");
            }
            other => panic!("{m}: expected WorkerLost, got {other:?}"),
        }
        let got: Vec<i64> = behind
            .iter()
            .map(|r| r.get_timeout(LONG).unwrap())
            .collect();
        assert_eq!(got, [0, 1, 4, 9, 16], "{m}");
        assert_ne!(
            p.apply_async(my_pid, 0).unwrap().get_timeout(LONG).unwrap(),
            victim
        );
        finish(p);
    }
}

#[test]
fn a_worker_that_aborts_fails_its_task_and_a_map_returns_that_error_after_the_rest() {
    for m in METHODS {
        let p = Pool::builder()
            .processes(2)
            .start_method(m)
            .build()
            .unwrap();
        let e = p
            .apply_async(abort_on_3, 3)
            .unwrap()
            .get_timeout(LONG)
            .unwrap_err();
        assert!(
            matches!(e, Error::WorkerLost { exitcode: -6, .. }),
            "{m}: expected WorkerLost by SIGABRT, got {e:?}"
        );
        let t0 = Instant::now();
        fn slow_or_abort(x: i64) -> i64 {
            if x == 0 {
                std::thread::sleep(Duration::from_millis(300));
            }
            abort_on_3(x)
        }
        let r = p.map_async_chunksize(slow_or_abort, 0..8, 1).unwrap();
        let e = r.get_timeout(LONG).unwrap_err();
        assert!(e.is_worker_lost(), "{m}: {e:?}");
        assert!(
            t0.elapsed() >= Duration::from_millis(300),
            "{m}: before the rest finished"
        );
        // imap: exactly the lost item fails.
        let mut it = p.imap(abort_on_3, 0..6).unwrap();
        let mut oks = Vec::new();
        while let Some(r) = it.next_timeout(LONG) {
            oks.push(r.map_err(|e| e.is_worker_lost()));
        }
        assert_eq!(oks, [Ok(0), Ok(1), Ok(4), Err(true), Ok(16), Ok(25)], "{m}");
        finish(p);
    }
}

#[test]
fn a_task_past_the_pools_time_limit_is_killed_and_the_others_are_unaffected() {
    for m in METHODS {
        let p = Pool::builder()
            .processes(2)
            .start_method(m)
            .time_limit(Duration::from_millis(500))
            .build()
            .unwrap();
        let t0 = Instant::now();
        let long = p.apply_async(sleep_ms, 60_000).unwrap();
        let short: Vec<_> = (0..5)
            .map(|_| p.apply_async(sleep_ms, 20).unwrap())
            .collect();
        match long.get_timeout(LONG) {
            Err(Error::TimeLimitExceeded { limit, .. }) => {
                assert_eq!(limit, Duration::from_millis(500), "{m}");
            }
            other => panic!("{m}: expected TimeLimitExceeded, got {other:?}"),
        }
        let took = t0.elapsed();
        assert!(
            took >= Duration::from_millis(500),
            "{m}: killed early, after {took:?}"
        );
        assert!(
            took < Duration::from_secs(10),
            "{m}: killed late, after {took:?}"
        );
        for r in &short {
            assert_eq!(r.get_timeout(LONG).unwrap(), 20, "{m}");
        }
        assert_eq!(
            p.apply_async(sqr, 4).unwrap().get_timeout(LONG).unwrap(),
            16,
            "{m}"
        );
        finish(p);
    }
}

#[test]
fn a_per_task_time_limit_applies_to_that_task_only() {
    let p = one_worker(StartMethod::Fork);
    let before = p.worker_pids();
    let limited = p
        .apply_async_time_limit(sleep_ms, 60_000, Duration::from_millis(200))
        .unwrap();
    let fine = p
        .apply_async_time_limit(sleep_ms, 50, Duration::from_secs(30))
        .unwrap();
    let unlimited = p.apply_async(sleep_ms, 300).unwrap();
    assert!(limited.get_timeout(LONG).unwrap_err().is_time_limit());
    assert_eq!(fine.get_timeout(LONG).unwrap(), 50);
    assert_eq!(unlimited.get_timeout(LONG).unwrap(), 300);
    assert_ne!(p.worker_pids(), before, "the worker was not replaced");
    assert!(ends_within(before[0], LONG));
    finish(p);
}

#[test]
fn cancel_removes_a_queued_task_and_kills_a_running_one() {
    for m in METHODS {
        let p = one_worker(m);
        let first_pid = p.worker_pids()[0];
        let running = p.apply_async(sleep_ms, 60_000).unwrap();
        let queued = p.apply_async(my_pid, 0).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        assert!(queued.cancel(), "{m}");
        assert!(
            matches!(queued.get_timeout(LONG), Err(Error::Cancelled)),
            "{m}"
        );
        assert!(running.cancel(), "{m}");
        assert!(
            matches!(running.get_timeout(LONG), Err(Error::Cancelled)),
            "{m}"
        );
        assert!(
            ends_within(first_pid, LONG),
            "{m}: the running task's worker was not killed"
        );
        // Done results cannot be cancelled; the pool goes on with a new worker.
        let done = p.apply_async(my_pid, 0).unwrap();
        let pid = done.get_timeout(LONG).unwrap();
        assert_ne!(pid, first_pid, "{m}");
        assert!(!done.cancel(), "{m}");
        assert_eq!(done.get_timeout(LONG).unwrap(), pid, "{m}");
        finish(p);
    }
}

#[test]
fn a_task_cancelled_while_waiting_in_its_workers_batch_is_skipped() {
    // Many queued tasks on one worker: the later ones travel in the worker's batch. Cancel
    // them all but the first: none runs (the counter says so), and the pool goes on.
    let counters = Counters::new(1);
    static COUNT: OnceLock<Counters> = OnceLock::new();
    fn init(c: Counters) {
        let _ = COUNT.set(c);
    }
    fn count(ms: u64) -> u64 {
        if let Some(c) = COUNT.get() {
            c.bump(0);
        }
        sleep_ms(ms)
    }
    let p = Pool::builder()
        .processes(1)
        .initializer(init, counters.clone())
        .build()
        .unwrap();
    let rs: Vec<_> = (0..40)
        .map(|_| p.apply_async(count, 100).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(30));
    let cancelled = rs[1..].iter().filter(|r| r.cancel()).count();
    assert!(cancelled >= 30, "only {cancelled} cancelled");
    assert_eq!(rs[0].get_timeout(LONG).unwrap(), 100);
    assert_eq!(
        p.apply_async(count, 0).unwrap().get_timeout(LONG).unwrap(),
        0
    );
    let ran = counters.get(0);
    assert!(
        ran <= 2 + (39 - cancelled as u64),
        "{ran} tasks ran of which {cancelled} were cancelled"
    );
    finish(p);
}

#[test]
fn terminate_resolves_every_pending_result_at_once() {
    for m in METHODS {
        let p = Pool::builder()
            .processes(2)
            .start_method(m)
            .build()
            .unwrap();
        let running = p.apply_async(sleep_ms, 60_000).unwrap();
        let map = p
            .map_async_chunksize(sleep_ms, vec![60_000; 10], 1)
            .unwrap();
        let mut lazy = p.imap(sleep_ms, vec![60_000; 100]).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let p = within("terminate", move || {
            p.terminate();
            p
        });
        let quick = Duration::from_secs(2);
        assert!(
            running.get_timeout(quick).unwrap_err().is_terminated(),
            "{m}"
        );
        assert!(map.get_timeout(quick).unwrap_err().is_terminated(), "{m}");
        let first = lazy.next_timeout(quick).expect("an item");
        assert!(first.unwrap_err().is_terminated(), "{m}");
        assert!(p.join_timeout(LONG).unwrap(), "{m}");
    }
}

#[test]
fn imap_pulls_an_endless_input_lazily_with_a_bounded_number_in_flight() {
    let pulled = Arc::new(AtomicUsize::new(0));
    let counter = pulled.clone();
    let p = Pool::builder()
        .processes(2)
        .imap_buffersize(16)
        .build()
        .unwrap();
    let endless = (0i64..).inspect(move |_| {
        counter.fetch_add(1, Ordering::Relaxed);
    });
    let mut it = p.imap(sqr, endless).unwrap();
    let early = pulled.load(Ordering::Relaxed);
    assert!(
        early <= 16,
        "imap took {early} items before the first next()"
    );
    for i in 0..2_000i64 {
        assert_eq!(it.next_timeout(LONG).unwrap().unwrap(), i * i);
        let n = pulled.load(Ordering::Relaxed);
        assert!(
            n <= i as usize + 1 + 16,
            "{n} items pulled after {} results",
            i + 1
        );
    }
    drop(it);
    let mut un = p.imap_unordered_chunksize(sqr, 0i64.., 4).unwrap();
    let got: HashSet<i64> = (0..100)
        .map(|_| un.next_timeout(LONG).unwrap().unwrap())
        .collect();
    assert_eq!(got.len(), 100);
    drop(un);
    finish(p);
}

#[test]
fn imap_iterators_are_exact_size_when_their_input_is() {
    let p = Pool::new(2).unwrap();
    // (`Range<i64>` is not an ExactSizeIterator; a Vec's iterator is.)
    let mut it = p.imap(sqr, (0..100).collect::<Vec<i64>>()).unwrap();
    assert_eq!(it.len(), 100);
    it.next_timeout(LONG).unwrap().unwrap();
    assert_eq!(it.len(), 99);
    let rest: Vec<i64> = (0..99)
        .map(|_| it.next_timeout(LONG).unwrap().unwrap())
        .collect();
    assert_eq!(rest.len(), 99);
    assert_eq!(it.len(), 0);
    assert!(it.next_timeout(LONG).is_none());
    let un = p
        .imap_unordered_chunksize(sqr, vec![1, 2, 3, 4, 5], 2)
        .unwrap();
    assert_eq!(un.len(), 5);
    // A hand-written progress count, as a progress bar would keep.
    let total = un.len();
    let mut done = 0;
    let mut un = un;
    while let Some(r) = un.next_timeout(LONG) {
        r.unwrap();
        done += 1;
        assert_eq!(un.len(), total - done);
    }
    assert_eq!(done, 5);
    finish(p);
}

/// A logger that keeps what it is given.
struct Keep(Mutex<Vec<String>>);

impl log::Log for Keep {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        self.0
            .lock()
            .unwrap()
            .push(format!("{} {}", record.level(), record.args()));
    }
    fn flush(&self) {}
}

#[test]
fn a_panicking_callback_is_caught_and_logged_and_the_pool_keeps_serving() {
    static LOG: OnceLock<&'static Keep> = OnceLock::new();
    let keep = LOG.get_or_init(|| Box::leak(Box::new(Keep(Mutex::new(Vec::new())))));
    let _ = log::set_logger(*keep);
    log::set_max_level(log::LevelFilter::Info);
    let p = Pool::new(2).unwrap();
    let r = p
        .apply_async_with(sqr, 3, |_: &i64| panic!("callback boom"), |_: &Error| {})
        .unwrap();
    assert_eq!(r.get_timeout(LONG).unwrap(), 9);
    let r = p
        .apply_async_with(
            abort_on_3,
            3,
            |_: &i64| {},
            |_: &Error| panic!("error callback boom"),
        )
        .unwrap();
    assert!(r.get_timeout(LONG).unwrap_err().is_worker_lost());
    let m = p
        .map_async_with(
            sqr,
            0..3,
            |_: &Vec<i64>| panic!("map callback boom"),
            |_| {},
        )
        .unwrap();
    assert_eq!(m.get_timeout(LONG).unwrap(), [0, 1, 4]);
    assert_eq!(
        p.apply_async(sqr, 5).unwrap().get_timeout(LONG).unwrap(),
        25
    );
    let logged = keep.0.lock().unwrap().clone();
    for what in ["callback boom", "error callback boom", "map callback boom"] {
        assert!(
            logged
                .iter()
                .any(|l| l.starts_with("ERROR") && l.contains(what)),
            "{what} not logged: {logged:?}"
        );
    }
    finish(p);
}

fn failing_init(reason: String) -> Result<(), String> {
    Err(reason)
}

fn panicking_init(_: ()) {
    panic!("the initializer panicked");
}

static INIT_VALUE: OnceLock<u64> = OnceLock::new();

fn set_value(v: u64) {
    let _ = INIT_VALUE.set(v);
}

fn read_value(_: ()) -> Option<u64> {
    INIT_VALUE.get().copied()
}

#[test]
fn an_initializer_runs_in_every_worker_and_a_failing_one_fails_the_pools_creation() {
    for m in METHODS {
        let p = Pool::builder()
            .processes(2)
            .start_method(m)
            .initializer(set_value, 42)
            .build()
            .unwrap();
        let vals = p.map_async_chunksize(read_value, vec![(); 8], 1).unwrap();
        assert!(
            vals.get_timeout(LONG)
                .unwrap()
                .iter()
                .all(|v| *v == Some(42)),
            "{m}"
        );
        finish(p);
        let t0 = Instant::now();
        let e = Pool::builder()
            .processes(2)
            .start_method(m)
            .initializer(failing_init, "no database".to_string())
            .build()
            .unwrap_err();
        assert!(
            matches!(&e, Error::Initializer(msg) if msg.contains("no database")),
            "{m}: {e:?}"
        );
        let e = Pool::builder()
            .processes(2)
            .start_method(m)
            .initializer(panicking_init, ())
            .build()
            .unwrap_err();
        assert!(
            matches!(&e, Error::Initializer(msg) if msg.contains("the initializer panicked")),
            "{m}: {e:?}"
        );
        assert!(t0.elapsed() < Duration::from_secs(20), "{m}");
    }
}

#[test]
fn a_replacement_worker_whose_initializer_fails_fails_the_next_call_instead_of_respawning() {
    static STARTS: OnceLock<Counters> = OnceLock::new();
    fn init_once(c: Counters) -> Result<(), String> {
        c.bump(0);
        let n = c.get(0);
        let _ = STARTS.set(c);
        if n > 1 {
            Err(format!("start number {n} refused"))
        } else {
            Ok(())
        }
    }
    let counters = Counters::new(1);
    let p = Pool::builder()
        .processes(1)
        .maxtasksperchild(1)
        .initializer(init_once, counters.clone())
        .build()
        .unwrap();
    assert_eq!(p.apply_async(sqr, 2).unwrap().get_timeout(LONG).unwrap(), 4);
    // The worker retires; its replacement refuses to start: the pool is broken, once.
    eventually("the pool breaks", || {
        matches!(p.apply_async(sqr, 2), Err(Error::Initializer(_)))
    });
    let e = p.apply_async(sqr, 2).unwrap_err();
    assert!(
        matches!(&e, Error::Initializer(m) if m.contains("refused")),
        "{e:?}"
    );
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(counters.get(0), 2, "the pool respawned workers");
    p.terminate();
    assert!(p.join_timeout(LONG).unwrap());
}

fn leak_64_mib(_: ()) -> i32 {
    // Through `black_box`: an optimized build would otherwise drop the writes to a vector that
    // is never read, and the allocation with them.
    let v = std::hint::black_box(vec![1u8; 64 << 20]);
    std::mem::forget(v);
    std::process::id() as i32
}

#[test]
fn a_worker_past_its_memory_cap_after_a_task_is_replaced() {
    for m in METHODS {
        let p = Pool::builder()
            .processes(1)
            .start_method(m)
            .max_memory_per_child(48 << 20)
            .build()
            .unwrap();
        let a = p.apply_async(my_pid, 0).unwrap().get_timeout(LONG).unwrap();
        let b = p.apply_async(my_pid, 0).unwrap().get_timeout(LONG).unwrap();
        assert_eq!(a, b, "{m}: replaced under the cap");
        let fat = p
            .apply_async(leak_64_mib, ())
            .unwrap()
            .get_timeout(LONG)
            .unwrap();
        assert_eq!(fat, a, "{m}");
        let after = p.apply_async(my_pid, 0).unwrap().get_timeout(LONG).unwrap();
        assert_ne!(after, fat, "{m}: the fat worker was not replaced");
        assert!(ends_within(fat, LONG), "{m}");
        finish(p);
    }
}

fn echo_big(v: Bytes) -> Bytes {
    v
}

#[test]
fn big_arguments_and_big_results_never_deadlock_the_supervisor() {
    // 300 kB each way, more than a socket's buffer: a busy worker writing a result while the
    // supervisor writes it more work would block both, if the supervisor sent big work to
    // busy workers.
    for m in METHODS {
        let p = Pool::builder()
            .processes(2)
            .start_method(m)
            .build()
            .unwrap();
        let items: Vec<Bytes> = (0..40u8).map(|i| Bytes(vec![i; 300_000])).collect();
        let r = p.map_async_chunksize(echo_big, items.clone(), 1).unwrap();
        assert_eq!(r.get_timeout(LONG).unwrap(), items, "{m}");
        let rs: Vec<_> = items
            .iter()
            .map(|v| p.apply_async(echo_big, v.clone()).unwrap())
            .collect();
        for (r, v) in rs.iter().zip(&items) {
            assert_eq!(&r.get_timeout(LONG).unwrap(), v, "{m}");
        }
        finish(p);
    }
}

#[test]
fn a_short_task_never_waits_behind_a_long_one_while_another_worker_is_free() {
    let p = Pool::builder().processes(2).build().unwrap();
    let long = p.apply_async(sleep_ms, 2_000).unwrap();
    let t0 = Instant::now();
    let short: Vec<_> = (0..5)
        .map(|_| p.apply_async(sleep_ms, 100).unwrap())
        .collect();
    for r in &short {
        assert_eq!(r.get_timeout(LONG).unwrap(), 100);
    }
    let took = t0.elapsed();
    assert!(
        took < Duration::from_millis(1_600),
        "the short tasks waited for the long one: {took:?}"
    );
    assert_eq!(long.get_timeout(LONG).unwrap(), 2_000);
    finish(p);
}

fn jitter_sqr((x, ms): (i64, u64)) -> i64 {
    std::thread::sleep(Duration::from_millis(ms));
    x * x
}

#[test]
fn workers_killed_at_random_moments_never_hang_a_call_nor_corrupt_a_result() {
    // Random SIGKILLs of random workers while tasks of random lengths (and a map and an imap)
    // run: every result resolves, each to its right value or to WorkerLost, and the pool
    // keeps two workers.
    for m in METHODS {
        let p = Pool::builder()
            .processes(2)
            .start_method(m)
            .build()
            .unwrap();
        let mut rng = mp_testkit::Rng::new(0x5eed ^ m as u64);
        let mut lost = 0;
        for round in 0..8 {
            let rs: Vec<_> = (0..30i64)
                .map(|x| p.apply_async(jitter_sqr, (x, rng.below(8))).unwrap())
                .collect();
            let map = p
                .map_async_chunksize(jitter_sqr, (0..20i64).map(|x| (x, 1)), 3)
                .unwrap();
            let mut it = p.imap(jitter_sqr, (0..20i64).map(|x| (x, 1))).unwrap();
            std::thread::sleep(Duration::from_millis(rng.below(30)));
            let pids = p.worker_pids();
            if let Some(&victim) = pids.get(rng.below(2) as usize) {
                kill_pid(victim);
            }
            for (x, r) in rs.iter().enumerate() {
                match r.get_timeout(LONG) {
                    Ok(v) => assert_eq!(v, (x as i64) * (x as i64), "{m} round {round}"),
                    Err(Error::WorkerLost { .. }) => lost += 1,
                    Err(e) => panic!("{m} round {round}: {e:?}"),
                }
            }
            match map.get_timeout(LONG) {
                Ok(v) => assert_eq!(v, (0..20).map(sqr).collect::<Vec<_>>(), "{m}"),
                Err(e) => assert!(e.is_worker_lost(), "{m} round {round}: {e:?}"),
            }
            let mut n = 0;
            while let Some(r) = it.next_timeout(LONG) {
                match r {
                    Ok(v) => assert_eq!(v, n * n, "{m} round {round}"),
                    Err(e) => assert!(e.is_worker_lost(), "{m} round {round}: {e:?}"),
                }
                n += 1;
            }
            assert_eq!(n, 20, "{m} round {round}");
        }
        assert!(lost <= 8, "{m}: {lost} apply results lost to 8 kills");
        eventually("two workers", || p.worker_pids().len() == 2);
        assert_eq!(
            p.apply_async(sqr, 11).unwrap().get_timeout(LONG).unwrap(),
            121,
            "{m}"
        );
        finish(p);
    }
}

#[test]
fn a_task_sent_to_a_retiring_worker_runs_elsewhere_instead_of_failing() {
    // Regression: a task sent to a worker that was leaving (maxtasksperchild, memory cap) as
    // the send happened was failed with WorkerLost { exitcode: 0 }: the failed send marked the
    // connection broken, and the worker's Retire, already written, was never read.
    // A 1 MiB cap: every worker is past it after its first task, and leaves after reading its
    // memory use, which leaves the supervisor time to send it the next task.
    let p = Pool::builder()
        .processes(1)
        .start_method(StartMethod::Fork)
        .max_memory_per_child(1 << 20)
        .build()
        .unwrap();
    let mut pids = HashSet::new();
    for _ in 0..200 {
        let pid = p
            .apply_async(my_pid, 0)
            .unwrap()
            .get_timeout(LONG)
            .unwrap_or_else(|e| panic!("a task failed instead of running again: {e}"));
        pids.insert(pid);
    }
    assert_eq!(pids.len(), 200, "one worker per task");
    finish(p);
}
