//! `Process` and the functions about processes: `current_process`, `parent_process`,
//! `active_children`, `cpu_count`, `exit`.

use std::fmt;
use std::io::Write;
use std::marker::PhantomData;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use once_cell::sync::{Lazy, OnceCell};
use rustix::process::{Pid, PidfdFlags, Signal, WaitId, WaitIdOptions, WaitOptions};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::bootstrap::{self, ChildConfig, Job, Outcome};
use crate::codec::{self, Bytes};
use crate::context::{self, StartMethod};
use crate::error::{Error, Result};
use crate::handle::{self, HandleFd};
use crate::{forkserver, identity, io, sys};

// ----- the per-process registry -----

/// What this process knows about itself and its children. One lock; `fork` holds it so the
/// child finds it consistent.
pub(crate) struct Global {
    name: String,
    identity: Vec<u32>,
    daemon: bool,
    authkey: Vec<u8>,
    parent: Option<ParentProcess>,
    counter: u32,
    children: Vec<Arc<Inner>>,
    /// The read and write ends of the pipe daemonic children watch; only this process holds
    /// the write end.
    lifeline: Option<(OwnedFd, OwnedFd)>,
    pub(crate) forkserver: Option<forkserver::Client>,
    at_exit_registered: bool,
    join_at_exit: bool,
}

static GLOBAL: Lazy<Mutex<Global>> = Lazy::new(|| {
    let mut authkey = vec![0u8; 32];
    if rustix::rand::getrandom(&mut authkey, rustix::rand::GetRandomFlags::empty()).is_err() {
        // Fall back to the clock and pid: still unique per run, though not secret.
        let seed = format!(
            "{:?}{}",
            Instant::now(),
            rustix::process::getpid().as_raw_nonzero()
        );
        authkey = seed.into_bytes();
        authkey.resize(32, 0);
    }
    Mutex::new(Global {
        name: "MainProcess".into(),
        identity: Vec::new(),
        daemon: false,
        authkey,
        parent: None,
        counter: 1,
        children: Vec::new(),
        lifeline: None,
        forkserver: None,
        at_exit_registered: false,
        join_at_exit: true,
    })
});

/// This process's name if the registry is free right now (for a panic hook, which must not
/// wait for a lock).
pub(crate) fn name_if_free() -> Option<String> {
    GLOBAL.try_lock().ok().map(|g| g.name.clone())
}

pub(crate) fn global() -> MutexGuard<'static, Global> {
    GLOBAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Turns this process's registry into a new child's (after fork, spawn or a forkserver fork).
pub(crate) fn become_child(config: ChildConfig) {
    let parent_pidfd = Pid::from_raw(config.parent_pid)
        .and_then(|pid| rustix::process::pidfd_open(pid, PidfdFlags::empty()).ok())
        .map(Arc::new);
    let mut g = global();
    g.name = config.name;
    g.identity = config.identity;
    g.daemon = config.daemon;
    g.authkey = config.authkey.0;
    g.parent = Some(ParentProcess {
        name: config.parent_name,
        pid: config.parent_pid,
        pidfd: parent_pidfd,
    });
    g.counter = 1;
    g.children.clear();
    g.lifeline = None;
    g.forkserver = None;
    g.join_at_exit = config.join_at_exit;
    drop(g);
    // A forked child already has its parent's settings (and must not take their locks, which
    // another thread of the parent may have held at the fork): they come as `None` then.
    if let Some(m) = config.start_method {
        context::set_start_method_force(Some(m));
    }
    if let Some(exe) = config.executable {
        context::set_executable(Some(exe.into()));
    }
}

/// Python's `util._exit_function`: at exit, terminate daemonic children, then join the rest
/// (unless [`set_join_at_exit`]`(false)`), and let the fork server go.
pub(crate) fn exit_function() {
    let (children, join_all, server) = {
        let mut g = global();
        (g.children.clone(), g.join_at_exit, g.forkserver.take())
    };
    let children: Vec<Process> = children.into_iter().map(Process::from_inner).collect();
    for p in &children {
        if p.inner.daemon() && matches!(p.exitcode(), Ok(None)) {
            let _ = p.terminate();
        }
    }
    for p in &children {
        if join_all || p.inner.daemon() {
            let _ = p.join();
        }
    }
    if let Some(server) = server {
        server.shut_down();
    }
}

extern "C" fn at_exit_hook() {
    exit_function();
}

/// Chooses whether this process joins its non-daemonic children when it exits normally
/// (default `true`, as Python does). With `false` they are left running.
pub fn set_join_at_exit(join: bool) {
    global().join_at_exit = join;
}

// ----- Process -----

/// How a started child is watched.
enum Waiter {
    /// Our own child, reaped with `waitpid`. Its pid cannot be reused before we reap it, so
    /// signals and a pidfd (opened only when a sentinel is asked for) are safe.
    Direct(Pid),
    /// A child of the fork server: its pidfd for signals, and a pipe on which the server writes
    /// the exit code when the child ends.
    Forkserver {
        pidfd: OwnedFd,
        status: Arc<OwnedFd>,
    },
}

struct State {
    name: String,
    identity: Vec<u32>,
    daemon: bool,
    authkey: Option<Vec<u8>>,
    method: Option<StartMethod>,
    started: bool,
    closed: bool,
    pid: Option<i32>,
    waiter: Option<Waiter>,
    exitcode: Option<i32>,
    result: Option<OwnedFd>,
}

/// The shared part of a process object (the registry and every handle point at it).
pub(crate) struct Inner {
    state: Mutex<State>,
    sentinel: OnceCell<Arc<OwnedFd>>,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn daemon(&self) -> bool {
        self.lock().daemon
    }

    /// Reaps the child if it has ended, without blocking; returns its exit code if known.
    fn try_reap(&self) -> Result<Option<i32>> {
        let mut st = self.lock();
        if let Some(code) = st.exitcode {
            return Ok(Some(code));
        }
        let code = match &st.waiter {
            None => return Ok(None),
            Some(Waiter::Direct(pid)) => {
                match rustix::process::waitpid(Some(*pid), WaitOptions::NOHANG) {
                    Ok(Some((_, status))) => {
                        if let Some(code) = status.exit_status() {
                            code
                        } else if let Some(sig) = status.terminating_signal() {
                            -sig
                        } else {
                            return Ok(None);
                        }
                    }
                    Ok(None) => return Ok(None),
                    Err(rustix::io::Errno::INTR) => return Ok(None),
                    Err(e) => return Err(e.into()),
                }
            }
            Some(Waiter::Forkserver { status, .. }) => {
                if !io::wait_readable(status.as_fd(), Some(Instant::now()))? {
                    return Ok(None);
                }
                let mut buf = [0u8; 4];
                if io::read_full(status.as_fd(), &mut buf)? != 4 {
                    return Err(Error::Io(std::io::Error::other(
                        "the fork server died before reporting the child's exit code",
                    )));
                }
                i32::from_be_bytes(buf)
            }
        };
        st.exitcode = Some(code);
        Ok(Some(code))
    }

    /// The fd that becomes readable when the child ends: the fork server's status pipe, or a
    /// pidfd opened on first use (for a child already reaped, a pipe at end of file).
    fn sentinel(&self) -> Result<&Arc<OwnedFd>> {
        self.sentinel.get_or_try_init(|| {
            let st = self.lock();
            match (&st.waiter, st.exitcode) {
                (Some(Waiter::Direct(pid)), None) => {
                    // Not reaped (we hold the lock reaping needs), so the pid is still ours.
                    Ok(Arc::new(rustix::process::pidfd_open(
                        *pid,
                        PidfdFlags::empty(),
                    )?))
                }
                (Some(Waiter::Forkserver { status, .. }), _) => Ok(status.clone()),
                (Some(Waiter::Direct(_)), Some(_)) => {
                    let (r, _w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
                    Ok(Arc::new(r))
                }
                (None, _) => Err(Error::InvalidState("process not started".into())),
            }
        })
    }

    /// Blocks until the direct child `pid` has ended, without reaping it (so that every thread
    /// that waits wakes, and the reaping stays with `try_reap`).
    fn wait_exited(pid: Pid) -> Result<()> {
        loop {
            match rustix::process::waitid(
                WaitId::Pid(pid),
                WaitIdOptions::EXITED | WaitIdOptions::NOWAIT,
            ) {
                Ok(_) => return Ok(()),
                Err(rustix::io::Errno::INTR) => {}
                // Reaped meanwhile by another thread of ours: `try_reap` has the code.
                Err(rustix::io::Errno::CHILD) => return Ok(()),
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// A child process running a function.
///
/// Python: `multiprocessing.Process`. Build it with [`Process::new`] (a `fn(A) -> R` and its
/// arguments, runs under every start method) or [`Process::from_closure`] (fork only), adjust
/// it with [`name`](Process::name), [`daemon`](Process::daemon),
/// [`start_method`](Process::start_method), then [`start`](Process::start) and
/// [`join`](Process::join). The child's return value is read with
/// [`join_result`](Process::join_result) (beyond Python).
///
/// Python's attributes map to methods: `p.name` → [`get_name`](Process::get_name),
/// `p.daemon` → [`is_daemon`](Process::is_daemon), `p.authkey` →
/// [`get_authkey`](Process::get_authkey), `p.pid`/`p.ident` → [`pid`](Process::pid),
/// `p.exitcode` → [`exitcode`](Process::exitcode), `p.sentinel` →
/// [`sentinel`](Process::sentinel).
///
/// The arguments move into the process: after `start` the parent no longer holds them (a
/// `Connection` passed to a child is closed in the parent, as Python users usually do by hand);
/// clone first what the parent must keep.
pub struct Process<R = ()> {
    inner: Arc<Inner>,
    target: Mutex<Option<Box<dyn Target>>>,
    _result: PhantomData<fn() -> R>,
}

impl<R> fmt::Debug for Process<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.inner.lock();
        f.debug_struct("Process")
            .field("name", &st.name)
            .field("pid", &st.pid)
            .field("daemon", &st.daemon)
            .field("exitcode", &st.exitcode)
            .finish()
    }
}

/// What a child runs.
trait Target: Send {
    /// Runs in this (forked) process; returns the encoded result.
    fn run(self: Box<Self>) -> Result<Vec<u8>>;
    /// What a spawned or forkserver child needs to run it: trampoline and target offsets, the
    /// encoded arguments and their fds.
    fn job(&self) -> Result<(i64, i64, Vec<u8>, Vec<OwnedFd>)>;
}

struct FnTarget<A, R> {
    f: fn(A) -> R,
    args: A,
}

impl<A, R> Target for FnTarget<A, R>
where
    A: Serialize + DeserializeOwned + Send + 'static,
    R: Serialize + DeserializeOwned + 'static,
{
    fn run(self: Box<Self>) -> Result<Vec<u8>> {
        codec::encode(&(self.f)(self.args))
    }
    fn job(&self) -> Result<(i64, i64, Vec<u8>, Vec<OwnedFd>)> {
        let (args, fds) = handle::collect_handles(|| codec::encode(&self.args));
        let trampoline: sys::Trampoline = sys::trampoline::<A, R>;
        Ok((
            identity::offset_of(trampoline as usize),
            identity::offset_of(self.f as usize),
            args?,
            fds,
        ))
    }
}

struct ClosureTarget<F>(F);

impl<F, R> Target for ClosureTarget<F>
where
    F: FnOnce() -> R + Send + 'static,
    R: Serialize,
{
    fn run(self: Box<Self>) -> Result<Vec<u8>> {
        codec::encode(&(self.0)())
    }
    fn job(&self) -> Result<(i64, i64, Vec<u8>, Vec<OwnedFd>)> {
        Err(Error::ClosureNeedsFork("spawn and forkserver"))
    }
}

impl<R: Serialize + DeserializeOwned + 'static> Process<R> {
    /// A process that will run `target(args)`.
    ///
    /// Python: `Process(target=f, args=(...))`. Works under every start method: under spawn and
    /// forkserver, `args` is serialized (handles such as a `Connection` travel as fds) and `target`
    /// travels as a function identity. Nothing runs until [`start`](Self::start).
    pub fn new<A>(target: fn(A) -> R, args: A) -> Self
    where
        A: Serialize + DeserializeOwned + Send + 'static,
    {
        Self::with_target(Box::new(FnTarget { f: target, args }))
    }

    /// A process that will run a closure: fork only (under spawn or forkserver, `start` fails
    /// with [`Error::ClosureNeedsFork`]).
    ///
    /// Python: `Process(target=lambda: ...)` under fork.
    pub fn from_closure<F>(target: F) -> Self
    where
        F: FnOnce() -> R + Send + 'static,
    {
        Self::with_target(Box::new(ClosureTarget(target)))
    }

    fn with_target(target: Box<dyn Target>) -> Self {
        let (identity, name) = {
            let mut g = global();
            let mut identity = g.identity.clone();
            identity.push(g.counter);
            g.counter += 1;
            let name = format!(
                "Process-{}",
                identity
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(":")
            );
            (identity, name)
        };
        Process {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    name,
                    identity,
                    daemon: false,
                    authkey: None,
                    method: None,
                    started: false,
                    closed: false,
                    pid: None,
                    waiter: None,
                    exitcode: None,
                    result: None,
                }),
                sentinel: OnceCell::new(),
            }),
            target: Mutex::new(Some(target)),
            _result: PhantomData,
        }
    }

    /// Waits for the child to end and returns its return value.
    ///
    /// Beyond Python. Fails with [`Error::ProcessFailed`] (carrying Python's exit code and the
    /// panic message, if any) when the child panicked, called [`exit`] before returning, or was
    /// killed.
    pub fn join_result(&self) -> Result<R> {
        let code = self.join()?;
        let bytes = {
            let st = self.inner.lock();
            match &st.result {
                Some(fd) => read_result_file(fd.as_fd())?,
                None => Vec::new(),
            }
        };
        let failed = |message| Error::ProcessFailed {
            name: self.get_name(),
            exitcode: code,
            message,
        };
        match bootstrap::parse_outcome(&bytes) {
            Outcome::Returned(r) if code == 0 => codec::decode(&r),
            Outcome::Failed(msg) => Err(failed(Some(msg))),
            // A child records nothing for a value that encodes as nil (`()`, `None`), and
            // nothing either when it left through `exit(0)` before returning.
            Outcome::Nothing if code == 0 => codec::decode(&[0xc0])
                .map_err(|_| failed(Some("the child exited without returning a value".into()))),
            _ => Err(failed(None)),
        }
    }

    /// Starts the child. Python: `Process.start()`.
    ///
    /// Errors: started twice or closed ([`Error::InvalidState`]); called in a daemonic process
    /// (Python: "daemonic processes are not allowed to have children"); a closure under
    /// spawn/forkserver ([`Error::ClosureNeedsFork`]); arguments that do not serialize
    /// ([`Error::Codec`]/[`Error::Handle`]); a different executable ([`Error::BinaryMismatch`]);
    /// OS errors.
    pub fn start(&mut self) -> Result<()> {
        sys::keep_constructor();
        {
            let st = self.inner.lock();
            if st.closed {
                return Err(Error::Closed("process object"));
            }
            if st.started {
                return Err(Error::InvalidState("cannot start a process twice".into()));
            }
        }
        if global().daemon {
            return Err(Error::InvalidState(
                "daemonic processes are not allowed to have children".into(),
            ));
        }
        let target = self
            .target
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .ok_or_else(|| Error::InvalidState("cannot start a process twice".into()))?;
        cleanup();
        bootstrap::install_panic_hook();
        let (method, daemon) = {
            let st = self.inner.lock();
            (
                st.method.unwrap_or_else(context::get_start_method),
                st.daemon,
            )
        };
        // Every child gets a result file: a value, or the message of the panic that ended it.
        let result = Some(rustix::fs::memfd_create(
            "mp-result",
            rustix::fs::MemfdFlags::CLOEXEC,
        )?);
        let config = self.child_config();
        flush_stdio();
        let started = match method {
            StartMethod::Fork => start_fork(target, config, result.as_ref(), daemon),
            StartMethod::Spawn | StartMethod::Forkserver => {
                let (trampoline, target_off, args, fds) = match target.job() {
                    Ok(job) => job,
                    Err(e) => {
                        *self.target.get_mut().unwrap_or_else(|e| e.into_inner()) = Some(target);
                        return Err(e);
                    }
                };
                let job = Job {
                    fingerprint: identity::fingerprint()?,
                    trampoline,
                    target: target_off,
                    args: Bytes(args),
                    arg_fds: fds.into_iter().map(HandleFd).collect(),
                    result: result
                        .as_ref()
                        .map(|fd| fd.try_clone())
                        .transpose()?
                        .map(HandleFd),
                    lifeline: if daemon {
                        Some(HandleFd(lifeline_reader()?))
                    } else {
                        None
                    },
                    config,
                };
                drop(target);
                if method == StartMethod::Spawn {
                    start_spawn(job)
                } else {
                    forkserver::start(job).map(|(pid, pidfd, status)| {
                        let status = Arc::new(status);
                        let sentinel = Some(status.clone());
                        (pid, Waiter::Forkserver { pidfd, status }, sentinel)
                    })
                }
            }
        };
        let (pid, waiter, sentinel) = started?;
        {
            let mut st = self.inner.lock();
            st.started = true;
            st.pid = Some(pid);
            st.waiter = Some(waiter);
            st.result = result;
        }
        if let Some(fd) = sentinel {
            let _ = self.inner.sentinel.set(fd);
        }
        let mut g = global();
        g.children.push(self.inner.clone());
        if !g.at_exit_registered {
            g.at_exit_registered = true;
            sys::at_exit(at_exit_hook);
        }
        Ok(())
    }

    fn child_config(&self) -> ChildConfig {
        // Lock order: a process's state is never held while the registry is taken.
        let (name, identity, daemon, authkey) = {
            let st = self.inner.lock();
            (
                st.name.clone(),
                st.identity.clone(),
                st.daemon,
                st.authkey.clone(),
            )
        };
        let g = global();
        ChildConfig {
            name,
            identity,
            daemon,
            authkey: Bytes(authkey.unwrap_or_else(|| g.authkey.clone())),
            parent_pid: rustix::process::getpid().as_raw_nonzero().get(),
            parent_name: g.name.clone(),
            start_method: context::get_start_method_if_set(),
            executable: Some(context::executable().to_string_lossy().into_owned()),
            join_at_exit: true,
        }
    }
}

impl<R> Process<R> {
    fn from_inner(inner: Arc<Inner>) -> Self {
        Process {
            inner,
            target: Mutex::new(None),
            _result: PhantomData,
        }
    }

    fn set(self, f: impl FnOnce(&mut State)) -> Self {
        f(&mut self.inner.lock());
        self
    }

    /// Sets the name (builder). Python: `Process(name=...)` / `p.name = ...`.
    pub fn name(self, name: impl Into<String>) -> Self {
        let name = name.into();
        self.set(|st| st.name = name)
    }

    /// Makes the process daemonic or not (builder); only before `start`.
    ///
    /// Python: `Process(daemon=...)` / `p.daemon = ...`. A daemonic child is terminated when its
    /// parent exits, killed when its parent dies by any means (beyond Python), and may not have
    /// children of its own.
    pub fn daemon(self, daemon: bool) -> Self {
        self.set(|st| st.daemon = daemon)
    }

    /// Sets the child's authentication key (builder). Python: `p.authkey = ...`.
    pub fn authkey(self, key: impl Into<Vec<u8>>) -> Self {
        let key = key.into();
        self.set(|st| st.authkey = Some(key))
    }

    /// Chooses the start method for this process (builder); see also
    /// [`get_context`](crate::get_context).
    pub fn start_method(self, method: StartMethod) -> Self {
        self.set(|st| st.method = Some(method))
    }

    /// Sets the name in place. Python: `p.name = ...`.
    pub fn set_name(&self, name: impl Into<String>) {
        self.inner.lock().name = name.into();
    }

    /// Sets the daemon flag in place; fails once started. Python: `p.daemon = ...`.
    pub fn set_daemon(&self, daemon: bool) -> Result<()> {
        let mut st = self.inner.lock();
        if st.started {
            return Err(Error::InvalidState("process has already started".into()));
        }
        st.daemon = daemon;
        Ok(())
    }

    /// Python: `Process.name`.
    pub fn get_name(&self) -> String {
        self.inner.lock().name.clone()
    }

    /// Python: `Process.daemon`.
    pub fn is_daemon(&self) -> bool {
        self.inner.lock().daemon
    }

    /// The key the child will have (or has): the one set, else this process's.
    /// Python: `Process.authkey`.
    pub fn get_authkey(&self) -> Vec<u8> {
        let key = { self.inner.lock().authkey.clone() };
        key.unwrap_or_else(|| global().authkey.clone())
    }

    fn check_open(&self) -> Result<MutexGuard<'_, State>> {
        let st = self.inner.lock();
        if st.closed {
            return Err(Error::Closed("process object"));
        }
        Ok(st)
    }

    /// The child's pid, `None` before `start`. Python: `Process.pid` / `Process.ident`.
    pub fn pid(&self) -> Result<Option<i32>> {
        Ok(self.check_open()?.pid)
    }

    /// Python's exit code: `None` while running (or before start), `0` after a normal return,
    /// `1` after a panic, `n` after [`exit`]`(n)`, `-N` after signal `N`. Reaps the child if it
    /// ended. Python: `Process.exitcode`.
    pub fn exitcode(&self) -> Result<Option<i32>> {
        drop(self.check_open()?);
        let code = self.inner.try_reap()?;
        if code.is_some() {
            forget_child(&self.inner);
        }
        Ok(code)
    }

    /// Whether the child has started and not yet ended. Python: `Process.is_alive()`.
    pub fn is_alive(&self) -> Result<bool> {
        let started = self.check_open()?.started;
        Ok(started && self.exitcode()?.is_none())
    }

    /// An fd that becomes readable when the child ends (for `poll`/`wait`). Python:
    /// `Process.sentinel`; fails before `start` and after `close`.
    pub fn sentinel(&self) -> Result<BorrowedFd<'_>> {
        drop(self.check_open()?);
        Ok(self.inner.sentinel()?.as_fd())
    }

    /// Waits for the child to end; returns its exit code. Python: `Process.join()`.
    pub fn join(&self) -> Result<i32> {
        match self.join_deadline(None)? {
            Some(code) => Ok(code),
            None => Err(Error::Timeout),
        }
    }

    /// Waits at most `timeout`; returns the exit code, or `None` if the child still runs.
    /// Python: `Process.join(timeout)`.
    pub fn join_timeout(&self, timeout: Duration) -> Result<Option<i32>> {
        self.join_deadline(io::deadline_after(Some(timeout)))
    }

    /// [`join_timeout`](Self::join_timeout) with a deadline.
    pub fn join_deadline(&self, deadline: Option<Instant>) -> Result<Option<i32>> {
        {
            let st = self.check_open()?;
            if !st.started {
                return Err(Error::InvalidState(
                    "can only join a started process".into(),
                ));
            }
        }
        let direct = match &self.inner.lock().waiter {
            Some(Waiter::Direct(pid)) => Some(*pid),
            _ => None,
        };
        if let (Some(pid), None) = (direct, deadline) {
            // No deadline: block in waitid, no pidfd needed.
            loop {
                if let Some(code) = self.inner.try_reap()? {
                    forget_child(&self.inner);
                    return Ok(Some(code));
                }
                Inner::wait_exited(pid)?;
            }
        }
        let sentinel = self.inner.sentinel()?.clone();
        loop {
            if let Some(code) = self.inner.try_reap()? {
                forget_child(&self.inner);
                return Ok(Some(code));
            }
            if !io::wait_readable(sentinel.as_fd(), deadline)? {
                let code = self.inner.try_reap()?;
                if code.is_some() {
                    forget_child(&self.inner);
                }
                return Ok(code);
            }
        }
    }

    fn signal(&self, sig: Signal) -> Result<()> {
        let st = self.check_open()?;
        if st.exitcode.is_some() {
            return Ok(());
        }
        let sent = match &st.waiter {
            None => return Ok(()),
            // Not reaped (the lock is held and no exit code is known): the pid is ours.
            Some(Waiter::Direct(pid)) => rustix::process::kill_process(*pid, sig),
            Some(Waiter::Forkserver { pidfd, .. }) => {
                rustix::process::pidfd_send_signal(pidfd, sig)
            }
        };
        match sent {
            Ok(()) | Err(rustix::io::Errno::SRCH) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Sends SIGTERM (the exit code becomes `-15`). Python: `Process.terminate()`.
    pub fn terminate(&self) -> Result<()> {
        self.signal(Signal::TERM)
    }

    /// Sends SIGKILL (the exit code becomes `-9`). Python: `Process.kill()`.
    pub fn kill(&self) -> Result<()> {
        self.signal(Signal::KILL)
    }

    /// Releases the process object; fails while the child runs. Later calls of most methods
    /// fail with [`Error::Closed`]. Python: `Process.close()`.
    pub fn close(&self) -> Result<()> {
        if self.inner.lock().closed {
            return Ok(());
        }
        if self.is_alive()? {
            return Err(Error::InvalidState(
                "cannot close a process while it is still running; join or terminate it first"
                    .into(),
            ));
        }
        {
            let mut st = self.inner.lock();
            st.closed = true;
            st.result = None;
        }
        forget_child(&self.inner);
        Ok(())
    }
}

/// Drops an ended child from the registry (Python: `_children.discard(self)`), so its fds go
/// with its last handle.
fn forget_child(inner: &Arc<Inner>) {
    global().children.retain(|c| !Arc::ptr_eq(c, inner));
}

fn read_result_file(fd: BorrowedFd<'_>) -> Result<Vec<u8>> {
    let size = rustix::fs::fstat(fd)?.st_size.max(0) as usize;
    let mut buf = vec![0u8; size];
    let mut done = 0;
    while done < size {
        match rustix::io::pread(fd, &mut buf[done..], done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    buf.truncate(done);
    Ok(buf)
}

/// Reaps children that have ended and forgets them (Python: `process._cleanup()`).
fn cleanup() {
    let mut g = global();
    g.children.retain(|c| !matches!(c.try_reap(), Ok(Some(_))));
}

fn flush_stdio() {
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
}

/// The read end of this process's lifeline pipe (a fresh duplicate).
fn lifeline_reader() -> Result<OwnedFd> {
    let mut g = global();
    lifeline_reader_locked(&mut g)
}

fn lifeline_reader_locked(g: &mut Global) -> Result<OwnedFd> {
    if g.lifeline.is_none() {
        g.lifeline = Some(rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?);
    }
    match &g.lifeline {
        Some((r, _)) => Ok(r.try_clone()?),
        None => Err(Error::InvalidState("no lifeline".into())),
    }
}

fn warn_if_threaded() {
    if !log::log_enabled!(log::Level::Warn) {
        return;
    }
    let threads = std::fs::read_dir("/proc/self/task")
        .map(|d| d.count())
        .unwrap_or(1);
    if threads > 1 {
        log::warn!(
            "this process has {threads} threads; a forked child inherits only the forking one, and a \
             lock another thread held stays locked in the child: prefer the forkserver or spawn \
             start method"
        );
    }
}

fn start_fork(
    target: Box<dyn Target>,
    mut config: ChildConfig,
    result: Option<&OwnedFd>,
    daemon: bool,
) -> Result<Started> {
    warn_if_threaded();
    config.start_method = None;
    config.executable = None;
    // Hold the stdio locks and the registry across the fork, so the child finds them
    // consistent (released) even if another thread was printing or starting a process.
    let stdout = std::io::stdout().lock();
    let stderr = std::io::stderr().lock();
    let mut g = global();
    let lifeline = if daemon {
        Some(lifeline_reader_locked(&mut g)?)
    } else {
        None
    };
    match sys::fork()? {
        sys::Forked::Child => {
            // Only this thread exists now. Close what only the parent may hold (the lifeline's
            // write end, the fork server's socket), release the registry, and become the child.
            g.lifeline = None;
            g.forkserver = None;
            drop(g);
            drop(stderr);
            drop(stdout);
            let result = result.and_then(|fd| fd.try_clone().ok());
            bootstrap::child_main(config, result, lifeline, move || target.run())
        }
        sys::Forked::Parent(pid) => {
            drop(g);
            drop(stderr);
            drop(stdout);
            drop(target);
            Ok((pid.as_raw_nonzero().get(), Waiter::Direct(pid), None))
        }
    }
}

fn start_spawn(job: Job) -> Result<Started> {
    let (pid, pidfd, _conn) = bootstrap::launch(&bootstrap::Hello::Run(job))?;
    Ok((
        pid.as_raw_nonzero().get(),
        Waiter::Direct(pid),
        Some(Arc::new(pidfd)),
    ))
}

/// A started child: its pid, how to wait for it, and its sentinel if one is already open.
type Started = (i32, Waiter, Option<Arc<OwnedFd>>);

// ----- functions about processes -----

/// The process running this code: name, pid, daemon flag, authkey.
///
/// Python: `multiprocessing.current_process()` (in the main process its name is
/// `"MainProcess"`; in a child, the name its `Process` had).
pub fn current_process() -> CurrentProcess {
    CurrentProcess { _private: () }
}

/// A handle on this process; see [`current_process`].
#[derive(Debug)]
pub struct CurrentProcess {
    _private: (),
}

impl CurrentProcess {
    /// Python: `current_process().name`.
    pub fn name(&self) -> String {
        global().name.clone()
    }
    /// Python: `current_process().name = ...`.
    pub fn set_name(&self, name: impl Into<String>) {
        global().name = name.into();
    }
    /// Python: `current_process().pid`.
    pub fn pid(&self) -> i32 {
        process_id() as i32
    }
    /// Python: `current_process().daemon`.
    pub fn daemon(&self) -> bool {
        global().daemon
    }
    /// Python: `current_process().authkey`: 32 random bytes in the main process, inherited by
    /// children.
    pub fn authkey(&self) -> Vec<u8> {
        global().authkey.clone()
    }
    /// Python: `current_process().authkey = ...`.
    pub fn set_authkey(&self, key: impl Into<Vec<u8>>) {
        global().authkey = key.into();
    }
    /// Python: `current_process()._identity`: empty in the main process, `[1]` in `Process-1`,
    /// `[1, 2]` in `Process-1:2`.
    pub fn identity(&self) -> Vec<u32> {
        global().identity.clone()
    }
}

/// The parent of this process as a child of ours knows it.
///
/// Python: the object `multiprocessing.parent_process()` returns.
#[derive(Clone, Debug)]
pub struct ParentProcess {
    name: String,
    pid: i32,
    pidfd: Option<Arc<OwnedFd>>,
}

impl ParentProcess {
    /// Python: `parent_process().name`.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Python: `parent_process().pid`.
    pub fn pid(&self) -> i32 {
        self.pid
    }
    /// Whether the parent still runs. Python: `parent_process().is_alive()`.
    pub fn is_alive(&self) -> bool {
        match &self.pidfd {
            Some(fd) => matches!(
                io::wait_readable(fd.as_fd(), Some(Instant::now())),
                Ok(false)
            ),
            None => false,
        }
    }
    /// Waits up to `timeout` for the parent to end; returns whether it ended.
    /// Python: `parent_process().join(timeout)`.
    pub fn join_timeout(&self, timeout: Duration) -> Result<bool> {
        match &self.pidfd {
            Some(fd) => io::wait_readable(fd.as_fd(), io::deadline_after(Some(timeout))),
            None => Ok(true),
        }
    }
}

/// The parent process, or `None` in the main process. Python: `multiprocessing.parent_process()`.
pub fn parent_process() -> Option<ParentProcess> {
    global().parent.clone()
}

/// The children of this process that are still running; reaps those that ended.
///
/// Python: `multiprocessing.active_children()`.
pub fn active_children() -> Vec<Process> {
    cleanup();
    global()
        .children
        .iter()
        .cloned()
        .map(Process::from_inner)
        .collect()
}

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
