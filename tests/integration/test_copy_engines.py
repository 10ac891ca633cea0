"""Copy and verify across engines (Valkey 8 writes RDB 11, Redis 7.0 reads up to RDB 10), both ways.

Every type and encoding goes across; payloads of types Redis 7.0 knows are re-stamped, the others (listpack
sets, streams whose consumers have an active time) are rewritten as types it knows (a plain set, a stream of
type 19), and verify compares by value where payloads differ. Payloads a target refuses all the same are rebuilt
with type commands (``test_copy.py``'s foreign version).
"""

from __future__ import annotations

import random

import pytest

from reproducer.data import copy as copy_module
from reproducer.data import verify as verify_module
from reproducer.data.copy import CopyOptions, copy, target_rdb_version
from reproducer.data.endpoint import parse_endpoint
from reproducer.data.resp import RawConnection
from reproducer.data.topology import discover, owned_key
from reproducer.data.verify import VerifyOptions, verify
from reproducer.sandbox.fleet import AclUser

BIG = 20_000  # WHOLE_VALUE_BYTES for these tests: a payload above it is rebuilt alone, in chunks


def every_encoding(client) -> dict[str, int]:
    """Keys of every type and encoding, some with TTLs; returns how many keys of types RDB 10 lacks."""
    client.set("str:int", 12345)
    client.set("str:embstr", "short")
    client.set("str:raw", "r" * 300)
    client.set("str:binary", bytes(range(256)) * 3)
    client.set("str:big", b"\x00\xff" * 150_000)  # LZF-compressible, over BIG
    client.set("str:ttl", "soon", px=3_600_000)
    client.hset("hash:listpack", mapping={"a": "1", "b": "2"})
    client.hset("hash:table", mapping={f"f{i}": "v" * 80 for i in range(200)})
    client.hset("hash:empty-value", mapping={"": "", "k": ""})
    client.sadd("set:intset", 1, 2, 3, -7)
    client.sadd("set:listpack", "a", "b", "c")
    client.sadd("set:listpack-ttl", "x", "y")
    client.pexpire("set:listpack-ttl", 7_200_000)
    client.sadd("set:table", *[f"m{i}" for i in range(300)])
    client.zadd("zset:listpack", {"a": 1.5, "b": -2, "c": float("inf")})
    client.zadd("zset:skiplist", {f"m{i}": i / 3 for i in range(300)})
    client.rpush("list:small", "a", "b", "c")
    client.rpush("list:quicklist", *[f"item-{i}-" + "x" * 40 for i in range(3000)])
    client.pexpire("list:quicklist", 9_000_000)
    for index in range(5):
        client.xadd("stream:groups", {"f": index, "dup": "a"}, id=f"{index + 1}-0")
    client.execute_command("XADD", "stream:dupfields", "1-0", "a", "1", "a", "2")
    client.xgroup_create("stream:groups", "readers", id="0")
    client.xgroup_create("stream:groups", "late", id="3-0")
    client.xreadgroup("readers", "alice", {"stream:groups": ">"}, count=2)
    client.xdel("stream:groups", "5-0")
    client.xgroup_create("stream:empty", "g", id="$", mkstream=True)
    rng = random.Random(5)
    for index in range(1500):  # over BIG (incompressible values): rebuilt alone, in chunks
        client.xadd("stream:big", {"n": index, "v": rng.randbytes(20).hex()})
    client.pexpire("stream:groups", 5_000_000)
    # the small strings go by GET/SET, of which an RDB stream holds str:int as an integer and str:raw, str:binary
    # compressed (LZF)
    return {"small_strings": 5, "encoded_strings": 3}


@pytest.fixture
def small_whole(monkeypatch):
    monkeypatch.setattr(copy_module, "WHOLE_VALUE_BYTES", BIG)
    monkeypatch.setattr(verify_module, "WHOLE_VALUE_BYTES", BIG)


def text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def endpoint(fleet) -> object:
    return parse_endpoint(f"valkey://127.0.0.1:{fleet.primary.port}", environ={})


def per_key_rebuilds(monkeypatch) -> list[bytes]:
    seen: list[bytes] = []
    original = copy_module._NodeCopier._rebuild

    def counting(self, db, key):
        seen.append(key)
        return original(self, db, key)

    monkeypatch.setattr(copy_module._NodeCopier, "_rebuild", counting)
    return seen


@pytest.mark.parametrize("read", ["scan", "sync"])
@pytest.mark.parametrize(("source_engine", "target_engine"), [("valkey", "redis"), ("redis", "valkey")])
def test_every_type_and_encoding_crosses_engines_identically(
    fleets, monkeypatch, small_whole, source_engine, target_engine, read
):
    src, dst = fleets(engine=source_engine), fleets(engine=target_engine)
    expected = every_encoding(src.client(src.primary))
    alone = per_key_rebuilds(monkeypatch)
    result = copy(endpoint(src), endpoint(dst), CopyOptions(batch=7, read=read))
    total = src.client(src.primary).dbsize()
    assert result.total.copied + result.total.rebuilt == total
    if target_engine == "redis":  # RDB 11 payloads: the known types re-stamped, the others rewritten
        # a scan takes every small string with GET; a snapshot only those it holds raw (not as an integer or LZF)
        plain = expected["small_strings"] - (expected["encoded_strings"] if read == "sync" else 0)
        assert result.total.converted == total - plain and result.total.rebuilt == 0 and alone == []
        pending = dst.client(dst.primary).xpending("stream:groups", "readers")
        assert pending["pending"] == 2 and {text(c["name"]) for c in pending["consumers"]} == {"alice"}
    else:  # RDB 10 payloads go into Valkey 8 as they are
        assert result.total.rebuilt == result.total.converted == 0 and alone == []
    report = verify(endpoint(src), endpoint(dst), VerifyOptions(ttl_tolerance_ms=2000))
    assert report.ok and report.compared == total, report.to_dict()
    back = verify(endpoint(dst), endpoint(src), VerifyOptions(ttl_tolerance_ms=2000))
    assert back.ok, back.to_dict()
    target = dst.client(dst.primary)
    raw = RawConnection("127.0.0.1", dst.primary.port)
    assert raw.call("XRANGE", "stream:dupfields", "-", "+") == [[b"1-0", [b"a", b"1", b"a", b"2"]]]
    raw.close()
    groups = {text(g["name"]): text(g["last-delivered-id"]) for g in target.xinfo_groups("stream:groups")}
    assert groups == {"readers": "2-0", "late": "3-0"}
    assert text(target.xinfo_stream("stream:groups")["max-deleted-entry-id"]) == "5-0"
    assert 0 < target.pttl("set:listpack-ttl") <= 7_200_000 and target.pttl("stream:empty") == -1


def test_verify_across_engines_finds_each_changed_value(fleets, small_whole):
    src, dst = fleets(engine="valkey"), fleets(engine="redis")
    every_encoding(src.client(src.primary))
    copy(endpoint(src), endpoint(dst), CopyOptions())
    target = dst.client(dst.primary)
    target.sadd("set:listpack", "intruder")  # a type RDB 10 lacks: compared as data
    target.hset("hash:table", "f7", "changed")  # a hash table: payload order differs anyway
    target.zadd("zset:skiplist", {"m5": 99})
    target.execute_command("XGROUP", "SETID", "stream:groups", "late", "4-0")
    target.rpush("list:quicklist", "tail")
    target.xadd("stream:big", {"n": "extra"})  # over BIG: compared alone, in chunks
    report = verify(endpoint(src), endpoint(dst), VerifyOptions(ttl_tolerance_ms=2000))
    changed = {d["key"] for d in report.differences if d["problem"] == "value_mismatch"}
    assert changed == {"set:listpack", "hash:table", "zset:skiplist", "stream:groups", "list:quicklist", "stream:big"}
    assert report.value_mismatch == 6 and report.missing == report.type_mismatch == 0


def test_target_rdb_version_from_info_or_by_a_restore_probe(fleets):
    users = (AclUser("noinfo", "n0info-pw", "~* &* +@all -info"),)
    redis, valkey_fleet = fleets(engine="redis", users=users), fleets(engine="valkey", users=users)
    for fleet, version in ((redis, 10), (valkey_fleet, 11)):
        for user, password in ((None, None), ("noinfo", "n0info-pw")):
            admin = user is None
            conn = RawConnection(
                "127.0.0.1",
                fleet.primary.port,
                username="reproducer-sandbox-admin" if admin else user,
                password=fleet._state.admin_password if admin else password,
            )
            try:
                assert target_rdb_version(conn) == version
            finally:
                conn.close()
        assert fleet.client(fleet.primary).dbsize() == 0  # the probe key is gone


def test_valkey_into_a_redis_7_cluster_with_tls(fleets, small_whole):
    """The Redis-only clouds' shape: a TLS cluster of Redis 7.0; rewritten payloads are routed to their shards.

    (Keys rebuilt with type commands are routed the same way: ``test_copy.py``'s foreign version into 3 shards.)
    """
    src = fleets(engine="valkey")
    dst = fleets(engine="redis", topology="cluster", shards=3, tls=True)
    every_encoding(src.client(src.primary))
    target = parse_endpoint(f"valkeys+cluster://127.0.0.1:{dst.servers[0].port}?ca={dst.tls_files.ca_cert}", environ={})
    result = copy(endpoint(src), target, CopyOptions(batch=5))
    assert result.total.rebuilt == 0 and result.total.copied == 21 and result.total.converted >= 16
    report = verify(endpoint(src), target, VerifyOptions(ttl_tolerance_ms=2000))
    assert report.ok and report.compared == 21, report.to_dict()


def test_the_restore_probe_on_each_node_of_a_cluster_uses_a_key_that_node_owns(fleets):
    """Without INFO, every primary of a Redis 7.0 cluster is probed with a key in its own slots: never MOVED."""
    users = (AclUser("noinfo", "n0info-pw", "~* &* +@all -info"),)
    cluster = fleets(engine="redis", topology="cluster", shards=3, users=users)
    url = f"valkey+cluster://noinfo@127.0.0.1:{cluster.servers[0].port}?password_env=PW"
    layout = discover(parse_endpoint(url, environ={"PW": "n0info-pw"}))
    assert len(layout.primaries) == 3
    for node in layout.primaries:
        conn = RawConnection(*node, username="noinfo", password="n0info-pw")
        try:
            probe = owned_key(layout, node, b"__reproducer:rdb-probe")
            assert target_rdb_version(conn, probe) == 10
        finally:
            conn.close()
    assert sum(int(cluster.client(node).dbsize()) for node in cluster.servers if node.role == "primary") == 0


def command_calls(fleet, name: str) -> int:
    stats = fleet.client(fleet.primary).info("commandstats")
    return int(stats.get(f"cmdstat_{name}", {}).get("calls", 0))


def payload_comparisons(monkeypatch) -> list[int]:
    seen: list[int] = []
    original = verify_module.snapshot.same_data

    def counting(left, right):
        seen.append(left[0])
        return original(left, right)

    monkeypatch.setattr(verify_module.snapshot, "same_data", counting)
    return seen


@pytest.mark.parametrize("read", ["scan", "sync"])
@pytest.mark.parametrize(("source_engine", "target_engine"), [("valkey", "redis"), ("redis", "valkey")])
def test_verify_across_engines_reads_sets_by_members_and_streams_from_their_payloads(
    fleets, monkeypatch, small_whole, source_engine, target_engine, read
):
    """A listpack set (RDB 11) against Redis 7.0's intset or hash table always differs as bytes: sets are read with
    SMEMBERS on both sides (the source's decoded from its snapshot) and compared as sets, whatever order each engine
    gives. A stream with consumer active times against one without is compared from the payloads, with no read by
    type."""
    src, dst = fleets(engine=source_engine), fleets(engine=target_engine)
    client = src.client(src.primary)
    every_encoding(client)
    client.sadd("set:ints", *range(50))  # an intset on both sides, same bytes
    client.sadd("set:ints-and-text", *range(20), "text")  # a listpack, then a hash table
    client.sadd("set:many", *[f"member-{i}" for i in range(400)])  # members kept as a digest of them, sorted
    client.delete("stream:big")  # over BIG: compared in windows (XRANGE) whatever its encoding
    sets = sum(1 for key in client.scan_iter(_type="set"))
    copy(endpoint(src), endpoint(dst), CopyOptions())
    for fleet in (src, dst):
        fleet.admin(fleet.primary, "CONFIG", "RESETSTAT")
    compared = payload_comparisons(monkeypatch)
    report = verify(endpoint(src), endpoint(dst), VerifyOptions(ttl_tolerance_ms=2000, read=read))
    assert report.ok and report.source_counts["0"]["set"] == sets, report.to_dict()
    assert command_calls(src, "smembers") == (sets if read == "scan" else 0)
    assert command_calls(dst, "smembers") == sets
    for fleet in (src, dst):
        assert command_calls(fleet, "xrange") == 0
    assert compared and all(kind in (15, 19, 21) for kind in compared), compared  # streams only, no set
    dst.client(dst.primary).sadd("set:ints-and-text", "intruder")
    dst.client(dst.primary).srem("set:many", "member-7")
    dst.client(dst.primary).sadd("set:many", "member-7-")  # as many members, as many bytes, one differs
    dst.client(dst.primary).execute_command("XGROUP", "SETID", "stream:groups", "late", "4-0")
    report = verify(endpoint(src), endpoint(dst), VerifyOptions(ttl_tolerance_ms=2000, read=read))
    changed = {d["key"]: d["problem"] for d in report.differences}
    assert changed == dict.fromkeys(("set:ints-and-text", "set:many", "stream:groups"), "value_mismatch"), changed


def test_verify_on_one_engine_dumps_sets(fleets):
    """Engines that encode sets alike compare their payloads: no SMEMBERS."""
    src, dst = fleets(engine="valkey"), fleets(engine="valkey")
    every_encoding(src.client(src.primary))
    copy(endpoint(src), endpoint(dst), CopyOptions())
    report = verify(endpoint(src), endpoint(dst), VerifyOptions(ttl_tolerance_ms=2000))
    assert report.ok, report.to_dict()
    assert command_calls(src, "smembers") == command_calls(dst, "smembers") == 0
    assert command_calls(dst, "dump") > 0


def test_a_set_gone_or_retyped_between_its_type_and_its_members_is_told_apart(fleets, monkeypatch):
    """SMEMBERS answers no member for a key gone (a set is never empty) and WRONGTYPE for one that is a set no more."""
    src, dst = fleets(engine="valkey"), fleets(engine="redis")
    client = src.client(src.primary)
    for index in range(6):
        client.sadd(f"set:{index}", "a", "b", index)
    copy(endpoint(src), endpoint(dst), CopyOptions())
    original = verify_module._Checker._groups

    def changed_after_typing(self, conn, keys, usage, types):
        groups = list(original(self, conn, keys, usage, types))
        client.delete("set:1")
        client.delete("set:2")
        client.set("set:2", "now a string")
        return iter(groups)

    monkeypatch.setattr(verify_module._Checker, "_groups", changed_after_typing)
    report = verify(endpoint(src), endpoint(dst), VerifyOptions(ttl_tolerance_ms=2000, read="scan"))  # typed first
    assert report.expired_meanwhile == 1, report.to_dict()
    problems = {d["key"]: d["problem"] for d in report.differences}
    assert problems == {"set:2": "type_mismatch", "set:1": "extra_in_target"}, report.differences
    assert report.compared == 5


@pytest.mark.parametrize("engine", ["valkey", "redis"])
def test_a_payloads_first_byte_names_the_type_the_server_reports_for_every_encoding(fleets, engine):
    """Verify tells a key's type from its DUMP payload's first byte, not TYPE: the two agree for every encoding
    either engine writes (a byte it does not know stays unnamed, and TYPE is asked)."""
    fleet = fleets(engine=engine)
    every_encoding(fleet.client(fleet.primary))
    raw = RawConnection("127.0.0.1", fleet.primary.port)
    try:
        for key in raw.call("KEYS", "*"):
            payload, kind = raw.call("DUMP", key), raw.call("TYPE", key)
            assert verify_module._PAYLOAD_TYPES[payload[0]] == kind, (key, payload[0], kind)
    finally:
        raw.close()
    assert not {6, 7} & set(verify_module._PAYLOAD_TYPES)  # a module's payload: its type's name is the module's
