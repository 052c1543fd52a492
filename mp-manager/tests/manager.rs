//! Managers and proxies across real processes: the seed's example under every start method,
//! the proxies' Python semantics, reference counting across processes (killed ones included),
//! a dead server, a wrong key, garbage requests, and concurrent clients.

use std::os::linux::net::SocketAddrExt;
use std::time::{Duration, Instant};

use mp_connection::Client;
use mp_core::{current_process, get_context, Connection};
use mp_manager::protocol::{Reply, Request};
use mp_manager::{
    DictProxy, EventProxy, ListProxy, LockProxy, Manager, NamespaceProxy, QueueProxy, RemoteKind,
};
use mp_testkit::{eventually, start, LONG, METHODS};

/// The child of Python's example: fills the dict, reverses the list.
fn fill((d, l): (DictProxy<String, f64>, ListProxy<i32>)) {
    d.set("1".into(), 1.0).unwrap();
    d.set("2".into(), 2.0).unwrap();
    d.set("0.25".into(), 0.25).unwrap();
    l.reverse().unwrap();
}

#[test]
fn a_child_fills_a_dict_and_reverses_a_list_under_every_start_method() {
    for m in METHODS {
        let manager = Manager::with_context(get_context(Some(m))).unwrap();
        let d = manager.dict::<String, f64>().unwrap();
        let l = manager.list_from(&(0..10).collect::<Vec<i32>>()).unwrap();
        start(m, fill, (d.clone(), l.clone())).finish();
        assert_eq!(
            d.items().unwrap(),
            [
                ("1".to_string(), 1.0),
                ("2".to_string(), 2.0),
                ("0.25".to_string(), 0.25)
            ],
            "{m}"
        );
        assert_eq!(l.copy().unwrap(), [9, 8, 7, 6, 5, 4, 3, 2, 1, 0], "{m}");
    }
}

#[test]
fn a_dict_proxy_has_pythons_methods_and_errors() {
    let manager = Manager::new().unwrap();
    let d = manager.dict::<String, i64>().unwrap();
    assert!(d.is_empty().unwrap());
    d.update([("b".to_string(), 2), ("a".to_string(), 1)])
        .unwrap();
    d.set("c".into(), 3).unwrap();
    assert_eq!(d.keys().unwrap(), ["b", "a", "c"], "insertion order");
    assert_eq!(d.values().unwrap(), [2, 1, 3]);
    assert_eq!(d.get_item(&"a".into()).unwrap(), 1);
    let err = d.get_item(&"zz".into()).unwrap_err();
    assert!(err.is_key_error(), "{err}");
    // The server and the connection survive the error.
    assert_eq!(d.get(&"zz".into()).unwrap(), None);
    assert!(d.contains(&"b".into()).unwrap());
    assert_eq!(d.setdefault("d".into(), 4).unwrap(), 4);
    assert_eq!(d.setdefault("d".into(), 5).unwrap(), 4);
    assert_eq!(d.pop(&"b".into()).unwrap(), 2);
    assert!(d.pop(&"b".into()).unwrap_err().is_key_error());
    assert!(d.remove(&"b".into()).unwrap_err().is_key_error());
    assert_eq!(d.popitem().unwrap(), ("d".to_string(), 4));
    assert_eq!(d.len().unwrap(), 2);
    assert_eq!(
        d.copy().unwrap(),
        [("a".to_string(), 1), ("c".to_string(), 3)]
    );
    d.clear().unwrap();
    assert!(d.popitem().unwrap_err().is_key_error());
    // A value of the wrong type for the proxy's V: a typed codec error, not a panic.
    let other = manager.dict::<String, String>().unwrap();
    other.set("x".into(), "text".into()).unwrap();
    let wrong: DictProxy<String, i64> = d.clone();
    drop(wrong);
}

#[test]
fn a_list_proxy_follows_pythons_index_rules() {
    let manager = Manager::new().unwrap();
    let l = manager.list::<i32>().unwrap();
    l.extend(0..5).unwrap();
    l.append(5).unwrap();
    assert_eq!(l.get(-1).unwrap(), 5);
    assert_eq!(l.get(0).unwrap(), 0);
    assert!(l.get(6).unwrap_err().is_index_error());
    l.set(-2, 40).unwrap();
    assert_eq!(l.slice(Some(1), Some(-1)).unwrap(), [1, 2, 3, 40]);
    assert_eq!(l.slice(None, Some(2)).unwrap(), [0, 1]);
    assert_eq!(l.slice(Some(10), None).unwrap(), Vec::<i32>::new());
    l.insert(0, 7).unwrap();
    assert_eq!(l.index(&7).unwrap(), 0);
    assert_eq!(l.count(&7).unwrap(), 1);
    l.remove(&7).unwrap();
    assert!(l.remove(&7).unwrap_err().is_value_error());
    assert!(l.index(&7).unwrap_err().is_value_error());
    assert_eq!(l.pop().unwrap(), 5);
    assert_eq!(l.pop_at(0).unwrap(), 0);
    l.delete(-1).unwrap();
    assert_eq!(l.copy().unwrap(), [1, 2, 3]);
    assert!(l.contains(&2).unwrap());
    l.reverse().unwrap();
    assert_eq!(l.copy().unwrap(), [3, 2, 1]);
    assert_eq!(l.len().unwrap(), 3);
    l.clear().unwrap();
    assert!(l.pop().unwrap_err().is_index_error());
}

#[test]
fn a_namespace_proxy_holds_typed_attributes() {
    let manager = Manager::new().unwrap();
    let ns: NamespaceProxy = manager.namespace().unwrap();
    ns.set("x", &10).unwrap();
    ns.set("name", "ns").unwrap();
    ns.set("pair", &(1.5, vec![1u8, 2])).unwrap();
    assert_eq!(ns.get::<i32>("x").unwrap(), 10);
    assert_eq!(ns.get::<String>("name").unwrap(), "ns");
    assert_eq!(ns.get::<(f64, Vec<u8>)>("pair").unwrap(), (1.5, vec![1, 2]));
    let err = ns.get::<i32>("missing").unwrap_err();
    assert!(
        matches!(
            err,
            mp_manager::Error::Remote {
                kind: RemoteKind::AttributeError,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(ns.names().unwrap(), ["name", "pair", "x"]);
    ns.delete("x").unwrap();
    assert!(ns.get::<i32>("x").is_err());
}

#[test]
fn mutating_a_fetched_value_changes_nothing_until_it_is_assigned_back() {
    // The warning of Python's documentation, as a test.
    let manager = Manager::new().unwrap();
    let d = manager.dict::<String, Vec<i32>>().unwrap();
    d.set("l".into(), vec![1]).unwrap();
    let mut fetched = d.get_item(&"l".into()).unwrap();
    fetched.push(2);
    assert_eq!(
        d.get_item(&"l".into()).unwrap(),
        [1],
        "a copy, not the server's list"
    );
    d.set("l".into(), fetched).unwrap();
    assert_eq!(d.get_item(&"l".into()).unwrap(), [1, 2]);
}

/// Holds a proxy, says so, then waits to be killed.
fn hold_until_killed((l, mut ready): (ListProxy<i32>, Connection)) {
    l.append(1).unwrap();
    ready.send(&()).unwrap();
    std::thread::sleep(LONG);
}

#[test]
fn objects_are_freed_when_their_last_proxy_is_gone_even_in_a_killed_process() {
    for m in METHODS {
        let manager = Manager::new().unwrap();
        let d = manager.dict::<i32, i32>().unwrap();
        let clone = d.clone();
        assert_eq!(manager.number_of_objects().unwrap(), 1);
        drop(d);
        assert_eq!(manager.number_of_objects().unwrap(), 1, "a clone keeps it");
        drop(clone);
        eventually("the dict is freed", || {
            manager.number_of_objects().unwrap() == 0
        });

        let l = manager.list::<i32>().unwrap();
        let (mut ours, theirs) = mp_core::pipe(true).unwrap();
        let child = start(m, hold_until_killed, (l.clone(), theirs));
        ours.recv_timeout::<()>(LONG).unwrap();
        drop(l);
        assert_eq!(
            manager.number_of_objects().unwrap(),
            1,
            "the child holds it ({m})"
        );
        child.kill_and_reap();
        eventually("the killed child's reference goes", || {
            manager.number_of_objects().unwrap() == 0
        });
    }
}

#[test]
fn a_dead_server_fails_every_call_at_once() {
    let manager = Manager::new().unwrap();
    let d = manager.dict::<i32, i32>().unwrap();
    d.set(1, 1).unwrap();
    mp_testkit::kill_pid(manager.pid().unwrap());
    assert!(mp_testkit::ends_within(manager.pid().unwrap(), LONG));
    let started = Instant::now();
    let err = d.get_item(&1).unwrap_err();
    assert!(err.is_server_gone(), "{err}");
    assert!(d.set(2, 2).unwrap_err().is_server_gone());
    assert!(manager.dict::<i32, i32>().unwrap_err().is_server_gone());
    assert!(started.elapsed() < Duration::from_secs(5), "no call waited");
}

#[test]
fn a_wrong_key_is_refused_and_the_server_goes_on() {
    let manager = Manager::new().unwrap();
    let d = manager.dict::<i32, i32>().unwrap();
    let err = Manager::connect(manager.address().clone(), b"not the key").unwrap_err();
    assert!(err.is_authentication(), "{err}");
    d.set(1, 2).unwrap();
    // The right key (this process's) connects.
    let other =
        Manager::connect(manager.address().clone(), &current_process().get_authkey()).unwrap();
    assert_eq!(other.number_of_objects().unwrap(), 1);
}

#[test]
fn garbage_after_the_handshake_gets_an_error_and_the_server_goes_on() {
    let manager = Manager::new().unwrap();
    let key = current_process().get_authkey();
    let mut raw = Client::connect_timeout(manager.address(), Some(&key), LONG).unwrap();
    raw.send_bytes(b"\xc1 not a request").unwrap();
    match raw.recv_timeout::<Reply>(LONG).unwrap() {
        Reply::Error { kind, .. } => assert_eq!(kind, RemoteKind::TypeError),
        other => panic!("{other:?}"),
    }
    // A call on an object that does not exist, an unknown type, an unexposed method.
    raw.send(&Request::Call {
        id: 999,
        method: "x".into(),
        args: vec![],
    })
    .unwrap();
    assert!(matches!(
        raw.recv_timeout::<Reply>(LONG).unwrap(),
        Reply::Error { .. }
    ));
    raw.send(&Request::Create {
        typeid: "nope".into(),
        args: vec![],
    })
    .unwrap();
    assert!(matches!(
        raw.recv_timeout::<Reply>(LONG).unwrap(),
        Reply::Error { .. }
    ));
    let l = manager.list::<i32>().unwrap();
    raw.send(&Request::Call {
        id: l.id(),
        method: "__class__".into(),
        args: vec![],
    })
    .unwrap();
    match raw.recv_timeout::<Reply>(LONG).unwrap() {
        Reply::Error { kind, .. } => assert_eq!(kind, RemoteKind::AttributeError),
        other => panic!("{other:?}"),
    }
    // Adopting a reference nobody shared is refused, and a drop of that connection does not
    // free an object another proxy still holds.
    {
        let mut thief = Client::connect_timeout(manager.address(), Some(&key), LONG).unwrap();
        for _ in 0..3 {
            thief.send(&Request::Adopt { id: l.id() }).unwrap();
            match thief.recv_timeout::<Reply>(LONG).unwrap() {
                Reply::Error { kind, message } => {
                    assert_eq!(kind, RemoteKind::Other);
                    assert!(message.contains("in transit"), "{message}");
                }
                other => panic!("{other:?}"),
            }
        }
    }
    let before = manager.number_of_objects().unwrap();
    std::thread::sleep(Duration::from_millis(100)); // the thief's connection is dropped
    assert_eq!(manager.number_of_objects().unwrap(), before);
    // A silent client does not hold anyone up.
    let _silent = std::os::unix::net::UnixStream::connect_addr(
        &std::os::unix::net::SocketAddr::from_abstract_name(
            manager.address().to_string().trim_start_matches('@'),
        )
        .unwrap(),
    )
    .unwrap();
    l.append(1).unwrap();
    assert_eq!(l.copy().unwrap(), [1]);
}

/// One of the concurrent clients: sets its own keys, appends to the shared list.
fn client((d, l, me, ops): (DictProxy<String, u32>, ListProxy<u32>, u32, u32)) {
    for i in 0..ops {
        d.set(format!("{me}-{i}"), i).unwrap();
        assert_eq!(d.get_item(&format!("{me}-{i}")).unwrap(), i);
        if i % 10 == 0 {
            l.append(me).unwrap();
        }
    }
}

#[test]
fn concurrent_clients_lose_nothing() {
    const CLIENTS: u32 = 8;
    const OPS: u32 = 300;
    let manager = Manager::new().unwrap();
    let d = manager.dict::<String, u32>().unwrap();
    let l = manager.list::<u32>().unwrap();
    let children: Vec<_> = (0..CLIENTS)
        .map(|me| {
            start(
                METHODS[me as usize % 3],
                client,
                (d.clone(), l.clone(), me, OPS),
            )
        })
        .collect();
    for child in children {
        child.finish();
    }
    assert_eq!(d.len().unwrap(), (CLIENTS * OPS) as usize);
    for me in 0..CLIENTS {
        assert_eq!(d.get_item(&format!("{me}-{}", OPS - 1)).unwrap(), OPS - 1);
        assert_eq!(l.count(&me).unwrap(), (OPS / 10) as usize);
    }
}

#[test]
fn shutdown_ends_the_server_process() {
    let mut manager = Manager::new().unwrap();
    let pid = manager.pid().unwrap();
    let d = manager.dict::<i32, i32>().unwrap();
    manager.shutdown().unwrap();
    assert!(mp_testkit::ends_within(pid, LONG));
    assert!(!mp_testkit::zombie_children().contains(&pid), "reaped");
    assert!(d.get_item(&1).unwrap_err().is_server_gone());
}

/// The manager that started a server stops it through its own channel, not the listener:
/// with 300 silent connections holding handshakes open, the shutdown is prompt all the same.
#[test]
fn shutdown_is_prompt_while_silent_clients_crowd_the_listener() {
    let mut manager = Manager::new().unwrap();
    let pid = manager.pid().unwrap();
    let name = manager.address().to_string();
    let silent: Vec<_> = (0..300)
        .map(|_| {
            std::os::unix::net::UnixStream::connect_addr(
                &std::os::unix::net::SocketAddr::from_abstract_name(name.trim_start_matches('@'))
                    .unwrap(),
            )
            .unwrap()
        })
        .collect();
    let started = Instant::now();
    manager.shutdown().unwrap();
    assert!(mp_testkit::ends_within(pid, LONG));
    mp_testkit::assert_prompt(started.elapsed(), "shutdown beside 300 silent clients");
    drop(silent);
}

/// Puts `n` items, then `None`.
fn produce((q, n): (QueueProxy<Option<u32>>, u32)) {
    for i in 0..n {
        q.put(Some(i)).unwrap();
    }
    q.put(None).unwrap();
}

#[test]
fn a_queue_proxy_carries_items_between_processes_with_timeouts() {
    for m in METHODS {
        let manager = Manager::new().unwrap();
        let q = manager.queue::<Option<u32>>().unwrap();
        let child = start(m, produce, (q.clone(), 100));
        let mut got = Vec::new();
        while let Some(i) = q.get_timeout(LONG).unwrap() {
            got.push(i);
        }
        child.finish();
        assert_eq!(got, (0..100).collect::<Vec<_>>(), "{m}");
        let started = Instant::now();
        assert!(q
            .get_timeout(Duration::from_millis(200))
            .unwrap_err()
            .is_empty());
        assert!(started.elapsed() >= Duration::from_millis(150));
        assert!(q.get_nowait().unwrap_err().is_empty());
        assert!(q.empty().unwrap());
    }
    let manager = Manager::new().unwrap();
    let small = manager.queue_with_maxsize::<i32>(2).unwrap();
    small.put(1).unwrap();
    small.put_nowait(2).unwrap();
    assert!(small.full().unwrap());
    assert!(small.put_nowait(3).unwrap_err().is_full());
    assert!(small
        .put_timeout(3, Duration::from_millis(50))
        .unwrap_err()
        .is_full());
    assert_eq!(small.qsize().unwrap(), 2);
    assert_eq!(small.get().unwrap(), 1);
}

fn set_event(e: EventProxy) {
    std::thread::sleep(Duration::from_millis(100));
    e.set().unwrap();
}

#[test]
fn an_event_and_a_value_proxy_work_across_processes() {
    let manager = Manager::new().unwrap();
    let e = manager.event().unwrap();
    assert!(!e.wait_timeout(Duration::from_millis(50)).unwrap());
    let child = start(mp_core::StartMethod::Spawn, set_event, e.clone());
    assert!(e.wait_timeout(LONG).unwrap());
    assert!(e.is_set().unwrap());
    child.finish();
    e.clear().unwrap();
    assert!(!e.is_set().unwrap());
    let v = manager.value(0.5f64).unwrap();
    assert_eq!(v.get().unwrap(), 0.5);
    v.set(2.5).unwrap();
    assert_eq!(v.get().unwrap(), 2.5);
}

/// Takes the lock, says so, then waits to be killed holding it.
fn hold_the_lock((l, mut ready): (LockProxy, Connection)) {
    assert!(l.acquire().unwrap());
    ready.send(&()).unwrap();
    std::thread::sleep(LONG);
}

#[test]
fn a_manager_lock_held_by_a_killed_process_is_freed_with_owner_died() {
    for m in METHODS {
        let manager = Manager::new().unwrap();
        let l = manager.lock().unwrap();
        let (mut ours, theirs) = mp_core::pipe(true).unwrap();
        let child = start(m, hold_the_lock, (l.clone(), theirs));
        ours.recv_timeout::<()>(LONG).unwrap();
        assert!(l.locked().unwrap());
        assert!(!l.try_acquire().unwrap());
        child.kill_and_reap();
        // The next acquirer gets it, and is told.
        let err = l.acquire_timeout(LONG).unwrap_err();
        assert!(err.is_owner_died(), "{m}: {err}");
        assert!(l.locked().unwrap(), "held by us now");
        l.release().unwrap();
        assert!(l.acquire().unwrap(), "{m}: an ordinary lock again");
        l.release().unwrap();
        assert!(l.release().unwrap_err().is_value_error());
    }
    let manager = Manager::new().unwrap();
    let r = manager.rlock().unwrap();
    assert!(r.acquire().unwrap());
    assert!(r.acquire().unwrap(), "recursive");
    r.release().unwrap();
    r.release().unwrap();
    assert!(!r.locked().unwrap());
}

/// Blocks on an empty queue forever.
fn block_on_get(q: QueueProxy<i32>) {
    let _ = q.get();
}

#[test]
fn a_killed_client_blocked_on_the_server_costs_it_nothing() {
    let manager = Manager::new().unwrap();
    let q = manager.queue::<i32>().unwrap();
    let child = start(mp_core::StartMethod::Fork, block_on_get, q.clone());
    std::thread::sleep(mp_testkit::SETTLE);
    child.kill_and_reap();
    // Its blocked get gave up on the server: an item put now is ours, not lost to it.
    q.put(5).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(q.get_timeout(LONG).unwrap(), 5);
}

const REMOTE_KEY: &[u8] = b"remote manager key";

/// Python's remote manager: serves a queue on TCP under the name `get_queue`.
fn queue_server(mut report: Connection) {
    let server = mp_manager::Server::bind(
        Some(mp_connection::Address::tcp(
            std::net::Ipv4Addr::LOCALHOST,
            0,
        )),
        REMOTE_KEY,
    )
    .unwrap();
    server.share("get_queue", "Queue").unwrap();
    report.send(&server.address().to_string()).unwrap();
    server.serve_forever().unwrap();
}

/// Another program's process: connects with the address and the key, puts.
fn remote_put(address: String) {
    let m = Manager::connect(address.parse().unwrap(), REMOTE_KEY).unwrap();
    let q: QueueProxy<String> = m.shared("get_queue").unwrap();
    q.put("hello".into()).unwrap();
}

/// A third process: connects, gets.
fn remote_get(address: String) -> String {
    let m = Manager::connect(address.parse().unwrap(), REMOTE_KEY).unwrap();
    let q: QueueProxy<String> = m.shared("get_queue").unwrap();
    q.get_timeout(LONG).unwrap()
}

#[test]
fn a_remote_manager_serves_a_queue_over_tcp_to_two_other_processes() {
    use mp_core::StartMethod::{Fork, Spawn};
    let (mut ours, theirs) = mp_core::pipe(true).unwrap();
    let server = start(Spawn, queue_server, theirs);
    let address: String = ours.recv_timeout(LONG).unwrap();
    assert!(address.starts_with("127.0.0.1:"), "{address}");
    start(Spawn, remote_put, address.clone()).finish();
    assert_eq!(start(Fork, remote_get, address.clone()).finish(), "hello");
    // A wrong key is refused; the shared name must be of the proxy's type.
    let err = Manager::connect(address.parse().unwrap(), b"wrong").unwrap_err();
    assert!(err.is_authentication(), "{err}");
    let mut m = Manager::connect(address.parse().unwrap(), REMOTE_KEY).unwrap();
    assert!(m.shared::<DictProxy<i32, i32>>("get_queue").is_err());
    m.shutdown().unwrap();
    server.finish();
}

/// Python's `MathsClass`, registered on a manager.
#[derive(Default)]
struct MathsClass {
    calls: u32,
}

impl MathsClass {
    fn add(&mut self, x: i64, y: i64) -> i64 {
        self.calls += 1;
        x + y
    }
    fn mul(&mut self, x: i64, y: i64) -> i64 {
        self.calls += 1;
        x * y
    }
    fn calls(&mut self) -> u32 {
        self.calls
    }
    #[allow(dead_code)]
    fn secret(&mut self) -> u32 {
        42
    }
}

mp_manager::exposed! {
    impl MathsClass as MathsProxy {
        fn add(&mut self, x: i64, y: i64) -> i64;
        fn mul(&mut self, x: i64, y: i64) -> i64;
        fn calls(&mut self) -> u32;
    }
}

fn use_maths(maths: MathsProxy) -> i64 {
    maths.add(4, 3).unwrap() + maths.mul(7, 8).unwrap()
}

#[test]
fn a_registered_user_type_is_called_by_name_from_every_start_method() {
    for m in METHODS {
        let manager = Manager::builder()
            .context(get_context(Some(m)))
            .register::<MathsClass>()
            .start()
            .unwrap();
        let maths: MathsProxy = manager.create().unwrap();
        assert_eq!(maths.add(4, 3).unwrap(), 7);
        assert_eq!(maths.mul(7, 8).unwrap(), 56);
        // The same object, from a child.
        assert_eq!(start(m, use_maths, maths.clone()).finish(), 63, "{m}");
        assert_eq!(maths.calls().unwrap(), 4, "{m}: one object on the server");
    }
}

#[test]
fn an_unexposed_method_or_bad_arguments_are_remote_errors() {
    let manager = Manager::builder().register::<MathsClass>().start().unwrap();
    let key = current_process().get_authkey();
    let maths: MathsProxy = manager.create().unwrap();
    let mut raw = Client::connect_timeout(manager.address(), Some(&key), LONG).unwrap();
    let id = {
        raw.send(&Request::Create {
            typeid: "MathsClass".into(),
            args: vec![],
        })
        .unwrap();
        match raw.recv_timeout::<Reply>(LONG).unwrap() {
            Reply::Proxy(token) => token.id,
            other => panic!("{other:?}"),
        }
    };
    for (method, args, kind) in [
        ("secret", vec![], RemoteKind::AttributeError),
        ("add", vec![1.into()], RemoteKind::TypeError),
        ("add", vec!["x".into(), 2.into()], RemoteKind::TypeError),
    ] {
        raw.send(&Request::Call {
            id,
            method: method.into(),
            args,
        })
        .unwrap();
        match raw.recv_timeout::<Reply>(LONG).unwrap() {
            Reply::Error { kind: k, .. } => assert_eq!(k, kind, "{method}"),
            other => panic!("{method}: {other:?}"),
        }
    }
    // The server and the other proxies go on.
    assert_eq!(maths.add(1, 1).unwrap(), 2);
    // An unregistered manager has no such type.
    let plain = Manager::new().unwrap();
    assert!(plain.create::<MathsProxy>().is_err());
}

/// Takes items, marks each done.
fn work_through(q: mp_manager::JoinableQueueProxy<u32>) {
    for _ in 0..10 {
        q.get_timeout(LONG).unwrap();
        q.task_done().unwrap();
    }
}

#[test]
fn a_joinable_queue_proxy_joins_when_every_item_is_done() {
    let manager = Manager::new().unwrap();
    let q = manager.joinable_queue::<u32>().unwrap();
    for i in 0..10 {
        q.put(i).unwrap();
    }
    assert!(!q.join_timeout(Duration::from_millis(50)).unwrap());
    let child = start(mp_core::StartMethod::Forkserver, work_through, q.clone());
    assert!(q.join_timeout(LONG).unwrap());
    child.finish();
    assert!(q.task_done().unwrap_err().is_value_error());
}

fn pass_barrier(b: mp_manager::BarrierProxy) -> u64 {
    b.wait_timeout(LONG).unwrap()
}

#[test]
fn semaphore_barrier_and_array_proxies_work_across_processes() {
    let manager = Manager::new().unwrap();
    let s = manager.semaphore(2).unwrap();
    assert!(s.acquire().unwrap());
    assert!(s.try_acquire().unwrap());
    assert!(!s.acquire_timeout(Duration::from_millis(50)).unwrap());
    assert_eq!(s.get_value().unwrap(), 0);
    s.release().unwrap();
    s.release().unwrap();
    s.release().unwrap();
    assert_eq!(
        s.get_value().unwrap(),
        3,
        "a plain semaphore goes past its start"
    );
    let bounded = manager.bounded_semaphore(1).unwrap();
    assert!(bounded.release().unwrap_err().is_value_error());

    let b = manager.barrier(3).unwrap();
    let children: Vec<_> = (0..2)
        .map(|_| start(mp_core::StartMethod::Fork, pass_barrier, b.clone()))
        .collect();
    let mine = b.wait_timeout(LONG).unwrap();
    let mut indices: Vec<u64> = children.into_iter().map(|c| c.finish()).collect();
    indices.push(mine);
    indices.sort();
    assert_eq!(indices, [0, 1, 2]);
    assert_eq!(b.parties().unwrap(), 3);
    assert!(b
        .wait_timeout(Duration::from_millis(50))
        .unwrap_err()
        .is_broken_barrier());
    assert!(b.broken().unwrap());
    b.reset().unwrap();
    assert!(!b.broken().unwrap());

    let a = manager.array(&[1.5f64, 2.5, 3.5]).unwrap();
    a.set(-1, 0.0).unwrap();
    assert_eq!(a.get(0).unwrap(), 1.5);
    assert!(a.get(3).unwrap_err().is_index_error());
    assert_eq!(a.copy().unwrap(), [1.5, 2.5, 0.0]);
    assert_eq!(a.len().unwrap(), 3);
}

#[test]
fn a_huge_length_header_or_a_flood_of_connections_never_stops_the_server() {
    let manager = Manager::new().unwrap();
    let d = manager.dict::<i32, i32>().unwrap();
    let key = current_process().get_authkey();
    // A 2^60-byte message announced after the handshake: refused unread, connection closed.
    let mut raw = Client::connect_timeout(manager.address(), Some(&key), LONG).unwrap();
    let fd = raw.fileno().unwrap();
    let mut header = (-1i32).to_be_bytes().to_vec();
    header.extend_from_slice(&(1u64 << 60).to_be_bytes());
    rustix::io::write(fd, &header).unwrap();
    assert!(
        raw.recv_timeout::<Reply>(LONG).is_err(),
        "the server hangs up"
    );
    // 200 connections at once, most of them silent.
    let flood: Vec<_> = (0..200)
        .map(|_| {
            std::os::unix::net::UnixStream::connect_addr(
                &std::os::unix::net::SocketAddr::from_abstract_name(
                    manager.address().to_string().trim_start_matches('@'),
                )
                .unwrap(),
            )
            .unwrap()
        })
        .collect();
    let started = Instant::now();
    d.set(1, 1).unwrap();
    let other = manager.dict::<i32, i32>().unwrap();
    other.set(2, 2).unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "served despite the flood"
    );
    drop(flood);
    assert_eq!(d.get_item(&1).unwrap(), 1);
}

/// 2000 mixed operations on the shared dict and queue.
fn mixed((d, q, me): (DictProxy<String, u32>, QueueProxy<u32>, u32)) {
    for i in 0..1000u32 {
        d.set(format!("{me}-{i}"), i).unwrap();
        q.put(me * 1000 + i).unwrap();
    }
}

#[test]
fn sixteen_processes_times_two_thousand_mixed_operations_lose_nothing() {
    const PROCS: u32 = 16;
    let manager = Manager::new().unwrap();
    let d = manager.dict::<String, u32>().unwrap();
    let q = manager.queue::<u32>().unwrap();
    let children: Vec<_> = (0..PROCS)
        .map(|me| {
            start(
                mp_core::StartMethod::Fork,
                mixed,
                (d.clone(), q.clone(), me),
            )
        })
        .collect();
    let mut got = Vec::new();
    for _ in 0..PROCS * 1000 {
        got.push(q.get_timeout(LONG).unwrap());
    }
    for child in children {
        child.finish();
    }
    got.sort_unstable();
    assert_eq!(
        got,
        (0..PROCS * 1000).collect::<Vec<_>>(),
        "every item, once"
    );
    assert_eq!(d.len().unwrap(), (PROCS * 1000) as usize);
    for me in 0..PROCS {
        assert_eq!(d.get_item(&format!("{me}-999")).unwrap(), 999);
    }
}

/// Runs first in the server process: leaves a mark where the test says.
fn mark_started() {
    if let Some(path) = std::env::var_os("MP_MANAGER_TEST_MARK") {
        std::fs::write(path, b"started").unwrap();
    }
}

#[test]
fn a_manager_binds_the_address_and_key_it_is_given_and_runs_its_initializer() {
    let mark = std::env::temp_dir().join(format!("mp-manager-mark-{}", std::process::id()));
    std::env::set_var("MP_MANAGER_TEST_MARK", &mark);
    let manager = Manager::builder()
        .context(get_context(Some(mp_core::StartMethod::Spawn)))
        .address(mp_connection::Address::tcp(
            std::net::Ipv4Addr::LOCALHOST,
            0,
        ))
        .authkey(b"its own key".to_vec())
        .initializer(mark_started)
        .start()
        .unwrap();
    assert_eq!(std::fs::read(&mark).unwrap(), b"started");
    std::fs::remove_file(&mark).unwrap();
    let address = manager.address().to_string();
    assert!(address.starts_with("127.0.0.1:"), "{address}");
    let d = manager.dict::<i32, i32>().unwrap();
    d.set(1, 1).unwrap();
    let other = Manager::connect(manager.address().clone(), b"its own key").unwrap();
    assert_eq!(other.number_of_objects().unwrap(), 1);
    let err =
        Manager::connect(manager.address().clone(), &current_process().get_authkey()).unwrap_err();
    assert!(err.is_authentication(), "{err}");
}

/// Waits on the condition until the shared value says go, then reports it.
fn wait_for_go((c, v): (mp_manager::ConditionProxy, mp_manager::ValueProxy<u32>)) -> u32 {
    assert!(c.acquire().unwrap());
    let deadline = Instant::now() + LONG;
    while v.get().unwrap() == 0 {
        assert!(Instant::now() < deadline, "never notified");
        c.wait_timeout(LONG).unwrap();
    }
    let seen = v.get().unwrap();
    c.release().unwrap();
    seen
}

#[test]
fn a_condition_proxy_waits_and_notifies_across_processes() {
    let manager = Manager::new().unwrap();
    let c = manager.condition().unwrap();
    let v = manager.value(0u32).unwrap();
    // Needs the lock: Python's RuntimeError.
    assert!(c.notify(1).unwrap_err().is_value_error());
    assert!(c
        .wait_timeout(Duration::from_millis(10))
        .unwrap_err()
        .is_value_error());
    let children: Vec<_> = (0..3)
        .map(|_| {
            start(
                mp_core::StartMethod::Fork,
                wait_for_go,
                (c.clone(), v.clone()),
            )
        })
        .collect();
    std::thread::sleep(mp_testkit::SETTLE);
    assert!(c.acquire().unwrap());
    v.set(7).unwrap();
    c.notify_all().unwrap();
    c.release().unwrap();
    for child in children {
        assert_eq!(child.finish(), 7);
    }
    // A wait with nobody to notify times out, holding the lock again; recursion holds.
    assert!(c.acquire().unwrap());
    assert!(c.acquire().unwrap());
    assert!(!c.wait_timeout(Duration::from_millis(50)).unwrap());
    c.release().unwrap();
    c.release().unwrap();
    assert!(c.release().unwrap_err().is_value_error());
}

/// Appends through the list proxy found in the dict.
fn append_through_the_dict(d: DictProxy<String, ListProxy<i32>>) {
    let inner = d.get_item(&"inner".into()).unwrap();
    inner.append(2).unwrap();
}

#[test]
fn a_dict_holding_a_list_proxy_stays_consistent_across_processes() {
    for m in METHODS {
        let manager = Manager::new().unwrap();
        let d = manager.dict::<String, ListProxy<i32>>().unwrap();
        let inner = manager.list::<i32>().unwrap();
        d.set("inner".into(), inner.clone()).unwrap();
        drop(inner);
        // The list lives on (pinned by the dict) and every read reaches the same one.
        d.get_item(&"inner".into()).unwrap().append(1).unwrap();
        start(m, append_through_the_dict, d.clone()).finish();
        assert_eq!(
            d.get_item(&"inner".into()).unwrap().copy().unwrap(),
            [1, 2],
            "{m}"
        );
    }
    // A proxy of one server stored in another server's dict is refused when read.
    let (a, b) = (Manager::new().unwrap(), Manager::new().unwrap());
    let d = b.dict::<String, ListProxy<i32>>().unwrap();
    d.set("foreign".into(), a.list::<i32>().unwrap()).unwrap();
    assert!(d.get_item(&"foreign".into()).is_err());
}

#[derive(Default)]
struct Recorder {
    seen: Vec<i64>,
}

impl Recorder {
    fn record(&mut self, x: i64) -> usize {
        self.seen.push(x);
        self.seen.len()
    }
    fn history(&mut self) -> Vec<i64> {
        self.seen.clone()
    }
}

mp_manager::exposed! {
    impl Recorder as RecorderProxy {
        fn record(&mut self, x: i64) -> usize;
        fn history(&mut self) -> Vec<i64> as ListProxy<i64>;
    }
}

#[test]
fn a_method_listed_with_a_proxy_type_returns_a_new_object_on_the_server() {
    // Python's `method_to_typeid={'history': 'list'}`.
    let manager = Manager::builder().register::<Recorder>().start().unwrap();
    let r: RecorderProxy = manager.create().unwrap();
    assert_eq!(r.record(1).unwrap(), 1);
    assert_eq!(r.record(2).unwrap(), 2);
    let h: ListProxy<i64> = r.history().unwrap();
    assert_eq!(h.copy().unwrap(), [1, 2]);
    assert_eq!(manager.number_of_objects().unwrap(), 2);
    h.append(3).unwrap();
    assert_eq!(
        r.history().unwrap().copy().unwrap(),
        [1, 2],
        "a copy made at the call"
    );
    drop(h);
    eventually("the returned list is freed with its proxy", || {
        manager.number_of_objects().unwrap() == 1
    });
}

/// The spin before a proxy sleeps is brief: a call the server answers after 300 ms costs its
/// caller almost no CPU.
#[test]
fn a_proxy_waiting_for_a_slow_reply_sleeps_instead_of_spinning() {
    let manager = Manager::new().unwrap();
    let q = manager.queue::<i32>().unwrap();
    mp_testkit::assert_sleeps("a get that times out on the server", || {
        let err = q.get_timeout(Duration::from_millis(300)).unwrap_err();
        assert!(err.is_empty(), "{err}");
    });
}
