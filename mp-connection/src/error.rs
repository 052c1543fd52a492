//! The crate's error type: Python's exceptions from `multiprocessing.connection` as variants.

use crate::address::Address;

/// Every error of `mp-connection`.
///
/// Python raises `AuthenticationError`, `OSError`, `EOFError`, `TimeoutError` and `ValueError`
/// from `multiprocessing.connection`; each is a variant here, and the errors of the
/// [`Connection`](mp_core::Connection) underneath arrive as [`Error::Core`]. `Display` is
/// lowercase. The `is_*` helpers look through [`Error::Core`] too, so
/// `e.is_timeout()` is true whichever layer timed out.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The handshake failed: a wrong key on either side, or a peer that does not speak the
    /// protocol (Python: `multiprocessing.AuthenticationError`).
    #[error("authentication failed: {0}")]
    Authentication(String),
    /// A blocking call ran out of time: `accept_timeout`, a connect timeout, or a handshake
    /// that did not finish in time (Python: `TimeoutError` / `socket.timeout`).
    #[error("timed out")]
    Timeout,
    /// The address is already bound by another socket (Python: `OSError` with `EADDRINUSE`).
    #[error("address already in use: {0}")]
    AddressInUse(Address),
    /// A string that is not an address, or an address this platform cannot use (Python:
    /// `ValueError("address type of ... unrecognized")`).
    #[error("invalid address: {0}")]
    InvalidAddress(String),
    /// The listener was closed by this handle (Python: `OSError("listener is closed")`).
    #[error("{0} is closed")]
    Closed(&'static str),
    /// An [`Incoming`](crate::Incoming)'s accept was ended by its
    /// [`IncomingWaker`](crate::IncomingWaker) (beyond Python: how a server's accept loop is
    /// told to stop).
    #[error("accept interrupted by a waker")]
    Interrupted,
    /// An error of the connection layer (`mp_core`): end of file, a message over the size
    /// limit, a malformed frame, ...
    #[error(transparent)]
    Core(mp_core::Error),
    /// An operating-system error (Python: `OSError`).
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    /// True for [`Error::Authentication`] (Python: `AuthenticationError`).
    pub fn is_authentication(&self) -> bool {
        matches!(self, Error::Authentication(_))
    }

    /// True for [`Error::Timeout`], and for a timeout of the connection layer.
    pub fn is_timeout(&self) -> bool {
        match self {
            Error::Timeout => true,
            Error::Core(e) => e.is_timeout(),
            _ => false,
        }
    }

    /// True when the peer closed the connection before a whole message arrived (Python:
    /// `EOFError`).
    pub fn is_eof(&self) -> bool {
        matches!(self, Error::Core(e) if e.is_eof())
    }

    /// True for [`Error::AddressInUse`].
    pub fn is_address_in_use(&self) -> bool {
        matches!(self, Error::AddressInUse(_))
    }

    /// True for [`Error::Closed`], and for an operation on a closed connection.
    pub fn is_closed(&self) -> bool {
        matches!(
            self,
            Error::Closed(_) | Error::Core(mp_core::Error::Closed(_))
        )
    }

    /// True when the peer announced a message longer than this end accepts (Python:
    /// `OSError("bad message length")`).
    pub fn is_message_too_long(&self) -> bool {
        matches!(self, Error::Core(mp_core::Error::MessageTooLong { .. }))
    }
}

impl From<mp_core::Error> for Error {
    /// Keeps one variant per meaning: a core timeout becomes [`Error::Timeout`] and a core OS
    /// error [`Error::Io`]; everything else is wrapped in [`Error::Core`].
    fn from(e: mp_core::Error) -> Self {
        match e {
            mp_core::Error::Timeout => Error::Timeout,
            mp_core::Error::Io(io) => Error::Io(io),
            other => Error::Core(other),
        }
    }
}

impl From<rustix::io::Errno> for Error {
    fn from(e: rustix::io::Errno) -> Self {
        Error::Io(e.into())
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
