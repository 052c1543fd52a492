//! Helpers shared by mp-core's integration tests: start and join children with bounded waits.
#![allow(dead_code)]

use std::time::Duration;

use mp_core::{Connection, Process, StartMethod};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Every start method.
pub const METHODS: [StartMethod; 3] = [
    StartMethod::Fork,
    StartMethod::Spawn,
    StartMethod::Forkserver,
];
/// How long the parent waits for any one message, or for a call that might hang on a bug.
pub const WAIT: Duration = Duration::from_secs(20);
/// How long the parent waits for a child to exit.
pub const JOIN: Duration = Duration::from_secs(30);

/// Starts `f(args)` in a child under `m`.
pub fn start<A, R>(f: fn(A) -> R, args: A, m: StartMethod) -> Process<R>
where
    A: Serialize + DeserializeOwned + Send + 'static,
    R: Serialize + DeserializeOwned + 'static,
{
    let mut p = Process::new(f, args).start_method(m);
    p.start()
        .unwrap_or_else(|e| panic!("cannot start a child under {m}: {e}"));
    p
}

/// Joins `p` within [`JOIN`] and asserts it exited with 0.
pub fn join_ok<R>(p: &Process<R>, m: StartMethod) {
    assert_eq!(
        p.join_timeout(JOIN).unwrap(),
        Some(0),
        "the child under {m} did not exit cleanly within {JOIN:?}"
    );
}

/// Waits (bounded) for a message, then receives it as `T`.
pub fn recv_within<T: DeserializeOwned>(c: &mut Connection) -> T {
    assert!(c.poll(Some(WAIT)).unwrap(), "no message within {WAIT:?}");
    c.recv().unwrap()
}
