//! The crate's only `unsafe` code: the ring's data, which lives in a shared segment after the
//! header page (the header itself is viewed through `mp_core::SharedView`).
#![allow(unsafe_code)]

use std::io;
use std::sync::atomic::{AtomicU32, AtomicU64};

use mp_core::{SharedSegment, SharedState};

/// Bytes before the data: the header's page.
pub(crate) const HEADER: usize = 4096;

/// Pads a hot field to its own cache line.
#[repr(C, align(128))]
pub(crate) struct Line<T>(pub T);

// SAFETY: `#[repr(C)]` around one `SharedState` field (plus padding): made of atomics only.
unsafe impl<T: SharedState> SharedState for Line<T> {}

mp_core::shared_state! {
    /// Constants of the ring, written once before it is shared.
    pub(crate) struct Consts {
        pub magic: AtomicU32,
        pub kind: AtomicU32,
        pub capacity: AtomicU64,
        pub soft: AtomicU64,
        pub maxsize: AtomicU64,
    }
}

mp_core::shared_state! {
    /// Written by producers (under the put lock).
    pub(crate) struct ProducerSide {
        /// `count << 32 | pos`: items ever put (mod 2^32), bytes ever put (mod 2^31).
        pub tail: AtomicU64,
        /// Bumped when an item is published while a consumer sleeps; consumers sleep on it.
        pub items_seq: AtomicU32,
        pub item_sleepers: AtomicU32,
    }
}

mp_core::shared_state! {
    /// Read and written by producers only (under the put lock), on a line of its own so that a
    /// put does not take a line that consumers read.
    pub(crate) struct ProducerOwn {
        /// The head as a producer last loaded it: never ahead of the real one, so it shows
        /// less room and more items than there are, and is loaded again only when it shows too
        /// little.
        pub head_seen: AtomicU64,
        /// The furthest data offset producers have written (for hole punching).
        pub high_water: AtomicU64,
    }
}

mp_core::shared_state! {
    /// Read and written by consumers only (under the get lock), on a line of its own.
    pub(crate) struct ConsumerOwn {
        /// The tail as a consumer last loaded it: never ahead of the real one, so the items
        /// it shows are there; loaded again once they are taken.
        pub tail_seen: AtomicU64,
    }
}

mp_core::shared_state! {
    /// Written by consumers (under the get lock).
    pub(crate) struct ConsumerSide {
        /// `count << 32 | pos`, like `tail`.
        pub head: AtomicU64,
        /// Bumped when space is freed while a producer sleeps; producers sleep on it.
        pub space_seq: AtomicU32,
        pub space_sleepers: AtomicU32,
    }
}

mp_core::shared_state! {
    /// `JoinableQueue` bookkeeping.
    pub(crate) struct TaskSide {
        /// Items marked done ever (mod 2^32, compared with `tail`'s count).
        pub done: AtomicU32,
        /// Bumped by `task_done`; `join` sleeps on it.
        pub done_seq: AtomicU32,
        pub join_sleepers: AtomicU32,
    }
}

mp_core::shared_state! {
    /// The header page.
    pub(crate) struct Header {
        pub consts: Line<Consts>,
        pub producer: Line<ProducerSide>,
        pub consumer: Line<ConsumerSide>,
        pub tasks: Line<TaskSide>,
        pub producer_own: Line<ProducerOwn>,
        pub consumer_own: Line<ConsumerOwn>,
    }
}

const _: () = assert!(std::mem::size_of::<Header>() <= HEADER);

/// Copies `bytes` into the data area at `offset`.
///
/// Only the holder of the put lock calls this, for bytes past the published tail, which no
/// other process reads or writes (the ring's protocol).
pub(crate) fn write_data(segment: &SharedSegment, offset: usize, bytes: &[u8]) {
    assert!(
        HEADER + offset + bytes.len() <= segment.len(),
        "ring write out of bounds"
    );
    // SAFETY: in bounds (asserted above); by the ring's protocol no other process accesses
    // this range until the tail that publishes it is stored (with release ordering).
    unsafe {
        std::ptr::copy_nonoverlapping(
            bytes.as_ptr(),
            segment.as_ptr().add(HEADER + offset),
            bytes.len(),
        );
    }
}

/// The published bytes `offset..offset + len` of the data area.
///
/// Only the holder of the get lock calls this, for bytes between head and the tail it loaded
/// (with acquire ordering): nobody writes them until the head moves past them.
pub(crate) fn read_data(segment: &SharedSegment, offset: usize, len: usize) -> &[u8] {
    assert!(
        HEADER + offset + len <= segment.len(),
        "ring read out of bounds"
    );
    // SAFETY: in bounds (asserted above); by the ring's protocol these bytes are published and
    // immutable while the caller holds the get lock and has not moved the head past them; the
    // slice borrows `segment`, which keeps the mapping alive.
    unsafe { std::slice::from_raw_parts(segment.as_ptr().add(HEADER + offset), len) }
}

/// An `io::Write` straight into the data area, for encoding an item in place.
pub(crate) struct DataWriter<'a> {
    segment: &'a SharedSegment,
    start: usize,
    limit: usize,
    written: usize,
    overflowed: bool,
}

impl<'a> DataWriter<'a> {
    /// A writer of at most `limit` bytes at data offset `start` (same protocol as
    /// [`write_data`]).
    pub(crate) fn new(segment: &'a SharedSegment, start: usize, limit: usize) -> Self {
        DataWriter {
            segment,
            start,
            limit,
            written: 0,
            overflowed: false,
        }
    }

    /// Whether a write was refused for lack of room.
    pub(crate) fn overflowed(&self) -> bool {
        self.overflowed
    }

    /// Bytes written so far.
    pub(crate) fn written(&self) -> usize {
        self.written
    }
}

/// The error a [`DataWriter`] gives when its room runs out.
const NO_ROOM: &str = "mp-queue: no room in the ring";

impl io::Write for DataWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.written + buf.len() > self.limit {
            self.overflowed = true;
            return Err(io::Error::new(io::ErrorKind::WriteZero, NO_ROOM));
        }
        write_data(self.segment, self.start + self.written, buf);
        self.written += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
