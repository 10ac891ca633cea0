"""The azurerm twin: Azure Cache for Redis and Azure Managed Redis on real Redis 7.0, and what surrounds them.

A cache stands up Redis (not Valkey: Azure runs Redis) shaped like its SKU: Basic one node, Standard a primary with a
replica, Premium ``replicas_per_primary`` replicas (one by default) and, with ``shard_count``, an OSS cluster. It
listens with TLS only on the cache's ``ssl_port`` 6380; the access keys are the passwords of the ``default`` user.
A Managed Redis instance (real Azure runs Redis 7.4 on Redis Enterprise; the twin runs this machine's Redis 7.0) is a
primary with a replica (``high_availability_enabled``) on port 10000, or with ``clustering_policy = "OSSCluster"``
an OSS cluster whose shards listen on port 8500 behind a slotless cluster node on 10000 that redirects clients; its
access keys exist only with ``access_keys_authentication_enabled``. The provider's plan-time validators and the API's
refusals are made with their texts; ``docs/twins.md`` (section Azure) lists every rule with its source. Firewall
rules, private endpoints and resource groups are checked and recorded.
"""

from __future__ import annotations

import base64
import ipaddress
import re
import secrets
from collections.abc import Sequence
from typing import Any

from reproducer.offline.values import UNKNOWN
from reproducer.procs import wait_until
from reproducer.sandbox.fleet import Fleet
from reproducer.twins import valkey
from reproducer.twins.base import Change, GenericTwin, TwinError, TwinWorld

CACHE, RULE, GROUP = "azurerm_redis_cache", "azurerm_redis_firewall_rule", "azurerm_resource_group"
MANAGED, ENDPOINT = "azurerm_managed_redis", "azurerm_private_endpoint"
_SOURCE = "docs/twins.md#azure"
SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
PORT, SSL_PORT = 6379, 6380
#: Valid ``family`` + ``capacity`` per SKU (the provider's CustomizeDiff, copied from the Azure CLI).
COMBINATIONS = {
    "Basic": ("C0", "C1", "C2", "C3", "C4", "C5", "C6"),
    "Standard": ("C0", "C1", "C2", "C3", "C4", "C5", "C6"),
    "Premium": ("P1", "P2", "P3", "P4", "P5"),
}
MAXMEMORY_POLICIES = (
    "allkeys-lfu",
    "allkeys-lru",
    "allkeys-random",
    "noeviction",
    "volatile-lru",
    "volatile-lfu",
    "volatile-random",
    "volatile-ttl",
)
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
#: Azure cache names: letters, digits and single hyphens, 1-63, starting and ending with a letter or digit [I].
_CACHE_NAME = re.compile(r"^(?!.*--)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_RULE_NAME = re.compile(r"^\w+$", re.ASCII)
#: Resource group names: 1-90 letters, digits, underscores, parentheses, hyphens and periods, not ending in a period.
_GROUP_NAME = re.compile(r"^[-\w.()]{0,89}[-\w()]$")
#: Azure public-cloud location names (lower case, as the API normalises them) [I].
LOCATIONS = frozenset(
    (
        "australiacentral",
        "australiaeast",
        "australiasoutheast",
        "austriaeast",
        "belgiumcentral",
        "brazilsouth",
        "canadacentral",
        "canadaeast",
        "centralindia",
        "centralus",
        "chilecentral",
        "denmarkeast",
        "eastasia",
        "eastus",
        "eastus2",
        "francecentral",
        "francesouth",
        "germanynorth",
        "germanywestcentral",
        "indonesiacentral",
        "israelcentral",
        "italynorth",
        "japaneast",
        "japanwest",
        "koreacentral",
        "koreasouth",
        "malaysiawest",
        "mexicocentral",
        "newzealandnorth",
        "northcentralus",
        "northeurope",
        "norwayeast",
        "norwaywest",
        "polandcentral",
        "qatarcentral",
        "southafricanorth",
        "southcentralus",
        "southeastasia",
        "southindia",
        "spaincentral",
        "swedencentral",
        "switzerlandnorth",
        "switzerlandwest",
        "uaenorth",
        "uksouth",
        "ukwest",
        "westcentralus",
        "westeurope",
        "westindia",
        "westus",
        "westus2",
        "westus3",
    )
)


def _known(value: Any) -> bool:
    return value is not None and value is not UNKNOWN


def _in_slice(name: str, value: Any, allowed: Sequence[str], path: tuple[Any, ...] = ()) -> None:
    """The SDK's ``validation.StringInSlice`` refusal, as the provider prints it."""
    if isinstance(value, str) and value not in allowed:
        quoted = " ".join(f'"{a}"' for a in allowed)
        raise TwinError(f"expected {name} to be one of [{quoted}], got {value}", f"see {_SOURCE}", path or (name,))


def _int_between(name: str, value: Any, low: int, high: int) -> None:
    """The SDK's ``validation.IntBetween`` refusal."""
    if isinstance(value, int | float) and not low <= value <= high:
        raise TwinError(f"expected {name} to be in the range ({low} - {high}), got {int(value)}", f"see {_SOURCE}")


def _api_error(code: str, message: str) -> TwinError:
    """An Azure Resource Manager refusal as the provider wraps it (the code and message of the response body)."""
    return TwinError(f"unexpected status 400 (400 Bad Request) with error: {code}: {message}", f"twin rule, {_SOURCE}")


def _access_key() -> str:
    """An access key shaped like Azure's: 32 random bytes in base64 (44 characters)."""
    return base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def _block(state: dict[str, Any], name: str) -> dict[str, Any]:
    blocks = state.get(name)
    return dict(blocks[0]) if isinstance(blocks, list) and blocks and isinstance(blocks[0], dict) else {}


def _record_id(*parts: str) -> str:
    return "~".join(parts)


def cache_fleet(world: TwinWorld, group: str, name: str) -> Fleet | None:
    """The fleet of a running cache, or None when the cache does not exist (or its Redis is gone)."""
    if world.load(CACHE, _record_id(group, name)) is None:
        return None
    return valkey.fleet_of(world, CACHE, _record_id(group, name))


# ---- azurerm_resource_group -------------------------------------------------------------------------------------


class ResourceGroup(GenericTwin):
    """``azurerm_resource_group``: a record; its name and location are checked as ARM checks them."""

    type_name = GROUP

    def create(self, change: Change) -> dict[str, Any]:
        """Check the name and location, record the group."""
        assert change.planned is not None
        state = dict(change.planned)
        name, location = str(state["name"]), str(state["location"])
        if not _GROUP_NAME.fullmatch(name):
            raise _api_error(
                "InvalidResourceGroup", f"The provided resource group name '{name}' has these invalid characters"
            )
        normal = location.replace(" ", "").lower()
        if normal not in LOCATIONS:
            raise _api_error(
                "LocationNotAvailableForResourceGroup",
                f"The provided location '{location}' is not available for resource group.",
            )
        change.world.save(GROUP, name, {"name": name, "location": normal})
        return {**state, "id": f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{name}", "location": normal}

    def update(self, change: Change) -> dict[str, Any]:
        """Tags only (name and location replace)."""
        assert change.planned is not None and change.prior is not None
        return {**change.planned, "id": change.prior["id"]}

    def delete(self, change: Change) -> None:
        """Forget the group."""
        assert change.prior is not None
        change.world.forget(GROUP, str(change.prior["name"]))

    def read(self, state: dict[str, Any], world: TwinWorld) -> dict[str, Any] | None:
        """Gone with its record."""
        return state if world.load(GROUP, str(state.get("name"))) is not None else None


# ---- azurerm_redis_cache ----------------------------------------------------------------------------------------


def _validate_cache(config: dict[str, Any]) -> None:
    """The provider's plan-time validators and CustomizeDiff checks (redis_cache_resource.go)."""
    _in_slice("family", config.get("family"), ("C", "P"))
    _in_slice("sku_name", config.get("sku_name"), tuple(COMBINATIONS))
    _in_slice("minimum_tls_version", config.get("minimum_tls_version"), ("1.2",))
    _in_slice("redis_version", config.get("redis_version"), ("4", "6"))
    for name in ("replicas_per_master", "replicas_per_primary"):
        _int_between(name, config.get(name), 1, 3)
    policy = _block(config, "redis_configuration").get("maxmemory_policy")
    _in_slice("redis_configuration.0.maxmemory_policy", policy, MAXMEMORY_POLICIES, ("redis_configuration",))
    for index, entry in enumerate(config.get("patch_schedule") or []):
        day = entry.get("day_of_week") if isinstance(entry, dict) else None
        if isinstance(day, str) and day.capitalize() not in DAYS:
            _in_slice(f"patch_schedule.{index}.day_of_week", day, DAYS, ("patch_schedule",))
        _int_between(f"patch_schedule.{index}.start_hour_utc", (entry or {}).get("start_hour_utc"), 0, 23)
    sku, family, capacity = config.get("sku_name"), config.get("family"), config.get("capacity")
    if isinstance(sku, str) and isinstance(family, str) and isinstance(capacity, int | float):
        combination = f"{family.upper()}{int(capacity)}"
        valid = COMBINATIONS.get(sku, ())
        if combination not in valid:
            raise TwinError(
                f"invalid combination of `sku_name`, `family`, and `capacity`: '{sku}: {combination}'. "
                f"Valid combinations for '{sku}' are: [{' '.join(valid)}]",
                f"see {_SOURCE}",
            )
    if config.get("access_keys_authentication_enabled") is False and not _block(config, "redis_configuration").get(
        "active_directory_authentication_enabled"
    ):
        raise TwinError(
            "`active_directory_authentication_enabled` must be enabled in order to disable "
            "`access_keys_authentication_enabled`",
            f"see {_SOURCE}",
        )


def _check_premium(state: dict[str, Any]) -> None:
    """What only Premium caches take: shards, replicas per primary, VNet injection (the API refuses the rest)."""
    if state.get("sku_name") == "Premium":
        return
    for name in ("shard_count", "replicas_per_primary", "replicas_per_master", "subnet_id"):
        if _known(state.get(name)) and state.get(name) not in (0, ""):
            raise _api_error("BadRequest", f"The property '{name}' is only supported for the Premium tier.")


def cache_shape(state: dict[str, Any], keys: Sequence[str]) -> valkey.ValkeyShape:
    """Redis 7.0 shaped like the SKU: replicas, an OSS cluster with ``shard_count``, TLS on 6380, keys as passwords."""
    sku = state.get("sku_name")
    shards = int(state.get("shard_count") or 0) if _known(state.get("shard_count")) else 0
    per_primary = next((state[n] for n in ("replicas_per_primary", "replicas_per_master") if _known(state.get(n))), 1)
    replicas = 0 if sku == "Basic" else 1 if sku == "Standard" else int(per_primary)
    access = state.get("access_keys_authentication_enabled") is not False
    default = valkey.TwinUser.with_passwords("default", "on ~* &* +@all", keys) if access else None
    return valkey.ValkeyShape(
        shards=max(shards, 1),
        replicas=replicas,
        cluster=shards > 0,
        tls=True,
        port=SSL_PORT,
        users=(default or valkey.TwinUser("default", "off"),),
        parameters=_parameters(state),
        engine="redis",
    )


def _parameters(state: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """``redis_configuration``'s Redis parameters; the provider's default eviction policy is ``volatile-lru``."""
    config = _block(state, "redis_configuration")
    policy = config.get("maxmemory_policy") if _known(config.get("maxmemory_policy")) else "volatile-lru"
    events = config.get("notify_keyspace_events")
    return (("maxmemory-policy", str(policy)),) + ((("notify-keyspace-events", str(events)),) if _known(events) else ())


class RedisCache(GenericTwin):
    """``azurerm_redis_cache``: Redis 7.0 of the SKU's shape; ``hostname``/``ssl_port`` announce its primary."""

    type_name = CACHE

    def validate(self, config: dict[str, Any]) -> None:
        """The provider's plan-time checks."""
        _validate_cache(config)

    def create(self, change: Change) -> dict[str, Any]:
        """Check what the API checks (name, resource group, Premium-only arguments), start Redis, fill the state."""
        assert change.planned is not None
        state = dict(change.planned)
        group, name = str(state["resource_group_name"]), str(state["name"])
        if not _CACHE_NAME.fullmatch(name):
            raise _api_error(
                "InvalidRequestBody",
                f"The name '{name}' is invalid: use 1-63 letters, digits and single hyphens, starting and ending "
                "with a letter or digit.",
            )
        if change.world.load(GROUP, group) is None:
            raise TwinError(
                f"unexpected status 404 (404 Not Found) with error: ResourceGroupNotFound: Resource group '{group}' "
                "could not be found.",
                f"twin rule, {_SOURCE}",
            )
        if any(record.get("name") == name for record in change.world.all(CACHE)):
            raise _api_error("NameNotAvailable", f"The name '{name}' is already in use: cache names are global.")
        _check_premium(state)
        keys = [_access_key(), _access_key()]
        record_id = _record_id(group, name)
        valkey.stop(change.world, CACHE, record_id)
        valkey.start(change.world, CACHE, record_id, cache_shape(state, keys))
        return self._record(change.world, state, keys)

    def update(self, change: Change) -> dict[str, Any]:
        """Reconfigure; another size or shape restarts Redis (empty: the twin does not move data)."""
        assert change.planned is not None and change.prior is not None
        state = dict(change.planned)
        _check_premium(state)
        group, name = str(state["resource_group_name"]), str(state["name"])
        fleet = cache_fleet(change.world, group, name)
        if fleet is None:
            raise TwinError(f"unexpected status 404 (404 Not Found) with error: ResourceNotFound: cache {name!r}")
        keys = [str(change.prior["primary_access_key"]), str(change.prior["secondary_access_key"])]
        shape, before = cache_shape(state, keys), cache_shape(change.prior, keys)
        if (shape.shards, shape.replicas, shape.cluster, shape.users) != (
            before.shards,
            before.replicas,
            before.cluster,
            before.users,
        ):
            valkey.stop(change.world, CACHE, _record_id(group, name))
            valkey.start(change.world, CACHE, _record_id(group, name), shape)
        else:
            valkey.apply_parameters(fleet, shape.parameters)
        return self._record(change.world, state, keys)

    def delete(self, change: Change) -> None:
        """Stop Redis and forget the cache."""
        assert change.prior is not None
        record_id = _record_id(str(change.prior["resource_group_name"]), str(change.prior["name"]))
        valkey.stop(change.world, CACHE, record_id)
        change.world.forget(CACHE, record_id)

    def read(self, state: dict[str, Any], world: TwinWorld) -> dict[str, Any] | None:
        """The cache while its Redis runs; gone otherwise."""
        fleet = cache_fleet(world, str(state.get("resource_group_name")), str(state.get("name")))
        return state if fleet is not None and fleet.alive() else None

    @staticmethod
    def _record(world: TwinWorld, state: dict[str, Any], keys: list[str]) -> dict[str, Any]:
        group, name = str(state["resource_group_name"]), str(state["name"])
        fleet = valkey.fleet_of(world, CACHE, _record_id(group, name))
        assert fleet is not None
        host = valkey.addresses(fleet)[0].host
        replicas = cache_shape(state, keys).replicas
        world.save(CACHE, _record_id(group, name), {"name": name, "resource_group_name": group, "hostname": host})
        out = {
            **state,
            "id": f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{group}/providers/Microsoft.Cache/redis/{name}",
            "hostname": host,
            "port": PORT,
            "ssl_port": SSL_PORT,
            "primary_access_key": keys[0],
            "secondary_access_key": keys[1],
            "primary_connection_string": f"{host}:{SSL_PORT},password={keys[0]},ssl=True,abortConnect=False",
            "secondary_connection_string": f"{host}:{SSL_PORT},password={keys[1]},ssl=True,abortConnect=False",
        }
        for attr in ("replicas_per_master", "replicas_per_primary"):
            if not _known(out.get(attr)):
                out[attr] = replicas
        return out


# ---- azurerm_redis_firewall_rule --------------------------------------------------------------------------------


def _ip(value: Any) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(str(value))
    except ValueError:
        return None


class FirewallRule(GenericTwin):
    """``azurerm_redis_firewall_rule``: an IPv4 range on a cache, recorded (the twin filters no traffic)."""

    type_name = RULE

    def validate(self, config: dict[str, Any]) -> None:
        r"""The provider's validators: a ``\w+`` name, IP addresses."""
        name = config.get("name")
        if isinstance(name, str) and not _RULE_NAME.fullmatch(name):
            raise TwinError(
                "invalid value for name (may only contain alphanumeric characters and underscores)",
                f"see {_SOURCE}",
                ("name",),
            )
        for attr in ("start_ip", "end_ip"):
            value = config.get(attr)
            if isinstance(value, str) and _ip(value) is None:
                raise TwinError(f"expected {attr} to contain a valid IP, got: {value}", f"see {_SOURCE}", (attr,))

    def create(self, change: Change) -> dict[str, Any]:
        """Add the rule to its cache (an IPv4 range whose start is not after its end)."""
        return self._set(change)

    def update(self, change: Change) -> dict[str, Any]:
        """New addresses, in place."""
        return self._set(change)

    def delete(self, change: Change) -> None:
        """Forget the rule."""
        assert change.prior is not None
        prior = change.prior
        change.world.forget(
            RULE, _record_id(str(prior["resource_group_name"]), str(prior["redis_cache_name"]), str(prior["name"]))
        )

    def read(self, state: dict[str, Any], world: TwinWorld) -> dict[str, Any] | None:
        """Gone with its cache or its record."""
        group, cache, name = (str(state.get(k)) for k in ("resource_group_name", "redis_cache_name", "name"))
        if cache_fleet(world, group, cache) is None or world.load(RULE, _record_id(group, cache, name)) is None:
            return None
        return state

    @staticmethod
    def _set(change: Change) -> dict[str, Any]:
        assert change.planned is not None
        state = dict(change.planned)
        group, cache, name = (str(state[k]) for k in ("resource_group_name", "redis_cache_name", "name"))
        start, end = _ip(state["start_ip"]), _ip(state["end_ip"])
        if not isinstance(start, ipaddress.IPv4Address) or not isinstance(end, ipaddress.IPv4Address):
            raise _api_error("InvalidRequestBody", "Firewall rules take IPv4 addresses only.")
        if start > end:
            raise _api_error("InvalidRequestBody", f"The start IP '{start}' is after the end IP '{end}'.")
        if cache_fleet(change.world, group, cache) is None:
            raise TwinError(
                f"unexpected status 404 (404 Not Found) with error: ResourceNotFound: cache {cache!r} in {group!r}",
                f"twin rule, {_SOURCE}",
            )
        change.world.save(RULE, _record_id(group, cache, name), {"start_ip": str(start), "end_ip": str(end)})
        rule_id = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{group}/providers/Microsoft.Cache/redis/{cache}"
        return {**state, "id": f"{rule_id}/firewallRules/{name}"}


# ---- azurerm_managed_redis --------------------------------------------------------------------------------------

MANAGED_PORT, SHARD_PORT = 10000, 8500
#: Azure sets an OSS cluster's shard count from the SKU, undocumented per SKU; the twin runs three.
OSS_SHARDS = 3
CLUSTERING_POLICIES = ("EnterpriseCluster", "NoCluster", "OSSCluster")
#: ``eviction_policy`` → Redis ``maxmemory-policy``.
EVICTION_POLICIES = {
    "AllKeysLFU": "allkeys-lfu",
    "AllKeysLRU": "allkeys-lru",
    "AllKeysRandom": "allkeys-random",
    "NoEviction": "noeviction",
    "VolatileLFU": "volatile-lfu",
    "VolatileLRU": "volatile-lru",
    "VolatileRandom": "volatile-random",
    "VolatileTTL": "volatile-ttl",
}
_SKU_SIZES = {
    "Balanced_B": (0, 1, 3, 5, 10, 20, 50, 100, 150, 250, 350, 500, 700, 1000),
    "ComputeOptimized_X": (3, 5, 10, 20, 50, 100, 150, 250, 350, 500, 700),
    "FlashOptimized_A": (250, 500, 700, 1000, 1500, 2000, 4500),
    "MemoryOptimized_M": (10, 20, 50, 100, 150, 250, 350, 500, 700, 1000, 1500, 2000),
}
#: ``sku_name`` values the provider accepts (validate.PossibleValuesForSkuName, sorted as the provider prints them).
MANAGED_SKUS = tuple(sorted(f"{family}{size}" for family, sizes in _SKU_SIZES.items() for size in sizes))
#: Managed Redis names: 3-63 letters, digits and hyphens, starting and ending with a letter or digit, no ``--``.
_MANAGED_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]+[A-Za-z0-9]$")


def _validate_managed(config: dict[str, Any]) -> None:
    """The provider's validators (managed_redis_resource.go, validate/managed_redis_name.go)."""
    name = config.get("name")
    if isinstance(name, str):
        if not 3 <= len(name) <= 63:
            raise TwinError(f"expected length of name to be in the range (3 - 63), got {name}", f"see {_SOURCE}")
        if "--" in name:
            raise TwinError(f"name must not contain any consecutive hyphens, got {name}", f"see {_SOURCE}")
        if not _MANAGED_NAME.fullmatch(name):
            raise TwinError(
                "name can only contain letters, numbers and hyphens. The first and last characters must each be a "
                f"letter or a number, got {name}",
                f"see {_SOURCE}",
            )
    _in_slice("sku_name", config.get("sku_name"), MANAGED_SKUS)
    _in_slice("public_network_access", config.get("public_network_access"), ("Disabled", "Enabled"))
    database = _block(config, "default_database")
    _in_slice("default_database.0.client_protocol", database.get("client_protocol"), ("Encrypted", "Plaintext"))
    _in_slice("default_database.0.clustering_policy", database.get("clustering_policy"), CLUSTERING_POLICIES)
    _in_slice("default_database.0.eviction_policy", database.get("eviction_policy"), tuple(EVICTION_POLICIES))
    _in_slice(
        "default_database.0.persistence_redis_database_backup_frequency",
        database.get("persistence_redis_database_backup_frequency"),
        ("12h", "1h", "6h"),
    )
    aof, rdb = (database.get(f"persistence_{k}_backup_frequency") for k in ("append_only_file", "redis_database"))
    if _known(aof) and _known(rdb):
        raise TwinError(
            '"default_database.0.persistence_append_only_file_backup_frequency": conflicts with '
            "default_database.0.persistence_redis_database_backup_frequency",
            f"see {_SOURCE}",
        )


def managed_shape(state: dict[str, Any], keys: Sequence[str]) -> valkey.ValkeyShape:
    """Redis 7.0 as the instance runs: HA replica, OSS cluster shards on 8500 or one endpoint on 10000, keys."""
    database = _block(state, "default_database")
    oss = (database.get("clustering_policy") or "OSSCluster") == "OSSCluster"
    access = database.get("access_keys_authentication_enabled") is True
    default = valkey.TwinUser.with_passwords("default", "on ~* &* +@all", keys) if access else None
    policy = EVICTION_POLICIES.get(str(database.get("eviction_policy")), "volatile-lru")
    return valkey.ValkeyShape(
        shards=OSS_SHARDS if oss else 1,
        replicas=0 if state.get("high_availability_enabled") is False else 1,
        cluster=oss,
        tls=database.get("client_protocol") != "Plaintext",
        port=SHARD_PORT if oss else MANAGED_PORT,
        users=(default or valkey.TwinUser("default", "off"),),
        parameters=(("maxmemory-policy", policy),),
        engine="redis",
    )


def _endpoint_shape(shape: valkey.ValkeyShape) -> valkey.ValkeyShape:
    """The node on 10000 in front of an OSS cluster: one cluster node, without slots once it joined."""
    return valkey.ValkeyShape(
        shards=1,
        cluster=True,
        tls=shape.tls,
        port=MANAGED_PORT,
        users=shape.users,
        parameters=shape.parameters,
        engine="redis",
    )


def _join(endpoint: Fleet, cluster: Fleet) -> None:
    """Give the endpoint node's slots up and make it meet the cluster, until it knows every slot's owner."""
    node, first = endpoint.servers[0], cluster.servers[0]
    endpoint.admin(node, "CLUSTER", "FLUSHSLOTS")
    endpoint.admin(node, "CLUSTER", "MEET", first.host, first.port, first.port + 10000)
    count = len(cluster.servers)

    def knows_all() -> bool:
        ranges = endpoint.admin(node, "CLUSTER", "SLOTS")
        covered = sum(int(r[1]) - int(r[0]) + 1 for r in ranges)
        return covered == 16384 and sum(len(r) - 2 for r in ranges) == count

    wait_until(knows_all, timeout=30, what="the endpoint node to learn the cluster's slots")


def _managed_ids(state: dict[str, Any]) -> tuple[str, str]:
    record_id = _record_id(str(state["resource_group_name"]), str(state["name"]))
    return record_id, f"{record_id}~endpoint"


def _managed_fleets(world: TwinWorld, state: dict[str, Any]) -> list[Fleet | None]:
    record_id, endpoint_id = _managed_ids(state)
    fleets = [valkey.fleet_of(world, MANAGED, record_id)]
    if world.fleet_dir(MANAGED, endpoint_id).exists():
        fleets.append(valkey.fleet_of(world, MANAGED, endpoint_id))
    return fleets


def _stop_managed(world: TwinWorld, state: dict[str, Any]) -> None:
    for fleet_id in _managed_ids(state):
        valkey.stop(world, MANAGED, fleet_id)


def _start_managed(world: TwinWorld, state: dict[str, Any], shape: valkey.ValkeyShape) -> str:
    """Start the instance's Redis; the host clients connect to (the endpoint node's with an OSS cluster)."""
    record_id, endpoint_id = _managed_ids(state)
    _stop_managed(world, state)
    addresses = valkey.start(world, MANAGED, record_id, shape)
    if not shape.cluster:
        return addresses[0].host
    try:
        front = valkey.start(world, MANAGED, endpoint_id, _endpoint_shape(shape))
        endpoint, cluster = valkey.fleet_of(world, MANAGED, endpoint_id), valkey.fleet_of(world, MANAGED, record_id)
        assert endpoint is not None and cluster is not None
        _join(endpoint, cluster)
    except BaseException:
        _stop_managed(world, state)
        raise
    return front[0].host


class ManagedRedis(GenericTwin):
    """``azurerm_managed_redis``: Redis 7.0 shaped by ``default_database``; ``hostname``/port 10000 reach it."""

    type_name = MANAGED

    def validate(self, config: dict[str, Any]) -> None:
        """The provider's plan-time validators."""
        _validate_managed(config)

    def plan(self, change: Change) -> dict[str, Any] | None:
        """CustomizeDiff: a new instance needs its ``default_database``."""
        if change.prior is None and change.planned is not None and not change.planned.get("default_database"):
            raise TwinError("`default_database` must be provided when creating a new resource", f"see {_SOURCE}")
        return change.planned

    def create(self, change: Change) -> dict[str, Any]:
        """Check the resource group and name, start Redis, fill the state."""
        assert change.planned is not None
        state = dict(change.planned)
        group, name = str(state["resource_group_name"]), str(state["name"])
        if change.world.load(GROUP, group) is None:
            raise TwinError(
                f"unexpected status 404 (404 Not Found) with error: ResourceGroupNotFound: Resource group '{group}' "
                "could not be found.",
                f"twin rule, {_SOURCE}",
            )
        if any(r.get("name") == name and r.get("location") == state.get("location") for r in change.world.all(MANAGED)):
            raise _api_error("NameNotAvailable", f"The name '{name}' is already in use in {state.get('location')}.")
        keys = [_access_key(), _access_key()]
        host = _start_managed(change.world, state, managed_shape(state, keys))
        return self._record(change.world, state, keys, host)

    def update(self, change: Change) -> dict[str, Any]:
        """In place: keys and eviction policy; a new clustering policy recreates the database (empty)."""
        assert change.planned is not None and change.prior is not None
        state = dict(change.planned)
        prior_db = _block(change.prior, "default_database")
        keys = [
            str(prior_db.get("primary_access_key") or _access_key()),
            str(prior_db.get("secondary_access_key") or _access_key()),
        ]
        shape, before = managed_shape(state, keys), managed_shape(change.prior, keys)
        fleets = _managed_fleets(change.world, state)
        if None in fleets:
            raise TwinError(f"unexpected status 404 (404 Not Found) with error: ResourceNotFound: {state['name']!r}")
        if (shape.shards, shape.replicas, shape.cluster, shape.tls) != (
            before.shards,
            before.replicas,
            before.cluster,
            before.tls,
        ):
            host = _start_managed(change.world, state, shape)
        else:
            for fleet in fleets:
                assert fleet is not None
                valkey.apply_users(fleet, shape.users)
                valkey.apply_parameters(fleet, shape.parameters)
            host = str(change.prior["hostname"])
        return self._record(change.world, state, keys, host)

    def delete(self, change: Change) -> None:
        """Stop Redis and forget the instance."""
        assert change.prior is not None
        _stop_managed(change.world, change.prior)
        change.world.forget(MANAGED, _managed_ids(change.prior)[0])

    def read(self, state: dict[str, Any], world: TwinWorld) -> dict[str, Any] | None:
        """The instance while all its Redis runs; gone otherwise."""
        if world.load(MANAGED, _managed_ids(state)[0]) is None:
            return None
        return state if all(f is not None for f in _managed_fleets(world, state)) else None

    @staticmethod
    def _record(world: TwinWorld, state: dict[str, Any], keys: list[str], host: str) -> dict[str, Any]:
        group, name = str(state["resource_group_name"]), str(state["name"])
        instance = (
            f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{group}/providers/Microsoft.Cache/redisEnterprise/{name}"
        )
        database = _block(state, "default_database")
        access = database.get("access_keys_authentication_enabled") is True
        world.save(MANAGED, _managed_ids(state)[0], {"name": name, "location": state.get("location"), "id": instance})
        filled = {
            **database,
            "id": f"{instance}/databases/default",
            "port": MANAGED_PORT,
            "primary_access_key": keys[0] if access else "",
            "secondary_access_key": keys[1] if access else "",
        }
        return {**state, "id": instance, "hostname": host, "default_database": [filled]}


# ---- azurerm_private_endpoint -----------------------------------------------------------------------------------

#: The private-link group id of each Redis resource type (``subresource_names``).
GROUP_IDS = {"/Microsoft.Cache/redis/": "redisCache", "/Microsoft.Cache/redisEnterprise/": "redisEnterprise"}


class PrivateEndpoint(GenericTwin):
    """``azurerm_private_endpoint`` to a Redis resource: it must exist, and be asked for by its own group id."""

    type_name = ENDPOINT

    def create(self, change: Change) -> dict[str, Any]:
        """Check the connection's target and group id; the rest of the state is the offline provider's."""
        assert change.planned is not None
        for connection in change.planned.get("private_service_connection") or []:
            _check_connection(change.world, connection)
        return dict(change.planned)

    def update(self, change: Change) -> dict[str, Any]:
        """Same checks."""
        return self.create(change)

    def delete(self, change: Change) -> None:
        """Nothing to stop: the twin's network is loopback."""

    def read(self, state: dict[str, Any], world: TwinWorld) -> dict[str, Any] | None:
        """As applied."""
        return state


def _check_connection(world: TwinWorld, connection: dict[str, Any]) -> None:
    target = str(connection.get("private_connection_resource_id") or "")
    wanted = next((group for marker, group in GROUP_IDS.items() if marker in target), None)
    if wanted is None:
        return
    records = world.all(MANAGED) if wanted == "redisEnterprise" else []
    if wanted == "redisEnterprise" and not any(r.get("id") == target for r in records):
        raise _api_error("ResourceNotFound", f"The private link resource '{target}' was not found.")
    names = list(connection.get("subresource_names") or [])
    if names != [wanted]:
        raise _api_error(
            "PrivateEndpointBadRequest",
            f"Call to Microsoft.Cache failed: the group id {names!r} is not valid for this resource; use ['{wanted}'].",
        )


RESOURCES = (ResourceGroup(), RedisCache(), FirewallRule(), ManagedRedis(), PrivateEndpoint())
DATA_SOURCES: tuple[Any, ...] = ()
