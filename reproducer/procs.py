"""Small process, port and child-environment helpers shared by the sandbox, the runners and the data layer."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from reproducer.errors import SandboxError


def free_port(*, also_free_at_offset: int | None = None) -> int:
    """Return a loopback TCP port nobody listens on (and, optionally, whose ``port + offset`` is free too)."""
    for _ in range(200):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if also_free_at_offset is None or _is_free(port + also_free_at_offset):
            return port
    raise SandboxError("no free loopback port pair found", hint="stop other local servers and retry")


def _is_free(port: int) -> bool:
    if port > 65535:
        return False
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_range(span: int, *, sentinel_offset: int = 1000, sentinels: int = 3) -> int:
    """A base port whose ``span`` ports, their cluster-bus ports (+10000) and the Sentinel ports are free."""
    for base in range(21000, 40000, 97):
        ports = [*range(base, base + span), *range(base + 10000, base + 10000 + span)]
        ports += list(range(base + sentinel_offset, base + sentinel_offset + sentinels))
        if all(_is_free(port) for port in ports):
            return base
    raise SandboxError("no free range of loopback ports", hint="stop other local servers and retry")


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    status = Path(f"/proc/{pid}/stat")
    with contextlib.suppress(OSError):
        return status.read_text().split(") ", 1)[1][0] != "Z"
    return True


def stop_pid(pid: int, *, grace: float = 5.0) -> None:
    """Stop a process by pid: SIGTERM, then SIGKILL after ``grace`` seconds; reap it if it is our child."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if not _wait_gone(pid, grace):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        _wait_gone(pid, grace)


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)
        if not pid_alive(pid):
            return True
        time.sleep(0.02)
    return False


def wait_until(predicate: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.05) -> None:
    """Poll ``predicate`` until it is true; raise a SandboxError naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if predicate():
                return
        time.sleep(interval)
    raise SandboxError(f"timed out after {timeout:.0f}s waiting for {what}", retryable=True)


#: What every child process may inherit from ours: where programs and home are, language, temp, terminal, agent.
BASE_ENV_ALLOWED = (
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LANGUAGE",
    "LC_*",
    "TZ",
    "TMPDIR",
    "TERM",
    "SSH_AUTH_SOCK",
)


def child_env(
    allowed: Iterable[str] = (), *, extra: Mapping[str, str] | None = None, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment for a child process: an allow-list of ``base`` (``os.environ``), plus ``extra``.

    Nothing is passed on unless named: :data:`BASE_ENV_ALLOWED` and ``allowed``, where a name ending in ``*``
    is a prefix (``ANSIBLE_*``). Passwords, tokens and URLs of this process (``SRC_PW``, ``DATABASE_URL``...)
    never reach a child, nor what a child records of its environment. ``extra`` entries are added as given.
    """
    names = (*BASE_ENV_ALLOWED, *allowed)
    exact = {name for name in names if not name.endswith("*")}
    prefixes = tuple(name[:-1] for name in names if name.endswith("*"))
    source = os.environ if base is None else base
    env = {k: v for k, v in source.items() if k in exact or k.startswith(prefixes)}
    env.update(extra or {})
    return env
