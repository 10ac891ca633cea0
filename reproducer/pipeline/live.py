"""``inspect --from URL``: ask a live Valkey or Redis endpoint what it is, and build its spec.

The servers are asked through the data layer (the same URL forms, TLS and ``--via`` bastions as the data
commands); each answer, or the refusal, is recorded in ``sources.live.LiveAnswers`` and turned into the spec there.
A refused command is never fatal: the spec names the fields it left unknown. Connection and authentication
failures are (the data layer's errors).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from reproducer import catalog
from reproducer.data.endpoint import Endpoint, parse_endpoint, sentinel_client
from reproducer.data.resp import RawConnection
from reproducer.data.topology import Layout, connect, discover
from reproducer.errors import DataAuthError, DataError
from reproducer.pipeline.data import Vias, bastions
from reproducer.pipeline.progress import Progress, quiet

if TYPE_CHECKING:  # pydantic loads only for the commands that use it
    from reproducer.model import ServiceSpec
    from reproducer.sources.live import Given, LiveAnswers, Refused

T = TypeVar("T")


@dataclass(frozen=True)
class LiveInspectRequest:
    """``inspect --from URL``: the endpoint, its bastion, and what flags or an overlay file give."""

    url: str
    via: str | None = None
    overlay: Path | None = None
    region: str | None = None
    name: str | None = None
    allow_cidrs: tuple[str, ...] = ()
    backup_time: str | None = None
    memory_gb: float | None = None


def inspect_live(request: LiveInspectRequest, progress: Progress = quiet) -> ServiceSpec:
    """The spec of the live endpoint ``request.url`` (see the module docstring)."""
    from reproducer.sources.live import build_live_spec

    given = given_fields(request)
    endpoint = parse_endpoint(request.url)
    with bastions(Vias(source=request.via)) as routes:
        answers = ask(routes.source(endpoint))
    spec = build_live_spec(answers, given)
    if spec.unknown:
        progress(f"{len(spec.unknown)} field(s) could not be read: see 'unknown' in the spec")
    return spec


def given_fields(request: LiveInspectRequest) -> Given:
    """The overlay file's fields, with the flags given over them (each checked by the spec's types)."""
    from pydantic import TypeAdapter, ValidationError

    from reproducer.errors import InputError
    from reproducer.model import AllowedCidr, Backups, Plan, Region, Text, describe_validation_error
    from reproducer.sources.live import UNKNOWN_PRODUCT, Given, load_overlay

    given = load_overlay(request.overlay) if request.overlay else Given()
    try:
        flags: dict[str, Any] = {
            "region": TypeAdapter(Region).validate_python(request.region) if request.region else None,
            "name": TypeAdapter(Text).validate_python(request.name) if request.name else None,
            "allow_list": tuple(AllowedCidr(cidr=c) for c in request.allow_cidrs) or None,
            "backups": Backups(time=request.backup_time) if request.backup_time else None,
            "memory_gb": request.memory_gb,
        }
        merged = Given(**{**given.__dict__, **{k: v for k, v in flags.items() if v is not None}})
        if merged.memory_gb is not None:  # bounded as a spec's memory is
            Plan(name=UNKNOWN_PRODUCT, flavor=UNKNOWN_PRODUCT, memory_gb=merged.memory_gb)
    except ValidationError as exc:
        raise InputError(
            f"a value given for inspect --from is refused: {describe_validation_error(exc)}",
            hint="fix the flag (--region, --name, --allow-cidr, --backup-time, --memory-gb) named",
        ) from None
    cidrs = [entry.cidr for entry in merged.allow_list or ()]
    if len(set(cidrs)) != len(cidrs):
        raise InputError("an allow-list network is given twice", hint="give each --allow-cidr (or overlay entry) once")
    return merged


def ask(endpoint: Endpoint) -> LiveAnswers:
    """Everything the spec needs from ``endpoint``'s servers, refusals included."""
    from reproducer.sources.live import LiveAnswers

    layout = discover(endpoint)
    conn = connect(endpoint, layout.primaries[0])
    try:
        hello = _asked("HELLO", lambda: _hello(conn))
        info_server = _asked("INFO", lambda: _text(conn.call("INFO", "server")))
        replicas = _replica_counts(conn, layout)
        config = _config(conn)
        acl = _asked("ACL LIST", lambda: [_text(line) for line in _list(conn.call("ACL", "LIST"))])
    finally:
        conn.close()
    return LiveAnswers(
        kind="cluster" if layout.cluster else endpoint.kind,
        tls=endpoint.tls is not None,
        seed=endpoint.hosts[0],
        hello=hello,
        info_server=info_server,
        cluster=layout.cluster,
        replicas=replicas,
        memory=[_node_info(endpoint, node, "memory") for node in layout.primaries],
        config=config,
        acl=acl,
        quorum=_asked("SENTINEL MASTER", lambda: _quorum(endpoint)) if endpoint.kind == "sentinel" else None,
    )


def _asked(command: str, question: Callable[[], T]) -> T | Refused:
    """The answer, or the server's refusal of ``command`` (a lost connection or a refused login still raises)."""
    from reproducer.sources.live import Refused

    try:
        return question()
    except DataAuthError:
        raise
    except DataError as exc:
        if exc.retryable:
            raise
        return Refused(command, exc.message)


def _text(reply: object) -> str:
    return bytes(reply).decode("utf-8", errors="replace") if isinstance(reply, bytes | bytearray) else ""


def _list(reply: object) -> list[object]:
    return list(reply) if isinstance(reply, list) else []


def _hello(conn: RawConnection) -> dict[str, str]:
    reply = _list(conn.call("HELLO", "2"))
    return {_text(reply[i]): _text(reply[i + 1]) for i in range(0, len(reply) - 1, 2)}


def _replica_counts(conn: RawConnection, layout: Layout) -> list[int] | Refused:
    if layout.cluster:
        return _shard_replicas(conn)
    info = _asked("INFO", lambda: _text(conn.call("INFO", "replication")))
    if not isinstance(info, str):
        return info
    counts = [v.strip() for k, _, v in (line.partition(":") for line in info.splitlines()) if k == "connected_slaves"]
    count = counts[0] if counts else "0"
    return [int(count) if count.isascii() and count.isdigit() and len(count) < 4 else 0]


def _shard_replicas(conn: RawConnection) -> list[int]:
    """Replicas of each shard that has a primary (CLUSTER SHARDS): syncing ones count, failed ones do not."""
    counts = []
    for shard in _list(conn.call("CLUSTER", "SHARDS")):
        nodes = [_pairs(node) for node in _list(_pairs(shard).get("nodes"))]
        if any(node.get("role") == "master" and node.get("health") != "fail" for node in nodes):
            counts.append(sum(node.get("role") == "replica" and node.get("health") != "fail" for node in nodes))
    return counts


def _pairs(flat: object) -> dict[str, Any]:
    items = _list(flat)
    return {_text(items[i]): _value(items[i + 1]) for i in range(0, len(items) - 1, 2)}


def _value(item: object) -> object:
    return _text(item) if isinstance(item, bytes | bytearray) else item


def _config(conn: RawConnection) -> dict[str, str | Refused] | Refused:
    """CONFIG GET of each directive the spec knows; the whole command refused is one refusal."""
    from reproducer.sources.live import Refused

    values: dict[str, str | Refused] = {}
    for param in catalog.ADVANCED_PARAMETERS:
        if param.valkey_name is None:
            continue
        answer = _asked("CONFIG GET", _config_question(conn, param.valkey_name))
        if isinstance(answer, Refused) and "unknown command" in answer.reply.lower():
            return answer
        values[param.valkey_name] = answer
    return values


def _config_question(conn: RawConnection, name: str) -> Callable[[], str]:
    return lambda: _config_value(conn, name)


def _config_value(conn: RawConnection, name: str) -> str:
    reply = _list(conn.call("CONFIG", "GET", name))
    pairs = {_text(reply[i]): _text(reply[i + 1]) for i in range(0, len(reply) - 1, 2)}
    if name not in pairs:
        raise DataError(f"CONFIG GET {name}: the server has no such directive")
    return pairs[name]


def _node_info(endpoint: Endpoint, node: tuple[str, int], section: str) -> str | Refused:
    conn = connect(endpoint, node)
    try:
        return _asked("INFO", lambda: _text(conn.call("INFO", section)))
    finally:
        conn.close()


def _quorum(endpoint: Endpoint) -> int:
    """The quorum the first answering Sentinel has for the endpoint's primary."""
    import valkey

    failures = []
    for host, port in endpoint.hosts:
        try:
            with sentinel_client(endpoint, host, port) as sentinel:
                found = sentinel.sentinel_master(endpoint.primary_name)
            return int(found["quorum"])
        except (valkey.exceptions.ValkeyError, KeyError, TypeError, ValueError) as exc:
            failures.append(type(exc).__name__)
    raise DataError(f"no Sentinel answered SENTINEL MASTER ({', '.join(failures)})")
