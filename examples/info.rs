//! Python's `info()` example: the module name, the parent's pid and the pid, in the main
//! process and in a child.
//!
//! ```python
//! from multiprocessing import Process
//! import os
//!
//! def info(title):
//!     print(title)
//!     print('module name:', __name__)
//!     print('parent process:', os.getppid())
//!     print('process id:', os.getpid())
//!
//! def f(name):
//!     info('function f')
//!     print('hello', name)
//!
//! if __name__ == '__main__':
//!     info('main line')
//!     p = Process(target=f, args=('bob',))
//!     p.start()
//!     p.join()
//! ```

use multiprocessing::Process;

fn info(title: &str) {
    println!("{title}");
    println!("module name: {}", module_path!());
    println!("parent process: {}", std::os::unix::process::parent_id());
    println!("process id: {}", std::process::id());
}

fn f(name: String) {
    info("function f");
    println!("hello {name}");
}

/// Runs the example.
pub fn main() {
    info("main line");
    let mut p = Process::new(f, "bob".to_string());
    p.start().expect("start");
    p.join().expect("join");
}
