"""Every golden output passes real Terraform offline: fmt -check, init from the mirror, validate, plan.

The providers serve the real provider schemas (committed subsets), so an unknown argument, a wrong type or
a misplaced block in a template is caught here exactly as it would be against the real provider.

The targets come from the registry when the tests are collected: every registered target that renders
Terraform is checked, and one whose provider schema is missing fails (the mirror cannot be installed).
"""

from __future__ import annotations

import re
import shutil
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from reproducer.model import AllowedCidr, ServiceSpec, load_spec
from reproducer.offline import install_mirror
from reproducer.run.terraform import Terraform
from reproducer.targets import get_target, target_names
from reproducer.targets.base import RenderOptions
from tests.golden.regen import HERE, SCENARIOS, golden_dir
from tests.support.hostile import MARK, render, replaced, string_paths


def terraform_targets() -> list[str]:
    """The registered targets whose output is Terraform."""
    return [name for name in target_names() if get_target(name).providers]


TARGETS = terraform_targets()


@pytest.fixture(scope="module")
def cli_config(tmp_path_factory) -> Path:
    """A mirror of every provider the registered targets require (fails if one has no committed schema)."""
    keys = sorted({key for name in terraform_targets() for key in get_target(name).terraform_providers})
    return install_mirror(tmp_path_factory.mktemp("tf-mirror"), keys)


def golden_workdir(target: str, scenario: str, tmp_path: Path) -> Path:
    """A copy of the golden Terraform directory, with its tfvars example used as the variables."""
    workdir = tmp_path / target
    shutil.copytree(golden_dir(target, scenario) / "terraform", workdir)
    shutil.copy(workdir / "terraform.tfvars.example", workdir / "terraform.tfvars")
    return workdir


def spec_of(scenario: str) -> ServiceSpec:
    return load_spec(HERE / "specs" / SCENARIOS[scenario][0])


Topology = tuple[ServiceSpec, int, int]  # the spec, shards and replicas per shard


#: Availability zones the offline provider reports: a data source's computed list of strings holds one fake value
#: there, so the rendered subnets (one per zone of the region, up to three) are one offline.
OFFLINE_ZONES = 1


def _aws(spec: ServiceSpec, shards: int, replicas: int) -> Counter[str]:
    return Counter(
        {
            "aws_vpc": 1,
            "aws_subnet": OFFLINE_ZONES,
            "aws_elasticache_subnet_group": 1,
            "aws_security_group": 1,
            "aws_vpc_security_group_ingress_rule": len(spec.allow_list),
            "aws_elasticache_parameter_group": 1,
            "aws_elasticache_user": len(spec.users),
            "aws_elasticache_user_group": 1,
            "aws_elasticache_replication_group": 1,
        }
    )


def _gcp(spec: ServiceSpec, shards: int, replicas: int) -> Counter[str]:
    return Counter(
        {
            "google_compute_network": 1,
            "google_compute_subnetwork": 1,
            "google_network_connectivity_service_connection_policy": 1,
            "google_project_service": 4,
            "google_memorystore_acl_policy": 1,
            "google_memorystore_instance": 1,
        }
    )


def _ovh(spec: ServiceSpec, shards: int, replicas: int) -> Counter[str]:
    network = (
        {
            "ovh_vrack_cloudproject": 1,
            "ovh_cloud_project_network_private": 1,
            "ovh_cloud_project_network_private_subnet_v2": 1,
        }
        if spec.network.private is not None
        else {}
    )
    users = len({u.name for u in spec.users} | {"default"})
    return Counter({"ovh_cloud_project_database": 1, "ovh_cloud_project_database_valkey_user": users, **network})


def _aiven(spec: ServiceSpec, shards: int, replicas: int) -> Counter[str]:
    extra_users = sum(1 for u in spec.users if u.name != "default")
    vpc = {"aiven_project_vpc": 1} if spec.network.private is not None else {}
    return Counter({"aiven_valkey": 1, "aiven_valkey_user": extra_users, **vpc})


def _selfmanaged(spec: ServiceSpec, shards: int, replicas: int) -> Counter[str]:
    data_nodes = shards * (1 + replicas)
    sentinel = shards == 1 and replicas > 0
    arbiter = 1 if sentinel and data_nodes < 3 else 0
    client_ports = 2 if sentinel else 1  # 6379, and 26379 with Sentinel
    peer_ports = client_ports + (1 if shards > 1 else 0)  # and the cluster bus, between the nodes only
    admin_cidrs = 1  # in terraform.tfvars.example
    return Counter(
        {
            "openstack_networking_network_v2": 1,
            "openstack_networking_subnet_v2": 1,
            "openstack_networking_router_v2": 1,
            "openstack_networking_router_interface_v2": 1,
            "openstack_networking_secgroup_v2": 1,
            "openstack_networking_secgroup_rule_v2": client_ports * len(spec.allow_list) + peer_ports + admin_cidrs,
            "openstack_networking_port_v2": data_nodes + arbiter,
            "openstack_networking_floatingip_v2": data_nodes + arbiter,
            "openstack_networking_floatingip_associate_v2": data_nodes + arbiter,
            "openstack_compute_instance_v2": data_nodes + arbiter,
        }
    )


#: What the plan of each target must create, derived from the spec independently of the renderer. A target not
#: listed here is held to the weaker check of :func:`declared_resources`.
EXPECTED: dict[str, Callable[[ServiceSpec, int, int], Counter[str]]] = {
    "aws": _aws,
    "gcp": _gcp,
    "ovh": _ovh,
    "aiven": _aiven,
    "selfmanaged": _selfmanaged,
}


def expected_resources(target: str, scenario: str, spec: ServiceSpec | None = None) -> Counter[str] | None:
    """What the plan must create (the scenario's spec, unless given), or None when the target has no expectation."""
    spec, options = spec or spec_of(scenario), SCENARIOS[scenario][1]
    shards = options.shards or spec.topology.shards
    replicas = options.replicas if options.replicas is not None else spec.topology.replicas_per_shard
    expect = EXPECTED.get(target)
    return expect(spec, shards, replicas) if expect else None


def declared_resources(workdir: Path) -> set[str]:
    """The resource types the configuration in ``workdir`` declares."""
    text = "".join(path.read_text() for path in workdir.glob("*.tf"))
    return set(re.findall(r'^resource "([A-Za-z0-9_]+)"', text, re.MULTILINE))


def assert_plans(tf: Terraform, target: str, scenario: str, spec: ServiceSpec | None = None) -> Counter[str]:
    """fmt -check, init, validate and plan; the plan creates what the spec says and changes nothing else."""
    assert tf.fmt_check().clean
    tf.init(backend=False)
    validation = tf.validate()
    assert validation.valid, validation.diagnostics
    plan = tf.plan()
    created = Counter(change.type for change in plan.resource_changes if change.actions == ("create",))
    expected = expected_resources(target, scenario, spec)
    if expected is None:
        declared = declared_resources(tf.workdir)
        assert declared and set(created) == declared, "every declared resource type is planned, nothing else"
        assert set(declared) <= provider_types(target)
    else:
        assert created == expected
    assert plan.change == 0 and plan.destroy == 0
    return created


def provider_types(target: str) -> set[str]:
    """The resource types the target says its providers' schemas must have (its subset's types)."""
    return {name for provider in get_target(target).providers for name in provider.resources}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
@pytest.mark.parametrize("target", TARGETS)
def test_golden_output_is_fmt_clean_valid_and_plans_what_the_spec_says(target, scenario, cli_config, tmp_path):
    assert_plans(Terraform(golden_workdir(target, scenario, tmp_path), cli_config=cli_config), target, scenario)


def test_a_broken_template_is_caught_by_validate(cli_config, tmp_path):
    workdir = golden_workdir("aws", "business", tmp_path)
    main = workdir / "main.tf"
    text = main.read_text()
    text = text.replace(
        '  engine_version             = "8.0"', '  engine_version             = "8.0"\n  shard_count = 3', 1
    )
    text = text.replace("port                       = 6379", 'port                       = "not-a-number"', 1)
    main.write_text(text)
    tf = Terraform(workdir, cli_config=cli_config)
    tf.init(backend=False)
    validation = tf.validate()
    assert not validation.valid
    summaries = " ".join(f"{d.summary} {d.detail}" for d in validation.diagnostics)
    assert "Unsupported argument" in summaries and "shard_count" in summaries
    assert "Incorrect attribute value type" in summaries or "number required" in summaries


#: Every kind of break-out at once: a new block, a closed string, interpolation, template directive, Jinja.
HOSTILE = (
    MARK + '"}\nresource "x" "y" {}\n${file("/etc/passwd")}%{ for x in [1] }x%{ endfor }{{ lookup(\'pipe\',\'id\') }}'
)


def hostile_spec(target: str) -> ServiceSpec:
    """The Business spec with HOSTILE in every string field the target renders rather than refuses."""
    spec = spec_of("business")
    for path in string_paths(spec):
        candidate = replaced(spec, path, HOSTILE)
        if render(target, candidate) is not None:
            spec = candidate
    return spec


@pytest.mark.parametrize("target", TARGETS)
def test_hostile_values_everywhere_plan_exactly_the_benign_resources(target, cli_config, tmp_path):
    spec = hostile_spec(target)
    files = get_target(target).render(spec, RenderOptions()).files
    workdir = tmp_path / target
    for name, text in files.items():
        if name.startswith("terraform/"):
            (workdir / name).parent.mkdir(parents=True, exist_ok=True)
            (workdir / name).write_text(text)
    workdir = workdir / "terraform"
    (workdir / "terraform.tfvars").write_text((workdir / "terraform.tfvars.example").read_text())
    terraform_text = "".join(text for name, text in files.items() if name.startswith("terraform/"))
    assert MARK in terraform_text, "the hostile value was rendered (escaped), not refused everywhere"
    created = assert_plans(Terraform(workdir, cli_config=cli_config), target, "business", spec)
    assert "x" not in created


@pytest.mark.parametrize("target", ["aws", "gcp"])
def test_an_ipv6_allow_list_entry_is_valid_terraform(target, cli_config, tmp_path):
    entries = (*spec_of("business").allow_list, AllowedCidr(cidr="2001:db8::/32", description="v6 office"))
    spec = spec_of("business").model_copy(update={"allow_list": entries})
    workdir = tmp_path / "terraform"
    workdir.mkdir()
    for name, text in get_target(target).render(spec, RenderOptions()).files.items():
        if name.startswith("terraform/"):
            (workdir / name.removeprefix("terraform/")).write_text(text)
    (workdir / "terraform.tfvars").write_text((workdir / "terraform.tfvars.example").read_text())
    tf = Terraform(workdir, cli_config=cli_config)
    assert tf.fmt_check().clean
    tf.init(backend=False)
    assert tf.validate().valid
    created = Counter(change.type for change in tf.plan().resource_changes if change.actions == ("create",))
    assert created == expected_resources(target, "business", spec)
