//! Integration tests for the resource tracker: a tracked segment whose creator is killed with
//! SIGKILL disappears from `/dev/shm` once nobody uses it, but never while another process
//! still does (CPython's gh-82300), under every start method; untracked segments stay; a
//! stale watch never unlinks a new segment that reuses the name.
//!
//! New: CPython's `_TestSharedMemory.test_shared_memory_cleaned_after_process_termination`
//! checks the first case (a killed child's segment is unlinked by the tracker) but has the
//! gh-82300 bug the second case checks for.

use std::time::Duration;

use mp_core::{pipe, Connection, StartMethod};
use mp_shared::SharedMemory;
use mp_testkit::{
    in_dev_shm, our_entries, recv, start, unique_name, vanishes, Child, CLEANUP, LONG, METHODS,
};

/// Creates segment `name` (tracked or not), writes to it, says so, then waits to be killed.
fn create_and_wait((mut conn, name, track): (Connection, String, bool)) {
    let shm = SharedMemory::options()
        .track(track)
        .create(Some(&name), 4096)
        .unwrap();
    shm.write_at(0, b"precious").unwrap();
    conn.send(&true).unwrap();
    // Blocks until the parent kills us (or goes away).
    let _ = conn.recv::<bool>();
}

/// A creator child and our end of its connection (kept open so that it waits).
struct Creator(Child, Connection);

/// Starts a creator of `name` under `m` and waits until the segment exists.
fn creator(name: &str, track: bool, m: StartMethod) -> Creator {
    let (mut ours, theirs) = pipe(true).unwrap();
    let p = start(m, create_and_wait, (theirs, name.to_string(), track));
    assert!(recv::<bool>(&mut ours), "{m}");
    Creator(p, ours)
}

/// SIGKILLs the creator and reaps it.
fn kill(Creator(p, _conn): Creator, m: StartMethod) {
    p.kill();
    assert_eq!(p.join_timeout(LONG).unwrap(), Some(-9), "{m}");
}

#[test]
fn sigkilled_creator_leaves_no_segment_behind() {
    for m in METHODS {
        let name = unique_name("killed");
        let before = our_entries();
        assert!(!before.contains(&name), "{m}");
        let p = creator(&name, true, m);
        assert!(in_dev_shm(&name), "{m}: the creator did not create {name}");
        kill(p, m);
        assert!(
            vanishes(&name, CLEANUP),
            "{m}: {name} is still in /dev/shm {CLEANUP:?} after its creator was killed"
        );
        assert!(!our_entries().contains(&name), "{m}");
    }
}

/// Attaches to `name`, says so, waits for the word, then returns what the segment holds.
fn attach_and_hold((mut conn, name): (Connection, String)) -> Vec<u8> {
    let shm = SharedMemory::attach(&name).unwrap();
    conn.send(&true).unwrap();
    let _ = conn.recv::<bool>();
    let mut out = vec![0u8; 8];
    shm.read_at(0, &mut out).unwrap();
    out
}

#[test]
fn segment_still_used_by_another_process_is_not_unlinked() {
    for m in METHODS {
        let name = unique_name("in_use");
        let p = creator(&name, true, m);
        let (mut ours, theirs) = pipe(true).unwrap();
        let user = start(m, attach_and_hold, (theirs, name.clone()));
        assert!(recv::<bool>(&mut ours), "{m}");

        kill(p, m);
        // The creator is gone, but `user` still has the segment: it must stay.
        std::thread::sleep(Duration::from_millis(300));
        assert!(
            in_dev_shm(&name),
            "{m}: {name} was unlinked under a live user"
        );
        // Another process can still attach to it, too.
        let late = SharedMemory::attach(&name).unwrap();

        ours.send(&true).unwrap();
        assert_eq!(user.finish(), b"precious", "{m}");
        std::thread::sleep(Duration::from_millis(100));
        assert!(
            in_dev_shm(&name),
            "{m}: {name} was unlinked while we hold it"
        );

        drop(late);
        assert!(
            vanishes(&name, CLEANUP),
            "{m}: {name} is still in /dev/shm after its last user left"
        );
    }
}

/// Creates a tracked segment and returns normally, without unlinking it.
fn create_and_leave(name: String) {
    let shm = SharedMemory::create(Some(&name), 100).unwrap();
    shm.write_at(0, b"bye").unwrap();
}

#[test]
fn creator_that_exits_without_unlink_is_cleaned_up() {
    for m in METHODS {
        let name = unique_name("left");
        let p = start(m, create_and_leave, name.clone());
        p.finish();
        assert!(
            vanishes(&name, CLEANUP),
            "{m}: {name} is still in /dev/shm after its creator exited"
        );
    }
}

#[test]
fn untracked_segment_of_a_killed_creator_stays() {
    for m in METHODS {
        let name = unique_name("untracked_killed");
        let p = creator(&name, false, m);
        kill(p, m);
        std::thread::sleep(Duration::from_millis(300));
        assert!(in_dev_shm(&name), "{m}: an untracked segment was unlinked");
        let shm = SharedMemory::attach(&name).unwrap();
        let mut out = [0u8; 8];
        shm.read_at(0, &mut out).unwrap();
        assert_eq!(&out, b"precious", "{m}");
        shm.unlink().unwrap();
        assert!(!in_dev_shm(&name));
    }
}

#[test]
fn a_stale_watch_never_unlinks_a_new_segment_with_the_same_name() {
    let name = unique_name("reused");
    let first = SharedMemory::create(Some(&name), 16).unwrap();
    first.unlink().unwrap();
    // Same name, new segment, not tracked: only the watch of `first` could unlink it.
    let second = SharedMemory::options()
        .track(false)
        .create(Some(&name), 16)
        .unwrap();
    drop(first);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        in_dev_shm(&name),
        "the tracker unlinked a segment it does not track"
    );
    second.unlink().unwrap();
}

#[test]
fn tracked_segment_dropped_in_this_process_is_unlinked() {
    let shm = SharedMemory::create(None, 16).unwrap();
    let name = shm.name().to_string();
    drop(shm);
    assert!(vanishes(&name, CLEANUP), "{name} is still in /dev/shm");
}
