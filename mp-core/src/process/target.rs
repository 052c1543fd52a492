//! What a child runs: a `fn(A) -> R` with its arguments (any start method) or a closure (fork
//! only).

use std::os::fd::OwnedFd;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::codec;
use crate::error::{Error, Result};
use crate::{handle, identity};

/// What a child runs.
pub(crate) trait Target: Send {
    /// Runs in this (forked) process; returns the encoded result.
    fn run(self: Box<Self>) -> Result<Vec<u8>>;
    /// What a spawned or forkserver child needs to run it: trampoline and target offsets, the
    /// encoded arguments and their fds.
    fn job(&self) -> Result<(i64, i64, Vec<u8>, Vec<OwnedFd>)>;
}

pub(crate) struct FnTarget<A, R> {
    pub(crate) f: fn(A) -> R,
    pub(crate) args: A,
}

impl<A, R> Target for FnTarget<A, R>
where
    A: Serialize + DeserializeOwned + Send + 'static,
    R: Serialize + DeserializeOwned + 'static,
{
    fn run(self: Box<Self>) -> Result<Vec<u8>> {
        codec::encode(&(self.f)(self.args))
    }
    fn job(&self) -> Result<(i64, i64, Vec<u8>, Vec<OwnedFd>)> {
        let (args, fds) = handle::collect_handles(|| codec::encode(&self.args));
        let trampoline: crate::trampoline::Trampoline = crate::trampoline::trampoline::<A, R>;
        Ok((
            identity::offset_of(trampoline as usize),
            identity::offset_of(self.f as usize),
            args?,
            fds,
        ))
    }
}

pub(super) struct ClosureTarget<F>(pub(super) F);

impl<F, R> Target for ClosureTarget<F>
where
    F: FnOnce() -> R + Send + 'static,
    R: Serialize,
{
    fn run(self: Box<Self>) -> Result<Vec<u8>> {
        codec::encode(&(self.0)())
    }
    fn job(&self) -> Result<(i64, i64, Vec<u8>, Vec<OwnedFd>)> {
        Err(Error::ClosureNeedsFork("spawn and forkserver"))
    }
}
