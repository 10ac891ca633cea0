"""The azure target's own decisions: Managed Redis where it fits, Premium otherwise; CIDRs to exact ranges with
`^\\w+$` names, reachability, users, Redis not Valkey.

Real-schema checks (fmt, validate, plan) of its goldens and hostile values are in the shared parametrised modules;
the Managed Redis golden (an azure-only variant of the Business spec, tests/golden/azure/business-managed) is
compared here and planned on the twin in tests/integration/test_twin_azure.py. Rewrite it with
``python -m tests.unit.test_render_azure``.
"""

from __future__ import annotations

import ipaddress
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from reproducer.errors import InputError
from tests.support import hostile
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


def test_a_public_source_with_no_ipv4_cidr_gets_no_public_access_since_no_rule_means_everyone():
    files = render("azure", spec("essential", allow_list=allow("2001:db8::/64")))
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
    assert note.startswith("azurerm_redis_cache Premium P2")
    assert note.endswith(
        "azurerm_managed_redis does not fit: it has no notify-keyspace-events argument (keyspace notifications)"
    )
    public = rows(render("azure", "essential"))["plan.flavor"]["note"]
    assert "does not fit: a public source with an IP allow-list needs firewall rules" in public
    assert "maintenance" not in public + note, "a maintenance window is no reason to stay on Premium"


@pytest.mark.parametrize("scenario", ["essential", "business"])
def test_the_managed_outputs_contract_holds(scenario):
    """What test_render_defects checks for its fixed list of managed targets, which does not name azure."""
    out = outputs(render("azure", scenario))
    assert set(CONTRACT) | {"user_passwords"} == set(out)
    assert argument(out["endpoint_port"], "value").endswith(".ssl_port")
    assert argument(out["tls"], "value") == "true" and argument(out["ca_certificate"], "value") == '""'


# -- Azure Managed Redis ------------------------------------------------------------------------------------------

MANAGED_GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "azure" / "business-managed"


def without_notifications(name: str = "business", value: str | None = None) -> list[dict[str, Any]]:
    """The golden spec's configuration with notify-keyspace-events left out (or set to ``value``)."""
    config = [c for c in spec_data(name)["configuration"] if c["valkey_name"] != "notify-keyspace-events"]
    if value is not None:
        config.append(
            {"source_name": "redis_notify_keyspace_events", "valkey_name": "notify-keyspace-events", "value": value}
        )
    return config


def managed_files(**options: Any) -> dict[str, str]:
    """The azure-only golden: the Business spec (vRack, allow-list, users, maintenance) without notifications."""
    return render("azure", spec("business", configuration=without_notifications()), **options)


def managed(files: dict[str, str]) -> dict[str, str]:
    return blocks(tf(files), "resource", "azurerm_managed_redis")


def write_managed_golden() -> None:
    """Rewrite tests/golden/azure/business-managed (review the diff)."""
    shutil.rmtree(MANAGED_GOLDEN, ignore_errors=True)
    for relative, text in managed_files().items():
        (MANAGED_GOLDEN / relative).parent.mkdir(parents=True, exist_ok=True)
        (MANAGED_GOLDEN / relative).write_text(text, encoding="utf-8")


def test_the_managed_redis_golden_is_current():
    on_disk = {
        p.relative_to(MANAGED_GOLDEN).as_posix(): p.read_text() for p in MANAGED_GOLDEN.rglob("*") if p.is_file()
    }
    assert managed_files() == on_disk, "run `python -m tests.unit.test_render_azure` and review the diff"


def test_a_vrack_source_lands_on_managed_redis_behind_a_private_endpoint_with_no_public_access():
    files = managed_files()
    text = tf(files)
    cache = managed(files)["cache_prod"]
    assert not blocks(text, "resource", "azurerm_redis_cache") and not blocks(
        text, "resource", "azurerm_redis_firewall_rule"
    )
    assert argument(cache, "public_network_access") == '"Disabled"'
    assert argument(cache, "sku_name") == '"Balanced_B10"'  # 7 GB: B10 (12 GB, 9.6 usable)
    assert argument(cache, "high_availability_enabled") == "true"
    assert argument(cache, "access_keys_authentication_enabled") == "true"
    assert argument(cache, "client_protocol") == '"Encrypted"'
    assert argument(cache, "clustering_policy") == '"NoCluster"'
    assert argument(cache, "eviction_policy") == '"NoEviction"'
    assert argument(cache, "persistence_redis_database_backup_frequency") == '"1h"'
    endpoint = blocks(text, "resource", "azurerm_private_endpoint")["cache_prod"]
    assert "azurerm_managed_redis.cache_prod.id" in endpoint and '["redisEnterprise"]' in endpoint
    report = rows(files)
    assert (
        report["plan.flavor"]["support"] == "exact"
        and "azurerm_managed_redis Balanced_B10" in report["plan.flavor"]["note"]
    )
    assert "retiring 2028-09-30" in report["plan.flavor"]["note"]
    assert report["allow_list"]["support"] == "manual" and "network security group" in report["allow_list"]["note"]
    assert "10.0.0.0/24" in report["allow_list"]["note"]


def test_the_maintenance_window_is_manual_not_a_blocker():
    row = rows(managed_files())["maintenance_time"]
    assert row["support"] == "manual" and "Azure schedules Managed Redis updates itself" in row["note"]
    assert "patch_schedule" not in tf(managed_files())


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        (
            {"network": {"type": "public", "private": None}},
            "a public source with an IP allow-list needs firewall rules",
        ),
        (
            {"network": {"type": "public", "private": None}, "allow_list": allow("2001:db8::/64")},
            "a public source with an IP allow-list",
        ),
        ({"configuration": without_notifications(value="KEA")}, "it has no notify-keyspace-events argument"),
    ],
)
def test_what_managed_redis_cannot_do_keeps_premium_and_says_why(changes, reason):
    data = {"configuration": without_notifications()} | changes
    files = render("azure", spec("business", **data))
    assert not managed(files) and blocks(tf(files), "resource", "azurerm_redis_cache")
    note = rows(files)["plan.flavor"]["note"]
    assert f"azurerm_managed_redis does not fit: {reason}" in note
    assert 'public_network_access     = "Enabled"' not in tf(files)


def test_more_than_one_replica_keeps_premium_and_none_turns_high_availability_off():
    files = managed_files(replicas=2)
    assert not managed(files) and "it runs one replica per shard, not 2" in rows(files)["plan.flavor"]["note"]
    single = managed_files(replicas=0)
    assert argument(managed(single)["cache_prod"], "high_availability_enabled") == "false"
    assert rows(single)["topology.replicas_per_shard"]["support"] == "exact"


@pytest.mark.parametrize("allow_list", [[], None])
def test_a_public_source_with_no_allow_list_fits_but_stays_closed(allow_list):
    """OVH lets nothing reach a public service without IP restrictions; Managed Redis keeps it closed too."""
    changes: dict[str, Any] = {"network": {"type": "public", "private": None}, "configuration": without_notifications()}
    changes |= {"allow_list": allow_list} if allow_list is not None else {"allow_list": []}
    files = render("azure", spec("business", **changes))
    cache = managed(files)["cache_prod"]
    assert argument(cache, "public_network_access") == '"Disabled"'
    assert not blocks(tf(files), "resource", "azurerm_private_endpoint")
    assert "nothing reaches the instance" in rows(files)["allow_list"]["note"]


def test_empty_notifications_are_off_as_on_managed_redis():
    files = render("azure", spec("business", configuration=without_notifications(value="")))
    assert managed(files)
    assert rows(files)["configuration.redis_notify_keyspace_events"]["support"] == "exact"


def test_a_sharded_spec_is_an_oss_cluster_sized_for_the_whole_dataset():
    files = managed_files(shards=3, replicas=1)
    cache = managed(files)["cache_prod"]
    assert argument(cache, "clustering_policy") == '"OSSCluster"'
    assert argument(cache, "sku_name") == '"Balanced_B10"'  # 7 GB x 1.2 = 8.4 GB <= 9.6 usable
    assert argument(outputs(files)["cluster_mode"], "value") == "true"
    report = rows(files)
    assert report["topology.mode"]["support"] == "exact" and "8500-8599" in report["topology.mode"]["note"]
    assert (
        report["topology.shards"]["support"] == "approximated" and "from the SKU" in report["topology.shards"]["note"]
    )


def test_a_large_unsharded_dataset_is_one_enterprise_cluster_endpoint():
    data = spec_data("business")
    files = render(
        "azure", spec("business", configuration=without_notifications(), plan=data["plan"] | {"memory_gb": 60.0})
    )
    cache = managed(files)["cache_prod"]
    assert argument(cache, "clustering_policy") == '"EnterpriseCluster"'  # NoCluster stops at 24 GB
    assert argument(cache, "sku_name") == '"Balanced_B100"'  # 60 GB > 48 usable of B50
    assert argument(outputs(files)["cluster_mode"], "value") == "false", "one endpoint: no cluster client"
    assert (
        rows(files)["topology.mode"]["support"] == "approximated"
        and "hash slot" in rows(files)["topology.mode"]["note"]
    )


def test_acl_users_are_manual_with_the_access_policy_assignment_and_cannot_be_narrowed():
    report = rows(managed_files())
    for name in ("app", "analytics"):
        row = report[f"users.{name}"]
        assert row["support"] == "manual" and row["target_argument"] == "azurerm_managed_redis_access_policy_assignment"
        assert "Entra" in row["note"] and "full data access" in row["note"]
    assert "'+@read +info ~metrics:* ~events:*'" in report["users.analytics"]["note"]
    assert report["users.default"]["support"] == "approximated"
    out = outputs(managed_files())
    assert argument(out["user_names"], "value") == '["default"]'
    assert ".default_database[0].primary_access_key" in out["user_passwords"]


def test_the_eviction_policy_maps_to_managed_redis_names():
    config = [
        *without_notifications(),
        {"source_name": "redis_maxmemory_policy", "valkey_name": "maxmemory-policy", "value": "allkeys-lru"},
    ]
    files = render("azure", spec("business", configuration=config))
    assert argument(managed(files)["cache_prod"], "eviction_policy") == '"AllKeysLRU"'
    assert rows(files)["configuration.redis_maxmemory_policy"]["support"] == "exact"


@pytest.mark.parametrize(
    ("name", "expected"), [("ab", "ab-redis"), ("a--b", "a-b"), ("x", "x-redis"), ("cache-prod", "cache-prod")]
)
def test_managed_redis_names_have_three_characters_and_no_double_hyphen(name, expected):
    files = managed_files(name=name)
    assert f'default     = "{expected}"' in files["terraform/variables.tf"]


def test_the_managed_redis_outputs_contract_holds():
    out = outputs(managed_files())
    assert set(CONTRACT) | {"user_passwords"} == set(out)
    assert argument(out["endpoint_port"], "value") == "azurerm_managed_redis.cache_prod.default_database[0].port"
    assert argument(out["endpoint_host"], "value") == "azurerm_managed_redis.cache_prod.hostname"
    assert argument(out["tls"], "value") == "true" and argument(out["ca_certificate"], "value") == '""'


#: A value that would add a resource, read a file, loop and run Jinja if it were not escaped.
HOSTILE = '"}\nresource "x" "y" {}\n${file("/etc/passwd")}%{ for x in [1] }x%{ endfor }{{ "zq" ~ "jinja" }}'
#: Each top-level block's kind and type (a resource's label comes from the name, made an identifier).
_SKELETON = re.compile(r'^((?:resource|data|output|variable|provider|module|terraform|import)\b(?: "[^"]*")?)', re.M)


def test_hostile_values_in_every_field_of_a_managed_redis_render_stay_data():
    base = spec("business", configuration=without_notifications())
    skeleton = _SKELETON.findall(tf(managed_files()))
    rendered = 0
    for path in hostile.string_paths(base):
        files = hostile.render("azure", hostile.replaced(base, path, HOSTILE))
        if files is None:  # refused with an InputError
            continue
        rendered += 1
        text = tf(files)
        assert _SKELETON.findall(text) == skeleton, path
        assert "zqjinja" not in "".join(files.values()) and "\n${file" not in text, path
        assert managed(files), path
    assert rendered > 10, "most fields render (escaped) rather than being refused"


if __name__ == "__main__":
    write_managed_golden()
