//! Bare-OS limits: the same figures as CPython's and ours, done with raw syscalls and nothing
//! else, in the same units as `bench/cpython_bench.py`. `of_limit` in the report is the fraction
//! of these numbers that the Rust implementation reaches.
//!
//! | figure               | limit                                                              |
//! | -------------------- | ------------------------------------------------------------------ |
//! | `process_fork`       | `fork()` + `waitpid()` of a child that calls `_exit(0)`, us each   |
//! | `process_spawn`      | `posix_spawn("/proc/self/exe", [exe, "--noop"])` + `waitpid()`, us |
//! | `process_forkserver` | none: the OS has no forkserver                                      |
//! | `pipe_pingpong`      | 8-byte write/read round trips over a socketpair to a forked child  |
//! | `pipe_1mib`          | 1 MiB writes over a socketpair to a forked child on the other CPU, MB/s (1e6 B) |
//! | `queue_1mib`         | as `pipe_1mib` (left to the scheduler: see `socket_sized`)         |
//! | `queue_latency`      | as `lock_handoff` (two CPUs), as microseconds per round trip       |
//! | `lock_uncontended`   | a bare compare-and-swap lock (no owner, no waiters), acquire + release pairs/s |
//! | `lock_handoff`       | futex wait/wake ping-pong of two words in a shared page, round trips/s |
//! | `pool_startup`       | the bare OS work of a pool of 2 with one task: two forked children on socketpairs, one request and its answer, a stop to each, two `waitpid`s, ms |
//! | `sweep_*`            | see `sweep_side.rs`                                                |
//!
//! Every forked child here only makes raw syscalls (`read`, `write`, `_exit`) on memory
//! allocated before the fork: after `fork()` only async-signal-safe calls are allowed, so no
//! allocation, no locks, no panics, and `_exit` rather than `exit` so that atexit handlers and
//! stdio buffers, which belong to the parent, are not run or flushed twice.

use std::ffi::CString;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::ptr;
use std::time::Instant;

use rustix::io::Errno;
use rustix::net::{socketpair, AddressFamily, SocketFlags, SocketType};
use rustix::process::{waitpid, Pid, WaitOptions};

/// One mebibyte, the message size of `pipe_1mib`.
const MIB: usize = 1 << 20;

/// Measures one repetition of the OS limit for figure `name`: `(unit, value)`, or `None` when
/// the figure has no OS-level counterpart.
pub fn run(name: &str) -> Option<(&'static str, f64)> {
    match name {
        "process_fork" => Some(("us", fork_exit(500))),
        "process_spawn" => Some(("us", spawn_noop(200))),
        "pipe_pingpong" => Some(("round_trips/s", socket_pingpong(20_000))),
        "pipe_1mib" => Some(("MB/s", socket_sized_placed(MIB, 1000, true))),
        "lock_uncontended" => Some(("ops/s", cas_lock(10_000_000))),
        "lock_handoff" => Some(("round_trips/s", futex_pingpong(100_000))),
        "queue_1mib" => Some(("MB/s", socket_1mib(200))),
        "queue_latency" => Some(("us", 1e6 / futex_pingpong(20_000))),
        "pool_startup" => Some((
            "ms",
            (0..crate::pool_side::STARTUPS)
                .map(|_| bare_pool())
                .sum::<f64>()
                / f64::from(crate::pool_side::STARTUPS),
        )),
        other => crate::connection_side::limit(other)
            .or_else(|| crate::sweep_side::limit(other))
            .or_else(|| crate::pool_side::limit(other))
            .or_else(|| crate::manager_side::limit(other)),
    }
}

/// Microseconds per `fork()` + `waitpid()` of a child that exits at once.
fn fork_exit(count: u32) -> f64 {
    wait_ok(fork_child(|| 0)); // warm-up
    let start = Instant::now();
    for _ in 0..count {
        wait_ok(fork_child(|| 0));
    }
    start.elapsed().as_secs_f64() * 1e6 / f64::from(count)
}

/// Milliseconds of the least a pool of 2 that runs one task has to ask of the OS, as
/// `pool_startup` measures it (one cycle, no warm-up): two children forked, each on its
/// own socketpair, that answer a request byte with the same byte and `_exit` on a stop byte;
/// one request to the first and its answer; a stop to each; both reaped. No thread, no codec:
/// what is left of `pool_startup` when everything above the syscalls is taken away.
fn bare_pool() -> f64 {
    let start = Instant::now();
    let mut workers = Vec::with_capacity(2);
    for _ in 0..2 {
        let (ours, theirs) = unix_socketpair();
        let pid = fork_child(|| {
            let mut byte = [0u8; 1];
            loop {
                if read_exact(&theirs, &mut byte).is_err() {
                    return 1;
                }
                if byte[0] == b'x' {
                    return 0;
                }
                if write_all(&theirs, &byte).is_err() {
                    return 2;
                }
            }
        });
        drop(theirs);
        workers.push((ours, pid));
    }
    let mut answer = [0u8; 1];
    write_all(&workers[0].0, b"t").expect("request to bare worker");
    read_exact(&workers[0].0, &mut answer).expect("answer from bare worker");
    assert_eq!(answer, *b"t", "bare worker answered something else");
    for (fd, _) in &workers {
        write_all(fd, b"x").expect("stop to bare worker");
    }
    for (_, pid) in workers {
        wait_ok(pid);
    }
    start.elapsed().as_secs_f64() * 1e3
}

/// Microseconds per `posix_spawn()` of this executable with `--noop` + `waitpid()`.
fn spawn_noop(count: u32) -> f64 {
    let exe = std::env::current_exe().expect("current_exe");
    let path = CString::new("/proc/self/exe").expect("no NUL");
    let argv0 = CString::new(exe.as_os_str().as_bytes()).expect("executable path has a NUL");
    let noop = CString::new("--noop").expect("no NUL");
    let argv = [
        argv0.as_ptr().cast_mut(),
        noop.as_ptr().cast_mut(),
        ptr::null_mut(),
    ];
    let env: Vec<CString> = std::env::vars_os()
        .filter_map(|(key, value)| {
            let mut entry = key.as_bytes().to_vec();
            entry.push(b'=');
            entry.extend_from_slice(value.as_bytes());
            CString::new(entry).ok()
        })
        .collect();
    let envp: Vec<*mut libc::c_char> = env
        .iter()
        .map(|entry| entry.as_ptr().cast_mut())
        .chain([ptr::null_mut()])
        .collect();

    let spawn = || {
        let mut pid: libc::pid_t = 0;
        // SAFETY: `path` is a NUL-terminated string; `argv` and `envp` are null-terminated
        // arrays of NUL-terminated strings, all alive until the call returns (posix_spawn copies
        // them into the child and does not write through them); null file actions and
        // attributes ask for the defaults; `pid` is a valid place for the child's pid.
        let rc = unsafe {
            libc::posix_spawn(
                &mut pid,
                path.as_ptr(),
                ptr::null(),
                ptr::null(),
                argv.as_ptr(),
                envp.as_ptr(),
            )
        };
        assert_eq!(
            rc,
            0,
            "posix_spawn: {}",
            std::io::Error::from_raw_os_error(rc)
        );
        wait_ok(Pid::from_raw(pid).expect("posix_spawn returned pid 0"));
    };

    spawn(); // warm-up: page in the executable
    let start = Instant::now();
    for _ in 0..count {
        spawn();
    }
    start.elapsed().as_secs_f64() * 1e6 / f64::from(count)
}

/// Round trips per second of 8 bytes over a socketpair to a forked echo child.
fn socket_pingpong(round_trips: u32) -> f64 {
    let (ours, theirs) = unix_socketpair();
    let mut echo = [0u8; 8];
    // The child echoes exactly the warm-up message plus `round_trips` messages, then exits.
    // On two CPUs, as both sides of `pipe_pingpong` and `manager_dict_ops` (`start_apart`).
    let (child, pinned) = start_apart(|| {
        fork_child(|| {
            for _ in 0..=round_trips {
                if read_exact(&theirs, &mut echo).is_err() || write_all(&theirs, &echo).is_err() {
                    return 1;
                }
            }
            0
        })
    });
    drop(theirs);

    let mut message = [0u8; 8];
    round_trip(&ours, &mut message); // warm-up: the child is running
    let start = Instant::now();
    for i in 0..u64::from(round_trips) {
        message = i.to_ne_bytes();
        round_trip(&ours, &mut message);
    }
    let elapsed = start.elapsed().as_secs_f64();
    drop(pinned);
    wait_ok(child);
    f64::from(round_trips) / elapsed
}

/// Microseconds per 8-byte round trip over a socketpair to a forked echo child.
pub fn socket_round_trip_us(round_trips: u32) -> f64 {
    1e6 / socket_pingpong(round_trips)
}

/// Sends `message` and reads the echo back into it.
fn round_trip(fd: &OwnedFd, message: &mut [u8; 8]) {
    let sent = *message;
    write_all(fd, &sent).expect("write to echo child");
    read_exact(fd, message).expect("read from echo child");
    assert_eq!(*message, sent, "echo child answered something else");
}

/// MB/s (1e6 bytes) of 1 MiB writes over a socketpair to a forked child that reads them all,
/// timed from the first write until the child's ack of the last byte.
fn socket_1mib(messages: u32) -> f64 {
    socket_sized(MIB, messages as usize)
}

/// MB/s (1e6 bytes) of `messages` writes of `size` bytes over a socketpair to a forked child
/// that reads them all, timed from the first write until the child's ack of the last byte.
///
/// The two processes are left to the scheduler (`queue_1mib`'s limit, though its sides run
/// apart): on the Intel Xeon VM of Dec 4 a stream of 1 MiB writes ran at 12 000-13 000 MB/s
/// so (the reader on the writer's CPU, where the data is still in its caches) and at
/// 3 000-5 500 MB/s with the reader on the other CPU. `pipe_1mib` places them apart on every
/// side (see [`socket_sized_placed`]).
pub fn socket_sized(size: usize, messages: usize) -> f64 {
    socket_sized_placed(size, messages, false)
}

/// [`socket_sized`], with the child on the second CPU and this process on the first
/// ([`start_apart`]) when `apart`, as `pipe_1mib` runs on every side. Left to the scheduler,
/// the two sides of `pipe_1mib` shared a CPU in some repetitions and not in others, and not
/// equally often: on the AMD EPYC VM of Dec 4 (where one CPU ran the stream at 7 000-8 700
/// MB/s and two at 4 000-6 000), 20 alternated pairs of ours and this limit gave a median
/// ratio of 0.85 (0.51-1.36); placed apart, 0.92 and 1.00 (0.61-1.63) in two such series.
fn socket_sized_placed(size: usize, messages: usize, apart: bool) -> f64 {
    let (ours, theirs) = unix_socketpair();
    let total = messages * size;
    let chunk = size.min(4 * MIB);
    let mut sink = vec![0u8; chunk]; // the child's buffer, allocated before the fork
    let mut fork = || {
        fork_child(|| {
            if write_all(&theirs, b"r").is_err() {
                return 1;
            }
            let mut remaining = total;
            while remaining > 0 {
                let want = remaining.min(chunk);
                match rustix::io::read(&theirs, &mut sink[..want]) {
                    Ok(0) => return 2,
                    Ok(n) => remaining -= n,
                    Err(Errno::INTR) => {}
                    Err(_) => return 3,
                }
            }
            if write_all(&theirs, b"a").is_err() {
                return 4;
            }
            0
        })
    };
    let (child, _pinned) = if apart {
        let (child, pinned) = start_apart(fork);
        (child, Some(pinned))
    } else {
        (fork(), None)
    };
    drop(theirs);

    let payload = vec![0x5au8; size];
    let mut byte = [0u8; 1];
    read_exact(&ours, &mut byte).expect("ready from sink child");
    let start = Instant::now();
    for _ in 0..messages {
        write_all(&ours, &payload).expect("write to sink child");
    }
    read_exact(&ours, &mut byte).expect("ack from sink child");
    let elapsed = start.elapsed().as_secs_f64();
    assert_eq!(&byte, b"a");
    wait_ok(child);
    total as f64 / 1e6 / elapsed
}

/// Records per second through one pipe with `procs` writer and `procs` reader processes, each
/// writer writing its share of `total` 16-byte records (writes up to `PIPE_BUF` are atomic, so
/// records never interleave) and each reader reading its share: the bare-OS counterpart of a
/// many-to-many queue. Timed from the parent's go (one byte to every child) until every reader
/// has exited.
pub fn pipe_records(procs: usize, total: usize) -> f64 {
    let share = total / procs;
    let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).expect("pipe");
    let (go_r, go_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).expect("pipe");
    let mut children = Vec::with_capacity(2 * procs);
    for writer in [true, false] {
        for _ in 0..procs {
            children.push((
                writer,
                fork_child(|| {
                    let mut go = [0u8; 1];
                    if read_exact(&go_r, &mut go).is_err() {
                        return 1;
                    }
                    let mut record = [0x5au8; 16];
                    for _ in 0..share {
                        let ok = if writer {
                            write_all(&w, &record)
                        } else {
                            read_exact(&r, &mut record)
                        };
                        if ok.is_err() {
                            return 2;
                        }
                    }
                    0
                }),
            ));
        }
    }
    drop((r, w, go_r));
    let go = vec![1u8; 2 * procs];
    let start = Instant::now();
    write_all(&go_w, &go).expect("go");
    for &(writer, pid) in &children {
        if !writer {
            wait_ok(pid);
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    for &(writer, pid) in &children {
        if writer {
            wait_ok(pid);
        }
    }
    (share * procs) as f64 / elapsed
}

/// A connected pair of close-on-exec Unix stream sockets, like CPython's duplex `Pipe()`.
fn unix_socketpair() -> (OwnedFd, OwnedFd) {
    socketpair(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )
    .expect("socketpair")
}

/// Forks; the child runs `child` and `_exit`s with its return value, the parent gets the pid.
///
/// `child` runs between `fork()` and `_exit()` and must stick to async-signal-safe calls (raw
/// syscalls through rustix, on memory allocated before the fork) and must not panic.
fn fork_child(child: impl FnOnce() -> i32) -> Pid {
    // SAFETY: this benchmark is single-threaded, so the child inherits no lock held by another
    // thread; the child side below only runs `child`, which follows the rules above, and then
    // `_exit`s without returning into the caller.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let code = child();
        // SAFETY: `_exit` is async-signal-safe and does not run atexit handlers or flush the
        // parent's stdio buffers that the child inherited.
        unsafe { libc::_exit(code) }
    }
    assert!(pid > 0, "fork: {}", std::io::Error::last_os_error());
    Pid::from_raw(pid).expect("positive pid")
}

/// Waits for `pid` (retrying on EINTR) and checks that it exited with status 0.
fn wait_ok(pid: Pid) {
    loop {
        match waitpid(Some(pid), WaitOptions::empty()) {
            Ok(Some((_, status))) => {
                assert_eq!(
                    status.exit_status(),
                    Some(0),
                    "child {} ended with {status:?}",
                    pid.as_raw_nonzero()
                );
                return;
            }
            Ok(None) | Err(Errno::INTR) => {}
            Err(e) => panic!("waitpid: {e}"),
        }
    }
}

/// Writes all of `buf`, retrying on EINTR and short writes.
fn write_all(fd: &OwnedFd, mut buf: &[u8]) -> Result<(), Errno> {
    while !buf.is_empty() {
        match rustix::io::write(fd, buf) {
            Ok(0) => return Err(Errno::PIPE),
            Ok(n) => buf = &buf[n..],
            Err(Errno::INTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Fills all of `buf`, retrying on EINTR and short reads; end of file is an error.
fn read_exact(fd: &OwnedFd, mut buf: &mut [u8]) -> Result<(), Errno> {
    while !buf.is_empty() {
        match rustix::io::read(fd, &mut *buf) {
            Ok(0) => return Err(Errno::PIPE),
            Ok(n) => buf = &mut buf[n..],
            Err(Errno::INTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Round trips per second of a raw futex ping-pong between this process and a forked child, on
/// two CPUs (`start_apart`): two words in a `MAP_SHARED` page; each side sets the other's word
/// and wakes it, then sleeps on its own (no spinning). Left to the scheduler, the two shared a
/// CPU in some repetitions and not in others: `queue_latency`'s limit spread over 5-29 µs.
fn futex_pingpong(round_trips: u32) -> f64 {
    use rustix::thread::futex;
    use std::sync::atomic::{AtomicU32, Ordering};

    // SAFETY: a fresh anonymous shared mapping of one page; nothing else refers to it.
    let page = unsafe {
        rustix::mm::mmap_anonymous(
            ptr::null_mut(),
            4096,
            rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
            rustix::mm::MapFlags::SHARED,
        )
    }
    .expect("mmap");
    // SAFETY: the page is zeroed, page-aligned and lives until the munmap below; AtomicU32 has
    // no invalid bit patterns; both processes only touch it through atomics.
    let (ping, pong) = unsafe {
        (
            &*(page as *const AtomicU32),
            &*((page as *const AtomicU32).add(1)),
        )
    };
    fn wait_for(word: &AtomicU32) {
        while word.swap(0, Ordering::Acquire) == 0 {
            let _ = futex::wait(word, futex::Flags::empty(), 0, None);
        }
    }
    fn signal(word: &AtomicU32) {
        word.store(1, Ordering::Release);
        let _ = futex::wake(word, futex::Flags::empty(), 1);
    }
    let fork = || {
        fork_child(|| {
            for _ in 0..=round_trips {
                wait_for(ping);
                signal(pong);
            }
            0
        })
    };
    let (child, _pinned) = start_apart(fork);
    signal(ping); // warm-up round
    wait_for(pong);
    let start = Instant::now();
    for _ in 0..round_trips {
        signal(ping);
        wait_for(pong);
    }
    let elapsed = start.elapsed().as_secs_f64();
    wait_ok(child);
    // SAFETY: the mapping made above; the child has exited and no reference outlives this.
    unsafe { rustix::mm::munmap(page, 4096) }.expect("munmap");
    f64::from(round_trips) / elapsed
}

/// Acquire + release pairs per second of the barest lock: a compare-and-swap `0 → 1` on a word
/// in a `MAP_SHARED` page (as a process-shared lock's is), a store of `0` to release; no owner,
/// no waiters, no futex.
fn cas_lock(count: u32) -> f64 {
    use std::sync::atomic::{AtomicU32, Ordering};

    // SAFETY: a fresh anonymous shared mapping of one page; nothing else refers to it.
    let page = unsafe {
        rustix::mm::mmap_anonymous(
            ptr::null_mut(),
            4096,
            rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
            rustix::mm::MapFlags::SHARED,
        )
    }
    .expect("mmap");
    // SAFETY: the page is zeroed, page-aligned and lives until the munmap below; AtomicU32 has
    // no invalid bit patterns.
    let word = unsafe { &*(page as *const AtomicU32) };
    let start = Instant::now();
    for _ in 0..count {
        let word = std::hint::black_box(word);
        while word
            .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            std::hint::spin_loop();
        }
        word.store(0, Ordering::Release);
    }
    let elapsed = start.elapsed().as_secs_f64();
    // SAFETY: the mapping made above; no reference to it outlives this.
    unsafe { rustix::mm::munmap(page, 4096) }.expect("munmap");
    f64::from(count) / elapsed
}

/// Runs `start` (which forks a child) with this thread on the second CPU it may use, so that
/// the child inherits that CPU, then moves this thread to the first one until the returned
/// guard drops: a two-process handoff then always crosses between two CPUs. Left to the
/// guest's scheduler, the two processes sometimes share one CPU, where a handoff is a context
/// switch instead, and a figure's repetitions spread over a factor of seven (the Rust side's
/// `semaphore_pingpong`: 1.1 M to 7.7 M round trips/s within one run on Dec 3).
pub fn start_apart<T>(start: impl FnOnce() -> T) -> (T, Pinned) {
    let child = Pinned::to_cpu(1);
    let started = start();
    drop(child);
    (started, Pinned::to_cpu(0))
}

/// While it lives, this thread (and so any process it forks) may run on one CPU only: the
/// `cpu`-th of those it may use (modulo their number); on drop, on all of those again. Does
/// nothing on a machine with one CPU, or where the affinity cannot be read or set.
pub struct Pinned(Option<rustix::thread::CpuSet>);

impl Pinned {
    pub fn to_cpu(cpu: usize) -> Pinned {
        let Ok(all) = rustix::thread::sched_getaffinity(None) else {
            return Pinned(None);
        };
        let allowed: Vec<usize> = (0..rustix::thread::CpuSet::MAX_CPU)
            .filter(|&c| all.is_set(c))
            .collect();
        if allowed.len() < 2 {
            return Pinned(None);
        }
        let mut one = rustix::thread::CpuSet::new();
        one.set(allowed[cpu % allowed.len()]);
        match rustix::thread::sched_setaffinity(None, &one) {
            Ok(()) => Pinned(Some(all)),
            Err(_) => Pinned(None),
        }
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        if let Some(all) = &self.0 {
            let _ = rustix::thread::sched_setaffinity(None, all);
        }
    }
}
