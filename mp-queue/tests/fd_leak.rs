//! File descriptors and mappings: a queue passed to 50 children in a row, under every start
//! method, leaves the parent with the fds and shared mappings it had before.
//!
//! Not ported from CPython (whose `_TestQueue` has no leak check; `test_resource_tracker`-style
//! checks are the nearest). The counting runs in a spawned helper process, a fresh copy of this
//! test binary with no other test threads that could open or close fds meanwhile.

use std::collections::BTreeMap;

use mp_core::StartMethod;
use mp_queue::{JoinableQueue, Queue, SimpleQueue};
use mp_testkit::{open_fds, start, LONG, METHODS};

/// How many mappings of each shared-memory kind (`memfd:...`) this process has.
fn shared_mappings() -> BTreeMap<String, usize> {
    let maps = std::fs::read_to_string("/proc/self/maps").expect("read /proc/self/maps");
    let mut count = BTreeMap::new();
    for line in maps.lines() {
        if let Some(at) = line.find("/memfd:") {
            *count.entry(line[at..].to_string()).or_insert(0) += 1;
        }
    }
    count
}

/// What a child does with the queues it is given: takes one number and puts it back plus one.
fn bump((q, s, j): (Queue<u32>, SimpleQueue<u32>, JoinableQueue<u32>)) {
    let x = q.get_timeout(LONG).expect("get_timeout");
    q.put_timeout(x + 1, LONG).expect("put_timeout");
    s.put(x).expect("simple put");
    j.put_timeout(x, LONG).expect("joinable put");
}

/// Sends the queues through one child under `m` and checks the round trip.
fn round(m: StartMethod, q: &Queue<u32>, s: &SimpleQueue<u32>, j: &JoinableQueue<u32>, x: u32) {
    q.put(x).unwrap();
    let child = start(m, bump, (q.clone(), s.clone(), j.clone()));
    assert_eq!(child.join(), 0, "{m:?}");
    assert_eq!(q.get_timeout(LONG).unwrap(), x + 1);
    assert_eq!(s.get_timeout(LONG).unwrap(), x);
    assert_eq!(j.get_timeout(LONG).unwrap(), x);
    j.task_done().unwrap();
}

/// Runs in a spawned helper: warms up (the fork server, the queues' own fds), then sends the
/// queues to 50 children, cycling through the start methods. Returns the problems found.
fn fifty_children(_: ()) -> Vec<String> {
    let q: Queue<u32> = Queue::new().unwrap();
    let s: SimpleQueue<u32> = SimpleQueue::new().unwrap();
    let j: JoinableQueue<u32> = JoinableQueue::new().unwrap();
    for m in METHODS {
        round(m, &q, &s, &j, 0);
    }
    let (fds_before, maps_before) = (open_fds(), shared_mappings());
    for i in 0..50 {
        round(METHODS[i as usize % 3], &q, &s, &j, i);
    }
    let (fds_after, maps_after) = (open_fds(), shared_mappings());
    let mut problems = Vec::new();
    if fds_after != fds_before {
        problems.push(format!(
            "fds changed:\nbefore: {fds_before:?}\nafter:  {fds_after:?}"
        ));
    }
    if maps_after != maps_before {
        problems.push(format!(
            "shared mappings changed:\nbefore: {maps_before:?}\nafter:  {maps_after:?}"
        ));
    }
    assert!(j.join_timeout(LONG).unwrap());
    problems
}

#[test]
fn a_queue_sent_to_50_children_leaves_no_fds_or_mappings_behind() {
    let helper = start(StartMethod::Spawn, fifty_children, ());
    let problems = helper.finish();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
