//! Who a process is: `Process-N` and `Process-N:M` names, the `name` builder,
//! `current_process()` and `parent_process()` in the parent and in a child, the authkey,
//! `active_children()` and `cpu_count()`.
//!
//! Ported in spirit from CPython's `Lib/test/_test_multiprocessing.py`: `_TestProcess`'s
//! `test_current`, `test_recursion` (the `Process-N:M` names), `test_parent_process_attributes`,
//! `test_active_children` and `test_cpu_count`.

use mp_core::{
    active_children, cpu_count, current_process, get_context, parent_process, pipe, Process,
    StartMethod,
};
use serde::{Deserialize, Serialize};

use mp_testkit::bodies::{return_unit, wait_for_go, whoami};
use mp_testkit::{join, join_result, our_pid, METHODS};

/// The number N of a name `Process-N` (None for any other shape).
fn process_number(name: &str) -> Option<u32> {
    name.strip_prefix("Process-")?.parse().ok()
}

fn my_name(_: ()) -> String {
    current_process().get_name()
}

/// A child's name and the names of the two children it creates, as the child sees them and as
/// each grandchild reports itself.
#[derive(Debug, Serialize, Deserialize)]
struct Family {
    me: String,
    identity: Vec<u32>,
    /// (name of the `Process` object, name the grandchild reported, its start method)
    children: Vec<(String, String, StartMethod)>,
}

fn raise_family(method: StartMethod) -> Family {
    let mut children = Vec::new();
    for m in [StartMethod::Fork, method] {
        let mut p = Process::new(my_name, ()).start_method(m);
        p.start().expect("grandchild start");
        let reported = join_result(&p).expect("grandchild result");
        children.push((p.get_name(), reported, m));
    }
    Family {
        me: current_process().get_name(),
        identity: current_process().identity(),
        children,
    }
}

#[test]
fn processes_of_the_main_process_are_named_process_n_in_order() {
    let a = Process::new(return_unit, ());
    let b = Process::new(return_unit, ());
    let na = process_number(&a.get_name()).unwrap_or_else(|| panic!("{:?}", a.get_name()));
    let nb = process_number(&b.get_name()).unwrap_or_else(|| panic!("{:?}", b.get_name()));
    assert!(nb > na, "{} then {}", a.get_name(), b.get_name());
}

#[test]
fn a_child_names_its_children_process_n_m() {
    for m in METHODS {
        let mut p = Process::new(raise_family, m).start_method(m);
        p.start().unwrap();
        let family = join_result(&p).unwrap_or_else(|e| panic!("{m}: {e}"));
        assert_eq!(family.me, p.get_name(), "{m}");
        let n = process_number(&family.me).unwrap_or_else(|| panic!("{m}: {family:?}"));
        assert_eq!(family.identity, vec![n], "{m}");
        for (i, (object_name, reported, gm)) in family.children.iter().enumerate() {
            let expected = format!("Process-{n}:{}", i + 1);
            assert_eq!(object_name, &expected, "{m} child, {gm} grandchild");
            assert_eq!(reported, &expected, "{m} child, {gm} grandchild");
        }
    }
}

#[test]
fn name_builder_sets_the_name() {
    for m in METHODS {
        let name = format!("worker under {m}");
        let mut p = Process::new(whoami, ()).name(name.clone()).start_method(m);
        assert_eq!(p.get_name(), name);
        p.start().unwrap();
        let me = join_result(&p).unwrap();
        assert_eq!(me.name, name, "{m}");
        // The identity still counts: a named child's children are Process-N:M.
        assert_eq!(me.identity.len(), 1, "{m}: {me:?}");
    }
    let p = Process::new(return_unit, ());
    p.set_name("renamed");
    assert_eq!(p.get_name(), "renamed");
}

#[test]
fn the_main_process_is_mainprocess_without_a_parent() {
    let cp = current_process();
    assert_eq!(cp.get_name(), "MainProcess");
    assert!(parent_process().is_none());
    assert_eq!(cp.pid(), std::process::id() as i32);
    assert!(cp.identity().is_empty());
    assert!(!cp.is_daemon());
    assert_eq!(cp.get_authkey().len(), 32);
}

#[test]
fn a_child_knows_itself_and_its_parent() {
    let ours = current_process().get_authkey();
    for m in METHODS {
        for daemon in [false, true] {
            let mut p = get_context(Some(m)).process(whoami, ()).daemon(daemon);
            assert_eq!(p.is_daemon(), daemon);
            assert_eq!(p.get_authkey(), ours, "{m}: Process.authkey before start");
            p.start().unwrap();
            let me = join_result(&p).unwrap_or_else(|e| panic!("{m}: {e}"));
            assert_eq!(me.name, p.get_name(), "{m}");
            assert_eq!(Some(me.pid), p.pid().unwrap(), "{m}");
            assert_eq!(me.daemon, daemon, "{m}");
            assert_eq!(me.authkey.len(), 32, "{m}");
            assert_eq!(me.authkey, ours, "{m}: the child's authkey");
            let (ppid, pname, palive) = me.parent.clone().expect("a child has a parent");
            assert_eq!(ppid, our_pid(), "{m}: parent_process().pid");
            assert_eq!(pname, "MainProcess", "{m}: parent_process().name");
            assert!(palive, "{m}: parent_process().is_alive()");
        }
    }
}

#[test]
fn authkey_builder_overrides_the_childs_key() {
    for m in METHODS {
        let key = format!("secret key for {m}").into_bytes();
        let mut p = Process::new(whoami, ())
            .authkey(key.clone())
            .start_method(m);
        assert_eq!(p.get_authkey(), key);
        p.start().unwrap();
        let me = join_result(&p).unwrap();
        assert_eq!(me.authkey, key, "{m}");
    }
}

#[test]
fn active_children_lists_running_children_only() {
    for m in METHODS {
        let (r, mut w) = pipe(false).unwrap();
        let mut p = Process::new(wait_for_go, r).start_method(m);
        p.start().unwrap();
        let pid = p.pid().unwrap();
        let listed = |pid| {
            active_children()
                .iter()
                .any(|c| c.pid().unwrap_or(None) == pid)
        };
        assert!(listed(pid), "{m}: a running child is not listed");
        w.send(&1u8).unwrap();
        assert_eq!(join(&p), 0);
        assert!(!listed(pid), "{m}: an ended child is still listed");
    }
}

#[test]
fn cpu_count_is_at_least_one() {
    assert!(cpu_count() >= 1);
    for m in METHODS {
        assert_eq!(get_context(Some(m)).cpu_count(), cpu_count());
    }
}
