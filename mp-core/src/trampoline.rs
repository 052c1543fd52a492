//! Calling a `fn(A) -> R` by its identity in a child: the trampoline decodes the arguments
//! (and their handles), rebuilds the function pointer from its address and encodes the result.
#![allow(unsafe_code)]

use std::os::fd::OwnedFd;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::sys::fn_from_addr;

/// The shape of every trampoline: target address, encoded arguments and their fds in, encoded
/// result out.
pub(crate) type Trampoline = unsafe fn(usize, &[u8], Vec<OwnedFd>) -> crate::Result<Vec<u8>>;

/// Decodes `A`, calls the `fn(A) -> R` at `target`, encodes its `R`. A child reaches the
/// right monomorphization of this function through its offset (see `identity`).
///
/// # Safety
/// `target` must be the address of a `fn(A) -> R` in this binary.
pub(crate) unsafe fn trampoline<A: DeserializeOwned, R: Serialize>(
    target: usize,
    args: &[u8],
    fds: Vec<OwnedFd>,
) -> crate::Result<Vec<u8>> {
    let (args, _unclaimed) = crate::handle::with_handles(fds, || crate::codec::decode::<A>(args));
    // SAFETY: guaranteed by the caller.
    let f: fn(A) -> R = unsafe { fn_from_addr(target) };
    crate::codec::encode(&f(args?))
}

/// Calls the trampoline at offset `trampoline` with the target at offset `target`.
pub(crate) fn call_trampoline(
    _verified: &crate::identity::Verified,
    trampoline: i64,
    target: i64,
    args: &[u8],
    fds: Vec<OwnedFd>,
) -> crate::Result<Vec<u8>> {
    use crate::identity::addr_of;
    // SAFETY: `_verified` proves the sender is this binary; the sender took `trampoline` from a
    // `Trampoline` (a monomorphization of `trampoline::<A, R>`) and `target` from the
    // `fn(A) -> R` that the same `Process::new` call paired with it.
    unsafe {
        let t: Trampoline = fn_from_addr(addr_of(trampoline));
        t(addr_of(target), args, fds)
    }
}

/// The function of type `F` at `offset` from the identity anchor, for a sender verified to be
/// this binary that took the offset from an `F` (a `Function` whose type hash matched, or a
/// fork server's preload `fn()`).
pub(crate) fn fn_at<F: Copy>(_verified: &crate::identity::Verified, offset: i64) -> F {
    // SAFETY: `_verified` proves the offset was taken in this very binary, from a function
    // of type `F`, and the message came from a process of this program. The callers make sure
    // of the type: `Function`'s deserializer compares type hashes (and checks
    // `handle::receiving_trusted`); the fork server's preload list is a `Vec<fn()>` converted by
    // its parent, the only sender of its `Hello`.
    unsafe { fn_from_addr(crate::identity::addr_of(offset)) }
}
