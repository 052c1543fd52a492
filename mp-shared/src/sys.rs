//! The crate's only `unsafe` code: typed views of shared segments, the claim word that makes
//! a guard's `&mut` exclusive, atomic element copies for raw objects, and the fd clean-up of the
//! resource tracker's helper process.
//!
//! # How shared data is accessed, and why that is sound
//!
//! Memory in a `MAP_SHARED` mapping can be written at any time by another process. In Rust's
//! memory model a non-atomic access racing with a write is undefined behaviour, whoever makes
//! it, so every object of this crate follows one of three disciplines, fixed for the object's
//! whole life by the *kind* written in its header (an object of one kind can never be adopted
//! as another, see [`Cells::adopt`]):
//!
//! | kind | objects | how the data is accessed |
//! |---|---|---|
//! | [`RAW`] | `RawValue`, `RawArray` | only by atomic loads and stores of [`width`]`::<T>()` bytes each, at the same offsets in every process: racing accesses are atomic, of equal size, never UB; a wide element may tear (as in C or Python) |
//! | [`SYNC`] | `Value`, `Array` | only through a [`Claim`]: the header's claim word, taken by compare-exchange, names the one process (and, through the lock, the one thread) that may touch the data; a guard's `&mut` lives inside a claim |
//! | [`ATOMIC`] | `SharedAtomic` | only through a `std` atomic of the element's own type |
//!
//! The claim word is a second line of defence beneath the object's lock: the lock orders the
//! users, the claim word guarantees exclusivity even when a lock is misused (released by
//! another thread while a guard lives, or re-entered through an `RLock`), turning what would be
//! a data race into [`crate::Error::Borrowed`].
#![allow(unsafe_code)]

use std::fmt;
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::atomic::{
    AtomicI16, AtomicI32, AtomicI64, AtomicI8, AtomicIsize, AtomicU16, AtomicU32, AtomicU64,
    AtomicU8, AtomicUsize, Ordering,
};

use bytemuck::Pod;
use mp_core::{SharedSegment, SharedView};

// ----- the cached pid -----

/// This process's pid, cached by `mp_core` (a fork hook refreshes it in every child).
#[inline]
pub(crate) fn pid() -> u32 {
    mp_core::process_id()
}

/// Whether process `pid` still runs (see `mp_core::process_is_alive`).
pub(crate) fn alive(pid: u32) -> bool {
    mp_core::process_is_alive(pid)
}

// ----- the header of a data segment -----

mp_core::shared_state! {
    /// The first bytes of every segment holding a `Value`, `Array`, raw object or
    /// `SharedAtomic`. Written once by the creator before [`Header::magic`] is published,
    /// read-only afterwards except for [`Header::claim`].
    struct Header {
        /// [`MAGIC`] once the segment is initialised.
        magic: AtomicU32,
        /// [`RAW`], [`SYNC`] or [`ATOMIC`].
        kind: AtomicU32,
        elem_size: AtomicU64,
        elem_align: AtomicU64,
        len: AtomicU64,
        /// A hash of the element type's name, so that a `Value<i32>` never adopts a
        /// `Value<f32>`.
        type_hash: AtomicU64,
        /// For [`SYNC`]: the pid of the process whose guard holds the data, or 0. Last, so that
        /// it shares a cache line with the start of the data.
        claim: AtomicU32,
    }
}

const MAGIC: u32 = 0x4d50_5348; // "MPSH"
/// Kind of `RawValue` and `RawArray`.
pub(crate) const RAW: u32 = 1;
/// Kind of `Value` and `Array`.
pub(crate) const SYNC: u32 = 2;
/// Kind of `SharedAtomic`.
pub(crate) const ATOMIC: u32 = 3;
/// The header's room: the data starts at the first offset after it aligned for `T` (for small
/// types, in the header's cache line, beside the claim word).
const HEADER_SPACE: usize = std::mem::size_of::<Header>();
/// Mappings start on a page boundary; an element type may not ask for more.
const PAGE: usize = 4096;

const _: () = assert!(HEADER_SPACE <= 64);

/// The width in bytes (8, 4, 2 or 1) of the atomic words that copy a `T` in a raw object: the
/// largest that divides both its size and its alignment, so that each word is aligned and the
/// words of every process fall on the same offsets.
pub(crate) const fn width<T>() -> usize {
    let (size, align) = (std::mem::size_of::<T>(), std::mem::align_of::<T>());
    let mut w = 8;
    while w > 1 && (size % w != 0 || align % w != 0) {
        w /= 2;
    }
    w
}

/// FNV-1a of the element type's name.
fn type_hash<T>() -> u64 {
    std::any::type_name::<T>()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        })
}

fn kind_name(kind: u32) -> &'static str {
    match kind {
        RAW => "raw",
        SYNC => "synchronized",
        _ => "atomic",
    }
}

// ----- typed views -----

/// `len` elements of `T` in a shared segment of kind `KIND`, after a [`Header`].
///
/// Clones share the segment. The data never moves: the segment is mapped once per process and
/// the mapping lives as long as its last `Cells`.
pub(crate) struct Cells<T, const KIND: u32> {
    /// The header, viewed once; its segment holds the data after it.
    view: SharedView<Header>,
    offset: usize,
    len: usize,
    _t: PhantomData<T>,
}

/// The cells of a `RawValue` / `RawArray`.
pub(crate) type RawCells<T> = Cells<T, RAW>;
/// The cells of a `Value` / `Array`.
pub(crate) type SyncCells<T> = Cells<T, SYNC>;
/// The cell of a `SharedAtomic`.
pub(crate) type AtomicCells<T> = Cells<T, ATOMIC>;

impl<T, const KIND: u32> Clone for Cells<T, KIND> {
    fn clone(&self) -> Self {
        Cells {
            view: self.view.clone(),
            offset: self.offset,
            len: self.len,
            _t: PhantomData,
        }
    }
}

impl<T, const KIND: u32> fmt::Debug for Cells<T, KIND> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cells")
            .field("kind", &kind_name(KIND))
            .field("len", &self.len)
            .finish()
    }
}

/// Where the data of a `T` starts, or `None` if `T` asks for more than page alignment.
fn data_offset<T>() -> Option<usize> {
    let align = std::mem::align_of::<T>();
    (align <= PAGE).then(|| HEADER_SPACE.next_multiple_of(align))
}

impl<T: Pod, const KIND: u32> Cells<T, KIND> {
    /// A new segment of `len` elements, zeroed, then filled from `init` when given
    /// (`init.len() == len`).
    pub(crate) fn create(len: usize, init: Option<&[T]>) -> crate::Result<Self> {
        let size = std::mem::size_of::<T>();
        let offset = data_offset::<T>().ok_or_else(|| {
            crate::Error::InvalidArgument(format!(
                "{} is aligned to more than a page",
                std::any::type_name::<T>()
            ))
        })?;
        // Room for at least one element, so that a value's element 0 always exists.
        let bytes = len
            .max(1)
            .checked_mul(size)
            .and_then(|b| b.checked_add(offset))
            .ok_or_else(|| {
                crate::Error::InvalidArgument(format!("{len} elements do not fit in memory"))
            })?;
        let view = SharedView::<Header>::new(SharedSegment::new(bytes)?)?;
        let segment = view.segment();
        let h = view.get();
        h.kind.store(KIND, Ordering::Relaxed);
        h.elem_size.store(size as u64, Ordering::Relaxed);
        h.elem_align
            .store(std::mem::align_of::<T>() as u64, Ordering::Relaxed);
        h.len.store(len as u64, Ordering::Relaxed);
        h.type_hash.store(type_hash::<T>(), Ordering::Relaxed);
        if let Some(init) = init.filter(|i| i.len() == len) {
            let n = std::mem::size_of_val(init);
            // SAFETY: the destination holds `offset + max(len, 1) * size >= offset + n` bytes
            // of the mapping (sized above); the source is `n` readable bytes of a `Pod` slice
            // (no padding, so every byte is initialised); the regions cannot overlap (one is a
            // fresh mapping); no other process can reach this segment yet (its only fd is
            // ours), so plain writes race with nothing.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    init.as_ptr().cast::<u8>(),
                    segment.as_ptr().add(offset),
                    n,
                );
            }
        }
        h.magic.store(MAGIC, Ordering::Release);
        Ok(Cells {
            view,
            offset,
            len,
            _t: PhantomData,
        })
    }

    /// Adopts a received segment, checking that it holds `T`s of kind `KIND`; the error says
    /// what the segment is not (`what`, e.g. `"Value<i32>"`).
    pub(crate) fn adopt(segment: SharedSegment, what: &str) -> Result<Self, String> {
        let not = || format!("the shared segment received is not a {what}");
        let view = SharedView::<Header>::new(segment).map_err(|_| not())?;
        let h = view.get();
        if h.magic.load(Ordering::Acquire) != MAGIC
            || h.kind.load(Ordering::Relaxed) != KIND
            || h.elem_size.load(Ordering::Relaxed) != std::mem::size_of::<T>() as u64
            || h.elem_align.load(Ordering::Relaxed) != std::mem::align_of::<T>() as u64
            || h.type_hash.load(Ordering::Relaxed) != type_hash::<T>()
        {
            return Err(not());
        }
        let len = usize::try_from(h.len.load(Ordering::Relaxed)).map_err(|_| not())?;
        let offset = data_offset::<T>().ok_or_else(not)?;
        let needed = len
            .max(1)
            .checked_mul(std::mem::size_of::<T>())
            .and_then(|b| b.checked_add(offset))
            .ok_or_else(not)?;
        if view.segment().len() < needed {
            return Err(not());
        }
        Ok(Cells {
            view,
            offset,
            len,
            _t: PhantomData,
        })
    }

    /// The number of elements.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Element `index`'s first byte; element 0 exists even when `len == 0`.
    fn elem_ptr(&self, index: usize) -> *mut u8 {
        // Stays inside the mapping: `index < max(len, 1)` at every call site, and the mapping
        // holds `offset + max(len, 1) * size_of::<T>()` bytes (checked at creation/adoption).
        self.view
            .segment()
            .as_ptr()
            .wrapping_add(self.offset + index * std::mem::size_of::<T>())
    }

    #[inline]
    fn header(&self) -> &Header {
        self.view.get()
    }
}

impl<T, const KIND: u32> serde::Serialize for Cells<T, KIND> {
    /// Serializes only inside a handle transfer (see `mp_core::handle`).
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.view.serialize(s)
    }
}

impl<'de, T: Pod, const KIND: u32> serde::Deserialize<'de> for Cells<T, KIND> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let segment = SharedSegment::deserialize(d)?;
        let what = format!(
            "{} object of {}",
            kind_name(KIND),
            std::any::type_name::<T>()
        );
        Cells::adopt(segment, &what).map_err(serde::de::Error::custom)
    }
}

// ----- raw objects: atomic element copies -----

/// Copies one element between the mapping and a local value, word by word, with atomics of
/// width `$w`.
macro_rules! words {
    (load $atomic:ty, $int:ty, $w:expr, $src:expr, $dst:expr) => {
        for (k, chunk) in $dst.chunks_exact_mut($w).enumerate() {
            // SAFETY: `$src` is an element of a raw object, inside the mapping and aligned to
            // `align_of::<T>()`, which `$w` divides, as it divides the element's size: so word
            // `k` is in bounds and aligned for `$atomic`. Every access to a raw object's data,
            // in every process, is an atomic of this same width at these same offsets (the
            // kind is fixed in the header), so no access is non-atomic or of mixed size.
            let word = unsafe { <$atomic>::from_ptr($src.add(k * $w).cast::<$int>()) };
            let bytes = word.load(Ordering::Relaxed).to_ne_bytes();
            chunk.iter_mut().zip(bytes).for_each(|(d, b)| *d = b);
        }
    };
    (store $atomic:ty, $int:ty, $w:expr, $dst:expr, $src:expr) => {
        for (k, chunk) in $src.chunks_exact($w).enumerate() {
            // SAFETY: as for `load` above.
            let word = unsafe { <$atomic>::from_ptr($dst.add(k * $w).cast::<$int>()) };
            let mut bytes = [0u8; $w];
            bytes.iter_mut().zip(chunk).for_each(|(b, &c)| *b = c);
            word.store(<$int>::from_ne_bytes(bytes), Ordering::Relaxed);
        }
    };
}

impl<T: Pod> RawCells<T> {
    /// Element `index` (`None` past the end), read with atomic words: never a data race, but a
    /// concurrent writer may leave it torn between words.
    pub(crate) fn load(&self, index: usize) -> Option<T> {
        if index >= self.len {
            return None;
        }
        let src = self.elem_ptr(index);
        let mut out = T::zeroed();
        let dst = bytemuck::bytes_of_mut(&mut out);
        match width::<T>() {
            8 => words!(load AtomicU64, u64, 8, src, dst),
            4 => words!(load AtomicU32, u32, 4, src, dst),
            2 => words!(load AtomicU16, u16, 2, src, dst),
            _ => words!(load AtomicU8, u8, 1, src, dst),
        }
        Some(out)
    }

    /// Writes element `index` with atomic words; false past the end.
    pub(crate) fn store(&self, index: usize, value: T) -> bool {
        if index >= self.len {
            return false;
        }
        let dst = self.elem_ptr(index);
        let src = bytemuck::bytes_of(&value);
        match width::<T>() {
            8 => words!(store AtomicU64, u64, 8, dst, src),
            4 => words!(store AtomicU32, u32, 4, dst, src),
            2 => words!(store AtomicU16, u16, 2, dst, src),
            _ => words!(store AtomicU8, u8, 1, dst, src),
        }
        true
    }
}

// ----- synchronized objects: the claim -----

/// Exclusive access to the data of a synchronized object, for as long as it lives.
///
/// Taken with [`SyncCells::claim`]: the header's claim word goes from 0 (or from the pid of a
/// dead process) to this process's pid by compare-exchange, and back to 0 on drop. While it is
/// ours, no other claim on the same data exists in any process, and synchronized data is only
/// ever accessed through a claim, so the references handed out here are unique.
pub(crate) struct Claim<'a, T> {
    word: &'a AtomicU32,
    me: u32,
    data: NonNull<T>,
    len: usize,
    /// Borrows the object (which keeps the mapping alive) and stands for the `&mut [T]`.
    _borrow: PhantomData<&'a mut [T]>,
}

impl<T> fmt::Debug for Claim<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Claim").field("len", &self.len).finish()
    }
}

impl<T: Pod> SyncCells<T> {
    /// Claims the data, or `None` if a live claim exists (a guard of this process, or of a
    /// live process that holds the data while the lock was misused). A claim left by a dead
    /// process is taken over.
    ///
    /// Callers hold the object's lock, so the word is normally 0 here.
    pub(crate) fn claim(&self) -> Option<Claim<'_, T>> {
        let word = &self.header().claim;
        let data = NonNull::new(self.elem_ptr(0).cast::<T>())?;
        let me = pid();
        let mut seen = 0;
        // A few rounds at most: the word only moves under contention, which the lock prevents.
        for _ in 0..4 {
            match word.compare_exchange(seen, me, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => {
                    return Some(Claim {
                        word,
                        me,
                        data,
                        len: self.len,
                        _borrow: PhantomData,
                    })
                }
                Err(0) => seen = 0,
                Err(owner) if owner != me && !alive(owner) => seen = owner,
                Err(_) => return None,
            }
        }
        None
    }
}

impl<'a, T> Claim<'a, T> {
    /// The claimed elements.
    pub(crate) fn slice(&self) -> &[T] {
        // SAFETY: `data` points at `len` elements inside the mapping, aligned for `T` (data
        // offset is a multiple of `align_of::<T>()` from a page boundary), initialised (zeroed
        // or written at creation) and valid for any bit pattern (`T: Pod`); the mapping lives
        // for `'a`; the claim makes this the only access to them (see the type's docs).
        unsafe { std::slice::from_raw_parts(self.data.as_ptr(), self.len) }
    }

    /// The claimed elements, mutably.
    pub(crate) fn slice_mut(&mut self) -> &mut [T] {
        // SAFETY: as in `slice`; `&mut self` makes the returned borrow unique within this
        // claim, and the claim is unique among processes and threads.
        unsafe { std::slice::from_raw_parts_mut(self.data.as_ptr(), self.len) }
    }

    /// Element 0 (it exists even in an empty array's segment).
    pub(crate) fn first(&self) -> &T {
        // SAFETY: as in `slice`; the mapping always holds room for element 0 (creation and
        // adoption check `max(len, 1)` elements), initialised and valid for any bit pattern.
        unsafe { self.data.as_ref() }
    }

    /// Element 0, mutably.
    pub(crate) fn first_mut(&mut self) -> &mut T {
        // SAFETY: as in `first`, with uniqueness as in `slice_mut`.
        unsafe { self.data.as_mut() }
    }
}

impl<T> Drop for Claim<'_, T> {
    fn drop(&mut self) {
        // Only our own claim is released: a forked child dropping an inherited copy of a claim
        // (never done by `mp_core`, whose children leave with `_exit`) changes nothing. While
        // we live, nobody else changes a word that holds our pid (only a dead claimant's claim
        // is taken over), so a plain store suffices.
        if self.me == pid() {
            self.word.store(0, Ordering::Release);
        }
    }
}

// ----- atomic cells -----

/// One of `std`'s atomic integer types, standing for the integer type `Int`.
///
/// # Safety
/// `Self` must have the same size as `Int`, an alignment of at most 8, and accept any bit
/// pattern; it must be safe to access from several processes at once (it is an atomic).
pub unsafe trait StdAtomic: Send + Sync {
    /// The integer type of the atomic.
    type Int: Pod;
}

macro_rules! std_atomic {
    ($($atomic:ty => $int:ty),* $(,)?) => {$(
        // SAFETY: `std`'s atomic integers have the size of their integer, an alignment of at
        // most 8, accept any bit pattern, and are atomic across processes sharing the memory.
        unsafe impl StdAtomic for $atomic {
            type Int = $int;
        }
    )*};
}

std_atomic!(
    AtomicI8 => i8, AtomicU8 => u8, AtomicI16 => i16, AtomicU16 => u16,
    AtomicI32 => i32, AtomicU32 => u32, AtomicI64 => i64, AtomicU64 => u64,
    AtomicIsize => isize, AtomicUsize => usize,
);

impl<T: Pod> AtomicCells<T> {
    /// The atomic at element 0.
    pub(crate) fn atomic<A: StdAtomic<Int = T>>(&self) -> &A {
        // SAFETY: element 0 is inside the mapping (creation and adoption check room for one
        // element of `T`, the size of `A`), aligned for `A` (the data offset of every integer type
        // is `HEADER_SPACE`, a multiple of 8, and `A`'s alignment is at most 8), initialised; `A` is
        // an atomic valid for any bit pattern (`StdAtomic`); an atomic object's data is only
        // accessed through `A` (its kind is fixed in the header), so there are no non-atomic
        // or mixed-size accesses; the reference borrows `self`, which keeps the mapping alive.
        unsafe { &*self.elem_ptr(0).cast::<A>() }
    }
}

// ----- named shared memory -----

/// The bytes of a mapping as atomics: any access is a single-byte atomic, so memory that
/// other processes write concurrently is read and written without data races.
pub(crate) fn atomic_bytes(segment: &SharedSegment) -> &[AtomicU8] {
    // SAFETY: the mapping is `len` readable and writable bytes that live as long as `segment`
    // (borrowed); `AtomicU8` has the size and alignment of `u8` and accepts any bit pattern;
    // this crate only accesses a named segment through these atomics, or through the unsafe
    // `as_slice`/`as_mut_slice` whose callers promise no concurrent access.
    unsafe { std::slice::from_raw_parts(segment.as_ptr().cast::<AtomicU8>(), segment.len()) }
}

/// The bytes of a mapping as plain bytes.
///
/// # Safety
/// While the returned slice lives, no thread or process may write the mapping.
pub(crate) unsafe fn plain_bytes(segment: &SharedSegment) -> &[u8] {
    // SAFETY: the mapping is `len` initialised bytes that live as long as `segment`
    // (borrowed); the caller promises that nobody writes them meanwhile.
    unsafe { std::slice::from_raw_parts(segment.as_ptr(), segment.len()) }
}

/// The bytes of a mapping as plain mutable bytes.
///
/// # Safety
/// While the returned slice lives, no other thread or process may read or write the mapping,
/// and no other reference to it may exist in this process.
#[allow(clippy::mut_from_ref)]
pub(crate) unsafe fn plain_bytes_mut(segment: &SharedSegment) -> &mut [u8] {
    // SAFETY: as in `plain_bytes`; the caller promises exclusive access.
    unsafe { std::slice::from_raw_parts_mut(segment.as_ptr(), segment.len()) }
}

// ----- the resource tracker's entry point -----

/// Closes every fd above 2, but `keep`, that this freshly executed helper inherited without
/// `O_CLOEXEC`.
///
/// Called by the tracker first thing in its helper process: an inherited descriptor of a
/// shared segment would keep that segment's lock held by the tracker itself, delaying its
/// cleanup.
pub(crate) fn close_inherited_fds(keep: i32) {
    let fds: Vec<i32> = match std::fs::read_dir("/proc/self/fd") {
        Ok(dir) => dir
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .filter(|&fd| fd > 2 && fd != keep)
            .collect(),
        Err(_) => return,
    };
    // The directory's own fd is in the list, and closed by now: only close what is open.
    for fd in fds {
        if std::fs::symlink_metadata(format!("/proc/self/fd/{fd}")).is_err() {
            continue;
        }
        // SAFETY: this runs first in the tracker's target, in a process the bootstrap has just
        // re-executed, before `main`: the bootstrap closed its own connection before calling
        // the target, and the target's only argument is `keep`, so no object of this process
        // owns a descriptor above 2 but `keep` (the others were inherited by accident, without
        // `O_CLOEXEC`); closing them invalidates no `OwnedFd` or `File`.
        unsafe { rustix::io::close(fd) };
    }
}
