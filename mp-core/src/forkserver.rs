//! The forkserver start method: a single-threaded server, started by spawn on first use, that
//! forks children on request.
//!
//! Each process that uses forkserver starts its own server, which lives until that process
//! exits (it sees EOF on its socket and leaves). A request carries the [`Job`] with its fds
//! (`SCM_RIGHTS`) and the write end of a status pipe; the server forks, answers with the child's
//! pid and a pidfd for it, and, when the child ends, reaps it and writes its exit code (Python's
//! convention, 4 bytes big-endian) to the status pipe. The child writes its own exit code there
//! first, just before it leaves (its "last word"), so a child that outlives a dead server still
//! tells its parent how it ended; the parent reads the pipe once the child's pidfd (its
//! `sentinel`) says it has ended. Daemonic children also watch their real parent's lifeline,
//! so they die with it whatever happens to the server.
//!
//! The server ignores `SIGINT` (a Ctrl-C reaches the whole process group; CPython's server
//! ignores it too), and its children get the default back. A server that died anyway (killed)
//! is replaced by the next `start`, transparently.

use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use rustix::event::PollFlags;
use rustix::process::{Pid, PidfdFlags, Signal, WaitId, WaitIdOptions};
use serde::{Deserialize, Serialize};

use crate::bootstrap::{self, Ack, Hello, Job};
use crate::connection::Connection;
use crate::deadline::Deadline;
use crate::error::{Error, Result};
use crate::handle::HandleFd;
use crate::identity::{self, Verified};
use crate::{io, process, sys};

/// A request to the server: run `job` in a new child, report its end on `status`.
#[derive(Debug, Serialize, Deserialize)]
struct Request {
    job: Job,
    status: HandleFd,
}

/// The server's answer: the child's pid and a pidfd for it.
type Reply = std::result::Result<(i32, HandleFd), String>;

/// The parent's side of its fork server.
pub(crate) struct Client {
    conn: Connection,
    pid: Pid,
    pidfd: OwnedFd,
}

impl Client {
    fn launch() -> Result<Client> {
        let hello = Hello::Forkserver {
            fingerprint: identity::fingerprint()?,
            preload: crate::context::forkserver_preload()
                .into_iter()
                .map(|f| identity::offset_of(f as usize))
                .collect(),
        };
        let (pid, pidfd, conn) = bootstrap::launch(&hello, false)?;
        Ok(Client { conn, pid, pidfd })
    }

    /// Whether the server has ended (its pidfd is readable once it has).
    fn has_exited(&self) -> bool {
        io::wait_readable(self.pidfd.as_fd(), Deadline::now()).unwrap_or(true)
    }

    /// Closes the socket (the server then exits) and reaps the server, waiting at most a second.
    pub(crate) fn shut_down(mut self) {
        self.conn.close();
        if !matches!(
            io::wait_readable(self.pidfd.as_fd(), Deadline::after(Duration::from_secs(1))),
            Ok(true)
        ) {
            let _ = rustix::process::pidfd_send_signal(&self.pidfd, Signal::KILL);
        }
        let _ = rustix::process::waitid(WaitId::PidFd(self.pidfd.as_fd()), WaitIdOptions::EXITED);
        let _ = self.pid;
    }
}

/// Starts `job` through this process's fork server (starting the server if needed). Returns
/// the child's pid, its pidfd and the read end of its status pipe.
pub(crate) fn start(job: Job) -> Result<(i32, OwnedFd, OwnedFd)> {
    let (status_r, status_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    let request = Request {
        job,
        status: HandleFd(status_w),
    };
    let mut g = process::global();
    // A server that died (killed, or gone with an error) is replaced: look before asking.
    if g.forkserver.as_ref().is_some_and(Client::has_exited) {
        if let Some(dead) = g.forkserver.take() {
            dead.shut_down();
        }
    }
    if g.forkserver.is_none() {
        g.forkserver = Some(Client::launch()?);
    }
    let Some(client) = g.forkserver.as_mut() else {
        return Err(Error::InvalidState("no fork server".into()));
    };
    let mut sent = client.conn.send(&request);
    if sent.as_ref().is_err_and(peer_gone) {
        // It died between the look and the request, which it never read: replace it, once.
        if let Some(dead) = g.forkserver.take() {
            dead.shut_down();
        }
        g.forkserver = Some(Client::launch()?);
        let Some(fresh) = g.forkserver.as_mut() else {
            return Err(Error::InvalidState("no fork server".into()));
        };
        sent = fresh.conn.send(&request);
    }
    let Some(client) = g.forkserver.as_mut() else {
        return Err(Error::InvalidState("no fork server".into()));
    };
    let reply = sent.and_then(|()| client.conn.recv::<Reply>());
    drop(request);
    match reply {
        Ok(Ok((pid, pidfd))) => Ok((pid, pidfd.0, status_r)),
        Ok(Err(msg)) => Err(Error::Io(std::io::Error::other(format!(
            "fork server: {msg}"
        )))),
        Err(e) => {
            // The server is gone or confused: forget it; the next start launches a new one.
            if let Some(server) = g.forkserver.take() {
                server.shut_down();
            }
            Err(e)
        }
    }
}

/// Whether a failed send says the server's end is closed (it died).
fn peer_gone(e: &Error) -> bool {
    match e {
        Error::Eof => true,
        Error::Io(io) => matches!(
            io.kind(),
            std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
        ),
        _ => false,
    }
}

/// One child of the server.
struct Child {
    pidfd: OwnedFd,
    status: OwnedFd,
}

/// The server's loop. Runs in the process `bootstrap::on_load` made a fork server; never
/// returns. Single-threaded by construction: it runs before `main`, and starts no threads.
pub(crate) fn serve(verified: Verified, mut conn: Connection, preload: Vec<i64>) -> ! {
    sys::ignore_sigint();
    for offset in preload {
        let f: fn() = crate::trampoline::fn_at(&verified, offset);
        if std::panic::catch_unwind(f).is_err() {
            eprintln!("multiprocessing: fork server: a preload function panicked; skipped");
        }
    }
    if conn.send(&Ack::Ready).is_err() {
        sys::exit_immediately(0);
    }
    let mut children: Vec<Child> = Vec::new();
    loop {
        let ready = {
            let mut fds = vec![(conn.as_fd(), PollFlags::IN)];
            fds.extend(children.iter().map(|c| (c.pidfd.as_fd(), PollFlags::IN)));
            match io::wait_any(&fds, Deadline::NEVER) {
                Ok(ready) => ready,
                Err(e) => {
                    eprintln!("multiprocessing: fork server: {e}");
                    break;
                }
            }
        };
        // Report ended children (indexes shifted by one for the socket), last first so removal
        // keeps the other indexes valid.
        for &i in ready.iter().rev().filter(|&&i| i > 0) {
            let child = &children[i - 1];
            match rustix::process::waitid(
                WaitId::PidFd(child.pidfd.as_fd()),
                WaitIdOptions::EXITED | WaitIdOptions::NOHANG,
            ) {
                Ok(Some(status)) => {
                    if let Some(code) = status
                        .exit_status()
                        .or_else(|| status.terminating_signal().map(|s| -s))
                    {
                        let _ = io::write_all(child.status.as_fd(), &code.to_be_bytes());
                    }
                    children.swap_remove(i - 1);
                }
                // Not ended after all: look again at the next wake-up.
                Ok(None) => {}
                // A child that cannot be waited for (already reaped by someone else): its
                // status is lost, which closing the status pipe tells the parent; never poll
                // its pidfd again.
                Err(_) => {
                    children.swap_remove(i - 1);
                }
            }
        }
        if ready.first() != Some(&0) {
            continue;
        }
        let request = match conn.recv::<Request>() {
            Ok(request) => request,
            Err(Error::Eof) => break,
            Err(e) => {
                eprintln!("multiprocessing: fork server: bad request: {e}");
                break;
            }
        };
        let reply: Reply = match fork_child(&verified, &mut conn, &mut children, request) {
            Ok((pid, pidfd)) => Ok((pid, HandleFd(pidfd))),
            Err(e) => Err(e.to_string()),
        };
        if conn.send(&reply).is_err() {
            break;
        }
    }
    // The parent is gone. Children go on (daemonic ones die through their lifeline).
    sys::exit_immediately(0)
}

fn fork_child(
    verified: &Verified,
    conn: &mut Connection,
    children: &mut Vec<Child>,
    request: Request,
) -> Result<(i32, OwnedFd)> {
    let Request { job, status } = request;
    identity::check(&job.fingerprint)?;
    match sys::fork()? {
        sys::Forked::Child => {
            sys::default_sigint();
            conn.close();
            children.clear();
            // The status pipe stays open here: the child writes its last word to it.
            bootstrap::run_job(verified.clone(), job, Some(status.0))
        }
        sys::Forked::Parent(pid) => {
            drop(job);
            let pidfds = rustix::process::pidfd_open(pid, PidfdFlags::empty())
                .map_err(Error::from)
                .and_then(|fd| Ok((fd.try_clone()?, fd)));
            let (pidfd, ours) = match pidfds {
                Ok(fds) => fds,
                Err(e) => {
                    // A child nobody can watch must not run.
                    let _ = rustix::process::kill_process(pid, Signal::KILL);
                    let _ =
                        rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty());
                    return Err(e);
                }
            };
            children.push(Child {
                pidfd,
                status: status.0,
            });
            Ok((pid.as_raw_nonzero().get(), ours))
        }
    }
}
