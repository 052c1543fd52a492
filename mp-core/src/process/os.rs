//! Functions about processes in the OS: this process's pid, whether a pid still runs, the CPU
//! count, and `exit`.

use rustix::process::Pid;

use crate::{bootstrap, sys};

/// This process's pid, from a cache that a fork hook refreshes in every child (however it was
/// forked): cheap enough for lock words. Python: `os.getpid()`.
#[inline]
pub fn process_id() -> u32 {
    sys::cached_pid()
}

/// Whether process `pid` still runs. A zombie does not (it has exited, only its exit status
/// waits to be collected), unless it is a thread-group leader whose other threads still run.
///
/// Beyond Python; what robust locks use to notice a dead owner. A pid reused by an unrelated
/// process makes a dead process look alive (Linux hands pids out in increasing order, so that
/// takes a full wrap of the pid space).
pub fn process_is_alive(pid: u32) -> bool {
    let Some(p) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
        return false;
    };
    match rustix::process::test_kill_process(p) {
        Err(rustix::io::Errno::SRCH) => false,
        Err(_) | Ok(()) => match std::fs::read(format!("/proc/{pid}/stat")) {
            // The state follows the command name in parentheses, which may itself hold ')'.
            Ok(stat) => match stat.iter().rposition(|&b| b == b')') {
                Some(i) if matches!(stat.get(i + 2), Some(b'Z') | Some(b'X')) => {
                    // A leader that called pthread_exit shows as a zombie while its threads run.
                    std::fs::read_dir(format!("/proc/{pid}/task")).is_ok_and(|d| d.count() > 1)
                }
                _ => true,
            },
            Err(_) => false,
        },
    }
}

/// The number of CPUs online. Python: `multiprocessing.cpu_count()`.
pub fn cpu_count() -> usize {
    sys::online_cpus()
        .or_else(|| std::thread::available_parallelism().ok().map(|n| n.get()))
        .unwrap_or(1)
}

/// Ends the current process with exit code `code`, as Python's `sys.exit(code)` does.
///
/// In a child's target (on the thread running it) this unwinds to the child's bootstrap, so
/// destructors run and the parent sees `exitcode == code`. Elsewhere it runs the exit handling
/// (terminate daemonic children, join the others) and exits the process.
pub fn exit(code: i32) -> ! {
    if bootstrap::in_target() {
        std::panic::resume_unwind(Box::new(bootstrap::ExitRequest(code)));
    }
    std::process::exit(code)
}
