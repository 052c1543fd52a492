//! Many producers and many consumers, each a separate process, on one queue at once: no item
//! lost, none duplicated, and each producer's items seen in order by every consumer (issue 5,
//! item 6).
//!
//! Ported in spirit from CPython's `Lib/test/_test_multiprocessing.py`,
//! `_TestQueue.test_task_done` (several worker processes sharing one queue, one `None` per worker
//! to stop them), scaled up to 4 producers × 4 consumers × 100 000 items per producer under
//! each start method, plus a bounded variant in which producers and consumers both sleep, and
//! `SimpleQueue` and `JoinableQueue` variants. CPython has no test of the multiset received;
//! that check is new.

use std::time::{Duration, Instant};

use mp_core::StartMethod;
use mp_queue::{JoinableQueue, Queue, SimpleQueue};
use mp_testkit::{start, Child, LONG, METHODS};

const PRODUCERS: usize = 4;
const CONSUMERS: usize = 4;

/// An item: `(producer, seq)`; `None` stops a consumer.
type Item = Option<(u8, u32)>;

/// The queue kinds the test runs over; each is a `Queue` underneath.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
enum AnyQueue {
    Plain(Queue<Item>),
    Simple(SimpleQueue<Item>),
    Joinable(JoinableQueue<Item>),
}

impl AnyQueue {
    fn put(&self, item: Item) {
        let r = match self {
            AnyQueue::Plain(q) => q.put_timeout(item, LONG),
            AnyQueue::Simple(q) => q.put(item),
            AnyQueue::Joinable(q) => q.put_timeout(item, LONG),
        };
        r.expect("put");
    }

    fn get(&self) -> Item {
        let r = match self {
            AnyQueue::Plain(q) => q.get_timeout(LONG),
            AnyQueue::Simple(q) => q.get_timeout(LONG),
            AnyQueue::Joinable(q) => q.get_timeout(LONG),
        };
        let item = r.expect("get_timeout");
        if let AnyQueue::Joinable(q) = self {
            q.task_done().expect("task_done");
        }
        item
    }
}

/// Puts `(id, 0..n)`.
fn producer((q, id, n): (AnyQueue, u8, u32)) {
    for seq in 0..n {
        q.put(Some((id, seq)));
    }
}

/// Gets until `None`; returns, per producer, the sequence numbers in the order received.
fn consumer(q: AnyQueue) -> Vec<Vec<u32>> {
    let mut got = vec![Vec::new(); PRODUCERS];
    while let Some((id, seq)) = q.get() {
        got[id as usize].push(seq);
    }
    got
}

/// Runs the producers and consumers and checks what the consumers received.
fn run(m: StartMethod, q: AnyQueue, per_producer: u32) {
    let t = Instant::now();
    let consumers: Vec<Child<Vec<Vec<u32>>>> = (0..CONSUMERS)
        .map(|_| start(m, consumer, q.clone()))
        .collect();
    let producers: Vec<Child> = (0..PRODUCERS)
        .map(|id| start(m, producer, (q.clone(), id as u8, per_producer)))
        .collect();
    for p in &producers {
        p.finish();
    }
    // Every item is in the queue (or taken) before the sentinels, which come last.
    for _ in 0..CONSUMERS {
        q.put(None);
    }
    let received: Vec<Vec<Vec<u32>>> = consumers.iter().map(|c| c.finish()).collect();
    let took = t.elapsed();

    for (c, per) in received.iter().enumerate() {
        for (id, seqs) in per.iter().enumerate() {
            if let Some(w) = seqs.windows(2).find(|w| w[0] >= w[1]) {
                panic!(
                    "{m:?}: consumer {c} received producer {id}'s item {} after {}",
                    w[1], w[0]
                );
            }
        }
    }
    for id in 0..PRODUCERS {
        let mut all: Vec<u32> = received.iter().flat_map(|per| per[id].clone()).collect();
        all.sort_unstable();
        if !all.iter().copied().eq(0..per_producer) {
            let dups = all.windows(2).filter(|w| w[0] == w[1]).count();
            let mut distinct = all.clone();
            distinct.dedup();
            panic!(
                "{m:?}: producer {id} put {per_producer} items; consumers got {} ({dups} \
                 duplicates, {} missing)",
                all.len(),
                per_producer as usize - distinct.len()
            );
        }
    }
    let per_consumer: Vec<usize> = received
        .iter()
        .map(|per| per.iter().map(Vec::len).sum())
        .collect();
    eprintln!(
        "{m:?}: {PRODUCERS}×{CONSUMERS}×{per_producer} in {took:?}; per consumer {per_consumer:?}"
    );
}

#[test]
fn four_producers_four_consumers_100k_items_each_under_fork() {
    let q = Queue::new().unwrap();
    run(StartMethod::Fork, AnyQueue::Plain(q.clone()), 100_000);
    assert!(q.empty());
}

#[test]
fn four_producers_four_consumers_100k_items_each_under_spawn_and_forkserver() {
    for m in [StartMethod::Spawn, StartMethod::Forkserver] {
        let q = Queue::new().unwrap();
        run(m, AnyQueue::Plain(q.clone()), 100_000);
        assert!(q.empty());
    }
}

#[test]
fn four_producers_four_consumers_on_a_bounded_queue() {
    // With room for 8 items, producers and consumers both wait and wake each other all the time.
    for m in METHODS {
        let q = Queue::with_maxsize(8).unwrap();
        run(m, AnyQueue::Plain(q.clone()), 10_000);
        assert!(q.empty());
    }
}

#[test]
fn four_producers_four_consumers_on_simple_and_joinable_queues() {
    for m in METHODS {
        let q = SimpleQueue::new().unwrap();
        run(m, AnyQueue::Simple(q.clone()), 10_000);
        assert!(q.empty());

        let q = JoinableQueue::with_maxsize(64).unwrap();
        run(m, AnyQueue::Joinable(q.clone()), 10_000);
        q.join_timeout(Duration::ZERO)
            .expect("every item, sentinels included, was marked done");
        assert!(q.empty());
    }
}
