//! No leaks: after pools of every start method have been created, used (including a killed
//! worker, a time limit and a cancel) and closed, terminated or dropped, this process holds no
//! more fds than before and has no zombie children. The count runs as a scenario in a process
//! of its own (see `mp_testkit::Scenario`), where no other test's children interfere.

use std::time::Duration;

use mp_pool::Pool;
use mp_testkit::{in_scenario, open_fds, run_scenario, say, zombie_children, LONG, METHODS};

fn sqr(x: i64) -> i64 {
    x * x
}

fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

fn abort_now(_: ()) -> u8 {
    std::process::abort()
}

fn use_pools() {
    for m in METHODS {
        let p = Pool::builder()
            .processes(2)
            .start_method(m)
            .time_limit(Duration::from_secs(30))
            .build()
            .unwrap();
        assert_eq!(
            p.map_async(sqr, 0..50)
                .unwrap()
                .get_timeout(LONG)
                .unwrap()
                .len(),
            50
        );
        assert!(p
            .apply_async(abort_now, ())
            .unwrap()
            .get_timeout(LONG)
            .is_err());
        let limited = p
            .apply_async_time_limit(sleep_ms, 60_000, Duration::from_millis(100))
            .unwrap();
        assert!(limited.get_timeout(LONG).unwrap_err().is_time_limit());
        let running = p.apply_async(sleep_ms, 60_000).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        assert!(running.cancel());
        let n = p.imap(sqr, 0..20).unwrap().filter(|r| r.is_ok()).count();
        assert_eq!(n, 20);
        p.close();
        assert!(p.join_timeout(LONG).unwrap());

        let p = Pool::builder()
            .processes(2)
            .start_method(m)
            .build()
            .unwrap();
        let _pending = p.apply_async(sleep_ms, 60_000).unwrap();
        p.terminate();
        assert!(p.join_timeout(LONG).unwrap());

        let p = Pool::builder()
            .processes(2)
            .start_method(m)
            .build()
            .unwrap();
        let _pending = p.apply_async(sleep_ms, 60_000).unwrap();
        drop(p);
    }
}

#[test]
fn no_fds_or_zombies_are_left_behind() {
    let out = run_scenario("scenario_pool_no_leaks");
    assert!(out.contains("NO_LEAKS=[ok]"), "{out}");
}

#[test]
fn scenario_pool_no_leaks() {
    if !in_scenario("scenario_pool_no_leaks") {
        return;
    }
    // Warm up what lives as long as the process (the fork server, the lifeline pipe).
    use_pools();
    let _ = mp_core::active_children();
    let before = open_fds();
    use_pools();
    let _ = mp_core::active_children();
    let after = open_fds();
    let mut failures = Vec::new();
    if after != before {
        failures.push(format!(
            "fds leaked:\nbefore: {before:?}\nafter:  {after:?}"
        ));
    }
    let zombies = zombie_children();
    if !zombies.is_empty() {
        failures.push(format!("zombie children: {zombies:?}"));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    say("NO_LEAKS", "ok");
}
