"""The digitalocean target: trusted sources from CIDRs, one standby at most, no shards, no ACL users, config values.

The golden renders and the real-schema checks are the shared parametrised tests; these hold the rules of the
DigitalOcean render itself against adversarial allow-lists, topologies and settings.
"""

from __future__ import annotations

import json
import re

import pytest

from reproducer.errors import InputError
from reproducer.model import AllowedCidr, ConfigItem, ServiceSpec, load_spec
from reproducer.run.terraform import provider_credentials
from reproducer.targets import get_target
from reproducer.targets.base import RenderOptions
from reproducer.targets.digitalocean import MAX_RULES, firewall
from tests.golden.regen import HERE


def spec(name: str = "business") -> ServiceSpec:
    return load_spec(HERE / "specs" / f"{name}.yaml")


def render(source: ServiceSpec, options: RenderOptions | None = None) -> dict[str, str]:
    return get_target("digitalocean").render(source, options or RenderOptions()).files


def rows(files: dict[str, str]) -> dict[str, dict[str, str]]:
    return {row["attribute"]: row for row in json.loads(files["compatibility.json"])["rows"]}


def allowing(*cidrs: str) -> tuple[AllowedCidr, ...]:
    return tuple(AllowedCidr(cidr=cidr, description="x") for cidr in cidrs)


def rule_values(main: str) -> list[str]:
    return re.findall(r'type  = "ip_addr"\n    value = "([^"]+)"', main)


def test_small_cidrs_become_one_rule_per_address_and_big_ones_are_refused_with_the_reason():
    rules = firewall(allowing("198.51.100.0/30", "203.0.113.0/24", "192.0.2.7/32", "2001:db8::/64"))
    assert rules.addresses == ("192.0.2.7", "198.51.100.0", "198.51.100.1", "198.51.100.2", "198.51.100.3")
    assert dict(rules.refused) == {
        "203.0.113.0/24": "256 addresses, beyond the 100-rule limit",
        "2001:db8::/64": "IPv6, which DigitalOcean trusted sources do not take",
    }


def test_the_limit_is_filled_smallest_first_and_overlaps_count_once():
    # two /26 (64 each) cannot both fit: the /28 and the /32 inside it go first, then one /26
    rules = firewall(allowing("10.0.0.0/26", "10.0.1.0/26", "10.0.2.0/28", "10.0.2.1/32"))
    assert len(rules.addresses) == 16 + 64 <= MAX_RULES
    assert [cidr for cidr, _ in rules.refused] == ["10.0.1.0/26"]
    exactly = firewall(allowing(*(f"10.1.{i}.0/30" for i in range(25))))
    assert len(exactly.addresses) == MAX_RULES and not exactly.refused


@pytest.mark.parametrize("cidrs", [(), ("0.0.0.0/0",), ("10.0.0.0/8", "2001:db8::/32")])
def test_an_allow_list_with_nothing_a_rule_can_hold_is_refused_not_opened_to_everyone(cidrs):
    source = spec().model_copy(update={"allow_list": allowing(*cidrs)})
    with pytest.raises(InputError, match="accepts connections from anywhere") as caught:
        render(source)
    assert "100 addresses" in caught.value.hint


def test_the_rendered_firewall_holds_the_addresses_and_the_report_names_what_was_left_out():
    files = render(spec())
    assert rule_values(files["terraform/main.tf"]) == ["192.0.2.10"]
    allow = rows(files)["allow_list"]
    assert allow["support"] == "manual"
    assert "10.0.0.0/24: 256 addresses" in allow["note"] and "203.0.113.0/24" in allow["note"]
    whole = render(spec().model_copy(update={"allow_list": allowing("192.0.2.0/29")}))
    assert rows(whole)["allow_list"]["support"] == "exact"
    assert len(rule_values(whole["terraform/main.tf"])) == 8


def test_a_resharded_spec_is_unsupported_and_names_the_nearest_honest_shape():
    files = render(spec(), RenderOptions(shards=3, replicas=2))
    report = rows(files)
    assert report["topology.shards"]["support"] == report["topology.mode"]["support"] == "unsupported"
    assert "a db-s-4vcpu-8gb primary + 1 standby holding all 7 GB" in report["topology.shards"]["note"]
    assert report["topology.replicas_per_shard"]["support"] == "approximated"
    assert re.search(r"node_count += 2\n", files["terraform/main.tf"])


def test_a_standby_moves_a_1_gb_source_to_a_2_gb_plan():
    small = spec().model_copy(update={"plan": spec().plan.model_copy(update={"memory_gb": 0.5})})
    files = render(small)
    assert 'default     = "db-s-1vcpu-2gb"' in files["terraform/variables.tf"]
    assert "a standby needs a 2 GB plan" in rows(files)["topology.replicas_per_shard"]["note"]
    alone = render(small, RenderOptions(replicas=0))
    assert 'default     = "db-s-1vcpu-1gb"' in alone["terraform/variables.tf"]
    assert re.search(r"node_count += 1\n", alone["terraform/main.tf"])


def test_every_acl_user_is_manual_with_what_the_application_must_do():
    report = rows(render(spec()))
    for name in ("app", "analytics"):
        assert report[f"users.{name}"]["support"] == "manual"
        assert "must itself enforce" in report[f"users.{name}"]["note"]
    assert report["users.default"]["support"] == "approximated"
    main = render(spec())["terraform/main.tf"]
    assert "digitalocean_database_user" not in main and '"app"' not in main


def test_config_values_are_checked_not_passed_through():
    bad = ConfigItem.model_construct(source_name="redis_timeout", valkey_name="timeout", value="300\n; x")
    source = spec().model_copy(update={"configuration": (bad,)})
    with pytest.raises(InputError, match="not the integer"):
        render(source)
    other = ConfigItem.model_construct(source_name="redis_persistence", valkey_name="save", value="aof")
    files = render(spec().model_copy(update={"configuration": (other,)}))
    assert "persistence" not in files["terraform/main.tf"].split("valkey_config")[1]
    assert rows(files)["configuration.redis_persistence"]["support"] == "unsupported"


@pytest.mark.parametrize("region", ["FRA1", "fra", "eu-west-1", "fra1\n"])
def test_a_region_that_is_not_a_digitalocean_slug_is_refused(region):
    with pytest.raises(InputError, match="region"):
        render(spec(), RenderOptions(region=region))


def test_the_rendered_terraform_gets_the_digitalocean_token_and_no_other_credentials(tmp_path):
    for name, text in render(spec()).items():
        if name.startswith("terraform/"):
            (tmp_path / name.removeprefix("terraform/")).write_text(text)
    assert provider_credentials(tmp_path) == ("DIGITALOCEAN_*",)


def test_network_existing_is_refused_with_the_vpc_to_adopt_instead():
    with pytest.raises(InputError, match="--network existing") as caught:
        render(spec(), RenderOptions(network="existing"))
    assert "--adopt digitalocean_vpc.NAME=VPC_UUID" in caught.value.hint


def test_the_outputs_contract_is_declared_with_the_public_ca_and_the_generated_password():
    outputs = render(spec())["terraform/outputs.tf"]
    names = re.findall(r'^output "(\w+)"', outputs, re.MULTILINE)
    assert set(names) == {
        "endpoint_host",
        "endpoint_port",
        "tls",
        "cluster_mode",
        "user_names",
        "ca_certificate",
        "user_passwords",
    }
    assert 'value       = ""' in outputs.split('output "ca_certificate"')[1].split("}")[0]
    assert 'value       = ["default"]' in outputs
    assert re.search(
        r'sensitive   = true\n  value = \{\n    "default" = digitalocean_database_cluster\.\w+\.password', outputs
    )
