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
