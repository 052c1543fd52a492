//! Shared memory between processes: Python's `Value`, `Array`, `RawValue`, `RawArray` and
//! `SharedMemory`, plus lock-free atomic counters.
//!
//! Mirrors Python's `multiprocessing.sharedctypes` ([`Value`], [`Array`], [`RawValue`],
//! [`RawArray`]) and `multiprocessing.shared_memory` ([`SharedMemory`]). A value or an array
//! lives in a shared segment (a memfd mapped `MAP_SHARED`): clone its handle and pass it to a
//! child (under fork, spawn or forkserver) or send it over a duplex `Connection`, and every
//! process sees the same memory. Elements are any [`bytemuck::Pod`] type, Python's ctypes.
//!
//! ```
//! use mp_core::Process;
//! use mp_shared::{Array, SharedAtomic, Value};
//!
//! fn f((n, a, hits): (Value<f64>, Array<i32>, SharedAtomic<u64>)) {
//!     n.set(3.1415927).unwrap();
//!     let mut a = a.lock().unwrap(); // the array's lock, held while `a` lives
//!     for x in a.iter_mut() {
//!         *x = -*x;
//!     }
//!     hits.fetch_add(1);
//! }
//!
//! let num = Value::new(0.0f64).unwrap();
//! let arr = Array::from_slice(&[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]).unwrap();
//! let hits = SharedAtomic::new(0u64).unwrap();
//! let mut p = Process::new(f, (num.clone(), arr.clone(), hits.clone()));
//! p.start().unwrap();
//! p.join().unwrap();
//! assert_eq!(num.get().unwrap(), 3.1415927);
//! assert_eq!(arr.to_vec().unwrap(), [0, -1, -2, -3, -4, -5, -6, -7, -8, -9]);
//! assert_eq!(hits.load(), 1);
//! ```
//!
//! # Synchronized, raw and atomic
//!
//! - [`Value`] and [`Array`] are guarded by a lock (their own `RLock` by default, or a
//!   [`mp_sync::Lock`]/[`mp_sync::RLock`] shared by several objects, see [`AnyLock`]):
//!   `get`/`set` take it for one access, `lock()` returns a guard that derefs to `T` / `[T]`
//!   (Python's `with v.get_lock(): v.value += 1` is `*v.lock()? += 1`).
//! - [`RawValue`] and [`RawArray`] have no lock. Their accesses are atomic word copies, so
//!   they are never data races (no undefined behaviour, whatever other processes do), but a
//!   value wider than 8 bytes written concurrently may be read torn, as in C or Python.
//! - [`SharedAtomic`] (beyond Python) is a lock-free integer with `fetch_add`,
//!   `compare_exchange`, ...: the fast path for counters.
//!
//! # Named shared memory and the resource tracker
//!
//! [`SharedMemory`] is a POSIX shared memory object (`shm_open`, a file under `/dev/shm`) that
//! other processes, of this program or another, [`attach`](SharedMemory::attach) to by name.
//! Its bytes are `&[AtomicU8]` ([`SharedMemory::buf`]), with
//! [`read_at`](SharedMemory::read_at)/[`write_at`](SharedMemory::write_at) to copy ranges.
//!
//! A segment created with tracking (the default) is unlinked once no process uses it any more,
//! even if its creator was killed: every user holds a shared `flock` on it, and a small tracker
//! process, started on first use, waits for an exclusive lock before unlinking, so a segment
//! still used by another process is never unlinked under it (CPython's gh-82300). Opt out with
//! `SharedMemory::options().track(false)`. The details are in the tracker's design notes
//! (`src/tracker.rs`).
//!
//! # Differences from Python
//!
//! - Every blocking call follows the stack's one [timeout contract](mp_core::deadline):
//!   `x()`, `x_timeout(Duration)`, `x_deadline(Instant)` and `try_x()`/`x_nowait()`, with
//!   `Ok(false)` where Python returns `False` and a typed error where Python raises.
//! - Element types are Rust types (`Value<f64>`, not `Value('d', ...)`); structs are
//!   `#[repr(C)]` and derive `Pod`. Values are read and written with `get`/`set`, not a
//!   `.value` attribute, and arrays have no negative indexes; an index or range past the end is
//!   an error ([`Error::IndexOutOfRange`], [`Error::RangeOutOfRange`]), never clamped.
//! - `lock=False` is spelled [`RawValue`] / [`RawArray`]; `get_obj()` does not exist (raw
//!   access to a synchronized object's memory would race with its guards).
//! - Accessing a value whose non-recursive `Lock` the calling thread holds fails with
//!   [`Error::WouldDeadlock`] instead of hanging; taking a second guard on the same object
//!   through its `RLock` fails with [`Error::Borrowed`].
//! - A lock taken over from a process that died holding it is reported
//!   ([`Error::OwnerDied`], [`LockError::OwnerDied`]); CPython would hang.
//! - [`SharedMemory::buf`] is atomic bytes rather than a `memoryview`; `close` consumes the
//!   handle. Tracking unlinks a segment when its last user is gone, not at the end of the
//!   program: a segment that must outlive every handle (created, closed, attached later) needs
//!   `track(false)` and an explicit `unlink`. Attaching never registers a segment.
//! - [`SharedAtomic`] has no Python counterpart.
//! - Python's `multiprocessing.heap` (one arena for many small objects) is not reproduced:
//!   each object has its own segment (at least one page).
#![deny(unsafe_code)]

mod array;
mod atomic;
mod error;
mod shared_memory;
mod sync;
mod sys;
mod tracker;
mod value;

pub use array::{Array, ArrayGuard, RawArray};
pub use atomic::{AtomicInt, SharedAtomic};
pub use error::{Error, LockError, Result};
pub use mp_sync::AnyLock;
pub use shared_memory::{Options, SharedMemory, MAX_NAME_LEN};
pub use value::{RawValue, Value, ValueGuard};
