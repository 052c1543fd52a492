//! The fuzz harnesses: everything that reads a peer's bytes, driven by arbitrary input.
//!
//! Each `pub fn` here is one target's whole body. The libFuzzer binaries in `fuzz_targets/`
//! call them (`cargo xtask fuzz NAME SECONDS`), and the stable test `tests/fuzz.rs` of the root
//! package includes this file with `#[path]` and replays the committed inputs of
//! `fuzz/regressions/<target>/` and `fuzz/seeds/<target>/` through the very same functions, so
//! every finding stays checked by `cargo xtask ci` without nightly or cargo-fuzz.
//!
//! This file must build as a module of another crate too: it depends only on `mp_core`,
//! `mp_connection`, `mp_manager` and `serde`, and has no crate-level attributes.
//!
//! A harness fails (panics) when the library panics, hangs (a read that times out although every
//! byte has arrived and the writer is closed), frames bytes differently from a reference model
//! of the wire format, leaks a file descriptor, authenticates a peer that does not know the key,
//! or makes a single allocation larger than the bound the peer's bytes allow
//! ([`MaxAlloc`]). See `fuzz/README.md`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::HashMap;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use mp_connection::Digest;
use mp_core::codec::{self, Bytes};
use mp_core::handle::HandleFd;
use mp_core::{Connection, Error, Function};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Every read of a harness gives up after this long. All input is written and the writer closed
/// before the first read, so a read that times out is a hang, and the harness panics.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Inputs longer than this are skipped: they must fit in a pipe's buffer (64 KiB) so the
/// harness can write all of them before reading, from one thread.
pub const MAX_INPUT: usize = 60 * 1024;
/// The key of the handshake targets.
const AUTHKEY: &[u8] = b"fuzz authkey";
/// Payload buffers grow by at most this much ahead of the bytes that arrived (mp-core's
/// `ALLOC_STEP`): the largest allocation a frame header alone may cause without a limit.
const ALLOC_STEP: usize = 16 << 20;
/// What decoding a value may allocate whatever its length headers say: serde caps a collection's
/// preallocation at 1 MiB of elements (`size_hint::cautious`); a hash map's table adds its
/// control bytes and a power-of-two rounding on top.
const DECODE_SLACK: usize = 4 << 20;

// ----- allocation bound -----

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

/// A global allocator that records, per thread, the largest single allocation since the last
/// [`MaxAlloc::take`]. A fuzz binary (or the replay test) installs it with
/// `#[global_allocator] static ALLOC: MaxAlloc = MaxAlloc;`; without it the bound is not checked.
pub struct MaxAlloc;

impl MaxAlloc {
    fn record(size: usize) {
        // `try_with`: allocations during thread teardown are not recorded.
        let _ = LARGEST.try_with(|l| {
            if size > l.get() {
                l.set(size);
            }
        });
    }

    /// The largest allocation this thread made since the last call, and resets it.
    pub fn take() -> usize {
        LARGEST.try_with(|l| l.replace(0)).unwrap_or(0)
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged; recording
// a size touches only a const-initialized thread-local `Cell` and never allocates.
unsafe impl GlobalAlloc for MaxAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        Self::record(layout.size());
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which `System` shares.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        Self::record(layout.size());
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` through this allocator, with this `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        Self::record(new_size);
        // SAFETY: `ptr` came from `System` through this allocator, with this `layout`; the
        // caller upholds the rest of `realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

fn check_alloc(what: &str, bound: usize) {
    let largest = MaxAlloc::take();
    assert!(
        largest <= bound,
        "{what}: one allocation of {largest} bytes, more than the {bound} the input allows"
    );
}

// ----- fd leaks -----

/// The lowest free fd number: what the next `open` gets.
fn lowest_free_fd() -> i32 {
    let probe = std::fs::File::open("/dev/null").expect("open /dev/null");
    probe.as_raw_fd()
}

/// Fails when an fd opened during `f` is still open after it (the lowest free fd moved up).
/// Only meaningful while no other thread opens fds: the fuzz binaries, and the one replay test.
fn no_fd_leak<R>(what: &str, f: impl FnOnce() -> R) -> R {
    let before = lowest_free_fd();
    let result = f();
    let after = lowest_free_fd();
    assert!(
        after <= before,
        "{what}: leaked an fd (lowest free fd {before} before, {after} after)"
    );
    result
}

// ----- the typical types -----

/// A struct with an `Option` and `Vec`s, the shape of a typical message.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    id: u32,
    name: String,
    tag: Option<String>,
    values: Vec<i64>,
    flags: Vec<bool>,
}

/// A recursive enum: arbitrarily deep nesting in the input.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub enum Shape {
    /// A unit variant.
    Empty,
    /// A tuple variant.
    Point(i32, i32),
    /// A struct variant.
    Named {
        /// Some text.
        name: String,
    },
    /// Nesting.
    Group(Vec<Shape>),
}

/// A recursive enum whose newtype variant nests through a one-entry map only (no array).
#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub enum Expr {
    /// A leaf.
    Lit(i64),
    /// Nesting through the variant's map.
    Neg(Box<Expr>),
    /// Nesting through the variant's map and an array.
    Add(Box<Expr>, Box<Expr>),
}

/// Decodes `bytes` as `T`; when that works, the value must encode and decode back to itself.
fn decode_roundtrip<T>(bytes: &[u8]) -> Option<T>
where
    T: DeserializeOwned + Serialize + PartialEq + std::fmt::Debug,
{
    let value = codec::decode::<T>(bytes).ok()?;
    let again = codec::encode(&value).expect("a decoded value encodes");
    let back: T = codec::decode(&again).expect("an encoded value decodes");
    assert_eq!(back, value, "decode(encode(v)) != v");
    Some(value)
}

// ----- target: codec -----

/// Target `codec`: the input decoded as each typical type (`i64`, `String`, `Bytes`,
/// `Vec<u8>`, `(u32, String)`, [`Record`], `HashMap<String, i64>`, [`Shape`], [`Expr`], anything). Must
/// never panic or allocate more than a few MiB, and what decodes must round-trip.
pub fn codec(data: &[u8]) {
    MaxAlloc::take();
    decode_roundtrip::<i64>(data);
    decode_roundtrip::<String>(data);
    decode_roundtrip::<Bytes>(data);
    decode_roundtrip::<Vec<u8>>(data);
    decode_roundtrip::<(u32, String)>(data);
    decode_roundtrip::<Record>(data);
    decode_roundtrip::<HashMap<String, i64>>(data);
    decode_roundtrip::<Shape>(data);
    decode_roundtrip::<Expr>(data);
    let _ = codec::decode::<serde::de::IgnoredAny>(data);
    // Outside a transfer, handles and functions never decode.
    assert!(codec::decode::<HandleFd>(data).is_err());
    assert!(codec::decode::<Function<fn(i64) -> i64>>(data).is_err());
    check_alloc("codec", DECODE_SLACK + 16 * data.len());
}

// ----- target: frame -----

/// The limits a frame input picks from (its second byte).
const LIMITS: [u64; 8] = [0, 1, 7, 64, 255, 4096, 1 << 20, u64::MAX];

/// What the reference model expects of the next frame.
#[derive(Debug)]
enum Expected<'a> {
    /// A whole frame with this payload; the stream goes on after it.
    Frame(&'a [u8], usize),
    /// Nothing left: end of file.
    Eof,
    /// The announced length is over the connection's limit.
    TooLong(u64),
    /// A length below -1.
    Negative,
    /// The stream ends inside the frame.
    Truncated,
}

/// The wire format, independently: a 4-byte big-endian signed length (-1: an 8-byte length
/// follows), then the payload. Returns what reading at `pos` must give.
fn reference_frame(stream: &[u8], pos: usize, limit: u64) -> Expected<'_> {
    let rest = &stream[pos..];
    if rest.is_empty() {
        return Expected::Eof;
    }
    let Some(short) = rest.get(..4) else {
        return Expected::Truncated;
    };
    let n = i32::from_be_bytes(short.try_into().unwrap());
    let (len, header): (u64, usize) = match n {
        0.. => (n as u64, 4),
        -1 => match rest.get(4..12) {
            Some(long) => (u64::from_be_bytes(long.try_into().unwrap()), 12),
            None => return Expected::Truncated,
        },
        _ => return Expected::Negative,
    };
    if len > limit {
        return Expected::TooLong(len);
    }
    match usize::try_from(len)
        .ok()
        .and_then(|len| rest.get(header..header.checked_add(len)?))
    {
        Some(payload) => Expected::Frame(payload, pos + header + payload.len()),
        None => Expected::Truncated,
    }
}

/// Writes `stream` into a fresh socketpair (with `nfds` fds attached to its byte at `fds_at`,
/// or its last byte) or pipe and closes the writing end; returns the reading end as an
/// untrusted `Connection`, as a listener's accepted connection is.
fn connection_with_input(stream: &[u8], pipe: bool, nfds: usize, fds_at: usize) -> Connection {
    let (reader, writer): (OwnedFd, OwnedFd) = if pipe {
        let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).expect("pipe");
        (r, w)
    } else {
        let (a, b) = UnixStream::pair().expect("socketpair");
        (a.into(), b.into())
    };
    let mut rest = stream;
    if nfds > 0 && !rest.is_empty() {
        let before = fds_at.min(rest.len() - 1);
        std::fs::File::from(writer.try_clone().expect("dup"))
            .write_all(&rest[..before])
            .expect("write the input (it fits in the buffer)");
        rest = &rest[before..];
        let extra: Vec<OwnedFd> = (0..nfds)
            .map(|_| {
                std::fs::File::open("/dev/null")
                    .expect("open /dev/null")
                    .into()
            })
            .collect();
        let borrowed: Vec<_> = extra.iter().map(|f| f.as_fd()).collect();
        let mut space = [std::mem::MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(3))];
        let mut control = rustix::net::SendAncillaryBuffer::new(&mut space);
        assert!(control.push(rustix::net::SendAncillaryMessage::ScmRights(&borrowed)));
        let first = [std::io::IoSlice::new(&rest[..1])];
        let sent = rustix::net::sendmsg(
            &writer,
            &first,
            &mut control,
            rustix::net::SendFlags::NOSIGNAL,
        )
        .expect("sendmsg");
        rest = &rest[sent..];
    }
    std::fs::File::from(writer)
        .write_all(rest)
        .expect("write the input (it fits in the buffer)");
    Connection::from_fd(reader, true, true).expect("a connection")
}

/// Target `frame`: the input's first byte picks the read method, the transport (socketpair or
/// pipe) and how many fds come with the stream; its second byte picks the connection's message
/// size limit (low 3 bits) and the offset of the byte the fds come with (high 5 bits: the first
/// byte of a header, or of a later header, or inside a payload); its third byte picks
/// `maxlength` (for `recv_bytes_max`) or the buffer size (for `recv_bytes_into`). The rest is written into the transport, the writer closed, and the
/// reader reads frames until end of file or an error that ends the stream.
///
/// Checked: no panic, no hang, the bytes framed exactly as the reference model says, errors as
/// documented (`BufferTooShort` and `Codec` leave the end usable; any other error leaves it
/// unreadable), no fd leaked, no allocation beyond the limit (or 16 MiB without one) plus what
/// decoding may take, and a `Function` never decodes from an untrusted peer.
pub fn frame(data: &[u8]) {
    if data.len() < 3 || data.len() > MAX_INPUT {
        return;
    }
    no_fd_leak("frame", || frame_inner(data));
}

fn frame_inner(data: &[u8]) {
    let ctl = data[0];
    let op = ctl & 3;
    let pipe = ctl & 4 != 0;
    let nfds = if pipe { 0 } else { usize::from((ctl >> 3) & 3) };
    let typ = ctl >> 5;
    let max_message = LIMITS[usize::from(data[1] & 7)];
    let fds_at = usize::from(data[1] >> 3);
    let second = LIMITS[usize::from(data[2]) % LIMITS.len()].min(64 << 10) as usize;
    let stream = &data[3..];

    MaxAlloc::take();
    let mut conn = connection_with_input(stream, pipe, nfds, fds_at);
    conn.set_max_message_size(max_message);
    let mut into_buf = vec![0u8; second];
    check_alloc("frame setup", DECODE_SLACK + 64 * data.len());

    let mut pos = 0;
    for _ in 0..=stream.len() {
        // recv_bytes_max's own limit comes on top of the connection's.
        let limit = if op == 0 {
            max_message.min(second as u64)
        } else {
            max_message
        };
        let expected = reference_frame(stream, pos, limit);
        let outcome = match op {
            0 => conn.recv_bytes_max_timeout(second, READ_TIMEOUT).map(Some),
            1 => recv_typed(&mut conn, typ, stream, pos, max_message),
            2 => conn
                .recv_bytes_into_timeout(&mut into_buf, READ_TIMEOUT)
                .map(|n| Some(into_buf[..n].to_vec())),
            _ => conn.recv_bytes_timeout(READ_TIMEOUT).map(Some),
        };
        let bound = max_message.min(ALLOC_STEP as u64) as usize + DECODE_SLACK;
        check_alloc("frame read", bound);
        if let Err(Error::Timeout) = outcome {
            panic!("a read timed out with every byte written and the writer closed: a hang");
        }
        if op == 1 {
            // Typed reads skip fd carrier frames; recv_typed checked the value itself.
            match outcome {
                Ok(_) => {
                    pos = next_value_frame_end(stream, pos, max_message)
                        .expect("a value came from a whole frame");
                    continue;
                }
                Err(Error::Codec(_) | Error::Handle(_)) => {
                    // The frame is consumed and the end stays usable.
                    pos = next_value_frame_end(stream, pos, max_message)
                        .expect("a value that does not decode came from a whole frame");
                    continue;
                }
                Err(_) => break,
            }
        }
        match (expected, outcome) {
            (Expected::Frame(payload, end), Ok(Some(got))) => {
                assert_eq!(
                    got, payload,
                    "the payload differs from the reference framing"
                );
                pos = end;
            }
            (Expected::Frame(payload, end), Err(Error::BufferTooShort(m))) if op == 2 => {
                assert!(payload.len() > into_buf.len());
                assert_eq!(m.0, payload, "BufferTooShort carries the whole message");
                pos = end;
            }
            (Expected::Eof, Err(Error::Eof)) => {
                // Still at the end, and still readable.
                assert!(conn.recv_bytes_timeout(READ_TIMEOUT).unwrap_err().is_eof());
                break;
            }
            (Expected::TooLong(len), Err(Error::MessageTooLong { length, .. })) => {
                assert_eq!(len, length);
                assert_unreadable(&mut conn);
                break;
            }
            (Expected::Negative | Expected::Truncated, Err(Error::Protocol(_))) => {
                assert_unreadable(&mut conn);
                break;
            }
            (expected, outcome) => {
                panic!("reference says {expected:?}, the connection gave {outcome:?}")
            }
        }
    }
}

/// After an error that cut a frame, the end must refuse to read (not read garbage).
fn assert_unreadable(conn: &mut Connection) {
    match conn.recv_bytes_timeout(READ_TIMEOUT) {
        Err(Error::NotPermitted(_)) => {}
        other => panic!("a read after a cut frame gave {other:?}"),
    }
}

/// The end of the next value frame at `pos` (after any fd carrier frames), per the reference.
fn next_value_frame_end(stream: &[u8], mut pos: usize, limit: u64) -> Option<usize> {
    loop {
        match reference_frame(stream, pos, limit) {
            Expected::Frame(payload, end) => {
                if payload != b"\xc1mp-fds" {
                    return Some(end);
                }
                pos = end;
            }
            _ => return None,
        }
    }
}

/// `recv_timeout::<T>` for the type `typ` picks; a value that decodes must be the one the
/// reference frame decodes to. Returns no bytes (the caller only needs the outcome).
fn recv_typed(
    conn: &mut Connection,
    typ: u8,
    stream: &[u8],
    pos: usize,
    limit: u64,
) -> mp_core::Result<Option<Vec<u8>>> {
    fn check<T>(
        conn: &mut Connection,
        stream: &[u8],
        pos: usize,
        limit: u64,
    ) -> mp_core::Result<Option<Vec<u8>>>
    where
        T: DeserializeOwned + PartialEq + std::fmt::Debug,
    {
        let value = conn.recv_timeout::<T>(READ_TIMEOUT)?;
        let mut at = pos;
        let payload = loop {
            match reference_frame(stream, at, limit) {
                Expected::Frame(p, end) if p == b"\xc1mp-fds" => at = end,
                Expected::Frame(p, _) => break p,
                other => panic!("a value was received where the reference says {other:?}"),
            }
        };
        let reference: T = codec::decode(payload).expect("the reference frame decodes too");
        assert_eq!(
            value, reference,
            "recv decoded another value than the frame holds"
        );
        Ok(None)
    }
    match typ {
        0 => check::<i64>(conn, stream, pos, limit),
        1 => check::<String>(conn, stream, pos, limit),
        2 => check::<Bytes>(conn, stream, pos, limit),
        3 => check::<(u32, String)>(conn, stream, pos, limit),
        4 => check::<Record>(conn, stream, pos, limit),
        5 => check::<HashMap<String, i64>>(conn, stream, pos, limit),
        // Handles: a peer's fds may become a Connection or a bare fd; they are dropped here.
        6 => conn
            .recv_timeout::<(Option<Connection>, Vec<HandleFd>)>(READ_TIMEOUT)
            .map(|_| None),
        _ => match conn.recv_timeout::<Function<fn(i64) -> i64>>(READ_TIMEOUT) {
            Ok(f) => panic!("an untrusted peer's bytes decoded as a function: {f:?}"),
            Err(e) => Err(e),
        },
    }
}

// ----- targets: handshake -----

/// A socketpair with `input` written into one end: returns our end as an untrusted
/// `Connection` and the peer's end, shut for writing (or closed, when `close_peer`: then our
/// writes fail).
fn handshake_pair(input: &[u8], close_peer: bool) -> (Connection, Option<UnixStream>) {
    let (ours, mut theirs) = UnixStream::pair().expect("socketpair");
    theirs.write_all(input).expect("write the input");
    theirs
        .shutdown(std::net::Shutdown::Write)
        .expect("shutdown");
    let conn = Connection::from_fd(ours.into(), true, true).expect("a connection");
    (conn, (!close_peer).then_some(theirs))
}

/// Target `handshake_server`: the input (after a first byte that picks the digest and whether
/// the peer stays to read our verdict) is the client's side of the exchange, against
/// `deliver_challenge_timeout`. Must never panic or hang, and never succeed: the input cannot
/// know the HMAC of a random challenge.
pub fn handshake_server(data: &[u8]) {
    let Some((&ctl, input)) = data.split_first() else {
        return;
    };
    if input.len() > MAX_INPUT {
        return;
    }
    no_fd_leak("handshake_server", || {
        let digest = Digest::ALL[usize::from(ctl & 7) % Digest::ALL.len()];
        let (mut conn, _peer) = handshake_pair(input, ctl & 8 != 0);
        MaxAlloc::take();
        let result =
            mp_connection::deliver_challenge_timeout(&mut conn, AUTHKEY, digest, READ_TIMEOUT);
        check_alloc("handshake_server", 64 << 10);
        match result {
            Ok(()) => panic!("the server accepted a client that does not know the key"),
            Err(e) => assert!(!e.is_timeout(), "the handshake hung: {e}"),
        }
    });
}

/// Target `handshake_client`: the input (after a first byte that picks whether the peer stays
/// to read our reply) is the server's side of the exchange, against `answer_challenge_timeout`.
/// Must never panic or hang, and succeed only when the server sent a well-formed challenge and
/// then `#WELCOME#`.
pub fn handshake_client(data: &[u8]) {
    let Some((&ctl, input)) = data.split_first() else {
        return;
    };
    if input.len() > MAX_INPUT {
        return;
    }
    no_fd_leak("handshake_client", || {
        let (mut conn, _peer) = handshake_pair(input, ctl & 1 != 0);
        MaxAlloc::take();
        let result = mp_connection::answer_challenge_timeout(&mut conn, AUTHKEY, READ_TIMEOUT);
        check_alloc("handshake_client", 64 << 10);
        match result {
            Ok(()) => assert!(
                welcomed(input),
                "the client accepted an exchange that is not a challenge then #WELCOME#"
            ),
            Err(e) => assert!(!e.is_timeout(), "the handshake hung: {e}"),
        }
    });
}

/// Whether `input` starts with a frame `#CHALLENGE#` + at least 20 bytes, then a frame
/// `#WELCOME#`.
fn welcomed(input: &[u8]) -> bool {
    let Expected::Frame(challenge, end) = reference_frame(input, 0, 256) else {
        return false;
    };
    let Expected::Frame(verdict, _) = reference_frame(input, end, 256) else {
        return false;
    };
    challenge.starts_with(b"#CHALLENGE#") && challenge.len() >= 11 + 20 && verdict == b"#WELCOME#"
}

// ----- target: the manager's request decoder -----

/// Target `manager_request`: the input, as a client's bytes after the handshake, served by a
/// fresh manager server on this thread (`Server::serve_connection`). Byte 0 picks how: odd, the
/// rest is the raw stream; even, it is a run of `[len: u8][len bytes]` chunks, each sent as one
/// frame (so that most of them reach the request decoder and the objects' methods). Must never
/// panic or hang; every reply must be a well-formed `Reply` frame; the server must close when
/// the input ends (blocking calls give up: their client is gone).
pub fn manager_request(data: &[u8]) {
    let Some((&ctl, input)) = data.split_first() else {
        return;
    };
    if input.len() > MAX_INPUT {
        return;
    }
    let mut stream = Vec::with_capacity(input.len() + 64);
    if ctl & 1 == 1 {
        stream.extend_from_slice(input);
    } else {
        let mut rest = input;
        while let Some((&len, tail)) = rest.split_first() {
            let (chunk, after) = tail.split_at(usize::from(len).min(tail.len()));
            stream.extend_from_slice(&(chunk.len() as i32).to_be_bytes());
            stream.extend_from_slice(chunk);
            rest = after;
        }
    }
    no_fd_leak("manager_request", || {
        let server = mp_manager::Server::bind(None, AUTHKEY).expect("a server");
        let (ours, mut theirs) = UnixStream::pair().expect("socketpair");
        // Replies are read on a thread, so the server never blocks writing them.
        let mut reader = theirs.try_clone().expect("clone");
        let replies = std::thread::spawn(move || {
            let _ = reader.set_read_timeout(Some(READ_TIMEOUT));
            let mut all = Vec::new();
            let _ = std::io::Read::read_to_end(&mut reader, &mut all);
            all
        });
        theirs.write_all(&stream).expect("write the input");
        theirs
            .shutdown(std::net::Shutdown::Write)
            .expect("shutdown");
        let conn = Connection::from_fd(ours.into(), true, true).expect("a connection");
        server.serve_connection(conn);
        drop(theirs);
        let out = replies.join().expect("the reply reader");
        let mut pos = 0;
        while pos < out.len() {
            match reference_frame(&out, pos, u64::MAX) {
                Expected::Frame(payload, end) => {
                    if let Err(e) = codec::decode::<mp_manager::protocol::Reply>(payload) {
                        panic!("the server sent a reply that does not decode: {e}");
                    }
                    pos = end;
                }
                _ => panic!("the server sent a malformed frame at byte {pos}"),
            }
        }
    });
}

/// A target: its name and its harness.
pub type Target = (&'static str, fn(&[u8]));

/// The targets, by name, for the replay test.
pub const TARGETS: [Target; 5] = [
    ("codec", codec),
    ("frame", frame),
    ("handshake_client", handshake_client),
    ("handshake_server", handshake_server),
    ("manager_request", manager_request),
];
