//! The first example of Python's docs: a child process says hello.
//!
//! ```python
//! from multiprocessing import Process
//!
//! def f(name):
//!     print('hello', name)
//!
//! if __name__ == '__main__':
//!     p = Process(target=f, args=('bob',))
//!     p.start()
//!     p.join()
//! ```

use multiprocessing::Process;

fn f(name: String) {
    println!("hello {name}");
}

/// Runs the example.
pub fn main() {
    let mut p = Process::new(f, "bob".to_string());
    p.start().expect("start");
    p.join().expect("join");
}
