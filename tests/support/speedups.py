"""Run a test module on both paths of a hot path that ``reproducer/data/_speedups.c`` compiles."""

from __future__ import annotations

from typing import Any

import pytest


def on_both_paths(module: object, name: str) -> Any:
    """An autouse fixture running each test of a module with ``module.name`` compiled, then set to None (Python).

    The fixture's value is the path, "compiled" or "python". The compiled path asserts that the build made it.
    """

    @pytest.fixture(autouse=True, params=["compiled", "python"])
    def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
        if request.param == "python":
            monkeypatch.setattr(module, name, None)
        else:
            assert getattr(module, name) is not None, f"{name} is not compiled: run `make setup`"
        return str(request.param)

    return path
