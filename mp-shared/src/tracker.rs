//! The resource tracker: unlinks a named segment once no process uses it any more.
//!
//! # Design
//!
//! *Who uses a segment* is recorded by the kernel, not by messages: every process that has a
//! segment open through this crate holds a shared `flock` on it (its creator from the moment
//! the name exists, an attacher before it looks at the segment). The lock belongs to the open
//! file description, so it is shared by forked children and by processes that received the
//! segment as a handle, and the kernel drops it when the last of them closes it: by `close`,
//! by exit, or by `SIGKILL`. Nobody needs to say goodbye.
//!
//! *Who cleans up* is a tracker process, started lazily the first time a process creates a
//! tracked segment, as a detached helper ([`mp_core::start_detached`]: the program re-executed,
//! running [`serve`] before `main`). Its argument is one end of a `SOCK_SEQPACKET` socket whose
//! other end this process keeps (and forked children inherit); a creator sends it
//! `dev ino name` for each new segment. For each, a thread of the tracker opens the segment by name (checking it is the
//! same inode) and blocks in `flock(LOCK_EX)`: that returns exactly when no other process has
//! the segment open. The tracker then unlinks the name, unless it was unlinked already or now
//! names another segment. When every process holding the socket has exited and every watched
//! segment is gone, the tracker exits.
//!
//! So a segment whose creator dies (even by `SIGKILL`) disappears as soon as its last user
//! does, and a segment that another process still uses is never unlinked under it (CPython's
//! gh-82300, where a child's tracker unlinks its parent's segment, cannot happen: attaching
//! registers nothing, and the watch waits for every user). An attacher that opens a segment
//! while the tracker is unlinking it waits for the tracker's lock, sees the link count at 0,
//! and reports `NotFound`.
//!
//! The tracker calls `setsid`, so a Ctrl-C or a kill of the program's process group does not
//! take it down with the program. Its standard output and error are `/dev/null`, and it closes
//! any other descriptor it inherited by accident (one without `O_CLOEXEC`), which could hold a
//! segment's lock.
//!
//! Limits: a process that is killed between creating a segment's name and registering it (a
//! few system calls) leaks it, as in CPython; processes that use a segment without this crate
//! (a Python program attached by name) hold no lock, so they are not waited for; a tracker
//! that is itself killed unlinks nothing. Spawned and forkserver children do not inherit the
//! socket: one that creates a tracked segment starts its own tracker.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

use mp_core::handle::HandleFd;
use mp_core::{Deadline, HelperOptions};
use rustix::event::PollFlags;
use rustix::fs::{FlockOperation, Mode};
use rustix::io::Errno;
use rustix::net::{RecvFlags, SendFlags, SocketFlags, SocketType};
use rustix::shm;

use crate::error::{Error, Result};
use crate::sys;

/// What the tracker sends once it is ready.
const READY: &[u8] = b"ready";
/// How long a new tracker may take to say it is ready.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// This process's end of its tracker's socket (inherited across fork). The mutex is only held
/// for a few instructions, never across a system call, so a fork from another thread cannot
/// leave it locked in the child (short of a fork in those very instructions).
static CLIENT: Mutex<Option<Arc<OwnedFd>>> = Mutex::new(None);

fn client() -> Option<Arc<OwnedFd>> {
    CLIENT
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
}

/// This process's tracker connection, starting a tracker if there is none (or if `dead`, the
/// connection that failed, is still the current one).
fn connect(dead: Option<&Arc<OwnedFd>>) -> Result<Arc<OwnedFd>> {
    if let Some(sock) = client().filter(|c| !is_dead(c, dead)) {
        return Ok(sock);
    }
    // Started without the mutex held (it takes milliseconds); if another thread installed a
    // tracker meanwhile, ours is dropped, and exits when it sees its socket closed.
    let fresh = Arc::new(start()?);
    let mut slot = CLIENT.lock().unwrap_or_else(PoisonError::into_inner);
    match slot.as_ref() {
        Some(current) if !is_dead(current, dead) => Ok(current.clone()),
        _ => Ok(slot.insert(fresh).clone()),
    }
}

fn is_dead(sock: &Arc<OwnedFd>, dead: Option<&Arc<OwnedFd>>) -> bool {
    dead.is_some_and(|d| Arc::ptr_eq(sock, d))
}

/// Makes sure this process has a tracker, starting one if needed.
pub(crate) fn ensure_started() -> Result<()> {
    connect(None).map(drop)
}

/// Asks the tracker to watch the segment `name`, open as `fd`.
pub(crate) fn register(name: &str, fd: BorrowedFd<'_>) -> Result<()> {
    let st = rustix::fs::fstat(fd)?;
    let message = format!("{} {} {name}", st.st_dev, st.st_ino);
    let mut sock = connect(None)?;
    for attempt in 0..2 {
        match send(sock.as_fd(), message.as_bytes()) {
            Ok(()) => return Ok(()),
            // The tracker died (killed by hand?): start another one.
            Err(Errno::PIPE | Errno::CONNRESET) if attempt == 0 => sock = connect(Some(&sock))?,
            Err(e) => {
                return Err(Error::Tracker(format!(
                    "cannot register {name:?} with the resource tracker: {e}"
                )))
            }
        }
    }
    Err(Error::Tracker(format!(
        "cannot register {name:?}: the resource tracker keeps dying"
    )))
}

fn send(sock: BorrowedFd<'_>, message: &[u8]) -> rustix::io::Result<()> {
    loop {
        match rustix::net::send(sock, message, SendFlags::NOSIGNAL) {
            Ok(_) => return Ok(()),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Starts a tracker and waits until it is ready; returns our end of its socket.
fn start() -> Result<OwnedFd> {
    let fail = |what: &str, e: &dyn std::fmt::Display| {
        Error::Tracker(format!("cannot start the resource tracker: {what}: {e}"))
    };
    let (ours, theirs) = rustix::net::socketpair(
        rustix::net::AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )
    .map_err(|e| fail("socketpair", &e))?;
    let options = HelperOptions::new("mp-shared-resource-tracker").quiet(true);
    let helper = mp_core::start_detached(serve, HandleFd(theirs), &options)
        .map_err(|e| fail("start", &e))?;
    let mut buf = [0u8; 16];
    let ready = mp_core::io::wait_any(
        &[(ours.as_fd(), PollFlags::IN)],
        Deadline::after(START_TIMEOUT),
    )
    .is_ok_and(|ready| !ready.is_empty())
        && matches!(
            rustix::net::recv(&ours, &mut buf[..], RecvFlags::empty()),
            Ok((n, _)) if buf.get(..n) == Some(READY)
        );
    if !ready {
        let _ = helper.kill();
        return Err(fail("no answer", &"the helper did not become the tracker"));
    }
    log::debug!("started the resource tracker, pid {}", helper.pid());
    // The tracker outlives this process; it is not waited for (once we exit, init reaps it).
    Ok(ours)
}

// ----- the tracker -----

/// The number of segments being watched, and a condition to wait for it to reach 0.
type Watching = Arc<(Mutex<usize>, Condvar)>;

/// The tracker's main loop, run in the helper process: one watcher thread per registered
/// segment, until every client is gone and every watch is over.
fn serve(HandleFd(sock): HandleFd) {
    // Leave the program's session and process group: a Ctrl-C or a `kill` of the group must
    // not stop the cleanup. The working directory must not keep a file system busy.
    sys::close_inherited_fds(sock.as_raw_fd());
    let _ = rustix::process::setsid();
    let _ = std::env::set_current_dir("/");
    let sock = sock.as_fd();
    if send(sock, READY).is_err() {
        return;
    }
    let watching: Watching = Arc::new((Mutex::new(0), Condvar::new()));
    let mut buf = [0u8; 1024];
    loop {
        match rustix::net::recv(sock, &mut buf[..], RecvFlags::empty()) {
            // Every process holding the other end has exited.
            Ok((0, _)) => break,
            Ok((n, _)) => {
                if let Some((dev, ino, name)) = buf.get(..n).and_then(parse) {
                    start_watch(&watching, dev, ino, name);
                }
            }
            Err(Errno::INTR) => continue,
            Err(_) => break,
        }
    }
    let (count, zero) = &*watching;
    let mut n = count.lock().unwrap_or_else(PoisonError::into_inner);
    while *n > 0 {
        n = zero.wait(n).unwrap_or_else(PoisonError::into_inner);
    }
}

/// Parses `dev ino name`.
fn parse(message: &[u8]) -> Option<(u64, u64, String)> {
    let text = std::str::from_utf8(message).ok()?;
    let mut parts = text.splitn(3, ' ');
    let dev = parts.next()?.parse().ok()?;
    let ino = parts.next()?.parse().ok()?;
    let name = parts.next()?.to_string();
    Some((dev, ino, name))
}

fn start_watch(watching: &Watching, dev: u64, ino: u64, name: String) {
    *watching.0.lock().unwrap_or_else(PoisonError::into_inner) += 1;
    let done = watching.clone();
    let finish = move || {
        let (count, zero) = &*done;
        let mut n = count.lock().unwrap_or_else(PoisonError::into_inner);
        *n = n.saturating_sub(1);
        zero.notify_all();
    };
    let spawned = std::thread::Builder::new()
        .name("mp-shared-watch".into())
        .stack_size(64 * 1024)
        .spawn({
            let name = name.clone();
            let finish = finish.clone();
            move || {
                watch(dev, ino, &name);
                finish();
            }
        });
    if spawned.is_err() {
        // No thread to spare: watch here (new registrations wait meanwhile).
        watch(dev, ino, &name);
        finish();
    }
}

/// Waits until nobody but us has segment `name` (inode `dev`/`ino`) open, then unlinks it if
/// the name still names that segment.
fn watch(dev: u64, ino: u64, name: &str) {
    let Ok(fd) = shm::open(name, shm::OFlags::RDONLY, Mode::empty()) else {
        return; // already unlinked
    };
    let same = |st: &rustix::fs::Stat| st.st_dev == dev && st.st_ino == ino;
    if !rustix::fs::fstat(&fd).is_ok_and(|st| same(&st)) {
        return; // the name was unlinked and reused before we looked
    }
    loop {
        match rustix::fs::flock(&fd, FlockOperation::LockExclusive) {
            Ok(()) => break,
            Err(Errno::INTR) => continue,
            Err(_) => return,
        }
    }
    // Nobody else has it open. Unlink it, unless a user already did.
    if rustix::fs::fstat(&fd).is_ok_and(|st| st.st_nlink > 0)
        && rustix::fs::stat(format!("/dev/shm/{name}")).is_ok_and(|st| same(&st))
    {
        let _ = shm::unlink(name);
    }
}
