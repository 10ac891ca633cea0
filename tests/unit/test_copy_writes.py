"""How the copier encodes its writes: a large value is sent as its own part, never copied into a bigger buffer."""

from __future__ import annotations

import libvalkey
import pytest

from reproducer.data import copy
from reproducer.data.dumpfmt import Plain
from reproducer.data.resp import DIRECT_SEND
from tests.support.speedups import on_both_paths

#: Each test encodes with the compiled encoder (``_speedups.c``) and with the Python one.
encoder = on_both_paths(copy, "_encode")


@pytest.mark.parametrize("ttl", [False, True])
@pytest.mark.parametrize("replace", [True, False])
def test_a_large_plain_value_is_its_own_part_whatever_its_ttl_and_conflict_mode(ttl, replace):
    value = Plain(b"v" * DIRECT_SEND)
    deadline = copy.monotonic_ms() + 60_000 if ttl else 0
    parts = copy._writes([(b"key", deadline, value)], [0], replace)
    assert any(part is value for part in parts)
    arguments = 3 + (not replace) + 2 * ttl  # SET key value [PX ms] [NX]
    assert parts[0] == b"*%d\r\n$3\r\nSET\r\n$3\r\nkey\r\n$%d\r\n" % (arguments, DIRECT_SEND)


def test_small_plain_values_are_sent_in_order_and_the_compiled_encoder_gathers_them_into_one_part(encoder):
    items = [(b"a", 0, Plain(b"1")), (b"b", 0, Plain(b"2"))]
    sets = [b"*3\r\n$3\r\nSET\r\n$1\r\n%b\r\n$1\r\n%b\r\n" % pair for pair in ((b"a", b"1"), (b"b", b"2"))]
    parts = copy._writes(items, [0, 1], True)
    assert parts == ([b"".join(sets)] if encoder == "compiled" else sets)


def _commands(parts: list[bytes]) -> list[list[bytes]]:
    reader = libvalkey.Reader()
    reader.feed(b"".join(parts))
    return list(iter(reader.gets, False))


@pytest.mark.parametrize("size", [0, 300, DIRECT_SEND - 1, DIRECT_SEND])
@pytest.mark.parametrize("ttl", [False, True])
@pytest.mark.parametrize("replace", [True, False])
@pytest.mark.parametrize("plain", [True, False])
def test_each_write_is_the_command_its_value_ttl_and_conflict_mode_ask_for(size, ttl, replace, plain):
    value = Plain(b"v" * size) if plain else b"\x00" * size
    deadline = copy.monotonic_ms() + 60_000 if ttl else 0
    [sent] = _commands(copy._writes([(b"k\r\n*1", deadline, value)], [0], replace))
    left = int(sent[2 if not plain else 4]) if ttl or not plain else 0
    if plain:
        expected = [b"SET", b"k\r\n*1", bytes(value)] + [b"PX", b"%d" % left] * ttl + [b"NX"] * (not replace)
    else:
        expected = [b"RESTORE", b"k\r\n*1", b"%d" % left, value] + [b"REPLACE"] * replace
    assert sent == expected
    assert 59_000 <= left <= 60_000 if ttl else left == 0


@pytest.mark.parametrize("replies", [[b"OK"] * 4, [None, b"OK", b"OK", b"OK"]], ids=["all-ok", "one-kept"])
def test_a_batch_counts_its_copied_keys_and_those_without_expiry_alike_on_either_path(replies):
    items = [(b"a", 0, b"p"), (b"b", 1_000, b"p"), (b"c", 0, b"p"), (b"d", 0, b"p")]
    batch = copy.RestoreBatch(0, items, {("target", 1): [0, 1, 2, 3]})
    writer, outcome = object.__new__(copy.TargetWriter), copy._Outcome()
    retry = writer._classify(batch, [0, 1, 2, 3], replies, outcome)
    kept = replies.count(None)  # SET NX of a key the target has: skipped
    assert (retry, outcome.copied, outcome.skipped) == ([], 4 - kept, kept)
    assert outcome.persistent == 3 - kept  # b has an expiry; a (kept, when skipped) is not counted
