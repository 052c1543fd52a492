//! The state block of a primitive at the start of a shared segment: a [`Segment`] is a
//! checked [`mp_core::SharedView`] plus a magic number, so that a handle of one kind never
//! adopts another's segment. No `unsafe` here: the view is mp-core's.

use std::sync::atomic::{AtomicU32, Ordering};

use mp_core::{SharedSegment, SharedState, SharedView};

/// This process's pid, cached by `mp_core` (a fork hook refreshes it in every child).
#[inline]
pub(crate) fn pid() -> u32 {
    mp_core::process_id()
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

/// A state block `T` at the start of a shared segment, checked once (size, alignment, magic)
/// and then borrowed freely. Clones share the segment.
pub(crate) struct Segment<T>(SharedView<T>);

impl<T> Clone for Segment<T> {
    fn clone(&self) -> Self {
        Segment(self.0.clone())
    }
}

impl<T: Tagged> Segment<T> {
    /// A new zeroed block; `init` fills it before its magic is set.
    pub(crate) fn new(init: impl FnOnce(&T)) -> mp_core::Result<Self> {
        let view = SharedView::<T>::create()?;
        init(view.get());
        view.get().magic().store(T::MAGIC, Ordering::Release);
        Ok(Segment(view))
    }

    /// Adopts a received segment, checking that it holds a `T`.
    pub(crate) fn from_segment(segment: SharedSegment, what: &str) -> mp_core::Result<Self> {
        let what = if what.is_empty() { T::NAME } else { what };
        SharedView::<T>::new(segment)
            .ok()
            .filter(|v| v.get().magic().load(Ordering::Acquire) == T::MAGIC)
            .map(Segment)
            .ok_or_else(|| {
                mp_core::Error::Handle(format!("the shared segment received is not a {what}"))
            })
    }

    /// The state block.
    #[inline]
    pub(crate) fn get(&self) -> &T {
        self.0.get()
    }

    /// Whether two handles name the same block.
    pub(crate) fn same(&self, other: &Self) -> bool {
        self.0.same_as(&other.0)
    }
}

impl<T: Tagged> serde::Serialize for Segment<T> {
    /// Serializes only inside a handle transfer (see `mp_core::handle`).
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de, T: Tagged> serde::Deserialize<'de> for Segment<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let segment = SharedSegment::deserialize(d)?;
        Segment::from_segment(segment, T::NAME).map_err(serde::de::Error::custom)
    }
}
