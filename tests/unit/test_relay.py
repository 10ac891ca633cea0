"""Worker routes through the parent's SSH tunnel (``reproducer.data.relay``), without ssh: a forwarding stand-in."""

from __future__ import annotations

import pickle
import socket
from dataclasses import replace
from pathlib import Path

import pytest

from reproducer.data import relay
from reproducer.data.endpoint import parse_endpoint
from reproducer.errors import DataError


class FakeTunnel:
    """Forwards every node to one listening unix socket, recording what it was asked for."""

    def __init__(self, listen: Path) -> None:
        self.listen, self.asked = listen, []

    def forward(self, host: str, port: int) -> Path:
        self.asked.append((host, port))
        return self.listen

    def describe(self) -> str:
        return "via ssh://bastion.example"

    def dial(self, host: str, port: int, timeout: float) -> socket.socket:
        raise AssertionError("a worker never dials the parent's tunnel itself")


class DialOnly:
    def dial(self, host: str, port: int, timeout: float) -> socket.socket:
        raise AssertionError("not used")

    def describe(self) -> str:
        return "via a test route"


class ParentChannel:
    """What a worker's channel does, in one process: the parent's answer, its error raised."""

    def __init__(self, answer) -> None:
        self.answer = answer

    def ask(self, payload):
        return self.answer(0, payload)


def endpoint(route=None):
    return replace(parse_endpoint("valkey://10.0.0.5:6379", environ={}), route=route)


def test_only_a_forwarding_route_is_relayed_and_the_worker_connects_to_the_parents_forward(tmp_path):
    listen = tmp_path / "f0.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(listen))
    server.listen(1)
    tunnel = FakeTunnel(listen)
    source, target, answer = relay.for_workers(endpoint(tunnel), endpoint())
    assert relay.relayable(endpoint(tunnel), endpoint()) and not relay.relayable(endpoint(DialOnly()))
    assert target.route is None and isinstance(source.route, relay.RelayedRoute)
    shipped = pickle.loads(pickle.dumps(source))  # as the jobs reach a worker: no channel travels
    with pytest.raises(DataError, match="not bound"):
        shipped.route.dial("10.0.0.7", 6379, 2)
    relay.bind(ParentChannel(answer), shipped)
    with shipped.route.dial("10.0.0.7", 6379, 2) as sock:
        accepted, _ = server.accept()
        sock.sendall(b"PING\r\n")
        assert accepted.recv(6) == b"PING\r\n"
        accepted.close()
    assert tunnel.asked == [("10.0.0.7", 6379)] and shipped.route.describe() == tunnel.describe()
    server.close()


def test_a_forward_gone_since_is_a_retryable_error_naming_the_route(tmp_path):
    source, _target, answer = relay.for_workers(endpoint(FakeTunnel(tmp_path / "gone.sock")), endpoint())
    relay.bind(ParentChannel(answer), source)
    with pytest.raises(DataError, match=r"cannot reach 10.0.0.7:6379 via ssh://bastion.example") as caught:
        source.route.dial("10.0.0.7", 6379, 2)
    assert caught.value.retryable and "--resume" in caught.value.hint


def test_a_question_the_parent_does_not_know_is_refused():
    _source, _target, answer = relay.for_workers(endpoint(), endpoint())
    with pytest.raises(DataError, match="does not have"):
        answer(0, ("forward", "source", "10.0.0.7", 6379))
    with pytest.raises(DataError, match="does not have"):
        answer(0, ("shell", "source", "id", 0))
