"""Runs the two processes of a handoff on two CPUs, for the figures of bench/cpython_*.py (the
Rust side's `start_apart` in benches/limits.rs): left to the guest's scheduler, the two
processes sometimes share one CPU, where every round trip is a context switch instead."""

import os


def start_apart(start):
    """Calls `start()` (which starts the partner process) while this thread may run on the
    second CPU only, so that the partner inherits it, then moves this thread to the first;
    returns what `start` returned and the CPUs to give back afterwards (`restore`)."""
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        return start(), set(allowed)
    os.sched_setaffinity(0, {allowed[1]})
    try:
        started = start()
    finally:
        os.sched_setaffinity(0, {allowed[0]})
    return started, set(allowed)


def restore(allowed):
    """Lets this thread run on `allowed` again (what `start_apart` returned)."""
    os.sched_setaffinity(0, allowed)
