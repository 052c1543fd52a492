//! Bounded waits and timing assertions.

use std::os::fd::BorrowedFd;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use mp_core::Connection;
use rustix::event::{PollFd, PollFlags, Timespec};
use serde::de::DeserializeOwned;

use crate::LONG;

/// Polls `cond` (yielding in between, then sleeping briefly) until it holds; fails the test
/// after [`LONG`].
#[track_caller]
pub fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + LONG;
    let mut polls = 0u32;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within {LONG:?}"
        );
        polls += 1;
        if polls < 10_000 {
            std::thread::yield_now();
        } else {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}

/// Runs `f` on a thread and waits for it at most [`LONG`]: a watchdog for the calls that have
/// no timeout variant (`acquire`, `lock`, `wait`, a `recv` that must fail rather than block).
/// On a hang the test fails (the thread leaks); a panic in `f` is the test's panic.
#[track_caller]
pub fn within<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    within_for(LONG, what, f)
}

/// [`within`] with a chosen limit.
#[track_caller]
pub fn within_for<T: Send + 'static>(
    limit: Duration,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    let handle = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(v) => {
            let _ = handle.join();
            v
        }
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{what} did not return within {limit:?}"),
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
        "{what}: gave up after {elapsed:?}, expected about {timeout:?}"
    );
}

/// Asserts that a call that must not wait returned promptly (within 500 ms).
#[track_caller]
pub fn assert_prompt(elapsed: Duration, what: &str) {
    assert!(
        elapsed < Duration::from_millis(500),
        "{what}: took {elapsed:?}, expected an immediate answer"
    );
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

/// How many times the calling thread has gone to sleep (its `voluntary_ctxt_switches`): a
/// blocking call that sleeps once per event it waits for adds one per event; one that is woken
/// for nothing adds more.
pub fn thread_sleeps() -> u64 {
    let status = std::fs::read_to_string("/proc/thread-self/status")
        .expect("/proc/thread-self/status is readable");
    status
        .lines()
        .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("/proc/thread-self/status has voluntary_ctxt_switches")
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

/// Whether `fd` becomes readable within `timeout` (`poll(2)`, EINTR retried).
pub fn readable(fd: BorrowedFd<'_>, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let mut fds = [PollFd::from_borrowed_fd(fd, PollFlags::IN)];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let ts = Timespec {
            tv_sec: left.as_secs() as i64,
            tv_nsec: i64::from(left.subsec_nanos()),
        };
        match rustix::event::poll(&mut fds, Some(&ts)) {
            Ok(n) => return n > 0,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => panic!("poll: {e}"),
        }
    }
}

/// Waits (at most [`LONG`]) for a message on `c`, then receives it as `T`.
#[track_caller]
pub fn recv<T: DeserializeOwned>(c: &mut Connection) -> T {
    assert!(c.poll_timeout(LONG).unwrap(), "no message within {LONG:?}");
    c.recv().unwrap()
}

/// Waits (at most [`LONG`]) for a message on `c`, then receives its bytes.
#[track_caller]
pub fn recv_bytes(c: &mut Connection) -> Vec<u8> {
    assert!(c.poll_timeout(LONG).unwrap(), "no message within {LONG:?}");
    c.recv_bytes().unwrap()
}
