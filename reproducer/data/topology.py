"""Which nodes an endpoint has (primaries, replicas), and which node owns each hash slot."""

from __future__ import annotations

from binascii import crc_hqx
from dataclasses import dataclass, field
from typing import Any

from reproducer.data.endpoint import Endpoint, normalised, resolve_primary
from reproducer.data.resp import RawConnection
from reproducer.errors import DataError

SLOTS = 16384
Address = tuple[str, int]


@dataclass
class Layout:
    """The nodes of an endpoint: its primaries, their replicas, and (cluster) the slot owners."""

    cluster: bool
    primaries: list[Address]
    replicas: dict[Address, list[Address]] = field(default_factory=dict)
    slot_owner: list[int] = field(default_factory=list)
    #: Cluster node ids (every node of every shard): they survive restarts and name the cluster.
    node_ids: list[str] = field(default_factory=list)

    def node_for_key(self, key: bytes) -> Address:
        """The primary that owns ``key`` (the only primary when not a cluster)."""
        if not self.cluster:
            return self.primaries[0]
        return self.primaries[self.slot_owner[key_slot(key)]]


def owned_key(layout: Layout, node: Address, name: bytes) -> bytes:
    """``name`` as a key ``node`` owns: as is outside a cluster, else with the first ``{n}`` tag in its slots.

    A throw-away probe written to a node that does not own its slot is answered MOVED. A node that serves no
    slot (an entry point in front of the shards, as Azure's port 10000) gets ``name`` as is: its answer says where.
    """
    index = layout.primaries.index(node) if node in layout.primaries else -1
    if not layout.cluster or index not in layout.slot_owner:
        return name
    for tag in range(SLOTS * 64):  # each try lands on the node with the share of the slots it serves
        key = name + b":{%d}" % tag
        if layout.node_for_key(key) == node:
            return key
    return name


def key_slot(key: bytes) -> int:
    """The cluster hash slot of ``key`` (CRC16 of the ``{hash tag}`` when there is one)."""
    start = key.find(b"{")
    if start > -1:
        end = key.find(b"}", start + 1)
        if end > start + 1:
            key = key[start + 1 : end]
    return crc_hqx(key, 0) % SLOTS


#: How long a connection waits for a server's answer before it gives up (a retryable DataError).
READ_TIMEOUT_S = 60.0


def connect(endpoint: Endpoint, address: Address, *, timeout: float | None = None) -> RawConnection:
    """A raw connection to one node of ``endpoint`` with its credentials and TLS (``timeout``: READ_TIMEOUT_S)."""
    tls = endpoint.tls.context() if endpoint.tls else None
    route = endpoint.route
    return RawConnection(
        address[0],
        address[1],
        tls=tls,
        username=endpoint.username,
        password=endpoint.password,
        timeout=READ_TIMEOUT_S if timeout is None else timeout,
        dial=route.dial if route is not None else None,
        via=route.describe() if route is not None else "",
    )


def discover(endpoint: Endpoint) -> Layout:
    """The layout of ``endpoint``: asks Sentinel for the primary, and the cluster for its shards."""
    seed = resolve_primary(endpoint)
    conn = connect(endpoint, seed)
    try:
        if endpoint.kind == "cluster" or _cluster_enabled(conn):
            return _cluster_layout(conn, tls=endpoint.tls is not None)
        return Layout(cluster=False, primaries=[seed], replicas={seed: _replicas(conn)})
    finally:
        conn.close()


def identity(endpoint: Endpoint, layout: Layout) -> dict[str, Any]:
    """Who ``endpoint`` is, for checkpoints: its normalised endpoint, its cluster node ids or primary's run_id."""
    run_ids: list[str] = []
    if not layout.cluster:
        conn = connect(endpoint, layout.primaries[0])
        try:
            info = conn.call_bytes("INFO", "server").decode(errors="replace")
        except DataError:  # INFO denied: the endpoint alone identifies the server
            info = ""
        finally:
            conn.close()
        run_ids = [line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("run_id:")]
    return {"endpoint": normalised(endpoint), "cluster_ids": sorted(layout.node_ids), "run_ids": run_ids}


def _cluster_enabled(conn: RawConnection) -> bool:
    try:
        return b"cluster_enabled:1" in conn.call_bytes("INFO", "cluster")
    except DataError:  # INFO is in @dangerous, which managed services often deny: assume no cluster
        return False


def _replicas(conn: RawConnection) -> list[Address]:
    try:
        info = conn.call_bytes("INFO", "replication").decode()
    except DataError:
        return []
    found = []
    for line in info.splitlines():
        if line.startswith("slave") and "ip=" in line:
            fields = dict(part.split("=", 1) for part in line.split(":", 1)[1].split(","))
            found.append((fields["ip"], int(fields["port"])))
    return found


_MAX_PROBED_DBS = 16


def databases(conn: RawConnection) -> list[int]:
    """The databases holding keys on this node: from INFO keyspace, or by probing DBSIZE when INFO is denied."""
    try:
        keyspace = conn.call_bytes("INFO", "keyspace").decode()
    except DataError:
        return _probe_databases(conn)
    return [int(line.split(":")[0][2:]) for line in keyspace.splitlines() if line.startswith("db")] or [0]


def _probe_databases(conn: RawConnection) -> list[int]:
    found = []
    for db in range(_MAX_PROBED_DBS):
        try:
            conn.select(db)
        except DataError:  # past the server's last database
            break
        if conn.call_int("DBSIZE"):
            found.append(db)
    conn.select(0)
    return found or [0]


def _cluster_layout(conn: RawConnection, *, tls: bool) -> Layout:
    try:
        shards = conn.call("CLUSTER", "SHARDS")
    except DataError as exc:
        raise DataError(
            f"cannot read the cluster's shards from {conn.address}: {exc.message}",
            hint="the user needs the CLUSTER SHARDS command (+cluster|shards)",
        ) from None
    layout = Layout(cluster=True, primaries=[], slot_owner=[-1] * SLOTS)
    for shard in shards if isinstance(shards, list) else []:
        _add_shard(layout, _pairs(shard), tls=tls)
    if -1 in layout.slot_owner:
        missing = layout.slot_owner.count(-1)
        raise DataError(
            f"{missing} hash slots of the cluster at {conn.address} have no primary",
            hint="wait for the cluster to be ok (CLUSTER INFO) and retry",
            retryable=True,
        )
    return layout


def _pairs(flat: Any) -> dict[str, Any]:
    return {bytes(flat[i]).decode(): flat[i + 1] for i in range(0, len(flat), 2)}


def _add_shard(layout: Layout, shard: dict[str, Any], *, tls: bool) -> None:
    nodes = [_pairs(n) for n in shard["nodes"]]
    layout.node_ids += [bytes(n["id"]).decode() for n in nodes if n.get("id")]
    primary = next((n for n in nodes if n.get("role") == b"master" and n.get("health") != b"fail"), None)
    if primary is None:
        return
    address = _node_address(primary, tls=tls)
    index = len(layout.primaries)
    layout.primaries.append(address)
    layout.replicas[address] = [
        _node_address(n, tls=tls) for n in nodes if n is not primary and n.get("health") == b"online"
    ]
    slots = shard["slots"]
    for i in range(0, len(slots), 2):
        for slot in range(int(slots[i]), int(slots[i + 1]) + 1):
            layout.slot_owner[slot] = index


def _node_address(node: dict[str, Any], *, tls: bool) -> Address:
    port: Any = node.get("tls-port") if tls and node.get("tls-port") else node.get("port")
    host: Any = node.get("endpoint")
    if not host or host == b"?":
        host = node.get("ip")
    return bytes(host).decode(), int(port)
