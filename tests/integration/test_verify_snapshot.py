"""Verify reads the source's snapshot (SYNC, as the copy does) unless told to scan.

It finds what a scan finds, key for key; a stream the source refuses or breaks falls back to a scan with nothing
counted twice; ``read="sync"`` refuses to fall back; a value far over the bound on the target is compared in
windows; only the databases asked for are compared.
"""

from __future__ import annotations

import os

import pytest
import valkey

from reproducer.data.copy import CopyOptions, CopyResult, Stats, copy
from reproducer.data.endpoint import Endpoint, parse_endpoint
from reproducer.data.verify import VerifyOptions, VerifyReport, verify
from reproducer.errors import DataError, InputError
from reproducer.pipeline.data import checks_after
from reproducer.sandbox.fleet import AclUser, Fleet
from tests.support import cli
from tests.support.fleets import primary_client

NO_SYNC = AclUser("mover", "m0ver-pw", "~* &* +@all -sync -psync")
BOUND = 1024 * 1024
HOUR_MS = 3_600_000


def ep(fleet: Fleet, user: AclUser | None = None, db: int | None = None) -> Endpoint:
    """The fleet's endpoint, as ``user`` when given, on ``db`` when given."""
    path = "" if db is None else f"/{db}"
    if user is None:
        return parse_endpoint(f"valkey://127.0.0.1:{fleet.primary.port}{path}", environ={})
    url = f"valkey://{user.name}@127.0.0.1:{fleet.primary.port}{path}?password_env=PW"
    return parse_endpoint(url, environ={"PW": user.password})


def same_on_both(source: Fleet, target: Fleet, count: int) -> None:
    """``count`` keys alike on both sides: strings, hashes and lists in turn, one in three with a TTL."""
    for fleet in (source, target):
        pipe = primary_client(fleet).pipeline(transaction=False)
        for index in range(count):
            key = f"same:{index}"
            if index % 3 == 0:
                pipe.set(key, f"value-{index}" * 4)
            elif index % 3 == 1:
                pipe.hset(key, mapping={"a": index, "b": "x" * (index % 50)})
            else:
                pipe.rpush(key, *[f"e{index}-{i}" for i in range(5)])
            if index % 3 == 0:
                pipe.pexpire(key, HOUR_MS + index)
        pipe.execute()


def differing(source: Fleet, target: Fleet) -> None:
    """One key for each way two sides differ, and keys that are alike though their payloads are not."""
    src, dst = primary_client(source), primary_client(target)
    src.set("missing", "only on the source")
    src.set("type", "a string")
    dst.rpush("type", "a list")
    src.set("value:string", "left")
    dst.set("value:string", "right")
    src.hset("value:hash", mapping={"field": "left"})
    dst.hset("value:hash", mapping={"field": "right"})
    for client, ttl in ((src, HOUR_MS), (dst, 2 * HOUR_MS)):
        client.set("ttl:far", "same", px=ttl)
    src.set("ttl:gone", "same", px=HOUR_MS)
    dst.set("ttl:gone", "same")
    src.set("ttl:extra", "same")
    dst.set("ttl:extra", "same", px=HOUR_MS)
    dst.set("extra", "only on the target")
    members = [f"member-{i}" for i in range(600)]  # a hash table: each server orders it its own way
    src.sadd("set:alike", *members)
    dst.sadd("set:alike", *reversed(members))
    blob = os.urandom(3 * BOUND)
    src.set("big:alike", blob)
    dst.set("big:alike", blob)
    src.set("big:differs", blob)
    dst.set("big:differs", blob[:-1] + bytes([blob[-1] ^ 1]))


def scans(fleet: Fleet) -> int:
    """How many SCANs the fleet's primary has answered."""
    stats = primary_client(fleet).info("commandstats")
    return int(stats.get("cmdstat_scan", {}).get("calls", 0))


def on_db(fleet: Fleet, db: int) -> valkey.Valkey:
    """An admin client of the fleet's primary on database ``db``."""
    return valkey.Valkey(**{**fleet.client(fleet.primary).connection_pool.connection_kwargs, "db": db})


def findings(report: VerifyReport) -> dict[str, object]:
    """What a report found, without the order its differences were listed in."""
    data = report.to_dict()
    data["differences"] = sorted((d["key"], d["problem"]) for d in report.differences)
    return data


def test_the_snapshot_finds_what_a_scan_finds_key_for_key(fleets):
    source, target = fleets(), fleets()
    same_on_both(source, target, 900)
    differing(source, target)
    options = VerifyOptions(batch=50, max_batch_bytes=BOUND, max_listed=100)

    from_snapshot = verify(ep(source), ep(target), VerifyOptions(**{**vars(options), "read": "sync"}))
    assert scans(source) == 0
    from_scan = verify(ep(source), ep(target), VerifyOptions(**{**vars(options), "read": "scan"}))

    assert findings(from_snapshot) == findings(from_scan)
    assert from_snapshot.compared == 900 + 10, from_snapshot.to_dict()
    assert sorted((d["key"], d["problem"]) for d in from_snapshot.differences) == [
        ("big:differs", "value_mismatch"),
        ("extra", "extra_in_target"),
        ("missing", "missing"),
        ("ttl:extra", "ttl_mismatch"),
        ("ttl:far", "ttl_mismatch"),
        ("ttl:gone", "ttl_mismatch"),
        ("type", "type_mismatch"),
        ("value:hash", "value_mismatch"),
        ("value:string", "value_mismatch"),
    ]
    assert from_snapshot.source_counts == {"0": {"string": 308, "hash": 301, "list": 300, "set": 1}}


def test_a_source_that_refuses_sync_is_scanned_and_read_sync_then_fails_with_a_hint(fleets):
    source, target = fleets(users=(NO_SYNC,)), fleets()
    same_on_both(source, target, 300)
    primary_client(target).set("same:0", "changed", keepttl=True)

    report = verify(ep(source, NO_SYNC), ep(target), VerifyOptions(batch=50))

    assert scans(source) > 0
    assert report.compared == 300 and report.value_mismatch == 1, report.to_dict()
    with pytest.raises(DataError) as refused:
        verify(ep(source, NO_SYNC), ep(target), VerifyOptions(batch=50, read="sync"))
    assert "gave no snapshot" in refused.value.message and "--read scan" in (refused.value.hint or "")

    url = f"valkey://{NO_SYNC.name}@127.0.0.1:{source.primary.port}?password_env=PW"
    target_url = f"valkey://127.0.0.1:{target.primary.port}"
    run = cli.run("verify", url, target_url, "--read", "sync", env={**os.environ, "PW": NO_SYNC.password})
    assert run.returncode not in (0, 3) and "Traceback" not in run.stderr, run.stderr
    assert "error:" in run.stderr and "gave no snapshot" in run.stderr and "hint:" in run.stderr, run.stderr
    assert (
        cli.run("verify", url, target_url, "--read", "scan", env={**os.environ, "PW": NO_SYNC.password}).returncode == 3
    )


@pytest.mark.parametrize(
    ("options", "read"),
    [
        (CopyOptions(), "auto"),
        (CopyOptions(read="scan"), "scan"),
        (CopyOptions(read="sync"), "sync"),
        (CopyOptions(max_keys_per_second=100), "scan"),  # an auto copy kept the source from forking: so does verify
        (CopyOptions(max_bytes_per_second=100, read="sync"), "sync"),
    ],
)
def test_the_verify_after_a_copy_reads_the_source_as_the_copy_did(options, read):
    copied = CopyResult(total=Stats(), per_node={}, seconds=1.0, source_keys=0)
    assert checks_after(copied, options).read == read


def test_a_stream_broken_part_way_is_checked_again_with_a_scan_and_nothing_is_counted_twice(fleets):
    """The source drops its replica connections after the first group: the stream (about 12 MB, more than the
    sockets hold) breaks, what was counted from it is dropped, and the node is checked again with a scan."""
    source, target = fleets(), fleets()
    values = [os.urandom(200).hex() for _ in range(50)]
    for fleet in (source, target):
        pipe = primary_client(fleet).pipeline(transaction=False)
        for index in range(30_000):
            pipe.set(f"k:{index}", values[index % 50])
        pipe.execute()
    primary_client(target).set("k:29999", "changed")
    kills: list[int] = []

    def kill_the_stream(_compared: int) -> None:
        if not kills:
            kills.append(primary_client(source).client_kill_filter(_type="slave"))

    report = verify(ep(source), ep(target), VerifyOptions(batch=100, progress=kill_the_stream))

    assert kills == [1], kills
    assert scans(source) > 0  # checked again with a scan
    assert report.compared == 30_000 and report.value_mismatch == 1, report.to_dict()
    assert [d["key"] for d in report.differences] == ["k:29999"]


def test_a_value_far_over_the_bound_on_the_target_only_is_compared_in_windows(fleets):
    """The source's value is small, the target's passes twice the bound: its reply is abandoned with the target's
    connections, the key compared in windows, and the groups asked after it asked again."""
    source, target = fleets(), fleets()
    same_on_both(source, target, 300)
    primary_client(source).set("grown", "small")
    primary_client(target).set("grown", os.urandom(3 * BOUND))

    report = verify(ep(source), ep(target), VerifyOptions(batch=20, max_batch_bytes=BOUND, read="sync"))

    assert report.compared == 301 and report.value_mismatch == 1, report.to_dict()
    assert [d["key"] for d in report.differences] == ["grown"]


def test_only_the_databases_asked_for_are_compared_from_the_snapshot_and_every_one_without_dbs(fleets):
    source, target = fleets(), fleets()
    for fleet in (source, target):
        for db in (0, 1, 2):
            on_db(fleet, db).mset({f"db{db}:{i}": f"v{i}" for i in range(100 + db)})
    for db in (0, 2):
        on_db(target, db).set(f"db{db}:0", "changed")

    report = verify(ep(source), ep(target), VerifyOptions(dbs=(1,), read="sync"))
    on_db1 = verify(ep(source, db=1), ep(target, db=1), VerifyOptions(read="sync"))

    for found in (report, on_db1):
        assert found.ok and found.compared == 101, found.to_dict()
        assert found.source_counts == {"1": {"string": 101}}, found.to_dict()
    every_db = verify(ep(source), ep(target), VerifyOptions(batch=20, read="sync"))  # groups asked across databases
    assert every_db.compared == 303 and every_db.value_mismatch == 2, every_db.to_dict()
    assert sorted((d["db"], d["key"]) for d in every_db.differences) == [(0, "db0:0"), (2, "db2:0")]


def test_a_sample_from_the_snapshot_compares_the_keys_a_scan_samples(fleets):
    source, target = fleets(), fleets()
    same_on_both(source, target, 900)
    for index in range(0, 900, 7):
        primary_client(target).set(f"same:{index}", "changed")
    options = {"sample": 0.3, "max_listed": 1000}

    from_snapshot = verify(ep(source), ep(target), VerifyOptions(**options, read="sync"))
    from_scan = verify(ep(source), ep(target), VerifyOptions(**options, read="scan"))

    assert findings(from_snapshot) == findings(from_scan)
    assert 200 < from_snapshot.compared < 400 and from_snapshot.differences, from_snapshot.to_dict()


def test_read_sync_with_a_pattern_is_refused_before_anything_is_read_or_written(fleets, tmp_path):
    """A snapshot holds every key, and only SCAN's MATCH applies the server's glob: copying the whole snapshot
    would write keys the pattern left out."""
    source, target = fleets(), fleets()
    primary_client(source).mset({"a:1": "1", "b:1": "1"})
    with pytest.raises(InputError, match="cannot apply --match"):
        copy(ep(source), ep(target), CopyOptions(read="sync", match="a:*"))
    with pytest.raises(InputError, match="cannot apply --match"):
        verify(ep(source), ep(target), VerifyOptions(read="sync", match="a:*"))
    source_url, target_url = f"valkey://127.0.0.1:{source.primary.port}", f"valkey://127.0.0.1:{target.primary.port}"
    for command in ("copy", "verify"):
        run = cli.run(
            command, source_url, target_url, "--read", "sync", "--match", "a:*", "--run-dir", tmp_path / command
        )
        assert run.returncode == 2 and "error:" in run.stderr and "hint:" in run.stderr, run.stderr
        assert "Traceback" not in run.stderr
    assert primary_client(target).dbsize() == 0
    assert "cmdstat_sync" not in primary_client(source).info("commandstats")
