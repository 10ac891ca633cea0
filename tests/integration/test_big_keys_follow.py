"""Big keys when following, and when MEMORY USAGE is refused: still never read whole.

A key over the byte bound that changes while following is re-copied a window at a time (temporary name, then
RENAME, TTL kept), never DUMPed. A user without ``+memory`` has its keys sized by their types' size commands
(STRLEN, or a count times a sample), so copy and verify send big values in windows from the first key on. The bound
is lowered so "big" is a few hundred KB; "never read whole" is read from the source's INFO commandstats.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import pytest

from reproducer.data import sizing
from reproducer.data.copy import CopyOptions, Stats, copy
from reproducer.data.endpoint import Endpoint, parse_endpoint
from reproducer.data.follow import Follower
from reproducer.data.resp import RawConnection
from reproducer.data.verify import VerifyOptions, verify
from reproducer.sandbox.fleet import AclUser, Fleet, Node
from tests.support.fleets import primary_client
from tests.support.wait import eventually

BOUND = 64 * 1024
HOUR_MS = 3_600_000
NO_MEMORY = AclUser("mover", "m0ver-pw", "~* &* +@all -memory")


def ep(fleet: Fleet, user: AclUser | None = None) -> Endpoint:
    """The fleet's endpoint, as ``user`` when given."""
    if user is None:
        return parse_endpoint(f"valkey://127.0.0.1:{fleet.primary.port}", environ={})
    url = f"valkey://{user.name}@127.0.0.1:{fleet.primary.port}?password_env=PW"
    return parse_endpoint(url, environ={"PW": user.password})


def calls(fleet: Fleet) -> dict[str, int]:
    """Calls per command on the fleet's primary (INFO commandstats)."""
    return calls_on(fleet, fleet.primary)


def big_hash(fleet: Fleet, key: str, fields: int = 3000) -> None:
    """``key`` as a hash of about 300 KB (``fields`` fields of 100 bytes), expiring in an hour, in one transaction."""
    pipe = fleet.client(fleet.primary).pipeline(transaction=True)
    pipe.delete(key)
    pipe.hset(key, mapping={f"f{i}": os.urandom(50).hex() for i in range(fields)})
    pipe.pexpire(key, HOUR_MS)
    pipe.execute()


@contextlib.contextmanager
def following(source: Endpoint, dst: Fleet) -> Iterator[Follower]:
    """A follower of ``source`` into ``dst`` started before the bulk copy, applying after it; stopped at the end."""
    follower = Follower(source, ep(dst), max_batch_bytes=BOUND)
    follower.start()
    try:
        copy(source, ep(dst), CopyOptions(max_batch_bytes=BOUND))
        follower.copy_done.set()
        yield follower
    finally:
        follower.stop()


def assert_ttl_kept(fleet: Fleet, *keys: str) -> None:
    target = fleet.client(fleet.primary)
    for key in keys:
        assert HOUR_MS - 60_000 < target.pttl(key) <= HOUR_MS, key


@pytest.mark.parametrize("user", [None, NO_MEMORY], ids=["memory-usage", "no-memory"])
def test_a_big_hash_changed_while_following_is_recopied_in_windows_never_dumped(fleets, user):
    src, dst = fleets(users=(NO_MEMORY,)), fleets()
    src.set_config("notify-keyspace-events", "KA")
    client = src.client(src.primary)
    client.mset({f"small:{i}": f"value-{i}" for i in range(20)})
    big_hash(src, "big:hash", fields=1000)
    with following(ep(src, user), dst) as follower:
        before = calls(src)
        big_hash(src, "big:hash")  # over the bound: 3000 fields, about 300 KB
        target = dst.client(dst.primary)
        eventually(lambda: target.hlen("big:hash") == 3000, "the follower to re-copy the changed big hash")
        eventually(lambda: follower.stats.behind == 0, "the follower to apply every change")
        after = calls(src)
        assert after.get("dump", 0) == before.get("dump", 0)  # never dumped: read in windows
        assert after["hscan"] - before.get("hscan", 0) >= 30  # windows of about BOUND / 8 bytes
        assert_ttl_kept(dst, "big:hash")
        assert target.keys("__reproducer:partial:*") == []
        client.set("small:3", "changed")  # a key under the bound stays on the fast DUMP path
        eventually(lambda: target.get("small:3") == "changed", "the follower to re-copy a small key")
        assert calls(src)["dump"] > after.get("dump", 0)
        if user is None:  # MEMORY USAGE answers: no size command of any type is sent
            assert not {"strlen", "hlen", "hrandfield"} & set(calls(src))
    assert follower.stats.recopied >= 2
    assert verify(ep(src), ep(dst), VerifyOptions(max_batch_bytes=BOUND)).ok


def tail_heavy_list(fleet: Fleet, key: str) -> None:
    """``key`` as five tiny elements, then twenty of 20 KB (400 KB): sized from its head, far under the bound."""
    pipe = fleet.client(fleet.primary).pipeline(transaction=True)
    pipe.delete(key)
    pipe.rpush(key, *[f"tiny-{i}" for i in range(5)], *[os.urandom(10_000).hex() for _ in range(20)])
    pipe.pexpire(key, HOUR_MS)
    pipe.execute()


def test_a_list_sized_from_its_small_head_while_following_is_recopied_in_windows_not_read_whole(fleets):
    src, dst = fleets(users=(NO_MEMORY,)), fleets()
    src.set_config("notify-keyspace-events", "KA")
    src.client(src.primary).set("small:1", "value")
    with following(ep(src, NO_MEMORY), dst) as follower:
        before = calls(src)
        tail_heavy_list(src, "tail:heavy")
        target = dst.client(dst.primary)
        eventually(lambda: target.llen("tail:heavy") == 25, "the follower to re-copy the list")
        eventually(lambda: follower.stats.behind == 0, "the follower to apply every change")
        after = calls(src)
        assert after["lrange"] - before.get("lrange", 0) >= 5, "the list was not read in windows"
        assert_ttl_kept(dst, "tail:heavy")
    assert verify(ep(src), ep(dst), VerifyOptions(max_batch_bytes=BOUND)).ok


def test_without_memory_usage_a_big_string_and_a_big_hash_are_copied_and_verified_in_windows(fleets):
    src, dst = fleets(users=(NO_MEMORY,)), fleets(users=(NO_MEMORY,))
    client = src.client(src.primary)
    client.set("big:string", os.urandom(150_000).hex(), px=HOUR_MS)  # 300 KB
    big_hash(src, "big:hash")
    client.mset({f"small:{i}": f"value-{i}" for i in range(30)})
    client.hset("small:hash", mapping={"a": "1", "b": "2"})
    client.rpush("small:list", *range(10))
    result = copy(ep(src, NO_MEMORY), ep(dst, NO_MEMORY), CopyOptions(max_batch_bytes=BOUND, read="scan"))
    assert (result.total.scanned, result.total.rebuilt) == (34, 2)
    source = calls(src)
    assert source["dump"] == 2  # small:hash and small:list; the small strings by GET, the big values never
    assert source["getrange"] >= 300_000 // (BOUND // 8) and source["hscan"] >= 30
    assert calls(dst)["rename"] == 2
    assert_ttl_kept(dst, "big:string", "big:hash")
    scanned = VerifyOptions(max_batch_bytes=BOUND, read="scan")  # sized without MEMORY USAGE, as the copy was
    report = verify(ep(src, NO_MEMORY), ep(dst, NO_MEMORY), scanned)
    assert report.ok and report.compared == 34, report.to_dict()
    assert calls(src)["dump"] == 4  # verify too dumped the two small collections only
    dst.client(dst.primary).hset("big:hash", "f1234", "changed")
    report = verify(ep(src, NO_MEMORY), ep(dst, NO_MEMORY), scanned)
    assert [d["detail"] for d in report.differences] == ["values differ: field 'f1234' differs"]


def test_without_memory_usage_collections_of_big_elements_are_sized_one_at_a_time_and_copied_right(fleets):
    """Elements of 20 KB: a sample of five is over the bound, so each round trip samples one collection."""
    src, dst = fleets(users=(NO_MEMORY,)), fleets()
    client = src.client(src.primary)
    element = os.urandom(10_000).hex()
    for index in range(8):
        client.hset(f"wide:{index}", mapping={f"f{i}": element for i in range(4)})  # 80 KB: over the bound
        client.rpush(f"narrow:{index}", element, element)  # 40 KB: within it
    client.mset({f"small:{i}": f"value-{i}" for i in range(30)})
    result = copy(ep(src, NO_MEMORY), ep(dst), CopyOptions(max_batch_bytes=BOUND, batch=10, read="scan"))
    assert (result.total.scanned, result.total.copied, result.total.rebuilt) == (46, 38, 8)
    source = calls(src)
    assert source["dump"] == 8 and source["hrandfield"] == 8 and source["lrange"] >= 8  # the lists only dumped
    assert verify(ep(src), ep(dst), VerifyOptions(max_batch_bytes=BOUND)).ok


def test_a_string_that_becomes_a_big_hash_between_sizing_and_reading_is_copied_in_windows(fleets):
    src, dst = fleets(users=(NO_MEMORY,)), fleets()
    client = src.client(src.primary)
    for index in range(6):  # 40 KB each: one string a batch, read with GET
        client.set(f"s:{index}", os.urandom(20_000).hex())
    _cursor, order = client.scan(0, count=1000)
    last = order[-1]  # sized with the others up front, read five batches after the first
    changed: list[str] = []

    def turn_into_hash(_stats: Stats, _expected: int) -> None:
        if not changed:
            changed.append(last)
            big_hash(src, last)

    options = CopyOptions(max_batch_bytes=BOUND, read="scan")  # a scan sizes keys before reading them
    result = copy(ep(src, NO_MEMORY), ep(dst), options, turn_into_hash)
    assert changed and result.total.rebuilt == 1
    source = calls(src)
    assert source.get("hgetall", 0) == 0 and source.get("dump", 0) == 0 and source["hscan"] >= 30
    assert dst.client(dst.primary).hlen(last) == 3000
    assert_ttl_kept(dst, last)
    assert verify(ep(src), ep(dst), VerifyOptions(max_batch_bytes=BOUND)).ok


def test_verify_compares_in_windows_a_string_that_became_a_big_hash_after_it_was_sized(fleets):
    src, dst = fleets(users=(NO_MEMORY,)), fleets()
    for fleet in (src, dst):
        fleet.client(fleet.primary).mset({f"s:{index}": "x" * 40_000 for index in range(6)})
    _cursor, order = src.client(src.primary).scan(0, count=1000)
    last = order[-1]  # sized with the others, compared after the first group's progress
    fields = {f"f{i}": "v" * 100 for i in range(3000)}
    changed: list[str] = []

    def turn_into_hash(_compared: int) -> None:
        if not changed:
            changed.append(last)
            for fleet in (src, dst):
                pipe = fleet.client(fleet.primary).pipeline(transaction=True)
                pipe.delete(last).hset(last, mapping=fields).execute()

    options = VerifyOptions(max_batch_bytes=BOUND, progress=turn_into_hash, read="scan")  # sized, then changed
    report = verify(ep(src, NO_MEMORY), ep(dst), options)
    assert changed and report.ok and report.compared == 6, report.to_dict()
    assert calls(src).get("hgetall", 0) == 0 and calls(src)["hscan"] >= 30  # compared in windows, never whole


def test_a_key_that_changes_type_between_type_and_its_size_commands_counts_as_over_any_bound(fleets):
    src = fleets()
    client = src.client(src.primary)
    client.set("turns", "a string")
    client.rpush("stays", *range(100))
    conn = RawConnection("127.0.0.1", src.primary.port)
    try:
        conn.send(sizing.types_of([b"turns", b"stays", b"gone"]))
        types = conn.read(3)
        client.delete("turns")
        client.sadd("turns", "now", "a", "set")
        sizes = sizing.estimate_sizes(conn, [b"turns", b"stays", b"gone"], types, sizing.Sampler(BOUND))
    finally:
        conn.close()
    assert types == [b"string", b"list", b"none"]
    assert sizes[0] == sizing.UNBOUNDED and sizes[2] == 0
    assert 100 * 2 <= sizes[1] <= 100 * (2 + sizing.ELEMENT_OVERHEAD)


def test_following_a_three_shard_cluster_recopies_big_keys_of_every_shard_in_windows(fleets):
    """Each source primary is subscribed to: a big hash changed on each shard comes over in windows, TTL kept."""
    src, dst = fleets(topology="cluster", shards=3), fleets()
    src.set_config("notify-keyspace-events", "KA")
    primaries = [node for node in src.servers if node.role == "primary"]
    cluster = primary_client(src)
    names = _one_name_per_shard(src, primaries)
    for index in range(30):
        cluster.set(f"small:{index}", f"value-{index}")
    for name in names:
        cluster.hset(name, mapping={"seed": "1"})
    source = parse_endpoint(f"valkey+cluster://127.0.0.1:{primaries[0].port}", environ={})
    with following(source, dst) as follower:
        before = [calls_on(src, node) for node in primaries]
        for name in names:  # over the bound: 3000 fields, about 300 KB each, one on each shard
            pipe = cluster.pipeline(transaction=False)
            pipe.hset(name, mapping={f"f{i}": os.urandom(50).hex() for i in range(3000)})
            pipe.pexpire(name, HOUR_MS)
            pipe.execute()
        target = dst.client(dst.primary)
        eventually(lambda: all(target.hlen(name) == 3001 for name in names), "every shard's big hash re-copied")
        eventually(lambda: follower.stats.behind == 0, "the follower to apply every change")
        after = [calls_on(src, node) for node in primaries]
        for was, now in zip(before, after, strict=True):  # on every shard: never dumped, read in windows
            assert now.get("dump", 0) == was.get("dump", 0)
            assert now["hscan"] - was.get("hscan", 0) >= 30
        assert_ttl_kept(dst, *names)
        assert target.keys("__reproducer:partial:*") == []
    assert follower.stats.recopied >= 3
    assert verify(source, ep(dst), VerifyOptions(max_batch_bytes=BOUND)).ok


def calls_on(fleet: Fleet, node: Node) -> dict[str, int]:
    """Calls per command on one node of the fleet (INFO commandstats)."""
    stats = fleet.client(node).info("commandstats")
    return {name.removeprefix("cmdstat_"): entry["calls"] for name, entry in stats.items()}


def _one_name_per_shard(fleet: Fleet, primaries: list[Node]) -> list[str]:
    """A key name owned by each of ``primaries``, in their order (from each node's CLUSTER KEYSLOT and slot map)."""
    owners: dict[int, Node] = {}
    for start, end, owner, *_replicas in fleet.client(primaries[0]).execute_command("CLUSTER", "SLOTS"):
        node = next(n for n in primaries if n.port == int(owner[1]))
        owners.update(dict.fromkeys(range(int(start), int(end) + 1), node))
    names: dict[int, str] = {}
    for index in range(1000):
        name = f"big:{index}"
        owner = owners[int(fleet.client(primaries[0]).execute_command("CLUSTER", "KEYSLOT", name))]
        names.setdefault(owner.port, name)
        if len(names) == len(primaries):
            break
    return [names[node.port] for node in primaries]
