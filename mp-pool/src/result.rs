//! Results: the slots the supervisor fills, [`AsyncResult`] and [`MapResult`] on top of them,
//! their callbacks and their `Future` implementations.

use std::future::Future;
use std::marker::PhantomData;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use mp_core::codec;
use mp_core::Deadline;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::pool::Shared;
use crate::worker::RunOutput;

/// Where a task's output goes. The first delivery wins; later ones are ignored.
pub(crate) trait Sink: Send + Sync {
    /// Delivers the output of chunk `index` of this call.
    fn deliver(&self, index: usize, out: Result<RunOutput>);
}

/// Decodes a chunk's results.
pub(crate) fn decode_chunk<R: DeserializeOwned>(out: &RunOutput) -> Result<Vec<Result<R>>> {
    match &out.out {
        None => Err(out.first_failure.clone().map_or_else(
            || Error::InvalidArgument("empty task output".into()),
            Error::from,
        )),
        Some(bytes) if out.all_ok => Ok(codec::decode::<Vec<R>>(bytes.as_slice())?
            .into_iter()
            .map(Ok)
            .collect()),
        Some(bytes) => {
            // The `Ok` results in order, with the failed items between them.
            let mut ok = codec::decode::<Vec<R>>(bytes.as_slice())?.into_iter();
            let mut all = Vec::with_capacity(ok.len() + out.failures.len());
            for (index, f) in &out.failures {
                while all.len() < *index as usize {
                    match ok.next() {
                        Some(v) => all.push(Ok(v)),
                        None => break,
                    }
                }
                all.push(Err(Error::from(f.clone())));
            }
            all.extend(ok.map(Ok));
            Ok(all)
        }
    }
}

/// Runs a user callback, catching and logging a panic (CPython's result thread dies of one and
/// the pool hangs, gh-83371).
pub(crate) fn run_callback(what: &str, f: impl FnOnce()) {
    if let Err(payload) = catch_unwind(AssertUnwindSafe(f)) {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "Box<dyn Any>".to_owned());
        log::error!("mp-pool: a {what} panicked: {message}; the pool goes on");
    }
}

/// A value that becomes ready once, with waiters (threads and one async task).
pub(crate) struct Slot<V> {
    inner: Mutex<SlotInner<V>>,
    cv: Condvar,
}

pub(crate) struct SlotInner<V> {
    pub(crate) value: V,
    pub(crate) ready: bool,
    waiters: usize,
    waker: Option<Waker>,
}

impl<V> Slot<V> {
    pub(crate) fn new(value: V) -> Self {
        Slot {
            inner: Mutex::new(SlotInner {
                value,
                ready: false,
                waiters: 0,
                waker: None,
            }),
            cv: Condvar::new(),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, SlotInner<V>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Marks the slot ready (under `guard`) and wakes every waiter.
    pub(crate) fn set_ready(&self, mut guard: MutexGuard<'_, SlotInner<V>>) {
        guard.ready = true;
        let waker = guard.waker.take();
        let notify = guard.waiters > 0;
        drop(guard);
        if notify {
            self.cv.notify_all();
        }
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Waits until ready or `deadline`; returns the guard and whether it is ready.
    pub(crate) fn wait_until(&self, deadline: Deadline) -> (MutexGuard<'_, SlotInner<V>>, bool) {
        self.wait_while(self.lock(), deadline, |_| true)
    }

    /// Wakes the threads waiting in [`wait_while`](Self::wait_while) to look again (the
    /// value changed, but is not ready).
    pub(crate) fn notify(&self, guard: MutexGuard<'_, SlotInner<V>>) {
        let notify = guard.waiters > 0;
        drop(guard);
        if notify {
            self.cv.notify_all();
        }
    }

    /// Waits, from `g`, while the slot is not ready and `pending(value)` holds, until
    /// `deadline`; returns the guard and whether the slot is ready.
    pub(crate) fn wait_while<'a>(
        &'a self,
        mut g: MutexGuard<'a, SlotInner<V>>,
        deadline: Deadline,
        mut pending: impl FnMut(&V) -> bool,
    ) -> (MutexGuard<'a, SlotInner<V>>, bool) {
        while !g.ready && pending(&g.value) {
            let timeout = match deadline.remaining() {
                None => Duration::from_secs(3600),
                Some(left) if left.is_zero() => return (g, false),
                Some(left) => left,
            };
            g.waiters += 1;
            let (back, _) = self
                .cv
                .wait_timeout(g, timeout)
                .unwrap_or_else(|e| e.into_inner());
            g = back;
            g.waiters -= 1;
        }
        let ready = g.ready;
        (g, ready)
    }

    /// For a `Future`: ready, or the waker is stored.
    pub(crate) fn poll_ready(&self, cx: &Context<'_>) -> MutexGuard<'_, SlotInner<V>> {
        let mut g = self.lock();
        if !g.ready {
            match &g.waker {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => g.waker = Some(cx.waker().clone()),
            }
        }
        g
    }
}

type Callback<T> = Box<dyn FnOnce(&T) + Send>;
type ErrorCallback = Box<dyn FnOnce(&Error) + Send>;

/// The callbacks of an async call (Python's `callback` and `error_callback`).
pub(crate) struct Callbacks<T> {
    pub(crate) ok: Option<Callback<T>>,
    pub(crate) err: Option<ErrorCallback>,
}

impl<T> Callbacks<T> {
    pub(crate) fn none() -> Self {
        Callbacks {
            ok: None,
            err: None,
        }
    }

    fn is_empty(&self) -> bool {
        self.ok.is_none() && self.err.is_none()
    }

    fn run(self, value: &Result<T>) {
        match value {
            Ok(v) => {
                if let Some(cb) = self.ok {
                    run_callback("callback", || cb(v));
                }
            }
            Err(e) => {
                if let Some(cb) = self.err {
                    run_callback("error callback", || cb(e));
                }
            }
        }
    }
}

// ----- one result -----

/// The slot of an `apply_async`.
pub(crate) struct OneSink<R> {
    slot: Slot<Option<Result<RunOutput>>>,
    callbacks: Mutex<Option<Callbacks<R>>>,
}

impl<R: DeserializeOwned> OneSink<R> {
    pub(crate) fn new(callbacks: Callbacks<R>) -> Arc<Self> {
        Arc::new(OneSink {
            slot: Slot::new(None),
            callbacks: Mutex::new(if callbacks.is_empty() {
                None
            } else {
                Some(callbacks)
            }),
        })
    }
}

fn decode_one<R: DeserializeOwned>(out: &Result<RunOutput>) -> Result<R> {
    let out = out.as_ref().map_err(Clone::clone)?;
    if let (false, Some(f)) = (out.all_ok, &out.first_failure) {
        return Err(f.clone().into());
    }
    decode_chunk::<R>(out)?
        .into_iter()
        .next()
        .unwrap_or_else(|| Err(Error::InvalidArgument("a task returned no result".into())))
}

impl<R: DeserializeOwned + Send + 'static> Sink for OneSink<R> {
    fn deliver(&self, _index: usize, out: Result<RunOutput>) {
        if self.slot.lock().ready {
            return;
        }
        let callbacks = self
            .callbacks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(cb) = callbacks {
            cb.run(&decode_one::<R>(&out));
        }
        let mut g = self.slot.lock();
        if g.ready {
            return;
        }
        g.value = Some(out);
        self.slot.set_ready(g);
    }
}

/// The result of [`Pool::apply_async`](crate::Pool::apply_async) and its kin.
///
/// Python: `multiprocessing.pool.AsyncResult`. Also a [`Future`]: `.await` it on any
/// executor (the pool wakes it; no runtime needed).
#[must_use = "the task runs anyway; the result is lost unless you get() it"]
pub struct AsyncResult<R> {
    sink: Arc<OneSink<R>>,
    pool: Weak<Shared>,
    id: u64,
    _r: PhantomData<fn() -> R>,
}

impl<R> std::fmt::Debug for AsyncResult<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncResult")
            .field("id", &self.id)
            .field("ready", &self.sink.slot.lock().ready)
            .finish()
    }
}

impl<R: DeserializeOwned + Send + 'static> AsyncResult<R> {
    pub(crate) fn new(sink: Arc<OneSink<R>>, pool: Weak<Shared>, id: u64) -> Self {
        AsyncResult {
            sink,
            pool,
            id,
            _r: PhantomData,
        }
    }

    /// Waits for the result and returns it (every call decodes it anew).
    ///
    /// Python: `AsyncResult.get()`. Errors: the task's failure ([`Error::TaskPanicked`],
    /// [`Error::Remote`]), [`Error::WorkerLost`], [`Error::TimeLimitExceeded`],
    /// [`Error::Terminated`], [`Error::Cancelled`]. Never hangs on a dead worker.
    pub fn get(&self) -> Result<R> {
        self.get_until(Deadline::NEVER)
    }

    /// [`get`](Self::get) that gives up with [`Error::Timeout`] after `timeout`.
    /// Python: `AsyncResult.get(timeout)` (raises `multiprocessing.TimeoutError`).
    pub fn get_timeout(&self, timeout: Duration) -> Result<R> {
        self.get_until(Deadline::after(timeout))
    }

    /// [`get_timeout`](Self::get_timeout) with a deadline (beyond Python: a deadline bounds
    /// several waits as one).
    pub fn get_deadline(&self, deadline: impl Into<Deadline>) -> Result<R> {
        self.get_until(deadline.into())
    }

    fn get_until(&self, deadline: Deadline) -> Result<R> {
        let (g, ready) = self.sink.slot.wait_until(deadline);
        if !ready {
            return Err(Error::Timeout);
        }
        match &g.value {
            Some(out) => decode_one::<R>(out),
            None => Err(Error::Terminated),
        }
    }

    /// Waits until the result is ready. Python: `AsyncResult.wait()`.
    pub fn wait(&self) {
        let _ready = self.sink.slot.wait_until(Deadline::NEVER).1;
    }

    /// Waits at most `timeout`; returns whether the result is ready (Python's `wait(timeout)`
    /// returns `None`, and the caller then asks `ready()`: this returns that answer).
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.sink.slot.wait_until(Deadline::after(timeout)).1
    }

    /// [`wait_timeout`](Self::wait_timeout) with a deadline (beyond Python).
    pub fn wait_deadline(&self, deadline: impl Into<Deadline>) -> bool {
        self.sink.slot.wait_until(deadline.into()).1
    }

    /// Whether the result is ready. Python: `AsyncResult.ready()`.
    pub fn ready(&self) -> bool {
        self.sink.slot.lock().ready
    }

    /// Whether the task succeeded; [`Error::NotReady`] before it is ready.
    /// Python: `AsyncResult.successful()` (raises `ValueError` before ready).
    pub fn successful(&self) -> Result<bool> {
        let g = self.sink.slot.lock();
        if !g.ready {
            return Err(Error::NotReady);
        }
        Ok(match &g.value {
            Some(Ok(out)) => out.all_ok,
            _ => false,
        })
    }

    /// Cancels the task: one not yet started is removed (it never runs); one running has its
    /// worker killed (and replaced). Its result becomes [`Error::Cancelled`]. Returns whether
    /// the task was cancelled (`false` when it had already finished).
    ///
    /// Beyond Python (whose `AsyncResult` has no `cancel`; `concurrent.futures.Future.cancel`
    /// only removes tasks not yet started). A task that a worker has received but not started
    /// when the cancel arrives is skipped; in the rare race where the worker starts it at that
    /// very moment, it runs to its end and its result is discarded.
    pub fn cancel(&self) -> bool {
        if self.ready() {
            return false;
        }
        if let Some(pool) = self.pool.upgrade() {
            pool.cancel(self.id);
        }
        self.sink.deliver(0, Err(Error::Cancelled));
        matches!(&self.sink.slot.lock().value, Some(Err(Error::Cancelled)))
    }
}

impl<R: DeserializeOwned + Send + 'static> Future for AsyncResult<R> {
    type Output = Result<R>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<R>> {
        let g = self.sink.slot.poll_ready(cx);
        if !g.ready {
            return Poll::Pending;
        }
        Poll::Ready(match &g.value {
            Some(out) => decode_one::<R>(out),
            None => Err(Error::Terminated),
        })
    }
}

// ----- a map -----

pub(crate) struct MapInner {
    /// Each chunk's output, as it arrived (kept encoded: every `get` decodes them, in the
    /// caller's thread, so the supervisor's thread only moves bytes).
    chunks: Vec<Option<Arc<RunOutput>>>,
    /// How many items the caller promised (a reservation for the values, not a bound).
    items: usize,
    left: usize,
    error: Option<Error>,
}

/// Appends the values of a chunk that succeeded as a whole to `values`.
fn append_chunk<R: DeserializeOwned + 'static>(values: &mut Vec<R>, out: &RunOutput) -> Result<()> {
    match &out.out {
        Some(bytes) if out.all_ok && codec::ints::append_ints(values, bytes.as_slice()) => Ok(()),
        Some(bytes) if out.all_ok => {
            let before = values.len();
            codec::decode_seed(Append(values), bytes.as_slice()).map_err(|e| {
                values.truncate(before);
                Error::from(e)
            })
        }
        _ => Err(out.first_failure.clone().map_or_else(
            || Error::InvalidArgument("a chunk without results".into()),
            Error::from,
        )),
    }
}

/// A seed that decodes a sequence onto the end of a vector.
struct Append<'a, R>(&'a mut Vec<R>);

impl<'de, R: serde::Deserialize<'de>> serde::de::DeserializeSeed<'de> for Append<'_, R> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, R: serde::Deserialize<'de>> serde::de::Visitor<'de> for Append<'_, R> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a sequence of results")
    }

    fn visit_seq<S: serde::de::SeqAccess<'de>>(
        self,
        mut seq: S,
    ) -> std::result::Result<(), S::Error> {
        while let Some(v) = seq.next_element()? {
            self.0.push(v);
        }
        Ok(())
    }
}

/// A vector for `items` values: reserved up front when it can be (the caller's count, not a
/// peer's; a count that is wrong or too large only makes the vector grow, or reserve nothing).
/// The size of a vector of values that is mapped at once, rather than page by page as it is
/// filled ([`mp_core::wirebuf::prefault`]).
const PREFAULT_AT: usize = 256 << 10;

fn values_for<R>(items: usize) -> Vec<R> {
    let mut values = Vec::new();
    let _ = values.try_reserve_exact(items);
    if std::mem::size_of_val(values.spare_capacity_mut()) >= PREFAULT_AT {
        mp_core::wirebuf::prefault(values.spare_capacity_mut());
    }
    values
}

/// The slot of a `map_async`: every chunk's output, the first error to arrive.
pub(crate) struct MapSink<R> {
    slot: Slot<MapInner>,
    callbacks: Mutex<Option<Callbacks<Vec<R>>>>,
}

impl<R: DeserializeOwned + Send + 'static> MapSink<R> {
    /// The sink of a map of `chunks` chunks and (as far as the caller knows) `items` items.
    pub(crate) fn new(chunks: usize, items: usize, callbacks: Callbacks<Vec<R>>) -> Arc<Self> {
        let sink = Arc::new(MapSink {
            slot: Slot::new(MapInner {
                chunks: (0..chunks).map(|_| None).collect(),
                items,
                left: chunks,
                error: None,
            }),
            callbacks: Mutex::new(if callbacks.is_empty() {
                None
            } else {
                Some(callbacks)
            }),
        });
        if chunks == 0 {
            sink.finish();
        }
        sink
    }

    fn finish(&self) {
        let callbacks = self
            .callbacks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(cb) = callbacks {
            let value = collect_map::<R>(&self.slot.lock().value);
            cb.run(&value);
        }
        let g = self.slot.lock();
        self.slot.set_ready(g);
    }
}

/// Every value of a finished map, or its first error.
fn collect_map<R: DeserializeOwned + 'static>(m: &MapInner) -> Result<Vec<R>> {
    if let Some(e) = &m.error {
        return Err(e.clone());
    }
    let mut all = values_for(m.items);
    for out in m.chunks.iter() {
        append_chunk(&mut all, out.as_ref().ok_or(Error::Terminated)?)?;
    }
    Ok(all)
}

impl<R: DeserializeOwned + Send + 'static> Sink for MapSink<R> {
    fn deliver(&self, index: usize, out: Result<RunOutput>) {
        let mut g = self.slot.lock();
        if g.ready || g.value.chunks.get(index).map_or(true, Option::is_some) || g.value.left == 0 {
            return;
        }
        let m = &mut g.value;
        m.left -= 1;
        let out = match out {
            Ok(o) => {
                if let (None, Some(f)) = (&m.error, &o.first_failure) {
                    m.error = Some(f.clone().into());
                }
                o
            }
            Err(e) => {
                if m.error.is_none() {
                    m.error = Some(e);
                }
                RunOutput {
                    out: None,
                    all_ok: false,
                    first_failure: None,
                    failures: Vec::new(),
                }
            }
        };
        m.chunks[index] = Some(Arc::new(out));
        let last = m.left == 0;
        if last {
            drop(g);
            self.finish();
        } else {
            // A `get` decodes each chunk as soon as it arrives in turn.
            self.slot.notify(g);
        }
    }
}

/// The result of [`Pool::map_async`](crate::Pool::map_async) and its kin: all the results, in
/// input order, once every chunk has finished.
///
/// Python: `multiprocessing.pool.MapResult`. A failed item makes the whole map fail with the
/// first error to arrive, but only once every chunk has finished (CPython's rule). Also a
/// [`Future`].
#[must_use = "the tasks run anyway; the results are lost unless you get() them"]
pub struct MapResult<R> {
    sink: Arc<MapSink<R>>,
}

impl<R> std::fmt::Debug for MapResult<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MapResult")
            .field("ready", &self.sink.slot.lock().ready)
            .finish()
    }
}

impl<R: DeserializeOwned + Send + 'static> MapResult<R> {
    pub(crate) fn new(sink: Arc<MapSink<R>>) -> Self {
        MapResult { sink }
    }

    /// Waits for every result; returns them in input order, or the first error.
    /// Python: `MapResult.get()`.
    pub fn get(&self) -> Result<Vec<R>> {
        self.get_until(Deadline::NEVER, false)
    }

    /// [`get`](Self::get) for the last time (the blocking `map`s): each chunk's encoded
    /// results are freed as soon as they are decoded, instead of when the `MapResult` drops,
    /// so a map holds at most a few chunks' bytes beside its values, not all of them; and the
    /// memory of the first chunks decoded takes the next ones.
    pub(crate) fn into_values(self) -> Result<Vec<R>> {
        self.get_until(Deadline::NEVER, true)
    }

    /// [`get`](Self::get) that gives up with [`Error::Timeout`] after `timeout`.
    /// Python: `MapResult.get(timeout)`.
    pub fn get_timeout(&self, timeout: Duration) -> Result<Vec<R>> {
        self.get_until(Deadline::after(timeout), false)
    }

    /// [`get_timeout`](Self::get_timeout) with a deadline (beyond Python: a deadline bounds
    /// several waits as one).
    pub fn get_deadline(&self, deadline: impl Into<Deadline>) -> Result<Vec<R>> {
        self.get_until(deadline.into(), false)
    }

    /// Decodes each chunk in this thread as soon as it arrives in turn (while the workers run
    /// the next ones), onto the end of the one vector it returns; with `consume`, leaves a
    /// tombstone in each chunk's place once decoded (no later `get` may follow).
    fn get_until(&self, deadline: Deadline, consume: bool) -> Result<Vec<R>> {
        let slot = &self.sink.slot;
        let mut g = slot.lock();
        let mut values = values_for::<R>(g.value.items);
        let mut next = 0;
        loop {
            if g.value.error.is_some() || next == g.value.chunks.len() {
                // Done, or failed: the map reports its first error once it has finished.
                let (g, ready) = slot.wait_while(g, deadline, |_| true);
                if !ready {
                    return Err(Error::Timeout);
                }
                return match &g.value.error {
                    Some(e) => Err(e.clone()),
                    None => Ok(values),
                };
            }
            let (back, _) = slot.wait_while(g, deadline, |m: &MapInner| {
                m.error.is_none() && m.chunks[next].is_none()
            });
            g = back;
            if g.value.error.is_some() {
                continue;
            }
            let out = if consume {
                // Still `Some`, so that a late duplicate of this chunk is refused as before
                // (and a place not yet filled is left as it is).
                g.value.chunks[next]
                    .as_mut()
                    .map(|c| std::mem::replace(c, Arc::new(RunOutput::taken())))
            } else {
                g.value.chunks[next].clone()
            };
            let Some(out) = out else {
                return Err(Error::Timeout);
            };
            drop(g);
            let decoded = append_chunk(&mut values, &out);
            // With `consume`, the last reference: the bytes go now.
            drop(out);
            g = slot.lock();
            if let Err(e) = decoded {
                // Not a failure the map knows of (a result that would not decode): reported
                // as the map's error once the map has finished.
                let (g, ready) = slot.wait_while(g, deadline, |_| true);
                if !ready {
                    return Err(Error::Timeout);
                }
                return Err(g.value.error.clone().unwrap_or(e));
            }
            next += 1;
        }
    }

    /// Waits until every chunk has finished. Python: `MapResult.wait()`.
    pub fn wait(&self) {
        let _ready = self.sink.slot.wait_until(Deadline::NEVER).1;
    }

    /// Waits at most `timeout`; returns whether the map is ready. Python: `MapResult.wait(t)`
    /// (see [`AsyncResult::wait_timeout`]).
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.sink.slot.wait_until(Deadline::after(timeout)).1
    }

    /// [`wait_timeout`](Self::wait_timeout) with a deadline (beyond Python).
    pub fn wait_deadline(&self, deadline: impl Into<Deadline>) -> bool {
        self.sink.slot.wait_until(deadline.into()).1
    }

    /// Whether every chunk has finished. Python: `MapResult.ready()`.
    pub fn ready(&self) -> bool {
        self.sink.slot.lock().ready
    }

    /// Whether every item succeeded; [`Error::NotReady`] before ready.
    /// Python: `MapResult.successful()`.
    pub fn successful(&self) -> Result<bool> {
        let g = self.sink.slot.lock();
        if !g.ready {
            return Err(Error::NotReady);
        }
        Ok(g.value.error.is_none())
    }
}

impl<R: DeserializeOwned + Send + 'static> Future for MapResult<R> {
    type Output = Result<Vec<R>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<Vec<R>>> {
        let g = self.sink.slot.poll_ready(cx);
        if !g.ready {
            return Poll::Pending;
        }
        Poll::Ready(collect_map(&g.value))
    }
}
