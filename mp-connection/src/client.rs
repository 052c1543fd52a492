//! `Client`: connects to a [`Listener`](crate::Listener) (ours or CPython's) and returns an
//! authenticated [`Connection`].

use std::os::fd::AsFd;
use std::time::Duration;

use mp_core::{Connection, Deadline};

use crate::address::Address;
use crate::auth::client_handshake;
use crate::error::Result;
use crate::listener::DEFAULT_HANDSHAKE_TIMEOUT;
use crate::socket;

/// Connects to a listener.
///
/// Python: `multiprocessing.connection.Client(address, authkey=None)`, a function in Python and
/// a namespace of constructors here: [`Client::connect`], [`Client::connect_timeout`],
/// [`Client::connect_deadline`], and [`Client::builder`] for a message size limit.
#[derive(Clone, Copy, Debug)]
pub struct Client {
    _private: (),
}

impl Client {
    /// Connects to `address` and, with an `authkey`, runs the handshake (answer the server's
    /// challenge, then deliver ours; our challenge is sent along with our answer, which saves
    /// a round trip and changes nothing for the server).
    ///
    /// Python: `multiprocessing.connection.Client(address, authkey=authkey)`. The connect
    /// blocks, like Python's, without a time limit (use [`connect_timeout`](Self::connect_timeout)
    /// to bound it); the handshake, unlike Python's, takes at most
    /// [`DEFAULT_HANDSHAKE_TIMEOUT`] (20 s), after which it fails with
    /// [`Error::Timeout`](crate::Error::Timeout): a server that never speaks (one whose kernel
    /// dropped the connection from a full accept queue, say) cannot hang a client forever.
    /// [`ClientBuilder::handshake_timeout`] changes it. TCP connections have `TCP_NODELAY` set. With `Some(key)` the handshake runs even
    /// for an empty key, as in CPython.
    ///
    /// Errors: [`Error::Authentication`](crate::Error::Authentication) (a wrong key, or a peer
    /// that does not speak the protocol); the server closing ([`Error::is_eof`](crate::Error::is_eof));
    /// OS errors such as a refused connection ([`Error::Io`](crate::Error::Io)).
    pub fn connect(address: &Address, authkey: Option<&[u8]>) -> Result<Connection> {
        Self::connect_until(address, authkey, Deadline::NEVER)
    }

    /// [`connect`](Self::connect), with `timeout` bounding the connect and the handshake
    /// together ([`Error::Timeout`](crate::Error::Timeout) otherwise). Beyond Python.
    pub fn connect_timeout(
        address: &Address,
        authkey: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<Connection> {
        Self::connect_until(address, authkey, Deadline::after(timeout))
    }

    /// [`connect_timeout`](Self::connect_timeout) with a deadline.
    pub fn connect_deadline(
        address: &Address,
        authkey: Option<&[u8]>,
        deadline: impl Into<Deadline>,
    ) -> Result<Connection> {
        Self::connect_until(address, authkey, deadline.into())
    }

    fn connect_until(
        address: &Address,
        authkey: Option<&[u8]>,
        deadline: Deadline,
    ) -> Result<Connection> {
        ClientBuilder {
            authkey: authkey.map(<[u8]>::to_vec),
            ..ClientBuilder::default()
        }
        .connect_until(address, deadline)
    }

    /// Options beyond [`connect`](Self::connect)'s.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }
}

/// Options for [`Client`]: key, timeouts and message size limit.
#[derive(Clone, Debug)]
pub struct ClientBuilder {
    authkey: Option<Vec<u8>>,
    timeout: Option<Duration>,
    handshake_timeout: Option<Duration>,
    max_message_size: Option<u64>,
}

impl Default for ClientBuilder {
    fn default() -> Self {
        ClientBuilder {
            authkey: None,
            timeout: None,
            handshake_timeout: Some(DEFAULT_HANDSHAKE_TIMEOUT),
            max_message_size: None,
        }
    }
}

impl ClientBuilder {
    /// The key to authenticate with. Python: `Client(authkey=...)`. Default: none, no
    /// handshake.
    pub fn authkey(mut self, authkey: impl Into<Vec<u8>>) -> Self {
        self.authkey = Some(authkey.into());
        self
    }

    /// A limit on the connect and the handshake together (`None`, the default: none).
    pub fn timeout(mut self, timeout: Option<Duration>) -> Self {
        self.timeout = timeout;
        self
    }

    /// A limit on the handshake alone (`None`: none). Beyond Python. Default:
    /// [`DEFAULT_HANDSHAKE_TIMEOUT`] (20 s), the listener's own default; a server silent that
    /// long fails the connect with [`Error::Timeout`](crate::Error::Timeout). With a
    /// [`timeout`](Self::timeout) too, the earlier of the two ends the handshake.
    pub fn handshake_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// The largest message the connection takes (`None`, the default: no limit; buffers still
    /// grow only as bytes arrive). See [`Connection::set_max_message_size`].
    pub fn max_message_size(mut self, limit: Option<u64>) -> Self {
        self.max_message_size = limit;
        self
    }

    /// Connects to `address`. Python: `Client(address, authkey=...)`; errors as
    /// [`Client::connect`].
    pub fn connect(&self, address: &Address) -> Result<Connection> {
        self.connect_until(
            address,
            self.timeout.map_or(Deadline::NEVER, Deadline::after),
        )
    }

    fn connect_until(&self, address: &Address, deadline: Deadline) -> Result<Connection> {
        let fd = socket::connect(address, deadline)?;
        socket::set_nodelay(fd.as_fd(), address)?;
        let mut conn = Connection::from_fd(fd, true, true)?;
        if let Some(limit) = self.max_message_size {
            conn.set_max_message_size(limit);
        }
        if let Some(key) = &self.authkey {
            let handshake = self
                .handshake_timeout
                .map_or(Deadline::NEVER, Deadline::after);
            client_handshake(&mut conn, key, deadline.min(handshake))?;
        }
        Ok(conn)
    }
}
