//! Integration tests for `pipe()` and `Connection`: framed messages across real processes under
//! every start method, CPython's wire format byte for byte, a real CPython peer, and the error
//! behaviour of every method.
//!
//! Ported in spirit from CPython's `Lib/test/_test_multiprocessing.py`, class `_TestConnection`:
//! `test_connection` (send/recv of values, `send_bytes` with offset and size, `recv_bytes_into`
//! and `BufferTooShort`, `poll` with and without a timeout, EOF after the peer closes),
//! `test_duplex_false` (a one-way pipe refuses the wrong direction), `test_sendbytes`
//! (offset/size out of range), `test_spawn_close` (EOF once the child has exited or was
//! killed) and `test_empty_string` (empty messages). New here: message boundaries under load,
//! the length limits, the wire format byte for byte (long header, negative and huge lengths,
//! truncation), `set_timeout`, a real CPython peer, and a real message over 2 GiB (which runs
//! only when enough memory is available; see `huge_test_enabled`).
//!
//! Every blocking call is bounded by `mp_testkit::LONG`: the parent polls before each `recv`,
//! joins with a timeout, and calls that might hang on a bug run on a watchdog thread
//! (`mp_testkit::within`), so a bug fails a test instead of hanging it.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mp_core::{pipe, Connection, Error, Message, StartMethod};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use mp_testkit::{recv, recv_bytes, start, within, within_for, Rng, LONG, METHODS};

// ----- helpers -----

/// A connection whose peer is a raw socket, for writing and reading the wire format by hand.
fn raw_pair() -> (UnixStream, Connection) {
    let (raw, ours) = UnixStream::pair().unwrap();
    raw.set_read_timeout(Some(LONG)).unwrap();
    raw.set_write_timeout(Some(LONG)).unwrap();
    let conn = Connection::from_fd(OwnedFd::from(ours), true, true).unwrap();
    (raw, conn)
}

/// Message `i` of the boundary tests: sizes 0..5000 (message 0 is empty, message 1 is 4999
/// bytes), contents that differ between neighbours so a merged or split frame never compares
/// equal.
fn boundary_messages(seed: u64, count: usize) -> Vec<Vec<u8>> {
    let mut rng = Rng::new(seed);
    (0..count)
        .map(|i| {
            let size = match i {
                0 => 0,
                1 => 4999,
                _ => (rng.next_u64() % 5000) as usize,
            };
            (0..size)
                .map(|j| (i as u64 * 31 + j as u64 * 7 + seed) as u8)
                .collect()
        })
        .collect()
}

/// `n` bytes of a recognisable pattern.
fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

// ----- typed values across a child -----

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Shape {
    Circle(f64),
    Rect { w: u32, h: u32 },
    Empty,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Leaf {
    id: u32,
    tags: Vec<String>,
    score: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Tree {
    name: String,
    leaves: Vec<Leaf>,
    index: BTreeMap<String, i64>,
    pair: (i8, u64),
    shapes: Vec<Shape>,
    nothing: Option<Box<Tree>>,
}

/// A 10 MiB byte buffer carried as one MessagePack `bin` (serde's `Vec<u8>` would be an array
/// of 10 million integers, which a debug build encodes slowly).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Blob(#[serde(with = "serde_bytes")] Vec<u8>);

fn sample_tree() -> Tree {
    Tree {
        name: "root ünïcödé 🌲".into(),
        leaves: (0..20)
            .map(|i| Leaf {
                id: i,
                tags: (0..i % 4).map(|t| format!("tag{t}")).collect(),
                score: (i % 2 == 0).then_some(f64::from(i) / 3.0),
            })
            .collect(),
        index: [("a".to_string(), -1), ("b".to_string(), i64::MAX)]
            .into_iter()
            .collect(),
        pair: (-128, u64::MAX),
        shapes: vec![Shape::Circle(1.5), Shape::Rect { w: 3, h: 4 }, Shape::Empty],
        nothing: Some(Box::new(Tree {
            name: String::new(),
            leaves: Vec::new(),
            index: BTreeMap::new(),
            pair: (0, 0),
            shapes: Vec::new(),
            nothing: None,
        })),
    }
}

fn echo_one<T: Serialize + DeserializeOwned>(c: &mut Connection) {
    let v: T = c.recv().unwrap();
    c.send(&v).unwrap();
}

/// Echoes each value with its type, in the order `send_recv_values_both_ways` sends them, then
/// sends values of its own.
fn echo_values_child(mut c: Connection) {
    echo_one::<i64>(&mut c);
    echo_one::<i64>(&mut c);
    echo_one::<u64>(&mut c);
    echo_one::<String>(&mut c);
    echo_one::<String>(&mut c);
    echo_one::<Option<String>>(&mut c);
    echo_one::<Option<String>>(&mut c);
    echo_one::<Vec<u32>>(&mut c);
    echo_one::<Vec<u8>>(&mut c);
    echo_one::<Tree>(&mut c);
    echo_one::<Blob>(&mut c);
    // Values that start in the child.
    c.send(&sample_tree()).unwrap();
    c.send(&Blob(pattern(10 << 20))).unwrap();
    c.send(&(7u8, "seven".to_string(), None::<u8>)).unwrap();
}

fn roundtrip<T>(c: &mut Connection, v: &T)
where
    T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    c.send(v).unwrap();
    let back: T = recv(c);
    assert_eq!(&back, v);
}

#[test]
fn send_recv_values_both_ways_across_a_child() {
    for m in METHODS {
        let (mut c, theirs) = pipe(true).unwrap();
        let p = start(m, echo_values_child, theirs);
        roundtrip(&mut c, &0i64);
        roundtrip(&mut c, &i64::MIN);
        roundtrip(&mut c, &u64::MAX);
        roundtrip(&mut c, &String::new());
        roundtrip(&mut c, &"héllo wörld 🌍".to_string());
        roundtrip(&mut c, &None::<String>);
        roundtrip(&mut c, &Some("x".to_string()));
        roundtrip(&mut c, &(0..1000u32).collect::<Vec<_>>());
        roundtrip(&mut c, &pattern(256 << 10));
        roundtrip(&mut c, &sample_tree());
        roundtrip(&mut c, &Blob(pattern(10 << 20)));
        assert_eq!(recv::<Tree>(&mut c), sample_tree());
        assert_eq!(recv::<Blob>(&mut c).0, pattern(10 << 20));
        assert_eq!(
            recv::<(u8, String, Option<u8>)>(&mut c),
            (7, "seven".to_string(), None)
        );
        p.join_ok();
    }
}

// ----- empty messages and message boundaries -----

fn empty_then_word_child(mut c: Connection) {
    c.send_bytes(&[]).unwrap();
    c.send_bytes(b"after").unwrap();
    c.send_bytes(&[]).unwrap();
    let got = c.recv_bytes().unwrap();
    c.send(&got.len()).unwrap();
}

#[test]
fn zero_length_send_bytes_is_received_as_empty() {
    // In one process, over a socketpair and over a pipe.
    for duplex in [true, false] {
        let (mut r, mut w) = pipe(duplex).unwrap();
        w.send_bytes(&[]).unwrap();
        w.send_bytes(b"x").unwrap();
        assert_eq!(recv_bytes(&mut r), b"");
        assert_eq!(recv_bytes(&mut r), b"x");
        w.send_bytes(&[]).unwrap();
        let mut buf = [0u8; 4];
        assert!(r.poll_timeout(LONG).unwrap());
        assert_eq!(r.recv_bytes_into(&mut buf).unwrap(), 0);
        w.send_bytes(&[]).unwrap();
        assert!(r.poll_timeout(LONG).unwrap());
        assert_eq!(r.recv_bytes_into(&mut []).unwrap(), 0);
        assert!(!r.try_poll().unwrap());
    }
    // Across a child, both ways.
    for m in METHODS {
        let (mut c, theirs) = pipe(true).unwrap();
        let p = start(m, empty_then_word_child, theirs);
        assert_eq!(recv_bytes(&mut c), b"");
        assert_eq!(recv_bytes(&mut c), b"after");
        assert_eq!(recv_bytes(&mut c), b"");
        c.send_bytes(&[]).unwrap();
        assert_eq!(recv::<usize>(&mut c), 0);
        p.join_ok();
    }
}

const BOUNDARY_COUNT: usize = 1000;

/// Sends the boundary messages as fast as it can, then receives the parent's and reports the
/// index of the first mismatch (or `None`).
fn boundaries_child((mut c, seed): (Connection, u64)) {
    for msg in boundary_messages(seed, BOUNDARY_COUNT) {
        c.send_bytes(&msg).unwrap();
    }
    let expected = boundary_messages(seed + 1, BOUNDARY_COUNT);
    let mut first_bad = None;
    for (i, want) in expected.iter().enumerate() {
        let got = c.recv_bytes().unwrap();
        if first_bad.is_none() && &got != want {
            first_bad = Some(i);
        }
    }
    c.send(&first_bad).unwrap();
}

#[test]
fn message_boundaries_are_never_merged() {
    for (k, m) in METHODS.into_iter().enumerate() {
        let seed = 1000 * k as u64 + 17;
        let (mut c, theirs) = pipe(true).unwrap();
        let p = start(m, boundaries_child, (theirs, seed));
        // Let the child's messages pile up in the socket before reading any.
        std::thread::sleep(Duration::from_millis(50));
        for (i, want) in boundary_messages(seed, BOUNDARY_COUNT).iter().enumerate() {
            let got = recv_bytes(&mut c);
            assert!(
                &got == want,
                "message {i} under {m}: got {} bytes, want {}",
                got.len(),
                want.len()
            );
        }
        for msg in boundary_messages(seed + 1, BOUNDARY_COUNT) {
            c.send_bytes(&msg).unwrap();
        }
        assert_eq!(
            recv::<Option<usize>>(&mut c),
            None,
            "the child under {m} saw a merged or split message"
        );
        p.join_ok();
    }
}

// ----- send_bytes_vectored -----

/// The parts of message `k` of the vectored test: empty parts, many small ones (more than
/// one write takes), and large ones that fill the socket or pipe several times.
fn vectored_parts(k: usize) -> Vec<Vec<u8>> {
    let mut rng = Rng::new(31 + k as u64);
    match k {
        0 => vec![],
        1 => vec![vec![], vec![], vec![]],
        2 => (0..1500).map(|i| vec![i as u8; i % 3]).collect(),
        3 => vec![pattern(3 << 20), vec![], pattern(1 << 20), vec![7]],
        _ => (0..40)
            .map(|_| {
                let n = rng.below(70_000) as usize;
                pattern(n)
            })
            .collect(),
    }
}

const VECTORED_MESSAGES: usize = 8;

/// Sends every vectored message, the second half with a timeout (so each write is bounded:
/// `PIPE_BUF` bytes at a time on a pipe).
fn vectored_child(mut c: Connection) {
    for k in 0..VECTORED_MESSAGES {
        let parts = vectored_parts(k);
        let slices: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        if k >= VECTORED_MESSAGES / 2 {
            c.set_timeout(Some(LONG));
        }
        c.send_bytes_vectored(&slices).unwrap();
    }
}

#[test]
fn send_bytes_vectored_sends_the_concatenation_as_one_message() {
    for duplex in [true, false] {
        for m in METHODS {
            let (mut r, w) = pipe(duplex).unwrap();
            let p = start(m, vectored_child, w);
            for k in 0..VECTORED_MESSAGES {
                let want: Vec<u8> = vectored_parts(k).concat();
                let got = recv_bytes(&mut r);
                assert!(
                    got == want,
                    "message {k} under {m} (duplex {duplex}): {} bytes, want {}",
                    got.len(),
                    want.len()
                );
            }
            p.join_ok();
            // Nothing more than the messages: the next read finds the end.
            assert!(matches!(r.recv_bytes_timeout(LONG), Err(Error::Eof)));
        }
    }
}

// ----- send_bytes_range -----

#[test]
fn send_bytes_range_sends_the_slice() {
    let (mut a, mut b) = pipe(true).unwrap();
    let buf = b"0123456789";
    a.send_bytes_range(buf, 2, Some(5)).unwrap();
    a.send_bytes_range(buf, 7, None).unwrap();
    a.send_bytes_range(buf, 0, None).unwrap();
    a.send_bytes_range(buf, 10, None).unwrap();
    a.send_bytes_range(buf, 10, Some(0)).unwrap();
    a.send_bytes_range(buf, 3, Some(0)).unwrap();
    a.send_bytes_range(buf, 0, Some(10)).unwrap();
    assert_eq!(recv_bytes(&mut b), b"23456");
    assert_eq!(recv_bytes(&mut b), b"789");
    assert_eq!(recv_bytes(&mut b), b"0123456789");
    assert_eq!(recv_bytes(&mut b), b"");
    assert_eq!(recv_bytes(&mut b), b"");
    assert_eq!(recv_bytes(&mut b), b"");
    assert_eq!(recv_bytes(&mut b), b"0123456789");
    assert!(!b.try_poll().unwrap());
}

#[test]
fn send_bytes_range_out_of_range_is_invalid_argument_and_sends_nothing() {
    for duplex in [true, false] {
        let (mut r, mut w) = pipe(duplex).unwrap();
        let buf = b"0123456789";
        let bad: [(usize, Option<usize>); 7] = [
            (11, None),
            (11, Some(0)),
            (usize::MAX, None),
            (0, Some(11)),
            (5, Some(6)),
            (10, Some(1)),
            (1, Some(usize::MAX)),
        ];
        for (offset, size) in bad {
            match w.send_bytes_range(buf, offset, size) {
                Err(Error::InvalidArgument(_)) => {}
                other => panic!("offset {offset}, size {size:?}: {other:?}"),
            }
        }
        assert!(
            !r.try_poll().unwrap(),
            "an invalid send_bytes_range sent something"
        );
        w.send_bytes(b"still fine").unwrap();
        assert_eq!(recv_bytes(&mut r), b"still fine");
        assert!(!r.try_poll().unwrap());
    }
}

// ----- length limits -----

#[test]
fn recv_bytes_max_with_a_longer_message_is_message_too_long_then_unreadable() {
    let (mut a, mut b) = pipe(true).unwrap();
    b.send_bytes(&[7u8; 10]).unwrap();
    b.send_bytes(&[1u8; 100]).unwrap();
    b.send_bytes(b"never read").unwrap();
    assert!(a.poll_timeout(LONG).unwrap());
    // A message exactly at the limit is accepted.
    assert_eq!(a.recv_bytes_max(10).unwrap(), vec![7u8; 10]);
    match a.recv_bytes_max(10) {
        Err(Error::MessageTooLong {
            length: 100,
            limit: 10,
        }) => {}
        other => panic!("recv_bytes_max(10) of 100 bytes: {other:?}"),
    }
    // The peer is still open and more bytes are waiting: a reader that kept going would read
    // the payload as a header. Every read must now fail at once instead.
    let (mut a, results) = within("reading after MessageTooLong", move || {
        let r1 = a.recv_bytes().map(|v| v.len());
        let r2 = a.recv::<u32>();
        let r3 = a.recv_bytes_max(1000).map(|v| v.len());
        let mut buf = [0u8; 1000];
        let r4 = a.recv_bytes_into(&mut buf);
        (a, [r1.is_err(), r2.is_err(), r3.is_err(), r4.is_err()])
    });
    assert_eq!(results, [true; 4], "a read after MessageTooLong succeeded");
    // Python keeps a duplex connection writable after a bad message length.
    a.send_bytes(b"still writable").unwrap();
    assert_eq!(recv_bytes(&mut b), b"still writable");
}

#[test]
fn set_max_message_size_rejects_longer_messages_then_unreadable() {
    for duplex in [true, false] {
        let (mut r, mut w) = pipe(duplex).unwrap();
        r.set_max_message_size(1000);
        assert_eq!(r.max_message_size(), 1000);
        w.send_bytes(&pattern(1000)).unwrap();
        w.send(&pattern(500)).unwrap();
        w.send_bytes(&pattern(1001)).unwrap();
        w.send_bytes(b"never read").unwrap();
        assert_eq!(recv_bytes(&mut r), pattern(1000));
        assert_eq!(recv::<Vec<u8>>(&mut r), pattern(500));
        assert!(r.poll_timeout(LONG).unwrap());
        match r.recv_bytes() {
            Err(Error::MessageTooLong {
                length: 1001,
                limit: 1000,
            }) => {}
            other => panic!("recv_bytes over the limit: {other:?}"),
        }
        let failed = within("reading after MessageTooLong", move || {
            let r1 = r.recv_bytes().is_err();
            let r2 = r.recv::<String>().is_err();
            (r1, r2, w)
        });
        assert!(
            failed.0 && failed.1,
            "a read after MessageTooLong succeeded"
        );
    }
}

// ----- recv_bytes_into -----

#[test]
fn recv_bytes_into_returns_length_or_buffer_too_short_with_the_whole_message() {
    let (mut a, mut b) = pipe(true).unwrap();
    b.send_bytes(b"hello").unwrap();
    b.send_bytes(b"exactly8").unwrap();
    b.send_bytes(b"this message is too long").unwrap();
    b.send_bytes(b"next").unwrap();
    let mut buf = [0xeeu8; 8];
    assert!(a.poll_timeout(LONG).unwrap());
    assert_eq!(a.recv_bytes_into(&mut buf).unwrap(), 5);
    assert_eq!(&buf[..5], b"hello");
    assert_eq!(&buf[5..], &[0xee; 3], "bytes past the message were written");
    assert_eq!(a.recv_bytes_into(&mut buf).unwrap(), 8);
    assert_eq!(&buf, b"exactly8");
    // Python's `recv_bytes_into(buf, offset)`: a sub-slice.
    match a.recv_bytes_into(&mut buf[4..]) {
        Err(Error::BufferTooShort(Message(whole))) => {
            assert_eq!(whole, b"this message is too long");
        }
        other => panic!("recv_bytes_into with a short buffer: {other:?}"),
    }
    assert_eq!(
        &buf, b"exactly8",
        "a too-short buffer was written into (BufferTooShort must leave it alone)"
    );
    assert!(a.poll_timeout(LONG).unwrap());
    assert_eq!(a.recv_bytes_into(&mut buf[2..]).unwrap(), 4);
    assert_eq!(&buf[2..6], b"next");
}

/// Sends a large message (which arrives in many pieces) and a small one.
fn big_then_small_child(mut c: Connection) {
    c.send_bytes(&pattern(300_000)).unwrap();
    c.send_bytes(b"small").unwrap();
}

#[test]
fn recv_bytes_into_buffer_too_short_across_a_child() {
    for m in METHODS {
        let (mut c, theirs) = pipe(true).unwrap();
        let p = start(m, big_then_small_child, theirs);
        let mut buf = [0u8; 64];
        assert!(c.poll_timeout(LONG).unwrap());
        match c.recv_bytes_into(&mut buf) {
            Err(Error::BufferTooShort(Message(whole))) => assert!(whole == pattern(300_000)),
            other => panic!("under {m}: {other:?}"),
        }
        assert!(c.poll_timeout(LONG).unwrap());
        assert_eq!(c.recv_bytes_into(&mut buf).unwrap(), 5);
        assert_eq!(&buf[..5], b"small");
        p.join_ok();
    }
}

// ----- poll -----

fn send_after_delay_child(mut c: Connection) {
    std::thread::sleep(Duration::from_millis(200));
    c.send(&"late").unwrap();
}

#[test]
fn poll_reports_waiting_messages_and_times_out() {
    let (mut a, mut b) = pipe(true).unwrap();
    assert!(!a.try_poll().unwrap());
    let t = Instant::now();
    assert!(!a.poll_timeout(Duration::from_millis(100)).unwrap());
    let waited = t.elapsed();
    assert!(
        waited >= Duration::from_millis(90),
        "poll(100ms) returned after {waited:?}"
    );
    assert!(
        waited < Duration::from_secs(5),
        "poll(100ms) returned after {waited:?}"
    );
    b.send_bytes(b"x").unwrap();
    assert!(a.poll_timeout(LONG).unwrap());
    // Polling does not consume.
    assert!(a.try_poll().unwrap());
    assert!(a.try_poll().unwrap());
    assert_eq!(a.recv_bytes().unwrap(), b"x");
    assert!(!a.try_poll().unwrap());
    // A peer that closed makes poll true (the next recv reports EOF).
    // (`LONG`, not zero: another test's forked child may briefly hold a copy of `b`.)
    b.close();
    assert!(a.poll_timeout(LONG).unwrap());
    assert!(a.recv_bytes().unwrap_err().is_eof());

    // A message sent later by a child wakes a waiting poll.
    for m in METHODS {
        let (mut c, theirs) = pipe(true).unwrap();
        let p = start(m, send_after_delay_child, theirs);
        assert!(!c.try_poll().unwrap());
        assert!(c.poll_timeout(LONG).unwrap(), "no message under {m}");
        assert_eq!(c.recv::<String>().unwrap(), "late");
        p.join_ok();
    }
}

// ----- EOF -----

#[test]
fn recv_after_the_peer_closes_is_eof() {
    for duplex in [true, false] {
        let (mut r, mut w) = pipe(duplex).unwrap();
        w.send_bytes(b"last words").unwrap();
        w.close();
        // Messages sent before the close still arrive, then EOF, again and again.
        assert_eq!(recv_bytes(&mut r), b"last words");
        assert!(r.poll_timeout(LONG).unwrap());
        let e = r.recv::<u32>().unwrap_err();
        assert!(e.is_eof(), "recv after close: {e:?}");
        assert!(r.recv_bytes().unwrap_err().is_eof());
        assert!(r.recv_bytes_max(10).unwrap_err().is_eof());
        assert!(r.recv_bytes_into(&mut [0u8; 10]).unwrap_err().is_eof());
        assert!(r.recv_bytes().unwrap_err().is_eof());
        // Dropping (not just close) does the same.
        let (mut r, w) = pipe(duplex).unwrap();
        drop(w);
        assert!(r.poll_timeout(LONG).unwrap());
        assert!(matches!(r.recv_bytes(), Err(Error::Eof)));
    }
}

fn send_and_exit_child(mut c: Connection) {
    c.send(&"goodbye").unwrap();
}

#[test]
fn recv_after_the_child_exits_is_eof() {
    for m in METHODS {
        let (mut c, theirs) = pipe(true).unwrap();
        let p = start(m, send_and_exit_child, theirs);
        p.join_ok();
        assert_eq!(recv::<String>(&mut c), "goodbye");
        // Other tests' forked children may briefly hold a copy of the child's end: poll.
        assert!(c.poll_timeout(LONG).unwrap(), "no EOF under {m}");
        let e = c.recv::<String>().unwrap_err();
        assert!(e.is_eof(), "under {m}: {e:?}");
    }
}

/// Waits for a message that never comes.
fn wait_forever_child(mut c: Connection) {
    let _ = c.recv_bytes();
}

#[test]
fn recv_after_the_child_is_killed_is_eof() {
    for m in METHODS {
        let (mut c, theirs) = pipe(true).unwrap();
        let p = start(m, wait_forever_child, theirs);
        assert!(!c.poll_timeout(Duration::from_millis(20)).unwrap());
        p.terminate().unwrap();
        assert_eq!(p.join_timeout(LONG).unwrap(), Some(-15), "under {m}");
        assert!(c.poll_timeout(LONG).unwrap(), "no EOF under {m}");
        let e = c.recv_bytes().unwrap_err();
        assert!(e.is_eof(), "under {m}: {e:?}");
    }
}

// ----- one-way pipes, closed connections -----

fn write_end_child(mut w: Connection) {
    assert!(!w.readable() && w.writable());
    assert!(matches!(w.recv_bytes(), Err(Error::NotPermitted(_))));
    w.send(&"through a pipe").unwrap();
}

#[test]
fn one_way_pipe_refuses_the_wrong_direction() {
    let (mut r, mut w) = pipe(false).unwrap();
    assert!(r.readable() && !r.writable());
    assert!(!w.readable() && w.writable());
    assert!(matches!(r.send(&1u8), Err(Error::NotPermitted(_))));
    assert!(matches!(r.send_bytes(b"x"), Err(Error::NotPermitted(_))));
    assert!(matches!(
        r.send_bytes_range(b"x", 0, None),
        Err(Error::NotPermitted(_))
    ));
    assert!(matches!(w.recv::<u8>(), Err(Error::NotPermitted(_))));
    assert!(matches!(w.recv_bytes(), Err(Error::NotPermitted(_))));
    assert!(matches!(w.recv_bytes_max(5), Err(Error::NotPermitted(_))));
    assert!(matches!(
        w.recv_bytes_into(&mut [0u8; 4]),
        Err(Error::NotPermitted(_))
    ));
    assert!(matches!(w.try_poll(), Err(Error::NotPermitted(_))));
    // The refused calls sent nothing; the right direction works.
    assert!(!r.try_poll().unwrap());
    w.send(&5u8).unwrap();
    assert_eq!(recv::<u8>(&mut r), 5);

    // The write end works in a child under every start method.
    for m in METHODS {
        let (mut r, w) = pipe(false).unwrap();
        let p = start(m, write_end_child, w);
        assert_eq!(recv::<String>(&mut r), "through a pipe");
        p.join_ok();
    }
}

#[test]
fn a_closed_connection_refuses_everything() {
    let (mut a, mut b) = pipe(true).unwrap();
    assert!(a.fileno().is_ok());
    a.close();
    assert!(a.closed());
    a.close(); // twice is harmless
    assert!(matches!(a.fileno(), Err(Error::Closed(_))));
    assert!(a.raw_fd().is_none());
    assert!(matches!(a.send(&1u8), Err(Error::Closed(_))));
    assert!(matches!(a.send_bytes(b"x"), Err(Error::Closed(_))));
    assert!(matches!(a.send_bytes(&[]), Err(Error::Closed(_))));
    assert!(matches!(a.recv::<u8>(), Err(Error::Closed(_))));
    assert!(matches!(a.recv_bytes(), Err(Error::Closed(_))));
    assert!(matches!(
        a.recv_bytes_into(&mut [0u8; 4]),
        Err(Error::Closed(_))
    ));
    assert!(matches!(a.try_poll(), Err(Error::Closed(_))));
    assert!(matches!(a.try_clone(), Err(Error::Closed(_))));
    assert!(matches!(a.into_owned_fd(), Err(Error::Closed(_))));
    // The peer sees EOF.
    assert!(b.poll_timeout(LONG).unwrap());
    assert!(b.recv_bytes().unwrap_err().is_eof());

    let (_r, mut w) = pipe(false).unwrap();
    w.close();
    assert!(matches!(w.send(&"x"), Err(Error::Closed(_))));
    assert!(w.fileno().is_err());
}

// ----- codec errors -----

#[test]
fn decoding_as_the_wrong_type_is_a_codec_error_and_the_connection_still_works() {
    let (mut a, mut b) = pipe(true).unwrap();
    b.send(&"not a number").unwrap();
    b.send(&42u64).unwrap();
    b.send_bytes(&[0xc1]).unwrap(); // a byte MessagePack never uses
    b.send(&sample_tree()).unwrap();
    b.send(&(1u8, 2u8)).unwrap();
    b.send(&"ok").unwrap();
    assert!(a.poll_timeout(LONG).unwrap());
    assert!(matches!(a.recv::<u64>(), Err(Error::Codec(_))));
    assert_eq!(recv::<u64>(&mut a), 42);
    assert!(a.poll_timeout(LONG).unwrap());
    assert!(matches!(a.recv::<u64>(), Err(Error::Codec(_))));
    assert!(a.poll_timeout(LONG).unwrap());
    assert!(matches!(a.recv::<Leaf>(), Err(Error::Codec(_))));
    assert!(a.poll_timeout(LONG).unwrap());
    assert!(matches!(a.recv::<String>(), Err(Error::Codec(_))));
    assert_eq!(recv::<String>(&mut a), "ok");
    assert!(!a.try_poll().unwrap());
}

// ----- wire format -----

/// Everything written to `raw`'s peer until it closes.
fn read_all(mut raw: impl Read) -> Vec<u8> {
    let mut out = Vec::new();
    raw.read_to_end(&mut out).unwrap();
    out
}

#[test]
fn send_bytes_writes_cpython_frames() {
    // Over a socket.
    let (raw, mut conn) = raw_pair();
    conn.send_bytes(b"hello").unwrap();
    conn.send_bytes(&[]).unwrap();
    conn.send_bytes_range(b"0123456789", 3, Some(2)).unwrap();
    conn.send(&1u8).unwrap(); // MessagePack positive fixint
    conn.send(&"ab").unwrap(); // MessagePack fixstr
    drop(conn);
    let mut expected = Vec::new();
    expected.extend_from_slice(b"\x00\x00\x00\x05hello");
    expected.extend_from_slice(b"\x00\x00\x00\x00");
    expected.extend_from_slice(b"\x00\x00\x00\x0234");
    expected.extend_from_slice(b"\x00\x00\x00\x01\x01");
    expected.extend_from_slice(b"\x00\x00\x00\x03\xa2ab");
    assert_eq!(read_all(raw), expected);

    // Over a pipe, with a payload large enough to need several writes.
    let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
    let payload = pattern(200_000);
    let sent = payload.clone();
    let writer = std::thread::spawn(move || {
        let mut conn = Connection::from_fd(w, false, true).unwrap();
        conn.send_bytes(b"hello").unwrap();
        conn.send_bytes(&sent).unwrap();
    });
    let got = within("reading a pipe", move || read_all(std::fs::File::from(r)));
    writer.join().unwrap();
    let mut expected = b"\x00\x00\x00\x05hello".to_vec();
    expected.extend_from_slice(&200_000u32.to_be_bytes());
    expected.extend_from_slice(&payload);
    assert!(got == expected, "the pipe frames differ");
}

#[test]
fn hand_written_frames_are_parsed() {
    let (mut raw, mut conn) = raw_pair();
    // Several frames in one write, and one frame split across writes.
    raw.write_all(b"\x00\x00\x00\x03abc\x00\x00\x00\x00\x00\x00\x00\x01z")
        .unwrap();
    raw.write_all(b"\x00\x00").unwrap();
    raw.write_all(b"\x00\x04wx").unwrap();
    raw.write_all(b"yz").unwrap();
    // A MessagePack value for recv.
    raw.write_all(b"\x00\x00\x00\x01\x2a").unwrap();
    assert_eq!(recv_bytes(&mut conn), b"abc");
    assert_eq!(recv_bytes(&mut conn), b"");
    assert_eq!(recv_bytes(&mut conn), b"z");
    assert_eq!(recv_bytes(&mut conn), b"wxyz");
    assert_eq!(recv::<u32>(&mut conn), 42);

    // Over a pipe, through `from_fd`.
    let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
    let mut conn = Connection::from_fd(r, true, false).unwrap();
    let mut w = std::fs::File::from(w);
    w.write_all(b"\x00\x00\x00\x02hi\x00\x00\x00\x00").unwrap();
    drop(w);
    assert_eq!(recv_bytes(&mut conn), b"hi");
    assert_eq!(recv_bytes(&mut conn), b"");
    assert!(conn.poll_timeout(LONG).unwrap());
    assert!(conn.recv_bytes().unwrap_err().is_eof());
}

#[test]
fn the_long_header_path_is_parsed() {
    // Length -1, then an 8-byte big-endian length: CPython's header for payloads over
    // 0x7fffffff bytes, exercised here with a small payload.
    let (mut raw, mut conn) = raw_pair();
    let mut frame = b"\xff\xff\xff\xff".to_vec();
    frame.extend_from_slice(&10u64.to_be_bytes());
    frame.extend_from_slice(b"0123456789");
    frame.extend_from_slice(b"\xff\xff\xff\xff");
    frame.extend_from_slice(&0u64.to_be_bytes());
    frame.extend_from_slice(b"\x00\x00\x00\x02ok");
    raw.write_all(&frame).unwrap();
    assert_eq!(recv_bytes(&mut conn), b"0123456789");
    assert_eq!(recv_bytes(&mut conn), b"");
    assert_eq!(recv_bytes(&mut conn), b"ok");
    // Through recv_bytes_into and recv_bytes_max too.
    raw.write_all(&frame[..22]).unwrap();
    let mut buf = [0u8; 16];
    assert!(conn.poll_timeout(LONG).unwrap());
    assert_eq!(conn.recv_bytes_into(&mut buf).unwrap(), 10);
    assert_eq!(&buf[..10], b"0123456789");
    raw.write_all(&frame[..22]).unwrap();
    assert!(conn.poll_timeout(LONG).unwrap());
    assert_eq!(conn.recv_bytes_max(10).unwrap(), b"0123456789");
}

#[test]
fn a_negative_length_other_than_minus_one_is_a_protocol_error() {
    for header in [
        [0xff, 0xff, 0xff, 0xfe],
        [0x80, 0x00, 0x00, 0x00],
        [0x80, 0x00, 0x00, 0x01],
    ] {
        let (mut raw, conn) = raw_pair();
        raw.write_all(&header).unwrap();
        raw.write_all(b"\x00\x00\x00\x01x").unwrap();
        let (result, next) = within("reading a negative length", move || {
            let mut conn = conn;
            let r = conn.recv_bytes();
            // The stream cannot be resynchronised: further reads fail too, without blocking.
            let next = conn.recv_bytes();
            (r, next)
        });
        match result {
            Err(Error::Protocol(_)) => {}
            other => panic!("header {header:02x?}: {other:?}"),
        }
        assert!(
            next.is_err(),
            "header {header:02x?}: read after it: {next:?}"
        );
    }
}

#[test]
fn a_huge_announced_length_over_the_limit_fails_immediately() {
    let (mut raw, mut conn) = raw_pair();
    conn.set_max_message_size(1 << 20);
    let mut header = b"\xff\xff\xff\xff".to_vec();
    header.extend_from_slice(&(1u64 << 60).to_be_bytes());
    raw.write_all(&header).unwrap();
    // The writer stays open and sends nothing more: waiting for the payload would hang.
    let (result, _conn) = within("recv of a 2^60-byte announcement", move || {
        (conn.recv_bytes(), conn)
    });
    match result {
        Err(Error::MessageTooLong { length, limit }) => {
            assert_eq!(length, 1 << 60);
            assert_eq!(limit, 1 << 20);
        }
        other => panic!("{other:?}"),
    }

    // recv_bytes_max and recv (typed) give the same answer.
    let (mut raw, conn) = raw_pair();
    raw.write_all(&header).unwrap();
    let (result, _conn) = within("recv_bytes_max of a 2^60-byte announcement", move || {
        let mut conn = conn;
        (conn.recv_bytes_max(1 << 20), conn)
    });
    assert!(
        matches!(result, Err(Error::MessageTooLong { length, .. }) if length == 1 << 60),
        "{result:?}"
    );
    let (mut raw, mut conn) = raw_pair();
    conn.set_max_message_size(1 << 20);
    raw.write_all(&header).unwrap();
    let (result, _conn) = within("recv of a 2^60-byte announcement", move || {
        (conn.recv::<String>(), conn)
    });
    assert!(
        matches!(result, Err(Error::MessageTooLong { .. })),
        "{result:?}"
    );
    // A short header over the limit too.
    let (mut raw, mut conn) = raw_pair();
    conn.set_max_message_size(100);
    raw.write_all(&0x7fff_ffffu32.to_be_bytes()).unwrap();
    let (result, _conn) = within("recv of a 2 GiB announcement", move || {
        (conn.recv_bytes(), conn)
    });
    assert!(
        matches!(
            result,
            Err(Error::MessageTooLong {
                length: 0x7fff_ffff,
                limit: 100
            })
        ),
        "{result:?}"
    );
}

#[test]
fn a_huge_announced_length_without_a_limit_allocates_only_what_arrives() {
    // Without a limit, 2^60 (and u64::MAX) announced bytes followed by a little data and a close
    // must end in a truncation error. Allocating the announced size up front would abort the
    // test binary (capacity overflow / out of memory) instead.
    for (announced, sent) in [
        (1u64 << 60, 0usize),
        (1u64 << 60, 3 << 20),
        (u64::MAX, 1000),
        (0x7fff_ffff, 100),
    ] {
        let (mut raw, conn) = raw_pair();
        let writer = std::thread::spawn(move || {
            if announced > 0x7fff_ffff {
                raw.write_all(b"\xff\xff\xff\xff").unwrap();
                raw.write_all(&announced.to_be_bytes()).unwrap();
            } else {
                raw.write_all(&(announced as u32).to_be_bytes()).unwrap();
            }
            raw.write_all(&pattern(sent)).unwrap();
            // Closing the writer truncates the message.
        });
        let result = within("recv of a truncated huge message", move || {
            let mut conn = conn;
            conn.recv_bytes().map(|v| v.len())
        });
        writer.join().unwrap();
        match result {
            Err(Error::Protocol(_)) => {}
            other => panic!("announced {announced}, sent {sent}: {other:?}"),
        }
    }
    // The typed path too.
    let (mut raw, conn) = raw_pair();
    raw.write_all(b"\xff\xff\xff\xff").unwrap();
    raw.write_all(&(1u64 << 60).to_be_bytes()).unwrap();
    drop(raw);
    let result = within("recv::<T> of a truncated huge message", move || {
        let mut conn = conn;
        conn.recv::<Vec<u8>>().map(|v| v.len())
    });
    assert!(matches!(result, Err(Error::Protocol(_))), "{result:?}");
}

/// A connection over a socket or a pipe, and a writer for its raw peer.
fn raw_reader(over_pipe: bool) -> (Box<dyn Write + Send>, Connection) {
    if over_pipe {
        let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
        (
            Box::new(std::fs::File::from(w)),
            Connection::from_fd(r, true, false).unwrap(),
        )
    } else {
        let (raw, conn) = raw_pair();
        (Box::new(raw), conn)
    }
}

#[test]
fn truncated_frames_are_errors() {
    // (bytes written before the close, what is wrong with them)
    let cases: [(&[u8], &str); 5] = [
        (b"\x00\x00\x00\x64abcdefghij", "payload cut short"),
        (b"\x00\x00", "short header cut short"),
        (b"\xff\xff\xff\xff\x00\x00", "long header cut short"),
        (b"\xff\xff\xff\xff", "long header missing"),
        (b"\x00\x00\x00\x01", "payload missing"),
    ];
    for over_pipe in [false, true] {
        for (bytes, what) in cases {
            for reader in 0..3 {
                let (mut raw, conn) = raw_reader(over_pipe);
                raw.write_all(bytes).unwrap();
                drop(raw);
                let result = within(what, move || {
                    let mut conn = conn;
                    match reader {
                        0 => conn.recv_bytes().map(|v| v.len()),
                        1 => conn.recv_bytes_into(&mut [0u8; 200]),
                        _ => conn.recv::<Vec<u8>>().map(|v| v.len()),
                    }
                });
                match result {
                    Err(Error::Protocol(_)) => {}
                    other => panic!(
                        "{what} (reader {reader}, pipe: {over_pipe}): {other:?}, want a protocol \
                         error"
                    ),
                }
            }
        }
    }
}

// ----- set_timeout -----

#[test]
fn set_timeout_bounds_reads_and_keeps_the_stream_in_step() {
    let (mut a, mut b) = pipe(true).unwrap();
    assert_eq!(a.timeout(), None);
    a.set_timeout(Some(Duration::from_millis(100)));
    assert_eq!(a.timeout(), Some(Duration::from_millis(100)));
    // Nothing arrives: a timeout before the first byte leaves the connection usable.
    let (result, mut a) = within("recv with a timeout", move || (a.recv_bytes(), a));
    assert!(matches!(result, Err(Error::Timeout)), "{result:?}");
    b.send_bytes(b"in step").unwrap();
    assert_eq!(recv_bytes(&mut a), b"in step");
    // A clone keeps the timeout.
    assert_eq!(a.try_clone().unwrap().timeout(), a.timeout());

    // Half a message arrives: a timeout in the middle leaves the stream out of step, so the
    // connection is no longer readable, even once the rest has arrived.
    let (mut raw, conn) = raw_pair();
    let mut conn = conn;
    conn.set_timeout(Some(Duration::from_millis(100)));
    raw.write_all(b"\x00\x00\x00\x0aabc").unwrap();
    let (result, conn) = within("recv of half a message", move || (conn.recv_bytes(), conn));
    assert!(matches!(result, Err(Error::Timeout)), "{result:?}");
    raw.write_all(b"defghij\x00\x00\x00\x01z").unwrap();
    let (result, _conn) = within("recv after a mid-message timeout", move || {
        let mut conn = conn;
        (conn.recv_bytes(), conn)
    });
    assert!(
        result.is_err(),
        "read after a mid-message timeout: {result:?}"
    );
}

#[test]
fn set_timeout_bounds_a_send_to_a_peer_that_never_reads() {
    // The peer (`_b`) stays open and never reads: a 10 MiB message fills the socket buffer,
    // then makes no progress. With a timeout the send must fail with `Timeout`, not block.
    // (If it blocks, this test fails after `LONG`; unwinding drops `_b`, which unblocks it.)
    for duplex in [true, false] {
        let (_b, mut a) = pipe(duplex).unwrap();
        a.set_timeout(Some(Duration::from_millis(200)));
        let t = Instant::now();
        // (5 s, not `LONG`: the send should give up after 200 ms.)
        let (result, mut a) = within_for(
            Duration::from_secs(5),
            "send_bytes with a 200 ms timeout to a peer that never reads",
            move || (a.send_bytes(&pattern(10 << 20)), a),
        );
        assert!(
            matches!(result, Err(Error::Timeout)),
            "duplex {duplex}: {result:?}"
        );
        assert!(t.elapsed() >= Duration::from_millis(150));
        // Part of the frame went out, so the peer's stream is out of step: sending again would
        // put a header in the middle of a payload. The connection must refuse further sends.
        let again = a.send_bytes(b"x");
        assert!(
            again.is_err(),
            "duplex {duplex}: a send after a mid-frame timeout went out: {again:?}"
        );
    }
}

// ----- a real CPython peer -----

/// Runs `python3 -c script args` with the given stdin and stdout. `None` (after saying so) when
/// there is no `python3` on this machine.
fn python(script: &str, args: &[&str], stdin: Stdio, stdout: Stdio) -> Option<Child> {
    match Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .stdin(stdin)
        .stdout(stdout)
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => Some(child),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("SKIPPED: no python3 on this machine ({e})");
            None
        }
        Err(e) => panic!("cannot run python3: {e}"),
    }
}

/// Waits at most [`LONG`] for Python to exit with 0; kills it otherwise.
fn wait_python(mut child: Child) {
    let deadline = Instant::now() + LONG;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("python3 did not exit within {LONG:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    assert!(status.success(), "python3 failed ({status}):\n{stderr}");
}

/// Python sends messages of the given sizes, then `send_bytes(b'hello', 1, 3)`, then echoes
/// every message it receives until EOF.
const PY_SOCKET_PEER: &str = r#"
import sys
from multiprocessing.connection import Connection
c = Connection(0)
for n in [int(s) for s in sys.argv[1].split(',')]:
    c.send_bytes(bytes(i % 251 for i in range(n)))
c.send_bytes(b'hello', 1, 3)
while True:
    try:
        m = c.recv_bytes()
    except EOFError:
        break
    c.send_bytes(m)
"#;

#[test]
fn python_peer_over_a_socketpair() {
    let (mut ours, theirs) = pipe(true).unwrap();
    let theirs = theirs.into_owned_fd().unwrap();
    let sizes = [0usize, 1, 5, 16_384, 16_385, 100_000, 1 << 20];
    let arg = sizes.map(|n| n.to_string()).join(",");
    let Some(child) = python(
        PY_SOCKET_PEER,
        &[&arg],
        Stdio::from(theirs),
        Stdio::inherit(),
    ) else {
        return;
    };
    for n in sizes {
        let got = recv_bytes(&mut ours);
        assert!(got == pattern(n), "Python's {n}-byte message differs");
    }
    assert_eq!(recv_bytes(&mut ours), b"ell");
    for payload in [
        Vec::new(),
        b"x".to_vec(),
        pattern(100_000),
        pattern(1 << 20),
        b"last".to_vec(),
    ] {
        ours.send_bytes(&payload).unwrap();
        let back = recv_bytes(&mut ours);
        assert!(
            back == payload,
            "Python echoed {} bytes differently",
            payload.len()
        );
    }
    // A hand-written long header (-1 + u64) is read by CPython as well.
    let mut raw = UnixStream::from(ours.try_clone().unwrap().into_owned_fd().unwrap());
    let mut frame = b"\xff\xff\xff\xff".to_vec();
    frame.extend_from_slice(&10u64.to_be_bytes());
    frame.extend_from_slice(b"0123456789");
    raw.write_all(&frame).unwrap();
    drop(raw);
    assert_eq!(recv_bytes(&mut ours), b"0123456789");
    // Our EOF ends Python's loop.
    drop(ours);
    wait_python(child);
}

/// Python reads messages from a pipe on stdin and writes them back, reversed, to a pipe on
/// stdout, until EOF.
const PY_PIPE_PEER: &str = r#"
from multiprocessing.connection import Connection
r = Connection(0, writable=False)
w = Connection(1, readable=False)
while True:
    try:
        m = r.recv_bytes()
    except EOFError:
        break
    w.send_bytes(m[::-1])
"#;

#[test]
fn python_peer_over_one_way_pipes() {
    let (their_r, our_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
    let Some(mut child) = python(PY_PIPE_PEER, &[], Stdio::from(their_r), Stdio::piped()) else {
        return;
    };
    let stdout = OwnedFd::from(child.stdout.take().unwrap());
    let mut r = Connection::from_fd(stdout, true, false).unwrap();
    let mut w = Connection::from_fd(our_w, false, true).unwrap();
    for payload in [b"abc".to_vec(), Vec::new(), pattern(70_000)] {
        w.send_bytes(&payload).unwrap();
        let mut back = recv_bytes(&mut r);
        back.reverse();
        assert!(
            back == payload,
            "Python reversed {} bytes wrongly",
            payload.len()
        );
    }
    drop(w);
    assert!(r.poll_timeout(LONG).unwrap());
    assert!(r.recv_bytes().unwrap_err().is_eof());
    wait_python(child);
}

// ----- a real message over 2 GiB -----

/// Just over 2 GiB: announced with the long (-1 + u64) header.
const HUGE: usize = 0x8000_0000 + 4097;

fn huge_sample(i: usize) -> (usize, u8) {
    let pos = (i * 0x0100_0001) % HUGE;
    (pos, (i as u8) ^ 0xa5)
}

fn send_huge_child(mut c: Connection) {
    // Mostly zero pages (cheap to make and to send), with sampled bytes set.
    let mut buf = vec![0u8; HUGE];
    for i in 0..200 {
        let (pos, byte) = huge_sample(i);
        buf[pos] = byte;
    }
    *buf.last_mut().unwrap() = 0x5a;
    c.send_bytes(&buf).unwrap();
    drop(buf);
    c.send_bytes(b"after the huge one").unwrap();
}

/// Whether to run the >2 GiB test: `MP_TEST_HUGE=1` forces it, `MP_TEST_HUGE=0` skips it, and
/// by default it runs when the machine has at least 8 GiB available (it needs about 2.2 GiB
/// resident and takes about 5 s in a debug build).
fn huge_test_enabled() -> bool {
    match std::env::var("MP_TEST_HUGE").as_deref() {
        Ok("1") => return true,
        Ok("0") => return false,
        _ => {}
    }
    let available_kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("MemAvailable:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .unwrap_or(0);
    available_kib >= 8 << 20
}

/// A real message over 2 GiB, so the sender writes CPython's long header (-1 + u64) and the
/// receiver's `recv_bytes` reads it into a `Vec`; the next message must still frame correctly.
///
/// MEMORY/TIME GATE: runs by default only when at least 8 GiB are available (see
/// [`huge_test_enabled`]; `MP_TEST_HUGE=1` forces it, `MP_TEST_HUGE=0` skips it); when skipped
/// it says so on stderr and passes (it is not marked ignored, so it always runs somewhere).
#[test]
fn a_message_over_2_gib() {
    if !huge_test_enabled() {
        eprintln!(
            "SKIPPED: a message over 2 GiB (MP_TEST_HUGE=0, or under 8 GiB available; \
             MP_TEST_HUGE=1 forces it)"
        );
        return;
    }
    let (mut c, theirs) = pipe(true).unwrap();
    let p = start(StartMethod::Fork, send_huge_child, theirs);
    assert!(c.poll_timeout(LONG).unwrap());
    let t = Instant::now();
    let got = c.recv_bytes().unwrap();
    eprintln!("received {} bytes in {:?}", got.len(), t.elapsed());
    assert_eq!(got.len(), HUGE);
    for i in 0..200 {
        let (pos, byte) = huge_sample(i);
        assert_eq!(got[pos], byte, "byte {pos}");
    }
    assert_eq!(got[HUGE - 1], 0x5a);
    assert_eq!(got[1], 0);
    drop(got);
    assert_eq!(recv_bytes(&mut c), b"after the huge one");
    p.join_ok();
}

// ----- the spin before a blocking recv -----

/// Replies to each `u32` with the same value after sleeping that many milliseconds; stops at 0.
fn slow_echo_child(mut c: Connection) {
    loop {
        let ms: u32 = c.recv().unwrap();
        if ms == 0 {
            return;
        }
        std::thread::sleep(Duration::from_millis(u64::from(ms)));
        c.send(&ms).unwrap();
        // Two messages at once: the reader must take exactly one per recv.
        c.send(&(ms + 1)).unwrap();
    }
}

/// A `recv` spins only briefly (`Connection::set_spin`, 50 µs by default) before it sleeps: a
/// reply 200 ms away costs its reader far less than 200 ms of CPU, with the default spin and
/// with none, and the reader never takes more than the one message it returns (the second one
/// stays in the socket, so the fd is still readable for `wait()`).
#[test]
fn a_recv_spins_briefly_then_sleeps_and_never_reads_past_its_message() {
    for m in METHODS {
        let (mut c, theirs) = pipe(true).unwrap();
        let p = start(m, slow_echo_child, theirs);
        // Without a deadline, and under one (`recv_timeout`).
        for (spin, timed) in [
            (mp_core::spin::SPIN, false),
            (Duration::ZERO, false),
            (mp_core::spin::SPIN, true),
        ] {
            c.set_spin(spin);
            c.send(&200u32).unwrap();
            let cpu0 = mp_testkit::thread_cpu_time();
            let t0 = Instant::now();
            let got = if timed {
                c.recv_timeout::<u32>(LONG).unwrap()
            } else {
                recv::<u32>(&mut c)
            };
            assert_eq!(got, 200, "{m}");
            assert!(t0.elapsed() >= Duration::from_millis(200), "{m}");
            let burnt = mp_testkit::thread_cpu_time() - cpu0;
            assert!(
                burnt < Duration::from_millis(50),
                "{m}: a 200 ms wait with a spin of {spin:?} (timed: {timed}) burnt {burnt:?} of CPU"
            );
            assert!(
                c.poll_timeout(LONG).unwrap(),
                "{m}: the second message was read too"
            );
            assert_eq!(recv::<u32>(&mut c), 201, "{m}");
        }
        c.send(&0u32).unwrap();
        p.join_ok();
    }
}

fn can_spin(_: ()) -> bool {
    mp_core::spin::Spinner::take().is_some()
}

/// A child may spin even if its parent held every right to spin when it forked: the threads
/// holding them stayed in the parent (the fork hook gives the rights back in the child).
#[test]
fn a_child_forked_while_the_parent_spins_may_spin() {
    if mp_core::cpu_count() < 2 {
        return; // Nobody spins on one CPU.
    }
    let mut held = Vec::new();
    while let Some(s) = mp_core::spin::Spinner::take() {
        held.push(s);
    }
    assert!(!held.is_empty());
    for m in METHODS {
        let p = start(m, can_spin, ());
        assert!(p.finish(), "{m}: the child cannot spin");
    }
    drop(held);
    assert!(mp_core::spin::Spinner::take().is_some());
}

/// A `Backoff` (either kind) pauses for `BACKOFF_SPIN` in all, then says to sleep; on one CPU
/// it never pauses.
#[test]
fn a_backoff_spins_for_its_budget_then_gives_up() {
    backoff_spins_for_its_budget(mp_core::spin::Backoff::new());
    backoff_spins_for_its_budget(mp_core::spin::Backoff::after_a_pause());
}

fn backoff_spins_for_its_budget(mut b: mp_core::spin::Backoff) {
    let t0 = std::time::Instant::now();
    let mut snoozes = 0u32;
    while b.snooze() {
        snoozes += 1;
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "a backoff that never gives up"
        );
    }
    if mp_core::cpu_count() < 2 {
        assert_eq!(snoozes, 0, "a backoff paused on one CPU");
        return;
    }
    assert!(
        t0.elapsed() >= mp_core::spin::BACKOFF_SPIN,
        "gave up after {:?} ({snoozes} snoozes)",
        t0.elapsed()
    );
    assert!(!b.snooze(), "a spent backoff paused again");
}

/// Rounds of `a_blocked_read_sleeps_once_per_message`, per reader.
const SLEEPY_ROUNDS: u64 = 8;

/// The peer of `a_blocked_read_sleeps_once_per_message`: for each message, it waits until it is
/// there without reading it, gives the parent time to fall asleep, reads it (with a blocking
/// read, this is what used to wake the parent for nothing), waits again, and answers.
fn slow_reader_child((mut c, rounds): (Connection, u32)) {
    for _ in 0..rounds {
        assert!(c.poll_timeout(LONG).expect("poll"), "no message came");
        std::thread::sleep(Duration::from_millis(20));
        let m: u64 = c.recv().expect("recv");
        std::thread::sleep(Duration::from_millis(20));
        c.send(&m).expect("send");
    }
}

/// A reader blocked on a socket (`Connection::recv`, `FrameReader::fill`) sleeps once per
/// message it waits for: it is not woken when its peer reads what it wrote. (A blocking
/// `read`/`recvmsg` of a unix socket is: the kernel's write-space wake-up reaches every sleeper
/// on the socket. It cost two context switches per task in a pool's workers.)
#[test]
fn a_blocked_read_sleeps_once_per_message() {
    for m in METHODS {
        let (mut a, b) = pipe(true).expect("pipe");
        a.set_spin(Duration::ZERO);
        let child = start(m, slow_reader_child, (b, 2 * SLEEPY_ROUNDS as u32));
        // No timeout on the reads themselves (a deadline makes them wait in poll): the whole
        // exchange runs under `within`.
        let (a, by_recv, by_fill) = within("the exchange", move || {
            let mut by_recv = 0;
            for i in 0..SLEEPY_ROUNDS {
                a.send(&i).expect("send");
                let before = mp_testkit::thread_sleeps();
                let back: u64 = a.recv().expect("recv");
                by_recv += mp_testkit::thread_sleeps() - before;
                assert_eq!(back, i);
            }
            let mut reader = mp_core::frames::FrameReader::default();
            let mut by_fill = 0;
            for i in 0..SLEEPY_ROUNDS {
                a.send(&i).expect("send");
                let before = mp_testkit::thread_sleeps();
                while reader.next_frame().expect("frame").is_none() {
                    let fd = a.fileno().expect("open");
                    reader.fill(fd).expect("fill");
                }
                by_fill += mp_testkit::thread_sleeps() - before;
            }
            (a, by_recv, by_fill)
        });
        child.join_ok();
        drop(a);
        for (how, sleeps) in [
            ("Connection::recv", by_recv),
            ("FrameReader::fill", by_fill),
        ] {
            assert!(
                sleeps <= SLEEPY_ROUNDS + SLEEPY_ROUNDS / 2,
                "{m:?}: {how} slept {sleeps} times for {SLEEPY_ROUNDS} messages"
            );
        }
    }
}
