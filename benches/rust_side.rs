//! The Rust side of each figure: the same workloads as `bench/cpython_bench.py`, run with this
//! library. Where ours takes a few milliseconds, a repetition does more of the same work than
//! CPython's (the figure is a rate or a time per operation, whatever the count):
//! `queue_latency` makes 200 000 round trips instead of 20 000, and `queue_1to1`, `queue_2to1`
//! and `simplequeue_1to1` carry 2 000 000 items instead of 200 000, so that one scheduling
//! hiccup does not decide a repetition of 11-33 ms. `pipe_1mib` (and its limit) sends 1 000
//! messages of 1 MiB instead of 200: on the AMD EPYC VM of Dec 4, with 200 (40 ms at 5 000
//! MB/s) the median ratio of 12 alternated pairs of ours and the limit came out anywhere from
//! 0.83 to 1.03 from one series to the next (pairs 0.44-2.82); with 1 000, 1.01 and 0.96
//! (pairs 0.70-1.76), and 8 of 10 pairs of a third series within 0.89-1.01. Its payload is
//! written memory, as the limit's (`vec![0x5a; ..]`): a `vec![0; ..]` is the kernel's zero
//! page, which every 4 KiB of a write would read from the same cache lines (`queue_1mib`'s
//! items too). `queue_1mib` stays at 200 items of 1 MiB: with 1 000 (13 600 MB/s against
//! 7 000, the start of the consumer no longer in the way), the socketpair writes of its limit,
//! measured next, ran at 680-14 100 MB/s instead of 12 600-14 200 in the same runs; with 1 000
//! writes of their own, at 3 100 MB/s against `pipe_1mib`'s 12 500.
//!
//! `queue_2to1` (its two producers on the second CPU, the consumer on the first),
//! `queue_1mib` and `pipe_1mib` (the reader on the second CPU) place their processes with
//! `start_apart` on every side, as the ping-pong figures do (`queue_1mib`'s limit stays
//! unpinned: see `limits::socket_sized`). Left to the scheduler, each repetition of ours fell
//! into one of two modes as the processes shared a CPU or not: `queue_2to1` 9-11 or 17-21 M
//! items/s (the consumer sharing a CPU with a producer gets half of it: 11-12 M pinned so,
//! 24-27 M with the producers together on the other), `queue_1mib` 5-6 or 8.5-10.5 k MB/s
//! (3.8-5.0 k with both on one CPU), and the median of nine flipped between the modes from run
//! to run. CPython's sides do not suffer from it (250 k items/s and 459 MB/s left alone, 268 k
//! and 461 MB/s pinned, medians of 7). `pipe_1mib`'s placement is explained at
//! `limits::socket_sized_placed`.

use crate::limits::start_apart;
use std::time::Instant;

use multiprocessing::codec::Bytes;
use multiprocessing::{
    get_context, pipe, Connection, Lock, Queue, Semaphore, SimpleQueue, StartMethod,
};

/// Names of the Rust-side figures, in the order `cargo xtask bench` reports them.
pub fn figures() -> &'static [&'static str] {
    &[
        "process_fork",
        "process_spawn",
        "process_forkserver",
        "pipe_pingpong",
        "pipe_1mib",
        "lock_uncontended",
        "lock_handoff",
        "semaphore_pingpong",
        "queue_1to1",
        "queue_2to1",
        "simplequeue_1to1",
        "queue_1mib",
        "queue_latency",
        "listener_auth",
        "listener_pingpong",
        "value_2proc_increments",
        "atomic_2proc_increments",
        "pool_map_100k",
        "pool_imap_10k",
        "pool_apply_async_10k",
        "pool_startup",
        "pool_map_cpu",
        "manager_dict_ops",
        "manager_queue",
        "manager_startup",
    ]
}

/// Measures one repetition of figure `name`, returning `(unit, value)`, or `None` when `name`
/// is not a Rust-side figure.
pub fn run(name: &str) -> Option<(&'static str, f64)> {
    Some(match name {
        "process_fork" => ("us", start_join(StartMethod::Fork, 500)),
        "process_spawn" => ("us", start_join(StartMethod::Spawn, 200)),
        "process_forkserver" => ("us", start_join(StartMethod::Forkserver, 500)),
        "pipe_pingpong" => ("round_trips/s", pingpong(20_000)),
        "pipe_1mib" => ("MB/s", one_mib(1000)),
        "lock_uncontended" => ("ops/s", lock_uncontended(10_000_000)),
        "lock_handoff" => ("round_trips/s", lock_handoff(100_000)),
        "semaphore_pingpong" => ("round_trips/s", semaphore_pingpong(100_000)),
        "queue_1to1" => ("msgs/s", queue_n_to_1(1, 2_000_000, false)),
        "queue_2to1" => ("msgs/s", queue_n_to_1(2, 2_000_000, true)),
        "simplequeue_1to1" => ("msgs/s", simplequeue_1to1(2_000_000)),
        "queue_1mib" => ("MB/s", queue_1mib(200)),
        "queue_latency" => ("us", queue_latency(200_000)),
        other => {
            return crate::connection_side::run(other)
                .or_else(|| crate::shared_side::run(other))
                .or_else(|| crate::sweep_side::run(other))
                .or_else(|| crate::pool_side::run(other))
                .or_else(|| crate::manager_side::run(other))
        }
    })
}

fn noop(_: ()) {}

/// Microseconds per `start()` + `join()` of a no-op child under `method`.
fn start_join(method: StartMethod, count: u32) -> f64 {
    let ctx = get_context(Some(method));
    // Warm up (for forkserver: the server itself stays out of the timing, as in CPython's run).
    let mut p = ctx.process(noop, ());
    p.start().expect("start");
    p.join().expect("join");
    let t0 = Instant::now();
    for _ in 0..count {
        let mut p = ctx.process(noop, ());
        p.start().expect("start");
        assert_eq!(p.join().expect("join"), 0);
    }
    t0.elapsed().as_secs_f64() * 1e6 / f64::from(count)
}

/// Echoes every value back until `None` arrives.
fn echo(mut conn: Connection) {
    while let Ok(Some(v)) = conn.recv::<Option<i64>>() {
        if conn.send(&Some(v)).is_err() {
            break;
        }
    }
}

/// Round trips per second of a small value over a duplex pipe to an echoing child.
fn pingpong(round_trips: u32) -> f64 {
    let (mut parent, child) = pipe(true).expect("pipe");
    let mut p = get_context(Some(StartMethod::Fork)).process(echo, child);
    // The two processes on two CPUs (`start_apart`, as CPython's side and the limit).
    let ((), pinned) = start_apart(|| p.start().expect("start"));
    parent.send(&Some(1i64)).expect("send");
    parent.recv::<Option<i64>>().expect("recv");
    let t0 = Instant::now();
    for _ in 0..round_trips {
        parent.send(&Some(1i64)).expect("send");
        parent.recv::<Option<i64>>().expect("recv");
    }
    let elapsed = t0.elapsed().as_secs_f64();
    drop(pinned);
    parent.send(&None::<i64>).expect("send");
    p.join().expect("join");
    f64::from(round_trips) / elapsed
}

/// Says ready, receives `count` byte messages, then acks once.
fn sink((mut conn, count): (Connection, u32)) {
    conn.send_bytes(b"ready").expect("send");
    for _ in 0..count {
        conn.recv_bytes().expect("recv");
    }
    conn.send_bytes(b"ack").expect("send");
}

/// MB/s (1e6 bytes) of 1 MiB `send_bytes` to a child, until it acks the last one.
fn one_mib(messages: u32) -> f64 {
    let (mut parent, child) = pipe(true).expect("pipe");
    let mut p = get_context(Some(StartMethod::Fork)).process(sink, (child, messages));
    let ((), _pinned) = start_apart(|| p.start().expect("start"));
    let payload = vec![0x5au8; 1 << 20];
    assert_eq!(parent.recv_bytes().expect("ready"), b"ready");
    let t0 = Instant::now();
    for _ in 0..messages {
        parent.send_bytes(&payload).expect("send");
    }
    assert_eq!(parent.recv_bytes().expect("ack"), b"ack");
    let elapsed = t0.elapsed().as_secs_f64();
    p.join().expect("join");
    f64::from(messages) * (1u64 << 20) as f64 / 1e6 / elapsed
}

/// Acquire + release pairs per second of an uncontended `Lock` in one process.
fn lock_uncontended(count: u32) -> f64 {
    let lock = Lock::new().expect("lock");
    let t0 = Instant::now();
    for _ in 0..count {
        lock.acquire().expect("acquire");
        lock.release().expect("release");
    }
    f64::from(count) / t0.elapsed().as_secs_f64()
}

/// The child of `lock_handoff`: takes `ping` (released by the parent), gives back `pong`.
fn lock_partner((ping, pong, count): (Lock, Lock, u32)) {
    for _ in 0..=count {
        ping.acquire().expect("acquire");
        pong.release().expect("release");
    }
}

/// Round trips per second of two processes handing a pair of `Lock`s back and forth (a `Lock`
/// may be released by a process that did not acquire it, as in Python), on two CPUs
/// (`start_apart`, as CPython's side and the limit).
fn lock_handoff(count: u32) -> f64 {
    let (ping, pong) = (Lock::new().expect("lock"), Lock::new().expect("lock"));
    ping.acquire().expect("acquire");
    pong.acquire().expect("acquire");
    let mut p = get_context(Some(StartMethod::Fork))
        .process(lock_partner, (ping.clone(), pong.clone(), count));
    let ((), _pinned) = start_apart(|| p.start().expect("start"));
    ping.release().expect("release"); // warm-up round
    pong.acquire().expect("acquire");
    let t0 = Instant::now();
    for _ in 0..count {
        ping.release().expect("release");
        pong.acquire().expect("acquire");
    }
    let elapsed = t0.elapsed().as_secs_f64();
    p.join().expect("join");
    f64::from(count) / elapsed
}

/// The child of `semaphore_pingpong`.
fn semaphore_partner((ping, pong, count): (Semaphore, Semaphore, u32)) {
    for _ in 0..=count {
        ping.acquire().expect("acquire");
        pong.release().expect("release");
    }
}

/// Round trips per second of two processes ping-ponging through two semaphores, on two CPUs
/// (`start_apart`, as CPython's side).
fn semaphore_pingpong(count: u32) -> f64 {
    let (ping, pong) = (
        Semaphore::new(0).expect("sem"),
        Semaphore::new(0).expect("sem"),
    );
    let mut p = get_context(Some(StartMethod::Fork))
        .process(semaphore_partner, (ping.clone(), pong.clone(), count));
    let ((), _pinned) = start_apart(|| p.start().expect("start"));
    ping.release().expect("release"); // warm-up round
    pong.acquire().expect("acquire");
    let t0 = Instant::now();
    for _ in 0..count {
        ping.release().expect("release");
        pong.acquire().expect("acquire");
    }
    let elapsed = t0.elapsed().as_secs_f64();
    p.join().expect("join");
    f64::from(count) / elapsed
}

/// Puts `count` small ints.
fn producer((q, count): (Queue<i64>, u32)) {
    for i in 0..count {
        q.put(i64::from(i)).expect("put");
    }
}

/// Messages per second through a `Queue` from `producers` child processes to the parent
/// (`total` small ints in all), from the first put to the last get. `apart`: the producers
/// on the second CPU, the parent on the first (`start_apart`, as CPython's side).
fn queue_n_to_1(producers: u32, total: u32, apart: bool) -> f64 {
    let q: Queue<i64> = Queue::new().expect("queue");
    let ctx = get_context(Some(StartMethod::Fork));
    let t0 = Instant::now();
    let start = || -> Vec<_> {
        (0..producers)
            .map(|_| {
                let mut p = ctx.process(producer, (q.clone(), total / producers));
                p.start().expect("start");
                p
            })
            .collect()
    };
    let (mut children, _pinned) = if apart {
        let (children, pinned) = start_apart(start);
        (children, Some(pinned))
    } else {
        (start(), None)
    };
    for _ in 0..total {
        q.get().expect("get");
    }
    let elapsed = t0.elapsed().as_secs_f64();
    for p in &mut children {
        p.join().expect("join");
    }
    f64::from(total) / elapsed
}

fn simple_producer((q, count): (SimpleQueue<i64>, u32)) {
    for i in 0..count {
        q.put(i64::from(i)).expect("put");
    }
}

/// Messages per second through a `SimpleQueue` from a child to the parent, on two CPUs
/// (`start_apart`, as CPython's side).
fn simplequeue_1to1(total: u32) -> f64 {
    let q: SimpleQueue<i64> = SimpleQueue::new().expect("queue");
    let t0 = Instant::now();
    let mut p = get_context(Some(StartMethod::Fork)).process(simple_producer, (q.clone(), total));
    let ((), _pinned) = start_apart(|| p.start().expect("start"));
    for _ in 0..total {
        q.get().expect("get");
    }
    let elapsed = t0.elapsed().as_secs_f64();
    p.join().expect("join");
    f64::from(total) / elapsed
}

fn mib_consumer((q, done, count): (Queue<Bytes>, Queue<bool>, u32)) {
    for _ in 0..count {
        q.get().expect("get");
    }
    done.put(true).expect("put");
}

/// MB/s (1e6 bytes) of 1 MiB byte items through a `Queue` to a child, until it has them all;
/// the child on the second CPU, the parent on the first (`start_apart`, as CPython's side).
fn queue_1mib(count: u32) -> f64 {
    let q: Queue<Bytes> = Queue::new().expect("queue");
    let done: Queue<bool> = Queue::new().expect("queue");
    let mut p = get_context(Some(StartMethod::Fork))
        .process(mib_consumer, (q.clone(), done.clone(), count));
    let ((), _pinned) = start_apart(|| p.start().expect("start"));
    let item = Bytes(vec![0x5au8; 1 << 20]);
    let t0 = Instant::now();
    for _ in 0..count {
        q.put(&item).expect("put");
    }
    done.get().expect("done");
    let elapsed = t0.elapsed().as_secs_f64();
    p.join().expect("join");
    f64::from(count) * (1u64 << 20) as f64 / 1e6 / elapsed
}

fn queue_echo((ping, pong): (Queue<Option<i64>>, Queue<Option<i64>>)) {
    while let Ok(Some(v)) = ping.get() {
        pong.put(Some(v)).expect("put");
    }
}

/// Microseconds per round trip of a small value through two queues to an echoing child.
fn queue_latency(round_trips: u32) -> f64 {
    let (ping, pong) = (Queue::new().expect("queue"), Queue::new().expect("queue"));
    let mut p =
        get_context(Some(StartMethod::Fork)).process(queue_echo, (ping.clone(), pong.clone()));
    p.start().expect("start");
    ping.put(Some(1)).expect("put");
    pong.get().expect("get");
    let t0 = Instant::now();
    for i in 0..round_trips {
        ping.put(Some(i64::from(i))).expect("put");
        pong.get().expect("get");
    }
    let elapsed = t0.elapsed().as_secs_f64();
    ping.put(None).expect("put");
    p.join().expect("join");
    elapsed * 1e6 / f64::from(round_trips)
}
