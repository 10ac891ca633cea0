"""Copy and verify between real fleets: topologies, TLS and ACLs, rebuild, conflicts, expiry, faults."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest
import valkey

from reproducer.data import copy as copy_module
from reproducer.data.checkpoint import Checkpoint
from reproducer.data.copy import CopyOptions, copy
from reproducer.data.dumpfmt import Plain, with_version
from reproducer.data.endpoint import parse_endpoint
from reproducer.data.resp import command
from reproducer.data.verify import VerifyOptions, verify
from reproducer.errors import DataError, InputError
from reproducer.sandbox.fleet import AclUser, Fleet
from reproducer.sandbox.seed import load_dataset
from tests.support import cli
from tests.support.fleets import key_count, primary_client
from tests.support.proxy import CuttableProxy
from tests.support.wait import Background, eventually, midway

USERS = (AclUser("mover", "m0ver-pw", "~* &* +@all"),)
ENV = {"MOVER_PW": "m0ver-pw"}


def url(fleet: Fleet, *, user: bool = False, node=None) -> str:
    scheme = "valkeys" if fleet.spec.tls else "valkey"
    auth = "mover@" if user else ""
    query = []
    if user:
        query.append("password_env=MOVER_PW")
    if fleet.spec.tls:
        query.append(f"ca={fleet.tls_files.ca_cert}")
    if fleet.spec.topology == "sentinel" and node is None:
        return f"{scheme}+sentinel://{auth}127.0.0.1:{fleet.sentinels[0].port}/mymaster?" + "&".join(query)
    kind = "+cluster" if fleet.spec.topology == "cluster" else ""
    port = (node or fleet.servers[0]).port
    return f"{scheme}{kind}://{auth}127.0.0.1:{port}?" + "&".join(query)


def ep(fleet: Fleet, **kwargs) -> object:
    return parse_endpoint(url(fleet, **kwargs), environ=ENV)


def assert_identical(source, target):
    report = verify(source, target, VerifyOptions(ttl_tolerance_ms=1000))
    assert report.ok, report.to_dict()
    return report


def test_standalone_to_three_shard_cluster_with_tls_and_acl_users(fleets):
    src = fleets(tls=True, users=USERS)
    dst = fleets(topology="cluster", shards=3, tls=True, users=USERS)
    load_dataset(src.client(src.primary), 3000)
    result = copy(ep(src, user=True), ep(dst, user=True), CopyOptions(batch=250))
    assert result.total.copied == 3000 and result.total.expired == 0
    report = assert_identical(ep(src, user=True), ep(dst, user=True))
    assert report.compared == 3000 and set(report.source_counts["0"]) == {
        "string",
        "hash",
        "set",
        "zset",
        "list",
        "stream",
    }
    source, target = src.client(src.primary), primary_client(dst)
    with_ttl = [k for k in source.scan_iter(count=1000) if source.pttl(k) > 0]
    assert len(with_ttl) > 300
    assert all(abs(source.pttl(k) - target.pttl(k)) <= 1000 for k in with_ttl[:200])
    assert target.xinfo_groups("events:000005")[0]["name"] == "workers"


def test_cluster_to_standalone_and_sentinel_replica_to_cluster(fleets):
    cluster = fleets(topology="cluster", shards=3, replicas=1)
    load_dataset(primary_client(cluster), 1500)
    single = fleets()
    copy(ep(cluster), ep(single), CopyOptions())
    assert_identical(ep(cluster), ep(single))
    sentinel = fleets(topology="sentinel", replicas=1)
    load_dataset(sentinel.client(sentinel.primary), 1500, seed=3)
    wait_synced(sentinel)
    other_cluster = fleets(topology="cluster", shards=2)
    result = copy(ep(sentinel), ep(other_cluster), CopyOptions(from_replica=True))
    replica = next(n for n in sentinel.servers if n.role == "replica")
    assert list(result.per_node) == [f"127.0.0.1:{replica.port}"]
    assert_identical(ep(sentinel), ep(other_cluster))


def wait_synced(fleet: Fleet) -> None:
    primary = fleet.client(fleet.primary)
    eventually(
        lambda: all(fleet.client(n).dbsize() == primary.dbsize() for n in fleet.servers), "replicas in sync", timeout=10
    )


def test_ovh_like_source_needs_no_disabled_command(fleets):
    src = fleets(topology="sentinel", replicas=1, tls=True, ovh_like=True, users=USERS)
    load_dataset(src.client(src.primary), 1000)
    dst = fleets(users=USERS)
    source = parse_endpoint(url(src, user=True, node=src.primary), environ=ENV)
    result = copy(source, ep(dst, user=True), CopyOptions())
    assert result.total.copied == 1000
    assert_identical(source, ep(dst, user=True))


@pytest.mark.fault("target refuses the DUMP payload version (cross-version)", ends="verify")
def test_foreign_rdb_version_is_rebuilt_and_counted(fleets, monkeypatch):
    src, dst = fleets(), fleets(topology="cluster", shards=3)
    client = src.client(src.primary)
    load_dataset(client, 600)
    client.hset("big:hash", mapping={f"field-{i}": f"value-{i}" for i in range(5000)})
    client.pexpire("big:hash", 600_000)
    writes = copy_module._writes

    def stamped_as_rdb_12(items: list[tuple[bytes, int, bytes]], indexes: list[int], replace: bool) -> list[bytes]:
        foreign = [(k, d, p if isinstance(p, Plain) else with_version(p, 12)) for k, d, p in items]
        return writes(foreign, indexes, replace)

    monkeypatch.setattr(copy_module, "_writes", stamped_as_rdb_12)
    result = copy(ep(src), ep(dst), CopyOptions())
    strings = sum(1 for key in client.scan_iter(count=1000) if client.type(key) == "string")
    assert strings == 100  # small strings go by GET/SET, which no RDB version can refuse
    assert result.total.rebuilt == 601 - strings and result.total.copied == strings
    assert any("rebuilt" in note for note in result.notes)
    assert primary_client(dst).hlen("big:hash") == 5000
    assert_identical(ep(src), ep(dst))


def test_target_not_empty_is_refused_then_skip_existing_keeps_target_keys(fleets):
    src, dst = fleets(), fleets()
    src.client(src.primary).mset({"a": "source", "b": "source"})
    dst.client(dst.primary).set("a", "target")
    with pytest.raises(InputError, match="not empty: 1 key") as caught:
        copy(ep(src), ep(dst), CopyOptions())
    assert "--replace" in caught.value.hint
    result = copy(ep(src), ep(dst), CopyOptions(conflict="skip"))
    assert (result.total.copied, result.total.skipped) == (1, 1)
    assert dst.client(dst.primary).get("a") == "target"
    copy(ep(src), ep(dst), CopyOptions(conflict="replace"))
    assert dst.client(dst.primary).get("a") == "source"


def test_all_databases_and_filters(fleets):
    src, dst = fleets(), fleets()
    client = src.client(src.primary)
    for db in (0, 2, 5):
        client.execute_command("SELECT", db)
        client.mset({f"keep:{db}:{i}": i for i in range(50)} | {f"skip:{db}": 1})
    copy(ep(src), ep(dst), CopyOptions())
    sizes = {db: valkey.Valkey(port=dst.primary.port, db=db).dbsize() for db in range(7)}
    assert sizes == {0: 51, 1: 0, 2: 51, 3: 0, 4: 0, 5: 51, 6: 0}, "every database copied into the same number"
    other = fleets()
    copy(ep(src), ep(other), CopyOptions(dbs=(2,), match="keep:*"))
    assert valkey.Valkey(port=other.primary.port, db=2).dbsize() == 50
    assert valkey.Valkey(port=other.primary.port, db=0).dbsize() == 0


def test_the_key_rate_limit_paces_keys_instead_of_waiting_then_bursting(fleets):
    src, dst = fleets(), fleets()
    src.client(src.primary).mset({f"k:{i}": i for i in range(600)})
    target, rate = dst.client(dst.primary), 100  # 6 s; one default batch (1,000 keys) would carry all 600
    started = time.monotonic()
    running = Background(copy, ep(src), ep(dst), CopyOptions(max_keys_per_second=rate))
    first_seen, ahead = None, 0.0
    while running.running:
        seen, elapsed = target.dbsize(), time.monotonic() - started
        first_seen = elapsed if first_seen is None and seen else first_seen
        ahead = max(ahead, seen - rate * elapsed)  # keys beyond what the rate allows by now
        time.sleep(0.01)
    assert running.result(60).total.copied == 600
    assert first_seen is not None and first_seen < 3, "the keys waited for the whole batch's time, then came at once"
    paced = copy_module.PACED_SECONDS * rate
    assert ahead <= 2 * paced, f"{ahead:.0f} keys ahead of the rate (two paced batches of {paced:.0f} may be in flight)"


@pytest.mark.fault("keys expiring while being copied", ends="verify")
def test_keys_expiring_during_the_copy_are_counted_not_errors(fleets):
    src, dst = fleets(), fleets()
    client = src.client(src.primary)
    client.mset({f"stay:{i}": i for i in range(2000)})
    for i in range(2000):
        client.set(f"brief:{i}", i, px=300 + i // 4)
    result = copy(ep(src), ep(dst), CopyOptions(batch=100, max_keys_per_second=4000))
    assert result.total.expired > 0, "no key expired between SCAN and DUMP: the test did not exercise the race"
    assert result.total.copied + result.total.expired == result.total.scanned <= 4000
    target = dst.client(dst.primary)
    assert all(target.exists(f"stay:{i}") for i in range(0, 2000, 97))
    eventually(lambda: client.dbsize() == target.dbsize() == 2000, "every brief key expired on both sides")
    assert_identical(ep(src), ep(dst))


def test_the_checkpoint_is_written_every_quarter_second_not_after_every_batch(fleets, tmp_path, monkeypatch):
    src, dst = fleets(), fleets()
    src.client(src.primary).mset({f"k:{i}": i for i in range(20_000)})
    writes: list[float] = []
    save = Checkpoint.save
    monkeypatch.setattr(Checkpoint, "save", lambda self: (writes.append(time.monotonic()), save(self))[1])
    started = time.monotonic()
    options = CopyOptions(batch=100, checkpoint=tmp_path / "checkpoint.json", checkpoint_every=1)  # 200 batches
    assert copy(ep(src), ep(dst), options).total.copied == 20_000
    elapsed = time.monotonic() - started
    during = len(writes) - 3  # one before the first key, one per finished database, one at the end
    assert during <= elapsed / copy_module.CHECKPOINT_SECONDS + 1, f"{len(writes)} writes in {elapsed:.2f} s"
    resumed = json.loads((tmp_path / "checkpoint.json").read_text())
    assert resumed["nodes"] and all(node["done"] == [0] for node in resumed["nodes"].values())


@pytest.mark.fault("target fills up (maxmemory)", ends="error")
def test_full_target_stops_with_a_clear_error(fleets, tmp_path):
    src, dst = fleets(), fleets(maxmemory="2mb")
    load_dataset(src.client(src.primary), 20000)
    options = CopyOptions(checkpoint=tmp_path / "checkpoint.json", checkpoint_every=1)
    with pytest.raises(DataError, match="out of memory") as caught:
        copy(ep(src), ep(dst), options)
    assert "--resume" in caught.value.hint
    assert (tmp_path / "checkpoint.json").exists()


@pytest.mark.fault("SIGKILL of reproducer mid-copy, then --resume", ends="verify")
def test_sigkill_then_resume_gives_an_identical_target(fleets, tmp_path):
    src, dst = fleets(), fleets(topology="cluster", shards=3)
    load_dataset(src.client(src.primary), 6000)
    run_dir = tmp_path / "run"
    argv = ["copy", url(src), url(dst), "--run-dir", str(run_dir), "--batch", "100", "--max-keys-per-second", "3000"]
    proc = cli.start(*argv, "--no-verify")
    eventually(lambda: key_count(dst) >= 600, "600 keys copied", proc=proc)
    proc.kill()
    proc.wait()
    assert 600 <= key_count(dst) < 6000
    resumed = cli.run(*argv, "--resume", timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert "identical" in resumed.stderr
    assert_identical(ep(src), ep(dst))


@pytest.mark.fault("cluster target primary killed mid-copy (failover)", ends="verify")
def test_target_primary_failover_during_the_copy(fleets):
    src, dst = fleets(), fleets(topology="cluster", shards=3, replicas=1)
    load_dataset(src.client(src.primary), 8000)
    running = Background(copy, ep(src), ep(dst), CopyOptions(batch=100, max_keys_per_second=2000))
    midway(running, lambda: key_count(dst), 2000)
    victim = next(n for n in dst.servers if n.role == "primary" and n.shard == 1)
    os.kill(victim.pid, signal.SIGKILL)
    result = running.result(120)
    assert result.total.copied == 8000 and result.total.retries > 0
    survivor = next(n for n in dst.servers if n.pid != victim.pid)
    assert_identical(ep(src), parse_endpoint(url(dst, node=survivor), environ={}))


def test_oversized_payloads_take_the_chunked_path_and_cluster_is_detected_on_a_plain_url(fleets):
    src, dst = fleets(), fleets(topology="cluster", shards=3)
    client = src.client(src.primary)
    client.hset("big:hash", mapping={f"field-{i}": "x" * 50 for i in range(4000)})
    client.rpush("big:list", *[f"item-{i}" for i in range(5000)])
    client.set("small", "value")
    plain_target = parse_endpoint(f"valkey://127.0.0.1:{dst.servers[0].port}", environ={})
    assert plain_target.kind == "standalone"
    result = copy(ep(src), plain_target, CopyOptions(max_payload_bytes=10_000))
    assert (result.total.rebuilt, result.total.copied) == (2, 1)
    assert primary_client(dst).hlen("big:hash") == 4000
    assert_identical(ep(src), plain_target)


@pytest.mark.fault("source connection cut twice mid-copy (TCP proxy)", ends="verify")
def test_source_connection_cut_mid_copy_reconnects_and_loses_nothing(fleets):
    src, dst = fleets(), fleets(topology="cluster", shards=3)
    load_dataset(src.client(src.primary), 6000)
    proxy = CuttableProxy(src.primary.port)
    through_proxy = parse_endpoint(f"valkey://127.0.0.1:{proxy.port}", environ={})
    running = Background(copy, through_proxy, ep(dst), CopyOptions(batch=100, max_keys_per_second=4000))
    for cut in (1, 2):
        midway(running, lambda: key_count(dst), cut * 1500)
        proxy.cut()
    result = running.result(60)
    proxy.close()
    assert result.total.retries >= 2 and proxy.connections >= 3
    assert result.total.copied == 6000
    assert_identical(ep(src), ep(dst))


@pytest.mark.fault("TLS verification failure, wrong password", ends="error")
def test_tls_verification_failure_and_wrong_password_are_clear_errors(fleets):
    src = fleets(tls=True, users=USERS)
    dst = fleets()
    unverified = parse_endpoint(f"valkeys://mover@127.0.0.1:{src.primary.port}?password_env=MOVER_PW", environ=ENV)
    with pytest.raises(DataError, match="TLS handshake with .* failed") as caught:
        copy(unverified, ep(dst), CopyOptions())
    assert "?ca=PATH" in caught.value.hint
    wrong = parse_endpoint(url(src, user=True), environ={"MOVER_PW": "not-the-password"})
    with pytest.raises(DataError, match="authentication to .* failed") as caught:
        copy(wrong, ep(dst), CopyOptions())
    assert "not-the-password" not in str(caught.value)
    insecure = parse_endpoint(
        f"valkeys://mover@127.0.0.1:{src.primary.port}?password_env=MOVER_PW&insecure=1", environ=ENV
    )
    assert copy(insecure, ep(dst), CopyOptions()).total.scanned == 0


@pytest.mark.fault("Sentinel target primary killed mid-copy (failover)", ends="verify")
def test_sentinel_target_failover_during_the_copy_loses_nothing(fleets):
    src = fleets()
    dst = fleets(topology="sentinel", replicas=1, sentinels=3)
    load_dataset(src.client(src.primary), 6000)
    target = parse_endpoint(
        f"valkey+sentinel://127.0.0.1:{dst.sentinels[0].port},127.0.0.1:{dst.sentinels[1].port}/mymaster", environ={}
    )
    running = Background(copy, ep(src), target, CopyOptions(batch=100, max_keys_per_second=2000))
    midway(running, lambda: key_count(dst), 2000)
    old_primary = dst.current_primary()
    os.kill(old_primary.pid, signal.SIGKILL)
    result = running.result(120)
    assert result.total.copied == 6000 and result.total.retries > 0
    assert dst.current_primary().port != old_primary.port
    assert_identical(ep(src), target)


def test_a_key_that_stops_being_a_string_between_type_and_get_is_rebuilt(fleets, monkeypatch):
    """TYPE (asked with the sizes) said string, then GET answers WRONGTYPE: the key is rebuilt by its real type."""
    src, dst = fleets(), fleets()
    client = src.client(src.primary)
    load_dataset(client, 120)
    monkeypatch.setattr(  # every key claims to be a string, as if each had changed type since TYPE answered
        copy_module,
        "size_and_type",
        lambda keys: b"".join(command("MEMORY", "USAGE", k) + command("ECHO", "string") for k in keys),
    )
    result = copy(ep(src), ep(dst), CopyOptions(batch=50, read="scan"))
    assert result.total.copied == 20 and result.total.rebuilt == 100  # 20 real strings, 100 other keys
    assert_identical(ep(src), ep(dst))


def test_verify_compares_as_data_a_key_whose_type_changed_after_type_answered(fleets, monkeypatch):
    """TYPE said string, GET then answers WRONGTYPE on both sides: the values are read by type and compared."""
    from reproducer.data import verify as verify_module

    src, dst = fleets(), fleets()
    load_dataset(src.client(src.primary), 120)
    copy(ep(src), ep(dst), CopyOptions())
    monkeypatch.setattr(
        verify_module,
        "size_and_type",
        lambda keys: b"".join(command("MEMORY", "USAGE", k) + command("ECHO", "string") for k in keys),
    )
    assert_identical(ep(src), ep(dst))
    dst.client(dst.primary).hset("user:000001", "name", "someone else")
    report = verify(ep(src), ep(dst), VerifyOptions())
    assert [d["key"] for d in report.differences] == ["user:000001"] and report.value_mismatch == 1


@pytest.mark.parametrize("read", ["scan", "sync"])
def test_verify_tells_each_type_from_its_value_and_asks_type_only_to_size_the_source(fleets, read):
    """A DUMP payload starts with its type and a GET answers only for a string: neither side is asked TYPE again
    when the values are read (the source's TYPE, asked with the sizes, chooses GET or DUMP; a snapshot tells the
    source's types, and no TYPE is asked), and a type that differs is still named on both sides."""
    src, dst = fleets(), fleets()
    load_dataset(src.client(src.primary), 120)
    copy(ep(src), ep(dst), CopyOptions())
    target = dst.client(dst.primary)
    target.delete("user:000001")
    target.sadd("user:000001", "now a set")
    for fleet in (src, dst):
        fleet.client(fleet.primary).config_resetstat()
    report = verify(ep(src), ep(dst), VerifyOptions(read=read))
    assert report.compared == 120 and report.type_mismatch == 1
    assert report.differences[0]["detail"] == "hash on the source, set on the target"
    stats = [fleet.client(fleet.primary).info("commandstats") for fleet in (src, dst)]
    assert [stat.get("cmdstat_type", {}).get("calls", 0) for stat in stats] == [120 if read == "scan" else 0, 0]


def test_values_too_big_for_one_restore_are_copied_a_chunk_at_a_time(fleets, monkeypatch):
    """Every type over max_payload_bytes goes by chunks (GETRANGE/APPEND, SCAN windows), TTLs and groups kept."""
    from reproducer.data import rebuild

    monkeypatch.setattr(rebuild, "STRING_CHUNK", 1000)
    src, dst = fleets(), fleets(engine="redis")
    client = src.client(src.primary)
    client.set("big:string", os.urandom(10_500), px=3_600_000)
    client.set("big:empty", "")
    client.hset("big:hash", mapping={f"f{i}": f"v{i}" for i in range(2500)})
    client.sadd("big:set", *[f"m{i}" for i in range(2500)])
    client.zadd("big:zset", {f"m{i}": i / 7 for i in range(2500)})
    client.rpush("big:list", *[f"i{i}" for i in range(2500)])
    for i in range(1, 2501):
        client.xadd("big:stream", {"n": i}, id=f"{i}-1")
    client.execute_command("XADD", "big:stream", "2501-1", "dup", "1", "dup", "2")  # a field named twice: kept
    client.xgroup_create("big:stream", "g", id="7-1")
    client.pexpire("big:stream", 7_200_000)
    result = copy(ep(src), ep(dst), CopyOptions(max_payload_bytes=1000))
    assert result.total.rebuilt == 6 and result.total.copied == 1  # big:empty fits in one command
    calls = {name: stats["calls"] for name, stats in dst.client(dst.primary).info("commandstats").items()}
    assert calls["cmdstat_append"] == 11  # 10,500 bytes in chunks of 1000, never whole
    assert calls["cmdstat_hset"] == calls["cmdstat_sadd"] == calls["cmdstat_zadd"] == calls["cmdstat_rpush"] == 3
    assert_identical(ep(src), ep(dst))
    assert 3_500_000 < dst.client(dst.primary).pttl("big:string") <= 3_600_000
    raw = dst.client(dst.primary)
    raw.set_response_callback("XRANGE", lambda response, **_: response)  # the reply as sent, not a dict
    assert raw.execute_command("XRANGE", "big:stream", "2501-1", "2501-1") == [["2501-1", ["dup", "1", "dup", "2"]]]
    from reproducer.data import verify as verify_module

    monkeypatch.setattr(verify_module, "WHOLE_VALUE_BYTES", 0)  # every differing payload: compared in chunks
    reads: list[str] = []
    whole = rebuild.read_value
    monkeypatch.setattr(rebuild, "read_value", lambda client, key, kind: reads.append(key) or whole(client, key, kind))
    assert_identical(ep(src), ep(dst))  # hash tables dump in another order, streams in another type: in chunks
    assert reads == []  # no value was read whole
    dst.client(dst.primary).hset("big:hash", "f1234", "changed")
    report = verify(ep(src), ep(dst), VerifyOptions())
    assert [d["key"] for d in report.differences] == ["big:hash"] and reads == []  # never read whole, even then
    assert report.differences[0]["detail"] == "values differ: field 'f1234' differs"
