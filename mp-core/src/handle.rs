//! Handle transfer: file descriptors inside serialized values.
//!
//! A shared object (a `Connection`, a lock's segment, ...) serializes its fd with
//! [`serialize_fd`]. That only works inside a transfer: while a value is being sent to a child
//! or over a duplex `Connection`, the fds it names are collected ([`collect_handles`]) and travel
//! beside the bytes (inherited by a child, or as `SCM_RIGHTS`); the bytes carry only each fd's
//! index. On arrival [`with_handles`] makes the received fds available to [`deserialize_fd`].
//! Outside a transfer both fail with a clear error instead of sending a meaningless number.

use std::cell::RefCell;
use std::fmt;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use serde::de::{self, Deserializer, Visitor};
use serde::ser::{self, Serializer};

/// Marks handle errors that cross serde as custom messages; [`crate::Error`] restores the variant.
pub(crate) const HANDLE_ERROR_PREFIX: &str = "handle transfer: ";
const HANDLE_NAME: &str = "__mp_handle";

thread_local! {
    static SENDING: RefCell<Option<Vec<OwnedFd>>> = const { RefCell::new(None) };
    static RECEIVING: RefCell<Option<Receiving>> = const { RefCell::new(None) };
}

/// The fds of a message being decoded, and whether its sender is a process of this program.
struct Receiving {
    fds: Vec<Option<OwnedFd>>,
    trusted: bool,
}

/// Runs `f` (which serializes values holding handles) and returns its result with the fds that
/// the values named, in index order.
///
/// Contexts nest: an inner call collects into its own list.
pub fn collect_handles<R>(f: impl FnOnce() -> R) -> (R, Vec<OwnedFd>) {
    let saved = SENDING.with(|s| s.replace(Some(Vec::new())));
    let result = f();
    let fds = SENDING.with(|s| s.replace(saved)).unwrap_or_default();
    (result, fds)
}

/// Runs `f` (which deserializes values holding handles) with `fds` as the received handles,
/// for bytes that come from a process of this program (a child's bootstrap, a `pipe()`).
/// Returns `f`'s result and the fds that no value claimed (the caller drops or reports them).
pub fn with_handles<R>(fds: Vec<OwnedFd>, f: impl FnOnce() -> R) -> (R, Vec<OwnedFd>) {
    with_received(fds, true, f)
}

/// [`with_handles`] for bytes from a sender that may not be part of this program (a socket
/// accepted from anyone): values that carry code identities ([`Function`](crate::Function))
/// refuse to decode.
pub fn with_received<R>(
    fds: Vec<OwnedFd>,
    trusted: bool,
    f: impl FnOnce() -> R,
) -> (R, Vec<OwnedFd>) {
    let receiving = Receiving {
        fds: fds.into_iter().map(Some).collect(),
        trusted,
    };
    let saved = RECEIVING.with(|r| r.replace(Some(receiving)));
    let result = f();
    let left = RECEIVING
        .with(|r| r.replace(saved))
        .map(|r| r.fds)
        .unwrap_or_default()
        .into_iter()
        .flatten()
        .collect();
    (result, left)
}

/// True while decoding bytes whose sender is a process of this program (see
/// [`with_received`]).
pub fn receiving_trusted() -> bool {
    RECEIVING.with(|r| r.borrow().as_ref().is_some_and(|r| r.trusted))
}

/// True while [`collect_handles`] is running on this thread.
pub fn is_collecting() -> bool {
    SENDING.with(|s| s.borrow().is_some())
}

/// Serializes `fd` as a handle: inside [`collect_handles`] a duplicate of it joins the transfer
/// and its index is written; elsewhere this is an error naming `what`.
pub fn serialize_fd<S: Serializer>(
    fd: BorrowedFd<'_>,
    what: &str,
    s: S,
) -> Result<S::Ok, S::Error> {
    let index = SENDING.with(|sending| {
        let mut sending = sending.borrow_mut();
        let Some(list) = sending.as_mut() else {
            return Err(format!(
                "{HANDLE_ERROR_PREFIX}a {what} can only be serialized while it is sent to a child \
                 process or over a duplex Connection"
            ));
        };
        let dup = fd.try_clone_to_owned().map_err(|e| {
            format!("{HANDLE_ERROR_PREFIX}cannot duplicate the fd of a {what}: {e}")
        })?;
        list.push(dup);
        u32::try_from(list.len() - 1).map_err(|_| format!("{HANDLE_ERROR_PREFIX}too many handles"))
    });
    match index {
        Ok(index) => s.serialize_newtype_struct(HANDLE_NAME, &index),
        Err(msg) => Err(ser::Error::custom(msg)),
    }
}

/// Deserializes a handle written by [`serialize_fd`], taking ownership of the received fd.
pub fn deserialize_fd<'de, D: Deserializer<'de>>(d: D) -> Result<OwnedFd, D::Error> {
    let index = d.deserialize_newtype_struct(HANDLE_NAME, IndexVisitor)?;
    RECEIVING.with(|receiving| {
        let mut receiving = receiving.borrow_mut();
        let Some(table) = receiving.as_mut().map(|r| &mut r.fds) else {
            return Err(de::Error::custom(format!(
                "{HANDLE_ERROR_PREFIX}a handle can only be deserialized from a message received \
                 by a child process or over a duplex Connection"
            )));
        };
        table
            .get_mut(index as usize)
            .and_then(Option::take)
            .ok_or_else(|| {
                de::Error::custom(format!(
                    "{HANDLE_ERROR_PREFIX}handle {index} is missing from the message \
                     ({} fds arrived)",
                    table.len()
                ))
            })
    })
}

struct IndexVisitor;

impl<'de> Visitor<'de> for IndexVisitor {
    type Value = u32;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a handle index")
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<u32, D::Error> {
        d.deserialize_u32(self)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u32, E> {
        u32::try_from(v).map_err(|_| E::custom("handle index out of range"))
    }
}

/// An owned fd that serializes as a handle (see the module docs): the building block for
/// shared objects that carry fds through a transfer.
#[derive(Debug)]
pub struct HandleFd(pub OwnedFd);

impl serde::Serialize for HandleFd {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_fd(self.0.as_fd(), "file descriptor", s)
    }
}

impl<'de> serde::Deserialize<'de> for HandleFd {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_fd(d).map(HandleFd)
    }
}
