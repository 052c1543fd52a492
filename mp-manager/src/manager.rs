//! `Manager`: starts (or connects to) a server and makes proxies.

use std::marker::PhantomData;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use mp_connection::{Address, Client, Connection};
use mp_core::codec::Bytes;
use mp_core::frames::{Filled, FrameReader};
use mp_core::{current_process, get_context, pipe, Context, Function, Process};
use rmpv::Value;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::exposed::Exposed;
use crate::protocol::{Reply, Request, Token};
use crate::proxy::{
    ArrayProxy, BarrierProxy, DictProxy, EventProxy, JoinableQueueProxy, ListProxy, LockProxy,
    NamespaceProxy, QueueProxy, SemaphoreProxy, ValueProxy,
};
use crate::proxy::{ConditionProxy, Proxy};
use crate::server::{Constructor, Server};

/// How long a starting server may take to report its address.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A manager: a server process that owns objects, and the proxies that reach them.
///
/// Python: `multiprocessing.Manager()` (a started `SyncManager`) and `BaseManager`.
/// [`Manager::new`] starts a server process under the default start method
/// ([`Manager::with_context`] for another) and shuts it down on [`shutdown`](Self::shutdown)
/// or drop, as Python's `with Manager() as m:` does. [`Manager::connect`] reaches a server
/// started elsewhere. The key defaults to the process's `authkey`, as in CPython.
///
/// ```
/// use mp_manager::Manager;
///
/// let manager = Manager::new()?;
/// let d = manager.dict::<String, i32>()?;
/// d.set("one".into(), 1)?;
/// assert_eq!(d.get(&"one".into())?, Some(1));
/// let l = manager.list_from(&[1, 2, 3])?;
/// l.reverse()?;
/// assert_eq!(l.copy()?, [3, 2, 1]);
/// # Ok::<(), mp_manager::Error>(())
/// ```
#[derive(Debug)]
pub struct Manager {
    address: Address,
    authkey: Vec<u8>,
    process: Option<Process<()>>,
    /// The control channel to the server this manager started, and the process that started
    /// it (a forked copy of this manager does not own the server).
    control: Option<(Connection, u32)>,
}

/// What the starting manager sends on its control channel.
#[derive(Serialize, Deserialize)]
enum Control {
    /// Stop serving (then the server process exits).
    Shutdown,
}

/// A registered type as it crosses into the server process: its type id and its
/// constructor's function identity.
type Registration = (String, Function<Constructor>);

/// The server process's body: binds, registers the user types, reports its address, serves
/// until shut down.
/// What the server process gets.
#[derive(Serialize, Deserialize)]
struct ServerArgs {
    authkey: Bytes,
    /// `None`: a fresh abstract name.
    address: Option<String>,
    registry: Vec<Registration>,
    initializer: Option<Function<fn()>>,
    /// Run once `serve_forever` returns (the shared-memory manager unlinks its segments).
    finalizer: Option<Function<fn()>>,
}

fn server_main((args, mut report): (ServerArgs, Connection)) {
    let ServerArgs {
        authkey,
        address,
        registry,
        initializer,
        finalizer,
    } = args;
    if let Some(init) = initializer {
        (init.get())();
    }
    let address = match address.map(|a| a.parse::<Address>()).transpose() {
        Ok(address) => address,
        Err(e) => {
            let _ = report.send(&Err::<String, String>(e.to_string()));
            return;
        }
    };
    let server = match Server::bind(address, &authkey.0) {
        Ok(server) => server,
        Err(e) => {
            let _ = report.send(&Err::<String, String>(e.to_string()));
            return;
        }
    };
    for (typeid, constructor) in registry {
        server.register_constructor(&typeid, constructor.get());
    }
    if report
        .send(&Ok::<String, String>(server.address().to_string()))
        .is_err()
    {
        return;
    }
    // The starting manager's end of `report` stays open as a control channel: its shutdown
    // arrives there, without a connection and a handshake, and even while the listener is
    // flooded. End of file (that manager dropped or its process gone) changes nothing.
    let stopper = server.stopper();
    let control = std::thread::Builder::new()
        .name("mp-manager-control".into())
        .spawn(move || {
            if let Ok(Control::Shutdown) = report.recv::<Control>() {
                stopper.stop();
            }
        });
    if let Err(e) = control {
        // The closure, and with it `report`, is dropped: the manager's shutdown finds the
        // channel closed and asks through the listener instead.
        eprintln!("manager: no control thread ({e}); shutdown goes through the listener");
    }
    if let Err(e) = server.serve_forever() {
        eprintln!("manager: server stopped: {e}");
    }
    if let Some(finalize) = finalizer {
        (finalize.get())();
    }
}

impl Manager {
    /// Starts a server process (daemonic: it dies with this process) under the default start
    /// method, with this process's authkey. Python: `multiprocessing.Manager()`.
    pub fn new() -> Result<Manager> {
        Self::with_context(get_context(None))
    }

    /// [`new`](Self::new) under `context`'s start method. Python: `ctx.Manager()`.
    pub fn with_context(context: Context) -> Result<Manager> {
        Manager::builder().context(context).start()
    }

    /// Options: the start method, user types to register. Python: a `BaseManager` subclass
    /// with `register` calls, then `start()`.
    pub fn builder() -> ManagerBuilder {
        ManagerBuilder {
            context: None,
            registry: Vec::new(),
            address: None,
            authkey: None,
            initializer: None,
            finalizer: None,
            name: "SyncManager-server",
        }
    }

    fn start(builder: ManagerBuilder) -> Result<Manager> {
        let context = builder.context.unwrap_or_else(|| get_context(None));
        let authkey = builder
            .authkey
            .unwrap_or_else(|| current_process().get_authkey());
        let (mut ours, theirs) = pipe(true)?;
        let args = ServerArgs {
            authkey: Bytes(authkey.clone()),
            address: builder.address.map(|a| a.to_string()),
            registry: builder.registry,
            initializer: builder.initializer.map(Function::new),
            finalizer: builder.finalizer.map(Function::new),
        };
        let mut process = context
            .process(server_main, (args, theirs))
            .name(builder.name)
            .daemon(true);
        process.start()?;
        let reported: std::result::Result<String, String> = match ours.recv_timeout(START_TIMEOUT) {
            Ok(reported) => reported,
            Err(e) => {
                let _ = process.kill();
                let _ = process.join();
                return Err(Error::InvalidState(format!(
                    "the manager's server did not start: {e}"
                )));
            }
        };
        let address = match reported {
            Ok(address) => address
                .parse()
                .map_err(|e| Error::InvalidState(format!("bad server address: {e}")))?,
            Err(message) => {
                let _ = process.join();
                return Err(Error::InvalidState(format!(
                    "the manager's server did not start: {message}"
                )));
            }
        };
        Ok(Manager {
            address,
            authkey,
            process: Some(process),
            control: Some((ours, mp_core::process_id())),
        })
    }

    /// A manager for a server started elsewhere. Python: `BaseManager(address, authkey)` then
    /// `connect()`. Checks the key at once (a wrong one is
    /// [`Error::is_authentication`]).
    pub fn connect(address: Address, authkey: &[u8]) -> Result<Manager> {
        let manager = Manager {
            address,
            authkey: authkey.to_vec(),
            process: None,
            control: None,
        };
        manager.request(&Request::NumObjects)?;
        Ok(manager)
    }

    /// The server's address. Python: `manager.address`.
    pub fn address(&self) -> &Address {
        &self.address
    }

    /// The server process's pid, when this manager started it.
    pub fn pid(&self) -> Option<i32> {
        self.process.as_ref().and_then(|p| p.pid().ok().flatten())
    }

    /// How many objects the server holds now. Python: `manager._number_of_objects()`.
    pub fn number_of_objects(&self) -> Result<u64> {
        match self.request(&Request::NumObjects)? {
            Value::Integer(n) => Ok(n.as_u64().unwrap_or(0)),
            other => Err(Error::Codec(format!("number of objects: {other}"))),
        }
    }

    /// Stops the server and waits for its process (when this manager started it).
    /// Python: `manager.shutdown()`. Proxies fail with [`Error::ServerGone`] afterwards.
    ///
    /// The manager that started the server says so on the pipe it was started with (no
    /// connection, no handshake, nothing a crowd of clients at the listener could delay); a
    /// manager that [`connect`](Self::connect)ed sends a `Shutdown` request. A server already
    /// gone is [`Error::ServerGone`].
    pub fn shutdown(&mut self) -> Result<()> {
        let asked = match self.control.take() {
            Some((mut control, owner)) if owner == mp_core::process_id() => {
                // A closed channel: the server is gone, or runs without its control thread.
                match control.send(&Control::Shutdown) {
                    Ok(()) => Ok(()),
                    Err(_) => self.request(&Request::Shutdown).map(drop),
                }
            }
            _ => self.request(&Request::Shutdown).map(drop),
        };
        if let Some(process) = self.process.take() {
            // It stops within 100 ms; a server that does not is killed.
            if process.join_timeout(Duration::from_secs(5))?.is_none() {
                process.kill()?;
                process.join()?;
            }
        }
        asked.map(drop)
    }

    /// Whether this manager started its server (and so stops it when dropped).
    pub(crate) fn started(&self) -> bool {
        self.process.is_some()
    }

    /// One request on a connection of its own.
    fn request(&self, request: &Request) -> Result<Value> {
        let mut conn = connect(&self.address, &self.authkey)?;
        match exchange(&mut conn, request)? {
            Reply::Return(value) => Ok(value),
            Reply::Proxy(token) => Err(Error::Codec(format!("unexpected proxy {token:?}"))),
            Reply::Error { kind, message } => Err(Error::Remote { kind, message }),
        }
    }

    /// Creates an object of `typeid` and returns the connection that holds it.
    fn create_remote(&self, typeid: &str, args: Vec<Value>) -> Result<Arc<Remote>> {
        let mut conn = connect(&self.address, &self.authkey)?;
        let request = Request::Create {
            typeid: typeid.to_owned(),
            args,
        };
        match exchange(&mut conn, &request)? {
            Reply::Proxy(token) => Ok(Arc::new(Remote {
                conn: Mutex::new(Channel::new(conn)),
                token,
                address: self.address.clone(),
                authkey: self.authkey.clone(),
            })),
            Reply::Return(v) => Err(Error::Codec(format!("expected a proxy, got {v}"))),
            Reply::Error { kind, message } => Err(Error::Remote { kind, message }),
        }
    }

    /// A new object of a registered user type, through its proxy `P` (written by
    /// [`exposed!`](crate::exposed)). Python: `manager.Maths()` after `register('Maths',
    /// MathsClass)`.
    pub fn create<P: Proxy>(&self) -> Result<P> {
        let remote = self.create_remote(P::TYPEID, Vec::new())?;
        Ok(P::from_handle(crate::proxy::Handle(remote)))
    }

    /// A proxy of the object the server shares under `name` ([`Server::share`]): Python's
    /// `manager.get_queue()` after `register('get_queue', callable=lambda: queue)`.
    pub fn shared<P: Proxy>(&self, name: &str) -> Result<P> {
        let remote = self.create_remote(name, Vec::new())?;
        if remote.token().typeid != P::TYPEID {
            return Err(Error::Codec(format!(
                "{name:?} is a {}, not a {}",
                remote.token().typeid,
                P::TYPEID
            )));
        }
        Ok(P::from_handle(crate::proxy::Handle(remote)))
    }

    /// A new empty dict on the server. Python: `manager.dict()`.
    pub fn dict<K, V>(&self) -> Result<DictProxy<K, V>>
    where
        K: Serialize + DeserializeOwned,
        V: Serialize + DeserializeOwned,
    {
        Ok(DictProxy::from_remote(
            self.create_remote("dict", Vec::new())?,
        ))
    }

    /// A new empty list on the server. Python: `manager.list()`.
    pub fn list<T: Serialize + DeserializeOwned>(&self) -> Result<ListProxy<T>> {
        Ok(ListProxy::from_remote(
            self.create_remote("list", Vec::new())?,
        ))
    }

    /// A new list holding `items`. Python: `manager.list(items)`.
    pub fn list_from<T: Serialize + DeserializeOwned>(&self, items: &[T]) -> Result<ListProxy<T>> {
        let items = to_value(items)?;
        Ok(ListProxy::from_remote(
            self.create_remote("list", vec![items])?,
        ))
    }

    /// A new queue without a size limit. Python: `manager.Queue()`.
    pub fn queue<T: Serialize + DeserializeOwned>(&self) -> Result<QueueProxy<T>> {
        Ok(QueueProxy::from_remote(
            self.create_remote("Queue", Vec::new())?,
        ))
    }

    /// A new queue of at most `maxsize` items (0: no limit). Python: `manager.Queue(maxsize)`.
    pub fn queue_with_maxsize<T: Serialize + DeserializeOwned>(
        &self,
        maxsize: usize,
    ) -> Result<QueueProxy<T>> {
        let maxsize = Value::from(maxsize as u64);
        Ok(QueueProxy::from_remote(
            self.create_remote("Queue", vec![maxsize])?,
        ))
    }

    /// A new joinable queue without a size limit. Python: `manager.JoinableQueue()`.
    pub fn joinable_queue<T: Serialize + DeserializeOwned>(&self) -> Result<JoinableQueueProxy<T>> {
        Ok(JoinableQueueProxy::from_remote(
            self.create_remote("JoinableQueue", Vec::new())?,
        ))
    }

    /// A new semaphore of `value`. Python: `manager.Semaphore(value)`.
    pub fn semaphore(&self, value: u64) -> Result<SemaphoreProxy> {
        Ok(SemaphoreProxy::from_remote(
            self.create_remote("Semaphore", vec![Value::from(value)])?,
        ))
    }

    /// A new bounded semaphore of `value`. Python: `manager.BoundedSemaphore(value)`.
    pub fn bounded_semaphore(&self, value: u64) -> Result<SemaphoreProxy> {
        Ok(SemaphoreProxy::from_remote(self.create_remote(
            "BoundedSemaphore",
            vec![Value::from(value)],
        )?))
    }

    /// A new barrier for `parties`. Python: `manager.Barrier(parties)`.
    pub fn barrier(&self, parties: u64) -> Result<BarrierProxy> {
        Ok(BarrierProxy::from_remote(
            self.create_remote("Barrier", vec![Value::from(parties)])?,
        ))
    }

    /// A new array holding `items`. Python: `manager.Array(typecode, items)`.
    pub fn array<T: Serialize + DeserializeOwned>(&self, items: &[T]) -> Result<ArrayProxy<T>> {
        Ok(ArrayProxy::from_remote(
            self.create_remote("Array", vec![to_value(items)?])?,
        ))
    }

    /// A new condition over its own recursive lock. Python: `manager.Condition()`.
    pub fn condition(&self) -> Result<ConditionProxy> {
        Ok(ConditionProxy::from_remote(
            self.create_remote("Condition", Vec::new())?,
        ))
    }

    /// A new event, not set. Python: `manager.Event()`.
    pub fn event(&self) -> Result<EventProxy> {
        Ok(EventProxy::from_remote(
            self.create_remote("Event", Vec::new())?,
        ))
    }

    /// A new lock. Python: `manager.Lock()`.
    pub fn lock(&self) -> Result<LockProxy> {
        Ok(LockProxy::from_remote(
            self.create_remote("Lock", Vec::new())?,
        ))
    }

    /// A new recursive lock. Python: `manager.RLock()`.
    pub fn rlock(&self) -> Result<LockProxy> {
        Ok(LockProxy::from_remote(
            self.create_remote("RLock", Vec::new())?,
        ))
    }

    /// A new value holding `x`. Python: `manager.Value(typecode, x)` (the type is `T`).
    pub fn value<T: Serialize + DeserializeOwned>(&self, x: T) -> Result<ValueProxy<T>> {
        Ok(ValueProxy::from_remote(
            self.create_remote("Value", vec![to_value(&x)?])?,
        ))
    }

    /// A new, empty namespace. Python: `manager.Namespace()`.
    pub fn namespace(&self) -> Result<NamespaceProxy> {
        Ok(NamespaceProxy::from_remote(
            self.create_remote("Namespace", Vec::new())?,
        ))
    }
}

/// Options for a [`Manager`]'s server process. Made by [`Manager::builder`].
#[derive(Debug)]
pub struct ManagerBuilder {
    context: Option<Context>,
    registry: Vec<Registration>,
    address: Option<Address>,
    authkey: Option<Vec<u8>>,
    initializer: Option<fn()>,
    finalizer: Option<fn()>,
    name: &'static str,
}

impl ManagerBuilder {
    /// A function the server process runs after it stopped serving (not an API: the
    /// shared-memory manager's).
    pub(crate) fn finalizer(mut self, finalizer: fn()) -> Self {
        self.finalizer = Some(finalizer);
        self
    }

    /// The server process's name (`SyncManager-server` by default).
    pub(crate) fn process_name(mut self, name: &'static str) -> Self {
        self.name = name;
        self
    }

    /// The address the server binds (default: a fresh Linux abstract name; a TCP address such
    /// as `0.0.0.0:50000` serves other machines). Python: `BaseManager(address=...)`.
    pub fn address(mut self, address: Address) -> Self {
        self.address = Some(address);
        self
    }

    /// The key clients must know (default: this process's `authkey`). Python:
    /// `BaseManager(authkey=...)`.
    pub fn authkey(mut self, authkey: impl Into<Vec<u8>>) -> Self {
        self.authkey = Some(authkey.into());
        self
    }

    /// A function the server process runs first. Python: `manager.start(initializer)`.
    pub fn initializer(mut self, initializer: fn()) -> Self {
        self.initializer = Some(initializer);
        self
    }

    /// The start method of the server process (default: the default start method).
    pub fn context(mut self, context: Context) -> Self {
        self.context = Some(context);
        self
    }

    /// Registers user type `T` on the server: clients make one with
    /// [`Manager::create`], its methods exposed by [`exposed!`](crate::exposed), made with
    /// `T::default()`. Python: `MyManager.register(typeid, callable)`.
    pub fn register<T: Exposed + Default>(mut self) -> Self {
        let constructor: Constructor = crate::exposed::construct::<T>;
        self.registry
            .push((T::TYPEID.to_owned(), Function::new(constructor)));
        self
    }

    /// Starts the server process. Python: `manager.start()`.
    pub fn start(self) -> Result<Manager> {
        Manager::start(self)
    }
}

impl Drop for Manager {
    fn drop(&mut self) {
        if self.process.is_some() {
            if let Err(e) = self.shutdown() {
                log::debug!("manager: shutdown at drop: {e}");
            }
        }
    }
}

fn connect(address: &Address, authkey: &[u8]) -> Result<Connection> {
    Client::connect(address, Some(authkey)).map_err(|e| {
        if e.is_authentication() {
            Error::Connection(e)
        } else {
            Error::ServerGone(e.to_string())
        }
    })
}

/// Sends `request` and reads its reply; a closed connection is [`Error::ServerGone`].
fn exchange(conn: &mut Connection, request: &Request) -> Result<Reply> {
    let gone = |e: mp_core::Error| Error::ServerGone(e.to_string());
    conn.send(request).map_err(gone)?;
    conn.recv::<Reply>().map_err(|e| match e {
        mp_core::Error::Codec(m) => Error::Codec(m),
        e => gone(e),
    })
}

/// A proxy's connection, the process it belongs to, and the reader of its replies (one
/// `read` per reply, header and payload together: an exchange is one request, one reply, so
/// nothing is ever read ahead of the reply awaited).
#[derive(Debug)]
pub(crate) struct Channel {
    pid: u32,
    conn: Connection,
    reader: FrameReader,
}

impl Channel {
    fn new(conn: Connection) -> Channel {
        Channel {
            pid: mp_core::process_id(),
            reader: FrameReader::with_limit(conn.max_message_size()),
            conn,
        }
    }

    /// Sends `request` and reads its reply; a closed connection is [`Error::ServerGone`].
    fn exchange(&mut self, request: &Request) -> Result<Reply> {
        let gone = |e: mp_core::Error| Error::ServerGone(e.to_string());
        self.conn.send(request).map_err(gone)?;
        loop {
            if let Some(payload) = self.reader.next_frame().map_err(gone)? {
                return mp_core::codec::decode::<Reply>(payload).map_err(|e| match e {
                    mp_core::Error::Codec(m) => Error::Codec(m),
                    e => gone(e),
                });
            }
            let fd = self.conn.fileno().map_err(gone)?;
            if self
                .reader
                .fill_spinning(fd, mp_core::spin::SPIN)
                .map_err(gone)?
                == Filled::Eof
            {
                return Err(Error::ServerGone(
                    "the server closed the connection".to_owned(),
                ));
            }
        }
    }
}

pub(crate) fn to_value<T: Serialize + ?Sized>(x: &T) -> Result<Value> {
    rmpv::ext::to_value(x).map_err(|e| Error::Codec(e.to_string()))
}

pub(crate) fn from_value<T: DeserializeOwned>(v: Value) -> Result<T> {
    rmpv::ext::from_value(v).map_err(|e| Error::Codec(e.to_string()))
}

/// One object reached through a connection of its own, which holds the proxy's reference:
/// dropping the last handle closes it, and the server drops the reference.
#[derive(Debug)]
pub(crate) struct Remote {
    /// The connection, and the process it belongs to: a forked child that inherited the
    /// proxy in memory opens its own (a socket shared by two processes would mix replies).
    conn: Mutex<Channel>,
    token: Token,
    address: Address,
    authkey: Vec<u8>,
}

impl Remote {
    /// This process's connection: after a fork, a new one holding a reference of its own.
    fn lock(&self) -> Result<MutexGuard<'_, Channel>> {
        let mut guard = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        let me = mp_core::process_id();
        if guard.pid != me {
            let mut conn = connect(&self.address, &self.authkey)?;
            match exchange(&mut conn, &Request::IncRef { id: self.token.id })? {
                Reply::Return(_) => {}
                Reply::Error { kind, message } => return Err(Error::Remote { kind, message }),
                Reply::Proxy(t) => return Err(Error::Codec(format!("unexpected proxy {t:?}"))),
            }
            *guard = Channel::new(conn);
        }
        Ok(guard)
    }

    /// Calls `method` with `args`. Python: `BaseProxy._callmethod`.
    pub(crate) fn call(&self, method: &str, args: Vec<Value>) -> Result<Value> {
        LAST_SERVER.with(|s| {
            *s.borrow_mut() = Some((self.address.to_string(), self.authkey.clone()));
        });
        let request = Request::Call {
            id: self.token.id,
            method: method.to_owned(),
            args,
        };
        match self.lock()?.exchange(&request)? {
            Reply::Return(value) => Ok(value),
            Reply::Error { kind, message } => Err(Error::Remote { kind, message }),
            Reply::Proxy(token) => Err(Error::Codec(format!("unexpected proxy {token:?}"))),
        }
    }

    /// Calls `method`, whose result the server makes a new object held for us in transit
    /// (Python's `method_to_typeid`); adopts it on a connection of its own.
    pub(crate) fn call_proxy(&self, method: &str, args: Vec<Value>) -> Result<Arc<Remote>> {
        let request = Request::Call {
            id: self.token.id,
            method: method.to_owned(),
            args,
        };
        let token = match self.lock()?.exchange(&request)? {
            Reply::Proxy(token) => token,
            Reply::Error { kind, message } => return Err(Error::Remote { kind, message }),
            Reply::Return(v) => return Err(Error::Codec(format!("expected a proxy, got {v}"))),
        };
        Remote::from_wire(ProxyWire {
            typeid: token.typeid,
            id: token.id,
            address: self.address.to_string(),
            authkey: Bytes(self.authkey.clone()),
            pinned: false,
        })
        .map_err(Error::InvalidState)
    }

    pub(crate) fn token(&self) -> &Token {
        &self.token
    }
}

/// A proxy as it crosses into another process: its token, its server and the key.
#[derive(Serialize, Deserialize)]
pub(crate) struct ProxyWire {
    typeid: String,
    id: u64,
    address: String,
    authkey: Bytes,
    /// A proxy stored inside another object of its server (no key: the reader's is used).
    pinned: bool,
}

thread_local! {
    /// The server (address and key) of the last call this thread made: a reply holding a
    /// pinned proxy is decoded right after it, and the proxy connects to that server.
    static LAST_SERVER: std::cell::RefCell<Option<(String, Vec<u8>)>> =
        const { std::cell::RefCell::new(None) };
}

impl Remote {
    /// The wire form. Inside a handle transfer (to a child, over a `Connection`) one reference
    /// is held on the server for the receiver (`Share`), which adopts it. Outside one (a proxy
    /// stored as a value of another of its server's objects, as CPython 3.6+ allows) the object
    /// is pinned instead (`Pin`): held while the server runs.
    pub(crate) fn to_wire(&self) -> std::result::Result<ProxyWire, String> {
        let pinned = !mp_core::handle::is_collecting();
        let request = if pinned {
            Request::Pin { id: self.token.id }
        } else {
            Request::Share { id: self.token.id }
        };
        let mut guard = self.lock().map_err(|e| format!("sharing a proxy: {e}"))?;
        match guard.exchange(&request) {
            Ok(Reply::Return(_)) => Ok(ProxyWire {
                typeid: self.token.typeid.clone(),
                id: self.token.id,
                address: self.address.to_string(),
                authkey: Bytes(if pinned {
                    Vec::new()
                } else {
                    self.authkey.clone()
                }),
                pinned,
            }),
            Ok(other) => Err(format!("sharing a proxy: {other:?}")),
            Err(e) => Err(format!("sharing a proxy: {e}")),
        }
    }

    /// Rebuilds a proxy received from another process: connects and adopts the reference the
    /// sender shared. Python: `RebuildProxy`.
    pub(crate) fn from_wire(wire: ProxyWire) -> std::result::Result<Arc<Remote>, String> {
        let address: Address = wire.address.parse().map_err(|e| format!("{e}"))?;
        let (authkey, request) = if wire.pinned {
            // Read from an object of its own server, with that server's key.
            let last = LAST_SERVER.with(|s| s.borrow().clone());
            match last {
                Some((server, key)) if server == wire.address => {
                    (key, Request::IncRef { id: wire.id })
                }
                _ => {
                    return Err(format!(
                        "a proxy of the server at {} was stored in another server's object",
                        wire.address
                    ))
                }
            }
        } else {
            (wire.authkey.0, Request::Adopt { id: wire.id })
        };
        let mut conn = connect(&address, &authkey).map_err(|e| e.to_string())?;
        match exchange(&mut conn, &request) {
            Ok(Reply::Return(_)) => Ok(Arc::new(Remote {
                conn: Mutex::new(Channel::new(conn)),
                token: Token {
                    typeid: wire.typeid,
                    id: wire.id,
                },
                address,
                authkey,
            })),
            Ok(other) => Err(format!("adopting a proxy: {other:?}")),
            Err(e) => Err(format!("adopting a proxy: {e}")),
        }
    }
}

/// Marker for the typed proxies' element types.
pub(crate) type Typed<T> = PhantomData<fn() -> T>;
