"""The documented exception tree (errors.py's docstring, docs/architecture.md) is the package's real one."""

import importlib
import pkgutil
import re
from pathlib import Path

import pytest

import reproducer
from reproducer import errors
from reproducer.errors import ReproducerError

ROOT = Path(__file__).resolve().parents[2]
#: one drawn node: tree characters, the class name, its exit code
NODE = re.compile(r"^(?P<lead>[ │├└─]*)(?P<name>[A-Z]\w+)\s+exit (?P<code>\d+)")


def drawn_tree(text: str) -> dict[str, tuple[str | None, int]]:
    """The ReproducerError tree drawn in ``text``: class name -> (parent name, exit code)."""
    lines = text.splitlines()
    first = next(i for i, line in enumerate(lines) if NODE.match(line.lstrip()) and "ReproducerError " in line)
    indent = len(lines[first]) - len(lines[first].lstrip())
    tree: dict[str, tuple[str | None, int]] = {}
    stack: list[str] = []
    for line in lines[first:]:
        found = NODE.match(line[indent:])
        if not found:
            break
        depth = found.start("name") // 4
        del stack[depth:]
        tree[found["name"]] = (stack[-1] if stack else None, int(found["code"]))
        stack.append(found["name"])
    return tree


def package_errors() -> dict[str, tuple[str | None, int]]:
    """Every ReproducerError subclass defined in the package: name -> (base name, exit code)."""
    for module in pkgutil.walk_packages(reproducer.__path__, "reproducer."):
        importlib.import_module(module.name)
    found: dict[str, tuple[str | None, int]] = {"ReproducerError": (None, ReproducerError.exit_code)}
    pending = [ReproducerError]
    while pending:
        cls = pending.pop()
        for sub in cls.__subclasses__():
            if sub.__module__.startswith("reproducer."):
                found[sub.__name__] = (cls.__name__, sub.exit_code)
            pending.append(sub)
    return found


def test_errors_docstring_draws_every_error_with_its_parent_and_exit_code():
    assert errors.__doc__ is not None
    assert drawn_tree(errors.__doc__) == package_errors()


def test_architecture_page_draws_the_same_tree():
    page = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    assert drawn_tree(page) == package_errors()


def test_the_tree_reader_sees_depth():
    drawn = "ReproducerError   exit 1\n├── Alpha   exit 2\n│   └── Beta   exit 3\n└── Gamma   exit 1\n\nafter"
    assert drawn_tree(drawn) == {
        "ReproducerError": (None, 1),
        "Alpha": ("ReproducerError", 2),
        "Beta": ("Alpha", 3),
        "Gamma": ("ReproducerError", 1),
    }


@pytest.mark.parametrize("name", ["TerraformError", "AnsibleError"])
def test_tool_errors_keep_exit_code_1_under_tool_error(name):
    assert package_errors()[name] == ("ToolError", 1)
