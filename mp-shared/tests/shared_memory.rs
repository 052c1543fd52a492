//! Integration tests for `SharedMemory`: create, attach, read and write across processes under
//! every start method, name checks and typed errors, `unlink`, and handle transfer. Every test
//! unlinks what it creates (or leaves it to the tracker and checks `/dev/shm`).
//!
//! Ported in spirit from CPython's `Lib/test/_test_multiprocessing.py`,
//! `_TestSharedMemory` (`test_shared_memory_basics`: create, attach by name, write through one
//! and read through the other, `FileExistsError` on a taken name, `FileNotFoundError` after
//! unlink, a random name when none is given; `test_shared_memory_across_processes`: a child
//! attaches by name and writes).

use std::sync::atomic::Ordering;

use mp_core::{pipe, Connection};
use mp_shared::{Error, SharedMemory};
use mp_testkit::{in_dev_shm, recv, start, unique_name, vanishes, CLEANUP, METHODS};

#[test]
fn basics() {
    let name = unique_name("basics");
    let shm = SharedMemory::create(Some(&name), 512).unwrap();
    assert_eq!(shm.name(), name);
    assert_eq!(shm.size(), 512);
    assert!(in_dev_shm(&name));
    assert!(shm.to_vec().iter().all(|&b| b == 0));

    shm.buf()[0].store(22, Ordering::Relaxed);
    shm.write_at(1, &[33, 44, 55]).unwrap();
    let also = SharedMemory::attach(&format!("/{name}")).unwrap();
    assert_eq!(also.name(), name);
    assert_eq!(also.size(), 512);
    let mut out = [0u8; 4];
    also.read_at(0, &mut out).unwrap();
    assert_eq!(out, [22, 33, 44, 55]);
    assert_eq!(also.buf()[3].load(Ordering::Relaxed), 55);
    // SAFETY: no other thread or process touches this segment while the slice lives.
    let plain = unsafe { also.as_slice() };
    assert_eq!(&plain[..4], &[22, 33, 44, 55]);

    assert!(matches!(
        SharedMemory::create(Some(&name), 8),
        Err(Error::Exists(n)) if n == name
    ));
    shm.unlink().unwrap();
    assert!(!in_dev_shm(&name));
    assert!(matches!(
        SharedMemory::attach(&name),
        Err(Error::NotFound(_))
    ));
    assert!(shm.unlink().unwrap_err().is_not_found());
    // The memory lives on in the handles.
    assert_eq!(shm.buf()[0].load(Ordering::Relaxed), 22);
    shm.close();
    also.close();
}

#[test]
fn random_names_look_like_pythons() {
    let a = SharedMemory::create(None, 1).unwrap();
    let b = SharedMemory::create(None, 1).unwrap();
    for shm in [&a, &b] {
        let hex = shm.name().strip_prefix("psm_").expect("psm_ prefix");
        assert_eq!(hex.len(), 8, "{}", shm.name());
        assert!(hex.bytes().all(|c| c.is_ascii_hexdigit()), "{}", shm.name());
        assert!(in_dev_shm(shm.name()));
    }
    assert_ne!(a.name(), b.name());
    a.unlink().unwrap();
    b.unlink().unwrap();
}

#[test]
fn bad_names_and_sizes_are_typed_errors() {
    for bad in ["", "/", "a/b", "/a/b", ".", "..", "nul\0byte"] {
        assert!(
            matches!(
                SharedMemory::create(Some(bad), 8),
                Err(Error::InvalidName { .. })
            ),
            "{bad:?}"
        );
        assert!(
            matches!(SharedMemory::attach(bad), Err(Error::InvalidName { .. })),
            "{bad:?}"
        );
    }
    let long = "x".repeat(mp_shared::MAX_NAME_LEN + 1);
    assert!(matches!(
        SharedMemory::create(Some(&long), 8),
        Err(Error::InvalidName { .. })
    ));
    assert!(matches!(
        SharedMemory::create(None, 0),
        Err(Error::InvalidArgument(_))
    ));
    assert!(SharedMemory::attach(&unique_name("missing"))
        .unwrap_err()
        .is_not_found());

    // The longest name works.
    let longest = format!("{}{}", unique_name("l"), "y".repeat(300));
    let longest = &longest[..mp_shared::MAX_NAME_LEN];
    let shm = SharedMemory::create(Some(longest), 8).unwrap();
    shm.unlink().unwrap();
}

#[test]
fn ranges_are_checked() {
    let shm = SharedMemory::create(None, 10).unwrap();
    assert!(shm.write_at(8, &[1, 2, 3]).unwrap_err().is_out_of_range());
    assert!(shm
        .read_at(usize::MAX, &mut [0])
        .unwrap_err()
        .is_out_of_range());
    shm.write_at(7, &[1, 2, 3]).unwrap();
    shm.write_at(10, &[]).unwrap();
    assert_eq!(&shm.to_vec()[7..], &[1, 2, 3]);
    shm.unlink().unwrap();
}

/// Attaches by name, checks the parent's bytes, writes its own, and leaves (without unlink).
fn attach_and_write(name: String) -> Vec<u8> {
    let shm = SharedMemory::attach(&name).unwrap();
    let mut seen = vec![0u8; 5];
    shm.read_at(0, &mut seen).unwrap();
    shm.write_at(5, b"child").unwrap();
    seen
}

#[test]
fn child_attaches_by_name_under_every_start_method() {
    for m in METHODS {
        let shm = SharedMemory::create(None, 64).unwrap();
        shm.write_at(0, b"hello").unwrap();
        let p = start(m, attach_and_write, shm.name().to_string());
        assert_eq!(p.finish(), b"hello", "{m}");
        let mut out = [0u8; 10];
        shm.read_at(0, &mut out).unwrap();
        assert_eq!(&out, b"hellochild", "{m}");
        // The child attached and left: the segment is still there (CPython gh-82300).
        assert!(in_dev_shm(shm.name()), "{m}");
        shm.unlink().unwrap();
    }
}

/// Receives a segment as a handle and writes into it.
fn write_received(mut conn: Connection) {
    let shm: SharedMemory = conn.recv().unwrap();
    shm.write_at(0, shm.name().as_bytes()).unwrap();
    conn.send(&shm.size()).unwrap();
}

#[test]
fn sent_as_a_handle_over_a_connection() {
    for m in METHODS {
        let (mut ours, theirs) = pipe(true).unwrap();
        let p = start(m, write_received, theirs);
        let shm = SharedMemory::create(None, 32).unwrap();
        let name = shm.name().to_string();
        ours.send(&shm).unwrap();
        assert_eq!(recv::<usize>(&mut ours), 32, "{m}");
        let mut out = vec![0u8; name.len()];
        shm.read_at(0, &mut out).unwrap();
        assert_eq!(out, name.as_bytes(), "{m}");
        p.finish();
        drop(shm);
        // Tracked, unused by anyone now: the tracker unlinks it.
        assert!(vanishes(&name, CLEANUP), "{m}: {name} still in /dev/shm");
    }
}

/// Uses a segment passed as an argument.
fn fill(shm: SharedMemory) {
    for b in shm.buf() {
        b.store(0xab, Ordering::Relaxed);
    }
}

#[test]
fn passed_as_an_argument() {
    for m in METHODS {
        let shm = SharedMemory::create(None, 100).unwrap();
        let name = shm.name().to_string();
        let theirs = SharedMemory::attach(&name).unwrap();
        let p = start(m, fill, theirs);
        p.finish();
        assert!(shm.to_vec().iter().all(|&b| b == 0xab), "{m}");
        shm.unlink().unwrap();
    }
}

#[test]
fn untracked_segments_stay_until_unlinked() {
    let name = unique_name("untracked");
    let shm = SharedMemory::options()
        .track(false)
        .mode(0o640)
        .create(Some(&name), 8)
        .unwrap();
    shm.close();
    std::thread::sleep(std::time::Duration::from_millis(100));
    let again = SharedMemory::attach(&name).unwrap();
    again.unlink().unwrap();
    assert!(!in_dev_shm(&name));
}
