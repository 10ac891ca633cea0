"""Product facts of OVHcloud Managed Databases for Valkey, with their sources.

Shared by the OVH reader (to normalise what it reads) and the OVH API emulator (to answer as OVH does).
Every figure comes from ``docs/reference/ovh-api.md``; the section (heading anchor) is named next to it.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Versions OVH offers for Valkey (docs/reference/ovh-api.md#versions-and-regions).
VERSIONS: tuple[str, ...] = ("7.2", "8.0", "8.1")
#: Regions offering Managed Valkey (docs/reference/ovh-api.md#versions-and-regions).
REGIONS: tuple[str, ...] = (
    "AP-SOUTH-MUM",
    "BHS",
    "DE",
    "EU-SOUTH-MIL",
    "EU-WEST-PAR",
    "GRA",
    "RBX",
    "SBG",
    "SGP",
    "UK",
    "WAW",
)


@dataclass(frozen=True)
class PlanFacts:
    """Node count and backup retention of a plan (docs/reference/ovh-api.md#plans-and-backups)."""

    name: str
    nodes: int
    backup_retention_days: int


PLANS: dict[str, PlanFacts] = {
    "essential": PlanFacts("essential", nodes=1, backup_retention_days=1),
    "business": PlanFacts("business", nodes=2, backup_retention_days=3),
}

#: Memory in GB per flavor (docs/reference/ovh-api.md#flavors). db1-4 is the current smallest (Terraform example); the
#: others are the 2023 Redis table. ``capabilities.flavors[].specifications.memory`` overrides these when readable.
FLAVOR_MEMORY_GB: dict[str, int] = {
    "db1-4": 4,
    "db1-7": 7,
    "db1-15": 15,
    "db1-30": 30,
    "db1-60": 60,
    "db1-120": 120,
}
FLAVOR_CORES: dict[str, int] = {"db1-4": 1, "db1-7": 2, "db1-15": 4, "db1-30": 8, "db1-60": 16, "db1-120": 32}

#: Commands OVH's managed Valkey refuses (docs/reference/ovh-api.md#disabled-commands).
DISABLED_COMMANDS: tuple[str, ...] = (
    "ACL",
    "BGREWRITEAOF",
    "BGSAVE",
    "CLUSTER",
    "COMMAND",
    "CONFIG",
    "DEBUG",
    "EVAL",
    "EVALSHA",
    "FAILOVER",
    "LASTSAVE",
    "MIGRATE",
    "MONITOR",
    "REPLICAOF",
    "ROLE",
    "SAVE",
    "SCRIPT",
    "SHUTDOWN",
    "SLAVEOF",
)


@dataclass(frozen=True)
class AdvancedParameter:
    """One advanced-configuration parameter and the Valkey configuration it stands for.

    The parameters are listed in ``docs/reference/ovh-api.md#advanced-configuration``.

    ``valkey_name`` is None when no single Valkey directive is equivalent (the value then needs a
    conversion, see ``to_valkey``); ``runtime`` tells whether CONFIG SET applies it without a restart.
    """

    name: str
    type: str
    description: str
    valkey_name: str | None
    runtime: bool = True
    minimum: int | None = None
    maximum: int | None = None
    values: tuple[str, ...] | None = None


ADVANCED_PARAMETERS: tuple[AdvancedParameter, ...] = (
    AdvancedParameter(
        "redis_acl_channels_default",
        "string",
        "Default ACL for pub/sub channels",
        "acl-pubsub-default",
        values=("allchannels", "resetchannels"),
    ),
    AdvancedParameter("redis_io_threads", "long", "I/O threads", "io-threads", runtime=False, minimum=1, maximum=32),
    AdvancedParameter(
        "redis_lfu_decay_time",
        "long",
        "LFU counter decay time (minutes)",
        "lfu-decay-time",
        minimum=1,
        maximum=120,
    ),
    AdvancedParameter(
        "redis_lfu_log_factor", "long", "LFU counter log factor", "lfu-log-factor", minimum=0, maximum=100
    ),
    AdvancedParameter(
        "redis_notify_keyspace_events",
        "string",
        "Set notify-keyspace-events option",
        "notify-keyspace-events",
    ),
    AdvancedParameter(
        "redis_number_of_databases",
        "long",
        "Number of logical databases",
        "databases",
        runtime=False,
        minimum=1,
        maximum=128,
    ),
    AdvancedParameter(
        "redis_persistence", "string", "Persistence: RDB snapshots or none", "save", values=("off", "rdb")
    ),
    AdvancedParameter(
        "redis_pubsub_client_output_buffer_limit",
        "long",
        "Output buffer limit for pub/sub clients in MB",
        "client-output-buffer-limit",
        minimum=32,
        maximum=512,
    ),
    AdvancedParameter("redis_ssl", "boolean", "Require SSL to access Redis", None, runtime=False),
    AdvancedParameter(
        "redis_timeout",
        "long",
        "Redis idle connection timeout in seconds",
        "timeout",
        minimum=0,
        maximum=31536000,
    ),
)
ADVANCED_BY_NAME: dict[str, AdvancedParameter] = {p.name: p for p in ADVANCED_PARAMETERS}

#: RDB snapshot schedule that stands for ``redis_persistence=rdb`` (OVH snapshots twice a day,
#: docs/reference/ovh-api.md#plans-and-backups).
RDB_SAVE_SCHEDULE = "3600 1 300 100 60 10000"


def parameter(name: str) -> AdvancedParameter | None:
    """The parameter called ``name`` (also accepting the ``valkey_`` spelling of ``redis_`` names)."""
    if name.startswith("valkey_"):
        name = "redis_" + name.removeprefix("valkey_")
    return ADVANCED_BY_NAME.get(name)


def to_valkey(name: str, value: str) -> tuple[str, str] | None:
    """The Valkey directive and value equivalent to an OVH advanced parameter, or None when there is none."""
    param = parameter(name)
    if param is None or param.valkey_name is None:
        return None
    if param.valkey_name == "save":
        return "save", RDB_SAVE_SCHEDULE if value == "rdb" else ""
    if param.valkey_name == "client-output-buffer-limit":
        return param.valkey_name, f"pubsub {value}mb {value}mb 60"
    return param.valkey_name, value


#: ACL categories and a sample of commands a Valkey user can be granted (for ``capabilities/*``).
ACL_CATEGORIES: tuple[str, ...] = (
    "admin",
    "bitmap",
    "blocking",
    "connection",
    "dangerous",
    "fast",
    "geo",
    "hash",
    "hyperloglog",
    "keyspace",
    "list",
    "pubsub",
    "read",
    "scripting",
    "set",
    "slow",
    "sortedset",
    "stream",
    "string",
    "transaction",
    "write",
)
