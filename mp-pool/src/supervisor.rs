//! The pool's supervisor thread: the one thread that talks to the workers.
//!
//! It waits on every worker's connection and sentinel and on the pool's wake-up eventfd at
//! once (bounded by the nearest time limit), hands batches of queued tasks to idle workers,
//! delivers each result to its slot, and replaces workers that die, retire or overrun a time
//! limit. Each worker has its own connection, so the supervisor always knows which tasks a
//! worker holds, in order: the first of them without a result is the one it is running.

use std::collections::VecDeque;
use std::sync::{Arc, MutexGuard};
use std::time::{Duration, Instant};

use mp_core::{Connection, Deadline, Process};
use rustix::event::PollFlags;

use crate::error::Error;
use crate::pool::{Shared, State, Status, Task};
use crate::worker::{
    decode_from_worker, tasks_heads, tasks_parts, BytesRef, FromWorker, RunOutput, TaskWireRef,
    ToWorkerRef,
};
use mp_core::frames::{Filled, FrameReader};

/// Starts one worker process on the child end of its connection; the number is for its name.
pub(crate) type Spawn =
    Arc<dyn Fn(Connection, usize) -> mp_core::Result<Process<()>> + Send + Sync>;

/// The most tasks sent to a worker in one message.
const MAX_BATCH: usize = 64;
/// The most payload bytes sent to a busy worker at once. A busy worker reads its connection
/// only between tasks, so what the supervisor sends it must fit in the socket's buffer
/// (about 200 KiB): the supervisor never blocks on a worker that is itself blocked writing a
/// result the supervisor would read. An idle worker is waiting in `recv` and takes any size.
const TOP_UP_BYTES: usize = 64 << 10;
/// Tasks that take longer than this on average go to workers one at a time (no batches, no
/// top-ups): a long task never waits behind another in a worker while a second worker idles.
const SLOW_TASK: Duration = Duration::from_millis(1);
/// What the average task time is taken to be before any task has finished (the first result
/// replaces it).
const FIRST_GUESS: Duration = Duration::from_millis(10);
/// Frames from a worker of at least this many bytes are taken over from the reader whole
/// (when they end what it read), not copied: a chunk's results stay where they were read.
const TAKE_FRAME_AT: usize = 16 << 10;
/// A batch whose payloads add up to this many bytes is sent by a gather write
/// ([`send_gathered`]); a smaller one is encoded into one buffer.
const GATHER_AT: usize = 16 << 10;
/// How many workers in a row may die before saying they are ready, before the pool gives up.
const MAX_EARLY_DEATHS: u32 = 5;

/// A task handed to a worker and not yet answered.
struct InFlight {
    task: Task,
    /// Cancelled after it was sent: its result (or its skip) is dropped.
    cancelled: bool,
}

/// One worker process, as the supervisor sees it.
pub(crate) struct Worker {
    process: Process<()>,
    conn: Connection,
    pid: i32,
    inflight: VecDeque<InFlight>,
    /// When the first task of `inflight` started (about: its batch's send, or the previous
    /// result).
    head_since: Instant,
    ready: bool,
    /// It sent `Ready` (its initializer, if any, succeeded).
    said_ready: bool,
    retiring: bool,
    sent: u64,
    /// The supervisor killed this worker: for this task id, with this error.
    kill_reason: Option<(u64, Error)>,
    /// Its connection broke (EOF): the process is ending.
    broken: bool,
    /// A send to it failed: it is ending; no more tasks go to it, and what it wrote is still
    /// read (its last result, a `Retire`).
    send_failed: bool,
    /// What it wrote, read in bulk.
    reader: FrameReader,
}

impl Worker {
    /// Starts worker number `no`. Without an initializer (`has_init` false) it takes tasks at
    /// once (they wait in its connection while it starts); with one, only once it said
    /// `Ready`.
    pub(crate) fn start(spawn: &Spawn, no: usize, has_init: bool) -> crate::Result<Worker> {
        let (parent, child) = mp_core::pipe(true)?;
        let process = spawn(child, no)?;
        let pid = process.pid()?.unwrap_or(0);
        Ok(Worker {
            process,
            conn: parent,
            pid,
            inflight: VecDeque::new(),
            head_since: Instant::now(),
            ready: !has_init,
            said_ready: false,
            retiring: false,
            sent: 0,
            kill_reason: None,
            broken: false,
            send_failed: false,
            reader: FrameReader::default(),
        })
    }

    /// Waits for the worker's first message (its initializer's outcome).
    pub(crate) fn wait_ready(&mut self) -> crate::Result<()> {
        match self.conn.recv::<FromWorker>() {
            Ok(FromWorker::Ready) => {
                self.ready = true;
                self.said_ready = true;
                Ok(())
            }
            Ok(FromWorker::InitFailed(f)) => Err(Error::Initializer(f.to_string())),
            Ok(other) => Err(Error::Initializer(format!(
                "unexpected first message from a worker: {other:?}"
            ))),
            Err(_) => {
                let code = self.process.join().unwrap_or(-1);
                Err(Error::Initializer(format!(
                    "worker {} died in the initializer ({})",
                    self.pid,
                    describe(code)
                )))
            }
        }
    }

    /// The worker's pid.
    pub(crate) fn pid(&self) -> i32 {
        self.pid
    }

    /// Kills the worker (SIGKILL); harmless if it already ended.
    pub(crate) fn kill(&self) {
        let _ = self.process.kill();
    }

    /// Waits for the worker to end and reaps it; its exit code.
    pub(crate) fn reap(&self) -> i32 {
        self.process.join().unwrap_or(-1)
    }
}

fn describe(code: i32) -> String {
    if code < 0 {
        format!("killed by signal {}", -code)
    } else {
        format!("exit code {code}")
    }
}

/// The supervisor: owns the workers.
pub(crate) struct Supervisor {
    pub(crate) shared: Arc<Shared>,
    pub(crate) workers: Vec<Worker>,
    pub(crate) spawn: Spawn,
    pub(crate) time_limit: Option<Duration>,
    pub(crate) max_tasks: Option<u64>,
    pub(crate) has_init: bool,
    pub(crate) next_no: usize,
    early_deaths: u32,
    /// Results read and not yet delivered: they are delivered (decoded, their callbacks run)
    /// once the workers that sent them have their next tasks, so that no worker waits for the
    /// decoding of its last result before it gets more work.
    deliveries: Vec<(Task, RunOutput)>,
    /// A moving average of how long tasks take (from their start to their result); `None`
    /// until the first result, when [`FIRST_GUESS`] stands in for it.
    avg_task: Option<Duration>,
}

impl Supervisor {
    pub(crate) fn new(
        shared: Arc<Shared>,
        workers: Vec<Worker>,
        spawn: Spawn,
        time_limit: Option<Duration>,
        max_tasks: Option<u64>,
        has_init: bool,
    ) -> Self {
        let next_no = workers.len() + 1;
        Supervisor {
            shared,
            workers,
            spawn,
            time_limit,
            max_tasks,
            has_init,
            next_no,
            early_deaths: 0,
            deliveries: Vec::new(),
            avg_task: None,
        }
    }

    /// The supervisor thread's body.
    pub(crate) fn run(mut self) {
        self.publish_pids();
        let end = self.serve();
        self.shutdown(end);
        self.publish_pids();
        self.shared.finish();
    }

    fn publish_pids(&self) {
        let pids = self.workers.iter().map(|w| w.pid).collect();
        self.shared.lock().pids = pids;
    }

    /// Serves until the pool is closed and drained (`None`) or terminated or broken (the
    /// error for everything still pending).
    fn serve(&mut self) -> Option<Error> {
        let shared = self.shared.clone();
        loop {
            let mut st = shared.lock();
            st.sleeping = false;
            let cancels = std::mem::take(&mut st.cancels);
            match &st.status {
                Status::Terminating => {
                    drop(st);
                    self.deliver();
                    return Some(Error::Terminated);
                }
                Status::Broken(e) => {
                    let e = e.clone();
                    drop(st);
                    self.deliver();
                    return Some(e);
                }
                Status::Running | Status::Closed => {}
            }
            let sends = self.plan(&mut st);
            let idle = self.workers.iter().all(|w| w.inflight.is_empty());
            if matches!(st.status, Status::Closed)
                && st.queue.is_empty()
                && st.streams == 0
                && idle
                && sends.is_empty()
            {
                drop(st);
                self.deliver();
                self.stop_workers();
                return None;
            }
            st.sleeping = true;
            drop(st);
            for (i, batch) in sends {
                self.send_batch(i, batch);
            }
            self.deliver();
            if !cancels.is_empty() {
                self.cancel_inflight(&cancels);
            }
            self.wait_and_handle();
        }
    }

    /// Takes batches off the queue for the workers: an idle worker gets a share of the queue;
    /// under a long queue, a busy one is topped up once it is down to half its share, so that
    /// it never waits for work (a task only ever waits behind others of its worker when the
    /// queue is long anyway).
    fn plan(&mut self, st: &mut MutexGuard<'_, State>) -> Vec<(usize, Vec<Task>)> {
        let mut sends = Vec::new();
        if st.queue.is_empty() {
            return sends;
        }
        let n = self.workers.len().max(1);
        let slow = self.avg_task.unwrap_or(FIRST_GUESS) > SLOW_TASK;
        let per = if slow {
            1
        } else {
            st.queue.len().div_ceil(2 * n).clamp(1, MAX_BATCH)
        };
        // Workers known to be up (they said Ready) first: a task does not wait for a worker
        // that is still starting while another is free.
        let mut order: Vec<usize> = (0..self.workers.len()).collect();
        order.sort_by_key(|&i| !self.workers[i].said_ready);
        for i in order {
            let w = &self.workers[i];
            if st.queue.is_empty() {
                break;
            }
            if !w.ready || w.retiring || w.broken || w.send_failed || w.kill_reason.is_some() {
                continue;
            }
            let held = w.inflight.len();
            if held > 0 && (per < 4 || held > per / 2) {
                continue;
            }
            let mut take = (per - held.min(per)).min(st.queue.len());
            if let Some(max) = self.max_tasks {
                take = take.min(max.saturating_sub(w.sent) as usize);
            }
            if held > 0 {
                let mut bytes = 0;
                let fits = st
                    .queue
                    .iter()
                    .take(take)
                    .take_while(|t| {
                        bytes += t.payload.len();
                        bytes <= TOP_UP_BYTES
                    })
                    .count();
                take = fits;
            }
            if take == 0 {
                continue;
            }
            sends.push((i, st.queue.drain(..take).collect()));
        }
        sends
    }

    fn send_batch(&mut self, i: usize, batch: Vec<Task>) {
        let w = &mut self.workers[i];
        let wire: Vec<TaskWireRef<'_>> = batch
            .iter()
            .map(|t| TaskWireRef {
                id: t.id,
                runner: t.runner,
                payload: BytesRef(&t.payload),
            })
            .collect();
        // Large payloads go out from where they are, between the small parts of the message
        // (`tasks_heads`), instead of being copied into one buffer; small ones are copied,
        // which costs less than a gather of many tiny pieces (an `imap` of single items).
        let bytes: usize = wire.iter().map(|t| t.payload.0.len()).sum();
        let sent = if bytes < GATHER_AT {
            w.conn.send(&ToWorkerRef::Tasks(wire))
        } else {
            send_gathered(&mut w.conn, &wire)
        };
        if w.inflight.is_empty() {
            w.head_since = Instant::now();
        }
        w.sent += batch.len() as u64;
        w.inflight.extend(batch.into_iter().map(|task| InFlight {
            task,
            cancelled: false,
        }));
        if sent.is_err() {
            // The worker is gone or going: its death hands these tasks on. What it wrote before
            // (a result, a `Retire`) is still read: only the sending side is broken.
            w.send_failed = true;
            w.kill();
        }
    }

    /// Cancels tasks that workers hold: a running one has its worker killed; one not yet
    /// started is skipped (one `Skip` message per worker for all of them).
    fn cancel_inflight(&mut self, ids: &[u64]) {
        for w in &mut self.workers {
            let mut skip = Vec::new();
            for &id in ids {
                let Some(pos) = w.inflight.iter().position(|f| f.task.id == id) else {
                    continue;
                };
                if pos == 0 {
                    if w.kill_reason.is_none() {
                        w.kill_reason = Some((id, Error::Cancelled));
                        w.kill();
                    }
                } else {
                    w.inflight[pos].cancelled = true;
                    skip.push(id);
                }
            }
            if !skip.is_empty() && w.conn.send(&ToWorkerRef::Skip(&skip)).is_err() {
                w.send_failed = true;
                w.kill();
            }
        }
    }

    /// The nearest time limit of a running task.
    fn nearest_limit(&self) -> Deadline {
        let mut deadline = Deadline::NEVER;
        for w in &self.workers {
            if w.kill_reason.is_some() {
                continue;
            }
            if let Some(head) = w.inflight.front() {
                let limit = head.task.limit.or(self.time_limit);
                // A limit too long for the clock is no limit.
                if let Some(end) = limit.and_then(|l| w.head_since.checked_add(l)) {
                    deadline = deadline.min(Deadline::at(end));
                }
            }
        }
        deadline
    }

    /// One wait for anything (a message, a death, a wake-up, a time limit), then handles it.
    fn wait_and_handle(&mut self) {
        let deadline = self.nearest_limit();
        let ready = {
            let mut fds = Vec::with_capacity(1 + 2 * self.workers.len());
            fds.push((self.shared.wake_fd(), PollFlags::IN));
            for w in &self.workers {
                if let Ok(fd) = w.conn.fileno() {
                    if !w.broken {
                        fds.push((fd, PollFlags::IN));
                    }
                }
                if let Ok(fd) = w.process.sentinel() {
                    fds.push((fd, PollFlags::IN));
                }
            }
            let ready = mp_core::io::wait_any(&fds, deadline).unwrap_or_default();
            // Map poll indexes back to workers.
            let mut which: Vec<(usize, bool)> = Vec::new(); // (worker, is_sentinel)
            let mut k = 1;
            for (i, w) in self.workers.iter().enumerate() {
                if w.conn.fileno().is_ok() && !w.broken {
                    which.push((i, false));
                    k += 1;
                }
                if w.process.sentinel().is_ok() {
                    which.push((i, true));
                    k += 1;
                }
            }
            debug_assert_eq!(k, fds.len());
            let mut out = Vec::new();
            for r in ready {
                if r == 0 {
                    self.shared.drain_wake();
                } else if let Some(&entry) = which.get(r - 1) {
                    out.push(entry);
                }
            }
            out
        };
        let mut dead: Vec<usize> = Vec::new();
        for (i, sentinel) in ready {
            if sentinel {
                if !dead.contains(&i) {
                    dead.push(i);
                }
            } else if !self.drain(i) && !dead.contains(&i) {
                dead.push(i);
            }
        }
        self.check_limits();
        dead.sort_unstable();
        for i in dead.into_iter().rev() {
            self.on_death(i);
        }
    }

    /// Reads every message waiting from worker `i` (one `read`, then every whole frame it
    /// brought); false once its connection is broken (EOF or garbage).
    fn drain(&mut self, i: usize) -> bool {
        let (msgs, alive) = {
            let w = &mut self.workers[i];
            let Ok(fd) = w.conn.fileno() else {
                w.broken = true;
                return false;
            };
            let mut alive = match w.reader.fill(fd) {
                Ok(Filled::Data) => true,
                Ok(Filled::Eof) => false,
                Err(_) => {
                    w.kill();
                    false
                }
            };
            let mut msgs = Vec::new();
            loop {
                // A large result stays in the frame it came in (`decode_from_worker`).
                match w.reader.next_frame_owned(TAKE_FRAME_AT) {
                    Ok(Some((frame, range))) => match decode_from_worker(frame, range) {
                        Ok(m) => msgs.push(m),
                        Err(_) => {
                            w.kill();
                            alive = false;
                            break;
                        }
                    },
                    Ok(None) => break,
                    Err(_) => {
                        w.kill();
                        alive = false;
                        break;
                    }
                }
            }
            if !alive {
                w.broken = true;
            }
            (msgs, alive)
        };
        for msg in msgs {
            self.on_message(i, msg);
        }
        alive
    }

    /// Reads what a worker that ended left in its connection.
    fn drain_dead(&mut self, i: usize) {
        for _ in 0..1_000_000 {
            let readable = match self.workers[i].conn.fileno() {
                Ok(fd) => mp_core::io::wait_any(&[(fd, PollFlags::IN)], Deadline::now())
                    .map(|r| !r.is_empty())
                    .unwrap_or(false),
                Err(_) => false,
            };
            if !readable || !self.drain(i) {
                return;
            }
        }
    }

    fn on_message(&mut self, i: usize, msg: FromWorker) {
        let w = &mut self.workers[i];
        match msg {
            FromWorker::Ready => {
                w.ready = true;
                w.said_ready = true;
            }
            FromWorker::InitFailed(f) => {
                self.shared.set_broken(Error::Initializer(f.to_string()));
            }
            FromWorker::Done { id, output } => {
                let now = Instant::now();
                let took = now.saturating_duration_since(w.head_since);
                // The first measurement replaces the guess: a guess of 10 ms that took a
                // dozen fast results to wear off sent a `map` right after a warm-up task one
                // chunk at a time, each worker idling between its chunks.
                self.avg_task = Some(self.avg_task.map_or(took, |avg| (avg * 7 + took) / 8));
                w.head_since = now;
                if let Some(f) = take_inflight(&mut w.inflight, id) {
                    if !f.cancelled {
                        self.deliveries.push((f.task, output));
                    }
                }
            }
            FromWorker::Skipped { id } => {
                w.head_since = Instant::now();
                take_inflight(&mut w.inflight, id);
            }
            FromWorker::Retire => w.retiring = true,
        }
    }

    /// Delivers the results read so far (see `deliveries`).
    fn deliver(&mut self) {
        for (task, output) in std::mem::take(&mut self.deliveries) {
            task.sink.deliver(task.index, Ok(output));
        }
    }

    /// Kills the workers whose running task has passed its time limit.
    fn check_limits(&mut self) {
        let now = Instant::now();
        for w in &mut self.workers {
            if w.kill_reason.is_some() {
                continue;
            }
            let Some(head) = w.inflight.front() else {
                continue;
            };
            let Some(limit) = head.task.limit.or(self.time_limit) else {
                continue;
            };
            if w.head_since
                .checked_add(limit)
                .is_some_and(|end| now >= end)
            {
                w.kill_reason =
                    Some((head.task.id, Error::TimeLimitExceeded { limit, pid: w.pid }));
                w.kill();
            }
        }
    }

    /// Worker `i` ended (or its connection broke): drain what it wrote, reap it, fail or hand
    /// on its tasks, replace it.
    fn on_death(&mut self, i: usize) {
        if !self.workers[i].broken {
            self.drain_dead(i);
        }
        let w = self.workers.remove(i);
        let code = w.reap();
        let mut inflight = w.inflight;
        if !w.retiring {
            if let Some(head) = inflight.pop_front() {
                let error = match &w.kill_reason {
                    Some((id, e)) if *id == head.task.id => Some(e.clone()),
                    // Killed for another task that finished meanwhile: this one is not to
                    // blame; it runs again elsewhere.
                    Some(_) => None,
                    None => Some(Error::WorkerLost {
                        pid: w.pid,
                        exitcode: code,
                    }),
                };
                match error {
                    Some(e) => {
                        if !head.cancelled {
                            head.task.sink.deliver(head.task.index, Err(e));
                        }
                    }
                    None => inflight.push_front(head),
                }
            }
        }
        let again: Vec<Task> = inflight
            .into_iter()
            .filter(|f| !f.cancelled)
            .map(|f| f.task)
            .collect();
        let early = !w.said_ready && !w.retiring;
        let mut st = self.shared.lock();
        for t in again.into_iter().rev() {
            st.queue.push_front(t);
        }
        if early {
            self.early_deaths += 1;
            if self.has_init || self.early_deaths > MAX_EARLY_DEATHS {
                let e = Error::Initializer(format!(
                    "worker {} died before it was ready ({})",
                    w.pid,
                    describe(code)
                ));
                if matches!(st.status, Status::Running | Status::Closed) {
                    st.status = Status::Broken(e);
                }
            }
        } else {
            self.early_deaths = 0;
        }
        let replace = matches!(st.status, Status::Running | Status::Closed);
        drop(st);
        if replace {
            let no = self.next_no;
            self.next_no += 1;
            match Worker::start(&self.spawn, no, self.has_init) {
                Ok(w) => self.workers.push(w),
                Err(e) => self.shared.set_broken(e),
            }
        }
        self.publish_pids();
    }

    /// Close: every worker is idle; asks each to stop and leaves them to [`Pool::join`]
    /// (or the pool's drop) to reap.
    ///
    /// [`Pool::join`]: crate::Pool::join
    fn stop_workers(&mut self) {
        for w in &mut self.workers {
            if w.conn.send(&ToWorkerRef::Stop).is_err() {
                w.kill();
            }
        }
        let stopping: Vec<Arc<Process<()>>> = self
            .workers
            .drain(..)
            .map(|w| Arc::new(w.process))
            .collect();
        self.shared.lock().stopping = stopping;
    }

    /// Terminate (or a broken pool): kill every worker, resolve everything pending with
    /// `error`, reap.
    fn shutdown(&mut self, error: Option<Error>) {
        let Some(error) = error else {
            return;
        };
        for w in &self.workers {
            w.kill();
        }
        let queued: Vec<Task> = self.shared.lock().queue.drain(..).collect();
        for w in self.workers.drain(..) {
            w.reap();
            for f in w.inflight {
                if !f.cancelled {
                    f.task.sink.deliver(f.task.index, Err(error.clone()));
                }
            }
        }
        for t in queued {
            t.sink.deliver(t.index, Err(error.clone()));
        }
    }
}

fn take_inflight(inflight: &mut VecDeque<InFlight>, id: u64) -> Option<InFlight> {
    if inflight.front().is_some_and(|f| f.task.id == id) {
        return inflight.pop_front();
    }
    let pos = inflight.iter().position(|f| f.task.id == id)?;
    inflight.remove(pos)
}

/// Sends `ToWorker::Tasks(wire)` with each payload written from where it is (see
/// `tasks_heads`).
fn send_gathered(conn: &mut mp_core::Connection, wire: &[TaskWireRef<'_>]) -> mp_core::Result<()> {
    let (heads, ends) = tasks_heads(wire)?;
    conn.send_bytes_vectored(&tasks_parts(wire, &heads, &ends))
}
