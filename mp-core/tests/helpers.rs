//! Detached helper processes (`start_detached`): the one way the stack starts servers that
//! outlive a call (the resource tracker, the pool and manager servers).

use std::time::Duration;

use mp_core::{active_children, current_process, pipe, start_detached, Connection, HelperOptions};
use mp_testkit::LONG;

/// Answers with its name, its parent's pid and the doubled number it receives.
fn answer(mut conn: Connection) {
    let n: u64 = conn.recv().unwrap();
    let parent = mp_core::parent_process().map(|p| p.pid());
    conn.send(&(current_process().get_name(), parent, n * 2))
        .unwrap();
}

/// Sleeps until killed.
fn sleep_forever(_: ()) {
    std::thread::sleep(Duration::from_secs(3600));
}

#[test]
fn a_detached_helper_runs_its_function_with_handles_and_is_not_a_child_to_join() {
    let (mut ours, theirs) = pipe(true).unwrap();
    let helper = start_detached(answer, theirs, &HelperOptions::new("test-helper")).unwrap();
    assert!(helper.pid() > 0);
    assert!(
        active_children()
            .iter()
            .all(|p| !matches!(p.pid(), Ok(Some(pid)) if pid == helper.pid())),
        "a detached helper is not among active_children"
    );
    ours.send(&21u64).unwrap();
    let (name, parent, doubled): (String, Option<i32>, u64) = ours.recv_timeout(LONG).unwrap();
    assert_eq!(name, "test-helper");
    assert_eq!(parent, Some(std::process::id() as i32));
    assert_eq!(doubled, 42);
    assert!(
        helper.wait_timeout(LONG).unwrap(),
        "the helper exits when its function returns"
    );
    assert!(!helper.is_alive());
}

#[test]
fn a_quiet_helper_can_be_killed_and_waited_for() {
    let helper = start_detached(
        sleep_forever,
        (),
        &HelperOptions::new("sleeper").quiet(true),
    )
    .unwrap();
    assert!(helper.is_alive());
    assert!(!helper.wait_timeout(Duration::from_millis(100)).unwrap());
    helper.kill().unwrap();
    assert!(helper
        .wait_deadline(std::time::Instant::now() + LONG)
        .unwrap());
    assert!(!helper.is_alive());
}
