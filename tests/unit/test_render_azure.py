"""The azure target's own decisions: CIDRs to exact ranges with `^\\w+$` names, reachability, users, Redis not Valkey.

Real-schema checks (fmt, validate, plan) of its goldens and hostile values are in the shared parametrised modules;
the twin's rules in tests/integration/test_twin_azure.py.
"""

from __future__ import annotations

import ipaddress
import re

import pytest

from reproducer.errors import InputError
from tests.unit.test_render_defects import CONTRACT, argument, blocks, outputs, render, rows, spec, spec_data, tf

#: The provider's rule-name validator (validate/firewall_rule_name.go).
RULE_NAME = re.compile(r"^\w+$", re.ASCII)


def allow(*cidrs: str) -> list[dict[str, str]]:
    return [{"cidr": cidr, "description": "x"} for cidr in cidrs]


def test_each_ipv4_cidr_becomes_its_exact_range_under_a_word_only_name():
    cidrs = ("10.0.0.0/8", "192.0.2.10/32", "198.51.100.128/25", "0.0.0.0/0", "100.64.0.0/10")
    rules = blocks(
        tf(render("azure", spec("essential", allow_list=allow(*cidrs)))), "resource", "azurerm_redis_firewall_rule"
    )
    assert len(rules) == len(cidrs)
    got = {}
    for body in rules.values():
        name = argument(body, "name").strip('"')
        assert RULE_NAME.fullmatch(name), name
        got[name] = (argument(body, "start_ip").strip('"'), argument(body, "end_ip").strip('"'))
    for cidr in cidrs:
        network = ipaddress.ip_network(cidr)
        name = "allow_" + cidr.replace(".", "_").replace("/", "_")
        assert got[name] == (str(network[0]), str(network[-1]))
    assert len(set(got)) == len(cidrs)


def test_ipv6_entries_get_no_rule_and_are_named_in_the_report():
    files = render("azure", spec("essential", allow_list=allow("203.0.113.7/32", "2001:db8::/64")))
    assert len(blocks(tf(files), "resource", "azurerm_redis_firewall_rule")) == 1
    row = rows(files)["allow_list"]
    assert row["support"] == "approximated" and "2001:db8::/64" in row["note"]
    assert "2001:db8" not in tf(files)


@pytest.mark.parametrize("cidrs", [(), ("2001:db8::/64",)])
def test_a_public_source_with_no_ipv4_cidr_gets_no_public_access_since_no_rule_means_everyone(cidrs):
    files = render("azure", spec("essential", allow_list=allow(*cidrs)))
    cache = blocks(tf(files), "resource", "azurerm_redis_cache")["sessions"]
    assert argument(cache, "public_network_access_enabled") == "false"
    assert "nothing reaches the cache" in rows(files)["allow_list"]["note"]


def test_a_public_source_stays_public_behind_its_rules_and_a_private_one_goes_behind_a_private_endpoint():
    public = tf(render("azure", "essential"))
    assert (
        argument(blocks(public, "resource", "azurerm_redis_cache")["sessions"], "public_network_access_enabled")
        == "true"
    )
    assert not blocks(public, "resource", "azurerm_private_endpoint")
    private = tf(render("azure", "business"))
    cache = blocks(private, "resource", "azurerm_redis_cache")["cache_prod"]
    assert argument(cache, "public_network_access_enabled") == "false"
    endpoint = blocks(private, "resource", "azurerm_private_endpoint")["cache_prod"]
    assert 'subresource_names              = ["redisCache"]' in endpoint
    assert 'variable "subnet_cidr"' in private and '"192.168.1.0/24"' in private


def test_users_are_manual_with_their_access_policy_and_default_is_the_access_key():
    files = render("azure", "business")
    report = rows(files)
    for name in ("app", "analytics"):
        row = report[f"users.{name}"]
        assert row["support"] == "manual" and "azurerm_redis_cache_access_policy" in row["target_argument"]
        assert "Entra" in row["note"]
    assert "'+@all -@dangerous +get ~app:* &*'" in report["users.app"]["note"]
    assert report["users.default"]["support"] == "approximated"
    out = outputs(files)
    assert argument(out["user_names"], "value") == '["default"]'
    assert "primary_access_key" in out["user_passwords"] and "sensitive   = true" in out["user_passwords"]
    assert 'variable "user_passwords"' not in tf(files), "Azure makes the only password: none is asked for"


def test_a_spec_without_default_gets_the_access_key_row():
    data = spec_data("business")
    data["users"] = [u for u in data["users"] if u["name"] != "default"]
    report = rows(render("azure", spec("business", users=data["users"])))
    assert (
        report["users.default"]["support"] == "approximated" and "not in the source" in report["users.default"]["note"]
    )


def test_redis_not_valkey_is_stated_with_the_rdb_versions():
    row = rows(render("azure", "business"))["engine.version"]
    assert row["support"] == "approximated" and "not Valkey" in row["note"] and "RDB" in row["note"]
    assert 'redis_version                 = "6"' in tf(render("azure", "business"))


def test_sizes_shards_and_replicas():
    one = blocks(tf(render("azure", "business")), "resource", "azurerm_redis_cache")["cache_prod"]
    assert (argument(one, "capacity"), argument(one, "shard_count")) == ("2", None)  # 7 GB: P2 (13 GB)
    three = blocks(tf(render("azure", "business", shards=3, replicas=1)), "resource", "azurerm_redis_cache")
    assert (argument(three["cache_prod"], "capacity"), argument(three["cache_prod"], "shard_count")) == ("1", "3")
    two = blocks(tf(render("azure", "business", replicas=2)), "resource", "azurerm_redis_cache")["cache_prod"]
    assert argument(two, "replicas_per_primary") == "2"
    essential = rows(render("azure", "essential"))["topology.replicas_per_shard"]
    assert essential["support"] == "approximated"  # Premium always has a replica
    with pytest.raises(InputError, match="replica"):
        render("azure", "business", replicas=4)


def test_maintenance_is_every_weekday_at_the_source_hour_and_the_eviction_policy_stays_valkeys():
    cache = blocks(tf(render("azure", "business")), "resource", "azurerm_redis_cache")["cache_prod"]
    days = re.findall(r'day_of_week    = "(\w+)"', cache)
    assert days == ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
    assert set(re.findall(r"start_hour_utc = (\d+)", cache)) == {"4"}
    assert argument(cache, "maxmemory_policy") == '"noeviction"'
    assert argument(cache, "notify_keyspace_events") == '"Ex"'


def test_an_eviction_policy_azure_lacks_is_not_rendered_and_is_unsupported():
    data = spec_data("business")
    config = [
        *data["configuration"],
        {"source_name": "redis_maxmemory_policy", "valkey_name": "maxmemory-policy", "value": "volatile-lrux"},
    ]
    files = render("azure", spec("business", configuration=config))
    assert "volatile-lrux" not in tf(files)
    assert rows(files)["configuration.redis_maxmemory_policy"]["support"] == "unsupported"


@pytest.mark.parametrize("region", ["West Europe", "westeurope;", "eu-west-3", "x"])
def test_region_names_are_checked(region):
    with pytest.raises(InputError, match="not a region name"):
        render("azure", "business", region=region)


def test_cache_names_have_no_double_hyphen_and_managed_redis_misfits_are_reported():
    files = render("azure", "business", name="my--cache---x")
    assert '"my-cache-x"' in files["terraform/variables.tf"]
    note = rows(files)["plan.flavor"]["note"]
    assert "azurerm_managed_redis does not fit: it has no maintenance window; it has no notify-keyspace-events" in note
    public = rows(render("azure", "essential"))["plan.flavor"]["note"]
    assert "does not fit: it has no IP allow-list for a public endpoint; it has no maintenance window" in public


@pytest.mark.parametrize("scenario", ["essential", "business"])
def test_the_managed_outputs_contract_holds(scenario):
    """What test_render_defects checks for its fixed list of managed targets, which does not name azure."""
    out = outputs(render("azure", scenario))
    assert set(CONTRACT) | {"user_passwords"} == set(out)
    assert argument(out["endpoint_port"], "value").endswith(".ssl_port")
    assert argument(out["tls"], "value") == "true" and argument(out["ca_certificate"], "value") == '""'
