//! The Pool example of Python's docs, and a worker killed in the middle of a task.
//!
//! ```python
//! from multiprocessing import Pool
//!
//! def f(x):
//!     return x*x
//!
//! if __name__ == '__main__':
//!     with Pool(processes=4) as pool:
//!         print(pool.apply_async(f, (10,)).get(timeout=1))   # prints "100"
//!         print(pool.map(f, range(10)))     # prints "[0, 1, 4,..., 81]"
//! ```
//!
//! CPython's `get()` hangs forever when the worker running the task dies (gh-66587); here the
//! task fails with `WorkerLost` and the pool replaces the worker and goes on.

use std::time::Duration;

use multiprocessing::pool::Error;
use multiprocessing::Pool;

fn f(x: i64) -> i64 {
    x * x
}

/// Dies by SIGKILL in the middle of the task (as the OOM killer would kill it).
fn killed_mid_task(_: ()) -> i64 {
    let me = rustix::process::getpid();
    let _ = rustix::process::kill_process(me, rustix::process::Signal::KILL);
    std::thread::sleep(Duration::from_secs(60));
    0
}

/// Runs the example.
pub fn main() {
    let pool = Pool::new(4).expect("pool");
    let r = pool.apply_async(f, 10).expect("apply_async");
    println!("{}", r.get_timeout(Duration::from_secs(1)).expect("get"));
    println!("{:?}", pool.map(f, 0..10).expect("map"));

    let lost = pool.apply_async(killed_mid_task, ()).expect("apply_async");
    match lost.get_timeout(Duration::from_secs(30)) {
        Err(e @ Error::WorkerLost { .. }) => println!("WorkerLost: {e}"),
        other => println!("unexpected: {other:?}"),
    }
    println!(
        "the pool goes on: {:?}",
        pool.map(f, 10..15).expect("map after the loss")
    );
    pool.close();
    pool.join().expect("join");
}
