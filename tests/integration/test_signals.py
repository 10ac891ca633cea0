"""Ctrl-C and SIGTERM stop every phase promptly: grants undone, checkpoint saved, exit 130 / 143, and --resume
finishes the job.

The copy phase of `migrate --target local` runs after ansible-runner, which installs its own signal handlers;
the CLI puts its own back between phases, and waits for the copy in slices so the signal is handled at once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from reproducer.sandbox.seed import load_dataset
from tests.support import cli
from tests.support.ovh import leftovers, migrate_local_argv, ovh_env
from tests.support.runs import checkpoint, events
from tests.support.wait import eventually

#: The local target's default user's password.
TARGET_PASSWORD = "signals-default-Pa55word-4d2e"
#: Seconds a signalled command may take to clean up and exit (the grants are two API calls).
PROMPT = 10.0


def signal_and_wait(proc: subprocess.Popen[str], signum: int) -> tuple[int, str, float]:
    sent = time.monotonic()
    os.kill(proc.pid, signum)
    try:
        _out, err = proc.communicate(timeout=PROMPT * 3)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"{signal.Signals(signum).name} did not stop the command")
    return proc.returncode, err, time.monotonic() - sent


def copy_running(run_dir: Path) -> bool:
    started = any(e["phase"] == "copy" and e["event"] == "phase_started" for e in events(run_dir))
    return started and bool(checkpoint(run_dir).get("nodes"))


@pytest.mark.fault("SIGTERM during the copy phase of migrate --target local: exit 143, access removed, --resume")
def test_sigterm_in_the_copy_phase_after_ansible_stops_at_once_and_resumes(api_server, seeded, load_source, run_dir):
    load_source(15000, seed=31)
    env = ovh_env(seeded, REPRODUCER_PASSWORD_DEFAULT=TARGET_PASSWORD)
    argv = migrate_local_argv(api_server, seeded, run_dir, rate=2000)
    proc = cli.start(*argv, env=env)
    eventually(lambda: copy_running(run_dir), "the copy phase writing its checkpoint", timeout=180, proc=proc)
    code, err, seconds = signal_and_wait(proc, signal.SIGTERM)

    assert code == 143, err
    assert seconds < PROMPT, f"took {seconds:.1f}s to stop"
    assert "Traceback" not in err and "interrupted" in err
    assert leftovers(api_server, seeded) == ([], []), "the migration user and the allow-list entry are removed"
    assert json.loads((run_dir / "run.json").read_text())["grants"] == {}
    assert checkpoint(run_dir).get("nodes"), "the checkpoint is saved"
    assert "copy" not in json.loads((run_dir / "job.json").read_text())["phases"]
    assert any(e["phase"] == "copy" and e["event"] == "phase_failed" for e in events(run_dir))

    resumed = cli.run(*argv, "--resume", env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert "identical" in resumed.stderr
    assert leftovers(api_server, seeded) == ([], [])
    assert json.loads((run_dir / "data" / "verify.json").read_text())["compared"] == 15000


@pytest.mark.fault("SIGINT (Ctrl-C) during copy: exit 130 at once, checkpoint saved, --resume completes")
def test_ctrl_c_stops_a_copy_at_once_and_resume_completes_it(fleets, tmp_path):
    source, target = fleets(), fleets()
    load_dataset(source.client(source.primary), 20000, seed=32)
    run_dir = tmp_path / "run"
    urls = (f"valkey://127.0.0.1:{source.primary.port}", f"valkey://127.0.0.1:{target.primary.port}")
    argv = ["copy", *urls, "--run-dir", str(run_dir)]
    proc = cli.start(*argv, "--max-keys-per-second", "2000")

    def under_way() -> bool:  # the checkpoint moves by whole SCAN replies: wait for a cursor to resume from
        return target.client(target.primary).dbsize() > 1000 and bool(checkpoint(run_dir).get("nodes"))

    eventually(under_way, "the copy well under way, its checkpoint saved", proc=proc)
    code, err, seconds = signal_and_wait(proc, signal.SIGINT)

    assert code == 130, err
    assert seconds < PROMPT / 2, f"took {seconds:.1f}s to stop"
    assert "Traceback" not in err and "interrupted" in err
    copied = target.client(target.primary).dbsize()
    assert 0 < copied < 20000, "stopped midway"
    [saved] = checkpoint(run_dir)["nodes"].values()
    assert copied - 2000 <= saved["stats"]["scanned"] <= copied, "the checkpoint trails the target by a batch at most"

    resumed = cli.run(*argv, "--resume", timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert "identical" in resumed.stderr and target.client(target.primary).dbsize() == 20000
