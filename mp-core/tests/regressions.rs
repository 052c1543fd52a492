//! Regression tests, each named after what broke (issue 10's process and connection items).

use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use mp_core::{get_context, get_start_method, pipe, Connection, Process, StartMethod};
use mp_testkit::{join_result, start, LONG, METHODS};

/// The method this child reports as its own.
fn report_start_method(_: ()) -> String {
    get_start_method().to_string()
}

#[test]
fn a_context_child_reports_its_own_start_method_not_the_parents_default() {
    for m in METHODS {
        let mut p = get_context(Some(m)).process(report_start_method, ());
        p.start().unwrap();
        assert_eq!(
            join_result(&p).unwrap(),
            m.to_string(),
            "a child started by {m}"
        );
    }
}

/// Starts a fork-context grandchild (this child's default is the method that started it) and
/// returns what the grandchild reports.
fn fork_a_grandchild(_: ()) -> String {
    let mut p = get_context(Some(StartMethod::Fork)).process(report_start_method, ());
    p.start().unwrap();
    join_result(&p).unwrap()
}

#[test]
fn a_fork_context_child_of_a_spawned_process_reports_fork() {
    for m in [StartMethod::Spawn, StartMethod::Forkserver] {
        let mut p = get_context(Some(m)).process(fork_a_grandchild, ());
        p.start().unwrap();
        assert_eq!(join_result(&p).unwrap(), "fork", "in a {m} child");
    }
}

fn noop(_: ()) {}

/// Whether a `Process` made in this process is daemonic by default.
fn new_process_is_daemonic(_: ()) -> bool {
    Process::new(noop, ()).is_daemon()
}

#[test]
fn a_process_made_in_a_daemonic_child_is_daemonic_by_default() {
    for m in METHODS {
        let mut p = get_context(Some(m))
            .process(new_process_is_daemonic, ())
            .daemon(true);
        p.start().unwrap();
        assert!(
            join_result(&p).unwrap(),
            "{m}: daemon is inherited, as in Python"
        );
        let mut q = get_context(Some(m)).process(new_process_is_daemonic, ());
        q.start().unwrap();
        assert!(
            !join_result(&q).unwrap(),
            "{m}: a non-daemonic parent's default is false"
        );
    }
    assert!(!Process::new(noop, ()).is_daemon());
}

/// Writes a header announcing 100 bytes, then 3 bytes, then closes.
fn truncate(conn: Connection) {
    let fd: OwnedFd = conn.into_owned_fd().unwrap();
    rustix::io::write(fd.as_fd(), &100u32.to_be_bytes()).unwrap();
    rustix::io::write(fd.as_fd(), b"abc").unwrap();
}

#[test]
fn reading_after_a_truncated_message_says_the_connection_lost_sync_not_write_only() {
    for m in METHODS {
        let (mut ours, theirs) = pipe(true).unwrap();
        let child = start(m, truncate, theirs);
        child.join();
        let first = ours.recv_bytes_timeout(LONG).unwrap_err();
        assert!(
            first.to_string().contains("middle of a message"),
            "{m}: {first}"
        );
        let again = ours.recv_bytes_timeout(Duration::from_secs(1)).unwrap_err();
        let text = again.to_string();
        assert!(text.contains("lost message sync"), "{m}: {text}");
        assert!(!text.contains("write-only"), "{m}: {text}");
        // A real one-way end still says what it is.
        let (_r, mut w) = pipe(false).unwrap();
        let text = w.recv_bytes().unwrap_err().to_string();
        assert!(text.contains("write-only"), "{text}");
    }
}
