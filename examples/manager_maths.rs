//! Python's custom manager example: a `MathsClass` registered on a manager, called through its
//! proxy.
//!
//! ```python
//! from multiprocessing.managers import BaseManager
//!
//! class MathsClass:
//!     def add(self, x, y):
//!         return x + y
//!     def mul(self, x, y):
//!         return x * y
//!
//! class MyManager(BaseManager):
//!     pass
//!
//! MyManager.register('Maths', MathsClass)
//!
//! if __name__ == '__main__':
//!     with MyManager() as manager:
//!         maths = manager.Maths()
//!         print(maths.add(4, 3))         # prints 7
//!         print(maths.mul(7, 8))         # prints 56
//! ```

use multiprocessing::managers::{exposed, Manager};

#[derive(Default)]
struct MathsClass;

impl MathsClass {
    fn add(&mut self, x: i64, y: i64) -> i64 {
        x + y
    }
    fn mul(&mut self, x: i64, y: i64) -> i64 {
        x * y
    }
}

// The methods proxies may call, and the proxy type: `MyManager.register('Maths', MathsClass)`.
exposed! {
    impl MathsClass as MathsProxy {
        fn add(&mut self, x: i64, y: i64) -> i64;
        fn mul(&mut self, x: i64, y: i64) -> i64;
    }
}

/// Runs the example.
pub fn main() {
    let manager = Manager::builder()
        .register::<MathsClass>()
        .start()
        .expect("manager");
    let maths: MathsProxy = manager.create().expect("Maths()");
    println!("{}", maths.add(4, 3).expect("add"));
    println!("{}", maths.mul(7, 8).expect("mul"));
}
