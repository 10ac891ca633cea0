"""Faults on the target side of a copy: its connection cut mid-copy through a TCP proxy the test controls."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import pytest

from reproducer.data.copy import CopyOptions, copy
from reproducer.data.endpoint import parse_endpoint
from reproducer.data.verify import VerifyOptions, verify
from reproducer.sandbox.fleet import Fleet, FleetSpec
from reproducer.sandbox.seed import load_dataset
from tests.integration.proxy import CuttableProxy

KEYS = 6000


@pytest.fixture
def pair():
    """A source full of mixed keys and an empty target (standalone servers), stopped afterwards."""
    source, target = Fleet.start(FleetSpec()), Fleet.start(FleetSpec())
    try:
        load_dataset(source.client(source.primary), KEYS)
        yield source, target
    finally:
        source.stop()
        target.stop()


def plain(port: int) -> str:
    return f"valkey://127.0.0.1:{port}"


def target_keys(target: Fleet) -> int:
    return int(target.client(target.primary).dbsize())


@pytest.mark.fault("target connection cut twice mid-copy (TCP proxy)", ends="verify")
def test_target_connection_cut_mid_copy_is_retried_and_loses_nothing(pair):
    source, target = pair
    proxy = CuttableProxy(target.primary.port)
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["result"] = copy(
                parse_endpoint(plain(source.primary.port), environ={}),
                parse_endpoint(plain(proxy.port), environ={}),
                CopyOptions(batch=100, max_keys_per_second=4000),
            )
        except BaseException as exc:
            outcome["error"] = exc

    worker = threading.Thread(target=run)
    worker.start()
    for _ in range(2):
        time.sleep(0.5)
        proxy.cut()
    worker.join(60)
    proxy.close()
    assert "error" not in outcome, outcome.get("error")
    result = outcome["result"]
    assert proxy.connections >= 3, "the copy never reconnected: the cuts did not land mid-copy"
    assert result.total.retries >= 2
    assert result.total.copied == KEYS == target_keys(target)
    report = verify(
        parse_endpoint(plain(source.primary.port), environ={}),
        parse_endpoint(plain(target.primary.port), environ={}),
        VerifyOptions(),
    )
    assert report.ok, report.to_dict()


def _copy_argv(source_url: str, target_url: str, run_dir, *extra: str) -> list[str]:
    return [sys.executable, "-m", "reproducer.cli", "copy", source_url, target_url, "--run-dir", str(run_dir), *extra]


def _confirmed(checkpoint) -> int:
    """Keys the checkpoint counts as copied (0 while it does not exist or is being replaced)."""
    try:
        saved = json.loads(checkpoint.read_text())
    except (OSError, ValueError):
        return 0
    return sum(node["stats"].get("copied", 0) for node in saved["nodes"].values())


@pytest.mark.fault("target unreachable mid-copy beyond the retries, then --resume", ends="verify")
def test_target_gone_mid_copy_stops_with_intact_checkpoint_then_resume_finishes(pair, tmp_path):
    source, target = pair
    proxy = CuttableProxy(target.primary.port)
    run_dir = tmp_path / "run"
    argv = _copy_argv(plain(source.primary.port), plain(proxy.port), run_dir, "--batch", "100")
    proc = subprocess.Popen(
        [*argv, "--max-keys-per-second", "3000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    checkpoint = run_dir / "data" / "checkpoint.json"
    deadline = time.monotonic() + 20
    while not _confirmed(checkpoint) and time.monotonic() < deadline:
        time.sleep(0.05)
    proxy.close()  # stop accepting and cut: every reconnection is refused from now on
    _out, err = proc.communicate(timeout=120)
    message = " ".join(err.split())
    assert proc.returncode == 1, message
    assert "the target kept redirecting or failing" in message and "Connection refused" in message
    assert "--resume" in message and "Traceback" not in message
    saved = json.loads(checkpoint.read_text())
    counted = sum(node["stats"].get("copied", 0) for node in saved["nodes"].values())
    on_target = target_keys(target)
    assert 0 < counted <= on_target < KEYS, "the checkpoint counts a key the target does not hold"
    assert not (run_dir / "data" / "stats.json").exists()
    assert not [p.name for p in (run_dir / "data").iterdir() if p.name.startswith(".")]

    resumed = subprocess.run(
        [*_copy_argv(plain(source.primary.port), plain(target.primary.port), run_dir, "--batch", "100"), "--resume"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert "source and target are identical" in resumed.stderr
    assert target_keys(target) == KEYS
