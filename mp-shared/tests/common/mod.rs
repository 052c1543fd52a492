//! Helpers shared by the integration tests: start methods, bounded joins and receives, and a
//! look at `/dev/shm`.
#![allow(dead_code)]

use std::path::Path;
use std::time::{Duration, Instant};

use mp_core::{Connection, Process, StartMethod};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Every start method.
pub const METHODS: [StartMethod; 3] = [
    StartMethod::Fork,
    StartMethod::Spawn,
    StartMethod::Forkserver,
];
/// How long the parent waits for any one message.
pub const WAIT: Duration = Duration::from_secs(20);
/// How long the parent waits for a child to exit.
pub const JOIN: Duration = Duration::from_secs(30);
/// How long the tracker may take to unlink a segment nobody uses.
pub const CLEANUP: Duration = Duration::from_secs(15);

/// Initialises `mp_sync`'s pid cache in this process before it forks.
///
/// Works around a bug of `mp_sync` (reported): its pid cache registers a fork hook lazily,
/// under a `Once`; a fork by one test thread while another thread is inside that first call
/// leaves the `Once` half-run in the child, which then hangs in its first lock operation.
/// Once the cache is initialised, no later fork can catch it half-run.
pub fn warm_up_mp_sync() {
    let _ = mp_sync::Lock::new().map(|l| l.is_owned());
}

/// Starts `f(args)` in a child under `m`.
pub fn start<A, R>(f: fn(A) -> R, args: A, m: StartMethod) -> Process<R>
where
    A: Serialize + DeserializeOwned + Send + 'static,
    R: Serialize + DeserializeOwned + 'static,
{
    warm_up_mp_sync();
    let mut p = Process::new(f, args).start_method(m);
    p.start()
        .unwrap_or_else(|e| panic!("cannot start a child under {m}: {e}"));
    p
}

/// Joins `p` within [`JOIN`] and returns its result; panics if it failed or hung.
pub fn join<R: Serialize + DeserializeOwned + 'static>(p: &Process<R>, m: StartMethod) -> R {
    let code = p.join_timeout(JOIN).unwrap();
    if code.is_none() {
        let _ = p.kill();
        panic!("the child under {m} did not exit within {JOIN:?}");
    }
    p.join_result()
        .unwrap_or_else(|e| panic!("the child under {m} failed: {e}"))
}

/// Waits (bounded) for a message, then receives it as `T`.
pub fn recv<T: DeserializeOwned>(c: &mut Connection) -> T {
    assert!(c.poll(Some(WAIT)).unwrap(), "no message within {WAIT:?}");
    c.recv().unwrap()
}

/// Whether `/dev/shm/<name>` exists.
pub fn in_dev_shm(name: &str) -> bool {
    Path::new("/dev/shm").join(name).exists()
}

/// Waits until `/dev/shm/<name>` is gone; false if it is still there after `timeout`.
pub fn vanishes(name: &str, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while in_dev_shm(name) {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

/// A name unique to this test run: `mpshtest_<what>_<pid>_<nanos>`.
pub fn unique_name(what: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("mpshtest_{what}_{}_{nanos}", std::process::id())
}

/// The entries of `/dev/shm` that this test suite makes (or that look like Python's).
pub fn our_entries() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir("/dev/shm")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| n.starts_with("mpshtest_"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}
