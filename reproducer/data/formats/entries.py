"""Keys as typed values, read from an endpoint and written to one: what the file formats share."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from reproducer.data import rebuild
from reproducer.data.copy import source_nodes
from reproducer.data.endpoint import Endpoint, node_client, valkey_errors
from reproducer.data.topology import Layout, connect, databases, discover

Progress = Callable[[int], None]


@dataclass
class Entry:
    """One key: database, name, typed value and absolute expiry in ms since the epoch (None: no TTL)."""

    db: int
    key: bytes
    value: rebuild.Value
    expire_at_ms: int | None


def read_entries(source: Endpoint, *, dbs: tuple[int, ...] | None = None, match: str | None = None) -> Iterator[Entry]:
    """Every key of ``source`` (every primary, every database) as an Entry."""
    layout = discover(source)
    for node in source_nodes(layout, from_replica=False):
        for db in _dbs(source, node, dbs):
            with node_client(source, *node, db=db) as client, valkey_errors(f"reading {node[0]}:{node[1]} db {db}"):
                yield from _node_entries(client, db, match)


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


def _node_entries(client: Any, db: int, match: str | None) -> Iterator[Entry]:
    for key in client.scan_iter(match=match, count=1000):
        kind = client.type(key).decode()
        pttl = int(client.pttl(key))
        value = rebuild.read_value(client, key, kind) if kind != "none" else None
        if value is None or pttl == -2:
            continue
        yield Entry(db, key, value, int(time.time() * 1000) + pttl if pttl >= 0 else None)


class EntryWriter:
    """Writes entries to a target endpoint, cluster-aware; counts what it wrote and what had expired."""

    def __init__(self, target: Endpoint, *, replace: bool = True) -> None:
        self.target, self.replace = target, replace
        self.layout: Layout = discover(target)
        self._clients: dict[tuple[tuple[str, int], int], Any] = {}
        self.written = 0
        self.expired = 0
        self.skipped = 0

    def write(self, entry: Entry) -> None:
        """Write one entry (skipped and counted when its expiry has passed)."""
        pttl = -1
        if entry.expire_at_ms is not None:
            pttl = entry.expire_at_ms - int(time.time() * 1000)
            if pttl <= 0:
                self.expired += 1
                return
        client = self._client(entry.key, entry.db)
        with valkey_errors(f"writing {entry.key!r} to {self.target}"):
            if not self.replace and client.exists(entry.key):
                self.skipped += 1
                return
            rebuild.write_value(client, entry.key, entry.value, pttl, replace=True)
        self.written += 1

    def _client(self, key: bytes, db: int) -> Any:
        node = self.layout.node_for_key(key)
        slot = (node, 0 if self.layout.cluster else db)
        if slot not in self._clients:
            self._clients[slot] = node_client(self.target, *node, db=slot[1])
        return self._clients[slot]

    def send_raw(self, key: bytes | None, db: int, args: list[Any]) -> None:
        """Send one raw command (AOF replay), routed by ``key`` when the target is a cluster."""
        client = self._client(key or b"", db)
        with valkey_errors(f"replaying {bytes(args[0]).decode(errors='replace')} on {self.target}"):
            client.execute_command(*args)

    def close(self) -> None:
        """Close every connection."""
        for client in self._clients.values():
            client.close()
