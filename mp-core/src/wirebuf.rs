//! Byte buffers for messages on the wire that a fork leaves alone. Beyond Python.
//!
//! After a `fork`, every page of the parent is shared copy-on-write with the child. The
//! parent's first write to each such page then faults, copies the page, and, when another of
//! the parent's threads runs on another CPU, interrupts that CPU to flush its TLB and waits for
//! it. A pool's supervisor reads its workers' results into buffers right after the workers were
//! forked: with buffers from the heap, a new pool's first `map` paid one such fault per page
//! of results read, and the flushes were the largest single cost of the whole map.
//!
//! A [`WireBuf`] lives in its own anonymous mapping marked `MADV_WIPEONFORK`: a fork does not
//! share it, so the parent's pages stay writable, and a forked child sees the mapping
//! zero-filled (its own, fresh pages, with nothing of the parent's bytes in them). Buffers are
//! recycled: one dropped goes back to a small process-wide cache (at most [`CACHE_BYTES`]), so
//! the buffers of the next message, the next map and the next pool are pages already mapped.
//!
//! The cache is only ever `try_lock`ed: a buffer that finds it busy is mapped (or unmapped)
//! instead, so a child forked while another thread held the lock never waits for it.

use std::io;
use std::sync::{Mutex, TryLockError};

use memmap2::MmapMut;

use crate::sys;

/// The smallest buffer (and the smallest size class): 64 KiB.
const MIN_SHIFT: u32 = 16;
/// The largest size class (16 MiB, the most a frame reader grows by at once); a larger buffer
/// is mapped to its size and unmapped when dropped.
const MAX_SHIFT: u32 = 24;
const CLASSES: usize = (MAX_SHIFT - MIN_SHIFT + 1) as usize;
/// The most bytes of dropped buffers kept for reuse.
pub const CACHE_BYTES: usize = 16 << 20;

struct Cache {
    free: [Vec<MmapMut>; CLASSES],
    bytes: usize,
}

static CACHE: Mutex<Cache> = Mutex::new(Cache {
    free: [const { Vec::new() }; CLASSES],
    bytes: 0,
});

/// Runs `f` on the cache if it is free at once (never waits; see the module documentation).
fn with_cache<T>(f: impl FnOnce(&mut Cache) -> T) -> Option<T> {
    match CACHE.try_lock() {
        Ok(mut c) => Some(f(&mut c)),
        Err(TryLockError::Poisoned(p)) => Some(f(&mut p.into_inner())),
        Err(TryLockError::WouldBlock) => None,
    }
}

/// The size class of a mapping of `len` bytes, if it has one.
fn class_of(len: usize) -> Option<usize> {
    let shift = len.trailing_zeros();
    (len.is_power_of_two() && (MIN_SHIFT..=MAX_SHIFT).contains(&shift))
        .then(|| (shift - MIN_SHIFT) as usize)
}

/// The capacity of a buffer asked to hold `n` bytes: a size class, or `n` rounded up to pages.
fn capacity_for(n: usize) -> io::Result<usize> {
    if n <= 1 << MAX_SHIFT {
        return Ok(n.max(1 << MIN_SHIFT).next_power_of_two());
    }
    let page = rustix::param::page_size();
    n.checked_next_multiple_of(page)
        .ok_or_else(|| io::Error::new(io::ErrorKind::OutOfMemory, "a buffer beyond memory"))
}

/// A mapping of exactly `cap` bytes (a result of [`capacity_for`]): a cached one, or a new one.
fn obtain(cap: usize) -> io::Result<MmapMut> {
    if let Some(class) = class_of(cap) {
        let cached = with_cache(|c| {
            let map = c.free[class].pop()?;
            c.bytes -= map.len();
            Some(map)
        });
        if let Some(Some(map)) = cached {
            return Ok(map);
        }
    }
    sys::map_fork_private(cap)
}

/// Keeps `map` for reuse if it has a size class and the cache has room; else unmaps it.
fn give_back(map: MmapMut) {
    let Some(class) = class_of(map.len()) else {
        return;
    };
    let refused = with_cache(|c| {
        if c.bytes + map.len() > CACHE_BYTES {
            return Some(map);
        }
        c.bytes += map.len();
        c.free[class].push(map);
        None
    });
    // Unmapped here, outside the lock (a `munmap` may have to flush other CPUs' TLBs).
    drop(refused);
}

/// Maps the memory of `room` (the spare capacity of a vector about to be filled) at once, one
/// system call instead of a page fault per page (`MADV_POPULATE_WRITE`; nothing on a kernel
/// without it). For a large buffer filled right after a fork, such as the values of a pool's
/// `map`. Beyond Python.
pub fn prefault<T>(room: &mut [std::mem::MaybeUninit<T>]) {
    sys::prefault_writable(room);
}

/// A growable byte buffer in memory that a fork does not share (see the module documentation).
/// Beyond Python.
///
/// Its bytes past [`len`](Self::len) (its spare room, [`spare_mut`](Self::spare_mut)) are
/// whatever the buffer held before: a reader writes them and then [`advance`](Self::advance)s.
#[derive(Default)]
pub struct WireBuf {
    map: Option<MmapMut>,
    len: usize,
}

impl std::fmt::Debug for WireBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WireBuf")
            .field("len", &self.len)
            .field("capacity", &self.capacity())
            .finish()
    }
}

impl WireBuf {
    /// An empty buffer, without memory.
    pub const fn new() -> Self {
        WireBuf { map: None, len: 0 }
    }

    /// An empty buffer with room for at least `n` bytes.
    pub fn with_capacity(n: usize) -> io::Result<Self> {
        let mut buf = WireBuf::new();
        buf.reserve(n)?;
        Ok(buf)
    }

    /// How many bytes it holds.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds no byte.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How many bytes it can hold without growing.
    pub fn capacity(&self) -> usize {
        self.map.as_ref().map_or(0, |m| m.len())
    }

    /// The bytes it holds.
    pub fn as_slice(&self) -> &[u8] {
        match &self.map {
            Some(m) => &m[..self.len],
            None => &[],
        }
    }

    /// Its room past the bytes it holds (stale bytes, to be overwritten).
    pub fn spare_mut(&mut self) -> &mut [u8] {
        match &mut self.map {
            Some(m) => &mut m[self.len..],
            None => &mut [],
        }
    }

    /// Takes `n` more bytes of the spare room as held (they were written there); at most the
    /// spare room.
    pub fn advance(&mut self, n: usize) {
        self.len = self.len.saturating_add(n).min(self.capacity());
    }

    /// Makes room for at least `additional` more bytes, moving the bytes held into a larger
    /// buffer if need be.
    pub fn reserve(&mut self, additional: usize) -> io::Result<()> {
        let needed = self
            .len
            .checked_add(additional)
            .ok_or_else(|| io::Error::new(io::ErrorKind::OutOfMemory, "a buffer beyond memory"))?;
        if needed <= self.capacity() {
            return Ok(());
        }
        let mut bigger = obtain(capacity_for(needed)?)?;
        bigger[..self.len].copy_from_slice(self.as_slice());
        if let Some(old) = self.map.replace(bigger) {
            give_back(old);
        }
        Ok(())
    }

    /// Appends `bytes`, growing as need be.
    pub fn extend_from_slice(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.reserve(bytes.len())?;
        self.spare_mut()[..bytes.len()].copy_from_slice(bytes);
        self.advance(bytes.len());
        Ok(())
    }

    /// Drops the first `n` bytes (all of them if it holds fewer), moving the rest to the front.
    pub fn consume_front(&mut self, n: usize) {
        let n = n.min(self.len);
        if let Some(m) = &mut self.map {
            m.copy_within(n..self.len, 0);
        }
        self.len -= n;
    }

    /// Drops every byte it holds (keeping its memory).
    pub fn clear(&mut self) {
        self.len = 0;
    }
}

impl std::ops::Deref for WireBuf {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl Drop for WireBuf {
    fn drop(&mut self) {
        if let Some(map) = self.map.take() {
            give_back(map);
        }
    }
}

impl io::Write for WireBuf {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.extend_from_slice(bytes)?;
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Bytes owned in either kind of memory: a vector on the heap (small messages), or a
/// [`WireBuf`] (large ones, and what a frame reader hands over). Beyond Python.
#[derive(Debug)]
pub enum OwnedBytes {
    /// On the heap.
    Heap(Vec<u8>),
    /// In memory a fork does not share.
    Wire(WireBuf),
}

impl OwnedBytes {
    /// The bytes of `bytes`, in a [`WireBuf`] if there are at least `wire_at` of them, else in
    /// a vector of their size.
    pub fn copy_of(bytes: &[u8], wire_at: usize) -> io::Result<OwnedBytes> {
        if bytes.len() < wire_at {
            return Ok(OwnedBytes::Heap(bytes.to_vec()));
        }
        let mut buf = WireBuf::with_capacity(bytes.len())?;
        buf.extend_from_slice(bytes)?;
        Ok(OwnedBytes::Wire(buf))
    }
}

impl std::ops::Deref for OwnedBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            OwnedBytes::Heap(v) => v,
            OwnedBytes::Wire(b) => b.as_slice(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_fall_in_classes_and_large_ones_in_pages() {
        assert_eq!(capacity_for(0).unwrap(), 1 << 16);
        assert_eq!(capacity_for(1).unwrap(), 1 << 16);
        assert_eq!(capacity_for((1 << 16) + 1).unwrap(), 1 << 17);
        assert_eq!(capacity_for(1 << 24).unwrap(), 1 << 24);
        let big = (1 << 24) + 1;
        let cap = capacity_for(big).unwrap();
        assert!(cap >= big && cap % rustix::param::page_size() == 0);
        assert_eq!(class_of(1 << 16), Some(0));
        assert_eq!(class_of(1 << 24), Some(CLASSES - 1));
        assert_eq!(class_of(cap), None);
        assert_eq!(class_of(3 << 16), None);
        assert!(capacity_for(usize::MAX).is_err());
    }

    #[test]
    fn bytes_survive_growth_and_front_consumption() {
        let mut b = WireBuf::new();
        assert_eq!((b.len(), b.capacity(), b.as_slice()), (0, 0, &[][..]));
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        b.extend_from_slice(&data[..1000]).unwrap();
        assert_eq!(b.capacity(), 1 << 16);
        b.extend_from_slice(&data[1000..]).unwrap();
        assert_eq!(b.capacity(), 1 << 18);
        assert_eq!(&b[..], &data[..]);
        b.consume_front(150_000);
        assert_eq!(&b[..], &data[150_000..]);
        b.consume_front(usize::MAX);
        assert!(b.is_empty());
        let spare = b.spare_mut().len();
        assert_eq!(spare, 1 << 18);
        b.spare_mut()[..3].copy_from_slice(b"abc");
        b.advance(3);
        b.advance(usize::MAX);
        assert_eq!(b.len(), b.capacity());
        b.clear();
        assert!(b.is_empty());
        assert!(b.reserve(usize::MAX).is_err());
    }
}
