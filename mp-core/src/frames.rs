//! Bulk reading of frames: every message that has arrived, with one `read`.
//!
//! [`Connection::recv`](crate::Connection::recv) reads exactly one frame and nothing more (a
//! `recvmsg` for the header, a `read` for the payload), so that the fd's readiness always tells
//! the truth to `poll`, `wait()` and any other process holding it. Where one owner reads a
//! connection and nothing else watches it (a pool's supervisor reading its workers' results, a
//! manager's request/reply exchanges), a [`FrameReader`] takes whatever the socket holds in one
//! `read` and cuts it into frames, saving a syscall per message. The frames are the stack's
//! (and CPython's) wire format: a 4-byte big-endian signed length, or `-1` and an 8-byte
//! length, then the payload. A `FrameReader` carries no fds.
//!
//! A length header never sizes an allocation: the buffer grows by at most [`MAX_STEP`] per
//! read, as bytes arrive, and [`FrameReader::with_limit`] refuses an announcement over a limit.

use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use rustix::io::Errno;
use rustix::net::RecvFlags;

use crate::error::{Error, Result};
use crate::wirebuf::{OwnedBytes, WireBuf};

/// How much a read asks for at least.
const READ_AT_LEAST: usize = 64 << 10;

/// The most a buffer grows by in one read, whatever the header under way announces.
pub const MAX_STEP: usize = 16 << 20;

/// Whether this machine has more than one CPU online (read once).
fn several_cpus() -> bool {
    static SEVERAL: once_cell::sync::Lazy<bool> =
        once_cell::sync::Lazy::new(|| crate::process::cpu_count() > 1);
    *SEVERAL
}

/// The frames read so far from one connection. Beyond Python.
#[derive(Debug)]
pub struct FrameReader {
    /// In memory a fork does not share ([`WireBuf`]): a reader in a process that has just
    /// forked (a pool's supervisor) writes it without copy-on-write faults.
    buf: WireBuf,
    /// Where the first unconsumed byte is.
    start: usize,
    /// The largest payload accepted.
    limit: u64,
    /// The size of the last frame handed over in the buffer (`next_frame_owned`): the next
    /// buffer starts that large, so that a stream of large frames of one size is read without
    /// growing each buffer by reallocation (a copy of what was read so far). Bytes that
    /// arrived, not a header's claim, and at most [`MAX_STEP`].
    last_taken: usize,
    /// Whether the fd read is no socket (found by the first [`fill`](Self::fill)): it is then
    /// read with `read`.
    not_socket: bool,
}

impl Default for FrameReader {
    fn default() -> Self {
        FrameReader {
            buf: WireBuf::new(),
            start: 0,
            limit: u64::MAX,
            last_taken: 0,
            not_socket: false,
        }
    }
}

/// What one fill found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filled {
    /// Bytes arrived (or nothing was ready).
    Data,
    /// The peer closed its end (after the bytes read before).
    Eof,
}

impl FrameReader {
    /// A reader that refuses payloads over `limit` bytes ([`Error::MessageTooLong`]).
    pub fn with_limit(limit: u64) -> Self {
        FrameReader {
            limit,
            ..FrameReader::default()
        }
    }

    /// Whether no unconsumed byte is buffered.
    pub fn is_empty(&self) -> bool {
        self.start == self.buf.len()
    }

    /// One `read` of what `fd` holds; blocks if nothing is there (a non-blocking fd returns
    /// [`Filled::Data`] with nothing read).
    ///
    /// On a socket it never sleeps in the read itself but in `poll`: a reader asleep in a
    /// blocking read of a unix socket is woken each time its peer reads what it wrote (the
    /// kernel's write-space wake-up goes to every sleeper on the socket, whatever it waits
    /// for), two context switches for nothing per message; `poll` sleeps until input only.
    pub fn fill(&mut self, fd: BorrowedFd<'_>) -> Result<Filled> {
        self.make_room()?;
        loop {
            let read = if self.not_socket {
                rustix::io::read(fd, self.buf.spare_mut())
            } else {
                match rustix::net::recv(fd, self.buf.spare_mut(), RecvFlags::DONTWAIT) {
                    Ok((n, _)) => Ok(n),
                    Err(Errno::NOTSOCK) => {
                        self.not_socket = true;
                        continue;
                    }
                    Err(Errno::AGAIN) => {
                        // Only a blocking fd waits (a non-blocking one says so at once).
                        if rustix::fs::fcntl_getfl(fd)?.contains(rustix::fs::OFlags::NONBLOCK) {
                            return Ok(Filled::Data);
                        }
                        crate::io::wait_readable(fd, crate::deadline::Deadline::NEVER)?;
                        continue;
                    }
                    Err(e) => Err(e),
                }
            };
            match read {
                Ok(0) => return Ok(Filled::Eof),
                Ok(n) => {
                    self.buf.advance(n);
                    return Ok(Filled::Data);
                }
                Err(Errno::AGAIN) => return Ok(Filled::Data),
                Err(Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Drops the consumed bytes once they are half the buffer, and reserves room for the next
    /// read: what the frame under way still misses, within [`READ_AT_LEAST`]..[`MAX_STEP`].
    fn make_room(&mut self) -> Result<()> {
        if self.start > 0 && self.start * 2 >= self.buf.len() {
            self.buf.consume_front(self.start);
            self.start = 0;
        }
        let mut want = self.missing().clamp(READ_AT_LEAST, MAX_STEP);
        if self.buf.capacity() == 0 {
            want = want.max(self.last_taken);
        }
        self.buf.reserve(want)?;
        Ok(())
    }

    /// As [`fill`](Self::fill), but first polls the socket without blocking for up to `spin`
    /// ([`spin_fill`](Self::spin_fill)), so that a reply that comes within it is read without
    /// the reader going to sleep.
    pub fn fill_spinning(&mut self, fd: BorrowedFd<'_>, spin: Duration) -> Result<Filled> {
        match self.spin_fill(fd, spin)? {
            Some(filled) => Ok(filled),
            None => self.fill(fd),
        }
    }

    /// Polls the socket without blocking for up to `spin`, and reads what arrives:
    /// `Some(what)` once something did (bytes or the end), `None` if nothing came in time (or
    /// the spin cannot pay: `fd` is no socket, or this machine has one CPU).
    ///
    /// A sleeping reader costs the writer a wake-up and itself a context switch, several
    /// microseconds each: more than a whole round trip on a pair of busy cores. A reader that
    /// expects an answer within microseconds (a proxy waiting for its reply, a server waiting
    /// for the next request of a client in a loop) spins here first. Between two polls it
    /// yields the CPU, so a spinning reader never delays a runnable thread.
    pub fn spin_fill(&mut self, fd: BorrowedFd<'_>, spin: Duration) -> Result<Option<Filled>> {
        if spin.is_zero() || !several_cpus() {
            return Ok(None);
        }
        self.make_room()?;
        let t0 = Instant::now();
        loop {
            match rustix::net::recv(fd, self.buf.spare_mut(), RecvFlags::DONTWAIT) {
                Ok((0, _)) => return Ok(Some(Filled::Eof)),
                Ok((n, _)) => {
                    self.buf.advance(n);
                    return Ok(Some(Filled::Data));
                }
                Err(Errno::AGAIN) | Err(Errno::INTR) => {}
                Err(Errno::NOTSOCK) => return Ok(None),
                Err(e) => return Err(e.into()),
            }
            if t0.elapsed() >= spin {
                return Ok(None);
            }
            // On a loaded machine another runnable thread (perhaps the very peer we wait for)
            // gets the CPU; on an idle one this returns at once.
            std::thread::yield_now();
        }
    }

    /// The header of the frame at `start`: (header length, payload length), if it is there.
    fn header(&self) -> Result<Option<(usize, usize)>> {
        let rest = &self.buf[self.start..];
        let Some(short) = rest.get(..4) else {
            return Ok(None);
        };
        let n = i32::from_be_bytes([short[0], short[1], short[2], short[3]]);
        if n >= 0 {
            return self.check(4, n as u64);
        }
        if n != -1 {
            return Err(Error::Protocol(format!("negative message length {n}")));
        }
        let Some(long) = rest.get(4..12) else {
            return Ok(None);
        };
        let mut b = [0u8; 8];
        b.copy_from_slice(long);
        self.check(12, u64::from_be_bytes(b))
    }

    fn check(&self, header: usize, len: u64) -> Result<Option<(usize, usize)>> {
        if len > self.limit {
            return Err(Error::MessageTooLong {
                length: len,
                limit: self.limit,
            });
        }
        let len = usize::try_from(len)
            .map_err(|_| Error::Protocol("a message longer than memory".into()))?;
        Ok(Some((header, len)))
    }

    /// How many more bytes the frame under way needs (0 if none is under way).
    fn missing(&self) -> usize {
        match self.header() {
            // Saturating: without a limit, a header may announce up to `usize::MAX` bytes.
            Ok(Some((h, len))) => h
                .saturating_add(len)
                .saturating_sub(self.buf.len() - self.start),
            _ => 0,
        }
    }

    /// The next whole frame, consumed and owned: a buffer and where the payload is in it;
    /// `None` until it has all arrived. A payload of at least `take_at` bytes that ends the
    /// bytes read so far (a large message usually does) is handed over in the reader's own
    /// buffer, without a copy, and the reader starts a new one; any other is copied out.
    /// Beyond Python.
    pub fn next_frame_owned(
        &mut self,
        take_at: usize,
    ) -> Result<Option<(OwnedBytes, std::ops::Range<usize>)>> {
        let Some((h, len)) = self.header()? else {
            return Ok(None);
        };
        let begin = self.start + h;
        let Some(end) = begin.checked_add(len).filter(|&e| e <= self.buf.len()) else {
            return Ok(None);
        };
        if len >= take_at && end == self.buf.len() {
            self.start = 0;
            self.last_taken = end.min(MAX_STEP);
            let taken = std::mem::take(&mut self.buf);
            return Ok(Some((OwnedBytes::Wire(taken), begin..end)));
        }
        self.start = end;
        Ok(Some((
            OwnedBytes::Heap(self.buf[begin..end].to_vec()),
            0..len,
        )))
    }

    /// The next whole frame's payload, consumed; `None` until it has all arrived.
    pub fn next_frame(&mut self) -> Result<Option<&[u8]>> {
        let Some((h, len)) = self.header()? else {
            return Ok(None);
        };
        let begin = self.start + h;
        let Some(end) = begin.checked_add(len).filter(|&e| e <= self.buf.len()) else {
            return Ok(None);
        };
        self.start = end;
        Ok(Some(&self.buf[begin..end]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn socketpair() -> (std::os::fd::OwnedFd, std::os::fd::OwnedFd) {
        rustix::net::socketpair(
            rustix::net::AddressFamily::UNIX,
            rustix::net::SocketType::STREAM,
            rustix::net::SocketFlags::CLOEXEC,
            None,
        )
        .unwrap()
    }

    fn frame(payload: &[u8]) -> Vec<u8> {
        let mut v = (payload.len() as i32).to_be_bytes().to_vec();
        v.extend_from_slice(payload);
        v
    }

    /// A large frame that ends what was read comes in the reader's buffer, without a copy;
    /// a small one, or one with more bytes after it, is copied out; the frames after it still
    /// come whole, in order.
    #[test]
    fn owned_frames_are_handed_over_or_copied_and_none_is_lost() {
        use std::os::fd::AsFd;
        let (a, b) = socketpair();
        // Non-blocking, and every loop under a deadline: a frame that never comes whole fails
        // the test instead of hanging it.
        rustix::io::ioctl_fionbio(&a, true).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let big: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        let mut r = FrameReader::default();
        // A big frame alone: handed over.
        rustix::io::write(&b, &frame(&big)).unwrap();
        let mut got = None;
        while got.is_none() {
            assert!(Instant::now() < deadline, "the big frame never came whole");
            r.fill(a.as_fd()).unwrap();
            got = r.next_frame_owned(1000).unwrap();
        }
        let (buf, range) = got.unwrap();
        assert_eq!((range.start, &buf[range.clone()]), (4, &big[..]));
        assert!(r.is_empty());
        // A big frame followed by a small one, then a small one alone: copied out.
        let mut two = frame(&big);
        two.extend(frame(b"tail"));
        rustix::io::write(&b, &two).unwrap();
        rustix::io::write(&b, &frame(b"last")).unwrap();
        let mut frames = Vec::new();
        while frames.len() < 3 {
            assert!(
                Instant::now() < deadline,
                "got {} of 3 frames",
                frames.len()
            );
            r.fill(a.as_fd()).unwrap();
            while let Some((buf, range)) = r.next_frame_owned(1000).unwrap() {
                frames.push(buf[range].to_vec());
            }
        }
        assert_eq!(
            frames,
            vec![big.clone(), b"tail".to_vec(), b"last".to_vec()]
        );
        assert!(r.is_empty());
    }

    #[test]
    fn spin_fill_reads_what_comes_within_the_spin_and_gives_up_after_it() {
        use std::os::fd::AsFd;
        let (a, b) = socketpair();
        let mut r = FrameReader::default();
        let spin = Duration::from_millis(20);
        if !several_cpus() {
            assert_eq!(r.spin_fill(a.as_fd(), spin).unwrap(), None);
            return;
        }
        // Nothing comes: it gives up after the spin, without blocking.
        let t0 = Instant::now();
        assert_eq!(r.spin_fill(a.as_fd(), spin).unwrap(), None);
        assert!(t0.elapsed() >= spin);
        assert!(t0.elapsed() < Duration::from_secs(10));
        // A frame written during the spin is read by it.
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(2));
            rustix::io::write(&b, &frame(b"hi")).unwrap();
            b
        });
        let mut got = None;
        let deadline = Instant::now() + Duration::from_secs(10);
        while got.is_none() && Instant::now() < deadline {
            got = r.spin_fill(a.as_fd(), Duration::from_secs(1)).unwrap();
        }
        assert_eq!(got, Some(Filled::Data));
        assert_eq!(r.next_frame().unwrap(), Some(&b"hi"[..]));
        // The end of the peer is seen too.
        drop(writer.join().unwrap());
        assert_eq!(r.spin_fill(a.as_fd(), spin).unwrap(), Some(Filled::Eof));
        // A pipe is no socket: no spin at all.
        let (pr, _pw) = rustix::pipe::pipe().unwrap();
        let t0 = Instant::now();
        assert_eq!(
            r.spin_fill(pr.as_fd(), Duration::from_secs(5)).unwrap(),
            None
        );
        assert!(t0.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn frames_are_cut_from_bulk_reads_whatever_the_boundaries() {
        let (a, b) = socketpair();
        let mut all = Vec::new();
        for i in 0..50u8 {
            all.extend(frame(&vec![i; i as usize * 7]));
        }
        let mut long = (-1i32).to_be_bytes().to_vec();
        long.extend_from_slice(&3u64.to_be_bytes());
        long.extend_from_slice(b"xyz");
        all.extend(long);
        let mut r = FrameReader::default();
        let mut got = Vec::new();
        for piece in all.chunks(13) {
            rustix::io::write(&a, piece).unwrap();
            assert!(matches!(r.fill(b.as_fd()).unwrap(), Filled::Data));
            while let Some(p) = r.next_frame().unwrap() {
                got.push(p.to_vec());
            }
        }
        assert_eq!(got.len(), 51);
        for (i, p) in got.iter().take(50).enumerate() {
            assert_eq!(p, &vec![i as u8; i * 7]);
        }
        assert_eq!(got[50], b"xyz");
        drop(a);
        assert!(matches!(r.fill(b.as_fd()).unwrap(), Filled::Eof));
    }

    #[test]
    fn a_huge_length_header_never_sizes_the_buffer() {
        let (a, b) = socketpair();
        let mut huge = (-1i32).to_be_bytes().to_vec();
        huge.extend_from_slice(&(1u64 << 60).to_be_bytes());
        rustix::io::write(&a, &huge).unwrap();
        rustix::io::write(&a, b"some bytes").unwrap();
        drop(a);
        let mut r = FrameReader::default();
        while r.fill(b.as_fd()).unwrap() == Filled::Data {
            assert!(r.next_frame().unwrap().is_none());
        }
        assert!(
            r.buf.capacity() <= 2 * MAX_STEP,
            "grew to {}",
            r.buf.capacity()
        );
        // The largest announcement of all, without a limit: no overflow (found by the
        // `manager_request` fuzz target: "attempt to add with overflow").
        let mut max = FrameReader::default();
        max.buf.extend_from_slice(&(-1i32).to_be_bytes()).unwrap();
        max.buf.extend_from_slice(&u64::MAX.to_be_bytes()).unwrap();
        assert_eq!(
            max.missing(),
            usize::MAX - 12,
            "saturates, less the 12 bytes read"
        );
        assert!(max.next_frame().unwrap().is_none());
        // With a limit, the announcement itself is refused.
        let mut limited = FrameReader::with_limit(1 << 20);
        limited.buf.extend_from_slice(&huge).unwrap();
        assert!(matches!(
            limited.next_frame(),
            Err(Error::MessageTooLong { .. })
        ));
    }

    use std::os::fd::AsFd;
}
