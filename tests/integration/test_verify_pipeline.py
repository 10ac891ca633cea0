"""Verify asks both sides for the next group before it reads one: the paths that drop connections with a later
group still asked (a value far over its size, a slot moving on the target) ask that group again."""

from __future__ import annotations

import os
from typing import Any

import pytest

from reproducer.data import sizing
from reproducer.data import verify as verify_module
from reproducer.data.endpoint import Endpoint, parse_endpoint
from reproducer.data.topology import key_slot
from reproducer.data.verify import VerifyOptions, verify
from reproducer.sandbox.fleet import AclUser, Fleet
from tests.support.fleets import primary_client

NO_MEMORY = AclUser("mover", "m0ver-pw", "~* &* +@all -memory")
BOUND = 1024 * 1024
HOUR_MS = 3_600_000
PAGE = 20  # keys a SCAN page: every page is a group, and many groups are asked one after the other
#: The source read with SCAN, and from its snapshot (each of its batches a group, asked as a page's are).
READS = pytest.mark.parametrize("read", ["scan", "sync"])


def ep(fleet: Fleet, user: AclUser | None = None) -> Endpoint:
    """The fleet's endpoint (a cluster's as one), as ``user`` when given."""
    scheme = "valkey+cluster" if fleet.spec.topology == "cluster" else "valkey"
    if user is None:
        return parse_endpoint(f"{scheme}://127.0.0.1:{fleet.primary.port}", environ={})
    url = f"{scheme}://{user.name}@127.0.0.1:{fleet.primary.port}?password_env=PW"
    return parse_endpoint(url, environ={"PW": user.password})


def test_a_value_far_over_its_size_is_compared_in_windows_and_the_groups_asked_after_it_still_compared(fleets):
    """Without MEMORY USAGE each list is sized from its first five elements: five tiny ones, then 24 of 200 KB.

    Its reply passes twice the bound while the next group is already asked: the connections are dropped, the list
    is compared in windows, and every later group is asked again. Each small key differs on the target, so a group
    lost or read against another's replies shows in the counts.
    """
    source, target = fleets(users=(NO_MEMORY,)), fleets(users=(NO_MEMORY,))
    blob = os.urandom(200_000)
    heavy = [f"heavy:{index}" for index in range(3)]
    for fleet in (source, target):
        client = primary_client(fleet)
        for name in heavy:
            client.rpush(name, *[f"small-{i}" for i in range(5)])
            client.rpush(name, *[blob[i:] + blob[:i] for i in range(24)])
        client.mset({f"small:{i}": f"value-{i}" for i in range(1000)})
    primary_client(target).mset({f"small:{i}": f"other-{i}" for i in range(1000)})
    client = primary_client(source)
    estimate = client.llen(heavy[0]) * (len(client.lindex(heavy[0], 0)) + sizing.ELEMENT_OVERHEAD)
    assert estimate < BOUND < 2 * BOUND < 24 * len(blob), "the lists are not under-counted: the test proves nothing"

    options = VerifyOptions(batch=PAGE, max_batch_bytes=BOUND, read="scan")  # sized by the scan's MEMORY USAGE
    report = verify(ep(source, NO_MEMORY), ep(target, NO_MEMORY), options)

    assert report.compared == 1003, report.to_dict()
    assert report.value_mismatch == 1000, report.to_dict()
    assert report.missing == report.type_mismatch == report.ttl_mismatch == 0, report.to_dict()
    assert {d["key"] for d in report.differences} <= {f"small:{i}" for i in range(1000)}


@READS
def test_a_slot_moving_on_the_target_mid_verify_is_followed_and_the_groups_asked_after_it_compared(fleets, read):
    """After the first group, a slot holding 200 of the 600 keys moves to another primary of the target.

    Groups asked before the move and read after it are redirected while the next group waits on the same
    connections: those are dropped, the slot map refreshed, and the waiting groups asked again. Keys alternate
    between strings and hashes and each has its own TTL, so replies read for the wrong keys show as differences.
    """
    source, target = fleets(), fleets(topology="cluster", shards=3)
    keys = [f"k:{i}" for i in range(400)] + [f"{{moving}}:{i}" for i in range(200)]
    for fleet in (source, target):
        fill(primary_client(fleet), keys)
    moved: list[int] = []

    def move_after_the_first_group(_compared: int) -> None:
        if not moved:
            moved.append(move_slot(target, key_slot(b"{moving}")))

    options = VerifyOptions(batch=PAGE, progress=move_after_the_first_group, read=read)
    report = verify(ep(source), ep(target), options)

    assert moved == [200]
    assert report.ok and report.compared == 600, report.to_dict()
    assert report.target_keys == {"0": 600}, report.to_dict()


def fill(client: Any, keys: list[str]) -> None:
    """Strings and hashes in turn, each key with a TTL ten seconds apart from the one before."""
    pipe = client.pipeline(transaction=False)
    for index, key in enumerate(keys):
        if index % 2:
            pipe.hset(key, mapping={"field": key})
        else:
            pipe.set(key, key)
        pipe.pexpire(key, HOUR_MS + index * 10_000)
    pipe.execute()


def move_slot(fleet: Fleet, slot: int) -> int:
    """Move ``slot`` and its keys to another primary of the cluster ``fleet``; the number of keys moved."""
    primaries = [node for node in fleet.servers if node.role == "primary"]
    ids = {node.port: fleet.admin(node, "CLUSTER", "MYID") for node in primaries}
    owner = next(node for node in primaries if fleet.admin(node, "CLUSTER", "COUNTKEYSINSLOT", slot) > 0)
    receiver = next(node for node in primaries if node is not owner)
    old, new = fleet.client(owner), fleet.client(receiver)
    keys = old.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 1000)
    values = [(key, old.dump(key), old.pttl(key)) for key in keys]
    old.delete(*keys)
    for node in primaries:
        fleet.admin(node, "CLUSTER", "SETSLOT", slot, "NODE", ids[receiver.port])
    for key, payload, pttl in values:
        new.restore(key, max(pttl, 0), payload)
    return len(values)


def found_clients(kills: list[int]) -> int:
    """How many of these CLIENT KILLs found a client to kill (one finds none while verify reads what it had)."""
    return sum(1 for killed in kills if killed)


@READS
def test_connections_the_target_closes_mid_verify_are_made_again_and_the_groups_read_again(fleets, read):
    """After the first group the target drops every client (as a Sentinel reconfiguring it does, or Valkey 8.0's
    TLS writes failing with "bad length" while replies wait): the pending groups are asked again on new
    connections, and every key is still compared, differences included."""
    source, target = fleets(), fleets()
    keys = [f"k:{i}" for i in range(600)]
    for fleet in (source, target):
        fill(primary_client(fleet), keys)
    primary_client(target).set("k:0", "changed", keepttl=True)
    kills: list[int] = []

    def kill_clients(_compared: int) -> None:
        if found_clients(kills) < 3:  # three kills that found a client (describing, values or both)
            kills.append(primary_client(target).client_kill_filter(_type="normal", skipme=True))

    report = verify(ep(source), ep(target), VerifyOptions(batch=PAGE, progress=kill_clients, read=read))

    assert found_clients(kills) == 3, kills
    assert report.compared == 600 and report.value_mismatch == 1, report.to_dict()
    assert [d["key"] for d in report.differences] == ["k:0"], report.to_dict()


def test_connections_the_source_closes_mid_verify_are_made_again_and_the_pages_and_groups_read_again(fleets):
    """The source drops every client three times: the connection paging through the keys (a page's sizes and the
    next SCAN asked ahead), the one describing groups and the one reading values as data are all made again, the
    page asked again at the same cursor, and every key is still compared once, the differences included."""
    source, target = fleets(), fleets()
    keys = [f"k:{i}" for i in range(600)]
    for fleet in (source, target):
        fill(primary_client(fleet), keys)
    primary_client(target).set("k:0", "changed", keepttl=True)
    primary_client(target).hset("k:301", "field", "changed")  # same type, another value: read again as data
    kills: list[int] = []

    def kill_clients(_compared: int) -> None:
        if found_clients(kills) < 3:  # three kills that found clients (pages, groups, values)
            kills.append(primary_client(source).client_kill_filter(_type="normal", skipme=True))

    options = VerifyOptions(batch=PAGE, progress=kill_clients, read="scan")  # a snapshot's connection is a replica's
    report = verify(ep(source), ep(target), options)

    assert found_clients(kills) == 3, kills
    assert report.compared == 600 and report.value_mismatch == 2, report.to_dict()
    assert sorted(d["key"] for d in report.differences) == ["k:0", "k:301"], report.to_dict()


@READS
def test_second_connections_a_server_closed_unseen_are_made_again_before_values_are_compared(fleets, monkeypatch, read):
    """A group's replies can all wait in the socket when the server drops its clients: the loss goes unseen there,
    and the second connections, which read values compared as data, are found closed. They are made again and the
    values read again; the difference is still named."""
    source, target = fleets(), fleets()
    keys = [f"k:{i}" for i in range(100)]
    for fleet in (source, target):
        fill(primary_client(fleet), keys)
    primary_client(target).hset("k:51", "field", "changed")  # same type, another value: read again as data
    original = verify_module._read_values
    kills: list[int] = []

    def read_after_a_kill(conn, asked):
        if not kills:
            for fleet in (source, target):
                kills.append(primary_client(fleet).client_kill_filter(_type="normal", skipme=True))
        return original(conn, asked)

    monkeypatch.setattr(verify_module, "_read_values", read_after_a_kill)
    report = verify(ep(source), ep(target), VerifyOptions(batch=PAGE, read=read))

    assert sum(kills) >= 2, kills
    assert report.compared == 100 and report.value_mismatch == 1, report.to_dict()
    assert [d["key"] for d in report.differences] == ["k:51"], report.to_dict()
