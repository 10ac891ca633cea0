"""The suite's scheduling: tests linked by a costly module-scoped fixture share one pytest-xdist group."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest

from tests.conftest import _group_by_module_fixtures


@dataclass
class FakeItem:
    """What the grouping reads of a collected test: its node id, fixtures and markers."""

    nodeid: str
    fixtures: dict[str, str]  # name -> scope
    markers: list[pytest.Mark] = field(default_factory=list)

    @property
    def _fixtureinfo(self) -> SimpleNamespace:
        defs = {name: [SimpleNamespace(scope=scope)] for name, scope in self.fixtures.items()}
        return SimpleNamespace(name2fixturedefs=defs)

    def add_marker(self, marker: pytest.MarkDecorator) -> None:
        self.markers.append(marker.mark)

    def group(self) -> str | None:
        return next((m.args[0] for m in self.markers if m.name == "xdist_group"), None)


def test_tests_sharing_a_costly_module_fixture_go_together_and_others_stay_free():
    items = [
        FakeItem("m.py::a", {"applied": "module", "tmp_path": "function"}),
        FakeItem("m.py::b", {"applied": "module", "target": "module"}),
        FakeItem("m.py::c", {"target": "module"}),  # linked to a through b
        FakeItem("m.py::d", {"rules": "module"}),
        FakeItem("m.py::e", {"tmp_path": "function", "cli_config": "module"}),  # a cheap fixture: no group
        FakeItem("n.py::a", {"applied": "module"}),  # another module's fixture of the same name
    ]
    _group_by_module_fixtures(items)  # type: ignore[arg-type]
    groups = [item.group() for item in items]
    assert groups[0] == groups[1] == groups[2] is not None
    assert groups[3] is not None and groups[3] != groups[0]
    assert groups[4] is None
    assert groups[5] is not None and groups[5] not in groups[:4]
