//! No leaks: after processes of every kind under every start method have been started and
//! joined, this process holds no more fds than before and has no zombie children.
//!
//! Goes beyond CPython's suite (fd and zombie accounting). The count runs as a scenario in a
//! process of its own (see `mp_testkit::Scenario`), where no other test's children interfere.

use mp_core::{active_children, get_context, pipe, StartMethod};

use mp_testkit::bodies::{
    echo_double, make_record, make_string, make_vec, panic_string, return_unit, send_one,
    sleep_long_string,
};
use mp_testkit::{
    in_scenario, join, join_result, open_fds, run_scenario, say, zombie_children, LONG, METHODS,
};

/// Starts and joins processes of every kind under every method.
fn run_a_bit_of_everything() {
    for m in METHODS {
        let ctx = get_context(Some(m));

        let mut p = ctx.process_closure(|| 1u8);
        if m == StartMethod::Fork {
            p.start().unwrap();
            assert_eq!(join_result(&p).unwrap(), 1);
        } else {
            assert!(p.start().is_err());
        }

        let mut p = ctx.process(make_string, 3);
        p.start().unwrap();
        assert!(join_result(&p).unwrap().starts_with("xxx-"));

        let mut p = ctx.process(make_record, 1);
        p.start().unwrap();
        assert_eq!(join_result(&p).unwrap(), make_record(1));

        let (mut ours, theirs) = pipe(true).unwrap();
        let mut p = ctx.process(echo_double, theirs);
        p.start().unwrap();
        ours.send(&5u64).unwrap();
        assert!(ours.poll_timeout(LONG).unwrap());
        assert_eq!(ours.recv::<u64>().unwrap(), 10);
        assert_eq!(join_result(&p).unwrap(), 5);
        drop(ours);

        let (mut r, w) = pipe(false).unwrap();
        let mut p = ctx.process(send_one, w);
        p.start().unwrap();
        assert!(r.poll_timeout(LONG).unwrap());
        let _: String = r.recv().unwrap();
        assert_eq!(join(&p), 0);
        drop(r);

        let mut p = ctx.process(panic_string, "expected panic".into());
        p.start().unwrap();
        assert!(join_result(&p).is_err());

        let mut p = ctx.process(sleep_long_string, ()).daemon(true);
        p.start().unwrap();
        p.kill().unwrap();
        assert!(join_result(&p).is_err());

        let mut p = ctx.process(return_unit, ()).daemon(true);
        p.start().unwrap();
        assert_eq!(join(&p), 0);
        p.close().unwrap();

        // Last, with no start after it: joining must release what the child held (Python's
        // join() drops the process from its _children).
        let mut p = ctx.process(make_vec, 2);
        p.start().unwrap();
        assert_eq!(join_result(&p).unwrap(), vec![0, 1]);
    }
}

#[test]
fn no_fds_or_zombies_are_left_behind() {
    let out = run_scenario("scenario_no_leaks");
    assert!(out.contains("NO_LEAKS=[ok]"), "{out}");
}

#[test]
fn scenario_no_leaks() {
    if !in_scenario("scenario_no_leaks") {
        return;
    }
    // Warm up what lives as long as the process: the fork server's socket and the daemons'
    // lifeline pipe.
    run_a_bit_of_everything();
    // Measure from a clean registry: active_children() reaps and forgets ended children.
    let _ = active_children();
    let before = open_fds();
    for _ in 0..2 {
        run_a_bit_of_everything();
    }
    let after = open_fds();
    // active_children() reaps and forgets ended children (Python's _cleanup()).
    let _ = active_children();
    let after_cleanup = open_fds();
    let mut failures = Vec::new();
    if after_cleanup != before {
        failures.push(format!(
            "fds leaked for good:\nbefore: {before:?}\nafter:  {after_cleanup:?}"
        ));
    }
    if after != before {
        failures.push(format!(
            "joined and dropped processes still hold fds until the next start() or \
             active_children():\nbefore: {before:?}\nafter:  {after:?}"
        ));
    }
    let zombies = zombie_children();
    if !zombies.is_empty() {
        failures.push(format!("zombie children: {zombies:?}"));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    say("NO_LEAKS", "ok");
}
