"""``--via ssh://``: copy, verify and follow into a TLS cluster that only a bastion can reach (real sshd, real Valkey).

One bastion and one cluster for the module (``tests/support/bastion.py``): the cluster's six nodes all listen on
port 6379 of private addresses behind the bastion; the source is a local server. Skipped, with the reason, when
this machine is not root or lacks sshd.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import valkey

from reproducer.data.copy import CopyOptions, copy
from reproducer.data.endpoint import node_client, parse_endpoint
from reproducer.data.topology import discover
from reproducer.data.verify import VerifyOptions, verify
from reproducer.errors import DataError
from reproducer.pipeline import data as pipeline_data
from reproducer.sandbox.fleet import Fleet, FleetSpec
from reproducer.sandbox.seed import load_dataset
from reproducer.twins import install_twins, running_processes, stop_all, trusted_ca
from tests.support import cli
from tests.support.bastion import NODES, PASSWORD, PORT, SPARE_NODE, Bastion, skip_reason, start_bastion
from tests.support.fleets import plain_url
from tests.support.ovh import leftovers, ovh_env, service_fleet
from tests.support.pool import workers_of
from tests.support.wait import eventually

#: The CLI's TMPDIR in this module (made and removed by the ``bastion`` fixture): its tunnels' private directories
#: land there, so a check for leftovers sees this module's tunnels only, not those of tests running beside it.
TUNNELS = Path("/tmp") / f"reproducer-bastion-tests-{os.getpid()}"
ENV = {**os.environ, "BASTION_PW": PASSWORD, "TMPDIR": str(TUNNELS)}
#: One bastion per module: in a parallel run every test of it goes to the same worker.
pytestmark = pytest.mark.xdist_group("bastion")


@pytest.fixture(scope="module")
def bastion(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bastion]:
    """The bastion, its jump host and the private 3 x 1 TLS cluster, for the module; nothing is left after."""
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    made = start_bastion(tmp_path_factory.mktemp("bastion"))
    _BASTION_BASE[:] = [made.hosts.keys]
    TUNNELS.mkdir(mode=0o700)
    try:
        made.create_cluster()
        yield made
    finally:
        made.down()
        shutil.rmtree(TUNNELS, ignore_errors=True)
    assert not made.hosts.leftovers()


@pytest.fixture(scope="module")
def source() -> Iterator[Fleet]:
    """A local server (as the sandbox runs them) with keyspace notifications on, for --follow."""
    with Fleet.start(FleetSpec()) as fleet:
        fleet.set_config("notify-keyspace-events", "KA")
        yield fleet


@pytest.fixture
def empty(bastion: Bastion, source: Fleet) -> Bastion:
    """Both sides emptied before the test."""
    source.client(source.primary).flushall()
    bastion.flush()
    return bastion


def source_url(fleet: Fleet) -> str:
    return plain_url(fleet.servers[0].port)


def no_ssh_left() -> bool:
    """No ssh process for this bastion (a CLI's master would outlive it as an orphan), no private directory left."""
    marker = str(_BASTION_BASE[0]).encode() if _BASTION_BASE else b"\0"
    masters = [p for p in Path("/proc").iterdir() if p.name.isdigit() and _comm(int(p.name)) == "ssh" and
               marker in _cmdline(p)]  # fmt: skip
    return not masters and not list(TUNNELS.glob("reproducer-ssh-*"))


def _cmdline(proc: Path) -> bytes:
    try:
        return (proc / "cmdline").read_bytes()
    except OSError:
        return b""


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


_BASTION_BASE: list[Path] = []


def answers(bastion: Bastion, node: str) -> bool:
    """Whether the Valkey node answers from this namespace (TLS with the cluster's CA, then PING)."""
    context = ssl.create_default_context(cafile=str(bastion.tls_dir / "ca.crt"))
    try:
        with (
            socket.create_connection((node, PORT), timeout=2) as raw,
            context.wrap_socket(raw, server_hostname=node) as conn,
        ):
            conn.sendall(b"PING\r\n")
            return conn.recv(64).startswith((b"+PONG", b"-NOAUTH"))
    except OSError:  # refused, reset, timed out, or a gateway that accepts anything but is not the node
        return False


def test_the_cluster_is_unreachable_without_the_bastion(bastion: Bastion) -> None:
    assert bastion.cli(NODES[0], "PING").strip() == "PONG"  # it is up, on its private network
    for node in (*NODES, SPARE_NODE):
        assert not answers(bastion, node)


def test_copy_verify_and_follow_through_the_bastion_are_identical(empty: Bastion, source: Fleet, tmp_path) -> None:
    load_dataset(source.client(source.primary), 3000)
    target = empty.cluster_url()
    copied = cli.run(
        "copy", source_url(source), target, "--target-via", empty.via(), "--run-dir", tmp_path / "run", env=ENV
    )
    assert copied.returncode == 0, copied.stderr
    assert "source and target are identical" in copied.stderr
    keys = sum(int(empty.cli(node, "DBSIZE")) for node in empty.primaries())
    assert keys == 3000
    verified = cli.run("verify", source_url(source), target, "--target-via", empty.via(), "--json", env=ENV)
    assert verified.returncode == 0, verified.stderr
    assert '"compared": 3000' in verified.stdout
    assert no_ssh_left()


def test_follow_through_the_bastion_carries_later_writes(empty: Bastion, source: Fleet, tmp_path) -> None:
    client = source.client(source.primary)
    load_dataset(client, 500)
    following = cli.start(
        "copy", source_url(source), empty.cluster_url(), "--target-via", empty.via(), "--follow",
        "--run-dir", tmp_path / "run", env=ENV,
    )  # fmt: skip
    try:
        eventually(lambda: _followed(empty), "the bulk copy", timeout=60, proc=following)
        for i in range(50):
            client.set(f"later:{{{i % 7}}}:{i}", f"v{i}")
        client.delete("string:000001")
        eventually(lambda: _has(empty, "later:{6}:48"), "a later write to reach the target", timeout=30, proc=following)
    finally:
        following.send_signal(2)
    _, stderr = following.communicate(timeout=60)
    assert following.returncode == 0, stderr
    assert "source and target are identical" in stderr
    assert no_ssh_left()


def _followed(bastion: Bastion) -> bool:
    return sum(int(bastion.cli(node, "DBSIZE")) for node in bastion.primaries()) >= 500


def _has(bastion: Bastion, key: str) -> bool:
    return any(bastion.cli(node, "EXISTS", key, check=False).strip() == "1" for node in bastion.primaries())


def target_keys(bastion: Bastion) -> int:
    """Keys on the cluster's primaries."""
    return sum(int(bastion.cli(node, "DBSIZE", check=False) or 0) for node in bastion.primaries())


@contextlib.contextmanager
def copy_in_background(
    bastion: Bastion, source: Fleet, run_dir: Path, keys: int, rate: int
) -> Iterator[subprocess.Popen[str]]:
    """A rate-limited copy into the cluster through the bastion (``keys`` keys); killed if the test fails."""
    load_dataset(source.client(source.primary), keys)
    copying = cli.start(
        "copy", source_url(source), bastion.cluster_url(), "--target-via", bastion.via(),
        "--max-keys-per-second", str(rate), "--run-dir", run_dir, env=ENV,
    )  # fmt: skip
    try:
        yield copying
    finally:
        if copying.poll() is None:
            cli.kill_tree(copying.pid)
            copying.wait(10)


@pytest.mark.fault("cluster target behind an SSH bastion: a primary fails over mid-copy", ends="verify")
def test_a_primary_failing_over_mid_copy_loses_nothing(empty: Bastion, source: Fleet, tmp_path) -> None:
    with copy_in_background(empty, source, tmp_path / "run", 6000, 1500) as copying:
        eventually(lambda: target_keys(empty) >= 1000, "the copy to be under way", timeout=60, proc=copying)
        before = empty.primaries()
        replica = next(
            line.split()[1].split(":")[0]
            for line in empty.cli(NODES[0], "CLUSTER", "NODES").splitlines()
            if "slave" in line.split()[2]
        )
        empty.cli(replica, "CLUSTER", "FAILOVER")
        eventually(lambda: replica in empty.primaries(), "the replica to take over", timeout=30)
        assert not (tmp_path / "run" / "data" / "stats.json").exists(), "the copy ended before the failover"
        _, stderr = copying.communicate(timeout=120)
    assert copying.returncode == 0, stderr
    assert "source and target are identical" in stderr
    assert empty.primaries() != before
    assert no_ssh_left()


@pytest.mark.fault(
    "cluster target behind an SSH bastion: slots move mid-copy to a node first seen there", ends="verify"
)
def test_a_slot_moving_mid_copy_to_a_node_first_seen_through_the_tunnel(
    empty: Bastion, source: Fleet, tmp_path
) -> None:
    with copy_in_background(empty, source, tmp_path / "run", 9000, 450) as copying:  # 20 s: a loaded reshard takes 10
        eventually(lambda: target_keys(empty) >= 1000, "the copy to be under way", timeout=60, proc=copying)
        empty.cli(NODES[0], "CLUSTER", "MEET", SPARE_NODE, str(PORT))
        eventually(lambda: SPARE_NODE in empty.cli(NODES[1], "CLUSTER", "NODES"), "the spare to join", timeout=20)
        spare_ok = lambda: "cluster_state:ok" in empty.cli(SPARE_NODE, "CLUSTER", "INFO")  # noqa: E731
        eventually(lambda: empty.cluster_ok() and spare_ok(), "the cluster to agree", timeout=20)
        donor = empty.node_id(empty.primaries()[0])
        empty.cli(
            NODES[0], "--cluster", "reshard", f"{NODES[0]}:{PORT}", "--cluster-from", donor,
            "--cluster-to", empty.node_id(SPARE_NODE), "--cluster-slots", "100", "--cluster-yes",
        )  # fmt: skip
        assert not (tmp_path / "run" / "data" / "stats.json").exists(), "the copy ended before the reshard"
        _, stderr = copying.communicate(timeout=120)
    assert copying.returncode == 0, stderr
    assert "source and target are identical" in stderr
    assert SPARE_NODE in empty.primaries() and int(empty.cli(SPARE_NODE, "DBSIZE")) > 0
    assert no_ssh_left()


def masters() -> list[int]:
    """Pids of the ssh control masters of this bastion."""
    marker = str(_BASTION_BASE[0]).encode()
    return [
        int(p.name)
        for p in Path("/proc").iterdir()
        if p.name.isdigit() and _comm(int(p.name)) == "ssh" and marker in _cmdline(p) and b"-M" in _cmdline(p)
    ]


def _one_master_other_than(first: int) -> bool:
    now = masters()
    return len(now) == 1 and now != [first]


def _kill_masters() -> None:
    for pid in masters():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.fault("the SSH connection to the bastion is lost mid-copy (master killed)", ends="verify")
def test_a_lost_ssh_connection_mid_copy_is_made_again(empty: Bastion, source: Fleet, tmp_path) -> None:
    with copy_in_background(empty, source, tmp_path / "run", 4000, 1000) as copying:
        eventually(lambda: target_keys(empty) >= 800, "the copy to be under way", timeout=60, proc=copying)
        [first] = masters()
        os.kill(first, signal.SIGKILL)  # as when the bastion drops the connection
        eventually(lambda: masters() and masters() != [first], "a new master", timeout=30, proc=copying)
        _, stderr = copying.communicate(timeout=120)
    assert copying.returncode == 0, stderr
    assert "source and target are identical" in stderr
    assert no_ssh_left()


@pytest.mark.fault("a cluster source behind the bastion: its SSH connection is lost mid-copy", ends="verify")
def test_a_cluster_source_behind_the_bastion_is_copied_by_one_worker_per_primary(
    empty: Bastion, source: Fleet, tmp_path
) -> None:
    load_dataset(source.client(source.primary), 3000)
    filled = cli.run("copy", source_url(source), empty.cluster_url(), "--target-via", empty.via(), "--no-verify",
                     "--run-dir", tmp_path / "fill", env=ENV)  # fmt: skip
    assert filled.returncode == 0, filled.stderr
    source.client(source.primary).flushall()
    copying = cli.start("copy", empty.cluster_url(), source_url(source), "--source-via", empty.via(),
                        "--max-keys-per-second", "250", "--run-dir", tmp_path / "run", env=ENV)  # fmt: skip
    try:  # about 1,000 keys a primary at 250 keys/s each: 4 s
        local = source.client(source.primary)
        eventually(lambda: local.dbsize() >= 300, "the copy to be under way", timeout=60, proc=copying)
        assert len(workers_of(copying.pid)) == 3, "one worker process per source primary"
        [first] = masters()
        os.kill(first, signal.SIGKILL)  # the workers' forwards end with it: the copier starts a new one for them
        # one reading of /proc a check: a master that is starting or ending may show in one reading and not the next
        eventually(lambda: _one_master_other_than(first), "one new master", timeout=30, proc=copying)
        assert len(masters()) <= 1, "the workers share the copier's one master"
        _, stderr = copying.communicate(timeout=120)
    finally:
        if copying.poll() is None:
            cli.kill_tree(copying.pid)
            copying.wait(10)
            _kill_masters()  # a killed CLI cannot stop its master: left, it would fail the next tests' checks
    assert copying.returncode == 0, stderr
    assert "source and target are identical" in stderr
    assert local.dbsize() == 3000
    assert no_ssh_left()


def test_ctrl_c_mid_copy_closes_the_tunnel(empty: Bastion, source: Fleet, tmp_path) -> None:
    with copy_in_background(empty, source, tmp_path / "run", 3000, 500) as copying:
        eventually(lambda: target_keys(empty) >= 200, "the copy to be under way", timeout=60, proc=copying)
        assert not no_ssh_left()  # the master runs while the copy does
        copying.send_signal(signal.SIGINT)
        copying.communicate(timeout=30)
    assert copying.returncode == 130
    eventually(no_ssh_left, "the master to be gone", timeout=30)  # it ends with the CLI; a loaded machine is slow


def test_export_and_import_through_the_bastion(empty: Bastion, source: Fleet, tmp_path) -> None:
    load_dataset(source.client(source.primary), 400)
    vias = pipeline_data.Vias(target=empty.via())
    with pipeline_data.bastions(vias) as routes:  # in this process: the commands under test are export and import
        target = routes.target(parse_endpoint(empty.cluster_url(), environ=ENV))
        copy(parse_endpoint(source_url(source)), target, CopyOptions())
    exported = cli.run("export", empty.cluster_url(), tmp_path / "keys.jsonl", "--via", empty.via(), env=ENV)
    assert exported.returncode == 0, exported.stderr
    assert len((tmp_path / "keys.jsonl").read_text().splitlines()) == 400
    empty.flush()
    imported = cli.run("import", tmp_path / "keys.jsonl", empty.cluster_url(), "--via", empty.via(), env=ENV)
    assert imported.returncode == 0, imported.stderr
    report = pipeline_data.verify_data(source_url(source), empty.cluster_url(), VerifyOptions(), environ=ENV, vias=vias)
    assert report.ok and report.compared == 400
    assert no_ssh_left()


def test_migrate_into_a_cluster_behind_the_bastion(empty: Bastion, api_server, seeded, load_source, tmp_path) -> None:
    load_source(500, seed=21)
    ca = service_fleet(api_server, seeded).tls_files.ca_cert
    done = cli.run(
        "migrate", "--project", seeded.project, "--service", seeded.service_id, "--to", empty.cluster_url(),
        "--endpoint", api_server.url, "--allow-cidr", "127.0.0.1/32", "--source-ca", ca,
        "--run-dir", tmp_path / "run", "--target-via", empty.via(),
        env=ovh_env(seeded, BASTION_PW=PASSWORD, TMPDIR=str(TUNNELS)),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "source and target are identical" in done.stderr
    assert target_keys(empty) == 500
    assert leftovers(api_server, seeded) == ([], [])
    assert no_ssh_left()


def test_migrate_target_aws_with_the_twin_behind_the_bastion(
    bastion: Bastion, api_server, seeded, load_source, tmp_path
) -> None:
    root = tmp_path / "twins"
    config = install_twins(root, ["aws", "random"], netns=bastion.netns)  # the twin's Valkey lives behind h1
    try:
        load_source(800, seed=23)
        (tmp_path / "aws.tfvars").write_text("")
        passwords = {f"REPRODUCER_PASSWORD_{name.upper()}": secrets.token_urlsafe(18) for name in USERS}
        env = ovh_env(seeded, TF_CLI_CONFIG_FILE=str(config), TMPDIR=str(TUNNELS), **passwords)
        migrate = cli.run(
            "migrate", "--project", seeded.project, "--service", seeded.service_id, "--endpoint", api_server.url,
            "--target", "aws", "--auto-approve", "--var-file", tmp_path / "aws.tfvars",
            "--allow-cidr", "127.0.0.1/32", "--source-ca", service_fleet(api_server, seeded).tls_files.ca_cert,
            "--target-ca", trusted_ca(root), "--run-dir", tmp_path / "run", "--target-via", bastion.via(), env=env,
        )  # fmt: skip
        assert migrate.returncode == 0, migrate.stderr[-3000:]
        assert "verify: source and target are identical" in migrate.stderr
        outputs = json.loads(next((tmp_path / "run").rglob("outputs.json")).read_text())
        host, port = outputs["endpoint_host"], int(outputs["endpoint_port"])
        with pytest.raises(OSError):  # nothing of it on this machine's network
            socket.create_connection((host, port), timeout=2).close()
        assert leftovers(api_server, seeded) == ([], [])
        assert no_ssh_left()
    finally:
        stop_all(root)
    assert not running_processes(root)


USERS = ("default", "app", "analytics")


@pytest.mark.fault("the bastion's host key does not match known_hosts", ends="error")
def test_a_host_key_mismatch_is_refused(empty: Bastion, source: Fleet, tmp_path) -> None:
    other = tmp_path / "known_hosts"
    other.write_text(f"{empty.ip} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDxJ2lVb1l4VnGf0nZ6x8fq0oMq1cWm0c2l3x8yV0x6c\n")
    done = cli.run("verify", source_url(source), empty.cluster_url(), "--target-via",
                   empty.via(known_hosts=str(other)), env=ENV, timeout=60)  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "host key" in done.stderr and "hint:" in done.stderr and "Traceback" not in done.stderr
    assert no_ssh_left()


@pytest.mark.fault("the bastion does not answer (dead host)", ends="error")
def test_a_dead_bastion_is_a_clear_error_within_the_timeout(empty: Bastion, source: Fleet) -> None:
    dead = empty.ip.rsplit(".", 1)[0] + ".99"  # on the bridge, nobody there
    started = time.monotonic()
    done = cli.run("verify", source_url(source), empty.cluster_url(), "--target-via",
                   f"ssh://root@{dead}?connect_timeout=2", env=ENV, timeout=60)  # fmt: skip
    assert time.monotonic() - started < 20
    assert done.returncode == 1, done.stderr
    assert "bastion" in done.stderr and "hint:" in done.stderr and "Traceback" not in done.stderr
    assert no_ssh_left()


def test_a_jump_host_is_checked_against_known_hosts_too(empty: Bastion, source: Fleet, tmp_path) -> None:
    load_dataset(source.client(source.primary), 200)
    hosts = empty.hosts
    jump = f"ssh://root@{empty.jump_ip}"
    copied = cli.run("copy", source_url(source), empty.cluster_url(), "--target-via", empty.via(jump=jump),
                     "--run-dir", tmp_path / "run", env=ENV, timeout=120)  # fmt: skip
    assert copied.returncode == 0, copied.stderr
    only_bastion = tmp_path / "known_hosts"
    only_bastion.write_text(
        next(line for line in hosts.known_hosts.read_text().splitlines() if empty.ip in line) + "\n"
    )
    refused = cli.run("verify", source_url(source), empty.cluster_url(), "--target-via",
                      empty.via(jump=jump, known_hosts=str(only_bastion)), env=ENV, timeout=60)  # fmt: skip
    assert refused.returncode == 1 and "host key" in refused.stderr, refused.stderr
    assert no_ssh_left()


class RecordingRoute:
    """A route (as ``--via`` makes them) that records every address it is asked for and dials it on loopback.

    ``names`` maps announced host names to the address really dialled, as a tunnel maps a node to its forward.
    """

    def __init__(self, names: dict[str, str] | None = None) -> None:
        self.names, self.dialled = names or {}, []

    def dial(self, host: str, port: int, timeout: float) -> socket.socket:
        self.dialled.append((host, port))
        return socket.create_connection((self.names.get(host, host), port), timeout=timeout)

    def describe(self) -> str:
        return "via a test route"


def test_every_connection_of_a_sentinel_source_goes_through_its_route() -> None:
    with Fleet.start(FleetSpec(topology="sentinel", replicas=1, tls=True)) as src, Fleet.start(FleetSpec()) as dst:
        load_dataset(src.client(src.primary), 300)
        route = RecordingRoute()
        sentinel = f"valkeys+sentinel://127.0.0.1:{src.sentinels[0].port}/mymaster?ca={src.tls_files.ca_cert}"
        source, target = replace(parse_endpoint(sentinel), route=route), parse_endpoint(source_url(dst))
        assert copy(source, target, CopyOptions()).total.copied == 300
        assert verify(source, target, VerifyOptions()).ok
        primary = src.current_primary()
    assert ("127.0.0.1", src.sentinels[0].port) in route.dialled  # Sentinel, through valkey-py's routed class
    assert (primary.host, primary.port) in route.dialled  # the primary it named, through the raw connection


def test_tls_through_a_route_checks_the_announced_name_not_the_dialled_address() -> None:
    with Fleet.start(FleetSpec(tls=True)) as fleet:
        port, ca = fleet.servers[0].port, fleet.tls_files.ca_cert
        named = replace(parse_endpoint(f"valkeys://localhost:{port}?ca={ca}"), route=RecordingRoute())
        assert not discover(named).cluster  # "localhost" is in the certificate
        with node_client(named, "localhost", port) as client:
            assert client.ping()
        # the same server, announced under a name its certificate lacks: refused, though 127.0.0.1 is in it
        other = RecordingRoute({"node-1.private.example": "127.0.0.1"})
        wrong = replace(parse_endpoint(f"valkeys://node-1.private.example:{port}?ca={ca}"), route=other)
        with pytest.raises(DataError, match="cannot be verified"):
            discover(wrong)
        with (
            pytest.raises(valkey.exceptions.ConnectionError, match="certificate"),
            node_client(wrong, "node-1.private.example", port) as client,
        ):
            client.ping()
        assert other.dialled and set(other.dialled) == {("node-1.private.example", port)}
