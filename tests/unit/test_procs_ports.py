"""Ports handed out at the same moment to different processes never overlap (parallel workers, parallel runs)."""

from __future__ import annotations

import multiprocessing
import socket

from reproducer.procs import free_port, free_port_range, range_ports

WORKERS, CALLS = 4, 5


def _ask(barrier, queue, kind: str) -> None:
    barrier.wait()
    if kind == "range":
        queue.put([port for _ in range(CALLS) for port in range_ports(free_port_range(6), 6)])
    else:
        queue.put([free_port(also_free_at_offset=10000) for _ in range(CALLS)])


def _ports_asked_at_once(kind: str) -> list[list[int]]:
    ctx = multiprocessing.get_context("spawn")
    barrier, queue = ctx.Barrier(WORKERS), ctx.Queue()
    procs = [ctx.Process(target=_ask, args=(barrier, queue, kind)) for _ in range(WORKERS)]
    for proc in procs:
        proc.start()
    answers = [queue.get(timeout=60) for _ in procs]
    for proc in procs:
        proc.join(timeout=10)
        assert proc.exitcode == 0
    return answers


def test_processes_asking_at_once_get_disjoint_port_ranges():
    answers = _ports_asked_at_once("range")
    every = [port for ports in answers for port in ports]
    assert len(every) == WORKERS * CALLS * (6 * 2 + 3)
    assert len(set(every)) == len(every), "two callers were given the same port"


def test_processes_asking_at_once_get_disjoint_single_ports():
    every = [port for ports in _ports_asked_at_once("single") for port in ports]
    assert len(set(every)) == len(every) == WORKERS * CALLS


def test_a_range_stays_below_the_ephemeral_ports_and_can_be_bound():
    """Outgoing connections take ephemeral ports (32768+): a range, bus ports included, never lies there."""
    ports = range_ports(free_port_range(50), 50)
    assert max(ports) < 32768
    for port in ports:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))
