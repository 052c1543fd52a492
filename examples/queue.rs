//! Python's `Queue` example: a child puts `[42, None, 'hello']`, the parent gets it.
//!
//! ```python
//! from multiprocessing import Process, Queue
//!
//! def f(q):
//!     q.put([42, None, 'hello'])
//!
//! if __name__ == '__main__':
//!     q = Queue()
//!     p = Process(target=f, args=(q,))
//!     p.start()
//!     print(q.get())    # prints "[42, None, 'hello']"
//!     p.join()
//! ```

#[path = "common/py.rs"]
mod py;

use multiprocessing::{Process, Queue};
use py::Py;

fn f(q: Queue<Py>) {
    q.put(Py::List(vec![
        Py::Int(42),
        Py::None,
        Py::Str("hello".into()),
    ]))
    .expect("put");
}

/// Runs the example.
pub fn main() {
    let q = Queue::new().expect("queue");
    let mut p = Process::new(f, q.clone());
    p.start().expect("start");
    println!("{}", q.get().expect("get")); // prints "[42, None, 'hello']"
    p.join().expect("join");
}
