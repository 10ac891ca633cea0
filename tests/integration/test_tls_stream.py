"""The copy's TLS connections (``reproducer.data.tlsbio.BufferedTls``) against real TLS servers.

A stream's records are gathered: a snapshot's reader gets up to 1 MiB a read, not one 16 KiB record (with one
record a read, a key was cut at the end of every record and read by the reader's slow general path). The socket is
read and written in large pieces, not a system call or two a record.
"""

from __future__ import annotations

import os
import socket
import ssl
import threading
from contextlib import closing

import pytest

from reproducer.data.endpoint import parse_endpoint
from reproducer.data.resp import RawConnection, command
from reproducer.data.tlsbio import BufferedTls
from reproducer.data.topology import connect
from reproducer.errors import DataError
from tests.support.fleets import primary_client
from tests.support.wait import eventually


def sent_all(fleet, client_id: object) -> bool:
    """Whether the server's output buffers for client ``client_id`` are empty (its reply is all in the socket)."""
    for client in primary_client(fleet).client_list():
        if str(client["id"]) == str(client_id):
            return client["cmd"] == "get" and client["obl"] == "0" and client["oll"] == "0"
    return False


def tls_connection(fleet) -> RawConnection:
    """The copy's connection to the TLS fleet's primary, trusting the fleet's CA."""
    assert fleet.tls_files is not None
    endpoint = parse_endpoint(f"valkeys://127.0.0.1:{fleet.primary.port}?ca={fleet.tls_files.ca_cert}", environ={})
    return connect(endpoint, ("127.0.0.1", fleet.primary.port), timeout=10)


def test_a_stream_read_over_tls_gathers_the_records_already_here_and_never_waits_for_more(fleets):
    fleet = fleets(tls=True)
    value = os.urandom(600_000)
    primary_client(fleet).set("big", value)
    with closing(tls_connection(fleet)) as conn:
        expected = b"$600000\r\n" + value + b"\r\n"
        client_id = conn.call("CLIENT", "ID")
        conn.send(command("GET", "big"))
        eventually(lambda: sent_all(fleet, client_id), "the server wrote the whole reply")  # now in our socket
        first = bytes(conn.recv_raw())  # a view of a buffer the next read reuses
        assert len(first) > 4 * 16384, len(first)
        got = first
        while len(got) < len(expected):
            got += bytes(conn.recv_raw())
        assert got == expected
        conn.send(command("PING"))
        assert conn.recv_raw() == b"+PONG\r\n"  # what is here (waiting for more would time out: TimeoutError)


class CountingSocket:
    """A connected socket whose reads and writes are counted (everything else goes to the socket)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.reads, self.writes = sock, 0, 0

    def recv_into(self, buffer) -> int:
        self.reads += 1
        return self.sock.recv_into(buffer)

    def sendall(self, data) -> None:
        self.writes += 1
        self.sock.sendall(data)

    def __getattr__(self, name):
        return getattr(self.sock, name)


def tls_context(fleet) -> ssl.SSLContext:
    assert fleet.tls_files is not None
    return ssl.create_default_context(cafile=str(fleet.tls_files.ca_cert))


def test_a_big_write_and_a_big_reply_take_a_system_call_a_piece_not_one_or_two_a_record(fleets):
    fleet = fleets(tls=True)
    value = os.urandom(3_000_000)
    records = len(value) // 16384  # TLS carries 16 KiB of plain text a record at most
    raw = CountingSocket(socket.create_connection(("127.0.0.1", fleet.primary.port), timeout=10))
    tls = BufferedTls(raw, tls_context(fleet), "127.0.0.1")  # type: ignore[arg-type]
    try:
        handshake = raw.writes
        tls.sendall(command("SET", "big", value) + command("GET", "big"))
        assert raw.writes - handshake <= 4, "3 MB in pieces of 1 MiB, not a write a record"
        expected = b"+OK\r\n$3000000\r\n" + value + b"\r\n"
        got, buffer = b"", bytearray(1 << 20)
        while len(got) < len(expected):
            got += buffer[: tls.recv_into(buffer)]
        assert got == expected
        assert raw.reads < records, f"{raw.reads} reads for {records} records"
    finally:
        tls.close()


def test_a_wait_over_tls_times_out_empty_then_gets_what_arrives(fleets):
    fleet = fleets(tls=True)
    with closing(tls_connection(fleet)) as conn:
        conn.send(command("SUBSCRIBE", "news"))
        assert conn.read(1)[0] == [b"subscribe", b"news", 1]
        assert conn.poll(0.2) == []
        primary_client(fleet).publish("news", "hello")
        assert conn.poll(10) == [[b"message", b"news", b"hello"]]


def test_a_server_that_closes_over_tls_is_a_retryable_error_not_a_hang(fleets):
    fleet = fleets(tls=True)
    with closing(tls_connection(fleet)) as conn:
        client_id = conn.call("CLIENT", "ID")
        primary_client(fleet).client_kill_filter(_id=client_id)
        with pytest.raises(DataError, match="closed by the server") as caught:
            conn.recv_raw()
        assert caught.value.retryable


def test_a_server_that_closes_during_the_handshake_is_a_handshake_error_with_a_hint():
    listener = socket.create_server(("127.0.0.1", 0))

    def accept_and_close() -> None:
        peer, _ = listener.accept()
        peer.recv(1024)  # the client's hello
        peer.close()

    closer = threading.Thread(target=accept_and_close, daemon=True)
    closer.start()
    try:
        with pytest.raises(DataError, match="TLS handshake with 127.0.0.1:\\d+ failed") as caught:
            RawConnection("127.0.0.1", listener.getsockname()[1], tls=ssl.create_default_context(), timeout=5)
        assert "speaks TLS" in caught.value.hint
    finally:
        closer.join(5)
        listener.close()
