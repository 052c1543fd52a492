//! Listeners, clients and the HMAC handshake: Python's `multiprocessing.connection` for Rust.
//!
//! Mirrors the socket half of `multiprocessing.connection`: a [`Listener`] bound to an
//! [`Address`] (TCP, a Unix socket path, or a Linux abstract name) accepts [`Client`]s, and
//! both sides get an [`mp_core::Connection`] that exchanges framed messages in CPython's wire
//! format. With an authentication key both sides run CPython's HMAC challenge-response
//! handshake ([`deliver_challenge`], [`answer_challenge`]), so a Python process and a Rust
//! process can authenticate to each other and trade `send_bytes`/`recv_bytes` messages.
//! [`wait`] blocks on any mix of connections, listeners, processes and fds.
//!
//! ```
//! use std::thread;
//! use mp_connection::{Address, Client, Listener};
//!
//! // Python: Listener(('localhost', 0), authkey=b'secret password')
//! let listener = Listener::bind(Some("127.0.0.1:0".parse()?), Some(1), Some(b"secret password"))?;
//! let address = listener.address().clone();
//!
//! let server = thread::spawn(move || -> mp_connection::Result<()> {
//!     let mut conn = listener.accept()?;
//!     conn.send_bytes(b"hello")?;
//!     // Python: conn.send_bytes(array('i', [42, 1729]))
//!     let ints: Vec<u8> = [42i32, 1729].iter().flat_map(|i| i.to_ne_bytes()).collect();
//!     conn.send_bytes(&ints)?;
//!     Ok(())
//! });
//!
//! // Python: Client(address, authkey=b'secret password')
//! let mut conn = Client::connect(&address, Some(b"secret password"))?;
//! assert_eq!(conn.recv_bytes()?, b"hello");
//! let mut buf = [0u8; 20];
//! let n = conn.recv_bytes_into(&mut buf)?; // Python: conn.recv_bytes_into(arr)
//! assert_eq!(n, 8);
//! assert_eq!(i32::from_ne_bytes(buf[4..8].try_into().unwrap()), 1729);
//! server.join().unwrap()?;
//!
//! // A wrong key is refused on both sides.
//! let listener = Listener::bind(None, Some(1), Some(b"right"))?; // a fresh Unix socket path
//! let address: Address = listener.address().clone();
//! let server = thread::spawn(move || listener.accept().map(drop));
//! let err = Client::connect(&address, Some(b"wrong")).unwrap_err();
//! assert!(err.is_authentication());
//! assert!(server.join().unwrap().unwrap_err().is_authentication());
//! # Ok::<(), mp_connection::Error>(())
//! ```
//!
//! From Python, talk to a Rust listener exactly as to a Python one:
//!
//! ```python
//! from multiprocessing.connection import Client
//! with Client(('127.0.0.1', 6000), authkey=b'secret password') as conn:
//!     conn.send_bytes(b'hello')
//! ```
//!
//! # The handshake
//!
//! A listener with a key *delivers* a challenge (`#CHALLENGE#{sha256}` + 40 random bytes) and
//! checks the reply, then *answers* the client's challenge; a client answers first, then
//! delivers. We deliver CPython 3.12's modern challenge and accept every reply CPython sends:
//! `{digest}` + HMAC (3.12+), or a raw 16-byte HMAC-MD5 (3.11 and older, including 2.7). We
//! answer legacy 20-byte challenges and modern ones in every digest CPython allows
//! ([`Digest`]). Digests are compared in constant time. Handshake messages over 256 bytes are
//! refused unread. A [`Client`] sends its own challenge together with its answer instead of
//! after the verdict: the server (ours or CPython's) reads the same messages in the same order,
//! and the handshake takes one round trip less.
//!
//! # Differences from Python
//!
//! - Every blocking call follows the stack's one [timeout contract](mp_core::deadline):
//!   `x()`, `x_timeout(Duration)`, `x_deadline(Instant)` and `try_x()`/`x_nowait()`, with
//!   `Ok(false)` where Python returns `False` and a typed error where Python raises.
//! - `Client` is a type with constructors ([`Client::connect`], [`Client::connect_timeout`],
//!   [`Client::builder`]) instead of a function; Python's `family` argument is implied by the
//!   [`Address`] variant.
//! - Addresses are an enum; [`Address`]'s string syntax (`127.0.0.1:6000`, `[::1]:6000`,
//!   `/path`, `@abstract`) replaces Python's tuples and strings. Host names other than
//!   `localhost` are not resolved. IPv6 works (Python's `Listener` is IPv4-only).
//! - Hostile peers are bounded: an accepted connection must finish the handshake within a
//!   timeout (20 s by default) and takes messages up to 32 MiB by default
//!   ([`Listener::builder`]); Python waits forever and takes any length. A [`Client`]'s
//!   handshake is bounded the same way (20 s by default, [`ClientBuilder::handshake_timeout`]),
//!   so a server that never speaks fails the connect with [`Error::Timeout`] instead of
//!   hanging it.
//! - [`Listener::incoming`] runs handshakes concurrently and hands out connections as their
//!   handshakes complete ([`Incoming`]), so one silent or slow client never delays the others;
//!   [`Listener::accept`] keeps Python's one-at-a-time semantics. [`serve_echo`] serves its
//!   clients concurrently, each with an idle timeout.
//! - The backlog defaults to the system's maximum (`backlog: None`), not Python's 1: a short
//!   queue overflows under a burst of clients, and TCP clients dropped from it with SYN
//!   cookies on believe they are connected.
//! - [`wait`] returns the indices of the ready objects rather than the objects.
//! - Timeouts are separate methods ([`Listener::accept_timeout`], [`Client::connect_timeout`]).
//! - Accepted and connected TCP sockets have `TCP_NODELAY` set.
//! - A Unix socket file is removed only by the process that created it and only while the path
//!   still holds that socket; Python's finalizer unlinks the path unconditionally.
//! - `XmlListener`/`XmlClient` and Windows named pipes (`AF_PIPE`) are not provided.
#![deny(unsafe_code)]

mod address;
mod auth;
mod client;
mod error;
mod incoming;
mod listener;
mod serve;
mod socket;
mod wait;

pub use address::{arbitrary_address, Address, Family};
pub use auth::{
    answer_challenge, answer_challenge_deadline, answer_challenge_timeout, deliver_challenge,
    deliver_challenge_deadline, deliver_challenge_timeout, Digest,
};
pub use client::{Client, ClientBuilder};
pub use error::{Error, Result};
pub use incoming::{Incoming, IncomingWaker, DEFAULT_MAX_HANDSHAKES};
pub use listener::{
    Listener, ListenerBuilder, DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_MAX_MESSAGE_SIZE,
};
pub use mp_core::Connection;
pub use serve::{serve_echo, serve_echo_idle, DEFAULT_ECHO_IDLE_TIMEOUT};
pub use wait::{wait, wait_deadline, wait_timeout, Waitable};
