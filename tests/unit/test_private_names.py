"""No module of reproducer imports another module's private (``_name``) names.

import-linter checks modules (the ``private_modules`` contract), not names; ruff's PLC2701 allows private names
inside one package. This walks every ``from X import _y`` and ``X._y`` use instead.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "reproducer"


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def private_imports(source: str) -> list[str]:
    """``module._name`` of each private name a module imports from reproducer or reaches in a reproducer module."""
    tree = ast.parse(source)
    found, modules = [], set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("reproducer") and node.level == 0:
            found += [f"{node.module}.{a.name}" for a in node.names if _private(a.name)]
            modules |= {a.asname or a.name for a in node.names}
        elif isinstance(node, ast.Import):
            modules |= {a.asname or a.name for a in node.names if a.name.startswith("reproducer")}
    for node in ast.walk(tree):
        reached = isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules
        if reached and _private(node.attr):
            found.append(f"{node.value.id}.{node.attr}")
    return found


def test_the_check_sees_both_forms():
    source = (
        "import os\nfrom reproducer.pipeline import migrate\nfrom reproducer.data.copy import _batch\n"
        "migrate._run_state()\nos._exit(0)\n"
    )
    assert private_imports(source) == ["reproducer.data.copy._batch", "migrate._run_state"]


def test_no_module_imports_another_modules_private_names():
    offenders = {
        str(path.relative_to(PACKAGE.parent)): names
        for path in sorted(PACKAGE.rglob("*.py"))
        if (names := private_imports(path.read_text()))
    }
    assert offenders == {}
