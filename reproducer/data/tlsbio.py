"""TLS over a socket through memory BIOs: many records a system call, each way.

``ssl.SSLSocket`` lets OpenSSL read the socket itself: a record's header and its body are two ``read`` calls, and
more when the body has only partly arrived; each record written is its own ``write``. A 354 MB snapshot over TLS
took about 150,000 reads and 26,000 writes that way, where the same copy without TLS takes 14,000 and 1,000
(``docs/reference/performance.md``). :class:`BufferedTls` reads the socket in large pieces into OpenSSL's incoming
memory BIO and hands out every record already there in one call; what OpenSSL writes to its outgoing BIO goes in
one ``sendall`` a piece of :data:`WRITE_PIECE` bytes. The bytes and every check (certificate, hostname, protocol)
are OpenSSL's, as with ``SSLSocket``.
"""

from __future__ import annotations

import contextlib
import socket
import ssl

#: Ciphertext read from the socket a call at most.
READ_PIECE = 1 << 20
#: Plain text encrypted a call at most: what the outgoing BIO holds at once, however big the value sent.
WRITE_PIECE = 1 << 20


class BufferedTls:
    """The client end of a TLS connection over ``sock``, which is already connected.

    It has the methods the copy's connection uses of a socket: ``sendall``, ``recv_into``, ``settimeout`` and
    ``close``. The handshake runs in the constructor; its errors are
    ``ssl.SSLError`` (an ``OSError``), as ``wrap_socket``'s.
    """

    def __init__(self, sock: socket.socket, context: ssl.SSLContext, server_hostname: str) -> None:
        self._sock = sock
        self._incoming, self._outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._incoming, self._outgoing, server_hostname=server_hostname)
        self._piece = bytearray(READ_PIECE)
        self._closed_by_peer = False
        while True:
            try:
                self._tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                if self._closed_by_peer:  # OpenSSL was told of the end and still waits: not one it names
                    raise ConnectionResetError("the server closed the connection during the TLS handshake") from None
                self._flush()
                self._closed_by_peer = not self._fill()  # at the end, OpenSSL's next step raises its own error
        self._flush()

    def sendall(self, data: bytes | bytearray | memoryview) -> None:
        """Encrypt ``data`` and send it, :data:`WRITE_PIECE` bytes of plain text at a time."""
        with memoryview(data) as view:
            for start in range(0, len(view), WRITE_PIECE):
                self._write(view[start : start + WRITE_PIECE])

    def recv_into(self, buffer: memoryview | bytearray) -> int:
        """Plain text into ``buffer``: every record already received that fits, else wait for one; 0 at the end.

        Waits as the socket does (its timeout raises ``TimeoutError``).
        """
        with memoryview(buffer) as view:
            while True:
                size = self._decrypted_into(view)
                if size or self._closed_by_peer:
                    return size
                if not self._fill():
                    self._closed_by_peer = True

    def settimeout(self, timeout: float | None) -> None:
        """The socket's timeout for the waits of :meth:`recv_into` and :meth:`sendall`."""
        self._sock.settimeout(timeout)

    def close(self) -> None:
        """Close the socket (no close_notify: the copy closes a connection only when it is done or broken)."""
        self._sock.close()

    def _decrypted_into(self, view: memoryview) -> int:
        """The plain text of the records already in the incoming BIO, into ``view`` as far as it goes."""
        size = 0
        with contextlib.suppress(ssl.SSLWantReadError):  # no whole record left
            while size < len(view):
                try:
                    # with a buffer, read() writes into it and returns a count (typeshed says bytes)
                    got: int = self._tls.read(len(view) - size, view[size:])  # type: ignore[assignment]
                except (ssl.SSLZeroReturnError, ssl.SSLEOFError):  # the end, with or without close_notify
                    self._closed_by_peer = True
                    break
                if not got:
                    break
                size += got
        self._flush()  # what reading made OpenSSL answer (TLS 1.3 messages after the handshake)
        return size

    def _fill(self) -> bool:
        """Read the socket once into the incoming BIO; False at its end (which the BIO is told)."""
        got = self._sock.recv_into(self._piece)
        if not got:
            self._incoming.write_eof()
            return False
        with memoryview(self._piece) as piece:
            self._incoming.write(piece[:got])
        return True

    def _write(self, plain: memoryview) -> None:
        while True:
            try:
                self._tls.write(plain)
                break
            except ssl.SSLWantReadError:  # OpenSSL needs the server's answer first (a renegotiation)
                self._flush()
                if not self._fill():
                    raise ConnectionResetError("the server closed the connection") from None
        self._flush()

    def _flush(self) -> None:
        if self._outgoing.pending:
            self._sock.sendall(self._outgoing.read())
