//! Errors of the queues.

/// Every error of `mp-queue`; each variant names the Python exception it stands for.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `get_nowait`/`get_timeout` found no item (Python: `queue.Empty`).
    #[error("queue is empty")]
    Empty,
    /// `put_nowait`/`put_timeout` found no room (Python: `queue.Full`).
    #[error("queue is full")]
    Full,
    /// This handle was closed with `close()` (Python: `ValueError("Queue ... is closed")`).
    #[error("queue is closed")]
    Closed,
    /// An item's encoding is larger than the queue's whole data area.
    #[error("item too large for the queue ({capacity} bytes of data area)")]
    TooLarge {
        /// The size of the data area.
        capacity: u64,
    },
    /// `task_done()` called more times than items were put (Python: `ValueError`).
    #[error("task_done() called too many times")]
    TaskDone,
    /// An item could not be encoded (nothing was put) or decoded (the item was consumed).
    #[error("codec error: {0}")]
    Codec(String),
    /// The shared ring is not in a state this library writes (never expected).
    #[error("corrupt queue: {0}")]
    Corrupt(String),
    /// Creating or transferring the shared memory failed.
    #[error(transparent)]
    Core(#[from] mp_core::Error),
    /// Creating the queue's locks failed.
    #[error(transparent)]
    Sync(#[from] mp_sync::Error),
}

impl Error {
    /// True for [`Error::Empty`].
    pub fn is_empty(&self) -> bool {
        matches!(self, Error::Empty)
    }
    /// True for [`Error::Full`].
    pub fn is_full(&self) -> bool {
        matches!(self, Error::Full)
    }
    /// True for [`Error::Closed`].
    pub fn is_closed(&self) -> bool {
        matches!(self, Error::Closed)
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
