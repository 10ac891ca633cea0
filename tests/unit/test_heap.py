"""The cyclic collector's pace in the processes that move data: the CLI and the worker pool's zygote."""

from __future__ import annotations

import gc

import pytest

from reproducer import cli, heap


@pytest.fixture
def default_pace():
    """CPython's default pace to start from (tests/conftest.py puts back the worker's own after the test)."""
    gc.set_threshold(700, 10, 10)


def test_pacing_raises_only_the_young_generations_threshold(default_pace):
    heap.pace_collector_for_bulk_data()
    assert gc.get_threshold() == (heap.YOUNG_GENERATION_THRESHOLD, 10, 10)
    assert gc.isenabled()


def test_the_cli_paces_the_collector_before_any_command(default_pace, capsys):
    cli.main(["--version"])
    assert gc.get_threshold()[0] == heap.YOUNG_GENERATION_THRESHOLD
    assert capsys.readouterr().out.strip()
