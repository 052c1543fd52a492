//! One typed view of a shared segment for the whole stack: [`SharedState`] (a `#[repr(C)]`
//! block of atomics), declared with [`shared_state!`](crate::shared_state), and
//! [`SharedSegment::view`] / [`SharedView`], which check size and alignment at run time, in
//! release builds too. Locks, events, queues' headers and values' headers are all read this way.
#![allow(unsafe_code)]

use std::fmt;
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::ptr::NonNull;
use std::sync::atomic::{
    AtomicI16, AtomicI32, AtomicI64, AtomicI8, AtomicIsize, AtomicU16, AtomicU32, AtomicU64,
    AtomicU8, AtomicUsize,
};
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};
use crate::shm::SharedSegment;

/// A block that may live in memory shared between processes: any bit pattern (all zeroes
/// included) is a valid value, and every field is safe to access from many processes at once.
///
/// Implemented for the std atomics, arrays of `SharedState`, and structs declared with
/// [`shared_state!`](crate::shared_state) (which checks that every field is `SharedState`).
///
/// # Safety
///
/// Only types made of atomics (directly, in arrays, or in other `SharedState` structs), with a
/// defined layout (`#[repr(C)]`), may implement it.
pub unsafe trait SharedState: Sized + Sync {}

macro_rules! atomics_are_shared_state {
    ($($t:ty),*) => {
        // SAFETY: an atomic integer is valid for every bit pattern and made for concurrent
        // access; its layout is that of the integer.
        $(unsafe impl SharedState for $t {})*
    };
}
atomics_are_shared_state!(
    AtomicU8,
    AtomicU16,
    AtomicU32,
    AtomicU64,
    AtomicUsize,
    AtomicI8,
    AtomicI16,
    AtomicI32,
    AtomicI64,
    AtomicIsize
);

// SAFETY: an array of `SharedState` elements is laid out as the elements, each valid for every
// bit pattern and safe to share.
unsafe impl<T: SharedState, const N: usize> SharedState for [T; N] {}

/// Declares a `#[repr(C)]` struct of atomics (or other [`SharedState`] types) and implements
/// [`SharedState`] for it, checking every field's type at compile time.
///
/// ```
/// use std::sync::atomic::AtomicU32;
///
/// mp_core::shared_state! {
///     /// A counter and a flag in shared memory.
///     pub struct Counter {
///         pub value: AtomicU32,
///         pub flags: [AtomicU32; 2],
///     }
/// }
///
/// let segment = mp_core::SharedSegment::new(64).unwrap();
/// let counter: &Counter = segment.view().unwrap();
/// counter.value.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
/// ```
///
/// A field that is not `SharedState` does not compile:
///
/// ```compile_fail
/// mp_core::shared_state! {
///     pub struct Bad {
///         pub plain: u32,
///     }
/// }
/// ```
#[macro_export]
macro_rules! shared_state {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident $(<$gen:ident>)? {
            $($(#[$fmeta:meta])* $fvis:vis $field:ident : $ty:ty),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[repr(C)]
        $vis struct $name $(<$gen>)? {
            $($(#[$fmeta])* $fvis $field: $ty),*
        }

        // SAFETY: `#[repr(C)]`, and every field is `SharedState` (the bound below fails to
        // compile otherwise), so the struct is made of atomics only.
        #[allow(unsafe_code)]
        unsafe impl $(<$gen: $crate::SharedState>)? $crate::SharedState for $name $(<$gen>)?
        where
            $($ty: $crate::SharedState,)*
        {
        }
    };
}

impl SharedSegment {
    /// Views the start of the segment as a `T`, checking at run time (in every build) that the
    /// segment is large enough and suitably aligned.
    ///
    /// [`Error::InvalidArgument`] otherwise. The reference borrows the segment, which keeps the
    /// mapping alive; other processes may write it at any time, which `SharedState` makes fine.
    pub fn view<T: SharedState>(&self) -> Result<&T> {
        let ptr = self.checked_ptr::<T>()?;
        // SAFETY: `checked_ptr` checked that `size_of::<T>()` bytes at `ptr` lie inside the
        // mapping and that `ptr` is aligned for `T`; any bit pattern is a valid `T` and all
        // access is atomic (`SharedState`); the reference borrows `self`, which owns the mapping.
        Ok(unsafe { ptr.as_ref() })
    }

    fn checked_ptr<T: SharedState>(&self) -> Result<NonNull<T>> {
        let size = std::mem::size_of::<T>();
        if self.len() < size {
            return Err(Error::InvalidArgument(format!(
                "a shared segment of {} bytes cannot hold a {} of {size} bytes",
                self.len(),
                std::any::type_name::<T>()
            )));
        }
        let ptr = self.as_ptr();
        if (ptr as usize) % std::mem::align_of::<T>() != 0 {
            return Err(Error::InvalidArgument(format!(
                "a shared segment is not aligned for a {}",
                std::any::type_name::<T>()
            )));
        }
        NonNull::new(ptr.cast::<T>())
            .ok_or_else(|| Error::InvalidArgument("a shared segment at address 0".into()))
    }
}

/// A `T` at the start of a shared segment, owning the segment: checked once (size and
/// alignment), then borrowed freely. Clones share the segment.
///
/// The building block of every shared primitive's handle (locks, events, queues, values): it
/// serializes as the segment (inside a handle transfer, see [`crate::handle`]) and checks the
/// received segment again on arrival.
pub struct SharedView<T> {
    /// Dropped by hand (see the `Drop` impl), so that the view's own address never escapes.
    segment: ManuallyDrop<Arc<SharedSegment>>,
    state: NonNull<T>,
    _owns: PhantomData<T>,
}

// SAFETY: `SharedView<T>` only hands out `&T`, and `T: SharedState` is `Sync` (atomics); the
// mapping behind the pointer is kept alive by the `Arc` and never moves.
unsafe impl<T: SharedState> Send for SharedView<T> {}
// SAFETY: as for `Send`.
unsafe impl<T: SharedState> Sync for SharedView<T> {}

impl<T> Clone for SharedView<T> {
    fn clone(&self) -> Self {
        SharedView {
            segment: ManuallyDrop::new(Arc::clone(&self.segment)),
            state: self.state,
            _owns: PhantomData,
        }
    }
}

impl<T> Drop for SharedView<T> {
    /// Moves the `Arc` out before dropping it, so that the `Arc`'s slow path (`drop_slow`,
    /// which takes the `Arc`'s address) sees a local copy and not the view. A view whose
    /// address never escapes keeps its pointer in a register in a caller's loop; one whose
    /// address escapes has it reloaded after every atomic operation on the shared state,
    /// which the compiler must assume may have changed it.
    #[inline]
    fn drop(&mut self) {
        // SAFETY: `segment` is taken once, here, and `self` is not used after `drop`.
        let segment = unsafe { ManuallyDrop::take(&mut self.segment) };
        drop(segment);
    }
}

impl<T> fmt::Debug for SharedView<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedView")
            .field("type", &std::any::type_name::<T>())
            .field("len", &self.segment.len())
            .finish()
    }
}

impl<T: SharedState> SharedView<T> {
    /// A view of a new zero-filled segment just large enough for a `T` (a page at least).
    pub fn create() -> Result<Self> {
        Self::new(SharedSegment::new(std::mem::size_of::<T>().max(1))?)
    }

    /// Views `segment` (checked as [`SharedSegment::view`] does).
    pub fn new(segment: SharedSegment) -> Result<Self> {
        let state = segment.checked_ptr::<T>()?;
        Ok(SharedView {
            segment: ManuallyDrop::new(Arc::new(segment)),
            state,
            _owns: PhantomData,
        })
    }

    /// The state block.
    #[inline]
    pub fn get(&self) -> &T {
        // SAFETY: `state` was checked (size, alignment) against the mapping that `self.segment`
        // owns, which lives at least as long as `&self`; `T: SharedState` makes shared access
        // sound.
        unsafe { self.state.as_ref() }
    }

    /// The segment under the view.
    pub fn segment(&self) -> &SharedSegment {
        &self.segment
    }

    /// Whether two views show the same memory: the same mapping, or (for views that crossed a
    /// transfer, mapped again at another address) the same memfd.
    pub fn same_as(&self, other: &Self) -> bool {
        if Arc::ptr_eq(&self.segment, &other.segment) || self.state == other.state {
            return true;
        }
        match (
            rustix::fs::fstat(self.segment.fd()),
            rustix::fs::fstat(other.segment.fd()),
        ) {
            (Ok(a), Ok(b)) => a.st_dev == b.st_dev && a.st_ino == b.st_ino,
            _ => false,
        }
    }
}

impl<T> Serialize for SharedView<T> {
    /// Serializes only inside a handle transfer (see [`crate::handle`]).
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.segment.serialize(s)
    }
}

impl<'de, T: SharedState> Deserialize<'de> for SharedView<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let segment = SharedSegment::deserialize(d)?;
        SharedView::new(segment).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    crate::shared_state! {
        #[derive(Debug)]
        struct Pair {
            a: AtomicU64,
            b: [AtomicU64; 3],
        }
    }

    crate::shared_state! {
        #[derive(Debug)]
        struct Big {
            words: [AtomicU64; 1024],
        }
    }

    #[test]
    fn a_view_checks_the_size_at_run_time() {
        let small = SharedSegment::new(std::mem::size_of::<Pair>()).unwrap();
        assert!(small.view::<Pair>().is_ok());
        let err = small.view::<Big>().unwrap_err();
        assert!(err.to_string().contains("cannot hold"), "{err}");
        let err = SharedView::<Big>::new(small).unwrap_err();
        assert!(err.to_string().contains("cannot hold"), "{err}");
    }

    #[test]
    fn views_of_one_segment_see_the_same_memory() {
        let v = SharedView::<Pair>::create().unwrap();
        let w = v.clone();
        v.get().b[2].store(7, Ordering::Relaxed);
        assert_eq!(w.get().b[2].load(Ordering::Relaxed), 7);
        assert!(v.same_as(&w));
        let other = SharedView::<Pair>::create().unwrap();
        assert!(!v.same_as(&other));
    }
}
