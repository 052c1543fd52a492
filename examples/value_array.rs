//! Python's shared-memory example: a child writes a `Value` and negates an `Array`, and the
//! parent sees both.
//!
//! ```python
//! from multiprocessing import Process, Value, Array
//!
//! def f(n, a):
//!     n.value = 3.1415927
//!     for i in range(len(a)):
//!         a[i] = -a[i]
//!
//! if __name__ == '__main__':
//!     num = Value('d', 0.0)
//!     arr = Array('i', range(10))
//!
//!     p = Process(target=f, args=(num, arr))
//!     p.start()
//!     p.join()
//!
//!     print(num.value)
//!     print(arr[:])
//! ```
//!
//! prints
//!
//! ```text
//! 3.1415927
//! [0, -1, -2, -3, -4, -5, -6, -7, -8, -9]
//! ```

use multiprocessing::Process;
use multiprocessing::{Array, Value};

// `Value('d', ...)` is a `Value<f64>`, `Array('i', ...)` an `Array<i32>`: handles to shared
// memory, which the child receives as arguments under any start method.
fn f((n, a): (Value<f64>, Array<i32>)) {
    // Python's example writes this literal, not math.pi.
    #[allow(clippy::approx_constant)]
    n.set(3.1415927).expect("set");
    for i in 0..a.len() {
        let x = a.get(i).expect("get");
        a.set(i, -x).expect("set");
    }
}

/// Runs the example.
pub fn main() {
    let num = Value::new(0.0f64).expect("value");
    let arr = Array::from_slice(&(0..10).collect::<Vec<i32>>()).expect("array");

    let mut p = Process::new(f, (num.clone(), arr.clone()));
    p.start().expect("start");
    p.join().expect("join");

    println!("{}", num.get().expect("get"));
    println!("{:?}", arr.to_vec().expect("to_vec"));
}
