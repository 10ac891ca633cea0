"""The one way tests run the ``reproducer`` command: ``python -m reproducer.cli`` in a child process."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

#: How long a command may run before the test fails (pytest's own timeout is 300 s).
TIMEOUT = 280.0


def argv(*args: str | Path) -> list[str]:
    """The command line of ``reproducer <args>``."""
    return [sys.executable, "-m", "reproducer.cli", *map(str, args)]


def run(
    *args: str | Path, cwd: Path | None = None, env: Mapping[str, str] | None = None, timeout: float = TIMEOUT
) -> subprocess.CompletedProcess[str]:
    """Run ``reproducer <args>`` to the end; its exit code, stdout and stderr (text)."""
    return subprocess.run(argv(*args), **_child(cwd, env), capture_output=True, text=True, timeout=timeout, check=False)


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
