"""A source's snapshot over ``SYNC``, as a replica reads it: its RDB stream cut into one DUMP payload per key.

``SCAN`` + ``DUMP`` makes the source's one thread serialize every value between commands; ``SYNC`` makes it
fork, as for replication, and its child writes the RDB while the parent keeps serving. Each key of the stream is
``[expiry][type][key][value]``, and ``[type][value]`` is exactly a DUMP payload's body: adding the stream's RDB
version and a CRC-64 makes the payload ``RESTORE`` takes. Values are never decoded, only measured to find where
they end (see ``docs/reference/data-migration.md#reading-the-source-over-sync``).

The snapshot is a point in time (unlike a SCAN, which sees each key at a different moment). It costs the source a
fork (copy-on-write memory while the child runs), as a backup or a new replica does. ``REPLCONF rdb-only 1``
asks for the snapshot only: no command stream follows it.

Only RDB versions up to :data:`MAX_VERSION` are read (Valkey 7.2-8.1, Redis up to 7.2): later versions number
their new object types differently between Redis and Valkey, so their streams are refused before any key.
"""

from __future__ import annotations

import contextlib
import itertools
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

import anycrc

from reproducer.data import dumpfmt
from reproducer.data.dumpfmt import Plain
from reproducer.data.resp import RawConnection, ReplyError, command
from reproducer.errors import DataError

#: The newest RDB version whose object types this reader knows (Valkey 8 and Redis 7.2 write 11).
MAX_VERSION = 11
_CRC = anycrc.Model("CRC64-REDIS")
_READ = 1 << 20

# opcodes (rdb.h)
_SLOT_INFO, _FUNCTION2, _MODULE_AUX, _IDLE, _FREQ = 0xF4, 0xF6, 0xF7, 0xF8, 0xF9
_AUX, _RESIZEDB, _EXPIRETIME_MS, _EXPIRETIME, _SELECTDB, _EOF = 0xFA, 0xFB, 0xFC, 0xFD, 0xFE, 0xFF
#: Object types whose value is one string (a ziplist, listpack or intset blob, or a plain string).
_ONE_STRING = frozenset({0, 9, 10, 11, 12, 13, 16, 17, 20})
_LIST_QUICKLIST_2 = 18
#: Object types :func:`_small_run` reads: one string, or a list of one listpack (the usual short list).
_SMALL_KINDS = _ONE_STRING | {_LIST_QUICKLIST_2}
#: Keys in one run at most: a read (1 MiB) of tiny keys would otherwise be held as 300,000 entries at once.
_RUN_MOST = 256

_scan: Callable[..., tuple[list[Entry], int, int, int]] | None
try:  # the common case compiled (_speedups.c), when the build had a C compiler: the same results, less CPU a key
    from reproducer.data._speedups import small_run as _scan
except ImportError:  # pragma: no cover - a pure-Python build
    _scan = None


class SnapshotRefused(DataError):
    """The source will not stream its snapshot, or the stream holds what this reader cannot read.

    SYNC refused, an RDB version this reader does not know, a module's type, a format error. The copy then
    reads the node with SCAN instead (the keys already written from the snapshot are written again).
    """


class SnapshotBroken(DataError):
    """The stream ended early (the connection broke): the copy of this node starts again from a new snapshot."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=True)


class Entry(NamedTuple):
    """One key of the snapshot (a tuple: the C reader builds it without a call)."""

    db: int
    key: bytes
    #: Absolute expiry in Unix ms on the source's clock, or -1 (none).
    expire_ms: int
    #: The DUMP payload (or a small plain string's bytes, as :class:`Plain`), or None when the value was over
    #: the size limit (it was skipped, never held).
    payload: bytes | None
    #: Bytes of the value in the stream.
    size: int


@dataclass
class Snapshot:
    """A snapshot being streamed: its RDB version, a reader of its bytes after the header, its end mark."""

    version: int
    recv: Callable[[], bytes | memoryview]
    #: The 40 bytes that end a diskless stream (b"" when the preamble gave a byte count instead).
    mark: bytes

    def entries(self, limit: int, stamp_as: int | None = None) -> Iterator[Entry]:
        """The keys, in the stream's order; a value over ``limit`` bytes is skipped, never held whole.

        ``stamp_as``: an older RDB version to stamp the payloads of the types it knows with (their encoding is the
        same there: ``dumpfmt.CONVERTIBLE_FROM``), so that no payload needs re-stamping afterwards; the others keep
        the stream's version.

        Raises:
            SnapshotBroken: the stream ended early (the connection broke).
            SnapshotRefused: the stream holds what this reader cannot read (a format error, a module's type).
        """
        return itertools.chain.from_iterable(run for run, _size in self._stamped_runs(limit, stamp_as))

    def batches(self, limit: int, most_keys: int, most_bytes: int, stamp_as: int | None = None) -> Iterator[Batch]:
        """The keys of :meth:`entries` in batches of one database.

        A batch closes at ``most_keys`` keys, or before its values pass ``most_bytes`` bytes; it holds one key at
        least.

        Raises:
            SnapshotBroken: as :meth:`entries`.
            SnapshotRefused: as :meth:`entries`.
        """
        entries: list[Entry] = []
        size = db = 0
        for run, run_size in self._stamped_runs(limit, stamp_as):
            if entries and run[0].db != db:
                yield Batch(db, entries, size)
                entries, size = [], 0
            db = run[0].db
            if size + run_size <= most_bytes:  # only the key count closes batches in this run: cut it in slices
                rest, rest_size = run, run_size
                while len(entries) + len(rest) > most_keys:
                    room = most_keys - len(entries)
                    head_size = sum(entry.size for entry in rest[:room])
                    yield Batch(db, entries + rest[:room], size + head_size)
                    entries, size = [], 0
                    rest, rest_size = rest[room:], rest_size - head_size
                entries += rest
                size += rest_size
                continue
            for entry in run:
                if entries and (len(entries) >= most_keys or size + entry.size > most_bytes):
                    yield Batch(db, entries, size)
                    entries, size = [], 0
                entries.append(entry)
                size += entry.size
        if entries:
            yield Batch(db, entries, size)

    def _stamped_runs(self, limit: int, stamp_as: int | None) -> Iterator[tuple[list[Entry], int]]:
        own = struct.pack("<H", self.version)
        stamps = [own] * 256
        if stamp_as is not None and self.version in dumpfmt.CONVERTIBLE_FROM and stamp_as in dumpfmt.MAX_TYPE:
            older = struct.pack("<H", stamp_as)
            stamps[: dumpfmt.MAX_TYPE[stamp_as] + 1] = [older] * (dumpfmt.MAX_TYPE[stamp_as] + 1)
        return _runs(_Reader(self.recv, limit), tuple(stamps), self.mark)


@dataclass(slots=True)
class Batch:
    """Keys of one database, in the stream's order, and the bytes their values take in it."""

    db: int
    entries: list[Entry]
    size: int


def open_snapshot(conn: RawConnection) -> Snapshot:
    """Ask ``conn``'s server for its snapshot, as a replica that wants only the RDB (``rdb-only``).

    Raises:
        SnapshotRefused: SYNC or REPLCONF was refused (a managed service, an ACL without ``+sync``), or the
            stream's RDB version is newer than :data:`MAX_VERSION`.
    """
    conn.send(command("REPLCONF", "capa", "eof", "capa", "psync2") + command("REPLCONF", "rdb-only", "1"))
    capa, _rdb_only = conn.read(2)  # an older server refuses rdb-only: it then streams commands after the RDB
    if isinstance(capa, ReplyError):
        raise SnapshotRefused(f"REPLCONF was refused: {capa}")
    conn.send(command("SYNC"))
    source = _Source(conn.recv_raw)
    mark = _preamble(source)
    version = _header(source)
    return Snapshot(version, source.rest(), mark)


class _Source:
    """Bytes from the socket, with what was read past the preamble kept for the stream."""

    def __init__(self, recv: Callable[[], bytes | memoryview]) -> None:
        self.recv, self.held = recv, b""

    def more(self) -> None:
        """Read more bytes into ``held``."""
        chunk = self.recv()
        if not chunk:
            raise SnapshotBroken("the source closed the connection before its snapshot ended")
        self.held += chunk

    def skip_newlines(self) -> None:
        """Skip the newlines (and carriage returns) at the front, however many reads they take."""
        while True:
            self.held = self.held.lstrip(b"\r\n")
            if self.held:
                return
            self.more()

    def line(self) -> bytes:
        """The next line (without its newline)."""
        while b"\n" not in self.held:
            if len(self.held) > 4096:
                raise SnapshotRefused("its answer to SYNC is not an RDB stream")
            self.more()
        line, self.held = self.held.split(b"\n", 1)
        return line

    def exactly(self, count: int) -> bytes:
        """The next ``count`` bytes."""
        while len(self.held) < count:
            self.more()
        taken, self.held = self.held[:count], self.held[count:]
        return taken

    def rest(self) -> Callable[[], bytes | memoryview]:
        """A reader of the rest: first what is held, then the socket."""
        held = [self.held] if self.held else []

        def recv() -> bytes | memoryview:
            return held.pop() if held else self.recv()

        return recv


def _preamble(source: _Source) -> bytes:
    """Skip the keep-alive newlines; the EOF mark of a diskless stream, or b"" for a counted one."""
    source.skip_newlines()
    line = source.line()
    if line.startswith(b"-"):
        raise SnapshotRefused(f"SYNC was refused: {line[1:].strip().decode(errors='replace')}")
    if line.startswith(b"$EOF:") and len(line.rstrip(b"\r")) == 45:
        return line.rstrip(b"\r")[5:]
    if line.startswith(b"$") and line[1:].strip().isdigit():
        return b""
    raise SnapshotRefused(f"it answered SYNC with {line[:60]!r}, not an RDB stream")


def _header(source: _Source) -> int:
    magic = source.exactly(9)
    if magic.startswith(b"REDIS") and magic[5:].isdigit():
        version = int(magic[5:])
    elif magic.startswith(b"VALKEY") and magic[6:].isdigit():
        version = int(magic[6:])
    else:
        raise SnapshotRefused(f"it sent {magic!r}, not an RDB header")
    if version > MAX_VERSION:
        raise SnapshotRefused(f"it writes RDB version {version}, newer than this reader knows ({MAX_VERSION})")
    return version


def _runs(reader: _Reader, stamps: tuple[bytes, ...], mark: bytes) -> Iterator[tuple[list[Entry], int]]:
    """The keys in runs of one database, each with the bytes its values take.

    A run is small keys read in a row (:func:`_small_run`), or one key read by the general path.
    """
    db, expire = 0, -1
    try:
        while True:
            run, size, need = _run_at(reader, db, expire, stamps)
            if run:
                yield run, size
                expire = -1
            if need:  # the next key is one a run takes, cut by the buffer's end: read the rest, then run again
                reader.fill(need)
            if run or need:
                continue
            kind = reader.byte()
            if kind == _EXPIRETIME_MS:
                expire = _expiry(reader.take(8), 1)
            elif kind == _EXPIRETIME:
                expire = _expiry(reader.take(4), 1000)
            elif kind == _SELECTDB:
                db = reader.length()
            elif kind == _EOF:
                reader.take(8)  # the file's CRC-64 (TCP, and each payload's own CRC on the target, guard the bytes)
                _end(reader, mark)
                return
            elif kind < 0xF0:
                entry = _entry(reader, kind, db, expire, stamps[kind])
                yield [entry], entry.size
                expire = -1
            else:
                _opcode(reader, kind)
    except IndexError:
        raise SnapshotBroken("the snapshot stream ended before its end") from None
    except (ValueError, struct.error) as exc:
        raise SnapshotRefused(f"its snapshot could not be read ({exc})") from None


def _run_at(reader: _Reader, db: int, expire: int, stamps: tuple[bytes, ...]) -> tuple[list[Entry], int, int]:
    """:func:`_small_run` at the reader's position, compiled when the build has it."""
    if _scan is None:
        return _small_run(reader, db, expire, stamps)
    run, reader.pos, size, need = _scan(
        reader.buf, reader.pos, db, expire, stamps, reader.limit, _RUN_MOST, Entry, Plain
    )
    return run, size, need


def _expiry(field: bytes | bytearray, unit_ms: int) -> int:
    """An expiry (a signed number of ``unit_ms``) in ms since 1970; one before 1970 is long past: 0, not -1 (none)."""
    return max(int.from_bytes(field, "little", signed=True) * unit_ms, 0)


def _small_run(reader: _Reader, db: int, expire: int, stamps: tuple[bytes, ...]) -> tuple[list[Entry], int, int]:
    """The common case fast: up to ``_RUN_MOST`` keys in a row that the buffer holds whole, each [expiry] a short value.

    A short value is one string (or a list of one listpack), with a key and a length of one or two bytes each. A
    cluster node's slot notes between keys (one before each slot's keys) do not end the run: an opcode of three
    lengths, or, as Valkey 8.0 writes them, an auxiliary field ``slot-info`` (any auxiliary field whose name and
    value are each a length and its bytes is passed over the same way).

    ``expire``: the first key's expiry, when the general path read its opcode. Returns the keys, the bytes their
    values take, and how many bytes past the position the next key needs when it is one a run takes, cut by the
    buffer's end (0 otherwise). No key (nothing read) when the next key is anything else: the general path reads it.
    """
    buf, pos, limit = reader.buf, reader.pos, reader.limit
    end = len(buf)
    run: list[Entry] = []
    taken = need = 0
    add = run.append
    while end - pos >= 16 and len(run) < _RUN_MOST:
        head = pos
        kind = buf[head]
        if (after := _after_slot_note(buf, head, end)) is not None:
            pos = after
            continue
        if kind == _EXPIRETIME_MS:
            expire = max(int.from_bytes(buf[head + 1 : head + 9], "little", signed=True), 0)
            head += 9
            kind = buf[head] if head < end else 0xFF
        head += 1
        # a key longer than the bound is left to the general path, which refuses it
        if kind not in _SMALL_KINDS or head + 3 > end or buf[head] >= 0x40 or buf[head] > limit:
            break
        value = blob = head + 1 + buf[head]
        if kind == _LIST_QUICKLIST_2:  # a list of one listpack: [1 node][2: packed] before the listpack's string
            if value + 4 > end or buf[value] != 1 or buf[value + 1] != 2:
                break
            blob += 2
        stop = _after_short_string(buf, blob, end)
        if stop is None or stop - value > limit:  # a longer length, an integer or LZF: the general path
            break
        if stop > end:
            need = stop - pos
            break
        key = bytes(buf[head + 1 : value])
        size = stop - value + 1
        if kind == 0:  # a plain string (not an integer, not LZF): its bytes as they are, for SET
            add(Entry(db, key, expire, Plain(buf[value + 1 + (buf[value] >= 0x40) : stop]), size))
        else:
            data = bytes((kind,)) + buf[value:stop] + stamps[kind]
            add(Entry(db, key, expire, data + _CRC.calc(data).to_bytes(8, "little"), size))
        pos, expire, taken = stop, -1, taken + size
    reader.pos = pos
    return run, taken, need


def _after_slot_note(buf: bytearray, at: int, end: int) -> int | None:
    """Where the cluster node's slot note at ``at`` ends; None when there is none there whole.

    An opcode of three lengths, or an auxiliary field whose name and value are each a length and its bytes.
    """
    if buf[at] == _SLOT_INFO:
        return _after_lengths(buf, at + 1, end, 3)
    return _after_strings(buf, at + 1, end, 2) if buf[at] == _AUX else None


def _after_short_string(buf: bytearray, at: int, end: int) -> int | None:
    """Where the string at ``at`` ends when its length takes one or two bytes and both lie before ``end``, else None.

    The end returned can lie past ``end``: the string is cut by the buffer's end.
    """
    first = buf[at] if at + 2 <= end else 0xFF
    if first < 0x40:
        return at + 1 + first
    if first < 0x80:
        return at + 2 + (((first & 0x3F) << 8) | buf[at + 1])
    return None


def _after_lengths(buf: bytearray, at: int, end: int, count: int) -> int | None:
    """Where ``count`` RDB lengths from ``at`` end, as :meth:`_Reader.length` reads them.

    None when they do not all end by ``end``, or one is not a length.
    """
    for _ in range(count):
        read = _length_at(buf, at, end)
        if read is None:
            return None
        at = read[1]
    return at


def _after_strings(buf: bytearray, at: int, end: int, count: int) -> int | None:
    """Where ``count`` RDB strings from ``at`` end, each a length and its bytes.

    None when they do not all end by ``end``, or one is encoded otherwise (an integer, LZF: the general path's).
    """
    for _ in range(count):
        read = _length_at(buf, at, end)
        if read is None or end - read[1] < read[0]:
            return None
        at = read[1] + read[0]
    return at


def _length_at(buf: bytearray, at: int, end: int) -> tuple[int, int] | None:
    """The RDB length at ``at`` and where it ends; None when it does not end by ``end``, or is no length."""
    first = buf[at] if at < end else 0xFF
    width = 1 if first < 0x40 else 2 if first < 0x80 else 5 if first == 0x80 else 9 if first == 0x81 else 0
    if not width or end - at < width:
        return None
    value = first & 0x3F if width <= 2 else 0
    return int.from_bytes(buf[at + 1 : at + width], "big") | (value << (8 * (width - 1))), at + width


def _entry(reader: _Reader, kind: int, db: int, expire: int, stamp: bytes) -> Entry:
    key = reader.string()
    start = reader.capture()
    _skip_value(reader, kind)
    size = reader.offset() - start + 1
    with reader.captured() as body:
        if body is None:
            return Entry(db, key, expire, None, size)
        if kind == 0 and body[0] < 0xC0 and len(body) <= _READ:  # a plain string (not an integer, not LZF)
            # its bytes for SET; a bigger one goes as its payload, built in one copy where Plain takes two
            return Entry(db, key, expire, Plain(body[_LENGTH_WIDTH[body[0] >> 6] + (body[0] == 0x81) * 4 :]), size)
        head = bytes((kind,))
        crc = _CRC.calc(stamp, _CRC.calc(body, _CRC.calc(head)))
        return Entry(db, key, expire, b"".join((head, body, stamp, crc.to_bytes(8, "little"))), size)


def _end(reader: _Reader, mark: bytes) -> None:
    if mark and reader.take(40) != mark:
        raise SnapshotRefused("its snapshot did not end with the mark its preamble announced")


def _opcode(reader: _Reader, kind: int) -> None:
    """Skip an opcode that is not a key: auxiliary fields, sizes, LRU/LFU hints, functions, module data."""
    if kind == _AUX:
        reader.skip_string()
        reader.skip_string()
    elif kind == _RESIZEDB:
        reader.length()
        reader.length()
    elif kind == _SLOT_INFO:
        reader.length()
        reader.length()
        reader.length()
    elif kind == _IDLE:
        reader.length()
    elif kind == _FREQ:
        reader.take(1)
    elif kind == _FUNCTION2:
        reader.skip_string()
    elif kind == _MODULE_AUX:
        reader.length()  # module id
        reader.length()  # when
        _skip_module_opcodes(reader)
    else:
        raise ValueError(f"unknown RDB opcode {kind:#x}")


def _skip_value(reader: _Reader, kind: int) -> None:
    """Move past one value of object type ``kind`` without decoding it."""
    if kind in _ONE_STRING:
        reader.skip_string()
        return
    skip = _SKIP.get(kind)
    if skip is None:
        raise ValueError(f"object type {kind} is not one RDB {MAX_VERSION} knows")
    skip(reader, kind)


def _skip_strings(reader: _Reader, kind: int) -> None:
    """A list, set or quicklist: n strings; a hash: n field-value pairs."""
    for _ in range(reader.length() * (2 if kind == 4 else 1)):
        reader.skip_string()


def _skip_zset(reader: _Reader, kind: int) -> None:
    """Members with scores: a binary double (zset 2), or a string of one length byte (253-255: nan, +inf, -inf)."""
    for _ in range(reader.length()):
        reader.skip_string()
        if kind == 5:
            reader.take(8)
            continue
        width = reader.byte()
        if width < 253:
            reader.take(width)


def _skip_quicklist2(reader: _Reader, _kind: int) -> None:
    for _ in range(reader.length()):  # container kind, node
        reader.length()
        reader.skip_string()


def _skip_module(reader: _Reader, _kind: int) -> None:
    reader.length()  # module id
    _skip_module_opcodes(reader)


def _skip_stream(reader: _Reader, kind: int) -> None:
    for _ in range(reader.length()):  # listpacks: master id, listpack
        reader.skip_string()
        reader.skip_string()
    lengths = 3 + (5 if kind >= 19 else 0)  # items, last id; first id, max deleted id, entries added
    for _ in range(lengths):
        reader.length()
    for _ in range(reader.length()):  # consumer groups
        reader.skip_string()
        for _ in range(3 if kind >= 19 else 2):  # last id, entries read
            reader.length()
        for _ in range(reader.length()):  # pending entries: id, delivery time, delivery count
            reader.take(24)
            reader.length()
        for _ in range(reader.length()):  # consumers: name, seen time, active time, their pending ids
            reader.skip_string()
            reader.take(16 if kind >= 21 else 8)
            for _ in range(reader.length()):
                reader.take(16)


_SKIP: dict[int, Callable[[_Reader, int], None]] = {
    **dict.fromkeys((1, 2, 4, 14), _skip_strings),
    **dict.fromkeys((3, 5), _skip_zset),
    _LIST_QUICKLIST_2: _skip_quicklist2,
    **dict.fromkeys((15, 19, 21), _skip_stream),
    7: _skip_module,
}


def _skip_module_opcodes(reader: _Reader) -> None:
    while True:
        opcode = reader.length()
        if opcode == 0:
            return
        if opcode in (1, 2):
            reader.length()
        elif opcode == 3:
            reader.take(4)
        elif opcode == 4:
            reader.take(8)
        elif opcode == 5:
            reader.skip_string()
        else:
            raise ValueError(f"unknown module opcode {opcode}")


class _Reader:
    """The stream's bytes in a buffer holding the value being read, up to ``limit`` bytes of it.

    Past ``limit`` the value is no longer kept: the rest of it is read and dropped, so a value of any size
    passes through a bounded buffer.
    """

    def __init__(self, recv: Callable[[], bytes | memoryview], limit: int) -> None:
        self.recv, self.limit = recv, limit
        self.buf = bytearray()
        self.pos = 0
        self.dropped = 0  # bytes of the stream already dropped from the buffer's front
        self.capturing = False
        self._start = 0  # where the value being captured starts in the buffer

    def offset(self) -> int:
        """How many bytes of the stream were read."""
        return self.dropped + self.pos

    def capture(self) -> int:
        """Keep the bytes read from now on (a value), up to the limit; returns the stream offset they start at."""
        self.capturing, self._start = True, self.pos
        return self.offset()

    @contextlib.contextmanager
    def captured(self) -> Iterator[memoryview | None]:
        """A view of the bytes kept since :meth:`capture` (None when the value outgrew the limit), until exit.

        A view, not a copy: a value is copied once, into its payload. The buffer cannot grow while it is held;
        a big value leaves it on exit, so that only its payload holds it while the caller works on it.
        """
        capturing, self.capturing = self.capturing, False
        if not capturing or self.pos - self._start > self.limit:
            yield None
            return
        with memoryview(self.buf) as view, view[self._start : self.pos] as kept:
            yield kept
        if self.pos - self._start > _READ:
            self._drop_before(self.pos)

    def _drop_before(self, offset: int) -> None:
        """Drop the buffer's bytes before ``offset``."""
        del self.buf[:offset]
        self.pos -= offset
        self._start -= offset
        self.dropped += offset

    def fill(self, need: int) -> None:
        """Read until ``need`` bytes lie past ``pos``, dropping what is no longer needed first."""
        if self.capturing and len(self.buf) - self._start > self.limit:
            self.capturing = False
        keep_from = self._start if self.capturing else self.pos
        if keep_from:
            self._drop_before(keep_from)
        while len(self.buf) - self.pos < need:
            chunk = self.recv()
            if not chunk:
                raise IndexError("the stream ended")
            self.buf += chunk

    def byte(self) -> int:
        """The next byte."""
        if self.pos >= len(self.buf):
            self.fill(1)
        value = self.buf[self.pos]
        self.pos += 1
        return value

    def take(self, count: int) -> bytes:
        """The next ``count`` bytes (only for small fields: keys and fixed-size numbers)."""
        if count > self.limit:
            raise ValueError(f"a field of {count} bytes, over {self.limit} (a key or a length out of bounds)")
        if len(self.buf) - self.pos < count:
            self.fill(count)
        start = self.pos
        self.pos += count
        return bytes(self.buf[start : self.pos])

    def skip(self, count: int) -> None:
        """Move past ``count`` bytes, holding at most a read's worth of them once capturing stopped."""
        while len(self.buf) - self.pos < count:
            available = len(self.buf) - self.pos
            count -= available
            self.pos = len(self.buf)
            self.fill(min(count, _READ))
        self.pos += count

    def length(self) -> int:
        """An RDB length (6, 14, 32 or 64 bits); a special encoding raises ValueError."""
        first = self.byte()
        kind = first >> 6
        if kind == 0:
            return first
        if kind == 1:
            return ((first & 0x3F) << 8) | self.byte()
        if first == 0x80:
            return int.from_bytes(self.take(4), "big")
        if first == 0x81:
            return int.from_bytes(self.take(8), "big")
        raise ValueError(f"a length was expected, not the special encoding {first:#x}")

    def skip_string(self) -> None:
        """Move past one RDB string, whatever its encoding."""
        first = self.byte()
        kind = first >> 6
        if kind == 0:
            self.skip(first)
        elif kind == 1:
            self.skip(((first & 0x3F) << 8) | self.byte())
        elif first == 0x80:
            self.skip(int.from_bytes(self.take(4), "big"))
        elif first == 0x81:
            self.skip(int.from_bytes(self.take(8), "big"))
        elif kind == 2:
            raise ValueError(f"unknown string encoding {first:#x}")
        else:
            special = first & 0x3F
            if special == 3:  # LZF: compressed length, plain length, compressed bytes
                compressed = self.length()
                self.length()
                self.skip(compressed)
            elif special in _INT_WIDTH:
                self.skip(_INT_WIDTH[special])
            else:
                raise ValueError(f"unknown string encoding {first:#x}")

    def string(self) -> bytes:
        """One RDB string decoded (a key): integer and LZF encodings turned back into its bytes."""
        first = self.byte()
        kind = first >> 6
        if kind != 3:
            self.pos -= 1
            return self.take(self.length())
        special = first & 0x3F
        if special == 3:
            compressed = self.length()
            plain = self.length()
            if plain > self.limit or plain > _LZF_MOST * compressed + 64:
                raise ValueError(f"an LZF string of {plain} bytes from {compressed}")
            return lzf_decompress(self.take(compressed), plain)
        width = _INT_WIDTH.get(special)
        if width is None:
            raise ValueError(f"unknown string encoding {first:#x}")
        return str(int.from_bytes(self.take(width), "little", signed=True)).encode()


def older_payload(payload: bytes, version: int) -> bytes | None:
    """A payload of a type RDB 10 lacks, rewritten as one it has, stamped ``version`` (10); None when not possible.

    A listpack set (type 20) becomes a plain set (type 2: its members as strings); a stream whose consumers carry
    an active time (type 21) becomes a stream of type 19 without it (RDB 10 has no such field). Both hold the same
    data for the target, which re-encodes them as it loads them.
    """
    if version != 10 or len(payload) < 11:
        return None
    kind, body = payload[0], payload[1:-10]
    try:
        if kind == 20:
            rewritten = bytes((2,)) + _set_from_listpack(body)
        elif kind == 21:
            rewritten = bytes((19,)) + _stream_without_active_times(body)
        else:
            return None
    except (IndexError, ValueError):
        return None  # not what it claims to be: rebuilt by type instead
    rewritten += struct.pack("<H", version)
    return rewritten + int(_CRC.calc(rewritten)).to_bytes(8, "little")


def same_data(left: bytes, right: bytes) -> bool:
    """Whether two DUMP bodies (type byte and value, no footer) of a set or a stream hold the same data.

    Their encodings may differ, as across engines: a listpack set against a hash table set or an intset, a stream
    with consumer active times against one without. False for anything else, or anything that does not read.
    """
    try:
        left_data, right_data = _canonical(left), _canonical(right)
    except (IndexError, ValueError):
        return False
    return left_data is not None and left_data == right_data


def _canonical(body: bytes) -> tuple[str, object] | None:
    kind = body[0] if body else -1
    if kind in _SET_TYPES:
        return "set", frozenset(_set_members(kind, body[1:]))
    if kind == 21:
        return "stream", _stream_without_active_times(body[1:])
    if kind == 19:
        return "stream", body[1:]
    return None


_SET_TYPES = frozenset({2, 11, 20})


def set_members(body: bytes) -> list[bytes] | None:
    """The members of a set's DUMP body (type byte and value, no footer).

    None for another type, or for a body that does not read as a set.
    """
    if not body or body[0] not in _SET_TYPES:
        return None
    try:
        return _set_members(body[0], body[1:])
    except (IndexError, ValueError):
        return None


def _set_members(kind: int, value: bytes) -> list[bytes]:
    """The members of a plain set (2), an intset (11) or a listpack set (20), as strings."""
    reader = _body_reader(value)
    if kind == 2:
        members = _strings(reader, value)
    elif kind == 20:
        members = listpack_entries(reader.string())
    else:
        members = _intset_members(reader.string())
    if reader.pos != len(value):
        raise ValueError("bytes after the set")
    return members


def _strings(reader: _Reader, value: bytes) -> list[bytes]:
    """A count, then that many RDB strings from ``reader`` over ``value``: short plain ones sliced as they are."""
    count = reader.length()
    pos, strings = reader.pos, []
    for _ in range(count):
        first = value[pos]
        stop = pos + 1 + first
        if first < 0x40 and stop <= len(value):
            strings.append(value[pos + 1 : stop])
            pos = stop
        else:  # a longer length, an integer or LZF: decoded
            reader.pos = pos
            strings.append(reader.string())
            pos = reader.pos
    reader.pos = pos
    return strings


def _intset_members(blob: bytes) -> list[bytes]:
    width, count = int.from_bytes(blob[:4], "little"), int.from_bytes(blob[4:8], "little")
    if width not in (2, 4, 8) or len(blob) != 8 + width * count:
        raise ValueError("not an intset")
    return [b"%d" % int.from_bytes(blob[at : at + width], "little", signed=True) for at in range(8, len(blob), width)]


def _body_reader(body: bytes) -> _Reader:
    reader = _Reader(lambda: b"", REWRITE_MOST)  # the whole body is there: a length past it ends the read
    reader.buf = bytearray(body)
    return reader


def _set_from_listpack(body: bytes) -> bytes:
    """A listpack set's body as a plain set's: its members' count, then each as a string (encoded as it is read)."""
    reader = _body_reader(body)
    blob = reader.string()
    if reader.pos != len(body):
        raise ValueError("bytes after the listpack")
    del reader
    members, count = bytearray(), 0
    for member in _listpack_walk(blob):
        size = len(member)
        members += _SHORT_LENGTHS[size] if size < 0x40 else _length(size)
        members += member
        count += 1
    return _length(count) + members


def _stream_without_active_times(body: bytes) -> bytes:
    """The stream's body with each consumer's 8-byte active time cut out (the rest is the same in type 19)."""
    reader = _body_reader(body)
    cuts: list[int] = []
    for _ in range(reader.length()):
        reader.skip_string()
        reader.skip_string()
    for _ in range(8):
        reader.length()
    for _ in range(reader.length()):  # consumer groups
        reader.skip_string()
        for _ in range(3):
            reader.length()
        for _ in range(reader.length()):
            reader.take(24)
            reader.length()
        for _ in range(reader.length()):  # consumers: name, seen time, active time (cut), pending ids
            reader.skip_string()
            reader.take(8)
            cuts.append(reader.pos)
            reader.take(8)
            for _ in range(reader.length()):
                reader.take(16)
    if reader.pos != len(body):
        raise ValueError("bytes after the stream")
    pieces, start = [], 0
    for cut in cuts:
        pieces.append(body[start:cut])
        start = cut + 8
    return b"".join(pieces) + body[start:]


_SHORT_LENGTHS = tuple(bytes((n,)) for n in range(0x40))  # the RDB lengths of one byte


def _length(n: int) -> bytes:
    """An RDB length."""
    if n < 0x40:
        return _SHORT_LENGTHS[n]
    if n < 0x4000:
        return bytes((0x40 | n >> 8, n & 0xFF))
    return b"\x80" + n.to_bytes(4, "big")


def listpack_entries(blob: bytes) -> list[bytes]:
    """The entries of a listpack, integers as their decimal strings."""
    return list(_listpack_walk(blob))


def _listpack_walk(blob: bytes) -> Iterator[bytes]:
    """Each entry of a listpack in turn; ValueError (after the entries before) when it is not a listpack."""
    if len(blob) < 7 or int.from_bytes(blob[:4], "little") != len(blob) or blob[-1] != 0xFF:
        raise ValueError("not a listpack")
    pos, end = 6, len(blob) - 1
    while pos < end:
        first = blob[pos]
        if 0x80 <= first < 0xC0:  # the usual member: a string of up to 63 bytes, its back length one byte
            stop = pos + 1 + (first & 0x3F)
            if stop > end:
                raise ValueError("a listpack string runs past its end")
            yield blob[pos + 1 : stop]
            pos = stop + 1
            continue
        value, size = _listpack_entry(blob, pos)
        yield value
        pos += size + _backlen_width(size)
    if pos != end:
        raise ValueError("a listpack entry runs past its end")


def _listpack_entry(blob: bytes, pos: int) -> tuple[bytes, int]:
    """One entry at ``pos``: its value, and its encoded size without the back length."""
    first = blob[pos]
    if first < 0x80:
        return b"%d" % first, 1
    if first < 0xC0:
        return _text(blob, pos + 1, first & 0x3F), 1 + (first & 0x3F)
    if first < 0xE0:
        return b"%d" % _signed(((first & 0x1F) << 8) | blob[pos + 1], 13), 2
    if first < 0xF0:
        size = ((first & 0x0F) << 8) | blob[pos + 1]
        return _text(blob, pos + 2, size), 2 + size
    if first == 0xF0:
        size = int.from_bytes(blob[pos + 1 : pos + 5], "little")
        return _text(blob, pos + 5, size), 5 + size
    width = {0xF1: 2, 0xF2: 3, 0xF3: 4, 0xF4: 8}.get(first)
    if width is None:
        raise ValueError(f"unknown listpack encoding {first:#x}")
    raw = int.from_bytes(blob[pos + 1 : pos + 1 + width], "little")
    return b"%d" % _signed(raw, width * 8), 1 + width


def _text(blob: bytes, start: int, size: int) -> bytes:
    if start + size > len(blob):
        raise ValueError("a listpack string runs past its end")
    return blob[start : start + size]


def _signed(value: int, bits: int) -> int:
    return value - (1 << bits) if value >= 1 << (bits - 1) else value


def _backlen_width(size: int) -> int:
    return 1 if size < 128 else 2 if size < 16384 else 3 if size < 2097152 else 4 if size < 268435456 else 5


_INT_WIDTH = {0: 1, 1: 2, 2: 4}
#: Bytes of an RDB length by its first two bits (0x81, a 64-bit length, takes 4 more than 0x80)
_LENGTH_WIDTH = {0: 1, 1: 2, 2: 5}


#: A string decoded inside a payload being rewritten or compared (a listpack, LZF-compressed or not) is at most this
#: big; a bigger one is not rewritten (the key is rebuilt by type instead). Listpacks are small by design: a server
#: turns a set past ``set-max-listpack-entries`` (128) into a hash table.
REWRITE_MOST = 32 * 1024 * 1024

#: LZF writes at most 264 bytes from a 3-byte back reference: a string claiming more per compressed byte lies.
_LZF_MOST = 100


def lzf_decompress(data: bytes, size: int) -> bytes:
    """LZF-decompress ``data`` into ``size`` bytes: an RDB string (a key, a set member, a listpack blob).

    Data that would decompress past ``size`` stops there (an untrusted stream cannot make it grow unbounded).
    """
    try:
        out = _lzf(data, size)
    except IndexError:
        raise ValueError("LZF data cut short") from None
    if len(out) != size:
        raise ValueError(f"LZF data decompressed to {len(out)} bytes, not {size}")
    return bytes(out)


def _lzf(data: bytes, size: int) -> bytearray:
    out = bytearray()
    index, end = 0, len(data)
    while index < end:
        if len(out) > size:
            raise ValueError(f"LZF data decompresses past its {size} bytes")
        control = data[index]
        index += 1
        if control < 32:  # a literal run of control + 1 bytes
            out += data[index : index + control + 1]
            index += control + 1
            continue
        length = control >> 5
        if length == 7:
            length += data[index]
            index += 1
        back = ((control & 0x1F) << 8) + data[index] + 1
        index += 1
        count, start = length + 2, len(out) - back
        if start < 0:
            raise ValueError("an LZF back reference points before the start")
        if back >= count:
            out += out[start : start + count]
        else:  # it overlaps what it writes: its last ``back`` bytes repeat
            out += (out[start:] * (count // back + 1))[:count]
    return out
