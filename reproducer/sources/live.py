"""Read any live Valkey or Redis endpoint into a service spec: the answers a connection got → a spec (pure).

``pipeline/live.py`` asks the servers (through the data layer) and records each answer, or the refusal, in
:class:`LiveAnswers`; :func:`build_live_spec` turns them into the same versioned, secret-free spec ``inspect`` writes
for OVH (schema version 2: with ``observed``, ``given`` and ``unknown``). Every answer is untrusted: names, ACL rules
and configuration values go through the spec's own boundary types, and one that does not fit is left out and
named in ``unknown`` with a reason (never with the server's text). Password hashes (``#<hash>``), passwords
(``><pw>``) and ``nopass`` are dropped from ACL rules before anything else looks at them. The answers' shapes:
``docs/reference/live-endpoints.md#acl-list`` and the sections beside it.

Network, allow-list, backups, region and name cannot be seen from a connection: they come from :class:`Given`
(flags or a small overlay file) and are listed in ``given``, or are listed in ``unknown``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from reproducer import catalog
from reproducer.errors import SourceError, SpecError
from reproducer.model import (
    LIVE_SCHEMA_VERSION,
    AclCategory,
    AclCommand,
    AllowedCidr,
    Backups,
    ChannelPattern,
    ConfigItem,
    Endpoint,
    Engine,
    Feature,
    KeyPattern,
    Network,
    Observed,
    Plan,
    Region,
    ServiceSpec,
    SourceRef,
    Text,
    Topology,
    UnknownField,
    User,
    UserName,
    describe_validation_error,
    load_document,
)

#: What a live spec's ``source.provider`` says: the spec was read from a live endpoint, not a provider's API.
PROVIDER = "live"
#: Placeholders for what a connection cannot tell (each also named in ``unknown``).
UNKNOWN_REGION = "unknown"
UNKNOWN_PRODUCT = "unknown"


@dataclass(frozen=True)
class Refused:
    """A command the server refused; ``reply`` (its error, untrusted) is only classified, never shown."""

    command: str
    reply: str

    def reason(self) -> str:
        """Why, in words of ours: disabled or renamed, not permitted, or refused."""
        text = self.reply.lstrip("-").strip()
        if "unknown command" in text.lower():
            return f"the server does not know {self.command}: it is disabled or renamed (as on managed services)"
        if text.upper().startswith("NOPERM") or "no permissions" in text.lower():
            return f"the endpoint's user may not run {self.command} (NOPERM)"
        return f"the server refused {self.command}"


@dataclass(frozen=True)
class LiveAnswers:
    """What the servers of one endpoint answered (see the module docstring); ``Refused`` where they did not."""

    kind: str
    tls: bool
    seed: tuple[str, int]
    hello: dict[str, str] | Refused
    info_server: str | Refused
    cluster: bool
    #: Replicas per primary (cluster: per shard); ``Refused`` when INFO replication was refused.
    replicas: list[int] | Refused
    #: INFO memory of every primary.
    memory: list[str | Refused]
    #: Valkey directive → its value (CONFIG GET), or the refusal.
    config: dict[str, str | Refused] | Refused
    #: ACL LIST lines, or the refusal.
    acl: list[str] | Refused
    #: The Sentinels' quorum (None when the URL names no Sentinel).
    quorum: int | Refused | None = None


class _Overlay(BaseModel):
    """The overlay file: what a connection cannot see (all optional)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    region: Region | None = None
    name: Text | None = None
    network: Network | None = None
    allow_list: tuple[AllowedCidr, ...] | None = None
    backups: Backups | None = None
    memory_gb: float | None = None


@dataclass(frozen=True)
class Given:
    """Fields given by flags or an overlay file (never read from the servers); None: not given."""

    region: str | None = None
    name: str | None = None
    network: Network | None = None
    allow_list: tuple[AllowedCidr, ...] | None = None
    backups: Backups | None = None
    memory_gb: float | None = None

    def names(self) -> tuple[str, ...]:
        """The spec fields these fill, as ``given`` lists them."""
        fields = {
            "source.region": self.region,
            "source.description": self.name,
            "network": self.network,
            "allow_list": self.allow_list,
            "backups": self.backups,
            "plan.memory_gb": self.memory_gb,
        }
        return tuple(name for name, value in fields.items() if value is not None)


def load_overlay(path: Path) -> Given:
    """The overlay file (YAML or JSON: region, name, network, allow_list, backups, memory_gb), checked."""
    data = load_document(path)
    if data is None:
        return Given()
    try:
        overlay = _Overlay.model_validate(data)
    except ValidationError as exc:
        raise SpecError(
            f"{path} is not a valid overlay: {describe_validation_error(exc)}",
            hint="an overlay holds region, name, network, allow_list, backups and memory_gb, as a spec writes them",
        ) from None
    return Given(**{name: getattr(overlay, name) for name in _Overlay.model_fields})


# ---- answers → spec --------------------------------------------------------------------------------------


@dataclass
class _Reading:
    """The facts being assembled and the fields left unknown, with why."""

    unknown: dict[str, str] = field(default_factory=dict)

    def missing(self, name: str, reason: str) -> None:
        self.unknown.setdefault(name, reason)


def build_live_spec(answers: LiveAnswers, given: Given = Given()) -> ServiceSpec:
    """The spec of the endpoint ``answers`` describe, with ``given`` filled in (pure: no calls).

    A value the spec cannot hold is left out and named in ``unknown``; an answer that makes no spec at all (no
    engine version, a topology beyond the spec's bounds) is a SourceError.
    """
    try:
        return _build(answers, given)
    except ValidationError as exc:
        raise SourceError(
            f"the endpoint's answers make no valid spec: {describe_validation_error(exc)}",
            hint="the server answered outside what a spec can hold (shards, replicas, names); see the fields named",
        ) from None


def _build(answers: LiveAnswers, given: Given) -> ServiceSpec:
    reading = _Reading()
    engine = _engine(answers)
    topology = _topology(answers, reading)
    configuration = _configuration(answers, reading)
    users = _users(answers, reading)
    observed = _observed(answers, topology, reading)
    network = given.network or Network(type="public")
    allow_list = given.allow_list or ()
    _not_seen(given, reading)
    return ServiceSpec(
        schema_version=LIVE_SCHEMA_VERSION,
        source=_source_ref(answers, given),
        engine=engine,
        plan=_plan(observed, given, reading),
        topology=topology,
        network=network,
        allow_list=allow_list,
        users=users,
        configuration=configuration,
        backups=given.backups or Backups(),
        tls=answers.tls,
        endpoints=(_endpoint(answers),),
        features=_features(topology, allow_list, network, configuration),
        observed=observed,
        given=given.names(),
        unknown=tuple(UnknownField(field=k, reason=v) for k, v in reading.unknown.items()),
    )


def _not_seen(given: Given, reading: _Reading) -> None:
    why = "a connection cannot see it; give it with {} (or in the overlay file)"
    if given.region is None:
        reading.missing("source.region", why.format("--region"))
    if given.network is None:
        reading.missing(
            "network", "a connection cannot see it; give it in the overlay file ('public' is a placeholder)"
        )
    if given.allow_list is None:
        reading.missing("allow_list", why.format("--allow-cidr"))
    if given.backups is None:
        reading.missing("backups", why.format("--backup-time"))
    reading.missing("maintenance_time", "a connection cannot see it")
    reading.missing("deletion_protection", "a connection cannot see it")
    reading.missing("plan.name", "a connection cannot tell the provider's plan or node type")


def _source_ref(answers: LiveAnswers, given: Given) -> SourceRef:
    host, port = answers.seed
    service = re.sub(r"[^A-Za-z0-9_.-]", "-", f"{host}-{port}").strip("-._") or "endpoint"
    return SourceRef(
        provider=PROVIDER,
        project=answers.kind,
        service_id=service[:128],
        region=given.region or UNKNOWN_REGION,
        description=given.name or "",
    )


def _endpoint(answers: LiveAnswers) -> Endpoint:
    scheme = ("valkeys" if answers.tls else "valkey") + ("" if answers.kind == "standalone" else f"+{answers.kind}")
    return Endpoint(component="valkey", host=answers.seed[0], port=answers.seed[1], scheme=scheme, tls=answers.tls)


# ---- engine ------------------------------------------------------------------------------------------

_VERSION = re.compile(r"([0-9]{1,3})\.([0-9]{1,3})")


def _engine(answers: LiveAnswers) -> Engine:
    fields = _info_fields(answers.info_server) if isinstance(answers.info_server, str) else {}
    hello = answers.hello if isinstance(answers.hello, dict) else {}
    name = (fields.get("server_name") or hello.get("server") or "").lower()
    version = fields.get("valkey_version") or hello.get("version") or fields.get("redis_version") or ""
    if fields.get("valkey_version"):
        name = "valkey"
    match = _VERSION.match(version)
    if name not in ("valkey", "redis") or match is None:
        raise SourceError(
            "the endpoint did not say which Valkey or Redis version it runs (HELLO and INFO server answered none)",
            hint="the endpoint's user needs HELLO or INFO; is it a Valkey or Redis server?",
        )
    return Engine(name=name, version=f"{int(match.group(1))}.{int(match.group(2))}")


def _info_fields(text: str) -> dict[str, str]:
    pairs = (line.split(":", 1) for line in text.splitlines() if ":" in line and not line.startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


# ---- topology and memory -----------------------------------------------------------------------------


def _topology(answers: LiveAnswers, reading: _Reading) -> Topology:
    counts = answers.replicas
    if isinstance(counts, Refused):
        reading.missing("topology.replicas_per_shard", counts.reason() + "; 0 is written")
        counts = [0]
    if len(set(counts)) > 1:
        reading.missing(
            "topology.replicas_per_shard", f"the shards have {sorted(set(counts))} replicas: the fewest is written"
        )
    replicas = min(counts) if counts else 0
    mode = "cluster" if answers.cluster else ("sentinel" if replicas or answers.kind == "sentinel" else "standalone")
    return Topology(mode=mode, shards=max(len(counts), 1), replicas_per_shard=replicas)


def _observed(answers: LiveAnswers, topology: Topology, reading: _Reading) -> Observed:
    used, limit = 0, 0
    unlimited = False
    for info in answers.memory:
        if isinstance(info, Refused):
            reading.missing("observed.used_memory_bytes", info.reason())
            used = limit = -1
            break
        fields = _info_fields(info)
        node_used, node_limit = _int(fields.get("used_memory")), _int(fields.get("maxmemory"))
        if node_used is None or node_limit is None:
            reading.missing("observed.used_memory_bytes", "INFO memory did not say used_memory and maxmemory")
            used = limit = -1
            break
        used, limit, unlimited = used + node_used, limit + node_limit, unlimited or node_limit == 0
    quorum = _quorum(answers, reading)
    return Observed(
        used_memory_bytes=used if used >= 0 else None,
        maxmemory_bytes=(0 if unlimited else limit) if limit >= 0 else None,
        sentinel_quorum=quorum,
        primaries=topology.shards,
    )


def _quorum(answers: LiveAnswers, reading: _Reading) -> int | None:
    if answers.quorum is None:
        if answers.kind != "cluster":
            reading.missing("observed.sentinel_quorum", "the URL names no Sentinel (valkey+sentinel://...)")
        return None
    if isinstance(answers.quorum, Refused):
        reading.missing("observed.sentinel_quorum", answers.quorum.reason())
        return None
    return answers.quorum if 1 <= answers.quorum <= 100 else None


def _int(text: str | None) -> int | None:
    return int(text) if text is not None and text.isascii() and text.isdigit() and len(text) < 20 else None


_GIB = 1 << 30


def _plan(observed: Observed, given: Given, reading: _Reading) -> Plan:
    if given.memory_gb is not None:
        return Plan(name=UNKNOWN_PRODUCT, flavor=UNKNOWN_PRODUCT, memory_gb=given.memory_gb, memory_source="given")
    limit = observed.maxmemory_bytes
    if not limit:
        why = "maxmemory is 0 (no limit)" if limit == 0 else "maxmemory was not readable"
        reading.missing("plan.memory_gb", f"{why}: give it with --memory-gb (or the overlay's memory_gb)")
        return Plan(name=UNKNOWN_PRODUCT, flavor=UNKNOWN_PRODUCT)
    memory = max(round(limit / _GIB, 3), 0.001)
    source = f"maxmemory summed over {observed.primaries} primary(ies) (INFO memory), in GiB"
    return Plan(name=UNKNOWN_PRODUCT, flavor=UNKNOWN_PRODUCT, memory_gb=memory, memory_source=source)


# ---- configuration -----------------------------------------------------------------------------------

_MIB = 1 << 20
_PUBSUB = re.compile(r"(?:^|\s)pubsub\s+(\d+)\s+(\d+)\s+(\d+)(?:\s|$)")


def _configuration(answers: LiveAnswers, reading: _Reading) -> tuple[ConfigItem, ...]:
    if isinstance(answers.config, Refused):
        reading.missing("configuration", answers.config.reason())
        return ()
    items = []
    for param in catalog.ADVANCED_PARAMETERS:
        if param.valkey_name is None:
            continue
        where = f"configuration.{param.name}"
        answer = answers.config.get(param.valkey_name, Refused("CONFIG GET", ""))
        if isinstance(answer, Refused):
            reading.missing(where, answer.reason())
            continue
        value, why = _parameter_value(param.valkey_name, answer)
        item = _config_item(param, value) if value is not None else None
        if item is None:
            reading.missing(where, why or f"the server's {param.valkey_name} is not a value the spec can hold")
            continue
        items.append(item)
    return tuple(items)


def _parameter_value(directive: str, value: str) -> tuple[str | None, str]:
    """The OVH parameter's value for a directive's value (``save`` → rdb/off...), or None and why."""
    if directive == "save":
        return ("rdb" if value.strip() else "off"), ""
    if directive == "notify-keyspace-events":  # the server orders the flags its own way: one sorted form
        return "".join(sorted(value)), ""
    if directive == "client-output-buffer-limit":
        match = _PUBSUB.search(value)
        if match is None:
            return None, "the server did not give its pubsub output buffer limits"
        hard, soft, seconds = (int(g) for g in match.groups())
        if hard == soft and hard % _MIB == 0 and hard and seconds == 60:
            return str(hard // _MIB), ""
        return None, f"the pubsub limits (hard {hard}, soft {soft} bytes, {seconds} s) are not one value in MB"
    return value, ""


def _config_item(param: catalog.AdvancedParameter, value: str) -> ConfigItem | None:
    try:
        return ConfigItem(source_name=param.name, valkey_name=param.valkey_name, value=value)
    except ValidationError:
        return None


# ---- users -------------------------------------------------------------------------------------------

#: Tokens of ACL LIST that hold or stand for a password: dropped first, never looked at again.
_SECRET_START = ("#", ">", "<")
_SECRET_WORDS = frozenset({"nopass", "resetpass"})
#: Tokens with no spec form that change nothing for a user created from scratch on a default server.
_NO_OP = frozenset({"resetkeys", "resetchannels", "sanitize-payload", "reset"})
_ALIASES = {"allkeys": "~*", "allchannels": "&*", "allcommands": "+@all", "nocommands": "-@all"}


#: ACL token prefix → the spec's type, the part of a user it goes to, and how much of the prefix to cut.
_KINDS: tuple[tuple[str, TypeAdapter[str], str, int], ...] = (
    ("~", TypeAdapter(KeyPattern), "keys", 1),
    ("&", TypeAdapter(ChannelPattern), "channels", 1),
    ("+@", TypeAdapter(AclCategory), "categories", 0),
    ("-@", TypeAdapter(AclCategory), "categories", 0),
    ("+", TypeAdapter(AclCommand), "commands", 0),
    ("-", TypeAdapter(AclCommand), "commands", 0),
)
#: ACL tokens a spec has no form for, by how they start.
_NO_FORM = (
    ("%", "is a read-only or write-only key pattern"),
    ("(", "is a selector"),
    ("skip-sanitize-payload", "skips payload sanitizing"),
)
_USER_NAME: TypeAdapter[str] = TypeAdapter(UserName)


def _users(answers: LiveAnswers, reading: _Reading) -> tuple[User, ...]:
    if isinstance(answers.acl, Refused):
        reading.missing("users", answers.acl.reason())
        return ()
    users = []
    for number, line in enumerate(answers.acl, 1):
        user = _user(line, number, reading)
        if user is not None:
            users.append(user)
    return tuple(users)


def _user(line: str, number: int, reading: _Reading) -> User | None:
    tokens = [t for t in line.split() if not t.startswith(_SECRET_START) and t not in _SECRET_WORDS]
    if len(tokens) < 2 or tokens[0] != "user":
        reading.missing(f"users.line{number}", "an ACL LIST line that does not start with 'user NAME'")
        return None
    name = _valid(_USER_NAME, tokens[1])
    if name is None:
        reading.missing(f"users.line{number}", "a user whose name the spec refuses")
        return None
    where = f"users.{name}"
    if "off" in tokens[2:]:
        reading.missing(where, "the user is off; a spec's users are on")
        return None
    parts: dict[str, list[str]] = {"categories": [], "commands": [], "keys": [], "channels": []}
    for position, token in enumerate(tokens[2:], 1):
        problem = _add_rule(parts, _ALIASES.get(token, token))
        if problem:
            reading.missing(where, f"its ACL rule {position} {problem}")
            return None
    if parts["categories"][:1] == ["-@all"]:
        parts["categories"].pop(0)  # a new user starts with no command: a leading -@all changes nothing
    try:
        return User(name=name, **{k: tuple(v) for k, v in parts.items()})
    except ValidationError:
        reading.missing(where, "its ACL rules are beyond what a spec holds")
        return None


def _add_rule(parts: dict[str, list[str]], token: str) -> str:
    """File one ACL token under its part; the problem when the spec has no form for it."""
    if token == "on" or token in _NO_OP:
        return ""
    token = "~" + token.removeprefix("%RW~") if token.startswith("%RW~") else token
    refused = next((why for start, why in _NO_FORM if token.startswith(start)), None)
    if refused is not None:
        return f"{refused}, which a spec cannot hold"
    for prefix, kind, part, cut in _KINDS:
        if token.startswith(prefix):
            value = _valid(kind, token[cut:])
            if value is None:
                return "is not one the spec can hold"
            parts[part].append(value)
            return ""
    return "is not one the spec can hold"


def _valid(kind: TypeAdapter[str], value: str) -> str | None:
    """``value`` when it passes the spec's boundary type behind ``kind``, else None."""
    try:
        return kind.validate_python(value)
    except ValidationError:
        return None


def _features(
    topology: Topology,
    allow_list: tuple[AllowedCidr, ...],
    network: Network,
    configuration: tuple[ConfigItem, ...],
) -> tuple[Feature, ...]:
    from reproducer.sources.ovh import features  # the same table as OVH's specs

    return features(topology, allow_list, network, configuration)
