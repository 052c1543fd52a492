//! Integration tests for `ShareableList`: every item kind, Python's indexing, `set` and its
//! type changes, `count`/`index`/`format`, children under every start method, byte-for-byte
//! interoperation with CPython (`python3`, attached both ways), and corrupt segments. Every
//! test unlinks what it creates and checks that `/dev/shm` no longer has it.
//!
//! Ported in spirit from CPython's `Lib/test/_test_multiprocessing.py`, `_TestSharedMemory`
//! (`test_shared_memory_ShareableList_basics`: the item kinds, `format`, `count`, `index`,
//! negative indexes, the `ValueError` of an oversize str, type changes;
//! `test_shared_memory_ShareableList_pickling`: a list passed to another process).
//!
//! The CPython tests run the interpreter `python3` (and any listed, space-separated, in
//! `MP_SHAREABLE_LIST_PYTHONS`, e.g. `/root/.pyenv/versions/3.13.0/bin/python3`); they pass
//! with a note when there is none.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use mp_core::{pipe, Connection};
use mp_shared::{Error, Item, ShareableList, SharedMemory};
use mp_testkit::{in_dev_shm, recv, start, unique_name, within, Rng, METHODS};

/// Unlinks the list's segment and checks that it is gone from `/dev/shm`.
fn unlink(sl: &ShareableList) {
    sl.shm().unlink().unwrap();
    assert!(!in_dev_shm(sl.name()), "{} still in /dev/shm", sl.name());
}

/// Python's `repr(list)` of the items.
fn repr(items: &[Item]) -> String {
    let items: Vec<String> = items.iter().map(Item::to_string).collect();
    format!("[{}]", items.join(", "))
}

/// One of every kind, as CPython's basics test has.
fn every_kind() -> Vec<Item> {
    vec![
        "howdy".into(),
        b"HoWdY".into(),
        (-273.154).into(),
        100.into(),
        Item::None,
        true.into(),
        42.into(),
        false.into(),
        "".into(),
        b"by\x00tes".into(),
        "exactly8".into(),
        i64::MIN.into(),
        "é and ✓".into(),
    ]
}

#[test]
fn round_trip_of_every_item_kind() {
    let items = every_kind();
    let sl = ShareableList::new(items.clone()).unwrap();
    assert_eq!(sl.len(), items.len());
    assert!(!sl.is_empty());
    assert!(sl.name().starts_with("psm_"));
    assert_eq!(sl.to_vec().unwrap(), items);
    for (i, item) in items.iter().enumerate() {
        assert_eq!(&sl.get(i as isize).unwrap(), item, "{i}");
        let back = i as isize - items.len() as isize;
        assert_eq!(&sl.get(back).unwrap(), item, "{back}");
    }
    // CPython gives the same but "8s" for the last item: it sizes a str by its 7 characters,
    // then truncates its 10 utf-8 bytes to 8 and cannot decode them again.
    assert_eq!(
        sl.format().unwrap(),
        "8s8sdqxxxxxx?xxxxxxxx?qxxxxxxx?8s8s16sq16s"
    );
    let other = ShareableList::attach(sl.name()).unwrap();
    assert_eq!(other.to_vec().unwrap(), items);
    let clone = sl.clone();
    assert_eq!(clone.name(), sl.name());
    unlink(&sl);

    let empty = ShareableList::new(Vec::<Item>::new()).unwrap();
    assert!(empty.is_empty());
    assert_eq!(empty.shm().size(), 16);
    assert_eq!(empty.to_vec().unwrap(), []);
    assert_eq!(empty.format().unwrap(), "");
    assert!(empty.get(0).unwrap_err().is_out_of_range());
    unlink(&empty);
}

#[test]
fn trailing_nuls_are_stripped_as_cpython_does() {
    let sl = ShareableList::new([Item::from("a\0\0"), b"b\0".into(), "\0c".into()]).unwrap();
    assert_eq!(
        sl.to_vec().unwrap(),
        [Item::from("a"), b"b".into(), "\0c".into()]
    );
    unlink(&sl);
}

#[test]
fn named_lists_and_taken_names() {
    let name = unique_name("named");
    let sl = ShareableList::with_name(&name, [1, 2, 3]).unwrap();
    assert_eq!(sl.name(), name);
    assert!(in_dev_shm(&name));
    assert!(matches!(
        ShareableList::with_name(&name, [1]),
        Err(Error::Exists(n)) if n == name
    ));
    unlink(&sl);
    assert!(ShareableList::attach(&name).unwrap_err().is_not_found());
}

#[test]
fn from_shared_memory_lays_out_a_list_in_a_given_segment() {
    let items = [Item::from(7), "seven".into()];
    let need = ShareableList::size_for(&items).unwrap();
    assert_eq!(need, 4 * 8 + 16 + 2 * 9);
    // Untracked: the tracker would unlink it as soon as the failed call drops it.
    let small = SharedMemory::options()
        .track(false)
        .create(None, need - 1)
        .unwrap();
    let small_name = small.name().to_string();
    assert!(matches!(
        ShareableList::from_shared_memory(small, items.clone()),
        Err(Error::InvalidArgument(_))
    ));
    SharedMemory::attach(&small_name).unwrap().unlink().unwrap();

    let shm = SharedMemory::options()
        .track(false)
        .create(None, 4096)
        .unwrap();
    shm.write_at(0, &[0xee; 4096]).unwrap();
    let sl = ShareableList::from_shared_memory(shm, items.clone()).unwrap();
    assert_eq!(sl.to_vec().unwrap(), items);
    assert_eq!(
        ShareableList::attach(sl.name()).unwrap().to_vec().unwrap(),
        items
    );
    unlink(&sl);
}

#[test]
fn out_of_range_indexes_are_typed_errors() {
    let sl = ShareableList::new([1, 2, 3]).unwrap();
    for index in [3, 4, -4, -5, isize::MAX, isize::MIN] {
        let e = sl.get(index).unwrap_err();
        assert!(
            matches!(e, Error::ListIndexOutOfRange { index: i, len: 3 } if i == index),
            "{index}: {e:?}"
        );
        assert!(e.is_out_of_range());
        assert!(sl.set(index, 0).unwrap_err().is_out_of_range(), "{index}");
    }
    assert_eq!(sl.to_vec().unwrap(), [Item::Int(1), 2.into(), 3.into()]);
    assert_eq!(
        sl.get(9).unwrap_err().to_string(),
        "index 9 out of range for a shareable list of length 3"
    );
    unlink(&sl);
}

#[test]
fn oversize_str_and_bytes_are_refused() {
    let sl = ShareableList::new([Item::from("hello"), b"bytes".into(), 5.into()]).unwrap();
    // Slots: 8, 8 and 8 bytes.
    let e = sl.set(0, "nine byte").unwrap_err();
    assert!(
        matches!(
            e,
            Error::ExceedsStorage {
                index: 0,
                len: 9,
                capacity: 8
            }
        ),
        "{e:?}"
    );
    assert!(matches!(
        sl.set(-2, vec![1u8; 9]),
        Err(Error::ExceedsStorage { index: 1, .. })
    ));
    assert!(matches!(
        sl.set(2, "123456789"),
        Err(Error::ExceedsStorage { index: 2, .. })
    ));
    // "é" is 2 bytes: 5 of them do not fit 8 bytes.
    assert!(matches!(
        sl.set(0, "ééééé"),
        Err(Error::ExceedsStorage { len: 10, .. })
    ));
    // Nothing was written.
    assert_eq!(
        sl.to_vec().unwrap(),
        [Item::from("hello"), b"bytes".into(), 5.into()]
    );
    assert_eq!(sl.format().unwrap(), "8s8sq");
    // Exactly the slot's size fits (no NUL left: the slot ends the str).
    sl.set(0, "12345678").unwrap();
    assert_eq!(sl.get(0).unwrap(), Item::from("12345678"));
    unlink(&sl);
}

#[test]
fn str_and_bytes_longer_than_a_format_allows_are_refused_at_creation() {
    let big = vec![b'x'; 9_999_992];
    assert!(matches!(
        ShareableList::new([Item::Bytes(big)]),
        Err(Error::InvalidArgument(_))
    ));
    let fits = vec![b'x'; 9_999_991];
    let sl = ShareableList::new([Item::Bytes(fits.clone())]).unwrap();
    assert_eq!(sl.format().unwrap(), "9999992s");
    assert_eq!(sl.get(0).unwrap(), Item::Bytes(fits));
    unlink(&sl);
}

#[test]
fn set_changes_types_as_cpython_does() {
    let sl = ShareableList::new([
        Item::from(1),
        "a longer string".into(),
        2.5.into(),
        Item::None,
    ])
    .unwrap();
    assert_eq!(sl.format().unwrap(), "q16sdxxxxxx?x");
    sl.set(0, 1.5).unwrap(); // int -> float
    sl.set(1, "short").unwrap(); // str -> shorter str, keeps 16s
    sl.set(2, true).unwrap(); // float -> bool
    sl.set(3, 7).unwrap(); // None -> int
    assert_eq!(
        sl.to_vec().unwrap(),
        [Item::Float(1.5), "short".into(), true.into(), 7.into()]
    );
    assert_eq!(sl.format().unwrap(), "d16sxxxxxxx?q");

    sl.set(0, "str").unwrap(); // float -> str: the slot's 8 bytes
    sl.set(1, 3).unwrap(); // str -> int
    sl.set(2, ()).unwrap(); // bool -> None
    sl.set(3, b"b".as_slice()).unwrap(); // int -> bytes
    assert_eq!(
        sl.to_vec().unwrap(),
        [Item::from("str"), 3.into(), Item::None, b"b".into()]
    );
    assert_eq!(sl.format().unwrap(), "8sqxxxxxx?x8s");

    sl.set(1, "back to a str").unwrap(); // int -> str: the slot's 16 bytes
    sl.set(0, b"bytes".to_vec()).unwrap(); // str -> bytes, keeps 8s
    sl.set(-1, false).unwrap();
    assert_eq!(
        sl.to_vec().unwrap(),
        [
            Item::from(b"bytes"),
            "back to a str".into(),
            Item::None,
            false.into()
        ]
    );
    assert_eq!(sl.format().unwrap(), "8s16sxxxxxx?xxxxxxxx?");
    unlink(&sl);
}

#[test]
fn count_and_index_compare_as_python() {
    let sl = ShareableList::new([
        Item::from(1),
        true.into(),
        1.0.into(),
        "a".into(),
        b"a".into(),
        Item::None,
        f64::NAN.into(),
        "a".into(),
    ])
    .unwrap();
    assert_eq!(sl.count(&Item::Int(1)).unwrap(), 3);
    assert_eq!(sl.count(&Item::Bool(true)).unwrap(), 3);
    assert_eq!(sl.count(&"a".into()).unwrap(), 2);
    assert_eq!(sl.count(&b"a".into()).unwrap(), 1);
    assert_eq!(sl.count(&Item::None).unwrap(), 1);
    assert_eq!(sl.count(&f64::NAN.into()).unwrap(), 0);
    assert_eq!(sl.count(&Item::Int(2)).unwrap(), 0);
    assert_eq!(sl.index(&Item::Float(1.0)).unwrap(), 0);
    assert_eq!(sl.index(&"a".into()).unwrap(), 3);
    assert_eq!(sl.index(&b"a".into()).unwrap(), 4);
    assert_eq!(sl.index(&Item::None).unwrap(), 5);
    let e = sl.index(&"missing".into()).unwrap_err();
    assert!(
        matches!(&e, Error::NotInList(v) if v == "'missing'"),
        "{e:?}"
    );
    assert_eq!(e.to_string(), "'missing' is not in the shareable list");
    unlink(&sl);
}

#[test]
fn handles_are_clone_send_sync_and_threads_share_them() {
    fn is<T: Clone + Send + Sync + 'static>() {}
    is::<ShareableList>();
    let sl = ShareableList::new([0, 0, 0, 0]).unwrap();
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let sl = sl.clone();
            std::thread::spawn(move || sl.set(i, i as i64 * 10).unwrap())
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(
        sl.to_vec().unwrap(),
        [Item::Int(0), 10.into(), 20.into(), 30.into()]
    );
    unlink(&sl);
}

/// Edits a list: what it saw first, as Python's repr.
fn edit(sl: &ShareableList) -> String {
    let seen = repr(&sl.to_vec().unwrap());
    sl.set(0, 99).unwrap();
    sl.set(-1, "child").unwrap();
    sl.set(1, ()).unwrap();
    seen
}

fn edit_passed(sl: ShareableList) -> String {
    edit(&sl)
}

fn edit_by_name(name: String) -> String {
    edit(&ShareableList::attach(&name).unwrap())
}

fn edit_received(mut conn: Connection) {
    let sl: ShareableList = conn.recv().unwrap();
    let seen = edit(&sl);
    conn.send(&seen).unwrap();
}

fn fresh() -> ShareableList {
    ShareableList::new([Item::from(1), 2.5.into(), "parent".into()]).unwrap()
}

fn edited() -> Vec<Item> {
    vec![Item::Int(99), Item::None, "child".into()]
}

#[test]
fn a_child_attaches_by_name_and_edits_under_every_start_method() {
    for m in METHODS {
        let sl = fresh();
        let p = start(m, edit_by_name, sl.name().to_string());
        assert_eq!(p.finish(), "[1, 2.5, 'parent']", "{m}");
        assert_eq!(sl.to_vec().unwrap(), edited(), "{m}");
        assert!(in_dev_shm(sl.name()), "{m}");
        unlink(&sl);
    }
}

#[test]
fn a_child_receives_the_list_as_an_argument_under_every_start_method() {
    for m in METHODS {
        let sl = fresh();
        let p = start(m, edit_passed, sl.clone());
        assert_eq!(p.finish(), "[1, 2.5, 'parent']", "{m}");
        assert_eq!(sl.to_vec().unwrap(), edited(), "{m}");
        unlink(&sl);
    }
}

#[test]
fn a_list_sent_over_a_connection_is_the_same_list() {
    for m in METHODS {
        let (mut ours, theirs) = pipe(true).unwrap();
        let p = start(m, edit_received, theirs);
        let sl = fresh();
        ours.send(&sl).unwrap();
        assert_eq!(recv::<String>(&mut ours), "[1, 2.5, 'parent']", "{m}");
        p.finish();
        assert_eq!(sl.to_vec().unwrap(), edited(), "{m}");
        unlink(&sl);
    }
}

// ---- CPython interoperation ----------------------------------------------------------------

/// The Python interpreters to test against: `python3` and `MP_SHAREABLE_LIST_PYTHONS`, those
/// that run and have `ShareableList`.
fn pythons() -> Vec<String> {
    let mut all = vec!["python3".to_string()];
    if let Ok(more) = std::env::var("MP_SHAREABLE_LIST_PYTHONS") {
        all.extend(more.split_whitespace().map(String::from));
    }
    let found: Vec<String> = all
        .into_iter()
        .filter(|py| {
            let py = py.clone();
            within("probing python", move || {
                Command::new(&py)
                    .args([
                        "-c",
                        "from multiprocessing.shared_memory import ShareableList",
                    ])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            })
        })
        .collect();
    if found.is_empty() {
        eprintln!("note: no python3 with multiprocessing.shared_memory; skipping");
    }
    found
}

/// The Python prelude of every script: `attach(name)` attaches without registering the
/// segment with Python's resource tracker (3.11 has no `track=`; unregistering keeps the
/// tracker from unlinking our segment or warning when the script ends).
const PRELUDE: &str = "\
import sys
from multiprocessing import resource_tracker
from multiprocessing.shared_memory import ShareableList
def attach(name):
    sl = ShareableList(name=name)
    resource_tracker.unregister(sl.shm._name, 'shared_memory')
    return sl
";

/// Runs `script` (after [`PRELUDE`]) with `args`; its stdout lines. Fails on a non-zero exit
/// or anything on stderr (a resource tracker warning).
fn run_python(py: &str, script: &str, args: &[&str]) -> Vec<String> {
    let mut cmd = Command::new(py);
    cmd.arg("-c").arg(format!("{PRELUDE}{script}")).args(args);
    let what = format!("{py} running {script:?}");
    let out = within(&what, move || cmd.output()).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.is_empty(),
        "{what}: {stderr}"
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

/// The items of the interop tests (ASCII, so that CPython sizes the slots as we do).
fn interop_items() -> Vec<Item> {
    vec![
        1.into(),
        (-2).into(),
        2.5.into(),
        true.into(),
        false.into(),
        Item::None,
        "hello".into(),
        b"by\x00tes".into(),
        "x".repeat(8).into(),
        "it's".into(),
        i64::MAX.into(),
        1e100.into(),
    ]
}

/// The Python literal of the interop items.
const INTEROP_LITERAL: &str =
    "[1, -2, 2.5, True, False, None, 'hello', b'by\\x00tes', 'x' * 8, \"it's\", 2**63 - 1, 1e100]";

#[test]
fn the_segment_is_byte_for_byte_cpythons() {
    for py in pythons() {
        let script = format!(
            "sl = ShareableList({INTEROP_LITERAL})
print(sl.format)
print(bytes(sl.shm.buf).hex())
sl[0] = 'ab'; sl[2] = 7; sl[6] = b'HI'; sl[5] = 3.25; sl[8] = None; sl[9] = 'x'
print(sl.format)
print(bytes(sl.shm.buf).hex())
print(repr(list(sl)))
sl.shm.unlink()
"
        );
        let lines = run_python(&py, &script, &[]);
        let sl = ShareableList::new(interop_items()).unwrap();
        let hex = |sl: &ShareableList| -> String {
            sl.shm()
                .to_vec()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        };
        assert_eq!(sl.format().unwrap(), lines[0], "{py}");
        assert_eq!(hex(&sl), lines[1], "{py}");
        assert_eq!(repr(&sl.to_vec().unwrap()), repr(&interop_items()));
        sl.set(0, "ab").unwrap();
        sl.set(2, 7).unwrap();
        sl.set(6, b"HI".as_slice()).unwrap();
        sl.set(5, 3.25).unwrap();
        sl.set(8, ()).unwrap();
        sl.set(9, "x").unwrap();
        assert_eq!(sl.format().unwrap(), lines[2], "{py}");
        assert_eq!(hex(&sl), lines[3], "{py}");
        assert_eq!(repr(&sl.to_vec().unwrap()), lines[4], "{py}");
        unlink(&sl);
    }
}

#[test]
fn python_attaches_to_a_list_made_here_and_writes_to_it() {
    for py in pythons() {
        let sl = ShareableList::new(interop_items()).unwrap();
        let format_before = sl.format().unwrap();
        let script = "sl = attach(sys.argv[1])
print(repr(list(sl)))
print(sl.format)
print(len(sl), sl.count(1), sl.index(None))
sl[0] = 'py'; sl[2] = 7; sl[6] = b'PY'; sl[5] = 3.25; sl[-1] = None
try:
    sl[7] = 'much too long'
except ValueError as e:
    print(e)
print(sl.format)
sl.shm.close()
";
        let lines = run_python(&py, script, &[sl.name()]);
        assert_eq!(lines[0], repr(&interop_items()), "{py}");
        assert_eq!(lines[1], format_before, "{py}");
        assert_eq!(lines[2], "12 2 5", "{py}");
        assert_eq!(lines[3], "bytes/str item exceeds available storage", "{py}");
        let mut expected = interop_items();
        expected[0] = "py".into();
        expected[2] = 7.into();
        expected[6] = b"PY".into();
        expected[5] = 3.25.into();
        expected[11] = Item::None;
        assert_eq!(sl.to_vec().unwrap(), expected, "{py}");
        assert_eq!(
            sl.format().unwrap(),
            "8sqqxxxxxxx?xxxxxxx?d8s8s16s8sqxxxxxx?x",
            "{py}"
        );
        assert_eq!(sl.format().unwrap(), lines[4], "{py}");
        // Python's resource tracker left it alone.
        assert!(in_dev_shm(sl.name()), "{py}");
        unlink(&sl);
    }
}

/// A Python process, killed if a test fails while it runs.
struct Python(std::process::Child);

impl Drop for Python {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_list_made_by_python_is_read_and_written_here() {
    for py in pythons() {
        // Python creates the list, gives up tracking it (the test unlinks it), says its name,
        // and waits for a line before reading it again.
        let script = format!(
            "sl = ShareableList({INTEROP_LITERAL})
resource_tracker.unregister(sl.shm._name, 'shared_memory')
print(sl.shm.name, flush=True)
sys.stdin.readline()
print(repr(list(sl)), flush=True)
print(sl.format, flush=True)
sl.shm.close()
"
        );
        let mut child = Python(
            Command::new(&py)
                .arg("-c")
                .arg(format!("{PRELUDE}{script}"))
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        );
        let stdout = child.0.stdout.take().unwrap();
        let (name, mut stdout) = within("python says the name", move || {
            let mut stdout = BufReader::new(stdout);
            let mut line = String::new();
            stdout.read_line(&mut line).unwrap();
            (line.trim().to_string(), stdout)
        });
        assert!(name.starts_with("psm_"), "{py}: {name:?}");
        let sl = ShareableList::attach(&name).unwrap();
        let copy = sl.to_vec().unwrap();
        assert_eq!(copy, interop_items(), "{py}");
        assert_eq!(sl.len(), 12);
        sl.set(1, "rust").unwrap();
        sl.set(3, 1.25).unwrap();
        sl.set(-2, false).unwrap();
        assert!(sl
            .set(6, "too long for 8")
            .unwrap_err()
            .to_string()
            .contains("exceeds"));

        let mut stdin = child.0.stdin.take().unwrap();
        stdin.write_all(b"go\n").unwrap();
        drop(stdin);
        let rest = within("python reads it again", move || {
            let mut rest = String::new();
            std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
            rest
        });
        let status = within("python ends", move || {
            let status = child.0.wait();
            let mut err = String::new();
            if let Some(mut e) = child.0.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            (status, err)
        });
        assert!(
            status.0.unwrap().success() && status.1.is_empty(),
            "{py}: {}",
            status.1
        );
        let lines: Vec<&str> = rest.lines().collect();
        let mut expected = interop_items();
        expected[1] = "rust".into();
        expected[3] = 1.25.into();
        expected[10] = false.into();
        assert_eq!(lines[0], repr(&expected), "{py}");
        assert_eq!(lines[1], sl.format().unwrap(), "{py}");
        assert!(in_dev_shm(&name), "{py}");
        unlink(&sl);
    }
}

// ---- corrupt segments ----------------------------------------------------------------------

/// A segment of `size` bytes starting with the `words`, made by hand.
fn segment(size: usize, words: &[i64]) -> SharedMemory {
    let shm = SharedMemory::create(None, size).unwrap();
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_ne_bytes()).collect();
    shm.write_at(0, &bytes).unwrap();
    shm
}

fn assert_corrupt<T: std::fmt::Debug>(what: &str, r: mp_shared::Result<T>) {
    match r {
        Err(e @ Error::CorruptList { .. }) => {
            assert!(e.is_corrupt());
            assert!(e
                .to_string()
                .contains("does not hold a valid shareable list"));
        }
        other => panic!("{what}: expected CorruptList, got {other:?}"),
    }
}

#[test]
fn corrupt_headers_are_typed_errors() {
    let cases: &[(&str, usize, &[i64])] = &[
        ("a length of 2^60", 4096, &[1 << 60, 0, 8]),
        ("a length of i64::MAX", 4096, &[i64::MAX]),
        ("a negative length", 4096, &[-1]),
        ("a length just too large", 16 + 17 * 2 - 1, &[2, 0, 0, 0]),
        ("offsets beyond the end", 4096, &[2, 0, 8, 1 << 40]),
        ("offsets near usize::MAX", 4096, &[1, 0, i64::MAX]),
        ("a negative offset", 4096, &[2, 0, -8, 16]),
        ("decreasing offsets", 4096, &[2, 0, 16, 8]),
        ("data that leaves no room for the tables", 64, &[1, 0, 40]),
    ];
    for &(what, size, words) in cases {
        let shm = segment(size, words);
        let name = shm.name().to_string();
        assert_corrupt(what, ShareableList::attach(&name));
        shm.unlink().unwrap();
    }
    // Too small for a header at all.
    let tiny = SharedMemory::create(None, 8).unwrap();
    assert_corrupt("8 bytes", ShareableList::attach(tiny.name()));
    tiny.unlink().unwrap();
    // The smallest list: an empty one, in 16 bytes.
    let ok = segment(16, &[0, 0]);
    assert!(ShareableList::attach(ok.name()).unwrap().is_empty());
    ok.unlink().unwrap();
}

/// Writes `bytes` into item `i`'s format slot of `sl`.
fn poke_format(sl: &ShareableList, i: usize, bytes: &[u8]) {
    let n = sl.len();
    let data_end = {
        let mut w = [0u8; 8];
        sl.shm().read_at(8 * (n + 1), &mut w).unwrap();
        i64::from_ne_bytes(w) as usize
    };
    let mut slot = [0u8; 8];
    slot[..bytes.len()].copy_from_slice(bytes);
    sl.shm()
        .write_at((n + 2) * 8 + data_end + 8 * i, &slot)
        .unwrap();
}

/// Writes `code` as item `i`'s back-transform code.
fn poke_code(sl: &ShareableList, i: usize, code: u8) {
    let n = sl.len();
    let formats = sl.shm().size() - 9 * n;
    sl.shm().write_at(formats + 8 * n + i, &[code]).unwrap();
}

#[test]
fn corrupt_items_are_typed_errors() {
    let items = [Item::from(1), "str".into(), b"bytes".into(), 2.5.into()];
    let fresh = || ShareableList::new(items.clone()).unwrap();

    let sl = fresh();
    poke_format(&sl, 0, b"zz");
    let other = ShareableList::attach(sl.name()).unwrap(); // formats are not read on attach
    assert_corrupt("format zz", other.get(0));
    assert_corrupt("format zz", other.to_vec());
    assert_corrupt("format zz", other.count(&Item::None));
    assert_corrupt("format zz", other.index(&Item::None));
    assert_eq!(other.format().unwrap(), "zz8s8sd"); // as stored, as CPython's .format
    assert_eq!(other.get(1).unwrap(), Item::from("str"));
    other.set(0, 5).unwrap(); // a set repairs the slot
    assert_eq!(other.get(0).unwrap(), Item::Int(5));
    unlink(&sl);

    let sl = fresh();
    poke_format(&sl, 1, b"\xff\xfe");
    assert_corrupt("non-utf-8 format", sl.get(1));
    assert_corrupt("non-utf-8 format", sl.format());
    assert_corrupt("non-utf-8 format", sl.set(1, "s"));
    unlink(&sl);

    let sl = fresh();
    poke_format(&sl, 1, b"9999999s"); // runs far past the end of the segment
    assert_corrupt("huge format", sl.get(1));
    assert_corrupt("huge format", sl.set(1, "s"));
    poke_format(&sl, 1, b"zzs");
    assert_corrupt("bad s format", sl.set(1, "s"));
    unlink(&sl);

    let sl = fresh();
    poke_code(&sl, 0, 9);
    assert_corrupt("unknown code", sl.get(0));
    poke_code(&sl, 0, 0xff); // -1 as CPython's struct 'b'
    assert_corrupt("negative code", sl.get(0));
    poke_code(&sl, 0, 1); // a str code on a 'q' item
    assert_corrupt("str code on an int", sl.get(0));
    poke_code(&sl, 3, 3); // None's code on anything is None, as in CPython
    assert_eq!(sl.get(3).unwrap(), Item::None);
    poke_code(&sl, 2, 0); // CPython returns the raw bytes, NULs and all
    assert_eq!(sl.get(2).unwrap(), Item::Bytes(b"bytes\0\0\0".to_vec()));
    unlink(&sl);

    let sl = fresh();
    let str_at = (4 + 2) * 8 + 8;
    sl.shm().write_at(str_at, b"\xff\xfe\xfd").unwrap();
    assert_corrupt("non-utf-8 str", sl.get(1));
    unlink(&sl);
}

#[test]
fn garbage_never_panics() {
    let mut rng = Rng::new(0x5eed);
    let shm = SharedMemory::create(None, 512).unwrap();
    let name = shm.name().to_string();
    for round in 0..300 {
        let mut garbage = vec![0u8; 512];
        for b in garbage.iter_mut() {
            *b = rng.below(256) as u8;
        }
        // Mostly plausible headers, so that item reads are reached too.
        if round % 3 != 0 {
            let n = rng.below(6) as i64;
            garbage[..8].copy_from_slice(&n.to_ne_bytes());
            let mut off = 0i64;
            for i in 0..=n as usize {
                garbage[8 + 8 * i..16 + 8 * i].copy_from_slice(&off.to_ne_bytes());
                off += 8 * rng.below(4) as i64;
            }
        }
        shm.write_at(0, &garbage).unwrap();
        let Ok(sl) = ShareableList::attach(&name) else {
            continue;
        };
        let _ = sl.to_vec();
        let _ = sl.format();
        let _ = sl.count(&Item::Int(0));
        for i in -7..7 {
            let _ = sl.get(i);
            let _ = sl.set(i, "abc");
            let _ = sl.set(i, 1);
        }
    }
    shm.unlink().unwrap();
    assert!(!in_dev_shm(&name));
}
