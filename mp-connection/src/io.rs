//! Blocking helpers with deadlines: `poll` that retries `EINTR` with the time left, and exact
//! reads that never wait past a deadline.

use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use rustix::event::PollFlags;
use rustix::io::Errno;
use rustix::net::RecvFlags;

use crate::error::{Error, Result};

pub(crate) use mp_core::io::deadline_after;

/// The time left until `deadline` (`None`: forever), zero once it has passed.
pub(crate) fn time_left(deadline: Option<Instant>) -> Option<Duration> {
    deadline.map(|d| d.saturating_duration_since(Instant::now()))
}

/// [`mp_core::io::wait_any`] with this crate's error.
pub(crate) fn poll_until(
    fds: &[(BorrowedFd<'_>, PollFlags)],
    deadline: Option<Instant>,
) -> Result<Vec<usize>> {
    Ok(mp_core::io::wait_any(fds, deadline)?)
}

/// Waits until `fd` has one of `flags` ready (or an error) before `deadline`; `Error::Timeout`
/// otherwise.
pub(crate) fn wait_for(
    fd: BorrowedFd<'_>,
    flags: PollFlags,
    deadline: Option<Instant>,
) -> Result<()> {
    if poll_until(&[(fd, flags)], deadline)?.is_empty() {
        Err(Error::Timeout)
    } else {
        Ok(())
    }
}

/// How [`read_exact`] ended early.
pub(crate) enum ReadEnd {
    /// End of file after `n` bytes.
    Eof(usize),
}

/// Reads exactly `buf.len()` bytes from a blocking socket (or pipe), waiting at most until
/// `deadline`. Returns `Ok(Err(ReadEnd::Eof(n)))` when the stream ends after `n` bytes.
///
/// `expect_wait` says the bytes are probably not there yet (the start of a reply): then, with a
/// deadline, poll first instead of trying a read that would fail with `EAGAIN`. Without a
/// deadline the read simply blocks.
pub(crate) fn read_exact(
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
    deadline: Option<Instant>,
    expect_wait: bool,
) -> Result<std::result::Result<(), ReadEnd>> {
    let mut done = 0;
    let mut socket = true;
    let mut must_poll = expect_wait && deadline.is_some();
    while done < buf.len() {
        if must_poll {
            wait_for(fd, PollFlags::IN, deadline)?;
        }
        let result = if socket {
            // With a deadline, never block in the read itself: the poll above does the waiting.
            let flags = if deadline.is_some() {
                RecvFlags::DONTWAIT
            } else {
                RecvFlags::empty()
            };
            rustix::net::recv(fd, &mut buf[done..], flags).map(|(n, _)| n)
        } else {
            if deadline.is_some() && !must_poll {
                wait_for(fd, PollFlags::IN, deadline)?;
            }
            rustix::io::read(fd, &mut buf[done..])
        };
        must_poll = false;
        match result {
            Ok(0) => return Ok(Err(ReadEnd::Eof(done))),
            Ok(n) => done += n,
            Err(Errno::INTR) => {}
            Err(Errno::AGAIN) => must_poll = true,
            Err(Errno::NOTSOCK) => socket = false,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Ok(()))
}

/// Writes all of `buf` to a socket (or pipe), waiting at most until `deadline` whenever the
/// socket is full.
pub(crate) fn write_all(
    fd: BorrowedFd<'_>,
    mut buf: &[u8],
    deadline: Option<Instant>,
) -> Result<()> {
    let mut socket = true;
    while !buf.is_empty() {
        let result = if socket {
            let mut flags = rustix::net::SendFlags::NOSIGNAL;
            if deadline.is_some() {
                flags |= rustix::net::SendFlags::DONTWAIT;
            }
            rustix::net::send(fd, buf, flags)
        } else {
            if deadline.is_some() {
                wait_for(fd, PollFlags::OUT, deadline)?;
            }
            rustix::io::write(fd, buf)
        };
        match result {
            Ok(n) => buf = &buf[n..],
            Err(Errno::INTR) => {}
            Err(Errno::AGAIN) => wait_for(fd, PollFlags::OUT, deadline)?,
            Err(Errno::NOTSOCK) => socket = false,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
