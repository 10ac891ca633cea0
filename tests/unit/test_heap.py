"""The heap of the processes that move data (the CLI and the worker pool's zygote): collector pace, memory kept."""

from __future__ import annotations

import gc
import subprocess
import sys
from pathlib import Path

import pytest

from reproducer import cli, heap
from tests.support.churn import BLOCK, BLOCKS


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


CHURN = """
import sys
from reproducer import heap
from tests.support.churn import churn_faults
if sys.argv[1] == "keep":
    assert heap.keep_freed_memory()
print(churn_faults())
"""


def churn_faults_in_new_process(mode: str) -> int:
    done = subprocess.run(
        [sys.executable, "-c", CHURN, mode], capture_output=True, text=True, check=True, cwd=Path(__file__).parents[2]
    )
    return int(done.stdout)


def test_memory_freed_by_a_batch_is_kept_for_the_next_instead_of_faulted_in_again():
    pages_a_round = BLOCKS * BLOCK // 4096
    assert churn_faults_in_new_process("default") > 5 * pages_a_round, "glibc's default gives the heap's top back"
    assert churn_faults_in_new_process("keep") < pages_a_round // 10


def test_the_cli_keeps_freed_memory(monkeypatch):
    calls = []
    monkeypatch.setattr(cli, "keep_freed_memory", lambda: calls.append(True))
    cli.main(["--version"])
    assert calls == [True]
