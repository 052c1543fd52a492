//! OS and memory primitives that need `unsafe`: `fork`, `_exit`, a function pointer rebuilt
//! from an address, `mmap` of shared segments, the cached pid and its fork hook, and a few libc
//! calls rustix lacks. Nothing here knows the types above it; the other `unsafe` of the crate
//! is in `trampoline` (calling a function by identity), `constructor` (the `.init_array` entry)
//! and `view` (the typed view of a shared segment).
#![allow(unsafe_code)]

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::io::Errno;

/// What [`fork`] returned in this process.
pub(crate) enum Forked {
    /// We are the new child.
    Child,
    /// We are the parent; the child has this pid.
    Parent(rustix::process::Pid),
}

/// `fork()`—Creates a child process that is a copy of this one.
///
/// Uses `libc::fork` (not a raw syscall) so that libc's atfork handlers run and malloc's locks
/// are consistent in the child.
///
/// What the child may do: it runs user code, as CPython's forked children do. Only the thread that
/// called `fork` exists in the child, so a lock another thread held at the moment of the fork
/// stays locked there forever. The callers therefore hold this crate's own global lock across
/// the call (so it is consistent in the child), flush stdio before it, and document the hazard
/// of forking a multithreaded parent.
pub(crate) fn fork() -> std::io::Result<Forked> {
    // SAFETY: fork has no memory-safety preconditions of its own; the hazards for the child
    // (other threads' locks) are described above and handled by the callers.
    let pid = unsafe { libc::fork() };
    match pid {
        -1 => Err(std::io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        // A positive pid from fork is always a valid pid.
        pid => Ok(Forked::Parent(
            rustix::process::Pid::from_raw(pid)
                .ok_or_else(|| std::io::Error::other("fork returned an invalid pid"))?,
        )),
    }
}

/// Returns the allocator's free memory to the OS before a fork (glibc's `malloc_trim(0)`; a
/// no-op elsewhere).
///
/// Every page of the parent that is present at the fork is shared copy-on-write with the
/// child, so the first write to it on either side afterwards is a fault that copies the page
/// and, in a parent with threads on other CPUs, flushes their TLBs by interrupt. Freed heap
/// memory is exactly what both sides write first (the allocator hands it out again), and it
/// holds nothing: released before the fork, it is fresh zero pages for each side instead. On
/// this project's 2-CPU VM this took 15% off `Pool(2).map` over 100k items in a new pool.
pub(crate) fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only gives free memory of glibc's allocator back to the kernel,
    // under the allocator's own locks; it has no preconditions and may run on any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Linux's `F_SETSIG` (`asm-generic/fcntl.h`), which the libc crate does not define.
const F_SETSIG: libc::c_int = 10;

/// Arranges for the kernel to SIGKILL this process when `fd`, the read end of a pipe, is hung
/// up (its last write end closed): `fcntl` `F_SETOWN` (this process), `F_SETSIG` (`SIGKILL`)
/// and `O_ASYNC`, which make the pipe's hangup notification (normally a `SIGIO`) that signal.
///
/// This is how a daemonic child dies with its parent without a thread of its own waiting on
/// the pipe: a thread cost each worker a clone and a stack at start, a wakeup at exit, and
/// TLB-flush interrupts for its copy-on-write faults while the thread's CPU still held the
/// address space. A hangup that happened before this call is not signalled: the caller checks
/// for it afterwards.
pub(crate) fn kill_me_at_hangup(fd: BorrowedFd<'_>) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let raw = fd.as_raw_fd();
    let check = |r: libc::c_int| {
        if r == -1 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(())
        }
    };
    // SAFETY: fcntl on an fd we borrow (so open for the call), with integer arguments only;
    // F_SETOWN and F_SETSIG (which rustix lacks) touch no memory of ours.
    unsafe {
        check(libc::fcntl(raw, libc::F_SETOWN, libc::getpid()))?;
        check(libc::fcntl(raw, F_SETSIG, libc::SIGKILL))?;
    }
    let flags = rustix::fs::fcntl_getfl(fd)?;
    rustix::fs::fcntl_setfl(fd, flags | rustix::fs::OFlags::ASYNC)?;
    Ok(())
}

/// `_exit(code)`—Ends this process at once, without running destructors or atexit handlers.
pub(crate) fn exit_immediately(code: i32) -> ! {
    // SAFETY: _exit is always safe to call; it never returns.
    unsafe { libc::_exit(code) }
}

/// Rebuilds a function pointer of type `F` from its address.
///
/// # Safety
/// `addr` must be the address of a function of exactly type `F` in this binary (the function
/// identity check guarantees the sender is this binary, and the sender took `addr` from an `F`).
pub(crate) unsafe fn fn_from_addr<F: Copy>(addr: usize) -> F {
    const { assert!(std::mem::size_of::<F>() == std::mem::size_of::<usize>()) };
    // SAFETY: sizes are equal (checked above) and, by this function's contract, the bits are a
    // valid `F`.
    unsafe { std::mem::transmute_copy::<usize, F>(&addr) }
}

/// Reads at most `want` bytes from `fd` into `buf`'s spare capacity, extending its length by
/// what was read. `buf` must have spare capacity.
pub(crate) fn read_into_spare(
    fd: BorrowedFd<'_>,
    buf: &mut Vec<u8>,
    want: usize,
) -> Result<usize, Errno> {
    let spare = buf.spare_capacity_mut();
    let take = spare.len().min(want);
    let (init, _) = rustix::io::read(fd, &mut spare[..take])?;
    let n = init.len();
    // SAFETY: rustix's read initialized the first `n` bytes of the spare capacity, and
    // `len + n <= capacity`.
    unsafe { buf.set_len(buf.len() + n) };
    Ok(n)
}

/// `sysconf(_SC_NPROCESSORS_ONLN)`, what Python's `os.cpu_count()` reads.
pub(crate) fn online_cpus() -> Option<usize> {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    usize::try_from(n).ok().filter(|&n| n > 0)
}

/// Ignores `SIGPIPE`, as the Rust runtime does before `main` (a bootstrapped child runs before
/// that runtime setup).
pub(crate) fn ignore_sigpipe() {
    // SAFETY: setting SIGPIPE's disposition to SIG_IGN installs no handler code.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
}

/// Ignores `SIGINT`: the fork server's (a Ctrl-C in the terminal reaches the whole process
/// group, and the server must outlive it to serve its parent, as CPython's does).
pub(crate) fn ignore_sigint() {
    // SAFETY: setting SIGINT's disposition to SIG_IGN installs no handler code.
    unsafe { libc::signal(libc::SIGINT, libc::SIG_IGN) };
}

/// Restores the default `SIGINT` disposition (in a child the fork server forks).
pub(crate) fn default_sigint() {
    // SAFETY: setting SIGINT's disposition to SIG_DFL installs no handler code.
    unsafe { libc::signal(libc::SIGINT, libc::SIG_DFL) };
}

/// Restores the default `SIGCHLD` disposition (a parent that ignores it would otherwise pass
/// that on, and its children's exit statuses would be discarded by the kernel).
pub(crate) fn default_sigchld() {
    // SAFETY: setting SIGCHLD's disposition to SIG_DFL installs no handler code.
    unsafe { libc::signal(libc::SIGCHLD, libc::SIG_DFL) };
}

/// Registers `f` to run at normal process exit (after `main` returns or `std::process::exit`).
pub(crate) fn at_exit(f: extern "C" fn()) {
    // SAFETY: `f` is a plain function with C ABI; atexit only stores it.
    unsafe { libc::atexit(f) };
}

/// Duplicates `fd` onto fd number `target` (`dup2`), replacing whatever `target` was.
pub(crate) fn dup_onto(fd: BorrowedFd<'_>, target: i32) -> std::io::Result<()> {
    // SAFETY: dup2 only manipulates the fd table; replacing `target` is the caller's intent and
    // `target` is one of the standard streams, which no Rust object owns uniquely.
    let r = unsafe { libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&fd), target) };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Takes ownership of standard input's fd 0 as an `OwnedFd` (the bootstrap socket of a spawned
/// child arrives there); a duplicate is returned and fd 0 is pointed at `/dev/null`.
pub(crate) fn take_stdin() -> std::io::Result<OwnedFd> {
    // SAFETY: fd 0 is open for the lifetime of this borrow (we only duplicate it).
    let stdin = unsafe { BorrowedFd::borrow_raw(0) };
    let owned = rustix::io::fcntl_dupfd_cloexec(stdin, 3)?;
    let null = std::fs::File::open("/dev/null")?;
    dup_onto(null.as_fd(), 0)?;
    Ok(owned)
}

/// A `MAP_SHARED` read-write mapping of `len` bytes of `fd`.
pub(crate) fn map_shared(fd: BorrowedFd<'_>, len: usize) -> std::io::Result<memmap2::MmapRaw> {
    let file = std::fs::File::from(fd.try_clone_to_owned()?);
    memmap2::MmapOptions::new().len(len).map_raw(&file)
}

/// A private anonymous read-write mapping of `len` bytes (`len > 0`) that a child forked later
/// sees zero-filled (`MADV_WIPEONFORK`, Linux 4.14; on an older kernel the child sees a copy,
/// as of any other memory). A fork then leaves this process's pages of it writable, so writing
/// them after a fork costs no copy-on-write fault (see `crate::wirebuf`).
pub(crate) fn map_fork_private(len: usize) -> std::io::Result<memmap2::MmapMut> {
    let map = memmap2::MmapOptions::new().len(len).map_anon()?;
    // SAFETY: the range is exactly the mapping just made, which nothing else refers to yet.
    // MADV_WIPEONFORK changes no byte of this process's view of it; it only makes a child forked
    // later see zeros there instead of a copy, and the mapping holds plain bytes, for which
    // zeros are as valid as any other value.
    let advised = unsafe {
        rustix::mm::madvise(
            map.as_ptr().cast_mut().cast(),
            map.len(),
            rustix::mm::Advice::LinuxWipeOnFork,
        )
    };
    // An older kernel refuses the advice (EINVAL): the mapping works all the same.
    let _ = advised;
    Ok(map)
}

/// Maps every whole page of `room` writable at once (`MADV_POPULATE_WRITE`, Linux 5.14), so
/// that filling it then takes no page fault per page; does nothing where the kernel refuses.
pub(crate) fn prefault_writable<T>(room: &mut [std::mem::MaybeUninit<T>]) {
    let page = rustix::param::page_size();
    let start = room.as_mut_ptr() as usize;
    let end = start + std::mem::size_of_val(room);
    let first = start.next_multiple_of(page);
    let last = end / page * page;
    if last <= first {
        return;
    }
    // SAFETY: `first..last` lies within `room`, memory this process owns and that is borrowed
    // mutably here, so nothing else reads or writes it meanwhile. MADV_POPULATE_WRITE fills in
    // page tables as a write to each page would, but writes no byte: no value changes.
    let populated = unsafe {
        rustix::mm::madvise(
            first as *mut std::ffi::c_void,
            last - first,
            rustix::mm::Advice::LinuxPopulateWrite,
        )
    };
    // An older kernel refuses the advice (EINVAL): the pages then fault in as they are written.
    let _ = populated;
}

static PID: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
static HOOKED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

extern "C" fn forget_pid_in_child() {
    PID.store(0, std::sync::atomic::Ordering::Relaxed);
    // The threads that held the right to spin stayed in the parent.
    crate::spin::forget_spinners_in_child();
}

/// Registers the hook that clears the cached pid in every child forked through libc.
///
/// The constructor calls it before `main`, while the process has one thread. Registering it
/// lazily under a `Once` would hang forked children: `pthread_atfork` waits while another
/// thread is inside `fork`, and a child forked at that moment would inherit the `Once`
/// half-run.
pub(crate) fn register_fork_hook() {
    if !HOOKED.swap(true, std::sync::atomic::Ordering::AcqRel) {
        // SAFETY: the child handler only stores to atomics, which is async-signal-safe and
        // valid in a freshly forked child.
        unsafe { libc::pthread_atfork(None, None, Some(forget_pid_in_child)) };
    }
}

/// This process's pid, cached; the fork hook clears the cache in every child.
#[inline]
pub(crate) fn cached_pid() -> u32 {
    match PID.load(std::sync::atomic::Ordering::Relaxed) {
        0 => cached_pid_slow(),
        pid => pid,
    }
}

#[cold]
fn cached_pid_slow() -> u32 {
    crate::constructor::keep_constructor();
    register_fork_hook();
    let pid = rustix::process::getpid().as_raw_nonzero().get() as u32;
    PID.store(pid, std::sync::atomic::Ordering::Relaxed);
    pid
}
