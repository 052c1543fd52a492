//! Interop with CPython as the real peer, both directions: a Python
//! `multiprocessing.connection.Client` authenticates to our `Listener`, our `Client`
//! authenticates to a Python `Listener`, bytes flow both ways (the seed example's `b'hello'` and
//! `array('i', [42, 1729])` through `recv_bytes_into`), and a wrong key fails on both sides.
//!
//! `python3` (CPython 3.11 on this project's machines; `MP_PYTHON` overrides it) must be
//! installed. CPython 3.12 (the modern `{sha256}` protocol) and 2.7 are also tried when pyenv
//! has them, and skipped otherwise. Every Python process is killed if it runs over [`PY_LIMIT`].

use std::io::{BufRead, BufReader, Read};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use mp_connection::{arbitrary_address, serve_echo, Address, Client, Family, Listener};

const KEY: &str = "secret password";
/// The longest any Python process may take.
const PY_LIMIT: Duration = Duration::from_secs(30);

/// Shared by every script: address parsing (our string syntax) and flushed output.
const PRELUDE: &str = r#"
import sys, binascii
from array import array
from multiprocessing import AuthenticationError
from multiprocessing.connection import Client, Listener

def parse(a):
    if a.startswith('@'):
        return '\0' + a[1:]
    if a.startswith('/'):
        return a
    host, port = a.rsplit(':', 1)
    return (host, int(port))

def say(*words):
    print(' '.join(str(w) for w in words))
    sys.stdout.flush()

def hexlify(b):
    return binascii.hexlify(b).decode('ascii')
"#;

/// A Python client: argv = address, key. The seed example, from the client's side.
const CLIENT: &str = r#"
try:
    conn = Client(parse(sys.argv[1]), authkey=sys.argv[2].encode('ascii'))
except AuthenticationError as e:
    say('AUTHFAIL', e)
    sys.exit(0)
say('CONNECTED')
conn.send_bytes(b'hello')
conn.send_bytes(array('i', [42, 1729]))
say('GOT', hexlify(conn.recv_bytes()))
arr = array('i', [0, 0, 0, 0, 0])
n = conn.recv_bytes_into(arr)
say('INTO', n, arr.tolist())
conn.close()
say('DONE')
"#;

/// A Python listener: argv = kind (tcp, unix, abstract), where (a path or a name), key.
const LISTENER: &str = r#"
kind, where, key = sys.argv[1], sys.argv[2], sys.argv[3].encode('ascii')
if kind == 'tcp':
    address = ('127.0.0.1', 0)
elif kind == 'unix':
    address = where
else:
    address = '\0' + where
listener = Listener(address, authkey=key)
a = listener.address
if isinstance(a, tuple):
    say('ADDRESS', '%s:%d' % a)
else:
    if isinstance(a, bytes):
        a = a.decode('latin-1')
    say('ADDRESS', '@' + a[1:] if a.startswith('\0') else a)
try:
    conn = listener.accept()
except AuthenticationError as e:
    say('AUTHFAIL', e)
    listener.close()
    sys.exit(0)
say('ACCEPTED')
conn.send_bytes(b'hello')
conn.send_bytes(array('i', [42, 1729]))
say('GOT', hexlify(conn.recv_bytes()))
arr = array('i', [0, 0, 0, 0, 0])
n = conn.recv_bytes_into(arr)
say('INTO', n, arr.tolist())
conn.close()
listener.close()
say('DONE')
"#;

/// A Python client of the echo server: argv = address, key.
const ECHO_CLIENT: &str = r#"
conn = Client(parse(sys.argv[1]), authkey=sys.argv[2].encode('ascii'))
messages = [b'', b'x', b'y' * 1000000, array('i', [42, 1729]).tobytes()]
for m in messages:
    conn.send_bytes(m)
    assert conn.recv_bytes() == m
say('ECHOED', len(messages))
conn.close()
"#;

/// A running Python script whose stdout lines arrive on a channel.
struct Python {
    child: Child,
    lines: Receiver<String>,
    stderr: Arc<Mutex<String>>,
    started: Instant,
}

impl Python {
    fn spawn(exe: &PathBuf, script: &str, args: &[&str]) -> Python {
        let mut child = Command::new(exe)
            .arg("-c")
            .arg(format!("{PRELUDE}\n{script}"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", exe.display()));
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err_pipe = child.stderr.take().unwrap();
        let sink = stderr.clone();
        thread::spawn(move || {
            let mut s = String::new();
            let _ = err_pipe.read_to_string(&mut s);
            sink.lock().unwrap().push_str(&s);
        });
        Python {
            child,
            lines,
            stderr,
            started: Instant::now(),
        }
    }

    fn left(&self) -> Duration {
        PY_LIMIT.saturating_sub(self.started.elapsed())
    }

    /// The next stdout line, which must start with `marker`; returns the rest of it.
    fn expect(&mut self, marker: &str) -> String {
        match self.lines.recv_timeout(self.left()) {
            Ok(line) => match line.strip_prefix(marker) {
                Some(rest) => rest.trim().to_string(),
                None => self.fail(&format!("expected {marker:?}, got {line:?}")),
            },
            Err(RecvTimeoutError::Timeout) => self.fail(&format!("timed out waiting for {marker}")),
            Err(RecvTimeoutError::Disconnected) => {
                self.fail(&format!("python ended before printing {marker}"))
            }
        }
    }

    /// Waits for a successful exit.
    fn finish(mut self) {
        while self.started.elapsed() < PY_LIMIT {
            match self.child.try_wait().unwrap() {
                Some(status) if status.success() => return,
                Some(status) => self.fail(&format!("python exited with {status}")),
                None => thread::sleep(Duration::from_millis(5)),
            }
        }
        self.fail("python did not exit in time");
    }

    fn fail(&mut self, what: &str) -> ! {
        let _ = self.child.kill();
        let _ = self.child.wait();
        thread::sleep(Duration::from_millis(50));
        panic!(
            "{what}\n--- python stderr ---\n{}",
            self.stderr.lock().unwrap()
        );
    }
}

impl Drop for Python {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The main interpreter: `$MP_PYTHON` or `python3`.
fn python3() -> PathBuf {
    std::env::var_os("MP_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("python3"))
}

/// A pyenv-installed interpreter whose version starts with `prefix` ("3.12.", "2.7."), if any.
fn pyenv_python(prefix: &str, exe: &str) -> Option<PathBuf> {
    let root = std::env::var_os("PYENV_ROOT")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".pyenv")))?;
    let mut found: Vec<PathBuf> = std::fs::read_dir(root.join("versions"))
        .ok()?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .map(|e| e.path().join("bin").join(exe))
        .filter(|p| p.exists())
        .collect();
    found.sort();
    let found = found.pop();
    if found.is_none() {
        eprintln!("skipped: no CPython {prefix}x under pyenv");
    }
    found
}

fn ints(values: &[i32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_ne_bytes()).collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A Python client authenticates to our listener at `address`; bytes both ways.
fn python_client_to_our_listener(exe: &PathBuf, address: Option<Address>) {
    let listener = Listener::bind(address, Some(1), Some(KEY.as_bytes())).unwrap();
    let mut py = Python::spawn(exe, CLIENT, &[&listener.address().to_string(), KEY]);
    let mut conn = listener.accept_timeout(PY_LIMIT).unwrap();
    conn.set_timeout(Some(PY_LIMIT));
    assert_eq!(py.expect("CONNECTED"), "");

    assert_eq!(conn.recv_bytes().unwrap(), b"hello");
    let mut buf = [0u8; 20];
    let n = conn.recv_bytes_into(&mut buf).unwrap();
    assert_eq!(n, 8);
    assert_eq!(buf[..8], ints(&[42, 1729]));

    conn.send_bytes(b"hello from rust").unwrap();
    conn.send_bytes(&ints(&[42, 1729])).unwrap();
    assert_eq!(py.expect("GOT"), hex(b"hello from rust"));
    assert_eq!(py.expect("INTO"), "8 [42, 1729, 0, 0, 0]");
    assert_eq!(py.expect("DONE"), "");
    py.finish();
    assert!(conn.recv_bytes().unwrap_err().is_eof());
}

/// Our client authenticates to a Python listener (`kind`, `where` as LISTENER takes them).
fn our_client_to_python_listener(exe: &PathBuf, kind: &str, place: &str) {
    let mut py = Python::spawn(exe, LISTENER, &[kind, place, KEY]);
    let address: Address = py.expect("ADDRESS").parse().unwrap();
    let mut conn = Client::connect_timeout(&address, Some(KEY.as_bytes()), PY_LIMIT).unwrap();
    conn.set_timeout(Some(PY_LIMIT));
    assert_eq!(py.expect("ACCEPTED"), "");

    // The seed example: recv_bytes, then recv_bytes_into an array('i') buffer.
    assert_eq!(conn.recv_bytes().unwrap(), b"hello");
    let mut arr = [0u8; 5 * 4];
    assert_eq!(conn.recv_bytes_into(&mut arr).unwrap(), 8);
    let got: Vec<i32> = arr
        .chunks(4)
        .map(|c| i32::from_ne_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(got, [42, 1729, 0, 0, 0]);

    conn.send_bytes(b"hello from rust").unwrap();
    conn.send_bytes(&ints(&[42, 1729])).unwrap();
    assert_eq!(py.expect("GOT"), hex(b"hello from rust"));
    assert_eq!(py.expect("INTO"), "8 [42, 1729, 0, 0, 0]");
    assert_eq!(py.expect("DONE"), "");
    py.finish();
}

fn tcp() -> Option<Address> {
    Some(Address::tcp(Ipv4Addr::LOCALHOST, 0))
}

#[test]
fn python_client_to_rust_listener_tcp() {
    python_client_to_our_listener(&python3(), tcp());
}

#[test]
fn python_client_to_rust_listener_unix() {
    python_client_to_our_listener(&python3(), None);
}

#[test]
fn python_client_to_rust_listener_abstract() {
    python_client_to_our_listener(
        &python3(),
        Some(arbitrary_address(Family::Abstract).unwrap()),
    );
}

#[test]
fn rust_client_to_python_listener_tcp() {
    our_client_to_python_listener(&python3(), "tcp", "-");
}

#[test]
fn rust_client_to_python_listener_unix() {
    let Address::Unix(path) = arbitrary_address(Family::Unix).unwrap() else {
        unreachable!()
    };
    our_client_to_python_listener(&python3(), "unix", path.to_str().unwrap());
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_dir(path.parent().unwrap());
}

#[test]
fn rust_client_to_python_listener_abstract() {
    let Address::Abstract(name) = arbitrary_address(Family::Abstract).unwrap() else {
        unreachable!()
    };
    our_client_to_python_listener(&python3(), "abstract", std::str::from_utf8(&name).unwrap());
}

#[test]
fn python_client_with_a_wrong_key_fails_on_both_sides() {
    let listener = Listener::bind(tcp(), Some(1), Some(b"another key")).unwrap();
    let mut py = Python::spawn(&python3(), CLIENT, &[&listener.address().to_string(), KEY]);
    let err = listener.accept_timeout(PY_LIMIT).unwrap_err();
    assert!(err.is_authentication(), "{err}");
    assert_eq!(py.expect("AUTHFAIL"), "digest sent was rejected");
    py.finish();
}

#[test]
fn rust_client_with_a_wrong_key_fails_on_both_sides() {
    let mut py = Python::spawn(&python3(), LISTENER, &["tcp", "-", KEY]);
    let address: Address = py.expect("ADDRESS").parse().unwrap();
    let err = Client::connect_timeout(&address, Some(b"another key"), PY_LIMIT).unwrap_err();
    assert!(err.is_authentication(), "{err}");
    assert_eq!(py.expect("AUTHFAIL"), "digest received was wrong");
    py.finish();
}

#[test]
fn python_clients_of_the_echo_server() {
    // The loop of `examples/listener_echo.rs`: a rejected client (not counted), then one that
    // echoes.
    let listener = Listener::bind(tcp(), Some(4), Some(KEY.as_bytes())).unwrap();
    let address = listener.address().to_string();
    let server = thread::spawn(move || serve_echo(&listener, Some(1)));
    let mut bad = Python::spawn(&python3(), CLIENT, &[&address, "wrong"]);
    bad.expect("AUTHFAIL");
    bad.finish();
    let mut good = Python::spawn(&python3(), ECHO_CLIENT, &[&address, KEY]);
    assert_eq!(good.expect("ECHOED"), "4");
    good.finish();
    server.join().unwrap().unwrap();
}

#[test]
fn python312_both_directions() {
    // CPython 3.12 speaks the modern protocol: `{sha256}` challenges and replies.
    let Some(exe) = pyenv_python("3.12.", "python3") else {
        return;
    };
    python_client_to_our_listener(&exe, tcp());
    our_client_to_python_listener(&exe, "tcp", "-");
}

#[test]
fn python27_both_directions() {
    let Some(exe) = pyenv_python("2.7.", "python") else {
        return;
    };
    python_client_to_our_listener(&exe, tcp());
    our_client_to_python_listener(&exe, "tcp", "-");
}
