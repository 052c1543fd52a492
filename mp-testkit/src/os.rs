//! Processes and fds as the operating system sees them (`/proc`, pidfds, `waitpid`).

use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use rustix::process::{Pid, PidfdFlags, Signal};

use crate::readable;

/// This process's pid.
pub fn our_pid() -> i32 {
    rustix::process::getpid().as_raw_nonzero().get()
}

/// The [`Pid`] of a positive raw pid; fails the test for any other number.
#[track_caller]
pub fn pid_of(raw: i32) -> Pid {
    Pid::from_raw(raw).expect("a positive pid")
}

/// Whether process `pid` exists and has not ended (a zombie counts as ended).
pub fn is_running(pid: i32) -> bool {
    match rustix::process::pidfd_open(pid_of(pid), PidfdFlags::empty()) {
        Ok(fd) => !readable(fd.as_fd(), Duration::ZERO),
        Err(_) => false,
    }
}

/// Waits up to `timeout` for process `pid` to end; true if it did (or is gone).
pub fn ends_within(pid: i32, timeout: Duration) -> bool {
    match rustix::process::pidfd_open(pid_of(pid), PidfdFlags::empty()) {
        Ok(fd) => readable(fd.as_fd(), timeout),
        Err(_) => true,
    }
}

/// SIGKILLs process `pid` if it still runs (cleanup after a failed expectation). A pidfd
/// names the process, so a reused pid is never hit.
pub fn kill_pid(pid: i32) {
    if let Ok(fd) = rustix::process::pidfd_open(pid_of(pid), PidfdFlags::empty()) {
        let _ = rustix::process::pidfd_send_signal(&fd, Signal::KILL);
    }
}

/// The pids of this process's children that are zombies (ended, not reaped).
pub fn zombie_children() -> Vec<i32> {
    let me = our_pid();
    let mut zombies = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("read /proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let state = fields.next().unwrap_or("");
        let ppid = fields.next().and_then(|p| p.parse::<i32>().ok());
        if ppid == Some(me) && state == "Z" {
            zombies.push(pid);
        }
    }
    zombies
}

/// Reaps every child of this process (orphans reparented here included) until none is left;
/// fails if one is still running after `timeout`.
#[track_caller]
pub fn reap_all_children(timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        match rustix::process::waitpid(None, rustix::process::WaitOptions::NOHANG) {
            Ok(Some(_)) => continue,
            Ok(None) => {
                assert!(
                    Instant::now() < deadline,
                    "descendants still running {timeout:?} after their parent was killed"
                );
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(rustix::io::Errno::CHILD) => return,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => panic!("waitpid: {e}"),
        }
    }
}

/// The open fds of this process, each with what it points at, sorted.
pub fn open_fds() -> Vec<(i32, String)> {
    let mut fds: Vec<(i32, String)> = std::fs::read_dir("/proc/self/fd")
        .expect("read /proc/self/fd")
        .flatten()
        .filter_map(|e| {
            let fd = e.file_name().to_string_lossy().parse().ok()?;
            let target = std::fs::read_link(e.path())
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| "?".into());
            Some((fd, target))
        })
        .collect();
    fds.sort();
    fds
}

/// The number of open fds of this process.
pub fn count_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("read /proc/self/fd")
        .count()
}

/// `atexit(3)`: runs `f` when the process exits normally, after the handlers registered
/// later (they run last registered first). Fails the test if it cannot register.
#[track_caller]
pub fn at_exit(f: extern "C" fn()) {
    // SAFETY: `f` is a safe C-ABI function that takes no arguments; `atexit` only stores the
    // pointer and calls it once at exit, and a `fn` item lives for the whole process.
    let rc = unsafe { libc::atexit(f) };
    assert_eq!(rc, 0, "atexit");
}
