//! Stream sockets for listeners and clients: creation (always close-on-exec), binding,
//! accepting and connecting with deadlines.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::event::PollFlags;
use rustix::io::Errno;
use rustix::net::{sockopt, SocketFlags, SocketType};

use mp_core::Deadline;

use crate::address::Address;
use crate::error::{Error, Result};

/// Waits until `fd` has one of `flags` ready (or an error) before `deadline`; [`Error::Timeout`]
/// otherwise.
fn wait_for(fd: BorrowedFd<'_>, flags: PollFlags, deadline: Deadline) -> Result<()> {
    if mp_core::io::wait_any(&[(fd, flags)], deadline)?.is_empty() {
        Err(Error::Timeout)
    } else {
        Ok(())
    }
}

/// A new stream socket for `address`'s family.
fn stream_socket(address: &Address, nonblocking: bool) -> Result<OwnedFd> {
    let mut flags = SocketFlags::CLOEXEC;
    if nonblocking {
        flags |= SocketFlags::NONBLOCK;
    }
    Ok(rustix::net::socket_with(
        address.address_family(),
        SocketType::STREAM,
        flags,
        None,
    )?)
}

/// Adds what failed and where to an OS error.
fn with_context(e: Errno, what: &str, address: &Address) -> Error {
    let io = std::io::Error::from(e);
    Error::Io(std::io::Error::new(
        io.kind(),
        format!("cannot {what} {address}: {io}"),
    ))
}

/// A listening socket bound to `address` (non-blocking, so that a wakeup another process or
/// thread took first never leaves `accept` blocked), and the address it really got.
pub(crate) fn bind_listen(address: &Address, backlog: u32) -> Result<(OwnedFd, Address)> {
    let sockaddr = address.to_socket_addr()?;
    let fd = stream_socket(address, true)?;
    if let Address::Tcp(_) = address {
        sockopt::set_socket_reuseaddr(&fd, true)?;
    }
    match rustix::net::bind(&fd, &sockaddr) {
        Ok(()) => {}
        Err(Errno::ADDRINUSE) => return Err(Error::AddressInUse(address.clone())),
        Err(e) => return Err(with_context(e, "bind", address)),
    }
    let backlog = i32::try_from(backlog).unwrap_or(i32::MAX);
    rustix::net::listen(&fd, backlog).map_err(|e| with_context(e, "listen on", address))?;
    let bound = match address {
        // The kernel resolved port 0.
        Address::Tcp(_) => Address::from_socket_addr(&rustix::net::getsockname(&fd)?)?,
        _ => address.clone(),
    };
    Ok((fd, bound))
}

/// Accepts one connection before `deadline`; returns the blocking, close-on-exec socket and
/// the peer's address.
pub(crate) fn accept(
    listener: BorrowedFd<'_>,
    deadline: Deadline,
) -> Result<(OwnedFd, Option<Address>)> {
    loop {
        match rustix::net::acceptfrom_with(listener, SocketFlags::CLOEXEC) {
            Ok((fd, peer)) => {
                let peer = peer.and_then(|p| Address::from_socket_addr(&p).ok());
                return Ok((fd, peer));
            }
            Err(Errno::AGAIN) => wait_for(listener, PollFlags::IN, deadline)?,
            // Interrupted, or a connection that went away before we took it: try again.
            Err(Errno::INTR) | Err(Errno::CONNABORTED) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// Turns Nagle's algorithm off on TCP sockets: every message is written with one syscall, so
/// there is nothing to coalesce, and waiting for an ACK only adds latency.
pub(crate) fn set_nodelay(fd: BorrowedFd<'_>, address: &Address) -> Result<()> {
    if let Address::Tcp(_) = address {
        sockopt::set_tcp_nodelay(fd, true)?;
    }
    Ok(())
}

/// Connects to `address` before `deadline`; returns a blocking, close-on-exec socket.
pub(crate) fn connect(address: &Address, deadline: Deadline) -> Result<OwnedFd> {
    let sockaddr = address.to_socket_addr()?;
    match address {
        Address::Tcp(_) if deadline.is_never() => {
            let fd = stream_socket(address, false)?;
            match rustix::net::connect(&fd, &sockaddr) {
                Ok(()) => {}
                // Interrupted: the connection goes on in the background; wait for its end.
                Err(Errno::INTR) => {
                    wait_for(fd.as_fd(), PollFlags::OUT, Deadline::NEVER)?;
                    if let Err(e) = sockopt::socket_error(&fd)? {
                        return Err(with_context(e, "connect to", address));
                    }
                }
                Err(e) => return Err(with_context(e, "connect to", address)),
            }
            Ok(fd)
        }
        Address::Tcp(_) => {
            // Non-blocking connect, then poll until the deadline.
            let fd = stream_socket(address, true)?;
            match rustix::net::connect(&fd, &sockaddr) {
                Ok(()) => {}
                Err(Errno::INPROGRESS) | Err(Errno::INTR) => {
                    wait_for(fd.as_fd(), PollFlags::OUT, deadline)?;
                    if let Err(e) = sockopt::socket_error(&fd)? {
                        return Err(with_context(e, "connect to", address));
                    }
                }
                Err(e) => return Err(with_context(e, "connect to", address)),
            }
            rustix::io::ioctl_fionbio(&fd, false)?;
            Ok(fd)
        }
        Address::Unix(_) | Address::Abstract(_) => {
            // A Unix connect only waits when the listener's backlog is full, and then it cannot
            // be polled for (a non-blocking connect fails with EAGAIN); a blocking connect under
            // SO_SNDTIMEO waits at most that long.
            let fd = stream_socket(address, false)?;
            loop {
                let left = deadline.remaining();
                if left.is_some_and(|l| l.is_zero()) {
                    return Err(Error::Timeout);
                }
                if left.is_some() {
                    sockopt::set_socket_timeout(&fd, sockopt::Timeout::Send, left)?;
                }
                match rustix::net::connect(&fd, &sockaddr) {
                    Ok(()) => break,
                    Err(Errno::INTR) => continue,
                    Err(Errno::AGAIN) if !deadline.is_never() => continue,
                    Err(e) => return Err(with_context(e, "connect to", address)),
                }
            }
            if !deadline.is_never() {
                sockopt::set_socket_timeout(&fd, sockopt::Timeout::Send, None)?;
            }
            Ok(fd)
        }
    }
}
