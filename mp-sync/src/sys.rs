//! The crate's only `unsafe` code: typed views of shared segments, and the fork hook that keeps
//! the cached pid right.
#![allow(unsafe_code)]

use std::sync::atomic::{AtomicU32, Ordering};

use mp_core::SharedSegment;

/// A `#[repr(C)]` state block that lives at the start of a [`SharedSegment`].
///
/// # Safety
/// Implementors must be made only of atomics (and arrays of them), so that any bit pattern,
/// in particular all zeroes, is a valid value, every field is safe to access from many
/// processes at once, and the alignment is at most a page.
pub(crate) unsafe trait SharedState: Sized {}

// The blocks below are `#[repr(C)]` structs made only of `AtomicU32`/`AtomicU64` fields and
// arrays of such structs; all-zero is valid; alignment is 8 at most.
// SAFETY: as described above.
unsafe impl SharedState for crate::lock::LockState {}
// SAFETY: as above.
unsafe impl SharedState for crate::lock::RLockState {}
// SAFETY: as above.
unsafe impl SharedState for crate::semaphore::SemState {}
// SAFETY: as above.
unsafe impl SharedState for crate::event::EventState {}
// SAFETY: as above.
unsafe impl SharedState for crate::condition::CondState {}
// SAFETY: as above.
unsafe impl SharedState for crate::barrier::BarrierState {}

/// Views the start of `segment` as a `T`.
///
/// Returns `None` if the segment is too small.
pub(crate) fn view<T: SharedState>(segment: &SharedSegment) -> Option<&T> {
    if segment.len() < std::mem::size_of::<T>() {
        return None;
    }
    // SAFETY: the mapping starts on a page boundary, so it is aligned for `T` (alignment at
    // most a page, by `SharedState`'s contract); it is at least `size_of::<T>()` bytes (checked
    // above); any bit pattern is a valid `T` and all access goes through atomics, so other
    // processes writing it concurrently is fine; the reference borrows `segment`, which keeps
    // the mapping alive.
    Some(unsafe { &*(segment.as_ptr() as *const T) })
}

/// This process's pid, cached by `mp_core` (a fork hook refreshes it in every child).
#[inline]
pub(crate) fn pid() -> u32 {
    mp_core::process_id()
}

/// A state block `T` at the start of a shared segment, checked once (size and magic) and then
/// borrowed freely. Clones share the segment.
pub(crate) struct Segment<T> {
    segment: std::sync::Arc<SharedSegment>,
    state: std::ptr::NonNull<T>,
}

/// A state block with a magic number, so that a handle of one kind never maps another's.
pub(crate) trait Tagged: SharedState {
    /// The value of [`Tagged::magic`] in a live block of this kind.
    const MAGIC: u32;
    /// The Python name of the object, for messages.
    const NAME: &'static str;
    /// The block's magic word.
    fn magic(&self) -> &AtomicU32;
}

// SAFETY: `Segment<T>` only hands out `&T`, and `T` is made of atomics (`SharedState`), which
// are `Sync`; the mapping behind the pointer is kept alive by the `Arc` and never moves.
unsafe impl<T: SharedState + Sync> Send for Segment<T> {}
// SAFETY: as for `Send`.
unsafe impl<T: SharedState + Sync> Sync for Segment<T> {}

impl<T> Clone for Segment<T> {
    fn clone(&self) -> Self {
        Segment {
            segment: self.segment.clone(),
            state: self.state,
        }
    }
}

impl<T: Tagged> Segment<T> {
    /// A new zeroed block; `init` fills it before its magic is set.
    pub(crate) fn new(init: impl FnOnce(&T)) -> mp_core::Result<Self> {
        let segment = SharedSegment::new(std::mem::size_of::<T>())?;
        let state = view::<T>(&segment)
            .map(std::ptr::NonNull::from)
            .ok_or_else(|| mp_core::Error::InvalidArgument("shared segment too small".into()))?;
        let s = Segment {
            segment: std::sync::Arc::new(segment),
            state,
        };
        init(s.get());
        s.get().magic().store(T::MAGIC, Ordering::Release);
        Ok(s)
    }

    /// Adopts a received segment, checking that it holds a `T`.
    pub(crate) fn from_segment(segment: SharedSegment, what: &str) -> mp_core::Result<Self> {
        let what = if what.is_empty() { T::NAME } else { what };
        let state = view::<T>(&segment)
            .filter(|t| t.magic().load(Ordering::Acquire) == T::MAGIC)
            .map(std::ptr::NonNull::from)
            .ok_or_else(|| {
                mp_core::Error::Handle(format!("the shared segment received is not a {what}"))
            })?;
        Ok(Segment {
            segment: std::sync::Arc::new(segment),
            state,
        })
    }

    /// The state block.
    #[inline]
    pub(crate) fn get(&self) -> &T {
        // SAFETY: `state` points into the mapping owned by `self.segment` (checked for size and
        // alignment by `view` when this `Segment` was made), which lives at least as long as
        // `&self`; `T: SharedState` makes shared access sound.
        unsafe { self.state.as_ref() }
    }

    /// Whether two handles name the same block.
    pub(crate) fn same(&self, other: &Self) -> bool {
        if std::sync::Arc::ptr_eq(&self.segment, &other.segment) || self.state == other.state {
            return true;
        }
        // Handles that crossed a transfer map the same memfd at another address.
        match (
            rustix::fs::fstat(self.segment.fd()),
            rustix::fs::fstat(other.segment.fd()),
        ) {
            (Ok(a), Ok(b)) => a.st_dev == b.st_dev && a.st_ino == b.st_ino,
            _ => false,
        }
    }
}

impl<T: Tagged> serde::Serialize for Segment<T> {
    /// Serializes only inside a handle transfer (see `mp_core::handle`).
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.segment.serialize(s)
    }
}

impl<'de, T: Tagged> serde::Deserialize<'de> for Segment<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let segment = SharedSegment::deserialize(d)?;
        Segment::from_segment(segment, T::NAME).map_err(serde::de::Error::custom)
    }
}
