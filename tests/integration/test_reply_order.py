"""Replies on a pipelined connection are read in the order their commands were sent: no path reads replies that
another path's requests are owed, or replies for requests that were never sent (it would wait for them forever)."""

from __future__ import annotations

import pytest

from reproducer.data import copy as copy_module
from reproducer.data import topology
from reproducer.data.copy import CopyOptions, copy
from reproducer.data.endpoint import Endpoint, parse_endpoint
from reproducer.errors import DataError
from reproducer.sandbox.fleet import Fleet
from tests.support.fleets import primary_client

BATCH = 50
KEYS = 600
#: A connection's read timeout for the stalled-target test, and a pause of the target's writes longer than it.
READ_TIMEOUT_S = 2.0
PAUSE_MS = 4_000


def ep(fleet: Fleet) -> Endpoint:
    """The fleet's endpoint (a cluster's as one)."""
    scheme = "valkey+cluster" if fleet.spec.topology == "cluster" else "valkey"
    return parse_endpoint(f"{scheme}://127.0.0.1:{fleet.primary.port}", environ={})


@pytest.mark.timeout(40)
def test_a_snapshot_copy_onto_a_full_target_reports_out_of_memory_without_waiting_for_replies_already_read(fleets):
    """The target fills up a few batches in: a RESTORE answers OOM while the batch before the next is confirmed.

    That confirmation raises inside ``_flush_snapshot``; the snapshot's error path must not confirm the same batch
    again: its replies were all read, so a second read waits for replies that never come (the connection's
    60-second timeout), then sends the batch again. The copy must stop at once with the OOM error.
    """
    source, target = fleets(), fleets()
    pipe = primary_client(source).pipeline(transaction=False)
    for index in range(400):
        pipe.set(f"k:{index:04}", f"{index:04}".encode() * 1024)  # 4 KB each: 200 KB a batch
    pipe.execute()
    admin = primary_client(target)
    used = int(admin.info("memory")["used_memory"])
    admin.config_set("maxmemory-policy", "noeviction")
    admin.config_set("maxmemory", str(used + 500_000))  # about two batches fit

    with pytest.raises(DataError, match="out of memory"):
        copy(ep(source), ep(target), CopyOptions(batch=BATCH, conflict="replace", read="sync"))


@pytest.mark.timeout(120)
def test_a_rebuild_the_target_stalled_past_the_read_timeout_leaves_no_replies_for_the_next_batch(fleets, monkeypatch):
    """The target takes RDB 9 at most (as Redis 6 does): each listpack hash is rebuilt by type, every batch.

    While the first group is rebuilt the target pauses its writes for longer than the connection's read timeout
    (60 s, shortened here; a managed target's failover or maintenance pauses writes so). That rebuild gives up on
    the pipeline and rebuilds the keys one at a time, but the writer's connection still owes the paused writes'
    replies: the next batch must not read them as its own. With ``skip``, a hash the target already holds must be
    kept: the rebuilds of later batches ask EXISTS of the target and must read their own replies.
    """
    monkeypatch.setattr(copy_module, "target_rdb_version", lambda _conn, _probe=b"": 9)
    monkeypatch.setattr(topology, "READ_TIMEOUT_S", READ_TIMEOUT_S)
    source, target = fleets(), fleets()
    pipe = primary_client(source).pipeline(transaction=False)
    for index in range(KEYS):
        pipe.set(f"s:{index}", f"value-{index}")
        pipe.hset(f"h:{index}", mapping={"field": f"value-{index}"})
    pipe.execute()
    held = [f"h:{index}" for index in range(0, KEYS, 7)]
    mine = primary_client(target)
    for key in held:
        mine.hset(key, mapping={"field": "the target's own"})

    rebuild_keys = copy_module.TargetWriter.rebuild_keys
    paused: list[bool] = []

    def paused_once(self, db, keys, reader):  # the environment: the target pauses writes for a minute and more
        if not paused:
            paused.append(True)
            mine.execute_command("CLIENT", "PAUSE", PAUSE_MS, "WRITE")
        return rebuild_keys(self, db, keys, reader)

    monkeypatch.setattr(copy_module.TargetWriter, "rebuild_keys", paused_once)

    result = copy(ep(source), ep(target), CopyOptions(batch=BATCH, conflict="skip", read="scan"))

    assert paused, "no key was rebuilt: the test proves nothing"
    overwritten = [key for key in held if mine.hget(key, "field") != "the target's own"]
    assert overwritten == [], f"{len(overwritten)} of the target's own hashes overwritten"
    assert result.total.skipped == len(held), result.total
