//! Regression tests, each named after what broke (issue 10's process and connection items).

use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use mp_core::{get_context, get_start_method, pipe, Connection, Process, StartMethod};
use mp_testkit::{join_result, start, LONG, METHODS};

/// The method this child reports as its own.
fn report_start_method(_: ()) -> String {
    get_start_method().to_string()
}

#[test]
fn a_context_child_reports_its_own_start_method_not_the_parents_default() {
    for m in METHODS {
        let mut p = get_context(Some(m)).process(report_start_method, ());
        p.start().unwrap();
        assert_eq!(
            join_result(&p).unwrap(),
            m.to_string(),
            "a child started by {m}"
        );
    }
}

/// Starts a fork-context grandchild (this child's default is the method that started it) and
/// returns what the grandchild reports.
fn fork_a_grandchild(_: ()) -> String {
    let mut p = get_context(Some(StartMethod::Fork)).process(report_start_method, ());
    p.start().unwrap();
    join_result(&p).unwrap()
}

#[test]
fn a_fork_context_child_of_a_spawned_process_reports_fork() {
    for m in [StartMethod::Spawn, StartMethod::Forkserver] {
        let mut p = get_context(Some(m)).process(fork_a_grandchild, ());
        p.start().unwrap();
        assert_eq!(join_result(&p).unwrap(), "fork", "in a {m} child");
    }
}

fn noop(_: ()) {}

/// Whether a `Process` made in this process is daemonic by default.
fn new_process_is_daemonic(_: ()) -> bool {
    Process::new(noop, ()).is_daemon()
}

#[test]
fn a_process_made_in_a_daemonic_child_is_daemonic_by_default() {
    for m in METHODS {
        let mut p = get_context(Some(m))
            .process(new_process_is_daemonic, ())
            .daemon(true);
        p.start().unwrap();
        assert!(
            join_result(&p).unwrap(),
            "{m}: daemon is inherited, as in Python"
        );
        let mut q = get_context(Some(m)).process(new_process_is_daemonic, ());
        q.start().unwrap();
        assert!(
            !join_result(&q).unwrap(),
            "{m}: a non-daemonic parent's default is false"
        );
    }
    assert!(!Process::new(noop, ()).is_daemon());
}

/// Writes a header announcing 100 bytes, then 3 bytes, then closes.
fn truncate(conn: Connection) {
    let fd: OwnedFd = conn.into_owned_fd().unwrap();
    rustix::io::write(fd.as_fd(), &100u32.to_be_bytes()).unwrap();
    rustix::io::write(fd.as_fd(), b"abc").unwrap();
}

#[test]
fn reading_after_a_truncated_message_says_the_connection_lost_sync_not_write_only() {
    for m in METHODS {
        let (mut ours, theirs) = pipe(true).unwrap();
        let child = start(m, truncate, theirs);
        child.join();
        let first = ours.recv_bytes_timeout(LONG).unwrap_err();
        assert!(
            first.to_string().contains("middle of a message"),
            "{m}: {first}"
        );
        let again = ours.recv_bytes_timeout(Duration::from_secs(1)).unwrap_err();
        let text = again.to_string();
        assert!(text.contains("lost message sync"), "{m}: {text}");
        assert!(!text.contains("write-only"), "{m}: {text}");
        // A real one-way end still says what it is.
        let (_r, mut w) = pipe(false).unwrap();
        let text = w.recv_bytes().unwrap_err().to_string();
        assert!(text.contains("write-only"), "{text}");
    }
}

/// The fork server's pid, as its child sees it.
fn server_pid(_: ()) -> i32 {
    rustix::process::getppid().map_or(0, |p| p.as_raw_nonzero().get())
}

/// Sends `sig` to process `pid` through a pidfd.
fn send_signal(pid: i32, sig: rustix::process::Signal) {
    let fd = rustix::process::pidfd_open(
        mp_testkit::pid_of(pid),
        rustix::process::PidfdFlags::empty(),
    )
    .expect("pidfd_open");
    rustix::process::pidfd_send_signal(&fd, sig).expect("pidfd_send_signal");
}

/// Starts a forkserver child that reports its server's pid, and joins it.
fn current_server() -> i32 {
    let mut p = get_context(Some(StartMethod::Forkserver)).process(server_pid, ());
    p.start().expect("forkserver start");
    let pid = join_result(&p).unwrap();
    assert_eq!(p.exitcode().unwrap(), Some(0));
    pid
}

#[test]
fn a_fork_server_killed_with_sigkill_is_replaced_by_the_next_start() {
    let old = current_server();
    send_signal(old, rustix::process::Signal::KILL);
    assert!(
        mp_testkit::ends_within(old, LONG),
        "the server survived SIGKILL"
    );
    // The next start used to fail with "Broken pipe".
    let new = current_server();
    assert_ne!(new, old, "a new server");
    assert_eq!(current_server(), new, "which then stays");
}

/// Sleeps until killed (at most `LONG`).
fn sleeper(_: ()) {
    std::thread::sleep(LONG);
}

#[test]
fn a_fork_server_ignores_sigint_and_its_children_do_not() {
    let old = current_server();
    send_signal(old, rustix::process::Signal::INT);
    assert!(
        !mp_testkit::ends_within(old, mp_testkit::SETTLE),
        "SIGINT killed the fork server"
    );
    assert_eq!(
        current_server(),
        old,
        "the same server serves the next child"
    );
    // Its children get SIGINT's default disposition back.
    let mut p = get_context(Some(StartMethod::Forkserver)).process(sleeper, ());
    p.start().unwrap();
    let pid = p.pid().unwrap().unwrap();
    std::thread::sleep(mp_testkit::SETTLE);
    send_signal(pid, rustix::process::Signal::INT);
    assert_eq!(p.join_timeout(LONG).unwrap(), Some(-libc_sigint()));
}

fn libc_sigint() -> i32 {
    rustix::process::Signal::INT.as_raw()
}

/// Says who its server is, waits for a word, then leaves with exit code 7 (or waits to be
/// killed, when told so).
fn outlive_the_server(mut conn: Connection) {
    conn.send(&server_pid(())).unwrap();
    let exit: bool = conn.recv().unwrap();
    if exit {
        mp_core::exit(7);
    }
    std::thread::sleep(LONG);
}

#[test]
fn a_child_that_outlived_its_fork_server_reports_how_it_ended() {
    let ctx = get_context(Some(StartMethod::Forkserver));
    let (mut ours, theirs) = pipe(true).unwrap();
    let (mut ours2, theirs2) = pipe(true).unwrap();
    let mut finishes = ctx.process(outlive_the_server, theirs);
    finishes.start().unwrap();
    let mut killed = ctx.process(outlive_the_server, theirs2);
    killed.start().unwrap();
    let server: i32 = ours.recv_timeout(LONG).unwrap();
    assert_eq!(ours2.recv_timeout::<i32>(LONG).unwrap(), server);

    send_signal(server, rustix::process::Signal::KILL);
    assert!(mp_testkit::ends_within(server, LONG));
    assert!(
        finishes.is_alive().unwrap(),
        "a non-daemonic child outlives its server"
    );

    // It finishes its work and says so: join gives its exit code, not an I/O error.
    ours.send(&true).unwrap();
    assert_eq!(finishes.join_timeout(LONG).unwrap(), Some(7));

    // Killed by a signal with no server to see it, its code is lost: CPython's 255.
    assert!(killed.is_alive().unwrap());
    killed.kill().unwrap();
    assert_eq!(killed.join_timeout(LONG).unwrap(), Some(255));
    drop(ours2);

    // And the next start has a new server.
    assert_ne!(current_server(), server);
}

/// A recursive enum, as a peer's message may hold: `Neg` nests through a one-entry map.
#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
enum Expr {
    Lit(i64),
    Neg(Box<Expr>),
}

/// `levels` times `Neg` (the map `{1: ...}`) around `Lit(7)` (`{0: 7}`), as MessagePack.
fn nested_negations(levels: usize) -> Vec<u8> {
    let mut bytes = b"\x81\x01".repeat(levels);
    bytes.extend_from_slice(b"\x81\x00\x07");
    bytes
}

/// Found while writing the `codec` fuzz target (its input is in fuzz/regressions/codec/):
/// rmp-serde's depth limit does not count an enum variant's map, so 40 KB of `{1: {1: ...}}`
/// recursed until the stack overflowed and the process died, on any connection that receives a
/// recursive enum.
#[test]
fn a_deeply_nested_enum_from_a_peer_is_a_codec_error_not_a_stack_overflow() {
    let deep = nested_negations(100_000);
    let e = mp_core::codec::decode::<Expr>(&deep).unwrap_err();
    assert!(matches!(e, mp_core::Error::Codec(_)), "{e}");
    assert!(e.to_string().contains("deep"), "{e}");

    // Over a connection: refused, the message consumed, the end still usable.
    let (mut ours, mut theirs) = pipe(true).unwrap();
    let writer = std::thread::spawn(move || {
        theirs.send_bytes(&deep).unwrap();
        theirs.send(&Expr::Neg(Box::new(Expr::Lit(1)))).unwrap();
    });
    let e = ours.recv_timeout::<Expr>(LONG).unwrap_err();
    assert!(matches!(e, mp_core::Error::Codec(_)), "{e}");
    assert_eq!(
        ours.recv_timeout::<Expr>(LONG).unwrap(),
        Expr::Neg(Box::new(Expr::Lit(1)))
    );
    writer.join().unwrap();

    // Nesting up to the limit still decodes.
    let limit = mp_core::codec::MAX_DEPTH;
    let mut value = mp_core::codec::decode::<Expr>(&nested_negations(limit - 1)).unwrap();
    let mut levels = 0;
    while let Expr::Neg(inner) = value {
        value = *inner;
        levels += 1;
    }
    assert_eq!((levels, value), (limit - 1, Expr::Lit(7)));
    assert!(mp_core::codec::decode::<Expr>(&nested_negations(limit)).is_err());
}

/// A recursive type that consumes no byte per level: an option of itself, in a newtype.
#[derive(Debug, serde::Deserialize)]
struct L(#[allow(dead_code)] Option<Box<L>>);

#[test]
fn one_byte_decoded_as_a_type_that_recurses_without_reading_is_an_error_not_a_stack_overflow() {
    // rmp-serde reads the marker 0x01 once (not nil: Some), then asks for the newtype, then
    // the option again on the same cached marker, forever: found by the fuzz target's author,
    // it killed any process that received this byte as such a type.
    let err = mp_core::codec::decode::<L>(b"\x01").unwrap_err();
    assert!(matches!(err, mp_core::Error::Codec(_)), "{err}");
    // The same through a connection, as a peer would send it.
    let (mut a, mut b) = mp_core::pipe(true).unwrap();
    a.send_bytes(b"\x01").unwrap();
    assert!(matches!(b.recv::<L>(), Err(mp_core::Error::Codec(_))));
    // And a legitimately nested value still decodes.
    let nested: Vec<Vec<Vec<Option<Box<u8>>>>> = vec![vec![vec![Some(Box::new(7))]]];
    let bytes = mp_core::codec::encode(&nested).unwrap();
    assert_eq!(
        mp_core::codec::decode::<Vec<Vec<Vec<Option<Box<u8>>>>>>(&bytes).unwrap(),
        nested
    );
}

#[test]
fn an_untrusted_peer_cannot_fill_our_fd_table_with_carrier_frames() {
    use rustix::net::{sendmsg, SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
    let (ours, theirs) = rustix::net::socketpair(
        rustix::net::AddressFamily::UNIX,
        rustix::net::SocketType::STREAM,
        rustix::net::SocketFlags::CLOEXEC,
        None,
    )
    .unwrap();
    // As a listener accepts it: untrusted.
    let mut conn = Connection::from_fd(ours, true, true).unwrap();
    let before = mp_testkit::count_fds();
    // Ten carrier frames of 200 fds each (the same fd, duplicated by the kernel on receipt).
    let carrier = b"\xc1mp-fds";
    let mut frame = (carrier.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(carrier);
    let writer = std::thread::spawn(move || {
        let one = rustix::io::dup(&theirs).unwrap();
        let fds: Vec<std::os::fd::BorrowedFd<'_>> = (0..200).map(|_| one.as_fd()).collect();
        for _ in 0..10 {
            let mut space =
                [std::mem::MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(200))];
            let mut control = SendAncillaryBuffer::new(&mut space);
            assert!(control.push(SendAncillaryMessage::ScmRights(&fds)));
            if sendmsg(
                &theirs,
                &[std::io::IoSlice::new(&frame)],
                &mut control,
                SendFlags::empty(),
            )
            .is_err()
            {
                break;
            }
        }
        theirs
    });
    let err = conn.recv_timeout::<u32>(LONG).unwrap_err();
    assert!(err.to_string().contains("carrier"), "{err}");
    let theirs = writer.join().unwrap();
    drop(theirs);
    // At most one frame's fds arrived, and they were closed with the error.
    mp_testkit::eventually("the received fds are closed", || {
        mp_testkit::count_fds() <= before
    });
}

/// The container bound is counted as serde descends (no walk over the bytes first): arrays
/// nested past [`MAX_DEPTH`](mp_core::codec::MAX_DEPTH) are refused whatever the type reads
/// them as, even a type that skips them (`IgnoredAny`), and up to it they decode.
#[test]
fn arrays_nested_past_the_limit_are_refused_even_when_skipped() {
    use serde::de::IgnoredAny;
    let nested = |levels: usize| {
        let mut bytes = vec![0x91u8; levels];
        bytes.push(0x07);
        bytes
    };
    let limit = mp_core::codec::MAX_DEPTH;
    assert!(mp_core::codec::decode::<IgnoredAny>(&nested(limit)).is_ok());
    for levels in [limit + 1, 100_000] {
        let e = mp_core::codec::decode::<IgnoredAny>(&nested(levels)).unwrap_err();
        assert!(matches!(e, mp_core::Error::Codec(_)), "{e}");
        assert!(e.to_string().contains("deep"), "{e}");
    }
    // A map nested in arrays counts too, and a struct's ignored field is bounded the same way.
    #[derive(Debug, serde::Deserialize)]
    struct Pair(#[allow(dead_code)] u8, #[allow(dead_code)] IgnoredAny);
    let mut bytes = vec![0x92u8, 0x01];
    bytes.extend(std::iter::repeat([0x81u8, 0x00]).take(100_000).flatten());
    bytes.push(0x00);
    let e = mp_core::codec::decode::<Pair>(&bytes).unwrap_err();
    assert!(e.to_string().contains("deep"), "{e}");
}
