"""A 3 shards x 1 replica cluster over SSH on six real hosts: slots, placement, failover, re-runs."""

from __future__ import annotations

import secrets
import time
from typing import Any

import pytest
import valkey

from tests.hosts.conftest import changed_tasks, info_field
from tests.hosts.testhosts import TestHosts

NODES = ["h1", "h2", "h3", "h4", "h5", "h6"]
START = "Start the daemons that are not running"


def cluster_info(hosts: TestHosts, name: str, password: str) -> str:
    node = valkey.Valkey(host=hosts.host(name).ip, username="default", password=password, decode_responses=True)
    return str(node.execute_command("CLUSTER", "INFO"))


def cluster_nodes(hosts: TestHosts, name: str, password: str) -> list[list[str]]:
    node = valkey.Valkey(host=hosts.host(name).ip, username="default", password=password, decode_responses=True)
    text = node.execute_command("CLUSTER", "NODES")
    lines = text if isinstance(text, str) else "\n".join(f"{k} {v}" for k, v in text.items())
    return [line.split() for line in str(lines).splitlines() if line.strip()]


def placement(rows: list[list[str]]) -> tuple[dict[str, str], dict[str, str]]:
    """(node id -> ip of every live master, replica ip -> its master's id)."""
    masters = {r[0]: r[1].split(":")[0] for r in rows if "master" in r[2] and "fail" not in r[2]}
    replicas = {r[1].split(":")[0]: r[3] for r in rows if "slave" in r[2] and "fail" not in r[2]}
    return masters, replicas


def all_ok(hosts: TestHosts, names: list[str], password: str) -> bool:
    return all(info_field(cluster_info(hosts, n, password), "cluster_state") == "ok" for n in names)


@pytest.mark.timeout(600)
def test_cluster_three_by_one_placement_failover_and_reruns(hosts: TestHosts, playbook: Any) -> None:
    password = secrets.token_urlsafe(16)
    inventory = hosts.inventory({"valkey": NODES})
    extravars = {
        "valkey_topology": "cluster",
        "valkey_replicas": 1,
        "valkey_users": [{"name": "default", "rules": "~* &* +@all"}],
        "valkey_allowlist_cidrs": [f"{hosts.bridge_ip}/32"],  # the cluster bus between peers must still work
        "valkey_allowlist_persist": False,
        "valkey_install_packages": True,  # the apt task, as a no-op: these hosts are offline and share /usr
    }
    run = lambda **more: playbook(  # noqa: E731
        "site.yml", inventory, extravars | more, {"valkey_user_passwords": {"default": password}}
    )
    assert run().changed > 0
    assert run(valkey_install_packages=False).changed == 0, "second run changed something"

    for name in NODES:
        info = cluster_info(hosts, name, password)
        assert info_field(info, "cluster_state") == "ok"
        assert info_field(info, "cluster_slots_assigned") == "16384"
        assert info_field(info, "cluster_known_nodes") == "6"
    masters, replicas = placement(cluster_nodes(hosts, "h1", password))
    assert len(masters) == 3 and len(replicas) == 3
    assert all(ip != masters[master] for ip, master in replicas.items()), "a replica shares its primary's host"

    victim = next(h.name for h in hosts.hosts if h.ip == sorted(masters.values())[0])
    hosts.run_on(victim, "kill -9 $(cat /run/valkey/valkey-server.pid)")
    others = [n for n in NODES if n != victim]
    start = time.monotonic()

    def recovered() -> bool:
        masters_now = placement(cluster_nodes(hosts, others[0], password))[0]
        promoted = len(masters_now) == 3 and hosts.host(victim).ip not in masters_now.values()
        return promoted and all_ok(hosts, others, password)

    while not recovered():
        assert time.monotonic() - start < 30, "the cluster did not recover from the failover within 30 s"
        time.sleep(0.2)
    print(f"cluster failover took {time.monotonic() - start:.1f} s")

    restart = run(valkey_install_packages=False)
    assert set(changed_tasks(restart)) == {(victim, START)}, "the re-run did more than restart the dead node"
    assert all_ok(hosts, NODES, password)
    masters_after, _ = placement(cluster_nodes(hosts, victim, password))
    assert hosts.host(victim).ip not in masters_after.values(), "the old primary took its slots back"
