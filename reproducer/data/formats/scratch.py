"""A throwaway local valkey-server, for loading an RDB file or writing one.

The server holds someone's data, so it is private: it listens on a unix socket only (``port 0``) in a
0700 temporary directory, asks for a random password (given through a 0600 config file, never argv),
and dies with its parent (``PR_SET_PDEATHSIG``). A watchdog process holds the read end of a pipe from
the parent; when the parent goes away by any path (exit, exception, SIGTERM, SIGKILL), the pipe closes
and the watchdog removes the directory and the dump in it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import valkey

from reproducer.data.formats.redact import without_quoted
from reproducer.errors import DataError, InputError
from reproducer.procs import child_env, stop_pid

_PR_SET_PDEATHSIG = 1
_LOG_PREFIX = re.compile(r"^\d+:[A-Z] \d+ \w+ \d+ [\d:.]+ [#*.-] ")
_START_TIMEOUT = 600.0
# Runs in the watchdog process: wait for the parent's pipe to close, then make sure the server is gone
# and remove its directory.
_WATCHDOG = """
import os, shutil, signal, sys, time
directory, pid = sys.argv[1], int(sys.argv[2])
signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(signal.SIGTERM, signal.SIG_IGN)
while sys.stdin.buffer.read(4096):
    pass
deadline = time.monotonic() + 5
while time.monotonic() < deadline and os.path.exists(f"/proc/{pid}"):
    time.sleep(0.05)
try:
    os.kill(pid, signal.SIGKILL)
except OSError:
    pass
shutil.rmtree(directory, ignore_errors=True)
"""


def _die_with_parent() -> None:
    """In the child before exec: ask the kernel for SIGKILL when the parent dies (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() == 1:  # the parent died before prctl took effect
        os._exit(1)


def _reason_lines(log: list[str]) -> list[str]:
    """The lines of a server log that say why it stopped, with quoted text (key names of the file) removed."""
    lines = [without_quoted(_LOG_PREFIX.sub("", line)) for line in log if line.strip()]
    for number, line in enumerate(lines):
        if "RDB ERROR DETECTED" in line:  # the RDB check that follows a failed load: its first findings
            return [found for found in lines[number + 1 :] if found.startswith(("[offset", "[additional"))][:2]
    return lines[-3:]


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


#: The longest unix socket path the kernel takes (``sun_path`` is 108 bytes, NUL included).
_SOCKET_PATH_MAX = 107
_SOCKET_NAME = "valkey.sock"


def scratch_directory() -> Path:
    """A new 0700 directory for the scratch server, short enough for its socket path.

    ``$TMPDIR`` comes first; when its path is too long for a unix socket (deep CI or pytest temp directories),
    ``/tmp`` is used instead, and a DataError says what to do when neither fits.
    """
    for parent in (None, "/tmp"):
        try:
            directory = Path(tempfile.mkdtemp(prefix="reproducer-scratch-", dir=parent))
        except OSError:
            continue
        if len(os.fsencode(directory / _SOCKET_NAME)) <= _SOCKET_PATH_MAX:
            return directory
        directory.rmdir()
    raise DataError(
        "no temporary directory short enough for the scratch server's unix socket",
        hint=f"set TMPDIR to a writable directory whose path is under {_SOCKET_PATH_MAX - 40} bytes",
    )


class ScratchServer:
    """A private valkey-server on a unix socket, optionally loading ``rdb`` at start; removed on exit."""

    def __init__(self, rdb: Path | None = None) -> None:
        if shutil.which("valkey-server") is None:
            raise DataError("valkey-server is needed for RDB files", hint="install valkey-server (make setup)")
        self.rdb = rdb
        self.directory = scratch_directory()
        self.socket = self.directory / _SOCKET_NAME
        self._password = secrets.token_urlsafe(32)
        self._proc: subprocess.Popen[bytes] | None = None
        self._watch: int | None = None
        self._watcher: subprocess.Popen[bytes] | None = None
        try:
            self._start()
            self._wait_ready()
        except BaseException:
            self.close()
            raise

    def _start(self) -> None:
        config = self.directory / "scratch.conf"
        fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(self._config())
        if self.rdb is not None:
            shutil.copyfile(self.rdb, self.directory / "dump.rdb")
        with (self.directory / "server.log").open("wb") as log:
            self._proc = subprocess.Popen(
                ["valkey-server", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=child_env(),
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - only prctl and getppid, no locks
            )
        read, self._watch = os.pipe()
        try:
            self._watcher = subprocess.Popen(
                [sys.executable, "-c", _WATCHDOG, str(self.directory), str(self._proc.pid)],
                stdin=read,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
                env=child_env(),
            )
        finally:
            os.close(read)

    def _config(self) -> str:
        lines = [
            "port 0",
            f"unixsocket {_quote(str(self.socket))}",
            "unixsocketperm 700",
            f"requirepass {_quote(self._password)}",
            f"dir {_quote(str(self.directory))}",
            "dbfilename dump.rdb",
            'save ""',
            "appendonly no",
            "databases 128",
            "protected-mode yes",
            'logfile ""',
        ]
        return "\n".join(lines) + "\n"

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise self._start_error()
            if self.socket.exists():
                with (
                    contextlib.suppress(valkey.exceptions.BusyLoadingError, valkey.exceptions.ConnectionError),
                    self.client(0) as client,
                ):
                    if client.ping():
                        return
            time.sleep(0.02)
        raise DataError(
            f"the scratch valkey-server did not answer within {_START_TIMEOUT:.0f}s",
            hint="is the file very large? retry, or check that valkey-server starts on this machine",
            retryable=True,
        )

    def _start_error(self) -> Exception:
        log = (self.directory / "server.log").read_text(errors="replace").splitlines()
        reason = " | ".join(_reason_lines(log)) or "no message"
        if self.rdb is None:
            return DataError(f"the scratch valkey-server could not start: {reason}", hint="check valkey-server")
        return InputError(
            f"valkey-server could not load {self.rdb}: {reason}",
            hint="is it an RDB file this Valkey version reads (RDB 11 or older), complete and undamaged?",
        )

    @property
    def pid(self) -> int:
        """The server's process id."""
        assert self._proc is not None
        return self._proc.pid

    def client(self, db: int = 0, *, timeout: float = 600) -> Any:
        """A valkey-py client on database ``db`` (through the socket, with the password)."""
        return valkey.Valkey(unix_socket_path=str(self.socket), password=self._password, db=db, socket_timeout=timeout)

    def databases(self) -> list[int]:
        """The databases holding keys."""
        with self.client(0) as client:
            keyspace: dict[str, Any] = client.info("keyspace")
        return sorted(int(name[2:]) for name in keyspace if name.startswith("db"))

    def save_to(self, path: Path) -> None:
        """SAVE and copy the RDB file to ``path``."""
        with self.client(0) as client:
            client.save()
        shutil.copyfile(self.directory / "dump.rdb", path)

    def close(self) -> None:
        """Stop the server, remove its directory and release the watchdog."""
        if self._proc is not None:
            stop_pid(self._proc.pid)
            self._proc.wait()
        shutil.rmtree(self.directory, ignore_errors=True)
        if self._watch is not None:
            os.close(self._watch)
            self._watch = None
        if self._watcher is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._watcher.wait(timeout=10)

    def __enter__(self) -> ScratchServer:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
