#!/usr/bin/env python3
"""CPython side of the shared-memory figures of `cargo xtask bench` (the Rust side is
benches/shared_side.rs), measured with the standard library's `multiprocessing`.

Usage: python3 bench/cpython_shared.py [NAME...]   (no NAME: every figure, in FIGURES order)

For each requested figure known here, prints one line

    figure=<name> side=cpython unit=<unit> value=<median>

where the value is the median of REPS repetitions (the same format as bench/cpython_bench.py,
whose FIGURES these can join). `atomic_2proc_increments` has no CPython twin.
"""

import multiprocessing
import os
import statistics
import sys
import time

REPS = 5
PER_CHILD = 100_000


def _value_child(v, barrier, n):
    """`with v.get_lock(): v.value += 1`, n times; returns (start, end) on the shared clock."""
    barrier.wait(60)
    start = time.monotonic()
    for _ in range(n):
        with v.get_lock():
            v.value += 1
    return start, time.monotonic()


def _run_and_report(q, f, args):
    q.put(f(*args))


def _start_pinned(children):
    """Starts child i on the i-th CPU this process may use (it inherits the affinity the
    parent has while it forks), as the Rust side does: left to the scheduler, two children
    sometimes share one CPU, where each runs a time slice of uncontended increments."""
    allowed = sorted(os.sched_getaffinity(0))
    for i, p in enumerate(children):
        if len(allowed) > 1:
            os.sched_setaffinity(0, {allowed[i % len(allowed)]})
        try:
            p.start()
        finally:
            os.sched_setaffinity(0, set(allowed))


def figure_value_2proc_increments(per_child=PER_CHILD):
    """Increments per second of two fork processes each doing `with v.get_lock(): v.value += 1`
    on one `Value('i', 0)`, from the start barrier to the last increment (as the Rust side)."""
    ctx = multiprocessing.get_context("fork")
    v = ctx.Value("i", 0)
    barrier = ctx.Barrier(2)
    spans = ctx.Queue()
    children = [
        ctx.Process(target=_run_and_report, args=(spans, _value_child, (v, barrier, per_child)))
        for _ in range(2)
    ]
    _start_pinned(children)
    results = [spans.get(timeout=300) for _ in children]
    for p in children:
        p.join()
    assert v.value == 2 * per_child, v.value
    elapsed = max(end for _, end in results) - min(start for start, _ in results)
    return "ops/s", 2 * per_child / elapsed


FIGURES = {
    "value_2proc_increments": figure_value_2proc_increments,
}


def main(argv):
    names = argv or list(FIGURES)
    for name in names:
        figure = FIGURES.get(name)
        if figure is None:
            print(f"cpython_shared: no CPython figure {name!r}, skipped", file=sys.stderr)
            continue
        values = []
        unit = None
        for _ in range(REPS):
            unit, value = figure()
            values.append(value)
        print(f"figure={name} side=cpython unit={unit} value={statistics.median(values):.3f}")


if __name__ == "__main__":
    main(sys.argv[1:])
