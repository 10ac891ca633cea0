"""Seed the OVH API emulator with a realistic project, and fill a service with a realistic dataset.

Seeding goes through the emulator's HTTP API with the official ``ovh`` client, as a user would set a
service up on OVH; only what the API cannot create for Valkey (the vRack network) is put in the store.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import valkey

from reproducer.ovhconf import check_default_configs
from reproducer.sandbox.ovh_api import OvhApiServer

check_default_configs()

import ovh  # noqa: E402  (after the check above: importing the client parses the ovh.conf files)

DEMO_ALLOW_LIST = (
    {"ip": "10.42.0.0/24", "description": "application subnet (vRack)"},
    {"ip": "192.0.2.10/32", "description": "office bastion"},
    {"ip": "203.0.113.0/28", "description": "CI runners"},
)
DEMO_USERS = (
    {"name": "app", "categories": ["+@all", "-@dangerous"], "commands": [], "keys": ["*"], "channels": ["*"]},
    {
        "name": "analytics",
        "categories": ["+@read"],
        "commands": ["+info"],
        "keys": ["metrics:*", "events:*"],
        "channels": [],
    },
)
DEMO_ADVANCED = {"redis_lfu_log_factor": "10", "redis_notify_keyspace_events": "Ex", "redis_timeout": "300"}


@dataclass(frozen=True)
class Seeded:
    """What seeding made: credentials, the project, the service, and the app user's password."""

    credentials: dict[str, str]
    project: str
    service_id: str
    app_password: str


def ovh_client(server: OvhApiServer, credentials: dict[str, str]) -> ovh.Client:
    """An official ``ovh`` client pointed at the emulator."""
    ovh.client.ENDPOINTS.setdefault(server.url, server.url)
    return ovh.Client(endpoint=server.url, **credentials)


def seed_business_service(server: OvhApiServer, *, plan: str = "business") -> Seeded:
    """Create credentials, a project on a vRack, and a Valkey service with 3 CIDRs, 3 users, settings."""
    store = server.store
    credentials = store.add_credentials()
    project = store.add_project("reproducer sandbox")
    network = store.add_private_network(project, name="valkey-backend", vlan_id=42, region="GRA9", vrack="pn-000042")
    subnet = store.add_subnet(
        project,
        network["id"],
        cidr="10.42.0.0/24",
        gateway="10.42.0.1",
        start="10.42.0.10",
        end="10.42.0.200",
    )
    client = ovh_client(server, credentials)
    base = f"/cloud/project/{project}/database/valkey"
    service = client.post(base, **_creation_body(plan, network["regions"][0]["openstackId"], subnet["id"]))
    app_password = ""
    for user in DEMO_USERS:
        created = client.post(f"{base}/{service['id']}/user", **user)
        app_password = created["password"] if user["name"] == "app" else app_password
    client.put(f"{base}/{service['id']}/advancedConfiguration", **DEMO_ADVANCED)
    return Seeded(credentials, project, service["id"], app_password)


def _creation_body(plan: str, network_id: str, subnet_id: str) -> dict[str, Any]:
    nodes = 2 if plan == "business" else 1
    return {
        "description": "cache-prod",
        "plan": plan,
        "version": "8.0",
        "nodesPattern": {"flavor": "db1-7", "number": nodes, "region": "GRA"},
        "networkId": network_id,
        "subnetId": subnet_id,
        "ipRestrictions": list(DEMO_ALLOW_LIST),
        "maintenanceTime": "04:00:00",
        "backups": {"time": "02:00:00", "regions": ["GRA", "SBG"]},
    }


def load_dataset(client: valkey.Valkey, keys: int = 2000, *, seed: int = 7, ttl_share: float = 0.2) -> int:
    """Write ``keys`` keys of every common type (strings, hashes, sets, sorted sets, lists, streams).

    Every other stream has a consumer group; a ``ttl_share`` of all keys get a TTL between 1 and 24 hours.
    Deterministic for a given ``seed``.
    Returns the number of keys written.
    """
    rng = random.Random(seed)
    writers = (_string, _hash, _set, _zset, _list, _stream)
    pipe: Any = client.pipeline(transaction=False)
    for index in range(keys):
        key = writers[index % len(writers)](pipe, index, rng)
        if rng.random() < ttl_share:
            pipe.pexpire(key, rng.randint(3_600_000, 86_400_000))
        if index % 500 == 499:
            pipe.execute()
    pipe.execute()
    return keys


def _string(pipe: Any, index: int, rng: random.Random) -> str:
    key = f"session:{index:06d}"
    pipe.set(key, rng.randbytes(rng.randint(16, 512)))
    return key


def _hash(pipe: Any, index: int, rng: random.Random) -> str:
    key = f"user:{index:06d}"
    pipe.hset(
        key,
        mapping={"name": f"user-{index}", "plan": rng.choice(["free", "pro"]), "visits": rng.randint(0, 999)},
    )
    return key


def _set(pipe: Any, index: int, rng: random.Random) -> str:
    key = f"tags:{index:06d}"
    pipe.sadd(key, *{f"tag-{rng.randint(0, 50)}" for _ in range(rng.randint(1, 8))})
    return key


def _zset(pipe: Any, index: int, rng: random.Random) -> str:
    key = f"leaderboard:{index:06d}"
    pipe.zadd(key, {f"player-{i}": rng.random() * 1000 for i in range(rng.randint(1, 20))})
    return key


def _list(pipe: Any, index: int, rng: random.Random) -> str:
    key = f"queue:{index:06d}"
    pipe.rpush(key, *[f"job-{rng.randint(0, 10**6)}" for _ in range(rng.randint(1, 10))])
    return key


def _stream(pipe: Any, index: int, rng: random.Random) -> str:
    key = f"events:{index:06d}"
    for _ in range(rng.randint(1, 5)):
        pipe.xadd(key, {"type": rng.choice(["click", "view", "buy"]), "value": str(rng.randint(0, 100))})
    if index % 4 == 1:  # every other stream
        pipe.xgroup_create(key, "workers", id="0")
    return key
