//! The codec: any serde value to bytes and back, as MessagePack (rmp-serde, compact form).

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::Result;

/// Encodes `value` as MessagePack, appending to `buf`.
///
/// Python: `pickle.dumps` (the codec `Connection.send` uses). Fails with [`Error::Codec`] when the
/// value cannot be serialized, and with [`Error::Handle`] when it holds a handle (a
/// `Connection`, a lock, ...) outside a transfer.
///
/// [`Error::Codec`]: crate::Error::Codec
/// [`Error::Handle`]: crate::Error::Handle
pub fn encode_into<T: Serialize + ?Sized>(value: &T, buf: &mut Vec<u8>) -> Result<()> {
    let len = buf.len();
    let result = rmp_serde::encode::write(buf, value);
    if result.is_err() {
        buf.truncate(len);
    }
    Ok(result?)
}

/// Encodes `value` as MessagePack into a new buffer. See [`encode_into`].
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    encode_into(value, &mut buf)?;
    Ok(buf)
}

/// The deepest nesting of arrays and maps [`decode`] accepts (serde_json's limit is 128).
pub const MAX_DEPTH: usize = 256;

/// Decodes a value encoded by [`encode`].
///
/// Python: `pickle.loads`. Bad or truncated bytes give [`Error::Codec`](crate::Error::Codec),
/// never a panic; so do values nested deeper than [`MAX_DEPTH`] arrays and maps.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    check_depth(bytes)?;
    let mut de = rmp_serde::Deserializer::from_read_ref(bytes);
    Ok(crate::depth::deserialize_limited(&mut de, MAX_CALLS)?)
}

/// How deeply the `deserialize` calls of one decode may nest: a few per level of
/// [`MAX_DEPTH`] (an option, a box, a newtype around each container), and no more, so that a
/// recursive type that consumes no byte per level (`struct L(Option<Box<L>>)` from the single
/// byte `0x01`) fails instead of overflowing the stack (see `depth`).
pub const MAX_CALLS: usize = 4 * MAX_DEPTH;

/// Refuses a value whose arrays and maps nest deeper than [`MAX_DEPTH`], before serde recurses
/// into it.
///
/// rmp-serde's own depth limit (1024) counts arrays and maps read as sequences and structs, but
/// not the one-entry map of an enum variant, so a recursive enum (`enum Expr { Neg(Box<Expr>),
/// .. }`) recursed once per `{0: ...}` in the input, without limit: a peer's message of a few
/// KiB overflowed the stack and killed the process (found while writing the `codec` fuzz target;
/// its input is `fuzz/regressions/codec/deeply_nested_enum_overflows_the_stack`). This walk
/// is iterative and only looks at markers and lengths; what it does not understand (a bad
/// marker, truncated bytes) it leaves to rmp-serde to report.
fn check_depth(bytes: &[u8]) -> Result<()> {
    // Items still to read in each open array or map (a map's entries count twice).
    let mut open: Vec<u64> = Vec::new();
    let mut at = 0;
    loop {
        let Some(&marker) = bytes.get(at) else {
            return Ok(());
        };
        at += 1;
        let be = |at: usize, n: usize| -> Option<u64> {
            let field = bytes.get(at..at + n)?;
            Some(field.iter().fold(0u64, |v, &b| v << 8 | u64::from(b)))
        };
        // (bytes to skip after the marker, items of a new array or map)
        let (skip, items) = match marker {
            0x00..=0x7f | 0xc0 | 0xc2 | 0xc3 | 0xe0..=0xff => (0, None),
            0x80..=0x8f => (0, Some(u64::from(marker & 0x0f) * 2)),
            0x90..=0x9f => (0, Some(u64::from(marker & 0x0f))),
            0xa0..=0xbf => (u64::from(marker & 0x1f), None),
            0xcc | 0xd0 => (1, None),
            0xcd | 0xd1 => (2, None),
            0xca | 0xce | 0xd2 => (4, None),
            0xcb | 0xcf | 0xd3 => (8, None),
            0xd4..=0xd8 => (1 + (1 << (marker - 0xd4)), None),
            0xc4 | 0xd9 => (1 + be(at, 1).unwrap_or(0), None),
            0xc5 | 0xda => (2 + be(at, 2).unwrap_or(0), None),
            0xc6 | 0xdb => (4 + be(at, 4).unwrap_or(0), None),
            0xc7 => (2 + be(at, 1).unwrap_or(0), None),
            0xc8 => (3 + be(at, 2).unwrap_or(0), None),
            0xc9 => (5 + be(at, 4).unwrap_or(0), None),
            0xdc => (2, be(at, 2)),
            0xdd => (4, be(at, 4)),
            0xde => (2, be(at, 2).map(|n| n * 2)),
            0xdf => (4, be(at, 4).map(|n| n * 2)),
            // 0xc1 is never used: rmp-serde reports it.
            0xc1 => return Ok(()),
        };
        let Some(next) = usize::try_from(skip).ok().and_then(|s| at.checked_add(s)) else {
            return Ok(());
        };
        at = next;
        // This item fills a slot of the innermost open container.
        if let Some(left) = open.last_mut() {
            *left -= 1;
        }
        match items {
            Some(n) if n > 0 => {
                if open.len() == MAX_DEPTH {
                    return Err(crate::Error::Codec(format!(
                        "the value nests arrays and maps more than {MAX_DEPTH} deep"
                    )));
                }
                open.push(n);
            }
            _ => {}
        }
        while open.last() == Some(&0) {
            open.pop();
        }
        if open.is_empty() {
            // One whole value: rmp-serde reads no further either.
            return Ok(());
        }
    }
}

/// A byte buffer that encodes as one MessagePack `bin` (not an array of numbers).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Bytes(pub Vec<u8>);

impl Serialize for Bytes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Bytes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Bytes;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> std::result::Result<Bytes, E> {
                Ok(Bytes(v.to_vec()))
            }
            fn visit_byte_buf<E: serde::de::Error>(
                self,
                v: Vec<u8>,
            ) -> std::result::Result<Bytes, E> {
                Ok(Bytes(v))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> std::result::Result<Bytes, A::Error> {
                let mut out = Vec::new();
                while let Some(b) = seq.next_element::<u8>()? {
                    out.push(b);
                }
                Ok(Bytes(out))
            }
        }
        d.deserialize_byte_buf(V)
    }
}
