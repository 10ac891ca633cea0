"""A copy's run directory is bound to its endpoints: resuming elsewhere is refused, stats never overclaim, and a
checkpoint that cannot be read or written stops with a clear error instead of a traceback."""

from __future__ import annotations

import errno
import json
import os

import pytest

from reproducer import atomic as atomic_module
from reproducer.data.copy import CopyOptions, copy
from reproducer.data.endpoint import parse_endpoint
from reproducer.errors import DataError
from reproducer.sandbox.fleet import Fleet
from tests.support.cli import run as cli

KEYS = 12000


def plain(fleet: Fleet, host: str = "127.0.0.1") -> str:
    return f"valkey://{host}:{fleet.primary.port}"


def fill(fleet: Fleet, keys: int = KEYS) -> None:
    client = fleet.client(fleet.primary)
    for start in range(0, keys, 2000):
        client.mset({f"key:{i:06d}": "v" * 300 for i in range(start, min(start + 2000, keys))})


@pytest.fixture
def interrupted(fleets, tmp_path):
    """A copy A → B that stopped midway (B filled up): (A, B, run dir, keys B holds)."""
    source, target = fleets(), fleets(maxmemory="3mb")
    fill(source)
    run_dir = tmp_path / "run"
    # a scan: its checkpoint records what the target confirmed (a snapshot's node starts over)
    options = ("--batch", "200", "--no-verify", "--read", "scan")
    first = cli("copy", plain(source), plain(target), "--run-dir", str(run_dir), *options)
    assert first.returncode == 1 and "out of memory" in first.stderr, first.stderr
    held = target.client(target.primary).dbsize()
    assert 0 < held < KEYS
    return source, target, run_dir, held


def unlimit(fleet: Fleet) -> None:
    fleet.admin(fleet.primary, "CONFIG", "SET", "maxmemory", "0")


@pytest.mark.fault("resume against another target or another source than the checkpoint's", ends="error")
def test_resume_against_other_endpoints_is_refused_and_the_same_ones_finish(interrupted, fleets):
    source, target, run_dir, held = interrupted
    other_target, other_source = fleets(), fleets()
    fill(other_source, 10)
    for src, dst, changed in ((source, other_target, "target"), (other_source, target, "source")):
        resumed = cli("copy", plain(src), plain(dst), "--run-dir", str(run_dir), "--resume", "--no-verify")
        output = " ".join(resumed.stderr.split())
        assert resumed.returncode == 2, output
        assert f"another {changed}" in output and "hint:" in output and "Traceback" not in output
    assert other_target.client(other_target.primary).dbsize() == 0
    assert target.client(target.primary).dbsize() == held
    unlimit(target)
    same = cli("copy", plain(source), plain(target, "localhost"), "--run-dir", str(run_dir), "--resume")
    assert same.returncode == 0, same.stderr
    assert "identical" in same.stderr
    stats = json.loads((run_dir / "data" / "stats.json").read_text())
    assert stats["total"]["copied"] == KEYS == target.client(target.primary).dbsize()


@pytest.mark.fault("target flushed between an interrupted copy and its --resume", ends="error")
def test_resume_onto_a_target_that_lost_keys_does_not_claim_success(interrupted):
    source, target, run_dir, _held = interrupted
    unlimit(target)
    target.client(target.primary).flushall()
    resumed = cli("copy", plain(source), plain(target), "--run-dir", str(run_dir), "--resume", "--no-verify")
    output = " ".join(resumed.stderr.split())
    assert resumed.returncode == 1, output
    assert "lost keys" in output and "without --resume" in output and "Traceback" not in output
    assert not (run_dir / "data" / "stats.json").exists()


@pytest.mark.fault("run directory on a full or read-only file system", ends="error")
@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS])
def test_checkpoint_that_cannot_be_written_is_a_clear_error(fleets, tmp_path, monkeypatch, code):
    source, target = fleets(), fleets()
    fill(source, 500)

    def refuse(*_args, **_kwargs):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(atomic_module.os, "replace", refuse)
    options = CopyOptions(checkpoint=tmp_path / "run" / "checkpoint.json")
    with pytest.raises(DataError, match="cannot save the copy's checkpoint") as caught:
        copy(parse_endpoint(plain(source)), parse_endpoint(plain(target)), options)
    assert os.strerror(code) in caught.value.message and "--run-dir" in caught.value.hint
    assert target.client(target.primary).dbsize() == 0, "keys were copied with no checkpoint to resume from"
    assert [p.name for p in (tmp_path / "run").iterdir()] == []


DAMAGED = ("{not json", "[]", '{"format_version": 2, "nodes": []}', "\xff\xfe", '{"format_version": 2}')


def test_damaged_checkpoint_is_refused_clearly(fleets, tmp_path):
    source, target = fleets(), fleets()
    data = tmp_path / "run" / "data"
    data.mkdir(parents=True)
    for content in DAMAGED:
        (data / "checkpoint.json").write_bytes(content.encode("latin-1"))
        resumed = cli("copy", plain(source), plain(target), "--run-dir", str(tmp_path / "run"), "--resume")
        output = " ".join(resumed.stderr.split())
        assert resumed.returncode == 2, (content, output)
        assert "damaged" in output and "Traceback" not in output and "hint:" in output, (content, output)
