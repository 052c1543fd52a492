//! `wait()` over connections, listeners, process sentinels and raw fds.

use std::net::Ipv4Addr;
use std::os::fd::{AsFd, OwnedFd};
use std::thread;
use std::time::{Duration, Instant};

use mp_connection::{wait, wait_deadline, wait_timeout, Address, Client, Listener, Waitable};
use mp_core::{pipe, Process};

const LIMIT: Duration = Duration::from_secs(10);

#[test]
fn an_empty_list_sleeps_for_the_timeout() {
    let t0 = Instant::now();
    assert!(wait_timeout(&[], Duration::from_millis(100))
        .unwrap()
        .is_empty());
    let waited = t0.elapsed();
    assert!(waited >= Duration::from_millis(100), "{waited:?}");
    assert!(waited < LIMIT);
}

#[test]
fn zero_timeout_returns_at_once() {
    let (a, _b) = pipe(true).unwrap();
    let t0 = Instant::now();
    assert!(wait_timeout(&[&a], Duration::ZERO).unwrap().is_empty());
    assert!(wait_timeout(&[], Duration::ZERO).unwrap().is_empty());
    // A deadline in the past is Python's negative timeout.
    let past = Instant::now() - Duration::from_secs(1);
    assert!(wait_deadline(&[&a], past).unwrap().is_empty());
    assert!(t0.elapsed() < Duration::from_secs(1));
}

#[test]
fn ready_connections_are_reported_in_order() {
    let (a, mut a_peer) = pipe(true).unwrap();
    let (b, _b_peer) = pipe(true).unwrap();
    let (c, mut c_peer) = pipe(true).unwrap();
    c_peer.send_bytes(b"c").unwrap();
    a_peer.send_bytes(b"a").unwrap();
    assert_eq!(wait_timeout(&[&a, &b, &c], LIMIT).unwrap(), vec![0, 2]);
}

#[test]
fn end_of_file_counts_as_ready() {
    let (a, a_peer) = pipe(true).unwrap();
    drop(a_peer);
    assert_eq!(wait_timeout(&[&a], LIMIT).unwrap(), vec![0]);
}

#[test]
fn none_waits_until_something_is_ready() {
    let (a, mut a_peer) = pipe(true).unwrap();
    let (b, _b_peer) = pipe(true).unwrap();
    let t = thread::spawn(move || {
        thread::sleep(Duration::from_millis(50));
        a_peer.send_bytes(b"late").unwrap();
        a_peer
    });
    let t0 = Instant::now();
    assert_eq!(wait(&[&b, &a]).unwrap(), vec![1]);
    assert!(t0.elapsed() >= Duration::from_millis(40));
    t.join().unwrap();
}

#[test]
fn a_listener_is_ready_when_a_client_waits() {
    let listener =
        Listener::bind(Some(Address::tcp(Ipv4Addr::LOCALHOST, 0)), Some(1), None).unwrap();
    assert!(wait_timeout(&[&listener], Duration::from_millis(20))
        .unwrap()
        .is_empty());
    let _client = Client::connect_timeout(listener.address(), None, LIMIT).unwrap();
    assert_eq!(wait_timeout(&[&listener], LIMIT).unwrap(), vec![0]);
    listener.accept_timeout(LIMIT).unwrap();
}

fn sleep_ms(ms: u64) {
    thread::sleep(Duration::from_millis(ms));
}

#[test]
fn a_process_is_ready_when_it_ends() {
    let mut quick = Process::new(sleep_ms, 50);
    let mut slow = Process::new(sleep_ms, 5_000);
    quick.start().unwrap();
    slow.start().unwrap();
    let (idle, _peer) = pipe(true).unwrap();
    let ready = wait_timeout(&[&slow, &idle, &quick], LIMIT).unwrap();
    assert_eq!(ready, vec![2]);
    assert_eq!(quick.join_timeout(LIMIT).unwrap(), Some(0));
    slow.kill().unwrap();
    assert_eq!(slow.join_timeout(LIMIT).unwrap(), Some(-9));
}

#[test]
fn raw_fds() {
    let (r, w): (OwnedFd, OwnedFd) =
        rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
    let borrowed = r.as_fd();
    assert!(wait_timeout(&[&borrowed, &r], Duration::ZERO)
        .unwrap()
        .is_empty());
    rustix::io::write(&w, b"x").unwrap();
    assert_eq!(wait_timeout(&[&borrowed, &r], LIMIT).unwrap(), vec![0, 1]);
}

#[test]
fn a_mix_of_everything_boxed() {
    let listener = Listener::bind(None, Some(1), None).unwrap();
    let (conn, mut peer) = pipe(true).unwrap();
    let objects: Vec<Box<dyn Waitable>> = vec![Box::new(listener), Box::new(conn)];
    let refs: Vec<&dyn Waitable> = objects.iter().map(|o| o as &dyn Waitable).collect();
    assert!(wait_timeout(&refs, Duration::ZERO).unwrap().is_empty());
    peer.send_bytes(b"x").unwrap();
    assert_eq!(wait_timeout(&refs, LIMIT).unwrap(), vec![1]);
}

#[test]
fn closed_objects_and_unstarted_processes_are_errors() {
    let (mut a, _b) = pipe(true).unwrap();
    a.close();
    assert!(wait_timeout(&[&a], Duration::ZERO).unwrap_err().is_closed());

    let mut listener = Listener::bind(None, Some(1), None).unwrap();
    listener.close();
    assert!(wait_timeout(&[&listener], Duration::ZERO)
        .unwrap_err()
        .is_closed());

    let p = Process::new(sleep_ms, 1);
    assert!(wait_timeout(&[&p], Duration::ZERO).is_err());
}
