"""File formats for export and import: one module per format, one registry line each."""

from __future__ import annotations

from importlib import import_module
from types import ModuleType

#: format name → module defining ``export(source, path, ...)`` and ``load(path, target, ...)``.
FORMATS: dict[str, str] = {
    "jsonl": "reproducer.data.formats.jsonl",
    "rdb": "reproducer.data.formats.rdb",
    "aof": "reproducer.data.formats.aof",
}


def format_module(name: str) -> ModuleType:
    """The module of format ``name`` (imported lazily)."""
    from reproducer.errors import InputError

    if name not in FORMATS:
        raise InputError(f"unknown data format {name!r}", hint=f"use one of {', '.join(FORMATS)}")
    return import_module(FORMATS[name])


def format_from_path(path: str) -> str:
    """Guess a format from a file name: ``.jsonl``, ``.rdb`` or ``.aof``."""
    from reproducer.errors import InputError

    for name in FORMATS:
        if path.endswith(f".{name}") or path.endswith(f".{name}.gz"):
            return name
    raise InputError(f"cannot tell the format of {path}", hint="name it *.jsonl, *.rdb or *.aof, or pass --format")
