#!/usr/bin/env python3
"""CPython side of `cargo xtask bench`: the same figures as benches/mpbench.rs, measured with
the standard library's `multiprocessing`.

Usage: python3 bench/cpython_bench.py [NAME...]   (no NAME: every figure, in FIGURES order)
       python3 bench/cpython_bench.py --serve     (the interleaved mode of `cargo xtask bench`)

For each requested figure known here, prints one line

    figure=<name> side=cpython unit=<unit> value=<median>

where the value is the median of REPS repetitions. Units ending in `/s` are rates (higher is
better); the others are times per operation (lower is better). Names not known here are
ignored (a note goes to stderr), so xtask can pass every figure name through.

Start method: 'fork' unless the figure's name says 'spawn' or 'forkserver'.

With --serve, reads figure names from stdin, one per line, measures ONE repetition of each and
answers with one line: the sample line above, or `figure=<name> side=cpython unknown`. Names
with a parameter (`sweep_pipe:4096`) are the sweep figures of cpython_sweep.py.

To add a figure: write `def figure_x() -> (unit, value)` measuring ONE repetition, and add it
to FIGURES.
"""

import multiprocessing
import os
import statistics

import cpython_apart
import cpython_connection
import cpython_pool
import cpython_manager
import cpython_shared
import cpython_sweep
import sys
import time

REPS = 5
MIB = 1 << 20


# --- children (module level so 'spawn' and 'forkserver' can import them) -------------------------

def _noop():
    pass


def _echo(conn):
    """Echo every object back until None arrives."""
    while True:
        obj = conn.recv()
        if obj is None:
            break
        conn.send(obj)
    conn.close()


def _sink(conn, count):
    """Say ready, receive `count` byte messages, then ack once."""
    conn.send_bytes(b"ready")
    for _ in range(count):
        conn.recv_bytes()
    conn.send_bytes(b"ack")
    conn.close()


# --- figures: each measures one repetition and returns (unit, value) ----------------------------

def _start_join(method, count):
    """Microseconds per start()+join() of a no-op child under `method`."""
    ctx = multiprocessing.get_context(method)
    # Warm up: imports, and for 'forkserver' the server process itself, stay out of the timing.
    warm = ctx.Process(target=_noop)
    warm.start()
    warm.join()
    t0 = time.perf_counter()
    for _ in range(count):
        p = ctx.Process(target=_noop)
        p.start()
        p.join()
    elapsed = time.perf_counter() - t0
    return "us", elapsed / count * 1e6


def figure_process_fork():
    return _start_join("fork", 200)


def figure_process_spawn():
    return _start_join("spawn", 20)


def figure_process_forkserver():
    return _start_join("forkserver", 100)


def figure_pipe_pingpong(round_trips=20000):
    """Round trips per second of a small object over a duplex Pipe() to an echoing child."""
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe()
    p = ctx.Process(target=_echo, args=(child,))
    allowed = _start_apart(p)
    try:
        child.close()
        parent.send(1)  # the child is up and echoing before the clock starts
        parent.recv()
        t0 = time.perf_counter()
        for _ in range(round_trips):
            parent.send(1)
            parent.recv()
        elapsed = time.perf_counter() - t0
    finally:
        cpython_apart.restore(allowed)
    parent.send(None)
    p.join()
    parent.close()
    return "round_trips/s", round_trips / elapsed


def figure_pipe_1mib(messages=200):
    """MB/s (1e6 bytes) of 1 MiB send_bytes() of written memory to a child, until it acks the
    last one; the child on the second CPU, the parent on the first (as the Rust side and the
    limit)."""
    return "MB/s", cpython_sweep.pipe_sized(MIB, messages, apart=True)


def figure_lock_uncontended(count=1_000_000):
    """acquire()+release() pairs per second of an uncontended multiprocessing.Lock."""
    lock = multiprocessing.get_context("fork").Lock()
    acquire, release = lock.acquire, lock.release
    t0 = time.perf_counter()
    for _ in range(count):
        acquire()
        release()
    return "ops/s", count / (time.perf_counter() - t0)


def _start_apart(p):
    """Starts child process `p` on the second CPU (`cpython_apart.start_apart`); returns the
    CPUs to give back afterwards."""
    return cpython_apart.start_apart(p.start)[1]


def _partner(ping, pong, count):
    for _ in range(count + 1):
        ping.acquire()
        pong.release()


def _handoff(make, count):
    ctx = multiprocessing.get_context("fork")
    ping, pong = make(ctx), make(ctx)
    p = ctx.Process(target=_partner, args=(ping, pong, count))
    allowed = _start_apart(p)
    try:
        ping.release()  # warm-up round
        pong.acquire()
        t0 = time.perf_counter()
        for _ in range(count):
            ping.release()
            pong.acquire()
        elapsed = time.perf_counter() - t0
    finally:
        os.sched_setaffinity(0, allowed)
    p.join()
    return "round_trips/s", count / elapsed


def _held_lock(ctx):
    lock = ctx.Lock()
    lock.acquire()
    return lock


def figure_lock_handoff(count=100_000):
    """Round trips per second of two processes handing two Locks back and forth."""
    return _handoff(_held_lock, count)


def figure_semaphore_pingpong(count=100_000):
    """Round trips per second of two processes ping-ponging through two Semaphore(0)."""
    return _handoff(lambda ctx: ctx.Semaphore(0), count)


def _queue_producer(q, count):
    for i in range(count):
        q.put(i)


def _n_to_1(make, producers, total, apart=False):
    ctx = multiprocessing.get_context("fork")
    q = make(ctx)
    t0 = time.perf_counter()
    children = [ctx.Process(target=_queue_producer, args=(q, total // producers)) for _ in range(producers)]
    allowed = None
    if apart:
        # All the children on the second CPU, this process on the first (one start_apart for
        # them all: a second would find this process on one CPU already).
        allowed = cpython_apart.start_apart(lambda: [p.start() for p in children])[1]
    else:
        for p in children:
            p.start()
    try:
        for _ in range(total):
            q.get()
        elapsed = time.perf_counter() - t0
    finally:
        if allowed is not None:
            os.sched_setaffinity(0, allowed)
    for p in children:
        p.join()
    return "msgs/s", total / elapsed


def figure_queue_1to1(total=200_000):
    """Messages per second through a Queue from one child to the parent."""
    return _n_to_1(lambda ctx: ctx.Queue(), 1, total)


def figure_queue_2to1(total=200_000):
    """Messages per second through a Queue from two children to the parent; the children on
    the second CPU, the parent on the first (as the Rust side)."""
    return _n_to_1(lambda ctx: ctx.Queue(), 2, total, apart=True)


def figure_simplequeue_1to1(total=200_000):
    """Messages per second through a SimpleQueue from one child to the parent, on two CPUs."""
    return _n_to_1(lambda ctx: ctx.SimpleQueue(), 1, total, apart=True)


def _mib_consumer(q, done, count):
    for _ in range(count):
        q.get()
    done.put(True)


def figure_queue_1mib(count=200):
    """MB/s (1e6 bytes) of 1 MiB bytes items through a Queue to a child; the child on the
    second CPU, the parent on the first (as the Rust side)."""
    ctx = multiprocessing.get_context("fork")
    q, done = ctx.Queue(), ctx.Queue()
    p = ctx.Process(target=_mib_consumer, args=(q, done, count))
    allowed = _start_apart(p)
    try:
        # Written memory, as the Rust side's: bytes(MIB) is calloc's zero pages.
        item = b"\x5a" * MIB
        t0 = time.perf_counter()
        for _ in range(count):
            q.put(item)
        done.get()
        elapsed = time.perf_counter() - t0
    finally:
        cpython_apart.restore(allowed)
    p.join()
    return "MB/s", count * MIB / 1e6 / elapsed


def _queue_echo(ping, pong):
    while True:
        v = ping.get()
        if v is None:
            break
        pong.put(v)


def figure_queue_latency(round_trips=20_000):
    """Microseconds per round trip through two Queues to an echoing child."""
    ctx = multiprocessing.get_context("fork")
    ping, pong = ctx.Queue(), ctx.Queue()
    p = ctx.Process(target=_queue_echo, args=(ping, pong))
    p.start()
    ping.put(1)
    pong.get()
    t0 = time.perf_counter()
    for i in range(round_trips):
        ping.put(i)
        pong.get()
    elapsed = time.perf_counter() - t0
    ping.put(None)
    p.join()
    return "us", elapsed * 1e6 / round_trips


FIGURES = {
    "process_fork": figure_process_fork,
    "process_spawn": figure_process_spawn,
    "process_forkserver": figure_process_forkserver,
    "pipe_pingpong": figure_pipe_pingpong,
    "pipe_1mib": figure_pipe_1mib,
    "lock_uncontended": figure_lock_uncontended,
    "lock_handoff": figure_lock_handoff,
    "semaphore_pingpong": figure_semaphore_pingpong,
    "queue_1to1": figure_queue_1to1,
    "queue_2to1": figure_queue_2to1,
    "simplequeue_1to1": figure_simplequeue_1to1,
    "queue_1mib": figure_queue_1mib,
    "queue_latency": figure_queue_latency,
    "listener_auth": cpython_connection.figure_listener_auth,
    "listener_pingpong": cpython_connection.figure_listener_pingpong,
    "value_2proc_increments": cpython_shared.figure_value_2proc_increments,
    **cpython_pool.FIGURES,
    **cpython_manager.FIGURES,
}


def measure_once(name):
    """One repetition of figure `name`: (unit, value), or None if it is not known here."""
    if name in FIGURES:
        return FIGURES[name]()
    return cpython_sweep.measure(name)


def serve():
    """The --serve loop."""
    for line in sys.stdin:
        name = line.strip()
        if not name:
            continue
        measured = measure_once(name)
        if measured is None:
            print(f"figure={name} side=cpython unknown", flush=True)
        else:
            unit, value = measured
            print(f"figure={name} side=cpython unit={unit} value={value:.3f}", flush=True)
    return 0


def measure(name, reps=REPS):
    """Runs figure `name` `reps` times; returns (unit, median)."""
    results = [FIGURES[name]() for _ in range(reps)]
    units = {unit for unit, _ in results}
    assert len(units) == 1, f"{name}: inconsistent units {units}"
    return units.pop(), statistics.median(value for _, value in results)


def main(argv):
    if "--serve" in argv:
        return serve()
    names = [a for a in argv if not a.startswith("-")] or list(FIGURES)
    for name in names:
        if name not in FIGURES:
            print(f"cpython_bench: no CPython figure {name!r}, skipped", file=sys.stderr)
            continue
        unit, value = measure(name)
        print(f"figure={name} side=cpython unit={unit} value={value:.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
