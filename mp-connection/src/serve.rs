//! A ready-made echo server over a [`Listener`]: the loop of the `listener_echo` example, here so
//! that tests can run it too.

use std::thread;
use std::time::Duration;

use mp_core::Connection;

use crate::error::Result;
use crate::listener::Listener;

/// How long [`serve_echo`] keeps a client that sends nothing: one minute.
pub const DEFAULT_ECHO_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Serves clients concurrently, echoing every byte message back, until `clients` clients have
/// been served (`None`: forever); a client silent for [`DEFAULT_ECHO_IDLE_TIMEOUT`] is dropped.
///
/// Beyond Python: a demonstration server and a peer for interop tests (a Python
/// `multiprocessing.connection.Client` can talk to it). See [`serve_echo_idle`].
pub fn serve_echo(listener: &Listener, clients: Option<usize>) -> Result<()> {
    serve_echo_idle(listener, clients, Some(DEFAULT_ECHO_IDLE_TIMEOUT))
}

/// [`serve_echo`] with the idle timeout given (`None`: keep silent clients forever).
///
/// Connections come from [`Listener::incoming`], so handshakes run concurrently, and each
/// authenticated client is served on a thread of its own: a silent, slow or idle client delays
/// no other. A client whose handshake fails is logged (`log::info!`) and does not count; one
/// that misbehaves later, or stays silent past `idle`, is logged and dropped, and counts.
/// Returns once `clients` clients have been served and their threads are done, or with the
/// listener's own error (closed, an OS error of `accept`).
pub fn serve_echo_idle(
    listener: &Listener,
    clients: Option<usize>,
    idle: Option<Duration>,
) -> Result<()> {
    let mut incoming = listener.incoming()?;
    thread::scope(|scope| {
        let mut served = 0usize;
        while clients.map_or(true, |n| served < n) {
            let conn = incoming.accept()?;
            served += 1;
            let spawned =
                thread::Builder::new()
                    .name("mp-echo".into())
                    .spawn_scoped(scope, move || {
                        if let Err(e) = echo(conn, idle) {
                            log::info!("echo: client dropped: {e}");
                        }
                    });
            if let Err(e) = spawned {
                log::warn!("echo: cannot start a thread, client dropped: {e}");
            }
        }
        Ok(())
    })
}

/// Echoes byte messages until the client closes or stays silent past `idle`.
fn echo(mut conn: Connection, idle: Option<Duration>) -> Result<()> {
    loop {
        let message = match idle {
            Some(idle) => conn.recv_bytes_timeout(idle),
            None => conn.recv_bytes(),
        };
        match message {
            Ok(message) => conn.send_bytes(&message)?,
            Err(e) if e.is_eof() => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
}
