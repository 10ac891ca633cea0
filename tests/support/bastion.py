"""A bastion host with a private network behind it, and a TLS Valkey cluster on that network.

Built on the test hosts (``tests/hosts/testhosts.py``): host ``h1`` is the bastion (sshd, reachable from this
namespace over the bridge), ``h2`` a jump host. Inside h1's network namespace its loopback carries
``10.99.0.1``-``10.99.0.7`` (``/32`` each), which this namespace cannot reach (its default route may lead to a
gateway that accepts any connection, so tests check that no Valkey answers); ``valkey-server`` processes bound
there (``ip netns exec``) form a 3 x 1 TLS cluster (all on port 6379: only a (host, port) map tells them apart), and
``10.99.0.7`` is a spare node outside the cluster, for a reshard that moves slots to a node the copy has not seen.
Everything dies with the hosts (:meth:`Bastion.down`).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from reproducer.sandbox.tls import make_tls_files
from tests.hosts.testhosts import TestHosts, missing_tools, pick_subnet, pid_alive, sh
from tests.support.wait import eventually

NETWORK = "10.99.0"
PORT = 6379
PASSWORD = "bastion-cluster-pw"
PRIMARIES, SPARE = 3, 7
NODES = [f"{NETWORK}.{i}" for i in range(1, 7)]
SPARE_NODE = f"{NETWORK}.{SPARE}"
FAMILY = "rb"  # not the host tier's "rh": a process may run both


def _die_with_parent() -> None:
    """Popen preexec: SIGKILL the child when the test process dies."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)


def skip_reason() -> str | None:
    """Why the bastion tests cannot run here (None when they can)."""
    if os.geteuid() != 0:
        return "the bastion tests need root (network namespaces, sshd)"
    missing = missing_tools()
    return f"the bastion tests need {', '.join(missing)}" if missing else None


@dataclass
class Bastion:
    """The bastion, its jump host, the private cluster and the files a client needs (keys, known_hosts, CA)."""

    hosts: TestHosts
    tls_dir: Path

    @property
    def ip(self) -> str:
        """The bastion's address on the bridge."""
        return self.hosts.host("h1").ip

    @property
    def jump_ip(self) -> str:
        """The jump host's address on the bridge."""
        return self.hosts.host("h2").ip

    @property
    def netns(self) -> str:
        """The bastion's network namespace (the private network lives there)."""
        return self.hosts.host("h1").netns

    def via(self, **query: str) -> str:
        """A ``--via`` URL for the bastion with the test key and known_hosts (``query`` adds or overrides)."""
        options = {"identity": str(self.hosts.keys / "client"), "known_hosts": str(self.hosts.known_hosts)} | query
        return f"ssh://root@{self.ip}?" + "&".join(f"{k}={v}" for k, v in options.items())

    def cluster_url(self) -> str:
        """The cluster's endpoint URL as the bastion sees it (password in ``BASTION_PW``)."""
        return f"valkeys+cluster://{NETWORK}.1:{PORT}?password_env=BASTION_PW&ca={self.tls_dir / 'ca.crt'}"

    def cli(self, node: str, *args: str, check: bool = True) -> str:
        """``valkey-cli`` against ``node`` from inside the private network; its output."""
        argv = ["valkey-cli", "--tls", "--cacert", str(self.tls_dir / "ca.crt"), "-h", node, "-p", str(PORT)]
        done = sh(*argv, "--no-auth-warning", "-a", PASSWORD, *args, netns=self.netns, check=False)
        if check and (done.returncode != 0 or done.stdout.startswith(("ERR", "(error)"))):
            raise AssertionError(f"valkey-cli {' '.join(args)} on {node}: {done.stdout} {done.stderr}")
        return done.stdout

    def start_node(self, address: str) -> None:
        """A cluster-enabled TLS valkey-server bound to ``address`` on the private network."""
        data = self.hosts.base / "nodes" / address
        data.mkdir(parents=True, exist_ok=True)
        tls = self.tls_dir
        argv = [
            "valkey-server", "--bind", address, "--port", "0", "--tls-port", str(PORT),
            "--tls-cert-file", str(tls / "server.crt"), "--tls-key-file", str(tls / "server.key"),
            "--tls-ca-cert-file", str(tls / "ca.crt"), "--tls-auth-clients", "no", "--tls-cluster", "yes",
            "--tls-replication", "yes", "--cluster-enabled", "yes", "--cluster-config-file", str(data / "nodes.conf"),
            "--cluster-node-timeout", "2000", "--dir", str(data), "--save", "", "--appendonly", "no",
            "--requirepass", PASSWORD, "--masterauth", PASSWORD, "--notify-keyspace-events", "KA",
            "--cluster-announce-ip", address,  # all share h1's loopback: the source address says nothing
        ]  # fmt: skip
        log = (data / "server.log").open("ab")
        with log:
            subprocess.Popen(
                ["ip", "netns", "exec", self.netns, *argv],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - prctl only
            )
        eventually(lambda: "PONG" in self.cli(address, "PING", check=False), f"valkey-server on {address}")

    def create_cluster(self) -> None:
        """Start the six nodes and the spare; make the 3 x 1 cluster of the six and wait until it is ok."""
        for node in [*NODES, SPARE_NODE]:
            self.start_node(node)
        addresses = [f"{node}:{PORT}" for node in NODES]
        self.cli(NODES[0], "--cluster", "create", *addresses, "--cluster-replicas", "1", "--cluster-yes")
        eventually(self.cluster_ok, "the cluster to be ok", timeout=30)

    def node_id(self, node: str) -> str:
        """The cluster node id of ``node``."""
        return self.cli(node, "CLUSTER", "MYID").strip()

    def primaries(self) -> list[str]:
        """The addresses of the cluster's current primaries (from CLUSTER NODES)."""
        lines = self.cli(NODES[0], "CLUSTER", "NODES").splitlines()
        return sorted(line.split()[1].split(":")[0] for line in lines if "master" in line.split()[2])

    def cluster_ok(self) -> bool:
        """Whether every node of the cluster says ``cluster_state:ok`` and agrees on the primaries."""
        states = [self.cli(node, "CLUSTER", "INFO", check=False) for node in NODES]
        return all("cluster_state:ok" in state for state in states)

    def flush(self) -> None:
        """Empty every primary (the spare too, when it holds slots)."""
        for node in self.primaries():
            self.cli(node, "FLUSHALL")

    def down(self) -> None:
        """Stop everything: hosts, the cluster (it lives in h1's namespace), files."""
        self.hosts.down()


def start_bastion(base: Path) -> Bastion:
    """Bring up the bastion, the jump host, the private network and the cluster (not yet created)."""
    _sweep_stale()
    prefix = f"{FAMILY}{os.getpid()}"[:8]
    hosts = TestHosts(2, prefix, pick_subnet("10.233", os.getpid() % 256), base / "hosts", tie_to_parent=True).up()
    try:
        for i in [*range(1, 7), SPARE]:  # on h1's loopback: this machine may lack the dummy link type
            sh("ip", "-n", hosts.host("h1").netns, "addr", "add", f"{NETWORK}.{i}/32", "dev", "lo")
        tls_dir = base / "tls"
        make_tls_files(tls_dir, hosts=[*NODES, SPARE_NODE])
    except BaseException:
        hosts.down()
        raise
    return Bastion(hosts, tls_dir)


def _sweep_stale() -> None:
    """Remove the bastion sets whose owning test process is gone."""
    listed = sh("ip", "netns", "list", check=False).stdout
    owners = {m[1] for m in re.finditer(rf"^({FAMILY}(\d+))-h\d+", listed, re.MULTILINE)}
    for prefix in owners:
        if not pid_alive(int(prefix[len(FAMILY) :])):
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                TestHosts.sweep(prefix)
