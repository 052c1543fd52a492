//! [`Pool`] and [`PoolBuilder`]: the caller's side.

use std::collections::VecDeque;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{JoinHandle, ThreadId};
use std::time::Duration;

use mp_core::wirebuf::OwnedBytes;
use mp_core::{Connection, Context, Deadline, Function, Process, StartMethod};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::imap::{IMapIterator, IMapUnorderedIterator, ImapCore};
use crate::result::{AsyncResult, Callbacks, MapResult, MapSink, OneSink, Sink};
use crate::supervisor::{Spawn, Supervisor, Worker};
use crate::worker::{
    chunk_capacity, encode_chunk, encode_chunk_into, runner, worker_main, Fallible, InitOutcome,
    Kind, Plain, RunOutput, Runner, Star2, WorkerArgs,
};

/// A task waiting in the pool's queue or held by a worker.
pub(crate) struct Task {
    pub(crate) id: u64,
    pub(crate) runner: Function<Runner>,
    /// A map's chunk in memory a fork does not share, when it is large (see
    /// [`mp_core::wirebuf`]); on the heap otherwise.
    pub(crate) payload: OwnedBytes,
    pub(crate) sink: Arc<dyn Sink>,
    pub(crate) index: usize,
    pub(crate) limit: Option<Duration>,
}

/// The pool's state.
pub(crate) enum Status {
    Running,
    Closed,
    Terminating,
    Broken(Error),
}

pub(crate) struct State {
    pub(crate) status: Status,
    pub(crate) queue: VecDeque<Task>,
    /// Tasks to cancel that were not in the queue (a worker holds them).
    pub(crate) cancels: Vec<u64>,
    /// The supervisor is (about to be) asleep in its poll: wake it with the eventfd.
    pub(crate) sleeping: bool,
    /// Open `imap` iterators still feeding tasks (a closed pool waits for them).
    pub(crate) streams: usize,
    /// The supervisor has ended: every worker is reaped, or told to stop and in `stopping`.
    pub(crate) finished: bool,
    /// The pids of the current workers.
    pub(crate) pids: Vec<i32>,
    /// Workers the supervisor told to stop (the pool was closed and drained) and left for
    /// [`Pool::join`] to reap: their exits wake the joining thread itself, not the supervisor
    /// and then the joining thread, one hand-off fewer on the way out.
    pub(crate) stopping: Vec<Arc<Process<()>>>,
}

/// What the callers and the supervisor share.
pub(crate) struct Shared {
    state: Mutex<State>,
    finished_cv: Condvar,
    wake: OwnedFd,
    next_id: AtomicU64,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn wake_fd(&self) -> BorrowedFd<'_> {
        self.wake.as_fd()
    }

    fn notify(&self) {
        let _ = rustix::io::write(&self.wake, &1u64.to_ne_bytes());
    }

    pub(crate) fn drain_wake(&self) {
        let mut buf = [0u8; 8];
        let _ = rustix::io::read(&self.wake, &mut buf);
    }

    /// Wakes the supervisor if it sleeps (call with the state locked, notify after unlocking).
    fn wake_locked(st: &mut State) -> bool {
        std::mem::replace(&mut st.sleeping, false)
    }

    /// Queues `tasks`; `stream` tasks (of an open `imap`) are also accepted after `close`.
    pub(crate) fn submit(&self, tasks: Vec<Task>, stream: bool) -> Result<()> {
        let mut st = self.lock();
        match &st.status {
            Status::Running => {}
            Status::Closed if stream => {}
            Status::Broken(e) => return Err(e.clone()),
            Status::Terminating if stream => return Err(Error::Terminated),
            _ => return Err(Error::NotRunning),
        }
        st.queue.extend(tasks);
        let wake = Self::wake_locked(&mut st);
        drop(st);
        if wake {
            self.notify();
        }
        Ok(())
    }

    /// Opens an `imap` stream.
    pub(crate) fn open_stream(&self) -> Result<()> {
        let mut st = self.lock();
        match &st.status {
            Status::Running => {
                st.streams += 1;
                Ok(())
            }
            Status::Broken(e) => Err(e.clone()),
            _ => Err(Error::NotRunning),
        }
    }

    /// Closes an `imap` stream (its input is exhausted or the iterator is gone).
    pub(crate) fn close_stream(&self) {
        let mut st = self.lock();
        st.streams = st.streams.saturating_sub(1);
        let wake = Self::wake_locked(&mut st);
        drop(st);
        if wake {
            self.notify();
        }
    }

    /// Cancels task `id`: removed from the queue at once, or the supervisor is told.
    pub(crate) fn cancel(&self, id: u64) {
        let mut st = self.lock();
        if let Some(pos) = st.queue.iter().position(|t| t.id == id) {
            let task = st.queue.remove(pos);
            drop(st);
            if let Some(t) = task {
                t.sink.deliver(t.index, Err(Error::Cancelled));
            }
            return;
        }
        if st.finished {
            return;
        }
        st.cancels.push(id);
        let wake = Self::wake_locked(&mut st);
        drop(st);
        if wake {
            self.notify();
        }
    }

    /// The pool cannot go on (an initializer failed): everything queued fails with `e`.
    pub(crate) fn set_broken(&self, e: Error) {
        let mut st = self.lock();
        if matches!(st.status, Status::Broken(_)) {
            return;
        }
        st.status = Status::Broken(e.clone());
        let queued: Vec<Task> = st.queue.drain(..).collect();
        drop(st);
        for t in queued {
            t.sink.deliver(t.index, Err(e.clone()));
        }
    }

    /// The supervisor has ended.
    pub(crate) fn finish(&self) {
        self.lock().finished = true;
        self.finished_cv.notify_all();
    }

    /// Reaps the workers the supervisor left stopping (killed first when `kill`), by
    /// `deadline`; `false` if one is still running then. Each caller waits for every one of
    /// them itself (a `Process` may be joined from several threads at once, and one reaped
    /// gives its exit code again), so a second `join` returns no sooner than the first.
    fn reap_stopping(&self, deadline: Deadline, kill: bool) -> bool {
        let stopping: Vec<Arc<Process<()>>> = self.lock().stopping.clone();
        if kill {
            for p in &stopping {
                let _ = p.kill();
            }
        }
        for p in &stopping {
            match p.join_deadline(deadline) {
                Ok(None) => return false,
                // Reaped, or not ours to wait for any more (an error of the wait itself).
                Ok(Some(_)) | Err(_) => self.lock().stopping.retain(|q| !Arc::ptr_eq(q, p)),
            }
        }
        true
    }

    fn wait_finished(&self, deadline: Deadline) -> bool {
        let mut st = self.lock();
        while !st.finished {
            let timeout = match deadline.remaining() {
                None => Duration::from_secs(3600),
                Some(left) if left.is_zero() => return false,
                Some(left) => left,
            };
            st = self
                .finished_cv
                .wait_timeout(st, timeout)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }
}

/// What starts workers: the context, the per-worker limits and the initializer.
#[derive(Clone, Copy)]
struct SpawnConfig {
    ctx: Context,
    max_tasks: Option<u64>,
    max_memory: Option<u64>,
}

type SpawnFactory = Box<dyn FnOnce(SpawnConfig) -> Spawn + Send>;

/// An initializer and its arguments, as the builder holds them.
type InitFn<A, R> = (fn(A) -> R, A);

fn spawner<A, R>(cfg: SpawnConfig, init: Option<InitFn<A, R>>) -> Spawn
where
    A: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
    R: InitOutcome,
{
    Arc::new(move |conn: Connection, no: usize| {
        let args = WorkerArgs {
            conn,
            init: init.as_ref().map(|(f, a)| (Function::new(*f), a.clone())),
            max_tasks: cfg.max_tasks,
            max_memory: cfg.max_memory,
        };
        let kind = match cfg.ctx.get_start_method() {
            StartMethod::Fork => "Fork",
            StartMethod::Spawn => "Spawn",
            StartMethod::Forkserver => "Forkserver",
        };
        let mut p = cfg
            .ctx
            .process(worker_main::<A, R>, args)
            .name(format!("{kind}PoolWorker-{no}"))
            .daemon(true);
        p.start()?;
        Ok(p)
    })
}

/// Builds a [`Pool`]. Python: the arguments of `multiprocessing.Pool(processes, initializer,
/// initargs, maxtasksperchild, context)`, plus time limits, a memory cap and the `imap`
/// buffer size (beyond Python).
#[must_use = "a builder does nothing until build()"]
pub struct PoolBuilder {
    processes: Option<usize>,
    method: Option<StartMethod>,
    maxtasksperchild: Option<u64>,
    max_memory: Option<u64>,
    time_limit: Option<Duration>,
    buffersize: Option<usize>,
    init: Option<SpawnFactory>,
}

impl std::fmt::Debug for PoolBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolBuilder")
            .field("processes", &self.processes)
            .field("method", &self.method)
            .field("maxtasksperchild", &self.maxtasksperchild)
            .field("max_memory", &self.max_memory)
            .field("time_limit", &self.time_limit)
            .field("buffersize", &self.buffersize)
            .field("initializer", &self.init.is_some())
            .finish()
    }
}

impl PoolBuilder {
    /// How many worker processes (Python's `processes`; default [`mp_core::cpu_count`]).
    /// `0` makes [`build`](Self::build) fail with [`Error::InvalidArgument`].
    pub fn processes(mut self, n: usize) -> Self {
        self.processes = Some(n);
        self
    }

    /// The start method of the workers (Python's `context=get_context(method)`); default:
    /// the program's start method.
    pub fn start_method(mut self, method: StartMethod) -> Self {
        self.method = Some(method);
        self
    }

    /// The workers' context (Python's `context`).
    pub fn context(self, ctx: Context) -> Self {
        self.start_method(ctx.get_start_method())
    }

    /// Runs `f(args)` in each worker when it starts (Python's `initializer` and `initargs`).
    ///
    /// `f` returns `()` or `Result<(), E>` (`E: Display`); a panic or an `Err` makes
    /// [`build`](Self::build) fail with [`Error::Initializer`] (or, for a replacement worker,
    /// the pool's next call), instead of respawning workers forever as CPython does
    /// (gh-87472). `args` is cloned for each worker; it may hold handles (a `Queue`, a `Lock`,
    /// a `Connection`...), which is how workers get them (as in Python).
    pub fn initializer<A, R>(mut self, f: fn(A) -> R, args: A) -> Self
    where
        A: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        R: InitOutcome,
    {
        self.init = Some(Box::new(move |cfg| spawner(cfg, Some((f, args)))));
        self
    }

    /// A worker is replaced after `n` tasks (a map's chunk counts as one task, as in CPython).
    /// Python's `maxtasksperchild`; `0` makes [`build`](Self::build) fail.
    pub fn maxtasksperchild(mut self, n: u64) -> Self {
        self.maxtasksperchild = Some(n);
        self
    }

    /// A worker whose resident memory exceeds `bytes` after a task is replaced (beyond
    /// Python; billiard's `max_memory_per_child`, here in bytes). `0` makes
    /// [`build`](Self::build) fail.
    pub fn max_memory_per_child(mut self, bytes: u64) -> Self {
        self.max_memory = Some(bytes);
        self
    }

    /// Every task (a map's chunk counts as one) may run at most `limit`; past it, its worker
    /// is killed and replaced and the task fails with [`Error::TimeLimitExceeded`]. Beyond
    /// Python (billiard's `timeout`). A zero limit makes [`build`](Self::build) fail.
    pub fn time_limit(mut self, limit: Duration) -> Self {
        self.time_limit = Some(limit);
        self
    }

    /// How many chunks an `imap` keeps in flight at most (default: 128 per worker); it pulls
    /// from its input only as results are taken. Beyond CPython 3.13 (3.14's `buffersize`).
    pub fn imap_buffersize(mut self, chunks: usize) -> Self {
        self.buffersize = Some(chunks);
        self
    }

    /// Starts the workers and returns the pool. Python: `Pool(...)` itself.
    ///
    /// Errors: [`Error::InvalidArgument`] for a zero `processes`, `maxtasksperchild`,
    /// memory cap, time limit or buffer size; [`Error::Initializer`] when the initializer
    /// fails in a worker; [`Error::Core`] when a worker cannot be started (for example in a
    /// daemonic process, which may not have children).
    pub fn build(self) -> Result<Pool> {
        let processes = match self.processes {
            Some(0) => {
                return Err(Error::InvalidArgument(
                    "processes must be at least 1".into(),
                ))
            }
            Some(n) => n,
            None => mp_core::cpu_count().max(1),
        };
        if self.maxtasksperchild == Some(0) {
            return Err(Error::InvalidArgument(
                "maxtasksperchild must be a positive number or None".into(),
            ));
        }
        if self.max_memory == Some(0) {
            return Err(Error::InvalidArgument(
                "max_memory_per_child must be positive".into(),
            ));
        }
        if self.time_limit == Some(Duration::ZERO) {
            return Err(Error::InvalidArgument("time_limit must be positive".into()));
        }
        if self.buffersize == Some(0) {
            return Err(Error::InvalidArgument(
                "imap_buffersize must be at least 1".into(),
            ));
        }
        let cfg = SpawnConfig {
            ctx: mp_core::get_context(self.method),
            max_tasks: self.maxtasksperchild,
            max_memory: self.max_memory,
        };
        let has_init = self.init.is_some();
        let spawn = match self.init {
            Some(factory) => factory(cfg),
            None => spawner::<(), ()>(cfg, None),
        };
        let mut workers: Vec<Worker> = Vec::with_capacity(processes);
        let fail = |workers: &mut Vec<Worker>, e: Error| {
            for w in workers.iter() {
                w.kill();
            }
            for w in workers.drain(..) {
                w.reap();
            }
            Err(e)
        };
        for no in 1..=processes {
            match Worker::start(&spawn, no, has_init) {
                Ok(w) => workers.push(w),
                Err(e) => return fail(&mut workers, e),
            }
        }
        if has_init {
            for i in 0..workers.len() {
                if let Err(e) = workers[i].wait_ready() {
                    return fail(&mut workers, e);
                }
            }
        }
        let wake = match rustix::event::eventfd(
            0,
            rustix::event::EventfdFlags::CLOEXEC | rustix::event::EventfdFlags::NONBLOCK,
        ) {
            Ok(fd) => fd,
            Err(e) => return fail(&mut workers, mp_core::Error::from(e).into()),
        };
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                status: Status::Running,
                queue: VecDeque::new(),
                cancels: Vec::new(),
                sleeping: false,
                streams: 0,
                finished: false,
                pids: workers.iter().map(Worker::pid).collect(),
                stopping: Vec::new(),
            }),
            finished_cv: Condvar::new(),
            wake,
            next_id: AtomicU64::new(1),
        });
        let supervisor = Supervisor::new(
            shared.clone(),
            workers,
            spawn,
            self.time_limit,
            self.maxtasksperchild,
            has_init,
        );
        let thread = std::thread::Builder::new()
            .name("mp-pool-supervisor".into())
            .spawn(move || supervisor.run());
        let thread = match thread {
            Ok(t) => t,
            Err(e) => return Err(mp_core::Error::Io(e).into()),
        };
        Ok(Pool {
            supervisor_id: thread.thread().id(),
            shared,
            thread: Mutex::new(Some(thread)),
            processes,
            buffersize: self.buffersize.unwrap_or(128 * processes),
        })
    }
}

/// A pool of worker processes.
///
/// Python: `multiprocessing.Pool` (`multiprocessing.pool.Pool`). See the
/// [crate docs](crate) for a tour and the differences from Python.
///
/// Dropping a `Pool` terminates it, as leaving Python's `with Pool() as p:` block does:
/// the workers are killed and every pending result becomes [`Error::Terminated`]. Call
/// [`close`](Pool::close) and [`join`](Pool::join) first to let queued work finish.
pub struct Pool {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
    supervisor_id: ThreadId,
    processes: usize,
    buffersize: usize,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.shared.lock();
        let status = match &st.status {
            Status::Running => "running",
            Status::Closed => "closed",
            Status::Terminating => "terminated",
            Status::Broken(_) => "broken",
        };
        f.debug_struct("Pool")
            .field("processes", &self.processes)
            .field("state", &status)
            .field("queued", &st.queue.len())
            .finish()
    }
}

/// A chunk of at least this many bytes is kept in a [`mp_core::wirebuf::WireBuf`].
const WIRE_AT: usize = 16 << 10;

/// CPython's default chunksize of `map`: `ceil(n / (4 × workers))`.
fn default_chunksize(n: usize, workers: usize) -> usize {
    n.div_ceil(4 * workers.max(1)).max(1)
}

fn check_chunksize(chunksize: usize) -> Result<usize> {
    if chunksize == 0 {
        Err(Error::InvalidArgument(
            "chunksize must be at least 1".into(),
        ))
    } else {
        Ok(chunksize)
    }
}

impl Pool {
    /// A pool of `processes` workers under the default start method.
    /// Python: `multiprocessing.Pool(processes)`. See [`Pool::builder`] for the other
    /// arguments; [`Error::InvalidArgument`] for `0`.
    pub fn new(processes: usize) -> Result<Pool> {
        Pool::builder().processes(processes).build()
    }

    /// A builder (Python's keyword arguments; `processes` defaults to `cpu_count()`).
    pub fn builder() -> PoolBuilder {
        PoolBuilder {
            processes: None,
            method: None,
            maxtasksperchild: None,
            max_memory: None,
            time_limit: None,
            buffersize: None,
            init: None,
        }
    }

    /// How many workers the pool keeps (Python: `pool._processes`).
    pub fn processes(&self) -> usize {
        self.processes
    }

    /// The pids of the pool's current workers (empty once it has ended). Beyond Python's
    /// public API (CPython: `[p.pid for p in pool._pool]`): a replaced worker shows as a new
    /// pid.
    pub fn worker_pids(&self) -> Vec<i32> {
        self.shared.lock().pids.clone()
    }

    fn submit_one<K: Kind>(
        &self,
        f: K::F,
        args: K::Args,
        limit: Option<Duration>,
        callbacks: Callbacks<K::Ok>,
    ) -> Result<AsyncResult<K::Ok>>
    where
        K::Ok: Send,
    {
        if limit == Some(Duration::ZERO) {
            return Err(Error::InvalidArgument("time limit must be positive".into()));
        }
        let payload = OwnedBytes::Heap(encode_chunk(f, std::slice::from_ref(&args))?);
        let id = self.shared.next_id();
        let sink = OneSink::<K::Ok>::new(callbacks);
        self.shared.submit(
            vec![Task {
                id,
                runner: runner::<K>(),
                payload,
                sink: sink.clone(),
                index: 0,
                limit,
            }],
            false,
        )?;
        Ok(AsyncResult::new(sink, Arc::downgrade(&self.shared), id))
    }

    /// Queues a map over `items`. An iterator that says exactly how long it is (a range, a
    /// vector's iterator, most adapters over them) is read chunk by chunk as the chunks are
    /// queued, so the workers start on the first chunk at once and the input is never held
    /// whole; any other is collected first. A `size_hint` that lies changes only the chunking:
    /// items past the promised count join the last chunk; missing ones leave empty chunks.
    fn submit_map<K: Kind>(
        &self,
        f: K::F,
        items: impl IntoIterator<Item = K::Args>,
        chunksize: Option<usize>,
        callbacks: Callbacks<Vec<K::Ok>>,
    ) -> Result<MapResult<K::Ok>>
    where
        K::Ok: Send,
    {
        self.check_running()?;
        let iter = items.into_iter();
        match iter.size_hint() {
            (len, Some(hi)) if hi == len && len > 0 => {
                self.submit_chunks::<K>(f, iter, len, chunksize, callbacks)
            }
            _ => {
                let all: Vec<K::Args> = iter.collect();
                let len = all.len();
                self.submit_chunks::<K>(f, all.into_iter(), len, chunksize, callbacks)
            }
        }
    }

    /// [`submit_map`](Self::submit_map) of an iterator said to yield `len` items.
    fn submit_chunks<K: Kind>(
        &self,
        f: K::F,
        mut iter: impl Iterator<Item = K::Args>,
        len: usize,
        chunksize: Option<usize>,
        callbacks: Callbacks<Vec<K::Ok>>,
    ) -> Result<MapResult<K::Ok>>
    where
        K::Ok: Send,
    {
        let chunksize = match chunksize {
            Some(c) => check_chunksize(c)?,
            None => default_chunksize(len, self.processes),
        };
        let chunks = len.div_ceil(chunksize);
        let sink = MapSink::<K::Ok>::new(chunks, len, callbacks);
        let run = runner::<K>();
        let mut chunk: Vec<K::Args> = Vec::with_capacity(chunksize.min(len));
        // Every chunk is encoded in this one buffer (sized for the first after its type), then
        // copied out to a buffer of its own size, or to one a fork does not share when it is
        // large: the workers were forked from this process, so every page of the heap that
        // the chunks would fill would first be copied on the write (and, with the supervisor
        // running on the other CPU, flushed from its TLB).
        let mut scratch: Vec<u8> =
            Vec::with_capacity(chunk_capacity::<K::Args>(chunksize.min(len)));
        // Each chunk is queued as soon as it is encoded, so the workers start at once.
        for index in 0..chunks {
            chunk.clear();
            chunk.extend(iter.by_ref().take(chunksize));
            if index + 1 == chunks {
                // Past the promised count (a `size_hint` that lied): into the last chunk.
                chunk.extend(iter.by_ref());
            }
            if chunk.is_empty() {
                // Fewer items than promised: this chunk has no results.
                sink.deliver(index, Ok(RunOutput::empty()));
                continue;
            }
            let encoded =
                encode_chunk_into(f, &chunk, std::mem::take(&mut scratch)).and_then(|buf| {
                    let payload =
                        OwnedBytes::copy_of(&buf, WIRE_AT).map_err(mp_core::Error::from)?;
                    scratch = buf;
                    Ok(payload)
                });
            let task = encoded.map(|payload| Task {
                id: self.shared.next_id(),
                runner: run,
                payload,
                sink: sink.clone(),
                index,
                limit: None,
            });
            if let Err(e) = task.and_then(|t| self.shared.submit(vec![t], false)) {
                // The chunks queued so far run; the map fails as a whole, and nothing waits.
                for rest in index..chunks {
                    sink.deliver(rest, Err(e.clone()));
                }
                return Err(e);
            }
        }
        Ok(MapResult::new(sink))
    }

    fn check_running(&self) -> Result<()> {
        match &self.shared.lock().status {
            Status::Running => Ok(()),
            Status::Broken(e) => Err(e.clone()),
            _ => Err(Error::NotRunning),
        }
    }

    // ----- apply -----

    /// Runs `f(args)` in a worker and waits for its result.
    /// Python: `Pool.apply(func, args)`. Errors: see [`AsyncResult::get`]; [`Error::NotRunning`]
    /// after `close`/`terminate`.
    pub fn apply<A, R>(&self, f: fn(A) -> R, args: A) -> Result<R>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.apply_async(f, args)?.get()
    }

    /// Queues `f(args)`; returns at once. Python: `Pool.apply_async(func, args)`.
    ///
    /// `f` is a `fn` item or a non-capturing closure (it crosses to the worker as a function
    /// identity); `args` is any serde value without handles. Errors: [`Error::NotRunning`]
    /// after `close`/`terminate`; [`Error::InvalidArgument`] for arguments holding handles;
    /// [`Error::Core`] when they do not encode.
    pub fn apply_async<A, R>(&self, f: fn(A) -> R, args: A) -> Result<AsyncResult<R>>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.submit_one::<Plain<A, R>>(f, args, None, Callbacks::none())
    }

    /// [`apply_async`](Self::apply_async) with Python's `callback` and `error_callback`: one
    /// of them runs in this process (on the pool's supervisor thread) when the task ends,
    /// before the result is ready. A callback that panics is caught and logged (`log::error!`);
    /// the pool goes on (CPython's pool hangs, gh-83371). Keep callbacks short: they delay the
    /// delivery of other results; a callback must not wait for another result of its pool (the
    /// thread that would deliver it is the one running the callback), as in CPython.
    pub fn apply_async_with<A, R>(
        &self,
        f: fn(A) -> R,
        args: A,
        callback: impl FnOnce(&R) + Send + 'static,
        error_callback: impl FnOnce(&Error) + Send + 'static,
    ) -> Result<AsyncResult<R>>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        let cb = Callbacks {
            ok: Some(Box::new(callback)),
            err: Some(Box::new(error_callback)),
        };
        self.submit_one::<Plain<A, R>>(f, args, None, cb)
    }

    /// [`apply_async`](Self::apply_async) with a time limit of its own (instead of the pool's):
    /// past `limit`, the task's worker is killed and replaced and the result is
    /// [`Error::TimeLimitExceeded`]. Beyond Python.
    pub fn apply_async_time_limit<A, R>(
        &self,
        f: fn(A) -> R,
        args: A,
        limit: Duration,
    ) -> Result<AsyncResult<R>>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.submit_one::<Plain<A, R>>(f, args, Some(limit), Callbacks::none())
    }

    /// [`apply`](Self::apply) for a function that returns `Result<T, E>`: an `Err` becomes
    /// [`Error::Remote`] carrying its `Display` (Python: the exception the function raised).
    pub fn try_apply<A, T, E>(&self, f: fn(A) -> std::result::Result<T, E>, args: A) -> Result<T>
    where
        A: Serialize + DeserializeOwned + 'static,
        T: Serialize + DeserializeOwned + Send + 'static,
        E: std::fmt::Display + 'static,
    {
        self.try_apply_async(f, args)?.get()
    }

    /// [`apply_async`](Self::apply_async) for a function that returns `Result<T, E>` (see
    /// [`try_apply`](Self::try_apply)). Python: `apply_async` of a function that may raise.
    pub fn try_apply_async<A, T, E>(
        &self,
        f: fn(A) -> std::result::Result<T, E>,
        args: A,
    ) -> Result<AsyncResult<T>>
    where
        A: Serialize + DeserializeOwned + 'static,
        T: Serialize + DeserializeOwned + Send + 'static,
        E: std::fmt::Display + 'static,
    {
        self.submit_one::<Fallible<A, T, E>>(f, args, None, Callbacks::none())
    }

    // ----- map -----

    /// `f` over every item, in chunks of CPython's default size (`ceil(n / (4 × workers))`);
    /// waits for all the results, in input order.
    ///
    /// Python: `Pool.map(func, iterable)`. The input is consumed at once (as CPython does),
    /// chunk by chunk as the chunks are queued when its length is known. An
    /// item that fails makes the map fail with the first error to arrive, returned only once
    /// every chunk has finished (CPython's rule); the other items still run. Each chunk's
    /// results are decoded as soon as it arrives in turn, and their encoded bytes freed then
    /// (a [`MapResult`] from [`map_async`](Self::map_async) keeps them, since it may be read
    /// again): the map's memory is its values and a few chunks in flight.
    pub fn map<A, R>(&self, f: fn(A) -> R, iterable: impl IntoIterator<Item = A>) -> Result<Vec<R>>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.map_async(f, iterable)?.into_values()
    }

    /// [`map`](Self::map) with an explicit `chunksize` (≥ 1). Python: `map(func, iterable,
    /// chunksize)`.
    pub fn map_chunksize<A, R>(
        &self,
        f: fn(A) -> R,
        iterable: impl IntoIterator<Item = A>,
        chunksize: usize,
    ) -> Result<Vec<R>>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.map_async_chunksize(f, iterable, chunksize)?
            .into_values()
    }

    /// Queues a [`map`](Self::map); returns at once. Python: `Pool.map_async(func, iterable)`.
    pub fn map_async<A, R>(
        &self,
        f: fn(A) -> R,
        iterable: impl IntoIterator<Item = A>,
    ) -> Result<MapResult<R>>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.submit_map::<Plain<A, R>>(f, iterable, None, Callbacks::none())
    }

    /// [`map_async`](Self::map_async) with an explicit `chunksize` (≥ 1). Python:
    /// `map_async(func, iterable, chunksize)`.
    pub fn map_async_chunksize<A, R>(
        &self,
        f: fn(A) -> R,
        iterable: impl IntoIterator<Item = A>,
        chunksize: usize,
    ) -> Result<MapResult<R>>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.submit_map::<Plain<A, R>>(f, iterable, Some(chunksize), Callbacks::none())
    }

    /// [`map_async`](Self::map_async) with Python's `callback` (given all the results) and
    /// `error_callback` (see [`apply_async_with`](Self::apply_async_with)).
    pub fn map_async_with<A, R>(
        &self,
        f: fn(A) -> R,
        iterable: impl IntoIterator<Item = A>,
        callback: impl FnOnce(&Vec<R>) + Send + 'static,
        error_callback: impl FnOnce(&Error) + Send + 'static,
    ) -> Result<MapResult<R>>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        let cb = Callbacks {
            ok: Some(Box::new(callback)),
            err: Some(Box::new(error_callback)),
        };
        self.submit_map::<Plain<A, R>>(f, iterable, None, cb)
    }

    /// [`map`](Self::map) for a function that returns `Result<T, E>`: the first `Err` to
    /// arrive becomes [`Error::Remote`]. Python: `map` of a function that may raise.
    pub fn try_map<A, T, E>(
        &self,
        f: fn(A) -> std::result::Result<T, E>,
        iterable: impl IntoIterator<Item = A>,
    ) -> Result<Vec<T>>
    where
        A: Serialize + DeserializeOwned + 'static,
        T: Serialize + DeserializeOwned + Send + 'static,
        E: std::fmt::Display + 'static,
    {
        self.submit_map::<Fallible<A, T, E>>(f, iterable, None, Callbacks::none())?
            .into_values()
    }

    // ----- starmap -----

    /// `f(a, b)` for every `(a, b)` of `iterable`; waits for all the results, in input order.
    ///
    /// Python: `Pool.starmap(func, iterable)`. Rust functions have a fixed arity: this takes
    /// two-argument functions (pack more arguments into a tuple and use [`map`](Self::map)).
    pub fn starmap<A, B, R>(
        &self,
        f: fn(A, B) -> R,
        iterable: impl IntoIterator<Item = (A, B)>,
    ) -> Result<Vec<R>>
    where
        A: Serialize + DeserializeOwned + 'static,
        B: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.starmap_async(f, iterable)?.into_values()
    }

    /// [`starmap`](Self::starmap) with an explicit `chunksize` (≥ 1). Python:
    /// `starmap(func, iterable, chunksize)`.
    pub fn starmap_chunksize<A, B, R>(
        &self,
        f: fn(A, B) -> R,
        iterable: impl IntoIterator<Item = (A, B)>,
        chunksize: usize,
    ) -> Result<Vec<R>>
    where
        A: Serialize + DeserializeOwned + 'static,
        B: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.starmap_async_chunksize(f, iterable, chunksize)?
            .into_values()
    }

    /// Queues a [`starmap`](Self::starmap). Python: `Pool.starmap_async(func, iterable)`.
    pub fn starmap_async<A, B, R>(
        &self,
        f: fn(A, B) -> R,
        iterable: impl IntoIterator<Item = (A, B)>,
    ) -> Result<MapResult<R>>
    where
        A: Serialize + DeserializeOwned + 'static,
        B: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.submit_map::<Star2<A, B, R>>(f, iterable, None, Callbacks::none())
    }

    /// [`starmap_async`](Self::starmap_async) with an explicit `chunksize` (≥ 1). Python:
    /// `starmap_async(func, iterable, chunksize)`.
    pub fn starmap_async_chunksize<A, B, R>(
        &self,
        f: fn(A, B) -> R,
        iterable: impl IntoIterator<Item = (A, B)>,
        chunksize: usize,
    ) -> Result<MapResult<R>>
    where
        A: Serialize + DeserializeOwned + 'static,
        B: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.submit_map::<Star2<A, B, R>>(f, iterable, Some(chunksize), Callbacks::none())
    }

    /// [`starmap_async`](Self::starmap_async) with Python's `callback` and `error_callback`
    /// (see [`apply_async_with`](Self::apply_async_with)).
    pub fn starmap_async_with<A, B, R>(
        &self,
        f: fn(A, B) -> R,
        iterable: impl IntoIterator<Item = (A, B)>,
        callback: impl FnOnce(&Vec<R>) + Send + 'static,
        error_callback: impl FnOnce(&Error) + Send + 'static,
    ) -> Result<MapResult<R>>
    where
        A: Serialize + DeserializeOwned + 'static,
        B: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        let cb = Callbacks {
            ok: Some(Box::new(callback)),
            err: Some(Box::new(error_callback)),
        };
        self.submit_map::<Star2<A, B, R>>(f, iterable, None, cb)
    }

    // ----- imap -----

    /// A lazy `map`: results one by one, in input order, as they come.
    ///
    /// Python: `Pool.imap(func, iterable, chunksize=1)`. Unlike CPython (gh-84291), the input
    /// is pulled only as results are taken: at most [`imap_buffersize`] chunks are in flight,
    /// so an endless iterator works in constant memory. The iterator is an
    /// [`ExactSizeIterator`] when the input is.
    ///
    /// [`imap_buffersize`]: PoolBuilder::imap_buffersize
    pub fn imap<A, R, I>(&self, f: fn(A) -> R, iterable: I) -> Result<IMapIterator<R, I::IntoIter>>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
        I: IntoIterator<Item = A>,
    {
        self.imap_chunksize(f, iterable, 1)
    }

    /// [`imap`](Self::imap) with a `chunksize` (≥ 1). Python: `imap(func, iterable,
    /// chunksize)`.
    pub fn imap_chunksize<A, R, I>(
        &self,
        f: fn(A) -> R,
        iterable: I,
        chunksize: usize,
    ) -> Result<IMapIterator<R, I::IntoIter>>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
        I: IntoIterator<Item = A>,
    {
        Ok(IMapIterator::new(
            self.imap_core::<A, R, I>(f, iterable, chunksize, true)?,
        ))
    }

    /// [`imap`](Self::imap), with results in completion order. Python:
    /// `Pool.imap_unordered(func, iterable, chunksize=1)`.
    pub fn imap_unordered<A, R, I>(
        &self,
        f: fn(A) -> R,
        iterable: I,
    ) -> Result<IMapUnorderedIterator<R, I::IntoIter>>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
        I: IntoIterator<Item = A>,
    {
        self.imap_unordered_chunksize(f, iterable, 1)
    }

    /// [`imap_unordered`](Self::imap_unordered) with a `chunksize` (≥ 1). Python:
    /// `imap_unordered(func, iterable, chunksize)`.
    pub fn imap_unordered_chunksize<A, R, I>(
        &self,
        f: fn(A) -> R,
        iterable: I,
        chunksize: usize,
    ) -> Result<IMapUnorderedIterator<R, I::IntoIter>>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
        I: IntoIterator<Item = A>,
    {
        Ok(IMapUnorderedIterator::new(
            self.imap_core::<A, R, I>(f, iterable, chunksize, false)?,
        ))
    }

    fn imap_core<A, R, I>(
        &self,
        f: fn(A) -> R,
        iterable: I,
        chunksize: usize,
        ordered: bool,
    ) -> Result<ImapCore<R, I::IntoIter>>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
        I: IntoIterator<Item = A>,
    {
        let chunksize = check_chunksize(chunksize)?;
        ImapCore::new(
            self.shared.clone(),
            iterable.into_iter(),
            Box::new(move |items: &[A]| encode_chunk(f, items)),
            runner::<Plain<A, R>>(),
            chunksize,
            self.buffersize,
            ordered,
        )
    }

    // ----- lifecycle -----

    /// No more tasks: the workers finish what is queued, then exit. Python: `Pool.close()`.
    /// Later calls that submit work fail with [`Error::NotRunning`]; `imap` iterators already
    /// open keep feeding their input, and the workers stay until each is exhausted or dropped
    /// (so [`join`](Self::join) waits for them: drop an iterator you stop reading).
    pub fn close(&self) {
        let mut st = self.shared.lock();
        if matches!(st.status, Status::Running) {
            st.status = Status::Closed;
        }
        let wake = Shared::wake_locked(&mut st);
        drop(st);
        if wake {
            self.shared.notify();
        }
    }

    /// Stops at once: kills the workers (busy or not) and resolves every pending result to
    /// [`Error::Terminated`]; returns once the workers are reaped (promptly, whatever is
    /// queued). Python: `Pool.terminate()` (which leaves pending results unresolved forever,
    /// gh-126743).
    pub fn terminate(&self) {
        let mut st = self.shared.lock();
        if !st.finished && matches!(st.status, Status::Running | Status::Closed) {
            st.status = Status::Terminating;
        }
        let queued: Vec<Task> = st.queue.drain(..).collect();
        drop(st);
        self.shared.notify();
        for t in queued {
            t.sink.deliver(t.index, Err(Error::Terminated));
        }
        if std::thread::current().id() != self.supervisor_id {
            self.shared.wait_finished(Deadline::NEVER);
            self.shared.reap_stopping(Deadline::NEVER, true);
        }
    }

    /// Waits for the workers to exit, after [`close`](Self::close) or
    /// [`terminate`](Self::terminate). Python: `Pool.join()`; [`Error::StillRunning`] before
    /// either (Python's `ValueError`).
    pub fn join(&self) -> Result<()> {
        self.join_until(Deadline::NEVER).map(|_| ())
    }

    /// [`join`](Self::join) that waits at most `timeout`; `Ok(true)` once the workers have
    /// exited (beyond Python, whose `join` has no timeout).
    pub fn join_timeout(&self, timeout: Duration) -> Result<bool> {
        self.join_until(Deadline::after(timeout))
    }

    /// [`join_timeout`](Self::join_timeout) with a deadline (beyond Python).
    pub fn join_deadline(&self, deadline: impl Into<Deadline>) -> Result<bool> {
        self.join_until(deadline.into())
    }

    fn join_until(&self, deadline: Deadline) -> Result<bool> {
        if matches!(self.shared.lock().status, Status::Running) {
            return Err(Error::StillRunning);
        }
        if std::thread::current().id() == self.supervisor_id {
            return Err(Error::InvalidArgument(
                "a pool cannot be joined from its own callback".into(),
            ));
        }
        if !self.shared.wait_finished(deadline) || !self.shared.reap_stopping(deadline, false) {
            return Ok(false);
        }
        let handle = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(h) = handle {
            let _ = h.join();
        }
        Ok(true)
    }
}

impl Drop for Pool {
    /// Terminates the pool (Python: leaving `with Pool() as p:`).
    fn drop(&mut self) {
        self.terminate();
        if std::thread::current().id() != self.supervisor_id {
            let handle = self
                .thread
                .get_mut()
                .unwrap_or_else(|e| e.into_inner())
                .take();
            if let Some(h) = handle {
                let _ = h.join();
            }
        }
    }
}
