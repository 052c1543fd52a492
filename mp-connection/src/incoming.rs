//! `Incoming`: a listener's accepted connections, their handshakes run concurrently.
//!
//! [`Listener::accept`] runs the handshake inline, as CPython's does, so one client that
//! connects and says nothing holds every other for the whole handshake timeout. `Incoming`
//! accepts sockets as they arrive and runs each handshake on a thread of its own; the caller
//! gets the connections whose handshake completed, in the order they completed. A silent or
//! slow client costs one parked thread until its handshake timeout, and delays nobody.
//!
//! The threads share a queue of finished connections with the iterator, and wake it through a
//! pipe, so a caller waits on the listening socket and on finished handshakes in one `poll`.

use std::collections::VecDeque;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rustix::event::PollFlags;
use rustix::io::Errno;
use rustix::pipe::PipeFlags;

use mp_core::{Connection, Deadline};

use crate::error::{Error, Result};
use crate::listener::{Listener, Setup};

/// How many handshakes an [`Incoming`] runs at once by default. Past it, new clients wait in
/// the kernel's queue until a handshake finishes.
pub const DEFAULT_MAX_HANDSHAKES: usize = 1024;

/// The stack of a handshake thread: the handshake keeps its buffers on the heap.
const HANDSHAKE_STACK: usize = 256 << 10;

/// The connections a [`Listener`] accepts, each handed out once its handshake has completed.
///
/// Beyond Python (CPython has only the inline `accept`). Made by [`Listener::incoming`]. As an
/// [`Iterator`] it yields `Result<Connection>` forever, like `std::net::Incoming`; an `Err` is
/// the listener's own (an OS error of `accept`, [`Error::Closed`]), never a client's. A client
/// whose handshake fails (a wrong key, silence past the handshake timeout, garbage) is closed,
/// logged (`log::info!`) and counted in [`rejected`](Self::rejected), and the next is served.
/// [`accept`](Self::accept), [`accept_timeout`](Self::accept_timeout) and
/// [`accept_deadline`](Self::accept_deadline) follow the stack's timeout contract.
///
/// A listener without a key has no handshake; its connections are handed out as accepted.
/// Dropping an `Incoming` leaves the handshakes still running to finish on their threads, and
/// closes the connections they make.
///
/// ```
/// use std::thread;
/// use mp_connection::{Client, Listener};
///
/// let listener = Listener::bind(None, None, Some(b"key"))?;
/// let address = listener.address().clone();
/// // A client that connects and says nothing...
/// let _silent = std::os::unix::net::UnixStream::connect(address.to_string())?;
/// let client = thread::spawn(move || Client::connect(&address, Some(b"key")));
/// // ...does not delay the next one.
/// let mut conn = listener.incoming()?.accept_timeout(std::time::Duration::from_secs(10))?;
/// conn.send(&"welcome")?;
/// assert_eq!(client.join().unwrap()?.recv::<String>()?, "welcome");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Incoming<'a> {
    listener: &'a Listener,
    shared: Arc<Shared>,
    /// The read end of the pipe the handshake threads write a byte to when they finish.
    wake: OwnedFd,
    max_handshakes: usize,
}

/// What the handshake threads share with the iterator.
struct Shared {
    state: Mutex<State>,
    /// The write end of the wake-up pipe (non-blocking: a full pipe already means "wake up").
    wake: OwnedFd,
}

#[derive(Default)]
struct State {
    ready: VecDeque<Connection>,
    in_flight: usize,
    rejected: u64,
    /// Set by an [`IncomingWaker`]: the next accept returns [`Error::Interrupted`].
    woken: bool,
}

/// Ends an [`Incoming`]'s current or next accept with [`Error::Interrupted`], from any thread:
/// how a server's accept loop is told to stop without a polling timeout. Made by
/// [`Incoming::waker`]; `Clone + Send + Sync`.
#[derive(Clone)]
pub struct IncomingWaker {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for IncomingWaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IncomingWaker").finish_non_exhaustive()
    }
}

impl IncomingWaker {
    /// Interrupts the accept (once: the accept after that waits again).
    pub fn wake(&self) {
        self.shared.lock().woken = true;
        // EAGAIN: a wake-up is pending anyway.
        let _ = rustix::io::write(&self.shared.wake, &[1]);
    }
}

impl std::fmt::Debug for Incoming<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.shared.lock();
        f.debug_struct("Incoming")
            .field("listener", &self.listener)
            .field("ready", &state.ready.len())
            .field("in_flight", &state.in_flight)
            .field("rejected", &state.rejected)
            .finish()
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a finished handshake and wakes the iterator.
    fn finish(&self, result: Result<Connection>) {
        {
            let mut state = self.lock();
            state.in_flight -= 1;
            match result {
                Ok(conn) => state.ready.push_back(conn),
                Err(e) => {
                    state.rejected += 1;
                    log::info!("incoming: client rejected: {e}");
                }
            }
        }
        // EAGAIN: the pipe is full, a wake-up is pending anyway; other errors cannot happen
        // while the read end lives, and after it is gone nobody is waiting.
        let _ = rustix::io::write(&self.wake, &[1]);
    }
}

impl<'a> Incoming<'a> {
    pub(crate) fn new(listener: &'a Listener) -> Result<Self> {
        let (wake, wake_write) = rustix::pipe::pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK)?;
        Ok(Incoming {
            listener,
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
                wake: wake_write,
            }),
            wake,
            max_handshakes: DEFAULT_MAX_HANDSHAKES,
        })
    }

    /// Runs at most `n` handshakes at once (default [`DEFAULT_MAX_HANDSHAKES`]); at the limit,
    /// new clients wait in the kernel's queue. `n = 0` is taken as 1.
    pub fn max_handshakes(mut self, n: usize) -> Self {
        self.max_handshakes = n.max(1);
        self
    }

    /// A handle that interrupts this `Incoming`'s accept from another thread.
    pub fn waker(&self) -> IncomingWaker {
        IncomingWaker {
            shared: Arc::clone(&self.shared),
        }
    }

    /// How many handshakes are running now.
    pub fn pending(&self) -> usize {
        self.shared.lock().in_flight
    }

    /// How many clients failed their handshake so far.
    pub fn rejected(&self) -> u64 {
        self.shared.lock().rejected
    }

    /// Waits for the next connection whose handshake completed.
    ///
    /// Like [`Listener::accept`], but one client's handshake never delays another's. Errors:
    /// the listener's own ([`Error::Closed`], OS errors of `accept`).
    pub fn accept(&mut self) -> Result<Connection> {
        self.accept_until(Deadline::NEVER)
    }

    /// [`accept`](Self::accept), waiting at most `timeout` ([`Error::Timeout`] otherwise).
    pub fn accept_timeout(&mut self, timeout: Duration) -> Result<Connection> {
        self.accept_until(Deadline::after(timeout))
    }

    /// [`accept_timeout`](Self::accept_timeout) with a deadline.
    pub fn accept_deadline(&mut self, deadline: impl Into<Deadline>) -> Result<Connection> {
        self.accept_until(deadline.into())
    }

    fn accept_until(&mut self, deadline: Deadline) -> Result<Connection> {
        loop {
            self.drain_wake();
            let can_start = {
                let mut state = self.shared.lock();
                if std::mem::take(&mut state.woken) {
                    return Err(Error::Interrupted);
                }
                if let Some(conn) = state.ready.pop_front() {
                    return Ok(conn);
                }
                state.in_flight < self.max_handshakes
            };
            let listening = self.listener.fileno()?;
            let mut fds = vec![(self.wake.as_fd(), PollFlags::IN)];
            if can_start {
                fds.push((listening, PollFlags::IN));
            }
            let ready = mp_core::io::wait_any(&fds, deadline)?;
            if ready.is_empty() {
                return Err(Error::Timeout);
            }
            if ready.contains(&1) {
                match self.listener.accept_socket(Deadline::now()) {
                    Ok(sock) => {
                        if let Some(conn) = self.start(sock)? {
                            return Ok(conn);
                        }
                    }
                    // Another thread or process took the client first.
                    Err(Error::Timeout) => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }

    /// Starts the handshake of `sock` on a thread of its own, or returns the connection at once
    /// when the listener has no key.
    fn start(&self, sock: OwnedFd) -> Result<Option<Connection>> {
        let setup: Arc<Setup> = Arc::clone(self.listener.setup());
        if !setup.authenticates() {
            return match setup.run(sock) {
                Ok(conn) => Ok(Some(conn)),
                Err(e) => {
                    log::info!("incoming: client rejected: {e}");
                    self.shared.lock().rejected += 1;
                    Ok(None)
                }
            };
        }
        self.shared.lock().in_flight += 1;
        let shared = Arc::clone(&self.shared);
        let spawned = std::thread::Builder::new()
            .name("mp-handshake".into())
            .stack_size(HANDSHAKE_STACK)
            .spawn(move || shared.finish(setup.run(sock)));
        if let Err(e) = spawned {
            // The socket went down with the closure: that client is dropped, not the server.
            let mut state = self.shared.lock();
            state.in_flight -= 1;
            state.rejected += 1;
            log::warn!("incoming: cannot start a handshake thread, client dropped: {e}");
        }
        Ok(None)
    }

    /// Empties the wake-up pipe (its bytes only say "look at the queue").
    fn drain_wake(&self) {
        let mut buf = [0u8; 64];
        loop {
            match rustix::io::read(&self.wake, &mut buf) {
                Ok(n) if n == buf.len() => continue,
                Err(Errno::INTR) => continue,
                _ => return,
            }
        }
    }
}

impl Iterator for Incoming<'_> {
    type Item = Result<Connection>;

    /// [`accept`](Incoming::accept): never `None`.
    fn next(&mut self) -> Option<Result<Connection>> {
        Some(self.accept())
    }
}
