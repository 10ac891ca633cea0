"""Read OVHcloud Managed Valkey services through the official ``ovh`` client into service specs.

Credentials come from where the ``ovh`` client looks for them (``OVH_*`` environment variables, then
``ovh.conf`` files). ``endpoint`` is an OVH endpoint name (``ovh-eu``) or a URL such as the sandbox's; a
URL is registered with the client under its own name, so an ``ovh.conf`` section named after the URL
holds its keys, as go-ovh (Terraform's client) also expects.

Rate limits (429) and server errors (5xx) are retried a bounded number of times, honouring Retry-After;
every ``ovh`` exception becomes a :class:`~reproducer.errors.SourceError` that says what to do.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from reproducer import catalog
from reproducer.errors import (
    InputError,
    ReproducerError,
    SourceAuthError,
    SourceError,
    SourceNotFoundError,
    SourceUnavailableError,
)
from reproducer.model import (
    AllowedCidr,
    Backups,
    Category,
    ConfigItem,
    Endpoint,
    Engine,
    Feature,
    Network,
    Node,
    Plan,
    PrivateNetwork,
    ServiceSpec,
    SourceRef,
    Subnet,
    Topology,
    User,
    describe_validation_error,
)
from reproducer.ovhconf import check_default_configs, check_ovh_config

check_default_configs()

import ovh  # noqa: E402  (after the check above: importing the client parses the ovh.conf files)
import ovh.config  # noqa: E402
import ovh.exceptions as ovh_exc  # noqa: E402

Progress = Callable[[str], None]
Json = Any
_RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry 429, 5xx and network failures."""

    attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False)

    def delay(self, attempt: int, retry_after: str | None) -> float:
        """Seconds to wait before retry number ``attempt`` (0-based): Retry-After if given, else backoff."""
        if retry_after and retry_after.strip().isdigit():
            return min(float(retry_after), self.max_delay)
        backoff: float = self.base_delay * 2**attempt
        return min(backoff, self.max_delay)


def make_client(
    endpoint: str | None = None, config_file: Path | None = None, credentials: dict[str, str] | None = None
) -> ovh.Client:
    """An ``ovh.Client`` for an endpoint name or URL; credentials given, or as the client itself finds them.

    With no endpoint, the client's order: ``OVH_ENDPOINT``, then ``[default] endpoint`` of ``config_file``, then
    of the usual ovh.conf files.
    """
    if config_file is not None and not Path(config_file).is_file():
        raise InputError(f"OVH config file {config_file} does not exist", hint="pass an existing ovh.conf")
    if config_file is not None:
        check_ovh_config(Path(config_file), required=True)
    name = endpoint or _default_endpoint(config_file)
    if not name:
        raise InputError("no OVH endpoint given", hint="pass --endpoint ovh-eu (or a URL), or set OVH_ENDPOINT")
    if "://" in name:
        ovh.client.ENDPOINTS.setdefault(name, name.rstrip("/"))
    try:
        client = ovh.Client(endpoint=name, config_file=str(config_file) if config_file else None, **(credentials or {}))
    except ovh_exc.InvalidRegion:
        known = ", ".join(sorted(n for n in ovh.client.ENDPOINTS if "://" not in n))
        raise InputError(f"unknown OVH endpoint {name!r}", hint=f"use one of {known}, or an API URL") from None
    except ovh_exc.InvalidConfiguration as exc:
        raise InputError(
            f"OVH credentials are incomplete: {exc}",
            hint="set OVH_APPLICATION_KEY, OVH_APPLICATION_SECRET and OVH_CONSUMER_KEY, "
            f"or the [{name}] section of ovh.conf",
        ) from None
    _check_credentials(name, credentials or {})
    return client


def _default_endpoint(config_file: Path | None) -> str | None:
    """The endpoint ``ovh.Client(config_file=...)`` would choose: its own configuration manager, that file read."""
    configuration = ovh.config.ConfigurationManager()
    if config_file is not None:
        configuration.read(str(config_file))
    endpoint = configuration.get("default", "endpoint")
    return str(endpoint) if endpoint else None


#: What an HTTP header can carry: printable ASCII without spaces (OVH keys are letters and digits).
_HEADER_SAFE = re.compile(r"[\x21-\x7e]*")


def _check_credentials(endpoint: str, given: dict[str, str]) -> None:
    """Refuse keys the HTTP layer cannot send (a traceback otherwise), naming the key, never its value."""
    for key in ("application_key", "application_secret", "consumer_key"):
        value = given.get(key)
        value = ovh.config.config.get(endpoint, key) if value is None else value
        if value is not None and not _HEADER_SAFE.fullmatch(value):
            raise InputError(
                f"the OVH {key} (OVH_{key.upper()}, or {key} in the [{endpoint}] section of ovh.conf) holds a space, "
                "a line break or a non-ASCII character",
                hint="copy the key again from the page that created it; OVH keys are letters and digits",
            )


class OvhApiClient:
    """Calls the OVH API with bounded retries and translates the client's exceptions."""

    def __init__(self, client: ovh.Client, retry: RetryPolicy | None = None, progress: Progress | None = None):
        self._client = client
        self._retry = retry or RetryPolicy()
        self._progress = progress or (lambda _msg: None)

    def get(self, path: str, **params: Any) -> Json:
        """GET ``path`` and return the decoded JSON (see the class docstring for errors)."""
        return self.call("GET", path, **params)

    def put(self, path: str, **body: Any) -> Json:
        """PUT ``body`` on ``path`` (only idempotent updates go through here, so retrying is safe)."""
        return self.call("PUT", path, **body)

    def call(self, method: str, path: str, **data: Any) -> Json:
        """Call the API with bounded retries on 429, 5xx and network failures."""
        for attempt in range(self._retry.attempts):
            try:
                return getattr(self._client, method.lower())(path, **data)
            except (ovh_exc.HTTPError, ovh_exc.InvalidResponse) as exc:
                failure: ovh_exc.APIError = exc
                retry_after = None
            except ovh_exc.APIError as exc:
                if _status(exc) not in _RETRYABLE_STATUSES:
                    raise translate_error(exc, path, method) from None
                failure, retry_after = exc, exc.response.headers.get("Retry-After")
            if attempt + 1 == self._retry.attempts:
                break
            wait = self._retry.delay(attempt, retry_after)
            self._progress(f"{method} {path} failed ({_describe(failure)}); retry {attempt + 1} in {wait:.1f}s")
            self._retry.sleep(wait)
        raise SourceUnavailableError(
            f"{method} {path} kept failing after {self._retry.attempts} attempts: {_describe(failure)}",
            hint="the OVH API is rate-limiting or unavailable; wait a few minutes and run the command again",
            retryable=True,
        )


def _status(exc: ovh_exc.APIError) -> int | None:
    response = getattr(exc, "response", None)
    return int(response.status_code) if response is not None else None


def _describe(exc: ovh_exc.APIError) -> str:
    status = _status(exc)
    message = str(exc.args[0]) if exc.args else type(exc).__name__
    return f"HTTP {status}: {message}" if status else f"{type(exc).__name__}: {message}"


def translate_error(exc: ovh_exc.APIError, path: str, method: str = "GET") -> ReproducerError:
    """A reproducer error for an ``ovh`` exception raised on ``path``, saying what to do next."""
    if isinstance(exc, ovh_exc.InvalidKey) and getattr(exc, "response", None) is None:
        return InputError(
            "OVH credentials are incomplete: no application secret or consumer key was found",
            hint="set OVH_APPLICATION_SECRET and OVH_CONSUMER_KEY, or add them to the endpoint's section of ovh.conf",
        )
    message = str(exc.args[0]) if exc.args else type(exc).__name__
    query = f" (OVH query id {exc.query_id})" if getattr(exc, "query_id", None) else ""
    auth = _auth_error(exc, f"{method} {path}", message, query)
    if auth is not None:
        return auth
    if isinstance(exc, ovh_exc.ResourceNotFoundError):
        return SourceNotFoundError(f"not found at the OVH API: {path}: {message}{query}", hint=_not_found_hint(path))
    return SourceError(f"the OVH API answered an error on {method} {path}: {message}{query}")


def _auth_error(exc: ovh_exc.APIError, path: str, message: str, query: str) -> SourceAuthError | None:
    if isinstance(exc, ovh_exc.BadParametersError) and "signature" in message.lower():
        return SourceAuthError(
            f"the OVH API refused the request signature on {path}{query}",
            hint="the application secret does not match the application key, or this machine's clock is far off: "
            "check OVH_APPLICATION_SECRET (or ovh.conf) and the system time",
        )
    if isinstance(exc, ovh_exc.InvalidCredential | ovh_exc.NotCredential):
        return SourceAuthError(
            f"the OVH API does not know this consumer key: {message}{query}",
            hint="create a consumer key for this application (createToken page) and set OVH_CONSUMER_KEY",
        )
    if isinstance(exc, ovh_exc.InvalidKey):
        return SourceAuthError(
            f"the OVH API refused the application key: {message}{query}",
            hint="check OVH_APPLICATION_KEY / OVH_APPLICATION_SECRET, or the endpoint the keys were made for",
        )
    if isinstance(exc, ovh_exc.NotGrantedCall | ovh_exc.Forbidden):
        return SourceAuthError(
            f"the consumer key is not allowed to call {path}{query}",
            hint="create a consumer key granting GET on /cloud/project/*/database/* and /cloud/project/*/network/* "
            "and /cloud/project/*/vrack",
        )
    return None


def _not_found_hint(path: str) -> str:
    parts = path.split("/")
    if "valkey" in parts and parts.index("valkey") + 1 < len(parts):
        return "check the service id; 'reproducer inspect --project P' lists every Valkey service of a project"
    return "check the project id (32 hex characters): it is the Public Cloud project the service belongs to"


# ---- reading a service ---------------------------------------------------------------------------


class OvhSource:
    """Reads Valkey services of a Public Cloud project into :class:`ServiceSpec` objects."""

    provider = "ovh"

    def __init__(self, reader: OvhApiClient, progress: Progress | None = None) -> None:
        self._api = reader
        self._progress = progress or (lambda _msg: None)
        self._flavor_memory: dict[str, float] | None = None

    def list_services(self, project: str) -> list[str]:
        """The ids of every Valkey service of ``project``."""
        with untrusted_answer(f"the service list of project {project}"):
            return sorted(_ids(self._api.get(f"/cloud/project/{project}/database/valkey")))

    def read_project(self, project: str) -> list[ServiceSpec]:
        """Every Valkey service of ``project``, in id order."""
        return [self.read(project, service_id) for service_id in self.list_services(project)]

    def read(self, project: str, service_id: str) -> ServiceSpec:
        """One service, with its nodes, users, configuration, network and backups."""
        base = f"/cloud/project/{project}/database/valkey/{service_id}"
        self._progress(f"reading service {service_id}")
        with untrusted_answer(f"service {service_id}"):
            return self._read(project, base)

    def _read(self, project: str, base: str) -> ServiceSpec:
        service = self._api.get(base)
        return build_spec(
            project=project,
            service=service,
            nodes=self._nodes(base),
            users=self._users(base),
            advanced=self._api.get(f"{base}/advancedConfiguration"),
            network=self._network(project, service),
            flavor_memory=self._memory_table(project),
        )

    def _nodes(self, base: str) -> list[Json]:
        return [self._api.get(f"{base}/node/{node_id}") for node_id in _ids(self._api.get(f"{base}/node"))]

    def _users(self, base: str) -> list[Json]:
        return [self._api.get(f"{base}/user/{user_id}") for user_id in _ids(self._api.get(f"{base}/user"))]

    def _memory_table(self, project: str) -> dict[str, float]:
        if self._flavor_memory is None:
            capabilities = self._api.get(f"/cloud/project/{project}/database/capabilities")
            self._flavor_memory = {f["name"]: _flavor_memory(f) for f in capabilities.get("flavors", [])}
        return self._flavor_memory

    def _network(self, project: str, service: Json) -> PrivateNetwork | None:
        if service.get("networkType") != "private" or not service.get("networkId"):
            return None
        networks = self._api.get(f"/cloud/project/{project}/network/private")
        network = next((n for n in networks if _openstack_ids(n) & {service["networkId"]}), None)
        if network is None:
            return PrivateNetwork(id=service["networkId"], name="", openstack_id=service["networkId"])
        subnets = self._api.get(f"/cloud/project/{project}/network/private/{network['id']}/subnet")
        subnet = next((s for s in subnets if s["id"] == service.get("subnetId")), None)
        return _private_network(network, service["networkId"], subnet, self._vrack(project))

    def _vrack(self, project: str) -> str | None:
        try:
            vrack = self._api.get(f"/cloud/project/{project}/vrack")
        except SourceNotFoundError:
            return None
        name = vrack.get("name") or vrack.get("id")
        return str(name) if name else None


def _ids(answer: Json) -> list[str]:
    """A list of ids from the API, each safe to put in a path (OVH's are UUIDs)."""
    if not isinstance(answer, list) or not all(isinstance(i, str) and _ID.fullmatch(i) for i in answer):
        raise ValueError(f"expected a list of ids, got {_clip(answer)}")
    return answer


_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def _flavor_memory(flavor: Json) -> float:
    memory = (flavor.get("specifications") or {}).get("memory") or {}
    value = float(memory.get("value", flavor.get("memory", 0)))
    return value / 1024 if memory.get("unit") == "MB" else value


def _openstack_ids(network: Json) -> set[str]:
    return {r["openstackId"] for r in network.get("regions", []) if r.get("openstackId")}


def _private_network(network: Json, openstack_id: str, subnet: Json | None, vrack: str | None) -> PrivateNetwork:
    region = next((r["region"] for r in network.get("regions", []) if r.get("openstackId") == openstack_id), None)
    return PrivateNetwork(
        id=network["id"],
        name=network.get("name", ""),
        vlan_id=network.get("vlanId"),
        openstack_id=openstack_id,
        region=region,
        vrack=vrack,
        subnet=_subnet(subnet) if subnet else None,
    )


def _subnet(subnet: Json) -> Subnet:
    pools = subnet.get("ipPools") or [{}]
    return Subnet(
        id=subnet["id"],
        cidr=subnet["cidr"],
        gateway=subnet.get("gatewayIp"),
        dhcp=subnet.get("dhcpEnabled"),
        allocation_start=pools[0].get("start"),
        allocation_end=pools[0].get("end"),
    )


# ---- recorded API JSON → spec (pure) -------------------------------------------------------------

#: What reading an answer of the wrong shape raises (pydantic's ValidationError is a ValueError).
_MALFORMED = (KeyError, IndexError, TypeError, ValueError, AttributeError)


@contextmanager
def untrusted_answer(what: str) -> Iterator[None]:
    """Turn an API answer of the wrong shape (missing keys, wrong types, values the spec refuses) into a SourceError."""
    try:
        yield
    except _MALFORMED as exc:
        if isinstance(exc, ValidationError):
            problem = f"{exc.title}: {describe_validation_error(exc)}"
        elif isinstance(exc, KeyError):
            problem = f"the field {_clip(exc.args[0] if exc.args else '')} is missing"
        else:
            problem = f"{type(exc).__name__}: {_clip(str(exc))}"
        raise SourceError(
            f"the OVH API answered {what} in a form reproducer cannot accept: {problem}",
            hint="the answer does not have the shape OVH documents; if the service works in the OVH console, "
            "report this with the command's output",
        ) from None


def _clip(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "…"


def build_spec(
    *,
    project: str,
    service: Json,
    nodes: list[Json],
    users: list[Json],
    advanced: dict[str, str],
    network: PrivateNetwork | None,
    flavor_memory: dict[str, float],
) -> ServiceSpec:
    """Turn the API's JSON answers for one service into a ServiceSpec (pure: no calls).

    The answers are untrusted: one of the wrong shape, or with a value the spec refuses, is a SourceError.
    """
    with untrusted_answer("a service"):
        return _build_spec(project, service, nodes, users, advanced, network, flavor_memory)


def _build_spec(
    project: str,
    service: Json,
    nodes: list[Json],
    users: list[Json],
    advanced: dict[str, str],
    network: PrivateNetwork | None,
    flavor_memory: dict[str, float],
) -> ServiceSpec:
    node_list = nodes or service.get("nodes") or []
    region = node_list[0]["region"] if node_list else service.get("region", "")
    topology = _topology(node_list)
    configuration = tuple(_config_item(k, v) for k, v in advanced.items())
    allow_list = tuple(
        AllowedCidr(cidr=r["ip"], description=r.get("description") or "") for r in service.get("ipRestrictions") or []
    )
    net = Network(type="private" if service.get("networkType") == "private" else "public", private=network)
    endpoints = tuple(_endpoint(e) for e in service.get("endpoints") or [])
    return ServiceSpec(
        source=SourceRef(
            provider="ovh",
            project=project,
            service_id=service["id"],
            region=region,
            description=service.get("description") or "",
        ),
        engine=Engine(name=service.get("engine", "valkey"), version=service["version"]),
        plan=_plan(service, flavor_memory),
        topology=topology,
        network=net,
        allow_list=allow_list,
        users=tuple(_user(u) for u in users),
        configuration=configuration,
        backups=_backups(service),
        maintenance_time=service.get("maintenanceTime"),
        tls=_tls(endpoints, advanced),
        deletion_protection=bool(service.get("deletionProtection")),
        endpoints=endpoints,
        features=features(topology, allow_list, net, configuration),
    )


def _plan(service: Json, flavor_memory: dict[str, float]) -> Plan:
    flavor = service["flavor"]
    if flavor in flavor_memory:
        return Plan(
            name=service["plan"],
            flavor=flavor,
            memory_gb=flavor_memory[flavor],
            memory_source="OVH API: GET /cloud/project/{project}/database/capabilities",
        )
    known = catalog.FLAVOR_MEMORY_GB.get(flavor)
    source = "reproducer catalog (OVH flavor table, docs/reference/ovh-api.md#flavors)" if known else "unknown flavor"
    return Plan(name=service["plan"], flavor=flavor, memory_gb=known, memory_source=source)


def _topology(nodes: list[Json]) -> Topology:
    spec_nodes = tuple(
        Node(name=n["name"], region=n["region"], port=n.get("port"), flavor=n.get("flavor", "")) for n in nodes
    )
    replicas = max(len(nodes) - 1, 0)
    return Topology(
        mode="sentinel" if replicas else "standalone", shards=1, replicas_per_shard=replicas, nodes=spec_nodes
    )


def _user(user: Json) -> User:
    return User(
        name=user["username"],
        categories=tuple(user.get("categories") or ()),
        commands=tuple(user.get("commands") or ()),
        keys=tuple(user.get("keys") or ()),
        channels=tuple(user.get("channels") or ()),
    )


def _config_item(name: str, value: str) -> ConfigItem:
    mapped = catalog.to_valkey(name, str(value))
    return ConfigItem(source_name=name, valkey_name=mapped[0] if mapped else None, value=str(value))


def _backups(service: Json) -> Backups:
    backups = service.get("backups") or {}
    return Backups(
        time=backups.get("time") or service.get("backupTime"),
        regions=tuple(backups.get("regions") or ()),
        retention_days=backups.get("retentionDays"),
    )


def _endpoint(endpoint: Json) -> Endpoint:
    return Endpoint(
        component=endpoint.get("component", "valkey"),
        host=endpoint["domain"],
        port=endpoint["port"],
        scheme=endpoint.get("scheme"),
        tls=bool(endpoint.get("ssl")),
    )


def _tls(endpoints: tuple[Endpoint, ...], advanced: dict[str, str]) -> bool:
    if advanced.get("redis_ssl", advanced.get("valkey_ssl")) == "false":
        return False
    return any(e.tls for e in endpoints) if endpoints else True


def features(
    topology: Topology,
    allow_list: tuple[AllowedCidr, ...],
    network: Network,
    configuration: tuple[ConfigItem, ...],
) -> tuple[Feature, ...]:
    """The service's features with their category in OVH's reversibility policy."""
    persistence = next((c.value for c in configuration if c.source_name.endswith("_persistence")), "rdb")
    core, adapt, specific = Category.CORE, Category.OVH_IMPLEMENTATION, Category.SPECIFIC
    rows = [
        ("key_value_data", core, True, "exported as JSONL, RDB or AOF, or copied key by key with TTLs"),
        (
            "high_availability",
            core,
            topology.replicas_per_shard > 0,
            f"Sentinel with {topology.replicas_per_shard} replica(s) per shard; reproduced at the target",
        ),
        (
            "persistence",
            core,
            persistence != "off",
            f"redis_persistence={persistence}; RDB snapshots at the target",
        ),
        (
            "scalability_shards",
            core,
            topology.shards > 1,
            f"{topology.shards} shard(s); OVH offers no cluster mode, the target may reshard",
        ),
        (
            "ip_allow_list",
            adapt,
            bool(allow_list),
            f"{len(allow_list)} CIDR(s) become firewall rules at the target",
        ),
        (
            "vrack_private_network",
            adapt,
            network.type == "private",
            "the vRack VLAN and subnet are reproduced as the target's private network",
        ),
        ("infrastructure_as_code", specific, True, "OVH Terraform resources are rewritten for the target"),
        ("anti_ddos", specific, True, "on by default at OVH; order the target provider's equivalent"),
    ]
    return tuple(Feature(name=n, category=c, in_use=u, note=note) for n, c, u, note in rows)


# ---- switching keyspace notifications on for a live follow ----------------------------------------

NOTIFY_PARAMETER = "redis_notify_keyspace_events"


def enable_keyspace_notifications(api: OvhApiClient, project: str, service: str) -> tuple[str | None, str]:
    """Make sure the service notifies keyspace events (``K`` + ``A``); returns (previous value, value now)."""
    path = f"/cloud/project/{project}/database/valkey/{service}/advancedConfiguration"
    previous = api.get(path).get(NOTIFY_PARAMETER)
    wanted = "".join(sorted(set(previous or "") | {"K", "A"}))
    if previous is None or not {"K", "A"} <= set(previous):
        api.put(path, **{NOTIFY_PARAMETER: wanted})
        return previous, wanted
    return previous, previous


# ---- temporary data access for a migration ---------------------------------------------------------

#: What a migration user may do on the source: read every key and its TTL, scan, and follow notifications.
MIGRATION_ACL = {
    "categories": ["+@read", "+@connection"],
    "commands": ["+psubscribe", "+info", "+set", "+del"],
    "keys": ["*"],
    "channels": ["__keyspace@*__:*"],
}


def wait_ready(api: OvhApiClient, path: str, timeout: float, hint: str, *, every: float = 1.0) -> Json:
    """GET ``path`` until its ``status`` is ``READY`` (OVH applies changes asynchronously); return that object.

    Raises:
        SourceUnavailableError: still not ``READY`` after ``timeout`` seconds (retryable), with ``hint``.
    """
    deadline = time.monotonic() + timeout
    while True:
        answer = api.get(path)
        if answer.get("status") == "READY":
            return answer
        if time.monotonic() > deadline:
            raise SourceUnavailableError(f"{path} is not READY after {timeout:.0f}s", hint=hint, retryable=True)
        time.sleep(every)


class OvhServiceAccess:
    """Grants and revokes temporary data access to one OVH Valkey service (allow-list entry, user).

    The caller records each grant before asking for it, so that a crash leaves enough to undo it.
    """

    def __init__(self, api: OvhApiClient, project: str, service: str, *, timeout: float = 300.0) -> None:
        self._api, self._timeout = api, timeout
        self._path = f"/cloud/project/{project}/database/valkey/{service}"

    def _wait_ready(self) -> Json:
        hint = "wait for OVH to finish the pending change, then --resume"
        return wait_ready(self._api, self._path, self._timeout, hint)

    def allow(self, cidr: str, description: str) -> bool:
        """Add ``cidr`` to the allow-list; False when it was already there (then nothing is to undo)."""
        entries = self._wait_ready().get("ipRestrictions") or []
        if any(e["ip"] == cidr for e in entries):
            return False
        wanted = [{"ip": e["ip"], "description": e.get("description", "")} for e in entries]
        self._api.put(self._path, ipRestrictions=[*wanted, {"ip": cidr, "description": description}])
        self._wait_ready()
        return True

    def revoke(self, cidr: str) -> None:
        """Remove ``cidr`` from the allow-list (no-op when it is not there)."""
        entries = self._wait_ready().get("ipRestrictions") or []
        kept = [{"ip": e["ip"], "description": e.get("description", "")} for e in entries if e["ip"] != cidr]
        if len(kept) != len(entries):
            self._api.put(self._path, ipRestrictions=kept)
            self._wait_ready()

    def create_user(self, name: str) -> tuple[str, str]:
        """A least-privilege migration user; returns (user id, password). Never touches ``default``."""
        created = self._api.call("POST", f"{self._path}/user", name=name, **MIGRATION_ACL)
        return str(created["id"]), str(created["password"])

    def delete_user(self, user_id: str) -> None:
        """Delete the migration user (already gone is fine)."""
        try:
            self._api.call("DELETE", f"{self._path}/user/{user_id}")
        except SourceNotFoundError:
            return

    def username(self, user_id: str) -> str | None:
        """The name of the user ``user_id``, or None when it no longer exists."""
        try:
            name = self._api.get(f"{self._path}/user/{user_id}").get("username")
        except SourceNotFoundError:
            return None
        return str(name) if name is not None else None

    def find_user(self, name: str) -> str | None:
        """The id of the user called ``name``, if any (to clean up after a crash)."""
        for user_id in self._api.get(f"{self._path}/user"):
            if self._api.get(f"{self._path}/user/{user_id}").get("username") == name:
                return str(user_id)
        return None
