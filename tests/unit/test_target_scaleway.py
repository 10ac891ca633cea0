"""The scaleway target's decisions: cluster_size from the shape, acl or private network, one user, honest rows."""

from __future__ import annotations

import re
from typing import Any

import pytest

from reproducer.errors import InputError
from reproducer.offline.replace import requires_replace
from reproducer.offline.schema import load
from reproducer.offline.subset import SCHEMAS_DIR
from tests.unit.test_render_defects import CONTRACT, argument, blocks, outputs, render, rows, spec, spec_data, tf


def cluster(files: dict[str, str]) -> str:
    """The body of the one ``scaleway_redis_cluster``."""
    (body,) = blocks(tf(files), "resource", "scaleway_redis_cluster").values()
    return body


@pytest.mark.parametrize(
    ("shards", "replicas", "size", "support"),
    [
        (1, 0, "1", {"topology.shards": "exact", "topology.replicas_per_shard": "exact"}),
        (1, 1, "2", {"topology.shards": "exact", "topology.replicas_per_shard": "exact"}),
        (1, 3, "2", {"topology.replicas_per_shard": "approximated"}),
        (2, 1, "3", {"topology.shards": "approximated", "topology.mode": "exact"}),
        (6, 1, "6", {"topology.shards": "approximated", "topology.replicas_per_shard": "exact"}),
        (4, 2, "4", {"topology.replicas_per_shard": "approximated"}),
    ],
)
def test_cluster_size_follows_the_shape_and_says_what_is_approximate(shards, replicas, size, support):
    files = render("scaleway", shards=shards, replicas=replicas)
    assert argument(cluster(files), "cluster_size") == size
    found = rows(files)
    assert {name: found[name]["support"] for name in support} == support
    assert ("cluster mode" in found["topology.mode"]["note"]) == (int(size) >= 3)
    assert re.search(r"value += (true|false)", outputs(files)["cluster_mode"]).group(1) == str(int(size) >= 3).lower()


def test_more_than_six_shards_is_refused_with_scaleways_limit():
    with pytest.raises(InputError, match=r"7 shard\(s\) is not between 1 and 6 .*cluster_size 1, 2 or 3 to 6"):
        render("scaleway", shards=7, replicas=1)


def test_a_private_source_gets_the_private_network_and_no_acl_and_says_why():
    files = render("scaleway", "business")
    body = cluster(files)
    assert "acl {" not in body and "private_network {" in body
    assert blocks(tf(files), "resource", "scaleway_vpc_private_network")
    row = rows(files)["allow_list"]
    assert row["support"] == "manual" and "refuses acl beside private_network" in row["note"]
    assert "security groups" in row["note"], "it says what to do instead"


def test_a_public_source_gets_ipv4_acl_rules_and_ipv6_entries_are_reported_not_rendered():
    data = spec_data("essential")
    data["allow_list"] = [
        {"cidr": "203.0.113.0/24", "description": "office"},
        {"cidr": "2001:db8::/32", "description": "v6 office"},
    ]
    files = render("scaleway", spec("essential", allow_list=data["allow_list"]))
    body = cluster(files)
    assert re.findall(r'ip += "([^"]+)"', body) == ["203.0.113.0/24"]
    assert "2001:db8" not in tf(files) and "scaleway_vpc_private_network" not in tf(files)
    row = rows(files)["allow_list"]
    assert row["support"] == "manual" and "2001:db8::/32 not rendered" in row["note"] and "IPv4" in row["note"]


def test_one_initial_user_default_and_every_other_user_is_manual_with_what_to_do():
    files = render("scaleway", "business")
    body = cluster(files)
    assert argument(body, "user_name") == '"default"'
    assert argument(body, "password_wo") == 'var.user_passwords["default"]'
    found = rows(files)
    assert found["users.default"]["support"] == "approximated"
    for name in ("app", "analytics"):
        assert found[f"users.{name}"]["support"] == "manual"
        assert "connect as it" in found[f"users.{name}"]["note"]
    assert set(CONTRACT) <= set(outputs(files)) and '["default"]' in outputs(files)["user_names"]


def test_report_states_the_engine_and_the_data_compatibility():
    found = rows(render("scaleway", "business"))
    assert found["engine.version"]["support"] == "approximated"
    assert "Redis 7.0.5, not Valkey" in found["engine.version"]["note"]
    assert "RDB 10" in found["data"]["note"] and "RDB 11" in found["data"]["note"]
    unsupported = [row for row in found.values() if row["support"] in ("manual", "unsupported")]
    assert all(row["note"] and row["note"] != "—" for row in unsupported)


def test_settings_keep_only_what_scaleway_accepts_and_tls_is_set_explicitly():
    files = render("scaleway", "business")
    body = cluster(files)
    assert re.findall(r'^\s+"([a-z-]+)" = ', body, re.M) == ["notify-keyspace-events"]
    assert argument(body, "tls_enabled") == "true"
    found = rows(files)
    assert found["configuration.redis_timeout"]["support"] == "unsupported"
    assert found["configuration.redis_notify_keyspace_events"]["support"] == "exact"
    plain = render("scaleway", spec("essential", tls=False))
    assert argument(cluster(plain), "tls_enabled") == "false", "the provider's default is false: always written"


@pytest.mark.parametrize("zone", ["fr-par-4", "us-east-1", 'fr-par-1"\n', "FR-PAR-1"])
def test_zones_are_validated(zone):
    with pytest.raises(InputError, match="is not a region name of Scaleway"):
        render("scaleway", region=zone)


def test_a_region_far_from_any_zone_needs_region():
    source: dict[str, Any] = spec_data("essential")
    source["source"] = source["source"] | {"region": "SGP"}
    with pytest.raises(InputError, match="no Scaleway Managed Database for Redis region is known to be near"):
        render("scaleway", spec("essential", source=source["source"]))
    assert argument(tf(render("scaleway", spec("essential", source=source["source"]), region="pl-waw-2")), "default")


def test_network_existing_is_refused_with_what_to_do():
    with pytest.raises(InputError, match="--adopt scaleway_vpc_private_network"):
        render("scaleway", network="existing")


@pytest.mark.parametrize(
    ("before", "after", "replaced"),
    [(1, 2, True), (1, 3, True), (3, 2, True), (2, 3, False), (3, 6, False), (3, 3, False)],
)
def test_cluster_size_replaces_when_leaving_one_node_or_shrinking(before, after, replaced):
    schema = load(SCHEMAS_DIR / "scaleway.json")
    block = schema.resources["scaleway_redis_cluster"].block
    paths = requires_replace(
        schema.address, "scaleway_redis_cluster", block, {"cluster_size": before}, {"cluster_size": after}
    )
    assert (paths == [("cluster_size",)]) == replaced
