//! The Rust side (and the OS limit) of the `multiprocessing.connection` figures: the same
//! workloads as `figure_listener_auth` and `figure_listener_pingpong` in
//! `bench/cpython_connection.py`.
//!
//! | figure              | workload                                                              | limit                                                          |
//! | ------------------- | --------------------------------------------------------------------- | -------------------------------------------------------------- |
//! | `listener_auth`     | TCP connect + both HMAC handshakes to a child's `Listener`, us each   | none                                                           |
//! | `listener_pingpong` | 8-byte `send_bytes`/`recv_bytes` round trips over an authenticated TCP connection to an echoing child | raw 8-byte write/read round trips over TCP loopback (`TCP_NODELAY`, no framing) to a child |

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::time::Instant;

use multiprocessing::connection::{Address, Client, Listener};
use multiprocessing::{pipe, Connection, Process};

use crate::limits::start_apart;

/// The key both sides use, as in the CPython workload.
const AUTHKEY: &[u8] = b"benchmark key";
/// Connections per `listener_auth` repetition.
const CONNECTIONS: u32 = 200;
/// Round trips per `listener_pingpong` repetition.
const ROUND_TRIPS: u32 = 20_000;

/// Measures one repetition of figure `name`: `(unit, value)`, or `None` when `name` is not a
/// connection figure.
pub fn run(name: &str) -> Option<(&'static str, f64)> {
    match name {
        "listener_auth" => Some(("us", listener_auth(CONNECTIONS))),
        "listener_pingpong" => Some(("round_trips/s", listener_pingpong(ROUND_TRIPS))),
        _ => None,
    }
}

/// Measures one repetition of the OS limit of figure `name`, or `None` when it has none.
pub fn limit(name: &str) -> Option<(&'static str, f64)> {
    match name {
        "listener_pingpong" => Some(("round_trips/s", raw_tcp_pingpong(ROUND_TRIPS))),
        _ => None,
    }
}

/// Binds an authenticated TCP listener, tells the parent its address, and accepts `count`
/// connections (each with both handshakes), closing each at once.
fn auth_server((mut to_parent, count): (Connection, u32)) {
    let address = Address::tcp(Ipv4Addr::LOCALHOST, 0);
    let listener = Listener::bind(Some(address), Some(64), Some(AUTHKEY)).expect("bind");
    to_parent
        .send_bytes(listener.address().to_string().as_bytes())
        .expect("send address");
    for _ in 0..count {
        drop(listener.accept().expect("accept"));
    }
}

/// Reads the address a child server sent.
fn address_from(conn: &mut Connection) -> Address {
    let bytes = conn.recv_bytes().expect("recv address");
    String::from_utf8(bytes)
        .expect("utf-8 address")
        .parse()
        .expect("address")
}

/// Microseconds per TCP connect + both handshakes (client side), to a child's listener.
fn listener_auth(count: u32) -> f64 {
    let (mut parent, child) = pipe(true).expect("pipe");
    let mut server = Process::new(auth_server, (child, count + 1));
    // The two processes on two CPUs (`start_apart`, as CPython's side).
    let ((), pinned) = start_apart(|| server.start().expect("start"));
    let address = address_from(&mut parent);
    // Warm-up connection: the child is accepting before the clock starts.
    drop(Client::connect(&address, Some(AUTHKEY)).expect("connect"));
    let t0 = Instant::now();
    for _ in 0..count {
        drop(Client::connect(&address, Some(AUTHKEY)).expect("connect"));
    }
    let elapsed = t0.elapsed().as_secs_f64();
    drop(pinned);
    server.join().expect("join");
    elapsed * 1e6 / f64::from(count)
}

/// Accepts one authenticated connection and echoes byte messages until end of file.
fn echo_server(mut to_parent: Connection) {
    let address = Address::tcp(Ipv4Addr::LOCALHOST, 0);
    let listener = Listener::bind(Some(address), Some(1), Some(AUTHKEY)).expect("bind");
    to_parent
        .send_bytes(listener.address().to_string().as_bytes())
        .expect("send address");
    let mut conn = listener.accept().expect("accept");
    while let Ok(message) = conn.recv_bytes() {
        conn.send_bytes(&message).expect("echo");
    }
}

/// Round trips per second of 8-byte messages over an authenticated TCP connection.
fn listener_pingpong(round_trips: u32) -> f64 {
    let (mut parent, child) = pipe(true).expect("pipe");
    let mut server = Process::new(echo_server, child);
    // The two processes on two CPUs (`start_apart`, as CPython's side).
    let ((), pinned) = start_apart(|| server.start().expect("start"));
    let address = address_from(&mut parent);
    let mut conn = Client::connect(&address, Some(AUTHKEY)).expect("connect");
    let message = [7u8; 8];
    conn.send_bytes(&message).expect("send");
    conn.recv_bytes().expect("recv");
    let t0 = Instant::now();
    for _ in 0..round_trips {
        conn.send_bytes(&message).expect("send");
        conn.recv_bytes().expect("recv");
    }
    let elapsed = t0.elapsed().as_secs_f64();
    drop(pinned);
    drop(conn);
    server.join().expect("join");
    f64::from(round_trips) / elapsed
}

/// Accepts one TCP connection (`TCP_NODELAY`) and echoes 8-byte blocks until end of file.
fn raw_echo_server(mut to_parent: Connection) {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    let port = listener.local_addr().expect("local_addr").port();
    to_parent
        .send_bytes(&port.to_be_bytes())
        .expect("send port");
    let (mut sock, _) = listener.accept().expect("accept");
    sock.set_nodelay(true).expect("nodelay");
    let mut buf = [0u8; 8];
    while sock.read_exact(&mut buf).is_ok() {
        sock.write_all(&buf).expect("echo");
    }
}

/// Round trips per second of raw 8-byte write/read over TCP loopback: the OS limit of
/// `listener_pingpong`.
fn raw_tcp_pingpong(round_trips: u32) -> f64 {
    let (mut parent, child) = pipe(true).expect("pipe");
    let mut server = Process::new(raw_echo_server, child);
    // The two processes on two CPUs (`start_apart`, as both sides of `listener_pingpong`).
    let ((), pinned) = start_apart(|| server.start().expect("start"));
    let port = parent.recv_bytes().expect("recv port");
    let port = u16::from_be_bytes(port.try_into().expect("2-byte port"));
    let mut sock = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).expect("connect");
    sock.set_nodelay(true).expect("nodelay");
    let mut buf = [7u8; 8];
    sock.write_all(&buf).expect("write");
    sock.read_exact(&mut buf).expect("read");
    let t0 = Instant::now();
    for _ in 0..round_trips {
        sock.write_all(&buf).expect("write");
        sock.read_exact(&mut buf).expect("read");
    }
    let elapsed = t0.elapsed().as_secs_f64();
    drop(pinned);
    drop(sock);
    server.join().expect("join");
    f64::from(round_trips) / elapsed
}
