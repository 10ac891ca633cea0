"""An HTTP server that answers the OVHcloud API v1 for Managed Valkey as OVH does.

Paths, JSON shapes, id lists on collections, ``200 null`` for void answers, ``X-Ovh-Queryid`` headers,
``X-Ovh-*`` signature checks and error bodies follow ``docs/reference/ovh-api.md`` (conventions, routes, service
object, users, signature, error bodies, emulator surface). The official ``ovh`` client talks to it over plain
HTTP exactly as it talks to OVH. Behind each service runs a real Valkey fleet (see
:mod:`reproducer.sandbox.ovh_store`).

Faults can be injected on demand (a 429 with Retry-After, a 500, latency) through :meth:`OvhApiServer.inject`
or ``POST /_sandbox/faults``; that admin route answers loopback callers only and needs no signature.
"""

from __future__ import annotations

import fnmatch
import hashlib
import ipaddress
import itertools
import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

from reproducer import catalog
from reproducer.sandbox.fleet import Fleet
from reproducer.sandbox.ovh_store import Record, Store, acl_rules, now_iso

_TIMESTAMP_WINDOW = 300
_FORBIDDEN_USERNAME_CHARS = " :@/\\'\""
_query_counter = itertools.count(1)


def signature(secret: str, consumer_key: str, method: str, url: str, body: str, timestamp: str) -> str:
    """The ``X-Ovh-Signature`` of a request: ``$1$`` + SHA-1 hex of the ``+``-joined parts.

    See ``docs/reference/ovh-api.md#signature``.
    """
    raw = "+".join([secret, consumer_key, method.upper(), url, body, timestamp])
    return "$1$" + hashlib.sha1(raw.encode("utf-8")).hexdigest()


class ApiError(Exception):
    """An error answer: HTTP status and OVH's JSON body."""

    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        super().__init__(body.get("message", ""))
        self.status, self.body, self.headers = status, body, headers or {}


def _auth_error(status: HTTPStatus, code: str, message: str) -> ApiError:
    return ApiError(status, {"errorCode": code, "httpCode": f"{status.value} {status.phrase}", "message": message})


def _client_error(status: int, klass: str, message: str) -> ApiError:
    return ApiError(status, {"class": klass, "message": message})


def _not_found(kind: str, ident: str) -> ApiError:
    return _client_error(404, f"Client::NotFound::{kind}NotFound", f"{kind} {ident} does not exist")


@dataclass
class Fault:
    """An injected fault: the next ``count`` requests whose path matches ``path`` get it."""

    status: int | None = None
    count: int = 1
    retry_after: int | None = None
    delay: float = 0.0
    path: str = "*"


class Request:
    """One parsed request handed to a route handler."""

    def __init__(self, method: str, path: str, query: dict[str, list[str]], body: Any, params: dict[str, str]):
        self.method, self.path, self.query, self.body, self.params = method, path, query, body, params

    def body_dict(self) -> dict[str, Any]:
        """The JSON body as a mapping, or a 400 when it is not one."""
        if not isinstance(self.body, dict):
            raise _client_error(400, "Client::BadRequest", "Request body must be a JSON object")
        return self.body


Handler = Callable[["OvhApi", Request], Any]


class OvhApi:
    """The routes and their handlers, independent of the HTTP plumbing."""

    routes: ClassVar[list[tuple[str, re.Pattern[str], Handler]]] = []

    def __init__(self, store: Store) -> None:
        self.store = store

    @classmethod
    def route(cls, method: str, pattern: str) -> Callable[[Handler], Handler]:
        """Register a handler for ``method`` and a path ``pattern`` with ``{name}`` placeholders."""
        regex = re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern) + "$")

        def register(handler: Handler) -> Handler:
            cls.routes.append((method, regex, handler))
            return handler

        return register

    def dispatch(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> Any:
        """Find the route for ``method path`` and run it; unknown paths get OVH's 404."""
        allowed = False
        for route_method, regex, handler in self.routes:
            match = regex.match(path)
            if match:
                allowed = True
                if route_method == method:
                    return handler(self, Request(method, path, query, body, match.groupdict()))
        if allowed:
            raise _client_error(405, "Client::MethodNotAllowed", f"Method {method} not allowed on {path}")
        raise _client_error(404, "Client::NotFound", "Got an invalid (or empty) URL")

    # ---- lookups ---------------------------------------------------------------------------------

    def project(self, request: Request) -> Record:
        """The project named in the path, or OVH's 404."""
        project = self.store.project(request.params["sn"])
        if project is None:
            raise _client_error(404, "Client::NotFound", "This service does not exist")
        return project

    def service(self, request: Request) -> Record:
        """The Valkey service named in the path, or ``ServiceNotFound``."""
        self.project(request)
        record = self.store.find_service(request.params["sn"], request.params["cid"])
        if record is None:
            raise _not_found("Service", request.params["cid"])
        return record

    def fleet(self, request: Request, record: Record) -> Fleet:
        """The fleet behind the service."""
        return self.store.fleet(request.params["cid"], record)

    def user(self, record: Record, user_id: str) -> Record:
        """A user of the service, or ``UserNotFound``."""
        user: Record | None = record["users"].get(user_id)
        if user is None:
            raise _not_found("User", user_id)
        return user

    def require_ready(self, record: Record) -> None:
        """409 ``ServiceNotReady`` while an earlier change is still being applied."""
        if status(record) != "READY":
            raise _client_error(409, "Client::Conflict::ServiceNotReady", f"Service {record['id']} is not ready")

    def settle(self, record: Record, pending: str = "UPDATING") -> None:
        """Mark the service busy (``pending``) for the emulator's settle time, then READY, and persist."""
        record["readyAt"] = time.time() + self.store.settle_seconds
        record["pendingStatus"] = pending
        self.store.save()


def status(record: Record) -> str:
    """The status OVH would report for a record: its pending status until it settles, then READY."""
    return str(record.get("pendingStatus", "CREATING")) if time.time() < record["readyAt"] else "READY"


# ---- JSON shapes (docs/reference/ovh-api.md#service-object) ------------------------------------------


def node_names(record: Record) -> list[str]:
    """OVH-style host names of the service's nodes."""
    stem = f"valkey-{record['id'][:8]}-o{record['nodeSuffix']}"
    return [f"{stem}-{i}.database.cloud.ovh.net" for i in range(1, len(record["nodeIds"]) + 1)]


def node_json(record: Record, fleet: Fleet, index: int) -> Record:
    """A ``service.Node``; its port is the real port of the backing server."""
    return {
        "id": record["nodeIds"][index],
        "createdAt": record["createdAt"],
        "flavor": record["flavor"],
        "name": node_names(record)[index],
        "port": fleet.servers[index].port,
        "region": record["region"],
        "role": None,
        "status": "READY",
    }


def endpoint_json(fleet: Fleet) -> Record:
    """The ``service.Endpoint`` of the data plane: the current primary, TLS, with URI placeholders."""
    port = fleet.current_primary().port
    return {
        "component": "valkey",
        "domain": "127.0.0.1",
        "path": None,
        "port": port,
        "scheme": "rediss",
        "ssl": True,
        "sslMode": "required",
        "uri": f"rediss://<username>:<password>@127.0.0.1:{port}",
    }


def service_json(record: Record, fleet: Fleet) -> Record:
    """A ``cloud.project.database.Service`` (docs/reference/ovh-api.md#service-object)."""
    state = status(record)
    private = record["networkId"] is not None
    return {
        "id": record["id"],
        "createdAt": record["createdAt"],
        "description": record["description"],
        "engine": "valkey",
        "category": "operational",
        "version": record["version"],
        "plan": record["plan"],
        "flavor": record["flavor"],
        "nodeNumber": len(record["nodeIds"]),
        "status": state,
        "networkType": "private" if private else "public",
        "networkId": record["networkId"],
        "subnetId": record["subnetId"],
        "ipRestrictions": [{**r, "status": state} for r in record["ipRestrictions"]],
        "maintenanceTime": record["maintenanceTime"],
        "backupTime": record["backups"]["time"],
        "backups": {
            **record["backups"],
            "retentionDays": catalog.PLANS[record["plan"]].backup_retention_days,
            "pitr": None,
        },
        "disk": {"size": 0, "type": "high-speed"},
        "storage": None,
        "deletionProtection": record["deletionProtection"],
        "enablePrometheus": record["enablePrometheus"],
        "endpoints": [endpoint_json(fleet)],
        "nodes": [node_json(record, fleet, i) for i in range(len(record["nodeIds"]))],
        "capabilities": _service_capabilities(),
        "region": record["region"],
    }


def _service_capabilities() -> Record:
    crud = {"create": "enabled", "read": "enabled", "update": "enabled", "delete": "enabled"}
    read = {"create": None, "read": "enabled", "update": None, "delete": None}
    return {
        "users": crud,
        "userAcls": crud,
        "userCredentialsReset": {**read, "create": "enabled"},
        "advancedConfiguration": {**read, "update": "enabled"},
        "ipRestrictions": crud,
        "backups": read,
        "maintenances": read,
        "maintenanceTime": {**read, "update": "enabled"},
        "nodes": read,
        "service": crud,
        "deletionProtection": {**read, "update": "enabled"},
    }


def user_json(user_id: str, user: Record) -> Record:
    """A ``redis.User`` (Valkey reuses the Redis user models)."""
    return {
        "id": user_id,
        "username": user["username"],
        "categories": user["categories"],
        "commands": user["commands"],
        "keys": user["keys"],
        "channels": user["channels"],
        "status": user.get("pendingStatus", "CREATING") if time.time() < user["readyAt"] else "READY",
        "createdAt": user["createdAt"],
    }


# ---- routes --------------------------------------------------------------------------------------

route = OvhApi.route
_SVC = "/cloud/project/{sn}/database/valkey/{cid}"


@route("GET", "/cloud/project")
def _list_projects(api: OvhApi, request: Request) -> Any:
    return sorted(api.store.state["projects"])


@route("GET", "/cloud/project/{sn}")
def _get_project(api: OvhApi, request: Request) -> Any:
    project = api.project(request)
    sn = request.params["sn"]
    return {
        "project_id": sn,
        "projectName": project["description"],
        "description": project["description"],
        "status": "ok",
        "planCode": "project.2018",
        "unleash": False,
    }


@route("GET", "/cloud/project/{sn}/database/valkey")
def _list_services(api: OvhApi, request: Request) -> Any:
    return list(api.project(request)["services"])


@route("GET", "/cloud/project/{sn}/database/service")
def _list_all_services(api: OvhApi, request: Request) -> Any:
    category = request.query.get("category", ["operational"])[0]
    return list(api.project(request)["services"]) if category == "operational" else []


@route("GET", "/cloud/project/{sn}/database/service/{cid}")
@route("GET", _SVC)
def _get_service(api: OvhApi, request: Request) -> Any:
    record = api.service(request)
    return service_json(record, api.fleet(request, record))


@route("POST", "/cloud/project/{sn}/database/valkey")
def _create_service(api: OvhApi, request: Request) -> Any:
    api.project(request)
    body = _validated_creation(request.body_dict())
    record = api.store.create_service(request.params["sn"], body)
    record["pendingStatus"] = "CREATING"
    return service_json(record, api.store.fleet(record["id"], record))


def _validated_creation(body: Record) -> Record:
    pattern, nodes_list = body.get("nodesPattern"), body.get("nodesList")
    if pattern and nodes_list:
        raise _client_error(400, "Client::BadRequest::OnlyNodeListOrPattern", "Use nodesPattern or nodesList, not both")
    nodes = [pattern] * int(pattern.get("number", 1)) if pattern else (nodes_list or [])
    if not nodes:
        raise _client_error(400, "Client::BadRequest::AtLeastOneNode", "At least one node is required")
    _check_choice(body.get("plan"), catalog.PLANS, "PlanNotFound", "Plan")
    _check_choice(body.get("version"), catalog.VERSIONS, "VersionNotFound", "Version")
    _check_choice(nodes[0].get("flavor"), catalog.FLAVOR_MEMORY_GB, "FlavorNameNotFound", "Flavor")
    _check_choice(nodes[0].get("region"), catalog.REGIONS, "RegionNotFound", "Region")
    expected = catalog.PLANS[body["plan"]].nodes
    if len(nodes) != expected:
        kind = "NotEnoughNodes" if len(nodes) < expected else "TooManyNodes"
        raise _client_error(400, f"Client::BadRequest::{kind}", f"Plan {body['plan']} has {expected} node(s)")
    _check_ip_restrictions(body.get("ipRestrictions", []))
    return {**body, "flavor": nodes[0]["flavor"], "region": nodes[0]["region"]}


def _check_choice(value: object, choices: Any, kind: str, label: str) -> None:
    if value not in choices:
        raise _client_error(404, f"Client::NotFound::{kind}", f"{label} {value} does not exist")


def _check_ip_restrictions(entries: object) -> None:
    if not isinstance(entries, list):
        raise _client_error(400, "Client::BadRequest", "ipRestrictions must be a list")
    for entry in entries:
        try:
            ipaddress.ip_network(str(entry.get("ip") if isinstance(entry, dict) else entry), strict=False)
        except ValueError:
            raise _client_error(
                400, "Client::BadRequest::IpRestrictionInvalidFormat", f"Invalid IP block {entry!r}"
            ) from None


_UPDATABLE = (
    "description",
    "version",
    "flavor",
    "plan",
    "ipRestrictions",
    "maintenanceTime",
    "backups",
    "deletionProtection",
    "enablePrometheus",
)


@route("PUT", _SVC)
def _update_service(api: OvhApi, request: Request) -> Any:
    record = api.service(request)
    body = request.body_dict()
    api.require_ready(record)
    changes = {k: _normalise_update(k, body[k], record) for k in _UPDATABLE if k in body}
    changes = {k: v for k, v in changes.items() if v != record[k]}
    if "backupTime" in body and body["backupTime"] != record["backups"]["time"]:
        changes["backups"] = {**(changes.get("backups") or record["backups"]), "time": body["backupTime"]}
    if not changes:
        raise _client_error(400, "Client::BadRequest::NoUpdate", "No update to do")
    with api.store.lock:
        record.update(changes)
        api.settle(record)
    return service_json(record, api.fleet(request, record))


def _normalise_update(key: str, value: Any, record: Record) -> Any:
    if key == "ipRestrictions":
        _check_ip_restrictions(value)
        return [{"ip": e["ip"], "description": e.get("description", "")} for e in value]
    if key == "backups":
        return {
            "time": value.get("time", record["backups"]["time"]),
            "regions": value.get("regions", record["backups"]["regions"]),
        }
    if key == "version":
        _check_choice(value, catalog.VERSIONS, "VersionNotFound", "Version")
    if key == "flavor":
        _check_choice(value, catalog.FLAVOR_MEMORY_GB, "FlavorNameNotFound", "Flavor")
    if key == "plan" and value != record["plan"]:
        raise _client_error(404, "Client::NotFound::PlanInvalidUpgrade", f"Cannot change plan to {value}")
    return value


@route("DELETE", _SVC)
def _delete_service(api: OvhApi, request: Request) -> Any:
    record = api.service(request)
    api.require_ready(record)
    if record["deletionProtection"]:
        raise _client_error(409, "Client::Conflict::ServiceLocked", "Service is protected against deletion")
    api.store.delete_service(request.params["sn"], request.params["cid"])
    return None


@route("GET", _SVC + "/node")
def _list_nodes(api: OvhApi, request: Request) -> Any:
    return list(api.service(request)["nodeIds"])


@route("GET", _SVC + "/node/{nid}")
def _get_node(api: OvhApi, request: Request) -> Any:
    record = api.service(request)
    if request.params["nid"] not in record["nodeIds"]:
        raise _not_found("Node", request.params["nid"])
    return node_json(record, api.fleet(request, record), record["nodeIds"].index(request.params["nid"]))


@route("GET", _SVC + "/user")
def _list_users(api: OvhApi, request: Request) -> Any:
    return list(api.service(request)["users"])


@route("GET", _SVC + "/user/{uid}")
def _get_user(api: OvhApi, request: Request) -> Any:
    record = api.service(request)
    return user_json(request.params["uid"], api.user(record, request.params["uid"]))


@route("POST", _SVC + "/user")
def _create_user(api: OvhApi, request: Request) -> Any:
    record = api.service(request)
    body = request.body_dict()
    name = str(body.get("name", ""))
    if not name or any(c in name for c in _FORBIDDEN_USERNAME_CHARS):
        raise _client_error(
            400,
            "Client::BadRequest::UserInvalidNameFormat",
            f"Username cannot contain any of '{_FORBIDDEN_USERNAME_CHARS}' and must not be empty",
        )
    if any(u["username"] == name for u in record["users"].values()):
        raise _client_error(409, "Client::Conflict::UserAlreadyExists", f"User {name} already exists")
    user = {
        **_acl_parts(body),
        "username": name,
        "createdAt": now_iso(),
        "readyAt": time.time() + api.store.settle_seconds,
        "passwordHash": None,
    }
    user_id = str(uuid.uuid4())
    with api.store.lock:
        password = api.store.set_user_password(api.fleet(request, record), user)
        record["users"][user_id] = user
        api.store.save()
    return {**user_json(user_id, user), "password": password}


def _acl_parts(body: Record, current: Record | None = None) -> Record:
    defaults = current or {"categories": [], "commands": [], "keys": [], "channels": ["*"]}
    parts = {k: body.get(k, defaults[k]) for k in ("categories", "commands", "keys", "channels")}
    if not all(isinstance(v, list) and all(isinstance(i, str) for i in v) for v in parts.values()):
        raise _client_error(400, "Client::BadRequest", "categories, commands, keys and channels are lists of strings")
    return parts


@route("PUT", _SVC + "/user/{uid}")
def _update_user(api: OvhApi, request: Request) -> Any:
    record = api.service(request)
    user = api.user(record, request.params["uid"])
    with api.store.lock:
        user.update(_acl_parts(request.body_dict(), user))
        api.fleet(request, record).set_user(user["username"], acl_rules(user), password_hash=user["passwordHash"])
        user["readyAt"], user["pendingStatus"] = time.time() + api.store.settle_seconds, "UPDATING"
        api.store.save()
    return user_json(request.params["uid"], user)


@route("DELETE", _SVC + "/user/{uid}")
def _delete_user(api: OvhApi, request: Request) -> Any:
    record = api.service(request)
    user = api.user(record, request.params["uid"])
    if user["username"] == "default":
        raise _client_error(400, "Client::BadRequest", "The default user cannot be deleted")
    with api.store.lock:
        api.fleet(request, record).delete_user(user["username"])
        del record["users"][request.params["uid"]]
        api.store.save()
    return None


@route("POST", _SVC + "/user/{uid}/credentials/reset")
def _reset_credentials(api: OvhApi, request: Request) -> Any:
    record = api.service(request)
    user = api.user(record, request.params["uid"])
    with api.store.lock:
        password = api.store.set_user_password(api.fleet(request, record), user)
        api.store.save()
    return {**user_json(request.params["uid"], user), "password": password}


@route("GET", _SVC + "/advancedConfiguration")
def _get_advanced(api: OvhApi, request: Request) -> Any:
    return dict(api.service(request)["advancedConfiguration"])


@route("PUT", _SVC + "/advancedConfiguration")
def _put_advanced(api: OvhApi, request: Request) -> Any:
    record = api.service(request)
    body = request.body_dict()
    for name, value in body.items():
        _check_parameter(name, value)
    fleet = api.fleet(request, record)
    with api.store.lock:
        for name, value in body.items():
            api.store.apply_parameter(fleet, name, str(value))
            record["advancedConfiguration"][name] = str(value)
        api.store.save()
    return dict(record["advancedConfiguration"])


def _check_parameter(name: str, value: object) -> None:
    param = catalog.parameter(name)
    if param is None or not isinstance(value, str):
        raise _client_error(400, "Client::BadRequest", f"Invalid advanced configuration: {name}={value!r}")
    if param.values is not None and value not in param.values:
        raise _client_error(400, "Client::BadRequest", f"{name} must be one of {', '.join(param.values)}")
    if param.type == "long" and not _in_range(value, param.minimum, param.maximum):
        raise _client_error(
            400, "Client::BadRequest", f"{name} must be an integer in [{param.minimum}, {param.maximum}]"
        )
    if param.type == "boolean" and value not in ("true", "false"):
        raise _client_error(400, "Client::BadRequest", f"{name} must be true or false")


def _in_range(value: str, low: int | None, high: int | None) -> bool:
    try:
        number = int(value)
    except ValueError:
        return False
    return (low is None or number >= low) and (high is None or number <= high)


@route("GET", _SVC + "/capabilities/advancedConfiguration")
def _capabilities_advanced(api: OvhApi, request: Request) -> Any:
    api.service(request)
    return [
        {
            "name": p.name,
            "description": p.description,
            "type": p.type,
            "minimum": p.minimum,
            "maximum": p.maximum,
            "values": list(p.values) if p.values else None,
        }
        for p in catalog.ADVANCED_PARAMETERS
    ]


@route("GET", _SVC + "/capabilities/categories")
def _capabilities_categories(api: OvhApi, request: Request) -> Any:
    api.service(request)
    return ["@all", *(f"@{c}" for c in catalog.ACL_CATEGORIES)]


@route("GET", _SVC + "/capabilities/commands")
def _capabilities_commands(api: OvhApi, request: Request) -> Any:
    record = api.service(request)
    fleet = api.fleet(request, record)
    names = fleet.admin(fleet.primary, "COMMAND", "LIST")
    disabled = {c.lower() for c in catalog.DISABLED_COMMANDS}
    return sorted(n for n in (str(x).split("-")[0].lower() for x in names) if n not in disabled)


@route("GET", _SVC + "/capabilities/backupRegions")
def _capabilities_backup_regions(api: OvhApi, request: Request) -> Any:
    api.service(request)
    return list(catalog.REGIONS)


@route("GET", _SVC + "/backup")
def _list_backups(api: OvhApi, request: Request) -> Any:
    return [b["id"] for b in api.service(request)["backupItems"]]


@route("GET", _SVC + "/backup/{bid}")
def _get_backup(api: OvhApi, request: Request) -> Any:
    return _item(api.service(request)["backupItems"], request.params["bid"], "Backup")


@route("GET", _SVC + "/maintenance")
def _list_maintenances(api: OvhApi, request: Request) -> Any:
    return [m["id"] for m in api.service(request)["maintenances"]]


@route("GET", _SVC + "/maintenance/{mid}")
def _get_maintenance(api: OvhApi, request: Request) -> Any:
    return _item(api.service(request)["maintenances"], request.params["mid"], "Maintenance")


@route("POST", _SVC + "/maintenance/{mid}/apply")
def _apply_maintenance(api: OvhApi, request: Request) -> Any:
    record = api.service(request)
    item = _item(record["maintenances"], request.params["mid"], "Maintenance")
    with api.store.lock:
        item.update(status="APPLIED", appliedAt=now_iso())
        api.store.save()
    return item


def _item(items: list[Record], ident: str, kind: str) -> Record:
    found = next((i for i in items if i["id"] == ident), None)
    if found is None:
        raise _not_found(kind, ident)
    return found


@route("GET", "/cloud/project/{sn}/database/capabilities")
def _database_capabilities(api: OvhApi, request: Request) -> Any:
    api.project(request)
    lifecycle = {"startDate": "2024-10-01", "status": "STABLE", "endOfSale": None, "endOfLife": None}
    return {
        "engines": [
            {
                "name": "valkey",
                "description": "In-memory key-value store",
                "category": "operational",
                "defaultVersion": "8.0",
                "versions": list(catalog.VERSIONS),
                "sslModes": ["required"],
                "storage": "n/a",
            }
        ],
        "flavors": [_flavor_json(name, i, lifecycle) for i, name in enumerate(catalog.FLAVOR_MEMORY_GB)],
        "plans": [
            {
                "name": p.name,
                "description": "",
                "backupRetention": f"P{p.backup_retention_days}D",
                "order": i,
                "tags": [],
                "lifecycle": lifecycle,
            }
            for i, p in enumerate(catalog.PLANS.values())
        ],
        "options": [],
        "regions": list(catalog.REGIONS),
        "disks": [],
    }


def _flavor_json(name: str, order: int, lifecycle: Record) -> Record:
    memory, cores = catalog.FLAVOR_MEMORY_GB[name], catalog.FLAVOR_CORES[name]
    return {
        "name": name,
        "core": cores,
        "memory": memory,
        "storage": 0,
        "order": order,
        "tags": [],
        "specifications": {
            "core": cores,
            "memory": {"unit": "GB", "value": memory},
            "storage": {"unit": "GB", "value": 0},
        },
        "lifecycle": lifecycle,
    }


@route("GET", "/cloud/project/{sn}/database/availability")
def _database_availability(api: OvhApi, request: Request) -> Any:
    api.project(request)
    rows = itertools.product(catalog.VERSIONS, catalog.PLANS.values(), catalog.REGIONS, catalog.FLAVOR_MEMORY_GB)
    return [_availability_row(v, p, r, f) for v, p, r, f in rows]


def _availability_row(version: str, plan: catalog.PlanFacts, region: str, flavor: str) -> Record:
    return {
        "engine": "valkey",
        "version": version,
        "plan": plan.name,
        "region": region,
        "category": "operational",
        "default": False,
        "planCode": f"databases.valkey-{plan.name}-{flavor}.hour.consumption",
        "specifications": {
            "flavor": flavor,
            "network": "private",
            "nodes": {"minimum": plan.nodes, "maximum": plan.nodes},
            "storage": None,
        },
        "backups": {"available": True, "retentionDays": plan.backup_retention_days},
        "lifecycle": {"startDate": "2024-10-01", "status": "STABLE", "endOfSale": None, "endOfLife": None},
    }


@route("GET", "/cloud/project/{sn}/network/private")
def _list_networks(api: OvhApi, request: Request) -> Any:
    return api.project(request)["networks"]


@route("GET", "/cloud/project/{sn}/network/private/{nid}")
def _get_network(api: OvhApi, request: Request) -> Any:
    return _item(api.project(request)["networks"], request.params["nid"], "Network")


@route("GET", "/cloud/project/{sn}/network/private/{nid}/subnet")
def _list_subnets(api: OvhApi, request: Request) -> Any:
    project = api.project(request)
    _item(project["networks"], request.params["nid"], "Network")
    return project["subnets"].get(request.params["nid"], [])


@route("GET", "/cloud/project/{sn}/vrack")
def _get_vrack(api: OvhApi, request: Request) -> Any:
    vrack = api.project(request)["vrack"]
    if vrack is None:
        raise _client_error(404, "Client::NotFound", "This project is not attached to a vRack")
    return vrack


# ---- HTTP plumbing -------------------------------------------------------------------------------


class OvhApiServer:
    """The emulator as a running HTTP server on loopback (``start`` / ``stop``)."""

    def __init__(self, root: Path, *, host: str = "127.0.0.1", port: int = 0, settle_seconds: float = 0.2) -> None:
        self.store = Store(root, settle_seconds=settle_seconds)
        self.api = OvhApi(self.store)
        self.faults: list[Fault] = []
        self._faults_lock = threading.Lock()
        self._httpd = ThreadingHTTPServer((host, port), _handler_class(self))
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL of the API (``http://127.0.0.1:PORT/1.0``), usable as an ``ovh`` endpoint."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}/1.0"

    def start(self) -> OvhApiServer:
        """Serve in a background thread."""
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="ovh-api-emulator", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until :meth:`stop` is called from another one."""
        self._httpd.serve_forever()

    def stop(self, *, stop_fleets: bool = True) -> None:
        """Stop serving; by default stop every fleet too."""
        self._httpd.shutdown()
        self._httpd.server_close()
        if stop_fleets:
            self.store.stop_fleets()

    def inject(self, fault: Fault) -> None:
        """Queue a fault for the next matching requests."""
        with self._faults_lock:
            self.faults.append(fault)

    def clear_faults(self) -> None:
        """Drop every queued fault."""
        with self._faults_lock:
            self.faults.clear()

    def take_fault(self, path: str) -> Fault | None:
        """The first queued fault matching ``path``, consuming one of its uses."""
        with self._faults_lock:
            for fault in self.faults:
                if fnmatch.fnmatch(path, fault.path):
                    fault.count -= 1
                    if fault.count <= 0:
                        self.faults.remove(fault)
                    return fault
        return None

    def check_auth(self, method: str, url: str, headers: Any, body: str) -> None:
        """Verify the ``X-Ovh-*`` headers, the signature and the consumer key's grants.

        The signature rule is in ``docs/reference/ovh-api.md#signature``.
        """
        app_key = headers.get("X-Ovh-Application")
        secret = self.store.state["applications"].get(app_key or "")
        if secret is None:
            raise _auth_error(HTTPStatus.FORBIDDEN, "INVALID_KEY", "This application key is invalid")
        consumer_key = headers.get("X-Ovh-Consumer") or ""
        credential = self.store.state["credentials"].get(consumer_key)
        if credential is None or credential["application_key"] != app_key:
            raise _auth_error(HTTPStatus.FORBIDDEN, "INVALID_CREDENTIAL", "This credential does not exist")
        timestamp = headers.get("X-Ovh-Timestamp") or ""
        expected = signature(secret, consumer_key, method, url, body, timestamp)
        fresh = timestamp.isdigit() and abs(int(timestamp) - time.time()) <= _TIMESTAMP_WINDOW
        if not fresh or headers.get("X-Ovh-Signature") != expected:
            raise _auth_error(HTTPStatus.BAD_REQUEST, "INVALID_SIGNATURE", "Invalid signature")
        if not _granted(credential["rules"], method, urlsplit(url).path):
            raise _auth_error(HTTPStatus.FORBIDDEN, "NOT_GRANTED_CALL", "This call has not been granted")


def _granted(rules: list[dict[str, str]], method: str, full_path: str) -> bool:
    path = re.sub(r"^/(1\.0|v1)", "", full_path)
    return any(r["method"] == method and fnmatch.fnmatch(path, r["path"]) for r in rules)


def _handler_class(server: OvhApiServer) -> type[BaseHTTPRequestHandler]:
    class _Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "reproducer-ovh-api-sandbox"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def do_PUT(self) -> None:
            self._serve("PUT")

        def do_DELETE(self) -> None:
            self._serve("DELETE")

        def _serve(self, method: str) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode("utf-8")
            try:
                self._reply(200, self._answer(method, raw))
            except ApiError as err:
                self._reply(err.status, err.body, err.headers)
            except Exception as exc:  # a broken fleet must answer like OVH's 500, not drop the connection
                self._reply(500, {"class": "Server::InternalServerError", "message": f"Internal error: {exc}"})

        def _answer(self, method: str, raw: str) -> Any:
            split = urlsplit(self.path)
            if split.path.startswith("/_sandbox/"):
                return self._admin(method, split.path, raw)
            match = re.match(r"^/(1\.0|v1)(/.*)$", split.path)
            if not match:
                raise _client_error(404, "Client::NotFound", "Got an invalid (or empty) URL")
            path = match.group(2)
            self._apply_fault(path)
            if path == "/auth/time" and method == "GET":
                return int(time.time())
            server.check_auth(method, f"http://{self.headers.get('Host')}{self.path}", self.headers, raw)
            return server.api.dispatch(method, path, parse_qs(split.query), _parse_body(raw))

        def _apply_fault(self, path: str) -> None:
            fault = server.take_fault(path)
            if fault is None:
                return
            time.sleep(fault.delay)
            if fault.status is not None:
                headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
                message = HTTPStatus(fault.status).phrase
                raise ApiError(fault.status, {"class": f"Sandbox::Injected{fault.status}", "message": message}, headers)

        def _admin(self, method: str, path: str, raw: str) -> Any:
            if self.client_address[0] not in ("127.0.0.1", "::1") or path != "/_sandbox/faults":
                raise _client_error(404, "Client::NotFound", "Got an invalid (or empty) URL")
            if method == "DELETE":
                server.clear_faults()
            elif method == "POST":
                server.inject(Fault(**(_parse_body(raw) or {})))
            return [vars(f) for f in server.faults]

        def _reply(self, status_code: int, body: Any, headers: dict[str, str] | None = None) -> None:
            payload = json.dumps(body).encode("utf-8")
            self.send_response(status_code)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("X-Ovh-Queryid", f"EU.ext-sandbox.{uuid.uuid4().hex[:8]}.{next(_query_counter)}")
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

    return _Handler


def _parse_body(raw: str) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        raise _client_error(400, "Client::BadRequest", "Invalid JSON in request body") from None
