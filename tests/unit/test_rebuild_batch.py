"""The pipelined rebuild's pure parts: read commands, reply parsing (hostile replies too), write commands."""

import pytest

from reproducer.data.rebuild import ReplyShapeError, Value, normal, parse_value, read_commands, write_commands


def test_parse_value_of_each_type():
    assert parse_value("string", [b"v"]) == Value("string", b"v")
    assert parse_value("hash", [[b"f", b"1", b"g", b"2"]]).items == [[b"f", b"1"], [b"g", b"2"]]
    assert parse_value("set", [[b"b", b"a"]]).items == [b"a", b"b"]
    assert parse_value("zset", [[b"m", b"1.5", b"n", b"inf"]]).items == [[b"m", 1.5], [b"n", float("inf")]]
    assert parse_value("list", [[b"x", b"x"]]).items == [b"x", b"x"]
    stream = parse_value(
        "stream",
        [
            [[b"1-0", [b"a", b"1", b"a", b"2"]]],
            [b"length", 1, b"last-generated-id", b"3-0", b"entries-added", 3, b"max-deleted-entry-id", b"2-0"],
            [[b"name", b"g", b"last-delivered-id", b"1-0", b"entries-read", 1]],
        ],
    )
    assert stream.items == [[b"1-0", [b"a", b"1", b"a", b"2"]]]  # duplicate field names kept
    assert stream.stream_meta["groups"] == [{"name": b"g", "last_delivered_id": b"1-0", "entries_read": 1}]
    empty = parse_value("stream", [[], [b"last-generated-id", b"0-0"], []])
    assert empty is not None and empty.items == []


def test_a_vanished_key_is_none():
    for kind in ("string", "hash", "set", "zset", "list"):
        assert parse_value(kind, [None if kind == "string" else []]) is None


@pytest.mark.parametrize(
    ("kind", "replies"),
    [
        ("string", [[b"a list"]]),
        ("hash", [b"a string"]),
        ("hash", [[b"odd", b"count", b"here"]]),
        ("zset", [[b"m", b"not-a-number"]]),
        ("zset", [[b"m"]]),
        ("set", [Exception("WRONGTYPE Operation against a key holding the wrong kind of value")]),
        ("stream", [[], [b"no", b"last id"], []]),
        ("stream", [[], Exception("ERR no such key"), []]),
        ("stream", [[[b"1-0"]], [b"last-generated-id", b"1-0"], []]),
        ("stream", [[], [b"last-generated-id", b"1-0"], [[b"name"]]]),
        ("stream", [b"x", b"y", b"z"]),
    ],
)
def test_hostile_replies_raise_reply_shape_error(kind, replies):
    with pytest.raises(ReplyShapeError):
        parse_value(kind, replies)


def test_unknown_types_are_refused():
    with pytest.raises(ValueError, match="cannot be rebuilt"):
        read_commands(b"k", "ReJSON-RL")


def test_write_commands_chunk_big_values_and_keep_scores_exact():
    value = Value("zset", [[b"m%d" % i, i / 3] for i in range(2500)])
    commands = write_commands(b"k", value, 1500)
    assert commands[0] == ("DEL", b"k") and commands[-1] == ("PEXPIRE", b"k", 1500)
    zadds = commands[1:-1]
    assert [len(c) for c in zadds] == [2 + 2000, 2 + 2000, 2 + 1000]
    assert float(zadds[0][2 + 2 * 7]) == 7 / 3  # repr round-trips the double
    assert write_commands(b"k", Value("string", b"v"), -1, replace=False) == [("SET", b"k", b"v")]
    assert write_commands(b"k", Value("set", [b"a"]), 0)[-1] == ("PEXPIRE", b"k", 1)  # about to expire: 1 ms


def test_empty_stream_keeps_its_groups_and_ids():
    meta = {
        "last_id": b"9-0",
        "entries_added": 4,
        "max_deleted_id": b"9-0",
        "groups": [{"name": b"g", "last_delivered_id": b"9-0", "entries_read": 4}],
    }
    commands = write_commands(b"s", Value("stream", [], meta), -1)
    assert ("XGROUP", "CREATE", b"s", "__reproducer_tmp", "0", "MKSTREAM") in commands
    assert ("XSETID", b"s", b"9-0", "ENTRIESADDED", 4, "MAXDELETEDID", b"9-0") in commands
    assert commands[-1] == ("XGROUP", "CREATE", b"s", b"g", b"9-0", "ENTRIESREAD", 4)


def test_normal_ignores_order_of_unordered_types_only():
    assert normal(Value("hash", [[b"a", b"1"], [b"b", b"2"]])) == normal(Value("hash", [[b"b", b"2"], [b"a", b"1"]]))
    assert normal(Value("list", [b"a", b"b"])) != normal(Value("list", [b"b", b"a"]))
