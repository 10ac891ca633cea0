"""Which changes the offline providers plan as replacements: the committed table and how it is read."""

from __future__ import annotations

import json

import pytest

from reproducer.offline.replace import CONDITIONS, TABLE_PATH, build_table, provider_rules, requires_replace
from reproducer.offline.schema import load
from reproducer.offline.subset import SCHEMAS_DIR
from reproducer.offline.values import UNKNOWN
from reproducer.targets import terraform_providers
from reproducer.targets.base import ALL_TYPES

TABLE = json.loads(TABLE_PATH.read_text(encoding="utf-8"))
#: Rendered types the shared table does not list: their changes are planned in place, as for any unlisted type.
NOT_IN_TABLE = {
    "aws_vpc_security_group_egress_rule",
    "openstack_compute_keypair_v2",
    "openstack_networking_floatingip_associate_v2",
}


def plan(key: str, type_name: str, prior: dict, planned: dict) -> list:
    schema = load(SCHEMAS_DIR / f"{key}.json")
    block = schema.resources[type_name].block
    return requires_replace(schema.address, type_name, block, prior, planned)


def test_table_keeps_the_facts_and_their_sources():
    assert "ForceNew" in TABLE["about"] and "number of block elements changes" in TABLE["about"]
    for address, provider in TABLE["providers"].items():
        assert provider["read_from"], address
        for type_name, rules in provider["resources"].items():
            assert rules["source"].endswith(".go"), type_name
            assert set(rules) >= {"replace", "replace_in_blocks", "conditional"}, type_name


def test_every_rendered_type_is_in_the_table_or_known_absent():
    missing = set()
    for provider in terraform_providers().values():
        listed = TABLE["providers"].get(provider.address, {}).get("resources", {})
        assert listed, f"{provider.address}: no replace facts"
        if provider.resources != ALL_TYPES:
            missing |= set(provider.resources) - set(listed)
    assert missing == NOT_IN_TABLE


def test_each_conditional_is_interpreted_or_falls_back_to_any_change():
    fallback = {
        (type_name, entry["attr"])
        for provider in TABLE["providers"].values()
        for type_name, rules in provider["resources"].items()
        for entry in rules["conditional"]
        if (type_name, entry["attr"]) not in CONDITIONS
    }
    # the v6 region rule (the provider's own region is unknown offline) and an engine marked UNVERIFIED
    assert {attr for _, attr in fallback} == {"region", "engine"}
    assert ("aws_elasticache_user_group", "engine") in fallback
    assert set(CONDITIONS) <= {
        (t, e["attr"]) for p in TABLE["providers"].values() for t, r in p["resources"].items() for e in r["conditional"]
    }


def test_build_table_keeps_only_the_targets_providers():
    full = {"about": "facts", "providers": {**TABLE["providers"], "registry.terraform.io/x/unused": {"resources": {}}}}
    built = build_table(full, "replace-attributes.json")
    assert built["about"] == "facts" and set(built["providers"]) == set(TABLE["providers"])
    with pytest.raises(ValueError, match="providers"):
        build_table({"about": "x"}, "bad.json")


def test_top_level_attributes():
    subnet = {"cidr_block": "10.0.1.0/24", "vpc_id": "vpc-1", "map_public_ip_on_launch": False}
    assert plan("aws", "aws_subnet", subnet, {**subnet, "cidr_block": "10.0.2.0/24"}) == [("cidr_block",)]
    assert plan("aws", "aws_subnet", subnet, {**subnet, "map_public_ip_on_launch": True}) == []
    assert plan("aws", "aws_subnet", subnet, {**subnet, "vpc_id": UNKNOWN}) == [("vpc_id",)]
    user = {"user_id": "u", "user_name": "alice", "access_string": "on ~* +@all"}
    assert plan("aws", "aws_elasticache_user", user, {**user, "user_name": "bob"}) == [("user_name",)]
    assert plan("aws", "aws_elasticache_user", user, {**user, "access_string": "on ~a:* +get"}) == []


def test_unlisted_types_and_unknown_providers_never_replace():
    rule = {"security_group_id": "sg-1", "cidr_ipv4": "10.0.0.0/8"}
    assert plan("aws", "aws_vpc_security_group_egress_rule", rule, {**rule, "security_group_id": "sg-2"}) == []
    assert provider_rules("registry.terraform.io/nobody/nothing") == {}


def test_resharding_is_in_place_on_aws_but_a_mode_change_replaces_on_gcp():
    group = {"replication_group_id": "cache", "cluster_mode": "disabled", "num_cache_clusters": 2, "port": 6379}
    resharded = {**group, "cluster_mode": "enabled", "num_node_groups": 3, "replicas_per_node_group": 1}
    assert plan("aws", "aws_elasticache_replication_group", group, resharded) == []
    instance = {"instance_id": "cache", "mode": "CLUSTER_DISABLED", "shard_count": 1, "zone_distribution_config": []}
    clustered = {**instance, "mode": "CLUSTER", "shard_count": 3}
    assert plan("google", "google_memorystore_instance", instance, clustered) == [("mode",)]


def test_blocks_replace_on_count_and_on_marked_nested_attributes():
    instance = {"instance_id": "cache", "zone_distribution_config": []}
    zoned = {**instance, "zone_distribution_config": [{"mode": "SINGLE_ZONE", "zone": "europe-west1-b"}]}
    assert plan("google", "google_memorystore_instance", instance, zoned) == [
        ("zone_distribution_config", 0, "zone"),
        ("zone_distribution_config",),
    ]
    other_zone = {**instance, "zone_distribution_config": [{"mode": "SINGLE_ZONE", "zone": "europe-west1-c"}]}
    assert plan("google", "google_memorystore_instance", zoned, other_zone) == [("zone_distribution_config", 0, "zone")]
    multi = {**instance, "zone_distribution_config": [{"mode": "MULTI_ZONE", "zone": "europe-west1-b"}]}
    assert plan("google", "google_memorystore_instance", zoned, multi) == []


def test_conditions_follow_the_table():
    group = {"engine": "redis", "engine_version": "7.1", "engine_version_actual": "7.1.0", "port": 6379}
    rg = "aws_elasticache_replication_group"
    assert plan("aws", rg, group, {**group, "engine": "valkey"}) == []
    valkey = {**group, "engine": "valkey", "engine_version": "8.0", "engine_version_actual": "8.0.1"}
    assert plan("aws", rg, valkey, {**valkey, "engine": "redis"}) == [("engine",)]
    assert plan("aws", rg, valkey, {**valkey, "engine_version": "8.1"}) == []
    assert plan("aws", rg, valkey, {**valkey, "engine_version": "7.2"}) == [("engine_version",)]
    tls = {**valkey, "transit_encryption_enabled": False}
    assert plan("aws", rg, tls, {**tls, "transit_encryption_enabled": True}) == []
    unreadable = {**tls, "engine_version_actual": "fake-0123abcd"}  # offline: conservatively a replacement
    assert plan("aws", rg, unreadable, {**unreadable, "transit_encryption_enabled": True}) == [
        ("transit_encryption_enabled",)
    ]
    subnet = {"ip_cidr_range": "10.0.0.0/24"}
    sub = "google_compute_subnetwork"
    assert plan("google", sub, subnet, {"ip_cidr_range": "10.0.0.0/16"}) == []
    assert plan("google", sub, subnet, {"ip_cidr_range": "10.1.0.0/24"}) == [("ip_cidr_range",)]
    rule = {"security_group_id": "sg", "cidr_ipv4": "10.0.0.0/8", "cidr_ipv6": None}
    ingress = "aws_vpc_security_group_ingress_rule"
    assert plan("aws", ingress, rule, {**rule, "cidr_ipv4": "10.1.0.0/16"}) == []
    assert plan("aws", ingress, rule, {**rule, "cidr_ipv4": None, "cidr_ipv6": "fd00::/8"}) == [
        ("cidr_ipv4",),
        ("cidr_ipv6",),
    ]


def test_ovh_nodes_replace_only_when_an_existing_node_moves():
    database = {"engine": "valkey", "nodes": [{"region": "GRA", "network_id": "n1", "subnet_id": "s1"}]}
    db = "ovh_cloud_project_database"
    moved = {**database, "nodes": [{"region": "SBG", "network_id": "n1", "subnet_id": "s1"}]}
    assert plan("ovh", db, database, moved) == [("nodes", 0, "region")]
    grown = {**database, "nodes": [*database["nodes"], {"region": "GRA", "network_id": "n1", "subnet_id": "s1"}]}
    assert plan("ovh", db, database, grown) == []
    resubnetted = {**database, "nodes": [{"region": "GRA", "network_id": "n1", "subnet_id": "s2"}]}
    assert plan("ovh", db, database, resubnetted) == []
