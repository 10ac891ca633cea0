"""Reading a source over SYNC: every key of the RDB stream is its DUMP payload, and a copy from it loses nothing."""

from __future__ import annotations

import os

import pytest
import valkey

from reproducer.data import snapshot
from reproducer.data.copy import CopyOptions, copy
from reproducer.data.dumpfmt import Plain
from reproducer.data.endpoint import parse_endpoint
from reproducer.data.resp import RawConnection
from reproducer.data.topology import key_slot
from reproducer.data.verify import VerifyOptions, verify
from reproducer.sandbox.fleet import AclUser, Fleet
from reproducer.sandbox.seed import load_dataset
from tests.support import cli
from tests.support.fleets import key_count, primary_client
from tests.support.proxy import CuttableProxy
from tests.support.wait import Background, eventually, midway

NO_SYNC = (AclUser("mover", "m0ver-pw", "~* &* +@all -sync -psync"),)
ENV = {"MOVER_PW": "m0ver-pw"}


def url(fleet: Fleet, *, user: bool = False) -> str:
    kind = "+cluster" if fleet.spec.topology == "cluster" else ""
    auth, query = ("mover@", "?password_env=MOVER_PW") if user else ("", "")
    return f"valkey{kind}://{auth}127.0.0.1:{fleet.servers[0].port}{query}"


def ep(fleet: Fleet, **kwargs) -> object:
    return parse_endpoint(url(fleet, **kwargs), environ=ENV)


def every_encoding(fleet: Fleet) -> None:
    """Keys of every type and encoding the stream can hold, some with TTLs, in two databases."""
    client = fleet.client(fleet.primary)
    client.set("12345", "a key RDB stores as an integer")
    client.set("k" * 60, "a key RDB stores compressed (LZF)")
    client.set("str:int", 987654321)
    client.set("str:lzf", "z" * 500, px=3_600_000)
    client.set("str:raw", bytes(range(256)))
    client.set("str:long", os.urandom(20_000))  # over 16 KB: a 32-bit length (incompressible: not LZF)
    client.hset("hash:listpack", mapping={"a": "1"})
    client.hset("hash:table", mapping={f"f{i}": "v" * 80 for i in range(300)})
    client.sadd("set:intset", 1, 2, -3)
    client.sadd("set:listpack", "a", "b")
    client.sadd("set:table", *[f"m{i}" for i in range(300)])
    client.zadd("zset:listpack", {"a": 1.5, "b": float("-inf")})
    client.zadd("zset:skiplist", {f"m{i}": i / 3 for i in range(300)})
    client.rpush("list:quicklist", *[f"item-{i}-" + "x" * 40 for i in range(3000)])
    client.pexpire("list:quicklist", 9_000_000)
    client.rpush("list:short", "a", "b", 3)  # one listpack node
    client.rpush("list:short:ttl", "x")
    client.pexpire("list:short:ttl", 9_000_000)
    for index in range(5):
        client.xadd("stream:groups", {"f": index}, id=f"{index + 1}-0")
    client.xgroup_create("stream:groups", "readers", id="0")
    client.xreadgroup("readers", "alice", {"stream:groups": ">"}, count=2)
    client.xgroup_create("stream:empty", "g", id="$", mkstream=True)
    client.set("db3:key", "in another database")
    client.move("db3:key", 3)


def chopped(conn: RawConnection, size: int):
    """``conn.recv_raw`` handing out at most ``size`` bytes at a time: every field crosses reads somewhere."""
    held, original = bytearray(), conn.recv_raw

    def recv() -> bytes:
        if not held:
            held.extend(original())
        piece = bytes(held[:size])
        del held[:size]
        return piece

    return recv


@pytest.mark.parametrize(("piece", "limit"), [(7, 1 << 20), (1 << 20, 1 << 20), (5, 2000)])
def test_every_key_of_the_stream_is_its_dump_payload(fleets, piece, limit):
    source = fleets()
    every_encoding(source)
    conn = RawConnection("127.0.0.1", source.primary.port)
    conn.recv_raw = chopped(conn, piece)  # the reader only ever sees small pieces
    stream = snapshot.open_snapshot(conn)
    assert stream.version == 11
    seen = {}
    client, raw = source.client(source.primary), valkey.Valkey(port=source.primary.port)  # raw: bytes as they are
    for entry in stream.entries(limit):
        seen[(entry.db, entry.key)] = entry
        if entry.db != 0:
            continue
        expiry = client.execute_command("PEXPIRETIME", entry.key)
        assert entry.expire_ms == expiry, entry.key
        if entry.payload is None:
            assert len(client.dump(entry.key)) - 10 > limit, entry.key  # only a value over the limit is left out
        elif isinstance(entry.payload, Plain):
            assert raw.get(entry.key) == entry.payload
        else:
            assert client.dump(entry.key) == entry.payload, entry.key
    conn.close()
    assert len(seen) == client.dbsize() + 1 and (3, b"db3:key") in seen
    assert {(0, b"12345"), (0, b"k" * 60)} <= set(seen)
    assert isinstance(seen[(0, b"str:raw")].payload, Plain) and not isinstance(seen[(0, b"str:lzf")].payload, Plain)
    if limit < 1 << 20:
        assert seen[(0, b"list:quicklist")].payload is None and seen[(0, b"str:long")].payload is None


def test_a_snapshot_copy_into_a_cluster_is_identical_and_reads_no_key_with_dump(fleets):
    source, target = fleets(), fleets(topology="cluster", shards=3)
    load_dataset(source.client(source.primary), 3000)
    blob = os.urandom(150_000).hex()  # incompressible: the payload is over the bound whatever LZF does
    source.client(source.primary).hset(
        "big:hash", mapping={f"f{i}": blob[i * 100 : i * 100 + 100] for i in range(3000)}
    )
    result = copy(ep(source), ep(target), CopyOptions(batch=250, read="sync", max_batch_bytes=100_000))
    assert (result.total.copied, result.total.rebuilt, result.total.expired) == (3000, 1, 0)  # big:hash in chunks
    stats = source.client(source.primary).info("commandstats")
    assert stats["cmdstat_sync"]["calls"] == 1 and "cmdstat_dump" not in stats and "cmdstat_scan" not in stats
    report = verify(ep(source), ep(target), VerifyOptions(ttl_tolerance_ms=1000))
    assert report.ok and report.compared == 3001, report.to_dict()
    src, dst = source.client(source.primary), primary_client(target)
    with_ttl = [k for k in src.scan_iter(count=1000) if src.pttl(k) > 0]
    assert len(with_ttl) > 300
    for key in with_ttl[:300]:  # expiry times on the one clock both servers share here
        source_at, target_at = (client.execute_command("PEXPIRETIME", key) for client in (src, dst))
        assert source_at - 1000 <= target_at <= source_at, key  # early by a round trip at most, never late


def test_a_cluster_nodes_slot_notes_do_not_leave_the_compiled_run(fleets, monkeypatch):
    """Valkey 8.0 notes each slot before its keys as an auxiliary field (slot-info): hundreds here, 5,461 a full node.

    The compiled run passes over them; only the stream header's few fields reach the Python reader's opcodes.
    """
    source = fleets(topology="cluster", shards=3)
    load_dataset(primary_client(source), 3000)
    node = next(n for n in source.servers if n.role == "primary")
    opcodes: list[int] = []
    opcode = snapshot._opcode
    monkeypatch.setattr(snapshot, "_opcode", lambda reader, kind: opcodes.append(kind) or opcode(reader, kind))
    conn = RawConnection("127.0.0.1", node.port)
    try:
        entries = list(snapshot.open_snapshot(conn).entries(1 << 20))
    finally:
        conn.close()
    slots = {key_slot(entry.key) for entry in entries}
    assert len(entries) == source.client(node).dbsize() and len(slots) > 300
    assert opcodes.count(0xFA) < 20, f"{opcodes.count(0xFA)} auxiliary fields on the Python path, {len(slots)} slots"


def test_a_cluster_source_is_read_one_snapshot_per_primary(fleets):
    source, target = fleets(topology="cluster", shards=3), fleets()
    load_dataset(primary_client(source), 3000)
    result = copy(ep(source), ep(target), CopyOptions(read="sync"))
    assert result.total.copied == 3000 and len(result.per_node) == 3
    for node in source.servers:
        assert source.client(node).info("commandstats")["cmdstat_sync"]["calls"] == 1
    report = verify(ep(source), ep(target), VerifyOptions(ttl_tolerance_ms=1000))
    assert report.ok and report.compared == 3000, report.to_dict()


@pytest.mark.fault("source refuses SYNC (an ACL without +sync)", ends="verify")
def test_a_source_that_refuses_sync_is_scanned_or_with_read_sync_a_clear_error(fleets, tmp_path):
    environ = {**os.environ, **ENV}
    source, target = fleets(users=NO_SYNC), fleets()
    load_dataset(source.client(source.primary), 500)
    result = copy(ep(source, user=True), ep(target), CopyOptions())
    assert result.total.copied == 500
    assert any("read with SCAN" in note and "SYNC was refused: NOPERM" in note for note in result.notes), result.notes
    assert verify(ep(source, user=True), ep(target), VerifyOptions()).ok
    told = cli.run(
        "copy", url(source, user=True), url(fleets()), "--read", "sync", "--run-dir", tmp_path / "run", env=environ
    )
    assert told.returncode == 1, told.stderr
    assert "error:" in told.stderr and "--read scan" in told.stderr and "Traceback" not in told.stderr


@pytest.mark.fault("source connection cut twice mid-snapshot (TCP proxy)", ends="verify")
def test_a_snapshot_cut_midway_starts_again_and_loses_nothing(fleets):
    source, target = fleets(), fleets(topology="cluster", shards=3)
    blob = os.urandom(7_000_000)
    source.client(source.primary).mset({f"key:{i}": blob[i * 1000 : i * 1000 + 8000] for i in range(6000)})
    proxy = CuttableProxy(source.primary.port)  # 48 MB of stream: far more than the sockets' buffers hold
    through_proxy = parse_endpoint(f"valkey://127.0.0.1:{proxy.port}", environ={})
    options = CopyOptions(batch=100, read="sync", max_keys_per_second=4000)
    scanned: list[int] = [0]  # the copy's count of keys read: it goes back to 0 when a new snapshot starts
    running = Background(copy, through_proxy, ep(target), options, lambda totals, _n: scanned.append(totals.scanned))
    for _cut in (1, 2):
        start = len(scanned)  # this snapshot is read from here on: cut it once it has passed 1,000 keys
        midway(running, lambda since=start: max(scanned[since:], default=0), 1000)
        proxy.cut()
        cut_at = len(scanned)
        eventually(lambda since=cut_at: min(scanned[since:], default=1000) < 1000, "a new snapshot started")
    result = running.result(60)
    proxy.close()
    assert result.total.retries >= 2 and proxy.connections >= 3
    assert result.total.copied == 6000 == key_count(target)  # each new snapshot's counters start from zero
    assert verify(ep(source), ep(target), VerifyOptions(ttl_tolerance_ms=1000)).ok


def test_an_interrupted_snapshot_copy_resumes_by_copying_the_node_again(fleets, tmp_path):
    """A snapshot has no cursor: --resume copies an unfinished node from a new one (here onto a flushed target)."""
    source, target = fleets(), fleets(maxmemory="3mb")
    client = source.client(source.primary)
    for start in range(0, 12_000, 2000):
        client.mset({f"key:{i:06d}": "v" * 300 for i in range(start, start + 2000)})
    run_dir = tmp_path / "run"
    first = cli.run("copy", url(source), url(target), "--run-dir", run_dir, "--batch", "200", "--no-verify")
    assert first.returncode == 1 and "out of memory" in first.stderr, first.stderr
    target.admin(target.primary, "CONFIG", "SET", "maxmemory", "0")
    target.client(target.primary).flushall()
    resumed = cli.run("copy", url(source), url(target), "--run-dir", run_dir, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "identical" in resumed.stderr and target.client(target.primary).dbsize() == 12_000
    calls = source.client(source.primary).info("commandstats")["cmdstat_sync"]["calls"]
    assert calls == 3  # the resumed node was read from a new snapshot, not scanned; then its verify read one


def test_the_cli_copies_by_snapshot_unless_a_pattern_asks_for_a_scan(fleets, tmp_path):
    source = fleets()
    load_dataset(source.client(source.primary), 400)
    matched = cli.run("copy", url(source), url(fleets()), "--run-dir", tmp_path / "one", "--match", "*")
    assert matched.returncode == 0 and "identical" in matched.stderr, matched.stderr
    assert "cmdstat_sync" not in source.client(source.primary).info("commandstats")  # nor its verify
    whole = cli.run("copy", url(source), url(fleets()), "--run-dir", tmp_path / "two")
    assert whole.returncode == 0 and "identical" in whole.stderr, whole.stderr
    assert source.client(source.primary).info("commandstats")["cmdstat_sync"]["calls"] == 2  # the copy, its verify
