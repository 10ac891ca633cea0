"""Type-aware read and write of one key: the path when RESTORE refuses a payload, and for file formats.

DUMP payloads carry an RDB version; a target refuses newer or foreign ones (``DUMP payload version or
checksum are wrong``). Then the key is read with its type's commands and written again with them, in
chunks so that a big key never sits whole in one command. Streams keep their entry ids, their last id
and their consumer groups (name, last delivered id, entries read); pending entries of consumers are not
carried (as with every SCAN-based tool), which the copy reports.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

CHUNK = 1000
TYPES = ("string", "hash", "set", "zset", "list", "stream")


@dataclass
class Value:
    """One key's value by type: ``items`` is bytes (string), pairs (hash, zset) or members (set, list)."""

    type: str
    items: Any
    stream_meta: dict[str, Any] = field(default_factory=dict)


def read_value(client: Any, key: bytes, kind: str) -> Value | None:
    """Read ``key`` of type ``kind`` with its type's commands; None when it vanished meanwhile."""
    reader = _READERS.get(kind)
    if reader is None:
        raise ValueError(f"type {kind!r} of key {key!r} cannot be rebuilt (only {', '.join(TYPES)})")
    value = reader(client, key)
    return None if value is None else Value(kind, *value) if isinstance(value, tuple) else Value(kind, value)


def _read_string(client: Any, key: bytes) -> Any:
    return client.get(key)


def _read_hash(client: Any, key: bytes) -> Any:
    return [[f, v] for f, v in client.hscan_iter(key, count=CHUNK)] or None


def _read_set(client: Any, key: bytes) -> Any:
    return sorted(client.sscan_iter(key, count=CHUNK)) or None


def _read_zset(client: Any, key: bytes) -> Any:
    return [[m, float(s)] for m, s in client.zscan_iter(key, count=CHUNK)] or None


def _read_list(client: Any, key: bytes) -> Any:
    items: list[bytes] = []
    while True:
        window = client.lrange(key, len(items), len(items) + CHUNK - 1)
        items.extend(window)
        if len(window) < CHUNK:
            return items or None


def _read_stream(client: Any, key: bytes) -> Any:
    entries: list[list[Any]] = []
    start = b"-"
    while True:
        window = client.xrange(key, min=start, count=CHUNK)
        entries.extend([_id(i), _flatten(fields)] for i, fields in window)
        if len(window) < CHUNK:
            break
        start = b"(" + _id(window[-1][0])
    info = client.xinfo_stream(key)
    groups = [
        {
            "name": _bytes(g["name"]),
            "last_delivered_id": _id(g["last-delivered-id"]),
            "entries_read": g.get("entries-read"),
        }
        for g in client.xinfo_groups(key)
    ]
    meta = {
        "last_id": _id(info["last-generated-id"]),
        "entries_added": info.get("entries-added"),
        "max_deleted_id": _id(info.get("max-deleted-entry-id") or b"0-0"),
        "groups": groups,
    }
    return entries, meta


def _id(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


def _bytes(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


def _flatten(fields: dict[bytes, bytes]) -> list[bytes]:
    return [part for pair in fields.items() for part in pair]


_READERS = {
    "string": _read_string,
    "hash": _read_hash,
    "set": _read_set,
    "zset": _read_zset,
    "list": _read_list,
    "stream": _read_stream,
}


def write_value(client: Any, key: bytes, value: Value, pttl: int, *, replace: bool = True) -> None:
    """Write ``value`` to ``key`` in chunks, then its TTL (``pttl`` ms; negative: none; 0: about to expire)."""
    if replace:
        client.delete(key)
    _WRITERS[value.type](client, key, value)
    if pttl >= 0:
        client.pexpire(key, max(pttl, 1))


def _chunks(items: list[Any]) -> list[list[Any]]:
    return [items[i : i + CHUNK] for i in range(0, len(items), CHUNK)]


def _write_string(client: Any, key: bytes, value: Value) -> None:
    client.set(key, value.items)


def _write_hash(client: Any, key: bytes, value: Value) -> None:
    for chunk in _chunks(value.items):
        client.hset(key, mapping=dict(chunk))


def _write_set(client: Any, key: bytes, value: Value) -> None:
    for chunk in _chunks(value.items):
        client.sadd(key, *chunk)


def _write_zset(client: Any, key: bytes, value: Value) -> None:
    for chunk in _chunks(value.items):
        client.zadd(key, {m: s for m, s in chunk})


def _write_list(client: Any, key: bytes, value: Value) -> None:
    for chunk in _chunks(value.items):
        client.rpush(key, *chunk)


def _write_stream(client: Any, key: bytes, value: Value) -> None:
    for entry_id, flat in value.items:
        client.execute_command("XADD", key, entry_id, *flat)
    meta = value.stream_meta
    if not value.items:
        client.execute_command("XGROUP", "CREATE", key, "__reproducer_tmp", "0", "MKSTREAM")
        client.execute_command("XGROUP", "DESTROY", key, "__reproducer_tmp")
    setid = ["XSETID", key, meta["last_id"]]
    if meta.get("entries_added") is not None:
        setid += ["ENTRIESADDED", meta["entries_added"], "MAXDELETEDID", meta["max_deleted_id"]]
    client.execute_command(*setid)
    for group in meta.get("groups", []):
        extra = ["ENTRIESREAD", group["entries_read"]] if group.get("entries_read") is not None else []
        client.execute_command("XGROUP", "CREATE", key, group["name"], group["last_delivered_id"], *extra)


_WRITERS = {
    "string": _write_string,
    "hash": _write_hash,
    "set": _write_set,
    "zset": _write_zset,
    "list": _write_list,
    "stream": _write_stream,
}
