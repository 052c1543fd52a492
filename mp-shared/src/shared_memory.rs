//! `SharedMemory`: named POSIX shared memory segments (`shm_open`, under `/dev/shm`).

use std::fmt;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicU8, Ordering};

use mp_core::SharedSegment;
use rustix::fs::{FlockOperation, Mode};
use rustix::io::Errno;
use rustix::shm;
use serde::{Deserialize, Serialize};

use crate::array::resolve;
use crate::error::{Error, Result};
use crate::{sys, tracker};

/// The longest name a segment may have, in bytes, without the optional leading `/` (Linux's
/// `NAME_MAX`: the name is a file name under `/dev/shm`).
pub const MAX_NAME_LEN: usize = 255;

/// The prefix of generated names, as Python's (`psm_` and 8 hex digits).
const NAME_PREFIX: &str = "psm_";

/// Checks `name` and returns it without its optional leading `/`.
fn check_name(name: &str) -> Result<&str> {
    let bare = name.strip_prefix('/').unwrap_or(name);
    let reason = if bare.is_empty() {
        "it is empty"
    } else if bare.contains('/') {
        "it contains '/' after the first character"
    } else if bare.contains('\0') {
        "it contains a NUL byte"
    } else if bare == "." || bare == ".." {
        "'.' and '..' are not names"
    } else if bare.len() > MAX_NAME_LEN {
        "it is longer than 255 bytes"
    } else {
        return Ok(bare);
    };
    Err(Error::InvalidName {
        name: name.to_string(),
        reason,
    })
}

/// A fresh name like Python's: `psm_` and 8 random hex digits.
fn random_name() -> String {
    let mut bytes = [0u8; 4];
    if rustix::rand::getrandom(&mut bytes, rustix::rand::GetRandomFlags::empty()).is_err() {
        // No randomness: the clock and the pid still make collisions rare, and a collision
        // only makes `create` try another name.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        bytes = (t ^ sys::pid().rotate_left(16)).to_ne_bytes();
    }
    format!("{NAME_PREFIX}{:08x}", u32::from_ne_bytes(bytes))
}

/// Unlinks a freshly created name unless disarmed (error paths of `create`).
struct UnlinkOnDrop<'a>(Option<&'a str>);

impl Drop for UnlinkOnDrop<'_> {
    fn drop(&mut self) {
        if let Some(name) = self.0 {
            let _ = shm::unlink(name);
        }
    }
}

/// `flock(fd, op)`, retried on `EINTR`.
fn flock(fd: &OwnedFd, op: FlockOperation) -> rustix::io::Result<()> {
    loop {
        match rustix::fs::flock(fd, op) {
            Err(Errno::INTR) => continue,
            r => return r,
        }
    }
}

/// How to create a [`SharedMemory`]; from [`SharedMemory::options`].
///
/// Python: the keyword arguments of `SharedMemory(name, create=True, size, track=True)`.
#[derive(Clone, Debug)]
pub struct Options {
    track: bool,
    mode: u32,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            track: true,
            mode: 0o600,
        }
    }
}

impl Options {
    /// Whether the resource tracker unlinks the segment once no process uses it any more
    /// (default `true`; see the crate docs). With `false` the segment stays until
    /// [`SharedMemory::unlink`] (or a reboot). Python 3.13: `track=`.
    pub fn track(mut self, track: bool) -> Self {
        self.track = track;
        self
    }

    /// The permission bits of the new segment (default `0o600`, as Python's).
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }

    /// Creates a segment of `size` bytes (zero-filled) named `name`, or a fresh random name
    /// (`psm_` and 8 hex digits) when `None`.
    ///
    /// Python: `SharedMemory(name, create=True, size=size)`. Errors: [`Error::Exists`] if the
    /// name is taken, [`Error::InvalidName`], [`Error::InvalidArgument`] for a size of 0,
    /// [`Error::Tracker`] if tracking was asked for and the tracker cannot be started.
    pub fn create(&self, name: Option<&str>, size: usize) -> Result<SharedMemory> {
        if size == 0 {
            return Err(Error::InvalidArgument(
                "the size of a new shared memory segment must be positive".into(),
            ));
        }
        let size64 = u64::try_from(size)
            .map_err(|_| Error::InvalidArgument(format!("{size} bytes is too large")))?;
        if self.track {
            // Started first, so that the gap between creating the name and registering it is
            // a few system calls.
            tracker::ensure_started()?;
        }
        let mode = Mode::from_bits_truncate(self.mode);
        let flags = shm::OFlags::CREATE | shm::OFlags::EXCL | shm::OFlags::RDWR;
        let (name, fd) = match name {
            Some(name) => {
                let name = check_name(name)?;
                match shm::open(name, flags, mode) {
                    Ok(fd) => (name.to_string(), fd),
                    Err(Errno::EXIST) => return Err(Error::Exists(name.to_string())),
                    Err(e) => return Err(e.into()),
                }
            }
            None => {
                let mut attempt = 0;
                loop {
                    let name = random_name();
                    match shm::open(name.as_str(), flags, mode) {
                        Ok(fd) => break (name, fd),
                        Err(Errno::EXIST) if attempt < 100 => attempt += 1,
                        Err(Errno::EXIST) => return Err(Error::Exists(name)),
                        Err(e) => return Err(e.into()),
                    }
                }
            }
        };
        let mut cleanup = UnlinkOnDrop(Some(&name));
        // Every user holds a shared lock on the segment; see the crate docs.
        flock(&fd, FlockOperation::NonBlockingLockShared)?;
        if self.track {
            tracker::register(&name, fd.as_fd())?;
        }
        rustix::fs::ftruncate(&fd, size64)?;
        let segment = SharedSegment::from_fd(fd)?;
        cleanup.0 = None;
        Ok(SharedMemory {
            name: name.clone(),
            segment,
        })
    }
}

/// A named block of shared memory: a POSIX shared memory object under `/dev/shm`, mapped
/// `MAP_SHARED`.
///
/// Python: `multiprocessing.shared_memory.SharedMemory`. Any process may
/// [`attach`](Self::attach) to it by [`name`](Self::name), including processes of other
/// programs (a Python program: `SharedMemory(name)`); it can also be passed to a child or sent
/// over a duplex `Connection`, which shares the mapping by fd.
///
/// The bytes are [`buf`](Self::buf), a `&[AtomicU8]`: other processes may write them at any
/// time, so every access is an atomic byte access (no data race, whatever the other side
/// does). [`read_at`](Self::read_at)/[`write_at`](Self::write_at) copy ranges;
/// [`as_slice`](Self::as_slice) gives plain bytes to callers who synchronize by other means.
///
/// A segment created with tracking (the default) is unlinked by the resource tracker once no
/// process uses it (see the crate docs); [`unlink`](Self::unlink) removes the name at once.
///
/// ```
/// use mp_shared::SharedMemory;
///
/// let shm = SharedMemory::create(None, 16).unwrap();
/// shm.write_at(0, b"hello").unwrap();
/// let other = SharedMemory::attach(shm.name()).unwrap();
/// let mut out = [0u8; 5];
/// other.read_at(0, &mut out).unwrap();
/// assert_eq!(&out, b"hello");
/// shm.unlink().unwrap();
/// ```
#[derive(Serialize, Deserialize)]
pub struct SharedMemory {
    name: String,
    segment: SharedSegment,
}

impl fmt::Debug for SharedMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedMemory")
            .field("name", &self.name)
            .field("size", &self.size())
            .finish()
    }
}

impl SharedMemory {
    /// Options for [`Options::create`] (tracking, permissions).
    pub fn options() -> Options {
        Options::default()
    }

    /// Creates a tracked segment of `size` bytes named `name` (a random `psm_xxxxxxxx` when
    /// `None`). Python: `SharedMemory(name, create=True, size=size)`. See [`Options::create`].
    pub fn create(name: Option<&str>, size: usize) -> Result<SharedMemory> {
        Options::default().create(name, size)
    }

    /// Attaches to the existing segment `name` (with or without a leading `/`), at its whole
    /// size. Python: `SharedMemory(name)`.
    ///
    /// Errors: [`Error::NotFound`] if no segment has that name (or it is being unlinked),
    /// [`Error::InvalidName`], [`Error::InvalidArgument`] if the segment has no bytes yet.
    /// Attaching never registers the segment with a resource tracker (CPython's gh-82300):
    /// the attaching process only keeps it alive while it uses it.
    pub fn attach(name: &str) -> Result<SharedMemory> {
        let name = check_name(name)?;
        let fd = match shm::open(name, shm::OFlags::RDWR, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Err(Error::NotFound(name.to_string())),
            Err(e) => return Err(e.into()),
        };
        flock(&fd, FlockOperation::LockShared)?;
        let st = rustix::fs::fstat(&fd)?;
        if st.st_nlink == 0 {
            // The tracker unlinked it between our open and our lock.
            return Err(Error::NotFound(name.to_string()));
        }
        if st.st_size <= 0 {
            return Err(Error::InvalidArgument(format!(
                "shared memory segment {name:?} has no bytes (is it still being created?)"
            )));
        }
        Ok(SharedMemory {
            name: name.to_string(),
            segment: SharedSegment::from_fd(fd)?,
        })
    }

    /// The segment's name, without a leading `/`. Python: `shm.name`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The size in bytes. Python: `shm.size`.
    pub fn size(&self) -> usize {
        self.segment.len()
    }

    /// The bytes, as atomics. Python: `shm.buf`.
    ///
    /// `buf()[i].load(Ordering::Relaxed)` reads byte `i`, `.store(b, ...)` writes it; other
    /// processes may change any byte at any moment.
    pub fn buf(&self) -> &[AtomicU8] {
        sys::atomic_bytes(&self.segment)
    }

    /// Copies `out.len()` bytes starting at `offset` into `out`. Python:
    /// `bytes(shm.buf[offset:offset+n])`. [`Error::RangeOutOfRange`] past the end.
    ///
    /// Each byte is read atomically; a concurrent writer may interleave with the copy.
    pub fn read_at(&self, offset: usize, out: &mut [u8]) -> Result<()> {
        let src = self.range(offset, out.len())?;
        for (o, b) in out.iter_mut().zip(src) {
            *o = b.load(Ordering::Relaxed);
        }
        Ok(())
    }

    /// Copies `data` into the segment starting at `offset`. Python:
    /// `shm.buf[offset:offset+len(data)] = data`. [`Error::RangeOutOfRange`] past the end.
    pub fn write_at(&self, offset: usize, data: &[u8]) -> Result<()> {
        let dst = self.range(offset, data.len())?;
        for (b, &d) in dst.iter().zip(data) {
            b.store(d, Ordering::Relaxed);
        }
        Ok(())
    }

    /// A copy of every byte. Python: `bytes(shm.buf)`.
    pub fn to_vec(&self) -> Vec<u8> {
        self.buf()
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect()
    }

    fn range(&self, offset: usize, len: usize) -> Result<&[AtomicU8]> {
        let end = offset.checked_add(len).ok_or(Error::RangeOutOfRange {
            start: offset,
            end: usize::MAX,
            len: self.size(),
        })?;
        let r = resolve(offset..end, self.size())?;
        self.buf().get(r).ok_or(Error::RangeOutOfRange {
            start: offset,
            end,
            len: self.size(),
        })
    }

    /// The first byte of the mapping, valid for [`size`](Self::size) bytes while `self` lives.
    /// Other processes may write the memory at any time.
    pub fn as_ptr(&self) -> *mut u8 {
        self.segment.as_ptr()
    }

    /// Unmaps the segment and closes this handle; the segment itself stays (until
    /// [`unlink`](Self::unlink), or the tracker). Python: `shm.close()`. Dropping does the same.
    pub fn close(self) {}

    /// Removes the name: nobody can attach any more, and the memory is freed once every
    /// process has closed it. Python: `shm.unlink()`.
    ///
    /// [`Error::NotFound`] if the name is already gone.
    pub fn unlink(&self) -> Result<()> {
        match shm::unlink(self.name.as_str()) {
            Ok(()) => Ok(()),
            Err(Errno::NOENT) => Err(Error::NotFound(self.name.clone())),
            Err(e) => Err(e.into()),
        }
    }

    /// The whole buffer as plain bytes.
    ///
    /// # Safety
    /// While the returned slice lives, no thread or process may write the segment (through
    /// [`buf`](Self::buf), [`write_at`](Self::write_at), a raw pointer, or another program):
    /// that would be a data race. Use [`read_at`](Self::read_at) otherwise.
    #[allow(unsafe_code)]
    pub unsafe fn as_slice(&self) -> &[u8] {
        // SAFETY: the caller promises what `plain_bytes` asks: no writer while the slice lives.
        unsafe { crate::sys::plain_bytes(&self.segment) }
    }

    /// The whole buffer as plain mutable bytes.
    ///
    /// # Safety
    /// While the returned slice lives, no other thread or process may read or write the
    /// segment at all (through any handle, a raw pointer, or another program).
    #[allow(unsafe_code)]
    pub unsafe fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: the caller promises exclusive access, and `&mut self` rules out other
        // borrows through this handle: what `plain_bytes_mut` asks.
        unsafe { crate::sys::plain_bytes_mut(&self.segment) }
    }
}
