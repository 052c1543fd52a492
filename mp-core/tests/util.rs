//! `util::Finalize` (Python's `multiprocessing.util.Finalize`) and `set_forkserver_preload`
//! (issue 10, item 8), across real child processes under every start method.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use mp_core::util::Finalize;
use mp_core::{get_context, pipe, set_forkserver_preload, Connection, StartMethod};
use mp_testkit::{join_result, LONG, METHODS};

#[test]
fn a_finalizer_runs_once_when_called_and_never_after_cancel() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let l = log.clone();
    let f = Finalize::new(move || l.lock().unwrap().push(1), None);
    assert!(f.still_active());
    assert_eq!(f.exitpriority(), None);
    let g = f.clone();
    assert!(g.call());
    assert!(!f.call(), "at most once, whichever handle");
    assert!(!f.still_active());

    let l = log.clone();
    let c = Finalize::new(move || l.lock().unwrap().push(2), Some(3));
    assert_eq!(c.exitpriority(), Some(3));
    c.cancel();
    assert!(!c.still_active());
    assert!(!c.call(), "a cancelled finalizer does not run");
    assert_eq!(*log.lock().unwrap(), [1]);
}

#[test]
fn a_panicking_finalizer_is_caught_and_counts_as_run() {
    let f = Finalize::new(|| panic!("in a finalizer"), Some(0));
    assert!(f.call());
    assert!(!f.still_active());
}

/// Registers finalizers of several priorities, each writing its label to `conn` when it runs,
/// then returns: the exit runs them.
fn register_and_return(conn: Connection) {
    let conn = Arc::new(Mutex::new(conn));
    let make = |label: &'static str, priority: Option<i32>| {
        let conn = conn.clone();
        Finalize::new(move || conn.lock().unwrap().send(&label).unwrap(), priority)
    };
    let _ = make("first 0", Some(0));
    let _ = make("10", Some(10));
    let _ = make("never (no priority)", None);
    let _ = make("second 0", Some(0));
    let _ = make("-1", Some(-1));
    let called = make("called", Some(100));
    assert!(called.call());
    let cancelled = make("cancelled", Some(50));
    cancelled.cancel();
    let _ = make("5", Some(5));
}

#[test]
fn a_childs_finalizers_run_at_its_exit_by_priority_then_latest_first() {
    for m in METHODS {
        let (mut ours, theirs) = pipe(true).unwrap();
        let mut p = get_context(Some(m)).process(register_and_return, theirs);
        p.start().unwrap();
        join_result(&p).unwrap();
        let mut ran = Vec::new();
        loop {
            match ours.recv_timeout::<String>(LONG) {
                Ok(label) => ran.push(label),
                Err(e) if e.is_eof() => break,
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(
            ran,
            ["called", "10", "5", "second 0", "first 0", "-1"],
            "under {m}"
        );
    }
}

/// Counts the parent's finalizer runs (it must never run in a child).
static PARENT_RUNS: AtomicU32 = AtomicU32::new(0);

/// Returns whether a handle to the parent's finalizer can do anything here.
fn touch_the_parents_finalizer(f_active_here: bool) -> bool {
    let _ = f_active_here;
    PARENT_RUNS.load(Ordering::SeqCst) == 0
}

#[test]
fn a_parents_finalizers_are_not_a_forked_childs() {
    let f = Finalize::new(
        || {
            PARENT_RUNS.fetch_add(1, Ordering::SeqCst);
        },
        Some(0),
    );
    // A forked child starts without them: its exit runs nothing of ours, and the handle it
    // inherited does nothing there.
    let handle = f.clone();
    let mut p = get_context(Some(StartMethod::Fork)).process_closure(move || {
        let inert = !handle.still_active() && !handle.call();
        inert && touch_the_parents_finalizer(false)
    });
    p.start().unwrap();
    assert!(
        join_result(&p).unwrap(),
        "the parent's finalizer was live in the child"
    );
    assert_eq!(PARENT_RUNS.load(Ordering::SeqCst), 0);
    assert!(f.still_active(), "and the parent's is untouched");
    assert!(f.call());
    assert_eq!(PARENT_RUNS.load(Ordering::SeqCst), 1);
}

/// Set by the preload function, in the fork server (and so in every child it forks).
static PRELOADED: AtomicU32 = AtomicU32::new(0);

fn preload() {
    PRELOADED.fetch_add(1, Ordering::SeqCst);
}

fn preload_that_panics() {
    panic!("a preload that fails");
}

/// What a child sees of the preload.
fn preloaded(_: ()) -> u32 {
    PRELOADED.load(Ordering::SeqCst)
}

#[test]
fn the_fork_server_runs_its_preload_once_before_forking_children() {
    set_forkserver_preload(&[preload_that_panics, preload]);
    let forkserver = get_context(Some(StartMethod::Forkserver));
    for _ in 0..2 {
        let mut p = forkserver.process(preloaded, ());
        p.start().unwrap();
        assert_eq!(
            p.join_timeout(LONG).unwrap(),
            Some(0),
            "a panicking preload is skipped, the server serves"
        );
        assert_eq!(
            join_result(&p).unwrap(),
            1,
            "run once, in the server, before the fork"
        );
    }
    // Not in this process, nor in spawned children.
    assert_eq!(PRELOADED.load(Ordering::SeqCst), 0);
    let mut p = get_context(Some(StartMethod::Spawn)).process(preloaded, ());
    p.start().unwrap();
    assert_eq!(join_result(&p).unwrap(), 0);
}
