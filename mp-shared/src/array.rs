//! `Array` and `RawArray`: a fixed number of `T`s in shared memory.

use std::fmt;
use std::ops::{Bound, Deref, DerefMut, Range, RangeBounds};

use bytemuck::Pod;
use serde::{Deserialize, Serialize};

use crate::error::{Error, LockError, Result};
use crate::sync::{guard_surface, Access, Synced};
use crate::sys::RawCells;
use mp_core::Deadline;
use mp_sync::AnyLock;

/// `range` resolved against `len`, or [`Error::RangeOutOfRange`].
pub(crate) fn resolve(range: impl RangeBounds<usize>, len: usize) -> Result<Range<usize>> {
    let start = match range.start_bound() {
        Bound::Included(&s) => Some(s),
        Bound::Excluded(&s) => s.checked_add(1),
        Bound::Unbounded => Some(0),
    };
    let end = match range.end_bound() {
        Bound::Included(&e) => e.checked_add(1),
        Bound::Excluded(&e) => Some(e),
        Bound::Unbounded => Some(len),
    };
    match (start, end) {
        (Some(start), Some(end)) if start <= end && end <= len => Ok(start..end),
        (start, end) => Err(Error::RangeOutOfRange {
            start: start.unwrap_or(usize::MAX),
            end: end.unwrap_or(usize::MAX),
            len,
        }),
    }
}

fn check_index(index: usize, len: usize) -> Result<()> {
    if index < len {
        Ok(())
    } else {
        Err(Error::IndexOutOfRange { index, len })
    }
}

fn check_len(range: &Range<usize>, values: usize) -> Result<()> {
    if range.len() == values {
        Ok(())
    } else {
        Err(Error::LengthMismatch {
            expected: range.len(),
            found: values,
        })
    }
}

/// A fixed-length array of `T` in shared memory, guarded by a lock.
///
/// Python: `multiprocessing.Array(typecode_or_type, size_or_initializer, lock=True)`, the
/// synchronized wrapper. `T` is any [`Pod`] type (see [`Value`](crate::Value)). Clones are
/// handles to the same array; pass one to a child (under any start method) or send it over a
/// duplex `Connection` to share it.
///
/// Each method takes the lock once: [`get`](Self::get)/[`set`](Self::set) for one element
/// (Python's `a[i]`), [`get_slice`](Self::get_slice)/[`set_slice`](Self::set_slice) for a
/// range (`a[i:j]`), [`to_vec`](Self::to_vec) for all (`a[:]`); [`lock`](Self::lock) returns a
/// guard that derefs to `[T]`:
///
/// ```
/// use mp_shared::Array;
///
/// let a = Array::from_slice(&[1i32, 2, 3]).unwrap();
/// a.set(0, 10).unwrap();
/// a.lock().unwrap().iter_mut().for_each(|x| *x *= 2);
/// assert_eq!(a.to_vec().unwrap(), [20, 4, 6]);
/// assert!(a.get(3).unwrap_err().is_out_of_range());
/// ```
///
/// # Errors
///
/// Indexes and ranges past the end are [`Error::IndexOutOfRange`] /
/// [`Error::RangeOutOfRange`] (never a panic); lock errors as for [`Value`](crate::Value).
#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
pub struct Array<T: Pod> {
    inner: Synced<T>,
}

impl<T: Pod> Clone for Array<T> {
    fn clone(&self) -> Self {
        Array {
            inner: self.inner.clone(),
        }
    }
}

impl<T: Pod> fmt::Debug for Array<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Array")
            .field("type", &std::any::type_name::<T>())
            .field("len", &self.len())
            .field("lock", &self.inner.lock)
            .finish()
    }
}

impl<T: Pod> Array<T> {
    /// `len` zeroed elements with their own new `RLock`. Python: `Array(typecode, size)`.
    pub fn zeroed(len: usize) -> Result<Self> {
        Self::zeroed_with_lock(len, AnyLock::new_rlock()?)
    }

    /// A copy of `values` with its own new `RLock`. Python: `Array(typecode, initializer)`.
    pub fn from_slice(values: &[T]) -> Result<Self> {
        Self::from_slice_with_lock(values, AnyLock::new_rlock()?)
    }

    /// `len` zeroed elements guarded by `lock`. Python: `Array(typecode, size, lock=lock)`.
    pub fn zeroed_with_lock(len: usize, lock: impl Into<AnyLock>) -> Result<Self> {
        Ok(Array {
            inner: Synced::create(len, None, lock.into())?,
        })
    }

    /// A copy of `values` guarded by `lock`. Python: `Array(typecode, initializer, lock=lock)`.
    pub fn from_slice_with_lock(values: &[T], lock: impl Into<AnyLock>) -> Result<Self> {
        Ok(Array {
            inner: Synced::create(values.len(), Some(values), lock.into())?,
        })
    }

    /// The number of elements (fixed; no lock needed). Python: `len(a)`.
    pub fn len(&self) -> usize {
        self.inner.cells.len()
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Element `index`, read under the lock. Python: `a[index]`.
    pub fn get(&self, index: usize) -> Result<T> {
        check_index(index, self.len())?;
        self.inner
            .with(|c| c.slice().get(index).copied())?
            .ok_or(Error::IndexOutOfRange {
                index,
                len: self.len(),
            })
    }

    /// Writes element `index` under the lock. Python: `a[index] = value`.
    pub fn set(&self, index: usize, value: T) -> Result<()> {
        check_index(index, self.len())?;
        self.inner
            .with(|c| c.slice_mut().get_mut(index).map(|x| *x = value))?
            .ok_or(Error::IndexOutOfRange {
                index,
                len: self.len(),
            })
    }

    /// A copy of the elements in `range`, read under the lock. Python: `a[start:end]`.
    pub fn get_slice(&self, range: impl RangeBounds<usize>) -> Result<Vec<T>> {
        let r = resolve(range, self.len())?;
        self.inner
            .with(|c| c.slice().get(r.clone()).map(<[T]>::to_vec))?
            .ok_or(Error::RangeOutOfRange {
                start: r.start,
                end: r.end,
                len: self.len(),
            })
    }

    /// Writes `values` over the elements in `range` under the lock; the lengths must match
    /// ([`Error::LengthMismatch`]). Python: `a[start:end] = values`.
    pub fn set_slice(&self, range: impl RangeBounds<usize>, values: &[T]) -> Result<()> {
        let r = resolve(range, self.len())?;
        check_len(&r, values.len())?;
        self.inner
            .with(|c| {
                c.slice_mut()
                    .get_mut(r.clone())
                    .map(|dst| dst.iter_mut().zip(values).for_each(|(d, v)| *d = *v))
            })?
            .ok_or(Error::RangeOutOfRange {
                start: r.start,
                end: r.end,
                len: self.len(),
            })
    }

    /// A copy of every element, read under the lock. Python: `a[:]`.
    pub fn to_vec(&self) -> Result<Vec<T>> {
        self.inner.with(|c| c.slice().to_vec())
    }

    /// The lock that guards the array. Python: `a.get_lock()`.
    pub fn get_lock(&self) -> &AnyLock {
        &self.inner.lock
    }
}

guard_surface!(Array, ArrayGuard, "a");

/// The elements of an [`Array`], borrowed while its lock is held; derefs to `[T]`.
///
/// Python: `a[...]` inside `with a.get_lock():`. Releases the lock when dropped. Not `Send`.
#[must_use = "if unused the lock will immediately unlock"]
pub struct ArrayGuard<'a, T: Pod> {
    access: Access<'a, T>,
}

impl<T: Pod + fmt::Debug> fmt::Debug for ArrayGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ArrayGuard").field(&&**self).finish()
    }
}

impl<T: Pod> Deref for ArrayGuard<'_, T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        self.access.claim.slice()
    }
}

impl<T: Pod> DerefMut for ArrayGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut [T] {
        self.access.claim.slice_mut()
    }
}

/// A fixed-length array of `T` in shared memory, without a lock.
///
/// Python: `multiprocessing.RawArray(typecode_or_type, size_or_initializer)` (or
/// `Array(..., lock=False)`). Element accesses are never data races (atomic words, see
/// [`RawValue`](crate::RawValue)); a range is copied element by element, so a concurrent
/// writer may interleave with it. Clones are handles to the same array.
#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
pub struct RawArray<T: Pod> {
    cells: RawCells<T>,
}

impl<T: Pod> Clone for RawArray<T> {
    fn clone(&self) -> Self {
        RawArray {
            cells: self.cells.clone(),
        }
    }
}

impl<T: Pod> fmt::Debug for RawArray<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawArray")
            .field("type", &std::any::type_name::<T>())
            .field("len", &self.len())
            .finish()
    }
}

impl<T: Pod> RawArray<T> {
    /// `len` zeroed elements. Python: `RawArray(typecode, size)`.
    pub fn zeroed(len: usize) -> Result<Self> {
        Ok(RawArray {
            cells: RawCells::create(len, None)?,
        })
    }

    /// A copy of `values`. Python: `RawArray(typecode, initializer)`.
    pub fn from_slice(values: &[T]) -> Result<Self> {
        Ok(RawArray {
            cells: RawCells::create(values.len(), Some(values))?,
        })
    }

    /// The number of elements. Python: `len(a)`.
    pub fn len(&self) -> usize {
        self.cells.len()
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Element `index`. Python: `a[index]`.
    pub fn get(&self, index: usize) -> Result<T> {
        self.cells.load(index).ok_or(Error::IndexOutOfRange {
            index,
            len: self.len(),
        })
    }

    /// Writes element `index`. Python: `a[index] = value`.
    pub fn set(&self, index: usize, value: T) -> Result<()> {
        check_index(index, self.len())?;
        if self.cells.store(index, value) {
            Ok(())
        } else {
            Err(Error::IndexOutOfRange {
                index,
                len: self.len(),
            })
        }
    }

    /// A copy of the elements in `range`. Python: `a[start:end]`.
    pub fn get_slice(&self, range: impl RangeBounds<usize>) -> Result<Vec<T>> {
        let r = resolve(range, self.len())?;
        Ok(r.filter_map(|i| self.cells.load(i)).collect())
    }

    /// Writes `values` over the elements in `range`; the lengths must match
    /// ([`Error::LengthMismatch`]). Python: `a[start:end] = values`.
    pub fn set_slice(&self, range: impl RangeBounds<usize>, values: &[T]) -> Result<()> {
        let r = resolve(range, self.len())?;
        check_len(&r, values.len())?;
        for (i, v) in r.zip(values) {
            self.cells.store(i, *v);
        }
        Ok(())
    }

    /// A copy of every element. Python: `a[:]`.
    pub fn to_vec(&self) -> Vec<T> {
        (0..self.len()).filter_map(|i| self.cells.load(i)).collect()
    }
}
