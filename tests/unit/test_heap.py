"""The cyclic collector's pace in the processes that move data: the CLI and the worker pool's zygote."""

from __future__ import annotations

import gc

import pytest

from reproducer import cli, heap


@pytest.fixture
def restored_threshold():
    saved = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield
    gc.set_threshold(*saved)


def test_pacing_raises_only_the_young_generations_threshold(restored_threshold):
    heap.pace_collector_for_bulk_data()
    assert gc.get_threshold() == (heap.YOUNG_GENERATION_THRESHOLD, 10, 10)
    assert gc.isenabled()


def test_the_cli_paces_the_collector_before_any_command(restored_threshold, capsys):
    cli.main(["--version"])
    assert gc.get_threshold()[0] == heap.YOUNG_GENERATION_THRESHOLD
    assert capsys.readouterr().out.strip()
