//! `SharedAtomic`: a lock-free integer in shared memory.

use std::fmt;
use std::sync::atomic::Ordering::SeqCst;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::sys::AtomicCells;

mod sealed {
    /// The operations of `std`'s atomic type for an integer; not implementable outside.
    pub trait Sealed: bytemuck::Pod {
        type Atomic: crate::sys::StdAtomic<Int = Self>;
        fn load(a: &Self::Atomic) -> Self;
        fn store(a: &Self::Atomic, v: Self);
        fn swap(a: &Self::Atomic, v: Self) -> Self;
        fn fetch_add(a: &Self::Atomic, v: Self) -> Self;
        fn fetch_sub(a: &Self::Atomic, v: Self) -> Self;
        fn fetch_and(a: &Self::Atomic, v: Self) -> Self;
        fn fetch_or(a: &Self::Atomic, v: Self) -> Self;
        fn fetch_xor(a: &Self::Atomic, v: Self) -> Self;
        fn fetch_max(a: &Self::Atomic, v: Self) -> Self;
        fn fetch_min(a: &Self::Atomic, v: Self) -> Self;
        fn compare_exchange(a: &Self::Atomic, current: Self, new: Self) -> Result<Self, Self>;
    }
}

/// An integer type with a lock-free atomic: `i8`, `u8`, `i16`, `u16`, `i32`, `u32`, `i64`,
/// `u64`, `isize`, `usize`. Sealed.
pub trait AtomicInt: sealed::Sealed + fmt::Debug + Send + Sync + 'static {}

macro_rules! atomic_int {
    ($($int:ty => $atomic:ty),* $(,)?) => {$(
        impl sealed::Sealed for $int {
            type Atomic = $atomic;
            fn load(a: &$atomic) -> $int { a.load(SeqCst) }
            fn store(a: &$atomic, v: $int) { a.store(v, SeqCst) }
            fn swap(a: &$atomic, v: $int) -> $int { a.swap(v, SeqCst) }
            fn fetch_add(a: &$atomic, v: $int) -> $int { a.fetch_add(v, SeqCst) }
            fn fetch_sub(a: &$atomic, v: $int) -> $int { a.fetch_sub(v, SeqCst) }
            fn fetch_and(a: &$atomic, v: $int) -> $int { a.fetch_and(v, SeqCst) }
            fn fetch_or(a: &$atomic, v: $int) -> $int { a.fetch_or(v, SeqCst) }
            fn fetch_xor(a: &$atomic, v: $int) -> $int { a.fetch_xor(v, SeqCst) }
            fn fetch_max(a: &$atomic, v: $int) -> $int { a.fetch_max(v, SeqCst) }
            fn fetch_min(a: &$atomic, v: $int) -> $int { a.fetch_min(v, SeqCst) }
            fn compare_exchange(a: &$atomic, c: $int, n: $int) -> Result<$int, $int> {
                a.compare_exchange(c, n, SeqCst, SeqCst)
            }
        }
        impl AtomicInt for $int {}
    )*};
}

use std::sync::atomic::{
    AtomicI16, AtomicI32, AtomicI64, AtomicI8, AtomicIsize, AtomicU16, AtomicU32, AtomicU64,
    AtomicU8, AtomicUsize,
};

atomic_int!(
    i8 => AtomicI8, u8 => AtomicU8, i16 => AtomicI16, u16 => AtomicU16,
    i32 => AtomicI32, u32 => AtomicU32, i64 => AtomicI64, u64 => AtomicU64,
    isize => AtomicIsize, usize => AtomicUsize,
);

/// A lock-free atomic integer in shared memory: the fast path for counters.
///
/// Beyond Python (whose nearest equivalent is `Value('i', 0)` with `with v.get_lock():
/// v.value += 1`, a lock round trip per update). Each operation is one atomic instruction on
/// shared memory (`lock xadd`, `lock cmpxchg`, ...), sequentially consistent, never blocking,
/// never failing, and immune to a process dying mid-update. Two processes incrementing one
/// counter run at tens of millions of updates per second, against a few million for a
/// [`Value`](crate::Value) under its lock.
///
/// Arithmetic wraps around on overflow, as `std`'s atomics do. Clones are handles to the same
/// integer; pass one to a child (under any start method) or send it over a duplex
/// `Connection` to share it.
///
/// ```
/// use mp_shared::SharedAtomic;
///
/// let hits = SharedAtomic::new(0u64).unwrap();
/// hits.fetch_add(5);
/// assert_eq!(hits.compare_exchange(5, 7), Ok(5));
/// assert_eq!(hits.load(), 7);
/// ```
#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
pub struct SharedAtomic<T: AtomicInt> {
    cells: AtomicCells<T>,
}

impl<T: AtomicInt> Clone for SharedAtomic<T> {
    fn clone(&self) -> Self {
        SharedAtomic {
            cells: self.cells.clone(),
        }
    }
}

impl<T: AtomicInt> fmt::Debug for SharedAtomic<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SharedAtomic").field(&self.load()).finish()
    }
}

impl<T: AtomicInt> SharedAtomic<T> {
    /// A new atomic integer holding `value`.
    pub fn new(value: T) -> Result<Self> {
        Ok(SharedAtomic {
            cells: AtomicCells::create(1, Some(&[value]))?,
        })
    }

    fn a(&self) -> &T::Atomic {
        self.cells.atomic::<T::Atomic>()
    }

    /// The current value (`AtomicI64::load`).
    pub fn load(&self) -> T {
        T::load(self.a())
    }

    /// Replaces the value (`AtomicI64::store`).
    pub fn store(&self, value: T) {
        T::store(self.a(), value)
    }

    /// Replaces the value, returning the previous one (`AtomicI64::swap`).
    pub fn swap(&self, value: T) -> T {
        T::swap(self.a(), value)
    }

    /// Adds `value` (wrapping), returning the previous value (`AtomicI64::fetch_add`): the
    /// counter increment.
    pub fn fetch_add(&self, value: T) -> T {
        T::fetch_add(self.a(), value)
    }

    /// Subtracts `value` (wrapping), returning the previous value (`AtomicI64::fetch_sub`).
    pub fn fetch_sub(&self, value: T) -> T {
        T::fetch_sub(self.a(), value)
    }

    /// Bitwise and, returning the previous value.
    pub fn fetch_and(&self, value: T) -> T {
        T::fetch_and(self.a(), value)
    }

    /// Bitwise or, returning the previous value.
    pub fn fetch_or(&self, value: T) -> T {
        T::fetch_or(self.a(), value)
    }

    /// Bitwise xor, returning the previous value.
    pub fn fetch_xor(&self, value: T) -> T {
        T::fetch_xor(self.a(), value)
    }

    /// Stores the maximum of the value and `value`, returning the previous value.
    pub fn fetch_max(&self, value: T) -> T {
        T::fetch_max(self.a(), value)
    }

    /// Stores the minimum of the value and `value`, returning the previous value.
    pub fn fetch_min(&self, value: T) -> T {
        T::fetch_min(self.a(), value)
    }

    /// Stores `new` if the value is `current`: `Ok(previous)` if it was, `Err(actual)` if not
    /// (`AtomicI64::compare_exchange`).
    pub fn compare_exchange(&self, current: T, new: T) -> std::result::Result<T, T> {
        T::compare_exchange(self.a(), current, new)
    }

    /// Applies `f` until it succeeds without interference (a compare-exchange loop), returning
    /// the previous value; `Err(current)` if `f` returns `None` (`AtomicI64::fetch_update`).
    pub fn fetch_update(&self, mut f: impl FnMut(T) -> Option<T>) -> std::result::Result<T, T> {
        let mut current = self.load();
        while let Some(new) = f(current) {
            match self.compare_exchange(current, new) {
                Ok(previous) => return Ok(previous),
                Err(actual) => current = actual,
            }
        }
        Err(current)
    }
}
