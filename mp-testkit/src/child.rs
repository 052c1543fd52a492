//! Children that a failing test does not leave behind.

use std::ops::{Deref, DerefMut};
use std::time::Duration;

use mp_core::{Process, StartMethod};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{KILLED, LONG};

/// Joins `p` within [`LONG`]; its exit code. Fails the test if it does not end.
#[track_caller]
pub fn join<R>(p: &Process<R>) -> i32 {
    p.join_timeout(LONG)
        .unwrap_or_else(|e| panic!("joining {p:?} failed: {e}"))
        .unwrap_or_else(|| panic!("{p:?} did not end within {LONG:?}"))
}

/// Joins `p` within [`LONG`] (see [`join`]), then reads its return value.
#[track_caller]
pub fn join_result<R: Serialize + DeserializeOwned + 'static>(
    p: &Process<R>,
) -> mp_core::Result<R> {
    join(p);
    p.join_result()
}

/// A started child process; killed and reaped when dropped (a no-op once it has been joined),
/// so that a failing test does not leave children behind. It derefs to its [`Process`].
pub struct Child<R: Serialize + DeserializeOwned + 'static = ()> {
    p: Process<R>,
    label: String,
}

/// Starts `f(args)` in a child under start method `m`; fails the test if it cannot start.
#[track_caller]
pub fn start<A, R>(m: StartMethod, f: fn(A) -> R, args: A) -> Child<R>
where
    A: Serialize + DeserializeOwned + Send + 'static,
    R: Serialize + DeserializeOwned + 'static,
{
    let mut p = Process::new(f, args).start_method(m);
    p.start()
        .unwrap_or_else(|e| panic!("starting a child under {m:?} failed: {e}"));
    let label = format!("{} ({m:?})", p.get_name());
    Child { p, label }
}

impl<R: Serialize + DeserializeOwned + 'static> Child<R> {
    /// Waits (at most [`LONG`]) for the child to end; its exit code.
    #[track_caller]
    pub fn join(&self) -> i32 {
        join(&self.p)
    }

    /// Waits (at most [`LONG`]) for the child to end and asserts that it exited with 0.
    #[track_caller]
    pub fn join_ok(&self) {
        assert_eq!(self.join(), 0, "{} did not exit cleanly", self.label);
    }

    /// Waits (at most [`LONG`]) for the child to end and returns its return value; a child
    /// that panicked fails the test with the child's message.
    #[track_caller]
    pub fn finish(&self) -> R {
        let code = self.join();
        match self.p.join_result() {
            Ok(r) => r,
            Err(e) => panic!("{} failed (exit code {code}): {e}", self.label),
        }
    }

    /// Sends SIGKILL.
    #[track_caller]
    pub fn kill(&self) {
        self.p
            .kill()
            .unwrap_or_else(|e| panic!("killing {} failed: {e}", self.label));
    }

    /// Kills the child and checks that it died of the SIGKILL (a child that ended on its own
    /// before the signal came must have ended well, and a child that panicked fails the test
    /// with its message). Returns the exit code.
    #[track_caller]
    pub fn kill_and_reap(&self) -> i32 {
        self.kill();
        let code = self.join();
        if code != KILLED && code != 0 {
            let why = match self.p.join_result() {
                Err(e) => e.to_string(),
                Ok(_) => "no message".into(),
            };
            panic!("{} ended with exit code {code}: {why}", self.label);
        }
        code
    }

    /// Whether the child still runs.
    #[track_caller]
    pub fn running(&self) -> bool {
        self.p
            .is_alive()
            .unwrap_or_else(|e| panic!("is_alive of {} failed: {e}", self.label))
    }

    /// What the test calls this child in messages: its name and start method.
    pub fn label(&self) -> &str {
        &self.label
    }
}

impl<R: Serialize + DeserializeOwned + 'static> Deref for Child<R> {
    type Target = Process<R>;
    fn deref(&self) -> &Process<R> {
        &self.p
    }
}

impl<R: Serialize + DeserializeOwned + 'static> DerefMut for Child<R> {
    fn deref_mut(&mut self) -> &mut Process<R> {
        &mut self.p
    }
}

impl<R: Serialize + DeserializeOwned + 'static> Drop for Child<R> {
    fn drop(&mut self) {
        // Already joined: `kill` does nothing. Otherwise the test failed; do not leak the child.
        let _ = self.p.kill();
        let _ = self.p.join_timeout(Duration::from_secs(5));
    }
}
