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
    assert!(parent.poll(Some(Duration::from_secs(30))).expect("poll"));
    let got: (i32, Option<i32>, String) = parent.recv().expect("recv");
    assert_eq!(got, (42, None, "hello".to_string()));
    assert_eq!(
        p.join_timeout(Duration::from_secs(30)).expect("join"),
        Some(0)
    );
}

#[test]
fn functions_about_processes_are_reexported() {
    assert_eq!(multiprocessing::current_process().name(), "MainProcess");
    assert!(multiprocessing::parent_process().is_none());
    assert!(multiprocessing::cpu_count() >= 1);
    let segment = multiprocessing::SharedSegment::new(64).expect("segment");
    assert_eq!(segment.len(), 64);
}

fn lock_and_put((lock, q): (multiprocessing::Lock, multiprocessing::Queue<String>)) {
    let _guard = lock.lock().expect("lock");
    q.put(multiprocessing::current_process().name())
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
