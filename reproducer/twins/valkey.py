"""The Valkey side of every twin: a real fleet shaped like a cloud resource, kept in the twin world.

A Valkey-backed resource gets a :class:`~reproducer.sandbox.fleet.Fleet` in ``world.fleet_dir(type, id)``:
standalone, a primary with replicas, or a cluster of N shards x R replicas. Its processes run in sessions
of their own, so they outlive the provider process (Terraform starts one per command) and are found again
from the fleet's record. TLS certificates are signed by the world's one CA (``<world>/ca.pem``, standing in
for the cloud's CA); ACL users and configuration parameters are applied to every server through the
fleet's administrative connection, as arguments, never as configuration-file text.

Addresses are loopback: with a fixed ``port`` (the resource's own, such as 6379) each server listens on a
127.x.y.z address of its own; otherwise on 127.0.0.1 with a free port. Real clouds give DNS names.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from reproducer.errors import ReproducerError
from reproducer.procs import pid_alive
from reproducer.sandbox.fleet import ADMIN_USER, Engine, Fleet, FleetSpec, Node, Topology, hash_password
from reproducer.sandbox.tls import CaFiles, make_ca_files
from reproducer.twins.base import TwinError, TwinWorld

#: Configuration parameters that shape the fleet (topology, ports, TLS) and so cannot be set on a running server.
STRUCTURAL_PARAMETERS = frozenset({"cluster-enabled", "port", "tls-port", "bind", "dir", "daemonize"})
_ACL_TOKEN = re.compile(r"[\x21-\x7e]+")
_PARAMETER_NAME = re.compile(r"[a-z][a-z0-9-]{0,63}")


@dataclass(frozen=True)
class TwinUser:
    """An ACL user of a twin resource.

    Attributes:
        name: the user name (``default`` replaces Valkey's default user).
        rules: the whole ACL rule string, ``on``/``off`` included (``on ~app:* +@read``), as cloud access
            strings are; rules that set passwords are refused.
        password_hashes: SHA-256 hex of each accepted password (clouds allow two during a rotation); none
            means ``nopass``. Only hashes are kept, so a world's records hold no password.
    """

    name: str
    rules: str
    password_hashes: tuple[str, ...] = ()

    @classmethod
    def with_passwords(cls, name: str, rules: str, passwords: Sequence[str]) -> TwinUser:
        """A user whose passwords are given in clear (hashed here)."""
        return cls(name, rules, tuple(hash_password(p) for p in passwords))


@dataclass(frozen=True)
class ValkeyShape:
    """What a resource stands up.

    Attributes:
        shards: node groups; more than one needs ``cluster``.
        replicas: replicas per shard.
        cluster: cluster mode (slots split evenly over the shards).
        tls: servers speak only TLS, with certificates signed by the world CA.
        port: the port every server listens on (each on its own loopback address), or None for free ports.
        users: ACL users (``rules`` in ACL SETUSER syntax); a user named ``default`` replaces the default user.
        parameters: configuration parameters (name, value) set on every server.
        engine: the server engine, ``valkey`` or ``redis`` (Redis 7.0, for the clouds that run Redis).
    """

    shards: int = 1
    replicas: int = 0
    cluster: bool = False
    tls: bool = False
    port: int | None = None
    users: tuple[TwinUser, ...] = ()
    parameters: tuple[tuple[str, str], ...] = ()
    engine: Engine = "valkey"

    def fleet_spec(self, ca: CaFiles) -> FleetSpec:
        """The fleet to start (users and parameters are applied after the start)."""
        topology: Topology = "cluster" if self.cluster else "sentinel" if self.replicas else "standalone"
        return FleetSpec(
            topology=topology,
            shards=self.shards,
            replicas=self.replicas,
            sentinels=0,
            tls=self.tls,
            port=self.port,
            tls_ca_cert=str(ca.cert) if self.tls else None,
            tls_ca_key=str(ca.key) if self.tls else None,
            engine=self.engine,
        )


@dataclass(frozen=True)
class NodeAddress:
    """One server of a twin resource, as computed attributes show it."""

    host: str
    port: int
    role: str
    shard: int

    @property
    def address(self) -> str:
        """``host:port``."""
        return f"{self.host}:{self.port}"


def world_ca(world: TwinWorld) -> CaFiles:
    """The world's one CA (``<world>/ca.pem`` and ``ca.key``, 0600), made on first use under a lock."""
    files = CaFiles(world.root / "ca.pem", world.root / "ca.key")
    if files.cert.exists() and files.key.exists():
        return files
    with _locked(world):
        return make_ca_files(files, "reproducer twin CA")


@contextlib.contextmanager
def _locked(world: TwinWorld) -> Iterator[None]:
    world.root.mkdir(parents=True, exist_ok=True)
    with (world.root / ".lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def check_acl_rules(rules: str) -> list[str]:
    """The ACL rules of ``rules`` as tokens; a token that sets a password or is not printable is refused."""
    tokens = rules.split()
    for token in tokens:
        if not _ACL_TOKEN.fullmatch(token) or token[0] in "<>#!" or token.lower() in {"nopass", "resetpass"}:
            raise TwinError(f"invalid ACL rule {token[:40]!r}", "passwords are set through the user's passwords")
    return tokens


def start(world: TwinWorld, type_name: str, resource_id: str, shape: ValkeyShape) -> list[NodeAddress]:
    """Start the fleet of a resource, apply its users and parameters; return its servers' addresses.

    Raises:
        TwinError: a fleet already runs for that resource, a user or parameter is refused, or it cannot start.
    """
    if fleet_of(world, type_name, resource_id) is not None:
        raise TwinError(f"{type_name} {resource_id!r} already has a running Valkey")
    stop(world, type_name, resource_id)  # what is left of a fleet that died
    try:
        fleet = Fleet.start(shape.fleet_spec(world_ca(world)), root=world.fleet_dir(type_name, resource_id))
    except ReproducerError as exc:
        raise TwinError(f"the twin's Valkey could not start: {exc.message}") from exc
    try:
        apply_users(fleet, shape.users)
        apply_parameters(fleet, shape.parameters)
    except BaseException:
        fleet.stop()
        raise
    return addresses(fleet)


def fleet_of(world: TwinWorld, type_name: str, resource_id: str) -> Fleet | None:
    """The resource's fleet when every one of its processes is still running, else None."""
    directory = world.fleet_dir(type_name, resource_id)
    try:
        fleet = Fleet.attach(directory)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return fleet if fleet.alive() else None


def nodes(world: TwinWorld, type_name: str, resource_id: str) -> list[NodeAddress] | None:
    """The servers of a resource (primaries first, by shard), or None when its Valkey is gone."""
    fleet = fleet_of(world, type_name, resource_id)
    return None if fleet is None else addresses(fleet)


def addresses(fleet: Fleet) -> list[NodeAddress]:
    """The servers of a fleet, primaries first, each list in shard order."""
    servers = sorted(fleet.servers, key=lambda n: (n.role != "primary", n.shard))
    return [_address(n) for n in servers]


def _address(node: Node) -> NodeAddress:
    return NodeAddress(node.host, node.port, node.role, node.shard)


#: Valkey's own default user, restored when a resource stops naming one.
OPEN_DEFAULT_USER = TwinUser("default", "on ~* &* +@all")


def apply_users(fleet: Fleet, users: Sequence[TwinUser], previous: Sequence[str] = ()) -> None:
    """Create or replace ``users`` on every server; delete those of ``previous`` no longer listed.

    A ``default`` user no longer listed gets Valkey's open default back. Raises TwinError when a rule is refused.
    """
    wanted = {u.name for u in users}
    if ADMIN_USER in wanted:
        raise TwinError(f"InvalidParameterValue: the user name {ADMIN_USER} is reserved by the twin")
    import valkey  # valkey-py only where servers are changed: a provider that only plans never loads it

    gone = [name for name in previous if name not in wanted]
    restore = [OPEN_DEFAULT_USER] if "default" in gone else []
    try:
        for user in [*users, *restore]:
            secrets = [f"#{h}" for h in user.password_hashes] or ["nopass"]
            for node in fleet.servers:
                fleet.admin(node, "ACL", "SETUSER", user.name, "reset", *secrets, *check_acl_rules(user.rules))
        for name in gone:
            if name != "default":
                fleet.delete_user(name)
    except valkey.ResponseError as exc:
        raise TwinError(f"InvalidParameterValue: {exc}") from exc


def apply_parameters(fleet: Fleet, parameters: Sequence[tuple[str, str]]) -> None:
    """Set each configuration parameter on every server (structural ones are skipped: the shape holds them)."""
    import valkey

    for name, value in parameters:
        if not _PARAMETER_NAME.fullmatch(name):
            raise TwinError(f"InvalidParameterValue: invalid parameter name {name[:64]!r}")
        if name in STRUCTURAL_PARAMETERS:
            continue
        try:
            fleet.set_config(name, value)
        except valkey.ResponseError as exc:
            raise TwinError(f"InvalidParameterValue: {name}: {exc}") from exc


def stop(world: TwinWorld, type_name: str, resource_id: str) -> None:
    """Stop the resource's fleet by its record (every pid it started) and remove its directory."""
    directory = world.fleet_dir(type_name, resource_id)
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        Fleet.attach(directory).stop()


def _fleet_records(world: TwinWorld) -> list[Path]:
    return sorted((world.root / "fleets").glob("*/*/fleet.json"))


def running_pids(world: TwinWorld) -> list[int]:
    """Pids of the world's Valkey processes still alive."""
    pids: list[int] = []
    for record in _fleet_records(world):
        with contextlib.suppress(OSError, ValueError):
            pids += [int(n["pid"]) for n in json.loads(record.read_text())["nodes"] if n.get("pid")]
    return sorted(p for p in pids if p > 0 and p != os.getpid() and pid_alive(p))


def stop_all(world: TwinWorld) -> None:
    """Stop every fleet of the world (teardown); records of applied resources are left as they are."""
    for record in _fleet_records(world):
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            Fleet.attach(record.parent).stop()
