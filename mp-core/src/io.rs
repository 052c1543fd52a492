//! Blocking I/O helpers with deadlines: poll that retries `EINTR` with the time left, and read
//! and write loops that retry `EINTR` and wait out `EAGAIN`. [`wait_any`] is public for the
//! crates above (listeners, `wait`, helper processes); every wait takes a [`Deadline`].

use std::os::fd::BorrowedFd;
use std::time::Instant;

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::io::Errno;

use crate::deadline::Deadline;
use crate::error::Result;

/// Waits until one of `fds` reports one of its `flags` (or an error or hang-up), or `deadline`
/// passes.
///
/// Returns the index of every ready fd, in order (empty on timeout). [`Deadline::NEVER`] waits
/// forever; a deadline in the past only looks; an empty `fds` sleeps until the deadline. Retries
/// `EINTR` with the time that is left. Never spins.
pub fn wait_any(fds: &[(BorrowedFd<'_>, PollFlags)], deadline: Deadline) -> Result<Vec<usize>> {
    let deadline = deadline.instant();
    let mut pollfds: Vec<PollFd<'_>> = fds
        .iter()
        .map(|(fd, flags)| PollFd::from_borrowed_fd(*fd, *flags))
        .collect();
    loop {
        let timeout = match deadline {
            None => None,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                Some(Timespec {
                    tv_sec: left.as_secs().min(i64::MAX as u64) as i64,
                    tv_nsec: i64::from(left.subsec_nanos()),
                })
            }
        };
        match poll(&mut pollfds, timeout.as_ref()) {
            Ok(0) => {
                // poll's clock may round down: report a timeout only once it is really over.
                if deadline.is_some_and(|d| Instant::now() < d) {
                    continue;
                }
                return Ok(Vec::new());
            }
            Ok(_) => {
                return Ok(pollfds
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| !p.revents().is_empty())
                    .map(|(i, _)| i)
                    .collect())
            }
            Err(Errno::INTR) => {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return Ok(Vec::new());
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Waits until `fd` is readable (or at EOF / error, which a read then reports) or `deadline`
/// passes. Returns whether it is ready.
pub(crate) fn wait_readable(fd: BorrowedFd<'_>, deadline: Deadline) -> Result<bool> {
    Ok(!wait_any(&[(fd, PollFlags::IN)], deadline)?.is_empty())
}

/// Waits until `fd` is writable or `deadline` passes.
pub(crate) fn wait_writable(fd: BorrowedFd<'_>, deadline: Deadline) -> Result<bool> {
    Ok(!wait_any(&[(fd, PollFlags::OUT)], deadline)?.is_empty())
}

/// Reads into `buf` until it is full or EOF; returns how many bytes were read.
pub(crate) fn read_full(fd: BorrowedFd<'_>, buf: &mut [u8]) -> Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match rustix::io::read(fd, &mut buf[done..]) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(Errno::INTR) => {}
            Err(Errno::AGAIN) => {
                wait_readable(fd, Deadline::NEVER)?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(done)
}

/// Writes all of `buf`.
pub(crate) fn write_all(fd: BorrowedFd<'_>, mut buf: &[u8]) -> Result<()> {
    while !buf.is_empty() {
        match rustix::io::write(fd, buf) {
            Ok(n) => buf = &buf[n..],
            Err(Errno::INTR) => {}
            Err(Errno::AGAIN) => {
                wait_writable(fd, Deadline::NEVER)?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
