//! `WireBuf`, the buffers a fork leaves alone: a forked child sees one zero-filled (and the
//! parent keeps its bytes), and the parent writes a recycled one after a fork without a single
//! copy-on-write fault, where a heap buffer of the same size faults on every page.
//!
//! Fork only: a spawned or forkserver child shares no memory with its parent at all.

use std::sync::Mutex;

use mp_core::wirebuf::WireBuf;
use mp_core::{get_context, pipe, StartMethod};

use mp_testkit::bodies::wait_for_go;
use mp_testkit::{join, join_result};

const LEN: usize = 1 << 20;

/// The buffer a forked child looks at (a child started by fork sees the parent's statics).
static SEEN: Mutex<Option<WireBuf>> = Mutex::new(None);
/// A heap buffer beside it, for comparison.
static HEAP: Mutex<Vec<u8>> = Mutex::new(Vec::new());

/// What a forked child finds: the buffer's length, whether its bytes are all zero, and
/// whether the heap buffer still holds the parent's bytes. It then writes its own copy.
fn look(_: ()) -> (usize, bool, bool) {
    let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    let Some(buf) = seen.as_mut() else {
        return (0, false, false);
    };
    let found = (
        buf.len(),
        buf.iter().all(|&b| b == 0),
        HEAP.lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .all(|&b| b == 0xab),
    );
    buf.clear();
    let _ = buf.extend_from_slice(&[0x11; 4096]);
    found
}

#[test]
fn a_forked_child_sees_a_wire_buffer_zeroed_and_the_parent_keeps_its_bytes() {
    let mut buf = WireBuf::with_capacity(LEN).unwrap();
    buf.extend_from_slice(&vec![0xab; LEN]).unwrap();
    *SEEN.lock().unwrap() = Some(buf);
    *HEAP.lock().unwrap() = vec![0xab; LEN];

    let mut p = get_context(Some(StartMethod::Fork)).process(look, ());
    p.start().unwrap();
    // The child has the buffer (its length came with the rest of its memory), but none of the
    // parent's bytes in it; the heap it copied as usual.
    assert_eq!(join_result(&p).unwrap(), (LEN, true, true));
    // The child's writes stayed in the child.
    let seen = SEEN.lock().unwrap();
    let buf = seen.as_ref().unwrap();
    assert_eq!(buf.len(), LEN);
    assert!(buf.iter().all(|&b| b == 0xab));
}

/// This thread's minor page faults so far (`/proc/thread-self/stat`, field 10).
fn minor_faults() -> u64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
    // The fields after the command name (in parentheses, which may hold spaces) start at the
    // third; `minflt` is the tenth.
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    after.split_whitespace().nth(7).unwrap().parse().unwrap()
}

#[test]
fn after_a_fork_a_recycled_wire_buffer_is_written_without_page_faults() {
    // Both buffers mapped and written before the fork; the wire buffer goes back to the cache
    // and comes out of it again.
    let mut heap = vec![1u8; LEN];
    let mut buf = WireBuf::with_capacity(LEN).unwrap();
    buf.extend_from_slice(&heap).unwrap();
    let capacity = buf.capacity();
    drop(buf);

    // A forked child alive while the parent writes, so that the heap is shared with it.
    let (mut parent_end, child_end) = pipe(true).unwrap();
    let mut p = get_context(Some(StartMethod::Fork)).process(wait_for_go, child_end);
    p.start().unwrap();

    let before = minor_faults();
    let mut buf = WireBuf::with_capacity(capacity).unwrap();
    buf.spare_mut().fill(2);
    let wire_faults = minor_faults() - before;

    let before = minor_faults();
    heap.fill(2);
    let heap_faults = minor_faults() - before;

    parent_end.send(&1u8).unwrap();
    assert_eq!(join(&p), 0);

    let pages = (LEN / rustix::param::page_size()) as u64;
    // The measure can tell: the heap buffer faulted on (nearly) every page.
    assert!(
        heap_faults >= pages / 2,
        "{heap_faults} faults writing {pages} pages of heap after a fork"
    );
    // The wire buffer did not: a few faults at most, for this thread's stack.
    assert!(
        wire_faults < 8,
        "{wire_faults} faults writing {pages} pages of a recycled wire buffer after a fork"
    );
    assert!(buf.spare_mut().iter().all(|&b| b == 2));
}
