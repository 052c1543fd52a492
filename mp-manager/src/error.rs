//! The one error type of the manager crate.

use crate::protocol::RemoteKind;

/// Errors of managers and proxies.
///
/// Python: the exceptions a manager's proxies raise: the server's own exception re-raised
/// (`KeyError`, `IndexError`, `ValueError`... here [`Error::Remote`] with its
/// [`RemoteKind`]), `EOFError`/`ConnectionError` when the server is gone (here
/// [`Error::ServerGone`], at once, never a hang), `AuthenticationError`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The method failed on the server; the server and the connection go on. Python: the
    /// exception re-raised by `BaseProxy._callmethod` (`convert_to_error`).
    #[error("{kind:?} on the manager's server: {message}")]
    Remote {
        /// What kind of failure (Python's exception class).
        kind: RemoteKind,
        /// The server's message.
        message: String,
    },
    /// The server's process is gone (or closed this connection): every call fails at once.
    #[error("the manager's server is gone: {0}")]
    ServerGone(String),
    /// A value did not encode, or a reply did not decode as the proxy's type.
    #[error("codec error: {0}")]
    Codec(String),
    /// Listener or client errors: address, handshake (a wrong key is
    /// [`mp_connection::Error::Authentication`]), timeouts.
    #[error(transparent)]
    Connection(#[from] mp_connection::Error),
    /// Process and connection errors of mp-core.
    #[error(transparent)]
    Core(#[from] mp_core::Error),
    /// A shared memory segment could not be made or attached (the shared-memory manager).
    #[error(transparent)]
    SharedMemory(#[from] mp_shared::Error),
    /// The manager was used in a state that does not allow it (not started, shut down).
    #[error("{0}")]
    InvalidState(String),
}

impl Error {
    /// True for a [`Error::Remote`] of kind `KeyError`.
    pub fn is_key_error(&self) -> bool {
        matches!(
            self,
            Error::Remote {
                kind: RemoteKind::KeyError,
                ..
            }
        )
    }
    /// True for a [`Error::Remote`] of kind `IndexError`.
    pub fn is_index_error(&self) -> bool {
        matches!(
            self,
            Error::Remote {
                kind: RemoteKind::IndexError,
                ..
            }
        )
    }
    /// True for a [`Error::Remote`] of kind `ValueError`.
    pub fn is_value_error(&self) -> bool {
        matches!(
            self,
            Error::Remote {
                kind: RemoteKind::ValueError,
                ..
            }
        )
    }
    /// True for a [`Error::Remote`] of kind `Empty` (a queue's get timed out).
    pub fn is_empty(&self) -> bool {
        matches!(
            self,
            Error::Remote {
                kind: RemoteKind::Empty,
                ..
            }
        )
    }
    /// True for a [`Error::Remote`] of kind `Full` (a queue's put timed out).
    pub fn is_full(&self) -> bool {
        matches!(
            self,
            Error::Remote {
                kind: RemoteKind::Full,
                ..
            }
        )
    }
    /// True when a manager lock was acquired from a process that died holding it (the caller
    /// holds it now).
    pub fn is_owner_died(&self) -> bool {
        matches!(
            self,
            Error::Remote {
                kind: RemoteKind::OwnerDied,
                ..
            }
        )
    }
    /// True for a [`Error::Remote`] of kind `BrokenBarrier`.
    pub fn is_broken_barrier(&self) -> bool {
        matches!(
            self,
            Error::Remote {
                kind: RemoteKind::BrokenBarrier,
                ..
            }
        )
    }
    /// True for any [`Error::Remote`].
    pub fn is_remote(&self) -> bool {
        matches!(self, Error::Remote { .. })
    }
    /// True for [`Error::ServerGone`].
    pub fn is_server_gone(&self) -> bool {
        matches!(self, Error::ServerGone(_))
    }
    /// True when the server refused our key.
    pub fn is_authentication(&self) -> bool {
        matches!(self, Error::Connection(e) if e.is_authentication())
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
