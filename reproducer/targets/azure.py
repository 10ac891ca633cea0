"""Azure: Azure Managed Redis where it fits the spec, else Azure Cache for Redis Premium (with firewall rules).

It is Redis, not Valkey. :func:`managed_misfits` decides: a spec fits ``azurerm_managed_redis`` unless it needs
something Managed Redis lacks in provider 5.10.0 and Premium has: IP firewall rules for a public endpoint
(Managed Redis only has ``public_network_access`` Enabled/Disabled), keyspace notifications, or more than one replica
per shard. A maintenance window is no blocker: Azure schedules Managed Redis updates itself (the report says so).
Either render is a resource group and the cache; a vRack source adds a VNet, a subnet and a private endpoint
(docs/reference/targets.md#azure, docs/reference/targets.md#azure-managed-redis).
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
from reproducer.targets.sizing import HEADROOM, Choice, NodeSize, choose

EXACT, APPROX, MANUAL, NONE = Support.EXACT, Support.APPROXIMATED, Support.MANUAL, Support.UNSUPPORTED
_SOURCE = "docs/reference/targets.md#azure"

#: The Terraform provider of the rendered files: versions.tf, the offline mirror and its schema subset.
PROVIDER = TerraformProvider(
    "registry.terraform.io/hashicorp/azurerm",
    "5.10.0",
    constraint="~> 5.0",
    resources=(
        "azurerm_resource_group",
        "azurerm_managed_redis",
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

_MANAGED = "docs/reference/targets.md#azure-managed-redis"
#: Managed Redis SKUs by usable memory (about 80% of the advertised size), smallest first: Balanced, then the
#: Memory Optimized sizes beyond the largest Balanced one (docs/reference/targets.md#azure-managed-redis).
MANAGED_NODES = tuple(
    NodeSize(sku, round(advertised * 0.8, 1), f"{advertised:g} GB advertised, about 80% usable, {_MANAGED}")
    for sku, advertised in (
        ("Balanced_B0", 0.5),
        ("Balanced_B1", 1),
        ("Balanced_B3", 3),
        ("Balanced_B5", 6),
        ("Balanced_B10", 12),
        ("Balanced_B20", 24),
        ("Balanced_B50", 60),
        ("Balanced_B100", 120),
        ("Balanced_B150", 180),
        ("Balanced_B250", 240),
        ("Balanced_B350", 360),
        ("Balanced_B500", 480),
        ("Balanced_B700", 720),
        ("Balanced_B1000", 960),
        ("MemoryOptimized_M1500", 1440),
        ("MemoryOptimized_M2000", 1920),
    )
)
#: Non-clustered Managed Redis goes up to 24 GB advertised (docs/reference/targets.md#azure-managed-redis).
NO_CLUSTER_MAX_GB = 24 * 0.8
#: Valkey ``maxmemory-policy`` → ``default_database.eviction_policy``.
EVICTION_POLICIES = {
    "allkeys-lfu": "AllKeysLFU",
    "allkeys-lru": "AllKeysLRU",
    "allkeys-random": "AllKeysRandom",
    "noeviction": "NoEviction",
    "volatile-lfu": "VolatileLFU",
    "volatile-lru": "VolatileLRU",
    "volatile-random": "VolatileRandom",
    "volatile-ttl": "VolatileTTL",
}
#: Managed Redis is Redis 7.4 (Redis Enterprise); the twin stands in with Redis 7.0.
MANAGED_DATA_NOTE = (
    "Azure Managed Redis runs Redis 7.4 on Redis Enterprise (no version argument), not Valkey, and only database 0: "
    "RESTORE takes only an RDB version at or below the target's, so the copy reads the target's version first and "
    "rebuilds every key RESTORE refuses; verify compares values"
)
CLUSTERING_NOTES = {
    "NoCluster": "no clustering, as the source (non-clustered Managed Redis goes up to 24 GB)",
    "OSSCluster": "OSS cluster: cluster-aware clients connect on port 10000 and are redirected to each shard's "
    "port in 8500-8599; Azure sets the number of shards from the SKU",
    "EnterpriseCluster": "Enterprise cluster: one endpoint on port 10000 in front of the shards, so clients need no "
    "cluster support, but the keys of one multi-key command must share a hash slot (use hash tags); "
    "OSSCluster would be faster but needs cluster-aware clients",
}


class AzureTarget(BaseTarget):
    """Renders ``azurerm_managed_redis`` where it fits the spec, else ``azurerm_redis_cache`` Premium."""

    name = "azure"
    title = "Azure (Managed Redis, or Cache for Redis Premium)"
    providers = (PROVIDER,)
    nodes = NODES
    regions = REGIONS
    shape = SHAPE
    existing_network_hint = (
        "render with --network new (the default) and peer the VNet it makes with yours: adopting your VNet would let "
        "this configuration rewrite its address space"
    )

    def context(self, spec: ServiceSpec, options: RenderOptions) -> dict[str, Any]:
        """Template context: the resource chosen by fit, its size, configuration and network."""
        context = self.base(spec, options)
        misfits = managed_misfits(spec, context["replicas"])
        shared = {
            "location": self.region(spec, options),
            "private": spec.network.private is not None,
            "ipv6": [entry["cidr"] for entry in context["allow_list"] if entry["ipv6"]],
            "misfits": misfits,
            "managed": not misfits,
            "users": [
                {"name": "default", "ident": "default", "added": not any(u.name == "default" for u in spec.users)}
            ],
        }
        chosen = self._premium(spec, context) if misfits else self._managed(spec, context)
        return context | shared | chosen

    def _premium(self, spec: ServiceSpec, context: dict[str, Any]) -> dict[str, Any]:
        shards, replicas = context["shards"], context["replicas"]
        node = self.node(spec, shards)
        rules = firewall_rules(spec)
        return {
            "node": node,
            "capacity": int(node.size.name[1:]),
            "cache_name": cache_name(str(context["name"])),
            "shard_count": shards if shards > 1 else 0,
            "replicas_per_primary": min(replicas, 3) if shards == 1 and replicas > 1 else 0,
            "redis_configuration": redis_configuration(directives(spec, context["settings"])),
            "patch_hour": time_hours(spec.maintenance_time, 4),
            "days": DAYS,
            "rules": rules,
            # A cache with no firewall rule lets every address in: without an IPv4 CIDR it gets no public access.
            "public": spec.network.private is None and bool(rules),
        }

    @staticmethod
    def _managed(spec: ServiceSpec, context: dict[str, Any]) -> dict[str, Any]:
        shards = context["shards"]
        node = managed_node(spec.plan.memory_gb or 0, shards)
        clustering = clustering_policy(shards, node)
        return {
            "node": node,
            "cache_name": managed_name(cache_name(str(context["name"]))),
            "sku": node.size.name,
            "clustering": clustering,
            "cluster_mode": clustering == "OSSCluster",
            "high_availability": context["replicas"] >= 1,
            "eviction_policy": eviction_policy(directives(spec, context["settings"])),
            "rdb": context["settings"].get("save", "on") != "",
            "rules": [],
            "public": False,
        }

    def rows(self, spec: ServiceSpec, context: dict[str, Any]) -> list[CompatRow]:
        """Compatibility of every attribute with the resource the render chose."""
        if context["managed"]:
            decide = self._managed_rows(spec, context)
            rows = compat.build_rows(spec, decide, _managed_user_row, _managed_config_row)
            argument = "default_database.primary_access_key"
        else:
            decide = self._premium_rows(spec, context)
            rows = compat.build_rows(spec, decide, self._user_row, self._config_row)
            argument = "primary_access_key"
        note = "the access key (output user_passwords), full rights"
        return compat.added_default(rows, context["users"], argument, note)

    def _premium_rows(self, spec: ServiceSpec, context: dict[str, Any]) -> dict[str, compat.Decision]:
        node, shards, replicas = context["node"], context["shards"], context["replicas"]
        return {
            "engine.version": (APPROX, "redis_version", DATA_NOTE),
            "plan.flavor": (
                EXACT if node.fits else MANUAL,
                "sku_name / family / capacity",
                f"azurerm_redis_cache Premium P{context['capacity']}: {node.note}; azurerm_managed_redis does not "
                f"fit: {'; '.join(context['misfits'])}",
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
            **_common_rows(),
        }

    @staticmethod
    def _managed_rows(spec: ServiceSpec, context: dict[str, Any]) -> dict[str, compat.Decision]:
        node, shards, clustering = context["node"], context["shards"], context["clustering"]
        single = shards == 1 and clustering == "NoCluster"
        return {
            "engine.version": (APPROX, "—", MANAGED_DATA_NOTE),
            "plan.flavor": (
                EXACT if node.fits else MANUAL,
                "sku_name",
                f"azurerm_managed_redis {context['sku']}: {managed_size_note(node)}. Managed Redis fits this spec "
                "and succeeds "
                "Azure Cache for Redis (retiring 2028-09-30); for the same memory MemoryOptimized_M* costs less "
                "when the load is light and ComputeOptimized_X* gives more vCPUs when it is heavy",
            ),
            "topology.mode": (
                APPROX if clustering == "EnterpriseCluster" else EXACT,
                "default_database.clustering_policy",
                f"{clustering}: {CLUSTERING_NOTES[clustering]}",
            ),
            "topology.shards": (
                EXACT if single else APPROX,
                "sku_name",
                "one shard"
                if single
                else f"{shards} shard(s) asked: Azure sets the shard count from the SKU, sized "
                "here for the whole dataset",
            ),
            "topology.replicas_per_shard": (
                EXACT,
                "high_availability_enabled",
                "one replica per shard, zone-redundant where the region has zones"
                if context["high_availability"]
                else "no replica, as the source",
            ),
            "persistence": _managed_persistence(context["rdb"]),
            "tls": (
                EXACT,
                "default_database.client_protocol",
                "Encrypted: TLS 1.2 or 1.3 only, on port 10000 (and 8500-8599 for the shards of an OSS cluster)",
            ),
            **_managed_network(spec, context),
            "source.region": (APPROX, "var.location", f"nearest Azure region: {context['location']}"),
            **_managed_upkeep(),
            **_common_rows(),
        }

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
            return _access_key_row("primary_access_key")
        rules = _acl_rules(user)
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


def directives(spec: ServiceSpec, settings: dict[str, str]) -> dict[str, str]:
    """The Valkey settings, with a ``maxmemory-policy`` item of the spec (OVH has no such parameter to map)."""
    policy = {c.valkey_name: c.value for c in spec.configuration if c.valkey_name == "maxmemory-policy"}
    return settings | policy


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


def managed_misfits(spec: ServiceSpec, replicas: int) -> list[str]:
    """Why ``azurerm_managed_redis`` cannot reproduce ``spec`` with ``replicas`` per shard (empty when it fits).

    Only what Premium does and Managed Redis (provider 5.10.0) cannot is a misfit; a maintenance window is not: Azure
    schedules Managed Redis updates itself. A private source's allow-list filters inside its network, which neither
    render's rules can do, so it is no misfit either (docs/reference/targets.md#azure-managed-redis).
    """
    settings = {c.valkey_name: c.value for c in spec.configuration}
    checks = (
        (
            bool(spec.allow_list) and spec.network.private is None,
            "a public source with an IP allow-list needs firewall rules, and Managed Redis has only "
            "public_network_access Enabled (open to every address) or Disabled",
        ),
        (
            bool(settings.get("notify-keyspace-events")),
            "it has no notify-keyspace-events argument (keyspace notifications)",
        ),
        (replicas > 1, f"it runs one replica per shard, not {replicas}"),
    )
    return [reason for failed, reason in checks if failed]


def managed_node(memory_gb: float, shards: int) -> Choice:
    """The smallest Managed Redis SKU holding the whole dataset (with headroom when resharded)."""
    return choose(MANAGED_NODES, memory_gb * (HEADROOM if shards > 1 else 1), 1)


def managed_size_note(node: Choice) -> str:
    """The report's sentence on the chosen SKU: the whole dataset, not a shard, is what it must hold."""
    verdict = "" if node.fits else " (no larger SKU in the table: check Azure's list)"
    return f"needs {node.needed_gb:.1f} GB in all; it has {node.size.memory_gb:g} GB ({node.size.source}){verdict}"


def clustering_policy(shards: int, node: Choice) -> str:
    """OSSCluster for a sharded spec; else NoCluster up to 24 GB, EnterpriseCluster (one endpoint) beyond."""
    if shards > 1:
        return "OSSCluster"
    return "NoCluster" if node.size.memory_gb <= NO_CLUSTER_MAX_GB else "EnterpriseCluster"


def managed_name(name: str) -> str:
    """A Managed Redis name (3-63 characters): a shorter cache name gets ``-redis`` appended."""
    return name if len(name) >= 3 else f"{name}-redis"


def eviction_policy(settings: dict[str, str]) -> str:
    """``eviction_policy`` of the source's ``maxmemory-policy``; Valkey's ``noeviction`` when it sets none."""
    return EVICTION_POLICIES.get(settings.get("maxmemory-policy", "noeviction"), "NoEviction")


def _managed_persistence(rdb: bool) -> compat.Decision:
    if not rdb:
        return EXACT, "default_database.persistence_*", "no persistence, as the source"
    return (
        APPROX,
        "default_database.persistence_redis_database_backup_frequency",
        "RDB snapshots every hour (1h, the most frequent Managed Redis offers), in place of OVH's schedule",
    )


def _managed_network(spec: ServiceSpec, context: dict[str, Any]) -> dict[str, compat.Decision]:
    reach = compat.Reach(
        public=False,
        filters=False,
        filter_argument="—",
        inside="the instance is reachable only through a private endpoint",
        network_argument="azurerm_virtual_network + azurerm_private_endpoint",
        network=(APPROX, "the vRack network becomes a VNet; the instance joins it through a private endpoint"),
        subnet_argument="azurerm_subnet",
        subnet=(APPROX, "the subnet CIDR becomes the private endpoint's subnet; no pool or gateway"),
        filter_note=(
            "public_network_access is Disabled; Managed Redis has no IP rules: restrict the private endpoint's "
            f"subnet with a network security group to {', '.join(e.cidr for e in spec.allow_list)}"
            if spec.allow_list
            else "public_network_access is Disabled: nothing reaches the instance until you add a private endpoint"
        ),
    )
    return compat.network_decisions(spec, reach, context["subnet_cidr"])


def _access_key_row(attribute: str) -> compat.Decision:
    """The ``default`` user's row: Azure's access key stands in for its password."""
    return (APPROX, attribute, "the access key is the default user's password (output user_passwords); full rights")


def _acl_rules(user: User) -> str:
    """A user's ACL as one rule string (categories, commands, key and channel patterns)."""
    return " ".join(
        (*user.categories, *user.commands, *(f"~{k}" for k in user.keys), *(f"&{c}" for c in user.channels))
    )


def _managed_user_row(user: User) -> compat.Decision:
    if user.name == "default":
        return _access_key_row("default_database.access_keys_authentication_enabled")
    rules = _acl_rules(user)
    return (
        MANUAL,
        "azurerm_managed_redis_access_policy_assignment",
        f"Managed Redis has no password users: assign the app's Entra ID principal (object_id) to the instance; "
        f"the app then authenticates with an Entra token (user name = object id). Its one access policy grants full "
        f"data access, so the permissions {rules!r} cannot be narrowed there: enforce them in the application",
    )


def _managed_config_row(item: ConfigItem) -> compat.Decision:
    if item.valkey_name == "maxmemory-policy" and item.value in EVICTION_POLICIES:
        return EXACT, "default_database.eviction_policy", EVICTION_POLICIES[item.value]
    if item.valkey_name == "save":
        return APPROX, "default_database.persistence_redis_database_backup_frequency", "see persistence"
    if item.valkey_name == "notify-keyspace-events":
        return EXACT, "—", "keyspace notifications off, as the source"
    instead = {**INSTEAD, "io-threads": "Azure sizes threads by SKU: ComputeOptimized_X* has the most vCPUs"}
    reason = instead.get(item.valkey_name or "", "the instance keeps Redis's default: drop it, or handle it in the app")
    return NONE, "—", f"{item.source_name} has no Managed Redis setting; {reason}"


def _managed_upkeep() -> dict[str, compat.Decision]:
    """Backups and maintenance on Managed Redis."""
    return {
        "backups.time": (
            NONE,
            "—",
            "Managed Redis has no backup time of day; RDB persistence writes every "
            "persistence_redis_database_backup_frequency instead",
        ),
        "backups.regions": (
            MANUAL,
            "azurerm_managed_redis_geo_replication",
            "active geo-replication to an instance in another region (default_database.geo_replication_group_name, "
            "which excludes persistence), or export RDB files yourself",
        ),
        "backups.retention_days": (
            MANUAL,
            "—",
            "Managed Redis keeps no dated backups: export RDB files to a storage account and keep them as long as "
            "needed",
        ),
        "maintenance_time": (
            MANUAL,
            "—",
            "Azure schedules Managed Redis updates itself: provider 5.10.0 has no maintenance window for it. "
            "Updates fail over to the replica; keep client retries on, and watch Azure Service Health for notices",
        ),
    }


def _common_rows() -> dict[str, compat.Decision]:
    return {
        "deletion_protection": (APPROX, "lifecycle.prevent_destroy", "no deletion protection argument"),
        "feature.infrastructure_as_code": (EXACT, "this configuration", compat.IAC_NOTE),
        "feature.anti_ddos": (
            MANUAL,
            "azurerm_network_ddos_protection_plan",
            "Azure's infrastructure DDoS protection is always on; for more, add a DDoS Network Protection plan "
            "(paid) to the VNet",
        ),
    }
