"""Copy every key from one endpoint to another, written with RESTORE (and SET for strings).

Each source primary is read from its snapshot when it allows SYNC (:mod:`reproducer.data.snapshot`: its RDB
stream, cut into DUMP payloads; a batch is written while the next is read), and otherwise as follows.

One worker per source primary (or replica, when asked) scans its keyspace in batches. For each batch it
sends ``PTTL``+``DUMP`` of its keys, ``MEMORY USAGE`` of the keys the last SCAN returned and the next ``SCAN``
in one write, and sends the previous batch's ``RESTORE``s to the target before reading, so source and target
work at the same time. A batch closes at ``batch`` keys (one SCAN reply) or ``max_batch_bytes`` bytes, so
memory is bounded by bytes whatever the values' sizes (see :class:`_Planner`). A cluster
target is written node by node from a local slot map; ``MOVED``/``ASK``/``TRYAGAIN`` and broken
connections refresh the map and retry, so a failover or a reshard does not abort the copy.

Several source nodes are copied at once, each by a worker process of its own (:mod:`reproducer.data.workers`;
by threads through a bastion); a single node in this process.

Across engines the target's RDB version is known up front (``INFO server``, else a RESTORE probe): a payload
stamped newer is re-stamped when its object type is one the target knows (:func:`dumpfmt.downgrade`) or
rewritten as one it knows (:func:`snapshot.older_payload`), and only the other keys, and those the target still
refuses, are rebuilt with type commands, many keys per round trip
(:mod:`reproducer.data.rebuild`); a big value is rebuilt alone, in chunks. A key whose MEMORY USAGE is over the
byte bound is never dumped: it is copied a window at a time under a temporary name renamed onto it once whole.

Per source node the SCAN cursor and counters are checkpointed (only once every key of a SCAN reply is
confirmed on the target); ``resume`` continues from there, only against the source and target the
checkpoint names, and only when the target still holds the keys it confirmed. A snapshot has no cursor: an
unfinished node is copied again from a new one.
"""

from __future__ import annotations

import contextlib
import operator
import os
import threading
import time
from bisect import bisect_right
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields, replace
from itertools import accumulate
from pathlib import Path
from typing import Any, Literal

from reproducer.data import dumpfmt, rebuild, relay, sizing, snapshot
from reproducer.data.checkpoint import FORMAT_VERSION, Checkpoint
from reproducer.data.dumpfmt import Plain
from reproducer.data.endpoint import Endpoint, node_client, valkey_errors
from reproducer.data.resp import DIRECT_SEND, GATHER, RawConnection, ReplyError, ReplyOverLimit, command
from reproducer.data.topology import Address, Layout, connect, databases, discover, identity, owned_key
from reproducer.errors import DataError, InputError

_encode: Callable[..., list[bytes]] | None
_snapshot_items_in_c: Callable[..., tuple[list[tuple[bytes, int, bytes]], int, int, list[bytes]]] | None
_route: Callable[..., list[list[int]]] | None
try:  # the per-key work in C (_speedups.c), when the build had a C compiler: the same results, less CPU a key
    from reproducer.data._speedups import route as _route
    from reproducer.data._speedups import snapshot_items as _snapshot_items_in_c
    from reproducer.data._speedups import writes as _encode
except ImportError:  # pragma: no cover - a pure-Python build
    _encode = _snapshot_items_in_c = _route = None

Conflict = Literal["refuse", "replace", "skip"]
#: How to read the source (``CopyOptions.read``).
ReadMode = Literal["auto", "sync", "scan"]
_Value = rebuild.Value
_MAX_RETRIES = 8
_MAX_SOURCE_RETRIES = 6
#: The checkpoint is written at most this often (seconds) while batches go by: each write is a file replaced,
#: milliseconds of the copy's own thread; a copy killed outright re-copies at most this long's keys on --resume.
CHECKPOINT_SECONDS = 0.25
#: A worker process sends its progress to the parent at most this often.
RELAY_SECONDS = 0.1
_WAIT_MS = 2000
#: A snapshot's deadlines are dated at least this much early (more when the last batch took longer to confirm):
#: a TTL counts from when the target runs the write, after it was sent.
_WRITE_MARGIN_MS = 10
_VERSION_ERRORS = ("DUMP payload version or checksum are wrong", "Bad data format")
_DEADLINE = operator.itemgetter(1)  # of a write's (key, deadline, payload)
#: A key whose payload is at most this big is rebuilt with others in one pipeline (its whole value read at
#: once); a bigger one alone, in chunks of rebuild.CHUNK elements.
WHOLE_VALUE_BYTES = 4 * 1024 * 1024
#: Whole values read in one pipeline add up to at most about this many payload bytes (their Python objects
#: take several times more).
WHOLE_GROUP_BYTES = 8 * 1024 * 1024


def byte_groups(sized: list[tuple[bytes, int]], limit: int = WHOLE_GROUP_BYTES) -> Iterator[list[bytes]]:
    """Keys in order, in groups whose sizes add up to at most ``limit`` (a bigger key alone)."""
    group: list[bytes] = []
    total = 0
    for key, size in sized:
        if group and total + size > limit:
            yield group
            group, total = [], 0
        group.append(key)
        total += size
    if group:
        yield group


@dataclass(frozen=True)
class CopyOptions:
    """What to copy and how."""

    match: str | None = None
    dbs: tuple[int, ...] | None = None
    batch: int = 1000
    conflict: Conflict = "refuse"
    from_replica: bool = False
    max_keys_per_second: float | None = None
    max_bytes_per_second: float | None = None
    max_payload_bytes: int = 256 * 1024 * 1024
    #: A batch also closes at this many bytes of payload (two batches are held at once: see _copy_db).
    max_batch_bytes: int = 64 * 1024 * 1024
    checkpoint: Path | None = None
    resume: bool = False
    checkpoint_every: int = 10
    #: How to read the source: ``sync`` its snapshot (as a replica), ``scan`` with SCAN and DUMP, ``auto`` the
    #: snapshot when the source allows SYNC and nothing asks for a scan (see ``_NodeCopier._reads_snapshot``).
    read: ReadMode = "auto"


@dataclass
class Stats:
    """Counters of one source node (or of the whole copy)."""

    scanned: int = 0
    copied: int = 0
    expired: int = 0
    skipped: int = 0
    rebuilt: int = 0
    #: Payloads re-stamped with the target's older RDB version (their type is one it knows).
    converted: int = 0
    bytes: int = 0
    retries: int = 0
    #: Copied keys without a TTL: a resumed target must still hold at least these.
    persistent: int = 0
    #: The most a copied key's TTL may be short, in ms: the longest wait for a source's PTTL reply. Deadlines
    #: are dated from when PTTL was asked, so a key never outlives the source's; verify allows this much more.
    ttl_early_ms: int = 0

    @classmethod
    def saved(cls, values: dict[str, int]) -> Stats:
        """Counters read back from a checkpoint (names this version does not know are ignored)."""
        return cls(**{f.name: values[f.name] for f in fields(cls) if f.name in values})

    def add(self, other: Stats) -> None:
        """Add ``other``'s counters to these (``ttl_early_ms`` keeps the larger)."""
        mine = vars(self)
        for name, theirs in vars(other).items():
            mine[name] = max(mine[name], theirs) if name == "ttl_early_ms" else mine[name] + theirs


@dataclass
class CopyResult:
    """Totals, per-node counters and timing of a finished copy."""

    total: Stats
    per_node: dict[str, Stats]
    seconds: float
    source_keys: int
    notes: list[str] = field(default_factory=list)

    @property
    def keys_per_second(self) -> float:
        """Keys handled (copied, expired, skipped, rebuilt) per second."""
        return self.total.scanned / self.seconds if self.seconds else 0.0


Progress = Callable[[Stats, int], None]


def source_nodes(layout: Layout, *, from_replica: bool) -> list[Address]:
    """The nodes to scan: every primary, or one replica of each primary when asked and available."""
    if not from_replica:
        return list(layout.primaries)
    return [(layout.replicas.get(p) or [p])[0] for p in layout.primaries]


def copy(source: Endpoint, target: Endpoint, options: CopyOptions, progress: Progress | None = None) -> CopyResult:
    """Copy ``source`` into ``target`` (see the module docstring); ``progress(totals, source_keys)``."""
    check_read(options.read, options.match)
    src_layout, dst_layout = discover(source), discover(target)
    nodes = source_nodes(src_layout, from_replica=options.from_replica)
    dbs = {node: _databases(source, node, options) for node in nodes}
    _check_target(target, dst_layout, dbs, options)
    checkpoint = Checkpoint.open(
        options.checkpoint,
        resume=options.resume,
        source=identity(source, src_layout),
        target=identity(target, dst_layout),
    )
    earlier = Stats.saved(checkpoint.totals())
    if options.resume:
        _check_resumed_target(target, dst_layout, dbs, earlier)
    checkpoint.save()  # before any key moves: a run directory that cannot hold it stops the copy here
    tracker = _Tracker(sum(_key_count(source, n, d) for n, ds in dbs.items() for d in ds), progress)
    tracker.total.add(earlier)
    started = time.monotonic()
    try:
        if in_processes(source, target, nodes):
            per_node, warnings = _copy_in_processes(source, target, dbs, options, checkpoint, tracker)
        else:
            per_node, warnings = _copy_here(source, target, dbs, options, checkpoint, tracker)
    except BaseException:  # the checkpoint holds only what the target confirmed: --resume can use it
        with contextlib.suppress(DataError):  # the first error is the one to report
            checkpoint.save()
        raise
    checkpoint.save()
    notes = _notes(tracker.total, earlier) + warnings
    return CopyResult(tracker.total, per_node, time.monotonic() - started, tracker.expected, notes)


def in_processes(source: Endpoint, target: Endpoint, nodes: list[Address]) -> bool:
    """Whether to scan ``nodes`` in one worker process each (:mod:`reproducer.data.workers`).

    A single node stays in this process (no start-up to pay). Through an SSH bastion the workers ask this
    process, which holds the tunnel, for each node's forward (:mod:`reproducer.data.relay`); a route of another
    kind keeps the nodes in threads here.
    """
    return len(nodes) > 1 and relay.relayable(source, target)


_PerNode = tuple[dict[str, Stats], list[str]]


def _copy_here(
    source: Endpoint,
    target: Endpoint,
    dbs: dict[Address, list[int]],
    options: CopyOptions,
    checkpoint: Checkpoint,
    tracker: _Tracker,
) -> _PerNode:
    """Copy in this process: one node directly, several in one thread each; (stats per node, warnings)."""
    copiers = [
        _NodeCopier(source, target, node, node_dbs, options, checkpoint, tracker) for node, node_dbs in dbs.items()
    ]
    if len(copiers) == 1:
        copiers[0].run()
    else:
        from concurrent.futures import ThreadPoolExecutor  # only multi-node copies on a route of another kind

        with ThreadPoolExecutor(max_workers=len(copiers)) as pool:
            for future in [pool.submit(c.run) for c in copiers]:
                future.result()
    return {c.name: c.stats for c in copiers}, [warning for c in copiers for warning in c.writer.warnings]


def _copy_in_processes(
    source: Endpoint,
    target: Endpoint,
    dbs: dict[Address, list[int]],
    options: CopyOptions,
    checkpoint: Checkpoint,
    tracker: _Tracker,
) -> _PerNode:
    """Copy each source node in its own worker process; their counters and checkpoint steps are applied here."""
    from reproducer.data import workers

    names = [_node_name(node) for node in dbs]
    secrets = (source.password, target.password)
    source, target, on_ask = relay.for_workers(source, target)
    jobs = [
        (_copy_in_worker, (source, target, node, node_dbs, options, _node_state(checkpoint, name, node_dbs)))
        for name, (node, node_dbs) in zip(names, dbs.items(), strict=True)
    ]

    def on_report(_index: int, message: tuple[Any, ...]) -> None:
        kind, *args = message
        if kind == "progress":
            tracker.report(args[0])
        elif kind == "advance":
            checkpoint.advance(*args)
        elif kind == "finish":
            checkpoint.finish_db(*args)
        else:  # "save"
            checkpoint.save()

    results = workers.run(jobs, names=names, on_report=on_report, on_ask=on_ask, secrets=secrets, what="copy worker")
    return dict(zip(names, (stats for stats, _warnings in results), strict=True)), [
        warning for _stats, warnings in results for warning in warnings
    ]


def _node_name(node: Address) -> str:
    return f"{node[0]}:{node[1]}"


def _node_state(checkpoint: Checkpoint, name: str, dbs: list[int]) -> dict[str, Any]:
    """What the checkpoint holds for node ``name``, in the checkpoint's own form, for a worker's relay."""
    cursors = {str(db): checkpoint.cursor(name, db).decode() for db in dbs}
    return {
        "cursors": {db: cursor for db, cursor in cursors.items() if cursor != "0"},
        "done": [db for db in dbs if checkpoint.db_done(name, db)],
        "stats": checkpoint.stats(name),
    }


def _copy_in_worker(
    channel: Any,
    source: Endpoint,
    target: Endpoint,
    node: Address,
    dbs: list[int],
    options: CopyOptions,
    state: dict[str, Any],
) -> tuple[Stats, list[str]]:
    """In a worker process: copy one source node, relaying counters and checkpoint steps over ``channel``."""
    relay.bind(channel, source, target)
    name = _node_name(node)
    checkpoint = _RelayedCheckpoint(channel, name, state)
    tracker = _RelayedTracker(channel)
    copier = _NodeCopier(source, target, node, dbs, options, checkpoint, tracker)
    try:
        copier.run()
    finally:
        with contextlib.suppress(OSError):  # the parent is gone: nobody to tell
            tracker.flush()
    return copier.stats, copier.writer.warnings


class _RelayedCheckpoint(Checkpoint):
    """A worker's view of the checkpoint: its own node's state, every step also sent to the parent, who saves."""

    def __init__(self, channel: Any, name: str, state: dict[str, Any]) -> None:
        super().__init__(None, {"format_version": FORMAT_VERSION, "nodes": {name: state}, "source": {}, "target": {}})
        self._channel = channel

    def advance(self, name: str, db: int, cursor: bytes, stats: Any) -> None:
        """Record the step here and in the parent's checkpoint."""
        super().advance(name, db, cursor, stats)
        if cursor != b"0":  # the whole db: finish_db below said so
            self._channel.report(("advance", name, db, cursor, stats))

    def finish_db(self, name: str, db: int, stats: Any) -> None:
        """Record the finished db here and in the parent's checkpoint."""
        super().finish_db(name, db, stats)
        self._channel.report(("finish", name, db, stats))

    def save(self) -> None:
        """Ask the parent to save (it writes every node's state at once)."""
        self._channel.report(("save",))


def _check_resumed_target(target: Endpoint, layout: Layout, dbs: dict[Address, list[int]], earlier: Stats) -> None:
    """Refuse to resume onto a target that holds fewer keys than the checkpoint says it confirmed there."""
    used = sorted({d for ds in dbs.values() for d in ds}) if not layout.cluster else [0]
    holds = sum(_key_count(target, node, db) for node in layout.primaries for db in used)
    if holds < earlier.persistent:
        raise DataError(
            f"the target {target} holds {holds} key(s), but the checkpoint records {earlier.persistent} key(s) "
            "without expiry confirmed there: the target lost keys since the interrupted copy "
            "(flushed, restarted without persistence, or replaced)",
            hint="copy again from the start: run the command without --resume and with a new --run-dir "
            "(--replace if the target keeps other keys)",
        )


def _notes(total: Stats, earlier: Stats) -> list[str]:
    notes = []
    if earlier.scanned:
        notes.append(
            f"resumed: {earlier.copied} key(s) were copied by the interrupted run(s), "
            f"{total.copied - earlier.copied} by this one"
        )
    if total.expired:
        notes.append(f"{total.expired} key(s) expired or were deleted while being copied (not an error)")
    if total.converted:
        notes.append(f"{total.converted} payload(s) were re-stamped with the target's older RDB version")
    if total.rebuilt:
        notes.append(
            f"{total.rebuilt} key(s) were rebuilt with type commands (a type the target's RDB version does not "
            "know, a payload it refused, or a value over the byte bound, copied in chunks)"
        )
    return notes


def _databases(endpoint: Endpoint, node: Address, options: CopyOptions) -> list[int]:
    if options.dbs is not None:
        return sorted(set(options.dbs))
    if endpoint.db is not None:
        return [endpoint.db]
    conn = connect(endpoint, node)
    try:
        return databases(conn)
    finally:
        conn.close()


def _key_count(endpoint: Endpoint, node: Address, db: int) -> int:
    conn = connect(endpoint, node)
    try:
        conn.select(db)
        return conn.call_int("DBSIZE")
    finally:
        conn.close()


def _check_target(target: Endpoint, layout: Layout, dbs: dict[Address, list[int]], options: CopyOptions) -> None:
    used = sorted({d for ds in dbs.values() for d in ds})
    if layout.cluster and used != [0]:
        raise InputError(
            f"the source has databases {used} but a cluster target has only db 0",
            hint="copy one database at a time with --db N",
        )
    if options.conflict != "refuse" or options.resume:
        return
    existing = sum(_key_count(target, node, db) for node in layout.primaries for db in used)
    if existing:
        raise InputError(
            f"the target {target} is not empty: {existing} key(s) in db {', '.join(map(str, used))}",
            hint="copy into an empty target, or pass --replace (overwrite) or --skip-existing (keep the target's keys)",
        )


def check_empty_target(target: Endpoint, options: CopyOptions) -> None:
    """Refuse a target holding keys, before the source is read (``migrate --to`` calls it before any grant).

    The copy checks again against the source's databases; here every database of the target counts (or those of
    ``options.dbs``), since the source's are not known yet. Nothing is checked with ``--replace``,
    ``--skip-existing`` or on a resume.

    Raises:
        InputError: the target is not empty.
    """
    if options.conflict != "refuse" or options.resume:
        return
    layout = discover(target)
    counts: dict[int, int] = {}
    for node in layout.primaries:
        for db in _databases(target, node, options):
            counts[db] = counts.get(db, 0) + _key_count(target, node, db)
    used = sorted(db for db, count in counts.items() if count)
    if used:
        raise InputError(
            f"the target {target} is not empty: {sum(counts.values())} key(s) in db {', '.join(map(str, used))}",
            hint="copy into an empty target, or pass --replace (overwrite) or --skip-existing (keep the target's keys)",
        )


class _Tracker:
    """Thread-safe totals and progress reporting."""

    def __init__(self, expected: int, progress: Progress | None) -> None:
        self.expected, self.total, self._progress = expected, Stats(), progress
        self._lock = threading.Lock()

    def report(self, delta: Stats) -> None:
        with self._lock:
            self.total.add(delta)
            if self._progress:
                self._progress(self.total, self.expected)


class _RelayedTracker(_Tracker):
    """A worker's tracker: its counter changes go to the parent's tracker, which reports progress.

    The changes of ``RELAY_SECONDS`` go in one message, summed (a batch a message kept the parent busy with
    thousands of messages a second); :meth:`flush` sends what is left.
    """

    def __init__(self, channel: Any) -> None:
        from reproducer.data.workers import Throttled

        super().__init__(0, None)
        self._relay = Throttled(lambda delta: channel.report(("progress", delta)), RELAY_SECONDS, _summed)

    def report(self, delta: Stats) -> None:
        """Add ``delta`` to what goes to the parent; send it if ``RELAY_SECONDS`` have passed since the last."""
        self._relay(delta)

    def flush(self) -> None:
        """Send the parent the changes not yet sent."""
        self._relay.flush()


def _summed(held: Stats, delta: Stats) -> Stats:
    """``held`` and ``delta`` added, in a new Stats (neither is changed: the caller may keep ``delta``)."""
    total = Stats()
    total.add(held)
    total.add(delta)
    return total


class RateLimiter:
    """Sleeps so that keys/s and bytes/s, counted from the start, stay under their limits."""

    def __init__(
        self,
        keys_per_second: float | None,
        bytes_per_second: float | None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._kps, self._bps, self._clock, self._sleep = keys_per_second, bytes_per_second, clock, sleep
        self._start = clock()

    def wait(self, keys: int, nbytes: int) -> None:
        """Block until ``keys`` keys and ``nbytes`` bytes in total are within the limits."""
        delay = self._needed(keys, nbytes) - (self._clock() - self._start)
        if delay > 0:
            self._sleep(delay)

    def restart(self, keys: int, nbytes: int) -> None:
        """Count from now, as if ``keys`` and ``nbytes`` had just been reached on time.

        After counters went back, the keys read again must not come in a burst that catches up with time spent.
        """
        self._start = self._clock() - self._needed(keys, nbytes)

    def _needed(self, keys: int, nbytes: int) -> float:
        return max(keys / self._kps if self._kps else 0.0, nbytes / self._bps if self._bps else 0.0)


#: A value read whole (sized under the byte bound) is abandoned once its reply passes this many times the bound.
OUTGROWN_FACTOR = 2


class ValueOutgrown(Exception):
    """A value sized under the byte bound passed OUTGROWN_FACTOR times it while read whole: read ``key`` in windows.

    The connection it was read on is mid-reply: close it.
    """

    def __init__(self, key: bytes) -> None:
        super().__init__("a value outgrew its size")
        self.key = key


#: A string known (from TYPE and MEMORY USAGE) to be at most this big is read with GET and written with SET:
#: cheaper for both servers than DUMP (which tries LZF on it) and RESTORE (CRC-64, decoding), and free of RDB
#: versions. Bigger ones, and keys of unknown type, go by DUMP/RESTORE.
PLAIN_MAX = 64 * 1024


#: Under ``--max-keys-per-second``, a batch holds at most this share of a second's keys (and at least PACED_MIN):
#: the limiter sleeps between batches, so a batch of a whole scan page would go through at once as a burst.
PACED_SECONDS, PACED_MIN = 0.1, 10


def paced(options: CopyOptions) -> CopyOptions:
    """``options`` whose batches are small enough for the key rate limit to hold from the first batch."""
    if options.max_keys_per_second is None:
        return options
    return replace(options, batch=min(options.batch, max(PACED_MIN, int(options.max_keys_per_second * PACED_SECONDS))))


def _dump_batch(keys: list[bytes], plain: list[bool] | None = None, big: list[bool] | None = None) -> bytes:
    """PTTL and the value of each key: GET of a small string, TYPE of a big key (copied in chunks), else DUMP."""
    parts = []
    for index, key in enumerate(keys):
        head = b"$%d\r\n%b\r\n" % (len(key), key)
        read = b"*2\r\n$3\r\nGET\r\n" if plain and plain[index] else b"*2\r\n$4\r\nDUMP\r\n"
        if big and big[index]:
            read = b"*2\r\n$4\r\nTYPE\r\n"
        parts.append(b"*2\r\n$4\r\nPTTL\r\n" + head + read + head)
    return b"".join(parts)


def size_and_type(keys: list[bytes]) -> bytes:
    """MEMORY USAGE and TYPE of each key, encoded for one write."""
    return b"".join(
        b"*3\r\n$6\r\nMEMORY\r\n$5\r\nUSAGE\r\n$%d\r\n%b\r\n*2\r\n$4\r\nTYPE\r\n$%d\r\n%b\r\n"
        % (len(key), key, len(key), key)
        for key in keys
    )


def memory_usage(keys: list[bytes]) -> bytes:
    """MEMORY USAGE of each key, encoded for one write."""
    return b"".join(b"*3\r\n$6\r\nMEMORY\r\n$5\r\nUSAGE\r\n$%d\r\n%b\r\n" % (len(key), key) for key in keys)


def check_read(read: ReadMode, match: str | None) -> None:
    """Refuse ``sync`` with a pattern: a snapshot holds every key, and only SCAN's MATCH applies the server's glob.

    Raises:
        InputError: both were asked for.
    """
    if read == "sync" and match:
        raise InputError(
            "--read sync streams every key of the source's snapshot: it cannot apply --match",
            hint="drop --read sync (with --match the source is read with SCAN), or drop --match",
        )


def _scan_command(cursor: bytes, match: str | None, count: int) -> bytes:
    args: list[bytes] = [b"SCAN", cursor, b"COUNT", b"%d" % count]
    if match:
        args += [b"MATCH", match.encode()]
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%b\r\n" % (len(a), a) for a in args)


def monotonic_ms() -> int:
    """Milliseconds of the monotonic clock (TTL deadlines are kept on it)."""
    return int(time.monotonic() * 1000)


def _restore(key: bytes, ttl: int, payload: bytes, replace: bool) -> list[bytes]:
    """RESTORE as parts to send in order; a large payload stays its own part, so it is never copied."""
    ttl_b = b"%d" % ttl
    head = b"*%d\r\n$7\r\nRESTORE\r\n$%d\r\n%b\r\n$%d\r\n%b\r\n$%d\r\n" % (
        5 if replace else 4,
        len(key),
        key,
        len(ttl_b),
        ttl_b,
        len(payload),
    )
    tail = b"\r\n$7\r\nREPLACE\r\n" if replace else b"\r\n"
    return [head + payload + tail] if len(payload) < DIRECT_SEND else [head, payload, tail]


def _set(key: bytes, ttl: int, value: bytes, replace: bool) -> list[bytes]:
    """SET of a string (``ttl`` ms, 0: none; NX unless replacing), as parts to send in order.

    A large value stays its own part, as a RESTORE payload does, so it is never copied.
    """
    options = b"" if replace else b"$2\r\nNX\r\n"
    if ttl:
        px = b"%d" % ttl
        options = b"$2\r\nPX\r\n$%d\r\n%b\r\n" % (len(px), px) + options
    count = 3 + (not replace) + (2 if ttl else 0)
    head = b"*%d\r\n$3\r\nSET\r\n$%d\r\n%b\r\n$%d\r\n" % (count, len(key), key, len(value))
    if len(value) < DIRECT_SEND:
        return [head + value + b"\r\n" + options]
    return [head, value, b"\r\n" + options]


def _writes(items: list[tuple[bytes, int, bytes]], indexes: list[int], replace: bool) -> list[bytes]:
    """The SET or RESTORE of each item, as parts to send in order, with the TTL left now (at least 1 ms).

    Encoded by the compiled encoder when the build has it (``_speedups.c``: the same bytes, gathered into parts of
    at most ``GATHER`` bytes), else by :func:`_python_writes`.
    """
    now = monotonic_ms()
    if _encode is not None:
        try:
            return _encode(items, indexes, now, replace, Plain, DIRECT_SEND, GATHER)
        except OverflowError:  # a deadline past what C's integers hold: Python's take any
            pass
    return _python_writes(items, indexes, now, replace)


def _python_writes(items: list[tuple[bytes, int, bytes]], indexes: list[int], now: int, replace: bool) -> list[bytes]:
    """:func:`_writes` in Python: one part a write.

    A write under ``DIRECT_SEND`` bytes is encoded here in one formatting, its value copied once; a bigger one
    keeps its value as its own part (``_set``, ``_restore``).
    """
    parts: list[bytes] = []
    add, extend = parts.append, parts.extend
    nx = b"" if replace else b"$2\r\nNX\r\n"
    restore_tail = b"\r\n$7\r\nREPLACE\r\n" if replace else b"\r\n"
    for index in indexes:
        key, deadline, data = items[index]
        ttl = max(deadline - now, 1) if deadline else 0
        if len(data) >= DIRECT_SEND:
            extend((_set if isinstance(data, Plain) else _restore)(key, ttl, data, replace))
        elif type(data) is not Plain:
            ttl_b = b"%d" % ttl
            add(_RESTORE % (4 + replace, len(key), key, len(ttl_b), ttl_b, len(data), data, restore_tail))
        elif ttl:
            px = b"%d" % ttl
            add(_SET_PX % (6 - replace, len(key), key, len(data), data, len(px), px, nx))
        else:
            add(_SET % (4 - replace, len(key), key, len(data), data, nx))
    return parts


_SET = b"*%d\r\n$3\r\nSET\r\n$%d\r\n%b\r\n$%d\r\n%b\r\n%b"
_SET_PX = b"*%d\r\n$3\r\nSET\r\n$%d\r\n%b\r\n$%d\r\n%b\r\n$2\r\nPX\r\n$%d\r\n%b\r\n%b"
_RESTORE = b"*%d\r\n$7\r\nRESTORE\r\n$%d\r\n%b\r\n$%d\r\n%b\r\n$%d\r\n%b%b"


def _by_node(items: list[tuple[bytes, int, bytes]], layout: Layout) -> dict[Address, list[int]]:
    """The item indexes per primary of a cluster, by their key's slot (in C when the build has it)."""
    if _route is None:
        return _python_by_node(items, layout)
    groups = _route(items, layout.slot_owner, len(layout.primaries))
    return {layout.primaries[owner]: group for owner, group in enumerate(groups) if group}


def _python_by_node(items: list[tuple[bytes, int, bytes]], layout: Layout) -> dict[Address, list[int]]:
    """:func:`_by_node` in Python."""
    per_node: dict[Address, list[int]] = {}
    node_for_key = layout.node_for_key
    for index, (key, _ttl, _payload) in enumerate(items):
        per_node.setdefault(node_for_key(key), []).append(index)
    return per_node


class SizeGuess:
    """The size to assume for a key no command could size (MEMORY USAGE and its type's size commands refused).

    The largest DUMP payload seen so far, or, before that tells enough, a share of the byte bound that halves with
    each batch read: the first batch holds one such key, the next two, then four...
    """

    def __init__(self, max_bytes: int) -> None:
        self.largest, self._share = 0, max(max_bytes, 1)

    def size(self) -> int:
        """Bytes to count for one key of unknown size."""
        return max(self.largest, self._share)

    def observe(self, sizes: list[int]) -> None:
        """Learn from the DUMP payload sizes of a batch just read."""
        self.largest = max([self.largest, *sizes])
        self._share = max(self._share // 2, 1)


class KeySizer:
    """Sizes keys and cuts them into groups whose values add up to at most ``max_bytes`` (a bigger key alone).

    Sizes come from MEMORY USAGE; once the source refuses it, from the size commands of each key's type
    (:mod:`reproducer.data.sizing`), else from :class:`SizeGuess` (feed it payload sizes with ``guess.observe``).
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes, self.guess, self.denied = max_bytes, SizeGuess(max_bytes), False
        self.sampler = sizing.Sampler(max_bytes)

    def sizes(self, conn: RawConnection, keys: list[bytes]) -> list[int]:
        """Bytes of each of ``keys`` (all on ``conn``'s node and database); 0 for a key that is gone."""
        if not self.denied:
            conn.send(memory_usage(keys))
            usage = conn.read(len(keys))
            self.denied = any(isinstance(size, ReplyError) for size in usage)
            if not self.denied:
                return [size if isinstance(size, int) else 0 for size in usage]  # None: gone
        conn.send(sizing.types_of(keys))
        return self.estimated(conn, keys, conn.read(len(keys)))

    def estimated(self, conn: RawConnection, keys: list[bytes], types: list[object]) -> list[int]:
        """Bytes of each of ``keys`` from their types' size commands (:class:`sizing.Sampler`), else the guess."""
        guess = self.guess.size()
        return [guess if size is None else size for size in sizing.estimate_sizes(conn, keys, types, self.sampler)]

    def groups(self, conn: RawConnection, keys: list[bytes]) -> Iterator[tuple[list[bytes], bool]]:
        """``keys`` in groups within the byte bound, each with whether it is one key over the bound."""
        group: list[bytes] = []
        total = 0
        for key, size in zip(keys, self.sizes(conn, keys), strict=True):
            if group and total + size > self.max_bytes:
                yield group, total > self.max_bytes
                group, total = [], 0
            group.append(key)
            total += size
        if group:
            yield group, total > self.max_bytes


class _SourceLost(Exception):
    """The source connection broke; the copy can reconnect and continue from the confirmed cursor."""

    def __init__(self, cause: DataError, *, progressed: bool) -> None:
        super().__init__(cause.message)
        self.cause, self.progressed = cause, progressed


@dataclass
class _Segment:
    """The keys of one SCAN reply: once every one is confirmed, the scan can resume at ``cursor``."""

    cursor: bytes


@dataclass
class _Chunk:
    """Keys dumped together, all from one segment; ``ends`` when they are the segment's last.

    ``plain[i]``: key i is a small string, read with GET; ``big[i]``: key i is over the byte bound, never dumped
    (its TYPE is asked instead, and it is copied in chunks).
    """

    keys: list[bytes]
    segment: _Segment
    ends: bool
    plain: list[bool] = field(default_factory=list)
    big: list[bool] = field(default_factory=list)


@dataclass
class _Typed:
    """Keys of one segment whose TYPE answered but MEMORY USAGE did not, sized by type from ``done`` on."""

    keys: list[bytes]
    types: list[object]
    segment: _Segment
    sizes: list[int | None] = field(default_factory=list)

    @property
    def done(self) -> int:
        """How many of the keys are sized."""
        return len(self.sizes)


@dataclass
class _Estimates:
    """Size commands of ``typed.keys[start:end]`` sent in one request, per key."""

    typed: _Typed
    start: int
    end: int
    asked: list[list[bytes]]


@dataclass
class _Request:
    """One write to the source, in reply order.

    PTTL+DUMP of ``chunk``, MEMORY USAGE (unless ``sizes_denied``) and TYPE of ``sized``, the size commands of
    ``estimates`` by type, a SCAN.
    """

    chunk: _Chunk | None
    sized: list[bytes]
    sized_segment: _Segment | None
    scans: bool
    sent_ms: int
    sizes_denied: bool = False
    estimates: list[_Estimates] = field(default_factory=list)

    @property
    def replies(self) -> int:
        """How many replies the source sends back."""
        sizing_replies = (1 if self.sizes_denied else 2) * len(self.sized)
        estimates = sum(len(parts) for part in self.estimates for parts in part.asked)
        return (2 * len(self.chunk.keys) if self.chunk else 0) + sizing_replies + estimates + (1 if self.scans else 0)


class _Planner:
    """What to ask the source next. A batch closes at ``batch`` keys or ``max_batch_bytes`` bytes.

    Key sizes come from MEMORY USAGE, asked for in the same write as the previous batch's DUMPs (so sizing costs
    no round trip). When the source refuses it, TYPE is asked there instead, and the size commands of each key's
    type in the next write (:mod:`reproducer.data.sizing`; as many collections as its sampler's byte budget
    allows), so keys wait one request longer or more; :class:`SizeGuess` sizes what those cannot. A key larger
    than the bound goes alone, and one whose size is known to be over the bound is never dumped: it is copied in
    chunks. The scan goes on only while fewer than ``batch`` keys wait to be sized by type or dumped, so it runs
    at most two batches ahead (three without MEMORY USAGE).
    """

    def __init__(self, cursor: bytes, options: CopyOptions, outgrown: set[bytes] | None = None) -> None:
        self.next_cursor: bytes | None = cursor  # None: the scan is over
        self.options = options
        self.outgrown = outgrown if outgrown is not None else set()
        self.queue: deque[_Sized] = deque()
        self.segments: deque[_Segment] = deque()
        self.unsized: list[bytes] = []
        self.unsized_segment: _Segment | None = None
        self.typed: deque[_Typed] = deque()
        self.sizes_denied = False
        self.guess = SizeGuess(options.max_batch_bytes)
        self.sampler = sizing.Sampler(options.max_batch_bytes)

    def request(self) -> tuple[bytes, _Request] | None:
        """The next write to the source and what it asks for; None when every key was asked for."""
        chunk = self._take()
        sized, segment = self.unsized, self.unsized_segment
        self.unsized, self.unsized_segment = [], None
        estimates = self._estimates()
        cursor = self.next_cursor
        waiting = sum(len(e.keys) - e.start for e in self.queue) + sum(len(t.keys) - t.done for t in self.typed)
        scans = cursor is not None and waiting < self.options.batch
        if chunk is None and not sized and not estimates and not scans:
            return None
        data = _dump_batch(chunk.keys, chunk.plain, chunk.big) if chunk else b""
        data += sizing.types_of(sized) if self.sizes_denied else size_and_type(sized)
        data += b"".join(part for estimate in estimates for parts in estimate.asked for part in parts)
        if scans and cursor is not None:
            data += _scan_command(cursor, self.options.match, self.options.batch)
        # PTTLs are relative to when the source answers, which is after this instant: a deadline taken now
        # can only be earlier than the source's, never later, however long the batch then waits.
        return data, _Request(chunk, sized, segment, scans, monotonic_ms(), self.sizes_denied, estimates)

    def _estimates(self) -> list[_Estimates]:
        """The size commands of the keys typed and not sized yet, oldest first, within the sampler's budget."""
        planned: list[_Estimates] = []
        budget = self.sampler.budget()
        for typed in self.typed:
            end, asked, budget = self.sampler.plan(typed.keys, typed.types, typed.done, budget)
            if end > typed.done:
                planned.append(_Estimates(typed, typed.done, end, asked))
            if end < len(typed.keys):
                break
        return planned

    def absorb(self, request: _Request, replies: list[object]) -> tuple[list[object], bytes | None]:
        """Take in the sizes and SCAN reply of ``request``.

        Returns its PTTL/DUMP replies, and a cursor the checkpoint may advance to right away (a SCAN reply
        without keys while nothing is outstanding), else None.
        """
        count = 2 * len(request.chunk.keys) if request.chunk else 0
        dumps = replies[:count]
        self.guess.observe([len(p) for p in dumps[1::2] if isinstance(p, bytes)])
        sizing_end = count + (1 if request.sizes_denied else 2) * len(request.sized)
        self._estimated(request.estimates, replies, sizing_end)  # older keys than the ones sized below
        if request.sized_segment is not None:
            answers = replies[count:sizing_end]
            if request.sizes_denied:
                self.typed.append(_Typed(request.sized, answers, request.sized_segment))
            else:
                self._sized(request.sized, answers[0::2], answers[1::2], request.sized_segment)
        if not request.scans:
            return dumps, None
        cursor, keys = scan_reply(replies[-1])
        return dumps, self._scanned(cursor, keys)

    def _estimated(self, estimates: list[_Estimates], replies: list[object], offset: int) -> None:
        """Take in the sizes of ``estimates`` (replies from ``offset``); queue each segment once wholly sized."""
        for estimate in estimates:
            end = offset + sum(map(len, estimate.asked))
            types = estimate.typed.types[estimate.start : estimate.end]
            estimate.typed.sizes += self.sampler.read(types, estimate.asked, replies[offset:end])
            offset = end
        while self.typed and self.typed[0].done == len(self.typed[0].keys):
            typed = self.typed.popleft()
            self._queue(typed.keys, typed.sizes, typed.types, typed.segment)

    def confirmed(self, chunk: _Chunk) -> bytes | None:
        """The cursor the checkpoint advances to once ``chunk`` is on the target (None: its segment goes on)."""
        if not chunk.ends:
            return None
        self.segments.popleft()
        return chunk.segment.cursor

    def _scanned(self, cursor: bytes, keys: list[bytes]) -> bytes | None:
        self.next_cursor = None if cursor == b"0" else cursor
        if not keys:
            if not self.segments:
                return cursor
            self.segments[-1].cursor = cursor  # the newest segment's completion now covers this empty reply
            return None
        segment = _Segment(cursor)
        self.segments.append(segment)
        self.unsized, self.unsized_segment = keys, segment
        return None

    def _sized(self, keys: list[bytes], sizes: list[object], types: list[object], segment: _Segment) -> None:
        if any(isinstance(size, ReplyError) for size in sizes):  # MEMORY USAGE refused: size by type from now on
            self.sizes_denied = True
            self.typed.append(_Typed(keys, types, segment))
            return
        known: list[int | None] = [size if isinstance(size, int) else 0 for size in sizes]  # None: gone
        self._queue(keys, known, types, segment)

    def _queue(self, keys: list[bytes], known: list[int | None], types: list[object], segment: _Segment) -> None:
        """Queue sized keys (None: unknown size, guessed) to be dumped, read with GET, or copied in chunks."""
        if self.outgrown:  # read whole once already and found over the bound: copied in chunks whatever the estimate
            known = [sizing.UNBOUNDED if key in self.outgrown else size for key, size in zip(keys, known, strict=True)]
        plain = [
            kind == b"string" and size is not None and size <= PLAIN_MAX
            for kind, size in zip(types, known, strict=True)
        ]
        big = [size is not None and size > self.options.max_batch_bytes for size in known]
        self.queue.append(_Sized(keys, known, segment, plain, big))

    def _take(self) -> _Chunk | None:
        """The next batch: the oldest queued segment's keys (a SCAN reply: about ``batch``), up to the byte bound."""
        if not self.queue:
            return None
        entry = self.queue[0]
        window = entry.sizes[entry.start :]
        guess = self.guess.size()
        totals = list(accumulate(guess if size is None else size for size in window))
        count = max(bisect_right(totals, self.options.max_batch_bytes), 1)  # a key over the bound goes alone
        keys = entry.keys[entry.start : entry.start + count]
        plain = entry.plain[entry.start : entry.start + count]
        big = entry.big[entry.start : entry.start + count]
        entry.start += count
        ends = entry.start == len(entry.keys)
        if ends:
            self.queue.popleft()
        return _Chunk(keys, entry.segment, ends, plain, big)


@dataclass
class _Sized:
    """Keys of one segment with their sizes (None: unknown), waiting to be dumped from ``start`` on."""

    keys: list[bytes]
    sizes: list[int | None]
    segment: _Segment
    plain: list[bool]
    big: list[bool] = field(default_factory=list)
    start: int = 0


@dataclass
class RestoreBatch:
    """RESTOREs sent to the target and not yet confirmed: (key, monotonic deadline ms or 0, payload)."""

    db: int
    items: list[tuple[bytes, int, bytes]]
    per_node: dict[Address, list[int]]
    chunk: _Chunk | None = None
    oversized: list[bytes] = field(default_factory=list)
    #: Keys of a type the target's RDB version does not know, with their payload sizes: rebuilt by type.
    unknown: list[tuple[bytes, int]] = field(default_factory=list)
    converted: int = 0


@dataclass(frozen=True)
class SourceClock:
    """The source's clock against this machine's monotonic one (TIME): ``source ms = monotonic ms + offset_ms``.

    A snapshot's expiries are absolute times on the source's clock. The source's time is taken as if read when
    TIME was asked (rounded up), so deadlines come out early by up to the round trip, never late.
    """

    offset_ms: int
    #: The round trip of TIME: how early deadlines may be.
    error_ms: int

    @classmethod
    def measure(cls, conn: RawConnection) -> SourceClock:
        """Ask the source its TIME; this machine's wall clock stands in when it is refused."""
        before = monotonic_ms()
        conn.send(b"*1\r\n$4\r\nTIME\r\n")
        reply = conn.read(1)[0]
        after = monotonic_ms()
        if isinstance(reply, list) and len(reply) == 2 and all(_digits(part) for part in reply):
            source_ms = (int(reply[0]) * 1_000_000 + int(reply[1]) + 999) // 1000
        else:
            source_ms = int(time.time() * 1000) - (after - before)
        return cls(source_ms - before, after - before + 1)


def _digits(part: object) -> bool:
    return isinstance(part, bytes) and 0 < len(part) <= 19 and part.isdigit()


def _snapshot_items(
    entries: list[snapshot.Entry], clock: SourceClock, margin_ms: int
) -> tuple[list[tuple[bytes, int, bytes]], Stats, list[bytes]]:
    """A snapshot batch's keys as (key, monotonic deadline or 0, payload), their counters, the keys too big to hold.

    A key whose expiry has passed on the source's clock is not copied (it counts as expired). Deadlines are dated
    ``margin_ms`` earlier: a TTL counts from when the target runs the write, which is later than when it is sent.
    Done in C when the build has it (``_speedups.c``), else by :func:`_python_snapshot_items`.
    """
    offset = clock.offset_ms + margin_ms
    source_now = monotonic_ms() + clock.offset_ms
    delta = Stats(scanned=len(entries), ttl_early_ms=clock.error_ms + margin_ms)
    if _snapshot_items_in_c is not None:
        try:
            items, delta.expired, delta.bytes, oversized = _snapshot_items_in_c(entries, source_now, offset)
            return items, delta, oversized
        except OverflowError:  # an expiry or offset past what C's integers hold: Python's take any
            pass
    items, delta.expired, delta.bytes, oversized = _python_snapshot_items(entries, source_now, offset)
    return items, delta, oversized


def _python_snapshot_items(
    entries: list[snapshot.Entry], source_now: int, offset: int
) -> tuple[list[tuple[bytes, int, bytes]], int, int, list[bytes]]:
    """:func:`_snapshot_items` in Python: (items, keys expired, bytes of the items' values, keys over the bound)."""
    items: list[tuple[bytes, int, bytes]] = []
    oversized: list[bytes] = []
    expired = size_of_items = 0
    for _db, key, expire, payload, size in entries:
        if 0 <= expire <= source_now:
            expired += 1
        elif payload is None:
            oversized.append(key)  # over the size limit: copied from the live source, in chunks
        else:
            size_of_items += size
            items.append((key, expire - offset if expire >= 0 else 0, payload))
    return items, expired, size_of_items, oversized


class _NodeCopier:
    """Copies one source node's keyspace (all selected databases)."""

    def __init__(
        self,
        source: Endpoint,
        target: Endpoint,
        node: Address,
        dbs: list[int],
        options: CopyOptions,
        checkpoint: Checkpoint,
        tracker: _Tracker,
    ) -> None:
        self.source, self.target, self.node, self.dbs = source, target, node, dbs
        self.options = options = paced(options)
        self.name = f"{node[0]}:{node[1]}"
        self.checkpoint, self.tracker, self.stats = checkpoint, tracker, Stats()
        self.writer = TargetWriter(target, replace=options.conflict != "skip")
        self.limiter = RateLimiter(options.max_keys_per_second, options.max_bytes_per_second)
        self._outgrown: set[bytes] = set()  # keys whose value was found over the bound while read whole
        self._saved_at = time.monotonic()
        self._planner = _Planner(b"0", options, self._outgrown)
        self._reader: RawConnection | None = None  # a second source connection for rebuilds, opened when needed
        #: How long the last confirmed snapshot batch took from sending to confirmed (its writes ran within it).
        self._write_latency_ms = 0
        self._pending_sent_ms = 0
        self._unconfirmed: RestoreBatch | None = None  # the snapshot's batch sent to the target, not yet confirmed

    def run(self) -> None:
        self.stats = Stats.saved(self.checkpoint.stats(self.name))
        try:
            left = [db for db in self.dbs if not self.checkpoint.db_done(self.name, db)]
            if left and self._reads_snapshot(left):
                left = self._copy_snapshot_reconnecting(left)
            for db in left:
                self._copy_db_reconnecting(db)
            if self._outgrown:
                self.writer.warnings.append(
                    f"{len(self._outgrown)} key(s) of {self.name} were over the byte bound "
                    f"({self.options.max_batch_bytes} bytes) though sized under it (a sampled size, or grown "
                    "meanwhile): each was copied in chunks after the scan went back to the last checkpoint"
                )
        finally:
            self.writer.close()
            if self._reader is not None:
                self._reader.close()

    def _reads_snapshot(self, dbs: list[int]) -> bool:
        """Whether to read the source over SYNC: asked, or ``auto`` with nothing that needs a scan.

        A pattern, a rate limit (the fork is not sparing the source) or a scan under way (a resumed cursor) keep
        ``auto`` on SCAN.
        """
        if self.options.read != "auto":
            return self.options.read == "sync"
        limited = self.options.max_keys_per_second or self.options.max_bytes_per_second
        resumed = any(self.checkpoint.cursor(self.name, db) != b"0" for db in dbs)
        return not (self.options.match or limited or resumed)

    def _copy_snapshot_reconnecting(self, dbs: list[int]) -> list[int]:
        """Copy ``dbs`` from a snapshot, starting again on a broken stream; the dbs left to scan (``auto``, refused).

        A snapshot has no cursor to go on from: after a failure the node is copied again from a new snapshot
        (keys already on the target are written again, or kept with --skip-existing).
        """
        failures = 0
        while True:
            try:
                src = connect(self.source, self.node)
            except DataError as exc:
                if not exc.retryable:
                    raise
                failures = self._count_failure(failures, exc)
                continue
            try:
                self._copy_snapshot(src, dbs)
                return []
            except snapshot.SnapshotRefused as exc:
                if self.options.read == "sync":
                    raise DataError(
                        f"the source {self.name} gave no snapshot: {exc.message}",
                        hint="copy with --read scan (SCAN and DUMP need no SYNC)",
                    ) from None
                self._rewind()
                self.writer.warnings.append(f"{self.name} was read with SCAN and DUMP: {exc.message}")
                return dbs
            except DataError as exc:
                if not exc.retryable:
                    raise
                self._rewind()
                failures = self._count_failure(failures, exc)
            finally:
                src.close()

    def _copy_snapshot(self, src: RawConnection, dbs: list[int]) -> None:
        """Stream the node's snapshot into the target, one batch restored while the next is read.

        A batch closes at ``batch`` keys, about ``max_batch_bytes`` bytes, or a change of database.
        """
        clock = SourceClock.measure(src)
        stream = snapshot.open_snapshot(src)
        target_version = self.writer.rdb_version
        convert = target_version is not None and stream.version > target_version
        wanted, most_bytes = set(dbs), self.options.max_batch_bytes
        limit = min(self.options.max_payload_bytes, self.writer.max_restore, most_bytes)  # bigger: copied in chunks
        batches = stream.batches(limit, self.options.batch, most_bytes, target_version if convert else None)
        try:
            for batch in batches:
                if batch.db in wanted:
                    self._flush_snapshot(batch.db, batch.entries, clock, convert)
        except DataError:
            self._confirm_unconfirmed()  # settle what the target was sent: its replies must not be left unread
            raise
        self._confirm_unconfirmed()
        for done in dbs:
            self.checkpoint.finish_db(self.name, done, self.stats)
        self.checkpoint.save()

    def _flush_snapshot(self, db: int, entries: list[snapshot.Entry], clock: SourceClock, convert: bool) -> None:
        """Confirm the batch before, then send ``entries`` to the target: the batch now unconfirmed.

        ``convert``: the stream's RDB version is newer than the target's, payloads are re-stamped or rebuilt.
        """
        if not entries:
            return
        items, delta, oversized = _snapshot_items(entries, clock, max(self._write_latency_ms, _WRITE_MARGIN_MS))
        self.stats.add(delta)
        self.tracker.report(delta)
        self.limiter.wait(self.stats.scanned, self.stats.bytes)
        unknown: list[tuple[bytes, int]] = []
        converted = 0
        if convert:  # stamped with the target's version as they were read, or rewritten or rebuilt here
            items, unknown, _rewritten = self.writer.split(items)
            converted = sum(not isinstance(payload, Plain) for _key, _deadline, payload in items)
        self._confirm_unconfirmed()  # first: the target's work for it (rebuilds, retries) reads its own replies
        self._pending_sent_ms = monotonic_ms()
        self._unconfirmed = RestoreBatch(db, items, self.writer.send(db, items), None, oversized, unknown, converted)

    def _confirm_unconfirmed(self) -> None:
        """Confirm the snapshot's batch on the target, if one is sent and unconfirmed; once, even if that fails."""
        batch, self._unconfirmed = self._unconfirmed, None
        if batch is not None:
            self._confirm(batch)
            # the batch was sent a batch ago and is confirmed now: its last write ran within this long
            self._write_latency_ms = monotonic_ms() - self._pending_sent_ms

    def _copy_db_reconnecting(self, db: int) -> None:
        """Copy one database; when the source connection breaks, reconnect and go on from the last confirmed cursor."""
        failures = 0
        while True:
            try:
                src = connect(self.source, self.node)
            except DataError as exc:
                if not exc.retryable:  # a refused password or certificate: trying again cannot help
                    raise
                failures = self._count_failure(failures, exc)
                continue
            try:
                self._copy_db(src, db)
                return
            except _SourceLost as lost:
                self._rewind()
                failures = self._count_failure(0 if lost.progressed else failures, lost.cause)
            finally:
                src.close()

    def _rewind(self) -> None:
        """Counters back to the checkpoint's: keys after its cursor are scanned again and must count once."""
        saved = Stats.saved(self.checkpoint.stats(self.name))
        saved.retries, saved.ttl_early_ms = self.stats.retries, self.stats.ttl_early_ms
        self.tracker.report(
            Stats(**{f.name: getattr(saved, f.name) - getattr(self.stats, f.name) for f in fields(Stats)})
        )
        self.stats = saved
        self.limiter.restart(saved.scanned, saved.bytes)

    def _count_failure(self, failures: int, cause: DataError) -> int:
        failures += 1
        if failures > _MAX_SOURCE_RETRIES:
            raise DataError(
                f"the source {self.name} kept failing: {cause.message}",
                hint="check the source, then run again with --resume (the checkpoint is intact)",
                retryable=True,
            ) from None
        self.stats.retries += 1
        self.tracker.report(Stats(retries=1))
        time.sleep(min(0.2 * 2**failures, 5.0))
        return failures

    def _copy_db(self, src: RawConnection, db: int) -> None:
        """One request stays in flight on the source while the previous batch is restored on the target.

        So at most two batches are held here at once (the one read, the one the target has not confirmed),
        each bounded by ``batch`` keys and ``max_batch_bytes`` bytes.
        """
        self._planner = _Planner(self.checkpoint.cursor(self.name, db), self.options, self._outgrown)
        pending: RestoreBatch | None = None
        batches = 0
        try:
            src.select(db)
            in_flight = self._send(src)
        except DataError as exc:
            raise self._lost(exc, pending, batches) from None
        while in_flight is not None:
            current = in_flight
            try:
                dumps, advance_to = self._planner.absorb(current, self._read(src, current))
                in_flight = self._send(src)
            except DataError as exc:
                raise self._lost(exc, pending, batches) from None
            if pending is not None:
                self._confirm(pending)
                batches += 1
                if batches % self.options.checkpoint_every == 0 and self._checkpoint_due():
                    self.checkpoint.save()
            if advance_to is not None:  # nothing is outstanding: an empty SCAN reply moves the cursor on
                self.checkpoint.advance(self.name, db, advance_to, self.stats)
            pending = self._restore_batch(db, current, dumps) if current.chunk else None
        if pending is not None:
            self._confirm(pending)
        self.checkpoint.finish_db(self.name, db, self.stats)
        self.checkpoint.save()

    def _checkpoint_due(self) -> bool:
        """Whether CHECKPOINT_SECONDS have passed since the checkpoint was last written from here."""
        now = time.monotonic()
        if now - self._saved_at < CHECKPOINT_SECONDS:
            return False
        self._saved_at = now
        return True

    def _read(self, src: RawConnection, request: _Request) -> list[object]:
        """The replies to ``request``; a value read whole that outgrows the bound is abandoned, its key noted.

        MEMORY USAGE and the estimate by type commands sample a few elements, and a key can grow between sizing
        and reading, so a value sized under the bound can be far over it: its read stops at OUTGROWN_FACTOR times
        the bound, the connection is dropped (it is mid-reply), and the key is copied in chunks when the scan
        goes over it again from the last checkpoint.
        """
        keys = request.chunk.keys if request.chunk else []
        limit = OUTGROWN_FACTOR * self.options.max_batch_bytes
        try:
            return src.read(request.replies, limit=limit, limited=2 * len(keys))  # PTTL, then the value, per key
        except ReplyOverLimit as exc:
            self._outgrown.add(keys[exc.index // 2])
            raise

    def _lost(self, exc: DataError, pending: RestoreBatch | None, batches: int) -> Exception:
        """After a source failure: settle what the target was sent, then say whether to reconnect."""
        if not exc.retryable:
            return exc
        if pending is not None:
            self._confirm(pending)
            batches += 1
        return _SourceLost(exc, progressed=batches > 0)

    def _send(self, src: RawConnection) -> _Request | None:
        """Send the planner's next request in one write (None when every key was asked for)."""
        planned = self._planner.request()
        if planned is None:
            return None
        src.send(planned[0])
        return planned[1]

    def _restore_batch(self, db: int, request: _Request, replies: list[object]) -> RestoreBatch:
        keys = request.chunk.keys if request.chunk else []
        plain = request.chunk.plain if request.chunk and request.chunk.plain else [False] * len(keys)
        delta = Stats(scanned=len(keys))
        items: list[tuple[bytes, int, bytes]] = []
        oversized: list[bytes] = []
        sent, max_payload = request.sent_ms, min(self.options.max_payload_bytes, self.writer.max_restore)
        delta.ttl_early_ms = monotonic_ms() - sent  # the replies were read just now
        big = request.chunk.big if request.chunk and request.chunk.big else [False] * len(keys)
        for key, pttl, payload, is_plain, is_big in zip(keys, replies[0::2], replies[1::2], plain, big, strict=True):
            if is_big:  # over the byte bound: TYPE was asked instead of DUMP, the key is copied in chunks
                delta.expired += payload == b"none"
                oversized += [key] if payload != b"none" else []
                continue
            if is_plain and isinstance(payload, ReplyError) and str(payload).startswith("WRONGTYPE"):
                oversized.append(key)  # no longer a string since sized: its new size is unknown, copied in windows
                continue
            if not isinstance(payload, bytes | None) or not isinstance(pttl, int):
                raise DataError(
                    f"DUMP or PTTL of {key!r} on {self.name} failed: {payload!r} {pttl!r}",
                    hint="the source user needs +dump and +pttl",
                )
            if payload is None or pttl == -2:
                delta.expired += 1
                continue
            size = len(payload)
            if size > max_payload:
                oversized.append(key)  # too big for one RESTORE: rebuilt in chunks, its bytes counted as they go
                continue
            delta.bytes += size
            items.append((key, sent + pttl if pttl >= 0 else 0, Plain(payload) if is_plain else payload))
        self.stats.add(delta)
        self.tracker.report(
            Stats(scanned=delta.scanned, expired=delta.expired, bytes=delta.bytes, ttl_early_ms=delta.ttl_early_ms)
        )
        self.limiter.wait(self.stats.scanned, self.stats.bytes)
        items, unknown, converted = self.writer.split(items)
        batch = RestoreBatch(db, items, self.writer.send(db, items), request.chunk, oversized, unknown, converted)
        return batch

    def _confirm(self, batch: RestoreBatch) -> None:
        outcome = self.writer.confirm(batch)
        refused = [(batch.items[index][0], len(batch.items[index][2])) for index in outcome.rebuild]
        whole = [(key, size) for key, size in refused + batch.unknown if size <= WHOLE_VALUE_BYTES]
        alone = [key for key, size in refused + batch.unknown if size > WHOLE_VALUE_BYTES] + batch.oversized
        rebuilt = skipped = 0
        for group in byte_groups(whole):
            done, more, alone = self._rebuild_whole(batch.db, group, alone)
            rebuilt, skipped = rebuilt + done, skipped + more
        outcomes = [self._rebuild(batch.db, key) for key in alone]
        delta = Stats(
            copied=outcome.copied,
            expired=outcomes.count("vanished"),
            skipped=outcome.skipped + skipped + outcomes.count("skipped"),
            rebuilt=rebuilt + outcomes.count("copied"),
            converted=batch.converted,
            retries=outcome.retries,
            persistent=outcome.persistent,
            ttl_early_ms=self.writer.ttl_early_ms,
        )
        self.stats.add(delta)
        self.tracker.report(delta)
        cursor = self._planner.confirmed(batch.chunk) if batch.chunk else None
        if cursor is not None:
            self.checkpoint.advance(self.name, batch.db, cursor, self.stats)

    def _rebuild_whole(self, db: int, keys: list[bytes], alone: list[bytes]) -> tuple[int, int, list[bytes]]:
        """Rebuild ``keys`` in pipelines over a second source connection (the first has a batch in flight)."""
        try:
            if self._reader is None:
                self._reader = connect(self.source, self.node)
            done = self.writer.rebuild_keys(db, keys, self._reader)
        except DataError as exc:
            if not exc.retryable:
                raise
            if self._reader is not None:
                self._reader.close()
            self._reader = None
            return 0, 0, alone + keys  # one key at a time, each on a new connection
        return done.rebuilt, done.skipped, alone + done.alone

    def _rebuild(self, db: int, key: bytes) -> rebuild.Outcome:
        """Rebuild one key from the source with type commands, in chunks (its TTL is read again there)."""
        with node_client(self.source, *self.node, db=db) as reader, valkey_errors(f"rebuilding {key!r}"):
            kind = reader.type(key).decode()
            if kind == "none":
                return "vanished"
            limit = chunk_bytes(self.options.max_batch_bytes)
            return self.writer.rebuild_chunked(db, key, reader, kind, chunk_bytes=limit, progress=self._chunk_copied)

    def _chunk_copied(self, nbytes: int) -> None:
        """Count one chunk of a big key (progress shows during the key, and --max-bytes-per-second holds)."""
        self.stats.bytes += nbytes
        self.tracker.report(Stats(bytes=nbytes))
        self.limiter.wait(self.stats.scanned, self.stats.bytes)


def chunk_bytes(max_batch_bytes: int) -> int:
    """Bytes of a big key copied or compared at a time: an eighth of the byte bound, at most WINDOW_BYTES."""
    return max(1, min(rebuild.WINDOW_BYTES, max_batch_bytes // 8))


def scan_reply(reply: object) -> tuple[bytes, list[bytes]]:
    """The cursor and keys of a SCAN reply, or a DataError for an error reply."""
    if not isinstance(reply, list) or len(reply) != 2:
        raise DataError(f"SCAN failed: {reply}", hint="the source user needs +scan")
    cursor: bytes = reply[0]
    keys: list[bytes] = reply[1]
    return cursor, keys


@dataclass
class _Outcome:
    copied: int = 0
    skipped: int = 0
    retries: int = 0
    persistent: int = 0
    rebuild: list[int] = field(default_factory=list)


class TargetWriter:
    """Sends RESTOREs to the right target node and turns replies into outcomes, retrying redirections.

    When a target primary has replicas, each batch ends with ``WAIT <replicas>``: a key counts as copied only
    once a replica holds it too, so a failover right after cannot lose it. A primary whose replicas do not
    acknowledge in time is written without WAIT from then on, and a warning says so.

    A connection that breaks while sending or reading is dropped and its keys are sent again (with backoff, a
    bounded number of times) on a new one; a key counts as copied only once its reply has been read.
    """

    def __init__(self, target: Endpoint, *, replace: bool) -> None:
        self.target, self.replace = target, replace
        self.layout = discover(target)
        self._conns: dict[Address, RawConnection] = {}
        self._waits_sent: dict[Address, int] = {}
        self._no_wait: set[Address] = set()
        self._unsent: set[Address] = set()
        self._last_error = ""
        self.warnings: list[str] = []
        #: The longest wait for a PTTL reply of a key this writer rebuilt (see ``Stats.ttl_early_ms``).
        self.ttl_early_ms = 0
        first = self.layout.primaries[0]
        self.rdb_version = target_rdb_version(self.conn(first, 0), owned_key(self.layout, first, _PROBE_NAME))
        self.max_restore = proto_max_bulk_len(self.conn(self.layout.primaries[0], 0))

    def split(
        self, items: list[tuple[bytes, int, bytes]]
    ) -> tuple[list[tuple[bytes, int, bytes]], list[tuple[bytes, int]], int]:
        """Payloads as the target's RDB version takes them: (items to RESTORE, (key, size) to rebuild, re-stamped)."""
        version = self.rdb_version
        if version is None or all(isinstance(p, Plain) or dumpfmt.rdb_version(p) <= version for _k, _t, p in items):
            return items, [], 0
        kept: list[tuple[bytes, int, bytes]] = []
        unknown: list[tuple[bytes, int]] = []
        restamped = 0
        for key, deadline, payload in items:
            converted = payload if isinstance(payload, Plain) else dumpfmt.downgrade(payload, version)
            if converted is None:  # a type the target lacks: rewritten as one it has when the data allows
                converted = snapshot.older_payload(payload, version)
            if converted is None:
                unknown.append((key, len(payload)))
            else:
                kept.append((key, deadline, converted))
                restamped += converted is not payload
        return kept, unknown, restamped

    def conn(self, node: Address, db: int) -> RawConnection:
        """The connection to target ``node``, on ``db`` unless the target is a cluster."""
        if node not in self._conns:
            self._conns[node] = connect(self.target, node)
        conn = self._conns[node]
        if not self.layout.cluster:
            conn.select(db)
        return conn

    def send(self, db: int, items: list[tuple[bytes, int, bytes]]) -> dict[Address, list[int]]:
        """Send RESTOREs for ``items`` to their nodes without waiting; returns item indexes per node."""
        per_node: dict[Address, list[int]] = {}
        if not self.layout.cluster and items:
            per_node[self.layout.primaries[0]] = list(range(len(items)))
        elif items:
            per_node = _by_node(items, self.layout)
        for node, indexes in per_node.items():
            try:
                self._send_to(node, db, items, indexes)
            except DataError as exc:
                self._broken(node, exc)
                self._unsent.add(node)  # confirm() sends these again instead of waiting for replies
        return per_node

    def _send_to(self, node: Address, db: int, items: list[tuple[bytes, int, bytes]], indexes: list[int]) -> None:
        """Write items with the TTL left now: a retried key keeps its deadline (at least 1 ms)."""
        conn = self.conn(node, db)  # first: a new connection (a node first seen, through a tunnel) can take seconds
        parts = _writes(items, indexes, self.replace)
        replicas = 0 if node in self._no_wait else len(self.layout.replicas.get(node, []))
        if replicas:
            parts.append(
                b"*3\r\n$4\r\nWAIT\r\n$%d\r\n%d\r\n$%d\r\n%d\r\n"
                % (len(str(replicas)), replicas, len(str(_WAIT_MS)), _WAIT_MS)
            )
        self._waits_sent[node] = replicas
        conn.send_parts(parts)

    def _read(self, node: Address, db: int, count: int) -> list[object]:
        """Read ``count`` RESTORE replies from ``node``, then the WAIT reply when one was sent."""
        replicas = self._waits_sent.pop(node, 0)
        replies = self.conn(node, db).read(count + (1 if replicas else 0))
        if replicas:
            acknowledged = replies.pop()
            if not isinstance(acknowledged, int) or acknowledged < replicas:
                self._no_wait.add(node)
                self.warnings.append(
                    f"the replicas of target {node[0]}:{node[1]} did not acknowledge writes within {_WAIT_MS} ms "
                    f"({acknowledged!r} of {replicas}); a failover there could lose recent keys: run verify"
                )
        return replies

    def confirm(self, batch: RestoreBatch) -> _Outcome:
        """Read the replies of a sent batch; retry redirected or failed keys; count the outcomes."""
        outcome, retry = _Outcome(), []
        unsent, self._unsent = self._unsent, set()
        for node, indexes in batch.per_node.items():
            if node in unsent:
                retry += indexes
                continue
            try:
                replies = self._read(node, batch.db, len(indexes))
            except DataError as exc:
                self._broken(node, exc)
                retry += indexes
                continue
            retry += self._classify(batch, indexes, replies, outcome)
        attempts = 0
        while retry:
            attempts += 1
            outcome.retries += len(retry)
            retry = self._retry(batch, retry, outcome, attempts)
        return outcome

    def _classify(self, batch: RestoreBatch, indexes: list[int], replies: list[object], outcome: _Outcome) -> list[int]:
        if replies.count(b"OK") == len(replies):  # every write took (the common case): counted without a loop a key
            outcome.copied += len(replies)
            outcome.persistent += list(map(_DEADLINE, map(batch.items.__getitem__, indexes))).count(0)
            return []
        retry = []
        for index, reply in zip(indexes, replies, strict=True):
            if reply is None:  # SET NX of a key the target has (--skip-existing)
                outcome.skipped += 1
                continue
            if not isinstance(reply, ReplyError):
                outcome.copied += 1
                outcome.persistent += batch.items[index][1] == 0
                continue
            message = str(reply)
            if message.startswith("BUSYKEY"):
                outcome.skipped += 1
            elif message.startswith(("MOVED", "ASK", "TRYAGAIN", "CLUSTERDOWN", "LOADING", "READONLY")):
                retry.append(index)
            elif any(text in message for text in _VERSION_ERRORS):  # after "ERR"
                outcome.rebuild.append(index)
            else:
                raise _fatal(message, batch.items[index][0])
        return retry

    def _retry(self, batch: RestoreBatch, indexes: list[int], outcome: _Outcome, attempt: int) -> list[int]:
        if attempt > _MAX_RETRIES:
            key = batch.items[indexes[0]][0]
            last = f"; last error: {self._last_error}" if self._last_error else ""
            raise DataError(
                f"the target kept redirecting or failing for {len(indexes)} key(s) (first {key!r}){last}",
                hint="check that the target is up and reachable (a cluster: CLUSTER INFO), then run the same "
                "command again with --resume: the checkpoint holds only keys the target confirmed",
                retryable=True,
            )
        time.sleep(min(0.1 * 2**attempt, 3.0))
        self._refresh()
        per_node: dict[Address, list[int]] = {}
        for index in indexes:
            per_node.setdefault(self.layout.node_for_key(batch.items[index][0]), []).append(index)
        retry: list[int] = []
        for node, node_indexes in per_node.items():
            try:
                self._send_to(node, batch.db, batch.items, node_indexes)
                replies = self._read(node, batch.db, len(node_indexes))
            except DataError as exc:
                self._broken(node, exc)
                retry += node_indexes
                continue
            retry += self._classify(batch, node_indexes, replies, outcome)
        return retry

    def _refresh(self) -> None:
        try:
            self.layout = discover(self.target)
        except DataError:
            return

    def _broken(self, node: Address, exc: DataError) -> None:
        """Forget ``node``'s connection after a retryable failure; anything else (a refused password) is raised."""
        if not exc.retryable:
            raise exc
        self._last_error = exc.message
        self._drop(node)

    def _drop(self, node: Address) -> None:
        self._waits_sent.pop(node, None)
        conn = self._conns.pop(node, None)
        if conn is not None:
            conn.close()

    def rebuild_chunked(
        self, db: int, key: bytes, reader: Any, kind: str, *, chunk_bytes: int, progress: rebuild.Chunked | None = None
    ) -> rebuild.Outcome:
        """Copy one key from ``reader`` a chunk at a time (unless it exists and existing keys are kept).

        It is written under a temporary name renamed onto ``key`` once whole (:func:`rebuild.copy_chunked`).
        """
        node = self.layout.node_for_key(key)
        target_db = 0 if self.layout.cluster else db
        with (
            _permissions_hint(),
            node_client(self.target, *node, db=target_db) as writer,
            valkey_errors(f"rebuilding {key!r} on the target"),
        ):
            if not self.replace and writer.exists(key):
                return "skipped"
            asked = time.monotonic()
            pttl = int(reader.pttl(key))
            self.ttl_early_ms = max(self.ttl_early_ms, int((time.monotonic() - asked) * 1000))
            if pttl == -2:
                return "vanished"
            temp = rebuild.partial_key(key, os.urandom(8).hex().encode(), cluster=self.layout.cluster)
            return rebuild.copy_chunked(
                reader,
                writer,
                key,
                kind,
                pttl,
                asked_at=asked,
                temp=temp,
                replace=self.replace,
                chunk_bytes=min(chunk_bytes, self.max_restore // 2),  # an APPEND's part is one argument
                progress=progress,
            )

    def rebuild_keys(self, db: int, keys: list[bytes], source: RawConnection) -> Rebuilt:
        """Rebuild ``keys`` (values small enough to hold whole) from ``source`` with type commands, pipelined.

        Reads TYPE and PTTL of every key in one round trip, their values in a second, and writes them to each
        target node in one more. A key whose type changed meanwhile is left in ``alone`` (rebuild it by itself).
        """
        source.select(db)
        sent = monotonic_ms()
        source.send(b"".join(command("TYPE", k) + command("PTTL", k) for k in keys))
        described = source.read(2 * len(keys))
        self.ttl_early_ms = max(self.ttl_early_ms, monotonic_ms() - sent)
        done = Rebuilt()
        plan: list[tuple[bytes, str, int]] = []
        for key, kind, pttl in zip(keys, described[0::2], described[1::2], strict=True):
            if not isinstance(kind, bytes) or kind not in _TYPE_NAMES or not isinstance(pttl, int):
                done.alone.append(key)  # an error reply, or a type no rebuild knows: the per-key path says why
            elif kind != b"none" and pttl != -2:
                plan.append((key, kind.decode(), pttl))
        reads = [rebuild.read_commands(k, kind) for k, kind, _pttl in plan]
        source.send(b"".join(command(*args) for group in reads for args in group))
        replies = source.read(sum(map(len, reads)))
        values: list[tuple[bytes, _Value, int]] = []
        for (key, kind, pttl), group in zip(plan, reads, strict=True):
            answers, replies = replies[: len(group)], replies[len(group) :]
            try:
                value = rebuild.parse_value(kind, answers)
            except rebuild.ReplyShapeError:
                done.alone.append(key)
                continue
            if value is not None:
                values.append((key, value, sent + pttl if pttl >= 0 else 0))
        self._write_values(db, values, done)
        return done

    def _write_values(self, db: int, values: list[tuple[bytes, _Value, int]], done: Rebuilt) -> None:
        by_node: dict[Address, list[tuple[bytes, _Value, int]]] = {}
        for entry in values:
            by_node.setdefault(self.layout.node_for_key(entry[0]), []).append(entry)
        for node, on_node in by_node.items():
            try:
                self._write_node(node, db, on_node, done)
            except DataError:
                self._drop(node)  # its replies are owed still: the next batch must not read them as its own
                raise

    def _write_node(self, node: Address, db: int, entries: list[tuple[bytes, _Value, int]], done: Rebuilt) -> None:
        """Write rebuilt ``entries`` to target ``node`` (with ``skip``, only those it does not hold), pipelined."""
        conn = self.conn(node, db)
        if not self.replace:
            conn.send(b"".join(command("EXISTS", key) for key, _v, _d in entries))
            exists = conn.read(len(entries))
            done.skipped += sum(1 for found in exists if found == 1)
            entries = [e for e, found in zip(entries, exists, strict=True) if found != 1]
        now = monotonic_ms()
        writes = [
            rebuild.write_commands(key, value, max(deadline - now, 1) if deadline else -1)
            for key, value, deadline in entries
        ]
        conn.send_parts([command(*args) for group in writes for args in group])
        replies = conn.read(sum(map(len, writes)))
        failed = next((r for r in replies if isinstance(r, ReplyError)), None)
        if failed is not None:
            raise _fatal(str(failed), entries[0][0])
        done.rebuilt += len(entries)

    def close(self) -> None:
        """Close every target connection."""
        for node in list(self._conns):
            self._drop(node)


@contextlib.contextmanager
def _permissions_hint() -> Iterator[None]:
    """A refused command while rebuilding a key in chunks says which commands the users need."""
    try:
        yield
    except DataError as exc:
        if "no permissions" not in exc.message and "NOPERM" not in exc.message:
            raise
        raise DataError(
            exc.message,
            hint="a key over the byte bound is copied in chunks: the source user needs +type +pttl +getrange +hscan "
            "+sscan +zscan +lrange +xrange +xinfo, the target user +del +append +hset +sadd +zadd +rpush +xadd "
            "+xsetid +xgroup +pexpire +persist +rename +renamenx +exists",
        ) from None


@dataclass
class Rebuilt:
    """What :meth:`TargetWriter.rebuild_keys` did: keys rebuilt, kept (they existed), left to rebuild alone."""

    rebuilt: int = 0
    skipped: int = 0
    alone: list[bytes] = field(default_factory=list)


_PROBE_NAME = b"__reproducer:rdb-probe"
_TYPE_NAMES = {name.encode() for name in rebuild.TYPES} | {b"none"}


def target_rdb_version(conn: RawConnection, probe: bytes = b"") -> int | None:
    """The newest RDB version ``conn``'s server accepts: from ``INFO server``, else by RESTOREs of a probe key.

    The probe restores a one-byte string stamped 11, then 10, then 9 under a fresh
    ``__reproducer:rdb-probe[:{tag}]:<hex>`` key (``probe``: a name the node owns, :func:`topology.owned_key`) and
    deletes it; None when neither way tells (payloads then go as they are, and a refused one is rebuilt).
    """
    with contextlib.suppress(DataError):
        info = conn.call("INFO", "server")
        version = dumpfmt.version_of_server(info) if isinstance(info, bytes) else None
        if version is not None:
            return version
    key = (probe or _PROBE_NAME) + b":" + os.urandom(8).hex().encode()
    for version in sorted(dumpfmt.MAX_TYPE, reverse=True):
        stamped = dumpfmt.with_version(b"\x00\x01x\x00\x00" + bytes(8), version)
        conn.send(command("RESTORE", key, 0, stamped) + command("DEL", key))
        restored, _deleted = conn.read(2)
        if restored == b"OK":
            return version
        if not any(text in str(restored) for text in _VERSION_ERRORS):
            return None  # not allowed to write there, or a cluster redirection: the copy will tell
    return None


#: Valkey's and Redis's default proto-max-bulk-len (docs/reference/big-keys.md#the-targets-limits).
DEFAULT_PROTO_MAX_BULK_LEN = 512 * 1024 * 1024


def proto_max_bulk_len(conn: RawConnection) -> int:
    """The longest argument ``conn``'s server takes (a RESTORE payload too): CONFIG GET, else the default."""
    with contextlib.suppress(DataError):
        reply = conn.call("CONFIG", "GET", "proto-max-bulk-len")
        if isinstance(reply, list) and len(reply) == 2 and isinstance(reply[1], bytes) and reply[1].isdigit():
            return int(reply[1])
    return DEFAULT_PROTO_MAX_BULK_LEN


def _fatal(message: str, key: bytes) -> DataError:
    if message.startswith("OOM"):
        return DataError(
            f"the target is out of memory (maxmemory reached) while restoring {key!r}: {message}",
            hint="give the target more memory or a larger node type, then run again with --resume",
        )
    if message.startswith("NOPERM"):
        return DataError(
            f"the target user may not RESTORE: {message}",
            hint="grant +restore (and +del, and +rename for keys copied in chunks) to the target user",
        )
    return DataError(f"RESTORE {key!r} failed on the target: {message}")
