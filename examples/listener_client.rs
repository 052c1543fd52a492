//! Python's `Listener`/`Client` example: a server sends an object, bytes, and an array of ints
//! that the client reads with `recv_bytes_into`.
//!
//! ```python
//! from multiprocessing.connection import Listener
//! from array import array
//!
//! address = ('localhost', 6000)     # family is deduced to be 'AF_INET'
//!
//! with Listener(address, authkey=b'secret password') as listener:
//!     with listener.accept() as conn:
//!         print('connection accepted from', listener.last_accepted)
//!         conn.send([2.25, None, 'junk', float])
//!         conn.send_bytes(b'hello')
//!         conn.send_bytes(array('i', [42, 1729]))
//! ```
//!
//! ```python
//! from multiprocessing.connection import Client
//! from array import array
//!
//! address = ('localhost', 6000)
//!
//! with Client(address, authkey=b'secret password') as conn:
//!     print(conn.recv())                  # => [2.25, None, 'junk', float]
//!     print(conn.recv_bytes())            # => 'hello'
//!     arr = array('i', [0, 0, 0, 0, 0])
//!     print(conn.recv_bytes_into(arr))    # => 8
//!     print(arr)                          # => array('i', [42, 1729, 0, 0, 0])
//! ```
//!
//! Here the server runs in a child process on a free port, and tells the parent its address.

#[path = "common/py.rs"]
mod py;

use std::net::Ipv4Addr;

use multiprocessing::connection::{Address, Client, Listener};
use multiprocessing::{pipe, Connection, Process};
use py::Py;

const AUTHKEY: &[u8] = b"secret password";

fn server(mut to_parent: Connection) {
    let listener = Listener::bind(
        Some(Address::tcp(Ipv4Addr::LOCALHOST, 0)),
        Some(1),
        Some(AUTHKEY),
    )
    .expect("bind");
    to_parent
        .send(&listener.address().to_string())
        .expect("send address");
    let mut conn = listener.accept().expect("accept");
    let from = listener
        .last_accepted()
        .map(|a| a.to_string())
        .unwrap_or_default();
    println!("connection accepted from {from}");
    let value = Py::List(vec![Py::Float(2.25), Py::None, Py::Str("junk".into())]);
    conn.send(&value).expect("send");
    conn.send_bytes(b"hello").expect("send_bytes");
    let ints: Vec<u8> = [42i32, 1729].iter().flat_map(|i| i.to_ne_bytes()).collect();
    conn.send_bytes(&ints).expect("send_bytes");
}

/// Runs the example.
pub fn main() {
    let (mut from_server, to_parent) = pipe(true).expect("pipe");
    let mut p = Process::new(server, to_parent);
    p.start().expect("start");
    let address: Address = from_server
        .recv::<String>()
        .expect("address")
        .parse()
        .expect("parse");

    let mut conn = Client::connect(&address, Some(AUTHKEY)).expect("connect");
    println!("{}", conn.recv::<Py>().expect("recv")); // => [2.25, None, 'junk']
    let hello = conn.recv_bytes().expect("recv_bytes");
    println!("b'{}'", String::from_utf8_lossy(&hello)); // => b'hello'
    let mut arr = [0u8; 5 * 4];
    println!(
        "{}",
        conn.recv_bytes_into(&mut arr).expect("recv_bytes_into")
    ); // => 8
    let ints: Vec<i32> = arr
        .chunks(4)
        .map(|c| i32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    println!("array('i', {ints:?})"); // => array('i', [42, 1729, 0, 0, 0])
    p.join().expect("join");
}
