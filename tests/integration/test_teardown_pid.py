"""The local teardown signals only the valkey processes of its deployment, whatever its pidfiles say.

A pidfile is a file in a data directory anyone could have written: ``-1`` would signal every process, ``1``
init, and any other number an unrelated process. The teardown checks /proc first and skips the others.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from reproducer.pipeline import apply as pipeline_apply
from reproducer.procs import pid_alive

pytestmark = pytest.mark.integration


def data_dir_with(tmp_path: Path, pidfiles: dict[str, str]) -> Path:
    """An output directory whose local data directory holds the given pidfiles (name → content)."""
    out = tmp_path / "out"
    out.mkdir()
    data = pipeline_apply.local_data_dir(out)
    for name, content in pidfiles.items():
        (data / name).mkdir(parents=True)
        (data / name / "valkey.pid").write_text(content)
    return out


@pytest.fixture
def unrelated():
    """A process that is not ours to stop."""
    proc = subprocess.Popen(["sleep", "300"])
    yield proc
    proc.kill()
    proc.wait()


def test_teardown_leaves_an_unrelated_process_named_by_a_pidfile_alive(tmp_path, unrelated):
    out = data_dir_with(tmp_path, {"node-1": f"{unrelated.pid}\n"})
    pipeline_apply.destroy_local(out)
    assert unrelated.poll() is None and pid_alive(unrelated.pid)
    assert not pipeline_apply.local_data_dir(out).exists()


def test_teardown_refuses_hostile_pidfiles(tmp_path, unrelated):
    """-1 (every process), 1 (init), 0 (our process group), shell text: nothing is signalled, we survive."""
    marker = tmp_path / "ran"
    out = data_dir_with(
        tmp_path,
        {
            "all": "-1\n",
            "init": "1\n",
            "group": "0\n",
            "shell": f"$(touch {marker})\n",
            "mixed": f"{unrelated.pid} -1\n",
        },
    )
    pipeline_apply.destroy_local(out)
    assert unrelated.poll() is None and pid_alive(unrelated.pid) and pid_alive(1)
    assert not marker.exists() and not pipeline_apply.local_data_dir(out).exists()


def posing_as_valkey(cwd: Path) -> subprocess.Popen[bytes]:
    """A process whose program name is ``valkey-server``, running in ``cwd``: it never removes any pidfile."""
    return subprocess.Popen(["bash", "-c", "exec -a valkey-server sleep 300"], cwd=cwd)


def test_dead_pids_in_stale_pidfiles_cost_no_wait(tmp_path, unrelated):
    """Pids of processes long gone: nothing is signalled and no 30-second wait is spent on any of them."""
    dead = [subprocess.Popen(["true"]) for _ in range(3)]
    for proc in dead:
        proc.wait()
    out = data_dir_with(tmp_path, {f"node-{i}": f"{proc.pid}\n" for i, proc in enumerate(dead)})
    started = time.monotonic()
    pipeline_apply.destroy_local(out)
    assert time.monotonic() - started < 30
    assert unrelated.poll() is None and not pipeline_apply.local_data_dir(out).exists()


def test_a_valkey_of_another_deployment_named_by_a_stale_pidfile_is_left_alone(tmp_path):
    """The pid was reused by a valkey-server of another directory: it is not this deployment's to stop."""
    elsewhere = tmp_path / "other-deployment"
    elsewhere.mkdir()
    other = posing_as_valkey(elsewhere)
    try:
        out = data_dir_with(tmp_path, {"node-1": f"{other.pid}\n"})
        pipeline_apply.destroy_local(out)
        assert other.poll() is None and pid_alive(other.pid)
        assert not pipeline_apply.local_data_dir(out).exists()
    finally:
        other.kill()
        other.wait()


def test_a_stopped_server_that_leaves_its_pidfile_behind_costs_no_wait(tmp_path):
    """The teardown waits for the process to end, not for a pidfile a killed server may never remove."""
    out = data_dir_with(tmp_path, {"node-1": ""})
    node = pipeline_apply.local_data_dir(out) / "node-1"
    ours = posing_as_valkey(node)
    try:
        (node / "valkey.pid").write_text(f"{ours.pid}\n")
        started = time.monotonic()
        pipeline_apply.destroy_local(out)
        assert time.monotonic() - started < 30
        assert ours.wait(timeout=5) == -15  # SIGTERM, as the teardown sends
        assert not pipeline_apply.local_data_dir(out).exists()
    finally:
        ours.kill()
        ours.wait()
