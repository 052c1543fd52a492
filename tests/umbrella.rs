//! Smoke tests of the umbrella crate: each re-exported layer is reachable through
//! `multiprocessing::` and works across a real child process.

use std::time::Duration;

use multiprocessing::{get_context, pipe, Connection, Process, StartMethod};

fn double(x: i32) -> i32 {
    x * 2
}

fn send_back(mut conn: Connection) {
    conn.send(&(42, None::<i32>, "hello".to_string()))
        .expect("send");
}

#[test]
fn process_reexport_runs_a_child_under_every_start_method() {
    for method in multiprocessing::get_all_start_methods() {
        let mut p: Process<i32> = get_context(Some(method)).process(double, 21);
        p.start().expect("start");
        assert_eq!(
            p.join_timeout(Duration::from_secs(30)).expect("join"),
            Some(0),
            "{method}"
        );
        assert_eq!(p.join_result().expect("result"), 42, "{method}");
    }
}

#[test]
fn pipe_reexport_carries_the_seed_example() {
    let (mut parent, child) = pipe(true).expect("pipe");
    let mut p = Process::new(send_back, child).start_method(StartMethod::Fork);
    p.start().expect("start");
    assert!(parent.poll_timeout(Duration::from_secs(30)).expect("poll"));
    let got: (i32, Option<i32>, String) = parent.recv().expect("recv");
    assert_eq!(got, (42, None, "hello".to_string()));
    assert_eq!(
        p.join_timeout(Duration::from_secs(30)).expect("join"),
        Some(0)
    );
}

#[test]
fn functions_about_processes_are_reexported() {
    assert_eq!(multiprocessing::current_process().get_name(), "MainProcess");
    assert!(multiprocessing::parent_process().is_none());
    assert!(multiprocessing::cpu_count() >= 1);
    let segment = multiprocessing::SharedSegment::new(64).expect("segment");
    assert_eq!(segment.len(), 64);
}

fn lock_and_put((lock, q): (multiprocessing::Lock, multiprocessing::Queue<String>)) {
    let _guard = lock.lock().expect("lock");
    q.put(multiprocessing::current_process().get_name())
        .expect("put");
}

#[test]
fn synchronize_and_queues_are_reexported_and_work_across_processes() {
    let lock = multiprocessing::Lock::new().expect("lock");
    let q = multiprocessing::Queue::new().expect("queue");
    for method in multiprocessing::get_all_start_methods() {
        let mut p = get_context(Some(method)).process(lock_and_put, (lock.clone(), q.clone()));
        p.start().expect("start");
        let name = q.get_timeout(Duration::from_secs(30)).expect("get");
        assert_eq!(name, p.get_name(), "{method}");
        assert_eq!(
            p.join_timeout(Duration::from_secs(30)).expect("join"),
            Some(0)
        );
    }
    assert!(lock.try_acquire().expect("not poisoned"));
    lock.release().expect("release");
}

#[test]
fn one_error_type_carries_every_layer() {
    fn empty_get() -> multiprocessing::Result<i32> {
        let q: multiprocessing::Queue<i32> = multiprocessing::Queue::new()?;
        Ok(q.get_nowait()?)
    }
    assert!(empty_get().expect_err("empty").is_empty());
    fn unlocked_release() -> multiprocessing::Result<()> {
        multiprocessing::Lock::new()?.release()?;
        Ok(())
    }
    assert!(matches!(
        unlocked_release(),
        Err(multiprocessing::Error::Sync(
            multiprocessing::synchronize::Error::NotLocked
        ))
    ));
}

// ----- one test per `Error::is_*` helper, each error made for real -----

use multiprocessing::connection::{Address, Client, Listener};
use multiprocessing::Error as MpError;

#[test]
fn is_eof_covers_a_closed_pipe() {
    let (mut a, b) = pipe(true).expect("pipe");
    drop(b);
    let e: MpError = a.recv_bytes().expect_err("eof").into();
    assert!(e.is_eof(), "{e}");
    assert!(!e.is_timeout());
}

#[test]
fn is_timeout_covers_connections_and_listeners() {
    let (mut a, _b) = pipe(true).expect("pipe");
    let e: MpError = a
        .recv_bytes_timeout(Duration::from_millis(20))
        .expect_err("timeout")
        .into();
    assert!(e.is_timeout(), "a connection's recv timeout: {e}");
    let address: Address = "127.0.0.1:0".parse().expect("addr");
    let listener = Listener::bind(Some(address), Some(1), None).expect("bind");
    let e: MpError = listener
        .accept_timeout(Duration::from_millis(20))
        .expect_err("timeout")
        .into();
    assert!(e.is_timeout(), "a listener's accept timeout: {e}");
    assert!(!e.is_eof());
}

#[test]
fn is_authentication_covers_a_wrong_key() {
    let address: Address = "127.0.0.1:0".parse().expect("addr");
    let listener = Listener::bind(Some(address), Some(1), Some(b"right")).expect("bind");
    let address = listener.address().clone();
    let server =
        std::thread::spawn(move || listener.accept_timeout(Duration::from_secs(30)).map(|_| ()));
    let e: MpError = Client::connect_timeout(&address, Some(b"wrong"), Duration::from_secs(30))
        .expect_err("wrong key")
        .into();
    assert!(e.is_authentication(), "{e}");
    assert!(server.join().expect("server").is_err());
}

#[test]
fn is_empty_is_full_and_is_closed_cover_queues() {
    let q: multiprocessing::Queue<i32> = multiprocessing::Queue::with_maxsize(1).expect("queue");
    let e: MpError = q.get_nowait().expect_err("empty").into();
    assert!(e.is_empty() && !e.is_full(), "{e}");
    q.put(1).expect("put");
    let e: MpError = q.put_nowait(2).expect_err("full").into();
    assert!(e.is_full() && !e.is_empty(), "{e}");
    q.close();
    let e: MpError = q.get_nowait().expect_err("closed").into();
    assert!(e.is_closed(), "{e}");
}

#[test]
fn is_closed_covers_a_closed_connection() {
    let (mut a, _b) = pipe(true).expect("pipe");
    a.close();
    let e: MpError = a.send_bytes(b"x").expect_err("closed").into();
    assert!(e.is_closed(), "{e}");
}

#[test]
fn is_owner_died_covers_locks_and_values() {
    let e: MpError = multiprocessing::OwnerDied::new(()).into();
    assert!(e.is_owner_died(), "{e}");
    let e: MpError = multiprocessing::sharedctypes::Error::OwnerDied.into();
    assert!(e.is_owner_died(), "{e}");
    let e: MpError = multiprocessing::synchronize::Error::NotLocked.into();
    assert!(!e.is_owner_died());
}

#[test]
fn is_broken_barrier_covers_an_aborted_barrier() {
    let b = multiprocessing::Barrier::new(2, None).expect("barrier");
    b.abort();
    let e: MpError = b
        .wait_timeout(Duration::from_secs(5))
        .expect_err("broken")
        .into();
    assert!(e.is_broken_barrier(), "{e}");
}

#[test]
fn the_deadline_type_and_the_raw_lock_trait_are_reexported() {
    fn take<L: multiprocessing::RawLock>(l: &L) -> bool {
        l.acquire_until(multiprocessing::Deadline::after(Duration::from_secs(5)))
            .expect("acquire")
    }
    let lock = multiprocessing::AnyLock::new_rlock().expect("rlock");
    assert!(take(&lock));
    lock.release().expect("release");
}

fn negate_all(a: multiprocessing::Array<i32>) {
    for i in 0..a.len() {
        a.set(i, -a.get(i).expect("get")).expect("set");
    }
}

#[test]
fn sharedctypes_are_reexported_and_work_across_processes() {
    for m in [
        StartMethod::Fork,
        StartMethod::Spawn,
        StartMethod::Forkserver,
    ] {
        let a = multiprocessing::Array::from_slice(&[1i32, 2, 3]).expect("array");
        let mut p = get_context(Some(m)).process(negate_all, a.clone());
        p.start().expect("start");
        assert_eq!(
            p.join_timeout(Duration::from_secs(60)).expect("join"),
            Some(0)
        );
        assert_eq!(a.to_vec().expect("to_vec"), vec![-1, -2, -3], "{m}");
    }
}

fn echo_once(address: String) {
    let address: Address = address.parse().expect("address");
    let mut c =
        Client::connect_timeout(&address, Some(b"key"), Duration::from_secs(30)).expect("connect");
    let got = c.recv_bytes_timeout(Duration::from_secs(30)).expect("recv");
    c.send_bytes(&got).expect("send");
}

#[test]
fn connection_is_reexported_and_serves_a_child() {
    let address: Address = "127.0.0.1:0".parse().expect("addr");
    let listener = Listener::bind(Some(address), Some(1), Some(b"key")).expect("bind");
    let mut p = Process::new(echo_once, listener.address().to_string());
    p.start().expect("start");
    let mut conn = listener
        .accept_timeout(Duration::from_secs(30))
        .expect("accept");
    conn.send_bytes(b"ping").expect("send");
    assert_eq!(
        conn.recv_bytes_timeout(Duration::from_secs(30))
            .expect("recv"),
        b"ping"
    );
    assert_eq!(
        p.join_timeout(Duration::from_secs(60)).expect("join"),
        Some(0)
    );
}

fn square(x: u64) -> u64 {
    x * x
}

#[test]
fn pool_reexport_runs_the_seed_example() {
    let pool = multiprocessing::Pool::new(2).expect("pool");
    let r: multiprocessing::AsyncResult<u64> = pool.apply_async(square, 10).expect("apply_async");
    assert_eq!(r.get_timeout(Duration::from_secs(30)).expect("get"), 100);
    assert_eq!(
        pool.map(square, 0..10).expect("map"),
        [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]
    );
    pool.close();
    assert!(pool.join_timeout(Duration::from_secs(30)).expect("join"));
    let e: multiprocessing::Error = pool.apply_async(square, 1).unwrap_err().into();
    assert!(matches!(e, multiprocessing::Error::Pool(ref p) if p.is_not_running()));
}

fn append_seven(l: multiprocessing::managers::ListProxy<i32>) {
    l.append(7).unwrap();
}

#[test]
fn managers_are_reexported_and_serve_a_child() {
    let manager = multiprocessing::Manager::new().unwrap();
    let l = manager.list::<i32>().unwrap();
    let mut p = multiprocessing::Process::new(append_seven, l.clone());
    p.start().unwrap();
    assert_eq!(
        p.join_timeout(std::time::Duration::from_secs(60)).unwrap(),
        Some(0)
    );
    assert_eq!(l.copy().unwrap(), [7]);
    let err: multiprocessing::Error = l.get(5).unwrap_err().into();
    assert!(err.is_remote());
}
