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

use std::fmt;

use multiprocessing::{pipe, Connection, Process};
use serde::{Deserialize, Serialize};

/// A value that prints like Python's `repr`: enough of Python's types for this example.
#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Py {
    /// An `int`.
    Int(i64),
    /// A `str`.
    Str(String),
    /// A `list`.
    List(Vec<Py>),
    /// `None`.
    None,
}

impl fmt::Display for Py {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Py::Int(i) => write!(f, "{i}"),
            Py::Str(s) => write!(f, "'{s}'"),
            Py::None => f.write_str("None"),
            Py::List(items) => {
                f.write_str("[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str("]")
            }
        }
    }
}

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
