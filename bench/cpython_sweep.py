"""CPython side of `cargo xtask bench --sweep`: the curves of benches/sweep_side.rs, measured
with the standard library's `multiprocessing` (start method 'fork').

Figures take their parameter in the name: `sweep_pipe:SIZE`, `sweep_queue:SIZE` (MB/s of
SIZE-byte messages to a child) and `sweep_queue_procs:P` (msgs/s of P producers and P consumers
on one queue). The message counts are the Rust side's (`messages_for`, `PROCS_MESSAGES`).
"""

import multiprocessing
import time

import cpython_apart

PROCS_MESSAGES = 40_000


def messages_for(size):
    return max(4, min(50_000, (256 << 20) // size))


def _sink(conn, count):
    conn.send_bytes(b"ready")
    for _ in range(count):
        conn.recv_bytes()
    conn.send_bytes(b"ack")
    conn.close()


def pipe_sized(size, messages, apart=False):
    """MB/s (1e6 bytes) of `messages` send_bytes() of `size` bytes (written memory) to a child,
    until it acks the last one; with `apart`, the child on the second CPU and this process on
    the first (`cpython_apart`), as `pipe_1mib` runs on every side."""
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe()
    p = ctx.Process(target=_sink, args=(child, messages))
    allowed = None
    if apart:
        allowed = cpython_apart.start_apart(p.start)[1]
    else:
        p.start()
    try:
        child.close()
        payload = b"\x5a" * size
        assert parent.recv_bytes() == b"ready"
        t0 = time.perf_counter()
        for _ in range(messages):
            parent.send_bytes(payload)
        assert parent.recv_bytes() == b"ack"
        elapsed = time.perf_counter() - t0
    finally:
        if apart:
            cpython_apart.restore(allowed)
    p.join()
    parent.close()
    return messages * size / 1e6 / elapsed


def _consume(q, done, count):
    for _ in range(count):
        q.get()
    done.put(True)


def _queue_sized(size, messages):
    ctx = multiprocessing.get_context("fork")
    q, done = ctx.Queue(), ctx.Queue()
    p = ctx.Process(target=_consume, args=(q, done, messages))
    p.start()
    item = b"\x5a" * size
    t0 = time.perf_counter()
    for _ in range(messages):
        q.put(item)
    done.get()
    elapsed = time.perf_counter() - t0
    p.join()
    return messages * size / 1e6 / elapsed


def _producer(q, start, count):
    start.wait()
    for i in range(count):
        q.put(i)


def _consumer(q, start, count):
    start.wait()
    for _ in range(count):
        q.get()


def _queue_procs(procs, total):
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    start = ctx.Barrier(2 * procs + 1)
    share = total // procs
    producers = [ctx.Process(target=_producer, args=(q, start, share)) for _ in range(procs)]
    consumers = [ctx.Process(target=_consumer, args=(q, start, share)) for _ in range(procs)]
    for p in producers + consumers:
        p.start()
    # The clock starts once every child waits, before the parent releases them (see the Rust
    # side).
    while start.n_waiting < 2 * procs:
        time.sleep(0.0002)
    t0 = time.perf_counter()
    start.wait()
    for p in consumers:
        p.join()
    elapsed = time.perf_counter() - t0
    for p in producers:
        p.join()
    return share * procs / elapsed


def measure(name):
    """One repetition of sweep figure `name`: (unit, value), or None if it is not one."""
    kind, _, param = name.partition(":")
    try:
        n = int(param)
    except ValueError:
        return None
    if kind == "sweep_pipe":
        return "MB/s", pipe_sized(n, messages_for(n))
    if kind == "sweep_queue":
        return "MB/s", _queue_sized(n, messages_for(n))
    if kind == "sweep_queue_procs":
        return "msgs/s", _queue_procs(n, PROCS_MESSAGES)
    return None
