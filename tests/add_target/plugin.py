"""A pytest plugin that registers the dummy target before collection, as if its registry line were committed.

``pytest -p tests.add_target.plugin`` then collects the existing parametrised tests with the dummy among the
targets. Its golden outputs are written first (the recipe's ``make golden``), into a scratch directory that the
golden tests read instead of tests/golden.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from reproducer.targets import TARGETS, target_names
from tests.add_target.dummy import ENTRY
from tests.golden import regen

_SCRATCH: list[Path] = []


def pytest_configure(config: pytest.Config) -> None:
    """Register the dummy target and write its golden outputs, before any test module is collected."""
    TARGETS[ENTRY.name] = ENTRY
    scratch = Path(tempfile.mkdtemp(prefix="reproducer-golden-"))
    _SCRATCH.append(scratch)
    regen.GOLDEN = scratch
    regen.write(target_names())


def pytest_unconfigure(config: pytest.Config) -> None:
    """Remove the scratch golden outputs."""
    for scratch in _SCRATCH:
        shutil.rmtree(scratch, ignore_errors=True)
