"""A small Terraform state server for the ``http`` backend, with the standard library only.

It speaks what Terraform's ``http`` backend sends (docs/reference/gitops.md#state-backends): ``GET`` the state
(404 when there is none), ``POST`` a new state, ``DELETE`` it, ``LOCK``/``UNLOCK`` (423 with the holder's lock
info when the state is already locked), behind HTTP basic authentication (401 otherwise). It records every
request (method and path) so a test can assert what Terraform did, and never what it was sent as credentials.
"""

from __future__ import annotations

import base64
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class StateStore:
    """What the server holds: the state, the lock and the requests it answered."""

    username: str
    password: str
    state: bytes | None = None
    lock: bytes | None = None
    requests: list[tuple[str, str, int]] = field(default_factory=list)  # (method, path, status)
    mutex: threading.Lock = field(default_factory=threading.Lock)

    def methods(self) -> list[str]:
        """The methods of the requests answered so far, in order."""
        with self.mutex:
            return [method for method, _, _ in self.requests]


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the test reads ``StateStore.requests``."""

    def _authorised(self) -> bool:
        store = self.server.store
        expected = base64.b64encode(f"{store.username}:{store.password}".encode()).decode()
        return self.headers.get("Authorization", "") == f"Basic {expected}"

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _answer(self, status: int, body: bytes = b"") -> None:
        with self.server.store.mutex:
            self.server.store.requests.append((self.command, self.path, status))
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)

    def _handle(self) -> None:
        body = self._body()
        if not self._authorised():
            self._answer(401)
            return
        store = self.server.store
        with store.mutex:
            status, answer = self._apply(store, body)
        self._answer(status, answer)

    def _apply(self, store: StateStore, body: bytes) -> tuple[int, bytes]:
        method = self.command
        if method == "GET":
            return (200, store.state) if store.state is not None else (404, b"")
        if method in ("POST", "DELETE"):
            store.state = body if method == "POST" else None
            return 200, b""
        if method == "LOCK" and store.lock is not None:
            return 423, store.lock
        if method in ("LOCK", "UNLOCK"):
            store.lock = body if method == "LOCK" else None
            return 200, b""
        return 405, b""

    do_GET = do_POST = do_DELETE = do_LOCK = do_UNLOCK = _handle


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    store: StateStore


class StateServer:
    """A running state server on 127.0.0.1 (a free port); use as a context manager, which stops it."""

    def __init__(self, username: str, password: str) -> None:
        self.store = StateStore(username, password)
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.store = self.store
        self._thread = threading.Thread(target=self._server.serve_forever, name="state-server", daemon=True)

    @property
    def port(self) -> int:
        """The port it listens on."""
        return int(self._server.server_address[1])

    def url(self, name: str = "reproducer") -> str:
        """The state address of state ``name`` (also its lock and unlock address)."""
        return f"http://127.0.0.1:{self.port}/state/{name}"

    def __enter__(self) -> StateServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
