"""Big keys: a value over the byte bound (or the target's proto-max-bulk-len) is never dumped or read whole.

It is copied in byte-bounded windows under a temporary name renamed onto the key once whole (TTL kept), compared in
windows on both sides (naming what differs), and reports progress during the key. The bounds are lowered through
the options so every value here is small.
"""

from __future__ import annotations

import os

import pytest

from reproducer.data import rebuild
from reproducer.data.copy import CopyOptions, Stats, copy
from reproducer.data.endpoint import parse_endpoint
from reproducer.data.topology import key_slot
from reproducer.data.verify import VerifyOptions, verify
from reproducer.errors import DataError
from reproducer.sandbox.fleet import AclUser, Fleet

BOUND = 64 * 1024  # the byte bound: windows of BOUND / 8
HOUR_MS = 3_600_000
BIG_KEYS = ("big:string", "big:hash", "big:set", "big:zset", "big:list", "big:stream")


def ep(fleet: Fleet) -> object:
    kind = "+cluster" if fleet.spec.topology == "cluster" else ""
    return parse_endpoint(f"valkey{kind}://127.0.0.1:{fleet.servers[0].port}", environ={})


def commands(fleet: Fleet) -> dict[str, int]:
    """Calls per command on the fleet's primaries (INFO commandstats)."""
    totals: dict[str, int] = {}
    for node in (n for n in fleet.servers if n.role == "primary"):
        for name, stats in fleet.client(node).info("commandstats").items():
            totals[name.removeprefix("cmdstat_")] = totals.get(name.removeprefix("cmdstat_"), 0) + stats["calls"]
    return totals


def fill_big(fleet: Fleet, prefix: str = "big") -> None:
    """One value of each type, each about 300 KB (over BOUND), each with a TTL of an hour; and a few small keys."""
    client = fleet.client(fleet.primary)
    blob = os.urandom(150_000).hex()
    client.set(f"{prefix}:string", blob, px=HOUR_MS)
    client.hset(f"{prefix}:hash", mapping={f"f{i}": blob[i * 100 : i * 100 + 100] for i in range(3000)})
    client.sadd(f"{prefix}:set", *[blob[i * 100 : i * 100 + 100] for i in range(3000)])
    client.zadd(f"{prefix}:zset", {blob[i * 100 : i * 100 + 100]: i / 7 for i in range(3000)})
    client.rpush(f"{prefix}:list", *[blob[i * 100 : i * 100 + 100] for i in range(3000)])
    for i in range(1, 1501):
        client.xadd(f"{prefix}:stream", {"n": i, "v": blob[i * 100 : i * 100 + 200]}, id=f"{i}-1")
    client.xgroup_create(f"{prefix}:stream", "readers", id="700-1")
    for kind in ("hash", "set", "zset", "list", "stream"):
        client.pexpire(f"{prefix}:{kind}", HOUR_MS)
    client.mset({f"small:{i}": f"value-{i}" for i in range(50)})
    client.hset("small:hash", mapping={"a": "1"})


@pytest.mark.parametrize("read", ["scan", "sync"])
def test_every_type_over_the_byte_bound_is_copied_in_windows_renamed_whole_and_verified(read, fleets):
    src, dst = fleets(), fleets(engine="redis")
    fill_big(src)
    result = copy(ep(src), ep(dst), CopyOptions(max_batch_bytes=BOUND, read=read))
    assert (result.total.scanned, result.total.copied, result.total.rebuilt) == (57, 51, 6)
    source_calls, target_calls = commands(src), commands(dst)
    assert source_calls.get("dump", 0) == (1 if read == "scan" else 0)  # small:hash only: no big value was dumped
    assert source_calls.get("sync", 0) == (read == "sync")
    assert target_calls["restore"] == 1 and target_calls["rename"] == 6
    assert min(target_calls[name] for name in ("hset", "sadd", "zadd", "rpush")) >= 30  # windows of about 8 KB
    assert target_calls["append"] >= 300_000 // (BOUND // 8)
    target = dst.client(dst.primary)
    assert [k for k in target.scan_iter("__reproducer:partial:*")] == []
    for key in BIG_KEYS:
        assert HOUR_MS - 60_000 < target.pttl(key) <= HOUR_MS, key
    assert target.xinfo_groups("big:stream")[0]["last-delivered-id"] == "700-1"
    report = verify(ep(src), ep(dst), VerifyOptions(max_batch_bytes=BOUND, read=read))
    assert report.ok and report.compared == 57, report.to_dict()
    dumps = commands(src).get("dump", 0)  # verify read small:hash only by DUMP (by scan), the big values in windows
    assert dumps <= 2 if read == "scan" else dumps == 0 and commands(src)["sync"] == 2


def test_a_value_restore_could_not_carry_past_the_targets_proto_max_bulk_len_goes_in_chunks(fleets):
    src, dst = fleets(), fleets()
    dst.client(dst.primary).config_set("proto-max-bulk-len", 1024 * 1024)  # Valkey's smallest
    client = src.client(src.primary)
    # 1.8 MB each: within the byte bound, over the limit (a string that long the target refuses in any form)
    client.hset("wide:hash", mapping={f"f{i}": os.urandom(300).hex() for i in range(3000)})
    client.rpush("wide:list", *[os.urandom(300).hex() for _ in range(3000)])
    client.pexpire("wide:list", HOUR_MS)
    result = copy(ep(src), ep(dst), CopyOptions())
    assert (result.total.copied, result.total.rebuilt) == (0, 2)
    assert commands(dst).get("restore", 0) == 0  # never sent: it would have been refused
    assert verify(ep(src), ep(dst), VerifyOptions()).ok


def test_progress_is_reported_during_one_big_key_by_copy_and_verify(fleets):
    src, dst = fleets(), fleets()
    client = src.client(src.primary)
    client.hset("only:hash", mapping={f"field-{i}": os.urandom(100).hex() for i in range(3000)})  # 600 KB
    seen: list[tuple[int, int]] = []

    def progress(stats: Stats, _expected: int) -> None:
        seen.append((stats.scanned, stats.bytes))

    copy(ep(src), ep(dst), CopyOptions(max_batch_bytes=BOUND), progress)
    during = [b for scanned, b in seen if scanned == 1]
    assert len(set(during)) >= 50 and during == sorted(during)  # windows of 8 KB, each told as it lands
    compared: list[int] = []
    report = verify(ep(src), ep(dst), VerifyOptions(max_batch_bytes=BOUND, progress=compared.append))
    assert report.ok and len(compared) >= 50


def test_verify_names_the_element_that_differs_in_each_big_value(fleets):
    src, dst = fleets(), fleets()
    fill_big(src)
    copy(ep(src), ep(dst), CopyOptions(max_batch_bytes=BOUND))
    target = dst.client(dst.primary)
    target.hset("big:hash", "f1234", "changed")
    target.setrange("big:string", 200_000, "x" if target.getrange("big:string", 200_000, 200_000) != "x" else "y")
    member = target.srandmember("big:set")
    target.srem("big:set", member)
    target.sadd("big:set", "someone else")
    target.zincrby("big:zset", 1, target.zrange("big:zset", 10, 10)[0])
    target.lset("big:list", 2500, "changed")
    target.xdel("big:stream", "1000-1")
    report = verify(ep(src), ep(dst), VerifyOptions(max_batch_bytes=BOUND))
    details = {d["key"]: d["detail"] for d in report.differences}
    assert report.value_mismatch == 6 and report.ttl_mismatch == 0, report.to_dict()
    assert details["big:hash"] == "values differ: field 'f1234' differs"
    assert details["big:string"] == "values differ: bytes differ from offset 200000"
    assert details["big:set"].endswith("absent on the target") and "member" in details["big:set"]
    assert details["big:zset"].startswith("values differ: member ") and details["big:zset"].endswith(" differs")
    assert details["big:list"] == "values differ: the lists differ at index 2500"
    assert details["big:stream"] == "values differ: 1500 entries on the source, 1499 on the target"
    assert "changed" not in str(report.to_dict())  # names, offsets and indexes: never a value


def test_a_copy_that_dies_during_a_big_key_leaves_no_key_that_looks_complete(fleets):
    src, dst = fleets(), fleets()
    client = src.client(src.primary)
    client.hset("half:hash", mapping={f"field-{i}": os.urandom(100).hex() for i in range(3000)})

    def dies(stats: Stats, _expected: int) -> None:
        if stats.bytes > 100_000:
            raise RuntimeError("the copier died")

    with pytest.raises(RuntimeError):
        copy(ep(src), ep(dst), CopyOptions(max_batch_bytes=BOUND), dies)
    target = dst.client(dst.primary)
    assert target.exists("half:hash") == 0
    (partial,) = target.keys("__reproducer:partial:*")
    assert 0 < target.hlen(partial) < 3000
    assert 0 < target.pttl(partial) <= rebuild.PARTIAL_TTL_MS  # it goes away by itself


def test_big_keys_land_in_a_cluster_under_a_temporary_name_of_their_own_slot(fleets):
    src, dst = fleets(), fleets(topology="cluster", shards=3)
    client = src.client(src.primary)
    for key in ("{user:7}:big", "plain:big", "no}tag:big"):
        client.hset(key, mapping={f"f{i}": os.urandom(100).hex() for i in range(1000)})
    result = copy(ep(src), ep(dst), CopyOptions(max_batch_bytes=BOUND))
    assert result.total.rebuilt == 3
    assert verify(ep(src), ep(dst), VerifyOptions(max_batch_bytes=BOUND)).ok


@pytest.mark.parametrize("key", [b"{user:7}:big", b"plain", b"a{b", b"a{b}c{d}"])
def test_temporary_names_share_the_keys_cluster_slot(key):
    temp = rebuild.partial_key(key, b"0123abcd", cluster=True)
    assert temp is not None and temp.startswith(rebuild.PARTIAL_PREFIX)
    assert key_slot(temp) == key_slot(key)


@pytest.mark.parametrize("key", [b"", b"no}tag", b"{}x", b"x{}{y}"])
def test_keys_no_temporary_name_can_share_a_slot_with_are_written_in_place_in_a_cluster(key):
    assert rebuild.partial_key(key, b"0123abcd", cluster=True) is None
    assert rebuild.partial_key(key, b"0123abcd", cluster=False) == rebuild.PARTIAL_PREFIX + b"0123abcd"


def test_skip_existing_keeps_the_targets_big_key_and_replace_overwrites_it_whole(fleets):
    src, dst = fleets(), fleets()
    source, target = src.client(src.primary), dst.client(dst.primary)
    source.hset("kept:hash", mapping={f"f{i}": os.urandom(100).hex() for i in range(1000)})
    target.hset("kept:hash", mapping={"theirs": "1"})
    skipped = copy(ep(src), ep(dst), CopyOptions(max_batch_bytes=BOUND, conflict="skip"))
    assert skipped.total.scanned == 1 and target.hgetall("kept:hash") == {"theirs": "1"}
    copy(ep(src), ep(dst), CopyOptions(max_batch_bytes=BOUND, conflict="replace"))
    assert target.hlen("kept:hash") == 1000 and target.keys("__reproducer:partial:*") == []
    assert verify(ep(src), ep(dst), VerifyOptions(max_batch_bytes=BOUND)).ok


def test_skip_existing_keeps_a_key_written_on_the_target_while_the_big_one_was_copied(fleets):
    src, dst = fleets(), fleets()
    source, target = src.client(src.primary), dst.client(dst.primary)
    source.hset("raced:hash", mapping={f"f{i}": os.urandom(100).hex() for i in range(1000)})

    def someone_writes(stats: Stats, _expected: int) -> None:
        if stats.bytes:  # during the first window, after copy looked for the key on the target
            target.set("raced:hash", "written meanwhile", nx=True)

    copy(ep(src), ep(dst), CopyOptions(max_batch_bytes=BOUND, conflict="skip"), someone_writes)
    assert target.get("raced:hash") == "written meanwhile" and target.keys("__reproducer:partial:*") == []


def test_a_target_user_that_may_not_rename_gets_an_error_that_says_which_commands_to_grant(fleets):
    users = (AclUser("mover", "m0ver-pw", "~* &* +@all -rename"),)
    src, dst = fleets(), fleets(users=users)
    src.client(src.primary).hset("denied:hash", mapping={f"f{i}": os.urandom(100).hex() for i in range(1000)})
    target = parse_endpoint(f"valkey://mover@127.0.0.1:{dst.primary.port}?password_env=PW", environ={"PW": "m0ver-pw"})
    with pytest.raises(DataError) as refused:
        copy(ep(src), target, CopyOptions(max_batch_bytes=BOUND))
    assert "no permissions" in refused.value.message and "+rename" in (refused.value.hint or "")
    assert "m0ver-pw" not in str(refused.value.message) + str(refused.value.hint)


def test_the_bytes_counted_are_the_values_once_whether_dumped_first_or_not(fleets):
    src, dst = fleets(), fleets()
    client = src.client(src.primary)
    client.set("counted:string", os.urandom(300_000))  # within the byte bound, over max_payload_bytes: dumped first
    over = copy(ep(src), ep(dst), CopyOptions(max_payload_bytes=100_000))
    assert over.total.bytes == 300_000
    client.set("counted:string", os.urandom(300_000))
    never = copy(ep(src), ep(dst), CopyOptions(max_batch_bytes=BOUND, conflict="replace"))  # never dumped
    assert never.total.bytes == 300_000
