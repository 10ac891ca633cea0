"""SSH bastion routes for worker processes: a worker asks the process that holds the tunnel for each node's forward.

The tunnel (:class:`~reproducer.data.tunnel.SshTunnel`) is one ``ssh`` control master owned by the copier's
process: it starts it, makes a forward per node on a unix socket, and starts it again when it is lost. A worker
process (:mod:`reproducer.data.workers`) gets endpoints whose route is a :class:`RelayedRoute` instead: to reach a
node it asks its parent, over its worker channel, for that node's forward (``("forward", side, host, port)``),
then connects to the socket itself. So the workers share the parent's one master and its forwards, and a lost
master is started again by the parent, as in a copy without workers.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from reproducer.data.endpoint import Endpoint
from reproducer.errors import DataError

Side = Literal["source", "target"]


@runtime_checkable
class Forwarding(Protocol):
    """A route that can hand out a node's forward as a unix socket (:class:`~reproducer.data.tunnel.SshTunnel`)."""

    def forward(self, host: str, port: int) -> Path:
        """The unix socket of the forward to ``host:port`` (checked, and made on first use)."""

    def describe(self) -> str:
        """How messages name the route."""


class Asker(Protocol):
    """A worker's channel to its parent (:class:`reproducer.data.workers.Channel`)."""

    def ask(self, payload: Any) -> Any:
        """Send ``payload`` to the parent and return its answer (its error is raised here)."""


class RelayedRoute:
    """A route in a worker process: the parent makes each node's forward, the worker connects to it."""

    def __init__(self, side: Side, description: str) -> None:
        self.side, self.description = side, description
        self._channel: Asker | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"side": self.side, "description": self.description, "_channel": None}

    def bind(self, channel: Asker) -> None:
        """Ask through ``channel`` (the worker's own, once it runs)."""
        self._channel = channel

    def describe(self) -> str:
        """How messages name this route: the parent's tunnel's own description."""
        return self.description

    def dial(self, host: str, port: int, timeout: float) -> socket.socket:
        """A socket connected to ``host:port`` through the parent's tunnel."""
        if self._channel is None:
            raise DataError(f"the route {self.description} is not bound to its worker's channel")
        listen = self._channel.ask(("forward", self.side, host, port))  # the parent checks the address
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(listen)
        except OSError as exc:  # the master ended since: the next ask starts it again
            sock.close()
            raise DataError(
                f"cannot reach {host}:{port} {self.description}: {exc.strerror or exc}",
                hint="the next connection starts the SSH connection again; if the bastion stays away, run the "
                "command again later (copy: with --resume)",
                retryable=True,
            ) from None
        return sock


def relayable(*endpoints: Endpoint) -> bool:
    """Whether worker processes can reach every endpoint: directly, or through an SSH tunnel held here."""
    return all(endpoint.route is None or isinstance(endpoint.route, Forwarding) for endpoint in endpoints)


def for_workers(source: Endpoint, target: Endpoint) -> tuple[Endpoint, Endpoint, Callable[[int, Any], str]]:
    """``source`` and ``target`` as workers get them (routes relayed), and the parent's answer to their asks."""
    tunnels: dict[str, Forwarding] = {}

    def relayed(side: Side, endpoint: Endpoint) -> Endpoint:
        if not isinstance(endpoint.route, Forwarding):
            return endpoint
        tunnels[side] = endpoint.route
        return replace(endpoint, route=RelayedRoute(side, endpoint.route.describe()))

    def answer(_index: int, payload: Any) -> str:
        kind, side, host, port = payload
        if kind != "forward" or side not in tunnels:
            raise DataError(f"a worker asked for {kind!r} on the {side!r} route, which this copy does not have")
        return str(tunnels[side].forward(host, port))

    return relayed("source", source), relayed("target", target), answer


def bind(channel: Asker, *endpoints: Endpoint) -> None:
    """In a worker: make the relayed routes of ``endpoints`` ask through ``channel``."""
    for endpoint in endpoints:
        if isinstance(endpoint.route, RelayedRoute):
            endpoint.route.bind(channel)
