"""The OVH API emulator's state: projects, Valkey services backed by real fleets, users, networks.

Records are plain JSON-able dicts kept in one file (``state.json``) that is rewritten atomically on every
change, so the emulator's state survives a restart. Each service is backed by a :class:`Fleet`
(Essential: one node; Business: primary + replica + Sentinel), TLS and ``ovh_like`` on: users created
through the API become ACL users on the servers, and advanced parameters reach them through CONFIG SET.
Data in the servers is not part of the state: a fleet that died is restarted empty.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from reproducer import catalog
from reproducer.atomic import atomic_write
from reproducer.sandbox.fleet import Fleet, FleetSpec, hash_password
from reproducer.sandbox.tls import CaFiles, make_ca_files

Record = dict[str, Any]
_PASSWORD_ALPHABET = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def now_iso() -> str:
    """The current time in OVH's timestamp format (ISO 8601 with offset)."""
    return dt.datetime.now(dt.UTC).astimezone().isoformat()


def new_password() -> str:
    """A random password like the ones OVH returns on user creation and credential reset."""
    return "".join(secrets.choice(_PASSWORD_ALPHABET) for _ in range(24))


#: What no API user may run whatever its ACL: the replication stream (``SYNC``/``PSYNC``/``REPLCONF``) and the
#: whole-server ``CLIENT PAUSE`` belong to the operator of a managed service
#: (docs/reference/ovh-api.md#replication-and-client-pause).
RESERVED_RULES = ("-sync", "-psync", "-replconf", "-client|pause", "-client|unpause")


def acl_rules(user: Record) -> str:
    """ACL SETUSER rules for an OVH user record (``~keys &channels +@categories +commands``, then the reserved)."""
    keys = [f"~{k}" for k in user["keys"]]
    channels = [f"&{c}" for c in user["channels"]]
    return " ".join([*keys, *channels, *user["categories"], *user["commands"], *RESERVED_RULES])


class Store:
    """Thread-safe, file-backed state of the emulator (see the module docstring)."""

    def __init__(self, root: Path, *, settle_seconds: float = 0.2) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.settle_seconds = settle_seconds
        self.lock = threading.RLock()
        self._fleets: dict[str, Fleet] = {}
        self.state: Record = self._load()

    # ---- persistence -----------------------------------------------------------------------------

    @property
    def path(self) -> Path:
        """The state file."""
        return self.root / "state.json"

    def _load(self) -> Record:
        if self.path.exists():
            loaded: Record = json.loads(self.path.read_text())
            return loaded
        return {"applications": {}, "credentials": {}, "projects": {}}

    def reset(self) -> None:
        """Forget every application, credential and project (fleets must be stopped already)."""
        with self.lock:
            self.state = {"applications": {}, "credentials": {}, "projects": {}}
            self.save()

    def save(self) -> None:
        """Write the state atomically (temporary file, then rename)."""
        atomic_write(self.path, json.dumps(self.state, indent=1, sort_keys=True))

    # ---- credentials -----------------------------------------------------------------------------

    def add_credentials(self, rules: list[dict[str, str]] | None = None) -> dict[str, str]:
        """Create an application (key + secret) and a validated consumer key granted ``rules``."""
        app_key, app_secret, consumer_key = secrets.token_hex(8), secrets.token_hex(16), secrets.token_hex(16)
        with self.lock:
            self.state["applications"][app_key] = app_secret
            grants = rules or [{"method": m, "path": "/*"} for m in ("GET", "POST", "PUT", "DELETE")]
            self.state["credentials"][consumer_key] = {"application_key": app_key, "rules": grants}
            self.save()
        return {"application_key": app_key, "application_secret": app_secret, "consumer_key": consumer_key}

    # ---- projects, networks ----------------------------------------------------------------------

    def add_project(self, description: str = "sandbox project") -> str:
        """Create an empty Public Cloud project and return its 32-hex id."""
        project_id = uuid.uuid4().hex
        with self.lock:
            self.state["projects"][project_id] = {
                "description": description,
                "vrack": None,
                "networks": [],
                "subnets": {},
                "services": {},
            }
            self.save()
        return project_id

    def project(self, project_id: str) -> Record | None:
        """The project record, or None."""
        found: Record | None = self.state["projects"].get(project_id)
        return found

    def add_private_network(self, project_id: str, *, name: str, vlan_id: int, region: str, vrack: str) -> Record:
        """Attach the project to a vRack and add a private network on it (``pn-<vrack>_<vlan>``)."""
        with self.lock:
            project = self.state["projects"][project_id]
            project["vrack"] = {"id": vrack, "name": vrack, "description": ""}
            network = {
                "id": f"{vrack}_{vlan_id}",
                "name": name,
                "vlanId": vlan_id,
                "type": "private",
                "status": "ACTIVE",
                "regions": [{"region": region, "status": "ACTIVE", "openstackId": str(uuid.uuid4())}],
            }
            project["networks"].append(network)
            project["subnets"][network["id"]] = []
            self.save()
            return network

    def add_subnet(self, project_id: str, network_id: str, *, cidr: str, gateway: str, start: str, end: str) -> Record:
        """Add a subnet to a private network; its id is an OpenStack-style uuid."""
        with self.lock:
            project = self.state["projects"][project_id]
            region = next(n for n in project["networks"] if n["id"] == network_id)["regions"][0]["region"]
            subnet = {
                "id": str(uuid.uuid4()),
                "cidr": cidr,
                "gatewayIp": gateway,
                "dhcpEnabled": False,
                "ipPools": [{"network": cidr, "region": region, "start": start, "end": end, "dhcp": False}],
            }
            project["subnets"][network_id].append(subnet)
            self.save()
            return subnet

    # ---- services --------------------------------------------------------------------------------

    def ca(self) -> CaFiles:
        """The one CA that signs every service's certificates (``<root>/ca.crt``), made on first use.

        One CA for the whole emulator, so a client given it (a migration into a new OVH service, for one)
        verifies every service: the emulator's choice where the OVH API documents none.
        """
        return make_ca_files(CaFiles(self.root / "ca.crt", self.root / "ca.key"), "reproducer sandbox OVH CA")

    def create_service(self, project_id: str, body: Record) -> Record:
        """Create a Valkey service and start the fleet behind it; ``body`` is a validated creation body."""
        service_id = str(uuid.uuid4())
        plan = catalog.PLANS[body["plan"]]
        default_password = new_password()
        fleet = Fleet.start(_fleet_spec(plan, default_password, self.ca()), self.root / "fleets" / service_id)
        record = self._service_record(service_id, body, plan, fleet)
        next(iter(record["users"].values()))["passwordHash"] = hash_password(default_password)
        with self.lock:
            self._fleets[service_id] = fleet
            self.state["projects"][project_id]["services"][service_id] = record
            self.save()
        return record

    def _service_record(self, service_id: str, body: Record, plan: catalog.PlanFacts, fleet: Fleet) -> Record:
        created = now_iso()
        backups = body.get("backups") or {}
        return {
            "id": service_id,
            "createdAt": created,
            "readyAt": time.time() + self.settle_seconds,
            "description": body.get("description", ""),
            "plan": plan.name,
            "flavor": body["flavor"],
            "version": body["version"],
            "region": body["region"],
            "networkId": body.get("networkId"),
            "subnetId": body.get("subnetId"),
            "ipRestrictions": [
                {"ip": r["ip"], "description": r.get("description", "")} for r in body.get("ipRestrictions", [])
            ],
            "maintenanceTime": body.get("maintenanceTime") or "04:00:00",
            "backups": {
                "time": backups.get("time") or "02:00:00",
                "regions": backups.get("regions") or [body["region"]],
            },
            "deletionProtection": bool(body.get("deletionProtection", False)),
            "enablePrometheus": False,
            "nodeIds": [str(uuid.uuid4()) for _ in fleet.servers],
            "users": {str(uuid.uuid4()): self._default_user(created)},
            "advancedConfiguration": {},
            "backupItems": [self._backup_item(body["region"], created)],
            "maintenances": [self._maintenance_item()],
            "fleetRoot": str(fleet.root),
            "nodeSuffix": secrets.token_hex(4),
        }

    @staticmethod
    def _default_user(created: str) -> Record:
        return {
            "username": "default",
            "categories": ["+@all"],
            "commands": [],
            "keys": ["*"],
            "channels": ["*"],
            "createdAt": created,
            "readyAt": 0.0,
            "passwordHash": None,
        }

    @staticmethod
    def _backup_item(region: str, created: str) -> Record:
        return {
            "id": str(uuid.uuid4()),
            "createdAt": created,
            "description": "automatic backup",
            "region": region,
            "regions": [{"name": region}],
            "size": {"unit": "MB", "value": 1},
            "status": "READY",
            "type": "automatic",
        }

    @staticmethod
    def _maintenance_item() -> Record:
        return {
            "id": str(uuid.uuid4()),
            "description": "Valkey minor version update",
            "status": "PENDING",
            "scheduledAt": None,
            "appliedAt": None,
        }

    def find_service(self, project_id: str, service_id: str) -> Record | None:
        """The service record, or None when the project or the service does not exist."""
        project = self.project(project_id)
        found: Record | None = project["services"].get(service_id) if project else None
        return found

    def fleet(self, service_id: str, record: Record) -> Fleet:
        """The fleet behind a service, re-attached or restarted (empty) when the emulator restarted."""
        with self.lock:
            fleet = self._fleets.get(service_id)
            if fleet is None:
                fleet = self._revive_fleet(record)
                self._fleets[service_id] = fleet
            return fleet

    def _revive_fleet(self, record: Record) -> Fleet:
        root = Path(record["fleetRoot"])
        if (root / "fleet.json").exists():
            fleet = Fleet.attach(root)
            if fleet.alive():
                return fleet
            fleet.stop()
        fleet = Fleet.start(_fleet_spec(catalog.PLANS[record["plan"]], new_password(), self.ca()), root)
        self._replay(fleet, record)
        return fleet

    def _replay(self, fleet: Fleet, record: Record) -> None:
        for user in record["users"].values():
            fleet.set_user(user["username"], acl_rules(user), password_hash=user["passwordHash"])
        for name, value in record["advancedConfiguration"].items():
            self.apply_parameter(fleet, name, value)

    @staticmethod
    def apply_parameter(fleet: Fleet, name: str, value: str) -> None:
        """Apply one advanced parameter to the servers when Valkey can take it at runtime."""
        param = catalog.parameter(name)
        mapped = catalog.to_valkey(name, value)
        if param is not None and param.runtime and mapped is not None:
            fleet.set_config(*mapped)

    def set_user_password(self, fleet: Fleet, user: Record) -> str:
        """Give ``user`` a fresh password on the servers and return it (only its hash is kept)."""
        password = new_password()
        user["passwordHash"] = hash_password(password)
        fleet.set_user(user["username"], acl_rules(user), password=password)
        return password

    def delete_service(self, project_id: str, service_id: str) -> None:
        """Remove the service and stop its fleet."""
        with self.lock:
            record = self.state["projects"][project_id]["services"].pop(service_id)
            self.save()
            fleet = self._fleets.pop(service_id, None)
        (fleet or Fleet.attach(Path(record["fleetRoot"]))).stop()

    def stop_fleets(self) -> None:
        """Stop every fleet of every service (the state file stays)."""
        for project in self.state["projects"].values():
            for service_id, record in project["services"].items():
                self._stop_one(service_id, record)

    def _stop_one(self, service_id: str, record: Record) -> None:
        fleet = self._fleets.pop(service_id, None)
        root = Path(record["fleetRoot"])
        if fleet is None and (root / "fleet.json").exists():
            fleet = Fleet.attach(root)
        if fleet is not None:
            fleet.stop()


def _fleet_spec(plan: catalog.PlanFacts, default_password: str, ca: CaFiles) -> FleetSpec:
    """Essential: one node; Business: primary + replica + Sentinel; always TLS (by ``ca``), OVH's disabled commands."""
    return FleetSpec(
        topology="sentinel" if plan.nodes > 1 else "standalone",
        replicas=plan.nodes - 1,
        tls=True,
        tls_ca_cert=str(ca.cert),
        tls_ca_key=str(ca.key),
        ovh_like=True,
        default_user_password=default_password,
    )
