//! The codec: any serde value to bytes and back, as MessagePack (rmp-serde, compact form).

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::Result;

pub mod ints;

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
    // Room for a small message at once: growing from empty took three reallocations for a
    // pool task's 40 bytes.
    let mut buf = Vec::with_capacity(64);
    encode_into(value, &mut buf)?;
    Ok(buf)
}

/// The deepest nesting of arrays, maps and enum variants [`decode`] accepts (serde_json's
/// limit is 128).
pub const MAX_DEPTH: usize = 256;

/// Decodes a value encoded by [`encode`].
///
/// Python: `pickle.loads`. Bad or truncated bytes give [`Error::Codec`](crate::Error::Codec),
/// never a panic; so do values nested deeper than [`MAX_DEPTH`] arrays and maps, and types
/// that recurse more than [`MAX_CALLS`] deep (see `depth`).
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    decode_seed(std::marker::PhantomData::<T>, bytes)
}

/// [`decode`] through a seed (serde's `DeserializeSeed`): for a decode that needs state, such
/// as appending a sequence's items to an existing vector. The same limits apply.
pub fn decode_seed<'de, S: serde::de::DeserializeSeed<'de>>(
    seed: S,
    bytes: &'de [u8],
) -> Result<S::Value> {
    let mut de = rmp_serde::Deserializer::from_read_ref(bytes);
    Ok(crate::depth::deserialize_seed_limited(
        seed, &mut de, MAX_DEPTH, MAX_CALLS,
    )?)
}

/// Decodes the value at the start of `bytes` (more may follow it); returns it and how many
/// bytes it took. The same limits as [`decode`] apply. Beyond Python: for a message whose
/// tail is read another way (a pool task's arguments, after its function; see [`ints`]).
pub fn decode_prefix<T: DeserializeOwned>(bytes: &[u8]) -> Result<(T, usize)> {
    let mut de = rmp_serde::Deserializer::new(std::io::Cursor::new(bytes));
    let value = crate::depth::deserialize_seed_limited(
        std::marker::PhantomData::<T>,
        &mut de,
        MAX_DEPTH,
        MAX_CALLS,
    )?;
    let used = usize::try_from(de.position()).unwrap_or(usize::MAX);
    Ok((value, used))
}

/// How deeply the options and newtypes of one decode may nest (each `Some` and each newtype's
/// content counts one): a few per level of [`MAX_DEPTH`] (an option, a newtype around each
/// container), and no more, so that a
/// recursive type that consumes no byte per level (`struct L(Option<Box<L>>)` from the single
/// byte `0x01`) fails instead of overflowing the stack (see `depth`).
pub const MAX_CALLS: usize = 4 * MAX_DEPTH;

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
