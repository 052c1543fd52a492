//! Shared memory between processes: Python's `Value`, `Array`, `RawValue`, `RawArray`,
//! `SharedMemory` and `ShareableList`, plus lock-free atomic counters.
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
//! # ShareableList: a list a Python process can read
//!
//! [`ShareableList`] is Python's `multiprocessing.shared_memory.ShareableList`: a fixed-length
//! list of [`Item`]s (`int`, `float`, `bool`, `str`, `bytes`, `None`) in a named
//! [`SharedMemory`] segment, in exactly CPython's layout (described on the type). CPython 3.9,
//! 3.10, 3.11, 3.12 and 3.13 share that layout (their `ShareableList` classes are the same
//! code), so a Python process attaches to a list made here with `ShareableList(name=...)`, and
//! [`ShareableList::attach`] reads one made by Python (the tests check both ways).
//! CPython 3.8 stored item sizes instead of offsets and is not compatible.
//!
//! ```
//! use mp_shared::{Item, ShareableList};
//!
//! let sl = ShareableList::new([Item::from(1), "two".into(), 3.0.into(), Item::None]).unwrap();
//! sl.set(1, "2").unwrap();
//! assert_eq!(sl.to_vec().unwrap(), [Item::Int(1), "2".into(), Item::Float(3.0), Item::None]);
//! assert_eq!(sl.format().unwrap(), "q8sdxxxxxx?x");
//! sl.shm().unlink().unwrap();
//! ```
//!
//! As in Python there is no lock: concurrent writers need one of their own. Trailing NULs of a
//! `str` or `bytes` item are lost (CPython strips them when reading: `"a\0"` reads back as
//! `"a"`), and an item's slot never grows: a longer `str` than the slot holds is an
//! [`Error::ExceedsStorage`]. Whatever is read from the segment is checked: a header or item
//! CPython would not have written is an [`Error::CorruptList`].
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
//! - [`ShareableList`] sizes a `str` slot by its utf-8 length, where CPython counts characters
//!   and silently truncates a non-ASCII `str` that needs more bytes (`ShareableList(["é" * 9])`
//!   reads back 8 `é`s); for ASCII strings the two layouts are identical. An index below
//!   `-len` is an [`Error::ListIndexOutOfRange`] (CPython 3.9 to 3.13 return garbage for some).
//!   [`ShareableList::len`] is the length read when attaching (CPython re-reads the header).
//! - Python's `multiprocessing.heap` (one arena for many small objects) is not reproduced:
//!   each object has its own segment (at least one page).
#![deny(unsafe_code)]

mod array;
mod atomic;
mod error;
mod shareable_list;
mod shared_memory;
mod sync;
mod sys;
mod tracker;
mod value;

pub use array::{Array, ArrayGuard, RawArray};
pub use atomic::{AtomicInt, SharedAtomic};
pub use error::{Error, LockError, Result};
pub use mp_sync::AnyLock;
pub use shareable_list::{Item, ShareableList};
pub use shared_memory::{Options, SharedMemory, MAX_NAME_LEN};
pub use value::{RawValue, Value, ValueGuard};
