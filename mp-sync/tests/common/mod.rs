//! Helpers shared by the integration tests of `mp-sync`: the start methods to loop over,
//! children that are killed and reaped if a test fails, a counter in shared memory, a watchdog
//! for calls that have no timeout variant, and timing assertions.
//!
//! Every test file uses only part of this module.
#![allow(dead_code)]

use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use mp_core::{Process, SharedSegment, StartMethod};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Every start method, in the order the tests try them.
pub const METHODS: [StartMethod; 3] = [
    StartMethod::Fork,
    StartMethod::Spawn,
    StartMethod::Forkserver,
];

/// How long anything that should happen promptly may take before a test calls it a hang.
pub const LONG: Duration = Duration::from_secs(30);

/// How long a child that should be killed sleeps: past any test, short enough that a leaked
/// one does not linger.
pub const FOREVER: Duration = Duration::from_secs(60);

/// How long a test waits to see that something does *not* happen.
pub const SETTLE: Duration = Duration::from_millis(300);

/// A started child process; killed and reaped when dropped (a no-op once it has been joined),
/// so that a failing test does not leave children behind.
pub struct Child<R: Serialize + DeserializeOwned + 'static = ()> {
    p: Process<R>,
    label: String,
}

/// Starts `f(args)` in a child under start method `m`.
#[track_caller]
pub fn start<A, R>(m: StartMethod, f: fn(A) -> R, args: A) -> Child<R>
where
    A: Serialize + DeserializeOwned + Send + 'static,
    R: Serialize + DeserializeOwned + 'static,
{
    let mut p = Process::new(f, args).start_method(m);
    p.start()
        .unwrap_or_else(|e| panic!("starting a child under {m:?} failed: {e}"));
    let label = format!("{} ({m:?})", p.get_name());
    Child { p, label }
}

impl<R: Serialize + DeserializeOwned + 'static> Child<R> {
    /// Waits (at most [`LONG`]) for the child to end; its exit code.
    #[track_caller]
    pub fn join(&self) -> i32 {
        match self.p.join_timeout(LONG) {
            Ok(Some(code)) => code,
            Ok(None) => panic!("{} did not end within {LONG:?}", self.label),
            Err(e) => panic!("joining {} failed: {e}", self.label),
        }
    }

    /// Waits (at most [`LONG`]) for the child to end and returns its return value; a child
    /// that panicked fails the test with the child's message.
    #[track_caller]
    pub fn finish(&self) -> R {
        self.join();
        self.p
            .join_result()
            .unwrap_or_else(|e| panic!("{} failed: {e}", self.label))
    }

    /// Sends SIGKILL.
    #[track_caller]
    pub fn kill(&self) {
        self.p
            .kill()
            .unwrap_or_else(|e| panic!("killing {} failed: {e}", self.label));
    }

    /// What the test calls this child in messages.
    pub fn label(&self) -> &str {
        &self.label
    }
}

impl<R: Serialize + DeserializeOwned + 'static> Deref for Child<R> {
    type Target = Process<R>;
    fn deref(&self) -> &Process<R> {
        &self.p
    }
}

impl<R: Serialize + DeserializeOwned + 'static> Drop for Child<R> {
    fn drop(&mut self) {
        // Already joined: `kill` does nothing. Otherwise the test failed; do not leak the child.
        let _ = self.p.kill();
        let _ = self.p.join_timeout(Duration::from_secs(5));
    }
}

/// `n` 64-bit counters in a shared segment, seen by every process the handle reaches (as an
/// argument or over a duplex `Connection`, like any handle).
#[derive(Serialize, Deserialize)]
pub struct Counters {
    seg: SharedSegment,
}

impl Counters {
    /// `n` counters, all zero.
    pub fn new(n: usize) -> Counters {
        Counters {
            seg: SharedSegment::new(n * 8).expect("SharedSegment::new"),
        }
    }

    /// How many counters there are.
    pub fn len(&self) -> usize {
        self.seg.len() / 8
    }

    /// Counter `i`.
    pub fn at(&self, i: usize) -> &AtomicU64 {
        assert!(i < self.len(), "counter {i} out of range");
        // SAFETY: the mapping is page-aligned, so every 8-byte offset is aligned for AtomicU64;
        // `i < len` keeps the 8 bytes inside the mapping, which lives as long as `&self`; any
        // bit pattern is a valid u64, and every process touches these bytes only through
        // atomics.
        unsafe { &*(self.seg.as_ptr() as *const AtomicU64).add(i) }
    }

    /// Counter 0's value.
    pub fn get(&self) -> u64 {
        self.at(0).load(Ordering::SeqCst)
    }

    /// Adds one to counter 0 atomically.
    pub fn bump(&self) {
        self.at(0).fetch_add(1, Ordering::SeqCst);
    }
}

impl Clone for Counters {
    /// Another mapping of the same memory.
    fn clone(&self) -> Counters {
        let fd = self.seg.fd().try_clone_to_owned().expect("dup");
        Counters {
            seg: SharedSegment::from_fd(fd).expect("SharedSegment::from_fd"),
        }
    }
}

/// Runs `f` on a thread and waits for it at most [`LONG`]: a watchdog for the calls that have
/// no timeout variant (`acquire`, `lock`, `wait`). On a hang the test fails (the thread leaks).
#[track_caller]
pub fn within<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let handle = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(LONG) {
        Ok(v) => {
            let _ = handle.join();
            v
        }
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{what} did not return within {LONG:?}"),
        Err(mpsc::RecvTimeoutError::Disconnected) => match handle.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => unreachable!("the thread returned without sending"),
        },
    }
}

/// Asserts that a call given `timeout` that timed out took about that long: at least
/// `timeout - 5 ms`, less than `timeout + 2 s`.
#[track_caller]
pub fn assert_took_about(elapsed: Duration, timeout: Duration, what: &str) {
    let low = timeout.saturating_sub(Duration::from_millis(5));
    let high = timeout + Duration::from_secs(2);
    assert!(
        elapsed >= low && elapsed < high,
        "{what}: timed out after {elapsed:?}, expected about {timeout:?}"
    );
}

/// Polls `cond` every millisecond until it holds; fails the test after [`LONG`].
#[track_caller]
pub fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + LONG;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within {LONG:?}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// CPU time the calling thread has used.
pub fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_THREAD_CPUTIME_ID exists on Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Runs `wait`, a call that should block for about 300 ms, and asserts that it slept in the
/// kernel: this thread used less than 60 ms of CPU meanwhile (a spinning wait uses all 300).
#[track_caller]
pub fn assert_sleeps(what: &str, wait: impl FnOnce()) {
    let (wall, cpu) = (Instant::now(), thread_cpu_time());
    wait();
    let (wall, cpu) = (wall.elapsed(), thread_cpu_time() - cpu);
    assert!(
        wall >= Duration::from_millis(250),
        "{what} returned after {wall:?}, too soon to tell"
    );
    assert!(
        cpu < Duration::from_millis(60),
        "{what} used {cpu:?} of CPU in {wall:?}: it spins instead of sleeping"
    );
}
