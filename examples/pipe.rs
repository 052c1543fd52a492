//! Python's `Pipe` example: a child sends `[42, None, 'hello']` to its parent.
//!
//! ```python
//! from multiprocessing import Process, Pipe
//!
//! def f(conn):
//!     conn.send([42, None, 'hello'])
//!     conn.close()
//!
//! if __name__ == '__main__':
//!     parent_conn, child_conn = Pipe()
//!     p = Process(target=f, args=(child_conn,))
//!     p.start()
//!     print(parent_conn.recv())   # prints "[42, None, 'hello']"
//!     p.join()
//! ```

#[path = "common/py.rs"]
mod py;

use multiprocessing::{pipe, Connection, Process};
use py::Py;

fn f(mut conn: Connection) {
    let value = Py::List(vec![Py::Int(42), Py::None, Py::Str("hello".into())]);
    conn.send(&value).expect("send");
    conn.close();
}

/// Runs the example.
pub fn main() {
    let (mut parent_conn, child_conn) = pipe(true).expect("pipe");
    let mut p = Process::new(f, child_conn);
    p.start().expect("start");
    let got: Py = parent_conn.recv().expect("recv");
    println!("{got}"); // prints "[42, None, 'hello']"
    p.join().expect("join");
}
