"""JSONL: one key per line, binary-safe.

``{"db": 0, "key": "user:1", "type": "hash", "expire_at_ms": 1767225600000, "value": [["name", "ada"]]}``.
When any byte string of a line is not UTF-8 the line carries ``"b64": true`` and every byte string in it
(key, fields, members, values) is base64. Stream values are ``{"entries": [[id, [f, v, ...]], ...],
"meta": {...}}`` with the consumer groups in ``meta``. Expiry is absolute (ms since the epoch), so a file
imported later keeps each key's deadline, and keys whose deadline passed are skipped and counted.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from reproducer.data import rebuild
from reproducer.data.endpoint import Endpoint
from reproducer.data.formats.entries import Entry, EntryWriter, read_entries
from reproducer.errors import InputError

Progress = Callable[[int], None]


def export(
    source: Endpoint,
    path: Path,
    *,
    dbs: tuple[int, ...] | None = None,
    match: str | None = None,
    progress: Progress | None = None,
) -> int:
    """Write every key of ``source`` to ``path``; returns the number of keys."""
    count = 0
    with path.open("w", encoding="utf-8") as handle:
        for entry in read_entries(source, dbs=dbs, match=match):
            handle.write(json.dumps(to_line(entry), ensure_ascii=False, separators=(",", ":")) + "\n")
            count += 1
            if progress and count % 1000 == 0:
                progress(count)
    return count


def load(
    path: Path, target: Endpoint, *, replace: bool = True, progress: Progress | None = None
) -> tuple[int, int, int]:
    """Write every line of ``path`` to ``target``; returns (written, expired, skipped)."""
    writer = EntryWriter(target, replace=replace)
    try:
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if line.strip():
                    writer.write(from_line(line, f"{path}:{number}"))
                if progress and number % 1000 == 0:
                    progress(number)
    finally:
        writer.close()
    return writer.written, writer.expired, writer.skipped


def to_line(entry: Entry) -> dict[str, Any]:
    """An entry as a JSON-ready mapping (see the module docstring)."""
    value = entry.value
    raw: Any = {"entries": value.items, "meta": value.stream_meta} if value.type == "stream" else value.items
    binary = not _all_text([entry.key, raw])
    encode = _b64 if binary else _text
    line = {
        "db": entry.db,
        "key": encode(entry.key),
        "type": value.type,
        "expire_at_ms": entry.expire_at_ms,
        "value": _map_bytes(raw, encode),
    }
    return {**line, "b64": True} if binary else line


def from_line(line: str, where: str) -> Entry:
    """Parse one JSONL line into an Entry, naming ``where`` on error."""
    try:
        data = json.loads(line)
        decode = base64.b64decode if data.get("b64") else str.encode
        kind = data["type"]
        value = _map_str(data["value"], decode)
        if kind == "stream":
            return Entry(
                data["db"],
                decode(data["key"]),
                rebuild.Value(kind, value["entries"], value["meta"]),
                data["expire_at_ms"],
            )
        return Entry(data["db"], decode(data["key"]), rebuild.Value(kind, value), data["expire_at_ms"])
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(
            f"{where}: not a reproducer JSONL line ({exc})", hint="export the file with 'reproducer export'"
        ) from None


def _all_text(value: Any) -> bool:
    if isinstance(value, bytes):
        try:
            value.decode("utf-8")
        except UnicodeDecodeError:
            return False
        return True
    if isinstance(value, list | tuple):
        return all(_all_text(v) for v in value)
    if isinstance(value, dict):
        return all(_all_text(v) for v in value.values())
    return True


def _text(value: bytes) -> str:
    return value.decode("utf-8")


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


def _map_bytes(value: Any, encode: Callable[[bytes], str]) -> Any:
    if isinstance(value, bytes):
        return encode(value)
    if isinstance(value, list | tuple):
        return [_map_bytes(v, encode) for v in value]
    if isinstance(value, dict):
        return {k: _map_bytes(v, encode) for k, v in value.items()}
    return value


def _map_str(value: Any, decode: Callable[[Any], bytes]) -> Any:
    if isinstance(value, str):
        return decode(value)
    if isinstance(value, list):
        return [_map_str(v, decode) for v in value]
    if isinstance(value, dict):
        return {k: _map_str(v, decode) for k, v in value.items()}
    return value
