//! Regression tests for bugs found in review: each is named after what broke.

use std::time::Duration;

use mp_core::codec::Bytes;
use mp_queue::{Error, Queue, QueueSizes};
use serde::ser::Error as _;
use serde::{Serialize, Serializer};

const WAIT: Duration = Duration::from_secs(10);

/// Panics while it is being serialized.
struct Explosive;

impl Serialize for Explosive {
    fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        panic!("boom in Serialize");
    }
}

/// Fails (without panicking) while it is being serialized.
struct Refuses;

impl Serialize for Refuses {
    fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(S::Error::custom("nope"))
    }
}

impl<'de> serde::Deserialize<'de> for Explosive {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <()>::deserialize(d).map(|()| Explosive)
    }
}

impl<'de> serde::Deserialize<'de> for Refuses {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <()>::deserialize(d).map(|()| Refuses)
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
enum Item {
    Number(u64),
    Explosive(Explosive),
    Refuses(Refuses),
}

#[test]
fn a_panicking_serialize_left_the_put_lock_held() {
    let q: Queue<Item> = Queue::new().unwrap();
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = q.put(Item::Explosive(Explosive));
    }));
    assert!(panicked.is_err());
    assert!(matches!(
        q.put(Item::Refuses(Refuses)),
        Err(Error::Codec(_))
    ));
    q.put_timeout(Item::Number(7), WAIT).unwrap();
    q.put_nowait(Item::Number(8)).unwrap();
    assert_eq!(q.qsize(), 2);
}

#[test]
fn a_panicking_deserialize_left_the_get_lock_held_and_the_item_in_place() {
    #[derive(Debug)]
    struct Fragile;
    impl Serialize for Fragile {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_unit()
        }
    }
    impl<'de> serde::Deserialize<'de> for Fragile {
        fn deserialize<D: serde::Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
            panic!("boom in Deserialize");
        }
    }
    let q: Queue<u64> = Queue::new().unwrap();
    q.put(1).unwrap();
    q.put(2).unwrap();
    // The same ring seen with another item type.
    let fragile: Queue<Fragile> = retyped(&q);
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = fragile.get_timeout(WAIT);
    }));
    assert!(panicked.is_err());
    // The item that made it panic was consumed; the queue goes on.
    assert_eq!(q.get_timeout(WAIT).unwrap(), 2);
    assert!(q.empty());
}

/// A handle to the same queue with another item type, through a transfer over a pipe.
fn retyped<A, B>(q: &Queue<A>) -> Queue<B> {
    let (mut a, mut b) = mp_core::pipe(true).unwrap();
    a.send(q).unwrap();
    assert!(b.poll_timeout(WAIT).unwrap());
    b.recv().unwrap()
}

#[test]
fn too_large_for_an_item_that_fits_once_the_head_is_back_at_zero() {
    let sizes = QueueSizes {
        capacity: 64 << 10,
        resident: 64 << 10,
    };
    let q: Queue<Bytes> = Queue::with_sizes(0, sizes).unwrap();
    // Move the head to the middle of the area, then empty the queue.
    q.put(Bytes(vec![1; 32_000])).unwrap();
    assert_eq!(q.get_timeout(WAIT).unwrap().0.len(), 32_000);
    // Neither the rest of the area nor its start holds 40 000 bytes in one piece, but the
    // whole area does.
    q.put_timeout(Bytes(vec![2; 40_000]), WAIT).unwrap();
    assert_eq!(q.get_timeout(WAIT).unwrap().0, vec![2; 40_000]);
    // And once more, from wherever the head is now.
    q.put_nowait(Bytes(vec![3; 60_000])).unwrap();
    assert_eq!(q.get_timeout(WAIT).unwrap().0, vec![3; 60_000]);
    // What can never fit is refused at once, also behind other items.
    q.put(Bytes(vec![4; 10])).unwrap();
    assert!(matches!(
        q.put_nowait(Bytes(vec![5; 70_000])),
        Err(Error::TooLarge { .. })
    ));
    assert_eq!(q.get_timeout(WAIT).unwrap().0, vec![4; 10]);
}
