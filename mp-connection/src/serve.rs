//! A ready-made echo server over a [`Listener`]: the loop of the `listener_echo` example, here so
//! that tests can run it too.

use mp_core::Connection;

use crate::error::Result;
use crate::listener::Listener;

/// Serves clients one after another, echoing every byte message back, until `clients`
/// connections have been accepted (`None`: forever).
///
/// Beyond Python: a demonstration server and a peer for interop tests (a Python
/// `multiprocessing.connection.Client` can talk to it). A client whose handshake fails, or that
/// misbehaves, is logged (`log::info!`) and dropped, and the next one is served; each accepted
/// connection counts, successful or not. Returns when the count is reached, or with the
/// listener's own error (closed, an OS error of `accept`).
pub fn serve_echo(listener: &Listener, clients: Option<usize>) -> Result<()> {
    let mut served = 0usize;
    while clients.map_or(true, |n| served < n) {
        let result = listener.accept_split(mp_core::Deadline::NEVER)?;
        served += 1;
        match result {
            Ok(conn) => {
                if let Err(e) = echo(conn) {
                    log::info!("echo: client dropped: {e}");
                }
            }
            Err(e) => log::info!("echo: client rejected: {e}"),
        }
    }
    Ok(())
}

/// Echoes byte messages until the client closes.
fn echo(mut conn: Connection) -> Result<()> {
    loop {
        match conn.recv_bytes() {
            Ok(message) => conn.send_bytes(&message)?,
            Err(e) if e.is_eof() => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
}
