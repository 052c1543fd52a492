//! Bulk reading of a worker's messages: every frame that has arrived, with one `read`.
//!
//! A worker writes one message per task result (so that its death never loses one), and the
//! supervisor is the pool's bottleneck: reading each message with `Connection::recv` costs a
//! `recvmsg` for the header, a `read` for the payload and a `poll` to see whether another one
//! waits. This reader takes whatever the socket holds in one `read` and cuts it into frames.
//! The frames are the stack's (and CPython's) wire format: a 4-byte big-endian signed length,
//! or `-1` and an 8-byte length, then the payload. Worker-to-pool messages never carry fds.
//!
//! Follow-up: this belongs in mp-core as a bulk receive of `Connection` (one frame reader in
//! the workspace); the pool's brief allowed no change to mp-core's connection code.

use std::os::fd::BorrowedFd;

use rustix::io::Errno;

/// How much a read asks for at least.
const READ_AT_LEAST: usize = 64 << 10;

/// The frames read so far from one worker's connection.
#[derive(Default)]
pub(crate) struct FrameReader {
    buf: Vec<u8>,
    /// Where the first unconsumed byte is.
    start: usize,
}

/// What one fill found.
pub(crate) enum Filled {
    /// Bytes arrived (or nothing was ready).
    Data,
    /// The peer closed its end (after the bytes read before).
    Eof,
}

impl FrameReader {
    /// One `read` of what `fd` holds (`fd` must be readable: after a `poll`, or at EOF).
    pub(crate) fn fill(&mut self, fd: BorrowedFd<'_>) -> mp_core::Result<Filled> {
        if self.start > 0 && self.start * 2 >= self.buf.len() {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        let want = self.missing().max(READ_AT_LEAST);
        self.buf.reserve(want);
        loop {
            // Reads into the spare capacity; the vector grows by what was read.
            match rustix::io::read(fd, rustix::buffer::spare_capacity(&mut self.buf)) {
                Ok(0) => return Ok(Filled::Eof),
                Ok(_) | Err(Errno::AGAIN) => return Ok(Filled::Data),
                Err(Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The header of the frame at `start`: (header length, payload length), if it is there.
    fn header(&self) -> mp_core::Result<Option<(usize, usize)>> {
        let rest = &self.buf[self.start..];
        let Some(short) = rest.get(..4) else {
            return Ok(None);
        };
        let n = i32::from_be_bytes([short[0], short[1], short[2], short[3]]);
        if n >= 0 {
            return Ok(Some((4, n as usize)));
        }
        if n != -1 {
            return Err(mp_core::Error::Protocol(format!(
                "negative message length {n}"
            )));
        }
        let Some(long) = rest.get(4..12) else {
            return Ok(None);
        };
        let mut b = [0u8; 8];
        b.copy_from_slice(long);
        let len = usize::try_from(u64::from_be_bytes(b))
            .map_err(|_| mp_core::Error::Protocol("a message longer than memory".into()))?;
        Ok(Some((12, len)))
    }

    /// How many more bytes the frame under way needs (0 if none is under way).
    fn missing(&self) -> usize {
        match self.header() {
            Ok(Some((h, len))) => (h + len).saturating_sub(self.buf.len() - self.start),
            _ => 0,
        }
    }

    /// The next whole frame's payload, consumed.
    pub(crate) fn next_frame(&mut self) -> mp_core::Result<Option<&[u8]>> {
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

    fn frame(payload: &[u8]) -> Vec<u8> {
        let mut v = (payload.len() as i32).to_be_bytes().to_vec();
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn frames_are_cut_from_bulk_reads_whatever_the_boundaries() {
        let (a, b) = rustix::net::socketpair(
            rustix::net::AddressFamily::UNIX,
            rustix::net::SocketType::STREAM,
            rustix::net::SocketFlags::CLOEXEC,
            None,
        )
        .unwrap();
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

    use std::os::fd::AsFd;
}
