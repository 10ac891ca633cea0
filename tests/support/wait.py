"""Waiting on a condition instead of sleeping a fixed time, and running a call in a background thread."""

from __future__ import annotations

import contextlib
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def eventually(
    check: Callable[[], T],
    what: str,
    *,
    timeout: float = 30.0,
    interval: float = 0.05,
    proc: subprocess.Popen[Any] | None = None,
    ignoring: tuple[type[BaseException], ...] = (),
) -> T:
    """Poll ``check`` until it returns a true value, and return that value.

    Fails with ``what`` once ``timeout`` seconds have passed, or at once if ``proc`` exits first (with its
    stderr when it was piped). Exceptions of the ``ignoring`` types count as "not yet".
    """
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(*ignoring):
            if value := check():
                return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"exited {proc.returncode} before {what}: {_stderr(proc)}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def _stderr(proc: subprocess.Popen[Any]) -> str:
    if proc.stderr is None:
        return "(stderr not captured)"
    data = proc.stderr.read()
    return data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data)


class Background:
    """``fn(*args, **kwargs)`` running in a thread; :meth:`result` joins it and returns or re-raises."""

    def __init__(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self._value: Any = None
        self._error: BaseException | None = None

        def run() -> None:
            try:
                self._value = fn(*args, **kwargs)
            except BaseException as exc:  # handed to the test thread by result()
                self._error = exc

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    @property
    def running(self) -> bool:
        """Whether the call has not returned yet."""
        return self._thread.is_alive()

    def result(self, timeout: float = 120.0) -> Any:
        """Wait for the call (at most ``timeout`` seconds); its return value, or its exception raised here."""
        self._thread.join(timeout)
        assert not self._thread.is_alive(), f"still running after {timeout} s"
        if self._error is not None:
            raise self._error
        return self._value


def midway(running: Background, progress: Callable[[], int], at_least: int, timeout: float = 60.0) -> None:
    """Wait until ``progress()`` reaches ``at_least`` while ``running`` has not returned: a fault injected now
    lands in the middle of the work.
    """
    eventually(lambda: progress() >= at_least or not running.running, f"progress to reach {at_least}", timeout=timeout)
    if not running.running:
        running.result(0)  # raises the call's own error, if that is why it stopped
        raise AssertionError(f"finished before reaching {at_least}: too late to inject the fault midway")
