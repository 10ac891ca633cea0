"""The defects a review of the rendered Terraform found (issue 13, section 3), and the outputs contract.

Each test reads the rendered HCL (blocks and their arguments) or the compatibility report; the real-schema
checks (fmt, init, validate, plan with the offline providers) are in tests/integration/test_render_terraform.py.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml

from reproducer.model import ServiceSpec, spec_from_data
from reproducer.targets import get_target, target_entry, target_names
from reproducer.targets.base import RenderOptions
from tests.golden.regen import HERE

#: The managed clouds: every target the registry applies with Terraform (a new one is checked without an edit).
MANAGED = tuple(name for name in target_names() if target_entry(name).applier == "terraform")
CONTRACT = ("endpoint_host", "endpoint_port", "tls", "cluster_mode", "user_names", "ca_certificate")


def spec_data(name: str) -> dict[str, Any]:
    """A golden spec as plain data, to change before validating it."""
    data: dict[str, Any] = yaml.safe_load((HERE / "specs" / f"{name}.yaml").read_text())
    return data


def spec(name: str, **changes: Any) -> ServiceSpec:
    """A golden spec with top-level fields replaced."""
    return spec_from_data(spec_data(name) | changes)


def render(target: str, source: ServiceSpec | str = "business", **options: Any) -> dict[str, str]:
    """The files of ``target`` for a spec (or a golden spec's name)."""
    source = spec(source) if isinstance(source, str) else source
    return get_target(target).render(source, RenderOptions(**options)).files


def tf(files: dict[str, str]) -> str:
    """Every Terraform file of a render, concatenated."""
    return "".join(text for name, text in sorted(files.items()) if name.endswith(".tf"))


def blocks(text: str, kind: str, type_name: str) -> dict[str, str]:
    """Top-level ``kind "type_name" "label" { … }`` blocks by label (bodies; `terraform fmt` layout)."""
    pattern = rf'^{kind} "{re.escape(type_name)}" "([^"]+)" \{{\n(.*?)^\}}'
    return dict(re.findall(pattern, text, re.MULTILINE | re.DOTALL))


def argument(body: str, name: str) -> str | None:
    """The value of ``name = value`` in a block body (first match), or None."""
    match = re.search(rf"^\s*{re.escape(name)}\s*=\s*(.+)$", body, re.MULTILINE)
    return match.group(1).strip() if match else None


def rows(files: dict[str, str]) -> dict[str, dict[str, str]]:
    """The compatibility report's rows by attribute."""
    return {row["attribute"]: row for row in json.loads(files["compatibility.json"])["rows"]}


def outputs(files: dict[str, str]) -> dict[str, str]:
    """Output bodies by name."""
    return dict(re.findall(r'^output "([^"]+)" \{\n(.*?)^\}', files["terraform/outputs.tf"], re.M | re.S))


# -- outputs contract ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", ["essential", "business"])
@pytest.mark.parametrize("target", MANAGED)
def test_every_managed_target_has_the_outputs_contract(target, scenario):
    found = outputs(render(target, scenario))
    assert set(CONTRACT) <= set(found)
    assert "default" in found["user_names"], "the copy connects as default: it is one of the target's users"


def test_ca_certificate_is_empty_on_aws_and_read_from_the_cloud_elsewhere():
    assert argument(outputs(render("aws"))["ca_certificate"], "value") == '""'
    assert "managed_server_ca" in outputs(render("gcp"))["ca_certificate"]
    aiven = render("aiven")
    assert "data.aiven_project." in outputs(aiven)["ca_certificate"]
    assert blocks(tf(aiven), "data", "aiven_project")
    assert argument(outputs(render("ovh"))["ca_certificate"], "value") == '""'


# -- aws --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("maintenance", "window"),
    [("23:00:00", "sun:23:00-mon:00:00"), ("04:00:00", "sun:04:00-sun:05:00"), ("00:30:00", "sun:00:00-sun:01:00")],
)
def test_aws_maintenance_window_does_day_arithmetic(maintenance, window):
    files = render("aws", spec("business", maintenance_time=maintenance, backups={"time": "12:00:00"}))
    group = next(iter(blocks(files["terraform/main.tf"], "resource", "aws_elasticache_replication_group").values()))
    assert argument(group, "maintenance_window") == f'"{window}"'
    assert window in rows(files)["maintenance_time"]["note"]


def test_aws_maintenance_window_moved_off_the_snapshot_window_rolls_the_day():
    files = render("aws", spec("business", maintenance_time="22:00:00", backups={"time": "22:00:00"}))
    group = next(iter(blocks(files["terraform/main.tf"], "resource", "aws_elasticache_replication_group").values()))
    assert argument(group, "snapshot_window") == '"22:00-23:00"'
    assert argument(group, "maintenance_window") == '"mon:00:00-mon:01:00"'


@pytest.mark.parametrize("region", [None, "us-west-1"])
def test_aws_availability_zones_come_from_the_region(region):
    files = render("aws", "business", region=region)
    text = tf(files) + files["terraform/terraform.tfvars.example"]
    named = region or "eu-west-3"
    assert not re.search(rf"{named}[a-f]\b", text), "no zone name baked in"
    assert blocks(text, "data", "aws_availability_zones")
    subnet = blocks(text, "resource", "aws_subnet")
    assert "data.aws_availability_zones." in "".join(subnet.values()) + text.split("locals")[-1]


@pytest.mark.parametrize("scenario", ["essential", "business", "business-3x1"])
def test_aws_report_claims_multi_az_and_failover_only_when_rendered(scenario):
    options = {"shards": 3, "replicas": 1} if scenario == "business-3x1" else {}
    files = render("aws", scenario.split("-")[0], **options)
    group = next(iter(blocks(files["terraform/main.tf"], "resource", "aws_elasticache_replication_group").values()))
    report = " ".join(r["note"].lower() for r in rows(files).values())
    assert ("multi-az" in report) == (argument(group, "multi_az_enabled") == "true")
    failover = argument(group, "automatic_failover_enabled") == "true"
    assert ("automatic failover" in report.replace("no automatic failover", "")) == failover
    assert ("no automatic failover" in report) == (not failover)


def test_aws_allow_list_of_a_public_source_is_not_exact_in_a_private_vpc():
    report = rows(render("aws", "essential"))
    assert report["allow_list"]["support"] != "exact"
    assert report["network.private"]["support"] != "exact"
    assert "VPC" in report["allow_list"]["note"]


def test_aws_every_user_group_has_a_default_user():
    data = spec_data("business")
    data["users"] = [u for u in data["users"] if u["name"] != "default"]
    main = render("aws", spec_from_data(data))["terraform/main.tf"]
    users = blocks(main, "resource", "aws_elasticache_user")
    defaults = [body for body in users.values() if argument(body, "user_name") == '"default"']
    assert len(defaults) == 1
    assert 'var.user_passwords["default"]' in defaults[0]
    group = next(iter(blocks(main, "resource", "aws_elasticache_user_group").values()))
    label = next(label for label, body in users.items() if body is defaults[0])
    assert f"aws_elasticache_user.{label}.user_id" in group


# -- gcp --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("options", "kind"), [({}, "PRIMARY"), ({"shards": 3, "replicas": 1}, "DISCOVERY")])
def test_gcp_endpoint_is_read_from_psc_connections_by_type(options, kind):
    files = render("gcp", "business", **options)
    text = files["terraform/outputs.tf"]
    assert "discovery_endpoints" not in text
    assert "psc_auto_connection" in text and f'"CONNECTION_TYPE_{kind}"' in text
    other = "DISCOVERY" if kind == "PRIMARY" else "PRIMARY"
    assert f"CONNECTION_TYPE_{other}" not in text


def test_gcp_enables_the_apis_a_fresh_project_lacks():
    text = tf(render("gcp"))
    services = blocks(text, "resource", "google_project_service")
    apis = {argument(body, "service") for body in services.values()}
    assert {
        '"memorystore.googleapis.com"',
        '"networkconnectivity.googleapis.com"',
        '"serviceconsumermanagement.googleapis.com"',
    } <= apis
    policy = next(iter(blocks(text, "resource", "google_network_connectivity_service_connection_policy").values()))
    assert "google_project_service." in policy
    for type_name in ("google_memorystore_acl_policy", "google_memorystore_instance", "google_compute_network"):
        assert "google_project_service." in next(iter(blocks(text, "resource", type_name).values())), type_name


@pytest.mark.parametrize("scenario", ["essential", "business"])
def test_gcp_allow_list_is_not_an_ingress_rule_and_is_rated_honestly(scenario):
    files = render("gcp", scenario)
    firewalls = blocks(tf(files), "resource", "google_compute_firewall")
    assert all(argument(body, "direction") != '"INGRESS"' for body in firewalls.values())
    row = rows(files)["allow_list"]
    assert row["support"] in ("manual", "unsupported")
    assert "egress" in row["note"].lower() and "Private Service Connect" in row["note"]


@pytest.mark.parametrize("scenario", ["essential", "business"])
def test_gcp_report_names_the_zone_mode_the_render_uses(scenario):
    files = render("gcp", scenario)
    instance = next(iter(blocks(files["terraform/main.tf"], "resource", "google_memorystore_instance").values()))
    mode = re.search(r'zone_distribution_config \{\s*mode = "(\w+)"', instance)
    assert mode
    notes = " ".join(r["note"] for r in rows(files).values())
    assert mode.group(1) in notes
    assert {"MULTI_ZONE", "SINGLE_ZONE"} - {mode.group(1)} <= {"MULTI_ZONE", "SINGLE_ZONE"} - set(notes.split())


# -- ovh --------------------------------------------------------------------------------------------------------


def test_ovh_private_network_region_is_a_public_cloud_region_id():
    files = render("ovh", "business")
    text = files["terraform/variables.tf"] + files["terraform/terraform.tfvars.example"]
    values = re.findall(r'network_region\s*=\s*"([^"]*)"', text)
    values += re.findall(r'variable "network_region" \{[^}]*default\s*=\s*"([^"]*)"', text)
    assert values and all(re.fullmatch(r"[A-Z]+(?:-[A-Z]+)*\d+|EU-[A-Z]+-[A-Z]+", v) for v in values), values
    assert "GRA" not in values


def test_ovh_empty_channels_are_never_rendered_as_an_empty_list():
    files = render("ovh", "business")
    users = blocks(files["terraform/main.tf"], "resource", "ovh_cloud_project_database_valkey_user")
    assert all(argument(body, "channels") != "[]" for body in users.values())
    analytics = users["analytics"]
    assert '"-@pubsub"' in (argument(analytics, "categories") or "")
    row = rows(files)["users.analytics"]
    assert row["support"] != "exact" and "channel" in row["note"]


def test_aiven_sends_an_empty_channel_list_as_it_is():
    """Aiven's provider sends the list even when empty (and reads it back): no silent widening to fix there."""
    files = render("aiven", "business")
    users = blocks(files["terraform/main.tf"], "resource", "aiven_valkey_user")
    assert argument(users["analytics"], "valkey_acl_channels") == "[]"
    assert '"-@pubsub"' not in files["terraform/main.tf"]


@pytest.mark.parametrize("commands", [("+publish",), ("+SUBSCRIBE", "+get")])
def test_ovh_user_whose_commands_grant_pubsub_back_is_unsupported(commands):
    data = spec_data("business")
    for user in data["users"]:
        if user["name"] == "analytics":
            user["commands"] = list(commands)
    row = rows(render("ovh", spec_from_data(data)))["users.analytics"]
    assert row["support"] == "unsupported" and "every channel" in row["note"]


def test_ovh_vrack_attachment_is_optional_so_an_existing_one_is_kept():
    text = tf(render("ovh", "business"))
    attach = next(iter(blocks(text, "resource", "ovh_vrack_cloudproject").values()))
    assert argument(attach, "count") is not None
    assert "var.vrack_id" in argument(attach, "count")


def test_ovh_subnet_keeps_the_source_allocation_pool_and_gateway():
    files = render("ovh", "business")
    subnet = next(iter(blocks(tf(files), "resource", "ovh_cloud_project_network_private_subnet_v2").values()))
    pool = re.search(r"allocation_pools \{\s*start\s*=\s*\"([^\"]+)\"\s*end\s*=\s*\"([^\"]+)\"", subnet)
    assert pool and pool.groups() == ("192.168.1.12", "192.168.1.24")
    assert argument(subnet, "gateway_ip") == '"192.168.1.1"'
    assert rows(files)["network.private.subnet"]["support"] == "exact"


def test_ovh_subnet_without_a_known_pool_is_not_rated_exact():
    data = spec_data("business")
    data["network"]["private"]["subnet"] |= {"allocation_start": None, "allocation_end": None}
    files = render("ovh", spec_from_data(data))
    assert rows(files)["network.private.subnet"]["support"] != "exact"


def test_ovh_default_user_is_written_with_the_acl_ovh_gives_it_so_no_plan_shows_a_change_never_applied():
    files = render("ovh", "business")
    users = blocks(files["terraform/main.tf"], "resource", "ovh_cloud_project_database_valkey_user")
    default = users["default"]
    assert argument(default, "categories") == '["+@all"]' and argument(default, "keys") == '["*"]'
    for name in ("commands", "channels"):
        assert argument(default, name) is None, name
    assert "default" in rows(files)["users.default"]["note"]


def test_ovh_default_user_with_narrower_rights_is_not_exact():
    data = spec_data("business")
    for user in data["users"]:
        if user["name"] == "default":
            user["categories"] = ["+@read"]
    assert rows(render("ovh", spec_from_data(data)))["users.default"]["support"] != "exact"


# -- selfmanaged ------------------------------------------------------------------------------------------------


def test_selfmanaged_instances_are_reachable_for_ansible_and_packages():
    text = tf(render("selfmanaged", "business"))
    assert blocks(text, "resource", "openstack_networking_router_v2")
    assert blocks(text, "resource", "openstack_networking_router_interface_v2")
    assert blocks(text, "resource", "openstack_networking_floatingip_v2")
    rules = blocks(text, "resource", "openstack_networking_secgroup_rule_v2").values()
    assert any(argument(body, "port_range_min") == "22" for body in rules)


def _rule_ports(text: str) -> dict[str, set[str]]:
    """Ports opened to CIDRs and ports opened to the group itself."""
    found: dict[str, set[str]] = {"cidr": set(), "group": set()}
    for body in blocks(text, "resource", "openstack_networking_secgroup_rule_v2").values():
        port = argument(body, "port_range_min") or ""
        found["group" if argument(body, "remote_group_id") else "cidr"].add(port)
    return found


@pytest.mark.parametrize(
    ("scenario", "options", "client", "peer"),
    [
        ("essential", {}, {"6379"}, {"6379"}),
        ("business", {}, {"6379", "26379"}, {"6379", "26379"}),
        ("business", {"shards": 3, "replicas": 1}, {"6379"}, {"6379", "16379"}),
    ],
)
def test_selfmanaged_opens_only_the_ports_the_topology_uses(scenario, options, client, peer):
    ports = _rule_ports(tf(render("selfmanaged", scenario, **options)))
    assert ports["cidr"] - {"22"} == client
    assert ports["group"] == peer


def test_selfmanaged_public_source_network_is_not_exact():
    report = rows(render("selfmanaged", "essential"))
    assert report["allow_list"]["support"] != "exact"
    assert report["network.private"]["support"] != "exact"


# -- aiven ------------------------------------------------------------------------------------------------------


def test_aiven_report_cites_no_vpc_it_does_not_render():
    files = render("aiven", "essential")
    assert "aiven_project_vpc" not in tf(files)
    assert all("aiven_project_vpc" not in row["target_argument"] for row in rows(files).values())


def test_aiven_startup_plan_is_not_called_primary_and_standby():
    files = render("aiven", "essential")
    assert '"startup-' in files["terraform/main.tf"]
    notes = " ".join(row["note"] for row in rows(files).values()).lower()
    assert "primary + standby" not in notes and "one node" in notes


# -- the class: network ratings follow the source's network for every target -----------------------------------


@pytest.mark.parametrize("target", ["aws", "gcp", "selfmanaged"])
def test_a_private_only_target_never_rates_a_public_source_exact(target):
    report = rows(render(target, "essential"))
    assert report["allow_list"]["support"] != "exact"
    assert report["network.private"]["support"] != "exact"


@pytest.mark.parametrize("target", ["ovh", "aiven"])
def test_a_target_with_a_public_endpoint_keeps_a_public_source_exact(target):
    report = rows(render(target, "essential"))
    assert report["allow_list"]["support"] == "exact"
    assert report["network.private"]["support"] == "exact"


def test_selfmanaged_inventory_logs_in_at_floating_ips_and_keeps_private_addresses_for_valkey():
    from reproducer.targets.selfmanaged import inventory_from_outputs

    terraform_outputs = {
        "ansible_inventory": {"value": {"valkey": {"n-0": "198.51.100.7"}}},
        "valkey_addresses": {"value": {"n-0": "10.0.0.5"}},
    }
    host = inventory_from_outputs(terraform_outputs)["all"]["hosts"]["n-0"]
    assert host == {"ansible_host": "198.51.100.7", "valkey_address": "10.0.0.5"}
    found = outputs(render("selfmanaged", "business"))
    assert "openstack_networking_floatingip_v2." in found["ansible_inventory"]
    assert "all_fixed_ips" not in found["ansible_inventory"] and "all_fixed_ips" in found["valkey_addresses"]


@pytest.mark.parametrize("target", MANAGED)
def test_a_default_user_the_render_adds_has_a_row(target):
    data = spec_data("business")
    data["users"] = [u for u in data["users"] if u["name"] != "default"]
    row = rows(render(target, spec_from_data(data)))["users.default"]
    assert row["support"] == "approximated" and row["note"].startswith("not in the source")
