"""Compare a target with its source: counts per database and type, then every key (or a sample).

Each source key is checked on the target for presence, type, TTL and value. Two TTLs match within the
tolerance, plus how early the copy may have dated them (``copy_early_ms``), plus the time the read of both
sides took (each answered PTTL at some instant of it). Values are compared by their DUMP payload without its
version stamp first (identical bodies are identical values, whatever RDB version each engine stamps); when
bodies differ (another encoding, a hash table's order) the values are read with their type's commands, many
keys per round trip, and compared as data, so a rebuilt or cross-engine copy still verifies at speed. A value
over the byte bound is neither dumped nor read whole: it is compared a window at a time on both sides
(:func:`rebuild.compare_chunked`), which names what differs. The source's and the target's replies are
awaited together.

The source's side is read from its snapshot (``SYNC``, as the copy reads it: :mod:`snapshot`) unless the source
refuses it, or ``read="scan"``, a pattern or a sample asks for a scan (SCAN, then PTTL and GET or DUMP of each key).
A snapshot is a point in time: its TTLs are dated from the source's clock when the target is asked.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

from reproducer.data import dumpfmt, rebuild, relay, sizing, snapshot
from reproducer.data.copy import (
    OUTGROWN_FACTOR,
    RELAY_SECONDS,
    WHOLE_VALUE_BYTES,
    KeySizer,
    ReadMode,
    SourceClock,
    ValueOutgrown,
    byte_groups,
    check_read,
    chunk_bytes,
    in_processes,
    monotonic_ms,
    scan_reply,
    size_and_type,
    source_nodes,
)
from reproducer.data.dumpfmt import Plain
from reproducer.data.endpoint import Endpoint, node_client, valkey_errors
from reproducer.data.resp import RawConnection, ReplyError, ReplyOverLimit, command
from reproducer.data.topology import Address, Layout, connect, databases, discover
from reproducer.errors import DataError

_describe_in_c: Callable[..., dict[bytes, Any]] | None
_commands_in_c: Callable[..., bytes] | None
_snapshot_in_c: Callable[..., tuple[list[bytes], dict[bytes, bytes], dict[bytes, int], dict[bytes, Any]]] | None
_identical_in_c: Callable[..., tuple[dict[bytes, int], list[bytes]]] | None
try:  # the per-key work in C (_speedups.c), when the build had a C compiler: the same results
    from reproducer.data._speedups import describe as _describe_in_c
    from reproducer.data._speedups import describe_commands as _commands_in_c
    from reproducer.data._speedups import identical as _identical_in_c
    from reproducer.data._speedups import snapshot_described as _snapshot_in_c
except ImportError:  # pragma: no cover - a pure-Python build
    _describe_in_c = _commands_in_c = _snapshot_in_c = _identical_in_c = None

FORMAT_VERSION = "1.0"
#: Groups asked of both sides before the oldest is read: the servers answer one while this process reads another.
DESCRIBE_DEPTH = 2


@dataclass(frozen=True)
class VerifyOptions:
    """How to verify: which databases, a sample fraction, TTL tolerance, how many differences to list."""

    dbs: tuple[int, ...] | None = None
    match: str | None = None
    sample: float | None = None
    ttl_tolerance_ms: int = 1000
    #: How early the copy being verified may have dated TTLs (its ``Stats.ttl_early_ms``): allowed on top.
    copy_early_ms: int = 0
    max_listed: int = 20
    batch: int = 1000
    #: Keys are compared in groups of at most this many bytes of value (a bigger key alone).
    max_batch_bytes: int = 64 * 1024 * 1024
    #: Called with the number of keys compared so far after each group (progress on long runs).
    progress: Callable[[int], None] | None = None
    #: How to read the source: ``sync`` its snapshot (one fork a primary, as the copy does), ``scan`` with SCAN and
    #: PTTL, GET or DUMP, ``auto`` the snapshot unless the source refuses it or a pattern or a sample asks for a scan.
    read: ReadMode = "auto"


@dataclass
class VerifyReport:
    """What verify found; ``ok`` when nothing differs."""

    source_counts: dict[str, dict[str, int]] = field(default_factory=dict)
    target_keys: dict[str, int] = field(default_factory=dict)
    compared: int = 0
    missing: int = 0
    type_mismatch: int = 0
    value_mismatch: int = 0
    ttl_mismatch: int = 0
    expired_meanwhile: int = 0
    extra_in_target: int = 0
    differences: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every compared key matched and the target holds no extra key."""
        return not (
            self.missing or self.type_mismatch or self.value_mismatch or self.ttl_mismatch or self.extra_in_target
        )

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data."""
        data = dict(vars(self))
        return {"format_version": FORMAT_VERSION, "ok": self.ok, **data}


def verify(source: Endpoint, target: Endpoint, options: VerifyOptions) -> VerifyReport:
    """Compare ``target`` with ``source`` (see the module docstring)."""
    check_read(options.read, options.match)
    src_layout, dst_layout = discover(source), discover(target)
    nodes = source_nodes(src_layout, from_replica=False)
    check = _check_in_processes if in_processes(source, target, nodes) else _check_here
    # the layout comes back refreshed when the target redirected (a failover or a reshard meanwhile)
    report, dst_layout = check(source, target, dst_layout, nodes, options)
    dbs = sorted({int(db) for db in report.source_counts} or {0})
    _count_target(target, dst_layout, dbs, report)
    present_on_target = report.compared - report.missing
    whole = options.sample is None and options.match is None
    if whole and sum(report.target_keys.values()) > present_on_target:
        # DBSIZE also counts expired keys not reclaimed yet: look at each target key to be sure.
        _ExtraFinder(source, src_layout, target, dst_layout, report, options.max_listed).run(dbs)
    return report


def _check_here(
    source: Endpoint, target: Endpoint, layout: Layout, nodes: list[Address], options: VerifyOptions
) -> tuple[VerifyReport, Layout]:
    """Check every source node's keys in turn, in this process; the report and the target's latest layout."""
    report = VerifyReport()
    checker = _Checker(source, target, layout, options, report)
    try:
        for node in nodes:
            checker.check_node(node)
    finally:
        checker.close()
    return report, checker.layout


def _check_in_processes(
    source: Endpoint, target: Endpoint, layout: Layout, nodes: list[Address], options: VerifyOptions
) -> tuple[VerifyReport, Layout]:
    """Check each source node in its own worker process; their reports merged in node order."""
    from reproducer.data import workers

    bare = replace(options, progress=None)  # a callable stays here: workers report counts instead
    secrets = (source.password, target.password)
    source, target, on_ask = relay.for_workers(source, target)
    jobs = [(_check_in_worker, (source, target, layout, node, bare)) for node in nodes]
    compared = [0] * len(nodes)

    def on_report(index: int, count: int) -> None:
        compared[index] = count
        if options.progress is not None:
            options.progress(sum(compared))

    names = [f"{host}:{port}" for host, port in nodes]
    results = workers.run(jobs, names=names, on_report=on_report, on_ask=on_ask, secrets=secrets, what="verify worker")
    report = VerifyReport()
    for part, part_layout in results:
        _merge(report, part, options.max_listed)
        if part_layout != layout:
            layout = part_layout
    return report, layout


def _check_in_worker(
    channel: Any, source: Endpoint, target: Endpoint, layout: Layout, node: Address, options: VerifyOptions
) -> tuple[VerifyReport, Layout]:
    """In a worker process: check one source node, sending the count of keys compared.

    The count goes at most every ``RELAY_SECONDS``, and the last at the end.
    """
    from reproducer.data.workers import Throttled

    relay.bind(channel, source, target)
    report = VerifyReport()
    progress = Throttled(channel.report, RELAY_SECONDS)
    checker = _Checker(source, target, layout, replace(options, progress=progress), report)
    try:
        checker.check_node(node)
    finally:
        checker.close()
        with contextlib.suppress(OSError):  # the parent is gone: nobody to tell
            progress.flush()
    return report, checker.layout


_COUNTERS = ("compared", "missing", "type_mismatch", "value_mismatch", "ttl_mismatch", "expired_meanwhile")


def _merge(report: VerifyReport, part: VerifyReport, max_listed: int) -> None:
    """Add one node's findings to ``report`` (differences listed up to ``max_listed``)."""
    for name in _COUNTERS:
        setattr(report, name, getattr(report, name) + getattr(part, name))
    for db, types in part.source_counts.items():
        counts = report.source_counts.setdefault(db, {})
        for kind, count in types.items():
            counts[kind] = counts.get(kind, 0) + count
    report.differences = (report.differences + part.differences)[:max_listed]


def _count_target(target: Endpoint, layout: Layout, dbs: list[int], report: VerifyReport) -> None:
    """Keys per database on the target (DBSIZE summed over its primaries)."""
    for node in layout.primaries:
        conn = connect(target, node)
        try:
            for db in dbs if not layout.cluster else [0]:
                conn.select(db)
                report.target_keys[str(db)] = report.target_keys.get(str(db), 0) + conn.call_int("DBSIZE")
        finally:
            conn.close()


class _ExtraFinder:
    """Scans the target for keys the source does not have, counting and listing them."""

    def __init__(
        self,
        source: Endpoint,
        src_layout: Layout,
        target: Endpoint,
        dst_layout: Layout,
        report: VerifyReport,
        max_listed: int,
    ) -> None:
        self.source, self.src_layout, self.target, self.dst_layout = source, src_layout, target, dst_layout
        self.report, self.max_listed = report, max_listed
        self._conns: dict[Address, RawConnection] = {}

    def run(self, dbs: list[int]) -> None:
        self.report.extra_in_target = 0
        try:
            for node in self.dst_layout.primaries:
                for db in dbs if not self.dst_layout.cluster else [0]:
                    self._scan_node(node, db)
        finally:
            for conn in self._conns.values():
                conn.close()

    def _scan_node(self, node: Address, db: int) -> None:
        conn, cursor = connect(self.target, node), b"0"
        try:
            conn.select(db)
            while True:
                cursor, keys = scan_reply(conn.call("SCAN", cursor, "COUNT", 1000))
                for key in self._absent_on_source(db, keys):
                    self._extra(db, key)
                if cursor == b"0":
                    return
        finally:
            conn.close()

    def _absent_on_source(self, db: int, keys: list[bytes]) -> list[bytes]:
        by_node: dict[Address, list[bytes]] = {}
        for key in keys:
            by_node.setdefault(self.src_layout.node_for_key(key), []).append(key)
        absent = []
        for node, node_keys in by_node.items():
            conn = self._conns.get(node) or connect(self.source, node)
            self._conns[node] = conn
            conn.select(db)
            conn.send(b"".join(command("EXISTS", k) for k in node_keys))
            absent += [k for k, found in zip(node_keys, conn.read(len(node_keys)), strict=True) if found == 0]
        return absent

    def _extra(self, db: int, key: bytes) -> None:
        self.report.extra_in_target += 1
        if len(self.report.differences) < self.max_listed:
            self.report.differences.append(
                {
                    "db": db,
                    "key": key.decode(errors="backslashreplace"),
                    "problem": "extra_in_target",
                    "detail": "absent on the source",
                }
            )


def _selected(key: bytes, fraction: float | None) -> bool:
    return fraction is None or (zlib.crc32(key) % 10_000) < fraction * 10_000


@dataclass(frozen=True)
class _Asked:
    """What :meth:`_Checker._ask_page` sent: MEMORY USAGE with the types (else TYPE alone), a SCAN after them."""

    sizes: bool
    scanning: bool


@dataclass
class _InFlight:
    """A group whose description was asked of both sides, not read yet (the target's connections and keys)."""

    group: list[bytes]
    reads: _Reads
    big: _Big
    asked_ms: int
    target: list[tuple[Address, RawConnection, list[bytes]]]
    #: Why asking failed (a connection the server closed): the group is then described again on new connections.
    lost: DataError | None = None
    #: The group's database.
    db: int = 0
    #: The source's description, when a snapshot told it (else the source was asked too).
    src_info: dict[bytes, _Info] | None = None


@dataclass
class _Described:
    """A group's description on both sides, and the TTL slack its reading took, to compare."""

    group: list[bytes]
    src_info: dict[bytes, _Info]
    dst_info: dict[bytes, _Info]
    slack: int
    db: int = 0


class _Checker:
    def __init__(
        self, source: Endpoint, target: Endpoint, layout: Layout, options: VerifyOptions, report: VerifyReport
    ) -> None:
        self.source, self.target, self.layout, self.options, self.report = source, target, layout, options, report
        self._conns: dict[Address, RawConnection] = {}
        self._sizer = KeySizer(options.max_batch_bytes)
        self._dst_info: dict[bytes, _Info] = {}
        self._values: tuple[Address, RawConnection] | None = None
        self._value_conns: dict[Address, RawConnection] = {}  # target connections for values read as data
        self._losses = 0  # connections lost in a row (a server closed them); reset by a group read whole
        self._members_for_sets: bool | None = None  # told by :meth:`_sets_by_members`
        self._compared_before = 0  # keys counted in the report a snapshot's check set aside (progress goes on from)

    def close(self) -> None:
        for conn in [*self._conns.values(), *self._value_conns.values()]:
            conn.close()
        if self._values is not None:
            self._values[1].close()

    def _target_conn(self, node: Address, db: int, pool: dict[Address, RawConnection] | None = None) -> RawConnection:
        """The connection to target ``node`` from ``pool`` (descriptions' by default), on ``db`` unless a cluster."""
        pool = self._conns if pool is None else pool
        if node not in pool:
            pool[node] = connect(self.target, node)
        conn = pool[node]
        conn.select(0 if self.layout.cluster else db)
        return conn

    def check_node(self, node: Address) -> None:
        """Compare every selected key of source ``node``: from its snapshot when it gives one, else with SCAN."""
        if self._reads_snapshot() and self._checked_from_snapshot(node):
            return
        with contextlib.ExitStack() as stack:
            src = connect(self.source, node)
            stack.callback(src.close)
            scan = connect(self.source, node)  # pages and sizes, asked ahead of the groups' descriptions on src
            stack.callback(scan.close)
            for db in self._dbs(src):
                src.select(db)
                scan.select(db)
                self._check_db(src, scan, node, db)

    def _reads_snapshot(self) -> bool:
        """Whether to read the source's snapshot: asked, or ``auto`` without a pattern or a sample.

        A pattern or a sample reads a part of the keys: a scan reads only those, a snapshot would stream them all.
        """
        if self.options.read != "auto":
            return self.options.read == "sync"
        return self.options.match is None and self.options.sample is None

    def _checked_from_snapshot(self, node: Address) -> bool:
        """Compare ``node``'s keys as its snapshot holds them with the target; False when it gives none (``auto``).

        A stream refused or broken part way leaves nothing counted: the node is then checked with a scan.
        """
        counted, self.report = self.report, VerifyReport()
        self._compared_before = counted.compared
        try:
            self._check_snapshot(node)
        except (snapshot.SnapshotRefused, snapshot.SnapshotBroken) as exc:
            self._drop_target_conns()  # replies asked for the snapshot's groups are left unread
            self._drop_value_conns()
            if self.options.read == "sync":
                raise DataError(
                    f"the source {node[0]}:{node[1]} gave no snapshot: {exc.message}",
                    hint="verify with --read scan (SCAN, PTTL and DUMP need no SYNC)",
                ) from None
            return False
        finally:
            found, self.report, self._compared_before = self.report, counted, 0
        _merge(self.report, found, self.options.max_listed)
        return True

    def _check_snapshot(self, node: Address) -> None:
        """Stream ``node``'s snapshot, and ask the target to describe each batch of it, DESCRIBE_DEPTH ahead.

        The source's side of each key comes from the stream (its type, expiry and payload), so the source's only
        work is its fork child's; the target is asked as in a scan. TTLs are compared as of when the target was
        asked, from the snapshot's expiries and the source's clock (TIME).
        """
        with contextlib.closing(connect(self.source, node)) as src:
            wanted = None if self.options.dbs is None and self.source.db is None else set(self._dbs(src))
            clock = SourceClock.measure(src)
            stream = snapshot.open_snapshot(src)
            bound = self.options.max_batch_bytes
            flights: deque[_InFlight] = deque()
            previous: _Described | None = None
            for batch in _broken_on_loss(stream.batches(bound, self.options.batch, bound)):
                if wanted is not None and batch.db not in wanted:
                    continue
                while flights and flights[-1].db != batch.db:  # SELECT waits for no pending reply on the target
                    previous = self._read_snapshot_oldest(node, flights, previous)
                flights.append(self._snapshot_flight(node, batch, clock, stream.version))
                if len(flights) == DESCRIBE_DEPTH:
                    previous = self._read_snapshot_oldest(node, flights, previous)
            while flights:
                previous = self._read_snapshot_oldest(node, flights, previous)
            if previous is not None:
                self._finish(node, previous.db, previous)

    def _snapshot_flight(self, node: Address, batch: snapshot.Batch, clock: SourceClock, version: int) -> _InFlight:
        """The source's description of a snapshot batch, and the target asked to describe the same keys.

        A key whose expiry has passed on the source's clock is left out (counted as expired meanwhile), as the copy
        leaves it out. A value over the byte bound was not held: its type is asked of the source, and it is compared
        in windows on both sides. Sets are compared by their members when the target encodes them otherwise than
        the stream's RDB ``version`` (:meth:`_sets_by_members`).
        """
        entries = batch.entries
        if self.options.sample is not None:
            entries = [entry for entry in entries if _selected(entry.key, self.options.sample)]
        asked_ms = monotonic_ms()
        source_now = asked_ms + clock.offset_ms
        group, reads, big, src_info = _snapshot_described(entries, source_now)
        self.report.expired_meanwhile += len(entries) - len(group)
        if self._sets_by_members(version):
            _sets_as_members(entries, reads, src_info)
        if big:
            _settle_types(partial(self._values_conn, node, batch.db), src_info)
        flight = _InFlight(group, reads, big, asked_ms, [], db=batch.db, src_info=src_info)
        self._ask_target_of(flight)
        flight.asked_ms = asked_ms - clock.error_ms  # the source's clock may be ahead by the round trip of TIME
        return flight

    def _ask_target_of(self, flight: _InFlight) -> None:
        """Ask the target to describe ``flight`` (on its database); a lost connection goes in ``flight.lost``."""
        flight.lost = None
        try:
            self._ask_target(flight.db, flight)
        except DataError as exc:
            if not exc.retryable:
                raise
            flight.lost = exc

    def _read_snapshot_oldest(
        self, node: Address, flights: deque[_InFlight], previous: _Described | None
    ) -> _Described:
        """Compare ``previous`` while the target answers, then read the oldest snapshot group of ``flights``."""
        if previous is not None:
            self._finish(node, previous.db, previous)
        flight = flights.popleft()
        try:
            if flight.lost is not None:
                raise flight.lost
            dst_info = self._target_replies(flight, flights)
        except (ValueOutgrown, DataError) as exc:
            dst_info = self._target_again_after(exc, flight, flights)
        self._losses = 0
        slack = self.options.ttl_tolerance_ms + self.options.copy_early_ms + monotonic_ms() - flight.asked_ms
        assert flight.src_info is not None
        return _Described(flight.group, flight.src_info, dst_info, slack, flight.db)

    def _target_replies(self, flight: _InFlight, flights: deque[_InFlight]) -> dict[bytes, _Info]:
        """The target's replies to ``flight``, read in turn; a redirection asks it again (:meth:`_target_again`)."""
        answer = self._answer(flight)
        dst_info: dict[bytes, _Info] = {}
        failure: _Redirected | None = None
        for target_node, conn, node_keys in flight.target:  # every reply is read: connections stay in step
            try:
                described = answer(conn, node_keys)  # later groups are pending on conn: types go by another
                dst_info.update(
                    _settle_types(partial(self._target_conn, target_node, flight.db, self._value_conns), described)
                )
            except _Redirected as exc:
                failure = exc
        if failure is not None:
            return self._target_again(flight, flights)
        return dst_info

    def _answer(self, flight: _InFlight) -> _Answer:
        """How either side's replies to ``flight`` are read (a reply far over the bound raises ValueOutgrown)."""
        limit = OUTGROWN_FACTOR * self.options.max_batch_bytes
        return partial(_described, reads=flight.reads, big=flight.big, limit=limit)

    def _target_again_after(
        self, failure: Exception, flight: _InFlight, flights: deque[_InFlight]
    ) -> dict[bytes, _Info]:
        """A snapshot group asked of the target again after ``failure``.

        ``failure`` is a lost connection, or a value far over the bound there (then compared in windows).
        """
        while True:
            if isinstance(failure, ValueOutgrown):
                self._outgrown_on_target(flight, failure.key)
            elif isinstance(failure, DataError):
                self._count_loss(failure)
            try:
                return self._target_again(flight, flights)
            except (ValueOutgrown, DataError) as again:
                failure = again

    def _outgrown_on_target(self, flight: _InFlight, key: bytes) -> None:
        """A key whose value on the target is far over the bound: compared in windows on both sides."""
        flight.big[key] = OUTGROWN_FACTOR * self.options.max_batch_bytes
        assert flight.src_info is not None
        kind, pttl, _value, size = flight.src_info[key]
        flight.src_info[key] = (kind, pttl, _BIG, size)

    def _target_again(self, flight: _InFlight, flights: deque[_InFlight]) -> dict[bytes, _Info]:
        """``flight`` described by the target on new connections, synchronously; the later groups asked again.

        The connections dropped (after a redirection, a loss, a reply far over the bound) may still carry the later
        groups' replies; those groups are asked again along the current slot map.
        """
        self._drop_target_conns()
        ask = partial(_describe_commands, reads=flight.reads, big=flight.big)
        dst_info = self._describe_on_target(flight.db, flight.group, ask, self._answer(flight))
        for later in flights:
            self._ask_target_of(later)
        return dst_info

    def _dbs(self, src: RawConnection) -> list[int]:
        if self.options.dbs is not None:
            return list(self.options.dbs)
        if self.source.db is not None:
            return [self.source.db]
        return databases(src)

    def _check_db(self, src: RawConnection, scan: RawConnection, node: Address, db: int) -> None:
        """Compare every selected key of ``db``, in groups within the byte bound, DESCRIBE_DEPTH groups asked ahead.

        ``scan`` pages through the keys and sizes each page before its groups are used (:meth:`_groups_of_pages`);
        ``src`` and the target's connections carry only the groups' descriptions. A group is read only once the next
        one is asked of both sides, and the group before is compared in between, so neither server waits for this
        process. Values compared as data, and types their values did not tell, are read over second connections
        (:meth:`_values_conn`, ``_value_conns``), so replies never cross.
        """
        flights: deque[_InFlight] = deque()
        previous: _Described | None = None
        for group, reads, big in self._groups_of_pages(scan, node):
            flights.append(self._send_describe(src, db, group, reads, big))
            if len(flights) == DESCRIBE_DEPTH:
                previous = self._read_oldest(src, node, db, flights, previous)
        while flights:
            previous = self._read_oldest(src, node, db, flights, previous)
        if previous is not None:
            self._finish(node, db, previous)

    def _read_oldest(
        self, src: RawConnection, node: Address, db: int, flights: deque[_InFlight], previous: _Described | None
    ) -> _Described:
        """Compare ``previous`` while the servers answer, then read the oldest group of ``flights``."""
        if previous is not None:
            self._finish(node, db, previous)
        return self._read_describe(src, node, db, flights)

    def _finish(self, node: Address, db: int, done: _Described) -> None:
        """Compare a described group (values as data when their payloads differ), then tell the progress."""
        self._sizer.guess.observe([info[3] for info in done.src_info.values()])
        self._compare_values(node, db, self._compare_group(db, done.group, done.src_info, done.dst_info, done.slack))
        if self.options.progress is not None:
            self.options.progress(self._compared_before + self.report.compared)

    def _scan_command(self, cursor: bytes) -> bytes:
        args: list[Any] = ["SCAN", cursor, "COUNT", self.options.batch]
        if self.options.match:
            args += ["MATCH", self.options.match]
        return command(*args)

    def _groups_of_pages(self, scan: RawConnection, node: Address) -> Iterator[tuple[list[bytes], _Reads, _Big]]:
        """Every selected key in groups (:meth:`_groups`), ``scan`` a page ahead of the groups handed out.

        The next page's sizes and SCAN are asked before a page's groups are handed out, and after the page is sized
        (which may ask ``scan`` for sizes by type: no reply is pending then).
        """
        scan.send(self._scan_command(b"0"))
        cursor, first = scan_reply(scan.read(1)[0])
        keys: list[bytes] | None = first
        asked = self._ask_page(scan, keys, cursor)
        while keys is not None:
            usage, types, cursor, after = self._page_answer(scan, node, keys, asked, cursor)
            groups = list(self._groups(scan, keys, usage, types))
            asked = self._ask_page(scan, after, cursor)
            yield from groups
            keys = after

    def _ask_page(self, src: RawConnection, keys: list[bytes] | None, cursor: bytes) -> _Asked:
        """Send the sizes and types of ``keys`` (the selected ones, kept in place) and the SCAN at ``cursor``.

        ``keys`` None: the scan is over, nothing is sent. Cursor 0 ends the scan: no SCAN is sent.
        """
        if keys is None:
            return _Asked(sizes=False, scanning=False)
        keys[:] = [key for key in keys if _selected(key, self.options.sample)]
        sizes, scanning = not self._sizer.denied, cursor != b"0"
        src.send(
            (size_and_type(keys) if sizes else sizing.types_of(keys))
            + (self._scan_command(cursor) if scanning else b"")
        )
        return _Asked(sizes, scanning)

    def _page_answer(
        self, scan: RawConnection, node: Address, keys: list[bytes], asked: _Asked, cursor: bytes
    ) -> tuple[list[object] | None, list[object], bytes, list[bytes] | None]:
        """What :meth:`_ask_page` asked of ``scan``: (sizes, types, the next cursor, the next page or None).

        A connection the server closed (or that broke) is made again and the page asked again, at the same cursor: a
        SCAN cursor holds no state on the server.
        """
        while True:
            try:
                usage, types = self._read_page(scan, keys, asked)
                if not asked.scanning:
                    return usage, types, cursor, None
                after_cursor, after = scan_reply(scan.read(1)[0])
                return usage, types, after_cursor, after
            except DataError as exc:
                self._count_loss(exc)
                scan.adopt(connect(self.source, node))
                asked = self._ask_page(scan, keys, cursor)

    def _read_page(
        self, src: RawConnection, keys: list[bytes], asked: _Asked
    ) -> tuple[list[object] | None, list[object]]:
        """The replies to :meth:`_ask_page`'s sizes and types: (MEMORY USAGE replies, or None when not asked; TYPE)."""
        if not asked.sizes:
            return None, src.read(len(keys))
        replies = src.read(2 * len(keys))
        return replies[0::2], replies[1::2]

    def _send_describe(self, src: RawConnection, db: int, group: list[bytes], reads: _Reads, big: _Big) -> _InFlight:
        """Ask both sides to describe ``group`` (read by :meth:`_read_describe`)."""
        flight = _InFlight(group, reads, big, monotonic_ms(), [], db=db)
        self._ask_both(src, db, flight)
        return flight

    def _ask_both(self, src: RawConnection, db: int, flight: _InFlight) -> None:
        """Ask the source, then the target nodes, to describe ``flight``; a lost connection goes in ``flight.lost``."""
        flight.asked_ms, flight.lost = monotonic_ms(), None
        asked = _describe_commands(flight.group, flight.reads, flight.big)
        try:
            src.send(asked)  # the source answers while the target is asked
            self._ask_target(db, flight, asked)
        except DataError as exc:
            if not exc.retryable:
                raise
            flight.lost = exc  # read finds it: described again on new connections

    def _ask_target(self, db: int, flight: _InFlight, asked: bytes | None = None) -> None:
        """Ask the target nodes owning ``flight``'s keys to describe them; their connections go in ``flight.target``.

        ``asked``: the whole group's commands, sent as they are when one node owns every key.
        """
        by_node = self._by_owner(flight.group)
        flight.target = []
        for target_node, node_keys in by_node.items():
            conn = self._target_conn(target_node, db)
            if asked is None or len(by_node) > 1:
                asked = _describe_commands(node_keys, flight.reads, flight.big)
            conn.send(asked)
            flight.target.append((target_node, conn, node_keys))

    def _by_owner(self, keys: list[bytes]) -> dict[Address, list[bytes]]:
        """``keys`` by the target primary that owns each (all on the one primary outside a cluster)."""
        if not self.layout.cluster:
            return {self.layout.primaries[0]: keys}
        by_node: dict[Address, list[bytes]] = {}
        for key in keys:
            by_node.setdefault(self.layout.node_for_key(key), []).append(key)
        return by_node

    def _read_describe(self, src: RawConnection, node: Address, db: int, flights: deque[_InFlight]) -> _Described:
        """Both sides' descriptions of the oldest group of ``flights``, which leaves it.

        A target that redirects is asked again once the slot map is refreshed, and so are the groups asked after it
        (:meth:`_target_replies`). A value over OUTGROWN_FACTOR times the bound drops the connections: the
        group is described again, synchronously, with that key compared in chunks (:meth:`_describe_group`), and the
        groups after it are asked again.
        """
        flight = flights.popleft()
        try:
            if flight.lost is not None:
                raise flight.lost
            dst_info = self._target_replies(flight, flights)
            src_info = self._source_answer(src, node, flight.group, self._answer(flight))
        except ValueOutgrown as exc:
            flight.big[exc.key] = OUTGROWN_FACTOR * self.options.max_batch_bytes
            return self._described_again(src, node, db, flight, flights)
        except DataError as exc:
            self._count_loss(exc)
            return self._described_again(src, node, db, flight, flights)
        self._losses = 0
        # Each side answered PTTL at some instant of this read: a TTL can look shorter by that much.
        slack = self.options.ttl_tolerance_ms + self.options.copy_early_ms + monotonic_ms() - flight.asked_ms
        return _Described(flight.group, src_info, dst_info, slack)

    def _count_loss(self, exc: DataError) -> None:
        """Count a connection a server closed (or that broke); raise ``exc`` when it cannot be, or is once too often."""
        if not exc.retryable or self._losses >= _MAX_LOSSES:
            raise exc
        self._losses += 1
        self._drop_value_conns()  # closed with the others when the server dropped every client

    def _described_again(
        self, src: RawConnection, node: Address, db: int, flight: _InFlight, flights: deque[_InFlight]
    ) -> _Described:
        """``flight`` described again on new connections, synchronously; the groups after it asked again there."""
        self._reconnect(src, node)
        src_info, slack = self._describe_group(src, node, flight.group, flight.reads, flight.big)
        for later in flights:
            self._ask_both(src, db, later)
        return _Described(flight.group, src_info, self._dst_info, slack)

    def _describe_group(
        self, src: RawConnection, node: Address, group: list[bytes], reads: _Reads, big: _Big
    ) -> tuple[dict[bytes, _Info], int]:
        """Both sides' description of ``group`` (the target's in _dst_info), and the TTL slack that reading took.

        A value sized under the bound whose reply passes OUTGROWN_FACTOR times the bound (a sampled size that
        missed its big elements, or a key that grew) is abandoned with the connections, and the group is read
        again with that key compared in chunks.
        """
        limit = OUTGROWN_FACTOR * self.options.max_batch_bytes
        ask = partial(_describe_commands, reads=reads, big=big)
        answer = partial(_described, reads=reads, big=big, limit=limit)
        while True:
            asked = monotonic_ms()
            try:
                src_info = self._describe_both(src, node, group, ask, answer)
            except ValueOutgrown as exc:
                big[exc.key] = limit
                self._reconnect(src, node)
                continue
            except DataError as exc:
                self._count_loss(exc)
                self._reconnect(src, node)
                continue
            # Each side answered PTTL at some instant of this read: a TTL can look shorter by that much.
            return src_info, self.options.ttl_tolerance_ms + self.options.copy_early_ms + monotonic_ms() - asked

    def _reconnect(self, src: RawConnection, node: Address) -> None:
        """New connections for ``src`` and the target's, which an abandoned reply left out of step."""
        src.adopt(connect(self.source, node))
        self._drop_target_conns()

    def _drop_target_conns(self) -> None:
        """Close the target's description connections (replies pending on them are abandoned)."""
        for conn in self._conns.values():
            conn.close()
        self._conns.clear()

    def _drop_value_conns(self) -> None:
        """Close the second connections (values read as data, types): made again when next needed."""
        for conn in self._value_conns.values():
            conn.close()
        self._value_conns.clear()
        if self._values is not None:
            self._values[1].close()
            self._values = None

    def _groups(
        self, src: RawConnection, keys: list[bytes], usage: list[object] | None, types: list[object]
    ) -> Iterator[tuple[list[bytes], _Reads, _Big]]:
        """``keys`` in groups of at most ``max_batch_bytes``, how each is read, and which are over the bound.

        Sizes come from MEMORY USAGE (``usage``); when it is refused, from the size commands of each key's type, in
        one more round trip. A string's value is then read with GET, a set's with SMEMBERS when the two engines
        encode sets differently (:meth:`_sets_by_members`), anything else with DUMP; a key over the bound is never
        read whole here (compared in chunks).
        """
        sizer = self._sizer
        if usage is None or any(isinstance(size, ReplyError) for size in usage):
            sizer.denied = True
            sizes = sizer.estimated(src, keys, types)
        else:
            sizes = [size if isinstance(size, int) else 0 for size in usage]  # None: gone
        read_as = _READ_AS_MEMBERS if self._sets_by_members(src) else _READ_AS
        reads = {key: read_as[kind] for key, kind in zip(keys, types, strict=True) if kind in read_as}
        big = {key: size for key, size in zip(keys, sizes, strict=True) if size > sizer.max_bytes}
        group: list[bytes] = []
        total = 0
        for key, size in zip(keys, sizes, strict=True):
            if group and total + size > sizer.max_bytes:
                yield group, reads, big
                group, total = [], 0
            group.append(key)
            total += size
        if group:
            yield group, reads, big

    def _sets_by_members(self, src: RawConnection | int) -> bool:
        """Whether sets are read by their members: when one side writes listpack sets (RDB 11+) and not the other.

        Their payloads then always differ as bytes (Redis 7.0 holds an intset or a hash table), and comparing two
        member lists costs both servers and this process about half of decoding two payloads. Told once, from each
        side's ``INFO server`` (``src``: the source's connection, or its snapshot's RDB version); when either cannot
        tell, sets are dumped (and compared by payload, as before).
        """
        if self._members_for_sets is None:
            source = src if isinstance(src, int) else _rdb_version(src)
            target = _rdb_version(self._target_conn(self.layout.primaries[0], 0, self._value_conns))
            self._members_for_sets = (
                source is not None and target is not None and (source >= _LISTPACK_SETS) != (target >= _LISTPACK_SETS)
            )
        return self._members_for_sets

    def _values_conn(self, node: Address, db: int) -> RawConnection:
        """A second connection to source ``node`` on ``db``, for values read as data (``src`` has groups asked)."""
        if self._values is None or self._values[0] != node:
            if self._values is not None:
                self._values[1].close()
            self._values = (node, connect(self.source, node))
        conn = self._values[1]
        conn.select(db)
        return conn

    def _compare_values(self, node: Address, db: int, keys: list[tuple[bytes, _Info]]) -> None:
        """Compare the values of ``keys`` (same type, different payloads) as data; small ones many at a time."""
        chunked = {key for key, info in keys if info[3] > WHOLE_VALUE_BYTES or info[2] is _BIG or info[2] is _MISREAD}
        whole = [(key, info[3]) for key, info in keys if key not in chunked]
        kinds = {key: info[0].decode() for key, info in keys}
        alone = [key for key, _info in keys if key in chunked]
        for group in byte_groups(whole):
            left, right = self._values_on_both(node, db, [(key, kinds[key]) for key in group])
            for key in group:
                if left[key] is _UNREADABLE or right.get(key, _UNREADABLE) is _UNREADABLE:
                    alone.append(key)  # it changed type meanwhile: read it again by itself
                elif rebuild.normal(left[key]) != rebuild.normal(right[key]):  # type: ignore[arg-type]
                    self._differ("value_mismatch", db, key, "values differ")
        for key in alone:
            detail = self._chunked_difference(node, db, key, kinds[key])
            if detail is not None:
                self._differ("value_mismatch", db, key, f"values differ: {detail}")

    def _values_on_both(
        self, node: Address, db: int, keys: list[tuple[bytes, str]]
    ) -> tuple[dict[bytes, object], dict[bytes, object]]:
        """The values of ``keys`` on the source and on the target, read over the second connections.

        Those connections may have been closed by a server since a group was last read whole (its replies already
        waiting in the socket, the loss went unseen): they are made again and the values read again.
        """
        while True:
            try:
                return _read_values(self._values_conn(node, db), keys), self._read_on_target(db, keys)
            except DataError as exc:
                self._count_loss(exc)  # which drops the second connections

    def _read_on_target(self, db: int, keys: list[tuple[bytes, str]]) -> dict[bytes, object]:
        by_node: dict[Address, list[tuple[bytes, str]]] = {}
        for key, kind in keys:
            by_node.setdefault(self.layout.node_for_key(key), []).append((key, kind))
        values: dict[bytes, object] = {}
        for target_node, node_keys in by_node.items():
            values.update(_read_values(self._target_conn(target_node, db, self._value_conns), node_keys))
        return values

    def _describe_both(
        self, src: RawConnection, node: Address, keys: list[bytes], ask: _Ask, answer: _Answer
    ) -> dict[bytes, _Info]:
        """Ask the source and the target nodes at once, then read: the source's answer (the target's in _dst_info)."""
        src.send(ask(keys))  # the source answers while the target is asked
        self._dst_info = self._describe_on_target(src.db, keys, ask, answer)
        return self._source_answer(src, node, keys, answer)

    def _source_answer(
        self, src: RawConnection, node: Address, keys: list[bytes], answer: _Answer
    ) -> dict[bytes, _Info]:
        """The source's description of ``keys`` (asked already); a redirection there is an error.

        Types the values did not tell are asked over the second connection: ``src`` has the next group asked.
        """
        try:
            return _settle_types(partial(self._values_conn, node, src.db), answer(src, keys))
        except _Redirected as exc:
            raise DataError(
                f"the source moved keys while being verified ({exc})",
                hint="run verify again once the source's resharding is over",
                retryable=True,
            ) from None

    def _describe_on_target(self, db: int, keys: list[bytes], ask: _Ask, answer: _Answer) -> dict[bytes, _Info]:
        """``ask`` the target nodes owning ``keys``; a redirection refreshes the slot map and retries."""
        for attempt in range(_MAX_REDIRECTS):
            dst_info: dict[bytes, _Info] = {}
            try:
                asked = []
                for target_node, node_keys in self._by_owner(keys).items():
                    conn = self._target_conn(target_node, db)
                    conn.send(ask(node_keys))
                    asked.append((conn, node_keys))
                failure: _Redirected | None = None
                for conn, node_keys in asked:  # every reply is read, so each connection stays in step
                    try:
                        dst_info.update(_settle_types(partial(_same, conn), answer(conn, node_keys)))
                    except _Redirected as exc:
                        failure = exc
                if failure is not None:
                    raise failure
            except _Redirected:
                time.sleep(min(0.1 * 2**attempt, 2.0))
                with contextlib.suppress(DataError):  # mid-reshard the map may be incomplete: keep the last one
                    self.layout = discover(self.target)
                continue
            return dst_info
        raise DataError(
            f"the target kept redirecting reads of {len(keys)} key(s) (its slots are moving)",
            hint="run verify again once the target's resharding or failover is over",
            retryable=True,
        )

    def _compare_group(
        self, db: int, keys: list[bytes], src_info: dict[bytes, _Info], dst_info: dict[bytes, _Info], ttl_slack: int
    ) -> list[tuple[bytes, _Info]]:
        """Count and compare ``keys`` (:meth:`_compare`); those whose values must be compared as data.

        Most keys are identical on both sides: same type, same payload digest, TTLs both absent or close. They are
        only counted here; every other key goes through :meth:`_compare`.
        """
        if _identical_in_c is None:
            identical, others = _python_identical(keys, src_info, dst_info, ttl_slack)
        else:
            identical, others = _identical_in_c(keys, src_info, dst_info, ttl_slack, _MISREAD, _BIG)
        by_value = []
        for key in others:
            if self._compare(db, key, src_info[key], dst_info[key], ttl_slack):
                by_value.append((key, src_info[key]))
        counts = self.report.source_counts.setdefault(str(db), {})
        for kind, count in identical.items():
            counts[kind.decode()] = counts.get(kind.decode(), 0) + count
        self.report.compared += sum(identical.values())
        return by_value

    def _compare(self, db: int, key: bytes, src: _Info, dst: _Info, ttl_slack: int) -> bool:
        """Count and compare one key by its description; True when its values must be compared as data.

        TTLs match when both are absent, or when they differ by at most ``ttl_slack`` ms.
        """
        (s_type, s_pttl, s_dump, _size), (d_type, d_pttl, d_dump, _d_size) = src, dst
        if s_type == b"none":
            self.report.expired_meanwhile += 1
            return False
        counts = self.report.source_counts.setdefault(str(db), {})
        counts[s_type.decode()] = counts.get(s_type.decode(), 0) + 1
        self.report.compared += 1
        if d_type == b"none":
            self._differ("missing", db, key, "absent on the target")
        elif s_type != d_type:
            self._differ("type_mismatch", db, key, f"{s_type.decode()} on the source, {d_type.decode()} on the target")
        elif not _ttl_close(s_pttl, d_pttl, ttl_slack):
            detail = f"pttl {s_pttl} on the source, {d_pttl} on the target, {ttl_slack} ms allowed"
            self._differ("ttl_mismatch", db, key, detail)
        else:  # a key whose type changed after TYPE answered (GET refused it) is compared as data
            if s_dump is _MISREAD or s_dump is _BIG:
                return True
            return s_dump != d_dump and not _same_encoded_data(s_type, s_dump, d_dump)
        return False

    def _chunked_difference(self, node: Address, db: int, key: bytes, kind: str) -> str | None:
        """Compare one big value a window at a time on both sides (:func:`rebuild.compare_chunked`); what differs."""
        target_node = self.layout.node_for_key(key)
        target_db = 0 if self.layout.cluster else db
        with (
            node_client(self.source, *node, db=db) as src,
            valkey_errors(f"reading {key!r} on the source"),
            node_client(self.target, *target_node, db=target_db) as dst,
            valkey_errors(f"reading {key!r} on the target"),
        ):
            limit = chunk_bytes(self.options.max_batch_bytes)
            return rebuild.compare_chunked(src, dst, key, kind, chunk_bytes=limit, progress=self._chunk_compared)

    def _chunk_compared(self, _nbytes: int) -> None:
        """Progress during one big key (the count of keys compared stays, the time goes on)."""
        if self.options.progress is not None:
            self.options.progress(self._compared_before + self.report.compared)

    def _differ(self, kind: str, db: int, key: bytes, detail: str) -> None:
        setattr(self.report, kind, getattr(self.report, kind) + 1)
        if len(self.report.differences) < self.options.max_listed:
            self.report.differences.append(
                {"db": db, "key": key.decode(errors="backslashreplace"), "problem": kind, "detail": detail}
            )


_REDIRECTIONS = ("MOVED", "ASK", "TRYAGAIN", "CLUSTERDOWN")
_MAX_REDIRECTS = 8
_MAX_LOSSES = 3  # connections lost in a row before verify gives up (each time, the group is read again)


class _Redirected(Exception):
    """A cluster node answered MOVED, ASK or TRYAGAIN: the slot map is stale (a reshard or failover meanwhile)."""


def _same(conn: RawConnection) -> RawConnection:
    return conn


_Info = tuple[Any, Any, Any, int]  # the type, PTTL, the value or payload body (or a digest of it), its size
_UNREADABLE = object()
_Ask = Callable[[list[bytes]], bytes]
_Answer = Callable[[RawConnection, list[bytes]], dict[bytes, _Info]]
_MISREAD = object()  # GET of a key that was no string any more (WRONGTYPE)
_BIG = object()  # a value over the byte bound: not read here, compared in chunks
_Big = dict[bytes, int]  # keys over the byte bound and their sizes


#: How a value is read when not with DUMP (encoded command names): a string with GET; ``_READ_AS_MEMBERS`` when
#: the engines encode sets differently (:meth:`_Checker._sets_by_members`).
_GET, _SMEMBERS, _DUMP, _TYPE = b"$3\r\nGET", b"$8\r\nSMEMBERS", b"$4\r\nDUMP", b"$4\r\nTYPE"
_READ_AS = {b"string": _GET}
_READ_AS_MEMBERS = {b"string": _GET, b"set": _SMEMBERS}
_Reads = dict[bytes, bytes]  # a key -> the command its value is read with (DUMP when absent)
#: The first RDB version with listpack sets (Redis 7.2, Valkey 7.2+).
_LISTPACK_SETS = 11


def _describe_commands(keys: list[bytes], reads: _Reads, big: _Big | None = None) -> bytes:
    """PTTL and the value of each key: as ``reads`` says (GET, SMEMBERS), else DUMP, and TYPE for a big one.

    A GET costs the server less than a DUMP, which tries LZF on the value. The type comes with the value (a
    payload's first byte, a GET that answered, members): no TYPE is asked but for a big key. Done in C when the
    build has it (``_speedups.c``).
    """
    if _commands_in_c is not None:
        return _commands_in_c(keys, reads, big or None, _DUMP, _TYPE)
    return _python_describe_commands(keys, reads, big)


def _python_describe_commands(keys: list[bytes], reads: _Reads, big: _Big | None = None) -> bytes:
    """:func:`_describe_commands` in Python (``_speedups.describe_commands`` is its compiled twin)."""
    return b"".join(
        b"*2\r\n$4\r\nPTTL\r\n$%d\r\n%b\r\n*2\r\n%b\r\n$%d\r\n%b\r\n"
        % (len(k), k, _TYPE if big and k in big else reads.get(k, _DUMP), len(k), k)
        for k in keys
    )


def _rdb_version(conn: RawConnection) -> int | None:
    """The RDB version ``conn``'s server writes, from ``INFO server``; None when it cannot be told."""
    with contextlib.suppress(DataError):
        info = conn.call("INFO", "server")
        return dumpfmt.version_of_server(info) if isinstance(info, bytes) else None
    return None


def _check_errors(conn: RawConnection, replies: list[object], allowed: str = "") -> None:
    if not any(issubclass(kind, ReplyError) for kind in set(map(type, replies))):
        return  # the usual case, told by the few types of the replies rather than a look at each
    for reply in replies:
        if isinstance(reply, ReplyError) and not (allowed and str(reply).startswith(allowed)):
            if str(reply).startswith(_REDIRECTIONS):
                raise _Redirected(f"reading keys on {conn.address}: {reply}")
            raise DataError(
                f"reading keys on {conn.address} failed: {reply}",
                hint="the user needs +type +pttl +get +dump +smembers",
            )


def _described(
    conn: RawConnection, keys: list[bytes], reads: _Reads, big: _Big | None = None, limit: int | None = None
) -> dict[bytes, _Info]:
    """Read the replies to :func:`_describe_commands`: per key (type, pttl, value or digest, size).

    The type is told by the value: a GET that answered, a payload's first byte, members, nothing (or no member)
    for a key gone. It is None where the value cannot tell (GET or SMEMBERS refused with WRONGTYPE, a module's
    payload): :func:`_settle_types` asks. Payloads are not kept. A DUMP's digest leaves out the version stamp, so
    engines that stamp different RDB versions still compare equal when they encode the value the same way; a set's
    members are kept as a set (or a digest of them, sorted), whatever order each engine gives them in. A reply past
    ``limit`` bytes raises :class:`ValueOutgrown` (``conn`` is then mid-reply).
    """
    try:
        replies = conn.read(2 * len(keys), limit=limit, limited=2 * len(keys))
    except ReplyOverLimit as exc:
        raise ValueOutgrown(keys[exc.index // 2]) from None
    _check_errors(conn, replies, allowed="WRONGTYPE")
    if _describe_in_c is None:
        described = _python_describe(keys, replies, reads, big)
    else:
        described = _describe_in_c(
            keys, replies, reads, big or None, _GET, _PAYLOAD_TYPES, _MISREAD, _BIG, _DIGEST_FROM, _FOOTER, _digest,
            _members, ReplyError,
        )  # fmt: skip
    replies.clear()
    return described


def _python_describe(keys: list[bytes], replies: list[object], reads: _Reads, big: _Big | None) -> dict[bytes, _Info]:
    """What :func:`_described` makes of the replies, in Python (``_speedups.describe`` is its compiled twin)."""
    described: dict[bytes, _Info] = {}
    for key, pttl, value in zip(keys, replies[0::2], replies[1::2], strict=True):
        if big and key in big:
            described[key] = (value, pttl, _BIG, big[key])  # its value's command was TYPE
        elif isinstance(value, bytes):
            size = len(value)
            if reads.get(key) is _GET:
                described[key] = (b"string", pttl, value if size < _DIGEST_FROM else _digest(value, 0), size)
            else:  # a DUMP payload, its 10-byte footer left out
                body = value[:-_FOOTER] if _FOOTER <= size < _DIGEST_FROM else _digest(value, _FOOTER)
                described[key] = (_PAYLOAD_TYPES.get(value[0] if value else -1), pttl, body, size)
        elif isinstance(value, ReplyError):
            described[key] = (None, pttl, _MISREAD, 0)
        elif isinstance(value, list) and value:  # SMEMBERS' members
            described[key] = _members(pttl, value)
        else:  # nil, or no member (a set is never empty): the key is gone
            described[key] = (b"none", pttl, None, 0)
    return described


def _sets_as_members(entries: list[snapshot.Entry], reads: _Reads, described: dict[bytes, _Info]) -> None:
    """Describe the sets of a snapshot batch by their members, and read the target's with SMEMBERS (in place)."""
    for _db, key, _expire, payload, _size in entries:
        if key not in described or payload is None or type(payload) is Plain or len(payload) <= _FOOTER:
            continue
        members = snapshot.set_members(payload[:-_FOOTER])
        if members:  # a set that does not read is compared by its payload
            reads[key] = _SMEMBERS
            described[key] = _members(described[key][1], members)


def _broken_on_loss(batches: Iterator[snapshot.Batch]) -> Iterator[snapshot.Batch]:
    """``batches``, a connection lost while reading them told as a broken stream (the node is then scanned)."""
    try:
        yield from batches
    except snapshot.SnapshotBroken:
        raise
    except DataError as exc:
        if not exc.retryable:
            raise
        raise snapshot.SnapshotBroken(f"the stream broke: {exc.message}") from None


def _python_identical(
    keys: list[bytes], src_info: dict[bytes, _Info], dst_info: dict[bytes, _Info], slack: int
) -> tuple[dict[bytes, int], list[bytes]]:
    """The keys identical on both sides counted by type, and the others in order (``_speedups.identical``' twin).

    Identical: the same type, the same value or digest (not misread, not over the bound, not gone), TTLs both absent
    or both present and at most ``slack`` ms apart.
    """
    identical: dict[bytes, int] = {}
    others = []
    for key in keys:
        src, dst = src_info[key], dst_info[key]
        kind, s_pttl, s_value, d_pttl = src[0], src[1], src[2], dst[1]
        if (
            isinstance(kind, bytes)
            and kind == dst[0]
            and s_value == dst[2]
            and kind != b"none"
            and s_value is not _MISREAD
            and s_value is not _BIG
            and ((s_pttl < 0 and d_pttl < 0) or (s_pttl >= 0 and d_pttl >= 0 and abs(s_pttl - d_pttl) <= slack))
        ):
            identical[kind] = identical.get(kind, 0) + 1
        else:
            others.append(key)
    return identical, others


def _snapshot_described(
    entries: list[snapshot.Entry], source_now: int
) -> tuple[list[bytes], _Reads, _Big, dict[bytes, _Info]]:
    """A snapshot batch as :func:`_described` gives a source's replies: (keys, reads, big keys, descriptions).

    Keys whose expiry is past ``source_now`` (on the source's clock) are left out. A plain string is compared with
    what GET answers on the target, any other value by its payload's body (its footer left out, as the target's
    DUMP is). PTTLs are as of ``source_now``. Done in C when the build has it (``_speedups.c``).
    """
    if _snapshot_in_c is not None:
        with contextlib.suppress(OverflowError):  # an expiry past what C's integers hold: Python's take any
            return _snapshot_in_c(
                entries, source_now, _GET, Plain, _PAYLOAD_TYPES, _BIG, _DIGEST_FROM, _FOOTER, _digest
            )
    return _python_snapshot_described(entries, source_now)


def _python_snapshot_described(
    entries: list[snapshot.Entry], source_now: int
) -> tuple[list[bytes], _Reads, _Big, dict[bytes, _Info]]:
    """:func:`_snapshot_described` in Python (``_speedups.snapshot_described`` is its compiled twin)."""
    group: list[bytes] = []
    reads: _Reads = {}
    big: _Big = {}
    described: dict[bytes, _Info] = {}
    for _db, key, expire, payload, size in entries:
        if 0 <= expire <= source_now:
            continue
        pttl = expire - source_now if expire >= 0 else -1
        group.append(key)
        if payload is None:
            big[key] = size
            described[key] = (None, pttl, _BIG, size)
        elif type(payload) is Plain:
            reads[key] = _GET
            length = len(payload)
            described[key] = (b"string", pttl, payload if length < _DIGEST_FROM else _digest(payload, 0), length)
        else:
            length = len(payload)
            body = payload[:-_FOOTER] if _FOOTER <= length < _DIGEST_FROM else _digest(payload, _FOOTER)
            described[key] = (_PAYLOAD_TYPES.get(payload[0] if payload else -1), pttl, body, length)
    return group, reads, big, described


def _members(pttl: object, members: list[bytes]) -> _Info:
    """A set's description from its members: the set of them, or a digest of them sorted when they are many."""
    size = sum(map(len, members))
    if size + 8 * len(members) < _DIGEST_FROM:
        return (b"set", pttl, frozenset(members), size)
    digest = hashlib.blake2b(digest_size=20)
    for member in sorted(members):
        digest.update(b"%d:%b" % (len(member), member))
    return (b"set", pttl, _Hashed(digest.digest()), size)


def _settle_types(connection: Callable[[], RawConnection], described: dict[bytes, _Info]) -> dict[bytes, _Info]:
    """Ask the TYPE of each key whose value did not tell it, over ``connection()`` (one with no reply pending)."""
    unknown = [key for key, info in described.items() if info[0] is None]
    if unknown:
        conn = connection()
        conn.send(b"".join(command("TYPE", key) for key in unknown))
        replies = conn.read(len(unknown))
        _check_errors(conn, replies)
        for key, kind in zip(unknown, replies, strict=True):
            described[key] = (kind, *described[key][1:])
    return described


#: The type a DUMP payload's first byte (its RDB object type) stands for; a module's (6, 7) is asked.
_PAYLOAD_TYPES = {
    **dict.fromkeys((0,), b"string"),
    **dict.fromkeys((1, 10, 14, 18), b"list"),
    **dict.fromkeys((2, 11, 20), b"set"),
    **dict.fromkeys((3, 5, 12, 17), b"zset"),
    **dict.fromkeys((4, 9, 13, 16), b"hash"),
    **dict.fromkeys((15, 19, 21), b"stream"),
}


def _size(payload: object) -> int:
    return len(payload) if isinstance(payload, bytes) else 0


def _read_values(conn: RawConnection, keys: list[tuple[bytes, str]]) -> dict[bytes, object]:
    """The values of ``keys`` (key, type) read in one pipeline; _UNREADABLE for a key whose type changed."""
    reads = [rebuild.read_commands(key, kind) for key, kind in keys]
    conn.send(b"".join(command(*args) for group in reads for args in group))
    replies = conn.read(sum(map(len, reads)))
    values: dict[bytes, object] = {}
    for (key, kind), group in zip(keys, reads, strict=True):
        answers, replies = replies[: len(group)], replies[len(group) :]
        try:
            values[key] = rebuild.parse_value(kind, answers)
        except rebuild.ReplyShapeError:
            values[key] = _UNREADABLE
    return values


_DIGEST_FROM = 4096  # smaller payloads are compared as they are
_FOOTER = 10  # a DUMP payload's RDB version and CRC-64, left out of what is compared


class _Hashed(bytes):
    """The digest of a bigger payload (not the payload itself: nothing to read in it)."""


def _digest(payload: object, footer: int = _FOOTER) -> object:
    """Small values as they are, bigger ones by a digest; ``footer`` bytes at the end (a DUMP's) left out."""
    if not isinstance(payload, bytes) or len(payload) < footer:
        return payload
    if len(payload) >= _DIGEST_FROM:
        return _Hashed(hashlib.blake2b(memoryview(payload)[: len(payload) - footer], digest_size=20).digest())
    return payload[: len(payload) - footer] if footer else payload


def _same_encoded_data(kind: bytes, left: object, right: object) -> bool:
    """Whether the payloads of a set or a stream that differ as bytes hold the same data.

    Read from the payloads, no round trip: across engines, a set's or a stream's encoding differs though its data
    does not.
    """
    if kind not in (b"set", b"stream") or not isinstance(left, bytes) or not isinstance(right, bytes):
        return False
    if isinstance(left, _Hashed) or isinstance(right, _Hashed):
        return False
    return snapshot.same_data(left, right)


def _ttl_close(left: Any, right: Any, tolerance: int) -> bool:
    if left < 0 or right < 0:
        return bool(left < 0 and right < 0)
    return bool(abs(int(left) - int(right)) <= tolerance)
