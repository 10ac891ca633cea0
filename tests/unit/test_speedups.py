"""The copy's hot paths in C (``reproducer/data/_speedups.c``) against their Python twins.

The snapshot reader's common case reads untrusted bytes from a source's stream: on random, cut and corrupted
buffers it must return exactly what ``snapshot._small_run`` returns (the same keys, payloads with the same
checksums, the same position), and never read past the buffer. The rest of the reader's tests run on both paths
(``tests/unit/test_snapshot.py``). The writes' encoder must put on the wire exactly the bytes of
``copy._python_writes``, with each big value its own part (never copied).
"""

from __future__ import annotations

import importlib
import random
import struct
from pathlib import Path

import anycrc
import pytest

from reproducer.data import copy, snapshot, verify
from reproducer.data.dumpfmt import Plain
from reproducer.data.resp import DIRECT_SEND, GATHER, ReplyError
from reproducer.data.topology import SLOTS, Layout

_scan = snapshot._scan
_encode = copy._encode
SMALL_KINDS = sorted(snapshot._SMALL_KINDS)


def test_the_setup_built_the_compiled_paths():
    """``make setup`` installs a C compiler and builds the module: the tests then run both paths, not one twice."""
    compiled = (_scan, _encode, copy._snapshot_items_in_c, copy._route, verify._describe_in_c, verify._commands_in_c)
    compiled += (verify._snapshot_in_c, verify._identical_in_c)
    assert None not in compiled, "reproducer.data._speedups is missing: run `make setup`"
    module = Path(importlib.import_module("reproducer.data._speedups").__file__ or "")
    source = Path(snapshot.__file__).with_name("_speedups.c")
    if module.parent == source.parent:  # an editable install: built in place, and not before its source changed
        assert module.stat().st_mtime >= source.stat().st_mtime, f"{module.name} is older than its source: make setup"


def length(n: int) -> bytes:
    if n < 64:
        return bytes([n])
    if n < 16384:
        return bytes([0x40 | n >> 8, n & 0xFF])
    if n < 2**32:
        return b"\x80" + n.to_bytes(4, "big")
    return b"\x81" + n.to_bytes(8, "big")


def string(data: bytes) -> bytes:
    return length(len(data)) + data


STREAM_KINDS = (15, 19, 21)


def _stream_value(rng: random.Random, kind: int, listpacks: int | None = None) -> bytes:
    """A stream's value as RDB writes it (snapshot._skip_stream): listpacks, counters, consumer groups."""
    listpacks = rng.randrange(3) if listpacks is None else listpacks
    out = length(listpacks)
    for _ in range(listpacks):
        integers = [b"\xc0\x07", b"\xc1\x07\x00", b"\xc2" + bytes(4)]
        master = rng.choice([string(rng.randbytes(16)), *integers, b"\xc3" + length(3) + length(5) + b"abc"])
        out += master + string(rng.randbytes(rng.randrange(300)))
    for _ in range(3 + (5 if kind >= 19 else 0)):
        out += length(rng.choice([0, 5, 300, 70_000, 2**33]))
    groups = rng.randrange(3)
    out += length(groups)
    for _ in range(groups):
        out += string(b"group") + b"".join(length(rng.randrange(1000)) for _ in range(3 if kind >= 19 else 2))
        pending = rng.randrange(3)
        out += length(pending) + b"".join(rng.randbytes(24) + length(rng.randrange(5)) for _ in range(pending))
        consumers = rng.randrange(3)
        out += length(consumers)
        for _ in range(consumers):
            ids = rng.randrange(3)
            out += string(b"c") + rng.randbytes(16 if kind >= 21 else 8) + length(ids) + rng.randbytes(16 * ids)
    return out


def _value(rng: random.Random, kind: int) -> bytes:
    size = rng.choice([0, 1, 5, 62, 63, 64, 65, 300, rng.randrange(2000), rng.randrange(2000), 16383, 16384])
    first = rng.random()
    if first < 0.03:
        blob = b"\xc0" + bytes([rng.randrange(256)])  # an integer encoding: the general path's
    elif first < 0.05:
        blob = b"\xc3" + length(3) + length(5) + b"abc"  # LZF
    else:
        blob = length(size) + rng.randbytes(size)
    if kind == snapshot._LIST_QUICKLIST_2:
        nodes = 1 if rng.random() < 0.8 else rng.randrange(4)
        container = 2 if rng.random() < 0.8 else rng.randrange(4)
        return length(nodes) + length(container) + blob
    return blob


def _slot_note(rng: random.Random) -> bytes:
    """A cluster node's note before a slot's keys: three lengths, now and then one that is not a length."""
    lengths = [length(rng.choice([0, 63, 64, 16_383, 70_000, 2**40])) for _ in range(3)]
    if rng.random() < 0.1:
        lengths[rng.randrange(3)] = rng.choice([b"\xc0\x01", b"\x82", b"\x40"])
    return b"\xf4" + b"".join(lengths)


def _aux_field(rng: random.Random) -> bytes:
    """An auxiliary field (Valkey 8.0's slot note is one): two strings, now and then an integer, LZF or cut short."""
    fields = [string(b"slot-info"), string(rng.choice([b"0,1,0", b"16383,70000,2", rng.randbytes(rng.randrange(90))]))]
    roll = rng.random()
    if roll < 0.1:
        fields[rng.randrange(2)] = rng.choice([b"\xc0\x05", b"\xc1\x05\x00", b"\xc3\x02\x03\x01ab", b"\x82"])
    elif roll < 0.15:
        fields[1] = length(rng.choice([70, 70_000])) + b"short"
    return b"\xfa" + b"".join(fields)


def _record(rng: random.Random) -> bytes:
    roll = rng.random()
    if roll < 0.1:
        return _slot_note(rng)
    if roll < 0.2:
        return _aux_field(rng)
    expiry = b""
    if rng.random() < 0.3:
        expiry = b"\xfc" + struct.pack("<q", rng.choice([-5, 0, 1_900_000_000_000, -(2**63), 2**63 - 1]))
    roll = rng.random()
    if roll < 0.93:
        kind = rng.choice(SMALL_KINDS)
    elif roll < 0.97:
        kind = rng.choice([2, 4, 14, 0xFE, 0xFF, 0xFC])
    else:  # streams aside: the compiled reader takes them where _small_run leaves them to the general path
        kind = rng.choice([k for k in range(256) if k not in STREAM_KINDS])
    key = rng.randbytes(rng.choice([0, 1, 10, 62, 63, 64, 70]))
    return expiry + bytes([kind]) + length(len(key)) + key + _value(rng, kind)


def _buffer(rng: random.Random) -> bytes:
    data = bytearray(b"".join(_record(rng) for _ in range(rng.randrange(1, 30))))
    for _ in range(rng.choice([0, 0, 0, 1, 3])):  # corrupt a few bytes
        data[rng.randrange(len(data))] = rng.randrange(256)
    cut = rng.choice([len(data), rng.randrange(len(data) + 1)])
    return bytes(data[:cut])


def _whole_stream(rng: random.Random) -> bytes:
    """An RDB stream of random keys (short values, streams, sets, expiries, databases), sometimes cut or corrupted."""
    body = bytearray()
    for _ in range(rng.randrange(1, 40)):
        roll = rng.random()
        if roll < 0.35:
            kind = rng.choice(STREAM_KINDS)
            expiry = b"\xfc" + struct.pack("<q", 1_900_000_000_000) if rng.random() < 0.3 else b""
            body += expiry + bytes([kind]) + string(rng.randbytes(rng.choice([3, 63, 64]))) + _stream_value(rng, kind)
        elif roll < 0.45:
            body += b"\xfe" + length(rng.randrange(16))
        elif roll < 0.55:
            body += b"\x02" + string(b"set") + length(2) + string(b"a") + string(rng.randbytes(rng.randrange(80)))
        else:
            body += _record(rng)
    for _ in range(rng.choice([0, 0, 0, 1, 2])):
        body[rng.randrange(len(body))] = rng.randrange(256)
    data = b"\n$EOF:" + b"m" * 40 + b"\r\nREDIS0011" + bytes(body) + b"\xff" + bytes(8) + b"m" * 40
    return data if rng.random() < 0.85 else data[: rng.randrange(len(data))]


def _read_whole(data: bytes, limit: int, piece: int) -> object:
    """The entries of a whole stream read in pieces of ``piece`` bytes, or the error that ended it."""
    chunks = [data[i : i + piece] for i in range(0, len(data), piece)][::-1]
    source = snapshot._Source(lambda: chunks.pop() if chunks else b"")
    try:
        mark = snapshot._preamble(source)
        version = snapshot._header(source)
        return [_shape([e]) for e in snapshot.Snapshot(version, source.rest(), mark).entries(limit)]
    except snapshot.SnapshotBroken as exc:
        return ("broken", exc.message)
    except snapshot.SnapshotRefused as exc:
        return ("refused", exc.message)


@pytest.mark.parametrize("seed", range(40))
def test_the_reader_finds_the_same_keys_and_errors_with_the_compiled_run_as_without(seed, monkeypatch):
    """Streams included: the compiled run reads them whole from the buffer, the Python reader on its general path."""
    rng = random.Random(seed)
    for _ in range(40):
        data = _whole_stream(rng)
        limit, piece = rng.choice([20, 64, 1 << 20]), rng.choice([7, 300, 1 << 16])
        compiled = _read_whole(data, limit, piece)
        with monkeypatch.context() as python_only:
            python_only.setattr(snapshot, "_scan", None)
            assert compiled == _read_whole(data, limit, piece), (seed, data.hex())


def _python_run(data: bytes, pos: int, db: int, expire: int, stamps: tuple[bytes, ...], limit: int):
    reader = snapshot._Reader(lambda: b"", limit)
    reader.buf, reader.pos = bytearray(data), pos
    run, taken, need = snapshot._small_run(reader, db, expire, stamps)
    return run, reader.pos, taken, need


def _shape(run: list[snapshot.Entry]) -> list[tuple]:
    """Each entry's fields and types, and its payload's hash (the C reader builds a Plain as CPython would)."""
    return [(*entry, type(entry), type(entry.payload), hash(entry.payload)) for entry in run]


@pytest.mark.parametrize("seed", range(40))
def test_the_compiled_run_reads_what_the_python_run_reads_on_random_cut_and_corrupted_buffers(seed, monkeypatch):
    rng = random.Random(seed)
    for _ in range(100):
        data = _buffer(rng)
        pos = 0 if rng.random() < 0.8 else rng.randrange(len(data) + 1)
        stamps = tuple(rng.randbytes(2) for _ in range(256))
        limit = rng.choice([0, 1, 50, 64, 300, 1 << 20, 1 << 20, 1 << 20])
        most = rng.choice([1, 2, 7, 256])
        db, expire = rng.randrange(16), rng.choice([-1, 0, 1_700_000_000_000])
        monkeypatch.setattr(snapshot, "_RUN_MOST", most)
        expected, expected_pos, expected_taken, expected_need = _python_run(data, pos, db, expire, stamps, limit)
        run, end, taken, need = _scan(bytearray(data), pos, db, expire, stamps, limit, most, snapshot.Entry, Plain)
        got = (_shape(run), end, taken, need)
        assert got == (_shape(expected), expected_pos, expected_taken, expected_need), (seed, data.hex())


def test_payload_checksums_match_the_crc64_valkey_uses_at_every_length_around_the_eight_byte_steps():
    crc = anycrc.Model("CRC64-REDIS")
    stamps = (b"\x0b\x00",) * 256
    for size in range(0, 80):
        value = bytes(range(size))
        data = b"\x10" + length(1) + b"k" + length(size) + value + bytes(16)
        (entry,), _end, _taken, _need = _scan(data, 0, 0, -1, stamps, 1 << 20, 1, snapshot.Entry, Plain)
        body = b"\x10" + length(size) + value + b"\x0b\x00"
        assert entry.payload == body + crc.calc(body).to_bytes(8, "little"), size


def test_a_buffer_shorter_than_a_key_head_or_a_position_at_its_end_reads_nothing():
    stamps = (b"\x0b\x00",) * 256
    record = b"\x00" + length(1) + b"k" + length(1) + b"v"
    for data in (b"", record, record + bytes(9)):
        assert _scan(data, len(data), 0, -1, stamps, 1 << 20, 256, snapshot.Entry, Plain) == ([], len(data), 0, 0)
        assert _scan(data, 0, 0, -1, stamps, 1 << 20, 256, snapshot.Entry, Plain)[0] == []


@pytest.mark.parametrize(
    "position, stamps, entry_type",
    [(-1, 256, snapshot.Entry), (1, 256, snapshot.Entry), (0, 255, snapshot.Entry), (0, 256, dict), (0, 256, int)],
)
def test_arguments_it_cannot_use_are_a_value_error_not_a_crash(position, stamps, entry_type):
    with pytest.raises(ValueError, match=r"small_run\(buffer"):
        _scan(b"", position, 0, -1, (b"\x0b\x00",) * stamps, 1, 1, entry_type, Plain)


def test_a_stamp_that_is_not_two_bytes_is_a_value_error_for_a_payload_that_needs_it():
    data = b"\x10" + length(1) + b"k" + length(3) + b"abc" + bytes(16)
    with pytest.raises(ValueError, match="two bytes"):
        _scan(data, 0, 0, -1, (b"\x0b",) * 256, 1 << 20, 256, snapshot.Entry, Plain)


def _item(rng: random.Random, now: int) -> tuple[bytes, int, bytes]:
    key = rng.randbytes(rng.choice([0, 1, 9, 63, 64, 300, 70_000]))
    size = rng.choice([0, 1, 9, 450, DIRECT_SEND - 1, DIRECT_SEND, DIRECT_SEND + 1, 200_000, rng.randrange(5000)])
    value = rng.randbytes(size)
    deadline = rng.choice([0, 0, now - 10_000, now, now + 1, now + 2, now + 86_400_000, 2**61, 10**9])
    return key, deadline, Plain(value) if rng.random() < 0.6 else value


@pytest.mark.parametrize("seed", range(30))
def test_the_compiled_writes_are_the_python_writes_byte_for_byte_and_never_copy_a_big_value(seed):
    rng = random.Random(seed)
    now = rng.choice([0, 1, 5_000_000, 10**12])
    items = [_item(rng, now) for _ in range(rng.randrange(1, 40))]
    indexes = [rng.randrange(len(items)) for _ in range(rng.randrange(0, 60))]
    gather = rng.choice([1, 100, 4096, GATHER])
    for replace in (True, False):
        parts = _encode(items, indexes, now, replace, Plain, DIRECT_SEND, gather)
        assert b"".join(parts) == b"".join(copy._python_writes(items, indexes, now, replace))
        big = [items[i][2] for i in indexes if len(items[i][2]) >= DIRECT_SEND]
        assert [p for p in parts if any(p is value for value in big)] == big  # each one its own part, in order
        gathered = [p for p in parts if not any(p is value for value in big)]
        assert all(len(p) <= max(gather, 2 * DIRECT_SEND + 70_100) for p in gathered)


def test_writes_are_gathered_into_parts_of_at_most_the_gather_size():
    items = [(b"k%04d" % i, 0, Plain(b"v" * 400)) for i in range(3000)]
    parts = _encode(items, list(range(3000)), 0, True, Plain, DIRECT_SEND, 100_000)
    write = len(copy._python_writes(items, [0], 0, True)[0])
    assert all(100_000 - write < len(p) <= 100_000 for p in parts[:-1]) and len(parts) == 13


@pytest.mark.parametrize(
    "items, indexes, error",
    [
        ([(b"k", 0)], [0], TypeError),
        ([(b"k", 0, "text")], [0], TypeError),
        ([["k", 0, b"v"]], [0], TypeError),
        ([(b"k", "0", b"v")], [0], TypeError),
        ([(b"k", 0, b"v")], [1], IndexError),
        ([(b"k", 0, b"v")], [-1], IndexError),
        ([(b"k", 2**63, b"v")], [0], OverflowError),
        ([(b"k", 2**62 + 1, b"v")], [0], OverflowError),
    ],
)
def test_items_it_cannot_encode_raise_and_nothing_half_encoded_comes_out(items, indexes, error):
    with pytest.raises(error):
        _encode(items, indexes, 0, True, Plain, DIRECT_SEND, GATHER)


def test_a_deadline_past_what_c_holds_is_encoded_by_python_with_the_same_ttl(monkeypatch):
    monkeypatch.setattr(copy, "monotonic_ms", lambda: 1000)
    items = [(b"far", 2**70, Plain(b"v")), (b"near", 3000, b"\x00payload")]
    parts = copy._writes(items, [0, 1], True)
    assert b"".join(parts) == b"".join(copy._python_writes(items, [0, 1], 1000, True))
    assert b"$2\r\nPX\r\n$%d\r\n%d\r\n" % (len(str(2**70 - 1000)), 2**70 - 1000) in b"".join(parts)


def _entry(rng: random.Random, now: int) -> snapshot.Entry:
    expire = rng.choice([-1, -1, 0, now - 5, now, now + 1, now + 10**9, 2**62])
    payload = rng.choice([None, b"", b"\x00dump", Plain(b"value")])
    return snapshot.Entry(rng.randrange(16), rng.randbytes(5), expire, payload, rng.randrange(10**6))


@pytest.mark.parametrize("seed", range(20))
def test_the_compiled_snapshot_items_are_the_python_ones(seed):
    rng = random.Random(seed)
    now = rng.choice([0, 1_700_000_000_000])
    entries = [_entry(rng, now) for _ in range(rng.randrange(0, 200))]
    offset = rng.choice([0, 5, -(10**12), 10**12])
    expected = copy._python_snapshot_items(entries, now, offset)
    assert copy._snapshot_items_in_c(entries, now, offset) == expected
    assert [type(p) for _k, _d, p in copy._snapshot_items_in_c(entries, now, offset)[0]] == [
        type(p) for _k, _d, p in expected[0]
    ]


def test_an_expiry_whose_deadline_c_cannot_hold_goes_through_python_with_the_same_items(monkeypatch):
    monkeypatch.setattr(copy, "monotonic_ms", lambda: 0)
    entries = [snapshot.Entry(0, b"far", 2**63 - 1, b"\x00p", 3), snapshot.Entry(0, b"k", -1, Plain(b"v"), 2)]
    clock = copy.SourceClock(offset_ms=-(2**62), error_ms=1)
    with pytest.raises(OverflowError):
        copy._snapshot_items_in_c(entries, 0, -(2**62))
    items, delta, oversized = copy._snapshot_items(entries, clock, 0)
    assert items == [(b"far", 2**63 - 1 + 2**62, b"\x00p"), (b"k", 0, b"v")] and oversized == []
    assert (delta.scanned, delta.expired, delta.bytes) == (2, 0, 5)


@pytest.mark.parametrize("entries", [[(0, b"k", -1, b"v")], [[0, b"k", -1, b"v", 1]], [(0, b"k", "x", b"v", 1)]])
def test_entries_it_cannot_read_raise_a_type_error(entries):
    with pytest.raises(TypeError):
        copy._snapshot_items_in_c(entries, 0, 0)


@pytest.mark.parametrize("kind", STREAM_KINDS)
@pytest.mark.parametrize(
    "master", [string(b"0123456789abcdef"), b"\xc0\x07", b"\xc1\x07\x00", b"\xc2" + bytes(4), b"\xc3\x03\x05abc"]
)
def test_a_stream_the_buffer_holds_is_read_by_the_compiled_run_in_every_encoding_of_its_ids(kind, master):
    rng = random.Random(kind)
    value = length(1) + master + string(b"listpack") + _stream_value(rng, kind, listpacks=0)[1:]
    data = bytes([kind]) + string(b"events") + value
    stamps = (b"\x0b\x00",) * 256
    (entry,), end, taken, _need = _scan(data + bytes(16), 0, 0, -1, stamps, 1 << 20, 1, snapshot.Entry, Plain)
    body = bytes([kind]) + value + b"\x0b\x00"
    assert entry.payload == body + anycrc.Model("CRC64-REDIS").calc(body).to_bytes(8, "little")
    assert (entry.key, end, taken) == (b"events", len(data), len(value) + 1)


def _layout(rng: random.Random) -> Layout:
    primaries = [(f"10.0.0.{n}", 6379) for n in range(rng.randrange(1, 5))]
    return Layout(cluster=True, primaries=primaries, slot_owner=[rng.randrange(len(primaries)) for _ in range(SLOTS)])


def _key(rng: random.Random) -> bytes:
    tag = rng.choice([b"", b"{user1}", b"{}", b"{", b"}", b"{a}{b}", b"}{x}", rng.randbytes(3)])
    return rng.randbytes(rng.randrange(6)) + tag + rng.randbytes(rng.randrange(6))


@pytest.mark.parametrize("seed", range(20))
def test_the_compiled_routing_sends_each_key_to_the_primary_of_its_slot_as_python_does(seed):
    rng = random.Random(seed)
    layout = _layout(rng)
    items = [(_key(rng), 0, b"") for _ in range(rng.randrange(1, 300))]
    assert copy._by_node(items, layout) == copy._python_by_node(items, layout)
    for node, indexes in copy._by_node(items, layout).items():
        assert all(layout.node_for_key(items[i][0]) == node for i in indexes)
    assert sorted(i for group in copy._by_node(items, layout).values() for i in group) == list(range(len(items)))


@pytest.mark.parametrize("count", [0, 1, 4095, 4096, 4097, 6000])
def test_the_compiled_routing_agrees_with_python_past_the_indexes_it_keeps(count):
    rng = random.Random(count)
    layout = _layout(rng)
    items = [(_key(rng), 0, b"") for _ in range(count)]
    assert copy._by_node(items, layout) == copy._python_by_node(items, layout)


def test_the_compiled_routing_hands_out_kept_indexes_not_a_new_int_a_key():
    items = [(b"key-%d" % n, 0, b"") for n in range(1000)]
    first, again = copy._route(items, [0] * SLOTS, 1)[0], copy._route(items, [0] * SLOTS, 1)[0]
    assert first == again == list(range(1000))
    assert all(a is b for a, b in zip(first, again, strict=True))


def test_an_item_that_is_no_keyed_tuple_is_a_type_error_wherever_it_is():
    for bad in ([(b"k", 0, b""), ("text", 0, b"")], [[b"k", 0, b""]], [(b"k", 0, b"")] * 5000 + [()]):
        with pytest.raises(TypeError, match="an item is"):
            copy._route(bad, [0] * SLOTS, 1)


def test_a_slot_table_it_cannot_use_is_a_value_error():
    with pytest.raises(ValueError, match="16384"):
        copy._route([(b"k", 0, b"")], [0] * 100, 1)
    with pytest.raises(ValueError, match="has no primary"):
        copy._route([(b"k", 0, b"")], [5] * SLOTS, 2)


def _reply(rng: random.Random) -> object:
    roll = rng.random()
    if roll < 0.5:
        size = rng.choice([0, 1, 5, 9, 10, 11, 300, 4095, 4096, 5000])
        return bytes([rng.choice([0, 1, 2, 4, 5, 15, 16, 20, 21, 6, 7, 99])]) + rng.randbytes(max(size - 1, 0))
    if roll < 0.6:
        return ReplyError("WRONGTYPE Operation against a key holding the wrong kind of value")
    if roll < 0.7:
        return [rng.randbytes(rng.randrange(1, 9)) for _ in range(rng.randrange(0, 4))]
    if roll < 0.8:
        return [rng.randbytes(3000) for _ in range(2)]  # members past the digest size
    return rng.choice([None, [], b"string", b"hash", 0])


@pytest.mark.parametrize("seed", range(20))
def test_the_compiled_description_of_a_group_is_the_python_one(seed):
    rng = random.Random(seed)
    keys = [b"k%d" % i for i in range(rng.randrange(0, 80))]
    replies = [part for _ in keys for part in (rng.choice([-2, -1, 0, 5000]), _reply(rng))]
    reads = {key: rng.choice([verify._GET, verify._SMEMBERS]) for key in keys if rng.random() < 0.5}
    big = {key: rng.randrange(10**9) for key in keys if rng.random() < 0.1} or None
    python = verify._python_describe(keys, replies, reads, big)
    compiled = verify._describe_in_c(
        keys, replies, reads, big, verify._GET, verify._PAYLOAD_TYPES, verify._MISREAD, verify._BIG,
        verify._DIGEST_FROM, verify._FOOTER, verify._digest, verify._members, ReplyError,
    )  # fmt: skip
    assert compiled == python
    assert [[type(part) for part in info] for info in compiled.values()] == [
        [type(part) for part in info] for info in python.values()
    ]


def test_a_group_whose_replies_do_not_pair_with_its_keys_is_a_value_error():
    with pytest.raises(ValueError, match="two replies a key"):
        verify._describe_in_c(
            [b"k"], [0], {}, None, verify._GET, {}, None, None, 4096, 10, verify._digest, verify._members, ReplyError
        )


def _snapshot_entry(rng: random.Random, now: int) -> snapshot.Entry:
    expire = rng.choice([-1, -1, 0, now - 5, now, now + 1, now + 10**9])
    size = rng.choice([0, 1, 9, 10, 11, 300, 4095, 4096, 5000])
    dump = bytes([rng.choice([0, 2, 4, 15, 16, 20, 99])]) + rng.randbytes(max(size - 1, 0))
    payload = rng.choice([None, dump[:size], Plain(rng.randbytes(size))])
    return snapshot.Entry(0, b"k%d" % rng.randrange(10**6), expire, payload, rng.randrange(1, 10**9))


def _snapshot_described_in_c(entries: list[snapshot.Entry], now: int) -> tuple:
    return verify._snapshot_in_c(
        entries, now, verify._GET, Plain, verify._PAYLOAD_TYPES, verify._BIG, verify._DIGEST_FROM, verify._FOOTER,
        verify._digest,
    )  # fmt: skip


@pytest.mark.parametrize("seed", range(20))
def test_the_compiled_description_of_a_snapshot_batch_is_the_python_one(seed):
    """Expired keys left out, plain strings read with GET, payloads by their body or its digest, big keys marked."""
    rng = random.Random(seed)
    now = 1_700_000_000_000
    entries = [_snapshot_entry(rng, now) for _ in range(rng.randrange(0, 120))]
    python = verify._python_snapshot_described(entries, now)
    compiled = _snapshot_described_in_c(entries, now)
    assert compiled == python
    assert [[type(part) for part in info] for info in compiled[3].values()] == [
        [type(part) for part in info] for info in python[3].values()
    ]
    kept = [entry.key for entry in entries if not 0 <= entry.expire_ms <= now]
    assert compiled[0] == kept


def test_a_snapshot_batch_leaves_out_what_expired_and_dates_ttls_from_the_source_clock():
    entries = [
        snapshot.Entry(0, b"gone", 999, b"\x00\x01v" + bytes(10), 13),
        snapshot.Entry(0, b"now", 1000, Plain(b"v"), 1),
        snapshot.Entry(0, b"later", 1500, Plain(b"v"), 1),
        snapshot.Entry(0, b"big", -1, None, 10**9),
        snapshot.Entry(0, b"hash", -1, b"\x10body" + bytes(10), 15),
    ]
    for described in (verify._python_snapshot_described(entries, 1000), _snapshot_described_in_c(entries, 1000)):
        group, reads, big, info = described
        assert group == [b"later", b"big", b"hash"] and reads == {b"later": verify._GET} and big == {b"big": 10**9}
        assert info == {
            b"later": (b"string", 500, b"v", 1),
            b"big": (None, -1, verify._BIG, 10**9),
            b"hash": (b"hash", -1, b"\x10body", 15),
        }


def test_an_expiry_past_what_c_holds_is_described_by_python():
    entries = [snapshot.Entry(0, b"far", 2**63 - 1, Plain(b"v"), 1)]
    with pytest.raises(OverflowError):
        _snapshot_described_in_c(entries, -(2**62))
    assert verify._snapshot_described(entries, -(2**62))[3] == {b"far": (b"string", 2**63 - 1 + 2**62, b"v", 1)}


@pytest.mark.parametrize("seed", range(20))
def test_the_compiled_describe_commands_are_the_python_ones_byte_for_byte(seed):
    rng = random.Random(seed)
    keys = [rng.randbytes(rng.choice([0, 1, 9, 10, 100, 70_000])) for _ in range(rng.randrange(0, 60))]
    reads = {key: rng.choice([verify._GET, verify._SMEMBERS]) for key in keys if rng.random() < 0.5}
    big = {key: 1 for key in keys if rng.random() < 0.2} or None
    expected = verify._python_describe_commands(keys, reads, big)
    assert verify._commands_in_c(keys, reads, big, verify._DUMP, verify._TYPE) == expected
    assert expected.count(b"PTTL") >= len(keys)


@pytest.mark.parametrize(
    ("keys", "reads", "big"), [(["k"], {}, None), ([b"k"], {b"k": "GET"}, None), ([b"k"], {}, [b"k"])]
)
def test_describe_commands_refuse_what_they_cannot_encode_with_a_type_error(keys, reads, big):
    with pytest.raises(TypeError):
        verify._commands_in_c(keys, reads, big, verify._DUMP, verify._TYPE)


def _pair(rng: random.Random) -> tuple[tuple, tuple]:
    kind = rng.choice([b"string", b"hash", b"none", None, "text"])
    value = rng.choice([b"v", b"w", verify._Hashed(b"d" * 20), frozenset({b"m"}), verify._MISREAD, verify._BIG, None])
    pttl = rng.choice([-2, -1, 0, 10, 2000, 2**64])
    other = (
        rng.choice([kind, b"string"]),
        rng.choice([pttl, -1, pttl + 900, pttl + 1001, "x"]),
        rng.choice([value, b"v"]),
        0,
    )
    return (kind, pttl, value, 1), other


@pytest.mark.parametrize("seed", range(20))
def test_the_compiled_count_of_identical_keys_is_the_python_one(seed):
    rng = random.Random(seed)
    keys = [b"k%d" % i for i in range(rng.randrange(0, 200))]
    pairs = {key: _pair(rng) for key in keys}
    src = {key: pair[0] for key, pair in pairs.items()}
    dst = {key: pair[1] for key, pair in pairs.items()}
    slack = rng.choice([0, 1000])
    compiled = verify._identical_in_c(keys, src, dst, slack, verify._MISREAD, verify._BIG)
    assert compiled == _python_identical_or_others(keys, src, dst, slack)


def _python_identical_or_others(keys, src, dst, slack):
    """The Python twin, where a pair it cannot compare (a text TTL, past 64 bits) goes with the others, as in C."""
    identical: dict[bytes, int] = {}
    others = []
    for key in keys:
        try:
            counted, _ = verify._python_identical([key], src, dst, slack)
        except TypeError:
            counted = {}
        if counted and all(isinstance(src[key][1], int) and abs(p) < 2**63 for p in (src[key][1], dst[key][1])):
            for kind, count in counted.items():
                identical[kind] = identical.get(kind, 0) + count
        else:
            others.append(key)
    return identical, others


def test_identical_keys_are_counted_and_every_other_key_kept_in_order():
    src = {b"a": (b"hash", -1, b"x", 1), b"b": (b"hash", 100, b"x", 1), b"c": (b"string", 5, b"y", 1)}
    dst = {b"a": (b"hash", -1, b"x", 1), b"b": (b"hash", 1101, b"x", 1), b"c": (b"string", -1, b"y", 1)}
    for twin in (verify._python_identical, lambda *a: verify._identical_in_c(*a, verify._MISREAD, verify._BIG)):
        assert twin([b"a", b"b", b"c"], src, dst, 1000) == ({b"hash": 1}, [b"b", b"c"])
        assert twin([b"a", b"b", b"c"], src, dst, 1001) == ({b"hash": 2}, [b"c"])
