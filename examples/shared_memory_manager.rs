//! Python's `SharedMemoryManager` example: two processes each work on half of a
//! `ShareableList`, and the parent sums the partial results.
//!
//! ```python
//! from multiprocessing import Process
//! from multiprocessing.managers import SharedMemoryManager
//!
//! def do_work(sl, start, stop):
//!     for i in range(start, stop):
//!         sl[i] = sl[i] * 2
//!
//! if __name__ == '__main__':
//!     with SharedMemoryManager() as smm:
//!         sl = smm.ShareableList(range(2000))
//!         p1 = Process(target=do_work, args=(sl, 0, 1000))
//!         p2 = Process(target=do_work, args=(sl, 1000, 2000))
//!         p1.start(); p2.start()
//!         p1.join(); p2.join()
//!         print(sum(sl))
//!     # the list's segment is unlinked here
//! ```
//!
//! prints
//!
//! ```text
//! 3998000
//! ```

use multiprocessing::shared_memory::{Item, ShareableList};
use multiprocessing::{Process, SharedMemoryManager};

fn do_work((sl, start, stop): (ShareableList, isize, isize)) {
    for i in start..stop {
        if let Item::Int(x) = sl.get(i).expect("get") {
            sl.set(i, x * 2).expect("set");
        }
    }
}

/// Runs the example.
pub fn main() {
    let smm = SharedMemoryManager::new().expect("shared memory manager");
    let sl = smm.shareable_list(0..2000i64).expect("shareable list");
    let mut p1 = Process::new(do_work, (sl.clone(), 0, 1000));
    let mut p2 = Process::new(do_work, (sl.clone(), 1000, 2000));
    p1.start().expect("start");
    p2.start().expect("start");
    p1.join().expect("join");
    p2.join().expect("join");
    let total: i64 = sl
        .to_vec()
        .expect("to_vec")
        .iter()
        .map(|x| match x {
            Item::Int(x) => *x,
            _ => 0,
        })
        .sum();
    println!("{total}");
    let name = sl.name().to_owned();
    drop(smm); // Python's `with` block ends: the segment is unlinked
    println!(
        "after the manager: {name} attachable? {}",
        ShareableList::attach(&name).is_ok()
    );
}
