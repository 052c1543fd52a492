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

/// Decodes a value encoded by [`encode`].
///
/// Python: `pickle.loads`. Bad or truncated bytes give [`Error::Codec`](crate::Error::Codec),
/// never a panic.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    Ok(rmp_serde::from_slice(bytes)?)
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
