//! Integers without serde: the bytes rmp-serde writes for Rust's integer types, written and
//! read by a loop over the buffer.
//!
//! A pool's `map` over numbers spends most of its CPU in the codec: each item crosses four
//! times (argument encoded, decoded, result encoded, decoded), and through serde each crossing
//! is a call chain per item (rmp-serde's `any_num` dispatch, a `Write` per marker). For the
//! ten integer types (`u8`..`u64`, `usize`, `i8`..`i64`, `isize`) these functions do the same
//! work in a few instructions per item. They write exactly the bytes rmp-serde writes (the
//! shortest form: a positive value in the unsigned forms, as `write_uint` and `write_sint`
//! do) and read every integer form rmp-serde reads into the type, so either side may use
//! either path; `the_fast_path_writes_and_reads_what_rmp_serde_does` checks this at every
//! boundary of every form and type. Anything else (another type, a value out of the type's
//! range, a marker that is no integer) is left to serde: the reading functions then return
//! `None` and the caller decodes as before, so errors and their messages stay serde's.
//!
//! Python: pickle's own fast paths for `int` play the same part.

use std::any::{Any, TypeId};

/// Whether `T` is one of the ten integer types this module handles.
#[inline]
pub fn is_int<T: 'static>() -> bool {
    let t = TypeId::of::<T>();
    t == TypeId::of::<u8>()
        || t == TypeId::of::<u16>()
        || t == TypeId::of::<u32>()
        || t == TypeId::of::<u64>()
        || t == TypeId::of::<usize>()
        || t == TypeId::of::<i8>()
        || t == TypeId::of::<i16>()
        || t == TypeId::of::<i32>()
        || t == TypeId::of::<i64>()
        || t == TypeId::of::<isize>()
}

/// `value` as an `i128`, when `T` is one of the integer types.
#[inline]
fn widen<T: 'static>(value: &T) -> Option<i128> {
    let v = value as &dyn Any;
    macro_rules! try_types {
        ($($t:ty),*) => {
            $(if let Some(x) = v.downcast_ref::<$t>() {
                return Some(*x as i128);
            })*
        };
    }
    try_types!(u64, i64, u32, i32, usize, isize, u16, i16, u8, i8);
    None
}

/// `value` as a `T`, when `T` is one of the integer types and `value` is in its range
/// (`Some(None)` when it is not in range; `None` when `T` is no integer type).
#[inline]
fn narrow<T: 'static>(value: i128) -> Option<Option<T>> {
    let mut out: Option<T> = None;
    let slot = &mut out as &mut dyn Any;
    macro_rules! try_types {
        ($($t:ty),*) => {
            $(if let Some(s) = slot.downcast_mut::<Option<$t>>() {
                *s = <$t>::try_from(value).ok();
                return Some(out);
            })*
        };
    }
    try_types!(u64, i64, u32, i32, usize, isize, u16, i16, u8, i8);
    None
}

/// Writes `value` as rmp-serde would, when `T` is an integer type; returns whether it did
/// (nothing is written otherwise).
#[inline]
pub fn encode_int<T: 'static>(value: &T, out: &mut Vec<u8>) -> bool {
    if !is_int::<T>() {
        return false;
    }
    match widen(value) {
        Some(v) => {
            write(v, out);
            true
        }
        None => false,
    }
}

/// Writes `values` as the MessagePack array rmp-serde would write for a slice of them, when
/// `T` is an integer type; returns whether it did (nothing is written otherwise).
#[inline]
pub fn encode_ints<T: 'static>(values: &[T], out: &mut Vec<u8>) -> bool {
    if !is_int::<T>() || u32::try_from(values.len()).is_err() {
        return false;
    }
    write_array_len(values.len() as u32, out);
    out.reserve(values.len() * (std::mem::size_of::<T>() + 1));
    for v in values {
        if let Some(v) = widen(v) {
            write(v, out);
        }
    }
    true
}

/// The shortest MessagePack form of `v` (any value of the ten types fits one), each form
/// written with one `extend_from_slice` of a fixed-size array (one capacity check).
#[inline]
fn write(v: i128, out: &mut Vec<u8>) {
    if v >= 0 {
        let v = v as u64;
        if v < 128 {
            out.push(v as u8);
        } else if v < 1 << 8 {
            out.extend_from_slice(&[0xcc, v as u8]);
        } else if v < 1 << 16 {
            let [a, b] = (v as u16).to_be_bytes();
            out.extend_from_slice(&[0xcd, a, b]);
        } else if v < 1 << 32 {
            let [a, b, c, d] = (v as u32).to_be_bytes();
            out.extend_from_slice(&[0xce, a, b, c, d]);
        } else {
            let [a, b, c, d, e, f, g, h] = v.to_be_bytes();
            out.extend_from_slice(&[0xcf, a, b, c, d, e, f, g, h]);
        }
    } else {
        let v = v as i64;
        if v >= -32 {
            out.push(v as i8 as u8);
        } else if v >= -(1 << 7) {
            out.extend_from_slice(&[0xd0, v as i8 as u8]);
        } else if v >= -(1 << 15) {
            let [a, b] = (v as i16).to_be_bytes();
            out.extend_from_slice(&[0xd1, a, b]);
        } else if v >= -(1 << 31) {
            let [a, b, c, d] = (v as i32).to_be_bytes();
            out.extend_from_slice(&[0xd2, a, b, c, d]);
        } else {
            let [a, b, c, d, e, f, g, h] = v.to_be_bytes();
            out.extend_from_slice(&[0xd3, a, b, c, d, e, f, g, h]);
        }
    }
}

/// Writes a MessagePack array header for `n` items, in its shortest form (as rmp-serde writes
/// it).
#[inline]
pub fn write_array_len(n: u32, out: &mut Vec<u8>) {
    if n < 16 {
        out.push(0x90 | n as u8);
    } else if n < 1 << 16 {
        out.push(0xdc);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(0xdd);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

/// The `N` bytes at `at`, if there are that many.
#[inline]
fn take<const N: usize>(bytes: &[u8], at: usize) -> Option<[u8; N]> {
    bytes.get(at..at.checked_add(N)?)?.try_into().ok()
}

/// Reads the integer at `*at` (any MessagePack integer form), advancing `*at` past it;
/// `None` (and `*at` unchanged) when the bytes there are no whole integer.
#[inline]
pub fn read_int(bytes: &[u8], at: &mut usize) -> Option<i128> {
    let i = *at;
    let marker = *bytes.get(i)?;
    let (v, len) = match marker {
        0x00..=0x7f => (i128::from(marker), 1),
        0xe0..=0xff => (i128::from(marker as i8), 1),
        0xcc => (i128::from(take::<1>(bytes, i + 1)?[0]), 2),
        0xcd => (i128::from(u16::from_be_bytes(take(bytes, i + 1)?)), 3),
        0xce => (i128::from(u32::from_be_bytes(take(bytes, i + 1)?)), 5),
        0xcf => (i128::from(u64::from_be_bytes(take(bytes, i + 1)?)), 9),
        0xd0 => (i128::from(take::<1>(bytes, i + 1)?[0] as i8), 2),
        0xd1 => (i128::from(i16::from_be_bytes(take(bytes, i + 1)?)), 3),
        0xd2 => (i128::from(i32::from_be_bytes(take(bytes, i + 1)?)), 5),
        0xd3 => (i128::from(i64::from_be_bytes(take(bytes, i + 1)?)), 9),
        _ => return None,
    };
    *at = i + len;
    Some(v)
}

/// Reads the integer at `*at` as a `T` (advancing past it); `None` (and `*at` unchanged) when
/// `T` is no integer type, the bytes there are no integer, or it is out of `T`'s range.
#[inline]
pub fn read_as<T: 'static>(bytes: &[u8], at: &mut usize) -> Option<T> {
    if !is_int::<T>() {
        return None;
    }
    let mut i = *at;
    let v = narrow::<T>(read_int(bytes, &mut i)?)??;
    *at = i;
    Some(v)
}

/// Reads the MessagePack array header at `*at` (advancing past it): the number of items.
#[inline]
pub fn read_array_len(bytes: &[u8], at: &mut usize) -> Option<usize> {
    let i = *at;
    let marker = *bytes.get(i)?;
    let (n, len) = match marker {
        0x90..=0x9f => (usize::from(marker & 0x0f), 1),
        0xdc => (usize::from(u16::from_be_bytes(take(bytes, i + 1)?)), 3),
        0xdd => (u32::from_be_bytes(take(bytes, i + 1)?) as usize, 5),
        _ => return None,
    };
    *at = i + len;
    Some(n)
}

/// Decodes the MessagePack array of integers `bytes` onto the end of `values`, when `T` is an
/// integer type and `bytes` is exactly such an array with every item in `T`'s range.
/// Otherwise appends nothing and returns `false`, and the caller decodes with serde (which
/// gives the error, if there is one). The room reserved is at most one item per byte of
/// `bytes`, whatever the header's count says.
#[inline]
pub fn append_ints<T: 'static>(values: &mut Vec<T>, bytes: &[u8]) -> bool {
    if !is_int::<T>() {
        return false;
    }
    let before = values.len();
    let mut at = 0;
    let Some(n) = read_array_len(bytes, &mut at) else {
        return false;
    };
    // Every item takes a byte at least: the room reserved is bounded by the bytes that came,
    // not by the header's count.
    values.reserve(n.min(bytes.len() - at));
    for _ in 0..n {
        match read_as::<T>(bytes, &mut at) {
            Some(v) => values.push(v),
            None => {
                values.truncate(before);
                return false;
            }
        }
    }
    if at != bytes.len() {
        values.truncate(before);
        return false;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check<T>()
    where
        T: 'static + Copy + std::fmt::Debug + PartialEq + TryFrom<i128>,
        T: serde::Serialize + serde::de::DeserializeOwned,
    {
        let values: Vec<T> = mp_testkit::int_form_edges()
            .into_iter()
            .filter_map(|v| T::try_from(v).ok())
            .collect();
        assert!(values.len() > 4, "{}", std::any::type_name::<T>());
        // Writing: the same bytes as rmp-serde, one value and the whole array.
        for v in &values {
            let mut ours = Vec::new();
            assert!(encode_int(v, &mut ours));
            assert_eq!(ours, rmp_serde::to_vec(v).unwrap(), "{v:?}");
        }
        let mut ours = Vec::new();
        assert!(encode_ints(&values, &mut ours));
        assert_eq!(ours, rmp_serde::to_vec(&values).unwrap());
        // Reading: what rmp-serde reads, from the bytes any integer type writes.
        let all: Vec<i128> = mp_testkit::int_form_edges()
            .into_iter()
            .filter(|&v| i64::try_from(v).is_ok() || u64::try_from(v).is_ok())
            .collect();
        for v in all {
            let bytes = if v >= 0 {
                rmp_serde::to_vec(&(v as u64)).unwrap()
            } else {
                rmp_serde::to_vec(&(v as i64)).unwrap()
            };
            let serde: Option<T> = rmp_serde::from_slice(&bytes).ok();
            let mut at = 0;
            assert_eq!(
                read_as::<T>(&bytes, &mut at),
                serde,
                "{v} as {}",
                std::any::type_name::<T>()
            );
            assert_eq!(at, if serde.is_some() { bytes.len() } else { 0 });
        }
        let mut back: Vec<T> = vec![];
        assert!(append_ints(&mut back, &ours));
        assert_eq!(back, values);
    }

    #[test]
    fn the_fast_path_writes_and_reads_what_rmp_serde_does() {
        check::<u8>();
        check::<u16>();
        check::<u32>();
        check::<u64>();
        check::<usize>();
        check::<i8>();
        check::<i16>();
        check::<i32>();
        check::<i64>();
        check::<isize>();
    }

    /// `decode_prefix` reads one value and says where the rest begins.
    #[test]
    fn a_prefix_and_the_integers_after_it() {
        let mut bytes = crate::codec::encode(&("f", 7u8)).unwrap();
        let head = bytes.len();
        assert!(encode_ints(&[1u64, 300, u64::MAX], &mut bytes));
        let ((name, n), used): ((String, u8), usize) = crate::codec::decode_prefix(&bytes).unwrap();
        assert_eq!((name.as_str(), n, used), ("f", 7, head));
        let mut v: Vec<u64> = Vec::new();
        assert!(append_ints(&mut v, &bytes[used..]));
        assert_eq!(v, [1, 300, u64::MAX]);
        assert!(crate::codec::decode_prefix::<String>(&[0xa5, b'a']).is_err());
    }

    #[test]
    fn anything_else_is_left_to_serde() {
        // Other types: nothing written, nothing read.
        let mut out = Vec::new();
        assert!(!encode_int(&1.5f64, &mut out));
        assert!(!encode_ints(&["a"], &mut out));
        assert!(out.is_empty());
        let mut strings: Vec<String> = Vec::new();
        assert!(!append_ints(&mut strings, &[0x91, 0x01]));
        // A value out of range, a float, a truncated integer, a short array, trailing bytes:
        // nothing appended.
        let mut v: Vec<u8> = vec![9];
        for bad in [
            &[0x91, 0xcd, 0x01, 0x00][..],
            &[0x91, 0xcb, 0, 0, 0, 0, 0, 0, 0, 0],
            &[0x91, 0xcf, 0, 0],
            &[0x92, 0x01],
            &[0x91, 0x01, 0x02],
            &[0x01],
            &[],
        ] {
            assert!(!append_ints(&mut v, bad), "{bad:?}");
            assert_eq!(v, vec![9]);
        }
        // A header that claims more items than there are bytes reserves nothing.
        assert!(!append_ints(&mut v, &[0xdd, 0xff, 0xff, 0xff, 0xff, 0x01]));
        assert_eq!(v, vec![9]);
    }
}
