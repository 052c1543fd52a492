//! `SharedMemoryManager`: segments made through it, by any process, are unlinked at its
//! shutdown, and after its server is killed.

use mp_connection::Address;
use mp_core::current_process;
use mp_manager::SharedMemoryManager;
use mp_shared::{Item, ShareableList, SharedMemory};
use mp_testkit::{in_dev_shm, start, vanishes, CLEANUP, LONG, METHODS};

/// A child's part: connects to the manager at `address`, makes a segment and a list through
/// it, closes both, and returns their names (its manager only connected: the server goes on).
fn make_in_child(address: String) -> (String, String) {
    let address: Address = address.parse().unwrap();
    let smm = SharedMemoryManager::connect(address, &current_process().get_authkey()).unwrap();
    let shm = smm.shared_memory(1000).unwrap();
    shm.write_at(0, b"from the child").unwrap();
    let sl = smm.shareable_list(["child", "list"]).unwrap();
    (shm.name().to_owned(), sl.name().to_owned())
}

#[test]
fn segments_made_through_it_by_any_process_live_until_its_shutdown_then_are_unlinked() {
    for method in METHODS {
        let mut smm =
            SharedMemoryManager::with_context(mp_core::get_context(Some(method))).unwrap();
        let shm = smm.shared_memory(4096).unwrap();
        shm.write_at(0, b"hello").unwrap();
        let sl = smm
            .shareable_list([Item::Int(1), "two".into(), 3.5.into()])
            .unwrap();
        let child = start(method, make_in_child, smm.address().to_string());
        let (child_shm, child_sl) = child.finish();
        let mut names = smm.segment_names().unwrap();
        names.sort();
        let mut expected = vec![
            shm.name().to_owned(),
            sl.name().to_owned(),
            child_shm.clone(),
            child_sl.clone(),
        ];
        expected.sort();
        assert_eq!(names, expected, "{method:?}");
        // The child closed its segments and exited: the server's attachment keeps them, as
        // CPython's keep theirs until the manager shuts down.
        let again = SharedMemory::attach(&child_shm).unwrap();
        let mut head = [0u8; 14];
        again.read_at(0, &mut head).unwrap();
        assert_eq!(&head, b"from the child");
        drop(again);
        assert_eq!(
            ShareableList::attach(&child_sl).unwrap().to_vec().unwrap(),
            [Item::from("child"), Item::from("list")]
        );
        for name in &expected {
            assert!(in_dev_shm(name), "{name} before the shutdown");
        }
        smm.shutdown().unwrap();
        for name in &expected {
            assert!(!in_dev_shm(name), "{name} after the shutdown ({method:?})");
        }
        // What this process still maps stays readable.
        let mut head = [0u8; 5];
        shm.read_at(0, &mut head).unwrap();
        assert_eq!(&head, b"hello");
        assert_eq!(sl.get(1).unwrap(), Item::from("two"));
    }
}

#[test]
fn dropping_it_unlinks_and_release_segment_unlinks_at_once() {
    let smm = SharedMemoryManager::new().unwrap();
    let a = smm.shared_memory(10).unwrap();
    let b = smm.shared_memory(10).unwrap();
    assert!(smm.release_segment(a.name()).unwrap());
    assert!(!in_dev_shm(a.name()));
    assert!(!smm.release_segment(a.name()).unwrap(), "released twice");
    assert_eq!(smm.segment_names().unwrap(), [b.name().to_owned()]);
    assert!(in_dev_shm(b.name()));
    drop(smm);
    assert!(!in_dev_shm(b.name()));
}

#[test]
fn a_connected_manager_dropped_leaves_the_server_serving() {
    let smm = SharedMemoryManager::new().unwrap();
    let other =
        SharedMemoryManager::connect(smm.address().clone(), &current_process().get_authkey())
            .unwrap();
    let shm = other.shared_memory(10).unwrap();
    drop(other);
    assert_eq!(smm.segment_names().unwrap(), [shm.name().to_owned()]);
    assert!(in_dev_shm(shm.name()));
    drop(smm);
    assert!(!in_dev_shm(shm.name()));
}

#[test]
fn after_its_server_is_killed_every_segment_is_unlinked() {
    for method in METHODS {
        let mut smm =
            SharedMemoryManager::with_context(mp_core::get_context(Some(method))).unwrap();
        let ours = smm.shared_memory(4096).unwrap();
        let list = smm.shareable_list([7i64]).unwrap();
        let (child_shm, child_sl) =
            start(method, make_in_child, smm.address().to_string()).finish();
        let pid = smm.manager().pid().unwrap();
        mp_testkit::kill_pid(pid);
        assert!(mp_testkit::ends_within(pid, LONG));
        // The child's segments: their last users (the child, the server) are gone, and the
        // resource tracker unlinks them.
        assert!(vanishes(&child_shm, CLEANUP), "{child_shm} ({method:?})");
        assert!(vanishes(&child_sl, CLEANUP), "{child_sl} ({method:?})");
        // Ours are still mapped here; the shutdown, which finds the server gone, unlinks them.
        assert!(in_dev_shm(ours.name()));
        let err = smm.shutdown().unwrap_err();
        assert!(err.is_server_gone(), "{err}");
        assert!(!in_dev_shm(ours.name()), "{method:?}");
        assert!(!in_dev_shm(list.name()), "{method:?}");
        ours.write_at(0, b"still mapped").unwrap();
        assert_eq!(list.get(0).unwrap(), Item::Int(7));
    }
}
