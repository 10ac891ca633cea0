"""The RDB stream reader on streams built by hand: what a source sends is untrusted, so every way a stream can be
wrong ends in a clear error (never a traceback, never unbounded memory), and the right ones cut exactly."""

from __future__ import annotations

import itertools
import random
import sys
import tracemalloc
from collections.abc import Callable, Iterator
from functools import partial
from types import FrameType

import pytest

from reproducer.data import snapshot
from reproducer.data.dumpfmt import Plain, crc64
from tests.support.speedups import on_both_paths

MARK = b"m" * 40


#: Each test reads with the compiled common case (``_speedups.c``) and with the Python one.
reader_path = on_both_paths(snapshot, "_scan")


def length(n: int) -> bytes:
    if n < 64:
        return bytes([n])
    if n < 16384:
        return bytes([0x40 | n >> 8, n & 0xFF])
    return b"\x80" + n.to_bytes(4, "big")


def string(data: bytes) -> bytes:
    return length(len(data)) + data


def stream(*body: bytes, header: bytes = b"REDIS0011", mark: bytes = MARK) -> bytes:
    preamble = b"\n\n$EOF:" + mark + b"\r\n"
    return preamble + header + b"".join(body) + b"\xff" + bytes(8) + mark


def read(data: bytes, limit: int = 1 << 20, piece: int = 3) -> list[snapshot.Entry]:
    """The entries of ``data``, handed to the reader ``piece`` bytes at a time."""
    chunks = [data[i : i + piece] for i in range(0, len(data), piece)][::-1]
    source = snapshot._Source(lambda: chunks.pop() if chunks else b"")
    mark = snapshot._preamble(source)
    version = snapshot._header(source)
    return list(snapshot.Snapshot(version, source.rest(), mark).entries(limit))


def dump_payload(kind: int, value: bytes, version: int = 11) -> bytes:
    body = bytes([kind]) + value + version.to_bytes(2, "little")
    return body + crc64(body).to_bytes(8, "little")


def test_keys_values_expiries_and_databases_are_cut_exactly():
    listpack_hash = string(b"\x00" * 30)
    data = stream(
        b"\xfa" + string(b"valkey-ver") + string(b"8.0.1"),
        b"\xfe\x00\xfb\x02\x01",
        b"\x00" + string(b"plain") + string(b"value"),
        b"\xfc" + (1_900_000_000_000).to_bytes(8, "little") + b"\x10" + string(b"hash") + listpack_hash,
        b"\x00\xc0\x7b" + b"\xc0\x05",  # the key 123 and the value 5, both stored as integers
        b"\xfe\x03\x02" + string(b"set") + length(2) + string(b"a") + string(b"b"),
    )
    plain, hashed, number, members = read(data)
    assert (plain.db, plain.key, plain.expire_ms, plain.payload) == (0, b"plain", -1, b"value")
    assert isinstance(plain.payload, Plain)
    assert hashed.expire_ms == 1_900_000_000_000 and hashed.payload == dump_payload(0x10, listpack_hash)
    assert number.key == b"123" and number.payload == dump_payload(0, b"\xc0\x05")
    assert members.db == 3 and members.payload == dump_payload(2, length(2) + string(b"a") + string(b"b"))


def test_a_plain_string_has_no_dict():
    (entry,) = read(stream(b"\x00" + string(b"plain") + string(b"value")), piece=64)
    for plain in (entry.payload, Plain(b"value")):
        assert type(plain) is Plain and plain == b"value"
        assert not hasattr(plain, "__dict__"), "one per string key: each would carry a dict slot to clear when freed"


def test_a_value_over_the_limit_is_measured_but_never_held():
    big = b"x" * 3_000_000
    data = stream(b"\x00" + string(b"big") + string(big), b"\x00" + string(b"after") + string(b"v"))
    tracemalloc.start()
    entries = read(data, limit=100_000, piece=65_536)
    _current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert [(e.key, e.payload) for e in entries] == [(b"big", None), (b"after", b"v")]
    assert entries[0].size == 3_000_006
    assert peak < 2_500_000 + len(data)  # the test's own copy of the stream, plus about one read


@pytest.mark.parametrize(
    ("data", "error", "says"),
    [
        (b"-NOPERM this user has no permissions to run the 'sync' command\r\n", snapshot.SnapshotRefused, "NOPERM"),
        (b"+FULLRESYNC abc 0\r\n", snapshot.SnapshotRefused, "not an RDB stream"),
        (b"$EOF:" + MARK + b"\r\nREDIS0012", snapshot.SnapshotRefused, "RDB version 12"),
        (b"$EOF:" + MARK + b"\r\nVALKEY080", snapshot.SnapshotRefused, "RDB version 80"),
        (b"$EOF:" + MARK + b"\r\nNOTANRDB!", snapshot.SnapshotRefused, "not an RDB header"),
        (b"\n" * 5000, snapshot.SnapshotBroken, "closed the connection"),
        (b"$EOF:" + MARK + b"\r\nRED", snapshot.SnapshotBroken, "closed the connection"),
    ],
)
def test_a_preamble_or_header_that_is_not_a_readable_stream_is_refused(data, error, says):
    with pytest.raises(error, match=says):
        read(data)


@pytest.mark.parametrize(
    ("body", "error", "says"),
    [
        (b"\x16" + string(b"k") + string(b"v"), snapshot.SnapshotRefused, "object type 22"),
        (b"\xf1", snapshot.SnapshotRefused, "unknown RDB opcode"),
        (b"\x00\x81" + (1 << 62).to_bytes(8, "big") + b"k" * 100, snapshot.SnapshotRefused, "out of bounds"),
        (b"\x00\xc3" + length(4) + b"\x80\xff\xff\xff\xff" + b"abcd", snapshot.SnapshotRefused, "an LZF string of"),
        (b"\x00\xc3\x02\x05\x20\x00\x61", snapshot.SnapshotRefused, "back reference"),
        (b"\x00\xc4" + string(b"v"), snapshot.SnapshotRefused, "unknown string encoding"),
    ],
)
def test_a_body_this_reader_cannot_read_is_refused_not_a_traceback(body, error, says):
    with pytest.raises(error, match=says):
        read(stream(body), limit=1000)


def test_a_stream_that_ends_early_or_with_the_wrong_mark_is_an_error():
    whole = stream(b"\x00" + string(b"k") + string(b"v"))
    with pytest.raises(snapshot.SnapshotBroken, match="ended"):
        read(whole[:-50])
    with pytest.raises(snapshot.SnapshotRefused, match="mark"):
        read(whole[:-40] + b"x" * 40)


def test_lzf_keys_are_decompressed_with_back_references_that_overlap():
    # a literal "ab", then a back reference of 6 bytes starting 2 back: "abababab"
    compressed = b"\x01ab" + bytes([(4 << 5) | 0, 1])
    assert snapshot.lzf_decompress(compressed, 8) == b"abababab"
    entry = read(stream(b"\x00\xc3" + length(len(compressed)) + length(8) + compressed + string(b"v")))[0]
    assert entry.key == b"abababab"


def listpack(*entries: bytes) -> bytes:
    body = b"".join(entries)
    return (4 + 2 + len(body) + 1).to_bytes(4, "little") + len(entries).to_bytes(2, "little") + body + b"\xff"


def lp_entry(encoded: bytes) -> bytes:
    """An entry with its back length (entries here are all under 128 bytes: one byte)."""
    return encoded + bytes([len(encoded)])


EVERY_WIDTH = [
    (lp_entry(b"\x05"), b"5"),  # 7-bit unsigned
    (lp_entry(b"\x82ab"), b"ab"),  # 6-bit string length
    (lp_entry(b"\xdf\xfb"), b"-5"),  # 13-bit signed
    (lp_entry(b"\xf1" + (-300 & 0xFFFF).to_bytes(2, "little")), b"-300"),
    (lp_entry(b"\xf2" + (100_000).to_bytes(3, "little")), b"100000"),
    (lp_entry(b"\xf3" + (-(2**31)).to_bytes(4, "little", signed=True)), b"-2147483648"),
    (lp_entry(b"\xf4" + (2**63 - 1).to_bytes(8, "little")), b"9223372036854775807"),
    (lp_entry(b"\xe0\x64" + b"z" * 100), b"z" * 100),  # 12-bit string length
]


def test_a_listpack_set_is_rewritten_as_a_plain_set_for_rdb_10():
    blob = listpack(*(encoded for encoded, _value in EVERY_WIDTH))
    assert snapshot.listpack_entries(blob) == [value for _encoded, value in EVERY_WIDTH]
    converted = snapshot.older_payload(dump_payload(20, string(blob)), 10)
    members = [value for _encoded, value in EVERY_WIDTH]
    assert converted == dump_payload(2, length(len(members)) + b"".join(string(m) for m in members), version=10)
    assert snapshot.older_payload(dump_payload(20, string(blob)), 9) is None  # RDB 9 has no stream type 19 either


@pytest.mark.parametrize(
    "blob",
    [
        listpack(lp_entry(b"\x05"))[:-1] + b"\x00",  # no end byte
        b"\x20" + listpack(lp_entry(b"\x05"))[1:],  # a total that is not its size
        listpack(lp_entry(b"\xf5\x00")),  # an encoding listpacks do not have
        listpack(lp_entry(b"\xbfab")),  # a string running past the end
    ],
)
def test_a_listpack_that_is_not_one_is_left_to_the_rebuild(blob):
    assert snapshot.older_payload(dump_payload(20, string(blob)), 10) is None


def lzf_literal(data: bytes) -> bytes:
    """``data`` as an RDB string in LZF form, made of literal runs only (a valid LZF stream)."""
    runs = b"".join(bytes([len(data[at : at + 32]) - 1]) + data[at : at + 32] for at in range(0, len(data), 32))
    return b"\xc3" + length(len(runs)) + length(len(data)) + runs


def rdb_string(member: bytes, packed: bool) -> bytes:
    """``member`` as an RDB string: when ``packed``, as an 8-bit integer or LZF where it can be, else plain."""
    if packed and member.isdigit() and b"%d" % int(member) == member and int(member) < 128:
        return b"\xc0" + bytes([int(member)])
    if packed and len(member) > 40:
        return lzf_literal(member)
    return string(member)


def lp_string(member: bytes) -> bytes:
    if len(member) < 64:
        return lp_entry(bytes([0x80 | len(member)]) + member)
    encoded = bytes([0xE0 | len(member) >> 8, len(member) & 0xFF]) + member
    return encoded + bytes([len(encoded)])  # under 128 bytes: one back-length byte


def test_sets_whose_members_take_every_encoding_read_the_same_from_each_side():
    """Short members are sliced as they are; longer, integer and LZF ones go through the general path."""
    rng = random.Random(7)
    for _ in range(200):
        members = list(
            {
                rng.choice(
                    [
                        rng.randbytes(rng.randint(0, 63)),
                        rng.randbytes(rng.randint(64, 100)),
                        b"%d" % rng.randint(0, 127),
                    ]
                )
                for _ in range(rng.randint(1, 12))
            }
        )
        encoded = [rdb_string(m, rng.random() < 0.5) for m in members]
        plain = b"\x02" + length(len(members)) + b"".join(encoded)
        shuffled = rng.sample(members, len(members))
        packed = b"\x14" + string(listpack(*(lp_string(m) for m in shuffled)))
        assert snapshot.listpack_entries(listpack(*(lp_string(m) for m in shuffled))) == shuffled
        assert snapshot.same_data(plain, packed)
        other = b"\x14" + string(listpack(*(lp_string(m) for m in [*shuffled[1:], b"not a member at all"])))
        assert not snapshot.same_data(plain, other)
        assert not snapshot.same_data(plain[:-1], packed)  # cut short: not the same data, no exception


def test_lru_and_lfu_hints_between_an_expiry_and_its_key_keep_the_expiry():
    """An evicting source writes IDLE (LRU) or FREQ (LFU) after a key's expiry and before its type."""
    expiry = (1_900_000_000_000).to_bytes(8, "little")
    data = stream(
        b"\xfc" + expiry + b"\xf8" + length(300) + b"\x00" + string(b"lru") + string(b"v"),
        b"\xfc" + expiry + b"\xf9\x05" + b"\x00" + string(b"lfu") + string(b"w"),
        b"\xf9\x05" + b"\x00" + string(b"plain") + string(b"x"),
    )
    assert [(e.key, e.expire_ms, e.payload) for e in read(data, piece=1 << 20)] == [
        (b"lru", 1_900_000_000_000, b"v"),
        (b"lfu", 1_900_000_000_000, b"w"),
        (b"plain", -1, b"x"),
    ]


def test_sets_and_streams_in_other_encodings_are_the_same_data():
    members = [b"a", b"b", b"7"]
    packed = b"\x14" + string(listpack(lp_entry(b"\x81b"), lp_entry(b"\x07"), lp_entry(b"\x81a")))
    plain = b"\x02" + length(3) + b"".join(string(m) for m in members)
    ints = b"\x0b" + string((2).to_bytes(4, "little") + (2).to_bytes(4, "little") + b"\x07\x00\xfb\xff")
    packed_ints = b"\x14" + string(listpack(lp_entry(b"\xdf\xfb"), lp_entry(b"\x07")))
    assert snapshot.same_data(packed, plain) and snapshot.same_data(ints, packed_ints)
    assert not snapshot.same_data(packed, b"\x02" + length(2) + string(b"a") + string(b"b"))
    assert not snapshot.same_data(b"\x00" + string(b"a"), b"\x00" + string(b"a"))  # strings are compared as bytes
    assert not snapshot.same_data(b"\x02\xff", plain) and not snapshot.same_data(b"", plain)


def test_a_sets_members_are_read_from_each_encoding_and_anything_else_gives_none():
    packed = b"\x14" + string(listpack(lp_entry(b"\x81b"), lp_entry(b"\x07"), lp_entry(b"\x81a")))
    plain = b"\x02" + length(3) + b"".join(string(m) for m in (b"a", b"b", b"7"))
    ints = b"\x0b" + string((2).to_bytes(4, "little") + (2).to_bytes(4, "little") + b"\x07\x00\xfb\xff")
    assert sorted(snapshot.set_members(packed)) == sorted(snapshot.set_members(plain)) == [b"7", b"a", b"b"]
    assert snapshot.set_members(ints) == [b"7", b"-5"]
    for other in (b"", b"\x00" + string(b"a"), b"\x02\xff", plain[:-1], plain + b"x"):
        assert snapshot.set_members(other) is None, other


def test_lzf_that_claims_or_makes_more_than_it_can_is_refused_without_growing():
    """An untrusted stream cannot make a key or a member decompress into more than it says, nor claim more
    than LZF can make from its bytes."""
    runaway = b"\x00a" + bytes([(7 << 5) | 0, 255, 0]) * 1000  # one byte, then back references of 264 bytes each
    with pytest.raises(ValueError, match="past its 10 bytes"):
        snapshot.lzf_decompress(runaway, 10)
    claims = b"\x00\xc3" + length(3) + b"\x80" + (50_000).to_bytes(4, "big") + b"\x00ab" + string(b"v")
    with pytest.raises(snapshot.SnapshotRefused, match="an LZF string of 50000 bytes from 3"):
        read(stream(claims))


def entries_of(data: bytes, limit: int) -> Iterator[snapshot.Entry]:
    """The entries of ``data`` as the copier reads them, 64 KiB at a time, with the chunks cut beforehand."""
    chunks = [data[i : i + 65_536] for i in range(0, len(data), 65_536)][::-1]
    source = snapshot._Source(lambda: chunks.pop() if chunks else b"")
    mark = snapshot._preamble(source)
    return snapshot.Snapshot(snapshot._header(source), source.rest(), mark).entries(limit)


def test_a_big_value_handed_out_is_no_longer_held_by_the_reader():
    """Once a value is handed out, only its payload holds it: the reader's buffer lets go of its copy at once,
    not at the next read (the copier sends the batch before while the buffer would still hold the value)."""
    big = [bytes([65 + n]) * 3_000_000 for n in range(3)]
    keys = (b"\x00" + string(b"big%d" % n) + string(value) for n, value in enumerate(big))
    entries = entries_of(stream(*keys), 10**7)
    held: list[snapshot.Entry] = []
    tracemalloc.start()
    try:
        for entry in entries:
            held.append(entry)
            current, _peak = tracemalloc.get_traced_memory()
            assert current - sum(len(e.payload or b"") for e in held) < 500_000, f"after {entry.key!r}"
    finally:
        tracemalloc.stop()
    assert [e.payload for e in held] == [dump_payload(0, string(value)) for value in big]


def test_a_big_plain_string_becomes_its_dump_payload_in_one_copy():
    """A SET needs the value as :class:`Plain`, a bytes subclass, which Python builds in two copies; a string
    bigger than one read goes as its DUMP payload instead, built in one (RESTORE writes the same string)."""
    value = b"v" * 4_000_000
    keys = (b"\x00" + string(b"big") + string(value), b"\x00" + string(b"small") + string(b"s"))
    entries = entries_of(stream(*keys), 10**7)
    tracemalloc.start()
    try:
        big, small = list(entries)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert not isinstance(big.payload, Plain) and big.payload == dump_payload(0, string(value))
    assert isinstance(small.payload, Plain) and small.payload == b"s"
    assert peak < 2.3 * len(value)  # the buffer (grown by eighths) and the payload, not a third copy


def line_events(function: Callable[[], object]) -> int:
    """How many lines of snapshot.py run while ``function`` runs: work that grows with the Python steps taken,
    counted the same on any machine (a measure of how the work grows, not a timing)."""
    count = 0

    def trace(frame: FrameType, event: str, _arg: object) -> Callable[..., object] | None:
        nonlocal count
        if frame.f_code.co_filename != snapshot.__file__:
            return None
        count += event == "line"
        return trace

    sys.settrace(trace)
    try:
        function()
    finally:
        sys.settrace(None)
    return count


def test_keepalive_newlines_are_skipped_in_steps_per_read_not_per_newline():
    """A source sends a newline a second while it prepares a snapshot; many newlines in one read are skipped in a
    few steps (each one taken as a line, with the rest of the read copied, grew with their square)."""
    few = stream(b"\x00" + string(b"k") + string(b"v"))
    many = b"\n" * 200_000 + few
    steps = [line_events(partial(read, data, piece=65_536)) for data in (few, many)]
    assert steps[1] < steps[0] + 500, steps
    assert [e.key for e in read(many, piece=65_536)] == [b"k"]


def test_lzf_back_references_are_copied_in_steps_per_reference_not_per_byte():
    """A 48 KB key of back references makes 4 MB: each reference is one step, whatever its length and overlap."""
    references = 15_887
    compressed = b"\x00a" + b"\xe0\xff\x00" * references  # "a", then 264 bytes one back, each time
    size = 1 + references * 264
    steps = line_events(lambda: snapshot.lzf_decompress(compressed, size))
    assert steps < 30 * references, steps
    assert snapshot.lzf_decompress(compressed, size) == b"a" * size


@pytest.mark.parametrize("back", [1, 2, 3, 7, 40])
@pytest.mark.parametrize("count", [3, 9, 264])
def test_lzf_back_references_of_any_overlap_make_the_same_bytes_as_one_byte_at_a_time(back, count):
    literal = bytes(range(65, 65 + 40))
    control = ((7 << 5) | ((back - 1) >> 8)) if count - 2 >= 7 else (((count - 2) << 5) | ((back - 1) >> 8))
    reference = bytes([control]) + (bytes([count - 2 - 7]) if count - 2 >= 7 else b"") + bytes([(back - 1) & 0xFF])
    expected = bytearray(literal)
    for _ in range(count):
        expected.append(expected[-back])
    compressed = b"".join(bytes([19]) + literal[at : at + 20] for at in (0, 20)) + reference  # literal runs: 32 at most
    assert snapshot.lzf_decompress(compressed, len(expected)) == bytes(expected)


@pytest.mark.parametrize("first", [0x82, 0x83, 0xBF])
def test_a_string_with_a_first_byte_no_encoding_has_is_refused_not_read_as_another(first):
    """0x82 to 0xBF are neither a length nor a special encoding (Valkey refuses them): the value is not an integer
    nor LZF, and nothing is written for it."""
    with pytest.raises(snapshot.SnapshotRefused, match=f"unknown string encoding {first:#x}"):
        read(stream(b"\x00" + string(b"k") + bytes([first]) + b"\x02\x02XYZW" + string(b"v")))
    with pytest.raises(snapshot.SnapshotRefused, match=f"unknown string encoding {first:#x}"):
        read(stream(b"\x00" + string(b"K" * 70) + bytes([first]) + b"abcd" * 4))


@pytest.mark.parametrize(
    "expiry",
    [b"\xfc" + (-5).to_bytes(8, "little", signed=True), b"\xfd" + (-5).to_bytes(4, "little", signed=True)],
)
def test_an_expiry_before_1970_is_long_past_not_far_in_the_future_nor_none(expiry):
    """Valkey writes expiries as signed numbers; a negative one is in the past (the key is expired)."""
    (entry,) = read(stream(expiry + b"\x00" + string(b"k") + string(b"v")))
    assert entry.expire_ms == 0
    (small,) = read(stream(expiry + b"\x00" + string(b"k") + string(b"v" * 20)), piece=1 << 20)  # the fast path
    assert small.expire_ms == 0


def test_a_listpack_set_rewritten_for_rdb_10_holds_about_its_own_size_not_a_python_object_per_member():
    members = [b"%02d" % (n % 100) + bytes([65 + n // 100 % 26, 65 + n // 2600]) for n in range(60_000)]
    blob = listpack(*(lp_entry(bytes([0x80 | len(m)]) + m) for m in members))  # 4-byte strings
    payload = dump_payload(20, string(blob))
    tracemalloc.start()
    try:
        converted = snapshot.older_payload(payload, 10)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert converted == dump_payload(2, length(len(members)) + b"".join(string(m) for m in members), version=10)
    assert peak < 6 * len(payload), f"{peak / len(payload):.1f} times the payload"  # copies, not 60,000 objects


def test_an_lzf_listpack_that_would_decompress_past_the_rewrite_bound_is_left_to_the_rebuild():
    references = (snapshot.REWRITE_MOST // 264) + 10
    compressed = b"\x00a" + b"\xe0\xff\x00" * references
    blob = b"\xc3" + length(len(compressed)) + length(1 + references * 264) + compressed
    tracemalloc.start()
    try:
        converted = snapshot.older_payload(dump_payload(20, blob), 10)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert converted is None
    assert peak < 2 * len(compressed) + 1_000_000


def test_a_short_list_read_in_a_run_is_its_dump_payload_and_a_list_of_more_nodes_too(monkeypatch):
    one_node = length(1) + length(2) + string(b"\x00" * 20)  # one packed listpack node
    two_nodes = length(2) + (length(2) + string(b"\x01" * 20)) * 2
    plain_node = length(1) + length(1) + string(b"a plain node")  # container 1: not a listpack
    data = stream(
        b"\x00" + string(b"before") + string(b"v"),
        b"\x12" + string(b"short") + one_node,
        b"\xfc" + (1_900_000_000_000).to_bytes(8, "little") + b"\x12" + string(b"two") + two_nodes,
        b"\x12" + string(b"plain") + plain_node,
        b"\x00" + string(b"after") + string(b"w"),
    )
    general_path_lists: list[int] = []
    skip_list = snapshot._SKIP[0x12]
    monkeypatch.setitem(
        snapshot._SKIP, 0x12, lambda reader, kind: general_path_lists.append(1) or skip_list(reader, kind)
    )
    for piece in (3, 1 << 20):  # read key by key across reads, and whole runs from one buffer
        general_path_lists.clear()
        before, short, two, plain, after = read(data, piece=piece)
        assert len(general_path_lists) == (3 if piece == 3 else 2)  # from one buffer, the short list is read in a run
        assert short.payload == dump_payload(0x12, one_node) and short.size == len(one_node) + 1
        assert (two.expire_ms, two.payload) == (1_900_000_000_000, dump_payload(0x12, two_nodes))
        assert plain.payload == dump_payload(0x12, plain_node)
        assert (before.payload, after.payload, after.expire_ms) == (b"v", b"w", -1)


def test_a_cluster_nodes_slot_notes_between_keys_are_skipped_within_a_run(monkeypatch):
    """A cluster node writes a note (slot, keys, keys with a TTL) before each slot's keys: thousands a node."""
    slot_note = [b"\xf4" + length(slot) + length(keys) + length(keys // 2) for slot, keys in enumerate([1, 70, 20_000])]
    slot_note.append(b"\xf4" + length(16_383) + b"\x81" + (5).to_bytes(8, "big") + length(0))  # a 64-bit length
    keys = [b"\x00" + string(b"k%d" % n) + string(b"v%d" % n) for n in range(len(slot_note))]
    data = stream(b"\xfe\x00", *[part for pair in zip(slot_note, keys, strict=True) for part in pair])
    general_path: list[int] = []
    opcode = snapshot._opcode
    monkeypatch.setattr(snapshot, "_opcode", lambda reader, kind: general_path.append(kind) or opcode(reader, kind))
    for piece in (3, 1 << 20):  # cut anywhere across reads; from one buffer, read in the run
        general_path.clear()
        entries = read(data, piece=piece)
        assert [(e.key, e.payload) for e in entries] == [(b"k%d" % n, b"v%d" % n) for n in range(len(keys))]
        assert general_path.count(0xF4) == (len(slot_note) if piece == 3 else 0)


def test_valkey_8_0_slot_notes_as_auxiliary_fields_are_skipped_within_a_run(monkeypatch):
    """Valkey 8.0 writes its note before each slot's keys as an auxiliary field: ``slot-info`` = "slot,keys,ttls"."""
    notes = [b"\xfa" + string(b"slot-info") + string(b"%d,%d,0" % (slot, slot * 40)) for slot in range(4)]
    notes[2] = b"\xfa" + string(b"slot-info") + string(b"s" * 70_000)  # a long value's length takes five bytes
    notes[3] = b"\xfa" + string(b"slot-info") + b"\xc0\x07"  # an integer: left to the general path, skipped there
    keys = [b"\x00" + string(b"k%d" % n) + string(b"v%d" % n) for n in range(len(notes))]
    data = stream(b"\xfe\x00", *[part for pair in zip(notes, keys, strict=True) for part in pair])
    general_path: list[int] = []
    opcode = snapshot._opcode
    monkeypatch.setattr(snapshot, "_opcode", lambda reader, kind: general_path.append(kind) or opcode(reader, kind))
    for piece in (3, 1 << 20):  # cut anywhere across reads; from one buffer, read in the run but the integer
        general_path.clear()
        entries = read(data, piece=piece)
        assert [(e.key, e.payload) for e in entries] == [(b"k%d" % n, b"v%d" % n) for n in range(len(keys))]
        assert general_path.count(0xFA) == (len(notes) if piece == 3 else 1)


def test_a_short_key_cut_by_the_end_of_a_read_is_read_whole_and_stays_in_the_run(monkeypatch):
    """A stream arrives in reads of any size: the key a read cuts waits for the next read, not the slow path."""
    keys = [b"\x00" + string(b"key:%04d" % n) + string(b"v" * 80) for n in range(200)]
    keys[7] = b"\xfc" + (1_900_000_000_000).to_bytes(8, "little") + keys[7]  # cut with its expiry before it
    data = stream(b"\xfe\x00", *keys)
    first = len(data) - 49 - sum(map(len, keys))
    starts = [first + sum(map(len, keys[:n])) for n in range(len(keys))]
    cuts = [0, *(start + len(key) // 2 for start, key in zip(starts, keys, strict=True)), len(data)]
    chunks = [data[a:b] for a, b in itertools.pairwise(cuts)][::-1]  # each read ends mid-value
    source = snapshot._Source(lambda: chunks.pop() if chunks else b"")
    mark = snapshot._preamble(source)
    version = snapshot._header(source)
    general_path: list[int] = []
    entry = snapshot._entry
    monkeypatch.setattr(
        snapshot, "_entry", lambda reader, kind, *rest: general_path.append(kind) or entry(reader, kind, *rest)
    )
    entries = list(snapshot.Snapshot(version, source.rest(), mark).entries(1 << 20))
    assert [(e.key, e.payload) for e in entries] == [(b"key:%04d" % n, b"v" * 80) for n in range(len(keys))]
    assert entries[7].expire_ms == 1_900_000_000_000 and entries[8].expire_ms == -1
    assert general_path == []


def test_a_stream_that_ends_inside_a_short_key_is_broken_on_either_path():
    data = stream(b"\xfe\x00", b"\x00" + string(b"k") + string(b"v" * 60))
    with pytest.raises(snapshot.SnapshotBroken, match="ended before its end"):
        read(data[: len(data) - 49 - 20], piece=40)


def test_a_slot_note_whose_lengths_are_not_lengths_is_refused_on_either_path():
    data = stream(b"\xfe\x00", b"\xf4" + length(3) + b"\xc0\x05" + length(0), b"\x00" + string(b"k") + string(b"v"))
    with pytest.raises(snapshot.SnapshotRefused, match="special encoding"):
        read(data, piece=1 << 20)


def _mixed_stream(rng: random.Random) -> bytes:
    """Small keys, keys only the general path reads (long values, integers), expiries, and three databases."""
    body = []
    for db in (0, 2, 4, 5):
        body.append(b"\xfe" + length(db))
        if db == 4:
            continue  # a database selected with no key in it
        for index in range(rng.randint(0, 60)):
            if rng.random() < 0.3:
                body.append(b"\xfc" + rng.randint(1, 2**41).to_bytes(8, "little"))
            value = rng.choice([b"v" * rng.randint(0, 90), b"w" * rng.randint(16_384, 20_000)])
            kind = rng.choice([b"\x00", b"\x10"]) if value[:1] != b"w" else b"\x00"
            body.append(kind + string(b"k%d:%d" % (db, index)) + string(value))
            if rng.random() < 0.1:
                body.append(b"\x00" + string(b"i%d:%d" % (db, index)) + b"\xc0\x05")  # an integer: general path
    return stream(*body)


def _batches_key_by_key(entries: list[snapshot.Entry], most_keys: int, most_bytes: int) -> list[tuple]:
    """What the batches must be: each entry in turn, closing a batch as its first key past a bound would."""
    batches: list[tuple] = []
    keys: list[bytes] = []
    size = db = 0
    for entry in entries:
        if keys and (entry.db != db or len(keys) >= most_keys or size + entry.size > most_bytes):
            batches.append((db, keys, size))
            keys, size = [], 0
        db = entry.db
        keys.append(entry.key)
        size += entry.size
    return [*batches, (db, keys, size)] if keys else batches


@pytest.mark.parametrize("seed", range(12))
def test_batches_close_at_the_key_count_before_the_byte_bound_and_at_each_database(seed):
    rng = random.Random(seed)
    data = _mixed_stream(rng)
    entries = read(data)
    for most_keys, most_bytes in [(1, 1 << 30), (7, 1 << 30), (1000, 1 << 30), (1000, 300), (5, 20_000), (3, 1)]:
        piece = rng.choice([3, 100, 1 << 20])
        chunks = [data[i : i + piece] for i in range(0, len(data), piece)][::-1]
        source = snapshot._Source(lambda chunks=chunks: chunks.pop() if chunks else b"")
        mark = snapshot._preamble(source)
        got = snapshot.Snapshot(snapshot._header(source), source.rest(), mark).batches(1 << 20, most_keys, most_bytes)
        assert [(b.db, [e.key for e in b.entries], b.size) for b in got] == _batches_key_by_key(
            entries, most_keys, most_bytes
        )


def test_a_read_full_of_tiny_keys_is_handed_out_a_batch_at_a_time_not_held_whole():
    data = stream(b"\xfe\x00", *[b"\x00" + string(b"") + string(b"")] * 350_000)  # 1 MiB of 3-byte keys
    source = snapshot._Source(iter([data, b""]).__next__)  # one read holds them all
    mark = snapshot._preamble(source)
    batches = snapshot.Snapshot(snapshot._header(source), source.rest(), mark).batches(1 << 20, 1000, 1 << 30)
    tracemalloc.start()
    keys = sum(len(batch.entries) for batch in batches)
    _current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert keys == 350_000
    assert peak < 2_000_000  # a batch and a run of entries, not 350,000 of them (about 50 MB)
