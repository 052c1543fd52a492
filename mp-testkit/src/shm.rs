//! Shared memory seen through atomics, and a look at `/dev/shm`.

use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::time::{Duration, Instant};

use mp_core::SharedSegment;
use serde::{Deserialize, Serialize};

/// The 64-bit word `i` of a segment, as an atomic.
#[track_caller]
pub fn word(seg: &SharedSegment, i: usize) -> &AtomicU64 {
    assert!((i + 1) * 8 <= seg.len(), "word {i} out of range");
    // SAFETY: the mapping is page-aligned (so every 8-byte offset is aligned for AtomicU64), it
    // is at least (i + 1) * 8 bytes long (checked above), it stays mapped for as long as `seg`
    // (which the returned reference borrows) lives, any bit pattern is a valid u64, and every
    // process touches it only through atomics.
    unsafe { &*(seg.as_ptr().add(i * 8) as *const AtomicU64) }
}

/// The byte `i` of a segment, as an atomic.
#[track_caller]
pub fn byte(seg: &SharedSegment, i: usize) -> &AtomicU8 {
    assert!(i < seg.len(), "byte {i} out of range");
    // SAFETY: `i` is in bounds (checked above), the mapping lives as long as `seg`, which the
    // reference borrows, and every process touches it only through atomics.
    unsafe { &*(seg.as_ptr().add(i) as *const AtomicU8) }
}

/// `n` 64-bit counters in a shared segment, seen by every process the handle reaches (as an
/// argument of a child or over a duplex `Connection`, like any handle).
#[derive(Serialize, Deserialize)]
pub struct Counters {
    seg: SharedSegment,
}

impl Counters {
    /// `n` counters (at least one), all zero.
    pub fn new(n: usize) -> Counters {
        Counters {
            seg: SharedSegment::new(n.max(1) * 8).expect("SharedSegment::new"),
        }
    }

    /// How many counters there are.
    pub fn len(&self) -> usize {
        self.seg.len() / 8
    }

    /// Whether there are none (never: [`Counters::new`] makes at least one).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Counter `i`.
    #[track_caller]
    pub fn at(&self, i: usize) -> &AtomicU64 {
        word(&self.seg, i)
    }

    /// Counter `i`'s value.
    #[track_caller]
    pub fn get(&self, i: usize) -> u64 {
        self.at(i).load(Ordering::SeqCst)
    }

    /// Sets counter `i`.
    #[track_caller]
    pub fn set(&self, i: usize, v: u64) {
        self.at(i).store(v, Ordering::SeqCst);
    }

    /// Adds one to counter `i` atomically.
    #[track_caller]
    pub fn bump(&self, i: usize) {
        self.at(i).fetch_add(1, Ordering::SeqCst);
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

/// A shared-memory name unique to this test run: `mpshtest_<what>_<pid>_<nanos>`.
pub fn unique_name(what: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("mpshtest_{what}_{}_{nanos}", std::process::id())
}

/// The entries of `/dev/shm` that [`unique_name`] makes, sorted.
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
