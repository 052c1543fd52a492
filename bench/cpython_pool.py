#!/usr/bin/env python3
"""CPython side of the Pool figures of `cargo xtask bench` (the Rust side is
benches/pool_side.rs), measured with the standard library's `multiprocessing.Pool` (fork).

Usage: python3 bench/cpython_pool.py [NAME...]   (no NAME: every figure, in FIGURES order)

Each figure measures ONE repetition and returns (unit, value); bench/cpython_bench.py takes
the medians. Every figure is a time in milliseconds (lower is better):

| figure | workload |
|---|---|
| pool_map_100k | Pool(2).map(square, range(100_000)), default chunksize |
| pool_imap_10k | list(Pool(2).imap(square, range(10_000), chunksize=1)) |
| pool_apply_async_10k | 10_000 apply_async(square, (i,)), then every get() |
| pool_startup | Pool(2) created, one apply, close, join |
| pool_map_cpu | Pool(2).map(spin, range(200)): 200 tasks of ~2 ms of CPU each |

The pool (but not for pool_startup) is created before the clock starts and closed after.
One repetition of the shortest figures is the mean of several runs of the workload, as on the
Rust side (benches/pool_side.rs): STARTUPS pools for pool_startup, MAPS maps on one pool for
pool_map_100k, APPLY_ROUNDS rounds for pool_apply_async_10k, IMAPS imaps for pool_imap_10k.
"""

import multiprocessing
import statistics
import sys
import time

REPS = 5
STARTUPS = 10
MAPS = 10
APPLY_ROUNDS = 6
IMAPS = 3
SPIN_SECONDS = 0.002


def _square(x):
    return x * x


def _spin(x):
    # ~2 ms of CPU, as the Rust side's calibrated xorshift loop: a figure of the pool's
    # overhead on CPU-bound work (only the Rust side is held to its limit, the sequential time
    # of the same calls / 2).
    end = time.thread_time() + SPIN_SECONDS
    s = x + 1
    while time.thread_time() < end:
        s = (s * 6364136223846793005 + 1) & 0xFFFFFFFFFFFFFFFF
    return s


def _timed(body, runs=1):
    """Milliseconds of body(pool) on a warmed-up Pool(2): the mean of `runs` runs in a row."""
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(2) as pool:
        pool.apply(_square, (1,))  # workers up
        t0 = time.perf_counter()
        for _ in range(runs):
            body(pool)
        elapsed = time.perf_counter() - t0
        pool.close()
        pool.join()
    return "ms", elapsed * 1e3 / runs


def figure_pool_map_100k():
    def body(pool):
        r = pool.map(_square, range(100_000))
        assert r[-1] == 99_999 ** 2
    return _timed(body, MAPS)


def figure_pool_imap_10k():
    def body(pool):
        r = list(pool.imap(_square, range(10_000), chunksize=1))
        assert r[-1] == 9_999 ** 2
    return _timed(body, IMAPS)


def figure_pool_apply_async_10k():
    def body(pool):
        rs = [pool.apply_async(_square, (i,)) for i in range(10_000)]
        assert [r.get(timeout=60) for r in rs][-1] == 9_999 ** 2
    return _timed(body, APPLY_ROUNDS)


def figure_pool_startup():
    ctx = multiprocessing.get_context("fork")
    t0 = time.perf_counter()
    for _ in range(STARTUPS):
        pool = ctx.Pool(2)
        assert pool.apply(_square, (3,)) == 9
        pool.close()
        pool.join()
    return "ms", (time.perf_counter() - t0) * 1e3 / STARTUPS


def figure_pool_map_cpu():
    def body(pool):
        pool.map(_spin, range(200))
    return _timed(body)


FIGURES = {
    "pool_map_100k": figure_pool_map_100k,
    "pool_imap_10k": figure_pool_imap_10k,
    "pool_apply_async_10k": figure_pool_apply_async_10k,
    "pool_startup": figure_pool_startup,
    "pool_map_cpu": figure_pool_map_cpu,
}


def main(argv):
    names = argv or list(FIGURES)
    for name in names:
        figure = FIGURES.get(name)
        if figure is None:
            print(f"cpython_pool: no CPython figure {name!r}, skipped", file=sys.stderr)
            continue
        values = []
        unit = None
        for _ in range(REPS):
            unit, value = figure()
            values.append(value)
        print(f"figure={name} side=cpython unit={unit} value={statistics.median(values):.3f}")


if __name__ == "__main__":
    main(sys.argv[1:])
