//! Addresses a [`Listener`](crate::Listener) binds and a [`Client`](crate::Client) connects to:
//! TCP (IPv4 and IPv6), Unix socket paths and Linux abstract names.

use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Mutex, OnceLock, PoisonError};

use rustix::io::Errno;
use rustix::net::{AddressFamily, SocketAddrAny, SocketAddrUnix};

use crate::error::{Error, Result};

/// An address of a listening socket.
///
/// Python: the `address` argument of `multiprocessing.connection.Listener` and `Client`: a
/// `(host, port)` tuple is [`Address::Tcp`], a path string is [`Address::Unix`], and a string
/// starting with `'\0'` is [`Address::Abstract`].
///
/// # String syntax
///
/// [`FromStr`] and [`Display`](fmt::Display) use one string per address:
///
/// | string                         | address                                                  |
/// | ------------------------------ | -------------------------------------------------------- |
/// | `127.0.0.1:6000`               | TCP over IPv4                                            |
/// | `[::1]:6000`                   | TCP over IPv6                                            |
/// | `localhost:6000`               | TCP, `127.0.0.1` (the only host name understood: no DNS) |
/// | `@name` or `\0name`            | Linux abstract socket `name` (Python's `'\0name'`)       |
/// | anything else, e.g. `/tmp/sock` | a Unix socket path                                       |
///
/// A string of the form `name:port` whose `name` is neither an IP address nor `localhost`, and
/// which has no `/`, is rejected rather than taken as a path, since it was most likely meant as
/// a host: write `./name:port` for such a path. `Display` writes abstract names with `@` and
/// their bytes decoded as UTF-8 (lossily), so only UTF-8 names survive a round trip.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Address {
    /// A TCP address, IPv4 or IPv6 (Python: a `(host, port)` tuple, family `'AF_INET'`).
    Tcp(SocketAddr),
    /// A Unix socket path (Python: a `str`, family `'AF_UNIX'`).
    Unix(PathBuf),
    /// A Linux abstract socket name, without its leading NUL byte (Python: a `str` or `bytes`
    /// starting with `'\0'`). Nothing appears in the file system and nothing needs removing.
    Abstract(Vec<u8>),
}

/// The kind of an [`Address`].
///
/// Python: the `family` argument of `Listener` (`'AF_INET'`, `'AF_UNIX'`); abstract names are
/// `'AF_UNIX'` in Python and have their own family here so that [`arbitrary_address`] can make
/// one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    /// TCP (Python: `'AF_INET'`).
    Tcp,
    /// A Unix socket path (Python: `'AF_UNIX'`).
    Unix,
    /// A Linux abstract socket name (Python: `'AF_UNIX'` with a name starting with `'\0'`).
    Abstract,
}

impl Address {
    /// The family of this address. Python: `multiprocessing.connection.address_type(address)`.
    pub fn family(&self) -> Family {
        match self {
            Address::Tcp(_) => Family::Tcp,
            Address::Unix(_) => Family::Unix,
            Address::Abstract(_) => Family::Abstract,
        }
    }

    /// The family a [`Listener`](crate::Listener) uses when given no address: [`Family::Unix`].
    ///
    /// Python: `multiprocessing.connection.default_family` (`'AF_UNIX'` on Unix).
    pub fn default_family() -> Family {
        Family::Unix
    }

    /// A TCP address. Python: `(host, port)`.
    pub fn tcp(ip: impl Into<IpAddr>, port: u16) -> Address {
        Address::Tcp(SocketAddr::new(ip.into(), port))
    }

    /// A Unix socket path. Python: a path `str`.
    pub fn unix(path: impl Into<PathBuf>) -> Address {
        Address::Unix(path.into())
    }

    /// A Linux abstract socket name (without the leading NUL). Python: `'\0' + name`.
    pub fn abstract_name(name: impl Into<Vec<u8>>) -> Address {
        Address::Abstract(name.into())
    }

    /// The socket-level form of this address.
    pub(crate) fn to_socket_addr(&self) -> Result<SocketAddrAny> {
        Ok(match self {
            Address::Tcp(addr) => SocketAddrAny::from(*addr),
            Address::Unix(path) => {
                if path.as_os_str().is_empty() {
                    return Err(Error::InvalidAddress("an empty Unix socket path".into()));
                }
                SocketAddrUnix::new(path.as_path())
                    .map_err(|e| unix_error(e, &path.display().to_string()))?
                    .into()
            }
            Address::Abstract(name) => SocketAddrUnix::new_abstract_name(name)
                .map_err(|e| unix_error(e, &format!("@{}", String::from_utf8_lossy(name))))?
                .into(),
        })
    }

    /// The address family of the socket to create for this address.
    pub(crate) fn address_family(&self) -> AddressFamily {
        match self {
            Address::Tcp(SocketAddr::V4(_)) => AddressFamily::INET,
            Address::Tcp(SocketAddr::V6(_)) => AddressFamily::INET6,
            Address::Unix(_) | Address::Abstract(_) => AddressFamily::UNIX,
        }
    }

    /// Converts a kernel address back. An unnamed Unix socket (a client's usual address) becomes
    /// an empty path, as Python reports it (`''`).
    pub(crate) fn from_socket_addr(addr: &SocketAddrAny) -> Result<Address> {
        let family = addr.address_family();
        if family == AddressFamily::INET || family == AddressFamily::INET6 {
            let ip = SocketAddr::try_from(addr.clone())
                .map_err(|e| Error::InvalidAddress(format!("unreadable IP address: {e}")))?;
            return Ok(Address::Tcp(ip));
        }
        if family == AddressFamily::UNIX {
            let unix = SocketAddrUnix::try_from(addr.clone())
                .map_err(|e| Error::InvalidAddress(format!("unreadable Unix address: {e}")))?;
            // An unnamed socket (a client's usual address) may come back with an empty
            // abstract name; both are Python's ''.
            if unix.is_unnamed() || unix.abstract_name() == Some(&[]) {
                return Ok(Address::Unix(PathBuf::new()));
            }
            if let Some(name) = unix.abstract_name() {
                return Ok(Address::Abstract(name.to_vec()));
            }
            if let Some(path) = unix.path_bytes() {
                return Ok(Address::Unix(PathBuf::from(std::ffi::OsStr::from_bytes(
                    path,
                ))));
            }
            return Ok(Address::Unix(PathBuf::new()));
        }
        Err(Error::InvalidAddress(format!(
            "unsupported address family {family:?}"
        )))
    }
}

fn unix_error(e: Errno, what: &str) -> Error {
    if e == Errno::NAMETOOLONG {
        Error::InvalidAddress(format!(
            "{what}: too long for a Unix socket address (at most 107 bytes)"
        ))
    } else {
        Error::InvalidAddress(format!("{what}: {e}"))
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Tcp(addr) => write!(f, "{addr}"),
            Address::Unix(path) => write!(f, "{}", path.display()),
            Address::Abstract(name) => write!(f, "@{}", String::from_utf8_lossy(name)),
        }
    }
}

impl FromStr for Address {
    type Err = Error;

    /// Parses the syntax described on [`Address`].
    fn from_str(s: &str) -> Result<Address> {
        if s.is_empty() {
            return Err(Error::InvalidAddress("an empty address".into()));
        }
        if let Some(name) = s.strip_prefix('\0').or_else(|| s.strip_prefix('@')) {
            return Ok(Address::Abstract(name.as_bytes().to_vec()));
        }
        if let Ok(addr) = s.parse::<SocketAddr>() {
            return Ok(Address::Tcp(addr));
        }
        if let Some((host, port)) = s.rsplit_once(':') {
            let numeric_port = !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit());
            if numeric_port && !s.contains('/') {
                let port: u16 = port
                    .parse()
                    .map_err(|_| Error::InvalidAddress(format!("{s:?}: port out of range")))?;
                if host.eq_ignore_ascii_case("localhost") {
                    return Ok(Address::tcp(Ipv4Addr::LOCALHOST, port));
                }
                return Err(Error::InvalidAddress(format!(
                    "{s:?}: host names are not resolved; use an IP address or localhost \
                     (or ./{s} for a Unix socket path)"
                )));
            }
        }
        Ok(Address::Unix(PathBuf::from(s)))
    }
}

impl From<SocketAddr> for Address {
    fn from(addr: SocketAddr) -> Self {
        Address::Tcp(addr)
    }
}

impl From<(IpAddr, u16)> for Address {
    fn from((ip, port): (IpAddr, u16)) -> Self {
        Address::tcp(ip, port)
    }
}

impl From<PathBuf> for Address {
    fn from(path: PathBuf) -> Self {
        Address::Unix(path)
    }
}

impl From<&Path> for Address {
    fn from(path: &Path) -> Self {
        Address::Unix(path.to_path_buf())
    }
}

/// A fresh address of `family` that nothing listens on yet.
///
/// Python: `multiprocessing.connection.arbitrary_address(family)`. For [`Family::Tcp`],
/// `127.0.0.1:0` (the kernel picks the port at bind; read it back with
/// [`Listener::address`](crate::Listener::address)). For [`Family::Unix`], a path
/// `listener-XXXXXXXX` inside a new private directory `mp-XXXXXXXX` (mode 0700) of the
/// temporary directory (`$TMPDIR`, or `/tmp`), as CPython uses its `pymp-*` directory; a
/// [`Listener`](crate::Listener) bound to it removes the directory again when it closes. For
/// [`Family::Abstract`], a random name `mp-listener-XXXXXXXXXXXXXXXX`.
///
/// Fails only if the temporary directory cannot be written.
pub fn arbitrary_address(family: Family) -> Result<Address> {
    match family {
        Family::Tcp => Ok(Address::tcp(Ipv4Addr::LOCALHOST, 0)),
        Family::Abstract => Ok(Address::Abstract(
            format!("mp-listener-{}", random_hex(8)?).into_bytes(),
        )),
        Family::Unix => {
            let base = std::env::temp_dir();
            loop {
                let dir = base.join(format!("mp-{}", random_hex(4)?));
                match rustix::fs::mkdir(&dir, rustix::fs::Mode::RWXU) {
                    Ok(()) => {
                        temp_dirs().insert(dir.clone());
                        return Ok(Address::Unix(
                            dir.join(format!("listener-{}", random_hex(4)?)),
                        ));
                    }
                    Err(Errno::EXIST) => continue,
                    Err(e) => {
                        return Err(Error::Io(std::io::Error::new(
                            std::io::Error::from(e).kind(),
                            format!("cannot create a directory in {}: {e}", base.display()),
                        )))
                    }
                }
            }
        }
    }
}

/// The private directories [`arbitrary_address`] created and that still exist; a listener that
/// removes its socket file from one of them removes the directory too.
fn temp_dirs() -> std::sync::MutexGuard<'static, HashSet<PathBuf>> {
    static DIRS: OnceLock<Mutex<HashSet<PathBuf>>> = OnceLock::new();
    DIRS.get_or_init(|| Mutex::new(HashSet::new()))
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

/// Removes `path`'s parent directory if [`arbitrary_address`] made it (and it is empty).
pub(crate) fn remove_temp_dir_of(path: &Path) {
    let Some(dir) = path.parent() else { return };
    let mut dirs = temp_dirs();
    if dirs.remove(dir) {
        // Fails harmlessly when someone put other files there.
        let _ = rustix::fs::rmdir(dir);
    }
}

/// `2 * bytes` random lowercase hex digits.
pub(crate) fn random_hex(bytes: usize) -> Result<String> {
    let mut buf = vec![0u8; bytes];
    fill_random(&mut buf)?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// Fills `buf` from the kernel's random source. Python: `os.urandom`.
pub(crate) fn fill_random(buf: &mut [u8]) -> Result<()> {
    let mut done = 0;
    while done < buf.len() {
        match rustix::rand::getrandom(&mut buf[done..], rustix::rand::GetRandomFlags::empty()) {
            Ok(n) => done += n,
            Err(Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
