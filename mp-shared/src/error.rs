//! The crate's errors: one [`Error`] enum, and [`LockError`] for the guard-returning methods.

use std::fmt;

use mp_sync::OwnerDied;

/// Every error of `mp-shared`; each variant names the Python exception it stands for.
///
/// `Display` is lowercase and says what went wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An element index past the end of an array (Python: `IndexError`).
    #[error("index {index} out of range for an array of length {len}")]
    IndexOutOfRange {
        /// The index asked for.
        index: usize,
        /// The array's length.
        len: usize,
    },
    /// A range of elements or bytes that does not fit (Python clamps slices silently; this
    /// crate refuses them).
    #[error("range {start}..{end} out of range for length {len}")]
    RangeOutOfRange {
        /// The first index of the range.
        start: usize,
        /// One past the last index of the range.
        end: usize,
        /// The length of the array or buffer.
        len: usize,
    },
    /// A slice assignment whose source has the wrong length (Python: `ValueError("Can only
    /// assign sequence of same size")`).
    #[error(
        "can only assign a sequence of the same size: {expected} elements expected, {found} given"
    )]
    LengthMismatch {
        /// The length of the target range.
        expected: usize,
        /// The length of the values given.
        found: usize,
    },
    /// An index past either end of a [`ShareableList`](crate::ShareableList), after a
    /// negative index was counted from the end (Python: `IndexError("index out of range")`).
    #[error("index {index} out of range for a shareable list of length {len}")]
    ListIndexOutOfRange {
        /// The index asked for, as given (negative ones counted from the end).
        index: isize,
        /// The list's length.
        len: usize,
    },
    /// A `str` or `bytes` item longer than the storage of its slot in a
    /// [`ShareableList`](crate::ShareableList) (Python: `ValueError("bytes/str item exceeds
    /// available storage")`). Nothing was written.
    #[error(
        "a str/bytes item of {len} bytes exceeds the {capacity} bytes available at index {index}"
    )]
    ExceedsStorage {
        /// The position of the slot.
        index: usize,
        /// The length of the encoded item, in bytes.
        len: usize,
        /// The bytes allocated to the slot when the list was created.
        capacity: usize,
    },
    /// [`ShareableList::index`](crate::ShareableList::index) found no equal item (Python:
    /// `ValueError("... not in this container")`); carries the value's Python `repr`.
    #[error("{0} is not in the shareable list")]
    NotInList(String),
    /// A segment that does not hold a valid `ShareableList`: a header, packing format,
    /// back-transform code or `str` that CPython would not have written (another process wrote
    /// garbage, or the segment is not a list). Python raises various errors (`struct.error`,
    /// `KeyError`, `UnicodeDecodeError`, ...) or returns garbage.
    #[error("shared memory segment {name:?} does not hold a valid shareable list: {reason}")]
    CorruptList {
        /// The segment's name.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No shared memory segment has this name (Python: `FileNotFoundError`).
    #[error("no shared memory segment named {0:?}")]
    NotFound(String),
    /// A shared memory segment with this name already exists (Python: `FileExistsError`).
    #[error("a shared memory segment named {0:?} already exists")]
    Exists(String),
    /// A name that cannot name a shared memory segment (Python: `ValueError` / `OSError`).
    #[error("invalid shared memory name {name:?}: {reason}")]
    InvalidName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An argument out of range, such as a size of zero (Python: `ValueError`).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The lock's previous owner died while holding it: an [`OwnerDied`] converted with `?`
    /// (the same meaning as `mp_sync::Error::OwnerDied`). The guard it carried was dropped, so
    /// the operation did nothing and the lock is free again; calling again succeeds (match
    /// [`LockError::OwnerDied`] to keep the lock instead).
    #[error("the previous owner of the lock died while holding it")]
    OwnerDied,
    /// The calling thread already holds the object's non-recursive `Lock`: waiting for it
    /// would never end (Python would hang here).
    #[error("the calling thread already holds this non-recursive lock; waiting would deadlock")]
    WouldDeadlock,
    /// The object's data is borrowed by a live guard: this thread holds one (re-entering an
    /// `RLock`), or the lock was released under a guard that is still alive.
    #[error("the shared data is borrowed by a live guard")]
    Borrowed,
    /// The resource tracker could not be started or reached.
    #[error("resource tracker: {0}")]
    Tracker(String),
    /// An error of `mp-sync` (creating or transferring a lock).
    #[error(transparent)]
    Sync(mp_sync::Error),
    /// An error of `mp-core` (creating, mapping or transferring shared memory).
    #[error(transparent)]
    Core(mp_core::Error),
    /// An operating-system error (Python: `OSError`).
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl Error {
    /// True for [`Error::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound(_))
    }
    /// True for [`Error::Exists`].
    pub fn is_exists(&self) -> bool {
        matches!(self, Error::Exists(_))
    }
    /// True for [`Error::IndexOutOfRange`], [`Error::ListIndexOutOfRange`] and
    /// [`Error::RangeOutOfRange`].
    pub fn is_out_of_range(&self) -> bool {
        matches!(
            self,
            Error::IndexOutOfRange { .. }
                | Error::ListIndexOutOfRange { .. }
                | Error::RangeOutOfRange { .. }
        )
    }
    /// True for [`Error::CorruptList`].
    pub fn is_corrupt(&self) -> bool {
        matches!(self, Error::CorruptList { .. })
    }
    /// True for [`Error::OwnerDied`].
    pub fn is_owner_died(&self) -> bool {
        matches!(self, Error::OwnerDied)
    }
}

impl From<mp_core::Error> for Error {
    fn from(e: mp_core::Error) -> Self {
        Error::Core(e)
    }
}

impl From<mp_sync::Error> for Error {
    fn from(e: mp_sync::Error) -> Self {
        match e {
            mp_sync::Error::Core(e) => Error::Core(e),
            mp_sync::Error::OwnerDied => Error::OwnerDied,
            e => Error::Sync(e),
        }
    }
}

impl From<rustix::io::Errno> for Error {
    fn from(e: rustix::io::Errno) -> Self {
        Error::Io(e.into())
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a guard-returning method (`lock`, `lock_timeout`, `try_lock`, ...) did not return a
/// plain guard.
///
/// [`LockError::OwnerDied`] carries mp-sync's one owner-died carrier, [`OwnerDied`], with the
/// guard inside: the lock *is* held. Converting into [`Error`] with `?` drops that guard, which
/// releases the lock. `Debug` does not show the guard.
pub enum LockError<G> {
    /// You hold the lock now; its previous owner died while holding it. Whatever the lock
    /// protected may be half-updated; [`OwnerDied::into_inner`] gives the guard.
    OwnerDied(OwnerDied<G>),
    /// The calling thread already holds the object's non-recursive `Lock` (see
    /// [`Error::WouldDeadlock`]). Nothing is held.
    WouldDeadlock,
    /// The object's data is already borrowed by a live guard (see [`Error::Borrowed`]).
    /// Nothing is held.
    Borrowed,
}

impl<G> LockError<G> {
    /// The carrier of [`LockError::OwnerDied`], if that is what this is.
    pub fn into_owner_died(self) -> Option<OwnerDied<G>> {
        match self {
            LockError::OwnerDied(died) => Some(died),
            _ => None,
        }
    }

    /// True for [`LockError::OwnerDied`].
    pub fn is_owner_died(&self) -> bool {
        matches!(self, LockError::OwnerDied(_))
    }

    /// Maps the guard of [`LockError::OwnerDied`].
    pub(crate) fn map<H>(self, f: impl FnOnce(G) -> H) -> LockError<H> {
        match self {
            LockError::OwnerDied(died) => LockError::OwnerDied(died.map(f)),
            LockError::WouldDeadlock => LockError::WouldDeadlock,
            LockError::Borrowed => LockError::Borrowed,
        }
    }
}

impl<G> fmt::Debug for LockError<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LockError::OwnerDied(_) => f.write_str("OwnerDied(..)"),
            LockError::WouldDeadlock => f.write_str("WouldDeadlock"),
            LockError::Borrowed => f.write_str("Borrowed"),
        }
    }
}

impl<G> fmt::Display for LockError<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LockError::OwnerDied(died) => fmt::Display::fmt(died, f),
            LockError::WouldDeadlock => fmt::Display::fmt(&Error::WouldDeadlock, f),
            LockError::Borrowed => fmt::Display::fmt(&Error::Borrowed, f),
        }
    }
}

impl<G> std::error::Error for LockError<G> {}

impl<G> From<LockError<G>> for Error {
    /// Drops the guard of [`LockError::OwnerDied`] (releasing the lock).
    fn from(e: LockError<G>) -> Self {
        match e {
            LockError::OwnerDied(_) => Error::OwnerDied,
            LockError::WouldDeadlock => Error::WouldDeadlock,
            LockError::Borrowed => Error::Borrowed,
        }
    }
}
