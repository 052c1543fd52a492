//! `Listener`: a bound, listening socket that hands out authenticated [`Connection`]s.

use std::fmt;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use mp_core::{Connection, Deadline};

use crate::address::{self, arbitrary_address, Address, Family};
use crate::auth::{answer_challenge_deadline, deliver_challenge_deadline, Digest};
use crate::error::{Error, Result};
use crate::socket;

/// How long the handshake of an accepted connection may take by default: CPython's
/// `CONNECTION_TIMEOUT` ("a very generous timeout when it comes to local connections").
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(20);

/// The backlog asked for when none is given: the kernel caps it at the system's maximum
/// (`net.core.somaxconn`).
const SYSTEM_MAX_BACKLOG: u32 = i32::MAX as u32;

/// The largest message a connection accepted by a [`Listener`] takes by default: 32 MiB.
/// A peer announcing more gets [`Error::is_message_too_long`] instead of an allocation.
pub const DEFAULT_MAX_MESSAGE_SIZE: u64 = 32 << 20;

/// A socket bound to an address and listening for [`Client`](crate::Client)s.
///
/// Python: `multiprocessing.connection.Listener`. Made with [`Listener::bind`] or
/// [`Listener::builder`]; [`accept`](Listener::accept) returns a [`Connection`], authenticated
/// when the listener has a key. A Unix socket file is removed when the listener is closed or
/// dropped, by the process that bound it only (a copy inherited by a forked child leaves it
/// alone), and only if the path still holds that socket.
///
/// `accept` takes `&self`, so threads may accept on one listener at once; the listener is
/// `Send + Sync`.
pub struct Listener {
    fd: Option<OwnedFd>,
    address: Address,
    setup: Arc<Setup>,
    last_accepted: Mutex<Option<Address>>,
    socket_file: Option<SocketFile>,
}

/// What turns an accepted socket into a connection: shared with the handshake threads of
/// [`Incoming`](crate::Incoming).
#[derive(Debug)]
pub(crate) struct Setup {
    tcp: bool,
    authkey: Option<Vec<u8>>,
    handshake_timeout: Option<Duration>,
    max_message_size: Option<u64>,
}

impl Setup {
    /// Whether accepted connections run the handshake.
    pub(crate) fn authenticates(&self) -> bool {
        self.authkey.as_ref().is_some_and(|k| !k.is_empty())
    }

    /// Turns an accepted socket into a connection and runs the handshake.
    pub(crate) fn run(&self, sock: OwnedFd) -> Result<Connection> {
        if self.tcp {
            rustix::net::sockopt::set_tcp_nodelay(&sock, true)?;
        }
        let mut conn = Connection::from_fd(sock, true, true)?;
        if let Some(limit) = self.max_message_size {
            conn.set_max_message_size(limit);
        }
        if let Some(key) = self.authkey.as_deref().filter(|k| !k.is_empty()) {
            let deadline = self
                .handshake_timeout
                .map_or(Deadline::NEVER, Deadline::after);
            deliver_challenge_deadline(&mut conn, key, Digest::Sha256, deadline)?;
            answer_challenge_deadline(&mut conn, key, deadline)?;
        }
        Ok(conn)
    }
}

/// The Unix socket file a listener created, and who may remove it.
struct SocketFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
    owner: rustix::process::Pid,
}

impl fmt::Debug for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Listener")
            .field("address", &self.address)
            .field("closed", &self.fd.is_none())
            .field("authenticated", &self.authenticates())
            .finish()
    }
}

/// Options for a [`Listener`]: Python's `Listener(address, family, backlog, authkey)` plus a
/// handshake timeout and a message size limit.
#[derive(Clone, Debug)]
pub struct ListenerBuilder {
    address: Option<Address>,
    family: Option<Family>,
    backlog: Option<u32>,
    authkey: Option<Vec<u8>>,
    handshake_timeout: Option<Duration>,
    max_message_size: Option<u64>,
}

impl Default for ListenerBuilder {
    fn default() -> Self {
        ListenerBuilder {
            address: None,
            family: None,
            backlog: None,
            authkey: None,
            handshake_timeout: Some(DEFAULT_HANDSHAKE_TIMEOUT),
            max_message_size: Some(DEFAULT_MAX_MESSAGE_SIZE),
        }
    }
}

impl ListenerBuilder {
    /// The address to bind. Python: `Listener(address=...)`. Default: a fresh
    /// [`arbitrary_address`] of the [`family`](Self::family).
    pub fn address(mut self, address: Address) -> Self {
        self.address = Some(address);
        self
    }

    /// The family of the arbitrary address used when none is given. Python:
    /// `Listener(family=...)`. Default: [`Address::default_family`] (Unix).
    pub fn family(mut self, family: Family) -> Self {
        self.family = Some(family);
        self
    }

    /// The length of the kernel's queue of connections not yet accepted. Python:
    /// `Listener(backlog=...)`.
    ///
    /// Default: the system's maximum (`/proc/sys/net/core/somaxconn`, 4096 on current Linux),
    /// where Python's default is 1. A short queue overflows under a burst of clients, and a TCP
    /// client whose connection the kernel dropped that way (with SYN cookies on) can believe it
    /// is connected while the server never sees it; since the server speaks first, such a client
    /// would wait forever.
    pub fn backlog(mut self, backlog: u32) -> Self {
        self.backlog = Some(backlog);
        self
    }

    /// The key clients must prove they know. Python: `Listener(authkey=...)`. Default: none,
    /// no handshake. An empty key means no handshake too, as in CPython.
    pub fn authkey(mut self, authkey: impl Into<Vec<u8>>) -> Self {
        self.authkey = Some(authkey.into());
        self
    }

    /// How long the handshake of one accepted connection may take in all (`None`: no limit).
    /// Beyond Python. Default: [`DEFAULT_HANDSHAKE_TIMEOUT`] (20 s). A client that stays silent
    /// longer is dropped with [`Error::Timeout`].
    pub fn handshake_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// The largest message accepted connections take (`None`: no limit). Beyond Python.
    /// Default: [`DEFAULT_MAX_MESSAGE_SIZE`] (32 MiB). See
    /// [`Connection::set_max_message_size`].
    pub fn max_message_size(mut self, limit: Option<u64>) -> Self {
        self.max_message_size = limit;
        self
    }

    /// Binds and listens. Errors: [`Error::AddressInUse`]; [`Error::InvalidAddress`] (a Unix
    /// path too long for a socket address); other OS errors ([`Error::Io`]).
    pub fn bind(self) -> Result<Listener> {
        let generated = self.address.is_none();
        let address = match self.address {
            Some(address) => address,
            None => arbitrary_address(self.family.unwrap_or_else(Address::default_family))?,
        };
        let backlog = self.backlog.unwrap_or(SYSTEM_MAX_BACKLOG);
        let (fd, bound) = match socket::bind_listen(&address, backlog) {
            Ok(ok) => ok,
            Err(e) => {
                if let (true, Address::Unix(path)) = (generated, &address) {
                    address::remove_temp_dir_of(path);
                }
                return Err(e);
            }
        };
        let socket_file = match &bound {
            Address::Unix(path) => {
                let stat = rustix::fs::lstat(path.as_path())?;
                Some(SocketFile {
                    path: path.clone(),
                    dev: stat.st_dev,
                    ino: stat.st_ino,
                    owner: rustix::process::getpid(),
                })
            }
            _ => None,
        };
        let setup = Arc::new(Setup {
            tcp: matches!(bound, Address::Tcp(_)),
            authkey: self.authkey,
            handshake_timeout: self.handshake_timeout,
            max_message_size: self.max_message_size,
        });
        Ok(Listener {
            fd: Some(fd),
            address: bound,
            setup,
            last_accepted: Mutex::new(None),
            socket_file,
        })
    }
}

impl Listener {
    /// Binds a listener to `address` (`None`: a fresh Unix socket path, see
    /// [`arbitrary_address`]).
    ///
    /// Python: `multiprocessing.connection.Listener(address, backlog=backlog, authkey=authkey)`.
    /// `backlog: None` means the system's maximum (Python's default is 1; see
    /// [`ListenerBuilder::backlog`] for why). With an `authkey`, every accepted connection is authenticated (an empty key means none,
    /// as in CPython). TCP listeners set `SO_REUSEADDR`; the port of `127.0.0.1:0` is resolved
    /// in [`address`](Self::address). Accepted connections take messages up to
    /// [`DEFAULT_MAX_MESSAGE_SIZE`] and must finish the handshake within
    /// [`DEFAULT_HANDSHAKE_TIMEOUT`]; change either with [`Listener::builder`].
    ///
    /// Errors: [`Error::AddressInUse`], [`Error::InvalidAddress`], [`Error::Io`].
    pub fn bind(
        address: Option<Address>,
        backlog: Option<u32>,
        authkey: Option<&[u8]>,
    ) -> Result<Self> {
        let mut builder = ListenerBuilder {
            backlog,
            ..ListenerBuilder::default()
        };
        if let Some(address) = address {
            builder = builder.address(address);
        }
        if let Some(key) = authkey {
            builder = builder.authkey(key);
        }
        builder.bind()
    }

    /// Options beyond [`bind`](Self::bind)'s: family, handshake timeout, message size limit.
    pub fn builder() -> ListenerBuilder {
        ListenerBuilder::default()
    }

    fn authenticates(&self) -> bool {
        self.setup.authenticates()
    }

    /// Waits for a connection and returns it, authenticated when the listener has a key.
    ///
    /// Python: `Listener.accept()`. Blocks until a client connects; the handshake then takes
    /// at most the handshake timeout. When the client fails it (a wrong key:
    /// [`Error::Authentication`]; silence: [`Error::Timeout`]; garbage, an oversized or
    /// truncated message: a typed error) that connection is closed and the error returned; the
    /// listener stays usable, and the next `accept` serves the next client.
    /// [`Error::Closed`] after [`close`](Self::close).
    pub fn accept(&self) -> Result<Connection> {
        self.accept_until(Deadline::NEVER)
    }

    /// [`accept`](Self::accept), waiting at most `timeout` for a client to connect
    /// ([`Error::Timeout`] otherwise); the handshake has its own timeout. Beyond Python.
    pub fn accept_timeout(&self, timeout: Duration) -> Result<Connection> {
        self.accept_until(Deadline::after(timeout))
    }

    /// [`accept_timeout`](Self::accept_timeout) with a deadline.
    pub fn accept_deadline(&self, deadline: impl Into<Deadline>) -> Result<Connection> {
        self.accept_until(deadline.into())
    }

    fn accept_until(&self, deadline: Deadline) -> Result<Connection> {
        self.accept_split(deadline)?
    }

    /// Accepts one connection and runs its handshake here; the outer error is the listener's
    /// own (closed, timed out, an OS error of `accept`), the inner one the client's (its
    /// handshake failed).
    fn accept_split(&self, deadline: Deadline) -> Result<Result<Connection>> {
        let sock = self.accept_socket(deadline)?;
        Ok(self.setup.run(sock))
    }

    /// Accepts one socket before `deadline`, without its handshake, and records its address.
    pub(crate) fn accept_socket(&self, deadline: Deadline) -> Result<OwnedFd> {
        let fd = self.fileno()?;
        let (sock, peer) = socket::accept(fd, deadline)?;
        *self
            .last_accepted
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = peer;
        Ok(sock)
    }

    /// The setup shared with [`Incoming`](crate::Incoming)'s handshake threads.
    pub(crate) fn setup(&self) -> &Arc<Setup> {
        &self.setup
    }

    /// The accepted connections, each handed out once its handshake has completed; the
    /// handshakes run concurrently, so a client that stays silent, or one that is slow, delays
    /// no other. Beyond Python: the way to serve many clients (a server's accept loop).
    ///
    /// See [`Incoming`](crate::Incoming). [`accept`](Self::accept) keeps Python's semantics: one
    /// client at a time, its handshake run inline. Errors: OS errors making the wake-up pipe
    /// (out of file descriptors).
    pub fn incoming(&self) -> Result<crate::Incoming<'_>> {
        crate::Incoming::new(self)
    }

    /// Closes the socket; a Unix socket file is removed (by the process that bound it).
    ///
    /// Python: `Listener.close()`. Closing twice is harmless; `accept` afterwards fails with
    /// [`Error::Closed`]. Dropping the listener closes it too.
    pub fn close(&mut self) {
        self.fd = None;
        if let Some(file) = self.socket_file.take() {
            file.remove();
        }
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.fd.is_none()
    }

    /// The address the listener is bound to, with a TCP port 0 resolved to the real port.
    ///
    /// Python: `Listener.address`.
    pub fn address(&self) -> &Address {
        &self.address
    }

    /// The address of the last accepted client (whether or not its handshake succeeded);
    /// `None` before the first. A Unix client normally has no name and shows as an empty
    /// path, as Python's `''`.
    ///
    /// Python: `Listener.last_accepted`.
    pub fn last_accepted(&self) -> Option<Address> {
        self.last_accepted
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The listening socket, readable when a client is waiting (for [`wait`](crate::wait));
    /// [`Error::Closed`] after [`close`](Self::close).
    ///
    /// Python: `Listener._listener._socket.fileno()`.
    pub fn fileno(&self) -> Result<BorrowedFd<'_>> {
        self.fd
            .as_ref()
            .map(|fd| fd.as_fd())
            .ok_or(Error::Closed("listener"))
    }
}

impl SocketFile {
    /// Unlinks the socket file when this process created it and the path still holds it.
    fn remove(self) {
        if rustix::process::getpid() != self.owner {
            return;
        }
        if let Ok(stat) = rustix::fs::lstat(self.path.as_path()) {
            if stat.st_dev == self.dev && stat.st_ino == self.ino {
                if let Err(e) = rustix::fs::unlink(self.path.as_path()) {
                    log::debug!("cannot remove {}: {e}", self.path.display());
                }
            }
        }
        address::remove_temp_dir_of(&self.path);
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.close();
    }
}
