//! The wire protocol between proxies and a manager's server.
//!
//! Every message is one frame of the stack's `Connection` (CPython's framing), encoded as
//! MessagePack (rmp-serde) of the types below. A client sends a [`Request`], the server answers
//! with exactly one [`Reply`], in order, on the same connection. Values are dynamically typed
//! ([`rmpv::Value`]) so that the server can serve clients built from another program: the
//! server never decodes a Rust type of the client's, and code pointers never cross. Objects are
//! named by a [`Token`] (`typeid`, `id`; the address is the connection's own).
//!
//! | request | reply | CPython |
//! |---|---|---|
//! | `Create { typeid, args }` | `Proxy(token)`, one reference held by this connection | `create` → `#RETURN` (id, exposed) |
//! | `Call { id, method, args }` | `Return(value)` or `Error { kind, message }` | `#RETURN`, `#ERROR` |
//! | `Share { id }` | `Return(nil)`: one reference held for a proxy in transit | `incref` before pickling |
//! | `Adopt { id }` | `Return(nil)`: this connection takes over one reference in transit | `incref` on unpickling |
//! | `Pin { id }` | `Return(nil)`: one reference held while the server runs (a proxy stored in another object) | a proxy unpickled on the server |
//! | `IncRef { id }` | `Return(nil)`: one more reference for this connection (a forked child's copy) | `incref` after fork |
//! | `NumObjects` | `Return(n)`: live objects on the server | `number_of_objects` (debug) |
//! | `Shutdown` | `Return(nil)`, then the server stops | `shutdown` |
//!
//! References: each connection holds the references it created or adopted, and the server
//! drops them all when the connection closes, whether its process exited, dropped its proxy
//! or was killed. An object is freed when its last reference goes.

use rmpv::Value;
use serde::{Deserialize, Serialize};

/// A request from a proxy (or manager) to the server.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Request {
    /// Makes an object of `typeid` from `args`.
    Create {
        /// The registered type (`dict`, `list`, `Namespace`, ...).
        typeid: String,
        /// The constructor's arguments.
        args: Vec<Value>,
    },
    /// Calls `method` of object `id` with `args`.
    Call {
        /// The object.
        id: u64,
        /// The method's name (Python's: `__getitem__`, `append`, ...).
        method: String,
        /// Its arguments.
        args: Vec<Value>,
    },
    /// Holds one reference to `id` for a proxy being sent to another process.
    Share {
        /// The object.
        id: u64,
    },
    /// Takes over, for this connection, one reference held by a `Share`.
    Adopt {
        /// The object.
        id: u64,
    },
    /// Holds one reference to `id` for as long as the server runs: a proxy stored inside
    /// another object (a list proxy as a dict's value).
    Pin {
        /// The object.
        id: u64,
    },
    /// Takes one more reference for this connection (a proxy copied into a forked child).
    IncRef {
        /// The object.
        id: u64,
    },
    /// Asks how many objects the server holds.
    NumObjects,
    /// Stops the server.
    Shutdown,
}

/// The server's answer to one [`Request`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Reply {
    /// Python's `#RETURN`: the method's result.
    Return(Value),
    /// Python's `#ERROR`: the method failed; the connection goes on.
    Error {
        /// Python's exception class.
        kind: RemoteKind,
        /// Its message.
        message: String,
    },
    /// Python's `#PROXY`: a new object, one reference held by this connection.
    Proxy(Token),
}

/// The kind of a failure on the server: Python's exception classes, as
/// [`Error::Remote`](crate::Error::Remote) carries them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RemoteKind {
    /// Python's `KeyError`: no such key.
    KeyError,
    /// Python's `IndexError`: no such index.
    IndexError,
    /// Python's `ValueError`: no such value (`list.remove`, `list.index`).
    ValueError,
    /// Python's `TypeError`: arguments of the wrong type or number.
    TypeError,
    /// Python's `AttributeError`: no such method, or one not exposed, or no such attribute.
    AttributeError,
    /// Python's `queue.Empty`: nothing to get before the timeout.
    Empty,
    /// Python's `queue.Full`: no room before the timeout.
    Full,
    /// Python's `threading.BrokenBarrierError`.
    BrokenBarrier,
    /// The lock was acquired, but its previous owner died holding it (beyond Python; mp-sync's
    /// `OwnerDied`). The caller holds the lock.
    OwnerDied,
    /// Anything else (an unknown type id, an object already freed...).
    Other,
}

/// Names an object on a server. Python: `multiprocessing.managers.Token(typeid, address, id)`
/// (the address is the manager's, known to every proxy).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Token {
    /// The registered type.
    pub typeid: String,
    /// The object's id on its server.
    pub id: u64,
}
