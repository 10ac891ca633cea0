"""Shared pieces of the "no traceback ever" property tests (tests/unit/test_no_traceback.py).

Every failure at once, grouped::

    FUZZ_SURVEY=/tmp/survey.jsonl pytest -q tests/unit/test_no_traceback.py
    python -m tests.fuzz_helpers /tmp/survey.jsonl

A command runs in a fresh, empty directory that is at once its working directory, ``HOME``, every
``XDG_*`` directory and ``TMPDIR``, with no ``OVH_*`` or ``REPRODUCER_*`` variable inherited. Before and
after, the directory's tree is recorded; the only changes allowed are under the run/out directories the
command names. :func:`run_in_process` runs ``reproducer.cli.main`` in this process (fast: most examples
take milliseconds); :func:`run_subprocess` runs ``python -m reproducer.cli`` for the few cases that may
hang or start servers.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from tests.support import cli
from tests.support.wait import eventually

ALLOWED_EXIT_CODES = {1, 2, 3, 4}
_ENV_DIRS = ("HOME", "TMPDIR", "TMP", "TEMP", "XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME")
_DROPPED_PREFIXES = ("OVH_", "REPRODUCER_", "VALKEY", "REDIS", "ANSIBLE_", "TF_")


@dataclass
class Outcome:
    """What one command did: exit code, output, and the exception that escaped ``main`` (if any)."""

    argv: list[str]
    exit_code: int | None
    stdout: str
    stderr: str
    escaped: BaseException | None = None
    escaped_traceback: str = ""
    stray: list[str] = field(default_factory=list)
    timed_out: bool = False

    @property
    def output(self) -> str:
        """Everything the command printed, stdout and stderr."""
        return self.stdout + self.stderr

    def describe(self) -> str:
        """A readable account for an assertion message: argv, exit code, output tail, escaped exception."""
        lines = [
            f"argv: {self.argv!r}",
            f"exit code: {self.exit_code!r}" + (" (timed out)" if self.timed_out else ""),
            "stderr (tail):",
            *("    " + line for line in self.stderr.strip().splitlines()[-15:]),
        ]
        if self.escaped is not None:
            lines += ["exception escaped main():", *("    " + x for x in self.escaped_traceback.splitlines()[-12:])]
        if self.stray:
            lines += [f"written outside the run/out directories: {self.stray[:10]}"]
        return "\n".join(lines)


_HELD: list[socket.socket] = []


def closed_port() -> int:
    """A loopback port where connections are refused: bound but never listening, and held for the session.

    Held rather than closed, so that no server started meanwhile (by another test) can take the port and
    receive what a test sends to it.
    """
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    _HELD.append(sock)
    return int(sock.getsockname()[1])


def isolated_env(root: Path, extra: dict[str, str] | None = None) -> dict[str, str | None]:
    """Environment overrides: HOME, XDG_* and TMPDIR at ``root``, secrets and tool settings removed."""
    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith(_DROPPED_PREFIXES)}
    env.update({name: str(root) for name in _ENV_DIRS})
    env["XDG_RUNTIME_DIR"] = str(root)
    env["NO_COLOR"] = "1"
    if os.environ.get("FUZZ_SURVEY"):
        env["REPRODUCER_DEBUG"] = "1"  # a survey wants the traceback of each internal error, to locate it
    env["COLUMNS"] = "200"
    env.update(extra or {})
    return env


def snapshot(root: Path) -> dict[str, tuple[str, int, int]]:
    """Every path under ``root`` with its kind, size and modification time."""
    found: dict[str, tuple[str, int, int]] = {}
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(directory, name)
            with contextlib.suppress(OSError):
                info = path.lstat()
                kind = "dir" if path.is_dir() and not path.is_symlink() else "file"
                size = 0 if kind == "dir" else info.st_size
                mtime = 0 if kind == "dir" else info.st_mtime_ns
                found[str(path.relative_to(root))] = (kind, size, mtime)
    return found


def stray_changes(
    before: dict[str, tuple[str, int, int]], after: dict[str, tuple[str, int, int]], allowed: Sequence[str]
) -> list[str]:
    """Paths created, changed or removed outside the ``allowed`` relative directories."""

    def inside(path: str) -> bool:
        return any(path == a or path.startswith(a.rstrip("/") + "/") for a in allowed)

    changed = {p for p in before.keys() | after.keys() if before.get(p) != after.get(p)}
    return sorted(p for p in changed if not inside(p))


@contextlib.contextmanager
def _inside(root: Path) -> Iterator[None]:
    previous_cwd, previous_tmp = os.getcwd(), tempfile.tempdir
    previous_handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    os.chdir(root)
    tempfile.tempdir = str(root)
    try:
        yield
    finally:
        os.chdir(previous_cwd)
        tempfile.tempdir = previous_tmp
        for signum, handler in previous_handlers.items():
            signal.signal(signum, handler)


def run_in_process(
    argv: Sequence[str], root: Path, *, allowed: Sequence[str] = (), env: dict[str, str] | None = None
) -> Outcome:
    """Run ``reproducer <argv>`` through ``reproducer.cli.main`` in this process, isolated in ``root``."""
    from reproducer.cli import main

    before = snapshot(root)
    runner = CliRunner()
    escaped: BaseException | None = None
    escaped_tb = ""
    code: int | None = 0
    with _inside(root), runner.isolation(env=isolated_env(root, env)) as (out, err, _):
        try:
            main(list(argv))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) or exc.code is None else 1
        except BaseException as exc:  # the property: nothing but SystemExit escapes main()
            escaped, escaped_tb, code = exc, traceback.format_exc(), None
        stdout = out.getvalue().decode("utf-8", "replace")
        stderr = err.getvalue().decode("utf-8", "replace")
    outcome = Outcome(list(argv), code, stdout, stderr, escaped, escaped_tb)
    outcome.stray = stray_changes(before, snapshot(root), allowed)
    return outcome


def run_subprocess(
    argv: Sequence[str],
    root: Path,
    *,
    allowed: Sequence[str] = (),
    env: dict[str, str] | None = None,
    timeout: float = 30.0,
) -> Outcome:
    """Run ``python -m reproducer.cli <argv>`` isolated in ``root``; on timeout, kill it and what it started."""
    before = snapshot(root)
    overrides = isolated_env(root, env)
    child_env = {k: v for k, v in os.environ.items() if overrides.get(k, v) is not None}
    child_env.update({k: v for k, v in overrides.items() if v is not None})
    child_env["PYTHONPATH"] = str(Path(__file__).parents[1])
    proc = subprocess.Popen(
        cli.argv(*argv),
        cwd=root,
        env=child_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    timed_out = False
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        killed = cli.kill_tree(proc.pid)
        stdout, stderr = proc.communicate()
        eventually(
            lambda: not any(Path(f"/proc/{pid}").exists() for pid in killed), "the killed processes gone", timeout=5
        )
    outcome = Outcome(
        list(argv),
        None if timed_out else proc.returncode,
        stdout.decode("utf-8", "replace"),
        stderr.decode("utf-8", "replace"),
        timed_out=timed_out,
    )
    outcome.stray = stray_changes(before, snapshot(root), allowed)
    return outcome


def problems(outcome: Outcome, *, may_succeed: bool = False, secrets: Sequence[str] = ()) -> list[str]:
    """Everything wrong with an outcome: the "no traceback ever" property, as a list of broken rules.

    A clean refusal is an ``error:`` line and a ``hint:`` line on stderr (or click's ``Error:`` with its
    usage line, for a flag click itself refuses) and an exit code of 1, 2, 3 or 4. With ``may_succeed``,
    exit 0 is accepted too. Never: an exception escaping ``main``, "Traceback" in the output, the CLI's
    last-resort "internal error:" (an unexpected exception, only masked), a file written outside the
    run/out directories, a secret echoed.
    """
    found = []
    if outcome.timed_out:
        found.append("did not finish in time (hang instead of a fast, clear error)")
    if outcome.escaped is not None:
        found.append(f"exception escaped main(): {type(outcome.escaped).__name__}: {outcome.escaped}"[:300])
    if "Traceback" in outcome.output:
        found.append("'Traceback' in the output")
    if "internal error:" in outcome.stderr:
        found.append("a bug reached the last-resort handler ('internal error:' instead of a clear error)")
    succeeded = may_succeed and outcome.exit_code == 0
    if not succeeded and not outcome.timed_out and outcome.escaped is None:
        if outcome.exit_code not in ALLOWED_EXIT_CODES:
            found.append(f"exit code {outcome.exit_code!r} not in {sorted(ALLOWED_EXIT_CODES)}")
        usage = "Error:" in outcome.stderr and "Usage:" in outcome.stderr
        if not usage and "error:" not in outcome.stderr:
            found.append("no 'error:' line on stderr")
        if not usage and "hint:" not in outcome.stderr:
            found.append("no 'hint:' line on stderr")
    if outcome.stray:
        found.append(f"wrote outside the run/out directories: {outcome.stray[:8]}")
    found += [f"secret {s!r} (or its first 8 characters) echoed in the output" for s in secrets if _echoed(s, outcome)]
    return found


def _echoed(secret: str, outcome: Outcome) -> bool:
    """Whether ``secret``, or a fragment long enough to matter (its first 8 characters), is in the output."""
    return bool(secret) and (secret in outcome.output or (len(secret) >= 12 and secret[:8] in outcome.output))


def check(outcome: Outcome, *, may_succeed: bool = False, secrets: Sequence[str] = ()) -> None:
    """Assert the "no traceback ever" property on ``outcome`` (see :func:`problems`).

    With ``FUZZ_SURVEY=FILE`` in the environment, every broken outcome is appended to FILE as a JSON line
    and nothing is asserted: one run then lists every failure instead of stopping at the first
    (``python -m tests.fuzz_helpers FILE`` groups them by exception and place). A survey also sets
    ``REPRODUCER_DEBUG=1``, so an internal error carries its traceback.
    """
    broken = problems(outcome, may_succeed=may_succeed, secrets=secrets)
    survey = os.environ.get("FUZZ_SURVEY")
    if survey:
        if broken:
            record = {"argv": outcome.argv, "exit_code": outcome.exit_code, "problems": broken}
            record |= {"stderr": outcome.stderr[-1500:], "escaped": outcome.escaped_traceback[-1500:]}
            with open(survey, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(record) + "\n")
        return
    assert not broken, "; ".join(broken) + "\n" + outcome.describe()


def summarize(survey: Path) -> str:
    """Group a ``FUZZ_SURVEY`` file by command, exception and the innermost reproducer frame, one line each."""
    import re

    groups: dict[tuple[str, str, str, str], list[dict[str, Any]]] = {}
    for line in survey.read_text(encoding="utf-8").splitlines():
        record: dict[str, Any] = json.loads(line)
        trace = str(record["escaped"] or record["stderr"])
        frames = re.findall(r'File "[^"]*/(reproducer/[^"]+)", line (\d+), in (\w+)', trace)
        raised = [x for x in trace.splitlines() if re.match(r"^[\w.]+(Error|Exception)\b", x)]
        where = ":".join(frames[-1]) if frames else ""
        problems = "; ".join(str(p)[:70] for p in record["problems"])
        command = str(record["argv"][0]) if record["argv"] else ""
        key = (command, raised[-1][:100] if raised else "", where, problems)
        groups.setdefault(key, []).append(record)
    lines = []
    for (command, raised, where, problems), records in sorted(groups.items()):
        lines.append(
            f"{len(records):3} {command}: {problems}\n      {raised} at {where}\n      e.g. {records[0]['argv']}"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    print(summarize(Path(sys.argv[1])))
