"""Small process, port and child-environment helpers shared by the sandbox, the runners and the data layer."""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
import signal
import socket
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path

from reproducer.errors import SandboxError

#: How long a port handed out stays reserved for its caller to bind it (other callers skip it meanwhile).
PORT_LEASE_SECONDS = 600.0
#: Bases of :func:`free_port_range`: below the kernel's ephemeral ports (32768+) even with the cluster-bus offset,
#: so neither outgoing connections nor :func:`free_port` can take a range's port.
_RANGE_LOW, _RANGE_HIGH, _BUS_OFFSET = 12000, 22700, 10000


def free_port(*, also_free_at_offset: int | None = None) -> int:
    """Return a loopback TCP port nobody listens on (and, optionally, whose ``port + offset`` is free too).

    The port comes from the OS and is leased (see :func:`free_port_range`): no other caller, in any process of
    this user, gets it while the lease lasts.
    """
    with _port_leases() as leases:
        for _ in range(200):
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                port = int(sock.getsockname()[1])
            ports = [port] if also_free_at_offset is None else [port, port + also_free_at_offset]
            if leases.grant(ports):
                return port
    raise SandboxError("no free loopback port pair found", hint="stop other local servers and retry")


def range_ports(base: int, span: int, *, sentinel_offset: int = 1000, sentinels: int = 3) -> list[int]:
    """Every port a :func:`free_port_range` base stands for: the span, its cluster-bus ports, the Sentinel ports."""
    ports = [*range(base, base + span), *range(base + _BUS_OFFSET, base + _BUS_OFFSET + span)]
    return ports + list(range(base + sentinel_offset, base + sentinel_offset + sentinels))


def free_port_range(span: int, *, sentinel_offset: int = 1000, sentinels: int = 3) -> int:
    """A base port whose ``span`` ports, their cluster-bus ports (+10000) and the Sentinel ports are free.

    The ports are leased in a lock file shared by every process of this user for :data:`PORT_LEASE_SECONDS`,
    so concurrent callers (parallel test workers, parallel runs) always get disjoint ranges. The scan starts
    at a random base so that callers that do not share the lease file rarely meet.
    """
    bases = list(range(_RANGE_LOW, _RANGE_HIGH - span - sentinel_offset, 10))
    start = random.randrange(len(bases)) if bases else 0
    with _port_leases() as leases:
        for base in bases[start:] + bases[:start]:
            if leases.grant(range_ports(base, span, sentinel_offset=sentinel_offset, sentinels=sentinels)):
                return base
    raise SandboxError("no free range of loopback ports", hint="stop other local servers and retry")


class _PortLeases:
    """The leased ports of the lease file (port → expiry, wall-clock seconds), held under an exclusive lock."""

    def __init__(self, text: str, now: float) -> None:
        self.leases: dict[int, float] = {}
        for line in text.splitlines():
            with contextlib.suppress(ValueError):
                port, expiry = line.split()
                if float(expiry) > now:
                    self.leases[int(port)] = float(expiry)
        self.expiry = now + PORT_LEASE_SECONDS

    def grant(self, ports: list[int]) -> bool:
        """Lease ``ports`` if none is leased and each can be bound now; whether they were."""
        if any(port in self.leases for port in ports) or not all(_is_free(port) for port in ports):
            return False
        self.leases.update(dict.fromkeys(ports, self.expiry))
        return True

    def text(self) -> str:
        return "".join(f"{port} {expiry:.0f}\n" for port, expiry in sorted(self.leases.items()))


@contextlib.contextmanager
def _port_leases() -> Iterator[_PortLeases]:
    """The lease file, locked for this block and rewritten at its end (expired leases dropped)."""
    path = Path(tempfile.gettempdir()) / f"reproducer-port-leases-{os.getuid()}"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    with os.fdopen(fd, "r+", encoding="ascii") as file:
        fcntl.flock(file, fcntl.LOCK_EX)
        leases = _PortLeases(file.read(), time.time())
        try:
            yield leases
        finally:
            file.seek(0)
            file.truncate()
            file.write(leases.text())
            file.flush()


def _is_free(port: int) -> bool:
    if port > 65535:
        return False
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


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
