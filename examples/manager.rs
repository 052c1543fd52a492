//! Python's manager example: a child fills a dict and reverses a list that live in a manager's
//! server process, and the parent sees both.
//!
//! ```python
//! from multiprocessing import Process, Manager
//!
//! def f(d, l):
//!     d[1] = '1'
//!     d['2'] = 2
//!     d[0.25] = None
//!     l.reverse()
//!
//! if __name__ == '__main__':
//!     with Manager() as manager:
//!         d = manager.dict()
//!         l = manager.list(range(10))
//!
//!         p = Process(target=f, args=(d, l))
//!         p.start()
//!         p.join()
//!
//!         print(d)
//!         print(l)
//! ```
//!
//! prints
//!
//! ```text
//! {1: '1', '2': 2, 0.25: None}
//! [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]
//! ```

#[path = "common/py.rs"]
mod py;

use multiprocessing::managers::{DictProxy, ListProxy, Manager};
use multiprocessing::Process;
use py::Py;

// Python's dict and list hold any value: here `Py`, a serde enum of Python's plain types.
fn f((d, l): (DictProxy<Py, Py>, ListProxy<Py>)) {
    d.set(Py::Int(1), Py::Str("1".into())).expect("d[1] = '1'");
    d.set(Py::Str("2".into()), Py::Int(2)).expect("d['2'] = 2");
    d.set(Py::Float(0.25), Py::None).expect("d[0.25] = None");
    l.reverse().expect("reverse");
}

/// Runs the example.
pub fn main() {
    // Dropping the manager shuts its server down, as leaving `with Manager()` does.
    let manager = Manager::new().expect("manager");
    let d = manager.dict::<Py, Py>().expect("dict");
    let l = manager
        .list_from(&(0..10).map(Py::Int).collect::<Vec<_>>())
        .expect("list");

    let mut p = Process::new(f, (d.clone(), l.clone()));
    p.start().expect("start");
    p.join().expect("join");

    let items = d.items().expect("items");
    let shown: Vec<String> = items.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    println!("{{{}}}", shown.join(", "));
    println!("{}", Py::List(l.copy().expect("copy")));
}
