"""A TCP proxy on loopback that a test can cut, to break connections mid-copy, or slow, to stand for a far link."""

from __future__ import annotations

import contextlib
import socket
import threading
import time


class CuttableProxy:
    """Forwards 127.0.0.1:<port> to an upstream port; ``cut()`` closes every open connection.

    ``delay`` (seconds) holds each chunk that long before passing it on, both ways: a link that far away.
    ``reply_delay`` holds the upstream's answers instead of ``delay`` (a link slow one way only). Both are read
    at each chunk, so a test can slow or heal the link while it runs.
    """

    def __init__(self, upstream_port: int, *, delay: float = 0.0, reply_delay: float | None = None) -> None:
        self.upstream_port = upstream_port
        self.delay = delay
        self.reply_delay = delay if reply_delay is None else reply_delay
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            with self._lock:
                self._sockets += [client, upstream]
                self.connections += 1
            for a, b, toward_upstream in ((client, upstream, True), (upstream, client, False)):
                threading.Thread(target=self._pump, args=(a, b, toward_upstream), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, toward_upstream: bool) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                time.sleep(self.delay if toward_upstream else self.reply_delay)
                sink.sendall(data)
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        """Break every connection open right now (new ones are still accepted)."""
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        """Stop accepting and cut everything."""
        self._listener.close()
        self.cut()
