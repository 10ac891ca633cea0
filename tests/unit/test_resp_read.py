"""``RawConnection.read`` against a scripted peer (a socketpair): counts, zeros, replies read early, the size guard."""

from __future__ import annotations

import socket

import pytest

from reproducer.data.resp import RawConnection, ReplyError, ReplyOverLimit


def connected() -> tuple[RawConnection, socket.socket]:
    """A RawConnection whose peer is the returned socket (the test writes the server's replies there)."""
    ours, theirs = socket.socketpair()
    return RawConnection("node.example", 6379, dial=lambda _host, _port, _timeout: ours, timeout=2), theirs


def test_integer_zero_replies_are_replies_not_the_end_of_the_buffer():
    conn, peer = connected()
    peer.sendall(b":0\r\n:0\r\n$-1\r\n:1\r\n")
    assert conn.read(4) == [0, 0, None, 1]


def test_replies_that_arrive_with_an_earlier_read_are_kept_for_the_next():
    conn, peer = connected()
    peer.sendall(b":1\r\n+OK\r\n-ERR no\r\n:0\r\n")  # one write answers two reads
    assert conn.read(1) == [1]
    second = conn.read(3)
    assert second[0] == b"OK" and isinstance(second[1], ReplyError) and second[2] == 0
    peer.sendall(b"$3\r\nabc\r\n")
    assert conn.read(1) == [b"abc"]


def test_a_guarded_reply_past_the_limit_names_its_index_before_it_is_complete():
    conn, peer = connected()
    peer.sendall(b":7\r\n$5000000\r\n" + b"x" * 30_000)  # the bulk is far from complete (a socketpair holds this)
    with pytest.raises(ReplyOverLimit) as caught:
        conn.read(2, limit=10_000, limited=2)
    assert caught.value.index == 1 and caught.value.retryable


def test_replies_after_the_guarded_ones_may_be_big():
    conn, peer = connected()
    peer.sendall(b":7\r\n$30000\r\n" + b"x" * 30_000 + b"\r\n")
    assert conn.read(2, limit=10_000, limited=1)[1] == b"x" * 30_000


@pytest.mark.parametrize(
    "pieces",
    [
        [b"+OK\r\n" * 1000],  # a batch of writes that all took, in one read
        [b"+OK\r\n" * 3 + b"+O", b"K\r\n" + b"+OK\r\n" * 996],  # a reply cut between reads
        [b"+OK\r\n" * 500, b"+OK\r\n" * 500],
        [b"+OK\r\n+", b"OK\r\n" + b"+OK\r\n" * 998],
    ],
)
def test_a_run_of_ok_replies_reads_as_the_parser_reads_it_however_it_is_cut(pieces):
    conn, peer = connected()
    for piece in pieces:
        peer.sendall(piece)
    assert conn.read(1000) == [b"OK"] * 1000


def test_ok_replies_around_errors_and_other_replies_keep_their_places_and_their_kinds():
    conn, peer = connected()
    peer.sendall(b"+OK\r\n" * 4)
    assert conn.read(2) == [b"OK", b"OK"]  # the two others are kept for the next read
    peer.sendall(b"+OK\r\n-BUSYKEY Target key name already exists.\r\n+OK\r\n")
    peer.sendall(b"$2\r\nOK\r\n+OKAY\r\n:5\r\n+OK\r\n")  # a bulk "OK", a status that only starts like one, an integer
    replies = conn.read(9)
    assert replies[:3] == [b"OK", b"OK", b"OK"]
    assert isinstance(replies[3], ReplyError) and str(replies[3]).startswith("BUSYKEY")
    assert replies[4:] == [b"OK", b"OK", b"OKAY", 5, b"OK"]


@pytest.mark.parametrize(
    "chunk, count",
    [
        (b"", 0),
        (b"+OK\r\n", 1),
        (b"+OK\r\n" * 7, 7),
        (b"+OK\r\n+O", 0),  # a reply cut short: the parser's
        (b"+OK\r\n\r\n+OK\r", 0),  # the right length, not the right bytes
        (b"+OK\r\n-ERR x\r\n", 0),
        (b"+OKK\r\n+OK\r\n", 0),
        (b"$2\r\nOK\r\n", 0),
    ],
)
def test_only_a_chunk_of_whole_ok_replies_and_nothing_else_skips_the_parser(chunk, count):
    from reproducer.data.resp import _only_oks

    assert _only_oks(chunk) == count
