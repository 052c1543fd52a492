//! The timeout contract on a `Connection`: `x()`, `x_timeout`, `x_deadline` and `try_x` of
//! `poll`, `recv`, `recv_bytes`, `send`, `send_bytes`, with peers in other processes. A deadline
//! bounds the whole message, however slowly a peer trickles it.

use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use mp_core::{pipe, Connection, Deadline, Error};
use mp_testkit::{start, LONG, METHODS, SETTLE};

/// Sends `message` after `delay`.
fn send_later((mut conn, delay, message): (Connection, Duration, Vec<u8>)) {
    std::thread::sleep(delay);
    conn.send_bytes(&message).unwrap();
    // Keep the end open until the parent is done reading.
    let _ = conn.recv_bytes();
}

/// Writes a frame header announcing `len` bytes, then one byte every `gap`, `count` times.
fn trickle((conn, len, gap, count): (Connection, u32, Duration, u32)) {
    let fd: OwnedFd = conn.into_owned_fd().unwrap();
    rustix::io::write(fd.as_fd(), &len.to_be_bytes()).unwrap();
    for _ in 0..count {
        std::thread::sleep(gap);
        if rustix::io::write(fd.as_fd(), b"x").is_err() {
            return;
        }
    }
}

#[test]
fn poll_forms_follow_the_contract() {
    for m in METHODS {
        let (mut ours, theirs) = pipe(true).unwrap();
        let child = start(
            m,
            send_later,
            (theirs, Duration::from_millis(300), b"hi".to_vec()),
        );
        assert!(!ours.try_poll().unwrap(), "{m}: try_poll only looks");
        assert!(
            !ours.poll_timeout(Duration::from_millis(50)).unwrap(),
            "{m}"
        );
        assert!(ours.poll_deadline(Instant::now() + LONG).unwrap(), "{m}");
        assert!(
            ours.poll().unwrap(),
            "{m}: poll() waits forever, and a message is there"
        );
        assert_eq!(ours.recv_bytes_timeout(LONG).unwrap(), b"hi");
        ours.send_bytes(b"bye").unwrap();
        child.finish();
    }
}

#[test]
fn recv_timeout_before_the_first_byte_is_a_timeout_and_leaves_the_end_usable() {
    for m in METHODS {
        let (mut ours, theirs) = pipe(true).unwrap();
        let child = start(
            m,
            send_later,
            (theirs, Duration::from_millis(600), b"late".to_vec()),
        );
        let t0 = Instant::now();
        let err = ours
            .recv_bytes_timeout(Duration::from_millis(100))
            .unwrap_err();
        assert!(err.is_timeout(), "{m}: {err}");
        assert!(t0.elapsed() < LONG);
        // Nothing of the message was consumed: the end is still in step.
        assert_eq!(
            ours.recv_bytes_deadline(Instant::now() + LONG).unwrap(),
            b"late",
            "{m}"
        );
        ours.send_bytes(b"bye").unwrap();
        child.finish();
    }
}

#[test]
fn recv_deadline_bounds_a_trickling_message_as_a_whole() {
    for m in METHODS {
        let (mut ours, theirs) = pipe(true).unwrap();
        // 100 bytes announced, one every 50 ms: each read makes progress, the whole never ends
        // within the deadline.
        let child = start(m, trickle, (theirs, 100, Duration::from_millis(50), 100));
        // A per-read timeout alone would never fire here (every gap is shorter than it).
        ours.set_timeout(Some(Duration::from_secs(5)));
        let t0 = Instant::now();
        let err = ours
            .recv_bytes_timeout(Duration::from_millis(400))
            .unwrap_err();
        let took = t0.elapsed();
        assert!(err.is_timeout(), "{m}: {err}");
        assert!(
            took < Duration::from_secs(3),
            "{m}: the deadline held for {took:?}"
        );
        // Cut mid-message: the end is out of step, and says so.
        assert!(ours.recv_bytes().is_err(), "{m}");
        drop(ours);
        child.join();
    }
}

#[test]
fn recv_value_with_a_deadline_decodes_what_arrives_in_time() {
    for m in METHODS {
        let (mut ours, theirs) = pipe(true).unwrap();
        let bytes = mp_core::codec::encode(&(7u32, "seven".to_string())).unwrap();
        let child = start(m, send_later, (theirs, Duration::from_millis(50), bytes));
        let got: (u32, String) = ours.recv_timeout(LONG).unwrap();
        assert_eq!(got, (7, "seven".to_string()), "{m}");
        ours.send_bytes(b"bye").unwrap();
        child.finish();
    }
}

#[test]
fn send_timeout_on_a_full_socket_is_a_timeout() {
    let (mut ours, _theirs) = pipe(true).unwrap();
    // Nobody reads: a big message fills the socket buffers and the deadline ends the send.
    let big = vec![0u8; 64 << 20];
    let t0 = Instant::now();
    let err = ours.send_bytes_timeout(&big, SETTLE).unwrap_err();
    assert!(matches!(err, Error::Timeout), "{err}");
    assert!(t0.elapsed() < LONG);
    // Part of the frame went out: the end is no longer writable.
    assert!(ours.send_bytes(b"x").is_err());
    let (mut ours, _theirs) = pipe(true).unwrap();
    ours.send_timeout(&1u8, SETTLE).unwrap();
    ours.send_deadline(&2u8, Deadline::after(SETTLE)).unwrap();
}

#[test]
fn recv_bytes_into_and_max_have_their_timed_forms() {
    for m in METHODS {
        let (mut ours, theirs) = pipe(true).unwrap();
        let child = start(
            m,
            send_later,
            (theirs, Duration::from_millis(300), b"12345".to_vec()),
        );
        let mut buf = [0u8; 16];
        let err = ours
            .recv_bytes_into_timeout(&mut buf, Duration::from_millis(50))
            .unwrap_err();
        assert!(err.is_timeout(), "{m}: {err}");
        assert!(ours
            .recv_bytes_max_timeout(16, Duration::from_millis(50))
            .unwrap_err()
            .is_timeout());
        let n = ours
            .recv_bytes_into_deadline(&mut buf, Instant::now() + LONG)
            .unwrap();
        assert_eq!(&buf[..n], b"12345", "{m}");
        ours.send_bytes(b"bye").unwrap();
        child.finish();

        let (mut ours, theirs) = pipe(true).unwrap();
        let child = start(m, send_later, (theirs, Duration::ZERO, b"abc".to_vec()));
        assert_eq!(
            ours.recv_bytes_max_deadline(16, Deadline::after(LONG))
                .unwrap(),
            b"abc"
        );
        ours.send_bytes(b"bye").unwrap();
        child.finish();
    }
}
