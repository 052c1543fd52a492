//! Regression tests named after what broke (issue 10, items 1 and 2): a listener that one
//! silent connection blocked for everyone, an echo server that one idle client blocked
//! forever, and clients that hung forever under a burst.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use mp_connection::{serve_echo_idle, Address, Client, Listener, DEFAULT_HANDSHAKE_TIMEOUT};

const KEY: &[u8] = b"regression key";
/// Bounds every blocking call of these tests.
const LIMIT: Duration = Duration::from_secs(30);
/// "A fraction of a second" on a loaded 2-core machine: far below the handshake timeouts the
/// old behaviour waited out (60 s here).
const PROMPT: Duration = Duration::from_secs(2);

fn tcp_any() -> Address {
    Address::tcp(Ipv4Addr::LOCALHOST, 0)
}

/// A listener whose handshakes may take a minute: a silent peer held the old accept for all
/// of it.
fn patient_listener() -> Listener {
    Listener::builder()
        .address(tcp_any())
        .authkey(KEY)
        .handshake_timeout(Some(Duration::from_secs(60)))
        .bind()
        .unwrap()
}

fn silent_peer(address: &Address) -> TcpStream {
    let stream = TcpStream::connect(address.to_string()).unwrap();
    stream.set_read_timeout(Some(LIMIT)).unwrap();
    stream
}

#[test]
fn a_silent_peer_does_not_delay_the_next_client_of_incoming() {
    let listener = patient_listener();
    let address = listener.address().clone();
    let _silent = silent_peer(&address);
    // Give the silent peer time to be accepted first.
    thread::sleep(Duration::from_millis(100));
    let client = thread::spawn(move || {
        let mut conn = Client::connect_timeout(&address, Some(KEY), LIMIT).unwrap();
        conn.recv_timeout::<u32>(LIMIT)
    });
    let mut incoming = listener.incoming().unwrap();
    let started = Instant::now();
    let mut conn = incoming.accept_timeout(LIMIT).unwrap();
    let took = started.elapsed();
    conn.send(&7u32).unwrap();
    assert_eq!(client.join().unwrap().unwrap(), 7);
    assert!(
        took < PROMPT,
        "the second client waited {took:?} behind a silent one"
    );
    assert_eq!(
        incoming.pending(),
        1,
        "the silent peer's handshake is still running"
    );
    assert_eq!(incoming.rejected(), 0);
}

#[test]
fn incoming_rejects_a_wrong_key_and_serves_the_next_client() {
    let listener = patient_listener();
    let address = listener.address().clone();
    let client = thread::spawn(move || {
        let err = Client::connect_timeout(&address, Some(b"wrong"), LIMIT).unwrap_err();
        assert!(err.is_authentication(), "{err}");
        let mut conn = Client::connect_timeout(&address, Some(KEY), LIMIT).unwrap();
        conn.recv_timeout::<String>(LIMIT)
    });
    let mut incoming = listener.incoming().unwrap();
    let mut conn = incoming.accept_timeout(LIMIT).unwrap();
    conn.send(&"hi").unwrap();
    assert_eq!(client.join().unwrap().unwrap(), "hi");
    assert_eq!(incoming.rejected(), 1);
    let err = incoming
        .accept_timeout(Duration::from_millis(50))
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
}

#[test]
fn a_silent_peer_and_an_idle_client_do_not_delay_a_third_client_of_serve_echo() {
    let listener = patient_listener();
    let address = listener.address().clone();
    // Serves two clients (the idle one and the third), each on its own thread.
    let server = thread::spawn(move || serve_echo_idle(&listener, Some(2), Some(LIMIT)));

    let silent = silent_peer(&address);
    let mut idle = Client::connect_timeout(&address, Some(KEY), LIMIT).unwrap();
    idle.send_bytes(b"once").unwrap();
    assert_eq!(idle.recv_bytes_timeout(LIMIT).unwrap(), b"once");
    // Now `idle` says nothing more, and `silent` never said anything.

    let started = Instant::now();
    let mut third = Client::connect_timeout(&address, Some(KEY), LIMIT).unwrap();
    third.send_bytes(b"ping").unwrap();
    assert_eq!(third.recv_bytes_timeout(LIMIT).unwrap(), b"ping");
    let took = started.elapsed();
    assert!(took < PROMPT, "the third client waited {took:?}");

    drop(third);
    drop(idle);
    drop(silent);
    server.join().unwrap().unwrap();
}

#[test]
fn serve_echo_drops_a_client_idle_past_its_timeout() {
    let listener = patient_listener();
    let address = listener.address().clone();
    let server = thread::spawn(move || {
        serve_echo_idle(&listener, Some(1), Some(Duration::from_millis(200)))
    });
    let mut idle = Client::connect_timeout(&address, Some(KEY), LIMIT).unwrap();
    // The server hangs up on us: our read sees the end of the stream, not a timeout.
    let err = idle.recv_bytes_timeout(LIMIT).unwrap_err();
    assert!(err.is_eof(), "{err}");
    server.join().unwrap().unwrap();
}

#[test]
fn two_hundred_concurrent_clients_are_all_served_under_the_default_backlog() {
    const CLIENTS: usize = 200;
    const ROUND_TRIPS: usize = 100;
    // The default backlog (the system's maximum): 200 clients at once overflowed a queue of
    // 16, and with SYN cookies most of them waited forever for a challenge never sent.
    let listener = Listener::bind(Some(tcp_any()), None, Some(KEY)).unwrap();
    let address = listener.address().clone();
    let server = thread::spawn(move || serve_echo_idle(&listener, Some(CLIENTS), Some(LIMIT)));

    let (done, results) = mpsc::channel();
    let start = std::sync::Arc::new(std::sync::Barrier::new(CLIENTS));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let (address, done, start) = (address.clone(), done.clone(), start.clone());
            thread::Builder::new()
                .stack_size(256 << 10)
                .spawn(move || {
                    start.wait();
                    let result = (|| -> mp_connection::Result<usize> {
                        let mut conn = Client::connect(&address, Some(KEY))?;
                        for n in 0..ROUND_TRIPS {
                            let message = format!("client {i} message {n}");
                            conn.send_bytes(message.as_bytes())?;
                            let echoed = conn.recv_bytes_timeout(LIMIT)?;
                            assert_eq!(echoed, message.as_bytes());
                        }
                        Ok(ROUND_TRIPS)
                    })();
                    let _ = done.send((i, result));
                })
                .unwrap()
        })
        .collect();
    drop(done);
    let mut served = 0;
    for _ in 0..CLIENTS {
        let (i, result) = results
            .recv_timeout(Duration::from_secs(90))
            .expect("a client hung");
        match result {
            Ok(n) => served += n,
            Err(e) => panic!("client {i} failed: {e}"),
        }
    }
    assert_eq!(served, CLIENTS * ROUND_TRIPS);
    for client in clients {
        client.join().unwrap();
    }
    server.join().unwrap().unwrap();
}

#[test]
fn a_client_fails_with_a_timeout_when_the_server_never_speaks() {
    // A server whose kernel queue holds the connection but that never sends the challenge.
    let mute = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let address = Address::from(mute.local_addr().unwrap());
    let err = Client::builder()
        .authkey(KEY)
        .handshake_timeout(Some(Duration::from_millis(300)))
        .connect(&address)
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");

    // And by default (no timeout asked for), after DEFAULT_HANDSHAKE_TIMEOUT.
    let started = Instant::now();
    let err = Client::connect(&address, Some(KEY)).unwrap_err();
    assert!(err.is_timeout(), "{err}");
    let took = started.elapsed();
    assert!(
        took >= DEFAULT_HANDSHAKE_TIMEOUT && took < DEFAULT_HANDSHAKE_TIMEOUT + LIMIT,
        "the default handshake timeout took {took:?}"
    );
}

#[test]
fn a_wrong_key_is_always_an_authentication_error_never_a_broken_pipe() {
    // The client sends its own challenge right after its answer; a server that refuses the
    // answer may have closed by then, and that write failed with EPIPE, hiding the verdict.
    let listener = Listener::bind(None, None, Some(KEY)).unwrap();
    let address = listener.address().clone();
    let server = thread::spawn(move || {
        let mut incoming = listener.incoming().unwrap();
        // Serves nobody: every client has the wrong key.
        let _ = incoming.accept_timeout(Duration::from_secs(5));
        incoming.rejected()
    });
    for i in 0..100 {
        let err = Client::connect_timeout(&address, Some(b"wrong"), LIMIT).unwrap_err();
        assert!(err.is_authentication(), "attempt {i}: {err}");
    }
    assert_eq!(server.join().unwrap(), 100);
}
