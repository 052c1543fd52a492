//! Deterministic test data.

use std::fmt::Debug;

use mp_core::codec::Bytes;

/// xorshift64*: a small deterministic generator, seeded per test or per loop iteration so a
/// failure can be replayed; the same seed gives the same stream in a parent and its child.
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed` (any value, zero included).
    pub fn new(seed: u64) -> Rng {
        let mut r = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        r.next_u64();
        r
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// Integers at every boundary of MessagePack's integer forms (positive fixint, `uint 8` to
/// `uint 64`, negative fixint, `int 8` to `int 64`), each with its two neighbours, as `i128`:
/// filter them through `T::try_from` for the values of type `T`.
pub fn int_form_edges() -> Vec<i128> {
    let mut v = vec![0i128];
    for edge in [
        127i128,
        1 << 8,
        1 << 16,
        1 << 32,
        1 << 63,
        1 << 64,
        -32,
        -(1 << 7),
        -(1 << 15),
        -(1 << 31),
        -(1 << 63),
    ] {
        v.extend([edge - 1, edge, edge + 1]);
    }
    v
}

/// `len` bytes determined by `seed`: a torn, shifted or mixed-up item does not match them.
pub fn pattern(seed: u64, len: usize) -> Bytes {
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ len as u64);
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        let word = rng.next_u64().to_le_bytes();
        let take = (len - out.len()).min(8);
        out.extend_from_slice(&word[..take]);
    }
    Bytes(out)
}

/// A large item that is cheap to build and to check even in a debug build: `len` bytes of
/// `fill`, with the seed in the first and the last 8 bytes (`len >= 16`).
pub fn big_item(seed: u64, len: usize, fill: u8) -> Bytes {
    let mut v = vec![fill; len];
    v[..8].copy_from_slice(&seed.to_le_bytes());
    v[len - 8..].copy_from_slice(&seed.to_le_bytes());
    Bytes(v)
}

/// Whether `item` is exactly `big_item(seed, len, fill)` (compared with memcmp, not byte by
/// byte).
pub fn is_big_item(item: &Bytes, seed: u64, len: usize, fill: u8) -> bool {
    let v = &item.0;
    v.len() == len
        && v[..8] == seed.to_le_bytes()
        && v[len - 8..] == seed.to_le_bytes()
        && v[8..len - 8] == vec![fill; len - 16][..]
}

/// `Debug` for a result without its (possibly huge) value.
pub fn brief<T, E: Debug>(r: &Result<T, E>) -> String {
    match r {
        Ok(_) => "Ok(..)".into(),
        Err(e) => format!("Err({e:?})"),
    }
}

/// Asserts that `r` is `Err(pattern)`, showing the value otherwise; the rest of the arguments
/// format what the test calls the call.
#[macro_export]
macro_rules! assert_err {
    ($r:expr, $pat:pat, $($what:tt)+) => {{
        let r = $r;
        assert!(
            matches!(r, Err($pat)),
            "{}: expected Err({}), got {:?}",
            format!($($what)+),
            stringify!($pat),
            r
        );
    }};
}
