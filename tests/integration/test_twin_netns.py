"""Twins whose nodes live in a private network: the provider and its Valkey run in a network namespace.

A cloud such as ElastiCache gives nodes only private addresses; `install_twins(..., netns=NAME)` reproduces
that: Terraform still drives the provider (its plugin socket is a file), but every server it starts listens
inside the namespace, unreachable from the root namespace.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import valkey

from reproducer.errors import SandboxError
from reproducer.offline import offline_provider
from reproducer.run.terraform import Terraform
from reproducer.twins import install_twins, running_processes, stop_all, trusted_ca

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("ip"), reason="network namespaces need root and ip"),
]

MAIN = """terraform {
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "%s"
    }
  }
}

provider "aws" {
  region = "eu-west-3"
}

resource "aws_elasticache_replication_group" "private" {
  replication_group_id       = "private-cache"
  description                = "nodes in a private network"
  engine                     = "valkey"
  engine_version             = "8.0"
  node_type                  = "cache.t4g.small"
  transit_encryption_enabled = true
  port                       = 6379
}

output "host" {
  value = aws_elasticache_replication_group.private.primary_endpoint_address
}

output "port" {
  value = aws_elasticache_replication_group.private.port
}
"""


@pytest.fixture
def netns() -> Iterator[str]:
    """A fresh network namespace with its loopback up (removed afterwards)."""
    name = f"rtw-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False)


def _ping_inside(netns: str, host: str, port: int, ca: Path) -> str:
    argv = ["ip", "netns", "exec", netns, "valkey-cli", "-h", host, "-p", str(port), "--tls", "--cacert", str(ca)]
    return subprocess.run([*argv, "PING"], check=False, capture_output=True, text=True, timeout=30).stdout.strip()


def test_a_twin_in_a_namespace_serves_only_inside_it(tmp_path, netns):
    root, workdir = tmp_path / "twins", tmp_path / "tf"
    workdir.mkdir()
    (workdir / "main.tf").write_text(MAIN % offline_provider("aws").version, encoding="utf-8")
    tf = Terraform(workdir, cli_config=install_twins(root, ["aws"], netns=netns), timeout=300)
    try:
        tf.init(backend=False)
        tf.apply(tf.plan([]))
        outputs = {name: output.value for name, output in tf.output().items()}
        host, port = outputs["host"], int(outputs["port"])
        assert len(running_processes(root)) == 1
        assert _ping_inside(netns, host, port, trusted_ca(root)) == "PONG"
        with pytest.raises(valkey.exceptions.ConnectionError):
            valkey.Valkey(host=host, port=port, ssl=True, ssl_ca_certs=str(trusted_ca(root)), socket_timeout=3).ping()
        tf.destroy([])
        assert running_processes(root) == []
    finally:
        stop_all(root)


@pytest.mark.parametrize("name", ["no-such-namespace-here", "-oops", "a/b", "x" * 80])
def test_an_unknown_or_malformed_namespace_is_refused_before_anything_is_written(tmp_path, name):
    with pytest.raises(SandboxError, match="no network namespace") as caught:
        install_twins(tmp_path / "twins", ["aws"], netns=name)
    assert "ip netns add" in (caught.value.hint or "")
    assert not (tmp_path / "twins").exists()
