//! A tour of the library: Python's `multiprocessing` examples, in Rust, one after another.
//!
//! `cargo run --release --example tour`

// Each example is also a program of its own with its own copy of `common/py.rs`.
#![allow(clippy::duplicate_mod)]

#[path = "hello.rs"]
mod hello;
#[path = "info.rs"]
mod info;
#[path = "listener_client.rs"]
mod listener_client;
#[path = "lock.rs"]
mod lock;
#[path = "manager.rs"]
mod manager;
#[path = "manager_maths.rs"]
mod manager_maths;
#[path = "manager_remote.rs"]
mod manager_remote;
#[path = "pipe.rs"]
mod pipe;
#[path = "pool.rs"]
mod pool;
#[path = "queue.rs"]
mod queue;
#[path = "shared_memory_manager.rs"]
mod shared_memory_manager;
#[path = "value_array.rs"]
mod value_array;
#[path = "workers.rs"]
mod workers;

use multiprocessing::{get_context, Process, StartMethod};

fn square(x: i64) -> i64 {
    x * x
}

fn section(title: &str) {
    println!("\n== {title} ==");
}

fn main() {
    section("Process: hello bob");
    hello::main();

    section("info(): module name, parent pid, pid");
    info::main();

    section("Pipe: a child sends [42, None, 'hello']");
    pipe::main();

    section("Queue: a child puts [42, None, 'hello']");
    queue::main();

    section("Queues: feed tasks to four workers, collect the results");
    workers::main();

    section("Lock: ten processes print under one lock");
    lock::main();

    section("Value and Array: shared memory a child writes");
    value_array::main();

    section("Pool: apply_async(f, 10).get(timeout=1), map(f, range(10)), a worker killed mid-task");
    pool::main();

    section("Manager: a child fills a dict and reverses a list held by a server process");
    manager::main();

    section("Custom manager: MathsClass registered, add(4, 3) and mul(7, 8)");
    manager_maths::main();

    section("Remote manager: a queue served over TCP, one process puts, another gets");
    manager_remote::main();

    section("SharedMemoryManager: two processes double halves of a ShareableList");
    shared_memory_manager::main();

    section("Listener and Client: an authenticated connection over TCP");
    listener_client::main();

    section("start methods: the same fn under fork, spawn and forkserver, with its return value");
    for method in [
        StartMethod::Fork,
        StartMethod::Spawn,
        StartMethod::Forkserver,
    ] {
        let mut p: Process<i64> = get_context(Some(method)).process(square, 7);
        p.start().expect("start");
        let r = p.join_result().expect("result");
        println!(
            "{method}: square(7) = {r} (exitcode {:?})",
            p.exitcode().expect("exitcode")
        );
    }
}
