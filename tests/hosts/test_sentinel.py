"""Primary + 2 replicas + 3 Sentinels over SSH on three real hosts: TLS, ACL users, allow-list, failover, re-runs."""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import Any

import pytest
import valkey

from tests.hosts.conftest import changed_tasks
from tests.hosts.testhosts import TestHosts
from tests.support.wait import eventually

DATA = ["h1", "h2", "h3"]
NAME = "cache"
START = "Start the daemons that are not running"


def variables(hosts: TestHosts, tls_dir: Path) -> dict[str, Any]:
    return {
        "valkey_topology": "sentinel",
        "valkey_primary_name": NAME,
        "valkey_users": [
            {"name": "default", "rules": "~* &* +@all"},
            {"name": "app", "rules": "~app:* &* +@all -@dangerous"},
        ],
        "valkey_config": {"maxmemory-policy": "allkeys-lru"},
        "valkey_tls": True,
        "valkey_tls_generate": True,
        "valkey_tls_generate_dir": str(tls_dir),
        # this machine (the bridge) and h5 are allowed; h4 and h6 are not
        "valkey_allowlist_cidrs": [f"{hosts.bridge_ip}/32", f"{hosts.host('h5').ip}/32"],
        "valkey_allowlist_persist": False,
        "valkey_sentinel_down_after_ms": 2000,
        "valkey_sentinel_failover_timeout_ms": 10000,
    }


def client(ip: str, tls_dir: Path, *, port: int = 6379, **auth: Any) -> valkey.Valkey:
    return valkey.Valkey(
        host=ip, port=port, ssl=True, ssl_ca_certs=str(tls_dir / "ca.crt"), decode_responses=True, **auth
    )


def current_primary(hosts: TestHosts, tls_dir: Path, via: str) -> str:
    address, _port = client(hosts.host(via).ip, tls_dir, port=26379).sentinel_get_master_addr_by_name(NAME)
    return next(h.name for h in hosts.hosts if h.ip == address)


def cli_from(hosts: TestHosts, name: str, target: str, tls_dir: Path, port: int = 6379) -> str:
    ip = hosts.host(target).ip
    tls = ["--tls", "--cacert", str(tls_dir / "ca.crt")]
    result = hosts.netns_exec(name, "timeout", "5", "valkey-cli", *tls, "-h", ip, "-p", str(port), "ping")
    return result.stdout + result.stderr


@pytest.mark.timeout(600)
def test_sentinel_tls_users_allowlist_failover_and_reruns(hosts: TestHosts, playbook: Any, tmp_path: Path) -> None:
    tls_dir = tmp_path / "tls"
    passwords = {"default": secrets.token_urlsafe(16), "app": secrets.token_urlsafe(16)}
    inventory = hosts.inventory({"valkey": DATA, "valkey_sentinel": DATA})
    run = lambda: playbook("site.yml", inventory, variables(hosts, tls_dir), {"valkey_user_passwords": passwords})  # noqa: E731

    first = run()
    assert first.changed > 0
    assert run().changed == 0, "second run changed something"
    admin = {"username": "default", "password": passwords["default"]}
    primary = client(hosts.host("h1").ip, tls_dir, **admin)

    # replication over TLS, with the ACL users
    assert primary.info("replication")["connected_slaves"] == 2
    app = client(hosts.host("h1").ip, tls_dir, username="app", password=passwords["app"])
    app.set("app:k", "v")
    assert primary.execute_command("WAIT", 2, 5000) == 2
    assert client(hosts.host("h3").ip, tls_dir, **admin).get("app:k") == "v"
    with pytest.raises(valkey.exceptions.NoPermissionError):
        app.flushall()
    with pytest.raises(valkey.exceptions.AuthenticationError):
        client(hosts.host("h1").ip, tls_dir, username="app", password="wrong").ping()
    assert primary.config_get("maxmemory-policy") == {"maxmemory-policy": "allkeys-lru"}

    # the allow-list: h5 is inside the CIDRs, h4 is not (Valkey and Sentinel ports); peers replicate through it
    assert "NOAUTH" in cli_from(hosts, "h5", "h1", tls_dir)
    assert "NOAUTH" not in cli_from(hosts, "h4", "h1", tls_dir)
    assert "refused" in cli_from(hosts, "h4", "h2", tls_dir, 26379).lower()

    # Sentinels see each other, then the primary dies: a replica is promoted within 30 s
    sentinel = client(hosts.host("h2").ip, tls_dir, port=26379)
    eventually(
        lambda: sentinel.sentinel_master(NAME)["num-other-sentinels"] == 2,
        "Sentinels discover each other",
        interval=0.1,
    )
    hosts.run_on("h1", "kill -9 $(cat /run/valkey/valkey-server.pid)")
    killed = time.monotonic()
    eventually(lambda: current_primary(hosts, tls_dir, "h2") != "h1", "failover", interval=0.1)
    print(f"failover took {time.monotonic() - killed:.1f} s")
    promoted = current_primary(hosts, tls_dir, "h2")

    # a re-run starts the dead node as a replica of the promoted one, changing nothing else; the next changes nothing
    restart = run()
    assert set(changed_tasks(restart)) == {("h1", START)}
    assert run().changed == 0, "run after the restart changed something"
    assert current_primary(hosts, tls_dir, "h3") == promoted
    old = client(hosts.host("h1").ip, tls_dir, **admin)
    eventually(lambda: old.info("replication")["master_link_status"] == "up", "h1 syncs", interval=0.1)
    assert old.info("replication")["master_host"] == hosts.host(promoted).ip
    assert old.get("app:k") == "v"
