"""The fork server's messages: length-prefixed JSON with file descriptors alongside (``SCM_RIGHTS``).

A module of its own so that :mod:`reproducer.forkclient`, started for every provider, imports only this.
"""

from __future__ import annotations

import array
import json
import os
import socket
import struct
from typing import Any

HEADER = struct.Struct("!I")
#: The largest request accepted (an environment is a few kilobytes).
MAX_MESSAGE = 1 << 22


def send_message(sock: socket.socket, message: dict[str, Any], fds: list[int] | None = None) -> None:
    """One length-prefixed JSON message, with ``fds`` passed alongside (SCM_RIGHTS)."""
    body = json.dumps(message).encode()
    data = HEADER.pack(len(body)) + body
    if fds:
        sent = sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
        data = data[sent:]
    if data:  # sendall of nothing still sends: EPIPE when the server has already answered and hung up
        sock.sendall(data)


def receive_message(sock: socket.socket, max_fds: int = 0) -> tuple[dict[str, Any], list[int]] | None:
    """The next message and the descriptors that came with it; None at end of stream.

    Raises:
        ValueError: the message is too long or not a JSON object.
        ConnectionError: the peer closed the connection mid-message.
    """
    fds: list[int] = []
    space = socket.CMSG_SPACE(max_fds * array.array("i").itemsize) if max_fds else 0
    data, ancillary, _flags, _address = sock.recvmsg(HEADER.size, space)
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.extend(array.array("i", payload[: len(payload) - len(payload) % 4]))
    if not data:
        return None
    try:
        data += _read_exactly(sock, HEADER.size - len(data))
        (length,) = HEADER.unpack(data)
        if length > MAX_MESSAGE:
            raise ValueError(f"a message of {length} bytes")
        message = json.loads(_read_exactly(sock, length))
        if not isinstance(message, dict):
            raise ValueError("a message must be a JSON object")
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    return message, fds


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    chunks = b""
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            raise ConnectionError("the peer closed the connection mid-message")
        chunks += chunk
    return chunks
