//! The server: owns the objects and answers proxies' requests.
//!
//! Connections come from [`Listener::incoming`], so handshakes run concurrently, and each
//! connection is served on a thread of its own: one slow, silent or hostile client delays no
//! other. A connection's references are dropped when it closes, however its process ended.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use mp_connection::{Address, Connection, Listener};
use mp_core::frames::{Filled, FrameReader};
use rmpv::Value;

use crate::error::Result;
use crate::exposed::{Exposed, ExposedObject, Fail};
use crate::objects::{Caller, Object};
use crate::protocol::{RemoteKind, Reply, Request, Token};

/// A manager's server, bound and ready to serve.
///
/// Python: `BaseManager.get_server()` → `Server`, whose
/// [`serve_forever`](Server::serve_forever) serves until a client asks it to shut down.
#[derive(Debug)]
pub struct Server {
    listener: Listener,
    state: Arc<State>,
}

#[derive(Debug, Default)]
struct State {
    objects: Mutex<HashMap<u64, Entry>>,
    next_id: AtomicU64,
    next_conn: AtomicU64,
    stop: AtomicBool,
    /// Wakes `serve_forever`'s accept when a client asks for a shutdown.
    waker: Mutex<Option<mp_connection::IncomingWaker>>,
    /// Objects shared under a name: every `Create` of the name reaches the same object.
    shared: Mutex<HashMap<String, u64>>,
    /// Registered user types: type id → constructor.
    registry: Mutex<HashMap<String, Constructor>>,
}

/// A registered type's constructor.
pub(crate) type Constructor = fn() -> Box<dyn ExposedObject>;

#[derive(Debug)]
struct Entry {
    object: Arc<Object>,
    /// References held: by connections, by proxies in transit, by pins.
    refs: u64,
    /// How many of `refs` are held for proxies in transit (`Share`, not yet `Adopt`ed): an
    /// `Adopt` takes one of these, so a client cannot adopt a reference nobody shared.
    transit: u64,
}

impl State {
    /// Makes `serve_forever` return (now if it is waiting in `accept`).
    fn request_stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(waker) = lock(&self.waker).as_ref() {
            waker.wake();
        }
    }
}

/// Stops a [`Server`]'s `serve_forever` from another thread (a manager's control channel).
pub(crate) struct Stopper(Arc<State>);

impl Stopper {
    pub(crate) fn stop(&self) {
        self.0.request_stop();
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Server {
    /// Binds a server to `address` (`None`: a fresh Linux abstract name) with `authkey`.
    ///
    /// Python: `BaseManager(address, authkey).get_server()`.
    pub fn bind(address: Option<Address>, authkey: &[u8]) -> Result<Server> {
        let mut builder = Listener::builder()
            .authkey(authkey)
            .family(mp_connection::Family::Abstract);
        if let Some(address) = address {
            builder = builder.address(address);
        }
        Ok(Server {
            listener: builder.bind()?,
            state: Arc::default(),
        })
    }

    /// Registers user type `T` (made with `T::default()`, its methods exposed by
    /// [`exposed!`](crate::exposed)): clients create it by its type id. Python:
    /// `BaseManager.register(typeid, callable)`.
    pub fn register<T: Exposed + Default>(&self) {
        self.register_constructor(T::TYPEID, crate::exposed::construct::<T>);
    }

    pub(crate) fn register_constructor(&self, typeid: &str, constructor: Constructor) {
        lock(&self.state.registry).insert(typeid.to_owned(), constructor);
    }

    /// Serves one already-connected client on this thread until it closes (what
    /// `serve_forever` does for each accepted connection). For the fuzz target of the request
    /// decoder, which feeds a socketpair; not an API.
    #[doc(hidden)]
    pub fn serve_connection(&self, conn: Connection) {
        serve_connection(&self.state, conn);
    }

    /// Makes an object of `typeid` that every client reaches under `name` (a `Create` of
    /// `name` gives a proxy of that one object, which the server keeps while it runs).
    ///
    /// Python: `BaseManager.register(name, callable=lambda: obj)` for an object made before
    /// `serve_forever`, as the remote-queue example of Python's documentation does.
    pub fn share(&self, name: &str, typeid: &str) -> Result<()> {
        let object = Object::create(typeid, Vec::new())
            .map_err(|(kind, message)| crate::Error::Remote { kind, message })?;
        let id = self.state.next_id.fetch_add(1, Ordering::Relaxed);
        lock(&self.state.objects).insert(
            id,
            Entry {
                object: Arc::new(object),
                refs: 1,
                transit: 0,
            },
        );
        lock(&self.state.shared).insert(name.to_owned(), id);
        Ok(())
    }

    /// The address clients connect to (a TCP port 0 resolved). Python: `Server.address`.
    pub fn address(&self) -> &Address {
        self.listener.address()
    }

    /// A handle that stops [`serve_forever`](Self::serve_forever) from another thread.
    pub(crate) fn stopper(&self) -> Stopper {
        Stopper(Arc::clone(&self.state))
    }

    /// Serves until a client sends `shutdown`. Python: `Server.serve_forever()`.
    ///
    /// Returns right after the shutdown request; connections still open are served
    /// by their threads until they close (in a manager's own server process, the process then
    /// exits and closes them). Errors: the listener's own (OS errors of `accept`).
    pub fn serve_forever(&self) -> Result<()> {
        let mut incoming = self.listener.incoming()?;
        *lock(&self.state.waker) = Some(incoming.waker());
        while !self.state.stop.load(Ordering::SeqCst) {
            match incoming.accept() {
                Ok(conn) => {
                    let state = Arc::clone(&self.state);
                    let spawned = std::thread::Builder::new()
                        .name("mp-manager-conn".into())
                        .spawn(move || serve_connection(&state, conn));
                    if let Err(e) = spawned {
                        log::warn!("manager: cannot start a thread, client dropped: {e}");
                    }
                }
                Err(mp_connection::Error::Interrupted) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

/// Serves one connection until it closes, then drops the references it held.
fn serve_connection(state: &State, mut conn: Connection) {
    let me = state.next_conn.fetch_add(1, Ordering::Relaxed);
    // References this connection holds, by object id.
    let mut held: HashMap<u64, u64> = HashMap::new();
    // Requests are read a whole frame per `read` (a client sends one and waits for its reply;
    // one that sends more has them queued here, and counts as gone for a blocking call).
    let mut reader = FrameReader::with_limit(conn.max_message_size());
    loop {
        let request = match next_request(&mut conn, &mut reader) {
            Ok(request) => request,
            Err(e) if e.is_eof() => break,
            // A frame that does not decode was consumed: say so and go on.
            Err(mp_core::Error::Codec(e)) => {
                let reply = Reply::Error {
                    kind: RemoteKind::TypeError,
                    message: format!("bad request: {e}"),
                };
                if conn.send(&reply).is_err() {
                    break;
                }
                continue;
            }
            Err(e) => {
                log::info!("manager: client dropped: {e}");
                break;
            }
        };
        // A blocking call gives up when its client goes away: the connection then reads as
        // ready (end of file), since a client sends nothing while it waits for a reply.
        let gone = || !reader.is_empty() || conn.try_poll().unwrap_or(true);
        let caller = Caller {
            conn: me,
            gone: &gone,
        };
        let shutdown = request == Request::Shutdown;
        let reply = handle(state, &mut held, request, &caller);
        if let Err(e) = conn.send(&reply) {
            log::info!("manager: cannot answer a client: {e}");
            break;
        }
        if shutdown {
            // After the reply: a server process may exit as soon as `serve_forever` returns.
            state.request_stop();
        }
    }
    let mut objects = lock(&state.objects);
    for (id, n) in held {
        if let Some(entry) = objects.get(&id) {
            entry.object.release_for(me);
        }
        decref(&mut objects, id, n);
    }
}

/// The next request: a frame from `reader`, read from `conn` as needed. [`mp_core::Error::Eof`]
/// when the client has closed; [`mp_core::Error::Codec`] for a frame that does not decode
/// (consumed: the connection stays in step).
fn next_request(conn: &mut Connection, reader: &mut FrameReader) -> mp_core::Result<Request> {
    loop {
        if let Some(payload) = reader.next_frame()? {
            return mp_core::codec::decode::<Request>(payload);
        }
        let fd = conn.fileno()?;
        // At most `cpu_count() - 1` threads spin at once (see `mp_core::spin`): under a crowd
        // of clients the server's spinning never takes the CPUs its clients need.
        let spun = match mp_core::spin::Spinner::take() {
            Some(_spinner) => reader.spin_fill(fd, mp_core::spin::SPIN)?,
            None => None,
        };
        let filled = match spun {
            Some(filled) => filled,
            None => reader.fill(fd)?,
        };
        if filled == Filled::Eof {
            return Err(if reader.is_empty() {
                mp_core::Error::Eof
            } else {
                mp_core::Error::Protocol("the client closed in the middle of a request".into())
            });
        }
    }
}

fn decref(objects: &mut HashMap<u64, Entry>, id: u64, n: u64) {
    if let Some(entry) = objects.get_mut(&id) {
        entry.refs = entry.refs.saturating_sub(n);
        if entry.refs == 0 {
            objects.remove(&id);
        }
    }
}

/// A registered user type, or a built-in one.
fn create(state: &State, typeid: &str, args: Vec<Value>) -> Result<Object, Fail> {
    let constructor = lock(&state.registry).get(typeid).copied();
    match constructor {
        Some(make) => Ok(Object::Custom(Mutex::new(make()))),
        None => Object::create(typeid, args),
    }
}

fn object_typeid(object: &Object) -> &'static str {
    object.typeid()
}

fn error(kind: RemoteKind, message: impl Into<String>) -> Reply {
    Reply::Error {
        kind,
        message: message.into(),
    }
}

fn handle(
    state: &State,
    held: &mut HashMap<u64, u64>,
    request: Request,
    caller: &Caller<'_>,
) -> Reply {
    match request {
        Request::Create { typeid, args: _ } if lock(&state.shared).contains_key(&typeid) => {
            let id = lock(&state.shared)[&typeid];
            match lock(&state.objects).get_mut(&id) {
                Some(entry) => {
                    entry.refs += 1;
                    *held.entry(id).or_default() += 1;
                    let typeid = object_typeid(&entry.object).to_owned();
                    Reply::Proxy(Token { typeid, id })
                }
                None => error(
                    RemoteKind::Other,
                    format!("shared object {typeid:?} is gone"),
                ),
            }
        }
        Request::Create { typeid, args } => match create(state, &typeid, args) {
            Ok(object) => {
                let id = state.next_id.fetch_add(1, Ordering::Relaxed);
                lock(&state.objects).insert(
                    id,
                    Entry {
                        object: Arc::new(object),
                        refs: 1,
                        transit: 0,
                    },
                );
                *held.entry(id).or_default() += 1;
                Reply::Proxy(Token { typeid, id })
            }
            Err((kind, message)) => error(kind, message),
        },
        Request::Call { id, method, args } => {
            let object = lock(&state.objects).get(&id).map(|e| Arc::clone(&e.object));
            match object {
                // Outside the table's lock: calls on other objects go on meanwhile.
                Some(object) => match object.call(&method, args, caller) {
                    Ok(value) => match object.method_typeid(&method) {
                        // Python's `method_to_typeid`: the result becomes an object, held
                        // for the caller in transit (it adopts it on a connection of its own).
                        Some(typeid) => match create(state, typeid, vec![value]) {
                            Ok(made) => {
                                let id = state.next_id.fetch_add(1, Ordering::Relaxed);
                                lock(&state.objects).insert(
                                    id,
                                    Entry {
                                        object: Arc::new(made),
                                        refs: 1,
                                        transit: 1,
                                    },
                                );
                                Reply::Proxy(Token {
                                    typeid: typeid.to_owned(),
                                    id,
                                })
                            }
                            Err((kind, message)) => error(kind, message),
                        },
                        None => Reply::Return(value),
                    },
                    Err((kind, message)) => error(kind, message),
                },
                None => error(RemoteKind::Other, format!("no object {id} on this server")),
            }
        }
        Request::Share { id } => match lock(&state.objects).get_mut(&id) {
            Some(entry) => {
                entry.refs += 1;
                entry.transit += 1;
                Reply::Return(Value::Nil)
            }
            None => error(RemoteKind::Other, format!("no object {id} on this server")),
        },
        Request::Adopt { id } => match lock(&state.objects).get_mut(&id) {
            Some(entry) if entry.transit > 0 => {
                entry.transit -= 1;
                *held.entry(id).or_default() += 1;
                Reply::Return(Value::Nil)
            }
            Some(_) => error(
                RemoteKind::Other,
                format!("no reference to object {id} is in transit (adopt without a share)"),
            ),
            None => error(RemoteKind::Other, format!("no object {id} on this server")),
        },
        Request::Pin { id } => match lock(&state.objects).get_mut(&id) {
            Some(entry) => {
                entry.refs += 1;
                Reply::Return(Value::Nil)
            }
            None => error(RemoteKind::Other, format!("no object {id} on this server")),
        },
        Request::IncRef { id } => match lock(&state.objects).get_mut(&id) {
            Some(entry) => {
                entry.refs += 1;
                *held.entry(id).or_default() += 1;
                Reply::Return(Value::Nil)
            }
            None => error(RemoteKind::Other, format!("no object {id} on this server")),
        },
        Request::NumObjects => Reply::Return(Value::from(lock(&state.objects).len() as u64)),
        // Stopped once the reply is sent (see `serve_connection`).
        Request::Shutdown => Reply::Return(Value::Nil),
    }
}
