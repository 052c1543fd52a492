//! Python's `Lock` example: ten processes print in turn, one at a time.
//!
//! ```python
//! from multiprocessing import Process, Lock
//!
//! def f(l, i):
//!     l.acquire()
//!     try:
//!         print('hello world', i)
//!     finally:
//!         l.release()
//!
//! if __name__ == '__main__':
//!     lock = Lock()
//!     for num in range(10):
//!         Process(target=f, args=(lock, num)).start()
//! ```

use multiprocessing::{Lock, Process};

fn f((l, i): (Lock, i32)) {
    // The guard releases the lock when it goes out of scope, like `try/finally`.
    let _guard = l.lock().expect("lock");
    println!("hello world {i}");
}

/// Runs the example.
pub fn main() {
    let lock = Lock::new().expect("lock");
    let mut children = Vec::new();
    for num in 0..10 {
        let mut p = Process::new(f, (lock.clone(), num));
        p.start().expect("start");
        children.push(p);
    }
    for p in children {
        p.join().expect("join");
    }
}
