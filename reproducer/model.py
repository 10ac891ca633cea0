"""The service spec: a versioned, secret-free description of one managed Valkey service.

Every phase after ``inspect`` reads only this spec. It is made of frozen pydantic models, rejects unknown
fields, keeps lists in a stable order, and serialises to YAML byte-for-byte the same way every time, so
a spec committed to git only changes when the service does.

Each feature carries its category in OVHcloud's reversibility policy for Managed In-Memory Database:
``core`` (migration guaranteed), ``ovh_implementation`` (needs adapting), ``specific`` (not transferable).
"""

from __future__ import annotations

import ipaddress
import json
import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator

from reproducer.errors import SpecError

SCHEMA_VERSION = 1
SUPPORTED_SCHEMA_VERSIONS = frozenset({1})
_TIME_OF_DAY = re.compile(r"^([01]\d|2[0-3]):[0-5]\d:[0-5]\d$")


def _normalise_cidr(value: str) -> str:
    try:
        return str(ipaddress.ip_network(value.strip(), strict=False))
    except ValueError:
        raise ValueError(f"{value!r} is not an IP network in CIDR form (e.g. 203.0.113.0/24)") from None


#: An IP network in CIDR form, normalised (host bits cleared).
Cidr = Annotated[str, AfterValidator(_normalise_cidr)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Category(StrEnum):
    """Categories of OVHcloud's reversibility policy."""

    CORE = "core"
    OVH_IMPLEMENTATION = "ovh_implementation"
    SPECIFIC = "specific"


class SourceRef(_Frozen):
    """Where the spec was read from."""

    provider: str
    project: str
    service_id: str
    region: str
    description: str = ""


class Engine(_Frozen):
    """Engine name and major.minor version (``8.0``)."""

    name: Literal["valkey", "redis"] = "valkey"
    version: str


class Plan(_Frozen):
    """Commercial plan and node size."""

    name: str
    flavor: str
    memory_gb: float | None = Field(default=None, description="memory per node, from the flavor")
    memory_source: str = Field(default="", description="where memory_gb comes from")


class Node(_Frozen):
    """One node of the service as the provider lists it."""

    name: str
    region: str
    port: int | None = None
    flavor: str = ""


class Topology(_Frozen):
    """Shape of the service: standalone, primary + replicas behind Sentinel, or cluster shards."""

    mode: Literal["standalone", "sentinel", "cluster"]
    shards: int = Field(ge=1)
    replicas_per_shard: int = Field(ge=0)
    nodes: tuple[Node, ...] = ()

    @field_validator("nodes")
    @classmethod
    def _sorted_nodes(cls, nodes: tuple[Node, ...]) -> tuple[Node, ...]:
        return tuple(sorted(nodes, key=lambda n: n.name))


class Subnet(_Frozen):
    """The private subnet the service lives in."""

    id: str
    cidr: Cidr
    gateway: str | None = None
    dhcp: bool | None = None
    allocation_start: str | None = None
    allocation_end: str | None = None


class PrivateNetwork(_Frozen):
    """A vRack private network (OVH ``pn-…`` id, VLAN, the regional OpenStack network id)."""

    id: str
    name: str
    vlan_id: int | None = None
    openstack_id: str | None = None
    region: str | None = None
    vrack: str | None = Field(default=None, description="the vRack service name, when readable")
    subnet: Subnet | None = None


class Network(_Frozen):
    """Public or private (vRack) networking."""

    type: Literal["public", "private"]
    private: PrivateNetwork | None = None


class AllowedCidr(_Frozen):
    """One entry of the IP allow-list."""

    cidr: Cidr
    description: str = ""


class User(_Frozen):
    """An ACL user, by its parts as OVH stores them; no password (those never leave the source)."""

    name: str
    categories: tuple[str, ...] = ()
    commands: tuple[str, ...] = ()
    keys: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()

    @property
    def acl_rules(self) -> str:
        """The equivalent ACL SETUSER rules: ``on ~keys &channels +@cat +cmd``."""
        parts = ["on", *(f"~{k}" for k in self.keys), *(f"&{c}" for c in self.channels)]
        return " ".join([*parts, *self.categories, *self.commands])


class ConfigItem(_Frozen):
    """One advanced-configuration parameter: the provider's name, the Valkey name it maps to, its value."""

    source_name: str
    valkey_name: str | None = Field(description="None when Valkey has no direct equivalent")
    value: str


class Backups(_Frozen):
    """Automated backups of the source service."""

    time: str | None = None
    regions: tuple[str, ...] = ()
    retention_days: int | None = None

    @field_validator("time")
    @classmethod
    def _valid_time(cls, value: str | None) -> str | None:
        return _time_of_day(value)


class Endpoint(_Frozen):
    """How clients reach the service (no credentials: the provider's URI placeholders are dropped)."""

    component: str
    host: str
    port: int
    scheme: str | None = None
    tls: bool


class Feature(_Frozen):
    """A feature of the service and its category in OVH's reversibility policy."""

    name: str
    category: Category
    in_use: bool
    note: str


class ServiceSpec(_Frozen):
    """A managed Valkey service, as every later phase needs it (see the module docstring)."""

    schema_version: int = SCHEMA_VERSION
    source: SourceRef
    engine: Engine
    plan: Plan
    topology: Topology
    network: Network
    allow_list: tuple[AllowedCidr, ...] = ()
    users: tuple[User, ...] = ()
    configuration: tuple[ConfigItem, ...] = ()
    backups: Backups = Backups()
    maintenance_time: str | None = None
    tls: bool = True
    deletion_protection: bool = False
    endpoints: tuple[Endpoint, ...] = ()
    features: tuple[Feature, ...] = ()

    @field_validator("schema_version")
    @classmethod
    def _known_version(cls, value: int) -> int:
        if value not in SUPPORTED_SCHEMA_VERSIONS:
            known = ", ".join(str(v) for v in sorted(SUPPORTED_SCHEMA_VERSIONS))
            raise ValueError(f"unknown schema_version {value}; this reproducer reads {known}: upgrade reproducer")
        return value

    @field_validator("allow_list")
    @classmethod
    def _sorted_allow_list(cls, items: tuple[AllowedCidr, ...]) -> tuple[AllowedCidr, ...]:
        return tuple(sorted(items, key=lambda a: (ipaddress.ip_network(a.cidr).version, a.cidr)))

    @field_validator("users")
    @classmethod
    def _sorted_users(cls, users: tuple[User, ...]) -> tuple[User, ...]:
        return tuple(sorted(users, key=lambda u: u.name))

    @field_validator("configuration")
    @classmethod
    def _sorted_config(cls, items: tuple[ConfigItem, ...]) -> tuple[ConfigItem, ...]:
        return tuple(sorted(items, key=lambda c: c.source_name))

    @field_validator("maintenance_time")
    @classmethod
    def _valid_maintenance(cls, value: str | None) -> str | None:
        return _time_of_day(value)

    def to_dict(self) -> dict[str, Any]:
        """The spec as plain JSON-compatible data, fields in declaration order."""
        return self.model_dump(mode="json")

    def to_yaml(self) -> str:
        """Stable YAML: same spec, same bytes."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True, width=1000)

    def to_json(self) -> str:
        """Stable, indented JSON."""
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"


def spec_from_data(data: object, *, origin: str = "spec") -> ServiceSpec:
    """Validate parsed YAML/JSON into a ServiceSpec, or raise a SpecError naming the bad fields."""
    if not isinstance(data, dict):
        raise SpecError(
            f"{origin} is not a mapping of fields", hint="a spec is a YAML mapping; see 'reproducer inspect'"
        )
    try:
        return ServiceSpec.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in exc.errors())
        raise SpecError(f"{origin} is not a valid service spec: {problems}", hint="fix those fields") from None


def load_spec(path: Path) -> ServiceSpec:
    """Read a spec from a YAML or JSON file (JSON is YAML), with errors that name the file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"cannot read spec {path}: {exc.strerror}", hint="check the path and its permissions") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SpecError(f"{path} is not valid YAML: {exc}", hint="fix the syntax at the position shown") from None
    return spec_from_data(data, origin=str(path))


def _time_of_day(value: str | None) -> str | None:
    if value is not None and not _TIME_OF_DAY.match(value):
        raise ValueError(f"{value!r} is not a time of day HH:MM:SS")
    return value
