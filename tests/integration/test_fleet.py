"""Local Valkey topologies: OVH-like command set, cluster shape, Sentinel failover, clean teardown."""

from __future__ import annotations

import os
import signal

import pytest
import valkey

from reproducer.procs import pid_alive, wait_until
from reproducer.sandbox.fleet import AclUser, Fleet, FleetSpec


def test_ovh_like_node_refuses_config_but_serves_scan_dump_restore():
    spec = FleetSpec(tls=True, ovh_like=True, users=(AclUser("app", "s3cret"),))
    with Fleet.start(spec) as fleet:
        conn = fleet.client(fleet.primary, username="app", password="s3cret")
        for command in (("CONFIG", "GET", "*"), ("MIGRATE",), ("EVAL", "return 1", "0"), ("ACL", "LIST")):
            with pytest.raises(valkey.exceptions.ResponseError, match="unknown command"):
                conn.execute_command(*command)
        conn.set("k", "v", px=60_000)
        payload = conn.dump("k")
        assert next(iter(conn.scan_iter())) == "k"
        conn.restore("k2", conn.pttl("k"), payload)
        assert conn.get("k2") == "v" and 0 < conn.pttl("k2") <= 60_000
        assert fleet.admin(fleet.primary, "CONFIG", "GET", "port")


def test_teardown_leaves_no_process_and_no_files():
    fleet = Fleet.start(FleetSpec(topology="sentinel", replicas=1, sentinels=1))
    pids, root = [n.pid for n in fleet.nodes], fleet.root
    assert all(pid_alive(p) for p in pids)
    fleet.stop()
    assert not any(pid_alive(p) for p in pids)
    assert not root.exists()


def test_cluster_three_shards_one_replica_covers_every_slot():
    with Fleet.start(FleetSpec(topology="cluster", shards=3, replicas=1)) as fleet:
        info = fleet.admin(fleet.servers[0], "CLUSTER", "INFO")
        assert "cluster_state:ok" in info and "cluster_slots_assigned:16384" in info
        conn = valkey.ValkeyCluster(
            host="127.0.0.1",
            port=fleet.servers[0].port,
            username="reproducer-sandbox-admin",
            password=fleet._state.admin_password,
        )
        for i in range(100):
            conn.set(f"key:{i}", i)
        assert sum(fleet.client(n).dbsize() for n in fleet.servers if n.role == "primary") == 100


def test_sentinel_promotes_a_replica_when_the_primary_dies():
    with Fleet.start(FleetSpec(topology="sentinel", replicas=1, sentinels=3, ovh_like=True)) as fleet:
        old = fleet.current_primary()
        os.kill(old.pid, signal.SIGKILL)
        wait_until(lambda: fleet.current_primary().port != old.port, timeout=30, what="a failover")
        new = fleet.current_primary()
        assert fleet.client(new).info("replication")["role"] == "master"


def test_redis_engine_runs_redis_7_whose_rdb_version_is_older_than_valkeys():
    """A ``redis`` fleet is Redis 7.0 (RDB 10): a Valkey 8 DUMP payload (RDB 11) is refused by its RESTORE."""
    with (
        Fleet.start(FleetSpec(topology="cluster", shards=1, tls=True, engine="redis")) as redis_fleet,
        Fleet.start(FleetSpec()) as valkey_fleet,
    ):
        redis_conn = redis_fleet.client(redis_fleet.primary)
        valkey_conn = valkey_fleet.client(valkey_fleet.primary)
        assert redis_conn.info("server")["redis_version"].startswith("7.0.")
        assert "valkey_version" not in redis_conn.info("server")
        valkey_conn.set("k", "v")
        payload = valkey_conn.dump("k")
        assert int.from_bytes(payload[-10:-8], "little") > 10
        with pytest.raises(valkey.exceptions.ResponseError, match="payload version or checksum are wrong"):
            redis_conn.restore("k", 0, payload)
        assert redis_conn.execute_command("CLUSTER", "INFO").startswith("cluster_state:ok")
