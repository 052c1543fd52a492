//! The HMAC handshake: `deliver_challenge`/`answer_challenge` against each other and against
//! hand-written peers that speak exactly what CPython 2.7, 3.11 and 3.12 put on the wire.

use std::net::Ipv4Addr;
use std::thread;
use std::time::{Duration, Instant};

use hmac::{Mac, SimpleHmac};
use mp_connection::{
    answer_challenge, answer_challenge_deadline, deliver_challenge, deliver_challenge_deadline,
    Address, Client, Digest, Listener,
};
use mp_core::{pipe, Connection};

const KEY: &[u8] = b"handshake key";
const LIMIT: Duration = Duration::from_secs(10);

fn pair() -> (Connection, Connection) {
    let (mut a, mut b) = pipe(true).unwrap();
    a.set_timeout(Some(LIMIT));
    b.set_timeout(Some(LIMIT));
    (a, b)
}

fn deadline() -> Instant {
    Instant::now() + LIMIT
}

fn hmac_md5(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut m = <SimpleHmac<md5::Md5> as Mac>::new_from_slice(key).unwrap();
    m.update(msg);
    m.finalize().into_bytes().to_vec()
}

fn hmac_named(name: &str, key: &[u8], msg: &[u8]) -> Vec<u8> {
    fn run<D: hmac::digest::Digest + hmac::digest::core_api::BlockSizeUser>(
        key: &[u8],
        msg: &[u8],
    ) -> Vec<u8> {
        let mut m = <SimpleHmac<D> as Mac>::new_from_slice(key).unwrap();
        m.update(msg);
        m.finalize().into_bytes().to_vec()
    }
    match name {
        "md5" => run::<md5::Md5>(key, msg),
        "sha256" => run::<sha2::Sha256>(key, msg),
        "sha384" => run::<sha2::Sha384>(key, msg),
        "sha3_256" => run::<sha3::Sha3_256>(key, msg),
        "sha3_384" => run::<sha3::Sha3_384>(key, msg),
        _ => panic!("{name}"),
    }
}

#[test]
fn both_halves_agree_in_every_digest() {
    for digest in Digest::ALL {
        let (mut server, mut client) = pair();
        let t = thread::spawn(move || answer_challenge(&mut client, KEY));
        deliver_challenge_deadline(&mut server, KEY, digest, deadline()).unwrap();
        t.join().unwrap().unwrap();
    }
}

#[test]
fn a_wrong_key_fails_on_both_sides() {
    let (mut server, mut client) = pair();
    let t = thread::spawn(move || answer_challenge(&mut client, b"wrong key"));
    let err = deliver_challenge(&mut server, KEY).unwrap_err();
    assert!(err.is_authentication(), "{err}");
    assert_eq!(
        err.to_string(),
        "authentication failed: digest received was wrong"
    );
    let err = t.join().unwrap().unwrap_err();
    assert!(err.is_authentication(), "{err}");
    assert_eq!(
        err.to_string(),
        "authentication failed: digest sent was rejected"
    );
}

#[test]
fn modern_challenge_has_cpython_312_layout() {
    let (mut server, mut peer) = pair();
    let t = thread::spawn(move || deliver_challenge(&mut server, KEY));
    let challenge = peer.recv_bytes().unwrap();
    assert!(challenge.starts_with(b"#CHALLENGE#{sha256}"));
    assert_eq!(challenge.len(), 11 + 8 + 40);
    let message = &challenge[11..];
    let mut reply = b"{sha256}".to_vec();
    reply.extend(hmac_named("sha256", KEY, message));
    peer.send_bytes(&reply).unwrap();
    assert_eq!(peer.recv_bytes().unwrap(), b"#WELCOME#");
    t.join().unwrap().unwrap();
}

#[test]
fn deliver_accepts_a_legacy_raw_md5_reply() {
    // CPython 2.7 and 3.11 answer any challenge with a raw HMAC-MD5 of everything after
    // `#CHALLENGE#` (here: `{sha256}` and the random bytes).
    let (mut server, mut peer) = pair();
    let t = thread::spawn(move || deliver_challenge(&mut server, KEY));
    let challenge = peer.recv_bytes().unwrap();
    peer.send_bytes(&hmac_md5(KEY, &challenge[11..])).unwrap();
    assert_eq!(peer.recv_bytes().unwrap(), b"#WELCOME#");
    t.join().unwrap().unwrap();
}

#[test]
fn deliver_accepts_any_allowed_digest_in_the_reply() {
    for name in ["md5", "sha256", "sha384", "sha3_256", "sha3_384"] {
        let (mut server, mut peer) = pair();
        let t = thread::spawn(move || deliver_challenge(&mut server, KEY));
        let challenge = peer.recv_bytes().unwrap();
        let mut reply = format!("{{{name}}}").into_bytes();
        reply.extend(hmac_named(name, KEY, &challenge[11..]));
        peer.send_bytes(&reply).unwrap();
        assert_eq!(peer.recv_bytes().unwrap(), b"#WELCOME#", "{name}");
        t.join().unwrap().unwrap();
    }
}

#[test]
fn deliver_rejects_malformed_replies_with_failure() {
    let bad_replies: Vec<Vec<u8>> = vec![
        Vec::new(),
        vec![0; 15],
        vec![0; 16],                            // legacy length, wrong MAC
        vec![0; 20],                            // legacy length, but MD5 is 16 bytes
        b"{sha1}0123456789abcdefghij".to_vec(), // not an allowed digest
        b"{sha256}too short".to_vec(),          // wrong length for sha256
        vec![b'x'; 256],
    ];
    for reply in bad_replies {
        let (mut server, mut peer) = pair();
        let t = thread::spawn(move || deliver_challenge(&mut server, KEY));
        peer.recv_bytes().unwrap();
        peer.send_bytes(&reply).unwrap();
        assert_eq!(peer.recv_bytes().unwrap(), b"#FAILURE#", "{reply:?}");
        let err = t.join().unwrap().unwrap_err();
        assert!(err.is_authentication(), "{reply:?}: {err}");
    }
}

#[test]
fn answer_handles_a_legacy_20_byte_challenge() {
    // CPython 2.7 / 3.11 `deliver_challenge`: `#CHALLENGE#` + 20 random bytes; the reply is the
    // raw HMAC-MD5 of those 20 bytes.
    let (mut client, mut server) = pair();
    let t = thread::spawn(move || answer_challenge(&mut client, KEY));
    let random = [0x5au8; 20];
    let mut challenge = b"#CHALLENGE#".to_vec();
    challenge.extend_from_slice(&random);
    server.send_bytes(&challenge).unwrap();
    let reply = server.recv_bytes().unwrap();
    assert_eq!(reply, hmac_md5(KEY, &random));
    server.send_bytes(b"#WELCOME#").unwrap();
    t.join().unwrap().unwrap();
}

#[test]
fn answer_handles_every_modern_digest() {
    for name in ["md5", "sha256", "sha384", "sha3_256", "sha3_384"] {
        let (mut client, mut server) = pair();
        let t = thread::spawn(move || answer_challenge(&mut client, KEY));
        let mut message = format!("{{{name}}}").into_bytes();
        message.extend_from_slice(&[7u8; 40]);
        let mut challenge = b"#CHALLENGE#".to_vec();
        challenge.extend_from_slice(&message);
        server.send_bytes(&challenge).unwrap();
        let reply = server.recv_bytes().unwrap();
        let mut want = format!("{{{name}}}").into_bytes();
        want.extend(hmac_named(name, KEY, &message));
        assert_eq!(reply, want, "{name}");
        server.send_bytes(b"#WELCOME#").unwrap();
        t.join().unwrap().unwrap();
    }
}

#[test]
fn answer_rejects_what_is_not_a_challenge() {
    let bad: Vec<Vec<u8>> = vec![
        b"hello".to_vec(),
        b"#CHALLENGE#short".to_vec(),
        [b"#CHALLENGE#{sha1}".as_slice(), &[1; 40]].concat(),
        [b"#CHALLENGE#".as_slice(), &[1; 40]].concat(), // long, but no digest prefix
    ];
    for challenge in bad {
        let (mut client, mut server) = pair();
        server.send_bytes(&challenge).unwrap();
        let err = answer_challenge(&mut client, KEY).unwrap_err();
        assert!(err.is_authentication(), "{challenge:?}: {err}");
    }
}

#[test]
fn answer_fails_when_the_server_says_failure() {
    let (mut client, mut server) = pair();
    let t = thread::spawn(move || answer_challenge(&mut client, KEY));
    server
        .send_bytes(&[b"#CHALLENGE#".as_slice(), &[3; 20]].concat())
        .unwrap();
    server.recv_bytes().unwrap();
    server.send_bytes(b"#FAILURE#").unwrap();
    assert!(t.join().unwrap().unwrap_err().is_authentication());
}

#[test]
fn a_server_without_the_key_cannot_pass_as_one() {
    // A fake server welcomes any reply, but cannot answer the client's challenge: the
    // handshake is mutual, so the client refuses it.
    let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let address = Address::Tcp(listener.local_addr().unwrap());
    let fake = thread::spawn(move || {
        let (sock, _) = listener.accept().unwrap();
        let mut conn = Connection::from_fd(sock.into(), true, true).unwrap();
        conn.set_timeout(Some(LIMIT));
        conn.send_bytes(&[b"#CHALLENGE#".as_slice(), &[9; 20]].concat())
            .unwrap();
        conn.recv_bytes().unwrap();
        conn.send_bytes(b"#WELCOME#").unwrap();
        let challenge = conn.recv_bytes().unwrap();
        assert!(challenge.starts_with(b"#CHALLENGE#"));
        conn.send_bytes(&[0; 16]).unwrap();
        conn.recv_bytes().unwrap()
    });
    let err = Client::connect_timeout(&address, Some(KEY), LIMIT).unwrap_err();
    assert!(err.is_authentication(), "{err}");
    assert_eq!(fake.join().unwrap(), b"#FAILURE#");
}

#[test]
fn listener_keeps_serving_after_a_wrong_key() {
    let listener = Listener::bind(
        Some(Address::tcp(Ipv4Addr::LOCALHOST, 0)),
        Some(4),
        Some(KEY),
    )
    .unwrap();
    let address = listener.address().clone();
    let clients = thread::spawn(move || {
        let bad = Client::connect_timeout(&address, Some(b"nope"), LIMIT).unwrap_err();
        assert!(bad.is_authentication(), "{bad}");
        let mut good = Client::connect_timeout(&address, Some(KEY), LIMIT).unwrap();
        good.send_bytes(b"after").unwrap();
    });
    let err = listener.accept_timeout(LIMIT).unwrap_err();
    assert!(err.is_authentication(), "{err}");
    let mut conn = listener.accept_timeout(LIMIT).unwrap();
    conn.set_timeout(Some(LIMIT));
    assert_eq!(conn.recv_bytes().unwrap(), b"after");
    clients.join().unwrap();
}

#[test]
fn empty_listener_key_means_no_handshake() {
    // As in CPython: `Listener(authkey=b'')` does not authenticate.
    let listener = Listener::bind(
        Some(Address::tcp(Ipv4Addr::LOCALHOST, 0)),
        Some(1),
        Some(b""),
    )
    .unwrap();
    let address = listener.address().clone();
    let t = thread::spawn(move || {
        let mut c = Client::connect_timeout(&address, None, LIMIT).unwrap();
        c.send_bytes(b"plain").unwrap();
    });
    let mut conn = listener.accept_timeout(LIMIT).unwrap();
    conn.set_timeout(Some(LIMIT));
    assert_eq!(conn.recv_bytes().unwrap(), b"plain");
    t.join().unwrap();
}

#[test]
fn an_empty_key_on_both_sides_of_the_handshake_works() {
    let (mut server, mut client) = pair();
    let t = thread::spawn(move || answer_challenge(&mut client, b""));
    deliver_challenge(&mut server, b"").unwrap();
    t.join().unwrap().unwrap();
}

#[test]
fn the_connection_timeout_bounds_the_handshake() {
    let (mut server, _silent) = pair();
    server.set_timeout(Some(Duration::from_millis(100)));
    let t0 = Instant::now();
    let err = deliver_challenge(&mut server, KEY).unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert!(t0.elapsed() < LIMIT);

    let (mut client, _silent) = pair();
    let err =
        answer_challenge_deadline(&mut client, KEY, Instant::now() + Duration::from_millis(50))
            .unwrap_err();
    assert!(err.is_timeout(), "{err}");
}

#[test]
fn client_handshake_timeout_against_a_silent_server() {
    let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let address = Address::Tcp(listener.local_addr().unwrap());
    let t0 = Instant::now();
    // The kernel completes the TCP connect; nobody ever sends a challenge.
    let err = Client::connect_timeout(&address, Some(KEY), Duration::from_millis(200)).unwrap_err();
    assert!(err.is_timeout(), "{err}");
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_millis(190) && waited < LIMIT,
        "{waited:?}"
    );
    drop(listener);
}

#[test]
fn handshake_works_over_unix_and_abstract_sockets() {
    for address in [
        None,
        Some(mp_connection::arbitrary_address(mp_connection::Family::Abstract).unwrap()),
    ] {
        let listener = Listener::bind(address, Some(1), Some(KEY)).unwrap();
        let address = listener.address().clone();
        let t =
            thread::spawn(move || Client::connect_timeout(&address, Some(KEY), LIMIT).map(drop));
        listener.accept_timeout(LIMIT).unwrap();
        t.join().unwrap().unwrap();
    }
}

/// Waits 300 ms, then delivers a challenge.
fn slow_challenger(mut c: Connection) {
    thread::sleep(Duration::from_millis(300));
    let _ = deliver_challenge_deadline(&mut c, KEY, Digest::Sha256, deadline());
}

/// A handshake looks for each message for a moment before it sleeps (its peer usually
/// answers within microseconds; the `listener_auth` figure shows what that saves), and only
/// for a moment: waiting 300 ms for a forked peer's challenge, it sleeps in the kernel.
#[test]
fn a_handshake_spins_only_briefly_for_a_slow_peer() {
    let (mut ours, theirs) = pair();
    let mut p =
        mp_core::get_context(Some(mp_core::StartMethod::Fork)).process(slow_challenger, theirs);
    p.start().unwrap();
    mp_testkit::assert_sleeps("a handshake with a slow peer", || {
        answer_challenge_deadline(&mut ours, KEY, deadline()).unwrap();
    });
    assert_eq!(p.join_timeout(LIMIT).unwrap(), Some(0));
}
