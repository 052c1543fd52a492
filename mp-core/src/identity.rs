//! Function identity: a `fn` pointer crosses into another process as its offset from a fixed
//! anchor in this binary, together with a fingerprint of the binary. Only the same binary
//! (same file, same build) accepts it; anything else is [`Error::BinaryMismatch`].

use once_cell::sync::OnceCell;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The anchor every offset is measured from. Never inlined, never called.
#[inline(never)]
fn anchor() {}

/// The offset of the function at `addr` from the anchor.
pub(crate) fn offset_of(addr: usize) -> i64 {
    (addr as i64).wrapping_sub(anchor as fn() as usize as i64)
}

/// The address of the function `offset` bytes from the anchor (in this process).
pub(crate) fn addr_of(offset: i64) -> usize {
    (anchor as fn() as usize as i64).wrapping_add(offset) as usize
}

/// Identifies the running binary: a hash of the device, inode, size and modification time of
/// the file behind `/proc/self/exe`. A rebuilt or different executable has a different
/// fingerprint. One `u64` on the wire (9 bytes, not the 45 of the five fields): every task of a
/// pool carries two function identities.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Fingerprint(u64);

/// This process's fingerprint (computed once).
pub(crate) fn fingerprint() -> Result<Fingerprint> {
    use std::hash::{Hash, Hasher};
    static CELL: OnceCell<Fingerprint> = OnceCell::new();
    CELL.get_or_try_init(|| {
        let st = rustix::fs::stat("/proc/self/exe")?;
        // `DefaultHasher::new()` has fixed keys: the same binary hashes the same in every
        // process (two builds of a different toolchain are different binaries anyway).
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (
            st.st_dev,
            st.st_ino,
            st.st_size,
            st.st_mtime,
            st.st_mtime_nsec as i64,
        )
            .hash(&mut h);
        Ok(Fingerprint(h.finish()))
    })
    .copied()
}

/// Proof that a message's function offsets come from this very binary: only [`check`] makes
/// one, and rebuilding a function pointer from an offset requires one.
#[derive(Clone)]
pub(crate) struct Verified {
    _private: (),
}

/// Checks that a sender's fingerprint is ours.
pub(crate) fn check(sender: &Fingerprint) -> Result<Verified> {
    let ours = fingerprint()?;
    if &ours == sender {
        Ok(Verified { _private: () })
    } else {
        Err(Error::BinaryMismatch(format!(
            "this executable ({}) is not the binary that sent the function; a child must run \
             the same executable as its parent (see set_executable)",
            std::fs::read_link("/proc/self/exe")
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        )))
    }
}

/// A function pointer type that a [`Function`] can carry: `fn() -> R`, `fn(A) -> R`,
/// `fn(A, B) -> R`.
pub trait FnPtr: Copy + Send + Sync + 'static {
    /// The function's address.
    fn addr(self) -> usize;
}

impl<R: 'static> FnPtr for fn() -> R {
    fn addr(self) -> usize {
        self as usize
    }
}

impl<A: 'static, R: 'static> FnPtr for fn(A) -> R {
    fn addr(self) -> usize {
        self as usize
    }
}

impl<A: 'static, B: 'static, R: 'static> FnPtr for fn(A, B) -> R {
    fn addr(self) -> usize {
        self as usize
    }
}

/// A function pointer (`fn(A) -> R` and the like) that can be sent to another process of the
/// same program: it travels as its function identity (offset in this binary, the binary's
/// fingerprint, and a hash of its type).
///
/// Python: what pickling a module-level function does (by qualified name). This is how a
/// `Pool` worker started long ago runs `pool.map(f, ..)`, and how a `Barrier`'s action runs in
/// whichever process arrives last.
///
/// A `Function` only serializes inside a handle transfer and only deserializes from a sender
/// that is a process of this program (a child's arguments, a `pipe()`); from any other peer
/// (a socket accepted from anyone) it is an error, never a code pointer. A different binary
/// gives [`Error::BinaryMismatch`], a different type an [`Error::Codec`].
#[derive(Clone, Copy)]
pub struct Function<F: FnPtr> {
    f: F,
}

impl<F: FnPtr> std::fmt::Debug for Function<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Function({:#x})", self.f.addr())
    }
}

impl<F: FnPtr> Function<F> {
    /// Wraps `f` (write `Function::new(f as fn(i32) -> i32)` if inference needs help).
    pub fn new(f: F) -> Self {
        Function { f }
    }

    /// The function itself, to call.
    pub fn get(&self) -> F {
        self.f
    }

    fn type_hash() -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        std::any::TypeId::of::<F>().hash(&mut h);
        h.finish()
    }
}

#[derive(Serialize, Deserialize)]
struct FunctionWire {
    fingerprint: Fingerprint,
    offset: i64,
    type_hash: u64,
}

impl<F: FnPtr> Serialize for Function<F> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::Error as _;
        if !crate::handle::is_collecting() {
            return Err(S::Error::custom(format!(
                "{}a Function can only be serialized while it is sent to a child process or \
                 over a Connection",
                crate::handle::HANDLE_ERROR_PREFIX
            )));
        }
        FunctionWire {
            fingerprint: fingerprint().map_err(S::Error::custom)?,
            offset: offset_of(self.f.addr()),
            type_hash: Self::type_hash(),
        }
        .serialize(s)
    }
}

impl<'de, F: FnPtr> Deserialize<'de> for Function<F> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error as _;
        let wire = FunctionWire::deserialize(d)?;
        if !crate::handle::receiving_trusted() {
            return Err(D::Error::custom(format!(
                "{}a Function can only be received from a process of this program \
                 (not from a socket accepted from anyone)",
                crate::handle::HANDLE_ERROR_PREFIX
            )));
        }
        let verified = check(&wire.fingerprint).map_err(D::Error::custom)?;
        if wire.type_hash != Self::type_hash() {
            return Err(D::Error::custom(format!(
                "the Function received is not a {}",
                std::any::type_name::<F>()
            )));
        }
        Ok(Function {
            f: crate::trampoline::fn_at(&verified, wire.offset),
        })
    }
}
