"""The ovh twin: ``ovh_cloud_project_database`` (engine valkey) and its Valkey users, through the OVH API.

Unlike the other twins, this one makes no Valkey itself: it calls an OVH API with the official ``ovh`` client,
as the real provider calls OVH, so pointed at the sandbox's emulator (``OVH_ENDPOINT`` = its URL, and the usual
``OVH_APPLICATION_KEY``/``OVH_APPLICATION_SECRET``/``OVH_CONSUMER_KEY``) an OVH → OVH move creates a real
service, backed by the emulator's real Valkey, in another project or region. The calls and their bodies follow
the provider's (docs/twins.md#ovh); API errors become Terraform errors with their text.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable
from typing import Any

from reproducer.errors import ReproducerError
from reproducer.offline.values import UNKNOWN
from reproducer.twins.base import Change, GenericTwin, TwinError, TwinWorld

DATABASE = "ovh_cloud_project_database"
USER = "ovh_cloud_project_database_valkey_user"
_SOURCE = "docs/twins.md#ovh"
#: Engines the provider accepts (v2.19.0; redis, cassandra and m3db were removed in 2.17.0).
ENGINES = (
    "clickhouse",
    "grafana",
    "kafka",
    "kafkaConnect",
    "kafkaMirrorMaker",
    "mongodb",
    "mysql",
    "opensearch",
    "postgresql",
    "valkey",
)
_WAIT_SECONDS = 120.0
_POLL_SECONDS = 0.2
_SERVICE_FIELDS = (
    *("description", "plan", "flavor", "version", "ip_restrictions", "maintenance_time"),
    *("backup_time", "backup_regions", "deletion_protection"),
)

_CLIENTS: dict[tuple[str, ...], Any] = {}
#: The provider block of this process, as the last change carried it (``read`` gets none: the environment).
_PROVIDER: dict[str, Any] = {}
_CREDENTIALS = ("application_key", "application_secret", "consumer_key")


def configure(provider: dict[str, Any]) -> None:
    """Use the provider block's ``endpoint`` and keys, where it sets them, before the ``OVH_*`` variables."""
    _PROVIDER.clear()
    _PROVIDER.update({k: v for k, v in provider.items() if isinstance(v, str) and v})


def client() -> Any:
    """The ``ovh`` client of this provider process (endpoint and keys: the provider block, else ``OVH_*``)."""
    endpoint = str(_PROVIDER.get("endpoint") or os.environ.get("OVH_ENDPOINT", ""))
    given = {k: str(_PROVIDER[k]) for k in _CREDENTIALS if k in _PROVIDER}
    key = (endpoint, *(given.get(k, "") for k in _CREDENTIALS))
    if key not in _CLIENTS:
        from reproducer.sources.ovh import make_client

        try:
            _CLIENTS[key] = make_client(endpoint or None, credentials=given)
        except ReproducerError as exc:
            raise TwinError(f"OVH provider configuration: {exc.message}", exc.hint) from None
    return _CLIENTS[key]


def _api_error(method: str, path: str, exc: Exception) -> TwinError:
    response = getattr(exc, "response", None)
    klass, message = "", str(exc).split(" \nOVH-Query-ID")[0]
    if response is not None:
        try:
            body = response.json()
            klass, message = str(body.get("class", "")), str(body.get("message", message))
        except ValueError:
            pass
    status = getattr(response, "status_code", "")
    quoted = json.dumps(message)  # Go's %q
    text = f"HTTP Error {status}: {klass}: {quoted}" if klass else f"HTTP Error {status}: {quoted}"
    return TwinError(f"calling {method.title()} {path}:\n\t {text}", f"answered by the OVH API, see {_SOURCE}")


def call(method: str, path: str, body: Any = None, *, missing_ok: bool = False) -> Any:
    """One OVH API call; an API error becomes a :class:`TwinError` with the API's class and message.

    With ``missing_ok``, a 404 answers None (the resource is gone).
    """
    import ovh.exceptions

    try:
        return client().call(method, path, body)
    except ovh.exceptions.ResourceNotFoundError as exc:
        if missing_ok:
            return None
        raise _api_error(method, path, exc) from None
    except (ovh.exceptions.HTTPError, ovh.exceptions.InvalidResponse) as exc:
        raise TwinError(f"calling {method.title()} {path}: {exc}", "is the OVH endpoint reachable?") from None
    except ovh.exceptions.APIError as exc:
        raise _api_error(method, path, exc) from None


def wait_for(what: str, ready: Callable[[], bool]) -> None:
    """Poll like the provider does until ``ready()``; a twin waits at most two minutes."""
    deadline = time.monotonic() + _WAIT_SECONDS
    while not ready():
        if time.monotonic() > deadline:
            raise TwinError(f"timeout while waiting for {what}")
        time.sleep(_POLL_SECONDS)


def _known(value: Any) -> bool:
    return value is not None and value is not UNKNOWN


def _fill(planned: dict[str, Any], found: dict[str, Any]) -> dict[str, Any]:
    """``planned`` with what the API answered wherever the plan left a value unknown."""
    return {k: (found.get(k) if v is UNKNOWN and k in found else v) for k, v in planned.items()}


# ---- ovh_cloud_project_database -----------------------------------------------------------------------------


def service_path(service_name: str, engine: str, cluster_id: str = "") -> str:
    """The API path of the engine's services, or of one service."""
    base = f"/cloud/project/{service_name}/database/{engine}"
    return f"{base}/{cluster_id}" if cluster_id else base


def _creation_body(planned: dict[str, Any]) -> dict[str, Any]:
    """The provider's creation body (Go ``omitempty``; ``disk`` and ``nodesPattern`` are always sent)."""
    nodes = planned["nodes"]
    body: dict[str, Any] = {
        "description": planned.get("description") or None,
        "disk": {"size": planned["disk_size"]} if _known(planned.get("disk_size")) else {},
        "nodesPattern": {"flavor": planned["flavor"], "number": len(nodes), "region": nodes[0]["region"]},
        "plan": planned["plan"],
        "version": planned["version"],
        "networkId": nodes[0].get("network_id") or None,
        "subnetId": nodes[0].get("subnet_id") or None,
        "ipRestrictions": _restrictions(planned) or None,
        "maintenanceTime": planned.get("maintenance_time") if _known(planned.get("maintenance_time")) else None,
        "backups": _backups(planned) or None,
        "deletionProtection": planned.get("deletion_protection") or None,
    }
    return {k: v for k, v in body.items() if v is not None}


def _restrictions(state: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"ip": r.get("ip"), "description": r.get("description") or ""} for r in state.get("ip_restrictions") or []]


def _backups(state: dict[str, Any]) -> dict[str, Any]:
    backups = {"time": state.get("backup_time"), "regions": state.get("backup_regions")}
    return {k: v for k, v in backups.items() if _known(v)}


def _update_body(planned: dict[str, Any]) -> dict[str, Any]:
    body = {
        "description": planned.get("description") or "",
        "plan": planned["plan"],
        "flavor": planned["flavor"],
        "version": planned["version"],
        "ipRestrictions": _restrictions(planned),
        "maintenanceTime": planned.get("maintenance_time"),
        "backups": _backups(planned),
        "deletionProtection": bool(planned.get("deletion_protection")),
    }
    return {k: v for k, v in body.items() if _known(v)}


def _from_api(service: dict[str, Any], advanced: dict[str, Any]) -> dict[str, Any]:
    """The provider's attributes as the API describes the service."""
    statuses = {r["ip"]: r.get("status") for r in service.get("ipRestrictions") or []}
    return {
        "id": service["id"],
        "created_at": service.get("createdAt"),
        "status": service.get("status"),
        "network_type": service.get("networkType"),
        "disk_type": (service.get("disk") or {}).get("type"),
        "disk_size": (service.get("disk") or {}).get("size"),
        "maintenance_time": service.get("maintenanceTime"),
        "backup_time": (service.get("backups") or {}).get("time") or service.get("backupTime"),
        "backup_regions": (service.get("backups") or {}).get("regions"),
        "advanced_configuration": advanced,
        "endpoints": [
            {
                "component": e.get("component"),
                "domain": e.get("domain"),
                "path": e.get("path"),
                "port": e.get("port"),
                "scheme": e.get("scheme"),
                "ssl": e.get("ssl"),
                "ssl_mode": e.get("sslMode"),
                "uri": e.get("uri"),
            }
            for e in service.get("endpoints") or []
        ],
        "statuses": statuses,
    }


def _with_statuses(state: dict[str, Any], statuses: dict[str, Any]) -> dict[str, Any]:
    restrictions = [{**r, "status": statuses.get(r.get("ip"), "READY")} for r in state.get("ip_restrictions") or []]
    return {**state, "ip_restrictions": restrictions}


class Database(GenericTwin):
    """``ovh_cloud_project_database``: POST, wait for READY, advanced configuration; PUT; DELETE."""

    type_name = DATABASE

    def validate(self, config: dict[str, Any]) -> None:
        """The provider's client-side checks: the engine list, identical nodes."""
        engine = config.get("engine")
        if isinstance(engine, str) and engine not in ENGINES:
            allowed = " ".join(f'"{e}"' for e in ENGINES)
            raise TwinError(f"expected engine to be one of [{allowed}], got {engine}", f"see {_SOURCE}", ("engine",))
        nodes = config.get("nodes") or []
        shapes = {(n.get("region"), n.get("network_id"), n.get("subnet_id")) for n in nodes}
        if len(shapes) > 1 and not any(v is UNKNOWN for shape in shapes for v in shape):
            raise TwinError("all nodes must have the same region, network_id and subnet_id", f"see {_SOURCE}")

    def create(self, change: Change) -> dict[str, Any]:
        """POST the service, wait until it is READY, then PUT its advanced configuration."""
        assert change.planned is not None
        configure(change.provider)
        planned = change.planned
        base = service_path(str(planned["service_name"]), str(planned["engine"]))
        created = call("POST", base, _creation_body(planned))
        path = service_path(str(planned["service_name"]), str(planned["engine"]), str(created["id"]))
        self._wait_ready(path)
        advanced = planned.get("advanced_configuration")
        if isinstance(advanced, dict) and advanced:
            call("PUT", f"{path}/advancedConfiguration", dict(advanced))
            self._wait_ready(path)
        return self._state(planned, path)

    def update(self, change: Change) -> dict[str, Any]:
        """PUT what changed (the service, then its advanced configuration), waiting for READY after each."""
        assert change.planned is not None and change.prior is not None
        configure(change.provider)
        planned, prior = change.planned, change.prior
        path = service_path(str(planned["service_name"]), str(planned["engine"]), str(prior["id"]))
        if any(planned.get(k) != prior.get(k) for k in _SERVICE_FIELDS):
            call("PUT", path, _update_body(planned))
            self._wait_ready(path)
        advanced = planned.get("advanced_configuration")
        if isinstance(advanced, dict) and advanced != prior.get("advanced_configuration"):
            call("PUT", f"{path}/advancedConfiguration", dict(advanced))
            self._wait_ready(path)
        return self._state(planned, path)

    def delete(self, change: Change) -> None:
        """DELETE the service and wait until the API no longer knows it."""
        assert change.prior is not None
        configure(change.provider)
        prior = change.prior
        path = service_path(str(prior["service_name"]), str(prior["engine"]), str(prior["id"]))
        call("DELETE", path)
        wait_for(f"{path} to be deleted", lambda: call("GET", path, missing_ok=True) is None)

    def read(self, state: dict[str, Any], world: TwinWorld) -> dict[str, Any] | None:
        """The service as the API reports it, or None when it is gone."""
        path = service_path(str(state["service_name"]), str(state["engine"]), str(state["id"]))
        service = call("GET", path, missing_ok=True)
        if service is None:
            return None
        found = _from_api(service, call("GET", f"{path}/advancedConfiguration") or {})
        statuses = found.pop("statuses")
        drift = {k: found[k] for k in ("status", "endpoints", "maintenance_time", "backup_time", "backup_regions")}
        restrictions = [{"ip": r["ip"], "description": r.get("description", "")} for r in service["ipRestrictions"]]
        fresh = {**state, **drift, "description": service.get("description"), "version": service.get("version")}
        fresh |= {"plan": service.get("plan"), "flavor": service.get("flavor"), "ip_restrictions": restrictions}
        if found["advanced_configuration"]:
            fresh["advanced_configuration"] = found["advanced_configuration"]
        return _with_statuses(fresh, statuses)

    @staticmethod
    def _wait_ready(path: str) -> None:
        wait_for(f"{path} to be READY", lambda: call("GET", path).get("status") == "READY")

    @staticmethod
    def _state(planned: dict[str, Any], path: str) -> dict[str, Any]:
        found = _from_api(call("GET", path), call("GET", f"{path}/advancedConfiguration") or {})
        statuses = found.pop("statuses")
        return _with_statuses(_fill(planned, found), statuses)


# ---- ovh_cloud_project_database_valkey_user -----------------------------------------------------------------


def _user_body(state: dict[str, Any]) -> dict[str, Any]:
    """ACL lists as the provider sends them: Go ``omitempty`` drops empty lists (``channels = []`` included)."""
    parts = {k: state.get(k) for k in ("categories", "commands", "keys", "channels")}
    return {k: sorted(v) for k, v in parts.items() if _known(v) and v}


def _find_user(base: str, name: str) -> dict[str, Any] | None:
    for user_id in call("GET", f"{base}/user"):
        user = call("GET", f"{base}/user/{user_id}")
        if user.get("username") == name:
            return dict(user)
    return None


class ValkeyUser(GenericTwin):
    """``ovh_cloud_project_database_valkey_user``; ``default`` maps onto the existing user (password reset only)."""

    type_name = USER

    def validate(self, config: dict[str, Any]) -> None:
        """No client-side rule (the API checks names)."""

    def create(self, change: Change) -> dict[str, Any]:
        """POST the user (or reset the ``default`` user's password) and wait until it is READY."""
        assert change.planned is not None
        configure(change.provider)
        planned = change.planned
        base = service_path(str(planned["service_name"]), "valkey", str(planned["cluster_id"]))
        if planned["name"] == "default":
            existing = _find_user(base, "default")
            if existing is None:
                raise TwinError(f"calling Get {base}/user: no user named default")
            user = call("POST", f"{base}/user/{existing['id']}/credentials/reset")
        else:
            user = call("POST", f"{base}/user", {"name": planned["name"], **_user_body(planned)})
        self._wait_ready(base, str(user["id"]))
        return self._state(planned, user, str(user["password"]))

    def update(self, change: Change) -> dict[str, Any]:
        """PUT the ACLs (skipped for ``default``, as the provider does) and reset the password when asked."""
        assert change.planned is not None and change.prior is not None
        configure(change.provider)
        planned, prior = change.planned, change.prior
        base = service_path(str(planned["service_name"]), "valkey", str(planned["cluster_id"]))
        path = f"{base}/user/{prior['id']}"
        if planned["name"] != "default":
            call("PUT", path, _user_body(planned))
        password = str(prior.get("password") or "")
        if planned.get("password_reset") != prior.get("password_reset"):
            password = str(call("POST", f"{path}/credentials/reset")["password"])
        self._wait_ready(base, str(prior["id"]))
        return self._state(planned, call("GET", path), password)

    def delete(self, change: Change) -> None:
        """DELETE the user; the ``default`` user cannot be deleted, so it is only forgotten."""
        assert change.prior is not None
        configure(change.provider)
        prior = change.prior
        if prior["name"] == "default":
            return
        base = service_path(str(prior["service_name"]), "valkey", str(prior["cluster_id"]))
        if call("GET", base, missing_ok=True) is not None:
            call("DELETE", f"{base}/user/{prior['id']}")

    def read(self, state: dict[str, Any], world: TwinWorld) -> dict[str, Any] | None:
        """The user as the API reports it; ``channels = []`` stays as configured, as the provider's diff ignores it."""
        base = service_path(str(state["service_name"]), "valkey", str(state["cluster_id"]))
        user = call("GET", f"{base}/user/{state['id']}", missing_ok=True)
        if user is None:
            return None
        fresh = {**state, "status": user.get("status")}
        for key in ("categories", "commands", "keys", "channels"):
            if user.get(key) or state.get(key):  # null and [] are the same to the provider
                fresh[key] = user.get(key) or []
        if state.get("channels") == [] and user.get("channels") == ["*"]:
            fresh["channels"] = []
        return fresh

    @staticmethod
    def _wait_ready(base: str, user_id: str) -> None:
        path = f"{base}/user/{user_id}"
        wait_for(f"{path} to be READY", lambda: call("GET", path).get("status") == "READY")

    @staticmethod
    def _state(planned: dict[str, Any], user: dict[str, Any], password: str) -> dict[str, Any]:
        found = {
            "id": user["id"],
            "created_at": user.get("createdAt"),
            "status": "READY",
            "password": password,
            "channels": user.get("channels"),
        }
        return _fill(planned, found)


# ---- ovh_cloud_project_network_private ----------------------------------------------------------------------

NETWORK = "ovh_cloud_project_network_private"
#: Database region codes that are not Public Cloud (OpenStack) region ids: those carry a number (``GRA9``, ``BHS5``).
DATABASE_ONLY_REGIONS = frozenset({"BHS", "DE", "GRA", "RBX", "SBG", "SGP", "UK", "WAW"})
#: The regions a network spans when ``regions`` is not given ("all" in the API) [I: a representative list].
DEFAULT_NETWORK_REGIONS = ("BHS5", "DE1", "GRA9", "GRA11", "SBG5", "UK1", "WAW1")


def _network_record(state: dict[str, Any]) -> str:
    return f"{state['service_name']}~{state['id']}"


class NetworkPrivate(GenericTwin):
    """``ovh_cloud_project_network_private``, recorded in the world (the emulator has no route to create one).

    It gives each region an OpenStack id, so a database's ``network_id`` can name one, and refuses the database
    region codes (``GRA``) that private networks do not take.
    """

    type_name = NETWORK

    def validate(self, config: dict[str, Any]) -> None:
        """No client-side rule."""

    def create(self, change: Change) -> dict[str, Any]:
        """Give the network an id and each region an OpenStack id."""
        assert change.planned is not None
        planned = change.planned
        regions = planned["regions"] if _known(planned.get("regions")) else list(DEFAULT_NETWORK_REGIONS)
        path = f"/cloud/project/{planned['service_name']}/network/private"
        for region in regions:
            if region in DATABASE_ONLY_REGIONS:
                raise TwinError(
                    f'calling Post {path}:\n\t HTTP Error 400: Client::BadRequest: "Invalid region {region}: use a '
                    'Public Cloud region such as GRA9 or BHS5"',
                    f"twin rule, see {_SOURCE}",
                )
        vlan = int(planned.get("vlan_id") or 0)
        ids = {region: str(uuid.uuid5(uuid.NAMESPACE_URL, f"{path}/{vlan}/{region}")) for region in regions}
        state = {
            **planned,
            "id": f"pn-{uuid.uuid5(uuid.NAMESPACE_URL, path).hex[:6]}_{vlan}",
            "regions": sorted(regions),
            "regions_openstack_ids": ids,
            "regions_attributes": [{"region": r, "status": "ACTIVE", "openstackid": i} for r, i in sorted(ids.items())],
            "regions_status": [{"region": r, "status": "ACTIVE"} for r in sorted(ids)],
            "status": "ACTIVE",
            "type": "private",
        }
        change.world.save(NETWORK, _network_record(state), {"id": state["id"], "regions": ids})
        return state

    def update(self, change: Change) -> dict[str, Any]:
        """Only the name changes in place."""
        assert change.planned is not None
        return change.planned

    def delete(self, change: Change) -> None:
        """Forget the network."""
        assert change.prior is not None
        change.world.forget(NETWORK, _network_record(change.prior))

    def read(self, state: dict[str, Any], world: TwinWorld) -> dict[str, Any] | None:
        """Gone when no longer recorded."""
        return state if world.load(NETWORK, _network_record(state)) is not None else None


RESOURCES = (Database(), ValkeyUser(), NetworkPrivate())
DATA_SOURCES: tuple[Any, ...] = ()
