//! The manager figures (`mp-manager`): the Rust side and their limit.
//!
//! | figure            | what                                                        | limit |
//! | ----------------- | ----------------------------------------------------------- | ----- |
//! | `manager_dict_ops` | set then get 10 000 keys through a dict proxy, µs per operation | a raw Unix socketpair round trip of 8 bytes, µs |
//! | `manager_queue`   | put then get 10 000 small items through a queue proxy, msgs/s | none |
//! | `manager_startup` | a `Manager` started and shut down, ms (the mean of 20)       | none |

use std::time::Instant;

use multiprocessing::Manager;

use crate::limits::start_apart;

/// One repetition of manager figure `name`.
pub fn run(name: &str) -> Option<(&'static str, f64)> {
    match name {
        "manager_dict_ops" => Some(("us", dict_ops(10_000))),
        "manager_queue" => Some(("msgs/s", queue(10_000))),
        "manager_startup" => Some(("ms", startup(20))),
        _ => None,
    }
}

/// One repetition of the limit of manager figure `name`.
pub fn limit(name: &str) -> Option<(&'static str, f64)> {
    match name {
        "manager_dict_ops" => Some(("us", crate::limits::socket_round_trip_us(20_000))),
        _ => None,
    }
}

/// Microseconds per dict operation: `count` sets, then `count` gets.
fn dict_ops(count: u32) -> f64 {
    // The server on the second CPU, this client on the first (`start_apart`, as CPython's
    // side and the limit).
    let (manager, _pinned) = start_apart(|| Manager::new().expect("manager"));
    let d = manager.dict::<u32, u32>().expect("dict");
    let t0 = Instant::now();
    for i in 0..count {
        d.set(i, i).expect("set");
    }
    for i in 0..count {
        assert_eq!(d.get_item(&i).expect("get"), i);
    }
    t0.elapsed().as_secs_f64() * 1e6 / f64::from(2 * count)
}

/// Items per second through a queue proxy: `count` puts, then `count` gets.
fn queue(count: u32) -> f64 {
    let (manager, _pinned) = start_apart(|| Manager::new().expect("manager"));
    let q = manager.queue::<u32>().expect("queue");
    let t0 = Instant::now();
    for i in 0..count {
        q.put(i).expect("put");
    }
    for _ in 0..count {
        q.get().expect("get");
    }
    f64::from(count) / t0.elapsed().as_secs_f64()
}

/// Milliseconds per manager started and shut down.
fn startup(count: u32) -> f64 {
    let t0 = Instant::now();
    for _ in 0..count {
        let mut manager = Manager::new().expect("manager");
        manager.shutdown().expect("shutdown");
    }
    t0.elapsed().as_secs_f64() * 1e3 / f64::from(count)
}
