"""The worker pool's processes (``reproducer.data.workers``) as /proc shows them: who started them, who is left."""

from __future__ import annotations

from pathlib import Path

from reproducer.data.workers import pool_name
from tests.support.wait import eventually

#: What a pool's zygote (and so each of its forked workers) carries in its argv.
BOOT = b"reproducer.data.workers"


def started_by(pid: int) -> dict[int, tuple[int, bytes, bytes]]:
    """Every process of the worker pool ``pid`` started, wherever it is now: pid -> (parent pid, cmdline, environ).

    A fresh zygote and its workers carry ``pid`` in their argv; a zygote forked from ``pid`` (``forked_zygote``)
    and its workers carry ``pid`` in their name.
    """
    found = {}
    forked = pool_name(pid) + b"\n"
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            if (BOOT in b" ".join(argv) and str(pid).encode() in argv) or (entry / "comm").read_bytes() == forked:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                found[int(entry.name)] = (ppid, b" ".join(argv), (entry / "environ").read_bytes())
        except (OSError, ValueError, IndexError):
            continue  # it ended meanwhile
    return found


def assert_no_process_left(pid: int, what: str = "no process of the pool left") -> None:
    """Nothing ``pid``'s pool started is left, allowing a moment: when the zygote overran its stop grace under load,
    it was SIGKILLed and its workers follow through PR_SET_PDEATHSIG, reaped by init a moment later (a worker
    still running its job, which sleeps 30 s, would stay).
    """
    eventually(lambda: started_by(pid) == {}, what, timeout=5)


def workers_of(pid: int, pool: dict[int, tuple[int, bytes, bytes]] | None = None) -> dict[int, tuple[bytes, bytes]]:
    """The worker processes of ``pid``'s pool (forked by its zygote, the pool's process ``pid`` started), from
    ``pool`` when given (one snapshot of ``started_by(pid)``: a worker can end between two reads of /proc).
    """
    pool = started_by(pid) if pool is None else pool
    zygotes = {each for each, (ppid, _argv, _env) in pool.items() if ppid == pid}
    return {each: (argv, env) for each, (ppid, argv, env) in pool.items() if ppid in zygotes}
