"""Hostile specs: every string path of a spec, a copy with one value replaced unvalidated, a render that may refuse."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from reproducer.errors import InputError
from reproducer.model import ServiceSpec
from reproducer.targets import get_target
from reproducer.targets.base import RenderOptions

#: Never produced by the ident/slug filters (uppercase, "!"), so it only shows where a raw value landed.
MARK = "ZQ!MARK"
#: A path into a spec: field names and tuple indexes.
Path_ = tuple[str | int, ...]


def string_paths(node: Any, path: Path_ = ()) -> list[Path_]:
    """Every path to a string in a spec (model fields, tuple items)."""
    if isinstance(node, str):
        return [path]
    if isinstance(node, BaseModel):
        return [p for name in type(node).model_fields for p in string_paths(getattr(node, name), (*path, name))]
    if isinstance(node, tuple):
        return [p for index, item in enumerate(node) for p in string_paths(item, (*path, index))]
    return []


def replaced(node: Any, path: Path_, value: Any) -> Any:
    """``node`` with the value at ``path`` replaced, without validation (as if the model let it through)."""
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(node, tuple):
        assert isinstance(head, int)
        return (*node[:head], replaced(node[head], rest, value), *node[head + 1 :])
    return node.model_copy(update={head: replaced(getattr(node, str(head)), rest, value)})


def render(target: str, spec: ServiceSpec, options: RenderOptions | None = None) -> dict[str, str] | None:
    """The files, or None when the render refuses the spec with an InputError."""
    try:
        return get_target(target).render(spec, options or RenderOptions()).files
    except InputError:
        return None
