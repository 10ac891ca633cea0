"""The google twin: Memorystore for Valkey (``google_memorystore_instance``) backed by real Valkey.

Modelled types (the rest of the provider behaves as offline): ``google_memorystore_instance``, its
``google_memorystore_acl_policy``, ``google_project_service`` (which APIs a project has enabled) and
``google_network_connectivity_service_connection_policy`` (recorded, so an instance can require one).
Each rule cites ``docs/twins.md`` (section GCP), which names its source.
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from collections.abc import Iterable
from typing import Any

from reproducer.offline.values import UNKNOWN
from reproducer.sandbox.fleet import ADMIN_USER, Fleet, Node
from reproducer.twins import valkey
from reproducer.twins.base import Change, GenericTwin, TwinError, TwinWorld, plain

INSTANCE = "google_memorystore_instance"
ACL_POLICY = "google_memorystore_acl_policy"
PROJECT_SERVICE = "google_project_service"
CONNECTION_POLICY = "google_network_connectivity_service_connection_policy"

#: The APIs a Memorystore instance needs, in the order the twin checks them, with their titles [I: titles].
REQUIRED_APIS = {
    "memorystore.googleapis.com": "Memorystore API",
    "networkconnectivity.googleapis.com": "Network Connectivity API",
    "serviceconsumermanagement.googleapis.com": "Service Consumer Management API",
}
ENGINE_VERSIONS = ("VALKEY_7_2", "VALKEY_8_0", "VALKEY_9_0")
DEFAULT_ENGINE_VERSION = "VALKEY_9_0"
#: Provider-side enums (generated ``verify.ValidateEnum``, which also accepts the empty string).
ENUMS = {
    "mode": ("CLUSTER", "CLUSTER_DISABLED"),
    "node_type": (
        "SHARED_CORE_NANO",
        "HIGHMEM_MEDIUM",
        "HIGHMEM_XLARGE",
        "STANDARD_SMALL",
        "CUSTOM_MICRO",
        "CUSTOM_MINI",
        "HIGHCPU_MEDIUM",
        "STANDARD_LARGE",
        "HIGHMEM_2XLARGE",
        "CUSTOM_PICO",
    ),
    "transit_encryption_mode": ("TRANSIT_ENCRYPTION_DISABLED", "SERVER_AUTHENTICATION"),
    "authorization_mode": ("AUTH_DISABLED", "IAM_AUTH"),
    "server_ca_mode": ("GOOGLE_MANAGED_PER_INSTANCE_CA", "GOOGLE_MANAGED_SHARED_CA", "CUSTOMER_MANAGED_CAS_CA"),
}
#: ``node_config.size_gb``: total GB per node type, writable GB / 0.8 (docs/reference/targets.md#node-sizes).
NODE_SIZE_GB = {
    "SHARED_CORE_NANO": 1.4,
    "CUSTOM_PICO": 1.35,
    "CUSTOM_MICRO": 2.5,
    "CUSTOM_MINI": 3.75,
    "STANDARD_SMALL": 6.5,
    "HIGHMEM_MEDIUM": 13.0,
    "HIGHCPU_MEDIUM": 13.0,
    "STANDARD_LARGE": 26.0,
    "HIGHMEM_XLARGE": 58.0,
    "HIGHMEM_2XLARGE": 110.0,
}
MAX_REPLICAS = 5
#: Every endpoint listens on 6379 (docs/reference/targets.md#memorystore-engine-configs); each server of the twin on
#: a loopback address of its own.
PORT = 6379
_INSTANCE_ID = re.compile(r"[a-z0-9](?:[a-z0-9-]{2,61}[a-z0-9])")
_ACL_POLICY_ID = re.compile(r"[a-zA-Z](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?")
_RETENTION = re.compile(r"(\d+)s")
_DAY = 86400
_SOURCE = "docs/twins.md#gcp"


# ---- shared helpers -----------------------------------------------------------------------------------------


def project_of(config: dict[str, Any], provider: dict[str, Any] | None = None) -> str:
    """The project of a resource: its ``project``, the provider block's, or ``GOOGLE_PROJECT`` (as the provider)."""
    for project in (config.get("project"), (provider or {}).get("project")):
        if isinstance(project, str) and project:
            return project
    return os.environ.get("GOOGLE_PROJECT") or os.environ.get("GOOGLE_CLOUD_PROJECT") or "twin-project"


def project_number(project: str) -> str:
    """A stable 12-digit project number for ``project`` (Google's errors name the number, not the id)."""
    return str(int(hashlib.sha256(project.encode()).hexdigest(), 16) % 10**12).rjust(12, "1")


def api_error(code: int, message: str) -> TwinError:
    """A Google API error as the provider prints it (``googleapi: Error <code>: <message>``)."""
    return TwinError(f"googleapi: Error {code}: {message}", f"twin rule, see {_SOURCE}")


def service_record_id(project: str, service: str) -> str:
    """The world record id of an enabled API."""
    return f"{project}:{service}"


def enable_services(world: TwinWorld, project: str, services: Iterable[str]) -> None:
    """Record APIs as enabled in ``project`` (a project where someone enabled them before Terraform ran)."""
    for service in services:
        record_id = service_record_id(project, service)
        world.save(PROJECT_SERVICE, record_id, {"id": record_id, "project": project, "service": service})


def require_apis(world: TwinWorld, project: str) -> None:
    """Refuse like Google when an API Memorystore needs is not enabled in ``project`` (SERVICE_DISABLED)."""
    for service, title in REQUIRED_APIS.items():
        if world.load(PROJECT_SERVICE, service_record_id(project, service)) is None:
            number = project_number(project)
            raise api_error(
                403,
                f"{title} has not been used in project {number} before or it is disabled. Enable it by visiting "
                f"https://console.developers.google.com/apis/api/{service}/overview?project={number} then retry. "
                "If you enabled this API recently, wait a few minutes for the action to propagate to our systems "
                "and retry.",
            )


def _known(value: Any) -> bool:
    return value is not None and value is not UNKNOWN


def _filled(planned: dict[str, Any], **values: Any) -> dict[str, Any]:
    """``planned`` with each of ``values`` set where the plan left it unknown or null."""
    out = dict(planned)
    for name, value in values.items():
        if not _known(out.get(name)):
            out[name] = value
    return out


def _record_id(name: str) -> str:
    return name.replace("/", "~")


# ---- google_project_service ---------------------------------------------------------------------------------


class ProjectService(GenericTwin):
    """``google_project_service``: enabling an API records it in the world; destroy disables it by default."""

    type_name = PROJECT_SERVICE

    def create(self, change: Change) -> dict[str, Any]:
        """Enable the API in the project."""
        assert change.planned is not None and change.config is not None
        project = project_of(change.config, change.provider)
        service = str(change.planned["service"])
        record_id = service_record_id(project, service)
        enable_services(change.world, project, [service])
        return _filled(change.planned, id=record_id, project=project)

    def update(self, change: Change) -> dict[str, Any]:
        """Only Terraform-side flags change in place."""
        assert change.planned is not None
        return change.planned

    def delete(self, change: Change) -> None:
        """Disable the API unless ``disable_on_destroy = false`` (the provider's default is true)."""
        assert change.prior is not None
        if change.prior.get("disable_on_destroy") is not False:
            change.world.forget(PROJECT_SERVICE, str(change.prior["id"]))

    def read(self, state: dict[str, Any], world: TwinWorld) -> dict[str, Any] | None:
        """Gone when the API was disabled."""
        return state if world.load(PROJECT_SERVICE, str(state.get("id"))) is not None else None


# ---- google_network_connectivity_service_connection_policy -------------------------------------------------


class ConnectionPolicy(GenericTwin):
    """A service connection policy, recorded so that an instance can require one for its network and region."""

    type_name = CONNECTION_POLICY

    def create(self, change: Change) -> dict[str, Any]:
        """Record the policy."""
        assert change.planned is not None and change.config is not None
        project = project_of(change.config, change.provider)
        name = f"projects/{project}/locations/{change.planned['location']}/serviceConnectionPolicies/"
        name += str(change.planned["name"])
        state = _filled(change.planned, id=name, project=project)
        change.world.save(CONNECTION_POLICY, _record_id(name), plain(state))
        return state

    def update(self, change: Change) -> dict[str, Any]:
        """Record the new state."""
        assert change.planned is not None
        change.world.save(CONNECTION_POLICY, _record_id(str(change.planned["id"])), plain(change.planned))
        return change.planned

    def delete(self, change: Change) -> None:
        """Forget the policy."""
        assert change.prior is not None
        change.world.forget(CONNECTION_POLICY, _record_id(str(change.prior["id"])))

    def read(self, state: dict[str, Any], world: TwinWorld) -> dict[str, Any] | None:
        """Gone when no longer recorded."""
        return state if world.load(CONNECTION_POLICY, _record_id(str(state.get("id")))) is not None else None


def require_connection_policy(world: TwinWorld, project: str, location: str, networks: list[str]) -> None:
    """Fail like the create operation when no ``gcp-memorystore`` policy covers the instance's network."""
    policies = [p for p in world.all(CONNECTION_POLICY) if p.get("service_class") == "gcp-memorystore"]
    for network in networks:
        if not any(p.get("location") == location and p.get("network") == network for p in policies):
            raise TwinError(
                f"Error waiting to create Instance: Error code 9, message: an internal error has occurred: "
                f'Invalid resource state for "projects/{project}/locations/{location}": No service connection '
                f"policy is associated with project: {project}, network: {network}, region: {location}",
                f"twin rule, see {_SOURCE}",
            )


# ---- google_memorystore_acl_policy --------------------------------------------------------------------------


class AclPolicy(GenericTwin):
    """``google_memorystore_acl_policy``: named ACL rules that instances referring to it set on Valkey."""

    type_name = ACL_POLICY

    def validate(self, config: dict[str, Any]) -> None:
        """No provider-side rule (the API checks the id)."""

    def create(self, change: Change) -> dict[str, Any]:
        """Check the id as the API does and record the policy."""
        assert change.planned is not None and change.config is not None
        policy_id = str(change.planned["acl_policy_id"])
        if not _ACL_POLICY_ID.fullmatch(policy_id):
            raise api_error(
                400,
                f"Invalid value for acl_policy_id {policy_id!r}: it must be 1 to 63 characters, start with a "
                "letter, contain only letters, digits and hyphens, and end with a letter or a digit.",
            )
        check_rules(change.planned.get("rules") or [])
        project = project_of(change.config, change.provider)
        name = f"projects/{project}/locations/{change.planned['location']}/aclPolicies/{policy_id}"
        fills = {"id": name, "name": name, "project": project, "state": "ACTIVE", "etag": uuid.uuid4().hex}
        state = _filled(change.planned, **fills, deletion_policy="DELETE")
        change.world.save(ACL_POLICY, _record_id(name), plain(state))
        return state

    def update(self, change: Change) -> dict[str, Any]:
        """New rules reach every instance that uses the policy."""
        assert change.planned is not None
        state = change.planned
        check_rules(state.get("rules") or [])
        change.world.save(ACL_POLICY, _record_id(str(state["id"])), plain(state))
        for instance in change.world.all(INSTANCE):
            if instance.get("acl_policy") == state["id"]:
                apply_rules(instance_fleet(change.world, instance), state.get("rules") or [])
        return state

    def delete(self, change: Change) -> None:
        """Forget the policy."""
        assert change.prior is not None
        change.world.forget(ACL_POLICY, _record_id(str(change.prior["id"])))

    def read(self, state: dict[str, Any], world: TwinWorld) -> dict[str, Any] | None:
        """Gone when no longer recorded."""
        return state if world.load(ACL_POLICY, _record_id(str(state.get("id")))) is not None else None


def check_rules(rules: list[dict[str, Any]]) -> None:
    """Refuse a rule for the twin's own administrative user (it would lock the twin out of its Valkey)."""
    if any(rule.get("username") == ADMIN_USER for rule in rules):
        raise api_error(400, f"The user name {ADMIN_USER} is reserved by the twin.")


def apply_rules(fleet: Fleet, rules: list[dict[str, Any]]) -> None:
    """Set each rule on every server as it is written: Memorystore passes it to Valkey unchanged."""
    for rule in rules:
        tokens = str(rule.get("rule", "")).split()
        for node in fleet.servers:
            try:
                fleet.admin(node, "ACL", "SETUSER", str(rule.get("username")), "reset", *tokens)
            except Exception as exc:  # valkey-py raises its ResponseError for a bad rule
                raise api_error(400, f"Invalid ACL rule for user {rule.get('username')!r}: {exc}") from None


# ---- google_memorystore_instance ----------------------------------------------------------------------------


def instance_fleet(world: TwinWorld, state: dict[str, Any]) -> Fleet:
    """The fleet behind an applied instance."""
    return Fleet.attach(world.fleet_dir(INSTANCE, _record_id(str(state["id"]))))


def _shape(state: dict[str, Any]) -> valkey.ValkeyShape:
    return valkey.ValkeyShape(
        shards=int(state["shard_count"]),
        replicas=int(state["replica_count"]),
        cluster=state["mode"] == "CLUSTER",
        tls=state["transit_encryption_mode"] == "SERVER_AUTHENTICATION",
        port=PORT,
    )


def _check_enum(config: dict[str, Any], name: str) -> None:
    value = config.get(name)
    if isinstance(value, str) and value and value not in ENUMS[name]:
        allowed = " ".join(f'"{v}"' for v in (*ENUMS[name], ""))
        raise TwinError(f"expected {name} to be one of [{allowed}], got {value}", f"see {_SOURCE}", (name,))


def _check_api_rules(state: dict[str, Any]) -> None:
    """What the Memorystore API refuses at create (the plan looked fine)."""
    instance_id = str(state["instance_id"])
    if not _INSTANCE_ID.fullmatch(instance_id):
        raise api_error(
            400,
            f"Invalid instance_id {instance_id!r}: it must be 4 to 63 characters long, start with a letter or a "
            "digit, contain only lowercase letters, digits and hyphens, and not end with a hyphen.",
        )
    if state["engine_version"] not in ENGINE_VERSIONS:
        raise api_error(
            400, f"Invalid engine_version {state['engine_version']!r}: use one of {', '.join(ENGINE_VERSIONS)}."
        )
    if state["mode"] == "CLUSTER_DISABLED" and int(state["shard_count"]) != 1:
        raise api_error(400, "shard_count must be 1 when mode is CLUSTER_DISABLED.")
    if not 0 <= int(state["replica_count"]) <= MAX_REPLICAS:
        raise api_error(400, f"replica_count must be between 0 and {MAX_REPLICAS}.")
    for backup in state.get("automated_backup_config") or []:
        _check_retention(str(backup.get("retention")))


def _check_retention(retention: str) -> None:
    match = _RETENTION.fullmatch(retention)
    seconds = int(match.group(1)) if match else -1
    if seconds < 0 or seconds % _DAY or not 1 <= seconds // _DAY <= 365:
        raise api_error(
            400, f"Invalid automated_backup_config.retention {retention!r}: use whole days from 1 to 365, in seconds."
        )


class MemorystoreInstance:
    """``google_memorystore_instance``: a cluster or a primary with replicas, TLS from the twin's CA."""

    type_name = INSTANCE

    def validate(self, config: dict[str, Any]) -> None:
        """The provider's enum checks (plan time)."""
        for name in ENUMS:
            _check_enum(config, name)
        for zone in config.get("zone_distribution_config") or []:
            mode = zone.get("mode")
            if isinstance(mode, str) and mode not in ("MULTI_ZONE", "SINGLE_ZONE", ""):
                allowed = '["MULTI_ZONE" "SINGLE_ZONE" ""]'
                raise TwinError(f"expected zone_distribution_config.0.mode to be one of {allowed}, got {mode}", _SOURCE)

    def plan(self, change: Change) -> dict[str, Any] | None:
        """Changing node_type together with anything but engine_configs is refused (provider-side)."""
        prior, planned = change.prior, change.planned
        if prior is None or planned is None or planned.get("node_type") == prior.get("node_type"):
            return planned
        others = ("shard_count", "replica_count", "engine_version", "acl_policy", "labels")
        if any(planned.get(k) != prior.get(k) for k in others):
            raise TwinError("only engine_configs supported along with node_type update", f"see {_SOURCE}")
        return planned

    def create(self, change: Change) -> dict[str, Any]:
        """Check what the API checks, start the fleet, fill the computed attributes."""
        assert change.planned is not None and change.config is not None
        state = self._defaults(change.planned, project_of(change.config, change.provider))
        _check_api_rules(state)
        require_apis(change.world, state["project"])
        networks = [str(e["network"]) for e in self._endpoint_requests(state)]
        require_connection_policy(change.world, state["project"], str(state["location"]), networks)
        fleet = self._start(change.world, state)
        return self._record(change.world, fleet, state)

    def update(self, change: Change) -> dict[str, Any]:
        """Reshape (the twin restarts the fleet empty), configure, re-apply the ACL policy."""
        assert change.planned is not None and change.prior is not None
        state = {**change.planned, **{k: change.prior[k] for k in ("id", "name", "uid", "create_time")}}
        state = self._defaults(state, str(change.prior["project"]))
        _check_api_rules(state)
        if _shape(state) != _shape(self._defaults(change.prior, str(change.prior["project"]))):
            fleet = self._start(change.world, state)
        else:
            fleet = instance_fleet(change.world, change.prior)
            self._configure(change.world, fleet, state)
        return self._record(change.world, fleet, state)

    def delete(self, change: Change) -> None:
        """Refuse while deletion protection is on (the default), else stop the fleet and forget the instance."""
        assert change.prior is not None
        if change.prior.get("deletion_protection_enabled") is not False:
            raise api_error(
                400,
                f"Instance {change.prior['id']} has deletion protection enabled: set deletion_protection_enabled "
                "= false, apply, then destroy.",
            )
        valkey.stop(change.world, INSTANCE, _record_id(str(change.prior["id"])))
        change.world.forget(INSTANCE, _record_id(str(change.prior["id"])))

    def read(self, state: dict[str, Any], world: TwinWorld) -> dict[str, Any] | None:
        """The recorded instance while its fleet runs; gone otherwise."""
        recorded = world.load(INSTANCE, _record_id(str(state.get("id"))))
        if recorded is None:
            return None
        if valkey.fleet_of(world, INSTANCE, _record_id(str(recorded["id"]))) is None:
            return None
        return {**state, **{k: recorded[k] for k in ("endpoints", "managed_server_ca", "state")}}

    # -- helpers --------------------------------------------------------------------------------------------

    @staticmethod
    def _defaults(planned: dict[str, Any], project: str) -> dict[str, Any]:
        location, instance_id = planned["location"], planned["instance_id"]
        name = f"projects/{project}/locations/{location}/instances/{instance_id}"
        state = _filled(
            planned,
            project=project,
            id=name,
            name=name,
            uid=str(uuid.uuid4()),
            mode="CLUSTER",
            replica_count=0,
            node_type="HIGHMEM_MEDIUM",
            engine_version=DEFAULT_ENGINE_VERSION,
            transit_encryption_mode="TRANSIT_ENCRYPTION_DISABLED",
            authorization_mode="AUTH_DISABLED",
            server_ca_mode="GOOGLE_MANAGED_PER_INSTANCE_CA",
            deletion_policy="DELETE",
        )
        size = NODE_SIZE_GB.get(str(state["node_type"]), 0.0)
        return {**state, "node_config": [{"size_gb": size}], "state": "ACTIVE", "is_acl_policy_in_sync": True}

    @staticmethod
    def _endpoint_requests(state: dict[str, Any]) -> list[dict[str, Any]]:
        return list(state.get("desired_auto_created_endpoints") or state.get("desired_psc_auto_connections") or [])

    def _start(self, world: TwinWorld, state: dict[str, Any]) -> Fleet:
        record_id = _record_id(str(state["id"]))
        valkey.stop(world, INSTANCE, record_id)
        valkey.start(world, INSTANCE, record_id, _shape(state))
        fleet = instance_fleet(world, state)
        try:
            self._configure(world, fleet, state)
        except BaseException:
            fleet.stop()
            raise
        return fleet

    @staticmethod
    def _configure(world: TwinWorld, fleet: Fleet, state: dict[str, Any]) -> None:
        for name, value in sorted((state.get("engine_configs") or {}).items()):
            try:
                fleet.set_config(name, str(value))
            except Exception as exc:  # valkey-py's ResponseError: an unsupported parameter or value
                raise api_error(400, f"Invalid engine_configs entry {name!r}: {exc}") from None
        policy_id = state.get("acl_policy")
        if _known(policy_id):
            policy = world.load(ACL_POLICY, _record_id(str(policy_id)))
            if policy is None:
                raise api_error(404, f"ACL policy {policy_id} was not found.")
            apply_rules(fleet, policy.get("rules") or [])

    def _record(self, world: TwinWorld, fleet: Fleet, state: dict[str, Any]) -> dict[str, Any]:
        uses_auto_created = bool(state.get("desired_auto_created_endpoints"))
        connections = self._connections(fleet, state)
        state = {
            **state,
            "endpoints": [{"connections": [{"psc_auto_connection": [c]} for c in connections]}],
            "discovery_endpoints": [] if uses_auto_created or not connections else self._discovery(connections),
            "psc_auto_connections": []
            if uses_auto_created
            else [{**c, "psc_connection_status": "ACTIVE"} for c in connections],
            "psc_attachment_details": [
                {"connection_type": c["connection_type"], "service_attachment": c["service_attachment"]}
                for c in connections
            ],
            "managed_server_ca": self._server_ca(world, state),
        }
        world.save(INSTANCE, _record_id(str(state["id"])), plain(state))
        return state

    @staticmethod
    def _discovery(connections: list[dict[str, Any]]) -> list[dict[str, Any]]:
        first = connections[0]
        return [{"address": first["ip_address"], "port": first["port"], "network": first["network"]}]

    @staticmethod
    def _connections(fleet: Fleet, state: dict[str, Any]) -> list[dict[str, Any]]:
        requests = MemorystoreInstance._endpoint_requests(state)
        if not requests:
            return []
        primaries = [n for n in fleet.servers if n.role == "primary"]
        replicas = [n for n in fleet.servers if n.role == "replica"]
        typed: list[tuple[str, Node]] = (
            [("CONNECTION_TYPE_DISCOVERY", primaries[0])]
            if state["mode"] == "CLUSTER"
            else [("CONNECTION_TYPE_PRIMARY", primaries[0])]
            + ([("CONNECTION_TYPE_READER", replicas[0])] if replicas else [])
        )
        project, location, uid = state["project"], state["location"], state["uid"]
        out = []
        for index, (kind, node) in enumerate(typed):
            suffix = "" if index == 0 else f"-{index + 1}"
            out.append(
                {
                    "connection_type": kind,
                    "ip_address": node.host,
                    "port": node.port,
                    "network": requests[0]["network"],
                    "project_id": requests[0]["project_id"],
                    "forwarding_rule": f"https://www.googleapis.com/compute/v1/projects/{project}/regions/"
                    f"{location}/forwardingRules/sca-auto-fr-{uid[:8]}{suffix}",
                    "psc_connection_id": str(int(hashlib.sha256(f"{uid}{index}".encode()).hexdigest(), 16) % 10**18),
                    "service_attachment": f"projects/twin-tenant/regions/{location}/serviceAttachments/"
                    f"gcp-memorystore-auto-{uid[:8]}-psc-sa{suffix}",
                }
            )
        return out

    @staticmethod
    def _server_ca(world: TwinWorld, state: dict[str, Any]) -> list[dict[str, Any]]:
        if not _shape(state).tls or state["server_ca_mode"] == "CUSTOMER_MANAGED_CAS_CA":
            return []
        return [{"ca_certs": [{"certificates": [valkey.world_ca(world).cert.read_text(encoding="ascii")]}]}]


RESOURCES = (MemorystoreInstance(), AclPolicy(), ProjectService(), ConnectionPolicy())
DATA_SOURCES: tuple[Any, ...] = ()
