//! `wait()`: block until any of several connections, listeners, processes or fds is ready.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use mp_core::{Connection, Deadline, Process};
use rustix::event::PollFlags;

use crate::error::{Error, Result};
use crate::listener::Listener;

/// Something [`wait`] can wait on: an object with an fd that becomes readable when the object
/// is ready.
///
/// Python: the objects `multiprocessing.connection.wait` accepts (anything with a `fileno()`,
/// or an integer fd). Implemented for [`Connection`] (a message or end of file is waiting),
/// [`Listener`] (a client is waiting), [`Process`] (the child has ended: its sentinel), and raw
/// fds ([`BorrowedFd`], [`OwnedFd`]); implement it for your own types by returning their fd.
pub trait Waitable {
    /// The fd to poll for readability. Python: `obj.fileno()` (or `Process.sentinel`).
    ///
    /// Fails for a closed object or a process that has not started.
    fn wait_fd(&self) -> Result<BorrowedFd<'_>>;
}

impl Waitable for Connection {
    fn wait_fd(&self) -> Result<BorrowedFd<'_>> {
        Ok(self.fileno()?)
    }
}

impl Waitable for Listener {
    fn wait_fd(&self) -> Result<BorrowedFd<'_>> {
        self.fileno()
    }
}

impl<R> Waitable for Process<R> {
    fn wait_fd(&self) -> Result<BorrowedFd<'_>> {
        Ok(self.sentinel()?)
    }
}

impl Waitable for BorrowedFd<'_> {
    fn wait_fd(&self) -> Result<BorrowedFd<'_>> {
        Ok(self.as_fd())
    }
}

impl Waitable for OwnedFd {
    fn wait_fd(&self) -> Result<BorrowedFd<'_>> {
        Ok(self.as_fd())
    }
}

impl<T: Waitable + ?Sized> Waitable for &T {
    fn wait_fd(&self) -> Result<BorrowedFd<'_>> {
        (**self).wait_fd()
    }
}

impl<T: Waitable + ?Sized> Waitable for Box<T> {
    fn wait_fd(&self) -> Result<BorrowedFd<'_>> {
        (**self).wait_fd()
    }
}

/// Waits until at least one of `objects` is ready, or `timeout` passes; returns the indices of
/// the ready ones, in order (empty on timeout).
///
/// Python: `multiprocessing.connection.wait(object_list, timeout=None)`, which returns the ready
/// objects themselves. This form waits forever; [`wait_timeout`] with `Duration::ZERO` (Python's
/// zero or negative timeout) only looks, and an empty list then sleeps for the timeout and
/// returns empty. A connection is
/// ready when a message or end of file is waiting, a listener when a client is waiting, a
/// process when it has ended. Interrupted polls are retried with the time left; nothing spins.
///
/// ```
/// use std::time::Duration;
/// use mp_connection::{wait, wait_timeout};
///
/// let (a, mut b) = mp_core::pipe(true)?;
/// let (c, _d) = mp_core::pipe(true)?;
/// assert!(wait_timeout(&[&a, &c], Duration::ZERO)?.is_empty());
/// b.send_bytes(b"ping")?;
/// assert_eq!(wait(&[&a, &c])?, vec![0]);
/// # Ok::<(), mp_connection::Error>(())
/// ```
///
/// Errors: a closed object or an unstarted process ([`Error::Closed`], or the connection
/// layer's errors), OS errors of `poll`.
pub fn wait(objects: &[&dyn Waitable]) -> Result<Vec<usize>> {
    wait_until(objects, Deadline::NEVER)
}

/// [`wait`] for at most `timeout`; an empty list when it passes. Python: `wait(objects, timeout)`.
pub fn wait_timeout(objects: &[&dyn Waitable], timeout: Duration) -> Result<Vec<usize>> {
    wait_until(objects, Deadline::after(timeout))
}

/// [`wait_timeout`] with a deadline.
pub fn wait_deadline(
    objects: &[&dyn Waitable],
    deadline: impl Into<Deadline>,
) -> Result<Vec<usize>> {
    wait_until(objects, deadline.into())
}

fn wait_until(objects: &[&dyn Waitable], deadline: Deadline) -> Result<Vec<usize>> {
    let fds = objects
        .iter()
        .map(|o| o.wait_fd().map(|fd| (fd, PollFlags::IN)))
        .collect::<Result<Vec<_>, Error>>()?;
    Ok(mp_core::io::wait_any(&fds, deadline)?)
}
