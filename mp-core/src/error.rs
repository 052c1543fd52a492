//! The crate's error type: one enum whose variants are Python's exceptions.

use std::fmt;

/// A message carried by an error, shown by its length in `Debug` so a huge payload never floods
/// a log.
#[derive(Clone, PartialEq, Eq)]
pub struct Message(pub Vec<u8>);

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Message({} bytes)", self.0.len())
    }
}

/// Every error of `mp-core`; each variant names the Python exception it stands for.
///
/// `Display` is lowercase and says what went wrong and, where it helps, what to do instead.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The other end of a connection was closed (Python: `EOFError`).
    #[error("end of file: the other end of the connection is closed")]
    Eof,
    /// `recv_bytes_into` was given a buffer smaller than the message; the whole message is
    /// carried here (Python: `multiprocessing.BufferTooShort`, whose `args[0]` is the message).
    #[error("buffer too short: the message has {} bytes", .0 .0.len())]
    BufferTooShort(Message),
    /// A message is longer than the receiver accepts (Python: `OSError("bad message length")`).
    /// The connection is no longer readable afterwards, as in Python.
    #[error("bad message length: {length} bytes announced, at most {limit} accepted")]
    MessageTooLong {
        /// The length the peer announced.
        length: u64,
        /// The largest length this receiver accepts.
        limit: u64,
    },
    /// A blocking call ran out of time (Python: `TimeoutError` / a `False` return).
    #[error("timed out")]
    Timeout,
    /// The object was closed by this handle (Python: `OSError("handle is closed")` /
    /// `ValueError` on a closed process).
    #[error("{0} is closed")]
    Closed(&'static str),
    /// An operation this object does not allow, such as reading the write end of a one-way pipe
    /// (Python: `OSError("connection is write-only")`).
    #[error("{0}")]
    NotPermitted(&'static str),
    /// An argument out of range (Python: `ValueError`).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A method called in a state that does not allow it, such as starting a process twice
    /// (Python: `AssertionError` / `ValueError` / `RuntimeError`).
    #[error("{0}")]
    InvalidState(String),
    /// The peer sent bytes that do not follow the wire format.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// A value could not be encoded or decoded (Python: `pickle.PicklingError`).
    #[error("codec error: {0}")]
    Codec(String),
    /// A handle (fd-backed object) was serialized outside a transfer, or a transferred handle was
    /// missing on arrival.
    #[error("handle transfer: {0}")]
    Handle(String),
    /// A capturing closure was asked to run under the spawn or forkserver start method.
    #[error(
        "a closure target can only run under the fork start method; \
         use Process::new(fn, args) for {0}"
    )]
    ClosureNeedsFork(&'static str),
    /// The executable that would run a child is not the binary that sent the function
    /// (function identity check failed).
    #[error("binary mismatch: {0}")]
    BinaryMismatch(String),
    /// A child process failed to return a value: it panicked, called `exit(n)` with `n != 0`,
    /// or was killed by a signal (`exitcode` is Python's: 1 after a panic, `n`, or `-signal`).
    #[error("child process {name} failed with exit code {exitcode}{}", .message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    ProcessFailed {
        /// The process's name.
        name: String,
        /// Python's `exitcode`.
        exitcode: i32,
        /// The panic message, when the child reported one.
        message: Option<String>,
    },
    /// An operating-system error (Python: `OSError`).
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    /// True for [`Error::Eof`].
    pub fn is_eof(&self) -> bool {
        matches!(self, Error::Eof)
    }
    /// True for [`Error::Timeout`].
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout)
    }
}

impl From<rustix::io::Errno> for Error {
    fn from(e: rustix::io::Errno) -> Self {
        Error::Io(e.into())
    }
}

impl From<rmp_serde::encode::Error> for Error {
    fn from(e: rmp_serde::encode::Error) -> Self {
        Error::from_codec(e.to_string())
    }
}

impl From<rmp_serde::decode::Error> for Error {
    fn from(e: rmp_serde::decode::Error) -> Self {
        Error::from_codec(e.to_string())
    }
}

impl Error {
    /// Handle errors travel through serde as custom messages; bring them back to their variant.
    fn from_codec(msg: String) -> Self {
        match msg.strip_prefix(crate::handle::HANDLE_ERROR_PREFIX) {
            Some(rest) => Error::Handle(rest.to_string()),
            None => Error::Codec(msg),
        }
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
