"""Replacements with real Terraform: the offline providers' requires_replace, and what `plan` makes of it.

The provider test applies a hand-written configuration, changes it and plans again. The `plan` tests render the
Business service, then plan a render with the three changes issue 13 names (a cluster-mode change, a subnet
CIDR change, a renamed user) against it: one plan per target shows all three.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from reproducer.gitops.plan import MASKED, to_json, to_markdown
from reproducer.offline import install_mirror
from reproducer.pipeline.plan import PlanRequest, plan
from reproducer.pipeline.render import RenderRequest, render
from reproducer.run.terraform import Terraform
from tests.golden.regen import HERE

SPEC = HERE / "specs" / "business.yaml"
PLACEHOLDER_PASSWORD = "change-me"  # how every terraform.tfvars.example's passwords begin

CONFIG = """
terraform {
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "6.69.1"
    }
  }
}

resource "aws_vpc" "main" {
  cidr_block = "10.0.0.0/16"
  tags = {
    Name = "%(tag)s"
  }
}

resource "aws_subnet" "main" {
  vpc_id     = aws_vpc.main.id
  cidr_block = "%(cidr)s"
}

resource "aws_elasticache_user" "app" {
  user_id       = "app"
  user_name     = "%(user)s"
  engine        = "valkey"
  access_string = "on ~app:* +@all"

  authentication_mode {
    type      = "password"
    passwords = ["a-password-of-16-chars"]
  }

  lifecycle {
    create_before_destroy = true
  }
}
"""


@pytest.fixture(scope="module")
def cli_config(tmp_path_factory) -> Path:
    return install_mirror(tmp_path_factory.mktemp("replace-mirror"), ["aws"])


def actions(result) -> dict[str, tuple[tuple[str, ...], list]]:
    return {
        c["address"]: (tuple(c["change"]["actions"]), c["change"].get("replace_paths", []))
        for c in result.raw["resource_changes"]
    }


def test_offline_provider_makes_terraform_replace_what_the_table_marks(tmp_path, cli_config):
    (tmp_path / "main.tf").write_text(CONFIG % {"tag": "a", "cidr": "10.0.1.0/24", "user": "alice"})
    tf = Terraform(tmp_path, cli_config=cli_config)
    tf.init(backend=False)
    tf.apply(tf.plan())
    (tmp_path / "main.tf").write_text(CONFIG % {"tag": "b", "cidr": "10.0.2.0/24", "user": "bob"})
    planned = actions(tf.plan())
    assert planned == {
        "aws_vpc.main": (("update",), []),
        "aws_subnet.main": (("delete", "create"), [["cidr_block"]]),
        "aws_elasticache_user.app": (("create", "delete"), [["user_name"]]),  # create_before_destroy
    }


def changed_spec(tmp_path: Path) -> Path:
    """The Business spec with a new subnet CIDR and the user ``analytics`` renamed ``reporting``."""
    spec = yaml.safe_load(SPEC.read_text())
    subnet = spec["network"]["private"]["subnet"]
    subnet.update(cidr="10.20.0.0/24", gateway="10.20.0.1", allocation_start="10.20.0.12", allocation_end="10.20.0.24")
    for user in spec["users"]:
        if user["name"] == "analytics":
            user["name"] = "reporting"
    spec["users"].sort(key=lambda user: user["name"])
    path = tmp_path / "changed.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


#: target -> address -> (action, previous address, attributes forcing the replacement), as the replace table says.
EXPECTED = {
    "aws": {
        "aws_elasticache_user.reporting": ("replace", "aws_elasticache_user.analytics", ["user_id", "user_name"]),
        "aws_vpc.cache_prod": ("replace", None, ["cidr_block"]),
        "aws_subnet.cache_prod[0]": ("replace", None, ["cidr_block", "vpc_id"]),
        # AWS turns cluster mode on in place (disabled -> compatible -> enabled): the provider plans an update
        "aws_elasticache_replication_group.cache_prod": ("update", None, []),
    },
    "gcp": {
        "google_memorystore_instance.cache_prod": ("replace", None, ["mode"]),
        "google_compute_subnetwork.cache_prod": ("replace", None, ["ip_cidr_range"]),
        # users are rules of one ACL policy, updated in place
        "google_memorystore_acl_policy.cache_prod": ("update", None, []),
    },
    "aiven": {
        "aiven_valkey_user.reporting": ("replace", "aiven_valkey_user.analytics", ["username"]),
        "aiven_project_vpc.cache_prod": ("replace", None, ["network_cidr"]),
        "aiven_valkey.cache_prod": ("update", None, []),  # a plan change is in place
    },
    "ovh": {
        "ovh_cloud_project_database_valkey_user.reporting": (
            "replace",
            "ovh_cloud_project_database_valkey_user.analytics",
            ["name"],
        ),
        # the render keeps the source's gateway, which moves with the CIDR (so does the allocation pool, a block
        # whose element count does not change: in place on its own)
        "ovh_cloud_project_network_private_subnet_v2.cache_prod": ("replace", None, ["cidr", "gateway_ip"]),
    },
}


#: target -> one changed attribute the report lists, before -> after.
ATTRIBUTE = {
    "aiven": ("aiven_project_vpc.cache_prod", "network_cidr", '"192.168.1.0/24"', '"10.20.0.0/24"'),
    "aws": ("aws_elasticache_replication_group.cache_prod", "cluster_mode", '"disabled"', '"enabled"'),
    "gcp": ("google_memorystore_instance.cache_prod", "mode", '"CLUSTER_DISABLED"', '"CLUSTER"'),
    "ovh": ("ovh_cloud_project_network_private_subnet_v2.cache_prod", "cidr", '"192.168.1.0/24"', '"10.20.0.0/24"'),
}


@pytest.mark.parametrize("target", sorted(EXPECTED))
def test_plan_shows_cluster_mode_cidr_and_user_rename_as_the_providers_would(target, tmp_path):
    committed = tmp_path / "committed"
    render(RenderRequest(SPEC, target, committed))
    report = plan(PlanRequest(RenderRequest(changed_spec(tmp_path), target, committed, shards=3, replicas=1)))
    data = json.loads(to_json(report))
    resources = {r["address"]: r for r in data["terraform"]["resources"]}
    for address, (action, previous, forced) in EXPECTED[target].items():
        entry = resources[address]
        assert (entry["action"], entry["previous_address"], entry["forced_by"]) == (action, previous, forced), address
    assert data["format_version"] == "1.2"
    assert data["terraform"]["replace"] == sum(r["action"] == "replace" for r in resources.values()) >= 2
    text = to_markdown(report)
    assert text.index("will be destroyed or replaced") < text.index("| Terraform (offline, vs committed)")
    for address, (action, _, forced) in EXPECTED[target].items():
        if action == "replace":
            assert f"> * **Replace** `{address}`" in text and f"forced by `{forced[0]}`" in text
    address, path, before, after = ATTRIBUTE[target]
    changes = {c.path: c for r in report.resources if r.address == address for c in r.changes}
    assert (changes[path].before, changes[path].after) == (before, after)
    assert f"~ {path}: {before} -> {after}" in text
    shown = [(c.before, c.after) for r in report.resources for c in r.changes]
    assert shown and PLACEHOLDER_PASSWORD not in json.dumps(shown), "a password from the tfvars is shown"
    if target == "gcp":  # a rule holds the user's password: Terraform marks it sensitive, the report masks it
        policy = next(r for r in report.resources if r.address == "google_memorystore_acl_policy.cache_prod")
        assert {(c.before, c.after) for c in policy.changes if c.path.endswith(".rule")} == {(MASKED, MASKED)}
