"""Recorded OVH API JSON → service spec (pure, no network)."""

import pytest

from reproducer.model import Category
from reproducer.sources.ovh import build_spec
from tests.unit.conftest import RECORDED


@pytest.fixture
def spec(recorded_spec):
    return recorded_spec


def test_plan_topology_and_memory(spec):
    assert (spec.plan.name, spec.plan.flavor, spec.plan.memory_gb) == ("business", "db1-7", 7)
    assert "catalog" in spec.plan.memory_source
    assert (spec.topology.mode, spec.topology.shards, spec.topology.replicas_per_shard) == ("sentinel", 1, 1)
    assert spec.source.region == "GRA"
    assert spec.engine.version == "8.0"


def test_network_resolves_pn_id_vlan_and_subnet(spec):
    private = spec.network.private
    assert spec.network.type == "private"
    assert (private.id, private.vlan_id, private.vrack) == ("pn-123456_1234", 1234, "pn-123456")
    assert private.openstack_id == "80c1de3e-9b09-11f0-993b-0050568ce122"
    assert (private.subnet.cidr, private.subnet.gateway) == ("192.168.1.0/24", "192.168.1.1")
    assert (private.subnet.allocation_start, private.subnet.allocation_end) == ("192.168.1.12", "192.168.1.24")


def test_allow_list_sorted_and_users_as_acl(spec):
    assert [a.cidr for a in spec.allow_list] == ["10.0.0.0/24", "203.0.113.0/24"]
    app = next(u for u in spec.users if u.name == "app")
    assert app.acl_rules == "on ~app:* &* +@all -@dangerous +get"
    assert [u.name for u in spec.users] == ["app", "default"]


def test_advanced_configuration_is_normalised_and_nothing_dropped(spec):
    by_name = {c.source_name: c for c in spec.configuration}
    assert by_name["redis_notify_keyspace_events"].valkey_name == "notify-keyspace-events"
    assert by_name["redis_timeout"].valkey_name == "timeout"
    assert by_name["redis_persistence"].valkey_name == "save"
    assert by_name["redis_unknown_knob"].valkey_name is None
    assert len(spec.configuration) == len(RECORDED["advancedConfiguration"])


def test_no_secret_or_uri_placeholder_in_spec(spec):
    text = spec.to_yaml()
    assert "<password>" not in text and "uri" not in text
    assert spec.endpoints[0].port == 20185 and spec.endpoints[0].tls


def test_features_carry_reversibility_categories(spec):
    by_name = {f.name: f for f in spec.features}
    assert by_name["key_value_data"].category is Category.CORE
    assert by_name["high_availability"].in_use
    assert not by_name["persistence"].in_use  # redis_persistence=off
    assert by_name["ip_allow_list"].category is Category.OVH_IMPLEMENTATION
    assert by_name["vrack_private_network"].in_use
    assert by_name["anti_ddos"].category is Category.SPECIFIC


def test_essential_single_node_is_standalone():
    service = {**RECORDED["service"], "plan": "essential", "nodes": RECORDED["service"]["nodes"][:1]}
    spec = build_spec(
        project="0123456789abcdef0123456789abcdef",
        service=service,
        nodes=[],
        users=[],
        advanced={},
        network=None,
        flavor_memory={"db1-7": 7},
    )
    assert (spec.topology.mode, spec.topology.replicas_per_shard) == ("standalone", 0)
    assert spec.plan.memory_source.startswith("OVH API")
