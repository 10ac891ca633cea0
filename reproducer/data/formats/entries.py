"""Keys as typed values, read from an endpoint and written to one: what the file formats share.

Writes go out in batches that close at :data:`BATCH_KEYS` keys or :data:`BATCH_BYTES` bytes, whichever
comes first, so memory is bounded by bytes whatever the size of the keys. The conflict policy is the one
``copy`` applies: a non-empty target is refused unless keys are to be replaced or skipped.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from valkey.exceptions import ResponseError

from reproducer.data import rebuild
from reproducer.data.copy import source_nodes
from reproducer.data.endpoint import Endpoint, node_client, valkey_errors
from reproducer.data.formats.redact import unquoted_server_errors
from reproducer.data.topology import connect, databases, discover
from reproducer.errors import InputError

Progress = Callable[[int], None]
Conflict = Literal["refuse", "replace", "skip"]
#: (key, db) → a valkey-py client (or anything with its command methods) that owns that key.
ClientFor = Callable[[bytes, int], Any]

BATCH_KEYS = 500
BATCH_BYTES = 8 << 20
CONFLICT_HINT = "import into an empty target, or pass --replace (overwrite) or --skip-existing (keep the target's keys)"


@dataclass
class Entry:
    """One key: database, name, typed value and absolute expiry in ms since the epoch (None: no TTL)."""

    db: int
    key: bytes
    value: rebuild.Value
    expire_at_ms: int | None


def conflict_of(conflict: Conflict | None, replace: bool | None) -> Conflict:
    """The conflict policy from ``conflict``, or from the older ``replace`` flag (True: replace, False: skip)."""
    if conflict is not None:
        return conflict
    if replace is None:
        return "refuse"
    return "replace" if replace else "skip"


def check_target(target: Endpoint, conflict: Conflict) -> None:
    """Refuse a target holding keys in any database, unless ``conflict`` says what to do with them."""
    if conflict != "refuse":
        return
    counts: dict[int, int] = {}
    for node in discover(target).primaries:
        conn = connect(target, node)
        try:
            for db in databases(conn):
                conn.select(db)
                counts[db] = counts.get(db, 0) + conn.call_int("DBSIZE")
        finally:
            conn.close()
    used = sorted(db for db, count in counts.items() if count)
    if used:
        raise InputError(
            f"the target {target} is not empty: {sum(counts.values())} key(s) in db {', '.join(map(str, used))}",
            hint=CONFLICT_HINT,
        )


def check_databases(target: Endpoint, dbs: Iterable[int]) -> None:
    """Refuse keys in databases other than 0 for a cluster target (it has db 0 only), as ``copy`` does."""
    used = sorted(set(dbs) - {0})
    if used and discover(target).cluster:
        raise InputError(
            f"the file has keys in database(s) {', '.join(map(str, used))} but the cluster target {target} "
            "has only db 0; nothing was written",
            hint="import into a standalone target, or export one database at a time with --db N",
        )


def read_entries(source: Endpoint, *, dbs: tuple[int, ...] | None = None, match: str | None = None) -> Iterator[Entry]:
    """Every key of ``source`` (every primary, every database) as an Entry."""
    layout = discover(source)
    for node in source_nodes(layout, from_replica=False):
        for db in _dbs(source, node, dbs):
            with node_client(source, *node, db=db) as client, valkey_errors(f"reading {node[0]}:{node[1]} db {db}"):
                yield from client_entries(client, db, match)


def source_clients(source: Endpoint, dbs: tuple[int, ...] | None = None) -> Iterator[tuple[int, Any]]:
    """A valkey-py client per (primary, database) of ``source`` holding keys, with its database number."""
    for node in source_nodes(discover(source), from_replica=False):
        for db in _dbs(source, node, dbs):
            yield db, node_client(source, *node, db=db)


def _dbs(source: Endpoint, node: tuple[str, int], dbs: tuple[int, ...] | None) -> list[int]:
    if dbs is not None:
        return list(dbs)
    if source.db is not None:
        return [source.db]
    conn = connect(source, node)
    try:
        return databases(conn)
    finally:
        conn.close()


def client_entries(client: Any, db: int, match: str | None = None) -> Iterator[Entry]:
    """Every key of database ``db`` that ``client`` is connected to, as an Entry."""
    for key in client.scan_iter(match=match, count=1000):
        kind = client.type(key).decode()
        asked_ms = time.time() * 1000
        pttl = int(client.pttl(key))
        # The server answered between asking and the reply: the midpoint bounds the error by half the round trip
        # (a slow tunnel), and the value is read after, so its read time adds nothing.
        read_at_ms = int((asked_ms + time.time() * 1000) / 2)
        value = rebuild.read_value(client, key, kind) if kind != "none" else None
        if value is None or pttl == -2:
            continue
        yield Entry(db, key, value, read_at_ms + pttl if pttl >= 0 else None)


def value_size(value: Any) -> int:
    """Approximate bytes held by a value (for batch limits)."""
    if isinstance(value, bytes | str):
        return len(value) + 16
    if isinstance(value, list | tuple):
        return 16 + sum(value_size(v) for v in value)
    if isinstance(value, dict):
        return 16 + sum(value_size(v) for v in value.values())
    return 16


class EntryWriter:
    """Writes entries in bounded batches, cluster-aware; counts what it wrote, what had expired or was kept."""

    def __init__(self, target: Endpoint, *, conflict: Conflict = "refuse") -> None:
        layout = discover(target)

        def route(key: bytes, db: int) -> tuple[tuple[str, int], int]:
            return layout.node_for_key(key), 0 if layout.cluster else db

        def open_client(key: bytes, db: int) -> Any:
            node, node_db = route(key, db)
            return node_client(target, *node, db=node_db)

        self._setup(route, open_client, str(target), conflict)

    def _setup(self, route: Callable[[bytes, int], Any], open_client: ClientFor, name: str, conflict: Conflict) -> None:
        self._route, self._open = route, open_client
        self.name, self.conflict = name, conflict
        self._clients: dict[Any, Any] = {}
        self._offsets: dict[int, int] = {}
        self._batch: list[Entry] = []
        self._bytes = 0
        self.written = self.expired = self.skipped = 0

    @classmethod
    def local(cls, client_for_db: Callable[[int], Any], name: str) -> EntryWriter:
        """A writer to one standalone server reached by ``client_for_db(db)`` (a scratch server)."""
        writer = cls.__new__(cls)
        writer._setup(lambda _key, db: db, lambda _key, db: client_for_db(db), name, "replace")
        return writer

    def _clock_offset_ms(self, client: Any) -> int:
        """How far the server's clock is ahead of this machine's (ms), from the midpoint of a TIME round trip.

        Of two round trips, the shorter counts: the first may include the connection's set-up.
        """
        if id(client) not in self._offsets:
            samples = []
            for _ in range(2):
                asked_ms = time.time() * 1000
                try:
                    seconds, microseconds = client.time()
                except ResponseError:  # TIME refused to this user: the two clocks are taken as one
                    samples.append((0.0, 0.0))
                    break
                answered_ms = time.time() * 1000
                server_ms = int(seconds) * 1000 + int(microseconds) / 1000
                samples.append((answered_ms - asked_ms, server_ms - (asked_ms + answered_ms) / 2))
            self._offsets[id(client)] = round(min(samples)[1])
        return self._offsets[id(client)]

    def client(self, key: bytes, db: int) -> Any:
        """The connection that owns ``key`` in database ``db``."""
        route = self._route(key, db)
        if route not in self._clients:
            self._clients[route] = self._open(key, db)
        return self._clients[route]

    def write(self, entry: Entry) -> None:
        """Queue one entry (skipped and counted when its expiry has passed); flushes a full batch."""
        if entry.expire_at_ms is not None and entry.expire_at_ms <= int(time.time() * 1000):
            self.expired += 1
            return
        self._batch.append(entry)
        self._bytes += len(entry.key) + value_size(entry.value.items)
        if len(self._batch) >= BATCH_KEYS or self._bytes >= BATCH_BYTES:
            self.flush()

    def flush(self) -> None:
        """Write the queued entries, one pipeline per server."""
        batch, self._batch, self._bytes = self._batch, [], 0
        if self.conflict == "skip":
            batch = self._without_existing(batch)
        pipes: dict[int, Any] = {}
        with valkey_errors(f"writing to {self.name}"), unquoted_server_errors():
            for entry in batch:
                client = self.client(entry.key, entry.db)
                pipe = pipes.setdefault(id(client), client.pipeline(transaction=False))
                rebuild.write_value(pipe, entry.key, entry.value, -1, replace=True)
                if entry.expire_at_ms is not None:
                    # An absolute expiry on the server's clock: a relative one would start counting only when the
                    # command arrives, late by the pipeline ahead of it and the link (seconds through a tunnel).
                    pipe.pexpireat(entry.key, entry.expire_at_ms + self._clock_offset_ms(client))
            for pipe in pipes.values():
                pipe.execute()
        self.written += len(batch)

    def _without_existing(self, batch: list[Entry]) -> list[Entry]:
        pipes: dict[int, Any] = {}
        order = []
        for entry in batch:
            client = self.client(entry.key, entry.db)
            pipes.setdefault(id(client), client.pipeline(transaction=False)).exists(entry.key)
            order.append(id(client))
        with valkey_errors(f"reading {self.name}"):
            replies = {owner: iter(pipe.execute()) for owner, pipe in pipes.items()}
        found = [bool(next(replies[owner])) for owner in order]
        self.skipped += sum(found)
        return [item for item, exists in zip(batch, found, strict=True) if not exists]

    def close(self) -> None:
        """Close every connection; what is still queued is dropped (call :meth:`flush` first)."""
        for client in self._clients.values():
            client.close()
        self._clients.clear()


def move_keys(source: Any, db: int, writer: EntryWriter, *, match: str | None = None) -> Iterator[int]:
    """Move every key of database ``db`` of ``source`` (a valkey-py client) to ``writer``'s target.

    DUMP and RESTORE in pipelines whose batches close at :data:`BATCH_KEYS` keys or :data:`BATCH_BYTES`
    bytes (sized by ``MEMORY USAGE`` before anything is read); a payload the target cannot read (another
    RDB version) is rebuilt by type. Yields the running count of keys handled, once per batch.
    """
    handled, keys = 0, []
    for key in source.scan_iter(match=match, count=1000):
        keys.append(key)
        if len(keys) >= 1000:
            handled += _move_scanned(source, db, keys, writer)
            keys = []
            yield handled
    if keys:
        yield handled + _move_scanned(source, db, keys, writer)


def _move_scanned(source: Any, db: int, keys: list[bytes], writer: EntryWriter) -> int:
    pipe = source.pipeline(transaction=False)
    for key in keys:
        pipe.memory_usage(key, samples=0)
    try:
        sizes = [int(size or 0) for size in pipe.execute()]
    except ResponseError:  # MEMORY denied: assume every key may be large
        sizes = [BATCH_BYTES // 16] * len(keys)
    group: list[bytes] = []
    total = 0
    for key, size in zip(keys, sizes, strict=True):
        if group and (len(group) >= BATCH_KEYS or total + size > BATCH_BYTES):
            _move_group(source, db, group, writer)
            group, total = [], 0
        group.append(key)
        total += size
    if group:
        _move_group(source, db, group, writer)
    return len(keys)


def _move_group(source: Any, db: int, keys: list[bytes], writer: EntryWriter) -> None:
    pipe = source.pipeline(transaction=False)
    for key in keys:
        pipe.pttl(key)
        pipe.dump(key)
    replies = pipe.execute()
    live = [(k, int(t), d) for k, t, d in zip(keys, replies[::2], replies[1::2], strict=True) if d is not None]
    writer.expired += len(keys) - len(live)
    pipes: dict[int, tuple[Any, list[tuple[bytes, int, bytes]]]] = {}
    for key, pttl, payload in live:
        client = writer.client(key, db)
        target_pipe, items = pipes.setdefault(id(client), (client.pipeline(transaction=False), []))
        target_pipe.restore(key, max(pttl, 0), payload, replace=writer.conflict == "replace")
        items.append((key, pttl, payload))
    with valkey_errors(f"writing to {writer.name}"), unquoted_server_errors():
        for target_pipe, items in pipes.values():
            for (key, pttl, _payload), reply in zip(items, target_pipe.execute(raise_on_error=False), strict=True):
                _count_restore(source, db, key, pttl, reply, writer)


def _count_restore(source: Any, db: int, key: bytes, pttl: int, reply: Any, writer: EntryWriter) -> None:
    if not isinstance(reply, Exception):
        writer.written += 1
        return
    text = str(reply)
    if "BUSYKEY" in text or "Target key name is busy" in text:
        writer.skipped += 1
        return
    if "payload version" not in text and "Bad data format" not in text:
        raise reply
    value = rebuild.read_value(source, key, source.type(key).decode())
    if value is not None:
        expire = int(time.time() * 1000) + pttl if pttl >= 0 else None
        writer.write(Entry(db, key, value, expire))
        writer.flush()
