"""Type-aware read and write of one key: the path when RESTORE refuses a payload, and for file formats.

DUMP payloads carry an RDB version; a target refuses newer or foreign ones (``DUMP payload version or
checksum are wrong``). Then the key is read with its type's commands and written again with them, in
chunks so that a big key never sits whole in one command. Streams keep their entry ids, their last id
and their consumer groups (name, last delivered id, entries read); pending entries of consumers are not
carried (as with every SCAN-based tool), which the copy reports.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Any

from reproducer.errors import DataError

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


def _xrange(client: Any, key: bytes, start: bytes) -> list[tuple[bytes, list[bytes]]]:
    """Up to CHUNK entries of a stream from ``start``, each entry's fields as the server sent them.

    valkey-py's ``xrange`` turns an entry's fields into a dict, which merges a field named twice in one entry (XADD
    allows it): the reply is read here without that callback.
    """
    pool = client.connection_pool
    connection = pool.get_connection("XRANGE")
    try:
        connection.send_command("XRANGE", key, start, "+", "COUNT", CHUNK)
        reply = connection.read_response()
    except BaseException:
        connection.disconnect()
        raise
    finally:
        pool.release(connection)
    if not isinstance(reply, list):
        raise DataError(f"XRANGE of {key!r} answered {type(reply).__name__}, not a list of entries")
    return [(entry[0], list(entry[1] or [])) for entry in reply]


def _read_stream(client: Any, key: bytes) -> Any:
    entries: list[list[Any]] = []
    start = b"-"
    while True:
        window = _xrange(client, key, start)
        entries.extend([_id(i), fields] for i, fields in window)
        if len(window) < CHUNK:
            break
        start = b"(" + _id(window[-1][0])
    return entries, _read_stream_meta(client, key)


def _read_stream_meta(client: Any, key: bytes) -> dict[str, Any]:
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
    return meta


def _id(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


def _bytes(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


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


# Pipelined form: the commands that read a whole value, the parser of their replies, and the commands that
# write it, so that many keys are read (or written) in one round trip. For values small enough to read whole
# (the callers send bigger ones through read_value/write_value, in chunks).


def read_commands(key: bytes, kind: str) -> list[tuple[bytes | str | int, ...]]:
    """The commands whose replies :func:`parse_value` turns into ``key``'s value of type ``kind``."""
    if kind == "string":
        return [("GET", key)]
    if kind == "hash":
        return [("HGETALL", key)]
    if kind == "set":
        return [("SMEMBERS", key)]
    if kind == "zset":
        return [("ZRANGE", key, 0, -1, "WITHSCORES")]
    if kind == "list":
        return [("LRANGE", key, 0, -1)]
    if kind == "stream":
        return [("XRANGE", key, "-", "+"), ("XINFO", "STREAM", key), ("XINFO", "GROUPS", key)]
    raise ValueError(f"type {kind!r} of key {key!r} cannot be rebuilt (only {', '.join(TYPES)})")


class ReplyShapeError(ValueError):
    """A reply is not what the command returns for that type (the key changed type meanwhile, or an error)."""


def parse_value(kind: str, replies: list[Any]) -> Value | None:
    """The value from the replies of :func:`read_commands` (None when the key vanished meanwhile).

    Replies of another shape (an error, the key changed type, a server answering oddly) raise ReplyShapeError.
    """
    try:
        return _parse(kind, replies)
    except (IndexError, KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, ReplyShapeError):
            raise
        raise ReplyShapeError(f"unexpected replies for a {kind}: {type(exc).__name__}") from None


def _parse(kind: str, replies: list[Any]) -> Value | None:
    if any(isinstance(reply, Exception) for reply in replies):
        raise ReplyShapeError(f"reading a {kind} failed: {next(r for r in replies if isinstance(r, Exception))}")
    first = replies[0]
    if kind == "stream":  # an empty stream is a value (a vanished one makes XINFO fail, above)
        return _parse_stream(_expect(first, list), _pairs(replies[1]), [_pairs(g) for g in _expect(replies[2], list)])
    if first is None or first == []:
        return None
    if kind == "string":
        return Value(kind, _expect(first, bytes))
    return Value(kind, _COLLECTIONS[kind](_expect(first, list)))


_COLLECTIONS: dict[str, Any] = {
    "hash": lambda items: [[items[i], items[i + 1]] for i in range(0, len(items), 2)],
    "set": sorted,
    "zset": lambda items: [[items[i], float(items[i + 1])] for i in range(0, len(items), 2)],
    "list": lambda items: items,
}


def _expect(reply: Any, kind: type) -> Any:
    if not isinstance(reply, kind):
        raise ReplyShapeError(f"expected a {kind.__name__} reply, got {type(reply).__name__}")
    return reply


def _pairs(reply: Any) -> dict[bytes, Any]:
    flat = _expect(reply, list)
    return {flat[i]: flat[i + 1] for i in range(0, len(flat) - 1, 2)}


def _parse_stream(entries: list[Any], info: dict[bytes, Any], groups: list[dict[bytes, Any]]) -> Value:
    meta = {
        "last_id": _id(info[b"last-generated-id"]),
        "entries_added": info.get(b"entries-added"),
        "max_deleted_id": _id(info.get(b"max-deleted-entry-id") or b"0-0"),
        "groups": [
            {
                "name": _bytes(g[b"name"]),
                "last_delivered_id": _id(g[b"last-delivered-id"]),
                "entries_read": g.get(b"entries-read"),
            }
            for g in groups
        ],
    }
    return Value("stream", [[_id(entry[0]), list(entry[1])] for entry in entries], meta)


def write_commands(key: bytes, value: Value, pttl: int, *, replace: bool = True) -> list[tuple[Any, ...]]:
    """The commands :func:`write_value` sends, as argument tuples for one pipeline (chunked by CHUNK)."""
    out: list[tuple[Any, ...]] = [("DEL", key)] if replace else []
    items = value.items
    if value.type == "string":
        out.append(("SET", key, items))
    elif value.type in ("hash", "zset"):
        name = "HSET" if value.type == "hash" else "ZADD"
        for chunk in _chunks(items):
            pairs = chunk if value.type == "hash" else [[repr(score), member] for member, score in chunk]
            out.append((name, key, *[part for pair in pairs for part in pair]))
    elif value.type in ("set", "list"):
        out += [("SADD" if value.type == "set" else "RPUSH", key, *chunk) for chunk in _chunks(items)]
    else:
        out += _stream_commands(key, value)
    if pttl >= 0:
        out.append(("PEXPIRE", key, max(pttl, 1)))
    return out


def _stream_commands(key: bytes, value: Value) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = [("XADD", key, entry_id, *flat) for entry_id, flat in value.items]
    meta = value.stream_meta
    if not value.items:
        out += [
            ("XGROUP", "CREATE", key, "__reproducer_tmp", "0", "MKSTREAM"),
            ("XGROUP", "DESTROY", key, "__reproducer_tmp"),
        ]
    setid: tuple[Any, ...] = ("XSETID", key, meta["last_id"])
    if meta.get("entries_added") is not None:
        setid += ("ENTRIESADDED", meta["entries_added"], "MAXDELETEDID", meta["max_deleted_id"])
    out.append(setid)
    for group in meta.get("groups", []):
        extra = ("ENTRIESREAD", group["entries_read"]) if group.get("entries_read") is not None else ()
        out.append(("XGROUP", "CREATE", key, group["name"], group["last_delivered_id"], *extra))
    return out


def normal(value: Value | None) -> Any:
    """A form of ``value`` that compares equal for equal data (order-free types sorted, stream counters aside)."""
    if value is None:
        return None
    if value.type in ("hash", "zset"):
        return value.type, sorted(map(tuple, value.items))
    if value.type == "set":
        return value.type, sorted(value.items)
    if value.type == "stream":
        entries = [[entry_id, list(flat)] for entry_id, flat in value.items]
        return value.type, entries, {k: v for k, v in value.stream_meta.items() if k != "entries_added"}
    return value.type, value.items


#: Bytes of a big string read (GETRANGE) and written (APPEND) at a time.
STRING_CHUNK = 8 * 1024 * 1024


def copy_chunked(reader: Any, writer: Any, key: bytes, kind: str, pttl: int) -> None:
    """Copy ``key`` from ``reader`` to ``writer`` (valkey-py clients) a chunk at a time, never holding it whole.

    For a value too big for one RESTORE, or for the memory bound: strings by GETRANGE/APPEND in STRING_CHUNK
    bytes, collections by their SCAN (or LRANGE/XRANGE windows) in CHUNK elements, each chunk written before the
    next is read. The target key is deleted first; ``pttl`` as in :func:`write_value`.
    """
    started = time.monotonic()
    writer.delete(key)
    if kind == "string":
        _copy_string(reader, writer, key)
    elif kind == "stream":
        _copy_stream(reader, writer, key)
    else:
        for chunk in _windows(reader, key, kind):
            _WRITERS[kind](writer, key, Value(kind, chunk))
    if pttl >= 0:  # the expiry counts from when PTTL answered, however long the chunks took
        writer.pexpire(key, max(pttl - int((time.monotonic() - started) * 1000), 1))


def _copy_string(reader: Any, writer: Any, key: bytes) -> None:
    offset = 0
    while True:
        part = reader.getrange(key, offset, offset + STRING_CHUNK - 1)
        if part or offset == 0:
            writer.append(key, part)  # an empty string is created too
        offset += len(part)
        if len(part) < STRING_CHUNK:
            return


def _windows(reader: Any, key: bytes, kind: str) -> Any:
    """The elements of a hash, set, sorted set or list in chunks of CHUNK, in the form their writers take."""
    if kind == "list":
        start = 0
        while window := reader.lrange(key, start, start + CHUNK - 1):
            yield window
            start += len(window)
        return
    scan = {"hash": reader.hscan_iter, "set": reader.sscan_iter, "zset": reader.zscan_iter}[kind]
    chunk: list[Any] = []
    for item in scan(key, count=CHUNK):
        chunk.append(list(item) if kind != "set" else item)
        if len(chunk) == CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _copy_stream(reader: Any, writer: Any, key: bytes) -> None:
    start = b"-"
    while window := _xrange(reader, key, start):
        pipe = writer.pipeline(transaction=False)
        for entry_id, fields in window:
            pipe.execute_command("XADD", key, _id(entry_id), *fields)
        pipe.execute()
        if len(window) < CHUNK:
            break
        start = b"(" + _id(window[-1][0])
    _write_stream(writer, key, Value("stream", [], _read_stream_meta(reader, key)))


_MODULUS = 1 << 256


def fingerprint(client: Any, key: bytes, kind: str) -> bytes:
    """A digest of ``key``'s value read a chunk at a time (memory bounded whatever the value's size).

    Ordered types (string, list, stream) hash their chunks in order; hashes, sets and sorted sets add up one
    digest per element, so the order SCAN returns them in does not matter. SCAN may return an element twice
    (while the table rehashes): equal fingerprints mean equal values, different ones must be confirmed by a
    whole comparison.
    """
    ordered = hashlib.blake2b(kind.encode(), digest_size=32)
    if kind == "string":
        offset = 0
        while part := client.getrange(key, offset, offset + STRING_CHUNK - 1):
            ordered.update(part)
            offset += len(part)
        return ordered.digest()
    if kind in ("list", "stream"):
        windows = _windows(client, key, kind) if kind == "list" else _stream_windows(client, key)
        for window in windows:
            for item in window:
                ordered.update(repr(item).encode())
        if kind == "stream":
            meta = _read_stream_meta(client, key)
            ordered.update(repr({k: v for k, v in meta.items() if k != "entries_added"}).encode())
        return ordered.digest()
    total = 0
    for window in _windows(client, key, kind):
        for item in window:
            element = (item[0], repr(float(item[1]))) if kind == "zset" else item
            total += int.from_bytes(hashlib.blake2b(repr(element).encode(), digest_size=32).digest(), "big")
    return ordered.digest() + (total % _MODULUS).to_bytes(32, "big")


def _stream_windows(client: Any, key: bytes) -> Any:
    start = b"-"
    while window := _xrange(client, key, start):
        yield [[_id(entry_id), fields] for entry_id, fields in window]
        if len(window) < CHUNK:
            return
        start = b"(" + _id(window[-1][0])
