"""Follow a source through keyspace notifications and re-copy what changes, for a cutover of seconds.

Every source primary is subscribed to ``__keyspace@<db>__:*`` before the bulk copy starts. Changed keys
are collected (deduplicated) and, once the bulk copy is over, re-copied in batches bounded by keys and bytes
as the copy's are (sizes from MEMORY USAGE, else from each type's size commands): DUMP + PTTL from the
source, RESTORE REPLACE on the target, or DEL when the key is gone. A changed key over the byte bound is never
dumped: it is copied a window at a time under a temporary name renamed onto it once whole, as the copy does. The
follower runs until ``stop`` is set, then drains what it has queued.

Lag is measured while following (:attr:`FollowStats.behind`, :attr:`FollowStats.oldest_ms`,
:attr:`FollowStats.events_per_second`): keys changed on the source and not yet applied to the target, and the
age of the oldest of them.

Known limits, detected and reported: notifications must be enabled on the source (``K`` and ``A`` flags;
on OVH through the advanced configuration ``redis_notify_keyspace_events``), which a probe key checks at
start. **The probe writes to the source**: one key ``__reproducer:follow-probe:<8 hex>`` (on a cluster with a
``:{n}`` hash tag in the first primary's slots) set to ``1`` with a 2-second expiry (``SET … PX 2000``) in the
first followed database, deleted as soon as its event arrives; it is never copied (the follower skips that
prefix) and needs ``+set`` and ``+del`` on that prefix. FLUSHALL/FLUSHDB emit no per-key event (a DBSIZE that
falls by more than the removals notified is reported); events are lost while a subscription is disconnected
(each reconnection is counted as a gap). A final verify catches whatever slipped.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from reproducer.data.copy import (
    OUTGROWN_FACTOR,
    CopyOptions,
    KeySizer,
    RestoreBatch,
    TargetWriter,
    ValueOutgrown,
    chunk_bytes,
    monotonic_ms,
)
from reproducer.data.endpoint import Endpoint, node_client, valkey_errors
from reproducer.data.resp import RawConnection, ReplyError, ReplyOverLimit, command
from reproducer.data.topology import Address, connect, databases, discover, owned_key
from reproducer.errors import DataError

_PROBE_TIMEOUT = 3.0
_FLUSH_INTERVAL = 0.05
_SIZE_CHECK_INTERVAL = 2.0
_REMOVALS = frozenset({b"del", b"expired", b"evicted", b"unlink", b"rename_from", b"move_from"})


@dataclass
class FollowStats:
    """What the follower did: events seen, keys re-copied or deleted, lag, detected gaps."""

    events: int = 0
    recopied: int = 0
    deleted: int = 0
    gaps: int = 0
    max_lag_ms: int = 0
    #: The most a re-copied key's TTL may be short (see ``copy.Stats.ttl_early_ms``).
    ttl_early_ms: int = 0
    queued: int = 0
    #: Lag now: keys changed and not applied yet, the age of the oldest of them, and events per second.
    behind: int = 0
    oldest_ms: int = 0
    events_per_second: float = 0.0
    warnings: list[str] = field(default_factory=list)


FollowProgress = Callable[[FollowStats], None]


class Follower:
    """Subscribes to every source primary and applies changes to the target (see the module docstring)."""

    def __init__(
        self,
        source: Endpoint,
        target: Endpoint,
        *,
        dbs: tuple[int, ...] | None = None,
        progress: FollowProgress | None = None,
        max_batch_bytes: int | None = None,
    ) -> None:
        self.source, self.target = source, target
        #: The copy's byte bound: changed keys are re-copied in batches of at most this many bytes, and a key over
        #: it a window at a time.
        self.max_batch_bytes = max_batch_bytes or CopyOptions().max_batch_bytes
        self.dbs = dbs or ((source.db,) if source.db is not None else None)
        self.stats = FollowStats()
        self.stop_event = threading.Event()
        #: Set once the bulk copy is over. Changes are only queued before that: applying a DEL while the
        #: copy may still RESTORE the same key (dumped just before the delete) would resurrect it.
        self.copy_done = threading.Event()
        self._progress = progress
        self._queue: dict[tuple[int, bytes], int] = {}
        #: Keys taken from the queue and being applied, and the time the oldest of them was first seen.
        self._inflight: tuple[int, int | None] = (0, None)
        self._rate: tuple[float, int] = (time.monotonic(), 0)
        self._removals = 0
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._errors: list[BaseException] = []

    def start(self) -> None:
        """Subscribe on every source primary, check notifications arrive, start applying changes."""
        layout = discover(self.source)
        nodes = layout.primaries
        subscribers = [self._subscribe(node) for node in nodes]
        probe = owned_key(layout, nodes[0], f"__reproducer:follow-probe:{secrets.token_hex(4)}".encode())
        self._probe(nodes[0], subscribers[0], probe)
        for node, conn in zip(nodes, subscribers, strict=True):
            self._spawn(self._listen, node, conn)
        self._spawn(self._apply_loop)

    def stop(self, timeout: float = 60.0) -> FollowStats:
        """Stop listening, drain the queue, and return the statistics (raises what a thread raised)."""
        self.stop_event.set()
        for thread in self._threads:
            thread.join(timeout)
        if self._errors:
            raise self._errors[0]
        return self.stats

    def _spawn(self, target: Callable[..., None], *args: object) -> None:
        def guarded() -> None:
            try:
                target(*args)
            except BaseException as exc:
                self._errors.append(exc)
                self.stop_event.set()

        thread = threading.Thread(target=guarded, name=f"follow-{target.__name__}", daemon=True)
        thread.start()
        self._threads.append(thread)

    def _subscribe(self, node: Address) -> RawConnection:
        conn = connect(self.source, node)
        patterns = [f"__keyspace@{db}__:*" for db in self.dbs] if self.dbs else ["__keyspace@*__:*"]
        conn.send(command("PSUBSCRIBE", *patterns))
        replies = conn.read(len(patterns))
        if any(isinstance(r, ReplyError) for r in replies):
            raise DataError(
                f"PSUBSCRIBE refused on {conn.address}: {replies}", hint="the user needs +psubscribe and &*"
            )
        return conn

    def _probe(self, node: Address, subscriber: RawConnection, probe: bytes) -> None:
        writer = connect(self.source, node)
        try:
            writer.select(self._probe_db)
            writer.call("SET", probe, "1", "PX", 2000)
            deadline = time.monotonic() + _PROBE_TIMEOUT
            while time.monotonic() < deadline:
                if any(_event_key(m) == (self._probe_db, probe) for m in subscriber.poll(0.1)):
                    writer.call("DEL", probe)
                    return
        finally:
            writer.close()
        raise DataError(
            "keyspace notifications are off on the source: no event arrived for a probe key",
            hint="enable them (notify-keyspace-events KA; on OVH: advanced configuration "
            "redis_notify_keyspace_events=KA, which 'reproducer copy --follow --ovh-service' sets for you)",
        )

    @property
    def _probe_db(self) -> int:
        return self.dbs[0] if self.dbs else 0

    def _listen(self, node: Address, conn: RawConnection) -> None:
        while not self.stop_event.is_set():
            try:
                messages = conn.poll(0.2)
            except DataError:
                conn.close()
                self._gap(node)
                conn = self._resubscribe(node)
                continue
            self._enqueue(messages)
        conn.close()

    def _resubscribe(self, node: Address) -> RawConnection:
        while not self.stop_event.is_set():
            try:
                return self._subscribe(node)
            except DataError:
                time.sleep(0.5)
        raise DataError("stopped while reconnecting")

    def _gap(self, node: Address) -> None:
        with self._lock:
            self.stats.gaps += 1
            self.stats.warnings.append(
                f"subscription to {node[0]}:{node[1]} dropped: events may be lost until it was restored; "
                "run verify after the cutover"
            )

    def _enqueue(self, messages: list[object]) -> None:
        now = monotonic_ms()
        with self._lock:
            for message in messages:
                found = _event_key(message)
                if found is not None and not found[1].startswith(b"__reproducer:follow-probe:"):
                    self.stats.events += 1
                    self._removals += message[3] in _REMOVALS  # type: ignore[index]
                    self._queue.setdefault(found, now)

    def _apply_loop(self) -> None:
        writer = TargetWriter(self.target, replace=True)
        reader = _SourceReader(self.source, self.max_batch_bytes)
        size, removals, checked = reader.dbsize(), 0, time.monotonic()
        try:
            while not self.stop_event.is_set():
                time.sleep(_FLUSH_INTERVAL)
                self._measure_lag()
                if self.copy_done.is_set():
                    self._apply(reader, writer)
                if time.monotonic() - checked >= _SIZE_CHECK_INTERVAL:
                    size, removals, checked = self._check_size(reader, size, removals), self._removals, time.monotonic()
            if self.copy_done.is_set():
                self._apply(reader, writer)
            self._measure_lag()
        finally:
            writer.close()
            reader.close()

    def _measure_lag(self) -> None:
        """Update ``behind``, ``oldest_ms`` and ``events_per_second`` (the queue keeps first-seen order)."""
        now = monotonic_ms()
        with self._lock:
            first = next(iter(self._queue.values()), None)
            inflight, inflight_oldest = self._inflight
            behind = len(self._queue) + inflight
            events = self.stats.events
        seen = [t for t in (first, inflight_oldest) if t is not None]
        self.stats.behind, self.stats.oldest_ms = behind, (now - min(seen)) if seen else 0
        started, counted = self._rate
        elapsed = time.monotonic() - started
        if elapsed >= 1.0:
            self.stats.events_per_second = round((events - counted) / elapsed, 1)
            self._rate = (time.monotonic(), events)

    def _check_size(self, reader: _SourceReader, before: int, removals_before: int) -> int:
        """Warn when the source lost more keys than removal events explain (FLUSHALL/FLUSHDB, lost events)."""
        now = reader.dbsize()
        unexplained = before - now - (self._removals - removals_before)
        if unexplained > max(100, before // 100):
            self.stats.warnings.append(
                f"the source's key count fell from {before} to {now} with only {self._removals - removals_before} "
                "removal events: a FLUSHALL/FLUSHDB (which notifies no key) or lost events; run verify, and copy "
                "again with --replace if it differs"
            )
        return now

    def _apply(self, reader: _SourceReader, writer: TargetWriter) -> None:
        with self._lock:
            batch, self._queue = self._queue, {}
            self._inflight = (len(batch), next(iter(batch.values()), None))
        self.stats.queued = len(batch)
        by_db: dict[int, list[bytes]] = {}
        for db, key in batch:
            by_db.setdefault(db, []).append(key)
        for db, keys in by_db.items():
            self._copy_keys(reader, writer, db, keys)
        self.stats.ttl_early_ms = max(reader.ttl_early_ms, writer.ttl_early_ms)
        if batch:
            oldest = min(batch.values())
            self.stats.max_lag_ms = max(self.stats.max_lag_ms, monotonic_ms() - oldest)
            if self._progress:
                self._progress(self.stats)
        with self._lock:
            self._inflight = (0, None)

    def _copy_keys(self, reader: _SourceReader, writer: TargetWriter, db: int, keys: list[bytes]) -> None:
        for group, big in reader.groups(db, keys):
            if big:
                self._copy_big(reader, writer, db, group[0])
            else:
                self._copy_group(reader, writer, db, group)

    def _copy_big(self, reader: _SourceReader, writer: TargetWriter, db: int, key: bytes) -> None:
        """Re-copy one key over the byte bound a window at a time, as the copy does (never DUMPed or read whole).

        It is written under a temporary name in its slot and renamed onto the key once whole, TTL kept
        (:meth:`TargetWriter.rebuild_chunked`); a key gone meanwhile is deleted on the target.
        """
        node = reader.layout.node_for_key(key)
        with node_client(self.source, *node, db=db) as client, valkey_errors(f"re-copying {key!r}"):
            kind = client.type(key).decode()
            done = "vanished"
            if kind != "none":
                limit = chunk_bytes(self.max_batch_bytes)
                done = writer.rebuild_chunked(db, key, client, kind, chunk_bytes=limit)
        if done == "vanished":
            writer.conn(writer.layout.node_for_key(key), db).call("DEL", key)
            self.stats.deleted += 1
        else:
            self.stats.recopied += 1

    def _copy_group(self, reader: _SourceReader, writer: TargetWriter, db: int, keys: list[bytes]) -> None:
        while True:
            try:
                present, gone = reader.dump(db, keys)
                break
            except ValueOutgrown as exc:  # sized under the bound, far over it when read: windows for it, others again
                self._copy_big(reader, writer, db, exc.key)
                keys = [key for key in keys if key != exc.key]
                if not keys:
                    return
        present, unknown, _converted = writer.split(present)
        if present:
            batch = RestoreBatch(db, present, writer.send(db, present))
            outcome = writer.confirm(batch)
            self.stats.recopied += outcome.copied
            unknown += [(present[index][0], 0) for index in outcome.rebuild]
        if unknown:  # a type the target's RDB version does not know, or a refused payload: rebuilt by type
            rebuilt = writer.rebuild_keys(db, [key for key, _size in unknown], reader.conn_for(unknown[0][0]))
            self.stats.recopied += rebuilt.rebuilt  # a key that changed type meanwhile comes back as an event
        for key in gone:
            node = writer.layout.node_for_key(key)
            writer.conn(node, db).call("DEL", key)
            self.stats.deleted += 1


class _SourceReader:
    """DUMP + PTTL of arbitrary keys on the source, routed to the owning primary."""

    def __init__(self, source: Endpoint, max_batch_bytes: int) -> None:
        self.source, self.layout = source, discover(source)
        self._conns: dict[Address, RawConnection] = {}
        self.sizer = KeySizer(max_batch_bytes)
        self._limit = OUTGROWN_FACTOR * max_batch_bytes
        #: The longest wait for a PTTL reply (see ``copy.Stats.ttl_early_ms``).
        self.ttl_early_ms = 0

    def groups(self, db: int, keys: list[bytes]) -> Iterator[tuple[list[bytes], bool]]:
        """``keys`` by source node, in groups of at most ``batch`` keys and the byte bound; True: one key over it."""
        by_node: dict[Address, list[bytes]] = {}
        for key in keys:
            by_node.setdefault(self.layout.node_for_key(key), []).append(key)
        batch = CopyOptions().batch
        for node, node_keys in by_node.items():
            for start in range(0, len(node_keys), batch):
                conn = self._conn(node)
                conn.select(db)
                yield from self.sizer.groups(conn, node_keys[start : start + batch])

    def conn_for(self, key: bytes) -> RawConnection:
        """The connection to the source node that holds ``key``."""
        return self._conn(self.layout.node_for_key(key))

    def _conn(self, node: Address) -> RawConnection:
        if node not in self._conns:
            self._conns[node] = connect(self.source, node)
        return self._conns[node]

    def dump(self, db: int, keys: list[bytes]) -> tuple[list[tuple[bytes, int, bytes]], list[bytes]]:
        """Keys still present as (key, deadline, payload), and keys that are gone."""
        present: list[tuple[bytes, int, bytes]] = []
        gone: list[bytes] = []
        by_node: dict[Address, list[bytes]] = {}
        for key in keys:
            by_node.setdefault(self.layout.node_for_key(key), []).append(key)
        for node, node_keys in by_node.items():
            conn = self._conns.get(node) or connect(self.source, node)
            self._conns[node] = conn
            conn.select(db)
            sent = monotonic_ms()
            conn.send(b"".join(command("PTTL", k) + command("DUMP", k) for k in node_keys))
            try:
                replies = conn.read(2 * len(node_keys), limit=self._limit, limited=2 * len(node_keys))
            except ReplyOverLimit as exc:
                conn.close()
                del self._conns[node]
                raise ValueOutgrown(node_keys[exc.index // 2]) from None
            self.ttl_early_ms = max(self.ttl_early_ms, monotonic_ms() - sent)
            self.sizer.guess.observe([len(r) for r in replies[1::2] if isinstance(r, bytes)])
            for index, key in enumerate(node_keys):
                pttl, payload = replies[2 * index], replies[2 * index + 1]
                if isinstance(payload, bytes) and isinstance(pttl, int) and pttl != -2:
                    present.append((key, sent + pttl if pttl >= 0 else 0, payload))
                else:
                    gone.append(key)
        return present, gone

    def dbsize(self) -> int:
        """Keys in every database of every source primary."""
        total = 0
        for node in self.layout.primaries:
            conn = self._conns.get(node) or connect(self.source, node)
            self._conns[node] = conn
            for db in databases(conn):
                conn.select(db)
                total += conn.call_int("DBSIZE")
        return total

    def close(self) -> None:
        """Close every source connection."""
        for conn in self._conns.values():
            conn.close()


def _event_key(message: object) -> tuple[int, bytes] | None:
    """(db, key) of a ``pmessage`` from ``__keyspace@<db>__:<key>``, else None."""
    if not isinstance(message, list) or len(message) != 4 or message[0] != b"pmessage":
        return None
    channel = message[2]
    if not isinstance(channel, bytes) or not channel.startswith(b"__keyspace@"):
        return None
    head, _, key = channel.partition(b"__:")
    return int(head[len(b"__keyspace@") :]), key
