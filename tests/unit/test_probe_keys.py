"""Probe keys (the follower's, the RDB-version probe) land on the node they are written to (else: MOVED)."""

from __future__ import annotations

import pytest

from reproducer.data.topology import SLOTS, Layout, key_slot, owned_key

NODES = [("10.0.0.1", 6379), ("10.0.0.2", 6379), ("10.0.0.3", 6379)]


def three_shards() -> Layout:
    """Slots split in three ranges, as CLUSTER SLOTS gives them."""
    owners = [slot * 3 // SLOTS for slot in range(SLOTS)]
    return Layout(cluster=True, primaries=list(NODES), slot_owner=owners)


@pytest.mark.parametrize("name", [b"__reproducer:follow-probe:26552a71", b"__reproducer:rdb-probe", b"x"])
def test_the_probe_key_is_owned_by_each_node_it_is_asked_for(name):
    layout = three_shards()
    for node in NODES:
        key = owned_key(layout, node, name)
        assert layout.node_for_key(key) == node and key.startswith(name)
        assert layout.slot_owner[key_slot(key)] == NODES.index(node)


def test_a_standalone_probe_key_is_the_plain_name():
    layout = Layout(cluster=False, primaries=[NODES[0]])
    assert owned_key(layout, NODES[0], b"__reproducer:follow-probe:abcd") == b"__reproducer:follow-probe:abcd"


def test_a_node_that_serves_no_slot_gets_the_plain_name_at_once():
    """An entry point in front of the shards (Azure Managed Redis's port 10000) answers where the key goes."""
    entry = ("10.0.0.4", 10000)
    layout = Layout(cluster=True, primaries=[*NODES, entry], slot_owner=three_shards().slot_owner)
    assert owned_key(layout, entry, b"probe") == b"probe"
    assert owned_key(layout, ("10.9.9.9", 1), b"probe") == b"probe"
