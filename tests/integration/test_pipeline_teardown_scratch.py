"""`destroy --target local` keeps ansible-runner's private directory (its command line, environment and artifacts)
only while the teardown runs: it is gone afterwards, whether the teardown finished or was interrupted."""

from __future__ import annotations

import os
import signal
import tempfile

import pytest

from reproducer.pipeline import apply as pipeline_apply

pytestmark = pytest.mark.integration


@pytest.fixture
def private_tmp(tmp_path, monkeypatch):
    """Where tempfile puts directories during the test (so a leftover is seen, not lost among others in /tmp)."""
    where = tmp_path / "tmp"
    where.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(where))
    return where


@pytest.fixture
def ctrl_c_raises():
    """SIGINT raises KeyboardInterrupt, as in a terminal, whatever this process started with.

    A process started in the background by a non-interactive shell (``cmd &``, as CI runners may) starts with SIGINT
    ignored, and the teardown keeps a signal its caller ignores ignored: the Ctrl-C below would never arrive.
    """
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def _deployed(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    pipeline_apply.local_data_dir(out).mkdir()
    return out


def test_the_teardown_private_dir_is_removed_after_a_teardown(tmp_path, private_tmp):
    out = _deployed(tmp_path)
    seen: list[str] = []
    pipeline_apply.destroy_local(out, seen.append)
    assert seen, "the teardown ran"
    assert list(private_tmp.iterdir()) == []


def test_the_teardown_private_dir_is_removed_when_the_teardown_is_interrupted(tmp_path, private_tmp, ctrl_c_raises):
    out = _deployed(tmp_path)
    during: list[list[str]] = []

    def interrupt(_message: str) -> None:
        during.append([p.name for p in private_tmp.iterdir()])
        if len(during) == 1:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while the teardown playbook runs

    with pytest.raises(KeyboardInterrupt):
        pipeline_apply.destroy_local(out, interrupt)
    assert during and any(name.startswith("reproducer-teardown-") for name in during[0]), during
    assert list(private_tmp.iterdir()) == []
