//! Python's "feed tasks to workers through queues, collect results" example.
//!
//! ```python
//! def worker(input, output):
//!     for func, args in iter(input.get, 'STOP'):
//!         result = calculate(func, args)
//!         output.put(result)
//!
//! def calculate(func, args):
//!     result = func(*args)
//!     return '%s says that %s%s = %s' % \
//!         (current_process().name, func.__name__, args, result)
//!
//! def mul(a, b):
//!     return a * b
//!
//! def plus(a, b):
//!     return a + b
//!
//! def test():
//!     NUMBER_OF_PROCESSES = 4
//!     TASKS1 = [(mul, (i, 7)) for i in range(20)]
//!     TASKS2 = [(plus, (i, 8)) for i in range(10)]
//!     task_queue = Queue()
//!     done_queue = Queue()
//!     for task in TASKS1:
//!         task_queue.put(task)
//!     for i in range(NUMBER_OF_PROCESSES):
//!         Process(target=worker, args=(task_queue, done_queue)).start()
//!     print('Unordered results:')
//!     for i in range(len(TASKS1)):
//!         print('\t', done_queue.get())
//!     for task in TASKS2:
//!         task_queue.put(task)
//!     for i in range(len(TASKS2)):
//!         print('\t', done_queue.get())
//!     for i in range(NUMBER_OF_PROCESSES):
//!         task_queue.put('STOP')
//! ```
//!
//! In Rust a task names its function with an enum: functions themselves do not go through
//! queues (they cross into children as arguments, see `multiprocessing::Function`).

use multiprocessing::{current_process, Process, Queue};
use serde::{Deserialize, Serialize};

/// A task: the function to call and its arguments, or `Stop`.
#[derive(Debug, Serialize, Deserialize)]
pub enum Task {
    /// `mul(a, b)`.
    Mul(i64, i64),
    /// `plus(a, b)`.
    Plus(i64, i64),
    /// The sentinel `'STOP'`.
    Stop,
}

fn calculate(task: &Task) -> String {
    let (name, a, b, result) = match *task {
        Task::Mul(a, b) => ("mul", a, b, a * b),
        Task::Plus(a, b) => ("plus", a, b, a + b),
        Task::Stop => return String::new(),
    };
    format!(
        "{} says that {name}({a}, {b}) = {result}",
        current_process().get_name()
    )
}

fn worker((input, output): (Queue<Task>, Queue<String>)) {
    loop {
        match input.get().expect("get") {
            Task::Stop => break,
            task => output.put(calculate(&task)).expect("put"),
        }
    }
}

/// Runs the example.
pub fn main() {
    const NUMBER_OF_PROCESSES: usize = 4;
    let tasks1: Vec<Task> = (0..20).map(|i| Task::Mul(i, 7)).collect();
    let tasks2: Vec<Task> = (0..10).map(|i| Task::Plus(i, 8)).collect();
    let task_queue = Queue::new().expect("queue");
    let done_queue = Queue::new().expect("queue");
    for task in &tasks1 {
        task_queue.put(task).expect("put");
    }
    let mut workers = Vec::new();
    for _ in 0..NUMBER_OF_PROCESSES {
        let mut p = Process::new(worker, (task_queue.clone(), done_queue.clone()));
        p.start().expect("start");
        workers.push(p);
    }
    println!("Unordered results:");
    for _ in 0..tasks1.len() {
        println!("\t {}", done_queue.get().expect("get"));
    }
    for task in &tasks2 {
        task_queue.put(task).expect("put");
    }
    for _ in 0..tasks2.len() {
        println!("\t {}", done_queue.get().expect("get"));
    }
    for _ in 0..NUMBER_OF_PROCESSES {
        task_queue.put(Task::Stop).expect("put");
    }
    for p in workers {
        p.join().expect("join");
    }
}
