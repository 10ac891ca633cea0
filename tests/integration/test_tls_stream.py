"""Over TLS a stream's records are gathered: a snapshot's reader gets up to 1 MiB a read, not one 16 KiB record.

With one record a read, a key was cut at the end of every record and read by the reader's slow general path
(about one key in twenty-five of a TLS copy).
"""

from __future__ import annotations

import os

from reproducer.data.endpoint import parse_endpoint
from reproducer.data.resp import command
from reproducer.data.topology import connect
from tests.support.fleets import primary_client
from tests.support.wait import eventually


def sent_all(fleet, client_id: object) -> bool:
    """Whether the server's output buffers for client ``client_id`` are empty (its reply is all in the socket)."""
    for client in primary_client(fleet).client_list():
        if str(client["id"]) == str(client_id):
            return client["cmd"] == "get" and client["obl"] == "0" and client["oll"] == "0"
    return False


def test_a_stream_read_over_tls_gathers_the_records_already_here_and_never_waits_for_more(fleets):
    fleet = fleets(tls=True)
    value = os.urandom(600_000)
    primary_client(fleet).set("big", value)
    assert fleet.tls_files is not None
    endpoint = parse_endpoint(f"valkeys://127.0.0.1:{fleet.primary.port}?ca={fleet.tls_files.ca_cert}", environ={})
    conn = connect(endpoint, ("127.0.0.1", fleet.primary.port), timeout=10)
    try:
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
    finally:
        conn.close()
