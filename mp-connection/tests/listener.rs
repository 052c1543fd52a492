//! `Listener` and `Client` over real sockets: TCP (IPv4, IPv6), Unix paths, abstract names;
//! binding, closing, removing socket files, timeouts, and clients in other processes.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use mp_connection::{arbitrary_address, Address, Client, Family, Listener};
use mp_core::Process;

const KEY: &[u8] = b"listener test key";
/// Every blocking call in these tests is bounded by this.
const LIMIT: Duration = Duration::from_secs(10);

fn tcp_any() -> Address {
    Address::tcp(Ipv4Addr::LOCALHOST, 0)
}

/// Accepts one client in a thread, echoes one message, and returns the listener.
fn echo_once(listener: Listener) -> thread::JoinHandle<Listener> {
    thread::spawn(move || {
        let mut conn = listener.accept_timeout(LIMIT).expect("accept");
        conn.set_timeout(Some(LIMIT));
        let msg = conn.recv_bytes().expect("recv");
        conn.send_bytes(&msg).expect("send");
        listener
    })
}

fn round_trip(address: &Address, key: Option<&[u8]>) {
    let mut conn = Client::connect_timeout(address, key, LIMIT).expect("connect");
    conn.set_timeout(Some(LIMIT));
    conn.send_bytes(b"ping").expect("send");
    assert_eq!(conn.recv_bytes().expect("recv"), b"ping");
}

#[test]
fn tcp_port_zero_is_resolved_and_serves() {
    let listener = Listener::bind(Some(tcp_any()), Some(1), Some(KEY)).unwrap();
    let address = listener.address().clone();
    let Address::Tcp(sa) = address else {
        panic!("not TCP: {address:?}")
    };
    assert_ne!(sa.port(), 0);
    assert_eq!(sa.ip(), Ipv4Addr::LOCALHOST);
    assert!(listener.last_accepted().is_none());
    let server = echo_once(listener);
    round_trip(&address, Some(KEY));
    let listener = server.join().unwrap();
    match listener.last_accepted() {
        Some(Address::Tcp(peer)) => assert_eq!(peer.ip(), Ipv4Addr::LOCALHOST),
        other => panic!("last_accepted = {other:?}"),
    }
}

#[test]
fn tcp_without_a_key() {
    let listener = Listener::bind(Some(tcp_any()), Some(1), None).unwrap();
    let address = listener.address().clone();
    let server = echo_once(listener);
    round_trip(&address, None);
    server.join().unwrap();
}

#[test]
fn ipv6_loopback() {
    let listener = match Listener::bind(
        Some(Address::tcp(Ipv6Addr::LOCALHOST, 0)),
        Some(1),
        Some(KEY),
    ) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("skipped: no IPv6 loopback here ({e})");
            return;
        }
    };
    let address = listener.address().clone();
    assert!(address.to_string().starts_with("[::1]:"), "{address}");
    let server = echo_once(listener);
    round_trip(&address, Some(KEY));
    server.join().unwrap();
}

#[test]
fn default_address_is_a_fresh_unix_path_removed_on_close() {
    let mut listener = Listener::bind(None, Some(1), Some(KEY)).unwrap();
    let Address::Unix(path) = listener.address().clone() else {
        panic!("default family is not Unix: {:?}", listener.address())
    };
    assert!(path.exists(), "{path:?} should exist while listening");
    let dir = path.parent().unwrap().to_path_buf();
    assert!(dir
        .file_name()
        .unwrap()
        .to_string_lossy()
        .starts_with("mp-"));

    let address = listener.address().clone();
    let server = thread::spawn(move || {
        let mut conn = listener.accept_timeout(LIMIT).expect("accept");
        conn.set_timeout(Some(LIMIT));
        let msg = conn.recv_bytes().expect("recv");
        conn.send_bytes(&msg).expect("send");
        // A Unix client has no name: Python's ''.
        assert_eq!(
            listener.last_accepted(),
            Some(Address::Unix(PathBuf::new()))
        );
        listener
    });
    round_trip(&address, Some(KEY));
    listener = server.join().unwrap();

    listener.close();
    assert!(listener.is_closed());
    assert!(!path.exists(), "socket file left behind");
    assert!(!dir.exists(), "private directory left behind");
    listener.close(); // twice is harmless
}

#[test]
fn unix_socket_file_removed_on_drop() {
    let listener = Listener::bind(None, Some(1), None).unwrap();
    let Address::Unix(path) = listener.address().clone() else {
        panic!()
    };
    assert!(path.exists());
    drop(listener);
    assert!(!path.exists());
}

#[test]
fn unix_path_given_by_the_caller() {
    let Address::Unix(generated) = arbitrary_address(Family::Unix).unwrap() else {
        panic!()
    };
    let dir = generated.parent().unwrap().to_path_buf();
    let path = dir.join("custom.sock");
    let listener = Listener::bind(Some(Address::unix(&path)), Some(4), Some(KEY)).unwrap();
    assert_eq!(listener.address(), &Address::Unix(path.clone()));
    let address = listener.address().clone();
    let server = echo_once(listener);
    round_trip(&address, Some(KEY));
    drop(server.join().unwrap());
    assert!(!path.exists());
    let _ = std::fs::remove_dir(&dir);
}

#[test]
fn abstract_address() {
    let address = arbitrary_address(Family::Abstract).unwrap();
    assert_eq!(address.family(), Family::Abstract);
    assert!(address.to_string().starts_with("@mp-listener-"));
    let listener = Listener::bind(Some(address.clone()), Some(1), Some(KEY)).unwrap();
    assert_eq!(listener.address(), &address);
    let server = echo_once(listener);
    round_trip(&address, Some(KEY));
    server.join().unwrap();
}

#[test]
fn binding_an_address_in_use_fails() {
    let tcp = Listener::bind(Some(tcp_any()), Some(1), None).unwrap();
    let err = Listener::bind(Some(tcp.address().clone()), Some(1), None).unwrap_err();
    assert!(err.is_address_in_use(), "{err}");
    assert!(err.to_string().contains("address already in use"), "{err}");

    let unix = Listener::bind(None, Some(1), None).unwrap();
    let err = Listener::bind(Some(unix.address().clone()), Some(1), None).unwrap_err();
    assert!(err.is_address_in_use(), "{err}");
    // The failed bind did not remove the first listener's socket file.
    let Address::Unix(path) = unix.address() else {
        panic!()
    };
    assert!(path.exists());

    let name = arbitrary_address(Family::Abstract).unwrap();
    let _abs = Listener::bind(Some(name.clone()), Some(1), None).unwrap();
    assert!(Listener::bind(Some(name), Some(1), None)
        .unwrap_err()
        .is_address_in_use());
}

#[test]
fn tcp_port_is_reusable_right_after_close() {
    // The server closes first, so its side of the connection sits in TIME_WAIT; SO_REUSEADDR
    // lets a new listener bind the port anyway.
    let listener = Listener::bind(Some(tcp_any()), Some(1), None).unwrap();
    let address = listener.address().clone();
    let mut client = Client::connect_timeout(&address, None, LIMIT).unwrap();
    let conn = listener.accept_timeout(LIMIT).unwrap();
    drop(conn);
    drop(listener);
    client.set_timeout(Some(LIMIT));
    assert!(client.recv_bytes().unwrap_err().is_eof());
    drop(client);
    let again = Listener::bind(Some(address.clone()), Some(1), None).unwrap();
    assert_eq!(again.address(), &address);
}

#[test]
fn accept_after_close_fails() {
    let mut listener = Listener::bind(Some(tcp_any()), Some(1), None).unwrap();
    listener.close();
    let err = listener.accept().unwrap_err();
    assert!(err.is_closed(), "{err}");
    assert_eq!(err.to_string(), "listener is closed");
    assert!(listener.fileno().is_err());
}

#[test]
fn accept_timeout_times_out() {
    let listener = Listener::bind(Some(tcp_any()), Some(1), None).unwrap();
    let t0 = Instant::now();
    let err = listener
        .accept_timeout(Duration::from_millis(100))
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    let waited = t0.elapsed();
    assert!(waited >= Duration::from_millis(100), "{waited:?}");
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    // Zero only looks.
    assert!(listener
        .accept_timeout(Duration::ZERO)
        .unwrap_err()
        .is_timeout());
}

#[test]
fn connect_to_nothing_is_an_os_error() {
    // A port that was just free: bind, note it, close.
    let listener = Listener::bind(Some(tcp_any()), Some(1), None).unwrap();
    let address = listener.address().clone();
    drop(listener);
    let err = Client::connect_timeout(&address, None, LIMIT).unwrap_err();
    assert!(matches!(err, mp_connection::Error::Io(_)), "{err:?}");

    let missing = Address::unix("/nonexistent-dir-for-mp-tests/sock");
    let err = Client::connect(&missing, None).unwrap_err();
    assert!(matches!(err, mp_connection::Error::Io(_)), "{err:?}");
}

#[test]
fn unix_connect_timeout_when_the_backlog_is_full() {
    // Nobody accepts: once the queue is full, a Unix connect waits, and the timeout ends it.
    let listener = Listener::bind(None, Some(0), None).unwrap();
    let address = listener.address().clone();
    let mut held = Vec::new();
    let mut timed_out = false;
    for _ in 0..8 {
        let t0 = Instant::now();
        match Client::connect_timeout(&address, None, Duration::from_millis(100)) {
            Ok(conn) => held.push(conn),
            Err(e) => {
                assert!(e.is_timeout(), "{e}");
                assert!(t0.elapsed() >= Duration::from_millis(90));
                timed_out = true;
                break;
            }
        }
    }
    assert!(timed_out, "never timed out after {} connects", held.len());
    // The queued ones are still there to accept.
    assert!(listener.accept_timeout(LIMIT).is_ok());
}

#[test]
fn message_size_limit_of_accepted_connections() {
    let listener = Listener::builder()
        .address(tcp_any())
        .authkey(KEY)
        .max_message_size(Some(1024))
        .bind()
        .unwrap();
    let address = listener.address().clone();
    let server = thread::spawn(move || {
        let mut conn = listener.accept_timeout(LIMIT).unwrap();
        conn.set_timeout(Some(LIMIT));
        assert_eq!(conn.recv_bytes().unwrap().len(), 1024);
        let err = conn.recv_bytes().unwrap_err();
        assert!(matches!(
            err,
            mp_core::Error::MessageTooLong {
                length: 1025,
                limit: 1024
            }
        ));
    });
    let mut conn = Client::connect_timeout(&address, Some(KEY), LIMIT).unwrap();
    conn.send_bytes(&[7; 1024]).unwrap();
    conn.send_bytes(&[7; 1025]).unwrap();
    server.join().unwrap();
}

#[test]
fn default_limit_is_32_mib() {
    assert_eq!(mp_connection::DEFAULT_MAX_MESSAGE_SIZE, 32 << 20);
    let listener = Listener::bind(Some(tcp_any()), Some(1), None).unwrap();
    let address = listener.address().clone();
    let client = thread::spawn(move || Client::connect_timeout(&address, None, LIMIT).unwrap());
    let conn = listener.accept_timeout(LIMIT).unwrap();
    assert_eq!(conn.max_message_size(), 32 << 20);
    let client = client.join().unwrap();
    assert_eq!(client.max_message_size(), u64::MAX);
}

#[test]
fn threads_accept_on_one_listener() {
    let listener =
        std::sync::Arc::new(Listener::bind(Some(tcp_any()), Some(8), Some(KEY)).unwrap());
    let address = listener.address().clone();
    let servers: Vec<_> = (0..2)
        .map(|_| {
            let listener = listener.clone();
            thread::spawn(move || {
                let mut conn = listener.accept_timeout(LIMIT).unwrap();
                conn.set_timeout(Some(LIMIT));
                let msg = conn.recv_bytes().unwrap();
                conn.send_bytes(&msg).unwrap();
            })
        })
        .collect();
    for _ in 0..2 {
        round_trip(&address, Some(KEY));
    }
    for s in servers {
        s.join().unwrap();
    }
}

/// A child process connects as a client and sends its pid.
fn client_child((address, key): (String, Vec<u8>)) -> i32 {
    let address: Address = address.parse().unwrap();
    let mut conn = Client::connect_timeout(&address, Some(&key), LIMIT).unwrap();
    conn.set_timeout(Some(LIMIT));
    conn.send_bytes(&std::process::id().to_be_bytes()).unwrap();
    let reply = conn.recv_bytes().unwrap();
    i32::from_be_bytes(reply.try_into().unwrap())
}

#[test]
fn clients_in_child_processes() {
    for address in [Some(tcp_any()), None] {
        let listener = Listener::bind(address, Some(1), Some(KEY)).unwrap();
        let mut p = Process::new(client_child, (listener.address().to_string(), KEY.to_vec()));
        p.start().unwrap();
        let mut conn = listener.accept_timeout(LIMIT).unwrap();
        conn.set_timeout(Some(LIMIT));
        let pid = u32::from_be_bytes(conn.recv_bytes().unwrap().try_into().unwrap());
        assert_eq!(Some(pid as i32), p.pid().unwrap());
        conn.send_bytes(&42i32.to_be_bytes()).unwrap();
        assert_eq!(p.join_timeout(LIMIT).unwrap(), Some(0));
        assert_eq!(p.join_result().unwrap(), 42);
    }
}

/// Where a listener waits while a child forks: the child gets a copy of it.
static FORKED: std::sync::Mutex<Option<Listener>> = std::sync::Mutex::new(None);

#[test]
fn listener_inherited_by_a_forked_child_does_not_unlink() {
    let listener = Listener::bind(None, Some(1), Some(KEY)).unwrap();
    let address = listener.address().clone();
    let Address::Unix(path) = address.clone() else {
        panic!()
    };
    *FORKED.lock().unwrap() = Some(listener);
    let mut p = Process::from_closure(|| {
        // The child's copy of the parent's listener: closing and dropping it must leave the
        // socket file alone.
        let mut copy = FORKED.lock().unwrap().take().unwrap();
        copy.close();
        drop(copy);
    });
    p.start().unwrap();
    assert_eq!(p.join_timeout(LIMIT).unwrap(), Some(0));
    assert!(path.exists(), "a child removed the parent's socket file");

    // The parent's listener still serves, and removes the file when it goes.
    let listener = FORKED.lock().unwrap().take().unwrap();
    let server = echo_once(listener);
    round_trip(&address, Some(KEY));
    drop(server.join().unwrap());
    assert!(!path.exists());
}

#[test]
fn a_socket_file_replaced_by_someone_else_is_left_alone() {
    let listener = Listener::bind(None, Some(1), None).unwrap();
    let Address::Unix(path) = listener.address().clone() else {
        panic!()
    };
    std::fs::remove_file(&path).unwrap();
    std::fs::write(&path, b"not ours").unwrap();
    drop(listener);
    assert_eq!(std::fs::read(&path).unwrap(), b"not ours");
    std::fs::remove_file(&path).unwrap();
    let _ = std::fs::remove_dir(path.parent().unwrap());
}

#[test]
fn tcp_nodelay_is_set_on_both_ends() {
    let listener = Listener::bind(Some(tcp_any()), Some(1), None).unwrap();
    let address = listener.address().clone();
    let client = Client::connect_timeout(&address, None, LIMIT).unwrap();
    let server = listener.accept_timeout(LIMIT).unwrap();
    for conn in [&client, &server] {
        assert!(rustix::net::sockopt::tcp_nodelay(conn.fileno().unwrap()).unwrap());
    }
}
