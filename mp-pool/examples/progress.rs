//! A progress bar over a pool's lazy `imap`: the iterator is an `ExactSizeIterator` when its
//! input is, so indicatif's `ProgressIterator` wraps it unchanged.
//!
//! ```text
//! cargo run -p mp-pool --example progress
//! ```

use indicatif::ProgressIterator;
use mp_pool::Pool;

fn slow_square(x: u64) -> u64 {
    std::thread::sleep(std::time::Duration::from_millis(2));
    x * x
}

fn main() {
    let pool = Pool::new(2).expect("pool");
    let inputs: Vec<u64> = (0..500).collect();
    let results = pool.imap(slow_square, inputs).expect("imap");
    println!("{} results to come", results.len());
    let total: u64 = results.progress().map(|r| r.expect("a task failed")).sum();
    println!("sum of squares: {total}");
    pool.close();
    pool.join().expect("join");
}
