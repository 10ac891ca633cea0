"""Every command writes its output whole or not at all: a command that fails midway leaves no partial file,
no half-written directory and no temporary file behind (export, verify, copy's run directory, render)."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from reproducer.sandbox.fleet import Fleet
from reproducer.sandbox.seed import load_dataset
from tests.support import cli
from tests.support.wait import eventually

SPEC = Path(__file__).parents[1] / "golden" / "specs" / "business.yaml"


def commands_served(fleet: Fleet) -> int:
    return int(fleet.client(fleet.primary).info("stats")["total_commands_processed"])


def kill_once_busy(fleet: Fleet, proc: subprocess.Popen[str], commands: int) -> None:
    """SIGKILL the fleet's server once ``proc`` has sent it ``commands`` more commands (it is midway)."""
    start = commands_served(fleet)
    eventually(lambda: commands_served(fleet) - start >= commands, "the command busy", interval=0.02, proc=proc)
    os.kill(fleet.primary.pid, signal.SIGKILL)


def leftovers(directory: Path, *expected: str) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name not in expected)


@pytest.mark.fault("source killed mid-export (JSONL, RDB): no partial file", ends="no_output")
@pytest.mark.parametrize("name", ["dump.jsonl", "dump.rdb"])
def test_export_whose_source_dies_midway_leaves_no_file(fleets, tmp_path, name):
    source = fleets()
    load_dataset(source.client(source.primary), 20000)
    proc = cli.start("export", f"valkey://127.0.0.1:{source.primary.port}", str(tmp_path / name))
    kill_once_busy(source, proc, 3000)
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err
    assert "error:" in err and "hint:" in err and "Traceback" not in err
    assert leftovers(tmp_path) == []


@pytest.mark.fault("source killed mid-verify: no partial report", ends="no_output")
def test_verify_whose_source_dies_midway_writes_no_report(fleets, tmp_path):
    source, target = fleets(), fleets()
    load_dataset(source.client(source.primary), 20000)
    load_dataset(target.client(target.primary), 20000)
    run_dir = tmp_path / "run"
    proc = cli.start(
        "verify",
        f"valkey://127.0.0.1:{source.primary.port}",
        f"valkey://127.0.0.1:{target.primary.port}",
        "--run-dir",
        str(run_dir),
    )
    kill_once_busy(source, proc, 3000)
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err
    assert "Traceback" not in err
    assert not run_dir.exists() or leftovers(run_dir / "data") == []


def test_copy_that_stops_midway_leaves_only_its_checkpoint(fleets, tmp_path):
    source, target = fleets(), fleets(maxmemory="2mb")
    load_dataset(source.client(source.primary), 20000)
    run_dir = tmp_path / "run"
    proc = cli.start(
        "copy", f"valkey://127.0.0.1:{source.primary.port}", f"valkey://127.0.0.1:{target.primary.port}",
        "--run-dir", str(run_dir),
    )  # fmt: skip
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1 and "out of memory" in err, err
    assert leftovers(run_dir) == ["data"]
    assert leftovers(run_dir / "data") == ["checkpoint.json", "options.json"], "stats or a report of a failed copy"


def test_failed_render_leaves_the_previous_output_untouched(tmp_path):
    out = tmp_path / "out"
    render = ("render", "--target", "aws", "--out", str(out), "--spec")
    first = cli.run(*render, SPEC)
    assert first.returncode == 0, first.stderr
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    broken = tmp_path / "broken.yaml"
    broken.write_text(SPEC.read_text().replace("version: '8.0'", "version: '6.2'"))
    second = cli.run(*render, broken)
    assert second.returncode == 2 and "engine version '6.2'" in second.stderr, second.stderr
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert leftovers(tmp_path, "out", "broken.yaml") == []
