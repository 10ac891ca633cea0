"""A pytest plugin that measures the CPU each test module costs: ``pytest -p tests.support.cpuprofile``.

Each process (each pytest-xdist worker) adds, per test, the CPU seconds it and its reaped children used from the
start of the test's setup to the end of its teardown (so a module-scoped fixture's cost lands on the module's
first and last tests), and the wall seconds. Rows go to ``$CPU_PROFILE_DIR/<worker>-<pid>.json`` (default
``.cpu-profile/``); ``python -m tests.support.cpuprofile DIR`` prints the per-module table, most CPU first.
A test that runs pytest itself (``test_add_target``) adds its child's rows too: they count twice.

Children that outlive their parent's wait (a daemon's grandchildren reaped by init) are not counted: measure the
whole run's total with a cgroup or ``/usr/bin/time`` around it.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

_ROWS: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0, 0.0])


def _cpu() -> tuple[float, float]:
    """CPU seconds (user + system) of this process and of its reaped children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """Add one test's setup, call and teardown to its module's row."""
    own, children = _cpu()
    start = time.monotonic()
    yield
    own_after, children_after = _cpu()
    row = _ROWS[item.nodeid.split("::")[0]]
    row[0] += own_after - own
    row[1] += children_after - children
    row[2] += time.monotonic() - start
    row[3] += 1
    _write(item.config)


def _write(config: pytest.Config) -> None:
    """Write this process's rows so far (after every test: a run stopped midway still leaves its table)."""
    worker: Any = getattr(config, "workerinput", {}).get("workerid", "main")
    directory = Path(os.environ.get("CPU_PROFILE_DIR", ".cpu-profile"))
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{worker}-{os.getpid()}.json").write_text(json.dumps(dict(_ROWS)))


def table(directory: Path) -> str:
    """The per-module table of every process's rows, most CPU first."""
    total: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0, 0.0])
    for path in directory.glob("*.json"):
        for module, row in json.loads(path.read_text()).items():
            total[module] = [a + b for a, b in zip(total[module], row, strict=True)]
    lines = [f"{'cpu-s':>7} {'self':>7} {'child':>7} {'wall-s':>7} {'tests':>5}  module"]
    for module, (own, children, wall, count) in sorted(total.items(), key=lambda kv: -(kv[1][0] + kv[1][1])):
        lines.append(f"{own + children:7.1f} {own:7.1f} {children:7.1f} {wall:7.1f} {int(count):5d}  {module}")
    sums = [sum(row[i] for row in total.values()) for i in range(4)]
    lines.append(f"{sums[0] + sums[1]:7.1f} {sums[0]:7.1f} {sums[1]:7.1f} {sums[2]:7.1f} {int(sums[3]):5d}  TOTAL")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(Path(sys.argv[1] if len(sys.argv) > 1 else ".cpu-profile")))
