//! An echo server any `multiprocessing.connection.Client` can talk to.
//!
//! ```text
//! MP_AUTHKEY='secret password' cargo run --example listener_echo -- 127.0.0.1:6000
//! ```
//!
//! ADDRESS is `host:port` (an IP address or `localhost`), `[::1]:port`, a Unix socket path, or
//! `@name` for a Linux abstract socket; without it, a fresh Unix socket path is used. The
//! authentication key comes from the environment variable `MP_AUTHKEY` (no authentication when
//! it is unset). Once bound, the server prints `listening on <address>`, then serves clients
//! concurrently (each on its own thread, dropped after a minute of silence; handshakes run
//! concurrently too, so a silent client delays nobody), sending every byte message back. From
//! Python:
//!
//! ```python
//! from multiprocessing.connection import Client
//! with Client(('127.0.0.1', 6000), authkey=b'secret password') as conn:
//!     conn.send_bytes(b'hello')
//!     print(conn.recv_bytes())   # b'hello'
//! ```

use std::io::Write;
use std::os::unix::ffi::OsStringExt;
use std::process::ExitCode;

use multiprocessing::connection::{serve_echo, Address, Listener};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("listener_echo: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let address: Option<Address> = match std::env::args().nth(1) {
        Some(arg) => Some(arg.parse()?),
        None => None,
    };
    let authkey = std::env::var_os("MP_AUTHKEY").map(OsStringExt::into_vec);
    let listener = Listener::bind(address, None, authkey.as_deref())?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "listening on {}", listener.address())?;
    out.flush()?;
    drop(out);
    serve_echo(&listener, None)?;
    Ok(())
}
