//! `ShareableList`: CPython's `multiprocessing.shared_memory.ShareableList`, byte for byte.
//!
//! The segment layout is documented on [`ShareableList`].

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};
use crate::shared_memory::SharedMemory;

/// One item of a [`ShareableList`]: the Python types a `ShareableList` can hold.
///
/// Python: `int` (within `i64`, struct `q`), `float`, `bool`, `str`, `bytes` and `None`.
/// `PartialEq` is structural (`Int(1) != Bool(true)`); [`ShareableList::count`] and
/// [`ShareableList::index`] compare as Python's `==` does (`1 == 1.0 == True`).
/// `Display` writes Python's `repr` of the item (`'a'`, `b'\x00'`, `None`, `True`, `2.5`).
#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    /// Python `int`, limited to `i64` (CPython's struct `q` is too).
    Int(i64),
    /// Python `float`.
    Float(f64),
    /// Python `bool`.
    Bool(bool),
    /// Python `str`. Trailing NUL characters are lost on the way through the list (CPython
    /// strips them when reading).
    Str(String),
    /// Python `bytes`. Trailing NUL bytes are lost on the way through the list (CPython strips
    /// them when reading).
    Bytes(Vec<u8>),
    /// Python `None`.
    None,
}

impl From<i64> for Item {
    fn from(v: i64) -> Self {
        Item::Int(v)
    }
}

impl From<i32> for Item {
    fn from(v: i32) -> Self {
        Item::Int(v.into())
    }
}

impl From<f64> for Item {
    fn from(v: f64) -> Self {
        Item::Float(v)
    }
}

impl From<bool> for Item {
    fn from(v: bool) -> Self {
        Item::Bool(v)
    }
}

impl From<&str> for Item {
    fn from(v: &str) -> Self {
        Item::Str(v.to_string())
    }
}

impl From<String> for Item {
    fn from(v: String) -> Self {
        Item::Str(v)
    }
}

impl From<&[u8]> for Item {
    fn from(v: &[u8]) -> Self {
        Item::Bytes(v.to_vec())
    }
}

impl<const N: usize> From<&[u8; N]> for Item {
    fn from(v: &[u8; N]) -> Self {
        Item::Bytes(v.to_vec())
    }
}

impl From<Vec<u8>> for Item {
    fn from(v: Vec<u8>) -> Self {
        Item::Bytes(v)
    }
}

impl From<()> for Item {
    /// `()` is Python's `None`.
    fn from((): ()) -> Self {
        Item::None
    }
}

impl fmt::Display for Item {
    /// Python's `repr(item)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Item::Int(v) => write!(f, "{v}"),
            Item::Float(v) => f.write_str(&float_repr(*v)),
            Item::Bool(true) => f.write_str("True"),
            Item::Bool(false) => f.write_str("False"),
            Item::Str(s) => f.write_str(&quoted(s.chars(), "")),
            Item::Bytes(b) => f.write_str(&quoted(b.iter().map(|&b| char::from(b)), "b")),
            Item::None => f.write_str("None"),
        }
    }
}

/// Python's `repr` of a str (`prefix` "") or bytes (`prefix` "b", chars are the bytes).
fn quoted(chars: impl Iterator<Item = char> + Clone, prefix: &str) -> String {
    let bytes = !prefix.is_empty();
    let has = |q: char| chars.clone().any(|c| c == q);
    let quote = if has('\'') && !has('"') { '"' } else { '\'' };
    let mut out = String::from(prefix);
    out.push(quote);
    for c in chars {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f || (bytes && c as u32 > 0x7f) => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if !bytes && ((0x80..0xa0).contains(&(c as u32))) => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// Python's `repr(float)`: the shortest digits that round-trip, in fixed notation for decimal
/// exponents from -4 to 15 and scientific (`1e+16`, `1.5e-05`) otherwise.
fn float_repr(v: f64) -> String {
    if v.is_nan() {
        return "nan".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "inf" } else { "-inf" }.into();
    }
    let sign = if v.is_sign_negative() { "-" } else { "" };
    // `{:e}` gives the shortest round-trip digits: "1.5e16", "5e-324", "0e0".
    let sci = format!("{:e}", v.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    let body = if (-4..16).contains(&exp) {
        if exp >= 0 {
            let int_len = exp as usize + 1;
            let mut d = digits.clone();
            while d.len() < int_len {
                d.push('0');
            }
            let (int, frac) = d.split_at(int_len);
            format!("{int}.{}", if frac.is_empty() { "0" } else { frac })
        } else {
            format!("0.{}{digits}", "0".repeat((-exp - 1) as usize))
        }
    } else {
        let (first, rest) = digits.split_at(1);
        let dot = if rest.is_empty() { "" } else { "." };
        let esign = if exp < 0 { '-' } else { '+' };
        format!("{first}{dot}{rest}e{esign}{:02}", exp.unsigned_abs())
    };
    format!("{sign}{body}")
}

/// Python's `a == b` for the items of a list: numbers compare by value across `int`, `float`
/// and `bool`; `str` never equals `bytes`.
fn python_eq(a: &Item, b: &Item) -> bool {
    fn int_eq_float(i: i64, f: f64) -> bool {
        // Exact, as Python compares an int with a float (no rounding of the int).
        f.is_finite()
            && f.fract() == 0.0
            && (-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&f)
            && f as i64 == i
    }
    let num = |x: &Item| match *x {
        Item::Int(i) => Some(Ok(i)),
        Item::Bool(b) => Some(Ok(i64::from(b))),
        Item::Float(f) => Some(Err(f)),
        _ => None,
    };
    match (num(a), num(b)) {
        (Some(Ok(x)), Some(Ok(y))) => x == y,
        (Some(Err(x)), Some(Err(y))) => x == y,
        (Some(Ok(i)), Some(Err(f))) | (Some(Err(f)), Some(Ok(i))) => int_eq_float(i, f),
        (Some(_), None) | (None, Some(_)) => false,
        (None, None) => match (a, b) {
            (Item::Str(x), Item::Str(y)) => x == y,
            (Item::Bytes(x), Item::Bytes(y)) => x == y,
            (Item::None, Item::None) => true,
            _ => false,
        },
    }
}

/// Every slot and table entry is 8 bytes (CPython's `_alignment`).
const SLOT: usize = 8;

/// The back-transform codes (CPython's `_back_transforms_mapping`).
const CODE_VALUE: i8 = 0;
const CODE_STR: i8 = 1;
const CODE_BYTES: i8 = 2;
const CODE_NONE: i8 = 3;

/// The longest `<n>s` format that fits in 8 bytes, "9999999s", rounded down to a multiple of 8.
const MAX_STR_SLOT: usize = 9_999_992;

/// The struct formats CPython writes.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Format {
    /// `q`
    Int,
    /// `d`
    Float,
    /// `xxxxxxx?`
    Bool,
    /// `xxxxxx?x`
    NoneBool,
    /// `<n>s`
    Bytes(usize),
}

impl Format {
    fn parse(s: &str) -> Option<Format> {
        Some(match s {
            "q" => Format::Int,
            "d" => Format::Float,
            "xxxxxxx?" => Format::Bool,
            "xxxxxx?x" => Format::NoneBool,
            _ => {
                let digits = s.strip_suffix('s')?;
                if !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                // struct's "s" alone is "1s"; at most 7 digits fit in 8 bytes.
                Format::Bytes(if digits.is_empty() {
                    1
                } else {
                    digits.parse().ok()?
                })
            }
        })
    }

    fn size(self) -> usize {
        match self {
            Format::Bytes(n) => n,
            _ => SLOT,
        }
    }
}

/// An item encoded as CPython's `__init__`/`__setitem__` would: format, code, bytes.
struct Encoded {
    format: String,
    code: i8,
    bytes: Vec<u8>,
}

/// The bytes of a fixed-format (8-byte) item, or `None` for str and bytes.
fn fixed(item: &Item) -> Option<(&'static str, i8, [u8; SLOT])> {
    Some(match *item {
        Item::Int(v) => ("q", CODE_VALUE, v.to_ne_bytes()),
        Item::Float(v) => ("d", CODE_VALUE, v.to_ne_bytes()),
        Item::Bool(v) => ("xxxxxxx?", CODE_VALUE, [0, 0, 0, 0, 0, 0, 0, u8::from(v)]),
        Item::None => ("xxxxxx?x", CODE_NONE, [0; SLOT]),
        Item::Str(_) | Item::Bytes(_) => return None,
    })
}

/// The encoded bytes and code of a str or bytes item.
fn text(item: &Item) -> Option<(&[u8], i8)> {
    match item {
        Item::Str(s) => Some((s.as_bytes(), CODE_STR)),
        Item::Bytes(b) => Some((b, CODE_BYTES)),
        _ => None,
    }
}

/// Encodes an item for a new list.
fn encode_new(item: &Item) -> Result<Encoded> {
    if let Some((format, code, bytes)) = fixed(item) {
        return Ok(Encoded {
            format: format.into(),
            code,
            bytes: bytes.to_vec(),
        });
    }
    let (data, code) = text(item).expect("str or bytes");
    // CPython: 8 * (len(item) // 8 + 1), always room for at least one NUL.
    let n = SLOT * (data.len() / SLOT + 1);
    if n > MAX_STR_SLOT {
        return Err(Error::InvalidArgument(format!(
            "a str/bytes item of {} bytes needs a packing format longer than 8 bytes \
             (at most {} bytes fit)",
            data.len(),
            MAX_STR_SLOT - 1
        )));
    }
    let mut bytes = data.to_vec();
    bytes.resize(n, 0);
    Ok(Encoded {
        format: format!("{n}s"),
        code,
        bytes,
    })
}

/// A format string as its 8-byte slot, NUL-padded.
fn format_slot(format: &str) -> [u8; SLOT] {
    let mut slot = [0u8; SLOT];
    slot[..format.len()].copy_from_slice(format.as_bytes());
    slot
}

/// The whole image of a new list: the segment's first bytes.
fn layout(items: &[Item]) -> Result<Vec<u8>> {
    let encoded = items.iter().map(encode_new).collect::<Result<Vec<_>>>()?;
    let n = encoded.len();
    let data_len: usize = encoded.iter().map(|e| e.bytes.len()).sum();
    let total = (n + 2) * SLOT + data_len + n * (SLOT + 1);
    let mut image = Vec::with_capacity(total);
    image.extend_from_slice(&(n as i64).to_ne_bytes());
    let mut offset = 0usize;
    image.extend_from_slice(&0i64.to_ne_bytes());
    for e in &encoded {
        offset += e.bytes.len();
        image.extend_from_slice(&(offset as i64).to_ne_bytes());
    }
    for e in &encoded {
        image.extend_from_slice(&e.bytes);
    }
    for e in &encoded {
        image.extend_from_slice(&format_slot(&e.format));
    }
    for e in &encoded {
        image.push(e.code as u8);
    }
    debug_assert_eq!(image.len(), total);
    Ok(image)
}

/// A fixed-length list of `int`, `float`, `bool`, `str`, `bytes` and `None` items in a named
/// shared memory segment, laid out exactly as CPython's.
///
/// Python: `multiprocessing.shared_memory.ShareableList`. A Python process (CPython 3.9 to
/// 3.13) attaches to a list this crate created with `ShareableList(name=...)`, and
/// [`attach`](Self::attach) attaches to one that Python created; both sides read and write
/// the same bytes. The length is fixed; an item can be replaced by an item of another type,
/// and a `str`/`bytes` item by one that fits the slot allocated when the list was created.
///
/// There is no lock, as in Python: each byte is read and written atomically (no undefined
/// behaviour whatever other processes do), but an item written concurrently may be read torn,
/// or with the format of one value and the bytes of another. Synchronize with a lock of your
/// own (`mp_sync::Lock`) when processes write concurrently.
///
/// Everything is read from the segment, which another process may have filled with garbage:
/// a header that does not fit the segment, a format or code CPython would not write, or a
/// `str` that is not utf-8 is an [`Error::CorruptList`], never a panic.
///
/// Clones are handles to the same list (and the same mapping). Pass one to a child as an
/// argument (any start method) or send it over a duplex `Connection`: it travels as its
/// [`SharedMemory`] does (the fd), and the receiver reads the header again.
///
/// ```
/// use mp_shared::{Item, ShareableList};
///
/// let sl = ShareableList::new([Item::from("howdy"), b"HoWdY".into(), (-273.154).into(),
///                              100.into(), Item::None, true.into(), 42.into()]).unwrap();
/// assert_eq!(sl.get(-1).unwrap(), Item::Int(42));
/// assert_eq!(sl.format().unwrap(), "8s8sdqxxxxxx?xxxxxxxx?q");
/// sl.set(0, "hi").unwrap(); // a shorter str fits the 8-byte slot
/// sl.set(3, 2.5).unwrap();  // an int becomes a float
/// assert!(sl.set(1, "a str of more than eight bytes").is_err());
///
/// let other = ShareableList::attach(sl.name()).unwrap(); // Python: ShareableList(name=...)
/// assert_eq!(other.get(0).unwrap(), Item::from("hi"));
/// assert_eq!(other.get(3).unwrap(), Item::Float(2.5));
/// assert_eq!(other.count(&Item::Int(1)).unwrap(), 1); // True == 1, as in Python
/// sl.shm().unlink().unwrap();
/// ```
///
/// # Segment layout
///
/// A list of `N` items in a named [`SharedMemory`] segment, as CPython 3.9 to 3.13 lay it out
/// (every slot native-endian, every offset in bytes):
///
/// | at                              | size          | what                                       |
/// |---------------------------------|---------------|--------------------------------------------|
/// | `0`                             | 8             | `N`, an `i64` (struct `q`)                 |
/// | `8`                             | `(N + 1) * 8` | `offsets[0..=N]`, `i64`s, from `data`      |
/// | `data = (N + 2) * 8`            | `offsets[N]`  | item `i` at `data + offsets[i]`            |
/// | `formats = data + offsets[N]`   | `N * 8`       | each item's struct format, NUL-padded      |
/// | `codes = formats + N * 8`       | `N`           | each item's back-transform code (`i8`)     |
///
/// | item         | format          | code | slot                                        |
/// |--------------|-----------------|------|---------------------------------------------|
/// | `int`        | `q`             | 0    | 8 bytes, `i64`                              |
/// | `float`      | `d`             | 0    | 8 bytes, `f64`                              |
/// | `bool`       | `xxxxxxx?`      | 0    | 7 pad bytes, then 0 or 1                    |
/// | `None`       | `xxxxxx?x`      | 3    | 8 zero bytes                                |
/// | `str`        | `<n>s`          | 1    | `n = 8 * (len / 8 + 1)` bytes, utf-8, NULs  |
/// | `bytes`      | `<n>s`          | 2    | the same, raw bytes                         |
///
/// Here `len` is a `str`'s length in utf-8 bytes; CPython counts characters, and truncates a
/// non-ASCII `str` that needs more bytes than that (the same layout for ASCII `str`s).
///
/// Only the header (`N` and the offsets) is read when attaching, as CPython does; formats,
/// codes and items are read at every access, since another process may change them.
#[derive(Clone)]
pub struct ShareableList {
    inner: Arc<Inner>,
}

/// The segment and the header as read (and checked) when attaching, as CPython caches it.
struct Inner {
    shm: SharedMemory,
    len: usize,
    /// `len + 1` offsets from the start of the data area, non-decreasing, within the segment.
    offsets: Box<[usize]>,
}

impl fmt::Debug for ShareableList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShareableList")
            .field("name", &self.name())
            .field("len", &self.len())
            .finish()
    }
}

impl Serialize for ShareableList {
    /// Serializes the segment (inside a handle transfer, as [`SharedMemory`] does).
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.inner.shm.serialize(s)
    }
}

impl<'de> Deserialize<'de> for ShareableList {
    /// Receives the segment and reads its header again (a corrupt one is an error).
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let shm = SharedMemory::deserialize(d)?;
        ShareableList::from_attached(shm).map_err(serde::de::Error::custom)
    }
}

impl ShareableList {
    /// Creates a list of `items` in a new tracked segment with a fresh random name
    /// (`psm_xxxxxxxx`), exactly as large as CPython would make it.
    ///
    /// Python: `ShareableList(sequence)`. Errors: those of [`SharedMemory::create`], and
    /// [`Error::InvalidArgument`] for a `str`/`bytes` item of 9,999,992 bytes or more (its
    /// format would not fit in 8 bytes; CPython fails an assertion).
    pub fn new<I: Into<Item>>(items: impl IntoIterator<Item = I>) -> Result<ShareableList> {
        let image = layout(&collect(items))?;
        let shm = SharedMemory::create(None, image.len())?;
        Self::write_new(shm, &image)
    }

    /// Creates a list of `items` in a new tracked segment named `name`.
    ///
    /// Python: `ShareableList(sequence, name=name)`. Errors as [`new`](Self::new), and
    /// [`Error::Exists`] if the name is taken.
    pub fn with_name<I: Into<Item>>(
        name: &str,
        items: impl IntoIterator<Item = I>,
    ) -> Result<ShareableList> {
        let image = layout(&collect(items))?;
        let shm = SharedMemory::create(Some(name), image.len())?;
        Self::write_new(shm, &image)
    }

    /// Lays out a list of `items` at the start of `shm`, a segment of at least
    /// [`size_for`](Self::size_for)`(items)` bytes, overwriting what was there: for a segment
    /// made with [`SharedMemory::options`] (an untracked one, other permissions).
    ///
    /// No Python counterpart (CPython always creates the segment). [`Error::InvalidArgument`]
    /// if the segment is too small.
    pub fn from_shared_memory<I: Into<Item>>(
        shm: SharedMemory,
        items: impl IntoIterator<Item = I>,
    ) -> Result<ShareableList> {
        let image = layout(&collect(items))?;
        if shm.size() < image.len() {
            return Err(Error::InvalidArgument(format!(
                "the list needs {} bytes, the segment {:?} has {}",
                image.len(),
                shm.name(),
                shm.size()
            )));
        }
        Self::write_new(shm, &image)
    }

    /// The bytes a segment needs to hold a list of `items` (CPython's `requested_size`).
    pub fn size_for(items: &[Item]) -> Result<usize> {
        Ok(layout(items)?.len())
    }

    /// Attaches to the list in the existing segment `name`.
    ///
    /// Python: `ShareableList(name=name)`. Reads and checks the header (length and offsets)
    /// once, as CPython does. Errors: those of [`SharedMemory::attach`] ([`Error::NotFound`],
    /// ...), and [`Error::CorruptList`] if the header does not describe a list that fits in
    /// the segment. Attaching does not register the segment with the resource tracker.
    pub fn attach(name: &str) -> Result<ShareableList> {
        Self::from_attached(SharedMemory::attach(name)?)
    }

    fn write_new(shm: SharedMemory, image: &[u8]) -> Result<ShareableList> {
        shm.write_at(0, image)?;
        Self::from_attached(shm)
    }

    /// Reads and checks the header of `shm`. Every size is checked against the segment's
    /// before anything is allocated.
    fn from_attached(shm: SharedMemory) -> Result<ShareableList> {
        let size = shm.size();
        let corrupt = |reason: String| Error::CorruptList {
            name: shm.name().to_string(),
            reason,
        };
        if size < 2 * SLOT {
            return Err(corrupt(format!(
                "{size} bytes cannot hold a list header (at least 16)"
            )));
        }
        let raw_len = read_i64(&shm, 0)?;
        // Each item takes at least one offset, one format and one code: 17 bytes.
        let max_len = (size - 2 * SLOT) / (2 * SLOT + 1);
        let len = usize::try_from(raw_len)
            .ok()
            .filter(|&n| n <= max_len)
            .ok_or_else(|| {
                corrupt(format!(
                    "a list length of {raw_len} does not fit in a segment of {size} bytes"
                ))
            })?;
        let mut raw = vec![0u8; (len + 1) * SLOT];
        shm.read_at(SLOT, &mut raw)?;
        let mut offsets = Vec::with_capacity(len + 1);
        for (i, word) in raw.chunks_exact(SLOT).enumerate() {
            let v = i64::from_ne_bytes(word.try_into().expect("8 bytes"));
            let off =
                usize::try_from(v).map_err(|_| corrupt(format!("offset {i} is negative ({v})")))?;
            if let Some(&prev) = offsets.last() {
                if off < prev {
                    return Err(corrupt(format!(
                        "offset {i} ({off}) is smaller than offset {} ({prev})",
                        i - 1
                    )));
                }
            }
            offsets.push(off);
        }
        let data_end = offsets[len];
        let end = ((len + 2) * SLOT)
            .checked_add(data_end)
            .and_then(|e| e.checked_add(len * (SLOT + 1)));
        if !matches!(end, Some(e) if e <= size) {
            return Err(corrupt(format!(
                "a data area of {data_end} bytes for {len} items does not fit in a segment of \
                 {size} bytes"
            )));
        }
        Ok(ShareableList {
            inner: Arc::new(Inner {
                shm,
                len,
                offsets: offsets.into_boxed_slice(),
            }),
        })
    }

    /// The number of items. Python: `len(sl)`.
    ///
    /// The length read from the header when attaching (CPython reads the header again for
    /// `len()`, but uses the cached length everywhere else; a list's length never changes).
    pub fn len(&self) -> usize {
        self.inner.len
    }

    /// True if the list has no items. Python: `not sl`.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The segment's name. Python: `sl.shm.name` (without the leading `/`).
    pub fn name(&self) -> &str {
        self.inner.shm.name()
    }

    /// The segment. Python: `sl.shm`; unlink the list with `sl.shm().unlink()`.
    pub fn shm(&self) -> &SharedMemory {
        &self.inner.shm
    }

    /// Item `index`, counted from the end when negative. Python: `sl[index]`.
    ///
    /// Errors: [`Error::ListIndexOutOfRange`] (Python's `IndexError`; CPython returns garbage
    /// for some indexes below `-len`), [`Error::CorruptList`] if the item's format or code is
    /// not one CPython writes, it lies past the end of the segment, or a `str` is not utf-8.
    pub fn get(&self, index: isize) -> Result<Item> {
        let i = self.position(index)?;
        let format = self.parse_format(i)?;
        let code = self.code(i)?;
        let at = self.data_at(i);
        let mut bytes = vec![0u8; self.check_fits(i, at, format.size())?];
        self.shm().read_at(at, &mut bytes)?;
        let stripped = || {
            let end = bytes.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
            bytes[..end].to_vec()
        };
        let word = || -> [u8; SLOT] { bytes[..SLOT].try_into().expect("8 bytes") };
        Ok(match (code, format) {
            (CODE_NONE, _) => Item::None,
            (CODE_VALUE, Format::Int) => Item::Int(i64::from_ne_bytes(word())),
            (CODE_VALUE, Format::Float) => Item::Float(f64::from_ne_bytes(word())),
            (CODE_VALUE, Format::Bool) => Item::Bool(bytes[7] != 0),
            (CODE_VALUE, Format::NoneBool) => Item::Bool(bytes[6] != 0),
            // CPython returns the bytes as they are (no back transform strips them).
            (CODE_VALUE, Format::Bytes(_)) => Item::Bytes(bytes),
            (CODE_STR, Format::Bytes(_)) => {
                Item::Str(String::from_utf8(stripped()).map_err(|e| {
                    self.corrupt(format!("item {i} is a str that is not utf-8 ({e})"))
                })?)
            }
            (CODE_BYTES, Format::Bytes(_)) => Item::Bytes(stripped()),
            (CODE_STR | CODE_BYTES, f) => {
                return Err(self.corrupt(format!(
                    "item {i} has back-transform code {code} (str/bytes) but format {f:?}"
                )))
            }
            (code, _) => {
                return Err(self.corrupt(format!(
                    "item {i} has the unknown back-transform code {code}"
                )))
            }
        })
    }

    /// Replaces item `index` (counted from the end when negative) with `value`, which may be
    /// of another type. Python: `sl[index] = value`.
    ///
    /// As in CPython: an `int`, `float`, `bool` or `None` takes the 8 bytes at the slot (every
    /// slot has at least 8); a `str` or `bytes` must fit the bytes allocated to the slot when
    /// the list was created (8 for an item that was not a `str`/`bytes`), and keeps the slot's
    /// `<n>s` format if it has one. Errors: [`Error::ListIndexOutOfRange`],
    /// [`Error::ExceedsStorage`] (Python's `ValueError`; nothing is written),
    /// [`Error::CorruptList`] (a slot that does not fit in the segment).
    ///
    /// The format, then the code, then the value are written, as CPython does, with no lock.
    pub fn set(&self, index: isize, value: impl Into<Item>) -> Result<()> {
        let value = value.into();
        let i = self.position(index)?;
        let at = self.data_at(i);
        let (format, code, bytes) = match fixed(&value) {
            Some((format, code, bytes)) => (format.to_string(), code, bytes.to_vec()),
            None => {
                let (data, code) = text(&value).expect("str or bytes");
                let capacity = self.inner.offsets[i + 1] - self.inner.offsets[i];
                if data.len() > capacity {
                    return Err(Error::ExceedsStorage {
                        index: i,
                        len: data.len(),
                        capacity,
                    });
                }
                let current = self.format_str(i)?;
                let format = if current.ends_with('s') {
                    current
                } else {
                    format!("{capacity}s")
                };
                let n = match Format::parse(&format) {
                    Some(Format::Bytes(n)) if format.len() <= SLOT => n,
                    _ => {
                        return Err(self.corrupt(format!(
                            "item {i} has a format {format:?} that cannot hold a str/bytes"
                        )))
                    }
                };
                // Checked before allocating: `n` comes from the segment.
                self.check_fits(i, at, n)?;
                // CPython's struct pads with NULs, or truncates to the format's size.
                let mut bytes = data[..data.len().min(n)].to_vec();
                bytes.resize(n, 0);
                (format, code, bytes)
            }
        };
        self.check_fits(i, at, bytes.len())?;
        self.shm()
            .write_at(self.formats_at() + i * SLOT, &format_slot(&format))?;
        self.shm().write_at(self.codes_at() + i, &[code as u8])?;
        self.shm().write_at(at, &bytes)
    }

    /// Every item, in order. Python: `list(sl)`. Errors as [`get`](Self::get).
    pub fn to_vec(&self) -> Result<Vec<Item>> {
        (0..self.len()).map(|i| self.get(i as isize)).collect()
    }

    /// How many items equal `value`, compared as Python's `==` (`1`, `1.0` and `True` are
    /// equal; NaN equals nothing). Python: `sl.count(value)`. Errors as [`get`](Self::get).
    pub fn count(&self, value: &Item) -> Result<usize> {
        let mut n = 0;
        for i in 0..self.len() {
            n += usize::from(python_eq(value, &self.get(i as isize)?));
        }
        Ok(n)
    }

    /// The position of the first item equal to `value` (as in [`count`](Self::count)).
    /// Python: `sl.index(value)`. [`Error::NotInList`] if there is none (Python's
    /// `ValueError`), or errors as [`get`](Self::get).
    pub fn index(&self, value: &Item) -> Result<usize> {
        for i in 0..self.len() {
            if python_eq(value, &self.get(i as isize)?) {
                return Ok(i);
            }
        }
        Err(Error::NotInList(value.to_string()))
    }

    /// The struct formats of every item, concatenated. Python: `sl.format`, e.g.
    /// `"8sdqxxxxxxx?"`. The formats are returned as stored, whether or not CPython would
    /// write them; [`Error::CorruptList`] if one is not utf-8.
    pub fn format(&self) -> Result<String> {
        let mut out = String::new();
        for i in 0..self.len() {
            out.push_str(&self.format_str(i)?);
        }
        Ok(out)
    }

    /// `index` counted from the end when negative, checked.
    fn position(&self, index: isize) -> Result<usize> {
        let len = self.len();
        let i = if index < 0 {
            len.checked_sub(index.unsigned_abs())
        } else {
            Some(index.unsigned_abs()).filter(|&i| i < len)
        };
        i.ok_or(Error::ListIndexOutOfRange { index, len })
    }

    fn corrupt(&self, reason: String) -> Error {
        Error::CorruptList {
            name: self.name().to_string(),
            reason,
        }
    }

    /// Where item `i`'s bytes start (within the segment: checked when attaching).
    fn data_at(&self, i: usize) -> usize {
        (self.len() + 2) * SLOT + self.inner.offsets[i]
    }

    fn formats_at(&self) -> usize {
        (self.len() + 2) * SLOT + self.inner.offsets[self.len()]
    }

    fn codes_at(&self) -> usize {
        self.formats_at() + self.len() * SLOT
    }

    /// `size` if item `i`'s `size` bytes at `at` lie within the segment.
    fn check_fits(&self, i: usize, at: usize, size: usize) -> Result<usize> {
        match at.checked_add(size) {
            Some(end) if end <= self.shm().size() => Ok(size),
            _ => Err(self.corrupt(format!(
                "item {i} ({size} bytes at byte {at}) runs past the end of the segment ({} bytes)",
                self.shm().size()
            ))),
        }
    }

    /// Item `i`'s format as stored, without its NUL padding (CPython's `_get_packing_format`).
    fn format_str(&self, i: usize) -> Result<String> {
        let mut slot = [0u8; SLOT];
        self.shm()
            .read_at(self.formats_at() + i * SLOT, &mut slot)?;
        let end = slot.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
        std::str::from_utf8(&slot[..end])
            .map(str::to_string)
            .map_err(|_| {
                self.corrupt(format!(
                    "item {i} has a packing format that is not utf-8: {:?}",
                    &slot[..end]
                ))
            })
    }

    fn parse_format(&self, i: usize) -> Result<Format> {
        let s = self.format_str(i)?;
        Format::parse(&s).ok_or_else(|| {
            self.corrupt(format!("item {i} has an unsupported packing format {s:?}"))
        })
    }

    fn code(&self, i: usize) -> Result<i8> {
        let mut b = [0u8; 1];
        self.shm().read_at(self.codes_at() + i, &mut b)?;
        Ok(b[0] as i8)
    }
}

fn collect<I: Into<Item>>(items: impl IntoIterator<Item = I>) -> Vec<Item> {
    items.into_iter().map(Into::into).collect()
}

fn read_i64(shm: &SharedMemory, at: usize) -> Result<i64> {
    let mut word = [0u8; SLOT];
    shm.read_at(at, &mut word)?;
    Ok(i64::from_ne_bytes(word))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_repr_is_pythons() {
        for (v, s) in [
            (2.5, "2.5"),
            (1.0, "1.0"),
            (-0.0, "-0.0"),
            (0.1, "0.1"),
            (1e16, "1e+16"),
            (1.5e16, "1.5e+16"),
            (123456789012345.6, "123456789012345.6"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (5e-324, "5e-324"),
            (-273.154, "-273.154"),
            (f64::INFINITY, "inf"),
        ] {
            assert_eq!(float_repr(v), s, "{v:?}");
        }
    }

    #[test]
    fn reprs_are_pythons() {
        assert_eq!(Item::from("it's").to_string(), "\"it's\"");
        assert_eq!(Item::from("a\n'\"").to_string(), "'a\\n\\'\"'");
        assert_eq!(Item::from(&b"\x00a\xff"[..]).to_string(), "b'\\x00a\\xff'");
        assert_eq!(Item::from("é").to_string(), "'é'");
    }

    #[test]
    fn python_equality() {
        assert!(python_eq(&Item::Int(1), &Item::Bool(true)));
        assert!(python_eq(&Item::Float(1.0), &Item::Int(1)));
        assert!(!python_eq(&Item::Float(f64::NAN), &Item::Float(f64::NAN)));
        assert!(!python_eq(
            &Item::Int(i64::MAX),
            &Item::Float(9_223_372_036_854_775_808.0)
        ));
        assert!(!python_eq(&Item::from("a"), &Item::from(&b"a"[..])));
        assert!(python_eq(&Item::None, &Item::None));
    }

    #[test]
    fn formats_parse_as_structs() {
        assert_eq!(Format::parse("16s"), Some(Format::Bytes(16)));
        assert_eq!(Format::parse("s"), Some(Format::Bytes(1)));
        assert_eq!(Format::parse("xs"), None);
        assert_eq!(Format::parse("i"), None);
        assert_eq!(Format::parse(""), None);
    }
}
