"""The sandbox daemon and the valkey-server fleets it starts get an allow-listed environment, never our secrets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reproducer.sandbox import control
from tests.support.secrets import LEAKY

pytestmark = pytest.mark.integration


def test_the_sandbox_daemon_and_its_servers_never_inherit_our_secrets(tmp_path, monkeypatch):
    for name, value in LEAKY.items():
        monkeypatch.setenv(name, value)
    info = control.up(tmp_path / "sandbox", dataset_keys=10)
    try:
        fleets = (tmp_path / "sandbox" / "fleets").glob("*/fleet.json")
        servers = [info["pid"], *(n["pid"] for f in fleets for n in json.loads(f.read_text())["nodes"])]
        assert info["pid"] in servers and len(servers) > 1
        environments = [Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace") for pid in servers]
        assert not [value for value in LEAKY.values() for env in environments if value in env]
    finally:
        assert control.down(tmp_path / "sandbox")
