"""CPython side of the manager figures of `cargo xtask bench` (benches/manager_side.rs)."""

import multiprocessing
import time

import cpython_apart


def figure_manager_dict_ops(count=10_000):
    # The server on the second CPU, this client on the first (`cpython_apart`).
    manager, allowed = cpython_apart.start_apart(multiprocessing.Manager)
    try:
        with manager:
            d = manager.dict()
            t0 = time.perf_counter()
            for i in range(count):
                d[i] = i
            for i in range(count):
                assert d[i] == i
            elapsed = time.perf_counter() - t0
    finally:
        cpython_apart.restore(allowed)
    return "us", elapsed * 1e6 / (2 * count)


def figure_manager_queue(count=10_000):
    manager, allowed = cpython_apart.start_apart(multiprocessing.Manager)
    try:
        with manager:
            q = manager.Queue()
            t0 = time.perf_counter()
            for i in range(count):
                q.put(i)
            for _ in range(count):
                q.get()
            elapsed = time.perf_counter() - t0
    finally:
        cpython_apart.restore(allowed)
    return "msgs/s", count / elapsed


def figure_manager_startup(count=5):
    t0 = time.perf_counter()
    for _ in range(count):
        manager = multiprocessing.Manager()
        manager.shutdown()
    return "ms", (time.perf_counter() - t0) * 1e3 / count


FIGURES = {
    "manager_dict_ops": figure_manager_dict_ops,
    "manager_queue": figure_manager_queue,
    "manager_startup": figure_manager_startup,
}
