"""Test-suite plugin: `--reliability-report PATH` writes docs/reliability.md from the fault and bad-input tests.

Also: the unit tier starts no server (a unit test that runs valkey-server fails), and each process of a
parallel run (pytest-xdist worker) gets its own sandbox state directory.
"""

from __future__ import annotations

import gc
import json
import os
import shlex
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

UNIT_TIER = Path(__file__).parent / "unit"
INTEGRATION_TIER = Path(__file__).parent / "integration"
HOSTS_TIER = Path(__file__).parent / "hosts"
_SHORT_BASETEMP = pytest.StashKey[Path]()
_PASSED = pytest.StashKey[bool]()
SERVERS = ("valkey-server", "valkey-sentinel")
#: Modules whose tests take tens of seconds each (Ansible runs, Terraform plans, a demo job, big data sets), the
#: one with the longest test (or xdist group) first: a parallel run hands them out in this order, before the
#: others. Measured with ``pytest --durations`` on 2 cores (the local Sentinel group, the bastion and the sandbox
#: groups take 190 to 250 s each, test_job's resume 120 s); a stale entry only costs order.
SLOW_MODULES = (
    "test_local_target.py",
    "test_bastion.py",
    "test_cli_sandbox.py",
    "test_job.py",
    "test_cloud_migrate.py",
    "test_twin_digitalocean.py",
    "test_twin_azure.py",
    "test_twin_scaleway.py",
    "test_live_roundtrip.py",
    "test_backend.py",
    "test_signals.py",
    "test_memory_bounds.py",
    "test_plan.py",
    "test_add_target.py",
    "test_ansible_trust.py",
    "test_ansible_lint.py",
    "test_import_trust.py",
    "test_cutover.py",
    "test_cloud_apply.py",
    "test_terraform_offline.py",
    "test_migrate.py",
    "test_render_network.py",
    "test_edges.py",
    "test_twin_aws.py",
    "test_twin_ovh.py",
    "test_faults_target.py",
    "test_twin_google.py",
    "test_twin_aiven.py",
    "test_plan_replace.py",
    "test_render_terraform.py",
    "test_ci_examples.py",
    "test_copy_processes.py",
    "test_wheel.py",
    "test_live_inspect.py",
    "test_report_html_job.py",
)
STUB = """#!/bin/sh
case "$1" in --version|-v) exec {real} "$@";; esac
echo "$0 $*" >> {marker}
echo "unit tests start no server: move this test to tests/integration" >&2
exit 97
"""

_RESULTS: list[tuple[tuple[str, int, str], dict[str, Any]]] = []


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--reliability-report", default=None, help="write the fault/bad-input report (markdown) here")


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Register the markers; give a parallel run a short base temporary directory of its own.

    pytest-xdist puts each worker's directories under ``popen-gwN/``: with pytest's default root the scratch
    server's unix socket path then overruns the 107 bytes a socket path may have. A fresh ``/tmp/pytest-XXXX``
    per run keeps it short and never shared with another run.
    """
    config.addinivalue_line("markers", "fault(description, ends): a fault the tool must survive")
    config.addinivalue_line("markers", "bad_input: a bad input that must get a clear error")
    parallel = config.pluginmanager.hasplugin("xdist") and config.getoption("numprocesses", None)
    if parallel and not hasattr(config, "workerinput") and not config.option.basetemp:
        config.option.basetemp = tempfile.mkdtemp(prefix="pytest-")
        config.stash[_SHORT_BASETEMP] = Path(config.option.basetemp)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Remove a parallel run's base temporary directory when every test passed (kept for a look otherwise)."""
    basetemp = config.stash.get(_SHORT_BASETEMP, None)
    if basetemp is not None and config.stash.get(_PASSED, False):
        shutil.rmtree(basetemp, ignore_errors=True)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test under tests/integration carries the ``integration`` marker (``-m integration`` selects the tier).

    The tests under tests/hosts share one set of six hosts: in a parallel run (``--dist loadgroup``) they all go
    to one worker, which runs them while the others run the rest. So do the tests of a module that share a costly
    module-scoped fixture (:func:`_module_fixtures`). The slow modules are handed out first (:func:`_schedule_rank`).
    """
    for item in items:
        parents = Path(str(item.path)).parents
        if INTEGRATION_TIER in parents:
            item.add_marker(pytest.mark.integration)
        elif HOSTS_TIER in parents:
            item.add_marker(pytest.mark.xdist_group("hosts"))
    _group_by_module_fixtures([item for item in items if item.get_closest_marker("xdist_group") is None])
    items.sort(key=_schedule_rank)


def _group_by_module_fixtures(items: list[pytest.Item]) -> None:
    """One xdist group per set of tests of a module linked by the costly module-scoped fixtures they share."""
    parent: dict[str, str] = {}

    def root(key: str) -> str:
        while parent.setdefault(key, key) != key:
            key = parent[key]
        return key

    used = {
        item.nodeid: [f"{item.nodeid.split('::', 1)[0]}::{name}" for name in _module_fixtures(item)] for item in items
    }
    for keys in used.values():
        for key in keys:
            parent[root(key)] = root(keys[0])
    names: dict[str, str] = {}
    for key in sorted(parent):
        names.setdefault(root(key), key)
    for item in items:
        if used[item.nodeid]:
            item.add_marker(pytest.mark.xdist_group(names[root(used[item.nodeid][0])]))


#: Module-scoped fixtures that cost less to build again than the parallelism a group would take away (a
#: Terraform mirror of a few wrapper files).
CHEAP_MODULE_FIXTURES = frozenset({"cli_config", "twins"})


def _module_fixtures(item: pytest.Item) -> list[str]:
    """The costly module-scoped fixtures ``item`` uses (a deployment, a twin apply, a dataset), sorted.

    The tests that use the same ones go to one worker (``--dist loadgroup``): handed to several workers, each
    would build them again.
    """
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return []
    return sorted(
        name
        for name, definitions in info.name2fixturedefs.items()
        if name not in CHEAP_MODULE_FIXTURES and any(d.scope == "module" for d in definitions)
    )


def _schedule_rank(item: pytest.Item) -> tuple[int, int]:
    """The slow modules first (in :data:`SLOW_MODULES` order), then the other servers' tests, the unit tier last.

    pytest-xdist hands tests out in collection order: a long test handed out last keeps one worker busy while the
    others idle. The order changes nothing else (each module keeps its order, fixtures their scopes).
    """
    path = Path(str(item.path))
    if path.name in SLOW_MODULES:
        return (0, SLOW_MODULES.index(path.name))
    return (2 if UNIT_TIER in path.parents and item.get_closest_marker("integration") is None else 1, 0)


@pytest.fixture(scope="session", autouse=True)
def _own_sandbox_state(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The default sandbox directory of this test process (never ~/.local/state, never another worker's)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("REPRODUCER_SANDBOX_DIR", str(tmp_path_factory.mktemp("sandbox-state")))
        yield


@pytest.fixture(scope="session")
def _server_stubs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory of valkey-server/valkey-sentinel stand-ins that record being run and fail (``--version`` works)."""
    stubs = tmp_path_factory.mktemp("no-servers")
    for name in SERVERS:
        real = shutil.which(name) or "false"
        (stubs / name).write_text(STUB.format(marker=stubs / "started", real=shlex.quote(real)))
        (stubs / name).chmod(0o755)
    return stubs


@pytest.fixture(autouse=True)
def _unit_tests_start_no_server(request: pytest.FixtureRequest) -> Iterator[None]:
    """In tests/unit, valkey-server and valkey-sentinel are stand-ins: a test that starts one fails.

    Unless it is marked ``integration`` (``make unit`` deselects those; ``make integration`` runs them).
    """
    node = request.node
    if UNIT_TIER not in Path(str(node.path)).parents or node.get_closest_marker("integration") is not None:
        yield
        return
    stubs: Path = request.getfixturevalue("_server_stubs")
    marker = stubs / "started"
    marker.unlink(missing_ok=True)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PATH", f"{stubs}{os.pathsep}{os.environ.get('PATH', '')}")
        yield
    if marker.exists():
        started = marker.read_text().split()
        pytest.fail(
            f"a unit test ran {Path(started[0]).name} (unit tests start no server): move it to tests/integration"
        )


@pytest.fixture(autouse=True)
def _process_state_restored() -> Iterator[None]:
    """SIGINT and SIGTERM's handlers, ``sys.unraisablehook`` and the collector's pace as they were before each test.

    A test that runs ``cli.main`` in this process gets the CLI's handlers and its collector pace
    (``reproducer.heap``) for the whole process: a later test in the same worker must not inherit them.
    """
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    hook, threshold = sys.unraisablehook, gc.get_threshold()
    yield
    if threading.current_thread() is threading.main_thread():  # where signal handlers can be set
        for signum, handler in handlers.items():
            if handler is not None:  # None: set outside Python, left as it is
                signal.signal(signum, handler)
    sys.unraisablehook = hook
    gc.set_threshold(*threshold)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Attach a fault's or bad input's row to its report (which pytest-xdist carries to the controller)."""
    outcome = yield
    report = outcome.get_result()
    if not _decides(report):
        return
    row = _reliability_row(item, report.outcome)
    if row is not None:  # a new list: pytest shares the item's with its other reports
        report.user_properties = [*report.user_properties, ("reliability", json.dumps(row))]


def _decides(report: pytest.TestReport) -> bool:
    """Whether this report gives a test's outcome: its call, or a setup that failed."""
    return report.when == "call" or (report.when == "setup" and report.outcome != "passed")


def _reliability_row(item: pytest.Item, outcome: str) -> dict[str, Any] | None:
    fault = item.get_closest_marker("fault")
    if fault is not None:
        ends = fault.kwargs.get("ends", "verify")
        return {"kind": "fault", "name": item.name, "description": fault.args[0], "ends": ends, "outcome": outcome}
    if item.get_closest_marker("bad_input") is not None:
        case = getattr(item, "callspec", None)
        params = case.params if case else {}
        return {"kind": "bad_input", "name": item.name, "outcome": outcome, **params.get("meta", {})}
    return None


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Collect the rows, in the single process or on the pytest-xdist controller alike."""
    rows = [json.loads(value) for key, value in report.user_properties if key == "reliability"]
    if _decides(report):
        _RESULTS.extend((_test_order(report), row) for row in rows)


def _test_order(report: pytest.TestReport) -> tuple[str, int, str]:
    """File, line of the test function, then its id: the same order however the tests were spread over workers."""
    path, line, _ = report.location
    return (path, line if line is not None else -1, report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Write the report (once, on the controller when run in parallel)."""
    session.config.stash[_PASSED] = exitstatus == 0
    path = session.config.getoption("--reliability-report")
    if path and _RESULTS and not hasattr(session.config, "workerinput"):
        ordered = [row for _, row in sorted(_RESULTS, key=lambda pair: pair[0])]
        Path(path).write_text(render_report(ordered), encoding="utf-8")


def render_report(results: list[dict[str, Any]]) -> str:
    """The markdown report: faults survived, bad inputs tried, keys lost."""
    faults = [r for r in results if r["kind"] == "fault"]
    bad = [r for r in results if r["kind"] == "bad_input"]
    lost = {
        "verify": "0 (verify: no difference)",
        "error": "0: stops with a clear error; nothing counted as copied that the target does not hold",
        "no_output": "n/a: stops with a clear error and leaves no partial file",
        "api_ok": "n/a (no data moved): the spec read is complete",
        "api_error": "n/a (no data moved): stops with a message naming the fix",
    }
    lines = [
        "# Reliability report",
        "",
        "Generated by `make reliability` from the test run (do not edit by hand).",
        "",
        f"{sum(r['outcome'] == 'passed' for r in faults)}/{len(faults)} faults survived; "
        f"{sum(r['outcome'] == 'passed' for r in bad)}/{len(bad)} bad inputs rejected clearly.",
        "",
        "## Faults",
        "",
        "| fault | result | keys lost | test |",
        "|---|---|---|---|",
    ]
    lines += [f"| {r['description']} | {r['outcome']} | {_lost(lost, r)} | `{r['name']}` |" for r in faults]
    lines += ["", "## Bad inputs", "", "| case | exit code | message | result |", "|---|---|---|---|"]
    lines += [
        f"| {r.get('description', r['name'])} | {r.get('exit_code', '')} | {r.get('message', '')} | {r['outcome']} |"
        for r in bad
    ]
    return "\n".join(lines) + "\n"


def _lost(lost: dict[str, str], result: dict[str, Any]) -> str:
    """The keys-lost column: a known ending's sentence, a test's own words, or a dash when it failed."""
    return lost.get(result["ends"], result["ends"]) if result["outcome"] == "passed" else "—"
