//! Beyond CPython: producers and consumers SIGKILLed at random points leave the queue whole
//! and usable by the others (issue 5, item 7), under every start method (fork, spawn,
//! forkserver).
//!
//! CPython's `multiprocessing.Queue` is corrupted for everyone by a process killed while it
//! writes to or reads from the pipe (its docs warn of it; gh-85880), so nothing here is ported
//! from `Lib/test/_test_multiprocessing.py`. What is checked:
//!
//! - hundreds of kills at random moments (a producer alone, a consumer alone, or one of a
//!   producer/consumer pair on a bounded queue), after each of which the parent puts and gets
//!   with timeouts and checks every item it finds: whole (the payload is a pattern of the
//!   item's number), of the right type, each producer's numbers contiguous and increasing, no
//!   duplicate; every completed `put` is there, the one in flight is there whole or not at
//!   all; an item a killed consumer was taking is either still queued or gone with it;
//! - a producer killed while blocked in `put` on a full queue and a consumer killed while
//!   blocked in `get` on an empty one (holding the get lock), after which the others go on;
//! - a producer killed in the middle of putting a 64 MiB item, and a consumer killed in the
//!   middle of getting one: all or nothing.

use std::time::Duration;

use mp_core::codec::Bytes;
use mp_core::StartMethod;
use mp_queue::{Error, Queue};
use mp_testkit::{
    assert_err, big_item, brief, eventually, is_big_item, pattern, start, Child, Counters, Rng,
    FOREVER, KILLED, LONG, METHODS, SETTLE,
};
use serde::{Deserialize, Serialize};

/// A numbered item whose payload depends on its number: a torn or mixed-up item shows.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Item {
    run: u32,
    seq: u32,
    data: Bytes,
}

/// The run number of the parent's probe items.
const PROBE: u32 = u32::MAX;
/// The probe number that stops a consumer.
const STOP: u32 = u32::MAX;

fn key(run: u32, seq: u32) -> u64 {
    (u64::from(run) << 32) | u64::from(seq)
}

/// Payloads of 0 to 1535 bytes.
fn item_len(run: u32, seq: u32) -> usize {
    (key(run, seq).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 53) as usize % 1536
}

fn make(run: u32, seq: u32) -> Item {
    Item {
        run,
        seq,
        data: pattern(key(run, seq), item_len(run, seq)),
    }
}

fn is_whole(it: &Item) -> bool {
    it.data == pattern(key(it.run, it.seq), item_len(it.run, it.seq))
}

/// Counter indexes in the `Counters` the children report through.
const PRODUCED: usize = 0;
const CONSUMED: usize = 1;
const STOP_PRODUCER: usize = 2;
/// How many items a producer puts at most (never reached: it is killed first).
const LIMIT: u32 = 50_000_000;

// ----- children -----

/// Puts `(run, 0..)`, counting each completed put in `progress[PRODUCED]`, until
/// `progress[STOP_PRODUCER]` is set.
fn produce((q, progress, run): (Queue<Item>, Counters, u32)) {
    for seq in 0..LIMIT {
        if progress.get(STOP_PRODUCER) != 0 {
            return;
        }
        q.put_timeout(make(run, seq), LONG)
            .unwrap_or_else(|e| panic!("producer put #{seq}: {e}"));
        progress.set(PRODUCED, u64::from(seq) + 1);
    }
}

/// Gets items, which must be `(run, 0..)` whole and in order, counting them in
/// `progress[CONSUMED]`; panics (exit code 1) at the first bad one; returns at `(PROBE, STOP)`.
fn consume((q, progress, run): (Queue<Item>, Counters, u32)) {
    for expected in 0..LIMIT {
        let it = q
            .get_timeout(LONG)
            .unwrap_or_else(|e| panic!("consumer get (expecting #{expected}): {e}"));
        if it.run == PROBE && it.seq == STOP {
            return;
        }
        assert!(
            it.run == run && it.seq == expected,
            "consumer expected ({run}, {expected}), got ({}, {})",
            it.run,
            it.seq
        );
        assert!(
            is_whole(&it),
            "consumer got a torn item ({run}, {expected})"
        );
        progress.set(CONSUMED, u64::from(expected) + 1);
    }
}

/// Puts one item and returns.
fn put_one((q, x): (Queue<u32>, u32)) {
    q.put_timeout(x, LONG).expect("put_timeout");
}

/// Gets one item and returns it.
fn get_one(q: Queue<u32>) -> u32 {
    q.get_timeout(LONG).expect("get_timeout")
}

/// Builds a big item, says so in `progress[0]` (1), puts it, says so (2), then sleeps until
/// killed.
fn put_big_then_sleep((q, progress, seed, len): (Queue<Bytes>, Counters, u64, usize)) {
    let item = big_item(seed, len, 0xc3);
    progress.set(0, 1);
    q.put_timeout(item, LONG).expect("put_timeout");
    progress.set(0, 2);
    std::thread::sleep(FOREVER);
}

/// Says it is about to get (1), gets, says so (2), checks the item (3 whole, 4 not), then
/// sleeps until killed.
fn get_big_then_sleep((q, progress, seed, len): (Queue<Bytes>, Counters, u64, usize)) {
    progress.set(0, 1);
    let item = q.get_timeout(LONG).expect("get_timeout");
    progress.set(0, 2);
    let whole = is_big_item(&item, seed, len, 0xc3);
    progress.set(0, if whole { 3 } else { 4 });
    std::thread::sleep(FOREVER);
}

// ----- the checks the parent makes -----

/// Takes everything from `q` (quiescent: no child alive) and checks it is exactly `run`'s
/// items `s..k`, whole and in order, with `s` in `first` and `k` in `end`. Returns `(s, k)`.
#[track_caller]
fn drain_run(q: &Queue<Item>, run: u32, first: &[u64], end: &[u64], what: &str) -> (u64, u64) {
    let n = q.qsize() as u64;
    let mut s = None;
    for i in 0..n {
        let it = q
            .get_timeout(LONG)
            .unwrap_or_else(|e| panic!("{what}: get #{i} of {n} queued: {e}"));
        assert!(
            is_whole(&it),
            "{what}: torn item ({}, {}), {} bytes",
            it.run,
            it.seq,
            it.data.0.len()
        );
        let start = *s.get_or_insert(u64::from(it.seq));
        assert!(
            it.run == run && u64::from(it.seq) == start + i,
            "{what}: got ({}, {}) at position {i}; expected ({run}, {})",
            it.run,
            it.seq,
            start + i
        );
    }
    assert_err!(q.get_nowait(), Error::Empty, "{what}: after {n} items");
    match s {
        Some(s) => {
            let k = s + n;
            assert!(
                first.contains(&s) && end.contains(&k),
                "{what}: queued items {s}..{k}; expected to start at one of {first:?} and end \
                 at one of {end:?}"
            );
            (s, k)
        }
        None => {
            let meet = first.iter().find(|s| end.contains(s)).copied();
            let k = meet.unwrap_or_else(|| {
                panic!(
                    "{what}: queue empty, but items were expected from one of {first:?} to one \
                     of {end:?}"
                )
            });
            (k, k)
        }
    }
}

/// The queue still works: a put and a get with timeouts, nothing else left in it.
#[track_caller]
fn probe(q: &Queue<Item>, i: u32, what: &str) {
    let r = q.put_timeout(make(PROBE, i), Duration::from_secs(10));
    assert!(r.is_ok(), "{what}: probe put_timeout: {}", brief(&r));
    let got = q
        .get_timeout(Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{what}: probe get_timeout: {e}"));
    assert!(
        got.run == PROBE && got.seq == i && is_whole(&got),
        "{what}: probe came back as ({}, {})",
        got.run,
        got.seq
    );
    assert_err!(
        q.get_timeout(Duration::ZERO),
        Error::Empty,
        "{what}: after the probe"
    );
}

/// Waits until `cond`, unless `early` (then the kill may land while the child starts).
fn wait_unless(early: bool, what: &str, cond: impl FnMut() -> bool) {
    if !early {
        eventually(what, cond);
    }
}

/// Sleeps `micros` µs (not at all for 0).
fn pause(micros: u64) {
    if micros > 0 {
        std::thread::sleep(Duration::from_micros(micros));
    }
}

/// `iterations` rounds, cycling through four scenarios, each killing a child at a random
/// moment (0–3 ms after it got going; one round in eight right after `start`).
fn random_kills(m: StartMethod, iterations: u32, seed: u64) {
    let unbounded: Queue<Item> = Queue::new().unwrap();
    let bounded: Queue<Item> = Queue::with_maxsize(32).unwrap();
    let progress = Counters::new(3);
    let mut kills = [0u32; 4];
    let mut died_of_kill = 0;
    for i in 0..iterations {
        let mut rng = Rng::new(seed ^ u64::from(i));
        let delay = rng.below(3001);
        let early = rng.below(8) == 0;
        let mode = i % 4;
        let what = format!("{m:?} round {i} (scenario {mode}, delay {delay} µs, early {early})");
        let run = i;
        progress.set(PRODUCED, 0);
        progress.set(STOP_PRODUCER, 0);
        progress.set(CONSUMED, 0);
        kills[mode as usize] += 1;
        match mode {
            // A producer alone: every completed put is there, the one in flight whole or not.
            0 => {
                let q = &unbounded;
                let p = start(m, produce, (q.clone(), progress.clone(), run));
                wait_unless(early, "the producer's first put", || {
                    progress.get(PRODUCED) > 0
                });
                pause(delay);
                died_of_kill += i32::from(p.kill_and_reap() == KILLED);
                let pp = progress.get(PRODUCED);
                drain_run(q, run, &[0], &[pp, pp + 1], &what);
                probe(q, i, &what);
            }
            // A consumer alone on 1000 queued items: the item it was taking is queued or gone.
            1 => {
                let q = &unbounded;
                let total = 1000;
                for seq in 0..total {
                    q.put(make(run, seq)).unwrap();
                }
                let c = start(m, consume, (q.clone(), progress.clone(), run));
                wait_unless(early, "the consumer's first get", || {
                    progress.get(CONSUMED) > 0
                });
                pause(delay);
                died_of_kill += i32::from(c.kill_and_reap() == KILLED);
                let pc = progress.get(CONSUMED);
                drain_run(q, run, &[pc, pc + 1], &[u64::from(total)], &what);
                probe(q, i, &what);
            }
            // Both, on a bounded queue; the producer is killed, the consumer must take every
            // item it completed (then it is stopped by a sentinel).
            2 => {
                let q = &bounded;
                let c = start(m, consume, (q.clone(), progress.clone(), run));
                let p = start(m, produce, (q.clone(), progress.clone(), run));
                wait_unless(early, "the consumer's first get", || {
                    progress.get(CONSUMED) > 0
                });
                pause(delay);
                died_of_kill += i32::from(p.kill_and_reap() == KILLED);
                let pp = progress.get(PRODUCED);
                eventually(
                    &format!("{what}: the consumer taking the dead producer's {pp} items"),
                    || progress.get(CONSUMED) >= pp && q.qsize() == 0,
                );
                assert!(c.running(), "{what}: the consumer ended");
                q.put_timeout(make(PROBE, STOP), LONG).unwrap();
                c.finish();
                let pc = progress.get(CONSUMED);
                assert!(pc <= pp + 1, "{what}: consumed {pc} > produced {pp} + 1");
                assert_eq!(q.qsize(), 0, "{what}");
                probe(q, i, &what);
            }
            // Both, on a bounded queue; the consumer is killed, the producer must go on (then it
            // is stopped by a flag).
            _ => {
                let q = &bounded;
                let c = start(m, consume, (q.clone(), progress.clone(), run));
                let p = start(m, produce, (q.clone(), progress.clone(), run));
                wait_unless(early, "the consumer's first get", || {
                    progress.get(CONSUMED) > 0
                });
                pause(delay);
                died_of_kill += i32::from(c.kill_and_reap() == KILLED);
                let pc = progress.get(CONSUMED);
                // The producer goes on: take 100 more items while it runs.
                let first = q
                    .get_timeout(LONG)
                    .unwrap_or_else(|e| panic!("{what}: first get after the kill: {e}"));
                assert!(
                    is_whole(&first)
                        && first.run == run
                        && (u64::from(first.seq) == pc || u64::from(first.seq) == pc + 1),
                    "{what}: after the consumer's {pc} items came ({}, {})",
                    first.run,
                    first.seq
                );
                for k in 1..=100 {
                    let it = q
                        .get_timeout(LONG)
                        .unwrap_or_else(|e| panic!("{what}: get {k} after the kill: {e}"));
                    assert!(
                        is_whole(&it) && it.run == run && it.seq == first.seq + k,
                        "{what}: expected ({run}, {}), got ({}, {})",
                        first.seq + k,
                        it.run,
                        it.seq
                    );
                }
                assert!(p.running(), "{what}: the producer ended");
                // Stop it, taking its items until it is gone.
                progress.set(STOP_PRODUCER, 1);
                let mut next = first.seq + 101;
                while p.running() || !q.empty() {
                    match q.get_timeout(Duration::from_millis(5)) {
                        Ok(it) => {
                            assert!(
                                is_whole(&it) && it.run == run && it.seq == next,
                                "{what}: expected ({run}, {next}), got ({}, {})",
                                it.run,
                                it.seq
                            );
                            next += 1;
                        }
                        Err(Error::Empty) => {}
                        Err(e) => panic!("{what}: get while stopping the producer: {e}"),
                    }
                }
                p.finish();
                assert_eq!(
                    u64::from(next),
                    progress.get(PRODUCED),
                    "{what}: items got != items the producer put"
                );
                probe(q, i, &what);
            }
        }
    }
    assert!(unbounded.empty() && bounded.empty());
    eprintln!(
        "{m:?}: {iterations} rounds (per scenario {kills:?}), {died_of_kill} children died of \
         the SIGKILL"
    );
    assert!(
        died_of_kill as u32 >= iterations / 2,
        "{m:?}: only {died_of_kill} of {iterations} children were still running when killed"
    );
}

// ----- tests -----

#[test]
fn hundreds_of_random_kills_under_fork() {
    random_kills(StartMethod::Fork, 300, 0x5eed);
}

#[test]
fn random_kills_under_spawn() {
    random_kills(StartMethod::Spawn, 40, 0xa11ce);
}

#[test]
fn random_kills_under_forkserver() {
    random_kills(StartMethod::Forkserver, 40, 0xb0b);
}

#[test]
fn a_producer_killed_while_blocked_in_put_on_a_full_queue() {
    for m in METHODS {
        let q: Queue<u32> = Queue::with_maxsize(2).unwrap();
        q.put(0).unwrap();
        q.put(1).unwrap();
        let doomed = start(m, put_one, (q.clone(), 100));
        let other = start(m, put_one, (q.clone(), 200));
        std::thread::sleep(SETTLE);
        assert!(
            doomed.running() && other.running(),
            "{m:?}: a put on a full queue returned"
        );
        assert_eq!(q.qsize(), 2, "{m:?}");
        assert_eq!(doomed.kill_and_reap(), KILLED, "{m:?}");
        // The other producer goes on as soon as there is room.
        assert_eq!(q.get_timeout(LONG).unwrap(), 0, "{m:?}");
        assert_eq!(other.join(), 0, "{m:?}");
        assert_eq!(q.get_timeout(LONG).unwrap(), 1, "{m:?}");
        assert_eq!(q.get_timeout(LONG).unwrap(), 200, "{m:?}");
        assert_err!(
            q.get_timeout(Duration::from_millis(20)),
            Error::Empty,
            "{m:?}"
        );
        // The parent can fill and empty it again.
        q.put_timeout(3, LONG).unwrap();
        q.put_timeout(4, LONG).unwrap();
        assert_err!(q.put_nowait(5), Error::Full, "{m:?}");
        assert_eq!(q.get_nowait().unwrap(), 3);
        assert_eq!(q.get_nowait().unwrap(), 4);
    }
}

#[test]
fn a_consumer_killed_while_blocked_in_get_on_an_empty_queue() {
    for m in METHODS {
        let q: Queue<u32> = Queue::new().unwrap();
        // The first consumer waits holding the get lock; the second waits for the lock.
        let doomed: Child<u32> = start(m, get_one, q.clone());
        std::thread::sleep(SETTLE);
        let other: Child<u32> = start(m, get_one, q.clone());
        std::thread::sleep(SETTLE);
        assert!(
            doomed.running() && other.running(),
            "{m:?}: a get on an empty queue returned"
        );
        assert_eq!(doomed.kill_and_reap(), KILLED, "{m:?}");
        q.put(7).unwrap();
        assert_eq!(
            other.finish(),
            7,
            "{m:?}: the other consumer did not get the item"
        );
        assert!(q.empty(), "{m:?}");

        // Again, with the parent as the other consumer.
        let doomed: Child<u32> = start(m, get_one, q.clone());
        std::thread::sleep(SETTLE);
        assert!(doomed.running(), "{m:?}");
        assert_eq!(doomed.kill_and_reap(), KILLED, "{m:?}");
        assert_err!(
            q.get_timeout(Duration::from_millis(50)),
            Error::Empty,
            "{m:?}"
        );
        q.put(8).unwrap();
        assert_eq!(q.get_timeout(LONG).unwrap(), 8, "{m:?}");
    }
}

#[test]
fn a_producer_killed_in_the_middle_of_a_64_mib_put_puts_all_or_nothing() {
    let len = 64 << 20;
    let mut outcomes = Vec::new();
    for (k, m) in METHODS.into_iter().enumerate() {
        for (attempt, delay_ms) in [0u64, 10, 150].into_iter().enumerate() {
            let what = format!("{m:?}, kill {delay_ms} ms into the put");
            let q: Queue<Bytes> = Queue::new().unwrap();
            let progress = Counters::new(1);
            let seed = (k * 10 + attempt) as u64;
            let p = start(
                m,
                put_big_then_sleep,
                (q.clone(), progress.clone(), seed, len),
            );
            eventually("the producer building its item", || progress.get(0) >= 1);
            pause(delay_ms * 1000);
            assert_eq!(p.kill_and_reap(), KILLED, "{what}");
            let done = progress.get(0) == 2;
            let n = q.qsize();
            assert!(
                n <= 1 && (n == 1 || !done),
                "{what}: qsize {n} after put finished {done}"
            );
            if n == 1 {
                let got = q.get_timeout(LONG).unwrap();
                assert!(
                    is_big_item(&got, seed, len, 0xc3),
                    "{what}: a torn 64 MiB item"
                );
            }
            outcomes.push(n);
            // The queue goes on, big items included (one at a time: see
            // `queue.rs`, `an_unbounded_queue_takes_a_burst_after_its_ring_wrapped`).
            let r = q.put_timeout(big_item(99, len, 0x11), Duration::from_secs(10));
            assert!(
                r.is_ok(),
                "{what}: a 64 MiB put after the kill: {}",
                brief(&r)
            );
            assert!(
                is_big_item(&q.get_timeout(LONG).unwrap(), 99, len, 0x11),
                "{what}"
            );
            q.put_timeout(Bytes(vec![1, 2, 3]), Duration::from_secs(10))
                .unwrap();
            assert_eq!(q.get_timeout(LONG).unwrap().0, [1, 2, 3], "{what}");
            assert!(q.empty(), "{what}");
        }
    }
    eprintln!("items delivered by the killed producers: {outcomes:?}");
}

#[test]
fn a_consumer_killed_in_the_middle_of_a_64_mib_get_leaves_it_or_takes_it() {
    let len = 64 << 20;
    let mut outcomes = Vec::new();
    for (k, m) in METHODS.into_iter().enumerate() {
        for (attempt, delay_ms) in [0u64, 10, 150].into_iter().enumerate() {
            let what = format!("{m:?}, kill {delay_ms} ms into the get");
            let q: Queue<Bytes> = Queue::new().unwrap();
            let progress = Counters::new(1);
            let seed = (k * 10 + attempt) as u64;
            q.put(big_item(seed, len, 0xc3)).unwrap();
            let c = start(
                m,
                get_big_then_sleep,
                (q.clone(), progress.clone(), seed, len),
            );
            eventually("the consumer starting its get", || progress.get(0) >= 1);
            pause(delay_ms * 1000);
            assert_eq!(c.kill_and_reap(), KILLED, "{what}");
            let state = progress.get(0);
            assert_ne!(state, 4, "{what}: the consumer got a torn 64 MiB item");
            let n = q.qsize();
            assert!(
                n <= 1 && (n == 0 || state < 2),
                "{what}: qsize {n} after the consumer's get returned ({state})"
            );
            if n == 1 {
                let got = q.get_timeout(LONG).unwrap();
                assert!(
                    is_big_item(&got, seed, len, 0xc3),
                    "{what}: a torn 64 MiB item"
                );
            }
            outcomes.push(n);
            q.put_timeout(Bytes(vec![4, 5]), LONG).unwrap();
            assert_eq!(q.get_timeout(LONG).unwrap().0, [4, 5], "{what}");
            assert!(q.empty(), "{what}");
        }
    }
    eprintln!("items left by the killed consumers: {outcomes:?}");
}
