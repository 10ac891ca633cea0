"""Sizes from a type's size commands (MEMORY USAGE refused): whatever the server answers, a size or a fallback."""

from __future__ import annotations

import pytest

from reproducer.data.resp import ReplyError, command
from reproducer.data.sizing import (
    ELEMENT_OVERHEAD,
    SAMPLE,
    UNBOUNDED,
    Sampler,
    estimate,
    estimate_commands,
    types_of,
)


def test_each_type_is_sized_by_its_count_and_a_bounded_sample():
    assert estimate_commands(b"k", b"string") == [command("STRLEN", b"k")]
    assert estimate_commands(b"k", b"hash") == [command("HLEN", b"k"), command("HRANDFIELD", b"k", 5, "WITHVALUES")]
    assert estimate_commands(b"k", b"list") == [command("LLEN", b"k"), command("LRANGE", b"k", 0, 4)]
    assert estimate_commands(b"k", b"stream")[1] == command("XRANGE", b"k", "-", "+", "COUNT", 5)
    assert types_of([b"a\r\nb"]) == command("TYPE", b"a\r\nb")  # a key is one bulk string, whatever it holds


@pytest.mark.parametrize("kind", [b"none", b"ReJSON-RL", b"", ReplyError("NOPERM no type"), None, 7])
def test_a_gone_key_an_unknown_type_or_a_refused_type_asks_nothing(kind):
    assert estimate_commands(b"k", kind) == []


def test_a_string_is_its_length_and_a_collection_its_count_times_its_largest_sampled_element():
    assert estimate(b"string", [300_000]) == 300_000
    assert estimate(b"hash", [1000, [b"f1", b"v" * 98, b"f2", b"v"]]) == 1000 * (100 + ELEMENT_OVERHEAD)
    assert estimate(b"zset", [10, [b"m" * 20, b"1.5"]]) == 10 * (23 + ELEMENT_OVERHEAD)
    assert estimate(b"set", [4, [b"a", b"bbbb"]]) == 4 * (4 + ELEMENT_OVERHEAD)
    stream = [[b"1-1", [b"n", b"1", b"v", b"x" * 50]], [b"2-1", [b"n", b"2"]]]
    assert estimate(b"stream", [2000, stream]) == 2000 * (3 + 1 + 1 + 1 + 50 + ELEMENT_OVERHEAD)


def test_a_key_that_changed_type_counts_as_over_any_bound():
    assert estimate(b"hash", [ReplyError("WRONGTYPE Operation against a key"), []]) == UNBOUNDED
    assert estimate(b"string", [ReplyError("WRONGTYPE Operation against a key")]) == UNBOUNDED


@pytest.mark.parametrize(
    ("kind", "replies", "size"),
    [
        (b"none", [], 0),  # gone before TYPE answered
        (b"hash", [0, []], 0),  # gone since
        (b"list", [5, []], 0),  # emptied between the count and the sample
        (b"set", [5, None], 0),
        (b"string", [-3], 0),  # a negative length from a broken server counts nothing
        (b"ReJSON-RL", [], None),  # no size commands: the caller guesses
        (b"hash", [ReplyError("NOPERM this user has no permissions to run the 'hlen' command"), []], None),
        (b"hash", [10, ReplyError("ERR unknown command 'HRANDFIELD'")], None),
        (b"string", [b"12"], None),  # not an integer reply
        (b"hash", [], None),
    ],
)
def test_odd_answers_give_zero_or_no_size_never_an_exception(kind, replies, size):
    assert estimate(kind, replies) == size


def test_replies_are_cut_per_key_by_what_was_asked():
    types = [b"string", b"none", b"list"]
    asked = [estimate_commands(b"k", kind) for kind in types]
    assert Sampler(1 << 20).read(types, asked, [7, 3, [b"abc"]]) == [7, 0, 3 * (3 + ELEMENT_OVERHEAD)]


def test_collections_are_sampled_a_few_at_a_time_when_their_elements_are_big():
    bound = 64 * 1024 * 1024
    sampler = Sampler(bound)
    keys, types = [b"s1", b"h1", b"s2", b"h2", b"h3"], [b"string", b"hash", b"string", b"hash", b"hash"]
    assert sampler.budget() == 1  # nothing read yet: one collection's sample
    end, asked, left = sampler.plan(keys, types, 0, sampler.budget())
    assert (end, left) == (3, 0) and [len(parts) for parts in asked] == [1, 2, 1]  # strings cost no budget
    megabyte = b"x" * 1_000_000
    sampler.read(types[:end], asked, [10, 2, [b"f", megabyte, b"g", b"y"], 4])
    assert sampler.budget() == bound // (SAMPLE * (1_000_001 + ELEMENT_OVERHEAD)) == 13
    sampler.read([b"hash"], [estimate_commands(b"h", b"hash")], [3, [b"f", b"v"]])
    assert sampler.budget() > 100_000  # small elements: every key of a SCAN reply at once
    end, asked, left = sampler.plan(keys, types, 3, 0)
    assert end == 3 and asked == []  # no budget left: the next round trip
