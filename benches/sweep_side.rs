//! The curves of `cargo xtask bench --sweep`: figures with a parameter in their name, run on
//! the Rust side and as the bare-OS limit (the CPython side is `bench/cpython_sweep.py`).
//!
//! | figure                 | what                                                          | limit |
//! | ---------------------- | ------------------------------------------------------------- | ----- |
//! | `sweep_pipe:SIZE`      | `send_bytes` of SIZE-byte messages to a child, MB/s           | raw writes of SIZE bytes over a socketpair |
//! | `sweep_queue:SIZE`     | `Queue::put` of SIZE-byte items to a child, MB/s              | the same raw socketpair |
//! | `sweep_queue_procs:P`  | P producer and P consumer processes on one `Queue<i64>`, msgs/s | P writers and P readers of 16-byte records on one pipe |

use std::time::Instant;

use multiprocessing::codec::Bytes;
use multiprocessing::{get_context, pipe, Barrier, Connection, Process, Queue, StartMethod};

// The points themselves (sizes 64 B to 64 MiB in ×4 steps, 1, 2, 4 and 8 processes) are
// chosen by `cargo xtask bench --sweep`.

/// How many messages of `size` bytes one repetition sends: enough bytes to measure (256 MiB
/// at most), enough messages for small sizes (at most 50 000), and at least 4.
pub fn messages_for(size: usize) -> usize {
    ((256usize << 20) / size).clamp(4, 50_000)
}

/// Total messages of one `sweep_queue_procs` repetition.
pub const PROCS_MESSAGES: usize = 40_000;

/// Splits `name` into a sweep kind and its parameter.
pub fn parse(name: &str) -> Option<(&str, usize)> {
    let (kind, param) = name.split_once(':')?;
    Some((kind, param.parse().ok()?))
}

/// One repetition of sweep figure `name` on the Rust side.
pub fn run(name: &str) -> Option<(&'static str, f64)> {
    match parse(name)? {
        ("sweep_pipe", size) => Some(("MB/s", pipe_sized(size, messages_for(size)))),
        ("sweep_queue", size) => Some(("MB/s", queue_sized(size, messages_for(size)))),
        ("sweep_queue_procs", procs) => Some(("msgs/s", queue_procs(procs, PROCS_MESSAGES))),
        _ => None,
    }
}

/// One repetition of the limit of sweep figure `name`.
pub fn limit(name: &str) -> Option<(&'static str, f64)> {
    match parse(name)? {
        ("sweep_pipe" | "sweep_queue", size) => Some((
            "MB/s",
            crate::limits::socket_sized(size, messages_for(size)),
        )),
        ("sweep_queue_procs", procs) => {
            Some(("msgs/s", crate::limits::pipe_records(procs, PROCS_MESSAGES)))
        }
        _ => None,
    }
}

/// Says ready, receives `count` byte messages, then acks once.
fn sink((mut conn, count): (Connection, usize)) {
    conn.send_bytes(b"ready").expect("send");
    for _ in 0..count {
        conn.recv_bytes().expect("recv");
    }
    conn.send_bytes(b"ack").expect("send");
}

/// MB/s (1e6 bytes) of `send_bytes` of `size`-byte messages to a child, until it acks.
fn pipe_sized(size: usize, messages: usize) -> f64 {
    let (mut parent, child) = pipe(true).expect("pipe");
    let mut p = get_context(Some(StartMethod::Fork)).process(sink, (child, messages));
    p.start().expect("start");
    let payload = vec![0x5au8; size];
    assert_eq!(parent.recv_bytes().expect("ready"), b"ready");
    let t0 = Instant::now();
    for _ in 0..messages {
        parent.send_bytes(&payload).expect("send");
    }
    assert_eq!(parent.recv_bytes().expect("ack"), b"ack");
    let elapsed = t0.elapsed().as_secs_f64();
    p.join().expect("join");
    (messages * size) as f64 / 1e6 / elapsed
}

fn consume((q, done, count): (Queue<Bytes>, Queue<bool>, usize)) {
    for _ in 0..count {
        q.get().expect("get");
    }
    done.put(true).expect("put");
}

/// MB/s of `size`-byte items through a `Queue` to a child, until it has them all.
fn queue_sized(size: usize, messages: usize) -> f64 {
    let q: Queue<Bytes> = Queue::new().expect("queue");
    let done: Queue<bool> = Queue::new().expect("queue");
    let mut p =
        get_context(Some(StartMethod::Fork)).process(consume, (q.clone(), done.clone(), messages));
    p.start().expect("start");
    let item = Bytes(vec![0x5au8; size]);
    let t0 = Instant::now();
    for _ in 0..messages {
        q.put(&item).expect("put");
    }
    done.get().expect("done");
    let elapsed = t0.elapsed().as_secs_f64();
    p.join().expect("join");
    (messages * size) as f64 / 1e6 / elapsed
}

fn procs_producer((q, start, count): (Queue<i64>, Barrier, usize)) {
    start.wait().expect("barrier");
    for i in 0..count {
        q.put(i as i64).expect("put");
    }
}

fn procs_consumer((q, start, count): (Queue<i64>, Barrier, usize)) {
    start.wait().expect("barrier");
    for _ in 0..count {
        q.get().expect("get");
    }
}

/// Messages per second of `procs` producers and `procs` consumers on one queue, timed from
/// the moment they all start until every consumer has its share.
fn queue_procs(procs: usize, total: usize) -> f64 {
    let q: Queue<i64> = Queue::new().expect("queue");
    let parties = u32::try_from(2 * procs + 1).expect("a few processes");
    let start = Barrier::new(parties, None).expect("barrier");
    let ctx = get_context(Some(StartMethod::Fork));
    let share = total / procs;
    let producers: Vec<Process<()>> = (0..procs)
        .map(|_| {
            let mut p = ctx.process(procs_producer, (q.clone(), start.clone(), share));
            p.start().expect("start");
            p
        })
        .collect();
    let consumers: Vec<Process<()>> = (0..procs)
        .map(|_| {
            let mut p = ctx.process(procs_consumer, (q.clone(), start.clone(), share));
            p.start().expect("start");
            p
        })
        .collect();
    // Start the clock once every child waits at the barrier, then release them all: taken
    // after the parent's own wait, the clock missed work done while the parent was not
    // scheduled yet (8 producers and 8 consumers on 2 cores).
    while start.n_waiting() < parties - 1 {
        std::thread::sleep(std::time::Duration::from_micros(200));
    }
    let t0 = Instant::now();
    start.wait().expect("barrier");
    for p in consumers {
        p.join().expect("join");
    }
    let elapsed = t0.elapsed().as_secs_f64();
    for p in producers {
        p.join().expect("join");
    }
    (share * procs) as f64 / elapsed
}
