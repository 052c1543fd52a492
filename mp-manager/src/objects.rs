//! The built-in objects a server holds (`dict`, `list`, `Namespace`), dynamically typed, and
//! their methods, called by name.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rmpv::Value;

use crate::exposed::ExposedObject;
use crate::protocol::RemoteKind;

/// A method's failure: Python's exception class and message.
pub(crate) type Fail = (RemoteKind, String);

/// What a method returns.
pub(crate) type Outcome = Result<Value, Fail>;

fn fail<T>(kind: RemoteKind, message: impl Into<String>) -> Result<T, Fail> {
    Err((kind, message.into()))
}

/// One object on the server. Each kind synchronizes itself, so that a call that blocks (a
/// queue's `get`, a lock's `acquire`) never holds anything another client needs to wake it.
#[derive(Debug)]
pub(crate) enum Object {
    Dict(Mutex<Dict>),
    List(Mutex<Vec<Value>>),
    Namespace(Mutex<BTreeMap<String, Value>>),
    Value(Mutex<Value>),
    Queue(Queue),
    Event(Event),
    Lock(Lock),
    Semaphore(Semaphore),
    Array(Mutex<Vec<Value>>),
    Barrier(Barrier),
    Condition(Condition),
    /// A registered user type.
    Custom(Mutex<Box<dyn ExposedObject>>),
}

/// Who is calling: its connection, and how to tell that it has gone away (a blocking call
/// gives up then, so a killed client never leaves a thread waiting forever).
pub(crate) struct Caller<'a> {
    pub(crate) conn: u64,
    pub(crate) gone: &'a dyn Fn() -> bool,
}

/// How long a blocking call sleeps before it checks that its caller is still there.
const CHECK: Duration = Duration::from_millis(100);

impl Object {
    /// Makes an object of `typeid` from its constructor arguments.
    pub(crate) fn create(typeid: &str, args: Vec<Value>) -> Result<Object, Fail> {
        let mut args = args.into_iter();
        let first = args.next();
        match typeid {
            "dict" => {
                let mut dict = Dict::default();
                if let Some(items) = first {
                    dict.update(items)?;
                }
                Ok(Object::Dict(Mutex::new(dict)))
            }
            "list" => Ok(Object::List(Mutex::new(match first {
                None => Vec::new(),
                Some(Value::Array(items)) => items,
                Some(other) => {
                    return fail(RemoteKind::TypeError, format!("list({other}): not a list"))
                }
            }))),
            "Namespace" => {
                let mut ns = BTreeMap::new();
                if let Some(Value::Map(pairs)) = first {
                    for (k, v) in pairs {
                        ns.insert(name(&k)?, v);
                    }
                }
                Ok(Object::Namespace(Mutex::new(ns)))
            }
            "Value" => Ok(Object::Value(Mutex::new(first.unwrap_or(Value::Nil)))),
            "Queue" | "JoinableQueue" => {
                let maxsize = match first {
                    Some(Value::Integer(n)) => n.as_u64().unwrap_or(0),
                    _ => 0,
                };
                Ok(Object::Queue(Queue {
                    state: Mutex::new(QueueState::default()),
                    changed: Condvar::new(),
                    maxsize: usize::try_from(maxsize).unwrap_or(usize::MAX),
                    joinable: typeid == "JoinableQueue",
                }))
            }
            "Semaphore" | "BoundedSemaphore" => {
                let value = match first {
                    None => 1,
                    Some(Value::Integer(n)) => match n.as_u64() {
                        Some(n) => n,
                        None => {
                            return fail(
                                RemoteKind::ValueError,
                                "semaphore initial value must be >= 0",
                            )
                        }
                    },
                    Some(other) => {
                        return fail(RemoteKind::TypeError, format!("Semaphore({other})"))
                    }
                };
                Ok(Object::Semaphore(Semaphore {
                    value: Mutex::new(value),
                    changed: Condvar::new(),
                    bound: (typeid == "BoundedSemaphore").then_some(value),
                }))
            }
            "Array" => Ok(Object::Array(Mutex::new(match first {
                None => Vec::new(),
                Some(Value::Array(items)) => items,
                Some(other) => {
                    return fail(RemoteKind::TypeError, format!("Array({other}): not a list"))
                }
            }))),
            "Barrier" => {
                let parties = match first {
                    Some(Value::Integer(n)) => n.as_u64().filter(|&n| n > 0),
                    _ => None,
                };
                let Some(parties) = parties else {
                    return fail(RemoteKind::ValueError, "a barrier needs at least one party");
                };
                Ok(Object::Barrier(Barrier {
                    state: Mutex::new(BarrierState::default()),
                    changed: Condvar::new(),
                    parties,
                }))
            }
            "Event" => Ok(Object::Event(Event::default())),
            "Condition" => Ok(Object::Condition(Condition::default())),
            "Lock" => Ok(Object::Lock(Lock::new(false))),
            "RLock" => Ok(Object::Lock(Lock::new(true))),
            other => fail(RemoteKind::Other, format!("unknown type id {other:?}")),
        }
    }

    /// The type id this object was made as.
    pub(crate) fn typeid(&self) -> &'static str {
        match self {
            Object::Dict(_) => "dict",
            Object::List(_) => "list",
            Object::Namespace(_) => "Namespace",
            Object::Value(_) => "Value",
            Object::Queue(q) if q.joinable => "JoinableQueue",
            Object::Queue(_) => "Queue",
            Object::Semaphore(s) if s.bound.is_some() => "BoundedSemaphore",
            Object::Semaphore(_) => "Semaphore",
            Object::Array(_) => "Array",
            Object::Barrier(_) => "Barrier",
            Object::Condition(_) => "Condition",
            Object::Event(_) => "Event",
            Object::Lock(l) if l.recursive => "RLock",
            Object::Lock(_) => "Lock",
            Object::Custom(c) => lock(c).typeid(),
        }
    }

    /// Calls `method` with `args` for `caller`.
    pub(crate) fn call(&self, method: &str, args: Vec<Value>, caller: &Caller<'_>) -> Outcome {
        match self {
            Object::Dict(d) => lock(d).call(method, args),
            Object::List(l) => list_call(&mut lock(l), method, args),
            Object::Namespace(ns) => namespace_call(&mut lock(ns), method, args),
            Object::Value(v) => value_call(&mut lock(v), method, args),
            Object::Queue(q) => q.call(method, args, caller),
            Object::Event(e) => e.call(method, args, caller),
            Object::Lock(l) => l.call(method, args, caller),
            Object::Semaphore(sem) => sem.call(method, args, caller),
            Object::Array(a) => array_call(&mut lock(a), method, args),
            Object::Barrier(b) => b.call(method, args, caller),
            Object::Condition(c) => c.call(method, args, caller),
            Object::Custom(c) => lock(c).call(method, args),
        }
    }

    /// For a user type's method whose result becomes an object: that object's type id.
    pub(crate) fn method_typeid(&self, method: &str) -> Option<&'static str> {
        match self {
            Object::Custom(c) => lock(c).method_typeid(method),
            _ => None,
        }
    }

    /// Releases what connection `conn` held of this object (it closed): a lock it owned is
    /// freed and marked so that its next owner learns the previous one died.
    pub(crate) fn release_for(&self, conn: u64) {
        match self {
            Object::Lock(l) => l.owner_gone(conn),
            Object::Condition(c) => c.owner_gone(conn),
            _ => {}
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The deadline of a blocking call: `block=False` means now, `timeout=None` forever.
fn deadline_of(block: Option<Value>, timeout: Option<Value>) -> Option<Option<Instant>> {
    let block = !matches!(block, Some(Value::Boolean(false)));
    if !block {
        return Some(Some(Instant::now()));
    }
    match timeout {
        None | Some(Value::Nil) => Some(None),
        Some(t) => {
            let secs = t.as_f64().or_else(|| t.as_u64().map(|n| n as f64))?;
            if !(secs.is_finite() && secs >= 0.0) {
                return None;
            }
            Some(Some(
                Instant::now() + Duration::from_secs_f64(secs.min(1e9)),
            ))
        }
    }
}

/// Waits on `cv` until `ready` or the deadline; gives up (`Err`) when the caller is gone.
fn wait_until<'a, T>(
    cv: &Condvar,
    mut guard: MutexGuard<'a, T>,
    deadline: Option<Instant>,
    caller: &Caller<'_>,
    mut ready: impl FnMut(&mut T) -> bool,
) -> Result<(MutexGuard<'a, T>, bool), Fail> {
    loop {
        if ready(&mut guard) {
            return Ok((guard, true));
        }
        // Before each sleep: a caller that went away (or sent more than one request, which
        // a client waiting for its reply never does) gets no wait.
        if (caller.gone)() {
            return fail(RemoteKind::Other, "the caller went away");
        }
        let now = Instant::now();
        let slice = match deadline {
            Some(d) if d <= now => return Ok((guard, false)),
            Some(d) => (d - now).min(CHECK),
            None => CHECK,
        };
        guard = cv
            .wait_timeout(guard, slice)
            .unwrap_or_else(PoisonError::into_inner)
            .0;
        // After each sleep, before taking what woke it: an item put for a caller that has
        // gone away meanwhile stays for the next one instead of going down a dead connection.
        if (caller.gone)() {
            return fail(RemoteKind::Other, "the caller went away");
        }
    }
}

/// A queue of values: Python's `queue.Queue` behind `manager.Queue()`.
#[derive(Debug)]
pub(crate) struct Queue {
    state: Mutex<QueueState>,
    changed: Condvar,
    maxsize: usize,
    /// A `JoinableQueue`: counts unfinished tasks.
    joinable: bool,
}

#[derive(Debug, Default)]
struct QueueState {
    items: VecDeque<Value>,
    /// Items put and not yet marked done (`JoinableQueue`).
    unfinished: u64,
}

impl Queue {
    fn call(&self, method: &str, args: Vec<Value>, caller: &Caller<'_>) -> Outcome {
        let mut a = Args::new(method, args);
        match method {
            "put" | "put_nowait" => {
                let item = a.next()?;
                let deadline = if method == "put_nowait" {
                    Some(Some(Instant::now()))
                } else {
                    deadline_of(a.optional(), a.optional())
                };
                let Some(deadline) = deadline else {
                    return fail(
                        RemoteKind::ValueError,
                        "'timeout' must be a non-negative number",
                    );
                };
                let max = if self.maxsize == 0 {
                    usize::MAX
                } else {
                    self.maxsize
                };
                let guard = lock(&self.state);
                let (mut st, room) = wait_until(&self.changed, guard, deadline, caller, |q| {
                    q.items.len() < max
                })?;
                if !room {
                    return fail(RemoteKind::Full, "the queue is full");
                }
                st.items.push_back(item);
                st.unfinished += 1;
                self.changed.notify_all();
                Ok(Value::Nil)
            }
            "get" | "get_nowait" => {
                let deadline = if method == "get_nowait" {
                    Some(Some(Instant::now()))
                } else {
                    deadline_of(a.optional(), a.optional())
                };
                let Some(deadline) = deadline else {
                    return fail(
                        RemoteKind::ValueError,
                        "'timeout' must be a non-negative number",
                    );
                };
                let guard = lock(&self.state);
                let (mut st, any) = wait_until(&self.changed, guard, deadline, caller, |q| {
                    !q.items.is_empty()
                })?;
                match st.items.pop_front() {
                    Some(item) if any => {
                        self.changed.notify_all();
                        Ok(item)
                    }
                    _ => fail(RemoteKind::Empty, "the queue is empty"),
                }
            }
            "qsize" => Ok(Value::from(lock(&self.state).items.len() as u64)),
            "empty" => Ok(Value::Boolean(lock(&self.state).items.is_empty())),
            "full" => Ok(Value::Boolean(
                self.maxsize > 0 && lock(&self.state).items.len() >= self.maxsize,
            )),
            "task_done" if self.joinable => {
                let mut st = lock(&self.state);
                if st.unfinished == 0 {
                    return fail(RemoteKind::ValueError, "task_done() called too many times");
                }
                st.unfinished -= 1;
                self.changed.notify_all();
                Ok(Value::Nil)
            }
            "join" if self.joinable => {
                let Some(deadline) = deadline_of(None, a.optional()) else {
                    return fail(
                        RemoteKind::ValueError,
                        "'timeout' must be a non-negative number",
                    );
                };
                let guard = lock(&self.state);
                let (st, done) = wait_until(&self.changed, guard, deadline, caller, |q| {
                    q.unfinished == 0
                })?;
                drop(st);
                Ok(Value::Boolean(done))
            }
            other => no_method(
                if self.joinable {
                    "JoinableQueue"
                } else {
                    "Queue"
                },
                other,
            ),
        }
    }
}

/// Python's `threading.Event` behind `manager.Event()`.
#[derive(Debug, Default)]
pub(crate) struct Event {
    flag: Mutex<bool>,
    changed: Condvar,
}

impl Event {
    fn call(&self, method: &str, args: Vec<Value>, caller: &Caller<'_>) -> Outcome {
        let mut a = Args::new(method, args);
        match method {
            "set" => {
                *lock(&self.flag) = true;
                self.changed.notify_all();
                Ok(Value::Nil)
            }
            "clear" => {
                *lock(&self.flag) = false;
                Ok(Value::Nil)
            }
            "is_set" => Ok(Value::Boolean(*lock(&self.flag))),
            "wait" => {
                let Some(deadline) = deadline_of(None, a.optional()) else {
                    return fail(
                        RemoteKind::ValueError,
                        "'timeout' must be a non-negative number",
                    );
                };
                let guard = lock(&self.flag);
                let (flag, set) = wait_until(&self.changed, guard, deadline, caller, |f| *f)?;
                drop(flag);
                Ok(Value::Boolean(set))
            }
            other => no_method("Event", other),
        }
    }
}

/// Python's `threading.Lock` / `RLock` behind `manager.Lock()` / `RLock()`, owned by a
/// connection. A connection that closes while owning it (its process killed) frees it, and
/// its next owner is told (`OwnerDied`), as mp-sync's locks do.
#[derive(Debug)]
pub(crate) struct Lock {
    state: Mutex<Ownership>,
    changed: Condvar,
    recursive: bool,
}

/// Who holds a manager lock (a `Lock`, an `RLock`, a `Condition`'s lock): a connection, how
/// many times, and whether the previous holder died holding it.
#[derive(Debug, Default)]
struct Ownership {
    owner: Option<u64>,
    count: u64,
    owner_died: bool,
}

impl Ownership {
    /// Frees it if connection `conn` held it (it closed); true if so (wake the waiters).
    fn owner_gone(&mut self, conn: u64) -> bool {
        if self.owner != Some(conn) {
            return false;
        }
        self.owner = None;
        self.count = 0;
        self.owner_died = true;
        true
    }
}

/// `acquire(blocking, timeout)` of the lock `own` picks out of the state behind `guard`, for
/// `caller`: Python's result, or `OwnerDied` (the lock held) when its previous holder died.
fn acquire_owned<T>(
    changed: &Condvar,
    mut guard: MutexGuard<'_, T>,
    own: fn(&mut T) -> &mut Ownership,
    recursive: bool,
    a: &mut Args,
    caller: &Caller<'_>,
) -> Outcome {
    let Some(deadline) = deadline_of(a.optional(), a.optional()) else {
        return fail(
            RemoteKind::ValueError,
            "'timeout' must be a non-negative number",
        );
    };
    let me = caller.conn;
    if recursive && own(&mut guard).owner == Some(me) {
        own(&mut guard).count += 1;
        return Ok(Value::Boolean(true));
    }
    let (mut guard, got) =
        wait_until(changed, guard, deadline, caller, |s| own(s).owner.is_none())?;
    if !got {
        return Ok(Value::Boolean(false));
    }
    let o = own(&mut guard);
    o.owner = Some(me);
    o.count = 1;
    if std::mem::take(&mut o.owner_died) {
        return fail(
            RemoteKind::OwnerDied,
            "acquired; the previous owner died holding it",
        );
    }
    Ok(Value::Boolean(true))
}

impl Lock {
    fn new(recursive: bool) -> Lock {
        Lock {
            state: Mutex::new(Ownership::default()),
            changed: Condvar::new(),
            recursive,
        }
    }

    fn owner_gone(&self, conn: u64) {
        if lock(&self.state).owner_gone(conn) {
            self.changed.notify_all();
        }
    }

    fn call(&self, method: &str, args: Vec<Value>, caller: &Caller<'_>) -> Outcome {
        let mut a = Args::new(method, args);
        match method {
            "acquire" => acquire_owned(
                &self.changed,
                lock(&self.state),
                |o| o,
                self.recursive,
                &mut a,
                caller,
            ),
            "release" => {
                let mut st = lock(&self.state);
                match st.owner {
                    None => fail(RemoteKind::ValueError, "release of an unlocked lock"),
                    Some(o) if self.recursive && o != caller.conn => {
                        fail(RemoteKind::ValueError, "cannot release un-acquired lock")
                    }
                    Some(_) => {
                        st.count = st.count.saturating_sub(1);
                        if st.count == 0 || !self.recursive {
                            st.owner = None;
                            st.count = 0;
                            self.changed.notify_all();
                        }
                        Ok(Value::Nil)
                    }
                }
            }
            "locked" => Ok(Value::Boolean(lock(&self.state).owner.is_some())),
            other => no_method(if self.recursive { "RLock" } else { "Lock" }, other),
        }
    }
}

/// Python's `threading.Semaphore` / `BoundedSemaphore` behind `manager.Semaphore(n)`.
#[derive(Debug)]
pub(crate) struct Semaphore {
    value: Mutex<u64>,
    changed: Condvar,
    /// A `BoundedSemaphore`'s initial value, past which `release` fails.
    bound: Option<u64>,
}

impl Semaphore {
    fn call(&self, method: &str, args: Vec<Value>, caller: &Caller<'_>) -> Outcome {
        let mut a = Args::new(method, args);
        match method {
            "acquire" => {
                let Some(deadline) = deadline_of(a.optional(), a.optional()) else {
                    return fail(
                        RemoteKind::ValueError,
                        "'timeout' must be a non-negative number",
                    );
                };
                let guard = lock(&self.value);
                let (mut v, got) = wait_until(&self.changed, guard, deadline, caller, |v| *v > 0)?;
                if got {
                    *v -= 1;
                }
                Ok(Value::Boolean(got))
            }
            "release" => {
                let mut v = lock(&self.value);
                if self.bound.is_some_and(|b| *v >= b) {
                    return fail(RemoteKind::ValueError, "Semaphore released too many times");
                }
                *v += 1;
                self.changed.notify_all();
                Ok(Value::Nil)
            }
            "get_value" => Ok(Value::from(*lock(&self.value))),
            other => no_method("Semaphore", other),
        }
    }
}

/// Python's `threading.Barrier` behind `manager.Barrier(parties)`.
#[derive(Debug)]
pub(crate) struct Barrier {
    state: Mutex<BarrierState>,
    changed: Condvar,
    parties: u64,
}

#[derive(Debug, Default)]
struct BarrierState {
    waiting: u64,
    generation: u64,
    broken: bool,
}

impl Barrier {
    fn call(&self, method: &str, args: Vec<Value>, caller: &Caller<'_>) -> Outcome {
        let mut a = Args::new(method, args);
        let broken = || fail(RemoteKind::BrokenBarrier, "the barrier is broken");
        match method {
            "wait" => {
                let Some(deadline) = deadline_of(None, a.optional()) else {
                    return fail(
                        RemoteKind::ValueError,
                        "'timeout' must be a non-negative number",
                    );
                };
                let mut st = lock(&self.state);
                if st.broken {
                    return broken();
                }
                let index = st.waiting;
                st.waiting += 1;
                if st.waiting == self.parties {
                    st.waiting = 0;
                    st.generation += 1;
                    self.changed.notify_all();
                    return Ok(Value::from(index));
                }
                let generation = st.generation;
                let result = wait_until(&self.changed, st, deadline, caller, |s| {
                    s.generation != generation || s.broken
                });
                let (mut st, passed) = match result {
                    Ok(r) => r,
                    Err(e) => {
                        // The caller went away: the others cannot all arrive any more.
                        let mut st = lock(&self.state);
                        st.broken = true;
                        self.changed.notify_all();
                        return Err(e);
                    }
                };
                if st.generation != generation {
                    Ok(Value::from(index))
                } else {
                    // Timed out, or broken meanwhile: Python breaks the barrier on a timeout.
                    if !passed {
                        st.broken = true;
                        self.changed.notify_all();
                    }
                    broken()
                }
            }
            "abort" => {
                lock(&self.state).broken = true;
                self.changed.notify_all();
                Ok(Value::Nil)
            }
            "reset" => {
                let mut st = lock(&self.state);
                st.broken = false;
                st.waiting = 0;
                st.generation += 1;
                self.changed.notify_all();
                Ok(Value::Nil)
            }
            "parties" => Ok(Value::from(self.parties)),
            "n_waiting" => Ok(Value::from(lock(&self.state).waiting)),
            "broken" => Ok(Value::Boolean(lock(&self.state).broken)),
            other => no_method("Barrier", other),
        }
    }
}

/// Python's `threading.Condition` (over its own `RLock`) behind `manager.Condition()`: the
/// lock is owned by a connection, as a manager `Lock` is.
#[derive(Debug, Default)]
pub(crate) struct Condition {
    state: Mutex<ConditionState>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct ConditionState {
    own: Ownership,
    /// Waiting tickets, oldest first.
    waiting: VecDeque<u64>,
    /// Tickets notified and not yet woken.
    notified: Vec<u64>,
    next_ticket: u64,
}

impl Condition {
    fn owner_gone(&self, conn: u64) {
        if lock(&self.state).own.owner_gone(conn) {
            self.changed.notify_all();
        }
    }

    fn call(&self, method: &str, args: Vec<Value>, caller: &Caller<'_>) -> Outcome {
        let mut a = Args::new(method, args);
        let me = caller.conn;
        let not_owner = |what: &str| {
            fail(
                RemoteKind::ValueError,
                format!("cannot {what} an un-acquired lock"),
            )
        };
        match method {
            "acquire" => acquire_owned(
                &self.changed,
                lock(&self.state),
                |s| &mut s.own,
                true,
                &mut a,
                caller,
            ),
            "release" => {
                let mut st = lock(&self.state);
                if st.own.owner != Some(me) {
                    return not_owner("release");
                }
                st.own.count -= 1;
                if st.own.count == 0 {
                    st.own.owner = None;
                    self.changed.notify_all();
                }
                Ok(Value::Nil)
            }
            "wait" => {
                let Some(deadline) = deadline_of(None, a.optional()) else {
                    return fail(
                        RemoteKind::ValueError,
                        "'timeout' must be a non-negative number",
                    );
                };
                let mut st = lock(&self.state);
                if st.own.owner != Some(me) {
                    return not_owner("wait on");
                }
                // Release the lock wholly, wait for a notify, take the lock back as it was.
                let depth = st.own.count;
                st.own.owner = None;
                st.own.count = 0;
                let ticket = st.next_ticket;
                st.next_ticket += 1;
                st.waiting.push_back(ticket);
                self.changed.notify_all();
                let result = wait_until(&self.changed, st, deadline, caller, |s| {
                    s.notified.contains(&ticket)
                });
                let (mut st, notified) = match result {
                    Ok(r) => r,
                    Err(e) => {
                        let mut st = lock(&self.state);
                        st.waiting.retain(|&t| t != ticket);
                        st.notified.retain(|&t| t != ticket);
                        return Err(e);
                    }
                };
                st.waiting.retain(|&t| t != ticket);
                st.notified.retain(|&t| t != ticket);
                let (mut st, _) =
                    wait_until(&self.changed, st, None, caller, |s| s.own.owner.is_none())?;
                st.own.owner = Some(me);
                st.own.count = depth;
                Ok(Value::Boolean(notified))
            }
            "notify" | "notify_all" => {
                let n = if method == "notify" {
                    match a.optional() {
                        Some(Value::Integer(n)) => n.as_u64().unwrap_or(1),
                        _ => 1,
                    }
                } else {
                    u64::MAX
                };
                let mut st = lock(&self.state);
                if st.own.owner != Some(me) {
                    return not_owner("notify on");
                }
                let waiting: Vec<u64> = st
                    .waiting
                    .iter()
                    .copied()
                    .filter(|t| !st.notified.contains(t))
                    .take(usize::try_from(n).unwrap_or(usize::MAX))
                    .collect();
                st.notified.extend(waiting);
                self.changed.notify_all();
                Ok(Value::Nil)
            }
            other => no_method("Condition", other),
        }
    }
}

fn array_call(v: &mut [Value], method: &str, args: Vec<Value>) -> Outcome {
    let mut a = Args::new(method, args);
    match method {
        "__getitem__" => {
            let i = a.index()?;
            match resolve(i, v.len()) {
                Some(i) => Ok(v[i].clone()),
                None => fail(RemoteKind::IndexError, "array index out of range"),
            }
        }
        "__setitem__" => {
            let (i, x) = (a.index()?, a.next()?);
            match resolve(i, v.len()) {
                Some(i) => {
                    v[i] = x;
                    Ok(Value::Nil)
                }
                None => fail(
                    RemoteKind::IndexError,
                    "array assignment index out of range",
                ),
            }
        }
        "__len__" => Ok(Value::from(v.len() as u64)),
        "copy" => Ok(Value::Array(v.to_vec())),
        other => no_method("Array", other),
    }
}

fn value_call(v: &mut Value, method: &str, args: Vec<Value>) -> Outcome {
    let mut a = Args::new(method, args);
    match method {
        "get" => Ok(v.clone()),
        "set" => {
            *v = a.next()?;
            Ok(Value::Nil)
        }
        other => no_method("Value", other),
    }
}

/// The arguments of a call, taken in order.
struct Args {
    method: String,
    args: std::vec::IntoIter<Value>,
    given: usize,
}

impl Args {
    fn new(method: &str, args: Vec<Value>) -> Args {
        Args {
            method: method.to_owned(),
            given: args.len(),
            args: args.into_iter(),
        }
    }

    fn next(&mut self) -> Result<Value, Fail> {
        match self.args.next() {
            Some(v) => Ok(v),
            None => fail(
                RemoteKind::TypeError,
                format!(
                    "{}() takes more arguments than the {} given",
                    self.method, self.given
                ),
            ),
        }
    }

    fn optional(&mut self) -> Option<Value> {
        self.args.next()
    }

    fn index(&mut self) -> Result<i64, Fail> {
        match self.next()? {
            Value::Integer(i) => i
                .as_i64()
                .map_or_else(|| fail(RemoteKind::IndexError, "index out of range"), Ok),
            other => fail(
                RemoteKind::TypeError,
                format!("indices must be integers, not {other}"),
            ),
        }
    }
}

fn name(v: &Value) -> Result<String, Fail> {
    match v.as_str() {
        Some(s) => Ok(s.to_owned()),
        None => fail(
            RemoteKind::TypeError,
            format!("attribute name must be a string, not {v}"),
        ),
    }
}

fn no_method(kind: &str, method: &str) -> Outcome {
    fail(
        RemoteKind::AttributeError,
        format!("'{kind}' object has no exposed method {method:?}"),
    )
}

/// A dict whose keys compare by value (their MessagePack encoding) and which keeps insertion
/// order, as Python's does.
#[derive(Debug, Default)]
pub(crate) struct Dict {
    /// In insertion order; `None` where a key was removed.
    entries: Vec<Option<(Value, Value)>>,
    /// Encoded key → index into `entries`.
    index: HashMap<Vec<u8>, usize>,
}

/// The identity of a key: its MessagePack encoding (integers in their shortest form).
fn key_of(k: &Value) -> Vec<u8> {
    let mut buf = Vec::new();
    // Writing into a Vec cannot fail.
    let _ = rmpv::encode::write_value(&mut buf, k);
    buf
}

fn repr(v: &Value) -> String {
    v.to_string()
}

impl Dict {
    fn len(&self) -> usize {
        self.index.len()
    }

    fn get(&self, k: &Value) -> Option<&Value> {
        let i = *self.index.get(&key_of(k))?;
        self.entries[i].as_ref().map(|(_, v)| v)
    }

    fn set(&mut self, k: Value, v: Value) {
        let key = key_of(&k);
        match self.index.get(&key) {
            Some(&i) => self.entries[i] = Some((k, v)),
            None => {
                self.index.insert(key, self.entries.len());
                self.entries.push(Some((k, v)));
            }
        }
    }

    fn remove(&mut self, k: &Value) -> Option<Value> {
        let i = self.index.remove(&key_of(k))?;
        let (_, v) = self.entries[i].take()?;
        self.compact();
        Some(v)
    }

    /// Drops the holes once they are the majority (keeps operations amortized O(1)).
    fn compact(&mut self) {
        if self.entries.len() > 32 && self.index.len() * 2 < self.entries.len() {
            self.entries.retain(Option::is_some);
            for (i, (k, _)) in self.entries.iter().flatten().enumerate() {
                self.index.insert(key_of(k), i);
            }
        }
    }

    fn pairs(&self) -> impl Iterator<Item = &(Value, Value)> {
        self.entries.iter().flatten()
    }

    /// `dict.update(items)`: a map or a list of pairs.
    fn update(&mut self, items: Value) -> Result<(), Fail> {
        match items {
            Value::Map(pairs) => {
                for (k, v) in pairs {
                    self.set(k, v);
                }
                Ok(())
            }
            Value::Array(pairs) => {
                for pair in pairs {
                    match pair {
                        Value::Array(kv) if kv.len() == 2 => {
                            let mut kv = kv.into_iter();
                            if let (Some(k), Some(v)) = (kv.next(), kv.next()) {
                                self.set(k, v);
                            }
                        }
                        other => {
                            return fail(
                                RemoteKind::TypeError,
                                format!("update: {other} is not a (key, value) pair"),
                            )
                        }
                    }
                }
                Ok(())
            }
            Value::Nil => Ok(()),
            other => fail(
                RemoteKind::TypeError,
                format!("update: {other} is not a dict"),
            ),
        }
    }

    fn call(&mut self, method: &str, args: Vec<Value>) -> Outcome {
        let mut a = Args::new(method, args);
        match method {
            "__getitem__" => {
                let k = a.next()?;
                match self.get(&k) {
                    Some(v) => Ok(v.clone()),
                    None => fail(RemoteKind::KeyError, repr(&k)),
                }
            }
            "get" => {
                let k = a.next()?;
                Ok(self
                    .get(&k)
                    .cloned()
                    .or_else(|| a.optional())
                    .unwrap_or(Value::Nil))
            }
            "__setitem__" => {
                let (k, v) = (a.next()?, a.next()?);
                self.set(k, v);
                Ok(Value::Nil)
            }
            "__delitem__" => {
                let k = a.next()?;
                match self.remove(&k) {
                    Some(_) => Ok(Value::Nil),
                    None => fail(RemoteKind::KeyError, repr(&k)),
                }
            }
            "pop" => {
                let k = a.next()?;
                match (self.remove(&k), a.optional()) {
                    (Some(v), _) | (None, Some(v)) => Ok(v),
                    (None, None) => fail(RemoteKind::KeyError, repr(&k)),
                }
            }
            "popitem" => {
                let last = self.entries.iter().rposition(Option::is_some);
                match last.and_then(|i| self.entries[i].clone()) {
                    Some((k, v)) => {
                        self.remove(&k);
                        Ok(Value::Array(vec![k, v]))
                    }
                    None => fail(RemoteKind::KeyError, "popitem(): dictionary is empty"),
                }
            }
            "setdefault" => {
                let k = a.next()?;
                let default = a.optional().unwrap_or(Value::Nil);
                if let Some(v) = self.get(&k) {
                    return Ok(v.clone());
                }
                self.set(k, default.clone());
                Ok(default)
            }
            "__contains__" => Ok(Value::Boolean(self.get(&a.next()?).is_some())),
            "__len__" => Ok(Value::from(self.len() as u64)),
            "keys" => Ok(Value::Array(self.pairs().map(|(k, _)| k.clone()).collect())),
            "values" => Ok(Value::Array(self.pairs().map(|(_, v)| v.clone()).collect())),
            "items" | "copy" => Ok(Value::Array(
                self.pairs()
                    .map(|(k, v)| Value::Array(vec![k.clone(), v.clone()]))
                    .collect(),
            )),
            "update" => {
                self.update(a.next()?)?;
                Ok(Value::Nil)
            }
            "clear" => {
                self.entries.clear();
                self.index.clear();
                Ok(Value::Nil)
            }
            other => no_method("dict", other),
        }
    }
}

/// Python's index rule: `-1` is the last item; out of range is `None`.
fn resolve(i: i64, len: usize) -> Option<usize> {
    let len = i64::try_from(len).ok()?;
    let i = if i < 0 { i + len } else { i };
    (0..len).contains(&i).then_some(i as usize)
}

/// Python's slice bounds: negative from the end, clamped to `0..=len`.
fn clamp(i: Option<i64>, len: usize, default: usize) -> usize {
    let Some(i) = i else { return default };
    let n = len as i64;
    let i = if i < 0 { (i + n).max(0) } else { i.min(n) };
    i as usize
}

fn opt_index(v: Option<Value>) -> Result<Option<i64>, Fail> {
    match v {
        None | Some(Value::Nil) => Ok(None),
        Some(Value::Integer(i)) => Ok(i.as_i64()),
        Some(other) => fail(
            RemoteKind::TypeError,
            format!("slice indices must be integers, not {other}"),
        ),
    }
}

fn list_call(l: &mut Vec<Value>, method: &str, args: Vec<Value>) -> Outcome {
    let mut a = Args::new(method, args);
    let out_of_range = || fail(RemoteKind::IndexError, "list index out of range");
    match method {
        "append" => {
            l.push(a.next()?);
            Ok(Value::Nil)
        }
        "extend" => match a.next()? {
            Value::Array(items) => {
                l.extend(items);
                Ok(Value::Nil)
            }
            other => fail(
                RemoteKind::TypeError,
                format!("extend: {other} is not a list"),
            ),
        },
        "__getitem__" => {
            let i = a.index()?;
            match resolve(i, l.len()) {
                Some(i) => Ok(l[i].clone()),
                None => out_of_range(),
            }
        }
        "__setitem__" => {
            let (i, v) = (a.index()?, a.next()?);
            match resolve(i, l.len()) {
                Some(i) => {
                    l[i] = v;
                    Ok(Value::Nil)
                }
                None => fail(RemoteKind::IndexError, "list assignment index out of range"),
            }
        }
        "__delitem__" => {
            let i = a.index()?;
            match resolve(i, l.len()) {
                Some(i) => {
                    l.remove(i);
                    Ok(Value::Nil)
                }
                None => fail(RemoteKind::IndexError, "list assignment index out of range"),
            }
        }
        "getslice" => {
            let (start, stop) = (opt_index(a.optional())?, opt_index(a.optional())?);
            let (start, stop) = (clamp(start, l.len(), 0), clamp(stop, l.len(), l.len()));
            Ok(Value::Array(if start < stop {
                l[start..stop].to_vec()
            } else {
                Vec::new()
            }))
        }
        "insert" => {
            let (i, v) = (a.index()?, a.next()?);
            let at = clamp(Some(i), l.len(), l.len());
            l.insert(at, v);
            Ok(Value::Nil)
        }
        "pop" => {
            let i = opt_index(a.optional())?.unwrap_or(-1);
            if l.is_empty() {
                return fail(RemoteKind::IndexError, "pop from empty list");
            }
            match resolve(i, l.len()) {
                Some(i) => Ok(l.remove(i)),
                None => fail(RemoteKind::IndexError, "pop index out of range"),
            }
        }
        "remove" => {
            let v = a.next()?;
            match l.iter().position(|x| *x == v) {
                Some(i) => {
                    l.remove(i);
                    Ok(Value::Nil)
                }
                None => fail(
                    RemoteKind::ValueError,
                    format!("list.remove(x): {} not in list", repr(&v)),
                ),
            }
        }
        "index" => {
            let v = a.next()?;
            match l.iter().position(|x| *x == v) {
                Some(i) => Ok(Value::from(i as u64)),
                None => fail(
                    RemoteKind::ValueError,
                    format!("{} is not in list", repr(&v)),
                ),
            }
        }
        "count" => {
            let v = a.next()?;
            Ok(Value::from(l.iter().filter(|x| **x == v).count() as u64))
        }
        "__len__" => Ok(Value::from(l.len() as u64)),
        "__contains__" => {
            let v = a.next()?;
            Ok(Value::Boolean(l.contains(&v)))
        }
        "reverse" => {
            l.reverse();
            Ok(Value::Nil)
        }
        "copy" => Ok(Value::Array(l.clone())),
        "clear" => {
            l.clear();
            Ok(Value::Nil)
        }
        other => no_method("list", other),
    }
}

fn namespace_call(ns: &mut BTreeMap<String, Value>, method: &str, args: Vec<Value>) -> Outcome {
    let mut a = Args::new(method, args);
    match method {
        "__getattribute__" => {
            let n = name(&a.next()?)?;
            match ns.get(&n) {
                Some(v) => Ok(v.clone()),
                None => fail(
                    RemoteKind::AttributeError,
                    format!("'Namespace' object has no attribute {n:?}"),
                ),
            }
        }
        "__setattr__" => {
            let (n, v) = (name(&a.next()?)?, a.next()?);
            ns.insert(n, v);
            Ok(Value::Nil)
        }
        "__delattr__" => {
            let n = name(&a.next()?)?;
            match ns.remove(&n) {
                Some(_) => Ok(Value::Nil),
                None => fail(RemoteKind::AttributeError, n),
            }
        }
        "__dir__" => Ok(Value::Array(
            ns.keys().map(|k| Value::from(k.as_str())).collect(),
        )),
        other => no_method("Namespace", other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(o: &mut Object, m: &str, args: Vec<Value>) -> Outcome {
        let gone = || false;
        o.call(
            m,
            args,
            &Caller {
                conn: 0,
                gone: &gone,
            },
        )
    }

    #[test]
    fn dict_keeps_insertion_order_and_compares_keys_by_value() {
        let mut d = Object::create("dict", vec![]).unwrap();
        for (k, v) in [(3, "c"), (1, "a"), (2, "b")] {
            call(&mut d, "__setitem__", vec![Value::from(k), Value::from(v)]).unwrap();
        }
        // 1u8 and 1i64 are the same key.
        call(
            &mut d,
            "__setitem__",
            vec![Value::from(1i64), Value::from("A")],
        )
        .unwrap();
        let keys = call(&mut d, "keys", vec![]).unwrap();
        assert_eq!(keys, Value::Array(vec![3.into(), 1.into(), 2.into()]));
        assert_eq!(
            call(&mut d, "__getitem__", vec![1u8.into()]).unwrap(),
            Value::from("A")
        );
        let err = call(&mut d, "__getitem__", vec![9.into()]).unwrap_err();
        assert_eq!(err.0, RemoteKind::KeyError);
        assert_eq!(
            call(&mut d, "popitem", vec![]).unwrap(),
            Value::Array(vec![2.into(), "b".into()])
        );
        for i in 0..100 {
            call(
                &mut d,
                "__setitem__",
                vec![Value::from(100 + i), Value::Nil],
            )
            .unwrap();
            call(&mut d, "__delitem__", vec![Value::from(100 + i)]).unwrap();
        }
        assert_eq!(call(&mut d, "__len__", vec![]).unwrap(), Value::from(2));
        assert_eq!(
            call(&mut d, "keys", vec![]).unwrap(),
            Value::Array(vec![3.into(), 1.into()])
        );
    }

    #[test]
    fn list_follows_pythons_index_rules() {
        let mut l = Object::create(
            "list",
            vec![Value::Array((0..5).map(Value::from).collect())],
        )
        .unwrap();
        assert_eq!(
            call(&mut l, "__getitem__", vec![(-1).into()]).unwrap(),
            Value::from(4)
        );
        assert_eq!(
            call(&mut l, "__getitem__", vec![5.into()]).unwrap_err().0,
            RemoteKind::IndexError
        );
        assert_eq!(
            call(&mut l, "getslice", vec![1.into(), (-1).into()]).unwrap(),
            Value::Array(vec![1.into(), 2.into(), 3.into()])
        );
        call(&mut l, "insert", vec![(-100).into(), "x".into()]).unwrap();
        assert_eq!(
            call(&mut l, "index", vec!["x".into()]).unwrap(),
            Value::from(0)
        );
        assert_eq!(
            call(&mut l, "remove", vec!["y".into()]).unwrap_err().0,
            RemoteKind::ValueError
        );
        assert_eq!(call(&mut l, "pop", vec![]).unwrap(), Value::from(4));
        assert_eq!(
            call(&mut l, "nope", vec![]).unwrap_err().0,
            RemoteKind::AttributeError
        );
    }
}
