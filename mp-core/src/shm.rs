//! Anonymous shared segments: a memfd mapped `MAP_SHARED`, shared with children by fd.

use std::fmt;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};
use crate::handle::{self, HandleFd};
use crate::sys;

/// A block of memory shared between processes: a memfd mapped `MAP_SHARED`.
///
/// The building block of locks, values and queues (Python's `multiprocessing.heap.Arena`).
/// It is zero-filled at creation, never moves while mapped, and is shared with a child by
/// passing it (or an object holding it) as an argument, or over a duplex `Connection`: the fd
/// travels, and the receiver maps the same pages. Under fork a child simply inherits the mapping.
///
/// (`memmap2`'s `map_anon` is `MAP_PRIVATE`, which a forked child sees as a private copy; a memfd
/// mapping is the same memory in every process.)
pub struct SharedSegment {
    fd: OwnedFd,
    map: memmap2::MmapRaw,
}

impl fmt::Debug for SharedSegment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedSegment")
            .field("len", &self.len())
            .finish()
    }
}

impl SharedSegment {
    /// A new zero-filled segment of `len` bytes (`len > 0`).
    pub fn new(len: usize) -> Result<Self> {
        if len == 0 {
            return Err(Error::InvalidArgument(
                "a shared segment needs at least one byte".into(),
            ));
        }
        let fd = rustix::fs::memfd_create("mp-segment", rustix::fs::MemfdFlags::CLOEXEC)?;
        rustix::fs::ftruncate(&fd, len as u64)?;
        Self::map(fd, len)
    }

    /// Maps a segment from an fd (a memfd or any shared-memory file) at its whole size.
    pub fn from_fd(fd: OwnedFd) -> Result<Self> {
        let size = rustix::fs::fstat(&fd)?.st_size;
        let len = usize::try_from(size)
            .ok()
            .filter(|&l| l > 0)
            .ok_or_else(|| {
                Error::InvalidArgument(format!("cannot map a segment of {size} bytes"))
            })?;
        Self::map(fd, len)
    }

    fn map(fd: OwnedFd, len: usize) -> Result<Self> {
        let map = sys::map_shared(fd.as_fd(), len)?;
        Ok(SharedSegment { fd, map })
    }

    /// The segment's size in bytes.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Always false: a segment has at least one byte.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The first byte. Valid for [`len`](Self::len) bytes for as long as this segment lives;
    /// other processes may write it at any time, so access it with atomics or under a lock.
    pub fn as_ptr(&self) -> *mut u8 {
        self.map.as_mut_ptr()
    }

    /// The memfd behind the segment.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Serialize for SharedSegment {
    /// Serializes only inside a handle transfer (see [`crate::handle`]).
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        handle::serialize_fd(self.fd.as_fd(), "SharedSegment", s)
    }
}

impl<'de> Deserialize<'de> for SharedSegment {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let HandleFd(fd) = HandleFd::deserialize(d)?;
        SharedSegment::from_fd(fd).map_err(serde::de::Error::custom)
    }
}
