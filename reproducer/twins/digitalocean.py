"""The digitalocean twin: Valkey database clusters backed by real Valkey, their firewall, Valkey config and VPC.

A cluster is one primary, plus one standby when ``node_count = 2``, TLS-only on port 25061 with DigitalOcean's
single ``default`` user and a generated ``AVNS_…`` password. The Valkey config reaches the servers through
``CONFIG SET``. Trusted sources and VPCs are checked and recorded. Each rule cites ``docs/twins.md`` (section
DigitalOcean), where the texts marked [I] are the twin's own.
"""

from __future__ import annotations

import datetime
import ipaddress
import re
import secrets
import uuid
from collections.abc import Callable
from typing import Any

from reproducer.offline.values import UNKNOWN
from reproducer.sandbox.fleet import Fleet
from reproducer.twins import valkey
from reproducer.twins.base import Change, GenericTwin, TwinError, TwinWorld, plain

CLUSTER, FIREWALL, CONFIG, VPC = (
    "digitalocean_database_cluster",
    "digitalocean_database_firewall",
    "digitalocean_database_valkey_config",
    "digitalocean_vpc",
)
_SOURCE = "docs/twins.md#digitalocean"
API = "https://api.digitalocean.com/v2"
#: The TLS port of Valkey and Redis clusters (25060 is the plain one that ``ssl = false`` opens).
TLS_PORT = 25061
VALKEY_VERSIONS = ("8",)
MAX_RULES = 100
RULE_TYPES = ("droplet", "k8s", "ip_addr", "tag", "app")
_SIZE = re.compile(r"db-s-(\d+)vcpu-(\d+)gb")
_REGION = re.compile(r"[a-z]{3}[0-9]")
_NAME = re.compile(r"[a-z][a-z0-9-]{1,61}[a-z0-9]")
_PASSWORD_ALPHABET = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def known(value: Any) -> bool:
    """Whether a value is set and known."""
    return value is not None and value is not UNKNOWN


def api_error(method: str, path: str, status: int, message: str, action: str) -> TwinError:
    """A DigitalOcean API refusal as godo and the provider print it (``Error <action>: <METHOD> <url>: ...``)."""
    request = uuid.uuid4()
    return TwinError(
        f'Error {action}: {method} {API}/{path}: {status} (request "{request}") {message}', f"twin rule, see {_SOURCE}"
    )


def _password() -> str:
    return "AVNS_" + "".join(secrets.choice(_PASSWORD_ALPHABET) for _ in range(19))


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def cluster_fleet(world: TwinWorld, cluster_id: Any) -> Fleet | None:
    """The running fleet of a recorded cluster, or None."""
    if not isinstance(cluster_id, str) or world.load(CLUSTER, cluster_id) is None:
        return None
    return valkey.fleet_of(world, CLUSTER, cluster_id)


# ---- digitalocean_database_cluster --------------------------------------------------------------------------


def size_gb(size: str) -> int | None:
    """The memory of a ``db-s-<n>vcpu-<m>gb`` plan, or None for a slug of another form."""
    match = _SIZE.fullmatch(size)
    return int(match.group(2)) if match else None


def check_cluster(state: dict[str, Any], world: TwinWorld, creating: bool) -> None:
    """The API's checks of a create or resize (engine, version, plan, node count, region, name, VPC)."""
    path, action = "databases", "creating database cluster" if creating else "resizing database cluster"
    engine, version, size = state["engine"], str(state.get("version")), str(state["size"])
    nodes, region, name = int(state["node_count"]), str(state["region"]), str(state["name"])

    def fail(message: str) -> None:
        raise api_error("POST" if creating else "PUT", path, 422, message, action)

    if engine != "valkey":
        fail(f"invalid engine {engine!r}: the twin runs valkey clusters only")
    if version not in VALKEY_VERSIONS:
        fail(f"invalid version {version!r} for engine valkey: supported versions are {', '.join(VALKEY_VERSIONS)}")
    memory = size_gb(size)
    if memory is None:
        fail(f"invalid size {size!r}")
    if not 1 <= nodes <= 2:
        fail(f"invalid num_nodes {nodes}: valkey clusters have one primary and at most one standby node")
    if nodes == 2 and memory is not None and memory < 2:
        fail(f"standby nodes are not available for the {size} plan: choose a plan with 2 GB or more")
    if not _REGION.fullmatch(region.lower()):
        fail(f"invalid region {region!r}")
    if creating:
        _check_new_name(name, world, fail)
    _check_vpc(state.get("private_network_uuid"), region.lower(), world, fail)


def _check_new_name(name: str, world: TwinWorld, fail: Callable[[str], None]) -> None:
    if not _NAME.fullmatch(name):
        fail(
            f"invalid name {name!r}: use 3 to 63 lowercase letters, digits and hyphens, starting with a letter "
            "and not ending with a hyphen"
        )
    if any(record.get("name") == name for record in world.all(CLUSTER)):
        fail(f"a database cluster named {name!r} already exists")


def _check_vpc(vpc_id: Any, region: str, world: TwinWorld, fail: Callable[[str], None]) -> None:
    if not known(vpc_id) or not vpc_id:
        return
    vpc = world.load(VPC, str(vpc_id)) if re.fullmatch(r"[0-9a-f-]{36}", str(vpc_id)) else None
    if vpc is None:
        fail(f"private network {vpc_id} not found")
    elif vpc.get("region") != region:
        fail(f"private network {vpc_id} is in region {vpc.get('region')}, not {region}")


def cluster_shape(node_count: int, password: str) -> valkey.ValkeyShape:
    """A primary (and its standby): TLS on 25061, the single ``default`` user with the generated password."""
    return valkey.ValkeyShape(
        replicas=node_count - 1,
        tls=True,
        port=TLS_PORT,
        users=(valkey.TwinUser.with_passwords("default", "on ~* &* +@all", [password]),),
    )


class DatabaseCluster(GenericTwin):
    """``digitalocean_database_cluster``: real Valkey, ``host``/``port``/``uri`` announcing its primary."""

    type_name = CLUSTER

    def plan(self, change: Change) -> dict[str, Any] | None:
        """The provider's CustomizeDiff: ``version`` is required; ``eviction_policy`` only for Redis or Valkey."""
        planned = change.planned
        if planned is None:
            return planned
        if not known(planned.get("version")) and planned.get("version") is not UNKNOWN:
            old = (change.prior or {}).get("version")
            if old:
                raise TwinError(
                    f'The argument "version" is now required. Set the {planned.get("engine")} version to the '
                    f"value saved to state: {old}",
                    f"see {_SOURCE}",
                )
            raise TwinError('The argument "version" is required, but no definition was found.', f"see {_SOURCE}")
        if known(planned.get("eviction_policy")) and planned.get("engine") not in ("redis", "valkey"):
            raise TwinError("eviction_policy is only supported for Redis or Valkey Database Clusters", f"see {_SOURCE}")
        return planned

    def create(self, change: Change) -> dict[str, Any]:
        """Check as the API does, start the fleet, fill the connection attributes."""
        assert change.planned is not None
        state = dict(change.planned)
        check_cluster(state, change.world, creating=True)
        cluster_id, password = str(uuid.uuid4()), _password()
        valkey.start(change.world, CLUSTER, cluster_id, cluster_shape(int(state["node_count"]), password))
        return self._record(change.world, state, cluster_id, password)

    def update(self, change: Change) -> dict[str, Any]:
        """A resize: another node count restarts the fleet (empty: the twin does not copy data)."""
        assert change.planned is not None and change.prior is not None
        state, cluster_id = dict(change.planned), str(change.prior["id"])
        if cluster_fleet(change.world, cluster_id) is None:
            raise api_error(
                "PUT", f"databases/{cluster_id}/resize", 404, "cluster not found", "resizing database cluster"
            )
        check_cluster(state, change.world, creating=False)
        password = str(change.prior["password"])
        if int(state["node_count"]) != int(change.prior["node_count"]):
            valkey.stop(change.world, CLUSTER, cluster_id)
            valkey.start(change.world, CLUSTER, cluster_id, cluster_shape(int(state["node_count"]), password))
        return self._record(change.world, state, cluster_id, password)

    def delete(self, change: Change) -> None:
        """Stop the fleet and forget the cluster (its firewall and config go with it)."""
        assert change.prior is not None
        cluster_id = str(change.prior["id"])
        valkey.stop(change.world, CLUSTER, cluster_id)
        change.world.forget(CLUSTER, cluster_id)

    def read(self, state: dict[str, Any], world: TwinWorld) -> dict[str, Any] | None:
        """The cluster while its fleet runs; gone otherwise."""
        return state if cluster_fleet(world, state.get("id")) is not None else None

    @staticmethod
    def _record(world: TwinWorld, state: dict[str, Any], cluster_id: str, password: str) -> dict[str, Any]:
        fleet = valkey.fleet_of(world, CLUSTER, cluster_id)
        assert fleet is not None
        primary = valkey.addresses(fleet)[0]
        region = str(state["region"]).lower()
        uri = f"rediss://default:{password}@{primary.host}:{TLS_PORT}"
        out = {
            **state,
            "id": cluster_id,
            "region": region,
            "host": primary.host,
            "private_host": primary.host,
            "port": TLS_PORT,
            "uri": uri,
            "private_uri": uri,
            "database": "",
            "user": "default",
            "password": password,
            "urn": f"do:dbaas:{cluster_id}",
            "metrics_endpoints": [],
            "private_network_uuid": state.get("private_network_uuid")
            if known(state.get("private_network_uuid"))
            else str(uuid.uuid5(uuid.NAMESPACE_URL, f"default-vpc/{region}")),
            "project_id": state.get("project_id")
            if known(state.get("project_id"))
            else str(uuid.uuid5(uuid.NAMESPACE_URL, "default-project")),
            "storage_size_mib": state.get("storage_size_mib")
            if known(state.get("storage_size_mib"))
            else str((size_gb(str(state["size"])) or 1) * 10 * 1024),
        }
        world.save(CLUSTER, cluster_id, plain({k: v for k, v in out.items() if "password" not in k and "uri" not in k}))
        return out


# ---- digitalocean_database_firewall --------------------------------------------------------------------------


def check_rules(rules: list[dict[str, Any]], cluster_id: str) -> None:
    """The API's checks of trusted sources: 100 at most, known types, an ``ip_addr`` is one IPv4 address."""
    path, action = f"databases/{cluster_id}/firewall", "updating DatabaseFirewall"
    if len(rules) > MAX_RULES:
        raise api_error("PUT", path, 422, f"a database cluster takes at most {MAX_RULES} firewall rules", action)
    for rule in rules:
        kind, value = rule.get("type"), str(rule.get("value"))
        if kind not in RULE_TYPES:
            raise api_error("PUT", path, 422, f"invalid firewall rule type {kind!r}", action)
        if kind != "ip_addr":
            continue
        try:
            address = ipaddress.ip_address(value)
        except ValueError:
            raise api_error(
                "PUT", path, 422, f"invalid ip_addr {value!r}: an IPv4 address, not a CIDR", action
            ) from None
        if address.version == 6:
            raise api_error("PUT", path, 422, f"invalid ip_addr {value!r}: IPv6 addresses are not supported", action)


class DatabaseFirewall(GenericTwin):
    """``digitalocean_database_firewall``: the trusted sources of a cluster, checked and recorded (not enforced)."""

    type_name = FIREWALL

    def create(self, change: Change) -> dict[str, Any]:
        """Replace the cluster's rules (the API's PUT), each with a uuid and a creation time."""
        assert change.planned is not None
        return self._put(change, None)

    def update(self, change: Change) -> dict[str, Any]:
        """The rule set is replaced whole, in place."""
        assert change.planned is not None and change.prior is not None
        return self._put(change, change.prior)

    def delete(self, change: Change) -> None:
        """Remove every rule (the cluster then accepts connections from anywhere)."""
        assert change.prior is not None
        change.world.forget(FIREWALL, str(change.prior["id"]))

    def read(self, state: dict[str, Any], world: TwinWorld) -> dict[str, Any] | None:
        """Gone with its cluster or its record."""
        if cluster_fleet(world, state.get("cluster_id")) is None or world.load(FIREWALL, str(state.get("id"))) is None:
            return None
        return state

    @staticmethod
    def _put(change: Change, prior: dict[str, Any] | None) -> dict[str, Any]:
        assert change.planned is not None
        state = dict(change.planned)
        cluster_id = str(state["cluster_id"])
        if cluster_fleet(change.world, cluster_id) is None:
            raise api_error(
                "PUT", f"databases/{cluster_id}/firewall", 404, "cluster not found", "creating DatabaseFirewall"
            )
        rules = list(state.get("rule") or [])
        check_rules(rules, cluster_id)
        before = {(r.get("type"), r.get("value")): r for r in (prior or {}).get("rule") or []}
        made = [
            {
                **rule,
                "uuid": before.get((rule["type"], rule["value"]), {}).get("uuid") or str(uuid.uuid4()),
                "created_at": before.get((rule["type"], rule["value"]), {}).get("created_at") or _now(),
            }
            for rule in rules
        ]
        record_id = (prior or {}).get("id") or str(uuid.uuid4())
        change.world.save(FIREWALL, str(record_id), plain({"cluster_id": cluster_id, "rule": made}))
        return {**state, "id": record_id, "rule": made}


# ---- digitalocean_database_valkey_config ---------------------------------------------------------------------


def _pubsub_mb(limits: str) -> int:
    parts = limits.split()
    index = parts.index("pubsub") if "pubsub" in parts else -1
    return int(parts[index + 1]) // (1024 * 1024) if index >= 0 else 0


#: Argument → the Valkey parameter it sets, and how a value goes there and comes back.
PARAMETERS: dict[str, tuple[str, Callable[[Any], str], Callable[[str], Any]]] = {
    "timeout": ("timeout", str, int),
    "notify_keyspace_events": ("notify-keyspace-events", str, str),
    "lfu_log_factor": ("lfu-log-factor", str, int),
    "lfu_decay_time": ("lfu-decay-time", str, int),
    "valkey_maxmemory_policy": ("maxmemory-policy", str, str),
    "acl_channels_default": ("acl-pubsub-default", str, str),
    "valkey_active_expire_effort": ("active-expire-effort", str, int),
    "io_threads": ("io-threads", str, int),
    "number_of_databases": ("databases", str, int),
    "persistence": (
        "save",
        lambda v: "3600 1 300 100 60 10000" if str(v).lower() == "rdb" else "",
        lambda v: "rdb" if v else "off",
    ),
    "pubsub_client_output_buffer_limit": (
        "client-output-buffer-limit",
        lambda v: f"pubsub {int(v)}mb {int(v)}mb 60",
        _pubsub_mb,
    ),
}
#: Parameters a running server cannot change: recorded, not applied.
RESTART_ONLY = frozenset({"io-threads", "databases"})
#: Plan-time enums of the provider (SDK ``StringInSlice``, case-insensitive).
ENUMS = {"persistence": ("off", "rdb"), "acl_channels_default": ("allchannels", "resetchannels")}


def _config_get(fleet: Fleet, name: str) -> str:
    answer = fleet.admin(fleet.servers[0], "CONFIG", "GET", name)
    if isinstance(answer, dict):
        return str(next(iter(answer.values()), ""))
    values = list(answer or [])
    value = values[1] if len(values) > 1 else ""
    return value.decode() if isinstance(value, bytes) else str(value)


class ValkeyConfig(GenericTwin):
    """``digitalocean_database_valkey_config``: settings applied to every server; never unset on destroy."""

    type_name = CONFIG

    def validate(self, config: dict[str, Any]) -> None:
        """The provider's enum validators."""
        for name, allowed in ENUMS.items():
            value = config.get(name)
            if isinstance(value, str) and value.lower() not in allowed:
                quoted = " ".join(f'"{a}"' for a in allowed)
                raise TwinError(f"expected {name} to be one of [{quoted}], got {value}", f"see {_SOURCE}", (name,))

    def create(self, change: Change) -> dict[str, Any]:
        """Apply the settings given (the API's PATCH), then read every setting back."""
        return self._apply(change)

    def update(self, change: Change) -> dict[str, Any]:
        """Apply the settings given, in place."""
        return self._apply(change)

    def delete(self, change: Change) -> None:
        """Only forgotten: DigitalOcean does not unset the remote configuration."""
        assert change.prior is not None
        change.world.forget(CONFIG, str(change.prior["id"]).replace("/", "~"))

    def read(self, state: dict[str, Any], world: TwinWorld) -> dict[str, Any] | None:
        """Gone with its cluster."""
        return state if cluster_fleet(world, state.get("cluster_id")) is not None else None

    @staticmethod
    def _apply(change: Change) -> dict[str, Any]:
        assert change.planned is not None
        state = dict(change.planned)
        cluster_id = str(state["cluster_id"])
        fleet = cluster_fleet(change.world, cluster_id)
        if fleet is None:
            raise api_error(
                "PATCH", f"databases/{cluster_id}/config", 404, "cluster not found", "updating Valkey configuration"
            )
        given = [
            (PARAMETERS[k][0], PARAMETERS[k][1](v)) for k, v in sorted(state.items()) if k in PARAMETERS and known(v)
        ]
        try:
            valkey.apply_parameters(fleet, [(k, v) for k, v in given if k not in RESTART_ONLY])
        except TwinError as exc:
            raise api_error(
                "PATCH", f"databases/{cluster_id}/config", 422, exc.summary, "updating Valkey configuration"
            ) from exc
        for name, (parameter, _to, back) in PARAMETERS.items():
            if not known(state.get(name)):
                state[name] = back(_config_get(fleet, parameter))
        state["ssl"] = state.get("ssl") if known(state.get("ssl")) else True
        if not known(state.get("frequent_snapshots")):
            state["frequent_snapshots"] = False
        state["id"] = f"{cluster_id}/valkey-config"
        change.world.save(CONFIG, f"{cluster_id}~valkey-config", plain(state))
        return state


# ---- digitalocean_vpc ----------------------------------------------------------------------------------------


class Vpc(GenericTwin):
    """``digitalocean_vpc``: recorded (the servers stay on loopback), its region and range checked."""

    type_name = VPC

    def create(self, change: Change) -> dict[str, Any]:
        """Check the region and range as the API does; an unset range gets one of 10.x.0.0/20."""
        assert change.planned is not None
        state = dict(change.planned)
        region = str(state["region"])
        if not _REGION.fullmatch(region):
            raise api_error("POST", "vpcs", 422, f"invalid region {region!r}", "creating VPC")
        if known(state.get("ip_range")):
            _check_range(str(state["ip_range"]))
        vpc_id = str(uuid.uuid4())
        out = {
            **state,
            "id": vpc_id,
            "urn": f"do:vpc:{vpc_id}",
            "default": False,
            "created_at": _now(),
            "ip_range": state["ip_range"] if known(state.get("ip_range")) else f"10.{secrets.randbelow(250)}.0.0/20",
        }
        change.world.save(VPC, vpc_id, plain(out))
        return out

    def update(self, change: Change) -> dict[str, Any]:
        """Name and description change in place."""
        assert change.planned is not None and change.prior is not None
        out = {**change.planned, "id": change.prior["id"]}
        change.world.save(VPC, str(change.prior["id"]), plain(out))
        return out

    def delete(self, change: Change) -> None:
        """Refused while a cluster is in it (the API's 409), else forgotten."""
        assert change.prior is not None
        vpc_id = str(change.prior["id"])
        if any(record.get("private_network_uuid") == vpc_id for record in change.world.all(CLUSTER)):
            raise api_error("DELETE", f"vpcs/{vpc_id}", 409, "Can not delete VPC with members", "deleting VPC")
        change.world.forget(VPC, vpc_id)

    def read(self, state: dict[str, Any], world: TwinWorld) -> dict[str, Any] | None:
        """Gone when no longer recorded."""
        return state if world.load(VPC, str(state.get("id"))) is not None else None


def _check_range(ip_range: str) -> None:
    """A VPC range is a private IPv4 network of /16 to /28."""
    try:
        network = ipaddress.ip_network(ip_range)
    except ValueError:
        raise api_error("POST", "vpcs", 422, f"invalid ip_range {ip_range!r}", "creating VPC") from None
    if network.version != 4 or not network.is_private or not 16 <= network.prefixlen <= 28:
        raise api_error(
            "POST", "vpcs", 422, f"ip_range {ip_range} must be a private IPv4 range from /16 to /28", "creating VPC"
        )


RESOURCES = (DatabaseCluster(), DatabaseFirewall(), ValkeyConfig(), Vpc())
DATA_SOURCES: tuple[Any, ...] = ()
