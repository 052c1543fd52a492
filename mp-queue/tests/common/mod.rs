//! Helpers shared by the integration tests of `mp-queue`: the start methods to loop over,
//! children that are killed and reaped if a test fails, counters in shared memory, a small
//! deterministic random generator, byte patterns that reveal a torn item, and timing
//! assertions.
//!
//! Every test file uses only part of this module.
#![allow(dead_code)]

use std::fmt::Debug;
use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mp_core::codec::Bytes;
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
pub const LONG: Duration = Duration::from_secs(60);

/// How long a test waits to see that something does *not* happen (a blocked child stays
/// blocked).
pub const SETTLE: Duration = Duration::from_millis(200);

/// SIGKILL's exit code.
pub const KILLED: i32 = -9;

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
        let code = self.join();
        match self.p.join_result() {
            Ok(r) => r,
            Err(e) => panic!("{} failed (exit code {code}): {e}", self.label),
        }
    }

    /// Sends SIGKILL.
    #[track_caller]
    pub fn kill(&self) {
        self.p
            .kill()
            .unwrap_or_else(|e| panic!("killing {} failed: {e}", self.label));
    }

    /// Kills the child and checks that it died of the SIGKILL (a child that ended on its own
    /// before the signal came must have ended well, and a child that panicked fails the test
    /// with its message). Returns the exit code.
    #[track_caller]
    pub fn kill_and_reap(&self) -> i32 {
        self.kill();
        let code = self.join();
        if code != KILLED && code != 0 {
            let why = match self.p.join_result() {
                Err(e) => e.to_string(),
                Ok(_) => "no message".into(),
            };
            panic!("{} ended with exit code {code}: {why}", self.label);
        }
        code
    }

    /// Whether the child still runs.
    #[track_caller]
    pub fn running(&self) -> bool {
        self.p
            .is_alive()
            .unwrap_or_else(|e| panic!("is_alive of {} failed: {e}", self.label))
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
/// argument of a child, like any handle).
#[derive(Serialize, Deserialize)]
pub struct Counters {
    seg: SharedSegment,
}

impl Counters {
    /// `n` counters, all zero.
    pub fn new(n: usize) -> Counters {
        Counters {
            seg: SharedSegment::new(n.max(1) * 8).expect("SharedSegment::new"),
        }
    }

    /// Counter `i`.
    pub fn at(&self, i: usize) -> &AtomicU64 {
        assert!(i < self.seg.len() / 8, "counter {i} out of range");
        // SAFETY: the mapping is page-aligned, so every 8-byte offset is aligned for AtomicU64;
        // `i < len / 8` keeps the 8 bytes inside the mapping, which lives as long as `&self`;
        // any bit pattern is a valid u64, and every process touches these bytes only through
        // atomics.
        unsafe { &*(self.seg.as_ptr() as *const AtomicU64).add(i) }
    }

    /// Counter `i`'s value.
    pub fn get(&self, i: usize) -> u64 {
        self.at(i).load(Ordering::SeqCst)
    }

    /// Sets counter `i`.
    pub fn set(&self, i: usize, v: u64) {
        self.at(i).store(v, Ordering::SeqCst);
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

/// xorshift64*: a small deterministic generator, seeded per test or per loop iteration so a
/// failure can be replayed.
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed` (any value, zero included).
    pub fn new(seed: u64) -> Rng {
        let mut r = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        r.next_u64();
        r
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// `len` bytes determined by `seed`: a torn, shifted or mixed-up item does not match them.
pub fn pattern(seed: u64, len: usize) -> Bytes {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ len as u64;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        let word = x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes();
        let take = (len - out.len()).min(8);
        out.extend_from_slice(&word[..take]);
    }
    Bytes(out)
}

/// A large item that is cheap to build and to check even in a debug build: `len` bytes of
/// `fill`, with the seed in the first and the last 8 bytes (`len >= 16`).
pub fn big_item(seed: u64, len: usize, fill: u8) -> Bytes {
    let mut v = vec![fill; len];
    v[..8].copy_from_slice(&seed.to_le_bytes());
    v[len - 8..].copy_from_slice(&seed.to_le_bytes());
    Bytes(v)
}

/// Whether `item` is exactly `big_item(seed, len, fill)` (compared with memcmp, not byte by
/// byte).
pub fn is_big_item(item: &Bytes, seed: u64, len: usize, fill: u8) -> bool {
    let v = &item.0;
    v.len() == len
        && v[..8] == seed.to_le_bytes()
        && v[len - 8..] == seed.to_le_bytes()
        && v[8..len - 8] == vec![fill; len - 16][..]
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

/// Asserts that a call that must not wait returned promptly.
#[track_caller]
pub fn assert_prompt(elapsed: Duration, what: &str) {
    assert!(
        elapsed < Duration::from_millis(500),
        "{what}: took {elapsed:?}, expected an immediate answer"
    );
}

/// Polls `cond` (yielding in between) until it holds; fails the test after [`LONG`].
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

/// Asserts that `r` is `Err(pattern)`, showing the value otherwise.
#[macro_export]
macro_rules! assert_err {
    ($r:expr, $pat:pat, $($what:tt)+) => {{
        let r = $r;
        assert!(
            matches!(r, Err($pat)),
            "{}: expected Err({}), got {:?}",
            format!($($what)+),
            stringify!($pat),
            r
        );
    }};
}

/// `Debug` for a result without its (possibly huge) value.
pub fn brief<T, E: Debug>(r: &Result<T, E>) -> String {
    match r {
        Ok(_) => "Ok(..)".into(),
        Err(e) => format!("Err({e:?})"),
    }
}
