"""Azure Cache for Redis Premium: a resource group, the cache, its firewall rules and a private endpoint.

It is Redis, not Valkey. Azure Managed Redis (``azurerm_managed_redis``) would be preferred where it fits a spec,
but it has no IP allow-list, shard count, maintenance window or keyspace notifications in provider 5.10.0, and every
OVH service has a daily maintenance time (a public one an allow-list too): the render is ``azurerm_redis_cache``
Premium, and :func:`managed_misfits` says why for each spec (docs/reference/targets.md#azure).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from reproducer.model import ConfigItem, ServiceSpec, User
from reproducer.targets import compat
from reproducer.targets.base import CompatRow, RenderOptions, Support, TerraformProvider
from reproducer.targets.common import BaseTarget, RegionMap, Shape, time_hours
from reproducer.targets.render import hcl_ident
from reproducer.targets.sizing import NodeSize

EXACT, APPROX, MANUAL, NONE = Support.EXACT, Support.APPROXIMATED, Support.MANUAL, Support.UNSUPPORTED
_SOURCE = "docs/reference/targets.md#azure"

#: The Terraform provider of the rendered files: versions.tf, the offline mirror and its schema subset.
PROVIDER = TerraformProvider(
    "registry.terraform.io/hashicorp/azurerm",
    "5.10.0",
    constraint="~> 5.0",
    resources=(
        "azurerm_resource_group",
        "azurerm_redis_cache",
        "azurerm_redis_firewall_rule",
        "azurerm_virtual_network",
        "azurerm_subnet",
        "azurerm_private_endpoint",
    ),
)
#: Premium sizes (family P, capacity 1-5), memory per shard, smallest first (docs/reference/targets.md#azure).
NODES = (
    NodeSize("P1", 6.0, "third-party table (docs/reference/targets.md#azure)"),
    NodeSize("P2", 13.0, "third-party table (docs/reference/targets.md#azure)"),
    NodeSize("P3", 26.0, "third-party table (docs/reference/targets.md#azure)"),
    NodeSize("P4", 53.0, "third-party table (docs/reference/targets.md#azure)"),
    NodeSize("P5", 120.0, "capacity 5 is allowed; 120 GB is unverified (docs/reference/targets.md#azure)"),
)
#: Premium: 1 to 3 replicas per primary (provider validator); shards beyond 30 are unverified.
SHAPE = Shape(
    30, 3, 30 * 4, "Azure Cache for Redis Premium: replicas_per_primary 1-3, up to 30 shards (" + _SOURCE + ")"
)
#: Location names (lower case, no spaces, as the API normalises them), and the nearest to each OVH region.
REGIONS = RegionMap(
    form=re.compile(r"[a-z]{4,30}[0-9]?"),
    nearest={
        "GRA": "francecentral",
        "SBG": "germanywestcentral",
        "RBX": "francecentral",
        "DE": "germanywestcentral",
        "UK": "uksouth",
        "WAW": "polandcentral",
        "BHS": "canadaeast",
        "SGP": "southeastasia",
        "EU-WEST-PAR": "francecentral",
        "EU-SOUTH-MIL": "italynorth",
        "AP-SOUTH-MUM": "westindia",
    },
)
#: Valkey directive → ``redis_configuration`` argument Azure takes.
PARAMETERS = {"maxmemory-policy": "maxmemory_policy", "notify-keyspace-events": "notify_keyspace_events"}
#: ``maxmemory_policy`` values the provider accepts (validate/max_memory_policy.go).
MAXMEMORY_POLICIES = frozenset(
    {
        "allkeys-lfu",
        "allkeys-lru",
        "allkeys-random",
        "noeviction",
        "volatile-lru",
        "volatile-lfu",
        "volatile-random",
        "volatile-ttl",
    }
)
#: What to do instead, for settings Azure has no argument for.
INSTEAD = {
    "timeout": "the idle timeout cannot be configured: set one in the client's connection pool",
    "io-threads": "Azure sizes the server's threads by SKU: choose a larger P size for more throughput",
    "lfu-log-factor": "Azure keeps Redis's LFU defaults; an allkeys-lfu or volatile-lfu policy still evicts by LFU",
    "lfu-decay-time": "Azure keeps Redis's LFU defaults; an allkeys-lfu or volatile-lfu policy still evicts by LFU",
    "maxmemory-policy": "use one of the eight policies Azure offers (allkeys-lru, volatile-lru, noeviction, ...)",
}
#: ``patch_schedule.day_of_week`` takes one weekday per block: OVH's daily window becomes seven blocks.
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
#: Valkey writes RDB 11; Redis 6 (what Azure runs) reads up to 9 (docs/reference/targets.md#azure).
DATA_NOTE = (
    "Redis 6 (redis_version = 6), not Valkey: Azure offers Redis 4 and 6 only. RESTORE takes only an RDB version at "
    "or below the target's (Valkey 8 writes 11, Redis 6 reads up to 9), so the copy rebuilds every key RESTORE "
    "refuses, and verify compares values"
)


class AzureTarget(BaseTarget):
    """Renders ``azurerm_redis_cache`` (Premium) with firewall rules, and a private endpoint for a vRack source."""

    name = "azure"
    title = "Azure Cache for Redis (Premium)"
    providers = (PROVIDER,)
    nodes = NODES
    regions = REGIONS
    shape = SHAPE
    existing_network_hint = (
        "render with --network new (the default) and peer the VNet it makes with yours: adopting your VNet would let "
        "this configuration rewrite its address space"
    )

    def context(self, spec: ServiceSpec, options: RenderOptions) -> dict[str, Any]:
        """Template context: SKU, shards and replicas, configuration, patch schedule, firewall rules, network."""
        context = self.base(spec, options)
        shards, replicas = context["shards"], context["replicas"]
        node = self.node(spec, shards)
        name = cache_name(str(context["name"]))
        rules = firewall_rules(spec)
        return context | {
            "node": node,
            "capacity": int(node.size.name[1:]),
            "cache_name": name,
            "location": self.region(spec, options),
            "shard_count": shards if shards > 1 else 0,
            "replicas_per_primary": min(replicas, 3) if shards == 1 and replicas > 1 else 0,
            "redis_configuration": redis_configuration(context["settings"]),
            "patch_hour": time_hours(spec.maintenance_time, 4),
            "days": DAYS,
            "rules": rules,
            "ipv6": [entry["cidr"] for entry in context["allow_list"] if entry["ipv6"]],
            "private": spec.network.private is not None,
            # A cache with no firewall rule lets every address in: without an IPv4 CIDR it gets no public access.
            "public": spec.network.private is None and bool(rules),
            "users": [
                {"name": "default", "ident": "default", "added": not any(u.name == "default" for u in spec.users)}
            ],
        }

    def rows(self, spec: ServiceSpec, context: dict[str, Any]) -> list[CompatRow]:
        """Compatibility of every attribute with Azure Cache for Redis Premium."""
        node, shards, replicas = context["node"], context["shards"], context["replicas"]
        misfits = managed_misfits(spec)
        decide: dict[str, compat.Decision] = {
            "engine.version": (APPROX, "redis_version", DATA_NOTE),
            "plan.flavor": (
                EXACT if node.fits else MANUAL,
                "sku_name / family / capacity",
                f"Premium P{context['capacity']}: {node.note}; azurerm_managed_redis does not fit: {'; '.join(misfits)}"
                if misfits
                else f"Premium P{context['capacity']}: {node.note}; azurerm_managed_redis would fit this spec, but "
                "only the Premium render is built",
            ),
            "topology.mode": (EXACT, "shard_count", "OSS cluster" if shards > 1 else "no clustering"),
            "topology.shards": (
                APPROX if shards != spec.topology.shards else EXACT,
                "shard_count",
                f"{shards} shard(s)",
            ),
            "topology.replicas_per_shard": _replica_decision(shards, replicas),
            "persistence": (
                MANUAL,
                "redis_configuration.rdb_backup_enabled",
                "Premium RDB persistence writes to a storage account: add azurerm_storage_account and set "
                "rdb_backup_enabled, rdb_backup_frequency and rdb_storage_connection_string",
            ),
            "tls": (EXACT, "non_ssl_port_enabled / minimum_tls_version", "TLS only on port 6380, TLS 1.2"),
            **self._network(spec, context),
            "source.region": (APPROX, "var.location", f"nearest Azure region: {context['location']}"),
            "backups.time": (
                NONE,
                "—",
                "Azure has no backup time of day; RDB export runs every rdb_backup_frequency minutes instead",
            ),
            "backups.regions": (
                MANUAL,
                "azurerm_redis_linked_server",
                "geo-replicate to a cache in another region, or copy exported RDB files yourself",
            ),
            "backups.retention_days": (
                MANUAL,
                "rdb_backup_max_snapshot_count",
                "retention is a number of snapshots, not days: size it from the backup frequency",
            ),
            "maintenance_time": (
                APPROX,
                "patch_schedule",
                f"every day at {context['patch_hour']:02d}:00 UTC, a 5-hour window (Azure's minimum)",
            ),
            "deletion_protection": (APPROX, "lifecycle.prevent_destroy", "no deletion protection argument"),
            "feature.infrastructure_as_code": (EXACT, "this configuration", compat.IAC_NOTE),
            "feature.anti_ddos": (
                MANUAL,
                "azurerm_network_ddos_protection_plan",
                "Azure's infrastructure DDoS protection is always on; for more, add a DDoS Network Protection plan "
                "(paid) to the VNet",
            ),
        }
        rows = compat.build_rows(spec, decide, self._user_row, self._config_row)
        return compat.added_default(
            rows, context["users"], "primary_access_key", "the access key (output user_passwords), full rights"
        )

    @staticmethod
    def _network(spec: ServiceSpec, context: dict[str, Any]) -> dict[str, compat.Decision]:
        private = context["private"]
        reach = compat.Reach(
            public=not private,
            filters=True,
            filter_argument="azurerm_redis_firewall_rule",
            inside="the cache is reachable only through its private endpoint",
            network_argument="azurerm_virtual_network + azurerm_private_endpoint",
            network=(APPROX, "the vRack network becomes a VNet; the cache joins it through a private endpoint"),
            subnet_argument="azurerm_subnet",
            subnet=(APPROX, "the subnet CIDR becomes the private endpoint's subnet; no pool or gateway"),
        )
        decisions = compat.network_decisions(spec, reach, context["subnet_cidr"])
        notes = []
        if private:
            notes.append(
                "public network access is off; the rules (start_ip/end_ip ranges) filter the public endpoint "
                "only: restrict the private endpoint's subnet with a network security group"
            )
        if context["ipv6"]:
            notes.append(f"IPv6 entries have no firewall rule (IPv4 only): {', '.join(context['ipv6'])}")
        if not private and not context["public"]:
            notes.append(
                "no IPv4 CIDR to allow, and a cache with no firewall rule admits every address: public network "
                "access is off, so nothing reaches the cache until you add a rule or a private endpoint"
            )
        if notes:
            decisions["allow_list"] = (APPROX, "azurerm_redis_firewall_rule", "; ".join(notes))
        return decisions

    @staticmethod
    def _user_row(user: User) -> compat.Decision:
        if user.name == "default":
            return (
                APPROX,
                "primary_access_key",
                "the access key is the default user's password (output user_passwords); full rights",
            )
        rules = " ".join(
            (*user.categories, *user.commands, *(f"~{k}" for k in user.keys), *(f"&{c}" for c in user.channels))
        )
        return (
            MANUAL,
            "azurerm_redis_cache_access_policy + _assignment",
            f"Azure has no password users: make an access policy (permissions {rules!r}) and assign it to the "
            "app's Entra ID principal (object_id); the app then authenticates with an Entra token (user name = "
            "object id), or uses the access key (full rights); key and channel patterns in a policy are unverified",
        )

    @staticmethod
    def _config_row(item: ConfigItem) -> compat.Decision:
        argument = PARAMETERS.get(item.valkey_name or "")
        if argument and (argument != "maxmemory_policy" or item.value in MAXMEMORY_POLICIES):
            return EXACT, f"redis_configuration.{argument}", item.value
        if item.valkey_name == "save":
            return MANUAL, "redis_configuration.rdb_backup_*", "RDB persistence needs a storage account (see above)"
        instead = INSTEAD.get(
            item.valkey_name or "", "the cache keeps Redis's default: drop it, or handle it in the app"
        )
        return NONE, "—", f"{item.source_name} has no Azure Cache for Redis setting; {instead}"


def _replica_decision(shards: int, replicas: int) -> compat.Decision:
    if shards > 1:
        note = "one replica per shard (Premium's default; replicas_per_primary is not used with shards)"
        return (EXACT if replicas == 1 else APPROX), "shard_count", note
    if replicas == 0:
        return APPROX, "sku_name", "Premium always runs a replica beside the primary"
    return EXACT, "replicas_per_primary", f"{max(replicas, 1)} replica(s), automatic failover"


def cache_name(name: str) -> str:
    """A cache name Azure takes: letters, digits and single hyphens (from a slug, which has no other character)."""
    return re.sub(r"-{2,}", "-", name).strip("-") or "redis"


def redis_configuration(settings: dict[str, str]) -> dict[str, str]:
    """The ``redis_configuration`` arguments of the spec's settings (a policy Azure does not offer is left out).

    The eviction policy is Valkey's default, ``noeviction``, unless the source sets one: Azure's would be
    ``volatile-lru``, which evicts keys the source kept.
    """
    return {"maxmemory_policy": "noeviction"} | {
        PARAMETERS[key]: value
        for key, value in sorted(settings.items())
        if key in PARAMETERS and (key != "maxmemory-policy" or value in MAXMEMORY_POLICIES)
    }


def firewall_rules(spec: ServiceSpec) -> list[dict[str, str]]:
    r"""One rule per IPv4 CIDR: its first and last address, and a name of ``\w`` characters only."""
    rules = []
    for entry in spec.allow_list:
        network = ipaddress.ip_network(entry.cidr)
        if network.version != 4:
            continue
        name = "allow_" + re.sub(r"[^0-9]", "_", entry.cidr)
        rules.append(
            {
                "name": name,
                "ident": str(hcl_ident(name)),
                "start_ip": str(network.network_address),
                "end_ip": str(network.broadcast_address),
                "cidr": entry.cidr,
            }
        )
    return rules


def managed_misfits(spec: ServiceSpec) -> list[str]:
    """Why ``azurerm_managed_redis`` cannot reproduce ``spec`` (empty when it fits)."""
    settings = {c.valkey_name for c in spec.configuration}
    # A private source's allow-list filters inside its network: neither render's firewall rules can do that.
    checks = (
        (bool(spec.allow_list) and spec.network.private is None, "it has no IP allow-list for a public endpoint"),
        (spec.maintenance_time is not None, "it has no maintenance window"),
        ("notify-keyspace-events" in settings, "it has no notify-keyspace-events"),
    )
    return [reason for failed, reason in checks if failed]
