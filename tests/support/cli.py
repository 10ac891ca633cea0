"""The one way tests run the ``reproducer`` command: ``python -m reproducer.cli`` in a child process.

:func:`run` gets its child from a fork server (:mod:`tests.support.clizygote`) that has the CLI's modules
imported already: a separate process all the same, with its own descriptors, environment, directory and exit
status, but without 0.3 CPU second of imports per command. A request the server cannot honour (``PYTHON*``
variables that a fresh interpreter would read at start, such as ``PYTHONHASHSEED``), a server that does not start,
or ``REPRODUCER_TESTS_FRESH_CLI=1`` in the environment gets a fresh interpreter, as :func:`start` always does.
"""

from __future__ import annotations

import atexit
import contextlib
import io
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from tests.support import clizygote

#: How long a command may run before the test fails (pytest's own timeout is 300 s).
TIMEOUT = 280.0


def argv(*args: str | Path) -> list[str]:
    """The command line of ``reproducer <args>``."""
    return [sys.executable, "-m", "reproducer.cli", *map(str, args)]


def run(
    *args: str | Path, cwd: Path | None = None, env: Mapping[str, str] | None = None, timeout: float = TIMEOUT
) -> subprocess.CompletedProcess[str]:
    """Run ``reproducer <args>`` to the end; its exit code, stdout and stderr (text)."""
    environment = dict(os.environ if env is None else env)
    server = _Zygote.get() if _forkable(environment) else None
    if server is None:
        return subprocess.run(
            argv(*args), **_child(cwd, env), capture_output=True, text=True, timeout=timeout, check=False
        )
    return server.run([str(a) for a in args], environment, Path.cwd() if cwd is None else cwd, timeout)


def _forkable(env: Mapping[str, str]) -> bool:
    """Whether a forked child behaves as a fresh interpreter would with ``env``."""
    if os.environ.get("REPRODUCER_TESTS_FRESH_CLI") == "1" or env.get("REPRODUCER_TESTS_FRESH_CLI") == "1":
        return False
    startup = {name: value for name, value in env.items() if name.startswith(("PYTHON", "LD_"))}
    return startup == {name: value for name, value in os.environ.items() if name.startswith(("PYTHON", "LD_"))}


class _Zygote:
    """This test process's fork server, started at its first use and stopped when the process exits."""

    _lock = threading.Lock()
    _instance: _Zygote | None = None
    _owner = 0

    def __init__(self) -> None:
        self.directory = tempfile.mkdtemp(prefix="tests-cli-zygote-")
        self.path = os.path.join(self.directory, "socket")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.clizygote", self.path],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            env={**os.environ, "REPRODUCER_TESTS_FRESH_CLI": "0"},
            cwd=Path(__file__).resolve().parents[2],
        )
        assert self.process.stdout is not None
        if self.process.stdout.readline() != b"ready\n":
            self.process.kill()
            raise OSError("the CLI fork server did not start")

    @classmethod
    def get(cls) -> _Zygote | None:
        """The running server (started now if needed), or None when it cannot run."""
        with cls._lock:
            if cls._instance is None or cls._owner != os.getpid() or cls._instance.process.poll() is not None:
                try:
                    cls._instance, cls._owner = cls(), os.getpid()
                except OSError:
                    return None
        return cls._instance

    def stop(self) -> None:
        """End the server and remove its socket directory."""
        self.process.kill()
        self.process.wait()
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        with contextlib.suppress(OSError):
            os.rmdir(self.directory)

    def run(self, args: list[str], env: dict[str, str], cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
        """One command in a forked child, as :func:`subprocess.run` with ``capture_output`` and ``text``."""
        command = argv(*args)
        with (
            open(os.devnull, "rb") as stdin,
            tempfile.TemporaryFile() as stdout,
            tempfile.TemporaryFile() as stderr,
            socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn,
        ):
            conn.connect(self.path)
            request = {"args": args, "env": env, "cwd": str(cwd)}
            clizygote.send_message(conn, request, [stdin.fileno(), stdout.fileno(), stderr.fileno()])
            started = _answer(conn, timeout)
            if "pid" not in started:
                raise OSError(f"the CLI fork server refused the command: {started.get('error')}")
            try:
                status = _answer(conn, timeout)["status"]
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(started["pid"], signal.SIGKILL)
                raise subprocess.TimeoutExpired(command, timeout, _text(stdout), _text(stderr)) from None
            return subprocess.CompletedProcess(command, status, _text(stdout), _text(stderr))


def _answer(conn: socket.socket, timeout: float) -> dict[str, Any]:
    conn.settimeout(timeout)
    received = clizygote.receive_message(conn)  # a timeout raises TimeoutError
    if received is None:
        raise OSError("the CLI fork server closed the connection")
    return received[0]


def _text(output: IO[bytes]) -> str:
    """What ``text=True`` makes of a child's output: decoded, newlines translated."""
    output.seek(0)
    return io.TextIOWrapper(io.BytesIO(output.read())).read()


@atexit.register
def _stop_zygote() -> None:
    if _Zygote._instance is not None and _Zygote._owner == os.getpid():
        _Zygote._instance.stop()


def start(
    *args: str | Path,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    stdout: int | IO[Any] | None = subprocess.DEVNULL,
    stderr: int | IO[Any] | None = subprocess.PIPE,
) -> subprocess.Popen[str]:
    """Start ``reproducer <args>`` in the background (stdin closed, stderr piped as text by default)."""
    return subprocess.Popen(argv(*args), **_child(cwd, env), stdout=stdout, stderr=stderr, text=True)


def _child(cwd: Path | None, env: Mapping[str, str] | None) -> dict[str, Any]:
    """What every child gets: its directory, its environment (this process's by default), no stdin."""
    return {"cwd": cwd, "env": None if env is None else dict(env), "stdin": subprocess.DEVNULL}


def descendants(pid: int) -> list[int]:
    """Pids of every process below ``pid`` (read from /proc), deepest last."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry.name))
    found, queue = [], [pid]
    while queue:
        for child in children.get(queue.pop(), []):
            found.append(child)
            queue.append(child)
    return found


def kill_tree(pid: int) -> list[int]:
    """SIGKILL ``pid`` and every process it started, deepest first; the pids signalled."""
    pids = [*reversed(descendants(pid)), pid]
    for each in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(each, signal.SIGKILL)
    return pids
