"""Scaleway Managed Database for Redis™: one ``scaleway_redis_cluster`` (Redis 7.0, not Valkey), its network.

The facts this module relies on are summarised, with their sources, in docs/reference/targets.md#scaleway.
"""

from __future__ import annotations

import re
from typing import Any

from reproducer.model import ConfigItem, ServiceSpec, User
from reproducer.targets import compat
from reproducer.targets.base import CompatRow, RenderOptions, Support, TerraformProvider
from reproducer.targets.common import BaseTarget, RegionMap, Shape
from reproducer.targets.sizing import NodeSize

EXACT, APPROX, MANUAL, NONE = Support.EXACT, Support.APPROXIMATED, Support.MANUAL, Support.UNSUPPORTED
_SOURCE = "docs/reference/targets.md#scaleway"

#: The Terraform provider of the rendered files: versions.tf, the offline mirror and its schema subset.
PROVIDER = TerraformProvider(
    "registry.terraform.io/scaleway/scaleway",
    "2.81.0",
    resources=("scaleway_redis_cluster", "scaleway_vpc_private_network"),
)
#: The Redis version rendered: the newest in the provider's recorded API answers (docs/reference/targets.md#scaleway).
REDIS_VERSION = "7.0.5"
#: The one user Scaleway creates: the copy connects as ``default`` (docs/reference/targets.md#the-default-user).
INITIAL_USER = "default"
#: Valkey directives Scaleway's ``settings`` accepts (its available settings, docs/reference/targets.md#scaleway).
SETTINGS = frozenset(
    {
        "maxmemory-policy",
        "notify-keyspace-events",
        "databases",
        "maxclients",
        "tcp-keepalive",
        "slowlog-log-slower-than",
        "slowlog-max-len",
    }
)
#: cluster_size: 1 standalone, 2 main + standby, 3 to 6 cluster mode (docs/reference/targets.md#scaleway).
MAX_CLUSTER_NODES = 6
#: Node types, smallest first. Their memory is not in Scaleway's provider or docs that were read.
NODES = tuple(
    NodeSize(name, gb, f"Scaleway node type, {gb:g} GB unverified: see 'scw redis node-type list' ({_SOURCE})")
    for name, gb in (
        ("RED1-MICRO", 1.0),
        ("RED1-XS", 2.0),
        ("RED1-S", 4.0),
        ("RED1-M", 8.0),
        ("RED1-L", 16.0),
        ("RED1-XL", 32.0),
    )
)
#: Zones (a cluster is zonal), and the nearest to each OVH region that has a Scaleway zone nearby.
REGIONS = RegionMap(
    form=re.compile(r"(?:fr-par-[123]|nl-ams-[123]|pl-waw-[123])"),
    nearest={
        "GRA": "fr-par-1",
        "SBG": "fr-par-1",
        "RBX": "fr-par-1",
        "DE": "nl-ams-1",
        "UK": "fr-par-1",
        "WAW": "pl-waw-1",
        "EU-WEST-PAR": "fr-par-1",
        "EU-SOUTH-MIL": "fr-par-1",
    },
)
#: ``snapshot`` policy Scaleway fixes (docs/reference/targets.md#scaleway).
SNAPSHOTS = "Scaleway's fixed RDB snapshots (after 900 s if 1 key changed, 300 s if 10, 60 s if 10,000)"
ENGINE_NOTE = (
    f"Redis {REDIS_VERSION}, not Valkey: Scaleway offers no Valkey. Valkey-only commands and features are absent; "
    "test the application against Redis 7.0"
)
DATA_NOTE = (
    "copy, then verify; RESTORE only takes payloads of an RDB version at or below the target's: Redis 7.0 reads up "
    "to RDB 10 and Valkey 8 writes RDB 11, so keys RESTORE refuses are rebuilt from their values"
)


class ScalewayTarget(BaseTarget):
    """Renders ``scaleway_redis_cluster`` and, for a private source, ``scaleway_vpc_private_network``."""

    name = "scaleway"
    title = "Scaleway Managed Database for Redis"
    providers = (PROVIDER,)
    nodes = NODES
    regions = REGIONS
    acl_form = "parts"
    shape = Shape(
        MAX_CLUSTER_NODES,
        5,
        MAX_CLUSTER_NODES * 6,
        f"Scaleway Redis: cluster_size 1, 2 or 3 to {MAX_CLUSTER_NODES} nodes ({_SOURCE})",
    )
    existing_network_hint = (
        "the Scaleway render reads no existing private network: render with --network new, and add "
        "--adopt scaleway_vpc_private_network.NAME=REGION/ID to take over a private network you already have"
    )

    def context(self, spec: ServiceSpec, options: RenderOptions) -> dict[str, Any]:
        """Template context: node type, cluster size, settings, reachability (ACL or private network)."""
        context = self.base(spec, options)
        shards, replicas = context["shards"], context["replicas"]
        size = cluster_size(shards, replicas)
        private = spec.network.private is not None
        ipv4 = [entry for entry in context["allow_list"] if not entry["ipv6"]]
        return context | {
            "node": self.node(spec, size if size >= 3 else 1),
            "zone": self.region(spec, options),
            "cluster_size": size,
            "cluster_mode": size >= 3,
            "redis_version": REDIS_VERSION,
            "initial_user": INITIAL_USER,
            "settings_map": {k: v for k, v in sorted(context["settings"].items()) if k in SETTINGS},
            "private": private,
            "acl": [] if private else ipv4,
            "dropped_ipv6": [] if private else [e["cidr"] for e in context["allow_list"] if e["ipv6"]],
        }

    def rows(self, spec: ServiceSpec, context: dict[str, Any]) -> list[CompatRow]:
        """Compatibility of every attribute with Scaleway's Redis clusters."""
        decide: dict[str, compat.Decision] = {
            "data": (APPROX, "reproducer copy", DATA_NOTE),
            "engine.version": (APPROX, "version", ENGINE_NOTE),
            "plan.flavor": (EXACT if context["node"].fits else MANUAL, "node_type", context["node"].note),
            **topology_decisions(spec, context),
            "persistence": (APPROX, "—", SNAPSHOTS + "; no setting changes it"),
            "tls": (
                EXACT,
                "tls_enabled",
                f"{str(spec.tls).lower()}; the certificate is self-signed per cluster, for its IP: clients trust the "
                "exported PEM (output ca_certificate) and connect by IP",
            ),
            **network_decisions(spec, context),
            "source.region": (APPROX, "var.zone", f"nearest Scaleway zone: {context['zone']}"),
            "backups.time": (
                NONE,
                "—",
                f"no backup schedule: {SNAPSHOTS}; export on your own schedule (reproducer export) instead",
            ),
            "backups.regions": (NONE, "—", "no backup copies to other regions: store your exports there yourself"),
            "backups.retention_days": (NONE, "—", "no backup retention setting: keep your exports as long as needed"),
            "maintenance_time": (NONE, "—", "Scaleway schedules maintenance itself: watch its status page"),
            "deletion_protection": (
                APPROX if spec.deletion_protection else EXACT,
                "lifecycle.prevent_destroy",
                "no deletion protection argument; Terraform refuses to destroy it"
                if spec.deletion_protection
                else "off, as in the source",
            ),
            "feature.infrastructure_as_code": (EXACT, "this configuration", compat.IAC_NOTE),
            "feature.anti_ddos": (MANUAL, "—", "ask Scaleway about DDoS protection for public endpoints"),
        }
        rows = compat.build_rows(spec, decide, self._user_row, self._config_row)
        created = [{"added": all(user.name != INITIAL_USER for user in spec.users)}]
        return compat.added_default(
            rows, created, "user_name / password_wo", "the one user Scaleway creates, password from var.user_passwords"
        )

    @staticmethod
    def _user_row(user: User) -> compat.Decision:
        if user.name == INITIAL_USER:
            return (
                APPROX,
                "user_name / password_wo",
                "the one user Scaleway creates, with the fixed permissions Scaleway gives it; password from "
                "var.user_passwords",
            )
        return (
            MANUAL,
            "—",
            f"Scaleway creates one user only ({INITIAL_USER}): have this application connect as it and keep to its "
            f"own keys ({user.acl_rules}) itself, or give it a cluster of its own",
        )

    @staticmethod
    def _config_row(item: ConfigItem) -> compat.Decision:
        if item.valkey_name in SETTINGS:
            return EXACT, f"settings[{item.valkey_name}]", item.value
        if item.valkey_name == "save":
            return APPROX, "—", SNAPSHOTS
        name = item.valkey_name or item.source_name
        return (
            NONE,
            "—",
            f"{name} is not among Scaleway's settings: the cluster keeps Redis's default instead of "
            f"{item.value!r}; {_INSTEAD.get(name, 'check that the application does not depend on it')}",
        )


#: What to do instead of a setting Scaleway does not take.
_INSTEAD = {
    "timeout": "close idle connections from the application (the connection pool's idle timeout)",
    "io-threads": "size the node type for the load instead (Scaleway manages threads itself)",
    "lfu-log-factor": "an LFU eviction policy then counts with the default factor: check the hit rate after the move",
    "lfu-decay-time": "an LFU eviction policy then decays with the default time: check the hit rate after the move",
}


def cluster_size(shards: int, replicas: int) -> int:
    """``cluster_size`` for a topology: 1 standalone, 2 with a standby, else one node per shard (at least 3)."""
    if shards > 1:
        return max(3, shards)
    return 2 if replicas else 1


def topology_decisions(spec: ServiceSpec, context: dict[str, Any]) -> dict[str, compat.Decision]:
    """The ``topology.*`` rows: how the (possibly reshaped) topology fits ``cluster_size``."""
    shards, replicas, size = context["shards"], context["replicas"], context["cluster_size"]
    resharded = shards != spec.topology.shards
    if size >= 3:
        mode = f"cluster_size = {size}: cluster mode, each node a primary and a replica of another node"
        shard_note = f"{size} shard(s)" + (f" (at least 3 in cluster mode; {shards} asked)" if size != shards else "")
        shard_note += f", resharded from {spec.topology.shards}" if resharded else ""
        return {
            "topology.mode": (EXACT, "cluster_size", mode),
            "topology.shards": (APPROX if resharded or size != shards else EXACT, "cluster_size", shard_note),
            "topology.replicas_per_shard": (
                EXACT if replicas == 1 else APPROX,
                "cluster_size",
                "one replica per primary, on another node (Scaleway's fixed layout)",
            ),
        }
    standby = "main node and one standby" if size == 2 else "one node, no standby"
    return {
        "topology.mode": (EXACT, "cluster_size", f"cluster_size = {size}: {standby}"),
        "topology.shards": (APPROX if resharded else EXACT, "cluster_size", "one shard (no cluster mode)"),
        "topology.replicas_per_shard": (
            EXACT if replicas <= 1 else APPROX,
            "cluster_size",
            standby + ("" if replicas <= 1 else f": Scaleway has one standby at most, {replicas} asked"),
        ),
    }


def network_decisions(spec: ServiceSpec, context: dict[str, Any]) -> dict[str, compat.Decision]:
    """The ``allow_list`` and ``network.*`` rows: ``acl`` for a public source, ``private_network`` for a private one.

    Scaleway refuses both on one cluster (``acl`` conflicts with ``private_network``), so a source with a vRack
    network gets the private network (what its clients use), and its allow-list cannot be carried over.
    """
    reach = compat.Reach(
        public=not context["private"],
        filters=not context["private"],
        filter_argument="acl" if not context["private"] else "acl (conflicts with private_network)",
        inside="the cluster is reachable only inside its private network",
        network_argument="scaleway_vpc_private_network",
        network=(APPROX, "the vRack network becomes a Scaleway private network (IPAM gives the cluster its IPs)"),
        subnet_argument="scaleway_vpc_private_network.ipv4_subnet",
        subnet=(APPROX, "same CIDR; no allocation pool or gateway of the source"),
        filter_note="Scaleway refuses acl beside private_network, so the private network is rendered (the source "
        "has one) and the allow-list is not: the cluster answers every host of the private network; restrict who "
        "reaches it with the security groups of the instances in that network",
    )
    decisions = compat.network_decisions(spec, reach, context["subnet_cidr"])
    if context["dropped_ipv6"]:
        dropped = ", ".join(context["dropped_ipv6"])
        decisions["allow_list"] = (
            MANUAL,
            "acl",
            f"IPv4 rules only (the Scaleway API refuses IPv6): {dropped} not rendered; those clients connect over "
            "IPv4 or through a private network",
        )
    return decisions
