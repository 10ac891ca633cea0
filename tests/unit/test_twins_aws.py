"""The AWS twin's pure parts: shapes, computed attributes by mode, replacements, rules on records, zones."""

from __future__ import annotations

import pytest

from reproducer.offline.values import UNKNOWN
from reproducer.twins import aws
from reproducer.twins.base import Change, TwinError, TwinWorld
from reproducer.twins.provider import replaced
from reproducer.twins.valkey import NodeAddress

PRIMARY, REPLICA = NodeAddress("127.1.1.1", 6379, "primary", 0), NodeAddress("127.1.1.2", 6379, "replica", 0)


def planned(**values):
    base = {"replication_group_id": "Cache-Prod", "engine": "valkey", "engine_version": "8.0", "port": 6379}
    computed = dict.fromkeys(
        ["arn", "member_clusters", "security_group_names", "tags_all", "subnet_group_name"], UNKNOWN
    )
    return {**base, **computed, **values}


def computed(values, nodes, world):
    return aws._computed(values, Change(aws.RG, None, values, world=world, provider={"region": "eu-west-3"}), nodes)


@pytest.mark.parametrize(
    ("values", "shape", "cluster"),
    [
        ({}, (1, 0), False),
        ({"num_cache_clusters": 3}, (1, 2), False),
        ({"num_node_groups": 1, "replicas_per_node_group": 2}, (1, 2), False),
        ({"cluster_mode": "enabled", "replicas_per_node_group": 1}, (1, 1), True),
        ({"num_node_groups": 3, "replicas_per_node_group": 1}, (3, 1), True),
    ],
)
def test_the_shape_follows_the_provider_arguments(values, shape, cluster):
    assert aws.shape_counts(values) == shape
    assert aws.is_cluster(values) is cluster


def test_a_primary_with_replicas_has_primary_and_reader_endpoints_only(tmp_path):
    state = computed(planned(num_cache_clusters=2), [PRIMARY, REPLICA], TwinWorld(tmp_path))
    assert (state["primary_endpoint_address"], state["reader_endpoint_address"]) == ("127.1.1.1", "127.1.1.2")
    assert state["configuration_endpoint_address"] is None and state["cluster_enabled"] is False
    assert state["member_clusters"] == ["cache-prod-001", "cache-prod-002"]
    assert state["id"] == "cache-prod" and state["arn"].endswith(":replicationgroup:cache-prod")
    assert state["at_rest_encryption_enabled"] == "true" and state["security_group_names"] == []
    assert state["tags_all"] == {} and state["subnet_group_name"] == "default"


def test_a_cluster_has_the_configuration_endpoint_only(tmp_path):
    values = planned(num_node_groups=2, replicas_per_node_group=0, cluster_mode="enabled")
    second = NodeAddress("127.1.1.3", 6379, "primary", 1)
    state = computed(values, [PRIMARY, second], TwinWorld(tmp_path))
    assert state["configuration_endpoint_address"] == "127.1.1.1"
    assert state["primary_endpoint_address"] is None and state["reader_endpoint_address"] is None
    assert state["member_clusters"] == ["cache-prod-0001-001", "cache-prod-0002-001"]
    assert (state["num_node_groups"], state["replicas_per_node_group"], state["num_cache_clusters"]) == (2, 0, 2)


def test_a_reader_endpoint_without_replicas_is_the_primary(tmp_path):
    state = computed(planned(), [PRIMARY], TwinWorld(tmp_path))
    assert state["reader_endpoint_address"] == state["primary_endpoint_address"] == "127.1.1.1"


def test_only_changed_force_new_attributes_are_replacements():
    prior = {"port": 6379, "user_name": "app", "description": "x"}
    assert replaced({"port", "user_name"}, prior, {**prior, "description": "y"}) == []
    assert replaced({"port", "user_name"}, prior, {**prior, "user_name": "app2"}) == [("user_name",)]
    assert replaced({"port"}, prior, {**prior, "port": UNKNOWN}) == [("port",)]
    assert replaced({"port"}, None, prior) == []
    assert "port" in aws.ReplicationGroupTwin.replace and "user_name" in aws.UserTwin.replace


def test_a_user_group_needs_a_default_user_and_known_users(tmp_path):
    world = TwinWorld(tmp_path)
    twin = aws.UserGroupTwin()
    with pytest.raises(TwinError, match=r"\(g\): UserNotFound: User nobody not found\."):
        twin.create(Change(aws.GROUP, None, {"user_group_id": "g", "user_ids": ["nobody"]}, world=world))
    world.save(aws.USER, "u-app", {"user_id": "u-app", "user_name": "app", "access_string": "on", "hashes": []})
    with pytest.raises(TwinError, match="DefaultUserRequired: User group needs to contain a user with the user name"):
        twin.create(Change(aws.GROUP, None, {"user_group_id": "g", "user_ids": ["u-app"]}, world=world))
    state = twin.create(Change(aws.GROUP, None, {"user_group_id": "g", "user_ids": ["u-app", "default"]}, world=world))
    assert state["id"] == "g" and world.load(aws.GROUP, "g") == {"id": "g", "user_ids": ["default", "u-app"]}


def test_a_user_is_recorded_with_password_hashes_only(tmp_path):
    world = TwinWorld(tmp_path)
    password = "a-password-of-sixteen"
    config = {
        "user_id": "u-app",
        "user_name": "app",
        "access_string": "on ~app:* +@all",
        "engine": "valkey",
        "authentication_mode": [{"type": "password", "passwords": [password], "password_count": UNKNOWN}],
        "tags_all": UNKNOWN,
    }
    state = aws.UserTwin().create(Change(aws.USER, None, config, world=world, provider={"region": "eu-west-3"}))
    assert state["authentication_mode"][0]["password_count"] == 1
    assert state["arn"] == f"arn:aws:elasticache:eu-west-3:{aws.ACCOUNT}:user:u-app"
    assert password not in (tmp_path / "resources" / aws.USER / "u-app.json").read_text()
    users = aws.rg_users(world, {"user_group_ids": []}, "rg")
    assert users == ()
    world.save(aws.GROUP, "g", {"id": "g", "user_ids": ["default", "u-app"]})
    names = [u.name for u in aws.rg_users(world, {"user_group_ids": ["g"]}, "rg")]
    assert names == ["app", "default"]


def test_access_strings_that_set_passwords_are_the_apis_refusal(tmp_path):
    config = {"user_id": "u", "user_name": "u", "access_string": "on >pw ~*", "no_password_required": True}
    with pytest.raises(TwinError, match=r"creating ElastiCache User \(u\): InvalidParameterValue: invalid ACL rule"):
        aws.UserTwin().create(Change(aws.USER, None, config, world=TwinWorld(tmp_path)))


def test_an_auth_token_becomes_the_default_users_password(tmp_path):
    (user,) = aws.rg_users(TwinWorld(tmp_path), {"auth_token": "a-token-of-16-chars-at-least"}, "rg")
    assert user.name == "default" and len(user.password_hashes) == 1


def test_a_missing_parameter_group_is_the_apis_refusal_and_aws_defaults_have_none(tmp_path):
    world = TwinWorld(tmp_path)
    assert aws.rg_parameters(world, {"parameter_group_name": "default.valkey8"}, "rg") == ()
    with pytest.raises(TwinError, match="CacheParameterGroupNotFound: CacheParameterGroup mine not found."):
        aws.rg_parameters(world, {"parameter_group_name": "mine"}, "rg")


@pytest.mark.parametrize(
    ("region", "names", "first_id"),
    [
        ("eu-west-3", ["eu-west-3a", "eu-west-3b", "eu-west-3c"], "euw3-az1"),
        ("ap-southeast-2", ["ap-southeast-2a", "ap-southeast-2b", "ap-southeast-2c"], "apse2-az1"),
        ("us-east-1", [f"us-east-1{c}" for c in "abcdef"], "use1-az1"),
    ],
)
def test_availability_zones_are_those_of_the_configured_region(region, names, first_id, tmp_path):
    state = aws.AvailabilityZonesTwin().read({"state": "available"}, TwinWorld(tmp_path), {"region": region})
    assert state["names"] == names and state["zone_ids"][0] == first_id and state["state"] == "available"


def test_availability_zones_exclude_names_and_refuse_a_malformed_region(tmp_path):
    world = TwinWorld(tmp_path)
    state = aws.AvailabilityZonesTwin().read({"exclude_names": ["eu-west-3b"]}, world, {"region": "eu-west-3"})
    assert state["names"] == ["eu-west-3a", "eu-west-3c"]
    with pytest.raises(TwinError, match="invalid AWS Region: eu_west"):
        aws.AvailabilityZonesTwin().read({}, world, {"region": "eu_west"})


def test_turning_failover_off_in_cluster_mode_is_the_apis_refusal(tmp_path):
    prior = {"id": "rg", "cluster_mode": "enabled", "num_node_groups": 2, "automatic_failover_enabled": True}
    change = Change(aws.RG, prior, {**prior, "automatic_failover_enabled": False}, world=TwinWorld(tmp_path))
    with pytest.raises(TwinError) as caught:
        aws.ReplicationGroupTwin().update(change)
    assert caught.value.summary == (
        "modifying ElastiCache Replication Group (rg): InvalidParameterCombination: Turning off automatic failover "
        "for replication group with cluster mode enabled is not supported."
    )


def test_an_update_that_reshards_is_refused_clearly(tmp_path):
    prior = {"id": "rg", "num_cache_clusters": 2}
    change = Change(aws.RG, prior, {**prior, "num_cache_clusters": 3}, world=TwinWorld(tmp_path))
    with pytest.raises(TwinError, match="the twin does not model online resharding"):
        aws.ReplicationGroupTwin().update(change)
