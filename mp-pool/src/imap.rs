//! `imap` and `imap_unordered`: lazy, bounded iterators over a pool's results.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use mp_core::{Deadline, Function};
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::pool::{Shared, Task};
use crate::result::{decode_chunk, Sink};
use crate::worker::{RunOutput, Runner};
use mp_core::wirebuf::OwnedBytes;

type Encode<A> = Box<dyn Fn(&[A]) -> Result<Vec<u8>> + Send>;

/// Where an imap's chunks land, in completion order.
struct ImapSink {
    m: Mutex<ImapInner>,
    cv: Condvar,
    /// How many chunks have been delivered: what the iterator watches while it spins.
    delivered: AtomicU64,
}

struct ImapInner {
    done: VecDeque<(usize, Result<RunOutput>)>,
    /// What the iterator sleeps for: the chunk of this index (`imap`), or any chunk
    /// ([`ANY_CHUNK`], `imap_unordered`). A chunk it does not wait for wakes nobody: with two
    /// workers, every other chunk of an `imap` arrives before its turn.
    waiting_for: Option<usize>,
}

/// [`ImapInner::waiting_for`] any chunk.
const ANY_CHUNK: usize = usize::MAX;

impl ImapSink {
    fn lock(&self) -> MutexGuard<'_, ImapInner> {
        self.m.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Sink for ImapSink {
    fn deliver(&self, index: usize, out: Result<RunOutput>) {
        let mut g = self.lock();
        if g.done.iter().any(|(i, _)| *i == index) {
            return;
        }
        g.done.push_back((index, out));
        self.delivered.fetch_add(1, Ordering::Release);
        let notify = g.waiting_for.is_some_and(|w| w == index || w == ANY_CHUNK);
        drop(g);
        if notify {
            self.cv.notify_one();
        }
    }
}

/// The machinery both iterators share.
pub(crate) struct ImapCore<R, I: Iterator> {
    shared: Arc<Shared>,
    input: Option<I>,
    encode: Encode<I::Item>,
    runner: Function<Runner>,
    sink: Arc<ImapSink>,
    chunksize: usize,
    buffersize: usize,
    ordered: bool,
    next_chunk: usize,
    next_yield: usize,
    in_flight: usize,
    chunk_lens: HashMap<usize, usize>,
    current: std::vec::IntoIter<Result<R>>,
    /// Items submitted and not yet yielded.
    pending_items: usize,
    failed: Option<Error>,
    stream_open: bool,
}

impl<R: DeserializeOwned, I: Iterator> ImapCore<R, I> {
    pub(crate) fn new(
        shared: Arc<Shared>,
        input: I,
        encode: Encode<I::Item>,
        runner: Function<Runner>,
        chunksize: usize,
        buffersize: usize,
        ordered: bool,
    ) -> Result<Self> {
        shared.open_stream()?;
        let mut core = ImapCore {
            shared,
            input: Some(input),
            encode,
            runner,
            sink: Arc::new(ImapSink {
                m: Mutex::new(ImapInner {
                    done: VecDeque::new(),
                    waiting_for: None,
                }),
                cv: Condvar::new(),
                delivered: AtomicU64::new(0),
            }),
            chunksize,
            buffersize,
            ordered,
            next_chunk: 0,
            next_yield: 0,
            in_flight: 0,
            chunk_lens: HashMap::new(),
            current: Vec::new().into_iter(),
            pending_items: 0,
            failed: None,
            stream_open: true,
        };
        core.refill();
        Ok(core)
    }

    fn end_input(&mut self) {
        self.input = None;
        if std::mem::replace(&mut self.stream_open, false) {
            self.shared.close_stream();
        }
    }

    /// Pulls from the input until `buffersize` chunks are in flight (once half of them have
    /// been taken, so that chunks go to the pool in batches).
    fn refill(&mut self) {
        if self.input.is_none() || self.in_flight > self.buffersize / 2 {
            return;
        }
        let mut tasks = Vec::new();
        let mut lens = Vec::new();
        while self.in_flight + tasks.len() < self.buffersize {
            let Some(input) = self.input.as_mut() else {
                break;
            };
            let items: Vec<I::Item> = input.by_ref().take(self.chunksize).collect();
            if items.is_empty() {
                self.end_input();
                break;
            }
            let payload = match (self.encode)(&items) {
                Ok(p) => OwnedBytes::Heap(p),
                Err(e) => {
                    self.failed = Some(e);
                    self.end_input();
                    break;
                }
            };
            let index = self.next_chunk + tasks.len();
            lens.push((index, items.len()));
            tasks.push(Task {
                id: self.shared.next_id(),
                runner: self.runner,
                payload,
                sink: self.sink.clone(),
                index,
                limit: None,
            });
        }
        if tasks.is_empty() {
            return;
        }
        let n = tasks.len();
        match self.shared.submit(tasks, true) {
            Ok(()) => {
                self.next_chunk += n;
                self.in_flight += n;
                for (index, len) in lens {
                    self.pending_items += len;
                    self.chunk_lens.insert(index, len);
                }
            }
            Err(e) => {
                self.failed = Some(e);
                self.end_input();
            }
        }
    }

    pub(crate) fn next_until(&mut self, deadline: Deadline) -> Option<Result<R>> {
        loop {
            if let Some(r) = self.current.next() {
                self.pending_items = self.pending_items.saturating_sub(1);
                return Some(r);
            }
            self.refill();
            if self.in_flight == 0 {
                return self.failed.take().map(Err);
            }
            let (index, out) = {
                let mut g = self.sink.lock();
                // Results come microseconds apart: look for the next one for a moment before
                // sleeping, so that neither this thread nor the supervisor (its wake-up call)
                // pays for a sleep per result.
                let spin_until = Instant::now() + mp_core::spin::SPIN;
                let mut may_spin = true;
                loop {
                    let pos = if self.ordered {
                        g.done.iter().position(|(i, _)| *i == self.next_yield)
                    } else if g.done.is_empty() {
                        None
                    } else {
                        Some(0)
                    };
                    if let Some(entry) = pos.and_then(|p| g.done.remove(p)) {
                        break entry;
                    }
                    let timeout = match deadline.remaining() {
                        None => Duration::from_secs(3600),
                        Some(left) if left.is_zero() => return Some(Err(Error::Timeout)),
                        Some(left) => left,
                    };
                    let spin = spin_until.saturating_duration_since(Instant::now());
                    if may_spin && !spin.is_zero() {
                        let seen = self.sink.delivered.load(Ordering::Acquire);
                        drop(g);
                        // Stops at the first chunk delivered, the one awaited or not.
                        let came = mp_core::spin::spin_until(spin.min(timeout), || {
                            self.sink.delivered.load(Ordering::Acquire) != seen
                        });
                        g = self.sink.lock();
                        // Spun out (or no right to spin): sleep from now on. Either way, look
                        // again first: a chunk may have come while the lock was free.
                        may_spin = came;
                        continue;
                    }
                    g.waiting_for = Some(if self.ordered {
                        self.next_yield
                    } else {
                        ANY_CHUNK
                    });
                    g = self
                        .sink
                        .cv
                        .wait_timeout(g, timeout)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                    g.waiting_for = None;
                }
            };
            self.in_flight -= 1;
            if self.ordered {
                self.next_yield += 1;
            }
            let len = self.chunk_lens.remove(&index).unwrap_or(0);
            let items = match out.and_then(|o| decode_chunk::<R>(&o)) {
                Ok(items) => items,
                Err(e) => (0..len).map(|_| Err(e.clone())).collect(),
            };
            self.current = items.into_iter();
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let (lo, hi) = self
            .input
            .as_ref()
            .map_or((0, Some(0)), Iterator::size_hint);
        let extra = self.pending_items + usize::from(self.failed.is_some());
        (
            lo.saturating_add(extra),
            hi.and_then(|h| h.checked_add(extra)),
        )
    }
}

impl<R, I: Iterator> Drop for ImapCore<R, I> {
    fn drop(&mut self) {
        if std::mem::replace(&mut self.stream_open, false) {
            self.shared.close_stream();
        }
    }
}

macro_rules! imap_iterator {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[must_use = "iterators are lazy: the input is pulled as results are taken"]
        pub struct $name<R, I: Iterator> {
            core: ImapCore<R, I>,
        }

        impl<R, I: Iterator> std::fmt::Debug for $name<R, I> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("in_flight", &self.core.in_flight)
                    .field("pending_items", &self.core.pending_items)
                    .finish()
            }
        }

        impl<R: DeserializeOwned, I: Iterator> $name<R, I> {
            pub(crate) fn new(core: ImapCore<R, I>) -> Self {
                $name { core }
            }

            /// The next result, waiting at most `timeout`: `Some(Err(Error::Timeout))` when it
            /// does not come in time (nothing is consumed; call again). Python:
            /// `IMapIterator.next(timeout)`.
            pub fn next_timeout(&mut self, timeout: Duration) -> Option<Result<R>> {
                self.core.next_until(Deadline::after(timeout))
            }

            /// [`next_timeout`](Self::next_timeout) with a deadline (beyond Python).
            pub fn next_deadline(&mut self, deadline: impl Into<Deadline>) -> Option<Result<R>> {
                self.core.next_until(deadline.into())
            }
        }

        impl<R: DeserializeOwned, I: Iterator> Iterator for $name<R, I> {
            type Item = Result<R>;

            /// Waits for the next result. Python: `next(it)`.
            fn next(&mut self) -> Option<Result<R>> {
                self.core.next_until(Deadline::NEVER)
            }

            fn size_hint(&self) -> (usize, Option<usize>) {
                self.core.size_hint()
            }
        }

        impl<R: DeserializeOwned, I: ExactSizeIterator> ExactSizeIterator for $name<R, I> {}
    };
}

imap_iterator! {
    /// The iterator of [`Pool::imap`](crate::Pool::imap): results in input order.
    ///
    /// Python: `multiprocessing.pool.IMapIterator`. Each item is the task's `Result`; a chunk
    /// that failed as a whole (its worker died, the pool was terminated) yields its error once
    /// per item. An [`ExactSizeIterator`] when the input is (a progress bar can wrap it).
    IMapIterator
}

imap_iterator! {
    /// The iterator of [`Pool::imap_unordered`](crate::Pool::imap_unordered): results in
    /// completion order.
    ///
    /// Python: `multiprocessing.pool.IMapUnorderedIterator`. See [`IMapIterator`].
    IMapUnorderedIterator
}
