"""Worker processes: one per source primary, forked by one fresh interpreter that imported the job's code once.

The copier may already run threads (an SSH tunnel's, a follower's, a cutover controller's), and forking a
threaded process can copy a lock held by another thread into the child; multiprocessing's ``spawn`` and
``forkserver`` would also re-import the caller's ``__main__`` (the CLI, pytest) in each child. So :func:`run`
starts one fresh interpreter, the *zygote* (``python -c`` importing only this module), which receives the jobs,
unpickles them (importing their code once), and forks one worker per job: it has no thread, so forking it is
safe, and a fork costs about 3 ms of CPU where a fresh interpreter costs about 0.1 s
(``docs/reference/performance.md#one-process-per-source-primary-issue-17``).

Protocol, pickles over socketpairs (every end is this program, so they are trusted):

- parent → zygote, once on the control socket: the jobs, ``[(function, args), ...]``; worker ``i`` calls
  ``function(channel, *args)`` with a :class:`Channel` on its own socket;
- worker → parent: any number of ``("report", payload)``, each handed to the parent's ``on_report(index,
  payload)`` in order, then ``("done", result)`` or ``("error", ...)``;
- worker → parent → worker: ``("ask", payload)`` is answered by the parent's ``on_ask(index, payload)``:
  ``("answer", value)``, or ``("error", ...)`` with the error it raised (a worker's route asks for a bastion's
  forward: :mod:`reproducer.data.relay`);
- zygote → parent, on the control socket: ``(index, exit code)`` as each worker ends.

Secrets (endpoint passwords) travel in the jobs over a socket, never in argv; the zygote's environment is the
parent's without any variable whose value is one of the secrets given.

Lifetime: the zygote and its workers ignore SIGINT (a Ctrl-C reaches the whole process group: the parent decides);
each dies with its parent (``PR_SET_PDEATHSIG``: the zygote with the copier, a worker with the zygote). The parent
stops them on every way out (the first error of any worker, ``Interrupted`` or any exception, the end of the run):
SIGTERM to the zygote, which SIGKILLs and reaps its workers before it exits.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from reproducer.errors import DataError, ReproducerError
from reproducer.heap import keep_freed_memory, pace_collector_for_bulk_data

Job = tuple[Callable[..., Any], tuple[Any, ...]]
#: How long the zygote gets to stop its workers after SIGTERM before SIGKILL; also how long a worker's exit code
#: is waited for.
STOP_GRACE_SECONDS = 2.0
_PR_SET_PDEATHSIG = 1
_ROOT = str(Path(__file__).resolve().parents[2])  # the directory holding the reproducer package
_BOOT = "import sys; sys.path.insert(0, sys.argv[1]); from reproducer.data.workers import serve; serve(sys.argv[2:])"


class Channel:
    """A worker's end: :meth:`report` sends a payload to the parent's ``on_report``, :meth:`ask` to its ``on_ask``."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._lock = threading.Lock()  # an ask's answer goes to the thread that asked

    def report(self, payload: Any) -> None:
        """Send ``payload`` to the parent (blocks while the parent is behind: back-pressure)."""
        with self._lock:
            self._conn.send(("report", payload))

    def ask(self, payload: Any) -> Any:
        """Send ``payload`` to the parent's ``on_ask`` and return its answer; the error it raised is raised here."""
        with self._lock:
            self._conn.send(("ask", payload))
            try:
                answer = self._conn.recv()
            except (EOFError, OSError):
                raise DataError("the main process went away while a worker waited for it", retryable=True) from None
        if answer[0] == "answer":
            return answer[1]
        raise _failure("the parent", answer, "worker")


class Throttled:
    """Passes the values it is given to ``send``, at most once every ``seconds``; those held back are merged.

    For a worker's progress: the first value goes at once (the parent sees the worker start), later ones at most
    every ``seconds``, and :meth:`flush` sends what is held back. ``merge(held, value)`` makes one value of the two;
    by default the latest replaces the one held (a count), a copy's counter changes are summed instead.
    """

    def __init__(
        self, send: Callable[[Any], None], seconds: float, merge: Callable[[Any, Any], Any] = lambda _held, new: new
    ) -> None:
        self._send, self._seconds, self._merge = send, seconds, merge
        self._sent_at = -seconds
        self._held: list[Any] = []  # the value not sent yet, if any

    def __call__(self, value: Any) -> None:
        """Hold ``value`` (merged with the one held); send it if ``seconds`` have passed since the last send."""
        self._held = [self._merge(self._held[0], value)] if self._held else [value]
        if time.monotonic() - self._sent_at >= self._seconds:
            self.flush()

    def flush(self) -> None:
        """Send the value held back, if any."""
        if self._held:
            self._send(self._held.pop())
        self._sent_at = time.monotonic()


def run(
    jobs: Sequence[Job],
    *,
    names: Sequence[str],
    on_report: Callable[[int, Any], None],
    on_ask: Callable[[int, Any], Any] | None = None,
    secrets: Iterable[str | None] = (),
    what: str = "worker",
) -> list[Any]:
    """Run each job in its own worker process, all at once; their results in order.

    ``names[i]`` names job ``i`` in messages (a source node). The first failure stops every worker and is raised
    here: the worker's own :class:`ReproducerError` (its class, message and hint), a :class:`DataError` for
    anything else, or one saying that a worker died. ``on_report`` and ``on_ask`` run in this thread; a
    :class:`ReproducerError` that ``on_ask`` raises goes back to the worker that asked.
    """
    pool = _Pool.start(len(jobs), _environment(secrets))
    try:
        pool.send_jobs(jobs)
        return pool.collect(names, on_report, on_ask or _no_questions, what)
    finally:
        pool.stop()


class _Pool:
    """The zygote process, its control socket and the parent's end of each worker's socket."""

    def __init__(self, zygote: subprocess.Popen[bytes], control: Connection, conns: list[Connection]) -> None:
        self.zygote, self.control, self.conns = zygote, control, conns
        self.exit_codes: dict[int, int] = {}

    @classmethod
    def start(cls, count: int, env: dict[str, str]) -> _Pool:
        """Start the zygote with the workers' ends of ``count`` new socketpairs and its control socket."""
        pairs = [socket.socketpair() for _ in range(count + 1)]
        theirs = [pair[1].fileno() for pair in pairs]
        try:
            zygote = subprocess.Popen(
                [sys.executable, "-c", _BOOT, _ROOT, str(os.getpid()), *map(str, theirs)],
                pass_fds=theirs,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
            )
        except OSError as exc:
            for pair in pairs:
                pair[0].close()
            raise DataError(f"cannot start the worker processes: {exc.strerror or exc}") from None
        finally:
            for pair in pairs:
                pair[1].close()
        control, *conns = (Connection(pair[0].detach()) for pair in pairs)
        return cls(zygote, control, conns)

    def send_jobs(self, jobs: Sequence[Job]) -> None:
        """Give the zygote every job (it forks one worker per job once it has them all)."""
        with contextlib.suppress(OSError):  # it died at start: collect() reads the ends of file and says so
            self.control.send(list(jobs))

    def collect(
        self,
        names: Sequence[str],
        on_report: Callable[[int, Any], None],
        on_ask: Callable[[int, Any], Any],
        what: str,
    ) -> list[Any]:
        """Read every worker's messages until each is done; raise the first failure."""
        results: list[Any] = [None] * len(self.conns)
        waiting = {conn: index for index, conn in enumerate(self.conns)}
        while waiting:
            for conn in wait(list(waiting)):
                index = waiting[conn]  # type: ignore[index]
                try:
                    message = self.conns[index].recv()
                except (EOFError, OSError):
                    raise self._died(names[index], index, what) from None
                if message[0] == "report":
                    on_report(index, message[1])
                elif message[0] == "ask":
                    self._answer(index, on_ask, message[1])
                elif message[0] == "done":
                    results[index] = message[1]
                    del waiting[self.conns[index]]
                else:
                    raise _failure(names[index], message, what)
        return results

    def _answer(self, index: int, on_ask: Callable[[int, Any], Any], question: Any) -> None:
        """Send worker ``index`` what ``on_ask`` answers, or the project error it raised (others are raised here)."""
        try:
            answer: tuple[Any, ...] = ("answer", on_ask(index, question))
        except ReproducerError as exc:
            answer = ("error", type(exc), exc.message, exc.hint, exc.retryable)
        with contextlib.suppress(OSError):  # it died meanwhile: its end of file is read next
            self.conns[index].send(answer)

    def _died(self, name: str, index: int, what: str) -> DataError:
        code = self._exit_code(index)
        how = (
            "ended: its parent process died"
            if code is None
            else f"was killed by {signal.Signals(-code).name}"
            if code < 0
            else f"exited with status {code}"
        )
        return DataError(
            f"the {what} process for {name} {how} before it finished",
            hint="run the same command again (with --resume if it saved a checkpoint: it holds only confirmed keys)",
            retryable=True,
        )

    def _exit_code(self, index: int) -> int | None:
        """Worker ``index``'s exit code as the zygote reports it (None when the zygote says nothing in time)."""
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        while index not in self.exit_codes:
            left = deadline - time.monotonic()
            try:
                if left <= 0 or not self.control.poll(left):
                    return None
                reaped, code = self.control.recv()
            except (EOFError, OSError):
                return None
            self.exit_codes[reaped] = code
        return self.exit_codes[index]

    def stop(self) -> None:
        """Stop the zygote (it kills and reaps its workers), reap it, close every socket."""
        for conn in (self.control, *self.conns):
            conn.close()
        if self.zygote.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.zygote.terminate()
        try:
            self.zygote.wait(STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            self.zygote.kill()  # its workers follow: PR_SET_PDEATHSIG
            self.zygote.wait()


def _failure(name: str, message: tuple[Any, ...], what: str) -> ReproducerError:
    """The error a worker reported, as this process raises it."""
    _tag, kind, text, hint, retryable = message
    if isinstance(kind, type) and issubclass(kind, ReproducerError):
        try:
            error: ReproducerError = kind(text, hint=hint, retryable=retryable)
        except TypeError:  # a subclass with another constructor
            return DataError(text, hint=hint, retryable=retryable)
        return error
    return DataError(f"the {what} process for {name} failed: {text}", hint=hint, retryable=retryable)


def _no_questions(_index: int, question: Any) -> Any:
    raise DataError(f"a worker asked {question!r}, and this run answers no question")


def _environment(secrets: Iterable[str | None]) -> dict[str, str]:
    """This process's environment without the variables holding a secret (``?password_env=``)."""
    hidden = {secret for secret in secrets if secret}
    return {name: value for name, value in os.environ.items() if value not in hidden}


# ---- the zygote and its workers -----------------------------------------------------------------------------


def serve(argv: list[str]) -> None:
    """The zygote's main: ``argv`` is the parent's pid, the control socket's descriptor, then one per worker.

    Receives the jobs, forks a worker for each, reports each worker's exit code, and exits when all have ended.
    SIGTERM kills and reaps the workers, then exits.
    """
    parent, control_fd, *fds = map(int, argv)
    pace_collector_for_bulk_data()
    keep_freed_memory()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with(parent)
    control = Connection(control_fd)
    try:
        jobs: list[Job] = control.recv()
    except (EOFError, OSError):
        os._exit(1)
    workers: dict[int, int] = {}
    signal.signal(signal.SIGTERM, lambda _signum, _frame: _kill_all(workers))
    zygote = os.getpid()
    gc.freeze()  # what the zygote holds (modules, the jobs) stays shared: no worker's collection writes to it
    for index, job in enumerate(jobs):
        pid = os.fork()
        if pid == 0:
            try:
                _work(zygote, fds[index], [control_fd, *fds], job)
            finally:
                os._exit(1)  # never back into this loop, whatever escaped
        workers[pid] = index
    for fd in fds:
        os.close(fd)
    while workers:
        pid, status = os.wait()
        index = workers.pop(pid)
        with contextlib.suppress(OSError):
            control.send((index, os.waitstatus_to_exitcode(status)))
    os._exit(0)


def _kill_all(workers: dict[int, int]) -> None:
    """SIGTERM in the zygote: SIGKILL every worker, reap them, exit."""
    for pid in list(workers):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    for pid in list(workers):
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
    os._exit(143)


def _work(zygote: int, fd: int, inherited: list[int], job: Job) -> None:
    """A forked worker: run ``job`` with a channel on ``fd``, send its outcome, exit."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _die_with(zygote)
    for other in inherited:
        if other != fd:
            os.close(other)
    conn = Connection(fd)
    function, args = job
    try:
        outcome: tuple[Any, ...] = ("done", function(Channel(conn), *args))
    except ReproducerError as exc:
        outcome = ("error", type(exc), exc.message, exc.hint, exc.retryable)
    except Exception as exc:  # a bug: its type, text and where it was raised, in the parent's error
        outcome = ("error", None, _described(exc), "", False)
    with contextlib.suppress(OSError):  # the parent is gone: nobody to tell
        conn.send(outcome)
    os._exit(0)


def _die_with(parent: int) -> None:
    """SIGKILL this process when ``parent`` dies, whatever kills it (Linux); exit now if it already has."""
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
