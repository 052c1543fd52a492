//! `Connection` and `pipe()`: framed messages over a socketpair or a pipe, in CPython's wire
//! format.
//!
//! A frame is a 4-byte big-endian signed length and the payload; a payload over 0x7fffffff bytes
//! is announced as length -1 followed by an 8-byte big-endian length. That is exactly what
//! CPython's `multiprocessing.connection` writes, so a Python peer can exchange
//! `send_bytes`/`recv_bytes` with us. `send`/`recv` carry serde values as MessagePack.
//!
//! Handles (fds) inside a sent value travel as `SCM_RIGHTS` attached to the first byte of their
//! frame, so the receiver collects them while reading that frame's header and nowhere else: a
//! frame's fds are exactly those that arrived with its header.

use std::fmt;
use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::time::Duration;

use crate::deadline::Deadline;

use rustix::io::Errno;
use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags,
    SendAncillaryBuffer, SendAncillaryMessage, SendFlags, SocketFlags, SocketType,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Message, Result};
use crate::{codec, handle, io, sys};

/// The most fds one message may carry (the kernel's `SCM_MAX_FD`).
const MAX_FDS: usize = 253;
/// The payload of a frame that only carries fds for the value frame after it (a value can hold
/// more handles than one message carries). `0xc1` is never the first byte of MessagePack.
const FD_CARRIER: &[u8] = b"\xc1mp-fds";
/// Control-message space for [`MAX_FDS`] fds.
const CMSG_SPACE: usize = rustix::cmsg_space!(ScmRights(MAX_FDS));
/// Payloads are read into buffers that grow by at most this much ahead of the bytes that have
/// actually arrived, so a peer's length header never sizes an allocation on its own.
const ALLOC_STEP: usize = 16 << 20;
/// Bytes a pipe accepts at once when it reports room (POSIX `PIPE_BUF`).
const PIPE_BUF: usize = 4096;
/// The most pieces one write hands the kernel (Linux's `IOV_MAX` is 1024); a message in more
/// parts takes more writes.
const MAX_IOV: usize = 512;
/// A frame of fewer parts than this (the header is one more) is written from pieces on the
/// stack, without an allocation.
const SMALL_IOV: usize = 3;
/// The largest payload announced with the 4-byte header.
const SHORT_MAX: u64 = 0x7fff_ffff;

/// One end of a pipe: sends and receives whole messages.
///
/// Python: `multiprocessing.connection.Connection`.
///
/// A `Connection` is `Send + Sync`; its I/O methods take `&mut self`, so one end is used by one
/// thread at a time (as in Python, where concurrent use of one end corrupts the stream). To use
/// an end from two processes, pass it to a child (it moves there) or [`try_clone`] it first.
/// It can itself be sent to a child as an argument under every start method, or as part of a
/// message over a duplex `Connection`.
///
/// [`try_clone`]: Connection::try_clone
pub struct Connection {
    fd: Option<OwnedFd>,
    readable: bool,
    writable: bool,
    /// Set when a read (a write) stopped in the middle of a frame: the stream is out of step
    /// and the end no longer reads (writes), for that reason rather than its direction.
    read_lost_sync: bool,
    write_lost_sync: bool,
    socket: bool,
    /// Whether the peer is a process of this program (see `handle::with_received`).
    trusted: bool,
    max_message: u64,
    timeout: Option<Duration>,
    /// The deadline of the operation under way (a `_deadline`/`_timeout` method's), beside the
    /// per-step `timeout`; [`Deadline::NEVER`] between operations.
    deadline: Deadline,
    scratch: Vec<u8>,
    /// How long a `recv` on a socket looks for a message before it sleeps (see `spin`).
    spin: Duration,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("fd", &self.fd.as_ref().map(|fd| fd.as_raw_fd()))
            .field("readable", &self.readable)
            .field("writable", &self.writable)
            .field("socket", &self.socket)
            .finish()
    }
}

/// `Pipe(duplex)`—Creates a pair of connected [`Connection`]s.
///
/// Python: `multiprocessing.Pipe(duplex=True)`. With `duplex` both ends send and receive (a Unix
/// socketpair); without it the first end only receives and the second only sends (a pipe), as
/// in Python. Handles (a `Connection`, a lock, ...) can be sent over duplex connections only.
#[doc(alias = "Pipe")]
pub fn pipe(duplex: bool) -> Result<(Connection, Connection)> {
    if duplex {
        let (a, b) = rustix::net::socketpair(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::CLOEXEC,
            None,
        )?;
        Ok((
            Connection::new(a, true, true, true).trusted(),
            Connection::new(b, true, true, true).trusted(),
        ))
    } else {
        let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
        Ok((
            Connection::new(r, true, false, false).trusted(),
            Connection::new(w, false, true, false).trusted(),
        ))
    }
}

impl Connection {
    fn new(fd: OwnedFd, readable: bool, writable: bool, socket: bool) -> Self {
        Connection {
            fd: Some(fd),
            readable,
            writable,
            read_lost_sync: false,
            write_lost_sync: false,
            socket,
            trusted: false,
            max_message: u64::MAX,
            timeout: None,
            deadline: Deadline::NEVER,
            scratch: Vec::new(),
            spin: crate::spin::SPIN,
        }
    }

    /// Marks the end as connected to a process of this program (a `pipe()`, a child's
    /// bootstrap socket): it may receive functions and fd carrier frames.
    pub(crate) fn trusted(mut self) -> Self {
        self.trusted = true;
        self
    }

    /// Wraps a connected stream socket or a pipe end.
    ///
    /// Python: `Connection(handle, readable, writable)`. Whether `fd` is a socket is read from
    /// the fd itself; only sockets carry handles.
    pub fn from_fd(fd: OwnedFd, readable: bool, writable: bool) -> Result<Self> {
        let stat = rustix::fs::fstat(&fd)?;
        let socket =
            rustix::fs::FileType::from_raw_mode(stat.st_mode) == rustix::fs::FileType::Socket;
        Ok(Connection::new(fd, readable, writable, socket))
    }

    /// Sets the largest message this end accepts; a longer announced length fails with
    /// [`Error::MessageTooLong`] before anything is allocated. The default is no limit (buffers
    /// still grow only as bytes arrive).
    pub fn set_max_message_size(&mut self, limit: u64) {
        self.max_message = limit;
    }

    /// How long a `recv` on a duplex connection looks for a message without blocking before it
    /// sleeps ([`spin::SPIN`](crate::spin::SPIN), 50 µs, by default; zero never spins). Beyond
    /// Python.
    ///
    /// A reply that comes within the spin is read without a wake-up, which on a virtual
    /// machine can cost far more than the round trip itself (see [`spin`](crate::spin)); at
    /// most `cpu_count() - 1` threads of a process spin at once. A connection whose messages
    /// come at long intervals, in a process that shares its CPUs with busy ones, can set zero.
    pub fn set_spin(&mut self, spin: Duration) {
        self.spin = spin;
    }

    /// Sets a timeout for each blocking read or write of this end (`None`, the default, waits
    /// forever), as Python's `socket.settimeout` does for the socket under a connection.
    ///
    /// A read or write that makes no progress for `timeout` fails with [`Error::Timeout`]. If that
    /// happens in the middle of a message the stream is out of step, and the connection is no
    /// longer readable; a timeout before a message's first byte leaves it usable.
    pub fn set_timeout(&mut self, timeout: Option<Duration>) {
        self.timeout = timeout;
    }

    /// The timeout set by [`set_timeout`](Self::set_timeout).
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// The largest message this end accepts (see [`set_max_message_size`](Self::set_max_message_size)).
    pub fn max_message_size(&self) -> u64 {
        self.max_message
    }

    /// Python: `Connection.closed`.
    pub fn closed(&self) -> bool {
        self.fd.is_none()
    }

    /// Python: `Connection.readable`.
    pub fn readable(&self) -> bool {
        self.readable
    }

    /// Python: `Connection.writable`.
    pub fn writable(&self) -> bool {
        self.writable
    }

    /// The underlying fd. Python: `Connection.fileno()`; fails with [`Error::Closed`] after
    /// [`close`](Self::close).
    pub fn fileno(&self) -> Result<BorrowedFd<'_>> {
        self.fd
            .as_ref()
            .map(|fd| fd.as_fd())
            .ok_or(Error::Closed("connection"))
    }

    /// Closes this end. Python: `Connection.close()`. Closing twice is harmless.
    pub fn close(&mut self) {
        self.fd = None;
    }

    /// Gives up the fd (Python: `Connection.detach()`); fails on a closed connection.
    pub fn into_owned_fd(mut self) -> Result<OwnedFd> {
        self.fd.take().ok_or(Error::Closed("connection"))
    }

    /// Another `Connection` on a duplicate of the same fd (beyond Python, which has no
    /// equivalent; `os.dup` comes closest).
    pub fn try_clone(&self) -> Result<Connection> {
        let fd = self.fileno()?.try_clone_to_owned()?;
        let mut c = Connection::new(fd, self.readable, self.writable, self.socket);
        c.max_message = self.max_message;
        c.timeout = self.timeout;
        c.trusted = self.trusted;
        Ok(c)
    }

    fn check_writable(&self) -> Result<BorrowedFd<'_>> {
        let fd = self.fileno()?;
        if !self.writable {
            return Err(Error::NotPermitted(if self.write_lost_sync {
                "the connection lost message sync: a message was cut off while being sent (a \
                 timeout or an error mid-frame), so the peer is out of step and nothing more can \
                 be sent on it"
            } else {
                "connection is read-only"
            }));
        }
        Ok(fd)
    }

    fn check_readable(&self) -> Result<BorrowedFd<'_>> {
        let fd = self.fileno()?;
        if !self.readable {
            return Err(Error::NotPermitted(if self.read_lost_sync {
                "the connection lost message sync: a message was cut short while being read (a \
                 timeout, a truncated, oversized or malformed frame), so nothing more can be read \
                 from it"
            } else {
                "connection is write-only"
            }));
        }
        Ok(fd)
    }

    // ----- sending -----

    /// Sends a value; the peer reads it with [`recv`](Self::recv).
    ///
    /// Python: `Connection.send(obj)`. Blocks while the pipe is full. A value that cannot be
    /// encoded gives [`Error::Codec`] and nothing is sent. Values holding handles (a
    /// `Connection`, locks, ...) can be sent over a duplex connection only.
    pub fn send<T: Serialize + ?Sized>(&mut self, obj: &T) -> Result<()> {
        let mut buf = std::mem::take(&mut self.scratch);
        buf.clear();
        let (encoded, fds) = handle::collect_handles(|| codec::encode_into(obj, &mut buf));
        let result = encoded.and_then(|()| {
            if !fds.is_empty() && !self.socket {
                return Err(Error::NotPermitted(
                    "handles can only be sent over a duplex Connection (a socket), not a one-way pipe",
                ));
            }
            // More fds than one message carries: the extra ones go ahead in carrier frames.
            let mut chunks: Vec<&[OwnedFd]> = fds.chunks(MAX_FDS).collect();
            let last = chunks.pop().unwrap_or(&[]);
            let carriers = !chunks.is_empty();
            for chunk in chunks {
                self.write_frame(FD_CARRIER, chunk)?;
            }
            let sent = self.write_frame(&buf, last);
            if sent.is_err() && carriers {
                // The peer holds fds for a value that will not come: out of step.
                self.lose_write_sync();
            }
            sent
        });
        if buf.capacity() <= 1 << 16 {
            self.scratch = buf;
        }
        result
    }

    /// [`send`](Self::send) that gives up with [`Error::Timeout`] after `timeout` (for the whole
    /// message, not each write). Python: `send` on a connection whose socket has a timeout.
    ///
    /// A timeout before the first byte left sends nothing and leaves the end usable; one in the
    /// middle of the message leaves the peer out of step, and the end is no longer writable.
    pub fn send_timeout<T: Serialize + ?Sized>(
        &mut self,
        obj: &T,
        timeout: Duration,
    ) -> Result<()> {
        self.until(Deadline::after(timeout), |c| c.send(obj))
    }

    /// [`send_timeout`](Self::send_timeout) with a deadline.
    pub fn send_deadline<T: Serialize + ?Sized>(
        &mut self,
        obj: &T,
        deadline: impl Into<Deadline>,
    ) -> Result<()> {
        self.until(deadline.into(), |c| c.send(obj))
    }

    /// Sends `buf` as one message. Python: `Connection.send_bytes(buf)`.
    pub fn send_bytes(&mut self, buf: &[u8]) -> Result<()> {
        self.write_frame(buf, &[])
    }

    /// [`send_bytes`](Self::send_bytes) that gives up with [`Error::Timeout`] after `timeout`
    /// for the whole message (see [`send_timeout`](Self::send_timeout)).
    pub fn send_bytes_timeout(&mut self, buf: &[u8], timeout: Duration) -> Result<()> {
        self.until(Deadline::after(timeout), |c| c.send_bytes(buf))
    }

    /// [`send_bytes_timeout`](Self::send_bytes_timeout) with a deadline.
    pub fn send_bytes_deadline(&mut self, buf: &[u8], deadline: impl Into<Deadline>) -> Result<()> {
        self.until(deadline.into(), |c| c.send_bytes(buf))
    }

    /// Runs one operation with `deadline` bounding all of its waits (beside the per-step
    /// timeout of [`set_timeout`](Self::set_timeout)).
    fn until<T>(
        &mut self,
        deadline: Deadline,
        op: impl FnOnce(&mut Self) -> Result<T>,
    ) -> Result<T> {
        let outer = self.deadline;
        self.deadline = deadline.min(outer);
        let result = op(self);
        self.deadline = outer;
        result
    }

    /// Whether writes must not block in the syscall: some limit bounds the operation.
    fn timed(&self) -> bool {
        self.timeout.is_some() || !self.deadline.is_never()
    }

    /// Sends `buf[offset..offset + size]` (to the end when `size` is `None`) as one message.
    ///
    /// Python: `Connection.send_bytes(buf, offset, size)`; an offset or size out of range gives
    /// [`Error::InvalidArgument`] and sends nothing.
    pub fn send_bytes_range(
        &mut self,
        buf: &[u8],
        offset: usize,
        size: Option<usize>,
    ) -> Result<()> {
        if offset > buf.len() {
            return Err(Error::InvalidArgument(format!(
                "offset {offset} is beyond the buffer's {} bytes",
                buf.len()
            )));
        }
        let size = size.unwrap_or(buf.len() - offset);
        if size > buf.len() - offset {
            return Err(Error::InvalidArgument(format!(
                "offset {offset} + size {size} is beyond the buffer's {} bytes",
                buf.len()
            )));
        }
        self.send_bytes(&buf[offset..offset + size])
    }

    /// Sends the concatenation of `parts` as one message, without copying them into one buffer
    /// first: the peer receives the same bytes as from [`send_bytes`](Self::send_bytes) of
    /// their concatenation. Beyond Python (a gather write): a message assembled from a small
    /// header of its own and large buffers held elsewhere (a pool's batch of tasks) goes out
    /// as it is.
    pub fn send_bytes_vectored(&mut self, parts: &[&[u8]]) -> Result<()> {
        self.write_frame_parts(parts, &[])
    }

    /// Writes one frame: header and payload in as few syscalls as the kernel allows, with `fds`
    /// attached to its first byte.
    pub(crate) fn write_frame(&mut self, payload: &[u8], fds: &[OwnedFd]) -> Result<()> {
        self.write_frame_parts(&[payload], fds)
    }

    /// [`write_frame`](Self::write_frame) of a payload in parts.
    fn write_frame_parts(&mut self, parts: &[&[u8]], fds: &[OwnedFd]) -> Result<()> {
        let result = self.write_frame_inner(parts, fds);
        if let Err((e, sent)) = result {
            // Part of the frame went out: the peer's stream is out of step from here on.
            if sent > 0 {
                self.lose_write_sync();
            }
            return Err(e);
        }
        Ok(())
    }

    /// Writes a frame; on error, also says how many bytes of it went out.
    fn write_frame_inner(
        &self,
        parts: &[&[u8]],
        fds: &[OwnedFd],
    ) -> std::result::Result<(), (Error, usize)> {
        let fd = self.check_writable().map_err(|e| (e, 0))?;
        if fds.len() > MAX_FDS {
            return Err((
                Error::InvalidArgument(format!(
                    "a message can carry at most {MAX_FDS} handles, not {}",
                    fds.len()
                )),
                0,
            ));
        }
        let mut header = [0u8; 12];
        let payload_len = parts.iter().map(|p| p.len()).sum::<usize>();
        let len = payload_len as u64;
        let header_len = if len > SHORT_MAX {
            header[..4].copy_from_slice(&(-1i32).to_be_bytes());
            header[4..].copy_from_slice(&len.to_be_bytes());
            12
        } else {
            header[..4].copy_from_slice(&(len as u32).to_be_bytes());
            4
        };
        let total = header_len + payload_len;
        let borrowed: Vec<BorrowedFd<'_>> = fds.iter().map(|f| f.as_fd()).collect();
        let mut sent = 0;
        // The pieces of one write: on the stack for a frame of one payload (every `send`),
        // in a vector only for a gather of many parts.
        let mut small = [IoSlice::new(&[]); SMALL_IOV];
        let mut many: Vec<IoSlice<'_>> = Vec::new();
        while sent < total {
            // With a timeout, wait for room first, then write only what fits without blocking
            // (DONTWAIT on sockets; at most PIPE_BUF bytes, which POLLOUT guarantees, on pipes).
            let timed = self.timed();
            if timed {
                self.wait_for_io(false).map_err(|e| (e, sent))?;
            }
            let mut room = if timed && !self.socket {
                PIPE_BUF
            } else {
                usize::MAX
            };
            // What is left of the header and the parts, from byte `sent` on, within `room`.
            let mut skip = sent;
            let pieces = std::iter::once(&header[..header_len])
                .chain(parts.iter().copied())
                .filter_map(|piece| {
                    if skip >= piece.len() {
                        skip -= piece.len();
                        return None;
                    }
                    let rest = &piece[skip..];
                    skip = 0;
                    let take = rest.len().min(room);
                    room -= take;
                    (take > 0).then(|| IoSlice::new(&rest[..take]))
                })
                .take(MAX_IOV);
            let iov: &[IoSlice<'_>] = if parts.len() < SMALL_IOV {
                let mut n = 0;
                for piece in pieces {
                    small[n] = piece;
                    n += 1;
                }
                &small[..n]
            } else {
                many.clear();
                many.extend(pieces);
                &many
            };
            let result = if self.socket {
                let mut space = [MaybeUninit::<u8>::uninit(); CMSG_SPACE];
                let mut control = SendAncillaryBuffer::new(&mut space);
                if sent == 0 && !borrowed.is_empty() {
                    control.push(SendAncillaryMessage::ScmRights(&borrowed));
                }
                let flags = if timed {
                    SendFlags::NOSIGNAL | SendFlags::DONTWAIT
                } else {
                    SendFlags::NOSIGNAL
                };
                rustix::net::sendmsg(fd, iov, &mut control, flags)
            } else {
                rustix::io::writev(fd, iov)
            };
            match result {
                Ok(n) => sent += n,
                Err(Errno::INTR) => {}
                Err(Errno::AGAIN) if !timed => {
                    io::wait_writable(fd, Deadline::NEVER).map_err(|e| (e, sent))?;
                }
                Err(Errno::AGAIN) => {}
                Err(e) => return Err((e.into(), sent)),
            }
        }
        Ok(())
    }

    // ----- receiving -----

    /// Receives a value sent with [`send`](Self::send).
    ///
    /// Python: `Connection.recv()`. Blocks until a whole message has arrived. [`Error::Eof`] when
    /// the peer has closed and nothing is left; [`Error::Codec`] when the message does not decode
    /// as `T` (the message is consumed and the connection stays usable).
    pub fn recv<T: DeserializeOwned>(&mut self) -> Result<T> {
        let mut buf = std::mem::take(&mut self.scratch);
        let result = self.read_value_frame(&mut buf).and_then(|fds| {
            let (value, _unclaimed) =
                handle::with_received(fds, self.trusted, || codec::decode::<T>(&buf));
            value
        });
        if buf.capacity() <= 1 << 16 {
            self.scratch = buf;
        }
        result
    }

    /// [`recv`](Self::recv) that gives up with [`Error::Timeout`] after `timeout` for the whole
    /// message, however slowly its bytes trickle in. Python: `recv` on a connection whose socket
    /// has a timeout.
    ///
    /// A timeout before the message's first byte leaves the end usable; one in the middle of a
    /// message leaves it out of step, and it is no longer readable.
    pub fn recv_timeout<T: DeserializeOwned>(&mut self, timeout: Duration) -> Result<T> {
        self.until(Deadline::after(timeout), |c| c.recv())
    }

    /// [`recv_timeout`](Self::recv_timeout) with a deadline.
    pub fn recv_deadline<T: DeserializeOwned>(
        &mut self,
        deadline: impl Into<Deadline>,
    ) -> Result<T> {
        self.until(deadline.into(), |c| c.recv())
    }

    /// Reads the frame of a value into `buf` (cleared first), gathering the fds of the carrier
    /// frames before it; returns all the fds.
    fn read_value_frame(&mut self, buf: &mut Vec<u8>) -> Result<Vec<OwnedFd>> {
        let mut all_fds = Vec::new();
        loop {
            let frame = self.read_header().and_then(|(len, fds)| {
                all_fds.extend(fds);
                buf.clear();
                self.read_payload(len, buf)
            });
            if let Err(e) = frame {
                // After a carrier frame, the value it belongs to is lost: out of step.
                return Err(if all_fds.is_empty() {
                    e
                } else {
                    self.poison(e)
                });
            }
            if buf.as_slice() != FD_CARRIER {
                return Ok(all_fds);
            }
            if !self.trusted {
                // Only this program's processes send more than one frame of fds for a value; a
                // peer accepted from anyone would otherwise fill our fd table with carriers.
                drop(all_fds);
                return Err(self.poison(Error::Protocol(
                    "fd carrier frames are taken only from processes of this program".into(),
                )));
            }
        }
    }

    /// Receives one message's bytes. Python: `Connection.recv_bytes()`.
    ///
    /// Blocks until the whole message has arrived; [`Error::Eof`] when the peer has closed.
    pub fn recv_bytes(&mut self) -> Result<Vec<u8>> {
        let (len, _fds) = self.read_header()?;
        let mut buf = Vec::new();
        self.read_payload(len, &mut buf)?;
        Ok(buf)
    }

    /// [`recv_bytes`](Self::recv_bytes) that gives up with [`Error::Timeout`] after `timeout` for
    /// the whole message (see [`recv_timeout`](Self::recv_timeout)).
    pub fn recv_bytes_timeout(&mut self, timeout: Duration) -> Result<Vec<u8>> {
        self.until(Deadline::after(timeout), |c| c.recv_bytes())
    }

    /// [`recv_bytes_timeout`](Self::recv_bytes_timeout) with a deadline.
    pub fn recv_bytes_deadline(&mut self, deadline: impl Into<Deadline>) -> Result<Vec<u8>> {
        self.until(deadline.into(), |c| c.recv_bytes())
    }

    /// Receives one message of at most `maxlength` bytes.
    ///
    /// Python: `Connection.recv_bytes(maxlength)`: a longer message gives
    /// [`Error::MessageTooLong`] and the connection is no longer readable.
    pub fn recv_bytes_max(&mut self, maxlength: usize) -> Result<Vec<u8>> {
        let (len, _fds) = self.read_header()?;
        if len > maxlength as u64 {
            self.lose_read_sync();
            return Err(Error::MessageTooLong {
                length: len,
                limit: maxlength as u64,
            });
        }
        let mut buf = Vec::new();
        self.read_payload(len, &mut buf)?;
        Ok(buf)
    }

    /// [`recv_bytes_max`](Self::recv_bytes_max) that gives up with [`Error::Timeout`] after
    /// `timeout` for the whole message (see [`recv_timeout`](Self::recv_timeout)).
    pub fn recv_bytes_max_timeout(
        &mut self,
        maxlength: usize,
        timeout: Duration,
    ) -> Result<Vec<u8>> {
        self.until(Deadline::after(timeout), |c| c.recv_bytes_max(maxlength))
    }

    /// [`recv_bytes_max_timeout`](Self::recv_bytes_max_timeout) with a deadline.
    pub fn recv_bytes_max_deadline(
        &mut self,
        maxlength: usize,
        deadline: impl Into<Deadline>,
    ) -> Result<Vec<u8>> {
        self.until(deadline.into(), |c| c.recv_bytes_max(maxlength))
    }

    /// [`recv_bytes_into`](Self::recv_bytes_into) that gives up with [`Error::Timeout`] after
    /// `timeout` for the whole message (see [`recv_timeout`](Self::recv_timeout)).
    pub fn recv_bytes_into_timeout(&mut self, buf: &mut [u8], timeout: Duration) -> Result<usize> {
        self.until(Deadline::after(timeout), |c| c.recv_bytes_into(buf))
    }

    /// [`recv_bytes_into_timeout`](Self::recv_bytes_into_timeout) with a deadline.
    pub fn recv_bytes_into_deadline(
        &mut self,
        buf: &mut [u8],
        deadline: impl Into<Deadline>,
    ) -> Result<usize> {
        self.until(deadline.into(), |c| c.recv_bytes_into(buf))
    }

    /// Receives one message into `buf`, returning its length.
    ///
    /// Python: `Connection.recv_bytes_into(buf)` (pass `&mut buf[offset..]` for an offset). When
    /// the message is longer than `buf`, gives [`Error::BufferTooShort`] carrying the whole
    /// message, and the connection stays usable.
    pub fn recv_bytes_into(&mut self, buf: &mut [u8]) -> Result<usize> {
        let (len, _fds) = self.read_header()?;
        if len > buf.len() as u64 {
            let mut whole = Vec::new();
            self.read_payload(len, &mut whole)?;
            return Err(Error::BufferTooShort(Message(whole)));
        }
        let n = len as usize;
        let mut done = 0;
        while done < n {
            match self.read_some(&mut buf[done..n], None) {
                Ok(0) => return Err(self.poison(truncated())),
                Ok(k) => done += k,
                Err(e) => return Err(self.poison(e)),
            }
        }
        Ok(n)
    }

    /// Waits until a message (or EOF) is ready to be read; `Ok(true)` then.
    ///
    /// Python: `Connection.poll(None)`. Note that Python's bare `poll()` only looks (its default
    /// timeout is 0): that is [`try_poll`](Self::try_poll) here.
    pub fn poll(&self) -> Result<bool> {
        self.poll_until(Deadline::NEVER)
    }

    /// Whether a message (or EOF) is ready to be read, waiting at most `timeout`.
    /// Python: `Connection.poll(timeout)`.
    pub fn poll_timeout(&self, timeout: Duration) -> Result<bool> {
        self.poll_until(Deadline::after(timeout))
    }

    /// [`poll_timeout`](Self::poll_timeout) with a deadline.
    pub fn poll_deadline(&self, deadline: impl Into<Deadline>) -> Result<bool> {
        self.poll_until(deadline.into())
    }

    /// Whether a message (or EOF) is ready to be read now, without waiting.
    /// Python: `Connection.poll()` (`poll(0)`).
    pub fn try_poll(&self) -> Result<bool> {
        self.poll_until(Deadline::now())
    }

    fn poll_until(&self, deadline: Deadline) -> Result<bool> {
        io::wait_readable(self.check_readable()?, deadline)
    }

    /// Reads a frame header; returns the payload length and the fds that came with the frame.
    fn read_header(&mut self) -> Result<(u64, Vec<OwnedFd>)> {
        let mut fds = Vec::new();
        let mut short = [0u8; 4];
        self.read_header_bytes(&mut short, &mut fds, true)?;
        let n = i32::from_be_bytes(short);
        let len = if n >= 0 {
            n as u64
        } else if n == -1 {
            let mut long = [0u8; 8];
            self.read_header_bytes(&mut long, &mut fds, false)?;
            u64::from_be_bytes(long)
        } else {
            self.lose_read_sync();
            return Err(Error::Protocol(format!("negative message length {n}")));
        };
        if len > self.max_message {
            self.lose_read_sync();
            return Err(Error::MessageTooLong {
                length: len,
                limit: self.max_message,
            });
        }
        Ok((len, fds))
    }

    fn read_header_bytes(
        &mut self,
        buf: &mut [u8],
        fds: &mut Vec<OwnedFd>,
        start: bool,
    ) -> Result<()> {
        let mut done = 0;
        while done < buf.len() {
            let n = match self.read_some(&mut buf[done..], Some(&mut *fds)) {
                Ok(n) => n,
                // Nothing of the frame consumed yet: the connection is still in step.
                Err(e @ Error::Timeout) if start && done == 0 => return Err(e),
                Err(e) => return Err(self.poison(e)),
            };
            if n == 0 {
                return Err(if done == 0 && start {
                    Error::Eof
                } else {
                    self.poison(truncated())
                });
            }
            done += n;
        }
        Ok(())
    }

    /// Reads `len` payload bytes, appending to `buf`, which grows only as bytes arrive.
    fn read_payload(&mut self, len: u64, buf: &mut Vec<u8>) -> Result<()> {
        let too_long = Error::MessageTooLong {
            length: len,
            limit: usize::MAX as u64,
        };
        let Some(end) = usize::try_from(len)
            .ok()
            .and_then(|l| buf.len().checked_add(l))
        else {
            return Err(self.poison(too_long));
        };
        while buf.len() < end {
            let want = end - buf.len();
            if buf.capacity() - buf.len() < want {
                // Room for the rest in one read (a buffer kept from a shorter message would
                // otherwise cost a read for what fits, then one more), growing by at most the
                // buffer's size or ALLOC_STEP at a time: never sized by the header alone.
                buf.reserve_exact(want.min(buf.capacity().max(ALLOC_STEP)));
            }
            let result = self.wait_for_io(true).and_then(|fd| loop {
                match sys::read_into_spare(fd, buf, want) {
                    Err(Errno::INTR) => {}
                    Err(Errno::AGAIN) => {
                        io::wait_readable(fd, Deadline::NEVER)?;
                    }
                    other => return other.map_err(Error::from),
                }
            });
            match result {
                Ok(0) => return Err(self.poison(truncated())),
                Ok(_) => {}
                Err(e) => return Err(self.poison(e)),
            }
        }
        Ok(())
    }

    /// Marks the connection unreadable after an error that left it mid-frame (out of step).
    fn poison(&mut self, e: Error) -> Error {
        self.lose_read_sync();
        e
    }

    /// The read side is out of step: no more reads, and later reads say why.
    fn lose_read_sync(&mut self) {
        self.readable = false;
        self.read_lost_sync = true;
    }

    /// The write side is out of step: no more writes, and later writes say why.
    fn lose_write_sync(&mut self) {
        self.writable = false;
        self.write_lost_sync = true;
    }

    /// Returns the fd once it is ready for reading (or writing), waiting at most the
    /// connection's timeout and the operation's deadline; without either, returns at once (the
    /// syscall blocks).
    fn wait_for_io(&self, read: bool) -> Result<BorrowedFd<'_>> {
        let fd = if read {
            self.check_readable()?
        } else {
            self.check_writable()?
        };
        let step = self.timeout.map_or(Deadline::NEVER, Deadline::after);
        let deadline = step.min(self.deadline);
        if !deadline.is_never() {
            let ready = if read {
                io::wait_readable(fd, deadline)?
            } else {
                io::wait_writable(fd, deadline)?
            };
            if !ready {
                return Err(Error::Timeout);
            }
        }
        Ok(fd)
    }

    /// One read (a `recvmsg` on sockets, keeping fds when `fds` is given) of at most
    /// `buf.len()` bytes; `Ok(0)` at EOF.
    fn read_some(&self, buf: &mut [u8], fds: Option<&mut Vec<OwnedFd>>) -> Result<usize> {
        let fd = self.wait_for_io(true)?;
        match fds {
            Some(fds) if self.socket => recv_with_fds(fd, buf, fds, self.spin),
            _ => loop {
                match rustix::io::read(fd, &mut *buf) {
                    Ok(n) => return Ok(n),
                    Err(Errno::INTR) => {}
                    Err(Errno::AGAIN) => {
                        io::wait_readable(fd, Deadline::NEVER)?;
                    }
                    Err(e) => return Err(e.into()),
                }
            },
        }
    }
}

fn truncated() -> Error {
    Error::Protocol("the connection closed in the middle of a message".into())
}

/// One `recvmsg` into `buf`, keeping any fds that arrive.
///
/// It never sleeps in `recvmsg` itself: it looks without blocking, and when nothing is there it
/// spins for up to `spin` (see [`spin`](crate::spin): a request's reply usually comes within
/// microseconds, and a sleeping reader costs a wake-up), then waits in `poll`. A reader asleep
/// in a blocking read of a unix socket is woken each time its peer reads what it wrote (the
/// kernel's write-space wake-up goes to every sleeper on the socket, whatever it waits for),
/// two context switches for nothing per message; `poll` sleeps until input only. Only
/// readiness is polled while spinning, so nothing is read past the message.
fn recv_with_fds(
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
    fds: &mut Vec<OwnedFd>,
    spin: Duration,
) -> Result<usize> {
    let mut space = [MaybeUninit::<u8>::uninit(); CMSG_SPACE];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut spun = spin.is_zero();
    loop {
        let mut iov = [IoSliceMut::new(buf)];
        match rustix::net::recvmsg(
            fd,
            &mut iov,
            &mut control,
            RecvFlags::CMSG_CLOEXEC | RecvFlags::DONTWAIT,
        ) {
            Err(Errno::AGAIN) if !spun => {
                crate::spin::spin_until(spin, || {
                    io::wait_readable(fd, Deadline::now()).unwrap_or(true)
                });
                spun = true;
            }
            Err(Errno::AGAIN) => {
                io::wait_readable(fd, Deadline::NEVER)?;
            }
            Ok(msg) => {
                for message in control.drain() {
                    if let RecvAncillaryMessage::ScmRights(received) = message {
                        fds.extend(received);
                    }
                }
                if msg.flags.contains(ReturnFlags::CTRUNC) {
                    return Err(Error::Protocol(format!(
                        "a message carried more than {MAX_FDS} handles; the extra ones were lost"
                    )));
                }
                return Ok(msg.bytes);
            }
            Err(Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

impl AsFd for Connection {
    /// The connection's fd.
    ///
    /// # Panics
    /// After [`close`](Connection::close); use [`fileno`](Connection::fileno) to get an error
    /// instead.
    fn as_fd(&self) -> BorrowedFd<'_> {
        match &self.fd {
            Some(fd) => fd.as_fd(),
            None => panic!("Connection::as_fd called on a closed connection"),
        }
    }
}

impl Connection {
    /// The raw fd number, or `None` once closed.
    pub fn raw_fd(&self) -> Option<RawFd> {
        self.fd.as_ref().map(|fd| fd.as_raw_fd())
    }
}

#[derive(Serialize, Deserialize)]
struct ConnectionWire {
    fd: handle::HandleFd,
    readable: bool,
    writable: bool,
    socket: bool,
    trusted: bool,
}

impl Serialize for Connection {
    /// A `Connection` serializes only inside a handle transfer (sent to a child or over a duplex
    /// connection); elsewhere it is an error.
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::{Error as _, SerializeStruct};
        let fd = self
            .fd
            .as_ref()
            .ok_or_else(|| S::Error::custom("cannot send a closed Connection"))?;
        let mut st = s.serialize_struct("ConnectionWire", 5)?;
        st.serialize_field("fd", &HandleRef(fd.as_fd()))?;
        st.serialize_field("readable", &self.readable)?;
        st.serialize_field("writable", &self.writable)?;
        st.serialize_field("socket", &self.socket)?;
        st.serialize_field("trusted", &self.trusted)?;
        st.end()
    }
}

struct HandleRef<'a>(BorrowedFd<'a>);

impl Serialize for HandleRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        handle::serialize_fd(self.0, "Connection", s)
    }
}

impl<'de> Deserialize<'de> for Connection {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let w = ConnectionWire::deserialize(d)?;
        let mut c = Connection::new(w.fd.0, w.readable, w.writable, w.socket);
        // Trust does not travel further than the message that carried it.
        c.trusted = w.trusted && handle::receiving_trusted();
        Ok(c)
    }
}

/// Receives one frame and the fds attached to it.
pub(crate) fn recv_frame_with_fds(conn: &mut Connection) -> Result<(Vec<u8>, Vec<OwnedFd>)> {
    let mut buf = Vec::new();
    let fds = conn.read_value_frame(&mut buf)?;
    Ok((buf, fds))
}
