"""Type-aware read and write of one key: the path when RESTORE refuses a payload, and for file formats.

DUMP payloads carry an RDB version; a target refuses newer or foreign ones (``DUMP payload version or
checksum are wrong``). Then the key is read with its type's commands and written again with them, in
chunks so that a big key never sits whole in one command. Streams keep their entry ids, their last id
and their consumer groups (name, last delivered id, entries read); pending entries of consumers are not
carried (as with every SCAN-based tool), which the copy reports.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

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


def _xrange(client: Any, key: bytes, start: bytes, count: int = CHUNK) -> list[tuple[bytes, list[bytes]]]:
    """Up to ``count`` entries of a stream from ``start``, each entry's fields as the server sent them.

    valkey-py's ``xrange`` turns an entry's fields into a dict, which merges a field named twice in one entry (XADD
    allows it): the reply is read here without that callback.
    """
    pool = client.connection_pool
    connection = pool.get_connection("XRANGE")
    try:
        connection.send_command("XRANGE", key, start, "+", "COUNT", count)
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
    return out + _stream_meta_commands(key, value.stream_meta, create=not value.items)


def _stream_meta_commands(key: bytes, meta: dict[str, Any], *, create: bool) -> list[tuple[Any, ...]]:
    """XSETID and XGROUP CREATE of a stream's metadata; ``create``: make the (empty) stream first."""
    out: list[tuple[Any, ...]] = []
    if create:
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


# Chunked copy and comparison of one big value: never held whole, each window bounded by bytes (an element bigger
# than the bound still goes whole: it cannot be split), progress told after each window.

#: Bytes of a big value read and written at a time: a collection's window of elements.
WINDOW_BYTES = 8 * 1024 * 1024
#: Bytes of a big string read (GETRANGE) and written (APPEND) at a time, at most.
STRING_CHUNK = 8 * 1024 * 1024
#: A partly written key expires this long after its last chunk if the copy dies before renaming it.
PARTIAL_TTL_MS = 10 * 60 * 1000
PARTIAL_PREFIX = b"__reproducer:partial:"
#: Told the bytes of each window copied or compared.
Chunked = Callable[[int], None]
Outcome = Literal["copied", "skipped", "vanished"]


def partial_key(key: bytes, token: bytes, *, cluster: bool) -> bytes | None:
    """A temporary name for ``key`` (``__reproducer:partial:<token>:…``) in the same cluster slot as ``key``.

    In a cluster the name carries ``key``'s hash tag, or ``key`` itself as the tag; None when neither gives the
    same slot (a key with a ``}`` and no tag: it is then written in place).
    """
    base = PARTIAL_PREFIX + token
    if not cluster:
        return base
    start = key.find(b"{")
    end = key.find(b"}", start + 1) if start >= 0 else -1
    if start >= 0 and end > start + 1:
        return base + b":{" + key[start + 1 : end] + b"}"
    if not key or b"}" in key:
        return None
    return base + b":{" + key + b"}"


def copy_chunked(
    reader: Any,
    writer: Any,
    key: bytes,
    kind: str,
    pttl: int,
    *,
    asked_at: float | None = None,
    temp: bytes | None = None,
    replace: bool = True,
    chunk_bytes: int | None = None,
    progress: Chunked | None = None,
) -> Outcome:
    """Copy ``key`` from ``reader`` to ``writer`` (valkey-py clients) a window at a time, never holding it whole.

    Strings go by GETRANGE/APPEND (of at most STRING_CHUNK bytes), collections by their SCAN (LRANGE, XRANGE) in
    windows of at most CHUNK elements and about ``chunk_bytes`` bytes (WINDOW_BYTES by default), each written
    before the next is read.
    They are written under ``temp`` (see :func:`partial_key`: a key that expires PARTIAL_TTL_MS after its last
    chunk), which is renamed onto ``key`` once whole (RENAMENX unless ``replace``), so a copy that dies midway
    never leaves a key that looks complete; with no ``temp``, ``key`` itself is replaced. ``pttl`` as in
    :func:`write_value`, counted from ``asked_at`` (the ``time.monotonic()`` PTTL was sent at; default: now),
    so the copy never outlives the source's key.
    """
    started = time.monotonic() if asked_at is None else asked_at
    into = temp or key
    limit = chunk_bytes or WINDOW_BYTES
    if temp is not None or replace:  # a key someone else wrote meanwhile is never deleted when keys are kept
        writer.delete(into)
    for commands, size in _chunk_writes(reader, key, into, kind, limit):
        pipe = writer.pipeline(transaction=False)
        for args in commands:
            pipe.execute_command(*args)
        if temp is not None:
            pipe.pexpire(into, PARTIAL_TTL_MS)
        pipe.execute()
        if progress is not None:
            progress(size)
    if kind == "stream":
        _copy_stream_meta(reader, writer, key, into)
    if not writer.exists(into):
        return "vanished"
    left = pttl - int((time.monotonic() - started) * 1000)
    if pttl >= 0:
        writer.pexpire(into, max(left, 1))
    elif temp is not None:
        writer.persist(into)
    if temp is None:
        return "copied"
    if replace:
        writer.rename(into, key)
        return "copied"
    if writer.renamenx(into, key):
        return "copied"
    writer.delete(into)
    return "skipped"


def _chunk_writes(reader: Any, key: bytes, into: bytes, kind: str, limit: int) -> Iterator[tuple[list[Any], int]]:
    """The write commands of each window of ``key`` (for ``into``) and the window's bytes."""
    if kind == "string":
        for part in _string_parts(reader, key, min(limit, STRING_CHUNK)):
            yield [("APPEND", into, part)], len(part)
        return
    if kind not in _WRITE_NAMES:
        raise ValueError(f"type {kind!r} of key {key!r} cannot be rebuilt (only {', '.join(TYPES)})")
    for window, size in _windows(reader, key, kind, limit):
        if kind == "stream":
            yield [("XADD", into, entry_id, *fields) for entry_id, fields in window], size
            continue
        if kind == "hash":
            args = [part for pair in window for part in pair]
        elif kind == "zset":
            args = [part for member, score in window for part in (repr(float(score)), member)]
        else:
            args = window
        yield [(_WRITE_NAMES[kind], into, *args)], size


_WRITE_NAMES = {"hash": "HSET", "set": "SADD", "zset": "ZADD", "list": "RPUSH", "stream": "XADD"}


def _string_parts(reader: Any, key: bytes, limit: int) -> Iterator[bytes]:
    """A string's bytes in parts of ``limit``; one empty part for an empty string, none for a vanished key."""
    offset = 0
    while True:
        part = reader.getrange(key, offset, offset + limit - 1)
        if part or (offset == 0 and reader.exists(key)):
            yield part
        offset += len(part)
        if len(part) < limit:
            return


def _copy_stream_meta(reader: Any, writer: Any, key: bytes, into: bytes) -> None:
    """A stream's last id, counters and groups, once its entries are written (an empty stream is created)."""
    if not reader.exists(key):
        return
    meta = _read_stream_meta(reader, key)
    commands = _stream_meta_commands(into, meta, create=not writer.exists(into))
    pipe = writer.pipeline(transaction=False)
    for args in commands:
        pipe.execute_command(*args)
    pipe.execute()


def _windows(reader: Any, key: bytes, kind: str, limit: int) -> Iterator[tuple[list[Any], int]]:
    """A collection's elements in windows of at most CHUNK elements and about ``limit`` bytes, with their bytes."""
    window: list[Any] = []
    size = 0
    for item, nbytes in _elements(reader, key, kind, limit):
        window.append(item)
        size += nbytes
        if len(window) >= CHUNK or size >= limit:
            yield window, size
            window, size = [], 0
    if window:
        yield window, size


def _elements(reader: Any, key: bytes, kind: str, limit: int) -> Iterator[tuple[Any, int]]:
    """Each element with its size in bytes, asked for a few at a time.

    The first ask is for one element, the next for as many as ``limit`` bytes hold at the sizes seen so far (at
    most CHUNK).
    """
    counter = _Counter(limit)
    if kind == "list":
        index = 0
        while window := reader.lrange(key, index, index + counter.count - 1):
            index += len(window)
            yield from counter.seen(window, [len(item) for item in window])
        return
    if kind == "stream":
        start = b"-"
        while window := _xrange(reader, key, start, counter.count):
            entries: list[Any] = [[_id(entry_id), fields] for entry_id, fields in window]
            yield from counter.seen(entries, [len(e[0]) + sum(len(f) for f in e[1]) for e in entries])
            start = b"(" + _id(window[-1][0])
        return
    scan = {"hash": reader.hscan, "set": reader.sscan, "zset": reader.zscan}[kind]
    cursor = 0
    while True:
        cursor, reply = scan(key, cursor, count=counter.count)
        items = [list(pair) for pair in reply.items()] if kind == "hash" else list(reply)
        sizes = [_size_of(kind, item) for item in items]
        yield from counter.seen(items, sizes)
        if not cursor:
            return


def _size_of(kind: str, item: Any) -> int:
    if kind == "hash":
        return len(item[0]) + len(item[1])
    return len(item[0]) + 8 if kind == "zset" else len(item)


class _Counter:
    """How many elements to ask for next so that a reply holds about ``limit`` bytes.

    The count follows the mean size seen so far but at most doubles from one reply to the next, so a few small
    elements first (what a sampled size saw) do not open a window of CHUNK elements onto big ones.
    """

    def __init__(self, limit: int) -> None:
        self.limit, self.count, self._items, self._bytes = limit, 1, 0, 0

    def seen(self, items: list[Any], sizes: list[int]) -> list[tuple[Any, int]]:
        """Learn from one reply; its items with their sizes."""
        self._items += len(items)
        self._bytes += sum(sizes)
        self.count = max(1, min(CHUNK, 2 * self.count, self.limit * self._items // max(self._bytes, 1)))
        return list(zip(items, sizes, strict=True))


def compare_chunked(
    src: Any, dst: Any, key: bytes, kind: str, *, chunk_bytes: int | None = None, progress: Chunked | None = None
) -> str | None:
    """Compare ``key`` on ``src`` and ``dst`` (valkey-py clients) a window at a time; None when equal.

    Else what differs first: a length, an offset, an index or an element's name, never a value.

    Sizes are compared first; then a string's bytes and a list's or stream's elements window by window on both
    sides, and each window of a hash, set or sorted set's SCAN on the source is looked up on the target (HMGET,
    SMISMEMBER, ZMSCORE): with equal sizes, every source element found equal on the target means equal values.
    """
    limit = chunk_bytes or WINDOW_BYTES
    sizes = _SIZE_COMMANDS[kind]
    left, right = src.execute_command(sizes, key), dst.execute_command(sizes, key)
    if left != right:
        return f"{left} {_SIZE_UNITS[kind]} on the source, {right} on the target"
    if kind == "string":
        return _compare_strings(src, dst, key, min(limit, STRING_CHUNK), progress)
    if kind in ("list", "stream"):
        return _compare_ordered(src, dst, key, kind, limit, progress)
    for window, size in _windows(src, key, kind, limit):
        found = _look_up(dst, key, kind, window)
        for item, theirs in zip(window, found, strict=True):
            name = item if kind == "set" else item[0]
            if theirs is None or (kind == "set" and not theirs):
                return f"{_ELEMENT[kind]} {shown(name)} absent on the target"
            if (kind == "hash" and theirs != item[1]) or (kind == "zset" and float(theirs) != float(item[1])):
                return f"{_ELEMENT[kind]} {shown(name)} differs"
        if progress is not None:
            progress(size)
    return None


_SIZE_COMMANDS = {"string": "STRLEN", "hash": "HLEN", "set": "SCARD", "zset": "ZCARD", "list": "LLEN", "stream": "XLEN"}
_SIZE_UNITS = {"string": "bytes", "hash": "fields", "set": "members", "zset": "members", "list": "elements"}
_SIZE_UNITS["stream"] = "entries"
_ELEMENT = {"hash": "field", "set": "member", "zset": "member"}


def _look_up(dst: Any, key: bytes, kind: str, window: list[Any]) -> list[Any]:
    if kind == "hash":
        return list(dst.hmget(key, [field for field, _value in window]))
    if kind == "set":
        return list(dst.execute_command("SMISMEMBER", key, *window))
    return list(dst.execute_command("ZMSCORE", key, *[member for member, _score in window]))


def _compare_strings(src: Any, dst: Any, key: bytes, limit: int, progress: Chunked | None) -> str | None:
    offset = 0
    while part := src.getrange(key, offset, offset + limit - 1):
        theirs = dst.getrange(key, offset, offset + limit - 1)
        if part != theirs:
            first = next((i for i, (a, b) in enumerate(zip(part, theirs, strict=False)) if a != b), len(theirs))
            return f"bytes differ from offset {offset + first}"
        offset += len(part)
        if progress is not None:
            progress(len(part))
    return None


def _compare_ordered(src: Any, dst: Any, key: bytes, kind: str, limit: int, progress: Chunked | None) -> str | None:
    """Lists and streams: the source's windows against the target's same ranges, then a stream's metadata."""
    index = 0
    for window, size in _windows(src, key, kind, limit):
        if kind == "list":
            theirs = dst.lrange(key, index, index + len(window) - 1)
        else:
            theirs = [[_id(i), f] for i, f in _xrange(dst, key, window[0][0], len(window))]
        for offset, (ours, other) in enumerate(zip(window, theirs, strict=False)):
            if ours != other:
                where = f"index {index + offset}" if kind == "list" else f"entry {shown(ours[0])}"
                return f"the {kind}s differ at {where}"
        if len(theirs) != len(window):
            return f"the {kind}s differ after {index + len(theirs)} elements"
        index += len(window)
        if progress is not None:
            progress(size)
    if kind == "stream":
        ours, other = (_read_stream_meta(client, key) for client in (src, dst))
        if {k: v for k, v in ours.items() if k != "entries_added"} != {
            k: v for k, v in other.items() if k != "entries_added"
        }:
            return "the streams' last id or consumer groups differ"
    return None


def shown(name: bytes, limit: int = 64) -> str:
    """An element's name for a message: decoded with escapes, cut at ``limit`` characters."""
    text = name.decode(errors="backslashreplace")
    return repr(text if len(text) <= limit else text[:limit] + "…")
