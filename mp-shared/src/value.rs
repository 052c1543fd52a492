//! `Value` and `RawValue`: one `T` in shared memory.

use std::fmt;
use std::ops::{Deref, DerefMut};

use bytemuck::Pod;
use serde::{Deserialize, Serialize};

use crate::error::{LockError, Result};
use crate::sync::{guard_surface, Access, Synced};
use crate::sys::RawCells;
use mp_core::Deadline;
use mp_sync::AnyLock;

/// A `T` in shared memory, guarded by a lock.
///
/// Python: `multiprocessing.Value(typecode_or_type, *args, lock=True)`, the synchronized
/// wrapper. `T` is any [`Pod`] type: `i32` for `'i'`, `f64` for `'d'`, `u8` for `'c'`, `i16`,
/// `i64`, ..., or a `#[repr(C)]` struct of them deriving `Pod` and `Zeroable` (Python's
/// `ctypes.Structure`). Clones are handles to the same value; pass one to a child (under any
/// start method) or send it over a duplex `Connection` to share it.
///
/// [`get`](Self::get) and [`set`](Self::set) take the lock for one read or write (Python's
/// `v.value`); [`lock`](Self::lock) returns a guard that derefs to the `T` for a
/// read-modify-write (Python's `with v.get_lock(): v.value += 1`):
///
/// ```
/// use mp_shared::Value;
///
/// let v = Value::new(0i64).unwrap();
/// *v.lock().unwrap() += 1;
/// v.set(v.get().unwrap() * 10).unwrap();
/// assert_eq!(v.get().unwrap(), 10);
/// ```
///
/// # Errors
///
/// Every access blocks until the lock is free, then fails only with [`Error::OwnerDied`]
/// (a dead process held the lock: nothing was read or written, the lock is free again),
/// [`Error::WouldDeadlock`] (the calling thread holds this value's non-recursive `Lock`) or
/// [`Error::Borrowed`] (this thread holds a guard on this value, through an `RLock`).
///
/// [`Error::OwnerDied`]: crate::Error::OwnerDied
/// [`Error::WouldDeadlock`]: crate::Error::WouldDeadlock
/// [`Error::Borrowed`]: crate::Error::Borrowed
#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
pub struct Value<T: Pod> {
    inner: Synced<T>,
}

impl<T: Pod> Clone for Value<T> {
    fn clone(&self) -> Self {
        Value {
            inner: self.inner.clone(),
        }
    }
}

impl<T: Pod> fmt::Debug for Value<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Value")
            .field("type", &std::any::type_name::<T>())
            .field("lock", &self.inner.lock)
            .finish()
    }
}

impl<T: Pod> Value<T> {
    /// A new value guarded by its own new `RLock`.
    ///
    /// Python: `Value(typecode, value)` (the default `lock=True` makes an `RLock`).
    pub fn new(value: T) -> Result<Self> {
        Self::with_lock(value, AnyLock::new_rlock()?)
    }

    /// A new value guarded by `lock` (a [`mp_sync::Lock`], an [`mp_sync::RLock`] or an
    /// [`AnyLock`]), which other values may share.
    ///
    /// Python: `Value(typecode, value, lock=lock)`.
    pub fn with_lock(value: T, lock: impl Into<AnyLock>) -> Result<Self> {
        Ok(Value {
            inner: Synced::create(1, Some(&[value]), lock.into())?,
        })
    }

    /// Reads the value under the lock. Python: `v.value`.
    pub fn get(&self) -> Result<T> {
        self.inner.with(|c| *c.first())
    }

    /// Writes the value under the lock. Python: `v.value = x`.
    pub fn set(&self, value: T) -> Result<()> {
        self.inner.with(|c| *c.first_mut() = value)
    }

    /// The lock that guards the value. Python: `v.get_lock()`.
    pub fn get_lock(&self) -> &AnyLock {
        &self.inner.lock
    }
}

guard_surface!(Value, ValueGuard, "v");

/// The value of a [`Value`], borrowed while its lock is held; derefs to the `T`.
///
/// Python: `v.value` inside `with v.get_lock():`. Releases the lock when dropped. Not `Send`
/// (an `RLock` is released by the thread that holds it):
///
/// ```compile_fail
/// let v = mp_shared::Value::new(1i32).unwrap();
/// let g = v.lock().unwrap();
/// std::thread::scope(|s| {
///     s.spawn(move || drop(g));
/// });
/// ```
#[must_use = "if unused the lock will immediately unlock"]
pub struct ValueGuard<'a, T: Pod> {
    access: Access<'a, T>,
}

impl<T: Pod + fmt::Debug> fmt::Debug for ValueGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ValueGuard").field(&**self).finish()
    }
}

impl<T: Pod> Deref for ValueGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.access.claim.first()
    }
}

impl<T: Pod> DerefMut for ValueGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        self.access.claim.first_mut()
    }
}

/// A `T` in shared memory, without a lock.
///
/// Python: `multiprocessing.RawValue(typecode_or_type, *args)` (or `Value(..., lock=False)`).
/// Reads and writes are never data races: each copies the value with atomic words of up to
/// 8 bytes (the largest that divide the size and alignment of `T`), so an `i64` or `f64` is
/// never torn, but a wider struct written concurrently may be read half old, half new (as in C
/// or Python). There is no ordering between processes: use a [`Value`] or a
/// [`SharedAtomic`](crate::SharedAtomic) to synchronize.
///
/// Clones are handles to the same value; pass one to a child or over a duplex `Connection`.
#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
pub struct RawValue<T: Pod> {
    cells: RawCells<T>,
}

impl<T: Pod> Clone for RawValue<T> {
    fn clone(&self) -> Self {
        RawValue {
            cells: self.cells.clone(),
        }
    }
}

impl<T: Pod + fmt::Debug> fmt::Debug for RawValue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RawValue").field(&self.get()).finish()
    }
}

impl<T: Pod> RawValue<T> {
    /// A new raw value. Python: `RawValue(typecode, value)`.
    pub fn new(value: T) -> Result<Self> {
        Ok(RawValue {
            cells: RawCells::create(1, Some(&[value]))?,
        })
    }

    /// Reads the value (see the type's docs about tearing). Python: `v.value`.
    pub fn get(&self) -> T {
        // Element 0 of a one-element object always exists.
        self.cells.load(0).unwrap_or_else(T::zeroed)
    }

    /// Writes the value. Python: `v.value = x`.
    pub fn set(&self, value: T) {
        self.cells.store(0, value);
    }
}
