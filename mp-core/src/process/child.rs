//! `Process`: a child process running a function, its builder and its methods (start, join,
//! exit code, signals, close).

use std::fmt;
use std::marker::PhantomData;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use once_cell::sync::OnceCell;
use rustix::process::Signal;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::reap::{Inner, State, Waiter};
use super::registry::{cleanup, forget_child, global};
use super::start::{flush_stdio, lifeline_reader, start_fork, start_spawn};
use super::target::{ClosureTarget, FnTarget, Target};
use crate::bootstrap::{self, ChildConfig, Job, Outcome};
use crate::codec::{self, Bytes};
use crate::context::{self, StartMethod};
use crate::deadline::Deadline;
use crate::error::{Error, Result};
use crate::handle::HandleFd;
use crate::{forkserver, identity, io};

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
    pub(super) inner: Arc<Inner>,
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
        let (identity, name, daemon) = {
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
            // Python: `daemon` defaults to the creating process's own flag.
            (identity, name, g.daemon)
        };
        Process {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    name,
                    identity,
                    daemon,
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
    /// panic message, if any) when the child panicked, called [`exit`](super::exit) before
    /// returning, or was killed.
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
        crate::constructor::keep_constructor();
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
        let config = self.child_config(method);
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
                        // The pidfd is the sentinel: it is readable once the child has ended,
                        // whether or not the server is there to report it.
                        let pidfd = Arc::new(pidfd);
                        let sentinel = Some(pidfd.clone());
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
        global().children.push(self.inner.clone());
        super::registry::ensure_at_exit();
        Ok(())
    }

    /// What the child needs to know; `method` is the one starting it, which the child reports
    /// as its own (Python: a context's child's `get_start_method()`).
    fn child_config(&self, method: StartMethod) -> ChildConfig {
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
            start_method: Some(method),
            executable: Some(context::executable().to_string_lossy().into_owned()),
            join_at_exit: true,
        }
    }
}

impl<R> Process<R> {
    pub(super) fn from_inner(inner: Arc<Inner>) -> Self {
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
    /// `1` after a panic, `n` after [`exit`](super::exit)`(n)`, `-N` after signal `N`. Reaps the
    /// child if it ended. Python: `Process.exitcode`.
    ///
    /// A forkserver child whose fork server died (killed) while it ran still reports its code
    /// when it ends through this library (a return, a panic, `exit(n)`); one that then dies of
    /// a signal, or leaves through `_exit` in foreign code, has nobody left to see how, and
    /// reports `255`, as CPython does.
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
        match self.join_until(Deadline::NEVER)? {
            Some(code) => Ok(code),
            None => Err(Error::Timeout),
        }
    }

    /// Waits at most `timeout`; returns the exit code, or `None` if the child still runs.
    /// Python: `Process.join(timeout)`.
    pub fn join_timeout(&self, timeout: Duration) -> Result<Option<i32>> {
        self.join_until(Deadline::after(timeout))
    }

    /// [`join_timeout`](Self::join_timeout) with a deadline.
    pub fn join_deadline(&self, deadline: impl Into<Deadline>) -> Result<Option<i32>> {
        self.join_until(deadline.into())
    }

    fn join_until(&self, deadline: Deadline) -> Result<Option<i32>> {
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
        if let (Some(pid), true) = (direct, deadline.is_never()) {
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
