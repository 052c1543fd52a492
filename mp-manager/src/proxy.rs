//! Typed proxies of the built-in types: `DictProxy<K, V>`, `ListProxy<T>`, `NamespaceProxy`.
//!
//! A proxy is a handle: `Clone + Send + Sync` (clones share one connection), passed to a child
//! under every start method or sent over a duplex `Connection` (the receiver connects to the
//! server itself). Every method is one request to the server. Values are copies: mutating a
//! value fetched from a proxy changes nothing on the server until it is assigned back, as
//! Python's documentation warns.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use rmpv::Value;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};
use crate::manager::{from_value, to_value, ProxyWire, Remote, Typed};

/// A typed proxy of one of the server's types: what [`Manager::shared`](crate::Manager::shared)
/// returns.
pub trait Proxy: Sized {
    /// The server type id it proxies (`"Queue"`, `"dict"`, ...).
    const TYPEID: &'static str;
    #[doc(hidden)]
    fn from_handle(handle: Handle) -> Self;
}

/// The inside of a proxy (opaque; for [`Proxy`]'s implementations, such as the ones
/// [`exposed!`](crate::exposed) writes).
#[doc(hidden)]
#[derive(Clone, Debug)]
pub struct Handle(pub(crate) Arc<Remote>);

impl Handle {
    /// Calls `method` on the object.
    #[doc(hidden)]
    pub fn call(&self, method: &str, args: Vec<Value>) -> Result<Value> {
        self.0.call(method, args)
    }

    /// Calls `method`, whose result the server makes a new object: its proxy's handle.
    #[doc(hidden)]
    pub fn call_proxy(&self, method: &str, args: Vec<Value>) -> Result<Handle> {
        self.0.call_proxy(method, args).map(Handle)
    }
}

impl Serialize for Handle {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::Error as _;
        self.0.to_wire().map_err(S::Error::custom)?.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Handle {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error as _;
        let wire = ProxyWire::deserialize(d)?;
        Remote::from_wire(wire)
            .map(Handle)
            .map_err(D::Error::custom)
    }
}

macro_rules! proxy_handle {
    ($name:ident $(< $($p:ident),* >)?, $typeid:literal) => {
        impl $(< $($p),* >)? Proxy for $name $(< $($p),* >)? {
            const TYPEID: &'static str = $typeid;
            fn from_handle(handle: Handle) -> Self {
                $name { remote: handle.0, _t: std::marker::PhantomData }
            }
        }

        impl $(< $($p),* >)? $name $(< $($p),* >)? {
            pub(crate) fn from_remote(remote: Arc<Remote>) -> Self {
                $name { remote, _t: std::marker::PhantomData }
            }
        }

        impl $(< $($p),* >)? Clone for $name $(< $($p),* >)? {
            fn clone(&self) -> Self {
                $name { remote: Arc::clone(&self.remote), _t: std::marker::PhantomData }
            }
        }

        impl $(< $($p),* >)? fmt::Debug for $name $(< $($p),* >)? {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("token", self.remote.token())
                    .finish()
            }
        }

        impl $(< $($p),* >)? Serialize for $name $(< $($p),* >)? {
            fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                use serde::ser::Error as _;
                self.remote.to_wire().map_err(S::Error::custom)?.serialize(s)
            }
        }

        impl<'de, $($($p),*)?> Deserialize<'de> for $name $(< $($p),* >)? {
            fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                use serde::de::Error as _;
                let wire = ProxyWire::deserialize(d)?;
                let remote = Remote::from_wire(wire).map_err(D::Error::custom)?;
                Ok($name { remote, _t: std::marker::PhantomData })
            }
        }

        impl $(< $($p),* >)? $name $(< $($p),* >)? {
            /// The object's id on its server (Python: `proxy._id`).
            pub fn id(&self) -> u64 {
                self.remote.token().id
            }
        }
    };
}

/// A proxy of a dict on a manager's server: keys compare by value, insertion order is kept.
///
/// Python: `manager.dict()` → `DictProxy`. `d[k]` is [`get_item`](Self::get_item) (a missing
/// key is [`Error::is_key_error`]), `d[k] = v` is [`set`](Self::set), `del d[k]` is
/// [`remove`](Self::remove), `k in d` is [`contains`](Self::contains).
pub struct DictProxy<K, V> {
    remote: Arc<Remote>,
    _t: Typed<(K, V)>,
}

proxy_handle!(DictProxy<K, V>, "dict");

impl<K, V> DictProxy<K, V>
where
    K: Serialize + DeserializeOwned,
    V: Serialize + DeserializeOwned,
{
    fn call(&self, method: &str, args: Vec<Value>) -> Result<Value> {
        self.remote.call(method, args)
    }

    /// `d[k]`: the value of `k`; a missing key is [`Error::is_key_error`].
    pub fn get_item(&self, k: &K) -> Result<V> {
        from_value(self.call("__getitem__", vec![to_value(k)?])?)
    }

    /// `d.get(k)`: the value of `k`, `None` when missing.
    pub fn get(&self, k: &K) -> Result<Option<V>> {
        match self.get_item(k) {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.is_key_error() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `d[k] = v`.
    pub fn set(&self, k: K, v: V) -> Result<()> {
        self.call("__setitem__", vec![to_value(&k)?, to_value(&v)?])
            .map(drop)
    }

    /// `del d[k]`; a missing key is [`Error::is_key_error`].
    pub fn remove(&self, k: &K) -> Result<()> {
        self.call("__delitem__", vec![to_value(k)?]).map(drop)
    }

    /// `k in d`.
    pub fn contains(&self, k: &K) -> Result<bool> {
        match self.call("__contains__", vec![to_value(k)?])? {
            Value::Boolean(b) => Ok(b),
            other => Err(Error::Codec(format!("__contains__ gave {other}"))),
        }
    }

    /// `len(d)`.
    pub fn len(&self) -> Result<usize> {
        from_value(self.call("__len__", Vec::new())?)
    }

    /// `len(d) == 0`.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// `list(d.keys())`, in insertion order.
    pub fn keys(&self) -> Result<Vec<K>> {
        from_value(self.call("keys", Vec::new())?)
    }

    /// `list(d.values())`, in insertion order.
    pub fn values(&self) -> Result<Vec<V>> {
        from_value(self.call("values", Vec::new())?)
    }

    /// `list(d.items())`, in insertion order.
    pub fn items(&self) -> Result<Vec<(K, V)>> {
        from_value(self.call("items", Vec::new())?)
    }

    /// `d.copy()`: the pairs, in insertion order (a plain copy, no longer shared).
    pub fn copy(&self) -> Result<Vec<(K, V)>> {
        from_value(self.call("copy", Vec::new())?)
    }

    /// `d.update(pairs)`.
    pub fn update(&self, pairs: impl IntoIterator<Item = (K, V)>) -> Result<()> {
        let pairs: Vec<(K, V)> = pairs.into_iter().collect();
        self.call("update", vec![to_value(&pairs)?]).map(drop)
    }

    /// `d.pop(k)`; a missing key is [`Error::is_key_error`].
    pub fn pop(&self, k: &K) -> Result<V> {
        from_value(self.call("pop", vec![to_value(k)?])?)
    }

    /// `d.popitem()`: the last pair inserted; an empty dict is [`Error::is_key_error`].
    pub fn popitem(&self) -> Result<(K, V)> {
        from_value(self.call("popitem", Vec::new())?)
    }

    /// `d.setdefault(k, default)`: the value of `k`, set to `default` first if missing.
    pub fn setdefault(&self, k: K, default: V) -> Result<V> {
        from_value(self.call("setdefault", vec![to_value(&k)?, to_value(&default)?])?)
    }

    /// `d.clear()`.
    pub fn clear(&self) -> Result<()> {
        self.call("clear", Vec::new()).map(drop)
    }
}

/// A proxy of a list on a manager's server.
///
/// Python: `manager.list()` → `ListProxy`. Indices follow Python's rules (`-1` is the last
/// item; out of range is [`Error::is_index_error`]); `l[a:b]` is [`slice`](Self::slice).
pub struct ListProxy<T> {
    remote: Arc<Remote>,
    _t: Typed<T>,
}

proxy_handle!(ListProxy<T>, "list");

impl<T: Serialize + DeserializeOwned> ListProxy<T> {
    fn call(&self, method: &str, args: Vec<Value>) -> Result<Value> {
        self.remote.call(method, args)
    }

    /// `l.append(x)`.
    pub fn append(&self, x: T) -> Result<()> {
        self.call("append", vec![to_value(&x)?]).map(drop)
    }

    /// `l.extend(items)`.
    pub fn extend(&self, items: impl IntoIterator<Item = T>) -> Result<()> {
        let items: Vec<T> = items.into_iter().collect();
        self.call("extend", vec![to_value(&items)?]).map(drop)
    }

    /// `l[i]`.
    pub fn get(&self, i: isize) -> Result<T> {
        from_value(self.call("__getitem__", vec![Value::from(i as i64)])?)
    }

    /// `l[i] = x`.
    pub fn set(&self, i: isize, x: T) -> Result<()> {
        self.call("__setitem__", vec![Value::from(i as i64), to_value(&x)?])
            .map(drop)
    }

    /// `del l[i]`.
    pub fn delete(&self, i: isize) -> Result<()> {
        self.call("__delitem__", vec![Value::from(i as i64)])
            .map(drop)
    }

    /// `l[start:stop]` (`None`: from the start, to the end; negative from the end).
    pub fn slice(&self, start: Option<isize>, stop: Option<isize>) -> Result<Vec<T>> {
        let bound = |b: Option<isize>| b.map_or(Value::Nil, |b| Value::from(b as i64));
        from_value(self.call("getslice", vec![bound(start), bound(stop)])?)
    }

    /// `l.insert(i, x)`.
    pub fn insert(&self, i: isize, x: T) -> Result<()> {
        self.call("insert", vec![Value::from(i as i64), to_value(&x)?])
            .map(drop)
    }

    /// `l.pop()`: the last item; an empty list is [`Error::is_index_error`].
    pub fn pop(&self) -> Result<T> {
        from_value(self.call("pop", Vec::new())?)
    }

    /// `l.pop(i)`.
    pub fn pop_at(&self, i: isize) -> Result<T> {
        from_value(self.call("pop", vec![Value::from(i as i64)])?)
    }

    /// `l.remove(x)`: the first equal item; none is [`Error::is_value_error`].
    pub fn remove(&self, x: &T) -> Result<()> {
        self.call("remove", vec![to_value(x)?]).map(drop)
    }

    /// `l.index(x)`; none is [`Error::is_value_error`].
    pub fn index(&self, x: &T) -> Result<usize> {
        from_value(self.call("index", vec![to_value(x)?])?)
    }

    /// `l.count(x)`.
    pub fn count(&self, x: &T) -> Result<usize> {
        from_value(self.call("count", vec![to_value(x)?])?)
    }

    /// `x in l`.
    pub fn contains(&self, x: &T) -> Result<bool> {
        from_value(self.call("__contains__", vec![to_value(x)?])?)
    }

    /// `len(l)`.
    pub fn len(&self) -> Result<usize> {
        from_value(self.call("__len__", Vec::new())?)
    }

    /// `len(l) == 0`.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// `l.reverse()`.
    pub fn reverse(&self) -> Result<()> {
        self.call("reverse", Vec::new()).map(drop)
    }

    /// `l[:]`: a plain copy of the items.
    pub fn copy(&self) -> Result<Vec<T>> {
        from_value(self.call("copy", Vec::new())?)
    }

    /// `l.clear()`.
    pub fn clear(&self) -> Result<()> {
        self.call("clear", Vec::new()).map(drop)
    }
}

/// A proxy of a namespace on a manager's server: named attributes of any serde type.
///
/// Python: `manager.Namespace()`; `ns.x` is [`get`](Self::get) (a missing attribute is an
/// `AttributeError`, [`Error::Remote`]), `ns.x = v` is [`set`](Self::set).
pub struct NamespaceProxy {
    remote: Arc<Remote>,
    _t: Typed<()>,
}

proxy_handle!(NamespaceProxy, "Namespace");

impl NamespaceProxy {
    /// `ns.name`, decoded as `T`.
    pub fn get<T: DeserializeOwned>(&self, name: &str) -> Result<T> {
        from_value(
            self.remote
                .call("__getattribute__", vec![Value::from(name)])?,
        )
    }

    /// `ns.name = value`.
    pub fn set<T: Serialize + ?Sized>(&self, name: &str, value: &T) -> Result<()> {
        self.remote
            .call("__setattr__", vec![Value::from(name), to_value(value)?])
            .map(drop)
    }

    /// `del ns.name`.
    pub fn delete(&self, name: &str) -> Result<()> {
        self.remote
            .call("__delattr__", vec![Value::from(name)])
            .map(drop)
    }

    /// The attribute names, sorted (Python: `dir(ns)` without the dunders).
    pub fn names(&self) -> Result<Vec<String>> {
        from_value(self.remote.call("__dir__", Vec::new())?)
    }
}

/// Seconds as a MessagePack float, for a timeout argument.
fn secs(d: Duration) -> Value {
    Value::from(d.as_secs_f64())
}

/// The methods of both queue proxies.
macro_rules! queue_methods {
    () => {
        /// `q.put(item)`: waits for room (a queue with a `maxsize`).
        pub fn put(&self, item: T) -> Result<()> {
            self.remote.call("put", vec![to_value(&item)?]).map(drop)
        }

        /// `q.put(item, timeout=t)`: [`Error::is_full`] if no room came.
        pub fn put_timeout(&self, item: T, timeout: Duration) -> Result<()> {
            self.remote
                .call(
                    "put",
                    vec![to_value(&item)?, Value::Boolean(true), secs(timeout)],
                )
                .map(drop)
        }

        /// `q.put_nowait(item)`.
        pub fn put_nowait(&self, item: T) -> Result<()> {
            self.remote
                .call("put_nowait", vec![to_value(&item)?])
                .map(drop)
        }

        /// `q.get()`: waits for an item.
        pub fn get(&self) -> Result<T> {
            from_value(self.remote.call("get", Vec::new())?)
        }

        /// `q.get(timeout=t)`: [`Error::is_empty`] if none came.
        pub fn get_timeout(&self, timeout: Duration) -> Result<T> {
            from_value(
                self.remote
                    .call("get", vec![Value::Boolean(true), secs(timeout)])?,
            )
        }

        /// `q.get_nowait()`.
        pub fn get_nowait(&self) -> Result<T> {
            from_value(self.remote.call("get_nowait", Vec::new())?)
        }

        /// `q.qsize()`.
        pub fn qsize(&self) -> Result<usize> {
            from_value(self.remote.call("qsize", Vec::new())?)
        }

        /// `q.empty()`.
        pub fn empty(&self) -> Result<bool> {
            from_value(self.remote.call("empty", Vec::new())?)
        }

        /// `q.full()`.
        pub fn full(&self) -> Result<bool> {
            from_value(self.remote.call("full", Vec::new())?)
        }
    };
}

/// A proxy of a queue on a manager's server.
///
/// Python: `manager.Queue()` → a proxy of `queue.Queue`. The timeout forms follow the stack's
/// contract: [`get`](Self::get) waits forever, [`get_timeout`](Self::get_timeout) gives
/// [`Error::is_empty`] after the timeout, [`get_nowait`](Self::get_nowait) at once; `put`
/// likewise with [`Error::is_full`]. A blocking call waits on the server, and gives up there if
/// this process goes away.
pub struct QueueProxy<T> {
    remote: Arc<Remote>,
    _t: Typed<T>,
}

proxy_handle!(QueueProxy<T>, "Queue");

impl<T: Serialize + DeserializeOwned> QueueProxy<T> {
    queue_methods!();
}

/// A proxy of a joinable queue on a manager's server: a [`QueueProxy`]'s methods plus
/// [`task_done`](Self::task_done) and [`join`](Self::join). Python: `manager.JoinableQueue()`.
pub struct JoinableQueueProxy<T> {
    remote: Arc<Remote>,
    _t: Typed<T>,
}

proxy_handle!(JoinableQueueProxy<T>, "JoinableQueue");

impl<T: Serialize + DeserializeOwned> JoinableQueueProxy<T> {
    queue_methods!();

    /// `q.task_done()`: one more item processed; more than were put is
    /// [`Error::is_value_error`].
    pub fn task_done(&self) -> Result<()> {
        self.remote.call("task_done", Vec::new()).map(drop)
    }

    /// `q.join()`: waits until every item put has been marked done.
    pub fn join(&self) -> Result<()> {
        self.remote.call("join", Vec::new()).map(drop)
    }

    /// `join` waiting at most `timeout`: `Ok(false)` if items are still unfinished (the
    /// stack's rule for a wait Python has no timeout for).
    pub fn join_timeout(&self, timeout: Duration) -> Result<bool> {
        from_value(self.remote.call("join", vec![secs(timeout)])?)
    }
}

/// A proxy of an event on a manager's server. Python: `manager.Event()`.
pub struct EventProxy {
    remote: Arc<Remote>,
    _t: Typed<()>,
}

proxy_handle!(EventProxy, "Event");

impl EventProxy {
    /// `e.set()`.
    pub fn set(&self) -> Result<()> {
        self.remote.call("set", Vec::new()).map(drop)
    }

    /// `e.clear()`.
    pub fn clear(&self) -> Result<()> {
        self.remote.call("clear", Vec::new()).map(drop)
    }

    /// `e.is_set()`.
    pub fn is_set(&self) -> Result<bool> {
        from_value(self.remote.call("is_set", Vec::new())?)
    }

    /// `e.wait()`: until set.
    pub fn wait(&self) -> Result<bool> {
        from_value(self.remote.call("wait", Vec::new())?)
    }

    /// `e.wait(timeout)`: `Ok(false)` if not set in time.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<bool> {
        from_value(self.remote.call("wait", vec![secs(timeout)])?)
    }
}

/// A proxy of a lock (`Lock` or `RLock`) on a manager's server, owned by this proxy's
/// connection.
///
/// Python: `manager.Lock()` / `manager.RLock()`. [`acquire`](Self::acquire) returns `Ok(true)`,
/// [`acquire_timeout`](Self::acquire_timeout) `Ok(false)` on timeout. A process that dies
/// holding it frees it: the next acquirer gets [`Error::is_owner_died`] *with the lock held*
/// (mp-sync's rule), where Python would leave it locked forever.
pub struct LockProxy {
    remote: Arc<Remote>,
    _t: Typed<()>,
}

proxy_handle!(LockProxy, "Lock");

impl LockProxy {
    /// `l.acquire()`.
    pub fn acquire(&self) -> Result<bool> {
        from_value(self.remote.call("acquire", Vec::new())?)
    }

    /// `l.acquire(timeout=t)`.
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<bool> {
        from_value(
            self.remote
                .call("acquire", vec![Value::Boolean(true), secs(timeout)])?,
        )
    }

    /// `l.acquire(False)`.
    pub fn try_acquire(&self) -> Result<bool> {
        from_value(self.remote.call("acquire", vec![Value::Boolean(false)])?)
    }

    /// `l.release()`; an unlocked lock (or an `RLock` owned by another) is
    /// [`Error::is_value_error`].
    pub fn release(&self) -> Result<()> {
        self.remote.call("release", Vec::new()).map(drop)
    }

    /// Whether anyone holds it (Python 3.13's `Lock.locked()`).
    pub fn locked(&self) -> Result<bool> {
        from_value(self.remote.call("locked", Vec::new())?)
    }
}

/// A proxy of a value on a manager's server. Python: `manager.Value(typecode, value)`, whose
/// `.value` is [`get`](Self::get) / [`set`](Self::set).
pub struct ValueProxy<T> {
    remote: Arc<Remote>,
    _t: Typed<T>,
}

proxy_handle!(ValueProxy<T>, "Value");

impl<T: Serialize + DeserializeOwned> ValueProxy<T> {
    /// `v.value`.
    pub fn get(&self) -> Result<T> {
        from_value(self.remote.call("get", Vec::new())?)
    }

    /// `v.value = x`.
    pub fn set(&self, x: T) -> Result<()> {
        self.remote.call("set", vec![to_value(&x)?]).map(drop)
    }
}

/// A proxy of a semaphore on a manager's server. Python: `manager.Semaphore(n)` /
/// `manager.BoundedSemaphore(n)` (whose extra `release` is [`Error::is_value_error`]).
pub struct SemaphoreProxy {
    remote: Arc<Remote>,
    _t: Typed<()>,
}

proxy_handle!(SemaphoreProxy, "Semaphore");

impl SemaphoreProxy {
    /// `s.acquire()`.
    pub fn acquire(&self) -> Result<bool> {
        from_value(self.remote.call("acquire", Vec::new())?)
    }

    /// `s.acquire(timeout=t)`: `Ok(false)` on timeout.
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<bool> {
        from_value(
            self.remote
                .call("acquire", vec![Value::Boolean(true), secs(timeout)])?,
        )
    }

    /// `s.acquire(False)`.
    pub fn try_acquire(&self) -> Result<bool> {
        from_value(self.remote.call("acquire", vec![Value::Boolean(false)])?)
    }

    /// `s.release()`.
    pub fn release(&self) -> Result<()> {
        self.remote.call("release", Vec::new()).map(drop)
    }

    /// `s.get_value()`.
    pub fn get_value(&self) -> Result<u64> {
        from_value(self.remote.call("get_value", Vec::new())?)
    }
}

/// A proxy of a barrier on a manager's server. Python: `manager.Barrier(parties)`; a timeout
/// or an abort breaks it ([`Error::is_broken_barrier`]).
pub struct BarrierProxy {
    remote: Arc<Remote>,
    _t: Typed<()>,
}

proxy_handle!(BarrierProxy, "Barrier");

impl BarrierProxy {
    /// `b.wait()`: this party's arrival index.
    pub fn wait(&self) -> Result<u64> {
        from_value(self.remote.call("wait", Vec::new())?)
    }

    /// `b.wait(timeout)`: a timeout breaks the barrier, as in Python.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<u64> {
        from_value(self.remote.call("wait", vec![secs(timeout)])?)
    }

    /// `b.abort()`.
    pub fn abort(&self) -> Result<()> {
        self.remote.call("abort", Vec::new()).map(drop)
    }

    /// `b.reset()`.
    pub fn reset(&self) -> Result<()> {
        self.remote.call("reset", Vec::new()).map(drop)
    }

    /// `b.parties`.
    pub fn parties(&self) -> Result<u64> {
        from_value(self.remote.call("parties", Vec::new())?)
    }

    /// `b.n_waiting`.
    pub fn n_waiting(&self) -> Result<u64> {
        from_value(self.remote.call("n_waiting", Vec::new())?)
    }

    /// `b.broken`.
    pub fn broken(&self) -> Result<bool> {
        from_value(self.remote.call("broken", Vec::new())?)
    }
}

/// A proxy of a fixed-length array on a manager's server. Python: `manager.Array(typecode,
/// sequence)`; `a[i]` is [`get`](Self::get), `a[i] = x` is [`set`](Self::set).
pub struct ArrayProxy<T> {
    remote: Arc<Remote>,
    _t: Typed<T>,
}

proxy_handle!(ArrayProxy<T>, "Array");

impl<T: Serialize + DeserializeOwned> ArrayProxy<T> {
    /// `a[i]` (negative from the end).
    pub fn get(&self, i: isize) -> Result<T> {
        from_value(
            self.remote
                .call("__getitem__", vec![Value::from(i as i64)])?,
        )
    }

    /// `a[i] = x`.
    pub fn set(&self, i: isize, x: T) -> Result<()> {
        self.remote
            .call("__setitem__", vec![Value::from(i as i64), to_value(&x)?])
            .map(drop)
    }

    /// `len(a)`.
    pub fn len(&self) -> Result<usize> {
        from_value(self.remote.call("__len__", Vec::new())?)
    }

    /// `len(a) == 0`.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// `a[:]`.
    pub fn copy(&self) -> Result<Vec<T>> {
        from_value(self.remote.call("copy", Vec::new())?)
    }
}

/// A proxy of a condition (over its own recursive lock) on a manager's server, owned by this
/// proxy's connection like a [`LockProxy`]. Python: `manager.Condition()`.
///
/// [`wait`](Self::wait) and the notifies need the lock held ([`Error::is_value_error`]
/// otherwise); `wait` releases it while it waits and holds it again when it returns.
pub struct ConditionProxy {
    remote: Arc<Remote>,
    _t: Typed<()>,
}

proxy_handle!(ConditionProxy, "Condition");

impl ConditionProxy {
    /// `c.acquire()`.
    pub fn acquire(&self) -> Result<bool> {
        from_value(self.remote.call("acquire", Vec::new())?)
    }

    /// `c.acquire(timeout=t)`.
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<bool> {
        from_value(
            self.remote
                .call("acquire", vec![Value::Boolean(true), secs(timeout)])?,
        )
    }

    /// `c.release()`.
    pub fn release(&self) -> Result<()> {
        self.remote.call("release", Vec::new()).map(drop)
    }

    /// `c.wait()`: until notified.
    pub fn wait(&self) -> Result<bool> {
        from_value(self.remote.call("wait", Vec::new())?)
    }

    /// `c.wait(timeout)`: `Ok(false)` if not notified in time.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<bool> {
        from_value(self.remote.call("wait", vec![secs(timeout)])?)
    }

    /// `c.notify(n)`.
    pub fn notify(&self, n: u64) -> Result<()> {
        self.remote.call("notify", vec![Value::from(n)]).map(drop)
    }

    /// `c.notify_all()`.
    pub fn notify_all(&self) -> Result<()> {
        self.remote.call("notify_all", Vec::new()).map(drop)
    }
}
