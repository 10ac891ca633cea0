"""The scaleway twin: ``scaleway_redis_cluster`` backed by real Redis 7.0 (Scaleway runs Redis, not Valkey).

``cluster_size`` gives the topology (1 standalone, 2 main + standby, 3 to 6 cluster mode, each primary with one
replica), every server listens on port 6379 at an IP of its own (Scaleway endpoints are IPs, no DNS name), and a
TLS cluster gets a certificate of its own, exported as ``certificate``, as Scaleway's self-signed per-cluster
certificate is. The plan-time and API rules are in ``docs/twins.md`` (section Scaleway), each with its source.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import uuid
from datetime import UTC, datetime
from typing import Any

from reproducer.offline.values import UNKNOWN
from reproducer.sandbox.fleet import ADMIN_USER, Fleet, FleetSpec
from reproducer.sandbox.tls import CaFiles
from reproducer.twins import valkey
from reproducer.twins.base import Change, GenericTwin, TwinError, TwinWorld, plain

CLUSTER = "scaleway_redis_cluster"
_SOURCE = "docs/twins.md#scaleway"
PORT = 6379
#: Redis versions the API offers in the provider's recorded answers (docs/reference/targets.md#scaleway).
VERSIONS = ("6.2.7", "7.0.5")
#: ``cluster_size``: 1 standalone, 2 high availability, 3 to 6 cluster mode.
MAX_SIZE = 6
#: Scaleway's available settings; ``databases`` and ``disable-save`` cannot change on a running Redis, the twin
#: records them only.
SETTINGS = frozenset(
    {
        "databases",
        "disable-save",
        "maxclients",
        "maxmemory-policy",
        "notify-keyspace-events",
        "slowlog-log-slower-than",
        "slowlog-max-len",
        "tcp-keepalive",
    }
)
_RECORDED_ONLY = frozenset({"databases", "disable-save"})
_NODE_TYPE = re.compile(r"RED1-(?:MICRO|XS|S|M|L|XL|2XL)", re.IGNORECASE)
_ZONE = re.compile(r"(?:fr-par|nl-ams|pl-waw)-[1-3]")


def _api_error(message: str) -> TwinError:
    """A Scaleway API refusal as the provider prints it (the SDK's prefix, then the API's message)."""
    return TwinError(f"scaleway-sdk-go: invalid argument(s): {message}", f"twin rule, see {_SOURCE}")


def _known(value: Any) -> bool:
    return value is not None and value is not UNKNOWN


@dataclasses.dataclass(frozen=True)
class OwnCaShape(valkey.ValkeyShape):
    """A shape whose TLS certificate is signed by a CA of its own fleet, not the world's: one per cluster."""

    def fleet_spec(self, ca: CaFiles) -> FleetSpec:
        """The fleet to start, with no shared CA (the fleet makes its own)."""
        return dataclasses.replace(super().fleet_spec(ca), tls_ca_cert=None, tls_ca_key=None)


# ---- plan-time rules ----------------------------------------------------------------------------------------


def _check_conflicts(config: dict[str, Any]) -> None:
    """``acl`` and ``private_network`` are ConflictsWith each other in the schema."""
    if config.get("acl") and config.get("private_network"):
        raise TwinError('"acl": conflicts with private_network', f"see {_SOURCE}", ("acl",))


def _cidr(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """``text`` as Go's ``net.ParseCIDR`` reads it (a prefix length required, host bits allowed), or None."""
    try:
        return ipaddress.ip_network(text, strict=False) if "/" in text else None
    except ValueError:
        return None


def _check_acl_cidrs(config: dict[str, Any]) -> None:
    """Each ``acl.ip`` passes ``validation.IsCIDR``."""
    for rule in config.get("acl") or []:
        ip = rule.get("ip") if isinstance(rule, dict) else None
        if isinstance(ip, str) and _cidr(ip) is None:
            raise TwinError(
                f'expected "ip" to be a valid IPv4 Value, got {ip}: invalid CIDR address: {ip}',
                f"see {_SOURCE}",
                ("acl",),
            )


# ---- API rules (apply time, before anything starts) -------------------------------------------------------


def check_api(state: dict[str, Any]) -> None:
    """What the Scaleway API refuses on create or update: size, version, node type, IPv6 ACLs, unknown settings."""
    size = state.get("cluster_size")
    if isinstance(size, (int, float)) and not 1 <= size <= MAX_SIZE:
        raise _api_error(f"cluster_size {size}: set 1 (standalone), 2 (high availability) or 3 to {MAX_SIZE} (cluster)")
    version = state.get("version")
    if version not in VERSIONS:
        raise _api_error(f"version {version!r} is not an available Redis version ({', '.join(VERSIONS)})")
    node_type = state.get("node_type")
    if not isinstance(node_type, str) or not _NODE_TYPE.fullmatch(node_type):
        raise _api_error(f"node_type {node_type!r} is not a Redis node type of this zone")
    zone = state.get("zone")
    if _known(zone) and not _ZONE.fullmatch(str(zone)):
        raise _api_error(f"zone {zone!r} does not offer Managed Database for Redis")
    for rule in state.get("acl") or []:
        network = _cidr(str(rule.get("ip")))
        if network is None or network.version == 6:
            raise _api_error(f"acl_rules.ip_cidr {rule.get('ip')}: IPv6 is not supported by the Scaleway API")
    unknown = sorted(set(state.get("settings") or {}) - SETTINGS)
    if unknown:
        raise _api_error(f"settings: {', '.join(unknown)} not among the cluster's available settings")
    if state.get("user_name") == ADMIN_USER:
        raise _api_error(f"user_name {ADMIN_USER} is reserved by the twin")


def _size(state: dict[str, Any]) -> int:
    size = state.get("cluster_size")
    return int(size) if isinstance(size, (int, float)) else 1


def cluster_shape(state: dict[str, Any], password: str) -> OwnCaShape:
    """The fleet of ``cluster_size``: the initial user (all rights) on Redis 7.0, port 6379, settings applied."""
    size = _size(state)
    user = str(state["user_name"])
    users = [valkey.TwinUser.with_passwords(user, "on ~* &* +@all", [password])]
    if user != "default":
        users.append(valkey.TwinUser("default", "off"))
    settings = state.get("settings") or {}
    return OwnCaShape(
        shards=size if size >= 3 else 1,
        replicas=1 if size >= 2 else 0,
        cluster=size >= 3,
        tls=state.get("tls_enabled") is True,
        port=PORT,
        users=tuple(users),
        parameters=tuple((k, str(v)) for k, v in sorted(settings.items()) if k not in _RECORDED_ONLY),
        engine="redis",
    )


def _password(config: dict[str, Any] | None, state: dict[str, Any]) -> str | None:
    """The password given (``password_wo`` lives in the configuration only), or None."""
    for value in ((config or {}).get("password_wo"), state.get("password")):
        if isinstance(value, str) and value:
            return value
    return None


class RedisCluster(GenericTwin):
    """``scaleway_redis_cluster``: Redis 7.0 of ``cluster_size`` nodes; endpoints are IPs on port 6379."""

    type_name = CLUSTER
    #: The provider is SDKv2: Terraform tolerates its computed blocks appearing at apply (as for the real one).
    legacy_type_system = True

    def validate(self, config: dict[str, Any]) -> None:
        """The provider's plan-time checks: acl conflicts with private_network, ACL IPs are CIDRs."""
        _check_conflicts(config)
        _check_acl_cidrs(config)

    def plan(self, change: Change) -> dict[str, Any] | None:
        """The endpoint blocks the API makes: their count known from the config, their values after a create."""
        planned = change.planned
        if planned is None:
            return None
        if change.prior is not None:
            return _kept(change.prior, planned)
        private = bool(planned.get("private_network"))
        size = _size(planned)
        public = {"id": UNKNOWN, "ips": UNKNOWN, "port": UNKNOWN}
        planned["public_network"] = [] if private else [public]
        nodes = size if size >= 3 else 1
        planned["private_ips"] = [{"id": UNKNOWN, "address": UNKNOWN} for _ in range(nodes)] if private else []
        return planned

    def create(self, change: Change) -> dict[str, Any]:
        """Check what the API checks, start the cluster, fill the computed attributes."""
        assert change.planned is not None
        state = dict(change.planned)
        state["zone"] = state.get("zone") if _known(state.get("zone")) else change.provider.get("zone") or "fr-par-1"
        state["cluster_size"] = _size(state)
        check_api(state)
        password = _password(change.config, state)
        if password is None:
            raise _api_error("password: a password (or password_wo) is required")
        record_id = str(uuid.uuid4())
        valkey.start(change.world, CLUSTER, record_id, cluster_shape(state, password))
        fleet = valkey.fleet_of(change.world, CLUSTER, record_id)
        assert fleet is not None
        state["id"] = f"{state['zone']}/{record_id}"
        state["created_at"] = _now()
        return self._record(change.world, fleet, state, record_id, password)

    def update(self, change: Change) -> dict[str, Any]:
        """Settings, ACL rules and the user's password in place; another size is refused (data would be lost)."""
        assert change.planned is not None and change.prior is not None
        state = dict(change.planned)
        check_api(state)
        record_id = _record_id(change.prior)
        fleet = valkey.fleet_of(change.world, CLUSTER, record_id)
        if fleet is None:
            raise TwinError(f"scaleway-sdk-go: resource is not found: cluster {record_id}", f"see {_SOURCE}")
        if _size(state) != _size(change.prior):
            raise TwinError(
                f"the twin cannot migrate a running cluster from {_size(change.prior)} to {_size(state)} nodes",
                f"a deviation of the twin (Scaleway migrates the data): destroy and apply again; see {_SOURCE}",
            )
        recorded = change.world.load(CLUSTER, record_id) or {}
        password = _password(change.config, state)
        if password is not None and state.get("password_wo_version") != change.prior.get("password_wo_version"):
            valkey.apply_users(fleet, cluster_shape(state, password).users)
        elif state.get("user_name") != change.prior.get("user_name"):
            raise _api_error("user_name: a new user name needs its password (raise password_wo_version)")
        shape = cluster_shape(state, password or "")
        valkey.apply_parameters(fleet, shape.parameters)
        return self._record(change.world, fleet, state, record_id, None, recorded)

    def delete(self, change: Change) -> None:
        """Stop the cluster's servers and forget it."""
        assert change.prior is not None
        record_id = _record_id(change.prior)
        valkey.stop(change.world, CLUSTER, record_id)
        change.world.forget(CLUSTER, record_id)

    def read(self, state: dict[str, Any], world: TwinWorld) -> dict[str, Any] | None:
        """The cluster while its servers run; gone otherwise."""
        record_id = _record_id(state)
        if world.load(CLUSTER, record_id) is None or valkey.fleet_of(world, CLUSTER, record_id) is None:
            return None
        return state

    @staticmethod
    def _record(
        world: TwinWorld,
        fleet: Fleet,
        state: dict[str, Any],
        record_id: str,
        password: str | None,
        recorded: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        primaries = [n for n in valkey.addresses(fleet) if n.role == "primary"]
        ips = [n.host for n in primaries]
        endpoint = {"ips": ips, "port": PORT}
        private = [
            {
                **network,
                "endpoint_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{record_id}/{network.get('id')}")),
                "ips": ips,
                "port": PORT,
                "service_ips": network.get("service_ips") if _known(network.get("service_ips")) else [],
                "zone": state["zone"],
            }
            for network in state.get("private_network") or []
        ]
        files = fleet.tls_files
        out = {
            **state,
            "name": state.get("name") if _known(state.get("name")) else f"redis-{record_id[:8]}",
            "cluster_size": _size(state),
            "public_network": [] if private else [{"id": str(uuid.uuid5(uuid.NAMESPACE_URL, record_id)), **endpoint}],
            "private_network": private,
            "private_ips": [{"id": str(uuid.uuid5(uuid.NAMESPACE_URL, ip)), "address": ip} for ip in ips]
            if private
            else [],
            "acl": [
                {**rule, "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{record_id}/{rule.get('ip')}"))}
                for rule in state.get("acl") or []
            ],
            "certificate": files.ca_cert.read_text(encoding="ascii") if files else "",
            "created_at": state.get("created_at") if _known(state.get("created_at")) else _now(),
            "updated_at": _now(),
            "connection_string": _connection_string(state, ips[0], password),
        }
        world.save(
            CLUSTER,
            record_id,
            plain({k: v for k, v in out.items() if "password" not in k and k != "connection_string"})
            | {"created": (recorded or {}).get("created", out["created_at"])},
        )
        return out


def _kept(prior: dict[str, Any], planned: dict[str, Any]) -> dict[str, Any]:
    """An update's plan: what the API made (endpoints, rule ids) stays as it is for the same configuration."""
    planned = {**planned, "public_network": prior.get("public_network"), "private_ips": prior.get("private_ips")}
    rules = {rule.get("ip"): rule for rule in prior.get("acl") or []}
    planned["acl"] = [
        {**rule, "id": rules[rule.get("ip")].get("id")} if rule.get("ip") in rules else rule
        for rule in planned.get("acl") or []
    ]
    networks = {network.get("id"): network for network in prior.get("private_network") or []}
    planned["private_network"] = [
        {**networks[network.get("id")], **{k: v for k, v in network.items() if _known(v)}}
        if network.get("id") in networks
        else network
        for network in planned.get("private_network") or []
    ]
    return planned


def _record_id(state: dict[str, Any]) -> str:
    """The world's record of a cluster: the UUID of its ``zone/UUID`` id."""
    return str(state.get("id") or "").rsplit("/", 1)[-1]


def _connection_string(state: dict[str, Any], host: str, password: str | None) -> str:
    """As the provider builds it: ``rediss`` with TLS, the user, the password only when not write-only."""
    scheme = "rediss" if state.get("tls_enabled") is True else "redis"
    secret = f":{password}" if password and isinstance(state.get("password"), str) else ""
    return f"{scheme}://{state['user_name']}{secret}@{host}:{PORT}/0"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


RESOURCES = (RedisCluster(),)
DATA_SOURCES: tuple[Any, ...] = ()
