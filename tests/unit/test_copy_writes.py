"""How the copier encodes its writes: a large value is sent as its own part, never copied into a bigger buffer."""

from __future__ import annotations

import pytest

from reproducer.data import copy
from reproducer.data.dumpfmt import Plain
from reproducer.data.resp import DIRECT_SEND


@pytest.mark.parametrize("ttl", [False, True])
@pytest.mark.parametrize("replace", [True, False])
def test_a_large_plain_value_is_its_own_part_whatever_its_ttl_and_conflict_mode(ttl, replace):
    value = Plain(b"v" * DIRECT_SEND)
    deadline = copy.monotonic_ms() + 60_000 if ttl else 0
    parts = copy._writes([(b"key", deadline, value)], [0], replace)
    assert any(part is value for part in parts)
    arguments = 3 + (not replace) + 2 * ttl  # SET key value [PX ms] [NX]
    assert parts[0] == b"*%d\r\n$3\r\nSET\r\n$3\r\nkey\r\n$%d\r\n" % (arguments, DIRECT_SEND)


def test_small_plain_values_are_gathered_into_one_part():
    items = [(b"a", 0, Plain(b"1")), (b"b", 0, Plain(b"2"))]
    sets = [b"*3\r\n$3\r\nSET\r\n$1\r\n%b\r\n$1\r\n%b\r\n" % pair for pair in ((b"a", b"1"), (b"b", b"2"))]
    assert copy._writes(items, [0, 1], True) == sets
