//! Return values: `join_result` brings back what the child's function returned (small, nested,
//! larger than a pipe buffer, read twice), a `Connection` passed to a child carries messages,
//! and a `None` result is told apart from an early `exit(0)`.
//!
//! Beyond CPython, whose `Process` has no return value. Regression tests are named after what
//! broke (`a_none_result_and_an_early_exit_are_told_apart`).

use std::time::Duration;

use mp_core::{get_context, pipe, Error, Process};

use mp_testkit::bodies::{echo_double, make_record, make_string, make_vec, return_unit, send_one};
use mp_testkit::{join, join_result, LONG, METHODS};

fn returns_none(_: ()) -> Option<u32> {
    None
}

fn exits_early(_: ()) -> u32 {
    mp_core::exit(0)
}

#[test]
fn join_result_returns_the_childs_value() {
    for m in METHODS {
        let ctx = get_context(Some(m));

        let mut p = ctx.process(make_string, 5);
        p.start().unwrap();
        assert_eq!(
            join_result(&p).unwrap(),
            format!("xxxxx-{}", p.get_name()),
            "{m}"
        );

        let mut p = ctx.process(make_vec, 1000);
        p.start().unwrap();
        assert_eq!(join_result(&p).unwrap(), make_vec(1000), "{m}");

        let mut p = ctx.process(make_record, 7);
        p.start().unwrap();
        assert_eq!(join_result(&p).unwrap(), make_record(7), "{m}");

        // A big value: more than a pipe buffer.
        let mut p = ctx.process(make_string, 1 << 20);
        p.start().unwrap();
        assert_eq!(
            join_result(&p).unwrap().len(),
            (1 << 20) + 1 + p.get_name().len()
        );

        let mut p = ctx.process(return_unit, ());
        p.start().unwrap();
        join_result(&p).unwrap();

        // Reading the value twice gives it twice.
        let mut p = ctx.process(make_vec, 3);
        p.start().unwrap();
        assert_eq!(join_result(&p).unwrap(), vec![0, 1, 4], "{m}");
        assert_eq!(p.join_result().unwrap(), vec![0, 1, 4], "{m}: second read");
    }
}

#[test]
fn a_connection_passed_to_a_child_carries_messages() {
    for m in METHODS {
        let (mut ours, theirs) = pipe(true).unwrap();
        let mut p = Process::new(echo_double, theirs).start_method(m);
        p.start().unwrap();
        ours.send(&21u64).unwrap();
        assert!(ours.poll_timeout(LONG).unwrap(), "{m}: no answer");
        assert_eq!(ours.recv::<u64>().unwrap(), 42, "{m}");
        assert_eq!(join_result(&p).unwrap(), 21, "{m}");

        let (mut r, w) = pipe(false).unwrap();
        let mut p = Process::new(send_one, w).start_method(m);
        p.start().unwrap();
        assert!(
            r.poll_timeout(LONG).unwrap(),
            "{m}: nothing on the one-way pipe"
        );
        assert_eq!(r.recv::<String>().unwrap(), "from the child", "{m}");
        assert_eq!(join(&p), 0, "{m}");
    }
}

/// Regression: a value that encodes as nil (`None`) is not recorded by the child; the parent
/// must still read it as `None`, and an `exit(0)` before returning must stay an error.
#[test]
fn a_none_result_and_an_early_exit_are_told_apart() {
    for m in METHODS {
        let mut p = Process::new(returns_none, ()).start_method(m);
        p.start().unwrap();
        assert_eq!(p.join_timeout(Duration::from_secs(30)).unwrap(), Some(0));
        assert_eq!(p.join_result().unwrap(), None, "{m}");
        let mut p = Process::new(exits_early, ()).start_method(m);
        p.start().unwrap();
        assert_eq!(p.join_timeout(Duration::from_secs(30)).unwrap(), Some(0));
        assert!(
            matches!(
                p.join_result(),
                Err(Error::ProcessFailed { exitcode: 0, .. })
            ),
            "{m}"
        );
    }
}
