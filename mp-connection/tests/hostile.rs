//! Hostile peers: garbage, truncated frames, absurd length headers, oversized replies and
//! silence are dropped with typed errors, and the listener goes on serving; plus property tests
//! that feed arbitrary byte streams to the frame reader and both halves of the handshake.

use std::io::Write;
use std::net::{Ipv4Addr, TcpStream};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::thread;
use std::time::{Duration, Instant};

use mp_connection::{
    answer_challenge_deadline, deliver_challenge_deadline, Address, Client, Digest, Error, Listener,
};
use mp_core::{pipe, Connection};
use proptest::prelude::*;

const KEY: &[u8] = b"hostile test key";
const LIMIT: Duration = Duration::from_secs(10);
const HANDSHAKE: Duration = Duration::from_millis(300);

fn listener(address: Option<Address>) -> Listener {
    Listener::builder()
        .address(address.unwrap_or_else(|| Address::tcp(Ipv4Addr::LOCALHOST, 0)))
        .backlog(8)
        .authkey(KEY)
        .handshake_timeout(Some(HANDSHAKE))
        .bind()
        .unwrap()
}

/// A raw client: connects, reads the challenge, then plays `script` (bytes to write, pauses).
enum Step {
    Write(Vec<u8>),
    Pause(Duration),
    Close,
}

fn raw_client(address: &Address, script: Vec<Step>) -> thread::JoinHandle<()> {
    let address = address.clone();
    thread::spawn(move || {
        let sock: OwnedFd = match &address {
            Address::Tcp(sa) => TcpStream::connect(sa).unwrap().into(),
            Address::Unix(path) => UnixStream::connect(path).unwrap().into(),
            Address::Abstract(_) => unreachable!(),
        };
        for step in script {
            match step {
                Step::Write(bytes) => {
                    // The server may have dropped us already: that is the point, stop.
                    if write_all(&sock, &bytes).is_err() {
                        return;
                    }
                }
                Step::Pause(d) => thread::sleep(d),
                Step::Close => return,
            }
        }
        // Stay connected, silent, until the server hangs up (bounded by LIMIT).
        let _ = rustix::net::sockopt::set_socket_timeout(
            &sock,
            rustix::net::sockopt::Timeout::Recv,
            Some(LIMIT),
        );
        let mut buf = [0u8; 512];
        while let Ok(n) = rustix::io::read(&sock, &mut buf) {
            if n == 0 {
                break;
            }
        }
    })
}

fn write_all(fd: &OwnedFd, mut bytes: &[u8]) -> rustix::io::Result<()> {
    while !bytes.is_empty() {
        let n = rustix::net::send(fd, bytes, rustix::net::SendFlags::NOSIGNAL)?;
        bytes = &bytes[n..];
    }
    Ok(())
}

/// Serves one hostile client (returning its error), then checks that a good client is served.
fn hostile_then_good(address: Option<Address>, script: Vec<Step>) -> Error {
    let listener = listener(address);
    let address = listener.address().clone();
    let hostile = raw_client(&address, script);
    let t0 = Instant::now();
    let err = listener.accept_timeout(LIMIT).unwrap_err();
    assert!(
        t0.elapsed() < HANDSHAKE * 4,
        "took {:?} to drop a hostile client",
        t0.elapsed()
    );
    let good = thread::spawn(move || {
        let mut c = Client::connect_timeout(&address, Some(KEY), LIMIT).unwrap();
        c.set_timeout(Some(LIMIT));
        c.send_bytes(b"good").unwrap();
        assert_eq!(c.recv_bytes().unwrap(), b"served");
    });
    let mut conn = listener.accept_timeout(LIMIT).unwrap();
    conn.set_timeout(Some(LIMIT));
    assert_eq!(conn.recv_bytes().unwrap(), b"good");
    conn.send_bytes(b"served").unwrap();
    good.join().unwrap();
    hostile.join().unwrap();
    err
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut v = (payload.len() as u32).to_be_bytes().to_vec();
    v.extend_from_slice(payload);
    v
}

#[test]
fn garbage_is_dropped() {
    let err = hostile_then_good(
        None,
        vec![Step::Write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec())],
    );
    // "GET " read as a length is over the 256-byte handshake limit.
    assert!(err.is_message_too_long(), "{err}");
}

#[test]
fn garbage_inside_a_valid_frame_is_an_authentication_error() {
    let err = hostile_then_good(None, vec![Step::Write(frame(b"not a digest at all"))]);
    assert!(err.is_authentication(), "{err}");
}

#[test]
fn truncated_frame_is_dropped() {
    let mut bytes = 100u32.to_be_bytes().to_vec();
    bytes.extend_from_slice(&[1; 10]);
    let err = hostile_then_good(None, vec![Step::Write(bytes), Step::Close]);
    // A clean close mid-frame is a protocol error; if the client closed with our challenge
    // unread, its kernel resets the connection instead, which reads as ECONNRESET.
    assert!(
        matches!(err, Error::Core(mp_core::Error::Protocol(_)))
            || matches!(&err, Error::Io(e) if e.kind() == std::io::ErrorKind::ConnectionReset),
        "{err:?}"
    );
}

#[test]
fn truncated_frame_then_silence_times_out() {
    let mut bytes = 100u32.to_be_bytes().to_vec();
    bytes.extend_from_slice(&[1; 10]);
    let err = hostile_then_good(None, vec![Step::Write(bytes)]);
    assert!(err.is_timeout(), "{err}");
}

#[test]
fn a_2_pow_60_length_header_is_refused_unread() {
    let mut bytes = (-1i32).to_be_bytes().to_vec();
    bytes.extend_from_slice(&(1u64 << 60).to_be_bytes());
    let err = hostile_then_good(None, vec![Step::Write(bytes)]);
    assert!(
        matches!(
            err,
            Error::Core(mp_core::Error::MessageTooLong {
                length: 0x1000_0000_0000_0000,
                limit: 256
            })
        ),
        "{err:?}"
    );
}

#[test]
fn a_negative_length_header_is_a_protocol_error() {
    let err = hostile_then_good(None, vec![Step::Write((-7i32).to_be_bytes().to_vec())]);
    assert!(
        matches!(err, Error::Core(mp_core::Error::Protocol(_))),
        "{err:?}"
    );
}

#[test]
fn an_oversized_challenge_reply_is_refused() {
    let err = hostile_then_good(None, vec![Step::Write(frame(&[b'{'; 300]))]);
    assert!(err.is_message_too_long(), "{err}");
}

#[test]
fn silence_times_out() {
    let t0 = Instant::now();
    let err = hostile_then_good(None, vec![]);
    assert!(err.is_timeout(), "{err}");
    assert!(t0.elapsed() >= HANDSHAKE);
}

#[test]
fn a_trickling_client_cannot_stretch_the_handshake() {
    // One byte at a time, each within the timeout: the deadline covers the whole handshake.
    let mut script = Vec::new();
    for b in frame(&[0; 16]) {
        script.push(Step::Write(vec![b]));
        script.push(Step::Pause(HANDSHAKE / 4));
    }
    let err = hostile_then_good(None, script);
    assert!(err.is_timeout(), "{err}");
}

#[test]
fn an_immediate_hang_up_is_end_of_file() {
    let err = hostile_then_good(None, vec![Step::Close]);
    assert!(err.is_eof() || matches!(err, Error::Io(_)), "{err:?}");
}

#[test]
fn hostile_clients_over_a_unix_socket() {
    let err = hostile_then_good(
        Some(mp_connection::arbitrary_address(mp_connection::Family::Unix).unwrap()),
        vec![Step::Write(vec![0xff; 64])],
    );
    // 0xffffffff is length -1: an 8-byte length follows, 0xffff... is far over the limit.
    assert!(err.is_message_too_long(), "{err}");
}

#[test]
fn many_hostile_clients_in_a_row() {
    let listener = listener(None);
    let address = listener.address().clone();
    let scripts: Vec<Vec<Step>> = vec![
        vec![Step::Close],
        vec![Step::Write(vec![0; 3]), Step::Close],
        vec![Step::Write(frame(&[0; 16]))],
        vec![Step::Write(vec![0xff; 12])],
        vec![Step::Write(frame(b"{sha256}short"))],
    ];
    let n = scripts.len();
    let clients: Vec<_> = scripts
        .into_iter()
        .map(|s| {
            let h = raw_client(&address, s);
            thread::sleep(Duration::from_millis(20));
            h
        })
        .collect();
    for _ in 0..n {
        let err = listener.accept_timeout(LIMIT).unwrap_err();
        assert!(!err.is_closed(), "{err}");
    }
    for c in clients {
        c.join().unwrap();
    }
    let good = thread::spawn(move || Client::connect_timeout(&address, Some(KEY), LIMIT).map(drop));
    listener.accept_timeout(LIMIT).unwrap();
    good.join().unwrap().unwrap();
}

#[test]
fn a_hostile_server_cannot_hurt_a_client() {
    let scripts: Vec<Vec<u8>> = vec![
        {
            let mut v = (-1i32).to_be_bytes().to_vec();
            v.extend_from_slice(&(1u64 << 60).to_be_bytes());
            v
        },
        frame(b"#CHALLENGE#"),
        frame(&[0; 200]),
        b"garbage".to_vec(),
    ];
    for bytes in scripts {
        let server = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let address = Address::Tcp(server.local_addr().unwrap());
        let t = thread::spawn(move || {
            let (mut sock, _) = server.accept().unwrap();
            let _ = sock.write_all(&bytes);
            thread::sleep(Duration::from_millis(100));
        });
        let err = Client::connect_timeout(&address, Some(KEY), Duration::from_secs(2)).unwrap_err();
        assert!(
            err.is_authentication()
                || err.is_message_too_long()
                || err.is_timeout()
                || err.is_eof()
                || matches!(err, Error::Core(mp_core::Error::Protocol(_))),
            "{err:?}"
        );
        t.join().unwrap();
    }
}

#[test]
fn an_authenticated_peer_announcing_2_pow_60_bytes_gets_an_error_not_an_allocation() {
    let listener = listener(None);
    let address = listener.address().clone();
    let t = thread::spawn(move || {
        let c = Client::connect_timeout(&address, Some(KEY), LIMIT).unwrap();
        let fd = c.into_owned_fd().unwrap();
        let mut sock = TcpStream::from(fd);
        let mut bytes = (-1i32).to_be_bytes().to_vec();
        bytes.extend_from_slice(&(1u64 << 60).to_be_bytes());
        sock.write_all(&bytes).unwrap();
        thread::sleep(Duration::from_millis(100));
    });
    let mut conn = listener.accept_timeout(LIMIT).unwrap();
    conn.set_timeout(Some(LIMIT));
    let err = Error::from(conn.recv_bytes().unwrap_err());
    assert!(err.is_message_too_long(), "{err}");
    t.join().unwrap();
}

// ----- property tests -----

/// A socketpair whose far end has already written `bytes` and shut down its write side, but
/// stays open (so our writes succeed and our reads see the bytes, then end of file).
fn fed(bytes: &[u8]) -> (Connection, Connection) {
    let (ours, mut theirs) = pipe(true).unwrap();
    theirs.set_timeout(Some(LIMIT));
    // Socket buffers hold far more than the few KiB a case writes.
    let fd = theirs.fileno().unwrap();
    let mut done = 0;
    while done < bytes.len() {
        done += rustix::io::write(fd, &bytes[done..]).unwrap();
    }
    rustix::net::shutdown(fd, rustix::net::Shutdown::Write).unwrap();
    (ours, theirs)
}

/// Byte streams that are sometimes well-formed frames, sometimes near misses.
fn stream() -> impl Strategy<Value = Vec<u8>> {
    let chunk = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..64),
        proptest::collection::vec(any::<u8>(), 0..300).prop_map(|p| frame(&p)),
        proptest::collection::vec(any::<u8>(), 20..60)
            .prop_map(|p| frame(&[b"#CHALLENGE#".as_slice(), &p].concat())),
        (0usize..5, proptest::collection::vec(any::<u8>(), 0..64)).prop_map(|(d, p)| {
            let names = ["md5", "sha256", "sha384", "sha3_256", "sha3_384"];
            frame(&[format!("#CHALLENGE#{{{}}}", names[d]).as_bytes(), &p].concat())
        }),
        Just(frame(b"#WELCOME#")),
        Just(frame(b"#FAILURE#")),
        any::<u64>().prop_map(|n| [(-1i32).to_be_bytes().as_slice(), &n.to_be_bytes()].concat()),
        any::<i32>().prop_map(|n| n.to_be_bytes().to_vec()),
    ];
    proptest::collection::vec(chunk, 0..6).prop_map(|chunks| chunks.concat())
}

fn typed(e: &Error) -> bool {
    e.is_authentication()
        || e.is_eof()
        || e.is_message_too_long()
        || e.is_timeout()
        || matches!(e, Error::Core(mp_core::Error::Protocol(_)) | Error::Io(_))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn frame_reader_never_panics_or_hangs(bytes in stream(), limit in 0u64..512) {
        let (mut ours, _theirs) = fed(&bytes);
        ours.set_timeout(Some(Duration::from_secs(2)));
        ours.set_max_message_size(limit);
        let mut total = 0;
        loop {
            match ours.recv_bytes() {
                Ok(m) => {
                    prop_assert!(m.len() as u64 <= limit);
                    total += 4 + m.len();
                    prop_assert!(total <= bytes.len());
                }
                Err(e) => {
                    let e = Error::from(e);
                    prop_assert!(typed(&e) && !e.is_timeout(), "{:?}", e);
                    break;
                }
            }
        }
    }

    #[test]
    fn answer_challenge_never_panics_or_hangs(bytes in stream()) {
        let (mut ours, _theirs) = fed(&bytes);
        let t0 = Instant::now();
        let deadline = t0 + Duration::from_secs(2);
        match answer_challenge_deadline(&mut ours, KEY, deadline) {
            // Only a stream that welcomes whatever we said can succeed.
            Ok(()) => prop_assert!(bytes.windows(9).any(|w| w == b"#WELCOME#")),
            Err(e) => prop_assert!(typed(&e) && !e.is_timeout(), "{:?}", e),
        }
        prop_assert!(t0.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn deliver_challenge_never_panics_or_hangs(bytes in stream()) {
        let (mut ours, _theirs) = fed(&bytes);
        let t0 = Instant::now();
        let deadline = t0 + Duration::from_secs(2);
        // The bytes were written before our random challenge existed: no reply can be right.
        let e = deliver_challenge_deadline(&mut ours, KEY, Digest::Sha256, deadline).unwrap_err();
        prop_assert!(typed(&e) && !e.is_timeout(), "{:?}", e);
        prop_assert!(t0.elapsed() < Duration::from_secs(2));
    }
}
