"""JSONL: one key per line, binary-safe.

``{"db": 0, "key": "user:1", "type": "hash", "expire_at_ms": 1767225600000, "value": [["name", "ada"]]}``.
When any byte string of a line is not UTF-8 the line carries ``"b64": true`` and every byte string in it
(key, fields, members, values) is base64. Stream values are ``{"entries": [[id, [f, v, ...]], ...],
"meta": {...}}`` with the consumer groups in ``meta``. Expiry is absolute (ms since the epoch), so a file
imported later keeps each key's deadline, and keys whose deadline passed are skipped and counted.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from reproducer.data import rebuild
from reproducer.data.endpoint import Endpoint
from reproducer.data.formats.entries import (
    Conflict,
    Entry,
    EntryWriter,
    check_databases,
    check_target,
    conflict_of,
    read_entries,
)
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
    path: Path,
    target: Endpoint,
    *,
    conflict: Conflict | None = None,
    replace: bool | None = None,
    progress: Progress | None = None,
) -> tuple[int, int, int]:
    """Write every line of ``path`` to ``target``; returns (written, expired, skipped).

    The whole file is read and checked first, so a malformed line stops the import before anything is
    written. ``replace`` is the older form of ``conflict`` (True: "replace", False: "skip").
    """
    policy = conflict_of(conflict, replace)
    dbs = {entry.db for entry in read_file(path)}
    check_target(target, policy)
    check_databases(target, dbs)
    writer = EntryWriter(target, conflict=policy)
    try:
        for number, entry in enumerate(read_file(path), 1):
            writer.write(entry)
            if progress and number % 1000 == 0:
                progress(number)
        writer.flush()
    finally:
        writer.close()
    return writer.written, writer.expired, writer.skipped


def read_file(path: Path) -> Iterator[Entry]:
    """Every line of ``path`` as an Entry (one line in memory at a time); InputError names a bad line."""
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, 1):
            where = f"{path}:{number}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InputError(
                    f"{where}: the line is not UTF-8 text (byte {exc.start} of the line)",
                    hint='a JSONL file is UTF-8; binary keys and values go in base64 with "b64": true',
                ) from None
            if line.strip():
                yield from_line(line, where)


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


class _Bad(Exception):
    """A problem in one line (caught by :func:`from_line`, which names the line)."""


def from_line(line: str, where: str) -> Entry:
    """Parse and check one JSONL line into an Entry, naming ``where`` and the problem on error."""
    try:
        return _entry(line)
    except _Bad as exc:
        raise InputError(f"{where}: {exc}", hint=_HINT) from None


_HINT = "each line is one key as 'reproducer export' writes it (see 'reproducer import --help')"


def _entry(line: str) -> Entry:
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        raise _Bad(f"not a reproducer JSONL line (not JSON: {exc.msg} at character {exc.pos})") from None
    except (ValueError, RecursionError):
        raise _Bad("not a reproducer JSONL line (not JSON a reader accepts: too deep or a number too long)") from None
    if not isinstance(data, dict):
        raise _Bad(f"not a reproducer JSONL line (not a JSON object but a {type(data).__name__})")
    b64 = data.get("b64", False)
    if not isinstance(b64, bool):
        raise _Bad("b64 must be true or false")
    decode = _from_b64 if b64 else _from_text
    kind = data.get("type")
    if kind not in rebuild.TYPES:
        raise _Bad(f"unknown type, {_what(kind)} (one of {', '.join(rebuild.TYPES)})")
    db: Any = data.get("db")
    if not _is_int(db) or not 0 <= db < 10_000:
        raise _Bad(f"db must be a database number from 0 to 9999, not {_what(db)}")
    if not isinstance(data.get("key"), str):
        raise _Bad("key must be a string")
    expire = data.get("expire_at_ms")
    if expire is not None and not _is_int(expire):
        raise _Bad(f"expire_at_ms must be an integer (ms since the epoch) or null, not {_what(expire)}")
    value = _VALUES[kind](data.get("value"), decode)
    key = decode(data["key"])
    if kind == "stream":
        return Entry(db, key, rebuild.Value(kind, value["entries"], value["meta"]), expire)
    return Entry(db, key, rebuild.Value(kind, value), expire)


def _what(value: Any) -> str:
    """A value of the file described without quoting it (the file may be anyone's, even a secret one)."""
    if isinstance(value, str):
        return f"a string of {len(value)} characters"
    if isinstance(value, float) and not math.isfinite(value):
        return "a non-finite number"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "a number out of range" if _is_int(value) else "a fractional number"
    return "null" if value is None else f"a {type(value).__name__}"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _from_text(value: Any) -> bytes:
    if not isinstance(value, str):
        raise _Bad(f"expected a string, found {type(value).__name__}")
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError:
        raise _Bad('a string is not valid UTF-8 (a lone surrogate): write it in base64 with "b64": true') from None


def _from_b64(value: Any) -> bytes:
    if not isinstance(value, str):
        raise _Bad(f"expected a base64 string, found {type(value).__name__}")
    try:
        return base64.b64decode(value, validate=True)
    except (ValueError, binascii.Error):
        raise _Bad(f"bad base64 ({_what(value)} with characters outside the base64 alphabet)") from None


Decode = Callable[[Any], bytes]


def _string(value: Any, decode: Decode) -> bytes:
    if not isinstance(value, str):
        raise _Bad(f"a string value must be a string, not {type(value).__name__}")
    return decode(value)


def _members(value: Any, decode: Decode, kind: str) -> list[bytes]:
    if not isinstance(value, list):
        raise _Bad(f"a {kind} value must be a list of strings, not {type(value).__name__}")
    return [decode(v) for v in value]


def _pairs(value: Any, decode: Decode, kind: str) -> list[list[bytes]]:
    if not isinstance(value, list) or not all(isinstance(p, list) and len(p) == 2 for p in value):
        raise _Bad(f"a {kind} value must be a list of [field, value] pairs")
    return [[decode(f), decode(v)] for f, v in value]


def _zset(value: Any, decode: Decode) -> list[list[Any]]:
    if not isinstance(value, list) or not all(isinstance(p, list) and len(p) == 2 for p in value):
        raise _Bad("a zset value must be a list of [member, score] pairs")
    for _member, score in value:
        if not isinstance(score, int | float) or isinstance(score, bool) or math.isnan(score):
            raise _Bad(f"a zset score must be a number, not {_what(score)}")
    return [[decode(m), float(s)] for m, s in value]


def _stream(value: Any, decode: Decode) -> dict[str, Any]:
    if not isinstance(value, dict) or not isinstance(value.get("entries"), list):
        raise _Bad('a stream value must be {"entries": [[id, [field, value, ...]], ...], "meta": {...}}')
    meta = value.get("meta")
    if not isinstance(meta, dict) or not isinstance(meta.get("last_id"), str):
        raise _Bad("a stream value needs meta with last_id")
    groups = meta.get("groups", [])
    if not isinstance(groups, list) or not all(isinstance(g, dict) and "name" in g for g in groups):
        raise _Bad("stream meta groups must be a list of objects with a name")
    for item in value["entries"]:
        if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str) and isinstance(item[1], list)):
            raise _Bad("a stream entry must be [id, [field, value, ...]]")
    return {"entries": _map_str(value["entries"], decode), "meta": _map_str(meta, decode)}


_VALUES: dict[str, Callable[[Any, Decode], Any]] = {
    "string": _string,
    "hash": lambda v, d: _pairs(v, d, "hash"),
    "set": lambda v, d: _members(v, d, "set"),
    "list": lambda v, d: _members(v, d, "list"),
    "zset": _zset,
    "stream": _stream,
}


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
