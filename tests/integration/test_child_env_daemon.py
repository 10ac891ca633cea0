"""The sandbox daemon and the valkey-server fleets it starts get an allow-listed environment, never our secrets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reproducer.sandbox import control

pytestmark = pytest.mark.integration

#: Secrets a CI job typically holds, under names no deny-list guesses.
LEAKY = {
    "SRC_PW": "src-pw-value",
    "VALKEY_PASS": "valkey-pass-value",
    "DATABASE_URL": "valkey://app:url-pw-value@db:6379",
    "OVH_APPLICATION_SECRET": "ovh-secret-value",
    "AWS_SECRET_ACCESS_KEY": "aws-secret-value",
    "MY_API": "my-api-value",
}


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
