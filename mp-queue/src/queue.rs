//! `Queue`, `SimpleQueue` and `JoinableQueue`.

use std::borrow::Borrow;
use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mp_core::Deadline;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};
use crate::ring::{Ring, DEFAULT_CAPACITY, DEFAULT_SOFT};

const KIND_QUEUE: u32 = 1;
const KIND_SIMPLE: u32 = 2;
const KIND_JOINABLE: u32 = 3;

/// The sizes of a queue's shared data area.
///
/// Beyond Python. The data area is address space reserved in every process that uses the
/// queue; only the pages actually holding items take memory. `resident` is how much a steady
/// queue keeps mapped in (it wraps around there while the backlog is short); a backlog may grow
/// to `capacity` bytes, and the pages past `resident` are released once it drains.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueSizes {
    /// Bytes of encoded items the queue can hold at once (rounded up to a power of two, 64 KiB
    /// to 1 GiB). An item must fit in it whole. Default: 1 GiB.
    pub capacity: usize,
    /// Bytes a steady queue keeps resident. Default: 4 MiB. It grows on its own to hold four
    /// of the largest items put so far (up to 256 MiB and half of `capacity`), so that a
    /// stream of large items keeps reusing the same pages too.
    pub resident: usize,
}

impl Default for QueueSizes {
    fn default() -> Self {
        QueueSizes {
            capacity: DEFAULT_CAPACITY,
            resident: DEFAULT_SOFT,
        }
    }
}

/// A FIFO queue between processes, for any serde type.
///
/// Python: `multiprocessing.Queue(maxsize=0)`. Many processes may put and get at once; items
/// of each producer arrive in the order it put them, none lost or duplicated. Cloning gives
/// another handle to the same queue; pass one to a child (fork, spawn or forkserver) or send it
/// over a duplex `Connection` to share it.
///
/// Unlike CPython's pipe-and-feeder-thread queue, items go straight into a shared-memory ring
/// (see the crate docs): `put` returns once the item is in the queue, there is no background
/// thread, and a process killed in the middle of a `put` or `get` never corrupts the queue for
/// the others. An item whose `put` had not returned is delivered whole or not at all; an item
/// whose `get` had not returned is either still in the queue or gone with the killed process.
pub struct Queue<T> {
    ring: Ring,
    closed: Arc<AtomicU32>,
    _items: PhantomData<fn(T) -> T>,
}

impl<T> Clone for Queue<T> {
    fn clone(&self) -> Self {
        Queue {
            ring: self.ring.clone(),
            closed: self.closed.clone(),
            _items: PhantomData,
        }
    }
}

impl<T> fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("qsize", &self.ring.qsize())
            .field("maxsize", &self.ring.maxsize())
            .field("closed", &(self.closed.load(Ordering::Relaxed) != 0))
            .finish()
    }
}

impl<T> Serialize for Queue<T> {
    /// A queue serializes only inside a handle transfer (see `mp_core::handle`).
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.ring.serialize(s)
    }
}

impl<'de, T> Deserialize<'de> for Queue<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Queue::from_ring(Ring::deserialize(d)?, KIND_QUEUE).map_err(serde::de::Error::custom)
    }
}

impl<T> Queue<T> {
    fn from_ring(ring: Ring, kind: u32) -> Result<Self> {
        if ring.kind() != kind {
            return Err(Error::Core(mp_core::Error::Handle(format!(
                "the queue received is a {}, not a {}",
                kind_name(ring.kind()),
                kind_name(kind)
            ))));
        }
        Ok(Queue {
            ring,
            closed: Arc::new(AtomicU32::new(0)),
            _items: PhantomData,
        })
    }

    fn build(kind: u32, maxsize: usize, sizes: QueueSizes) -> Result<Self> {
        let ring = Ring::new(kind, sizes.capacity, sizes.resident, maxsize as u64)?;
        Ok(Queue {
            ring,
            closed: Arc::new(AtomicU32::new(0)),
            _items: PhantomData,
        })
    }

    fn check_open(&self) -> Result<()> {
        // The pid of the process that closed this handle: a forked child's copy is open.
        let closer = self.closed.load(Ordering::Relaxed);
        if closer != 0 && closer == mp_core::process_id() {
            Err(Error::Closed)
        } else {
            Ok(())
        }
    }

    /// The number of items in the queue. Exact whenever no put or get is in progress (unlike
    /// CPython's, which is approximate). Python: `Queue.qsize()`.
    pub fn qsize(&self) -> usize {
        self.ring.qsize() as usize
    }

    /// Whether the queue holds no item. Python: `Queue.empty()`.
    pub fn empty(&self) -> bool {
        self.ring.qsize() == 0
    }

    /// Whether the queue holds `maxsize` items (never, for an unbounded queue).
    /// Python: `Queue.full()`.
    pub fn full(&self) -> bool {
        let max = self.ring.maxsize();
        max > 0 && self.ring.qsize() >= max
    }

    /// The bound given at creation (0: unbounded). Python: `Queue._maxsize`.
    pub fn maxsize(&self) -> usize {
        self.ring.maxsize() as usize
    }

    /// Closes this handle (and its clones in this process): later `put`s and `get`s through it
    /// fail with [`Error::Closed`]. Items already put stay in the queue for the other handles
    /// and processes. Python: `Queue.close()`.
    pub fn close(&self) {
        let me = mp_core::process_id();
        self.closed.store(me, Ordering::Relaxed);
    }

    /// A no-op: there is no feeder thread to join, since `put` writes the item into the queue
    /// before it returns. Python: `Queue.join_thread()`.
    pub fn join_thread(&self) {}

    /// A no-op, for the same reason as [`join_thread`](Self::join_thread).
    /// Python: `Queue.cancel_join_thread()`.
    pub fn cancel_join_thread(&self) {}
}

impl<T: Serialize + DeserializeOwned> Queue<T> {
    /// An unbounded queue: `put` never waits for room (up to the data area's capacity, 1 GiB
    /// of encoded items by default). Python: `multiprocessing.Queue()`.
    pub fn new() -> Result<Self> {
        Self::build(KIND_QUEUE, 0, QueueSizes::default())
    }

    /// A queue of at most `maxsize` items (`0`: unbounded). Python: `Queue(maxsize)`.
    pub fn with_maxsize(maxsize: usize) -> Result<Self> {
        Self::build(KIND_QUEUE, maxsize, QueueSizes::default())
    }

    /// A queue with a bound and explicit data-area sizes (beyond Python).
    pub fn with_sizes(maxsize: usize, sizes: QueueSizes) -> Result<Self> {
        Self::build(KIND_QUEUE, maxsize, sizes)
    }

    fn put_until(&self, item: &T, deadline: Deadline) -> Result<()> {
        self.check_open()?;
        self.ring.put(item, deadline)
    }

    fn get_until(&self, deadline: Deadline) -> Result<T> {
        self.check_open()?;
        self.ring.get(deadline)
    }

    /// Puts an item, waiting for room if the queue is bounded and full.
    ///
    /// Python: `Queue.put(obj)`. A value that cannot be encoded gives [`Error::Codec`] and the
    /// queue is unchanged. Values holding handles (a `Connection`, a lock, ...) cannot go
    /// through a queue: send those over a duplex `Connection`.
    pub fn put(&self, item: impl Borrow<T>) -> Result<()> {
        self.put_until(item.borrow(), Deadline::NEVER)
    }

    /// Puts an item, waiting at most `timeout` for room; [`Error::Full`] after that.
    /// Python: `Queue.put(obj, timeout=t)`.
    pub fn put_timeout(&self, item: impl Borrow<T>, timeout: Duration) -> Result<()> {
        self.put_until(item.borrow(), Deadline::after(timeout))
    }

    /// [`put_timeout`](Self::put_timeout) with a deadline.
    pub fn put_deadline(&self, item: impl Borrow<T>, deadline: impl Into<Deadline>) -> Result<()> {
        self.put_until(item.borrow(), deadline.into())
    }

    /// Puts an item only if there is room now; [`Error::Full`] otherwise.
    /// Python: `Queue.put_nowait(obj)`.
    pub fn put_nowait(&self, item: impl Borrow<T>) -> Result<()> {
        self.put_until(item.borrow(), Deadline::now())
    }

    /// Takes the oldest item, waiting for one. Python: `Queue.get()`.
    ///
    /// An item that does not decode as `T` gives [`Error::Codec`]; it is consumed and the
    /// queue keeps working.
    pub fn get(&self) -> Result<T> {
        self.get_until(Deadline::NEVER)
    }

    /// Takes the oldest item, waiting at most `timeout`; [`Error::Empty`] after that.
    /// Python: `Queue.get(timeout=t)`.
    pub fn get_timeout(&self, timeout: Duration) -> Result<T> {
        self.get_until(Deadline::after(timeout))
    }

    /// [`get_timeout`](Self::get_timeout) with a deadline.
    pub fn get_deadline(&self, deadline: impl Into<Deadline>) -> Result<T> {
        self.get_until(deadline.into())
    }

    /// Takes an item only if one is there now; [`Error::Empty`] otherwise.
    /// Python: `Queue.get_nowait()`.
    pub fn get_nowait(&self) -> Result<T> {
        self.get_until(Deadline::now())
    }
}

/// `Clone`, `Serialize` and `Deserialize` of a queue type that wraps a [`Queue`] in `inner`,
/// written once: clones share the ring; a received ring must be of `$kind`.
macro_rules! queue_handle {
    ($name:ident, $kind:expr) => {
        impl<T> Clone for $name<T> {
            fn clone(&self) -> Self {
                $name {
                    inner: self.inner.clone(),
                }
            }
        }

        impl<T> Serialize for $name<T> {
            fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                self.inner.ring.serialize(s)
            }
        }

        impl<'de, T> Deserialize<'de> for $name<T> {
            fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                let inner = Queue::from_ring(Ring::deserialize(d)?, $kind)
                    .map_err(serde::de::Error::custom)?;
                Ok($name { inner })
            }
        }
    };
}

fn kind_name(kind: u32) -> &'static str {
    match kind {
        KIND_QUEUE => "Queue",
        KIND_SIMPLE => "SimpleQueue",
        KIND_JOINABLE => "JoinableQueue",
        _ => "unknown queue",
    }
}

/// A simpler queue: `put`, `get`, `empty`, `close`.
///
/// Python: `multiprocessing.SimpleQueue`. The same shared ring as [`Queue`], unbounded.
pub struct SimpleQueue<T> {
    inner: Queue<T>,
}

impl<T> fmt::Debug for SimpleQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimpleQueue")
            .field("empty", &self.inner.empty())
            .finish()
    }
}

queue_handle!(SimpleQueue, KIND_SIMPLE);

impl<T: Serialize + DeserializeOwned> SimpleQueue<T> {
    /// A new empty queue. Python: `multiprocessing.SimpleQueue()`.
    pub fn new() -> Result<Self> {
        Ok(SimpleQueue {
            inner: Queue::build(KIND_SIMPLE, 0, QueueSizes::default())?,
        })
    }

    /// Puts an item. Python: `SimpleQueue.put(obj)`.
    pub fn put(&self, item: impl Borrow<T>) -> Result<()> {
        self.inner.put(item)
    }

    /// Takes the oldest item, waiting for one. Python: `SimpleQueue.get()`.
    pub fn get(&self) -> Result<T> {
        self.inner.get()
    }

    /// Takes the oldest item, waiting at most `timeout` (beyond Python, whose `SimpleQueue.get`
    /// has no timeout); [`Error::Empty`] after that, as `Queue.get` raises `queue.Empty`.
    pub fn get_timeout(&self, timeout: Duration) -> Result<T> {
        self.inner.get_timeout(timeout)
    }

    /// [`get_timeout`](Self::get_timeout) with a deadline.
    pub fn get_deadline(&self, deadline: impl Into<Deadline>) -> Result<T> {
        self.inner.get_deadline(deadline)
    }

    /// Python: `SimpleQueue.empty()`.
    pub fn empty(&self) -> bool {
        self.inner.empty()
    }

    /// Closes this handle. Python: `SimpleQueue.close()`.
    pub fn close(&self) {
        self.inner.close()
    }
}

/// A [`Queue`] that also counts unfinished tasks.
///
/// Python: `multiprocessing.JoinableQueue(maxsize=0)`. Every `put` adds a task; consumers call
/// [`task_done`](Self::task_done) once per item they finished; [`join`](Self::join) waits, in
/// any process, until every item put has been marked done. It has every method of [`Queue`]
/// besides.
pub struct JoinableQueue<T> {
    inner: Queue<T>,
}

impl<T> fmt::Debug for JoinableQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinableQueue")
            .field("qsize", &self.inner.qsize())
            .finish()
    }
}

queue_handle!(JoinableQueue, KIND_JOINABLE);

impl<T: Serialize + DeserializeOwned> JoinableQueue<T> {
    /// An unbounded joinable queue. Python: `multiprocessing.JoinableQueue()`.
    pub fn new() -> Result<Self> {
        Self::with_maxsize(0)
    }

    /// A joinable queue of at most `maxsize` items. Python: `JoinableQueue(maxsize)`.
    pub fn with_maxsize(maxsize: usize) -> Result<Self> {
        Ok(JoinableQueue {
            inner: Queue::build(KIND_JOINABLE, maxsize, QueueSizes::default())?,
        })
    }

    /// Puts an item (one more unfinished task), waiting for room. Python:
    /// `JoinableQueue.put(obj)`; errors as [`Queue::put`].
    pub fn put(&self, item: impl Borrow<T>) -> Result<()> {
        self.inner.put(item)
    }

    /// [`put`](Self::put) waiting at most `timeout` for room; [`Error::Full`] after that.
    /// Python: `JoinableQueue.put(obj, timeout=t)`.
    pub fn put_timeout(&self, item: impl Borrow<T>, timeout: Duration) -> Result<()> {
        self.inner.put_timeout(item, timeout)
    }

    /// [`put_timeout`](Self::put_timeout) with a deadline.
    pub fn put_deadline(&self, item: impl Borrow<T>, deadline: impl Into<Deadline>) -> Result<()> {
        self.inner.put_deadline(item, deadline)
    }

    /// [`put`](Self::put) only if there is room now; [`Error::Full`] otherwise.
    /// Python: `JoinableQueue.put_nowait(obj)`.
    pub fn put_nowait(&self, item: impl Borrow<T>) -> Result<()> {
        self.inner.put_nowait(item)
    }

    /// Takes the oldest item, waiting for one. Python: `JoinableQueue.get()`; errors as
    /// [`Queue::get`].
    pub fn get(&self) -> Result<T> {
        self.inner.get()
    }

    /// [`get`](Self::get) waiting at most `timeout`; [`Error::Empty`] after that.
    /// Python: `JoinableQueue.get(timeout=t)`.
    pub fn get_timeout(&self, timeout: Duration) -> Result<T> {
        self.inner.get_timeout(timeout)
    }

    /// [`get_timeout`](Self::get_timeout) with a deadline.
    pub fn get_deadline(&self, deadline: impl Into<Deadline>) -> Result<T> {
        self.inner.get_deadline(deadline)
    }

    /// Takes an item only if one is there now; [`Error::Empty`] otherwise.
    /// Python: `JoinableQueue.get_nowait()`.
    pub fn get_nowait(&self) -> Result<T> {
        self.inner.get_nowait()
    }
}

impl<T> JoinableQueue<T> {
    /// Marks one item as finished. More calls than items put is [`Error::TaskDone`] (Python:
    /// `ValueError`). Python: `JoinableQueue.task_done()`.
    pub fn task_done(&self) -> Result<()> {
        self.inner.ring.task_done()
    }

    /// Waits until every item put has been marked done. Python: `JoinableQueue.join()`.
    pub fn join(&self) -> Result<()> {
        self.inner.ring.join(Deadline::NEVER);
        Ok(())
    }

    /// [`join`](Self::join) for at most `timeout` (beyond Python, whose `join` has no timeout);
    /// `Ok(false)` if tasks remain, as `Event.wait` returns (the timeout contract's rule for a
    /// wait for a state).
    pub fn join_timeout(&self, timeout: Duration) -> Result<bool> {
        Ok(self.inner.ring.join(Deadline::after(timeout)))
    }

    /// [`join_timeout`](Self::join_timeout) with a deadline.
    pub fn join_deadline(&self, deadline: impl Into<Deadline>) -> Result<bool> {
        Ok(self.inner.ring.join(deadline.into()))
    }

    /// The number of items in the queue. Python: `JoinableQueue.qsize()`.
    pub fn qsize(&self) -> usize {
        self.inner.qsize()
    }

    /// Whether the queue holds no item. Python: `JoinableQueue.empty()`.
    pub fn empty(&self) -> bool {
        self.inner.empty()
    }

    /// Whether the queue holds `maxsize` items. Python: `JoinableQueue.full()`.
    pub fn full(&self) -> bool {
        self.inner.full()
    }

    /// The bound given at creation (0: unbounded).
    pub fn maxsize(&self) -> usize {
        self.inner.maxsize()
    }

    /// Closes this handle, as [`Queue::close`]. Python: `JoinableQueue.close()`.
    pub fn close(&self) {
        self.inner.close()
    }

    /// A no-op, as [`Queue::join_thread`]. Python: `JoinableQueue.join_thread()`.
    pub fn join_thread(&self) {}

    /// A no-op, as [`Queue::cancel_join_thread`].
    /// Python: `JoinableQueue.cancel_join_thread()`.
    pub fn cancel_join_thread(&self) {}
}
