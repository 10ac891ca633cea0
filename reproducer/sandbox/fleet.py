"""Start and stop local Valkey topologies on free loopback ports.

A :class:`Fleet` is a standalone server, a primary with replicas watched by Sentinels, or a cluster of
N shards x R replicas. Options add TLS (a throwaway CA made at start, or certificates signed by a given
CA), an ACL user per entry of ``FleetSpec.users``, a fixed port (each server then listens on its own
loopback address, 127.x.y.z, as each node of a cloud service has its own host), and ``ovh_like``: the
commands OVHcloud disables on its managed Valkey are renamed to a secret name known only to the fleet, so
clients get ``unknown command`` exactly as on OVH while the sandbox itself can still administer the servers.

Every process is started by the fleet, recorded by pid, and stopped by pid at teardown; the fleet's
directory is removed with it.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import shutil
import socket
import subprocess
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from reproducer.catalog import DISABLED_COMMANDS
from reproducer.errors import SandboxError
from reproducer.procs import child_env, free_port, pid_alive, stop_pid, wait_until
from reproducer.sandbox.tls import CaFiles, TlsFiles, make_tls_files

if TYPE_CHECKING:  # valkey-py only where a client is made: a twin provider that starts no server never loads it
    import valkey

Topology = Literal["standalone", "sentinel", "cluster"]
Role = Literal["primary", "replica", "sentinel"]

#: OVH offers no cluster mode; a sandbox cluster keeps what cluster clients need to route keys.
_CLUSTER_CLIENT_COMMANDS = frozenset({"CLUSTER", "COMMAND"})
_REPLICA: Role = "replica"
SENTINEL_PRIMARY_NAME = "mymaster"
ADMIN_USER = "reproducer-sandbox-admin"
CLUSTER_SLOTS = 16384
_BUS_PORT_OFFSET = 10000
_START_TIMEOUT = 15.0
LOOPBACK = "127.0.0.1"
#: The server engines a fleet can run: Valkey 8 (bookworm-backports) or Redis 7.0 (bookworm), for the twins of
#: Redis-only clouds and cross-engine copies. Both read the same configuration directives the fleet writes.
Engine = Literal["valkey", "redis"]
_ENGINE_PACKAGES = {
    "valkey": "-t bookworm-backports valkey-server valkey-sentinel valkey-tools",
    "redis": "redis-server redis-tools",
}


@dataclass(frozen=True)
class AclUser:
    """An ACL user to create on every server: ``rules`` in ACL SETUSER syntax (``~* &* +@all``)."""

    name: str
    password: str
    rules: str = "~* &* +@all"


@dataclass(frozen=True)
class FleetSpec:
    """What to start. ``replicas`` is per shard; ``shards`` only matters for a cluster.

    ``port``: every server listens on this port, each on a loopback address of its own (default: free ports on
    127.0.0.1). ``tls_ca_cert``/``tls_ca_key``: the CA that signs the fleet's certificates (default: a new one).
    ``engine``: ``valkey`` (Valkey 8) or ``redis`` (Redis 7.0, the engine of Redis-only clouds).
    """

    topology: Topology = "standalone"
    shards: int = 1
    replicas: int = 0
    sentinels: int = 1
    tls: bool = False
    ovh_like: bool = False
    users: tuple[AclUser, ...] = ()
    default_user_password: str | None = None
    maxmemory: str | None = None
    port: int | None = None
    tls_ca_cert: str | None = None
    tls_ca_key: str | None = None
    engine: Engine = "valkey"

    def __post_init__(self) -> None:
        if self.topology == "standalone" and (self.replicas or self.shards != 1):
            raise SandboxError("a standalone fleet has one server", hint="use topology 'sentinel' or 'cluster'")
        if self.topology == "cluster" and self.shards < 1:
            raise SandboxError("a cluster needs at least one shard", hint="pass shards >= 1")


@dataclass
class Node:
    """One process of the fleet."""

    role: Role
    port: int
    shard: int
    directory: str
    pid: int = 0
    host: str = LOOPBACK

    @property
    def address(self) -> str:
        """``host:port`` of this node on loopback."""
        return f"{self.host}:{self.port}"


@dataclass
class _State:
    spec: FleetSpec
    root: str
    admin_password: str
    rename_token: str
    nodes: list[Node] = field(default_factory=list)


class Fleet:
    """A running set of valkey-server (and valkey-sentinel) processes; see the module docstring."""

    def __init__(self, state: _State) -> None:
        self._state = state
        self._admin_clients: dict[str, Any] = {}  # valkey.Valkey, whose methods are untyped

    # ---- lifecycle -------------------------------------------------------------------------------

    @classmethod
    def start(cls, spec: FleetSpec, root: Path | None = None) -> Fleet:
        """Start the topology ``spec`` describes under ``root`` (a fresh temporary directory by default)."""
        _require_binary(spec.engine)
        directory = Path(root) if root else Path(tempfile.mkdtemp(prefix="reproducer-fleet-"))
        directory.mkdir(parents=True, exist_ok=True)
        directory.chmod(0o700)
        state = _State(spec, str(directory), secrets.token_hex(24), secrets.token_hex(8))
        fleet = cls(state)
        try:
            fleet._start_all()
        except BaseException:
            fleet.stop()
            raise
        fleet._save()
        return fleet

    @classmethod
    def attach(cls, root: Path) -> Fleet:
        """Re-attach to a fleet started earlier (possibly by another process) from its ``fleet.json``."""
        raw = json.loads((Path(root) / "fleet.json").read_text())
        spec_raw = raw.pop("spec")
        spec_raw["users"] = tuple(AclUser(**u) for u in spec_raw["users"])
        nodes = [Node(**n) for n in raw.pop("nodes")]
        return cls(_State(spec=FleetSpec(**spec_raw), nodes=nodes, **raw))

    def stop(self) -> None:
        """Stop every process this fleet started, by pid, and remove its directory."""
        self._close_admin_clients()
        for node in reversed(self._state.nodes):
            if node.pid:
                stop_pid(node.pid)
        shutil.rmtree(self._state.root, ignore_errors=True)

    def _close_admin_clients(self) -> None:
        clients, self._admin_clients = self._admin_clients, {}
        for conn in clients.values():
            conn.close()

    def alive(self) -> bool:
        """Whether every process of the fleet is still running."""
        return all(pid_alive(n.pid) for n in self._state.nodes)

    def __enter__(self) -> Fleet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- what is running -------------------------------------------------------------------------

    @property
    def spec(self) -> FleetSpec:
        """The spec this fleet was started from."""
        return self._state.spec

    @property
    def root(self) -> Path:
        """The fleet's directory (configs, logs, TLS files, data)."""
        return Path(self._state.root)

    @property
    def nodes(self) -> list[Node]:
        """Every process, servers first, then Sentinels."""
        return list(self._state.nodes)

    @property
    def servers(self) -> list[Node]:
        """The valkey-server processes (primaries and replicas)."""
        return [n for n in self._state.nodes if n.role != "sentinel"]

    @property
    def sentinels(self) -> list[Node]:
        """The Sentinel processes."""
        return [n for n in self._state.nodes if n.role == "sentinel"]

    @property
    def primary(self) -> Node:
        """The first primary as started (the data endpoint of a standalone or Sentinel fleet)."""
        return next(n for n in self._state.nodes if n.role == "primary")

    @property
    def tls_files(self) -> TlsFiles | None:
        """The TLS files clients need, when the fleet runs TLS."""
        if not self.spec.tls:
            return None
        tls_dir = self.root / "tls"
        return TlsFiles(*(tls_dir / n for n in ("ca.crt", "server.crt", "server.key", "client.crt", "client.key")))

    def disabled_commands(self) -> tuple[str, ...]:
        """The commands clients cannot call on this fleet (empty unless ``ovh_like``)."""
        if not self.spec.ovh_like:
            return ()
        keep = _CLUSTER_CLIENT_COMMANDS if self.spec.topology == "cluster" else frozenset()
        return tuple(c for c in DISABLED_COMMANDS if c not in keep)

    def admin_name(self, command: str) -> str:
        """The name under which the fleet itself reaches ``command`` (renamed when disabled)."""
        command = command.upper()
        return f"{command}-{self._state.rename_token}" if command in self.disabled_commands() else command

    # ---- clients and administration -------------------------------------------------------------

    def client(self, node: Node, *, username: str | None = None, password: str | None = None) -> valkey.Valkey:
        """A valkey-py client on ``node``: the sandbox admin unless a user is given."""
        import valkey

        if node.role != "sentinel" and username is None:
            username, password = ADMIN_USER, self._state.admin_password
        return valkey.Valkey(
            host=node.host,
            port=node.port,
            username=username,
            password=password,
            socket_timeout=10,
            decode_responses=True,
            **self.tls_client_kwargs(),
        )

    def tls_client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments that make a valkey-py client speak TLS to this fleet (empty without TLS)."""
        files = self.tls_files
        if files is None:
            return {}
        return {"ssl": True, "ssl_ca_certs": str(files.ca_cert), "ssl_cert_reqs": "required"}

    def admin(self, node: Node, command: str, *args: object) -> Any:
        """Run an administrative ``command`` on ``node`` under its (possibly secret) name.

        The admin's connection to each node is kept (a TLS handshake each time made cluster starts slow); a
        connection found broken (the node restarted) is replaced once.
        """
        import valkey

        name = self.admin_name(command)
        conn = self._admin_clients.get(node.address)
        if conn is None:
            conn = self._admin_clients[node.address] = self.client(node)
        try:
            return conn.execute_command(name, *args)
        except valkey.ConnectionError:
            self._admin_clients.pop(node.address, None)
            conn.close()
        with self.client(node) as fresh:
            return fresh.execute_command(name, *args)

    def set_user(self, name: str, rules: str, *, password: str | None = None, password_hash: str | None = None) -> None:
        """Create or replace an ACL user on every server; give a password or its SHA-256 hex."""
        if password is not None:
            password_hash = hash_password(password)
        secret = f"#{password_hash}" if password_hash else "nopass"
        for node in self.servers:
            self.admin(node, "ACL", "SETUSER", name, "reset", "on", secret, *rules.split())

    def delete_user(self, name: str) -> None:
        """Remove an ACL user from every server."""
        for node in self.servers:
            self.admin(node, "ACL", "DELUSER", name)

    def set_config(self, name: str, value: str) -> None:
        """Set a server configuration parameter on every server (through the admin's CONFIG)."""
        for node in self.servers:
            self.admin(node, "CONFIG", "SET", name, value)

    def current_primary(self) -> Node:
        """The server the Sentinels currently name as primary (the first primary without Sentinels)."""
        if not self.sentinels:
            return self.primary
        with self.client(self.sentinels[0]) as sentinel:
            _host, port = sentinel.sentinel_get_master_addr_by_name(SENTINEL_PRIMARY_NAME)
        return next(n for n in self.servers if n.port == int(port))

    # ---- starting --------------------------------------------------------------------------------

    def _start_all(self) -> None:
        self._state.nodes = self._plan_nodes()
        if self.spec.tls:
            hosts = sorted({n.host for n in self._state.nodes})
            make_tls_files(self.root / "tls", ca=self._tls_ca(), hosts=hosts)
        for node in self.servers:
            self._launch(node)
        if self.spec.topology == "cluster":
            self._form_cluster()
        for node in self.sentinels:
            self._launch(node)
        self._wait_replication()
        if self.spec.topology == "cluster":
            wait_until(self._slots_complete, timeout=30, what="every node to list every replica in CLUSTER SLOTS")

    def _plan_nodes(self) -> list[Node]:
        offset = _BUS_PORT_OFFSET if self.spec.topology == "cluster" else None
        nodes: list[Node] = []
        for shard in range(self.spec.shards):
            roles: list[Role] = ["primary", *([_REPLICA] * self.spec.replicas)]
            nodes += [self._new_node(role, shard, offset) for role in roles]
        if self.spec.topology == "sentinel":
            nodes += [self._new_node("sentinel", 0, None) for _ in range(self.spec.sentinels)]
        return nodes

    def _tls_ca(self) -> CaFiles | None:
        cert, key = self.spec.tls_ca_cert, self.spec.tls_ca_key
        return CaFiles(Path(cert), Path(key)) if cert and key else None

    def _new_node(self, role: Role, shard: int, offset: int | None) -> Node:
        if self.spec.port is not None and role != "sentinel":
            host, port = free_loopback_host(self.spec.port, offset), self.spec.port
            directory = self.root / f"{role}-{host}-{port}"
        else:
            host, port = LOOPBACK, free_port(also_free_at_offset=offset)
            directory = self.root / f"{role}-{port}"
        directory.mkdir()
        return Node(role=role, port=port, shard=shard, directory=str(directory), host=host)

    def _launch(self, node: Node) -> None:
        conf = Path(node.directory) / "valkey.conf"
        conf.write_text(self._config_text(node))
        conf.chmod(0o600)
        argv = [f"{self.spec.engine}-server", str(conf)] + (["--sentinel"] if node.role == "sentinel" else [])
        log = (Path(node.directory) / "valkey.log").open("ab")
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=child_env())
        log.close()
        node.pid = proc.pid
        self._save()
        try:
            wait_until(
                lambda: self._answers(node, proc),
                timeout=_START_TIMEOUT,
                what=f"{node.role} on {node.address}",
            )
        except SandboxError as exc:
            raise SandboxError(f"{exc.message}; last log lines: {self._log_tail(node)}") from exc

    def _answers(self, node: Node, proc: subprocess.Popen[bytes]) -> bool:
        if proc.poll() is not None:
            raise SandboxError(f"{node.role} on {node.address} exited at start: {self._log_tail(node)}")
        with self.client(node) as conn:
            return bool(conn.ping())

    def _log_tail(self, node: Node) -> str:
        log = Path(node.directory) / "valkey.log"
        lines = log.read_text(errors="replace").splitlines() if log.exists() else []
        return " | ".join(lines[-5:])

    def _config_text(self, node: Node) -> str:
        lines = self._common_config(node)
        lines += self._sentinel_config() if node.role == "sentinel" else self._server_config(node)
        return "\n".join(lines) + "\n"

    def _common_config(self, node: Node) -> list[str]:
        lines = [
            f"bind {node.host}",
            "protected-mode no",
            "daemonize no",
            f'dir "{node.directory}"',
            'logfile ""',
        ]
        if not self.spec.tls:
            return [*lines, f"port {node.port}"]
        tls = self.tls_files
        assert tls is not None
        return [
            *lines,
            "port 0",
            f"tls-port {node.port}",
            f'tls-cert-file "{tls.server_cert}"',
            f'tls-key-file "{tls.server_key}"',
            f'tls-ca-cert-file "{tls.ca_cert}"',
            "tls-auth-clients optional",
            "tls-replication yes",
            "tls-cluster yes",
        ]

    def _server_config(self, node: Node) -> list[str]:
        lines = [
            'save ""',
            "appendonly no",
            "repl-diskless-sync-delay 0",
            "repl-ping-replica-period 1",
            f"user {ADMIN_USER} on #{hash_password(self._state.admin_password)} ~* &* +@all",
        ]
        lines.append(_default_user_line(self.spec.default_user_password))
        lines += [f"user {u.name} on #{hash_password(u.password)} {u.rules}" for u in self.spec.users]
        lines += [f"rename-command {c} {self.admin_name(c)}" for c in self.disabled_commands()]
        if self.spec.maxmemory:
            lines.append(f"maxmemory {self.spec.maxmemory}")
        if node.host != LOOPBACK:  # peers must see this node's own address, not the kernel's pick of 127.0.0.1
            lines += [f"bind-source-addr {node.host}"]
        if self.spec.topology == "cluster":
            lines += ["cluster-enabled yes", "cluster-config-file nodes.conf", "cluster-node-timeout 3000"]
            lines += [f"cluster-announce-ip {node.host}"] if node.host != LOOPBACK else []
        elif node.role == "replica":
            lines += [f"replicaof {self.primary.host} {self.primary.port}", f"masteruser {ADMIN_USER}"]
            lines.append(f"masterauth {self._state.admin_password}")
        return lines

    def _sentinel_config(self) -> list[str]:
        name, primary = SENTINEL_PRIMARY_NAME, self.primary
        quorum = len(self.sentinels) // 2 + 1
        lines = [
            f"sentinel monitor {name} {primary.host} {primary.port} {quorum}",
            f"sentinel auth-user {name} {ADMIN_USER}",
            f"sentinel auth-pass {name} {self._state.admin_password}",
            f"sentinel down-after-milliseconds {name} 2000",
            f"sentinel failover-timeout {name} 10000",
        ]
        return lines + [f"sentinel rename-command {name} {c} {self.admin_name(c)}" for c in self.disabled_commands()]

    def _form_cluster(self) -> None:
        first, servers = self.servers[0], self.servers
        for node in servers[1:]:
            self.admin(first, "CLUSTER", "MEET", node.host, node.port, node.port + _BUS_PORT_OFFSET)
        wait_until(lambda: self._all_known(len(servers)), timeout=_START_TIMEOUT, what="cluster nodes to meet")
        primaries = [n for n in servers if n.role == "primary"]
        for shard, node in enumerate(primaries):
            start, end = slot_range(shard, len(primaries))
            self.admin(node, "CLUSTER", "ADDSLOTSRANGE", start, end)
        for node in servers:
            if node.role == "replica":
                primary_id = self.admin(primaries[node.shard], "CLUSTER", "MYID")
                self.admin(node, "CLUSTER", "REPLICATE", primary_id)
        wait_until(self._cluster_ok, timeout=30, what="cluster_state:ok on every node")

    def _all_known(self, count: int) -> bool:
        return all(len(str(self.admin(n, "CLUSTER", "NODES")).strip().splitlines()) == count for n in self.servers)

    def _cluster_ok(self) -> bool:
        return all("cluster_state:ok" in str(self.admin(n, "CLUSTER", "INFO")) for n in self.servers)

    def _slots_complete(self) -> bool:
        """Whether every server's CLUSTER SLOTS names all servers (replicas are known once gossip spread)."""
        count = len(self.servers)
        return all(sum(len(r) - 2 for r in self.admin(n, "CLUSTER", "SLOTS")) == count for n in self.servers)

    def _wait_replication(self) -> None:
        replicas = [n for n in self.servers if n.role == "replica"]
        wait_until(lambda: all(self._replica_linked(n) for n in replicas), timeout=30, what="replicas to sync")
        sentinels = self.sentinels
        wait_until(
            lambda: all(map(self._sentinel_sees_replicas, sentinels)), timeout=30, what="Sentinels to see replicas"
        )

    def _replica_linked(self, node: Node) -> bool:
        with self.client(node) as conn:
            return bool(conn.info("replication").get("master_link_status") == "up")

    def _sentinel_sees_replicas(self, node: Node) -> bool:
        with self.client(node) as conn:
            return len(conn.sentinel_slaves(SENTINEL_PRIMARY_NAME)) == self.spec.replicas

    def _save(self) -> None:
        raw = asdict(self._state)
        path = self.root / "fleet.json"
        path.write_text(json.dumps(raw, indent=2, sort_keys=True))
        path.chmod(0o600)


def hash_password(password: str) -> str:
    """SHA-256 hex of a password, the form ACL rules accept after ``#``."""
    return hashlib.sha256(password.encode()).hexdigest()


def slot_range(shard: int, shards: int) -> tuple[int, int]:
    """First and last hash slot of ``shard`` when ``shards`` primaries split the 16384 slots evenly."""
    return shard * CLUSTER_SLOTS // shards, (shard + 1) * CLUSTER_SLOTS // shards - 1


def free_loopback_host(port: int, offset: int | None = None, *, attempts: int = 200) -> str:
    """A random loopback address (127.a.b.c, never 127.0.0.x) where ``port`` (and ``port + offset``) can be bound.

    Linux routes all of 127.0.0.0/8 to the loopback interface, so servers can share a port number on
    addresses of their own. Raises SandboxError when none is found (something listens on 0.0.0.0:port).
    """
    ports = [port] if offset is None else [port, port + offset]
    for _ in range(attempts):
        host = f"127.{secrets.randbelow(254) + 1}.{secrets.randbelow(256)}.{secrets.randbelow(254) + 1}"
        if all(_bindable(host, p) for p in ports):
            return host
    raise SandboxError(
        f"no loopback address found where port {port} is free",
        hint=f"something listens on 0.0.0.0:{port}: stop it, or use another port",
    )


def _bindable(host: str, port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _default_user_line(password: str | None) -> str:
    secret = f"#{hash_password(password)}" if password else "nopass"
    return f"user default on {secret} ~* &* +@all"


def _require_binary(engine: Engine) -> None:
    binary = f"{engine}-server"
    if shutil.which(binary) is None:
        raise SandboxError(
            f"{binary} is not installed",
            hint=f"run 'make setup', or as root: apt-get install {_ENGINE_PACKAGES[engine]}",
        )
