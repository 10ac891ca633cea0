"""The local teardown signals only the valkey processes of its deployment, whatever its pidfiles say.

A pidfile is a file in a data directory anyone could have written: ``-1`` would signal every process, ``1``
init, and any other number an unrelated process. The teardown checks /proc first and skips the others.
"""

from __future__ import annotations

import subprocess
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
