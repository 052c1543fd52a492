//! Integration tests of [`mp_sync::Barrier`], with parties that are real child processes under
//! every start method (fork, spawn, forkserver), this process and its threads.
//!
//! Ported in spirit from CPython's `Lib/test/_test_multiprocessing.py`: `_TestBarrier`'s
//! `test_barrier` and `test_barrier_10` (many passes in a row), `test_wait_return` (distinct
//! indexes, exactly one 0), `test_action` (the action runs once per pass), `test_abort` and
//! `test_abort_and_reset`, `test_reset`, `test_timeout`, `test_default_timeout` and
//! `test_single_thread` (a barrier of one party never blocks).
//!
//! The action is a `fn()`, so it cannot close over shared memory: it bumps a `static` counter
//! of whichever process runs it, and each party checks after every pass that its own counter
//! moved by one exactly when it was the last to arrive (index `parties - 1`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use mp_sync::{Barrier, Error};
use mp_testkit::{
    assert_sleeps, assert_took_about, eventually, start, within, Child, Counters, LONG, METHODS,
};

/// Runs of [`pass_action`] in this process.
static PASS_ACTIONS: AtomicU64 = AtomicU64::new(0);

fn pass_action() {
    PASS_ACTIONS.fetch_add(1, Ordering::SeqCst);
}

/// Passes of `a_thousand_passes_stay_in_order` (each start method).
const PASSES: u64 = 1000;
/// Parties of the same test: this process and two children.
const PARTIES: usize = 3;

#[test]
fn a_thousand_passes_stay_in_order_with_distinct_indexes_and_one_action_each() {
    for m in METHODS {
        let barrier = Barrier::new(PARTIES as u32, Some(pass_action)).unwrap();
        assert_eq!(barrier.parties(), PARTIES as u32);
        let arrived = Counters::new(PARTIES);
        let children: Vec<Child<Vec<u32>>> = (1..PARTIES)
            .map(|me| start(m, party, (barrier.clone(), arrived.clone(), me)))
            .collect();
        let mine = party((barrier.clone(), arrived.clone(), 0));
        let all: Vec<Vec<u32>> = std::iter::once(mine)
            .chain(children.iter().map(|c| c.finish()))
            .collect();
        for pass in 0..PASSES as usize {
            let mut indexes: Vec<u32> = all.iter().map(|v| v[pass]).collect();
            indexes.sort_unstable();
            assert_eq!(
                indexes,
                (0..PARTIES as u32).collect::<Vec<_>>(),
                "{m:?}: pass {pass}: the indexes are not a permutation"
            );
        }
        assert!(!barrier.broken());
        assert_eq!(barrier.n_waiting(), 0);
    }
}

/// One party of the ordered passes: before pass `p` it records that it arrived there; after
/// it, every party must have arrived at pass `p` and none may be past pass `p + 1`. Checks that
/// its own action counter moved exactly when it was last. Returns its index in every pass.
fn party((barrier, arrived, me): (Barrier, Counters, usize)) -> Vec<u32> {
    let parties = arrived.len();
    let mut indexes = Vec::with_capacity(PASSES as usize);
    for pass in 0..PASSES {
        arrived.at(me).store(pass + 1, Ordering::SeqCst);
        let before = PASS_ACTIONS.load(Ordering::SeqCst);
        let index = barrier
            .wait_timeout(LONG)
            .unwrap_or_else(|e| panic!("party {me}, pass {pass}: {e}"));
        let ran = PASS_ACTIONS.load(Ordering::SeqCst) - before;
        assert!(index < parties as u32);
        let last = index == parties as u32 - 1;
        assert_eq!(
            ran,
            u64::from(last),
            "party {me}, pass {pass}, index {index}: the action must run once, in the last arrival"
        );
        for j in 0..parties {
            let a = arrived.at(j).load(Ordering::SeqCst);
            assert!(
                a > pass && a <= pass + 2,
                "party {me} passed pass {pass} while party {j} had arrived at {a} passes"
            );
        }
        indexes.push(index);
    }
    indexes
}

#[test]
fn abort_breaks_the_barrier_for_all_waiters_and_reset_makes_it_reusable() {
    for m in METHODS {
        let barrier = Barrier::new(3, None).unwrap();
        let reset_done = mp_sync::Event::new().unwrap();
        let children: Vec<Child<u32>> = (0..2)
            .map(|_| start(m, broken_then_reuse, (barrier.clone(), reset_done.clone())))
            .collect();
        eventually("two children waiting", || barrier.n_waiting() == 2);
        barrier.abort();
        assert!(barrier.broken());
        // A broken barrier fails at once, whatever the timeout.
        let t0 = Instant::now();
        assert!(matches!(
            barrier.wait_timeout(LONG),
            Err(Error::BrokenBarrier)
        ));
        assert!(t0.elapsed() < Duration::from_secs(5));
        barrier.reset();
        assert!(!barrier.broken());
        reset_done.set();
        let mut indexes = vec![barrier.wait_timeout(LONG).expect("wait after reset")];
        indexes.extend(children.iter().map(|c| c.finish()));
        indexes.sort_unstable();
        assert_eq!(indexes, [0, 1, 2], "{m:?}");
    }
}

/// Waits on a barrier that gets aborted (or reset), then waits again once `reset_done`.
fn broken_then_reuse((barrier, reset_done): (Barrier, mp_sync::Event)) -> u32 {
    let r = barrier.wait_timeout(LONG);
    assert!(
        matches!(r, Err(Error::BrokenBarrier)),
        "a waiter of an aborted barrier got {r:?}"
    );
    assert!(reset_done.wait_timeout(LONG).unwrap());
    barrier.wait_timeout(LONG).expect("wait after reset")
}

#[test]
fn reset_breaks_the_current_waiters_and_leaves_the_barrier_usable() {
    for m in METHODS {
        let barrier = Barrier::new(2, None).unwrap();
        let c = start(m, reset_then_reuse, barrier.clone());
        eventually("the child waiting", || barrier.n_waiting() == 1);
        barrier.reset();
        assert!(!barrier.broken(), "{m:?}: reset leaves the barrier usable");
        let mine = barrier.wait_timeout(LONG).expect("wait after reset");
        let theirs = c.finish();
        let mut indexes = [mine, theirs];
        indexes.sort_unstable();
        assert_eq!(indexes, [0, 1], "{m:?}");
        assert!(!barrier.broken());
    }
}

fn reset_then_reuse(barrier: Barrier) -> u32 {
    let r = barrier.wait_timeout(LONG);
    assert!(
        matches!(r, Err(Error::BrokenBarrier)),
        "a waiter of a reset barrier got {r:?}"
    );
    barrier.wait_timeout(LONG).expect("wait after reset")
}

#[test]
fn a_timeout_breaks_the_barrier_for_every_waiter() {
    let short = Duration::from_millis(300);
    for m in METHODS {
        let barrier = Barrier::new(3, None).unwrap();
        let patient = start(m, timed_wait, (barrier.clone(), LONG));
        let hasty = start(m, timed_wait, (barrier.clone(), short));
        let (broken, took) = hasty.finish();
        assert!(broken, "{m:?}: the timed-out waiter must get BrokenBarrier");
        assert_took_about(took, short, "Barrier::wait_timeout");
        let (broken, took) = patient.finish();
        assert!(broken, "{m:?}: the other waiter must get BrokenBarrier");
        assert!(took < Duration::from_secs(10), "{m:?}: {took:?}");
        assert!(barrier.broken());
        assert!(matches!(
            barrier.wait_timeout(LONG),
            Err(Error::BrokenBarrier)
        ));
        barrier.reset();
        // Usable again: three threads pass.
        let threads: Vec<_> = (0..3)
            .map(|_| {
                let b = barrier.clone();
                std::thread::spawn(move || b.wait_timeout(LONG).expect("wait after reset"))
            })
            .collect();
        let mut indexes: Vec<u32> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        indexes.sort_unstable();
        assert_eq!(indexes, [0, 1, 2]);
    }
}

/// Waits at most `timeout`; whether the barrier was broken, and how long the wait took.
fn timed_wait((barrier, timeout): (Barrier, Duration)) -> (bool, Duration) {
    let t0 = Instant::now();
    let r = barrier.wait_timeout(timeout);
    let took = t0.elapsed();
    match r {
        Err(Error::BrokenBarrier) => (true, took),
        Ok(_) => (false, took),
        Err(e) => panic!("unexpected {e}"),
    }
}

#[test]
fn the_default_timeout_breaks_the_barrier() {
    let t = Duration::from_millis(200);
    let barrier = Barrier::with_timeout(2, None, t).unwrap();
    let t0 = Instant::now();
    assert!(matches!(barrier.wait(), Err(Error::BrokenBarrier)));
    assert_took_about(t0.elapsed(), t, "Barrier::wait with a default timeout");
    assert!(barrier.broken());
    // The default timeout travels with the handle.
    for m in METHODS {
        let barrier = Barrier::with_timeout(2, None, t).unwrap();
        let took = start(m, default_wait, barrier.clone()).finish();
        assert_took_about(took, t, "Barrier::wait with a default timeout in a child");
        assert!(barrier.broken(), "{m:?}");
    }
}

fn default_wait(barrier: Barrier) -> Duration {
    let t0 = Instant::now();
    let r = barrier.wait();
    assert!(matches!(r, Err(Error::BrokenBarrier)), "got {r:?}");
    t0.elapsed()
}

/// The shared pass counter that [`shared_action`] bumps: set once in each child (never in the
/// test process, so a forked child finds it empty).
static SHARED: OnceLock<Counters> = OnceLock::new();

fn shared_action() {
    SHARED.get().expect("SHARED is set before any wait").bump(0);
}

/// Passes of `the_action_runs_once_per_pass_before_anyone_is_released`.
const ACTION_PASSES: u64 = 100;

#[test]
fn the_action_runs_once_per_pass_before_anyone_is_released() {
    for m in METHODS {
        let barrier = Barrier::new(3, Some(shared_action)).unwrap();
        let passes = Counters::new(1);
        let children: Vec<Child> = (0..3)
            .map(|_| start(m, count_passes, (barrier.clone(), passes.clone())))
            .collect();
        for c in &children {
            c.finish();
        }
        assert_eq!(
            passes.get(0),
            ACTION_PASSES,
            "{m:?}: the action runs once per pass"
        );
    }
}

/// After each pass `p`, the action must have run exactly `p + 1` times in all: once per pass,
/// and before this party was released.
fn count_passes((barrier, passes): (Barrier, Counters)) {
    assert!(SHARED.set(passes).is_ok(), "SHARED was already set");
    let passes = SHARED.get().unwrap();
    for p in 0..ACTION_PASSES {
        barrier.wait_timeout(LONG).expect("barrier");
        // Pass `p`'s action ran before the release; pass `p + 1`'s cannot run without us.
        let seen = passes.get(0);
        assert_eq!(
            seen,
            p + 1,
            "after pass {p} the action had run {seen} times"
        );
    }
}

/// Runs of [`single_action`] in this process.
static SINGLE_ACTIONS: AtomicU64 = AtomicU64::new(0);

fn single_action() {
    SINGLE_ACTIONS.fetch_add(1, Ordering::SeqCst);
}

#[test]
fn a_barrier_of_one_party_never_blocks() {
    let barrier = Barrier::new(1, Some(single_action)).unwrap();
    let b = barrier.clone();
    let ran = within("Barrier::wait of one party", move || wait_alone(b));
    assert_eq!(ran, 5);
    for m in METHODS {
        assert_eq!(start(m, wait_alone, barrier.clone()).finish(), 5, "{m:?}");
    }
    assert_eq!(barrier.n_waiting(), 0);
    assert!(!barrier.broken());
}

/// Passes a one-party barrier five times; how many times the action ran here.
fn wait_alone(barrier: Barrier) -> u64 {
    let before = SINGLE_ACTIONS.load(Ordering::SeqCst);
    for _ in 0..5 {
        assert_eq!(barrier.wait().unwrap(), 0);
    }
    SINGLE_ACTIONS.load(Ordering::SeqCst) - before
}

#[test]
fn parties_n_waiting_and_invalid_arguments() {
    assert!(matches!(
        Barrier::new(0, None),
        Err(Error::InvalidArgument(_))
    ));
    let barrier = Barrier::new(3, None).unwrap();
    assert_eq!(barrier.parties(), 3);
    assert_eq!(barrier.n_waiting(), 0);
    assert!(!barrier.broken());
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let b = barrier.clone();
            std::thread::spawn(move || b.wait_timeout(LONG))
        })
        .collect();
    eventually("two threads waiting", || barrier.n_waiting() == 2);
    let mine = barrier.wait_timeout(LONG).unwrap();
    let mut indexes = vec![mine];
    indexes.extend(threads.into_iter().map(|t| t.join().unwrap().unwrap()));
    indexes.sort_unstable();
    assert_eq!(indexes, [0, 1, 2]);
    assert_eq!(barrier.n_waiting(), 0);
}

#[test]
fn a_wait_sleeps_rather_than_spins() {
    let barrier = Barrier::new(2, None).unwrap();
    assert_sleeps("Barrier::wait_timeout", || {
        assert!(matches!(
            barrier.wait_timeout(Duration::from_millis(300)),
            Err(Error::BrokenBarrier)
        ))
    });
}
