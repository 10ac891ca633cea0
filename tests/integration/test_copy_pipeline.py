"""A snapshot copy reads the next batch while the target restores one: the target's work for a batch (keys rebuilt
by type, keys sent again after a redirection) must never read the replies of another batch."""

from __future__ import annotations

import pytest

from reproducer.data import copy as copy_module
from reproducer.data.copy import CopyOptions, copy
from reproducer.data.endpoint import Endpoint, parse_endpoint
from reproducer.data.verify import VerifyOptions, verify
from reproducer.sandbox.fleet import Fleet
from tests.support.fleets import primary_client

KEYS = 600
BATCH = 50


def ep(fleet: Fleet) -> Endpoint:
    """The fleet's endpoint."""
    return parse_endpoint(f"valkey://127.0.0.1:{fleet.primary.port}", environ={})


@pytest.mark.parametrize("read", ["scan", "sync"])
def test_hashes_rebuilt_for_an_older_target_batch_after_batch_keep_the_keys_it_already_held(read, fleets, monkeypatch):
    """The target takes RDB 9 at most (as Redis 6 does): each listpack hash is rebuilt by type, every batch.

    With ``skip``, a hash the target already holds is kept: the rebuild asks EXISTS of the target, and must read
    its own replies even though the next batch was read from the snapshot meanwhile.
    """
    monkeypatch.setattr(copy_module, "target_rdb_version", lambda _conn, _probe=b"": 9)
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

    result = copy(ep(source), ep(target), CopyOptions(batch=BATCH, conflict="skip", read=read))

    assert [mine.hget(key, "field") for key in held] == ["the target's own"] * len(held)
    assert result.total.skipped == len(held), result.total
    assert (result.total.copied, result.total.rebuilt) == (KEYS, KEYS - len(held)), result.total
    mine.delete(*held)
    primary_client(source).delete(*held)
    assert verify(ep(source), ep(target), VerifyOptions()).ok


@pytest.mark.parametrize("read", ["scan", "sync"])
def test_a_key_over_the_byte_bound_the_target_already_holds_counts_as_skipped_not_rebuilt(read, fleets):
    """Copied in windows by itself; with ``skip`` the target's own value stays, and the counts say so."""
    source, target = fleets(), fleets()
    primary_client(source).set("big", b"s" * 3_000_000)
    primary_client(source).set("small", "value")
    primary_client(target).set("big", "the target's own")

    options = CopyOptions(conflict="skip", read=read, max_batch_bytes=1024 * 1024)
    result = copy(ep(source), ep(target), options)

    assert primary_client(target).get("big") == "the target's own"
    assert (result.total.skipped, result.total.rebuilt, result.total.copied) == (1, 0, 1), result.total
