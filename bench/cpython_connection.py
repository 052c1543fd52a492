"""CPython side of the `multiprocessing.connection` figures (see benches/connection_side.rs):
`Listener`/`Client` with an authkey over TCP on 127.0.0.1, the same workloads as the Rust side.

Each `figure_*()` measures ONE repetition and returns `(unit, value)`; bench/cpython_bench.py
adds them to its FIGURES.
"""

import multiprocessing
import time

import cpython_apart
from multiprocessing.connection import Client, Listener

AUTHKEY = b"benchmark key"
CONNECTIONS = 200
ROUND_TRIPS = 20000


# --- children (module level so that every start method can import them) ------------------------

def _auth_server(to_parent, count):
    """Bind an authenticated TCP listener, send its address, accept `count` connections."""
    with Listener(("127.0.0.1", 0), backlog=64, authkey=AUTHKEY) as listener:
        to_parent.send(listener.address)
        for _ in range(count):
            listener.accept().close()


def _echo_server(to_parent):
    """Accept one authenticated connection and echo byte messages until EOF."""
    with Listener(("127.0.0.1", 0), authkey=AUTHKEY) as listener:
        to_parent.send(listener.address)
        with listener.accept() as conn:
            while True:
                try:
                    message = conn.recv_bytes()
                except EOFError:
                    break
                conn.send_bytes(message)


# --- figures ---------------------------------------------------------------------------------------

def figure_listener_auth(count=CONNECTIONS):
    """Microseconds per TCP connect + both HMAC handshakes (client side) to a child's Listener."""
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe()
    p = ctx.Process(target=_auth_server, args=(child, count + 1))
    _, allowed = cpython_apart.start_apart(p.start)
    try:
        child.close()
        address = parent.recv()
        Client(address, authkey=AUTHKEY).close()  # warm-up: the child is accepting
        t0 = time.perf_counter()
        for _ in range(count):
            Client(address, authkey=AUTHKEY).close()
        elapsed = time.perf_counter() - t0
    finally:
        cpython_apart.restore(allowed)
    p.join()
    parent.close()
    return "us", elapsed / count * 1e6


def figure_listener_pingpong(round_trips=ROUND_TRIPS):
    """Round trips per second of 8-byte send_bytes/recv_bytes over an authenticated TCP
    connection to an echoing child."""
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe()
    p = ctx.Process(target=_echo_server, args=(child,))
    _, allowed = cpython_apart.start_apart(p.start)
    try:
        child.close()
        address = parent.recv()
        conn = Client(address, authkey=AUTHKEY)
        message = b"\x07" * 8
        conn.send_bytes(message)
        conn.recv_bytes()
        t0 = time.perf_counter()
        for _ in range(round_trips):
            conn.send_bytes(message)
            conn.recv_bytes()
        elapsed = time.perf_counter() - t0
    finally:
        cpython_apart.restore(allowed)
    conn.close()
    p.join()
    parent.close()
    return "round_trips/s", round_trips / elapsed

