"""Worker processes: one per source primary, forked by one fresh interpreter that imported the job's code once.

The copier may already run threads (an SSH tunnel's, a follower's, a cutover controller's), and forking a
threaded process can copy a lock held by another thread into the child; multiprocessing's ``spawn`` and
``forkserver`` would also re-import the caller's ``__main__`` (the CLI, pytest) in each child. So the workers
come from one *zygote* without threads, which receives the jobs and forks one worker per job (a fork costs about
3 ms of CPU where a fresh interpreter costs about 0.1 s:
``docs/reference/performance.md#one-process-per-source-primary-issue-17``). The zygote is either

- forked from the caller by :func:`forked_zygote`, where the caller still has one thread (the pipeline does it
  before it opens a tunnel or starts the copy's thread): it already holds every module, and sheds what it has of
  the caller (signal handlers, descriptors, secrets in its environment) before it serves; or
- a fresh interpreter that :func:`run` starts (``python -c`` importing only this module), which imports the
  jobs' code as it unpickles them.

Protocol, pickles over socketpairs (every end is this program, so they are trusted):

- parent → zygote, once on the control socket: the jobs, ``[(function, args), ...]``, then each worker's end of
  its socketpair (``SCM_RIGHTS``); worker ``i`` calls ``function(channel, *args)`` with a :class:`Channel` on it;
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
import fcntl
import gc
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from reproducer.errors import DataError, ReproducerError
from reproducer.heap import keep_freed_memory, pace_collector_for_bulk_data

Job = tuple[Callable[..., Any], tuple[Any, ...]]
#: The zygote a :func:`forked_zygote` block made, the secrets it hid and the block, until a run takes it or the
#: block ends (one at a time: a block within another, or in another thread, forks none).
_forked: list[tuple[_Pool, frozenset[str], object]] = []
#: Blocked while the zygote is forked and offered, so that a Ctrl-C cannot leave one unaccounted for.
_STOPPING_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM, signal.SIGHUP})
_forked_lock = threading.Lock()
#: How long the zygote gets to stop its workers after SIGTERM before SIGKILL; also how long a worker's exit code
#: is waited for.
STOP_GRACE_SECONDS = 2.0
_PR_SET_PDEATHSIG = 1
_PR_SET_NAME = 15
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
    pool = _take_forked(secrets) or _Pool.start(_environment(secrets))
    try:
        pool.send_jobs(jobs)
        return pool.collect(names, on_report, on_ask or _no_questions, what)
    finally:
        pool.stop()


class _Pool:
    """The zygote process, its control socket and, once the jobs are sent, the parent's end of each worker's."""

    def __init__(self, zygote: subprocess.Popen[bytes] | _ForkedZygote, control: Connection) -> None:
        self.zygote, self.control = zygote, control
        self.conns: list[Connection] = []
        self.exit_codes: dict[int, int] = {}

    @classmethod
    def start(cls, env: dict[str, str]) -> _Pool:
        """Start the zygote as a fresh interpreter with its control socket."""
        ours, theirs = _control_pair()
        try:
            zygote = subprocess.Popen(
                [sys.executable, "-c", _BOOT, _ROOT, str(os.getpid()), str(theirs.fileno())],
                pass_fds=[theirs.fileno()],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
            )
        except OSError as exc:
            ours.close()
            raise DataError(f"cannot start the worker processes: {exc.strerror or exc}") from None
        finally:
            theirs.close()
        return cls(zygote, Connection(ours.detach()))

    @classmethod
    def fork(cls, hidden: frozenset[str], unblock: frozenset[signal.Signals]) -> _Pool:
        """Fork the zygote from this process, which must have no other thread (see :func:`forked_zygote`).

        ``unblock``: the signals the caller blocked around the fork, unblocked in the zygote.
        """
        parent = os.getpid()
        ours, theirs = _control_pair()
        try:
            pid = os.fork()
        except OSError:
            ours.close()
            theirs.close()
            raise
        if pid == 0:
            try:
                ours.close()
                _serve_forked(parent, theirs.detach(), hidden, unblock)
            finally:
                os._exit(1)  # never back into the caller's code, whatever escaped
        theirs.close()
        return cls(_ForkedZygote(pid), Connection(ours.detach()))

    def send_jobs(self, jobs: Sequence[Job]) -> None:
        """Give the zygote every job and each worker's end of a new socketpair; it forks one worker per job."""
        pairs = [socket.socketpair() for _ in jobs]
        self.conns = [Connection(pair[0].detach()) for pair in pairs]
        try:
            self.control.send(list(jobs))
            _send_fds(self.control, [pair[1].fileno() for pair in pairs])
        except (BrokenPipeError, ConnectionResetError):  # it died at start: collect() reads the ends and says so
            pass
        except OSError as exc:  # this side could not send (out of descriptors): the zygote would wait for them
            raise DataError(f"cannot start the worker processes: {exc.strerror or exc}") from None
        finally:
            for pair in pairs:
                pair[1].close()

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
        """Stop the zygote (it kills and reaps its workers, or exits unused), reap it, close every socket."""
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


def _control_pair() -> tuple[socket.socket, socket.socket]:
    """A socketpair for a zygote's control, neither end a standard descriptor.

    With standard input or output closed, ``socketpair`` takes their numbers, and the zygote's own standard input
    and output (``/dev/null``) would then replace its control socket.
    """
    ends = []
    for end in socket.socketpair():
        if end.fileno() > 2:
            ends.append(end)
            continue
        ends.append(socket.socket(fileno=fcntl.fcntl(end.fileno(), fcntl.F_DUPFD_CLOEXEC, 3)))
        end.close()
    return ends[0], ends[1]


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


@contextlib.contextmanager
def forked_zygote(secrets: Iterable[str | None] = ()) -> Iterator[None]:
    """Within this block, the next :func:`run` (in any thread) uses a zygote forked from this process now.

    Call it where this process has no other thread yet (before a tunnel, a follower or the copy's own thread):
    forking then is safe, costs a few milliseconds, and the zygote already holds every module the jobs need,
    where a fresh interpreter costs 0.05 to 0.1 s of CPU to start and import before the first worker can start.
    With another thread running, nothing is forked and :func:`run` starts a fresh interpreter. A zygote no run
    took is stopped when the block ends. ``secrets`` as for :func:`run`.
    """
    block = object()
    try:
        _offer_forked(frozenset(secret for secret in secrets if secret), block)
        yield
    finally:
        with _forked_lock:
            unused = [pool for pool, _hidden, owner in _forked if owner is block]
            _forked[:] = [entry for entry in _forked if entry[2] is not block]
        for pool in unused:
            pool.stop()


def _offer_forked(hidden: frozenset[str], block: object) -> None:
    """Fork a zygote for ``block`` and offer it to the next run, unless another thread runs or one is offered."""
    with _forked_lock:
        if _forked or threading.active_count() != 1:
            return
    blocked_before = signal.pthread_sigmask(signal.SIG_BLOCK, _STOPPING_SIGNALS)
    try:
        pool = _Pool.fork(hidden, frozenset(_STOPPING_SIGNALS - blocked_before))
        with _forked_lock:
            _forked.append((pool, hidden, block))
    except OSError:  # no fork now (a process limit): a run starts a fresh zygote
        pass
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked_before)


def _take_forked(secrets: Iterable[str | None]) -> _Pool | None:
    """The zygote :func:`forked_zygote` made, once, if it hides every secret of this run (else None)."""
    with _forked_lock:
        if not _forked or not {secret for secret in secrets if secret} <= _forked[0][1]:
            return None
        return _forked.pop()[0]


class _ForkedZygote:
    """The forked zygote as :class:`_Pool` handles a started one (``subprocess.Popen``'s methods it uses)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        """Its exit code once it ended (reaped then), else None."""
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # reaped already, by the kernel: SIGCHLD was ignored (as Popen takes it)
                self.returncode = 0
            else:
                if pid:
                    self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        """Wait for it to end (``subprocess.TimeoutExpired`` after ``timeout`` seconds)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        code = self.poll()
        while code is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(f"zygote {self.pid}", timeout or 0.0)
            time.sleep(0.005)
            code = self.poll()
        return code

    def terminate(self) -> None:
        """SIGTERM it."""
        os.kill(self.pid, signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL it."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)


#: Descriptors sent in one message at most (Linux takes up to 253 in one SCM_RIGHTS message).
_FDS_A_MESSAGE = 200


def _send_fds(conn: Connection, fds: list[int]) -> None:
    """Send descriptors over ``conn``'s socket, in messages of at most ``_FDS_A_MESSAGE``."""
    with socket.socket(fileno=os.dup(conn.fileno())) as sock:
        for start in range(0, len(fds), _FDS_A_MESSAGE):
            socket.send_fds(sock, [b"f"], fds[start : start + _FDS_A_MESSAGE])


def _receive_fds(conn: Connection, count: int) -> list[int]:
    """Receive ``count`` descriptors :func:`_send_fds` sent; OSError when fewer come."""
    fds: list[int] = []
    with socket.socket(fileno=os.dup(conn.fileno())) as sock:
        while len(fds) < count:
            data, more, flags, _address = socket.recv_fds(sock, 1, _FDS_A_MESSAGE)
            if not data or not more or flags & socket.MSG_CTRUNC:
                raise OSError("the parent's descriptors did not all come")
            fds += more
    return fds


def _no_questions(_index: int, question: Any) -> Any:
    raise DataError(f"a worker asked {question!r}, and this run answers no question")


def _environment(secrets: Iterable[str | None]) -> dict[str, str]:
    """This process's environment without the variables holding a secret (``?password_env=``)."""
    hidden = {secret for secret in secrets if secret}
    return {name: value for name, value in os.environ.items() if value not in hidden}


# ---- the zygote and its workers -----------------------------------------------------------------------------


def serve(argv: list[str]) -> None:
    """The fresh zygote's main: ``argv`` is the parent's pid and the control socket's descriptor."""
    parent, control_fd = map(int, argv)
    _zygote(parent, control_fd)


def pool_name(parent: int) -> bytes:
    """The name a zygote forked from process ``parent``, and each of its workers, has in ``/proc/PID/comm``."""
    return f"pool-of-{parent}".encode()[:15]


def _serve_forked(parent: int, control_fd: int, hidden: frozenset[str], unblock: frozenset[signal.Signals]) -> None:
    """The forked zygote's main: first shed what it has of the parent but needs not, then serve as a fresh one.

    Its objects are frozen before anything else (a collection must not finalize a parent's object that names a
    descriptor closed here, once that number is reused); the signal handlers the parent set go back to their
    defaults; every descriptor but standard error and the control socket is closed (standard input and output
    read and write nothing); variables holding a secret leave its environment. Its argv is the caller's, so it
    names itself (and so its workers) ``pool-of-<caller's pid>`` in ``/proc/PID/comm``, as ``ps -o comm`` shows.
    """
    gc.freeze()
    sys.stdin, sys.stdout, sys.stderr = sys.__stdin__, sys.__stdout__, sys.__stderr__  # not a live display's
    _prctl(_PR_SET_NAME, pool_name(parent))
    with contextlib.suppress(ValueError):  # only the main thread may, and only it can have forked this
        signal.set_wakeup_fd(-1)  # a descriptor of the caller's, closed below
    for signum in signal.valid_signals():
        with contextlib.suppress(OSError, ValueError):
            if callable(signal.getsignal(signum)):
                signal.signal(signum, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, unblock)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    _close_all_but({0, 1, 2, control_fd})
    for name in os.environ.keys() - _environment(hidden).keys():
        del os.environ[name]
    with contextlib.suppress(OSError, ValueError, IndexError):  # a kernel without /proc/self/mem: left as it is
        _blank_initial_environment(hidden)
    _zygote(parent, control_fd)


def _close_all_but(kept: set[int]) -> None:
    """Close every descriptor of this process not in ``kept``: those listed, not every number up to the limit."""
    try:
        listed = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:  # no /proc: every number up to the limit (close_range(2) where the kernel has it)
        os.closerange(max(kept) + 1, os.sysconf("SC_OPEN_MAX"))
        listed = list(range(max(kept)))
    for fd in listed:
        if fd not in kept:
            with contextlib.suppress(OSError):  # the listing's own descriptor, closed already
                os.close(fd)


def _blank_initial_environment(hidden: frozenset[str]) -> None:
    """Overwrite, in this process's own copy, each ``NAME=secret`` of the environment block it started with.

    The kernel shows that block as ``/proc/PID/environ``, whatever the process did to its environment since; a fork
    shares it with its parent until it writes there. Only whole values that are secrets are overwritten.
    """
    with open("/proc/self/stat", "rb") as handle:
        fields = handle.read().rsplit(b")", 1)[1].split()
    start, end = int(fields[47]), int(fields[48])  # env_start, env_end: fields 50 and 51 of proc(5)
    secrets = {os.fsencode(secret) for secret in hidden}
    with open("/proc/self/mem", "r+b", buffering=0) as memory:
        memory.seek(start)
        block = memory.read(end - start)
        entries = block.split(b"\0")
        for index, entry in enumerate(entries):
            if entry.partition(b"=")[2] in secrets:
                entries[index] = b"*" * len(entry)
        blanked = b"\0".join(entries)
        if blanked != block:
            memory.seek(start)
            memory.write(blanked)


def _zygote(parent: int, control_fd: int) -> None:
    """Receive the jobs and one socket each, fork a worker for each, report each exit code, exit once all ended.

    SIGTERM kills and reaps the workers, then exits. The end of file before any job (the parent is done, or gone)
    exits.
    """
    pace_collector_for_bulk_data()
    keep_freed_memory()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # an ignored SIGCHLD is inherited: the workers must be waited for
    _die_with(parent)
    control = Connection(control_fd)
    try:
        jobs: list[Job] = control.recv()
        fds = _receive_fds(control, len(jobs))
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
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)


def _prctl(option: int, value: int | bytes) -> None:
    """``prctl(option, value)`` where the C library has it (Linux); nothing elsewhere."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)


def _described(exc: BaseException) -> str:
    frame = exc.__traceback__
    while frame is not None and frame.tb_next is not None:
        frame = frame.tb_next
    where = f" ({Path(frame.tb_frame.f_code.co_filename).name}:{frame.tb_lineno})" if frame is not None else ""
    return f"{type(exc).__name__}: {exc}{where}"
