"""A copy reads the next batch while the target restores one: the target's work for a batch (keys rebuilt by type,
keys sent again after a redirection) must read that batch's replies, and no other path may read replies another
path's requests are owed, or wait for replies to requests never sent."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from reproducer.data import copy as copy_module
from reproducer.data import topology
from reproducer.data.copy import CopyOptions, copy
from reproducer.data.endpoint import Endpoint, parse_endpoint
from reproducer.data.verify import VerifyOptions, verify
from reproducer.errors import DataError
from reproducer.sandbox.fleet import Fleet
from tests.support.fleets import primary_client

KEYS = 600
BATCH = 50
#: A connection's read timeout for the stalled-target test, and a pause of the target's writes longer than it.
READ_TIMEOUT_S = 2.0
PAUSE_MS = 4_000
OWN = "the target's own"


def ep(fleet: Fleet) -> Endpoint:
    """The fleet's endpoint."""
    return parse_endpoint(f"valkey://127.0.0.1:{fleet.primary.port}", environ={})


@pytest.fixture
def older_target(fleets, monkeypatch) -> tuple[Fleet, Fleet, list[str]]:
    """A source of strings and listpack hashes; a target taking RDB 9 at most (as Redis 6 does), so each hash is
    rebuilt by type, every batch, and already holding every seventh hash (its own value): (source, target, held)."""
    monkeypatch.setattr(copy_module, "target_rdb_version", lambda _conn, _probe=b"": 9)
    source, target = fleets(), fleets()
    pipe = primary_client(source).pipeline(transaction=False)
    for index in range(KEYS):
        pipe.set(f"s:{index}", f"value-{index}")
        pipe.hset(f"h:{index}", mapping={"field": f"value-{index}"})
    pipe.execute()
    held = [f"h:{index}" for index in range(0, KEYS, 7)]
    for key in held:
        primary_client(target).hset(key, mapping={"field": OWN})
    return source, target, held


def overwritten(target: Fleet, held: list[str]) -> list[str]:
    """The keys of ``held`` whose value is no longer the target's own."""
    return [key for key in held if primary_client(target).hget(key, "field") != OWN]


@pytest.mark.parametrize("read", ["scan", "sync"])
def test_hashes_rebuilt_for_an_older_target_batch_after_batch_keep_the_keys_it_already_held(read, older_target):
    """With ``skip``, a hash the target already holds is kept: the rebuild asks EXISTS of the target, and must read
    its own replies even though the next batch was read from the snapshot meanwhile."""
    source, target, held = older_target

    result = copy(ep(source), ep(target), CopyOptions(batch=BATCH, conflict="skip", read=read))

    assert overwritten(target, held) == []
    assert result.total.skipped == len(held), result.total
    assert (result.total.copied, result.total.rebuilt) == (KEYS, KEYS - len(held)), result.total
    primary_client(target).delete(*held)
    primary_client(source).delete(*held)
    assert verify(ep(source), ep(target), VerifyOptions()).ok


@pytest.mark.timeout(120)
def test_a_rebuild_the_target_stalled_past_the_read_timeout_leaves_no_replies_for_the_next_batch(
    older_target, monkeypatch
):
    """While the first group is rebuilt the target pauses its writes for longer than the connection's read timeout
    (60 s, shortened here; a managed target's failover or maintenance pauses writes so). That rebuild gives up on
    the pipeline and rebuilds the keys one at a time, but the writer's connection still owes the paused writes'
    replies: the next batch must not read them as its own, and later rebuilds' EXISTS must read their own."""
    source, target, held = older_target
    monkeypatch.setattr(topology, "READ_TIMEOUT_S", READ_TIMEOUT_S)
    paused: list[bool] = []
    monkeypatch.setattr(
        copy_module.TargetWriter, "rebuild_keys", pausing_once(copy_module.TargetWriter.rebuild_keys, target, paused)
    )

    result = copy(ep(source), ep(target), CopyOptions(batch=BATCH, conflict="skip", read="scan"))

    assert paused, "no key was rebuilt: the test proves nothing"
    assert overwritten(target, held) == []
    assert result.total.skipped == len(held), result.total


def pausing_once(rebuild_keys: Callable[..., Any], target: Fleet, paused: list[bool]) -> Callable[..., Any]:
    """``rebuild_keys``, but the first call has the target pause writes first (the environment, not the code)."""

    def rebuild(self: Any, db: int, keys: list[bytes], reader: Any) -> Any:
        if not paused:
            paused.append(True)
            primary_client(target).execute_command("CLIENT", "PAUSE", PAUSE_MS, "WRITE")
        return rebuild_keys(self, db, keys, reader)

    return rebuild


@pytest.mark.timeout(40)
def test_a_snapshot_copy_onto_a_full_target_reports_out_of_memory_without_waiting_for_replies_already_read(fleets):
    """The target fills up a few batches in: a RESTORE answers OOM while the batch before the next is confirmed.

    The snapshot's error path must not confirm that batch again: its replies were all read, so a second read
    would wait for replies that never come (the connection's 60-second timeout), then send the batch again. The
    copy must stop at once with the OOM error.
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


@pytest.mark.parametrize("read", ["scan", "sync"])
def test_a_key_over_the_byte_bound_the_target_already_holds_counts_as_skipped_not_rebuilt(read, fleets):
    """Copied in windows by itself; with ``skip`` the target's own value stays, and the counts say so."""
    source, target = fleets(), fleets()
    primary_client(source).set("big", b"s" * 3_000_000)
    primary_client(source).set("small", "value")
    primary_client(target).set("big", OWN)

    options = CopyOptions(conflict="skip", read=read, max_batch_bytes=1024 * 1024)
    result = copy(ep(source), ep(target), options)

    assert primary_client(target).get("big") == OWN
    assert (result.total.skipped, result.total.rebuilt, result.total.copied) == (1, 0, 1), result.total
