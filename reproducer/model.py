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
import unicodedata
from collections.abc import Callable, Iterable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from reproducer.errors import SpecError

SCHEMA_VERSION = 1
#: Version 2 adds what a live endpoint read (``inspect --from``) records: ``observed``, ``given`` and ``unknown``.
#: A version 2 spec always carries ``observed``; a version 1 spec never does, so version 1 specs load unchanged.
LIVE_SCHEMA_VERSION = 2
SUPPORTED_SCHEMA_VERSIONS = frozenset({SCHEMA_VERSION, LIVE_SCHEMA_VERSION})

# ---- the boundary: every string field has a character set and a length --------------------------------
#
# A spec may come from anyone's pull request. Identifiers and codes are held to the narrowest character set
# real values use (GRA11, db1-7, pn-123456_42, +@read, ...), so no template syntax, quote, space or line
# break can reach a renderer through them. Free text (descriptions, notes) keeps quotes and braces, which
# the renderers escape, but is one bounded line with no control character.

#: Unicode categories no spec string may contain: controls (NUL, ESC, tab, NEL U+0085), format characters
#: (bidi overrides, zero-width), line and paragraph separators (U+2028/U+2029), surrogates, private use, unassigned.
_NEVER = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
_TEXT_MAX = 1000
_UUID = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_PN = "pn-[A-Za-z0-9]+(?:[_-][A-Za-z0-9]+)*"
_LABEL = "[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\.?")
_TIME_OF_DAY = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]")
#: A key pattern or channel is prefixed with ``~``/``&`` when rendered; one starting with a character that
#: begins another ACL rule (``%R~``, ``&``, ``+``/``-``, ``>``/``<`` passwords, ``#`` hashes, ``(`` selectors)
#: is refused anyway, for targets that hand the bare pattern to an API.
_RULE_STARTS = frozenset("~%&+-<>#()!")
#: Template openers (Jinja, HCL): never needed in a key pattern or channel, refused there as defence in depth.
_TEMPLATE_OPENERS = ("{{", "{%", "{#", "${", "%{")
_PATTERN_MAX = 512
_QUOTES = frozenset("\"'`")

# Bounds, each with its reason.
#: Memory per node in GB: the largest node any provider sells is under 1 TB; 4096 leaves room and stops
#: the absurd (1e308) from reaching a sizing table.
MAX_MEMORY_GB = 4096.0
#: Shards: Valkey cluster's documented ceiling is about 1000 nodes, i.e. 500 primaries with one replica each;
#: ``--shards`` has the same bound.
MAX_SHARDS = 500
#: Replicas per shard: no managed offer goes beyond 5 (ElastiCache); ``--replicas`` has the same bound.
MAX_REPLICAS = 5
#: Nodes listed: every shard's primary and replicas at the bounds above.
MAX_NODES = MAX_SHARDS * (1 + MAX_REPLICAS)
#: Backup retention in days: ten years, far above any provider's maximum (OVH: 3, ElastiCache: 35).
MAX_RETENTION_DAYS = 3650
#: Entries per list of a user (categories, commands, key patterns, channels) and users per service.
MAX_ACL_ITEMS = 256
MAX_USERS = 1000
MAX_ALLOW_LIST = 1000
MAX_CONFIG_ITEMS = 256


def _show(value: object) -> str:
    """The value for an error message: its repr, truncated, with URL passwords and ``password=`` masked."""
    text = repr(value)
    text = re.sub(r"(?<=://)[^/@\s]*@", "***@", text)
    text = re.sub(r"(?i)((?:pass(?:word)?|pwd|secret|token|auth)=)[^&\s'\"]*", r"\1***", text)
    return text if len(text) <= 60 else text[:57] + "…"


def _show_acl(value: str) -> str:
    """Like :func:`_show`, with ACL password rules (``>pw``, ``<hash``, ``#hash``) masked wherever they are."""
    return _show(re.sub(r"(?:^|(?<=\s))[<>#]\S*", lambda m: m.group()[0] + "***", value))


def _bad_character(value: str, extra: frozenset[str] = frozenset()) -> str | None:
    return next((c for c in value if unicodedata.category(c) in _NEVER or c in extra), None)


def _describe_character(char: str) -> str:
    name = unicodedata.name(char, "control character")
    return f"{char!r} (U+{ord(char):04X} {name})"


def _format(regex: str, what: str, *, max_len: int = 64, acl: bool = False) -> Callable[[str], str]:
    compiled = re.compile(regex)
    show = _show_acl if acl else _show

    def check(value: str) -> str:
        if acl and value[:1] in {">", "<", "#"}:
            raise ValueError(f"{show(value)} is a password rule: a spec holds no password")
        if len(value) > max_len or not compiled.fullmatch(value):
            raise ValueError(f"{show(value)} is not {what}")
        return value

    return check


def _single_line(value: str) -> str:
    if len(value) > _TEXT_MAX:
        raise ValueError(f"{_show(value)} is longer than {_TEXT_MAX} characters")
    bad = _bad_character(value)
    if bad is not None:
        raise ValueError(f"{_show(value)} contains {_describe_character(bad)}: one line of text is expected")
    return value


def _acl_pattern(kind: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        if not value or len(value) > _PATTERN_MAX:
            raise ValueError(f"{_show_acl(value)} is not a {kind} (1 to {_PATTERN_MAX} characters)")
        bad = next((c for c in value if c.isspace() or unicodedata.category(c).startswith("Z")), None)
        bad = bad or _bad_character(value, _QUOTES)
        if bad is not None:
            raise ValueError(f"{_show_acl(value)} is not a {kind}: it contains {_describe_character(bad)}")
        if value[0] in _RULE_STARTS:
            raise ValueError(f"{_show_acl(value)} is not a {kind}: {value[0]!r} would start another ACL rule")
        opener = next((o for o in _TEMPLATE_OPENERS if o in value), None)
        if opener is not None:
            raise ValueError(f"{_show_acl(value)} is not a {kind}: it contains the template opener {opener!r}")
        return value

    return check


def _host(value: str) -> str:
    if len(value) <= 253 and _HOSTNAME.fullmatch(value):
        return value
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(f"{_show(value)} is not a host name or an IP address") from None
    if "%" in value:
        raise ValueError(f"{_show(value)} has an IPv6 scope: a scope-less address is expected")
    return value


def _ip(value: str) -> str:
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(f"{_show(value)} is not an IP address") from None
    if "%" in value:
        raise ValueError(f"{_show(value)} has an IPv6 scope: a scope-less address is expected")
    return str(address)


def _normalise_cidr(value: str) -> str:
    if "%" in value:
        raise ValueError(f"{_show(value)} has an IPv6 scope: a scope-less network is expected")
    try:
        return str(ipaddress.ip_network(value.strip(), strict=False))
    except ValueError:
        raise ValueError(f"{value!r} is not an IP network in CIDR form (e.g. 203.0.113.0/24)") from None


def _time_of_day(value: str | None) -> str | None:
    if value is not None and not _TIME_OF_DAY.fullmatch(value):
        raise ValueError(f"{_show(value)} is not a time of day HH:MM:SS")
    return value


def _config_value(value: str) -> str:
    if len(value) > 512 or value != value.strip(" ") or not re.fullmatch(r"[A-Za-z0-9 $*+,./:=@_-]*", value):
        raise ValueError(
            f"{_show(value)} is not a configuration value (letters, digits, spaces inside and $*+,./:=@_-, "
            "at most 512 characters)"
        )
    return value


def _unique(items: Iterable[Any], key: Callable[[Any], str], what: str) -> None:
    seen: set[str] = set()
    for item in items:
        name = key(item)
        if name in seen:
            raise ValueError(f"duplicate {what} {_show(name)}: each must appear once")
        seen.add(name)


#: An IP network in CIDR form, normalised (host bits cleared); IPv4 or IPv6 (targets check the family).
Cidr = Annotated[str, AfterValidator(_normalise_cidr)]
#: One line of free text (descriptions, notes): quotes and braces allowed, no control character, bounded.
Text = Annotated[str, AfterValidator(_single_line)]
ProviderName = Annotated[
    str,
    AfterValidator(_format("[a-z][a-z0-9_-]*", "a provider name (lower-case letters, digits, '_', '-')", max_len=32)),
]
#: A provider's resource id (project, service, subnet...): also used in file names, so no '/', no leading dot.
ResourceId = Annotated[
    str,
    AfterValidator(
        _format("[A-Za-z0-9](?:[A-Za-z0-9_.-]*[A-Za-z0-9])?", "an id (letters, digits, '_', '.', '-')", max_len=128)
    ),
]
Uuid = Annotated[str, AfterValidator(_format(_UUID, "a UUID (8-4-4-4-12 hexadecimal digits)", max_len=36))]
#: Region codes: GRA, GRA11, SBG5, DE1, EU-WEST-PAR, or another provider's eu-west-3.
Region = Annotated[
    str,
    AfterValidator(
        _format("[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*", "a region code (letters and digits, '-' between)", max_len=32)
    ),
]
#: Flavor and plan names: db1-7, b3-8, business, another provider's cache.r7g.large.
_PRODUCT = "[a-z0-9]+(?:[._-][a-z0-9]+)*"
ProductName = Annotated[
    str, AfterValidator(_format(_PRODUCT, "a plan or flavor name (lower-case letters, digits, '.', '_', '-')"))
]
FlavorOrEmpty = Annotated[str, AfterValidator(_format(f"(?:{_PRODUCT})?", "a flavor name such as db1-7, or empty"))]
VersionNumber = Annotated[
    str, AfterValidator(_format("[0-9]{1,3}(?:\\.[0-9]{1,3}){0,2}", "a version number such as 8.0", max_len=11))
]
Hostname = Annotated[str, AfterValidator(_format(_HOSTNAME.pattern, "a DNS host name", max_len=253))]
Host = Annotated[str, AfterValidator(_host)]
IpAddress = Annotated[str, AfterValidator(_ip)]
#: OVH private network ids: ``pn-<vrack>_<vlan>``, or the OpenStack UUID when the network is not listed.
PrivateNetworkId = Annotated[
    str, AfterValidator(_format(f"{_PN}|{_UUID}", "a private network id (pn-123456_42, or a UUID)", max_len=64))
]
VrackName = Annotated[str, AfterValidator(_format(_PN, "a vRack name (pn-123456)"))]
#: Names of things reproducer defines (features, endpoint components).
Keyword = Annotated[str, AfterValidator(_format("[a-z][a-z0-9_-]*", "a name (lower-case letters, digits, '_', '-')"))]
#: OVH endpoint components: valkey, or camelCase ones other engines use (schemaRegistry, kafkaSASL).
Component = Annotated[str, AfterValidator(_format("[A-Za-z][A-Za-z0-9_-]*", "an endpoint component such as valkey"))]
Scheme = Annotated[str, AfterValidator(_format("[a-z][a-z0-9+.-]*", "a URL scheme such as rediss", max_len=16))]
#: Valkey ACL user names: no space, quote or leading '-', so a name is always one ACL token.
UserName = Annotated[
    str,
    AfterValidator(
        _format(
            "[A-Za-z0-9_.@][A-Za-z0-9_.@-]*",
            "a user name (letters, digits, '_', '.', '@', '-', not first; at most 128)",
            max_len=128,
            acl=True,
        )
    ),
]
AclCategory = Annotated[
    str,
    AfterValidator(
        _format("[+-]@[A-Za-z][A-Za-z0-9_-]*", "an ACL category rule such as +@read or -@dangerous", acl=True)
    ),
]
AclCommand = Annotated[
    str,
    AfterValidator(
        _format(
            "[+-][A-Za-z][A-Za-z0-9_.-]*(?:\\|[A-Za-z0-9][A-Za-z0-9_.-]*)?",
            "an ACL command rule such as +get, -flushall or +config|get",
            max_len=130,
            acl=True,
        )
    ),
]
KeyPattern = Annotated[str, AfterValidator(_acl_pattern("key pattern"))]
ChannelPattern = Annotated[str, AfterValidator(_acl_pattern("channel pattern"))]
ConfigName = Annotated[
    str,
    AfterValidator(
        _format("[a-z0-9][a-z0-9_.-]*", "a configuration name (lower-case letters, digits, '_', '.', '-')", max_len=128)
    ),
]
ConfigValue = Annotated[str, AfterValidator(_config_value)]
Port = Annotated[int, Field(strict=True, ge=1, le=65535)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Category(StrEnum):
    """Categories of OVHcloud's reversibility policy."""

    CORE = "core"
    OVH_IMPLEMENTATION = "ovh_implementation"
    SPECIFIC = "specific"


_OVH_FORMATS = {
    "project": _format("[0-9a-f]{32}", "an OVH Public Cloud project id (32 lower-case hexadecimal digits)"),
    "service_id": _format(_UUID, "an OVH service id (a UUID)"),
}


class SourceRef(_Frozen):
    """Where the spec was read from; OVH ids have OVH's formats, other providers' a safe id charset."""

    provider: ProviderName
    project: ResourceId
    service_id: ResourceId
    region: Region
    description: Text = ""

    @field_validator("project", "service_id", mode="before")
    @classmethod
    def _provider_format(cls, value: object, info: ValidationInfo) -> object:
        if isinstance(value, str) and info.data.get("provider") == "ovh" and info.field_name in _OVH_FORMATS:
            return _OVH_FORMATS[info.field_name](value)
        return value


class Engine(_Frozen):
    """Engine name and major.minor version (``8.0``)."""

    name: Literal["valkey", "redis"] = "valkey"
    version: VersionNumber


class Plan(_Frozen):
    """Commercial plan and node size."""

    name: ProductName
    flavor: ProductName
    memory_gb: Annotated[float, Field(strict=True, gt=0, le=MAX_MEMORY_GB, allow_inf_nan=False)] | None = Field(
        default=None, description="memory per node, from the flavor"
    )
    memory_source: Text = Field(default="", description="where memory_gb comes from")


class Node(_Frozen):
    """One node of the service as the provider lists it."""

    name: Hostname
    region: Region
    port: Port | None = None
    flavor: FlavorOrEmpty = ""


class Topology(_Frozen):
    """Shape of the service: standalone, primary + replicas behind Sentinel, or cluster shards."""

    mode: Literal["standalone", "sentinel", "cluster"]
    shards: Annotated[int, Field(strict=True, ge=1, le=MAX_SHARDS)]
    replicas_per_shard: Annotated[int, Field(strict=True, ge=0, le=MAX_REPLICAS)]
    nodes: tuple[Node, ...] = Field(default=(), max_length=MAX_NODES)

    @field_validator("nodes")
    @classmethod
    def _sorted_nodes(cls, nodes: tuple[Node, ...]) -> tuple[Node, ...]:
        _unique(nodes, lambda n: n.name, "node name")
        return tuple(sorted(nodes, key=lambda n: n.name))


class Subnet(_Frozen):
    """The private subnet the service lives in."""

    id: ResourceId
    cidr: Cidr
    gateway: IpAddress | None = None
    dhcp: StrictBool | None = None
    allocation_start: IpAddress | None = None
    allocation_end: IpAddress | None = None


class PrivateNetwork(_Frozen):
    """A vRack private network (OVH ``pn-…`` id, VLAN, the regional OpenStack network id)."""

    id: PrivateNetworkId
    name: Text
    vlan_id: Annotated[int, Field(strict=True, ge=0, le=4094)] | None = None
    openstack_id: Uuid | None = None
    region: Region | None = None
    vrack: VrackName | None = Field(default=None, description="the vRack service name, when readable")
    subnet: Subnet | None = None


class Network(_Frozen):
    """Public or private (vRack) networking."""

    type: Literal["public", "private"]
    private: PrivateNetwork | None = None


class AllowedCidr(_Frozen):
    """One entry of the IP allow-list."""

    cidr: Cidr
    description: Text = ""


class User(_Frozen):
    """An ACL user, by its parts as OVH stores them; no password (those never leave the source).

    Every part is one ACL token by construction (see the module's boundary types), so ``acl_rules`` can
    never carry a rule the spec did not list as such.
    """

    name: UserName
    categories: tuple[AclCategory, ...] = Field(default=(), max_length=MAX_ACL_ITEMS)
    commands: tuple[AclCommand, ...] = Field(default=(), max_length=MAX_ACL_ITEMS)
    keys: tuple[KeyPattern, ...] = Field(default=(), max_length=MAX_ACL_ITEMS)
    channels: tuple[ChannelPattern, ...] = Field(default=(), max_length=MAX_ACL_ITEMS)

    @property
    def acl_rules(self) -> str:
        """The equivalent ACL SETUSER rules: ``on ~keys &channels +@cat +cmd``."""
        parts = ["on", *(f"~{k}" for k in self.keys), *(f"&{c}" for c in self.channels)]
        return " ".join([*parts, *self.categories, *self.commands])


class ConfigItem(_Frozen):
    """One advanced-configuration parameter: the provider's name, the Valkey name it maps to, its value.

    The value is one line of a restricted character set, so it can never add a directive to valkey.conf.
    """

    source_name: ConfigName
    valkey_name: ConfigName | None = Field(description="None when Valkey has no direct equivalent")
    value: ConfigValue


class Backups(_Frozen):
    """Automated backups of the source service."""

    time: str | None = None
    regions: tuple[Region, ...] = Field(default=(), max_length=32)
    retention_days: Annotated[int, Field(strict=True, ge=0, le=MAX_RETENTION_DAYS)] | None = None

    @field_validator("time")
    @classmethod
    def _valid_time(cls, value: str | None) -> str | None:
        return _time_of_day(value)


class Endpoint(_Frozen):
    """How clients reach the service (no credentials: the provider's URI placeholders are dropped)."""

    component: Component
    host: Host
    port: Port
    scheme: Scheme | None = None
    tls: StrictBool


class Feature(_Frozen):
    """A feature of the service and its category in OVH's reversibility policy."""

    name: Keyword
    category: Category
    in_use: StrictBool
    note: Text


#: A spec field named in ``given`` or ``unknown``: ``allow_list``, ``plan.memory_gb``, ``configuration.redis_timeout``.
FieldPath = Annotated[
    str,
    AfterValidator(
        _format(
            "[a-z][a-z_]*(?:\\.[A-Za-z0-9_@][A-Za-z0-9_.@-]*)?", "a spec field path such as plan.memory_gb", max_len=160
        )
    ),
]


class UnknownField(_Frozen):
    """A field a live read could not fill, and why (a refused command, a value the spec cannot hold)."""

    field: FieldPath
    reason: Text


class Observed(_Frozen):
    """What a live read (``inspect --from``) measured on the servers, beside the fields every spec has."""

    used_memory_bytes: Annotated[int, Field(strict=True, ge=0, le=2**63)] | None = None
    maxmemory_bytes: Annotated[int, Field(strict=True, ge=0, le=2**63)] | None = Field(
        default=None, description="summed over the primaries; 0 when any primary has no limit"
    )
    sentinel_quorum: Annotated[int, Field(strict=True, ge=1, le=100)] | None = None
    primaries: Annotated[int, Field(strict=True, ge=1, le=MAX_SHARDS)]


#: Fields of version 2, left out of a spec's text when empty (so version 1 specs keep their bytes).
_LIVE_FIELDS = ("observed", "given", "unknown")


class ServiceSpec(_Frozen):
    """A managed Valkey service, as every later phase needs it (see the module docstring)."""

    schema_version: Annotated[int, Field(strict=True)] = SCHEMA_VERSION
    source: SourceRef
    engine: Engine
    plan: Plan
    topology: Topology
    network: Network
    allow_list: tuple[AllowedCidr, ...] = Field(default=(), max_length=MAX_ALLOW_LIST)
    users: tuple[User, ...] = Field(default=(), max_length=MAX_USERS)
    configuration: tuple[ConfigItem, ...] = Field(default=(), max_length=MAX_CONFIG_ITEMS)
    backups: Backups = Backups()
    maintenance_time: str | None = None
    tls: StrictBool = True
    deletion_protection: StrictBool = False
    endpoints: tuple[Endpoint, ...] = Field(default=(), max_length=64)
    features: tuple[Feature, ...] = Field(default=(), max_length=64)
    #: Version 2 (a live read): what was measured, the fields given by flags or an overlay (not read), and the
    #: fields that could not be read with the reason.
    observed: Observed | None = None
    given: tuple[FieldPath, ...] = Field(default=(), max_length=64)
    unknown: tuple[UnknownField, ...] = Field(default=(), max_length=MAX_CONFIG_ITEMS + MAX_USERS)

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
        _unique(items, lambda a: a.cidr, "allow-list network")
        return tuple(sorted(items, key=lambda a: (ipaddress.ip_network(a.cidr).version, a.cidr)))

    @field_validator("users")
    @classmethod
    def _sorted_users(cls, users: tuple[User, ...]) -> tuple[User, ...]:
        _unique(users, lambda u: u.name, "user name")
        return tuple(sorted(users, key=lambda u: u.name))

    @field_validator("configuration")
    @classmethod
    def _sorted_config(cls, items: tuple[ConfigItem, ...]) -> tuple[ConfigItem, ...]:
        _unique(items, lambda c: c.source_name, "configuration name")
        return tuple(sorted(items, key=lambda c: c.source_name))

    @field_validator("maintenance_time")
    @classmethod
    def _valid_maintenance(cls, value: str | None) -> str | None:
        return _time_of_day(value)

    @field_validator("given")
    @classmethod
    def _sorted_given(cls, items: tuple[str, ...]) -> tuple[str, ...]:
        _unique(items, lambda g: g, "given field")
        return tuple(sorted(items))

    @field_validator("unknown")
    @classmethod
    def _sorted_unknown(cls, items: tuple[UnknownField, ...]) -> tuple[UnknownField, ...]:
        _unique(items, lambda u: u.field, "unknown field")
        return tuple(sorted(items, key=lambda u: u.field))

    @model_validator(mode="after")
    def _live_fields_match_version(self) -> ServiceSpec:
        live = self.schema_version == LIVE_SCHEMA_VERSION
        if live and self.observed is None:
            raise ValueError("a schema_version 2 spec (read from a live endpoint) has an 'observed' block")
        if not live and (self.observed is not None or self.given or self.unknown):
            raise ValueError("'observed', 'given' and 'unknown' need schema_version 2")
        return self

    def to_dict(self) -> dict[str, Any]:
        """The spec as plain JSON-compatible data, fields in declaration order (version 2 fields only when set)."""
        data = self.model_dump(mode="json")
        for name in _LIVE_FIELDS:
            if not data[name]:
                del data[name]
        return data

    def to_yaml(self) -> str:
        """Stable YAML: same spec, same bytes (never anchors or aliases)."""
        return yaml.dump(self.to_dict(), Dumper=_NoAliasDumper, sort_keys=False, allow_unicode=True, width=1000)

    def to_json(self) -> str:
        """Stable, indented JSON."""
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"


class _NoAliasDumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True


#: Errors listed in one message; the rest are counted.
_ERRORS_SHOWN = 8
#: A spec is a few kilobytes; the largest real one (500 shards of 6 nodes, 1000 users) stays far below this.
MAX_SPEC_BYTES = 1024 * 1024
#: Nesting a spec needs: spec > users > user > keys > key is 4; anything deeper is not a spec.
_MAX_DEPTH = 16


def describe_validation_error(exc: ValidationError) -> str:
    """The problems of a pydantic error, one ``field.path: problem (got value)`` each, the first few only.

    Values are shown truncated and masked; the value of an unknown field is never shown (it may be a
    password someone added), nor a mapping or list (they may hold one).
    """
    errors = exc.errors(include_url=False)
    problems = []
    for error in errors[:_ERRORS_SHOWN]:
        where = _where(error["loc"])
        problem = f"{where}: {error['msg']}"
        value = error.get("input")
        if error["type"] not in {"value_error", "extra_forbidden", "missing"} and _is_scalar(value):
            problem += f" (got {_show(value)})"
        problems.append(problem)
    if len(errors) > _ERRORS_SHOWN:
        problems.append(f"and {len(errors) - _ERRORS_SHOWN} more")
    return "; ".join(problems)


def _where(loc: tuple[int | str, ...]) -> str:
    """A field path such as ``users.0.keys.1``; an unknown key that is not a plain name is not shown."""
    return ".".join(_key(p) for p in loc) or "<root>"


def _key(key: object) -> str:
    """A key for a message: an index or field-like name as is, anything else (file content, a token) by its size."""
    text = str(key)
    return (
        text
        if isinstance(key, int) or re.fullmatch(r"[a-z][a-z_]{0,39}", text)
        else f"<a key of {len(text)} characters>"
    )


def _is_scalar(value: object) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def spec_from_data(data: object, *, origin: str = "spec") -> ServiceSpec:
    """Validate parsed YAML/JSON into a ServiceSpec, or raise a SpecError naming the bad fields."""
    if not isinstance(data, dict):
        what = "empty" if data is None else f"a {type(data).__name__}, not a mapping of fields"
        raise SpecError(f"{origin} is {what}", hint="a spec is a YAML mapping; see 'reproducer inspect'")
    try:
        return ServiceSpec.model_validate(data)
    except ValidationError as exc:
        first = _where(exc.errors()[0]["loc"])
        raise SpecError(
            f"{origin} is not a valid service spec: {describe_validation_error(exc)}",
            hint=f"fix {first} (and any other field named) in the spec; 'reproducer inspect' writes valid specs",
        ) from None


def load_spec(path: Path) -> ServiceSpec:
    """Read a spec from a YAML or JSON file (JSON is YAML), with errors that name the file.

    The file is untrusted: it is read up to :data:`MAX_SPEC_BYTES`, must be UTF-8, hold one YAML document
    without aliases, duplicate keys or deep nesting, and the document must be a valid spec.
    """
    return spec_from_data(load_document(path), origin=str(path))


def load_document(path: Path) -> object:
    """One bounded YAML (or JSON) document of ``path``, parsed as :func:`load_spec` does (SpecError otherwise).

    For spec-like files (a live read's overlay): 1 MiB, UTF-8, no aliases, duplicate keys or deep nesting.
    """
    text = _read_text(Path(path))
    try:
        loader = _SpecLoader(text)
        try:
            data = loader.get_single_data()
        finally:
            loader.dispose()
    except _Refused as exc:
        raise SpecError(f"{path} {exc.args[0]}", hint=exc.args[1]) from None
    except yaml.composer.ComposerError as exc:
        if "single document" not in str(exc.context):
            raise SpecError(f"{path} is not valid YAML: {_yaml_problem(exc)}", hint=_SYNTAX_HINT) from None
        raise SpecError(
            f"{path} holds more than one document ({_at(exc.problem_mark)})",
            hint="a spec file holds one document: split it, one spec per file ('inspect -o DIR' does)",
        ) from None
    except yaml.YAMLError as exc:
        raise SpecError(f"{path} is not valid YAML: {_yaml_problem(exc)}", hint=_SYNTAX_HINT) from None
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        raise SpecError(f"{path} is not valid YAML: {exc}", hint="fix the value named") from None
    return data


_SYNTAX_HINT = "fix the syntax at the position shown"


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """What is wrong and where, without PyYAML's snippet of the line (the file may be a secret one)."""
    if not isinstance(exc, yaml.MarkedYAMLError):
        return str(exc)[:200]
    text = "; ".join(str(part)[:120] for part in (exc.context, exc.problem) if part)
    text = re.sub(r"'[^']{4,}'", "'…'", text)  # a quoted tag or token from the file
    mark = exc.problem_mark or exc.context_mark
    return f"{text} ({_at(mark)})" if mark is not None else text


def _at(mark: yaml.Mark | None) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "unknown position"


def _read_text(path: Path) -> str:
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_SPEC_BYTES + 1)
    except OSError as exc:
        raise SpecError(f"cannot read spec {path}: {exc.strerror}", hint="check the path and its permissions") from None
    if len(raw) > MAX_SPEC_BYTES:
        raise SpecError(
            f"{path} is larger than {MAX_SPEC_BYTES // 1024} KiB: it is not a spec",
            hint="pass the spec file 'reproducer inspect' wrote",
        )
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SpecError(
            f"{path} is not UTF-8 text (byte {raw[exc.start]:#04x} at offset {exc.start})",
            hint="save the spec as UTF-8",
        ) from None


class _Refused(Exception):
    """A YAML construct a spec never needs (message, hint)."""


class _SpecLoader(yaml.SafeLoader):
    """YAML's safe loader without aliases (no "billion laughs"), duplicate keys or deep nesting."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
            raise _Refused(f"uses a YAML alias ({_at(mark)}): aliases are not accepted", "write each value out in full")
        self._depth += 1
        try:
            if self._depth > _MAX_DEPTH:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise _Refused(
                    f"is nested more than {_MAX_DEPTH} levels deep ({_at(mark)})", "a spec is a flat mapping"
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[str] = set()
        for key, _value in node.value:
            if isinstance(key, yaml.ScalarNode):
                if key.value in seen:
                    where = _at(key.start_mark)
                    raise _Refused(f"has the duplicate key {_key(key.value)} ({where})", "keep one of the two entries")
                seen.add(key.value)
        return super().construct_mapping(node, deep=deep)
