"""valkey-py connections whose socket comes from a route's ``dial`` (an SSH bastion), for ``routed_client``.

``host``/``port`` stay the node's real address: valkey-py names it in errors and, for TLS, wraps the socket
with ``server_hostname=self.host``, so SNI and the hostname check use the real name, never the tunnel's end.
"""

from __future__ import annotations

import socket
from typing import Any

from valkey.connection import Connection, SSLConnection

from reproducer.data.resp import Dial


class RoutedConnection(Connection):
    """A plain connection dialled by ``dial``."""

    def __init__(self, *, dial: Dial, **kwargs: Any) -> None:
        self.dial = dial
        super().__init__(**kwargs)  # type: ignore[no-untyped-call]  # valkey-py is untyped

    def _connect(self) -> socket.socket:
        return self.dial(self.host, self.port, self.socket_connect_timeout or self.socket_timeout or 30.0)


class RoutedSSLConnection(SSLConnection):
    """A TLS connection dialled by ``dial`` and wrapped for the node's real host name."""

    def __init__(self, *, dial: Dial, **kwargs: Any) -> None:
        self.dial = dial
        super().__init__(**kwargs)  # type: ignore[no-untyped-call]  # valkey-py is untyped

    def _connect(self) -> socket.socket:
        sock = self.dial(self.host, self.port, self.socket_connect_timeout or self.socket_timeout or 30.0)
        try:
            wrapped: socket.socket = self._wrap_socket_with_ssl(sock)  # type: ignore[no-untyped-call]
        except BaseException:
            sock.close()
            raise
        return wrapped
