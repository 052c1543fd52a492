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

/// Identifies the running binary: the device, inode, size and modification time of the file
/// behind `/proc/self/exe`. A rebuilt or different executable has a different fingerprint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Fingerprint {
    dev: u64,
    ino: u64,
    size: i64,
    mtime: i64,
    mtime_nsec: i64,
}

/// This process's fingerprint (computed once).
pub(crate) fn fingerprint() -> Result<Fingerprint> {
    static CELL: OnceCell<Fingerprint> = OnceCell::new();
    CELL.get_or_try_init(|| {
        let st = rustix::fs::stat("/proc/self/exe")?;
        Ok(Fingerprint {
            dev: st.st_dev,
            ino: st.st_ino,
            size: st.st_size,
            mtime: st.st_mtime,
            mtime_nsec: st.st_mtime_nsec as i64,
        })
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
