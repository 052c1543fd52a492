"""CPython side of the manager figures of `cargo xtask bench` (benches/manager_side.rs)."""

import multiprocessing
import time

import cpython_apart


def _timed_apart(body):
    """Seconds of `body(manager)` on a Manager whose server runs on the second CPU and this
    client on the first (`cpython_apart`)."""
    manager, allowed = cpython_apart.start_apart(multiprocessing.Manager)
    try:
        with manager:
            t0 = time.perf_counter()
            body(manager)
            return time.perf_counter() - t0
    finally:
        cpython_apart.restore(allowed)


def figure_manager_dict_ops(count=10_000):
    def body(manager):
        d = manager.dict()
        for i in range(count):
            d[i] = i
        for i in range(count):
            assert d[i] == i
    return "us", _timed_apart(body) * 1e6 / (2 * count)


def figure_manager_queue(count=10_000):
    def body(manager):
        q = manager.Queue()
        for i in range(count):
            q.put(i)
        for _ in range(count):
            q.get()
    return "msgs/s", count / _timed_apart(body)


def figure_manager_startup(count=20):
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
