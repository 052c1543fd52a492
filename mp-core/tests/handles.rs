//! Integration tests for handle transfer: `Connection`s and `SharedSegment`s passed to children
//! under every start method and sent over duplex connections, the errors when that is not
//! possible, and a file-descriptor leak check.
//!
//! Ported in spirit from CPython's `Lib/test/_test_multiprocessing.py`: `_TestConnection`'s
//! `test_fd_transfer` (an fd sent over a connection to a child, which uses it to talk back),
//! `test_large_fd_transfer` (an fd numbered above 256), `test_missing_fd_transfer` (a message
//! that names a handle that did not arrive fails cleanly), `test_duplex_false`'s one-way pipe
//! (which cannot carry handles here), and `_TestSharedMemory`/`_TestHeap`'s check that memory
//! passed to a child is really shared. The leak check (fds before and after 50 rounds) is new.
//!
//! Every blocking call is bounded by `mp_testkit::LONG`: the parent polls before each `recv`
//! and joins with a timeout, so a bug fails a test instead of hanging it.

use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::Ordering;

use mp_core::{codec, handle, pipe, Connection, Error, Process, SharedSegment, StartMethod};

use serde::{Deserialize, Serialize};

use mp_testkit::{byte, count_fds, eventually, recv, start, word, LONG, METHODS};

// ----- a Connection as a child's argument -----

/// Talks back through the connection it was given.
fn talk_back_child(mut c: Connection) {
    c.send(&("hello from the child".to_string(), std::process::id()))
        .unwrap();
    let n: u64 = c.recv().unwrap();
    c.send(&(n * 2)).unwrap();
}

/// Gets the read end of one one-way pipe and the write end of another; echoes upper-cased.
fn pipe_ends_child((mut r, mut w): (Connection, Connection)) {
    assert!(r.readable() && !r.writable());
    assert!(!w.readable() && w.writable());
    assert!(matches!(r.send(&1u8), Err(Error::NotPermitted(_))));
    let s: String = r.recv().unwrap();
    w.send(&s.to_uppercase()).unwrap();
}

#[test]
fn a_connection_passed_to_a_child_works_under_every_start_method() {
    for m in METHODS {
        let (mut c, theirs) = pipe(true).unwrap();
        let p = start(m, talk_back_child, theirs);
        let (hello, pid): (String, u32) = recv(&mut c);
        assert_eq!(hello, "hello from the child");
        assert_eq!(Some(pid as i32), p.pid().unwrap(), "under {m}");
        c.send(&21u64).unwrap();
        assert_eq!(recv::<u64>(&mut c), 42);
        p.join_ok();

        // One-way pipe ends keep their direction in the child.
        let (to_child_r, mut to_child_w) = pipe(false).unwrap();
        let (mut from_child_r, from_child_w) = pipe(false).unwrap();
        let p = start(m, pipe_ends_child, (to_child_r, from_child_w));
        to_child_w.send(&"shout").unwrap();
        assert_eq!(recv::<String>(&mut from_child_r), "SHOUT");
        p.join_ok();
    }
}

// ----- a Connection sent over a Connection (Python's test_fd_transfer) -----

/// Receives a connection over `b` and talks to the parent through it.
fn fd_transfer_child(mut b: Connection) {
    let mut a: Connection = b.recv().unwrap();
    a.send(&"hello over A").unwrap();
    let x: u32 = a.recv().unwrap();
    a.send(&(x + 1)).unwrap();
    drop(a);
    b.send(&"done").unwrap();
}

#[test]
fn fd_transfer_a_connection_sent_over_a_connection() {
    for m in METHODS {
        let (mut a, a_theirs) = pipe(true).unwrap();
        let (mut b, b_theirs) = pipe(true).unwrap();
        let p = start(m, fd_transfer_child, b_theirs);
        b.send(&a_theirs).unwrap();
        // The child has its own copy now; ours goes, so the child's exit is A's EOF.
        drop(a_theirs);
        assert_eq!(recv::<String>(&mut a), "hello over A", "under {m}");
        a.send(&41u32).unwrap();
        assert_eq!(recv::<u32>(&mut a), 42);
        assert_eq!(recv::<String>(&mut b), "done");
        p.join_ok();
        // No other copy of A's far end survived the transfer (in this process or the child).
        // (Another test's forked child may hold one briefly, hence the bounded poll.)
        assert!(a.poll_timeout(LONG).unwrap(), "no EOF on A under {m}");
        assert!(a.recv_bytes().unwrap_err().is_eof(), "under {m}");
    }
}

/// Receives the write end of a one-way pipe and writes into it (Python's `test_fd_transfer`
/// sends a file's fd and the child writes to the file).
fn pipe_end_over_connection_child(mut b: Connection) {
    let mut w: Connection = b.recv().unwrap();
    assert!(!w.readable() && w.writable());
    assert!(matches!(w.recv_bytes(), Err(Error::NotPermitted(_))));
    w.send_bytes(b"written by the child").unwrap();
    b.send(&"done").unwrap();
}

#[test]
fn fd_transfer_a_pipe_end_sent_over_a_connection() {
    for m in METHODS {
        let (mut r, w) = pipe(false).unwrap();
        let (mut b, b_theirs) = pipe(true).unwrap();
        let p = start(m, pipe_end_over_connection_child, b_theirs);
        b.send(&w).unwrap();
        drop(w);
        assert!(r.poll_timeout(LONG).unwrap());
        assert_eq!(
            r.recv_bytes().unwrap(),
            b"written by the child",
            "under {m}"
        );
        assert_eq!(recv::<String>(&mut b), "done");
        p.join_ok();
    }
}

/// Reports the fd number a received connection has here, and uses it.
fn large_fd_child(mut b: Connection) {
    let mut c: Connection = b.recv().unwrap();
    c.send(&"through a large fd").unwrap();
    b.send(&"done").unwrap();
}

#[test]
fn large_fd_transfer() {
    // Python's test_large_fd_transfer: an fd numbered above 256.
    for m in METHODS {
        let (mut ours, theirs) = pipe(true).unwrap();
        let theirs = theirs.into_owned_fd().unwrap();
        let high = rustix::io::fcntl_dupfd_cloexec(&theirs, 1000).unwrap();
        drop(theirs);
        assert!(std::os::fd::AsRawFd::as_raw_fd(&high) >= 1000);
        let high = Connection::from_fd(high, true, true).unwrap();
        let (mut b, b_theirs) = pipe(true).unwrap();
        let p = start(m, large_fd_child, b_theirs);
        b.send(&high).unwrap();
        drop(high);
        assert_eq!(recv::<String>(&mut ours), "through a large fd");
        assert_eq!(recv::<String>(&mut b), "done");
        p.join_ok();
    }
}

// ----- several connections in one value -----

/// Connections inside a struct, a `Vec` and `Option`s, between plain fields.
#[derive(Debug, Serialize, Deserialize)]
struct Bundle {
    label: String,
    first: Connection,
    numbers: Vec<u32>,
    second: Connection,
    many: Vec<Connection>,
    maybe: Option<Connection>,
    none: Option<Connection>,
}

/// The parent's ends of a [`Bundle`]'s connections.
struct BundlePeers {
    first: Connection,
    second: Connection,
    many: Vec<Connection>,
    maybe: Connection,
}

const MANY: usize = 5;

fn make_bundle() -> (Bundle, BundlePeers) {
    let (first, first_peer) = pipe(true).unwrap();
    let (second, second_peer) = pipe(true).unwrap();
    let (maybe, maybe_peer) = pipe(true).unwrap();
    let mut many = Vec::new();
    let mut many_peers = Vec::new();
    for i in 0..MANY {
        if i % 2 == 0 {
            let (c, peer) = pipe(true).unwrap();
            many.push(c);
            many_peers.push(peer);
        } else {
            // A one-way write end among them.
            let (peer, w) = pipe(false).unwrap();
            many.push(w);
            many_peers.push(peer);
        }
    }
    (
        Bundle {
            label: "bundle".into(),
            first,
            numbers: vec![1, 2, 3],
            second,
            many,
            maybe: Some(maybe),
            none: None,
        },
        BundlePeers {
            first: first_peer,
            second: second_peer,
            many: many_peers,
            maybe: maybe_peer,
        },
    )
}

/// Sends through every connection of a bundle.
fn use_bundle(mut bundle: Bundle) -> (String, Vec<u32>) {
    assert!(bundle.none.is_none());
    assert_eq!(bundle.many.len(), MANY);
    bundle.first.send(&"first").unwrap();
    bundle.second.send(&"second").unwrap();
    for (i, c) in bundle.many.iter_mut().enumerate() {
        c.send(&i).unwrap();
    }
    bundle.maybe.as_mut().unwrap().send(&"maybe").unwrap();
    (bundle.label, bundle.numbers)
}

fn check_bundle_peers(peers: &mut BundlePeers, m: StartMethod) {
    assert_eq!(recv::<String>(&mut peers.first), "first", "under {m}");
    assert_eq!(recv::<String>(&mut peers.second), "second");
    for (i, c) in peers.many.iter_mut().enumerate() {
        assert_eq!(recv::<usize>(c), i, "many[{i}] under {m}");
    }
    assert_eq!(recv::<String>(&mut peers.maybe), "maybe");
}

fn bundle_over_connection_child(mut b: Connection) {
    let bundle: Bundle = b.recv().unwrap();
    let summary = use_bundle(bundle);
    b.send(&summary).unwrap();
}

fn bundle_arg_child(bundle: Bundle) -> (String, Vec<u32>) {
    use_bundle(bundle)
}

#[test]
fn a_struct_with_connections_and_a_vec_of_connections_crosses() {
    for m in METHODS {
        // Over a connection.
        let (bundle, mut peers) = make_bundle();
        let (mut b, b_theirs) = pipe(true).unwrap();
        let p = start(m, bundle_over_connection_child, b_theirs);
        b.send(&bundle).unwrap();
        drop(bundle);
        check_bundle_peers(&mut peers, m);
        assert_eq!(
            recv::<(String, Vec<u32>)>(&mut b),
            ("bundle".to_string(), vec![1, 2, 3])
        );
        p.join_ok();

        // As the child's argument.
        let (bundle, mut peers) = make_bundle();
        let p = start(m, bundle_arg_child, bundle);
        check_bundle_peers(&mut peers, m);
        p.join_ok();
        assert_eq!(
            p.join_result().unwrap(),
            ("bundle".to_string(), vec![1, 2, 3])
        );
    }
}

#[test]
fn hundreds_of_handles_in_one_message() {
    let (mut a, mut b) = pipe(true).unwrap();
    let (mut x, y) = pipe(true).unwrap();
    // The kernel's SCM_MAX_FD: 253 fds fit in one message.
    a.send(&vec![&y; 253]).unwrap();
    assert!(b.poll_timeout(LONG).unwrap());
    let mut got: Vec<Connection> = b.recv().unwrap();
    assert_eq!(got.len(), 253);
    got[252].send(&"last").unwrap();
    got[0].send(&"first").unwrap();
    assert_eq!(recv::<String>(&mut x), "last");
    assert_eq!(recv::<String>(&mut x), "first");
    drop(got);
    // More than one message carries: the extra fds travel in carrier frames ahead of it.
    for n in [254, 600] {
        a.send(&vec![&y; n]).unwrap();
        assert!(b.poll_timeout(LONG).unwrap());
        let got: Vec<Connection> = b.recv().unwrap();
        assert_eq!(got.len(), n);
    }
    assert!(!b.try_poll().unwrap());
    a.send(&"still in step").unwrap();
    assert_eq!(recv::<String>(&mut b), "still in step");
}

fn count_connections(conns: Vec<Connection>) -> usize {
    conns.iter().filter(|c| !c.closed()).count()
}

#[test]
fn hundreds_of_handles_as_arguments_under_every_start_method() {
    for method in [
        StartMethod::Fork,
        StartMethod::Spawn,
        StartMethod::Forkserver,
    ] {
        let conns: Vec<Connection> = (0..300).map(|_| pipe(true).unwrap().0).collect();
        let mut p = Process::new(count_connections, conns).start_method(method);
        p.start().unwrap();
        assert_eq!(p.join_timeout(LONG).unwrap(), Some(0), "{method}");
        assert_eq!(p.join_result().unwrap(), 300, "{method}");
    }
}

#[test]
fn handles_cross_connections_made_from_fds() {
    // `Connection::from_fd` over a plain socketpair carries handles too.
    let (s1, s2) = UnixStream::pair().unwrap();
    let mut a = Connection::from_fd(OwnedFd::from(s1), true, true).unwrap();
    let mut b = Connection::from_fd(OwnedFd::from(s2), true, true).unwrap();
    let (mut x, y) = pipe(true).unwrap();
    let seg = SharedSegment::new(64).unwrap();
    a.send(&(&y, &seg)).unwrap();
    let (mut y2, seg2): (Connection, SharedSegment) = recv(&mut b);
    y2.send(&"via from_fd").unwrap();
    assert_eq!(recv::<String>(&mut x), "via from_fd");
    word(&seg2, 0).store(99, Ordering::SeqCst);
    assert_eq!(word(&seg, 0).load(Ordering::SeqCst), 99);
}

// ----- what cannot be transferred -----

#[test]
fn a_connection_over_a_one_way_pipe_is_not_permitted() {
    let (mut r, mut w) = pipe(false).unwrap();
    let (x, _y) = pipe(true).unwrap();
    let seg = SharedSegment::new(4096).unwrap();
    assert!(matches!(w.send(&x), Err(Error::NotPermitted(_))));
    assert!(matches!(w.send(&vec![&x, &x]), Err(Error::NotPermitted(_))));
    assert!(matches!(
        w.send(&("label", Some(&x))),
        Err(Error::NotPermitted(_))
    ));
    assert!(matches!(w.send(&seg), Err(Error::NotPermitted(_))));
    // The read end cannot send at all.
    assert!(matches!(r.send(&x), Err(Error::NotPermitted(_))));
    // Nothing was sent; the pipe still works for plain values.
    assert!(!r.try_poll().unwrap());
    w.send(&7u8).unwrap();
    assert_eq!(recv::<u8>(&mut r), 7);

    // A pipe wrapped with from_fd cannot carry handles either.
    let (pr, pw) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
    let mut pw = Connection::from_fd(pw, false, true).unwrap();
    let mut pr = Connection::from_fd(pr, true, false).unwrap();
    assert!(matches!(pw.send(&x), Err(Error::NotPermitted(_))));
    assert!(!pr.try_poll().unwrap());
    pw.send(&8u8).unwrap();
    assert_eq!(recv::<u8>(&mut pr), 8);
}

#[test]
fn serializing_a_handle_outside_a_transfer_is_a_handle_error() {
    let (x, _y) = pipe(true).unwrap();
    let seg = SharedSegment::new(4096).unwrap();
    assert!(matches!(codec::encode(&x), Err(Error::Handle(_))));
    assert!(matches!(codec::encode(&seg), Err(Error::Handle(_))));
    assert!(matches!(codec::encode(&vec![&x]), Err(Error::Handle(_))));
    assert!(matches!(
        codec::encode(&(1u8, Some(&x))),
        Err(Error::Handle(_))
    ));
    let (bundle, _peers) = make_bundle();
    assert!(matches!(codec::encode(&bundle), Err(Error::Handle(_))));
    let mut buf = b"kept".to_vec();
    assert!(matches!(
        codec::encode_into(&x, &mut buf),
        Err(Error::Handle(_))
    ));
    assert_eq!(buf, b"kept", "a failed encode_into left bytes behind");
    let e = codec::encode(&x).unwrap_err();
    assert!(
        e.to_string().contains("Connection"),
        "the error should name what was serialized: {e}"
    );

    // The bytes of a handle, made inside a transfer, do not decode outside one.
    let (bytes, fds) = handle::collect_handles(|| codec::encode(&x));
    let bytes = bytes.unwrap();
    assert_eq!(fds.len(), 1);
    drop(fds);
    assert!(matches!(
        codec::decode::<Connection>(&bytes),
        Err(Error::Handle(_))
    ));
    // Nor inside one that lacks the fd.
    let (decoded, left) = handle::with_handles(Vec::new(), || codec::decode::<Connection>(&bytes));
    assert!(matches!(decoded, Err(Error::Handle(_))), "{decoded:?}");
    assert!(left.is_empty());
}

#[test]
fn missing_fd_transfer_is_a_handle_error_and_the_connection_still_works() {
    // Python's test_missing_fd_transfer: a message naming a handle that did not come with it.
    let (mut a, mut b) = pipe(true).unwrap();
    let (x, _y) = pipe(true).unwrap();
    let (bytes, fds) = handle::collect_handles(|| codec::encode(&x));
    drop(fds);
    a.send_bytes(&bytes.unwrap()).unwrap();
    a.send(&"next").unwrap();
    assert!(b.poll_timeout(LONG).unwrap());
    assert!(matches!(b.recv::<Connection>(), Err(Error::Handle(_))));
    assert_eq!(recv::<String>(&mut b), "next");
}

#[test]
fn a_closed_connection_cannot_be_sent() {
    let (mut a, mut b) = pipe(true).unwrap();
    let (mut x, _y) = pipe(true).unwrap();
    x.close();
    assert!(a.send(&x).is_err());
    assert!(!b.try_poll().unwrap());
    a.send(&"still in step").unwrap();
    assert_eq!(recv::<String>(&mut b), "still in step");
}

// ----- shared segments -----

const MAGIC: u64 = 0xdead_beef_0bad_f00d;
const PARENT_WORD: u64 = 0x1122_3344_5566_7788;

/// Reads the parent's word, writes its own and a byte pattern; returns what it saw.
fn write_segment(seg: &SharedSegment) -> (u64, usize) {
    let seen = word(seg, 0).load(Ordering::SeqCst);
    for i in 16..seg.len() {
        byte(seg, i).store((i * 3) as u8, Ordering::Relaxed);
    }
    word(seg, 1).store(MAGIC, Ordering::SeqCst);
    (seen, seg.len())
}

fn check_segment(seg: &SharedSegment, m: StartMethod) {
    assert_eq!(word(seg, 1).load(Ordering::SeqCst), MAGIC, "under {m}");
    for i in 16..seg.len() {
        assert_eq!(
            byte(seg, i).load(Ordering::Relaxed),
            (i * 3) as u8,
            "byte {i} under {m}"
        );
    }
}

fn segment_arg_child(seg: SharedSegment) -> (u64, usize) {
    write_segment(&seg)
}

/// Receives a segment over `b`, writes it, then hands words back and forth with the parent
/// while both are alive.
fn segment_over_connection_child(mut b: Connection) {
    let seg: SharedSegment = b.recv().unwrap();
    let summary = write_segment(&seg);
    b.send(&summary).unwrap();
    eventually("the parent's second word", || {
        word(&seg, 2).load(Ordering::SeqCst) == 7
    });
    word(&seg, 3).store(8, Ordering::SeqCst);
}

/// A second mapping of the same memory, so the parent keeps one after sending the segment.
fn second_mapping(seg: &SharedSegment) -> SharedSegment {
    SharedSegment::from_fd(seg.fd().try_clone_to_owned().unwrap()).unwrap()
}

#[test]
fn a_shared_segment_passed_to_a_child_is_shared() {
    for m in METHODS {
        let seg = SharedSegment::new(4096).unwrap();
        assert_eq!(seg.len(), 4096);
        let ours = second_mapping(&seg);
        word(&ours, 0).store(PARENT_WORD, Ordering::SeqCst);
        let p = start(m, segment_arg_child, seg);
        p.join_ok();
        assert_eq!(p.join_result().unwrap(), (PARENT_WORD, 4096), "under {m}");
        check_segment(&ours, m);
    }
}

#[test]
fn a_shared_segment_sent_over_a_connection_is_shared() {
    for m in METHODS {
        let seg = SharedSegment::new(4096).unwrap();
        word(&seg, 0).store(PARENT_WORD, Ordering::SeqCst);
        let (mut b, b_theirs) = pipe(true).unwrap();
        let p = start(m, segment_over_connection_child, b_theirs);
        b.send(&seg).unwrap();
        assert_eq!(
            recv::<(u64, usize)>(&mut b),
            (PARENT_WORD, 4096),
            "under {m}"
        );
        check_segment(&seg, m);
        // Both alive: a word each way.
        word(&seg, 2).store(7, Ordering::SeqCst);
        eventually("the child's answer", || {
            word(&seg, 3).load(Ordering::SeqCst) == 8
        });
        p.join_ok();
    }
}

#[test]
fn a_shared_segment_sent_within_one_process_maps_the_same_memory() {
    let (mut a, mut b) = pipe(true).unwrap();
    let seg = SharedSegment::new(10_000).unwrap();
    a.send(&seg).unwrap();
    let seg2: SharedSegment = recv(&mut b);
    // The whole memfd is mapped: its size rounds up to nothing less than asked.
    assert!(seg2.len() >= 10_000);
    assert_ne!(seg.as_ptr(), seg2.as_ptr(), "expected a second mapping");
    word(&seg2, 5).store(MAGIC, Ordering::SeqCst);
    assert_eq!(word(&seg, 5).load(Ordering::SeqCst), MAGIC);
    byte(&seg, 9_999).store(0x42, Ordering::SeqCst);
    assert_eq!(byte(&seg2, 9_999).load(Ordering::SeqCst), 0x42);
    drop(seg);
    // The memory outlives the first mapping.
    assert_eq!(word(&seg2, 5).load(Ordering::SeqCst), MAGIC);
    // A segment has at least one byte.
    assert!(matches!(
        SharedSegment::new(0),
        Err(Error::InvalidArgument(_))
    ));
}

// ----- fd leaks -----

/// What the leak check sends to its grandchild: a connection to talk through and a few more
/// to send back, or `None` to stop.
type Parcel = Option<(Connection, Vec<Connection>, SharedSegment)>;

/// Bounces every parcel back after using its connection and segment.
fn bounce_child(mut b: Connection) {
    loop {
        let parcel: Parcel = b.recv().unwrap();
        let Some((mut c, rest, seg)) = parcel else {
            break;
        };
        c.send(&"ping").unwrap();
        word(&seg, 0).fetch_add(1, Ordering::SeqCst);
        b.send(&Some((c, rest, seg))).unwrap();
    }
}

/// One round trip of connections (and a segment) through the grandchild, plus the error paths
/// that must close the fds they duplicated or received.
fn leak_round(b: &mut Connection) {
    let (mut x, y) = pipe(true).unwrap();
    let (r, w) = pipe(false).unwrap();
    let (r2, w2) = pipe(true).unwrap();
    let seg = SharedSegment::new(4096).unwrap();
    b.send(&Some((y, vec![r, w, r2, w2], seg))).unwrap();
    assert!(b.poll_timeout(LONG).unwrap());
    let back: Parcel = b.recv().unwrap();
    let (mut y, rest, seg) = back.unwrap();
    assert_eq!(rest.len(), 4);
    assert_eq!(word(&seg, 0).load(Ordering::SeqCst), 1);
    assert!(x.poll_timeout(LONG).unwrap());
    assert_eq!(x.recv::<String>().unwrap(), "ping");
    y.send(&"pong").unwrap();
    assert!(x.poll_timeout(LONG).unwrap());
    assert_eq!(x.recv::<String>().unwrap(), "pong");

    // Error paths.
    let (mut pr, mut pw) = pipe(false).unwrap();
    assert!(matches!(pw.send(&(&x, &seg)), Err(Error::NotPermitted(_))));
    assert!(matches!(pr.send(&x), Err(Error::NotPermitted(_))));
    assert!(codec::encode(&x).is_err());
    let (mut s1, mut s2) = pipe(true).unwrap();
    s1.send(&(&x, &seg)).unwrap();
    assert!(s2.poll_timeout(LONG).unwrap());
    assert!(matches!(s2.recv::<u32>(), Err(Error::Codec(_))));
    s1.send(&(&x, &seg)).unwrap();
    assert!(s2.poll_timeout(LONG).unwrap());
    assert!(!s2.recv_bytes().unwrap().is_empty());
    s1.send(&vec![&x; 254]).unwrap();
    assert!(s2.poll_timeout(LONG).unwrap());
    assert_eq!(s2.recv::<Vec<Connection>>().unwrap().len(), 254);
}

/// Counts this process's fds before and after `rounds` rounds against a grandchild started
/// under each method. Runs in its own (single-threaded) process, where no other test opens or
/// closes fds meanwhile.
fn leak_check_child(rounds: usize) -> Vec<(StartMethod, usize, usize)> {
    let mut results = Vec::new();
    for m in METHODS {
        let (mut b, b_theirs) = pipe(true).unwrap();
        let mut p = Process::new(bounce_child, b_theirs).start_method(m);
        p.start().unwrap();
        leak_round(&mut b); // warm-up: lazily opened fds stay open
        let before = count_fds();
        for _ in 0..rounds {
            leak_round(&mut b);
        }
        let after = count_fds();
        b.send(&None::<(Connection, Vec<Connection>, SharedSegment)>)
            .unwrap();
        assert_eq!(p.join_timeout(LONG).unwrap(), Some(0));
        results.push((m, before, after));
    }
    results
}

#[test]
fn no_fd_leaks_after_50_rounds_of_transfers() {
    let p = start(StartMethod::Spawn, leak_check_child, 50);
    p.join_ok();
    for (m, before, after) in p.join_result().unwrap() {
        assert_eq!(
            before, after,
            "fds leaked over 50 rounds with a grandchild under {m}: {before} before, {after} after"
        );
    }
}
