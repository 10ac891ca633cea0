"""One provider fork server per process: Terraform's offline and twin providers start in milliseconds.

Each ``validate``, ``plan``, ``apply``, ``show``... starts every provider of the configuration, and a provider that
is a Python program spends about 0.1 CPU second importing gRPC and the plugin machinery first. The first Terraform
command of this process that starts providers also starts :mod:`reproducer.forkserver` for the provider modules
(``python -m reproducer.forkserver``, in a private directory); its socket reaches Terraform's environment as
``REPRODUCER_PROVIDER_SERVER``, and the mirror's wrappers run their provider through it. The server ends with this
process; when it cannot start, the wrappers start their interpreter as before.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import select
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import reproducer
from reproducer.forkserver import PROVIDER_MODULES, PROVIDER_PRELOAD, PROVIDER_SERVER_VARIABLE

#: Subcommands that start no provider (the others may, and get the server).
_WITHOUT_PROVIDERS = frozenset({"fmt", "init", "version", "output", "workspace", "get", "login", "logout"})
_READY_TIMEOUT = 30.0

_SOCKET = "server.sock"


class _Server:
    """This process's provider server: its process and private directory, or None before the first start.

    Only the process that started the server stops it: a child forked later (which inherits this object) never
    ends its parent's server at its own exit.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running: tuple[subprocess.Popen[bytes], Path] | None = None
        self.owner = 0
        atexit.register(self.stop)

    def socket(self) -> Path | None:
        """The socket of the running server, started now if needed; None when it cannot run."""
        with self.lock:
            if self._runs():
                return self.running[1] / _SOCKET if self.running else None
            self.stop()
            self.running, self.owner = _start(), os.getpid()
            return self.running[1] / _SOCKET if self.running else None

    def _runs(self) -> bool:
        running = self.running
        return (
            running is not None
            and self.owner == os.getpid()
            and running[0].poll() is None
            and (running[1] / _SOCKET).is_socket()
        )

    def stop(self) -> None:
        """End the server this process started and remove its directory (at exit, or before starting a new one)."""
        if self.running is not None and self.owner == os.getpid():
            _end(*self.running)
        self.running = None


_SERVER = _Server()


def environment_for(argv: tuple[str, ...]) -> dict[str, str]:
    """``{REPRODUCER_PROVIDER_SERVER: socket}`` for a command that starts providers, once the server runs.

    Empty for a command that starts none (``fmt``, ``init``...) and when the server cannot run.
    """
    subcommand = next((arg for arg in argv if not arg.startswith("-")), "")
    if subcommand in _WITHOUT_PROVIDERS:
        return {}
    path = _SERVER.socket()
    return {PROVIDER_SERVER_VARIABLE: str(path)} if path else {}


def _start() -> tuple[subprocess.Popen[bytes], Path] | None:
    directory = Path(tempfile.mkdtemp(prefix="reproducer-providers-"))
    path = directory / _SOCKET
    package = str(Path(reproducer.__file__).resolve().parent.parent)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": package}
    argv = [sys.executable, "-m", "reproducer.forkserver", str(path), *PROVIDER_MODULES, "--preload", *PROVIDER_PRELOAD]
    try:
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
            start_new_session=True,
        )  # fmt: skip
    except OSError:
        shutil.rmtree(directory, ignore_errors=True)
        return None
    if not _ready(process):
        _end(process, directory)
        return None
    return process, directory


def _ready(process: subprocess.Popen[bytes]) -> bool:
    """Whether the server says ``ready`` within the timeout."""
    assert process.stdout is not None
    readable, _, _ = select.select([process.stdout], [], [], _READY_TIMEOUT)
    return bool(readable) and process.stdout.readline() == b"ready\n"


def _end(process: subprocess.Popen[bytes], directory: Path) -> None:
    with contextlib.suppress(OSError):
        process.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)
    if process.stdout is not None:
        process.stdout.close()
    shutil.rmtree(directory, ignore_errors=True)
