"""Worker processes: one per source primary, each a fresh interpreter running one job and reporting over a socket.

Why fresh interpreters (``python -c`` with one inherited socket) rather than ``fork``: the copier may already run
threads (an SSH tunnel's, a follower's, a cutover controller's), and forking a threaded process can copy a lock
held by another thread into the child. multiprocessing's ``spawn`` would also re-import the caller's
``__main__`` (the CLI, pytest) in every child; this imports only what the job needs (measured in
``docs/reference/performance.md#one-process-per-source-primary-issue-17``).

Protocol, pickles over one socketpair per worker (both ends are this program, so they are trusted):

- parent → child, once: ``(function, args)``; the child calls ``function(channel, *args)``;
- child → parent: any number of ``("report", payload)``, each handed to the parent's ``on_report(index,
  payload)`` in order, then ``("done", result)`` or ``("error", ...)``.

Secrets (endpoint passwords) travel in ``args`` over the socket, never in argv; the child's environment is the
parent's without any variable whose value is one of the secrets given.

Lifetime: a child ignores SIGINT (a Ctrl-C reaches the whole process group: the parent decides), dies with its
parent (``PR_SET_PDEATHSIG``), and is stopped (SIGTERM, then SIGKILL) by the parent on every way out: the first
error of any worker, ``Interrupted`` or any exception in the parent, or the end of the run.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from reproducer.errors import DataError, ReproducerError

Job = tuple[Callable[..., Any], tuple[Any, ...]]
#: How long a stopped worker gets to exit after SIGTERM before SIGKILL.
STOP_GRACE_SECONDS = 2.0
_PR_SET_PDEATHSIG = 1
_ROOT = str(Path(__file__).resolve().parents[2])  # the directory holding the reproducer package
_BOOT = "import sys; sys.path.insert(0, sys.argv[1]); from reproducer.data.workers import serve; serve(sys.argv[2:])"


class Channel:
    """The child's end: :meth:`report` sends a payload to the parent's ``on_report``."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def report(self, payload: Any) -> None:
        """Send ``payload`` to the parent (blocks while the parent is behind: back-pressure)."""
        self._conn.send(("report", payload))


def run(
    jobs: Sequence[Job],
    *,
    names: Sequence[str],
    on_report: Callable[[int, Any], None],
    secrets: Iterable[str | None] = (),
    what: str = "worker",
) -> list[Any]:
    """Run each job in its own process at once; their results in order.

    ``names[i]`` names job ``i`` in messages (a source node). The first failure stops every worker and is raised
    here: the worker's own :class:`ReproducerError` (its class, message and hint), a :class:`DataError` for
    anything else, or one saying that a worker died. ``on_report`` runs in this thread.
    """
    env = _environment(secrets)
    workers: list[_Worker] = []
    try:
        for index, job in enumerate(jobs):
            workers.append(_Worker.start(index, names[index], job, env))
        return _collect(workers, on_report, what)
    finally:
        stop(workers)


class _Worker:
    """One child process and the parent's end of its socket."""

    def __init__(self, index: int, name: str, proc: subprocess.Popen[bytes], conn: Connection) -> None:
        self.index, self.name, self.proc, self.conn = index, name, proc, conn
        self.result: Any = None
        self.done = False

    @classmethod
    def start(cls, index: int, name: str, job: Job, env: dict[str, str]) -> _Worker:
        """Start the child with its end of a new socketpair, then send it ``job``."""
        ours, theirs = socket.socketpair()
        try:
            proc = subprocess.Popen(
                [sys.executable, "-c", _BOOT, _ROOT, str(theirs.fileno()), str(os.getpid())],
                pass_fds=(theirs.fileno(),),
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
            )
        except OSError as exc:
            ours.close()
            raise DataError(f"cannot start a worker process: {exc.strerror or exc}") from None
        finally:
            theirs.close()
        conn = Connection(ours.detach())
        worker = cls(index, name, proc, conn)
        with contextlib.suppress(OSError):  # it died at start: _collect reads its end of file and says so
            conn.send(job)
        return worker


def _collect(workers: list[_Worker], on_report: Callable[[int, Any], None], what: str) -> list[Any]:
    """Read every worker's messages until each is done; raise the first failure."""
    by_conn = {worker.conn: worker for worker in workers}
    while by_conn:
        for conn in wait(list(by_conn)):
            worker = by_conn[conn]  # type: ignore[index]
            try:
                message = worker.conn.recv()
            except (EOFError, OSError):
                raise _died(worker, what) from None
            if message[0] == "report":
                on_report(worker.index, message[1])
            elif message[0] == "done":
                worker.result, worker.done = message[1], True
                del by_conn[worker.conn]
            else:
                raise _failure(worker, message, what)
    return [worker.result for worker in workers]


def _died(worker: _Worker, what: str) -> DataError:
    try:
        code = worker.proc.wait(STOP_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        code = None
    how = (
        f"was killed by {signal.Signals(-code).name}"
        if code is not None and code < 0
        else f"exited with status {code}"
        if code is not None
        else "closed its channel"
    )
    return DataError(
        f"the {what} process for {worker.name} {how} before it finished",
        hint="run the same command again (with --resume if it saved a checkpoint: it holds only confirmed keys)",
        retryable=True,
    )


def _failure(worker: _Worker, message: tuple[Any, ...], what: str) -> ReproducerError:
    """The error a worker reported, as this process raises it."""
    _tag, kind, text, hint, retryable = message
    if isinstance(kind, type) and issubclass(kind, ReproducerError):
        try:
            error: ReproducerError = kind(text, hint=hint, retryable=retryable)
        except TypeError:  # a subclass with another constructor
            return DataError(text, hint=hint, retryable=retryable)
        return error
    return DataError(f"the {what} process for {worker.name} failed: {text}", hint=hint, retryable=retryable)


def stop(workers: Sequence[_Worker]) -> None:
    """Stop every worker still running (SIGTERM, then SIGKILL after a grace period), reap it, close its socket."""
    for worker in workers:
        worker.conn.close()
        if worker.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                worker.proc.terminate()
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for worker in workers:
        try:
            worker.proc.wait(max(deadline - time.monotonic(), 0.0))
        except subprocess.TimeoutExpired:
            worker.proc.kill()
            worker.proc.wait()


def _environment(secrets: Iterable[str | None]) -> dict[str, str]:
    """This process's environment without the variables holding a secret (``?password_env=``)."""
    hidden = {secret for secret in secrets if secret}
    return {name: value for name, value in os.environ.items() if value not in hidden}


# ---- the child ----------------------------------------------------------------------------------------------


def serve(argv: list[str]) -> None:
    """The child's main: ``argv`` is the socket's descriptor and the parent's pid. Runs one job, then exits."""
    fd, parent = int(argv[0]), int(argv[1])
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with(parent)
    conn = Connection(fd)
    function, args = conn.recv()
    try:
        outcome: tuple[Any, ...] = ("done", function(Channel(conn), *args))
    except ReproducerError as exc:
        outcome = ("error", type(exc), exc.message, exc.hint, exc.retryable)
    except Exception as exc:  # a bug: its type, text and where it was raised, in the parent's error
        outcome = ("error", None, _described(exc), "", False)
    with contextlib.suppress(OSError):  # the parent is gone: nobody to tell
        conn.send(outcome)
    conn.close()


def _die_with(parent: int) -> None:
    """SIGKILL this process when its parent dies, whatever kills it (Linux); exit now if it already has."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


def _described(exc: BaseException) -> str:
    frame = exc.__traceback__
    while frame is not None and frame.tb_next is not None:
        frame = frame.tb_next
    where = f" ({Path(frame.tb_frame.f_code.co_filename).name}:{frame.tb_lineno})" if frame is not None else ""
    return f"{type(exc).__name__}: {exc}{where}"
