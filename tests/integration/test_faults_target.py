"""Faults on the target side of a copy: its connection cut mid-copy through a TCP proxy the test controls."""

from __future__ import annotations

import pytest

from reproducer.data.copy import CopyOptions, copy
from reproducer.data.endpoint import parse_endpoint
from reproducer.data.verify import VerifyOptions, verify
from reproducer.sandbox.fleet import Fleet, FleetSpec
from reproducer.sandbox.seed import load_dataset
from tests.support import cli
from tests.support.fleets import key_count, plain_url
from tests.support.proxy import CuttableProxy
from tests.support.runs import confirmed_keys
from tests.support.wait import Background, eventually, midway

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


@pytest.mark.fault("target connection cut twice mid-copy (TCP proxy)", ends="verify")
def test_target_connection_cut_mid_copy_is_retried_and_loses_nothing(pair):
    source, target = pair
    proxy = CuttableProxy(target.primary.port)
    running = Background(
        copy,
        parse_endpoint(plain_url(source.primary.port), environ={}),
        parse_endpoint(plain_url(proxy.port), environ={}),
        CopyOptions(batch=100, max_keys_per_second=4000),
    )
    for cut in (1, 2):
        midway(running, lambda: key_count(target), cut * 1500)
        proxy.cut()
    result = running.result(60)
    proxy.close()
    assert proxy.connections >= 3, "the copy never reconnected: the cuts did not land mid-copy"
    assert result.total.retries >= 2
    assert result.total.copied == KEYS == key_count(target)
    report = verify(
        parse_endpoint(plain_url(source.primary.port), environ={}),
        parse_endpoint(plain_url(target.primary.port), environ={}),
        VerifyOptions(),
    )
    assert report.ok, report.to_dict()


@pytest.mark.fault("target unreachable mid-copy beyond the retries, then --resume", ends="verify")
def test_target_gone_mid_copy_stops_with_intact_checkpoint_then_resume_finishes(pair, tmp_path):
    source, target = pair
    proxy = CuttableProxy(target.primary.port)
    run_dir = tmp_path / "run"
    argv = ["copy", plain_url(source.primary.port), plain_url(proxy.port), "--run-dir", run_dir, "--batch", "100"]
    proc = cli.start(*argv, "--max-keys-per-second", "3000")
    eventually(lambda: confirmed_keys(run_dir) > 0, "a first confirmed batch", proc=proc)
    proxy.close()  # stop accepting and cut: every reconnection is refused from now on
    _out, err = proc.communicate(timeout=120)
    message = " ".join(err.split())
    assert proc.returncode == 1, message
    assert "the target kept redirecting or failing" in message and "Connection refused" in message
    assert "--resume" in message and "Traceback" not in message
    counted = confirmed_keys(run_dir)
    on_target = key_count(target)
    assert 0 < counted <= on_target < KEYS, "the checkpoint counts a key the target does not hold"
    assert not (run_dir / "data" / "stats.json").exists()
    assert not [p.name for p in (run_dir / "data").iterdir() if p.name.startswith(".")]

    resumed = cli.run(
        "copy", plain_url(source.primary.port), plain_url(target.primary.port), "--run-dir", run_dir, "--batch", "100",
        "--resume", timeout=120,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert "source and target are identical" in resumed.stderr
    assert key_count(target) == KEYS
